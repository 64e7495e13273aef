/* safetensors reader and writer (see safetensors.h for the rules enforced). */
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/fileutil.h"

/* ---- dtypes ---- */

static const struct {
  const char *name;
  size_t size;
} c3_st_dtypes[C3_ST_DTYPE_COUNT] = {
    [C3_ST_BOOL] = {"BOOL", 1},        [C3_ST_U8] = {"U8", 1},
    [C3_ST_I8] = {"I8", 1},            [C3_ST_I16] = {"I16", 2},
    [C3_ST_U16] = {"U16", 2},          [C3_ST_F16] = {"F16", 2},
    [C3_ST_BF16] = {"BF16", 2},        [C3_ST_I32] = {"I32", 4},
    [C3_ST_U32] = {"U32", 4},          [C3_ST_F32] = {"F32", 4},
    [C3_ST_F64] = {"F64", 8},          [C3_ST_I64] = {"I64", 8},
    [C3_ST_U64] = {"U64", 8},          [C3_ST_F8_E4M3] = {"F8_E4M3", 1},
    [C3_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *c3_st_dtype_name(c3_st_dtype d) {
  return ((unsigned)d < C3_ST_DTYPE_COUNT) ? c3_st_dtypes[d].name : NULL;
}

size_t c3_st_dtype_size(c3_st_dtype d) {
  return ((unsigned)d < C3_ST_DTYPE_COUNT) ? c3_st_dtypes[d].size : 0;
}

int c3_st_dtype_parse(const char *name, c3_st_dtype *out) {
  for (int i = 0; i < C3_ST_DTYPE_COUNT; i++)
    if (strcmp(name, c3_st_dtypes[i].name) == 0) {
      *out = (c3_st_dtype)i;
      return 0;
    }
  return -1;
}

/* ---- the parsed file ---- */

struct c3_safetensors {
  char *source;
  size_t count;
  c3_st_entry *entries; /* by offset */
  size_t *by_name;      /* indices into entries, sorted by name */
  char *names;          /* all names, NUL-terminated, back to back */
  size_t meta_count;
  char **meta_keys, **meta_values;
  const uint8_t *data;
  uint64_t data_len;
  void *owned; /* the data section when read from a file */
};

static void c3_st_put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t c3_st_get_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

void c3_st_free(c3_safetensors *st) {
  if (!st) return;
  for (size_t i = 0; i < st->meta_count; i++) {
    c3_free(st->meta_keys[i]);
    c3_free(st->meta_values[i]);
  }
  c3_free(st->meta_keys);
  c3_free(st->meta_values);
  c3_free(st->entries);
  c3_free(st->by_name);
  c3_free(st->names);
  c3_free(st->owned);
  c3_free(st->source);
  c3_free(st);
}

static void c3_st_format_shape(const int64_t *shape, int ndim, char *buf,
                               size_t cap) {
  size_t n = 0;
  n += (size_t)snprintf(buf + n, cap - n, "[");
  for (int i = 0; i < ndim && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "",
                          (long long)shape[i]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Reads a non-negative JSON integer. */
static int c3_st_json_u64(const json_t *v, uint64_t *out) {
  if (!json_is_integer(v)) return -1;
  json_int_t x = json_integer_value(v);
  if (x < 0) return -1;
  *out = (uint64_t)x;
  return 0;
}

static int c3_st_cmp_offset(const void *a, const void *b) {
  const c3_st_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

/* Sorting indices by name without global state: a small merge sort. */
static void c3_st_sort_names(size_t *idx, size_t *tmp, size_t n,
                             const c3_st_entry *e) {
  if (n < 2) return;
  size_t h = n / 2;
  c3_st_sort_names(idx, tmp, h, e);
  c3_st_sort_names(idx + h, tmp, n - h, e);
  size_t i = 0, j = h, k = 0;
  while (i < h && j < n)
    tmp[k++] = strcmp(e[idx[i]].name, e[idx[j]].name) <= 0 ? idx[i++] : idx[j++];
  while (i < h) tmp[k++] = idx[i++];
  while (j < n) tmp[k++] = idx[j++];
  memcpy(idx, tmp, n * sizeof *idx);
}

/* Validates one tensor entry; fills e (name set by the caller). */
static csal3d_status c3_st_entry_parse(const char *src, const char *name,
                                       const json_t *v, c3_st_entry *e) {
  if (!json_is_object(v))
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s': entry is not a JSON object", src, name);
  const json_t *jd = json_object_get(v, "dtype");
  const json_t *js = json_object_get(v, "shape");
  const json_t *jo = json_object_get(v, "data_offsets");
  if (!jd || !js || !jo)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: tensor '%s': missing \"%s\"", src,
                    name, !jd ? "dtype" : !js ? "shape" : "data_offsets");
  if (!json_is_string(jd))
    return c3_error(CSAL3D_ERR_FORMAT, "%s: tensor '%s': dtype is not a string",
                    src, name);
  if (c3_st_dtype_parse(json_string_value(jd), &e->dtype) != 0)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s': unknown dtype \"%.32s\" (known: BOOL, U8, "
                    "I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, "
                    "F8_E4M3, F8_E5M2)",
                    src, name, json_string_value(jd));
  if (!json_is_array(js))
    return c3_error(CSAL3D_ERR_FORMAT, "%s: tensor '%s': shape is not an array",
                    src, name);
  size_t nd = json_array_size(js);
  if (nd > C3_ST_MAX_DIMS)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s': shape has %zu dimensions (at most %d)", src,
                    name, nd, C3_ST_MAX_DIMS);
  e->ndim = (int)nd;
  uint64_t numel = 1;
  int overflow = 0;
  for (size_t i = 0; i < nd; i++) {
    uint64_t d;
    if (c3_st_json_u64(json_array_get(js, i), &d) != 0)
      return c3_error(CSAL3D_ERR_FORMAT,
                      "%s: tensor '%s': shape[%zu] is not a non-negative integer",
                      src, name, i);
    e->shape[i] = (int64_t)d;
    if (d != 0 && numel > UINT64_MAX / d) overflow = 1;
    else numel *= d;
  }
  size_t esz = c3_st_dtypes[e->dtype].size;
  /* A zero side makes the tensor empty whatever the other sides are. */
  for (size_t i = 0; i < nd; i++)
    if (e->shape[i] == 0) overflow = 0, numel = 0;
  if (overflow || numel > (uint64_t)INT64_MAX / esz)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s': shape's element count overflows", src, name);
  e->numel = numel;
  if (!json_is_array(jo) || json_array_size(jo) != 2 ||
      c3_st_json_u64(json_array_get(jo, 0), &e->begin) != 0 ||
      c3_st_json_u64(json_array_get(jo, 1), &e->end) != 0)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s': data_offsets is not [begin, end] with "
                    "non-negative integers",
                    src, name);
  if (e->end < e->begin)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s': data_offsets [%llu, %llu] end before they "
                    "begin",
                    src, name, (unsigned long long)e->begin,
                    (unsigned long long)e->end);
  uint64_t need = numel * esz;
  if (e->end - e->begin != need) {
    char sh[256];
    c3_st_format_shape(e->shape, e->ndim, sh, sizeof sh);
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s': shape %s of %s needs %llu bytes, but "
                    "data_offsets [%llu, %llu] hold %llu",
                    src, name, sh, c3_st_dtypes[e->dtype].name,
                    (unsigned long long)need, (unsigned long long)e->begin,
                    (unsigned long long)e->end,
                    (unsigned long long)(e->end - e->begin));
  }
  return CSAL3D_OK;
}

static csal3d_status c3_st_metadata_parse(c3_safetensors *st, const json_t *m) {
  if (json_is_null(m)) return CSAL3D_OK;
  if (!json_is_object(m))
    return c3_error(CSAL3D_ERR_FORMAT, "%s: __metadata__ is not a JSON object",
                    st->source);
  size_t n = json_object_size(m);
  C3_TRY(c3_calloc_array(n ? n : 1, sizeof(char *), "safetensors metadata",
                         (void **)&st->meta_keys));
  C3_TRY(c3_calloc_array(n ? n : 1, sizeof(char *), "safetensors metadata",
                         (void **)&st->meta_values));
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)m, k, v) {
    if (!json_is_string(v))
      return c3_error(CSAL3D_ERR_FORMAT,
                      "%s: __metadata__ \"%.64s\" is not a string (metadata "
                      "values must be strings)",
                      st->source, k);
    if (strlen(k) > C3_ST_MAX_NAME)
      return c3_error(CSAL3D_ERR_FORMAT,
                      "%s: a __metadata__ key is %zu bytes long (at most %d)",
                      st->source, strlen(k), C3_ST_MAX_NAME);
    size_t i = st->meta_count;
    st->meta_keys[i] = c3_strdup(k);
    st->meta_values[i] = c3_strdup(json_string_value(v));
    if (!st->meta_keys[i] || !st->meta_values[i]) {
      c3_free(st->meta_keys[i]);
      c3_free(st->meta_values[i]);
      st->meta_keys[i] = st->meta_values[i] = NULL;
      return c3_error(CSAL3D_ERR_OUT_OF_MEMORY,
                      "%s: out of memory for the metadata", st->source);
    }
    st->meta_count++;
  }
  return CSAL3D_OK;
}

/* Parses a header and checks its layout against the data section's length
 * (st->data_len); the data itself is not looked at (see c3_st_attach). */
static csal3d_status c3_st_build(c3_safetensors *st, const char *header,
                                 uint64_t hlen) {
  const char *src = st->source;
  if (hlen < 2)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: header length is %llu bytes (a JSON object needs at "
                    "least 2)",
                    src, (unsigned long long)hlen);
  if (header[0] != '{')
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: header does not start with '{' (not a safetensors file?)",
                    src);
  json_error_t jerr;
  json_t *root = json_loadb(header, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: header is not valid JSON: %s (line %d, column %d)", src,
                    jerr.text, jerr.line, jerr.column);
  csal3d_status s = CSAL3D_OK;
  if (!json_is_object(root)) {
    s = c3_error(CSAL3D_ERR_FORMAT, "%s: header is not a JSON object", src);
    goto done;
  }
  size_t n = json_object_size(root);
  const json_t *meta = json_object_get(root, "__metadata__");
  size_t nt = n - (meta ? 1 : 0);
  size_t names_len = 0;
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    if (strcmp(k, "__metadata__") == 0) continue;
    size_t kl = strlen(k);
    if (kl == 0) {
      s = c3_error(CSAL3D_ERR_FORMAT, "%s: a tensor has an empty name", src);
      goto done;
    }
    if (kl > C3_ST_MAX_NAME) {
      s = c3_error(CSAL3D_ERR_FORMAT,
                   "%s: tensor name '%.40s...' is %zu bytes long (at most %d)",
                   src, k, kl, C3_ST_MAX_NAME);
      goto done;
    }
    names_len += kl + 1;
  }
  if ((s = c3_calloc_array(nt ? nt : 1, sizeof *st->entries, "safetensors entries",
                           (void **)&st->entries)) != CSAL3D_OK ||
      (s = c3_alloc_array(nt ? nt : 1, sizeof *st->by_name, "safetensors index",
                          (void **)&st->by_name)) != CSAL3D_OK ||
      (s = c3_alloc(names_len ? names_len : 1, "safetensors names",
                    (void **)&st->names)) != CSAL3D_OK)
    goto done;
  size_t pos = 0, i = 0;
  json_object_foreach(root, k, v) {
    if (strcmp(k, "__metadata__") == 0) continue;
    c3_st_entry *e = &st->entries[i];
    size_t kl = strlen(k);
    memcpy(st->names + pos, k, kl + 1);
    e->name = st->names + pos;
    pos += kl + 1;
    if ((s = c3_st_entry_parse(src, k, v, e)) != CSAL3D_OK) goto done;
    i++;
  }
  st->count = nt;
  if (meta && (s = c3_st_metadata_parse(st, meta)) != CSAL3D_OK) goto done;

  /* Offsets: sorted, they must tile the data section exactly. */
  qsort(st->entries, nt, sizeof *st->entries, c3_st_cmp_offset);
  uint64_t at = 0;
  for (i = 0; i < nt; i++) {
    const c3_st_entry *e = &st->entries[i];
    if (e->begin != at) {
      if (e->begin < at)
        s = c3_error(CSAL3D_ERR_FORMAT,
                     "%s: tensor '%s' (data_offsets [%llu, %llu]) overlaps '%s' "
                     "which ends at %llu",
                     src, e->name, (unsigned long long)e->begin,
                     (unsigned long long)e->end, i ? st->entries[i - 1].name : "",
                     (unsigned long long)at);
      else
        s = c3_error(CSAL3D_ERR_FORMAT,
                     "%s: gap in the data section: bytes [%llu, %llu) before "
                     "tensor '%s' belong to no tensor",
                     src, (unsigned long long)at, (unsigned long long)e->begin,
                     e->name);
      goto done;
    }
    at = e->end;
  }
  if (at != st->data_len) {
    if (at > st->data_len)
      s = c3_error(CSAL3D_ERR_FORMAT,
                   "%s: tensors need %llu bytes of data but the file holds only "
                   "%llu after the header (truncated?)",
                   src, (unsigned long long)at, (unsigned long long)st->data_len);
    else
      s = c3_error(CSAL3D_ERR_FORMAT,
                   "%s: %llu bytes after the last tensor (data section is %llu "
                   "bytes, tensors end at %llu)",
                   src, (unsigned long long)(st->data_len - at),
                   (unsigned long long)st->data_len, (unsigned long long)at);
    goto done;
  }
  for (i = 0; i < nt; i++) st->by_name[i] = i;
  size_t *tmp;
  if ((s = c3_alloc_array(nt ? nt : 1, sizeof *tmp, "safetensors index",
                          (void **)&tmp)) != CSAL3D_OK)
    goto done;
  c3_st_sort_names(st->by_name, tmp, nt, st->entries);
  c3_free(tmp);
done:
  json_decref(root);
  return s;
}

/* Points the entries into the data section (st->data), once it is in memory. */
static void c3_st_attach(c3_safetensors *st) {
  for (size_t i = 0; i < st->count; i++)
    st->entries[i].data = st->data + st->entries[i].begin;
}

static csal3d_status c3_st_new(const char *source, c3_safetensors **out) {
  c3_safetensors *st;
  C3_TRY(c3_calloc_array(1, sizeof *st, "safetensors", (void **)&st));
  st->source = c3_strdup(source);
  if (!st->source) {
    c3_free(st);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory reading %s", source);
  }
  *out = st;
  return CSAL3D_OK;
}

csal3d_status c3_st_parse(const void *buf, size_t len, const char *source,
                          c3_safetensors **out) {
  C3_CHECK_ARG(out != NULL, "c3_st_parse: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(buf != NULL || len == 0, "c3_st_parse: buf is NULL");
  const char *src = source ? source : "safetensors buffer";
  if (len < 8)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: %zu bytes, shorter than the 8-byte header length", src,
                    len);
  const uint8_t *b = buf;
  uint64_t hlen = c3_st_get_le64(b);
  if (hlen > C3_ST_MAX_HEADER)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: header length %llu exceeds the limit of %llu bytes", src,
                    (unsigned long long)hlen, (unsigned long long)C3_ST_MAX_HEADER);
  if (hlen > len - 8)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: header length %llu but only %zu bytes follow (truncated?)",
                    src, (unsigned long long)hlen, len - 8);
  c3_safetensors *st;
  C3_TRY(c3_st_new(src, &st));
  st->data = b + 8 + hlen;
  st->data_len = len - 8 - hlen;
  csal3d_status s = c3_st_build(st, (const char *)b + 8, hlen);
  if (s != CSAL3D_OK) {
    c3_st_free(st);
    return s;
  }
  c3_st_attach(st);
  *out = st;
  return CSAL3D_OK;
}

/* Reads exactly n bytes at offset; fails on a short read. */
static csal3d_status c3_st_pread_all(int fd, void *buf, uint64_t n, uint64_t off,
                                     const char *path) {
  uint8_t *p = buf;
  while (n > 0) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
    ssize_t r = pread(fd, p, chunk, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return c3_error(CSAL3D_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    }
    if (r == 0)
      return c3_error(CSAL3D_ERR_FORMAT, "%s: file ended early (truncated?)", path);
    p += r;
    off += (uint64_t)r;
    n -= (uint64_t)r;
  }
  return CSAL3D_OK;
}

csal3d_status c3_st_open(const char *path, c3_safetensors **out) {
  C3_CHECK_ARG(out != NULL, "c3_st_open: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(path != NULL, "c3_st_open: path is NULL");
  /* Without blocking: a FIFO is refused by the check below instead of waiting for a
   * writer (O_NONBLOCK changes nothing for the regular files that pass). */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return c3_error(CSAL3D_ERR_IO, "%s: %s", path, strerror(errno));
  csal3d_status s = CSAL3D_OK;
  c3_safetensors *st = NULL;
  char *header = NULL;
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    s = c3_error(CSAL3D_ERR_IO, "%s: %s", path, strerror(errno));
    goto done;
  }
  if (!S_ISREG(sb.st_mode)) {
    s = c3_error(CSAL3D_ERR_IO, "%s: not a regular file", path);
    goto done;
  }
  uint64_t size = (uint64_t)sb.st_size;
  if (size < 8) {
    s = c3_error(CSAL3D_ERR_FORMAT,
                 "%s: %llu bytes, shorter than the 8-byte header length", path,
                 (unsigned long long)size);
    goto done;
  }
  uint8_t lenbuf[8];
  if ((s = c3_st_pread_all(fd, lenbuf, 8, 0, path)) != CSAL3D_OK) goto done;
  uint64_t hlen = c3_st_get_le64(lenbuf);
  if (hlen > C3_ST_MAX_HEADER) {
    s = c3_error(CSAL3D_ERR_FORMAT,
                 "%s: header length %llu exceeds the limit of %llu bytes", path,
                 (unsigned long long)hlen, (unsigned long long)C3_ST_MAX_HEADER);
    goto done;
  }
  if (hlen > size - 8) {
    s = c3_error(CSAL3D_ERR_FORMAT,
                 "%s: header length %llu but only %llu bytes follow (truncated?)",
                 path, (unsigned long long)hlen, (unsigned long long)(size - 8));
    goto done;
  }
  /* The header first, checked against the file's size: a malformed one is refused
   * before the data section (however large the file says it is) is read. */
  if ((s = c3_st_new(path, &st)) != CSAL3D_OK) goto done;
  if ((s = c3_alloc((size_t)hlen + 1, "safetensors header", (void **)&header)) !=
          CSAL3D_OK ||
      (s = c3_st_pread_all(fd, header, hlen, 8, path)) != CSAL3D_OK)
    goto done;
  st->data_len = size - 8 - hlen;
  if ((s = c3_st_build(st, header, hlen)) != CSAL3D_OK) goto done;
  if (st->data_len > SIZE_MAX) {
    s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: data section too large", path);
    goto done;
  }
  if ((s = c3_alloc((size_t)st->data_len, "safetensors data", &st->owned)) !=
      CSAL3D_OK) {
    s = c3_error_prefix(s, "%s", path);
    goto done;
  }
  if ((s = c3_st_pread_all(fd, st->owned, st->data_len, 8 + hlen, path)) !=
      CSAL3D_OK)
    goto done;
  st->data = st->owned;
  c3_st_attach(st);
done:
  close(fd);
  c3_free(header);
  if (s != CSAL3D_OK) {
    c3_st_free(st);
    return s;
  }
  *out = st;
  return CSAL3D_OK;
}

const char *c3_st_source(const c3_safetensors *st) { return st->source; }
size_t c3_st_count(const c3_safetensors *st) { return st->count; }

const c3_st_entry *c3_st_entry_at(const c3_safetensors *st, size_t i) {
  return i < st->count ? &st->entries[i] : NULL;
}

const c3_st_entry *c3_st_find(const c3_safetensors *st, const char *name) {
  size_t lo = 0, hi = st->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const c3_st_entry *e = &st->entries[st->by_name[mid]];
    int c = strcmp(name, e->name);
    if (c == 0) return e;
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

size_t c3_st_metadata_count(const c3_safetensors *st) { return st->meta_count; }

void c3_st_metadata_at(const c3_safetensors *st, size_t i, const char **key,
                       const char **value) {
  *key = i < st->meta_count ? st->meta_keys[i] : NULL;
  *value = i < st->meta_count ? st->meta_values[i] : NULL;
}

const char *c3_st_metadata(const c3_safetensors *st, const char *key) {
  for (size_t i = 0; i < st->meta_count; i++)
    if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
  return NULL;
}

const void *c3_st_data(const c3_safetensors *st, uint64_t *len) {
  if (len) *len = st->data_len;
  return st->data;
}

static uint32_t c3_st_crc_update(uint32_t crc, const void *p, uint64_t n) {
  const Bytef *b = p;
  while (n > 0) {
    uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
    crc = (uint32_t)crc32(crc, b, chunk);
    b += chunk;
    n -= chunk;
  }
  return crc;
}

uint32_t c3_st_data_crc32(const c3_safetensors *st) {
  return c3_st_crc_update((uint32_t)crc32(0L, Z_NULL, 0), st->data, st->data_len);
}

/* ---- conversions ---- */

static float c3_st_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) bits = sign;
    else { /* subnormal: renormalise */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 1024));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 1023) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* Element i of an entry as double (F8 dtypes are refused before this). */
static double c3_st_get(const c3_st_entry *e, uint64_t i) {
  const uint8_t *p = (const uint8_t *)e->data + i * c3_st_dtypes[e->dtype].size;
  switch (e->dtype) {
    case C3_ST_BOOL: return *p != 0;
    case C3_ST_U8: return *p;
    case C3_ST_I8: return (int8_t)*p;
    case C3_ST_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case C3_ST_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case C3_ST_F16: { uint16_t v; memcpy(&v, p, 2); return c3_st_half_to_float(v); }
    case C3_ST_BF16: {
      uint16_t v;
      memcpy(&v, p, 2);
      uint32_t bits = (uint32_t)v << 16;
      float f;
      memcpy(&f, &bits, 4);
      return f;
    }
    case C3_ST_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case C3_ST_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case C3_ST_F32: { float v; memcpy(&v, p, 4); return v; }
    case C3_ST_F64: { double v; memcpy(&v, p, 8); return v; }
    case C3_ST_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case C3_ST_U64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    default: return 0;
  }
}

static csal3d_status c3_st_check_read(const c3_safetensors *st,
                                      const c3_st_entry *e, const char *name,
                                      size_t count, int want_int) {
  if (!e)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: no tensor named '%s'", st->source,
                    name);
  if (e->numel != (uint64_t)count) {
    char sh[256];
    c3_st_format_shape(e->shape, e->ndim, sh, sizeof sh);
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s' has shape %s (%llu elements), expected %zu",
                    st->source, e->name, sh, (unsigned long long)e->numel, count);
  }
  if (e->dtype == C3_ST_F8_E4M3 || e->dtype == C3_ST_F8_E5M2)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "%s: tensor '%s': dtype %s cannot be converted", st->source,
                    e->name, c3_st_dtypes[e->dtype].name);
  if (want_int && (e->dtype == C3_ST_F16 || e->dtype == C3_ST_BF16 ||
                   e->dtype == C3_ST_F32 || e->dtype == C3_ST_F64))
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: tensor '%s' is %s, expected an integer dtype", st->source,
                    e->name, c3_st_dtypes[e->dtype].name);
  return CSAL3D_OK;
}

csal3d_status c3_st_entry_read_f32(const c3_safetensors *st,
                                   const c3_st_entry *e, float *dst,
                                   size_t count) {
  C3_TRY(c3_st_check_read(st, e, "", count, 0));
  if (e->dtype == C3_ST_F32) {
    if (count) memcpy(dst, e->data, count * sizeof(float));
    return CSAL3D_OK;
  }
  for (size_t i = 0; i < count; i++) dst[i] = (float)c3_st_get(e, i);
  return CSAL3D_OK;
}

csal3d_status c3_st_read_f32(const c3_safetensors *st, const char *name,
                             float *dst, size_t count) {
  const c3_st_entry *e = c3_st_find(st, name);
  C3_TRY(c3_st_check_read(st, e, name, count, 0));
  return c3_st_entry_read_f32(st, e, dst, count);
}

csal3d_status c3_st_read_i64(const c3_safetensors *st, const char *name,
                             int64_t *dst, size_t count) {
  const c3_st_entry *e = c3_st_find(st, name);
  C3_TRY(c3_st_check_read(st, e, name, count, 1));
  for (size_t i = 0; i < count; i++) {
    const uint8_t *p = (const uint8_t *)e->data + i * c3_st_dtypes[e->dtype].size;
    if (e->dtype == C3_ST_I64) memcpy(&dst[i], p, 8);
    else if (e->dtype == C3_ST_U64) {
      uint64_t v;
      memcpy(&v, p, 8);
      if (v > (uint64_t)INT64_MAX)
        return c3_error(CSAL3D_ERR_FORMAT,
                        "%s: tensor '%s': element %zu does not fit in int64",
                        st->source, e->name, i);
      dst[i] = (int64_t)v;
    } else dst[i] = (int64_t)c3_st_get(e, i);
  }
  return CSAL3D_OK;
}

/* ---- writer ---- */

typedef struct c3_st_wentry {
  char *name;
  c3_st_dtype dtype;
  int ndim;
  int64_t shape[C3_ST_MAX_DIMS];
  uint64_t nbytes;
  const void *data;
} c3_st_wentry;

struct c3_st_writer {
  c3_st_wentry *entries;
  size_t count, cap;
  char **meta_keys, **meta_values;
  size_t meta_count, meta_cap;
};

csal3d_status c3_st_writer_create(c3_st_writer **out) {
  C3_CHECK_ARG(out != NULL, "c3_st_writer_create: out is NULL");
  return c3_calloc_array(1, sizeof(c3_st_writer), "safetensors writer",
                         (void **)out);
}

void c3_st_writer_free(c3_st_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->count; i++) c3_free(w->entries[i].name);
  for (size_t i = 0; i < w->meta_count; i++) {
    c3_free(w->meta_keys[i]);
    c3_free(w->meta_values[i]);
  }
  c3_free(w->entries);
  c3_free(w->meta_keys);
  c3_free(w->meta_values);
  c3_free(w);
}

/* Grows an array of elem-sized items to hold at least need. */
static csal3d_status c3_st_grow(void **arr, size_t *cap, size_t need,
                                size_t elem, size_t used) {
  if (need <= *cap) return CSAL3D_OK;
  size_t ncap = *cap ? *cap * 2 : 16;
  while (ncap < need) ncap *= 2;
  void *p;
  C3_TRY(c3_alloc_array(ncap, elem, "safetensors writer", &p));
  if (used) memcpy(p, *arr, used * elem);
  c3_free(*arr);
  *arr = p;
  *cap = ncap;
  return CSAL3D_OK;
}

csal3d_status c3_st_writer_add(c3_st_writer *w, const char *name,
                               c3_st_dtype dtype, int ndim,
                               const int64_t *shape, const void *data) {
  C3_CHECK_ARG(w != NULL && name != NULL, "c3_st_writer_add: NULL argument");
  C3_CHECK_ARG(*name != '\0', "safetensors: empty tensor name");
  C3_CHECK_ARG(strlen(name) <= C3_ST_MAX_NAME,
               "safetensors: tensor name '%.40s...' longer than %d bytes", name,
               C3_ST_MAX_NAME);
  C3_CHECK_ARG(strcmp(name, "__metadata__") != 0,
               "safetensors: '__metadata__' cannot name a tensor");
  C3_CHECK_ARG((unsigned)dtype < C3_ST_DTYPE_COUNT,
               "safetensors: tensor '%s': invalid dtype %d", name, (int)dtype);
  C3_CHECK_ARG(ndim >= 0 && ndim <= C3_ST_MAX_DIMS,
               "safetensors: tensor '%s': %d dimensions (0 to %d)", name, ndim,
               C3_ST_MAX_DIMS);
  uint64_t numel = 1;
  for (int i = 0; i < ndim; i++) {
    C3_CHECK_ARG(shape[i] >= 0, "safetensors: tensor '%s': shape[%d] = %lld",
                 name, i, (long long)shape[i]);
    if (shape[i] == 0) numel = 0;
    else if (numel > (uint64_t)INT64_MAX / (uint64_t)shape[i])
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                      "safetensors: tensor '%s': element count overflows", name);
    else numel *= (uint64_t)shape[i];
  }
  uint64_t nbytes = numel * c3_st_dtypes[dtype].size;
  C3_CHECK_ARG(nbytes == 0 || data != NULL,
               "safetensors: tensor '%s': data is NULL", name);
  for (size_t i = 0; i < w->count; i++)
    C3_CHECK_ARG(strcmp(w->entries[i].name, name) != 0,
                 "safetensors: tensor '%s' added twice", name);
  C3_TRY(c3_st_grow((void **)&w->entries, &w->cap, w->count + 1,
                    sizeof *w->entries, w->count));
  c3_st_wentry *e = &w->entries[w->count];
  memset(e, 0, sizeof *e);
  e->name = c3_strdup(name);
  if (!e->name)
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
  e->dtype = dtype;
  e->ndim = ndim;
  for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
  e->nbytes = nbytes;
  e->data = data;
  w->count++;
  return CSAL3D_OK;
}

csal3d_status c3_st_writer_set_metadata(c3_st_writer *w, const char *key,
                                        const char *value) {
  C3_CHECK_ARG(w != NULL && key != NULL && value != NULL,
               "c3_st_writer_set_metadata: NULL argument");
  for (size_t i = 0; i < w->meta_count; i++)
    if (strcmp(w->meta_keys[i], key) == 0) {
      char *v = c3_strdup(value);
      if (!v) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
      c3_free(w->meta_values[i]);
      w->meta_values[i] = v;
      return CSAL3D_OK;
    }
  size_t cap = w->meta_cap;
  C3_TRY(c3_st_grow((void **)&w->meta_keys, &cap, w->meta_count + 1,
                    sizeof(char *), w->meta_count));
  cap = w->meta_cap;
  C3_TRY(c3_st_grow((void **)&w->meta_values, &cap, w->meta_count + 1,
                    sizeof(char *), w->meta_count));
  w->meta_cap = cap;
  char *k = c3_strdup(key), *v = c3_strdup(value);
  if (!k || !v) {
    c3_free(k);
    c3_free(v);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
  }
  w->meta_keys[w->meta_count] = k;
  w->meta_values[w->meta_count] = v;
  w->meta_count++;
  return CSAL3D_OK;
}

/* The data order: decreasing element size, stable (so each tensor is aligned to
 * its element size when the data section is 8-aligned). */
static csal3d_status c3_st_writer_order(const c3_st_writer *w, size_t **order) {
  C3_TRY(c3_alloc_array(w->count ? w->count : 1, sizeof(size_t),
                        "safetensors writer", (void **)order));
  size_t k = 0;
  for (size_t sz = 8; sz >= 1; sz /= 2)
    for (size_t i = 0; i < w->count; i++)
      if (c3_st_dtypes[w->entries[i].dtype].size == sz) (*order)[k++] = i;
  return CSAL3D_OK;
}

/* Builds the padded header (its length a multiple of 8). */
static csal3d_status c3_st_writer_header(const c3_st_writer *w,
                                         const size_t *order, char **out,
                                         size_t *out_len) {
  *out = NULL;
  csal3d_status s = CSAL3D_OK;
  json_t *root = json_object();
  if (!root) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
  if (w->meta_count) {
    json_t *m = json_object();
    if (!m || json_object_set_new(root, "__metadata__", m) != 0) {
      s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
      goto done;
    }
    for (size_t i = 0; i < w->meta_count; i++) {
      json_t *v = json_string(w->meta_values[i]);
      if (!v || json_object_set_new(m, w->meta_keys[i], v) != 0) {
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                     "safetensors: metadata '%.64s' is not valid UTF-8",
                     w->meta_keys[i]);
        goto done;
      }
    }
  }
  uint64_t at = 0;
  for (size_t k = 0; k < w->count; k++) {
    const c3_st_wentry *e = &w->entries[order[k]];
    json_t *o = json_object(), *sh = json_array(), *off = json_array();
    int bad = !o || !sh || !off;
    for (int i = 0; !bad && i < e->ndim; i++)
      bad = json_array_append_new(sh, json_integer(e->shape[i])) != 0;
    bad = bad || json_array_append_new(off, json_integer((json_int_t)at)) != 0 ||
          json_array_append_new(off, json_integer((json_int_t)(at + e->nbytes))) != 0;
    bad = bad ||
          json_object_set_new(o, "dtype", json_string(c3_st_dtypes[e->dtype].name)) !=
              0;
    if (bad) {
      json_decref(o);
      json_decref(sh);
      json_decref(off);
      s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
      goto done;
    }
    json_object_set_new(o, "shape", sh);
    json_object_set_new(o, "data_offsets", off);
    if (json_object_set_new(root, e->name, o) != 0) {
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                   "safetensors: tensor name '%.64s' is not valid UTF-8", e->name);
      goto done;
    }
    at += e->nbytes;
  }
  char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!text) {
    s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "safetensors: out of memory");
    goto done;
  }
  size_t n = strlen(text), padded = (n + 7) / 8 * 8;
  if ((uint64_t)padded > C3_ST_MAX_HEADER) {
    free(text);
    s = c3_error(CSAL3D_ERR_UNSUPPORTED,
                 "safetensors: header of %zu bytes exceeds the limit", padded);
    goto done;
  }
  if ((s = c3_alloc(padded, "safetensors header", (void **)out)) == CSAL3D_OK) {
    memcpy(*out, text, n);
    memset(*out + n, ' ', padded - n);
    *out_len = padded;
  }
  free(text);
done:
  json_decref(root);
  return s;
}

uint32_t c3_st_writer_data_crc32(const c3_st_writer *w) {
  uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
  size_t *order;
  if (c3_st_writer_order(w, &order) != CSAL3D_OK) return 0;
  for (size_t k = 0; k < w->count; k++) {
    const c3_st_wentry *e = &w->entries[order[k]];
    crc = c3_st_crc_update(crc, e->data, e->nbytes);
  }
  c3_free(order);
  return crc;
}

csal3d_status c3_st_writer_write_buffer(const c3_st_writer *w, void **buf,
                                        size_t *len) {
  C3_CHECK_ARG(w && buf && len, "c3_st_writer_write_buffer: NULL argument");
  *buf = NULL;
  *len = 0;
  size_t *order;
  C3_TRY(c3_st_writer_order(w, &order));
  char *header;
  size_t hlen;
  csal3d_status s = c3_st_writer_header(w, order, &header, &hlen);
  if (s != CSAL3D_OK) {
    c3_free(order);
    return s;
  }
  uint64_t total = 8 + hlen;
  for (size_t i = 0; i < w->count; i++) total += w->entries[i].nbytes;
  uint8_t *out;
  if (total > SIZE_MAX ||
      (s = c3_alloc((size_t)total, "safetensors buffer", (void **)&out)) !=
          CSAL3D_OK) {
    c3_free(order);
    c3_free(header);
    return s != CSAL3D_OK ? s
                          : c3_error(CSAL3D_ERR_OUT_OF_MEMORY,
                                     "safetensors: %llu bytes",
                                     (unsigned long long)total);
  }
  c3_st_put_le64(out, hlen);
  memcpy(out + 8, header, hlen);
  uint8_t *p = out + 8 + hlen;
  for (size_t k = 0; k < w->count; k++) {
    const c3_st_wentry *e = &w->entries[order[k]];
    if (e->nbytes) memcpy(p, e->data, e->nbytes);
    p += e->nbytes;
  }
  c3_free(order);
  c3_free(header);
  *buf = out;
  *len = (size_t)total;
  return CSAL3D_OK;
}

csal3d_status c3_st_writer_write_file(const c3_st_writer *w, const char *path) {
  C3_CHECK_ARG(w && path && *path, "c3_st_writer_write_file: NULL argument");
  size_t *order;
  C3_TRY(c3_st_writer_order(w, &order));
  char *header = NULL, *tmp = NULL;
  size_t hlen;
  int fd = -1;
  csal3d_status s = c3_st_writer_header(w, order, &header, &hlen);
  if (s != CSAL3D_OK) goto done;
  /* The temporary file beside the target; errors name the target, never the temporary. */
  if ((s = c3_tmp_beside(path, "tmp", 0, &tmp)) != CSAL3D_OK) goto done;
  fd = mkstemp(tmp);
  if (fd < 0) {
    tmp[0] = '\0';
    s = c3_error(CSAL3D_ERR_IO, "%s: cannot create a temporary file beside it: %s",
                 path, strerror(errno));
    goto done;
  }
  (void)fchmod(fd, 0644);
  uint8_t lenbuf[8];
  c3_st_put_le64(lenbuf, hlen);
  if ((s = c3_write_all(fd, lenbuf, 8, path)) != CSAL3D_OK ||
      (s = c3_write_all(fd, header, hlen, path)) != CSAL3D_OK)
    goto done;
  for (size_t k = 0; k < w->count; k++) {
    const c3_st_wentry *e = &w->entries[order[k]];
    if ((s = c3_write_all(fd, e->data, e->nbytes, path)) != CSAL3D_OK) goto done;
  }
  if (fsync(fd) != 0) {
    s = c3_error(CSAL3D_ERR_IO, "%s: write failed (fsync): %s", path, strerror(errno));
    goto done;
  }
  if (close(fd) != 0) {
    fd = -1;
    s = c3_error(CSAL3D_ERR_IO, "%s: write failed (close): %s", path, strerror(errno));
    goto done;
  }
  fd = -1;
  if (rename(tmp, path) != 0) {
    s = c3_error(CSAL3D_ERR_IO, "%s: cannot move the finished file into place: %s", path,
                 strerror(errno));
    goto done;
  }
  c3_sync_parent(path); /* makes the rename durable (best effort) */
  tmp[0] = '\0';         /* renamed: nothing to remove */
done:
  if (fd >= 0) close(fd);
  if (tmp && tmp[0] && s != CSAL3D_OK) unlink(tmp);
  c3_free(tmp);
  c3_free(header);
  c3_free(order);
  return s;
}
