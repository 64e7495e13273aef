/* The manifest of a selection: CSV and JSON (format in include/csal3d/manifest.h). */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "io/fileutil.h"
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
    c3_csv_field(o, c3_scores_id(s, r.index));
    c3_outfile_write(o, ",", 1);
    c3_csv_field(o, c3_scores_image(s, r.index, 0));
    c3_outfile_write(o, ",", 1);
    c3_csv_field(o, c3_scores_label(s, r.index) ? c3_scores_label(s, r.index) : "");
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

CSAL3D_API csal3d_status csal3d_manifest_write(const csal3d_scores *s,
                                               const csal3d_selection *records,
                                               size_t record_size, int64_t count,
                                               const csal3d_manifest_options *options,
                                               const char *csv_path, const char *json_path) {
  C3_CHECK_ARG(s != NULL, "csal3d_manifest_write: scores is NULL");
  C3_CHECK_ARG(csv_path || json_path, "csal3d_manifest_write: no output path");
  C3_CHECK_ARG(count >= 0 && (count == 0 || records != NULL),
               "csal3d_manifest_write: %" PRId64 " records at %p", count, (const void *)records);
  C3_CHECK_ARG(record_size >= offsetof(csal3d_selection, score) + sizeof(double) &&
                   record_size % sizeof(int64_t) == 0,
               "csal3d_manifest_write: record_size %zu (pass sizeof(csal3d_selection))",
               record_size);
  csal3d_manifest_options opt;
  c3_manifest_defaults(&opt);
  C3_TRY(c3_options_read(&opt, sizeof opt, options, "csal3d_manifest_options"));
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
  c3_outfile csv, js;
  memset(&csv, 0, sizeof csv);
  memset(&js, 0, sizeof js);
  csal3d_status st = CSAL3D_OK;
  if (json_path) {
    json_t *root = c3_manifest_json(s, records, record_size, count, &opt);
    if (!root) return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                               "%s: cannot build the manifest (out of memory, or a path "
                               "that is not UTF-8)", json_path);
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (!text) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    st = c3_outfile_open(&js, json_path);
    if (st == CSAL3D_OK) {
      c3_outfile_write(&js, text, strlen(text));
      c3_outfile_write(&js, "\n", 1);
      st = c3_outfile_finish(&js);
    }
    free(text);
  }
  if (st == CSAL3D_OK && csv_path) {
    st = c3_outfile_open(&csv, csv_path);
    if (st == CSAL3D_OK) st = c3_write_csv(s, records, record_size, count, &csv);
    if (st == CSAL3D_OK) st = c3_outfile_finish(&csv);
  }
  /* Both complete: move them into place. */
  if (st == CSAL3D_OK && json_path) st = c3_outfile_rename(&js);
  if (st == CSAL3D_OK && csv_path) st = c3_outfile_rename(&csv);
  c3_outfile_abort(&js);
  c3_outfile_abort(&csv);
  return st;
}
