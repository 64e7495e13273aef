/* The SSL step's workspace slots (lib/model/ssl.c): the observations' training
 * forwards kept live until their backwards (9 slots), partly (3), or recomputed (1, the
 * fallback of a tiny budget or of an allocation failure) give the same loss and the
 * same gradients to the bit, and training steps the same parameters. Small shapes:
 * embed_dim 12, a 32 x 32 x 64 crop (its observations have different shapes) and a
 * 32^3 crop for the steps. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/optim.h"
#include "model/ssl.h"
#include "test_omp_env.h"

typedef struct fix {
  c3_engine *e;
  c3_model *m;
  c3_ssl_work w;
  c3_ssl_draws d;
  c3_ssl_loss_config lc;
  float *crop;
  size_t per_slot; /* the largest observation's training workspace */
} fix;

static const int64_t oblong[3] = {32, 32, 64}, cube[3] = {32, 32, 32};

static void setup(fix *f, const int64_t shape[3]) {
  memset(f, 0, sizeof *f);
  ck_assert_int_eq(c3_engine_open(CSAL3D_DEVICE_CPU, 0, &f->e), CSAL3D_OK);
  c3_model_config cfg;
  c3_model_config_default(&cfg, 12, 1);
  ck_assert_int_eq(c3_model_create(f->e, &cfg, &f->m), CSAL3D_OK);
  ck_assert_int_eq(c3_model_init(f->m, 5), CSAL3D_OK);
  c3_ssl_work_init(&f->w, f->m);
  c3_ssl_loss_config_default(&f->lc);
  size_t n = (size_t)(shape[0] * shape[1] * shape[2]);
  f->crop = malloc(n * sizeof(float));
  c3_rng r;
  c3_rng_init(&r, 4, C3_RNG_TEST, 8, 0, 0);
  for (size_t i = 0; i < n; i++) f->crop[i] = (float)c3_rng_uniform(&r);
  ck_assert_int_eq(c3_ssl_draws_random(&f->d, shape, C3_MASK_CUBE, 0.3, 3, 0, 0), CSAL3D_OK);
  for (int o = 0; o < C3_SSL_OBSERVATIONS; o++) {
    int64_t os[3];
    size_t b;
    c3_ssl_observation_shape(&f->d, o, os);
    ck_assert_int_eq(c3_model_slot_bytes(f->m, 1, os, 1, &b), CSAL3D_OK);
    if (b > f->per_slot) f->per_slot = b;
  }
}

static void teardown(fix *f) {
  c3_ssl_draws_free(&f->d);
  c3_ssl_work_free(&f->w);
  c3_model_free(f->m);
  c3_engine_close(f->e);
  free(f->crop);
}

/* One crop's loss and gradients with the given slot budget; the gradients into g. */
static c3_ssl_terms crop_step(fix *f, size_t budget, float *g) {
  c3_ssl_terms t;
  f->w.slot_budget = budget;
  ck_assert_int_eq(c3_model_zero_grad(f->m), CSAL3D_OK);
  ck_assert_msg(c3_ssl_crop_loss(&f->w, &f->lc, f->crop, &f->d, 0.5, 1, &t) == CSAL3D_OK,
                "%s", csal3d_last_error());
  ck_assert_int_eq(c3_model_get_grads(f->m, g), CSAL3D_OK);
  ck_assert_int_eq(f->m->slot, 0); /* slot 0 is current again for other users */
  return t;
}

static void assert_same(const fix *f, c3_ssl_terms a, c3_ssl_terms b, const float *ga,
                        const float *gb, const char *what) {
  ck_assert_msg(a.inp == b.inp && a.rot == b.rot && a.cons == b.cons && a.total == b.total,
                "%s: loss %.17g (inp %.17g rot %.17g cons %.17g) vs %.17g", what, a.total,
                a.inp, a.rot, a.cons, b.total);
  size_t differ = 0;
  for (size_t i = 0; i < f->m->total; i++) differ += memcmp(&ga[i], &gb[i], 4) != 0;
  ck_assert_msg(differ == 0, "%s: %zu of %zu gradients differ", what, differ, f->m->total);
}

START_TEST(slots_and_recompute_give_the_same_loss_and_gradients) {
  fix f;
  setup(&f, oblong);
  size_t np = f.m->total;
  float *g1 = malloc(np * 4), *g = malloc(np * 4);
  c3_ssl_terms t1 = crop_step(&f, 1, g1); /* a tiny budget: one slot, recomputed */
  ck_assert_int_eq(f.w.slots, 1);
  size_t one = c3_model_workspace_bytes(f.m);
  const struct {
    size_t budget;
    int slots;
  } cases[] = {{3 * f.per_slot + 1, 3}, {SIZE_MAX, 9}, {SIZE_MAX, 9}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    c3_ssl_terms t = crop_step(&f, cases[c].budget, g); /* the third on the kept slots */
    ck_assert_int_eq(f.w.slots, cases[c].slots);
    char what[64];
    snprintf(what, sizeof what, "%d slots, case %zu", cases[c].slots, c);
    assert_same(&f, t, t1, g, g1, what);
    size_t bytes = c3_model_workspace_bytes(f.m);
    printf("%d slots: workspaces %.1f MiB (%.1f MiB per training slot)\n", cases[c].slots,
           (double)bytes / (1 << 20), (double)f.per_slot / (1 << 20));
    ck_assert_uint_ge(bytes, one + (size_t)(cases[c].slots - 1) * f.per_slot);
  }
  /* A new decision for 9 slots whose first allocation fails (a slot's): the same step
   * with one slot, the other slots freed. */
  c3_alloc_fail_after(1);
  c3_ssl_terms t = crop_step(&f, SIZE_MAX - 1, g);
  c3_alloc_fail_after(0);
  ck_assert_int_eq(f.w.slots, 1);
  assert_same(&f, t, t1, g, g1, "after an allocation failure");
  ck_assert_uint_eq(c3_model_workspace_bytes(f.m), one);
  free(g1);
  free(g);
  teardown(&f);
}
END_TEST

/* Two training steps of a cubic crop (draws from the seed), AdamW included. */
START_TEST(training_steps_with_slots_equal_the_recompute_steps) {
  fix f[2];
  c3_optim *o[2];
  float *p[2];
  for (int k = 0; k < 2; k++) {
    setup(&f[k], cube);
    f[k].w.slot_budget = k ? SIZE_MAX : 1;
    c3_optim_config oc;
    c3_optim_config_default(&oc, 10);
    oc.warmup_steps = 0;
    ck_assert_int_eq(c3_optim_create(f[k].m, &oc, &o[k]), CSAL3D_OK);
    p[k] = malloc(f[k].m->total * 4);
  }
  for (int step = 0; step < 2; step++) {
    c3_ssl_terms t[2];
    for (int k = 0; k < 2; k++)
      ck_assert_msg(c3_ssl_train_step(&f[k].w, o[k], &f[k].lc, 7, f[k].crop, 1, cube, NULL,
                                      &t[k]) == CSAL3D_OK,
                    "%s", csal3d_last_error());
    ck_assert_int_eq(f[0].w.slots, 1);
    ck_assert_int_eq(f[1].w.slots, 9);
    ck_assert(t[0].total == t[1].total && t[0].cons == t[1].cons);
    for (int k = 0; k < 2; k++) ck_assert_int_eq(c3_model_get_params(f[k].m, p[k]), CSAL3D_OK);
    ck_assert_msg(memcmp(p[0], p[1], f[0].m->total * 4) == 0, "step %d: parameters differ",
                  step);
  }
  for (int k = 0; k < 2; k++) {
    c3_optim_free(o[k]);
    free(p[k]);
    teardown(&f[k]);
  }
}
END_TEST

int main(int argc, char **argv) {
  (void)argc;
  c3_test_passive_openmp(argv);
  Suite *s = suite_create("ssl_slots");
  TCase *t = tcase_create("slots");
  tcase_set_timeout(t, 600);
  tcase_add_test(t, slots_and_recompute_give_the_same_loss_and_gradients);
  tcase_add_test(t, training_steps_with_slots_equal_the_recompute_steps);
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
