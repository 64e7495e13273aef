/* The ensemble uncertainty sweep (see uncertainty.h). */
#include "uncertainty/uncertainty.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/report.h"
#include "model/ssl.h"
#include "model/ssl_internal.h"
#include "volume/windows.h"

#define NOBS C3_SSL_OBSERVATIONS

typedef struct c3_unc_bufs {
  c3_engine *e;
  float *win;   /* [ch, window] clean window */
  float *obs;   /* [ch, window] one observation */
  float *al;    /* [9][ch, window] aligned reconstructions */
  float *mean;  /* [ch, window] */
  float *tmp;   /* [ch, window] */
  float *var;   /* [ch, window] */
  float *wmap;  /* [window] */
  float *feat;  /* [16C] */
} c3_unc_bufs;

static void c3_unc_bufs_free(c3_unc_bufs *b) {
  float **all[] = {&b->win, &b->obs, &b->al, &b->mean, &b->tmp, &b->var, &b->wmap, &b->feat};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (*all[i]) b->e->free(b->e, *all[i]);
    *all[i] = NULL;
  }
}

static csal3d_status c3_unc_check(const c3_model *m, const c3_unc_config *c) {
  for (int a = 0; a < 3; a++) {
    C3_CHECK_ARG(c->window[a] >= 32 && c->window[a] % 32 == 0,
                 "uncertainty window [%lld, %lld, %lld]: every side must be a positive "
                 "multiple of 32",
                 (long long)c->window[0], (long long)c->window[1], (long long)c->window[2]);
    C3_CHECK_ARG(c->stride[a] >= 1 && c->stride[a] <= c->window[a],
                 "uncertainty stride [%lld, %lld, %lld]: each must be in 1..window",
                 (long long)c->stride[0], (long long)c->stride[1], (long long)c->stride[2]);
  }
  C3_CHECK_ARG(c->hide_fraction >= 0 && c->hide_fraction <= 1,
               "mask fraction %g: must be in [0, 1]", c->hide_fraction);
  C3_CHECK_ARG(c->feature >= CSAL3D_FEATURE_DEFAULT && c->feature <= CSAL3D_FEATURE_NONE,
               "unknown feature mode %d", (int)c->feature);
  C3_CHECK_ARG(c->uncertainty || c->feature != CSAL3D_FEATURE_NONE,
               "uncertainty sweep with neither uncertainty nor feature");
  (void)m;
  return CSAL3D_OK;
}

csal3d_status c3_uncertainty_run(c3_model *m, const csal3d_context *ctx,
                                 const c3_unc_config *c, const float *vol, int64_t ch,
                                 const int64_t shape[3], uint64_t volume_id,
                                 const uint8_t *fg, c3_unc_draws_fn draws_fn,
                                 void *draws_user, float *map, float *feature,
                                 c3_unc_result *res) {
  C3_CHECK_ARG(m && c && vol && shape && res, "c3_uncertainty_run: NULL argument");
  C3_TRY(c3_unc_check(m, c));
  C3_CHECK_ARG(ch == m->cfg.in_channels,
               "the volume has %lld channels, the model takes %d", (long long)ch,
               m->cfg.in_channels);
  for (int a = 0; a < 3; a++)
    C3_CHECK_ARG(shape[a] >= 1, "volume shape [%lld, %lld, %lld] has an empty axis",
                 (long long)shape[0], (long long)shape[1], (long long)shape[2]);
  memset(res, 0, sizeof *res);
  res->score = NAN;
  c3_engine *e = m->e;
  const int do_feat = c->feature != CSAL3D_FEATURE_NONE;
  const int64_t fdim = do_feat ? c3_ssl_feature_width(m, c->feature) : 0;
  res->feature_dim = fdim;
  const int64_t wv = c->window[0] * c->window[1] * c->window[2];
  const size_t nw = (size_t)(ch * wv), bytes = nw * sizeof(float);
  const int64_t vox = shape[0] * shape[1] * shape[2];

  c3_window_grid g;
  C3_TRY(c3_window_grid_init(&g, shape, c->window, c->stride));
  c3_window_accum acc;
  int have_acc = 0;
  c3_unc_bufs b;
  memset(&b, 0, sizeof b);
  b.e = e;
  float *hwin = NULL, *hobs = NULL, *hmap = NULL, *umap = NULL;
  double *fsum = NULL;
  csal3d_status s = CSAL3D_OK;
#define C3_GO(expr)                                                                      \
  do {                                                                                   \
    s = (expr);                                                                          \
    if (s != CSAL3D_OK) goto done;                                                       \
  } while (0)
  C3_GO(c3_alloc(bytes, "uncertainty window", (void **)&hwin));
  C3_GO(e->alloc(e, bytes, "uncertainty window", (void **)&b.win));
  if (do_feat) {
    C3_GO(e->alloc(e, (size_t)(16 * m->cfg.embed_dim) * sizeof(float), "window feature",
                   (void **)&b.feat));
    C3_GO(c3_calloc_array((size_t)fdim, sizeof(double), "volume feature", (void **)&fsum));
  }
  if (c->uncertainty) {
    C3_GO(c3_alloc(bytes, "uncertainty observation", (void **)&hobs));
    C3_GO(c3_alloc((size_t)wv * sizeof(float), "window map", (void **)&hmap));
    C3_GO(e->alloc(e, bytes, "uncertainty observation", (void **)&b.obs));
    size_t allb;
    if (c3_mul_size(bytes, NOBS, &allb) != 0) {
      s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "uncertainty: window too large");
      goto done;
    }
    C3_GO(e->alloc(e, allb, "aligned reconstructions", (void **)&b.al));
    C3_GO(e->alloc(e, bytes, "reconstruction mean", (void **)&b.mean));
    C3_GO(e->alloc(e, bytes, "uncertainty scratch", (void **)&b.tmp));
    C3_GO(e->alloc(e, bytes, "voxel variance", (void **)&b.var));
    C3_GO(e->alloc(e, (size_t)wv * sizeof(float), "window map", (void **)&b.wmap));
    C3_GO(c3_window_accum_init(&acc, &g));
    have_acc = 1;
  }

  for (int64_t j = 0; j < g.total; j++) {
    int64_t origin[3];
    c3_window_origin(&g, j, origin);
    c3_box_extract_f32(vol, ch, shape, origin, c->window, 0.0f, hwin);
    C3_GO(e->upload(e, b.win, hwin, bytes));
    if (do_feat) {
      float hf[16 * 1024];
      C3_GO(c3_model_forward(m, b.win, 1, c->window, 0));
      C3_GO(c3_ssl_feature(m, c->feature, b.feat));
      if (fdim > (int64_t)(sizeof hf / sizeof hf[0])) {
        s = c3_error(CSAL3D_ERR_UNSUPPORTED, "feature of %lld values", (long long)fdim);
        goto done;
      }
      C3_GO(e->download(e, hf, b.feat, (size_t)fdim * sizeof(float)));
      for (int64_t i = 0; i < fdim; i++) fsum[i] += hf[i];
    }
    if (c->uncertainty) {
      c3_ssl_draws d;
      memset(&d, 0, sizeof d);
      if (draws_fn) {
        s = draws_fn(draws_user, j, origin, c->window, &d);
        if (s == CSAL3D_OK)
          for (int a = 0; a < 3; a++)
            if (d.shape[a] != c->window[a])
              s = c3_error(CSAL3D_ERR_INTERNAL, "window %lld: draws for another shape",
                           (long long)j);
      } else {
        s = c3_ssl_draws_random(&d, c->window, C3_MASK_CUBE, c->hide_fraction, c->seed,
                                volume_id, (uint64_t)j);
      }
      if (s != CSAL3D_OK) {
        c3_ssl_draws_free(&d);
        goto done;
      }
      for (int o = 0; s == CSAL3D_OK && o < NOBS; o++) {
        int64_t os[3];
        c3_ssl_observation_shape(&d, o, os);
        c3_ssl_observation_f32(&d, o, hwin, ch, hobs, NULL);
        s = e->upload(e, b.obs, hobs, bytes);
        if (s == CSAL3D_OK) s = c3_model_forward(m, b.obs, 1, os, 0);
        if (s == CSAL3D_OK) {
          c3_axes_map inv = c3_axes_inverse(c3_axes_observation(d.view[o], d.k[o]));
          c3_permute3d_desc pd = c3_ssl_permute_desc(inv, ch, os);
          s = e->permute3d(e, &pd, c3_model_reconstruction(m), b.al + (size_t)o * nw, 0);
        }
      }
      c3_ssl_draws_free(&d);
      if (s != CSAL3D_OK) goto done;
      /* population variance over the 9, per voxel and channel (two passes on values
       * shifted by the first observation's, so that identical reconstructions give
       * exactly 0); then the mean over channels */
      for (int o = NOBS - 1; o >= 1; o--)
        C3_GO(e->axpby(e, (int64_t)nw, -1.0f, b.al, 1.0f, b.al + (size_t)o * nw));
      C3_GO(e->zero(e, b.al, bytes));
      C3_GO(e->axpby(e, (int64_t)nw, 1.0f / NOBS, b.al + nw, 0.0f, b.mean));
      for (int o = 2; o < NOBS; o++)
        C3_GO(e->axpby(e, (int64_t)nw, 1.0f / NOBS, b.al + (size_t)o * nw, 1.0f, b.mean));
      for (int o = 0; o < NOBS; o++) {
        C3_GO(e->axpby(e, (int64_t)nw, 1.0f, b.al + (size_t)o * nw, 0.0f, b.tmp));
        C3_GO(e->axpby(e, (int64_t)nw, -1.0f, b.mean, 1.0f, b.tmp));
        C3_GO(e->mul(e, (int64_t)nw, b.tmp, b.tmp, b.tmp));
        C3_GO(e->axpby(e, (int64_t)nw, 1.0f / NOBS, b.tmp, o == 0 ? 0.0f : 1.0f, b.var));
      }
      C3_GO(e->reduce_sum(e, 1, ch, wv, 1.0f / (float)ch, b.var, b.wmap, 0));
      C3_GO(e->download(e, hmap, b.wmap, (size_t)wv * sizeof(float)));
      c3_window_accum_add(&acc, origin, hmap);
    }
    C3_GO(c3_progress(ctx, "uncertainty", (uint64_t)(j + 1), (uint64_t)g.total));
  }

  res->windows = g.total;
  if (do_feat && feature)
    for (int64_t i = 0; i < fdim; i++) feature[i] = (float)(fsum[i] / (double)g.total);
  if (c->uncertainty) {
    float *u = map;
    if (!u) C3_GO(c3_alloc((size_t)vox * sizeof(float), "uncertainty map", (void **)&umap));
    if (!u) u = umap;
    c3_window_accum_mean(&acc, u);
    double sum = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < vox; i++)
      if (!fg || fg[i]) {
        sum += u[i];
        cnt++;
      }
    if (cnt == 0) {
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                   "uncertainty: the foreground is empty (no voxel to score)");
      goto done;
    }
    res->score = sum / (double)cnt;
    res->voxels = cnt;
  }
#undef C3_GO
done:
  c3_unc_bufs_free(&b);
  if (have_acc) c3_window_accum_free(&acc);
  c3_window_grid_free(&g);
  c3_free(hwin);
  c3_free(hobs);
  c3_free(hmap);
  c3_free(umap);
  c3_free(fsum);
  return s;
}
