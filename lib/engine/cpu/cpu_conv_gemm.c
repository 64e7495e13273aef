/* Convolutions as matrix products (im2col + oneDNN matmul), for the shapes where
 * oneDNN 2.6 has no fast direct kernel or where the weights dominate:
 *  - "patchify" convolutions, kernel == stride and no padding (the patch embedding,
 *    k 2 s 2 from a 1-channel NCDHW image; the final 1^3 convolution to in_ch, whose
 *    1-channel output has only oneDNN's reference kernel);
 *  - few input channels (<= 4: oneDNN 2.6 runs ic 1 on its reference kernel);
 *  - small spatial sizes with many channels (the decoder's first levels), where the
 *    direct kernel would reorder the whole weight tensor on every call while a matmul
 *    reads the PyTorch-layout weights in place.
 * The column matrix is cols[n, v, (ci, kd, kh, kw)] (v = output voxel), so that with the
 * weights as [c_out, K] (K = c_in*kd*kh*kw, their PyTorch layout):
 *   y[n] (v x c_out)     = cols[n] @ w^T + bias
 *   dcols[n] (v x K)     = dy[n] @ w,   then dx = col2im(dcols) (a gather per input voxel)
 *   dw (c_out x K)      += sum_n dy[n]^T @ cols[n]
 * A 1^3 stride-1 convolution uses x itself (through strides) as cols. */
#include <string.h>

#include "core/error.h"
#include "engine/cpu/cpu.h"

static int64_t osz(const c3_conv3d_desc *d, int a) { return c3_conv3d_out_side(d, a); }

/* strides (elements) of [n, voxel, channel] views of a tensor in layout l */
static void vc_strides(c3_layout l, int64_t vox, int64_t ch, int64_t st[3]) {
  st[0] = vox * ch;
  st[1] = l == C3_LAYOUT_NDHWC ? ch : 1;
  st[2] = l == C3_LAYOUT_NDHWC ? 1 : vox;
}

static int is_pointwise(const c3_conv3d_desc *d) {
  for (int a = 0; a < 3; a++)
    if (d->k[a] != 1 || d->stride[a] != 1 || d->pad[a] != 0) return 0;
  return 1;
}

int c3_cpu_conv_use_gemm(const c3_conv3d_desc *d) {
  int patchify = 1;
  for (int a = 0; a < 3; a++)
    if (d->k[a] != d->stride[a] || d->pad[a] != 0) patchify = 0;
  if (patchify) return 1;
  /* few input channels (a U-Net's first convolution on a 1-channel image): oneDNN 2.6
   * has only its reference kernel for ic 1 (~50x slower), while the column matrix is
   * small (c_in * k^3 values per output voxel) */
  double cols_small = (double)d->n * osz(d, 0) * osz(d, 1) * osz(d, 2) * d->c_in * d->k[0] *
                      d->k[1] * d->k[2];
  if (d->c_in <= 4 && cols_small * 4.0 <= (double)(256 << 20)) return 1;
  double kvol = (double)d->k[0] * d->k[1] * d->k[2];
  double wts = (double)d->c_out * d->c_in * kvol;
  double in = (double)d->n * d->c_in * d->in[0] * d->in[1] * d->in[2];
  double vox = (double)osz(d, 0) * osz(d, 1) * osz(d, 2);
  double cols = (double)d->n * vox * d->c_in * kvol;
  return wts >= 2.0 * in && cols * 4.0 <= (double)(256 << 20);
}

/* cols[n, v, (ci, k)] from x */
static void im2col(const c3_conv3d_desc *d, const float *x, float *cols) {
  const int64_t O0 = osz(d, 0), O1 = osz(d, 1), O2 = osz(d, 2), V = O0 * O1 * O2;
  const int64_t I0 = d->in[0], I1 = d->in[1], I2 = d->in[2], IV = I0 * I1 * I2;
  const int k0 = d->k[0], k1 = d->k[1], k2 = d->k[2];
  const int64_t kv = (int64_t)k0 * k1 * k2, K = d->c_in * kv, C = d->c_in;
  const int nhwc = d->src_layout == C3_LAYOUT_NDHWC;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t v = 0; v < V; v++) {
      int64_t z0 = v / (O1 * O2), z1 = (v / O2) % O1, z2 = v % O2;
      float *row = cols + (n * V + v) * K;
      for (int a = 0; a < k0; a++) {
        int64_t p0 = z0 * d->stride[0] - d->pad[0] + a;
        for (int b = 0; b < k1; b++) {
          int64_t p1 = z1 * d->stride[1] - d->pad[1] + b;
          for (int c = 0; c < k2; c++) {
            int64_t p2 = z2 * d->stride[2] - d->pad[2] + c;
            int64_t kk = ((int64_t)a * k1 + b) * k2 + c;
            int inside = p0 >= 0 && p0 < I0 && p1 >= 0 && p1 < I1 && p2 >= 0 && p2 < I2;
            int64_t p = (p0 * I1 + p1) * I2 + p2;
            for (int64_t ci = 0; ci < C; ci++)
              row[ci * kv + kk] =
                  !inside ? 0.0f : nhwc ? x[(n * IV + p) * C + ci] : x[(n * C + ci) * IV + p];
          }
        }
      }
    }
}

/* dx[n, ci, p] (+)= sum over (v, k) with v*s - pad + k = p of dcols[n, v, (ci, k)] */
static void col2im(const c3_conv3d_desc *d, const float *dcols, float *dx, int accum) {
  const int64_t O0 = osz(d, 0), O1 = osz(d, 1), O2 = osz(d, 2), V = O0 * O1 * O2;
  const int64_t I0 = d->in[0], I1 = d->in[1], I2 = d->in[2], IV = I0 * I1 * I2;
  const int k0 = d->k[0], k1 = d->k[1], k2 = d->k[2];
  const int64_t kv = (int64_t)k0 * k1 * k2, K = d->c_in * kv, C = d->c_in;
  const int nhwc = d->src_layout == C3_LAYOUT_NDHWC;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t p = 0; p < IV; p++) {
      int64_t p0 = p / (I1 * I2), p1 = (p / I2) % I1, p2 = p % I2;
      for (int64_t ci = 0; ci < C; ci++) {
        float s = 0.0f;
        for (int a = 0; a < k0; a++) {
          int64_t t0 = p0 + d->pad[0] - a;
          if (t0 < 0 || t0 % d->stride[0]) continue;
          int64_t z0 = t0 / d->stride[0];
          if (z0 >= O0) continue;
          for (int b = 0; b < k1; b++) {
            int64_t t1 = p1 + d->pad[1] - b;
            if (t1 < 0 || t1 % d->stride[1]) continue;
            int64_t z1 = t1 / d->stride[1];
            if (z1 >= O1) continue;
            for (int c = 0; c < k2; c++) {
              int64_t t2 = p2 + d->pad[2] - c;
              if (t2 < 0 || t2 % d->stride[2]) continue;
              int64_t z2 = t2 / d->stride[2];
              if (z2 >= O2) continue;
              int64_t v = (z0 * O1 + z1) * O2 + z2;
              s += dcols[(n * V + v) * K + ci * kv + ((int64_t)a * k1 + b) * k2 + c];
            }
          }
        }
        float *o = nhwc ? &dx[(n * IV + p) * C + ci] : &dx[(n * C + ci) * IV + p];
        *o = accum ? *o + s : s;
      }
    }
}

/* The input as the GEMM's [V, K] operand per image: x itself for a pointwise
 * convolution (strides *st of its layout), else its im2col patches in scratch A1. */
static csal3d_status gemm_operand(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                                  int64_t V, int64_t K, const float **out, int64_t st[3]) {
  if (is_pointwise(d)) {
    vc_strides(d->src_layout, V, d->c_in, st);
    *out = x;
    return CSAL3D_OK;
  }
  float *cols;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A1, (size_t)(d->n * V * K) * sizeof(float), (void **)&cols));
  im2col(d, x, cols);
  *out = cols;
  st[0] = V * K;
  st[1] = K;
  st[2] = 1;
  return CSAL3D_OK;
}

csal3d_status c3_cpu_conv_gemm_fwd(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                                   const float *w, const float *bias, float *y) {
  const int64_t V = osz(d, 0) * osz(d, 1) * osz(d, 2), Co = d->c_out;
  const int64_t kv = (int64_t)d->k[0] * d->k[1] * d->k[2], K = d->c_in * kv;
  int64_t sa[3], sc[3];
  const float *a;
  C3_TRY(gemm_operand(e, d, x, V, K, &a, sa));
  if (d->dst_layout == C3_LAYOUT_NCDHW) {
    /* y[n] as [c_out, v] (row-contiguous): w @ cols[n]^T, then the bias per row; the
     * [v, c_out] form would make oneDNN write a transposed, often 1-column, output */
    int64_t da[3] = {1, Co, K}, sw[3] = {Co * K, K, 1};
    int64_t db[3] = {d->n, K, V}, sb[3] = {sa[0], sa[2], sa[1]};
    int64_t dc[3] = {d->n, Co, V}, st[3] = {Co * V, V, 1};
    C3_TRY(c3_cpu_matmul_nd(e, 3, da, sw, db, sb, dc, st, 1.0f, 0.0f, w, a, NULL, y));
    if (bias) {
#pragma omp parallel for collapse(2) schedule(static)
      for (int64_t n = 0; n < d->n; n++)
        for (int64_t o = 0; o < Co; o++) {
          float *r = y + (n * Co + o) * V, b = bias[o];
          for (int64_t v = 0; v < V; v++) r[v] += b;
        }
    }
    return CSAL3D_OK;
  }
  vc_strides(d->dst_layout, V, Co, sc);
  int64_t da[3] = {d->n, V, K}, db[3] = {1, K, Co}, sb[3] = {K * Co, 1, K};
  int64_t dc[3] = {d->n, V, Co};
  return c3_cpu_matmul_nd(e, 3, da, sa, db, sb, dc, sc, 1.0f, 0.0f, a, w, bias, y);
}

csal3d_status c3_cpu_conv_gemm_bwd_data(c3_engine *e, const c3_conv3d_desc *d, const float *dy,
                                        const float *w, float *dx, int accum) {
  const int64_t V = osz(d, 0) * osz(d, 1) * osz(d, 2), Co = d->c_out;
  const int64_t kv = (int64_t)d->k[0] * d->k[1] * d->k[2], K = d->c_in * kv;
  int64_t sa[3], sc[3];
  vc_strides(d->dst_layout, V, Co, sa);
  int64_t da[3] = {d->n, V, Co}, db[3] = {1, Co, K}, sb[3] = {Co * K, K, 1};
  int64_t dc[3] = {d->n, V, K};
  if (is_pointwise(d)) {
    vc_strides(d->src_layout, V, d->c_in, sc);
    return c3_cpu_matmul_nd(e, 3, da, sa, db, sb, dc, sc, 1.0f, accum ? 1.0f : 0.0f, dy, w,
                            NULL, dx);
  }
  float *dcols;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A2, (size_t)(d->n * V * K) * sizeof(float),
                        (void **)&dcols));
  sc[0] = V * K;
  sc[1] = K;
  sc[2] = 1;
  C3_TRY(c3_cpu_matmul_nd(e, 3, da, sa, db, sb, dc, sc, 1.0f, 0.0f, dy, w, NULL, dcols));
  col2im(d, dcols, dx, accum);
  return CSAL3D_OK;
}

csal3d_status c3_cpu_conv_gemm_bwd_weights(c3_engine *e, const c3_conv3d_desc *d,
                                           const float *x, const float *dy, float *dw,
                                           float *dbias) {
  const int64_t V = osz(d, 0) * osz(d, 1) * osz(d, 2), Co = d->c_out;
  const int64_t kv = (int64_t)d->k[0] * d->k[1] * d->k[2], K = d->c_in * kv;
  int64_t sb[3];
  const float *b;
  C3_TRY(gemm_operand(e, d, x, V, K, &b, sb));
  int64_t sy[3];
  vc_strides(d->dst_layout, V, Co, sy);
  /* dw += dy[n]^T @ cols[n]. A matmul does not sum over batches, and oneDNN runs a long
   * reduction (many voxels, small c_out x K) on one thread: so the rows are cut into a
   * fixed number of chunks (independent of the thread count), multiplied as one batch
   * into partial products, and the partials summed in order. */
  int merge = d->n > 1 && sy[0] == V * sy[1] && sb[0] == V * sb[1];
  int64_t rows = merge ? d->n * V : V;
  int64_t chunk = rows, nchunk = 1;
  if (rows >= 16384 && Co * K <= (1 << 16)) {
    chunk = 4096;
    nchunk = rows / chunk; /* the remainder goes into the last product */
  }
  float *part = NULL;
  if (nchunk > 1)
    C3_TRY(c3_cpu_scratch(e, C3_SLOT_A3, (size_t)(nchunk * Co * K) * sizeof(float),
                          (void **)&part));
  for (int64_t n = 0; n < (merge ? 1 : d->n); n++) {
    const float *yn = dy + n * sy[0], *bn = b + n * sb[0];
    if (nchunk > 1) {
      int64_t da[3] = {nchunk, Co, chunk}, sa[3] = {chunk * sy[1], sy[2], sy[1]};
      int64_t dbb[3] = {nchunk, chunk, K}, sbb[3] = {chunk * sb[1], sb[1], sb[2]};
      int64_t dc[3] = {nchunk, Co, K}, sc[3] = {Co * K, K, 1};
      C3_TRY(c3_cpu_matmul_nd(e, 3, da, sa, dbb, sbb, dc, sc, 1.0f, 0.0f, yn, bn, NULL, part));
      int64_t done = nchunk * chunk;
      if (done < rows) { /* the tail rows, added into the last partial */
        int64_t ta[2] = {Co, rows - done}, tsa[2] = {sy[2], sy[1]};
        int64_t tb[2] = {rows - done, K}, tsb[2] = {sb[1], sb[2]};
        int64_t tc[2] = {Co, K}, tsc[2] = {K, 1};
        C3_TRY(c3_cpu_matmul_nd(e, 2, ta, tsa, tb, tsb, tc, tsc, 1.0f, 1.0f,
                                yn + done * sy[1], bn + done * sb[1], NULL,
                                part + (nchunk - 1) * Co * K));
      }
#pragma omp parallel for schedule(static)
      for (int64_t t = 0; t < Co * K; t++) {
        float acc = dw[t];
        for (int64_t c = 0; c < nchunk; c++) acc += part[c * Co * K + t];
        dw[t] = acc;
      }
    } else {
      int64_t da[2] = {Co, rows}, sa[2] = {sy[2], sy[1]};
      int64_t dbb[2] = {rows, K}, sbb[2] = {sb[1], sb[2]};
      int64_t dc[2] = {Co, K}, sc[2] = {K, 1};
      C3_TRY(c3_cpu_matmul_nd(e, 2, da, sa, dbb, sbb, dc, sc, 1.0f, 1.0f, yn, bn, NULL, dw));
    }
  }
  if (dbias) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < Co; o++) {
      double s = 0.0;
      for (int64_t n = 0; n < d->n; n++)
        for (int64_t v = 0; v < V; v++) s += dy[n * sy[0] + v * sy[1] + o * sy[2]];
      dbias[o] += (float)s;
    }
  }
  return CSAL3D_OK;
}
