/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file context.h
 * @brief The context: device, threads, seed, logging and progress.
 *
 * A context owns the compute engine (CPU or CUDA), the thread count and the
 * random seed. Every other handle is created from a context and must not
 * outlive it. A context is not thread-safe: use one per thread.
 *
 * @code
 * csal3d_context_options o;
 * csal3d_context_options_init(&o);
 * o.device = CSAL3D_DEVICE_CPU;
 * o.threads = 4;
 * csal3d_context *ctx;
 * if (csal3d_context_create(&o, &ctx) != CSAL3D_OK)
 *   fprintf(stderr, "csal3d: %s\n", csal3d_last_error());
 * ...
 * csal3d_context_free(ctx);
 * @endcode
 */
#ifndef CSAL3D_CONTEXT_H
#define CSAL3D_CONTEXT_H

#include "csal3d/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where the numerical work runs. */
typedef enum csal3d_device {
  /** The CUDA engine if its plugin loads and a GPU is present, else the CPU. */
  CSAL3D_DEVICE_AUTO = 0,
  /** The CPU engine (oneDNN and OpenMP); always available. */
  CSAL3D_DEVICE_CPU = 1,
  /** The CUDA engine (plugin libcsal3d-cuda.so.0); an error if it is missing. */
  CSAL3D_DEVICE_CUDA = 2
} csal3d_device;

/** Severity of a log message. A context passes on messages up to its log_level. */
typedef enum csal3d_log_level {
  CSAL3D_LOG_ERROR = 0, /**< Something failed. */
  CSAL3D_LOG_WARN = 1,  /**< Something is odd but work goes on. */
  CSAL3D_LOG_INFO = 2,  /**< What the library is doing, a line per stage. */
  CSAL3D_LOG_DEBUG = 3  /**< Details for developers. */
} csal3d_log_level;

/**
 * Receives log messages. The library never prints: this callback is the only
 * way it talks. @p message is valid only during the call.
 */
typedef void (*csal3d_log_fn)(void *user_data, csal3d_log_level level,
                              const char *message);

/**
 * Receives progress of long operations: @p done of @p total units of work
 * in the stage named @p stage ("pretrain", "score", ...); total is 0 when
 * unknown. Return 0 to go on, non-zero to stop: the operation then returns
 * ::CSAL3D_ERR_CANCELLED at its next check and leaves no partial output.
 */
typedef int (*csal3d_progress_fn)(void *user_data, const char *stage,
                                  uint64_t done, uint64_t total);

/**
 * Options of a context. Fill with csal3d_context_options_init() first, then
 * change what you need. New members are only ever appended.
 */
typedef struct csal3d_context_options {
  /** sizeof(csal3d_context_options) as the caller compiled it. */
  size_t struct_size;
  /** Which engine runs the work. Default ::CSAL3D_DEVICE_AUTO. */
  csal3d_device device;
  /** Which GPU for ::CSAL3D_DEVICE_CUDA (CUDA device ordinal). Default 0. */
  int device_index;
  /** Worker threads for the CPU work; 0 means one per available core. Default 0. */
  int threads;
  /** Seed of every random draw made through this context. Default 0. */
  uint64_t seed;
  /** Most detailed level passed to @ref log. Default ::CSAL3D_LOG_INFO. */
  csal3d_log_level log_level;
  /** Log callback, or NULL for silence. Default NULL. */
  csal3d_log_fn log;
  /** Passed back to @ref log. */
  void *log_user_data;
  /** Progress callback, or NULL. Default NULL. */
  csal3d_progress_fn progress;
  /** Passed back to @ref progress. */
  void *progress_user_data;
} csal3d_context_options;

/** An opaque context handle. */
typedef struct csal3d_context csal3d_context;

/**
 * Fills @p options with the defaults (and sets struct_size).
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT if @p options is NULL.
 */
CSAL3D_API csal3d_status
csal3d_context_options_init(csal3d_context_options *options);

/**
 * Creates a context.
 *
 * @param options the options, or NULL for the defaults. Only the first
 *        options->struct_size bytes are read, so a program built against an
 *        older, smaller struct gets defaults for the members it lacks. A
 *        larger struct (from newer headers) is accepted if the members this
 *        library does not know are all zero, else ::CSAL3D_ERR_UNSUPPORTED.
 * @param out receives the new context; set to NULL on failure.
 * @return ::CSAL3D_OK;
 *         ::CSAL3D_ERR_DEVICE_UNAVAILABLE when ::CSAL3D_DEVICE_CUDA was asked
 *         for and the plugin, the CUDA runtime or a GPU is missing (the
 *         message says which); ::CSAL3D_ERR_INVALID_ARGUMENT for bad values.
 */
CSAL3D_API csal3d_status
csal3d_context_create(const csal3d_context_options *options,
                      csal3d_context **out);

/** Releases a context. Accepts NULL. */
CSAL3D_API void csal3d_context_free(csal3d_context *ctx);

/**
 * The device a context actually uses (::CSAL3D_DEVICE_CPU or
 * ::CSAL3D_DEVICE_CUDA; never AUTO).
 */
CSAL3D_API csal3d_status csal3d_context_device(const csal3d_context *ctx,
                                               csal3d_device *out);

/** The number of threads a context's CPU work uses (resolved, never 0). */
CSAL3D_API csal3d_status csal3d_context_threads(const csal3d_context *ctx,
                                                int *out);

/** The seed a context uses. */
CSAL3D_API csal3d_status csal3d_context_seed(const csal3d_context *ctx,
                                             uint64_t *out);

/**
 * Whether an engine can be used on this machine, without creating a
 * context. For ::CSAL3D_DEVICE_CUDA this loads the plugin and asks the CUDA
 * runtime for a device.
 * @param device ::CSAL3D_DEVICE_CPU or ::CSAL3D_DEVICE_CUDA.
 * @param available receives 1 or 0.
 * @return ::CSAL3D_OK (whatever the answer); when the answer is 0,
 *         csal3d_last_error() says why.
 */
CSAL3D_API csal3d_status csal3d_device_available(csal3d_device device,
                                                 int *available);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_CONTEXT_H */
