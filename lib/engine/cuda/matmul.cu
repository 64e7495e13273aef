/* Batched matmuls on cuBLAS (row-major through the usual operand swap:
 * C = op(A) op(B) row-major is C^T = op(B)^T op(A)^T column-major).
 *
 * Precision: fp32 uses CUBLAS_COMPUTE_32F (plain float32); tf32 and bf16 keep float32
 * storage and ask cuBLAS for CUBLAS_COMPUTE_32F_FAST_TF32 / _FAST_16BF, which round
 * the operands on the tensor cores and accumulate in float32. */
#include "engine/cuda/cuda_internal.h"

csal3d_status c3cu_gemm(c3_engine *e, int trans_a, int trans_b, int64_t m, int64_t n,
                        int64_t k, float alpha, const float *a, int64_t lda, int64_t sa,
                        const float *b, int64_t ldb, int64_t sb, float beta, float *c,
                        int64_t ldc, int64_t sc, int64_t batch, int fp32_only) {
  c3cu_state *st = c3cu(e);
  const int64_t imax = 2147483647LL;
  if (m > imax || n > imax || k > imax || lda > imax || ldb > imax || ldc > imax ||
      batch > imax)
    return c3cu_error(e, CSAL3D_ERR_UNSUPPORTED,
                      "matmul: sizes beyond 2^31 (m %lld, n %lld, k %lld, batch %lld)",
                      (long long)m, (long long)n, (long long)k, (long long)batch);
  cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
  if (!fp32_only && st->precision == C3CU_TF32) ct = CUBLAS_COMPUTE_32F_FAST_TF32;
  if (!fp32_only && st->precision == C3CU_BF16) ct = CUBLAS_COMPUTE_32F_FAST_16BF;
  cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  /* column-major: C^T [n x m] = op(B)^T [n x k] * op(A)^T [k x m] */
  if (batch == 1) {
    CU_BLAS(e,
            cublasGemmEx(st->blas, opb, opa, (int)n, (int)m, (int)k, &alpha, b, CUDA_R_32F,
                         (int)ldb, a, CUDA_R_32F, (int)lda, &beta, c, CUDA_R_32F, (int)ldc, ct,
                         CUBLAS_GEMM_DEFAULT),
            "matmul");
  } else {
    CU_BLAS(e,
            cublasGemmStridedBatchedEx(st->blas, opb, opa, (int)n, (int)m, (int)k, &alpha, b,
                                       CUDA_R_32F, (int)ldb, sb, a, CUDA_R_32F, (int)lda, sa,
                                       &beta, c, CUDA_R_32F, (int)ldc, sc, (int)batch, ct,
                                       CUBLAS_GEMM_DEFAULT),
            "matmul");
  }
  return CSAL3D_OK;
}

/* c[b, r, j] += bias[j] for rows r of m, row stride ldc, batch stride sc. */
__global__ void k_add_bias(float *c, const float *bias, int64_t batch, int64_t m, int64_t n,
                           int64_t ldc, int64_t sc) {
  int64_t total = batch * m * n;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    int64_t j = t % n, r = (t / n) % m, b = t / (n * m);
    c[b * sc + r * ldc + j] += bias[j];
  }
}

static csal3d_status cu_matmul(c3_engine *e, const c3_matmul_desc *d, const float *a,
                               const float *b, const float *bias, float *c) {
  CU_CHECK_ARG(e, d && a && b && c, "matmul: NULL argument");
  CU_CHECK_ARG(e, d->batch >= 1 && d->m >= 1 && d->n >= 1 && d->k >= 1,
               "matmul: sizes batch %lld, m %lld, n %lld, k %lld must be >= 1",
               (long long)d->batch, (long long)d->m, (long long)d->n, (long long)d->k);
  /* stored shapes: A [m x k] or [k x m]; B [k x n] or [n x k]; C [m x n] */
  int64_t a_cols = d->trans_a ? d->m : d->k, b_cols = d->trans_b ? d->k : d->n;
  int64_t lda = d->lda ? d->lda : a_cols, ldb = d->ldb ? d->ldb : b_cols,
          ldc = d->ldc ? d->ldc : d->n;
  CU_CHECK_ARG(e, lda >= a_cols && ldb >= b_cols && ldc >= d->n,
               "matmul: leading dimensions lda %lld, ldb %lld, ldc %lld are shorter than "
               "the rows they hold (%lld, %lld, %lld)",
               (long long)lda, (long long)ldb, (long long)ldc, (long long)a_cols,
               (long long)b_cols, (long long)d->n);
  CU_CHECK_ARG(e, d->batch == 1 || d->stride_c != 0,
               "matmul: stride_c 0 with batch %lld would write every product to one C",
               (long long)d->batch);
  CU_TRY(c3cu_gemm(e, d->trans_a, d->trans_b, d->m, d->n, d->k, d->alpha, a, lda,
                   d->stride_a, b, ldb, d->stride_b, d->beta, c, ldc, d->stride_c, d->batch,
                   0));
  if (bias) {
    k_add_bias<<<c3cu_blocks(d->batch * d->m * d->n, 256), 256, 0, c3cu(e)->stream>>>(
        c, bias, d->batch, d->m, d->n, ldc, d->stride_c);
    CU_LAUNCHED(e, "matmul bias");
  }
  return CSAL3D_OK;
}

void c3cu_fill_matmul_ops(c3_engine *e) { e->matmul = cu_matmul; }
