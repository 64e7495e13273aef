/* Aligned host allocation that reports failure as a status. */
#include "core/alloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"

static atomic_long c3_fail_countdown;

void c3_alloc_fail_after(long n) { atomic_store(&c3_fail_countdown, n); }

static int c3_injected_failure(void) {
  long n = atomic_load(&c3_fail_countdown);
  while (n > 0) {
    if (atomic_compare_exchange_weak(&c3_fail_countdown, &n, n - 1))
      return n == 1;
  }
  return 0;
}

int c3_mul_size(size_t count, size_t size, size_t *out) {
  if (size != 0 && count > SIZE_MAX / size) return -1;
  *out = count * size;
  return 0;
}

csal3d_status c3_alloc(size_t bytes, const char *what, void **out) {
  *out = NULL;
  size_t rounded = bytes == 0 ? C3_ALIGN : bytes;
  if (rounded > SIZE_MAX - (C3_ALIGN - 1))
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for %s",
                    bytes, what ? what : "a buffer");
  rounded = (rounded + C3_ALIGN - 1) / C3_ALIGN * C3_ALIGN;
  void *p = c3_injected_failure() ? NULL : aligned_alloc(C3_ALIGN, rounded);
  if (!p)
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY,
                    "out of memory allocating %zu bytes for %s", bytes,
                    what ? what : "a buffer");
  *out = p;
  return CSAL3D_OK;
}

csal3d_status c3_alloc_array(size_t count, size_t size, const char *what,
                             void **out) {
  size_t bytes;
  *out = NULL;
  if (c3_mul_size(count, size, &bytes))
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY,
                    "size of %s overflows (%zu x %zu bytes)",
                    what ? what : "a buffer", count, size);
  return c3_alloc(bytes, what, out);
}

csal3d_status c3_calloc_array(size_t count, size_t size, const char *what,
                              void **out) {
  C3_TRY(c3_alloc_array(count, size, what, out));
  memset(*out, 0, count * size);
  return CSAL3D_OK;
}

void c3_free(void *p) { free(p); }

char *c3_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d;
  if (c3_alloc(n, "string", (void **)&d) != CSAL3D_OK) return NULL;
  memcpy(d, s, n);
  return d;
}

const char *c3_bytes_text(double n, char *buf, size_t cap) {
  static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (n >= 1024 && u < 5) n /= 1024, u++;
  snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", n, unit[u]);
  return buf;
}

size_t c3_memory_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[256];
    unsigned long long kib;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
        fclose(f);
        return kib > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)kib * 1024;
      }
    fclose(f);
  }
  long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return (size_t)pages > SIZE_MAX / (size_t)page ? SIZE_MAX : (size_t)pages * (size_t)page;
}
