/* The CPU engine's window attention: batched oneDNN matmuls over (windows x heads)
 * reading q, k, v in place from the qkv tensor (strided memory descriptors), the
 * relative position bias and shift mask added in C, one softmax primitive per chunk.
 *
 * Windows are processed in chunks so that the [chunk, heads, n, n] score buffers stay
 * bounded (about C3_ATTN_CHUNK_BYTES each) unless the caller passes `probs`. */
#include <string.h>

#include "core/error.h"
#include "engine/cpu/cpu.h"

#define C3_ATTN_CHUNK_BYTES ((size_t)32 << 20)

static csal3d_status attn_check(const c3_attn_desc *d, const char *op) {
  C3_CHECK_ARG(d && d->windows >= 1 && d->tokens >= 1 && d->heads >= 1 && d->head_dim >= 1,
               "%s: bad sizes", op);
  int64_t full = 1;
  for (int a = 0; a < 3; a++) {
    C3_CHECK_ARG(d->window_full[a] >= 1, "%s: window_full[%d] = %d", op, a, d->window_full[a]);
    full *= d->window_full[a];
  }
  C3_CHECK_ARG(d->tokens <= full, "%s: %lld tokens, more than the full window's %lld", op,
               (long long)d->tokens, (long long)full);
  return CSAL3D_OK;
}

/* bias[h, i, j] = table[index(i, j), h] (MONAI: index of the full window, first n). */
static void gather_bias(const c3_attn_desc *d, const float *table, float *bias) {
  const int w1 = d->window_full[1], w2 = d->window_full[2];
  const int64_t r1 = 2 * w1 - 1, r2 = 2 * w2 - 1, n = d->tokens, H = d->heads;
  const int w0 = d->window_full[0];
#pragma omp parallel for schedule(static) if (n * n * H > 65536)
  for (int64_t i = 0; i < n; i++) {
    int64_t di = i / (w1 * w2), hi = (i / w2) % w1, wi = i % w2;
    for (int64_t j = 0; j < n; j++) {
      int64_t dj = j / (w1 * w2), hj = (j / w2) % w1, wj = j % w2;
      int64_t idx = (di - dj + w0 - 1) * r1 * r2 + (hi - hj + w1 - 1) * r2 + (wi - wj + w2 - 1);
      for (int64_t h = 0; h < H; h++) bias[(h * n + i) * n + j] = table[idx * H + h];
    }
  }
}

/* dtable[index(i, j), h] += db[h, i, j]; one writer per (row, h) column: deterministic
 * when the loop over (i, j) is sequential per head. */
static void scatter_bias(const c3_attn_desc *d, const float *db, float *dtable) {
  const int w1 = d->window_full[1], w2 = d->window_full[2];
  const int64_t r1 = 2 * w1 - 1, r2 = 2 * w2 - 1, n = d->tokens, H = d->heads;
  const int w0 = d->window_full[0];
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < H; h++)
    for (int64_t i = 0; i < n; i++) {
      int64_t di = i / (w1 * w2), hi = (i / w2) % w1, wi = i % w2;
      for (int64_t j = 0; j < n; j++) {
        int64_t dj = j / (w1 * w2), hj = (j / w2) % w1, wj = j % w2;
        int64_t idx =
            (di - dj + w0 - 1) * r1 * r2 + (hi - hj + w1 - 1) * r2 + (wi - wj + w2 - 1);
        dtable[idx * H + h] += db[(h * n + i) * n + j];
      }
    }
}

static int64_t chunk_windows(const c3_attn_desc *d) {
  size_t per = (size_t)(d->heads * d->tokens * d->tokens) * sizeof(float);
  int64_t cw = (int64_t)(C3_ATTN_CHUNK_BYTES / per);
  if (cw < 1) cw = 1;
  if (cw > d->windows) cw = d->windows;
  return cw;
}

/* S = scale q k^T + bias + mask, softmax: P for windows [w0, w0 + cw) into p. */
static csal3d_status attn_probs(c3_engine *e, const c3_attn_desc *d, const float *qkv,
                                const float *bias, const int32_t *region, int64_t w0,
                                int64_t cw, float *p) {
  const int64_t n = d->tokens, H = d->heads, hd = d->head_dim, C = H * hd;
  const int64_t row = 3 * C; /* qkv row length */
  const float *q = qkv + w0 * n * row, *k = q + C;
  int64_t da[4] = {cw, H, n, hd}, sa[4] = {n * row, hd, row, 1};
  int64_t db[4] = {cw, H, hd, n}, sb[4] = {n * row, hd, 1, row};
  int64_t dc[4] = {cw, H, n, n}, sc[4] = {H * n * n, n * n, n, 1};
  C3_TRY(c3_cpu_matmul_nd(e, 4, da, sa, db, sb, dc, sc, d->scale, 0.0f, q, k, NULL, p));
  const float mv = d->mask_value;
  const int64_t mw = d->mask_windows;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t w = 0; w < cw; w++)
    for (int64_t h = 0; h < H; h++) {
      const int32_t *r = region ? region + ((w0 + w) % mw) * n : NULL;
      for (int64_t i = 0; i < n; i++) {
        float *s = p + ((w * H + h) * n + i) * n;
        const float *b = bias + (h * n + i) * n;
        if (r) {
          const int32_t ri = r[i];
          for (int64_t j = 0; j < n; j++) s[j] += b[j] + (r[j] != ri ? mv : 0.0f);
        } else {
          for (int64_t j = 0; j < n; j++) s[j] += b[j];
        }
      }
    }
  return c3_cpu_softmax_inplace(e, cw * H * n, n, p);
}

static csal3d_status cpu_attn_fwd(c3_engine *e, const c3_attn_desc *d, const float *qkv,
                                  const float *table, const int32_t *region, float *out,
                                  float *probs) {
  C3_TRY(attn_check(d, "attn_fwd"));
  C3_CHECK_ARG(qkv && table && out, "attn_fwd: NULL tensor");
  C3_CHECK_ARG(!region || d->mask_windows >= 1, "attn_fwd: region ids need mask_windows >= 1");
  const int64_t n = d->tokens, H = d->heads, hd = d->head_dim, C = H * hd, row = 3 * C;
  float *bias;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A3, (size_t)(H * n * n) * sizeof(float), (void **)&bias));
  gather_bias(d, table, bias);
  int64_t cw = chunk_windows(d);
  float *pbuf = NULL;
  if (!probs)
    C3_TRY(c3_cpu_scratch(e, C3_SLOT_A1, (size_t)(cw * H * n * n) * sizeof(float),
                          (void **)&pbuf));
  for (int64_t w0 = 0; w0 < d->windows; w0 += cw) {
    int64_t c = d->windows - w0 < cw ? d->windows - w0 : cw;
    float *p = probs ? probs + w0 * H * n * n : pbuf;
    C3_TRY(attn_probs(e, d, qkv, bias, region, w0, c, p));
    /* out[w, i, h, :] = P @ v */
    const float *v = qkv + w0 * n * row + 2 * C;
    int64_t da[4] = {c, H, n, n}, sa[4] = {H * n * n, n * n, n, 1};
    int64_t db[4] = {c, H, n, hd}, sb[4] = {n * row, hd, row, 1};
    int64_t dc[4] = {c, H, n, hd}, sc[4] = {n * C, hd, C, 1};
    C3_TRY(c3_cpu_matmul_nd(e, 4, da, sa, db, sb, dc, sc, 1.0f, 0.0f, p, v, NULL,
                            out + w0 * n * C));
  }
  return CSAL3D_OK;
}

static csal3d_status cpu_attn_bwd(c3_engine *e, const c3_attn_desc *d, const float *qkv,
                                  const float *table, const int32_t *region,
                                  const float *probs, const float *dout, float *dqkv,
                                  int accum, float *dtable) {
  C3_TRY(attn_check(d, "attn_bwd"));
  C3_CHECK_ARG(qkv && table && dout && dqkv && dtable, "attn_bwd: NULL tensor");
  C3_CHECK_ARG(!region || d->mask_windows >= 1, "attn_bwd: region ids need mask_windows >= 1");
  const int64_t n = d->tokens, H = d->heads, hd = d->head_dim, C = H * hd, row = 3 * C;
  const int64_t nn = n * n;
  /* A3 holds the gathered bias then the bias-gradient sum (both [H, n, n]) */
  float *bias;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A3, (size_t)(2 * H * nn) * sizeof(float), (void **)&bias));
  float *dbias = bias + H * nn;
  gather_bias(d, table, bias);
  memset(dbias, 0, (size_t)(H * nn) * sizeof(float));
  int64_t cw = chunk_windows(d);
  float *pbuf = NULL, *dp;
  if (!probs)
    C3_TRY(c3_cpu_scratch(e, C3_SLOT_A1, (size_t)(cw * H * nn) * sizeof(float),
                          (void **)&pbuf));
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A2, (size_t)(cw * H * nn) * sizeof(float), (void **)&dp));
  const float beta = accum ? 1.0f : 0.0f;
  for (int64_t w0 = 0; w0 < d->windows; w0 += cw) {
    int64_t c = d->windows - w0 < cw ? d->windows - w0 : cw;
    const float *p = probs ? probs + w0 * H * nn : pbuf;
    if (!probs) C3_TRY(attn_probs(e, d, qkv, bias, region, w0, c, pbuf));
    const float *q = qkv + w0 * n * row, *k = q + C, *v = q + 2 * C;
    const float *go = dout + w0 * n * C;
    float *dq = dqkv + w0 * n * row, *dk = dq + C, *dv = dq + 2 * C;
    int64_t d_nn[4] = {c, H, n, n}, s_nn[4] = {H * nn, nn, n, 1}, s_nnT[4] = {H * nn, nn, 1, n};
    int64_t d_nh[4] = {c, H, n, hd}, s_qkv[4] = {n * row, hd, row, 1};
    int64_t s_out[4] = {n * C, hd, C, 1};
    int64_t d_hn[4] = {c, H, hd, n}, s_qkvT[4] = {n * row, hd, 1, row};
    /* dP = dO v^T */
    C3_TRY(c3_cpu_matmul_nd(e, 4, d_nh, s_out, d_hn, s_qkvT, d_nn, s_nn, 1.0f, 0.0f, go, v,
                            NULL, dp));
    /* dv (+)= P^T dO */
    C3_TRY(c3_cpu_matmul_nd(e, 4, d_nn, s_nnT, d_nh, s_out, d_nh, s_qkv, 1.0f, beta, p, go,
                            NULL, dv));
    /* dS = P (dP - rowsum(dP P)), in place in dp */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < c * H * n; r++) {
      const float *pr = p + r * n;
      float *g = dp + r * n;
      float dot = 0.0f;
      for (int64_t j = 0; j < n; j++) dot += g[j] * pr[j];
      for (int64_t j = 0; j < n; j++) g[j] = pr[j] * (g[j] - dot);
    }
    /* bias gradient: sum over the chunk's windows, in window order */
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < H * nn; t++) {
      float s = dbias[t];
      for (int64_t w = 0; w < c; w++) s += dp[w * H * nn + t];
      dbias[t] = s;
    }
    /* dq (+)= scale dS k ; dk (+)= scale dS^T q */
    C3_TRY(c3_cpu_matmul_nd(e, 4, d_nn, s_nn, d_nh, s_qkv, d_nh, s_qkv, d->scale, beta, dp, k,
                            NULL, dq));
    C3_TRY(c3_cpu_matmul_nd(e, 4, d_nn, s_nnT, d_nh, s_qkv, d_nh, s_qkv, d->scale, beta, dp,
                            q, NULL, dk));
  }
  scatter_bias(d, dbias, dtable);
  return CSAL3D_OK;
}

void c3_cpu_fill_attn_ops(c3_engine *e) {
  e->attn_fwd = cpu_attn_fwd;
  e->attn_bwd = cpu_attn_bwd;
}
