/* The CUDA engine's memory: a caching device allocator (cudaMalloc'd blocks kept on
 * free lists by size class), scratch slots, transfers, fill and zero.
 *
 * Size classes: multiples of 512 bytes up to 1 MiB, above that 8 steps per power of two
 * (at most 12.5% rounding). A freed block goes back to its class's list and is reused
 * by the next allocation of that class; work is ordered on the engine's one stream, so
 * a block freed after queued work may be handed out again at once. When cudaMalloc
 * fails, the cached blocks are released and the allocation retried.
 *
 * memory_stats reports the bytes asked for by live blocks and scratch slots, and their
 * peak; the rounding to size classes and the cached free blocks are not counted. */
#include <map>
#include <utility>
#include <new>
#include <unordered_map>
#include <vector>

#include "engine/cuda/cuda_internal.h"

struct c3cu_allocator {
  std::unordered_map<void *, std::pair<size_t, size_t>> live; /* block -> (class, asked) */
  std::map<size_t, std::vector<void *>> cache; /* class bytes -> free blocks */
  size_t in_use = 0, peak = 0, reserved = 0;
};

static size_t size_class(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes <= ((size_t)1 << 20)) return (bytes + 511) & ~(size_t)511;
  int top = 63 - __builtin_clzll((unsigned long long)bytes); /* 2^top <= bytes */
  size_t step = (size_t)1 << (top - 3);
  return (bytes + step - 1) / step * step;
}

static void release_cache(c3cu_state *st) {
  c3cu_allocator *a = st->mem;
  cudaStreamSynchronize(st->stream);
  for (auto &kv : a->cache) {
    for (void *p : kv.second) {
      cudaFree(p);
      a->reserved -= kv.first;
    }
  }
  a->cache.clear();
}

csal3d_status c3cu_mem_open(c3_engine *e) {
  c3cu_state *st = c3cu(e);
  st->mem = new (std::nothrow) c3cu_allocator();
  if (!st->mem) return CSAL3D_ERR_OUT_OF_MEMORY;
  if (cudaMalloc((void **)&st->dscalar, 64 * sizeof(double)) != cudaSuccess)
    return CSAL3D_ERR_OUT_OF_MEMORY;
  return CSAL3D_OK;
}

void c3cu_mem_close(c3_engine *e) {
  c3cu_state *st = c3cu(e);
  if (!st->mem) return;
  for (int i = 0; i < C3CU_SLOTS; i++) {
    c3cu_free(e, st->slot[i]);
    st->slot[i] = NULL;
  }
  release_cache(st);
  for (auto &kv : st->mem->live) cudaFree(kv.first); /* blocks the caller leaked */
  delete st->mem;
  st->mem = NULL;
  if (st->dscalar) cudaFree(st->dscalar);
  st->dscalar = NULL;
}

csal3d_status c3cu_alloc(c3_engine *e, size_t bytes, const char *what, void **out) {
  *out = NULL;
  c3cu_state *st = c3cu(e);
  c3cu_allocator *a = st->mem;
  if (bytes > ((size_t)1 << 46))
    return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "%s: %zu bytes is too large for the GPU",
                      what ? what : "engine buffer", bytes);
  size_t cls = size_class(bytes);
  void *p = NULL;
  auto it = a->cache.find(cls);
  if (it != a->cache.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
  } else {
    cudaError_t rc = cudaMalloc(&p, cls);
    if (rc == cudaErrorMemoryAllocation) {
      cudaGetLastError(); /* clear it */
      release_cache(st);
      rc = cudaMalloc(&p, cls);
    }
    if (rc != cudaSuccess) {
      cudaGetLastError();
      size_t fr = 0, tot = 0;
      cudaMemGetInfo(&fr, &tot);
      return c3cu_error(e, rc == cudaErrorMemoryAllocation ? CSAL3D_ERR_OUT_OF_MEMORY
                                                           : CSAL3D_ERR_INTERNAL,
                        "CUDA engine: cannot allocate %zu bytes for %s: %s (engine holds "
                        "%zu bytes, GPU has %zu of %zu bytes free)",
                        bytes, what ? what : "engine buffer", cudaGetErrorString(rc),
                        a->in_use, fr, tot);
    }
    a->reserved += cls;
  }
  try {
    a->live.emplace(p, std::make_pair(cls, bytes));
  } catch (...) {
    a->cache[cls].push_back(p);
    return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "CUDA engine: out of host memory");
  }
  a->in_use += bytes;
  if (a->in_use > a->peak) a->peak = a->in_use;
  *out = p;
  return CSAL3D_OK;
}

void c3cu_free(c3_engine *e, void *p) {
  if (!p) return;
  c3cu_allocator *a = c3cu(e)->mem;
  auto it = a->live.find(p);
  if (it == a->live.end()) return; /* not ours: ignore rather than corrupt the lists */
  size_t cls = it->second.first;
  a->in_use -= it->second.second;
  a->live.erase(it);
  try {
    a->cache[cls].push_back(p);
  } catch (...) {
    cudaStreamSynchronize(c3cu(e)->stream);
    cudaFree(p);
    a->reserved -= cls;
  }
}

csal3d_status c3cu_scratch(c3_engine *e, int slot, size_t bytes, void **out) {
  c3cu_state *st = c3cu(e);
  if (bytes == 0) bytes = 256;
  if (st->slot_bytes[slot] < bytes) {
    c3cu_free(e, st->slot[slot]);
    st->slot[slot] = NULL;
    st->slot_bytes[slot] = 0;
    size_t want = bytes + bytes / 4;
    CU_TRY(c3cu_alloc(e, want, "CUDA engine scratch", &st->slot[slot]));
    st->slot_bytes[slot] = want;
  }
  *out = st->slot[slot];
  return CSAL3D_OK;
}

csal3d_status c3cu_read_scalars(c3_engine *e, int count, double *out) {
  c3cu_state *st = c3cu(e);
  CU_CUDA(e, cudaMemcpyAsync(st->hscalar, st->dscalar, (size_t)count * sizeof(double),
                             cudaMemcpyDeviceToHost, st->stream),
          "reading a scalar result");
  CU_CUDA(e, cudaStreamSynchronize(st->stream), "reading a scalar result");
  for (int i = 0; i < count; i++) out[i] = st->hscalar[i];
  return CSAL3D_OK;
}

/* ---- the table's memory functions ----------------------------------------------------- */

static csal3d_status cu_alloc(c3_engine *e, size_t bytes, const char *what, void **out) {
  CU_CHECK_ARG(e, out, "alloc: NULL out");
  return c3cu_alloc(e, bytes, what, out);
}

static csal3d_status cu_upload(c3_engine *e, void *dst, const void *src, size_t bytes) {
  CU_CHECK_ARG(e, (dst && src) || bytes == 0, "upload: NULL pointer");
  if (!bytes) return CSAL3D_OK;
  /* From pageable memory this returns once the source has been staged, so the caller
   * may reuse its buffer at once. */
  CU_CUDA(e, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c3cu(e)->stream),
          "upload");
  return CSAL3D_OK;
}

static csal3d_status cu_download(c3_engine *e, void *dst, const void *src, size_t bytes) {
  CU_CHECK_ARG(e, (dst && src) || bytes == 0, "download: NULL pointer");
  c3cu_state *st = c3cu(e);
  if (bytes)
    CU_CUDA(e, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st->stream),
            "download");
  CU_CUDA(e, cudaStreamSynchronize(st->stream), "download (or earlier queued work)");
  return CSAL3D_OK;
}

static csal3d_status cu_copy(c3_engine *e, void *dst, const void *src, size_t bytes) {
  CU_CHECK_ARG(e, (dst && src) || bytes == 0, "copy: NULL pointer");
  if (!bytes || dst == src) return CSAL3D_OK;
  CU_CUDA(e, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c3cu(e)->stream),
          "copy");
  return CSAL3D_OK;
}

__global__ void k_fill(float *x, int64_t n, float v) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    x[i] = v;
}

static csal3d_status cu_fill(c3_engine *e, float *x, int64_t n, float value) {
  CU_CHECK_ARG(e, n >= 0 && (x || n == 0), "fill: bad buffer or count %lld", (long long)n);
  if (!n) return CSAL3D_OK;
  k_fill<<<c3cu_blocks(n, 256), 256, 0, c3cu(e)->stream>>>(x, n, value);
  CU_LAUNCHED(e, "fill");
  return CSAL3D_OK;
}

static csal3d_status cu_zero(c3_engine *e, void *p, size_t bytes) {
  CU_CHECK_ARG(e, p || bytes == 0, "zero: NULL pointer");
  if (!bytes) return CSAL3D_OK;
  CU_CUDA(e, cudaMemsetAsync(p, 0, bytes, c3cu(e)->stream), "zero");
  return CSAL3D_OK;
}

static csal3d_status cu_sync(c3_engine *e) {
  CU_CUDA(e, cudaStreamSynchronize(c3cu(e)->stream), "synchronize (queued work failed)");
  return CSAL3D_OK;
}

static void cu_memory_stats(c3_engine *e, size_t *in_use, size_t *peak) {
  c3cu_allocator *a = c3cu(e)->mem;
  if (in_use) *in_use = a->in_use;
  if (peak) *peak = a->peak;
}

static void cu_reset_peak(c3_engine *e) {
  c3cu_allocator *a = c3cu(e)->mem;
  a->peak = a->in_use;
}

void c3cu_fill_memory_ops(c3_engine *e) {
  e->alloc = cu_alloc;
  e->free = c3cu_free;
  e->upload = cu_upload;
  e->download = cu_download;
  e->copy = cu_copy;
  e->fill = cu_fill;
  e->zero = cu_zero;
  e->synchronize = cu_sync;
  e->memory_stats = cu_memory_stats;
  e->reset_peak = cu_reset_peak;
}
