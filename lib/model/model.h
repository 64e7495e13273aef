/* The SSL model: MONAI's Swin transformer encoder (SwinUNETR's swinViT), the
 * CSAL-3D inpainting decoder and the rotation head, forward and backward, on any
 * engine (the model only calls the op table of engine/engine.h).
 *
 * Parameters live in ONE contiguous engine buffer (and the gradients in another of
 * the same layout), with a table of named views in MONAI's state_dict order and
 * names ("swinViT.layers1.0.blocks.0.attn.qkv.weight", ..., "rotation_head.weight",
 * "conv.0.weight" ... "conv.20.bias"), as llm.c does.
 *
 * Activations: token-major [N, D, H, W, C] in the encoder, channels-last through
 * the decoder, the reconstruction [N, in_ch, D, H, W]. A forward in training mode
 * keeps what backward needs in one workspace sized for the input shape (kept
 * across calls while the shape does not change). The model has C3_MODEL_SLOTS such
 * workspaces ("slots"); forward, backward and the output accessors use the current
 * one (c3_model_use_slot), so that several forwards can stay live until their
 * backwards (lib/model/ssl.c). The backward's own buffers are shared by the slots. */
#ifndef C3_MODEL_MODEL_H
#define C3_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "csal3d/common.h"
#include "engine/engine.h"

struct c3_safetensors;
struct c3_st_writer;

#define C3_MODEL_STAGES 4
#define C3_MODEL_MAX_DEPTH 8
#define C3_MODEL_LEVELS 5    /* decoder conv+norm+upsample levels */
#define C3_MODEL_CLASSES 4   /* rotation classes */
#define C3_MODEL_SLOTS 9     /* workspace slots (one per SSL observation) */
#define C3_PARAM_NAME_MAX 96

/* Patch merging slot orders (see engine.h). */
typedef enum c3_merge_order {
  /* MONAI's PatchMerging as coded (slots 5 and 6 repeat 2 and 3):
   * 000,100,010,001,101,010,001,111. Weights pretrained with MONAI expect it. */
  C3_MERGE_MONAI = 0,
  /* The v1 order (docs/algorithms.md, "Model"), all 8 sub-voxels:
   * 000,100,010,001,110,101,011,111.
   * The default; the MONAI parity data were computed with it. */
  C3_MERGE_DISTINCT = 1
} c3_merge_order;

/* What the rotation head reads. */
typedef enum c3_rot_input {
  C3_ROT_MEAN = 0,       /* spatial mean of normalised hidden4 (the paper) */
  C3_ROT_FIRST_TOKEN = 1 /* the first token (reference code) */
} c3_rot_input;

typedef struct c3_model_config {
  int embed_dim;   /* C, a multiple of 12 */
  int in_channels; /* >= 1 */
  int depths[C3_MODEL_STAGES];    /* 2,2,2,2 */
  int heads[C3_MODEL_STAGES];     /* 3,6,12,24 */
  int window;      /* 7 */
  int patch;       /* 2 (the only value supported) */
  int mlp_ratio;   /* 4 */
  c3_merge_order merge_order;
  c3_rot_input rot_input;
  int feature_full; /* 0: 256 triplet means of the pooled 16C (C = 48); 1: all 16C */
} c3_model_config;

/* The defaults for an embed_dim and in_channels (docs/algorithms.md, "Model"): depths
 * 2,2,2,2, heads 3,6,12,24, window 7, patch 2, MLP ratio 4, the distinct merge order, the
 * rotation head on the mean, the reduced feature. */
void c3_model_config_default(c3_model_config *c, int embed_dim, int in_channels);
/* Checks a configuration; CSAL3D_ERR_INVALID_ARGUMENT / UNSUPPORTED with the reason. */
csal3d_status c3_model_config_check(const c3_model_config *c);
/* Reads a configuration from safetensors metadata (embed_dim or MONAI's feature_size,
 * in_channels or in_chans, and the optional depths, num_heads, window_size, patch_size,
 * mlp_ratio, qkv_bias, patch_merging, merge_order, rotation_input, feature): missing
 * keys take the defaults, values the model cannot honour fail naming the key. */
csal3d_status c3_model_config_from_metadata(const struct c3_safetensors *st,
                                            c3_model_config *c);
/* An integer of the metadata under key or its MONAI name (embed_dim: feature_size,
 * in_channels: in_chans): *value is set when either is present (else unchanged), *found
 * (may be NULL) receives the name present or NULL. Both present and different, or not
 * an integer: CSAL3D_ERR_FORMAT naming the file and keys. */
csal3d_status c3_model_metadata_int(const struct c3_safetensors *st, const char *key,
                                    int *value, const char **found);
/* Writes the configuration as metadata strings (the keys above). */
csal3d_status c3_model_config_to_metadata(const c3_model_config *c,
                                          struct c3_st_writer *w);

/* What a parameter is (decides initialisation and weight decay). */
typedef enum c3_param_kind {
  C3_PK_LINEAR_W = 0,
  C3_PK_LINEAR_B,
  C3_PK_NORM_W,
  C3_PK_NORM_B,
  C3_PK_TABLE, /* relative position bias table */
  C3_PK_CONV_W,
  C3_PK_CONV_B
} c3_param_kind;

typedef struct c3_param {
  char name[C3_PARAM_NAME_MAX];
  c3_param_kind kind;
  int ndim;
  int64_t shape[5];
  size_t offset; /* in floats, into the parameter (and gradient) buffer */
  size_t numel;
  int fan_in;    /* for PyTorch's default init of convolutions */
  int decay;     /* weight decay applies (linear and conv weights) */
} c3_param;

/* Indices of one Swin block's parameters in the table. */
typedef struct c3_block_ids {
  int norm1_w, norm1_b, table, qkv_w, qkv_b, proj_w, proj_b, norm2_w, norm2_b,
      fc1_w, fc1_b, fc2_w, fc2_b;
} c3_block_ids;

typedef struct c3_model_ids {
  int embed_w, embed_b;
  c3_block_ids block[C3_MODEL_STAGES][C3_MODEL_MAX_DEPTH];
  int red_w[C3_MODEL_STAGES], dnorm_w[C3_MODEL_STAGES], dnorm_b[C3_MODEL_STAGES];
  int rot_w, rot_b;
  int conv_w[C3_MODEL_LEVELS + 1], conv_b[C3_MODEL_LEVELS + 1];
} c3_model_ids;

typedef struct c3_model_plan c3_model_plan;

typedef struct c3_model {
  c3_model_config cfg;
  c3_engine *e;
  c3_param *params;
  size_t nparams;
  size_t total;       /* floats in the parameter buffer */
  c3_model_ids id;
  float *w;           /* engine memory: parameters */
  float *g;           /* engine memory: gradients (allocated on first need) */
  c3_model_plan *plan; /* the current slot's workspace (NULL before its forward) */
  c3_model_plan *slot_plan[C3_MODEL_SLOTS]; /* the other slots' (slot_plan[slot]: NULL) */
  int slot;           /* the current slot, 0 unless c3_model_use_slot changed it */
  float *bws;         /* engine memory: backward buffers, shared by the slots */
  size_t bws_cap;     /* floats allocated there */
  int recompute_attention; /* 1: attention probabilities are not stored, backward
                              recomputes them (less memory, more time) */
} c3_model;

/* Builds the parameter table and allocates the parameter buffer (zeroed). */
csal3d_status c3_model_create(c3_engine *e, const c3_model_config *cfg,
                              c3_model **out);
void c3_model_free(c3_model *m);

/* Parameter count (the sum of the table). For C = 48, in_ch = 1: 18,703,463. */
size_t c3_model_param_total(const c3_model *m);
/* The index of a parameter by MONAI name, or -1. */
int c3_model_find_param(const c3_model *m, const char *name);

/* Initialises as PyTorch/MONAI: truncated normal (std 0.02, bounds +-2) for Linear
 * weights and relative position tables, zero Linear biases, LayerNorm ones/zeros,
 * PyTorch's default for Conv3d weights and biases (uniform +-1/sqrt(fan_in)).
 * Every parameter draws from its own stream (seed, C3_RNG_INIT, parameter index). */
csal3d_status c3_model_init(c3_model *m, uint64_t seed);
/* The same values written into host (m->total floats) instead of the model. */
csal3d_status c3_model_init_host(const c3_model *m, uint64_t seed, float *host);

/* "a, b, c" for a shape (into buf, n bytes), as messages print shapes. */
void c3_model_shape_text(int ndim, const int64_t *shape, char *buf, size_t n);

/* Loads every parameter from tensors named prefix + NAME (e.g. prefix "param."
 * for the reference files, "" for checkpoints). Shapes must match exactly; a
 * missing tensor fails naming it. */
csal3d_status c3_model_load(c3_model *m, const struct c3_safetensors *st,
                            const char *prefix);

/* Host copies of the whole parameter / gradient buffer (total floats). */
csal3d_status c3_model_get_params(const c3_model *m, float *host);
csal3d_status c3_model_set_params(c3_model *m, const float *host);
csal3d_status c3_model_get_grads(const c3_model *m, float *host);

/* Zeroes the gradients (allocating them on first use). */
csal3d_status c3_model_zero_grad(c3_model *m);

/* ---- forward and backward ---- */

/* Runs the model on x (engine memory, [n, in_ch, d, h, w], sides multiples of 32).
 * train = 1 keeps what backward needs. Outputs stay in the model's workspace until
 * the next forward (see the accessors). */
csal3d_status c3_model_forward(c3_model *m, const float *x, int64_t n,
                               const int64_t dhw[3], int train);

/* Gradients of a loss whose derivatives with respect to the reconstruction
 * (d_recon, [n, in_ch, d, h, w]) and the logits (d_logits, [n, 4]) are given
 * (either NULL: zero). Parameter gradients ACCUMULATE into the gradient buffer
 * (call c3_model_zero_grad first); d_input (NULL: not computed) is overwritten.
 * Needs the last forward to have run with train = 1 on the same x. */
csal3d_status c3_model_backward(c3_model *m, const float *x, const float *d_recon,
                                const float *d_logits, float *d_input);

/* Outputs of the last forward, engine memory. hidden i (0..4): token-major
 * [n, d_i, h_i, w_i, C_i] after the channel layer norm without affine; sides and
 * channels in shape (n, d, h, w, c). */
const float *c3_model_hidden(const c3_model *m, int i, int64_t shape[5]);
const float *c3_model_pooled(const c3_model *m);         /* [n, 16C] */
const float *c3_model_logits(const c3_model *m);         /* [n, 4] */
const float *c3_model_reconstruction(const c3_model *m); /* [n, in_ch, d, h, w] */

/* Bytes of the workspaces of every slot (activations) and the backward buffers. */
size_t c3_model_workspace_bytes(const c3_model *m);

/* ---- workspace slots ---- */

/* Makes `slot` (0 .. C3_MODEL_SLOTS - 1) the current workspace: forward, backward and
 * the accessors above use it; the others keep their activations (a forward with
 * train = 1 stays ready for its backward while other slots run). Cheap: no memory is
 * allocated until the slot's first forward. */
csal3d_status c3_model_use_slot(c3_model *m, int slot);
/* Frees the workspaces of slots 1 .. C3_MODEL_SLOTS - 1 and makes slot 0 current. */
void c3_model_release_slots(c3_model *m);
/* Bytes a slot's activation workspace takes for an input [n, in_ch, dhw] in training
 * (train = 1, with the model's recompute_attention) or inference mode, without
 * allocating it (the backward buffers, shared, not included). */
csal3d_status c3_model_slot_bytes(const c3_model *m, int64_t n, const int64_t dhw[3],
                                  int train, size_t *bytes);

#endif
