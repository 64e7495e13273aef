/* Logging and progress through a context's callbacks, and cancellation. */
#include "core/report.h"

#include <stdarg.h>
#include <stdio.h>

#include "core/context.h"
#include "core/error.h"

void c3_log(const csal3d_context *ctx, csal3d_log_level level, const char *fmt,
            ...) {
  if (!ctx || !ctx->options.log || level > ctx->options.log_level) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  ctx->options.log(ctx->options.log_user_data, level, msg);
}

csal3d_status c3_progress(const csal3d_context *ctx, const char *stage,
                          uint64_t done, uint64_t total) {
  if (!ctx || !ctx->options.progress) return CSAL3D_OK;
  if (ctx->options.progress(ctx->options.progress_user_data, stage, done, total))
    return c3_error(CSAL3D_ERR_CANCELLED,
                    "%s: cancelled by the progress callback after %llu of %llu",
                    stage, (unsigned long long)done, (unsigned long long)total);
  return CSAL3D_OK;
}
