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
#include "io/nifti.h"

/* nifticlib prints to stderr unless its (global) debug level is 0: set it once. */
static pthread_once_t c3_nifti_once = PTHREAD_ONCE_INIT;
static void c3_nifti_quiet(void) { nifti_set_debug_level(0); }

static int c3_ends_with(const char *s, const char *suffix) {
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
static int64_t c3_rd_i64(const unsigned char *p, int swap) {
  uint64_t x;
  memcpy(&x, p, 8);
  if (swap) x = (uint64_t)c3_bswap32((uint32_t)x) << 32 | c3_bswap32((uint32_t)(x >> 32));
  return (int64_t)x;
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

typedef struct c3_raw_header {
  int version; /* 1 or 2 */
  int64_t dim[8];
  int datatype;
} c3_raw_header;

static csal3d_status c3_check_raw_header(const char *path, int64_t max_voxels,
                                         c3_raw_header *h) {
  gzFile g = gzopen(path, "rb");
  if (!g) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char b[540];
  memset(b, 0, sizeof b);
  int got = gzread(g, b, sizeof b), zerr = Z_OK;
  const char *zmsg = gzerror(g, &zerr);
  char zcopy[128];
  snprintf(zcopy, sizeof zcopy, "%s", zmsg ? zmsg : "");
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
    for (int i = 0; i < 8; i++) h->dim[i] = c3_rd_i16(b + 40 + 2 * i, swap);
    h->datatype = c3_rd_i16(b + 70, swap);
  } else {
    if (memcmp(b + 4, "n+2\0\r\n\032\n", 8) && memcmp(b + 4, "ni2\0\r\n\032\n", 8))
      return c3_error(CSAL3D_ERR_FORMAT,
                      "%s: wrong magic \"%.3s\" (NIfTI-2 needs \"n+2\" or \"ni2\" with "
                      "\\r\\n\\032\\n)", path, (const char *)b + 4);
    for (int i = 0; i < 8; i++) h->dim[i] = c3_rd_i64(b + 16 + 8 * i, swap);
    h->datatype = c3_rd_i16(b + 12, swap);
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
  /* Voxel count against the guard, without overflow. */
  double total = 1;
  for (int i = 1; i <= h->dim[0] && i <= 4; i++) total *= (double)h->dim[i];
  if (total > (double)max_voxels)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "%s: the header claims %.0f voxels (%lld x %lld x %lld x %lld), more "
                    "than the limit of %lld (max_voxels)", path, total,
                    (long long)h->dim[1], (long long)(h->dim[0] >= 2 ? h->dim[2] : 1),
                    (long long)(h->dim[0] >= 3 ? h->dim[3] : 1),
                    (long long)(h->dim[0] >= 4 ? h->dim[4] : 1), (long long)max_voxels);
  return CSAL3D_OK;
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

csal3d_status c3_nifti_read(const char *path, const c3_nifti_read_options *o,
                            c3_nifti_image *out) {
  C3_CHECK_ARG(out && o, "nifti_read: NULL argument");
  memset(out, 0, sizeof *out);
  C3_CHECK_ARG(path && *path, "volume_load: path is NULL or empty");
  C3_CHECK_ARG(o->max_voxels > 0, "nifti_read: max_voxels is %lld", (long long)o->max_voxels);
  C3_CHECK_ARG(o->channel >= CSAL3D_CHANNEL_ALL, "%s: channel %d is not valid (>= 0, "
               "CSAL3D_CHANNEL_ALL or CSAL3D_CHANNEL_NONE)", path, o->channel);
  const int as_label = o->as_label;
  pthread_once(&c3_nifti_once, c3_nifti_quiet);

  struct stat st;
  if (stat(path, &st) != 0)
    return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return c3_error(CSAL3D_ERR_IO, "%s: is a folder, not a NIfTI file", path);
  if (!c3_ends_with(path, ".nii") && !c3_ends_with(path, ".nii.gz") &&
      !c3_ends_with(path, ".hdr") && !c3_ends_with(path, ".hdr.gz"))
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "%s: the name must end in .nii, .nii.gz or .hdr (nifticlib finds files "
                    "by their extension)", path);
  c3_raw_header rh;
  C3_TRY(c3_check_raw_header(path, o->max_voxels, &rh));

  nifti_image *nim = nifti_image_read(path, 0);
  if (!nim)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: nifticlib rejected the header (inconsistent "
                    "fields, or the image file of a .hdr pair is missing)", path);
  csal3d_status s = CSAL3D_OK;
  float *storage = NULL;
  void *raw = NULL;
  const int64_t nx = nim->nx, ny = nim->ny > 0 ? nim->ny : 1, nz = nim->nz > 0 ? nim->nz : 1;
  const int64_t nt = nim->ndim >= 4 && nim->nt > 0 ? nim->nt : 1;
  if (nx != rh.dim[1] || !c3_datatype_supported(nim->datatype) ||
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
  /* For an uncompressed image file, a short file is found before reading it. */
  if (nim->iname && !c3_ends_with(nim->iname, ".gz")) {
    struct stat si;
    double need = (double)nim->iname_offset + (double)nim->nvox * nim->nbyper;
    if (stat(nim->iname, &si) != 0) {
      s = c3_error(CSAL3D_ERR_IO, "%s: cannot open its image data %s: %s", path, nim->iname,
                   strerror(errno));
      goto done;
    }
    if ((double)si.st_size < need) {
      s = c3_error(CSAL3D_ERR_IO,
                   "%s: truncated: the header promises %.0f bytes of voxels from offset "
                   "%lld, the file has %lld bytes", path,
                   (double)nim->nvox * nim->nbyper, (long long)nim->iname_offset,
                   (long long)si.st_size);
      goto done;
    }
  }
  /* The voxels, read here rather than by nifti_image_load: nifticlib silently turns NaN
   * and Inf into 0, and we read only the channels asked for. */
  const int64_t vox = nx * ny * nz;
  const size_t nbytes = (size_t)(vox * channels) * (size_t)nim->nbyper;
  s = c3_alloc(nbytes, "raw voxels", &raw);
  if (s != CSAL3D_OK) goto done;
  {
    gzFile g = gzopen(nim->iname ? nim->iname : path, "rb");
    if (!g) {
      s = c3_error(CSAL3D_ERR_IO, "%s: cannot open its image data: %s", path, strerror(errno));
      goto done;
    }
    gzbuffer(g, 1 << 17);
    z_off_t offset = (z_off_t)nim->iname_offset + (z_off_t)(first * vox * nim->nbyper);
    size_t got = 0;
    if (gzseek(g, offset, SEEK_SET) == offset) {
      while (got < nbytes) {
        size_t chunk = nbytes - got > (1u << 30) ? (1u << 30) : nbytes - got;
        int r = gzread(g, (char *)raw + got, (unsigned)chunk);
        if (r <= 0) break;
        got += (size_t)r;
      }
    }
    /* Read a compressed stream to its end, so that zlib checks its length and CRC. */
    if (got == nbytes && gzdirect(g) == 0) {
      char sink[4096];
      while (gzread(g, sink, sizeof sink) > 0) {
      }
    }
    int zerr = Z_OK;
    const char *zmsg = gzerror(g, &zerr);
    char why[160];
    snprintf(why, sizeof why, "%s", zerr != Z_OK && zerr != Z_BUF_ERROR && zmsg ? zmsg : "");
    const int gzdirect_was_plain = gzdirect(g);
    gzclose(g);
    if (got < nbytes || (zerr != Z_OK && zerr != Z_BUF_ERROR) ||
        (zerr == Z_BUF_ERROR && !gzdirect_was_plain)) {
      s = c3_error(CSAL3D_ERR_IO,
                   "%s: truncated or corrupt voxel data (read %zu of %zu bytes of %s%s%s)",
                   path, got, nbytes, c3_datatype_name(nim->datatype), *why ? ": " : "", why);
      goto done;
    }
  }
  if (nim->nbyper > 1 && nim->byteorder != nifti_short_order())
    nifti_swap_Nbytes(vox * channels, nim->swapsize, raw);
  /* Convert to float32 in storage order. */
  s = c3_alloc_array((size_t)(vox * channels), sizeof(float), "voxels", (void **)&storage);
  if (s != CSAL3D_OK) goto done;
  double slope = nim->scl_slope, inter = nim->scl_inter;
  int scale = slope != 0 && isfinite(slope) && isfinite(inter) && !(slope == 1 && inter == 0);
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

typedef struct c3_atomic_file {
  int fd;
  gzFile gz;
  char tmp[PATH_MAX];
  const char *path;
} c3_atomic_file;

static csal3d_status c3_atomic_open(c3_atomic_file *f, const char *path, int gz_level) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  f->path = path;
  const char *slash = strrchr(path, '/');
  int dirlen = slash ? (int)(slash - path + 1) : 0;
  int n = snprintf(f->tmp, sizeof f->tmp, "%.*s.%s.tmp.XXXXXX", dirlen, path,
                   slash ? slash + 1 : path);
  if (n < 0 || (size_t)n >= sizeof f->tmp)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s: path too long", path);
  f->fd = mkstemp(f->tmp);
  if (f->fd < 0)
    return c3_error(CSAL3D_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                    strerror(errno));
  if (fchmod(f->fd, 0644) != 0) { /* mkstemp makes 0600 */
  }
  if (gz_level > 0) {
    char mode[16];
    snprintf(mode, sizeof mode, "wb%d", gz_level);
    int fd2 = dup(f->fd);
    f->gz = fd2 >= 0 ? gzdopen(fd2, mode) : NULL;
    if (!f->gz) {
      if (fd2 >= 0) close(fd2);
      close(f->fd);
      unlink(f->tmp);
      return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: cannot start gzip compression", path);
    }
  }
  return CSAL3D_OK;
}

static csal3d_status c3_atomic_write(c3_atomic_file *f, const void *data, size_t size) {
  const char *p = data;
  while (size > 0) {
    size_t chunk = size > (1u << 30) ? (1u << 30) : size;
    if (f->gz) {
      int w = gzwrite(f->gz, p, (unsigned)chunk);
      if (w <= 0) {
        int zerr;
        const char *m = gzerror(f->gz, &zerr);
        return c3_error(CSAL3D_ERR_IO, "%s: write failed: %s", f->path,
                        zerr == Z_ERRNO ? strerror(errno) : m);
      }
      p += w, size -= (size_t)w;
    } else {
      ssize_t w = write(f->fd, p, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0)
        return c3_error(CSAL3D_ERR_IO, "%s: write failed: %s", f->path,
                        w < 0 ? strerror(errno) : "no progress");
      p += w, size -= (size_t)w;
    }
  }
  return CSAL3D_OK;
}

static void c3_atomic_abort(c3_atomic_file *f) {
  if (f->gz) gzclose(f->gz);
  f->gz = NULL;
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  unlink(f->tmp);
}

static csal3d_status c3_atomic_commit(c3_atomic_file *f) {
  if (f->gz) {
    int r = gzclose(f->gz);
    f->gz = NULL;
    if (r != Z_OK) {
      c3_atomic_abort(f);
      return c3_error(CSAL3D_ERR_IO, "%s: finishing the gzip stream failed (%d)", f->path, r);
    }
  }
  if (fsync(f->fd) != 0 || close(f->fd) != 0) {
    int e = errno;
    f->fd = -1;
    c3_atomic_abort(f);
    return c3_error(CSAL3D_ERR_IO, "%s: flushing to disk failed: %s", f->path, strerror(e));
  }
  f->fd = -1;
  if (rename(f->tmp, f->path) != 0) {
    int e = errno;
    unlink(f->tmp);
    return c3_error(CSAL3D_ERR_IO, "%s: cannot move the finished file into place: %s",
                    f->path, strerror(e));
  }
  return CSAL3D_OK;
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
  c3_atomic_file f;
  csal3d_status s = c3_atomic_open(&f, path, gz ? w->gz_level : 0);
  if (s != CSAL3D_OK) return s;
  s = c3_atomic_write(&f, hdr, hdr_size);
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
    s = c3_atomic_write(&f, buf, (size_t)(n * nbyper));
  }
  if (s != CSAL3D_OK) {
    c3_atomic_abort(&f);
    return s;
  }
  return c3_atomic_commit(&f);
}
