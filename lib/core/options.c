/* Reading and writing options structs whose first member is struct_size. */
#include "core/options.h"

#include <string.h>

#include "core/error.h"

csal3d_status c3_options_read(void *dst, size_t own_size, const void *src,
                              const char *what) {
  if (!src) return CSAL3D_OK;
  size_t caller_size;
  memcpy(&caller_size, src, sizeof caller_size);
  if (caller_size < sizeof(size_t))
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "%s: struct_size is %zu; call the matching _options_init first",
                    what, caller_size);
  if (caller_size > own_size) {
    const unsigned char *extra = (const unsigned char *)src + own_size;
    for (size_t i = 0; i < caller_size - own_size; i++)
      if (extra[i])
        return c3_error(CSAL3D_ERR_UNSUPPORTED,
                        "%s: the caller's struct (%zu bytes) sets members this "
                        "library version (%zu bytes) does not know; upgrade libcsal3d",
                        what, caller_size, own_size);
  }
  size_t n = caller_size < own_size ? caller_size : own_size;
  memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t),
         n - sizeof(size_t));
  memcpy(dst, &own_size, sizeof own_size);
  return CSAL3D_OK;
}

csal3d_status c3_options_write(void *dst, const void *src, size_t own_size, const char *what) {
  size_t n;
  memcpy(&n, dst, sizeof n);
  if (n < sizeof(size_t))
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s: set struct_size first (e.g. with the "
                    "matching _init)", what);
  if (n > own_size) n = own_size;
  memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t), n - sizeof(size_t));
  return CSAL3D_OK;
}
