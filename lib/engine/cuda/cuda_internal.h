/* The CUDA engine's internals, shared by its source files (C++/CUDA only).
 *
 * Files, one job each:
 *   plugin.cu     opening (device, stream, cuBLAS/cuDNN handles), closing, errors, the table
 *   memory.cu     the caching device allocator, scratch slots, transfers, fill/zero
 *   conv.cu       3-D convolutions on cuDNN (algorithms chosen once per shape, cached)
 *   matmul.cu     batched matmuls on cuBLAS
 *   attention.cu  window attention (cuBLAS batched products + bias/mask/softmax kernels)
 *   elementwise.cu elementwise ops, reductions, scalar sums, losses, AdamW
 *   norms.cu      layer norm, softmax, GELU, instance norm + LeakyReLU, x2 upsampling
 *   permute.cu    window partition/merge, patch merging, transposes, permute3d
 *
 * Precision (CSAL3D_CUDA_PRECISION at open): "fp32" (default: float32 everywhere, what
 * the op-by-op tests compare at 1e-4), "tf32" (matmuls and convolutions on the tensor
 * cores' TF32 mode) or "bf16" (matmuls with bf16 operands and float32 accumulation;
 * convolutions in TF32). Storage is float32 in every mode.
 *
 * Switches (read at open, for tests and diagnosis): CSAL3D_CUDA_CONV_GEMM=0 sends every
 * convolution to cuDNN; CSAL3D_CUDA_ATTN=ref keeps window attention on the reference
 * path (cuBLAS products + softmax kernel) also where the fused forward applies.
 *
 * Determinism: one stream; no floating-point atomics; every sum runs over chunks fixed
 * by the shapes only; cuDNN algorithms are restricted to deterministic ones. */
#ifndef C3_ENGINE_CUDA_INTERNAL_H
#define C3_ENGINE_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdint.h>

extern "C" {
#include "engine/cuda/plugin.h"
}

enum c3cu_precision { C3CU_FP32 = 0, C3CU_TF32 = 1, C3CU_BF16 = 2 };

/* Scratch slots: device buffers that grow on demand and live until close. Work is
 * ordered on the engine's one stream, so a slot may be reused by the next op at once.
 * A caller must not hold a slot across a call that uses the same slot. */
enum {
  C3CU_SLOT_WS = 0,  /* cuDNN workspace */
  C3CU_SLOT_T1 = 1,  /* conv: layout / accumulation temporaries */
  C3CU_SLOT_T2 = 2,
  C3CU_SLOT_A1 = 3,  /* attention: scores / probabilities */
  C3CU_SLOT_A2 = 4,  /* attention: score gradients */
  C3CU_SLOT_A3 = 5,  /* attention: bias gradient sum; norms: per-channel stats */
  C3CU_SLOT_RED = 6, /* reductions: partial sums (c3cu_reduce_mid) */
  C3CU_SLOT_BLAS = 7, /* cuBLAS / cuBLASLt workspace */
  C3CU_SLOTS = 8
};

struct c3cu_allocator;
struct c3cu_conv_cache;
struct c3cu_attn_cache;

struct c3cu_state {
  int device;
  cudaDeviceProp prop;
  cudaStream_t stream;
  cublasHandle_t blas;
  cudnnHandle_t dnn;
  const c3_cuda_host *host;
  int precision;
  int conv_gemm;   /* 1: convolutions with kernel == stride, pad 0 run as GEMMs */
  int attn_fused;  /* 1: the fused attention forward where it applies */
  c3cu_allocator *mem;
  void *slot[C3CU_SLOTS];
  size_t slot_bytes[C3CU_SLOTS];
  double *dscalar;  /* device doubles for scalar results (64) */
  double *hscalar;  /* pinned host copy (64) */
  c3cu_conv_cache *conv;
  c3cu_attn_cache *attn;
};

static inline c3cu_state *c3cu(c3_engine *e) { return (c3cu_state *)e->state; }

/* ---- errors (plugin.cu) ---- */
csal3d_status c3cu_error(c3_engine *e, csal3d_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
csal3d_status c3cu_cuda_error(c3_engine *e, cudaError_t rc, const char *what);
csal3d_status c3cu_blas_error(c3_engine *e, cublasStatus_t rc, const char *what);
csal3d_status c3cu_dnn_error(c3_engine *e, cudnnStatus_t rc, const char *what);

#define CU_TRY(expr)                                                           \
  do {                                                                         \
    csal3d_status cu_try_s_ = (expr);                                          \
    if (cu_try_s_ != CSAL3D_OK) return cu_try_s_;                              \
  } while (0)
#define CU_CHECK_ARG(e, cond, ...)                                             \
  do {                                                                         \
    if (!(cond)) return c3cu_error((e), CSAL3D_ERR_INVALID_ARGUMENT, __VA_ARGS__); \
  } while (0)
#define CU_CUDA(e, call, what)                                                 \
  do {                                                                         \
    cudaError_t cu_rc_ = (call);                                               \
    if (cu_rc_ != cudaSuccess) return c3cu_cuda_error((e), cu_rc_, (what));    \
  } while (0)
/* After a kernel launch: launch configuration errors are reported at once. */
#define CU_LAUNCHED(e, what) CU_CUDA((e), cudaGetLastError(), (what))
#define CU_BLAS(e, call, what)                                                 \
  do {                                                                         \
    cublasStatus_t cu_rc_ = (call);                                            \
    if (cu_rc_ != CUBLAS_STATUS_SUCCESS) return c3cu_blas_error((e), cu_rc_, (what)); \
  } while (0)
#define CU_DNN(e, call, what)                                                  \
  do {                                                                         \
    cudnnStatus_t cu_rc_ = (call);                                             \
    if (cu_rc_ != CUDNN_STATUS_SUCCESS) return c3cu_dnn_error((e), cu_rc_, (what)); \
  } while (0)

/* ---- memory (memory.cu) ---- */
csal3d_status c3cu_mem_open(c3_engine *e);
void c3cu_mem_close(c3_engine *e);
csal3d_status c3cu_alloc(c3_engine *e, size_t bytes, const char *what, void **out);
void c3cu_free(c3_engine *e, void *p);
/* A scratch buffer of at least `bytes` in slot `slot` (contents undefined). */
csal3d_status c3cu_scratch(c3_engine *e, int slot, size_t bytes, void **out);
/* Copies `count` doubles of e->dscalar to the host (synchronises). */
csal3d_status c3cu_read_scalars(c3_engine *e, int count, double *out);

/* ---- table fillers, one per file ---- */
void c3cu_fill_memory_ops(c3_engine *e);
void c3cu_fill_conv_ops(c3_engine *e);
void c3cu_fill_matmul_ops(c3_engine *e);
void c3cu_fill_attn_ops(c3_engine *e);
void c3cu_fill_elementwise_ops(c3_engine *e);
void c3cu_fill_norm_ops(c3_engine *e);
void c3cu_fill_permute_ops(c3_engine *e);
void c3cu_conv_close(c3_engine *e);
void c3cu_attn_close(c3_engine *e);

/* ---- shared helpers ---- */
/* y[o, m, i] (+)= alpha * x[o, i] (elementwise.cu). */
csal3d_status c3cu_broadcast(c3_engine *e, int64_t outer, int64_t mid, int64_t inner,
                             float alpha, const float *x, float *y, int accum);
/* y[o, i] (+)= alpha * sum_m x[o, m, i] (elementwise.cu). */
csal3d_status c3cu_reduce_sum(c3_engine *e, int64_t outer, int64_t mid, int64_t inner,
                              float alpha, const float *x, float *y, int accum);
/* y[b, c, r] (+)= x[b, r, c] (permute.cu). */
csal3d_status c3cu_transpose(c3_engine *e, int64_t batch, int64_t rows, int64_t cols,
                             const float *x, float *y, int accum);
/* Batched row-major matmul on the engine's precision (matmul.cu); pointers per
 * c3_matmul_desc, with ld* already resolved (non-zero). */
csal3d_status c3cu_gemm(c3_engine *e, int trans_a, int trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float *a, int64_t lda, int64_t sa,
                        const float *b, int64_t ldb, int64_t sb, float beta, float *c,
                        int64_t ldc, int64_t sc, int64_t batch, int fp32_only);

/* Grid size for a grid-stride loop over n items with `threads` per block. */
static inline unsigned c3cu_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 16) b = 65535LL * 16;
  return (unsigned)b;
}

#endif
