/* libFuzzer target for the safetensors parser (not part of make check).
 *
 * Build and run (clang 14), from the repository root:
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Ilib tests/fuzz_safetensors.c lib/io/safetensors.c lib/io/fileutil.c \
 *     lib/core/alloc.c lib/core/error.c -ljansson -lz -o build/fuzz_safetensors
 *   rm -rf build/fuzz_corpus && cp -r tests/data/safetensors build/fuzz_corpus
 *   cp tests/data/hostile/safetensors/* build/fuzz_corpus/
 *   build/fuzz_safetensors -max_total_time=300 build/fuzz_corpus
 * New inputs worth keeping (found by -merge=1 into a copy of the seeds) go to
 * tests/data/safetensors as valid_fuzz_SHA1 or invalid_fuzz_SHA1.safetensors, by whether
 * they parse (test_safetensors' corpus_files_parse_or_fail_cleanly replays them).
 *
 * Properties checked beyond "no crash, no leak, no UB": an accepted input's
 * tensors tile its data section, every tensor converts, and writing the parsed
 * file back and parsing that gives the same tensors, metadata and data. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/safetensors.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  c3_safetensors *st = NULL;
  if (c3_st_parse(data, size, "fuzz", &st) != CSAL3D_OK) {
    check(st == NULL);
    return 0;
  }
  uint64_t dlen;
  c3_st_data(st, &dlen);
  uint64_t at = 0;
  c3_st_writer *w = NULL;
  check(c3_st_writer_create(&w) == CSAL3D_OK);
  for (size_t i = 0; i < c3_st_count(st); i++) {
    const c3_st_entry *e = c3_st_entry_at(st, i);
    check(e->begin == at && e->end >= e->begin && c3_st_find(st, e->name) == e);
    at = e->end;
    if (e->numel <= 4096 && e->dtype != C3_ST_F8_E4M3 && e->dtype != C3_ST_F8_E5M2) {
      float buf[4096];
      check(c3_st_entry_read_f32(st, e, buf, (size_t)e->numel) == CSAL3D_OK);
    }
    check(c3_st_writer_add(w, e->name, e->dtype, e->ndim, e->shape, e->data) ==
          CSAL3D_OK);
  }
  check(at == dlen);
  for (size_t i = 0; i < c3_st_metadata_count(st); i++) {
    const char *k, *v;
    c3_st_metadata_at(st, i, &k, &v);
    check(c3_st_writer_set_metadata(w, k, v) == CSAL3D_OK);
  }
  void *out;
  size_t len;
  check(c3_st_writer_write_buffer(w, &out, &len) == CSAL3D_OK);
  c3_safetensors *again = NULL;
  check(c3_st_parse(out, len, "rewritten", &again) == CSAL3D_OK);
  check(c3_st_count(again) == c3_st_count(st));
  check(c3_st_metadata_count(again) == c3_st_metadata_count(st));
  for (size_t i = 0; i < c3_st_count(st); i++) {
    const c3_st_entry *e = c3_st_entry_at(st, i);
    const c3_st_entry *f = c3_st_find(again, e->name);
    check(f && f->dtype == e->dtype && f->ndim == e->ndim && f->numel == e->numel);
    check(memcmp(f->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim) == 0);
    check(memcmp(f->data, e->data, (size_t)(e->end - e->begin)) == 0);
  }
  for (size_t i = 0; i < c3_st_metadata_count(st); i++) {
    const char *k, *v;
    c3_st_metadata_at(st, i, &k, &v);
    const char *v2 = c3_st_metadata(again, k);
    check(v2 && strcmp(v, v2) == 0);
  }
  c3_st_free(again);
  c3_free(out);
  c3_st_writer_free(w);
  c3_st_free(st);
  return 0;
}
