/* Elementwise ops, reductions over an axis, scalar sums, losses and AdamW.
 * Sums run in double over chunks fixed by the shape (reduce.cuh): deterministic. */
#include <math.h>

#include <new>

#include "engine/cuda/cuda_internal.h"
#include "engine/cuda/reduce.cuh"

#define GRID_LOOP(i, n)                                                        \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);    \
       i += (int64_t)gridDim.x * blockDim.x)

#define LAUNCH(n) <<<c3cu_blocks((n), 256), 256, 0, c3cu(e)->stream>>>

/* ---- elementwise -------------------------------------------------------------------- */

__global__ void k_add(int64_t n, const float *x, const float *y, float *z) {
  GRID_LOOP(i, n) z[i] = x[i] + y[i];
}
__global__ void k_mul(int64_t n, const float *x, const float *y, float *z) {
  GRID_LOOP(i, n) z[i] = x[i] * y[i];
}
__global__ void k_axpby(int64_t n, float a, const float *x, float b, float *y) {
  if (b == 0.0f) {
    GRID_LOOP(i, n) y[i] = a * x[i];
  } else if (b == 1.0f) {
    GRID_LOOP(i, n) y[i] += a * x[i];
  } else {
    GRID_LOOP(i, n) y[i] = a * x[i] + b * y[i];
  }
}
__global__ void k_scale(int64_t n, float a, float *x) { GRID_LOOP(i, n) x[i] *= a; }

static csal3d_status cu_add(c3_engine *e, int64_t n, const float *x, const float *y,
                            float *z) {
  CU_CHECK_ARG(e, n >= 0 && (n == 0 || (x && y && z)), "add: bad arguments");
  if (!n) return CSAL3D_OK;
  k_add LAUNCH(n)(n, x, y, z);
  CU_LAUNCHED(e, "add");
  return CSAL3D_OK;
}

static csal3d_status cu_mul(c3_engine *e, int64_t n, const float *x, const float *y,
                            float *z) {
  CU_CHECK_ARG(e, n >= 0 && (n == 0 || (x && y && z)), "mul: bad arguments");
  if (!n) return CSAL3D_OK;
  k_mul LAUNCH(n)(n, x, y, z);
  CU_LAUNCHED(e, "mul");
  return CSAL3D_OK;
}

static csal3d_status cu_axpby(c3_engine *e, int64_t n, float a, const float *x, float b,
                              float *y) {
  CU_CHECK_ARG(e, n >= 0 && (n == 0 || (x && y)), "axpby: bad arguments");
  if (!n) return CSAL3D_OK;
  k_axpby LAUNCH(n)(n, a, x, b, y);
  CU_LAUNCHED(e, "axpby");
  return CSAL3D_OK;
}

static csal3d_status cu_scale(c3_engine *e, int64_t n, float a, float *x) {
  CU_CHECK_ARG(e, n >= 0 && (n == 0 || x), "scale: bad arguments");
  if (!n) return CSAL3D_OK;
  k_scale LAUNCH(n)(n, a, x);
  CU_LAUNCHED(e, "scale");
  return CSAL3D_OK;
}

/* ---- reductions over the middle axis ---------------------------------------------------- */

struct f_load {
  const float *x;
  int64_t mid, inner;
  __device__ double2 operator()(int64_t o, int64_t m, int64_t i) const {
    return make_double2((double)x[(o * mid + m) * inner + i], 0.0);
  }
};

struct g_store_scaled {
  float *y;
  double alpha;
  int accum;
  __device__ void operator()(int64_t t, double2 s) const {
    float v = (float)(alpha * s.x);
    y[t] = accum ? y[t] + v : v;
  }
};

csal3d_status c3cu_reduce_sum(c3_engine *e, int64_t outer, int64_t mid, int64_t inner,
                              float alpha, const float *x, float *y, int accum) {
  CU_CHECK_ARG(e, outer >= 1 && mid >= 1 && inner >= 1 && x && y,
               "reduce_sum: bad arguments (outer %lld, mid %lld, inner %lld)",
               (long long)outer, (long long)mid, (long long)inner);
  f_load f = {x, mid, inner};
  g_store_scaled g = {y, (double)alpha, accum};
  return c3cu_reduce_mid(e, outer, mid, inner, f, g, "reduce_sum");
}

__global__ void k_broadcast(int64_t outer, int64_t mid, int64_t inner, float alpha,
                            const float *x, float *y, int accum) {
  int64_t total = outer * mid * inner;
  GRID_LOOP(t, total) {
    int64_t i = t % inner, o = t / (mid * inner);
    float v = alpha * x[o * inner + i];
    y[t] = accum ? y[t] + v : v;
  }
}

csal3d_status c3cu_broadcast(c3_engine *e, int64_t outer, int64_t mid, int64_t inner,
                             float alpha, const float *x, float *y, int accum) {
  CU_CHECK_ARG(e, outer >= 1 && mid >= 1 && inner >= 1 && x && y,
               "broadcast: bad arguments (outer %lld, mid %lld, inner %lld)",
               (long long)outer, (long long)mid, (long long)inner);
  int64_t total = outer * mid * inner;
  k_broadcast LAUNCH(total)(outer, mid, inner, alpha, x, y, accum);
  CU_LAUNCHED(e, "broadcast");
  return CSAL3D_OK;
}

/* ---- scalar sums ----------------------------------------------------------------------- */

/* kind 0: x; 1: x*y; 2: (x-t)^2 (times w); 3: |x-y|; also .y = w (or 0) */
struct f_scalar {
  int kind;
  const float *x, *y, *w;
  __device__ double2 operator()(int64_t o, int64_t m, int64_t i) const {
    switch (kind) {
    case 0:
      return make_double2((double)x[m], 0.0);
    case 1:
      return make_double2((double)x[m] * (double)y[m], 0.0);
    case 2: {
      double d = (double)x[m] - (double)y[m];
      double wm = w ? (double)w[m] : 1.0;
      return make_double2(wm * d * d, wm);
    }
    default:
      return make_double2(fabs((double)x[m] - (double)y[m]), 0.0);
    }
  }
};

struct g_scalar {
  double *out;
  __device__ void operator()(int64_t t, double2 s) const {
    out[0] = s.x;
    out[1] = s.y;
  }
};

static csal3d_status scalar_sum(c3_engine *e, int kind, int64_t n, const float *x,
                                const float *y, const float *w, double out[2]) {
  if (n == 0) {
    out[0] = out[1] = 0.0;
    return CSAL3D_OK;
  }
  f_scalar f = {kind, x, y, w};
  g_scalar g = {c3cu(e)->dscalar};
  CU_TRY(c3cu_reduce_mid(e, 1, n, 1, f, g, "sum"));
  return c3cu_read_scalars(e, 2, out);
}

static csal3d_status cu_sum(c3_engine *e, int64_t n, const float *x, double *out) {
  CU_CHECK_ARG(e, out && n >= 0 && (n == 0 || x), "sum: bad arguments");
  double r[2];
  CU_TRY(scalar_sum(e, 0, n, x, NULL, NULL, r));
  *out = r[0];
  return CSAL3D_OK;
}

static csal3d_status cu_dot(c3_engine *e, int64_t n, const float *x, const float *y,
                            double *out) {
  CU_CHECK_ARG(e, out && n >= 0 && (n == 0 || (x && y)), "dot: bad arguments");
  double r[2];
  CU_TRY(scalar_sum(e, 1, n, x, y, NULL, r));
  *out = r[0];
  return CSAL3D_OK;
}

/* ---- losses ------------------------------------------------------------------------------ */

__global__ void k_mse_grad(int64_t n, const float *x, const float *t, const float *w, float k,
                           float *dx, float *dt, int accum) {
  GRID_LOOP(i, n) {
    float g = k * (x[i] - t[i]);
    if (w) g *= w[i];
    if (dx) dx[i] = accum ? dx[i] + g : g;
    if (dt) dt[i] = accum ? dt[i] - g : -g;
  }
}

static csal3d_status cu_mse_loss(c3_engine *e, int64_t n, const float *x, const float *t,
                                 const float *w, float grad_scale, float *dx, float *dt,
                                 int accum, double *loss) {
  CU_CHECK_ARG(e, n >= 1 && x && t && loss, "mse_loss: bad arguments");
  double r[2];
  CU_TRY(scalar_sum(e, 2, n, x, t, w, r));
  double W = w ? r[1] : (double)n;
  *loss = W > 0.0 ? r[0] / W : 0.0;
  float k = W > 0.0 ? (float)(2.0 * grad_scale / W) : 0.0f;
  if (dx || dt) {
    k_mse_grad LAUNCH(n)(n, x, t, w, k, dx, dt, accum);
    CU_LAUNCHED(e, "mse_loss");
  }
  return CSAL3D_OK;
}

__global__ void k_l1_grad(int64_t n, const float *x, const float *y, float k, float *dx,
                          float *dy, int accum) {
  GRID_LOOP(i, n) {
    float diff = x[i] - y[i];
    float g = diff > 0.0f ? k : diff < 0.0f ? -k : 0.0f;
    if (dx) dx[i] = accum ? dx[i] + g : g;
    if (dy) dy[i] = accum ? dy[i] - g : -g;
  }
}

static csal3d_status cu_l1_loss(c3_engine *e, int64_t n, const float *x, const float *y,
                                float grad_scale, float *dx, float *dy, int accum,
                                double *loss) {
  CU_CHECK_ARG(e, n >= 1 && x && y && loss, "l1_loss: bad arguments");
  double r[2];
  CU_TRY(scalar_sum(e, 3, n, x, y, NULL, r));
  *loss = r[0] / (double)n;
  float k = (float)(grad_scale / (double)n);
  if (dx || dy) {
    k_l1_grad LAUNCH(n)(n, x, y, k, dx, dy, accum);
    CU_LAUNCHED(e, "l1_loss");
  }
  return CSAL3D_OK;
}

/* One thread per row: log-sum-exp in double, the row's loss into rl[r], the gradient. */
__global__ void k_ce_rows(int64_t rows, int64_t classes, const float *logits,
                          const int32_t *labels, float grad_scale, float *dlogits, int accum,
                          double *rl) {
  GRID_LOOP(r, rows) {
    const float *l = logits + r * classes;
    int32_t lab = labels[r];
    double mx = l[0];
    for (int64_t c = 1; c < classes; c++) mx = fmax(mx, (double)l[c]);
    double z = 0.0;
    for (int64_t c = 0; c < classes; c++) z += exp((double)l[c] - mx);
    double lse = mx + log(z);
    rl[r] = lse - (double)l[lab];
    if (dlogits) {
      float *g = dlogits + r * classes;
      for (int64_t c = 0; c < classes; c++) {
        double p = exp((double)l[c] - lse) - (c == lab ? 1.0 : 0.0);
        float v = (float)(grad_scale * p / (double)rows);
        g[c] = accum ? g[c] + v : v;
      }
    }
  }
}

struct f_rows {
  const double *v;
  __device__ double2 operator()(int64_t o, int64_t m, int64_t i) const {
    return make_double2(v[m], 0.0);
  }
};

static csal3d_status cu_cross_entropy(c3_engine *e, int64_t rows, int64_t classes,
                                      const float *logits, const int32_t *labels,
                                      float grad_scale, float *dlogits, int accum,
                                      double *loss) {
  CU_CHECK_ARG(e, rows >= 1 && classes >= 1 && logits && labels && loss,
               "cross_entropy: bad arguments");
  /* labels live on the device: check them on the host (rows is small: one per
   * observation) so that a bad label is an error, not an out-of-bounds read */
  int32_t stack_buf[256];
  int32_t *lab = rows <= 256 ? stack_buf : new (std::nothrow) int32_t[rows];
  if (!lab) return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "cross_entropy: host memory");
  c3cu_state *st = c3cu(e);
  cudaError_t rc = cudaMemcpyAsync(lab, labels, (size_t)rows * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, st->stream);
  if (rc == cudaSuccess) rc = cudaStreamSynchronize(st->stream);
  csal3d_status s = CSAL3D_OK;
  if (rc != cudaSuccess) s = c3cu_cuda_error(e, rc, "cross_entropy: reading labels");
  for (int64_t r = 0; s == CSAL3D_OK && r < rows; r++)
    if (lab[r] < 0 || lab[r] >= classes)
      s = c3cu_error(e, CSAL3D_ERR_INVALID_ARGUMENT,
                     "cross_entropy: label %d of row %lld is outside [0, %lld)", (int)lab[r],
                     (long long)r, (long long)classes);
  if (lab != stack_buf) delete[] lab;
  CU_TRY(s);
  double *rl;
  CU_TRY(c3cu_scratch(e, C3CU_SLOT_A3, (size_t)rows * sizeof(double), (void **)&rl));
  k_ce_rows LAUNCH(rows)(rows, classes, logits, labels, grad_scale, dlogits, accum, rl);
  CU_LAUNCHED(e, "cross_entropy");
  f_rows f = {rl};
  g_scalar g = {st->dscalar};
  CU_TRY(c3cu_reduce_mid(e, 1, rows, 1, f, g, "cross_entropy"));
  double r2[2];
  CU_TRY(c3cu_read_scalars(e, 2, r2));
  *loss = r2[0] / (double)rows;
  return CSAL3D_OK;
}

/* ---- AdamW --------------------------------------------------------------------------------- */

__global__ void k_adamw(int64_t n, float *p, const float *g, float *m, float *v, float gs,
                        float decay, float b1, float b2, float step_size, float bc2_sqrt,
                        float eps) {
  GRID_LOOP(i, n) {
    float gi = g[i] * gs;
    float pi = p[i] * decay;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
  }
}

static csal3d_status cu_adamw(c3_engine *e, const c3_adamw_desc *d, int64_t n, float *p,
                              const float *g, float *m, float *v) {
  CU_CHECK_ARG(e, d && n >= 0 && (n == 0 || (p && g && m && v)), "adamw: bad arguments");
  CU_CHECK_ARG(e, d->step >= 1, "adamw: step %lld (must be >= 1)", (long long)d->step);
  if (!n) return CSAL3D_OK;
  double bc1 = 1.0 - pow((double)d->beta1, (double)d->step);
  double bc2 = 1.0 - pow((double)d->beta2, (double)d->step);
  float step_size = (float)(d->lr / bc1);
  float bc2_sqrt = (float)sqrt(bc2);
  float decay = 1.0f - d->lr * d->weight_decay;
  k_adamw LAUNCH(n)(n, p, g, m, v, d->grad_scale, decay, d->beta1, d->beta2, step_size,
                    bc2_sqrt, d->eps);
  CU_LAUNCHED(e, "adamw");
  return CSAL3D_OK;
}

static csal3d_status cu_reduce_sum(c3_engine *e, int64_t outer, int64_t mid, int64_t inner,
                                   float alpha, const float *x, float *y, int accum) {
  return c3cu_reduce_sum(e, outer, mid, inner, alpha, x, y, accum);
}

static csal3d_status cu_broadcast(c3_engine *e, int64_t outer, int64_t mid, int64_t inner,
                                  float alpha, const float *x, float *y, int accum) {
  return c3cu_broadcast(e, outer, mid, inner, alpha, x, y, accum);
}

void c3cu_fill_elementwise_ops(c3_engine *e) {
  e->add = cu_add;
  e->mul = cu_mul;
  e->axpby = cu_axpby;
  e->scale = cu_scale;
  e->reduce_sum = cu_reduce_sum;
  e->broadcast = cu_broadcast;
  e->sum = cu_sum;
  e->dot = cu_dot;
  e->mse_loss = cu_mse_loss;
  e->cross_entropy = cu_cross_entropy;
  e->l1_loss = cu_l1_loss;
  e->adamw = cu_adamw;
}
