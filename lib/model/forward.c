/* Forward and backward of the SSL model through the engine op table.
 *
 * Encoder (MONAI SwinTransformer): patch embed conv (NCDHW -> token-major), then 4
 * stages of Swin blocks + patch merging; hidden_i = channel layer norm (no affine).
 * Block: x + proj(attn(qkv(partition(LN1(x))))), then + fc2(gelu(fc1(LN2(.)))),
 * with the window clipped to the grid along short axes (shift 0 there) and the
 * shift mask on the padded grid. Decoder: 5 x [conv 3^3, instance norm + LeakyReLU,
 * x2 trilinear], then conv 1^3 to in_ch (NCDHW). Rotation head on the pooled
 * normalised hidden4. */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "model/model.h"
#include "model/model_internal.h"

#define LN_EPS 1e-5f
#define C3_WP(id) (m->w + m->params[(id)].offset)
#define C3_GP(id) (m->g + m->params[(id)].offset)
#define A(off) (p->ws + (off))
#define B(off) (m->bws + (off))

static size_t c3_round16(size_t n) { return (n + 15) / 16 * 16; }

static size_t c3_take(size_t *off, size_t count) {
  size_t at = *off;
  *off += c3_round16(count);
  return at;
}

static size_t c3_max(size_t a, size_t b) { return a > b ? a : b; }

/* Frees one plan (its shift masks and activation workspace). */
static void c3_plan_release(c3_model *m, c3_model_plan *p) {
  if (!p) return;
  for (int s = 0; s < C3_MODEL_STAGES; s++)
    if (p->st[s].region) m->e->free(m->e, p->st[s].region);
  if (p->ws) m->e->free(m->e, p->ws);
  c3_free(p);
}

void c3_model_plan_free(c3_model *m) {
  for (int i = 0; i < C3_MODEL_SLOTS; i++) {
    c3_plan_release(m, m->slot_plan[i]);
    m->slot_plan[i] = NULL;
  }
  c3_plan_release(m, m->plan);
  m->plan = NULL;
  if (m->bws) m->e->free(m->e, m->bws);
  m->bws = NULL;
  m->bws_cap = 0;
}

csal3d_status c3_model_use_slot(c3_model *m, int slot) {
  C3_CHECK_ARG(m && slot >= 0 && slot < C3_MODEL_SLOTS,
               "model workspace slot %d: must be in [0, %d)", slot, C3_MODEL_SLOTS);
  if (slot == m->slot) return CSAL3D_OK;
  m->slot_plan[m->slot] = m->plan;
  m->plan = m->slot_plan[slot];
  m->slot_plan[slot] = NULL;
  m->slot = slot;
  return CSAL3D_OK;
}

void c3_model_release_slots(c3_model *m) {
  if (!m) return;
  (void)c3_model_use_slot(m, 0);
  for (int i = 1; i < C3_MODEL_SLOTS; i++) {
    c3_plan_release(m, m->slot_plan[i]);
    m->slot_plan[i] = NULL;
  }
}

/* Shift-region ids of each token of each window of one padded, rolled image, as
 * MONAI's compute_mask: per axis [0, P-w) -> 0, [P-w, P-s) -> 1, [P-s, P) -> 2
 * (one region along an axis without shift). */
static csal3d_status c3_make_region(c3_model *m, c3_stage_plan *sp) {
  const c3_window_desc *wd = &sp->win[1];
  int64_t pad[3], nw[3];
  int64_t size[3] = {wd->d, wd->h, wd->w};
  for (int a = 0; a < 3; a++) {
    nw[a] = (size[a] + wd->window[a] - 1) / wd->window[a];
    pad[a] = nw[a] * wd->window[a];
  }
  int32_t *host;
  C3_TRY(c3_alloc_array((size_t)(sp->nwin * sp->ntok), sizeof(int32_t), "shift mask",
                        (void **)&host));
  int64_t i = 0;
  for (int64_t a = 0; a < nw[0]; a++)
    for (int64_t b = 0; b < nw[1]; b++)
      for (int64_t c = 0; c < nw[2]; c++)
        for (int td = 0; td < wd->window[0]; td++)
          for (int th = 0; th < wd->window[1]; th++)
            for (int tw = 0; tw < wd->window[2]; tw++) {
              int64_t pos[3] = {a * wd->window[0] + td, b * wd->window[1] + th,
                                c * wd->window[2] + tw};
              int r = 0;
              for (int k = 0; k < 3; k++) {
                int ra = 0;
                if (wd->shift[k] > 0)
                  ra = pos[k] < pad[k] - wd->window[k]  ? 0
                       : pos[k] < pad[k] - wd->shift[k] ? 1
                                                        : 2;
                r = r * 3 + ra;
              }
              host[i++] = r;
            }
  size_t bytes = (size_t)(sp->nwin * sp->ntok) * sizeof(int32_t);
  csal3d_status s = m->e->alloc(m->e, bytes, "shift mask", (void **)&sp->region);
  if (s == CSAL3D_OK) s = m->e->upload(m->e, sp->region, host, bytes);
  c3_free(host);
  return s;
}

/* The layout of a plan for an input shape: descriptors, offsets and sizes, no
 * memory (the shift masks and the workspace are c3_plan_make's). */
static csal3d_status c3_plan_layout(const c3_model *m, c3_model_plan *p, int64_t n,
                                    const int64_t dhw[3], int train, int probs_stored) {
  const c3_model_config *cfg = &m->cfg;
  C3_CHECK_ARG(n >= 1, "batch size %lld: must be >= 1", (long long)n);
  for (int a = 0; a < 3; a++)
    C3_CHECK_ARG(dhw[a] >= 32 && dhw[a] % 32 == 0 && dhw[a] <= 4096,
                 "input side %lld (axis %d) must be a positive multiple of 32: crop "
                 "or pad the input",
                 (long long)dhw[a], a);
  p->n = n;
  memcpy(p->dhw, dhw, sizeof p->dhw);
  p->train = train;
  p->probs_stored = probs_stored;
  size_t off = 0;
  int64_t C = cfg->embed_dim;
  int64_t d = dhw[0] / 2, h = dhw[1] / 2, w = dhw[2] / 2;
  int64_t T = d * h * w;
  p->e0 = c3_take(&off, (size_t)(n * T * C));
  p->h0 = c3_take(&off, (size_t)(n * T * C));
  p->h0_mean = c3_take(&off, (size_t)(n * T));
  p->h0_var = c3_take(&off, (size_t)(n * T));
  size_t max_tc = 0, max_win = 0, max_big = 0, max_8 = 0;
  for (int s = 0; s < C3_MODEL_STAGES; s++) {
    c3_stage_plan *sp = &p->st[s];
    int64_t ch = C << s;
    sp->d = d, sp->h = h, sp->w = w, sp->tokens = T = d * h * w;
    sp->ch = ch;
    sp->heads = cfg->heads[s];
    int64_t side[3] = {d, h, w};
    for (int par = 0; par < 2; par++) {
      c3_window_desc *wd = &sp->win[par];
      memset(wd, 0, sizeof *wd);
      wd->batch = n, wd->d = d, wd->h = h, wd->w = w, wd->c = ch;
      sp->shifted[par] = 0;
      for (int a = 0; a < 3; a++) {
        if (side[a] <= cfg->window) {
          wd->window[a] = (int)side[a];
          wd->shift[a] = 0;
        } else {
          wd->window[a] = cfg->window;
          wd->shift[a] = par ? cfg->window / 2 : 0;
        }
        if (wd->shift[a] > 0) sp->shifted[par] = 1;
      }
      c3_attn_desc *ad = &sp->attn[par];
      memset(ad, 0, sizeof *ad);
      ad->tokens = (int64_t)wd->window[0] * wd->window[1] * wd->window[2];
      sp->nwin = c3_window_count(wd);
      ad->windows = n * sp->nwin;
      ad->heads = sp->heads;
      ad->head_dim = ch / sp->heads;
      for (int a = 0; a < 3; a++) ad->window_full[a] = cfg->window;
      ad->scale = (float)(1.0 / sqrt((double)ad->head_dim));
      ad->mask_windows = sp->nwin;
      ad->mask_value = -100.0f;
    }
    sp->ntok = sp->attn[0].tokens;
    size_t tc = (size_t)(n * T * ch), rows = (size_t)(n * T);
    size_t win = (size_t)(n * sp->nwin * sp->ntok * ch);
    size_t hid = tc * (size_t)cfg->mlp_ratio;
    for (int k = 0; k < cfg->depths[s]; k++) {
      c3_block_acts *b = &sp->blk[k];
      if (!train && k > 0) { /* inference: the blocks of a stage share buffers */
        *b = sp->blk[0];
        continue;
      }
      b->ln1_mean = c3_take(&off, rows);
      b->ln1_var = c3_take(&off, rows);
      b->xw = c3_take(&off, win);
      b->qkv = c3_take(&off, 3 * win);
      b->probs = probs_stored ? c3_take(&off, (size_t)(n * sp->nwin * sp->heads *
                                                       sp->ntok * sp->ntok))
                              : (size_t)-1;
      b->ao = c3_take(&off, win);
      b->xmid = c3_take(&off, tc);
      b->ln2_mean = c3_take(&off, rows);
      b->ln2_var = c3_take(&off, rows);
      b->ln2 = c3_take(&off, tc);
      b->h1 = c3_take(&off, hid);
      b->g = c3_take(&off, hid);
      b->xout = c3_take(&off, tc);
    }
    c3_merge_desc *md = &sp->merge;
    memset(md, 0, sizeof *md);
    md->batch = n, md->d = d, md->h = h, md->w = w, md->c = ch;
    static const unsigned char monai[8] = C3_MERGE_ORDER_MONAI;
    static const unsigned char distinct[8] = C3_MERGE_ORDER_DISTINCT;
    memcpy(md->order, cfg->merge_order == C3_MERGE_MONAI ? monai : distinct, 8);
    sp->od = (d + 1) / 2, sp->oh = (h + 1) / 2, sp->ow = (w + 1) / 2;
    sp->out_tokens = sp->od * sp->oh * sp->ow;
    size_t orows = (size_t)(n * sp->out_tokens);
    sp->merged = c3_take(&off, orows * 8 * (size_t)ch);
    sp->dn_mean = c3_take(&off, orows);
    sp->dn_var = c3_take(&off, orows);
    sp->mn = c3_take(&off, orows * 8 * (size_t)ch);
    sp->y = c3_take(&off, orows * 2 * (size_t)ch);
    sp->hid = c3_take(&off, orows * 2 * (size_t)ch);
    sp->hid_mean = c3_take(&off, orows);
    sp->hid_var = c3_take(&off, orows);
    max_tc = c3_max(max_tc, tc);
    max_win = c3_max(max_win, win);
    max_big = c3_max(max_big, c3_max(hid, 3 * win));
    max_8 = c3_max(max_8, orows * 8 * (size_t)ch);
    d = sp->od, h = sp->oh, w = sp->ow;
  }
  int64_t chans[C3_MODEL_LEVELS + 1] = {16 * C, 8 * C, 4 * C, 2 * C, C, C};
  size_t max_act = 0, max_dec = 0;
  for (int l = 0; l < C3_MODEL_LEVELS; l++) {
    c3_level_plan *lv = &p->lv[l];
    lv->d = d, lv->h = h, lv->w = w;
    lv->c_in = chans[l], lv->c_out = chans[l + 1];
    size_t vox = (size_t)(n * d * h * w);
    lv->in = l == 0 ? p->st[C3_MODEL_STAGES - 1].hid : p->lv[l - 1].up;
    lv->co = c3_take(&off, vox * (size_t)lv->c_out);
    lv->mean = c3_take(&off, (size_t)(n * lv->c_out));
    lv->var = c3_take(&off, (size_t)(n * lv->c_out));
    lv->up = c3_take(&off, 8 * vox * (size_t)lv->c_out);
    max_act = c3_max(max_act, vox * (size_t)lv->c_out);
    max_dec = c3_max(max_dec, c3_max(8 * vox * (size_t)lv->c_out,
                                     vox * (size_t)lv->c_in));
    d *= 2, h *= 2, w *= 2;
  }
  p->recon = c3_take(&off, (size_t)(n * cfg->in_channels * dhw[0] * dhw[1] * dhw[2]));
  p->pooled = c3_take(&off, (size_t)(n * 16 * C));
  p->logits = c3_take(&off, (size_t)(n * C3_MODEL_CLASSES));
  p->tmp_tc = c3_take(&off, max_tc);
  p->tmp_win = c3_take(&off, max_win);
  p->act = c3_take(&off, max_act);
  p->ws_floats = off;
  /* Backward buffers (allocated by the first backward). */
  size_t boff = 0;
  size_t t4 = (size_t)(n * p->st[C3_MODEL_STAGES - 1].out_tokens);
  p->gx = c3_take(&boff, max_tc);
  p->da = c3_take(&boff, c3_max(max_tc, max_8));
  p->db = c3_take(&boff, max_8);
  p->dbig1 = c3_take(&boff, max_big);
  p->dbig2 = c3_take(&boff, max_big);
  p->dwin1 = c3_take(&boff, max_win);
  p->dwin2 = c3_take(&boff, max_win);
  p->dd1 = c3_take(&boff, max_dec);
  p->dd2 = c3_take(&boff, max_dec);
  p->dh4 = c3_take(&boff, t4 * 16 * (size_t)C);
  p->dpool = c3_take(&boff, (size_t)(n * 16 * C));
  p->bws_floats = boff;
  return CSAL3D_OK;
}

/* Builds (or reuses) the current slot's plan for an input shape. */
static csal3d_status c3_plan_make(c3_model *m, int64_t n, const int64_t dhw[3],
                                  int train, int probs_stored) {
  c3_model_plan *old = m->plan, *p;
  if (old && old->n == n && old->dhw[0] == dhw[0] && old->dhw[1] == dhw[1] &&
      old->dhw[2] == dhw[2] && old->train == train && old->probs_stored == probs_stored)
    return CSAL3D_OK;
  C3_TRY(c3_calloc_array(1, sizeof *p, "model plan", (void **)&p));
  csal3d_status s = c3_plan_layout(m, p, n, dhw, train, probs_stored);
  if (s != CSAL3D_OK) {
    c3_free(p);
    return s;
  }
  /* The new plan replaces the old one, keeping its workspace when large enough. */
  if (old) {
    p->ws = old->ws, p->ws_cap = old->ws_cap;
    old->ws = NULL;
    c3_plan_release(m, old);
  }
  m->plan = p;
  for (int i = 0; s == CSAL3D_OK && i < C3_MODEL_STAGES; i++)
    if (p->st[i].shifted[1]) s = c3_make_region(m, &p->st[i]);
  if (s == CSAL3D_OK && p->ws_floats > p->ws_cap) {
    if (p->ws) m->e->free(m->e, p->ws);
    p->ws = NULL, p->ws_cap = 0;
    s = m->e->alloc(m->e, p->ws_floats * sizeof(float), "model activations",
                    (void **)&p->ws);
    if (s != CSAL3D_OK)
      s = c3_error_prefix(s, "input %lld x %lld x %lld x %lld", (long long)n,
                          (long long)dhw[0], (long long)dhw[1], (long long)dhw[2]);
    else
      p->ws_cap = p->ws_floats;
  }
  if (s != CSAL3D_OK) {
    c3_plan_release(m, p);
    m->plan = NULL;
  }
  return s;
}

csal3d_status c3_model_slot_bytes(const c3_model *m, int64_t n, const int64_t dhw[3],
                                  int train, size_t *bytes) {
  C3_CHECK_ARG(m && dhw && bytes, "c3_model_slot_bytes: NULL argument");
  c3_model_plan p;
  memset(&p, 0, sizeof p);
  C3_TRY(c3_plan_layout(m, &p, n, dhw, train ? 1 : 0, train && !m->recompute_attention));
  if (c3_mul_size(p.ws_floats, sizeof(float), bytes) != 0) *bytes = SIZE_MAX;
  return CSAL3D_OK;
}

/* ---- linear helpers: y[rows, out] = x[rows, in] @ W^T (+ b) (+ beta y) ---- */

static csal3d_status c3_linear_fwd(c3_engine *e, int64_t rows, int64_t in, int64_t out,
                                   const float *x, const float *wt, const float *b,
                                   float *y, float beta) {
  c3_matmul_desc d = {0};
  d.batch = 1, d.m = rows, d.n = out, d.k = in, d.trans_b = 1;
  d.alpha = 1.0f, d.beta = beta;
  return e->matmul(e, &d, x, wt, b, y);
}

/* dx (+)= dy @ W (dx NULL: skipped); dW += dy^T @ x; db += column sums of dy. */
static csal3d_status c3_linear_bwd(c3_engine *e, int64_t rows, int64_t in, int64_t out,
                                   const float *x, const float *wt, const float *dy,
                                   float *dx, int accum, float *dw, float *db) {
  c3_matmul_desc d = {0};
  if (dx) {
    d.batch = 1, d.m = rows, d.n = in, d.k = out;
    d.alpha = 1.0f, d.beta = accum ? 1.0f : 0.0f;
    C3_TRY(e->matmul(e, &d, dy, wt, NULL, dx));
  }
  memset(&d, 0, sizeof d);
  d.batch = 1, d.m = out, d.n = in, d.k = rows, d.trans_a = 1;
  d.alpha = 1.0f, d.beta = 1.0f;
  C3_TRY(e->matmul(e, &d, dy, x, NULL, dw));
  if (db) C3_TRY(e->reduce_sum(e, 1, rows, out, 1.0f, dy, db, 1));
  return CSAL3D_OK;
}

/* ---- forward ---- */

static csal3d_status c3_block_fwd(c3_model *m, int s, int k, const float *xin) {
  c3_engine *e = m->e;
  c3_model_plan *p = m->plan;
  const c3_stage_plan *sp = &p->st[s];
  const c3_block_ids *id = &m->id.block[s][k];
  const c3_block_acts *b = &sp->blk[k];
  int par = k % 2;
  int64_t rows = p->n * sp->tokens, ch = sp->ch, hid = ch * m->cfg.mlp_ratio;
  int64_t wrows = p->n * sp->nwin * sp->ntok;
  float *ln1 = A(p->tmp_tc), *po = A(p->tmp_win);
  C3_TRY(e->layer_norm_fwd(e, rows, ch, LN_EPS, xin, C3_WP(id->norm1_w),
                           C3_WP(id->norm1_b), ln1, A(b->ln1_mean), A(b->ln1_var)));
  C3_TRY(e->window_partition(e, &sp->win[par], ln1, A(b->xw), 0));
  C3_TRY(c3_linear_fwd(e, wrows, ch, 3 * ch, A(b->xw), C3_WP(id->qkv_w),
                       C3_WP(id->qkv_b), A(b->qkv), 0.0f));
  C3_TRY(e->attn_fwd(e, &sp->attn[par], A(b->qkv), C3_WP(id->table),
                     sp->shifted[par] ? sp->region : NULL, A(b->ao),
                     p->probs_stored ? A(b->probs) : NULL));
  C3_TRY(c3_linear_fwd(e, wrows, ch, ch, A(b->ao), C3_WP(id->proj_w),
                       C3_WP(id->proj_b), po, 0.0f));
  C3_TRY(e->copy(e, A(b->xmid), xin, (size_t)(rows * ch) * sizeof(float)));
  C3_TRY(e->window_merge(e, &sp->win[par], po, A(b->xmid), 1));
  C3_TRY(e->layer_norm_fwd(e, rows, ch, LN_EPS, A(b->xmid), C3_WP(id->norm2_w),
                           C3_WP(id->norm2_b), A(b->ln2), A(b->ln2_mean),
                           A(b->ln2_var)));
  C3_TRY(c3_linear_fwd(e, rows, ch, hid, A(b->ln2), C3_WP(id->fc1_w), C3_WP(id->fc1_b),
                       A(b->h1), 0.0f));
  C3_TRY(e->gelu_fwd(e, rows * hid, A(b->h1), A(b->g)));
  C3_TRY(e->copy(e, A(b->xout), A(b->xmid), (size_t)(rows * ch) * sizeof(float)));
  return c3_linear_fwd(e, rows, hid, ch, A(b->g), C3_WP(id->fc2_w), C3_WP(id->fc2_b),
                       A(b->xout), 1.0f);
}

static void c3_conv_desc(c3_conv3d_desc *d, int64_t n, int64_t cin, int64_t cout,
                         int64_t dd, int64_t hh, int64_t ww, int k, int stride,
                         int pad, c3_layout src, c3_layout dst) {
  memset(d, 0, sizeof *d);
  d->n = n, d->c_in = cin, d->c_out = cout;
  d->in[0] = dd, d->in[1] = hh, d->in[2] = ww;
  for (int a = 0; a < 3; a++) d->k[a] = k, d->stride[a] = stride, d->pad[a] = pad;
  d->src_layout = src, d->dst_layout = dst;
}

static const float *c3_stage_input(const c3_model *m, int s) {
  const c3_model_plan *p = m->plan;
  return s == 0 ? A(p->e0) : A(p->st[s - 1].y);
}

static const float *c3_block_input(const c3_model *m, int s, int k) {
  const c3_model_plan *p = m->plan;
  return k == 0 ? c3_stage_input(m, s) : A(p->st[s].blk[k - 1].xout);
}

/* The engine ops the model calls; an engine without one cannot run it. */
static csal3d_status c3_check_engine(const c3_engine *e, int train) {
  const struct {
    const char *name;
    int ok;
  } need[] = {
      {"conv3d_fwd", e->conv3d_fwd != NULL},
      {"matmul", e->matmul != NULL},
      {"layer_norm_fwd", e->layer_norm_fwd != NULL},
      {"gelu_fwd", e->gelu_fwd != NULL},
      {"inorm_lrelu_fwd", e->inorm_lrelu_fwd != NULL},
      {"upsample2x_fwd", e->upsample2x_fwd != NULL},
      {"attn_fwd", e->attn_fwd != NULL},
      {"window_partition", e->window_partition != NULL},
      {"window_merge", e->window_merge != NULL},
      {"patch_merge_fwd", e->patch_merge_fwd != NULL},
      {"reduce_sum", e->reduce_sum != NULL},
      {"copy", e->copy != NULL},
      {"conv3d_bwd_data", !train || e->conv3d_bwd_data != NULL},
      {"conv3d_bwd_weights", !train || e->conv3d_bwd_weights != NULL},
      {"layer_norm_bwd", !train || e->layer_norm_bwd != NULL},
      {"gelu_bwd", !train || e->gelu_bwd != NULL},
      {"inorm_lrelu_bwd", !train || e->inorm_lrelu_bwd != NULL},
      {"upsample2x_bwd", !train || e->upsample2x_bwd != NULL},
      {"attn_bwd", !train || e->attn_bwd != NULL},
      {"patch_merge_bwd", !train || e->patch_merge_bwd != NULL},
      {"broadcast", !train || e->broadcast != NULL},
      {"axpby", !train || e->axpby != NULL},
  };
  for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
    if (!need[i].ok)
      return c3_error(CSAL3D_ERR_UNSUPPORTED, "the %s engine has no %s op: the model cannot "
                      "run %s on it",
                      e->name, need[i].name, train ? "training" : "inference");
  return CSAL3D_OK;
}

csal3d_status c3_model_forward(c3_model *m, const float *x, int64_t n,
                               const int64_t dhw[3], int train) {
  C3_CHECK_ARG(m && x && dhw, "c3_model_forward: NULL argument");
  c3_engine *e = m->e;
  C3_TRY(c3_check_engine(e, train));
  C3_TRY(c3_plan_make(m, n, dhw, train ? 1 : 0, train && !m->recompute_attention));
  c3_model_plan *p = m->plan;
  p->backward_ready = 0;
  const c3_model_config *cfg = &m->cfg;
  int64_t C = cfg->embed_dim;
  c3_conv3d_desc cd;
  c3_conv_desc(&cd, n, cfg->in_channels, C, dhw[0], dhw[1], dhw[2], 2, 2, 0,
               C3_LAYOUT_NCDHW, C3_LAYOUT_NDHWC);
  C3_TRY(e->conv3d_fwd(e, &cd, x, C3_WP(m->id.embed_w), C3_WP(m->id.embed_b), A(p->e0)));
  int64_t t0 = p->st[0].tokens;
  C3_TRY(e->layer_norm_fwd(e, n * t0, C, LN_EPS, A(p->e0), NULL, NULL, A(p->h0),
                           A(p->h0_mean), A(p->h0_var)));
  for (int s = 0; s < C3_MODEL_STAGES; s++) {
    c3_stage_plan *sp = &p->st[s];
    for (int k = 0; k < cfg->depths[s]; k++)
      C3_TRY(c3_block_fwd(m, s, k, c3_block_input(m, s, k)));
    const float *last = A(sp->blk[cfg->depths[s] - 1].xout);
    int64_t orows = n * sp->out_tokens, ch = sp->ch;
    C3_TRY(e->patch_merge_fwd(e, &sp->merge, last, A(sp->merged)));
    C3_TRY(e->layer_norm_fwd(e, orows, 8 * ch, LN_EPS, A(sp->merged),
                             C3_WP(m->id.dnorm_w[s]), C3_WP(m->id.dnorm_b[s]),
                             A(sp->mn), A(sp->dn_mean), A(sp->dn_var)));
    C3_TRY(c3_linear_fwd(e, orows, 8 * ch, 2 * ch, A(sp->mn), C3_WP(m->id.red_w[s]),
                         NULL, A(sp->y), 0.0f));
    C3_TRY(e->layer_norm_fwd(e, orows, 2 * ch, LN_EPS, A(sp->y), NULL, NULL,
                             A(sp->hid), A(sp->hid_mean), A(sp->hid_var)));
  }
  /* Decoder. */
  for (int l = 0; l < C3_MODEL_LEVELS; l++) {
    const c3_level_plan *lv = &p->lv[l];
    c3_conv_desc(&cd, n, lv->c_in, lv->c_out, lv->d, lv->h, lv->w, 3, 1, 1,
                 C3_LAYOUT_NDHWC, C3_LAYOUT_NDHWC);
    C3_TRY(e->conv3d_fwd(e, &cd, A(lv->in), C3_WP(m->id.conv_w[l]),
                         C3_WP(m->id.conv_b[l]), A(lv->co)));
    c3_inorm_desc in = {n, lv->c_out, lv->d, lv->h, lv->w, C3_LAYOUT_NDHWC, 1e-5f, 0.01f};
    C3_TRY(e->inorm_lrelu_fwd(e, &in, A(lv->co), A(p->act), A(lv->mean), A(lv->var)));
    c3_upsample_desc ud = {n, lv->c_out, lv->d, lv->h, lv->w, C3_LAYOUT_NDHWC};
    C3_TRY(e->upsample2x_fwd(e, &ud, A(p->act), A(lv->up)));
  }
  c3_conv_desc(&cd, n, C, cfg->in_channels, dhw[0], dhw[1], dhw[2], 1, 1, 0,
               C3_LAYOUT_NDHWC, C3_LAYOUT_NCDHW);
  C3_TRY(e->conv3d_fwd(e, &cd, A(p->lv[C3_MODEL_LEVELS - 1].up),
                       C3_WP(m->id.conv_w[C3_MODEL_LEVELS]),
                       C3_WP(m->id.conv_b[C3_MODEL_LEVELS]), A(p->recon)));
  /* Rotation head. */
  const c3_stage_plan *s4 = &p->st[C3_MODEL_STAGES - 1];
  int64_t t4 = s4->out_tokens, c16 = 16 * C;
  if (cfg->rot_input == C3_ROT_MEAN) {
    C3_TRY(e->reduce_sum(e, n, t4, c16, 1.0f / (float)t4, A(s4->hid), A(p->pooled), 0));
  } else {
    for (int64_t i = 0; i < n; i++)
      C3_TRY(e->copy(e, A(p->pooled) + i * c16, A(s4->hid) + i * t4 * c16,
                     (size_t)c16 * sizeof(float)));
  }
  C3_TRY(c3_linear_fwd(e, n, c16, C3_MODEL_CLASSES, A(p->pooled), C3_WP(m->id.rot_w),
                       C3_WP(m->id.rot_b), A(p->logits), 0.0f));
  p->backward_ready = train ? 1 : 0;
  return CSAL3D_OK;
}

/* ---- backward ---- */

/* gx holds dL/d(block output); on return dL/d(block input). */
static csal3d_status c3_block_bwd(c3_model *m, int s, int k, const float *xin) {
  c3_engine *e = m->e;
  c3_model_plan *p = m->plan;
  const c3_stage_plan *sp = &p->st[s];
  const c3_block_ids *id = &m->id.block[s][k];
  const c3_block_acts *b = &sp->blk[k];
  int par = k % 2;
  int64_t rows = p->n * sp->tokens, ch = sp->ch, hid = ch * m->cfg.mlp_ratio;
  int64_t wrows = p->n * sp->nwin * sp->ntok;
  float *gx = B(p->gx), *da = B(p->da), *dbig1 = B(p->dbig1), *dbig2 = B(p->dbig2);
  float *dwin1 = B(p->dwin1), *dwin2 = B(p->dwin2);
  /* MLP branch. */
  C3_TRY(c3_linear_bwd(e, rows, hid, ch, A(b->g), C3_WP(id->fc2_w), gx, dbig1, 0,
                       C3_GP(id->fc2_w), C3_GP(id->fc2_b)));
  C3_TRY(e->gelu_bwd(e, rows * hid, A(b->h1), dbig1, dbig2, 0));
  C3_TRY(c3_linear_bwd(e, rows, ch, hid, A(b->ln2), C3_WP(id->fc1_w), dbig2, da, 0,
                       C3_GP(id->fc1_w), C3_GP(id->fc1_b)));
  C3_TRY(e->layer_norm_bwd(e, rows, ch, LN_EPS, A(b->xmid), C3_WP(id->norm2_w),
                           A(b->ln2_mean), A(b->ln2_var), da, gx, 1,
                           C3_GP(id->norm2_w), C3_GP(id->norm2_b)));
  /* Attention branch. */
  C3_TRY(e->window_partition(e, &sp->win[par], gx, dwin1, 0));
  C3_TRY(c3_linear_bwd(e, wrows, ch, ch, A(b->ao), C3_WP(id->proj_w), dwin1, dwin2, 0,
                       C3_GP(id->proj_w), C3_GP(id->proj_b)));
  C3_TRY(e->attn_bwd(e, &sp->attn[par], A(b->qkv), C3_WP(id->table),
                     sp->shifted[par] ? sp->region : NULL,
                     p->probs_stored ? A(b->probs) : NULL, dwin2, dbig1, 0,
                     C3_GP(id->table)));
  C3_TRY(c3_linear_bwd(e, wrows, ch, 3 * ch, A(b->xw), C3_WP(id->qkv_w), dbig1, dwin1,
                       0, C3_GP(id->qkv_w), C3_GP(id->qkv_b)));
  C3_TRY(e->window_merge(e, &sp->win[par], dwin1, da, 0));
  return e->layer_norm_bwd(e, rows, ch, LN_EPS, xin, C3_WP(id->norm1_w),
                           A(b->ln1_mean), A(b->ln1_var), da, gx, 1,
                           C3_GP(id->norm1_w), C3_GP(id->norm1_b));
}

csal3d_status c3_model_backward(c3_model *m, const float *x, const float *d_recon,
                                const float *d_logits, float *d_input) {
  C3_CHECK_ARG(m && x, "c3_model_backward: NULL argument");
  c3_model_plan *p = m->plan;
  if (!p || !p->backward_ready)
    return c3_error(CSAL3D_ERR_STATE,
                    "model backward needs a forward with train = 1 just before");
  if (!m->g)
    return c3_error(CSAL3D_ERR_STATE,
                    "model backward: gradients not allocated (call zero_grad first)");
  c3_engine *e = m->e;
  if (p->bws_floats > m->bws_cap) { /* shared by the slots: one backward at a time */
    if (m->bws) e->free(e, m->bws);
    m->bws = NULL, m->bws_cap = 0;
    C3_TRY(e->alloc(e, p->bws_floats * sizeof(float), "model backward buffers",
                    (void **)&m->bws));
    m->bws_cap = p->bws_floats;
  }
  const c3_model_config *cfg = &m->cfg;
  int64_t n = p->n, C = cfg->embed_dim, c16 = 16 * C;
  const c3_stage_plan *s4 = &p->st[C3_MODEL_STAGES - 1];
  int64_t t4 = s4->out_tokens;
  float *dh4 = B(p->dh4);
  int have = 0;
  /* Rotation head. */
  if (d_logits) {
    C3_TRY(c3_linear_bwd(e, n, c16, C3_MODEL_CLASSES, A(p->pooled), C3_WP(m->id.rot_w),
                         d_logits, B(p->dpool), 0, C3_GP(m->id.rot_w),
                         C3_GP(m->id.rot_b)));
    if (cfg->rot_input == C3_ROT_MEAN) {
      C3_TRY(e->broadcast(e, n, t4, c16, 1.0f / (float)t4, B(p->dpool), dh4, 0));
    } else {
      C3_TRY(e->zero(e, dh4, (size_t)(n * t4 * c16) * sizeof(float)));
      for (int64_t i = 0; i < n; i++)
        C3_TRY(e->axpby(e, c16, 1.0f, B(p->dpool) + i * c16, 1.0f, dh4 + i * t4 * c16));
    }
    have = 1;
  }
  /* Decoder. */
  c3_conv3d_desc cd;
  if (d_recon) {
    const c3_level_plan *last = &p->lv[C3_MODEL_LEVELS - 1];
    c3_conv_desc(&cd, n, C, cfg->in_channels, p->dhw[0], p->dhw[1], p->dhw[2], 1, 1, 0,
                 C3_LAYOUT_NDHWC, C3_LAYOUT_NCDHW);
    C3_TRY(e->conv3d_bwd_weights(e, &cd, A(last->up), d_recon,
                                 C3_GP(m->id.conv_w[C3_MODEL_LEVELS]),
                                 C3_GP(m->id.conv_b[C3_MODEL_LEVELS])));
    float *d1 = B(p->dd1), *d2 = B(p->dd2);
    C3_TRY(e->conv3d_bwd_data(e, &cd, d_recon, C3_WP(m->id.conv_w[C3_MODEL_LEVELS]), d1,
                              0));
    for (int l = C3_MODEL_LEVELS - 1; l >= 0; l--) {
      const c3_level_plan *lv = &p->lv[l];
      c3_upsample_desc ud = {n, lv->c_out, lv->d, lv->h, lv->w, C3_LAYOUT_NDHWC};
      C3_TRY(e->upsample2x_bwd(e, &ud, d1, d2, 0));
      c3_inorm_desc in = {n, lv->c_out, lv->d, lv->h, lv->w, C3_LAYOUT_NDHWC, 1e-5f,
                          0.01f};
      C3_TRY(e->inorm_lrelu_bwd(e, &in, A(lv->co), A(lv->mean), A(lv->var), d2, d1, 0));
      c3_conv_desc(&cd, n, lv->c_in, lv->c_out, lv->d, lv->h, lv->w, 3, 1, 1,
                   C3_LAYOUT_NDHWC, C3_LAYOUT_NDHWC);
      C3_TRY(e->conv3d_bwd_weights(e, &cd, A(lv->in), d1, C3_GP(m->id.conv_w[l]),
                                   C3_GP(m->id.conv_b[l])));
      if (l > 0) {
        C3_TRY(e->conv3d_bwd_data(e, &cd, d1, C3_WP(m->id.conv_w[l]), d2, 0));
        float *t = d1;
        d1 = d2, d2 = t;
      } else {
        C3_TRY(e->conv3d_bwd_data(e, &cd, d1, C3_WP(m->id.conv_w[l]), dh4, have));
      }
    }
    have = 1;
  }
  if (!have) C3_TRY(e->zero(e, dh4, (size_t)(n * t4 * c16) * sizeof(float)));
  /* hidden4 = LN(y4) without affine. */
  float *gx = B(p->gx), *da = B(p->da), *db = B(p->db);
  C3_TRY(e->layer_norm_bwd(e, n * t4, c16, LN_EPS, A(s4->y), NULL, A(s4->hid_mean),
                           A(s4->hid_var), dh4, gx, 0, NULL, NULL));
  for (int s = C3_MODEL_STAGES - 1; s >= 0; s--) {
    const c3_stage_plan *sp = &p->st[s];
    int64_t orows = n * sp->out_tokens, ch = sp->ch;
    /* Downsample: y = reduction(LN(merge(x))). gx holds dL/dy. */
    C3_TRY(c3_linear_bwd(e, orows, 8 * ch, 2 * ch, A(sp->mn), C3_WP(m->id.red_w[s]), gx,
                         da, 0, C3_GP(m->id.red_w[s]), NULL));
    C3_TRY(e->layer_norm_bwd(e, orows, 8 * ch, LN_EPS, A(sp->merged),
                             C3_WP(m->id.dnorm_w[s]), A(sp->dn_mean), A(sp->dn_var), da,
                             db, 0, C3_GP(m->id.dnorm_w[s]), C3_GP(m->id.dnorm_b[s])));
    C3_TRY(e->patch_merge_bwd(e, &sp->merge, db, gx, 0));
    for (int k = cfg->depths[s] - 1; k >= 0; k--)
      C3_TRY(c3_block_bwd(m, s, k, c3_block_input(m, s, k)));
  }
  /* Patch embedding. gx holds dL/d(e0). */
  c3_conv_desc(&cd, n, cfg->in_channels, C, p->dhw[0], p->dhw[1], p->dhw[2], 2, 2, 0,
               C3_LAYOUT_NCDHW, C3_LAYOUT_NDHWC);
  C3_TRY(e->conv3d_bwd_weights(e, &cd, x, gx, C3_GP(m->id.embed_w),
                               C3_GP(m->id.embed_b)));
  if (d_input) C3_TRY(e->conv3d_bwd_data(e, &cd, gx, C3_WP(m->id.embed_w), d_input, 0));
  return CSAL3D_OK;
}

/* ---- accessors ---- */

const float *c3_model_hidden(const c3_model *m, int i, int64_t shape[5]) {
  const c3_model_plan *p = m->plan;
  if (!p || i < 0 || i > C3_MODEL_STAGES) return NULL;
  if (i == 0) {
    if (shape) {
      shape[0] = p->n, shape[1] = p->st[0].d, shape[2] = p->st[0].h;
      shape[3] = p->st[0].w, shape[4] = p->st[0].ch;
    }
    return A(p->h0);
  }
  const c3_stage_plan *sp = &p->st[i - 1];
  if (shape) {
    shape[0] = p->n, shape[1] = sp->od, shape[2] = sp->oh, shape[3] = sp->ow;
    shape[4] = 2 * sp->ch;
  }
  return A(sp->hid);
}

const float *c3_model_pooled(const c3_model *m) {
  const c3_model_plan *p = m->plan;
  return p ? A(p->pooled) : NULL;
}

const float *c3_model_logits(const c3_model *m) {
  const c3_model_plan *p = m->plan;
  return p ? A(p->logits) : NULL;
}

const float *c3_model_reconstruction(const c3_model *m) {
  const c3_model_plan *p = m->plan;
  return p ? A(p->recon) : NULL;
}

size_t c3_model_workspace_bytes(const c3_model *m) {
  const c3_model_plan *p = m->plan;
  size_t floats = m->bws_cap;
  if (p) floats += p->ws_cap;
  for (int i = 0; i < C3_MODEL_SLOTS; i++)
    if (m->slot_plan[i]) floats += m->slot_plan[i]->ws_cap;
  return floats * sizeof(float);
}
