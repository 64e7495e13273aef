/* The evaluation's files: the results CSV and JSON (schema in include/csal3d/evaluate.h)
 * and the training selection read from a manifest or a list of ids. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/fileutil.h"
#include "pipeline/dataset.h"
#include "pipeline/evaluate.h"

static void csv_num(c3_outfile *o, double v) {
  if (isnan(v)) c3_outfile_printf(o, ",nan");
  else c3_outfile_printf(o, ",%.6f", v);
}

/* The labels of a results file: the most of its runs (a run trained and validated
 * without the last labels has fewer: their Dice is NaN, empty and empty). */
static int max_labels(const csal3d_evaluation *const *runs, size_t n) {
  int L = 0;
  for (size_t r = 0; r < n; r++) L = runs[r]->labels > L ? runs[r]->labels : L;
  return L;
}

static void csv_row(c3_outfile *o, const csal3d_evaluation *ev, int L, const char *id,
                    const double *dice, double mean) {
  c3_csv_field(o, ev->strategy);
  c3_outfile_printf(o, ",%lld,", (long long)ev->budget);
  if (ev->has_seed) c3_outfile_printf(o, "%llu", (unsigned long long)ev->selection_seed);
  c3_outfile_printf(o, ",%llu,", (unsigned long long)ev->train_seed);
  c3_csv_field(o, id);
  for (int l = 0; l < L; l++) csv_num(o, l < ev->labels ? dice[l] : NAN);
  csv_num(o, mean);
  c3_outfile_printf(o, "\n");
}

static csal3d_status write_csv(const csal3d_evaluation *const *runs, size_t n, int per_case,
                               const char *path) {
  c3_outfile o;
  C3_TRY(c3_outfile_open(&o, path));
  const int L = max_labels(runs, n);
  c3_outfile_printf(&o, "strategy,budget,seed,train_seed,case");
  for (int l = 1; l <= L; l++) c3_outfile_printf(&o, ",dice_%d", l);
  c3_outfile_printf(&o, ",mean_dice\n");
  for (size_t r = 0; r < n; r++) {
    const csal3d_evaluation *ev = runs[r];
    if (per_case)
      for (size_t i = 0; i < ev->n; i++)
        csv_row(&o, ev, L, ev->ids[i], ev->dice + i * (size_t)ev->labels, ev->case_mean[i]);
    csv_row(&o, ev, L, "mean", ev->label_mean, ev->mean);
  }
  csal3d_status s = c3_outfile_commit(&o);
  c3_outfile_abort(&o);
  return s;
}

static json_t *jnum(double v) { return isnan(v) ? json_null() : json_real(v); }

/* n values of d, then null up to L */
static json_t *jdice(const double *d, int n, int L) {
  json_t *a = json_array();
  for (int l = 0; a && l < L; l++) json_array_append_new(a, jnum(l < n ? d[l] : NAN));
  return a;
}

static csal3d_status write_json(const csal3d_evaluation *const *runs, size_t n, int per_case,
                                const char *path, const json_t *settings) {
  const int L = max_labels(runs, n);
  json_t *root = json_object(), *cols = json_array(), *arr = json_array();
  if (!root || !cols || !arr) {
    json_decref(root);
    json_decref(cols);
    json_decref(arr);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "results JSON");
  }
  static const char *fixed[] = {"strategy", "budget", "seed", "train_seed", "case"};
  for (int i = 0; i < 5; i++) json_array_append_new(cols, json_string(fixed[i]));
  for (int l = 1; l <= L; l++) {
    char b[32];
    snprintf(b, sizeof b, "dice_%d", l);
    json_array_append_new(cols, json_string(b));
  }
  json_array_append_new(cols, json_string("mean_dice"));
  json_object_set_new(root, "format", json_string("csal3d-evaluation"));
  json_object_set_new(root, "library_version", json_string(csal3d_version()));
  json_object_set_new(root, "labels", json_integer(L));
  json_object_set_new(root, "columns", cols);
  if (settings) json_object_set_new(root, "settings", json_deep_copy(settings));
  for (size_t r = 0; r < n; r++) {
    const csal3d_evaluation *ev = runs[r];
    json_t *o = json_object(), *tr = json_array();
    json_object_set_new(o, "strategy", json_string(ev->strategy));
    json_object_set_new(o, "budget", json_integer(ev->budget));
    json_object_set_new(o, "seed", ev->has_seed ? json_integer((json_int_t)ev->selection_seed)
                                                : json_null());
    json_object_set_new(o, "train_seed", json_integer((json_int_t)ev->train_seed));
    for (size_t i = 0; i < ev->n_train; i++) json_array_append_new(tr, json_string(ev->train_ids[i]));
    json_object_set_new(o, "train_cases", tr);
    json_object_set_new(o, "iterations", json_integer(ev->iterations));
    json_object_set_new(o, "train_seconds", json_real(ev->train_seconds));
    json_object_set_new(o, "dice", jdice(ev->label_mean, ev->labels, L));
    json_object_set_new(o, "mean_dice", jnum(ev->mean));
    if (per_case) {
      json_t *cs = json_array();
      for (size_t i = 0; i < ev->n; i++) {
        json_t *c = json_object();
        json_object_set_new(c, "id", json_string(ev->ids[i]));
        json_object_set_new(c, "dice", jdice(ev->dice + i * (size_t)ev->labels, ev->labels, L));
        json_object_set_new(c, "mean_dice", jnum(ev->case_mean[i]));
        json_array_append_new(cs, c);
      }
      json_object_set_new(o, "cases", cs);
    }
    json_array_append_new(arr, o);
  }
  json_object_set_new(root, "runs", arr);
  char *text = json_dumps(root, JSON_INDENT(1) | C3_EVAL_JSON_FLAGS);
  json_decref(root);
  if (!text) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "results JSON");
  size_t len = strlen(text);
  text[len] = '\0';
  csal3d_status s = c3_write_file_atomic(path, text, len);
  free(text);
  return s;
}

csal3d_status c3_evaluation_write(const csal3d_evaluation *const *runs, size_t n_runs,
                                  int per_case, const char *csv, const char *json,
                                  const json_t *settings) {
  /* the JSON first: a comparison continues from it, so it never lacks a run the CSV has */
  if (json) C3_TRY(write_json(runs, n_runs, per_case, json, settings));
  if (csv) C3_TRY(write_csv(runs, n_runs, per_case, csv));
  return CSAL3D_OK;
}

/* ---- a training selection from a file ---------------------------------------------------------- */

/* Splits a CSV line into fields in place (RFC 4180 quotes); returns the count. */
static int csv_split(char *line, char **f, int max) {
  int n = 0;
  char *p = line;
  while (n < max) {
    char *out = p;
    f[n++] = out;
    if (*p == '"') {
      p++;
      for (;;) {
        if (*p == '\0') break;
        if (*p == '"' && p[1] == '"') {
          *out++ = '"';
          p += 2;
        } else if (*p == '"') {
          p++;
          break;
        } else {
          *out++ = *p++;
        }
      }
      while (*p && *p != ',') p++;
    } else {
      while (*p && *p != ',') *out++ = *p++;
    }
    char c = *p;
    *out = '\0';
    if (c != ',') break;
    p++;
  }
  return n;
}

/* The case named by `entry`: its id, else (a dataset list's line) the case whose first
 * image is that file, relative paths taken from the list's folder `dir`; N if none. */
static size_t find_case(const csal3d_dataset *ds, const char *entry, const char *dir) {
  const size_t N = c3_dataset_n(ds);
  for (size_t j = 0; j < N; j++)
    if (!strcmp(c3_dataset_id(ds, j), entry)) return j;
  char buf[8192];
  struct stat a, b;
  const char *p = entry;
  if (entry[0] != '/' && snprintf(buf, sizeof buf, "%s/%s", dir, entry) < (int)sizeof buf)
    p = buf;
  if (stat(p, &a) != 0 || !S_ISREG(a.st_mode)) return N;
  for (size_t j = 0; j < N; j++)
    if (stat(c3_dataset_image(ds, j, 0), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
      return j;
  return N;
}

CSAL3D_API csal3d_status csal3d_evaluate_read_cases(const csal3d_dataset *ds, const char *path,
                                                    size_t **indices, size_t *count) {
  C3_CHECK_ARG(ds && path && indices && count, "csal3d_evaluate_read_cases: NULL argument");
  *indices = NULL;
  *count = 0;
  FILE *f = fopen(path, "r");
  if (!f) return c3_error(CSAL3D_ERR_IO, "cannot open the case list %s", path);
  size_t N = c3_dataset_n(ds), k = 0;
  size_t *idx = NULL;
  char dir[4096];
  const char *slash = strrchr(path, '/');
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash == path ? 1 : slash - path) : 1,
           slash ? path : ".");
  csal3d_status s = c3_alloc_array(N ? N : 1, sizeof(size_t), "case list", (void **)&idx);
  char line[8192];
  int col = -1, first = 1, lineno = 0;
  while (s == CSAL3D_OK && fgets(line, sizeof line, f)) {
    lineno++;
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') continue;
    char *fields[256];
    int nf = csv_split(p, fields, 256);
    if (first) {
      first = 0;
      for (int i = 0; i < nf; i++)
        if (!strcmp(fields[i], "case") || !strcmp(fields[i], "case_id") || !strcmp(fields[i], "id"))
          col = i;
      if (col >= 0) continue;    /* a header */
      if (nf > 1) col = 0;       /* a CSV without a known header: its first column */
    }
    const char *id = col >= 0 ? (col < nf ? fields[col] : "") : p;
    size_t j = find_case(ds, id, dir);
    if (j == N) {
      s = c3_error(CSAL3D_ERR_FORMAT, "%s, line %d: case \"%s\" is not in the dataset", path,
                   lineno, id);
      break;
    }
    for (size_t q = 0; q < k; q++)
      if (idx[q] == j) {
        s = c3_error(CSAL3D_ERR_FORMAT, "%s, line %d: case \"%s\" is listed twice", path, lineno,
                     id);
        break;
      }
    if (s == CSAL3D_OK && k < N) idx[k++] = j;
  }
  if (s == CSAL3D_OK && ferror(f)) s = c3_error(CSAL3D_ERR_IO, "cannot read %s", path);
  fclose(f);
  if (s == CSAL3D_OK && k == 0) s = c3_error(CSAL3D_ERR_FORMAT, "%s lists no case", path);
  if (s != CSAL3D_OK) {
    c3_free(idx);
    return s;
  }
  *indices = idx;
  *count = k;
  return CSAL3D_OK;
}

CSAL3D_API void csal3d_evaluate_free_indices(size_t *indices) { c3_free(indices); }
