/* Checkpoints of the SSL model: safetensors files with
 *   - every parameter under its MONAI name (so MONAI tooling reads the weights),
 *   - the AdamW moments as "optim.exp_avg.NAME" and "optim.exp_avg_sq.NAME",
 *   - metadata: the model configuration (see c3_model_config_to_metadata),
 *     "format" = "csal3d-checkpoint", "format_version" = "1", "step" (updates
 *     done), "seed" (the context seed: with the step it fixes every later random
 *     draw, the generator being counter-based), the optimiser settings
 *     ("optim.lr", "optim.beta1", "optim.beta2", "optim.eps",
 *     "optim.weight_decay", "optim.clip_norm", "optim.warmup_steps",
 *     "optim.total_steps"), caller extras, and
 *   - "checksum" = "crc32:XXXXXXXX": CRC-32 of the data section followed by every
 *     other metadata "key\0value\0" in key order; loading verifies it
 *     (CSAL3D_ERR_CHECKSUM).
 * Files are written atomically (temporary file, fsync, rename). */
#ifndef C3_MODEL_CHECKPOINT_H
#define C3_MODEL_CHECKPOINT_H

#include <stdint.h>

#include "io/safetensors.h"
#include "model/model.h"
#include "model/optim.h"

/* Saves the model (and the optimiser when o is not NULL). extra: NULL or a
 * NULL-terminated list of key, value, key, value, ... metadata strings for the
 * caller (keys must not collide with the ones above). */
csal3d_status c3_checkpoint_save(const char *path, const c3_model *m,
                                 const c3_optim *o, uint64_t seed,
                                 const char *const *extra);

/* Opens a checkpoint and verifies its checksum (a file without "checksum", such
 * as a converted MONAI state_dict, is accepted: *verified = 0). */
csal3d_status c3_checkpoint_open(const char *path, c3_safetensors **out,
                                 int *verified);

/* Restores parameters into m (whose configuration must match the file's, see
 * c3_model_config_from_metadata), and, when o is not NULL, the moments, step and
 * optimiser settings. *seed (may be NULL) receives the saved seed. */
csal3d_status c3_checkpoint_restore(const c3_safetensors *st, c3_model *m,
                                    c3_optim *o, uint64_t *seed);

/* The checksum of a parsed file as written in its "checksum" metadata. */
uint32_t c3_checkpoint_checksum(const c3_safetensors *st);

#endif
