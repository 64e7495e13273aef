/* csal3d-phantom: writes the synthetic CT dataset of docs/phantom.md.
 *
 *   csal3d-phantom FOLDER [--cases N] [--seed S] [--size N] [--slices N]
 *
 * FOLDER gets imagesTr/, labelsTr/ and dataset.json (decathlon layout). Exit codes: 0
 * success, 1 a library error, 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csal3d/csal3d.h"

static int progress(void *user, const char *stage, uint64_t done, uint64_t total) {
  (void)user;
  if (done == total || done % 10 == 0)
    fprintf(stderr, "\r%s: %llu/%llu", stage, (unsigned long long)done,
            (unsigned long long)total);
  if (done == total) fputc('\n', stderr);
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: csal3d-phantom FOLDER [--cases N] [--seed S] [--size N] [--slices N] "
             "[--quiet]\n\n"
             "Writes synthetic abdominal CT volumes with organ labels (liver, spleen, kidney,\n"
             "lesion) as NIfTI in the decathlon layout (imagesTr/, labelsTr/, dataset.json).\n"
             "Defaults: 40 cases, seed 0, 80 voxels in-plane, 64 slices.\n");
}

int main(int argc, char **argv) {
  csal3d_phantom_options o;
  csal3d_phantom_options_init(&o);
  const char *folder = NULL;
  int quiet = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--quiet")) {
      quiet = 1;
    } else if (i + 1 < argc && (!strcmp(a, "--cases") || !strcmp(a, "--seed") ||
                                !strcmp(a, "--size") || !strcmp(a, "--slices"))) {
      char *end;
      unsigned long long v = strtoull(argv[++i], &end, 10);
      if (*end || end == argv[i]) {
        fprintf(stderr, "csal3d-phantom: %s needs a number, not '%s'\n", a, argv[i]);
        return 2;
      }
      if (!strcmp(a, "--cases")) o.cases = (int)v;
      else if (!strcmp(a, "--seed")) o.seed = v;
      else if (!strcmp(a, "--size")) o.size = (int)v;
      else o.slices = (int)v;
    } else if (a[0] == '-' || folder) {
      fprintf(stderr, "csal3d-phantom: unexpected argument '%s'\n", a);
      usage(stderr);
      return 2;
    } else {
      folder = a;
    }
  }
  if (!folder) {
    usage(stderr);
    return 2;
  }
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  if (!quiet) co.progress = progress;
  csal3d_context *ctx;
  if (csal3d_context_create(&co, &ctx) != CSAL3D_OK ||
      csal3d_phantom_generate(folder, &o, ctx) != CSAL3D_OK) {
    fprintf(stderr, "csal3d-phantom: %s\n", csal3d_last_error());
    return 1;
  }
  csal3d_context_free(ctx);
  if (!quiet) printf("%d cases written to %s (seed %llu)\n", o.cases, folder,
                     (unsigned long long)o.seed);
  return 0;
}
