/* The CUDA engine plugin: opening the device (stream, cuBLAS and cuDNN handles),
 * closing, error messages, and the op table (filled by the other files). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>

#include "engine/cuda/cuda_internal.h"

/* ---- errors ------------------------------------------------------------------------ */

csal3d_status c3cu_error(c3_engine *e, csal3d_status s, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c3cu_state *st = e ? c3cu(e) : NULL;
  if (st && st->host && st->host->set_error) return (csal3d_status)st->host->set_error(s, msg);
  return s;
}

csal3d_status c3cu_cuda_error(c3_engine *e, cudaError_t rc, const char *what) {
  /* an API call's error is also kept as the runtime's "last error": clear it, or the
   * next launch check would report it again (sticky errors stay regardless) */
  cudaGetLastError();
  csal3d_status s = CSAL3D_ERR_INTERNAL;
  if (rc == cudaErrorMemoryAllocation) s = CSAL3D_ERR_OUT_OF_MEMORY;
  if (rc == cudaErrorNoDevice || rc == cudaErrorInsufficientDriver ||
      rc == cudaErrorDevicesUnavailable)
    s = CSAL3D_ERR_DEVICE_UNAVAILABLE;
  return c3cu_error(e, s, "CUDA engine: %s: %s (%s)", what, cudaGetErrorString(rc),
                    cudaGetErrorName(rc));
}

csal3d_status c3cu_blas_error(c3_engine *e, cublasStatus_t rc, const char *what) {
  csal3d_status s = rc == CUBLAS_STATUS_ALLOC_FAILED   ? CSAL3D_ERR_OUT_OF_MEMORY
                    : rc == CUBLAS_STATUS_NOT_SUPPORTED ? CSAL3D_ERR_UNSUPPORTED
                    : rc == CUBLAS_STATUS_INVALID_VALUE ? CSAL3D_ERR_INVALID_ARGUMENT
                                                        : CSAL3D_ERR_INTERNAL;
  return c3cu_error(e, s, "CUDA engine: %s: cuBLAS %s (%s)", what, cublasGetStatusName(rc),
                    cublasGetStatusString(rc));
}

csal3d_status c3cu_dnn_error(c3_engine *e, cudnnStatus_t rc, const char *what) {
  csal3d_status s = rc == CUDNN_STATUS_ALLOC_FAILED    ? CSAL3D_ERR_OUT_OF_MEMORY
                    : rc == CUDNN_STATUS_NOT_SUPPORTED ? CSAL3D_ERR_UNSUPPORTED
                    : rc == CUDNN_STATUS_BAD_PARAM     ? CSAL3D_ERR_INVALID_ARGUMENT
                                                       : CSAL3D_ERR_INTERNAL;
  return c3cu_error(e, s, "CUDA engine: %s: cuDNN %s", what, cudnnGetErrorString(rc));
}

/* ---- open / close --------------------------------------------------------------------- */

static void c3cu_close(c3_engine *e) {
  c3cu_state *st = c3cu(e);
  if (!st) return;
  cudaSetDevice(st->device);
  if (st->stream) cudaStreamSynchronize(st->stream);
  c3cu_attn_close(e);
  c3cu_conv_close(e);
  if (st->blas) cublasDestroy(st->blas);
  if (st->dnn) cudnnDestroy(st->dnn);
  c3cu_mem_close(e);
  if (st->hscalar) cudaFreeHost(st->hscalar);
  if (st->stream) cudaStreamDestroy(st->stream);
  delete st;
  e->state = nullptr;
}

static int parse_precision(const char *v, int *out) {
  if (!v || !*v || !strcmp(v, "fp32") || !strcmp(v, "float32")) {
    *out = C3CU_FP32;
  } else if (!strcmp(v, "tf32")) {
    *out = C3CU_TF32;
  } else if (!strcmp(v, "bf16") || !strcmp(v, "bfloat16")) {
    *out = C3CU_BF16;
  } else {
    return 0;
  }
  return 1;
}

#define OPEN_FAIL(status, ...)                                                 \
  do {                                                                         \
    snprintf(err, errlen, __VA_ARGS__);                                        \
    c3cu_close(e);                                                             \
    return (status);                                                           \
  } while (0)

extern "C" __attribute__((visibility("default"))) int
csal3d_cuda_plugin_open(int abi, int device_index, const c3_cuda_host *host, c3_engine *e,
                        char *err, size_t errlen) {
  if (abi != C3_CUDA_PLUGIN_ABI) {
    snprintf(err, errlen, "plugin ABI %d, core expects %d: rebuild libcsal3d",
             C3_CUDA_PLUGIN_ABI, abi);
    return CSAL3D_ERR_DEVICE_UNAVAILABLE;
  }
  int precision;
  const char *pv = getenv("CSAL3D_CUDA_PRECISION");
  if (!parse_precision(pv, &precision)) {
    snprintf(err, errlen, "CSAL3D_CUDA_PRECISION=%s: expected fp32, tf32 or bf16", pv);
    return CSAL3D_ERR_INVALID_ARGUMENT;
  }
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess || count == 0) {
    snprintf(err, errlen, "no CUDA device: %s",
             rc != cudaSuccess ? cudaGetErrorString(rc) : "the driver reports 0 GPUs");
    return CSAL3D_ERR_DEVICE_UNAVAILABLE;
  }
  if (device_index >= count) {
    snprintf(err, errlen, "device_index %d, but only %d CUDA device(s)", device_index, count);
    return CSAL3D_ERR_DEVICE_UNAVAILABLE;
  }
  c3cu_state *st = new (std::nothrow) c3cu_state();
  if (!st) {
    snprintf(err, errlen, "out of host memory");
    return CSAL3D_ERR_OUT_OF_MEMORY;
  }
  memset(st, 0, sizeof *st);
  st->device = device_index;
  st->host = host;
  st->precision = precision;
  const char *cg = getenv("CSAL3D_CUDA_CONV_GEMM");
  st->conv_gemm = !(cg && !strcmp(cg, "0"));
  const char *at = getenv("CSAL3D_CUDA_ATTN");
  st->attn_fused = !(at && !strcmp(at, "ref"));
  e->state = st;
  if ((rc = cudaSetDevice(device_index)) != cudaSuccess ||
      (rc = cudaGetDeviceProperties(&st->prop, device_index)) != cudaSuccess)
    OPEN_FAIL(CSAL3D_ERR_DEVICE_UNAVAILABLE, "cannot use CUDA device %d: %s", device_index,
              cudaGetErrorString(rc));
  if (st->prop.major < 7)
    OPEN_FAIL(CSAL3D_ERR_DEVICE_UNAVAILABLE,
              "CUDA device %d (%s) has compute capability %d.%d; the engine needs 7.0 or newer",
              device_index, st->prop.name, st->prop.major, st->prop.minor);
  if ((rc = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking)) != cudaSuccess)
    OPEN_FAIL(CSAL3D_ERR_DEVICE_UNAVAILABLE, "cudaStreamCreate: %s", cudaGetErrorString(rc));
  if ((rc = cudaMallocHost((void **)&st->hscalar, 64 * sizeof(double))) != cudaSuccess)
    OPEN_FAIL(CSAL3D_ERR_OUT_OF_MEMORY, "cudaMallocHost: %s", cudaGetErrorString(rc));
  if (c3cu_mem_open(e) != CSAL3D_OK)
    OPEN_FAIL(CSAL3D_ERR_OUT_OF_MEMORY, "cannot set up the device allocator");
  cublasStatus_t br = cublasCreate(&st->blas);
  if (br != CUBLAS_STATUS_SUCCESS)
    OPEN_FAIL(CSAL3D_ERR_DEVICE_UNAVAILABLE, "cublasCreate: %s", cublasGetStatusString(br));
  cublasSetStream(st->blas, st->stream);
  cublasSetPointerMode(st->blas, CUBLAS_POINTER_MODE_HOST);
  /* fp32: CUBLAS_DEFAULT_MATH never uses TF32; the other modes pick compute types per
   * call (matmul.cu). */
  cublasSetMathMode(st->blas, CUBLAS_DEFAULT_MATH);
  cudnnStatus_t dr = cudnnCreate(&st->dnn);
  if (dr != CUDNN_STATUS_SUCCESS)
    OPEN_FAIL(CSAL3D_ERR_DEVICE_UNAVAILABLE, "cudnnCreate: %s (cuDNN %zu)",
              cudnnGetErrorString(dr), cudnnGetVersion());
  cudnnSetStream(st->dnn, st->stream);

  e->name = "cuda";
  e->device = CSAL3D_DEVICE_CUDA;
  e->close = c3cu_close;
  c3cu_fill_memory_ops(e);
  c3cu_fill_conv_ops(e);
  c3cu_fill_matmul_ops(e);
  c3cu_fill_attn_ops(e);
  c3cu_fill_elementwise_ops(e);
  c3cu_fill_norm_ops(e);
  c3cu_fill_permute_ops(e);
  return CSAL3D_OK;
}
