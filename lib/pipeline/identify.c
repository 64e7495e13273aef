/* csal3d_file_identify: what a file is, by its content (include/csal3d/pipeline.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "csal3d/pipeline.h"

#include "core/alloc.h"
#include "core/error.h"

/* The largest safetensors header read (the format's own limit is 100 MB). */
#define C3_ID_MAX_HEADER ((uint64_t)100 << 20)

static uint32_t c3_le32(const unsigned char *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* A NIfTI header's start: sizeof_hdr 348 (NIfTI-1 / ANALYZE, magic at 344) or 540
 * (NIfTI-2, magic at 4), in either byte order. */
static int c3_is_nifti(const unsigned char *b, size_t n) {
  if (n < 8) return 0;
  uint32_t le = c3_le32(b), be = (uint32_t)b[3] | (uint32_t)b[2] << 8 | (uint32_t)b[1] << 16 |
                                 (uint32_t)b[0] << 24;
  if ((le == 540 || be == 540) && (!memcmp(b + 4, "n+2\0", 4) || !memcmp(b + 4, "ni2\0", 4)))
    return 1;
  if ((le == 348 || be == 348) && n >= 348)
    return !memcmp(b + 344, "n+1\0", 4) || !memcmp(b + 344, "ni1\0", 4);
  return 0;
}

/* Reads the first up to `cap` bytes of the file, through gzip when it is gzipped. */
static csal3d_status c3_head(const char *path, unsigned char *buf, size_t cap, size_t *n,
                             int *gz) {
  *n = 0;
  *gz = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char m[2] = {0, 0};
  ssize_t r = read(fd, m, 2);
  if (r < 0) {
    int e = errno;
    close(fd);
    return c3_error(CSAL3D_ERR_IO, "%s: cannot read: %s", path, strerror(e));
  }
  *gz = r == 2 && m[0] == 0x1f && m[1] == 0x8b;
  if (lseek(fd, 0, SEEK_SET) != 0) {
    close(fd);
    return c3_error(CSAL3D_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  }
  gzFile g = gzdopen(fd, "rb"); /* reads plain files as they are */
  if (!g) {
    close(fd);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  }
  int got = gzread(g, buf, (unsigned)cap);
  gzclose(g);
  *n = got > 0 ? (size_t)got : 0; /* a damaged stream: what came before the damage */
  return CSAL3D_OK;
}

/* The "format" of a safetensors file's metadata (type SAFETENSORS when it has none). */
static csal3d_status c3_safetensors_kind(const char *path, uint64_t hlen, off_t size,
                                         csal3d_file_type *type) {
  *type = CSAL3D_FILE_UNKNOWN;
  if (hlen < 2 || hlen > C3_ID_MAX_HEADER || (uint64_t)size < 8 + hlen) return CSAL3D_OK;
  FILE *f = fopen(path, "rb");
  if (!f) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char *h;
  csal3d_status s = c3_alloc((size_t)hlen, "safetensors header", (void **)&h);
  if (s == CSAL3D_OK && (fseek(f, 8, SEEK_SET) != 0 || fread(h, 1, (size_t)hlen, f) != hlen))
    s = c3_error(CSAL3D_ERR_IO, "%s: cannot read its header", path);
  fclose(f);
  if (s != CSAL3D_OK) {
    c3_free(h);
    return s;
  }
  json_t *root = json_loadb(h, (size_t)hlen, 0, NULL);
  c3_free(h);
  if (json_is_object(root)) {
    *type = CSAL3D_FILE_SAFETENSORS;
    const char *fmt = json_string_value(json_object_get(json_object_get(root, "__metadata__"),
                                                        "format"));
    if (fmt && !strcmp(fmt, "csal3d-scores")) *type = CSAL3D_FILE_SCORES;
    else if (fmt && !strcmp(fmt, "csal3d-checkpoint")) *type = CSAL3D_FILE_CHECKPOINT;
  }
  json_decref(root);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_file_identify(const char *path, csal3d_file_type *type) {
  C3_CHECK_ARG(type, "csal3d_file_identify: type is NULL");
  *type = CSAL3D_FILE_UNKNOWN;
  C3_CHECK_ARG(path && *path, "csal3d_file_identify: the path is empty");
  struct stat st;
  if (stat(path, &st) != 0) return c3_error(CSAL3D_ERR_IO, "%s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) return c3_error(CSAL3D_ERR_IO, "%s is a folder, not a file", path);
  if (!S_ISREG(st.st_mode))
    return c3_error(CSAL3D_ERR_IO, "%s is not a regular file (a FIFO, device or socket)", path);
  unsigned char b[352];
  size_t n;
  int gz;
  C3_TRY(c3_head(path, b, sizeof b, &n, &gz));
  if (c3_is_nifti(b, n)) {
    *type = CSAL3D_FILE_NIFTI;
    return CSAL3D_OK;
  }
  if (!gz && n >= 9 && b[8] == '{') {
    uint64_t hlen = (uint64_t)c3_le32(b) | (uint64_t)c3_le32(b + 4) << 32;
    return c3_safetensors_kind(path, hlen, st.st_size, type);
  }
  return CSAL3D_OK;
}
