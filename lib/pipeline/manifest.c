/* The manifest of a selection: CSV and JSON (format in include/csal3d/manifest.h). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "io/fileutil.h"
#include "pipeline/commit.h"
#include "pipeline/nnunet.h"
#include "pipeline/outputs.h"
#include "pipeline/scores.h"

static void c3_manifest_defaults(csal3d_manifest_options *o) {
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->strategy = CSAL3D_STRATEGY_URDS;
  o->n_cand = 3;
}

CSAL3D_API csal3d_status csal3d_manifest_options_init(csal3d_manifest_options *o) {
  C3_CHECK_ARG(o != NULL, "csal3d_manifest_options_init: options is NULL");
  c3_manifest_defaults(o);
  return CSAL3D_OK;
}

/* "%.9g", or "nan" / "inf" / "-inf". */
static void c3_fmt_num(char *buf, size_t cap, double v) {
  if (isnan(v)) snprintf(buf, cap, "nan");
  else if (isinf(v)) snprintf(buf, cap, v > 0 ? "inf" : "-inf");
  else snprintf(buf, cap, "%.9g", v);
}

/* A JSON number, null for NaN, "inf"/"-inf" strings for infinities. */
static json_t *c3_json_num(double v) {
  if (isnan(v)) return json_null();
  if (isinf(v)) return json_string(v > 0 ? "inf" : "-inf");
  return json_real(v);
}

static const csal3d_selection *c3_rec(const csal3d_selection *records, size_t size,
                                      int64_t i) {
  return (const csal3d_selection *)((const char *)records + (size_t)i * size);
}

/* Reads record i into r (records may be shorter than ours: missing members 0/NaN). */
static void c3_read_rec(const csal3d_selection *records, size_t size, int64_t i,
                        csal3d_selection *r) {
  memset(r, 0, sizeof *r);
  r->typicality = NAN;
  r->score = NAN;
  memcpy(r, c3_rec(records, size, i), size < sizeof *r ? size : sizeof *r);
}

/* A text cell of the CSV: a value that a spreadsheet would take for a formula (it
 * starts with =, +, -, @, a tab or a carriage return) gets a leading single quote, as
 * OWASP's "CSV injection" advice has it, so that opening the manifest in a spreadsheet
 * never runs a case id such as =cmd|' /C calc'!A0; the JSON keeps the exact text. */
static void c3_csv_text(c3_outfile *o, const char *s) {
  if (!s || !*s || !strchr("=+-@\t\r", *s)) {
    c3_csv_field(o, s);
    return;
  }
  size_t n = strlen(s);
  char *b;
  if (c3_alloc(n + 2, "CSV cell", (void **)&b) != CSAL3D_OK) {
    o->failed = ENOMEM;
    return;
  }
  b[0] = '\'';
  memcpy(b + 1, s, n + 1);
  c3_csv_field(o, b);
  c3_free(b);
}

static csal3d_status c3_write_csv(const csal3d_scores *s, const csal3d_selection *records,
                                  size_t rsize, int64_t count, c3_outfile *o) {
  c3_outfile_printf(o, "rank,case,path,label,score,cluster,cluster_size,typicality,rule\n");
  for (int64_t i = 0; i < count; i++) {
    csal3d_selection r;
    c3_read_rec(records, rsize, i, &r);
    char sc[48], ty[48];
    c3_fmt_num(sc, sizeof sc, r.score);
    c3_fmt_num(ty, sizeof ty, r.typicality);
    c3_outfile_printf(o, "%" PRId64 ",", i + 1);
    c3_csv_text(o, c3_scores_id(s, r.index));
    c3_outfile_write(o, ",", 1);
    c3_csv_text(o, c3_scores_image(s, r.index, 0));
    c3_outfile_write(o, ",", 1);
    c3_csv_text(o, c3_scores_label(s, r.index) ? c3_scores_label(s, r.index) : "");
    c3_outfile_printf(o, ",%s,%" PRId64 ",%" PRId64 ",%s,%s\n", sc, r.cluster,
                      r.cluster_size, ty, csal3d_rule_name(r.rule));
  }
  return CSAL3D_OK;
}

static int c3_set(json_t *o, const char *k, json_t *v) {
  return v == NULL || json_object_set_new(o, k, v) != 0;
}

static json_t *c3_manifest_json(const csal3d_scores *s, const csal3d_selection *records,
                                size_t rsize, int64_t count,
                                const csal3d_manifest_options *opt) {
  json_t *root = json_object();
  if (!root) return NULL;
  int bad = 0;
  bad |= c3_set(root, "format", json_string("csal3d-manifest"));
  bad |= c3_set(root, "format_version", json_integer(1));
  bad |= c3_set(root, "library_version", json_string(csal3d_version()));
  bad |= c3_set(root, "strategy", json_string(csal3d_strategy_name(opt->strategy)));
  bad |= c3_set(root, "budget", json_integer(count));
  bad |= c3_set(root, "n_cases", json_integer(c3_scores_n(s)));
  csal3d_strategy_info si = {.struct_size = sizeof si};
  if (opt->n_cand > 0 && csal3d_strategy_get_info(opt->strategy, &si) == CSAL3D_OK &&
      (si.options & CSAL3D_SAMPLER_OPT_N_CAND)) /* recorded where the strategy reads it */
    bad |= c3_set(root, "n_cand", json_integer(opt->n_cand));
  /* jansson integers are signed 64-bit: a seed above 2^63 is written as a string. */
  if (opt->seed <= (uint64_t)INT64_MAX) {
    bad |= c3_set(root, "seed", json_integer((json_int_t)opt->seed));
  } else {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, opt->seed);
    bad |= c3_set(root, "seed", json_string(buf));
  }
  if (opt->scores_path) bad |= c3_set(root, "scores_file", json_string(opt->scores_path));
  json_t *meta = json_object();
  bad |= meta == NULL;
  for (size_t i = 0; !bad && i < c3_scores_meta_count(s); i++) {
    const char *k, *v;
    c3_scores_meta_at(s, i, &k, &v);
    bad |= c3_set(meta, k, json_string(v));
  }
  if (meta) bad |= c3_set(root, "scores_metadata", meta);
  json_t *sel = json_array();
  bad |= sel == NULL;
  for (int64_t i = 0; !bad && i < count; i++) {
    csal3d_selection r;
    c3_read_rec(records, rsize, i, &r);
    json_t *e = json_object(), *imgs = json_array();
    bad |= !e || !imgs;
    for (int k = 0; !bad && k < c3_scores_image_count(s, r.index); k++)
      bad |= json_array_append_new(imgs, json_string(c3_scores_image(s, r.index, k))) != 0;
    const char *lab = c3_scores_label(s, r.index), *map = c3_scores_map(s, r.index);
    if (!bad) {
      bad |= c3_set(e, "rank", json_integer(i + 1));
      bad |= c3_set(e, "case", json_string(c3_scores_id(s, r.index)));
      bad |= c3_set(e, "index", json_integer(r.index));
      bad |= c3_set(e, "path", json_string(c3_scores_image(s, r.index, 0)));
      bad |= c3_set(e, "images", imgs);
      imgs = NULL;
      bad |= c3_set(e, "label", lab ? json_string(lab) : json_null());
      if (map) bad |= c3_set(e, "map", json_string(map));
      bad |= c3_set(e, "score", c3_json_num(r.score));
      bad |= c3_set(e, "cluster", json_integer(r.cluster));
      bad |= c3_set(e, "cluster_size", json_integer(r.cluster_size));
      bad |= c3_set(e, "typicality", c3_json_num(r.typicality));
      bad |= c3_set(e, "rule", json_string(csal3d_rule_name(r.rule)));
    }
    json_decref(imgs);
    if (!bad) bad |= json_array_append_new(sel, e) != 0;
    else json_decref(e);
  }
  if (sel) bad |= c3_set(root, "selection", sel);
  if (!bad && opt->assignment) {
    json_t *cl = json_object();
    bad |= cl == NULL;
    for (int64_t i = 0; !bad && i < c3_scores_n(s); i++)
      bad |= c3_set(cl, c3_scores_id(s, i), json_integer(opt->assignment[i]));
    if (cl) bad |= c3_set(root, "clusters", cl);
  }
  if (bad) {
    json_decref(root);
    return NULL;
  }
  return root;
}

/* The records' pointer, count and stride as the caller of `fn` gave them. */
static csal3d_status c3_check_records(const char *fn, const csal3d_selection *records,
                                      size_t record_size, int64_t count) {
  C3_CHECK_ARG(count >= 0 && (count == 0 || records != NULL), "%s: %" PRId64 " records at %p",
               fn, count, (const void *)records);
  C3_CHECK_ARG(record_size >= offsetof(csal3d_selection, score) + sizeof(double) &&
                   record_size % sizeof(int64_t) == 0,
               "%s: record_size %zu (pass sizeof(csal3d_selection))", fn, record_size);
  return CSAL3D_OK;
}

/* Checks the records and builds the CSV and JSON under temporary names beside their
 * targets, adding them to `commit` (CSV first). */
static csal3d_status c3_manifest_stage(const csal3d_scores *s, const csal3d_selection *records,
                                       size_t record_size, int64_t count,
                                       const csal3d_manifest_options *opt, const char *csv_path,
                                       const char *json_path, c3_commit *commit) {
  C3_CHECK_ARG(s != NULL, "csal3d_manifest_write: scores is NULL");
  C3_CHECK_ARG(csv_path || json_path, "csal3d_manifest_write: no output path");
  C3_TRY(c3_check_records("csal3d_manifest_write", records, record_size, count));
  C3_TRY(c3_scores_check_complete(s));
  int64_t n = c3_scores_n(s);
  /* Indices valid and distinct. */
  unsigned char *seen;
  C3_TRY(c3_calloc_array((size_t)n, 1, "manifest", (void **)&seen));
  for (int64_t i = 0; i < count; i++) {
    int64_t idx = c3_rec(records, record_size, i)->index;
    if (idx < 0 || idx >= n || seen[idx]) {
      c3_free(seen);
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "csal3d_manifest_write: record %" PRId64
                      " has case index %" PRId64 " (%s; %" PRId64 " cases)", i, idx,
                      idx < 0 || idx >= n ? "out of range" : "chosen twice", n);
    }
    seen[idx] = 1;
  }
  c3_free(seen);
  c3_outfile o;
  memset(&o, 0, sizeof o);
  csal3d_status st = CSAL3D_OK;
  if (csv_path) {
    st = c3_outfile_open(&o, csv_path);
    if (st == CSAL3D_OK) st = c3_write_csv(s, records, record_size, count, &o);
    if (st == CSAL3D_OK) st = c3_outfile_finish(&o);
    if (st == CSAL3D_OK) {
      st = c3_commit_add(commit, csv_path, o.tmp, 0);
      o.tmp = NULL;
    }
    c3_outfile_abort(&o);
  }
  if (st == CSAL3D_OK && json_path) {
    json_t *root = c3_manifest_json(s, records, record_size, count, opt);
    if (!root) return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                               "%s: cannot build the manifest (out of memory, or a path "
                               "that is not UTF-8)", json_path);
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (!text) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    st = c3_outfile_open(&o, json_path);
    if (st == CSAL3D_OK) {
      c3_outfile_write(&o, text, strlen(text));
      c3_outfile_write(&o, "\n", 1);
      st = c3_outfile_finish(&o);
    }
    if (st == CSAL3D_OK) {
      st = c3_commit_add(commit, json_path, o.tmp, 0);
      o.tmp = NULL;
    }
    c3_outfile_abort(&o);
    free(text);
  }
  return st;
}

CSAL3D_API csal3d_status csal3d_manifest_write(const csal3d_scores *s,
                                               const csal3d_selection *records,
                                               size_t record_size, int64_t count,
                                               const csal3d_manifest_options *options,
                                               const char *csv_path, const char *json_path) {
  csal3d_manifest_options opt;
  c3_manifest_defaults(&opt);
  C3_TRY(c3_options_read(&opt, sizeof opt, options, "csal3d_manifest_options"));
  c3_commit c;
  memset(&c, 0, sizeof c);
  csal3d_status st =
      c3_manifest_stage(s, records, record_size, count, &opt, csv_path, json_path, &c);
  if (st == CSAL3D_OK) st = c3_commit_run(&c);
  c3_commit_discard(&c);
  return st;
}

/* ---- the whole output of a selection ---- */

static void c3_selection_outputs_defaults(csal3d_selection_outputs *o) {
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
}

CSAL3D_API csal3d_status csal3d_selection_outputs_init(csal3d_selection_outputs *o) {
  C3_CHECK_ARG(o != NULL, "csal3d_selection_outputs_init: outputs is NULL");
  c3_selection_outputs_defaults(o);
  return CSAL3D_OK;
}

/* The absolute form of the folder that holds (or will hold) `path`, resolved through
 * symbolic links where it exists. */
static char *c3_parent_real(const char *path) {
  char *abs = NULL;
  if (c3_path_absolute(path, &abs) != CSAL3D_OK) return NULL;
  char *slash = strrchr(abs, '/');
  if (slash && slash != abs) *slash = '\0';
  else if (slash) slash[1] = '\0';
  char real[PATH_MAX];
  if (realpath(abs, real)) {
    c3_free(abs);
    return c3_strdup(real);
  }
  return abs;
}

/* The absolute, symlink-resolved form of a folder that may not exist yet: its nearest
 * existing ancestor resolved, the rest appended as written. */
static char *c3_folder_real(const char *path) {
  char *abs = NULL;
  if (c3_path_absolute(path, &abs) != CSAL3D_OK) return NULL;
  size_t n = strlen(abs);
  while (n > 1 && abs[n - 1] == '/') abs[--n] = '\0';
  for (size_t cut = n; cut > 0; cut--) {
    if (cut < n && abs[cut] != '/') continue;
    char c = abs[cut];
    abs[cut] = '\0';
    char real[PATH_MAX];
    int ok = realpath(cut ? abs : "/", real) != NULL;
    abs[cut] = c;
    if (!ok) continue;
    size_t rl = strlen(real), tl = strlen(abs + cut);
    char *out;
    if (c3_alloc(rl + tl + 1, "path", (void **)&out) != CSAL3D_OK) break;
    memcpy(out, real, rl);
    memcpy(out + rl, abs + cut, tl + 1);
    c3_free(abs);
    return out;
  }
  return abs;
}

/* Refuses a manifest that would lie inside the nnU-Net folder (replacing the folder
 * would take it along). */
static csal3d_status c3_outside_folder(const char *file, const char *what, const char *folder) {
  char *p = c3_parent_real(file), *f = c3_folder_real(folder);
  csal3d_status st = CSAL3D_OK;
  if (!p || !f) {
    st = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  } else {
    size_t fl = strlen(f);
    if (strncmp(p, f, fl) == 0 && (p[fl] == '/' || p[fl] == '\0'))
      st = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s %s lies in the nnU-Net folder %s, which "
                    "is written as a whole; put the manifest elsewhere", what, file, folder);
  }
  c3_free(p);
  c3_free(f);
  return st;
}

CSAL3D_API csal3d_status csal3d_selection_write(const csal3d_scores *s,
                                                const csal3d_selection *records,
                                                size_t record_size, int64_t count,
                                                const csal3d_selection_outputs *outputs,
                                                const csal3d_manifest_options *manifest,
                                                const csal3d_nnunet_options *nnunet,
                                                const csal3d_context *ctx) {
  C3_CHECK_ARG(s != NULL, "csal3d_selection_write: scores is NULL");
  csal3d_selection_outputs out;
  c3_selection_outputs_defaults(&out);
  C3_TRY(c3_options_read(&out, sizeof out, outputs, "csal3d_selection_outputs"));
  csal3d_manifest_options mo;
  c3_manifest_defaults(&mo);
  C3_TRY(c3_options_read(&mo, sizeof mo, manifest, "csal3d_manifest_options"));
  csal3d_nnunet_options no;
  csal3d_nnunet_options_init(&no);
  C3_TRY(c3_options_read(&no, sizeof no, nnunet, "csal3d_nnunet_options"));
  no.overwrite = out.overwrite;
  C3_CHECK_ARG(out.csv_path || out.json_path || out.nnunet_folder,
               "csal3d_selection_write: no output (csv_path, json_path and nnunet_folder are "
               "NULL)");
  C3_CHECK_ARG(out.inputs || out.n_inputs == 0, "csal3d_selection_write: inputs is NULL");
  C3_TRY(c3_check_records("csal3d_selection_write", records, record_size, count));
  C3_TRY(c3_scores_check_complete(s));
  if (out.nnunet_folder) C3_TRY(c3_nnunet_check_name(out.nnunet_folder));
  /* Before any work: every output writable, none an input, none replaced unless asked. */
  int64_t n = c3_scores_n(s);
  size_t cap = out.n_inputs + 2;
  for (int64_t i = 0; i < n; i++) cap += (size_t)c3_scores_image_count(s, i) + 2;
  const char **in;
  C3_TRY(c3_alloc_array(cap, sizeof *in, "input list", (void **)&in));
  size_t k = 0;
  for (size_t i = 0; i < out.n_inputs; i++) in[k++] = out.inputs[i];
  if (mo.scores_path) in[k++] = mo.scores_path;
  for (int64_t i = 0; i < n; i++) {
    for (int f = 0; f < c3_scores_image_count(s, i); f++) in[k++] = c3_scores_image(s, i, f);
    if (c3_scores_label(s, i)) in[k++] = c3_scores_label(s, i);
    if (c3_scores_map(s, i)) in[k++] = c3_scores_map(s, i);
  }
  csal3d_status st = CSAL3D_OK;
  if (out.csv_path)
    st = c3_output_check(out.csv_path, CSAL3D_OUTPUT_FILE, "the CSV manifest", in, k,
                         out.overwrite);
  if (st == CSAL3D_OK && out.json_path)
    st = c3_output_check(out.json_path, CSAL3D_OUTPUT_FILE, "the JSON manifest", in, k,
                         out.overwrite);
  if (st == CSAL3D_OK && out.nnunet_folder)
    st = c3_output_check(out.nnunet_folder, CSAL3D_OUTPUT_FOLDER, "the nnU-Net folder", in, k,
                         out.overwrite);
  c3_free(in);
  C3_TRY(st);
  if (out.csv_path && out.json_path) {
    char *a = c3_parent_real(out.csv_path), *b = c3_parent_real(out.json_path);
    const char *ba = strrchr(out.csv_path, '/'), *bb = strrchr(out.json_path, '/');
    ba = ba ? ba + 1 : out.csv_path;
    bb = bb ? bb + 1 : out.json_path;
    int same = a && b && strcmp(a, b) == 0 && strcmp(ba, bb) == 0;
    c3_free(a);
    c3_free(b);
    if (same)
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "the CSV and the JSON manifest are the same "
                      "file (%s)", out.json_path);
  }
  if (out.nnunet_folder && out.csv_path)
    C3_TRY(c3_outside_folder(out.csv_path, "the CSV manifest", out.nnunet_folder));
  if (out.nnunet_folder && out.json_path)
    C3_TRY(c3_outside_folder(out.json_path, "the JSON manifest", out.nnunet_folder));
  if (out.check_only) return CSAL3D_OK;
  /* Everything under temporary names, then into place together. */
  c3_commit c;
  memset(&c, 0, sizeof c);
  if (out.nnunet_folder) {
    C3_CHECK_ARG(count >= 1, "csal3d_selection_write: an nnU-Net export needs at least one "
                 "case");
    int64_t *idx;
    C3_TRY(c3_alloc_array((size_t)count, sizeof *idx, "indices", (void **)&idx));
    for (int64_t i = 0; i < count; i++) idx[i] = c3_rec(records, record_size, i)->index;
    st = c3_nnunet_stage(s, idx, count, out.nnunet_folder, &no, ctx, &c);
    c3_free(idx);
  }
  if (st == CSAL3D_OK && (out.csv_path || out.json_path))
    st = c3_manifest_stage(s, records, record_size, count, &mo, out.csv_path, out.json_path, &c);
  if (st == CSAL3D_OK) st = c3_progress(ctx, "write", 1, 1); /* a last chance to cancel */
  if (st == CSAL3D_OK) st = c3_commit_run(&c);
  c3_commit_discard(&c);
  return st;
}
