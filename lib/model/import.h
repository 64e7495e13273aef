/* Starting weights from a file: public pretrained Swin encoders (MONAI's SwinUNETR,
 * Tang et al.'s self-supervised Swin, SwinMM) after conversion of their PyTorch
 * state_dict to safetensors (bindings/python/csal3d/convert.py), and csal3d's own
 * checkpoints (csal3d_ssl_model_init_from, lib/model/ssl_init.c).
 *
 * Key mapping, in order:
 *   1. leading "module." (DataParallel) and "state_dict." are stripped;
 *   2. "swin_vit." becomes "swinViT."; keys starting "patch_embed." or "layersN."
 *      (Tang et al.'s encoder saved alone) get the "swinViT." prefix;
 *   3. ".mlp.fc1." / ".mlp.fc2." become ".mlp.linear1." / ".mlp.linear2.";
 *   4. ignored on purpose (each with its reason, C3_IMPORT_WHY_*): relative_position_index
 *      buffers (recomputed), optimiser moments ("optim."), mask_token, the other
 *      self-supervised heads ("contrastive_head.", "contrastive_pre.", "rotation_pre."),
 *      and SwinUNETR's segmentation decoder ("encoder1." .. "encoder10.", "decoder1." ..
 *      "decoder5.", "out.").
 * What the file must hold: the whole encoder (every "swinViT." parameter, with the
 * model's shapes). The rotation head and the decoder are loaded where present and
 * otherwise initialised as for a new model (c3_model_init_host with the given seed). A
 * mapped key under "swinViT." that is no parameter of the model is an error (another
 * architecture); other unknown keys are ignored. Metadata, where present, must agree
 * with the model: embed_dim (or MONAI's feature_size), in_channels (or in_chans),
 * depths, num_heads, window_size, patch_size, mlp_ratio, and rotation_input when the
 * file has a rotation head; merge_order sets the model's patch merging order (absent:
 * the default, distinct). */
#ifndef C3_MODEL_IMPORT_H
#define C3_MODEL_IMPORT_H

#include <stdint.h>

#include "io/safetensors.h"
#include "model/model.h"

/* Why a file tensor is not used. */
typedef enum c3_import_why {
  C3_IMPORT_WHY_NONE = 0,     /* used (mapped to a model parameter name) */
  C3_IMPORT_WHY_INDEX,        /* relative_position_index: recomputed */
  C3_IMPORT_WHY_OPTIMISER,    /* optim.*: a new run starts with zero moments */
  C3_IMPORT_WHY_SEGMENTATION, /* SwinUNETR's segmentation decoder */
  C3_IMPORT_WHY_OTHER_HEAD,   /* mask token, contrastive head, rotation_pre */
  C3_IMPORT_WHY_UNKNOWN,      /* no parameter of the model (outside the encoder) */
  C3_IMPORT_WHY_COUNT
} c3_import_why;

/* What a file key is. */
typedef enum c3_import_kind { C3_IMPORT_MAPPED = 0, C3_IMPORT_IGNORED = 1 } c3_import_kind;

/* Maps one key (see above) into out (cap bytes); *why (may be NULL) receives the reason
 * for an ignored key (C3_IMPORT_WHY_NONE for a mapped one). */
c3_import_kind c3_import_map_name(const char *key, char *out, size_t cap,
                                  c3_import_why *why);

/* A short text for a reason ("relative_position_index (recomputed)", ...). */
const char *c3_import_why_text(c3_import_why why);

typedef struct c3_import_report {
  int loaded;      /* model parameters set from the file */
  int initialised; /* model parameters the file lacks, initialised as for a new model */
  int ignored;     /* file tensors not used */
  int ignored_why[C3_IMPORT_WHY_COUNT];
  int merge_monai; /* the file's metadata set MONAI's patch merging order */
  char summary[1024];
  char *details;   /* one line per tensor (owned; c3_import_report_free) */
} c3_import_report;

void c3_import_report_free(c3_import_report *r);

/* Sets every parameter of m from the file (see above) or, where the file has none for
 * the rotation head or decoder, from c3_model_init_host(m, seed). On success rep (may
 * be NULL) is filled; on error m is unchanged and the message names the tensor (and
 * both shapes), the metadata key, or what is missing. */
csal3d_status c3_model_import(c3_model *m, const c3_safetensors *st, uint64_t seed,
                              c3_import_report *rep);

#endif
