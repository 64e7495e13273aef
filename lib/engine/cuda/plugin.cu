/* The CUDA engine plugin: for now it only finds and selects the GPU.
 * The op table on cuDNN, cuBLASLt and own kernels comes with the CUDA engine work. */
#include <cuda_runtime.h>
#include <stdio.h>

#include <new>

extern "C" {
#include "engine/cuda/plugin.h"
}

struct c3_cuda_state {
  int device;
  cudaDeviceProp prop;
};

static void c3_cuda_close(c3_engine *e) {
  delete static_cast<c3_cuda_state *>(e->state);
  e->state = nullptr;
}

extern "C" __attribute__((visibility("default"))) int
csal3d_cuda_plugin_open(int abi, int device_index, c3_engine *e, char *err,
                        size_t errlen) {
  if (abi != C3_CUDA_PLUGIN_ABI) {
    snprintf(err, errlen, "plugin ABI %d, core expects %d: rebuild libcsal3d",
             C3_CUDA_PLUGIN_ABI, abi);
    return CSAL3D_ERR_DEVICE_UNAVAILABLE;
  }
  int count = 0;
  cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess || count == 0) {
    snprintf(err, errlen, "no CUDA device: %s",
             rc != cudaSuccess ? cudaGetErrorString(rc) : "the driver reports 0 GPUs");
    return CSAL3D_ERR_DEVICE_UNAVAILABLE;
  }
  if (device_index >= count) {
    snprintf(err, errlen, "device_index %d, but only %d CUDA device(s)",
             device_index, count);
    return CSAL3D_ERR_DEVICE_UNAVAILABLE;
  }
  c3_cuda_state *st = new (std::nothrow) c3_cuda_state();
  if (!st) {
    snprintf(err, errlen, "out of host memory");
    return CSAL3D_ERR_OUT_OF_MEMORY;
  }
  st->device = device_index;
  if ((rc = cudaSetDevice(device_index)) != cudaSuccess ||
      (rc = cudaGetDeviceProperties(&st->prop, device_index)) != cudaSuccess) {
    snprintf(err, errlen, "cannot use CUDA device %d: %s", device_index,
             cudaGetErrorString(rc));
    delete st;
    return CSAL3D_ERR_DEVICE_UNAVAILABLE;
  }
  e->name = "cuda";
  e->device = CSAL3D_DEVICE_CUDA;
  e->state = st;
  e->close = c3_cuda_close;
  return CSAL3D_OK;
}
