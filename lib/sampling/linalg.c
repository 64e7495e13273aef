/* Sampling's dense helpers: BLAS thread control, squared distances, centring, the
 * median pairwise distance, k nearest neighbours, selection of the k-th value. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/report.h"
#include "core/rng.h"
#include "sampling/sampling.h"

/* Declared by OpenBLAS's cblas.h; repeated so that another cblas.h still builds. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

int c3_blas_threads_enter(int n) {
  int previous = openblas_get_num_threads();
  openblas_set_num_threads(n >= 1 ? n : 1);
  return previous;
}

void c3_blas_threads_leave(int previous) {
  openblas_set_num_threads(previous >= 1 ? previous : 1);
}

void c3_row_sqnorms(const float *A, int64_t rows, int64_t d, float *out) {
#pragma omp parallel for schedule(static) if ((rows * d) > C3_PAR_MIN)
  for (int64_t i = 0; i < rows; i++) {
    const float *a = A + i * d;
    double s = 0;
    for (int64_t j = 0; j < d; j++) s += (double)a[j] * a[j];
    out[i] = (float)s;
  }
}

void c3_sqdist(const float *A, const float *an, int64_t rows, const float *B,
               const float *bn, int64_t k, int64_t d, float *out) {
  if (rows <= 0 || k <= 0) return;
  int64_t chunks = (rows + C3_GEMM_ROWS - 1) / C3_GEMM_ROWS;
#pragma omp parallel for schedule(dynamic, 1) if ((rows * k * d) > C3_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t r0 = c * C3_GEMM_ROWS;
    int64_t r1 = r0 + C3_GEMM_ROWS < rows ? r0 + C3_GEMM_ROWS : rows;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)k, (int)d,
                -2.0f, A + r0 * d, (int)d, B, (int)d, 0.0f, out + r0 * k, (int)k);
    for (int64_t i = r0; i < r1; i++) {
      float *o = out + i * k;
      float a = an[i];
      for (int64_t j = 0; j < k; j++) {
        float v = o[j] + a + bn[j];
        o[j] = v > 0.0f ? v : 0.0f;
      }
    }
  }
}

void c3_dgemm_rows(int64_t rows, int64_t n, int64_t k, const double *A, int64_t lda,
                   const double *B, int64_t ldb, double *C, int64_t ldc) {
  if (rows <= 0 || n <= 0) return;
  int64_t chunks = (rows + C3_GEMM_ROWS - 1) / C3_GEMM_ROWS;
#pragma omp parallel for schedule(dynamic, 1) if ((rows * n * k) > C3_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t r0 = c * C3_GEMM_ROWS;
    int64_t r1 = r0 + C3_GEMM_ROWS < rows ? r0 + C3_GEMM_ROWS : rows;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), (int)n,
                (int)k, 1.0, A + r0 * lda, (int)lda, B, (int)ldb, 0.0, C + r0 * ldc,
                (int)ldc);
  }
}

void c3_dgram_acc(int64_t rows, int64_t R, const double *F, double *G) {
  if (rows <= 0 || R <= 0) return;
  int64_t chunks = (R + C3_GEMM_ROWS - 1) / C3_GEMM_ROWS;
#pragma omp parallel for schedule(dynamic, 1) if ((rows * R * R) > C3_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t c0 = c * C3_GEMM_ROWS, c1 = c0 + C3_GEMM_ROWS < R ? c0 + C3_GEMM_ROWS : R;
    /* G[0:c1, c0:c1] += F[:, 0:c1]^T F[:, c0:c1]: the upper triangle, by columns */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)c1, (int)(c1 - c0),
                (int)rows, 1.0, F, (int)R, F + c0, (int)R, 1.0, G + c0, (int)R);
  }
}

csal3d_status c3_center_copy(const float *X, int64_t n, int64_t d, float **out) {
  *out = NULL;
  int64_t chunks = (n + C3_CHUNK - 1) / C3_CHUNK;
  double *part = NULL, *mean = NULL;
  float *Y = NULL;
  csal3d_status s = c3_calloc_array((size_t)(chunks * d), sizeof(double),
                                    "column sums", (void **)&part);
  if (s == CSAL3D_OK)
    s = c3_calloc_array((size_t)d, sizeof(double), "column means", (void **)&mean);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)n, (size_t)d * sizeof(float), "centred features",
                       (void **)&Y);
  if (s != CSAL3D_OK) {
    c3_free(part), c3_free(mean), c3_free(Y);
    return s;
  }
#pragma omp parallel for schedule(static) if ((n * d) > C3_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    double *p = part + c * d;
    int64_t end = (c + 1) * C3_CHUNK < n ? (c + 1) * C3_CHUNK : n;
    for (int64_t i = c * C3_CHUNK; i < end; i++)
      for (int64_t j = 0; j < d; j++) p[j] += X[i * d + j];
  }
  for (int64_t c = 0; c < chunks; c++)
    for (int64_t j = 0; j < d; j++) mean[j] += part[c * d + j];
  for (int64_t j = 0; j < d; j++) mean[j] /= (double)n;
#pragma omp parallel for schedule(static) if ((n * d) > C3_PAR_MIN)
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++)
      Y[i * d + j] = (float)((double)X[i * d + j] - mean[j]);
  c3_free(part);
  c3_free(mean);
  *out = Y;
  return CSAL3D_OK;
}

static void c3_swap_d(double *a, double *b) {
  double t = *a;
  *a = *b;
  *b = t;
}

double c3_select_kth(double *v, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1;
  while (hi > lo) {
    /* median of three as the pivot, then a three-way partition */
    int64_t mid = lo + (hi - lo) / 2;
    if (v[mid] < v[lo]) c3_swap_d(&v[mid], &v[lo]);
    if (v[hi] < v[lo]) c3_swap_d(&v[hi], &v[lo]);
    if (v[hi] < v[mid]) c3_swap_d(&v[hi], &v[mid]);
    double pivot = v[mid];
    int64_t lt = lo, i = lo, gt = hi;
    while (i <= gt) {
      if (v[i] < pivot)
        c3_swap_d(&v[lt++], &v[i++]);
      else if (v[i] > pivot)
        c3_swap_d(&v[i], &v[gt--]);
      else
        i++;
    }
    if (k < lt)
      hi = lt - 1;
    else if (k > gt)
      lo = gt + 1;
    else
      return pivot;
  }
  return v[k];
}

#define C3_MEDIAN_SAMPLE_PAIRS (1 << 18)

csal3d_status c3_median_sq_distance(const float *X, int64_t n, int64_t d,
                                    uint64_t seed, double *out) {
  *out = 0;
  if (n < 2) return CSAL3D_OK;
  int64_t pairs = n * (n - 1) / 2;
  int exact = pairs <= C3_MEDIAN_EXACT_PAIRS;
  int64_t count = exact ? pairs : C3_MEDIAN_SAMPLE_PAIRS;
  double *v = NULL;
  float *xn = NULL, *buf = NULL;
  const int64_t bq = 256;
  csal3d_status s = c3_alloc_array((size_t)count, sizeof(double), "pairwise distances",
                                   (void **)&v);
  if (s == CSAL3D_OK && exact) {
    s = c3_alloc_array((size_t)n, sizeof(float), "norms", (void **)&xn);
    if (s == CSAL3D_OK)
      s = c3_alloc_array((size_t)bq, (size_t)n * sizeof(float), "distance block",
                         (void **)&buf);
  }
  if (s != CSAL3D_OK) goto done;
  if (exact) {
    /* rows i against rows j > i through sgemm blocks */
    c3_row_sqnorms(X, n, d, xn);
    for (int64_t q0 = 0; q0 < n - 1; q0 += bq) {
      int64_t q1 = q0 + bq < n - 1 ? q0 + bq : n - 1;
      c3_sqdist(X + q0 * d, xn + q0, q1 - q0, X, xn, n, d, buf);
      for (int64_t i = q0; i < q1; i++) {
        int64_t base = i * (n - 1) - i * (i - 1) / 2; /* pairs before row i */
        const float *row = buf + (i - q0) * n;
        for (int64_t j = i + 1; j < n; j++) v[base + (j - i - 1)] = row[j];
      }
    }
  } else {
    int64_t blocks = count / 1024;
#pragma omp parallel for schedule(static) if ((count * d) > C3_PAR_MIN)
    for (int64_t b = 0; b < blocks; b++) {
      c3_rng r;
      c3_rng_init(&r, seed, C3_RNG_SAMPLING, C3_STREAM_MEDIAN, (uint64_t)b, 0);
      for (int64_t q = 0; q < 1024; q++) {
        int64_t i = (int64_t)c3_rng_below(&r, (uint64_t)n);
        int64_t j = (int64_t)c3_rng_below(&r, (uint64_t)(n - 1));
        if (j >= i) j++;
        const float *a = X + i * d, *c = X + j * d;
        double sum = 0;
        for (int64_t t = 0; t < d; t++) {
          double e = (double)a[t] - c[t];
          sum += e * e;
        }
        v[b * 1024 + q] = sum;
      }
    }
  }
  {
    int64_t h = count / 2;
    double upper = c3_select_kth(v, count, h);
    double med = upper;
    if (count % 2 == 0) {
      double lower = v[0];
      for (int64_t i = 1; i < h; i++)
        if (v[i] > lower) lower = v[i];
      med = 0.5 * (lower + upper);
    }
    *out = med;
  }
done:
  c3_free(v), c3_free(xn), c3_free(buf);
  return s;
}

csal3d_status c3_knn(const csal3d_context *ctx, const float *X, int64_t n,
                     int64_t d, int64_t K, int squared, float *dist, int64_t *idx) {
  if (K <= 0) return CSAL3D_OK;
  if (K > n - 1)
    return c3_error(CSAL3D_ERR_INTERNAL, "knn: K = %lld with n = %lld",
                    (long long)K, (long long)n);
  int64_t bq = ((int64_t)1 << 24) / n;
  if (bq > 1024) bq = 1024;
  if (bq < 16) bq = 16;
  if (bq > n) bq = n;
  float *Xc = NULL, *norms = NULL, *buf = NULL;
  int64_t *tmp_idx = NULL;
  /* centred: the norm trick loses less to cancellation when the features are far
   * from the origin (distances are unchanged) */
  csal3d_status s = c3_center_copy(X, n, d, &Xc);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)n, sizeof(float), "norms", (void **)&norms);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)bq, (size_t)n * sizeof(float), "distance block",
                       (void **)&buf);
  if (s == CSAL3D_OK && !idx)
    s = c3_alloc_array((size_t)bq, (size_t)K * sizeof(int64_t), "neighbour block",
                       (void **)&tmp_idx);
  if (s != CSAL3D_OK) goto done;
  c3_row_sqnorms(Xc, n, d, norms);
  for (int64_t q0 = 0; q0 < n; q0 += bq) {
    int64_t q1 = q0 + bq < n ? q0 + bq : n;
    c3_sqdist(Xc + q0 * d, norms + q0, q1 - q0, Xc, norms, n, d, buf);
#pragma omp parallel for schedule(static) if (((q1 - q0) * n) > C3_PAR_MIN)
    for (int64_t i = q0; i < q1; i++) {
      const float *row = buf + (i - q0) * n;
      float *bd = dist + i * K;
      int64_t *bi = idx ? idx + i * K : tmp_idx + (i - q0) * K;
      int64_t have = 0;
      for (int64_t j = 0; j < n; j++) {
        if (j == i) continue;
        float v = row[j];
        if (have == K && !(v < bd[K - 1])) continue;
        int64_t p = have < K ? have++ : K - 1;
        while (p > 0 && bd[p - 1] > v) {
          bd[p] = bd[p - 1];
          bi[p] = bi[p - 1];
          p--;
        }
        bd[p] = v;
        bi[p] = j;
      }
      /* the neighbours' distances again, exactly (double, from the differences of the
       * caller's rows): the norm trick chose them; near-ties it may have misordered
       * have near-equal distances, so the sums hardly change, and exact ties
       * (small-integer data) stay exact */
      for (int64_t t = 0; t < K; t++) {
        const float *x = X + i * d, *y = X + bi[t] * d;
        double v = 0;
        for (int64_t j = 0; j < d; j++) {
          double e = (double)x[j] - y[j];
          v += e * e;
        }
        float f = squared ? (float)v : (float)sqrt(v);
        int64_t p = t, id = bi[t];
        while (p > 0 && (bd[p - 1] > f || (bd[p - 1] == f && bi[p - 1] > id))) {
          bd[p] = bd[p - 1];
          bi[p] = bi[p - 1];
          p--;
        }
        bd[p] = f;
        bi[p] = id;
      }
    }
    s = c3_progress(ctx, "select", (uint64_t)q1, (uint64_t)n);
    if (s != CSAL3D_OK) goto done;
  }
done:
  c3_free(Xc);
  c3_free(norms);
  c3_free(buf);
  c3_free(tmp_idx);
  return s;
}
