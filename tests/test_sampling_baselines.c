/* TypiClust and USL as published: picks checked against small brute-force
 * reimplementations of the definitions written here (the paper's TypiClust, the
 * original TypiClust code, the original USL code), on the library's own clustering, and
 * hand-derived cases: a cluster of exactly 5 members, the K = 20 cap, N = 16 with M = 4,
 * USL with its regulariser on. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csal3d/csal3d.h"
#include "sampling_data.h"

static csal3d_context *t_ctx(void) {
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = CSAL3D_DEVICE_CPU;
  o.threads = 2;
  o.seed = 3;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_OK);
  return ctx;
}

static csal3d_sampler_options t_opts(csal3d_strategy strategy) {
  csal3d_sampler_options o;
  csal3d_sampler_options_init(&o);
  o.strategy = strategy;
  return o;
}

static csal3d_sampler_options t_original(void) {
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_TYPICLUST);
  o.typiclust_variant = CSAL3D_TYPICLUST_ORIGINAL;
  return o;
}

/* Selects m of the n rows; sel (m) and assign (n, may be NULL) filled on success. */
static csal3d_status t_run(csal3d_context *ctx, const csal3d_sampler_options *o,
                           const float *X, int64_t n, int64_t d, int64_t m,
                           csal3d_selection *sel, int64_t *assign) {
  csal3d_sampler *s;
  ck_assert_int_eq(csal3d_sampler_create(ctx, o, &s), CSAL3D_OK);
  ck_assert_int_eq(csal3d_sampler_set_features(s, X, n, d), CSAL3D_OK);
  csal3d_status st = csal3d_sampler_select(s, m);
  if (st == CSAL3D_OK) {
    int64_t count;
    ck_assert_int_eq(csal3d_sampler_get_selection(s, sel, sizeof *sel, m, &count),
                     CSAL3D_OK);
    ck_assert_int_eq(count, m);
    if (assign) {
      ck_assert_int_eq(csal3d_sampler_get_assignment(s, assign, n, &count), CSAL3D_OK);
      ck_assert_int_eq(count, n);
    }
  }
  csal3d_sampler_free(s);
  return st;
}

/* The selection fails as the original code would, with a message holding a and b. */
static void t_fails_saying(csal3d_context *ctx, const csal3d_sampler_options *o,
                           const float *X, int64_t n, int64_t m, const char *a,
                           const char *b) {
  csal3d_selection *sel = malloc(sizeof *sel * (size_t)m);
  ck_assert_int_eq(t_run(ctx, o, X, n, 1, m, sel, NULL), CSAL3D_ERR_UNSUPPORTED);
  const char *msg = csal3d_last_error();
  ck_assert_msg(strstr(msg, a) && strstr(msg, b), "%s", msg);
  free(sel);
}

/* the mean of the k smallest of v[0..c) (reorders v) */
static double t_mean_smallest(double *v, int64_t c, int64_t k) {
  for (int64_t a = 1; a < c; a++) {
    double x = v[a];
    int64_t b = a;
    while (b > 0 && v[b - 1] > x) v[b] = v[b - 1], b--;
    v[b] = x;
  }
  double s = 0;
  for (int64_t t = 0; t < k; t++) s += v[t];
  return s / (double)k;
}

/* clusters in the order both TypiClusts visit them: size descending, ties the lower
 * first member; returns how many non-empty (order[0..count)) */
static int64_t t_cluster_order(const int64_t *assign, int64_t n, int64_t k, int64_t *order,
                               int64_t *size) {
  int64_t *first = malloc(sizeof(int64_t) * (size_t)k);
  for (int64_t q = 0; q < k; q++) size[q] = 0, first[q] = n;
  for (int64_t i = n - 1; i >= 0; i--) size[assign[i]]++, first[assign[i]] = i;
  int64_t cnt = 0;
  for (int64_t q = 0; q < k; q++)
    if (size[q]) order[cnt++] = q;
  for (int64_t a = 1; a < cnt; a++) {
    int64_t v = order[a], b = a;
    while (b > 0 && (size[order[b - 1]] < size[v] ||
                     (size[order[b - 1]] == size[v] && first[order[b - 1]] > first[v])))
      order[b] = order[b - 1], b--;
    order[b] = v;
  }
  free(first);
  return cnt;
}

/* The paper's TypiClust on a clustering: per cluster (largest first) the member of
 * largest 1 / mean distance to its K = min(cap, |C| - 1) nearest members (first in
 * index order on ties). Writes one pick per non-empty cluster; returns their count. */
static int64_t t_typiclust_paper(const float *X, int d, int64_t n, const int64_t *assign,
                                 int64_t k, int64_t cap, int64_t *pick, double *typ) {
  int64_t *order = malloc(sizeof(int64_t) * (size_t)k);
  int64_t *size = malloc(sizeof(int64_t) * (size_t)k);
  double *v = malloc(sizeof(double) * (size_t)n);
  int64_t cnt = t_cluster_order(assign, n, k, order, size);
  for (int64_t e = 0; e < cnt; e++) {
    int64_t q = order[e], K = size[q] - 1 < cap ? size[q] - 1 : cap;
    pick[e] = -1;
    for (int64_t i = 0; i < n; i++) {
      if (assign[i] != q) continue;
      double T = INFINITY;
      if (K > 0) {
        int64_t c = 0;
        for (int64_t j = 0; j < n; j++)
          if (j != i && assign[j] == q) v[c++] = sqrt(t_dist2(X, d, i, j));
        T = 1 / t_mean_smallest(v, c, K);
      }
      if (pick[e] < 0 || T > typ[e]) pick[e] = i, typ[e] = T;
    }
  }
  free(order), free(size), free(v);
  return cnt;
}

/* The original TypiClust (avihu111/TypiClust, deep-al/pycls/al/typiclust.py,
 * TypiClust.select_samples with an empty labelled set) on a clustering: clusters of
 * more than 5 members, largest first; pick t from the (t mod count)-th, the member not
 * yet picked of largest 1 / (mean squared distance to its K = min(cap, |R| // 2)
 * nearest remaining members + 1e-5), the first in index order on ties (numpy argmax;
 * K = 0: NaN, the only member). Returns 0, or -1 where the original fails. */
static int t_typiclust_original(const float *X, int d, int64_t n, const int64_t *assign,
                                int64_t k, int64_t m, int64_t cap, int64_t *pick,
                                double *typ) {
  int64_t *order = malloc(sizeof(int64_t) * (size_t)k);
  int64_t *size = malloc(sizeof(int64_t) * (size_t)k);
  double *v = malloc(sizeof(double) * (size_t)n);
  char *taken = calloc((size_t)n, 1);
  int64_t cnt = t_cluster_order(assign, n, k, order, size), ne = 0;
  for (int64_t e = 0; e < cnt; e++)
    if (size[order[e]] > 5) order[ne++] = order[e];
  int ok = ne > 0;
  for (int64_t t = 0; t < m && ok; t++) {
    int64_t q = order[t % ne], left = 0;
    for (int64_t i = 0; i < n; i++) left += assign[i] == q && !taken[i];
    if (!left) {
      ok = 0;
      break;
    }
    int64_t K = left / 2 < cap ? left / 2 : cap;
    pick[t] = -1;
    for (int64_t i = 0; i < n; i++) {
      if (assign[i] != q || taken[i]) continue;
      double T = NAN;
      if (K > 0) {
        int64_t c = 0;
        for (int64_t j = 0; j < n; j++)
          if (j != i && assign[j] == q && !taken[j]) v[c++] = t_dist2(X, d, i, j);
        T = 1 / (t_mean_smallest(v, c, K) + 1e-5);
      }
      if (pick[t] < 0 || T > typ[t]) pick[t] = i, typ[t] = T;
    }
    taken[pick[t]] = 1;
  }
  free(order), free(size), free(v), free(taken);
  return ok ? 0 : -1;
}

/* USL as the original code (TonyLianLong/UnsupervisedSelectiveLabeling,
 * shared/utils/nn_utils.py: partitioned_kNN's density, get_selection_with_reg) on a
 * clustering with k non-empty clusters: rho = 1 / mean squared distance to the
 * K = min(knn, n) nearest, the case itself included; `passes` passes, each cluster's
 * argmax of rho - w reg (first in index order); between passes reg = mom reg +
 * (1 - mom) sum over the other clusters' picks of 1 / (d^2)^alpha. `plain`: distances
 * instead of squared ones (and density 1 / mean distance to the K nearest others),
 * the definitions this replaced. pick[q] for cluster q. */
static void t_usl(const float *X, int d, int64_t n, const int64_t *assign, int64_t k,
                  int64_t knn, double w, double alpha, double mom, int passes, int plain,
                  int64_t *pick, double *rho) {
  double *v = malloc(sizeof(double) * (size_t)n);
  double *reg = calloc((size_t)n, sizeof(double)), *nr = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    int64_t c = 0;
    for (int64_t j = 0; j < n; j++)
      if (j != i) v[c++] = plain ? sqrt(t_dist2(X, d, i, j)) : t_dist2(X, d, i, j);
    if (plain) {
      int64_t K = knn < n - 1 ? knn : n - 1;
      rho[i] = 1 / t_mean_smallest(v, c, K);
    } else {
      int64_t K = knn < n ? knn : n; /* self (0) plus K - 1 others */
      rho[i] = (double)K / (t_mean_smallest(v, c, K - 1) * (double)(K - 1));
    }
  }
  for (int p = 0; p < passes; p++) {
    for (int64_t q = 0; q < k; q++) {
      pick[q] = -1;
      double best = 0;
      for (int64_t i = 0; i < n; i++) {
        if (assign[i] != q) continue;
        double u = rho[i] - w * reg[i];
        if (pick[q] < 0 || u > best) pick[q] = i, best = u;
      }
    }
    if (p == passes - 1) break;
    for (int64_t i = 0; i < n; i++) {
      nr[i] = 0;
      for (int64_t q = 0; q < k; q++) {
        if (q == assign[i]) continue;
        double s2 = t_dist2(X, d, i, pick[q]);
        nr[i] += 1 / pow(plain ? sqrt(s2) : s2, alpha);
      }
    }
    for (int64_t i = 0; i < n; i++) reg[i] = mom * reg[i] + (1 - mom) * nr[i];
  }
  free(v), free(reg), free(nr);
}

/* ---- TypiClust ---- */

/* 1-D, hand-derived. A = {0, 1, 3, 4, 5, 9} (6 members), B = {100, 101, 102, 104, 107}
 * (exactly 5), C = {300, 301, 303}; rows interleaved. */
static const float t_abc[] = {0, 100, 1, 300, 3, 101, 4, 102, 5, 301, 9, 104, 303, 107};
static const int64_t t_abc_truth[] = {0, 1, 0, 2, 0, 1, 0, 1, 0, 2, 0, 1, 2, 1};

START_TEST(typiclust_original_on_a_hand_checked_case) {
  csal3d_context *ctx = t_ctx();
  csal3d_selection sel[6];
  int64_t assign[14];
  csal3d_sampler_options o = t_original();
  ck_assert_int_eq(t_run(ctx, &o, t_abc, 14, 1, 3, sel, assign), CSAL3D_OK);
  ck_assert(t_same_partition(assign, t_abc_truth, 14));
  /* B has exactly 5 members and C 3: only A (more than 5) is used, three times.
   * Pick 1: R = A, K = 6 // 2 = 3; mean of the 3 smallest squared distances: 0: 26/3,
   * 1: 14/3, 3: 9/3, 4: 11/3, 5: 21/3, 9: 77/3 -> value 3 (row 4).
   * Pick 2: R = {0 1 4 5 9}, K = 2: 8.5, 5, 5, 8.5, 20.5 -> 1 and 4 tie: row 2 (1).
   * Pick 3: R = {0 4 5 9}, K = 2: 20.5, 8.5, 8.5, 20.5 -> 4 and 5 tie: row 6 (4). */
  const int64_t want[] = {4, 2, 6};
  const double mean[] = {3, 5, 8.5};
  for (int t = 0; t < 3; t++) {
    ck_assert_int_eq(sel[t].index, want[t]);
    ck_assert_double_lt(fabs(sel[t].typicality - 1 / (mean[t] + 1e-5)), 1e-9);
    ck_assert_int_eq(sel[t].cluster_size, 6);
    ck_assert_int_eq(sel[t].cluster, assign[4]);
    ck_assert_int_eq(sel[t].rule, t ? CSAL3D_RULE_REFILL : CSAL3D_RULE_MOST_TYPICAL);
  }
  /* the paper's variant: every cluster its own pick, B (5 members) included.
   * A (K = 5): sums of distances 22 18 14 14 16 32 -> 3 and 4 tie: row 4 (3), T 5/14.
   * B (K = 4): 100: 1+2+4+7 = 14, 101: 11, 102: 10, 104: 12, 107: 21 -> row 7 (102).
   * C (K = 2): 300: 4, 301: 3, 303: 5 -> row 9 (301), T 2/3. */
  o.typiclust_variant = CSAL3D_TYPICLUST_PAPER;
  ck_assert_int_eq(t_run(ctx, &o, t_abc, 14, 1, 3, sel, NULL), CSAL3D_OK);
  const int64_t want_paper[] = {4, 7, 9};
  const double typ_paper[] = {5.0 / 14, 4.0 / 10, 2.0 / 3};
  for (int t = 0; t < 3; t++) {
    ck_assert_int_eq(sel[t].index, want_paper[t]);
    ck_assert_double_lt(fabs(sel[t].typicality - typ_paper[t]), 1e-6);
    ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_MOST_TYPICAL);
  }
  ck_assert_int_eq(sel[1].cluster_size, 5);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(typiclust_original_to_the_last_member_and_beyond) {
  /* A = {0, 1, 3, 4, 5, 9} and far singletons: with M = 6 the singletons take 5
   * clusters (two of them merged), A the sixth; A is the only cluster of more than 5
   * and gives all 6 picks. After 3, 1, 4 (above): R = {0 5 9}, K = 1: 25 16 16 -> 5;
   * R = {0 9}: 81 81 -> 0; R = {9}: K = 0, the original's NaN typicality -> 9. */
  const float X[] = {0, 1000, 1, 2000, 3, 3000, 4, 4000, 5, 5000, 9, 6000};
  csal3d_context *ctx = t_ctx();
  csal3d_selection sel[7];
  csal3d_sampler_options o = t_original();
  ck_assert_int_eq(t_run(ctx, &o, X, 12, 1, 6, sel, NULL), CSAL3D_OK);
  const int64_t want[] = {4, 2, 6, 8, 0, 10};
  for (int t = 0; t < 6; t++) ck_assert_int_eq(sel[t].index, want[t]);
  ck_assert_double_lt(fabs(sel[3].typicality - 1 / (16 + 1e-5)), 1e-9);
  ck_assert(isnan(sel[5].typicality));
  /* M = 7: seven clusters, A's 6 members cannot give 7 picks; the original fails there
   * (numpy's argmax of an empty sequence): here a clear error */
  t_fails_saying(ctx, &o, X, 12, 7, "all picked already", "the option typiclust_variant");
  /* the paper's variant: one per cluster */
  o.typiclust_variant = CSAL3D_TYPICLUST_PAPER;
  ck_assert_int_eq(t_run(ctx, &o, X, 12, 1, 7, sel, NULL), CSAL3D_OK);
  for (int t = 0; t < 7; t++) ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_MOST_TYPICAL);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(typiclust_original_with_no_cluster_left_says_so) {
  /* A = {0 2 3 4 9} and B = {50 51 53 60 61} have exactly 5 members, C 2: the original
   * keeps only clusters of more than 5, so nothing is left */
  const float X[] = {0, 50, 2, 51, 200, 3, 53, 4, 60, 201, 9, 61};
  csal3d_context *ctx = t_ctx();
  csal3d_selection sel[3];
  csal3d_sampler_options o = t_original();
  t_fails_saying(ctx, &o, X, 12, 3, "more than 5 members (the largest has 5)",
                 "set the option typiclust_variant to paper");
  /* the default (the paper's) picks in all three clusters */
  o.typiclust_variant = CSAL3D_TYPICLUST_PAPER;
  ck_assert_int_eq(t_run(ctx, &o, X, 12, 1, 3, sel, NULL), CSAL3D_OK);
  ck_assert_int_eq(sel[0].index, 5);  /* A: 3 */
  ck_assert_int_eq(sel[1].index, 6);  /* B: 53 */
  ck_assert_int_eq(sel[2].index, 4);  /* C: 200 and 201 tie, lower index */
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(typiclust_sixteen_cases_four_picks) {
  /* N = 16, M = 4 in four blobs of 6, 5, 3 and 2: the paper's variant picks in every
   * cluster (the old minimum size of 5 left two without a pick), the original in the
   * one cluster of more than 5, four times */
  const int sizes[] = {6, 5, 3, 2};
  int64_t n, truth[16], assign[16], pick[4];
  double typ[4];
  float *X = t_blobs(4, sizes, 4, 3.0, 0.3, 0, 21, truth, &n);
  ck_assert_int_eq(n, 16);
  csal3d_context *ctx = t_ctx();
  csal3d_selection sel[4];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_TYPICLUST);
  ck_assert_int_eq(t_run(ctx, &o, X, 16, 4, 4, sel, assign), CSAL3D_OK);
  ck_assert(t_same_partition(assign, truth, 16));
  ck_assert_int_eq(t_typiclust_paper(X, 4, 16, assign, 4, 20, pick, typ), 4);
  int clusters_hit[4] = {0};
  for (int t = 0; t < 4; t++) {
    ck_assert_int_eq(sel[t].index, pick[t]);
    ck_assert_double_lt(fabs(sel[t].typicality - typ[t]), 1e-5 * typ[t]);
    ck_assert_int_eq(sel[t].cluster_size, sizes[t]);
    clusters_hit[truth[sel[t].index]]++;
  }
  for (int b = 0; b < 4; b++) ck_assert_int_eq(clusters_hit[b], 1);

  o.typiclust_variant = CSAL3D_TYPICLUST_ORIGINAL;
  ck_assert_int_eq(t_run(ctx, &o, X, 16, 4, 4, sel, assign), CSAL3D_OK);
  ck_assert(t_same_partition(assign, truth, 16));
  ck_assert_int_eq(t_typiclust_original(X, 4, 16, assign, 4, 4, 20, pick, typ), 0);
  for (int t = 0; t < 4; t++) {
    ck_assert_int_eq(sel[t].index, pick[t]);
    ck_assert_double_lt(fabs(sel[t].typicality - typ[t]), 1e-5 * typ[t]);
    ck_assert_int_eq(truth[sel[t].index], 0);
    ck_assert_int_eq(sel[t].cluster_size, 6);
  }
  free(X);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(typiclust_k_is_capped_at_20) {
  /* blobs of 62, 55, 40 and 30 members (K = 20 caps both variants' neighbours in the
   * larger ones) and three small far groups of 5, 3 and 2 that the original passes
   * over: M = 7, so its picks cycle over the 4 blobs and recompute typicality without
   * the cases already picked */
  const int sizes[] = {62, 55, 40, 30, 5, 3, 2};
  int64_t n, truth[197], *assign = malloc(sizeof(int64_t) * 197), pick[7], pick2[7];
  double typ[7], typ2[7];
  float *X = t_blobs(7, sizes, 6, 4.0, 0.6, 0, 32, truth, &n);
  csal3d_context *ctx = t_ctx();
  csal3d_selection sel[7];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_TYPICLUST);
  ck_assert_int_eq(t_run(ctx, &o, X, n, 6, 7, sel, assign), CSAL3D_OK);
  ck_assert(t_same_partition(assign, truth, n));
  ck_assert_int_eq(t_typiclust_paper(X, 6, n, assign, 7, 20, pick, typ), 7);
  for (int t = 0; t < 7; t++) {
    ck_assert_int_eq(sel[t].index, pick[t]);
    ck_assert_double_lt(fabs(sel[t].typicality - typ[t]), 1e-5 * typ[t]);
  }
  /* the cap matters here: with K = |C| - 1 some pick differs */
  t_typiclust_paper(X, 6, n, assign, 7, 1000, pick2, typ2);
  int differ = 0;
  for (int t = 0; t < 7; t++) differ += pick2[t] != pick[t];
  ck_assert_int_gt(differ, 0);
  /* typiclust_k is the cap */
  o.typiclust_k = 5;
  ck_assert_int_eq(t_run(ctx, &o, X, n, 6, 7, sel, assign), CSAL3D_OK);
  t_typiclust_paper(X, 6, n, assign, 7, 5, pick, typ);
  for (int t = 0; t < 7; t++) ck_assert_int_eq(sel[t].index, pick[t]);

  o.typiclust_k = 20;
  o.typiclust_variant = CSAL3D_TYPICLUST_ORIGINAL;
  ck_assert_int_eq(t_run(ctx, &o, X, n, 6, 7, sel, assign), CSAL3D_OK);
  ck_assert(t_same_partition(assign, truth, n));
  ck_assert_int_eq(t_typiclust_original(X, 6, n, assign, 7, 7, 20, pick, typ), 0);
  for (int t = 0; t < 7; t++) {
    ck_assert_int_eq(sel[t].index, pick[t]);
    ck_assert_double_lt(fabs(sel[t].typicality - typ[t]), 1e-5 * typ[t]);
    ck_assert_int_lt(truth[sel[t].index], 4);
    ck_assert_int_eq(sel[t].rule, t < 4 ? CSAL3D_RULE_MOST_TYPICAL : CSAL3D_RULE_REFILL);
  }
  ck_assert_int_eq(sel[4].cluster, sel[0].cluster);
  t_typiclust_original(X, 6, n, assign, 7, 7, 1000, pick2, typ2);
  differ = 0;
  for (int t = 0; t < 7; t++) differ += pick2[t] != pick[t];
  ck_assert_int_gt(differ, 0);
  free(assign), free(X);
  csal3d_context_free(ctx);
}
END_TEST

/* ---- USL ---- */

START_TEST(usl_with_its_regulariser_follows_the_original) {
  const int sizes[] = {40, 55, 30, 62, 47, 36};
  int64_t n, truth[270], *assign = malloc(sizeof(int64_t) * 270), pick[6], alt[6];
  float *X = t_blobs(6, sizes, 6, 3.0, 0.5, 0, 105, truth, &n);
  double *rho = malloc(sizeof(double) * (size_t)n), *rho_alt = malloc(sizeof(double) * (size_t)n);
  csal3d_context *ctx = t_ctx();
  csal3d_selection sel[6];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_USL); /* lambda 0.5, 10 passes */
  ck_assert_int_eq(t_run(ctx, &o, X, n, 6, 6, sel, assign), CSAL3D_OK);
  ck_assert(t_same_partition(assign, truth, n));
  t_usl(X, 6, n, assign, 6, 20, 0.5, 0.5, 0.9, 10, 0, pick, rho);
  for (int t = 0; t < 6; t++) {
    ck_assert_int_eq(sel[t].index, pick[sel[t].cluster]);
    ck_assert_double_lt(fabs(sel[t].typicality - rho[sel[t].index]), 1e-5 * rho[sel[t].index]);
    ck_assert_int_eq(sel[t].rule, CSAL3D_RULE_USL_UTILITY);
  }
  /* the test can tell: the regulariser moves picks (lambda 0), and so do the
   * definitions this replaced (plain distances, 11 passes) */
  int moved = 0;
  t_usl(X, 6, n, assign, 6, 20, 0, 0.5, 0.9, 1, 0, alt, rho_alt);
  for (int q = 0; q < 6; q++) moved += alt[q] != pick[q];
  ck_assert_int_gt(moved, 0);
  moved = 0;
  t_usl(X, 6, n, assign, 6, 20, 0.5, 0.5, 0.9, 11, 1, alt, rho_alt);
  for (int q = 0; q < 6; q++) moved += alt[q] != pick[q];
  ck_assert_int_gt(moved, 0);

  /* other weights, exponent, momentum, passes, neighbours */
  o.usl_lambda = 2, o.usl_alpha = 1, o.usl_momentum = 0.5, o.usl_iterations = 3;
  o.usl_k = 7;
  ck_assert_int_eq(t_run(ctx, &o, X, n, 6, 6, sel, assign), CSAL3D_OK);
  t_usl(X, 6, n, assign, 6, 7, 2, 1, 0.5, 3, 0, pick, rho);
  for (int t = 0; t < 6; t++) ck_assert_int_eq(sel[t].index, pick[sel[t].cluster]);
  /* one pass is the density alone, whatever lambda */
  o.usl_iterations = 1;
  ck_assert_int_eq(t_run(ctx, &o, X, n, 6, 6, sel, assign), CSAL3D_OK);
  t_usl(X, 6, n, assign, 6, 7, 0, 1, 0.5, 1, 0, pick, rho);
  for (int t = 0; t < 6; t++) ck_assert_int_eq(sel[t].index, pick[sel[t].cluster]);
  free(rho), free(rho_alt), free(assign), free(X);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(usl_on_a_hand_checked_case) {
  /* 1-D: P = {0, 1, 2} and Q = {10, 12, 13}, K = 2 (self and the nearest other), so
   * rho = 2 / (nearest squared distance): P 2, 2, 2; Q 1/2, 2, 2. Pass 1: P's argmax
   * is 0 (tie, first), Q's 12. Then the regulariser (alpha 1/2: 1 / distance to the
   * other cluster's pick), momentum 0: P: 1/12, 1/11, 1/10; Q: 1/10, 1/12, 1/13.
   * lambda 1: P's utilities 2 - 1/12 > 2 - 1/11 > 2 - 1/10 -> 0; Q: 12 (1.917) vs 13
   * (1.923) -> 13. Pass 3: P's regulariser now 1/13, 1/12, 1/11 -> 0 again; Q's is
   * 1/10, 1/12, 1/13 again -> 13. */
  const float X[] = {0, 10, 1, 12, 2, 13};
  csal3d_context *ctx = t_ctx();
  csal3d_selection sel[2];
  int64_t assign[6];
  csal3d_sampler_options o = t_opts(CSAL3D_STRATEGY_USL);
  o.usl_k = 2, o.usl_lambda = 1, o.usl_momentum = 0, o.usl_iterations = 3;
  ck_assert_int_eq(t_run(ctx, &o, X, 6, 1, 2, sel, assign), CSAL3D_OK);
  ck_assert_int_eq(sel[0].index, 0);
  ck_assert_int_eq(sel[1].index, 5);
  ck_assert_double_eq(sel[0].typicality, 2);
  ck_assert_double_eq(sel[1].typicality, 2);
  /* one pass: the density alone: 12 */
  o.usl_iterations = 1;
  ck_assert_int_eq(t_run(ctx, &o, X, 6, 1, 2, sel, assign), CSAL3D_OK);
  ck_assert_int_eq(sel[1].index, 3);
  /* usl_horizon = 1: only the nearest other pick counts (one here: the same) */
  o.usl_iterations = 3, o.usl_horizon = 1;
  ck_assert_int_eq(t_run(ctx, &o, X, 6, 1, 2, sel, assign), CSAL3D_OK);
  ck_assert_int_eq(sel[1].index, 5);
  csal3d_context_free(ctx);
}
END_TEST

/* ---- options ---- */

START_TEST(new_options_are_checked_and_defaulted) {
  csal3d_context *ctx = t_ctx();
  csal3d_sampler_options o;
  csal3d_sampler_options_init(&o);
  ck_assert_int_eq(o.typiclust_variant, CSAL3D_TYPICLUST_PAPER);
  ck_assert_int_eq(o.typiclust_min_cluster_size, 0);
  ck_assert_int_eq(o.typiclust_k, 20);
  ck_assert_int_eq(o.usl_iterations, 10);
  ck_assert_int_eq(o.usl_horizon, 0);
  csal3d_sampler *s = NULL;
  o.typiclust_variant = (csal3d_typiclust_variant)2;
  ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "typiclust_variant is 2"));
  csal3d_sampler_options_init(&o);
  o.usl_iterations = 0;
  ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "usl_iterations is 0"));
  csal3d_sampler_options_init(&o);
  o.usl_horizon = -1;
  ck_assert_int_eq(csal3d_sampler_create(ctx, &o, &s), CSAL3D_ERR_INVALID_ARGUMENT);
  /* a caller compiled before typiclust_variant existed gets the paper's variant */
  csal3d_sampler_options_init(&o);
  o.typiclust_variant = CSAL3D_TYPICLUST_ORIGINAL;
  o.strategy = CSAL3D_STRATEGY_TYPICLUST;
  o.struct_size = offsetof(csal3d_sampler_options, typiclust_variant);
  csal3d_selection sel[3];
  ck_assert_int_eq(t_run(ctx, &o, t_abc, 14, 1, 3, sel, NULL), CSAL3D_OK);
  ck_assert_int_eq(sel[1].index, 7); /* B's pick: the paper's variant */
  csal3d_context_free(ctx);
}
END_TEST

static Suite *baselines_suite(void) {
  Suite *s = suite_create("sampling baselines");
  TCase *t = tcase_create("typiclust");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, typiclust_original_on_a_hand_checked_case);
  tcase_add_test(t, typiclust_original_to_the_last_member_and_beyond);
  tcase_add_test(t, typiclust_original_with_no_cluster_left_says_so);
  tcase_add_test(t, typiclust_sixteen_cases_four_picks);
  tcase_add_test(t, typiclust_k_is_capped_at_20);
  suite_add_tcase(s, t);
  t = tcase_create("usl");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, usl_with_its_regulariser_follows_the_original);
  tcase_add_test(t, usl_on_a_hand_checked_case);
  suite_add_tcase(s, t);
  t = tcase_create("options");
  tcase_add_test(t, new_options_are_checked_and_defaulted);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(baselines_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
