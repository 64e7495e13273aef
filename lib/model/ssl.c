/* The CSAL-3D self-supervised loss and training step (see ssl.h). */
#include "model/ssl.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

#define NOBS C3_SSL_OBSERVATIONS

void c3_ssl_loss_config_default(c3_ssl_loss_config *c) {
  memset(c, 0, sizeof *c);
  c->hide_fraction = 0.3;
  c->w_inp = c->w_rot = c->w_cons = 1.0;
}

csal3d_status c3_ssl_loss_config_check(const c3_ssl_loss_config *c) {
  C3_CHECK_ARG(c->hide_fraction >= 0 && c->hide_fraction <= 1,
               "mask fraction %g: must be in [0, 1]", c->hide_fraction);
  C3_CHECK_ARG(isfinite(c->w_inp) && c->w_inp >= 0, "inpainting weight %g: must be >= 0",
               c->w_inp);
  C3_CHECK_ARG(isfinite(c->w_rot) && c->w_rot >= 0, "rotation weight %g: must be >= 0",
               c->w_rot);
  C3_CHECK_ARG(isfinite(c->w_cons) && c->w_cons >= 0,
               "consistency weight %g: must be >= 0", c->w_cons);
  return CSAL3D_OK;
}

c3_permute3d_desc c3_ssl_permute_desc(c3_axes_map m, int64_t lead, const int64_t shape[3]) {
  c3_permute3d_desc p;
  memset(&p, 0, sizeof p);
  p.batch = lead;
  p.inner = 1;
  for (int a = 0; a < 3; a++) {
    p.s[a] = shape[a];
    p.perm[a] = m.perm[a];
    p.flip[a] = m.flip[a];
  }
  return p;
}

void c3_ssl_work_init(c3_ssl_work *w, c3_model *m) {
  memset(w, 0, sizeof *w);
  w->m = m;
}

static void c3_ssl_work_release(c3_ssl_work *w) {
  c3_engine *e = w->m->e;
  float **bufs[] = {&w->obs, &w->tgt, &w->wts, &w->rec, &w->drec, &w->al, &w->dal,
                    &w->logits, &w->dlogits};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
    if (*bufs[i]) e->free(e, *bufs[i]);
    *bufs[i] = NULL;
  }
  if (w->labels) e->free(e, w->labels);
  w->labels = NULL;
  c3_free(w->host);
  c3_free(w->host2);
  w->host = w->host2 = NULL;
  w->cap = 0;
}

void c3_ssl_work_free(c3_ssl_work *w) {
  if (!w || !w->m) return;
  c3_ssl_work_release(w);
  c3_model_release_slots(w->m); /* the observations' workspaces */
  w->slots = 0;
}

/* Makes room for observations of `vox` floats each. */
static csal3d_status c3_ssl_work_reserve(c3_ssl_work *w, size_t vox) {
  if (vox <= w->cap && w->obs) return CSAL3D_OK;
  c3_ssl_work_release(w);
  c3_engine *e = w->m->e;
  size_t bytes;
  if (c3_mul_size(vox * NOBS, sizeof(float), &bytes) != 0)
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "SSL buffers: crop of %zu voxels too large",
                    vox);
  struct {
    float **p;
    const char *what;
  } big[] = {{&w->obs, "SSL observations"},   {&w->tgt, "SSL targets"},
             {&w->wts, "SSL loss weights"},   {&w->rec, "SSL reconstructions"},
             {&w->drec, "SSL reconstruction gradients"},
             {&w->al, "SSL aligned reconstructions"},
             {&w->dal, "SSL aligned gradients"}};
  csal3d_status s = CSAL3D_OK;
  for (size_t i = 0; s == CSAL3D_OK && i < sizeof big / sizeof big[0]; i++)
    s = e->alloc(e, bytes, big[i].what, (void **)big[i].p);
  if (s == CSAL3D_OK)
    s = e->alloc(e, NOBS * C3_MODEL_CLASSES * sizeof(float), "SSL logits",
                 (void **)&w->logits);
  if (s == CSAL3D_OK)
    s = e->alloc(e, NOBS * C3_MODEL_CLASSES * sizeof(float), "SSL logit gradients",
                 (void **)&w->dlogits);
  if (s == CSAL3D_OK)
    s = e->alloc(e, NOBS * sizeof(int32_t), "SSL rotation labels", (void **)&w->labels);
  if (s == CSAL3D_OK) s = c3_alloc(bytes, "SSL host observations", (void **)&w->host);
  if (s == CSAL3D_OK) s = c3_alloc(bytes, "SSL host targets", (void **)&w->host2);
  if (s != CSAL3D_OK) {
    c3_ssl_work_release(w);
    return s;
  }
  w->cap = vox;
  return CSAL3D_OK;
}

/* Per-channel mean and standard deviation (population) of a crop, in double,
 * serially (so the result does not depend on the thread count). */
static void c3_crop_stats(const float *x, int64_t ch, int64_t vox, double *mean,
                          double *sd) {
  for (int64_t c = 0; c < ch; c++) {
    const float *p = x + c * vox;
    double s = 0, ss = 0;
    for (int64_t i = 0; i < vox; i++) s += p[i];
    double mu = s / (double)vox;
    for (int64_t i = 0; i < vox; i++) {
      double dlt = p[i] - mu;
      ss += dlt * dlt;
    }
    mean[c] = mu;
    sd[c] = sqrt(ss / (double)vox);
  }
}

size_t c3_ssl_slot_budget(const c3_engine *e) {
  /* Half: the slots stay allocated from step to step, so the other half is left to the
   * rest of the process (the volume cache, the crops) and to other processes. */
  return e->device == CSAL3D_DEVICE_CPU ? c3_memory_available() / 2 : 0;
}

/* The slot count for a crop whose observations have shapes os: as many training
 * workspaces as the budget holds (1 .. 9), decided once per crop shape and budget. */
static int c3_ssl_slot_count(c3_ssl_work *w, const int64_t shape[3],
                             const int64_t os[NOBS][3]) {
  c3_model *m = w->m;
  if (w->slots > 0 && !memcmp(w->slots_shape, shape, sizeof w->slots_shape) &&
      w->slots_budget == w->slot_budget && w->slots_recompute == m->recompute_attention)
    return w->slots;
  size_t per = 0;
  for (int o = 0; o < NOBS; o++) {
    size_t b;
    if (c3_model_slot_bytes(m, 1, os[o], 1, &b) != CSAL3D_OK) b = SIZE_MAX;
    if (b > per) per = b;
  }
  size_t budget = w->slot_budget ? w->slot_budget : c3_ssl_slot_budget(m->e);
  size_t k = per ? budget / per : NOBS;
  /* a new decision: the slots of the old one are freed (remade as needed) */
  c3_model_release_slots(m);
  w->slots = k < 1 ? 1 : k > NOBS ? NOBS : (int)k;
  memcpy(w->slots_shape, shape, sizeof w->slots_shape);
  w->slots_budget = w->slot_budget;
  w->slots_recompute = m->recompute_attention;
  return w->slots;
}

/* The observation of the i-th backward: the gradients accumulate in this order
 * whatever the slot count. The last observation comes first: with one slot its
 * training forward is the last forward, still live. */
static int c3_ssl_bwd_obs(int i) { return i == 0 ? NOBS - 1 : i - 1; }

/* Forward of observation o in the current slot, its outputs copied into w. */
static csal3d_status c3_ssl_obs_forward(c3_ssl_work *w, int o, const int64_t os[3],
                                        int train, size_t bytes) {
  c3_model *m = w->m;
  c3_engine *e = m->e;
  C3_TRY(c3_model_forward(m, w->obs + (size_t)o * w->cap, 1, os, train));
  C3_TRY(e->copy(e, w->rec + (size_t)o * w->cap, c3_model_reconstruction(m), bytes));
  return e->copy(e, w->logits + (size_t)o * C3_MODEL_CLASSES, c3_model_logits(m),
                 C3_MODEL_CLASSES * sizeof(float));
}

/* The forwards with k slots: the observations of the first k backwards in training
 * mode, observation c3_ssl_bwd_obs(i) in slot i; before them the others in inference
 * mode in slot 0 (k = 0: all of them, when no backward follows). */
static csal3d_status c3_ssl_forwards_k(c3_ssl_work *w, const int64_t os[NOBS][3], int k,
                                       size_t bytes) {
  c3_model *m = w->m;
  C3_TRY(c3_model_use_slot(m, 0));
  for (int i = k; i < NOBS; i++) {
    int o = c3_ssl_bwd_obs(i);
    C3_TRY(c3_ssl_obs_forward(w, o, os[o], 0, bytes));
  }
  for (int i = k - 1; i >= 0; i--) {
    int o = c3_ssl_bwd_obs(i);
    C3_TRY(c3_model_use_slot(m, i));
    C3_TRY(c3_ssl_obs_forward(w, o, os[o], 1, bytes));
  }
  return CSAL3D_OK;
}

/* The 9 forwards; slot 0 is current on return. When the slots do not fit after all
 * (out of memory, nothing accumulated yet), once more with one slot, which the work
 * keeps for this crop shape. */
static csal3d_status c3_ssl_forwards(c3_ssl_work *w, const int64_t shape[3],
                                     const int64_t os[NOBS][3], int backward,
                                     size_t bytes) {
  c3_model *m = w->m;
  int k = backward ? c3_ssl_slot_count(w, shape, os) : 0;
  csal3d_status s = c3_ssl_forwards_k(w, os, k, bytes);
  if (s == CSAL3D_ERR_OUT_OF_MEMORY && k > 1) {
    c3_model_release_slots(m);
    w->slots = 1;
    s = c3_ssl_forwards_k(w, os, 1, bytes);
  }
  (void)c3_model_use_slot(m, 0);
  return s;
}

/* The 9 backwards in c3_ssl_bwd_obs's order, after c3_ssl_forwards with w->slots slots:
 * those not in a slot are recomputed in slot 0 (free after the first backward). */
static csal3d_status c3_ssl_backwards(c3_ssl_work *w, const int64_t os[NOBS][3]) {
  c3_model *m = w->m;
  for (int i = 0; i < NOBS; i++) {
    int o = c3_ssl_bwd_obs(i);
    const float *x = w->obs + (size_t)o * w->cap;
    if (i < w->slots) {
      C3_TRY(c3_model_use_slot(m, i));
    } else {
      C3_TRY(c3_model_use_slot(m, 0));
      C3_TRY(c3_model_forward(m, x, 1, os[o], 1));
    }
    C3_TRY(c3_model_backward(m, x, w->drec + (size_t)o * w->cap,
                             w->dlogits + (size_t)o * C3_MODEL_CLASSES, NULL));
  }
  return CSAL3D_OK;
}

csal3d_status c3_ssl_crop_loss(c3_ssl_work *w, const c3_ssl_loss_config *c,
                               const float *crop, const c3_ssl_draws *d, double grad_scale,
                               int backward, c3_ssl_terms *terms) {
  C3_CHECK_ARG(w && w->m && c && crop && d && terms, "c3_ssl_crop_loss: NULL argument");
  c3_model *m = w->m;
  c3_engine *e = m->e;
  const int64_t ch = m->cfg.in_channels;
  for (int a = 0; a < 3; a++)
    C3_CHECK_ARG(d->shape[a] >= 32 && d->shape[a] % 32 == 0,
                 "SSL crop [%lld, %lld, %lld]: every side must be a multiple of 32",
                 (long long)d->shape[0], (long long)d->shape[1], (long long)d->shape[2]);
  const int64_t sp = d->shape[0] * d->shape[1] * d->shape[2];
  const size_t vox = (size_t)(ch * sp);
  C3_TRY(c3_ssl_work_reserve(w, vox));
  const size_t cap = w->cap, bytes = vox * sizeof(float);
  if (backward && !m->g) C3_TRY(c3_model_zero_grad(m));

  /* Observations and targets on the host, then uploaded. */
  double mean[64], sd[64];
  int zs = c->zscore_target;
  if (zs) {
    if (ch > 64)
      return c3_error(CSAL3D_ERR_UNSUPPORTED,
                      "z-scored targets support up to 64 channels, the model has %lld",
                      (long long)ch);
    c3_crop_stats(crop, ch, sp, mean, sd);
  }
  int64_t os[NOBS][3];
  int32_t labels[NOBS];
  for (int o = 0; o < NOBS; o++) {
    c3_ssl_observation_shape(d, o, os[o]);
    labels[o] = d->k[o];
    float *ob = w->host + (size_t)o * cap, *tg = w->host2 + (size_t)o * cap;
    c3_ssl_observation_f32(d, o, crop, ch, ob, tg);
    if (zs)
      for (int64_t cc = 0; cc < ch; cc++) {
        float *p = tg + cc * sp;
        double mu = mean[cc], inv = sd[cc] > 1e-12 ? 1.0 / sd[cc] : 1.0;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < sp; i++) p[i] = (float)((p[i] - mu) * inv);
      }
  }
  for (int o = 0; o < NOBS; o++) {
    C3_TRY(e->upload(e, w->obs + (size_t)o * cap, w->host + (size_t)o * cap, bytes));
    C3_TRY(e->upload(e, w->tgt + (size_t)o * cap, w->host2 + (size_t)o * cap, bytes));
  }
  C3_TRY(e->upload(e, w->labels, labels, sizeof labels));
  if (c->masked_only) { /* loss weights: 1 on hidden voxels, every channel */
    uint8_t *vx;
    C3_TRY(c3_alloc((size_t)sp, "SSL voxel mask", (void **)&vx));
    for (int o = 0; o < NOBS; o++) {
      c3_mask_expand(os[o], d->cube, d->masks[o], vx);
      float *wt = w->host + (size_t)o * cap;
      for (int64_t cc = 0; cc < ch; cc++)
        for (int64_t i = 0; i < sp; i++) wt[cc * sp + i] = vx[i] ? 1.0f : 0.0f;
    }
    c3_free(vx);
    for (int o = 0; o < NOBS; o++)
      C3_TRY(e->upload(e, w->wts + (size_t)o * cap, w->host + (size_t)o * cap, bytes));
  }

  /* Forward: every observation alone (see ssl.h for the slots). */
  C3_TRY(c3_ssl_forwards(w, d->shape, (const int64_t(*)[3])os, backward, bytes));
  /* L_inp */
  double inp = 0, l;
  for (int o = 0; o < NOBS; o++) {
    float gs = (float)(c->w_inp * grad_scale / NOBS);
    C3_TRY(e->mse_loss(e, (int64_t)vox, w->rec + (size_t)o * cap,
                       w->tgt + (size_t)o * cap,
                       c->masked_only ? w->wts + (size_t)o * cap : NULL, gs,
                       backward ? w->drec + (size_t)o * cap : NULL, NULL, 0, &l));
    inp += l / NOBS;
  }
  /* L_rot */
  double rot;
  C3_TRY(e->cross_entropy(e, NOBS, C3_MODEL_CLASSES, w->logits, w->labels,
                          (float)(c->w_rot * grad_scale), backward ? w->dlogits : NULL, 0,
                          &rot));
  /* L_cons: reconstructions back in the crop's frame, pairs within a view. */
  for (int o = 0; o < NOBS; o++) {
    c3_axes_map inv = c3_axes_inverse(c3_axes_observation(d->view[o], d->k[o]));
    c3_permute3d_desc pd = c3_ssl_permute_desc(inv, ch, os[o]);
    C3_TRY(e->permute3d(e, &pd, w->rec + (size_t)o * cap, w->al + (size_t)o * cap, 0));
  }
  if (backward) C3_TRY(e->zero(e, w->dal, (size_t)NOBS * cap * sizeof(float)));
  double cons = 0;
  const float gcons = (float)(c->w_cons * grad_scale * 2.0 / 18.0);
  for (int v = 0; v < 3; v++)
    for (int r = 0; r < 3; r++)
      for (int r2 = r + 1; r2 < 3; r2++) {
        int a = 3 * v + r, b = 3 * v + r2;
        C3_TRY(e->l1_loss(e, (int64_t)vox, w->al + (size_t)a * cap,
                          w->al + (size_t)b * cap, gcons,
                          backward ? w->dal + (size_t)a * cap : NULL,
                          backward ? w->dal + (size_t)b * cap : NULL, 1, &l));
        cons += 2.0 * l / 18.0;
      }
  terms->inp = inp;
  terms->rot = rot;
  terms->cons = cons;
  terms->total = c->w_inp * inp + c->w_rot * rot + c->w_cons * cons;
  if (!backward) return CSAL3D_OK;
  if (!isfinite(terms->total)) /* no backward through NaN: the step is refused anyway */
    return c3_error(CSAL3D_ERR_NUMERICAL,
                    "SSL loss is %g (inpainting %g, rotation %g, consistency %g): the crop "
                    "or the model holds NaN or Inf",
                    terms->total, inp, rot, cons);

  /* d_recon += R_o(d_aligned) (the adjoint of the inverse permutation). */
  for (int o = 0; o < NOBS; o++) {
    c3_axes_map fw = c3_axes_observation(d->view[o], d->k[o]);
    c3_permute3d_desc pd = c3_ssl_permute_desc(fw, ch, d->shape);
    C3_TRY(e->permute3d(e, &pd, w->dal + (size_t)o * cap, w->drec + (size_t)o * cap, 1));
  }
  if (backward == 2) return CSAL3D_OK; /* tests: the loss's derivatives only */
  csal3d_status s = c3_ssl_backwards(w, (const int64_t(*)[3])os);
  (void)c3_model_use_slot(m, 0);
  return s;
}

csal3d_status c3_ssl_local_grads(c3_ssl_work *w, int64_t step, const c3_ssl_loss_config *c,
                                 uint64_t seed, const float *crops, const int64_t *items,
                                 int64_t n, int64_t batch, const int64_t dhw[3],
                                 const c3_ssl_draws *draws, c3_ssl_terms *terms) {
  C3_CHECK_ARG(w && c && (crops || n == 0) && dhw && terms, "c3_ssl_local_grads: NULL argument");
  C3_CHECK_ARG(batch >= 1 && n >= 0 && n <= batch, "SSL step: %lld of a batch of %lld crops",
               (long long)n, (long long)batch);
  C3_TRY(c3_ssl_loss_config_check(c));
  c3_model *m = w->m;
  const size_t per = (size_t)(m->cfg.in_channels * dhw[0] * dhw[1] * dhw[2]);
  C3_TRY(c3_model_zero_grad(m));
  c3_ssl_terms sum = {0, 0, 0, 0};
  for (int64_t k = 0; k < n; k++) {
    int64_t i = items ? items[k] : k;
    c3_ssl_draws own;
    const c3_ssl_draws *d = draws ? &draws[k] : &own;
    if (draws) {
      for (int a = 0; a < 3; a++)
        C3_CHECK_ARG(draws[k].shape[a] == dhw[a], "SSL step: draws %lld are for another "
                     "crop shape", (long long)k);
    } else {
      C3_TRY(c3_ssl_draws_random(&own, dhw, C3_MASK_CUBE, c->hide_fraction, seed,
                                 (uint64_t)step, (uint64_t)i));
    }
    c3_ssl_terms t;
    csal3d_status s = c3_ssl_crop_loss(w, c, crops + (size_t)k * per, d,
                                       1.0 / (double)batch, 1, &t);
    if (!draws) c3_ssl_draws_free(&own);
    if (s != CSAL3D_OK) return c3_error_prefix(s, "SSL step %lld, crop %lld",
                                               (long long)step, (long long)i);
    sum.inp += t.inp / (double)batch;
    sum.rot += t.rot / (double)batch;
    sum.cons += t.cons / (double)batch;
    sum.total += t.total / (double)batch;
  }
  *terms = sum;
  return CSAL3D_OK;
}

csal3d_status c3_ssl_train_step(c3_ssl_work *w, c3_optim *o, const c3_ssl_loss_config *c,
                                uint64_t seed, const float *crops, int64_t batch,
                                const int64_t dhw[3], const c3_ssl_draws *draws,
                                c3_ssl_terms *terms) {
  C3_CHECK_ARG(w && o && c && crops && dhw && terms, "c3_ssl_train_step: NULL argument");
  C3_CHECK_ARG(batch >= 1, "SSL step: batch of %lld crops", (long long)batch);
  c3_ssl_terms sum;
  C3_TRY(c3_ssl_local_grads(w, o->step, c, seed, crops, NULL, batch, batch, dhw, draws, &sum));
  C3_TRY(c3_ssl_check_terms(&sum, o->step));
  C3_TRY(c3_optim_step(o));
  *terms = sum;
  return CSAL3D_OK;
}

csal3d_status c3_ssl_check_terms(const c3_ssl_terms *sum, int64_t step) {
  if (isfinite(sum->total)) return CSAL3D_OK;
  return c3_error(CSAL3D_ERR_NUMERICAL,
                  "SSL step %lld: the loss is %g (inpainting %g, rotation %g, "
                  "consistency %g); update skipped",
                  (long long)step, sum->total, sum->inp, sum->rot, sum->cons);
}
