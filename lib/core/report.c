/* Logging and progress through a context's callbacks, and cancellation. */
#include "core/report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/context.h"
#include "core/error.h"

void c3_log(const csal3d_context *ctx, csal3d_log_level level, const char *fmt,
            ...) {
  if (!ctx || !ctx->options.log || level > ctx->options.log_level) return;
  char msg[1024], *big = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* A longer message (long paths or ids) whole, where memory allows. */
  if (n >= (int)sizeof msg && (big = malloc((size_t)n + 1)) != NULL) {
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
  }
  ctx->options.log(ctx->options.log_user_data, level, big ? big : msg);
  free(big);
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
