/* Errors: status codes with a formatted, thread-local message. */
#ifndef C3_CORE_ERROR_H
#define C3_CORE_ERROR_H

#include "csal3d/common.h"

/* Largest message kept; longer ones are cut with "...". */
#define C3_ERROR_MAX 1024

/* Sets the calling thread's message and returns status, so that
 * `return c3_error(CSAL3D_ERR_IO, "%s: %s", path, strerror(errno));` reads well. */
csal3d_status c3_error(csal3d_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Puts "PREFIX: " before the current message (e.g. the file a lower layer
 * was reading) and returns status unchanged. */
csal3d_status c3_error_prefix(csal3d_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the calling thread's message. */
void c3_error_clear(void);

/* Propagates a failing status: `C3_TRY(f(x));` */
#define C3_TRY(expr)                                                           \
  do {                                                                         \
    csal3d_status c3_try_s_ = (expr);                                          \
    if (c3_try_s_ != CSAL3D_OK) return c3_try_s_;                              \
  } while (0)

/* Checks an argument and fails with a message naming it. */
#define C3_CHECK_ARG(cond, ...)                                                \
  do {                                                                         \
    if (!(cond)) return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, __VA_ARGS__);    \
  } while (0)

#endif
