/* Aligned host allocation that reports failure as a status. */
#ifndef C3_CORE_ALLOC_H
#define C3_CORE_ALLOC_H

#include <stddef.h>

#include "csal3d/common.h"

/* Alignment of every block from c3_alloc: a cache line, enough for AVX-512. */
#define C3_ALIGN 64

/* Allocates `bytes` (0 is allowed and gives a valid, freeable block) aligned to
 * C3_ALIGN; on failure *out is NULL and CSAL3D_ERR_OUT_OF_MEMORY is returned
 * with a message giving the size. `what` names the buffer for that message. */
csal3d_status c3_alloc(size_t bytes, const char *what, void **out);

/* As c3_alloc for count * size bytes, failing (not wrapping) on overflow. */
csal3d_status c3_alloc_array(size_t count, size_t size, const char *what,
                             void **out);

/* As c3_alloc_array, zero-filled. */
csal3d_status c3_calloc_array(size_t count, size_t size, const char *what,
                              void **out);

/* A c3_alloc'ed copy of the string s, or NULL (out of memory, message set). */
char *c3_strdup(const char *s);

/* Frees a block from c3_alloc*; accepts NULL. */
void c3_free(void *p);

/* Tests only: make the n-th allocation from now on fail (n >= 1), or never (0).
 * Counts across all threads. */
void c3_alloc_fail_after(long n);

/* Bytes of host memory available to a new allocation now without swapping: Linux's
 * MemAvailable (/proc/meminfo: free memory plus reclaimable caches), else the free
 * physical pages (sysconf), else 0 (unknown). */
size_t c3_memory_available(void);

/* count * size without overflow: returns 0 and sets *out, or -1 on overflow. */
int c3_mul_size(size_t count, size_t size, size_t *out);

/* A number of bytes for a message, into buf: "512 bytes", "2.3 MiB", "9.0 GiB". */
const char *c3_bytes_text(double n, char *buf, size_t cap);

#endif
