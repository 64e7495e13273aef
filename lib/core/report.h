/* Logging and progress through a context's callbacks, and cancellation. */
#ifndef C3_CORE_REPORT_H
#define C3_CORE_REPORT_H

#include <stdint.h>

#include "csal3d/context.h"

/* Formats and passes a message to the context's log callback if `level` is
 * within its log_level; does nothing for a NULL context or callback. */
void c3_log(const csal3d_context *ctx, csal3d_log_level level, const char *fmt,
            ...) __attribute__((format(printf, 3, 4)));

/* Reports progress; returns CSAL3D_ERR_CANCELLED (with a message naming the
 * stage) when the callback asks to stop, else CSAL3D_OK. Long operations call
 * it between units of work and unwind on cancellation without leaving output. */
csal3d_status c3_progress(const csal3d_context *ctx, const char *stage,
                          uint64_t done, uint64_t total);

#endif
