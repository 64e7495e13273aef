/* csal3d_uncertainty: the public face of lib/uncertainty. */
#include <math.h>
#include <string.h>

#include "csal3d/uncertainty.h"

#include "core/alloc.h"
#include "core/context.h"
#include "core/error.h"
#include "core/options.h"
#include "core/threads.h"
#include "model/ssl_internal.h"
#include "uncertainty/uncertainty.h"

struct csal3d_uncertainty {
  csal3d_ssl_model *model;
  csal3d_uncertainty_options o;
  csal3d_volume *map; /* the last map, on the scored volume's grid */
};

CSAL3D_API csal3d_status
csal3d_uncertainty_options_init(csal3d_uncertainty_options *o) {
  C3_CHECK_ARG(o, "csal3d_uncertainty_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  for (int a = 0; a < 3; a++) {
    o->window[a] = 128;
    o->stride[a] = 64;
  }
  o->foreground = CSAL3D_FOREGROUND_NONE;
  o->foreground_threshold = 0;
  o->feature = CSAL3D_FEATURE_DEFAULT;
  o->keep_map = 1;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_uncertainty_create(csal3d_ssl_model *model,
                                                   const csal3d_uncertainty_options *options,
                                                   csal3d_uncertainty **out) {
  C3_CHECK_ARG(out, "csal3d_uncertainty_create: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(model, "csal3d_uncertainty_create: model is NULL");
  csal3d_uncertainty_options o;
  csal3d_uncertainty_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_uncertainty_options"));
  for (int a = 0; a < 3; a++) {
    C3_CHECK_ARG(o.window[a] >= 32 && o.window[a] % 32 == 0 && o.window[a] <= 4096,
                 "uncertainty options: window [%lld, %lld, %lld]: every side must be a "
                 "positive multiple of 32",
                 (long long)o.window[0], (long long)o.window[1], (long long)o.window[2]);
    C3_CHECK_ARG(o.stride[a] >= 1 && o.stride[a] <= o.window[a],
                 "uncertainty options: stride [%lld, %lld, %lld]: each must be in 1..window",
                 (long long)o.stride[0], (long long)o.stride[1], (long long)o.stride[2]);
  }
  C3_CHECK_ARG(o.foreground >= CSAL3D_FOREGROUND_NONE && o.foreground <= CSAL3D_FOREGROUND_MASK,
               "uncertainty options: unknown foreground mode %d", (int)o.foreground);
  C3_CHECK_ARG(isfinite(o.foreground_threshold),
               "uncertainty options: foreground_threshold must be finite");
  C3_CHECK_ARG(o.feature >= CSAL3D_FEATURE_DEFAULT && o.feature <= CSAL3D_FEATURE_NONE,
               "uncertainty options: unknown feature mode %d", (int)o.feature);
  if (!o.use_seed) o.seed = model->seed;
  o.use_seed = 1;
  csal3d_uncertainty *u;
  C3_TRY(c3_calloc_array(1, sizeof *u, "uncertainty estimator", (void **)&u));
  u->model = model;
  u->o = o;
  *out = u;
  return CSAL3D_OK;
}

CSAL3D_API void csal3d_uncertainty_free(csal3d_uncertainty *u) {
  if (!u) return;
  csal3d_volume_free(u->map);
  c3_free(u);
}

CSAL3D_API csal3d_status csal3d_uncertainty_get_options(const csal3d_uncertainty *u,
                                                        csal3d_uncertainty_options *options) {
  C3_CHECK_ARG(u && options, "csal3d_uncertainty_get_options: NULL argument");
  return c3_options_write(options, &u->o, sizeof u->o,
                          "csal3d_uncertainty_get_options (csal3d_uncertainty_options_init "
                          "first)");
}

csal3d_ssl_model *c3_uncertainty_model(const csal3d_uncertainty *u) { return u->model; }

CSAL3D_API csal3d_status csal3d_uncertainty_feature_dim(const csal3d_uncertainty *u,
                                                        int64_t *dim) {
  C3_CHECK_ARG(u && dim, "csal3d_uncertainty_feature_dim: NULL argument");
  *dim = c3_ssl_feature_width(u->model->m, u->o.feature);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_uncertainty_score(csal3d_uncertainty *u,
                                                  const csal3d_volume *volume,
                                                  const csal3d_volume *mask,
                                                  uint64_t volume_id, double *score,
                                                  float *feature, size_t capacity) {
  C3_CHECK_ARG(u && volume, "csal3d_uncertainty_score: NULL argument");
  c3_model *m = u->model->m;
  int64_t fd = c3_ssl_feature_width(m, u->o.feature);
  if (feature && capacity < (size_t)fd)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL,
                    "csal3d_uncertainty_score: the feature has %lld values, the buffer "
                    "holds %zu",
                    (long long)fd, capacity);
  int64_t sh[4];
  C3_TRY(csal3d_volume_shape(volume, sh));
  const float *data;
  C3_TRY(csal3d_volume_data(volume, &data));
  const int64_t vox = sh[1] * sh[2] * sh[3];
  if (sh[0] != m->cfg.in_channels)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "csal3d_uncertainty_score: the volume has %lld channels, the model "
                    "takes %d",
                    (long long)sh[0], m->cfg.in_channels);
  uint8_t *fg = NULL;
  float *map = NULL;
  csal3d_status s =
      c3_check_finite(data, (size_t)(sh[0] * vox), "csal3d_uncertainty_score: the volume");
  if (s != CSAL3D_OK) return s;
  if (u->o.foreground == CSAL3D_FOREGROUND_THRESHOLD ||
      u->o.foreground == CSAL3D_FOREGROUND_MASK) {
    const float *src = data;
    int64_t nch = sh[0];
    double thr = u->o.foreground_threshold;
    if (u->o.foreground == CSAL3D_FOREGROUND_MASK) {
      C3_CHECK_ARG(mask, "csal3d_uncertainty_score: foreground MASK needs a mask volume");
      int64_t ms[4];
      C3_TRY(csal3d_volume_shape(mask, ms));
      C3_CHECK_ARG(ms[1] == sh[1] && ms[2] == sh[2] && ms[3] == sh[3],
                   "csal3d_uncertainty_score: the mask is %lldx%lldx%lld, the volume "
                   "%lldx%lldx%lld",
                   (long long)ms[1], (long long)ms[2], (long long)ms[3], (long long)sh[1],
                   (long long)sh[2], (long long)sh[3]);
      C3_TRY(csal3d_volume_data(mask, &src));
      nch = ms[0];
      thr = 0;
    }
    C3_TRY(c3_alloc((size_t)vox, "foreground", (void **)&fg));
    for (int64_t i = 0; i < vox; i++) {
      int in = 0;
      for (int64_t c = 0; c < nch && !in; c++) {
        float v = src[c * vox + i];
        in = u->o.foreground == CSAL3D_FOREGROUND_MASK ? v != 0.0f : v > thr;
      }
      fg[i] = (uint8_t)in;
    }
  }
  s = c3_alloc((size_t)vox * sizeof(float), "uncertainty map", (void **)&map);
  c3_unc_config c;
  memset(&c, 0, sizeof c);
  memcpy(c.window, u->o.window, sizeof c.window);
  memcpy(c.stride, u->o.stride, sizeof c.stride);
  c.hide_fraction = c3_ssl_hide_fraction(&u->model->o);
  c.feature = u->o.feature;
  c.uncertainty = 1;
  c.seed = u->o.seed;
  c3_unc_result r;
  if (s == CSAL3D_OK) {
    int prev = c3_threads_enter(u->model->ctx->options.threads);
    s = c3_uncertainty_run(m, u->model->ctx, &c, data, sh[0], sh + 1, volume_id, fg, NULL,
                           NULL, map, feature, &r);
    c3_threads_leave(prev);
  }
  csal3d_volume_free(u->map);
  u->map = NULL;
  if (s == CSAL3D_OK && u->o.keep_map) s = csal3d_volume_create_like(volume, 1, map, &u->map);
  if (s == CSAL3D_OK && score) *score = r.score;
  c3_free(fg);
  c3_free(map);
  return s;
}

CSAL3D_API csal3d_status csal3d_uncertainty_map(const csal3d_uncertainty *u,
                                                csal3d_volume **out) {
  C3_CHECK_ARG(out, "csal3d_uncertainty_map: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(u, "csal3d_uncertainty_map: estimator is NULL");
  if (!u->map)
    return c3_error(CSAL3D_ERR_STATE, u->o.keep_map
                                          ? "csal3d_uncertainty_map: no volume scored yet"
                                          : "csal3d_uncertainty_map: keep_map is 0");
  return csal3d_volume_clone(u->map, out);
}

CSAL3D_API csal3d_status csal3d_uncertainty_save_map(const csal3d_uncertainty *u,
                                                     const char *path) {
  C3_CHECK_ARG(u && path, "csal3d_uncertainty_save_map: NULL argument");
  if (!u->map)
    return c3_error(CSAL3D_ERR_STATE, u->o.keep_map
                                          ? "csal3d_uncertainty_save_map: no volume scored yet"
                                          : "csal3d_uncertainty_save_map: keep_map is 0");
  csal3d_volume_save_options so;
  csal3d_volume_save_options_init(&so);
  so.dtype = CSAL3D_SAVE_FLOAT32;
  csal3d_volume *src = NULL;
  csal3d_status s = csal3d_volume_to_source_grid(u->map, 0, &src);
  if (s == CSAL3D_ERR_STATE) /* not loaded from a file: its own grid */
    return csal3d_volume_save(u->map, path, &so);
  if (s != CSAL3D_OK) return s;
  s = csal3d_volume_save(src, path, &so);
  csal3d_volume_free(src);
  return s;
}

/* csal3d_ssl_model_encode_volume (declared in ssl_model.h) lives here because the
 * windowed sweep is this folder's: the model never calls the estimator. */
CSAL3D_API csal3d_status csal3d_ssl_model_encode_volume(csal3d_ssl_model *h,
                                                        const csal3d_volume *volume,
                                                        const int64_t window[3],
                                                        const int64_t stride[3],
                                                        float *features, size_t capacity) {
  C3_CHECK_ARG(h && volume && features, "csal3d_ssl_model_encode_volume: NULL argument");
  int64_t fd = c3_ssl_feature_width(h->m, CSAL3D_FEATURE_DEFAULT);
  if (capacity < (size_t)fd)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL,
                    "csal3d_ssl_model_encode_volume: the feature has %lld values, the "
                    "buffer holds %zu",
                    (long long)fd, capacity);
  c3_unc_config c;
  memset(&c, 0, sizeof c);
  for (int a = 0; a < 3; a++) {
    c.window[a] = window ? window[a] : h->o.crop_size[a];
    c.stride[a] = stride ? stride[a] : (c.window[a] / 2 > 0 ? c.window[a] / 2 : 1);
  }
  c.hide_fraction = c3_ssl_hide_fraction(&h->o);
  c.feature = CSAL3D_FEATURE_DEFAULT;
  c.uncertainty = 0;
  c.seed = h->seed;
  int64_t sh[4];
  C3_TRY(csal3d_volume_shape(volume, sh));
  const float *data;
  C3_TRY(csal3d_volume_data(volume, &data));
  c3_unc_result r;
  int prev = c3_threads_enter(h->ctx->options.threads);
  csal3d_status s = c3_check_finite(data, (size_t)(sh[0] * sh[1] * sh[2] * sh[3]),
                                    "csal3d_ssl_model_encode_volume: the volume");
  if (s == CSAL3D_OK)
    s = c3_uncertainty_run(h->m, h->ctx, &c, data, sh[0], sh + 1, 0, NULL, NULL, NULL, NULL,
                           features, &r);
  c3_threads_leave(prev);
  return s;
}
