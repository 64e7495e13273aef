/* csal3d_sampler: the public face of lib/sampling. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "core/threads.h"
#include "sampling/sampling.h"

struct csal3d_sampler {
  csal3d_context *ctx;
  csal3d_sampler_options o;
  float *X;
  int64_t n, d;
  float *S;
  int64_t ns;
  /* results of the last selection */
  int64_t m;
  csal3d_selection *sel;
  int64_t *assign;
  csal3d_sampler_info info;
};

/* ---- the strategy and rule tables, public ---- */

static const char *const c3_option_names[] = {
    "n_cand", "seed", "kernel", "gamma", "mkkm", "kmeans", "typiclust", "probcover",
    "birch", "usl"};
_Static_assert(1u << (sizeof c3_option_names / sizeof c3_option_names[0] - 1) ==
                   CSAL3D_SAMPLER_OPT_USL,
               "a name for every CSAL3D_SAMPLER_OPT_ bit");

CSAL3D_API const char *csal3d_sampler_option_name(unsigned flag) {
  for (size_t b = 0; b < sizeof c3_option_names / sizeof c3_option_names[0]; b++)
    if (flag == 1u << b) return c3_option_names[b];
  return NULL;
}

CSAL3D_API int csal3d_strategy_count(void) { return c3_strategy_count(); }

CSAL3D_API csal3d_status csal3d_strategy_get_info(csal3d_strategy strategy,
                                                  csal3d_strategy_info *info) {
  C3_CHECK_ARG(info, "csal3d_strategy_get_info: info is NULL");
  const c3_strategy_def *def = c3_strategy_get((int)strategy);
  C3_CHECK_ARG(def, "csal3d_strategy_get_info: unknown strategy %d (0..%d)", (int)strategy,
               c3_strategy_count() - 1);
  csal3d_strategy_info out = {sizeof out, strategy, def->name, def->description,
                              def->needs_scores, def->has_clusters, def->has_typicality,
                              def->options};
  return c3_options_write(info, &out, sizeof out, "csal3d_strategy_get_info: info");
}

CSAL3D_API const char *csal3d_strategy_name(csal3d_strategy strategy) {
  const c3_strategy_def *def = c3_strategy_get((int)strategy);
  return def ? def->name : "unknown";
}

CSAL3D_API csal3d_status csal3d_strategy_from_name(const char *name,
                                                   csal3d_strategy *out) {
  C3_CHECK_ARG(name && out, "csal3d_strategy_from_name: NULL argument");
  char low[32];
  size_t len = strlen(name);
  if (len < sizeof low) {
    for (size_t i = 0; i <= len; i++)
      low[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
    for (int q = 0; q < c3_strategy_count(); q++)
      if (!strcmp(low, c3_strategy_get(q)->name)) {
        *out = (csal3d_strategy)q;
        return CSAL3D_OK;
      }
  }
  char names[256] = "";
  for (int q = 0, at = 0; q < c3_strategy_count() && at < (int)sizeof names; q++) {
    int w = snprintf(names + at, sizeof names - (size_t)at, "%s%s", q ? ", " : "",
                     c3_strategy_get(q)->name);
    if (w > 0) at += w;
  }
  return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "unknown strategy '%s'; use one of %s",
                  name, names);
}

CSAL3D_API int csal3d_rule_count(void) { return c3_rule_count(); }

CSAL3D_API const char *csal3d_rule_name(csal3d_rule rule) {
  const char *name = c3_rule_get_name((int)rule);
  return name ? name : "unknown";
}

CSAL3D_API csal3d_status
csal3d_sampler_options_init(csal3d_sampler_options *o) {
  C3_CHECK_ARG(o, "csal3d_sampler_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->strategy = CSAL3D_STRATEGY_URDS;
  o->n_cand = 3;
  o->use_seed = 0;
  o->seed = 0;
  o->kernel = CSAL3D_KERNEL_MKKM;
  o->gamma_mode = CSAL3D_GAMMA_MEDIAN;
  o->n_kernels = 3;
  o->gammas[0] = 0.1, o->gammas[1] = 1, o->gammas[2] = 10;
  o->mkkm_tol = 1e-6;
  o->mkkm_max_iter = 100;
  o->reference_eps = 1e-3;
  o->exact_max_n = 8192;
  o->nystrom_landmarks = 256;
  o->kmeans_restarts = 10;
  o->kmeans_max_iter = 300;
  o->kmeans_tol = 1e-4;
  o->kmeans_batch = 0;
  o->typiclust_k = 20;
  o->typiclust_min_cluster_size = 0;
  o->probcover_delta = 0;
  o->probcover_purity = 0.95;
  o->probcover_grid = 100;
  o->probcover_max_edges = (int64_t)1 << 28;
  o->birch_threshold = 0;
  o->birch_branching = 50;
  o->birch_max_subclusters = 1024;
  o->usl_k = 20;
  o->usl_lambda = 0.5;
  o->usl_alpha = 0.5;
  o->usl_iterations = 10;
  o->usl_momentum = 0.9;
  o->usl_horizon = 0;
  o->typiclust_variant = CSAL3D_TYPICLUST_PAPER;
  return CSAL3D_OK;
}

static csal3d_status c3_sampler_check_options(const csal3d_sampler_options *o) {
#define C3_OPT(cond, ...)                                                      \
  C3_CHECK_ARG(cond, "csal3d_sampler_options." __VA_ARGS__)
  C3_OPT(c3_strategy_get((int)o->strategy) != NULL, "strategy is %d (0..%d)",
         (int)o->strategy, c3_strategy_count() - 1);
  C3_OPT(o->n_cand >= 1, "n_cand is %d (must be >= 1)", o->n_cand);
  C3_OPT(o->kernel == CSAL3D_KERNEL_MKKM || o->kernel == CSAL3D_KERNEL_REFERENCE,
         "kernel is %d (0 = MKKM, 1 = reference)", (int)o->kernel);
  C3_OPT(o->gamma_mode == CSAL3D_GAMMA_MEDIAN || o->gamma_mode == CSAL3D_GAMMA_RAW,
         "gamma_mode is %d (0 = median, 1 = raw)", (int)o->gamma_mode);
  C3_OPT(o->n_kernels >= 1 && o->n_kernels <= CSAL3D_MAX_KERNELS,
         "n_kernels is %d (1..%d)", o->n_kernels, CSAL3D_MAX_KERNELS);
  for (int q = 0; q < o->n_kernels; q++)
    C3_OPT(isfinite(o->gammas[q]) && o->gammas[q] > 0,
           "gammas[%d] is %g (must be finite and > 0)", q, o->gammas[q]);
  C3_OPT(isfinite(o->mkkm_tol) && o->mkkm_tol >= 0, "mkkm_tol is %g", o->mkkm_tol);
  C3_OPT(o->mkkm_max_iter >= 1, "mkkm_max_iter is %d (must be >= 1)", o->mkkm_max_iter);
  C3_OPT(isfinite(o->reference_eps) && o->reference_eps > 0,
         "reference_eps is %g (must be > 0)", o->reference_eps);
  C3_OPT(o->exact_max_n >= 0, "exact_max_n is %lld", (long long)o->exact_max_n);
  C3_OPT(o->nystrom_landmarks >= 1, "nystrom_landmarks is %lld (must be >= 1)",
         (long long)o->nystrom_landmarks);
  C3_OPT(o->kmeans_restarts >= 1, "kmeans_restarts is %d (must be >= 1)", o->kmeans_restarts);
  C3_OPT(o->kmeans_max_iter >= 1, "kmeans_max_iter is %d (must be >= 1)", o->kmeans_max_iter);
  C3_OPT(isfinite(o->kmeans_tol) && o->kmeans_tol >= 0, "kmeans_tol is %g", o->kmeans_tol);
  C3_OPT(o->kmeans_batch >= 0, "kmeans_batch is %lld", (long long)o->kmeans_batch);
  C3_OPT(o->typiclust_k >= 1, "typiclust_k is %d (must be >= 1)", o->typiclust_k);
  C3_OPT(o->typiclust_min_cluster_size >= 0, "typiclust_min_cluster_size is %d",
         o->typiclust_min_cluster_size);
  C3_OPT(o->typiclust_variant == CSAL3D_TYPICLUST_PAPER ||
             o->typiclust_variant == CSAL3D_TYPICLUST_ORIGINAL,
         "typiclust_variant is %d (0 = paper, 1 = original)", (int)o->typiclust_variant);
  C3_OPT(isfinite(o->probcover_delta) && o->probcover_delta >= 0,
         "probcover_delta is %g (0 = from the purity)", o->probcover_delta);
  C3_OPT(o->probcover_purity > 0 && o->probcover_purity <= 1,
         "probcover_purity is %g (in (0, 1])", o->probcover_purity);
  C3_OPT(o->probcover_grid >= 1, "probcover_grid is %d (must be >= 1)", o->probcover_grid);
  C3_OPT(o->probcover_max_edges >= 2, "probcover_max_edges is %lld",
         (long long)o->probcover_max_edges);
  C3_OPT(isfinite(o->birch_threshold) && o->birch_threshold >= 0,
         "birch_threshold is %g (0 = adaptive)", o->birch_threshold);
  C3_OPT(o->birch_branching >= 2 && o->birch_branching <= 500,
         "birch_branching is %d (2..500)", o->birch_branching);
  C3_OPT(o->birch_max_subclusters >= 1, "birch_max_subclusters is %lld",
         (long long)o->birch_max_subclusters);
  C3_OPT(o->usl_k >= 1, "usl_k is %d (must be >= 1)", o->usl_k);
  C3_OPT(isfinite(o->usl_lambda) && o->usl_lambda >= 0, "usl_lambda is %g", o->usl_lambda);
  C3_OPT(isfinite(o->usl_alpha) && o->usl_alpha > 0, "usl_alpha is %g", o->usl_alpha);
  C3_OPT(o->usl_iterations >= 1, "usl_iterations is %d (selection passes, >= 1)",
         o->usl_iterations);
  C3_OPT(o->usl_momentum >= 0 && o->usl_momentum <= 1, "usl_momentum is %g (in [0, 1])",
         o->usl_momentum);
  C3_OPT(o->usl_horizon >= 0 && o->usl_horizon <= 64,
         "usl_horizon is %d (0 = every other cluster's pick, or 1..64)", o->usl_horizon);
#undef C3_OPT
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status
csal3d_sampler_create(csal3d_context *ctx, const csal3d_sampler_options *options,
                      csal3d_sampler **out) {
  C3_CHECK_ARG(out, "csal3d_sampler_create: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(ctx, "csal3d_sampler_create: ctx is NULL");
  csal3d_sampler_options o;
  csal3d_sampler_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_sampler_options"));
  C3_TRY(c3_sampler_check_options(&o));
  csal3d_sampler *s;
  C3_TRY(c3_calloc_array(1, sizeof *s, "sampler", (void **)&s));
  s->ctx = ctx;
  s->o = o;
  *out = s;
  return CSAL3D_OK;
}

static void c3_sampler_clear_results(csal3d_sampler *s) {
  c3_free(s->sel);
  c3_free(s->assign);
  s->sel = NULL;
  s->assign = NULL;
  s->m = 0;
  memset(&s->info, 0, sizeof s->info);
}

CSAL3D_API void csal3d_sampler_free(csal3d_sampler *s) {
  if (!s) return;
  c3_sampler_clear_results(s);
  c3_free(s->X);
  c3_free(s->S);
  c3_free(s);
}

CSAL3D_API csal3d_status csal3d_sampler_set_features(csal3d_sampler *s,
                                                     const float *features,
                                                     int64_t n, int64_t d) {
  C3_CHECK_ARG(s && features, "csal3d_sampler_set_features: NULL argument");
  C3_CHECK_ARG(n >= 1 && d >= 1,
               "csal3d_sampler_set_features: %lld rows of %lld values (need at least 1 x 1)",
               (long long)n, (long long)d);
  C3_CHECK_ARG(n <= INT32_MAX && d <= INT32_MAX,
               "csal3d_sampler_set_features: %lld x %lld is too large (at most 2^31 - 1 "
               "rows and columns)", (long long)n, (long long)d);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++)
      if (!isfinite(features[i * d + j]))
        return c3_error(CSAL3D_ERR_NUMERICAL,
                        "features: row %lld, column %lld is %s; every feature must be "
                        "finite", (long long)i, (long long)j,
                        isnan(features[i * d + j]) ? "NaN" : "infinite");
  float *X;
  C3_TRY(c3_alloc_array((size_t)n, (size_t)d * sizeof(float), "features", (void **)&X));
  memcpy(X, features, (size_t)(n * d) * sizeof(float));
  c3_free(s->X);
  s->X = X;
  s->n = n;
  s->d = d;
  if (s->S && s->ns != n) {
    c3_free(s->S);
    s->S = NULL;
    s->ns = 0;
  }
  c3_sampler_clear_results(s);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_sampler_set_scores(csal3d_sampler *s,
                                                   const float *scores, int64_t n) {
  C3_CHECK_ARG(s && scores, "csal3d_sampler_set_scores: NULL argument");
  C3_CHECK_ARG(n >= 1, "csal3d_sampler_set_scores: n is %lld", (long long)n);
  if (s->X && n != s->n)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "scores: %lld values for %lld feature rows", (long long)n,
                    (long long)s->n);
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(scores[i]))
      return c3_error(CSAL3D_ERR_NUMERICAL,
                      "scores: value %lld is %s; every score must be finite",
                      (long long)i, isnan(scores[i]) ? "NaN" : "infinite");
  float *S;
  C3_TRY(c3_alloc_array((size_t)n, sizeof(float), "scores", (void **)&S));
  memcpy(S, scores, (size_t)n * sizeof(float));
  c3_free(s->S);
  s->S = S;
  s->ns = n;
  c3_sampler_clear_results(s);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_sampler_needs_scores(const csal3d_sampler *s,
                                                     int *needs) {
  C3_CHECK_ARG(s && needs, "csal3d_sampler_needs_scores: NULL argument");
  *needs = c3_needs_scores(&s->o);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_sampler_select(csal3d_sampler *s, int64_t budget) {
  C3_CHECK_ARG(s, "csal3d_sampler_select: sampler is NULL");
  const char *name = csal3d_strategy_name(s->o.strategy);
  if (!s->X)
    return c3_error(CSAL3D_ERR_STATE, "select (%s): no features; call "
                    "csal3d_sampler_set_features first", name);
  if (c3_needs_scores(&s->o) && !s->S)
    return c3_error(CSAL3D_ERR_STATE, "select (%s): no scores; call "
                    "csal3d_sampler_set_scores first", name);
  if (s->S && s->ns != s->n)
    return c3_error(CSAL3D_ERR_STATE, "select (%s): %lld scores for %lld feature rows",
                    name, (long long)s->ns, (long long)s->n);
  if (budget < 1 || budget > s->n)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "select (%s): budget %lld is out of range: it must be between 1 and "
                    "the number of cases, %lld", name, (long long)budget, (long long)s->n);
  c3_sampler_clear_results(s);
  csal3d_selection *sel = NULL;
  int64_t *assign = NULL;
  csal3d_status st = c3_calloc_array((size_t)budget, sizeof *sel, "selection", (void **)&sel);
  if (st == CSAL3D_OK)
    st = c3_alloc_array((size_t)s->n, sizeof(int64_t), "assignment", (void **)&assign);
  if (st != CSAL3D_OK) {
    c3_free(sel);
    return st;
  }
  csal3d_sampler_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  info.strategy = s->o.strategy;
  info.n = s->n, info.d = s->d, info.budget = budget;
  info.probcover_delta = info.probcover_purity = info.probcover_coverage = NAN;
  info.birch_threshold = NAN;
  info.kmeans_inertia = info.mkkm_objective = info.median_sq_distance = NAN;

  c3_strategy_in in = {s->ctx, &s->o,
                       s->o.use_seed ? s->o.seed : s->ctx->options.seed,
                       s->X, s->S, s->n, s->d, budget};
  c3_strategy_out out = {sel, assign, &info, NULL, 0};
  int threads = s->ctx->options.threads;
  int prev_omp = c3_threads_enter(threads);
  int prev_blas = c3_blas_threads_enter(1); /* see sampling.h: OpenMP only */
  c3_log(s->ctx, CSAL3D_LOG_INFO, "select: %s, %lld of %lld cases, %lld features",
         name, (long long)budget, (long long)s->n, (long long)s->d);
  st = c3_run_strategy(&in, &out);
  c3_blas_threads_leave(prev_blas);
  c3_threads_leave(prev_omp);
  if (st != CSAL3D_OK) {
    c3_free(sel);
    c3_free(assign);
    return c3_error_prefix(st, "select (%s)", name);
  }
  for (int64_t t = 0; t < budget; t++)
    sel[t].score = s->S ? (double)s->S[sel[t].index] : NAN;
  s->sel = sel;
  s->assign = assign;
  s->m = budget;
  s->info = info;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_sampler_get_selection(
    const csal3d_sampler *s, csal3d_selection *records, size_t record_size,
    int64_t capacity, int64_t *count) {
  C3_CHECK_ARG(s && count, "csal3d_sampler_get_selection: NULL argument");
  if (!s->sel)
    return c3_error(CSAL3D_ERR_STATE, "get_selection: no selection yet; call "
                    "csal3d_sampler_select first");
  *count = s->m;
  if (!records && capacity == 0) return CSAL3D_OK;
  C3_CHECK_ARG(records, "csal3d_sampler_get_selection: records is NULL with capacity %lld",
               (long long)capacity);
  C3_CHECK_ARG(record_size >= offsetof(csal3d_selection, rule) + sizeof(csal3d_rule),
               "csal3d_sampler_get_selection: record_size %zu is smaller than a "
               "csal3d_selection (%zu bytes)", record_size, sizeof(csal3d_selection));
  if (capacity < s->m)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL,
                    "get_selection: room for %lld records, %lld chosen", (long long)capacity,
                    (long long)s->m);
  size_t n = record_size < sizeof(csal3d_selection) ? record_size : sizeof(csal3d_selection);
  for (int64_t t = 0; t < s->m; t++) {
    char *dst = (char *)records + (size_t)t * record_size;
    memcpy(dst, &s->sel[t], n);
    if (record_size > n) memset(dst + n, 0, record_size - n);
  }
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_sampler_get_assignment(const csal3d_sampler *s,
                                                       int64_t *clusters,
                                                       int64_t capacity, int64_t *n) {
  C3_CHECK_ARG(s && n, "csal3d_sampler_get_assignment: NULL argument");
  if (!s->assign)
    return c3_error(CSAL3D_ERR_STATE, "get_assignment: no selection yet; call "
                    "csal3d_sampler_select first");
  *n = s->n;
  if (!clusters && capacity == 0) return CSAL3D_OK;
  C3_CHECK_ARG(clusters, "csal3d_sampler_get_assignment: clusters is NULL");
  if (capacity < s->n)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL,
                    "get_assignment: room for %lld values, %lld cases", (long long)capacity,
                    (long long)s->n);
  memcpy(clusters, s->assign, (size_t)s->n * sizeof(int64_t));
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_sampler_get_info(const csal3d_sampler *s,
                                                 csal3d_sampler_info *info) {
  C3_CHECK_ARG(s && info, "csal3d_sampler_get_info: NULL argument");
  size_t want = info->struct_size;
  C3_CHECK_ARG(want >= sizeof(size_t), "csal3d_sampler_get_info: info: struct_size is %zu; "
               "set it to sizeof(csal3d_sampler_info)", want);
  if (!s->sel)
    return c3_error(CSAL3D_ERR_STATE, "get_info: no selection yet; call "
                    "csal3d_sampler_select first");
  return c3_options_write(info, &s->info, sizeof s->info, "csal3d_sampler_get_info: info");
}
