/* Views, rot90 rotations, their inverses and the 16^3-cube masks of the SSL observations
 * (docs/algorithms.md, "Self-supervised pretraining").
 *
 * Every geometric transform here is a signed permutation of the three spatial axes of a
 * float32 tensor [N, C, D, H, W] (N and C ride along): output axis a reads input axis
 * perm[a], reversed when flip[a] is set. Views, rotations, their compositions and their
 * inverses are all of that form, so one copy routine applies them all and every inverse
 * is exact (a pure gather: bit for bit).
 *
 * Observation o (0..8) of a crop x is mask_o(rot(view(x, o / 3), k_o)):
 *   view 0 identity, 1 swaps D and H, 2 swaps D and W;
 *   rot by k in the (H, W) plane as numpy's rot90(x, k, axes=(H, W)): for k = 1,
 *   out[..., i, j] = in[..., j, W-1-i];
 *   the mask hides whole cubes of the observation's own frame.
 * The random draws (k per observation, hidden cubes) come from the counter-based generator
 * keyed by (seed, C3_RNG_VIEW / C3_RNG_MASK, id0, id1[, observation]) or can be given
 * explicitly (c3_ssl_draws filled by the caller), e.g. to replay a reference file. */
#ifndef C3_VOLUME_VIEWS_H
#define C3_VOLUME_VIEWS_H

#include <stdint.h>

#include "csal3d/common.h"

/* Observations per crop: 3 views x 3 rotations. */
#define C3_SSL_OBSERVATIONS 9
/* Side of a mask cube, in voxels. */
#define C3_MASK_CUBE 16

/* A signed permutation of the spatial axes (D, H, W) = (0, 1, 2). */
typedef struct c3_axes_map {
  int perm[3]; /* output axis a reads input axis perm[a] */
  int flip[3]; /* 1: output index i reads input index n_in - 1 - i */
} c3_axes_map;

/* The identity map. */
c3_axes_map c3_axes_identity(void);
/* View v in {0, 1, 2}: 0 identity, 1 swaps D and H, 2 swaps D and W. */
c3_axes_map c3_axes_view(int view);
/* rot90 by k (any integer, taken mod 4) in the (H, W) plane. */
c3_axes_map c3_axes_rot90(int k);
/* first, then second: (second o first)(x) = second(first(x)). */
c3_axes_map c3_axes_then(c3_axes_map first, c3_axes_map second);
/* The exact inverse. */
c3_axes_map c3_axes_inverse(c3_axes_map m);
/* The map of an observation: rot90(view(x, view), k). */
c3_axes_map c3_axes_observation(int view, int k);
/* Output spatial shape for an input spatial shape. */
void c3_axes_shape(c3_axes_map m, const int64_t in[3], int64_t out[3]);
/* 1 if two maps are equal. */
int c3_axes_equal(c3_axes_map a, c3_axes_map b);

/* Applies a map to contiguous float32 data [lead, D, H, W] (lead = N * C) into out,
 * whose spatial shape is c3_axes_shape(m, {D, H, W}). in and out must not overlap. */
void c3_axes_apply_f32(c3_axes_map m, const float *in, int64_t lead,
                       const int64_t in_shape[3], float *out);

/* ---- masks ---- */

/* Cubes along each axis of a spatial shape: ceil(n / cube) (a last, partial cube counts). */
void c3_mask_grid(const int64_t shape[3], int cube, int64_t cubes[3]);
/* Number of hidden cubes: round(ratio * total), halves rounded up, clamped to [0, total]. */
int64_t c3_mask_hidden_count(int64_t total, double ratio);

/* Draws a mask: hidden[i] = 1 for exactly `hidden` of the `total` cubes, chosen uniformly
 * without replacement from the stream (seed, C3_RNG_MASK, id0, id1, id2); cube index
 * i = (d * ch + h) * cw + w. */
csal3d_status c3_mask_draw(uint64_t seed, uint64_t id0, uint64_t id1, uint64_t id2,
                           int64_t total, int64_t hidden, uint8_t *mask);

/* Zeroes the voxels of the hidden cubes of contiguous float32 data [lead, D, H, W]. */
void c3_mask_apply_f32(float *data, int64_t lead, const int64_t shape[3], int cube,
                       const uint8_t *mask);
/* Expands a cube mask to a voxel mask [D, H, W] (1 = hidden). */
void c3_mask_expand(const int64_t shape[3], int cube, const uint8_t *mask,
                    uint8_t *voxels);

/* ---- the 9 observations of a crop ---- */

/* The draws of one crop's 9 observations. masks[o] has cubes_total[o] entries, in
 * observation o's own frame. */
typedef struct c3_ssl_draws {
  int64_t shape[3];                    /* the crop's spatial shape */
  int cube;                            /* mask cube side (16) */
  int view[C3_SSL_OBSERVATIONS];       /* o / 3 */
  int k[C3_SSL_OBSERVATIONS];          /* rotation 0..3 */
  int64_t cubes[C3_SSL_OBSERVATIONS][3];
  int64_t cubes_total[C3_SSL_OBSERVATIONS];
  uint8_t *masks[C3_SSL_OBSERVATIONS]; /* owned */
} c3_ssl_draws;

/* Allocates draws for a crop shape with view[o] = o / 3, k = 0 and no cube hidden; the
 * caller fills k and masks (explicit draws). Observation frames follow from k. After
 * changing k, call c3_ssl_draws_reframe to resize the masks (it clears them). */
csal3d_status c3_ssl_draws_init(c3_ssl_draws *d, const int64_t shape[3], int cube);
csal3d_status c3_ssl_draws_reframe(c3_ssl_draws *d);
void c3_ssl_draws_free(c3_ssl_draws *d);

/* Random draws for crop (id0, id1) (e.g. step and batch item, or volume and window):
 * k[o] uniform in {0..3}, 9 draws in order from (seed, C3_RNG_VIEW, id0, id1, 0); the
 * mask of observation o from (seed, C3_RNG_MASK, id0, id1, o) with
 * round(hide_fraction x cubes) cubes hidden. */
csal3d_status c3_ssl_draws_random(c3_ssl_draws *d, const int64_t shape[3], int cube,
                                  double hide_fraction, uint64_t seed, uint64_t id0,
                                  uint64_t id1);

/* The observation's spatial shape. */
void c3_ssl_observation_shape(const c3_ssl_draws *d, int o, int64_t out[3]);

/* Observation o of x, masked: x is contiguous float32 [lead, D, H, W] with the draws'
 * shape; out gets [lead, observation shape]. If unmasked is not NULL it receives the
 * same observation before masking (the inpainting target). */
void c3_ssl_observation_f32(const c3_ssl_draws *d, int o, const float *x, int64_t lead,
                            float *out, float *unmasked);

#endif
