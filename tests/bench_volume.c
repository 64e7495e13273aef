/* make bench: volume I/O and the geometric machinery.
 *
 * 1. Load + normalise (MRI) the 260 MSD hippocampus volumes (../shared/data, or
 *    $CSAL3D_DATA_DIR), volumes per second, next to nibabel + numpy doing the same work
 *    (tests/bench_volume_nibabel.py, when python3-nibabel is installed).
 * 2. The phantom generator (8 cases of the default size).
 * 3. The 9 SSL observations of a 128^3 crop (view + rot90 + mask) and their inverses.
 * 4. Window accumulation of a 256 x 256 x 160 volume (128^3 windows, stride 64). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "csal3d/csal3d.h"
#include "volume/views.h"
#include "volume/windows.h"
#include "bench_util.h"

static void row(const char *what, int count, double seconds, const char *rate_unit,
                double rate) {
  printf("%-44s %6d %9.3f %10.3f %12.1f %-10s %8.0f\n", what, count, seconds,
         1e3 * seconds / count, rate, rate_unit, max_rss_mib());
}

int main(void) {
  printf("%-44s %6s %9s %10s %12s %-10s %8s\n", "benchmark", "n", "time s", "ms each",
         "rate", "unit", "peak MB");
  /* 1. Hippocampus. */
  const char *root = getenv("CSAL3D_DATA_DIR");
  char dir[1024], json[1100];
  snprintf(dir, sizeof dir, "%s/msd_hippocampus", root && *root ? root : "../shared/data");
  snprintf(json, sizeof json, "%s/dataset.json", dir);
  if (access(json, R_OK) == 0) {
    csal3d_dataset *ds;
    if (csal3d_dataset_open(json, NULL, &ds) != CSAL3D_OK) {
      fprintf(stderr, "bench: %s\n", csal3d_last_error());
      return 1;
    }
    size_t n;
    csal3d_dataset_size(ds, &n);
    csal3d_volume_load_options o;
    csal3d_volume_load_options_init(&o);
    o.modality = CSAL3D_MODALITY_MRI;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
      double t = now();
      for (size_t i = 0; i < n; i++) {
        csal3d_volume *v;
        if (csal3d_dataset_load_image(ds, i, &o, &v) != CSAL3D_OK) {
          fprintf(stderr, "bench: %s\n", csal3d_last_error());
          return 1;
        }
        csal3d_volume_free(v);
      }
      t = now() - t;
      if (t < best) best = t;
    }
    row("hippocampus load+normalise (libcsal3d)", (int)n, best, "volumes/s", (double)n / best);
    csal3d_dataset_free(ds);
    char cmd[2300];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import nibabel' 2>/dev/null && "
             "/usr/bin/python3 tests/bench_volume_nibabel.py '%s'", dir);
    FILE *p = popen(cmd, "r");
    int pn = 0;
    double pt = 0;
    if (p && fscanf(p, "%d %lf", &pn, &pt) == 2 && pn > 0) {
      row("hippocampus load+normalise (nibabel+numpy)", pn, pt, "volumes/s", pn / pt);
      printf("%-44s ratio libcsal3d / nibabel speed: %.1fx\n", "", pt / best);
    } else {
      printf("%-44s (nibabel not installed: apt-get install python3-nibabel)\n",
             "hippocampus nibabel+numpy");
    }
    if (p) pclose(p);
  } else {
    printf("%-44s SKIP: %s not found (set CSAL3D_DATA_DIR)\n", "hippocampus", json);
  }
  /* 2. Phantom. */
  {
    char tmp[] = "/tmp/csal3d_bench_XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    csal3d_phantom_options o;
    csal3d_phantom_options_init(&o);
    o.cases = 8;
    double t = now();
    if (csal3d_phantom_generate(tmp, &o, NULL) != CSAL3D_OK) {
      fprintf(stderr, "bench: %s\n", csal3d_last_error());
      return 1;
    }
    t = now() - t;
    row("phantom generate (80^2 x 64, gzip 1)", 8, t, "cases/s", 8 / t);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) return 1;
  }
  /* 3. SSL observations of a 128^3 crop. */
  {
    const int64_t shape[3] = {128, 128, 128};
    const size_t vox = 128 * 128 * 128;
    float *x = malloc(vox * 4), *obs = malloc(vox * 4), *tgt = malloc(vox * 4),
          *back = malloc(vox * 4);
    for (size_t i = 0; i < vox; i++) x[i] = (float)(i % 977);
    c3_ssl_draws d;
    const int reps = 10;
    double t = now();
    for (int r = 0; r < reps; r++) {
      c3_ssl_draws_random(&d, shape, 16, 0.3, 1, (uint64_t)r, 0);
      for (int o = 0; o < 9; o++) {
        c3_ssl_observation_f32(&d, o, x, 1, obs, tgt);
        int64_t os[3];
        c3_ssl_observation_shape(&d, o, os);
        c3_axes_apply_f32(c3_axes_inverse(c3_axes_observation(d.view[o], d.k[o])), tgt, 1, os,
                          back);
      }
      c3_ssl_draws_free(&d);
    }
    t = now() - t;
    double gb = reps * 9.0 * 4 * vox * 4 / 1e9; /* read + write, forward and back */
    row("9 observations + inverses, 128^3", reps, t, "GB/s", gb / t);
    free(x), free(obs), free(tgt), free(back);
  }
  /* 4. Window accumulation. */
  {
    const int64_t shape[3] = {256, 256, 160}, win[3] = {128, 128, 128}, st[3] = {64, 64, 64};
    c3_window_grid g;
    c3_window_accum a;
    c3_window_grid_init(&g, shape, win, st);
    c3_window_accum_init(&a, &g);
    float *map = malloc(128 * 128 * 128 * 4), *out = malloc(256 * 256 * 160 * 4);
    for (size_t i = 0; i < 128 * 128 * 128; i++) map[i] = 1.0f;
    double t = now();
    for (int64_t i = 0; i < g.total; i++) {
      int64_t o[3];
      c3_window_origin(&g, i, o);
      c3_window_accum_add(&a, o, map);
    }
    c3_window_accum_mean(&a, out);
    t = now() - t;
    row("window accumulate 256x256x160 (27 windows)", (int)g.total, t, "Mvoxel/s",
        (double)g.total * 128 * 128 * 128 / t / 1e6);
    free(map), free(out);
    c3_window_accum_free(&a);
    c3_window_grid_free(&g);
  }
  return 0;
}
