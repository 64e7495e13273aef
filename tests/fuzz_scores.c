/* libFuzzer target for the scores-file reader (not part of make check).
 *
 * Build and run (clang 14), from the repository root:
 *   sh tests/fuzz_manifest_build.sh
 *   rm -rf build/fuzz_scores_corpus && cp -r tests/data/scores build/fuzz_scores_corpus
 *   build/fuzz_scores -max_total_time=300 build/fuzz_scores_corpus
 *
 * Properties checked beyond "no crash, no leak, no UB": a rejected input leaves no
 * table; an accepted one has every case set, finite scores and features, and
 * survives a save/load round trip with the same values and strings. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/scores.h"

static void check(int cond) {
  if (!cond) abort();
}

static void same_string(const csal3d_scores *a, const csal3d_scores *b, int64_t i,
                        const char *what) {
  char x[8192], y[8192];
  size_t nx = 0, ny = 0;
  csal3d_status sa = csal3d_scores_case_string(a, i, what, x, sizeof x, &nx);
  csal3d_status sb = csal3d_scores_case_string(b, i, what, y, sizeof y, &ny);
  check(sa == sb && nx == ny);
  if (sa == CSAL3D_OK) check(strcmp(x, y) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  csal3d_scores *s = NULL;
  if (c3_scores_parse(data, size, "fuzz", &s) != CSAL3D_OK) {
    check(s == NULL);
    return 0;
  }
  int64_t n, d;
  check(csal3d_scores_size(s, &n, &d) == CSAL3D_OK && n >= 1 && d >= 1);
  size_t need;
  check(csal3d_scores_copy_features(s, NULL, 0, &need) == CSAL3D_OK);
  float *f = malloc(need * sizeof(float)), *sc = malloc((size_t)n * sizeof(float));
  check(f && sc);
  check(csal3d_scores_copy_features(s, f, need, NULL) == CSAL3D_OK);
  check(csal3d_scores_copy_scores(s, sc, (size_t)n, NULL) == CSAL3D_OK);
  for (size_t i = 0; i < need; i++) check(isfinite(f[i]));
  for (int64_t i = 0; i < n; i++) check(isfinite(sc[i]));
  /* Round trip through a file. */
  char path[64];
  snprintf(path, sizeof path, "/tmp/fuzz_scores_%d.safetensors", (int)getpid());
  csal3d_status st = csal3d_scores_save(s, path);
  if (st == CSAL3D_OK) {
    csal3d_scores *t = NULL;
    check(csal3d_scores_load(path, &t) == CSAL3D_OK);
    float *g = malloc(need * sizeof(float));
    check(g && csal3d_scores_copy_features(t, g, need, NULL) == CSAL3D_OK);
    check(memcmp(f, g, need * sizeof(float)) == 0);
    for (int64_t i = 0; i < n; i++) {
      same_string(s, t, i, "id");
      same_string(s, t, i, "label");
      same_string(s, t, i, "map");
      same_string(s, t, i, "image");
    }
    free(g);
    csal3d_scores_free(t);
    unlink(path);
  } else {
    /* Paths read from the file are kept as they are; saving makes none absolute, so it
     * can only fail on I/O here. */
    check(st == CSAL3D_ERR_IO);
  }
  free(f);
  free(sc);
  csal3d_scores_free(s);
  return 0;
}
