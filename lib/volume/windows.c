/* Sliding-window grid, box extraction and accumulation into a per-voxel mean. */
#include "volume/windows.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

csal3d_status c3_window_starts(int64_t n, int64_t w, int64_t s, int64_t *starts,
                               int64_t *count) {
  C3_CHECK_ARG(n >= 1 && w >= 1 && s >= 1,
               "windows: size %lld, window %lld and stride %lld must be >= 1",
               (long long)n, (long long)w, (long long)s);
  C3_CHECK_ARG(s <= w, "windows: stride %lld is larger than the window %lld (voxels "
               "would be left uncovered)", (long long)s, (long long)w);
  int64_t padded = n > w ? n : w, last = padded - w, c = 0;
  for (int64_t x = 0; x <= last; x += s) {
    if (starts) starts[c] = x;
    c++;
  }
  if ((c - 1) * s != last) {
    if (starts) starts[c] = last;
    c++;
  }
  *count = c;
  return CSAL3D_OK;
}

void c3_window_grid_free(c3_window_grid *g) {
  if (!g) return;
  for (int a = 0; a < 3; a++) {
    c3_free(g->starts[a]);
    g->starts[a] = NULL;
  }
}

csal3d_status c3_window_grid_init(c3_window_grid *g, const int64_t shape[3],
                                  const int64_t window[3], const int64_t stride[3]) {
  memset(g, 0, sizeof *g);
  g->total = 1;
  for (int a = 0; a < 3; a++) {
    g->shape[a] = shape[a];
    g->window[a] = window[a];
    g->stride[a] = stride[a];
    g->padded[a] = shape[a] > window[a] ? shape[a] : window[a];
    csal3d_status s = c3_window_starts(shape[a], window[a], stride[a], NULL, &g->count[a]);
    if (s == CSAL3D_OK)
      s = c3_alloc_array((size_t)g->count[a], sizeof(int64_t), "window starts",
                         (void **)&g->starts[a]);
    if (s == CSAL3D_OK)
      s = c3_window_starts(shape[a], window[a], stride[a], g->starts[a], &g->count[a]);
    if (s != CSAL3D_OK) {
      c3_window_grid_free(g);
      return c3_error_prefix(s, "axis %d", a);
    }
    g->total *= g->count[a];
  }
  return CSAL3D_OK;
}

void c3_window_origin(const c3_window_grid *g, int64_t index, int64_t origin[3]) {
  int64_t iw = index % g->count[2], r = index / g->count[2];
  origin[0] = g->starts[0][r / g->count[1]];
  origin[1] = g->starts[1][r % g->count[1]];
  origin[2] = g->starts[2][iw];
}

void c3_box_extract_f32(const float *data, int64_t channels, const int64_t shape[3],
                        const int64_t origin[3], const int64_t size[3], float pad,
                        float *out) {
  const int64_t plane = shape[1] * shape[2], vox = shape[0] * plane;
  const int64_t oplane = size[1] * size[2], ovox = size[0] * oplane;
  /* The part of each output row that lies inside the data along W. */
  int64_t w_lo = -origin[2] > 0 ? -origin[2] : 0;
  int64_t w_hi = shape[2] - origin[2] < size[2] ? shape[2] - origin[2] : size[2];
  if (w_hi < w_lo) w_hi = w_lo;
  const int64_t rows = channels * size[0];
#pragma omp parallel for schedule(static) if (channels * ovox > (1 << 20))
  for (int64_t r = 0; r < rows; r++) {
    int64_t c = r / size[0], od = r % size[0], d = origin[0] + od;
    float *dst = out + c * ovox + od * oplane;
    for (int64_t oh = 0; oh < size[1]; oh++, dst += size[2]) {
      int64_t h = origin[1] + oh;
      if (d < 0 || d >= shape[0] || h < 0 || h >= shape[1] || w_hi == w_lo) {
        for (int64_t i = 0; i < size[2]; i++) dst[i] = pad;
        continue;
      }
      for (int64_t i = 0; i < w_lo; i++) dst[i] = pad;
      memcpy(dst + w_lo, data + c * vox + d * plane + h * shape[2] + origin[2] + w_lo,
             (size_t)(w_hi - w_lo) * sizeof(float));
      for (int64_t i = w_hi; i < size[2]; i++) dst[i] = pad;
    }
  }
}

void c3_window_accum_free(c3_window_accum *a) {
  if (!a) return;
  c3_window_grid_free(&a->grid);
  c3_free(a->sum);
  a->sum = NULL;
  for (int i = 0; i < 3; i++) {
    c3_free(a->cover[i]);
    a->cover[i] = NULL;
  }
}

csal3d_status c3_window_accum_init(c3_window_accum *a, const c3_window_grid *g) {
  memset(a, 0, sizeof *a);
  csal3d_status s = c3_window_grid_init(&a->grid, g->shape, g->window, g->stride);
  if (s != CSAL3D_OK) return s;
  const int64_t *p = a->grid.padded;
  s = c3_calloc_array((size_t)(p[0] * p[1]), (size_t)p[2] * sizeof(float), "window sums",
                      (void **)&a->sum);
  for (int ax = 0; s == CSAL3D_OK && ax < 3; ax++) {
    s = c3_calloc_array((size_t)p[ax], sizeof(int64_t), "window cover", (void **)&a->cover[ax]);
    if (s != CSAL3D_OK) break;
    for (int64_t i = 0; i < a->grid.count[ax]; i++)
      for (int64_t x = 0; x < a->grid.window[ax]; x++)
        a->cover[ax][a->grid.starts[ax][i] + x]++;
  }
  if (s != CSAL3D_OK) c3_window_accum_free(a);
  return s;
}

void c3_window_accum_add(c3_window_accum *a, const int64_t origin[3], const float *map) {
  const int64_t *p = a->grid.padded, *w = a->grid.window;
#pragma omp parallel for schedule(static) if (w[0] * w[1] * w[2] > (1 << 20))
  for (int64_t d = 0; d < w[0]; d++)
    for (int64_t h = 0; h < w[1]; h++) {
      float *dst = a->sum + ((origin[0] + d) * p[1] + origin[1] + h) * p[2] + origin[2];
      const float *src = map + (d * w[1] + h) * w[2];
      for (int64_t x = 0; x < w[2]; x++) dst[x] += src[x];
    }
}

void c3_window_accum_mean(const c3_window_accum *a, float *out) {
  const int64_t *s = a->grid.shape, *p = a->grid.padded;
#pragma omp parallel for schedule(static) if (s[0] * s[1] * s[2] > (1 << 20))
  for (int64_t d = 0; d < s[0]; d++)
    for (int64_t h = 0; h < s[1]; h++) {
      int64_t cdh = a->cover[0][d] * a->cover[1][h];
      const float *src = a->sum + (d * p[1] + h) * p[2];
      float *dst = out + (d * s[1] + h) * s[2];
      for (int64_t x = 0; x < s[2]; x++)
        dst[x] = src[x] / (float)(cdh * a->cover[2][x]);
    }
}
