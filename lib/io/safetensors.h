/* safetensors: our own reader and writer of the format (huggingface/safetensors).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON, then the data
 * section. The JSON object maps each tensor name to {"dtype", "shape",
 * "data_offsets": [begin, end]} (offsets relative to the data section) and may hold
 * "__metadata__", a map of strings to strings.
 *
 * The reader trusts nothing: the header length is limited (C3_ST_MAX_HEADER) and
 * must fit the input; the JSON (parsed by jansson, duplicate keys rejected) must be
 * an object of well-formed entries; each dtype must be known, each shape a list of
 * at most C3_ST_MAX_DIMS non-negative integers whose byte size does not overflow and
 * equals end - begin; sorted by offset, the tensors must start at 0, follow each
 * other without gap or overlap and end exactly at the end of the data section.
 * Every failure is CSAL3D_ERR_FORMAT with a message naming the source and what
 * is wrong ("x.safetensors: tensor 'w': shape [3, 4] of F32 needs 48 bytes, but
 * data_offsets [0, 40] hold 40").
 *
 * The writer pads the JSON with spaces to a multiple of 8 bytes and orders the
 * data by decreasing element size, so that every tensor is aligned to its element
 * size in the file; it writes files atomically (temporary file in the same
 * folder, fsync, rename, fsync of the folder). */
#ifndef C3_IO_SAFETENSORS_H
#define C3_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "csal3d/common.h"

/* Largest JSON header accepted (the reference implementation's limit). */
#define C3_ST_MAX_HEADER ((uint64_t)100000000)
/* Most dimensions of a tensor. */
#define C3_ST_MAX_DIMS 8
/* Longest tensor name or metadata key accepted. */
#define C3_ST_MAX_NAME 1024

/* The dtypes of the format. Values are internal (not stored in files). */
typedef enum c3_st_dtype {
  C3_ST_BOOL = 0,
  C3_ST_U8,
  C3_ST_I8,
  C3_ST_I16,
  C3_ST_U16,
  C3_ST_F16,
  C3_ST_BF16,
  C3_ST_I32,
  C3_ST_U32,
  C3_ST_F32,
  C3_ST_F64,
  C3_ST_I64,
  C3_ST_U64,
  C3_ST_F8_E4M3,
  C3_ST_F8_E5M2,
  C3_ST_DTYPE_COUNT
} c3_st_dtype;

/* "F32", ...; NULL for an invalid value. */
const char *c3_st_dtype_name(c3_st_dtype dtype);
/* Bytes per element; 0 for an invalid value. */
size_t c3_st_dtype_size(c3_st_dtype dtype);
/* Parses a dtype name ("F32"); returns 0 and sets *out, or -1. */
int c3_st_dtype_parse(const char *name, c3_st_dtype *out);

/* One tensor of a parsed file. */
typedef struct c3_st_entry {
  const char *name;
  c3_st_dtype dtype;
  int ndim; /* 0 for a scalar */
  int64_t shape[C3_ST_MAX_DIMS];
  uint64_t numel;
  uint64_t begin, end; /* byte offsets in the data section */
  const void *data;    /* begin's address; may be unaligned: read with memcpy */
} c3_st_entry;

typedef struct c3_safetensors c3_safetensors;

/* Parses a whole file held in memory (length prefix, header, data). The result
 * refers to buf, which must outlive it. `source` names the input in messages
 * (NULL: "safetensors buffer"). */
csal3d_status c3_st_parse(const void *buf, size_t len, const char *source,
                          c3_safetensors **out);

/* Reads and parses a file; the result owns a copy of the data section. */
csal3d_status c3_st_open(const char *path, c3_safetensors **out);

/* Releases a parsed file; accepts NULL. */
void c3_st_free(c3_safetensors *st);

/* The source name given to parse, or the path given to open. */
const char *c3_st_source(const c3_safetensors *st);

/* Tensors in the order of their data offsets. */
size_t c3_st_count(const c3_safetensors *st);
const c3_st_entry *c3_st_entry_at(const c3_safetensors *st, size_t i);
/* The tensor of that name, or NULL. */
const c3_st_entry *c3_st_find(const c3_safetensors *st, const char *name);

/* Metadata (__metadata__) in the order of the header. */
size_t c3_st_metadata_count(const c3_safetensors *st);
void c3_st_metadata_at(const c3_safetensors *st, size_t i, const char **key,
                       const char **value);
/* The metadata value of key, or NULL. */
const char *c3_st_metadata(const c3_safetensors *st, const char *key);

/* The data section (its length in *len) and its CRC-32 (zlib's). */
const void *c3_st_data(const c3_safetensors *st, uint64_t *len);
uint32_t c3_st_data_crc32(const c3_safetensors *st);

/* Copies tensor `name` into dst as float32, converting F32, F64, F16, BF16 and
 * the integer dtypes. Fails with CSAL3D_ERR_FORMAT naming the tensor when it is
 * absent or its element count is not `count`. */
csal3d_status c3_st_read_f32(const c3_safetensors *st, const char *name,
                             float *dst, size_t count);
/* Copies an integer (or BOOL) tensor into int64; float dtypes are refused. */
csal3d_status c3_st_read_i64(const c3_safetensors *st, const char *name,
                             int64_t *dst, size_t count);
/* As c3_st_read_f32 for an entry already found. */
csal3d_status c3_st_entry_read_f32(const c3_safetensors *st,
                                   const c3_st_entry *e, float *dst,
                                   size_t count);

/* ---- writing ---- */

typedef struct c3_st_writer c3_st_writer;

csal3d_status c3_st_writer_create(c3_st_writer **out);
/* Releases a writer; accepts NULL. */
void c3_st_writer_free(c3_st_writer *w);

/* Adds a tensor. The data (numel * element size bytes, host memory) is NOT
 * copied: it must stay valid until the last write call. Names must be unique,
 * non-empty, not "__metadata__" and valid UTF-8. ndim 0 is a scalar. */
csal3d_status c3_st_writer_add(c3_st_writer *w, const char *name,
                               c3_st_dtype dtype, int ndim,
                               const int64_t *shape, const void *data);
/* Adds (or replaces) a metadata string; key and value are copied. */
csal3d_status c3_st_writer_set_metadata(c3_st_writer *w, const char *key,
                                        const char *value);

/* CRC-32 of the data section the writer will produce (same as
 * c3_st_data_crc32 of what it writes), so that it can go in the metadata. */
uint32_t c3_st_writer_data_crc32(const c3_st_writer *w);

/* Writes the file atomically (temporary file, fsync, rename, fsync of the
 * folder). On failure the previous file at path, if any, is untouched. */
csal3d_status c3_st_writer_write_file(const c3_st_writer *w, const char *path);

/* Serialises to a new c3_alloc buffer (freed with c3_free). */
csal3d_status c3_st_writer_write_buffer(const c3_st_writer *w, void **buf,
                                        size_t *len);

#endif
