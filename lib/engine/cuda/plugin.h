/* The ABI between the core library and the CUDA engine plugin (libcsal3d-cuda.so).
 *
 * The core never links CUDA: it dlopens the plugin and looks up one symbol,
 * C3_CUDA_PLUGIN_SYMBOL, of type c3_cuda_plugin_open_fn. Bump C3_CUDA_PLUGIN_ABI
 * whenever this contract or c3_engine changes, so that a stale plugin is refused
 * instead of crashing. */
#ifndef C3_ENGINE_CUDA_PLUGIN_H
#define C3_ENGINE_CUDA_PLUGIN_H

#include <stddef.h>

#include "engine/engine.h"

#define C3_CUDA_PLUGIN_ABI 2 /* 2: c3_engine gained the op table */
#define C3_CUDA_PLUGIN_FILE "libcsal3d-cuda.so"
#define C3_CUDA_PLUGIN_SYMBOL "csal3d_cuda_plugin_open"

/* Fills `engine` (name, device, state, close) for CUDA device `device_index`.
 * Returns a csal3d_status; on failure writes the reason to err (errlen bytes). */
typedef int (*c3_cuda_plugin_open_fn)(int abi, int device_index,
                                      c3_engine *engine, char *err,
                                      size_t errlen);

#endif
