/* A 3-D U-Net for segmentation (nnU-Net's PlainConvUNet without deep supervision),
 * forward and backward on any engine that provides its ops (the engine's op table:
 * conv3d, inorm_lrelu, channel_copy, seg_loss, reduce_sum, broadcast, adamw).
 *
 * Stage s (0 .. stages-1) has widths[s] channels and sides D >> s, H >> s, W >> s:
 *   encoder s: conv 3^3 (stride 2 for s > 0, else 1; pad 1) + instance norm + LeakyReLU
 *              (0.01), conv 3^3 + instance norm + LeakyReLU: the skip of stage s;
 *   decoder s (s = stages-2 .. 0): transposed conv 2^3 stride 2 (widths[s+1] ->
 *              widths[s], with bias), concatenation [upsampled, skip] (2 widths[s]
 *              channels), then two conv 3^3 + instance norm + LeakyReLU;
 *   head: conv 1^3 widths[0] -> classes (with bias): the logits.
 * Every convolution has a bias (as nnU-Net's conv_bias=True). Activations are
 * channels-last (NDHWC) throughout; the input is [N, in_channels, D, H, W] and the
 * logits [N, D, H, W, classes] (a row of classes per voxel, what seg_loss takes).
 * Sides must be multiples of 2^(stages-1).
 *
 * Parameters live in one engine buffer (the convolution weights first, then the biases;
 * gradients, AdamW moments in buffers of the same layout), named
 * "enc.S.conv.J.weight|bias", "dec.S.up.weight|bias", "dec.S.conv.J.weight|bias",
 * "head.weight|bias" (S the resolution stage). A
 * transposed convolution's weight is [widths[s+1], widths[s], 2, 2, 2], PyTorch's
 * ConvTranspose3d layout; it runs as the data gradient of the convolution
 * widths[s] -> widths[s+1] (kernel 2, stride 2) with that weight. */
#ifndef C3_MODEL_UNET_H
#define C3_MODEL_UNET_H

#include <stddef.h>
#include <stdint.h>

#include "csal3d/common.h"
#include "engine/engine.h"
#include "model/model.h"

#define C3_UNET_MAX_STAGES 7

typedef struct c3_unet_config {
  int in_channels; /* >= 1 */
  int classes;     /* >= 2 (background + labels) */
  int stages;      /* 2 .. C3_UNET_MAX_STAGES (5 as nnU-Net's 3d_fullres on the hippocampus) */
  int widths[C3_UNET_MAX_STAGES]; /* 16, 32, 64, 128, 256 */
  float slope;     /* LeakyReLU negative slope: 0.01 (1 makes the network smooth, for
                      finite-difference tests) */
} c3_unet_config;

/* 5 stages of 16, 32, 64, 128, 256 channels, slope 0.01. */
void c3_unet_config_default(c3_unet_config *c, int in_channels, int classes);
csal3d_status c3_unet_config_check(const c3_unet_config *c);

typedef struct c3_unet_plan c3_unet_plan;

typedef struct c3_unet {
  c3_unet_config cfg;
  c3_engine *e;
  c3_param *params;
  size_t nparams, total;
  size_t decay_total; /* the convolution weights come first: [0, decay_total) */
  int enc_w[C3_UNET_MAX_STAGES][2], enc_b[C3_UNET_MAX_STAGES][2];
  int up_w[C3_UNET_MAX_STAGES], up_b[C3_UNET_MAX_STAGES];
  int dec_w[C3_UNET_MAX_STAGES][2], dec_b[C3_UNET_MAX_STAGES][2];
  int head_w, head_b;
  float *w, *g;   /* engine memory: parameters, gradients (allocated on first need) */
  float *m, *v;   /* AdamW moments (allocated on the first update) */
  int64_t step;   /* AdamW updates done */
  c3_unet_plan *plan;
} c3_unet;

/* Builds the parameter table and allocates the parameters (zeroed). */
csal3d_status c3_unet_create(c3_engine *e, const c3_unet_config *cfg, c3_unet **out);
void c3_unet_free(c3_unet *u);

/* nnU-Net's InitWeights_He(1e-2): weights normal(0, sqrt(2 / (1 + 0.01^2)) / sqrt(fan_in))
 * (fan_in = weight.size(1) * kernel volume, as PyTorch computes it), biases 0. Each
 * parameter draws from its own stream (seed, C3_RNG_INIT, index, "UNET"). */
csal3d_status c3_unet_init(c3_unet *u, uint64_t seed);

/* CSAL3D_ERR_UNSUPPORTED, naming the engine and the op, when an engine lacks an op the
 * U-Net needs for inference (train 0) or training (train 1). */
csal3d_status c3_unet_check_engine(const c3_engine *e, int train);

/* Zeroes the gradients (allocating them on first use). */
csal3d_status c3_unet_zero_grad(c3_unet *u);

/* Runs the network on x (engine memory, [n, in_channels, d, h, w]). The logits stay in
 * the workspace until the next forward (c3_unet_logits). train = 1 keeps what
 * backward needs (the workspace always holds it: the flag only arms backward). */
csal3d_status c3_unet_forward(c3_unet *u, const float *x, int64_t n, const int64_t dhw[3],
                              int train);
/* The logits of the last forward, [n, d, h, w, classes]. */
const float *c3_unet_logits(const c3_unet *u);

/* Parameter gradients ACCUMULATE (c3_unet_zero_grad first) from d_logits (same layout as
 * the logits); d_input (NULL: not computed) is overwritten. */
csal3d_status c3_unet_backward(c3_unet *u, const float *x, const float *d_logits,
                               float *d_input);

/* One AdamW update (decoupled weight decay on conv weights only) from the gradients,
 * after clipping their global norm to clip_norm (0: no clipping), as
 * torch.nn.utils.clip_grad_norm_. *norm (may be NULL) receives the norm before
 * clipping. A non-finite norm fails with CSAL3D_ERR_NUMERICAL and changes nothing. */
csal3d_status c3_unet_adamw_step(c3_unet *u, double lr, double weight_decay,
                                 double clip_norm, double *norm);

/* Bytes of the workspace (activations and backward buffers) of the last forward. */
size_t c3_unet_workspace_bytes(const c3_unet *u);

/* Host copies: parameters (total floats), and the moments (total floats each). */
csal3d_status c3_unet_get_params(const c3_unet *u, float *host);
csal3d_status c3_unet_set_params(c3_unet *u, const float *host);
csal3d_status c3_unet_get_grads(const c3_unet *u, float *host);

struct c3_st_writer;
struct c3_safetensors;
/* Adds the parameters ("NAME"), the moments ("adam.m.NAME", "adam.v.NAME", when any
 * update was done) and the step ("adam.step", int64) to a writer; the host copies are
 * kept in *hold (c3_free it after writing). */
csal3d_status c3_unet_add_to_writer(const c3_unet *u, struct c3_st_writer *w, float **hold);
/* Restores what c3_unet_add_to_writer wrote (shapes must match exactly). */
csal3d_status c3_unet_load(c3_unet *u, const struct c3_safetensors *st);

#endif
