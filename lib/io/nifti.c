/* NIfTI-1/-2 files as storage arrays: reading (our own header checks, then nifticlib's
 * nifti2_io for the header, the voxels with zlib) and atomic writing (our header, zlib).
 * The volume layer (lib/volume/volume_io.c) reorients them. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <nifti2_io.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/fileutil.h"
#include "io/nifti.h"

/* nifticlib prints to stderr unless its (global) debug level is 0: set it once. */
static pthread_once_t c3_nifti_once = PTHREAD_ONCE_INIT;
static void c3_nifti_quiet(void) { nifti_set_debug_level(0); }

static int c3_ends_with_nocase(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcasecmp(s + n - m, suffix);
}

/* ---- our own look at the header, for specific messages before nifticlib ---- */

static uint32_t c3_bswap32(uint32_t x) {
  return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}
static int32_t c3_rd_i32(const unsigned char *p, int swap) {
  uint32_t x;
  memcpy(&x, p, 4);
  return (int32_t)(swap ? c3_bswap32(x) : x);
}
static int16_t c3_rd_i16(const unsigned char *p, int swap) {
  uint16_t x;
  memcpy(&x, p, 2);
  return (int16_t)(swap ? (uint16_t)((x >> 8) | (x << 8)) : x);
}
static uint64_t c3_rd_u64(const unsigned char *p, int swap) {
  uint64_t x;
  memcpy(&x, p, 8);
  if (swap) x = (uint64_t)c3_bswap32((uint32_t)x) << 32 | c3_bswap32((uint32_t)(x >> 32));
  return x;
}
static int64_t c3_rd_i64(const unsigned char *p, int swap) {
  return (int64_t)c3_rd_u64(p, swap);
}
static double c3_rd_f64(const unsigned char *p, int swap) {
  uint64_t x = c3_rd_u64(p, swap);
  double d;
  memcpy(&d, &x, 8);
  return d;
}
static double c3_rd_f32(const unsigned char *p, int swap) {
  uint32_t x = (uint32_t)c3_rd_i32(p, swap);
  float f;
  memcpy(&f, &x, 4);
  return f;
}

static int c3_datatype_supported(int dt) {
  switch (dt) {
  case NIFTI_TYPE_UINT8: case NIFTI_TYPE_INT8: case NIFTI_TYPE_INT16:
  case NIFTI_TYPE_UINT16: case NIFTI_TYPE_INT32: case NIFTI_TYPE_UINT32:
  case NIFTI_TYPE_INT64: case NIFTI_TYPE_UINT64: case NIFTI_TYPE_FLOAT32:
  case NIFTI_TYPE_FLOAT64:
    return 1;
  default:
    return 0;
  }
}

static const char *c3_datatype_name(int dt) {
  switch (dt) {
  case NIFTI_TYPE_UINT8: return "uint8";
  case NIFTI_TYPE_INT8: return "int8";
  case NIFTI_TYPE_INT16: return "int16";
  case NIFTI_TYPE_UINT16: return "uint16";
  case NIFTI_TYPE_INT32: return "int32";
  case NIFTI_TYPE_UINT32: return "uint32";
  case NIFTI_TYPE_INT64: return "int64";
  case NIFTI_TYPE_UINT64: return "uint64";
  case NIFTI_TYPE_FLOAT32: return "float32";
  case NIFTI_TYPE_FLOAT64: return "float64";
  case NIFTI_TYPE_FLOAT128: return "float128";
  case NIFTI_TYPE_COMPLEX64: return "complex64";
  case NIFTI_TYPE_COMPLEX128: return "complex128";
  case NIFTI_TYPE_COMPLEX256: return "complex256";
  case NIFTI_TYPE_RGB24: return "rgb24";
  case NIFTI_TYPE_RGBA32: return "rgba32";
  case DT_BINARY: return "binary (1 bit)";
  default: return "unknown";
  }
}

static int c3_datatype_bytes(int dt) {
  switch (dt) {
  case NIFTI_TYPE_UINT8: case NIFTI_TYPE_INT8: return 1;
  case NIFTI_TYPE_INT16: case NIFTI_TYPE_UINT16: return 2;
  case NIFTI_TYPE_INT32: case NIFTI_TYPE_UINT32: case NIFTI_TYPE_FLOAT32: return 4;
  default: return 8;
  }
}

/* Deflate inflates at most 1032:1: a gzip file of n bytes holds at most this many. */
static double c3_gzip_capacity(int64_t compressed) {
  return 1032.0 * (double)compressed + 65536.0;
}

/* Refuses what is not a regular file: reading a FIFO or a device could block forever. */
static csal3d_status c3_check_regular(const char *path, const struct stat *st) {
  if (S_ISDIR(st->st_mode))
    return c3_error(CSAL3D_ERR_IO, "%s: is a folder, not a NIfTI file", path);
  if (!S_ISREG(st->st_mode))
    return c3_error(CSAL3D_ERR_IO, "%s: not a regular file (a FIFO, socket or device); "
                    "NIfTI files are read from regular files only", path);
  return CSAL3D_OK;
}

/* Opens a regular file for reading through zlib (a plain file passes through): checked
 * with stat() before it is opened, and again on the descriptor, opened without blocking. */
static csal3d_status c3_gzopen_regular(const char *path, gzFile *out, int64_t *size) {
  *out = NULL;
  struct stat st;
  if (stat(path, &st) != 0)
    return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  C3_TRY(c3_check_regular(path, &st));
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  csal3d_status s = CSAL3D_OK;
  int flags = fcntl(fd, F_GETFL);
  if (fstat(fd, &st) != 0)
    s = c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  else if ((s = c3_check_regular(path, &st)) == CSAL3D_OK &&
           (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0))
    s = c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  gzFile g = s == CSAL3D_OK ? gzdopen(fd, "rb") : NULL;
  if (s == CSAL3D_OK && !g) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: cannot start reading", path);
  if (s != CSAL3D_OK) {
    close(fd);
    return s;
  }
  *out = g;
  if (size) *size = (int64_t)st.st_size;
  return CSAL3D_OK;
}

/* The header fields that decide where the voxels are and what they mean, as stored. */
typedef struct c3_raw_header {
  int version;         /* 1 or 2 */
  int single;          /* "n+1"/"n+2": header and voxels in one file (else a .hdr/.img pair) */
  int gz;              /* the header file is gzip-compressed */
  int64_t file_size;   /* of the header file, as stored */
  int64_t dim[8];
  int datatype, nbyper;
  double vox_offset;   /* a float in NIfTI-1, an integer in NIfTI-2 */
  double pixdim[4];
  double scl_slope, scl_inter;
  int qform_code, sform_code;
  double spacing_fix[3]; /* > 0: the spacing of the affine along axis i, j, k replaces
                            what nifticlib made of an unusable pixdim */
} c3_raw_header;

static const char c3_axis_name[3] = {'i', 'j', 'k'};

/* vox_offset: an integer, past the header in a single file, inside the file. */
static csal3d_status c3_check_vox_offset(const char *path, const c3_raw_header *h) {
  const double v = h->vox_offset;
  const double least = !h->single ? 0 : h->version == 1 ? 352 : 544;
  if (!isfinite(v) || v < least || v != floor(v))
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: vox_offset is %g; %s needs a whole number of bytes of at least %.0f "
                    "(the %d-byte header and its 4-byte extension flag): the voxels' place "
                    "is unknown", path, v,
                    !h->single ? "a .hdr/.img pair"
                    : h->version == 1 ? "a single-file NIfTI-1" : "a single-file NIfTI-2",
                    least, h->version == 1 ? 348 : 540);
  if (v > 4503599627370496.0) /* 2^52: no file is that long (and it must fit an int64) */
    return c3_error(CSAL3D_ERR_FORMAT, "%s: vox_offset %.0f is beyond the end of any file",
                    path, v);
  if (!h->single) return CSAL3D_OK; /* the offset is into the image file: checked there */
  const double bytes = (double)h->nbyper * (double)h->dim[1] *
                       (double)(h->dim[0] >= 2 ? h->dim[2] : 1) *
                       (double)(h->dim[0] >= 3 ? h->dim[3] : 1) *
                       (double)(h->dim[0] >= 4 ? h->dim[4] : 1);
  const double cap = h->gz ? c3_gzip_capacity(h->file_size) : (double)h->file_size;
  if (v >= cap)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: vox_offset %.0f is beyond the end of the file (%lld bytes%s)", path,
                    v, (long long)h->file_size,
                    h->gz ? ", which cannot inflate to that much" : "");
  if (v + bytes > cap)
    return c3_error(CSAL3D_ERR_IO,
                    "%s: truncated: the header promises %.0f bytes of voxels from offset "
                    "%.0f, %s %lld bytes", path, bytes, v,
                    h->gz ? "more than a gzip file can inflate to from its" : "the file has",
                    (long long)h->file_size);
  return CSAL3D_OK;
}

/* scl_slope / scl_inter as nibabel reads them: a slope of 0 or not finite means no scaling;
 * a finite slope with an intercept that is not finite is an error. */
static csal3d_status c3_check_scaling(const char *path, const c3_raw_header *h) {
  if (h->scl_slope != 0 && isfinite(h->scl_slope) && !isfinite(h->scl_inter))
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: scl_inter is %g with scl_slope %g: every scaled voxel would be "
                    "%g (nibabel refuses it too)", path, h->scl_inter, h->scl_slope,
                    h->scl_inter);
  return CSAL3D_OK;
}

/* pixdim[1..3] where the affine comes from them (no sform): NaN, Inf and 0 (which
 * nifticlib silently turns into 1 mm) are refused unless the caller says what to assume;
 * with a qform, a negative one counts as its magnitude, as nibabel reads it (nifticlib
 * would use 1 mm). */
static csal3d_status c3_check_pixdim(const char *path, const c3_nifti_read_options *o,
                                     c3_raw_header *h) {
  if (h->sform_code > 0) return CSAL3D_OK;
  for (int i = 0; i < 3; i++) {
    const double p = h->pixdim[i + 1];
    h->spacing_fix[i] = 0;
    if (isfinite(p) && p != 0) {
      if (p < 0 && h->qform_code > 0) h->spacing_fix[i] = -p;
      continue;
    }
    if (o->assume_spacing[i] > 0) {
      h->spacing_fix[i] = o->assume_spacing[i];
      continue;
    }
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: pixdim[%d], the voxel spacing along the file's %c axis, is %g, and "
                    "the %s needs it (there is no sform); set the option assume_spacing to the "
                    "spacing in mm to assume along i, j, k", path, i + 1, c3_axis_name[i], p,
                    h->qform_code > 0 ? "qform" : "voxel grid (no qform either)");
  }
  return CSAL3D_OK;
}

/* What the header claims against the memory budget, before any voxel is read. */
static csal3d_status c3_check_memory(const char *path, const c3_nifti_read_options *o,
                                     const c3_raw_header *h) {
  double vox = 1;
  for (int i = 1; i <= h->dim[0] && i <= 3; i++) vox *= (double)h->dim[i];
  const double nt = h->dim[0] >= 4 ? (double)h->dim[4] : 1;
  const double n = vox * (o->channel == CSAL3D_CHANNEL_ALL ? nt : 1);
  const int copies = 1 + o->float_copies;
  const double stored = n * h->nbyper, floats = 4.0 * n * copies;
  const double ext = h->single ? h->vox_offset : 0; /* extensions nifticlib holds */
  const double need = ext + stored + floats;
  if (o->max_memory > 0 && need > (double)o->max_memory) {
    char a[32], b[32], c[32], d[32];
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "%s: loading it would need %s (%.0f voxels: %s of %s as stored, %d "
                    "float32 cop%s of %s%s), more than the limit of %s; set the option "
                    "max_memory to allow more", path, c3_bytes_text(need, a, sizeof a), n,
                    c3_bytes_text(stored, b, sizeof b), c3_datatype_name(h->datatype), copies,
                    copies == 1 ? "y" : "ies each", c3_bytes_text(4.0 * n, c, sizeof c),
                    ext > 65536 ? ", and the header's extensions" : "",
                    c3_bytes_text((double)o->max_memory, d, sizeof d));
  }
  return CSAL3D_OK;
}

static csal3d_status c3_check_raw_header(const char *path, const c3_nifti_read_options *o,
                                         c3_raw_header *h) {
  memset(h, 0, sizeof *h);
  gzFile g;
  C3_TRY(c3_gzopen_regular(path, &g, &h->file_size));
  unsigned char b[540];
  memset(b, 0, sizeof b);
  int got = gzread(g, b, sizeof b), zerr = Z_OK;
  const char *zmsg = gzerror(g, &zerr);
  char zcopy[128];
  snprintf(zcopy, sizeof zcopy, "%s", zmsg ? zmsg : "");
  h->gz = !gzdirect(g);
  gzclose(g);
  if (got < 0 || (zerr != Z_OK && zerr != Z_BUF_ERROR))
    return c3_error(CSAL3D_ERR_FORMAT, "%s: corrupt gzip stream (%s)", path, zcopy);
  if (got < 4)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: not a NIfTI file (only %d bytes)", path, got);
  int32_t sz = c3_rd_i32(b, 0);
  int swap = 0;
  if (sz == 348 || sz == 540) swap = 0;
  else if (c3_bswap32((uint32_t)sz) == 348 || c3_bswap32((uint32_t)sz) == 540) swap = 1;
  else
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: not a NIfTI file (header size field is %d; NIfTI-1 has 348, "
                    "NIfTI-2 has 540)", path, (int)sz);
  h->version = c3_rd_i32(b, swap) == 348 ? 1 : 2;
  int need = h->version == 1 ? 348 : 540;
  if (got < need)
    return c3_error(CSAL3D_ERR_IO, "%s: truncated NIfTI-%d header (%d of %d bytes)", path,
                    h->version, got, need);
  if (h->version == 1) {
    if (memcmp(b + 344, "n+1\0", 4) && memcmp(b + 344, "ni1\0", 4))
      return c3_error(CSAL3D_ERR_FORMAT,
                      "%s: wrong magic \"%.3s\" (NIfTI-1 needs \"n+1\" or \"ni1\"; ANALYZE "
                      "7.5 files are not supported)", path, (const char *)b + 344);
    h->single = b[345] == '+';
    for (int i = 0; i < 8; i++) h->dim[i] = c3_rd_i16(b + 40 + 2 * i, swap);
    h->datatype = c3_rd_i16(b + 70, swap);
    for (int i = 0; i < 4; i++) h->pixdim[i] = c3_rd_f32(b + 76 + 4 * i, swap);
    h->vox_offset = c3_rd_f32(b + 108, swap);
    h->scl_slope = c3_rd_f32(b + 112, swap);
    h->scl_inter = c3_rd_f32(b + 116, swap);
    h->qform_code = c3_rd_i16(b + 252, swap);
    h->sform_code = c3_rd_i16(b + 254, swap);
  } else {
    if (memcmp(b + 4, "n+2\0\r\n\032\n", 8) && memcmp(b + 4, "ni2\0\r\n\032\n", 8))
      return c3_error(CSAL3D_ERR_FORMAT,
                      "%s: wrong magic \"%.3s\" (NIfTI-2 needs \"n+2\" or \"ni2\" with "
                      "\\r\\n\\032\\n)", path, (const char *)b + 4);
    h->single = b[5] == '+';
    for (int i = 0; i < 8; i++) h->dim[i] = c3_rd_i64(b + 16 + 8 * i, swap);
    h->datatype = c3_rd_i16(b + 12, swap);
    for (int i = 0; i < 4; i++) h->pixdim[i] = c3_rd_f64(b + 104 + 8 * i, swap);
    h->vox_offset = (double)c3_rd_i64(b + 168, swap);
    h->scl_slope = c3_rd_f64(b + 176, swap);
    h->scl_inter = c3_rd_f64(b + 184, swap);
    h->qform_code = c3_rd_i32(b + 344, swap);
    h->sform_code = c3_rd_i32(b + 348, swap);
  }
  if (h->dim[0] < 1 || h->dim[0] > 7)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: dim[0] is %lld; the number of dimensions must be 1 to 7", path,
                    (long long)h->dim[0]);
  for (int i = 1; i <= h->dim[0]; i++)
    if (h->dim[i] < 1)
      return c3_error(CSAL3D_ERR_FORMAT, "%s: dimension %d is %lld (must be >= 1)", path, i,
                      (long long)h->dim[i]);
  for (int i = 5; i <= h->dim[0]; i++)
    if (h->dim[i] > 1)
      return c3_error(CSAL3D_ERR_UNSUPPORTED,
                      "%s: %lld-D image (dimension %d is %lld); at most 4-D (x, y, z, "
                      "channels) is supported", path, (long long)h->dim[0], i,
                      (long long)h->dim[i]);
  if (!c3_datatype_supported(h->datatype))
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "%s: datatype %d (%s) is not supported; use an integer or float32/64 image",
                    path, h->datatype, c3_datatype_name(h->datatype));
  h->nbyper = c3_datatype_bytes(h->datatype);
  /* Voxel count against the guard, without overflow. */
  double total = 1;
  for (int i = 1; i <= h->dim[0] && i <= 4; i++) total *= (double)h->dim[i];
  if (total > (double)o->max_voxels)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "%s: the header claims %.0f voxels (%lld x %lld x %lld x %lld), more "
                    "than the limit of %lld (max_voxels)", path, total,
                    (long long)h->dim[1], (long long)(h->dim[0] >= 2 ? h->dim[2] : 1),
                    (long long)(h->dim[0] >= 3 ? h->dim[3] : 1),
                    (long long)(h->dim[0] >= 4 ? h->dim[4] : 1), (long long)o->max_voxels);
  C3_TRY(c3_check_vox_offset(path, h));
  C3_TRY(c3_check_scaling(path, h));
  C3_TRY(c3_check_pixdim(path, o, h));
  return c3_check_memory(path, o, h);
}

/* Value i of raw data of a NIfTI datatype as double. */
static inline double c3_raw_value(const void *data, int dt, int64_t i) {
  switch (dt) {
  case NIFTI_TYPE_UINT8: return ((const uint8_t *)data)[i];
  case NIFTI_TYPE_INT8: return ((const int8_t *)data)[i];
  case NIFTI_TYPE_INT16: return ((const int16_t *)data)[i];
  case NIFTI_TYPE_UINT16: return ((const uint16_t *)data)[i];
  case NIFTI_TYPE_INT32: return ((const int32_t *)data)[i];
  case NIFTI_TYPE_UINT32: return ((const uint32_t *)data)[i];
  case NIFTI_TYPE_INT64: return (double)((const int64_t *)data)[i];
  case NIFTI_TYPE_UINT64: return (double)((const uint64_t *)data)[i];
  case NIFTI_TYPE_FLOAT32: return ((const float *)data)[i];
  default: return ((const double *)data)[i];
  }
}

static void c3_dmat_to_array(nifti_dmat44 m, double a[4][4]) {
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) a[i][j] = m.m[i][j];
}

void c3_nifti_image_clear(c3_nifti_image *im) {
  if (!im) return;
  c3_free(im->data);
  im->data = NULL;
}

/* A .hdr's image file is found by nifticlib, which opens the candidates: refuse any that
 * exists and is not a regular file before it could block on one. */
static csal3d_status c3_check_image_candidates(const char *path) {
  size_t n = strlen(path);
  const size_t cut = c3_ends_with_nocase(path, ".hdr.gz") ? 7 : 4;
  static const char *const ext[] = {".img", ".img.gz", ".IMG", ".IMG.gz"};
  char *p;
  C3_TRY(c3_alloc(n + 8, "path", (void **)&p));
  csal3d_status s = CSAL3D_OK;
  for (int i = 0; i < 4 && s == CSAL3D_OK; i++) {
    struct stat st;
    snprintf(p, n + 8, "%.*s%s", (int)(n - cut), path, ext[i]);
    if (stat(p, &st) == 0 && !S_ISREG(st.st_mode))
      s = c3_error(CSAL3D_ERR_IO, "%s: its image file %s is not a regular file (a folder, "
                   "FIFO, socket or device)", path, p);
  }
  c3_free(p);
  return s;
}

/* Reads `nbytes` of voxels from byte `offset` of the image file into raw. A compressed
 * stream is then read on to its end (so that zlib checks its length and CRC), but no
 * further than `promised` bytes in all (what the header says the file holds) and a little
 * slack: a stream that inflates beyond that is refused, not read forever. */
static csal3d_status c3_read_voxels(const char *path, const char *iname, int64_t offset,
                                    size_t nbytes, double promised, const char *dtname,
                                    void *raw) {
  gzFile g;
  C3_TRY(c3_gzopen_regular(iname, &g, NULL));
  gzbuffer(g, 1 << 17);
  size_t got = 0;
  if (gzseek(g, (z_off_t)offset, SEEK_SET) == (z_off_t)offset) {
    while (got < nbytes) {
      size_t chunk = nbytes - got > (1u << 30) ? (1u << 30) : nbytes - got;
      int r = gzread(g, (char *)raw + got, (unsigned)chunk);
      if (r <= 0) break;
      got += (size_t)r;
    }
  }
  const int plain = gzdirect(g);
  const double at_end = (double)gztell(g);
  double extra = 0;
  const double slack = 1 << 20, allowed = promised - ((double)offset + (double)nbytes) + slack;
  if (got == nbytes && !plain) {
    char sink[1 << 14];
    int r;
    while (extra <= allowed && (r = gzread(g, sink, sizeof sink)) > 0) extra += r;
  }
  int zerr = Z_OK;
  const char *zmsg = gzerror(g, &zerr);
  char why[160];
  snprintf(why, sizeof why, "%s", zerr != Z_OK && zerr != Z_BUF_ERROR && zmsg ? zmsg : "");
  gzclose(g);
  if (extra > allowed)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: the gzip stream inflates to more than the %.0f bytes the header "
                    "promises (stopped reading %.0f bytes past them)", path, promised,
                    (double)offset + (double)nbytes + extra - promised);
  if (got == 0 && at_end < (double)offset)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: vox_offset %lld is beyond the end of the %s (%.0f bytes)", path,
                    (long long)offset, plain ? "image file" : "decompressed image data",
                    at_end);
  if (got < nbytes || (zerr != Z_OK && zerr != Z_BUF_ERROR) || (zerr == Z_BUF_ERROR && !plain))
    return c3_error(CSAL3D_ERR_IO,
                    "%s: truncated or corrupt voxel data (read %zu of %zu bytes of %s%s%s)",
                    path, got, nbytes, dtname, *why ? ": " : "", why);
  return CSAL3D_OK;
}

csal3d_status c3_nifti_read(const char *path, const c3_nifti_read_options *o,
                            c3_nifti_image *out) {
  C3_CHECK_ARG(out && o, "nifti_read: NULL argument");
  memset(out, 0, sizeof *out);
  C3_CHECK_ARG(path && *path, "volume_load: path is NULL or empty");
  C3_CHECK_ARG(o->max_voxels > 0, "nifti_read: max_voxels is %lld", (long long)o->max_voxels);
  C3_CHECK_ARG(o->channel >= CSAL3D_CHANNEL_ALL, "%s: channel %d is not valid (>= 0, "
               "CSAL3D_CHANNEL_ALL or CSAL3D_CHANNEL_NONE)", path, o->channel);
  for (int i = 0; i < 3; i++)
    C3_CHECK_ARG(o->assume_spacing[i] >= 0 && isfinite(o->assume_spacing[i]),
                 "%s: assume_spacing[%d] is %g; each entry must be 0 (none) or a spacing "
                 "in mm > 0", path, i, o->assume_spacing[i]);
  const int as_label = o->as_label;
  pthread_once(&c3_nifti_once, c3_nifti_quiet);

  /* Nothing is opened before the file is known to be a regular one. */
  struct stat st;
  if (stat(path, &st) != 0)
    return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  C3_TRY(c3_check_regular(path, &st));
  const int pair = c3_ends_with_nocase(path, ".hdr") || c3_ends_with_nocase(path, ".hdr.gz");
  if (!c3_ends_with_nocase(path, ".nii") && !c3_ends_with_nocase(path, ".nii.gz") && !pair)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "%s: the name must end in .nii, .nii.gz or .hdr (nifticlib finds files "
                    "by their extension)", path);
  if (pair) C3_TRY(c3_check_image_candidates(path));
  c3_raw_header rh;
  C3_TRY(c3_check_raw_header(path, o, &rh));

  nifti_image *nim = nifti_image_read(path, 0);
  if (!nim)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: nifticlib rejected the header (inconsistent "
                    "fields, or the image file of a .hdr pair is missing)", path);
  csal3d_status s = CSAL3D_OK;
  float *storage = NULL;
  void *raw = NULL;
  const int64_t nx = nim->nx, ny = nim->ny > 0 ? nim->ny : 1, nz = nim->nz > 0 ? nim->nz : 1;
  const int64_t nt = nim->ndim >= 4 && nim->nt > 0 ? nim->nt : 1;
  if (nx != rh.dim[1] || nim->datatype != rh.datatype || nim->nbyper != rh.nbyper ||
      nim->nvox != nx * ny * nz * nt) {
    s = c3_error(CSAL3D_ERR_FORMAT, "%s: inconsistent header (dimensions or datatype)", path);
    goto done;
  }
  /* Which channels. */
  int64_t first = 0, channels = 1;
  if (nt > 1) {
    if (o->channel == CSAL3D_CHANNEL_NONE) {
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                   "%s: 4-D image with %lld channels; set the option channel to one of "
                   "0..%lld, or to all to keep every volume", path, (long long)nt,
                   (long long)nt - 1);
      goto done;
    }
    if (o->channel == CSAL3D_CHANNEL_ALL) {
      channels = nt;
      if (as_label) {
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s: a label image has one channel; this "
                     "one has %lld: choose one", path, (long long)nt);
        goto done;
      }
    } else if (o->channel >= nt) {
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s: channel %d does not exist (the image has "
                   "%lld: set the option channel to one of 0..%lld, or to all)", path,
                   o->channel, (long long)nt, (long long)nt - 1);
      goto done;
    } else {
      first = o->channel;
    }
  } else if (o->channel > 0) {
    s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                 "%s: channel %d asked of a 3-D image (it has only channel 0: leave the "
                 "option channel out)", path, o->channel);
    goto done;
  }
  /* Where the voxels are: our own reading of vox_offset (nifticlib casts it to int and
   * moves anything below the header's size to just after it). */
  const char *iname = nim->iname ? nim->iname : path;
  const int64_t vox_offset = (int64_t)rh.vox_offset;
  const double data_bytes = (double)nim->nvox * nim->nbyper;
  if (!c3_ends_with_nocase(iname, ".gz")) {
    /* An uncompressed image file: a short one is found before reading it. */
    if (stat(iname, &st) != 0) {
      s = c3_error(CSAL3D_ERR_IO, "%s: cannot open its image data %s: %s", path, iname,
                   strerror(errno));
      goto done;
    }
    if ((s = c3_check_regular(iname, &st)) != CSAL3D_OK) goto done;
    if ((double)vox_offset >= (double)st.st_size) {
      s = c3_error(CSAL3D_ERR_FORMAT, "%s: vox_offset %lld is beyond the end of its image "
                   "file (%lld bytes)", path, (long long)vox_offset, (long long)st.st_size);
      goto done;
    }
    if ((double)st.st_size < (double)vox_offset + data_bytes) {
      s = c3_error(CSAL3D_ERR_IO,
                   "%s: truncated: the header promises %.0f bytes of voxels from offset "
                   "%lld, the file has %lld bytes", path, data_bytes, (long long)vox_offset,
                   (long long)st.st_size);
      goto done;
    }
  }
  /* The voxels, read here rather than by nifti_image_load: nifticlib silently turns NaN
   * and Inf into 0, and we read only the channels asked for. */
  const int64_t vox = nx * ny * nz;
  const size_t nbytes = (size_t)(vox * channels) * (size_t)nim->nbyper;
  s = c3_alloc(nbytes, "raw voxels", &raw);
  if (s != CSAL3D_OK) goto done;
  s = c3_read_voxels(path, iname, vox_offset + first * vox * nim->nbyper, nbytes,
                     (double)vox_offset + data_bytes, c3_datatype_name(nim->datatype), raw);
  if (s != CSAL3D_OK) goto done;
  if (nim->nbyper > 1 && nim->byteorder != nifti_short_order())
    nifti_swap_Nbytes(vox * channels, nim->swapsize, raw);
  /* Convert to float32 in storage order, scaled as nibabel does (the header's own values:
   * nifticlib turns a non-finite scl_inter into 0). */
  s = c3_alloc_array((size_t)(vox * channels), sizeof(float), "voxels", (void **)&storage);
  if (s != CSAL3D_OK) goto done;
  const double slope = rh.scl_slope, inter = rh.scl_inter;
  const int scale = slope != 0 && isfinite(slope) && !(slope == 1 && inter == 0);
  int64_t bad = 0, bad_at = -1, notint = 0, notint_at = -1;
  const int dt = nim->datatype;
  for (int64_t i = 0; i < vox * channels; i++) {
    double x = c3_raw_value(raw, dt, i);
    if (scale) x = x * slope + inter;
    float f = (float)x;
    if (!isfinite(f)) {
      if (!bad++) bad_at = i;
      f = 0.0f;
    } else if (as_label && (f < 0 || f > 65535 || f != floorf(f))) {
      if (!notint++) notint_at = i;
    }
    storage[i] = f;
  }
  if (bad && !o->allow_nonfinite) {
    int64_t c = bad_at / vox, r = bad_at % vox;
    s = c3_error(CSAL3D_ERR_NUMERICAL,
                 "%s: %lld NaN or Inf voxels (the first at i=%lld j=%lld k=%lld, channel "
                 "%lld); fix the file, or set the option allow_nonfinite to read them as 0", path,
                 (long long)bad, (long long)(r % nx), (long long)(r / nx % ny),
                 (long long)(r / nx / ny), (long long)(c + first));
    goto done;
  }
  if (notint) {
    int64_t r = notint_at % vox;
    s = c3_error(CSAL3D_ERR_FORMAT,
                 "%s: not a label image: %lld voxels are not integers from 0 to 65535 (the "
                 "first, %g, at i=%lld j=%lld k=%lld)", path, (long long)notint,
                 (double)storage[notint_at], (long long)(r % nx), (long long)(r / nx % ny),
                 (long long)(r / nx / ny));
    goto done;
  }
  /* The spacing nifticlib made 1 mm of an unusable (or, with a qform, negative) pixdim:
   * the qform's column has length 1 there (with a qform), or the diagonal entry is 1 (no
   * xform); both become the spacing decided by c3_check_pixdim. */
  for (int i = 0; i < 3; i++) {
    const double want = rh.spacing_fix[i];
    if (want <= 0) continue;
    if (nim->qform_code > 0)
      for (int r = 0; r < 3; r++) nim->qto_xyz.m[r][i] *= want;
    else
      nim->qto_xyz.m[i][i] = want;
  }
  out->version = rh.version;
  out->dim[0] = nx, out->dim[1] = ny, out->dim[2] = nz;
  out->channels = channels;
  out->data = storage;
  storage = NULL;
  c3_dmat_to_array(nim->sform_code > 0 ? nim->sto_xyz : nim->qto_xyz, out->affine);
  out->affine[3][0] = out->affine[3][1] = out->affine[3][2] = 0, out->affine[3][3] = 1;
  c3_dmat_to_array(nim->qto_xyz, out->qform);
  c3_dmat_to_array(nim->sto_xyz, out->sform);
  out->qform_code = nim->qform_code;
  out->sform_code = nim->sform_code;
  out->datatype = nim->datatype;
  out->datatype_name = c3_datatype_name(nim->datatype);
  out->file_volumes = nt;
done:
  c3_free(storage);
  c3_free(raw);
  nifti_image_free(nim);
  return s;
}

/* ---- writing ---- */

/* The file being written: a temporary file beside the target (io/fileutil.h), written
 * through zlib when gz is set (on a duplicate of its descriptor, the stdio stream left
 * unused), else through the stream. */
typedef struct c3_nifti_out {
  c3_outfile o;
  gzFile gz;
} c3_nifti_out;

static csal3d_status c3_nifti_out_open(c3_nifti_out *f, const char *path, int gz_level) {
  f->gz = NULL;
  C3_TRY(c3_outfile_open(&f->o, path));
  if (gz_level > 0) {
    char mode[16];
    snprintf(mode, sizeof mode, "wb%d", gz_level);
    int fd2 = dup(fileno(f->o.f));
    f->gz = fd2 >= 0 ? gzdopen(fd2, mode) : NULL;
    if (!f->gz) {
      if (fd2 >= 0) close(fd2);
      c3_outfile_abort(&f->o);
      return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: cannot start gzip compression", path);
    }
  }
  return CSAL3D_OK;
}

static csal3d_status c3_nifti_out_write(c3_nifti_out *f, const void *data, size_t size) {
  if (!f->gz) {
    c3_outfile_write(&f->o, data, size);
    return CSAL3D_OK; /* a failure is reported by c3_outfile_finish, naming the target */
  }
  const char *p = data;
  while (size > 0) {
    unsigned chunk = size > (1u << 30) ? (1u << 30) : (unsigned)size;
    int w = gzwrite(f->gz, p, chunk);
    if (w <= 0) {
      int zerr;
      const char *m = gzerror(f->gz, &zerr);
      return c3_error(CSAL3D_ERR_IO, "%s: write failed: %s", f->o.path,
                      zerr == Z_ERRNO ? strerror(errno) : m);
    }
    p += w, size -= (size_t)w;
  }
  return CSAL3D_OK;
}

/* Ends the write: on success (s == CSAL3D_OK) the file is moved into place; otherwise,
 * or when finishing fails, the temporary file is removed and the target left as it was. */
static csal3d_status c3_nifti_out_close(c3_nifti_out *f, csal3d_status s) {
  if (f->gz) {
    int e = 0, r = gzclose(f->gz);
    if (r == Z_ERRNO) e = errno;
    f->gz = NULL;
    if (r != Z_OK && s == CSAL3D_OK)
      s = c3_error(CSAL3D_ERR_IO, "%s: finishing the gzip stream failed: %s", f->o.path,
                   e ? strerror(e) : zError(r));
  }
  if (s == CSAL3D_OK) s = c3_outfile_commit(&f->o);
  c3_outfile_abort(&f->o);
  return s;
}

static void c3_array_to_dmat(const double a[4][4], nifti_dmat44 *m) {
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) m->m[i][j] = a[i][j];
}

csal3d_status c3_nifti_write(const char *path, const c3_nifti_write_spec *w) {
  C3_CHECK_ARG(path && *path && w && w->data && w->channels >= 1,
               "nifti_write: NULL or empty argument");
  const int gz = w->gz_level > 0;
  const int64_t total = w->dim[0] * w->dim[1] * w->dim[2] * w->channels;
  const int64_t *dims = w->dim;
  const int qcode = w->qform_code, scode = w->sform_code;
  const double(*smat)[4] = w->sform;
  const double *sp = w->pixdim;
  const int version = w->version;
  /* Values: range for the datatype. */
  float lo = INFINITY, hi = -INFINITY;
  int64_t nonfinite = 0;
  for (int64_t i = 0; i < total; i++) {
    float x = w->data[i];
    if (!isfinite(x)) nonfinite++;
    else {
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
  }
  int dt;
  switch (w->dtype) {
  case CSAL3D_SAVE_FLOAT32: dt = NIFTI_TYPE_FLOAT32; break;
  case CSAL3D_SAVE_INT16: dt = NIFTI_TYPE_INT16; break;
  case CSAL3D_SAVE_UINT8: dt = NIFTI_TYPE_UINT8; break;
  default:
    dt = !w->is_label ? NIFTI_TYPE_FLOAT32
         : (lo >= 0 && hi <= 255) || total == nonfinite ? NIFTI_TYPE_UINT8
         : NIFTI_TYPE_UINT16;
    break;
  }
  if (dt != NIFTI_TYPE_FLOAT32) {
    double dmin = dt == NIFTI_TYPE_INT16 ? -32768 : 0;
    double dmax = dt == NIFTI_TYPE_INT16 ? 32767 : dt == NIFTI_TYPE_UINT8 ? 255 : 65535;
    if (nonfinite)
      return c3_error(CSAL3D_ERR_NUMERICAL, "%s: %lld NaN or Inf voxels cannot be stored as "
                      "%s", path, (long long)nonfinite, c3_datatype_name(dt));
    if (total > 0 && (floor(lo + 0.5) < dmin || floor(hi + 0.5) > dmax))
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                      "%s: values from %g to %g do not fit in %s", path, lo, hi,
                      c3_datatype_name(dt));
  }
  int nbyper = dt == NIFTI_TYPE_UINT8 ? 1 : dt == NIFTI_TYPE_FLOAT32 ? 4 : 2;

  /* Header. */
  double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
  nifti_dmat44 qm;
  c3_array_to_dmat(w->qform, &qm);
  nifti_dmat44_to_quatern(qm, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
  const int ndim = w->channels > 1 ? 4 : 3;
  const int big = version == 2 || dims[0] > 32767 || dims[1] > 32767 || dims[2] > 32767 ||
                  w->channels > 32767;
  unsigned char hdr[544];
  size_t hdr_size;
  memset(hdr, 0, sizeof hdr);
  if (!big) {
    nifti_1_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = 348;
    h.dim[0] = (short)ndim;
    for (int i = 0; i < 3; i++) h.dim[i + 1] = (short)dims[i];
    h.dim[4] = (short)w->channels;
    for (int i = 5; i < 8; i++) h.dim[i] = 1;
    h.datatype = (short)dt;
    h.bitpix = (short)(8 * nbyper);
    h.pixdim[0] = (float)(qfac < 0 ? -1 : 1);
    for (int i = 0; i < 3; i++) h.pixdim[i + 1] = (float)sp[i];
    for (int i = 4; i < 8; i++) h.pixdim[i] = 1;
    h.vox_offset = 352;
    h.scl_slope = 1, h.scl_inter = 0;
    h.xyzt_units = NIFTI_UNITS_MM;
    h.qform_code = (short)qcode, h.sform_code = (short)scode;
    h.quatern_b = (float)qb, h.quatern_c = (float)qc, h.quatern_d = (float)qd;
    h.qoffset_x = (float)qx, h.qoffset_y = (float)qy, h.qoffset_z = (float)qz;
    for (int j = 0; j < 4; j++) {
      h.srow_x[j] = (float)smat[0][j];
      h.srow_y[j] = (float)smat[1][j];
      h.srow_z[j] = (float)smat[2][j];
    }
    snprintf(h.descrip, sizeof h.descrip, "libcsal3d");
    memcpy(h.magic, "n+1\0", 4);
    memcpy(hdr, &h, sizeof h);
    hdr_size = 352; /* header + 4 bytes: no extensions */
  } else {
    nifti_2_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = 540;
    memcpy(h.magic, "n+2\0\r\n\032\n", 8);
    h.datatype = (int16_t)dt;
    h.bitpix = (int16_t)(8 * nbyper);
    h.dim[0] = ndim;
    for (int i = 0; i < 3; i++) h.dim[i + 1] = dims[i];
    h.dim[4] = w->channels;
    for (int i = 5; i < 8; i++) h.dim[i] = 1;
    h.pixdim[0] = qfac < 0 ? -1 : 1;
    for (int i = 0; i < 3; i++) h.pixdim[i + 1] = sp[i];
    for (int i = 4; i < 8; i++) h.pixdim[i] = 1;
    h.vox_offset = 544;
    h.scl_slope = 1, h.scl_inter = 0;
    h.xyzt_units = NIFTI_UNITS_MM;
    h.qform_code = qcode, h.sform_code = scode;
    h.quatern_b = qb, h.quatern_c = qc, h.quatern_d = qd;
    h.qoffset_x = qx, h.qoffset_y = qy, h.qoffset_z = qz;
    for (int j = 0; j < 4; j++) {
      h.srow_x[j] = smat[0][j];
      h.srow_y[j] = smat[1][j];
      h.srow_z[j] = smat[2][j];
    }
    snprintf(h.descrip, sizeof h.descrip, "libcsal3d");
    memcpy(hdr, &h, sizeof h);
    hdr_size = 544;
  }

  /* Data, converted chunk by chunk. */
  const float *storage = w->data;
  c3_nifti_out f;
  C3_TRY(c3_nifti_out_open(&f, path, gz ? w->gz_level : 0));
  csal3d_status s = c3_nifti_out_write(&f, hdr, hdr_size);
  enum { CHUNK = 1 << 16 };
  unsigned char buf[CHUNK * 4];
  for (int64_t i = 0; s == CSAL3D_OK && i < total; i += CHUNK) {
    int64_t n = total - i < CHUNK ? total - i : CHUNK;
    for (int64_t j = 0; j < n; j++) {
      float x = storage[i + j];
      if (dt == NIFTI_TYPE_FLOAT32) memcpy(buf + 4 * j, &x, 4);
      else if (dt == NIFTI_TYPE_UINT8) buf[j] = (uint8_t)floorf(x + 0.5f);
      else if (dt == NIFTI_TYPE_INT16) {
        int16_t y = (int16_t)floorf(x + 0.5f);
        memcpy(buf + 2 * j, &y, 2);
      } else {
        uint16_t y = (uint16_t)floorf(x + 0.5f);
        memcpy(buf + 2 * j, &y, 2);
      }
    }
    s = c3_nifti_out_write(&f, buf, (size_t)(n * nbyper));
  }
  return c3_nifti_out_close(&f, s);
}
