/* Internals of the segmentation evaluation (include/csal3d/evaluate.h): the results of
 * a run and the files that hold them, shared by evaluate.c, evaluate_io.c and
 * evaluate_compare.c. */
#ifndef C3_PIPELINE_EVALUATE_H
#define C3_PIPELINE_EVALUATE_H

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

/* Writes runs (in order) to the CSV and/or JSON results file (either path may be NULL),
 * atomically. */
csal3d_status c3_evaluation_write(const csal3d_evaluation *const *runs, size_t n_runs,
                                  int per_case, const char *csv, const char *json);

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
