/* Tests of csal3d_sampler: URDS and its ablations on blobs with known membership, the
 * baselines against their definitions on hand-checked inputs, every edge case of the
 * issue for every strategy, determinism across thread counts, the API's errors, and
 * N = 100,000 in bounded memory. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/alloc.h"
#include "csal3d/csal3d.h"
#include "sampling/sampling.h"
#include "sampling_data.h"

#define N_STRATEGIES csal3d_strategy_count()
/* the strategies, then the variants options select: TypiClust's original rules */
#define N_VARIANTS (N_STRATEGIES + 1)

static csal3d_context *t_ctx(int threads, uint64_t seed) {
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = CSAL3D_DEVICE_CPU;
  o.threads = threads;
  o.seed = seed;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_OK);
  return ctx;
}

/* Runs a strategy; returns the status; fills sel (m) and assign (n) when given. */
static csal3d_status t_run(csal3d_context *ctx, const csal3d_sampler_options *o,
                           const float *X, const float *S, int64_t n, int64_t d,
                           int64_t m, csal3d_selection *sel, int64_t *assign,
                           csal3d_sampler_info *info) {
  csal3d_sampler *s;
  ck_assert_int_eq(csal3d_sampler_create(ctx, o, &s), CSAL3D_OK);
  csal3d_status st = csal3d_sampler_set_features(s, X, n, d);
  if (st == CSAL3D_OK && S) st = csal3d_sampler_set_scores(s, S, n);
  if (st == CSAL3D_OK) st = csal3d_sampler_select(s, m);
  if (st == CSAL3D_OK) {
    int64_t count;
    if (sel) {
      ck_assert_int_eq(csal3d_sampler_get_selection(s, sel, sizeof *sel, m, &count),
                       CSAL3D_OK);
      ck_assert_int_eq(count, m);
    }
    if (assign) {
      ck_assert_int_eq(csal3d_sampler_get_assignment(s, assign, n, &count), CSAL3D_OK);
      ck_assert_int_eq(count, n);
    }
    if (info) {
      info->struct_size = sizeof *info;
      ck_assert_int_eq(csal3d_sampler_get_info(s, info), CSAL3D_OK);
    }
  }
  csal3d_sampler_free(s);
  return st;
}

static csal3d_sampler_options t_opts(csal3d_strategy strategy) {
  csal3d_sampler_options o;
  csal3d_sampler_options_init(&o);
  o.strategy = strategy;
  return o;
}

/* variant v of N_VARIANTS: its options and a name */
static csal3d_sampler_options t_variant(int v, const char **name) {
  csal3d_sampler_options o =
      t_opts(v < N_STRATEGIES ? (csal3d_strategy)v : CSAL3D_STRATEGY_TYPICLUST);
  *name = v < N_STRATEGIES ? csal3d_strategy_name(o.strategy) : "typiclust (original)";
  if (v >= N_STRATEGIES) o.typiclust_variant = CSAL3D_TYPICLUST_ORIGINAL;
  return o;
}

/* m distinct indices in [0, n), each a member of the cluster it claims */
static void t_check_valid(const csal3d_selection *sel, int64_t m, int64_t n,
                          const int64_t *assign, const char *what) {
  for (int64_t t = 0; t < m; t++) {
    ck_assert_msg(sel[t].index >= 0 && sel[t].index < n, "%s: index %lld", what,
                  (long long)sel[t].index);
    for (int64_t u = 0; u < t; u++)
      ck_assert_msg(sel[u].index != sel[t].index, "%s: index %lld chosen twice", what,
                    (long long)sel[t].index);
    ck_assert_msg(sel[t].rule > CSAL3D_RULE_NONE, "%s: no rule", what);
    if (assign && sel[t].cluster >= 0 && sel[t].rule != CSAL3D_RULE_MAX_COVERAGE &&
        sel[t].rule != CSAL3D_RULE_COVERED_RANDOM)
      ck_assert_msg(assign[sel[t].index] == sel[t].cluster,
                    "%s: pick %lld is in cluster %lld, record says %lld", what,
                    (long long)sel[t].index, (long long)assign[sel[t].index],
                    (long long)sel[t].cluster);
  }
}

/* ---- URDS and the ablations on blobs ---- */

#define NB 6
static const int blob_sizes[NB] = {40, 55, 30, 62, 47, 36};

START_TEST(urds_picks_one_uncertain_typical_case_per_blob) {
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 16, 3.0, 0.25, 0, 101, truth, &n);
  float *S = malloc(sizeof(float) * n);
  c3_rng r;
  c3_rng_init(&r, 5, C3_RNG_TEST, 2, 0, 0);
  for (int64_t i = 0; i < n; i++) S[i] = (float)c3_rng_uniform(&r);
  csal3d_context *ctx = t_ctx(2, 7);
  csal3d_selection sel[NB];
  int64_t *assign = malloc(sizeof(int64_t) * n);
  csal3d_sampler_info info;
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_URDS);
  ck_assert_int_eq(t_run(ctx, &o, X, S, n, 16, NB, sel, assign, &info), CSAL3D_OK);
  t_check_valid(sel, NB, n, assign, "urds");
  ck_assert(t_same_partition(assign, truth, n));
  ck_assert_int_eq(info.nystrom, 0);
  ck_assert_int_eq(info.n_clusters, NB);
  ck_assert_int_eq(info.empty_clusters, 0);
  ck_assert_double_lt(fabs(info.kernel_weights[0] + info.kernel_weights[1] +
                           info.kernel_weights[2] - 1), 1e-12);
  /* expected, computed here from the definition: per blob, the 3 most typical
   * (ties: lower index), then the largest score (ties: typicality, index) */
  double *T = malloc(sizeof(double) * n);
  for (int64_t i = 0; i < n; i++) T[i] = t_typicality(X, 16, truth, n, i);
  int seen[NB] = {0};
  for (int b = 0; b < NB; b++) {
    int64_t cand[3] = {-1, -1, -1};
    for (int c = 0; c < 3; c++)
      for (int64_t i = 0; i < n; i++) {
        if (truth[i] != b || i == cand[0] || i == cand[1]) continue;
        if (cand[c] < 0 || T[i] > T[cand[c]]) cand[c] = i;
      }
    int64_t want = cand[0];
    for (int c = 1; c < 3; c++)
      if (S[cand[c]] > S[want] || (S[cand[c]] == S[want] && T[cand[c]] > T[want]))
        want = cand[c];
    int found = 0;
    for (int t = 0; t < NB; t++)
      if (sel[t].index == want) {
        found = 1;
        ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_URDS);
        ck_assert_int_eq(sel[t].cluster_size, blob_sizes[b]);
        ck_assert_double_lt(fabs(sel[t].typicality - T[want]), 1e-9 * T[want]);
        ck_assert_double_eq(sel[t].score, S[want]);
        seen[b]++;
      }
    ck_assert_msg(found, "blob %d: expected case %lld not chosen", b, (long long)want);
  }
  for (int b = 0; b < NB; b++) ck_assert_int_eq(seen[b], 1);
  /* clusters are numbered by size: record order follows it */
  for (int t = 1; t < NB; t++) ck_assert_int_ge(sel[t - 1].cluster_size, sel[t].cluster_size);

  /* Div-only: the most typical of each blob */
  o = t_opts(CSAL3D_STRATEGY_DIV_ONLY);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, n, 16, NB, sel, assign, NULL), CSAL3D_OK);
  for (int b = 0; b < NB; b++) {
    int64_t want = -1;
    for (int64_t i = 0; i < n; i++)
      if (truth[i] == b && (want < 0 || T[i] > T[want])) want = i;
    int found = 0;
    for (int t = 0; t < NB; t++) found += sel[t].index == want;
    ck_assert_int_eq(found, 1);
  }
  for (int t = 0; t < NB; t++) ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_MOST_TYPICAL);

  free(T), free(assign), free(S), free(X);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(unc_only_is_the_top_m) {
  float X[12], S[] = {0.5f, 0.9f, 0.1f, 0.9f, 0.7f, 0.2f};
  for (int i = 0; i < 12; i++) X[i] = (float)i;
  csal3d_context *ctx = t_ctx(1, 0);
  csal3d_selection sel[4];
  int64_t assign[6];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_UNC_ONLY);
  ck_assert_int_eq(t_run(ctx, &o, X, S, 6, 2, 4, sel, assign, NULL), CSAL3D_OK);
  int64_t want[] = {1, 3, 4, 0}; /* ties: lower index */
  for (int t = 0; t < 4; t++) {
    ck_assert_int_eq(sel[t].index, want[t]);
    ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_TOP_SCORE);
    ck_assert_int_eq(sel[t].cluster, -1);
    ck_assert(isnan(sel[t].typicality));
  }
  for (int i = 0; i < 6; i++) ck_assert_int_eq(assign[i], -1);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(urds_with_equal_scores_takes_the_most_typical) {
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 8, 3.0, 0.25, 0, 103, truth, &n);
  float *S = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) S[i] = 0.25f;
  csal3d_context *ctx = t_ctx(2, 1);
  csal3d_selection a[NB], b[NB];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_URDS);
  ck_assert_int_eq(t_run(ctx, &o, X, S, n, 8, NB, a, NULL, NULL), CSAL3D_OK);
  o = t_opts(CSAL3D_STRATEGY_DIV_ONLY);
  ck_assert_int_eq(t_run(ctx, &o, X, S, n, 8, NB, b, NULL, NULL), CSAL3D_OK);
  for (int t = 0; t < NB; t++) ck_assert_int_eq(a[t].index, b[t].index);
  free(S), free(X);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(urds_singleton_cluster_is_chosen) {
  /* blobs plus one far outlier; M = blobs + 1: the outlier is its own cluster */
  int64_t n, truth[301];
  float *X = t_blobs(NB, blob_sizes, 8, 3.0, 0.25, 0, 104, truth, &n);
  X = realloc(X, sizeof(float) * (n + 1) * 8);
  for (int j = 0; j < 8; j++) X[n * 8 + j] = (float)(j % 2 ? 60 : -60);
  n++;
  float *S = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) S[i] = (float)((i * 37) % 101) / 101.0f;
  S[n - 1] = 0; /* the least uncertain: chosen anyway, as its cluster's only member */
  csal3d_context *ctx = t_ctx(2, 1);
  csal3d_selection sel[NB + 1];
  int64_t *assign = malloc(sizeof(int64_t) * n);
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_URDS);
  ck_assert_int_eq(t_run(ctx, &o, X, S, n, 8, NB + 1, sel, assign, NULL), CSAL3D_OK);
  t_check_valid(sel, NB + 1, n, assign, "urds singleton");
  const csal3d_selection *last = &sel[NB];
  ck_assert_int_eq(last->index, n - 1);
  ck_assert_int_eq(last->cluster_size, 1);
  ck_assert_int_eq(last->cluster, NB);
  ck_assert(isinf(last->typicality) && last->typicality > 0);
  free(assign), free(S), free(X);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(reference_kernel_option_runs) {
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 8, 3.0, 0.25, 0, 105, truth, &n);
  float *S = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) S[i] = (float)(i % 13);
  csal3d_context *ctx = t_ctx(2, 1);
  csal3d_selection sel[NB];
  int64_t *assign = malloc(sizeof(int64_t) * n);
  csal3d_sampler_info info;
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_URDS);
  o.kernel = CSAL3D_KERNEL_REFERENCE;
  ck_assert_int_eq(t_run(ctx, &o, X, S, n, 8, NB, sel, assign, &info), CSAL3D_OK);
  t_check_valid(sel, NB, n, assign, "reference");
  ck_assert_int_ge(info.mkkm_iterations, 1);
  o.exact_max_n = 10;
  ck_assert_int_eq(t_run(ctx, &o, X, S, n, 8, NB, sel, assign, &info), CSAL3D_ERR_UNSUPPORTED);
  free(assign), free(S), free(X);
  csal3d_context_free(ctx);
}
END_TEST

/* ---- baselines ---- */

START_TEST(random_is_seeded) {
  float X[100];
  for (int i = 0; i < 100; i++) X[i] = (float)i;
  csal3d_context *ctx = t_ctx(1, 3);
  csal3d_selection a[10], b[10], c[10];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_RANDOM);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 100, 1, 10, a, NULL, NULL), CSAL3D_OK);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 100, 1, 10, b, NULL, NULL), CSAL3D_OK);
  o.use_seed = 1, o.seed = 4;
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 100, 1, 10, c, NULL, NULL), CSAL3D_OK);
  t_check_valid(a, 10, 100, NULL, "random");
  int same = 1;
  for (int t = 0; t < 10; t++) {
    ck_assert_int_eq(a[t].index, b[t].index);
    ck_assert_int_eq(a[t].rule, CSAL3D_RULE_RANDOM);
    same &= a[t].index == c[t].index;
  }
  ck_assert(!same);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(typiclust_follows_its_definition) {
  /* A = {0, 2, 3, 4, 9}: sums of distances 18 12 11 12 27 -> 3 (T = 4/11), then 2
   * (ties with 4: lower index). B = {50, 51, 53, 60, 61}: 25 22 20 27 30 -> 53.
   * C = {200, 201}: 200 and 201 tie, lower index (K = 1: T = 1 / distance 1). */
  float X[] = {0, 50, 2, 51, 200, 3, 53, 4, 60, 201, 9, 61};
  csal3d_context *ctx = t_ctx(1, 0);
  csal3d_selection sel[3];
  int64_t assign[12];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_TYPICLUST);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 12, 1, 3, sel, assign, NULL), CSAL3D_OK);
  ck_assert_int_eq(sel[0].index, 5); /* value 3 */
  ck_assert_double_lt(fabs(sel[0].typicality - 4.0 / 11), 1e-6);
  ck_assert_int_eq(sel[0].rule, CSAL3D_RULE_MOST_TYPICAL);
  ck_assert_int_eq(sel[0].cluster_size, 5);
  ck_assert_int_eq(sel[1].index, 6); /* value 53 */
  ck_assert_double_lt(fabs(sel[1].typicality - 4.0 / 20), 1e-6);
  /* no minimum cluster size by default: C gets its own pick */
  ck_assert_int_eq(sel[2].index, 4);
  ck_assert_double_eq(sel[2].typicality, 1);
  ck_assert_int_eq(sel[2].rule, CSAL3D_RULE_MOST_TYPICAL);
  ck_assert_int_eq(assign[4], 2);
  ck_assert_int_eq(assign[9], 2);
  /* typiclust_min_cluster_size 5: C is passed over, the third pick is A's next */
  o.typiclust_min_cluster_size = 5;
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 12, 1, 3, sel, NULL, NULL), CSAL3D_OK);
  ck_assert_int_eq(sel[2].index, 2); /* value 2 */
  ck_assert_double_lt(fabs(sel[2].typicality - 4.0 / 12), 1e-6);
  ck_assert_int_eq(sel[2].rule, CSAL3D_RULE_REFILL);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(calr_picks_the_largest_mean_cosine) {
  /* A: (10,0) (10,1) (10,-2): mean cosines .9919 .9837 .9789 -> (10,0).
   * B: (0,10) (1,10) (3,10) (-1,10): .98695 .98922 ... -> (1,10), not (0,10). */
  float X[] = {0, 10, 10, 0, 1, 10, 10, 1, 3, 10, 10, -2, -1, 10};
  csal3d_context *ctx = t_ctx(1, 0);
  csal3d_selection sel[2];
  int64_t assign[7];
  csal3d_sampler_info info;
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_CALR);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 7, 2, 2, sel, assign, &info), CSAL3D_OK);
  /* B (4 members) is the larger cluster: first */
  ck_assert_int_eq(sel[0].index, 2);
  ck_assert_int_eq(sel[0].cluster_size, 4);
  ck_assert_int_eq(sel[1].index, 1);
  ck_assert_int_eq(sel[1].cluster_size, 3);
  for (int t = 0; t < 2; t++) ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_MAX_COSINE);
  /* the reported value is the mean cosine similarity, computed here */
  double want = 0;
  int64_t b[] = {0, 2, 4, 6};
  for (int t = 0; t < 4; t++) want += t_cos(X, 2, 2, b[t]);
  ck_assert_double_lt(fabs(sel[0].typicality - want / 4), 1e-9);
  ck_assert_int_eq(info.birch_subclusters, 7);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(alps_takes_the_member_nearest_each_centre) {
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 6, 2.0, 0.6, 0, 106, truth, &n);
  csal3d_context *ctx = t_ctx(2, 0);
  csal3d_selection sel[NB];
  int64_t *assign = malloc(sizeof(int64_t) * n);
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_ALPS);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, n, 6, NB, sel, assign, NULL), CSAL3D_OK);
  t_check_valid(sel, NB, n, assign, "alps");
  for (int t = 0; t < NB; t++) {
    int64_t c = sel[t].cluster;
    double mean[6] = {0};
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++)
      if (assign[i] == c) {
        for (int j = 0; j < 6; j++) mean[j] += X[i * 6 + j];
        cnt++;
      }
    ck_assert_int_eq(cnt, sel[t].cluster_size);
    int64_t best = -1;
    double bd = INFINITY;
    for (int64_t i = 0; i < n; i++) {
      if (assign[i] != c) continue;
      double v = 0;
      for (int j = 0; j < 6; j++) v += (X[i * 6 + j] - mean[j] / cnt) * (X[i * 6 + j] - mean[j] / cnt);
      if (v < bd) bd = v, best = i;
    }
    ck_assert_int_eq(sel[t].index, best);
    ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_NEAREST_CENTRE);
  }
  free(assign), free(X);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(coreset_is_k_center_greedy) {
  float X[] = {0, 1, 2, 10, 4}; /* mean 3.4: start at 4, then 10, 0, 2 */
  csal3d_context *ctx = t_ctx(1, 0);
  csal3d_selection sel[4];
  int64_t assign[5];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_CORESET);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 5, 1, 4, sel, assign, NULL), CSAL3D_OK);
  int64_t want[] = {4, 3, 0, 2};
  for (int t = 0; t < 4; t++) ck_assert_int_eq(sel[t].index, want[t]);
  ck_assert_int_eq(sel[0].rule, CSAL3D_RULE_KCENTER_START);
  ck_assert_int_eq(sel[1].rule, CSAL3D_RULE_KCENTER_FARTHEST);
  /* value 1 (row 1) is nearest pick 2 (value 0)... tie with value 2 at distance 1:
   * the earlier pick keeps it */
  ck_assert_int_eq(assign[1], 2);
  ck_assert_int_eq(assign[3], 1);
  ck_assert_int_eq(sel[2].cluster_size, 2);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(probcover_covers_everything_when_the_budget_allows) {
  /* hand-checked: {0, .5, 1, 10, 10.5, 20}, delta 1: balls of 3, 3, 3, 2, 2, 1 */
  float X[] = {0, 0.5f, 1, 10, 10.5f, 20};
  csal3d_context *ctx = t_ctx(1, 0);
  csal3d_selection sel[5];
  int64_t assign[6];
  csal3d_sampler_info info;
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_PROBCOVER);
  o.probcover_delta = 1;
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 6, 1, 2, sel, assign, &info), CSAL3D_OK);
  ck_assert_int_eq(sel[0].index, 0);
  ck_assert_int_eq(sel[0].cluster_size, 3);
  ck_assert_int_eq(sel[1].index, 3);
  ck_assert_int_eq(sel[1].cluster_size, 2);
  ck_assert_int_eq(assign[5], -1);
  ck_assert_double_lt(fabs(info.probcover_coverage - 5.0 / 6), 1e-12);
  /* budget 5: full coverage after 3, then random picks */
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, 6, 1, 5, sel, assign, &info), CSAL3D_OK);
  ck_assert_int_eq(sel[2].index, 5);
  ck_assert_int_eq(sel[3].rule, CSAL3D_RULE_COVERED_RANDOM);
  ck_assert_double_eq(info.probcover_coverage, 1);

  /* blobs, delta from the purity grid against k-means(M): with M = the number of
   * blobs the budget allows full coverage, and every case is within delta of a pick */
  int64_t n, truth[300];
  float *B = t_blobs(NB, blob_sizes, 8, 3.0, 0.3, 0, 107, truth, &n);
  o.probcover_delta = 0;
  csal3d_selection *s2 = malloc(sizeof *s2 * 40);
  int64_t *as = malloc(sizeof(int64_t) * n);
  for (int round = 0; round < 2; round++) {
    int64_t m = round ? 40 : NB;
    ck_assert_int_eq(t_run(ctx, &o, B, NULL, n, 8, m, s2, as, &info), CSAL3D_OK);
    ck_assert_double_gt(info.probcover_delta, 0);
    ck_assert_double_ge(info.probcover_purity, 0.95);
    if (!round) ck_assert_double_eq(info.probcover_coverage, 1);
    double d2 = info.probcover_delta * info.probcover_delta;
    int64_t covered = 0;
    for (int64_t i = 0; i < n; i++) {
      double best = INFINITY;
      for (int t = 0; t < m; t++) {
        double v = t_dist2(B, 8, i, s2[t].index);
        if (v < best) best = v;
      }
      covered += best <= d2 * (1 + 1e-5);
      ck_assert_int_eq(as[i] >= 0, best <= d2 * (1 + 1e-5));
    }
    /* the reported coverage is the fraction within delta of a pick */
    ck_assert_double_lt(fabs(info.probcover_coverage - (double)covered / n), 1e-12);
  }
  free(s2), free(as), free(B);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(usl_takes_the_densest_without_regulariser) {
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 6, 3.0, 0.5, 0, 108, truth, &n);
  csal3d_context *ctx = t_ctx(2, 0);
  csal3d_selection sel[NB];
  int64_t *assign = malloc(sizeof(int64_t) * n);
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_USL);
  o.usl_lambda = 0;
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, n, 6, NB, sel, assign, NULL), CSAL3D_OK);
  /* density by brute force, as the original: 1 / mean squared distance to the 20
   * nearest, the case itself (0) among them */
  double *rho = malloc(sizeof(double) * n), *dd = malloc(sizeof(double) * n);
  for (int64_t i = 0; i < n; i++) {
    int64_t c = 0;
    for (int64_t j = 0; j < n; j++)
      if (j != i) dd[c++] = t_dist2(X, 6, i, j);
    for (int64_t a = 1; a < c; a++) { /* insertion sort */
      double v = dd[a];
      int64_t b = a;
      while (b > 0 && dd[b - 1] > v) dd[b] = dd[b - 1], b--;
      dd[b] = v;
    }
    double m = 0;
    for (int k = 0; k < 19; k++) m += dd[k];
    rho[i] = 20 / m;
  }
  for (int t = 0; t < NB; t++) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
      if (assign[i] == sel[t].cluster && (best < 0 || rho[i] > rho[best] * (1 + 1e-6)))
        best = i;
    ck_assert_int_eq(sel[t].index, best);
    ck_assert_double_lt(fabs(sel[t].typicality - rho[best]), 1e-4 * rho[best]);
    ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_USL_UTILITY);
  }
  /* with the regulariser: still one per cluster */
  o.usl_lambda = 0.5;
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, n, 6, NB, sel, assign, NULL), CSAL3D_OK);
  t_check_valid(sel, NB, n, assign, "usl");
  free(rho), free(dd), free(assign), free(X);
  csal3d_context_free(ctx);
}
END_TEST

/* ---- edge cases, every strategy ---- */

static void t_all_strategies(const float *X, const float *S, int64_t n, int64_t d,
                             int64_t m, const char *what) {
  csal3d_context *ctx = t_ctx(2, 9);
  csal3d_selection *sel = malloc(sizeof *sel * (size_t)m);
  int64_t *assign = malloc(sizeof(int64_t) * (size_t)n);
  for (int q = 0; q < N_STRATEGIES; q++) {
    csal3d_sampler_options o = t_opts((csal3d_strategy)q);
    csal3d_status st = t_run(ctx, &o, X, S, n, d, m, sel, assign, NULL);
    ck_assert_msg(st == CSAL3D_OK, "%s, %s: %s", what, csal3d_strategy_name(q),
                  csal3d_last_error());
    char label[96];
    snprintf(label, sizeof label, "%s, %s", what, csal3d_strategy_name(q));
    t_check_valid(sel, m, n, assign, label);
  }
  free(sel), free(assign);
  csal3d_context_free(ctx);
}

START_TEST(edge_cases_for_every_strategy) {
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 5, 2.0, 0.5, 0, 109, truth, &n);
  float *S = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) S[i] = (float)((i * 29) % 97);
  t_all_strategies(X, S, n, 5, 1, "M = 1");
  t_all_strategies(X, S, 40, 5, 40, "M = N");
  t_all_strategies(X, S, 1, 5, 1, "N = 1");
  t_all_strategies(X, S, 2, 5, 2, "N = 2, M = N");
  /* d = 1 */
  float *X1 = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) X1[i] = X[i * 5];
  t_all_strategies(X1, S, n, 1, 7, "d = 1");
  /* all scores equal */
  float *S0 = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) S0[i] = 1;
  t_all_strategies(X, S0, n, 5, 6, "equal scores");
  /* duplicate rows: every row three times */
  float *D = malloc(sizeof(float) * 90 * 5);
  for (int i = 0; i < 90; i++) memcpy(D + i * 5, X + (i % 30) * 5, sizeof(float) * 5);
  t_all_strategies(D, S, 90, 5, 12, "duplicate rows");
  t_all_strategies(D, S, 90, 5, 30, "duplicate rows, M = distinct rows");
  t_all_strategies(D, S, 90, 5, 45, "duplicate rows, M > distinct rows");
  /* zero-variance features: a constant column, then all columns constant */
  float *Z = malloc(sizeof(float) * n * 5);
  memcpy(Z, X, sizeof(float) * n * 5);
  for (int64_t i = 0; i < n; i++) Z[i * 5 + 2] = 3.5f;
  t_all_strategies(Z, S, n, 5, 6, "a constant column");
  for (int64_t i = 0; i < n * 5; i++) Z[i] = 3.5f;
  t_all_strategies(Z, S, 20, 5, 4, "identical rows");
  for (int64_t i = 0; i < n * 5; i++) Z[i] = 0;
  t_all_strategies(Z, S, 20, 5, 4, "zero rows");
  free(Z), free(D), free(S0), free(X1), free(S), free(X);
}
END_TEST

START_TEST(identical_rows_refill_empty_clusters) {
  float X[10 * 3];
  for (int i = 0; i < 30; i++) X[i] = 1;
  float S[10] = {0.1f, 0.9f, 0.3f, 0.9f, 0.5f, 0, 0, 0, 0, 0.2f};
  csal3d_context *ctx = t_ctx(1, 0);
  csal3d_selection sel[3];
  csal3d_sampler_info info;
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_URDS);
  ck_assert_int_eq(t_run(ctx, &o, X, S, 10, 3, 3, sel, NULL, &info), CSAL3D_OK);
  /* one cluster holds everything: all typicalities +inf, candidates rows 0 1 2;
   * picks: 1 (0.9), then refills 2 (0.3), 0 (0.1) from the same cluster */
  ck_assert_int_eq(info.empty_clusters, 2);
  ck_assert_int_eq(sel[0].index, 1);
  ck_assert_int_eq(sel[0].rule, CSAL3D_RULE_URDS);
  ck_assert_int_eq(sel[1].index, 2);
  ck_assert_int_eq(sel[1].rule, CSAL3D_RULE_REFILL);
  ck_assert_int_eq(sel[2].index, 0);
  ck_assert_int_eq(sel[2].cluster, 0);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(bad_inputs_are_named) {
  csal3d_context *ctx = t_ctx(1, 0);
  csal3d_sampler *s;
  ck_assert_int_eq(csal3d_sampler_create(ctx, NULL, &s), CSAL3D_OK);
  float X[20];
  for (int i = 0; i < 20; i++) X[i] = (float)i;
  ck_assert_int_eq(csal3d_sampler_select(s, 1), CSAL3D_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "no features"));
  X[13] = NAN;
  ck_assert_int_eq(csal3d_sampler_set_features(s, X, 5, 4), CSAL3D_ERR_NUMERICAL);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "row 3, column 1 is NaN"));
  X[13] = INFINITY;
  ck_assert_int_eq(csal3d_sampler_set_features(s, X, 5, 4), CSAL3D_ERR_NUMERICAL);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "row 3, column 1 is infinite"));
  X[13] = 1;
  ck_assert_int_eq(csal3d_sampler_set_features(s, X, 5, 4), CSAL3D_OK);
  ck_assert_int_eq(csal3d_sampler_select(s, 2), CSAL3D_ERR_STATE); /* URDS: scores */
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "no scores"));
  float S[5] = {1, 2, NAN, 4, 5};
  ck_assert_int_eq(csal3d_sampler_set_scores(s, S, 5), CSAL3D_ERR_NUMERICAL);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "value 2 is NaN"));
  S[2] = 3;
  ck_assert_int_eq(csal3d_sampler_set_scores(s, S, 4), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_sampler_set_scores(s, S, 5), CSAL3D_OK);
  ck_assert_int_eq(csal3d_sampler_select(s, 6), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "budget 6"));
  ck_assert_int_eq(csal3d_sampler_select(s, 0), CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_selection sel[2];
  int64_t count, assign[5];
  ck_assert_int_eq(csal3d_sampler_get_selection(s, sel, sizeof sel[0], 2, &count),
                   CSAL3D_ERR_STATE);
  ck_assert_int_eq(csal3d_sampler_select(s, 2), CSAL3D_OK);
  ck_assert_int_eq(csal3d_sampler_get_selection(s, NULL, sizeof sel[0], 0, &count), CSAL3D_OK);
  ck_assert_int_eq(count, 2);
  ck_assert_int_eq(csal3d_sampler_get_selection(s, sel, sizeof sel[0], 1, &count),
                   CSAL3D_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(csal3d_sampler_get_assignment(s, assign, 4, &count),
                   CSAL3D_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(count, 5);
  /* a larger record (newer caller): the tail is zeroed */
  unsigned char big[2][sizeof(csal3d_selection) + 16];
  memset(big, 0xAB, sizeof big);
  ck_assert_int_eq(csal3d_sampler_get_selection(s, (csal3d_selection *)big, sizeof big[0],
                                                2, &count), CSAL3D_OK);
  for (size_t b = sizeof(csal3d_selection); b < sizeof big[0]; b++)
    ck_assert_int_eq(big[1][b], 0);
  ck_assert_int_eq(csal3d_sampler_get_selection(s, sel, 8, 2, &count),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  /* new features clear the results and scores of another length */
  ck_assert_int_eq(csal3d_sampler_set_features(s, X, 4, 5), CSAL3D_OK);
  ck_assert_int_eq(csal3d_sampler_get_assignment(s, assign, 5, &count), CSAL3D_ERR_STATE);
  ck_assert_int_eq(csal3d_sampler_select(s, 2), CSAL3D_ERR_STATE);
  csal3d_sampler_free(s);
  csal3d_sampler_free(NULL);

  /* options */
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_URDS);
  o.n_cand = 0;
  ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "n_cand"));
  ck_assert_ptr_null(s);
  o = t_opts((csal3d_strategy)42);
  ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_ERR_INVALID_ARGUMENT);
  o = t_opts(CSAL3D_STRATEGY_URDS);
  o.gammas[1] = -1;
  ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "gammas[1]"));
  /* an older, smaller struct gets the defaults for the rest */
  o = t_opts(CSAL3D_STRATEGY_RANDOM);
  o.struct_size = offsetof(csal3d_sampler_options, kernel);
  o.n_kernels = 99; /* beyond struct_size: ignored */
  ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_OK);
  csal3d_sampler_free(s);
  ck_assert_int_eq(csal3d_sampler_create(NULL, NULL, &s), CSAL3D_ERR_INVALID_ARGUMENT);

  /* names */
  for (int q = 0; q < N_STRATEGIES; q++) {
    csal3d_strategy back;
    ck_assert_int_eq(csal3d_strategy_from_name(csal3d_strategy_name(q), &back), CSAL3D_OK);
    ck_assert_int_eq(back, q);
  }
  csal3d_strategy back;
  ck_assert_int_eq(csal3d_strategy_from_name("UNC_ONLY", &back), CSAL3D_OK);
  ck_assert_int_eq(back, CSAL3D_STRATEGY_UNC_ONLY);
  ck_assert_int_eq(csal3d_strategy_from_name("kmeans", &back), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_str_eq(csal3d_rule_name(CSAL3D_RULE_REFILL), "refill");
  ck_assert_str_eq(csal3d_rule_name((csal3d_rule)99), "unknown");
  ck_assert_str_eq(csal3d_strategy_name((csal3d_strategy)99), "unknown");
  csal3d_context_free(ctx);
}
END_TEST

/* ---- the strategy table ---- */

START_TEST(the_table_covers_every_strategy_and_rule) {
  /* every enum value, each with a name, a description and a function */
  ck_assert_int_eq(csal3d_strategy_count(), CSAL3D_STRATEGY_USL + 1);
  for (int q = 0; q < csal3d_strategy_count(); q++) {
    const c3_strategy_def *def = c3_strategy_get(q);
    ck_assert_ptr_nonnull(def);
    ck_assert_ptr_nonnull(def->run);
    ck_assert_ptr_nonnull(def->name);
    ck_assert_int_gt(strlen(def->description), 10);
    csal3d_strategy_info info = {.struct_size = sizeof info};
    ck_assert_int_eq(csal3d_strategy_get_info((csal3d_strategy)q, &info), CSAL3D_OK);
    ck_assert_int_eq(info.struct_size, sizeof info);
    ck_assert_int_eq(info.strategy, q);
    ck_assert_str_eq(info.name, csal3d_strategy_name((csal3d_strategy)q));
    ck_assert_str_eq(info.description, def->description);
    /* names round-trip, also in capitals with '_' */
    csal3d_strategy back;
    ck_assert_int_eq(csal3d_strategy_from_name(info.name, &back), CSAL3D_OK);
    ck_assert_int_eq(back, q);
    char upper[32];
    snprintf(upper, sizeof upper, "%s", info.name);
    for (char *c = upper; *c; c++) *c = *c == '-' ? '_' : (char)(*c - 'a' + 'A');
    ck_assert_int_eq(csal3d_strategy_from_name(upper, &back), CSAL3D_OK);
    ck_assert_int_eq(back, q);
    for (int r = 0; r < q; r++) ck_assert_str_ne(info.name, csal3d_strategy_name(r));
    /* every option bit it claims has a name */
    for (unsigned b = 1; b; b <<= 1)
      if (info.options & b) ck_assert_ptr_nonnull(csal3d_sampler_option_name(b));
  }
  csal3d_strategy_info info = {.struct_size = sizeof info};
  ck_assert_int_eq(csal3d_strategy_get_info((csal3d_strategy)csal3d_strategy_count(), &info),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_strategy_get_info((csal3d_strategy)-1, &info),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_strategy_get_info(CSAL3D_STRATEGY_URDS, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  info.struct_size = 0;
  ck_assert_int_eq(csal3d_strategy_get_info(CSAL3D_STRATEGY_URDS, &info),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "struct_size"));
  ck_assert_str_eq(csal3d_strategy_name((csal3d_strategy)csal3d_strategy_count()), "unknown");
  /* the error lists every name, from the table */
  csal3d_strategy back;
  ck_assert_int_eq(csal3d_strategy_from_name("kcenter", &back), CSAL3D_ERR_INVALID_ARGUMENT);
  for (int q = 0; q < csal3d_strategy_count(); q++)
    ck_assert_ptr_nonnull(strstr(csal3d_last_error(), csal3d_strategy_name(q)));
  /* options: what the header documents */
  ck_assert_str_eq(csal3d_sampler_option_name(CSAL3D_SAMPLER_OPT_N_CAND), "n_cand");
  ck_assert_str_eq(csal3d_sampler_option_name(CSAL3D_SAMPLER_OPT_USL), "usl");
  ck_assert_ptr_null(csal3d_sampler_option_name(0));
  ck_assert_ptr_null(csal3d_sampler_option_name(CSAL3D_SAMPLER_OPT_N_CAND |
                                                CSAL3D_SAMPLER_OPT_SEED));
  ck_assert_ptr_null(csal3d_sampler_option_name(CSAL3D_SAMPLER_OPT_USL << 1));
  info.struct_size = sizeof info;
  ck_assert_int_eq(csal3d_strategy_get_info(CSAL3D_STRATEGY_URDS, &info), CSAL3D_OK);
  ck_assert(info.options & CSAL3D_SAMPLER_OPT_N_CAND);
  ck_assert(info.options & CSAL3D_SAMPLER_OPT_KERNEL);
  ck_assert_int_eq(csal3d_strategy_get_info(CSAL3D_STRATEGY_CALR, &info), CSAL3D_OK);
  ck_assert_uint_eq(info.options, CSAL3D_SAMPLER_OPT_BIRCH);
  /* rules: 0 .. count - 1, each named, distinct */
  ck_assert_int_eq(csal3d_rule_count(), CSAL3D_RULE_USL_UTILITY + 1);
  ck_assert_str_eq(csal3d_rule_name(CSAL3D_RULE_NONE), "none");
  for (int r = 0; r < csal3d_rule_count(); r++) {
    ck_assert_str_ne(csal3d_rule_name((csal3d_rule)r), "unknown");
    for (int t = 0; t < r; t++)
      ck_assert_str_ne(csal3d_rule_name((csal3d_rule)r), csal3d_rule_name((csal3d_rule)t));
  }
  ck_assert_str_eq(csal3d_rule_name((csal3d_rule)csal3d_rule_count()), "unknown");
}
END_TEST

START_TEST(strategy_info_smaller_struct_gets_a_prefix) {
  /* an older caller's struct ends before needs_scores: the rest is not written */
  union {
    csal3d_strategy_info info;
    unsigned char bytes[sizeof(csal3d_strategy_info) + 16];
  } u;
  memset(&u, 0xAB, sizeof u);
  size_t old = offsetof(csal3d_strategy_info, needs_scores);
  u.info.struct_size = old;
  ck_assert_int_eq(csal3d_strategy_get_info(CSAL3D_STRATEGY_UNC_ONLY, &u.info), CSAL3D_OK);
  ck_assert_int_eq(u.info.struct_size, old);
  ck_assert_int_eq(u.info.strategy, CSAL3D_STRATEGY_UNC_ONLY);
  ck_assert_str_eq(u.info.name, "unc-only");
  for (size_t b = old; b < sizeof u; b++) ck_assert_int_eq(u.bytes[b], 0xAB);
  /* a newer caller's larger struct: ours copied, the members we do not know zeroed */
  memset(&u, 0xAB, sizeof u);
  u.info.struct_size = sizeof u;
  ck_assert_int_eq(csal3d_strategy_get_info(CSAL3D_STRATEGY_UNC_ONLY, &u.info), CSAL3D_OK);
  ck_assert_int_eq(u.info.struct_size, sizeof u);
  ck_assert_int_eq(u.info.needs_scores, 1);
  ck_assert_int_eq(u.info.has_clusters, 0);
  for (size_t b = sizeof u.info; b < sizeof u; b++) ck_assert_int_eq(u.bytes[b], 0);
}
END_TEST

START_TEST(needs_scores_matches_behaviour) {
  /* for every strategy, with either kernel: select without scores fails with
   * CSAL3D_ERR_STATE exactly when csal3d_sampler_needs_scores says so, and with scores
   * every one runs; the table's flags match what the records carry */
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 5, 2.0, 0.5, 0, 114, truth, &n);
  float *S = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) S[i] = (float)((i * 13) % 31);
  csal3d_context *ctx = t_ctx(1, 3);
  csal3d_selection sel[6];
  int64_t *assign = malloc(sizeof(int64_t) * n);
  int needing = 0;
  for (int q = 0; q < csal3d_strategy_count(); q++) {
    csal3d_strategy_info info = {.struct_size = sizeof info};
    ck_assert_int_eq(csal3d_strategy_get_info((csal3d_strategy)q, &info), CSAL3D_OK);
    for (int k = 0; k < 2; k++) {
      csal3d_sampler_options o = t_opts((csal3d_strategy)q);
      o.kernel = k ? CSAL3D_KERNEL_REFERENCE : CSAL3D_KERNEL_MKKM;
      csal3d_sampler *s;
      ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_OK);
      int needs = -1;
      ck_assert_int_eq(csal3d_sampler_needs_scores(s, &needs), CSAL3D_OK);
      int want = info.needs_scores ||
                 (k && (info.options & CSAL3D_SAMPLER_OPT_KERNEL) != 0);
      ck_assert_msg(needs == want, "%s, kernel %d: needs_scores %d", info.name, k, needs);
      needing += needs;
      ck_assert_int_eq(csal3d_sampler_set_features(s, X, n, 5), CSAL3D_OK);
      csal3d_status st = csal3d_sampler_select(s, 6);
      ck_assert_msg(st == (needs ? CSAL3D_ERR_STATE : CSAL3D_OK), "%s, kernel %d: %s",
                    info.name, k, csal3d_last_error());
      if (needs) ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "no scores"));
      csal3d_sampler_free(s);
      ck_assert_int_eq(t_run(ctx, &o, X, S, n, 5, 6, sel, assign, NULL), CSAL3D_OK);
      t_check_valid(sel, 6, n, assign, info.name);
      for (int t = 0; t < 6; t++) {
        ck_assert_msg((sel[t].cluster >= 0) == info.has_clusters, "%s: cluster %lld",
                      info.name, (long long)sel[t].cluster);
        ck_assert_msg((!isnan(sel[t].typicality)) == info.has_typicality,
                      "%s: typicality %g", info.name, sel[t].typicality);
      }
    }
  }
  /* URDS and Unc-only with either kernel, Div-only with the reference kernel */
  ck_assert_int_eq(needing, 5);
  ck_assert_int_eq(csal3d_sampler_needs_scores(NULL, &needing), CSAL3D_ERR_INVALID_ARGUMENT);
  free(assign), free(S), free(X);
  csal3d_context_free(ctx);
}
END_TEST

static int t_cancel(void *u, const char *stage, uint64_t done, uint64_t total) {
  (void)stage, (void)done, (void)total;
  return ++*(int *)u > 2;
}

START_TEST(progress_can_cancel) {
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 5, 2.0, 0.5, 0, 110, truth, &n);
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  int calls = 0;
  co.progress = t_cancel;
  co.progress_user_data = &calls;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_DIV_ONLY);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, n, 5, 6, NULL, NULL, NULL), CSAL3D_ERR_CANCELLED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "cancelled"));
  /* k-means restarts running on several threads stop too, with the message */
  csal3d_context_free(ctx);
  calls = 2; /* the first report cancels */
  co.threads = 3;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  o = t_opts(CSAL3D_STRATEGY_ALPS);
  ck_assert_int_eq(t_run(ctx, &o, X, NULL, n, 5, 6, NULL, NULL, NULL), CSAL3D_ERR_CANCELLED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "cancelled"));
  free(X);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(results_do_not_depend_on_threads) {
  int64_t n, truth[300];
  float *X = t_blobs(NB, blob_sizes, 9, 1.5, 0.7, 0, 111, truth, &n);
  float *S = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) S[i] = (float)sin((double)i);
  csal3d_context *c1 = t_ctx(1, 5), *c2 = t_ctx(2, 5), *c3 = t_ctx(3, 5);
  csal3d_selection a[12], b[12];
  int64_t *aa = malloc(sizeof(int64_t) * n), *ab = malloc(sizeof(int64_t) * n);
  for (int q = 0; q < N_VARIANTS; q++) {
    const char *name;
    csal3d_sampler_options o = t_variant(q, &name);
    for (int nys = 0; nys < 2; nys++) {
      if (nys && q != CSAL3D_STRATEGY_URDS) continue;
      o.exact_max_n = nys ? 0 : 8192;
      o.nystrom_landmarks = 100;
      ck_assert_int_eq(t_run(c1, &o, X, S, n, 9, 12, a, aa, NULL), CSAL3D_OK);
      ck_assert_int_eq(t_run(q % 2 ? c2 : c3, &o, X, S, n, 9, 12, b, ab, NULL), CSAL3D_OK);
      ck_assert_msg(!memcmp(a, b, sizeof a), "%s: the picks differ with the thread count",
                    name);
      ck_assert_msg(!memcmp(aa, ab, sizeof(int64_t) * n), "%s: the clusters differ", name);
    }
  }
  free(aa), free(ab), free(S), free(X);
  csal3d_context_free(c1), csal3d_context_free(c2), csal3d_context_free(c3);
}
END_TEST

START_TEST(hundred_thousand_cases_in_bounded_memory) {
  /* N = 100,000, d = 8: URDS through Nystrom; an n x n matrix would be 80 GB.
   * Under the sanitizers (make asan sets SANITIZE) 20,000, still above exact_max_n. */
  const char *san = getenv("SANITIZE");
  int per = san && *san ? 2000 : 10000;
  int sizes[10];
  for (int c = 0; c < 10; c++) sizes[c] = per;
  int64_t n, *truth = malloc(sizeof(int64_t) * 100000), *assign = malloc(sizeof(int64_t) * 100000);
  float *X = t_blobs(10, sizes, 8, 4.0, 0.5, 0, 112, truth, &n);
  float *S = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) S[i] = (float)((i * 7919) % 10007);
  csal3d_context *ctx = t_ctx(2, 1);
  csal3d_selection sel[10];
  csal3d_sampler_info info;
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_URDS);
  ck_assert_int_eq(t_run(ctx, &o, X, S, n, 8, 10, sel, assign, &info), CSAL3D_OK);
  ck_assert_int_eq(info.nystrom, 1);
  ck_assert_int_eq(info.landmarks, 256);
  t_check_valid(sel, 10, n, assign, "N = 100000");
  /* the blobs, up to a handful of outlying points whose embedding rows are noisy */
  double ari = t_ari(assign, truth, n, 10, 10);
  ck_assert_double_gt(ari, 0.999);
  for (int t = 0; t < 10; t++) ck_assert_int_lt(labs(sel[t].cluster_size - per), 50);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("N = %lld URDS: peak RSS %.0f MB\n", (long long)n, ru.ru_maxrss / 1024.0);
  ck_assert_int_lt(ru.ru_maxrss, 1024 * 1024); /* KB: under 1 GB */
  free(S), free(X), free(truth), free(assign);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(allocation_failures_are_reported_cleanly) {
  /* every allocation of every strategy made to fail in turn: an error status with a
   * message, never a crash or a leak (make asan checks the leaks) */
  int sizes[] = {12, 9, 11};
  int64_t n, truth[32];
  float *X = t_blobs(3, sizes, 4, 2.0, 0.4, 0, 113, truth, &n);
  float S[32];
  for (int64_t i = 0; i < n; i++) S[i] = (float)(i % 5);
  csal3d_context *ctx = t_ctx(2, 0);
  for (int q = 0; q < N_VARIANTS; q++) {
    const char *name;
    csal3d_sampler_options o = t_variant(q, &name);
    o.exact_max_n = q == CSAL3D_STRATEGY_DIV_ONLY ? 0 : 8192; /* Nystrom too */
    o.nystrom_landmarks = 16;
    int ok = 0;
    for (long fail = 1; fail < 400 && !ok; fail++) {
      csal3d_sampler *s;
      ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_OK);
      ck_assert_int_eq(csal3d_sampler_set_features(s, X, n, 4), CSAL3D_OK);
      ck_assert_int_eq(csal3d_sampler_set_scores(s, S, n), CSAL3D_OK);
      c3_alloc_fail_after(fail);
      csal3d_status st = csal3d_sampler_select(s, 3);
      c3_alloc_fail_after(0);
      ck_assert_msg(st == CSAL3D_OK || st == CSAL3D_ERR_OUT_OF_MEMORY, "%s, failure %ld: %d",
                    name, fail, (int)st);
      if (st == CSAL3D_OK) {
        ok = 1;
        csal3d_selection sel[3];
        int64_t count;
        ck_assert_int_eq(csal3d_sampler_get_selection(s, sel, sizeof sel[0], 3, &count),
                         CSAL3D_OK);
        t_check_valid(sel, 3, n, NULL, name);
      } else {
        ck_assert_int_gt(strlen(csal3d_last_error()), 0);
      }
      csal3d_sampler_free(s);
    }
    ck_assert_msg(ok, "%s never succeeded", name);
  }
  free(X);
  csal3d_context_free(ctx);
}
END_TEST

static Suite *strategies_suite(void) {
  Suite *s = suite_create("sampling strategies");
  TCase *t = tcase_create("urds");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, urds_picks_one_uncertain_typical_case_per_blob);
  tcase_add_test(t, unc_only_is_the_top_m);
  tcase_add_test(t, urds_with_equal_scores_takes_the_most_typical);
  tcase_add_test(t, urds_singleton_cluster_is_chosen);
  tcase_add_test(t, reference_kernel_option_runs);
  suite_add_tcase(s, t);
  t = tcase_create("baselines");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, random_is_seeded);
  tcase_add_test(t, typiclust_follows_its_definition);
  tcase_add_test(t, calr_picks_the_largest_mean_cosine);
  tcase_add_test(t, alps_takes_the_member_nearest_each_centre);
  tcase_add_test(t, coreset_is_k_center_greedy);
  tcase_add_test(t, probcover_covers_everything_when_the_budget_allows);
  tcase_add_test(t, usl_takes_the_densest_without_regulariser);
  suite_add_tcase(s, t);
  t = tcase_create("edge cases");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, edge_cases_for_every_strategy);
  tcase_add_test(t, identical_rows_refill_empty_clusters);
  tcase_add_test(t, bad_inputs_are_named);
  tcase_add_test(t, the_table_covers_every_strategy_and_rule);
  tcase_add_test(t, strategy_info_smaller_struct_gets_a_prefix);
  tcase_add_test(t, needs_scores_matches_behaviour);
  tcase_add_test(t, progress_can_cancel);
  tcase_add_test(t, allocation_failures_are_reported_cleanly);
  tcase_add_test(t, results_do_not_depend_on_threads);
  suite_add_tcase(s, t);
  t = tcase_create("scale");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, hundred_thousand_cases_in_bounded_memory);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(strategies_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
