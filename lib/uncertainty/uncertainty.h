/* The ensemble uncertainty estimator (docs/algorithms.md, "Uncertainty"; paper Eq. 5-8) and
 * the windowed volume feature, in one sweep.
 *
 * The volume [ch, D, H, W] is zero-padded at the end of each axis to at least one
 * window; windows (volume/windows.h) cover it. In window j:
 *   - feature: the model in evaluation mode on the clean window, the pooled
 *     feature (reduced or full), accumulated; the volume's feature is the mean
 *     over windows;
 *   - uncertainty: the 9 observations of the window (draws from the hook, else
 *     c3_ssl_draws_random(seed, id0 = volume id, id1 = window index)), each
 *     reconstructed in evaluation mode and brought back with R_o^-1; the window's
 *     map is the population variance over the 9 per voxel and channel, averaged
 *     over channels.
 * U = per-voxel mean over the covering windows, on the unpadded grid; the score is
 * the mean of U over the volume's voxels (or the foreground's). */
#ifndef C3_UNCERTAINTY_UNCERTAINTY_H
#define C3_UNCERTAINTY_UNCERTAINTY_H

#include <stdint.h>

#include "csal3d/context.h"
#include "csal3d/ssl_model.h"
#include "model/model.h"
#include "volume/views.h"

typedef struct c3_unc_config {
  int64_t window[3], stride[3]; /* windows: multiples of 32; 1 <= stride <= window */
  double hide_fraction;         /* cubes hidden per observation */
  csal3d_feature_mode feature;  /* NONE skips the clean pass */
  int uncertainty;              /* 0: feature only (no observations, no map) */
  uint64_t seed;
} c3_unc_config;

/* Explicit draws for window `index` at `origin`: the hook initialises d itself for
 * the window's shape (c3_ssl_draws_init(d, window, 16), then k[], then
 * c3_ssl_draws_reframe, then the masks); the sweep frees it. Returning an error
 * stops the sweep. */
typedef csal3d_status (*c3_unc_draws_fn)(void *user, int64_t index, const int64_t origin[3],
                                         const int64_t window[3], c3_ssl_draws *d);

typedef struct c3_unc_result {
  double score;      /* NaN when uncertainty is off */
  int64_t windows;   /* windows swept */
  int64_t voxels;    /* voxels the score averaged */
  int64_t feature_dim;
} c3_unc_result;

/* One sweep. vol: host [ch, D, H, W] (ch = the model's in_channels). fg: host
 * [D*H*W] foreground (non-zero = in) or NULL for every voxel; an empty foreground
 * fails. map: host [D*H*W] receiving U, or NULL. feature: host, feature_dim floats,
 * or NULL. ctx (may be NULL): progress ("uncertainty", window, windows) and
 * cancellation. draws_fn NULL: random draws. */
csal3d_status c3_uncertainty_run(c3_model *m, const csal3d_context *ctx,
                                 const c3_unc_config *c, const float *vol, int64_t ch,
                                 const int64_t shape[3], uint64_t volume_id,
                                 const uint8_t *fg, c3_unc_draws_fn draws_fn,
                                 void *draws_user, float *map, float *feature,
                                 c3_unc_result *res);

/* The model an estimator uses (csal3d_uncertainty is defined in uncertainty_api.c). */
struct csal3d_uncertainty;
csal3d_ssl_model *c3_uncertainty_model(const struct csal3d_uncertainty *u);

#endif
