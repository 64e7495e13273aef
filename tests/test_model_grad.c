/* Numerical tests of the model's forward/backward that need no reference files:
 * observations run one at a time (inference forwards for a loss that sees them all,
 * then a training forward and backward each, accumulating, as lib/model/ssl.c does)
 * give the gradients of one batched forward and backward, recomputed
 * attention gives the stored-attention gradients, the options the MONAI reference
 * does not cover (MONAI merging order, first-token rotation head) pass central
 * finite differences, and misuse fails with clear states. Small shapes (embed_dim
 * 12, 32 x 32 x 32 or 32 x 32 x 64 inputs) keep it short. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/ssl_internal.h"

typedef struct loss_ctx {
  const float *target;
  const int32_t *labels;
  int64_t vin;  /* elements per observation */
  int ce_only;  /* only the rotation loss (finite differences: see fd_check) */
} loss_ctx;

/* The README's loss: mean squared error + cross-entropy. */
static csal3d_status readme_loss(void *ctx, c3_model *m, int64_t n, const float *recon,
                                 const float *logits, float *d_recon, float *d_logits,
                                 double *loss) {
  loss_ctx *c = ctx;
  c3_engine *e = m->e;
  int64_t vin = c->vin;
  double a = 0, b;
  if (c->ce_only) C3_TRY(e->zero(e, d_recon, (size_t)(n * vin) * sizeof(float)));
  else C3_TRY(e->mse_loss(e, n * vin, recon, c->target, NULL, 1.0f, d_recon, NULL, 0, &a));
  C3_TRY(e->cross_entropy(e, n, 4, logits, c->labels, 1.0f, d_logits, 0, &b));
  *loss = a + b;
  return CSAL3D_OK;
}

typedef struct fixture {
  c3_engine *e;
  c3_model *m;
  int64_t n, dhw[3];
  size_t vin;
  float *x, *t, *recon, *logits, *drec, *dlog;
  int32_t *labels;
} fixture;

static void setup(fixture *f, const c3_model_config *cfg, int64_t n, int64_t wside) {
  memset(f, 0, sizeof *f);
  ck_assert_int_eq(c3_engine_open(CSAL3D_DEVICE_CPU, 0, &f->e), CSAL3D_OK);
  c3_engine *e = f->e;
  ck_assert_int_eq(c3_model_create(e, cfg, &f->m), CSAL3D_OK);
  ck_assert_int_eq(c3_model_init(f->m, 11), CSAL3D_OK);
  f->n = n;
  f->dhw[0] = 32, f->dhw[1] = 32, f->dhw[2] = wside;
  f->vin = (size_t)(cfg->in_channels * 32 * 32 * wside);
  size_t tot = (size_t)n * f->vin;
  float *h = malloc(tot * sizeof(float));
  c3_rng r;
  c3_rng_init(&r, 5, C3_RNG_TEST, 1, 0, 0);
  ck_assert_int_eq(e->alloc(e, tot * 4, "x", (void **)&f->x), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, tot * 4, "t", (void **)&f->t), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, tot * 4, "recon", (void **)&f->recon), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, tot * 4, "drec", (void **)&f->drec), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, (size_t)n * 16, "logits", (void **)&f->logits), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, (size_t)n * 16, "dlog", (void **)&f->dlog), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, (size_t)n * 4, "labels", (void **)&f->labels), CSAL3D_OK);
  for (size_t i = 0; i < tot; i++) h[i] = (float)c3_rng_uniform(&r);
  ck_assert_int_eq(e->upload(e, f->x, h, tot * 4), CSAL3D_OK);
  for (size_t i = 0; i < tot; i++) h[i] = (float)c3_rng_uniform(&r);
  ck_assert_int_eq(e->upload(e, f->t, h, tot * 4), CSAL3D_OK);
  int32_t lab[16];
  for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)(i % 4);
  ck_assert_int_eq(e->upload(e, f->labels, lab, (size_t)n * 4), CSAL3D_OK);
  free(h);
}

static void teardown(fixture *f) {
  c3_engine *e = f->e;
  e->free(e, f->x);
  e->free(e, f->t);
  e->free(e, f->recon);
  e->free(e, f->drec);
  e->free(e, f->logits);
  e->free(e, f->dlog);
  e->free(e, f->labels);
  c3_model_free(f->m);
  c3_engine_close(e);
}

/* Gradients (host copy, m->total floats) and loss of one training pass over the n
 * observations: one batched forward, the loss, one backward; or (one_at_a_time) an
 * inference forward per observation with its outputs collected, the loss on all of
 * them, then per observation a training forward and a backward of its slice of the
 * loss's derivatives, the gradients accumulating. f->recon and f->logits keep the
 * outputs. */
static float *grads_of(fixture *f, int one_at_a_time, double *loss, int ce_only) {
  loss_ctx c = {f->t, f->labels, (int64_t)f->vin, ce_only};
  c3_model *m = f->m;
  c3_engine *e = f->e;
  const size_t vin = f->vin, nb = (size_t)f->n * vin * sizeof(float);
  ck_assert_int_eq(c3_model_zero_grad(m), CSAL3D_OK);
  int64_t k = one_at_a_time ? f->n : 1, per = one_at_a_time ? 1 : f->n;
  for (int64_t i = 0; i < k; i++) {
    ck_assert_int_eq(c3_model_forward(m, f->x + (size_t)i * vin, per, f->dhw, !one_at_a_time),
                     CSAL3D_OK);
    ck_assert_int_eq(e->copy(e, f->recon + (size_t)i * vin, c3_model_reconstruction(m),
                             nb / (size_t)k),
                     CSAL3D_OK);
    ck_assert_int_eq(e->copy(e, f->logits + (size_t)i * 4, c3_model_logits(m),
                             (size_t)per * 4 * sizeof(float)),
                     CSAL3D_OK);
  }
  csal3d_status s = readme_loss(&c, m, f->n, f->recon, f->logits, f->drec, f->dlog, loss);
  ck_assert_msg(s == CSAL3D_OK, "%s", csal3d_last_error());
  if (!one_at_a_time) {
    s = c3_model_backward(m, f->x, f->drec, f->dlog, NULL);
    ck_assert_msg(s == CSAL3D_OK, "%s", csal3d_last_error());
  }
  for (int64_t i = 0; one_at_a_time && i < f->n; i++) {
    ck_assert_int_eq(c3_model_forward(m, f->x + (size_t)i * vin, 1, f->dhw, 1), CSAL3D_OK);
    s = c3_model_backward(m, f->x + (size_t)i * vin, f->drec + (size_t)i * vin,
                          f->dlog + (size_t)i * 4, NULL);
    ck_assert_msg(s == CSAL3D_OK, "%s", csal3d_last_error());
  }
  float *g = malloc(m->total * sizeof(float));
  ck_assert_int_eq(c3_model_get_grads(f->m, g), CSAL3D_OK);
  return g;
}

/* Largest per-tensor relative difference (norm-wise) between two gradient sets;
 * tensors whose reference is (near) zero, as the decoder conv biases before an
 * instance norm (zero in exact arithmetic), go to *zero_max as max |a - b|. */
static double max_rel(const c3_model *m, const float *a, const float *b, const char **worst,
                      double *zero_max) {
  double w = 0;
  *zero_max = 0;
  for (size_t i = 0; i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    double num = 0, den = 0, mx = 0;
    for (size_t k = 0; k < p->numel; k++) {
      double d = (double)a[p->offset + k] - b[p->offset + k];
      num += d * d;
      den += (double)b[p->offset + k] * b[p->offset + k];
      if (fabs(d) > mx) mx = fabs(d);
    }
    if (sqrt(den / (double)p->numel) < 1e-6) {
      if (mx > *zero_max) *zero_max = mx;
      continue;
    }
    double r = sqrt(num / den);
    if (r > w) {
      w = r;
      if (worst) *worst = p->name;
    }
  }
  return w;
}

START_TEST(one_at_a_time_equals_all_at_once) {
  c3_model_config cfg;
  c3_model_config_default(&cfg, 12, 1);
  fixture f;
  setup(&f, &cfg, 2, 64);
  double l1, l2;
  float *g1 = grads_of(&f, 0, &l1, 0);
  float *r1 = malloc(f.vin * 2 * sizeof(float));
  ck_assert_int_eq(f.e->download(f.e, r1, f.recon, f.vin * 2 * 4), CSAL3D_OK);
  float *g2 = grads_of(&f, 1, &l2, 0);
  float *r2 = malloc(f.vin * 2 * sizeof(float));
  ck_assert_int_eq(f.e->download(f.e, r2, f.recon, f.vin * 2 * 4), CSAL3D_OK);
  ck_assert_msg(fabs(l1 - l2) <= 1e-6 * fabs(l1), "loss %.9g vs %.9g", l1, l2);
  double worst_r = 0;
  for (size_t i = 0; i < f.vin * 2; i++)
    if (fabs(r1[i] - r2[i]) > worst_r) worst_r = fabs(r1[i] - r2[i]);
  ck_assert_msg(worst_r < 1e-5, "reconstructions differ by %g", worst_r);
  const char *worst = "";
  double zmax;
  double rel = max_rel(f.m, g2, g1, &worst, &zmax);
  printf("one-at-a-time vs all-at-once: max relative gradient difference %.3e (%s), "
         "zero-gradient tensors max |diff| %.1e\n",
         rel, worst, zmax);
  ck_assert_msg(rel < 1e-5, "gradients differ: %g at %s", rel, worst);
  ck_assert_msg(zmax < 1e-6, "zero-gradient tensors differ by %g", zmax);
  free(g1);
  free(g2);
  free(r1);
  free(r2);
  teardown(&f);
}
END_TEST

START_TEST(recomputed_attention_equals_stored) {
  c3_model_config cfg;
  c3_model_config_default(&cfg, 12, 1);
  fixture f;
  setup(&f, &cfg, 1, 32);
  double l1, l2;
  float *g1 = grads_of(&f, 0, &l1, 0);
  size_t with_probs = c3_model_workspace_bytes(f.m);
  f.m->recompute_attention = 1;
  float *g2 = grads_of(&f, 0, &l2, 0);
  ck_assert(l1 == l2);
  const char *worst = "";
  double zmax;
  double rel = max_rel(f.m, g2, g1, &worst, &zmax);
  ck_assert_msg(zmax < 1e-6, "recomputed attention: zero-gradient tensors differ by %g", zmax);
  ck_assert_msg(rel < 1e-5, "recomputed attention: gradients differ by %g at %s", rel, worst);
  /* A fresh model shows the memory saved. */
  c3_model *m2;
  ck_assert_int_eq(c3_model_create(f.e, &cfg, &m2), CSAL3D_OK);
  m2->recompute_attention = 1;
  ck_assert_int_eq(c3_model_forward(m2, f.x, 1, f.dhw, 1), CSAL3D_OK);
  ck_assert_uint_lt(c3_model_workspace_bytes(m2), with_probs);
  c3_model_free(m2);
  free(g1);
  free(g2);
  teardown(&f);
}
END_TEST

/* Central differences of the loss along a random direction of the parameters and
 * of the input, against the backward's gradients. The loss is the rotation
 * cross-entropy only: the decoder's first instance norms see 2 voxels at this
 * input size, which makes the reconstruction too non-linear for float32
 * differences (the decoder's gradients are checked against MONAI instead). */
static void fd_check(const c3_model_config *cfg) {
  fixture f;
  setup(&f, cfg, 1, 32);
  c3_engine *e = f.e;
  c3_model *m = f.m;
  double l0;
  float *g = grads_of(&f, 0, &l0, 1);
  float *w0 = malloc(m->total * 4), *w = malloc(m->total * 4), *v = calloc(m->total, 4);
  ck_assert_int_eq(c3_model_get_params(m, w0), CSAL3D_OK);
  c3_rng r;
  c3_rng_init(&r, 17, C3_RNG_TEST, 2, 0, 0);
  /* Direction: normal, scaled per tensor to its typical magnitude. */
  double gv = 0;
  for (size_t i = 0; i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    double s2 = 0;
    for (size_t k = 0; k < p->numel; k++) s2 += (double)w0[p->offset + k] * w0[p->offset + k];
    double sc = sqrt(s2 / (double)p->numel);
    if (sc < 0.02) sc = 0.02;
    for (size_t k = 0; k < p->numel; k++) {
      v[p->offset + k] = (float)(sc * c3_rng_normal(&r));
      gv += (double)v[p->offset + k] * g[p->offset + k];
    }
  }
  loss_ctx c = {f.t, f.labels, (int64_t)f.vin, 1};
  double lp, lm, eps = 1e-3;
  for (int sgn = 1; sgn >= -1; sgn -= 2) {
    for (size_t i = 0; i < m->total; i++) w[i] = (float)(w0[i] + sgn * eps * v[i]);
    ck_assert_int_eq(c3_model_set_params(m, w), CSAL3D_OK);
    ck_assert_int_eq(c3_model_forward(m, f.x, 1, f.dhw, 0), CSAL3D_OK);
    double l;
    ck_assert_int_eq(readme_loss(&c, m, 1, c3_model_reconstruction(m), c3_model_logits(m),
                                 f.drec, f.dlog, &l),
                     CSAL3D_OK);
    if (sgn > 0) lp = l;
    else lm = l;
  }
  double fd = (lp - lm) / (2 * eps);
  printf("finite differences (merge %s, rotation input %s): parameters fd %.6e "
         "backward %.6e",
         cfg->merge_order == C3_MERGE_MONAI ? "monai" : "distinct",
         cfg->rot_input == C3_ROT_MEAN ? "mean" : "first token", fd, gv);
  ck_assert_msg(fabs(fd - gv) <= 2e-3 * fabs(gv) + 1e-6, "parameters: fd %.8g vs %.8g", fd,
                gv);
  ck_assert_int_eq(c3_model_set_params(m, w0), CSAL3D_OK);
  /* Input direction. */
  float *dx, *xh = malloc(f.vin * 4), *xv = malloc(f.vin * 4), *dxh = malloc(f.vin * 4);
  ck_assert_int_eq(e->alloc(e, f.vin * 4, "dx", (void **)&dx), CSAL3D_OK);
  ck_assert_int_eq(c3_model_zero_grad(m), CSAL3D_OK);
  ck_assert_int_eq(c3_model_forward(m, f.x, 1, f.dhw, 1), CSAL3D_OK);
  double l;
  ck_assert_int_eq(readme_loss(&c, m, 1, c3_model_reconstruction(m), c3_model_logits(m),
                               f.drec, f.dlog, &l),
                   CSAL3D_OK);
  ck_assert_int_eq(c3_model_backward(m, f.x, f.drec, f.dlog, dx), CSAL3D_OK);
  ck_assert_int_eq(e->download(e, dxh, dx, f.vin * 4), CSAL3D_OK);
  ck_assert_int_eq(e->download(e, xh, f.x, f.vin * 4), CSAL3D_OK);
  double gx = 0;
  for (size_t i = 0; i < f.vin; i++) {
    double d = c3_rng_normal(&r);
    gx += d * dxh[i];
    xv[i] = (float)d;
  }
  float *xp = malloc(f.vin * 4);
  double eps_x = 1e-2;
  for (int sgn = 1; sgn >= -1; sgn -= 2) {
    for (size_t i = 0; i < f.vin; i++) xp[i] = (float)(xh[i] + sgn * eps_x * xv[i]);
    ck_assert_int_eq(e->upload(e, dx, xp, f.vin * 4), CSAL3D_OK);
    ck_assert_int_eq(c3_model_forward(m, dx, 1, f.dhw, 0), CSAL3D_OK);
    ck_assert_int_eq(readme_loss(&c, m, 1, c3_model_reconstruction(m), c3_model_logits(m),
                                 f.drec, f.dlog, &l),
                     CSAL3D_OK);
    if (sgn > 0) lp = l;
    else lm = l;
  }
  fd = (lp - lm) / (2 * eps_x);
  printf("; input fd %.6e backward %.6e\n", fd, gx);
  ck_assert_msg(fabs(fd - gx) <= 5e-3 * fabs(gx) + 1e-6, "input: fd %.8g vs %.8g", fd, gx);
  e->free(e, dx);
  free(xh);
  free(xv);
  free(xp);
  free(dxh);
  free(w0);
  free(w);
  free(v);
  free(g);
  teardown(&f);
}

START_TEST(finite_differences_default_options) {
  c3_model_config cfg;
  c3_model_config_default(&cfg, 12, 1);
  fd_check(&cfg);
}
END_TEST

START_TEST(finite_differences_monai_merge_first_token_two_channels) {
  c3_model_config cfg;
  c3_model_config_default(&cfg, 12, 2);
  cfg.merge_order = C3_MERGE_MONAI;
  cfg.rot_input = C3_ROT_FIRST_TOKEN;
  fd_check(&cfg);
}
END_TEST

START_TEST(misuse_fails_with_clear_states) {
  c3_model_config cfg;
  c3_model_config_default(&cfg, 12, 1);
  fixture f;
  setup(&f, &cfg, 1, 32);
  c3_model *m = f.m;
  ck_assert_int_eq(c3_model_backward(m, f.x, f.drec, f.dlog, NULL), CSAL3D_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "forward with train = 1"));
  int64_t bad[3] = {32, 48, 64};
  ck_assert_int_eq(c3_model_forward(m, f.x, 1, bad, 1), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "48 (axis 1) must be a positive multiple of 32"));
  ck_assert_int_eq(c3_model_forward(m, f.x, 1, f.dhw, 1), CSAL3D_OK);
  ck_assert_int_eq(c3_model_backward(m, f.x, f.drec, f.dlog, NULL), CSAL3D_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "zero_grad"));
  ck_assert_int_eq(c3_model_zero_grad(m), CSAL3D_OK);
  /* An engine without an op the model needs: a clear refusal, not a crash. */
  void *saved = (void *)f.e->attn_bwd;
  f.e->attn_bwd = NULL;
  ck_assert_int_eq(c3_model_forward(m, f.x, 1, f.dhw, 1), CSAL3D_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "no attn_bwd op"));
  ck_assert_int_eq(c3_model_forward(m, f.x, 1, f.dhw, 0), CSAL3D_OK); /* inference is fine */
  *(void **)&f.e->attn_bwd = saved;
  /* Inference forward does not allow backward. */
  ck_assert_int_eq(c3_model_forward(m, f.x, 1, f.dhw, 0), CSAL3D_OK);
  ck_assert_int_eq(c3_model_backward(m, f.x, f.drec, f.dlog, NULL), CSAL3D_ERR_STATE);
  /* Feature: triplet means of the pooled feature. */
  ck_assert_int_eq(c3_ssl_feature_width(m, CSAL3D_FEATURE_DEFAULT), 64);
  float *feat, pooled[192], fh[64];
  ck_assert_int_eq(f.e->alloc(f.e, 64 * 4, "feat", (void **)&feat), CSAL3D_OK);
  ck_assert_int_eq(c3_ssl_feature(m, CSAL3D_FEATURE_DEFAULT, feat), CSAL3D_OK);
  ck_assert_int_eq(f.e->download(f.e, fh, feat, 64 * 4), CSAL3D_OK);
  ck_assert_int_eq(f.e->download(f.e, pooled, c3_model_pooled(m), 192 * 4), CSAL3D_OK);
  for (int i = 0; i < 64; i++)
    ck_assert(fabsf(fh[i] - (pooled[3 * i] + pooled[3 * i + 1] + pooled[3 * i + 2]) / 3) <
              1e-6f);
  f.e->free(f.e, feat);
  teardown(&f);
}
END_TEST

int main(void) {
  Suite *s = suite_create("model_grad");
  TCase *t = tcase_create("grad");
  tcase_set_timeout(t, 120);
  tcase_add_test(t, one_at_a_time_equals_all_at_once);
  tcase_add_test(t, recomputed_attention_equals_stored);
  tcase_add_test(t, finite_differences_default_options);
  tcase_add_test(t, finite_differences_monai_merge_first_token_two_channels);
  tcase_add_test(t, misuse_fails_with_clear_states);
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
