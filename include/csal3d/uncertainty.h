/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file uncertainty.h
 * @brief The ensemble uncertainty estimator (CSAL-3D Eq. 5-8).
 *
 * A ::csal3d_uncertainty sweeps sliding windows over a volume; in each
 * window it reconstructs the 9 masked observations with a trained
 * ::csal3d_ssl_model, brings them back to the window's frame and takes the
 * voxel variance. It returns one score per volume, the volume's feature for
 * sampling (from the same sweep), and optionally the per-voxel map as NIfTI.
 *
 * Exactly (docs/algorithms.md, "Uncertainty"):
 * - the preprocessed volume is zero-padded at the end of each axis to at
 *   least one window; along an axis of (padded) size n the window starts are
 *   0, s, 2s, ... up to n - w, plus n - w itself; windows are numbered in
 *   row-major order of their (d, h, w) starts;
 * - in window j of volume id, the 9 observations (3 views x 3 rotations k in
 *   {0..3}, masks hiding round(r x cubes) 16^3 cubes, r the model's mask
 *   setting) are drawn from the counter-based generator keyed by (seed, id,
 *   j); each is reconstructed by the model in evaluation mode and brought back
 *   to the window's frame;
 * - voxel uncertainty: the population variance over the 9 aligned values
 *   (for several channels, the mean of the per-channel variances);
 * - U(voxel) = the mean over the windows that cover it; the score
 *   S = the mean of U over the voxels of the unpadded volume (or over a
 *   foreground, see ::csal3d_foreground_mode);
 * - the feature: the mean over windows of the encoder feature of the clean
 *   (unmasked) window, the same as csal3d_ssl_model_encode_volume().
 *
 * @code
 * csal3d_uncertainty_options uo;
 * csal3d_uncertainty_options_init(&uo);
 * csal3d_uncertainty *u;
 * csal3d_uncertainty_create(model, &uo, &u);
 * float feature[256];
 * double score;
 * for (size_t i = 0; i < n_cases; i++) {
 *   ... load volume i ...
 *   uint64_t key;
 *   csal3d_case_key(case_id[i], &key);
 *   csal3d_uncertainty_score(u, volume, NULL, key, &score, feature, 256);
 *   csal3d_uncertainty_save_map(u, "case_i_uncertainty.nii.gz");   // optional
 * }
 * csal3d_uncertainty_free(u);
 * @endcode
 */
#ifndef CSAL3D_UNCERTAINTY_H
#define CSAL3D_UNCERTAINTY_H

#include "csal3d/context.h"
#include "csal3d/ssl_model.h"
#include "csal3d/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque uncertainty estimator bound to a model and its window options. */
typedef struct csal3d_uncertainty csal3d_uncertainty;

/** Which voxels the score averages over. */
typedef enum csal3d_foreground_mode {
  /** Every voxel of the unpadded volume (default). */
  CSAL3D_FOREGROUND_NONE = 0,
  /** Voxels where some channel of the volume exceeds foreground_threshold. */
  CSAL3D_FOREGROUND_THRESHOLD = 1,
  /** Voxels where the mask volume given to csal3d_uncertainty_score() is non-zero. */
  CSAL3D_FOREGROUND_MASK = 2
} csal3d_foreground_mode;

/**
 * Options of an uncertainty estimator. Fill with
 * csal3d_uncertainty_options_init(); members are only ever appended.
 */
typedef struct csal3d_uncertainty_options {
  /** sizeof(csal3d_uncertainty_options) as the caller compiled it. */
  size_t struct_size;
  /** Window sides (D, H, W), multiples of 32. Default 128^3. */
  int64_t window[3];
  /** Strides, 1..window. Default 64. */
  int64_t stride[3];
  /** Which voxels the score averages. Default ::CSAL3D_FOREGROUND_NONE. */
  csal3d_foreground_mode foreground;
  /** For ::CSAL3D_FOREGROUND_THRESHOLD. Default 0. */
  double foreground_threshold;
  /**
   * The feature computed in the same sweep: ::CSAL3D_FEATURE_DEFAULT (the
   * model's setting; default), ::CSAL3D_FEATURE_REDUCED, ::CSAL3D_FEATURE_FULL,
   * or ::CSAL3D_FEATURE_NONE (skips the encoder pass on the clean windows).
   */
  csal3d_feature_mode feature;
  /** 1 (default): keep the last volume's map for csal3d_uncertainty_map() and
   *  csal3d_uncertainty_save_map() (D*H*W floats); 0: don't. */
  int keep_map;
  /** Non-zero: use @ref seed; zero: the context's seed. Default 0. */
  int use_seed;
  /** The seed when @ref use_seed is set. Default 0. */
  uint64_t seed;
} csal3d_uncertainty_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status
csal3d_uncertainty_options_init(csal3d_uncertainty_options *options);

/**
 * Creates an estimator that uses @p model (which must outlive it; the
 * estimator does not change it). Scoring runs on the model's context.
 */
CSAL3D_API csal3d_status csal3d_uncertainty_create(csal3d_ssl_model *model,
                                                   const csal3d_uncertainty_options *options,
                                                   csal3d_uncertainty **out);

/** Releases an estimator. Accepts NULL. */
CSAL3D_API void csal3d_uncertainty_free(csal3d_uncertainty *u);

/**
 * The estimator's options as resolved: use_seed is 1 and seed the seed it draws with
 * (the model's when none was given). Set @p options->struct_size first
 * (csal3d_uncertainty_options_init() does); that many bytes are written.
 */
CSAL3D_API csal3d_status
csal3d_uncertainty_get_options(const csal3d_uncertainty *u, csal3d_uncertainty_options *options);

/** The width of the features it returns (0 with ::CSAL3D_FEATURE_NONE). */
CSAL3D_API csal3d_status csal3d_uncertainty_feature_dim(const csal3d_uncertainty *u,
                                                        int64_t *dim);

/**
 * Scores one preprocessed volume (its channels must match the model's).
 * Reports ("uncertainty", window, windows) to the context's progress callback,
 * which may cancel.
 * @param u the estimator.
 * @param volume the volume (any size; smaller than a window is fine).
 * @param mask for ::CSAL3D_FOREGROUND_MASK: a volume of the same D, H, W whose
 *        non-zero voxels (any channel) are the foreground; else ignored (NULL ok).
 *        An empty foreground gives ::CSAL3D_ERR_INVALID_ARGUMENT.
 * @param volume_id keys the random draws: use csal3d_case_key() of the case's id
 *        (pipeline.h), as csal3d_score_dataset() does, so that a case gets the same
 *        score whatever the order or size of its dataset.
 * @param score receives S (may be NULL).
 * @param feature receives the feature (may be NULL).
 * @param capacity the size of @p feature in floats
 *        (::CSAL3D_ERR_BUFFER_TOO_SMALL if less than the feature width);
 *        ignored when @p feature is NULL.
 */
CSAL3D_API csal3d_status csal3d_uncertainty_score(csal3d_uncertainty *u,
                                                  const csal3d_volume *volume,
                                                  const csal3d_volume *mask,
                                                  uint64_t volume_id, double *score,
                                                  float *feature, size_t capacity);

/**
 * The last scored volume's uncertainty map U as a new one-channel volume on
 * that volume's grid (same D, H, W and affine; see csal3d_volume_create_like()).
 * ::CSAL3D_ERR_STATE if nothing was scored or keep_map is 0.
 */
CSAL3D_API csal3d_status csal3d_uncertainty_map(const csal3d_uncertainty *u,
                                                csal3d_volume **out);

/**
 * Saves the last map as NIfTI (float32) on the grid of the file the volume
 * was loaded from: a resampled, cropped or padded volume's map is brought back
 * (trilinear) with csal3d_volume_to_source_grid(), then written in that file's
 * voxel order and affine, so that it overlays the scan. `.nii.gz` compresses.
 */
CSAL3D_API csal3d_status csal3d_uncertainty_save_map(const csal3d_uncertainty *u,
                                                     const char *path);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_UNCERTAINTY_H */
