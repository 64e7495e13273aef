/* Shared by the parity tests (test_model_parity, test_ssl_parity,
 * test_uncertainty_parity): where the reference files are, and the engine they run on.
 * CSAL3D_REFERENCE_DIR (default ../shared/reference) holds the files;
 * CSAL3D_PARITY_DEVICE=cuda runs on the CUDA engine (tests/run.sh names this build's
 * plugin in CSAL3D_TEST_CUDA_PLUGIN: the tests link the static library, so the plugin
 * is not found beside a shared one). */
#ifndef CSAL3D_TEST_PARITY_H
#define CSAL3D_TEST_PARITY_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csal3d/common.h"
#include "engine/engine.h"

static inline const char *c3_test_reference_dir(void) {
  const char *dir = getenv("CSAL3D_REFERENCE_DIR");
  return dir && *dir ? dir : "../shared/reference";
}

/* path = the reference file `name`; 0 when it exists, else 77 after printing SKIP. */
static inline int c3_test_reference_file(const char *name, char *path, size_t cap) {
  snprintf(path, cap, "%s/%s", c3_test_reference_dir(), name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    printf("SKIP: %s not found (set CSAL3D_REFERENCE_DIR)\n", path);
    return 77;
  }
  fclose(f);
  return 0;
}

/* Opens the engine of CSAL3D_PARITY_DEVICE (the CPU by default) and prints its name;
 * 0, or the exit code: 77 (SKIP) where CUDA is asked for and cannot open, 1 (FAIL)
 * where the CPU engine cannot. */
static inline int c3_test_parity_engine(c3_engine **e) {
  const char *dev = getenv("CSAL3D_PARITY_DEVICE");
  int cuda = dev && strcmp(dev, "cuda") == 0;
  if (cuda && !getenv("CSAL3D_CUDA_PLUGIN") && getenv("CSAL3D_TEST_CUDA_PLUGIN"))
    setenv("CSAL3D_CUDA_PLUGIN", getenv("CSAL3D_TEST_CUDA_PLUGIN"), 1);
  if (c3_engine_open(cuda ? CSAL3D_DEVICE_CUDA : CSAL3D_DEVICE_CPU, 0, e) != CSAL3D_OK) {
    printf("%s: %s engine: %s\n", cuda ? "SKIP" : "FAIL", cuda ? "CUDA" : "CPU",
           csal3d_last_error());
    return cuda ? 77 : 1;
  }
  printf("engine: %s\n", (*e)->name);
  return 0;
}

#endif
