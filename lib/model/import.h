/* Import of public pretrained weights (SwinUNETR / Tang et al.'s self-supervised
 * Swin, SwinMM, CSAL-3D) after conversion of their PyTorch state_dict to
 * safetensors (bindings/python/csal3d/convert.py).
 *
 * Key mapping, in order:
 *   1. leading "module." (DataParallel) and "state_dict." are stripped;
 *   2. "swin_vit." becomes "swinViT."; keys starting "patch_embed." or "layersN."
 *      (Tang et al.'s encoder saved alone) get the "swinViT." prefix;
 *   3. ".mlp.fc1." / ".mlp.fc2." become ".mlp.linear1." / ".mlp.linear2.";
 *   4. ignored on purpose: relative_position_index buffers (recomputed), mask_token,
 *      the contrastive head ("contrastive_head.", "contrastive_pre."), and the
 *      SwinUNETR segmentation decoder ("encoder1." .. "encoder10.", "decoder1." ..
 *      "decoder5.", "out.").
 * A mapped key that names a model parameter must have its shape (else
 * CSAL3D_ERR_FORMAT naming both shapes); other keys are counted as unknown.
 * Model parameters the file lacks keep their current values and are reported.
 * Note: weights trained with MONAI expect MONAI's patch merging order
 * (c3_model_config.merge_order = C3_MERGE_MONAI). */
#ifndef C3_MODEL_IMPORT_H
#define C3_MODEL_IMPORT_H

#include "io/safetensors.h"
#include "model/model.h"

typedef struct c3_import_report {
  int loaded;      /* model parameters set from the file */
  int missing;     /* model parameters the file lacks (left unchanged) */
  int ignored;     /* file tensors dropped on purpose (see above) */
  int unknown;     /* file tensors that match no parameter (dropped) */
  char text[2048]; /* a summary naming the first missing and unknown keys */
} c3_import_report;

/* What a file key is. */
typedef enum c3_import_kind { C3_IMPORT_MAPPED = 0, C3_IMPORT_IGNORED = 1 } c3_import_kind;

/* Maps one key (see above) into out (cap bytes). */
c3_import_kind c3_import_map_name(const char *key, char *out, size_t cap);

/* Loads what the file provides into m and fills rep (may be NULL). Fails (and
 * changes nothing) on a shape mismatch or when no parameter at all matches. */
csal3d_status c3_model_import(c3_model *m, const c3_safetensors *st,
                              c3_import_report *rep);

#endif
