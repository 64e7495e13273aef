/* The volume handle's internals and the helpers of lib/volume (and of the floors above). */
#ifndef C3_VOLUME_VOLUME_INTERNAL_H
#define C3_VOLUME_VOLUME_INTERNAL_H

#include <stdint.h>

#include "csal3d/volume.h"
#include "volume/views.h"

/* Where a volume's grid came from: the file's storage grid and header geometry, and the
 * signed axis map from the storage array to the RAS+ array. */
typedef struct c3_source_grid {
  int present;           /* loaded from a file (else created by the caller) */
  int64_t dim[3];        /* storage dims (nx, ny, nz) */
  double affine[4][4];   /* the storage affine the loader used (sform, else qform) */
  double qform[4][4];    /* the file's qform matrix */
  double sform[4][4];    /* the file's sform matrix */
  int qform_code, sform_code;
  int version;           /* NIfTI-1 or NIfTI-2 */
  int datatype;          /* the NIfTI datatype code on disk */
  const char *datatype_name; /* its name (static) */
  int64_t file_volumes;  /* nt of the file (1 for a 3-D image) */
  /* Storage array as C array [nz][ny][nx] -> RAS array [X][Y][Z]. */
  c3_axes_map to_ras;
  int64_t ras_dim[3];    /* dims after reorientation */
  double ras_affine[4][4];
} c3_source_grid;

struct csal3d_volume {
  int64_t channels;
  int64_t dim[3];       /* D, H, W */
  float *data;          /* [channels, D, H, W], owned (c3_alloc) */
  double affine[4][4];  /* (d, h, w, 1) -> world mm */
  int is_label;
  c3_source_grid source;
};

/* Allocates a volume with zeroed data and an identity affine. */
csal3d_status c3_volume_new(int64_t channels, const int64_t dim[3], csal3d_volume **out);
int64_t c3_volume_voxels(const csal3d_volume *v); /* D * H * W */

/* Spacing from an affine's column lengths. */
void c3_affine_spacing(const double a[4][4], double spacing[3]);
/* 4x4 inverse; fails (FORMAT) for a singular or non-finite matrix, naming `what`. */
csal3d_status c3_affine_inverse(const double a[4][4], double inv[4][4], const char *what);
void c3_affine_mul(const double a[4][4], const double b[4][4], double out[4][4]);
/* The RAS+ reorientation of a storage affine (nibabel's io_orientation, then
 * as_closest_canonical; direction cosines within 1e-5 of each other count as a tie, won
 * by the first world axis, so that the choice survives a save): the axes map from the
 * storage array [nz][ny][nx] and the new affine and dims. */
csal3d_status c3_affine_ras_orientation(const double a[4][4], const int64_t dim[3],
                                        c3_axes_map *map, double ras_affine[4][4],
                                        int64_t ras_dim[3]);
/* Whether two grids coincide: same dims and every corner within tol mm. Writes a
 * description of the difference into why (if not NULL) when they do not. */
int c3_grid_equal(const int64_t dim_a[3], const double a[4][4], const int64_t dim_b[3],
                  const double b[4][4], double tol, char *why, size_t why_cap);
/* Whether the volume's current grid is its source grid (reoriented). */
int c3_volume_on_source(const csal3d_volume *v);

/* Resamples src onto the grid (dim, affine) by world coordinates: trilinear or nearest,
 * clamped at the edges; samples a whole source voxel or more beyond the first or last
 * voxel centre are 0 unless clamp_all (so padding stays padding and resampling, whose
 * grid may overhang by less than a voxel, is clamped). The result keeps src's
 * source grid and label flag. */
csal3d_status c3_volume_resample_grid(const csal3d_volume *src, const int64_t dim[3],
                                      const double affine[4][4], int nearest, int clamp_all,
                                      csal3d_volume **out);

/* The load options' default max_voxels (2^30, 4 GiB of float32). */
#define C3_DEFAULT_MAX_VOXELS ((int64_t)1 << 30)

/* csal3d_volume_resample within a budget, checked before anything is allocated
 * (CSAL3D_ERR_UNSUPPORTED naming the grid): at most max_voxels voxels (all channels) in
 * the new grid, and at most max_bytes for it and the input together (either <= 0: no
 * limit). */
csal3d_status c3_volume_resample_within(const csal3d_volume *volume, const double spacing[3],
                                        int64_t max_voxels, int64_t max_bytes,
                                        csal3d_volume **out);

/* Loads a NIfTI file as a RAS+ volume (lib/volume/volume_io.c). as_label: integer
 * check, one channel. */
csal3d_status c3_volume_load_file(const char *path, const csal3d_volume_load_options *o,
                                  int as_label, csal3d_volume **out);

/* numpy.percentile (linear) of n values, q in [0, 100]; reorders x. */
double c3_percentile(float *x, int64_t n, double q);

#endif
