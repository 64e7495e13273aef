/* libFuzzer target for the NIfTI loader (header checks, nifticlib's header parsing, our
 * voxel reading, conversion and reorientation) and the writer (not part of make check).
 *
 * Build and run (clang 14), from the repository root:
 *   sh tests/fuzz_nifti_build.sh            # builds build/fuzz_nifti
 *   rm -rf build/fuzz_nifti_corpus && mkdir -p build/fuzz_nifti_corpus
 *   cp tests/data/nifti/[a-z]*.nii* tests/data/nifti_bad/[a-z]* tests/data/nifti_fuzz/*.nii* \
 *      tests/data/hostile/nifti/*.nii* build/fuzz_nifti_corpus/
 *   build/fuzz_nifti -max_total_time=300 -rss_limit_mb=2048 build/fuzz_nifti_corpus
 * New inputs worth keeping: copy the seeds into an empty folder, run
 *   build/fuzz_nifti -merge=1 FOLDER build/fuzz_nifti_corpus
 * and add what the merge added to tests/data/nifti_fuzz as fuzz_SHA1.nii(.gz) (replayed by
 * test_nifti's fuzz_corpus_properties). An input that still breaks a property goes to
 * tests/data/nifti_fuzz/open, kept out of the replay until fixed; orientation_tie_roundtrip.nii
 * was one (a qform whose rotation has exact ties between world axes, 180 degrees about
 * (1,1,1): the RAS axis order chosen changed with the last-bit differences a save brings,
 * until ties within 1e-5 went to the first world axis).
 *
 * Each input is written to a temporary .nii (or .nii.gz when it starts with the gzip
 * magic) and loaded. Properties beyond "no crash, no leak, no UB": a failure leaves *out
 * NULL and a message; an accepted image has a positive shape and finite voxels, and saving
 * it and loading the result gives the same voxels bit for bit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csal3d/volume.h"

static void check(int cond) {
  if (!cond) abort();
}

static char in_path[64], out_path[64];

static void paths(int gz) {
  snprintf(in_path, sizeof in_path, "/tmp/csal3d_fuzz_%d%s", (int)getpid(),
           gz ? ".nii.gz" : ".nii");
  snprintf(out_path, sizeof out_path, "/tmp/csal3d_fuzz_%d_out.nii", (int)getpid());
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  paths(size >= 2 && data[0] == 0x1f && data[1] == 0x8b);
  FILE *f = fopen(in_path, "wb");
  if (!f) return 0;
  if (size) fwrite(data, 1, size, f);
  fclose(f);
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.max_voxels = 1 << 22;
  o.channel = size % 3 == 0 ? CSAL3D_CHANNEL_ALL : CSAL3D_CHANNEL_NONE;
  csal3d_volume *v = (csal3d_volume *)&o;
  csal3d_status s = csal3d_volume_load(in_path, &o, &v);
  unlink(in_path);
  if (s != CSAL3D_OK) {
    check(v == NULL);
    check(csal3d_last_error()[0] != '\0');
    return 0;
  }
  int64_t shape[4];
  check(csal3d_volume_shape(v, shape) == CSAL3D_OK);
  check(shape[0] >= 1 && shape[1] >= 1 && shape[2] >= 1 && shape[3] >= 1);
  const float *x;
  csal3d_volume_data(v, &x);
  size_t n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
  for (size_t i = 0; i < n; i++) check(x[i] - x[i] == 0.0f); /* finite */
  if (n <= 100000) {
    csal3d_volume_save_options so;
    csal3d_volume_save_options_init(&so);
    so.dtype = CSAL3D_SAVE_FLOAT32;
    if (csal3d_volume_save(v, out_path, &so) == CSAL3D_OK) {
      csal3d_volume *w = NULL;
      o.channel = CSAL3D_CHANNEL_ALL;
      o.max_voxels = 0;
      check(csal3d_volume_load(out_path, &o, &w) == CSAL3D_OK);
      int64_t s2[4];
      csal3d_volume_shape(w, s2);
      check(!memcmp(shape, s2, sizeof s2));
      const float *y;
      csal3d_volume_data(w, &y);
      check(!memcmp(x, y, n * sizeof *x));
      csal3d_volume_free(w);
      unlink(out_path);
    }
  }
  csal3d_volume_free(v);
  return 0;
}
