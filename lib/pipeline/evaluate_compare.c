/* csal3d_evaluate_compare: strategies x budgets x selection seeds from one scores file,
 * each selection trained and evaluated by c3_evaluate_run, the runs appended to the
 * results files as they finish, and the table of mean and sd per cell. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "io/fileutil.h"
#include "model/unet.h"
#include "pipeline/dataset.h"
#include "pipeline/evaluate.h"

struct csal3d_comparison {
  csal3d_comparison_cell *cells;
  size_t n;
};

CSAL3D_API void csal3d_comparison_free(csal3d_comparison *c) {
  if (!c) return;
  c3_free(c->cells);
  c3_free(c);
}

CSAL3D_API csal3d_status csal3d_comparison_cells(const csal3d_comparison *c,
                                                 csal3d_comparison_cell *cells, size_t cell_size,
                                                 size_t capacity, size_t *count) {
  C3_CHECK_ARG(c && count, "csal3d_comparison_cells: NULL argument");
  C3_CHECK_ARG(cells || capacity == 0, "csal3d_comparison_cells: NULL cells");
  C3_CHECK_ARG(cell_size >= sizeof(csal3d_strategy) || capacity == 0,
               "csal3d_comparison_cells: cell_size %zu", cell_size);
  *count = c->n;
  if (capacity < c->n && capacity > 0)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL, "csal3d_comparison_cells: %zu cells, room "
                    "for %zu", c->n, capacity);
  if (capacity == 0) return c->n ? c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL, "csal3d_comparison_cells: "
                                            "%zu cells, room for 0", c->n)
                                 : CSAL3D_OK;
  size_t k = cell_size < sizeof(csal3d_comparison_cell) ? cell_size : sizeof(csal3d_comparison_cell);
  for (size_t i = 0; i < c->n; i++) {
    char *dst = (char *)cells + i * cell_size;
    memset(dst, 0, cell_size);
    memcpy(dst, &c->cells[i], k);
  }
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_comparison_write_table(const csal3d_comparison *c,
                                                       const char *path) {
  C3_CHECK_ARG(c && path && *path, "csal3d_comparison_write_table: NULL argument");
  c3_outfile o;
  C3_TRY(c3_outfile_open(&o, path));
  c3_outfile_printf(&o, "strategy,budget,runs,mean_dice,sd_dice\n");
  for (size_t i = 0; i < c->n; i++) {
    const csal3d_comparison_cell *x = &c->cells[i];
    c3_outfile_printf(&o, "%s,%lld,%lld,", csal3d_strategy_name(x->strategy), (long long)x->budget,
                      (long long)x->runs);
    if (isnan(x->mean)) c3_outfile_printf(&o, "nan,nan\n");
    else c3_outfile_printf(&o, "%.6f,%.6f\n", x->mean, x->sd);
  }
  csal3d_status s = c3_outfile_commit(&o);
  c3_outfile_abort(&o);
  return s;
}

/* The selection of one run, as dataset indices. */
static csal3d_status select_run(csal3d_context *ctx, const csal3d_sampler_options *base,
                                csal3d_strategy strat, int64_t budget, uint64_t seed,
                                const float *feat, const float *sc, int64_t n, int64_t d,
                                const size_t *pool_to_ds, size_t *train) {
  csal3d_sampler_options so = *base;
  so.strategy = strat;
  so.use_seed = 1;
  so.seed = seed;
  csal3d_sampler *smp = NULL;
  csal3d_selection *rec = NULL;
  csal3d_status s = csal3d_sampler_create(ctx, &so, &smp);
  if (s == CSAL3D_OK) s = csal3d_sampler_set_features(smp, feat, n, d);
  if (s == CSAL3D_OK) s = csal3d_sampler_set_scores(smp, sc, n);
  if (s == CSAL3D_OK) s = csal3d_sampler_select(smp, budget);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)budget, sizeof *rec, "selection", (void **)&rec);
  int64_t count = 0;
  if (s == CSAL3D_OK) s = csal3d_sampler_get_selection(smp, rec, sizeof *rec, budget, &count);
  for (int64_t i = 0; i < count && s == CSAL3D_OK; i++) train[i] = pool_to_ds[rec[i].index];
  c3_free(rec);
  csal3d_sampler_free(smp);
  if (s != CSAL3D_OK)
    return c3_error_prefix(s, "selection %s, budget %lld, seed %llu", csal3d_strategy_name(strat),
                           (long long)budget, (unsigned long long)seed);
  return CSAL3D_OK;
}

/* The scores' fingerprint: FNV-1a over the pool's ids, features and scores. */
static void scores_hash(char *const *ids, const float *feat, const float *sc, int64_t n,
                        int64_t d, char out[17]) {
  uint64_t h = 1469598103934665603ULL;
  for (int64_t i = 0; i < n; i++)
    for (const char *p = ids[i];; p++) {
      h = (h ^ (unsigned char)*p) * 1099511628211ULL;
      if (!*p) break;
    }
  const unsigned char *b[2] = {(const unsigned char *)feat, (const unsigned char *)sc};
  size_t len[2] = {(size_t)(n * d) * sizeof(float), (size_t)n * sizeof(float)};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < len[k]; i++) h = (h ^ b[k][i]) * 1099511628211ULL;
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* The run of `runs` for (strategy, budget, seed), or NULL. */
static csal3d_evaluation *find_run(csal3d_evaluation **runs, size_t n, const char *strategy,
                                   int64_t budget, uint64_t seed) {
  for (size_t i = 0; i < n; i++)
    if (runs[i]->has_seed && runs[i]->selection_seed == seed && runs[i]->budget == budget &&
        !strcmp(runs[i]->strategy, strategy))
      return runs[i];
  return NULL;
}

/* The earlier runs to continue from (*old, *n_old) and whether the existing results
 * files may be replaced: the JSON's settings must be ours, the CSV a results CSV. */
static csal3d_status prepare_outputs(const csal3d_dataset *ds, const csal3d_evaluate_options *o,
                                     const json_t *settings, csal3d_evaluation ***old,
                                     size_t *n_old) {
  struct stat sb;
  csal3d_evaluate_options chk = *o;
  if (!o->overwrite && o->output_json && stat(o->output_json, &sb) == 0) {
    C3_TRY(c3_evaluate_resume(o->output_json, settings, old, n_old));
    if (o->output_csv && stat(o->output_csv, &sb) == 0) C3_TRY(c3_evaluate_check_csv(o->output_csv));
    chk.overwrite = 1;
  } else if (!o->overwrite && !o->output_json && o->output_csv && stat(o->output_csv, &sb) == 0) {
    return c3_error(CSAL3D_ERR_IO, "the results CSV %s exists: set the option overwrite to "
                    "replace it (a comparison continues from its earlier runs when the option "
                    "output_json is set: the JSON records the settings)", o->output_csv);
  }
  return c3_evaluate_check_outputs(ds, &chk);
}

CSAL3D_API csal3d_status csal3d_evaluate_compare(
    csal3d_context *ctx, const csal3d_dataset *ds, const csal3d_scores *scores,
    const csal3d_strategy *strategies, size_t n_strategies, const int64_t *budgets,
    size_t n_budgets, const uint64_t *seeds, size_t n_seeds, const size_t *validation,
    size_t n_validation, const csal3d_sampler_options *sampler_options,
    const csal3d_evaluate_options *options, csal3d_comparison **out) {
  if (out) *out = NULL;
  C3_CHECK_ARG(ctx && ds && scores && strategies && budgets && seeds,
               "csal3d_evaluate_compare: NULL argument");
  C3_CHECK_ARG(n_strategies >= 1 && n_budgets >= 1 && n_seeds >= 1,
               "csal3d_evaluate_compare: no strategy, budget or seed");
  C3_CHECK_ARG(validation || n_validation == 0,
               "csal3d_evaluate_compare: n_validation is %zu but validation is NULL", n_validation);
  csal3d_evaluate_options o;
  csal3d_evaluate_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_evaluate_options"));
  C3_TRY(c3_evaluate_options_check(&o));
  C3_TRY(c3_unet_check_engine(ctx->engine, 1));
  csal3d_sampler_options so;
  csal3d_sampler_options_init(&so);
  C3_TRY(c3_options_read(&so, sizeof so, sampler_options, "csal3d_sampler_options"));
  int64_t n = 0, d = 0;
  C3_TRY(csal3d_scores_size(scores, &n, &d));
  for (size_t b = 0; b < n_budgets; b++)
    C3_CHECK_ARG(budgets[b] >= 1 && budgets[b] <= n,
                 "budget %lld: the scores file has %lld cases", (long long)budgets[b], (long long)n);
  const size_t N = c3_dataset_n(ds);
  float *feat = NULL, *sc = NULL;
  size_t *pool = NULL, *val = NULL, nv = 0, *train = NULL;
  char **ids = NULL;
  const char **val_ids = NULL;
  json_t *settings = NULL;
  csal3d_evaluation **runs = NULL, **old = NULL;
  size_t n_runs = 0, n_old = 0, n_new = 0, done = 0, total = n_strategies * n_budgets * n_seeds;
  csal3d_comparison *cmp = NULL;
  csal3d_status s = c3_alloc_array((size_t)(n * d), sizeof(float), "features", (void **)&feat);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(float), "scores", (void **)&sc);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(size_t), "pool", (void **)&pool);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)n, sizeof(char *), "pool ids", (void **)&ids);
  if (s == CSAL3D_OK) s = csal3d_scores_copy_features(scores, feat, (size_t)(n * d), NULL);
  if (s == CSAL3D_OK) s = csal3d_scores_copy_scores(scores, sc, (size_t)n, NULL);
  for (int64_t i = 0; i < n && s == CSAL3D_OK; i++) {
    size_t need = 0;
    s = csal3d_scores_case_string(scores, i, "id", NULL, 0, &need);
    if (s == CSAL3D_OK) s = c3_alloc(need, "id", (void **)&ids[i]);
    if (s == CSAL3D_OK) s = csal3d_scores_case_string(scores, i, "id", ids[i], need, NULL);
    size_t j = 0;
    for (; s == CSAL3D_OK && j < N; j++)
      if (!strcmp(c3_dataset_id(ds, j), ids[i])) break;
    if (s == CSAL3D_OK && j == N)
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "case %s of the scores file is not in the dataset",
                   ids[i]);
    if (s == CSAL3D_OK) pool[i] = j;
  }
  int64_t maxb = 0;
  for (size_t b = 0; b < n_budgets; b++) maxb = budgets[b] > maxb ? budgets[b] : maxb;
  if (s == CSAL3D_OK)
    s = c3_evaluate_validation(ds, NULL, 0, validation, n_validation,
                               (const char *const *)ids, (size_t)n, &val, &nv);
  for (size_t i = 0; i < nv && s == CSAL3D_OK && validation; i++)
    for (int64_t j = 0; j < n; j++)
      if (pool[j] == val[i]) {
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "validation case %s is in the pool (the scores "
                     "file)", ids[j]);
        break;
      }
  /* the settings every run shares, and the runs of an earlier comparison with them */
  if (s == CSAL3D_OK) s = c3_calloc_array(nv ? nv : 1, sizeof(char *), "ids", (void **)&val_ids);
  for (size_t i = 0; i < nv && s == CSAL3D_OK; i++) val_ids[i] = c3_dataset_id(ds, val[i]);
  char hash[17];
  if (s == CSAL3D_OK) {
    scores_hash(ids, feat, sc, n, d, hash);
    settings = c3_evaluate_settings(&o, val_ids, nv, &so, hash);
    if (!settings) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "evaluation settings");
  }
  if (s == CSAL3D_OK) s = prepare_outputs(ds, &o, settings, &old, &n_old);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)maxb, sizeof(size_t), "selection", (void **)&train);
  if (s == CSAL3D_OK) s = c3_calloc_array(n_old + total, sizeof *runs, "runs", (void **)&runs);
  if (s == CSAL3D_OK) s = c3_calloc_array(1, sizeof *cmp, "comparison", (void **)&cmp);
  if (s == CSAL3D_OK)
    s = c3_calloc_array(n_strategies * n_budgets, sizeof *cmp->cells, "cells", (void **)&cmp->cells);
  /* the earlier runs stay in the files, in their order; new runs follow */
  for (size_t i = 0; i < n_old && s == CSAL3D_OK; i++) runs[n_runs++] = old[i];
  if (s == CSAL3D_OK) n_old = 0; /* runs[] owns them now */
  c3_log(ctx, CSAL3D_LOG_INFO, "evaluate: comparing %zu strategies x %zu budgets x %zu seeds "
         "(%zu runs) on %zu validation cases%s", n_strategies, n_budgets, n_seeds, total, nv,
         n_runs ? "; continuing the earlier runs of the results file" : "");
  for (size_t q = 0; q < n_strategies && s == CSAL3D_OK; q++)
    for (size_t b = 0; b < n_budgets && s == CSAL3D_OK; b++) {
      csal3d_comparison_cell *cell = &cmp->cells[cmp->n++];
      cell->strategy = strategies[q];
      cell->budget = budgets[b];
      const char *name = csal3d_strategy_name(strategies[q]);
      double sum = 0, sum2 = 0;
      for (size_t k = 0; k < n_seeds && s == CSAL3D_OK; k++) {
        s = select_run(ctx, &so, strategies[q], budgets[b], seeds[k], feat, sc, n, d, pool, train);
        csal3d_evaluation *ev = find_run(runs, n_runs, name, budgets[b], seeds[k]);
        if (s == CSAL3D_OK && ev) { /* an earlier run: the same selection, or stale */
          int same = ev->n_train == (size_t)budgets[b];
          for (size_t i = 0; same && i < ev->n_train; i++)
            same = !strcmp(ev->train_ids[i], c3_dataset_id(ds, train[i]));
          if (!same)
            s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "the results file %s: run %s, budget "
                         "%lld, seed %llu trained on other cases than this selection (another "
                         "csal3d version?): set the option overwrite to start afresh",
                         o.output_json, name, (long long)budgets[b],
                         (unsigned long long)seeds[k]);
          cell->reused++;
        } else if (s == CSAL3D_OK) {
          s = c3_evaluate_run(ctx, ds, train, (size_t)budgets[b], val, nv, &o, &ev);
          if (s == CSAL3D_OK) {
            snprintf(ev->strategy, sizeof ev->strategy, "%s", name);
            ev->has_seed = 1;
            ev->selection_seed = seeds[k];
            runs[n_runs++] = ev;
            n_new++;
            c3_log(ctx, CSAL3D_LOG_INFO, "evaluate: %s, budget %lld, seed %llu: mean Dice %.4f",
                   ev->strategy, (long long)budgets[b], (unsigned long long)seeds[k], ev->mean);
            if (o.output_csv || o.output_json)
              s = c3_evaluation_write((const csal3d_evaluation *const *)runs, n_runs, o.per_case,
                                      o.output_csv, o.output_json, settings);
          }
        }
        if (s != CSAL3D_OK) {
          s = c3_error_prefix(s, "run %s, budget %lld, seed %llu", name, (long long)budgets[b],
                              (unsigned long long)seeds[k]);
          break;
        }
        if (!isnan(ev->mean)) {
          sum += ev->mean;
          sum2 += ev->mean * ev->mean;
          cell->runs++;
        }
        s = c3_progress(ctx, "evaluate-compare", ++done, total);
      }
      double r = (double)cell->runs;
      cell->mean = r > 0 ? sum / r : NAN;
      double var = r > 1 ? (sum2 - sum * sum / r) / (r - 1) : 0.0;
      cell->sd = r > 0 ? sqrt(var > 0 ? var : 0) : NAN;
    }
  /* every run from the file: the results files as they were (a missing CSV written) */
  if (s == CSAL3D_OK && n_new == 0 && n_runs > 0 && (o.output_csv || o.output_json))
    s = c3_evaluation_write((const csal3d_evaluation *const *)runs, n_runs, o.per_case,
                            o.output_csv, o.output_json, settings);
  for (size_t i = 0; i < n_runs; i++) csal3d_evaluation_free(runs[i]);
  for (size_t i = 0; i < n_old; i++) csal3d_evaluation_free(old[i]);
  for (int64_t i = 0; ids && i < n; i++) c3_free(ids[i]);
  json_decref(settings);
  c3_free(old);
  c3_free(val_ids);
  c3_free(ids);
  c3_free(runs);
  c3_free(feat);
  c3_free(sc);
  c3_free(pool);
  c3_free(val);
  c3_free(train);
  if (s != CSAL3D_OK || !out) {
    csal3d_comparison_free(cmp);
    return s;
  }
  *out = cmp;
  return CSAL3D_OK;
}
