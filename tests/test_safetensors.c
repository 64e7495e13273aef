/* Tests of lib/io/safetensors: round trips, every kind of malformed input
 * rejected with a message naming the problem, conversions, atomic writes, the
 * checked-in corpus (tests/data/safetensors: valid_* must parse, invalid_* must
 * fail with CSAL3D_ERR_FORMAT) and allocation failures; the hostile files of
 * tests/data/hostile and a sparse 2 GB file built here (refused before their data is
 * read); atomic writes of safetensors and of io/fileutil (write errors name the target,
 * what a writer killed inside its write leaves is removed by the next write). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "hostile.h"
#include <fcntl.h>

/* A file image: 8-byte length, header (as given), `data_len` bytes of data. */
static void *make_file(const char *header, size_t data_len, size_t *len) {
  size_t h = strlen(header);
  *len = 8 + h + data_len;
  unsigned char *b = calloc(1, *len + 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
  memcpy(b + 8, header, h);
  for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (unsigned char)(i * 7 + 1);
  return b;
}

/* Parses and expects failure with `status` and `needle` in the message. */
static void expect_reject(const char *header, size_t data_len,
                          csal3d_status status, const char *needle) {
  size_t len;
  void *b = make_file(header, data_len, &len);
  c3_safetensors *st = (c3_safetensors *)0x1;
  csal3d_status s = c3_st_parse(b, len, "bad.safetensors", &st);
  const char *m = csal3d_last_error();
  if (s != status || !strstr(m, needle) || st != NULL)
    ck_abort_msg("header %s: got status %d message \"%s\"; wanted %d and \"%s\"",
                 header, (int)s, m, (int)status, needle);
  ck_assert_ptr_nonnull(strstr(m, "bad.safetensors"));
  free(b);
}

START_TEST(round_trip_all_dtypes_metadata_and_alignment) {
  c3_st_writer *w;
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  float f32[6] = {1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 1e-30f};
  double f64[3] = {1.0 / 3.0, -1e300, 42.0};
  int64_t i64[2] = {-7, (int64_t)1 << 60};
  uint16_t bf16[3] = {0x3f80, 0xc040, 0x0000}; /* 1, -3, 0 */
  uint16_t f16[4] = {0x3c00, 0xc000, 0x0001, 0x7bff}; /* 1, -2, 2^-24, 65504 */
  uint8_t u8[5] = {0, 1, 2, 254, 255};
  float scalar = 7.0f;
  int32_t i32[1] = {-123456};
  int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s5[1] = {5}, s4[1] = {4},
          s0[2] = {0, 4}, s1[1] = {1};
  ck_assert_int_eq(c3_st_writer_add(w, "u8", C3_ST_U8, 1, s5, u8), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "w.f32", C3_ST_F32, 2, s23, f32), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "bf16", C3_ST_BF16, 1, s3, bf16), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "f64", C3_ST_F64, 1, s3, f64), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "i64", C3_ST_I64, 1, s2, i64), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "f16", C3_ST_F16, 1, s4, f16), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "scalar", C3_ST_F32, 0, NULL, &scalar),
                   CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "empty", C3_ST_F32, 2, s0, NULL), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "i32", C3_ST_I32, 1, s1, i32), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_set_metadata(w, "embed_dim", "12"), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_set_metadata(w, "note", "x"), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_set_metadata(w, "note", "h\xc3\xa9llo \"q\""),
                   CSAL3D_OK); /* replaces */
  void *buf;
  size_t len;
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | ((unsigned char *)buf)[i];
  ck_assert_uint_eq(hlen % 8, 0);
  ck_assert_int_eq(((char *)buf)[8], '{');

  c3_safetensors *st;
  ck_assert_int_eq(c3_st_parse(buf, len, "mem", &st), CSAL3D_OK);
  ck_assert_uint_eq(c3_st_count(st), 9);
  ck_assert_uint_eq(c3_st_metadata_count(st), 2);
  ck_assert_str_eq(c3_st_metadata(st, "embed_dim"), "12");
  ck_assert_str_eq(c3_st_metadata(st, "note"), "h\xc3\xa9llo \"q\"");
  ck_assert_ptr_null(c3_st_metadata(st, "absent"));
  ck_assert_uint_eq(c3_st_data_crc32(st), c3_st_writer_data_crc32(w));

  /* Each tensor aligned to its element size within the data section. */
  for (size_t i = 0; i < c3_st_count(st); i++) {
    const c3_st_entry *e = c3_st_entry_at(st, i);
    ck_assert_uint_eq(e->begin % c3_st_dtype_size(e->dtype), 0);
    ck_assert_ptr_eq(c3_st_find(st, e->name), e);
  }
  ck_assert_ptr_null(c3_st_find(st, "nope"));
  ck_assert_ptr_null(c3_st_find(st, ""));

  const c3_st_entry *e = c3_st_find(st, "w.f32");
  ck_assert_int_eq(e->dtype, C3_ST_F32);
  ck_assert_int_eq(e->ndim, 2);
  ck_assert_int_eq(e->shape[0], 2);
  ck_assert_int_eq(e->shape[1], 3);
  float got[6];
  ck_assert_int_eq(c3_st_read_f32(st, "w.f32", got, 6), CSAL3D_OK);
  ck_assert_mem_eq(got, f32, sizeof f32);
  const c3_st_entry *ed = c3_st_find(st, "f64");
  ck_assert_int_eq(ed->dtype, C3_ST_F64);
  double gd[3];
  memcpy(gd, ed->data, sizeof gd);
  ck_assert_mem_eq(gd, f64, sizeof f64);
  ck_assert_int_eq(c3_st_read_f32(st, "f64", got, 3), CSAL3D_OK);
  for (int i = 0; i < 3; i++) ck_assert(got[i] == (float)f64[i]);
  int64_t gi[2];
  ck_assert_int_eq(c3_st_read_i64(st, "i64", gi, 2), CSAL3D_OK);
  ck_assert_mem_eq(gi, i64, sizeof i64);
  ck_assert_int_eq(c3_st_read_i64(st, "i32", gi, 1), CSAL3D_OK);
  ck_assert_int_eq(gi[0], -123456);
  ck_assert_int_eq(c3_st_read_f32(st, "bf16", got, 3), CSAL3D_OK);
  ck_assert(got[0] == 1.0f && got[1] == -3.0f && got[2] == 0.0f);
  ck_assert_int_eq(c3_st_read_f32(st, "f16", got, 4), CSAL3D_OK);
  ck_assert(got[0] == 1.0f && got[1] == -2.0f && got[2] == ldexpf(1.0f, -24) &&
            got[3] == 65504.0f);
  ck_assert_int_eq(c3_st_read_f32(st, "u8", got, 5), CSAL3D_OK);
  ck_assert(got[3] == 254.0f && got[4] == 255.0f);
  ck_assert_int_eq(c3_st_read_f32(st, "scalar", got, 1), CSAL3D_OK);
  ck_assert(got[0] == 7.0f);
  e = c3_st_find(st, "scalar");
  ck_assert_int_eq(e->ndim, 0);
  ck_assert_uint_eq(e->numel, 1);
  e = c3_st_find(st, "empty");
  ck_assert_uint_eq(e->numel, 0);
  ck_assert_int_eq(c3_st_read_f32(st, "empty", got, 0), CSAL3D_OK);

  /* Reading errors name the tensor. */
  ck_assert_int_eq(c3_st_read_f32(st, "w.f32", got, 5), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "'w.f32' has shape [2, 3]"));
  ck_assert_int_eq(c3_st_read_f32(st, "missing", got, 1), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "no tensor named 'missing'"));
  ck_assert_int_eq(c3_st_read_i64(st, "f64", gi, 3), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "expected an integer"));
  c3_st_free(st);
  c3_free(buf);
  c3_st_writer_free(w);
}
END_TEST

START_TEST(writer_rejects_bad_entries) {
  c3_st_writer *w;
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  float x = 1;
  int64_t s1[1] = {1}, sneg[1] = {-1};
  ck_assert_int_eq(c3_st_writer_add(w, "a", C3_ST_F32, 1, s1, &x), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "a", C3_ST_F32, 1, s1, &x),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "'a' added twice"));
  ck_assert_int_eq(c3_st_writer_add(w, "", C3_ST_F32, 1, s1, &x),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c3_st_writer_add(w, "__metadata__", C3_ST_F32, 1, s1, &x),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c3_st_writer_add(w, "n", C3_ST_F32, 1, sneg, &x),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c3_st_writer_add(w, "d", (c3_st_dtype)99, 1, s1, &x),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c3_st_writer_add(w, "nul", C3_ST_F32, 1, s1, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c3_st_writer_add(w, "bad\xff", C3_ST_F32, 1, s1, &x), CSAL3D_OK);
  void *buf;
  size_t len;
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "UTF-8"));
  c3_st_writer_free(w);
  c3_st_writer_free(NULL);
}
END_TEST

START_TEST(empty_file_and_metadata_only) {
  c3_st_writer *w;
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  void *buf;
  size_t len;
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
  c3_safetensors *st;
  ck_assert_int_eq(c3_st_parse(buf, len, NULL, &st), CSAL3D_OK);
  ck_assert_uint_eq(c3_st_count(st), 0);
  ck_assert_uint_eq(c3_st_metadata_count(st), 0);
  c3_st_free(st);
  c3_free(buf);
  ck_assert_int_eq(c3_st_writer_set_metadata(w, "k", "v"), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
  ck_assert_int_eq(c3_st_parse(buf, len, NULL, &st), CSAL3D_OK);
  ck_assert_str_eq(c3_st_metadata(st, "k"), "v");
  c3_st_free(st);
  c3_free(buf);
  c3_st_writer_free(w);
  /* Accepted forms written by other tools: null metadata, padding, extra fields. */
  size_t l;
  void *b = make_file("{\"__metadata__\":null,\"a\":{\"dtype\":\"F32\",\"shape\":[],"
                      "\"data_offsets\":[0,4],\"extra\":1}}   ",
                      4, &l);
  ck_assert_int_eq(c3_st_parse(b, l, NULL, &st), CSAL3D_OK);
  ck_assert_uint_eq(c3_st_count(st), 1);
  c3_st_free(st);
  free(b);
  c3_st_free(NULL);
}
END_TEST

#define T(dt, shape, off) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"

START_TEST(malformed_inputs_are_rejected_with_clear_messages) {
  const csal3d_status F = CSAL3D_ERR_FORMAT;
  /* Framing. */
  {
    unsigned char tiny[5] = {1, 2, 3, 4, 5};
    c3_safetensors *st;
    ck_assert_int_eq(c3_st_parse(tiny, 5, "bad.safetensors", &st), F);
    ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "shorter than the 8-byte"));
    unsigned char big[16] = {0, 0, 0, 0, 0, 0, 0, 0x80};
    ck_assert_int_eq(c3_st_parse(big, 16, "bad.safetensors", &st), F);
    ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "exceeds the limit"));
    unsigned char over[16] = {100};
    ck_assert_int_eq(c3_st_parse(over, 16, "bad.safetensors", &st), F);
    ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "only 8 bytes follow"));
    unsigned char zero[8] = {0};
    ck_assert_int_eq(c3_st_parse(zero, 8, "bad.safetensors", &st), F);
    ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "header length is 0"));
  }
  expect_reject("[1,2]", 0, F, "does not start with '{'");
  expect_reject(" {}", 0, F, "does not start with '{'");
  expect_reject("{\"a\":", 0, F, "not valid JSON");
  expect_reject("{} x", 0, F, "not valid JSON");
  expect_reject("{\"a\":1,\"a\":2}", 0, F, "not valid JSON");      /* duplicate */
  expect_reject("{\"a\":\"\\u0000\"}", 0, F, "not valid JSON");    /* NUL */
  expect_reject("{\"\xff\":1}", 0, F, "not valid JSON");           /* bad UTF-8 */
  expect_reject("{\"a\":1}", 0, F, "tensor 'a': entry is not a JSON object");
  expect_reject("{\"\":" T("F32", "[1]", "[0,4]") "}", 4, F, "empty name");
  expect_reject("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, F,
                "tensor 'a': missing \"dtype\"");
  expect_reject("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, F,
                "missing \"shape\"");
  expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, F,
                "missing \"data_offsets\"");
  expect_reject("{\"a\":" T("F31", "[1]", "[0,4]") "}", 4, F,
                "unknown dtype \"F31\"");
  expect_reject("{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, F,
                "dtype is not a string");
  expect_reject("{\"a\":" T("F32", "1", "[0,4]") "}", 4, F, "shape is not an array");
  expect_reject("{\"a\":" T("F32", "[-1]", "[0,4]") "}", 4, F,
                "shape[0] is not a non-negative integer");
  expect_reject("{\"a\":" T("F32", "[1,2.0]", "[0,8]") "}", 8, F,
                "shape[1] is not a non-negative integer");
  expect_reject("{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, F,
                "9 dimensions");
  expect_reject("{\"a\":" T("F32", "[4294967296,4294967296]", "[0,4]") "}", 4, F,
                "overflows");
  expect_reject("{\"a\":" T("F32", "[2305843009213693952]", "[0,4]") "}", 4, F,
                "overflows");
  expect_reject("{\"a\":" T("F32", "[99999999999999999999]", "[0,4]") "}", 4, F,
                "not valid JSON"); /* beyond int64 */
  expect_reject("{\"a\":" T("F32", "[1]", "[0]") "}", 4, F, "[begin, end]");
  expect_reject("{\"a\":" T("F32", "[1]", "[0,4,8]") "}", 4, F, "[begin, end]");
  expect_reject("{\"a\":" T("F32", "[1]", "[-4,0]") "}", 4, F, "[begin, end]");
  expect_reject("{\"a\":" T("F32", "[1]", "{}") "}", 4, F, "[begin, end]");
  expect_reject("{\"a\":" T("F32", "[1]", "[4,0]") "}", 4, F, "end before");
  expect_reject("{\"a\":" T("F32", "[3]", "[0,8]") "}", 8, F,
                "shape [3] of F32 needs 12 bytes, but data_offsets [0, 8] hold 8");
  expect_reject("{\"a\":" T("F64", "[1]", "[0,4]") "}", 4, F, "needs 8 bytes");
  /* Offsets: gap, overlap, trailing bytes, truncation. */
  expect_reject("{\"a\":" T("F32", "[1]", "[4,8]") "}", 8, F,
                "bytes [0, 4) before tensor 'a' belong to no tensor");
  expect_reject("{\"a\":" T("F32", "[2]", "[0,8]") ",\"b\":" T("F32", "[1]", "[4,8]") "}",
                8, F, "overlaps");
  expect_reject("{\"a\":" T("F32", "[2]", "[0,8]") ",\"b\":" T("F32", "[0]", "[4,4]") "}",
                8, F, "overlaps");
  expect_reject("{\"a\":" T("F32", "[1]", "[0,4]") ",\"b\":" T("F32", "[1]", "[0,4]") "}",
                8, F, "overlaps");
  expect_reject("{\"a\":" T("F32", "[1]", "[0,4]") "}", 6, F,
                "2 bytes after the last tensor");
  expect_reject("{\"a\":" T("F32", "[2]", "[0,8]") "}", 6, F, "truncated");
  expect_reject("{\"a\":" T("F32", "[1]", "[0,4]") "}", 0, F, "truncated");
  /* Metadata. */
  expect_reject("{\"__metadata__\":[]}", 0, F, "__metadata__ is not a JSON object");
  expect_reject("{\"__metadata__\":{\"k\":1}}", 0, F,
                "__metadata__ \"k\" is not a string");
  expect_reject("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, F, "is not a string");
}
END_TEST

START_TEST(long_names_are_rejected) {
  char *h = malloc(4000);
  strcpy(h, "{\"");
  memset(h + 2, 'n', 2000);
  strcpy(h + 2002, "\":" T("F32", "[1]", "[0,4]") "}");
  expect_reject(h, 4, CSAL3D_ERR_FORMAT, "at most 1024");
  free(h);
}
END_TEST

static char tmpdir[256];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/c3_st_test_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

START_TEST(file_round_trip_atomic_and_file_errors) {
  make_tmpdir();
  char path[512], bad[512];
  snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);
  float data[1000];
  for (int i = 0; i < 1000; i++) data[i] = (float)i * 0.5f;
  int64_t shape[2] = {10, 100};
  c3_st_writer *w;
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "x", C3_ST_F32, 2, shape, data), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_set_metadata(w, "step", "3"), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_write_file(w, path), CSAL3D_OK);
  data[0] = 99; /* overwrite the existing file */
  ck_assert_int_eq(c3_st_writer_write_file(w, path), CSAL3D_OK);
  ck_assert_int_eq(count_files(tmpdir), 1); /* no temporary left behind */
  c3_safetensors *st;
  ck_assert_int_eq(c3_st_open(path, &st), CSAL3D_OK);
  ck_assert_str_eq(c3_st_source(st), path);
  ck_assert_str_eq(c3_st_metadata(st, "step"), "3");
  float got[1000];
  ck_assert_int_eq(c3_st_read_f32(st, "x", got, 1000), CSAL3D_OK);
  ck_assert_mem_eq(got, data, sizeof data);
  uint64_t dlen;
  const void *d = c3_st_data(st, &dlen);
  ck_assert_uint_eq(dlen, sizeof data);
  ck_assert_uint_eq((uintptr_t)d % C3_ALIGN, 0);
  ck_assert_uint_eq(c3_st_data_crc32(st), c3_st_writer_data_crc32(w));
  c3_st_free(st);

  /* A folder that does not exist: IO error, nothing written. */
  snprintf(bad, sizeof bad, "%s/no/such/dir/a.safetensors", tmpdir);
  ck_assert_int_eq(c3_st_writer_write_file(w, bad), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "temporary file"));
  c3_st_writer_free(w);

  ck_assert_int_eq(c3_st_open(bad, &st), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "no/such/dir"));
  ck_assert_int_eq(c3_st_open(tmpdir, &st), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not a regular file"));

  /* Truncated copies of the file: every cut is a FORMAT error. */
  FILE *f = fopen(path, "rb");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *all = malloc((size_t)size);
  ck_assert_uint_eq(fread(all, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  long cuts[] = {0, 3, 8, 20, size - 4000, size - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    snprintf(bad, sizeof bad, "%s/cut.safetensors", tmpdir);
    f = fopen(bad, "wb");
    fwrite(all, 1, (size_t)cuts[i], f);
    fclose(f);
    ck_assert_int_eq(c3_st_open(bad, &st), CSAL3D_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "cut.safetensors"));
    ck_assert_ptr_null(st);
  }
  free(all);
  unlink(bad);
  unlink(path);
  rmdir(tmpdir);
}
END_TEST

START_TEST(allocation_failures_are_reported_and_leak_free) {
  c3_st_writer *w;
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  float x[4] = {1, 2, 3, 4};
  int64_t s4[1] = {4};
  char name[16];
  for (int i = 0; i < 20; i++) {
    snprintf(name, sizeof name, "t%d", i);
    ck_assert_int_eq(c3_st_writer_add(w, name, C3_ST_F32, 1, s4, x), CSAL3D_OK);
  }
  ck_assert_int_eq(c3_st_writer_set_metadata(w, "a", "b"), CSAL3D_OK);
  void *buf;
  size_t len;
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
  int failures = 0;
  for (long n = 1; n < 200; n++) {
    c3_safetensors *st = NULL;
    c3_alloc_fail_after(n);
    csal3d_status s = c3_st_parse(buf, len, NULL, &st);
    c3_alloc_fail_after(0);
    if (s == CSAL3D_OK) {
      ck_assert_uint_eq(c3_st_count(st), 20);
      c3_st_free(st);
      break;
    }
    ck_assert_int_eq(s, CSAL3D_ERR_OUT_OF_MEMORY);
    ck_assert_ptr_null(st);
    failures++;
  }
  ck_assert_int_gt(failures, 3);
  for (long n = 1; n < 50; n++) {
    void *b2 = NULL;
    size_t l2;
    c3_alloc_fail_after(n);
    csal3d_status s = c3_st_writer_write_buffer(w, &b2, &l2);
    c3_alloc_fail_after(0);
    if (s == CSAL3D_OK) {
      ck_assert_uint_eq(l2, len);
      ck_assert_mem_eq(b2, buf, len);
      c3_free(b2);
      break;
    }
    ck_assert_int_eq(s, CSAL3D_ERR_OUT_OF_MEMORY);
  }
  c3_free(buf);
  c3_st_writer_free(w);
}
END_TEST

/* The checked-in corpus (also the fuzzer's seeds). */
START_TEST(corpus_files_parse_or_fail_cleanly) {
  const char *dir = getenv("CSAL3D_TEST_DATA");
  char path[1024];
  snprintf(path, sizeof path, "%s/safetensors", dir ? dir : "tests/data");
  DIR *d = opendir(path);
  ck_assert_msg(d != NULL, "corpus folder %s is missing", path);
  struct dirent *de;
  int valid = 0, invalid = 0;
  while ((de = readdir(d))) {
    size_t nl = strlen(de->d_name);
    if (nl < 12 || strcmp(de->d_name + nl - 12, ".safetensors") != 0) continue;
    char file[2048];
    snprintf(file, sizeof file, "%s/%s", path, de->d_name);
    c3_safetensors *st = NULL;
    csal3d_status s = c3_st_open(file, &st);
    if (strncmp(de->d_name, "valid_", 6) == 0) {
      ck_assert_msg(s == CSAL3D_OK, "%s: %s", file, csal3d_last_error());
      for (size_t i = 0; i < c3_st_count(st); i++) {
        const c3_st_entry *e = c3_st_entry_at(st, i);
        if (e->dtype == C3_ST_F8_E4M3 || e->dtype == C3_ST_F8_E5M2) continue;
        float *tmp = malloc((size_t)e->numel * sizeof(float) + 1);
        ck_assert_int_eq(c3_st_entry_read_f32(st, e, tmp, (size_t)e->numel),
                         CSAL3D_OK);
        free(tmp);
      }
      valid++;
    } else {
      ck_assert_msg(s == CSAL3D_ERR_FORMAT, "%s: status %d (%s)", file, (int)s,
                    csal3d_last_error());
      ck_assert_ptr_nonnull(strstr(csal3d_last_error(), de->d_name));
      invalid++;
    }
    c3_st_free(st);
  }
  closedir(d);
  ck_assert_int_gt(valid, 0);
  ck_assert_int_gt(invalid, 0);
}
END_TEST

/* The MONAI reference files, when present: headers parse and hold what the
 * README promises. */
START_TEST(reference_files_parse) {
  const char *dir = getenv("CSAL3D_REFERENCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/ssl_tiny_cube.safetensors",
           dir ? dir : "../shared/reference");
  if (access(path, R_OK) != 0) {
    printf("SKIP: %s not found\n", path);
    return;
  }
  c3_safetensors *st;
  ck_assert_msg(c3_st_open(path, &st) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_str_eq(c3_st_metadata(st, "embed_dim"), "12");
  const c3_st_entry *e = c3_st_find(st, "param.swinViT.patch_embed.proj.weight");
  ck_assert_ptr_nonnull(e);
  ck_assert_int_eq(e->ndim, 5);
  ck_assert_int_eq(e->shape[0], 12);
  e = c3_st_find(st, "labels");
  ck_assert_int_eq(e->dtype, C3_ST_I64);
  int64_t labels[2];
  ck_assert_int_eq(c3_st_read_i64(st, "labels", labels, 2), CSAL3D_OK);
  ck_assert(labels[0] >= 0 && labels[0] < 4 && labels[1] >= 0 && labels[1] < 4);
  c3_st_free(st);
}
END_TEST


/* ---- hostile files (tests/data/hostile, issue 13) ---- */

START_TEST(hostile_corpus_gives_specific_errors) {
  json_t *root, *a = hostile_entries("safetensors", &root), *e;
  size_t i;
  json_array_foreach(a, i, e) {
    char buf[512];
    const char *path = hostile_path(e, buf, sizeof buf);
    c3_safetensors *st = (c3_safetensors *)0x1;
    csal3d_status s = c3_st_open(path, &st);
    hostile_check(e, path, s);
    if (s == CSAL3D_OK) c3_st_free(st);
    else ck_assert_ptr_null(st);
  }
  ck_assert_uint_ge(json_array_size(a), 8);
  json_decref(root);
}
END_TEST

/* A sparse 2 GB file whose header is malformed, or whose layout does not match its size,
 * is refused from the header alone: fast, without reading (or holding) the 2 GB. */
START_TEST(sparse_file_refused_before_its_data_is_read) {
  make_tmpdir();
  const char *headers[] = {"{\"x\": not json                  ",
                           "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"};
  const char *why[] = {"header is not valid JSON", "bytes after the last tensor"};
  for (int i = 0; i < 2; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/sparse%d.safetensors", tmpdir, i);
    size_t len;
    void *b = make_file(headers[i], 4, &len);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, b, len), (ssize_t)len);
    ck_assert_int_eq(ftruncate(fd, (off_t)2 << 30), 0);
    close(fd);
    free(b);
    const double rss0 = max_rss_mib(), t0 = now();
    c3_safetensors *st = (c3_safetensors *)0x1;
    ck_assert_int_eq(c3_st_open(path, &st), CSAL3D_ERR_FORMAT);
    ck_assert_ptr_null(st);
    ck_assert_msg(strstr(csal3d_last_error(), why[i]), "%s", csal3d_last_error());
    ck_assert_msg(now() - t0 < 0.5, "took %.2f s", now() - t0);
    ck_assert_msg(max_rss_mib() - rss0 < 64, "grew by %.0f MiB", max_rss_mib() - rss0);
    unlink(path);
  }
  rmdir(tmpdir);
}
END_TEST

/* A FIFO (or a device) is refused without blocking on it (the alarm fails the test if
 * it does). */
START_TEST(fifos_and_devices_are_refused_unopened) {
  alarm(20);
  make_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/fifo.safetensors", tmpdir);
  ck_assert_int_eq(mkfifo(path, 0644), 0);
  c3_safetensors *st = (c3_safetensors *)0x1;
  ck_assert_int_eq(c3_st_open(path, &st), CSAL3D_ERR_IO);
  ck_assert_ptr_null(st);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "fifo.safetensors: not a regular file"));
  ck_assert_int_eq(c3_st_open("/dev/zero", &st), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not a regular file"));
  unlink(path);
  rmdir(tmpdir);
  alarm(0);
}
END_TEST

/* ---- atomic writes ---- */

/* 1 if the file at path holds exactly `text`. */
static int file_is(const char *path, const char *text) {
  char buf[64] = {0};
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  return n == strlen(text) && !memcmp(buf, text, n);
}

enum { BIG = 1 << 16 };
static float big_data[BIG];

typedef struct write_job {
  const char *path;
  int fileutil; /* c3_write_file_atomic instead of the safetensors writer */
} write_job;

static csal3d_status write_big(const write_job *j) {
  if (j->fileutil) return c3_write_file_atomic(j->path, big_data, sizeof big_data);
  c3_st_writer *w;
  int64_t shape[1] = {BIG};
  csal3d_status s = c3_st_writer_create(&w);
  if (s == CSAL3D_OK) s = c3_st_writer_add(w, "x", C3_ST_F32, 1, shape, big_data);
  if (s == CSAL3D_OK) s = c3_st_writer_write_file(w, j->path);
  c3_st_writer_free(w);
  return s;
}

static int write_fails_naming_target(void *arg) {
  const write_job *j = arg;
  return failed_naming(write_big(j), j->path);
}

static void write_killed(void *arg) { (void)write_big(arg); }

/* A write that fails (a full disk, a file size limit) names the target, not the
 * temporary, and leaves the old file as it was and no temporary behind. */
START_TEST(write_errors_name_the_target) {
  make_tmpdir();
  for (int fu = 0; fu < 2; fu++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, fu ? "notes.json" : "ck.safetensors");
    ck_assert_int_eq(c3_write_file_atomic(path, "old", 3), CSAL3D_OK);
    write_job j = {path, fu};
    ck_assert_int_eq(with_write_limit(write_fails_naming_target, &j, 4096), 0);
    ck_assert(file_is(path, "old"));
  }
  ck_assert_int_eq(count_files(tmpdir), 2); /* no temporary left */
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The 35 checkpoint saves killed inside their write, in small: each save removes
 * the temporaries earlier killed saves left, never others'. */
START_TEST(killed_writes_are_cleaned_up_by_the_next) {
  make_tmpdir();
  for (int fu = 0; fu < 2; fu++) {
    const char *name = fu ? "notes.json" : "ck.safetensors";
    char path[512], pattern[300], stale[300], names[8][256], keep[6][256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    snprintf(pattern, sizeof pattern, ".%s.tmp.", name);
    write_job j = {path, fu};
    ck_assert_int_eq(c3_write_file_atomic(path, "old", 3), CSAL3D_OK);
    for (int k = 0; k < 5; k++) {
      pid_t p = killed_inside_write(write_killed, &j, 4096);
      ck_assert(file_is(path, "old")); /* the kill left the target as it was */
      ck_assert_int_eq(names_with(tmpdir, pattern, names, 8), 1);
      snprintf(stale, sizeof stale, ".%s.tmp.%d.", name, (int)p);
      ck_assert_msg(strstr(names[0], stale) == names[0], "%s is not %s*", names[0], stale);
    }
    make_decoys(tmpdir, name, "tmp", 0, dead_pid(), keep);
    ck_assert_int_eq(write_big(&j), CSAL3D_OK);
    ck_assert(exists_in(tmpdir, name));
    int left = names_with(tmpdir, pattern, names, 8);
    for (int k = 0; k < left && k < 8; k++) ck_assert_ptr_null(strstr(names[k], stale));
    for (int k = 0; k < 6; k++) ck_assert_msg(exists_in(tmpdir, keep[k]), "%s removed", keep[k]);
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("safetensors");
  TCase *t = tcase_create("safetensors");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, round_trip_all_dtypes_metadata_and_alignment);
  tcase_add_test(t, writer_rejects_bad_entries);
  tcase_add_test(t, empty_file_and_metadata_only);
  tcase_add_test(t, malformed_inputs_are_rejected_with_clear_messages);
  tcase_add_test(t, long_names_are_rejected);
  tcase_add_test(t, file_round_trip_atomic_and_file_errors);
  tcase_add_test(t, allocation_failures_are_reported_and_leak_free);
  tcase_add_test(t, corpus_files_parse_or_fail_cleanly);
  tcase_add_test(t, reference_files_parse);
  tcase_add_test(t, hostile_corpus_gives_specific_errors);
  tcase_add_test(t, sparse_file_refused_before_its_data_is_read);
  tcase_add_test(t, fifos_and_devices_are_refused_unopened);
  tcase_add_test(t, write_errors_name_the_target);
  tcase_add_test(t, killed_writes_are_cleaned_up_by_the_next);
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
