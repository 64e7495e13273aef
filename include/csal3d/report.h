/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file report.h
 * @brief One self-contained HTML page that shows a selection: where the chosen cases sit
 *        among the others, what the model found uncertain in them, how strategies differ.
 *
 * csal3d_report_write() is the `csal3d report` command and Python's
 * `csal3d.write_report()`. From a scores table and the manifests that `csal3d select`
 * wrote, it writes one HTML file that needs nothing else: no script, no font, no
 * stylesheet, no image from elsewhere (images are inline PNG `data:` URIs written with
 * libpng, plots inline SVG). It opens in any browser, offline, and can be mailed.
 *
 * The page has these sections:
 * - **The feature space**: every case's feature projected on the first two principal
 *   components (PCA through LAPACK of the centred features; the share of the variance each
 *   axis holds is stated), coloured by the clusters of the first selection that has them,
 *   the chosen cases marked with their rank (one marker shape per selection). Hovering a
 *   point names its case, score, cluster and typicality (an SVG `<title>`; typicality is
 *   the cosine typicality of Eq. 10 within those clusters). Above
 *   @ref csal3d_report_options.max_points unchosen cases, a seeded sample of them is drawn
 *   (the PCA uses all) and the page says so.
 * - **The uncertainty**: a histogram of every case's score with the chosen cases marked.
 * - **Each chosen case**: three orthogonal slices (axial, coronal, sagittal, RAS+ with
 *   the patient's right on the left) through its most uncertain region (the maximum of
 *   the uncertainty map averaged over a box about a tenth of the volume's side), the image
 *   in grey with the map over it in viridis (opacity growing with uncertainty; one scale
 *   for all cases, shown by a colour bar), with its id, score, cluster, typicality, the
 *   rule that chose it and its rank in each selection. A case whose image or map cannot
 *   be read gets a note in its panel (and a warning in the log) instead of images.
 * - **Selections** (when given): per selection which clusters its cases fall in, and with
 *   several, their overlap as a matrix (cases in common).
 * - **Evaluation** (with @ref csal3d_report_options.evaluation): mean Dice per strategy
 *   and budget as a plot, each seed's run as a dot and mean +- sd as a bar, and a table.
 *
 * ## The evaluation results file
 * The results files of `csal3d evaluate` (CSV or JSON) as they are, or any file of that
 * shape: a CSV (RFC 4180, one header line; the content is sniffed, not the name) whose
 * header names at least the columns `strategy`, `budget`, `seed` and `mean_dice` (any
 * order, any case; other columns are ignored), one row per training run; with a `case`
 * column only the rows whose case is `mean` (a run's summary) count. Or a JSON file
 * holding an array of objects with those keys, or an object whose `"runs"` or
 * `"results"` member is such an array. `budget` is a positive integer, `seed` a
 * non-negative integer or empty / null (a given selection), `mean_dice` a finite number
 * (a fraction or a percentage, as written) or `nan` / null: such runs are left out and
 * counted on the page. Runs that share a strategy and a budget are one cell.
 */
#ifndef CSAL3D_REPORT_H
#define CSAL3D_REPORT_H

#include "csal3d/context.h"
#include "csal3d/manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What csal3d_report_write() shows. Fill with csal3d_report_options_init(). */
typedef struct csal3d_report_options {
  /** sizeof(csal3d_report_options) as the caller compiled it. */
  size_t struct_size;
  /** @ref n_selections paths of JSON manifests written by csal3d_manifest_write()
   *  (`csal3d select`'s selection.json) from this scores table, or NULL. Default NULL. */
  const char *const *selections;
  /** The number of paths in @ref selections (at most 16). Default 0. */
  size_t n_selections;
  /** A folder holding each case's uncertainty map as `CASE_uncertainty.nii.gz` ('/' in
   *  an id as '_'), as csal3d_score_dataset() writes them; NULL (default): the map paths
   *  the scores table records. */
  const char *maps_dir;
  /** A dataset (as csal3d_dataset_open() opens it) whose images are shown, matched by
   *  case id, where the scores table's image paths are not to be used (files moved);
   *  NULL (default): the paths the table records. */
  const char *dataset;
  /** An evaluation results file (the format above), or NULL (default): no section. */
  const char *evaluation;
  /** The scores file the table came from, named on the page and never overwritten;
   *  NULL (default) for none. */
  const char *scores_path;
  /** The page's title; NULL (default): "csal3d report". */
  const char *title;
  /** At most this many unchosen cases are drawn in the feature space (a seeded sample
   *  above it); 0 (default) means 2000. */
  int64_t max_points;
  /** At most this many chosen cases get slices (in rank order, the selections taken in
   *  turn); 0 (default) means 48. */
  int64_t max_cases;
  /** The longest side of a case's slice images in pixels, 32 to 1024; 0 (default)
   *  means 160. */
  int image_size;
  /** 1: replace an existing page; 0 (default): refuse it before any work. */
  int overwrite;
} csal3d_report_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status csal3d_report_options_init(csal3d_report_options *options);

/**
 * Writes the report page of a scores table and its selections (see the file's
 * description for what it shows).
 *
 * Before any work, @p out_html is checked as csal3d_output_check() checks a file (its
 * folder writable; not an input: the scores file, a manifest, the evaluation file, a
 * case's image, label or map; an existing page only with
 * @ref csal3d_report_options.overwrite), then every manifest and the evaluation file are
 * read and checked. The page is written atomically (a temporary file renamed over
 * @p out_html when complete). Progress goes to the context's callback as ("report", cases
 * drawn, cases to draw) and may cancel; cases whose files cannot be read are logged as
 * warnings.
 *
 * @param scores the table (every case set), as csal3d_scores_load() gives it.
 * @param options NULL for the defaults.
 * @param out_html the page to write.
 * @param ctx optional (NULL allowed): the log, progress and cancellation.
 * @return ::CSAL3D_OK; ::CSAL3D_ERR_IO (an unwritable or existing output, a missing
 *         manifest, evaluation file, maps folder or dataset);
 *         ::CSAL3D_ERR_INVALID_ARGUMENT (bad options, an output that is an input);
 *         ::CSAL3D_ERR_FORMAT (a manifest that is not one, or was made from another scores
 *         table; an evaluation file without the columns above or with a bad value: the
 *         message names the file, the line and what is wrong); ::CSAL3D_ERR_CANCELLED;
 *         ::CSAL3D_ERR_NUMERICAL (the eigensolver failed); ::CSAL3D_ERR_OUT_OF_MEMORY.
 */
CSAL3D_API csal3d_status csal3d_report_write(const csal3d_scores *scores,
                                             const csal3d_report_options *options,
                                             const char *out_html,
                                             const csal3d_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_REPORT_H */
