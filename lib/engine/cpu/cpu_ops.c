/* The CPU engine's plain C + OpenMP ops: instance norm + LeakyReLU, window and
 * patch-merging permutes, transposes, reductions, elementwise ops, losses, AdamW.
 *
 * Determinism: every output element has one writer, and every sum runs over fixed
 * blocks (double partials combined in order), so results do not depend on the
 * number of threads. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "engine/cpu/cpu.h"

#define BLOCK 4096 /* elements per partial sum */

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- deterministic scalar sums ------------------------------------------------------ */

/* kind 0: sum x; 1: sum x*y; 2: sum (x-y)^2 * (w or 1); 3: sum |x-y|; 4: sum w */
static csal3d_status block_sum(c3_engine *e, int kind, int64_t n, const float *x,
                               const float *y, const float *w, double *out) {
  int64_t nb = ceil_div(n, BLOCK);
  if (nb == 0) {
    *out = 0.0;
    return CSAL3D_OK;
  }
  double *part;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A4, (size_t)nb * sizeof(double), (void **)&part));
#pragma omp parallel for schedule(static) if (nb > 4)
  for (int64_t b = 0; b < nb; b++) {
    int64_t lo = b * BLOCK, hi = lo + BLOCK < n ? lo + BLOCK : n;
    double s = 0.0;
    switch (kind) {
    case 0:
#pragma omp simd reduction(+ : s)
      for (int64_t i = lo; i < hi; i++) s += x[i];
      break;
    case 1:
#pragma omp simd reduction(+ : s)
      for (int64_t i = lo; i < hi; i++) s += (double)x[i] * y[i];
      break;
    case 2:
      if (w) {
#pragma omp simd reduction(+ : s)
        for (int64_t i = lo; i < hi; i++) {
          double d = (double)x[i] - y[i];
          s += w[i] * d * d;
        }
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t i = lo; i < hi; i++) {
          double d = (double)x[i] - y[i];
          s += d * d;
        }
      }
      break;
    case 3:
#pragma omp simd reduction(+ : s)
      for (int64_t i = lo; i < hi; i++) s += fabs((double)x[i] - y[i]);
      break;
    default:
#pragma omp simd reduction(+ : s)
      for (int64_t i = lo; i < hi; i++) s += w[i];
      break;
    }
    part[b] = s;
  }
  double s = 0.0;
  for (int64_t b = 0; b < nb; b++) s += part[b];
  *out = s;
  return CSAL3D_OK;
}

static csal3d_status cpu_sum(c3_engine *e, int64_t n, const float *x, double *out) {
  C3_CHECK_ARG(out && n >= 0 && (n == 0 || x), "sum: bad arguments");
  return block_sum(e, 0, n, x, NULL, NULL, out);
}

static csal3d_status cpu_dot(c3_engine *e, int64_t n, const float *x, const float *y,
                             double *out) {
  C3_CHECK_ARG(out && n >= 0 && (n == 0 || (x && y)), "dot: bad arguments");
  return block_sum(e, 1, n, x, y, NULL, out);
}

/* ---- elementwise ---------------------------------------------------------------------- */

#define PAR_IF(n) if ((n) > 32768)

static csal3d_status cpu_add(c3_engine *e, int64_t n, const float *x, const float *y,
                             float *z) {
  C3_CHECK_ARG(n >= 0 && (n == 0 || (x && y && z)), "add: bad arguments");
#pragma omp parallel for simd schedule(static) PAR_IF(n)
  for (int64_t i = 0; i < n; i++) z[i] = x[i] + y[i];
  return CSAL3D_OK;
}

static csal3d_status cpu_mul(c3_engine *e, int64_t n, const float *x, const float *y,
                             float *z) {
  C3_CHECK_ARG(n >= 0 && (n == 0 || (x && y && z)), "mul: bad arguments");
#pragma omp parallel for simd schedule(static) PAR_IF(n)
  for (int64_t i = 0; i < n; i++) z[i] = x[i] * y[i];
  return CSAL3D_OK;
}

static csal3d_status cpu_axpby(c3_engine *e, int64_t n, float a, const float *x, float b,
                               float *y) {
  C3_CHECK_ARG(n >= 0 && (n == 0 || (x && y)), "axpby: bad arguments");
  if (b == 0.0f) {
#pragma omp parallel for simd schedule(static) PAR_IF(n)
    for (int64_t i = 0; i < n; i++) y[i] = a * x[i];
  } else if (b == 1.0f) {
#pragma omp parallel for simd schedule(static) PAR_IF(n)
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
  } else {
#pragma omp parallel for simd schedule(static) PAR_IF(n)
    for (int64_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_scale(c3_engine *e, int64_t n, float a, float *x) {
  C3_CHECK_ARG(n >= 0 && (n == 0 || x), "scale: bad arguments");
#pragma omp parallel for simd schedule(static) PAR_IF(n)
  for (int64_t i = 0; i < n; i++) x[i] *= a;
  return CSAL3D_OK;
}

/* ---- reductions over the middle axis -------------------------------------------------- */

#define MID_BLOCK 256

static csal3d_status cpu_reduce_sum(c3_engine *e, int64_t outer, int64_t mid, int64_t inner,
                                    float alpha, const float *x, float *y, int accum) {
  C3_CHECK_ARG(outer >= 1 && mid >= 1 && inner >= 1 && x && y, "reduce_sum: bad arguments");
  int64_t nc = ceil_div(mid, MID_BLOCK);
  double *part;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A4, (size_t)(outer * nc * inner) * sizeof(double),
                        (void **)&part));
#pragma omp parallel for collapse(2) schedule(static) if (outer * nc * inner > 4096)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t c = 0; c < nc; c++) {
      double *p = part + (o * nc + c) * inner;
      for (int64_t i = 0; i < inner; i++) p[i] = 0.0;
      int64_t lo = c * MID_BLOCK, hi = lo + MID_BLOCK < mid ? lo + MID_BLOCK : mid;
      for (int64_t m = lo; m < hi; m++) {
        const float *r = x + (o * mid + m) * inner;
#pragma omp simd
        for (int64_t i = 0; i < inner; i++) p[i] += r[i];
      }
    }
#pragma omp parallel for schedule(static) if (outer * inner > 4096)
  for (int64_t oi = 0; oi < outer * inner; oi++) {
    int64_t o = oi / inner, i = oi % inner;
    double s = 0.0;
    for (int64_t c = 0; c < nc; c++) s += part[(o * nc + c) * inner + i];
    float v = (float)(alpha * s);
    y[oi] = accum ? y[oi] + v : v;
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_broadcast(c3_engine *e, int64_t outer, int64_t mid, int64_t inner,
                                   float alpha, const float *x, float *y, int accum) {
  C3_CHECK_ARG(outer >= 1 && mid >= 1 && inner >= 1 && x && y, "broadcast: bad arguments");
#pragma omp parallel for collapse(2) schedule(static) if (outer * mid * inner > 32768)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t m = 0; m < mid; m++) {
      float *r = y + (o * mid + m) * inner;
      const float *s = x + o * inner;
      if (accum) {
#pragma omp simd
        for (int64_t i = 0; i < inner; i++) r[i] += alpha * s[i];
      } else {
#pragma omp simd
        for (int64_t i = 0; i < inner; i++) r[i] = alpha * s[i];
      }
    }
  return CSAL3D_OK;
}

/* ---- instance norm + LeakyReLU ---------------------------------------------------------- */

static csal3d_status inorm_check(const c3_inorm_desc *d, const char *op) {
  C3_CHECK_ARG(d && d->n >= 1 && d->c >= 1 && d->d >= 1 && d->h >= 1 && d->w >= 1,
               "%s: bad sizes", op);
  C3_CHECK_ARG(d->layout == C3_LAYOUT_NCDHW || d->layout == C3_LAYOUT_NDHWC, "%s: bad layout",
               op);
  C3_CHECK_ARG(d->eps > 0.0f, "%s: eps must be > 0", op);
  return CSAL3D_OK;
}

/* Per (n, c) sums of f0(x, ...) and f1(...) over the spatial axes, in double, fixed
 * blocks. mode 0: sums of x and -, after which mean is known; mode 1: sum (x-mean)^2;
 * mode 2: sums of dz and dz*z for the backward. out0/out1 [n*c]. */
static csal3d_status inorm_sums(c3_engine *e, const c3_inorm_desc *d, int mode,
                                const float *x, const float *dy, const float *mean,
                                const float *var, double *out0, double *out1) {
  int64_t S = d->d * d->h * d->w, C = d->c, N = d->n;
  float slope = d->slope;
  if (d->layout == C3_LAYOUT_NCDHW) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; nc++) {
      const float *xr = x + nc * S;
      double s0 = 0.0, s1 = 0.0;
      if (mode == 0) {
#pragma omp simd reduction(+ : s0)
        for (int64_t s = 0; s < S; s++) s0 += xr[s];
      } else if (mode == 1) {
        double m = mean[nc];
#pragma omp simd reduction(+ : s0)
        for (int64_t s = 0; s < S; s++) {
          double t = xr[s] - m;
          s0 += t * t;
        }
      } else {
        const float *g = dy + nc * S;
        float m = mean[nc], r = 1.0f / sqrtf(var[nc] + d->eps);
#pragma omp simd reduction(+ : s0, s1)
        for (int64_t s = 0; s < S; s++) {
          float z = (xr[s] - m) * r;
          float dz = z > 0.0f ? g[s] : slope * g[s];
          s0 += dz;
          s1 += (double)dz * z;
        }
      }
      out0[nc] = s0;
      if (out1) out1[nc] = s1;
    }
    return CSAL3D_OK;
  }
  /* NDHWC: blocks of spatial rows, partial per block and channel */
  int64_t nb = ceil_div(S, MID_BLOCK);
  double *part;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A4, (size_t)(N * nb * C * 2) * sizeof(double),
                        (void **)&part));
  float *rs = NULL;
  if (mode == 2) {
    C3_TRY(c3_cpu_scratch(e, C3_SLOT_A3, (size_t)(N * C) * sizeof(float), (void **)&rs));
    for (int64_t i = 0; i < N * C; i++) rs[i] = 1.0f / sqrtf(var[i] + d->eps);
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < N; n++)
    for (int64_t b = 0; b < nb; b++) {
      double *p0 = part + ((n * nb + b) * 2) * C, *p1 = p0 + C;
      for (int64_t c = 0; c < C; c++) p0[c] = p1[c] = 0.0;
      int64_t lo = b * MID_BLOCK, hi = lo + MID_BLOCK < S ? lo + MID_BLOCK : S;
      const float *mn = mean ? mean + n * C : NULL;
      for (int64_t s = lo; s < hi; s++) {
        const float *xr = x + (n * S + s) * C;
        if (mode == 0) {
#pragma omp simd
          for (int64_t c = 0; c < C; c++) p0[c] += xr[c];
        } else if (mode == 1) {
#pragma omp simd
          for (int64_t c = 0; c < C; c++) {
            double t = xr[c] - mn[c];
            p0[c] += t * t;
          }
        } else {
          const float *g = dy + (n * S + s) * C;
          const float *r = rs + n * C;
#pragma omp simd
          for (int64_t c = 0; c < C; c++) {
            float z = (xr[c] - mn[c]) * r[c];
            float dz = z > 0.0f ? g[c] : slope * g[c];
            p0[c] += dz;
            p1[c] += (double)dz * z;
          }
        }
      }
    }
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      double s0 = 0.0, s1 = 0.0;
      for (int64_t b = 0; b < nb; b++) {
        s0 += part[((n * nb + b) * 2) * C + c];
        s1 += part[((n * nb + b) * 2 + 1) * C + c];
      }
      out0[n * C + c] = s0;
      if (out1) out1[n * C + c] = s1;
    }
  return CSAL3D_OK;
}

static csal3d_status cpu_inorm_lrelu_fwd(c3_engine *e, const c3_inorm_desc *d,
                                         const float *x, float *y, float *mean, float *var) {
  C3_TRY(inorm_check(d, "inorm_lrelu_fwd"));
  C3_CHECK_ARG(x && y, "inorm_lrelu_fwd: NULL tensor");
  C3_CHECK_ARG((mean == NULL) == (var == NULL), "inorm_lrelu_fwd: mean and var must both be "
                                                "given or both be NULL");
  int64_t S = d->d * d->h * d->w, C = d->c, N = d->n, NC = N * C;
  /* stats: [NC] floats mean, var, then doubles for the sums */
  char *buf;
  size_t fb = ((size_t)NC * sizeof(float) + 63) & ~(size_t)63;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A1, 2 * fb + (size_t)NC * sizeof(double), (void **)&buf));
  float *mu = mean ? mean : (float *)buf, *va = var ? var : (float *)(buf + fb);
  double *sum = (double *)(buf + 2 * fb);
  C3_TRY(inorm_sums(e, d, 0, x, NULL, NULL, NULL, sum, NULL));
  for (int64_t i = 0; i < NC; i++) mu[i] = (float)(sum[i] / (double)S);
  C3_TRY(inorm_sums(e, d, 1, x, NULL, mu, NULL, sum, NULL));
  for (int64_t i = 0; i < NC; i++) va[i] = (float)(sum[i] / (double)S);
  float slope = d->slope, eps = d->eps;
  if (d->layout == C3_LAYOUT_NCDHW) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
      float m = mu[nc], r = 1.0f / sqrtf(va[nc] + eps);
      const float *xr = x + nc * S;
      float *yr = y + nc * S;
#pragma omp simd
      for (int64_t s = 0; s < S; s++) {
        float z = (xr[s] - m) * r;
        yr[s] = z > 0.0f ? z : slope * z;
      }
    }
  } else {
    float *rs;
    C3_TRY(c3_cpu_scratch(e, C3_SLOT_A3, (size_t)NC * sizeof(float), (void **)&rs));
    for (int64_t i = 0; i < NC; i++) rs[i] = 1.0f / sqrtf(va[i] + eps);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; n++)
      for (int64_t s = 0; s < S; s++) {
        const float *xr = x + (n * S + s) * C, *m = mu + n * C, *r = rs + n * C;
        float *yr = y + (n * S + s) * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
          float z = (xr[c] - m[c]) * r[c];
          yr[c] = z > 0.0f ? z : slope * z;
        }
      }
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_inorm_lrelu_bwd(c3_engine *e, const c3_inorm_desc *d,
                                         const float *x, const float *mean, const float *var,
                                         const float *dy, float *dx, int accum) {
  C3_TRY(inorm_check(d, "inorm_lrelu_bwd"));
  C3_CHECK_ARG(x && mean && var && dy && dx, "inorm_lrelu_bwd: NULL tensor");
  int64_t S = d->d * d->h * d->w, C = d->c, N = d->n, NC = N * C;
  char *buf;
  size_t db = ((size_t)NC * sizeof(double) + 63) & ~(size_t)63;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A1, 2 * db + 2 * (size_t)NC * sizeof(float),
                        (void **)&buf));
  double *s0 = (double *)buf, *s1 = (double *)(buf + db);
  float *a = (float *)(buf + 2 * db), *b = a + NC; /* mean(dz), mean(dz z) */
  C3_TRY(inorm_sums(e, d, 2, x, dy, mean, var, s0, s1));
  for (int64_t i = 0; i < NC; i++) {
    a[i] = (float)(s0[i] / (double)S);
    b[i] = (float)(s1[i] / (double)S);
  }
  float slope = d->slope, eps = d->eps;
  if (d->layout == C3_LAYOUT_NCDHW) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < NC; nc++) {
      float m = mean[nc], r = 1.0f / sqrtf(var[nc] + eps), ma = a[nc], mb = b[nc];
      const float *xr = x + nc * S, *g = dy + nc * S;
      float *o = dx + nc * S;
#pragma omp simd
      for (int64_t s = 0; s < S; s++) {
        float z = (xr[s] - m) * r;
        float dz = z > 0.0f ? g[s] : slope * g[s];
        float v = r * (dz - ma - z * mb);
        o[s] = accum ? o[s] + v : v;
      }
    }
  } else {
    float *rs;
    C3_TRY(c3_cpu_scratch(e, C3_SLOT_A3, (size_t)NC * sizeof(float), (void **)&rs));
    for (int64_t i = 0; i < NC; i++) rs[i] = 1.0f / sqrtf(var[i] + eps);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; n++)
      for (int64_t s = 0; s < S; s++) {
        const float *xr = x + (n * S + s) * C, *g = dy + (n * S + s) * C;
        const float *m = mean + n * C, *r = rs + n * C, *ma = a + n * C, *mb = b + n * C;
        float *o = dx + (n * S + s) * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
          float z = (xr[c] - m[c]) * r[c];
          float dz = z > 0.0f ? g[c] : slope * g[c];
          float v = r[c] * (dz - ma[c] - z * mb[c]);
          o[c] = accum ? o[c] + v : v;
        }
      }
  }
  return CSAL3D_OK;
}

/* ---- trilinear x2 upsampling (align_corners = false) ----------------------------------
 * Along each axis the x2 linear interpolation has fixed weights: output 2i reads
 * 0.25 x[max(i-1, 0)] + 0.75 x[i], output 2i+1 reads 0.75 x[i] + 0.25 x[min(i+1, n-1)]
 * (PyTorch's source index (o + 0.5)/2 - 0.5, clamped at 0). Its adjoint gathers, for
 * input i, the outputs 2i-1, 2i, 2i+1, 2i+2 (clamped into [0, 2n-1]) with weights 0.25,
 * 0.75, 0.75, 0.25. Tensors are seen as rows: (n, cc, d, h) rows of W x ci elements,
 * with (cc, ci) = (C, 1) for NCDHW and (1, C) for NDHWC. */

typedef struct up_geom {
  int64_t N, Cc, Ci, D, H, W;
} up_geom;

static up_geom up_geometry(const c3_upsample_desc *d) {
  up_geom g = {d->n, d->layout == C3_LAYOUT_NCDHW ? d->c : 1,
               d->layout == C3_LAYOUT_NCDHW ? 1 : d->c, d->d, d->h, d->w};
  return g;
}

/* the two input taps and weights of output o along an axis of n inputs */
static inline void up_taps(int64_t o, int64_t n, int64_t *i0, int64_t *i1, float *w0,
                           float *w1) {
  int64_t i = o >> 1;
  if (o & 1) {
    *i0 = i;
    *i1 = i + 1 < n ? i + 1 : n - 1;
    *w0 = 0.75f;
    *w1 = 0.25f;
  } else {
    *i0 = i > 0 ? i - 1 : 0;
    *i1 = i;
    *w0 = 0.25f;
    *w1 = 0.75f;
  }
}

static csal3d_status up_check(const c3_upsample_desc *d, const char *op) {
  C3_CHECK_ARG(d && d->n >= 1 && d->c >= 1 && d->d >= 1 && d->h >= 1 && d->w >= 1,
               "%s: bad sizes", op);
  C3_CHECK_ARG(d->layout == C3_LAYOUT_NCDHW || d->layout == C3_LAYOUT_NDHWC, "%s: bad layout",
               op);
  return CSAL3D_OK;
}

static csal3d_status cpu_upsample2x_fwd(c3_engine *e, const c3_upsample_desc *d,
                                        const float *x, float *y) {
  C3_TRY(up_check(d, "upsample2x_fwd"));
  C3_CHECK_ARG(x && y, "upsample2x_fwd: NULL tensor");
  up_geom g = up_geometry(d);
  const int64_t Ci = g.Ci, W = g.W, rowi = W * Ci, rowo = 2 * W * Ci;
  const int64_t plane_i = g.D * g.H * rowi, plane_o = 8 * plane_i;
  const int nthr = omp_get_max_threads();
  float *tmp;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A1, (size_t)(nthr * rowi) * sizeof(float), (void **)&tmp));
  const int64_t rows = g.N * g.Cc * 2 * g.D * 2 * g.H;
#pragma omp parallel for schedule(static) if (rows * rowo > 32768)
  for (int64_t r = 0; r < rows; r++) {
    int64_t b = r % (2 * g.H), a = (r / (2 * g.H)) % (2 * g.D), nc = r / (4 * g.D * g.H);
    int64_t d0, d1, h0, h1;
    float wd0, wd1, wh0, wh1;
    up_taps(a, g.D, &d0, &d1, &wd0, &wd1);
    up_taps(b, g.H, &h0, &h1, &wh0, &wh1);
    const float *xb = x + nc * plane_i;
    const float *x00 = xb + (d0 * g.H + h0) * rowi, *x01 = xb + (d0 * g.H + h1) * rowi;
    const float *x10 = xb + (d1 * g.H + h0) * rowi, *x11 = xb + (d1 * g.H + h1) * rowi;
    float *t = tmp + (int64_t)omp_get_thread_num() * rowi;
#pragma omp simd
    for (int64_t k = 0; k < rowi; k++)
      t[k] = wd0 * (wh0 * x00[k] + wh1 * x01[k]) + wd1 * (wh0 * x10[k] + wh1 * x11[k]);
    float *yr = y + nc * plane_o + (a * 2 * g.H + b) * rowo;
    for (int64_t w = 0; w < W; w++) {
      const float *tm = t + (w > 0 ? w - 1 : 0) * Ci, *tc = t + w * Ci;
      const float *tp = t + (w + 1 < W ? w + 1 : W - 1) * Ci;
      float *o0 = yr + 2 * w * Ci, *o1 = o0 + Ci;
#pragma omp simd
      for (int64_t c = 0; c < Ci; c++) {
        o0[c] = 0.25f * tm[c] + 0.75f * tc[c];
        o1[c] = 0.75f * tc[c] + 0.25f * tp[c];
      }
    }
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_upsample2x_bwd(c3_engine *e, const c3_upsample_desc *d,
                                        const float *dy, float *dx, int accum) {
  C3_TRY(up_check(d, "upsample2x_bwd"));
  C3_CHECK_ARG(dy && dx, "upsample2x_bwd: NULL tensor");
  up_geom g = up_geometry(d);
  const int64_t Ci = g.Ci, W = g.W, rowi = W * Ci, rowo = 2 * W * Ci;
  const int64_t plane_i = g.D * g.H * rowi, plane_o = 8 * plane_i;
  /* pass 1: adjoint along W and H: t[nc, a, j, :] for every output plane a */
  float *t;
  const int64_t trows = g.N * g.Cc * 2 * g.D * g.H;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A1, (size_t)(trows * rowi) * sizeof(float), (void **)&t));
#pragma omp parallel for schedule(static) if (trows * rowo > 32768)
  for (int64_t r = 0; r < trows; r++) {
    int64_t j = r % g.H, a = (r / g.H) % (2 * g.D), nc = r / (2 * g.D * g.H);
    float *tr = t + r * rowi;
    for (int64_t k = 0; k < rowi; k++) tr[k] = 0.0f;
    static const float wt[4] = {0.25f, 0.75f, 0.75f, 0.25f};
    for (int q = 0; q < 4; q++) {
      int64_t b = 2 * j - 1 + q;
      b = b < 0 ? 0 : b > 2 * g.H - 1 ? 2 * g.H - 1 : b;
      const float *gr = dy + nc * plane_o + (a * 2 * g.H + b) * rowo;
      const float wb = wt[q];
      for (int64_t w = 0; w < W; w++) {
        int64_t lo = 2 * w - 1 < 0 ? 0 : 2 * w - 1, hi = 2 * w + 2 > 2 * W - 1 ? 2 * W - 1 : 2 * w + 2;
        const float *g0 = gr + lo * Ci, *g1 = gr + 2 * w * Ci, *g2 = g1 + Ci, *g3 = gr + hi * Ci;
        float *o = tr + w * Ci;
#pragma omp simd
        for (int64_t c = 0; c < Ci; c++)
          o[c] += wb * (0.25f * g0[c] + 0.75f * g1[c] + 0.75f * g2[c] + 0.25f * g3[c]);
      }
    }
  }
  /* pass 2: adjoint along D */
  const int64_t rows = g.N * g.Cc * g.D * g.H;
#pragma omp parallel for schedule(static) if (rows * rowi > 32768)
  for (int64_t r = 0; r < rows; r++) {
    int64_t j = r % g.H, i = (r / g.H) % g.D, nc = r / (g.D * g.H);
    float *o = dx + nc * plane_i + (i * g.H + j) * rowi;
    const float *tb = t + nc * 2 * g.D * g.H * rowi;
    int64_t a[4];
    for (int q = 0; q < 4; q++) {
      int64_t v = 2 * i - 1 + q;
      a[q] = v < 0 ? 0 : v > 2 * g.D - 1 ? 2 * g.D - 1 : v;
    }
    const float *t0 = tb + (a[0] * g.H + j) * rowi, *t1 = tb + (a[1] * g.H + j) * rowi;
    const float *t2 = tb + (a[2] * g.H + j) * rowi, *t3 = tb + (a[3] * g.H + j) * rowi;
    if (accum) {
#pragma omp simd
      for (int64_t k = 0; k < rowi; k++)
        o[k] += 0.25f * t0[k] + 0.75f * t1[k] + 0.75f * t2[k] + 0.25f * t3[k];
    } else {
#pragma omp simd
      for (int64_t k = 0; k < rowi; k++)
        o[k] = 0.25f * t0[k] + 0.75f * t1[k] + 0.75f * t2[k] + 0.25f * t3[k];
    }
  }
  return CSAL3D_OK;
}

/* ---- windows --------------------------------------------------------------------------- */

static csal3d_status window_check(const c3_window_desc *d, const char *op) {
  C3_CHECK_ARG(d && d->batch >= 1 && d->d >= 1 && d->h >= 1 && d->w >= 1 && d->c >= 1,
               "%s: bad sizes", op);
  for (int a = 0; a < 3; a++)
    C3_CHECK_ARG(d->window[a] >= 1 && d->shift[a] >= 0 && d->shift[a] < d->window[a],
                 "%s: window %d / shift %d on axis %d", op, d->window[a], d->shift[a], a);
  return CSAL3D_OK;
}

static void copy_row(float *dst, const float *src, int64_t c, int accum) {
  if (!src) {
    if (!accum) memset(dst, 0, (size_t)c * sizeof(float));
  } else if (accum) {
    for (int64_t i = 0; i < c; i++) dst[i] += src[i];
  } else {
    memcpy(dst, src, (size_t)c * sizeof(float));
  }
}

static csal3d_status cpu_window_partition(c3_engine *e, const c3_window_desc *d,
                                          const float *x, float *xw, int accum) {
  C3_TRY(window_check(d, "window_partition"));
  C3_CHECK_ARG(x && xw, "window_partition: NULL tensor");
  const int64_t sz[3] = {d->d, d->h, d->w};
  int64_t wn[3], P[3];
  for (int a = 0; a < 3; a++) {
    wn[a] = ceil_div(sz[a], d->window[a]);
    P[a] = wn[a] * d->window[a];
  }
  int64_t nwin = wn[0] * wn[1] * wn[2], T = (int64_t)d->window[0] * d->window[1] * d->window[2];
  int64_t C = d->c, total = d->batch * nwin * T;
  const int w0 = d->window[0], w1 = d->window[1], w2 = d->window[2];
#pragma omp parallel for schedule(static) if (total * C > 32768)
  for (int64_t idx = 0; idx < total; idx++) {
    int64_t t = idx % T, win = (idx / T) % nwin, b = idx / (T * nwin);
    int64_t td = t / (w1 * w2), th = (t / w2) % w1, tw = t % w2;
    int64_t wd = win / (wn[1] * wn[2]), wh = (win / wn[2]) % wn[1], ww = win % wn[2];
    int64_t q0 = (wd * w0 + td + d->shift[0]) % P[0];
    int64_t q1 = (wh * w1 + th + d->shift[1]) % P[1];
    int64_t q2 = (ww * w2 + tw + d->shift[2]) % P[2];
    const float *src = NULL;
    if (q0 < sz[0] && q1 < sz[1] && q2 < sz[2])
      src = x + (((b * sz[0] + q0) * sz[1] + q1) * sz[2] + q2) * C;
    copy_row(xw + idx * C, src, C, accum);
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_window_merge(c3_engine *e, const c3_window_desc *d, const float *xw,
                                      float *x, int accum) {
  C3_TRY(window_check(d, "window_merge"));
  C3_CHECK_ARG(x && xw, "window_merge: NULL tensor");
  const int64_t sz[3] = {d->d, d->h, d->w};
  int64_t wn[3], P[3];
  for (int a = 0; a < 3; a++) {
    wn[a] = ceil_div(sz[a], d->window[a]);
    P[a] = wn[a] * d->window[a];
  }
  int64_t nwin = wn[0] * wn[1] * wn[2], T = (int64_t)d->window[0] * d->window[1] * d->window[2];
  int64_t C = d->c, total = d->batch * sz[0] * sz[1] * sz[2];
  const int w0 = d->window[0], w1 = d->window[1], w2 = d->window[2];
#pragma omp parallel for schedule(static) if (total * C > 32768)
  for (int64_t idx = 0; idx < total; idx++) {
    int64_t q2 = idx % sz[2], q1 = (idx / sz[2]) % sz[1], q0 = (idx / (sz[1] * sz[2])) % sz[0];
    int64_t b = idx / (sz[0] * sz[1] * sz[2]);
    int64_t p0 = (q0 - d->shift[0] + P[0]) % P[0];
    int64_t p1 = (q1 - d->shift[1] + P[1]) % P[1];
    int64_t p2 = (q2 - d->shift[2] + P[2]) % P[2];
    int64_t win = ((p0 / w0) * wn[1] + p1 / w1) * wn[2] + p2 / w2;
    int64_t t = ((p0 % w0) * w1 + p1 % w1) * w2 + p2 % w2;
    copy_row(x + idx * C, xw + ((b * nwin + win) * T + t) * C, C, accum);
  }
  return CSAL3D_OK;
}

/* ---- patch merging ----------------------------------------------------------------------- */

static csal3d_status merge_check(const c3_merge_desc *d, const char *op) {
  C3_CHECK_ARG(d && d->batch >= 1 && d->d >= 1 && d->h >= 1 && d->w >= 1 && d->c >= 1,
               "%s: bad sizes", op);
  for (int s = 0; s < 8; s++)
    C3_CHECK_ARG(d->order[s] < 8, "%s: order[%d] = %d (must be 0..7)", op, s, d->order[s]);
  return CSAL3D_OK;
}

static csal3d_status cpu_patch_merge_fwd(c3_engine *e, const c3_merge_desc *d,
                                         const float *x, float *y) {
  C3_TRY(merge_check(d, "patch_merge_fwd"));
  C3_CHECK_ARG(x && y, "patch_merge_fwd: NULL tensor");
  int64_t D = d->d, H = d->h, W = d->w, C = d->c;
  int64_t od = ceil_div(D, 2), oh = ceil_div(H, 2), ow = ceil_div(W, 2);
  int64_t total = d->batch * od * oh * ow;
#pragma omp parallel for schedule(static) if (total * C > 32768)
  for (int64_t idx = 0; idx < total; idx++) {
    int64_t k = idx % ow, j = (idx / ow) % oh, i = (idx / (ow * oh)) % od, b = idx / (ow * oh * od);
    float *yr = y + idx * 8 * C;
    for (int s = 0; s < 8; s++) {
      int o = d->order[s];
      int64_t z0 = 2 * i + (o >> 2), z1 = 2 * j + ((o >> 1) & 1), z2 = 2 * k + (o & 1);
      const float *src =
          z0 < D && z1 < H && z2 < W ? x + (((b * D + z0) * H + z1) * W + z2) * C : NULL;
      copy_row(yr + s * C, src, C, 0);
    }
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_patch_merge_bwd(c3_engine *e, const c3_merge_desc *d,
                                         const float *dy, float *dx, int accum) {
  C3_TRY(merge_check(d, "patch_merge_bwd"));
  C3_CHECK_ARG(dy && dx, "patch_merge_bwd: NULL tensor");
  int64_t D = d->d, H = d->h, W = d->w, C = d->c;
  int64_t oh = ceil_div(H, 2), ow = ceil_div(W, 2), od = ceil_div(D, 2);
  int64_t total = d->batch * D * H * W;
#pragma omp parallel for schedule(static) if (total * C > 32768)
  for (int64_t idx = 0; idx < total; idx++) {
    int64_t z2 = idx % W, z1 = (idx / W) % H, z0 = (idx / (W * H)) % D, b = idx / (W * H * D);
    int pat = (int)((z0 & 1) << 2 | (z1 & 1) << 1 | (z2 & 1));
    const float *yr = dy + (((b * od + z0 / 2) * oh + z1 / 2) * ow + z2 / 2) * 8 * C;
    float *o = dx + idx * C;
    if (!accum) memset(o, 0, (size_t)C * sizeof(float));
    for (int s = 0; s < 8; s++)
      if (d->order[s] == pat)
        for (int64_t c = 0; c < C; c++) o[c] += yr[s * C + c];
  }
  return CSAL3D_OK;
}

/* ---- transposes and permutes ---------------------------------------------------------------- */

static csal3d_status cpu_transpose(c3_engine *e, int64_t batch, int64_t rows, int64_t cols,
                                   const float *x, float *y, int accum) {
  C3_CHECK_ARG(batch >= 1 && rows >= 1 && cols >= 1 && x && y, "transpose: bad arguments");
  const int64_t TB = 32;
  int64_t nr = ceil_div(rows, TB), ncb = ceil_div(cols, TB);
#pragma omp parallel for collapse(3) schedule(static) if (batch * rows * cols > 32768)
  for (int64_t b = 0; b < batch; b++)
    for (int64_t rb = 0; rb < nr; rb++)
      for (int64_t cb = 0; cb < ncb; cb++) {
        const float *xs = x + b * rows * cols;
        float *ys = y + b * rows * cols;
        int64_t r1 = (rb + 1) * TB < rows ? (rb + 1) * TB : rows;
        int64_t c1 = (cb + 1) * TB < cols ? (cb + 1) * TB : cols;
        for (int64_t c = cb * TB; c < c1; c++)
          for (int64_t r = rb * TB; r < r1; r++) {
            float v = xs[r * cols + c];
            ys[c * rows + r] = accum ? ys[c * rows + r] + v : v;
          }
      }
  return CSAL3D_OK;
}

static csal3d_status cpu_permute3d(c3_engine *e, const c3_permute3d_desc *d, const float *x,
                                   float *y, int accum) {
  C3_CHECK_ARG(d && x && y && d->batch >= 1 && d->inner >= 1, "permute3d: bad arguments");
  int seen = 0;
  for (int a = 0; a < 3; a++) {
    C3_CHECK_ARG(d->s[a] >= 1, "permute3d: side %d is %lld", a, (long long)d->s[a]);
    C3_CHECK_ARG(d->perm[a] >= 0 && d->perm[a] < 3, "permute3d: perm[%d] = %d", a, d->perm[a]);
    seen |= 1 << d->perm[a];
  }
  C3_CHECK_ARG(seen == 7, "permute3d: perm is not a permutation of 0, 1, 2");
  int64_t o[3], ist[3]; /* output sides; input strides (in elements of inner rows) */
  for (int a = 0; a < 3; a++) o[a] = d->s[d->perm[a]];
  ist[2] = 1;
  ist[1] = d->s[2];
  ist[0] = d->s[1] * d->s[2];
  int64_t vol = d->s[0] * d->s[1] * d->s[2], inner = d->inner;
  int64_t lines = d->batch * o[0] * o[1];
  /* per output axis: input stride and start offset (flips walk backwards) */
  int64_t st[3], base[3];
  for (int a = 0; a < 3; a++) {
    st[a] = d->flip[a] ? -ist[d->perm[a]] : ist[d->perm[a]];
    base[a] = d->flip[a] ? (o[a] - 1) * ist[d->perm[a]] : 0;
  }
#pragma omp parallel for schedule(static) if (lines * o[2] * inner > 32768)
  for (int64_t l = 0; l < lines; l++) {
    int64_t o1 = l % o[1], o0 = (l / o[1]) % o[0], b = l / (o[0] * o[1]);
    int64_t in0 = base[0] + o0 * st[0] + base[1] + o1 * st[1] + base[2];
    const float *xb = x + b * vol * inner;
    float *yr = y + l * o[2] * inner;
    for (int64_t o2 = 0; o2 < o[2]; o2++)
      copy_row(yr + o2 * inner, xb + (in0 + o2 * st[2]) * inner, inner, accum);
  }
  return CSAL3D_OK;
}

/* ---- losses ---------------------------------------------------------------------------------- */

static csal3d_status cpu_mse_loss(c3_engine *e, int64_t n, const float *x, const float *t,
                                  const float *w, float grad_scale, float *dx, float *dt,
                                  int accum, double *loss) {
  C3_CHECK_ARG(n >= 1 && x && t && loss, "mse_loss: bad arguments");
  double W = (double)n, s;
  if (w) C3_TRY(block_sum(e, 4, n, NULL, NULL, w, &W));
  C3_TRY(block_sum(e, 2, n, x, t, w, &s));
  *loss = W > 0.0 ? s / W : 0.0;
  float k = W > 0.0 ? (float)(2.0 * grad_scale / W) : 0.0f;
  if (dx || dt) {
#pragma omp parallel for simd schedule(static) PAR_IF(n)
    for (int64_t i = 0; i < n; i++) {
      float g = k * (x[i] - t[i]);
      if (w) g *= w[i];
      if (dx) dx[i] = accum ? dx[i] + g : g;
      if (dt) dt[i] = accum ? dt[i] - g : -g;
    }
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_l1_loss(c3_engine *e, int64_t n, const float *x, const float *y,
                                 float grad_scale, float *dx, float *dy, int accum,
                                 double *loss) {
  C3_CHECK_ARG(n >= 1 && x && y && loss, "l1_loss: bad arguments");
  double s;
  C3_TRY(block_sum(e, 3, n, x, y, NULL, &s));
  *loss = s / (double)n;
  float k = (float)(grad_scale / (double)n);
  if (dx || dy) {
#pragma omp parallel for simd schedule(static) PAR_IF(n)
    for (int64_t i = 0; i < n; i++) {
      float diff = x[i] - y[i];
      float g = diff > 0.0f ? k : diff < 0.0f ? -k : 0.0f;
      if (dx) dx[i] = accum ? dx[i] + g : g;
      if (dy) dy[i] = accum ? dy[i] - g : -g;
    }
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_cross_entropy(c3_engine *e, int64_t rows, int64_t classes,
                                       const float *logits, const int32_t *labels,
                                       float grad_scale, float *dlogits, int accum,
                                       double *loss) {
  C3_CHECK_ARG(rows >= 1 && classes >= 1 && logits && labels && loss,
               "cross_entropy: bad arguments");
  for (int64_t r = 0; r < rows; r++)
    C3_CHECK_ARG(labels[r] >= 0 && labels[r] < classes,
                 "cross_entropy: label %d of row %lld is outside [0, %lld)", (int)labels[r],
                 (long long)r, (long long)classes);
  double total = 0.0;
  for (int64_t r = 0; r < rows; r++) {
    const float *l = logits + r * classes;
    double mx = l[0];
    for (int64_t c = 1; c < classes; c++)
      if (l[c] > mx) mx = l[c];
    double z = 0.0;
    for (int64_t c = 0; c < classes; c++) z += exp(l[c] - mx);
    double lse = mx + log(z);
    total += lse - l[labels[r]];
    if (dlogits) {
      float *g = dlogits + r * classes;
      for (int64_t c = 0; c < classes; c++) {
        double p = exp(l[c] - lse) - (c == labels[r] ? 1.0 : 0.0);
        float v = (float)(grad_scale * p / (double)rows);
        g[c] = accum ? g[c] + v : v;
      }
    }
  }
  *loss = total / (double)rows;
  return CSAL3D_OK;
}

/* ---- AdamW ----------------------------------------------------------------------------------- */

static csal3d_status cpu_adamw(c3_engine *e, const c3_adamw_desc *d, int64_t n, float *p,
                               const float *g, float *m, float *v) {
  C3_CHECK_ARG(d && n >= 0 && (n == 0 || (p && g && m && v)), "adamw: bad arguments");
  C3_CHECK_ARG(d->step >= 1, "adamw: step %lld (must be >= 1)", (long long)d->step);
  double bc1 = 1.0 - pow(d->beta1, (double)d->step);
  double bc2 = 1.0 - pow(d->beta2, (double)d->step);
  float step_size = (float)(d->lr / bc1);
  float bc2_sqrt = (float)sqrt(bc2);
  float decay = 1.0f - d->lr * d->weight_decay;
  float b1 = d->beta1, b2 = d->beta2, eps = d->eps, gs = d->grad_scale;
#pragma omp parallel for simd schedule(static) PAR_IF(n)
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i] * gs;
    float pi = p[i] * decay;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
  }
  return CSAL3D_OK;
}

void c3_cpu_fill_c_ops(c3_engine *e) {
  e->inorm_lrelu_fwd = cpu_inorm_lrelu_fwd;
  e->inorm_lrelu_bwd = cpu_inorm_lrelu_bwd;
  e->upsample2x_fwd = cpu_upsample2x_fwd;
  e->upsample2x_bwd = cpu_upsample2x_bwd;
  e->window_partition = cpu_window_partition;
  e->window_merge = cpu_window_merge;
  e->patch_merge_fwd = cpu_patch_merge_fwd;
  e->patch_merge_bwd = cpu_patch_merge_bwd;
  e->transpose = cpu_transpose;
  e->permute3d = cpu_permute3d;
  e->reduce_sum = cpu_reduce_sum;
  e->broadcast = cpu_broadcast;
  e->sum = cpu_sum;
  e->dot = cpu_dot;
  e->add = cpu_add;
  e->mul = cpu_mul;
  e->axpby = cpu_axpby;
  e->scale = cpu_scale;
  e->mse_loss = cpu_mse_loss;
  e->cross_entropy = cpu_cross_entropy;
  e->l1_loss = cpu_l1_loss;
  e->adamw = cpu_adamw;
}
