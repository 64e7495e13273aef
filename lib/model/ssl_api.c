/* csal3d_ssl_model: the public face of the SSL model and its pretraining. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/comm.h"
#include "core/context.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "core/rng.h"
#include "core/threads.h"
#include "io/fileutil.h"
#include "model/checkpoint.h"
#include "model/ssl_internal.h"

/* ---- helpers shared with lib/uncertainty ---- */

double c3_ssl_hide_fraction(const csal3d_ssl_options *o) {
  return o->mask_mode == CSAL3D_MASK_KEEP ? 1.0 - o->mask_ratio : o->mask_ratio;
}

int64_t c3_ssl_feature_width(const c3_model *m, csal3d_feature_mode mode) {
  int64_t c16 = 16 * (int64_t)m->cfg.embed_dim;
  if (mode == CSAL3D_FEATURE_DEFAULT)
    mode = m->cfg.feature_full ? CSAL3D_FEATURE_FULL : CSAL3D_FEATURE_REDUCED;
  if (mode == CSAL3D_FEATURE_NONE) return 0;
  return mode == CSAL3D_FEATURE_FULL ? c16 : c16 / 3;
}

csal3d_status c3_ssl_feature(c3_model *m, csal3d_feature_mode mode, float *feat) {
  const float *pooled = c3_model_pooled(m);
  if (!pooled) return c3_error(CSAL3D_ERR_STATE, "model feature: no forward has run");
  int64_t c16 = 16 * (int64_t)m->cfg.embed_dim;
  int64_t w = c3_ssl_feature_width(m, mode);
  if (w == c16) return m->e->copy(m->e, feat, pooled, (size_t)c16 * sizeof(float));
  return m->e->reduce_sum(m->e, c16 / 3, 3, 1, 1.0f / 3.0f, pooled, feat, 0);
}

/* ---- options ---- */

CSAL3D_API csal3d_status csal3d_ssl_options_init(csal3d_ssl_options *o) {
  C3_CHECK_ARG(o, "csal3d_ssl_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->embed_dim = 48;
  o->in_channels = 1;
  o->crop_size[0] = o->crop_size[1] = o->crop_size[2] = 128;
  o->batch_size = 4;
  o->iterations = 30000;
  o->lr = 0;
  o->weight_decay = 0.1;
  o->warmup_steps = 500;
  o->clip_norm = 1.0;
  o->mask_ratio = 0.3;
  o->mask_mode = CSAL3D_MASK_HIDE;
  o->weight_inpainting = o->weight_rotation = o->weight_consistency = 1.0;
  o->rotation_input = CSAL3D_ROTATION_INPUT_MEAN;
  o->feature = CSAL3D_FEATURE_REDUCED;
  o->cache_bytes = (int64_t)1 << 30;
  return CSAL3D_OK;
}

static csal3d_status c3_ssl_options_check(const csal3d_ssl_options *o) {
  C3_CHECK_ARG(o->embed_dim >= 12 && o->embed_dim % 12 == 0 && o->embed_dim <= 768,
               "ssl options: embed_dim %d must be a positive multiple of 12 (at most 768)",
               o->embed_dim);
  C3_CHECK_ARG(o->in_channels >= 1 && o->in_channels <= 64,
               "ssl options: in_channels %d must be in 1..64", o->in_channels);
  for (int a = 0; a < 3; a++)
    C3_CHECK_ARG(o->crop_size[a] >= 32 && o->crop_size[a] % 32 == 0 &&
                     o->crop_size[a] <= 4096,
                 "ssl options: crop_size [%lld, %lld, %lld]: every side must be a "
                 "positive multiple of 32",
                 (long long)o->crop_size[0], (long long)o->crop_size[1],
                 (long long)o->crop_size[2]);
  C3_CHECK_ARG(o->batch_size >= 1, "ssl options: batch_size %d must be >= 1", o->batch_size);
  C3_CHECK_ARG(o->iterations >= 1, "ssl options: iterations %lld must be >= 1",
               (long long)o->iterations);
  C3_CHECK_ARG(isfinite(o->lr) && o->lr >= 0, "ssl options: lr %g must be >= 0 (0: auto)",
               o->lr);
  C3_CHECK_ARG(isfinite(o->weight_decay) && o->weight_decay >= 0,
               "ssl options: weight_decay %g must be >= 0", o->weight_decay);
  C3_CHECK_ARG(o->warmup_steps >= 0, "ssl options: warmup_steps %lld must be >= 0",
               (long long)o->warmup_steps);
  C3_CHECK_ARG(isfinite(o->clip_norm) && o->clip_norm >= 0,
               "ssl options: clip_norm %g must be >= 0 (0: off)", o->clip_norm);
  C3_CHECK_ARG(o->mask_ratio >= 0 && o->mask_ratio <= 1,
               "ssl options: mask_ratio %g must be in [0, 1]", o->mask_ratio);
  C3_CHECK_ARG(o->mask_mode == CSAL3D_MASK_HIDE || o->mask_mode == CSAL3D_MASK_KEEP,
               "ssl options: unknown mask_mode %d", (int)o->mask_mode);
  C3_CHECK_ARG(isfinite(o->weight_inpainting) && o->weight_inpainting >= 0 &&
                   isfinite(o->weight_rotation) && o->weight_rotation >= 0 &&
                   isfinite(o->weight_consistency) && o->weight_consistency >= 0,
               "ssl options: loss weights (%g, %g, %g) must be finite and >= 0",
               o->weight_inpainting, o->weight_rotation, o->weight_consistency);
  C3_CHECK_ARG(o->rotation_input == CSAL3D_ROTATION_INPUT_MEAN ||
                   o->rotation_input == CSAL3D_ROTATION_INPUT_FIRST_TOKEN,
               "ssl options: unknown rotation_input %d", (int)o->rotation_input);
  C3_CHECK_ARG(o->feature == CSAL3D_FEATURE_DEFAULT || o->feature == CSAL3D_FEATURE_REDUCED ||
                   o->feature == CSAL3D_FEATURE_FULL,
               "ssl options: feature must be REDUCED or FULL, got %d", (int)o->feature);
  C3_CHECK_ARG(o->checkpoint_every >= 0, "ssl options: checkpoint_every %lld must be >= 0",
               (long long)o->checkpoint_every);
  C3_CHECK_ARG(o->cache_bytes >= 0, "ssl options: cache_bytes must be >= 0");
  return CSAL3D_OK;
}

static void c3_ssl_configs(const csal3d_ssl_options *o, c3_model_config *mc,
                           c3_optim_config *oc, c3_ssl_loss_config *lc) {
  if (mc) {
    c3_model_config_default(mc, o->embed_dim, o->in_channels);
    mc->rot_input = o->rotation_input == CSAL3D_ROTATION_INPUT_FIRST_TOKEN
                        ? C3_ROT_FIRST_TOKEN
                        : C3_ROT_MEAN;
    mc->feature_full = o->feature == CSAL3D_FEATURE_FULL;
  }
  if (oc) {
    c3_optim_config_default(oc, o->iterations);
    oc->lr = o->lr > 0 ? o->lr : 5e-4 * (double)o->batch_size / 2.0;
    oc->weight_decay = o->weight_decay;
    oc->clip_norm = o->clip_norm;
    oc->warmup_steps = o->warmup_steps;
  }
  if (lc) {
    c3_ssl_loss_config_default(lc);
    lc->hide_fraction = c3_ssl_hide_fraction(o);
    lc->w_inp = o->weight_inpainting;
    lc->w_rot = o->weight_rotation;
    lc->w_cons = o->weight_consistency;
    lc->masked_only = o->inpainting_masked_only != 0;
    lc->zscore_target = o->inpainting_zscore_target != 0;
  }
}

static csal3d_status c3_ssl_set_path(csal3d_ssl_model *h, const char *path) {
  char *copy = NULL;
  if (path) {
    size_t n = strlen(path) + 1;
    C3_TRY(c3_alloc(n, "checkpoint path", (void **)&copy));
    memcpy(copy, path, n);
  }
  c3_free(h->ckpt_path);
  h->ckpt_path = copy;
  h->o.checkpoint_path = copy;
  return CSAL3D_OK;
}

/* The model object around a created c3_model (takes ownership). */
static csal3d_status c3_ssl_wrap(csal3d_context *ctx, const csal3d_ssl_options *o,
                                 c3_model *m, csal3d_ssl_model **out) {
  csal3d_ssl_model *h;
  csal3d_status s = c3_calloc_array(1, sizeof *h, "SSL model", (void **)&h);
  if (s != CSAL3D_OK) {
    c3_model_free(m);
    return s;
  }
  h->ctx = ctx;
  h->m = m;
  h->o = *o;
  h->o.checkpoint_path = NULL;
  h->seed = o->use_seed ? o->seed : ctx->options.seed;
  h->o.use_seed = 1; /* the resolved seed, so that get/set_options keep it */
  h->o.seed = h->seed;
  c3_ssl_work_init(&h->work, m);
  c3_optim_config oc;
  c3_ssl_configs(o, NULL, &oc, &h->lc);
  s = c3_ssl_set_path(h, o->checkpoint_path);
  if (s == CSAL3D_OK) s = c3_optim_create(m, &oc, &h->opt);
  if (s != CSAL3D_OK) {
    csal3d_ssl_model_free(h);
    return s;
  }
  *out = h;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_model_create(csal3d_context *ctx,
                                                 const csal3d_ssl_options *options,
                                                 csal3d_ssl_model **out) {
  C3_CHECK_ARG(out, "csal3d_ssl_model_create: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(ctx, "csal3d_ssl_model_create: context is NULL");
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_ssl_options"));
  if (o.feature == CSAL3D_FEATURE_DEFAULT) o.feature = CSAL3D_FEATURE_REDUCED;
  C3_TRY(c3_ssl_options_check(&o));
  c3_model_config mc;
  c3_ssl_configs(&o, &mc, NULL, NULL);
  int prev = c3_threads_enter(ctx->options.threads);
  c3_model *m = NULL;
  csal3d_status s = c3_model_create(ctx->engine, &mc, &m);
  uint64_t seed = o.use_seed ? o.seed : ctx->options.seed;
  if (s == CSAL3D_OK) s = c3_model_init(m, seed);
  if (s != CSAL3D_OK) {
    c3_model_free(m);
  } else {
    s = c3_ssl_wrap(ctx, &o, m, out);
  }
  c3_threads_leave(prev);
  if (s == CSAL3D_OK)
    c3_log(ctx, CSAL3D_LOG_INFO,
           "SSL model: embed_dim %d, %d channel(s), %zu parameters, crops %lldx%lldx%lld, "
           "batch %d, %lld iterations",
           o.embed_dim, o.in_channels, c3_model_param_total(m), (long long)o.crop_size[0],
           (long long)o.crop_size[1], (long long)o.crop_size[2], o.batch_size,
           (long long)o.iterations);
  return s;
}

CSAL3D_API void csal3d_ssl_model_free(csal3d_ssl_model *h) {
  if (!h) return;
  c3_ssl_work_free(&h->work);
  c3_optim_free(h->opt);
  c3_model_free(h->m);
  c3_free(h->ckpt_path);
  c3_free(h->source_path);
  c3_free(h->crops);
  c3_free(h->init_details);
  c3_free(h);
}

/* ---- checkpoints ---- */

#define C3_META_MAX 24

typedef struct c3_meta_list {
  const char *kv[2 * C3_META_MAX + 1];
  char buf[C3_META_MAX][64];
  int n;
} c3_meta_list;

static void c3_meta_add(c3_meta_list *l, const char *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void c3_meta_add(c3_meta_list *l, const char *k, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(l->buf[l->n], sizeof l->buf[l->n], fmt, ap);
  va_end(ap);
  l->kv[2 * l->n] = k;
  l->kv[2 * l->n + 1] = l->buf[l->n];
  l->n++;
  l->kv[2 * l->n] = NULL;
}

CSAL3D_API csal3d_status csal3d_ssl_model_save(const csal3d_ssl_model *h, const char *path) {
  C3_CHECK_ARG(h && path, "csal3d_ssl_model_save: NULL argument");
  const csal3d_ssl_options *o = &h->o;
  c3_meta_list l;
  memset(&l, 0, sizeof l);
  c3_meta_add(&l, "ssl.crop_size", "%lld,%lld,%lld", (long long)o->crop_size[0],
              (long long)o->crop_size[1], (long long)o->crop_size[2]);
  c3_meta_add(&l, "ssl.batch_size", "%d", o->batch_size);
  c3_meta_add(&l, "ssl.lr_option", "%.17g", o->lr);
  c3_meta_add(&l, "ssl.mask_ratio", "%.17g", o->mask_ratio);
  c3_meta_add(&l, "ssl.mask_mode", "%s", o->mask_mode == CSAL3D_MASK_KEEP ? "keep" : "hide");
  c3_meta_add(&l, "ssl.weight_inpainting", "%.17g", o->weight_inpainting);
  c3_meta_add(&l, "ssl.weight_rotation", "%.17g", o->weight_rotation);
  c3_meta_add(&l, "ssl.weight_consistency", "%.17g", o->weight_consistency);
  c3_meta_add(&l, "ssl.inpainting_masked_only", "%d", o->inpainting_masked_only ? 1 : 0);
  c3_meta_add(&l, "ssl.inpainting_zscore_target", "%d", o->inpainting_zscore_target ? 1 : 0);
  c3_meta_add(&l, "ssl.checkpoint_every", "%lld", (long long)o->checkpoint_every);
  c3_meta_add(&l, "ssl.cache_bytes", "%lld", (long long)o->cache_bytes);
  /* the path may be long: passed as is */
  l.kv[2 * l.n] = "ssl.checkpoint_path";
  l.kv[2 * l.n + 1] = h->ckpt_path ? h->ckpt_path : "";
  l.n++;
  c3_ssl_data_text dt;
  l.n += c3_ssl_data_metadata(&h->data, &dt, l.kv + 2 * l.n);
  int prev = c3_threads_enter(h->ctx->options.threads);
  csal3d_status s = c3_checkpoint_save(path, h->m, h->opt, h->seed, l.kv);
  c3_threads_leave(prev);
  return s;
}

static csal3d_status c3_meta_double(const c3_safetensors *st, const char *k, double *v) {
  const char *s = c3_st_metadata(st, k);
  if (!s) return CSAL3D_OK;
  char *end;
  double x = strtod(s, &end);
  if (end == s || *end)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s = '%.40s' is not a number",
                    c3_st_source(st), k, s);
  if (!isfinite(x))
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s = '%.40s' is not a finite number",
                    c3_st_source(st), k, s);
  *v = x;
  return CSAL3D_OK;
}

static csal3d_status c3_meta_ll(const c3_safetensors *st, const char *k, long long *v) {
  const char *s = c3_st_metadata(st, k);
  if (!s) return CSAL3D_OK;
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (end == s || *end)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s = '%.40s' is not a whole number",
                    c3_st_source(st), k, s);
  if (errno == ERANGE)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s = '%.40s' is out of range",
                    c3_st_source(st), k, s);
  *v = x;
  return CSAL3D_OK;
}

/* Training options from a checkpoint's metadata over the defaults. */
csal3d_status c3_ssl_options_from_metadata(const c3_safetensors *st,
                                              const c3_model_config *mc,
                                              csal3d_ssl_options *o) {
  o->embed_dim = mc->embed_dim;
  o->in_channels = mc->in_channels;
  o->rotation_input = mc->rot_input == C3_ROT_FIRST_TOKEN ? CSAL3D_ROTATION_INPUT_FIRST_TOKEN
                                                          : CSAL3D_ROTATION_INPUT_MEAN;
  o->feature = mc->feature_full ? CSAL3D_FEATURE_FULL : CSAL3D_FEATURE_REDUCED;
  const char *cs = c3_st_metadata(st, "ssl.crop_size");
  if (cs) {
    const char *p = cs;
    for (int a = 0; a < 3; a++) {
      char *end;
      errno = 0;
      long long x = strtoll(p, &end, 10);
      if (end == p || errno || (a < 2 ? *end != ',' : *end != '\0'))
        return c3_error(CSAL3D_ERR_FORMAT,
                        "%s: metadata ssl.crop_size = '%.40s' is not D,H,W",
                        c3_st_source(st), cs);
      o->crop_size[a] = x;
      p = end + 1;
    }
  }
  long long v;
  v = o->batch_size;
  C3_TRY(c3_meta_ll(st, "ssl.batch_size", &v));
  if (v < 1 || v > INT32_MAX)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata ssl.batch_size = %lld is out of range",
                    c3_st_source(st), v);
  o->batch_size = (int)v;
  v = o->iterations;
  C3_TRY(c3_meta_ll(st, "optim.total_steps", &v));
  o->iterations = v;
  v = o->warmup_steps;
  C3_TRY(c3_meta_ll(st, "optim.warmup_steps", &v));
  o->warmup_steps = v;
  C3_TRY(c3_meta_double(st, "optim.weight_decay", &o->weight_decay));
  C3_TRY(c3_meta_double(st, "optim.clip_norm", &o->clip_norm));
  C3_TRY(c3_meta_double(st, "ssl.lr_option", &o->lr));
  C3_TRY(c3_meta_double(st, "ssl.mask_ratio", &o->mask_ratio));
  const char *mm = c3_st_metadata(st, "ssl.mask_mode");
  if (mm) {
    if (!strcmp(mm, "keep"))
      o->mask_mode = CSAL3D_MASK_KEEP;
    else if (!strcmp(mm, "hide"))
      o->mask_mode = CSAL3D_MASK_HIDE;
    else
      return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata ssl.mask_mode = '%.40s' (hide or keep)",
                      c3_st_source(st), mm);
  }
  C3_TRY(c3_meta_double(st, "ssl.weight_inpainting", &o->weight_inpainting));
  C3_TRY(c3_meta_double(st, "ssl.weight_rotation", &o->weight_rotation));
  C3_TRY(c3_meta_double(st, "ssl.weight_consistency", &o->weight_consistency));
  v = o->inpainting_masked_only;
  C3_TRY(c3_meta_ll(st, "ssl.inpainting_masked_only", &v));
  o->inpainting_masked_only = v != 0;
  v = o->inpainting_zscore_target;
  C3_TRY(c3_meta_ll(st, "ssl.inpainting_zscore_target", &v));
  o->inpainting_zscore_target = v != 0;
  v = o->checkpoint_every;
  C3_TRY(c3_meta_ll(st, "ssl.checkpoint_every", &v));
  o->checkpoint_every = v;
  v = o->cache_bytes;
  C3_TRY(c3_meta_ll(st, "ssl.cache_bytes", &v));
  o->cache_bytes = v;
  /* A value the options cannot take is bad input here (FORMAT), naming the member. */
  csal3d_status s = c3_ssl_options_check(o);
  if (s != CSAL3D_OK) {
    c3_error_prefix(s, "%s: metadata", c3_st_source(st));
    return s == CSAL3D_ERR_INVALID_ARGUMENT ? CSAL3D_ERR_FORMAT : s;
  }
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_model_load(csal3d_context *ctx, const char *path,
                                               csal3d_ssl_model **out) {
  C3_CHECK_ARG(out, "csal3d_ssl_model_load: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(ctx && path, "csal3d_ssl_model_load: NULL argument");
  int prev = c3_threads_enter(ctx->options.threads);
  c3_safetensors *st = NULL;
  int verified = 0;
  c3_model *m = NULL;
  csal3d_ssl_model *h = NULL;
  csal3d_status s = c3_checkpoint_open(path, &st, &verified);
  c3_model_config mc;
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  if (s == CSAL3D_OK) s = c3_model_config_from_metadata(st, &mc);
  if (s == CSAL3D_OK) s = c3_ssl_options_from_metadata(st, &mc, &o);
  c3_ssl_data data;
  if (s == CSAL3D_OK) s = c3_ssl_data_from_metadata(st, &data);
  const char *step = st ? c3_st_metadata(st, "step") : NULL;
  const char *seed = st ? c3_st_metadata(st, "seed") : NULL;
  if (s == CSAL3D_OK && seed) {
    o.use_seed = 1;
    o.seed = strtoull(seed, NULL, 10);
  }
  if (s == CSAL3D_OK) s = c3_model_create(ctx->engine, &mc, &m);
  if (s == CSAL3D_OK) {
    s = c3_ssl_wrap(ctx, &o, m, &h);
    m = NULL; /* owned by h (or freed) */
  }
  if (s == CSAL3D_OK) h->data = data;
  if (s == CSAL3D_OK) {
    /* A file with optimiser state resumes; bare weights start at step 0. */
    s = c3_checkpoint_restore(st, h->m, step ? h->opt : NULL, NULL);
    if (s == CSAL3D_ERR_FORMAT && !verified && strstr(csal3d_last_error(), "is missing")) {
      char msg[C3_ERROR_MAX];
      snprintf(msg, sizeof msg, "%s", csal3d_last_error());
      s = c3_error(s, "%s: the file holds no whole SSL model; to start from its encoder, "
                   "take it as starting weights (csal3d_ssl_model_init_from)", msg);
    }
    if (s == CSAL3D_OK && step) {
      /* the restored optimiser settings are the truth for the schedule */
      h->o.iterations = h->opt->cfg.total_steps;
      h->o.warmup_steps = h->opt->cfg.warmup_steps;
      h->o.weight_decay = h->opt->cfg.weight_decay;
      h->o.clip_norm = h->opt->cfg.clip_norm;
    }
  }
  if (s == CSAL3D_OK) {
    const char *cp = c3_st_metadata(st, "ssl.checkpoint_path");
    s = c3_ssl_set_path(h, cp && *cp ? cp : NULL);
  }
  if (s == CSAL3D_OK) {
    s = c3_path_absolute(path, &h->source_path);
    const char *sum = c3_st_metadata(st, "checksum");
    snprintf(h->source_checksum, sizeof h->source_checksum, "%s", sum ? sum : "");
    h->source_step = h->opt->step;
  }
  if (s == CSAL3D_OK && !verified)
    c3_log(ctx, CSAL3D_LOG_WARN, "%s: no checksum (not a csal3d checkpoint); loaded the "
           "weights only", path);
  c3_st_free(st);
  c3_threads_leave(prev);
  if (s != CSAL3D_OK) {
    csal3d_ssl_model_free(h);
    c3_model_free(m);
    return c3_error_prefix(s, "loading SSL model");
  }
  c3_log(ctx, CSAL3D_LOG_INFO, "SSL model loaded from %s at step %lld", path,
         (long long)h->opt->step);
  *out = h;
  return CSAL3D_OK;
}

const char *c3_ssl_source(const csal3d_ssl_model *h, const char **checksum) {
  int current = h->source_path && h->opt->step == h->source_step;
  if (checksum) *checksum = current ? h->source_checksum : "";
  return current ? h->source_path : NULL;
}

/* ---- options and accessors ---- */

CSAL3D_API csal3d_status csal3d_ssl_model_get_options(const csal3d_ssl_model *h,
                                                      csal3d_ssl_options *options) {
  C3_CHECK_ARG(h && options, "csal3d_ssl_model_get_options: NULL argument");
  return c3_options_write(options, &h->o, sizeof h->o,
                          "csal3d_ssl_model_get_options (csal3d_ssl_options_init first)");
}

CSAL3D_API csal3d_status csal3d_ssl_model_set_options(csal3d_ssl_model *h,
                                                      const csal3d_ssl_options *options) {
  C3_CHECK_ARG(h && options, "csal3d_ssl_model_set_options: NULL argument");
  csal3d_ssl_options o = h->o;
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_ssl_options"));
  if (o.feature == CSAL3D_FEATURE_DEFAULT) o.feature = h->o.feature;
  C3_TRY(c3_ssl_options_check(&o));
#define C3_SAME(member)                                                                  \
  C3_CHECK_ARG(o.member == h->o.member,                                                  \
               "csal3d_ssl_model_set_options: " #member " cannot change on a model")
  C3_SAME(embed_dim);
  C3_SAME(in_channels);
  C3_SAME(rotation_input);
  C3_SAME(feature);
#undef C3_SAME
  C3_CHECK_ARG(o.iterations >= h->opt->step,
               "csal3d_ssl_model_set_options: iterations %lld is below the model's step %lld "
               "(the steps already trained); give at least %lld",
               (long long)o.iterations, (long long)h->opt->step, (long long)h->opt->step);
  c3_optim_config oc = h->opt->cfg;
  c3_optim_config nc;
  c3_ssl_configs(&o, NULL, &nc, NULL);
  oc.lr = nc.lr;
  oc.weight_decay = nc.weight_decay;
  oc.clip_norm = nc.clip_norm;
  oc.warmup_steps = nc.warmup_steps;
  oc.total_steps = nc.total_steps;
  C3_TRY(c3_optim_config_check(&oc));
  if (o.checkpoint_path != h->ckpt_path) C3_TRY(c3_ssl_set_path(h, o.checkpoint_path));
  o.checkpoint_path = h->ckpt_path;
  if (o.use_seed) h->seed = o.seed; /* else the model keeps its seed */
  o.use_seed = 1;
  o.seed = h->seed;
  h->o = o;
  h->opt->cfg = oc;
  c3_ssl_configs(&h->o, NULL, NULL, &h->lc);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_model_step(const csal3d_ssl_model *h, int64_t *step) {
  C3_CHECK_ARG(h && step, "csal3d_ssl_model_step: NULL argument");
  *step = h->opt->step;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_model_parameter_count(const csal3d_ssl_model *h,
                                                          int64_t *count) {
  C3_CHECK_ARG(h && count, "csal3d_ssl_model_parameter_count: NULL argument");
  *count = (int64_t)c3_model_param_total(h->m);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_model_last_losses(const csal3d_ssl_model *h,
                                                      csal3d_ssl_losses *losses) {
  C3_CHECK_ARG(h && losses, "csal3d_ssl_model_last_losses: NULL argument");
  C3_CHECK_ARG(losses->struct_size >= sizeof(size_t),
               "csal3d_ssl_model_last_losses: set losses->struct_size");
  if (!h->have_last)
    return c3_error(CSAL3D_ERR_STATE, "csal3d_ssl_model_last_losses: no training step yet");
  return c3_options_write(losses, &h->last, sizeof h->last, "csal3d_ssl_model_last_losses");
}

CSAL3D_API csal3d_status csal3d_ssl_model_feature_dim(const csal3d_ssl_model *h,
                                                      int64_t *dim) {
  C3_CHECK_ARG(h && dim, "csal3d_ssl_model_feature_dim: NULL argument");
  *dim = c3_ssl_feature_width(h->m, CSAL3D_FEATURE_DEFAULT);
  return CSAL3D_OK;
}

/* ---- training ---- */

csal3d_status c3_check_finite(const float *x, size_t n, const char *what) {
  size_t bad = n;
#pragma omp parallel for reduction(min : bad) schedule(static)
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]) && i < bad) bad = i;
  if (bad == n) return CSAL3D_OK;
  return c3_error(CSAL3D_ERR_NUMERICAL, "%s: value %zu of %zu is %g (NaN or Inf)", what, bad,
                  n, (double)x[bad]);
}

static csal3d_status c3_check_dhw(const int64_t dhw[3], const char *what) {
  C3_CHECK_ARG(dhw, "%s: dhw is NULL", what);
  for (int a = 0; a < 3; a++)
    C3_CHECK_ARG(dhw[a] >= 32 && dhw[a] % 32 == 0 && dhw[a] <= 4096,
                 "%s: sides [%lld, %lld, %lld] must be positive multiples of 32", what,
                 (long long)dhw[0], (long long)dhw[1], (long long)dhw[2]);
  return CSAL3D_OK;
}

static void c3_ssl_record_last(csal3d_ssl_model *h, const c3_ssl_terms *tp) {
  c3_ssl_terms t = *tp;
  memset(&h->last, 0, sizeof h->last);
  h->last.struct_size = sizeof h->last;
  h->last.step = h->opt->step - 1;
  h->last.loss = t.total;
  h->last.inpainting = t.inp;
  h->last.rotation = t.rot;
  h->last.consistency = t.cons;
  h->last.lr = h->opt->last_lr;
  h->last.grad_norm = h->opt->last_norm;
  h->have_last = 1;
}

csal3d_status c3_ssl_step_impl(csal3d_ssl_model *h, const float *crops, int64_t batch,
                               const int64_t dhw[3]) {
  c3_ssl_terms t;
  C3_TRY(c3_ssl_train_step(&h->work, h->opt, &h->lc, h->seed, crops, batch, dhw, NULL, &t));
  c3_ssl_record_last(h, &t);
  return CSAL3D_OK;
}

static double c3_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The model's gradients summed over the ranks: in place where the communicator takes
 * the engine's memory (the CPU engine's is host memory; the CUDA engine's once its queued
 * work has finished), else through a host copy. */
static csal3d_status c3_ssl_allreduce_grads(csal3d_ssl_model *h, const char *what) {
  c3_model *m = h->m;
  c3_engine *e = m->e;
  if (e->device == CSAL3D_DEVICE_CPU) return c3_comm_allreduce(h->ctx, m->g, m->total,
                                                                CSAL3D_COMM_SUM, what);
  if (h->ctx->comm.device_memory) { /* the backward may still be queued on the engine */
    C3_TRY(e->synchronize(e));
    return c3_comm_allreduce(h->ctx, m->g, m->total, CSAL3D_COMM_SUM, what);
  }
  float *host;
  C3_TRY(c3_alloc_array(m->total, sizeof(float), "gradients (host copy)", (void **)&host));
  csal3d_status s = e->download(e, host, m->g, m->total * sizeof(float));
  if (s == CSAL3D_OK) s = c3_comm_allreduce(h->ctx, host, m->total, CSAL3D_COMM_SUM, what);
  if (s == CSAL3D_OK) s = e->upload(e, m->g, host, m->total * sizeof(float));
  c3_free(host);
  return s;
}

csal3d_status c3_ssl_step_shared(csal3d_ssl_model *h, const float *crops, const int64_t *items,
                                 int64_t n, int64_t batch, const int64_t dhw[3],
                                 csal3d_status prepared) {
  const int size = c3_comm_size(h->ctx), rank = c3_comm_rank(h->ctx);
  if (size == 1) return prepared != CSAL3D_OK ? prepared : c3_ssl_step_impl(h, crops, batch, dhw);
  const int64_t step = h->opt->step;
  char what[64];
  snprintf(what, sizeof what, "pretraining step %lld", (long long)step);
  c3_ssl_terms part = {0, 0, 0, 0};
  csal3d_status s = prepared;
  if (s == CSAL3D_OK)
    s = c3_ssl_local_grads(&h->work, step, &h->lc, h->seed, crops, items, n, batch, dhw, NULL,
                           &part);
  /* every rank learns whether one failed, and the sums of the loss terms */
  float *buf;
  char mine[C3_ERROR_MAX] = "";
  if (s != CSAL3D_OK) snprintf(mine, sizeof mine, "%s", csal3d_last_error());
  C3_TRY(c3_calloc_array((size_t)size + 4, sizeof *buf, "step status", (void **)&buf));
  buf[rank] = s != CSAL3D_OK;
  buf[size] = (float)part.inp, buf[size + 1] = (float)part.rot;
  buf[size + 2] = (float)part.cons, buf[size + 3] = (float)part.total;
  csal3d_status cs = c3_comm_allreduce(h->ctx, buf, (size_t)size + 4, CSAL3D_COMM_SUM, what);
  int first = -1;
  for (int r = 0; cs == CSAL3D_OK && r < size && first < 0; r++)
    if (buf[r] != 0) first = r;
  c3_ssl_terms sum = {buf[size], buf[size + 1], buf[size + 2], buf[size + 3]};
  c3_free(buf);
  if (cs != CSAL3D_OK) return cs;
  if (s != CSAL3D_OK) return c3_error(s, "rank %d: %s", rank, mine);
  if (first >= 0)
    return c3_error(CSAL3D_ERR_STATE, "%s: rank %d failed (its messages say why); every rank "
                    "stops at this step", what, first);
  double t0 = c3_seconds();
  C3_TRY(c3_ssl_allreduce_grads(h, what));
  c3_log(h->ctx, CSAL3D_LOG_INFO, "%s: gradients (%zu floats) summed over %d ranks in %.3f s",
         what, h->m->total, size, c3_seconds() - t0);
  C3_TRY(c3_ssl_check_terms(&sum, step));
  C3_TRY(c3_optim_step(h->opt));
  c3_ssl_record_last(h, &sum);
  return CSAL3D_OK;
}

csal3d_status c3_ssl_sync(csal3d_ssl_model *h) {
  if (c3_comm_size(h->ctx) == 1) return CSAL3D_OK;
  /* the same run on every rank: else the message names what differs from rank 0 */
  enum { K = 6 };
  static const char *const names[K] = {"step", "iterations", "batch_size", "seed",
                                       "parameter count", "crop_size"};
  int64_t mine[K] = {h->opt->step, h->o.iterations, h->o.batch_size, (int64_t)h->seed,
                     (int64_t)h->m->total,
                     h->o.crop_size[0] * 1000000 + h->o.crop_size[1] * 1000 + h->o.crop_size[2]};
  int64_t root[K];
  memcpy(root, mine, sizeof root);
  C3_TRY(c3_comm_broadcast(h->ctx, root, sizeof root, 0, "pretraining: the run's settings"));
  int bad = -1;
  for (int k = 0; k < K && bad < 0; k++)
    if (root[k] != mine[k]) bad = k;
  int first;
  char msg[C3_ERROR_MAX] = "";
  if (bad >= 0)
    snprintf(msg, sizeof msg, "rank %d has %s %lld where rank 0 has %lld: every rank must "
             "load the same checkpoint with the same options", c3_comm_rank(h->ctx), names[bad],
             (long long)mine[bad], (long long)root[bad]);
  C3_TRY(c3_comm_any_failed(h->ctx, bad >= 0, &first, "pretraining: the run's settings"));
  if (bad >= 0) return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s", msg);
  if (first >= 0)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "rank %d's run differs from rank 0's (its "
                    "messages say how): every rank must load the same checkpoint with the "
                    "same options", first);
  /* rank 0's weights and moments on every rank */
  size_t n = h->m->total;
  float *w;
  C3_TRY(c3_alloc_array(3 * n, sizeof *w, "parameters (host copy)", (void **)&w));
  csal3d_status s = c3_model_get_params(h->m, w);
  if (s == CSAL3D_OK) s = c3_optim_get_moments(h->opt, w + n, w + 2 * n);
  if (s == CSAL3D_OK)
    s = c3_comm_broadcast(h->ctx, w, 3 * n * sizeof *w, 0, "pretraining: rank 0's parameters");
  if (s == CSAL3D_OK) s = c3_model_set_params(h->m, w);
  if (s == CSAL3D_OK) s = c3_optim_set_moments(h->opt, w + n, w + 2 * n);
  c3_free(w);
  return s;
}

CSAL3D_API csal3d_status csal3d_ssl_model_train_step(csal3d_ssl_model *h,
                                                     const float *crops, int64_t batch,
                                                     const int64_t dhw[3],
                                                     csal3d_ssl_losses *losses) {
  C3_CHECK_ARG(h && crops, "csal3d_ssl_model_train_step: NULL argument");
  C3_CHECK_ARG(batch >= 1, "csal3d_ssl_model_train_step: batch %lld must be >= 1",
               (long long)batch);
  C3_TRY(c3_check_dhw(dhw, "csal3d_ssl_model_train_step"));
  C3_CHECK_ARG(!losses || losses->struct_size >= sizeof(size_t),
               "csal3d_ssl_model_train_step: set losses->struct_size");
  int prev = c3_threads_enter(h->ctx->options.threads);
  size_t n = (size_t)(batch * h->o.in_channels * dhw[0] * dhw[1] * dhw[2]);
  csal3d_status s = c3_check_finite(crops, n, "csal3d_ssl_model_train_step: the crops");
  if (s == CSAL3D_OK) s = c3_ssl_step_impl(h, crops, batch, dhw);
  if (s == CSAL3D_OK) c3_ssl_data_add_crops(h, crops, n / (size_t)batch, batch);
  c3_threads_leave(prev);
  if (s == CSAL3D_OK && losses)
    s = c3_options_write(losses, &h->last, sizeof h->last, "csal3d_ssl_model_train_step");
  return s;
}

csal3d_status c3_ssl_crop_buffer(csal3d_ssl_model *h, size_t n, float **out) {
  if (h->crops_cap < n) {
    c3_free(h->crops);
    h->crops = NULL;
    h->crops_cap = 0;
    C3_TRY(c3_alloc_array(n, sizeof(float), "SSL crop batch", (void **)&h->crops));
    h->crops_cap = n;
  }
  *out = h->crops;
  return CSAL3D_OK;
}

csal3d_status c3_ssl_checkpoint(csal3d_ssl_model *h) {
  csal3d_status s = csal3d_ssl_model_save(h, h->ckpt_path);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "checkpoint at step %lld",
                                             (long long)h->opt->step);
  c3_log(h->ctx, CSAL3D_LOG_INFO, "checkpoint %s at step %lld", h->ckpt_path,
         (long long)h->opt->step);
  return CSAL3D_OK;
}

/* ---- inference ---- */

/* Runs f(i) for each of n inputs: uploads x[i], forward in evaluation mode. */
static csal3d_status c3_ssl_infer(csal3d_ssl_model *h, const float *x, int64_t n,
                                  const int64_t dhw[3], float *feat, csal3d_feature_mode fm,
                                  float *recon, float *logits) {
  c3_model *m = h->m;
  c3_engine *e = m->e;
  const size_t per = (size_t)(m->cfg.in_channels * dhw[0] * dhw[1] * dhw[2]);
  const int64_t fd = c3_ssl_feature_width(m, fm);
  float *dx = NULL, *df = NULL;
  csal3d_status s = e->alloc(e, per * sizeof(float), "model input", (void **)&dx);
  if (s == CSAL3D_OK && feat)
    s = e->alloc(e, (size_t)(16 * m->cfg.embed_dim) * sizeof(float), "feature",
                 (void **)&df);
  for (int64_t i = 0; s == CSAL3D_OK && i < n; i++) {
    s = e->upload(e, dx, x + (size_t)i * per, per * sizeof(float));
    if (s == CSAL3D_OK) s = c3_model_forward(m, dx, 1, dhw, 0);
    if (s == CSAL3D_OK && feat) {
      s = c3_ssl_feature(m, fm, df);
      if (s == CSAL3D_OK)
        s = e->download(e, feat + (size_t)i * (size_t)fd, df, (size_t)fd * sizeof(float));
    }
    if (s == CSAL3D_OK && recon)
      s = e->download(e, recon + (size_t)i * per, c3_model_reconstruction(m),
                      per * sizeof(float));
    if (s == CSAL3D_OK && logits)
      s = e->download(e, logits + (size_t)i * C3_MODEL_CLASSES, c3_model_logits(m),
                      C3_MODEL_CLASSES * sizeof(float));
  }
  if (dx) e->free(e, dx);
  if (df) e->free(e, df);
  return s;
}

CSAL3D_API csal3d_status csal3d_ssl_model_encode(csal3d_ssl_model *h, const float *x,
                                                 int64_t n, const int64_t dhw[3],
                                                 float *features, size_t capacity) {
  C3_CHECK_ARG(h && x && features, "csal3d_ssl_model_encode: NULL argument");
  C3_CHECK_ARG(n >= 1, "csal3d_ssl_model_encode: n %lld must be >= 1", (long long)n);
  C3_TRY(c3_check_dhw(dhw, "csal3d_ssl_model_encode"));
  int64_t fd = c3_ssl_feature_width(h->m, CSAL3D_FEATURE_DEFAULT);
  if (capacity < (size_t)(n * fd))
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL,
                    "csal3d_ssl_model_encode: %lld features of %lld values need %lld floats, "
                    "the buffer holds %zu",
                    (long long)n, (long long)fd, (long long)(n * fd), capacity);
  int prev = c3_threads_enter(h->ctx->options.threads);
  csal3d_status s = c3_check_finite(
      x, (size_t)(n * h->o.in_channels * dhw[0] * dhw[1] * dhw[2]), "csal3d_ssl_model_encode: x");
  if (s == CSAL3D_OK)
    s = c3_ssl_infer(h, x, n, dhw, features, CSAL3D_FEATURE_DEFAULT, NULL, NULL);
  c3_threads_leave(prev);
  return s;
}

CSAL3D_API csal3d_status csal3d_ssl_model_reconstruct(csal3d_ssl_model *h, const float *x,
                                                      int64_t n, const int64_t dhw[3],
                                                      float *out, size_t capacity,
                                                      float *logits) {
  C3_CHECK_ARG(h && x && out, "csal3d_ssl_model_reconstruct: NULL argument");
  C3_CHECK_ARG(n >= 1, "csal3d_ssl_model_reconstruct: n %lld must be >= 1", (long long)n);
  C3_TRY(c3_check_dhw(dhw, "csal3d_ssl_model_reconstruct"));
  size_t need = (size_t)(n * h->m->cfg.in_channels * dhw[0] * dhw[1] * dhw[2]);
  if (capacity < need)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL,
                    "csal3d_ssl_model_reconstruct: the output needs %zu floats, the buffer "
                    "holds %zu",
                    need, capacity);
  int prev = c3_threads_enter(h->ctx->options.threads);
  csal3d_status s = c3_check_finite(x, need, "csal3d_ssl_model_reconstruct: x");
  if (s == CSAL3D_OK) s = c3_ssl_infer(h, x, n, dhw, NULL, CSAL3D_FEATURE_DEFAULT, out, logits);
  c3_threads_leave(prev);
  return s;
}
