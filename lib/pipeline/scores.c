/* The scores file: features, scores and case paths of a scored dataset, as safetensors
 * (format in include/csal3d/manifest.h). */
#include "pipeline/scores.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/fileutil.h"
#include "io/safetensors.h"

typedef struct c3_scase {
  char *id;
  char **images;
  int nimages;
  char *label; /* NULL: none */
  char *map;   /* NULL: none */
  int set;
} c3_scase;

typedef struct c3_skv {
  char *key, *value;
} c3_skv;

struct csal3d_scores {
  int64_t n, d;
  float *features; /* n x d */
  float *scores;   /* n */
  c3_scase *cases; /* n */
  c3_skv *meta;
  size_t nmeta, capmeta;
};

static const char *const c3_scores_reserved[] = {"format", "format_version", "cases",
                                                 "checksum", NULL};

/* ---- small helpers ---- */

static csal3d_status c3_copy_out(const char *s, char *buffer, size_t capacity,
                                 size_t *needed, const char *what) {
  size_t n = strlen(s) + 1;
  if (needed) *needed = n;
  if (!buffer && capacity == 0) return CSAL3D_OK;
  C3_CHECK_ARG(buffer != NULL, "%s: NULL buffer with capacity %zu", what, capacity);
  if (capacity < n) {
    if (capacity) buffer[0] = '\0';
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL, "%s: needs %zu bytes, the buffer has %zu",
                    what, n, capacity);
  }
  memcpy(buffer, s, n);
  return CSAL3D_OK;
}

static void c3_scase_clear(c3_scase *c) {
  c3_free(c->id);
  for (int k = 0; k < c->nimages; k++) c3_free(c->images[k]);
  c3_free(c->images);
  c3_free(c->label);
  c3_free(c->map);
  memset(c, 0, sizeof *c);
}

static int c3_is_reserved(const char *key) {
  for (size_t i = 0; c3_scores_reserved[i]; i++)
    if (strcmp(key, c3_scores_reserved[i]) == 0) return 1;
  return 0;
}

const char *c3_case_id_problem(const char *id) {
  if (!id || !*id) return "is empty";
  for (const unsigned char *p = (const unsigned char *)id; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return "holds a control character";
  for (const char *p = id;;) {
    const char *e = strchr(p, '/');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
      return "has an empty, '.' or '..' part between '/'";
    if (!e) return NULL;
    p = e + 1;
  }
}

static int c3_id_ok(const char *id) { return c3_case_id_problem(id) == NULL; }

/* ---- creation and access ---- */

CSAL3D_API csal3d_status csal3d_scores_create(int64_t n, int64_t d, csal3d_scores **out) {
  C3_CHECK_ARG(out != NULL, "csal3d_scores_create: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(n >= 1, "csal3d_scores_create: n = %" PRId64 " (must be >= 1)", n);
  C3_CHECK_ARG(d >= 1, "csal3d_scores_create: d = %" PRId64 " (must be >= 1)", d);
  size_t nd;
  if ((uint64_t)n > SIZE_MAX / 4 || (uint64_t)d > SIZE_MAX / 4 ||
      c3_mul_size((size_t)n, (size_t)d, &nd) != 0)
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "scores: %" PRId64 " x %" PRId64
                    " features do not fit in memory", n, d);
  csal3d_scores *s;
  C3_TRY(c3_calloc_array(1, sizeof *s, "scores", (void **)&s));
  s->n = n;
  s->d = d;
  csal3d_status st = c3_calloc_array(nd, sizeof(float), "scores features", (void **)&s->features);
  if (st == CSAL3D_OK)
    st = c3_calloc_array((size_t)n, sizeof(float), "scores", (void **)&s->scores);
  if (st == CSAL3D_OK)
    st = c3_calloc_array((size_t)n, sizeof(c3_scase), "scores cases", (void **)&s->cases);
  if (st != CSAL3D_OK) {
    csal3d_scores_free(s);
    return st;
  }
  *out = s;
  return CSAL3D_OK;
}

CSAL3D_API void csal3d_scores_free(csal3d_scores *s) {
  if (!s) return;
  if (s->cases)
    for (int64_t i = 0; i < s->n; i++) c3_scase_clear(&s->cases[i]);
  for (size_t i = 0; i < s->nmeta; i++) {
    c3_free(s->meta[i].key);
    c3_free(s->meta[i].value);
  }
  c3_free(s->meta);
  c3_free(s->cases);
  c3_free(s->features);
  c3_free(s->scores);
  c3_free(s);
}

CSAL3D_API csal3d_status csal3d_scores_size(const csal3d_scores *s, int64_t *n, int64_t *d) {
  C3_CHECK_ARG(s != NULL, "csal3d_scores_size: scores is NULL");
  if (n) *n = s->n;
  if (d) *d = s->d;
  return CSAL3D_OK;
}

static csal3d_status c3_check_index(const csal3d_scores *s, int64_t index, const char *fn) {
  C3_CHECK_ARG(s != NULL, "%s: scores is NULL", fn);
  C3_CHECK_ARG(index >= 0 && index < s->n, "%s: case %" PRId64 " out of range (%" PRId64
               " cases)", fn, index, s->n);
  return CSAL3D_OK;
}

/* Absolute copy of a path, or NULL for NULL/"" (then *out = NULL, OK). */
static csal3d_status c3_abs_or_null(const char *p, char **out) {
  *out = NULL;
  if (!p || !*p) return CSAL3D_OK;
  return c3_path_absolute(p, out);
}

CSAL3D_API csal3d_status csal3d_scores_set_case(csal3d_scores *s, int64_t index,
                                                const char *id, const char *const *images,
                                                int image_count, const char *label,
                                                float score, const float *feature) {
  C3_TRY(c3_check_index(s, index, "csal3d_scores_set_case"));
  C3_CHECK_ARG(c3_id_ok(id), "csal3d_scores_set_case: case %" PRId64 ": the id '%s' %s",
               index, id ? id : "(null)", c3_case_id_problem(id));
  C3_CHECK_ARG(images && image_count >= 1 && image_count <= C3_SCORES_MAX_IMAGES,
               "csal3d_scores_set_case: case '%s': %d image files (1 to %d)", id, image_count,
               C3_SCORES_MAX_IMAGES);
  for (int k = 0; k < image_count; k++)
    C3_CHECK_ARG(images[k] && *images[k], "csal3d_scores_set_case: case '%s': image %d is empty",
                 id, k);
  C3_CHECK_ARG(feature != NULL, "csal3d_scores_set_case: case '%s': feature is NULL", id);
  if (!isfinite(score))
    return c3_error(CSAL3D_ERR_NUMERICAL, "case '%s': the score is %g (must be finite)", id,
                    (double)score);
  for (int64_t j = 0; j < s->d; j++)
    if (!isfinite(feature[j]))
      return c3_error(CSAL3D_ERR_NUMERICAL, "case '%s': feature element %" PRId64
                      " is %g (must be finite)", id, j, (double)feature[j]);
  c3_scase c;
  memset(&c, 0, sizeof c);
  csal3d_status st = CSAL3D_OK;
  c.id = c3_strdup(id);
  if (!c.id) st = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  if (st == CSAL3D_OK)
    st = c3_calloc_array((size_t)image_count, sizeof(char *), "image paths", (void **)&c.images);
  for (int k = 0; st == CSAL3D_OK && k < image_count; k++) {
    st = c3_path_absolute(images[k], &c.images[k]);
    if (st == CSAL3D_OK) c.nimages = k + 1;
  }
  if (st == CSAL3D_OK) st = c3_abs_or_null(label, &c.label);
  if (st != CSAL3D_OK) {
    c3_scase_clear(&c);
    return st;
  }
  /* Keep a map set earlier for this case. */
  c.map = s->cases[index].map;
  s->cases[index].map = NULL;
  c3_scase_clear(&s->cases[index]);
  c.set = 1;
  s->cases[index] = c;
  s->scores[index] = score;
  memcpy(s->features + (size_t)index * (size_t)s->d, feature, (size_t)s->d * sizeof(float));
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_scores_set_case_from_dataset(csal3d_scores *s, int64_t index,
                                                             const csal3d_dataset *ds,
                                                             size_t case_index, float score,
                                                             const float *feature) {
  C3_TRY(c3_check_index(s, index, "csal3d_scores_set_case_from_dataset"));
  C3_CHECK_ARG(ds != NULL, "csal3d_scores_set_case_from_dataset: dataset is NULL");
  int nimg = 0, has_label = 0;
  C3_TRY(csal3d_dataset_case_info(ds, case_index, &nimg, &has_label));
  C3_CHECK_ARG(nimg >= 1 && nimg <= C3_SCORES_MAX_IMAGES,
               "dataset case %zu has %d image files (1 to %d)", case_index, nimg,
               C3_SCORES_MAX_IMAGES);
  char *strs[C3_SCORES_MAX_IMAGES + 2];
  memset(strs, 0, sizeof strs);
  csal3d_status st = CSAL3D_OK;
  /* strs[0] id, strs[1] label, strs[2..] images */
  for (int k = 0; st == CSAL3D_OK && k < nimg + 2; k++) {
    char what[32];
    if (k == 0) snprintf(what, sizeof what, "id");
    else if (k == 1) snprintf(what, sizeof what, "label");
    else snprintf(what, sizeof what, "image:%d", k - 2);
    size_t need = 0;
    st = csal3d_dataset_case_string(ds, case_index, what, NULL, 0, &need);
    if (st == CSAL3D_OK) st = c3_alloc(need ? need : 1, "string", (void **)&strs[k]);
    if (st == CSAL3D_OK) st = csal3d_dataset_case_string(ds, case_index, what, strs[k], need, &need);
  }
  if (st == CSAL3D_OK)
    st = csal3d_scores_set_case(s, index, strs[0], (const char *const *)(strs + 2), nimg,
                                has_label ? strs[1] : NULL, score, feature);
  for (int k = 0; k < nimg + 2; k++) c3_free(strs[k]);
  return st;
}

CSAL3D_API csal3d_status csal3d_scores_set_case_map(csal3d_scores *s, int64_t index,
                                                    const char *map_path) {
  C3_TRY(c3_check_index(s, index, "csal3d_scores_set_case_map"));
  char *p;
  C3_TRY(c3_abs_or_null(map_path, &p));
  c3_free(s->cases[index].map);
  s->cases[index].map = p;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_scores_case_string(const csal3d_scores *s, int64_t index,
                                                   const char *what, char *buffer,
                                                   size_t capacity, size_t *needed) {
  C3_TRY(c3_check_index(s, index, "csal3d_scores_case_string"));
  C3_CHECK_ARG(what != NULL, "csal3d_scores_case_string: what is NULL");
  const c3_scase *c = &s->cases[index];
  if (!c->set) return c3_error(CSAL3D_ERR_STATE, "scores: case %" PRId64 " is not set", index);
  const char *v = NULL;
  if (strcmp(what, "id") == 0) v = c->id;
  else if (strcmp(what, "image") == 0) v = c->images[0];
  else if (strcmp(what, "label") == 0) v = c->label ? c->label : "";
  else if (strcmp(what, "map") == 0) v = c->map ? c->map : "";
  else if (strncmp(what, "image:", 6) == 0) {
    char *end;
    long k = strtol(what + 6, &end, 10);
    C3_CHECK_ARG(*end == '\0' && end != what + 6 && k >= 0 && k < c->nimages,
                 "csal3d_scores_case_string: '%s': case '%s' has %d image files", what, c->id,
                 c->nimages);
    v = c->images[k];
  } else {
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "csal3d_scores_case_string: unknown field "
                    "'%s' (id, image, image:N, label, map)", what);
  }
  return c3_copy_out(v, buffer, capacity, needed, "csal3d_scores_case_string");
}

CSAL3D_API csal3d_status csal3d_scores_case_info(const csal3d_scores *s, int64_t index,
                                                 int *image_files, int *has_label) {
  C3_TRY(c3_check_index(s, index, "csal3d_scores_case_info"));
  const c3_scase *c = &s->cases[index];
  if (!c->set) return c3_error(CSAL3D_ERR_STATE, "scores: case %" PRId64 " is not set", index);
  if (image_files) *image_files = c->nimages;
  if (has_label) *has_label = c->label != NULL;
  return CSAL3D_OK;
}

csal3d_status c3_scores_check_complete(const csal3d_scores *s) {
  for (int64_t i = 0; i < s->n; i++)
    if (!s->cases[i].set)
      return c3_error(CSAL3D_ERR_STATE, "scores: case %" PRId64 " of %" PRId64
                      " is not set", i, s->n);
  return CSAL3D_OK;
}

static csal3d_status c3_copy_floats(const csal3d_scores *s, const float *src, size_t count,
                                    float *buffer, size_t capacity, size_t *needed,
                                    const char *fn) {
  C3_CHECK_ARG(s != NULL, "%s: scores is NULL", fn);
  if (needed) *needed = count;
  if (!buffer && capacity == 0) return CSAL3D_OK;
  C3_TRY(c3_scores_check_complete(s));
  C3_CHECK_ARG(buffer != NULL, "%s: NULL buffer with capacity %zu", fn, capacity);
  if (capacity < count)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL, "%s: needs %zu floats, the buffer has %zu",
                    fn, count, capacity);
  memcpy(buffer, src, count * sizeof(float));
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_scores_copy_scores(const csal3d_scores *s, float *buffer,
                                                   size_t capacity, size_t *needed) {
  C3_CHECK_ARG(s != NULL, "csal3d_scores_copy_scores: scores is NULL");
  return c3_copy_floats(s, s->scores, (size_t)s->n, buffer, capacity, needed,
                        "csal3d_scores_copy_scores");
}

CSAL3D_API csal3d_status csal3d_scores_copy_features(const csal3d_scores *s, float *buffer,
                                                     size_t capacity, size_t *needed) {
  C3_CHECK_ARG(s != NULL, "csal3d_scores_copy_features: scores is NULL");
  return c3_copy_floats(s, s->features, (size_t)s->n * (size_t)s->d, buffer, capacity,
                        needed, "csal3d_scores_copy_features");
}

/* ---- metadata ---- */

static int c3_utf8_ok(const char *s) {
  json_t *j = json_string(s);
  int ok = j != NULL;
  json_decref(j);
  return ok;
}

static ssize_t c3_meta_find(const csal3d_scores *s, const char *key) {
  for (size_t i = 0; i < s->nmeta; i++)
    if (strcmp(s->meta[i].key, key) == 0) return (ssize_t)i;
  return -1;
}

/* Sets without the reserved-key check (used by the loader too). */
static csal3d_status c3_meta_set(csal3d_scores *s, const char *key, const char *value) {
  ssize_t at = c3_meta_find(s, key);
  if (!value) {
    if (at >= 0) {
      c3_free(s->meta[at].key);
      c3_free(s->meta[at].value);
      memmove(s->meta + at, s->meta + at + 1, (s->nmeta - (size_t)at - 1) * sizeof *s->meta);
      s->nmeta--;
    }
    return CSAL3D_OK;
  }
  char *v = c3_strdup(value);
  if (!v) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  if (at >= 0) {
    c3_free(s->meta[at].value);
    s->meta[at].value = v;
    return CSAL3D_OK;
  }
  if (s->nmeta == s->capmeta) {
    size_t cap = s->capmeta ? 2 * s->capmeta : 8;
    c3_skv *m;
    csal3d_status st = c3_alloc_array(cap, sizeof *m, "metadata", (void **)&m);
    if (st != CSAL3D_OK) {
      c3_free(v);
      return st;
    }
    if (s->nmeta) memcpy(m, s->meta, s->nmeta * sizeof *m);
    c3_free(s->meta);
    s->meta = m;
    s->capmeta = cap;
  }
  char *k = c3_strdup(key);
  if (!k) {
    c3_free(v);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  }
  s->meta[s->nmeta].key = k;
  s->meta[s->nmeta].value = v;
  s->nmeta++;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_scores_set_metadata(csal3d_scores *s, const char *key,
                                                    const char *value) {
  C3_CHECK_ARG(s && key, "csal3d_scores_set_metadata: NULL argument");
  C3_CHECK_ARG(*key && strlen(key) <= C3_ST_MAX_NAME && c3_utf8_ok(key),
               "csal3d_scores_set_metadata: keys are 1 to %d bytes of UTF-8", C3_ST_MAX_NAME);
  C3_CHECK_ARG(!c3_is_reserved(key), "csal3d_scores_set_metadata: the key '%s' is reserved",
               key);
  C3_CHECK_ARG(!value || c3_utf8_ok(value),
               "csal3d_scores_set_metadata: the value of '%s' is not UTF-8", key);
  return c3_meta_set(s, key, value);
}

CSAL3D_API csal3d_status csal3d_scores_get_metadata(const csal3d_scores *s, const char *key,
                                                    char *buffer, size_t capacity,
                                                    size_t *needed) {
  C3_CHECK_ARG(s && key, "csal3d_scores_get_metadata: NULL argument");
  ssize_t at = c3_meta_find(s, key);
  if (at < 0) {
    if (needed) *needed = 0;
    if (buffer && capacity) buffer[0] = '\0';
    return CSAL3D_OK;
  }
  return c3_copy_out(s->meta[at].value, buffer, capacity, needed,
                     "csal3d_scores_get_metadata");
}

CSAL3D_API csal3d_status csal3d_scores_metadata_json(const csal3d_scores *s, char *buffer,
                                                     size_t capacity, size_t *needed) {
  C3_CHECK_ARG(s != NULL, "csal3d_scores_metadata_json: scores is NULL");
  json_t *o = json_object();
  if (!o) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  for (size_t i = 0; i < s->nmeta; i++)
    if (json_object_set_new(o, s->meta[i].key, json_string(s->meta[i].value)) != 0) {
      json_decref(o);
      return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    }
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(o);
  if (!text) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  csal3d_status st = c3_copy_out(text, buffer, capacity, needed, "csal3d_scores_metadata_json");
  free(text);
  return st;
}

const char *c3_scores_meta(const csal3d_scores *s, const char *key) {
  ssize_t at = c3_meta_find(s, key);
  return at < 0 ? NULL : s->meta[at].value;
}
size_t c3_scores_meta_count(const csal3d_scores *s) { return s->nmeta; }
void c3_scores_meta_at(const csal3d_scores *s, size_t i, const char **key, const char **value) {
  *key = s->meta[i].key;
  *value = s->meta[i].value;
}
const char *c3_scores_id(const csal3d_scores *s, int64_t i) { return s->cases[i].id; }
int c3_scores_image_count(const csal3d_scores *s, int64_t i) { return s->cases[i].nimages; }
const char *c3_scores_image(const csal3d_scores *s, int64_t i, int k) {
  return s->cases[i].images[k];
}
const char *c3_scores_label(const csal3d_scores *s, int64_t i) { return s->cases[i].label; }
const char *c3_scores_map(const csal3d_scores *s, int64_t i) { return s->cases[i].map; }
int64_t c3_scores_n(const csal3d_scores *s) { return s->n; }
float c3_scores_score(const csal3d_scores *s, int64_t i) { return s->scores[i]; }
const float *c3_scores_feature(const csal3d_scores *s, int64_t i) {
  return s->features + (size_t)i * (size_t)s->d;
}

/* ---- unique ids ---- */

typedef struct c3_idref {
  const char *id;
  int64_t index;
} c3_idref;

static int c3_idref_cmp(const void *a, const void *b) {
  const c3_idref *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  return c ? c : (x->index < y->index ? -1 : x->index > y->index);
}

static csal3d_status c3_check_unique(const csal3d_scores *s, const char *source,
                                     csal3d_status code) {
  c3_idref *r;
  C3_TRY(c3_alloc_array((size_t)s->n, sizeof *r, "case ids", (void **)&r));
  for (int64_t i = 0; i < s->n; i++) r[i] = (c3_idref){s->cases[i].id, i};
  qsort(r, (size_t)s->n, sizeof *r, c3_idref_cmp);
  csal3d_status st = CSAL3D_OK;
  for (int64_t i = 1; i < s->n; i++)
    if (strcmp(r[i - 1].id, r[i].id) == 0) {
      st = c3_error(code, "%s: cases %" PRId64 " and %" PRId64 " have the same id '%s'",
                    source, r[i - 1].index, r[i].index, r[i].id);
      break;
    }
  c3_free(r);
  return st;
}

/* ---- checksum: CRC-32 of the data section, then every other metadata key\0value\0
 * in key order ---- */

typedef struct c3_ckv {
  const char *k, *v;
} c3_ckv;

static int c3_ckv_cmp(const void *a, const void *b) {
  return strcmp(((const c3_ckv *)a)->k, ((const c3_ckv *)b)->k);
}

static uint32_t c3_scores_crc(uint32_t data_crc, c3_ckv *kv, size_t n) {
  qsort(kv, n, sizeof *kv, c3_ckv_cmp);
  uLong crc = data_crc;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(kv[i].k, "checksum") == 0) continue;
    size_t lk = strlen(kv[i].k) + 1, lv = strlen(kv[i].v) + 1;
    crc = crc32_z(crc, (const Bytef *)kv[i].k, lk);
    crc = crc32_z(crc, (const Bytef *)kv[i].v, lv);
  }
  return (uint32_t)crc;
}

/* ---- saving ---- */

static json_t *c3_case_json(const c3_scase *c) {
  json_t *o = json_object(), *imgs = json_array();
  int bad = !o || !imgs;
  if (!bad) bad |= json_object_set_new(o, "id", json_string(c->id)) != 0;
  for (int k = 0; !bad && k < c->nimages; k++)
    bad |= json_array_append_new(imgs, json_string(c->images[k])) != 0;
  if (!bad) {
    bad |= json_object_set_new(o, "images", imgs) != 0;
    imgs = NULL;
  }
  if (!bad)
    bad |= json_object_set_new(o, "label", c->label ? json_string(c->label) : json_null()) != 0;
  if (!bad && c->map) bad |= json_object_set_new(o, "map", json_string(c->map)) != 0;
  json_decref(imgs);
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

CSAL3D_API csal3d_status csal3d_scores_save(const csal3d_scores *s, const char *path) {
  C3_CHECK_ARG(s && path && *path, "csal3d_scores_save: NULL argument");
  C3_TRY(c3_scores_check_complete(s));
  C3_TRY(c3_check_unique(s, path, CSAL3D_ERR_INVALID_ARGUMENT));
  json_t *arr = json_array();
  csal3d_status st = arr ? CSAL3D_OK : c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  for (int64_t i = 0; st == CSAL3D_OK && i < s->n; i++) {
    json_t *c = c3_case_json(&s->cases[i]);
    if (!c || json_array_append_new(arr, c) != 0)
      st = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s: case '%s': a path is not valid UTF-8",
                    path, s->cases[i].id);
  }
  char *cases = NULL;
  if (st == CSAL3D_OK) {
    cases = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!cases) st = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  }
  json_decref(arr);
  c3_st_writer *w = NULL;
  c3_ckv *kv = NULL;
  if (st == CSAL3D_OK) st = c3_st_writer_create(&w);
  int64_t fshape[2] = {s->n, s->d}, sshape[1] = {s->n};
  if (st == CSAL3D_OK) st = c3_st_writer_add(w, "features", C3_ST_F32, 2, fshape, s->features);
  if (st == CSAL3D_OK) st = c3_st_writer_add(w, "scores", C3_ST_F32, 1, sshape, s->scores);
  char version[16];
  snprintf(version, sizeof version, "%d", C3_SCORES_VERSION);
  if (st == CSAL3D_OK) st = c3_st_writer_set_metadata(w, "format", C3_SCORES_FORMAT);
  if (st == CSAL3D_OK) st = c3_st_writer_set_metadata(w, "format_version", version);
  if (st == CSAL3D_OK) st = c3_st_writer_set_metadata(w, "cases", cases);
  for (size_t i = 0; st == CSAL3D_OK && i < s->nmeta; i++)
    st = c3_st_writer_set_metadata(w, s->meta[i].key, s->meta[i].value);
  size_t nkv = s->nmeta + 3;
  if (st == CSAL3D_OK) st = c3_alloc_array(nkv, sizeof *kv, "checksum", (void **)&kv);
  if (st == CSAL3D_OK) {
    kv[0] = (c3_ckv){"format", C3_SCORES_FORMAT};
    kv[1] = (c3_ckv){"format_version", version};
    kv[2] = (c3_ckv){"cases", cases};
    for (size_t i = 0; i < s->nmeta; i++) kv[3 + i] = (c3_ckv){s->meta[i].key, s->meta[i].value};
    char sum[32];
    snprintf(sum, sizeof sum, "crc32:%08" PRIx32,
             c3_scores_crc(c3_st_writer_data_crc32(w), kv, nkv));
    st = c3_st_writer_set_metadata(w, "checksum", sum);
  }
  if (st == CSAL3D_OK) st = c3_st_writer_write_file(w, path);
  c3_free(kv);
  c3_st_writer_free(w);
  free(cases);
  return st;
}

/* ---- loading ---- */

#define C3_FAIL(code, ...)                                                     \
  do {                                                                         \
    st = c3_error(code, __VA_ARGS__);                                          \
    goto fail;                                                                 \
  } while (0)

static csal3d_status c3_scores_from_st(const c3_safetensors *sf, const char *src,
                                       csal3d_scores **out) {
  csal3d_scores *s = NULL;
  json_t *cases = NULL;
  c3_ckv *kv = NULL;
  csal3d_status st = CSAL3D_OK;
  const char *format = c3_st_metadata(sf, "format");
  if (!format) C3_FAIL(CSAL3D_ERR_FORMAT, "%s: not a csal3d scores file (no 'format' metadata)", src);
  if (strcmp(format, C3_SCORES_FORMAT) != 0)
    C3_FAIL(CSAL3D_ERR_FORMAT, "%s: not a csal3d scores file (format '%.64s', expected '%s')",
            src, format, C3_SCORES_FORMAT);
  const char *ver = c3_st_metadata(sf, "format_version");
  if (!ver) C3_FAIL(CSAL3D_ERR_FORMAT, "%s: no 'format_version' metadata", src);
  {
    char *end;
    long v = strtol(ver, &end, 10);
    if (end == ver || *end || v < 1)
      C3_FAIL(CSAL3D_ERR_FORMAT, "%s: format_version '%.32s' is not a version number", src, ver);
    if (v > C3_SCORES_VERSION)
      C3_FAIL(CSAL3D_ERR_UNSUPPORTED, "%s: format_version %ld is newer than this library "
              "reads (%d); update libcsal3d", src, v, C3_SCORES_VERSION);
  }
  const char *ctext = c3_st_metadata(sf, "cases");
  if (!ctext) C3_FAIL(CSAL3D_ERR_FORMAT, "%s: no 'cases' metadata", src);
  json_error_t jerr;
  cases = json_loads(ctext, JSON_REJECT_DUPLICATES, &jerr);
  if (!cases)
    C3_FAIL(CSAL3D_ERR_FORMAT, "%s: 'cases' metadata is not valid JSON (line %d, column %d: %s)",
            src, jerr.line, jerr.column, jerr.text);
  if (!json_is_array(cases) || json_array_size(cases) == 0)
    C3_FAIL(CSAL3D_ERR_FORMAT, "%s: 'cases' metadata must be a non-empty JSON array", src);
  size_t n = json_array_size(cases);
  const c3_st_entry *fe = c3_st_find(sf, "features"), *se = c3_st_find(sf, "scores");
  if (!fe) C3_FAIL(CSAL3D_ERR_FORMAT, "%s: no 'features' tensor", src);
  if (!se) C3_FAIL(CSAL3D_ERR_FORMAT, "%s: no 'scores' tensor", src);
  if (fe->ndim != 2 || fe->shape[0] != (int64_t)n || fe->shape[1] < 1)
    C3_FAIL(CSAL3D_ERR_FORMAT, "%s: 'features' must have shape [%zu, d >= 1] (%zu cases), "
            "not %d-D [%" PRId64 ", %" PRId64 "]", src, n, n, fe->ndim,
            fe->ndim > 0 ? fe->shape[0] : 0, fe->ndim > 1 ? fe->shape[1] : 0);
  if (se->ndim != 1 || se->shape[0] != (int64_t)n)
    C3_FAIL(CSAL3D_ERR_FORMAT, "%s: 'scores' must have shape [%zu] (%zu cases)", src, n, n);
  if (fe->dtype != C3_ST_F32 && fe->dtype != C3_ST_F64 && fe->dtype != C3_ST_F16 &&
      fe->dtype != C3_ST_BF16)
    C3_FAIL(CSAL3D_ERR_FORMAT, "%s: 'features' has dtype %s (a float dtype is needed)", src,
            c3_st_dtype_name(fe->dtype));
  if (se->dtype != C3_ST_F32 && se->dtype != C3_ST_F64 && se->dtype != C3_ST_F16 &&
      se->dtype != C3_ST_BF16)
    C3_FAIL(CSAL3D_ERR_FORMAT, "%s: 'scores' has dtype %s (a float dtype is needed)", src,
            c3_st_dtype_name(se->dtype));
  if ((st = csal3d_scores_create((int64_t)n, fe->shape[1], &s)) != CSAL3D_OK) goto fail;
  if ((st = c3_st_entry_read_f32(sf, fe, s->features, (size_t)fe->numel)) != CSAL3D_OK ||
      (st = c3_st_entry_read_f32(sf, se, s->scores, n)) != CSAL3D_OK)
    goto fail;
  for (size_t i = 0; i < n; i++) {
    json_t *c = json_array_get(cases, i);
    if (!json_is_object(c)) C3_FAIL(CSAL3D_ERR_FORMAT, "%s: cases[%zu] is not a JSON object", src, i);
    json_t *id = json_object_get(c, "id"), *imgs = json_object_get(c, "images");
    json_t *lab = json_object_get(c, "label"), *map = json_object_get(c, "map");
    if (!json_is_string(id) || !c3_id_ok(json_string_value(id)))
      C3_FAIL(CSAL3D_ERR_FORMAT, "%s: cases[%zu]: 'id' must be a string that is not empty, "
              "holds no control character and has no empty, '.' or '..' part between '/'",
              src, i);
    const char *cid = json_string_value(id);
    if (!json_is_array(imgs) || json_array_size(imgs) < 1 ||
        json_array_size(imgs) > C3_SCORES_MAX_IMAGES)
      C3_FAIL(CSAL3D_ERR_FORMAT, "%s: case '%s': 'images' must be an array of 1 to %d paths",
              src, cid, C3_SCORES_MAX_IMAGES);
    if (lab && !json_is_null(lab) && !(json_is_string(lab) && *json_string_value(lab)))
      C3_FAIL(CSAL3D_ERR_FORMAT, "%s: case '%s': 'label' must be a path or null", src, cid);
    if (map && !(json_is_string(map) && *json_string_value(map)))
      C3_FAIL(CSAL3D_ERR_FORMAT, "%s: case '%s': 'map' must be a path", src, cid);
    c3_scase *sc = &s->cases[i];
    int nimg = (int)json_array_size(imgs);
    if ((st = c3_calloc_array((size_t)nimg, sizeof(char *), "image paths",
                              (void **)&sc->images)) != CSAL3D_OK)
      goto fail;
    for (int k = 0; k < nimg; k++) {
      json_t *p = json_array_get(imgs, (size_t)k);
      if (!json_is_string(p) || !*json_string_value(p))
        C3_FAIL(CSAL3D_ERR_FORMAT, "%s: case '%s': images[%d] must be a non-empty path", src,
                cid, k);
      if (!(sc->images[k] = c3_strdup(json_string_value(p))))
        C3_FAIL(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
      sc->nimages = k + 1;
    }
    if (!(sc->id = c3_strdup(cid))) C3_FAIL(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    if (json_is_string(lab) && !(sc->label = c3_strdup(json_string_value(lab))))
      C3_FAIL(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    if (map && !(sc->map = c3_strdup(json_string_value(map))))
      C3_FAIL(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    sc->set = 1;
    if (!isfinite(s->scores[i]))
      C3_FAIL(CSAL3D_ERR_NUMERICAL, "%s: case '%s': the score is %g (must be finite)", src, cid,
              (double)s->scores[i]);
    const float *f = s->features + i * (size_t)s->d;
    for (int64_t j = 0; j < s->d; j++)
      if (!isfinite(f[j]))
        C3_FAIL(CSAL3D_ERR_NUMERICAL, "%s: case '%s': feature element %" PRId64 " is %g", src,
                cid, j, (double)f[j]);
  }
  if ((st = c3_check_unique(s, src, CSAL3D_ERR_FORMAT)) != CSAL3D_OK) goto fail;
  /* Other metadata, in file order. */
  size_t nm = c3_st_metadata_count(sf);
  for (size_t i = 0; i < nm; i++) {
    const char *k, *v;
    c3_st_metadata_at(sf, i, &k, &v);
    if (c3_is_reserved(k)) continue;
    if ((st = c3_meta_set(s, k, v)) != CSAL3D_OK) goto fail;
  }
  /* The checksum last, so that every structural check above is reachable by fuzzing. */
  const char *sum = c3_st_metadata(sf, "checksum");
  if (!sum) C3_FAIL(CSAL3D_ERR_FORMAT, "%s: no 'checksum' metadata", src);
  if ((st = c3_alloc_array(nm ? nm : 1, sizeof *kv, "checksum", (void **)&kv)) != CSAL3D_OK)
    goto fail;
  for (size_t i = 0; i < nm; i++) c3_st_metadata_at(sf, i, &kv[i].k, &kv[i].v);
  {
    char want[32];
    snprintf(want, sizeof want, "crc32:%08" PRIx32, c3_scores_crc(c3_st_data_crc32(sf), kv, nm));
    if (strcmp(sum, want) != 0)
      C3_FAIL(CSAL3D_ERR_CHECKSUM, "%s: checksum mismatch (stored %.40s, computed %s): the "
              "file was changed or damaged after it was written", src, sum, want);
  }
  c3_free(kv);
  json_decref(cases);
  *out = s;
  return CSAL3D_OK;
fail:
  c3_free(kv);
  json_decref(cases);
  csal3d_scores_free(s);
  return st;
}

csal3d_status c3_scores_parse(const void *buf, size_t len, const char *source,
                              csal3d_scores **out) {
  C3_CHECK_ARG(out != NULL, "c3_scores_parse: out is NULL");
  *out = NULL;
  const char *src = source ? source : "scores buffer";
  c3_safetensors *sf;
  C3_TRY(c3_st_parse(buf, len, src, &sf));
  csal3d_status st = c3_scores_from_st(sf, src, out);
  c3_st_free(sf);
  return st;
}

CSAL3D_API csal3d_status csal3d_scores_load(const char *path, csal3d_scores **out) {
  C3_CHECK_ARG(out != NULL, "csal3d_scores_load: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(path && *path, "csal3d_scores_load: empty path");
  c3_safetensors *sf;
  C3_TRY(c3_st_open(path, &sf));
  csal3d_status st = c3_scores_from_st(sf, path, out);
  c3_st_free(sf);
  return st;
}
