/* Parity of the uncertainty estimator with the reference (float64): replays
 * uncertainty_tiny.safetensors from CSAL3D_REFERENCE_DIR (default ../shared/reference):
 * its preprocessed volume, its window origins (which the library's grid must
 * reproduce), the rotations and masks of every window (explicit draws), the
 * parameters; compares the uncertainty map (||U - ref|| / ||ref|| <= 1e-4) and the
 * score (relative 1e-4). SKIP (exit 77) without the file. CSAL3D_PARITY_DEVICE=cuda runs on
 * the CUDA engine (SKIP where it is unavailable). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "test_omp_env.h"
#include "test_parity.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "uncertainty/uncertainty.h"
#include "volume/views.h"

#define TOL 1e-4

typedef struct replay {
  int64_t nwin;
  int64_t *origins; /* [nwin, 3] */
  int64_t *rots;    /* [nwin, 9] */
  int64_t *masks;   /* [nwin, 9, cubes] */
  int64_t cubes;
  int calls;
} replay;

static csal3d_status replay_draws(void *user, int64_t index, const int64_t origin[3],
                                  const int64_t window[3], c3_ssl_draws *d) {
  replay *r = user;
  r->calls++;
  if (index >= r->nwin)
    return c3_error(CSAL3D_ERR_INTERNAL, "window %lld: the reference has %lld windows",
                    (long long)index, (long long)r->nwin);
  for (int a = 0; a < 3; a++)
    if (origin[a] != r->origins[index * 3 + a])
      return c3_error(CSAL3D_ERR_INTERNAL,
                      "window %lld starts at (%lld, %lld, %lld), the reference's at "
                      "(%lld, %lld, %lld)",
                      (long long)index, (long long)origin[0], (long long)origin[1],
                      (long long)origin[2], (long long)r->origins[index * 3],
                      (long long)r->origins[index * 3 + 1], (long long)r->origins[index * 3 + 2]);
  C3_TRY(c3_ssl_draws_init(d, window, C3_MASK_CUBE));
  for (int o = 0; o < 9; o++) d->k[o] = (int)r->rots[index * 9 + o];
  C3_TRY(c3_ssl_draws_reframe(d));
  for (int o = 0; o < 9; o++) {
    if (d->cubes_total[o] != r->cubes)
      return c3_error(CSAL3D_ERR_INTERNAL, "observation %d: %lld cubes, reference %lld", o,
                      (long long)d->cubes_total[o], (long long)r->cubes);
    for (int64_t i = 0; i < r->cubes; i++)
      d->masks[o][i] = (uint8_t)(r->masks[(index * 9 + o) * r->cubes + i] != 0);
  }
  return CSAL3D_OK;
}

static int64_t meta_int(const c3_safetensors *st, const char *k, int64_t dflt) {
  const char *v = c3_st_metadata(st, k);
  return v ? strtoll(v, NULL, 10) : dflt;
}

int main(int argc, char **argv) {
  (void)argc;
  c3_test_passive_openmp(argv);
  setvbuf(stdout, NULL, _IOLBF, 0);
  char path[4096];
  int rc = c3_test_reference_file("uncertainty_tiny.safetensors", path, sizeof path);
  if (rc) return rc;
  c3_safetensors *st;
  c3_engine *e;
  c3_model_config cfg;
  c3_model *m;
  if ((rc = c3_test_parity_engine(&e))) return rc;
  if (c3_st_open(path, &st) != CSAL3D_OK ||
      c3_model_config_from_metadata(st, &cfg) != CSAL3D_OK ||
      c3_model_create(e, &cfg, &m) != CSAL3D_OK || c3_model_load(m, st, "param.") != CSAL3D_OK) {
    printf("FAIL: %s\n", csal3d_last_error());
    return 1;
  }
  const c3_st_entry *ve = c3_st_find(st, "volume");
  const c3_st_entry *oe = c3_st_find(st, "window_origins");
  const c3_st_entry *me = c3_st_find(st, "masks");
  if (!ve || ve->ndim != 4 || !oe || !me) {
    printf("FAIL: volume [C, D, H, W], window_origins and masks expected\n");
    return 1;
  }
  int64_t ch = ve->shape[0], shape[3] = {ve->shape[1], ve->shape[2], ve->shape[3]};
  int64_t vox = shape[0] * shape[1] * shape[2];
  float *vol = malloc((size_t)ve->numel * sizeof(float));
  c3_st_read_f32(st, "volume", vol, (size_t)ve->numel);
  replay r = {0};
  r.nwin = oe->shape[0];
  r.origins = malloc((size_t)oe->numel * sizeof(int64_t));
  r.rots = malloc((size_t)r.nwin * 9 * sizeof(int64_t));
  r.masks = malloc((size_t)me->numel * sizeof(int64_t));
  r.cubes = me->numel / (r.nwin * 9);
  c3_st_read_i64(st, "window_origins", r.origins, (size_t)oe->numel);
  c3_st_read_i64(st, "rotations", r.rots, (size_t)r.nwin * 9);
  c3_st_read_i64(st, "masks", r.masks, (size_t)me->numel);

  c3_unc_config c;
  memset(&c, 0, sizeof c);
  int64_t win = meta_int(st, "window", 64), stride = meta_int(st, "stride", 32);
  for (int a = 0; a < 3; a++) {
    c.window[a] = win;
    c.stride[a] = stride;
  }
  c.hide_fraction = 0.3;
  c.feature = CSAL3D_FEATURE_REDUCED;
  c.uncertainty = 1;
  printf("%s: embed_dim %d, volume %lld x %lld x %lld x %lld, window %lld, stride %lld, "
         "%lld windows\n",
         path, cfg.embed_dim, (long long)ch, (long long)shape[0], (long long)shape[1],
         (long long)shape[2], (long long)win, (long long)stride, (long long)r.nwin);
  float *map = malloc((size_t)vox * sizeof(float));
  float feat[4096];
  c3_unc_result res;
  int failures = 0;
  if (c3_uncertainty_run(m, NULL, &c, vol, ch, shape, 0, NULL, replay_draws, &r, map, feat,
                         &res) != CSAL3D_OK) {
    printf("FAIL: %s\n", csal3d_last_error());
    return 1;
  }
  if (res.windows != r.nwin || r.calls != r.nwin) {
    printf("  FAIL the library swept %lld windows (%d draws), the reference %lld\n",
           (long long)res.windows, r.calls, (long long)r.nwin);
    failures++;
  }
  float *ref = malloc((size_t)vox * sizeof(float));
  c3_st_read_f32(st, "uncertainty_map", ref, (size_t)vox);
  double num = 0, den = 0, mx = 0;
  for (int64_t i = 0; i < vox; i++) {
    double d = (double)map[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
    if (fabs(d) > mx) mx = fabs(d);
    if (!isfinite(map[i])) num = INFINITY;
  }
  double merr = sqrt(num / den);
  int ok = merr <= TOL;
  printf("  %-4s uncertainty_map relative error %.3e (max abs difference %.3e)\n",
         ok ? "ok" : "FAIL", merr, mx);
  failures += !ok;
  float sref;
  c3_st_read_f32(st, "score", &sref, 1);
  double serr = fabs(res.score - sref) / fabs(sref);
  ok = isfinite(res.score) && serr <= TOL;
  printf("  %-4s score %.9g (reference %.9g) relative error %.3e\n", ok ? "ok" : "FAIL",
         res.score, (double)sref, serr);
  failures += !ok;
  printf("  feature: %lld values (not in the reference; from the same sweep)\n",
         (long long)res.feature_dim);
  free(ref);
  free(map);
  free(vol);
  free(r.origins);
  free(r.rots);
  free(r.masks);
  c3_model_free(m);
  c3_engine_close(e);
  c3_st_free(st);
  printf("%s: uncertainty parity, %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
