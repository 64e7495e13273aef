/* The ABI between the core library and the CUDA engine plugin (libcsal3d-cuda.so.0).
 *
 * The core never links CUDA: it dlopens the plugin and looks up one symbol,
 * C3_CUDA_PLUGIN_SYMBOL, of type c3_cuda_plugin_open_fn. Bump C3_CUDA_PLUGIN_ABI
 * whenever this contract or c3_engine changes, so that a stale plugin is refused
 * instead of crashing. */
#ifndef C3_ENGINE_CUDA_PLUGIN_H
#define C3_ENGINE_CUDA_PLUGIN_H

#include <stddef.h>

#include "engine/engine.h"

#define C3_CUDA_PLUGIN_ABI 3 /* 2: c3_engine gained the op table; 3: host hooks */
/* The plugin's SONAME (the Makefile links it so; tests/symbols_test.sh checks that
 * they agree): the name a runtime install has, without the development link. */
#define C3_CUDA_PLUGIN_FILE "libcsal3d-cuda.so.0"
#define C3_CUDA_PLUGIN_SYMBOL "csal3d_cuda_plugin_open"

/* What the core lends the plugin. The plugin cannot reach the core's (hidden)
 * c3_error, so its ops report failures through set_error, which sets the calling
 * thread's csal3d_last_error() message and returns `status`. */
typedef struct c3_cuda_host {
  size_t struct_size;
  int (*set_error)(int status, const char *message);
} c3_cuda_host;

/* Fills `engine` (name, device, state, close and the op table) for CUDA device
 * `device_index`. `host` stays valid while the plugin is loaded.
 * Returns a csal3d_status; on failure writes the reason to err (errlen bytes). */
typedef int (*c3_cuda_plugin_open_fn)(int abi, int device_index,
                                      const c3_cuda_host *host, c3_engine *engine,
                                      char *err, size_t errlen);

#endif
