/* The 3-D U-Net (model/unet.h): parameter table, initialisation, forward, backward,
 * AdamW, checkpoint tensors. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "model/unet.h"

/* ---- configuration and parameters ---------------------------------------------------- */

void c3_unet_config_default(c3_unet_config *c, int in_channels, int classes) {
  memset(c, 0, sizeof *c);
  c->in_channels = in_channels;
  c->classes = classes;
  c->stages = 5;
  for (int s = 0; s < 5; s++) c->widths[s] = 16 << s;
  c->slope = 0.01f;
}

csal3d_status c3_unet_config_check(const c3_unet_config *c) {
  C3_CHECK_ARG(c, "U-Net configuration is NULL");
  C3_CHECK_ARG(c->in_channels >= 1 && c->in_channels <= 1024,
               "U-Net: in_channels %d (must be 1..1024)", c->in_channels);
  C3_CHECK_ARG(c->classes >= 2 && c->classes <= 64,
               "U-Net: %d classes (background + labels: 2..64)", c->classes);
  C3_CHECK_ARG(c->stages >= 2 && c->stages <= C3_UNET_MAX_STAGES,
               "U-Net: %d stages (must be 2..%d)", c->stages, C3_UNET_MAX_STAGES);
  C3_CHECK_ARG(c->slope >= 0.0f && c->slope <= 1.0f, "U-Net: LeakyReLU slope %g (must be 0..1)",
               c->slope);
  for (int s = 0; s < c->stages; s++)
    C3_CHECK_ARG(c->widths[s] >= 1 && c->widths[s] <= 4096,
                 "U-Net: width %d of stage %d (must be 1..4096)", c->widths[s], s);
  return CSAL3D_OK;
}

/* off[0]: the next offset among the decayed parameters (the convolution weights, first
 * in the buffer), off[1]: among the others (the biases, after them). */
static int add_param(c3_unet *u, int count_only, const char *name, int ndim,
                     const int64_t *shape, int decay, size_t off[2]) {
  int id = (int)u->nparams++;
  size_t n = 1;
  for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
  if (!count_only) {
    c3_param *p = &u->params[id];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = ndim == 5 ? C3_PK_CONV_W : C3_PK_CONV_B;
    p->ndim = ndim;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i];
    p->offset = off[decay ? 0 : 1];
    p->numel = n;
    p->fan_in = ndim == 5 ? (int)(shape[1] * shape[2] * shape[3] * shape[4]) : 0;
    p->decay = decay;
  }
  off[decay ? 0 : 1] += (n + 15) & ~(size_t)15; /* 64-byte aligned views */
  return id;
}

static int add_conv(c3_unet *u, int count_only, const char *prefix, int64_t o, int64_t i,
                    int k, size_t off[2], int *bias_id) {
  char name[C3_PARAM_NAME_MAX];
  int64_t ws[5] = {o, i, k, k, k}, bs[1] = {o};
  snprintf(name, sizeof name, "%s.weight", prefix);
  int wid = add_param(u, count_only, name, 5, ws, 1, off);
  snprintf(name, sizeof name, "%s.bias", prefix);
  *bias_id = add_param(u, count_only, name, 1, bs, 0, off);
  return wid;
}

/* Weights first, then biases (u->decay_total floats, then the rest): AdamW runs as two
 * calls, one with weight decay and one without. The count pass sets decay_total. */
static void build_table(c3_unet *u, int count_only) {
  const c3_unet_config *c = &u->cfg;
  size_t off[2] = {0, count_only ? 0 : u->decay_total};
  char pre[64];
  u->nparams = 0;
  for (int s = 0; s < c->stages; s++) {
    int64_t cin = s == 0 ? c->in_channels : c->widths[s - 1], w = c->widths[s];
    for (int j = 0; j < 2; j++) {
      snprintf(pre, sizeof pre, "enc.%d.conv.%d", s, j);
      u->enc_w[s][j] = add_conv(u, count_only, pre, w, j ? w : cin, 3, off, &u->enc_b[s][j]);
    }
  }
  for (int s = c->stages - 2; s >= 0; s--) {
    int64_t w = c->widths[s];
    snprintf(pre, sizeof pre, "dec.%d.up", s);
    /* ConvTranspose3d(widths[s+1] -> w): weight [widths[s+1], w, 2, 2, 2], bias [w] */
    u->up_w[s] = add_conv(u, count_only, pre, c->widths[s + 1], w, 2, off, &u->up_b[s]);
    if (!count_only) { /* the bias is the output side's */
      c3_param *b = &u->params[u->up_b[s]];
      b->shape[0] = w;
      b->numel = (size_t)w;
    }
    for (int j = 0; j < 2; j++) {
      snprintf(pre, sizeof pre, "dec.%d.conv.%d", s, j);
      u->dec_w[s][j] = add_conv(u, count_only, pre, w, j ? w : 2 * w, 3, off, &u->dec_b[s][j]);
    }
  }
  u->head_w = add_conv(u, count_only, "head", c->classes, c->widths[0], 1, off, &u->head_b);
  if (count_only) u->decay_total = off[0];
  u->total = count_only ? off[0] + off[1] : off[1];
}

struct c3_unet_plan {
  int64_t n, dhw[3];
  int64_t side[C3_UNET_MAX_STAGES][3], vox[C3_UNET_MAX_STAGES]; /* per image */
  /* workspace offsets (floats): [0] encoder, [1] decoder; per stage conv outputs c0, c1,
   * activations a0, a1, statistics */
  size_t c0[2][C3_UNET_MAX_STAGES], c1[2][C3_UNET_MAX_STAGES], a0[2][C3_UNET_MAX_STAGES],
      a1[2][C3_UNET_MAX_STAGES], st[2][C3_UNET_MAX_STAGES]; /* st: mean0, var0, mean1, var1 */
  size_t up[C3_UNET_MAX_STAGES], cat[C3_UNET_MAX_STAGES], logits;
  size_t g1, g2, dskip[C3_UNET_MAX_STAGES];
  float *ws;
  size_t ws_floats, ws_cap;
  int backward_ready;
};

csal3d_status c3_unet_create(c3_engine *e, const c3_unet_config *cfg, c3_unet **out) {
  *out = NULL;
  C3_CHECK_ARG(e && cfg, "c3_unet_create: NULL argument");
  C3_TRY(c3_unet_config_check(cfg));
  c3_unet *u;
  C3_TRY(c3_calloc_array(1, sizeof *u, "U-Net", (void **)&u));
  u->cfg = *cfg;
  u->e = e;
  build_table(u, 1);
  csal3d_status s = c3_calloc_array(u->nparams, sizeof(c3_param), "U-Net parameter table",
                                    (void **)&u->params);
  if (s == CSAL3D_OK) {
    build_table(u, 0);
    s = e->alloc(e, u->total * sizeof(float), "U-Net parameters", (void **)&u->w);
  }
  if (s == CSAL3D_OK) s = e->zero(e, u->w, u->total * sizeof(float));
  if (s != CSAL3D_OK) {
    c3_unet_free(u);
    return s;
  }
  *out = u;
  return CSAL3D_OK;
}

void c3_unet_free(c3_unet *u) {
  if (!u) return;
  c3_engine *e = u->e;
  if (u->plan) {
    e->free(e, u->plan->ws);
    c3_free(u->plan);
  }
  e->free(e, u->w);
  e->free(e, u->g);
  e->free(e, u->m);
  e->free(e, u->v);
  c3_free(u->params);
  c3_free(u);
}

csal3d_status c3_unet_init(c3_unet *u, uint64_t seed) {
  float *host;
  C3_TRY(c3_calloc_array(u->total, sizeof(float), "U-Net initial parameters", (void **)&host));
  const double gain = sqrt(2.0 / (1.0 + 0.01 * 0.01));
  for (size_t i = 0; i < u->nparams; i++) {
    const c3_param *p = &u->params[i];
    if (p->ndim != 5) continue; /* biases 0 */
    c3_rng r;
    c3_rng_init(&r, seed, C3_RNG_INIT, i, 0x554e4554 /* "UNET" */, 0);
    c3_rng_fill_normal(&r, host + p->offset, p->numel, 0.0f, (float)(gain / sqrt(p->fan_in)));
  }
  csal3d_status s = u->e->upload(u->e, u->w, host, u->total * sizeof(float));
  c3_free(host);
  return s;
}

csal3d_status c3_unet_zero_grad(c3_unet *u) {
  c3_engine *e = u->e;
  if (!u->g) C3_TRY(e->alloc(e, u->total * sizeof(float), "U-Net gradients", (void **)&u->g));
  return e->zero(e, u->g, u->total * sizeof(float));
}

csal3d_status c3_unet_get_params(const c3_unet *u, float *host) {
  return u->e->download(u->e, host, u->w, u->total * sizeof(float));
}
csal3d_status c3_unet_set_params(c3_unet *u, const float *host) {
  return u->e->upload(u->e, u->w, host, u->total * sizeof(float));
}
csal3d_status c3_unet_get_grads(const c3_unet *u, float *host) {
  C3_CHECK_ARG(u->g, "U-Net: no gradients yet");
  return u->e->download(u->e, host, u->g, u->total * sizeof(float));
}

/* ---- the plan: sides and workspace offsets --------------------------------------------- */

static csal3d_status make_plan(c3_unet *u, int64_t n, const int64_t dhw[3]) {
  c3_unet_plan *p = u->plan;
  if (p && p->n == n && !memcmp(p->dhw, dhw, sizeof p->dhw)) return CSAL3D_OK;
  const c3_unet_config *c = &u->cfg;
  const int L = c->stages;
  for (int a = 0; a < 3; a++)
    C3_CHECK_ARG(dhw[a] >= 1 && dhw[a] % ((int64_t)1 << (L - 1)) == 0,
                 "U-Net: side %lld of axis %d is not a multiple of %lld (2^(stages-1))",
                 (long long)dhw[a], a, (long long)1 << (L - 1));
  C3_CHECK_ARG(n >= 1, "U-Net: batch %lld", (long long)n);
  if (!p) {
    C3_TRY(c3_calloc_array(1, sizeof *p, "U-Net plan", (void **)&u->plan));
    p = u->plan;
  }
  p->n = n;
  memcpy(p->dhw, dhw, sizeof p->dhw);
  p->backward_ready = 0;
  size_t off = 0;
#define TAKE(field, count)                                                                    \
  do {                                                                                        \
    (field) = off;                                                                            \
    off += ((size_t)(count) + 15) & ~(size_t)15;                                              \
  } while (0)
  size_t gmax = 0;
  for (int s = 0; s < L; s++) {
    for (int a = 0; a < 3; a++) p->side[s][a] = dhw[a] >> s;
    p->vox[s] = p->side[s][0] * p->side[s][1] * p->side[s][2];
    size_t t = (size_t)(n * p->vox[s] * c->widths[s]);
    for (int k = 0; k < 2; k++) {
      if (k == 1 && s == L - 1) continue; /* no decoder at the bottom */
      TAKE(p->c0[k][s], t);
      TAKE(p->a0[k][s], t);
      TAKE(p->c1[k][s], t);
      TAKE(p->a1[k][s], t);
      TAKE(p->st[k][s], 4 * n * c->widths[s]);
    }
    if (s < L - 1) {
      TAKE(p->up[s], t);
      TAKE(p->cat[s], 2 * t);
      TAKE(p->dskip[s], t);
      if (2 * t > gmax) gmax = 2 * t;
    } else if (t > gmax) {
      gmax = t;
    }
  }
  TAKE(p->logits, n * p->vox[0] * c->classes);
  TAKE(p->g1, gmax);
  TAKE(p->g2, gmax);
#undef TAKE
  p->ws_floats = off;
  if (off > p->ws_cap) {
    u->e->free(u->e, p->ws);
    p->ws = NULL;
    p->ws_cap = 0;
    C3_TRY(u->e->alloc(u->e, off * sizeof(float), "U-Net activations", (void **)&p->ws));
    p->ws_cap = off;
  }
  return CSAL3D_OK;
}

size_t c3_unet_workspace_bytes(const c3_unet *u) {
  return u->plan ? u->plan->ws_floats * sizeof(float) : 0;
}

/* ---- forward ----------------------------------------------------------------------------- */

#define W(id) (u->w + u->params[(id)].offset)
#define G(id) (u->g + u->params[(id)].offset)
#define A(off) (p->ws + (off))

static c3_conv3d_desc conv_desc(int64_t n, int64_t cin, int64_t cout, const int64_t in[3],
                                int k, int stride, int pad, c3_layout src) {
  c3_conv3d_desc d;
  memset(&d, 0, sizeof d);
  d.n = n, d.c_in = cin, d.c_out = cout;
  for (int a = 0; a < 3; a++) {
    d.in[a] = in[a];
    d.k[a] = k;
    d.stride[a] = stride;
    d.pad[a] = pad;
  }
  d.src_layout = src;
  d.dst_layout = C3_LAYOUT_NDHWC;
  return d;
}

/* the engine ops the U-Net calls */
static csal3d_status check_engine(const c3_engine *e, int train) {
  const struct {
    const char *name;
    int ok;
  } need[] = {
      {"conv3d_fwd", e->conv3d_fwd != NULL},
      {"conv3d_bwd_data", e->conv3d_bwd_data != NULL},
      {"inorm_lrelu_fwd", e->inorm_lrelu_fwd != NULL},
      {"channel_copy", e->channel_copy != NULL},
      {"broadcast", e->broadcast != NULL},
      {"conv3d_bwd_weights", !train || e->conv3d_bwd_weights != NULL},
      {"inorm_lrelu_bwd", !train || e->inorm_lrelu_bwd != NULL},
      {"reduce_sum", !train || e->reduce_sum != NULL},
      {"seg_loss", !train || e->seg_loss != NULL},
      {"adamw", !train || e->adamw != NULL},
      {"dot", !train || e->dot != NULL},
  };
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (!need[i].ok)
      return c3_error(CSAL3D_ERR_UNSUPPORTED,
                      "the segmentation U-Net is not supported on the %s engine yet (it has no "
                      "%s op); use the CPU",
                      e->name, need[i].name);
  return CSAL3D_OK;
}

csal3d_status c3_unet_check_engine(const c3_engine *e, int train) { return check_engine(e, train); }

/* conv + instance norm + LeakyReLU */
static csal3d_status conv_block(c3_unet *u, const c3_conv3d_desc *d, const float *x, int wid,
                                int bid, float *c, float *a, float *mean, float *var) {
  c3_engine *e = u->e;
  C3_TRY(e->conv3d_fwd(e, d, x, W(wid), W(bid), c));
  c3_inorm_desc in = {d->n,
                      d->c_out,
                      c3_conv3d_out_side(d, 0),
                      c3_conv3d_out_side(d, 1),
                      c3_conv3d_out_side(d, 2),
                      C3_LAYOUT_NDHWC,
                      1e-5f,
                      u->cfg.slope};
  return e->inorm_lrelu_fwd(e, &in, c, a, mean, var);
}

csal3d_status c3_unet_forward(c3_unet *u, const float *x, int64_t n, const int64_t dhw[3],
                              int train) {
  C3_CHECK_ARG(u && x && dhw, "c3_unet_forward: NULL argument");
  c3_engine *e = u->e;
  C3_TRY(check_engine(e, train));
  C3_TRY(make_plan(u, n, dhw));
  c3_unet_plan *p = u->plan;
  p->backward_ready = 0;
  const c3_unet_config *c = &u->cfg;
  const int L = c->stages;
  for (int s = 0; s < L; s++) {
    int64_t w = c->widths[s], nw = n * w;
    float *st = A(p->st[0][s]);
    c3_conv3d_desc d = s == 0 ? conv_desc(n, c->in_channels, w, p->side[0], 3, 1, 1,
                                          C3_LAYOUT_NCDHW)
                              : conv_desc(n, c->widths[s - 1], w, p->side[s - 1], 3, 2, 1,
                                          C3_LAYOUT_NDHWC);
    C3_TRY(conv_block(u, &d, s == 0 ? x : A(p->a1[0][s - 1]), u->enc_w[s][0], u->enc_b[s][0],
                      A(p->c0[0][s]), A(p->a0[0][s]), st, st + nw));
    d = conv_desc(n, w, w, p->side[s], 3, 1, 1, C3_LAYOUT_NDHWC);
    C3_TRY(conv_block(u, &d, A(p->a0[0][s]), u->enc_w[s][1], u->enc_b[s][1], A(p->c1[0][s]),
                      A(p->a1[0][s]), st + 2 * nw, st + 3 * nw));
  }
  const float *cur = A(p->a1[0][L - 1]);
  for (int s = L - 2; s >= 0; s--) {
    int64_t w = c->widths[s], nw = n * w, rows = n * p->vox[s];
    float *st = A(p->st[1][s]);
    /* transposed conv: the data gradient of the k2 s2 conv w -> widths[s+1] */
    c3_conv3d_desc ud = conv_desc(n, w, c->widths[s + 1], p->side[s], 2, 2, 0, C3_LAYOUT_NDHWC);
    C3_TRY(e->conv3d_bwd_data(e, &ud, cur, W(u->up_w[s]), A(p->up[s]), 0));
    C3_TRY(e->broadcast(e, 1, rows, w, 1.0f, W(u->up_b[s]), A(p->up[s]), 1));
    C3_TRY(e->channel_copy(e, rows, 1, w, w, 0, A(p->up[s]), 2 * w, 0, A(p->cat[s]), 0));
    C3_TRY(e->channel_copy(e, rows, 1, w, w, 0, A(p->a1[0][s]), 2 * w, w, A(p->cat[s]), 0));
    c3_conv3d_desc d = conv_desc(n, 2 * w, w, p->side[s], 3, 1, 1, C3_LAYOUT_NDHWC);
    C3_TRY(conv_block(u, &d, A(p->cat[s]), u->dec_w[s][0], u->dec_b[s][0], A(p->c0[1][s]),
                      A(p->a0[1][s]), st, st + nw));
    d = conv_desc(n, w, w, p->side[s], 3, 1, 1, C3_LAYOUT_NDHWC);
    C3_TRY(conv_block(u, &d, A(p->a0[1][s]), u->dec_w[s][1], u->dec_b[s][1], A(p->c1[1][s]),
                      A(p->a1[1][s]), st + 2 * nw, st + 3 * nw));
    cur = A(p->a1[1][s]);
  }
  c3_conv3d_desc hd = conv_desc(n, c->widths[0], c->classes, p->side[0], 1, 1, 0,
                                C3_LAYOUT_NDHWC);
  C3_TRY(e->conv3d_fwd(e, &hd, cur, W(u->head_w), W(u->head_b), A(p->logits)));
  p->backward_ready = train ? 1 : 0;
  return CSAL3D_OK;
}

const float *c3_unet_logits(const c3_unet *u) {
  return u && u->plan ? u->plan->ws + u->plan->logits : NULL;
}

/* ---- backward ------------------------------------------------------------------------------ */

/* dy holds dL/d(activation a); writes dL/d(block input) to dx (accum) and accumulates the
 * conv's parameter gradients; tmp receives dL/d(conv output). */
static csal3d_status conv_block_bwd(c3_unet *u, const c3_conv3d_desc *d, const float *x,
                                    int wid, int bid, const float *c, const float *mean,
                                    const float *var, const float *dy, float *tmp, float *dx,
                                    int accum) {
  c3_engine *e = u->e;
  c3_inorm_desc in = {d->n,
                      d->c_out,
                      c3_conv3d_out_side(d, 0),
                      c3_conv3d_out_side(d, 1),
                      c3_conv3d_out_side(d, 2),
                      C3_LAYOUT_NDHWC,
                      1e-5f,
                      u->cfg.slope};
  C3_TRY(e->inorm_lrelu_bwd(e, &in, c, mean, var, dy, tmp, 0));
  C3_TRY(e->conv3d_bwd_weights(e, d, x, tmp, G(wid), G(bid)));
  if (!dx) return CSAL3D_OK;
  return e->conv3d_bwd_data(e, d, tmp, W(wid), dx, accum);
}

csal3d_status c3_unet_backward(c3_unet *u, const float *x, const float *d_logits,
                               float *d_input) {
  C3_CHECK_ARG(u && x && d_logits, "c3_unet_backward: NULL argument");
  c3_unet_plan *p = u->plan;
  C3_CHECK_ARG(p && p->backward_ready,
               "c3_unet_backward: the last forward did not run in training mode");
  if (!u->g) C3_TRY(c3_unet_zero_grad(u));
  c3_engine *e = u->e;
  const c3_unet_config *c = &u->cfg;
  const int L = c->stages;
  const int64_t n = p->n;
  float *g1 = A(p->g1), *g2 = A(p->g2);
  c3_conv3d_desc hd = conv_desc(n, c->widths[0], c->classes, p->side[0], 1, 1, 0,
                                C3_LAYOUT_NDHWC);
  const float *last = A(p->a1[1][0]);
  C3_TRY(e->conv3d_bwd_weights(e, &hd, last, d_logits, G(u->head_w), G(u->head_b)));
  C3_TRY(e->conv3d_bwd_data(e, &hd, d_logits, W(u->head_w), g1, 0));
  for (int s = 0; s <= L - 2; s++) { /* g1 = dL/d(decoder activation of stage s) */
    int64_t w = c->widths[s], nw = n * w, rows = n * p->vox[s];
    const float *st = A(p->st[1][s]);
    c3_conv3d_desc d = conv_desc(n, w, w, p->side[s], 3, 1, 1, C3_LAYOUT_NDHWC);
    C3_TRY(conv_block_bwd(u, &d, A(p->a0[1][s]), u->dec_w[s][1], u->dec_b[s][1],
                          A(p->c1[1][s]), st + 2 * nw, st + 3 * nw, g1, g2, g1, 0));
    d = conv_desc(n, 2 * w, w, p->side[s], 3, 1, 1, C3_LAYOUT_NDHWC);
    C3_TRY(conv_block_bwd(u, &d, A(p->cat[s]), u->dec_w[s][0], u->dec_b[s][0],
                          A(p->c0[1][s]), st, st + nw, g1, g2, g1, 0));
    /* g1 = dL/dcat: the skip's part, then the upsampled part */
    C3_TRY(e->channel_copy(e, rows, 1, w, 2 * w, w, g1, w, 0, A(p->dskip[s]), 0));
    C3_TRY(e->channel_copy(e, rows, 1, w, 2 * w, 0, g1, w, 0, g2, 0));
    C3_TRY(e->reduce_sum(e, 1, rows, w, 1.0f, g2, G(u->up_b[s]), 1));
    const float *below = A(s + 1 <= L - 2 ? p->a1[1][s + 1] : p->a1[0][L - 1]);
    c3_conv3d_desc ud = conv_desc(n, w, c->widths[s + 1], p->side[s], 2, 2, 0, C3_LAYOUT_NDHWC);
    C3_TRY(e->conv3d_bwd_weights(e, &ud, g2, below, G(u->up_w[s]), NULL));
    C3_TRY(e->conv3d_fwd(e, &ud, g2, W(u->up_w[s]), NULL, g1));
  }
  for (int s = L - 1; s >= 0; s--) {
    int64_t w = c->widths[s], nw = n * w;
    const float *st = A(p->st[0][s]);
    const float *dy = s == L - 1 ? g1 : A(p->dskip[s]);
    c3_conv3d_desc d = conv_desc(n, w, w, p->side[s], 3, 1, 1, C3_LAYOUT_NDHWC);
    C3_TRY(conv_block_bwd(u, &d, A(p->a0[0][s]), u->enc_w[s][1], u->enc_b[s][1],
                          A(p->c1[0][s]), st + 2 * nw, st + 3 * nw, dy, g2, g1, 0));
    if (s == 0) {
      d = conv_desc(n, c->in_channels, w, p->side[0], 3, 1, 1, C3_LAYOUT_NCDHW);
      C3_TRY(conv_block_bwd(u, &d, x, u->enc_w[0][0], u->enc_b[0][0], A(p->c0[0][0]), st,
                            st + nw, g1, g2, d_input, 0));
    } else {
      d = conv_desc(n, c->widths[s - 1], w, p->side[s - 1], 3, 2, 1, C3_LAYOUT_NDHWC);
      C3_TRY(conv_block_bwd(u, &d, A(p->a1[0][s - 1]), u->enc_w[s][0], u->enc_b[s][0],
                            A(p->c0[0][s]), st, st + nw, g1, g2, A(p->dskip[s - 1]), 1));
    }
  }
  return CSAL3D_OK;
}

/* ---- AdamW --------------------------------------------------------------------------------- */

csal3d_status c3_unet_adamw_step(c3_unet *u, double lr, double weight_decay, double clip_norm,
                                 double *norm_out) {
  c3_engine *e = u->e;
  C3_CHECK_ARG(u->g, "c3_unet_adamw_step: no gradients");
  double sq = 0.0; /* one dot over the buffer: the padding between tensors stays 0 */
  C3_TRY(e->dot(e, (int64_t)u->total, u->g, u->g, &sq));
  double norm = sqrt(sq);
  if (norm_out) *norm_out = norm;
  if (!isfinite(norm))
    return c3_error(CSAL3D_ERR_NUMERICAL,
                    "U-Net gradient norm is %g at update %lld: update skipped (lower the "
                    "learning rate or check the input)",
                    norm, (long long)u->step);
  if (!u->m) {
    C3_TRY(e->alloc(e, u->total * sizeof(float), "AdamW moments", (void **)&u->m));
    C3_TRY(e->zero(e, u->m, u->total * sizeof(float)));
  }
  if (!u->v) {
    C3_TRY(e->alloc(e, u->total * sizeof(float), "AdamW moments", (void **)&u->v));
    C3_TRY(e->zero(e, u->v, u->total * sizeof(float)));
  }
  double scale = 1.0;
  if (clip_norm > 0) {
    scale = clip_norm / (norm + 1e-6);
    if (scale > 1.0) scale = 1.0;
  }
  c3_adamw_desc d = {0};
  d.lr = (float)lr;
  d.beta1 = 0.9f;
  d.beta2 = 0.999f;
  d.eps = 1e-8f;
  d.grad_scale = (float)scale;
  d.step = u->step + 1;
  /* the weights (decayed), then the biases; the padding has zero gradients and moments,
   * so AdamW leaves it 0 */
  d.weight_decay = (float)weight_decay;
  C3_TRY(e->adamw(e, &d, (int64_t)u->decay_total, u->w, u->g, u->m, u->v));
  d.weight_decay = 0.0f;
  const size_t k = u->decay_total;
  C3_TRY(e->adamw(e, &d, (int64_t)(u->total - k), u->w + k, u->g + k, u->m + k, u->v + k));
  u->step++;
  return CSAL3D_OK;
}

/* ---- checkpoint tensors ---------------------------------------------------------------------- */

csal3d_status c3_unet_add_to_writer(const c3_unet *u, c3_st_writer *w, float **hold) {
  *hold = NULL;
  const int moments = u->m && u->v;
  size_t n = u->total * (moments ? 3 : 1), so = (n + 1) & ~(size_t)1; /* 8-byte aligned */
  float *h;
  C3_TRY(c3_alloc_array(so + 2, sizeof(float), "U-Net checkpoint", (void **)&h));
  *hold = h;
  C3_TRY(u->e->download(u->e, h, u->w, u->total * sizeof(float)));
  if (moments) {
    C3_TRY(u->e->download(u->e, h + u->total, u->m, u->total * sizeof(float)));
    C3_TRY(u->e->download(u->e, h + 2 * u->total, u->v, u->total * sizeof(float)));
  }
  int64_t *step = (int64_t *)(void *)(h + so); /* the step, after the tensors */
  *step = u->step;
  char name[C3_PARAM_NAME_MAX + 16];
  for (int k = 0; k < (moments ? 3 : 1); k++)
    for (size_t i = 0; i < u->nparams; i++) {
      const c3_param *q = &u->params[i];
      snprintf(name, sizeof name, "%s%s", k == 0 ? "" : k == 1 ? "adam.m." : "adam.v.", q->name);
      C3_TRY(c3_st_writer_add(w, name, C3_ST_F32, q->ndim, q->shape,
                              h + (size_t)k * u->total + q->offset));
    }
  return c3_st_writer_add(w, "adam.step", C3_ST_I64, 0, NULL, step);
}

csal3d_status c3_unet_load(c3_unet *u, const c3_safetensors *st) {
  c3_engine *e = u->e;
  float *h;
  C3_TRY(c3_alloc_array(u->total, sizeof(float), "U-Net checkpoint", (void **)&h));
  memset(h, 0, u->total * sizeof(float));
  csal3d_status s = CSAL3D_OK;
  char name[C3_PARAM_NAME_MAX + 16];
  int have_m = c3_st_find(st, "adam.m.head.weight") != NULL;
  for (int k = 0; k < (have_m ? 3 : 1) && s == CSAL3D_OK; k++) {
    for (size_t i = 0; i < u->nparams && s == CSAL3D_OK; i++) {
      const c3_param *q = &u->params[i];
      snprintf(name, sizeof name, "%s%s", k == 0 ? "" : k == 1 ? "adam.m." : "adam.v.", q->name);
      const c3_st_entry *en = c3_st_find(st, name);
      if (!en) {
        s = c3_error(CSAL3D_ERR_FORMAT, "%s: no tensor %s", c3_st_source(st), name);
        break;
      }
      s = c3_st_entry_read_f32(st, en, h + q->offset, q->numel);
    }
    if (s != CSAL3D_OK) break;
    float **dst = k == 0 ? &u->w : k == 1 ? &u->m : &u->v;
    if (!*dst) s = e->alloc(e, u->total * sizeof(float), "AdamW moments", (void **)dst);
    if (s == CSAL3D_OK) s = e->upload(e, *dst, h, u->total * sizeof(float));
  }
  c3_free(h);
  C3_TRY(s);
  int64_t step = 0;
  if (have_m) C3_TRY(c3_st_read_i64(st, "adam.step", &step, 1));
  u->step = step;
  return CSAL3D_OK;
}
