/* Sharded scoring: the shard tables of one run (csal3d_score_options.shard_count) joined
 * back into the table a single run makes (include/csal3d/pipeline.h). A shard holds the
 * cases at positions p = I-1, I-1+N, ... of the run's whole case list; its metadata says
 * which shard it is ("shard" = "I/N"), how long the whole list is ("shard_cases"), the
 * list's checksum ("shard_case_list") and where its skipped cases were
 * ("shard_skipped_positions"). Everything else in the metadata is the run's settings and
 * must be the same in every shard. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "pipeline/outputs.h"
#include "pipeline/score.h"
#include "pipeline/scores.h"

uint32_t c3_case_list_crc(uint32_t crc, const char *id) {
  return (uint32_t)crc32_z(crc, (const Bytef *)id, strlen(id) + 1);
}

csal3d_status c3_skipped_cases_text(const c3_skip *k, size_t n, char **text) {
  *text = NULL;
  json_t *arr = json_array();
  int bad = arr == NULL;
  for (size_t i = 0; !bad && i < n; i++) {
    json_t *e = json_object();
    bad = !e || json_object_set_new(e, "id", json_string(k[i].id)) != 0 ||
          json_object_set_new(e, "error", json_string(k[i].error)) != 0 ||
          json_array_append_new(arr, e) != 0;
  }
  if (!bad) *text = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(arr);
  return *text ? CSAL3D_OK : c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
}

/* The metadata that is a shard's own, not the run's settings. */
static int c3_shard_key(const char *k) {
  return !strcmp(k, "shard") || !strcmp(k, "shard_skipped_positions") ||
         !strcmp(k, "skipped_cases");
}

typedef struct c3_shard {
  const csal3d_scores *t;
  const char *name;
  size_t index, count; /* 0-based index of count */
  size_t nskip;
  c3_skip *skips;      /* borrowed strings from the JSON below */
  json_t *skipped;
  size_t next;         /* the next table row to take */
} c3_shard;

/* "I/N" with 1 <= I <= N, N >= 2. */
static int c3_parse_shard(const char *v, size_t *index, size_t *count) {
  char *end;
  errno = 0;
  unsigned long long i = strtoull(v, &end, 10);
  if (end == v || *end != '/' || errno) return -1;
  const char *q = end + 1;
  unsigned long long n = strtoull(q, &end, 10);
  if (end == q || *end || errno || n < 2 || i < 1 || i > n || n > SIZE_MAX) return -1;
  *index = (size_t)i - 1;
  *count = (size_t)n;
  return 0;
}

/* The shard's skipped cases with their positions (checked against the shard's share of
 * a list of m cases). */
static csal3d_status c3_shard_skips(c3_shard *s, size_t m) {
  const char *text = c3_scores_meta(s->t, "skipped_cases");
  const char *pos = c3_scores_meta(s->t, "shard_skipped_positions");
  if (!text && !pos) return CSAL3D_OK;
  json_t *p = pos ? json_loads(pos, 0, NULL) : NULL;
  s->skipped = text ? json_loads(text, 0, NULL) : NULL;
  size_t n = json_array_size(s->skipped);
  csal3d_status st = CSAL3D_OK;
  if (!json_is_array(s->skipped) || !json_is_array(p) || json_array_size(p) != n)
    st = c3_error(CSAL3D_ERR_FORMAT, "%s: the metadata skipped_cases and "
                  "shard_skipped_positions do not match", s->name);
  if (st == CSAL3D_OK && n)
    st = c3_calloc_array(n, sizeof *s->skips, "skipped cases", (void **)&s->skips);
  for (size_t i = 0; st == CSAL3D_OK && i < n; i++) {
    json_t *e = json_array_get(s->skipped, i), *q = json_array_get(p, i);
    const char *id = json_string_value(json_object_get(e, "id"));
    const char *err = json_string_value(json_object_get(e, "error"));
    json_int_t at = json_is_integer(q) ? json_integer_value(q) : -1;
    if (!id || !err || at < 0 || (size_t)at >= m || (size_t)at % s->count != s->index ||
        (i && (size_t)at <= s->skips[i - 1].position)) {
      st = c3_error(CSAL3D_ERR_FORMAT, "%s: skipped case %zu: not an id, an error and a "
                    "position of shard %zu/%zu in increasing order", s->name, i,
                    s->index + 1, s->count);
      break;
    }
    s->skips[i] = (c3_skip){(char *)id, (char *)err, (size_t)at};
    s->nskip = i + 1;
  }
  json_decref(p);
  return st;
}

/* Every setting of shard b as in shard a, else the first that differs, named. */
static csal3d_status c3_shard_same_settings(const c3_shard *a, const c3_shard *b) {
  for (int pass = 0; pass < 2; pass++) {
    const c3_shard *x = pass ? b : a, *y = pass ? a : b;
    for (size_t i = 0; i < c3_scores_meta_count(x->t); i++) {
      const char *k, *v;
      c3_scores_meta_at(x->t, i, &k, &v);
      if (c3_shard_key(k)) continue;
      const char *w = c3_scores_meta(y->t, k);
      if (w && !strcmp(v, w)) continue;
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                      "%s (shard %zu/%zu) and %s (shard %zu/%zu) differ in %s: '%.200s' "
                      "against '%.200s'; the shards of one run are made with the same "
                      "checkpoint, dataset and options", x->name, x->index + 1, x->count,
                      y->name, y->index + 1, y->count, k, v, w ? w : "(absent)");
    }
  }
  int64_t da, db;
  csal3d_scores_size(a->t, NULL, &da);
  csal3d_scores_size(b->t, NULL, &db);
  if (da != db)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s and %s hold features of %" PRId64
                    " and %" PRId64 " values", a->name, b->name, da, db);
  return CSAL3D_OK;
}

/* Copies row i of t into row k of out (id, paths, score, feature, map). */
static csal3d_status c3_copy_case(const csal3d_scores *t, int64_t i, csal3d_scores *out,
                                  int64_t k) {
  const char *imgs[C3_SCORES_MAX_IMAGES];
  int ni = c3_scores_image_count(t, i);
  for (int j = 0; j < ni; j++) imgs[j] = c3_scores_image(t, i, j);
  C3_TRY(csal3d_scores_set_case(out, k, c3_scores_id(t, i), imgs, ni, c3_scores_label(t, i),
                                c3_scores_score(t, i), c3_scores_feature(t, i)));
  const char *map = c3_scores_map(t, i);
  return map ? csal3d_scores_set_case_map(out, k, map) : CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_scores_merge(const csal3d_scores *const *shards,
                                             const char *const *names, size_t count,
                                             csal3d_scores **out) {
  C3_CHECK_ARG(out, "csal3d_scores_merge: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(shards && count >= 1, "csal3d_scores_merge: no shards");
  for (size_t i = 0; i < count; i++)
    C3_CHECK_ARG(shards[i], "csal3d_scores_merge: shard table %zu is NULL", i);
  c3_shard *sh = NULL, **slot = NULL;
  char (*fallback)[48] = NULL;
  csal3d_scores *t = NULL;
  c3_skip *skips = NULL;
  csal3d_status st = c3_calloc_array(count, sizeof *sh, "shards", (void **)&sh);
  if (st == CSAL3D_OK) st = c3_calloc_array(count, sizeof *fallback, "names", (void **)&fallback);
  for (size_t i = 0; st == CSAL3D_OK && i < count; i++) {
    c3_shard *s = &sh[i];
    s->t = shards[i];
    if (names && names[i]) {
      s->name = names[i];
    } else {
      snprintf(fallback[i], sizeof fallback[i], "shard table %zu", i);
      s->name = fallback[i];
    }
    const char *v = c3_scores_meta(s->t, "shard");
    if (!v)
      st = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s is not a shard (no metadata \"shard\"): "
                    "it was scored whole, without the option shard_count", s->name);
    else if (c3_parse_shard(v, &s->index, &s->count) != 0)
      st = c3_error(CSAL3D_ERR_FORMAT, "%s: metadata shard = '%.40s' is not I/N", s->name, v);
    else if (s->count != sh[0].count)
      st = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s is shard %zu/%zu but %s is shard "
                    "%zu/%zu: shards of runs cut in different numbers of shards", s->name,
                    s->index + 1, s->count, sh[0].name, sh[0].index + 1, sh[0].count);
  }
  const size_t n = st == CSAL3D_OK ? sh[0].count : 0;
  if (st == CSAL3D_OK) st = c3_calloc_array(n, sizeof *slot, "shards", (void **)&slot);
  for (size_t i = 0; st == CSAL3D_OK && i < count; i++) {
    c3_shard *s = &sh[i];
    if (slot[s->index])
      st = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "shard %zu/%zu is given twice: %s and %s",
                    s->index + 1, n, slot[s->index]->name, s->name);
    else
      slot[s->index] = s;
  }
  for (size_t k = 0; st == CSAL3D_OK && k < n; k++)
    if (!slot[k]) {
      char have[256] = "";
      size_t len = 0;
      for (size_t j = 0; j < n && len < sizeof have - 16; j++)
        if (slot[j])
          len += (size_t)snprintf(have + len, sizeof have - len, "%s%zu/%zu", len ? ", " : "",
                                  j + 1, n);
      st = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "shard %zu/%zu is missing (given: %s); "
                    "merge all %zu shards of the run", k + 1, n, have, n);
    }
  for (size_t k = 1; st == CSAL3D_OK && k < n; k++)
    st = c3_shard_same_settings(slot[0], slot[k]);
  /* the whole list: its length, then each shard's share and skipped cases */
  size_t m = 0;
  if (st == CSAL3D_OK) {
    const char *v = c3_scores_meta(slot[0]->t, "shard_cases");
    char *end = NULL;
    unsigned long long x = v ? strtoull(v, &end, 10) : 0;
    if (!v || end == v || *end || x < n || x > (unsigned long long)INT64_MAX)
      st = c3_error(CSAL3D_ERR_FORMAT, "%s: metadata shard_cases = '%.40s' is not a number "
                    "of cases >= %zu", slot[0]->name, v ? v : "(absent)", n);
    m = (size_t)x;
  }
  size_t kept = 0, nskips = 0;
  for (size_t k = 0; st == CSAL3D_OK && k < n; k++) {
    c3_shard *s = slot[k];
    st = c3_shard_skips(s, m);
    size_t share = (m - k + n - 1) / n;
    int64_t rows;
    csal3d_scores_size(s->t, &rows, NULL);
    if (st == CSAL3D_OK && (size_t)rows + s->nskip != share)
      st = c3_error(CSAL3D_ERR_FORMAT, "%s: shard %zu/%zu of %zu cases should hold %zu cases "
                    "(scored or skipped), it holds %" PRId64 " and %zu skipped", s->name,
                    k + 1, n, m, share, rows, s->nskip);
    kept += (size_t)rows;
    nskips += s->nskip;
  }
  int64_t d = 0;
  if (st == CSAL3D_OK) csal3d_scores_size(slot[0]->t, NULL, &d);
  if (st == CSAL3D_OK) st = csal3d_scores_create((int64_t)kept, d, &t);
  if (st == CSAL3D_OK && nskips)
    st = c3_alloc_array(nskips, sizeof *skips, "skipped cases", (void **)&skips);
  /* back into list order: position p is shard p mod N's next case or skipped case */
  uint32_t crc = 0;
  size_t row = 0, sk = 0;
  size_t *skip_at = NULL;
  if (st == CSAL3D_OK) st = c3_calloc_array(n, sizeof *skip_at, "shards", (void **)&skip_at);
  for (size_t p = 0; st == CSAL3D_OK && p < m; p++) {
    c3_shard *s = slot[p % n];
    size_t *j = &skip_at[p % n];
    if (*j < s->nskip && s->skips[*j].position == p) {
      skips[sk++] = s->skips[(*j)++];
      crc = c3_case_list_crc(crc, skips[sk - 1].id);
      continue;
    }
    st = c3_copy_case(s->t, (int64_t)s->next, t, (int64_t)row);
    if (st == CSAL3D_OK) crc = c3_case_list_crc(crc, c3_scores_id(s->t, (int64_t)s->next));
    s->next++;
    row++;
  }
  if (st == CSAL3D_OK) {
    char want[32];
    snprintf(want, sizeof want, "crc32:%08" PRIx32, crc);
    const char *have = c3_scores_meta(slot[0]->t, "shard_case_list");
    if (!have || strcmp(have, want))
      st = c3_error(CSAL3D_ERR_FORMAT, "the shards' cases do not make up the case list they "
                    "were cut from (its checksum is %.40s, theirs %s): a shard was changed "
                    "or scored from another list", have ? have : "(absent)", want);
  }
  /* the run's settings in their order, then the skipped cases */
  for (size_t i = 0; st == CSAL3D_OK && i < c3_scores_meta_count(slot[0]->t); i++) {
    const char *k, *v;
    c3_scores_meta_at(slot[0]->t, i, &k, &v);
    if (!c3_shard_key(k) && strncmp(k, "shard_", 6)) st = csal3d_scores_set_metadata(t, k, v);
  }
  if (st == CSAL3D_OK && nskips) {
    char *text = NULL;
    st = c3_skipped_cases_text(skips, nskips, &text);
    if (st == CSAL3D_OK) st = csal3d_scores_set_metadata(t, "skipped_cases", text);
    free(text);
  }
  for (size_t i = 0; sh && i < count; i++) {
    c3_free(sh[i].skips);
    json_decref(sh[i].skipped);
  }
  c3_free(skip_at);
  c3_free(skips);
  c3_free(slot);
  c3_free(fallback);
  c3_free(sh);
  if (st != CSAL3D_OK) {
    csal3d_scores_free(t);
    return st;
  }
  *out = t;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_scores_merge_files(const char *const *paths, size_t count,
                                                   const char *output, int overwrite,
                                                   csal3d_scores **out) {
  if (out) *out = NULL;
  C3_CHECK_ARG(paths && count >= 1, "csal3d_scores_merge_files: no shard files");
  C3_CHECK_ARG(output && *output, "csal3d_scores_merge_files: no output");
  for (size_t i = 0; i < count; i++)
    C3_CHECK_ARG(paths[i] && *paths[i], "csal3d_scores_merge_files: shard file %zu is empty",
                 i);
  C3_TRY(c3_output_check(output, CSAL3D_OUTPUT_FILE, "the merged scores file",
                         (const char *const *)paths, count, overwrite));
  csal3d_scores **t;
  C3_TRY(c3_calloc_array(count, sizeof *t, "shards", (void **)&t));
  csal3d_status st = CSAL3D_OK;
  for (size_t i = 0; st == CSAL3D_OK && i < count; i++) st = csal3d_scores_load(paths[i], &t[i]);
  csal3d_scores *merged = NULL;
  if (st == CSAL3D_OK)
    st = csal3d_scores_merge((const csal3d_scores *const *)t, paths, count, &merged);
  if (st == CSAL3D_OK) st = csal3d_scores_save(merged, output);
  for (size_t i = 0; i < count; i++) csal3d_scores_free(t[i]);
  c3_free(t);
  if (st != CSAL3D_OK || !out) csal3d_scores_free(merged);
  else *out = merged;
  return st;
}
