/* Counter-based random numbers: Philox4x32-10 and the draws built on it. */
#include "core/rng.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

#define C3_PHILOX_M0 0xD2511F53u
#define C3_PHILOX_M1 0xCD9E8D57u
#define C3_PHILOX_W0 0x9E3779B9u
#define C3_PHILOX_W1 0xBB67AE85u

void c3_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                      uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)C3_PHILOX_M0 * c0;
    uint64_t p1 = (uint64_t)C3_PHILOX_M1 * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += C3_PHILOX_W0;
    k1 += C3_PHILOX_W1;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* splitmix64 finaliser: mixes the purpose and ids into a 64-bit stream id. */
static uint64_t c3_mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void c3_rng_init(c3_rng *r, uint64_t seed, uint32_t purpose, uint64_t id0,
                 uint64_t id1, uint64_t id2) {
  uint64_t stream = c3_mix64(purpose);
  stream = c3_mix64(stream ^ id0);
  stream = c3_mix64(stream ^ id1);
  stream = c3_mix64(stream ^ id2);
  r->key[0] = (uint32_t)seed;
  r->key[1] = (uint32_t)(seed >> 32);
  r->ctr[0] = r->ctr[1] = 0;
  r->ctr[2] = (uint32_t)stream;
  r->ctr[3] = (uint32_t)(stream >> 32);
  r->used = 4;
}

uint64_t c3_rng_key_string(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    h ^= *p;
    h *= 0x100000001b3ull;
  }
  return c3_mix64(h);
}

static void c3_rng_set_block(c3_rng *r, uint64_t block) {
  r->ctr[0] = (uint32_t)block;
  r->ctr[1] = (uint32_t)(block >> 32);
}

uint32_t c3_rng_u32(c3_rng *r) {
  if (r->used == 4) {
    c3_philox4x32_10(r->ctr, r->key, r->buf);
    uint64_t block = ((uint64_t)r->ctr[1] << 32 | r->ctr[0]) + 1;
    c3_rng_set_block(r, block);
    r->used = 0;
  }
  return r->buf[r->used++];
}

uint64_t c3_rng_u64(c3_rng *r) {
  uint64_t hi = c3_rng_u32(r);
  return hi << 32 | c3_rng_u32(r);
}

double c3_rng_uniform(c3_rng *r) {
  return (double)(c3_rng_u64(r) >> 11) * 0x1.0p-53;
}

/* Box-Muller from two uniforms, the first in (0, 1] so the log is finite. */
static double c3_box_muller(uint64_t a, uint64_t b) {
  double u1 = ((double)(a >> 11) + 1.0) * 0x1.0p-53;
  double u2 = (double)(b >> 11) * 0x1.0p-53;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double c3_rng_normal(c3_rng *r) {
  uint64_t a = c3_rng_u64(r);
  return c3_box_muller(a, c3_rng_u64(r));
}

uint64_t c3_rng_below(c3_rng *r, uint64_t n) {
  if (n <= 1) return 0;
  /* Rejection on the top of the 64-bit range: unbiased for every n. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = c3_rng_u64(r);
  while (x >= limit);
  return x % n;
}

int64_t c3_rng_range(c3_rng *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)c3_rng_below(r, (uint64_t)(hi - lo) + 1);
}

void c3_rng_shuffle(c3_rng *r, int64_t *items, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)c3_rng_below(r, i);
    int64_t t = items[i - 1];
    items[i - 1] = items[j];
    items[j] = t;
  }
}

csal3d_status c3_rng_sample(c3_rng *r, int64_t n, int64_t k, int64_t *out) {
  C3_CHECK_ARG(n >= 0 && k >= 0 && k <= n,
               "sample: cannot draw %lld of %lld without replacement",
               (long long)k, (long long)n);
  /* Partial Fisher-Yates over an index array: draws are the first k. */
  int64_t *idx;
  C3_TRY(c3_alloc_array((size_t)n, sizeof *idx, "sample indices", (void **)&idx));
  for (int64_t i = 0; i < n; i++) idx[i] = i;
  for (int64_t i = 0; i < k; i++) {
    int64_t j = i + (int64_t)c3_rng_below(r, (uint64_t)(n - i));
    int64_t t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
    out[i] = idx[i];
  }
  c3_free(idx);
  return CSAL3D_OK;
}

static void c3_block(const c3_rng *stream, uint64_t block, uint32_t out[4]) {
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream->ctr[2],
                     stream->ctr[3]};
  c3_philox4x32_10(ctr, stream->key, out);
}

void c3_rng_fill_normal(const c3_rng *stream, float *out, size_t n, float mean,
                        float std) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (size_t i = 0; i < n; i++) {
    uint32_t w[4];
    c3_block(stream, i, w);
    double z = c3_box_muller((uint64_t)w[0] << 32 | w[1], (uint64_t)w[2] << 32 | w[3]);
    out[i] = mean + std * (float)z;
  }
}
