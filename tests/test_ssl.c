/* The SSL pretraining without reference files: central finite differences of the
 * whole SSL loss (every term and option, non-cubic crops whose 9 observations have
 * different shapes), the loss's invariants, determinism (same seed, same losses and
 * parameters), cancellation, exact resume from a checkpoint, options and misuse.
 * Small shapes (embed_dim 12, crops of 32 x 32 x 64) keep it short. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "test_omp_env.h"
#include "core/error.h"
#include "core/rng.h"
#include "csal3d/csal3d.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/ssl.h"
#include "model/ssl_internal.h"

/* ---- finite differences of the SSL loss ---- */

typedef struct fd_fix {
  c3_engine *e;
  c3_model *m;
  c3_ssl_work w;
  c3_ssl_draws d;
  int64_t shape[3];
  float *crop;
} fd_fix;

static void fd_setup(fd_fix *f, const int64_t shape[3], int channels) {
  memset(f, 0, sizeof *f);
  ck_assert_int_eq(c3_engine_open(CSAL3D_DEVICE_CPU, 0, &f->e), CSAL3D_OK);
  c3_model_config cfg;
  c3_model_config_default(&cfg, 12, channels);
  ck_assert_int_eq(c3_model_create(f->e, &cfg, &f->m), CSAL3D_OK);
  ck_assert_int_eq(c3_model_init(f->m, 3), CSAL3D_OK);
  c3_ssl_work_init(&f->w, f->m);
  memcpy(f->shape, shape, sizeof f->shape);
  size_t n = (size_t)(channels * shape[0] * shape[1] * shape[2]);
  f->crop = malloc(n * sizeof(float));
  c3_rng r;
  c3_rng_init(&r, 9, C3_RNG_TEST, 4, 0, 0);
  /* a smooth blob plus noise: inpainting targets with structure */
  for (int c = 0; c < channels; c++)
    for (int64_t i = 0; i < shape[0]; i++)
      for (int64_t j = 0; j < shape[1]; j++)
        for (int64_t k = 0; k < shape[2]; k++) {
          double x = (double)i / (double)shape[0] - 0.5, y = (double)j / (double)shape[1] - 0.3,
                 z = (double)k / (double)shape[2] - 0.6;
          f->crop[((c * shape[0] + i) * shape[1] + j) * shape[2] + k] =
              (float)(exp(-8 * (x * x + y * y + z * z)) + 0.2 * c3_rng_uniform(&r));
        }
  ck_assert_int_eq(c3_ssl_draws_random(&f->d, shape, C3_MASK_CUBE, 0.3, 21, 0, 0), CSAL3D_OK);
}

static void fd_teardown(fd_fix *f) {
  c3_ssl_draws_free(&f->d);
  c3_ssl_work_free(&f->w);
  c3_model_free(f->m);
  c3_engine_close(f->e);
  free(f->crop);
}

/* Whether a parameter is in the direction. whole = 0: the decoder after its first
 * level and the rotation head. At these crop sizes the deepest map has 1 to 2 voxels
 * along an axis, so the decoder's first instance norm normalises 2 values to about
 * +-1 through a very steep function of the encoder's output: a step of 1e-3 along the
 * encoder's parameters changes L_inp and L_cons far from linearly. The encoder's
 * gradients are therefore checked here through L_rot (whole = 1) and against the
 * float64 reference at 64^3 in test_ssl_parity. */
static int in_direction(const c3_param *p, int whole) {
  if (whole) return 1;
  return strncmp(p->name, "rotation_head.", 14) == 0 ||
         (strncmp(p->name, "conv.", 5) == 0 && strncmp(p->name, "conv.0.", 7) != 0);
}

/* Central differences of L along a random direction of the parameters (scaled per
 * tensor to its magnitude) against the backward's directional derivative. */
static void fd_check(fd_fix *f, const c3_ssl_loss_config *lc, const char *what, int whole) {
  c3_model *m = f->m;
  c3_ssl_terms t;
  ck_assert_int_eq(c3_model_zero_grad(m), CSAL3D_OK);
  ck_assert_msg(c3_ssl_crop_loss(&f->w, lc, f->crop, &f->d, 1.0, 1, &t) == CSAL3D_OK, "%s",
                csal3d_last_error());
  float *g = malloc(m->total * 4), *w0 = malloc(m->total * 4), *w = malloc(m->total * 4);
  float *v = calloc(m->total, 4);
  ck_assert_int_eq(c3_model_get_grads(m, g), CSAL3D_OK);
  ck_assert_int_eq(c3_model_get_params(m, w0), CSAL3D_OK);
  /* The direction: the gradient itself over the chosen parameters, scaled per tensor
   * by its parameters' magnitude (a random direction's derivative is a sum of large
   * terms of both signs, whose cancellation leaves the float32 differences no
   * accuracy to compare with). */
  double gv = 0;
  for (size_t i = 0; i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    if (!in_direction(p, whole)) continue;
    double s2 = 0, g2 = 0;
    for (size_t k = 0; k < p->numel; k++) {
      s2 += (double)w0[p->offset + k] * w0[p->offset + k];
      g2 += (double)g[p->offset + k] * g[p->offset + k];
    }
    double sc = sqrt(s2 / (double)p->numel);
    if (sc < 0.02) sc = 0.02;
    double gs = g2 > 0 ? sc / sqrt(g2 / (double)p->numel) : 0;
    for (size_t k = 0; k < p->numel; k++) {
      v[p->offset + k] = (float)(gs * g[p->offset + k]);
      gv += (double)v[p->offset + k] * g[p->offset + k];
    }
  }
  const double eps = 1e-4, steps[2] = {1, -1};
  double lv[2];
  for (int q = 0; q < 2; q++) {
    for (size_t i = 0; i < m->total; i++) w[i] = (float)(w0[i] + steps[q] * eps * v[i]);
    ck_assert_int_eq(c3_model_set_params(m, w), CSAL3D_OK);
    c3_ssl_terms tt;
    ck_assert_int_eq(c3_ssl_crop_loss(&f->w, lc, f->crop, &f->d, 1.0, 0, &tt), CSAL3D_OK);
    lv[q] = tt.total;
  }
  ck_assert_int_eq(c3_model_set_params(m, w0), CSAL3D_OK);
  double fd = (lv[0] - lv[1]) / (2 * eps);
  printf("finite differences, %s: L = %.6f (inp %.5f rot %.5f cons %.5f): fd %.6e, backward "
         "%.6e, relative difference %.2e\n",
         what, t.total, t.inp, t.rot, t.cons, fd, gv, fabs(fd - gv) / fabs(gv));
  ck_assert_msg(fabs(fd - gv) <= 5e-3 * fabs(gv) + 1e-6, "%s: fd %.8g vs backward %.8g", what,
                fd, gv);
  free(g);
  free(w0);
  free(w);
  free(v);
}

/* L_cons is a mean of absolute differences between reconstructions that are close to
 * each other, so a finite step crosses the kinks of |.| at many voxels: central
 * differences of it are unreliable (an error proportional to the step). Its gradient
 * with respect to the reconstructions is checked exactly in
 * loss_gradients_match_their_definitions; the differences here cover the smooth terms
 * through the whole backward pass, observation by observation, with non-cubic crops. */
START_TEST(finite_differences_every_term_and_option) {
  fd_fix f;
  int64_t shape[3] = {32, 32, 64}; /* non-cubic: observations of 3 different shapes */
  fd_setup(&f, shape, 1);
  c3_ssl_loss_config lc;
  c3_ssl_loss_config_default(&lc);
  fd_check(&f, &lc, "L, decoder and rotation head", 0);
  c3_ssl_loss_config rot = lc;
  rot.w_inp = rot.w_cons = 0;
  fd_check(&f, &rot, "L_rot, every parameter", 1);
  fd_teardown(&f);
}
END_TEST

START_TEST(finite_differences_two_channels_and_options) {
  fd_fix f;
  int64_t shape[3] = {64, 32, 32};
  fd_setup(&f, shape, 2);
  c3_ssl_loss_config lc;
  c3_ssl_loss_config_default(&lc);
  lc.masked_only = 1;
  lc.zscore_target = 1;
  lc.w_inp = 2.0;
  lc.w_rot = 0.5;
  lc.w_cons = 3.0;
  fd_check(&f, &lc,
           "two channels, 64 x 32 x 32, masked-only z-scored L_inp x 2 + L_rot x 0.5 + "
           "L_cons x 3, decoder and rotation head",
           0);
  fd_teardown(&f);
}
END_TEST

/* The terms against their definitions computed here on the host from the model's
 * own reconstructions: catches a wrong average, pair set or alignment. */
START_TEST(terms_match_their_definitions) {
  fd_fix f;
  int64_t shape[3] = {32, 64, 32};
  fd_setup(&f, shape, 1);
  c3_model *m = f.m;
  c3_engine *e = f.e;
  c3_ssl_loss_config lc;
  c3_ssl_loss_config_default(&lc);
  lc.w_inp = 0.5, lc.w_rot = 2, lc.w_cons = 3;
  c3_ssl_terms t;
  ck_assert_int_eq(c3_ssl_crop_loss(&f.w, &lc, f.crop, &f.d, 1.0, 0, &t), CSAL3D_OK);
  size_t vox = (size_t)(shape[0] * shape[1] * shape[2]);
  float *obs = malloc(vox * 4), *tgt = malloc(vox * 4), *rec = malloc(vox * 4);
  float *al[9];
  float *dx;
  ck_assert_int_eq(e->alloc(e, vox * 4, "x", (void **)&dx), CSAL3D_OK);
  double inp = 0, rot = 0;
  for (int o = 0; o < 9; o++) {
    int64_t os[3];
    c3_ssl_observation_shape(&f.d, o, os);
    c3_ssl_observation_f32(&f.d, o, f.crop, 1, obs, tgt);
    ck_assert_int_eq(e->upload(e, dx, obs, vox * 4), CSAL3D_OK);
    ck_assert_int_eq(c3_model_forward(m, dx, 1, os, 0), CSAL3D_OK);
    ck_assert_int_eq(e->download(e, rec, c3_model_reconstruction(m), vox * 4), CSAL3D_OK);
    float lg[4];
    ck_assert_int_eq(e->download(e, lg, c3_model_logits(m), 16), CSAL3D_OK);
    double se = 0;
    for (size_t i = 0; i < vox; i++) se += ((double)rec[i] - tgt[i]) * ((double)rec[i] - tgt[i]);
    inp += se / (double)vox / 9;
    double mx = lg[0];
    for (int k = 1; k < 4; k++) mx = lg[k] > mx ? lg[k] : mx;
    double z = 0;
    for (int k = 0; k < 4; k++) z += exp(lg[k] - mx);
    rot += (log(z) + mx - lg[f.d.k[o]]) / 9;
    al[o] = malloc(vox * 4);
    c3_axes_apply_f32(c3_axes_inverse(c3_axes_observation(f.d.view[o], f.d.k[o])), rec, 1,
                      os, al[o]);
  }
  double cons = 0;
  for (int v = 0; v < 3; v++)
    for (int r = 0; r < 3; r++)
      for (int r2 = 0; r2 < 3; r2++) {
        if (r == r2) continue;
        double s = 0;
        for (size_t i = 0; i < vox; i++) s += fabs((double)al[3 * v + r][i] - al[3 * v + r2][i]);
        cons += s / (double)vox / 18;
      }
  /* The loss's derivatives with respect to the reconstructions and logits. */
  ck_assert_int_eq(c3_ssl_crop_loss(&f.w, &lc, f.crop, &f.d, 0.25, 2, &t), CSAL3D_OK);
  float *drec = malloc(vox * 4), *dal = malloc(vox * 4), *back = malloc(vox * 4);
  float dlog[36];
  ck_assert_int_eq(e->download(e, dlog, f.w.dlogits, sizeof dlog), CSAL3D_OK);
  double worst = 0;
  for (int o = 0; o < 9; o++) {
    int64_t os[3];
    c3_ssl_observation_shape(&f.d, o, os);
    c3_ssl_observation_f32(&f.d, o, f.crop, 1, obs, tgt);
    ck_assert_int_eq(e->download(e, drec, f.w.drec + (size_t)o * f.w.cap, vox * 4), CSAL3D_OK);
    /* the observation's reconstruction, in its frame, from the aligned copy */
    int v = o / 3;
    for (size_t i = 0; i < vox; i++) {
      double s = 0;
      for (int b = 3 * v; b < 3 * v + 3; b++) {
        if (b == o) continue;
        double dlt = (double)al[o][i] - al[b][i];
        s += dlt > 0 ? 1 : dlt < 0 ? -1 : 0;
      }
      dal[i] = (float)(0.25 * 3 * (2.0 / 18) * s / (double)vox);
    }
    c3_axes_apply_f32(c3_axes_observation(f.d.view[o], f.d.k[o]), dal, 1, shape, back);
    float *y = malloc(vox * 4);
    c3_axes_apply_f32(c3_axes_observation(f.d.view[o], f.d.k[o]), al[o], 1, shape, y);
    double num = 0, den = 0;
    for (size_t i = 0; i < vox; i++) {
      double want = 0.25 * 0.5 / 9 * 2 * ((double)y[i] - tgt[i]) / (double)vox + back[i];
      num += (drec[i] - want) * (drec[i] - want);
      den += want * want;
    }
    free(y);
    double err = sqrt(num / den);
    if (err > worst) worst = err;
    float lg[4];
    ck_assert_int_eq(e->upload(e, dx, obs, vox * 4), CSAL3D_OK);
    ck_assert_int_eq(c3_model_forward(m, dx, 1, os, 0), CSAL3D_OK);
    ck_assert_int_eq(e->download(e, lg, c3_model_logits(m), 16), CSAL3D_OK);
    double mx = lg[0], z = 0;
    for (int k = 1; k < 4; k++) mx = lg[k] > mx ? lg[k] : mx;
    for (int k = 0; k < 4; k++) z += exp(lg[k] - mx);
    for (int k = 0; k < 4; k++) {
      double want = 0.25 * 2 / 9 * (exp(lg[k] - mx) / z - (k == f.d.k[o]));
      ck_assert_double_eq_tol(dlog[o * 4 + k], want, 1e-6);
    }
  }
  printf("d loss / d reconstructions: worst relative error %.2e over the 9 observations\n",
         worst);
  ck_assert(worst < 1e-5);
  free(drec);
  free(dal);
  free(back);
  printf("terms: inp %.7f (host %.7f) rot %.7f (%.7f) cons %.7f (%.7f)\n", t.inp, inp, t.rot,
         rot, t.cons, cons);
  ck_assert_double_eq_tol(t.inp, inp, 1e-5 * inp);
  ck_assert_double_eq_tol(t.rot, rot, 1e-5 * rot);
  ck_assert_double_eq_tol(t.cons, cons, 1e-5 * cons);
  ck_assert_double_eq_tol(t.total, 0.5 * inp + 2 * rot + 3 * cons, 1e-5 * t.total);
  ck_assert(cons > 0);
  for (int o = 0; o < 9; o++) free(al[o]);
  e->free(e, dx);
  free(obs);
  free(tgt);
  free(rec);
  fd_teardown(&f);
}
END_TEST

/* ---- the public API ---- */

static csal3d_context *make_ctx(uint64_t seed) {
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.seed = seed;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  return ctx;
}

static void small_options(csal3d_ssl_options *o) {
  csal3d_ssl_options_init(o);
  o->embed_dim = 12;
  o->crop_size[0] = 32, o->crop_size[1] = 32, o->crop_size[2] = 32;
  o->batch_size = 1;
  o->iterations = 4;
  o->warmup_steps = 1;
  o->lr = 1e-3;
}

static float *make_crops(int64_t n, int64_t side, uint64_t seed) {
  size_t tot = (size_t)(n * side * side * side);
  float *x = malloc(tot * 4);
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_TEST, 7, 0, 0);
  for (size_t i = 0; i < tot; i++) x[i] = (float)c3_rng_uniform(&r);
  return x;
}

static float *params_of(csal3d_ssl_model *h) {
  float *p = malloc(h->m->total * 4);
  ck_assert_int_eq(c3_model_get_params(h->m, p), CSAL3D_OK);
  return p;
}

START_TEST(same_seed_same_losses_and_parameters) {
  csal3d_context *c1 = make_ctx(5), *c2 = make_ctx(5), *c3 = make_ctx(6);
  csal3d_ssl_options o;
  small_options(&o);
  csal3d_ssl_model *a, *b, *c;
  ck_assert_int_eq(csal3d_ssl_model_create(c1, &o, &a), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_create(c2, &o, &b), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_create(c3, &o, &c), CSAL3D_OK);
  int64_t dhw[3] = {32, 32, 32};
  float *x = make_crops(1, 32, 1);
  csal3d_ssl_losses la, lb, lc;
  la.struct_size = lb.struct_size = lc.struct_size = sizeof la;
  for (int s = 0; s < 2; s++) {
    int64_t nb = 1;
    ck_assert_int_eq(csal3d_ssl_model_train_step(a, x, nb, dhw, &la), CSAL3D_OK);
    ck_assert_int_eq(csal3d_ssl_model_train_step(b, x, nb, dhw, &lb), CSAL3D_OK);
    if (s == 0) ck_assert_int_eq(csal3d_ssl_model_train_step(c, x, nb, dhw, &lc), CSAL3D_OK);
    printf("step %lld: loss %.6f / %.6f (other seed %.6f), lr %.3g, grad norm %.4g\n",
           (long long)la.step, la.loss, lb.loss, lc.loss, la.lr, la.grad_norm);
    ck_assert_int_eq(la.step, s);
    ck_assert(la.loss == lb.loss && la.inpainting == lb.inpainting &&
              la.rotation == lb.rotation && la.consistency == lb.consistency);
    if (s == 0) ck_assert(la.loss != lc.loss);
    ck_assert(isfinite(la.loss) && la.loss > 0 && la.grad_norm > 0);
    ck_assert_double_eq_tol(la.loss, la.inpainting + la.rotation + la.consistency, 1e-9);
  }
  ck_assert_double_eq_tol(la.lr, 1e-3 * 0.5 * (1 + cos(M_PI * 0 / 3.0)), 1e-12);
  float *pa = params_of(a), *pb = params_of(b);
  ck_assert_int_eq(memcmp(pa, pb, a->m->total * 4), 0);
  int64_t step;
  csal3d_ssl_model_step(a, &step);
  ck_assert_int_eq(step, 2);
  csal3d_ssl_losses last = {.struct_size = sizeof last};
  ck_assert_int_eq(csal3d_ssl_model_last_losses(a, &last), CSAL3D_OK);
  ck_assert(last.loss == la.loss);
  free(pa);
  free(pb);
  free(x);
  csal3d_ssl_model_free(a);
  csal3d_ssl_model_free(b);
  csal3d_ssl_model_free(c);
  csal3d_context_free(c1);
  csal3d_context_free(c2);
  csal3d_context_free(c3);
}
END_TEST

/* A small dataset of NIfTI volumes (some smaller than the crop) listed in a text file. */
static void make_dataset(char *dir, char *list, size_t cap) {
  strcpy(dir, "/tmp/csal3d_ssl_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(list, cap, "%s/cases.txt", dir);
  FILE *f = fopen(list, "w");
  ck_assert_ptr_nonnull(f);
  const int64_t dims[3][3] = {{40, 36, 30}, {20, 50, 34}, {33, 33, 33}};
  for (int i = 0; i < 3; i++) {
    size_t n = (size_t)(dims[i][0] * dims[i][1] * dims[i][2]);
    float *d = make_crops(1, 1, 0);
    free(d);
    d = malloc(n * 4);
    c3_rng r;
    c3_rng_init(&r, 100 + (uint64_t)i, C3_RNG_TEST, 0, 0, 0);
    for (size_t k = 0; k < n; k++) d[k] = (float)c3_rng_uniform(&r);
    csal3d_volume *v;
    ck_assert_int_eq(csal3d_volume_create(1, dims[i], d, NULL, &v), CSAL3D_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/case_%d.nii", dir, i);
    ck_assert_int_eq(csal3d_volume_save(v, p, NULL), CSAL3D_OK);
    fprintf(f, "case_%d.nii\n", i);
    csal3d_volume_free(v);
    free(d);
  }
  fclose(f);
}

static void remove_dir(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

typedef struct step_log {
  int calls, stop_after;
  double loss[16];
  const char *ckpt, *copy_to;
  int64_t copy_at;
} step_log;

static int on_step(void *user, const csal3d_ssl_losses *l, int64_t iterations) {
  step_log *s = user;
  if (s->calls < 16) s->loss[s->calls] = l->loss;
  s->calls++;
  if (s->copy_to && l->step + 1 == s->copy_at) { /* the checkpoint just written */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", s->ckpt, s->copy_to);
    if (system(cmd) != 0) return 1;
  }
  return s->stop_after && s->calls >= s->stop_after;
}

START_TEST(checkpoint_resume_is_exact) {
  char dir[64], list[128], ck[256], ck2[256];
  make_dataset(dir, list, sizeof list);
  snprintf(ck, sizeof ck, "%s/ssl.safetensors", dir);
  snprintf(ck2, sizeof ck2, "%s/ssl_step1.safetensors", dir);
  csal3d_dataset *ds;
  ck_assert_int_eq(csal3d_dataset_open(list, NULL, &ds), CSAL3D_OK);
  csal3d_context *ctx = make_ctx(11);
  csal3d_ssl_options o;
  small_options(&o);
  o.iterations = 2;
  o.batch_size = 2;
  o.warmup_steps = 0;
  o.checkpoint_every = 1;
  o.checkpoint_path = ck;
  o.mask_mode = CSAL3D_MASK_KEEP;
  o.mask_ratio = 0.6; /* hides 0.4 */
  o.inpainting_zscore_target = 1;
  step_log log = {0};
  log.ckpt = ck;
  log.copy_to = ck2;
  log.copy_at = 1;
  o.on_step = on_step;
  o.on_step_user_data = &log;
  csal3d_ssl_model *a;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &a), CSAL3D_OK);
  ck_assert_msg(csal3d_ssl_model_train(a, ds, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(log.calls, 2);
  /* Resume from step 1 in another context (other seed: the checkpoint's wins). */
  csal3d_context *ctx2 = make_ctx(999);
  csal3d_ssl_model *b;
  ck_assert_msg(csal3d_ssl_model_load(ctx2, ck2, &b) == CSAL3D_OK, "%s", csal3d_last_error());
  int64_t step;
  csal3d_ssl_model_step(b, &step);
  ck_assert_int_eq(step, 1);
  csal3d_ssl_options ob;
  csal3d_ssl_options_init(&ob);
  ck_assert_int_eq(csal3d_ssl_model_get_options(b, &ob), CSAL3D_OK);
  ck_assert_int_eq(ob.iterations, 2);
  ck_assert_int_eq(ob.batch_size, 2);
  ck_assert_int_eq(ob.checkpoint_every, 1);
  ck_assert_int_eq(ob.mask_mode, CSAL3D_MASK_KEEP);
  ck_assert_double_eq(ob.mask_ratio, 0.6);
  ck_assert_int_eq(ob.inpainting_zscore_target, 1);
  ck_assert_int_eq(ob.crop_size[2], 32);
  ck_assert_int_eq(ob.seed, 11);
  ck_assert_str_eq(ob.checkpoint_path, ck);
  step_log log2 = {0};
  ob.on_step = on_step;
  ob.on_step_user_data = &log2;
  ob.checkpoint_path = NULL; /* don't overwrite a's final checkpoint */
  ck_assert_int_eq(csal3d_ssl_model_set_options(b, &ob), CSAL3D_OK);
  ck_assert_msg(csal3d_ssl_model_train(b, ds, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(log2.calls, 1);
  ck_assert(log2.loss[0] == log.loss[1]);
  float *pa = params_of(a), *pb = params_of(b);
  ck_assert_int_eq(memcmp(pa, pb, a->m->total * 4), 0);
  float *ma = malloc(a->m->total * 4), *va = malloc(a->m->total * 4);
  float *mb = malloc(a->m->total * 4), *vb = malloc(a->m->total * 4);
  c3_optim_get_moments(a->opt, ma, va);
  c3_optim_get_moments(b->opt, mb, vb);
  ck_assert_int_eq(memcmp(ma, mb, a->m->total * 4), 0);
  ck_assert_int_eq(memcmp(va, vb, a->m->total * 4), 0);
  /* The final checkpoint of a (step 2) loads to the same parameters. */
  csal3d_ssl_model *c;
  ck_assert_int_eq(csal3d_ssl_model_load(ctx2, ck, &c), CSAL3D_OK);
  csal3d_ssl_model_step(c, &step);
  ck_assert_int_eq(step, 2);
  float *pc = params_of(c);
  ck_assert_int_eq(memcmp(pa, pc, a->m->total * 4), 0);
  printf("resume: step 1 loss %.6f, resumed %.6f; parameters and moments identical\n",
         log.loss[1], log2.loss[0]);
  free(pa);
  free(pb);
  free(pc);
  free(ma);
  free(va);
  free(mb);
  free(vb);
  csal3d_ssl_model_free(a);
  csal3d_ssl_model_free(b);
  csal3d_ssl_model_free(c);
  csal3d_context_free(ctx);
  csal3d_context_free(ctx2);
  csal3d_dataset_free(ds);
  remove_dir(dir);
}
END_TEST

static int cancel_progress(void *user, const char *stage, uint64_t done, uint64_t total) {
  int *n = user;
  if (strcmp(stage, "pretrain") == 0) (*n)++;
  return strcmp(stage, "pretrain") == 0 && done >= 1;
}

START_TEST(cancellation_keeps_the_steps_done) {
  char dir[64], list[128];
  make_dataset(dir, list, sizeof list);
  csal3d_dataset *ds;
  ck_assert_int_eq(csal3d_dataset_open(list, NULL, &ds), CSAL3D_OK);
  /* by the step callback */
  csal3d_context *ctx = make_ctx(2);
  csal3d_ssl_options o;
  small_options(&o);
  o.batch_size = 1;
  step_log log = {0};
  log.stop_after = 1;
  o.on_step = on_step;
  o.on_step_user_data = &log;
  csal3d_ssl_model *a;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &a), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_train(a, ds, NULL), CSAL3D_ERR_CANCELLED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "cancelled"));
  int64_t step;
  csal3d_ssl_model_step(a, &step);
  ck_assert_int_eq(step, 1);
  /* by the context's progress callback */
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  int calls = 0;
  co.progress = cancel_progress;
  co.progress_user_data = &calls;
  csal3d_context *ctx2;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx2), CSAL3D_OK);
  o.on_step = NULL;
  csal3d_ssl_model *b;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx2, &o, &b), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_train(b, ds, NULL), CSAL3D_ERR_CANCELLED);
  csal3d_ssl_model_step(b, &step);
  ck_assert_int_eq(step, 1);
  ck_assert_int_eq(calls, 1);
  /* and training goes on from there */
  csal3d_ssl_model_free(b);
  csal3d_ssl_model_free(a);
  csal3d_context_free(ctx);
  csal3d_context_free(ctx2);
  csal3d_dataset_free(ds);
  remove_dir(dir);
}
END_TEST

START_TEST(encode_reconstruct_and_feature_of_a_volume) {
  csal3d_context *ctx = make_ctx(3);
  csal3d_ssl_options o;
  small_options(&o);
  csal3d_ssl_model *h;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_OK);
  int64_t fd, count;
  ck_assert_int_eq(csal3d_ssl_model_feature_dim(h, &fd), CSAL3D_OK);
  ck_assert_int_eq(fd, 64); /* 16 x 12 / 3 */
  ck_assert_int_eq(csal3d_ssl_model_parameter_count(h, &count), CSAL3D_OK);
  ck_assert_int_eq(count, (int64_t)c3_model_param_total(h->m));
  int64_t dhw[3] = {32, 32, 32};
  float *x = make_crops(2, 32, 4);
  float feat[128], feat1[64];
  ck_assert_int_eq(csal3d_ssl_model_encode(h, x, 2, dhw, feat, 127), CSAL3D_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(csal3d_ssl_model_encode(h, x, 2, dhw, feat, 128), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_encode(h, x + 32 * 32 * 32, 1, dhw, feat1, 64), CSAL3D_OK);
  ck_assert_int_eq(memcmp(feat + 64, feat1, sizeof feat1), 0);
  int64_t bad[3] = {32, 30, 32};
  ck_assert_int_eq(csal3d_ssl_model_encode(h, x, 1, bad, feat, 128), CSAL3D_ERR_INVALID_ARGUMENT);
  float *rec = malloc(2 * 32 * 32 * 32 * 4), logits[8];
  ck_assert_int_eq(csal3d_ssl_model_reconstruct(h, x, 2, dhw, rec, 2 * 32 * 32 * 32, logits),
                   CSAL3D_OK);
  for (int i = 0; i < 8; i++) ck_assert(isfinite(logits[i]));
  /* A volume of exactly one window: its feature is the crop's. */
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_create(1, dhw, x, NULL, &v), CSAL3D_OK);
  float fv[64];
  ck_assert_int_eq(csal3d_ssl_model_encode_volume(h, v, NULL, NULL, fv, 64), CSAL3D_OK);
  ck_assert_int_eq(memcmp(fv, feat, sizeof fv), 0);
  csal3d_volume_free(v);
  /* A larger non-cubic volume: the mean over its windows' features. */
  int64_t big[3] = {40, 32, 64};
  float *data = make_crops(1, 64, 5);
  ck_assert_int_eq(csal3d_volume_create(1, big, data, NULL, &v), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_encode_volume(h, v, NULL, NULL, fv, 64), CSAL3D_OK);
  /* windows: d starts {0, 8}, h {0}, w {0, 16, 32} */
  double acc[64] = {0};
  float crop[32 * 32 * 32], f1[64];
  int64_t ds[2] = {0, 8}, ws[3] = {0, 16, 32};
  for (int a = 0; a < 2; a++)
    for (int c = 0; c < 3; c++) {
      for (int i = 0; i < 32; i++)
        for (int j = 0; j < 32; j++)
          for (int k = 0; k < 32; k++)
            crop[(i * 32 + j) * 32 + k] = data[((ds[a] + i) * 32 + j) * 64 + ws[c] + k];
      ck_assert_int_eq(csal3d_ssl_model_encode(h, crop, 1, dhw, f1, 64), CSAL3D_OK);
      for (int i = 0; i < 64; i++) acc[i] += f1[i] / 6.0;
    }
  for (int i = 0; i < 64; i++) ck_assert_float_eq_tol(fv[i], (float)acc[i], 1e-5f);
  csal3d_volume_free(v);
  free(data);
  free(rec);
  free(x);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}
END_TEST

/* csal3d_ssl_model_init_from and csal3d_ssl_options_from_weights through the public API:
 * our own checkpoint as starting weights (all of it, at step 0, options kept), the step
 * and width refusals, the report's struct_size, the provenance. */
START_TEST(init_from_weights) {
  char dir[] = "/tmp/c3_init_XXXXXX", ck[128];
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(ck, sizeof ck, "%s/trained.safetensors", dir);
  csal3d_context *ctx = make_ctx(3);
  csal3d_ssl_options o;
  small_options(&o);
  csal3d_ssl_model *a, *b, *wide;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &a), CSAL3D_OK);
  float *x = make_crops(1, 32, 5);
  int64_t dhw[3] = {32, 32, 32};
  ck_assert_int_eq(csal3d_ssl_model_train_step(a, x, 1, dhw, NULL), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_save(a, ck), CSAL3D_OK);
  /* A trained model takes no starting weights. */
  csal3d_ssl_init_report r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  ck_assert_int_eq(csal3d_ssl_model_init_from(a, ck, &r), CSAL3D_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "has trained 1 steps"));
  /* Our own checkpoint into a new model: all of it, the model stays at step 0 with its
   * options, and the file is where its weights come from. */
  o.iterations = 9;
  o.use_seed = 1;
  o.seed = 77;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &b), CSAL3D_OK);
  r.struct_size = 0;
  ck_assert_int_eq(csal3d_ssl_model_init_from(b, ck, &r), CSAL3D_ERR_INVALID_ARGUMENT);
  r.struct_size = sizeof r;
  ck_assert_msg(csal3d_ssl_model_init_from(b, ck, &r) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(r.loaded, (int64_t)b->m->nparams);
  ck_assert_int_eq(r.initialised, 0);
  ck_assert_int_eq(r.ignored, 2 * (int64_t)b->m->nparams); /* the moments */
  ck_assert_ptr_nonnull(strstr(r.summary, ck));
  ck_assert_ptr_nonnull(strstr(r.details, "ignored     optim.exp_avg.conv.0.weight: optimiser"));
  float *pa = params_of(a), *pb = params_of(b);
  ck_assert_int_eq(memcmp(pa, pb, a->m->total * 4), 0);
  int64_t step;
  csal3d_ssl_model_step(b, &step);
  ck_assert_int_eq(step, 0);
  csal3d_ssl_options ob;
  csal3d_ssl_options_init(&ob);
  csal3d_ssl_model_get_options(b, &ob);
  ck_assert_int_eq(ob.iterations, 9);
  ck_assert_int_eq(ob.seed, 77);
  const char *sum, *src = c3_ssl_source(b, &sum);
  ck_assert_ptr_nonnull(src);
  ck_assert_str_eq(src, ck);
  ck_assert_str_ne(sum, "");
  /* A smaller report struct gets only what it has room for; NULL is fine. */
  r.struct_size = offsetof(csal3d_ssl_init_report, summary);
  r.summary = "untouched";
  ck_assert_int_eq(csal3d_ssl_model_init_from(b, ck, &r), CSAL3D_OK);
  ck_assert_str_eq(r.summary, "untouched");
  ck_assert_int_eq(csal3d_ssl_model_init_from(b, ck, NULL), CSAL3D_OK);
  /* The width comes from the file; a model of another width is refused, unchanged. */
  csal3d_ssl_options ow;
  small_options(&ow);
  ow.embed_dim = 24;
  ow.rotation_input = CSAL3D_ROTATION_INPUT_FIRST_TOKEN;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &ow, &wide), CSAL3D_OK);
  float *pw = params_of(wide);
  ck_assert_int_eq(csal3d_ssl_model_init_from(wide, ck, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(csal3d_last_error(), "'swinViT.patch_embed.proj.weight' has shape "
                                            "[12, 1, 2, 2, 2], the model's "
                                            "'swinViT.patch_embed.proj.weight' [24, 1, 2, 2, 2]") &&
                    strstr(csal3d_last_error(), "set the option embed_dim to 12"),
                "%s", csal3d_last_error());
  float *pw2 = params_of(wide);
  ck_assert_int_eq(memcmp(pw, pw2, wide->m->total * 4), 0);
  ck_assert_int_eq(csal3d_ssl_options_from_weights(ck, &ow), CSAL3D_OK);
  ck_assert_int_eq(ow.embed_dim, 12);
  ck_assert_int_eq(ow.in_channels, 1);
  ck_assert_int_eq(ow.rotation_input, CSAL3D_ROTATION_INPUT_MEAN); /* the checkpoint's */
  ck_assert_int_eq(ow.crop_size[0], 32);                           /* not an architecture member */
  ck_assert_int_eq(csal3d_ssl_options_from_weights(dir, &ow) != CSAL3D_OK, 1);
  free(x);
  free(pa);
  free(pb);
  free(pw);
  free(pw2);
  csal3d_ssl_model_free(a);
  csal3d_ssl_model_free(b);
  csal3d_ssl_model_free(wide);
  csal3d_context_free(ctx);
  unlink(ck);
  ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(options_are_checked) {
  csal3d_context *ctx = make_ctx(0);
  csal3d_ssl_options o;
  csal3d_ssl_model *h = (csal3d_ssl_model *)1;
  ck_assert_int_eq(csal3d_ssl_options_init(NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  small_options(&o);
  o.embed_dim = 10;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(h);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "embed_dim"));
  small_options(&o);
  o.crop_size[1] = 48;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "crop_size"));
  small_options(&o);
  o.mask_ratio = 1.5;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_ERR_INVALID_ARGUMENT);
  small_options(&o);
  o.weight_rotation = -1;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_ERR_INVALID_ARGUMENT);
  small_options(&o);
  o.struct_size = 3;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_ERR_INVALID_ARGUMENT);
  /* an older, smaller struct: the rest takes defaults */
  small_options(&o);
  o.struct_size = offsetof(csal3d_ssl_options, lr);
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_OK);
  csal3d_ssl_options got;
  csal3d_ssl_options_init(&got);
  csal3d_ssl_model_get_options(h, &got);
  ck_assert_int_eq(got.embed_dim, 12);
  ck_assert_double_eq(got.weight_decay, 0.1);
  ck_assert_int_eq(got.cache_bytes, (int64_t)1 << 30);
  got.embed_dim = 24;
  ck_assert_int_eq(csal3d_ssl_model_set_options(h, &got), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "embed_dim"));
  got.embed_dim = 12;
  got.iterations = 100;
  ck_assert_int_eq(csal3d_ssl_model_set_options(h, &got), CSAL3D_OK);
  ck_assert_int_eq(h->opt->cfg.total_steps, 100);
  /* lr lies past the small struct: 0, auto = 5e-4 x batch / 2 */
  ck_assert_double_eq_tol(h->opt->cfg.lr, 2.5e-4, 1e-15);
  got.batch_size = 6;
  ck_assert_int_eq(csal3d_ssl_model_set_options(h, &got), CSAL3D_OK);
  ck_assert_double_eq_tol(h->opt->cfg.lr, 5e-4 * 3, 1e-15);
  csal3d_ssl_losses l = {.struct_size = sizeof l};
  ck_assert_int_eq(csal3d_ssl_model_last_losses(h, &l), CSAL3D_ERR_STATE);
  float x[8];
  int64_t dhw[3] = {32, 32, 32};
  ck_assert_int_eq(csal3d_ssl_model_train_step(h, x, 0, dhw, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_ssl_model_free(h);
  ck_assert_int_eq(csal3d_ssl_model_load(ctx, "/nonexistent/x.safetensors", &h), CSAL3D_ERR_IO);
  ck_assert_ptr_null(h);
  csal3d_ssl_model_free(NULL);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(non_finite_input_fails_without_update) {
  csal3d_context *ctx = make_ctx(1);
  csal3d_ssl_options o;
  small_options(&o);
  csal3d_ssl_model *h;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_OK);
  float *x = make_crops(1, 32, 2);
  x[100] = NAN;
  int64_t dhw[3] = {32, 32, 32};
  float *p0 = params_of(h);
  ck_assert_int_eq(csal3d_ssl_model_train_step(h, x, 1, dhw, NULL), CSAL3D_ERR_NUMERICAL);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "value 100 of"));
  float feat[64];
  ck_assert_int_eq(csal3d_ssl_model_encode(h, x, 1, dhw, feat, 64), CSAL3D_ERR_NUMERICAL);
  float *p1 = params_of(h);
  ck_assert_int_eq(memcmp(p0, p1, h->m->total * 4), 0);
  int64_t step;
  csal3d_ssl_model_step(h, &step);
  ck_assert_int_eq(step, 0);
  free(p0);
  free(p1);
  free(x);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}
END_TEST


/* The checkpoint-metadata reader on its corpus (tests/data/ssl_metadata, also the
 * fuzzer's seeds): valid_* accepted with the options they spell, invalid_<status>_*
 * refused with that status and a message naming the file. */
START_TEST(checkpoint_metadata_corpus) {
  const char *dir = "tests/data/ssl_metadata";
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d))) {
    const char *nm = de->d_name;
    size_t len = strlen(nm);
    if (len < 12 || strcmp(nm + len - 12, ".safetensors") != 0) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, nm);
    c3_safetensors *st;
    ck_assert_msg(c3_st_open(path, &st) == CSAL3D_OK, "%s: %s", nm, csal3d_last_error());
    c3_model_config mc;
    csal3d_ssl_options o;
    csal3d_ssl_options_init(&o);
    c3_ssl_data data;
    csal3d_status s = c3_model_config_from_metadata(st, &mc);
    if (s == CSAL3D_OK) s = c3_ssl_options_from_metadata(st, &mc, &o);
    if (s == CSAL3D_OK) s = c3_ssl_data_from_metadata(st, &data);
    if (strncmp(nm, "valid_", 6) == 0) {
      ck_assert_msg(s == CSAL3D_OK, "%s: %s", nm, csal3d_last_error());
      if (strcmp(nm, "valid_data_absent.safetensors") == 0 ||
          strcmp(nm, "valid_empty.safetensors") == 0) {
        ck_assert_int_eq(data.known, 0);
        ck_assert_int_eq(data.stats.crops, 0);
      }
      if (strcmp(nm, "valid_data_none.safetensors") == 0) {
        ck_assert_int_eq(data.known, 7);
        ck_assert_int_eq(data.modality, CSAL3D_MODALITY_NONE);
        ck_assert_int_eq(data.channel, 3);
        ck_assert(data.spacing[0] == 0 && data.spacing[1] == 0 && data.spacing[2] == 0);
      }
      if (strcmp(nm, "valid_full.safetensors") == 0) {
        ck_assert_int_eq(data.known, CSAL3D_DATA_KNOWN_MODALITY | CSAL3D_DATA_KNOWN_CHANNEL |
                                         CSAL3D_DATA_KNOWN_SPACING);
        ck_assert_int_eq(data.modality, CSAL3D_MODALITY_MRI);
        ck_assert_int_eq(data.channel, CSAL3D_CHANNEL_ALL);
        ck_assert(data.spacing[0] == 1.5 && data.spacing[1] == 1.5 && data.spacing[2] == 2);
        ck_assert_int_eq(data.stats.crops, 8);
        ck_assert_int_eq(data.stats.voxels, 262144);
        ck_assert(data.stats.mean == 0.25 && data.stats.min == 0 && data.stats.max == 1);
        ck_assert_double_eq_tol(data.stats.m2, 0.125 * 0.125 * 262144, 1e-9);
        ck_assert_int_eq(o.crop_size[1], 64);
        ck_assert_int_eq(o.batch_size, 2);
        ck_assert_int_eq(o.iterations, 4);
        ck_assert_int_eq(o.mask_mode, CSAL3D_MASK_KEEP);
        ck_assert_double_eq(o.weight_rotation, 0.5);
        ck_assert_int_eq(o.inpainting_masked_only, 1);
        ck_assert_int_eq(o.checkpoint_every, 2);
      }
    } else {
      /* A checkpoint's metadata is data: malformed (invalid_format_*) or out of range
       * (invalid_invalid_*), it is a FORMAT error naming the file (exit 3), never an
       * argument error (exit 2). */
      csal3d_status want = CSAL3D_ERR_FORMAT;
      ck_assert_msg(s == want, "%s: status %d (%s), expected %d", nm, (int)s,
                    csal3d_last_error(), (int)want);
      ck_assert_msg(strstr(csal3d_last_error(), nm) != NULL, "%s: message '%s'", nm,
                    csal3d_last_error());
      /* a malformed data option names its key */
      if (strncmp(nm, "invalid_format_data_", 20) == 0) {
        char key[64];
        snprintf(key, sizeof key, "data.%.*s", (int)strcspn(nm + 20, "_."), nm + 20);
        ck_assert_msg(strstr(csal3d_last_error(), key) != NULL, "%s: message '%s'", nm,
                      csal3d_last_error());
      }
    }
    c3_st_free(st);
    n++;
  }
  closedir(d);
  ck_assert_int_ge(n, 40);
}
END_TEST

int main(int argc, char **argv) {
  (void)argc;
  c3_test_passive_openmp(argv);
  Suite *s = suite_create("ssl");
  TCase *t = tcase_create("loss");
  tcase_set_timeout(t, 900);
  tcase_add_test(t, finite_differences_every_term_and_option);
  tcase_add_test(t, finite_differences_two_channels_and_options);
  tcase_add_test(t, terms_match_their_definitions);
  suite_add_tcase(s, t);
  TCase *a = tcase_create("api");
  tcase_set_timeout(a, 900);
  tcase_add_test(a, same_seed_same_losses_and_parameters);
  tcase_add_test(a, checkpoint_resume_is_exact);
  tcase_add_test(a, cancellation_keeps_the_steps_done);
  tcase_add_test(a, encode_reconstruct_and_feature_of_a_volume);
  tcase_add_test(a, options_are_checked);
  tcase_add_test(a, init_from_weights);
  tcase_add_test(a, non_finite_input_fails_without_update);
  tcase_add_test(a, checkpoint_metadata_corpus);
  suite_add_tcase(s, a);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
