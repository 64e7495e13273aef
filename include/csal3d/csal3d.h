/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file csal3d.h
 * @brief The whole public API of libcsal3d: include this one header.
 *
 * libcsal3d chooses which unlabelled 3D medical images to annotate first
 * (cold-start active learning, after CSAL-3D, Zhu et al., MICCAI 2025).
 * Link with `pkg-config --cflags --libs csal3d`.
 */
#ifndef CSAL3D_H
#define CSAL3D_H

#include "csal3d/common.h"
#include "csal3d/context.h"
#include "csal3d/volume.h"
#include "csal3d/ssl_model.h"
#include "csal3d/uncertainty.h"
#include "csal3d/sampler.h"
#include "csal3d/manifest.h"
#include "csal3d/pipeline.h"
#include "csal3d/evaluate.h"
#include "csal3d/report.h"
#include "csal3d/comm.h"

#endif /* CSAL3D_H */
