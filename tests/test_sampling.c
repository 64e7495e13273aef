/* Tests of lib/sampling's building blocks: distances and medians, kNN, k-means,
 * multi-kernel k-means (exact and Nystrom), the reference kernel k-means, BIRCH and
 * the typicality of Eq. 10. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "csal3d/csal3d.h"
#include "sampling/sampling.h"
#include "sampling_data.h"

static c3_kmeans_params t_kparams(int64_t k, uint64_t seed) {
  c3_kmeans_params p;
  memset(&p, 0, sizeof p);
  p.k = k;
  p.restarts = 10;
  p.max_iter = 300;
  p.tol = 1e-4;
  p.seed = seed;
  return p;
}

static c3_mkkm_params t_mparams(void) {
  c3_mkkm_params p;
  memset(&p, 0, sizeof p);
  p.n_kernels = 3;
  p.gammas[0] = 0.1, p.gammas[1] = 1, p.gammas[2] = 10;
  p.tol = 1e-6;
  p.max_iter = 100;
  p.exact_max_n = 8192;
  p.landmarks = 512;
  p.seed = 3;
  return p;
}

/* ---- distances ---- */

START_TEST(median_of_squared_distances_is_exact) {
  float a[] = {0, 1, 3}; /* 1, 9, 4 -> 4 */
  double med;
  ck_assert_int_eq(c3_median_sq_distance(a, 3, 1, 0, &med), CSAL3D_OK);
  ck_assert_double_eq(med, 4);
  float b[] = {0, 1, 3, 7}; /* 1 9 49 4 36 16 -> (9 + 16) / 2 */
  ck_assert_int_eq(c3_median_sq_distance(b, 4, 1, 0, &med), CSAL3D_OK);
  ck_assert_double_eq(med, 12.5);
  float c[] = {1, 1, 2, 2}; /* 2-D: one pair */
  ck_assert_int_eq(c3_median_sq_distance(c, 2, 2, 0, &med), CSAL3D_OK);
  ck_assert_double_eq(med, 2);
  ck_assert_int_eq(c3_median_sq_distance(c, 1, 2, 0, &med), CSAL3D_OK);
  ck_assert_double_eq(med, 0);
}
END_TEST

START_TEST(median_is_sampled_for_many_pairs) {
  /* 4000 points uniform on a line: 8M pairs, so 2^18 sampled; the median squared
   * distance of U(0,1) pairs is (1 - 1/sqrt 2)^2 = 0.0858 */
  int64_t n = 4000;
  float *x = malloc(sizeof(float) * n);
  for (int64_t i = 0; i < n; i++) x[i] = (float)(i + 0.5) / (float)n;
  double med, med2;
  ck_assert_int_eq(c3_median_sq_distance(x, n, 1, 5, &med), CSAL3D_OK);
  ck_assert_int_eq(c3_median_sq_distance(x, n, 1, 5, &med2), CSAL3D_OK);
  ck_assert_double_eq(med, med2);
  double want = (1 - 1 / sqrt(2)) * (1 - 1 / sqrt(2));
  ck_assert_double_lt(fabs(med - want), 0.003);
  free(x);
}
END_TEST

START_TEST(knn_matches_brute_force) {
  int sizes[] = {40, 50, 30};
  int64_t n;
  float *X = t_blobs(3, sizes, 5, 1.0, 1.0, 0, 11, NULL, &n);
  int64_t K = 7;
  float *dist = malloc(sizeof(float) * n * K);
  int64_t *idx = malloc(sizeof(int64_t) * n * K);
  ck_assert_int_eq(c3_knn(NULL, X, n, 5, K, 0, dist, idx), CSAL3D_OK);
  double *all = malloc(sizeof(double) * n);
  for (int64_t i = 0; i < n; i++) {
    int64_t cnt = 0;
    for (int64_t j = 0; j < n; j++)
      if (j != i) all[cnt++] = sqrt(t_dist2(X, 5, i, j));
    for (int64_t t = 0; t < K; t++) {
      double kth = c3_select_kth(all, cnt, t);
      ck_assert_double_lt(fabs(kth - dist[i * K + t]), 1e-4 * (1 + kth));
      ck_assert_double_lt(fabs(sqrt(t_dist2(X, 5, i, idx[i * K + t])) - dist[i * K + t]),
                          1e-4 * (1 + kth));
      ck_assert_int_ne(idx[i * K + t], i);
    }
  }
  free(all), free(dist), free(idx), free(X);
}
END_TEST

/* ---- k-means ---- */

START_TEST(kmeans_reaches_the_exhaustive_optimum) {
  /* 9 points on a line, k = 3: every one of the 3^9 labelings is tried */
  float x[] = {0, 1, 2.5f, 10, 11, 12.2f, 30, 31, 33.5f, };
  int n = 9, k = 3;
  double best = INFINITY;
  int lab[9];
  for (int code = 0; code < 19683; code++) {
    int c = code;
    double sum[3] = {0}, sq[3] = {0};
    int cnt[3] = {0};
    for (int i = 0; i < n; i++) {
      lab[i] = c % 3, c /= 3;
      sum[lab[i]] += x[i], sq[lab[i]] += (double)x[i] * x[i], cnt[lab[i]]++;
    }
    double in = 0;
    for (int q = 0; q < k; q++)
      if (cnt[q]) in += sq[q] - sum[q] * sum[q] / cnt[q];
    if (in < best) best = in;
  }
  int64_t labels[9];
  c3_kmeans_params p = t_kparams(k, 1);
  c3_kmeans_result r;
  ck_assert_int_eq(c3_kmeans(NULL, x, n, 1, &p, labels, NULL, &r), CSAL3D_OK);
  ck_assert_double_lt(fabs(r.inertia - best), 1e-4 * best);
  ck_assert_int_eq(r.empty, 0);

  /* a harder one, where a bad seeding lands in a local optimum: 2-D, k = 4 */
  float y[] = {0, 0, 0, 1, 1, 0, 1, 1, 5, 5, 5, 6, 6, 5, 6, 6,
               0, 5, 0, 6, 1, 5, 1, 6.5f, 5, 0, 6, 0, 5, 1, 6, 1.5f};
  int64_t l2[16];
  p = t_kparams(4, 2);
  ck_assert_int_eq(c3_kmeans(NULL, y, 16, 2, &p, l2, NULL, &r), CSAL3D_OK);
  /* optimum: the four squares; inertia = 4 + 4 + (0.5^2 offsets) */
  double opt = 0;
  for (int g = 0; g < 4; g++) {
    double mx = 0, my = 0;
    for (int t = 0; t < 4; t++) mx += y[(g * 4 + t) * 2], my += y[(g * 4 + t) * 2 + 1];
    mx /= 4, my /= 4;
    for (int t = 0; t < 4; t++) {
      double ex = y[(g * 4 + t) * 2] - mx, ey = y[(g * 4 + t) * 2 + 1] - my;
      opt += ex * ex + ey * ey;
    }
  }
  ck_assert_double_lt(fabs(r.inertia - opt), 1e-4 * opt);
  for (int g = 0; g < 4; g++)
    for (int t = 1; t < 4; t++) ck_assert_int_eq(l2[g * 4 + t], l2[g * 4]);
}
END_TEST

START_TEST(kmeans_recovers_blobs_and_is_thread_independent) {
  int sizes[] = {120, 80, 100, 60, 140};
  int64_t n, truth[500], l1[500], l2[500];
  float *X = t_blobs(5, sizes, 16, 4.0, 0.5, 0, 21, truth, &n);
  c3_kmeans_params p = t_kparams(5, 9);
  c3_kmeans_result r1, r2;
  int prev = c3_threads_enter(1), pb = c3_blas_threads_enter(1);
  ck_assert_int_eq(c3_kmeans(NULL, X, n, 16, &p, l1, NULL, &r1), CSAL3D_OK);
  c3_threads_enter(2), c3_blas_threads_enter(2);
  ck_assert_int_eq(c3_kmeans(NULL, X, n, 16, &p, l2, NULL, &r2), CSAL3D_OK);
  c3_threads_leave(prev), c3_blas_threads_leave(pb);
  ck_assert(t_same_partition(l1, truth, n));
  ck_assert_mem_eq(l1, l2, sizeof(int64_t) * n);
  ck_assert_double_eq(r1.inertia, r2.inertia);
  /* mini-batch on more points */
  int big[] = {800, 600, 700, 900};
  int64_t nb, *tb = malloc(sizeof(int64_t) * 3000), *lb = malloc(sizeof(int64_t) * 3000);
  float *B = t_blobs(4, big, 8, 5.0, 0.5, 0, 22, tb, &nb);
  p = t_kparams(4, 9);
  p.batch = 128;
  p.restarts = 3;
  ck_assert_int_eq(c3_kmeans(NULL, B, nb, 8, &p, lb, NULL, &r1), CSAL3D_OK);
  ck_assert(t_same_partition(lb, tb, nb));
  free(B), free(tb), free(lb), free(X);
}
END_TEST

START_TEST(kmeans_on_duplicates_leaves_clusters_empty) {
  float X[10 * 3];
  for (int i = 0; i < 30; i++) X[i] = 1.5f;
  int64_t labels[10];
  c3_kmeans_params p = t_kparams(3, 1);
  c3_kmeans_result r;
  ck_assert_int_eq(c3_kmeans(NULL, X, 10, 3, &p, labels, NULL, &r), CSAL3D_OK);
  ck_assert_double_eq(r.inertia, 0);
  ck_assert_int_eq(r.empty, 2);
  /* two distinct points, k = 2 with duplicates: both clusters used */
  for (int i = 15; i < 30; i++) X[i] = -4;
  ck_assert_int_eq(c3_kmeans(NULL, X, 10, 3, &p, labels, NULL, &r), CSAL3D_OK);
  ck_assert_int_eq(r.empty, 1);
  p.k = 2;
  ck_assert_int_eq(c3_kmeans(NULL, X, 10, 3, &p, labels, NULL, &r), CSAL3D_OK);
  ck_assert_int_eq(r.empty, 0);
  ck_assert_double_eq(r.inertia, 0);
  /* k = n */
  float Y[] = {0, 1, 2, 3, 4};
  int64_t ly[5];
  p.k = 5;
  ck_assert_int_eq(c3_kmeans(NULL, Y, 5, 1, &p, ly, NULL, &r), CSAL3D_OK);
  ck_assert_double_eq(r.inertia, 0);
  for (int i = 0; i < 5; i++)
    for (int j = i + 1; j < 5; j++) ck_assert_int_ne(ly[i], ly[j]);
}
END_TEST

/* ---- multi-kernel k-means ---- */

START_TEST(mkkm_weights_sum_to_one_and_objective_decreases) {
  int sizes[] = {50, 70, 40, 60, 30, 50};
  int64_t n, truth[300];
  /* overlapping blobs so that the weights take a few iterations to settle */
  float *X = t_blobs(6, sizes, 10, 1.0, 0.6, 0, 31, truth, &n);
  c3_mkkm_params p = t_mparams();
  double *H = malloc(sizeof(double) * n * 6);
  double hist[100];
  c3_mkkm_result r;
  memset(&r, 0, sizeof r);
  r.history = hist, r.history_cap = 100;
  ck_assert_int_eq(c3_mkkm_embed(NULL, X, n, 10, 6, &p, H, &r), CSAL3D_OK);
  ck_assert_int_eq(r.nystrom, 0);
  ck_assert_int_ge(r.iterations, 2);
  double sum = 0;
  for (int q = 0; q < 3; q++) {
    ck_assert(r.weights[q] >= 0 && r.weights[q] <= 1);
    sum += r.weights[q];
  }
  ck_assert_double_lt(fabs(sum - 1), 1e-12);
  for (int it = 1; it < r.iterations; it++)
    ck_assert_msg(hist[it] <= hist[it - 1] * (1 + 1e-9), "objective rose at %d: %.12g > %.12g",
                  it, hist[it], hist[it - 1]);
  ck_assert_double_eq(r.objective, hist[r.iterations - 1]);
  /* H has orthonormal columns */
  for (int a = 0; a < 6; a++)
    for (int b = 0; b < 6; b++) {
      double dot = 0;
      for (int64_t i = 0; i < n; i++) dot += H[i * 6 + a] * H[i * 6 + b];
      ck_assert_double_lt(fabs(dot - (a == b)), 1e-8);
    }
  /* gammas are {0.1, 1, 10} over the median squared distance (docs/algorithms.md) */
  ck_assert_double_gt(r.median, 0);
  ck_assert_double_lt(fabs(r.gammas[1] * r.median - 1), 1e-12);
  ck_assert_double_lt(fabs(r.gammas[2] / r.gammas[0] - 100), 1e-9);
  free(H), free(X);
}
END_TEST

START_TEST(mkkm_clusters_blobs_and_nystrom_agrees) {
  int sizes[] = {100, 150, 80, 120, 90, 60};
  int64_t n, truth[600], le[600], ln[600];
  float *X = t_blobs(6, sizes, 12, 3.0, 0.3, 0, 41, truth, &n);
  c3_mkkm_params p = t_mparams();
  c3_kmeans_params kp = t_kparams(6, 5);
  c3_mkkm_result re, rn;
  c3_kmeans_result ke, kn;
  memset(&re, 0, sizeof re), memset(&rn, 0, sizeof rn);
  ck_assert_int_eq(c3_mkkm_cluster(NULL, X, n, 12, 6, &p, &kp, le, &re, &ke), CSAL3D_OK);
  ck_assert_int_eq(re.nystrom, 0);
  ck_assert(t_same_partition(le, truth, n));
  p.exact_max_n = 100; /* force Nystrom */
  p.landmarks = 120;
  ck_assert_int_eq(c3_mkkm_cluster(NULL, X, n, 12, 6, &p, &kp, ln, &rn, &kn), CSAL3D_OK);
  ck_assert_int_eq(rn.nystrom, 1);
  ck_assert_int_eq(rn.landmarks, 120);
  ck_assert(t_same_partition(ln, le, n));
  double sum = 0;
  for (int q = 0; q < 3; q++) sum += rn.weights[q];
  ck_assert_double_lt(fabs(sum - 1), 1e-12);
  free(X);
}
END_TEST

START_TEST(mkkm_nystrom_objective_is_close_on_realistic_data) {
  /* "realistic": 10 overlapping groups with different spreads in 32-D, plus uniform
   * background noise, like SSL features of a heterogeneous dataset */
  int sizes[] = {90, 60, 120, 40, 80, 100, 70, 50, 110, 80};
  int64_t n, truth[800], le[800], ln[800];
  float *X = t_blobs(10, sizes, 32, 1.0, 0.7, 0.5, 51, truth, &n);
  c3_rng r;
  c3_rng_init(&r, 9, C3_RNG_TEST, 1, 0, 0);
  for (int64_t i = 0; i < n * 32; i++) X[i] += (float)(0.3 * c3_rng_normal(&r));
  c3_mkkm_params p = t_mparams();
  c3_kmeans_params kp = t_kparams(10, 5);
  c3_mkkm_result re, rn;
  c3_kmeans_result ke, kn;
  memset(&re, 0, sizeof re), memset(&rn, 0, sizeof rn);
  ck_assert_int_eq(c3_mkkm_cluster(NULL, X, n, 32, 10, &p, &kp, le, &re, &ke), CSAL3D_OK);
  p.exact_max_n = 0;
  p.landmarks = 400;
  ck_assert_int_eq(c3_mkkm_cluster(NULL, X, n, 32, 10, &p, &kp, ln, &rn, &kn), CSAL3D_OK);
  double rel = fabs(rn.objective - re.objective) / re.objective;
  double ari = t_ari(le, ln, n, 10, 10);
  printf("mkkm exact objective %.6g (weights %.3f %.3f %.3f), Nystrom %.6g (%.3f %.3f "
         "%.3f): relative difference %.4f, ARI %.3f\n",
         re.objective, re.weights[0], re.weights[1], re.weights[2], rn.objective,
         rn.weights[0], rn.weights[1], rn.weights[2], rel, ari);
  ck_assert_double_lt(rel, 0.05);
  for (int q = 0; q < 3; q++) ck_assert_double_lt(fabs(re.weights[q] - rn.weights[q]), 0.05);
  ck_assert_double_gt(ari, 0.7);
  free(X);
}
END_TEST

START_TEST(mkkm_degenerate_inputs) {
  /* all rows identical: every kernel is all ones (rank 1) */
  float X[8 * 2];
  for (int i = 0; i < 16; i++) X[i] = 2;
  c3_mkkm_params p = t_mparams();
  double H[8 * 3];
  c3_mkkm_result r;
  memset(&r, 0, sizeof r);
  ck_assert_int_eq(c3_mkkm_embed(NULL, X, 8, 2, 3, &p, H, &r), CSAL3D_OK);
  double sum = 0;
  for (int q = 0; q < 3; q++) sum += r.weights[q];
  ck_assert_double_lt(fabs(sum - 1), 1e-12);
  for (int i = 0; i < 24; i++) ck_assert(isfinite(H[i]));
  /* the same through Nystrom */
  p.exact_max_n = 0;
  ck_assert_int_eq(c3_mkkm_embed(NULL, X, 8, 2, 3, &p, H, &r), CSAL3D_OK);
  for (int i = 0; i < 24; i++) ck_assert(isfinite(H[i]));
  /* m = n, exact */
  float Y[] = {0, 1, 3, 7, 8};
  double H5[25];
  p.exact_max_n = 8192;
  ck_assert_int_eq(c3_mkkm_embed(NULL, Y, 5, 1, 5, &p, H5, &r), CSAL3D_OK);
}
END_TEST

START_TEST(reference_kernel_kmeans_decreases_its_objective) {
  int sizes[] = {40, 60, 50};
  int64_t n, truth[150], labels[150];
  float *X = t_blobs(3, sizes, 6, 3.0, 0.3, 0, 61, truth, &n);
  float S[150];
  for (int64_t i = 0; i < n; i++) S[i] = (float)(i % 17) / 17.0f;
  c3_mkkm_params p = t_mparams();
  double hist[100];
  c3_mkkm_result r;
  memset(&r, 0, sizeof r);
  r.history = hist, r.history_cap = 100;
  ck_assert_int_eq(c3_reference_cluster(NULL, X, S, n, 6, 3, &p, 1e-3, labels, &r),
                   CSAL3D_OK);
  for (int it = 1; it < r.iterations; it++)
    ck_assert_double_le(hist[it], hist[it - 1] * (1 + 1e-12));
  for (int64_t i = 0; i < n; i++) ck_assert(labels[i] >= 0 && labels[i] < 3);
  p.exact_max_n = 100;
  ck_assert_int_eq(c3_reference_cluster(NULL, X, S, n, 6, 3, &p, 1e-3, labels, &r),
                   CSAL3D_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "exact_max_n"));
  free(X);
}
END_TEST

/* ---- BIRCH ---- */

START_TEST(birch_recovers_blobs_with_and_without_rebuilds) {
  int sizes[] = {300, 500, 200, 400};
  int64_t n, *truth = malloc(sizeof(int64_t) * 1400), *labels = malloc(sizeof(int64_t) * 1400);
  float *X = t_blobs(4, sizes, 8, 5.0, 0.4, 0, 71, truth, &n);
  c3_birch_result r;
  /* no rebuild: max_sub above n */
  ck_assert_int_eq(c3_birch(NULL, X, n, 8, 4, 0, 50, 100000, labels, &r), CSAL3D_OK);
  ck_assert(t_same_partition(labels, truth, n));
  ck_assert_int_le(r.subclusters, n);
  /* many rebuilds: at most 64 subclusters */
  ck_assert_int_eq(c3_birch(NULL, X, n, 8, 4, 0, 8, 64, labels, &r), CSAL3D_OK);
  ck_assert_int_le(r.subclusters, 64);
  ck_assert_double_gt(r.threshold, 0);
  ck_assert(t_same_partition(labels, truth, n));
  /* a fixed threshold */
  ck_assert_int_eq(c3_birch(NULL, X, n, 8, 4, 0.5, 50, 0, labels, &r), CSAL3D_OK);
  ck_assert_double_eq(r.threshold, 0.5);
  ck_assert(t_same_partition(labels, truth, n));
  /* identical rows: one subcluster, k = 3 leaves two clusters empty */
  float Y[20];
  for (int i = 0; i < 20; i++) Y[i] = 1;
  int64_t ly[10];
  ck_assert_int_eq(c3_birch(NULL, Y, 10, 2, 3, 0, 50, 100, ly, &r), CSAL3D_OK);
  ck_assert_int_eq(r.subclusters, 1);
  for (int i = 0; i < 10; i++) ck_assert_int_eq(ly[i], 0);
  free(truth), free(labels), free(X);
}
END_TEST

/* ---- typicality ---- */

START_TEST(typicality_follows_eq_10) {
  /* (1,0), (0,1), (1,1) in one cluster; (5,5) alone */
  float X[] = {1, 0, 0, 1, 1, 1, 5, 5};
  int64_t labels[] = {0, 0, 0, 1};
  double T[4];
  ck_assert_int_eq(c3_typicality_cosine(X, 4, 2, labels, 2, T), CSAL3D_OK);
  double c = 1 / sqrt(2);
  ck_assert_double_lt(fabs(T[0] - 1 / ((1 + (1 - c)) / 2)), 1e-12);
  ck_assert_double_lt(fabs(T[2] - 1 / (1 - c)), 1e-12);
  ck_assert(isinf(T[3]) && T[3] > 0);
  /* a large cluster (sum trick) agrees with the definition */
  int sizes[] = {600, 300};
  int64_t n, truth[900];
  float *Y = t_blobs(2, sizes, 7, 2.0, 0.8, 1.0, 81, truth, &n);
  double *TY = malloc(sizeof(double) * n);
  ck_assert_int_eq(c3_typicality_cosine(Y, n, 7, truth, 2, TY), CSAL3D_OK);
  for (int64_t i = 0; i < n; i += 7) {
    double want = t_typicality(Y, 7, truth, n, i);
    ck_assert_double_lt(fabs(TY[i] - want), 1e-9 * want);
  }
  /* identical members: +inf; unlabelled: NaN */
  float Z[] = {1, 2, 1, 2, 3, 3};
  int64_t lz[] = {0, 0, -1};
  ck_assert_int_eq(c3_typicality_cosine(Z, 3, 2, lz, 1, T), CSAL3D_OK);
  ck_assert(isinf(T[0]) && isinf(T[1]) && isnan(T[2]));
  free(TY), free(Y);
}
END_TEST

static Suite *sampling_suite(void) {
  Suite *s = suite_create("sampling");
  TCase *t = tcase_create("distances");
  tcase_add_test(t, median_of_squared_distances_is_exact);
  tcase_add_test(t, median_is_sampled_for_many_pairs);
  tcase_add_test(t, knn_matches_brute_force);
  suite_add_tcase(s, t);
  t = tcase_create("kmeans");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, kmeans_reaches_the_exhaustive_optimum);
  tcase_add_test(t, kmeans_recovers_blobs_and_is_thread_independent);
  tcase_add_test(t, kmeans_on_duplicates_leaves_clusters_empty);
  suite_add_tcase(s, t);
  t = tcase_create("mkkm");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, mkkm_weights_sum_to_one_and_objective_decreases);
  tcase_add_test(t, mkkm_clusters_blobs_and_nystrom_agrees);
  tcase_add_test(t, mkkm_nystrom_objective_is_close_on_realistic_data);
  tcase_add_test(t, mkkm_degenerate_inputs);
  tcase_add_test(t, reference_kernel_kmeans_decreases_its_objective);
  suite_add_tcase(s, t);
  t = tcase_create("birch");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, birch_recovers_blobs_with_and_without_rebuilds);
  suite_add_tcase(s, t);
  t = tcase_create("typicality");
  tcase_add_test(t, typicality_follows_eq_10);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  c3_blas_threads_enter(1); /* as a selection runs it */
  SRunner *sr = srunner_create(sampling_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
