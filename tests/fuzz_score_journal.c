/* libFuzzer target for the reader of scoring journals (`SCORES.partial`, the resume
 * state of csal3d_score_dataset; format in lib/pipeline/journal.h). Not part of make
 * check; its corpus (tests/data/score_journal) is replayed by tests/test_score.c.
 *
 * Build and run (clang 14), from the repository root:
 *   sh tests/fuzz_manifest_build.sh
 *   rm -rf build/fuzz_journal_corpus && cp -r tests/data/score_journal build/fuzz_journal_corpus
 *   build/fuzz_score_journal -max_total_time=300 build/fuzz_journal_corpus
 *
 * Properties beyond "no crash, no leak, no UB": an accepted journal's records are
 * within the input, have non-empty ids and images, finite scores and features, and
 * c3_journal_find returns the last record of each id. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/journal.h"

static void check(int cond) {
  if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  c3_journal j;
  if (c3_journal_parse(data, size, "fuzz", &j) != CSAL3D_OK) return 0;
  check(j.valid_bytes <= size);
  check(j.settings != NULL && j.d >= 0);
  for (size_t i = 0; i < j.n; i++) {
    const c3_journal_rec *r = &j.recs[i];
    check(r->id && *r->id && r->image && *r->image);
    check(!r->map || *r->map);
    check(isfinite(r->score));
    for (int64_t k = 0; k < j.d; k++) check(isfinite(r->feature[k]));
    const c3_journal_rec *f = c3_journal_find(&j, r->id, r->image);
    check(f != NULL && strcmp(f->id, r->id) == 0);
  }
  c3_journal_close(&j, 0);
  return 0;
}
