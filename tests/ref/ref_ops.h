/* Float64 reference implementations of the engine's ops, for tests only.
 *
 * Written for clarity, independently of the engines: direct loops from the
 * definitions in lib/engine/engine.h, and for the Swin permutes the literal sequence
 * MONAI runs (pad, roll, partition; relative_position_index from a meshgrid), so that
 * an engine's fused version is checked against the unfused meaning. All arrays are
 * double; integer inputs (labels, region ids) are passed as doubles holding integers. */
#ifndef C3_TESTS_REF_OPS_H
#define C3_TESTS_REF_OPS_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static inline int64_t ref_idx5(c3_layout l, int64_t n, int64_t c, int64_t d, int64_t h,
                               int64_t w, int64_t C, int64_t D, int64_t H, int64_t W) {
  if (l == C3_LAYOUT_NCDHW) return (((n * C + c) * D + d) * H + h) * W + w;
  return (((n * D + d) * H + h) * W + w) * C + c;
}

/* y = conv(x, w) + b (b may be NULL) */
static void ref_conv3d(const c3_conv3d_desc *d, const double *x, const double *w,
                       const double *b, double *y) {
  int64_t O[3];
  for (int a = 0; a < 3; a++) O[a] = c3_conv3d_out_side(d, a);
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t o = 0; o < d->c_out; o++)
      for (int64_t z0 = 0; z0 < O[0]; z0++)
        for (int64_t z1 = 0; z1 < O[1]; z1++)
          for (int64_t z2 = 0; z2 < O[2]; z2++) {
            double s = b ? b[o] : 0.0;
            for (int64_t i = 0; i < d->c_in; i++)
              for (int k0 = 0; k0 < d->k[0]; k0++) {
                int64_t p0 = z0 * d->stride[0] - d->pad[0] + k0;
                if (p0 < 0 || p0 >= d->in[0]) continue;
                for (int k1 = 0; k1 < d->k[1]; k1++) {
                  int64_t p1 = z1 * d->stride[1] - d->pad[1] + k1;
                  if (p1 < 0 || p1 >= d->in[1]) continue;
                  for (int k2 = 0; k2 < d->k[2]; k2++) {
                    int64_t p2 = z2 * d->stride[2] - d->pad[2] + k2;
                    if (p2 < 0 || p2 >= d->in[2]) continue;
                    double xv = x[ref_idx5(d->src_layout, n, i, p0, p1, p2, d->c_in, d->in[0],
                                           d->in[1], d->in[2])];
                    double wv = w[(((o * d->c_in + i) * d->k[0] + k0) * d->k[1] + k1) * d->k[2] + k2];
                    s += xv * wv;
                  }
                }
              }
            y[ref_idx5(d->dst_layout, n, o, z0, z1, z2, d->c_out, O[0], O[1], O[2])] = s;
          }
}

/* A test matmul: pad > 0 pads the leading dimensions (lda + pad, ldb + pad + 1,
 * ldc + pad) and the batch strides of A and C; a broadcast operand has stride 0. *a_n,
 * *b_n, *c_n receive the floats each buffer holds. */
static inline void ref_matmul_case(c3_matmul_desc *d, int64_t batch, int64_t m, int64_t n,
                                   int64_t k, int ta, int tb, int64_t pad, int bcast_a,
                                   int bcast_b, float alpha, float beta, int64_t *a_n,
                                   int64_t *b_n, int64_t *c_n) {
  int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
  memset(d, 0, sizeof *d);
  d->batch = batch;
  d->m = m;
  d->n = n;
  d->k = k;
  d->trans_a = ta;
  d->trans_b = tb;
  d->lda = pad ? ac + pad : 0;
  d->ldb = pad ? bc + pad + 1 : 0;
  d->ldc = pad ? n + pad : 0;
  int64_t lda = d->lda ? d->lda : ac, ldb = d->ldb ? d->ldb : bc, ldc = d->ldc ? d->ldc : n;
  d->stride_a = bcast_a ? 0 : ar * lda + (pad ? 3 : 0);
  d->stride_b = bcast_b ? 0 : br * ldb;
  d->stride_c = m * ldc + (pad ? 5 : 0);
  d->alpha = alpha;
  d->beta = beta;
  *a_n = (bcast_a ? 1 : batch) * (ar * lda + (pad ? 3 : 0));
  *b_n = (bcast_b ? 1 : batch) * br * ldb;
  *c_n = batch * d->stride_c;
}

/* c = alpha op(a) op(b) + bias + beta c (c is read when beta != 0) */
static void ref_matmul(const c3_matmul_desc *d, const double *a, const double *b,
                       const double *bias, double *c) {
  int64_t ac = d->trans_a ? d->m : d->k, bc = d->trans_b ? d->k : d->n;
  int64_t lda = d->lda ? d->lda : ac, ldb = d->ldb ? d->ldb : bc, ldc = d->ldc ? d->ldc : d->n;
  for (int64_t t = 0; t < d->batch; t++) {
    const double *A = a + t * d->stride_a, *B = b + t * d->stride_b;
    double *Cm = c + t * d->stride_c;
    for (int64_t i = 0; i < d->m; i++)
      for (int64_t j = 0; j < d->n; j++) {
        double s = 0.0;
        for (int64_t k = 0; k < d->k; k++) {
          double av = d->trans_a ? A[k * lda + i] : A[i * lda + k];
          double bv = d->trans_b ? B[j * ldb + k] : B[k * ldb + j];
          s += av * bv;
        }
        double v = d->alpha * s + (bias ? bias[j] : 0.0);
        if (d->beta != 0.0f) v += d->beta * Cm[i * ldc + j];
        Cm[i * ldc + j] = v;
      }
  }
}

static void ref_layer_norm(int64_t rows, int64_t cols, double eps, const double *x,
                           const double *g, const double *b, double *y) {
  for (int64_t r = 0; r < rows; r++) {
    const double *xr = x + r * cols;
    double m = 0.0, v = 0.0;
    for (int64_t c = 0; c < cols; c++) m += xr[c];
    m /= cols;
    for (int64_t c = 0; c < cols; c++) v += (xr[c] - m) * (xr[c] - m);
    v /= cols;
    double rs = 1.0 / sqrt(v + eps);
    for (int64_t c = 0; c < cols; c++) {
      double z = (xr[c] - m) * rs;
      y[r * cols + c] = g ? z * g[c] + b[c] : z;
    }
  }
}

static void ref_softmax(int64_t rows, int64_t cols, const double *x, double *y) {
  for (int64_t r = 0; r < rows; r++) {
    const double *xr = x + r * cols;
    double mx = xr[0], s = 0.0;
    for (int64_t c = 1; c < cols; c++) mx = xr[c] > mx ? xr[c] : mx;
    for (int64_t c = 0; c < cols; c++) s += exp(xr[c] - mx);
    for (int64_t c = 0; c < cols; c++) y[r * cols + c] = exp(xr[c] - mx) / s;
  }
}

static void ref_gelu(int64_t n, const double *x, double *y) {
  for (int64_t i = 0; i < n; i++) y[i] = 0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0)));
}

static void ref_inorm_lrelu(const c3_inorm_desc *d, const double *x, double *y) {
  int64_t S = d->d * d->h * d->w;
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t c = 0; c < d->c; c++) {
      double m = 0.0, v = 0.0;
      for (int64_t s = 0; s < S; s++)
        m += x[ref_idx5(d->layout, n, c, 0, 0, s, d->c, 1, 1, S)];
      m /= S;
      for (int64_t s = 0; s < S; s++) {
        double t = x[ref_idx5(d->layout, n, c, 0, 0, s, d->c, 1, 1, S)] - m;
        v += t * t;
      }
      v /= S;
      for (int64_t s = 0; s < S; s++) {
        int64_t i = ref_idx5(d->layout, n, c, 0, 0, s, d->c, 1, 1, S);
        double z = (x[i] - m) / sqrt(v + d->eps);
        y[i] = z > 0 ? z : d->slope * z;
      }
    }
}

/* PyTorch's area_pixel_compute_source_index + linear weights, align_corners=False */
static void ref_up_axis(int64_t o, int64_t in, int64_t *i0, int64_t *i1, double *l1) {
  double src = 0.5 * (o + 0.5) - 0.5;
  if (src < 0) src = 0;
  *i0 = (int64_t)src;
  *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);
  *l1 = src - *i0;
}

static void ref_upsample2x(const c3_upsample_desc *d, const double *x, double *y) {
  int64_t D = d->d, H = d->h, W = d->w;
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t c = 0; c < d->c; c++)
      for (int64_t a = 0; a < 2 * D; a++)
        for (int64_t b = 0; b < 2 * H; b++)
          for (int64_t e = 0; e < 2 * W; e++) {
            int64_t i[2][3];
            double l[3];
            ref_up_axis(a, D, &i[0][0], &i[1][0], &l[0]);
            ref_up_axis(b, H, &i[0][1], &i[1][1], &l[1]);
            ref_up_axis(e, W, &i[0][2], &i[1][2], &l[2]);
            double s = 0.0;
            for (int u = 0; u < 2; u++)
              for (int v = 0; v < 2; v++)
                for (int t = 0; t < 2; t++) {
                  double wgt = (u ? l[0] : 1 - l[0]) * (v ? l[1] : 1 - l[1]) * (t ? l[2] : 1 - l[2]);
                  s += wgt * x[ref_idx5(d->layout, n, c, i[u][0], i[v][1], i[t][2], d->c, D, H, W)];
                }
            y[ref_idx5(d->layout, n, c, a, b, e, d->c, 2 * D, 2 * H, 2 * W)] = s;
          }
}

/* MONAI's relative_position_index for window ws (N x N, N = prod ws) */
static int64_t *ref_rel_index(const int ws[3]) {
  int64_t N = (int64_t)ws[0] * ws[1] * ws[2];
  int64_t *coords = malloc(sizeof(int64_t) * 3 * N); /* torch.stack(meshgrid(..., ij)).flatten(1) */
  int64_t t = 0;
  for (int a = 0; a < ws[0]; a++)
    for (int b = 0; b < ws[1]; b++)
      for (int c = 0; c < ws[2]; c++, t++) {
        coords[0 * N + t] = a;
        coords[1 * N + t] = b;
        coords[2 * N + t] = c;
      }
  int64_t *idx = malloc(sizeof(int64_t) * N * N);
  for (int64_t i = 0; i < N; i++)
    for (int64_t j = 0; j < N; j++) {
      int64_t r0 = coords[i] - coords[j] + ws[0] - 1;
      int64_t r1 = coords[N + i] - coords[N + j] + ws[1] - 1;
      int64_t r2 = coords[2 * N + i] - coords[2 * N + j] + ws[2] - 1;
      r0 *= (2 * ws[1] - 1) * (2 * ws[2] - 1);
      r1 *= 2 * ws[2] - 1;
      idx[i * N + j] = r0 + r1 + r2;
    }
  free(coords);
  return idx;
}

/* window attention; probs may be NULL */
static void ref_attn(const c3_attn_desc *d, const double *qkv, const double *table,
                     const double *region, double *out, double *probs) {
  int64_t n = d->tokens, H = d->heads, hd = d->head_dim, C = H * hd;
  int64_t N = (int64_t)d->window_full[0] * d->window_full[1] * d->window_full[2];
  int64_t *idx = ref_rel_index(d->window_full);
  double *s = malloc(sizeof(double) * n * n), *p = malloc(sizeof(double) * n * n);
  for (int64_t w = 0; w < d->windows; w++)
    for (int64_t h = 0; h < H; h++) {
      for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
          double acc = 0.0;
          for (int64_t t = 0; t < hd; t++)
            acc += (qkv[(w * n + i) * 3 * C + h * hd + t] * d->scale) *
                   qkv[(w * n + j) * 3 * C + C + h * hd + t];
          acc += table[idx[i * N + j] * H + h];
          if (region) {
            const double *r = region + (w % d->mask_windows) * n;
            if (r[i] != r[j]) acc += d->mask_value;
          }
          s[i * n + j] = acc;
        }
      ref_softmax(n, n, s, p);
      if (probs) memcpy(probs + (w * H + h) * n * n, p, sizeof(double) * n * n);
      for (int64_t i = 0; i < n; i++)
        for (int64_t t = 0; t < hd; t++) {
          double acc = 0.0;
          for (int64_t j = 0; j < n; j++) acc += p[i * n + j] * qkv[(w * n + j) * 3 * C + 2 * C + h * hd + t];
          out[(w * n + i) * C + h * hd + t] = acc;
        }
    }
  free(idx);
  free(s);
  free(p);
}

/* MONAI's block: F.pad at the end, torch.roll(-shift), window_partition. */
static void ref_window_partition(const c3_window_desc *d, const double *x, double *xw) {
  int64_t S[3] = {d->d, d->h, d->w}, P[3], wn[3];
  for (int a = 0; a < 3; a++) {
    P[a] = (S[a] + d->window[a] - 1) / d->window[a] * d->window[a];
    wn[a] = P[a] / d->window[a];
  }
  int64_t C = d->c, vol = P[0] * P[1] * P[2];
  double *pad = calloc((size_t)(d->batch * vol * C), sizeof(double));
  double *rol = malloc(sizeof(double) * d->batch * vol * C);
  for (int64_t b = 0; b < d->batch; b++)
    for (int64_t i = 0; i < S[0]; i++)
      for (int64_t j = 0; j < S[1]; j++)
        for (int64_t k = 0; k < S[2]; k++)
          memcpy(pad + (((b * P[0] + i) * P[1] + j) * P[2] + k) * C,
                 x + (((b * S[0] + i) * S[1] + j) * S[2] + k) * C, sizeof(double) * C);
  /* torch.roll(x, shifts=-s): out[i] = in[(i + s) mod P] */
  for (int64_t b = 0; b < d->batch; b++)
    for (int64_t i = 0; i < P[0]; i++)
      for (int64_t j = 0; j < P[1]; j++)
        for (int64_t k = 0; k < P[2]; k++)
          memcpy(rol + (((b * P[0] + i) * P[1] + j) * P[2] + k) * C,
                 pad + (((b * P[0] + (i + d->shift[0]) % P[0]) * P[1] + (j + d->shift[1]) % P[1]) * P[2] +
                        (k + d->shift[2]) % P[2]) * C,
                 sizeof(double) * C);
  /* view(b, nd, w0, nh, w1, nw, w2, c).permute(0, 1, 3, 5, 2, 4, 6, 7) */
  int64_t T = (int64_t)d->window[0] * d->window[1] * d->window[2], o = 0;
  for (int64_t b = 0; b < d->batch; b++)
    for (int64_t a0 = 0; a0 < wn[0]; a0++)
      for (int64_t a1 = 0; a1 < wn[1]; a1++)
        for (int64_t a2 = 0; a2 < wn[2]; a2++)
          for (int64_t t0 = 0; t0 < d->window[0]; t0++)
            for (int64_t t1 = 0; t1 < d->window[1]; t1++)
              for (int64_t t2 = 0; t2 < d->window[2]; t2++, o++) {
                int64_t i = a0 * d->window[0] + t0, j = a1 * d->window[1] + t1,
                        k = a2 * d->window[2] + t2;
                memcpy(xw + o * C, rol + (((b * P[0] + i) * P[1] + j) * P[2] + k) * C,
                       sizeof(double) * C);
              }
  (void)T;
  free(pad);
  free(rol);
}

/* window_reverse, torch.roll(+shift), crop. */
static void ref_window_merge(const c3_window_desc *d, const double *xw, double *x) {
  int64_t S[3] = {d->d, d->h, d->w}, P[3], wn[3];
  for (int a = 0; a < 3; a++) {
    P[a] = (S[a] + d->window[a] - 1) / d->window[a] * d->window[a];
    wn[a] = P[a] / d->window[a];
  }
  int64_t C = d->c, vol = P[0] * P[1] * P[2];
  double *grid = malloc(sizeof(double) * d->batch * vol * C);
  int64_t o = 0;
  for (int64_t b = 0; b < d->batch; b++)
    for (int64_t a0 = 0; a0 < wn[0]; a0++)
      for (int64_t a1 = 0; a1 < wn[1]; a1++)
        for (int64_t a2 = 0; a2 < wn[2]; a2++)
          for (int64_t t0 = 0; t0 < d->window[0]; t0++)
            for (int64_t t1 = 0; t1 < d->window[1]; t1++)
              for (int64_t t2 = 0; t2 < d->window[2]; t2++, o++) {
                int64_t i = a0 * d->window[0] + t0, j = a1 * d->window[1] + t1,
                        k = a2 * d->window[2] + t2;
                memcpy(grid + (((b * P[0] + i) * P[1] + j) * P[2] + k) * C, xw + o * C,
                       sizeof(double) * C);
              }
  /* torch.roll(shifts=+s): out[i] = in[(i - s) mod P]; then crop */
  for (int64_t b = 0; b < d->batch; b++)
    for (int64_t i = 0; i < S[0]; i++)
      for (int64_t j = 0; j < S[1]; j++)
        for (int64_t k = 0; k < S[2]; k++)
          memcpy(x + (((b * S[0] + i) * S[1] + j) * S[2] + k) * C,
                 grid + (((b * P[0] + (i - d->shift[0] + P[0]) % P[0]) * P[1] +
                          (j - d->shift[1] + P[1]) % P[1]) * P[2] +
                         (k - d->shift[2] + P[2]) % P[2]) * C,
                 sizeof(double) * C);
  free(grid);
}

/* MONAI PatchMerging: F.pad to even sides, x[:, od::2, oh::2, ow::2, :], cat. */
static void ref_patch_merge(const c3_merge_desc *d, const double *x, double *y) {
  int64_t D = d->d, H = d->h, W = d->w, C = d->c;
  int64_t PD = D + D % 2, PH = H + H % 2, PW = W + W % 2;
  double *pad = calloc((size_t)(d->batch * PD * PH * PW * C), sizeof(double));
  for (int64_t b = 0; b < d->batch; b++)
    for (int64_t i = 0; i < D; i++)
      for (int64_t j = 0; j < H; j++)
        for (int64_t k = 0; k < W; k++)
          memcpy(pad + (((b * PD + i) * PH + j) * PW + k) * C,
                 x + (((b * D + i) * H + j) * W + k) * C, sizeof(double) * C);
  for (int64_t b = 0; b < d->batch; b++)
    for (int64_t i = 0; i < PD / 2; i++)
      for (int64_t j = 0; j < PH / 2; j++)
        for (int64_t k = 0; k < PW / 2; k++)
          for (int s = 0; s < 8; s++) {
            int o = d->order[s];
            int64_t a = 2 * i + (o >> 2), bb = 2 * j + ((o >> 1) & 1), cc = 2 * k + (o & 1);
            memcpy(y + ((((b * (PD / 2) + i) * (PH / 2) + j) * (PW / 2) + k) * 8 + s) * C,
                   pad + (((b * PD + a) * PH + bb) * PW + cc) * C, sizeof(double) * C);
          }
  free(pad);
}

static void ref_transpose(int64_t batch, int64_t rows, int64_t cols, const double *x, double *y) {
  for (int64_t b = 0; b < batch; b++)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++)
        y[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
}

static void ref_permute3d(const c3_permute3d_desc *d, const double *x, double *y) {
  int64_t o[3];
  for (int a = 0; a < 3; a++) o[a] = d->s[d->perm[a]];
  for (int64_t b = 0; b < d->batch; b++)
    for (int64_t a0 = 0; a0 < o[0]; a0++)
      for (int64_t a1 = 0; a1 < o[1]; a1++)
        for (int64_t a2 = 0; a2 < o[2]; a2++) {
          int64_t oo[3] = {a0, a1, a2}, in[3];
          for (int a = 0; a < 3; a++)
            in[d->perm[a]] = d->flip[a] ? d->s[d->perm[a]] - 1 - oo[a] : oo[a];
          for (int64_t t = 0; t < d->inner; t++)
            y[(((b * o[0] + a0) * o[1] + a1) * o[2] + a2) * d->inner + t] =
                x[(((b * d->s[0] + in[0]) * d->s[1] + in[1]) * d->s[2] + in[2]) * d->inner + t];
        }
}

static void ref_reduce_sum(int64_t outer, int64_t mid, int64_t inner, double alpha,
                           const double *x, double *y) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double s = 0.0;
      for (int64_t m = 0; m < mid; m++) s += x[(o * mid + m) * inner + i];
      y[o * inner + i] = alpha * s;
    }
}

static void ref_broadcast(int64_t outer, int64_t mid, int64_t inner, double alpha,
                          const double *x, double *y) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t m = 0; m < mid; m++)
      for (int64_t i = 0; i < inner; i++) y[(o * mid + m) * inner + i] = alpha * x[o * inner + i];
}

static double ref_mse(int64_t n, const double *x, const double *t, const double *w) {
  double s = 0.0, W = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double wi = w ? w[i] : 1.0;
    s += wi * (x[i] - t[i]) * (x[i] - t[i]);
    W += wi;
  }
  return W > 0 ? s / W : 0.0;
}

static double ref_l1(int64_t n, const double *x, const double *y) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += fabs(x[i] - y[i]);
  return s / n;
}

static double ref_cross_entropy(int64_t rows, int64_t classes, const double *logits,
                                const double *labels) {
  double s = 0.0;
  for (int64_t r = 0; r < rows; r++) {
    const double *l = logits + r * classes;
    double mx = l[0], z = 0.0;
    for (int64_t c = 1; c < classes; c++) mx = l[c] > mx ? l[c] : mx;
    for (int64_t c = 0; c < classes; c++) z += exp(l[c] - mx);
    s += mx + log(z) - l[(int64_t)labels[r]];
  }
  return s / rows;
}

/* PyTorch AdamW (torch/optim/adamw.py, single-tensor, non-amsgrad) */
static void ref_adamw(const c3_adamw_desc *d, int64_t n, double *p, const double *g, double *m,
                      double *v) {
  double bc1 = 1 - pow(d->beta1, (double)d->step), bc2 = 1 - pow(d->beta2, (double)d->step);
  for (int64_t i = 0; i < n; i++) {
    double gi = g[i] * d->grad_scale;
    p[i] *= 1 - (double)d->lr * d->weight_decay;
    m[i] = d->beta1 * m[i] + (1 - (double)d->beta1) * gi;
    v[i] = d->beta2 * v[i] + (1 - (double)d->beta2) * gi * gi;
    double denom = sqrt(v[i]) / sqrt(bc2) + d->eps;
    p[i] -= (d->lr / bc1) * m[i] / denom;
  }
}

/* y[o, y_off + c, i] (+)= x[o, x_off + c, i] (the channel block copy) */
static inline void ref_channel_copy(int64_t outer, int64_t inner, int64_t count, int64_t x_ch,
                             int64_t x_off, const double *x, int64_t y_ch, int64_t y_off,
                             double *y) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t c = 0; c < count; c++)
      for (int64_t i = 0; i < inner; i++)
        y[(o * y_ch + y_off + c) * inner + i] += x[(o * x_ch + x_off + c) * inner + i];
}

/* nnU-Net's DC_and_CE_loss (batch Dice, softmax, smooth), as c3_segloss_desc defines it */
static inline double ref_seg_loss(const c3_segloss_desc *d, const double *logits,
                           const double *labels) {
  int64_t R = d->rows, K = d->classes;
  double ce = 0.0, *I = calloc((size_t)K, sizeof(double)), *P = calloc((size_t)K, sizeof(double)),
         *G = calloc((size_t)K, sizeof(double)), *p = calloc((size_t)K, sizeof(double));
  for (int64_t r = 0; r < R; r++) {
    const double *l = logits + r * K;
    double mx = l[0], z = 0.0;
    for (int64_t c = 1; c < K; c++) mx = l[c] > mx ? l[c] : mx;
    for (int64_t c = 0; c < K; c++) z += exp(l[c] - mx);
    for (int64_t c = 0; c < K; c++) p[c] = exp(l[c] - mx) / z;
    int64_t y = (int64_t)labels[r];
    ce += -log(p[y]);
    for (int64_t c = 0; c < K; c++) {
      P[c] += p[c];
      if (c == y) {
        I[c] += p[c];
        G[c] += 1.0;
      }
    }
  }
  ce /= R;
  double dice = 0.0;
  for (int64_t c = d->first_class; c < K; c++) {
    double den = P[c] + G[c] + d->smooth;
    dice += (2 * I[c] + d->smooth) / (den < 1e-8 ? 1e-8 : den);
  }
  dice /= (double)(K - d->first_class);
  free(I);
  free(P);
  free(G);
  free(p);
  return d->ce_weight * ce + d->dice_weight * (1.0 - dice);
}

#endif
