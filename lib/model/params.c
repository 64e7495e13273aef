/* The model's configuration, parameter table (MONAI names, one buffer),
 * initialisation and loading. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/model_internal.h"

void c3_model_config_default(c3_model_config *c, int embed_dim, int in_channels) {
  memset(c, 0, sizeof *c);
  c->embed_dim = embed_dim;
  c->in_channels = in_channels;
  for (int i = 0; i < C3_MODEL_STAGES; i++) {
    c->depths[i] = 2;
    c->heads[i] = 3 << i;
  }
  c->window = 7;
  c->patch = 2;
  c->mlp_ratio = 4;
  c->merge_order = C3_MERGE_DISTINCT; /* the v1 order; the parity data use it */
  c->rot_input = C3_ROT_MEAN;
  c->feature_full = 0;
}

csal3d_status c3_model_config_check(const c3_model_config *c) {
  C3_CHECK_ARG(c != NULL, "model configuration is NULL");
  C3_CHECK_ARG(c->embed_dim > 0 && c->embed_dim % 12 == 0 && c->embed_dim <= 4096,
               "embed_dim %d: must be a positive multiple of 12 (e.g. 48)",
               c->embed_dim);
  C3_CHECK_ARG(c->in_channels >= 1 && c->in_channels <= 1024,
               "in_channels %d: must be between 1 and 1024", c->in_channels);
  for (int i = 0; i < C3_MODEL_STAGES; i++) {
    C3_CHECK_ARG(c->depths[i] >= 1 && c->depths[i] <= C3_MODEL_MAX_DEPTH,
                 "depths[%d] = %d: must be between 1 and %d", i, c->depths[i],
                 C3_MODEL_MAX_DEPTH);
    int ch = c->embed_dim << i;
    C3_CHECK_ARG(c->heads[i] >= 1 && ch % c->heads[i] == 0,
                 "num_heads[%d] = %d does not divide the stage's %d channels", i,
                 c->heads[i], ch);
  }
  C3_CHECK_ARG(c->window >= 1 && c->window <= 31, "window_size %d: must be 1..31",
               c->window);
  if (c->patch != 2)
    return c3_error(CSAL3D_ERR_UNSUPPORTED, "patch_size %d: only 2 is supported",
                    c->patch);
  C3_CHECK_ARG(c->mlp_ratio >= 1 && c->mlp_ratio <= 16, "mlp_ratio %d: must be 1..16",
               c->mlp_ratio);
  C3_CHECK_ARG(c->merge_order == C3_MERGE_MONAI || c->merge_order == C3_MERGE_DISTINCT,
               "unknown patch merging order %d", (int)c->merge_order);
  C3_CHECK_ARG(c->rot_input == C3_ROT_MEAN || c->rot_input == C3_ROT_FIRST_TOKEN,
               "unknown rotation head input %d", (int)c->rot_input);
  return CSAL3D_OK;
}

/* Parses "a,b,c,d" into 4 ints. */
static int c3_parse_int4(const char *s, int out[4]) {
  char *end;
  for (int i = 0; i < 4; i++) {
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || errno || v < -1000000 || v > 1000000) return -1;
    out[i] = (int)v;
    s = end;
    if (i < 3) {
      if (*s != ',') return -1;
      s++;
    }
  }
  return *s == '\0' ? 0 : -1;
}

/* Metadata `key` as an int in [lo, hi] (left as it is when absent); a malformed or
 * out-of-range value is a FORMAT error naming the key and saying which it is. */
static csal3d_status c3_meta_int(const c3_safetensors *st, const char *key, int lo, int hi,
                                 int *out) {
  const char *v = c3_st_metadata(st, key);
  if (!v) return CSAL3D_OK;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  if (end == v || *end)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s = \"%.40s\" is not a whole number",
                    c3_st_source(st), key, v);
  if (errno == ERANGE || x < lo || x > hi)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s = %.40s is out of range (%d to %d)",
                    c3_st_source(st), key, v, lo, hi);
  *out = (int)x;
  return CSAL3D_OK;
}

/* MONAI's and timm's names of the same settings, accepted in metadata. */
static const char *c3_metadata_alias(const char *key) {
  if (strcmp(key, "embed_dim") == 0) return "feature_size";
  if (strcmp(key, "in_channels") == 0) return "in_chans";
  return NULL;
}

csal3d_status c3_model_metadata_int(const c3_safetensors *st, const char *key, int *value,
                                    const char **found) {
  const char *src = c3_st_source(st), *alias = c3_metadata_alias(key);
  const char *names[2] = {key, alias};
  int got[2], have[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    if (!names[i] || !c3_st_metadata(st, names[i])) continue;
    /* widths and channel counts: 1 to 4096 (anything larger is a corrupt file) */
    C3_TRY(c3_meta_int(st, names[i], 1, 4096, &got[i]));
    have[i] = 1;
  }
  if (have[0] && have[1] && got[0] != got[1])
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s %d and %s %d disagree", src, key,
                    got[0], alias, got[1]);
  if (found) *found = have[0] ? key : have[1] ? alias : NULL;
  if (have[0] || have[1]) *value = have[0] ? got[0] : got[1];
  return CSAL3D_OK;
}

csal3d_status c3_model_config_from_metadata(const c3_safetensors *st,
                                            c3_model_config *c) {
  const char *src = c3_st_source(st);
  const char *v;
  int ed = 48, ic = 1;
  C3_TRY(c3_model_metadata_int(st, "embed_dim", &ed, NULL));
  C3_TRY(c3_model_metadata_int(st, "in_channels", &ic, NULL));
  c3_model_config_default(c, ed, ic);
  if ((v = c3_st_metadata(st, "depths")) && c3_parse_int4(v, c->depths) != 0)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata depths \"%.60s\": want 4 whole numbers "
                    "(D,D,D,D)", src, v);
  if ((v = c3_st_metadata(st, "num_heads")) && c3_parse_int4(v, c->heads) != 0)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata num_heads \"%.60s\": want 4 whole numbers "
                    "(H,H,H,H)", src, v);
  C3_TRY(c3_meta_int(st, "window_size", 1, 31, &c->window));
  C3_TRY(c3_meta_int(st, "patch_size", 1, 1024, &c->patch));
  C3_TRY(c3_meta_int(st, "mlp_ratio", 1, 16, &c->mlp_ratio));
  if ((v = c3_st_metadata(st, "qkv_bias")) && strcmp(v, "true") != 0)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "%s: metadata qkv_bias \"%s\": only \"true\" is supported", src, v);
  if ((v = c3_st_metadata(st, "patch_merging")) && strcmp(v, "v1") != 0)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "%s: metadata patch_merging \"%s\": only \"v1\" is supported", src,
                    v);
  if ((v = c3_st_metadata(st, "merge_order"))) {
    if (strcmp(v, "monai") == 0) c->merge_order = C3_MERGE_MONAI;
    else if (strcmp(v, "distinct") == 0) c->merge_order = C3_MERGE_DISTINCT;
    else
      return c3_error(CSAL3D_ERR_UNSUPPORTED,
                      "%s: metadata merge_order \"%s\": \"monai\" or \"distinct\"", src,
                      v);
  }
  if ((v = c3_st_metadata(st, "rotation_input"))) {
    if (strcmp(v, "mean") == 0) c->rot_input = C3_ROT_MEAN;
    else if (strcmp(v, "first_token") == 0) c->rot_input = C3_ROT_FIRST_TOKEN;
    else
      return c3_error(CSAL3D_ERR_UNSUPPORTED,
                      "%s: metadata rotation_input \"%s\": \"mean\" or \"first_token\"",
                      src, v);
  }
  if ((v = c3_st_metadata(st, "feature"))) {
    if (strcmp(v, "triplet_mean") == 0) c->feature_full = 0;
    else if (strcmp(v, "full") == 0) c->feature_full = 1;
    else
      return c3_error(CSAL3D_ERR_UNSUPPORTED,
                      "%s: metadata feature \"%s\": \"triplet_mean\" or \"full\"", src, v);
  }
  /* Values the model cannot take are bad input (FORMAT), not a caller's mistake; the
   * check's message names the key (embed_dim, depths[i], num_heads[i], ...). */
  csal3d_status s = c3_model_config_check(c);
  if (s != CSAL3D_OK) {
    c3_error_prefix(s, "%s: model metadata", src);
    return s == CSAL3D_ERR_INVALID_ARGUMENT ? CSAL3D_ERR_FORMAT : s;
  }
  return CSAL3D_OK;
}

csal3d_status c3_model_config_to_metadata(const c3_model_config *c,
                                          c3_st_writer *w) {
  char buf[64];
  snprintf(buf, sizeof buf, "%d", c->embed_dim);
  C3_TRY(c3_st_writer_set_metadata(w, "embed_dim", buf));
  snprintf(buf, sizeof buf, "%d", c->in_channels);
  C3_TRY(c3_st_writer_set_metadata(w, "in_channels", buf));
  snprintf(buf, sizeof buf, "%d,%d,%d,%d", c->depths[0], c->depths[1], c->depths[2],
           c->depths[3]);
  C3_TRY(c3_st_writer_set_metadata(w, "depths", buf));
  snprintf(buf, sizeof buf, "%d,%d,%d,%d", c->heads[0], c->heads[1], c->heads[2],
           c->heads[3]);
  C3_TRY(c3_st_writer_set_metadata(w, "num_heads", buf));
  snprintf(buf, sizeof buf, "%d", c->window);
  C3_TRY(c3_st_writer_set_metadata(w, "window_size", buf));
  snprintf(buf, sizeof buf, "%d", c->patch);
  C3_TRY(c3_st_writer_set_metadata(w, "patch_size", buf));
  snprintf(buf, sizeof buf, "%d", c->mlp_ratio);
  C3_TRY(c3_st_writer_set_metadata(w, "mlp_ratio", buf));
  C3_TRY(c3_st_writer_set_metadata(w, "qkv_bias", "true"));
  C3_TRY(c3_st_writer_set_metadata(w, "patch_merging", "v1"));
  C3_TRY(c3_st_writer_set_metadata(
      w, "merge_order", c->merge_order == C3_MERGE_MONAI ? "monai" : "distinct"));
  C3_TRY(c3_st_writer_set_metadata(
      w, "rotation_input", c->rot_input == C3_ROT_MEAN ? "mean" : "first_token"));
  C3_TRY(c3_st_writer_set_metadata(w, "feature",
                                   c->feature_full ? "full" : "triplet_mean"));
  return CSAL3D_OK;
}

/* ---- the parameter table ---- */

typedef struct c3_table_builder {
  c3_param *p;
  size_t n, cap;
  size_t total;
} c3_table_builder;

static int c3_add_param(c3_table_builder *b, const char *name, c3_param_kind kind,
                        int ndim, const int64_t *shape, int fan_in) {
  c3_param *p = &b->p[b->n];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->kind = kind;
  p->ndim = ndim;
  p->numel = 1;
  for (int i = 0; i < ndim; i++) {
    p->shape[i] = shape[i];
    p->numel *= (size_t)shape[i];
  }
  p->offset = b->total;
  p->fan_in = fan_in;
  p->decay = kind == C3_PK_LINEAR_W || kind == C3_PK_CONV_W;
  /* Keep each parameter 16-float (64-byte) aligned within the buffer. */
  b->total += (p->numel + 15) / 16 * 16;
  return (int)b->n++;
}

static int c3_linear(c3_table_builder *b, const char *name, int64_t out, int64_t in,
                     int bias, int *bias_id) {
  char full[C3_PARAM_NAME_MAX];
  snprintf(full, sizeof full, "%s.weight", name);
  int64_t sw[2] = {out, in};
  int id = c3_add_param(b, full, C3_PK_LINEAR_W, 2, sw, (int)in);
  if (bias) {
    snprintf(full, sizeof full, "%s.bias", name);
    int64_t sb[1] = {out};
    *bias_id = c3_add_param(b, full, C3_PK_LINEAR_B, 1, sb, (int)in);
  }
  return id;
}

static void c3_norm(c3_table_builder *b, const char *name, int64_t ch, int *w,
                    int *bias) {
  char full[C3_PARAM_NAME_MAX];
  int64_t s[1] = {ch};
  snprintf(full, sizeof full, "%s.weight", name);
  *w = c3_add_param(b, full, C3_PK_NORM_W, 1, s, 0);
  snprintf(full, sizeof full, "%s.bias", name);
  *bias = c3_add_param(b, full, C3_PK_NORM_B, 1, s, 0);
}

static void c3_conv(c3_table_builder *b, const char *name, int64_t out, int64_t in,
                    int k, int *w, int *bias) {
  char full[C3_PARAM_NAME_MAX];
  int64_t sw[5] = {out, in, k, k, k}, sb[1] = {out};
  int fan_in = (int)(in * k * k * k);
  snprintf(full, sizeof full, "%s.weight", name);
  *w = c3_add_param(b, full, C3_PK_CONV_W, 5, sw, fan_in);
  snprintf(full, sizeof full, "%s.bias", name);
  *bias = c3_add_param(b, full, C3_PK_CONV_B, 1, sb, fan_in);
}

/* The table in MONAI's state_dict order. */
static csal3d_status c3_build_table(c3_model *m) {
  const c3_model_config *c = &m->cfg;
  size_t cap = 2 + 16 * 13 * 4 + 4 * 3 + 2 + 2 * (C3_MODEL_LEVELS + 1) + 8;
  c3_table_builder b = {0};
  C3_TRY(c3_calloc_array(cap, sizeof(c3_param), "parameter table", (void **)&b.p));
  b.cap = cap;
  c3_model_ids *id = &m->id;
  int64_t C = c->embed_dim, w = c->window;
  c3_conv(&b, "swinViT.patch_embed.proj", C, c->in_channels, c->patch, &id->embed_w,
          &id->embed_b);
  char name[88]; /* + ".weight" fits C3_PARAM_NAME_MAX */
  for (int s = 0; s < C3_MODEL_STAGES; s++) {
    int64_t ch = C << s;
    for (int k = 0; k < c->depths[s]; k++) {
      c3_block_ids *bi = &id->block[s][k];
      char pre[48];
      snprintf(pre, sizeof pre, "swinViT.layers%d.0.blocks.%d", s + 1, k);
      snprintf(name, sizeof name, "%s.norm1", pre);
      c3_norm(&b, name, ch, &bi->norm1_w, &bi->norm1_b);
      snprintf(name, sizeof name, "%s.attn.relative_position_bias_table", pre);
      int64_t ts[2] = {(2 * w - 1) * (2 * w - 1) * (2 * w - 1), c->heads[s]};
      bi->table = c3_add_param(&b, name, C3_PK_TABLE, 2, ts, 0);
      snprintf(name, sizeof name, "%s.attn.qkv", pre);
      bi->qkv_w = c3_linear(&b, name, 3 * ch, ch, 1, &bi->qkv_b);
      snprintf(name, sizeof name, "%s.attn.proj", pre);
      bi->proj_w = c3_linear(&b, name, ch, ch, 1, &bi->proj_b);
      snprintf(name, sizeof name, "%s.norm2", pre);
      c3_norm(&b, name, ch, &bi->norm2_w, &bi->norm2_b);
      snprintf(name, sizeof name, "%s.mlp.linear1", pre);
      bi->fc1_w = c3_linear(&b, name, c->mlp_ratio * ch, ch, 1, &bi->fc1_b);
      snprintf(name, sizeof name, "%s.mlp.linear2", pre);
      bi->fc2_w = c3_linear(&b, name, ch, c->mlp_ratio * ch, 1, &bi->fc2_b);
    }
    snprintf(name, sizeof name, "swinViT.layers%d.0.downsample.reduction", s + 1);
    id->red_w[s] = c3_linear(&b, name, 2 * ch, 8 * ch, 0, NULL);
    snprintf(name, sizeof name, "swinViT.layers%d.0.downsample.norm", s + 1);
    c3_norm(&b, name, 8 * ch, &id->dnorm_w[s], &id->dnorm_b[s]);
  }
  id->rot_w = c3_linear(&b, "rotation_head", C3_MODEL_CLASSES, 16 * C, 1, &id->rot_b);
  int64_t chans[C3_MODEL_LEVELS + 1] = {16 * C, 8 * C, 4 * C, 2 * C, C, C};
  for (int l = 0; l < C3_MODEL_LEVELS; l++) {
    snprintf(name, sizeof name, "conv.%d", 4 * l);
    c3_conv(&b, name, chans[l + 1], chans[l], 3, &id->conv_w[l], &id->conv_b[l]);
  }
  snprintf(name, sizeof name, "conv.%d", 4 * C3_MODEL_LEVELS);
  c3_conv(&b, name, c->in_channels, C, 1, &id->conv_w[C3_MODEL_LEVELS],
          &id->conv_b[C3_MODEL_LEVELS]);
  m->params = b.p;
  m->nparams = b.n;
  m->total = b.total;
  return CSAL3D_OK;
}

csal3d_status c3_model_create(c3_engine *e, const c3_model_config *cfg,
                              c3_model **out) {
  C3_CHECK_ARG(out != NULL, "c3_model_create: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(e != NULL, "c3_model_create: engine is NULL");
  C3_TRY(c3_model_config_check(cfg));
  c3_model *m;
  C3_TRY(c3_calloc_array(1, sizeof *m, "model", (void **)&m));
  m->cfg = *cfg;
  m->e = e;
  csal3d_status s = c3_build_table(m);
  if (s == CSAL3D_OK)
    s = e->alloc(e, m->total * sizeof(float), "model parameters", (void **)&m->w);
  if (s == CSAL3D_OK) s = e->zero(e, m->w, m->total * sizeof(float));
  if (s != CSAL3D_OK) {
    c3_model_free(m);
    return s;
  }
  *out = m;
  return CSAL3D_OK;
}

void c3_model_free(c3_model *m) {
  if (!m) return;
  c3_model_plan_free(m);
  if (m->w) m->e->free(m->e, m->w);
  if (m->g) m->e->free(m->e, m->g);
  c3_free(m->params);
  c3_free(m);
}

size_t c3_model_param_total(const c3_model *m) {
  size_t n = 0;
  for (size_t i = 0; i < m->nparams; i++) n += m->params[i].numel;
  return n;
}

int c3_model_find_param(const c3_model *m, const char *name) {
  for (size_t i = 0; i < m->nparams; i++)
    if (strcmp(m->params[i].name, name) == 0) return (int)i;
  return -1;
}

/* ---- initialisation ---- */

csal3d_status c3_model_init(c3_model *m, uint64_t seed) {
  float *host;
  C3_TRY(c3_alloc_array(m->total, sizeof(float), "parameter initialisation",
                        (void **)&host));
  csal3d_status s = c3_model_init_host(m, seed, host);
  if (s == CSAL3D_OK) s = m->e->upload(m->e, m->w, host, m->total * sizeof(float));
  c3_free(host);
  return s;
}

csal3d_status c3_model_init_host(const c3_model *m, uint64_t seed, float *host) {
  memset(host, 0, m->total * sizeof(float));
  for (size_t i = 0; i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    float *x = host + p->offset;
    c3_rng r;
    c3_rng_init(&r, seed, C3_RNG_INIT, i, 0, 0);
    switch (p->kind) {
      case C3_PK_LINEAR_W:
      case C3_PK_TABLE:
        /* torch.nn.init.trunc_normal_(std=0.02, a=-2, b=2): redraw outside [a, b]. */
        for (size_t k = 0; k < p->numel; k++) {
          double v;
          do v = 0.02 * c3_rng_normal(&r);
          while (v < -2.0 || v > 2.0);
          x[k] = (float)v;
        }
        break;
      case C3_PK_NORM_W:
        for (size_t k = 0; k < p->numel; k++) x[k] = 1.0f;
        break;
      case C3_PK_CONV_W:
      case C3_PK_CONV_B: {
        /* kaiming_uniform_(a=sqrt(5)) for the weight and the bias rule of
         * torch.nn.Conv3d.reset_parameters: both uniform(-1/sqrt(fan_in), +). */
        double bound = 1.0 / sqrt((double)p->fan_in);
        for (size_t k = 0; k < p->numel; k++)
          x[k] = (float)((2.0 * c3_rng_uniform(&r) - 1.0) * bound);
        break;
      }
      default: /* linear biases and norm biases: zero */
        break;
    }
  }
  return CSAL3D_OK;
}

void c3_model_shape_text(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t a = 0;
  if (n) buf[0] = '\0';
  for (int k = 0; k < ndim && a < n; k++)
    a += (size_t)snprintf(buf + a, n - a, "%s%lld", k ? ", " : "", (long long)shape[k]);
}

/* ---- loading ---- */

csal3d_status c3_model_load(c3_model *m, const c3_safetensors *st,
                            const char *prefix) {
  if (!prefix) prefix = "";
  float *host;
  C3_TRY(c3_calloc_array(m->total, sizeof(float), "parameter load", (void **)&host));
  csal3d_status s = CSAL3D_OK;
  char name[C3_PARAM_NAME_MAX + 256];
  for (size_t i = 0; i < m->nparams && s == CSAL3D_OK; i++) {
    const c3_param *p = &m->params[i];
    snprintf(name, sizeof name, "%s%s", prefix, p->name);
    const c3_st_entry *e = c3_st_find(st, name);
    if (!e) {
      s = c3_error(CSAL3D_ERR_FORMAT,
                   "%s: parameter '%s' is missing (embed_dim %d, in_channels %d)",
                   c3_st_source(st), name, m->cfg.embed_dim, m->cfg.in_channels);
      break;
    }
    int same = e->ndim == p->ndim;
    for (int k = 0; same && k < p->ndim; k++) same = e->shape[k] == p->shape[k];
    if (!same) {
      char want[128], got[128];
      c3_model_shape_text(p->ndim, p->shape, want, sizeof want);
      c3_model_shape_text(e->ndim, e->shape, got, sizeof got);
      s = c3_error(CSAL3D_ERR_FORMAT, "%s: parameter '%s' has shape [%s], the model "
                   "needs [%s]",
                   c3_st_source(st), name, got, want);
      break;
    }
    s = c3_st_entry_read_f32(st, e, host + p->offset, p->numel);
  }
  if (s == CSAL3D_OK) s = m->e->upload(m->e, m->w, host, m->total * sizeof(float));
  c3_free(host);
  return s;
}

csal3d_status c3_model_get_params(const c3_model *m, float *host) {
  return m->e->download(m->e, host, m->w, m->total * sizeof(float));
}

csal3d_status c3_model_set_params(c3_model *m, const float *host) {
  return m->e->upload(m->e, m->w, host, m->total * sizeof(float));
}

csal3d_status c3_model_zero_grad(c3_model *m) {
  if (!m->g)
    C3_TRY(m->e->alloc(m->e, m->total * sizeof(float), "model gradients",
                       (void **)&m->g));
  return m->e->zero(m->e, m->g, m->total * sizeof(float));
}

csal3d_status c3_model_get_grads(const c3_model *m, float *host) {
  if (!m->g)
    return c3_error(CSAL3D_ERR_STATE, "the model has no gradients yet (no backward)");
  return m->e->download(m->e, host, m->g, m->total * sizeof(float));
}
