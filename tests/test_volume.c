/* Tests of lib/volume: views, rotations and their inverses, cube masks, the 9 SSL
 * observations, sliding windows and their accumulation. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "volume/views.h"
#include "volume/windows.h"

/* Random floats (with a few special bit patterns) so that "bit for bit" means something. */
static void fill_random(float *x, int64_t n, uint64_t seed) {
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_TEST, 0, 0, 0);
  for (int64_t i = 0; i < n; i++) {
    uint32_t u = c3_rng_u32(&r);
    memcpy(&x[i], &u, sizeof u);
    if (isnan(x[i])) x[i] = (float)i; /* keep comparisons simple */
  }
}

/* numpy semantics written out: rot90(m, k, axes=(H, W)) on one [H, W] plane. */
static float rot_ref(const float *in, int64_t H, int64_t W, int k, int64_t i, int64_t j) {
  switch (k) {
  case 0: return in[i * W + j];
  case 1: return in[j * W + (W - 1 - i)];
  case 2: return in[(H - 1 - i) * W + (W - 1 - j)];
  default: return in[(H - 1 - j) * W + i];
  }
}

START_TEST(rot90_matches_numpy_definition) {
  const int64_t D = 2, H = 3, W = 5;
  float in[30], out[30];
  for (int i = 0; i < 30; i++) in[i] = (float)i;
  const int64_t shape[3] = {D, H, W};
  for (int k = 0; k < 4; k++) {
    c3_axes_apply_f32(c3_axes_rot90(k), in, 1, shape, out);
    int64_t os[3];
    c3_axes_shape(c3_axes_rot90(k), shape, os);
    ck_assert_int_eq(os[0], D);
    ck_assert_int_eq(os[1], k % 2 ? W : H);
    ck_assert_int_eq(os[2], k % 2 ? H : W);
    for (int64_t d = 0; d < D; d++)
      for (int64_t i = 0; i < os[1]; i++)
        for (int64_t j = 0; j < os[2]; j++)
          ck_assert_float_eq(out[(d * os[1] + i) * os[2] + j],
                             rot_ref(in + d * H * W, H, W, k, i, j));
  }
  /* The spec's own sentence for k = 1: out[..., i, j] = in[..., j, W-1-i]. */
  c3_axes_apply_f32(c3_axes_rot90(1), in, 1, shape, out);
  ck_assert_float_eq(out[0 * 3 + 0], in[0 * 5 + 4]); /* i=0, j=0 -> in[0, 4] */
  ck_assert_float_eq(out[1 * 3 + 2], in[2 * 5 + 3]); /* i=1, j=2 -> in[2, 3] */
  /* rot by -1 is rot by 3; four quarter turns are the identity. */
  ck_assert(c3_axes_equal(c3_axes_rot90(-1), c3_axes_rot90(3)));
  c3_axes_map m = c3_axes_identity();
  for (int i = 0; i < 4; i++) m = c3_axes_then(m, c3_axes_rot90(1));
  ck_assert(c3_axes_equal(m, c3_axes_identity()));
  ck_assert(c3_axes_equal(c3_axes_then(c3_axes_rot90(1), c3_axes_rot90(1)), c3_axes_rot90(2)));
}
END_TEST

START_TEST(views_swap_axes) {
  const int64_t shape[3] = {2, 3, 4};
  float in[24], out[24];
  for (int i = 0; i < 24; i++) in[i] = (float)i;
  c3_axes_apply_f32(c3_axes_view(1), in, 1, shape, out); /* [3, 2, 4]: out[a,b,w] = in[b,a,w] */
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 2; b++)
      for (int w = 0; w < 4; w++)
        ck_assert_float_eq(out[(a * 2 + b) * 4 + w], in[(b * 3 + a) * 4 + w]);
  c3_axes_apply_f32(c3_axes_view(2), in, 1, shape, out); /* [4, 3, 2]: out[a,h,b] = in[b,h,a] */
  for (int a = 0; a < 4; a++)
    for (int h = 0; h < 3; h++)
      for (int b = 0; b < 2; b++)
        ck_assert_float_eq(out[(a * 3 + h) * 2 + b], in[(b * 3 + h) * 4 + a]);
  for (int v = 0; v < 3; v++)
    ck_assert(c3_axes_equal(c3_axes_inverse(c3_axes_view(v)), c3_axes_view(v)));
}
END_TEST

/* Every observation transform followed by its inverse gives the input back bit for bit,
 * on cubic and non-cubic shapes, with batch and channels; and the composed map equals
 * view then rotation applied one after the other. */
START_TEST(observation_inverse_is_exact) {
  const int64_t shapes[][5] = {{2, 1, 8, 8, 8}, {1, 2, 4, 6, 10}, {3, 1, 5, 3, 7},
                               {1, 1, 1, 1, 9}};
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const int64_t *sp = &shapes[si][2], lead = shapes[si][0] * shapes[si][1];
    const int64_t n = lead * sp[0] * sp[1] * sp[2];
    const size_t bytes = (size_t)n * sizeof(float);
    float *x = malloc(bytes), *y = malloc(bytes), *y2 = malloc(bytes), *z = malloc(bytes),
          *t = malloc(bytes);
    fill_random(x, n, 11 + si);
    for (int v = 0; v < 3; v++)
      for (int k = 0; k < 4; k++) {
        c3_axes_map obs = c3_axes_observation(v, k), view = c3_axes_view(v);
        int64_t os[3], vs[3], back[3];
        c3_axes_shape(obs, sp, os);
        c3_axes_shape(view, sp, vs);
        c3_axes_shape(c3_axes_inverse(obs), os, back);
        ck_assert(back[0] == sp[0] && back[1] == sp[1] && back[2] == sp[2]);
        c3_axes_apply_f32(obs, x, lead, sp, y);
        c3_axes_apply_f32(c3_axes_inverse(obs), y, lead, os, z);
        ck_assert_int_eq(memcmp(x, z, bytes), 0);
        /* view, then rot90: the same as the composed map. */
        c3_axes_apply_f32(view, x, lead, sp, t);
        c3_axes_apply_f32(c3_axes_rot90(k), t, lead, vs, y2);
        ck_assert_int_eq(memcmp(y, y2, bytes), 0);
        /* undo step by step: rot by -k, then the view again. */
        c3_axes_apply_f32(c3_axes_rot90(-k), y2, lead, os, t);
        c3_axes_apply_f32(view, t, lead, vs, z);
        ck_assert_int_eq(memcmp(x, z, bytes), 0);
      }
    free(x);
    free(y);
    free(y2);
    free(z);
    free(t);
  }
}
END_TEST

START_TEST(mask_ratio_and_cube_alignment_are_exact) {
  ck_assert_int_eq(c3_mask_hidden_count(64, 0.3), 19); /* 19.2 */
  ck_assert_int_eq(c3_mask_hidden_count(512, 0.3), 154); /* 153.6 */
  ck_assert_int_eq(c3_mask_hidden_count(10, 0.25), 3);  /* 2.5 rounds up */
  ck_assert_int_eq(c3_mask_hidden_count(10, 0.0), 0);
  ck_assert_int_eq(c3_mask_hidden_count(10, 1.0), 10);
  /* Non-multiple-of-16 shape: the last cube along W and H is partial. */
  const int64_t shape[3] = {32, 40, 20};
  int64_t cubes[3];
  c3_mask_grid(shape, 16, cubes);
  ck_assert_int_eq(cubes[0], 2);
  ck_assert_int_eq(cubes[1], 3);
  ck_assert_int_eq(cubes[2], 2);
  int64_t total = cubes[0] * cubes[1] * cubes[2], hidden = c3_mask_hidden_count(total, 0.3);
  uint8_t mask[12], mask2[12];
  ck_assert_int_eq(c3_mask_draw(7, 1, 2, 3, total, hidden, mask), CSAL3D_OK);
  ck_assert_int_eq(c3_mask_draw(7, 1, 2, 3, total, hidden, mask2), CSAL3D_OK);
  ck_assert_int_eq(memcmp(mask, mask2, sizeof mask), 0); /* deterministic */
  int64_t n = 0;
  for (int i = 0; i < total; i++) n += mask[i];
  ck_assert_int_eq(n, hidden);
  /* Two channels of ones: exactly the voxels of hidden cubes become 0, in both. */
  const int64_t vox = shape[0] * shape[1] * shape[2];
  float *x = malloc(sizeof(float) * 2 * vox);
  uint8_t *vm = malloc(vox);
  for (int64_t i = 0; i < 2 * vox; i++) x[i] = 1.0f;
  c3_mask_apply_f32(x, 2, shape, 16, mask);
  c3_mask_expand(shape, 16, mask, vm);
  int64_t zeros = 0, expect = 0;
  for (int64_t d = 0; d < shape[0]; d++)
    for (int64_t h = 0; h < shape[1]; h++)
      for (int64_t w = 0; w < shape[2]; w++) {
        int64_t i = (d * shape[1] + h) * shape[2] + w;
        int hid = mask[((d / 16) * cubes[1] + h / 16) * cubes[2] + w / 16];
        ck_assert_int_eq(vm[i], hid);
        ck_assert_float_eq(x[i], hid ? 0.0f : 1.0f);
        ck_assert_float_eq(x[vox + i], hid ? 0.0f : 1.0f);
        zeros += x[i] == 0.0f;
      }
  for (int64_t cd = 0; cd < cubes[0]; cd++)
    for (int64_t ch = 0; ch < cubes[1]; ch++)
      for (int64_t cw = 0; cw < cubes[2]; cw++)
        if (mask[(cd * cubes[1] + ch) * cubes[2] + cw])
          expect += (cd * 16 + 16 > shape[0] ? shape[0] - cd * 16 : 16) *
                    (ch * 16 + 16 > shape[1] ? shape[1] - ch * 16 : 16) *
                    (cw * 16 + 16 > shape[2] ? shape[2] - cw * 16 : 16);
  ck_assert_int_eq(zeros, expect);
  free(x);
  free(vm);
  ck_assert_int_eq(c3_mask_draw(7, 1, 2, 3, 5, 6, mask), CSAL3D_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(mask_draws_are_uniform) {
  /* Each of 8 cubes is hidden with probability 3/8 over many independent draws. */
  int counts[8] = {0};
  const int trials = 4000;
  for (int t = 0; t < trials; t++) {
    uint8_t m[8];
    ck_assert_int_eq(c3_mask_draw(99, (uint64_t)t, 0, 0, 8, 3, m), CSAL3D_OK);
    for (int i = 0; i < 8; i++) counts[i] += m[i];
  }
  for (int i = 0; i < 8; i++) {
    double p = counts[i] / (double)trials;
    ck_assert_msg(fabs(p - 0.375) < 0.03, "cube %d hidden %.3f of the time", i, p);
  }
}
END_TEST

START_TEST(ssl_draws_random_and_explicit) {
  const int64_t shape[3] = {64, 64, 64};
  c3_ssl_draws a, b, c;
  ck_assert_int_eq(c3_ssl_draws_random(&a, shape, 16, 0.3, 5, 10, 1), CSAL3D_OK);
  ck_assert_int_eq(c3_ssl_draws_random(&b, shape, 16, 0.3, 5, 10, 1), CSAL3D_OK);
  ck_assert_int_eq(c3_ssl_draws_random(&c, shape, 16, 0.3, 5, 10, 2), CSAL3D_OK);
  int same_as_c = 1, ks_seen = 0;
  for (int o = 0; o < C3_SSL_OBSERVATIONS; o++) {
    ck_assert_int_eq(a.view[o], o / 3);
    ck_assert_int_eq(a.k[o], b.k[o]);
    ck_assert(a.k[o] >= 0 && a.k[o] <= 3);
    ks_seen |= 1 << a.k[o];
    ck_assert_int_eq(a.cubes_total[o], 64);
    ck_assert_int_eq(memcmp(a.masks[o], b.masks[o], 64), 0);
    int n = 0;
    for (int i = 0; i < 64; i++) n += a.masks[o][i];
    ck_assert_int_eq(n, 19);
    if (a.k[o] != c.k[o] || memcmp(a.masks[o], c.masks[o], 64)) same_as_c = 0;
  }
  ck_assert(!same_as_c); /* another crop, other draws */
  /* Masks differ between observations of one crop (independent per observation). */
  ck_assert(memcmp(a.masks[0], a.masks[1], 64) != 0);
  (void)ks_seen;
  /* Observation then back: the unmasked target comes back exactly; the masked voxels
   * are zero in the observation's frame. */
  const int64_t small[3] = {32, 16, 48};
  c3_ssl_draws d;
  ck_assert_int_eq(c3_ssl_draws_random(&d, small, 16, 0.5, 3, 0, 0), CSAL3D_OK);
  const int64_t vox = 32 * 16 * 48;
  float *x = malloc(sizeof(float) * 2 * vox), *obs = malloc(sizeof(float) * 2 * vox),
        *tgt = malloc(sizeof(float) * 2 * vox), *back = malloc(sizeof(float) * 2 * vox);
  for (int64_t i = 0; i < 2 * vox; i++) x[i] = 1.0f + (float)i;
  for (int o = 0; o < C3_SSL_OBSERVATIONS; o++) {
    int64_t os[3], zeros = 0;
    c3_ssl_observation_shape(&d, o, os);
    c3_ssl_observation_f32(&d, o, x, 2, obs, tgt);
    c3_axes_apply_f32(c3_axes_inverse(c3_axes_observation(d.view[o], d.k[o])), tgt, 2, os, back);
    ck_assert_int_eq(memcmp(back, x, sizeof(float) * 2 * vox), 0);
    ck_assert_int_eq(os[0] * os[1] * os[2], vox);
    for (int64_t i = 0; i < 2 * vox; i++) zeros += obs[i] == 0.0f;
    int64_t hidden = 0;
    for (int64_t i = 0; i < d.cubes_total[o]; i++) hidden += d.masks[o][i];
    ck_assert_int_eq(hidden, c3_mask_hidden_count(d.cubes_total[o], 0.5));
    ck_assert_int_eq(zeros, 2 * hidden * 16 * 16 * 16); /* all cubes whole here */
  }
  /* Explicit draws: set k and masks by hand (as a reference file would). */
  c3_ssl_draws e;
  ck_assert_int_eq(c3_ssl_draws_init(&e, small, 16), CSAL3D_OK);
  for (int o = 0; o < C3_SSL_OBSERVATIONS; o++) e.k[o] = o % 4;
  ck_assert_int_eq(c3_ssl_draws_reframe(&e), CSAL3D_OK);
  e.masks[4][0] = 1; /* observation 4: view 1, k = 0 -> [16, 32, 48]; cube (0,0,0) */
  c3_ssl_observation_f32(&e, 4, x, 1, obs, NULL);
  ck_assert_float_eq(obs[0], 0.0f);
  ck_assert_float_eq(obs[48], 0.0f);          /* (0, 1, 0) is in cube (0,0,0) */
  ck_assert_float_eq(obs[15 * 32 * 48 + 15 * 48 + 15], 0.0f); /* (15, 15, 15) too */
  ck_assert_float_eq(obs[16], x[16]);             /* (0, 0, 16): cube (0,0,1), visible */
  e.k[0] = 4;
  ck_assert_int_eq(c3_ssl_draws_reframe(&e), CSAL3D_ERR_INVALID_ARGUMENT);
  free(x), free(obs), free(tgt), free(back);
  c3_ssl_draws_free(&a), c3_ssl_draws_free(&b), c3_ssl_draws_free(&c);
  c3_ssl_draws_free(&d), c3_ssl_draws_free(&e);
}
END_TEST

START_TEST(rotation_draws_are_uniform) {
  int counts[4] = {0};
  const int crops = 2000;
  for (int t = 0; t < crops; t++) {
    c3_rng r;
    c3_rng_init(&r, 1, C3_RNG_VIEW, (uint64_t)t, 0, 0);
    for (int o = 0; o < 9; o++) counts[c3_rng_below(&r, 4)]++;
  }
  for (int k = 0; k < 4; k++)
    ck_assert(fabs(counts[k] / (9.0 * crops) - 0.25) < 0.02);
}
END_TEST

/* ---- windows ---- */

static void starts_are(int64_t n, int64_t w, int64_t s, const int64_t *want, int64_t count) {
  int64_t got[64], c;
  ck_assert_int_eq(c3_window_starts(n, w, s, got, &c), CSAL3D_OK);
  ck_assert_int_eq(c, count);
  for (int64_t i = 0; i < c; i++) ck_assert_int_eq(got[i], want[i]);
}

START_TEST(window_starts_hand_computed) {
  starts_are(80, 64, 32, (const int64_t[]){0, 16}, 2);
  starts_are(72, 64, 32, (const int64_t[]){0, 8}, 2);
  starts_are(64, 64, 32, (const int64_t[]){0}, 1);
  starts_are(128, 64, 32, (const int64_t[]){0, 32, 64}, 3);
  starts_are(200, 128, 64, (const int64_t[]){0, 64, 72}, 3);
  starts_are(256, 128, 64, (const int64_t[]){0, 64, 128}, 3);
  starts_are(50, 64, 32, (const int64_t[]){0}, 1); /* padded to 64 */
  starts_are(10, 3, 3, (const int64_t[]){0, 3, 6, 7}, 4);
  int64_t c;
  ck_assert_int_eq(c3_window_starts(10, 3, 4, NULL, &c), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c3_window_starts(0, 3, 1, NULL, &c), CSAL3D_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(window_grid_row_major) {
  c3_window_grid g;
  const int64_t shape[3] = {80, 72, 64}, win[3] = {64, 64, 64}, str[3] = {32, 32, 32};
  ck_assert_int_eq(c3_window_grid_init(&g, shape, win, str), CSAL3D_OK);
  ck_assert_int_eq(g.total, 4);
  const int64_t want[4][3] = {{0, 0, 0}, {0, 8, 0}, {16, 0, 0}, {16, 8, 0}};
  for (int i = 0; i < 4; i++) {
    int64_t o[3];
    c3_window_origin(&g, i, o);
    for (int a = 0; a < 3; a++) ck_assert_int_eq(o[a], want[i][a]);
  }
  c3_window_grid_free(&g);
}
END_TEST

START_TEST(window_accumulation_hand_computed) {
  /* Along W: n = 5, window 3, stride 2 -> starts 0, 2. Window maps are constant 1 and 3:
   * voxel 2 is covered twice -> mean 2. */
  c3_window_grid g;
  const int64_t shape[3] = {1, 1, 5}, win[3] = {1, 1, 3}, str[3] = {1, 1, 2};
  ck_assert_int_eq(c3_window_grid_init(&g, shape, win, str), CSAL3D_OK);
  c3_window_accum a;
  ck_assert_int_eq(c3_window_accum_init(&a, &g), CSAL3D_OK);
  const float m1[3] = {1, 1, 1}, m2[3] = {3, 3, 3};
  int64_t o[3];
  c3_window_origin(&g, 0, o);
  c3_window_accum_add(&a, o, m1);
  c3_window_origin(&g, 1, o);
  c3_window_accum_add(&a, o, m2);
  float out[5];
  c3_window_accum_mean(&a, out);
  const float want[5] = {1, 1, 2, 3, 3};
  for (int i = 0; i < 5; i++) ck_assert_float_eq(out[i], want[i]);
  c3_window_accum_free(&a);
  c3_window_grid_free(&g);

  /* A 2 x 3 x 2 volume under 2 x 2 x 2 windows with stride 1 along H only: H starts 0, 1.
   * Window maps are filled with their index + 1 at every voxel; the middle H row is
   * covered by both (mean 1.5). The volume is padded along nothing here. */
  const int64_t s2[3] = {2, 3, 2}, w2[3] = {2, 2, 2}, st2[3] = {2, 1, 2};
  ck_assert_int_eq(c3_window_grid_init(&g, s2, w2, st2), CSAL3D_OK);
  ck_assert_int_eq(g.total, 2);
  ck_assert_int_eq(c3_window_accum_init(&a, &g), CSAL3D_OK);
  for (int i = 0; i < 2; i++) {
    float m[8];
    for (int j = 0; j < 8; j++) m[j] = (float)(i + 1) * (j + 1);
    c3_window_origin(&g, i, o);
    c3_window_accum_add(&a, o, m);
  }
  float out2[12];
  c3_window_accum_mean(&a, out2);
  /* voxel (d, h, w): window 0 holds (d*4 + h*2 + w + 1) for h in {0,1};
   * window 1 holds 2 * (d*4 + (h-1)*2 + w + 1) for h in {1,2}. */
  for (int d = 0; d < 2; d++)
    for (int h = 0; h < 3; h++)
      for (int w = 0; w < 2; w++) {
        double s = 0;
        int n = 0;
        if (h <= 1) s += d * 4 + h * 2 + w + 1, n++;
        if (h >= 1) s += 2.0 * (d * 4 + (h - 1) * 2 + w + 1), n++;
        ck_assert_float_eq_tol(out2[(d * 3 + h) * 2 + w], s / n, 1e-6);
      }
  c3_window_accum_free(&a);
  c3_window_grid_free(&g);

  /* Padding: a 1 x 1 x 2 volume under a window of 3: one window over the padded axis;
   * the mean is read back on the 2 real voxels only. */
  const int64_t s3[3] = {1, 1, 2}, w3[3] = {1, 1, 3}, st3[3] = {1, 1, 1};
  ck_assert_int_eq(c3_window_grid_init(&g, s3, w3, st3), CSAL3D_OK);
  ck_assert_int_eq(g.total, 1);
  ck_assert_int_eq(g.padded[2], 3);
  ck_assert_int_eq(c3_window_accum_init(&a, &g), CSAL3D_OK);
  const float m3[3] = {4, 5, 6};
  c3_window_origin(&g, 0, o);
  c3_window_accum_add(&a, o, m3);
  float out3[2];
  c3_window_accum_mean(&a, out3);
  ck_assert_float_eq(out3[0], 4);
  ck_assert_float_eq(out3[1], 5);
  c3_window_accum_free(&a);
  c3_window_grid_free(&g);
}
END_TEST

START_TEST(box_extract_pads_outside) {
  /* data 1 x 2 x 2 x 3 = 0..11; box from (-1, 1, 1) of size (3, 2, 3), pad -1. */
  float data[12], out[18];
  for (int i = 0; i < 12; i++) data[i] = (float)i;
  const int64_t shape[3] = {2, 2, 3}, origin[3] = {-1, 1, 1}, size[3] = {3, 2, 3};
  c3_box_extract_f32(data, 1, shape, origin, size, -1.0f, out);
  for (int d = 0; d < 3; d++)
    for (int h = 0; h < 2; h++)
      for (int w = 0; w < 3; w++) {
        int sd = d - 1, sh = h + 1, sw = w + 1;
        float want = (sd >= 0 && sd < 2 && sh < 2 && sw < 3) ? data[(sd * 2 + sh) * 3 + sw] : -1.0f;
        ck_assert_float_eq(out[(d * 2 + h) * 3 + w], want);
      }
  /* Entirely outside: all pad. */
  const int64_t far[3] = {0, 0, 10}, one[3] = {1, 1, 2};
  c3_box_extract_f32(data, 1, shape, far, one, 7.0f, out);
  ck_assert_float_eq(out[0], 7.0f);
  ck_assert_float_eq(out[1], 7.0f);
}
END_TEST


/* ---- replaying the reference draws (skips where ../shared/reference is absent) ---- */

#include <jansson.h>
#include <stdio.h>

static const char *reference_dir(void) {
  const char *d = getenv("CSAL3D_REFERENCE_DIR");
  return d && *d ? d : "../shared/reference";
}

/* Reads tensor `name` (int64) of a safetensors file into out (capacity n). Minimal: the
 * library's own safetensors reader lives elsewhere. Returns elements read, -1 if absent. */
static long read_i64_tensor(const char *path, const char *name, int64_t *out, long n) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  uint64_t hl;
  long got = -1;
  if (fread(&hl, 8, 1, f) == 1 && hl < (1u << 26)) {
    char *hdr = malloc(hl + 1);
    if (fread(hdr, 1, hl, f) == hl) {
      hdr[hl] = 0;
      json_t *root = json_loads(hdr, 0, NULL), *e = root ? json_object_get(root, name) : NULL;
      json_t *offs = e ? json_object_get(e, "data_offsets") : NULL;
      if (offs && !strcmp(json_string_value(json_object_get(e, "dtype")), "I64")) {
        long a = (long)json_integer_value(json_array_get(offs, 0));
        long b = (long)json_integer_value(json_array_get(offs, 1));
        long cnt = (b - a) / 8;
        if (cnt <= n && fseek(f, (long)(8 + hl) + a, SEEK_SET) == 0 &&
            fread(out, 8, (size_t)cnt, f) == (size_t)cnt)
          got = cnt;
      }
      json_decref(root);
    }
    free(hdr);
  }
  fclose(f);
  return got;
}

START_TEST(reference_draws_replay) {
  char path[1024];
  snprintf(path, sizeof path, "%s/ssl_loss_tiny.safetensors", reference_dir());
  int64_t views[9], rots[9], masks[9 * 64];
  if (read_i64_tensor(path, "views", views, 9) != 9) {
    printf("SKIP: %s not found (set CSAL3D_REFERENCE_DIR)\n", path);
    return;
  }
  ck_assert_int_eq(read_i64_tensor(path, "rotations", rots, 9), 9);
  ck_assert_int_eq(read_i64_tensor(path, "masks", masks, 9 * 64), 9 * 64);
  const int64_t shape[3] = {64, 64, 64};
  c3_ssl_draws d;
  ck_assert_int_eq(c3_ssl_draws_init(&d, shape, C3_MASK_CUBE), CSAL3D_OK);
  for (int o = 0; o < 9; o++) {
    ck_assert_int_eq(views[o], d.view[o]); /* the reference numbers observations as we do */
    d.k[o] = (int)rots[o];
  }
  ck_assert_int_eq(c3_ssl_draws_reframe(&d), CSAL3D_OK);
  for (int o = 0; o < 9; o++) {
    ck_assert_int_eq(d.cubes_total[o], 64);
    int64_t hidden = 0;
    for (int i = 0; i < 64; i++) {
      d.masks[o][i] = (uint8_t)masks[o * 64 + i];
      hidden += masks[o * 64 + i];
    }
    /* Our rounding of the mask ratio agrees with the reference: round(0.3 * 64) = 19. */
    ck_assert_int_eq(hidden, c3_mask_hidden_count(64, 0.3));
  }
  c3_ssl_draws_free(&d);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("volume");
  TCase *t = tcase_create("views");
  tcase_add_test(t, rot90_matches_numpy_definition);
  tcase_add_test(t, views_swap_axes);
  tcase_add_test(t, observation_inverse_is_exact);
  tcase_add_test(t, mask_ratio_and_cube_alignment_are_exact);
  tcase_add_test(t, mask_draws_are_uniform);
  tcase_add_test(t, ssl_draws_random_and_explicit);
  tcase_add_test(t, rotation_draws_are_uniform);
  tcase_add_test(t, reference_draws_replay);
  suite_add_tcase(s, t);
  TCase *w = tcase_create("windows");
  tcase_add_test(w, window_starts_hand_computed);
  tcase_add_test(w, window_grid_row_major);
  tcase_add_test(w, window_accumulation_hand_computed);
  tcase_add_test(w, box_extract_pads_outside);
  suite_add_tcase(s, w);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
