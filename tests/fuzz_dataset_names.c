/* libFuzzer target for the dataset.json label / channel names reader used by the nnU-Net
 * export (not part of make check).
 *
 * Build and run (clang 14), from the repository root:
 *   sh tests/fuzz_manifest_build.sh
 *   rm -rf build/fuzz_names_corpus && cp -r tests/data/dataset_json build/fuzz_names_corpus
 *   build/fuzz_dataset_names -max_total_time=300 build/fuzz_names_corpus
 *
 * Properties: a rejected input leaves empty lists; an accepted one has label names for
 * every value 0..count-1 and channel names for every index 0..count-1, each non-empty. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/nnunet.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  c3_names l, c;
  if (c3_dataset_names_parse((const char *)data, size, "fuzz", &l, &c) != CSAL3D_OK) {
    check(l.count == 0 && c.count == 0);
    return 0;
  }
  for (int i = 0; i < l.count; i++) check(l.name[i] && l.name[i][0]);
  for (int i = 0; i < c.count; i++) check(c.name[i] && c.name[i][0]);
  c3_names_free(&l);
  c3_names_free(&c);
  return 0;
}
