/* The CSAL-3D self-supervised task on the model (docs/algorithms.md, "Self-supervised
 * pretraining"; paper Eq. 1-4): the 9 observations of a crop, the inpainting,
 * rotation and consistency losses, their gradients, and one AdamW step over a batch.
 *
 * One crop at a time, one observation at a time. The coupled loss needs all 9
 * reconstructions before any backward, so the observations' training forwards must
 * stay live until their backwards, or be recomputed. With k workspace slots (model.h;
 * k from a memory budget, c3_ssl_work.slot_budget): the observations of the first k
 * backwards run in training mode, each in its own slot, and are back-propagated from
 * there; the other 9 - k run first in inference mode (outputs kept: 9 x crop voxels)
 * and are recomputed in training mode just before their backwards. k = 9 runs 9
 * forwards and 9 backwards; k = 1 (the fallback) 17 forwards and 9 backwards with one
 * observation's activations. The backwards always go in the same order (the last
 * observation, then 0 .. 7), so the gradients are the same to the bit for every k.
 *
 * Loss of one crop (o = 0..8, view v = o / 3, x_o = masked observation, y_o its
 * reconstruction, t_o the target = the unmasked observation, A_o = R_o^-1):
 *   L_inp  = (1/9) sum_o mse(y_o, t_o)            (options: hidden voxels only,
 *                                                  z-scored target)
 *   L_rot  = (1/9) sum_o CE(logits_o, k_o)
 *   L_cons = (1/18) sum_v sum_{r != r'} mean |A(y_{v,r}) - A(y_{v,r'})|
 *   L = w_inp L_inp + w_rot L_rot + w_cons L_cons
 * and the batch loss is the mean over crops. */
#ifndef C3_MODEL_SSL_H
#define C3_MODEL_SSL_H

#include <stdint.h>

#include "model/model.h"
#include "model/optim.h"
#include "volume/views.h"

typedef struct c3_ssl_loss_config {
  double hide_fraction;       /* cubes hidden per observation (0.3) */
  double w_inp, w_rot, w_cons; /* 1, 1, 1 */
  int masked_only;            /* L_inp over hidden voxels only */
  int zscore_target;          /* target z-scored with the crop's per-channel stats */
} c3_ssl_loss_config;

void c3_ssl_loss_config_default(c3_ssl_loss_config *c);
csal3d_status c3_ssl_loss_config_check(const c3_ssl_loss_config *c);

/* Unweighted terms and the weighted total. */
typedef struct c3_ssl_terms {
  double inp, rot, cons, total;
} c3_ssl_terms;

/* Engine buffers for one crop's 9 observations (grown on demand). */
typedef struct c3_ssl_work {
  c3_model *m;
  size_t cap;          /* floats per observation held */
  float *obs, *tgt, *wts, *rec, *drec, *al, *dal; /* [9][cap] each */
  float *logits, *dlogits;                        /* [9][4] */
  int32_t *labels;                                /* [9] */
  float *host;         /* host scratch [9][cap] */
  float *host2;        /* host scratch [9][cap] */
  /* Bytes the observations' training workspaces may take together (at least one is
   * always used); 0 (c3_ssl_work_init): the rule of c3_ssl_slot_budget. Set by the
   * caller (tests force the recompute path with 1). */
  size_t slot_budget;
  /* The slot count decided (0: none yet), and for what: crop shape, slot_budget,
   * recompute_attention (kept across steps: the slots' memory stays allocated). */
  int slots;
  int64_t slots_shape[3];
  size_t slots_budget;
  int slots_recompute;
} c3_ssl_work;

/* The default budget of the observations' training workspaces: half of the host
 * memory available when the slots are first sized (c3_memory_available), on the CPU
 * engine; 0 (one slot, the recompute path) on other engines, whose free device memory
 * the op table does not report. */
size_t c3_ssl_slot_budget(const c3_engine *e);

void c3_ssl_work_init(c3_ssl_work *w, c3_model *m);
void c3_ssl_work_free(c3_ssl_work *w);

/* The SSL loss of one crop (host, contiguous [in_ch, D, H, W] with d->shape, sides
 * multiples of 32) for the draws d. With backward = 1 the parameter gradients of
 * grad_scale x L ACCUMULATE into the model's gradient buffer (allocate/zero them
 * first with c3_model_zero_grad); a non-finite loss then fails (CSAL3D_ERR_NUMERICAL)
 * before any backward. backward = 2 (tests) stops after the loss's derivatives:
 * w->drec (observation frames) and w->dlogits hold d(grad_scale x L)/d(outputs). */
csal3d_status c3_ssl_crop_loss(c3_ssl_work *w, const c3_ssl_loss_config *c,
                               const float *crop, const c3_ssl_draws *d, double grad_scale,
                               int backward, c3_ssl_terms *terms);

/* The aligned reconstructions of the last c3_ssl_crop_loss (engine memory,
 * observation o at w->al + o * w->cap, [in_ch, D, H, W] in the crop's frame). */

/* One training step over `batch` crops (host [batch, in_ch, D, H, W]): gradients
 * zeroed, the mean of the crops' losses back-propagated, then c3_optim_step (clipping,
 * schedule, AdamW; the step advances). Draws: draws[i] when draws is not NULL, else
 * c3_ssl_draws_random(seed, step = o->step, item = i). terms receives the batch means. */
csal3d_status c3_ssl_train_step(c3_ssl_work *w, c3_optim *o, const c3_ssl_loss_config *c,
                                uint64_t seed, const float *crops, int64_t batch,
                                const int64_t dhw[3], const c3_ssl_draws *draws,
                                c3_ssl_terms *terms);

/* The gradients of n crops of a batch of `batch` (host [n, in_ch, D, H, W]), the items
 * items[k] of that batch (NULL: 0..n-1), into the zeroed gradient buffer: grad_scale
 * 1/batch, so that the sums over ranks holding the batch's shares are the batch's
 * gradients. Draws: draws[k] when not NULL, else c3_ssl_draws_random(seed, step, item).
 * terms receives the shares' sums of the batch means (n = 0: zeros). No update. */
csal3d_status c3_ssl_local_grads(c3_ssl_work *w, int64_t step, const c3_ssl_loss_config *c,
                                 uint64_t seed, const float *crops, const int64_t *items,
                                 int64_t n, int64_t batch, const int64_t dhw[3],
                                 const c3_ssl_draws *draws, c3_ssl_terms *terms);

/* CSAL3D_ERR_NUMERICAL naming the step when the batch loss is not finite. */
csal3d_status c3_ssl_check_terms(const c3_ssl_terms *sum, int64_t step);

/* Axis map -> permute3d descriptor for data [lead, shape]. */
c3_permute3d_desc c3_ssl_permute_desc(c3_axes_map m, int64_t lead, const int64_t shape[3]);

#endif
