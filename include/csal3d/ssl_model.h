/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file ssl_model.h
 * @brief The self-supervised model: Swin-UNETR encoder, inpainting decoder, rotation head.
 *
 * A ::csal3d_ssl_model holds the parameters (MONAI names), the optimiser
 * state and the training schedule of the CSAL-3D pretext task: 3 views x 3
 * rotations of masked crops, with inpainting, rotation and consistency
 * losses. It is trained with its own loop or the caller's (train_step),
 * saved and resumed exactly as safetensors checkpoints, and encodes volumes
 * into the features that sampling clusters.
 *
 * Status: declared here so that the shape of the API is visible; its
 * functions arrive with the engine/model and pretraining work and are not
 * part of this release yet.
 */
#ifndef CSAL3D_SSL_MODEL_H
#define CSAL3D_SSL_MODEL_H

#include "csal3d/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque SSL model: parameters, optimiser state, schedule. */
typedef struct csal3d_ssl_model csal3d_ssl_model;

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_SSL_MODEL_H */
