/* The CPU engine's window attention, fused per (window, head).
 *
 * Each task computes, for one window and one head, P = softmax(bias + mask + scale q k^T)
 * row by row (probs_rows: the scores of a row stay in L1; only the bias is read and P
 * written, into the saved probabilities or an n x n buffer of the thread, 470 KB at
 * n = 343), then P v into the output; the backward recomputes P the same way (or reads
 * the saved one) and runs the four products of the gradient. The products are oneDNN's
 * dnnl_sgemm (JIT, AVX-512 where present), called inside the OpenMP loop, where oneDNN
 * runs them on the calling thread; the softmax is vectorised C. q, k, v are read in
 * place from the qkv tensor (row stride 3C), the output written in place (stride C).
 *
 * Determinism: every task's arithmetic is sequential, and the bias-gradient sum over
 * windows runs over a fixed partition (blocks of windows), so results do not depend on
 * the number of threads. */
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <string.h>

#include "core/error.h"
#include "engine/cpu/cpu.h"

#define C3_ATTN_BWD_BLOCKS 16 /* window blocks per head for the bias gradient */
#ifndef C3_ATTN_DOT_MAX
#define C3_ATTN_DOT_MAX 8 /* head sizes up to this: q k^T inside the softmax's row pass */
#endif

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

/* The relative-position index of tokens (i, j) of a window is base(i) - off(j):
 * index = (di - dj + w0 - 1) r1 r2 + (hi - hj + w1 - 1) r2 + (wi - wj + w2 - 1) with
 * (d, h, w) a token's position in the full window (MONAI: the first n tokens). */
static int64_t rel_base(const c3_attn_desc *d, int64_t i) {
  const int64_t w0 = d->window_full[0], w1 = d->window_full[1], w2 = d->window_full[2];
  const int64_t r1 = 2 * w1 - 1, r2 = 2 * w2 - 1;
  return (i / (w1 * w2) + w0 - 1) * r1 * r2 + ((i / w2) % w1 + w1 - 1) * r2 + (i % w2 + w2 - 1);
}
static int64_t rel_off(const c3_attn_desc *d, int64_t j) {
  const int64_t w1 = d->window_full[1], w2 = d->window_full[2];
  const int64_t r1 = 2 * w1 - 1, r2 = 2 * w2 - 1;
  return (j / (w1 * w2)) * r1 * r2 + ((j / w2) % w1) * r2 + j % w2;
}

/* bias[h, i, j] = table[index(i, j), h]; off: n scratch values. */
static void gather_bias(const c3_attn_desc *d, const float *table, float *bias, int64_t *off) {
  const int64_t n = d->tokens, H = d->heads;
  for (int64_t j = 0; j < n; j++) off[j] = rel_off(d, j);
#pragma omp parallel for schedule(static) if (n * n * H > 65536)
  for (int64_t i = 0; i < n; i++) {
    const int64_t base = rel_base(d, i);
    for (int64_t h = 0; h < H; h++) {
      float *br = bias + (h * n + i) * n;
      for (int64_t j = 0; j < n; j++) br[j] = table[(base - off[j]) * H + h];
    }
  }
}

/* dtable[index(i, j), h] += db[h, i, j]; one writer per head, rows in order. */
static void scatter_bias(const c3_attn_desc *d, const float *db, float *dtable, int64_t *off) {
  const int64_t n = d->tokens, H = d->heads;
  for (int64_t j = 0; j < n; j++) off[j] = rel_off(d, j);
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < H; h++)
    for (int64_t i = 0; i < n; i++) {
      const int64_t base = rel_base(d, i);
      const float *dr = db + (h * n + i) * n;
      for (int64_t j = 0; j < n; j++) dtable[(base - off[j]) * H + h] += dr[j];
    }
}

/* ---- vectorised softmax pieces ----------------------------------------------------
 * GCC/Clang vector extensions (16 floats): each target clone below lowers them to its
 * ISA (AVX-512, AVX2, or SSE2 for the default). */
#pragma GCC diagnostic ignored "-Wpsabi" /* vector helpers are always inlined */
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
#define VL 16

static inline __attribute__((always_inline)) vf vload(const float *p) {
  vf v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline __attribute__((always_inline)) void vstore(float *p, vf v) { memcpy(p, &v, sizeof v); }
static inline __attribute__((always_inline)) vf vsplat(float x) { return (vf){0} + x; }
static inline __attribute__((always_inline)) vf vsel(vi m, vf a, vf b) { return (vf)(((vi)a & m) | ((vi)b & ~m)); }
static inline __attribute__((always_inline)) float vhsum(vf v) {
  float s = 0.0f;
  for (int i = 0; i < VL; i++) s += v[i];
  return s;
}

/* exp(x) for x <= 0 (Cephes expf: range reduction by ln 2, degree-6 polynomial), about
 * 1 ulp; inputs below -87 give ~1e-38 instead of a denormal; NaN gives NaN. Scalar and vector forms
 * compute the same operations. */
static inline __attribute__((always_inline)) float exp_nonpos(float x) {
  if (x != x) return x; /* NaN stays NaN (and never reaches the int conversion) */
  x = x < -87.0f ? -87.0f : x;
  int32_t k = (int32_t)(x * 1.44269504088896341f - 0.5f);
  float kf = (float)k;
  float r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (k + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
static inline __attribute__((always_inline)) vf vexp_nonpos(vf x) {
  const vf x0 = x;
  x = vsel(x >= vsplat(-87.0f), x, vsplat(-87.0f)); /* NaN lanes: -87 here, NaN at the end */
  vi k = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, vi);
  vf kf = __builtin_convertvector(k, vf);
  vf r = x - kf * 0.693359375f + kf * 2.12194440e-4f;
  vf p = vsplat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  vi bits = (k + 127) << 23;
  return vsel(x0 == x0, p * (vf)bits, x0);
}

/* dS = P (dP - rowsum(dP P)), in place in g; adds dS into acc (the bias gradient). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
softmax_grad_rows(const float *p, float *g, float *acc, int64_t rows, int64_t n) {
  const int64_t nv = n / VL * VL;
  for (int64_t r = 0; r < rows; r++) {
    const float *pr = p + r * n;
    float *gr = g + r * n, *ar = acc + r * n;
    vf vd = vsplat(0.0f);
    for (int64_t j = 0; j < nv; j += VL) vd += vload(gr + j) * vload(pr + j);
    float dot = vhsum(vd);
    for (int64_t j = nv; j < n; j++) dot += gr[j] * pr[j];
    for (int64_t j = 0; j < nv; j += VL) {
      vf t = vload(pr + j) * (vload(gr + j) - dot);
      vstore(gr + j, t);
      vstore(ar + j, vload(ar + j) + t);
    }
    for (int64_t j = nv; j < n; j++) {
      float t = pr[j] * (gr[j] - dot);
      gr[j] = t;
      ar[j] += t;
    }
  }
}

/* P = softmax(bias + mask + scale q k^T), row by row, into s (n x n). q: the window's
 * queries (row stride qs); kt: its keys transposed, [hd][n], or NULL when s already
 * holds scale q k^T (from a GEMM); reg: the mask window's region ids when the window
 * mixes regions (else NULL). Each row is completed, its max taken, exponentiated and
 * normalised while it sits in L1. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
probs_rows(const float *q, int64_t qs, const float *kt, int64_t hd, float scale,
           const float *bias, const int32_t *reg, float mv, float *s, int64_t n) {
  const int64_t nv = n / VL * VL;
  for (int64_t i = 0; i < n; i++) {
    const float *qi = q + i * qs, *br = bias + i * n;
    float *sr = s + i * n;
    const int32_t ri = reg ? reg[i] : 0;
    vf vmx = vsplat(-INFINITY);
    for (int64_t j = 0; j < nv; j += VL) {
      vf acc;
      if (kt) {
        acc = vsplat(0.0f);
        for (int64_t dd = 0; dd < hd; dd++) acc += vsplat(qi[dd]) * vload(kt + dd * n + j);
        acc *= scale;
      } else {
        acc = vload(sr + j);
      }
      vf add = vload(br + j);
      if (reg) {
        vi rj;
        memcpy(&rj, reg + j, sizeof rj);
        add += vsel(rj != ri, vsplat(mv), vsplat(0.0f));
      }
      vf t = acc + add;
      vstore(sr + j, t);
      vmx = vsel(t > vmx, t, vmx);
    }
    float mx = -INFINITY;
    for (int l = 0; l < VL && nv; l++) mx = vmx[l] > mx ? vmx[l] : mx;
    for (int64_t j = nv; j < n; j++) {
      float acc;
      if (kt) {
        acc = 0.0f;
        for (int64_t dd = 0; dd < hd; dd++) acc += qi[dd] * kt[dd * n + j];
        acc *= scale;
      } else {
        acc = sr[j];
      }
      float add = br[j];
      if (reg) add += reg[j] != ri ? mv : 0.0f;
      float t = acc + add;
      sr[j] = t;
      mx = t > mx ? t : mx;
    }
    vf vacc = vsplat(0.0f);
    for (int64_t j = 0; j < nv; j += VL) {
      vf t = vexp_nonpos(vload(sr + j) - mx);
      vstore(sr + j, t);
      vacc += t;
    }
    float sum = vhsum(vacc);
    for (int64_t j = nv; j < n; j++) {
      float t = exp_nonpos(sr[j] - mx);
      sr[j] = t;
      sum += t;
    }
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < nv; j += VL) vstore(sr + j, vload(sr + j) * inv);
    for (int64_t j = nv; j < n; j++) sr[j] *= inv;
  }
}

typedef struct attn_ctx {
  const c3_attn_desc *d;
  const float *qkv, *bias;
  const int32_t *region;
  const unsigned char *mixed;
  char *kt;         /* per thread: the keys of the current (window, head), transposed */
  size_t kt_bytes;  /* per thread */
} attn_ctx;

/* P of window w, head h into s (n x n): bias + mask + scale q k^T, softmax. */
static int task_probs(const attn_ctx *c, int64_t w, int64_t h, float *s) {
  const c3_attn_desc *d = c->d;
  const int64_t n = d->tokens, hd = d->head_dim, C = d->heads * hd, row = 3 * C;
  const float *q = c->qkv + w * n * row + h * hd, *k = q + C;
  float *kt = NULL;
  if (hd <= C3_ATTN_DOT_MAX) { /* small heads: the dot products in the row pass */
    kt = (float *)(c->kt + (size_t)omp_get_thread_num() * c->kt_bytes);
    for (int64_t j = 0; j < n; j++)
      for (int64_t dd = 0; dd < hd; dd++) kt[dd * n + j] = k[j * row + dd];
  } else if (dnnl_sgemm('N', 'T', n, n, hd, d->scale, q, row, k, row, 0.0f, s, n) !=
             dnnl_success) {
    return -1;
  }
  const int32_t *reg = NULL;
  if (c->region) {
    int64_t m = w % d->mask_windows;
    if (c->mixed[m]) reg = c->region + m * n;
  }
  probs_rows(q, row, kt, hd, d->scale, c->bias + h * n * n, reg, d->mask_value, s, n);
  return 0;
}

/* mixed[m] = 1 when mask window m has tokens of more than one region */
static csal3d_status attn_mixed(c3_engine *e, const c3_attn_desc *d, const int32_t *region,
                                unsigned char **out) {
  *out = NULL;
  if (!region) return CSAL3D_OK;
  unsigned char *m;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A4, (size_t)d->mask_windows, (void **)&m));
  for (int64_t w = 0; w < d->mask_windows; w++) {
    const int32_t *r = region + w * d->tokens;
    m[w] = 0;
    for (int64_t i = 1; i < d->tokens; i++)
      if (r[i] != r[0]) {
        m[w] = 1;
        break;
      }
  }
  *out = m;
  return CSAL3D_OK;
}

static size_t align64(size_t b) { return (b + 63) & ~(size_t)63; }

/* Per thread: the transposed keys task_probs needs for small heads (0 for large ones). */
static size_t kt_bytes(const c3_attn_desc *d) {
  if (d->head_dim > C3_ATTN_DOT_MAX) return 0;
  return align64((size_t)(d->tokens * d->head_dim) * sizeof(float));
}

static csal3d_status cpu_attn_fwd(c3_engine *e, const c3_attn_desc *d, const float *qkv,
                                  const float *table, const int32_t *region, float *out,
                                  float *probs) {
  C3_TRY(attn_check(d, "attn_fwd"));
  C3_CHECK_ARG(qkv && table && out, "attn_fwd: NULL tensor");
  C3_CHECK_ARG(!region || d->mask_windows >= 1, "attn_fwd: region ids need mask_windows >= 1");
  const int64_t n = d->tokens, H = d->heads, hd = d->head_dim, C = H * hd, row = 3 * C;
  const size_t tile = align64((size_t)(n * n) * sizeof(float));
  const int nthr = omp_get_max_threads();
  const size_t ktb = kt_bytes(d);
  const size_t pbytes = probs ? 0 : (size_t)nthr * tile;
  const size_t offb = align64((size_t)n * sizeof(int64_t));
  char *buf;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A3, (size_t)H * tile + pbytes + (size_t)nthr * ktb + offb,
                        (void **)&buf));
  float *bias = (float *)buf;
  gather_bias(d, table, bias, (int64_t *)(buf + (size_t)H * tile + pbytes + (size_t)nthr * ktb));
  attn_ctx c = {d, qkv, bias, region, NULL, buf + (size_t)H * tile + pbytes, ktb};
  unsigned char *mixed;
  C3_TRY(attn_mixed(e, d, region, &mixed));
  c.mixed = mixed;
  int failed = 0;
  const int64_t tasks = d->windows * H;
#pragma omp parallel for schedule(static) reduction(| : failed)
  for (int64_t t = 0; t < tasks; t++) {
    int64_t w = t / H, h = t % H;
    float *s = probs ? probs + t * n * n
                     : (float *)(buf + (size_t)H * tile + (size_t)omp_get_thread_num() * tile);
    if (task_probs(&c, w, h, s)) {
      failed = 1;
      continue;
    }
    const float *v = qkv + w * n * row + 2 * C + h * hd;
    if (dnnl_sgemm('N', 'N', n, hd, n, 1.0f, s, n, v, row, 0.0f, out + w * n * C + h * hd, C) !=
        dnnl_success)
      failed = 1;
  }
  if (failed) return c3_error(CSAL3D_ERR_INTERNAL, "attn_fwd: oneDNN sgemm failed");
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
  const size_t tile = align64((size_t)nn * sizeof(float));
  const int nthr = omp_get_max_threads();
  /* blocks of windows per head: a fixed partition, so that the bias-gradient partial
   * sums (one per head and block, added in order) do not depend on the threads */
  const int64_t nb = d->windows < C3_ATTN_BWD_BLOCKS ? d->windows : C3_ATTN_BWD_BLOCKS;
  const int64_t bs = (d->windows + nb - 1) / nb;
  char *buf;
  size_t bytes = (size_t)H * tile                 /* gathered bias */
                 + (size_t)(H * nb) * tile        /* bias-gradient partials */
                 + (size_t)nthr * 2 * tile;       /* per thread: P, dP */
  const size_t ktb = kt_bytes(d);
  bytes += probs ? 0 : (size_t)nthr * ktb;         /* per thread: k transposed */
  const size_t offb = align64((size_t)n * sizeof(int64_t));
  bytes += offb;                                   /* relative-position offsets */
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A3, bytes, (void **)&buf));
  float *bias = (float *)buf;
  int64_t *off = (int64_t *)(buf + bytes - offb);
  char *partials = buf + (size_t)H * tile, *thr = partials + (size_t)(H * nb) * tile;
  gather_bias(d, table, bias, off);
  attn_ctx c = {d, qkv, bias, region, NULL, thr + (size_t)nthr * 2 * tile, ktb};
  unsigned char *mixed;
  C3_TRY(attn_mixed(e, d, region, &mixed));
  c.mixed = mixed;
  const float beta = accum ? 1.0f : 0.0f;
  int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed)
  for (int64_t t = 0; t < H * nb; t++) {
    int64_t h = t / nb, b = t % nb;
    float *acc = (float *)(partials + (size_t)t * tile);
    memset(acc, 0, (size_t)nn * sizeof(float));
    char *mine = thr + (size_t)omp_get_thread_num() * 2 * tile;
    float *pbuf = (float *)mine, *dp = (float *)(mine + tile);
    int64_t w_end = (b + 1) * bs < d->windows ? (b + 1) * bs : d->windows;
    for (int64_t w = b * bs; w < w_end && !failed; w++) {
      const float *p = probs ? probs + (w * H + h) * nn : pbuf;
      if (!probs && task_probs(&c, w, h, pbuf)) {
        failed = 1;
        break;
      }
      const float *q = qkv + w * n * row + h * hd, *k = q + C, *v = q + 2 * C;
      const float *go = dout + w * n * C + h * hd;
      float *dq = dqkv + w * n * row + h * hd, *dk = dq + C, *dv = dq + 2 * C;
      dnnl_status_t s = dnnl_sgemm('N', 'T', n, n, hd, 1.0f, go, C, v, row, 0.0f, dp, n);
      if (s == dnnl_success)
        s = dnnl_sgemm('T', 'N', n, hd, n, 1.0f, p, n, go, C, beta, dv, row);
      if (s == dnnl_success) softmax_grad_rows(p, dp, acc, n, n);
      if (s == dnnl_success)
        s = dnnl_sgemm('N', 'N', n, hd, n, d->scale, dp, n, k, row, beta, dq, row);
      if (s == dnnl_success)
        s = dnnl_sgemm('T', 'N', n, hd, n, d->scale, dp, n, q, row, beta, dk, row);
      if (s != dnnl_success) failed = 1;
    }
  }
  if (failed) return c3_error(CSAL3D_ERR_INTERNAL, "attn_bwd: oneDNN sgemm failed");
  /* sum the partials of each head in block order, into the first block's; then the
   * per-head sums go contiguously ([H, n, n]) into the bias buffer, no longer needed */
#pragma omp parallel for schedule(static)
  for (int64_t h = 0; h < H; h++) {
    float *dst = (float *)(partials + (size_t)(h * nb) * tile);
    for (int64_t b = 1; b < nb; b++) {
      const float *src = (const float *)(partials + (size_t)(h * nb + b) * tile);
      for (int64_t i = 0; i < nn; i++) dst[i] += src[i];
    }
  }
  for (int64_t h = 0; h < H; h++)
    memcpy(bias + h * nn, partials + (size_t)(h * nb) * tile, (size_t)nn * sizeof(float));
  scatter_bias(d, bias, dtable, off);
  return CSAL3D_OK;
}

void c3_cpu_fill_attn_ops(c3_engine *e) {
  e->attn_fwd = cpu_attn_fwd;
  e->attn_bwd = cpu_attn_bwd;
}
