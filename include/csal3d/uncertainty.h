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
 * Status: declared here so that the shape of the API is visible; its
 * functions arrive with the pipeline work and are not part of this release yet.
 */
#ifndef CSAL3D_UNCERTAINTY_H
#define CSAL3D_UNCERTAINTY_H

#include "csal3d/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque uncertainty estimator bound to a model and its window options. */
typedef struct csal3d_uncertainty csal3d_uncertainty;

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_UNCERTAINTY_H */
