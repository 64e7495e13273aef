/* Reading options structs whose first member is struct_size (ABI discipline).
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

/* The other way: copies our struct src (own_size bytes, struct_size first) into the
 * caller's dst, as much as dst's struct_size holds, and zeroes what dst has beyond
 * ours; dst keeps its struct_size. INVALID_ARGUMENT when dst's struct_size is unset. */
csal3d_status c3_options_write(void *dst, const void *src, size_t own_size, const char *what);

#endif
