/* The CPU engine: state, memory functions, and the table. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc.h"
#include "core/error.h"
#include "engine/cpu/cpu.h"

#define C3_CPU_HEADER 64 /* keeps the 64-byte alignment of c3_alloc */

static c3_cpu_state *st(c3_engine *e) { return (c3_cpu_state *)e->state; }

/* Large blocks (activation workspaces: up to gigabytes) are backed by transparent huge
 * pages where the system allows it (THP "madvise" mode): 512 times fewer page faults on
 * first touch, and TLB reach for a working set of many workspaces. Only the whole 2 MiB
 * pages inside the block are advised; a refusal changes nothing. */
#define C3_HUGE_PAGE ((size_t)2 << 20)
static void c3_cpu_hugepages(char *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
  if (bytes < 4 * C3_HUGE_PAGE) return;
  uintptr_t a = ((uintptr_t)p + C3_HUGE_PAGE - 1) & ~(uintptr_t)(C3_HUGE_PAGE - 1);
  uintptr_t b = ((uintptr_t)p + bytes) & ~(uintptr_t)(C3_HUGE_PAGE - 1);
  if (b > a) (void)madvise((void *)a, (size_t)(b - a), MADV_HUGEPAGE);
#else
  (void)p, (void)bytes;
#endif
}

csal3d_status c3_cpu_alloc(c3_engine *e, size_t bytes, const char *what, void **out) {
  *out = NULL;
  if (bytes > SIZE_MAX - C3_CPU_HEADER)
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: %zu bytes is too large",
                    what ? what : "engine buffer", bytes);
  char *p;
  C3_TRY(c3_alloc(bytes + C3_CPU_HEADER, what ? what : "engine buffer", (void **)&p));
  memcpy(p, &bytes, sizeof bytes);
  c3_cpu_hugepages(p, bytes + C3_CPU_HEADER);
  c3_cpu_state *s = st(e);
  size_t now = atomic_fetch_add(&s->in_use, bytes) + bytes;
  size_t pk = atomic_load(&s->peak);
  while (now > pk && !atomic_compare_exchange_weak(&s->peak, &pk, now)) {
  }
  *out = p + C3_CPU_HEADER;
  return CSAL3D_OK;
}

void c3_cpu_free(c3_engine *e, void *p) {
  if (!p) return;
  char *base = (char *)p - C3_CPU_HEADER;
  size_t bytes;
  memcpy(&bytes, base, sizeof bytes);
  atomic_fetch_sub(&st(e)->in_use, bytes);
  c3_free(base);
}

csal3d_status c3_cpu_scratch(c3_engine *e, int slot, size_t bytes, void **out) {
  c3_cpu_state *s = st(e);
  if (slot < 0 || slot >= C3_SLOTS)
    return c3_error(CSAL3D_ERR_INTERNAL, "CPU engine: scratch slot %d", slot);
  if (bytes == 0) bytes = 64;
  if (s->slot_bytes[slot] < bytes) {
    c3_cpu_free(e, s->slot[slot]);
    s->slot[slot] = NULL;
    s->slot_bytes[slot] = 0;
    /* grow geometrically so that a sequence of growing requests reallocates rarely */
    size_t want = bytes + bytes / 4;
    if (want < bytes) want = bytes;
    C3_TRY(c3_cpu_alloc(e, want, "CPU engine scratch", &s->slot[slot]));
    s->slot_bytes[slot] = want;
  }
  *out = s->slot[slot];
  return CSAL3D_OK;
}

void c3_cpu_add_into(float *out, const float *in, int64_t n, int accum) {
  if (accum) {
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) out[i] += in[i];
  } else if (out != in) {
    memcpy(out, in, (size_t)n * sizeof(float));
  }
}

static csal3d_status cpu_upload(c3_engine *e, void *dst, const void *src, size_t bytes) {
  C3_CHECK_ARG(dst && src, "upload: NULL pointer");
  if (bytes) memcpy(dst, src, bytes);
  return CSAL3D_OK;
}

static csal3d_status cpu_copy(c3_engine *e, void *dst, const void *src, size_t bytes) {
  C3_CHECK_ARG(dst && src, "copy: NULL pointer");
  if (bytes && dst != src) memmove(dst, src, bytes);
  return CSAL3D_OK;
}

static csal3d_status cpu_fill(c3_engine *e, float *x, int64_t n, float value) {
  C3_CHECK_ARG(n >= 0 && (x || n == 0), "fill: bad buffer or count %lld", (long long)n);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) x[i] = value;
  return CSAL3D_OK;
}

static csal3d_status cpu_zero(c3_engine *e, void *p, size_t bytes) {
  C3_CHECK_ARG(p || bytes == 0, "zero: NULL pointer");
  if (bytes) memset(p, 0, bytes);
  return CSAL3D_OK;
}

static csal3d_status cpu_sync(c3_engine *e) { return CSAL3D_OK; }

static void cpu_memory_stats(c3_engine *e, size_t *in_use, size_t *peak) {
  if (in_use) *in_use = atomic_load(&st(e)->in_use);
  if (peak) *peak = atomic_load(&st(e)->peak);
}

static void cpu_reset_peak(c3_engine *e) {
  atomic_store(&st(e)->peak, atomic_load(&st(e)->in_use));
}

void c3_cpu_fill_memory_ops(c3_engine *e) {
  e->alloc = c3_cpu_alloc;
  e->free = c3_cpu_free;
  e->upload = cpu_upload;
  e->download = cpu_upload;
  e->copy = cpu_copy;
  e->fill = cpu_fill;
  e->zero = cpu_zero;
  e->synchronize = cpu_sync;
  e->memory_stats = cpu_memory_stats;
  e->reset_peak = cpu_reset_peak;
}

void c3_cpu_engine_set_conv_mode(c3_engine *e, int mode) {
  if (e && e->device == CSAL3D_DEVICE_CPU && e->state) st(e)->conv_mode = mode;
}

static void cpu_close(c3_engine *e) {
  if (!e->state) return;
  c3_cpu_dnnl_close(e);
  c3_cpu_state *s = st(e);
  for (int i = 0; i < C3_SLOTS; i++) c3_cpu_free(e, s->slot[i]);
  c3_free(e->state);
  e->state = NULL;
}

csal3d_status c3_cpu_engine_init(c3_engine *e) {
  c3_cpu_state *s;
  C3_TRY(c3_calloc_array(1, sizeof *s, "CPU engine state", (void **)&s));
  atomic_init(&s->in_use, 0);
  atomic_init(&s->peak, 0);
  e->name = "cpu";
  e->device = CSAL3D_DEVICE_CPU;
  e->state = s;
  e->close = cpu_close;
  c3_cpu_fill_memory_ops(e);
  c3_cpu_fill_dnnl_ops(e);
  c3_cpu_fill_c_ops(e);
  c3_cpu_fill_attn_ops(e);
  c3_cpu_fill_seg_ops(e);
  csal3d_status rc = c3_cpu_dnnl_open(e);
  if (rc != CSAL3D_OK) {
    cpu_close(e);
    return rc;
  }
  return CSAL3D_OK;
}
