/* AdamW with parameter groups, clipping and the warm-up + cosine schedule. */
#include "model/optim.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

void c3_optim_config_default(c3_optim_config *c, int64_t total_steps) {
  memset(c, 0, sizeof *c);
  c->lr = 5e-4;
  c->beta1 = 0.9;
  c->beta2 = 0.999;
  c->eps = 1e-8;
  c->weight_decay = 0.1;
  c->clip_norm = 1.0;
  c->warmup_steps = 500;
  c->total_steps = total_steps;
}

csal3d_status c3_optim_config_check(const c3_optim_config *c) {
  C3_CHECK_ARG(c != NULL, "optimiser configuration is NULL");
  C3_CHECK_ARG(isfinite(c->lr) && c->lr >= 0, "learning rate %g: must be >= 0", c->lr);
  C3_CHECK_ARG(c->beta1 >= 0 && c->beta1 < 1, "beta1 %g: must be in [0, 1)", c->beta1);
  C3_CHECK_ARG(c->beta2 >= 0 && c->beta2 < 1, "beta2 %g: must be in [0, 1)", c->beta2);
  C3_CHECK_ARG(c->eps > 0 && isfinite(c->eps), "eps %g: must be > 0", c->eps);
  C3_CHECK_ARG(c->weight_decay >= 0 && isfinite(c->weight_decay),
               "weight decay %g: must be >= 0", c->weight_decay);
  C3_CHECK_ARG(c->clip_norm >= 0 && isfinite(c->clip_norm),
               "gradient clipping norm %g: must be >= 0 (0 turns it off)", c->clip_norm);
  C3_CHECK_ARG(c->warmup_steps >= 0, "warm-up steps %lld: must be >= 0",
               (long long)c->warmup_steps);
  C3_CHECK_ARG(c->total_steps >= 1, "total steps %lld: must be >= 1",
               (long long)c->total_steps);
  return CSAL3D_OK;
}

double c3_optim_lr_at(const c3_optim_config *c, int64_t step) {
  if (step < c->warmup_steps) return c->lr * (double)step / (double)c->warmup_steps;
  int64_t span = c->total_steps - c->warmup_steps;
  double progress = (double)(step - c->warmup_steps) / (double)(span > 1 ? span : 1);
  double f = 0.5 * (1.0 + cos(M_PI * progress));
  return c->lr * (f > 0 ? f : 0);
}

csal3d_status c3_optim_create(c3_model *model, const c3_optim_config *cfg,
                              c3_optim **out) {
  C3_CHECK_ARG(out != NULL && model != NULL, "c3_optim_create: NULL argument");
  *out = NULL;
  C3_TRY(c3_optim_config_check(cfg));
  c3_engine *e = model->e;
  if (!e->adamw || !e->dot)
    return c3_error(CSAL3D_ERR_UNSUPPORTED, "the %s engine has no AdamW op", e->name);
  c3_optim *o;
  C3_TRY(c3_calloc_array(1, sizeof *o, "optimiser", (void **)&o));
  o->cfg = *cfg;
  o->model = model;
  o->last_scale = 1.0;
  size_t bytes = model->total * sizeof(float);
  csal3d_status s = e->alloc(e, bytes, "AdamW first moments", (void **)&o->m);
  if (s == CSAL3D_OK) s = e->alloc(e, bytes, "AdamW second moments", (void **)&o->v);
  if (s == CSAL3D_OK) s = e->zero(e, o->m, bytes);
  if (s == CSAL3D_OK) s = e->zero(e, o->v, bytes);
  if (s != CSAL3D_OK) {
    c3_optim_free(o);
    return s;
  }
  *out = o;
  return CSAL3D_OK;
}

void c3_optim_free(c3_optim *o) {
  if (!o) return;
  c3_engine *e = o->model->e;
  if (o->m) e->free(e, o->m);
  if (o->v) e->free(e, o->v);
  c3_free(o);
}

csal3d_status c3_model_grad_norm(const c3_model *m, double *norm) {
  if (!m->g) return c3_error(CSAL3D_ERR_STATE, "the model has no gradients yet");
  double ss = 0;
  /* The padding between parameters is zero, so the whole buffer is the norm. */
  C3_TRY(m->e->dot(m->e, (int64_t)m->total, m->g, m->g, &ss));
  *norm = sqrt(ss);
  return CSAL3D_OK;
}

csal3d_status c3_optim_step(c3_optim *o) {
  c3_model *m = o->model;
  c3_engine *e = m->e;
  double norm;
  C3_TRY(c3_model_grad_norm(m, &norm));
  if (!isfinite(norm))
    return c3_error(CSAL3D_ERR_NUMERICAL,
                    "gradient norm is %g at step %lld: update skipped (lower the "
                    "learning rate or check the input)",
                    norm, (long long)o->step);
  double scale = 1.0;
  if (o->cfg.clip_norm > 0) { /* torch.nn.utils.clip_grad_norm_ */
    scale = o->cfg.clip_norm / (norm + 1e-6);
    if (scale > 1.0) scale = 1.0;
  }
  double lr = c3_optim_lr_at(&o->cfg, o->step);
  c3_adamw_desc d = {0};
  d.lr = (float)lr;
  d.beta1 = (float)o->cfg.beta1;
  d.beta2 = (float)o->cfg.beta2;
  d.eps = (float)o->cfg.eps;
  d.grad_scale = (float)scale;
  d.step = o->step + 1;
  for (size_t i = 0; i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    d.weight_decay = p->decay ? (float)o->cfg.weight_decay : 0.0f;
    C3_TRY(e->adamw(e, &d, (int64_t)p->numel, m->w + p->offset, m->g + p->offset,
                    o->m + p->offset, o->v + p->offset));
  }
  o->step++;
  o->last_lr = lr;
  o->last_norm = norm;
  o->last_scale = scale;
  return CSAL3D_OK;
}

csal3d_status c3_optim_get_moments(const c3_optim *o, float *m_host, float *v_host) {
  c3_engine *e = o->model->e;
  size_t bytes = o->model->total * sizeof(float);
  C3_TRY(e->download(e, m_host, o->m, bytes));
  return e->download(e, v_host, o->v, bytes);
}

csal3d_status c3_optim_set_moments(c3_optim *o, const float *m_host,
                                   const float *v_host) {
  c3_engine *e = o->model->e;
  size_t bytes = o->model->total * sizeof(float);
  C3_TRY(e->upload(e, o->m, m_host, bytes));
  return e->upload(e, o->v, v_host, bytes);
}
