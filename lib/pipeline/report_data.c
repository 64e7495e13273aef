/* The report's data: the manifests matched to the scores table, the evaluation results,
 * the PCA of the features, the overlaps of the selections. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <lapacke.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/error.h"
#include "pipeline/report.h"
#include "pipeline/scores.h"
#include "sampling/sampling.h"

/* ---- case ids -> rows ---- */

typedef struct c3_idrow {
  const char *id;
  int64_t row;
} c3_idrow;

static int c3_idrow_cmp(const void *a, const void *b) {
  return strcmp(((const c3_idrow *)a)->id, ((const c3_idrow *)b)->id);
}

/* The row of `id` in the sorted table, or -1. */
static int64_t c3_idrow_find(const c3_idrow *t, int64_t n, const char *id) {
  c3_idrow key = {id, 0};
  const c3_idrow *r = bsearch(&key, t, (size_t)n, sizeof *t, c3_idrow_cmp);
  return r ? r->row : -1;
}

/* ---- manifests ---- */

void c3_report_sel_free(c3_report_sel *sel) {
  if (!sel) return;
  for (int64_t i = 0; sel->rule && i < sel->count; i++) c3_free(sel->rule[i]);
  c3_free(sel->rule);
  c3_free(sel->path), c3_free(sel->strategy), c3_free(sel->index), c3_free(sel->cluster);
  c3_free(sel->cluster_size), c3_free(sel->score), c3_free(sel->typicality);
  c3_free(sel->assign);
  memset(sel, 0, sizeof *sel);
}

/* A manifest number: a number, null (NaN) or "inf"/"-inf"; 0 when it is something else. */
static int c3_json_double(const json_t *v, double *out) {
  if (json_is_number(v)) *out = json_number_value(v);
  else if (json_is_null(v)) *out = NAN;
  else if (json_is_string(v) && !strcmp(json_string_value(v), "inf")) *out = INFINITY;
  else if (json_is_string(v) && !strcmp(json_string_value(v), "-inf")) *out = -INFINITY;
  else return 0;
  return 1;
}

/* Reads a whole file (c3_alloc'ed, NUL-terminated). */
static csal3d_status c3_slurp(const char *path, const char *what, char **out, size_t *len) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return c3_error(CSAL3D_ERR_IO, "%s %s: %s", what, path, strerror(errno));
  char *buf = NULL;
  size_t n = 0, cap = 0;
  csal3d_status s = CSAL3D_OK;
  for (;;) {
    if (n + 65536 + 1 > cap) {
      size_t nc = cap ? cap * 2 : 65536 * 2;
      char *nb;
      if ((s = c3_alloc(nc, what, (void **)&nb)) != CSAL3D_OK) break;
      if (n) memcpy(nb, buf, n);
      c3_free(buf);
      buf = nb, cap = nc;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) {
      if (ferror(f)) s = c3_error(CSAL3D_ERR_IO, "%s %s: read error", what, path);
      break;
    }
  }
  fclose(f);
  if (s != CSAL3D_OK) {
    c3_free(buf);
    return s;
  }
  buf[n] = '\0';
  *out = buf;
  if (len) *len = n;
  return CSAL3D_OK;
}

/* FORMAT: "the selection PATH: " and the rest. */
static csal3d_status c3_sel_bad(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static csal3d_status c3_sel_bad(const char *path, const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return c3_error(CSAL3D_ERR_FORMAT, "the selection %s: %s", path, what);
}

static csal3d_status c3_sel_parse(const csal3d_scores *s, const c3_idrow *ids, json_t *root,
                                  const char *path, c3_report_sel *o) {
  int64_t n = c3_scores_n(s);
  const json_t *fmt = json_object_get(root, "format");
  if (!json_is_object(root) || !json_is_string(fmt) ||
      strcmp(json_string_value(fmt), "csal3d-manifest"))
    return c3_sel_bad(path, "not a csal3d manifest (no \"format\": \"csal3d-manifest\"); give the "
                      "selection.json that csal3d select wrote");
  const json_t *nc = json_object_get(root, "n_cases");
  if (json_is_integer(nc) && json_integer_value(nc) != n)
    return c3_error(CSAL3D_ERR_FORMAT, "the selection %s was made from %" PRId64
                    " cases, the scores have %" PRId64 ": give the manifest of these scores",
                    path, (int64_t)json_integer_value(nc), n);
  const json_t *st = json_object_get(root, "strategy");
  o->strategy = c3_strdup(json_is_string(st) ? json_string_value(st) : "?");
  const json_t *sel = json_object_get(root, "selection");
  if (!json_is_array(sel))
    return c3_sel_bad(path, "no \"selection\" array");
  int64_t count = (int64_t)json_array_size(sel);
  o->count = count;
  size_t m = count ? (size_t)count : 1;
  csal3d_status r = o->strategy ? CSAL3D_OK : CSAL3D_ERR_OUT_OF_MEMORY;
  if (r == CSAL3D_OK) r = c3_alloc_array(m, sizeof(int64_t), "selection", (void **)&o->index);
  if (r == CSAL3D_OK) r = c3_alloc_array(m, sizeof(int64_t), "selection", (void **)&o->cluster);
  if (r == CSAL3D_OK)
    r = c3_alloc_array(m, sizeof(int64_t), "selection", (void **)&o->cluster_size);
  if (r == CSAL3D_OK) r = c3_alloc_array(m, sizeof(double), "selection", (void **)&o->score);
  if (r == CSAL3D_OK)
    r = c3_alloc_array(m, sizeof(double), "selection", (void **)&o->typicality);
  if (r == CSAL3D_OK) r = c3_calloc_array(m, sizeof(char *), "selection", (void **)&o->rule);
  if (r != CSAL3D_OK) return r;
  unsigned char *seen;
  C3_TRY(c3_calloc_array((size_t)n, 1, "selection", (void **)&seen));
  for (int64_t i = 0; i < count && r == CSAL3D_OK; i++) {
    const json_t *e = json_array_get(sel, (size_t)i), *id = json_object_get(e, "case");
    if (!json_is_string(id)) {
      r = c3_sel_bad(path, "entry %" PRId64 " has no \"case\"", i + 1);
      break;
    }
    int64_t row = c3_idrow_find(ids, n, json_string_value(id));
    if (row < 0) {
      r = c3_error(CSAL3D_ERR_FORMAT, "the selection %s names the case '%s', which is not in "
                   "the scores: give the manifest made from these scores", path,
                   json_string_value(id));
      break;
    }
    if (seen[row]) {
      r = c3_sel_bad(path, "the case '%s' is chosen twice (entry %" PRId64 ")",
                     json_string_value(id), i + 1);
      break;
    }
    seen[row] = 1;
    o->index[i] = row;
    const json_t *cl = json_object_get(e, "cluster"), *cs = json_object_get(e, "cluster_size");
    o->cluster[i] = json_is_integer(cl) ? (int64_t)json_integer_value(cl) : -1;
    o->cluster_size[i] = json_is_integer(cs) ? (int64_t)json_integer_value(cs) : 0;
    if (!c3_json_double(json_object_get(e, "score"), &o->score[i])) o->score[i] = NAN;
    if (!c3_json_double(json_object_get(e, "typicality"), &o->typicality[i]))
      o->typicality[i] = NAN;
    const json_t *ru = json_object_get(e, "rule");
    o->rule[i] = c3_strdup(json_is_string(ru) ? json_string_value(ru) : "?");
    if (!o->rule[i]) r = CSAL3D_ERR_OUT_OF_MEMORY;
  }
  c3_free(seen);
  C3_TRY(r);
  /* every case's cluster, when the manifest has them */
  json_t *cls = json_object_get(root, "clusters");
  if (!json_is_object(cls) || json_object_size(cls) == 0) return CSAL3D_OK;
  C3_TRY(c3_alloc_array((size_t)n, sizeof(int64_t), "clusters", (void **)&o->assign));
  for (int64_t i = 0; i < n; i++) o->assign[i] = -1;
  const char *key;
  json_t *val;
  int64_t top = -1;
  json_object_foreach(cls, key, val) {
    int64_t row = c3_idrow_find(ids, n, key);
    if (row < 0)
      return c3_error(CSAL3D_ERR_FORMAT, "the selection %s gives a cluster to the case '%s', "
                      "which is not in the scores: give the manifest made from these scores",
                      path, key);
    if (!json_is_integer(val) || json_integer_value(val) < -1 ||
        json_integer_value(val) >= n)
      return c3_sel_bad(path, "the cluster of '%s' in \"clusters\" is not a cluster "
                        "number", key);
    o->assign[row] = (int64_t)json_integer_value(val);
    top = o->assign[row] > top ? o->assign[row] : top;
  }
  if (top < 0) {
    c3_free(o->assign);
    o->assign = NULL;
  }
  o->n_clusters = top + 1;
  return CSAL3D_OK;
}

csal3d_status c3_report_read_selection(const csal3d_scores *s, const char *path,
                                       c3_report_sel *out) {
  memset(out, 0, sizeof *out);
  C3_CHECK_ARG(s && path, "c3_report_read_selection: NULL argument");
  C3_TRY(c3_scores_check_complete(s));
  char *text = NULL;
  C3_TRY(c3_slurp(path, "the selection", &text, NULL));
  json_error_t err;
  json_t *root = json_loads(text, 0, &err);
  c3_free(text);
  if (!root)
    return c3_error(CSAL3D_ERR_FORMAT, "the selection %s is not JSON (line %d: %s); give the "
                    "selection.json that csal3d select wrote", path, err.line, err.text);
  int64_t n = c3_scores_n(s);
  c3_idrow *ids = NULL;
  csal3d_status r = c3_alloc_array((size_t)n, sizeof *ids, "case ids", (void **)&ids);
  if (r == CSAL3D_OK) {
    for (int64_t i = 0; i < n; i++) ids[i] = (c3_idrow){c3_scores_id(s, i), i};
    qsort(ids, (size_t)n, sizeof *ids, c3_idrow_cmp);
    out->path = c3_strdup(path);
    r = out->path ? c3_sel_parse(s, ids, root, path, out) : CSAL3D_ERR_OUT_OF_MEMORY;
  }
  c3_free(ids);
  json_decref(root);
  if (r != CSAL3D_OK) c3_report_sel_free(out);
  return r;
}

csal3d_status c3_report_overlap(const c3_report_sel *sel, int n, int64_t n_cases,
                                int64_t *M) {
  unsigned char *mark;
  C3_TRY(c3_calloc_array((size_t)(n_cases > 0 ? n_cases : 1), 1, "overlap", (void **)&mark));
  for (int a = 0; a < n; a++) {
    memset(mark, 0, (size_t)n_cases);
    for (int64_t i = 0; i < sel[a].count; i++) mark[sel[a].index[i]] = 1;
    for (int b = 0; b < n; b++) {
      int64_t c = 0;
      for (int64_t i = 0; i < sel[b].count; i++) c += mark[sel[b].index[i]];
      M[a * n + b] = c;
    }
  }
  c3_free(mark);
  return CSAL3D_OK;
}

/* ---- evaluation results ---- */

/* FORMAT: "the evaluation results PATH, WHERE AT: " and the rest. */
static csal3d_status c3_eval_bad(const char *path, const char *where, int64_t at,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static csal3d_status c3_eval_bad(const char *path, const char *where, int64_t at,
                                 const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return c3_error(CSAL3D_ERR_FORMAT, "the evaluation results %s, %s %" PRId64 ": %s", path,
                  where, at, what);
}

static int c3_parse_i64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  while (end && isspace((unsigned char)*end)) end++;
  if (errno || end == s || *end) return 0;
  *out = v;
  return 1;
}

static int c3_parse_f64(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  while (end && isspace((unsigned char)*end)) end++;
  if (errno || end == s || *end || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

/* Sets one run from its four fields (text), or fails naming where. An empty seed is a
 * given selection's (seed -1); a mean_dice of "nan" (no label defined) leaves the run
 * out: *keep = 0. */
static csal3d_status c3_eval_set(const char *path, const char *where, int64_t at,
                                 const char *strategy, const char *budget, const char *seed,
                                 const char *dice, c3_eval_run *r, int *keep) {
  *keep = 1;
  if (!*strategy) return c3_eval_bad(path, where, at, "the strategy is empty");
  if (strlen(strategy) >= sizeof r->strategy)
    return c3_eval_bad(path, where, at, "the strategy '%s' is longer than 63 bytes", strategy);
  snprintf(r->strategy, sizeof r->strategy, "%s", strategy);
  if (!c3_parse_i64(budget, &r->budget) || r->budget < 1)
    return c3_eval_bad(path, where, at, "the budget '%s' is not a positive integer", budget);
  if (!*seed) r->seed = -1;
  else if (!c3_parse_i64(seed, &r->seed) || r->seed < 0)
    return c3_eval_bad(path, where, at, "the seed '%s' is not a non-negative integer", seed);
  if (!strcasecmp(dice, "nan")) {
    *keep = 0;
    return CSAL3D_OK;
  }
  if (!c3_parse_f64(dice, &r->dice))
    return c3_eval_bad(path, where, at, "mean_dice '%s' is not a finite number", dice);
  return CSAL3D_OK;
}

/* Splits one CSV record (RFC 4180 quotes; the record ends at an unquoted newline) in
 * place: fields[] point into the text. Returns the number of fields (at most cap) and
 * advances *p past the record. */
static int c3_csv_record(char **p, char **fields, int cap) {
  char *s = *p, *w = s;
  int n = 0;
  for (;;) {
    char *start = w;
    int quoted = 0;
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '"') {
      quoted = 1;
      s++;
      while (*s) {
        if (*s == '"' && s[1] == '"') *w++ = '"', s += 2;
        else if (*s == '"') { s++; break; }
        else *w++ = *s++;
      }
    }
    while (*s && *s != ',' && *s != '\n' && *s != '\r') *w++ = *s++;
    char end = *s;
    *w = '\0';
    if (!quoted) /* trim trailing blanks of an unquoted field */
      for (char *t = w; t > start && (t[-1] == ' ' || t[-1] == '\t'); t--) t[-1] = '\0';
    if (n < cap) fields[n] = start;
    n++;
    w++;
    if (end == ',') {
      s++;
      continue;
    }
    if (end == '\r' && *++s == '\n') s++; /* (the field's NUL may stand where end was) */
    else if (end == '\n') s++;
    break;
  }
  *p = s;
  return n;
}

static csal3d_status c3_eval_csv(const char *path, char *text, c3_eval_run **runs, size_t *n,
                                 size_t *left_out) {
  enum { MAXF = 1024 };
  char *f[MAXF], *p = text;
  if (!strncmp(p, "\xef\xbb\xbf", 3)) p += 3; /* a UTF-8 byte order mark */
  int nh = c3_csv_record(&p, f, MAXF), col[5] = {-1, -1, -1, -1, -1}, aggregated = 0;
  static const char *names[5] = {"strategy", "budget", "seed", "mean_dice", "case"};
  for (int i = 0; i < nh && i < MAXF; i++) {
    for (int k = 0; k < 5; k++)
      if (!strcasecmp(f[i], names[k]) && col[k] < 0) col[k] = i;
    aggregated |= !strcasecmp(f[i], "sd_dice");
  }
  if (col[2] < 0 && aggregated)
    return c3_error(CSAL3D_ERR_FORMAT, "the evaluation results %s hold a table of means "
                    "(sd_dice, no seed); give the results file of the runs (strategy, budget, "
                    "seed, mean_dice per run)", path);
  for (int k = 0; k < 4; k++)
    if (col[k] < 0)
      return c3_error(CSAL3D_ERR_FORMAT, "the evaluation results %s: the header has no column "
                      "'%s' (it needs strategy, budget, seed and mean_dice)", path, names[k]);
  size_t lines = 1;
  for (const char *c = p; *c; c++) lines += *c == '\n';
  c3_eval_run *r;
  C3_TRY(c3_alloc_array(lines, sizeof *r, "evaluation", (void **)&r));
  size_t k = 0;
  int64_t line = 1;
  int need = col[0];
  for (int q = 1; q < 5; q++) need = col[q] > need ? col[q] : need;
  csal3d_status s = CSAL3D_OK;
  while (*p && s == CSAL3D_OK && k < lines) {
    line++;
    int nf = c3_csv_record(&p, f, MAXF), keep = 0;
    if (nf == 1 && !*f[0]) continue; /* an empty line */
    if (nf <= need) {
      s = c3_error(CSAL3D_ERR_FORMAT, "the evaluation results %s, line %" PRId64 ": %d fields, "
                   "the header has %d", path, line, nf, nh);
      break;
    }
    /* csal3d evaluate's files: a run's validation cases, then its row "mean" */
    if (col[4] >= 0 && strcmp(f[col[4]], "mean")) continue;
    s = c3_eval_set(path, "line", line, f[col[0]], f[col[1]], f[col[2]], f[col[3]], &r[k], &keep);
    k += keep;
    *left_out += !keep;
  }
  if (s == CSAL3D_OK && k == 0)
    s = c3_error(CSAL3D_ERR_FORMAT, "the evaluation results %s hold no run with a mean Dice",
                 path);
  if (s != CSAL3D_OK) {
    c3_free(r);
    return s;
  }
  *runs = r;
  *n = k;
  return CSAL3D_OK;
}

/* A JSON value as the text c3_eval_set parses. */
static void c3_json_field(const json_t *v, char *buf, size_t cap, const char *null) {
  if (json_is_null(v) && null) snprintf(buf, cap, "%s", null);
  else if (json_is_string(v)) snprintf(buf, cap, "%s", json_string_value(v));
  else if (json_is_integer(v)) snprintf(buf, cap, "%" PRId64, (int64_t)json_integer_value(v));
  else if (json_is_real(v)) snprintf(buf, cap, "%.17g", json_real_value(v));
  else snprintf(buf, cap, "%s", v ? "(not a number or string)" : "(missing)");
}

static csal3d_status c3_eval_json(const char *path, const char *text, c3_eval_run **runs,
                                  size_t *n, size_t *left_out) {
  json_error_t err;
  json_t *root = json_loads(text, 0, &err);
  if (!root)
    return c3_error(CSAL3D_ERR_FORMAT, "the evaluation results %s: not JSON (line %d: %s)",
                    path, err.line, err.text);
  json_t *arr = root;
  if (json_is_object(root)) {
    arr = json_object_get(root, "runs");
    if (!arr) arr = json_object_get(root, "results");
  }
  csal3d_status s = CSAL3D_OK;
  size_t count = json_is_array(arr) ? json_array_size(arr) : 0;
  if (!json_is_array(arr) || count == 0) {
    s = c3_error(CSAL3D_ERR_FORMAT, "the evaluation results %s: expected an array of runs "
                 "(or an object with \"runs\" or \"results\"), each with strategy, budget, "
                 "seed and mean_dice", path);
    json_decref(root);
    return s;
  }
  c3_eval_run *r;
  if ((s = c3_alloc_array(count, sizeof *r, "evaluation", (void **)&r)) != CSAL3D_OK) {
    json_decref(root);
    return s;
  }
  size_t k = 0;
  for (size_t i = 0; i < count && s == CSAL3D_OK; i++) {
    const json_t *e = json_array_get(arr, i);
    char f[4][128];
    static const char *names[4] = {"strategy", "budget", "seed", "mean_dice"};
    static const char *nulls[4] = {NULL, NULL, "", "nan"}; /* a given selection; no Dice */
    for (int q = 0; q < 4; q++)
      c3_json_field(json_object_get(e, names[q]), f[q], sizeof f[q], nulls[q]);
    int keep = 0;
    s = c3_eval_set(path, "run", (int64_t)i + 1, f[0], f[1], f[2], f[3], &r[k], &keep);
    k += keep;
    *left_out += !keep;
  }
  if (s == CSAL3D_OK && k == 0)
    s = c3_error(CSAL3D_ERR_FORMAT, "the evaluation results %s hold no run with a mean Dice",
                 path);
  json_decref(root);
  if (s != CSAL3D_OK) {
    c3_free(r);
    return s;
  }
  *runs = r;
  *n = k;
  return CSAL3D_OK;
}

csal3d_status c3_report_read_evaluation(const char *path, c3_eval_run **runs, size_t *n,
                                        size_t *left_out) {
  *runs = NULL;
  *n = 0;
  *left_out = 0;
  char *text = NULL;
  C3_TRY(c3_slurp(path, "the evaluation results", &text, NULL));
  const char *c = text;
  if (!strncmp(c, "\xef\xbb\xbf", 3)) c += 3;
  while (isspace((unsigned char)*c)) c++;
  csal3d_status s = *c == '[' || *c == '{' ? c3_eval_json(path, c, runs, n, left_out)
                                           : c3_eval_csv(path, text, runs, n, left_out);
  c3_free(text);
  return s;
}

/* ---- PCA ---- */

csal3d_status c3_report_pca(const float *X, int64_t n, int64_t d, double *Y, double frac[2]) {
  C3_CHECK_ARG(X && Y && n >= 1 && d >= 1, "c3_report_pca: %" PRId64 " x %" PRId64, n, d);
  frac[0] = frac[1] = 0;
  float *Xc = NULL;
  double *C = NULL, *F = NULL, *w = NULL, *z = NULL;
  lapack_int *support = NULL;
  csal3d_status s = c3_center_copy(X, n, d, &Xc);
  int64_t rows = n < C3_CHUNK ? n : C3_CHUNK;
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)d, (size_t)d * sizeof(double), "covariance", (void **)&C);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)rows, (size_t)d * sizeof(double), "features", (void **)&F);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)d, sizeof(double), "eigenvalues", (void **)&w);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)d, 2 * sizeof(double), "eigenvectors", (void **)&z);
  if (s == CSAL3D_OK) s = c3_alloc_array(4, sizeof(lapack_int), "eigen support", (void **)&support);
  if (s != CSAL3D_OK) goto done;
  int prev = c3_blas_threads_enter(1);
  /* C = Xc^T Xc in fixed row chunks (the upper triangle, mirrored) */
  for (int64_t r0 = 0; r0 < n; r0 += C3_CHUNK) {
    int64_t r1 = r0 + C3_CHUNK < n ? r0 + C3_CHUNK : n;
    for (int64_t i = 0; i < (r1 - r0) * d; i++) F[i] = Xc[r0 * d + i];
    c3_dgram_acc(r1 - r0, d, F, C);
  }
  double trace = 0;
  for (int64_t i = 0; i < d; i++) {
    trace += C[i * d + i];
    for (int64_t j = 0; j < i; j++) C[i * d + j] = C[j * d + i];
  }
  int64_t m = d < 2 ? d : 2;
  lapack_int found = 0, info = 0;
  if (trace > 0)
    info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'I', 'L', (lapack_int)d, C, (lapack_int)d, 0,
                          0, (lapack_int)(d - m + 1), (lapack_int)d, 0.0, &found, w, z,
                          (lapack_int)d, support);
  c3_blas_threads_leave(prev);
  if (trace > 0 && (info != 0 || found != m)) {
    s = c3_error(info == LAPACK_WORK_MEMORY_ERROR ? CSAL3D_ERR_OUT_OF_MEMORY
                                                  : CSAL3D_ERR_NUMERICAL,
                 "PCA: the eigensolver (LAPACK dsyevr) failed on the %" PRId64 " x %" PRId64
                 " covariance: info %d", d, d, (int)info);
    goto done;
  }
  for (int64_t i = 0; i < n * 2; i++) Y[i] = 0;
  if (!(trace > 0)) goto done; /* every feature the same: all points at 0 */
  for (int64_t k = 0; k < m; k++) {
    const double *v = z + (m - 1 - k) * d; /* ascending from LAPACK: the largest last */
    double big = 0, sign = 1;
    for (int64_t j = 0; j < d; j++)
      if (fabs(v[j]) > big) big = fabs(v[j]), sign = v[j] < 0 ? -1 : 1;
    double lam = w[m - 1 - k];
    frac[k] = lam > 0 ? lam / trace : 0;
    for (int64_t i = 0; i < n; i++) {
      double acc = 0;
      for (int64_t j = 0; j < d; j++) acc += (double)Xc[i * d + j] * v[j];
      Y[i * 2 + k] = sign * acc;
    }
  }
done:
  c3_free(Xc), c3_free(C), c3_free(F), c3_free(w), c3_free(z), c3_free(support);
  return s;
}
