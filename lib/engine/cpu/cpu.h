/* The CPU engine's internals: state, memory accounting and the per-file table fillers. */
#ifndef C3_ENGINE_CPU_CPU_H
#define C3_ENGINE_CPU_CPU_H

#include <stdatomic.h>
#include <stddef.h>

#include "engine/engine.h"

/* Scratch slots: buffers that grow on demand and are kept until the engine closes.
 * Slot 0 is oneDNN's scratchpad, 1-3 the oneDNN wrappers' temporaries (reordered or
 * accumulated tensors), 4-7 the other ops' (attention chunks, partial sums). A caller
 * must not hold a slot across a call that uses the same slot. */
enum {
  C3_SLOT_DNNL = 0,
  C3_SLOT_T1 = 1,
  C3_SLOT_T2 = 2,
  C3_SLOT_T3 = 3,
  C3_SLOT_A1 = 4,
  C3_SLOT_A2 = 5,
  C3_SLOT_A3 = 6,
  C3_SLOT_A4 = 7,
  C3_SLOTS = 8
};

typedef struct c3_cpu_state {
  atomic_size_t in_use; /* bytes of engine memory held (blocks + scratch) */
  atomic_size_t peak;
  void *dnnl;           /* oneDNN engine, stream and primitive cache (cpu_dnnl.c) */
  void *slot[C3_SLOTS];
  size_t slot_bytes[C3_SLOTS];
  int conv_mode; /* C3_CPU_CONV_* */
} c3_cpu_state;

/* How the CPU engine runs convolutions: AUTO picks per shape (c3_cpu_conv_use_gemm);
 * the others force one path (tests run both). */
enum { C3_CPU_CONV_AUTO = 0, C3_CPU_CONV_DIRECT = 1, C3_CPU_CONV_GEMM = 2 };
void c3_cpu_engine_set_conv_mode(c3_engine *e, int mode);

/* A scratch buffer of at least `bytes` (64-byte aligned) in slot `slot`. */
csal3d_status c3_cpu_scratch(c3_engine *e, int slot, size_t bytes, void **out);

/* Engine memory on the CPU: c3_alloc blocks with a header giving their size, so that
 * memory_stats can count them. */
csal3d_status c3_cpu_alloc(c3_engine *e, size_t bytes, const char *what, void **out);
void c3_cpu_free(c3_engine *e, void *p);

/* Table fillers, one per source file. */
void c3_cpu_fill_memory_ops(c3_engine *e);
csal3d_status c3_cpu_dnnl_open(c3_engine *e);
void c3_cpu_dnnl_close(c3_engine *e);
void c3_cpu_fill_dnnl_ops(c3_engine *e);     /* conv, matmul, layer norm, softmax, gelu */
void c3_cpu_fill_c_ops(c3_engine *e);        /* plain C + OpenMP ops */
void c3_cpu_fill_attn_ops(c3_engine *e);     /* window attention */
void c3_cpu_fill_seg_ops(c3_engine *e);      /* channel copy, segmentation loss */

/* ---- oneDNN helpers shared with the other CPU files (cpu_dnnl.c) ---- */
/* Batched matmul on up to 4 dims with explicit element strides (A [.., m, k],
 * B [.., k, n], C [.., m, n]; a batch dim of A or B may be 1 to broadcast):
 * C = alpha A B + beta C. */
csal3d_status c3_cpu_matmul_nd(c3_engine *e, int ndims, const int64_t *dims_a,
                               const int64_t *strides_a, const int64_t *dims_b,
                               const int64_t *strides_b, const int64_t *dims_c,
                               const int64_t *strides_c, float alpha, float beta,
                               const float *a, const float *b, const float *bias,
                               float *c);

/* ---- convolution as im2col + matmul (cpu_conv_gemm.c) ---- */
int c3_cpu_conv_use_gemm(const c3_conv3d_desc *d);
csal3d_status c3_cpu_conv_gemm_fwd(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                                   const float *w, const float *bias, float *y);
csal3d_status c3_cpu_conv_gemm_bwd_data(c3_engine *e, const c3_conv3d_desc *d, const float *dy,
                                        const float *w, float *dx, int accum);
csal3d_status c3_cpu_conv_gemm_bwd_weights(c3_engine *e, const c3_conv3d_desc *d,
                                           const float *x, const float *dy, float *dw,
                                           float *dbias);

/* out (+)= in, n floats, OpenMP. */
void c3_cpu_add_into(float *out, const float *in, int64_t n, int accum);

#endif
