/* Internals of the report page (csal3d_report_write in include/csal3d/report.h):
 * report_data.c reads the manifests and the evaluation results and computes the PCA and
 * the overlaps; report_image.c draws the slices (colour map, PNG through libpng, base64);
 * report_svg.c the plots; report.c puts the page together. */
#ifndef C3_PIPELINE_REPORT_H
#define C3_PIPELINE_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "csal3d/report.h"
#include "io/fileutil.h"

/* Most selections on one page (csal3d_report_options.n_selections). */
#define C3_REPORT_MAX_SELECTIONS 16

/* ---- data (report_data.c) ---- */

/* One manifest, its cases matched to the rows of the scores table. */
typedef struct c3_report_sel {
  char *path;     /* as given */
  char *strategy; /* the manifest's "strategy" */
  int64_t count;  /* chosen cases, in rank order */
  int64_t *index; /* count rows of the scores table */
  int64_t *cluster, *cluster_size;
  double *score, *typicality; /* NaN where the manifest has null; typicality may be inf */
  char **rule;                /* count strings */
  int64_t *assign;            /* N clusters ("clusters" of the manifest), or NULL */
  int64_t n_clusters;         /* 1 + the largest cluster in assign (0 without) */
} c3_report_sel;

/* Reads the JSON manifest at `path` written for the table `s` (csal3d_manifest_write):
 * CSAL3D_ERR_IO when it cannot be read, CSAL3D_ERR_FORMAT when it is not a manifest or
 * was made from another table (a case it names is not in `s`, or its n_cases differs). */
csal3d_status c3_report_read_selection(const csal3d_scores *s, const char *path,
                                       c3_report_sel *out);
void c3_report_sel_free(c3_report_sel *sel);

/* M[a * n + b] = the number of cases that selections a and b have in common (M[a, a] is
 * a's count). */
csal3d_status c3_report_overlap(const c3_report_sel *sel, int n, int64_t n_cases,
                                int64_t *M);

/* One training run of an evaluation results file (format in include/csal3d/report.h). */
typedef struct c3_eval_run {
  char strategy[64];
  int64_t budget, seed; /* seed -1: a given selection */
  double dice;
} c3_eval_run;

/* Reads a results file (CSV or JSON, sniffed): *runs c3_alloc'ed, *n >= 1 runs;
 * *left_out counts the runs without a mean Dice ("nan", null). CSAL3D_ERR_FORMAT names
 * the file, the line (CSV) or run (JSON) and what is wrong. */
csal3d_status c3_report_read_evaluation(const char *path, c3_eval_run **runs, size_t *n,
                                        size_t *left_out);

/* The projection of the n x d features X (row-major) on their first two principal
 * components: Y (n x 2, row-major) = (X - mean) V, V the top eigenvectors of the
 * covariance (the sign of each chosen so that its largest component is positive);
 * frac[k] = eigenvalue k / the trace (the share of the variance on axis k; 0 when all
 * features are equal). d = 1 gives a second axis of zeros. */
csal3d_status c3_report_pca(const float *X, int64_t n, int64_t d, double *Y, double frac[2]);

/* ---- images (report_image.c) ---- */

/* The viridis colour map (van der Walt and Smith, CC0) at t in [0, 1] (clamped). */
void c3_viridis(double t, uint8_t rgb[3]);
/* A colour for cluster k >= 0 ("#rrggbb"): Tableau 10, then hues by the golden angle. */
void c3_cluster_colour(int64_t k, char out[8]);

/* An 8-bit RGB image (w x h, rows top first) as a PNG file in memory, written by libpng:
 * *png c3_alloc'ed, *len bytes. */
csal3d_status c3_png_rgb(const uint8_t *rgb, int w, int h, uint8_t **png, size_t *len);
/* Writes bytes as base64 (RFC 4648, with padding) into the page. */
void c3_base64_write(c3_outfile *o, const uint8_t *data, size_t n);

/* The three slices of one case: grey image values in [0, 1] (or NaN without an image)
 * and raw map values (NaN without a map), one plane per view, before colouring. */
typedef struct c3_case_planes {
  int w[3], h[3];   /* axial, coronal, sagittal */
  float *grey[3];   /* w x h each */
  float *map[3];    /* w x h each */
  int64_t at[3];    /* the voxel (D, H, W) of the map's grid (else the image's) they cross */
  int64_t dims[3];  /* that grid */
  double map_lo, map_hi; /* the map's median and 99.5th percentile (NaN without a map) */
  int has_image, has_map;
  char note[512];   /* why an image or map is missing ("" when none is) */
} c3_case_planes;

/* Loads a case's image (its first file; channel 0 of a 4-D image) and map (either path
 * may be NULL) and samples the three orthogonal planes through the most uncertain region
 * (through the centre without a map), longest side `size` pixels, mm-true. A file that
 * cannot be read is not an error: it is described in p->note. Fails only when memory does. */
csal3d_status c3_case_planes_make(const char *image, const char *map, int size,
                                  c3_case_planes *p);
void c3_case_planes_free(c3_case_planes *p);
/* Colours view v of p: grey, with the map over it in viridis scaled to [lo, hi], its
 * opacity growing with the value, and ticks at the borders where the other planes cross.
 * *rgb c3_alloc'ed, w x h x 3. */
csal3d_status c3_case_planes_rgb(const c3_case_planes *p, int v, double lo, double hi,
                                 uint8_t **rgb);

/* The voxel of `map` (D x H x W floats) where its mean over a box of side 2r+1
 * (clipped at the borders) is largest (ties: the first in memory order), among the voxels
 * of `mask` (may be NULL: all) at least max(r + 1, side / 8) from the borders (along the
 * axes long enough to leave an inside); without such a voxel, in the mask; without one,
 * anywhere. */
csal3d_status c3_report_peak(const float *map, const int64_t dims[3], int64_t r,
                             const unsigned char *mask, int64_t at[3]);

/* ---- plots (report_svg.c) ---- */

/* What the plots draw of each case (N entries). */
typedef struct c3_report_points {
  int64_t n;
  const double *xy;      /* n x 2: the PCA projection */
  const double *score;   /* n */
  const int64_t *cluster; /* n, or NULL: -1 everywhere */
  const double *typ;     /* n, or NULL */
  const char *const *id; /* n */
  const unsigned char *drawn; /* n: 1 when the point is drawn (chosen or sampled) */
  double frac[2];
  int digits;            /* significant digits of a score (c3_digits_for the scores) */
} c3_report_points;

/* The feature-space scatter (inline SVG) with the selections' chosen cases marked. */
void c3_svg_scatter(c3_outfile *o, const c3_report_points *pt, const c3_report_sel *sel,
                    int n_sel);
/* The histogram of the scores with the chosen cases marked below it. */
void c3_svg_histogram(c3_outfile *o, const c3_report_points *pt, const c3_report_sel *sel,
                      int n_sel);
/* A colour bar (viridis) from lo to hi. */
void c3_svg_colour_bar(c3_outfile *o, double lo, double hi);
/* Mean Dice per strategy and budget: seeds as dots, mean +- sd as bars, lines per
 * strategy. */
void c3_svg_evaluation(c3_outfile *o, const c3_eval_run *runs, size_t n);

/* Marker shape and text colour of selection k (the scatter, the histogram, the legend). */
void c3_svg_marker(c3_outfile *o, int k, double x, double y, double r);
const char *c3_sel_colour(int k);

/* Text with &, <, >, " and ' escaped. */
void c3_html_text(c3_outfile *o, const char *s);
/* A number as the page shows it: 4 significant digits (or `digits`), "inf", "-" for NaN. */
void c3_fmt_value(char *buf, size_t cap, double v);
void c3_fmt_digits(char *buf, size_t cap, double v, int digits);
/* The significant digits (4 to 9) that tell apart numbers spread over [lo, hi]. */
int c3_digits_for(double lo, double hi);

#endif
