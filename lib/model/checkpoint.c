/* Checkpoints: model, optimiser state, schedule and seed in one safetensors file. */
#include "model/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"

#define C3_CKPT_FORMAT "csal3d-checkpoint"

/* Metadata in key order, for the checksum. */
typedef struct c3_kv {
  const char *k, *v;
} c3_kv;

static int c3_kv_cmp(const void *a, const void *b) {
  return strcmp(((const c3_kv *)a)->k, ((const c3_kv *)b)->k);
}

static uint32_t c3_ckpt_crc(uint32_t data_crc, c3_kv *kv, size_t n) {
  qsort(kv, n, sizeof *kv, c3_kv_cmp);
  uLong crc = data_crc;
  for (size_t i = 0; i < n; i++) {
    if (strcmp(kv[i].k, "checksum") == 0) continue;
    crc = crc32(crc, (const Bytef *)kv[i].k, (uInt)strlen(kv[i].k) + 1);
    crc = crc32(crc, (const Bytef *)kv[i].v, (uInt)strlen(kv[i].v) + 1);
  }
  return (uint32_t)crc;
}

uint32_t c3_checkpoint_checksum(const c3_safetensors *st) {
  size_t n = c3_st_metadata_count(st);
  c3_kv *kv;
  if (c3_alloc_array(n ? n : 1, sizeof *kv, "checksum", (void **)&kv) != CSAL3D_OK)
    return 0;
  for (size_t i = 0; i < n; i++) c3_st_metadata_at(st, i, &kv[i].k, &kv[i].v);
  uint32_t crc = c3_ckpt_crc(c3_st_data_crc32(st), kv, n);
  c3_free(kv);
  return crc;
}

static csal3d_status c3_meta_f(c3_st_writer *w, const char *k, double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", v);
  return c3_st_writer_set_metadata(w, k, buf);
}

static csal3d_status c3_meta_i(c3_st_writer *w, const char *k, long long v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", v);
  return c3_st_writer_set_metadata(w, k, buf);
}

static const char *const c3_reserved[] = {
    "format", "format_version", "step", "seed", "checksum", "optim.lr", "optim.beta1",
    "optim.beta2", "optim.eps", "optim.weight_decay", "optim.clip_norm",
    "optim.warmup_steps", "optim.total_steps", "embed_dim", "in_channels", "depths",
    "num_heads", "window_size", "patch_size", "mlp_ratio", "qkv_bias", "patch_merging",
    "merge_order", "rotation_input", "feature", NULL};

csal3d_status c3_checkpoint_save(const char *path, const c3_model *m,
                                 const c3_optim *o, uint64_t seed,
                                 const char *const *extra) {
  C3_CHECK_ARG(path && m, "c3_checkpoint_save: NULL argument");
  if (extra)
    for (size_t i = 0; extra[i]; i += 2) {
      C3_CHECK_ARG(extra[i + 1] != NULL, "checkpoint extra metadata '%s' has no value",
                   extra[i]);
      for (size_t r = 0; c3_reserved[r]; r++)
        C3_CHECK_ARG(strcmp(extra[i], c3_reserved[r]) != 0,
                     "checkpoint extra metadata key '%s' is reserved", extra[i]);
    }
  size_t total = m->total;
  float *host = NULL, *mh = NULL, *vh = NULL;
  c3_st_writer *w = NULL;
  csal3d_status s =
      c3_alloc_array(total, sizeof(float), "checkpoint parameters", (void **)&host);
  if (s == CSAL3D_OK) s = c3_model_get_params(m, host);
  if (s == CSAL3D_OK && o) {
    s = c3_alloc_array(total, sizeof(float), "checkpoint moments", (void **)&mh);
    if (s == CSAL3D_OK)
      s = c3_alloc_array(total, sizeof(float), "checkpoint moments", (void **)&vh);
    if (s == CSAL3D_OK) s = c3_optim_get_moments(o, mh, vh);
  }
  if (s == CSAL3D_OK) s = c3_st_writer_create(&w);
  for (size_t i = 0; s == CSAL3D_OK && i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    s = c3_st_writer_add(w, p->name, C3_ST_F32, p->ndim, p->shape, host + p->offset);
  }
  for (size_t i = 0; s == CSAL3D_OK && o && i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    char buf[C3_PARAM_NAME_MAX + 32];
    snprintf(buf, sizeof buf, "optim.exp_avg.%s", p->name);
    s = c3_st_writer_add(w, buf, C3_ST_F32, p->ndim, p->shape, mh + p->offset);
    if (s != CSAL3D_OK) break;
    snprintf(buf, sizeof buf, "optim.exp_avg_sq.%s", p->name);
    s = c3_st_writer_add(w, buf, C3_ST_F32, p->ndim, p->shape, vh + p->offset);
  }
  /* Metadata, also collected for the checksum. */
  if (s == CSAL3D_OK) s = c3_model_config_to_metadata(&m->cfg, w);
  if (s == CSAL3D_OK) s = c3_st_writer_set_metadata(w, "format", C3_CKPT_FORMAT);
  if (s == CSAL3D_OK) s = c3_st_writer_set_metadata(w, "format_version", "1");
  if (s == CSAL3D_OK) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, seed);
    s = c3_st_writer_set_metadata(w, "seed", buf);
  }
  if (s == CSAL3D_OK) s = c3_meta_i(w, "step", o ? (long long)o->step : 0);
  if (s == CSAL3D_OK && o) {
    const c3_optim_config *c = &o->cfg;
    if (s == CSAL3D_OK) s = c3_meta_f(w, "optim.lr", c->lr);
    if (s == CSAL3D_OK) s = c3_meta_f(w, "optim.beta1", c->beta1);
    if (s == CSAL3D_OK) s = c3_meta_f(w, "optim.beta2", c->beta2);
    if (s == CSAL3D_OK) s = c3_meta_f(w, "optim.eps", c->eps);
    if (s == CSAL3D_OK) s = c3_meta_f(w, "optim.weight_decay", c->weight_decay);
    if (s == CSAL3D_OK) s = c3_meta_f(w, "optim.clip_norm", c->clip_norm);
    if (s == CSAL3D_OK) s = c3_meta_i(w, "optim.warmup_steps", (long long)c->warmup_steps);
    if (s == CSAL3D_OK) s = c3_meta_i(w, "optim.total_steps", (long long)c->total_steps);
  }
  for (size_t i = 0; s == CSAL3D_OK && extra && extra[i]; i += 2)
    s = c3_st_writer_set_metadata(w, extra[i], extra[i + 1]);
  if (s == CSAL3D_OK) {
    /* Serialise once without the checksum to read the metadata back in the
     * writer's own form, then add the checksum and write the file. */
    void *buf;
    size_t len;
    s = c3_st_writer_write_buffer(w, &buf, &len);
    if (s == CSAL3D_OK) {
      c3_safetensors *st;
      s = c3_st_parse(buf, len, path, &st);
      if (s == CSAL3D_OK) {
        char sum[32];
        snprintf(sum, sizeof sum, "crc32:%08x", c3_checkpoint_checksum(st));
        c3_st_free(st);
        s = c3_st_writer_set_metadata(w, "checksum", sum);
      }
      c3_free(buf);
    }
  }
  if (s == CSAL3D_OK) s = c3_st_writer_write_file(w, path);
  c3_st_writer_free(w);
  c3_free(host);
  c3_free(mh);
  c3_free(vh);
  return s;
}

csal3d_status c3_checkpoint_open(const char *path, c3_safetensors **out,
                                 int *verified) {
  C3_CHECK_ARG(out != NULL, "c3_checkpoint_open: out is NULL");
  *out = NULL;
  if (verified) *verified = 0;
  c3_safetensors *st;
  C3_TRY(c3_st_open(path, &st));
  const char *sum = c3_st_metadata(st, "checksum");
  if (sum) {
    char want[32];
    snprintf(want, sizeof want, "crc32:%08x", c3_checkpoint_checksum(st));
    if (strcmp(sum, want) != 0) {
      csal3d_status s = c3_error(CSAL3D_ERR_CHECKSUM,
                                 "%s: checksum mismatch (file says %.40s, contents give "
                                 "%s): the checkpoint is corrupt or was modified",
                                 path, sum, want);
      c3_st_free(st);
      return s;
    }
    if (verified) *verified = 1;
  }
  *out = st;
  return CSAL3D_OK;
}

static csal3d_status c3_meta_get_f(const c3_safetensors *st, const char *k, double *v) {
  const char *s = c3_st_metadata(st, k);
  if (!s)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata '%s' is missing", c3_st_source(st),
                    k);
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  if (end == s || *end || !isfinite(*v))
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata '%s' = \"%.40s\" is not a finite number",
                    c3_st_source(st), k, s);
  return CSAL3D_OK;
}

static csal3d_status c3_meta_get_i(const c3_safetensors *st, const char *k, int64_t *v) {
  const char *s = c3_st_metadata(st, k);
  if (!s)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata '%s' is missing", c3_st_source(st),
                    k);
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (end == s || *end)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata '%s' = \"%.40s\" is not a whole number",
                    c3_st_source(st), k, s);
  if (errno == ERANGE || x < 0)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: metadata '%s' = %.40s is out of range (0 or more)",
                    c3_st_source(st), k, s);
  *v = x;
  return CSAL3D_OK;
}

csal3d_status c3_checkpoint_restore(const c3_safetensors *st, c3_model *m, c3_optim *o,
                                    uint64_t *seed) {
  C3_CHECK_ARG(st && m, "c3_checkpoint_restore: NULL argument");
  c3_model_config c;
  C3_TRY(c3_model_config_from_metadata(st, &c));
  if (memcmp(&c, &m->cfg, sizeof c) != 0)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "%s: the checkpoint's model (embed_dim %d, in_channels %d) differs "
                    "from this model's (embed_dim %d, in_channels %d) or its options",
                    c3_st_source(st), c.embed_dim, c.in_channels, m->cfg.embed_dim,
                    m->cfg.in_channels);
  if (seed) {
    const char *sv = c3_st_metadata(st, "seed");
    *seed = sv ? strtoull(sv, NULL, 10) : 0;
  }
  if (!o) return c3_model_load(m, st, "");
  /* Optimiser: everything is read before anything is changed. */
  c3_optim_config oc = o->cfg;
  int64_t step;
  C3_TRY(c3_meta_get_i(st, "step", &step));
  C3_TRY(c3_meta_get_f(st, "optim.lr", &oc.lr));
  C3_TRY(c3_meta_get_f(st, "optim.beta1", &oc.beta1));
  C3_TRY(c3_meta_get_f(st, "optim.beta2", &oc.beta2));
  C3_TRY(c3_meta_get_f(st, "optim.eps", &oc.eps));
  C3_TRY(c3_meta_get_f(st, "optim.weight_decay", &oc.weight_decay));
  C3_TRY(c3_meta_get_f(st, "optim.clip_norm", &oc.clip_norm));
  C3_TRY(c3_meta_get_i(st, "optim.warmup_steps", &oc.warmup_steps));
  C3_TRY(c3_meta_get_i(st, "optim.total_steps", &oc.total_steps));
  csal3d_status s = c3_optim_config_check(&oc);
  if (s != CSAL3D_OK) { /* bad input (FORMAT), naming the optim.* value */
    c3_error_prefix(s, "%s: metadata optim.*", c3_st_source(st));
    return s == CSAL3D_ERR_INVALID_ARGUMENT ? CSAL3D_ERR_FORMAT : s;
  }
  float *mh, *vh;
  C3_TRY(c3_calloc_array(m->total, sizeof(float), "checkpoint moments", (void **)&mh));
  s = c3_calloc_array(m->total, sizeof(float), "checkpoint moments", (void **)&vh);
  char name[C3_PARAM_NAME_MAX + 32];
  for (size_t i = 0; s == CSAL3D_OK && i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    snprintf(name, sizeof name, "optim.exp_avg.%s", p->name);
    s = c3_st_read_f32(st, name, mh + p->offset, p->numel);
    if (s != CSAL3D_OK) break;
    snprintf(name, sizeof name, "optim.exp_avg_sq.%s", p->name);
    s = c3_st_read_f32(st, name, vh + p->offset, p->numel);
  }
  if (s == CSAL3D_OK) s = c3_model_load(m, st, "");
  if (s == CSAL3D_OK) s = c3_optim_set_moments(o, mh, vh);
  if (s == CSAL3D_OK) {
    o->cfg = oc;
    o->step = step;
  }
  c3_free(mh);
  c3_free(vh);
  return s;
}
