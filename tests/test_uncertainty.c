/* The uncertainty estimator without reference files: identical reconstructions give
 * zero uncertainty; a known variance end to end (every cube hidden: each observation
 * is all zeros, so the 9 reconstructions are one field seen through 9 transforms,
 * whose aligned variance is computed here independently); non-cubic volumes and
 * volumes smaller than a window; determinism and order independence; foreground
 * modes; the feature of the same sweep; maps saved on the input's grid; cancellation;
 * options. Small shapes (embed_dim 12, 32^3 windows). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "csal3d/csal3d.h"
#include "model/model.h"
#include "model/ssl_internal.h"
#include "test_omp_env.h"
#include "uncertainty/uncertainty.h"
#include "volume/views.h"
#include "volume/windows.h"

static csal3d_context *make_ctx(uint64_t seed, csal3d_progress_fn progress, void *user) {
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.seed = seed;
  co.progress = progress;
  co.progress_user_data = user;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  return ctx;
}

static csal3d_ssl_model *make_model(csal3d_context *ctx, int channels, double mask_ratio) {
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  o.embed_dim = 12;
  o.in_channels = channels;
  o.crop_size[0] = o.crop_size[1] = o.crop_size[2] = 32;
  o.mask_ratio = mask_ratio;
  csal3d_ssl_model *h;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &o, &h), CSAL3D_OK);
  return h;
}

static csal3d_volume *make_volume(int channels, int64_t d, int64_t h, int64_t w,
                                  uint64_t seed) {
  int64_t dims[3] = {d, h, w};
  size_t n = (size_t)(channels * d * h * w);
  float *x = malloc(n * 4);
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_TEST, 8, 0, 0);
  for (size_t i = 0; i < n; i++) x[i] = (float)c3_rng_uniform(&r);
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_create(channels, dims, x, NULL, &v), CSAL3D_OK);
  free(x);
  return v;
}

/* The windows of most tests: 32 x 32 x 64. At 32^3 the deepest map has one voxel,
 * which the decoder's first instance norm maps to 0 whatever the input, so every
 * reconstruction would be the same field; two voxels along W keep them input
 * dependent at the least cost. */
static const int64_t W0[3] = {32, 32, 64};

static csal3d_uncertainty *make_unc(csal3d_ssl_model *h, int64_t stride,
                                    csal3d_feature_mode feature) {
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  for (int a = 0; a < 3; a++) uo.window[a] = W0[a], uo.stride[a] = stride;
  uo.feature = feature;
  csal3d_uncertainty *u;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_OK);
  return u;
}

static float *map_of(csal3d_uncertainty *u, int64_t *vox) {
  csal3d_volume *mv;
  ck_assert_int_eq(csal3d_uncertainty_map(u, &mv), CSAL3D_OK);
  int64_t sh[4];
  csal3d_volume_shape(mv, sh);
  ck_assert_int_eq(sh[0], 1);
  *vox = sh[1] * sh[2] * sh[3];
  float *m = malloc((size_t)*vox * 4);
  ck_assert_int_eq(csal3d_volume_copy_data(mv, m, (size_t)*vox, NULL), CSAL3D_OK);
  csal3d_volume_free(mv);
  return m;
}

START_TEST(identical_reconstructions_give_zero) {
  csal3d_context *ctx = make_ctx(1, NULL, NULL);
  csal3d_ssl_model *h = make_model(ctx, 1, 0.3);
  /* the output layer's weights zeroed: every reconstruction is its bias, 0.7 */
  c3_model *m = h->m;
  int wi = c3_model_find_param(m, "conv.20.weight"), bi = c3_model_find_param(m, "conv.20.bias");
  ck_assert(wi >= 0 && bi >= 0);
  float *p = malloc(m->total * 4);
  c3_model_get_params(m, p);
  memset(p + m->params[wi].offset, 0, m->params[wi].numel * 4);
  p[m->params[bi].offset] = 0.7f;
  c3_model_set_params(m, p);
  free(p);
  csal3d_volume *v = make_volume(1, 40, 20, 36, 2);
  csal3d_uncertainty *u = make_unc(h, 16, CSAL3D_FEATURE_NONE);
  double score = -1;
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, NULL, 0, &score, NULL, 0), CSAL3D_OK);
  ck_assert(score == 0.0);
  int64_t vox;
  float *map = map_of(u, &vox);
  ck_assert_int_eq(vox, 40 * 20 * 36);
  for (int64_t i = 0; i < vox; i++) ck_assert(map[i] == 0.0f);
  free(map);
  csal3d_uncertainty_free(u);
  csal3d_volume_free(v);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}
END_TEST

/* Every cube hidden: every observation is zeros, its reconstruction F_s depends only on
 * its shape s, and the window's map is the variance of the 9 aligned copies of F. */
static void known_variance(int channels, const int64_t win[3], const int64_t vshape[3]) {
  csal3d_context *ctx = make_ctx(7, NULL, NULL);
  csal3d_ssl_model *h = make_model(ctx, channels, 1.0);
  c3_model *m = h->m;
  c3_engine *e = m->e;
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  for (int a = 0; a < 3; a++) uo.window[a] = win[a], uo.stride[a] = win[a] / 2;
  uo.feature = CSAL3D_FEATURE_NONE;
  csal3d_uncertainty *u;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_OK);
  csal3d_volume *v = make_volume(channels, vshape[0], vshape[1], vshape[2], 3);
  double score;
  const uint64_t vid = 5;
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, NULL, vid, &score, NULL, 0), CSAL3D_OK);
  int64_t vox;
  float *map = map_of(u, &vox);

  /* the expectation, in double */
  const int64_t wv = win[0] * win[1] * win[2];
  const size_t nw = (size_t)(channels * wv);
  float *zeros = calloc(nw, 4), *rec = malloc(nw * 4);
  double *al = malloc(9 * nw * sizeof(double)), *wmap = malloc((size_t)wv * sizeof(double));
  float *dz;
  ck_assert_int_eq(e->alloc(e, nw * 4, "zeros", (void **)&dz), CSAL3D_OK);
  ck_assert_int_eq(e->upload(e, dz, zeros, nw * 4), CSAL3D_OK);
  c3_window_grid g;
  ck_assert_int_eq(c3_window_grid_init(&g, vshape, win, uo.stride), CSAL3D_OK);
  const int64_t *pd = g.padded;
  double *sum = calloc((size_t)(pd[0] * pd[1] * pd[2]), sizeof(double));
  double *cnt = calloc((size_t)(pd[0] * pd[1] * pd[2]), sizeof(double));
  float *back = malloc(nw * 4);
  for (int64_t j = 0; j < g.total; j++) {
    c3_ssl_draws d;
    ck_assert_int_eq(c3_ssl_draws_random(&d, win, C3_MASK_CUBE, 1.0, 7, vid, (uint64_t)j),
                     CSAL3D_OK);
    for (int o = 0; o < 9; o++) {
      int64_t os[3];
      c3_ssl_observation_shape(&d, o, os);
      ck_assert_int_eq(c3_model_forward(m, dz, 1, os, 0), CSAL3D_OK);
      ck_assert_int_eq(e->download(e, rec, c3_model_reconstruction(m), nw * 4), CSAL3D_OK);
      c3_axes_apply_f32(c3_axes_inverse(c3_axes_observation(d.view[o], d.k[o])), rec,
                        channels, os, back);
      for (size_t i = 0; i < nw; i++) al[o * nw + i] = back[i];
    }
    c3_ssl_draws_free(&d);
    for (int64_t i = 0; i < wv; i++) {
      double acc = 0;
      for (int c = 0; c < channels; c++) {
        double mu = 0, var = 0;
        for (int o = 0; o < 9; o++) mu += al[o * nw + (size_t)(c * wv + i)] / 9;
        for (int o = 0; o < 9; o++) {
          double dl = al[o * nw + (size_t)(c * wv + i)] - mu;
          var += dl * dl / 9;
        }
        acc += var / channels;
      }
      wmap[i] = acc;
    }
    int64_t org[3];
    c3_window_origin(&g, j, org);
    for (int64_t a = 0; a < win[0]; a++)
      for (int64_t b = 0; b < win[1]; b++)
        for (int64_t c = 0; c < win[2]; c++) {
          size_t q = (size_t)(((org[0] + a) * pd[1] + org[1] + b) * pd[2] + org[2] + c);
          sum[q] += wmap[(a * win[1] + b) * win[2] + c];
          cnt[q] += 1;
        }
  }
  double num = 0, den = 0, ssum = 0;
  for (int64_t a = 0; a < vshape[0]; a++)
    for (int64_t b = 0; b < vshape[1]; b++)
      for (int64_t c = 0; c < vshape[2]; c++) {
        size_t q = (size_t)((a * pd[1] + b) * pd[2] + c);
        double want = sum[q] / cnt[q];
        double got = map[(a * vshape[1] + b) * vshape[2] + c];
        num += (got - want) * (got - want);
        den += want * want;
        ssum += want;
      }
  double want_score = ssum / (double)vox, merr = sqrt(num / den);
  printf("known variance (%d channel(s), window %lldx%lldx%lld, volume %lldx%lldx%lld, %lld "
         "windows): map relative error %.2e, score %.8g (expected %.8g)\n",
         channels, (long long)win[0], (long long)win[1], (long long)win[2],
         (long long)vshape[0], (long long)vshape[1], (long long)vshape[2], (long long)g.total,
         merr, score, want_score);
  ck_assert(den > 0);
  ck_assert(merr < 1e-5);
  ck_assert_double_eq_tol(score, want_score, 1e-5 * want_score);
  c3_window_grid_free(&g);
  e->free(e, dz);
  free(zeros);
  free(rec);
  free(al);
  free(wmap);
  free(sum);
  free(cnt);
  free(back);
  free(map);
  csal3d_uncertainty_free(u);
  csal3d_volume_free(v);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}

START_TEST(known_variance_one_channel_cubic_window) {
  int64_t win[3] = {64, 64, 64}, vs[3] = {70, 50, 64};
  known_variance(1, win, vs);
}
END_TEST

START_TEST(known_variance_two_channels_non_cubic_window) {
  /* observations of different shapes per view and rotation; a volume smaller than
   * the window along two axes */
  int64_t win[3] = {32, 64, 32}, vs[3] = {30, 50, 45};
  known_variance(2, win, vs);
}
END_TEST

START_TEST(non_cubic_and_small_volumes) {
  csal3d_context *ctx = make_ctx(3, NULL, NULL);
  csal3d_ssl_model *h = make_model(ctx, 1, 0.3);
  csal3d_uncertainty *u = make_unc(h, 32, CSAL3D_FEATURE_DEFAULT);
  const int64_t shapes[3][3] = {{10, 12, 9}, {1, 40, 20}, {45, 20, 33}};
  for (int s = 0; s < 3; s++) {
    csal3d_volume *v = make_volume(1, shapes[s][0], shapes[s][1], shapes[s][2], 10 + s);
    double score;
    float feat[64];
    ck_assert_msg(csal3d_uncertainty_score(u, v, NULL, (uint64_t)s, &score, feat, 64) ==
                      CSAL3D_OK,
                  "%s", csal3d_last_error());
    int64_t vox;
    float *map = map_of(u, &vox);
    ck_assert_int_eq(vox, shapes[s][0] * shapes[s][1] * shapes[s][2]);
    double mean = 0;
    for (int64_t i = 0; i < vox; i++) {
      ck_assert(isfinite(map[i]) && map[i] >= 0);
      mean += map[i];
    }
    mean /= (double)vox;
    printf("volume %lldx%lldx%lld: score %.6g\n", (long long)shapes[s][0],
           (long long)shapes[s][1], (long long)shapes[s][2], score);
    ck_assert(score > 0 && isfinite(score));
    ck_assert_double_eq_tol(score, mean, 1e-6 * mean);
    for (int i = 0; i < 64; i++) ck_assert(isfinite(feat[i]));
    /* the map keeps the volume's grid */
    csal3d_volume *mv;
    csal3d_uncertainty_map(u, &mv);
    double a1[16], a2[16];
    csal3d_volume_affine(v, a1);
    csal3d_volume_affine(mv, a2);
    ck_assert_int_eq(memcmp(a1, a2, sizeof a1), 0);
    csal3d_volume_free(mv);
    free(map);
    csal3d_volume_free(v);
  }
  csal3d_uncertainty_free(u);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(deterministic_and_keyed_by_volume) {
  csal3d_context *ctx = make_ctx(4, NULL, NULL);
  csal3d_ssl_model *h = make_model(ctx, 1, 0.3);
  csal3d_uncertainty *u = make_unc(h, 32, CSAL3D_FEATURE_NONE);
  csal3d_volume *a = make_volume(1, 33, 32, 20, 1), *b = make_volume(1, 32, 32, 32, 2);
  double sa0, sb1, sb1_again, sa0_again, sa1;
  ck_assert_int_eq(csal3d_uncertainty_score(u, a, NULL, 0, &sa0, NULL, 0), CSAL3D_OK);
  ck_assert_int_eq(csal3d_uncertainty_score(u, b, NULL, 1, &sb1, NULL, 0), CSAL3D_OK);
  /* another order, another estimator: the same scores */
  csal3d_uncertainty *u2 = make_unc(h, 32, CSAL3D_FEATURE_NONE);
  ck_assert_int_eq(csal3d_uncertainty_score(u2, b, NULL, 1, &sb1_again, NULL, 0), CSAL3D_OK);
  ck_assert_int_eq(csal3d_uncertainty_score(u2, a, NULL, 0, &sa0_again, NULL, 0), CSAL3D_OK);
  ck_assert(sa0 == sa0_again && sb1 == sb1_again);
  /* another volume id draws other observations */
  ck_assert_int_eq(csal3d_uncertainty_score(u2, a, NULL, 1, &sa1, NULL, 0), CSAL3D_OK);
  ck_assert(sa1 != sa0);
  /* another seed too */
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  for (int i = 0; i < 3; i++) uo.window[i] = W0[i], uo.stride[i] = 32;
  uo.feature = CSAL3D_FEATURE_NONE;
  uo.use_seed = 1;
  uo.seed = 99;
  csal3d_uncertainty *u3;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u3), CSAL3D_OK);
  double s3;
  ck_assert_int_eq(csal3d_uncertainty_score(u3, a, NULL, 0, &s3, NULL, 0), CSAL3D_OK);
  ck_assert(s3 != sa0);
  printf("scores: a %.8g (again %.8g, id 1 %.8g, seed 99 %.8g), b %.8g\n", sa0, sa0_again, sa1,
         s3, sb1);
  csal3d_uncertainty_free(u);
  csal3d_uncertainty_free(u2);
  csal3d_uncertainty_free(u3);
  csal3d_volume_free(a);
  csal3d_volume_free(b);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(foreground_modes) {
  csal3d_context *ctx = make_ctx(5, NULL, NULL);
  csal3d_ssl_model *h = make_model(ctx, 1, 0.3);
  csal3d_volume *v = make_volume(1, 32, 24, 30, 6);
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  for (int i = 0; i < 3; i++) uo.window[i] = W0[i], uo.stride[i] = 32;
  uo.feature = CSAL3D_FEATURE_NONE;
  uo.foreground = CSAL3D_FOREGROUND_THRESHOLD;
  uo.foreground_threshold = 0.6;
  csal3d_uncertainty *u;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_OK);
  double st, sm, sall;
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, NULL, 0, &st, NULL, 0), CSAL3D_OK);
  int64_t vox;
  float *map = map_of(u, &vox);
  const float *data;
  csal3d_volume_data(v, &data);
  double s = 0, n = 0;
  for (int64_t i = 0; i < vox; i++)
    if (data[i] > 0.6f) s += map[i], n++;
  ck_assert_double_eq_tol(st, s / n, 1e-6 * st);
  /* a mask volume: the first half of the slices */
  float *mk = calloc((size_t)vox, 4);
  for (int64_t i = 0; i < vox / 2; i++) mk[i] = 1;
  csal3d_volume *mask;
  ck_assert_int_eq(csal3d_volume_create_like(v, 1, mk, &mask), CSAL3D_OK);
  csal3d_uncertainty_free(u);
  uo.foreground = CSAL3D_FOREGROUND_MASK;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_OK);
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, NULL, 0, &sm, NULL, 0),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, mask, 0, &sm, NULL, 0), CSAL3D_OK);
  s = 0;
  for (int64_t i = 0; i < vox / 2; i++) s += map[i];
  ck_assert_double_eq_tol(sm, s / (double)(vox / 2), 1e-6 * sm);
  /* an empty foreground is an error */
  memset(mk, 0, (size_t)vox * 4);
  csal3d_volume *empty;
  ck_assert_int_eq(csal3d_volume_create_like(v, 1, mk, &empty), CSAL3D_OK);
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, empty, 0, &sm, NULL, 0),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "foreground"));
  /* NONE ignores the mask */
  csal3d_uncertainty_free(u);
  uo.foreground = CSAL3D_FOREGROUND_NONE;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_OK);
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, empty, 0, &sall, NULL, 0), CSAL3D_OK);
  s = 0;
  for (int64_t i = 0; i < vox; i++) s += map[i];
  ck_assert_double_eq_tol(sall, s / (double)vox, 1e-6 * sall);
  printf("foreground: all %.6g, threshold %.6g, mask %.6g\n", sall, st, sm);
  free(mk);
  free(map);
  csal3d_volume_free(mask);
  csal3d_volume_free(empty);
  csal3d_uncertainty_free(u);
  csal3d_volume_free(v);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(feature_from_the_same_sweep) {
  csal3d_context *ctx = make_ctx(6, NULL, NULL);
  csal3d_ssl_model *h = make_model(ctx, 1, 0.3);
  csal3d_volume *v = make_volume(1, 40, 32, 20, 7);
  csal3d_uncertainty *u = make_unc(h, 16, CSAL3D_FEATURE_DEFAULT);
  int64_t fd;
  csal3d_uncertainty_feature_dim(u, &fd);
  ck_assert_int_eq(fd, 64);
  float f1[64], f2[64], full[192];
  double score;
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, NULL, 0, &score, f1, 63),
                   CSAL3D_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, NULL, 0, &score, f1, 64), CSAL3D_OK);
  int64_t stride[3] = {16, 16, 16};
  ck_assert_int_eq(csal3d_ssl_model_encode_volume(h, v, W0, stride, f2, 64), CSAL3D_OK);
  ck_assert_int_eq(memcmp(f1, f2, sizeof f1), 0);
  csal3d_uncertainty *uf = make_unc(h, 16, CSAL3D_FEATURE_FULL);
  csal3d_uncertainty_feature_dim(uf, &fd);
  ck_assert_int_eq(fd, 192);
  double score2;
  ck_assert_int_eq(csal3d_uncertainty_score(uf, v, NULL, 0, &score2, full, 192), CSAL3D_OK);
  ck_assert(score2 == score); /* the feature does not change the draws */
  for (int i = 0; i < 64; i++)
    ck_assert_float_eq_tol(f1[i], (full[3 * i] + full[3 * i + 1] + full[3 * i + 2]) / 3, 1e-6f);
  csal3d_uncertainty_free(u);
  csal3d_uncertainty_free(uf);
  csal3d_volume_free(v);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(map_saved_on_the_input_grid) {
  char dir[] = "/tmp/csal3d_unc_XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  /* an oblique-free, non-RAS file: saved LPS-like with flips and 1.5 mm voxels */
  double aff[16] = {-1.5, 0, 0, 30, 0, 0, 2.0, -10, 0, -1.2, 0, 5, 0, 0, 0, 1};
  int64_t dims[3] = {20, 30, 24};
  size_t n = 20 * 30 * 24;
  float *x = malloc(n * 4);
  for (size_t i = 0; i < n; i++) x[i] = (float)((i * 7919) % 1000) / 1000.0f;
  csal3d_volume *raw;
  ck_assert_int_eq(csal3d_volume_create(1, dims, x, aff, &raw), CSAL3D_OK);
  char in[128], out[128], out2[128];
  snprintf(in, sizeof in, "%s/img.nii.gz", dir);
  snprintf(out, sizeof out, "%s/unc.nii.gz", dir);
  snprintf(out2, sizeof out2, "%s/unc_own.nii", dir);
  ck_assert_int_eq(csal3d_volume_save(raw, in, NULL), CSAL3D_OK);
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_load(in, NULL, &v), CSAL3D_OK);
  /* resampled to 2 mm: the map must come back to the file's grid */
  double sp[3] = {2, 2, 2};
  csal3d_volume *vr;
  ck_assert_int_eq(csal3d_volume_resample(v, sp, &vr), CSAL3D_OK);
  csal3d_context *ctx = make_ctx(8, NULL, NULL);
  csal3d_ssl_model *h = make_model(ctx, 1, 0.3);
  csal3d_uncertainty *u = make_unc(h, 32, CSAL3D_FEATURE_NONE);
  ck_assert_int_eq(csal3d_uncertainty_save_map(u, out), CSAL3D_ERR_STATE);
  double score;
  ck_assert_int_eq(csal3d_uncertainty_score(u, vr, NULL, 0, &score, NULL, 0), CSAL3D_OK);
  ck_assert_msg(csal3d_uncertainty_save_map(u, out) == CSAL3D_OK, "%s", csal3d_last_error());
  csal3d_volume *mv, *orig;
  ck_assert_int_eq(csal3d_volume_load(out, NULL, &mv), CSAL3D_OK);
  ck_assert_int_eq(csal3d_volume_load(in, NULL, &orig), CSAL3D_OK);
  int64_t s1[4], s2[4];
  csal3d_volume_shape(mv, s1);
  csal3d_volume_shape(orig, s2);
  ck_assert_int_eq(memcmp(s1, s2, sizeof s1), 0);
  double a1[16], a2[16];
  csal3d_volume_affine(mv, a1);
  csal3d_volume_affine(orig, a2);
  for (int i = 0; i < 16; i++) ck_assert_double_eq_tol(a1[i], a2[i], 1e-5);
  const float *md;
  csal3d_volume_data(mv, &md);
  double mx = 0;
  for (int64_t i = 0; i < s1[1] * s1[2] * s1[3]; i++) {
    ck_assert(isfinite(md[i]) && md[i] >= 0);
    if (md[i] > mx) mx = md[i];
  }
  ck_assert(mx > 0);
  /* a volume made in memory: saved on its own grid */
  csal3d_volume *mem = make_volume(1, 20, 20, 20, 9);
  ck_assert_int_eq(csal3d_uncertainty_score(u, mem, NULL, 0, &score, NULL, 0), CSAL3D_OK);
  ck_assert_int_eq(csal3d_uncertainty_save_map(u, out2), CSAL3D_OK);
  csal3d_volume *m2;
  ck_assert_int_eq(csal3d_volume_load(out2, NULL, &m2), CSAL3D_OK);
  int64_t vox;
  float *map = map_of(u, &vox);
  const float *d2;
  csal3d_volume_data(m2, &d2);
  ck_assert_int_eq(memcmp(map, d2, (size_t)vox * 4), 0);
  free(map);
  csal3d_volume_free(m2);
  csal3d_volume_free(mem);
  csal3d_volume_free(mv);
  csal3d_volume_free(orig);
  csal3d_volume_free(v);
  csal3d_volume_free(vr);
  csal3d_volume_free(raw);
  free(x);
  csal3d_uncertainty_free(u);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static int cancel_at_window(void *user, const char *stage, uint64_t done, uint64_t total) {
  int *calls = user;
  if (strcmp(stage, "uncertainty") == 0) (*calls)++;
  return strcmp(stage, "uncertainty") == 0 && done == 1;
}

START_TEST(cancellation_and_options) {
  int calls = 0;
  csal3d_context *ctx = make_ctx(9, cancel_at_window, &calls);
  csal3d_ssl_model *h = make_model(ctx, 1, 0.3);
  csal3d_volume *v = make_volume(1, 40, 20, 20, 1);
  csal3d_uncertainty *u = make_unc(h, 32, CSAL3D_FEATURE_NONE);
  double score = 123;
  ck_assert_int_eq(csal3d_uncertainty_score(u, v, NULL, 0, &score, NULL, 0),
                   CSAL3D_ERR_CANCELLED);
  ck_assert_int_eq(calls, 1);
  ck_assert(score == 123);
  csal3d_volume *mv = (csal3d_volume *)1;
  ck_assert_int_eq(csal3d_uncertainty_map(u, &mv), CSAL3D_ERR_STATE);
  ck_assert_ptr_null(mv);
  csal3d_uncertainty_free(u);
  /* options */
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  ck_assert_int_eq(uo.window[0], 128);
  ck_assert_int_eq(uo.stride[2], 64);
  uo.window[1] = 48;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "window"));
  csal3d_uncertainty_options_init(&uo);
  uo.stride[0] = 200;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_uncertainty_options_init(&uo);
  uo.feature = (csal3d_feature_mode)9;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_ERR_INVALID_ARGUMENT);
  /* channels must match */
  csal3d_uncertainty_options_init(&uo);
  for (int i = 0; i < 3; i++) uo.window[i] = W0[i], uo.stride[i] = 32;
  ck_assert_int_eq(csal3d_uncertainty_create(h, &uo, &u), CSAL3D_OK);
  csal3d_volume *two = make_volume(2, 8, 8, 8, 1);
  ck_assert_int_eq(csal3d_uncertainty_score(u, two, NULL, 0, &score, NULL, 0),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "channels"));
  /* NaN voxels are refused before any model work */
  int64_t nd[3] = {8, 8, 8};
  float nanv[512] = {0};
  nanv[77] = NAN;
  csal3d_volume *bad;
  ck_assert_int_eq(csal3d_volume_create(1, nd, nanv, NULL, &bad), CSAL3D_OK);
  ck_assert_int_eq(csal3d_uncertainty_score(u, bad, NULL, 0, &score, NULL, 0),
                   CSAL3D_ERR_NUMERICAL);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "value 77"));
  csal3d_volume_free(bad);
  csal3d_uncertainty_free(u);
  csal3d_uncertainty_free(NULL);
  csal3d_volume_free(two);
  csal3d_volume_free(v);
  csal3d_ssl_model_free(h);
  csal3d_context_free(ctx);
}
END_TEST

int main(int argc, char **argv) {
  (void)argc;
  c3_test_passive_openmp(argv);
  Suite *s = suite_create("uncertainty");
  TCase *t = tcase_create("estimator");
  tcase_set_timeout(t, 900);
  tcase_add_test(t, identical_reconstructions_give_zero);
  tcase_add_test(t, known_variance_one_channel_cubic_window);
  tcase_add_test(t, known_variance_two_channels_non_cubic_window);
  tcase_add_test(t, non_cubic_and_small_volumes);
  tcase_add_test(t, deterministic_and_keyed_by_volume);
  tcase_add_test(t, foreground_modes);
  tcase_add_test(t, feature_from_the_same_sweep);
  tcase_add_test(t, map_saved_on_the_input_grid);
  tcase_add_test(t, cancellation_and_options);
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
