/* The segmentation U-Net (lib/model/unet.c): gradients against central finite
 * differences on a tiny network (every parameter tensor and the input, along random
 * directions), training steps that fit one batch, checkpoint tensors that round-trip,
 * and a clear refusal on an engine without the segmentation ops. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/unet.h"

static uint64_t rs = 1;
static double unif(void) {
  rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(rs >> 11) / 9007199254740992.0;
}

typedef struct fix {
  c3_engine *e;
  c3_unet *u;
  int64_t n, dhw[3], nin, nout;
  float *x, *r; /* input; the loss's weights: L = sum r * logits */
} fix;

static void setup(fix *f, int stages, const int *widths, int in_ch, int classes, int64_t n,
                  int64_t d, int64_t h, int64_t w, float slope) {
  memset(f, 0, sizeof *f);
  ck_assert_int_eq(c3_engine_open(CSAL3D_DEVICE_CPU, 0, &f->e), CSAL3D_OK);
  c3_unet_config c = {in_ch, classes, stages, {0}, slope};
  for (int s = 0; s < stages; s++) c.widths[s] = widths[s];
  ck_assert_int_eq(c3_unet_create(f->e, &c, &f->u), CSAL3D_OK);
  ck_assert_int_eq(c3_unet_init(f->u, 7), CSAL3D_OK);
  f->n = n;
  f->dhw[0] = d, f->dhw[1] = h, f->dhw[2] = w;
  f->nin = n * in_ch * d * h * w;
  f->nout = n * d * h * w * classes;
  f->x = malloc((size_t)f->nin * 4);
  f->r = malloc((size_t)f->nout * 4);
  for (int64_t i = 0; i < f->nin; i++) f->x[i] = (float)(2 * unif() - 1);
  for (int64_t i = 0; i < f->nout; i++) f->r[i] = (float)(2 * unif() - 1);
}

static void teardown(fix *f) {
  c3_unet_free(f->u);
  c3_engine_close(f->e);
  free(f->x);
  free(f->r);
}

static double loss_at(fix *f, const float *x) {
  ck_assert_int_eq(c3_unet_forward(f->u, x, f->n, f->dhw, 0), CSAL3D_OK);
  const float *l = c3_unet_logits(f->u);
  double s = 0;
  for (int64_t i = 0; i < f->nout; i++) s += (double)f->r[i] * l[i];
  return s;
}

/* Every parameter tensor and the input: the directional derivative along a random
 * direction from backward against a central difference (step h along it). The
 * LeakyReLU slope is 1 here, so that the network is smooth and float32 finite
 * differences are accurate (the op's kink is checked in test_engine); the wiring of
 * every tensor is what this checks. Biases before an instance norm have zero gradient
 * (the norm removes them): both sides must say so. */
START_TEST(unet_gradients_match_finite_differences) {
  fix f;
  const int widths[3] = {3, 4, 6};
  setup(&f, 3, widths, 2, 3, 2, 16, 8, 8, 1.0f);
  c3_unet *u = f.u;
  float *dx = malloc((size_t)f.nin * 4);
  ck_assert_int_eq(c3_unet_zero_grad(u), CSAL3D_OK);
  ck_assert_int_eq(c3_unet_forward(u, f.x, f.n, f.dhw, 1), CSAL3D_OK);
  ck_assert_int_eq(c3_unet_backward(u, f.x, f.r, dx), CSAL3D_OK);
  float *w = malloc(u->total * 4), *g = malloc(u->total * 4), *w2 = malloc(u->total * 4);
  ck_assert_int_eq(c3_unet_get_params(u, w), CSAL3D_OK);
  ck_assert_int_eq(c3_unet_get_grads(u, g), CSAL3D_OK);
  double worst = 0;
  for (size_t t = 0; t <= u->nparams; t++) {
    /* t == nparams: the input */
    size_t n = t < u->nparams ? u->params[t].numel : (size_t)f.nin;
    const float *base = t < u->nparams ? w + u->params[t].offset : f.x;
    const float *grad = t < u->nparams ? g + u->params[t].offset : dx;
    double *dir = malloc(n * sizeof(double)), an = 0, bn = 0;
    for (size_t i = 0; i < n; i++) {
      dir[i] = 2 * unif() - 1;
      an += dir[i] * grad[i];
      bn += fabs(base[i]);
    }
    double h = (getenv("UNET_FD_H") ? atof(getenv("UNET_FD_H")) : 1e-2) * (bn / (double)n > 0.05 ? bn / (double)n : 0.05);
    float *xp = malloc((size_t)f.nin * 4);
    double lp = 0, lm = 0;
    for (int sgn = 0; sgn < 2; sgn++) {
      double k = sgn ? -h : h;
      memcpy(w2, w, u->total * 4);
      memcpy(xp, f.x, (size_t)f.nin * 4);
      float *dst = t < u->nparams ? w2 + u->params[t].offset : xp;
      for (size_t i = 0; i < n; i++) dst[i] = (float)(base[i] + k * dir[i]);
      ck_assert_int_eq(c3_unet_set_params(u, w2), CSAL3D_OK);
      double l = loss_at(&f, xp);
      if (sgn) lm = l;
      else lp = l;
    }
    double fd = (lp - lm) / (2 * h);
    /* relative, with an absolute floor for the gradients that are 0 (float32 noise of
     * the differences is ~1e-2 there; the others are 1..300) */
    double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 5.0);
    if (err > worst) worst = err;
    if (getenv("UNET_FD_ALL") || err > 1e-2)
      printf("%-22s analytic %12.6g  finite difference %12.6g  error %.3g\n",
             t < u->nparams ? u->params[t].name : "input", an, fd, err);
    if (!getenv("UNET_FD_ALL")) ck_assert_msg(err <= 1e-2, "gradient of %s: %g vs %g", t < u->nparams ? u->params[t].name
                                                                         : "input", an, fd);
    free(dir);
    free(xp);
  }
  printf("U-Net (3 stages 3,4,6; 2 -> 3 classes; 2 x 16x8x8): %zu tensors + input, worst "
         "relative error %.2e\n", u->nparams, worst);
  free(w);
  free(w2);
  free(g);
  free(dx);
  teardown(&f);
}
END_TEST

/* A few AdamW steps with the seg loss fit a fixed batch: the loss drops by half. */
START_TEST(unet_fits_a_batch) {
  fix f;
  const int widths[3] = {4, 8, 8};
  setup(&f, 3, widths, 1, 3, 2, 8, 8, 8, 0.01f);
  c3_engine *e = f.e;
  int64_t rows = f.n * 8 * 8 * 8;
  int32_t *lab = malloc((size_t)rows * 4);
  for (int64_t r = 0; r < rows; r++) { /* labels from the input: a learnable map */
    float v = f.x[r];
    lab[r] = v > 0.3f ? 1 : v < -0.3f ? 2 : 0;
  }
  float *dl = malloc((size_t)f.nout * 4);
  c3_segloss_desc d = {rows, 3, 1, 1e-5f, 1.0f, 1.0f};
  double first = 0, loss = 0;
  for (int step = 0; step < 30; step++) {
    ck_assert_int_eq(c3_unet_zero_grad(f.u), CSAL3D_OK);
    ck_assert_int_eq(c3_unet_forward(f.u, f.x, f.n, f.dhw, 1), CSAL3D_OK);
    ck_assert_int_eq(e->seg_loss(e, &d, c3_unet_logits(f.u), lab, 1.0f, dl, 0, &loss, NULL, NULL),
                     CSAL3D_OK);
    ck_assert_int_eq(c3_unet_backward(f.u, f.x, dl, NULL), CSAL3D_OK);
    ck_assert_int_eq(c3_unet_adamw_step(f.u, 1e-2, 3e-5, 12.0, NULL), CSAL3D_OK);
    if (step == 0) first = loss;
  }
  printf("U-Net fitting one batch: loss %.4f -> %.4f in 30 steps\n", first, loss);
  ck_assert_double_lt(loss, 0.5 * first);
  ck_assert_int_eq((int)f.u->step, 30);
  /* checkpoint tensors round-trip, moments and step included */
  c3_st_writer *wr;
  ck_assert_int_eq(c3_st_writer_create(&wr), CSAL3D_OK);
  float *hold;
  ck_assert_int_eq(c3_unet_add_to_writer(f.u, wr, &hold), CSAL3D_OK);
  void *buf;
  size_t len;
  ck_assert_int_eq(c3_st_writer_write_buffer(wr, &buf, &len), CSAL3D_OK);
  c3_safetensors *st;
  ck_assert_int_eq(c3_st_parse(buf, len, "test", &st), CSAL3D_OK);
  c3_unet *u2;
  ck_assert_int_eq(c3_unet_create(e, &f.u->cfg, &u2), CSAL3D_OK);
  ck_assert_int_eq(c3_unet_load(u2, st), CSAL3D_OK);
  ck_assert_int_eq((int)u2->step, 30);
  float *a = malloc(u2->total * 4), *b = malloc(u2->total * 4);
  c3_unet_get_params(f.u, a);
  c3_unet_get_params(u2, b);
  ck_assert_int_eq(memcmp(a, b, u2->total * 4), 0);
  e->download(e, a, f.u->v, u2->total * 4);
  e->download(e, b, u2->v, u2->total * 4);
  ck_assert_int_eq(memcmp(a, b, u2->total * 4), 0);
  free(a);
  free(b);
  c3_unet_free(u2);
  c3_st_free(st);
  c3_free(buf);
  c3_free(hold);
  c3_st_writer_free(wr);
  free(lab);
  free(dl);
  teardown(&f);
}
END_TEST

START_TEST(unet_refuses_engines_without_its_ops) {
  fix f;
  const int widths[2] = {2, 4};
  setup(&f, 2, widths, 1, 2, 1, 4, 4, 4, 0.01f);
  c3_engine fake = *f.e; /* the CPU engine's table, less the new ops: as the CUDA engine */
  fake.name = "cuda";
  fake.channel_copy = NULL;
  fake.seg_loss = NULL;
  c3_engine *real = f.u->e;
  f.u->e = &fake;
  ck_assert_int_eq(c3_unet_forward(f.u, f.x, 1, f.dhw, 1), CSAL3D_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not supported on the cuda engine yet"));
  f.u->e = real;
  /* sides must be multiples of 2^(stages-1) */
  int64_t bad[3] = {4, 5, 4};
  ck_assert_int_eq(c3_unet_forward(f.u, f.x, 1, bad, 1), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "multiple of 2"));
  teardown(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("unet");
  TCase *t = tcase_create("unet");
  tcase_set_timeout(t, 120);
  tcase_add_test(t, unet_gradients_match_finite_differences);
  tcase_add_test(t, unet_fits_a_batch);
  tcase_add_test(t, unet_refuses_engines_without_its_ops);
  suite_add_tcase(s, t);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
