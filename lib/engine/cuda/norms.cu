/* Layer norm, softmax, GELU, instance norm + LeakyReLU and trilinear x2 upsampling.
 * Row ops (layer norm, softmax) run one warp per row; parameter gradients and the
 * instance-norm statistics are deterministic double sums (reduce.cuh). */
#include <math.h>

#include "engine/cuda/cuda_internal.h"
#include "engine/cuda/reduce.cuh"

#define GRID_LOOP(i, n)                                                        \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);    \
       i += (int64_t)gridDim.x * blockDim.x)
#define LAUNCH(n) <<<c3cu_blocks((n), 256), 256, 0, c3cu(e)->stream>>>
/* one warp per row, 8 warps per block */
#define WARP_LAUNCH(rows) <<<c3cu_blocks((rows), 8), 256, 0, c3cu(e)->stream>>>

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

#define WARP_ROW_LOOP(r, rows)                                                 \
  const int lane = threadIdx.x & 31;                                           \
  for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5; r < (rows); \
       r += ((int64_t)gridDim.x * blockDim.x) >> 5)

/* ---- layer norm ------------------------------------------------------------------------ */

__global__ void k_ln_fwd(int64_t rows, int64_t cols, float eps, const float *x,
                         const float *gamma, const float *beta, float *y, float *mean,
                         float *var) {
  WARP_ROW_LOOP(r, rows) {
    const float *xr = x + r * cols;
    float s = 0.0f;
    for (int64_t c = lane; c < cols; c += 32) s += xr[c];
    float mu = warp_sum(s) / (float)cols;
    float q = 0.0f;
    for (int64_t c = lane; c < cols; c += 32) {
      float t = xr[c] - mu;
      q += t * t;
    }
    float va = warp_sum(q) / (float)cols;
    float rs = 1.0f / sqrtf(va + eps);
    float *yr = y + r * cols;
    for (int64_t c = lane; c < cols; c += 32) {
      float v = (xr[c] - mu) * rs;
      if (gamma) v = v * gamma[c] + beta[c];
      yr[c] = v;
    }
    if (lane == 0 && mean) {
      mean[r] = mu;
      var[r] = va;
    }
  }
}

static csal3d_status cu_layer_norm_fwd(c3_engine *e, int64_t rows, int64_t cols, float eps,
                                       const float *x, const float *gamma, const float *beta,
                                       float *y, float *mean, float *var) {
  CU_CHECK_ARG(e, rows >= 1 && cols >= 1 && x && y, "layer_norm_fwd: bad arguments");
  CU_CHECK_ARG(e, (gamma == NULL) == (beta == NULL),
               "layer_norm_fwd: gamma and beta must both be given or both be NULL");
  CU_CHECK_ARG(e, (mean == NULL) == (var == NULL),
               "layer_norm_fwd: mean and var must both be given or both be NULL");
  CU_CHECK_ARG(e, eps > 0.0f, "layer_norm_fwd: eps must be > 0");
  k_ln_fwd WARP_LAUNCH(rows)(rows, cols, eps, x, gamma, beta, y, mean, var);
  CU_LAUNCHED(e, "layer_norm_fwd");
  return CSAL3D_OK;
}

__global__ void k_ln_bwd(int64_t rows, int64_t cols, float eps, const float *x,
                         const float *gamma, const float *mean, const float *var,
                         const float *dy, float *dx, int accum) {
  WARP_ROW_LOOP(r, rows) {
    const float *xr = x + r * cols, *gr = dy + r * cols;
    float mu = mean[r], rs = 1.0f / sqrtf(var[r] + eps);
    float a = 0.0f, b = 0.0f;
    for (int64_t c = lane; c < cols; c += 32) {
      float g = gamma ? gr[c] * gamma[c] : gr[c];
      a += g;
      b += g * (xr[c] - mu) * rs;
    }
    a = warp_sum(a) / (float)cols;
    b = warp_sum(b) / (float)cols;
    float *o = dx + r * cols;
    for (int64_t c = lane; c < cols; c += 32) {
      float g = gamma ? gr[c] * gamma[c] : gr[c];
      float v = rs * (g - a - (xr[c] - mu) * rs * b);
      o[c] = accum ? o[c] + v : v;
    }
  }
}

struct f_ln_param {
  const float *x, *dy, *mean, *var;
  float eps;
  int64_t cols;
  __device__ double2 operator()(int64_t o, int64_t m, int64_t i) const {
    float rs = 1.0f / sqrtf(var[m] + eps);
    float g = dy[m * cols + i];
    return make_double2((double)g * (double)((x[m * cols + i] - mean[m]) * rs), (double)g);
  }
};

struct g_ln_param {
  float *dgamma, *dbeta;
  __device__ void operator()(int64_t t, double2 s) const {
    dgamma[t] += (float)s.x;
    dbeta[t] += (float)s.y;
  }
};

static csal3d_status cu_layer_norm_bwd(c3_engine *e, int64_t rows, int64_t cols, float eps,
                                       const float *x, const float *gamma, const float *mean,
                                       const float *var, const float *dy, float *dx,
                                       int accum, float *dgamma, float *dbeta) {
  CU_CHECK_ARG(e, rows >= 1 && cols >= 1 && x && mean && var && dy && dx,
               "layer_norm_bwd: bad arguments");
  CU_CHECK_ARG(e, (dgamma == NULL) == (dbeta == NULL),
               "layer_norm_bwd: dgamma and dbeta must both be given or both be NULL");
  CU_CHECK_ARG(e, !dgamma || gamma, "layer_norm_bwd: dgamma without gamma");
  k_ln_bwd WARP_LAUNCH(rows)(rows, cols, eps, x, gamma, mean, var, dy, dx, accum);
  CU_LAUNCHED(e, "layer_norm_bwd");
  if (dgamma) {
    f_ln_param f = {x, dy, mean, var, eps, cols};
    g_ln_param g = {dgamma, dbeta};
    CU_TRY(c3cu_reduce_mid(e, 1, rows, cols, f, g, "layer_norm_bwd"));
  }
  return CSAL3D_OK;
}

/* ---- softmax ---------------------------------------------------------------------------- */

__global__ void k_softmax_fwd(int64_t rows, int64_t cols, const float *x, float *y) {
  WARP_ROW_LOOP(r, rows) {
    const float *xr = x + r * cols;
    float mx = -INFINITY;
    for (int64_t c = lane; c < cols; c += 32) mx = fmaxf(mx, xr[c]);
    mx = warp_max(mx);
    float s = 0.0f;
    for (int64_t c = lane; c < cols; c += 32) s += expf(xr[c] - mx);
    float inv = 1.0f / warp_sum(s);
    float *yr = y + r * cols;
    for (int64_t c = lane; c < cols; c += 32) yr[c] = expf(xr[c] - mx) * inv;
  }
}

__global__ void k_softmax_bwd(int64_t rows, int64_t cols, const float *y, const float *dy,
                              float *dx, int accum) {
  WARP_ROW_LOOP(r, rows) {
    const float *yr = y + r * cols, *gr = dy + r * cols;
    float d = 0.0f;
    for (int64_t c = lane; c < cols; c += 32) d += yr[c] * gr[c];
    d = warp_sum(d);
    float *o = dx + r * cols;
    for (int64_t c = lane; c < cols; c += 32) {
      float v = yr[c] * (gr[c] - d);
      o[c] = accum ? o[c] + v : v;
    }
  }
}

static csal3d_status cu_softmax_fwd(c3_engine *e, int64_t rows, int64_t cols, const float *x,
                                    float *y) {
  CU_CHECK_ARG(e, rows >= 1 && cols >= 1 && x && y, "softmax_fwd: bad arguments");
  k_softmax_fwd WARP_LAUNCH(rows)(rows, cols, x, y);
  CU_LAUNCHED(e, "softmax_fwd");
  return CSAL3D_OK;
}

static csal3d_status cu_softmax_bwd(c3_engine *e, int64_t rows, int64_t cols, const float *y,
                                    const float *dy, float *dx, int accum) {
  CU_CHECK_ARG(e, rows >= 1 && cols >= 1 && y && dy && dx, "softmax_bwd: bad arguments");
  k_softmax_bwd WARP_LAUNCH(rows)(rows, cols, y, dy, dx, accum);
  CU_LAUNCHED(e, "softmax_bwd");
  return CSAL3D_OK;
}

/* ---- GELU (erf) ------------------------------------------------------------------------- */

__global__ void k_gelu_fwd(int64_t n, const float *x, float *y) {
  GRID_LOOP(i, n) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
  }
}

__global__ void k_gelu_bwd(int64_t n, const float *x, const float *dy, float *dx, int accum) {
  GRID_LOOP(i, n) {
    float v = x[i];
    float cdf = 0.5f * (1.0f + erff(v * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * v * v);
    float g = dy[i] * (cdf + v * pdf);
    dx[i] = accum ? dx[i] + g : g;
  }
}

static csal3d_status cu_gelu_fwd(c3_engine *e, int64_t n, const float *x, float *y) {
  CU_CHECK_ARG(e, n >= 0 && (n == 0 || (x && y)), "gelu_fwd: bad arguments");
  if (!n) return CSAL3D_OK;
  k_gelu_fwd LAUNCH(n)(n, x, y);
  CU_LAUNCHED(e, "gelu_fwd");
  return CSAL3D_OK;
}

static csal3d_status cu_gelu_bwd(c3_engine *e, int64_t n, const float *x, const float *dy,
                                 float *dx, int accum) {
  CU_CHECK_ARG(e, n >= 0 && (n == 0 || (x && dy && dx)), "gelu_bwd: bad arguments");
  if (!n) return CSAL3D_OK;
  k_gelu_bwd LAUNCH(n)(n, x, dy, dx, accum);
  CU_LAUNCHED(e, "gelu_bwd");
  return CSAL3D_OK;
}

/* ---- instance norm + LeakyReLU --------------------------------------------------------------
 * Both layouts are [outer, mid, inner] with the statistics indexed o * inner + i:
 * NCDHW (N*C, S, 1), NDHWC (N, S, C). */

struct inorm_geom {
  int64_t outer, mid, inner;
  int64_t S, C;
  int ndhwc;
  __device__ int64_t stat(int64_t t) const {
    return ndhwc ? (t / (S * C)) * C + t % C : t / S;
  }
};

static csal3d_status inorm_check(c3_engine *e, const c3_inorm_desc *d, const char *op) {
  CU_CHECK_ARG(e, d && d->n >= 1 && d->c >= 1 && d->d >= 1 && d->h >= 1 && d->w >= 1,
               "%s: bad sizes", op);
  CU_CHECK_ARG(e, d->layout == C3_LAYOUT_NCDHW || d->layout == C3_LAYOUT_NDHWC,
               "%s: bad layout %d", op, (int)d->layout);
  CU_CHECK_ARG(e, d->eps > 0.0f, "%s: eps must be > 0", op);
  return CSAL3D_OK;
}

static inorm_geom inorm_make(const c3_inorm_desc *d) {
  inorm_geom g;
  g.S = d->d * d->h * d->w;
  g.C = d->c;
  g.ndhwc = d->layout == C3_LAYOUT_NDHWC;
  g.outer = g.ndhwc ? d->n : d->n * d->c;
  g.mid = g.S;
  g.inner = g.ndhwc ? d->c : 1;
  return g;
}

struct f_in_moment {
  const float *x, *mean; /* mean NULL: first moment */
  int64_t mid, inner;
  __device__ double2 operator()(int64_t o, int64_t m, int64_t i) const {
    double v = x[(o * mid + m) * inner + i];
    if (mean) {
      v -= (double)mean[o * inner + i];
      v *= v;
    }
    return make_double2(v, 0.0);
  }
};

struct g_div {
  float *out;
  double div;
  __device__ void operator()(int64_t t, double2 s) const { out[t] = (float)(s.x / div); }
};

struct f_in_bwd {
  const float *x, *dy, *mean, *var;
  float eps, slope;
  int64_t mid, inner;
  __device__ double2 operator()(int64_t o, int64_t m, int64_t i) const {
    int64_t t = (o * mid + m) * inner + i, k = o * inner + i;
    float r = 1.0f / sqrtf(var[k] + eps);
    float z = (x[t] - mean[k]) * r;
    float dz = z > 0.0f ? dy[t] : slope * dy[t];
    return make_double2((double)dz, (double)dz * (double)z);
  }
};

struct g_div2 {
  float *a, *b;
  double div;
  __device__ void operator()(int64_t t, double2 s) const {
    a[t] = (float)(s.x / div);
    b[t] = (float)(s.y / div);
  }
};

__global__ void k_inorm_apply(inorm_geom g, int64_t total, const float *x, const float *mean,
                              const float *var, float eps, float slope, float *y) {
  GRID_LOOP(t, total) {
    int64_t k = g.stat(t);
    float z = (x[t] - mean[k]) * (1.0f / sqrtf(var[k] + eps));
    y[t] = z > 0.0f ? z : slope * z;
  }
}

__global__ void k_inorm_bwd_apply(inorm_geom g, int64_t total, const float *x,
                                  const float *mean, const float *var, const float *a,
                                  const float *b, float eps, float slope, const float *dy,
                                  float *dx, int accum) {
  GRID_LOOP(t, total) {
    int64_t k = g.stat(t);
    float r = 1.0f / sqrtf(var[k] + eps);
    float z = (x[t] - mean[k]) * r;
    float dz = z > 0.0f ? dy[t] : slope * dy[t];
    float v = r * (dz - a[k] - z * b[k]);
    dx[t] = accum ? dx[t] + v : v;
  }
}

static csal3d_status cu_inorm_lrelu_fwd(c3_engine *e, const c3_inorm_desc *d,
                                        const float *x, float *y, float *mean, float *var) {
  CU_TRY(inorm_check(e, d, "inorm_lrelu_fwd"));
  CU_CHECK_ARG(e, x && y, "inorm_lrelu_fwd: NULL tensor");
  CU_CHECK_ARG(e, (mean == NULL) == (var == NULL),
               "inorm_lrelu_fwd: mean and var must both be given or both be NULL");
  inorm_geom g = inorm_make(d);
  int64_t NC = d->n * d->c;
  float *buf = NULL;
  if (!mean) {
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_A3, 2 * (size_t)NC * sizeof(float), (void **)&buf));
    mean = buf;
    var = buf + NC;
  }
  f_in_moment f1 = {x, NULL, g.mid, g.inner};
  g_div gm = {mean, (double)g.S};
  CU_TRY(c3cu_reduce_mid(e, g.outer, g.mid, g.inner, f1, gm, "inorm_lrelu_fwd"));
  f_in_moment f2 = {x, mean, g.mid, g.inner};
  g_div gv = {var, (double)g.S};
  CU_TRY(c3cu_reduce_mid(e, g.outer, g.mid, g.inner, f2, gv, "inorm_lrelu_fwd"));
  int64_t total = NC * g.S;
  k_inorm_apply LAUNCH(total)(g, total, x, mean, var, d->eps, d->slope, y);
  CU_LAUNCHED(e, "inorm_lrelu_fwd");
  return CSAL3D_OK;
}

static csal3d_status cu_inorm_lrelu_bwd(c3_engine *e, const c3_inorm_desc *d,
                                        const float *x, const float *mean, const float *var,
                                        const float *dy, float *dx, int accum) {
  CU_TRY(inorm_check(e, d, "inorm_lrelu_bwd"));
  CU_CHECK_ARG(e, x && mean && var && dy && dx, "inorm_lrelu_bwd: NULL tensor");
  inorm_geom g = inorm_make(d);
  int64_t NC = d->n * d->c;
  float *buf;
  CU_TRY(c3cu_scratch(e, C3CU_SLOT_A3, 2 * (size_t)NC * sizeof(float), (void **)&buf));
  f_in_bwd f = {x, dy, mean, var, d->eps, d->slope, g.mid, g.inner};
  g_div2 gg = {buf, buf + NC, (double)g.S};
  CU_TRY(c3cu_reduce_mid(e, g.outer, g.mid, g.inner, f, gg, "inorm_lrelu_bwd"));
  int64_t total = NC * g.S;
  k_inorm_bwd_apply LAUNCH(total)(g, total, x, mean, var, buf, buf + NC, d->eps, d->slope,
                                  dy, dx, accum);
  CU_LAUNCHED(e, "inorm_lrelu_bwd");
  return CSAL3D_OK;
}

/* ---- trilinear x2 upsampling (align_corners = false) ------------------------------------- */

struct up_geom {
  int64_t n, c, d, h, w;
  int ndhwc;
  /* element index of (n, c, z, y, x) in a tensor of sides (D, H, W) */
  __device__ int64_t at(int64_t nn, int64_t cc, int64_t z, int64_t y, int64_t x, int64_t D,
                        int64_t H, int64_t W) const {
    return ndhwc ? (((nn * D + z) * H + y) * W + x) * c + cc
                 : (((nn * c + cc) * D + z) * H + y) * W + x;
  }
};

/* source taps of output index o along an axis of `side` inputs */
__device__ __forceinline__ void up_taps(int64_t o, int64_t side, int64_t *i0, int64_t *i1,
                                        float *l) {
  float src = ((float)o + 0.5f) * 0.5f - 0.5f;
  if (src < 0.0f) src = 0.0f;
  int64_t a = (int64_t)src;
  if (a > side - 1) a = side - 1;
  *i0 = a;
  *i1 = a + 1 < side ? a + 1 : side - 1;
  *l = src - (float)a;
}

/* decomposes t into (n, c, z, y, x) for sides (D, H, W) in the layout */
__device__ __forceinline__ void up_coords(const up_geom &g, int64_t t, int64_t D, int64_t H,
                                          int64_t W, int64_t *nn, int64_t *cc, int64_t *z,
                                          int64_t *y, int64_t *x) {
  if (g.ndhwc) {
    *cc = t % g.c;
    t /= g.c;
    *x = t % W;
    t /= W;
    *y = t % H;
    t /= H;
    *z = t % D;
    *nn = t / D;
  } else {
    *x = t % W;
    t /= W;
    *y = t % H;
    t /= H;
    *z = t % D;
    t /= D;
    *cc = t % g.c;
    *nn = t / g.c;
  }
}

__global__ void k_up_fwd(up_geom g, int64_t total, const float *x, float *y) {
  const int64_t OD = 2 * g.d, OH = 2 * g.h, OW = 2 * g.w;
  GRID_LOOP(t, total) {
    int64_t nn, cc, oz, oy, ox;
    up_coords(g, t, OD, OH, OW, &nn, &cc, &oz, &oy, &ox);
    int64_t z0, z1, y0, y1, x0, x1;
    float lz, ly, lx;
    up_taps(oz, g.d, &z0, &z1, &lz);
    up_taps(oy, g.h, &y0, &y1, &ly);
    up_taps(ox, g.w, &x0, &x1, &lx);
#define X(z, yy, xx) x[g.at(nn, cc, z, yy, xx, g.d, g.h, g.w)]
    float v0 = (1.0f - ly) * ((1.0f - lx) * X(z0, y0, x0) + lx * X(z0, y0, x1)) +
               ly * ((1.0f - lx) * X(z0, y1, x0) + lx * X(z0, y1, x1));
    float v1 = (1.0f - ly) * ((1.0f - lx) * X(z1, y0, x0) + lx * X(z1, y0, x1)) +
               ly * ((1.0f - lx) * X(z1, y1, x0) + lx * X(z1, y1, x1));
#undef X
    y[t] = (1.0f - lz) * v0 + lz * v1;
  }
}

/* outputs o of an axis that read input i, with their weights (at most 4) */
__device__ __forceinline__ int up_adjoint(int64_t i, int64_t side, int64_t *os, float *ws) {
  int k = 0;
  for (int64_t o = 2 * i - 2; o <= 2 * i + 2; o++) {
    if (o < 0 || o >= 2 * side) continue;
    int64_t i0, i1;
    float l;
    up_taps(o, side, &i0, &i1, &l);
    float w = (i0 == i ? 1.0f - l : 0.0f) + (i1 == i ? l : 0.0f);
    if (w != 0.0f) {
      os[k] = o;
      ws[k] = w;
      k++;
    }
  }
  return k;
}

__global__ void k_up_bwd(up_geom g, int64_t total, const float *dy, float *dx, int accum) {
  const int64_t OD = 2 * g.d, OH = 2 * g.h, OW = 2 * g.w;
  GRID_LOOP(t, total) {
    int64_t nn, cc, z, yy, xx;
    up_coords(g, t, g.d, g.h, g.w, &nn, &cc, &z, &yy, &xx);
    int64_t oz[5], oy[5], ox[5];
    float wz[5], wy[5], wx[5];
    int kz = up_adjoint(z, g.d, oz, wz);
    int ky = up_adjoint(yy, g.h, oy, wy);
    int kx = up_adjoint(xx, g.w, ox, wx);
    float s = 0.0f;
    for (int a = 0; a < kz; a++)
      for (int b = 0; b < ky; b++) {
        float sb = 0.0f;
        for (int c = 0; c < kx; c++) sb += wx[c] * dy[g.at(nn, cc, oz[a], oy[b], ox[c], OD, OH, OW)];
        s += wz[a] * wy[b] * sb;
      }
    dx[t] = accum ? dx[t] + s : s;
  }
}

static csal3d_status up_check(c3_engine *e, const c3_upsample_desc *d, const char *op) {
  CU_CHECK_ARG(e, d && d->n >= 1 && d->c >= 1 && d->d >= 1 && d->h >= 1 && d->w >= 1,
               "%s: bad sizes", op);
  CU_CHECK_ARG(e, d->layout == C3_LAYOUT_NCDHW || d->layout == C3_LAYOUT_NDHWC,
               "%s: bad layout %d", op, (int)d->layout);
  return CSAL3D_OK;
}

static csal3d_status cu_upsample2x_fwd(c3_engine *e, const c3_upsample_desc *d,
                                       const float *x, float *y) {
  CU_TRY(up_check(e, d, "upsample2x_fwd"));
  CU_CHECK_ARG(e, x && y, "upsample2x_fwd: NULL tensor");
  up_geom g = {d->n, d->c, d->d, d->h, d->w, d->layout == C3_LAYOUT_NDHWC};
  int64_t total = d->n * d->c * 8 * d->d * d->h * d->w;
  k_up_fwd LAUNCH(total)(g, total, x, y);
  CU_LAUNCHED(e, "upsample2x_fwd");
  return CSAL3D_OK;
}

static csal3d_status cu_upsample2x_bwd(c3_engine *e, const c3_upsample_desc *d,
                                       const float *dy, float *dx, int accum) {
  CU_TRY(up_check(e, d, "upsample2x_bwd"));
  CU_CHECK_ARG(e, dy && dx, "upsample2x_bwd: NULL tensor");
  up_geom g = {d->n, d->c, d->d, d->h, d->w, d->layout == C3_LAYOUT_NDHWC};
  int64_t total = d->n * d->c * d->d * d->h * d->w;
  k_up_bwd LAUNCH(total)(g, total, dy, dx, accum);
  CU_LAUNCHED(e, "upsample2x_bwd");
  return CSAL3D_OK;
}

void c3cu_fill_norm_ops(c3_engine *e) {
  e->layer_norm_fwd = cu_layer_norm_fwd;
  e->layer_norm_bwd = cu_layer_norm_bwd;
  e->softmax_fwd = cu_softmax_fwd;
  e->softmax_bwd = cu_softmax_bwd;
  e->gelu_fwd = cu_gelu_fwd;
  e->gelu_bwd = cu_gelu_bwd;
  e->inorm_lrelu_fwd = cu_inorm_lrelu_fwd;
  e->inorm_lrelu_bwd = cu_inorm_lrelu_bwd;
  e->upsample2x_fwd = cu_upsample2x_fwd;
  e->upsample2x_bwd = cu_upsample2x_bwd;
}
