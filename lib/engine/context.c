/* The context: options, engine, threads and seed. */
#include "core/context.h"

#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "core/threads.h"
#include "engine/engine.h"

CSAL3D_API csal3d_status
csal3d_context_options_init(csal3d_context_options *o) {
  C3_CHECK_ARG(o, "csal3d_context_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->device = CSAL3D_DEVICE_AUTO;
  o->device_index = 0;
  o->threads = 0;
  o->seed = 0;
  o->log_level = CSAL3D_LOG_INFO;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status
csal3d_context_create(const csal3d_context_options *options,
                      csal3d_context **out) {
  C3_CHECK_ARG(out, "csal3d_context_create: out is NULL");
  *out = NULL;
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_context_options"));
  C3_CHECK_ARG(o.threads >= 0, "csal3d_context_options.threads is %d (0 = all cores)",
               o.threads);
  C3_CHECK_ARG((unsigned)o.log_level <= CSAL3D_LOG_DEBUG,
               "csal3d_context_options.log_level is %d", (int)o.log_level);
  if (o.threads == 0) o.threads = c3_threads_available();

  csal3d_context *ctx;
  C3_TRY(c3_calloc_array(1, sizeof *ctx, "context", (void **)&ctx));
  ctx->options = o;
  csal3d_status s = c3_engine_open(o.device, o.device_index, &ctx->engine);
  if (s != CSAL3D_OK) {
    c3_free(ctx);
    return s;
  }
  ctx->options.device = ctx->engine->device;
  c3_log(ctx, CSAL3D_LOG_INFO, "libcsal3d %s: %s engine, %d threads, seed %llu",
         csal3d_version(), ctx->engine->name, o.threads,
         (unsigned long long)o.seed);
  *out = ctx;
  return CSAL3D_OK;
}

CSAL3D_API void csal3d_context_free(csal3d_context *ctx) {
  if (!ctx) return;
  c3_engine_close(ctx->engine);
  c3_free(ctx);
}

CSAL3D_API csal3d_status csal3d_context_device(const csal3d_context *ctx,
                                               csal3d_device *out) {
  C3_CHECK_ARG(ctx && out, "csal3d_context_device: NULL argument");
  *out = ctx->options.device;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_context_threads(const csal3d_context *ctx,
                                                int *out) {
  C3_CHECK_ARG(ctx && out, "csal3d_context_threads: NULL argument");
  *out = ctx->options.threads;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_context_seed(const csal3d_context *ctx,
                                             uint64_t *out) {
  C3_CHECK_ARG(ctx && out, "csal3d_context_seed: NULL argument");
  *out = ctx->options.seed;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_device_available(csal3d_device device,
                                                 int *available) {
  C3_CHECK_ARG(available, "csal3d_device_available: available is NULL");
  *available = 0;
  C3_CHECK_ARG(device == CSAL3D_DEVICE_CPU || device == CSAL3D_DEVICE_CUDA,
               "csal3d_device_available: device must be CPU or CUDA, not %d",
               (int)device);
  c3_engine *e;
  if (c3_engine_open(device, 0, &e) == CSAL3D_OK) {
    *available = 1;
    c3_engine_close(e);
  }
  return CSAL3D_OK;
}
