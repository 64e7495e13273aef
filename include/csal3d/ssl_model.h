/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file ssl_model.h
 * @brief The self-supervised model: Swin-UNETR encoder, inpainting decoder, rotation head.
 *
 * A ::csal3d_ssl_model holds the parameters (MONAI names), the optimiser
 * state and the training schedule of the CSAL-3D pretext task (docs/algorithms.md,
 * "Self-supervised pretraining"). Each crop x gives 9 observations: 3 views
 * (identity, D<->H, D<->W) x 3 rotations by k in {0..3} quarter turns in the
 * (H, W) plane, each with round(mask_ratio x cubes) of its 16^3 cubes hidden.
 * The model reconstructs every observation and classifies its rotation; the
 * loss is
 *
 *     L = w_inp L_inp + w_rot L_rot + w_cons L_cons
 *
 * with L_inp the mean over the 9 of the squared error against the unmasked
 * observation, L_rot the mean cross-entropy of the rotation logits, and
 * L_cons the mean absolute difference between reconstructions of the same
 * view brought back to the crop's frame (1/18 of the sum over views and
 * ordered pairs of rotations). AdamW with warm-up and cosine decay, global
 * gradient clipping. Every random draw (crops, rotations, masks, the order
 * of the cases) comes from a counter-based generator keyed by (seed, step,
 * item), so a run resumed from a checkpoint continues exactly as if it had
 * not stopped, and results do not depend on the number of threads.
 *
 * @code
 * csal3d_ssl_options so;
 * csal3d_ssl_options_init(&so);
 * so.embed_dim = 48;
 * so.crop_size[0] = so.crop_size[1] = so.crop_size[2] = 96;
 * so.iterations = 2000;
 * so.checkpoint_every = 500;
 * so.checkpoint_path = "ssl.safetensors";
 * csal3d_ssl_model *m;
 * if (csal3d_ssl_model_create(ctx, &so, &m) != CSAL3D_OK ||
 *     csal3d_ssl_model_train(m, dataset, NULL) != CSAL3D_OK) // dataset.json's modality
 *   fprintf(stderr, "csal3d: %s\n", csal3d_last_error());
 * csal3d_ssl_model_save(m, "ssl.safetensors");
 * csal3d_ssl_model_free(m);
 * @endcode
 *
 * Memory: training keeps the activations of up to the 9 observations of a
 * crop until their backwards (as many as fit in half the available memory on
 * the CPU engine, e.g. 9.4 GiB at 64^3 and embed_dim 48; the others are first
 * run in inference mode to evaluate the coupled loss, then recomputed in
 * training mode and back-propagated alone; the CUDA engine keeps one), plus a
 * few buffers of 9 x crop voxels. The result does not depend on how many fit.
 */
#ifndef CSAL3D_SSL_MODEL_H
#define CSAL3D_SSL_MODEL_H

#include "csal3d/context.h"
#include "csal3d/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque SSL model: parameters, optimiser state, schedule. */
typedef struct csal3d_ssl_model csal3d_ssl_model;

/** What ::csal3d_ssl_options.mask_ratio means. */
typedef enum csal3d_mask_mode {
  /** mask_ratio is the fraction of cubes hidden (the paper; default). */
  CSAL3D_MASK_HIDE = 0,
  /** Reference code: mask_ratio is the fraction KEPT; 1 - mask_ratio is hidden. */
  CSAL3D_MASK_KEEP = 1
} csal3d_mask_mode;

/** What the rotation head reads. */
typedef enum csal3d_rotation_input {
  /** The spatial mean of the normalised deepest feature map (the paper; default). */
  CSAL3D_ROTATION_INPUT_MEAN = 0,
  /** Its first token (reference code). */
  CSAL3D_ROTATION_INPUT_FIRST_TOKEN = 1
} csal3d_rotation_input;

/** The sampling feature of a volume or crop. */
typedef enum csal3d_feature_mode {
  /** Where an option allows it: whatever the model was configured with. */
  CSAL3D_FEATURE_DEFAULT = 0,
  /** The pooled 16C channels averaged in consecutive triplets: 16C / 3 values
   *  (256 for embed_dim 48), as the reference code does. The model default. */
  CSAL3D_FEATURE_REDUCED = 1,
  /** All 16C pooled channels (768 for embed_dim 48). */
  CSAL3D_FEATURE_FULL = 2,
  /** No feature (uncertainty only; see ::csal3d_uncertainty_options). */
  CSAL3D_FEATURE_NONE = 3
} csal3d_feature_mode;

/** Losses and schedule of one training step (see csal3d_ssl_model_last_losses()). */
typedef struct csal3d_ssl_losses {
  /** sizeof(csal3d_ssl_losses) as the library filled it (members are only appended). */
  size_t struct_size;
  /** The step these values belong to (0-based update number). */
  int64_t step;
  /** The weighted total w_inp L_inp + w_rot L_rot + w_cons L_cons, batch mean. */
  double loss;
  /** L_inp, unweighted, batch mean. */
  double inpainting;
  /** L_rot, unweighted, batch mean. */
  double rotation;
  /** L_cons, unweighted, batch mean. */
  double consistency;
  /** The learning rate of the update. */
  double lr;
  /** The global gradient norm before clipping. */
  double grad_norm;
} csal3d_ssl_losses;

/**
 * Called after every training step of csal3d_ssl_model_train() with that
 * step's losses (valid during the call). Return 0 to go on, non-zero to stop
 * (csal3d_ssl_model_train() then returns ::CSAL3D_ERR_CANCELLED; the model
 * keeps the steps done so far).
 */
typedef int (*csal3d_ssl_step_fn)(void *user_data, const csal3d_ssl_losses *losses,
                                  int64_t iterations);

/**
 * Options of an SSL model. Fill with csal3d_ssl_options_init() first, then
 * change what you need. New members are only ever appended.
 */
typedef struct csal3d_ssl_options {
  /** sizeof(csal3d_ssl_options) as the caller compiled it. */
  size_t struct_size;
  /** Swin embedding width C, a multiple of 12. Default 48 (18.7 M parameters). */
  int embed_dim;
  /** Image channels. Default 1. */
  int in_channels;
  /** Training crop size (D, H, W), each a multiple of 32. Default 128^3. */
  int64_t crop_size[3];
  /** Crops per step. Default 4 (the paper). */
  int batch_size;
  /** Training steps (the length of the cosine schedule). Default 30000 (the paper). */
  int64_t iterations;
  /** Peak learning rate; 0 means 5e-4 x batch_size / 2 (SwinMM). Default 0. */
  double lr;
  /** AdamW weight decay, on linear and convolution weights only. Default 0.1. */
  double weight_decay;
  /** Linear warm-up steps, then cosine decay to 0 at @ref iterations. Default 500. */
  int64_t warmup_steps;
  /** Gradient clipping by global norm; 0 turns it off. Default 1.0. */
  double clip_norm;
  /** Mask ratio (see @ref mask_mode). Default 0.3. */
  double mask_ratio;
  /** Default ::CSAL3D_MASK_HIDE (the paper's meaning). */
  csal3d_mask_mode mask_mode;
  /** Weight of L_inp. Default 1. */
  double weight_inpainting;
  /** Weight of L_rot. Default 1. */
  double weight_rotation;
  /** Weight of L_cons. Default 1. */
  double weight_consistency;
  /** 1: L_inp counts only the hidden voxels of each observation. Default 0 (all voxels). */
  int inpainting_masked_only;
  /**
   * 1: the inpainting target is the observation z-scored with its crop's mean
   * and standard deviation (per channel, over the crop; a constant channel is
   * only centred). Default 0 (the raw observation).
   */
  int inpainting_zscore_target;
  /** Default ::CSAL3D_ROTATION_INPUT_MEAN. */
  csal3d_rotation_input rotation_input;
  /** ::CSAL3D_FEATURE_REDUCED (default) or ::CSAL3D_FEATURE_FULL. */
  csal3d_feature_mode feature;
  /** csal3d_ssl_model_train(): write a checkpoint every this many steps (and at
   *  the end); 0 never. Default 0. */
  int64_t checkpoint_every;
  /** Where those checkpoints go (replaced atomically each time); NULL: none. */
  const char *checkpoint_path;
  /** Non-zero: use @ref seed; zero: the context's seed. Default 0. */
  int use_seed;
  /** The seed when @ref use_seed is set. Default 0. */
  uint64_t seed;
  /** Called after every step of csal3d_ssl_model_train(), or NULL. */
  csal3d_ssl_step_fn on_step;
  /** Passed back to @ref on_step. */
  void *on_step_user_data;
  /**
   * csal3d_ssl_model_train(): keep preprocessed volumes in memory up to this
   * many bytes, so that a case is read from disk once. 0 means no cache.
   * Default 1 GiB.
   */
  int64_t cache_bytes;
} csal3d_ssl_options;

/**
 * Fills @p options with the defaults (and sets struct_size).
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT if @p options is NULL.
 */
CSAL3D_API csal3d_status csal3d_ssl_options_init(csal3d_ssl_options *options);

/**
 * Creates a model with freshly initialised parameters (PyTorch/MONAI's
 * initialisation drawn from the seed) and zero optimiser state, at step 0.
 * @param ctx the context (engine, threads, seed, progress); must outlive the model.
 * @param options the options, or NULL for the defaults.
 * @param out receives the model.
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT for bad options (the message names the member),
 *         ::CSAL3D_ERR_OUT_OF_MEMORY.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_create(csal3d_context *ctx,
                                                 const csal3d_ssl_options *options,
                                                 csal3d_ssl_model **out);

/**
 * Loads a model from a checkpoint written by csal3d_ssl_model_save() (its
 * checksum is verified): parameters, optimiser moments, step, seed, every
 * training option (checkpoint_path included) and the data options, so that
 * csal3d_ssl_model_train() continues the run exactly. A safetensors file of MONAI-named weights without
 * optimiser state (a converted SwinUNETR / SwinMM checkpoint: "embed_dim" and
 * "in_channels" in its metadata, or the defaults) loads at step 0 with the
 * default training options. Change options afterwards with
 * csal3d_ssl_model_set_options(). To start from an encoder alone (MONAI's
 * SwinUNETR, the public self-supervised checkpoints), use
 * csal3d_ssl_model_init_from().
 * @return ::CSAL3D_ERR_IO, ::CSAL3D_ERR_FORMAT (not a checkpoint, a tensor
 *         missing or of the wrong shape, a malformed metadata value: named),
 *         ::CSAL3D_ERR_CHECKSUM.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_load(csal3d_context *ctx, const char *path,
                                               csal3d_ssl_model **out);

/** What csal3d_ssl_model_init_from() did. */
typedef struct csal3d_ssl_init_report {
  /** sizeof(csal3d_ssl_init_report) as the caller compiled it (set it before the call). */
  size_t struct_size;
  /** Model tensors set from the file: the whole encoder, and the rotation head and
   *  decoder where the file has them. */
  int64_t loaded;
  /** Model tensors the file lacks (rotation head, decoder), initialised as in a new
   *  model made with the model's seed. */
  int64_t initialised;
  /** File tensors not used: relative_position_index buffers (recomputed), optimiser
   *  state, SwinUNETR's segmentation decoder (encoder1..10, decoder1..5, out), other
   *  self-supervised heads (contrastive head, mask token), anything else outside the
   *  model. */
  int64_t ignored;
  /** One line with the file's path, the counts and the parts of the model each covers.
   *  Points into the model: valid until its next csal3d_ssl_model_init_from() or
   *  csal3d_ssl_model_free(). */
  const char *summary;
  /** One line per tensor: "loaded      MODEL_NAME <- FILE_NAME", "initialised MODEL_NAME"
   *  or "ignored     FILE_NAME: why". Points into the model like @ref summary; NULL if
   *  it could not be allocated. */
  const char *details;
} csal3d_ssl_init_report;

/**
 * Sets the architecture members of @p options to those a weights file needs:
 * embed_dim and in_channels from its metadata ("embed_dim", or MONAI's
 * "feature_size"; "in_channels" or "in_chans"), else from the shape of its patch
 * embedding (`swinViT.patch_embed.proj.weight` or `module.patch_embed.proj.weight`,
 * [embed_dim, in_channels, 2, 2, 2]); and, for a csal3d checkpoint, rotation_input and
 * feature. Other members are left as they are. Use it before
 * csal3d_ssl_model_create() to make a model that csal3d_ssl_model_init_from() can
 * fill from that file.
 * @param path a safetensors file (a converted PyTorch state_dict or a csal3d
 *        checkpoint; a checkpoint's checksum is verified).
 * @param options the options to change (struct_size set, e.g. by
 *        csal3d_ssl_options_init()).
 * @return ::CSAL3D_ERR_IO, ::CSAL3D_ERR_FORMAT (no width in the metadata and no patch
 *         embedding, or metadata that contradicts the weights: named),
 *         ::CSAL3D_ERR_CHECKSUM.
 */
CSAL3D_API csal3d_status csal3d_ssl_options_from_weights(const char *path,
                                                         csal3d_ssl_options *options);

/**
 * Starts a model from pretrained weights: sets every parameter of @p model, which
 * must be at step 0 (new, or loaded from a checkpoint of step 0), from a safetensors
 * file:
 * - MONAI SwinUNETR state_dicts (keys `swinViT.*`; the segmentation decoder is
 *   ignored);
 * - the public self-supervised Swin checkpoints (Tang et al., SwinMM): keys
 *   `module.*`, `mlp.fc1` / `mlp.fc2`, `swin_vit.*`, possibly under `state_dict.`;
 * - csal3d's own checkpoints (encoder, decoder and rotation head; the optimiser state
 *   and step are not taken: the run starts at step 0 with the model's options, and
 *   the model keeps its data options).
 *
 * PyTorch files (.pt/.pth) are converted first with `python3 -m csal3d.convert`. The
 * file must hold the whole encoder with the model's shapes; the rotation head and
 * the decoder are taken where the file has them and otherwise initialised as in a
 * new model with the model's seed. The file's metadata, where present, must agree with
 * the model (embed_dim or feature_size, in_channels or in_chans, depths, num_heads,
 * window_size, mlp_ratio; rotation_input when the file has a rotation head);
 * "merge_order" sets the model's patch merging order ("monai": the order that
 * repeats two slots, for weights trained with a MONAI PatchMerging coded that way;
 * absent: the default order of all 8 sub-voxels). Until the first training step,
 * scoring with the model (csal3d_score_dataset()) records this file as the checkpoint
 * its weights come from. csal3d_ssl_options_from_weights() gives the options a model
 * for the file needs.
 * @param model the model (at step 0); on error it is unchanged.
 * @param path the weights file.
 * @param report receives what was loaded, initialised and ignored (set struct_size
 *        first), or NULL. The summary is also logged through the context (info).
 * @return ::CSAL3D_ERR_STATE (the model has trained), ::CSAL3D_ERR_IO,
 *         ::CSAL3D_ERR_CHECKSUM, ::CSAL3D_ERR_INVALID_ARGUMENT (the weights' embed_dim
 *         or in_channels differ from the model's: the message names the tensor, both
 *         shapes and the option), ::CSAL3D_ERR_FORMAT (a tensor of another shape, an
 *         encoder tensor missing or unknown, two tensors for one parameter, metadata
 *         that contradicts the weights: named), ::CSAL3D_ERR_UNSUPPORTED (another
 *         architecture in the metadata).
 */
CSAL3D_API csal3d_status csal3d_ssl_model_init_from(csal3d_ssl_model *model,
                                                    const char *path,
                                                    csal3d_ssl_init_report *report);

/**
 * Writes a checkpoint (safetensors: parameters under MONAI names, AdamW
 * moments, step, seed, the model configuration, the training options and the
 * known data options (csal3d_ssl_model_data_options()) in the metadata, a CRC-32
 * checksum). The file appears whole or not at all.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_save(const csal3d_ssl_model *model,
                                               const char *path);

/** Releases a model. Accepts NULL. */
CSAL3D_API void csal3d_ssl_model_free(csal3d_ssl_model *model);

/**
 * The model's options. @p options->struct_size must be set by the caller
 * (csal3d_ssl_options_init() does); the first struct_size bytes are written.
 * checkpoint_path points into the model (valid until it changes or the model
 * is freed). use_seed is 1 and seed is the seed the model draws with.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_get_options(const csal3d_ssl_model *model,
                                                      csal3d_ssl_options *options);

/**
 * Changes the training options (e.g. more iterations for a resumed run, other
 * loss weights). The architecture (embed_dim, in_channels, rotation_input,
 * feature) cannot change: ::CSAL3D_ERR_INVALID_ARGUMENT names the member.
 * Changing iterations, lr, warmup_steps, weight_decay or clip_norm changes the
 * schedule from the current step on; the optimiser moments are kept; iterations
 * below the current step is ::CSAL3D_ERR_INVALID_ARGUMENT. With use_seed set,
 * later draws use the new seed; otherwise the model keeps its own.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_set_options(csal3d_ssl_model *model,
                                                      const csal3d_ssl_options *options);

/** Training steps done so far. */
CSAL3D_API csal3d_status csal3d_ssl_model_step(const csal3d_ssl_model *model,
                                               int64_t *step);

/** The number of parameters (18,703,463 for embed_dim 48, one channel). */
CSAL3D_API csal3d_status csal3d_ssl_model_parameter_count(const csal3d_ssl_model *model,
                                                          int64_t *count);

/**
 * The losses of the last training step. Copies min(@p losses->struct_size,
 * sizeof(csal3d_ssl_losses)) bytes; set struct_size first.
 * ::CSAL3D_ERR_STATE before the first step of this model object.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_last_losses(const csal3d_ssl_model *model,
                                                      csal3d_ssl_losses *losses);

/**
 * One training step on caller-provided crops: the 9 observations of each crop
 * (drawn from (seed, step, crop index)), forward, the three losses averaged
 * over the batch, backward, clipping, AdamW. The step counter advances.
 * @param model the model to train; updated in place.
 * @param crops @p batch crops, float32 [batch, in_channels, D, H, W], row-major.
 * @param batch >= 1 (any number; the learning rate is the options' regardless).
 * @param dhw the crop sides, each a multiple of 32 (and at least 32).
 * @param losses receives the step's losses (set its struct_size), or NULL.
 * @return ::CSAL3D_ERR_NUMERICAL (and no update) if a crop holds NaN or Inf or
 *         the loss or gradient is not finite.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_train_step(csal3d_ssl_model *model,
                                                     const float *crops, int64_t batch,
                                                     const int64_t dhw[3],
                                                     csal3d_ssl_losses *losses);

/**
 * Trains from the current step to options.iterations over a dataset. Each
 * step takes batch_size cases in a seeded order (a new permutation of the
 * dataset every epoch), loads and preprocesses each with the data options
 * resolved from @p load (below), and takes a random crop of crop_size (a
 * volume smaller than the crop is centre-padded with zeros). Reports
 * ("pretrain", step, iterations) to the context's progress callback and each
 * step's losses to options.on_step (both are called after the step's
 * checkpoint, if one is due); either may cancel (::CSAL3D_ERR_CANCELLED: the
 * steps done are kept in the model, and csal3d_ssl_model_save() can write
 * them). Writes checkpoints every checkpoint_every steps and after the last
 * step when checkpoint_path is set.
 *
 * The data options (modality, channel, spacing; max_voxels and allow_nonfinite
 * come from @p load or the defaults):
 * - @p load NULL: those the model records (csal3d_ssl_model_data_options(): a
 *   resumed run keeps its spacing), else the dataset's defaults: the modality
 *   its dataset.json states, native spacing, ::CSAL3D_CHANNEL_NONE.
 * - modality ::CSAL3D_MODALITY_AUTO: the model's recorded modality, else the
 *   dataset.json's, else NONE (a warning says raw intensities are used).
 * - an explicit modality other than the model's recorded one:
 *   ::CSAL3D_ERR_INVALID_ARGUMENT naming the option `modality`; other than the
 *   dataset.json's: a warning.
 * - an explicit spacing or channel other than the recorded one: used, with a
 *   warning that it overrides the checkpoint's.
 *
 * The resolved options are recorded in the model (so its checkpoints carry
 * them) together with statistics of the normalised crops
 * (csal3d_ssl_model_intensity_stats()). Each case is checked when it is
 * loaded: a channel count other than in_channels is
 * ::CSAL3D_ERR_INVALID_ARGUMENT naming the case and the option `channel`;
 * intensities that do not fit the modality (values that are not Hounsfield
 * units loaded as CT, CT loaded as MRI) give one warning per run through the
 * context's log.
 * @param model the model to train; its options give the steps, batch and crops.
 * @param dataset the cases to train on (at least one); read, not changed.
 * @param load how to load the cases (modality, channel, spacing), or NULL for
 *        the model's recorded options or the dataset's defaults.
 * @return errors name the case that failed.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_train(csal3d_ssl_model *model,
                                                const csal3d_dataset *dataset,
                                                const csal3d_volume_load_options *load);

/** ::csal3d_ssl_model_data_options() `known` bit: the modality is recorded. */
#define CSAL3D_DATA_KNOWN_MODALITY 1
/** ::csal3d_ssl_model_data_options() `known` bit: the channel option is recorded. */
#define CSAL3D_DATA_KNOWN_CHANNEL 2
/** ::csal3d_ssl_model_data_options() `known` bit: the spacing is recorded. */
#define CSAL3D_DATA_KNOWN_SPACING 4

/**
 * The data options the model was trained with: set by csal3d_ssl_model_train()
 * (the options it resolved) or csal3d_ssl_model_set_data_options(), and saved
 * in checkpoints (metadata "data.modality" = ct|mri|none, "data.channel" =
 * N|all|none, "data.spacing" = "x,y,z"|"native"). A new model, or a checkpoint
 * written before these keys existed, knows none of them.
 * @param model the model.
 * @param options receives the options (set struct_size first, e.g. with
 *        csal3d_volume_load_options_init(); the first struct_size bytes are
 *        written): the recorded modality, channel and spacing where known, the
 *        defaults (::CSAL3D_MODALITY_AUTO, ::CSAL3D_CHANNEL_NONE, native
 *        spacing) where not; max_voxels and allow_nonfinite are the defaults.
 * @param known receives the CSAL3D_DATA_KNOWN_* bits of what is recorded
 *        (0: nothing); may be NULL.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_data_options(const csal3d_ssl_model *model,
                                                       csal3d_volume_load_options *options,
                                                       int *known);

/**
 * Records data options in the model (all three become known), e.g. for a
 * model trained with csal3d_ssl_model_train_step() on crops prepared by the
 * caller. The intensity statistics are kept.
 * @param model the model.
 * @param options modality NONE, CT or MRI (not AUTO: ::CSAL3D_ERR_INVALID_ARGUMENT),
 *        channel (an index >= 0, ::CSAL3D_CHANNEL_ALL or ::CSAL3D_CHANNEL_NONE)
 *        and spacing (each 0 or > 0); NULL forgets them (nothing known).
 */
CSAL3D_API csal3d_status csal3d_ssl_model_set_data_options(
    csal3d_ssl_model *model, const csal3d_volume_load_options *options);

/** Statistics of the normalised crops a model was trained on (all channels together). */
typedef struct csal3d_intensity_stats {
  /** sizeof(csal3d_intensity_stats) as the caller compiled it. */
  size_t struct_size;
  /** The number of crops summarised; 0 when none (then the rest is 0). */
  int64_t crops;
  /** The number of values summarised. */
  int64_t voxels;
  /** Their mean. */
  double mean;
  /** Their standard deviation (population). */
  double std;
  /** Their smallest value. */
  double min;
  /** Their largest value. */
  double max;
} csal3d_intensity_stats;

/**
 * The statistics of the crops the model was trained on (csal3d_ssl_model_train()
 * and csal3d_ssl_model_train_step() accumulate them over every step, across
 * resumed runs; checkpoints keep them in the metadata "data.intensity" as JSON
 * {"crops", "voxels", "mean", "std", "min", "max"}).
 * @param model the model.
 * @param stats receives them (set struct_size first; the first struct_size
 *        bytes are written).
 */
CSAL3D_API csal3d_status csal3d_ssl_model_intensity_stats(const csal3d_ssl_model *model,
                                                          csal3d_intensity_stats *stats);

/** The width of a feature: 16C / 3 (REDUCED) or 16C (FULL) for the model's setting. */
CSAL3D_API csal3d_status csal3d_ssl_model_feature_dim(const csal3d_ssl_model *model,
                                                      int64_t *dim);

/**
 * Features of crops: the encoder in evaluation mode, the spatial mean of its
 * normalised deepest map, reduced as configured.
 * @param model the model (its weights are not changed).
 * @param x float32 [n, in_channels, D, H, W], sides multiples of 32.
 * @param n the number of crops in @p x, >= 1.
 * @param dhw the crop sides D, H, W, each a multiple of 32 (and at least 32).
 * @param features receives [n, feature_dim], row-major.
 * @param capacity the size of @p features in floats, at least n x feature_dim
 *        (::CSAL3D_ERR_BUFFER_TOO_SMALL otherwise).
 */
CSAL3D_API csal3d_status csal3d_ssl_model_encode(csal3d_ssl_model *model, const float *x,
                                                 int64_t n, const int64_t dhw[3],
                                                 float *features, size_t capacity);

/**
 * The feature of a whole volume: the mean of the crop features of sliding
 * windows (the uncertainty estimator's grid: the volume zero-padded to at
 * least one window per axis, starts 0, s, 2s, ... plus the last aligned to the
 * end). This is the same feature csal3d_uncertainty_score() returns.
 * @param model the model (its weights are not changed).
 * @param volume the volume, with the model's in_channels channels.
 * @param window window sides (multiples of 32), or NULL for the crop size.
 * @param stride strides (1..window), or NULL for half the window.
 * @param features receives feature_dim floats.
 * @param capacity the size of @p features in floats, at least feature_dim
 *        (::CSAL3D_ERR_BUFFER_TOO_SMALL otherwise).
 */
CSAL3D_API csal3d_status csal3d_ssl_model_encode_volume(csal3d_ssl_model *model,
                                                        const csal3d_volume *volume,
                                                        const int64_t window[3],
                                                        const int64_t stride[3],
                                                        float *features, size_t capacity);

/**
 * Reconstructions of inputs as given (no masking), evaluation mode.
 * @param model the model (its weights are not changed).
 * @param x float32 [n, in_channels, D, H, W], sides multiples of 32.
 * @param n the number of crops in @p x, >= 1.
 * @param dhw the crop sides D, H, W, each a multiple of 32 (and at least 32).
 * @param out receives [n, in_channels, D, H, W], the shape of @p x.
 * @param capacity the size of @p out in floats, at least the number of floats in
 *        @p x (::CSAL3D_ERR_BUFFER_TOO_SMALL otherwise).
 * @param logits receives the rotation logits [n, 4], or NULL.
 */
CSAL3D_API csal3d_status csal3d_ssl_model_reconstruct(csal3d_ssl_model *model,
                                                      const float *x, int64_t n,
                                                      const int64_t dhw[3], float *out,
                                                      size_t capacity, float *logits);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_SSL_MODEL_H */
