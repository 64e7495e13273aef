/* The CPU engine's internals: state, memory accounting and the per-file table fillers. */
#ifndef C3_ENGINE_CPU_CPU_H
#define C3_ENGINE_CPU_CPU_H

#include <stdatomic.h>
#include <stddef.h>

#include "engine/engine.h"

typedef struct c3_cpu_state {
  atomic_size_t in_use; /* bytes of engine memory held (blocks + scratch) */
  atomic_size_t peak;
  void *dnnl;           /* oneDNN engine, stream and primitive cache (cpu_dnnl.c) */
} c3_cpu_state;

/* Engine memory on the CPU: c3_alloc blocks with a header giving their size, so that
 * memory_stats can count them. */
csal3d_status c3_cpu_alloc(c3_engine *e, size_t bytes, const char *what, void **out);
void c3_cpu_free(c3_engine *e, void *p);

/* Table fillers, one per source file. */
void c3_cpu_fill_memory_ops(c3_engine *e);
csal3d_status c3_cpu_dnnl_open(c3_engine *e);  /* conv, matmul, norms, softmax, gelu, resampling */
void c3_cpu_dnnl_close(c3_engine *e);
void c3_cpu_fill_c_ops(c3_engine *e);        /* plain C + OpenMP ops */
void c3_cpu_fill_attn_ops(c3_engine *e);     /* window attention */

#endif
