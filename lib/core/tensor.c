/* The internal tensor: shapes, strides, allocation and strided copy. */
#include "core/tensor.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

static const struct {
  size_t size;
  const char *name;
} c3_dtypes[C3_DTYPE_COUNT] = {
    [C3_F32] = {4, "float32"}, [C3_F64] = {8, "float64"},
    [C3_I32] = {4, "int32"},   [C3_I64] = {8, "int64"},
    [C3_U8] = {1, "uint8"},    [C3_BF16] = {2, "bfloat16"},
};

size_t c3_dtype_size(c3_dtype dtype) {
  return (unsigned)dtype < C3_DTYPE_COUNT ? c3_dtypes[dtype].size : 0;
}

const char *c3_dtype_name(c3_dtype dtype) {
  return (unsigned)dtype < C3_DTYPE_COUNT ? c3_dtypes[dtype].name : "invalid";
}

csal3d_status c3_tensor_init(c3_tensor *t, c3_dtype dtype, int ndim,
                             const int64_t *shape) {
  C3_CHECK_ARG(t && shape, "tensor: NULL argument");
  memset(t, 0, sizeof *t);
  C3_CHECK_ARG(c3_dtype_size(dtype) != 0, "tensor: invalid dtype %d", (int)dtype);
  C3_CHECK_ARG(ndim >= 1 && ndim <= C3_MAX_DIMS,
               "tensor: %d dimensions (1 to %d supported)", ndim, C3_MAX_DIMS);
  int64_t count = 1;
  for (int i = 0; i < ndim; i++) {
    C3_CHECK_ARG(shape[i] >= 1, "tensor: side %d is %lld (must be >= 1)", i,
                 (long long)shape[i]);
    if (count > INT64_MAX / shape[i])
      return c3_error(CSAL3D_ERR_UNSUPPORTED, "tensor: element count overflows");
    count *= shape[i];
  }
  size_t bytes;
  if ((uint64_t)count > SIZE_MAX ||
      c3_mul_size((size_t)count, c3_dtype_size(dtype), &bytes))
    return c3_error(CSAL3D_ERR_UNSUPPORTED, "tensor: byte size overflows");
  t->dtype = dtype;
  t->memory = C3_MEM_HOST;
  t->ndim = ndim;
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t->shape[i] = shape[i];
    t->stride[i] = s;
    s *= shape[i];
  }
  return CSAL3D_OK;
}

csal3d_status c3_tensor_alloc(c3_tensor *t, c3_dtype dtype, int ndim,
                              const int64_t *shape) {
  C3_TRY(c3_tensor_init(t, dtype, ndim, shape));
  csal3d_status s = c3_calloc_array((size_t)c3_tensor_numel(t),
                                    c3_dtype_size(dtype), "tensor", &t->data);
  if (s != CSAL3D_OK) {
    memset(t, 0, sizeof *t);
    return s;
  }
  t->owns = true;
  return CSAL3D_OK;
}

csal3d_status c3_tensor_wrap(c3_tensor *t, void *data, c3_dtype dtype, int ndim,
                             const int64_t *shape) {
  C3_CHECK_ARG(data, "tensor: NULL data");
  C3_TRY(c3_tensor_init(t, dtype, ndim, shape));
  t->data = data;
  return CSAL3D_OK;
}

void c3_tensor_free(c3_tensor *t) {
  if (!t) return;
  if (t->owns && t->memory == C3_MEM_HOST) c3_free(t->data);
  memset(t, 0, sizeof *t);
}

int64_t c3_tensor_numel(const c3_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return t->ndim ? n : 0;
}

size_t c3_tensor_nbytes(const c3_tensor *t) {
  return (size_t)c3_tensor_numel(t) * c3_dtype_size(t->dtype);
}

bool c3_tensor_is_contiguous(const c3_tensor *t) {
  int64_t s = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->stride[i] != s) return false;
    s *= t->shape[i];
  }
  return true;
}

bool c3_tensor_same_shape(const c3_tensor *a, const c3_tensor *b) {
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return false;
  return true;
}

int64_t c3_tensor_offset(const c3_tensor *t, const int64_t *index) {
  int64_t off = 0;
  for (int i = 0; i < t->ndim; i++) off += index[i] * t->stride[i];
  return off;
}

csal3d_status c3_tensor_transpose(const c3_tensor *t, int a, int b,
                                  c3_tensor *view) {
  C3_CHECK_ARG(a >= 0 && a < t->ndim && b >= 0 && b < t->ndim,
               "tensor: transpose axes %d, %d out of range for %d dimensions",
               a, b, t->ndim);
  *view = *t;
  view->owns = false;
  view->shape[a] = t->shape[b];
  view->shape[b] = t->shape[a];
  view->stride[a] = t->stride[b];
  view->stride[b] = t->stride[a];
  return CSAL3D_OK;
}

csal3d_status c3_tensor_copy(c3_tensor *dst, const c3_tensor *src) {
  C3_CHECK_ARG(c3_tensor_same_shape(dst, src) && dst->dtype == src->dtype,
               "tensor copy: shapes or dtypes differ");
  C3_CHECK_ARG(dst->memory == C3_MEM_HOST && src->memory == C3_MEM_HOST,
               "tensor copy: host memory only");
  size_t es = c3_dtype_size(src->dtype);
  int64_t n = c3_tensor_numel(src);
  if (c3_tensor_is_contiguous(dst) && c3_tensor_is_contiguous(src)) {
    memmove(dst->data, src->data, (size_t)n * es);
    return CSAL3D_OK;
  }
  int64_t idx[C3_MAX_DIMS] = {0};
  for (int64_t k = 0; k < n; k++) {
    memcpy((char *)dst->data + c3_tensor_offset(dst, idx) * (int64_t)es,
           (const char *)src->data + c3_tensor_offset(src, idx) * (int64_t)es,
           es);
    for (int i = src->ndim - 1; i >= 0; i--) {
      if (++idx[i] < src->shape[i]) break;
      idx[i] = 0;
    }
  }
  return CSAL3D_OK;
}

void c3_tensor_describe(const c3_tensor *t, char *buf, size_t cap) {
  size_t used = 0;
  int n = snprintf(buf, cap, "[");
  for (int i = 0; n >= 0 && i < t->ndim; i++) {
    used += (size_t)n;
    if (used >= cap) return;
    n = snprintf(buf + used, cap - used, i ? ", %lld" : "%lld",
                 (long long)t->shape[i]);
  }
  if (n < 0) return;
  used += (size_t)n;
  if (used < cap) snprintf(buf + used, cap - used, "] %s", c3_dtype_name(t->dtype));
}
