/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file sampler.h
 * @brief Choosing the cases to annotate: URDS and the baseline strategies.
 *
 * A ::csal3d_sampler takes features (N x d) and uncertainty scores (N) and
 * a budget M, and chooses M cases: by Uncertainty-Reinforced Diversity
 * Sampling (multi-kernel k-means into M clusters, the N_cand most typical
 * members of each, the most uncertain of those), by its ablations, or by a
 * baseline (Random, TypiClust, ProbCover, ALPS, CALR, Coreset, USL). Each
 * chosen case comes back with its cluster, typicality, score and the rule
 * that chose it.
 *
 * Status: declared here so that the shape of the API is visible; its
 * functions arrive with the sampling work and are not part of this release yet.
 */
#ifndef CSAL3D_SAMPLER_H
#define CSAL3D_SAMPLER_H

#include "csal3d/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque sampler: a strategy, its options, the features and scores given to it. */
typedef struct csal3d_sampler csal3d_sampler;

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_SAMPLER_H */
