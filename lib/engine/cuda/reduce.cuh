/* Deterministic sums over the middle axis of [outer, mid, inner] on the GPU.
 *
 * c3cu_reduce_mid(e, outer, mid, inner, f, g) computes, for every (o, i),
 *   s = sum over m of f(o, m, i)        (a double2: two sums at once)
 * and calls g(o * inner + i, s). Rows are cut into chunks fixed by the shape alone;
 * each block sums its chunk in double in a fixed order (threads stride over rows, then
 * a sequential combine), and a second pass adds the chunks in order: results are
 * bitwise reproducible and independent of the GPU. No atomics. */
#ifndef C3_ENGINE_CUDA_REDUCE_CUH
#define C3_ENGINE_CUDA_REDUCE_CUH

#include "engine/cuda/cuda_internal.h"

#define C3CU_RED_THREADS 256
#define C3CU_RED_TARGET_BLOCKS 2048

struct c3cu_red_plan {
  int64_t ti;       /* threads along inner (<= 256) */
  int64_t r;        /* threads along mid */
  int64_t itiles;   /* tiles along inner */
  int64_t nchunks;  /* chunks along mid */
  int64_t chunk;    /* rows per chunk */
};

static inline c3cu_red_plan c3cu_red_make_plan(int64_t outer, int64_t mid, int64_t inner) {
  c3cu_red_plan p;
  p.ti = inner < C3CU_RED_THREADS ? inner : C3CU_RED_THREADS;
  p.r = C3CU_RED_THREADS / p.ti;
  if (p.r < 1) p.r = 1;
  p.itiles = (inner + p.ti - 1) / p.ti;
  int64_t per = outer * p.itiles;
  int64_t want = (C3CU_RED_TARGET_BLOCKS + per - 1) / per; /* chunks to fill the GPU */
  int64_t most = (mid + p.r * 8 - 1) / (p.r * 8);           /* at least 8 rows a thread */
  if (want > most) want = most;
  if (want < 1) want = 1;
  p.chunk = (mid + want - 1) / want;
  p.nchunks = (mid + p.chunk - 1) / p.chunk;
  return p;
}

/* Pass 1: block (o, chunk, itile) sums its rows. With one chunk it finishes directly. */
template <class F, class G>
__global__ void c3cu_red_pass1(F f, G g, int64_t outer, int64_t mid, int64_t inner,
                               c3cu_red_plan p, double2 *part) {
  extern __shared__ double2 c3cu_red_sh[];
  int64_t bid = blockIdx.x;
  int64_t itile = bid % p.itiles;
  int64_t chunk = (bid / p.itiles) % p.nchunks;
  int64_t o = bid / (p.itiles * p.nchunks);
  int64_t ti = threadIdx.x % p.ti, r = threadIdx.x / p.ti;
  int64_t i = itile * p.ti + ti;
  double2 s = make_double2(0.0, 0.0);
  if (r < p.r && i < inner) {
    int64_t m0 = chunk * p.chunk, m1 = m0 + p.chunk < mid ? m0 + p.chunk : mid;
    for (int64_t m = m0 + r; m < m1; m += p.r) {
      double2 v = f(o, m, i);
      s.x += v.x;
      s.y += v.y;
    }
  }
  c3cu_red_sh[threadIdx.x] = s;
  __syncthreads();
  if (r == 0 && i < inner) {
    for (int64_t k = 1; k < p.r; k++) {
      double2 v = c3cu_red_sh[k * p.ti + ti];
      s.x += v.x;
      s.y += v.y;
    }
    if (p.nchunks == 1)
      g(o * inner + i, s);
    else
      part[(o * p.nchunks + chunk) * inner + i] = s;
  }
}

/* Pass 2: one thread per (o, i) adds the chunks in order. */
template <class G>
__global__ void c3cu_red_pass2(G g, int64_t outer, int64_t inner, int64_t nchunks,
                               const double2 *part) {
  int64_t total = outer * inner;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    int64_t o = t / inner, i = t % inner;
    double2 s = make_double2(0.0, 0.0);
    for (int64_t c = 0; c < nchunks; c++) {
      double2 v = part[(o * nchunks + c) * inner + i];
      s.x += v.x;
      s.y += v.y;
    }
    g(t, s);
  }
}

template <class F, class G>
csal3d_status c3cu_reduce_mid(c3_engine *e, int64_t outer, int64_t mid, int64_t inner, F f,
                              G g, const char *what) {
  c3cu_red_plan p = c3cu_red_make_plan(outer, mid, inner);
  double2 *part = NULL;
  if (p.nchunks > 1)
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_RED, (size_t)(outer * p.nchunks * inner) * sizeof(double2),
                        (void **)&part));
  int64_t blocks = outer * p.nchunks * p.itiles;
  cudaStream_t s = c3cu(e)->stream;
  c3cu_red_pass1<F, G><<<(unsigned)blocks, C3CU_RED_THREADS,
                         C3CU_RED_THREADS * sizeof(double2), s>>>(f, g, outer, mid, inner, p,
                                                                  part);
  CU_LAUNCHED(e, what);
  if (p.nchunks > 1) {
    c3cu_red_pass2<G><<<c3cu_blocks(outer * inner, 256), 256, 0, s>>>(g, outer, inner,
                                                                      p.nchunks, part);
    CU_LAUNCHED(e, what);
  }
  return CSAL3D_OK;
}

#endif
