/* Counter-based random numbers: Philox4x32-10, streams keyed by (seed, purpose, ids).
 *
 * A stream is fully determined by its key; draw i of a stream is a pure function of
 * (seed, purpose, id0, id1, id2, i). Work split across threads therefore gets the same
 * numbers whatever the thread count, as long as each unit of work (a volume, a window,
 * a step) uses its own stream or seeks to its own position. */
#ifndef C3_CORE_RNG_H
#define C3_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "csal3d/common.h"

/* What a stream is for. Values are part of the results' definition: never renumber. */
typedef enum c3_rng_purpose {
  C3_RNG_TEST = 0,
  C3_RNG_INIT = 1,      /* parameter initialisation: id0 = parameter index */
  C3_RNG_CROP = 2,      /* random crops: id0 = step, id1 = batch item */
  C3_RNG_VIEW = 3,      /* views and rotations: id0 = step/volume, id1 = item/window */
  C3_RNG_MASK = 4,      /* masks: id0 = step/volume, id1 = item/window, id2 = observation */
  C3_RNG_SAMPLING = 5,  /* clustering and baselines */
  C3_RNG_DATA = 6,      /* data order, phantom generation */
  C3_RNG_DROPPATH = 7   /* stochastic depth */
} c3_rng_purpose;

typedef struct c3_rng {
  uint32_t key[2];
  uint32_t ctr[4]; /* ctr[0..1]: block index; ctr[2..3]: stream id */
  uint32_t buf[4];
  int used; /* words of buf already handed out (4 = empty) */
} c3_rng;

/* The Philox4x32 bijection with 10 rounds (Salmon et al., SC 2011). */
void c3_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                      uint32_t out[4]);

/* The key of a string (a case id): FNV-1a 64 of its bytes, then the splitmix64
 * finaliser. Part of the results' definition (draws are keyed by it): never change. */
uint64_t c3_rng_key_string(const char *s);

/* Starts the stream (seed, purpose, id0, id1, id2) at draw 0. */
void c3_rng_init(c3_rng *r, uint64_t seed, uint32_t purpose, uint64_t id0,
                 uint64_t id1, uint64_t id2);

uint32_t c3_rng_u32(c3_rng *r);
uint64_t c3_rng_u64(c3_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double c3_rng_uniform(c3_rng *r);
/* Standard normal (Box-Muller on two uniforms; uses 4 words per value). */
double c3_rng_normal(c3_rng *r);
/* Uniform integer in [0, n), unbiased (rejection); n >= 1. */
uint64_t c3_rng_below(c3_rng *r, uint64_t n);
/* Uniform integer in [lo, hi], lo <= hi. */
int64_t c3_rng_range(c3_rng *r, int64_t lo, int64_t hi);
/* Fisher-Yates shuffle of n indices. */
void c3_rng_shuffle(c3_rng *r, int64_t *items, size_t n);
/* k distinct integers from [0, n) in the order drawn (k <= n), by a partial
 * Fisher-Yates shuffle over a temporary array of n indices. */
csal3d_status c3_rng_sample(c3_rng *r, int64_t n, int64_t k, int64_t *out);

/* Fills out[i] for i in [0, n) with normal values where out[i] depends only on the
 * stream and i (element i uses word block i): parallel and independent of the
 * thread count. */
void c3_rng_fill_normal(const c3_rng *stream, float *out, size_t n, float mean,
                        float std);

#endif
