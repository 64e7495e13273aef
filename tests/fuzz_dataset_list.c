/* libFuzzer target for dataset list files (text lists and CSVs with a header; not part of
 * make check, whose test_dataset replays the corpus tests/data/dataset_list).
 *
 * Build and run (clang 14), from the repository root:
 *   sh tests/fuzz_manifest_build.sh
 *   rm -rf build/fuzz_list_corpus && cp -r tests/data/dataset_list build/fuzz_list_corpus
 *   build/fuzz_dataset_list -max_total_time=300 build/fuzz_list_corpus
 *
 * Each input is written to a file (list.txt in a temporary folder) and opened. Properties:
 * a rejected input gives no dataset; an accepted one has cases with at least one image
 * each and ids that are valid (c3_case_id_problem) and unique. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csal3d/csal3d.h"
#include "pipeline/dataset.h"
#include "pipeline/scores.h"

static void check(int cond) {
  if (!cond) abort();
}

static int cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) {
    char dir[] = "/tmp/csal3d_fuzz_list_XXXXXX";
    check(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/list.txt", dir);
  }
  FILE *f = fopen(path, "wb");
  check(f != NULL);
  check(fwrite(data, 1, size, f) == size);
  fclose(f);
  csal3d_dataset *ds = (csal3d_dataset *)1;
  if (csal3d_dataset_open(path, NULL, &ds) != CSAL3D_OK) {
    check(ds == NULL);
    return 0;
  }
  size_t n = c3_dataset_n(ds);
  check(n > 0);
  const char **ids = malloc(n * sizeof *ids);
  check(ids != NULL);
  for (size_t i = 0; i < n; i++) {
    ids[i] = c3_dataset_id(ds, i);
    check(c3_case_id_problem(ids[i]) == NULL);
    check(c3_dataset_image_count(ds, i) >= 1);
  }
  qsort(ids, n, sizeof *ids, cmp);
  for (size_t i = 1; i < n; i++) check(strcmp(ids[i - 1], ids[i]) != 0);
  free(ids);
  csal3d_dataset_free(ds);
  return 0;
}
