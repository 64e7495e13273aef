/* Run-level resume of csal3d_evaluate_compare: the settings that a results JSON records
 * (everything that shapes a run's Dice besides its strategy, budget and selection seed),
 * and the runs of an existing results file written with the same settings. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "pipeline/evaluate.h"

static json_t *jints(const int64_t *v, int n) {
  json_t *a = json_array();
  for (int i = 0; a && i < n; i++) json_array_append_new(a, json_integer((json_int_t)v[i]));
  return a;
}

static json_t *jreals(const double *v, int n) {
  json_t *a = json_array();
  for (int i = 0; a && i < n; i++) json_array_append_new(a, json_real(v[i]));
  return a;
}

static const char *modality_text(csal3d_modality m) {
  switch (m) {
  case CSAL3D_MODALITY_NONE: return "none";
  case CSAL3D_MODALITY_CT: return "ct";
  case CSAL3D_MODALITY_MRI: return "mri";
  default: return "auto";
  }
}

static const char *const norm_text[] = {"auto", "none", "ct", "zscore"};

/* Sets a member (s may be NULL); *bad becomes 1 when it or the value failed. */
static void put(json_t *s, int *bad, const char *key, json_t *value) {
  if (!s) json_decref(value);
  if (!s || json_object_set_new(s, key, value) != 0) *bad = 1; /* steals value, even on failure */
}

json_t *c3_evaluate_settings(const csal3d_evaluate_options *o, const char *const *val_ids,
                             size_t n_val, const csal3d_sampler_options *so,
                             const char *scores_hash) {
  json_t *s = json_object();
  int bad = !s;
  int64_t widths[CSAL3D_EVALUATE_MAX_STAGES];
  for (int k = 0; k < o->stages && k < CSAL3D_EVALUATE_MAX_STAGES; k++) widths[k] = o->widths[k];
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  if (o->load) c3_options_read(&lo, sizeof lo, o->load, "csal3d_volume_load_options");
  put(s, &bad, "iterations", json_integer(o->iterations));
  put(s, &bad, "batch_size", json_integer(o->batch_size));
  put(s, &bad, "patch_size", jints(o->patch_size, 3));
  put(s, &bad, "widths", jints(widths, o->stages));
  put(s, &bad, "learning_rate", json_real(o->learning_rate));
  put(s, &bad, "weight_decay", json_real(o->weight_decay));
  put(s, &bad, "seed", json_integer((json_int_t)o->seed));
  put(s, &bad, "labels", json_integer(o->labels));
  put(s, &bad, "normalization", json_string(norm_text[o->normalization]));
  put(s, &bad, "inference_batch", json_integer(o->inference_batch));
  put(s, &bad, "per_case", json_integer(o->per_case != 0));
  put(s, &bad, "modality", json_string(modality_text(lo.modality)));
  put(s, &bad, "channel", json_integer(lo.channel));
  put(s, &bad, "spacing", jreals(lo.spacing, 3));
  put(s, &bad, "allow_nonfinite", json_integer(lo.allow_nonfinite != 0));
  if (so) {
    put(s, &bad, "n_cand", json_integer(so->n_cand));
    put(s, &bad, "kernel", json_string(so->kernel == CSAL3D_KERNEL_REFERENCE
                                                     ? "reference" : "mkkm"));
    put(s, &bad, "gamma_mode", json_integer(so->gamma_mode));
    put(s, &bad, "gammas", jreals(so->gammas, so->n_kernels));
    put(s, &bad, "mkkm_tol", json_real(so->mkkm_tol));
    put(s, &bad, "mkkm_max_iter", json_integer(so->mkkm_max_iter));
    put(s, &bad, "reference_eps", json_real(so->reference_eps));
    put(s, &bad, "exact_max_n", json_integer(so->exact_max_n));
    put(s, &bad, "nystrom_landmarks", json_integer(so->nystrom_landmarks));
    put(s, &bad, "kmeans_restarts", json_integer(so->kmeans_restarts));
    put(s, &bad, "kmeans_max_iter", json_integer(so->kmeans_max_iter));
    put(s, &bad, "kmeans_tol", json_real(so->kmeans_tol));
    put(s, &bad, "kmeans_batch", json_integer(so->kmeans_batch));
    put(s, &bad, "typiclust_k", json_integer(so->typiclust_k));
    put(s, &bad, "typiclust_min_cluster_size",
                        json_integer(so->typiclust_min_cluster_size));
    put(s, &bad, "typiclust_variant", json_integer(so->typiclust_variant));
    put(s, &bad, "probcover_delta", json_real(so->probcover_delta));
    put(s, &bad, "probcover_purity", json_real(so->probcover_purity));
    put(s, &bad, "probcover_grid", json_integer(so->probcover_grid));
    put(s, &bad, "probcover_max_edges", json_integer(so->probcover_max_edges));
    put(s, &bad, "birch_threshold", json_real(so->birch_threshold));
    put(s, &bad, "birch_branching", json_integer(so->birch_branching));
    put(s, &bad, "birch_max_subclusters", json_integer(so->birch_max_subclusters));
    put(s, &bad, "usl_k", json_integer(so->usl_k));
    put(s, &bad, "usl_lambda", json_real(so->usl_lambda));
    put(s, &bad, "usl_alpha", json_real(so->usl_alpha));
    put(s, &bad, "usl_iterations", json_integer(so->usl_iterations));
    put(s, &bad, "usl_momentum", json_real(so->usl_momentum));
    put(s, &bad, "usl_horizon", json_integer(so->usl_horizon));
  }
  if (scores_hash) put(s, &bad, "scores", json_string(scores_hash));
  json_t *v = json_array();
  for (size_t i = 0; v && i < n_val; i++) bad |= json_array_append_new(v, json_string(val_ids[i]));
  put(s, &bad, "validation", v);
  if (bad) { /* a member that failed to allocate: all or nothing */
    json_decref(s);
    return NULL;
  }
  return s;
}

/* A value as text for a message (compact, at most about 80 characters). */
static void value_text(const json_t *v, char *buf, size_t cap) {
  char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(9)) : NULL;
  if (!t) {
    snprintf(buf, cap, "%s", v ? "?" : "absent");
    return;
  }
  if (strlen(t) > 80) snprintf(buf, cap, "%.72s...", t);
  else snprintf(buf, cap, "%s", t);
  free(t);
}

/* The first difference between the file's settings and ours, as a message. */
static csal3d_status compare_settings(const char *path, const json_t *there, const json_t *now) {
  char what[512] = "";
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)now, key, v) {
    const json_t *t = json_object_get(there, key);
    if (t && json_equal((json_t *)t, v)) continue;
    if (!strcmp(key, "scores")) {
      snprintf(what, sizeof what, "%s", t ? "the scores differ (another scores file, or the "
               "pool scored again)" : "it holds a single run's results (csal3d_evaluate), not "
               "a comparison's");
    } else if (!strcmp(key, "per_case")) {
      snprintf(what, sizeof what, "its runs have per-case rows %s (the option per_case)",
               json_is_true(t) || json_integer_value(t) ? "and these would not" : "and these "
               "would");
    } else if (!strcmp(key, "validation")) {
      snprintf(what, sizeof what, "the validation cases differ (%zu there, %zu now)",
               json_array_size(t), json_array_size(v));
    } else {
      char a[96], b[96];
      value_text(t, a, sizeof a);
      value_text(v, b, sizeof b);
      snprintf(what, sizeof what, "the option %s is %s there and %s now", key, a, b);
    }
    break;
  }
  if (!what[0] && json_object_size(there) != json_object_size(now))
    snprintf(what, sizeof what, "it records settings this version does not know");
  if (!what[0]) return CSAL3D_OK;
  return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                  "the results file %s holds runs made with other settings: %s; continue it "
                  "with its settings, write to another file, or set the option overwrite to "
                  "start afresh", path, what);
}

/* Numbers of a run: NaN for null. */
static int get_num(const json_t *v, double *out) {
  if (json_is_null(v)) *out = NAN;
  else if (json_is_number(v)) *out = json_number_value(v);
  else return 0;
  return 1;
}

static int get_dice(const json_t *a, int L, double *out) {
  if (!json_is_array(a) || json_array_size(a) != (size_t)L) return 0;
  for (int l = 0; l < L; l++)
    if (!get_num(json_array_get(a, (size_t)l), &out[l])) return 0;
  return 1;
}

/* One run of the file into a csal3d_evaluation; 0 when it is malformed. */
static csal3d_status read_run(const json_t *r, int L, int per_case, csal3d_evaluation **out) {
  const json_t *tr = json_object_get(r, "train_cases"), *cs = json_object_get(r, "cases");
  const json_t *st = json_object_get(r, "strategy"), *seed = json_object_get(r, "seed");
  if (!json_is_object(r) || !json_is_array(tr) || !json_is_string(st) ||
      strlen(json_string_value(st)) >= sizeof((csal3d_evaluation *)0)->strategy ||
      !json_is_integer(json_object_get(r, "budget")) ||
      !json_is_integer(json_object_get(r, "train_seed")) ||
      !(json_is_null(seed) || json_is_integer(seed)) || (per_case && !json_is_array(cs)))
    return CSAL3D_ERR_FORMAT;
  size_t n = per_case ? json_array_size(cs) : 0, nt = json_array_size(tr);
  csal3d_evaluation *ev;
  C3_TRY(c3_evaluation_alloc(n, nt, L, &ev));
  csal3d_status s = CSAL3D_OK;
  snprintf(ev->strategy, sizeof ev->strategy, "%s", json_string_value(st));
  ev->budget = json_integer_value(json_object_get(r, "budget"));
  ev->has_seed = json_is_integer(seed);
  ev->selection_seed = ev->has_seed ? (uint64_t)json_integer_value(seed) : 0;
  ev->train_seed = (uint64_t)json_integer_value(json_object_get(r, "train_seed"));
  ev->iterations = json_integer_value(json_object_get(r, "iterations"));
  if (!get_num(json_object_get(r, "train_seconds"), &ev->train_seconds) ||
      !get_dice(json_object_get(r, "dice"), L, ev->label_mean) ||
      !get_num(json_object_get(r, "mean_dice"), &ev->mean))
    s = CSAL3D_ERR_FORMAT;
  for (size_t i = 0; i < nt && s == CSAL3D_OK; i++, ev->n_train++) {
    const json_t *id = json_array_get(tr, i);
    if (!json_is_string(id)) s = CSAL3D_ERR_FORMAT;
    else if (!(ev->train_ids[i] = c3_strdup(json_string_value(id)))) s = CSAL3D_ERR_OUT_OF_MEMORY;
  }
  for (size_t i = 0; i < n && s == CSAL3D_OK; i++, ev->n++) {
    const json_t *c = json_array_get(cs, i), *id = json_object_get(c, "id");
    if (!json_is_string(id) || !get_dice(json_object_get(c, "dice"), L, ev->dice + i * (size_t)L) ||
        !get_num(json_object_get(c, "mean_dice"), &ev->case_mean[i]))
      s = CSAL3D_ERR_FORMAT;
    else if (!(ev->ids[i] = c3_strdup(json_string_value(id))))
      s = CSAL3D_ERR_OUT_OF_MEMORY;
  }
  if (s != CSAL3D_OK) {
    csal3d_evaluation_free(ev);
    return s;
  }
  *out = ev;
  return CSAL3D_OK;
}

csal3d_status c3_evaluate_resume(const char *path, const json_t *settings,
                                 csal3d_evaluation ***runs_out, size_t *n_out) {
  *runs_out = NULL;
  *n_out = 0;
  json_error_t err;
  json_t *root = json_load_file(path, 0, &err);
  if (!root)
    return c3_error(CSAL3D_ERR_FORMAT, "the results file %s exists and is not JSON (%s, line "
                    "%d): set the option overwrite to replace it", path, err.text, err.line);
  /* ours, as the file holds them (written with the same flags) */
  char *text = json_dumps(settings, C3_EVAL_JSON_FLAGS);
  json_t *now = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  csal3d_status s = CSAL3D_OK;
  const json_t *fmt = json_object_get(root, "format"), *there = json_object_get(root, "settings");
  const json_t *arr = json_object_get(root, "runs"), *labels = json_object_get(root, "labels");
  if (!now) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "evaluation settings");
  else if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "csal3d-evaluation") != 0 ||
           !json_is_array(arr) || !json_is_integer(labels))
    s = c3_error(CSAL3D_ERR_FORMAT, "the results file %s exists and is not a csal3d results "
                 "file: set the option overwrite to replace it", path);
  else if (!json_is_object(there))
    s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "the results file %s records no settings (an "
                 "older csal3d wrote it), so its runs cannot be continued: write to another "
                 "file, or set the option overwrite to start afresh", path);
  else
    s = compare_settings(path, there, now);
  const int L = json_is_integer(labels) ? (int)json_integer_value(labels) : 0;
  const int per_case = (int)json_integer_value(json_object_get(now, "per_case"));
  size_t n = json_array_size(arr), k = 0;
  csal3d_evaluation **runs = NULL;
  if (s == CSAL3D_OK && (L < 1 || L > 64))
    s = c3_error(CSAL3D_ERR_FORMAT, "the results file %s: labels %d", path, L);
  if (s == CSAL3D_OK)
    s = c3_calloc_array(n ? n : 1, sizeof *runs, "earlier runs", (void **)&runs);
  for (; k < n && s == CSAL3D_OK; k++) {
    s = read_run(json_array_get(arr, k), L, per_case, &runs[k]);
    if (s == CSAL3D_ERR_FORMAT)
      s = c3_error(s, "the results file %s: run %zu is malformed: set the option overwrite to "
                   "replace the file", path, k + 1);
  }
  json_decref(now);
  json_decref(root);
  if (s != CSAL3D_OK) {
    for (size_t i = 0; i < k; i++) csal3d_evaluation_free(runs ? runs[i] : NULL);
    c3_free(runs);
    return s;
  }
  *runs_out = runs;
  *n_out = n;
  return CSAL3D_OK;
}

csal3d_status c3_evaluate_check_csv(const char *path) {
  static const char head[] = "strategy,budget,seed,train_seed,case,";
  char line[sizeof head] = "";
  FILE *f = fopen(path, "r");
  size_t got = f ? fread(line, 1, sizeof head - 1, f) : 0;
  if (f) fclose(f);
  if (got == sizeof head - 1 && !memcmp(line, head, sizeof head - 1)) return CSAL3D_OK;
  return c3_error(CSAL3D_ERR_IO, "the results CSV %s exists and is not a csal3d results file: "
                  "set the option overwrite to replace it", path);
}
