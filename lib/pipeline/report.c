/* csal3d_report_write: one self-contained HTML page of a scores table, its selections,
 * the chosen cases' uncertainty and an evaluation (include/csal3d/report.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "core/rng.h"
#include "io/fileutil.h"
#include "pipeline/outputs.h"
#include "pipeline/report.h"
#include "pipeline/scores.h"
#include "sampling/sampling.h"

static void c3_report_defaults(csal3d_report_options *o) {
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
}

CSAL3D_API csal3d_status csal3d_report_options_init(csal3d_report_options *o) {
  C3_CHECK_ARG(o != NULL, "csal3d_report_options_init: options is NULL");
  c3_report_defaults(o);
  return CSAL3D_OK;
}

/* Everything the page is made of. */
typedef struct c3_report {
  csal3d_report_options o;
  const csal3d_scores *s;
  const csal3d_context *ctx;
  int64_t n, d;
  float *X, *score_f;
  double *xy, *score, *typ;
  double frac[2];
  int digits;            /* of a score */
  int64_t *cluster;      /* n, or NULL */
  int64_t n_clusters;
  int cluster_sel;       /* the selection whose clusters colour the page, or -1 */
  unsigned char *drawn;  /* n: 0 not drawn, 1 drawn, 2 chosen */
  int64_t n_unchosen, n_sampled;
  const char **ids;
  c3_report_sel sel[C3_REPORT_MAX_SELECTIONS];
  int n_sel;
  c3_eval_run *runs;
  size_t n_runs, runs_left_out;
  csal3d_dataset *ds;
  /* the cases with slices */
  int64_t *shown;
  int64_t n_shown, n_chosen_all;
  c3_case_planes *planes;
  double map_lo, map_hi;
} c3_report;

static void c3_report_free(c3_report *r) {
  c3_free(r->X), c3_free(r->score_f), c3_free(r->xy), c3_free(r->score), c3_free(r->typ);
  c3_free(r->cluster), c3_free(r->drawn), c3_free(r->ids), c3_free(r->shown);
  for (int i = 0; i < r->n_sel; i++) c3_report_sel_free(&r->sel[i]);
  c3_free(r->runs);
  for (int64_t i = 0; r->planes && i < r->n_shown; i++) c3_case_planes_free(&r->planes[i]);
  c3_free(r->planes);
  csal3d_dataset_free(r->ds);
}

/* ---- inputs ---- */

/* The path of case i's map in the maps folder (c3_alloc'ed): DIR/ID_uncertainty.nii.gz,
 * '/' in the id as '_' (csal3d_score_options.maps_dir). */
static char *c3_map_in_dir(const char *dir, const char *id) {
  size_t n = strlen(dir) + strlen(id) + 32;
  char *p;
  if (c3_alloc(n, "map path", (void **)&p) != CSAL3D_OK) return NULL;
  int k = snprintf(p, n, "%s/", dir);
  for (const char *c = id; *c; c++) p[k++] = *c == '/' ? '_' : *c;
  snprintf(p + k, n - (size_t)k, "_uncertainty.nii.gz");
  return p;
}

/* Before any work: the options, then the output checked against every input. */
static csal3d_status c3_report_check(c3_report *r, const char *out_html) {
  const csal3d_report_options *o = &r->o;
  C3_CHECK_ARG(out_html && *out_html, "csal3d_report_write: out_html is empty");
  C3_CHECK_ARG(o->n_selections <= C3_REPORT_MAX_SELECTIONS,
               "csal3d_report_write: %zu selections; at most %d fit on one page",
               o->n_selections, C3_REPORT_MAX_SELECTIONS);
  C3_CHECK_ARG(o->selections || o->n_selections == 0,
               "csal3d_report_write: selections is NULL with n_selections %zu",
               o->n_selections);
  for (size_t i = 0; i < o->n_selections; i++)
    C3_CHECK_ARG(o->selections[i] && *o->selections[i],
                 "csal3d_report_write: selection %zu is empty", i + 1);
  C3_CHECK_ARG(o->image_size == 0 || (o->image_size >= 32 && o->image_size <= 1024),
               "csal3d_report_write: the option image_size is %d (32 to 1024, or 0)",
               o->image_size);
  C3_CHECK_ARG(o->max_points >= 0, "csal3d_report_write: the option max_points is %" PRId64
               " (0 or more)", o->max_points);
  C3_CHECK_ARG(o->max_cases >= 0, "csal3d_report_write: the option max_cases is %" PRId64
               " (0 or more)", o->max_cases);
  C3_TRY(c3_scores_check_complete(r->s));
  int64_t n = c3_scores_n(r->s);
  size_t cap = o->n_selections + 3;
  for (int64_t i = 0; i < n; i++) cap += (size_t)c3_scores_image_count(r->s, i) + 3;
  const char **in;
  char **owned;
  C3_TRY(c3_alloc_array(cap, sizeof *in, "input list", (void **)&in));
  if (c3_calloc_array((size_t)n + 1, sizeof *owned, "input list", (void **)&owned) != CSAL3D_OK) {
    c3_free(in);
    return CSAL3D_ERR_OUT_OF_MEMORY;
  }
  size_t k = 0;
  csal3d_status st = CSAL3D_OK;
  if (o->scores_path) in[k++] = o->scores_path;
  if (o->evaluation) in[k++] = o->evaluation;
  for (size_t i = 0; i < o->n_selections; i++) in[k++] = o->selections[i];
  for (int64_t i = 0; i < n; i++) {
    for (int f = 0; f < c3_scores_image_count(r->s, i); f++) in[k++] = c3_scores_image(r->s, i, f);
    if (c3_scores_label(r->s, i)) in[k++] = c3_scores_label(r->s, i);
    if (c3_scores_map(r->s, i)) in[k++] = c3_scores_map(r->s, i);
    if (o->maps_dir) {
      owned[i] = c3_map_in_dir(o->maps_dir, c3_scores_id(r->s, i));
      if (!owned[i]) {
        st = CSAL3D_ERR_OUT_OF_MEMORY;
        break;
      }
      in[k++] = owned[i];
    }
  }
  if (st == CSAL3D_OK)
    st = c3_output_check(out_html, CSAL3D_OUTPUT_FILE, "the report", in, k, o->overwrite);
  for (int64_t i = 0; i < n; i++) c3_free(owned[i]);
  c3_free(owned);
  c3_free(in);
  C3_TRY(st);
  struct stat sb;
  if (o->maps_dir && stat(o->maps_dir, &sb) != 0)
    return c3_error(CSAL3D_ERR_IO, "the maps folder %s: %s", o->maps_dir, strerror(errno));
  if (o->maps_dir && !S_ISDIR(sb.st_mode))
    return c3_error(CSAL3D_ERR_IO, "the maps folder %s is not a folder", o->maps_dir);
  return CSAL3D_OK;
}

/* The selections, the evaluation, the dataset. */
static csal3d_status c3_report_read(c3_report *r) {
  for (size_t i = 0; i < r->o.n_selections; i++) {
    C3_TRY(c3_report_read_selection(r->s, r->o.selections[i], &r->sel[i]));
    r->n_sel = (int)i + 1;
  }
  if (r->o.evaluation) C3_TRY(c3_report_read_evaluation(r->o.evaluation, &r->runs, &r->n_runs,
                                                       &r->runs_left_out));
  if (r->o.dataset) {
    csal3d_status s = csal3d_dataset_open(r->o.dataset, NULL, &r->ds);
    if (s != CSAL3D_OK) return c3_error_prefix(s, "the option dataset");
  }
  return CSAL3D_OK;
}

/* ---- what is drawn ---- */

static csal3d_status c3_report_compute(c3_report *r) {
  int64_t n = r->n = c3_scores_n(r->s), d;
  C3_TRY(csal3d_scores_size(r->s, NULL, &d));
  r->d = d;
  C3_TRY(c3_alloc_array((size_t)n, (size_t)d * sizeof(float), "features", (void **)&r->X));
  C3_TRY(c3_alloc_array((size_t)n, sizeof(float), "scores", (void **)&r->score_f));
  C3_TRY(c3_alloc_array((size_t)n, sizeof(double), "scores", (void **)&r->score));
  C3_TRY(c3_alloc_array((size_t)n, 2 * sizeof(double), "projection", (void **)&r->xy));
  C3_TRY(c3_calloc_array((size_t)n, 1, "points", (void **)&r->drawn));
  C3_TRY(c3_alloc_array((size_t)n, sizeof(char *), "ids", (void **)&r->ids));
  C3_TRY(csal3d_scores_copy_features(r->s, r->X, (size_t)(n * d), NULL));
  C3_TRY(csal3d_scores_copy_scores(r->s, r->score_f, (size_t)n, NULL));
  double lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < n; i++) {
    r->score[i] = r->score_f[i], r->ids[i] = c3_scores_id(r->s, i);
    lo = r->score[i] < lo ? r->score[i] : lo;
    hi = r->score[i] > hi ? r->score[i] : hi;
  }
  r->digits = c3_digits_for(lo, hi);
  C3_TRY(c3_report_pca(r->X, n, d, r->xy, r->frac));
  /* clusters: the first selection that has them; typicality (Eq. 10) within them */
  r->cluster_sel = -1;
  for (int i = 0; i < r->n_sel && r->cluster_sel < 0; i++)
    if (r->sel[i].assign) r->cluster_sel = i;
  if (r->cluster_sel >= 0) {
    const c3_report_sel *cs = &r->sel[r->cluster_sel];
    r->n_clusters = cs->n_clusters;
    C3_TRY(c3_alloc_array((size_t)n, sizeof(int64_t), "clusters", (void **)&r->cluster));
    memcpy(r->cluster, cs->assign, (size_t)n * sizeof(int64_t));
    C3_TRY(c3_alloc_array((size_t)n, sizeof(double), "typicality", (void **)&r->typ));
    C3_TRY(c3_typicality_cosine(r->X, n, d, r->cluster, r->n_clusters, r->typ));
  }
  /* chosen cases always drawn; above max_points unchosen ones, a seeded sample */
  for (int i = 0; i < r->n_sel; i++)
    for (int64_t k = 0; k < r->sel[i].count; k++) r->drawn[r->sel[i].index[k]] = 2;
  int64_t *pos = NULL, *pick = NULL;
  for (int64_t i = 0; i < n; i++) r->n_unchosen += r->drawn[i] == 0;
  int64_t cap = r->o.max_points ? r->o.max_points : 2000;
  r->n_sampled = r->n_unchosen <= cap ? r->n_unchosen : cap;
  if (r->n_unchosen <= cap) {
    for (int64_t i = 0; i < n; i++) r->drawn[i] = r->drawn[i] ? r->drawn[i] : 1;
    return CSAL3D_OK;
  }
  csal3d_status s = c3_alloc_array((size_t)r->n_unchosen, sizeof *pos, "sample", (void **)&pos);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)cap, sizeof *pick, "sample", (void **)&pick);
  if (s == CSAL3D_OK) {
    int64_t u = 0;
    for (int64_t i = 0; i < n; i++)
      if (!r->drawn[i]) pos[u++] = i;
    c3_rng g;
    c3_rng_init(&g, 0, C3_RNG_DATA, 0x7265706f7274ull /* "report" */, 0, 0);
    s = c3_rng_sample(&g, u, cap, pick);
    for (int64_t k = 0; s == CSAL3D_OK && k < cap; k++) r->drawn[pos[pick[k]]] = 1;
  }
  c3_free(pos);
  c3_free(pick);
  return s;
}

/* The cases that get slices: rank 1 of every selection, then rank 2, ..., each once. */
static csal3d_status c3_report_pick_cases(c3_report *r) {
  int64_t total = 0, longest = 0;
  for (int i = 0; i < r->n_sel; i++) {
    total += r->sel[i].count;
    longest = r->sel[i].count > longest ? r->sel[i].count : longest;
  }
  C3_TRY(c3_alloc_array((size_t)(total ? total : 1), sizeof(int64_t), "cases", (void **)&r->shown));
  unsigned char *seen;
  C3_TRY(c3_calloc_array((size_t)r->n, 1, "cases", (void **)&seen));
  for (int64_t k = 0; k < longest; k++)
    for (int i = 0; i < r->n_sel; i++)
      if (k < r->sel[i].count && !seen[r->sel[i].index[k]]) {
        seen[r->sel[i].index[k]] = 1;
        r->shown[r->n_chosen_all++] = r->sel[i].index[k];
      }
  c3_free(seen);
  int64_t cap = r->o.max_cases ? r->o.max_cases : 48;
  r->n_shown = r->n_chosen_all < cap ? r->n_chosen_all : cap;
  return CSAL3D_OK;
}

/* The image of case i: from the dataset (by id) when one is given, else the table's. */
static csal3d_status c3_report_image_path(c3_report *r, int64_t i, char **out) {
  *out = NULL;
  if (!r->ds) {
    *out = c3_strdup(c3_scores_image(r->s, i, 0));
    return *out ? CSAL3D_OK : CSAL3D_ERR_OUT_OF_MEMORY;
  }
  size_t m = 0;
  C3_TRY(csal3d_dataset_size(r->ds, &m));
  for (size_t k = 0; k < m; k++) {
    char id[4096];
    if (csal3d_dataset_case_string(r->ds, k, "id", id, sizeof id, NULL) != CSAL3D_OK) continue;
    if (strcmp(id, c3_scores_id(r->s, i))) continue;
    size_t need = 0;
    C3_TRY(csal3d_dataset_case_string(r->ds, k, "image", NULL, 0, &need));
    C3_TRY(c3_alloc(need, "image path", (void **)out));
    return csal3d_dataset_case_string(r->ds, k, "image", *out, need, NULL);
  }
  return CSAL3D_OK; /* not in the dataset: the panel says so */
}

static csal3d_status c3_report_slices(c3_report *r) {
  if (!r->n_shown) return CSAL3D_OK;
  C3_TRY(c3_calloc_array((size_t)r->n_shown, sizeof *r->planes, "slices", (void **)&r->planes));
  int size = r->o.image_size ? r->o.image_size : 160;
  r->map_lo = INFINITY, r->map_hi = -INFINITY;
  for (int64_t k = 0; k < r->n_shown; k++) {
    C3_TRY(c3_progress(r->ctx, "report", (uint64_t)k, (uint64_t)r->n_shown));
    int64_t i = r->shown[k];
    char *image = NULL, *map = NULL;
    csal3d_status s = c3_report_image_path(r, i, &image);
    if (s == CSAL3D_OK && r->o.maps_dir) {
      map = c3_map_in_dir(r->o.maps_dir, c3_scores_id(r->s, i));
      if (!map) s = CSAL3D_ERR_OUT_OF_MEMORY;
    } else if (s == CSAL3D_OK && c3_scores_map(r->s, i)) {
      map = c3_strdup(c3_scores_map(r->s, i));
      if (!map) s = CSAL3D_ERR_OUT_OF_MEMORY;
    }
    if (s == CSAL3D_OK) s = c3_case_planes_make(image, map, size, &r->planes[k]);
    c3_case_planes *p = &r->planes[k];
    if (s == CSAL3D_OK && !image && r->ds)
      snprintf(p->note, sizeof p->note, "the case is not in the dataset %s", r->o.dataset);
    else if (s == CSAL3D_OK && !map && !p->note[0])
      snprintf(p->note, sizeof p->note, "no uncertainty map (score with --maps, or give the "
               "maps folder): slices through the centre");
    if (s == CSAL3D_OK && p->note[0])
      c3_log(r->ctx, CSAL3D_LOG_WARN, "report: case '%s': %s", c3_scores_id(r->s, i), p->note);
    c3_free(image);
    c3_free(map);
    C3_TRY(s);
    if (p->has_map) {
      r->map_lo = p->map_lo < r->map_lo ? p->map_lo : r->map_lo;
      r->map_hi = p->map_hi > r->map_hi ? p->map_hi : r->map_hi;
    }
  }
  if (!(r->map_hi > r->map_lo)) r->map_hi = r->map_lo + 1;
  return c3_progress(r->ctx, "report", (uint64_t)r->n_shown, (uint64_t)r->n_shown);
}

/* ---- the page ---- */

static const char c3_style[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "margin:0;background:#f4f5f7;color:#1d2125}"
    "header{background:#243447;color:#fff;padding:18px 28px}"
    "header h1{margin:0 0 4px;font-size:22px}header p{margin:2px 0;color:#cfd8e3}"
    "nav{padding:8px 28px;background:#fff;border-bottom:1px solid #ddd}"
    "nav a{margin-right:18px;color:#1565c0;text-decoration:none}"
    "main{padding:8px 28px 40px;max-width:1240px}"
    "section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:14px 20px;"
    "margin:16px 0}h2{margin:0 0 8px;font-size:18px}"
    ".note{color:#555}.warn{color:#a14400}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #dde1e6;"
    "padding:3px 8px;text-align:right}th{background:#f0f2f5}td.l,th.l{text-align:left}"
    ".plot text,.cbar text{font-size:11px}.tk{fill:#333}.lb{font-size:13px;fill:#111}"
    ".rk{font-size:11px;font-weight:bold}.bar{fill:#7c93b0}"
    ".legend span{display:inline-block;margin:2px 12px 2px 0;white-space:nowrap}"
    ".sw{display:inline-block;width:11px;height:11px;border-radius:6px;"
    "vertical-align:-1px;margin-right:4px}"
    ".cases{display:flex;flex-wrap:wrap;gap:14px}"
    ".case{border:1px solid #dde1e6;border-radius:6px;padding:8px 10px;background:#fafbfc}"
    ".case h3{margin:0 0 4px;font-size:15px}.case .meta{font-size:12.5px;color:#333}"
    ".views{display:flex;gap:6px;align-items:flex-end;margin:6px 0}"
    ".views figure{margin:0;text-align:center}.views figcaption{font-size:11px;color:#555}"
    ".views img{display:block;background:#000}"
    "dl.meta{display:grid;grid-template-columns:max-content auto;gap:1px 14px;margin:6px 0}"
    "dl.meta dt{color:#555}dl.meta dd{margin:0;word-break:break-all}";

static void c3_p(c3_outfile *o, const char *s) { c3_outfile_write(o, s, strlen(s)); }

static void c3_page_head(c3_report *r, c3_outfile *o) {
  const char *title = r->o.title ? r->o.title : "csal3d report";
  c3_p(o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>");
  c3_html_text(o, title);
  c3_outfile_printf(o, "</title><style>%s", c3_style);
  for (int64_t k = 0; k < r->n_clusters; k++) {
    char c[8];
    c3_cluster_colour(k, c);
    c3_outfile_printf(o, ".k%" PRId64 "{fill:%s}", k, c);
  }
  c3_p(o, ".kn{fill:#7c93b0}.pts circle{fill-opacity:.8}</style></head>\n<body><header><h1>");
  c3_html_text(o, title);
  c3_outfile_printf(o, "</h1><p>%" PRId64 " cases, features of %" PRId64 " values; %d "
                    "selection%s", r->n, r->d, r->n_sel, r->n_sel == 1 ? "" : "s");
  for (int i = 0; i < r->n_sel; i++) {
    c3_p(o, i ? ", " : ": ");
    c3_html_text(o, r->sel[i].strategy);
    c3_outfile_printf(o, " (%" PRId64 " cases)", r->sel[i].count);
  }
  c3_p(o, "</p>");
  if (r->o.scores_path) {
    c3_p(o, "<p>scores: ");
    c3_html_text(o, r->o.scores_path);
    c3_p(o, "</p>");
  }
  c3_p(o, "</header><nav><a href=\"#space\">Feature space</a><a href=\"#scores\">Uncertainty</a>"
          "<a href=\"#cases\">Chosen cases</a>");
  if (r->n_sel) c3_p(o, "<a href=\"#selections\">Selections</a>");
  if (r->n_runs) c3_p(o, "<a href=\"#evaluation\">Evaluation</a>");
  c3_p(o, "<a href=\"#provenance\">Provenance</a></nav><main>\n");
}

static void c3_legend_marker(c3_outfile *o, int s) {
  c3_p(o, "<svg width=\"18\" height=\"18\" viewBox=\"0 0 18 18\" style=\"vertical-align:-4px\">");
  c3_svg_marker(o, s, 9, 9, 6);
  c3_p(o, "</svg>");
}

static void c3_section_space(c3_report *r, c3_outfile *o) {
  c3_p(o, "<section id=\"space\"><h2>The feature space</h2><p class=\"note\">Every case's "
          "feature projected on its first two principal components (PCA of the centred "
          "features);");
  c3_outfile_printf(o, " the two axes hold <b>%.1f%%</b> and <b>%.1f%%</b> of the variance "
                    "(%.1f%% together). One scale on both axes. Hover over a point for its "
                    "case, score, cluster and typicality.</p>", 100 * r->frac[0],
                    100 * r->frac[1], 100 * (r->frac[0] + r->frac[1]));
  if (r->n_sampled < r->n_unchosen)
    c3_outfile_printf(o, "<p class=\"warn\">Drawn: all %" PRId64 " chosen cases and a random "
                      "sample of %" PRId64 " of the %" PRId64 " others (the subsample keeps the "
                      "page quick to open; the PCA uses every case).</p>",
                      r->n - r->n_unchosen, r->n_sampled, r->n_unchosen);
  c3_p(o, "<div class=\"legend\">");
  if (r->cluster_sel >= 0) {
    c3_outfile_printf(o, "<span>colour: the %" PRId64 " clusters of ", r->n_clusters);
    c3_html_text(o, r->sel[r->cluster_sel].strategy);
    c3_outfile_printf(o, " (selection %d); typicality: Eq. 10 within them</span>",
                      r->cluster_sel + 1);
    for (int64_t k = 0; k < r->n_clusters && k < 40; k++) {
      char c[8];
      c3_cluster_colour(k, c);
      c3_outfile_printf(o, "<span><i class=\"sw\" style=\"background:%s\"></i>%" PRId64
                        "</span>", c, k);
    }
  } else {
    c3_p(o, "<span>no clusters (no selection with clusters given)</span>");
  }
  c3_p(o, "</div><div class=\"legend\">");
  for (int s = 0; s < r->n_sel; s++) {
    c3_p(o, "<span>");
    c3_legend_marker(o, s);
    c3_outfile_printf(o, " <b style=\"color:%s\">", c3_sel_colour(s));
    c3_html_text(o, r->sel[s].strategy);
    c3_p(o, "</b>, with its ranks</span>");
  }
  c3_p(o, "</div>");
  c3_report_points pt = {r->n, r->xy, r->score, r->cluster, r->typ, r->ids, r->drawn,
                         {r->frac[0], r->frac[1]}, r->digits};
  c3_svg_scatter(o, &pt, r->sel, r->n_sel);
  c3_p(o, "</section>\n");
}

static int c3_dbl_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static csal3d_status c3_section_scores(c3_report *r, c3_outfile *o) {
  double *v;
  C3_TRY(c3_alloc_array((size_t)r->n, sizeof *v, "scores", (void **)&v));
  memcpy(v, r->score, (size_t)r->n * sizeof *v);
  qsort(v, (size_t)r->n, sizeof *v, c3_dbl_cmp);
  char lo[32], med[32], hi[32];
  c3_fmt_digits(lo, sizeof lo, v[0], r->digits);
  c3_fmt_digits(med, sizeof med, r->n % 2 ? v[r->n / 2] : (v[r->n / 2 - 1] + v[r->n / 2]) / 2,
                r->digits);
  c3_fmt_digits(hi, sizeof hi, v[r->n - 1], r->digits);
  c3_free(v);
  c3_outfile_printf(o, "<section id=\"scores\"><h2>The uncertainty</h2><p class=\"note\">"
                    "The distribution of the %" PRId64 " cases' uncertainty scores (lowest "
                    "%s, median %s, highest %s); below it, where each selection's cases lie.",
                    r->n, lo, med, hi);
  c3_p(o, "</p>");
  c3_report_points pt = {r->n, r->xy, r->score, r->cluster, r->typ, r->ids, r->drawn,
                         {r->frac[0], r->frac[1]}, r->digits};
  c3_svg_histogram(o, &pt, r->sel, r->n_sel);
  c3_p(o, "</section>\n");
  return CSAL3D_OK;
}

static const char *const c3_view_names[3] = {"axial", "coronal", "sagittal"};
static const char *const c3_view_axes[3] = {"z", "y", "x"};

static csal3d_status c3_case_panel(c3_report *r, c3_outfile *o, int64_t k) {
  int64_t i = r->shown[k];
  const c3_case_planes *p = &r->planes[k];
  c3_p(o, "<div class=\"case\"><h3>");
  c3_html_text(o, c3_scores_id(r->s, i));
  c3_p(o, "</h3><div class=\"meta\">");
  char sc[32];
  c3_fmt_digits(sc, sizeof sc, r->score[i], r->digits);
  c3_outfile_printf(o, "score <b>%s</b>", sc);
  if (r->cluster) {
    char ty[32];
    c3_fmt_value(ty, sizeof ty, r->typ[i]);
    c3_outfile_printf(o, " &middot; cluster %" PRId64 " of ", r->cluster[i]);
    c3_html_text(o, r->sel[r->cluster_sel].strategy);
    c3_outfile_printf(o, " &middot; typicality (Eq. 10) %s", ty);
  }
  for (int s = 0; s < r->n_sel; s++)
    for (int64_t q = 0; q < r->sel[s].count; q++) {
      if (r->sel[s].index[q] != i) continue;
      char ty[32];
      c3_fmt_value(ty, sizeof ty, r->sel[s].typicality[q]);
      c3_outfile_printf(o, "<br><b style=\"color:%s\">", c3_sel_colour(s));
      c3_html_text(o, r->sel[s].strategy);
      c3_outfile_printf(o, " #%" PRId64 "</b>: rule ", q + 1);
      c3_html_text(o, r->sel[s].rule[q]);
      if (r->sel[s].cluster[q] >= 0)
        c3_outfile_printf(o, ", cluster %" PRId64 " of %" PRId64 " cases", r->sel[s].cluster[q],
                          r->sel[s].cluster_size[q]);
      if (!isnan(r->sel[s].typicality[q])) c3_outfile_printf(o, ", typicality %s", ty);
    }
  c3_p(o, "</div>");
  if (p->has_image || p->has_map) {
    c3_p(o, "<div class=\"views\">");
    for (int v = 0; v < 3; v++) {
      uint8_t *rgb = NULL, *png = NULL;
      size_t len = 0;
      csal3d_status s = c3_case_planes_rgb(p, v, r->map_lo, r->map_hi, &rgb);
      if (s == CSAL3D_OK) s = c3_png_rgb(rgb, p->w[v], p->h[v], &png, &len);
      c3_free(rgb);
      if (s != CSAL3D_OK) return s;
      int fixed = v == 0 ? 2 : v == 1 ? 1 : 0;
      c3_outfile_printf(o, "<figure><img width=\"%d\" height=\"%d\" alt=\"%s slice\" "
                        "src=\"data:image/png;base64,", p->w[v], p->h[v], c3_view_names[v]);
      c3_base64_write(o, png, len);
      c3_free(png);
      c3_outfile_printf(o, "\"><figcaption>%s, %s = %" PRId64 "</figcaption></figure>",
                        c3_view_names[v], c3_view_axes[v], p->at[fixed]);
    }
    c3_p(o, "</div>");
  }
  if (p->has_map)
    c3_outfile_printf(o, "<div class=\"meta\">most uncertain region at voxel (%" PRId64
                      ", %" PRId64 ", %" PRId64 ") of %" PRId64 " x %" PRId64 " x %" PRId64
                      "</div>", p->at[0], p->at[1], p->at[2], p->dims[0], p->dims[1],
                      p->dims[2]);
  if (p->has_map) c3_svg_colour_bar(o, r->map_lo, r->map_hi);
  if (p->note[0]) {
    c3_p(o, "<div class=\"meta warn\">");
    c3_html_text(o, p->note);
    c3_p(o, "</div>");
  }
  c3_p(o, "</div>\n");
  return CSAL3D_OK;
}

static csal3d_status c3_section_cases(c3_report *r, c3_outfile *o) {
  c3_p(o, "<section id=\"cases\"><h2>The chosen cases</h2>");
  if (!r->n_sel) {
    c3_p(o, "<p class=\"note\">No selection given (give the selection.json of csal3d select)."
            "</p></section>\n");
    return CSAL3D_OK;
  }
  c3_p(o, "<p class=\"note\">Three orthogonal slices through each case's most uncertain region "
          "(the largest mean of its uncertainty map over a box a tenth of the volume's side, "
          "in the body and an eighth of each side away from the borders; red ticks mark where "
          "the other slices cross): the image in grey, the uncertainty "
          "over it in viridis, more opaque where higher, on one scale for all cases. Slices "
          "in RAS+: the patient's right on the left, anterior and superior up.</p>");
  if (r->n_shown < r->n_chosen_all)
    c3_outfile_printf(o, "<p class=\"warn\">%" PRId64 " of the %" PRId64 " chosen cases are shown "
                      "(rank by rank across the selections; --max-cases, max_cases in C and Python, sets how many)."
                      "</p>", r->n_shown, r->n_chosen_all);
  c3_p(o, "<div class=\"cases\">");
  for (int64_t k = 0; k < r->n_shown; k++) C3_TRY(c3_case_panel(r, o, k));
  c3_p(o, "</div></section>\n");
  return CSAL3D_OK;
}

static csal3d_status c3_section_selections(c3_report *r, c3_outfile *o) {
  if (!r->n_sel) return CSAL3D_OK;
  c3_p(o, "<section id=\"selections\"><h2>The selections</h2>");
  if (r->cluster) {
    int64_t *cnt;
    C3_TRY(c3_calloc_array((size_t)r->n_clusters + 1, sizeof *cnt, "clusters", (void **)&cnt));
    for (int64_t i = 0; i < r->n; i++)
      if (r->cluster[i] >= 0) cnt[r->cluster[i]]++;
    c3_p(o, "<p class=\"note\">Which clusters each selection's cases fall in (clusters of ");
    c3_html_text(o, r->sel[r->cluster_sel].strategy);
    c3_p(o, "; a cell counts the chosen cases in that cluster).</p><div style=\"overflow-x:auto\">"
            "<table><tr><th class=\"l\">selection</th><th>covers</th>");
    for (int64_t k = 0; k < r->n_clusters; k++) {
      char c[8];
      c3_cluster_colour(k, c);
      c3_outfile_printf(o, "<th><i class=\"sw\" style=\"background:%s\"></i>%" PRId64
                        "<br><small>%" PRId64 "</small></th>", c, k, cnt[k]);
    }
    c3_p(o, "</tr>");
    for (int s = 0; s < r->n_sel; s++) {
      for (int64_t k = 0; k <= r->n_clusters; k++) cnt[k] = 0;
      for (int64_t q = 0; q < r->sel[s].count; q++) {
        int64_t c = r->cluster[r->sel[s].index[q]];
        if (c >= 0) cnt[c]++;
      }
      int64_t covered = 0;
      for (int64_t k = 0; k < r->n_clusters; k++) covered += cnt[k] > 0;
      c3_p(o, "<tr><td class=\"l\">");
      c3_html_text(o, r->sel[s].strategy);
      c3_outfile_printf(o, "</td><td>%" PRId64 " of %" PRId64 "</td>", covered, r->n_clusters);
      for (int64_t k = 0; k < r->n_clusters; k++)
        c3_outfile_printf(o, "<td%s>%s%" PRId64 "</td>",
                          cnt[k] ? "" : " style=\"background:#fdecea\"", "", cnt[k]);
      c3_p(o, "</tr>");
    }
    c3_p(o, "</table></div>");
    c3_free(cnt);
  }
  if (r->n_sel >= 2) {
    int64_t M[C3_REPORT_MAX_SELECTIONS * C3_REPORT_MAX_SELECTIONS];
    C3_TRY(c3_report_overlap(r->sel, r->n_sel, r->n, M));
    c3_p(o, "<p class=\"note\">Overlap: the cases two selections have in common (the diagonal: "
            "each selection's size).</p><table><tr><th></th>");
    for (int b = 0; b < r->n_sel; b++) {
      c3_p(o, "<th>");
      c3_html_text(o, r->sel[b].strategy);
      c3_p(o, "</th>");
    }
    c3_p(o, "</tr>");
    for (int a = 0; a < r->n_sel; a++) {
      c3_p(o, "<tr><th class=\"l\">");
      c3_html_text(o, r->sel[a].strategy);
      c3_p(o, "</th>");
      for (int b = 0; b < r->n_sel; b++) {
        int64_t m = M[a * r->n_sel + b], size = r->sel[a].count < r->sel[b].count
                                                    ? r->sel[a].count : r->sel[b].count;
        double f = size ? (double)m / (double)size : 0;
        c3_outfile_printf(o, "<td style=\"background:rgba(21,101,192,%.2f)%s\">%" PRId64 "</td>",
                          0.08 + 0.5 * f, f > 0.6 ? ";color:#fff" : "", m);
      }
      c3_p(o, "</tr>");
    }
    c3_p(o, "</table>");
  }
  c3_p(o, "</section>\n");
  return CSAL3D_OK;
}

static void c3_section_evaluation(c3_report *r, c3_outfile *o) {
  if (!r->n_runs) return;
  c3_p(o, "<section id=\"evaluation\"><h2>Evaluation</h2><p class=\"note\">Mean Dice of a "
          "segmenter trained on each strategy's cases, per budget: each dot one seed, the "
          "bar mean &plusmn; sd over seeds. From ");
  c3_html_text(o, r->o.evaluation);
  c3_outfile_printf(o, " (%zu runs", r->n_runs);
  if (r->runs_left_out)
    c3_outfile_printf(o, "; %zu without a mean Dice left out", r->runs_left_out);
  c3_p(o, ").</p>");
  c3_svg_evaluation(o, r->runs, r->n_runs);
  /* the table: strategies x budgets, mean +- sd (n) */
  const char *strat[64];
  int64_t bud[64];
  int ns = 0, nb = 0;
  for (size_t i = 0; i < r->n_runs; i++) {
    int k = 0;
    while (k < ns && strcmp(strat[k], r->runs[i].strategy)) k++;
    if (k == ns && ns < 64) strat[ns++] = r->runs[i].strategy;
    k = 0;
    while (k < nb && bud[k] != r->runs[i].budget) k++;
    if (k == nb && nb < 64) bud[nb++] = r->runs[i].budget;
  }
  for (int a = 1; a < nb; a++) /* budgets ascending */
    for (int b = a; b > 0 && bud[b - 1] > bud[b]; b--) {
      int64_t t = bud[b];
      bud[b] = bud[b - 1], bud[b - 1] = t;
    }
  c3_p(o, "<table><tr><th class=\"l\">strategy</th>");
  for (int b = 0; b < nb; b++) c3_outfile_printf(o, "<th>budget %" PRId64 "</th>", bud[b]);
  c3_p(o, "</tr>");
  for (int s = 0; s < ns; s++) {
    c3_p(o, "<tr><td class=\"l\">");
    c3_html_text(o, strat[s]);
    c3_p(o, "</td>");
    for (int b = 0; b < nb; b++) {
      double sum = 0, sq = 0;
      int64_t k = 0;
      for (size_t i = 0; i < r->n_runs; i++)
        if (r->runs[i].budget == bud[b] && !strcmp(r->runs[i].strategy, strat[s]))
          sum += r->runs[i].dice, k++;
      if (!k) {
        c3_p(o, "<td></td>");
        continue;
      }
      double mean = sum / (double)k;
      for (size_t i = 0; i < r->n_runs; i++)
        if (r->runs[i].budget == bud[b] && !strcmp(r->runs[i].strategy, strat[s]))
          sq += (r->runs[i].dice - mean) * (r->runs[i].dice - mean);
      c3_outfile_printf(o, "<td>%.4g &plusmn; %.2g <small>(%" PRId64 ")</small></td>", mean,
                        k > 1 ? sqrt(sq / (double)(k - 1)) : 0.0, k);
    }
    c3_p(o, "</tr>");
  }
  c3_p(o, "</table></section>\n");
}

static void c3_section_provenance(c3_report *r, c3_outfile *o) {
  c3_p(o, "<section id=\"provenance\"><h2>Provenance</h2><dl class=\"meta\">");
  if (r->o.scores_path) {
    c3_p(o, "<dt>scores file</dt><dd>");
    c3_html_text(o, r->o.scores_path);
    c3_p(o, "</dd>");
  }
  for (int s = 0; s < r->n_sel; s++) {
    c3_outfile_printf(o, "<dt>selection %d</dt><dd>", s + 1);
    c3_html_text(o, r->sel[s].path);
    c3_p(o, "</dd>");
  }
  for (size_t i = 0; i < c3_scores_meta_count(r->s); i++) {
    const char *k, *v;
    c3_scores_meta_at(r->s, i, &k, &v);
    if (strlen(v) > 600) continue; /* a long list (skipped cases): the scores file has it */
    c3_p(o, "<dt>");
    c3_html_text(o, k);
    c3_p(o, "</dt><dd>");
    c3_html_text(o, v);
    c3_p(o, "</dd>");
  }
  c3_outfile_printf(o, "</dl><p class=\"note\">Written by libcsal3d %s. This page is "
                    "self-contained: it loads nothing from anywhere.</p></section>\n",
                    csal3d_version());
}

static csal3d_status c3_report_page(c3_report *r, c3_outfile *o) {
  c3_page_head(r, o);
  c3_section_space(r, o);
  C3_TRY(c3_section_scores(r, o));
  C3_TRY(c3_section_cases(r, o));
  C3_TRY(c3_section_selections(r, o));
  c3_section_evaluation(r, o);
  c3_section_provenance(r, o);
  c3_p(o, "</main></body></html>\n");
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_report_write(const csal3d_scores *scores,
                                             const csal3d_report_options *options,
                                             const char *out_html,
                                             const csal3d_context *ctx) {
  C3_CHECK_ARG(scores != NULL, "csal3d_report_write: scores is NULL");
  c3_report r;
  memset(&r, 0, sizeof r);
  c3_report_defaults(&r.o);
  C3_TRY(c3_options_read(&r.o, sizeof r.o, options, "csal3d_report_options"));
  r.s = scores;
  r.ctx = ctx;
  c3_outfile o;
  memset(&o, 0, sizeof o);
  csal3d_status s = c3_report_check(&r, out_html);
  if (s == CSAL3D_OK) s = c3_report_read(&r);
  if (s == CSAL3D_OK) s = c3_report_compute(&r);
  if (s == CSAL3D_OK) s = c3_report_pick_cases(&r);
  if (s == CSAL3D_OK) s = c3_report_slices(&r);
  if (s == CSAL3D_OK) s = c3_outfile_open(&o, out_html);
  if (s == CSAL3D_OK) s = c3_report_page(&r, &o);
  if (s == CSAL3D_OK) s = c3_outfile_commit(&o);
  c3_outfile_abort(&o);
  c3_report_free(&r);
  return s;
}
