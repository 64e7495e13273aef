/* The internal tensor: up to 5-D, strided, typed, with the engine that owns its memory. */
#ifndef C3_CORE_TENSOR_H
#define C3_CORE_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "csal3d/common.h"

#define C3_MAX_DIMS 5

typedef enum c3_dtype {
  C3_F32 = 0,
  C3_F64 = 1,
  C3_I32 = 2,
  C3_I64 = 3,
  C3_U8 = 4,
  C3_BF16 = 5,
  C3_DTYPE_COUNT
} c3_dtype;

/* Where the memory lives and which engine's free() releases it. */
typedef enum c3_memory {
  C3_MEM_HOST = 0, /* host memory from c3_alloc (also what the CPU engine uses) */
  C3_MEM_CUDA = 1  /* device memory of the CUDA engine */
} c3_memory;

typedef struct c3_tensor {
  void *data;
  c3_dtype dtype;
  c3_memory memory;
  int ndim;
  int64_t shape[C3_MAX_DIMS];
  int64_t stride[C3_MAX_DIMS]; /* in elements */
  bool owns;                   /* data is released by c3_tensor_free */
} c3_tensor;

/* Bytes of one element of a dtype; 0 for an invalid dtype. */
size_t c3_dtype_size(c3_dtype dtype);
/* "float32", "float64", "int32", "int64", "uint8", "bfloat16" or "invalid". */
const char *c3_dtype_name(c3_dtype dtype);

/* Fills shape and row-major contiguous strides; checks 1 <= ndim <= 5, every
 * side >= 1, and that the element count fits in int64 and size_t bytes. */
csal3d_status c3_tensor_init(c3_tensor *t, c3_dtype dtype, int ndim,
                             const int64_t *shape);

/* c3_tensor_init plus a zero-filled host allocation the tensor owns. */
csal3d_status c3_tensor_alloc(c3_tensor *t, c3_dtype dtype, int ndim,
                              const int64_t *shape);

/* A non-owning contiguous view of caller memory. */
csal3d_status c3_tensor_wrap(c3_tensor *t, void *data, c3_dtype dtype, int ndim,
                             const int64_t *shape);

/* Releases owned host memory and resets the tensor; accepts NULL or a zeroed tensor. */
void c3_tensor_free(c3_tensor *t);

int64_t c3_tensor_numel(const c3_tensor *t);
size_t c3_tensor_nbytes(const c3_tensor *t); /* numel * element size */
bool c3_tensor_is_contiguous(const c3_tensor *t);
bool c3_tensor_same_shape(const c3_tensor *a, const c3_tensor *b);

/* Element offset of a multi-index (ndim entries), using the strides. */
int64_t c3_tensor_offset(const c3_tensor *t, const int64_t *index);

/* A view with two axes exchanged (strides swapped; no copy). */
csal3d_status c3_tensor_transpose(const c3_tensor *t, int a, int b,
                                  c3_tensor *view);

/* Copies src into dst elementwise, any strides, same shape and dtype, host memory. */
csal3d_status c3_tensor_copy(c3_tensor *dst, const c3_tensor *src);

/* "[2, 1, 64, 64, 64] float32", for messages. */
void c3_tensor_describe(const c3_tensor *t, char *buf, size_t cap);

#endif
