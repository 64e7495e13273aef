/* Preprocessing: intensity normalisation, resampling, crops and pads, foreground box,
 * random crops, and the way back to the source grid. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "volume/volume_internal.h"
#include "volume/windows.h"

/* k-th smallest (0-based) of x[0..n) by quickselect with a three-way partition (robust to
 * the many equal values of medical images); reorders x. */
static float c3_select(float *x, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  while (lo < hi) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17; /* pivot choice only */
    float pivot = x[lo + (int64_t)(state % (uint64_t)(hi - lo + 1))];
    int64_t lt = lo, i = lo, gt = hi;
    while (i <= gt) {
      if (x[i] < pivot) {
        float t = x[lt]; x[lt] = x[i]; x[i] = t;
        lt++, i++;
      } else if (x[i] > pivot) {
        float t = x[gt]; x[gt] = x[i]; x[i] = t;
        gt--;
      } else {
        i++;
      }
    }
    if (k < lt) hi = lt - 1;
    else if (k > gt) lo = gt + 1;
    else return pivot;
  }
  return x[k];
}

double c3_percentile(float *x, int64_t n, double q) {
  double pos = q / 100.0 * (double)(n - 1);
  int64_t i = (int64_t)floor(pos);
  if (i >= n - 1) return c3_select(x, n, n - 1);
  double frac = pos - (double)i;
  double a = c3_select(x, n, i);
  /* The next order statistic is the minimum of the part above i. */
  float b = x[i + 1];
  for (int64_t j = i + 2; j < n; j++)
    if (x[j] < b) b = x[j];
  return a + frac * ((double)b - a);
}

static csal3d_status c3_normalize_mri_channel(float *x, int64_t n, float *scratch) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += x[i];
  double mean = sum / (double)n, ss = 0;
  for (int64_t i = 0; i < n; i++) ss += ((double)x[i] - mean) * ((double)x[i] - mean);
  double sd = sqrt(ss / (double)n);
  if (!(sd > 0)) {
    memset(x, 0, (size_t)n * sizeof *x);
    return CSAL3D_OK;
  }
  for (int64_t i = 0; i < n; i++) x[i] = (float)(((double)x[i] - mean) / sd);
  memcpy(scratch, x, (size_t)n * sizeof *x);
  double p1 = c3_percentile(scratch, n, 1.0);
  memcpy(scratch, x, (size_t)n * sizeof *x);
  double p99 = c3_percentile(scratch, n, 99.0);
  double range = p99 - p1;
  for (int64_t i = 0; i < n; i++) {
    double z = x[i] < p1 ? p1 : x[i] > p99 ? p99 : x[i];
    x[i] = range > 0 ? (float)((z - p1) / range) : 0.0f;
  }
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_normalize(csal3d_volume *volume,
                                                 csal3d_modality modality) {
  C3_CHECK_ARG(volume, "volume_normalize: volume is NULL");
  C3_CHECK_ARG(modality == CSAL3D_MODALITY_NONE || modality == CSAL3D_MODALITY_CT ||
                   modality == CSAL3D_MODALITY_MRI,
               "volume_normalize: unknown modality %d", (int)modality);
  C3_CHECK_ARG(!volume->is_label || modality == CSAL3D_MODALITY_NONE,
               "volume_normalize: a label volume is not normalised");
  const int64_t vox = c3_volume_voxels(volume), total = vox * volume->channels;
  if (modality == CSAL3D_MODALITY_CT) {
    float *x = volume->data;
#pragma omp parallel for schedule(static) if (total > (1 << 20))
    for (int64_t i = 0; i < total; i++) {
      float v = x[i] < -1024.0f ? -1024.0f : x[i] > 1024.0f ? 1024.0f : x[i];
      x[i] = (v + 1024.0f) / 2048.0f;
    }
  } else if (modality == CSAL3D_MODALITY_MRI) {
    float *scratch;
    C3_TRY(c3_alloc_array((size_t)vox, sizeof(float), "percentile scratch", (void **)&scratch));
    for (int64_t c = 0; c < volume->channels; c++)
      c3_normalize_mri_channel(volume->data + c * vox, vox, scratch);
    c3_free(scratch);
  }
  return CSAL3D_OK;
}

#define C3_MAX_RESAMPLED_SIDE 32767

csal3d_status c3_volume_resample_within(const csal3d_volume *volume, const double spacing[3],
                                        int64_t max_voxels, int64_t max_bytes,
                                        csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_resample: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(volume && spacing, "volume_resample: NULL argument");
  double old[3], a[4][4], s[3];
  int64_t dim[3];
  c3_affine_spacing(volume->affine, old);
  memcpy(a, volume->affine, sizeof a);
  for (int i = 0; i < 3; i++) {
    C3_CHECK_ARG(spacing[i] == 0 || (spacing[i] > 0 && isfinite(spacing[i])),
                 "volume_resample: spacing %g along axis %d must be > 0 (or 0 to keep)",
                 spacing[i], i);
    s[i] = spacing[i] > 0 ? spacing[i] : old[i];
    double n = floor((double)volume->dim[i] * old[i] / s[i] + 0.5);
    /* The grid must reach every input voxel: the last input centre, at
     * (dim - 1) * old / s new voxels, within the last new voxel (less than one new voxel
     * past its centre, where csal3d_volume_to_source_grid() still takes the edge's value).
     * round() alone can end the grid up to half a new voxel short of the scan's extent,
     * which left the last input plane outside every map brought back. */
    double last = floor((double)(volume->dim[i] - 1) * old[i] / s[i] + 1e-6) + 1;
    if (n < last) n = last;
    /* No scan needs more along an axis (1.6 m at 0.05 mm): a spacing this fine is a slip
     * (0.001 for 1), which would otherwise give a grid that takes hours to score. */
    C3_CHECK_ARG(n <= C3_MAX_RESAMPLED_SIDE, "volume_resample: spacing %g mm along axis %d "
                 "would give %.0f voxels (at most %d); choose a coarser spacing (the option "
                 "spacing)", s[i], i, n, C3_MAX_RESAMPLED_SIDE);
    dim[i] = n < 1 ? 1 : (int64_t)n;
    for (int r = 0; r < 3; r++) a[r][i] = volume->affine[r][i] * (s[i] / old[i]);
  }
  /* The budget, before anything is allocated: the new grid's voxels (all channels), and
   * its bytes with the input's, which is still held while the new one is filled. */
  const double vox = (double)dim[0] * (double)dim[1] * (double)dim[2] * (double)volume->channels;
  const double bytes = 4.0 * (vox + (double)c3_volume_voxels(volume) * (double)volume->channels);
  char need[32], lim[32];
  if (max_voxels > 0 && vox > (double)max_voxels)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "resampling to spacing %g,%g,%g mm would give %lld x %lld x %lld voxels "
                    "(x %lld channels), more than the limit of %lld; choose a coarser "
                    "spacing (the option spacing)",
                    s[0], s[1], s[2], (long long)dim[0], (long long)dim[1], (long long)dim[2],
                    (long long)volume->channels, (long long)max_voxels);
  if (max_bytes > 0 && bytes > (double)max_bytes)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "resampling to spacing %g,%g,%g mm would give %lld x %lld x %lld voxels "
                    "and need %s with the image it comes from, more than the limit of %s; "
                    "choose a coarser spacing (the option spacing), or set the option "
                    "max_memory to allow more",
                    s[0], s[1], s[2], (long long)dim[0], (long long)dim[1], (long long)dim[2],
                    c3_bytes_text(bytes, need, sizeof need),
                    c3_bytes_text((double)max_bytes, lim, sizeof lim));
  return c3_volume_resample_grid(volume, dim, a, volume->is_label, 1, out);
}

CSAL3D_API csal3d_status csal3d_volume_resample(const csal3d_volume *volume,
                                                const double spacing[3],
                                                csal3d_volume **out) {
  return c3_volume_resample_within(volume, spacing, C3_DEFAULT_MAX_VOXELS, 0, out);
}

CSAL3D_API csal3d_status csal3d_volume_crop(const csal3d_volume *volume, const int64_t lo[3],
                                            const int64_t size[3], float pad_value,
                                            csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_crop: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(volume && lo && size, "volume_crop: NULL argument");
  csal3d_volume *v;
  C3_TRY(c3_volume_new(volume->channels, size, &v));
  c3_box_extract_f32(volume->data, volume->channels, volume->dim, lo, size, pad_value,
                     v->data);
  memcpy(v->affine, volume->affine, sizeof v->affine);
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 3; c++) v->affine[r][3] += volume->affine[r][c] * (double)lo[c];
  v->source = volume->source;
  v->is_label = volume->is_label;
  *out = v;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_crop_or_pad(const csal3d_volume *volume,
                                                   const int64_t shape[3], float pad_value,
                                                   csal3d_volume **out) {
  C3_CHECK_ARG(volume && shape && out, "volume_crop_or_pad: NULL argument");
  int64_t lo[3];
  for (int i = 0; i < 3; i++) {
    int64_t n = volume->dim[i], s = shape[i];
    /* Larger: drop floor((n - s) / 2) at the start; smaller: add floor((s - n) / 2). */
    lo[i] = n >= s ? (n - s) / 2 : -((s - n) / 2);
  }
  return csal3d_volume_crop(volume, lo, shape, pad_value, out);
}

CSAL3D_API csal3d_status csal3d_volume_foreground_bbox(const csal3d_volume *volume,
                                                       float threshold, int64_t lo[3],
                                                       int64_t hi[3]) {
  C3_CHECK_ARG(volume && lo && hi, "volume_foreground_bbox: NULL argument");
  int64_t l[3] = {INT64_MAX, INT64_MAX, INT64_MAX}, h[3] = {-1, -1, -1};
  const int64_t *n = volume->dim, vox = c3_volume_voxels(volume);
  for (int64_t c = 0; c < volume->channels; c++)
    for (int64_t d = 0; d < n[0]; d++)
      for (int64_t y = 0; y < n[1]; y++) {
        const float *row = volume->data + c * vox + (d * n[1] + y) * n[2];
        int64_t first = -1, last = -1;
        for (int64_t w = 0; w < n[2]; w++)
          if (row[w] > threshold) {
            if (first < 0) first = w;
            last = w;
          }
        if (first < 0) continue;
        if (d < l[0]) l[0] = d;
        if (d > h[0]) h[0] = d;
        if (y < l[1]) l[1] = y;
        if (y > h[1]) h[1] = y;
        if (first < l[2]) l[2] = first;
        if (last > h[2]) h[2] = last;
      }
  for (int i = 0; i < 3; i++) {
    lo[i] = h[0] < 0 ? 0 : l[i];
    hi[i] = h[0] < 0 ? 0 : h[i] + 1;
  }
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_random_crop(const csal3d_volume *volume,
                                                   const int64_t size[3], uint64_t seed,
                                                   uint64_t step, uint64_t item,
                                                   int64_t lo[3], csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_random_crop: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(volume && size, "volume_random_crop: NULL argument");
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_CROP, step, item, 0);
  int64_t start[3];
  for (int i = 0; i < 3; i++) {
    C3_CHECK_ARG(size[i] >= 1, "volume_random_crop: size along axis %d must be >= 1", i);
    int64_t n = volume->dim[i];
    start[i] = n >= size[i] ? c3_rng_range(&r, 0, n - size[i]) : -((size[i] - n) / 2);
  }
  if (lo) memcpy(lo, start, sizeof start);
  return csal3d_volume_crop(volume, start, size, 0.0f, out);
}

CSAL3D_API csal3d_status csal3d_volume_to_source_grid(const csal3d_volume *volume,
                                                      int nearest, csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_to_source_grid: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(volume, "volume_to_source_grid: volume is NULL");
  if (!volume->source.present)
    return c3_error(CSAL3D_ERR_STATE,
                    "volume_to_source_grid: the volume was not loaded from a file");
  if (c3_volume_on_source(volume)) return csal3d_volume_clone(volume, out);
  return c3_volume_resample_grid(volume, volume->source.ras_dim, volume->source.ras_affine,
                                 nearest || volume->is_label, 0, out);
}
