/* Parity of the SSL loss with the reference (MONAI + the CSAL-3D heads, float64):
 * replays ssl_loss_tiny.safetensors from CSAL3D_REFERENCE_DIR (default
 * ../shared/reference): its crop, its 9 views, rotations and masks (explicit draws),
 * the parameters; compares loss_inp, loss_rot, loss_cons and loss (relative error
 * <= 1e-4) and grad.NAME of every parameter (||g - ref|| / ||ref|| <= 1e-3; where the
 * reference is exactly zero, max |g| <= 1e-6). SKIP (exit 77) without the file.
 * CSAL3D_PARITY_VERBOSE=1 prints every tensor's error; CSAL3D_PARITY_DEVICE=cuda runs on
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
#include "model/ssl.h"
#include "volume/views.h"

#define LOSS_TOL 1e-4
#define GRAD_TOL 1e-3
#define ZERO_TOL 1e-6

static int failures, verbose;
static double worst_grad;
static char worst_name[128];

static void check_scalar(const char *name, double got, double ref) {
  double err = fabs(got - ref) / (fabs(ref) > 0 ? fabs(ref) : 1.0);
  int ok = isfinite(got) && err <= LOSS_TOL;
  printf("  %-4s %-10s %.8f (reference %.8f) relative error %.3e\n", ok ? "ok" : "FAIL", name,
         got, ref, err);
  if (!ok) failures++;
}

static void check_grad(const c3_safetensors *st, const char *name, const float *g, size_t n) {
  const c3_st_entry *e = c3_st_find(st, name);
  if (!e) {
    printf("  FAIL %s: no reference\n", name);
    failures++;
    return;
  }
  if ((size_t)e->numel != n) {
    printf("  FAIL %s: %zu values, reference %llu\n", name, n, (unsigned long long)e->numel);
    failures++;
    return;
  }
  float *ref = malloc(n * sizeof(float) + 1);
  c3_st_entry_read_f32(st, e, ref, n);
  double num = 0, den = 0, mx = 0;
  int finite = 1;
  for (size_t i = 0; i < n; i++) {
    double d = (double)g[i] - ref[i];
    num += d * d;
    den += (double)ref[i] * ref[i];
    if (fabs(g[i]) > mx) mx = fabs(g[i]);
    if (!isfinite(g[i])) finite = 0;
  }
  free(ref);
  double err = den > 0 ? sqrt(num / den) : mx;
  int ok = finite && (den > 0 ? err <= GRAD_TOL : mx <= ZERO_TOL);
  if (den > 0 && err > worst_grad) {
    worst_grad = err;
    snprintf(worst_name, sizeof worst_name, "%s", name);
  }
  if (!ok || verbose)
    printf("  %-4s %-64s %s %.3e\n", ok ? "ok" : "FAIL", name,
           den > 0 ? "relative error" : "max|g| (zero reference)", err);
  if (!ok) failures++;
}

int main(int argc, char **argv) {
  (void)argc;
  c3_test_passive_openmp(argv);
  setvbuf(stdout, NULL, _IOLBF, 0);
  verbose = getenv("CSAL3D_PARITY_VERBOSE") != NULL;
  char path[4096];
  int rc = c3_test_reference_file("ssl_loss_tiny.safetensors", path, sizeof path);
  if (rc) return rc;
  c3_safetensors *st;
  c3_engine *e;
  if ((rc = c3_test_parity_engine(&e))) return rc;
  if (c3_st_open(path, &st) != CSAL3D_OK) {
    printf("FAIL: %s\n", csal3d_last_error());
    return 1;
  }
  c3_model_config cfg;
  c3_model *m;
  if (c3_model_config_from_metadata(st, &cfg) != CSAL3D_OK ||
      c3_model_create(e, &cfg, &m) != CSAL3D_OK || c3_model_load(m, st, "param.") != CSAL3D_OK) {
    printf("FAIL: %s\n", csal3d_last_error());
    return 1;
  }
  const c3_st_entry *in = c3_st_find(st, "input");
  if (!in || in->ndim != 5 || in->shape[0] != 1 || in->shape[1] != cfg.in_channels) {
    printf("FAIL: input must be [1, %d, D, H, W]\n", cfg.in_channels);
    return 1;
  }
  int64_t shape[3] = {in->shape[2], in->shape[3], in->shape[4]};
  size_t nin = (size_t)in->numel;
  float *crop = malloc(nin * sizeof(float));
  int64_t views[9], rots[9];
  c3_st_read_f32(st, "input", crop, nin);
  c3_st_read_i64(st, "views", views, 9);
  c3_st_read_i64(st, "rotations", rots, 9);
  printf("%s: embed_dim %d, crop %lld x %lld x %lld\n", path, cfg.embed_dim,
         (long long)shape[0], (long long)shape[1], (long long)shape[2]);

  /* The explicit draws: views must be o / 3 (the order the library uses). */
  c3_ssl_draws d;
  if (c3_ssl_draws_init(&d, shape, C3_MASK_CUBE) != CSAL3D_OK) {
    printf("FAIL: %s\n", csal3d_last_error());
    return 1;
  }
  for (int o = 0; o < 9; o++) {
    if (views[o] != o / 3) {
      printf("FAIL: observation %d has view %lld; the library's order is view = o / 3\n", o,
             (long long)views[o]);
      return 1;
    }
    d.k[o] = (int)rots[o];
  }
  c3_ssl_draws_reframe(&d);
  const c3_st_entry *me = c3_st_find(st, "masks");
  int64_t *masks = malloc((size_t)me->numel * sizeof(int64_t));
  c3_st_read_i64(st, "masks", masks, (size_t)me->numel);
  int64_t per = me->numel / 9;
  for (int o = 0; o < 9; o++) {
    if (d.cubes_total[o] != per) {
      printf("FAIL: observation %d has %lld cubes, the file %lld\n", o,
             (long long)d.cubes_total[o], (long long)per);
      return 1;
    }
    for (int64_t i = 0; i < per; i++) d.masks[o][i] = (uint8_t)(masks[o * per + i] != 0);
  }

  c3_ssl_loss_config lc;
  c3_ssl_loss_config_default(&lc);
  c3_ssl_work w;
  c3_ssl_work_init(&w, m);
  c3_ssl_terms t;
  if (c3_model_zero_grad(m) != CSAL3D_OK ||
      c3_ssl_crop_loss(&w, &lc, crop, &d, 1.0, 1, &t) != CSAL3D_OK) {
    printf("FAIL: SSL loss: %s\n", csal3d_last_error());
    return 1;
  }
  float ref;
  c3_st_read_f32(st, "loss_inp", &ref, 1);
  check_scalar("loss_inp", t.inp, ref);
  c3_st_read_f32(st, "loss_rot", &ref, 1);
  check_scalar("loss_rot", t.rot, ref);
  c3_st_read_f32(st, "loss_cons", &ref, 1);
  check_scalar("loss_cons", t.cons, ref);
  c3_st_read_f32(st, "loss", &ref, 1);
  check_scalar("loss", t.total, ref);

  float *g = malloc(m->total * sizeof(float));
  c3_model_get_grads(m, g);
  char name[C3_PARAM_NAME_MAX + 8];
  for (size_t k = 0; k < m->nparams; k++) {
    snprintf(name, sizeof name, "grad.%s", m->params[k].name);
    check_grad(st, name, g + m->params[k].offset, m->params[k].numel);
  }
  printf("  %zu gradients compared: worst relative error %.3e (%s)\n", m->nparams, worst_grad,
         worst_name);

  /* The forward-only pass gives the same terms. */
  c3_ssl_terms t2;
  if (c3_ssl_crop_loss(&w, &lc, crop, &d, 1.0, 0, &t2) != CSAL3D_OK) {
    printf("FAIL: forward-only loss: %s\n", csal3d_last_error());
    failures++;
  } else if (t2.inp != t.inp || t2.rot != t.rot || t2.cons != t.cons) {
    printf("  FAIL forward-only pass gives other terms (%.9g %.9g %.9g)\n", t2.inp, t2.rot,
           t2.cons);
    failures++;
  }
  c3_ssl_work_free(&w);
  c3_ssl_draws_free(&d);
  free(g);
  free(masks);
  free(crop);
  c3_model_free(m);
  c3_engine_close(e);
  c3_st_free(st);
  printf("%s: SSL loss parity, %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
