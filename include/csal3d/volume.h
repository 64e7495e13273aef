/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file volume.h
 * @brief Volumes and datasets (NIfTI images, preprocessed for the model).
 *
 * A ::csal3d_volume is a float32 image of shape [C, D, H, W] in RAS+
 * orientation with its voxel spacing (mm) and its 4x4 affine, so that maps
 * computed on it can be saved on the grid of the file it came from.
 * A ::csal3d_dataset is a lazy list of cases (a folder of NIfTI files, a
 * Medical Segmentation Decathlon dataset.json, or a text file of paths).
 *
 * Status: the handles are declared here so that the shape of the API is
 * visible; their functions (load, save, accessors, preprocessing, datasets)
 * arrive with the volumes work and are not part of this release yet.
 */
#ifndef CSAL3D_VOLUME_H
#define CSAL3D_VOLUME_H

#include "csal3d/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque image volume: float32 voxels [C, D, H, W], spacing, affine. */
typedef struct csal3d_volume csal3d_volume;

/** An opaque, lazily loaded list of cases (image path, optional label path, case id). */
typedef struct csal3d_dataset csal3d_dataset;

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_VOLUME_H */
