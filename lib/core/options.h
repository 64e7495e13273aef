/* Reading (and writing back) options structs whose first member is struct_size (ABI
 * discipline).
 *
 * The library reads min(caller's struct_size, its own size) bytes over a defaulted
 * copy, so an older caller (smaller struct) gets defaults for what it lacks, and
 * accepts a newer caller's larger struct only when the members it does not know
 * are all zero. */
#ifndef C3_CORE_OPTIONS_H
#define C3_CORE_OPTIONS_H

#include <stddef.h>

#include "csal3d/common.h"

/* dst must already hold the defaults (its struct_size is ours: own_size).
 * src may be NULL (defaults stay). `what` names the struct for messages. */
csal3d_status c3_options_read(void *dst, size_t own_size, const void *src,
                              const char *what);

/* The other way: copies the library's struct src (own_size bytes) into the caller's dst,
 * whose struct_size the caller set: min(dst->struct_size, own_size) bytes, struct_size
 * itself left as the caller set it. `what` names the call for the message when
 * struct_size is too small to be set (CSAL3D_ERR_INVALID_ARGUMENT). */
csal3d_status c3_options_write(void *dst, const void *src, size_t own_size, const char *what);

#endif
