/* AdamW for the model: parameter groups (weight decay on linear and conv weights
 * only: not on biases, norms or relative position tables), global-norm gradient
 * clipping as torch.nn.utils.clip_grad_norm_, and the warm-up + cosine schedule of
 * MONAI's WarmupCosineSchedule (used by SwinMM / SwinUNETR pretraining). The
 * element update is the engine's adamw op (torch.optim.AdamW). */
#ifndef C3_MODEL_OPTIM_H
#define C3_MODEL_OPTIM_H

#include <stdint.h>

#include "model/model.h"

typedef struct c3_optim_config {
  double lr;           /* peak learning rate (default 5e-4 x batch / 2, as SwinMM) */
  double beta1, beta2; /* 0.9, 0.999 */
  double eps;          /* 1e-8 */
  double weight_decay; /* 0.1, on the decay group only */
  double clip_norm;    /* global gradient norm limit; 0 turns clipping off (1.0) */
  int64_t warmup_steps; /* 500 */
  int64_t total_steps;  /* length of the schedule (the cosine reaches 0 there) */
} c3_optim_config;

void c3_optim_config_default(c3_optim_config *c, int64_t total_steps);
csal3d_status c3_optim_config_check(const c3_optim_config *c);

/* Learning rate of update number `step` (0-based: the first update is step 0), as
 * LambdaLR(WarmupCosineSchedule): lr * step / warmup during warm-up (so the first
 * update has lr 0, as in MONAI), then lr * 0.5 (1 + cos(pi * progress)) with
 * progress = (step - warmup) / max(1, total - warmup), floored at 0. */
double c3_optim_lr_at(const c3_optim_config *c, int64_t step);

typedef struct c3_optim {
  c3_optim_config cfg;
  c3_model *model;
  float *m, *v;        /* engine memory: first and second moments (model layout) */
  int64_t step;        /* updates done */
  double last_lr;      /* learning rate of the last update */
  double last_norm;    /* global gradient norm before clipping, last update */
  double last_scale;   /* clipping factor applied, last update (1: none) */
} c3_optim;

/* Moments zeroed, step 0. */
csal3d_status c3_optim_create(c3_model *model, const c3_optim_config *cfg,
                              c3_optim **out);
void c3_optim_free(c3_optim *o);

/* Global L2 norm of the model's gradients (double accumulation on the engine). */
csal3d_status c3_model_grad_norm(const c3_model *m, double *norm);

/* One update from the model's gradients: norm, clip, schedule, AdamW per
 * parameter (decay group with weight_decay, the rest with 0). Fails with
 * CSAL3D_ERR_NUMERICAL (and changes nothing) when the gradient norm is not
 * finite. */
csal3d_status c3_optim_step(c3_optim *o);

/* Host copies of the moments (model->total floats each) and their restoration. */
csal3d_status c3_optim_get_moments(const c3_optim *o, float *m_host, float *v_host);
csal3d_status c3_optim_set_moments(c3_optim *o, const float *m_host,
                                   const float *v_host);

#endif
