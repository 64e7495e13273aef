/* Test data for the sampling suites: Gaussian blobs, partitions, pairwise helpers. */
#ifndef C3_TESTS_SAMPLING_DATA_H
#define C3_TESTS_SAMPLING_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

/* k blobs of sizes[c] points in d dimensions: centres N(0, sep^2) (plus `offset` on
 * every coordinate), members centre + N(0, std^2). Rows are interleaved pseudo-randomly
 * (not grouped by blob). truth (may be NULL) gets the blob of each row. */
static inline float *t_blobs(int k, const int *sizes, int d, double sep, double std,
                             double offset, uint64_t seed, int64_t *truth, int64_t *n_out) {
  int64_t n = 0;
  for (int c = 0; c < k; c++) n += sizes[c];
  float *X = malloc(sizeof(float) * (size_t)(n * d));
  double *centres = malloc(sizeof(double) * (size_t)(k * d));
  int64_t *order = malloc(sizeof(int64_t) * (size_t)n);
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_TEST, 77, 0, 0);
  for (int c = 0; c < k; c++)
    for (int j = 0; j < d; j++) centres[c * d + j] = offset + sep * c3_rng_normal(&r);
  for (int64_t i = 0; i < n; i++) order[i] = i;
  c3_rng_shuffle(&r, order, (size_t)n);
  int64_t t = 0;
  for (int c = 0; c < k; c++)
    for (int s = 0; s < sizes[c]; s++, t++) {
      int64_t row = order[t];
      if (truth) truth[row] = c;
      for (int j = 0; j < d; j++)
        X[row * d + j] = (float)(centres[c * d + j] + std * c3_rng_normal(&r));
    }
  free(centres);
  free(order);
  *n_out = n;
  return X;
}

/* 1 when a and b are the same partition up to renumbering. */
static inline int t_same_partition(const int64_t *a, const int64_t *b, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = i + 1; j < n; j++)
      if ((a[i] == a[j]) != (b[i] == b[j])) return 0;
  return 1;
}

/* Adjusted Rand index of two labelings with labels in [0, ka) and [0, kb). */
static inline double t_ari(const int64_t *a, const int64_t *b, int64_t n, int ka, int kb) {
  double *tab = calloc((size_t)(ka * kb), sizeof(double));
  double *ra = calloc((size_t)ka, sizeof(double)), *rb = calloc((size_t)kb, sizeof(double));
  for (int64_t i = 0; i < n; i++) tab[a[i] * kb + b[i]]++, ra[a[i]]++, rb[b[i]]++;
  double sij = 0, sa = 0, sb = 0;
  for (int i = 0; i < ka * kb; i++) sij += tab[i] * (tab[i] - 1) / 2;
  for (int i = 0; i < ka; i++) sa += ra[i] * (ra[i] - 1) / 2;
  for (int i = 0; i < kb; i++) sb += rb[i] * (rb[i] - 1) / 2;
  double all = (double)n * (n - 1) / 2, expct = sa * sb / all, mx = 0.5 * (sa + sb);
  free(tab), free(ra), free(rb);
  return mx == expct ? 1.0 : (sij - expct) / (mx - expct);
}

static inline double t_dist2(const float *X, int d, int64_t i, int64_t j) {
  double s = 0;
  for (int t = 0; t < d; t++) {
    double e = (double)X[i * d + t] - X[j * d + t];
    s += e * e;
  }
  return s;
}

static inline double t_cos(const float *X, int d, int64_t i, int64_t j) {
  double ab = 0, aa = 0, bb = 0;
  for (int t = 0; t < d; t++) {
    ab += (double)X[i * d + t] * X[j * d + t];
    aa += (double)X[i * d + t] * X[i * d + t];
    bb += (double)X[j * d + t] * X[j * d + t];
  }
  return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* Eq. 10 by its definition: 1 / mean over the other members of (1 - cos). */
static inline double t_typicality(const float *X, int d, const int64_t *labels,
                                  int64_t n, int64_t i) {
  double s = 0;
  int64_t cnt = 0;
  for (int64_t j = 0; j < n; j++)
    if (j != i && labels[j] == labels[i]) s += 1 - t_cos(X, d, i, j), cnt++;
  if (cnt == 0) return INFINITY;
  double mean = s / (double)cnt;
  return mean > 1e-12 ? 1 / mean : INFINITY;
}

#endif
