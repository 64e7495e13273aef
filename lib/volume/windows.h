/* Sliding windows over a volume and the accumulation of per-window maps into a per-voxel
 * mean (docs/algorithms.md, "Uncertainty").
 *
 * Along an axis of size n with window w and stride s: the axis is padded with zeros at its
 * end to n' = max(n, w); the starts are 0, s, 2s, ... up to n' - w, plus n' - w itself if
 * it is not already there. Windows are numbered in row-major order of their (d, h, w)
 * starts. Every voxel of the padded volume is covered by at least one window (s <= w). */
#ifndef C3_VOLUME_WINDOWS_H
#define C3_VOLUME_WINDOWS_H

#include <stdint.h>

#include "csal3d/common.h"

typedef struct c3_window_grid {
  int64_t shape[3];   /* the volume's spatial shape, unpadded */
  int64_t padded[3];  /* max(shape, window) per axis */
  int64_t window[3];
  int64_t stride[3];
  int64_t count[3];   /* windows along each axis */
  int64_t *starts[3]; /* count[a] starts per axis (owned) */
  int64_t total;      /* count[0] * count[1] * count[2] */
} c3_window_grid;

/* The starts along one axis; starts may be NULL to only count. *count receives how many
 * (at most n / s + 2). Fails for n, w, s < 1 or s > w. */
csal3d_status c3_window_starts(int64_t n, int64_t w, int64_t s, int64_t *starts,
                               int64_t *count);

csal3d_status c3_window_grid_init(c3_window_grid *g, const int64_t shape[3],
                                  const int64_t window[3], const int64_t stride[3]);
void c3_window_grid_free(c3_window_grid *g);

/* The origin (d, h, w start) of window `index` (0 <= index < total). */
void c3_window_origin(const c3_window_grid *g, int64_t index, int64_t origin[3]);

/* Copies the box [origin, origin + size) of contiguous float32 data [channels, D, H, W]
 * (shape = D, H, W) into out [channels, size...]; voxels outside the data read as pad
 * (zero for the windows' padding). origin may be negative. */
void c3_box_extract_f32(const float *data, int64_t channels, const int64_t shape[3],
                        const int64_t origin[3], const int64_t size[3], float pad,
                        float *out);

/* Accumulates per-window maps (one channel, the window's size) into the per-voxel mean
 * over the windows that cover each voxel. */
typedef struct c3_window_accum {
  c3_window_grid grid; /* a copy with its own starts */
  float *sum;          /* [padded D, H, W] */
  int64_t *cover[3];   /* windows covering each index of each padded axis */
} c3_window_accum;

csal3d_status c3_window_accum_init(c3_window_accum *a, const c3_window_grid *g);
void c3_window_accum_free(c3_window_accum *a);
/* Adds one window's map [window D, H, W] at its origin. */
void c3_window_accum_add(c3_window_accum *a, const int64_t origin[3], const float *map);
/* The mean over covering windows, on the unpadded shape [D, H, W]. Only meaningful once
 * every window has been added. */
void c3_window_accum_mean(const c3_window_accum *a, float *out);

#endif
