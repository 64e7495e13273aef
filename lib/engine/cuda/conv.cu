/* 3-D convolutions on cuDNN: forward, backward data, backward filter (+ the bias
 * gradient as a deterministic reduction of our own).
 *
 * Tensors keep their c3_layout: NCDHW or NDHWC become 5-D cuDNN descriptors with the
 * matching strides; weights are PyTorch's [out, in, kd, kh, kw] (cuDNN's NCHW filter
 * format). For each (shape, layouts, direction) a plan is made once and cached: the
 * first deterministic algorithm of cuDNN's heuristic ranking that is supported, fits
 * the workspace limit and, in fp32 mode, does not use TF32. If cuDNN supports no
 * algorithm for the given layouts, the plan converts the tensors to NCDHW through
 * scratch buffers and back ("transposed" path).
 *
 * Convolutions whose kernel equals the stride with no padding (kernel 1; the patch
 * embedding) are GEMMs on cuBLAS instead (see gemm_conv_ok below).
 *
 * Precision: fp32 -> CUDNN_FMA_MATH (float32 arithmetic); tf32 and bf16 ->
 * CUDNN_DEFAULT_MATH (TF32 tensor cores allowed on float32 data). */
#include <string.h>

#include <map>
#include <new>
#include <tuple>

#include "engine/cuda/cuda_internal.h"
#include "engine/cuda/reduce.cuh"

#define C3CU_CONV_WS_LIMIT ((size_t)2 << 30) /* workspace bytes a plan may ask for */

enum { CONV_FWD = 0, CONV_BWD_DATA = 1, CONV_BWD_FILTER = 2 };

typedef std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int, int,
                   int, int, int, int, int, int, int, int>
    conv_key;

struct conv_plan {
  int transposed;  /* 1: through NCDHW copies */
  int algo;
  size_t ws;
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
};

struct c3cu_conv_cache {
  std::map<conv_key, conv_plan *> plans;
};

static conv_key make_key(const c3_conv3d_desc *d, int kind, int precision) {
  return conv_key(d->n, d->c_in, d->c_out, d->in[0], d->in[1], d->in[2], d->k[0], d->k[1],
                  d->k[2], d->stride[0], d->stride[1], d->stride[2], d->pad[0], d->pad[1],
                  d->pad[2], (int)d->src_layout * 2 + (int)d->dst_layout, kind, precision);
}

static void plan_free(conv_plan *p) {
  if (!p) return;
  if (p->x) cudnnDestroyTensorDescriptor(p->x);
  if (p->y) cudnnDestroyTensorDescriptor(p->y);
  if (p->w) cudnnDestroyFilterDescriptor(p->w);
  if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
  delete p;
}

void c3cu_conv_close(c3_engine *e) {
  c3cu_state *st = c3cu(e);
  if (!st->conv) return;
  for (auto &kv : st->conv->plans) plan_free(kv.second);
  delete st->conv;
  st->conv = NULL;
}

static csal3d_status set_tensor(c3_engine *e, cudnnTensorDescriptor_t t, int64_t n, int64_t c,
                                const int64_t *sp, c3_layout layout) {
  int64_t S = sp[0] * sp[1] * sp[2];
  int64_t dims64[5] = {n, c, sp[0], sp[1], sp[2]}, str64[5];
  if (layout == C3_LAYOUT_NCDHW) {
    int64_t s[5] = {c * S, S, sp[1] * sp[2], sp[2], 1};
    memcpy(str64, s, sizeof s);
  } else {
    int64_t s[5] = {S * c, 1, sp[1] * sp[2] * c, sp[2] * c, c};
    memcpy(str64, s, sizeof s);
  }
  if (n * c * S > 2147483647LL)
    return c3cu_error(e, CSAL3D_ERR_UNSUPPORTED,
                      "conv3d: a tensor of %lld elements is beyond cuDNN's 32-bit sizes; "
                      "split the batch",
                      (long long)(n * c * S));
  int dims[5], str[5];
  for (int i = 0; i < 5; i++) {
    dims[i] = (int)dims64[i];
    str[i] = (int)str64[i];
  }
  CU_DNN(e, cudnnSetTensorNdDescriptor(t, CUDNN_DATA_FLOAT, 5, dims, str), "conv3d tensor");
  return CSAL3D_OK;
}

static int math_ok(int precision, cudnnMathType_t m) {
  if (precision != C3CU_FP32) return 1;
  return m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
}

/* The workspace the chosen algorithm needs with the descriptor's final math type (the
 * heuristics' figure is kept when it is larger). */
static void query_ws(c3_engine *e, int kind, conv_plan *p) {
  c3cu_state *st = c3cu(e);
  size_t ws = 0;
  cudnnStatus_t r;
  if (kind == CONV_FWD)
    r = cudnnGetConvolutionForwardWorkspaceSize(st->dnn, p->x, p->w, p->conv, p->y,
                                                (cudnnConvolutionFwdAlgo_t)p->algo, &ws);
  else if (kind == CONV_BWD_DATA)
    r = cudnnGetConvolutionBackwardDataWorkspaceSize(st->dnn, p->w, p->y, p->conv, p->x,
                                                     (cudnnConvolutionBwdDataAlgo_t)p->algo, &ws);
  else
    r = cudnnGetConvolutionBackwardFilterWorkspaceSize(
        st->dnn, p->x, p->y, p->conv, p->w, (cudnnConvolutionBwdFilterAlgo_t)p->algo, &ws);
  if (r == CUDNN_STATUS_SUCCESS && ws > p->ws) p->ws = ws;
}

/* Picks the algorithm for plan p (descriptors set). Returns UNSUPPORTED when none. */
static csal3d_status choose_algo(c3_engine *e, int kind, conv_plan *p) {
  c3cu_state *st = c3cu(e);
  cudnnMathType_t math = st->precision == C3CU_FP32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  CU_DNN(e, cudnnSetConvolutionMathType(p->conv, math), "conv3d math type");
  int count = 0;
  if (kind == CONV_FWD) {
    cudnnConvolutionFwdAlgoPerf_t r[16];
    CU_DNN(e,
           cudnnGetConvolutionForwardAlgorithm_v7(st->dnn, p->x, p->w, p->conv, p->y, 16,
                                                  &count, r),
           "conv3d forward algorithm");
    for (int i = 0; i < count; i++)
      if (r[i].status == CUDNN_STATUS_SUCCESS && r[i].determinism == CUDNN_DETERMINISTIC &&
          r[i].memory <= C3CU_CONV_WS_LIMIT && math_ok(st->precision, r[i].mathType)) {
        p->algo = r[i].algo;
        p->ws = r[i].memory;
        if (st->precision != C3CU_FP32) cudnnSetConvolutionMathType(p->conv, r[i].mathType);
        return CSAL3D_OK;
      }
  } else if (kind == CONV_BWD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t r[16];
    CU_DNN(e,
           cudnnGetConvolutionBackwardDataAlgorithm_v7(st->dnn, p->w, p->y, p->conv, p->x, 16,
                                                       &count, r),
           "conv3d backward-data algorithm");
    for (int i = 0; i < count; i++)
      if (r[i].status == CUDNN_STATUS_SUCCESS && r[i].determinism == CUDNN_DETERMINISTIC &&
          r[i].memory <= C3CU_CONV_WS_LIMIT && math_ok(st->precision, r[i].mathType)) {
        p->algo = r[i].algo;
        p->ws = r[i].memory;
        if (st->precision != C3CU_FP32) cudnnSetConvolutionMathType(p->conv, r[i].mathType);
        return CSAL3D_OK;
      }
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t r[16];
    CU_DNN(e,
           cudnnGetConvolutionBackwardFilterAlgorithm_v7(st->dnn, p->x, p->y, p->conv, p->w,
                                                         16, &count, r),
           "conv3d backward-filter algorithm");
    for (int i = 0; i < count; i++)
      if (r[i].status == CUDNN_STATUS_SUCCESS && r[i].determinism == CUDNN_DETERMINISTIC &&
          r[i].memory <= C3CU_CONV_WS_LIMIT && math_ok(st->precision, r[i].mathType)) {
        p->algo = r[i].algo;
        p->ws = r[i].memory;
        if (st->precision != C3CU_FP32) cudnnSetConvolutionMathType(p->conv, r[i].mathType);
        return CSAL3D_OK;
      }
  }
  return CSAL3D_ERR_UNSUPPORTED;
}

static csal3d_status make_plan(c3_engine *e, const c3_conv3d_desc *d, int kind, int transposed,
                               conv_plan **out) {
  *out = NULL;
  conv_plan *p = new (std::nothrow) conv_plan();
  if (!p) return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "conv3d: host memory");
  memset(p, 0, sizeof *p);
  p->transposed = transposed;
  csal3d_status s = CSAL3D_OK;
#define PTRY(expr)                                                             \
  do {                                                                         \
    s = (expr);                                                                \
    if (s != CSAL3D_OK) {                                                      \
      plan_free(p);                                                            \
      return s;                                                                \
    }                                                                          \
  } while (0)
#define PDNN(call, what)                                                       \
  do {                                                                         \
    cudnnStatus_t r_ = (call);                                                 \
    if (r_ != CUDNN_STATUS_SUCCESS) PTRY(c3cu_dnn_error(e, r_, (what)));       \
  } while (0)
  PDNN(cudnnCreateTensorDescriptor(&p->x), "conv3d descriptor");
  PDNN(cudnnCreateTensorDescriptor(&p->y), "conv3d descriptor");
  PDNN(cudnnCreateFilterDescriptor(&p->w), "conv3d descriptor");
  PDNN(cudnnCreateConvolutionDescriptor(&p->conv), "conv3d descriptor");
  int64_t out_sp[3];
  for (int a = 0; a < 3; a++) out_sp[a] = c3_conv3d_out_side(d, a);
  c3_layout sl = transposed ? C3_LAYOUT_NCDHW : d->src_layout;
  c3_layout dl = transposed ? C3_LAYOUT_NCDHW : d->dst_layout;
  PTRY(set_tensor(e, p->x, d->n, d->c_in, d->in, sl));
  PTRY(set_tensor(e, p->y, d->n, d->c_out, out_sp, dl));
  int wd[5] = {(int)d->c_out, (int)d->c_in, d->k[0], d->k[1], d->k[2]};
  PDNN(cudnnSetFilterNdDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 5, wd),
       "conv3d filter descriptor");
  int dil[3] = {1, 1, 1};
  PDNN(cudnnSetConvolutionNdDescriptor(p->conv, 3, d->pad, d->stride, dil,
                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
       "conv3d convolution descriptor");
  s = choose_algo(e, kind, p);
  if (s != CSAL3D_OK) {
    plan_free(p);
    return s;
  }
  query_ws(e, kind, p);
  *out = p;
  return CSAL3D_OK;
#undef PTRY
#undef PDNN
}

/* The transposed path differs from the direct one only for channels-last tensors. */
static int can_transpose(const c3_conv3d_desc *d) {
  return d->src_layout != C3_LAYOUT_NCDHW || d->dst_layout != C3_LAYOUT_NCDHW;
}

/* A failure of the direct plan worth retrying through NCDHW copies. */
static int retry(csal3d_status s, const conv_plan *p, const c3_conv3d_desc *d) {
  return s != CSAL3D_OK && s != CSAL3D_ERR_OUT_OF_MEMORY && !p->transposed && can_transpose(d);
}

static csal3d_status get_plan(c3_engine *e, const c3_conv3d_desc *d, int kind,
                              conv_plan **out) {
  c3cu_state *st = c3cu(e);
  if (!st->conv) {
    st->conv = new (std::nothrow) c3cu_conv_cache();
    if (!st->conv) return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "conv3d: host memory");
  }
  conv_key key = make_key(d, kind, st->precision);
  auto it = st->conv->plans.find(key);
  if (it != st->conv->plans.end()) {
    *out = it->second;
    return CSAL3D_OK;
  }
  conv_plan *p = NULL;
  /* Mixed layouts (NCDHW in, NDHWC out or back) go through NCDHW copies: on an H100
   * with cuDNN 9.19 a direct float32 backward-filter plan for x NCDHW / dy NDHWC
   * (1x64^3 input, 2 -> 48 channels, kernel 2, stride 2) returned wrong weights. */
  int mixed = d->src_layout != d->dst_layout;
  csal3d_status s = make_plan(e, d, kind, mixed, &p);
  if (s != CSAL3D_OK && s != CSAL3D_ERR_OUT_OF_MEMORY && !mixed && can_transpose(d))
    s = make_plan(e, d, kind, 1, &p);
  if (s == CSAL3D_ERR_UNSUPPORTED)
    return c3cu_error(e, CSAL3D_ERR_UNSUPPORTED,
                      "conv3d: cuDNN offers no deterministic algorithm for %s of %lldx%lld "
                      "channels, kernel %dx%dx%d, stride %d, input %lldx%lldx%lld",
                      kind == CONV_FWD ? "forward" : kind == CONV_BWD_DATA ? "backward data"
                                                                           : "backward filter",
                      (long long)d->c_in, (long long)d->c_out, d->k[0], d->k[1], d->k[2],
                      d->stride[0], (long long)d->in[0], (long long)d->in[1],
                      (long long)d->in[2]);
  CU_TRY(s);
  try {
    st->conv->plans[key] = p;
  } catch (...) {
    plan_free(p);
    return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "conv3d: host memory");
  }
  *out = p;
  return CSAL3D_OK;
}

/* cuDNN's heuristics can rank an algorithm that the call then refuses for strided
 * (channels-last) tensors: replace the plan by the transposed one. */
static csal3d_status replan_transposed(c3_engine *e, const c3_conv3d_desc *d, int kind,
                                       conv_plan **out) {
  c3cu_state *st = c3cu(e);
  conv_key key = make_key(d, kind, st->precision);
  conv_plan *p = NULL;
  CU_TRY(make_plan(e, d, kind, 1, &p));
  auto it = st->conv->plans.find(key);
  if (it != st->conv->plans.end()) {
    plan_free(it->second);
    it->second = p;
  } else {
    plan_free(p);
    return c3cu_error(e, CSAL3D_ERR_INTERNAL, "conv3d: plan cache lost a plan");
  }
  *out = p;
  return CSAL3D_OK;
}

static csal3d_status conv_check(c3_engine *e, const c3_conv3d_desc *d, const char *op) {
  CU_CHECK_ARG(e, d && d->n >= 1 && d->c_in >= 1 && d->c_out >= 1, "%s: bad sizes", op);
  for (int a = 0; a < 3; a++) {
    CU_CHECK_ARG(e, d->in[a] >= 1 && d->k[a] >= 1 && d->stride[a] >= 1 && d->pad[a] >= 0,
                 "%s: bad geometry on axis %d", op, a);
    CU_CHECK_ARG(e, d->in[a] + 2 * (int64_t)d->pad[a] >= d->k[a],
                 "%s: kernel %d longer than the padded input %lld on axis %d", op, d->k[a],
                 (long long)(d->in[a] + 2 * d->pad[a]), a);
  }
  CU_CHECK_ARG(e,
               (d->src_layout == C3_LAYOUT_NCDHW || d->src_layout == C3_LAYOUT_NDHWC) &&
                   (d->dst_layout == C3_LAYOUT_NCDHW || d->dst_layout == C3_LAYOUT_NDHWC),
               "%s: bad layout", op);
  return CSAL3D_OK;
}

static int64_t spatial_in(const c3_conv3d_desc *d) { return d->in[0] * d->in[1] * d->in[2]; }
static int64_t spatial_out(const c3_conv3d_desc *d) {
  return c3_conv3d_out_side(d, 0) * c3_conv3d_out_side(d, 1) * c3_conv3d_out_side(d, 2);
}

/* NDHWC [n, S, c] -> NCDHW [n, c, S] and back (accum: +=) */
static csal3d_status to_ncdhw(c3_engine *e, int64_t n, int64_t c, int64_t S, const float *x,
                              float *y) {
  return c3cu_transpose(e, n, S, c, x, y, 0);
}
static csal3d_status from_ncdhw(c3_engine *e, int64_t n, int64_t c, int64_t S, const float *x,
                                float *y, int accum) {
  return c3cu_transpose(e, n, c, S, x, y, accum);
}

/* y[n, c, s] += bias[c] (NCDHW) */
__global__ void k_bias_ncdhw(int64_t total, int64_t C, int64_t S, const float *bias, float *y) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x)
    y[t] += bias[(t / S) % C];
}

static csal3d_status run_fwd(c3_engine *e, const c3_conv3d_desc *d, conv_plan *p,
                             const float *x, const float *w, const float *bias, float *y) {
  c3cu_state *st = c3cu(e);
  int64_t Si = spatial_in(d), So = spatial_out(d);
  const float *xx = x;
  float *yy = y;
  if (p->transposed) {
    float *t1, *t2;
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_T1, (size_t)(d->n * d->c_in * Si) * sizeof(float),
                        (void **)&t1));
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_T2, (size_t)(d->n * d->c_out * So) * sizeof(float),
                        (void **)&t2));
    if (d->src_layout == C3_LAYOUT_NDHWC) {
      CU_TRY(to_ncdhw(e, d->n, d->c_in, Si, x, t1));
      xx = t1;
    }
    if (d->dst_layout == C3_LAYOUT_NDHWC) yy = t2;
  }
  void *ws = NULL;
  if (p->ws) CU_TRY(c3cu_scratch(e, C3CU_SLOT_WS, p->ws, &ws));
  float one = 1.0f, zero = 0.0f;
  CU_DNN(e,
         cudnnConvolutionForward(st->dnn, &one, p->x, xx, p->w, w, p->conv,
                                 (cudnnConvolutionFwdAlgo_t)p->algo, ws, p->ws, &zero, p->y, yy),
         "conv3d_fwd");
  c3_layout yl = p->transposed ? C3_LAYOUT_NCDHW : d->dst_layout;
  if (bias) {
    if (yl == C3_LAYOUT_NDHWC) {
      CU_TRY(c3cu_broadcast(e, 1, d->n * So, d->c_out, 1.0f, bias, yy, 1));
    } else {
      int64_t total = d->n * d->c_out * So;
      k_bias_ncdhw<<<c3cu_blocks(total, 256), 256, 0, st->stream>>>(total, d->c_out, So, bias,
                                                                     yy);
      CU_LAUNCHED(e, "conv3d_fwd bias");
    }
  }
  if (yy != y) CU_TRY(from_ncdhw(e, d->n, d->c_out, So, yy, y, 0));
  return CSAL3D_OK;
}

static csal3d_status run_bwd_data(c3_engine *e, const c3_conv3d_desc *d, conv_plan *p,
                                  const float *dy, const float *w, float *dx, int accum) {
  c3cu_state *st = c3cu(e);
  int64_t Si = spatial_in(d), So = spatial_out(d);
  const float *gy = dy;
  float *gx = dx;
  if (p->transposed) {
    float *t1, *t2;
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_T1, (size_t)(d->n * d->c_in * Si) * sizeof(float),
                        (void **)&t1));
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_T2, (size_t)(d->n * d->c_out * So) * sizeof(float),
                        (void **)&t2));
    if (d->dst_layout == C3_LAYOUT_NDHWC) {
      CU_TRY(to_ncdhw(e, d->n, d->c_out, So, dy, t2));
      gy = t2;
    }
    if (d->src_layout == C3_LAYOUT_NDHWC) gx = t1;
  }
  void *ws = NULL;
  if (p->ws) CU_TRY(c3cu_scratch(e, C3CU_SLOT_WS, p->ws, &ws));
  float one = 1.0f, beta = (accum && gx == dx) ? 1.0f : 0.0f;
  CU_DNN(e,
         cudnnConvolutionBackwardData(st->dnn, &one, p->w, w, p->y, gy, p->conv,
                                      (cudnnConvolutionBwdDataAlgo_t)p->algo, ws, p->ws, &beta,
                                      p->x, gx),
         "conv3d_bwd_data");
  if (gx != dx) CU_TRY(from_ncdhw(e, d->n, d->c_in, Si, gx, dx, accum));
  return CSAL3D_OK;
}

/* dbias[c] += sum over n, s of dy[n, c, s] (NCDHW) */
struct f_bias_ncdhw {
  const float *dy;
  int64_t C, S;
  __device__ double2 operator()(int64_t o, int64_t m, int64_t i) const {
    return make_double2((double)dy[((m / S) * C + o) * S + m % S], 0.0);
  }
};
struct g_add {
  float *y;
  __device__ void operator()(int64_t t, double2 s) const { y[t] += (float)s.x; }
};

static csal3d_status run_bwd_filter(c3_engine *e, const c3_conv3d_desc *d, conv_plan *p,
                                    const float *x, const float *dy, float *dw) {
  c3cu_state *st = c3cu(e);
  int64_t Si = spatial_in(d), So = spatial_out(d);
  const float *xx = x, *gy = dy;
  if (p->transposed) {
    float *t1, *t2;
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_T1, (size_t)(d->n * d->c_in * Si) * sizeof(float),
                        (void **)&t1));
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_T2, (size_t)(d->n * d->c_out * So) * sizeof(float),
                        (void **)&t2));
    if (d->src_layout == C3_LAYOUT_NDHWC) {
      CU_TRY(to_ncdhw(e, d->n, d->c_in, Si, x, t1));
      xx = t1;
    }
    if (d->dst_layout == C3_LAYOUT_NDHWC) {
      CU_TRY(to_ncdhw(e, d->n, d->c_out, So, dy, t2));
      gy = t2;
    }
  }
  void *ws = NULL;
  if (p->ws) CU_TRY(c3cu_scratch(e, C3CU_SLOT_WS, p->ws, &ws));
  float one = 1.0f;
  CU_DNN(e,
         cudnnConvolutionBackwardFilter(st->dnn, &one, p->x, xx, p->y, gy, p->conv,
                                        (cudnnConvolutionBwdFilterAlgo_t)p->algo, ws, p->ws,
                                        &one, p->w, dw),
         "conv3d_bwd_weights");
  return CSAL3D_OK;
}

/* ---- convolutions with kernel == stride and no padding, as GEMMs ----------------------
 * The windows of such a convolution tile the input without overlap: kernel 1 (the
 * decoder's last conv) and the patch embedding (kernel 2, stride 2). Patches are rows
 * P[(n, o0, o1, o2), (i, k0, k1, k2)] (the weight's flattening [out, in*kd*kh*kw]),
 * gathered into scratch (kernel > 1) or read in place (kernel 1: an NDHWC input is
 * already [N*S, C_in]; an NCDHW one is [C_in, S] per image). */

static int gemm_conv_ok(const c3_conv3d_desc *d) {
  for (int a = 0; a < 3; a++)
    if (d->k[a] != d->stride[a] || d->pad[a] != 0 || d->in[a] % d->k[a] != 0) return 0;
  return 1;
}

struct patch_geom {
  int64_t N, C, O[3], k[3], in[3], kvol, kin;
  int ncdhw;
  __device__ int64_t x_at(int64_t n, int64_t i, int64_t z0, int64_t z1, int64_t z2) const {
    return ncdhw ? (((n * C + i) * in[0] + z0) * in[1] + z1) * in[2] + z2
                 : (((n * in[0] + z0) * in[1] + z1) * in[2] + z2) * C + i;
  }
};

static patch_geom patch_make(const c3_conv3d_desc *d) {
  patch_geom g;
  g.N = d->n;
  g.C = d->c_in;
  g.kvol = 1;
  for (int a = 0; a < 3; a++) {
    g.k[a] = d->k[a];
    g.in[a] = d->in[a];
    g.O[a] = d->in[a] / d->k[a];
    g.kvol *= d->k[a];
  }
  g.kin = g.C * g.kvol;
  g.ncdhw = d->src_layout == C3_LAYOUT_NCDHW;
  return g;
}

/* P[row, col] = x[...] */
__global__ void k_patchify(patch_geom g, int64_t total, const float *x, float *P) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    int64_t col = t % g.kin, row = t / g.kin;
    int64_t i = col / g.kvol, kk = col % g.kvol;
    int64_t k2 = kk % g.k[2], k1 = (kk / g.k[2]) % g.k[1], k0 = kk / (g.k[1] * g.k[2]);
    int64_t o2 = row % g.O[2], o1 = (row / g.O[2]) % g.O[1], o0 = (row / (g.O[1] * g.O[2])) % g.O[0];
    int64_t n = row / (g.O[0] * g.O[1] * g.O[2]);
    P[t] = x[g.x_at(n, i, o0 * g.k[0] + k0, o1 * g.k[1] + k1, o2 * g.k[2] + k2)];
  }
}

/* dx (+)= the inverse gather of dP (a bijection: every element of x is in one patch) */
__global__ void k_unpatchify(patch_geom g, int64_t total, const float *dP, float *dx,
                             int accum) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    int64_t n, i, z0, z1, z2, r = t;
    if (g.ncdhw) {
      z2 = r % g.in[2]; r /= g.in[2];
      z1 = r % g.in[1]; r /= g.in[1];
      z0 = r % g.in[0]; r /= g.in[0];
      i = r % g.C; n = r / g.C;
    } else {
      i = r % g.C; r /= g.C;
      z2 = r % g.in[2]; r /= g.in[2];
      z1 = r % g.in[1]; r /= g.in[1];
      z0 = r % g.in[0]; n = r / g.in[0];
    }
    int64_t row = ((n * g.O[0] + z0 / g.k[0]) * g.O[1] + z1 / g.k[1]) * g.O[2] + z2 / g.k[2];
    int64_t col = i * g.kvol + ((z0 % g.k[0]) * g.k[1] + z1 % g.k[1]) * g.k[2] + z2 % g.k[2];
    float v = dP[row * g.kin + col];
    dx[t] = accum ? dx[t] + v : v;
  }
}

/* How the patches are held: rows [N*S', kin] (pr = 1), or kernel 1 on NCDHW, [C_in, S]
 * per image (pr = 0). P is x itself or the scratch it was gathered into. */
static csal3d_status gemm_patches(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                                  const float **P, int *pr) {
  patch_geom g = patch_make(d);
  if (g.kvol == 1) {
    *P = x;
    *pr = d->src_layout == C3_LAYOUT_NDHWC;
    return CSAL3D_OK;
  }
  int64_t total = g.N * g.O[0] * g.O[1] * g.O[2] * g.kin;
  float *buf;
  CU_TRY(c3cu_scratch(e, C3CU_SLOT_T1, (size_t)total * sizeof(float), (void **)&buf));
  k_patchify<<<c3cu_blocks(total, 256), 256, 0, c3cu(e)->stream>>>(g, total, x, buf);
  CU_LAUNCHED(e, "conv3d patches");
  *P = buf;
  *pr = 1;
  return CSAL3D_OK;
}

static csal3d_status gemm_fwd(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                              const float *w, const float *bias, float *y) {
  patch_geom g = patch_make(d);
  const int64_t N = d->n, Co = d->c_out, Ci = d->c_in, S = g.O[0] * g.O[1] * g.O[2], K = g.kin;
  const float *P;
  int pr;
  CU_TRY(gemm_patches(e, d, x, &P, &pr));
  if (d->dst_layout == C3_LAYOUT_NDHWC) {
    if (pr) /* y [N*S, Co] = P W^T */
      CU_TRY(c3cu_gemm(e, 0, 1, N * S, Co, K, 1.0f, P, K, 0, w, K, 0, 0.0f, y, Co, 0, 1, 0));
    else /* y_n [S, Co] = X_n^T W^T */
      CU_TRY(c3cu_gemm(e, 1, 1, S, Co, Ci, 1.0f, P, S, Ci * S, w, Ci, 0, 0.0f, y, Co, S * Co,
                       N, 0));
    if (bias) CU_TRY(c3cu_broadcast(e, 1, N * S, Co, 1.0f, bias, y, 1));
  } else {
    if (pr) /* y_n [Co, S] = W P_n^T */
      CU_TRY(c3cu_gemm(e, 0, 1, Co, S, K, 1.0f, w, K, 0, P, K, S * K, 0.0f, y, S, Co * S, N, 0));
    else /* y_n = W X_n */
      CU_TRY(c3cu_gemm(e, 0, 0, Co, S, Ci, 1.0f, w, Ci, 0, P, S, Ci * S, 0.0f, y, S, Co * S,
                       N, 0));
    if (bias) {
      int64_t total = N * Co * S;
      k_bias_ncdhw<<<c3cu_blocks(total, 256), 256, 0, c3cu(e)->stream>>>(total, Co, S, bias, y);
      CU_LAUNCHED(e, "conv3d_fwd bias");
    }
  }
  return CSAL3D_OK;
}

static csal3d_status gemm_bwd_data(c3_engine *e, const c3_conv3d_desc *d, const float *dy,
                                   const float *w, float *dx, int accum) {
  patch_geom g = patch_make(d);
  const int64_t N = d->n, Co = d->c_out, Ci = d->c_in, S = g.O[0] * g.O[1] * g.O[2], K = g.kin;
  const int ndhwc_out = d->dst_layout == C3_LAYOUT_NDHWC;
  if (g.kvol == 1 && d->src_layout == C3_LAYOUT_NCDHW) {
    float beta = accum ? 1.0f : 0.0f;
    if (ndhwc_out) /* dX_n [Ci, S] = W^T dY_n^T */
      CU_TRY(c3cu_gemm(e, 1, 1, Ci, S, Co, 1.0f, w, Ci, 0, dy, Co, S * Co, beta, dx, S, Ci * S,
                       N, 0));
    else /* dX_n = W^T dY_n */
      CU_TRY(c3cu_gemm(e, 1, 0, Ci, S, Co, 1.0f, w, Ci, 0, dy, S, Co * S, beta, dx, S, Ci * S,
                       N, 0));
    return CSAL3D_OK;
  }
  /* rows: dP [N*S, K] = dY W, straight into dx for kernel 1 (NDHWC), else into scratch */
  float *dP = dx;
  float beta = accum ? 1.0f : 0.0f;
  if (g.kvol > 1) {
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_T2, (size_t)(N * S * K) * sizeof(float), (void **)&dP));
    beta = 0.0f;
  }
  if (ndhwc_out)
    CU_TRY(c3cu_gemm(e, 0, 0, N * S, K, Co, 1.0f, dy, Co, 0, w, K, 0, beta, dP, K, 0, 1, 0));
  else /* dP_n [S, K] = dY_n^T W */
    CU_TRY(c3cu_gemm(e, 1, 0, S, K, Co, 1.0f, dy, S, Co * S, w, K, 0, beta, dP, K, S * K, N, 0));
  if (g.kvol > 1) {
    int64_t total = N * Ci * d->in[0] * d->in[1] * d->in[2];
    k_unpatchify<<<c3cu_blocks(total, 256), 256, 0, c3cu(e)->stream>>>(g, total, dP, dx, accum);
    CU_LAUNCHED(e, "conv3d_bwd_data patches");
  }
  return CSAL3D_OK;
}

static csal3d_status gemm_bwd_weights(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                                      const float *dy, float *dw) {
  patch_geom g = patch_make(d);
  const int64_t N = d->n, Co = d->c_out, Ci = d->c_in, S = g.O[0] * g.O[1] * g.O[2], K = g.kin;
  const float *P;
  int pr;
  CU_TRY(gemm_patches(e, d, x, &P, &pr));
  if (pr && d->dst_layout == C3_LAYOUT_NDHWC) /* dW += dY^T P */
    return c3cu_gemm(e, 1, 0, Co, K, N * S, 1.0f, dy, Co, 0, P, K, 0, 1.0f, dw, K, 0, 1, 0);
  /* one product per image, added in image order */
  for (int64_t n = 0; n < N; n++) {
    if (pr) /* dW += dY_n P_n (dY_n [Co, S]) */
      CU_TRY(c3cu_gemm(e, 0, 0, Co, K, S, 1.0f, dy + n * Co * S, S, 0, P + n * S * K, K, 0, 1.0f,
                       dw, K, 0, 1, 0));
    else if (d->dst_layout == C3_LAYOUT_NCDHW) /* dW += dY_n X_n^T */
      CU_TRY(c3cu_gemm(e, 0, 1, Co, Ci, S, 1.0f, dy + n * Co * S, S, 0, P + n * Ci * S, S, 0,
                       1.0f, dw, Ci, 0, 1, 0));
    else /* dW += dY_n^T X_n^T (dY_n [S, Co]) */
      CU_TRY(c3cu_gemm(e, 1, 1, Co, Ci, S, 1.0f, dy + n * S * Co, Co, 0, P + n * Ci * S, S, 0,
                       1.0f, dw, Ci, 0, 1, 0));
  }
  return CSAL3D_OK;
}

static csal3d_status cu_conv3d_fwd(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                                   const float *w, const float *bias, float *y) {
  CU_TRY(conv_check(e, d, "conv3d_fwd"));
  CU_CHECK_ARG(e, x && w && y, "conv3d_fwd: NULL tensor");
  if (c3cu(e)->conv_gemm && gemm_conv_ok(d)) return gemm_fwd(e, d, x, w, bias, y);
  conv_plan *p;
  CU_TRY(get_plan(e, d, CONV_FWD, &p));
  csal3d_status s = run_fwd(e, d, p, x, w, bias, y);
  if (retry(s, p, d)) {
    CU_TRY(replan_transposed(e, d, CONV_FWD, &p));
    s = run_fwd(e, d, p, x, w, bias, y);
  }
  return s;
}

static csal3d_status cu_conv3d_bwd_data(c3_engine *e, const c3_conv3d_desc *d, const float *dy,
                                        const float *w, float *dx, int accum) {
  CU_TRY(conv_check(e, d, "conv3d_bwd_data"));
  CU_CHECK_ARG(e, dy && w && dx, "conv3d_bwd_data: NULL tensor");
  if (c3cu(e)->conv_gemm && gemm_conv_ok(d)) return gemm_bwd_data(e, d, dy, w, dx, accum);
  conv_plan *p;
  CU_TRY(get_plan(e, d, CONV_BWD_DATA, &p));
  csal3d_status s = run_bwd_data(e, d, p, dy, w, dx, accum);
  if (retry(s, p, d)) {
    CU_TRY(replan_transposed(e, d, CONV_BWD_DATA, &p));
    s = run_bwd_data(e, d, p, dy, w, dx, accum);
  }
  return s;
}

static csal3d_status cu_conv3d_bwd_weights(c3_engine *e, const c3_conv3d_desc *d,
                                           const float *x, const float *dy, float *dw,
                                           float *dbias) {
  CU_TRY(conv_check(e, d, "conv3d_bwd_weights"));
  CU_CHECK_ARG(e, x && dy && dw, "conv3d_bwd_weights: NULL tensor");
  if (c3cu(e)->conv_gemm && gemm_conv_ok(d)) {
    CU_TRY(gemm_bwd_weights(e, d, x, dy, dw));
  } else {
    conv_plan *p;
    CU_TRY(get_plan(e, d, CONV_BWD_FILTER, &p));
    csal3d_status s = run_bwd_filter(e, d, p, x, dy, dw);
    if (retry(s, p, d)) {
      CU_TRY(replan_transposed(e, d, CONV_BWD_FILTER, &p));
      s = run_bwd_filter(e, d, p, x, dy, dw);
    }
    CU_TRY(s);
  }
  if (dbias) {
    int64_t So = spatial_out(d);
    if (d->dst_layout == C3_LAYOUT_NDHWC) {
      CU_TRY(c3cu_reduce_sum(e, 1, d->n * So, d->c_out, 1.0f, dy, dbias, 1));
    } else {
      f_bias_ncdhw f = {dy, d->c_out, So};
      g_add g = {dbias};
      CU_TRY(c3cu_reduce_mid(e, d->c_out, d->n * So, 1, f, g, "conv3d_bwd_weights bias"));
    }
  }
  return CSAL3D_OK;
}

void c3cu_fill_conv_ops(c3_engine *e) {
  e->conv3d_fwd = cu_conv3d_fwd;
  e->conv3d_bwd_data = cu_conv3d_bwd_data;
  e->conv3d_bwd_weights = cu_conv3d_bwd_weights;
}
