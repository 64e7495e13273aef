/* Window attention (Swin, MONAI WindowAttention).
 *
 * Forward without saved probabilities: a fused kernel (below), for head sizes 4, 8, 16
 * and 32. Everything else (forward keeping P, backward) takes the reference path:
 * Windows are processed in chunks (score buffers of at most C3CU_ATTN_CHUNK_BYTES
 * unless the caller passes `probs`). Per chunk and head, cuBLAS strided-batched
 * products over the chunk's windows read q, k, v in place from the qkv tensor; one
 * kernel adds the relative position bias (gathered through a cached index) and the
 * shift mask and takes the softmax, one warp per row.
 *
 * Backward: dP = dO V^T, dV = P^T dO, dS = P (dP - rowsum(dP P)), dQ = scale dS K,
 * dK = scale dS^T Q. The bias gradient is summed over windows in window order into a
 * [heads, n, n] buffer, then reduced into the table through a cached inverse index
 * (for each table row, the list of (i, j) that use it): no atomics, deterministic. */
#include <map>
#include <new>
#include <utility>
#include <vector>

#include "engine/cuda/cuda_internal.h"

#define C3CU_ATTN_CHUNK_BYTES ((size_t)256 << 20)

struct attn_index {
  int64_t n, rows; /* tokens; table rows (2wd-1)(2wh-1)(2ww-1) */
  int32_t *index;  /* [n * n] table row of (i, j) */
  int32_t *start;  /* [rows + 1] CSR offsets into pos */
  int32_t *pos;    /* [n * n] positions i * n + j grouped by table row */
};

typedef std::pair<int64_t, int64_t> attn_key; /* (packed window, tokens) */

struct c3cu_attn_cache {
  std::map<attn_key, attn_index *> idx;
};

void c3cu_attn_close(c3_engine *e) {
  c3cu_state *st = c3cu(e);
  if (!st->attn) return;
  for (auto &kv : st->attn->idx) {
    c3cu_free(e, kv.second->index);
    c3cu_free(e, kv.second->start);
    c3cu_free(e, kv.second->pos);
    delete kv.second;
  }
  delete st->attn;
  st->attn = NULL;
}

static csal3d_status attn_check(c3_engine *e, const c3_attn_desc *d, const char *op) {
  CU_CHECK_ARG(e, d && d->windows >= 1 && d->tokens >= 1 && d->heads >= 1 && d->head_dim >= 1,
               "%s: bad sizes", op);
  int64_t full = 1;
  for (int a = 0; a < 3; a++) {
    CU_CHECK_ARG(e, d->window_full[a] >= 1 && d->window_full[a] <= 1024,
                 "%s: window_full[%d] = %d", op, a, d->window_full[a]);
    full *= d->window_full[a];
  }
  CU_CHECK_ARG(e, d->tokens <= full, "%s: %lld tokens, more than the full window's %lld", op,
               (long long)d->tokens, (long long)full);
  CU_CHECK_ARG(e, d->tokens <= 46340, "%s: %lld tokens is too many", op, (long long)d->tokens);
  return CSAL3D_OK;
}

/* The relative position index of the first n tokens of the full window, and its
 * inverse, built on the host once per (window, n) and kept on the device. */
static csal3d_status get_index(c3_engine *e, const c3_attn_desc *d, attn_index **out) {
  c3cu_state *st = c3cu(e);
  if (!st->attn) {
    st->attn = new (std::nothrow) c3cu_attn_cache();
    if (!st->attn) return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "attention: host memory");
  }
  const int w0 = d->window_full[0], w1 = d->window_full[1], w2 = d->window_full[2];
  attn_key key(((int64_t)w0 << 40) | ((int64_t)w1 << 20) | w2, d->tokens);
  auto it = st->attn->idx.find(key);
  if (it != st->attn->idx.end()) {
    *out = it->second;
    return CSAL3D_OK;
  }
  const int64_t n = d->tokens, r1 = 2 * w1 - 1, r2 = 2 * w2 - 1;
  const int64_t rows = (int64_t)(2 * w0 - 1) * r1 * r2;
  std::vector<int32_t> index, start, pos;
  try {
    index.resize((size_t)(n * n));
    start.assign((size_t)rows + 1, 0);
    pos.resize((size_t)(n * n));
  } catch (...) {
    return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "attention: host memory");
  }
  for (int64_t i = 0; i < n; i++) {
    int64_t di = i / (w1 * w2), hi = (i / w2) % w1, wi = i % w2;
    for (int64_t j = 0; j < n; j++) {
      int64_t dj = j / (w1 * w2), hj = (j / w2) % w1, wj = j % w2;
      int64_t idx = (di - dj + w0 - 1) * r1 * r2 + (hi - hj + w1 - 1) * r2 + (wi - wj + w2 - 1);
      index[(size_t)(i * n + j)] = (int32_t)idx;
      start[(size_t)idx + 1]++;
    }
  }
  for (int64_t r = 0; r < rows; r++) start[(size_t)r + 1] += start[(size_t)r];
  std::vector<int32_t> fillp(start.begin(), start.end() - 1);
  for (int64_t p = 0; p < n * n; p++) pos[(size_t)fillp[(size_t)index[(size_t)p]]++] = (int32_t)p;
  attn_index *ai = new (std::nothrow) attn_index();
  if (!ai) return c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "attention: host memory");
  ai->n = n;
  ai->rows = rows;
  ai->index = ai->start = ai->pos = NULL;
  csal3d_status s = c3cu_alloc(e, (size_t)(n * n) * 4, "attention index", (void **)&ai->index);
  if (s == CSAL3D_OK)
    s = c3cu_alloc(e, (size_t)(rows + 1) * 4, "attention index", (void **)&ai->start);
  if (s == CSAL3D_OK)
    s = c3cu_alloc(e, (size_t)(n * n) * 4, "attention index", (void **)&ai->pos);
  if (s == CSAL3D_OK) {
    cudaError_t rc = cudaMemcpyAsync(ai->index, index.data(), (size_t)(n * n) * 4,
                                     cudaMemcpyHostToDevice, st->stream);
    if (rc == cudaSuccess)
      rc = cudaMemcpyAsync(ai->start, start.data(), (size_t)(rows + 1) * 4,
                           cudaMemcpyHostToDevice, st->stream);
    if (rc == cudaSuccess)
      rc = cudaMemcpyAsync(ai->pos, pos.data(), (size_t)(n * n) * 4, cudaMemcpyHostToDevice,
                           st->stream);
    /* the host vectors die at return: wait for the copies */
    if (rc == cudaSuccess) rc = cudaStreamSynchronize(st->stream);
    if (rc != cudaSuccess) s = c3cu_cuda_error(e, rc, "attention index upload");
  }
  if (s == CSAL3D_OK) {
    try {
      st->attn->idx[key] = ai;
    } catch (...) {
      s = c3cu_error(e, CSAL3D_ERR_OUT_OF_MEMORY, "attention: host memory");
    }
  }
  if (s != CSAL3D_OK) {
    c3cu_free(e, ai->index);
    c3cu_free(e, ai->start);
    c3cu_free(e, ai->pos);
    delete ai;
    return s;
  }
  *out = ai;
  return CSAL3D_OK;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* s [cw, H, n, n] (scaled scores) += bias + mask, then softmax over the last axis. */
__global__ void k_bias_mask_softmax(int64_t cw, int64_t H, int64_t n, int64_t w0,
                                    const int32_t *index, const float *table,
                                    const int32_t *region, int64_t mask_windows,
                                    float mask_value, float *s) {
  const int lane = threadIdx.x & 31;
  int64_t rows = cw * H * n;
  for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5; r < rows;
       r += ((int64_t)gridDim.x * blockDim.x) >> 5) {
    int64_t i = r % n, h = (r / n) % H, w = r / (n * H);
    float *row = s + r * n;
    const int32_t *ix = index + i * n;
    const int32_t *reg = region ? region + ((w0 + w) % mask_windows) * n : NULL;
    int32_t ri = reg ? reg[i] : 0;
    float mx = -INFINITY;
    for (int64_t j = lane; j < n; j += 32) {
      float v = row[j] + table[(int64_t)ix[j] * H + h];
      if (reg && reg[j] != ri) v += mask_value;
      row[j] = v;
      mx = fmaxf(mx, v);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int64_t j = lane; j < n; j += 32) {
      float p = expf(row[j] - mx);
      row[j] = p;
      sum += p;
    }
    float inv = 1.0f / warp_sum(sum);
    for (int64_t j = lane; j < n; j += 32) row[j] *= inv;
  }
}

/* dP -> dS = P (dP - rowsum(dP P)), in place, one warp per row. */
__global__ void k_softmax_grad(int64_t rows, int64_t n, const float *p, float *g) {
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5; r < rows;
       r += ((int64_t)gridDim.x * blockDim.x) >> 5) {
    const float *pr = p + r * n;
    float *gr = g + r * n;
    float dot = 0.0f;
    for (int64_t j = lane; j < n; j += 32) dot += pr[j] * gr[j];
    dot = warp_sum(dot);
    for (int64_t j = lane; j < n; j += 32) gr[j] = pr[j] * (gr[j] - dot);
  }
}

/* db[t] += sum over the chunk's windows, in order, of ds[w, t] (t over H*n*n). */
__global__ void k_bias_grad_sum(int64_t cw, int64_t hnn, const float *ds, float *db) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < hnn;
       t += (int64_t)gridDim.x * blockDim.x) {
    float s = db[t];
    for (int64_t w = 0; w < cw; w++) s += ds[w * hnn + t];
    db[t] = s;
  }
}

/* dtable[row, h] += sum over the (i, j) of that row of db[h, i, j], in a fixed order. */
__global__ void k_bias_scatter(int64_t rows, int64_t H, int64_t nn, const int32_t *start,
                               const int32_t *pos, const float *db, float *dtable) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < rows * H;
       t += (int64_t)gridDim.x * blockDim.x) {
    int64_t row = t / H, h = t % H;
    float s = 0.0f;
    for (int32_t k = start[row]; k < start[row + 1]; k++) s += db[h * nn + pos[k]];
    dtable[t] += s;
  }
}

static int64_t chunk_windows(const c3_attn_desc *d) {
  size_t per = (size_t)(d->heads * d->tokens * d->tokens) * sizeof(float);
  int64_t cw = (int64_t)(C3CU_ATTN_CHUNK_BYTES / per);
  if (cw < 1) cw = 1;
  if (cw > d->windows) cw = d->windows;
  return cw;
}

/* P for windows [w0, w0 + cw) into p [cw, H, n, n]. */
static csal3d_status attn_probs(c3_engine *e, const c3_attn_desc *d, const attn_index *ai,
                                const float *qkv, const float *table, const int32_t *region,
                                int64_t w0, int64_t cw, float *p) {
  const int64_t n = d->tokens, H = d->heads, hd = d->head_dim, C = H * hd, row = 3 * C;
  const int64_t nn = n * n;
  for (int64_t h = 0; h < H; h++) {
    const float *q = qkv + w0 * n * row + h * hd, *k = q + C;
    CU_TRY(c3cu_gemm(e, 0, 1, n, n, hd, d->scale, q, row, n * row, k, row, n * row, 0.0f,
                     p + h * nn, n, H * nn, cw, 0));
  }
  int64_t rows = cw * H * n;
  k_bias_mask_softmax<<<c3cu_blocks(rows, 8), 256, 0, c3cu(e)->stream>>>(
      cw, H, n, w0, ai->index, table, region, region ? d->mask_windows : 1, d->mask_value, p);
  CU_LAUNCHED(e, "attention softmax");
  return CSAL3D_OK;
}

/* ---- the fused forward -----------------------------------------------------------------
 * One block per (window, head): K, V of the window and head, the head's column of the
 * bias table, each token's offset in the relative index and its region id go to shared
 * memory; one thread per query row computes its scores twice (the maximum, then the
 * exponentials with the P V sum), never storing P. The relative index is linear:
 * index(i, j) = base(i) - off(j) with base(i) = (di+wd-1)(2wh-1)(2ww-1) + (hi+wh-1)(2ww-1)
 * + (wi+ww-1) and off(j) = dj(2wh-1)(2ww-1) + hj(2ww-1) + wj. Float32 arithmetic. */

template <int HD>
__global__ void __launch_bounds__(384) k_attn_fwd_fused(int n, int H, float scale, int w0, int w1,
                                                        int w2, const float *qkv,
                                                        const float *table, int table_rows,
                                                        const int32_t *region,
                                                        int64_t mask_windows, float mask_value,
                                                        float *out) {
  extern __shared__ float c3cu_attn_sh[];
  float *Ks = c3cu_attn_sh, *Vs = Ks + (size_t)n * HD, *tab = Vs + (size_t)n * HD;
  int *off = (int *)(tab + table_rows), *reg = off + n;
  const int64_t wh = blockIdx.x;
  const int h = (int)(wh % H);
  const int64_t w = wh / H;
  const int C = H * HD;
  const int64_t row = 3 * (int64_t)C;
  const float *base = qkv + w * n * row;
  for (int t = threadIdx.x; t < n * HD; t += blockDim.x) {
    int j = t / HD, dd = t % HD;
    Ks[t] = base[j * row + C + h * HD + dd];
    Vs[t] = base[j * row + 2 * C + h * HD + dd];
  }
  for (int t = threadIdx.x; t < table_rows; t += blockDim.x) tab[t] = table[(int64_t)t * H + h];
  const int r1 = 2 * w1 - 1, r2 = 2 * w2 - 1;
  const int32_t *rg = region ? region + (w % mask_windows) * n : NULL;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    int dj = j / (w1 * w2), hj = (j / w2) % w1, wj = j % w2;
    off[j] = (dj * r1 + hj) * r2 + wj;
    reg[j] = rg ? rg[j] : 0;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float q[HD];
#pragma unroll
    for (int dd = 0; dd < HD; dd++) q[dd] = base[i * row + h * HD + dd];
    int di = i / (w1 * w2), hi = (i / w2) % w1, wi = i % w2;
    const float *tb = tab + ((di + w0 - 1) * r1 + (hi + w1 - 1)) * r2 + (wi + w2 - 1);
    const int ri = reg[i];
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
      const float *k = Ks + j * HD;
      float sdot = 0.0f;
#pragma unroll
      for (int dd = 0; dd < HD; dd++) sdot = fmaf(q[dd], k[dd], sdot);
      float sc = sdot * scale + tb[-off[j]];
      if (rg && reg[j] != ri) sc += mask_value;
      mx = fmaxf(mx, sc);
    }
    float acc[HD];
#pragma unroll
    for (int dd = 0; dd < HD; dd++) acc[dd] = 0.0f;
    float l = 0.0f;
    for (int j = 0; j < n; j++) {
      const float *k = Ks + j * HD, *v = Vs + j * HD;
      float sdot = 0.0f;
#pragma unroll
      for (int dd = 0; dd < HD; dd++) sdot = fmaf(q[dd], k[dd], sdot);
      float sc = sdot * scale + tb[-off[j]];
      if (rg && reg[j] != ri) sc += mask_value;
      float p = expf(sc - mx);
      l += p;
#pragma unroll
      for (int dd = 0; dd < HD; dd++) acc[dd] = fmaf(p, v[dd], acc[dd]);
    }
    float inv = 1.0f / l;
    float *o = out + (w * n + i) * (int64_t)C + h * HD;
#pragma unroll
    for (int dd = 0; dd < HD; dd++) o[dd] = acc[dd] * inv;
  }
}

template <int HD>
static csal3d_status fused_launch(c3_engine *e, const c3_attn_desc *d, size_t smem,
                                  int table_rows, const float *qkv, const float *table,
                                  const int32_t *region, float *out) {
  CU_CUDA(e,
          cudaFuncSetAttribute(k_attn_fwd_fused<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               160 * 1024),
          "attn_fwd (fused) shared memory");
  int threads = (int)((d->tokens + 31) / 32 * 32);
  if (threads > 384) threads = 384;
  int64_t blocks = d->windows * d->heads;
  k_attn_fwd_fused<HD><<<(unsigned)blocks, threads, smem, c3cu(e)->stream>>>(
      (int)d->tokens, (int)d->heads, d->scale, d->window_full[0], d->window_full[1],
      d->window_full[2], qkv, table, table_rows, region, region ? d->mask_windows : 1,
      d->mask_value, out);
  CU_LAUNCHED(e, "attn_fwd (fused)");
  return CSAL3D_OK;
}

/* The fused forward where it applies (no probabilities to keep, a head size it is built
 * for, shared memory enough); *done says whether it ran. */
static csal3d_status attn_fwd_fused(c3_engine *e, const c3_attn_desc *d, const float *qkv,
                                    const float *table, const int32_t *region, float *out,
                                    int *done) {
  *done = 0;
  const int w0 = d->window_full[0], w1 = d->window_full[1], w2 = d->window_full[2];
  int64_t rows = (int64_t)(2 * w0 - 1) * (2 * w1 - 1) * (2 * w2 - 1);
  size_t smem = (size_t)(2 * d->tokens * d->head_dim + rows) * sizeof(float) +
                (size_t)(2 * d->tokens) * sizeof(int);
  if (smem > 160 * 1024 || d->windows * d->heads > 2147483647LL) return CSAL3D_OK;
  switch (d->head_dim) {
  case 4: CU_TRY(fused_launch<4>(e, d, smem, (int)rows, qkv, table, region, out)); break;
  case 8: CU_TRY(fused_launch<8>(e, d, smem, (int)rows, qkv, table, region, out)); break;
  case 16: CU_TRY(fused_launch<16>(e, d, smem, (int)rows, qkv, table, region, out)); break;
  case 32: CU_TRY(fused_launch<32>(e, d, smem, (int)rows, qkv, table, region, out)); break;
  default: return CSAL3D_OK;
  }
  *done = 1;
  return CSAL3D_OK;
}

static csal3d_status cu_attn_fwd(c3_engine *e, const c3_attn_desc *d, const float *qkv,
                                 const float *table, const int32_t *region, float *out,
                                 float *probs) {
  CU_TRY(attn_check(e, d, "attn_fwd"));
  CU_CHECK_ARG(e, qkv && table && out, "attn_fwd: NULL tensor");
  CU_CHECK_ARG(e, !region || d->mask_windows >= 1,
               "attn_fwd: region ids need mask_windows >= 1");
  const int64_t n = d->tokens, H = d->heads, hd = d->head_dim, C = H * hd, row = 3 * C;
  const int64_t nn = n * n;
  if (!probs && c3cu(e)->attn_fused) {
    int done;
    CU_TRY(attn_fwd_fused(e, d, qkv, table, region, out, &done));
    if (done) return CSAL3D_OK;
  }
  attn_index *ai;
  CU_TRY(get_index(e, d, &ai));
  int64_t cw = chunk_windows(d);
  float *pbuf = NULL;
  if (!probs)
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_A1, (size_t)(cw * H * nn) * sizeof(float),
                        (void **)&pbuf));
  for (int64_t w0 = 0; w0 < d->windows; w0 += cw) {
    int64_t c = d->windows - w0 < cw ? d->windows - w0 : cw;
    float *p = probs ? probs + w0 * H * nn : pbuf;
    CU_TRY(attn_probs(e, d, ai, qkv, table, region, w0, c, p));
    for (int64_t h = 0; h < H; h++) {
      const float *v = qkv + w0 * n * row + 2 * C + h * hd;
      CU_TRY(c3cu_gemm(e, 0, 0, n, hd, n, 1.0f, p + h * nn, n, H * nn, v, row, n * row, 0.0f,
                       out + w0 * n * C + h * hd, C, n * C, c, 0));
    }
  }
  return CSAL3D_OK;
}

static csal3d_status cu_attn_bwd(c3_engine *e, const c3_attn_desc *d, const float *qkv,
                                 const float *table, const int32_t *region,
                                 const float *probs, const float *dout, float *dqkv, int accum,
                                 float *dtable) {
  CU_TRY(attn_check(e, d, "attn_bwd"));
  CU_CHECK_ARG(e, qkv && table && dout && dqkv && dtable, "attn_bwd: NULL tensor");
  CU_CHECK_ARG(e, !region || d->mask_windows >= 1,
               "attn_bwd: region ids need mask_windows >= 1");
  c3cu_state *st = c3cu(e);
  const int64_t n = d->tokens, H = d->heads, hd = d->head_dim, C = H * hd, row = 3 * C;
  const int64_t nn = n * n;
  attn_index *ai;
  CU_TRY(get_index(e, d, &ai));
  int64_t cw = chunk_windows(d);
  float *pbuf = NULL, *dp, *db;
  if (!probs)
    CU_TRY(c3cu_scratch(e, C3CU_SLOT_A1, (size_t)(cw * H * nn) * sizeof(float),
                        (void **)&pbuf));
  CU_TRY(c3cu_scratch(e, C3CU_SLOT_A2, (size_t)(cw * H * nn) * sizeof(float), (void **)&dp));
  CU_TRY(c3cu_scratch(e, C3CU_SLOT_A3, (size_t)(H * nn) * sizeof(float), (void **)&db));
  CU_CUDA(e, cudaMemsetAsync(db, 0, (size_t)(H * nn) * sizeof(float), st->stream),
          "attn_bwd");
  const float beta = accum ? 1.0f : 0.0f;
  for (int64_t w0 = 0; w0 < d->windows; w0 += cw) {
    int64_t c = d->windows - w0 < cw ? d->windows - w0 : cw;
    const float *p = probs ? probs + w0 * H * nn : pbuf;
    if (!probs) CU_TRY(attn_probs(e, d, ai, qkv, table, region, w0, c, pbuf));
    const float *base = qkv + w0 * n * row;
    float *dbase = dqkv + w0 * n * row;
    const float *go = dout + w0 * n * C;
    for (int64_t h = 0; h < H; h++) {
      const float *v = base + 2 * C + h * hd;
      /* dP = dO V^T */
      CU_TRY(c3cu_gemm(e, 0, 1, n, n, hd, 1.0f, go + h * hd, C, n * C, v, row, n * row, 0.0f,
                       dp + h * nn, n, H * nn, c, 0));
      /* dV (+)= P^T dO */
      CU_TRY(c3cu_gemm(e, 1, 0, n, hd, n, 1.0f, p + h * nn, n, H * nn, go + h * hd, C, n * C,
                       beta, dbase + 2 * C + h * hd, row, n * row, c, 0));
    }
    int64_t rows = c * H * n;
    k_softmax_grad<<<c3cu_blocks(rows, 8), 256, 0, st->stream>>>(rows, n, p, dp);
    CU_LAUNCHED(e, "attn_bwd softmax");
    k_bias_grad_sum<<<c3cu_blocks(H * nn, 256), 256, 0, st->stream>>>(c, H * nn, dp, db);
    CU_LAUNCHED(e, "attn_bwd bias");
    for (int64_t h = 0; h < H; h++) {
      const float *q = base + h * hd, *k = base + C + h * hd;
      /* dQ (+)= scale dS K ; dK (+)= scale dS^T Q */
      CU_TRY(c3cu_gemm(e, 0, 0, n, hd, n, d->scale, dp + h * nn, n, H * nn, k, row, n * row,
                       beta, dbase + h * hd, row, n * row, c, 0));
      CU_TRY(c3cu_gemm(e, 1, 0, n, hd, n, d->scale, dp + h * nn, n, H * nn, q, row, n * row,
                       beta, dbase + C + h * hd, row, n * row, c, 0));
    }
  }
  k_bias_scatter<<<c3cu_blocks(ai->rows * H, 256), 256, 0, st->stream>>>(
      ai->rows, H, nn, ai->start, ai->pos, db, dtable);
  CU_LAUNCHED(e, "attn_bwd table");
  return CSAL3D_OK;
}

void c3cu_fill_attn_ops(c3_engine *e) {
  e->attn_fwd = cu_attn_fwd;
  e->attn_bwd = cu_attn_bwd;
}
