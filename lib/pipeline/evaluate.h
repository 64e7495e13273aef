/* Internals of the segmentation evaluation (include/csal3d/evaluate.h): the results of
 * a run and the files that hold them, shared by evaluate.c, evaluate_io.c and
 * evaluate_compare.c. */
#ifndef C3_PIPELINE_EVALUATE_H
#define C3_PIPELINE_EVALUATE_H

#include <jansson.h>

#include "csal3d/evaluate.h"

struct csal3d_evaluation {
  size_t n;          /* validation cases */
  int labels;        /* L */
  char **ids;        /* n ids */
  double *dice;      /* n * L (NaN: undefined) */
  double *case_mean; /* n */
  double *label_mean; /* L */
  double mean;
  /* the run */
  char strategy[32]; /* "given" or a strategy's name */
  int64_t budget;
  int has_seed;
  uint64_t selection_seed, train_seed;
  char **train_ids;
  size_t n_train;
  int64_t iterations;
  double train_seconds;
};

/* Computes case means, label means and the mean from dice. */
void c3_evaluation_summarise(csal3d_evaluation *ev);

/* Empty results with room for n_val cases (ids NULL, ev->n 0), n_train training ids
 * (ev->n_train 0) and L labels; strategy "given", budget n_train. */
csal3d_status c3_evaluation_alloc(size_t n_val, size_t n_train, int L, csal3d_evaluation **out);

/* How the results JSON is written: reals with 17 digits, so that the runs a continued
 * comparison reads back are the numbers it computed. */
#define C3_EVAL_JSON_FLAGS (JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17))

/* Writes runs (in order) to the JSON and/or CSV results file (either path may be NULL),
 * each atomically, the JSON first; the JSON records `settings` (may be NULL). */
csal3d_status c3_evaluation_write(const csal3d_evaluation *const *runs, size_t n_runs,
                                  int per_case, const char *csv, const char *json,
                                  const json_t *settings);

/* ---- run-level resume (evaluate_resume.c) ---- */

/* What shapes a run's results, as the results JSON's "settings" object: the training
 * options, the load options, the validation ids and, for a comparison (sampler
 * non-NULL), the sampler options and the scores' fingerprint. NULL when out of memory. */
json_t *c3_evaluate_settings(const csal3d_evaluate_options *o, const char *const *val_ids,
                             size_t n_val, const csal3d_sampler_options *sampler,
                             const char *scores_hash);

/* The runs of the existing results JSON `path` when its settings are `settings`
 * (*runs c3_alloc'ed, each a csal3d_evaluation); INVALID_ARGUMENT naming the first
 * difference otherwise, FORMAT when it is not a comparison's results file. */
csal3d_status c3_evaluate_resume(const char *path, const json_t *settings,
                                 csal3d_evaluation ***runs, size_t *n_runs);

/* OK when `path` starts with the results CSV's header, else IO (an existing file that
 * the comparison must not replace). */
csal3d_status c3_evaluate_check_csv(const char *path);

/* The training and evaluation of one run (evaluate.c): indices already checked. The
 * result's strategy/seed fields are left for the caller. */
csal3d_status c3_evaluate_run(csal3d_context *ctx, const csal3d_dataset *ds,
                              const size_t *train, size_t n_train, const size_t *val,
                              size_t n_val, const csal3d_evaluate_options *o,
                              csal3d_evaluation **out);

/* The validation indices: the given ones checked (distinct, in range, none in
 * `exclude_ids`/train), or every labelled case whose index is not in train and whose
 * id is not in exclude_ids (n_exclude strings; may be 0). *out c3_alloc'ed. */
csal3d_status c3_evaluate_validation(const csal3d_dataset *ds, const size_t *train,
                                     size_t n_train, const size_t *val, size_t n_val,
                                     const char *const *exclude_ids, size_t n_exclude,
                                     size_t **out, size_t *n_out);

/* Checks the results files and the checkpoint before any work (c3_output_check). */
csal3d_status c3_evaluate_check_outputs(const csal3d_dataset *ds,
                                        const csal3d_evaluate_options *o);

/* Checks an options struct's values (after c3_options_read). */
csal3d_status c3_evaluate_options_check(const csal3d_evaluate_options *o);

#endif
