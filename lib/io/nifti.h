/* NIfTI-1/-2 files as storage arrays (the format only; lib/volume turns them into
 * volumes): our own header checks for specific messages, then nifticlib's reader for
 * the header, the voxels read with zlib (nifticlib turns NaN and Inf into 0) and
 * converted to float32 with scl_slope/scl_inter; atomic writing of a header we fill
 * ourselves. Storage order is the file's: [channel][z][y][x], x fastest. */
#ifndef C3_IO_NIFTI_H
#define C3_IO_NIFTI_H

#include <stdint.h>

#include "csal3d/volume.h"

typedef struct c3_nifti_read_options {
  int64_t max_voxels;  /* refuse more voxels than this (all volumes together); > 0 */
  int channel;         /* volume of a 4-D file: index, CSAL3D_CHANNEL_ALL or _NONE */
  int as_label;        /* one channel; values must be integers 0..65535 */
  int allow_nonfinite; /* NaN/Inf read as 0 instead of failing */
  double assume_spacing[3]; /* > 0: the spacing (mm) along i, j, k where pixdim is unusable
                               and the affine needs it (no sform); 0: refuse such files */
  int64_t max_memory;  /* > 0: refuse a file whose load would take more bytes (the header's
                          extensions, the voxels as stored, 1 + float_copies float32 arrays) */
  int float_copies;    /* float32 copies of the voxels the caller makes after this read */
} c3_nifti_read_options;

typedef struct c3_nifti_image {
  int version;            /* 1 or 2 */
  int64_t dim[3];         /* nx, ny, nz */
  int64_t channels;       /* volumes read (1, or nt with CSAL3D_CHANNEL_ALL) */
  float *data;            /* [channels][nz][ny][nx], c3_alloc'ed */
  double affine[4][4];    /* the sform when sform_code > 0, else the qform; row 3 = 0 0 0 1 */
  double qform[4][4], sform[4][4];
  int qform_code, sform_code;
  int datatype;               /* the NIfTI datatype code on disk */
  const char *datatype_name;  /* "uint8", "float32", ... (static) */
  int64_t file_volumes;       /* nt: the volumes of the file (1 for a 3-D image) */
} c3_nifti_image;

/* Reads a .nii, .nii.gz or .hdr(.gz) file: regular files only (a FIFO or a device is
 * refused before it is opened); the header checked before any voxel is read (vox_offset
 * inside the file and past the header, scl_inter finite where scl_slope scales, pixdim
 * usable where the affine needs it, the claimed size within max_voxels and max_memory); a
 * gzip stream read no further than the header promises. Errors name the file and the field. */
csal3d_status c3_nifti_read(const char *path, const c3_nifti_read_options *o,
                            c3_nifti_image *out);
/* Frees the voxels; safe on a zeroed struct. */
void c3_nifti_image_clear(c3_nifti_image *im);

typedef struct c3_nifti_write_spec {
  int64_t dim[3];         /* nx, ny, nz */
  int64_t channels;       /* >= 1; more than 1 writes a 4-D file */
  const float *data;      /* [channels][nz][ny][nx] */
  int version;            /* 2 forces NIfTI-2 (also chosen for sizes beyond int16) */
  csal3d_save_dtype dtype;/* AUTO: float32, or for labels uint8/uint16 by range */
  int is_label;
  double pixdim[3];
  int qform_code, sform_code;
  double qform[4][4], sform[4][4];
  int gz_level;           /* 0: plain .nii; 1..9: gzip */
} c3_nifti_write_spec;

/* Writes the file atomically (temporary file beside it, fsync, rename). */
csal3d_status c3_nifti_write(const char *path, const c3_nifti_write_spec *w);

#endif
