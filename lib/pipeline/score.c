/* csal3d_score_dataset: the cases of a dataset scored into a scores table and file, with
 * the run's metadata written in one place, maps, a journal for resuming, and a policy
 * for cases that fail (include/csal3d/pipeline.h). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csal3d/pipeline.h"

#include "core/alloc.h"
#include "core/comm.h"
#include "core/context.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "core/rng.h"
#include "io/fileutil.h"
#include "model/ssl_internal.h"
#include "pipeline/data_options.h"
#include "pipeline/dataset.h"
#include "pipeline/journal.h"
#include "pipeline/outputs.h"
#include "pipeline/score.h"
#include "uncertainty/uncertainty.h"

CSAL3D_API csal3d_status csal3d_case_key(const char *case_id, uint64_t *key) {
  C3_CHECK_ARG(case_id && key, "csal3d_case_key: NULL argument");
  *key = c3_rng_key_string(case_id);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_score_options_init(csal3d_score_options *o) {
  C3_CHECK_ARG(o, "csal3d_score_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->resume = 1;
  o->on_error = CSAL3D_CASE_ERRORS_STOP;
  return CSAL3D_OK;
}

/* ---- the run's metadata: one schema ---- */

static const char *c3_feature_name(csal3d_feature_mode f) {
  return f == CSAL3D_FEATURE_FULL ? "full" : f == CSAL3D_FEATURE_NONE ? "none" : "reduced";
}

static const char *c3_foreground_name(csal3d_foreground_mode f) {
  return f == CSAL3D_FOREGROUND_THRESHOLD ? "threshold"
         : f == CSAL3D_FOREGROUND_MASK    ? "mask"
                                          : "none";
}

/* Sets key = printf(...) in the JSON object (which keeps insertion order). */
static void c3_meta_set(json_t *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void c3_meta_set(json_t *o, const char *key, const char *fmt, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  json_object_set_new(o, key, json_string(buf));
}

csal3d_status c3_score_settings(const csal3d_uncertainty *u, const csal3d_dataset *ds,
                                const csal3d_volume_load_options *lo, json_t **out) {
  *out = NULL;
  csal3d_ssl_model *model = c3_uncertainty_model(u);
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  C3_TRY(csal3d_uncertainty_get_options(u, &uo));
  int64_t fdim = 0;
  C3_TRY(csal3d_uncertainty_feature_dim(u, &fdim));
  csal3d_feature_mode feature = uo.feature;
  if (feature == CSAL3D_FEATURE_DEFAULT) feature = model->o.feature;
  const char *sum = "";
  const char *ckpt = c3_ssl_source(model, &sum);
  json_t *o = json_object();
  if (!o) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  char buf[128];
  c3_meta_set(o, "checkpoint", "%s", ckpt ? ckpt : "");
  c3_meta_set(o, "checkpoint_checksum", "%s", ckpt ? sum : "");
  c3_meta_set(o, "checkpoint_step", "%" PRId64, model->opt->step);
  c3_meta_set(o, "embed_dim", "%d", model->o.embed_dim);
  c3_meta_set(o, "in_channels", "%d", model->o.in_channels);
  c3_meta_set(o, "dataset", "%s", c3_dataset_source(ds));
  c3_meta_set(o, "modality", "%s", c3_modality_name(lo->modality));
  c3_channel_text(lo->channel, buf, sizeof buf);
  c3_meta_set(o, "channel", "%s", buf);
  c3_spacing_text(lo->spacing, buf, sizeof buf);
  c3_meta_set(o, "spacing", "%s", buf);
  c3_meta_set(o, "window", "%" PRId64 ",%" PRId64 ",%" PRId64, uo.window[0], uo.window[1],
              uo.window[2]);
  c3_meta_set(o, "stride", "%" PRId64 ",%" PRId64 ",%" PRId64, uo.stride[0], uo.stride[1],
              uo.stride[2]);
  c3_meta_set(o, "foreground", "%s", c3_foreground_name(uo.foreground));
  if (uo.foreground == CSAL3D_FOREGROUND_THRESHOLD)
    c3_meta_set(o, "foreground_threshold", "%.17g", uo.foreground_threshold);
  c3_meta_set(o, "feature", "%s", c3_feature_name(feature));
  c3_meta_set(o, "feature_dim", "%" PRId64, fdim);
  c3_meta_set(o, "seed", "%" PRIu64, uo.seed);
  c3_meta_set(o, "draws", "case-id");
  c3_meta_set(o, "library_version", "%s", csal3d_version());
  if (json_object_size(o) != 17u + (uo.foreground == CSAL3D_FOREGROUND_THRESHOLD)) {
    json_decref(o);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory (scores metadata)");
  }
  *out = o;
  return CSAL3D_OK;
}

/* ---- the run ---- */

typedef struct c3_run {
  csal3d_uncertainty *u;
  csal3d_ssl_model *model;
  const csal3d_dataset *ds;
  const csal3d_context *ctx;
  csal3d_score_options o;
  csal3d_volume_load_options lo;
  c3_data_check check;
  size_t *cases;            /* the dataset indices, in order */
  size_t *pos;              /* each case's position in the whole list (shards) */
  size_t n;
  int64_t d;
  char **map_paths;         /* absolute, per case of the run (NULL without maps) */
  char **stage_paths;       /* where each map is written until the run succeeds */
  char *stage_dir;          /* the hidden staging folder beside the maps folder */
  float *scores, *features; /* per case of the run */
  char *have;               /* 1: scored (or reused) */
  c3_skip *skips;
  size_t n_skips;
  c3_journal j;
  int journaled;
} c3_run;

static void c3_run_free(c3_run *r, int failed) {
  for (size_t i = 0; r->map_paths && i < r->n; i++) {
    /* Without a journal to resume from, a failed run's staged maps go. */
    if (failed && !r->journaled && r->stage_paths[i]) unlink(r->stage_paths[i]);
    c3_free(r->map_paths[i]);
    c3_free(r->stage_paths[i]);
  }
  if (r->stage_dir && (!failed || !r->journaled)) rmdir(r->stage_dir); /* if empty */
  c3_free(r->map_paths);
  c3_free(r->stage_paths);
  c3_free(r->stage_dir);
  c3_free(r->cases);
  c3_free(r->pos);
  c3_free(r->scores);
  c3_free(r->features);
  c3_free(r->have);
  for (size_t i = 0; i < r->n_skips; i++) c3_free(r->skips[i].id), c3_free(r->skips[i].error);
  c3_free(r->skips);
  c3_journal_close(&r->j, 0);
  c3_data_check_clear(&r->check);
}

/* The load options: the caller's, else how the model was trained, else the dataset's
 * (pipeline/data_options.h has the rules). */
static csal3d_status c3_run_load_options(c3_run *r) {
  C3_TRY(c3_data_options_resolve(r->model, r->ds, r->o.load, "scoring", r->ctx, &r->lo));
  c3_data_check_init(&r->check, r->model, &r->lo, "scoring", r->ctx);
  return CSAL3D_OK;
}

/* The map file of a case: ID_uncertainty.nii.gz, '/' in ids replaced by '_'. */
static csal3d_status c3_map_path(const char *dir, const char *id, char **out) {
  char *d = NULL;
  C3_TRY(c3_path_absolute(dir, &d));
  size_t n = strlen(d) + strlen(id) + 32;
  csal3d_status s = c3_alloc(n, "map path", (void **)out);
  if (s == CSAL3D_OK) {
    int k = snprintf(*out, n, "%s/", d);
    for (const char *p = id; *p; p++) (*out)[k++] = *p == '/' ? '_' : *p;
    snprintf(*out + k, n - (size_t)k, "_uncertainty.nii.gz");
  }
  c3_free(d);
  return s;
}

static int c3_cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *c3_dirname_dup(const char *path) {
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
  char *d;
  if (c3_alloc(n + 1, "path", (void **)&d) != CSAL3D_OK) return NULL;
  if (slash) memcpy(d, path, n);
  else d[0] = '.';
  d[n] = '\0';
  return d;
}

/* Every output checked before any work. */
static csal3d_status c3_run_check_outputs(c3_run *r, const char *journal_path) {
  const char **in = NULL;
  size_t nin = 0;
  C3_TRY(c3_dataset_files(r->ds, c3_ssl_source(r->model, NULL), &in, &nin));
  csal3d_status s = CSAL3D_OK;
  if (r->o.output) {
    s = c3_output_check(r->o.output, CSAL3D_OUTPUT_FILE, "the scores file", in, nin,
                        r->o.overwrite);
    if (s == CSAL3D_OK)
      s = c3_output_check(journal_path, CSAL3D_OUTPUT_FILE, "the scoring journal", in, nin, 1);
  }
  if (s == CSAL3D_OK && r->o.maps_dir) {
    struct stat st;
    if (stat(r->o.maps_dir, &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        s = c3_error(CSAL3D_ERR_IO, "the maps folder %s is a file", r->o.maps_dir);
      else if (access(r->o.maps_dir, W_OK | X_OK) != 0)
        s = c3_error(CSAL3D_ERR_IO, "the maps folder %s: cannot write into it (%s)",
                     r->o.maps_dir, strerror(errno));
    } else {
      /* it will be created (with its missing parents) */
      s = c3_output_check(r->o.maps_dir, CSAL3D_OUTPUT_FOLDER, "the maps folder", NULL, 0, 0);
    }
    /* Maps never go among the case images: a folder dataset would take them for cases. */
    char real[PATH_MAX];
    if (s == CSAL3D_OK && realpath(r->o.maps_dir, real)) {
      for (size_t i = 0; s == CSAL3D_OK && i < nin; i++) {
        char ri[PATH_MAX];
        char *dir = realpath(in[i], ri) ? c3_dirname_dup(ri) : NULL;
        if (dir && !strcmp(dir, real))
          s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                       "the maps folder %s holds the input %s: uncertainty maps would mix "
                       "with the dataset's images; choose another folder", r->o.maps_dir,
                       in[i]);
        c3_free(dir);
      }
    }
    /* Names distinct, and none there already unless overwriting or from the journal
     * (checked again against the journal once it is read). */
    if (s == CSAL3D_OK) {
      char **sorted;
      s = c3_alloc_array(r->n ? r->n : 1, sizeof *sorted, "map names", (void **)&sorted);
      if (s == CSAL3D_OK) {
        memcpy(sorted, r->map_paths, r->n * sizeof *sorted);
        qsort(sorted, r->n, sizeof *sorted, c3_cmp_str);
        for (size_t i = 1; s == CSAL3D_OK && i < r->n; i++)
          if (!strcmp(sorted[i], sorted[i - 1])) {
            const char *ids[2] = {"", ""}; /* the two cases, named in the message */
            for (size_t k = 0, m = 0; k < r->n && m < 2; k++)
              if (!strcmp(r->map_paths[k], sorted[i]))
                ids[m++] = c3_dataset_id(r->ds, r->cases[k]);
            s = c3_error(CSAL3D_ERR_FORMAT,
                         "cases '%s' and '%s' would write the same uncertainty map %s ('/' "
                         "in an id becomes '_'); give them ids that differ (an id column in "
                         "a CSV list)", ids[0], ids[1], sorted[i]);
          }
        c3_free(sorted);
      }
    }
    for (size_t i = 0; s == CSAL3D_OK && i < r->n; i++) {
      const char *base = strrchr(r->map_paths[i], '/') + 1;
      if (strlen(base) > NAME_MAX)
        s = c3_error(CSAL3D_ERR_FORMAT, "case '%s': its uncertainty map's file name would be "
                     "%zu bytes long, more than a file name holds (%d); give it a shorter id "
                     "(an id column in a CSV list)", c3_dataset_id(r->ds, r->cases[i]),
                     strlen(base), NAME_MAX);
    }
    for (size_t i = 0; s == CSAL3D_OK && i < r->n; i++) {
      struct stat sm; /* only an existing file can be an input */
      if (stat(r->map_paths[i], &sm) == 0)
        s = c3_output_check(r->map_paths[i], CSAL3D_OUTPUT_FILE, "the uncertainty map", in,
                            nin, 1);
    }
  }
  c3_free(in);
  return s;
}

/* Existing maps that this run would replace without being asked to: refused (a run's maps
 * appear in the maps folder only when it succeeds). */
static csal3d_status c3_run_check_existing_maps(c3_run *r) {
  if (!r->o.maps_dir || r->o.overwrite) return CSAL3D_OK;
  for (size_t i = 0; i < r->n; i++) {
    struct stat st;
    if (stat(r->map_paths[i], &st) == 0)
      return c3_error(CSAL3D_ERR_IO, "the uncertainty map %s exists; set the option "
                      "overwrite to replace it", r->map_paths[i]);
  }
  return CSAL3D_OK;
}

/* The staging folder of the maps: ".NAME.partial" beside the maps folder NAME, and each
 * case's map in it. */
static csal3d_status c3_run_stage_paths(c3_run *r) {
  char *abs = NULL;
  C3_TRY(c3_path_absolute(r->o.maps_dir, &abs));
  size_t len = strlen(abs);
  while (len > 1 && abs[len - 1] == '/') abs[--len] = '\0';
  const char *slash = strrchr(abs, '/');
  size_t n = len + 16;
  csal3d_status s = c3_alloc(n, "staging path", (void **)&r->stage_dir);
  /* shards running at once each stage in their own folder */
  char shard[64] = "";
  if (r->o.shard_count > 1) {
    snprintf(shard, sizeof shard, ".%zu-of-%zu", r->o.shard_index + 1, r->o.shard_count);
    n += strlen(shard);
  }
  if (s == CSAL3D_OK)
    snprintf(r->stage_dir, n, "%.*s.%s%s.partial", (int)(slash - abs + 1), abs, slash + 1,
             shard);
  c3_free(abs);
  for (size_t i = 0; s == CSAL3D_OK && i < r->n; i++) {
    const char *base = strrchr(r->map_paths[i], '/') + 1;
    size_t m = strlen(r->stage_dir) + strlen(base) + 2;
    s = c3_alloc(m, "staging path", (void **)&r->stage_paths[i]);
    if (s == CSAL3D_OK) snprintf(r->stage_paths[i], m, "%s/%s", r->stage_dir, base);
  }
  return s;
}

/* After the last case: the staged maps into the maps folder (undone on failure). */
static csal3d_status c3_run_publish_maps(c3_run *r) {
  size_t moved = 0;
  csal3d_status s = CSAL3D_OK;
  for (; moved < r->n; moved++) {
    if (!r->have[moved]) continue;
    if (rename(r->stage_paths[moved], r->map_paths[moved]) != 0) {
      s = c3_error(CSAL3D_ERR_IO, "cannot move the uncertainty map %s into %s: %s",
                   r->stage_paths[moved], r->o.maps_dir, strerror(errno));
      break;
    }
  }
  if (s != CSAL3D_OK)
    while (moved-- > 0)
      if (r->have[moved] && rename(r->map_paths[moved], r->stage_paths[moved]) != 0) {
      }
  return s;
}

/* The maps published by c3_run_publish_maps back to the staging folder (the scores file
 * could not be written: the journal still points at them). */
static void c3_run_unpublish_maps(c3_run *r) {
  for (size_t i = 0; i < r->n; i++)
    if (r->have[i] && rename(r->map_paths[i], r->stage_paths[i]) != 0) {
    }
}

static int c3_mkdir_p(const char *path) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", path);
  for (char *q = p + 1; *q; q++)
    if (*q == '/') {
      *q = '\0';
      if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
      *q = '/';
    }
  return mkdir(p, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* Loads and scores case i of the run; OK or the case's own error. */
static csal3d_status c3_score_case(c3_run *r, size_t i, double *score) {
  size_t c = r->cases[i];
  csal3d_volume *v = NULL;
  /* (loading errors name the case already) */
  csal3d_status s = c3_data_load_case(&r->check, r->ds, c, &r->lo, &v);
  if (s != CSAL3D_OK) return s;
  s = csal3d_uncertainty_score(r->u, v, NULL, c3_rng_key_string(c3_dataset_id(r->ds, c)), score,
                               r->d ? r->features + i * (size_t)r->d : NULL, (size_t)r->d);
  if (s == CSAL3D_OK && !isfinite(*score))
    s = c3_error(CSAL3D_ERR_NUMERICAL, "the score is not finite (%g)", *score);
  csal3d_volume_free(v);
  if (s == CSAL3D_OK && r->map_paths) s = csal3d_uncertainty_save_map(r->u, r->stage_paths[i]);
  if (s != CSAL3D_OK) c3_error_prefix(s, "case '%s'", c3_dataset_id(r->ds, c));
  return s;
}

static csal3d_status c3_skip_add(c3_run *r, size_t i, const char *id, const char *error) {
  c3_skip *ns;
  C3_TRY(c3_alloc_array(r->n_skips + 1, sizeof *ns, "skipped cases", (void **)&ns));
  if (r->n_skips) memcpy(ns, r->skips, r->n_skips * sizeof *ns);
  c3_free(r->skips);
  r->skips = ns;
  c3_skip *k = &r->skips[r->n_skips];
  k->id = c3_strdup(id);
  k->error = c3_strdup(error);
  k->position = r->pos[i];
  if (!k->id || !k->error) {
    c3_free(k->id), c3_free(k->error);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  }
  r->n_skips++;
  return CSAL3D_OK;
}

/* Errors a skip policy may pass over: the case's own, not the run's. */
static int c3_skippable(csal3d_status s) {
  return s != CSAL3D_ERR_CANCELLED && s != CSAL3D_ERR_OUT_OF_MEMORY &&
         s != CSAL3D_ERR_INTERNAL && s != CSAL3D_ERR_DEVICE_UNAVAILABLE;
}

static csal3d_status c3_run_cases(c3_run *r) {
  size_t done = 0;
  for (size_t i = 0; i < r->n; i++) {
    size_t c = r->cases[i];
    const char *id = c3_dataset_id(r->ds, c);
    const c3_journal_rec *jr =
        r->journaled ? c3_journal_find(&r->j, id, c3_dataset_image(r->ds, c, 0)) : NULL;
    /* A journaled case is reused when its map (if maps are asked for) is still there. */
    if (jr && r->map_paths) {
      struct stat st;
      if (!jr->map || strcmp(jr->map, r->stage_paths[i]) || stat(jr->map, &st) != 0) jr = NULL;
    }
    csal3d_status s = CSAL3D_OK;
    double score = 0;
    int reused = jr != NULL;
    if (jr) {
      score = jr->score;
      if (r->d) memcpy(r->features + i * (size_t)r->d, jr->feature, (size_t)r->d * sizeof(float));
    } else {
      s = c3_score_case(r, i, &score);
      if (s == CSAL3D_OK && r->journaled)
        s = c3_journal_append(&r->j, id, c3_dataset_image(r->ds, c, 0),
                              r->map_paths ? r->stage_paths[i] : NULL, (float)score,
                              r->features + i * (size_t)r->d);
    }
    if (s == CSAL3D_OK) {
      r->scores[i] = (float)score;
      r->have[i] = 1;
    } else if (r->o.on_error == CSAL3D_CASE_ERRORS_SKIP && c3_skippable(s)) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", csal3d_last_error());
      c3_log(r->ctx, CSAL3D_LOG_WARN, "skipped: %s", msg);
      C3_TRY(c3_skip_add(r, i, id, msg));
      if (r->o.on_case &&
          r->o.on_case(r->o.on_case_user_data, c, id, s, NAN, 0, msg))
        return c3_error(CSAL3D_ERR_CANCELLED, "scoring cancelled after case %zu (%s)", c, id);
      C3_TRY(c3_progress(r->ctx, "score", (uint64_t)++done, (uint64_t)r->n));
      continue;
    } else {
      return s;
    }
    if (r->o.on_case && r->o.on_case(r->o.on_case_user_data, c, id, CSAL3D_OK, score, reused, ""))
      return c3_error(CSAL3D_ERR_CANCELLED, "scoring cancelled after case %zu (%s)", c, id);
    C3_TRY(c3_progress(r->ctx, "score", (uint64_t)++done, (uint64_t)r->n));
  }
  return CSAL3D_OK;
}

static csal3d_status c3_run_table(c3_run *r, json_t *meta, csal3d_scores **out) {
  size_t kept = r->n - r->n_skips;
  if (kept == 0)
    return c3_error(CSAL3D_ERR_STATE, "no case could be scored (%zu skipped; the first: "
                    "%s: %s)", r->n_skips, r->skips[0].id, r->skips[0].error);
  csal3d_scores *t;
  C3_TRY(csal3d_scores_create((int64_t)kept, r->d ? r->d : 1, &t));
  csal3d_status s = CSAL3D_OK;
  float zero = 0;
  int64_t k = 0;
  for (size_t i = 0; s == CSAL3D_OK && i < r->n; i++) {
    if (!r->have[i]) continue;
    s = csal3d_scores_set_case_from_dataset(t, k, r->ds, r->cases[i], r->scores[i],
                                            r->d ? r->features + i * (size_t)r->d : &zero);
    if (s == CSAL3D_OK && r->map_paths) s = csal3d_scores_set_case_map(t, k, r->map_paths[i]);
    k++;
  }
  const char *key;
  json_t *v;
  json_object_foreach(meta, key, v) {
    if (s == CSAL3D_OK) s = csal3d_scores_set_metadata(t, key, json_string_value(v));
  }
  if (s == CSAL3D_OK && r->n_skips) {
    char *text = NULL;
    s = c3_skipped_cases_text(r->skips, r->n_skips, &text);
    if (s == CSAL3D_OK) s = csal3d_scores_set_metadata(t, "skipped_cases", text);
    free(text);
  }
  if (s == CSAL3D_OK && r->n_skips && r->o.shard_count > 1) {
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < r->n_skips; i++)
      json_array_append_new(arr, json_integer((json_int_t)r->skips[i].position));
    char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    s = text ? csal3d_scores_set_metadata(t, "shard_skipped_positions", text)
             : c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    free(text);
    json_decref(arr);
  }
  if (s != CSAL3D_OK) {
    csal3d_scores_free(t);
    return s;
  }
  *out = t;
  return CSAL3D_OK;
}

static csal3d_status c3_score_run(csal3d_uncertainty *u, const csal3d_dataset *ds,
                                  const csal3d_score_options *options, csal3d_scores **out);

/* The shard file of rank r of n beside the output: .NAME.rank-R-of-N */
static csal3d_status c3_rank_path(const char *output, int r, int n, char **out) {
  const char *slash = strrchr(output, '/');
  size_t len = strlen(output) + 48;
  C3_TRY(c3_alloc(len, "shard path", (void **)out));
  int dir = slash ? (int)(slash - output + 1) : 0;
  snprintf(*out, len, "%.*s.%s.rank-%d-of-%d", dir, output, output + dir, r + 1, n);
  return CSAL3D_OK;
}

/* Over a communicator of n ranks: rank r scores shard r of n into its shard file (with its
 * own journal, so each rank resumes), then rank 0 merges the n files into the output
 * (csal3d_scores_merge_files: bitwise the single run's) and removes them. Every rank
 * returns the same outcome. */
static csal3d_status c3_score_ranks(csal3d_uncertainty *u, const csal3d_dataset *ds,
                                    const csal3d_score_options *options, csal3d_scores **out) {
  const csal3d_context *ctx = c3_uncertainty_model(u)->ctx;
  const int n = c3_comm_size(ctx), rank = c3_comm_rank(ctx);
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_score_options"));
  C3_CHECK_ARG(o.output && *o.output, "csal3d_score_dataset over %d ranks: set the option "
               "output (rank 0 writes the scores file)", n);
  C3_CHECK_ARG(o.shard_count <= 1, "csal3d_score_dataset over %d ranks: the ranks are the "
               "shards; leave the option shard_count at 0", n);
  char **paths;
  C3_TRY(c3_calloc_array((size_t)n, sizeof *paths, "shard paths", (void **)&paths));
  csal3d_status s = CSAL3D_OK;
  for (int r = 0; s == CSAL3D_OK && r < n; r++) s = c3_rank_path(o.output, r, n, &paths[r]);
  /* rank 0 checks the output before any work: every rank learns of a refusal */
  if (s == CSAL3D_OK && rank == 0 && !o.overwrite && access(o.output, F_OK) == 0)
    s = c3_error(CSAL3D_ERR_IO, "the scores file %s exists; set the option overwrite to "
                 "replace it", o.output);
  int first = -1;
  char mine[C3_ERROR_MAX] = "";
  csal3d_status cs = CSAL3D_OK;
  for (int phase = 0; phase < 3 && cs == CSAL3D_OK; phase++) {
    if (s == CSAL3D_OK && phase == 1) {
      csal3d_score_options so = o;
      so.output = paths[rank];
      so.shard_count = (size_t)n;
      so.shard_index = (size_t)rank;
      so.overwrite = 1;
      s = c3_score_run(u, ds, &so, NULL);
    }
    if (s == CSAL3D_OK && phase == 2 && rank == 0)
      s = csal3d_scores_merge_files((const char *const *)paths, (size_t)n, o.output,
                                    o.overwrite, out);
    if (s != CSAL3D_OK && !*mine) snprintf(mine, sizeof mine, "%s", csal3d_last_error());
    cs = c3_comm_any_failed(ctx, s != CSAL3D_OK, &first, "scoring");
    if (first >= 0) break;
  }
  if (cs == CSAL3D_OK && first < 0 && rank == 0)
    for (int r = 0; r < n; r++) unlink(paths[r]);
  for (int r = 0; r < n; r++) c3_free(paths[r]);
  c3_free(paths);
  if (cs != CSAL3D_OK) return cs;
  if (s != CSAL3D_OK) return c3_error(s, "rank %d: %s", rank, mine);
  if (first >= 0)
    return c3_error(CSAL3D_ERR_STATE, "scoring stopped: rank %d failed (its messages say why)",
                    first);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_score_dataset(csal3d_uncertainty *u,
                                              const csal3d_dataset *ds,
                                              const csal3d_score_options *options,
                                              csal3d_scores **out) {
  if (out) *out = NULL;
  C3_CHECK_ARG(u && ds, "csal3d_score_dataset: NULL argument");
  if (c3_comm_size(c3_uncertainty_model(u)->ctx) > 1) return c3_score_ranks(u, ds, options, out);
  return c3_score_run(u, ds, options, out);
}

static csal3d_status c3_score_run(csal3d_uncertainty *u, const csal3d_dataset *ds,
                                  const csal3d_score_options *options, csal3d_scores **out) {
  if (out) *out = NULL;
  C3_CHECK_ARG(u && ds, "csal3d_score_dataset: NULL argument");
  c3_run r;
  memset(&r, 0, sizeof r);
  r.j.fd = -1;
  r.u = u;
  r.model = c3_uncertainty_model(u);
  r.ds = ds;
  r.ctx = r.model->ctx;
  csal3d_score_options_init(&r.o);
  C3_TRY(c3_options_read(&r.o, sizeof r.o, options, "csal3d_score_options"));
  C3_CHECK_ARG(r.o.on_error == CSAL3D_CASE_ERRORS_STOP || r.o.on_error == CSAL3D_CASE_ERRORS_SKIP,
               "csal3d_score_options.on_error: unknown policy %d", (int)r.o.on_error);
  C3_CHECK_ARG(r.o.cases || r.o.case_count == 0,
               "csal3d_score_options: case_count is %zu but cases is NULL", r.o.case_count);
  C3_CHECK_ARG(!r.o.output || *r.o.output, "csal3d_score_options.output is empty");
  C3_CHECK_ARG(!r.o.maps_dir || *r.o.maps_dir, "csal3d_score_options.maps_dir is empty");
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  C3_TRY(csal3d_uncertainty_get_options(u, &uo));
  C3_CHECK_ARG(!r.o.maps_dir || uo.keep_map,
               "csal3d_score_dataset: maps_dir needs an estimator that keeps its map "
               "(csal3d_uncertainty_options.keep_map)");
  C3_CHECK_ARG(uo.foreground != CSAL3D_FOREGROUND_MASK,
               "csal3d_score_dataset: foreground MASK needs a mask per case; score with "
               "csal3d_uncertainty_score() instead");
  const size_t total = c3_dataset_n(ds);
  r.n = r.o.cases ? r.o.case_count : total;
  C3_CHECK_ARG(r.n >= 1, "csal3d_score_dataset: no cases to score");
  C3_CHECK_ARG(r.o.shard_index < (r.o.shard_count > 1 ? r.o.shard_count : 1),
               "csal3d_score_dataset: the option shard_index (%zu) must be below the option "
               "shard_count (%zu)", r.o.shard_index, r.o.shard_count);
  C3_CHECK_ARG(r.o.shard_count <= r.n,
               "csal3d_score_dataset: the option shard_count (%zu) exceeds the %zu cases to "
               "score: a shard would have none; use at most %zu shards", r.o.shard_count,
               r.n, r.n);
  C3_TRY(csal3d_uncertainty_feature_dim(u, &r.d));

  json_t *meta = NULL;
  char *settings = NULL, *journal_path = NULL;
  csal3d_status s = c3_alloc_array(r.n, sizeof *r.cases, "case list", (void **)&r.cases);
  if (s == CSAL3D_OK) s = c3_calloc_array(r.n, 1, "case flags", (void **)&r.have);
  if (s == CSAL3D_OK) s = c3_alloc_array(r.n, sizeof(float), "scores", (void **)&r.scores);
  if (s == CSAL3D_OK)
    s = c3_alloc_array(r.n * (size_t)(r.d ? r.d : 1), sizeof(float), "features",
                       (void **)&r.features);
  for (size_t i = 0; s == CSAL3D_OK && i < r.n; i++) {
    r.cases[i] = r.o.cases ? r.o.cases[i] : i;
    if (r.cases[i] >= total)
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "csal3d_score_options.cases[%zu] = %zu: the "
                   "dataset has %zu cases", i, r.cases[i], total);
  }
  if (s == CSAL3D_OK && r.o.cases) { /* distinct */
    unsigned char *seen = NULL;
    s = c3_calloc_array(total, 1, "case flags", (void **)&seen);
    for (size_t i = 0; s == CSAL3D_OK && i < r.n; i++) {
      if (seen[r.cases[i]])
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "csal3d_score_options.cases lists case %zu "
                     "twice", r.cases[i]);
      seen[r.cases[i]] = 1;
    }
    c3_free(seen);
  }
  if (s == CSAL3D_OK) s = c3_alloc_array(r.n, sizeof *r.pos, "case positions", (void **)&r.pos);
  for (size_t i = 0; s == CSAL3D_OK && i < r.n; i++) r.pos[i] = i;
  /* A shard: the positions p with p mod N = index of the whole list. */
  uint32_t list_crc = 0;
  const size_t whole = r.n;
  if (s == CSAL3D_OK && r.o.shard_count > 1) {
    for (size_t i = 0; i < r.n; i++) list_crc = c3_case_list_crc(list_crc, c3_dataset_id(ds, r.cases[i]));
    size_t k = 0;
    for (size_t p = r.o.shard_index; p < whole; p += r.o.shard_count, k++) {
      r.cases[k] = r.cases[p];
      r.pos[k] = p;
    }
    r.n = k;
  }
  if (s == CSAL3D_OK && r.o.maps_dir) {
    s = c3_calloc_array(r.n, sizeof *r.map_paths, "map paths", (void **)&r.map_paths);
    if (s == CSAL3D_OK)
      s = c3_calloc_array(r.n, sizeof *r.stage_paths, "map paths", (void **)&r.stage_paths);
    for (size_t i = 0; s == CSAL3D_OK && i < r.n; i++)
      s = c3_map_path(r.o.maps_dir, c3_dataset_id(ds, r.cases[i]), &r.map_paths[i]);
    if (s == CSAL3D_OK) s = c3_run_stage_paths(&r);
  }
  if (s == CSAL3D_OK) s = c3_run_load_options(&r);
  if (s == CSAL3D_OK) s = c3_score_settings(u, ds, &r.lo, &meta);
  if (s == CSAL3D_OK && r.o.shard_count > 1) {
    c3_meta_set(meta, "shard", "%zu/%zu", r.o.shard_index + 1, r.o.shard_count);
    c3_meta_set(meta, "shard_cases", "%zu", whole);
    c3_meta_set(meta, "shard_case_list", "crc32:%08" PRIx32, list_crc);
  }
  if (s == CSAL3D_OK && !(settings = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER)))
    s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  if (s == CSAL3D_OK && r.o.output) {
    size_t n = strlen(r.o.output) + 16;
    s = c3_alloc(n, "journal path", (void **)&journal_path);
    if (s == CSAL3D_OK) snprintf(journal_path, n, "%s.partial", r.o.output);
  }
  /* Before any work: every output, then the journal. */
  if (s == CSAL3D_OK) s = c3_run_check_outputs(&r, journal_path);
  if (s == CSAL3D_OK && journal_path) {
    s = c3_journal_open(journal_path, settings, r.d, r.o.resume, &r.j);
    r.journaled = s == CSAL3D_OK;
    if (s == CSAL3D_OK && r.j.n)
      c3_log(r.ctx, CSAL3D_LOG_INFO, "%s: continuing an unfinished run (%zu cases scored)",
             journal_path, r.j.n);
  }
  if (s == CSAL3D_OK) s = c3_run_check_existing_maps(&r);
  if (s == CSAL3D_OK && r.o.maps_dir && c3_mkdir_p(r.stage_dir) != 0)
    s = c3_error(CSAL3D_ERR_IO, "cannot create the folder %s for the maps: %s", r.stage_dir,
                 strerror(errno));
  if (s == CSAL3D_OK) {
    char sp[64];
    c3_spacing_text(r.lo.spacing, sp, sizeof sp);
    c3_log(r.ctx, CSAL3D_LOG_INFO, "scoring %zu cases (%s, spacing %s): window %lld,%lld,%lld",
           r.n, c3_modality_name(r.lo.modality), sp, (long long)uo.window[0],
           (long long)uo.window[1], (long long)uo.window[2]);
    s = c3_run_cases(&r);
  }
  csal3d_scores *table = NULL;
  if (s == CSAL3D_OK) s = c3_run_table(&r, meta, &table);
  /* The maps into place, then the scores file that names them. */
  int published = 0;
  if (s == CSAL3D_OK && r.o.maps_dir) {
    if (c3_mkdir_p(r.o.maps_dir) != 0)
      s = c3_error(CSAL3D_ERR_IO, "cannot create the maps folder %s: %s", r.o.maps_dir,
                   strerror(errno));
    if (s == CSAL3D_OK) s = c3_run_publish_maps(&r);
    published = s == CSAL3D_OK;
  }
  if (s == CSAL3D_OK && r.o.output) s = csal3d_scores_save(table, r.o.output);
  if (s != CSAL3D_OK && published) c3_run_unpublish_maps(&r);
  if (s == CSAL3D_OK || (r.journaled && r.j.n == 0)) {
    c3_journal_close(&r.j, 1); /* done, or nothing to resume from */
    r.journaled = 0;
  } else if (r.journaled) {
    char msg[C3_ERROR_MAX];
    snprintf(msg, sizeof msg, "%s", csal3d_last_error());
    c3_error(s, "%s (the %zu cases scored are kept in %s: running again with the same "
             "settings continues from them)", msg, r.j.n, journal_path);
  }
  c3_run_free(&r, s != CSAL3D_OK);
  json_decref(meta);
  free(settings);
  c3_free(journal_path);
  if (s != CSAL3D_OK) {
    csal3d_scores_free(table);
    return s;
  }
  if (out) *out = table;
  else csal3d_scores_free(table);
  return CSAL3D_OK;
}
