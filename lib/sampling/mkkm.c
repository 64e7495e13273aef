/* Multi-kernel k-means (Huang, Chuang and Chen 2012) as CSAL-3D's URDS uses it, and
 * the reference code's uncertainty-weighted kernel k-means.
 *
 * Gaussian kernels K_p(i,j) = exp(-g_p ||z_i - z_j||^2 / 2). MKKM minimises
 * sum_p w_p^2 Tr(K_p (I - H H^T)) over H (n x m, H^T H = I) and w (sum 1) by
 * alternating (a) H = top-m eigenvectors of K_w = sum_p w_p^2 K_p and
 * (b) w_p proportional to 1 / Tr(K_p (I - H H^T)); each step minimises the objective
 * over one block, so it never increases.
 *
 * Exact path (n <= exact_max_n): K_w is built densely (n x n doubles) and dsyevr finds
 * its top m eigenvectors; Tr(H^T K_p H) comes from K_p blocks times H (dgemm), never
 * storing more than one n x n matrix.
 *
 * Nystrom path: L landmarks drawn uniformly without replacement; per kernel
 * F_p = C_p U_p Lambda_p^{-1/2} (C_p = K_p(all, landmarks), W_p = U_p Lambda_p U_p^T
 * the landmark kernel, eigenvalues below 1e-10 of the largest dropped) so that
 * K_p ~ F_p F_p^T. With F = [w_1 F_1, ..., w_P F_P], K_w ~ F F^T, and everything the
 * iteration needs lives in R x R with R = sum_p rank(W_p): G = [F_1..F_P]^T [F_1..F_P]
 * is accumulated in one pass over the data (dsyrk), the eigenvectors of F F^T are
 * F V Lambda^{-1/2} with (V, Lambda) the eigenpairs of D_w G D_w, and
 * Tr(H^T K_p H) = ||Lambda^{-1/2} V^T D_w G[:, p]||_F^2. A last pass forms H (n x m).
 * Memory: O(n (d + m) + R^2 + block x L). */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/report.h"
#include "core/rng.h"
#include "sampling/sampling.h"

#define C3_MK_BLOCK 256
/* Eigenvalues below this fraction of the largest count as zero. */
#define C3_EIG_REL 1e-10
/* Landmark-kernel eigenvalues below this fraction of the largest are dropped: they
 * would add noise (W^{-1/2}) for a relative change of the kernel below it. */
#define C3_NYS_REL 1e-10

/* Top-m eigenpairs of the symmetric a (n x n, column-major, destroyed), with one BLAS
 * thread (deterministic). vals: m, descending; vecs: n x m column-major, column c the
 * eigenvector of vals[c]. */
static csal3d_status c3_top_eigen(double *a, int64_t n, int64_t m, double *vals,
                                  double *vecs) {
  double *w = NULL, *z = NULL;
  int *support = NULL;
  csal3d_status s = c3_alloc_array((size_t)n, sizeof(double), "eigenvalues", (void **)&w);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)n, (size_t)m * sizeof(double), "eigenvectors", (void **)&z);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)(2 * m), sizeof(int), "eigen support", (void **)&support);
  if (s != CSAL3D_OK) goto done;
  int prev = c3_blas_threads_enter(1);
  lapack_int found = 0;
  lapack_int info = LAPACKE_dsyevr(LAPACK_COL_MAJOR, 'V', 'I', 'L', (lapack_int)n, a,
                                   (lapack_int)n, 0, 0, (lapack_int)(n - m + 1),
                                   (lapack_int)n, 0.0, &found, w, z, (lapack_int)n,
                                   support);
  c3_blas_threads_leave(prev);
  if (info != 0 || found != m) {
    s = c3_error(info == LAPACK_WORK_MEMORY_ERROR ? CSAL3D_ERR_OUT_OF_MEMORY
                                                  : CSAL3D_ERR_NUMERICAL,
                 "eigensolver (LAPACK dsyevr) failed on a %lld x %lld kernel matrix: "
                 "info %d, %d of %lld eigenpairs",
                 (long long)n, (long long)n, (int)info, (int)found, (long long)m);
    goto done;
  }
  for (int64_t c = 0; c < m; c++) {
    vals[c] = w[m - 1 - c];
    memcpy(vecs + c * n, z + (m - 1 - c) * n, (size_t)n * sizeof(double));
  }
done:
  c3_free(w), c3_free(z), c3_free(support);
  return s;
}

static csal3d_status c3_mkkm_gammas(const float *Xc, int64_t n, int64_t d,
                                    const c3_mkkm_params *p, c3_mkkm_result *res) {
  C3_TRY(c3_median_sq_distance(Xc, n, d, p->seed, &res->median));
  double scale = res->median;
  if (!(scale > 0)) {
    /* more than half the pairs coincide: fall back on the mean squared distance,
     * 2 n / (n - 1) x the total variance (Xc is centred) */
    double tv = 0;
    for (int64_t i = 0; i < n * d; i++) tv += (double)Xc[i] * Xc[i];
    scale = n > 1 ? 2.0 * tv / (double)(n - 1) : 0;
  }
  if (!(scale > 0)) scale = 1; /* all features identical: any scale */
  for (int q = 0; q < p->n_kernels; q++)
    res->gammas[q] = p->gamma_raw ? p->gammas[q] : p->gammas[q] / scale;
  return CSAL3D_OK;
}

/* w_p from the residual traces a_p; returns the objective sum w_p^2 a_p. A kernel
 * with a (numerically) zero residual takes all the weight (shared among such). */
static double c3_mkkm_weights(const double *a, const double *tr, int P, double *w,
                              int *degenerate) {
  int zero = 0;
  for (int q = 0; q < P; q++)
    if (!(a[q] > 1e-12 * (tr[q] > 0 ? tr[q] : 1))) zero++;
  *degenerate = zero > 0;
  if (zero) {
    for (int q = 0; q < P; q++)
      w[q] = !(a[q] > 1e-12 * (tr[q] > 0 ? tr[q] : 1)) ? 1.0 / zero : 0;
    return 0;
  }
  double sum = 0;
  for (int q = 0; q < P; q++) sum += 1.0 / a[q];
  for (int q = 0; q < P; q++) w[q] = (1.0 / a[q]) / sum;
  double obj = 0;
  for (int q = 0; q < P; q++) obj += w[q] * w[q] * a[q];
  return obj;
}

/* ---- exact ---- */

static csal3d_status c3_mkkm_exact(const csal3d_context *ctx, const float *Xc,
                                   int64_t n, int64_t d, int64_t m,
                                   const c3_mkkm_params *p, double *H,
                                   c3_mkkm_result *res) {
  const int P = p->n_kernels;
  double *K = NULL, *vecs = NULL, *vals = NULL, *kb = NULL, *kh = NULL;
  float *xn = NULL, *db = NULL;
  csal3d_status s = c3_alloc_array((size_t)n, (size_t)n * sizeof(double),
                                   "kernel matrix (n x n doubles; lower exact_max_n "
                                   "to use Nystrom)", (void **)&K);
#define C3_ALLOC(ptr, count, size, what)                                       \
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(count), (size_t)(size), what, (void **)&(ptr))
  C3_ALLOC(vecs, n, (size_t)m * sizeof(double), "eigenvectors");
  C3_ALLOC(vals, m, sizeof(double), "eigenvalues");
  C3_ALLOC(kb, C3_MK_BLOCK, (size_t)n * sizeof(double), "kernel block");
  C3_ALLOC(kh, C3_MK_BLOCK, (size_t)m * sizeof(double), "kernel block product");
  C3_ALLOC(xn, n, sizeof(float), "norms");
  C3_ALLOC(db, C3_MK_BLOCK, (size_t)n * sizeof(float), "distance block");
#undef C3_ALLOC
  if (s != CSAL3D_OK) goto done;
  c3_row_sqnorms(Xc, n, d, xn);
  double w[CSAL3D_MAX_KERNELS], a[CSAL3D_MAX_KERNELS], tr[CSAL3D_MAX_KERNELS];
  for (int q = 0; q < P; q++) w[q] = 1.0 / P, tr[q] = (double)n;
  double prev_obj = 0;
  for (int it = 0; it < (p->max_iter >= 1 ? p->max_iter : 1); it++) {
    double w2[CSAL3D_MAX_KERNELS];
    for (int q = 0; q < P; q++) w2[q] = w[q] * w[q];
    /* K_w, full symmetric (column-major = row-major) */
    for (int64_t r0 = 0; r0 < n; r0 += C3_MK_BLOCK) {
      int64_t r1 = r0 + C3_MK_BLOCK < n ? r0 + C3_MK_BLOCK : n;
      c3_sqdist(Xc + r0 * d, xn + r0, r1 - r0, Xc, xn, n, d, db);
#pragma omp parallel for schedule(static) if (((r1 - r0) * n * P) > C3_PAR_MIN)
      for (int64_t i = r0; i < r1; i++) {
        const float *dr = db + (i - r0) * n;
        double *kr = K + i * n;
        for (int64_t j = 0; j < n; j++) {
          double dd = j == i ? 0.0 : (double)dr[j], v = 0;
          for (int q = 0; q < P; q++) v += w2[q] * exp(-0.5 * res->gammas[q] * dd);
          kr[j] = v;
        }
      }
    }
    /* symmetrise: the float distance of (i,j) and (j,i) may differ in the last bit */
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < i; j++) K[j * n + i] = K[i * n + j];
    s = c3_top_eigen(K, n, m, vals, vecs);
    if (s != CSAL3D_OK) goto done;
    /* H row-major from the eigenvector columns; directions of a (numerically) zero
     * eigenvalue carry no information (duplicate rows) and are left out */
    for (int64_t c = 0; c < m; c++) {
      int keep = vals[c] > C3_EIG_REL * vals[0];
      for (int64_t i = 0; i < n; i++) H[i * m + c] = keep ? vecs[c * n + i] : 0;
    }
    /* residual traces a_p = n - sum_c h_c^T K_p h_c */
    double t[CSAL3D_MAX_KERNELS] = {0};
    for (int64_t r0 = 0; r0 < n; r0 += C3_MK_BLOCK) {
      int64_t r1 = r0 + C3_MK_BLOCK < n ? r0 + C3_MK_BLOCK : n, rows = r1 - r0;
      c3_sqdist(Xc + r0 * d, xn + r0, rows, Xc, xn, n, d, db);
      for (int q = 0; q < P; q++) {
        double g = res->gammas[q];
#pragma omp parallel for schedule(static) if (((r1 - r0) * n) > C3_PAR_MIN)
        for (int64_t i = r0; i < r1; i++)
          for (int64_t j = 0; j < n; j++)
            kb[(i - r0) * n + j] =
                j == i ? 1.0 : exp(-0.5 * g * (double)db[(i - r0) * n + j]);
        c3_dgemm_rows(rows, m, n, kb, n, H, m, kh, m);
        double acc = 0;
        for (int64_t i = r0; i < r1; i++)
          for (int64_t c = 0; c < m; c++) acc += H[i * m + c] * kh[(i - r0) * m + c];
        t[q] += acc;
      }
    }
    for (int q = 0; q < P; q++) a[q] = tr[q] - t[q];
    int degenerate;
    double wn[CSAL3D_MAX_KERNELS];
    double obj = c3_mkkm_weights(a, tr, P, wn, &degenerate);
    for (int q = 0; q < P; q++) w[q] = wn[q];
    res->iterations = it + 1;
    res->objective = obj;
    if (res->history && it < res->history_cap) res->history[it] = obj;
    c3_log(ctx, CSAL3D_LOG_DEBUG, "mkkm (exact, n %lld): iteration %d objective %.9g",
           (long long)n, it + 1, obj);
    if (degenerate || P == 1) break;
    if (it > 0 && fabs(prev_obj - obj) <= p->tol * fabs(prev_obj)) break;
    prev_obj = obj;
    s = c3_progress(ctx, "select", (uint64_t)(it + 1), (uint64_t)p->max_iter);
    if (s != CSAL3D_OK) goto done;
  }
  for (int q = 0; q < P; q++) res->weights[q] = w[q];
done:
  c3_free(K), c3_free(vecs), c3_free(vals), c3_free(kb), c3_free(kh);
  c3_free(xn), c3_free(db);
  return s;
}

/* ---- Nystrom ---- */

typedef struct c3_nys {
  int P;
  int64_t L, R, d;
  int64_t off[CSAL3D_MAX_KERNELS + 1];
  double *T;       /* per kernel L x r_p row-major, at T + L * off[p] */
  float *land;     /* L x d */
  float *ln;       /* L norms */
  const double *g; /* gammas */
} c3_nys;

/* F rows for X rows [r0, r1): fb (rows x R, row-major). db: rows x L floats,
 * cb: rows x L doubles. One parallel region: each chunk of C3_GEMM_ROWS rows goes
 * through its distances, kernels and maps on one thread (single-threaded BLAS). */
static void c3_nys_rows(const c3_nys *y, const float *Xc, const float *xn,
                        int64_t r0, int64_t r1, float *db, double *cb, double *fb) {
  const int64_t rows = r1 - r0, L = y->L, R = y->R, d = y->d;
  const int64_t chunks = (rows + C3_GEMM_ROWS - 1) / C3_GEMM_ROWS;
#pragma omp parallel for schedule(dynamic, 1) if (rows * L * (d + R) > C3_PAR_MIN)
  for (int64_t ch = 0; ch < chunks; ch++) {
    int64_t a0 = ch * C3_GEMM_ROWS;
    int64_t a1 = a0 + C3_GEMM_ROWS < rows ? a0 + C3_GEMM_ROWS : rows, cr = a1 - a0;
    float *dc = db + a0 * L;
    double *cc = cb + a0 * L;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)cr, (int)L, (int)d, -2.0f,
                Xc + (r0 + a0) * d, (int)d, y->land, (int)d, 0.0f, dc, (int)L);
    for (int64_t i = 0; i < cr; i++)
      for (int64_t j = 0; j < L; j++) {
        float v = dc[i * L + j] + xn[r0 + a0 + i] + y->ln[j];
        dc[i * L + j] = v > 0.0f ? v : 0.0f;
      }
    for (int q = 0; q < y->P; q++) {
      int64_t r = y->off[q + 1] - y->off[q];
      if (r == 0) continue;
      double g = y->g[q];
      for (int64_t i = 0; i < cr * L; i++) cc[i] = exp(-0.5 * g * (double)dc[i]);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)cr, (int)r, (int)L, 1.0,
                  cc, (int)L, y->T + L * y->off[q], (int)r, 0.0, fb + a0 * R + y->off[q],
                  (int)R);
    }
  }
}

static csal3d_status c3_mkkm_nystrom(const csal3d_context *ctx, const float *Xc,
                                     int64_t n, int64_t d, int64_t m,
                                     const c3_mkkm_params *p, double *H,
                                     c3_mkkm_result *res) {
  const int P = p->n_kernels;
  int64_t L = p->landmarks > m ? p->landmarks : m;
  if (L > n) L = n;
  if ((int64_t)P * L > 16384)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "Nystrom with %lld landmarks x %d kernels is too large (budget %lld, "
                    "n %lld); use fewer landmarks, a smaller budget or raise exact_max_n",
                    (long long)L, P, (long long)m, (long long)n);
  c3_nys y;
  memset(&y, 0, sizeof y);
  y.P = P, y.L = L, y.d = d, y.g = res->gammas;
  res->nystrom = 1;
  res->landmarks = L;
  int64_t *lidx = NULL;
  float *xn = NULL, *db = NULL;
  double *Wm = NULL, *ev = NULL, *cb = NULL, *fb = NULL, *G = NULL;
  double *A = NULL, *V = NULL, *lam = NULL, *B1 = NULL, *Hm = NULL;
  int64_t blk = C3_MK_BLOCK * 4;
  csal3d_status s = c3_alloc_array((size_t)L, sizeof(int64_t), "landmarks", (void **)&lidx);
#define C3_ALLOC(ptr, count, size, what)                                       \
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(count), (size_t)(size), what, (void **)&(ptr))
  C3_ALLOC(y.land, L, (size_t)d * sizeof(float), "landmark features");
  C3_ALLOC(y.ln, L, sizeof(float), "landmark norms");
  C3_ALLOC(y.T, (size_t)P * L, (size_t)L * sizeof(double), "Nystrom maps");
  C3_ALLOC(xn, n, sizeof(float), "norms");
  C3_ALLOC(db, blk, (size_t)L * sizeof(float), "distance block");
  C3_ALLOC(Wm, L, (size_t)L * sizeof(double), "landmark kernel");
  C3_ALLOC(ev, L, sizeof(double), "landmark eigenvalues");
  C3_ALLOC(cb, blk, (size_t)L * sizeof(double), "kernel block");
#undef C3_ALLOC
  if (s != CSAL3D_OK) goto done;
  {
    c3_rng r;
    c3_rng_init(&r, p->seed, C3_RNG_SAMPLING, C3_STREAM_NYSTROM, 0, 0);
    s = c3_rng_sample(&r, n, L, lidx);
    if (s != CSAL3D_OK) goto done;
    /* ascending order: the sample is a set */
    for (int64_t i = 1; i < L; i++) {
      int64_t v = lidx[i], j = i;
      while (j > 0 && lidx[j - 1] > v) lidx[j] = lidx[j - 1], j--;
      lidx[j] = v;
    }
  }
  c3_row_sqnorms(Xc, n, d, xn);
  for (int64_t i = 0; i < L; i++) {
    memcpy(y.land + i * d, Xc + lidx[i] * d, (size_t)d * sizeof(float));
    y.ln[i] = xn[lidx[i]];
  }
  /* per kernel: W_p = U Lambda U^T, T_p = U_r Lambda_r^{-1/2} */
  {
    float *dl = NULL;
    s = c3_alloc_array((size_t)L, (size_t)L * sizeof(float), "landmark distances",
                       (void **)&dl);
    if (s != CSAL3D_OK) goto done;
    c3_sqdist(y.land, y.ln, L, y.land, y.ln, L, d, dl);
    int64_t R = 0;
    for (int q = 0; q < P; q++) {
      double g = res->gammas[q];
      for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < L; j++) {
          double dd = i == j ? 0.0 : (double)(i < j ? dl[i * L + j] : dl[j * L + i]);
          Wm[i * L + j] = exp(-0.5 * g * dd);
        }
      int prev = c3_blas_threads_enter(1);
      lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'L', (lapack_int)L, Wm,
                                      (lapack_int)L, ev);
      c3_blas_threads_leave(prev);
      if (info != 0) {
        c3_free(dl);
        s = c3_error(CSAL3D_ERR_NUMERICAL,
                     "Nystrom: eigensolver (LAPACK dsyev) failed on the %lld x %lld "
                     "landmark kernel %d: info %d", (long long)L, (long long)L, q,
                     (int)info);
        goto done;
      }
      /* eigenvalues ascending in ev, eigenvector c in column c (Wm[c * L + i]) */
      double top = ev[L - 1];
      int64_t r = 0;
      for (int64_t c = L - 1; c >= 0; c--)
        if (ev[c] > C3_NYS_REL * top && ev[c] > 0) r++;
      y.off[q] = R;
      /* the r leading eigenvectors, scaled, at the kernel's place in T */
      double *T = y.T + L * R;
      for (int64_t i = 0; i < L; i++)
        for (int64_t t = 0; t < r; t++) {
          int64_t c = L - 1 - t;
          T[i * r + t] = Wm[c * L + i] / sqrt(ev[c]);
        }
      R += r;
    }
    y.off[P] = R;
    y.R = R;
    c3_free(dl);
  }
  const int64_t R = y.R;
  const int64_t mm = m < R ? m : R;
  {
#define C3_ALLOC(ptr, count, size, what)                                       \
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(count), (size_t)(size), what, (void **)&(ptr))
    C3_ALLOC(fb, blk, (size_t)R * sizeof(double), "Nystrom features");
    C3_ALLOC(G, R, (size_t)R * sizeof(double), "Nystrom Gram matrix");
    C3_ALLOC(A, R, (size_t)R * sizeof(double), "weighted Gram matrix");
    C3_ALLOC(V, R, (size_t)(mm > 0 ? mm : 1) * sizeof(double), "eigenvectors");
    C3_ALLOC(lam, (mm > 0 ? mm : 1), sizeof(double), "eigenvalues");
    C3_ALLOC(B1, (mm > 0 ? mm : 1), (size_t)R * sizeof(double), "projection");
    C3_ALLOC(Hm, R, (size_t)m * sizeof(double), "embedding map");
#undef C3_ALLOC
    if (s != CSAL3D_OK) goto done;
  }
  c3_log(ctx, CSAL3D_LOG_DEBUG, "mkkm (Nystrom): landmark maps ready, rank %lld",
         (long long)y.R);
  /* G = sum over row blocks of F_b^T F_b (upper triangle, row-major), in block order */
  memset(G, 0, (size_t)(R * R) * sizeof(double));
  for (int64_t r0 = 0; r0 < n; r0 += blk) {
    int64_t r1 = r0 + blk < n ? r0 + blk : n;
    c3_nys_rows(&y, Xc, xn, r0, r1, db, cb, fb);
    c3_dgram_acc(r1 - r0, R, fb, G);
    s = c3_progress(ctx, "select", (uint64_t)r1, (uint64_t)n);
    if (s != CSAL3D_OK) goto done;
  }
  for (int64_t i = 0; i < R; i++)
    for (int64_t j = 0; j < i; j++) G[i * R + j] = G[j * R + i];
  double w[CSAL3D_MAX_KERNELS], a[CSAL3D_MAX_KERNELS],
      tr[CSAL3D_MAX_KERNELS];
  double *wr = cb; /* per-column weights, R <= blk * L */
  for (int q = 0; q < P; q++) {
    w[q] = 1.0 / P;
    tr[q] = 0;
    for (int64_t i = y.off[q]; i < y.off[q + 1]; i++) tr[q] += G[i * R + i];
  }
  double prev_obj = 0;
  for (int it = 0; it < (p->max_iter >= 1 ? p->max_iter : 1); it++) {
    for (int q = 0; q < P; q++) {
      for (int64_t i = y.off[q]; i < y.off[q + 1]; i++) wr[i] = w[q];
    }
    for (int64_t i = 0; i < R; i++)
      for (int64_t j = 0; j < R; j++) A[i * R + j] = wr[i] * wr[j] * G[i * R + j];
    if (mm > 0) {
      s = c3_top_eigen(A, R, mm, lam, V);
      if (s != CSAL3D_OK) goto done;
    }
    /* B1 = S V^T D_w G (mm x R), S = Lambda^{-1/2} (0 for vanishing eigenvalues) */
    for (int64_t c = 0; c < mm; c++) {
      double sc = lam[c] > C3_EIG_REL * lam[0] && lam[c] > 0 ? 1.0 / sqrt(lam[c]) : 0;
      for (int64_t i = 0; i < R; i++) A[c * R + i] = sc * wr[i] * V[c * R + i];
    }
    if (mm > 0) c3_dgemm_rows(mm, R, R, A, R, G, R, B1, R);
    for (int q = 0; q < P; q++) {
      double t = 0;
      for (int64_t c = 0; c < mm; c++)
        for (int64_t j = y.off[q]; j < y.off[q + 1]; j++) t += B1[c * R + j] * B1[c * R + j];
      a[q] = tr[q] - t;
    }
    /* the map from F rows to H rows: D_w V S (R x m), kept for the final pass */
    memset(Hm, 0, (size_t)(R * m) * sizeof(double));
    for (int64_t c = 0; c < mm; c++) {
      double sc = lam[c] > C3_EIG_REL * lam[0] && lam[c] > 0 ? 1.0 / sqrt(lam[c]) : 0;
      for (int64_t i = 0; i < R; i++) Hm[i * m + c] = wr[i] * V[c * R + i] * sc;
    }
    int degenerate;
    double wn[CSAL3D_MAX_KERNELS];
    double obj = c3_mkkm_weights(a, tr, P, wn, &degenerate);
    for (int q = 0; q < P; q++) w[q] = wn[q];
    res->iterations = it + 1;
    res->objective = obj;
    if (res->history && it < res->history_cap) res->history[it] = obj;
    c3_log(ctx, CSAL3D_LOG_DEBUG,
           "mkkm (Nystrom, n %lld, %lld landmarks, rank %lld): iteration %d "
           "objective %.9g", (long long)n, (long long)L, (long long)R, it + 1, obj);
    if (degenerate || P == 1) break;
    if (it > 0 && fabs(prev_obj - obj) <= p->tol * fabs(prev_obj)) break;
    prev_obj = obj;
  }
  for (int q = 0; q < P; q++) res->weights[q] = w[q];
  /* H = F (D_w V S), block by block */
  for (int64_t r0 = 0; r0 < n; r0 += blk) {
    int64_t r1 = r0 + blk < n ? r0 + blk : n;
    c3_nys_rows(&y, Xc, xn, r0, r1, db, cb, fb);
    c3_dgemm_rows(r1 - r0, m, R, fb, R, Hm, m, H + r0 * m, m);
  }
done:
  c3_free(lidx), c3_free(y.land), c3_free(y.ln), c3_free(y.T), c3_free(xn);
  c3_free(db), c3_free(Wm), c3_free(ev), c3_free(cb), c3_free(fb);
  c3_free(G), c3_free(A), c3_free(V), c3_free(lam), c3_free(B1), c3_free(Hm);
  return s;
}

csal3d_status c3_mkkm_embed(const csal3d_context *ctx, const float *X, int64_t n,
                            int64_t d, int64_t m, const c3_mkkm_params *p,
                            double *H, c3_mkkm_result *res) {
  double *hist = res->history;
  int cap = res->history_cap;
  memset(res, 0, sizeof *res);
  res->history = hist, res->history_cap = cap;
  res->nystrom = 0;
  if (p->n_kernels < 1 || p->n_kernels > CSAL3D_MAX_KERNELS || m < 1 || m > n)
    return c3_error(CSAL3D_ERR_INTERNAL, "mkkm: %d kernels, m = %lld, n = %lld",
                    p->n_kernels, (long long)m, (long long)n);
  float *Xc;
  C3_TRY(c3_center_copy(X, n, d, &Xc));
  csal3d_status s = c3_mkkm_gammas(Xc, n, d, p, res);
  c3_log(ctx, CSAL3D_LOG_DEBUG, "mkkm: median squared distance %.6g", res->median);
  if (s == CSAL3D_OK) {
    if (n <= p->exact_max_n)
      s = c3_mkkm_exact(ctx, Xc, n, d, m, p, H, res);
    else
      s = c3_mkkm_nystrom(ctx, Xc, n, d, m, p, H, res);
  }
  c3_free(Xc);
  return s;
}

csal3d_status c3_mkkm_cluster(const csal3d_context *ctx, const float *X,
                              int64_t n, int64_t d, int64_t m,
                              const c3_mkkm_params *p, const c3_kmeans_params *kp,
                              int64_t *labels, c3_mkkm_result *res,
                              c3_kmeans_result *kres) {
  double *H = NULL;
  float *Hf = NULL;
  csal3d_status s = c3_alloc_array((size_t)n, (size_t)m * sizeof(double),
                                   "spectral embedding", (void **)&H);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)n, (size_t)m * sizeof(float), "spectral embedding",
                       (void **)&Hf);
  if (s == CSAL3D_OK) s = c3_mkkm_embed(ctx, X, n, d, m, p, H, res);
  if (s == CSAL3D_OK) {
#pragma omp parallel for schedule(static) if ((n * m) > C3_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
      double nr = 0;
      for (int64_t c = 0; c < m; c++) nr += H[i * m + c] * H[i * m + c];
      nr = nr > 0 ? 1.0 / sqrt(nr) : 0;
      for (int64_t c = 0; c < m; c++) Hf[i * m + c] = (float)(H[i * m + c] * nr);
    }
    c3_log(ctx, CSAL3D_LOG_DEBUG, "mkkm: embedding done; k-means on %lld x %lld",
           (long long)n, (long long)m);
    c3_kmeans_params k = *kp;
    k.k = m;
    s = c3_kmeans(ctx, Hf, n, m, &k, labels, NULL, kres);
    if (s == CSAL3D_OK)
      c3_log(ctx, CSAL3D_LOG_DEBUG, "mkkm: k-means inertia %.6g after %d iterations",
             kres->inertia, kres->iterations);
  }
  c3_free(H);
  c3_free(Hf);
  return s;
}

/* ---- the reference code's kernel k-means ---- */

csal3d_status c3_reference_cluster(const csal3d_context *ctx, const float *X,
                                   const float *scores, int64_t n, int64_t d,
                                   int64_t m, const c3_mkkm_params *p, double eps,
                                   int64_t *labels, c3_mkkm_result *res) {
  double *hist = res->history;
  int cap = res->history_cap;
  memset(res, 0, sizeof *res);
  res->history = hist, res->history_cap = cap;
  if (n > p->exact_max_n)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "the reference kernel needs the dense n x n kernel: n = %lld is above "
                    "exact_max_n = %lld (raise it, about 8 n^2 bytes, or use the MKKM "
                    "kernel)", (long long)n, (long long)p->exact_max_n);
  const int P = p->n_kernels;
  float *Xc = NULL, *xn = NULL, *db = NULL;
  double *K = NULL, *S = NULL, *u = NULL, *within = NULL;
  int64_t *counts = NULL;
  csal3d_status s = c3_center_copy(X, n, d, &Xc);
#define C3_ALLOC(ptr, count, size, what)                                       \
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(count), (size_t)(size), what, (void **)&(ptr))
  C3_ALLOC(K, n, (size_t)n * sizeof(double), "kernel matrix");
  C3_ALLOC(S, n, (size_t)m * sizeof(double), "kernel sums");
  C3_ALLOC(u, n, sizeof(double), "scaled scores");
  C3_ALLOC(within, m, sizeof(double), "cluster sums");
  C3_ALLOC(counts, m, sizeof(int64_t), "cluster sizes");
  C3_ALLOC(xn, n, sizeof(float), "norms");
  C3_ALLOC(db, C3_MK_BLOCK, (size_t)n * sizeof(float), "distance block");
#undef C3_ALLOC
  if (s != CSAL3D_OK) goto done;
  s = c3_mkkm_gammas(Xc, n, d, p, res);
  if (s != CSAL3D_OK) goto done;
  {
    double lo = scores[0], hi = scores[0];
    for (int64_t i = 1; i < n; i++) {
      if (scores[i] < lo) lo = scores[i];
      if (scores[i] > hi) hi = scores[i];
    }
    for (int64_t i = 0; i < n; i++) u[i] = hi > lo ? (scores[i] - lo) / (hi - lo) : 0;
  }
  c3_row_sqnorms(Xc, n, d, xn);
  for (int64_t r0 = 0; r0 < n; r0 += C3_MK_BLOCK) {
    int64_t r1 = r0 + C3_MK_BLOCK < n ? r0 + C3_MK_BLOCK : n;
    c3_sqdist(Xc + r0 * d, xn + r0, r1 - r0, Xc, xn, n, d, db);
#pragma omp parallel for schedule(static) if (((r1 - r0) * n) > C3_PAR_MIN)
    for (int64_t i = r0; i < r1; i++)
      for (int64_t j = 0; j < n; j++) {
        double dd = i == j ? 0 : (double)db[(i - r0) * n + j], v = 0;
        for (int q = 0; q < P; q++) v += exp(-0.5 * res->gammas[q] * dd);
        K[i * n + j] = v / (u[i] + u[j] + eps);
      }
  }
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < i; j++) K[j * n + i] = K[i * n + j];
  {
    c3_rng r;
    c3_rng_init(&r, p->seed, C3_RNG_SAMPLING, C3_STREAM_REFERENCE, 0, 0);
    for (int64_t i = 0; i < n; i++) labels[i] = (int64_t)c3_rng_below(&r, (uint64_t)m);
  }
  for (int it = 0; it < (p->max_iter >= 1 ? p->max_iter : 1); it++) {
    memset(counts, 0, (size_t)m * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) counts[labels[i]]++;
#pragma omp parallel for schedule(static) if ((n * n) > C3_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
      double *si = S + i * m;
      memset(si, 0, (size_t)m * sizeof(double));
      for (int64_t j = 0; j < n; j++) si[labels[j]] += K[i * n + j];
    }
    memset(within, 0, (size_t)m * sizeof(double));
    for (int64_t j = 0; j < n; j++) within[labels[j]] += S[j * m + labels[j]];
    int64_t changed = 0;
    double obj = 0;
    for (int64_t i = 0; i < n; i++) {
      int64_t best = -1;
      double bv = INFINITY;
      for (int64_t c = 0; c < m; c++) {
        if (!counts[c]) continue;
        double cc = (double)counts[c];
        double v = K[i * n + i] - 2 * S[i * m + c] / cc + within[c] / (cc * cc);
        if (v < bv) bv = v, best = c;
      }
      obj += bv;
      if (best != labels[i]) changed++;
      S[i * m] = (double)best; /* new label, applied below (S row i no longer needed) */
    }
    for (int64_t i = 0; i < n; i++) labels[i] = (int64_t)S[i * m];
    res->iterations = it + 1;
    res->objective = obj;
    if (res->history && it < res->history_cap) res->history[it] = obj;
    if (!changed) break;
    s = c3_progress(ctx, "select", (uint64_t)(it + 1), (uint64_t)p->max_iter);
    if (s != CSAL3D_OK) goto done;
  }
  for (int q = 0; q < P; q++) res->weights[q] = 1.0 / P;
done:
  c3_free(Xc), c3_free(K), c3_free(S), c3_free(u), c3_free(within);
  c3_free(counts), c3_free(xn), c3_free(db);
  return s;
}
