/* Errors: status names and the thread-local message. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char c3_message[C3_ERROR_MAX];

static void c3_mark_truncated(int written) {
  if (written >= C3_ERROR_MAX) memcpy(c3_message + C3_ERROR_MAX - 4, "...", 4);
}

csal3d_status c3_error(csal3d_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(c3_message, sizeof c3_message, fmt, ap);
  va_end(ap);
  if (n < 0) c3_message[0] = '\0';
  c3_mark_truncated(n);
  return status;
}

csal3d_status c3_error_prefix(csal3d_status status, const char *fmt, ...) {
  char old[C3_ERROR_MAX], prefix[C3_ERROR_MAX];
  memcpy(old, c3_message, sizeof old);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  if (n < 0) return status;
  n = snprintf(c3_message, sizeof c3_message, "%s: %s", prefix, old);
  c3_mark_truncated(n);
  return status;
}

void c3_error_clear(void) { c3_message[0] = '\0'; }

CSAL3D_API const char *csal3d_last_error(void) { return c3_message; }

CSAL3D_API const char *csal3d_status_string(csal3d_status status) {
  switch (status) {
  case CSAL3D_OK: return "ok";
  case CSAL3D_ERR_INVALID_ARGUMENT: return "invalid argument";
  case CSAL3D_ERR_OUT_OF_MEMORY: return "out of memory";
  case CSAL3D_ERR_IO: return "input/output error";
  case CSAL3D_ERR_FORMAT: return "malformed data";
  case CSAL3D_ERR_UNSUPPORTED: return "unsupported";
  case CSAL3D_ERR_DEVICE_UNAVAILABLE: return "device unavailable";
  case CSAL3D_ERR_CANCELLED: return "cancelled";
  case CSAL3D_ERR_NUMERICAL: return "numerical error";
  case CSAL3D_ERR_BUFFER_TOO_SMALL: return "buffer too small";
  case CSAL3D_ERR_CHECKSUM: return "checksum mismatch";
  case CSAL3D_ERR_STATE: return "invalid state";
  case CSAL3D_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}
