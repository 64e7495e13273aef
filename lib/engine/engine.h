/* The engine: the one interface between the model and the hardware.
 *
 * One engine per device kind (CPU, CUDA). A context opens its engine once; the model
 * and the training code call only the function pointers below, never oneDNN, BLAS or
 * CUDA directly.
 *
 * ---- Conventions (every op) -------------------------------------------------------
 * - Every op takes the engine first and returns a csal3d_status (CSAL3D_OK, else an
 *   error with a message naming the op and the bad argument). Ops do not print.
 * - Tensors are float32 in ENGINE MEMORY: blocks from e->alloc, or element offsets into
 *   such blocks. Callers may do pointer arithmetic on them (`x + k` for k floats) but
 *   never dereference them on the host: on CUDA they are device pointers. Host data
 *   moves only through e->upload / e->download. Integer inputs (labels, region ids)
 *   are int32 in engine memory. Scalars (sizes, alpha, eps, ...) are host values.
 *   An engine may compute internally in lower precision (the CUDA engine: bf16 with
 *   float32 accumulation) and documents its tolerance; the CPU engine is float32.
 * - Shapes are row-major, the LAST index fastest. Two activation layouts:
 *     token-major  [N, D, H, W, C] = [N, tokens, C]   (the Swin encoder; "NDHWC")
 *     channel-major [N, C, D, H, W]                   (images, reconstructions; "NCDHW")
 *   Convolutions, instance norm and upsampling take the layout of each tensor
 *   (c3_layout), so the decoder can stay channels-last from hidden4 to the output.
 *   Weights are in PyTorch/MONAI layout: Linear [out, in], Conv3d [out, in, kd, kh, kw].
 * - Gradients:
 *     * parameter gradients (dweight, dbias, dgamma, dbeta, dtable) ALWAYS ACCUMULATE
 *       (+=), as PyTorch's .grad does; the caller zeroes them once per step;
 *     * input/activation gradients (dx, dqkv, ...) take `accum`: 0 overwrites, 1 adds
 *       to what is there (residual branches, gradients of tensors used twice).
 * - Aliasing: outputs must not overlap inputs unless the op says "may alias".
 * - Determinism: for a given engine, thread count and shapes, results are bitwise
 *   reproducible. (Scalar reductions to the host are also independent of the thread
 *   count on the CPU engine.)
 * - Ops are synchronous from the caller's point of view on the CPU; a CUDA engine may
 *   queue work on its stream: download and the ops that return host scalars
 *   (loss values, sums) synchronise. e->synchronize waits for everything.
 * - An engine is used by one thread at a time (its context's). The CPU engine runs
 *   on the calling thread's OpenMP team (see core/threads.h).
 * - A pointer an engine does not provide is NULL (callers needing it fail with
 *   CSAL3D_ERR_UNSUPPORTED). The CPU engine provides all of them.
 * - Backward notation: for y = f(x), "dy" is dL/dy given, "dx" is dL/dx computed.
 * - What forward must save for backward is listed per op ("saves"); passing NULL for
 *   a saved output means inference (no backward will be asked for).
 */
#ifndef C3_ENGINE_ENGINE_H
#define C3_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "csal3d/context.h"

#ifdef __cplusplus
extern "C" {
#endif

struct c3_engine;

/* Layout of a 5-D activation tensor. */
typedef enum c3_layout {
  C3_LAYOUT_NCDHW = 0, /* [N, C, D, H, W] */
  C3_LAYOUT_NDHWC = 1  /* [N, D, H, W, C], i.e. token-major [N, tokens, C] */
} c3_layout;

/* ---- 3-D convolution ---------------------------------------------------------------
 * y[n, o, z] = bias[o] + sum_{i, k} w[o, i, k] * x[n, i, z*stride - pad + k]
 * (cross-correlation as PyTorch, zero padding on both sides of each axis).
 * Output sides: out = (in + 2*pad - k) / stride + 1 (integer division, >= 1).
 * Uses: patch embed (k 2, stride 2, pad 0, NCDHW -> NDHWC), decoder (k 3, pad 1;
 * k 1, pad 0). */
typedef struct c3_conv3d_desc {
  int64_t n, c_in, c_out;
  int64_t in[3];  /* input D, H, W */
  int k[3];       /* kernel sides */
  int stride[3];
  int pad[3];     /* symmetric */
  c3_layout src_layout; /* layout of x (and dx) */
  c3_layout dst_layout; /* layout of y (and dy) */
} c3_conv3d_desc;

/* Output sides of a convolution (host helper, no engine needed). */
static inline int64_t c3_conv3d_out_side(const c3_conv3d_desc *d, int axis) {
  return (d->in[axis] + 2 * (int64_t)d->pad[axis] - d->k[axis]) / d->stride[axis] + 1;
}

/* ---- Batched matrix product ---------------------------------------------------------
 * For b in [0, batch):
 *   C_b[m x n] = alpha * op(A_b) @ op(B_b) + bias (broadcast over rows) + beta * C_b
 * op(A) is [m x k]: A stored [m x k] (row stride lda), or, with trans_a, stored [k x m]
 * and transposed. op(B) is [k x n]: B stored [k x n] (ldb), or with trans_b [n x k]
 * (a PyTorch Linear weight [out, in] is used with trans_b = 1). C is stored [m x n]
 * with row stride ldc. ld* = 0 means packed (the stored row length).
 * Batch strides (elements) stride_a, stride_b, stride_c; stride_a or stride_b = 0
 * broadcasts A or B over the batch; stride_c must separate the outputs (or batch 1).
 * bias (length n) may be NULL. With beta = 0, C's old content is ignored (NaN ok).
 * Linear layer: y[rows, out] = x[rows, in] @ W^T + b:
 *   fwd  {batch 1, m rows, n out, k in, trans_b 1}
 *   dx   {m rows, n in, k out}: dx = dy @ W           (beta 0 or 1 for accum)
 *   dW  += dy^T @ x: {m out, n in, k rows, trans_a 1, beta 1}
 *   db  += column sums of dy: e->reduce_sum(1, rows, out, 1, dy, db, accum 1). */
typedef struct c3_matmul_desc {
  int64_t batch, m, n, k;
  int trans_a, trans_b;
  int64_t lda, ldb, ldc;
  int64_t stride_a, stride_b, stride_c;
  float alpha, beta;
} c3_matmul_desc;

/* ---- Window attention (Swin, MONAI WindowAttention) ---------------------------------
 * For every window w in [0, windows) and head h in [0, heads), with n = tokens and
 * hd = head_dim, C = heads * hd:
 *   qkv  [windows, n, 3, heads, hd]    (the qkv Linear's output [windows, n, 3C])
 *   q, k, v = qkv[w, :, 0|1|2, h, :]   ([n x hd] each)
 *   S = scale * q @ k^T + B_h + M_w    ([n x n])
 *   B_h[i, j] = table[index[i, j], h]  table [(2wd-1)(2wh-1)(2ww-1), heads]
 *   index = the first n rows and columns of the relative position index of the FULL
 *           window window_full (MONAI's relative_position_index[:n, :n], also when a
 *           window is clipped): for tokens i = (di, hi, wi), j = (dj, hj, wj) of the
 *           full window, index = (di-dj+wd-1)(2wh-1)(2ww-1) + (hi-hj+wh-1)(2ww-1)
 *           + (wi-wj+ww-1).
 *   M_w[i, j] = mask_value where region[w % mask_windows, i] != region[.., j], else 0;
 *           no mask when region is NULL (mask_windows is then ignored).
 *   P = softmax over j of S;  out[w, :, h, :] = P @ v    out [windows, n, heads*hd]
 * region: int32 [mask_windows, n] shift-region ids of each token of each window of one
 * image (windows are batch-major, so window w uses w % mask_windows).
 * probs: [windows, heads, n, n]; fwd writes P there when non-NULL; bwd uses it when
 * non-NULL, else recomputes P from qkv (flash-attention style, no big buffer).
 * Internal scratch is bounded (the engine works on chunks of windows). */
typedef struct c3_attn_desc {
  int64_t windows;      /* windows in this call (batch x windows per image) */
  int64_t tokens;       /* n <= wd*wh*ww of window_full */
  int64_t heads, head_dim;
  int window_full[3];   /* the configured window (7, 7, 7) */
  float scale;          /* head_dim^-0.5 */
  int64_t mask_windows; /* windows per image (rows of region) */
  float mask_value;     /* -100 in MONAI */
} c3_attn_desc;

/* ---- Windows: padding + cyclic shift + partition, and the inverse -----------------
 * x: token-major [batch, D, H, W, C]. The padded grid has sides P = ceil(D/wd)*wd, ...
 * (zeros at the end of each axis), rolled by -shift (torch.roll(x, -shift)): position
 * p of the shifted grid holds xpad[(p + shift) mod P] per axis.
 * xw: [batch * nwin, wd*wh*ww, C], windows ordered (b, wi_d, wi_h, wi_w) and tokens
 * (td, th, tw) row-major (MONAI window_partition).
 * window/shift are the EFFECTIVE values of the block (clipped window, zero shift
 * along axes whose size is <= the window). */
typedef struct c3_window_desc {
  int64_t batch, d, h, w, c;
  int window[3];
  int shift[3];
} c3_window_desc;

/* Windows per image and the padded sides (host helper). */
static inline int64_t c3_window_count(const c3_window_desc *d) {
  int64_t nd = (d->d + d->window[0] - 1) / d->window[0];
  int64_t nh = (d->h + d->window[1] - 1) / d->window[1];
  int64_t nw = (d->w + d->window[2] - 1) / d->window[2];
  return nd * nh * nw;
}

/* ---- Patch merging gather (MONAI PatchMerging v1) ---------------------------------
 * x [batch, D, H, W, C] -> y [batch, ceil(D/2), ceil(H/2), ceil(W/2), 8C]:
 *   y[b, i, j, k, s*C + c] = x[b, 2i + od, 2j + oh, 2k + ow, c]  (0 outside x)
 * with (od, oh, ow) = bits of order[s] = od*4 + oh*2 + ow. Entries may repeat. */
typedef struct c3_merge_desc {
  int64_t batch, d, h, w, c;
  unsigned char order[8];
} c3_merge_desc;

/* MONAI's PatchMerging (v0.9, "merging") as coded: x0..x7 =
 * 000, 100, 010, 001, 101, 010, 001, 111 (x5, x6 repeat x2, x3). */
#define C3_MERGE_ORDER_MONAI {0, 4, 2, 1, 5, 2, 1, 7}
/* All 8 distinct sub-voxels: 000, 100, 010, 001, 110, 101, 011, 111. */
#define C3_MERGE_ORDER_DISTINCT {0, 4, 2, 1, 6, 5, 3, 7}

/* ---- Instance norm (no affine) + LeakyReLU, and x2 trilinear upsampling ----------- */
typedef struct c3_inorm_desc {
  int64_t n, c, d, h, w;
  c3_layout layout;
  float eps;   /* 1e-5 */
  float slope; /* LeakyReLU negative slope, 0.01 */
} c3_inorm_desc;

typedef struct c3_upsample_desc {
  int64_t n, c, d, h, w; /* input sides; output is 2d, 2h, 2w */
  c3_layout layout;
} c3_upsample_desc;

/* ---- Spatial permutation with flips (views and rot90 of observations) -------------
 * x [batch, s0, s1, s2, inner] -> y [batch, s[perm0], s[perm1], s[perm2], inner]:
 *   y[b, o0, o1, o2, :] = x[b, i0, i1, i2, :] with i[perm[a]] = flip[a] ? s[perm[a]]-1-o[a] : o[a]
 * NCDHW volumes: batch = N*C, inner = 1. Example: rot90 k=1 in (H, W),
 * out[.., i, j] = in[.., j, W-1-i]: perm {0, 2, 1}, flip {0, 1, 0}.
 * The backward is the inverse transform (c3_permute3d_inverse) with accum. */
typedef struct c3_permute3d_desc {
  int64_t batch, inner;
  int64_t s[3];
  int perm[3];
  int flip[3];
} c3_permute3d_desc;

/* The desc of the inverse transform (maps y back to x). */
static inline c3_permute3d_desc c3_permute3d_inverse(const c3_permute3d_desc *d) {
  c3_permute3d_desc r = *d;
  for (int a = 0; a < 3; a++) r.s[a] = d->s[d->perm[a]];
  for (int a = 0; a < 3; a++) {
    r.perm[d->perm[a]] = a;
    r.flip[d->perm[a]] = d->flip[a];
  }
  return r;
}

/* ---- AdamW (PyTorch's torch.optim.AdamW, non-amsgrad) ------------------------------
 * For each element, g = grad * grad_scale (clipping factor, 1 for none):
 *   p -= lr * weight_decay * p
 *   m = beta1 m + (1 - beta1) g ;  v = beta2 v + (1 - beta2) g^2
 *   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - beta_i^step
 * step >= 1 is the number of this update (after incrementing). Call once per tensor
 * (weight_decay 0 for biases, norms and relative position tables). */
typedef struct c3_adamw_desc {
  float lr, beta1, beta2, eps, weight_decay;
  float grad_scale;
  int64_t step;
} c3_adamw_desc;

/* ---- Segmentation loss: softmax cross-entropy + soft Dice (nnU-Net's DC_and_CE_loss) --
 * logits [rows, classes] (token-major: a row per voxel), labels int32 [rows] in
 * [0, classes). With p = softmax(logits[r]) and y the one-hot labels:
 *   CE = mean_r -log p[r, label_r]
 *   for c in [first_class, classes), sums over ALL rows (nnU-Net's batch Dice):
 *     I_c = sum_r p[r,c] y[r,c],  P_c = sum_r p[r,c],  G_c = sum_r y[r,c]
 *     D_c = (2 I_c + smooth) / (P_c + G_c + smooth)
 *   Dice = mean_c D_c (the soft Dice), loss = ce_weight CE + dice_weight (1 - Dice).
 * (nnU-Net adds -Dice; 1 - Dice has the same gradient and keeps the loss >= 0.) */
typedef struct c3_segloss_desc {
  int64_t rows, classes;
  int first_class;   /* 1: the background is left out of the Dice (nnU-Net's do_bg=False) */
  float smooth;      /* 1e-5 in nnU-Net */
  float ce_weight, dice_weight;
} c3_segloss_desc;

typedef struct c3_engine {
  const char *name;      /* "cpu" or "cuda" */
  csal3d_device device;  /* CSAL3D_DEVICE_CPU or CSAL3D_DEVICE_CUDA */
  void *plugin;          /* dlopen handle of the CUDA plugin, else NULL */
  void *state;           /* the engine's own data */
  void (*close)(struct c3_engine *engine); /* releases state; may be NULL */

  /* ================= memory ================= */
  /* Allocates `bytes` (0 ok) of engine memory, 64-byte aligned, uninitialised;
   * `what` names it in the out-of-memory message. */
  csal3d_status (*alloc)(struct c3_engine *e, size_t bytes, const char *what, void **out);
  /* Frees a block from alloc; accepts NULL. */
  void (*free)(struct c3_engine *e, void *p);
  /* host -> engine, engine -> host, engine -> engine (regions must not overlap). */
  csal3d_status (*upload)(struct c3_engine *e, void *dst, const void *host_src, size_t bytes);
  csal3d_status (*download)(struct c3_engine *e, void *host_dst, const void *src, size_t bytes);
  csal3d_status (*copy)(struct c3_engine *e, void *dst, const void *src, size_t bytes);
  /* x[0..n) = value; zero sets `bytes` bytes to 0 (any dtype). */
  csal3d_status (*fill)(struct c3_engine *e, float *x, int64_t n, float value);
  csal3d_status (*zero)(struct c3_engine *e, void *p, size_t bytes);
  /* Waits until all queued work is done (no-op on the CPU). */
  csal3d_status (*synchronize)(struct c3_engine *e);
  /* Bytes of engine memory held now (alloc blocks plus the engine's own scratch) and
   * the peak since open or the last reset_peak. */
  void (*memory_stats)(struct c3_engine *e, size_t *in_use, size_t *peak);
  void (*reset_peak)(struct c3_engine *e);

  /* ================= convolution ================= */
  /* y = conv(x, w) + bias (bias [c_out] may be NULL). y is overwritten. */
  csal3d_status (*conv3d_fwd)(struct c3_engine *e, const c3_conv3d_desc *d,
                              const float *x, const float *w, const float *bias, float *y);
  /* dx (+)= conv_transpose(dy, w). */
  csal3d_status (*conv3d_bwd_data)(struct c3_engine *e, const c3_conv3d_desc *d,
                                   const float *dy, const float *w, float *dx, int accum);
  /* dw += dL/dw from x and dy; dbias += sums of dy per output channel (NULL: skip). */
  csal3d_status (*conv3d_bwd_weights)(struct c3_engine *e, const c3_conv3d_desc *d,
                                      const float *x, const float *dy, float *dw,
                                      float *dbias);

  /* ================= matmul ================= */
  /* See c3_matmul_desc. c must not overlap a or b. */
  csal3d_status (*matmul)(struct c3_engine *e, const c3_matmul_desc *d, const float *a,
                          const float *b, const float *bias, float *c);

  /* ================= normalisation, activation ================= */
  /* Layer norm over the last axis of x [rows, cols]:
   *   y = (x - mean) / sqrt(var + eps) * gamma + beta     (var biased)
   * gamma, beta [cols]: both NULL for no affine (hidden-state norms).
   * Saves mean[rows], var[rows] (both NULL: inference). y may alias x. */
  csal3d_status (*layer_norm_fwd)(struct c3_engine *e, int64_t rows, int64_t cols,
                                  float eps, const float *x, const float *gamma,
                                  const float *beta, float *y, float *mean, float *var);
  /* dx (+)= dL/dx; dgamma += , dbeta += (NULL without affine). Needs x, gamma, and
   * the mean/var the forward saved. */
  csal3d_status (*layer_norm_bwd)(struct c3_engine *e, int64_t rows, int64_t cols,
                                  float eps, const float *x, const float *gamma,
                                  const float *mean, const float *var, const float *dy,
                                  float *dx, int accum, float *dgamma, float *dbeta);
  /* Softmax over the last axis of [rows, cols]. y may alias x. */
  csal3d_status (*softmax_fwd)(struct c3_engine *e, int64_t rows, int64_t cols,
                               const float *x, float *y);
  /* dx (+)= y * (dy - sum_j dy*y), from the forward's output y. */
  csal3d_status (*softmax_bwd)(struct c3_engine *e, int64_t rows, int64_t cols,
                               const float *y, const float *dy, float *dx, int accum);
  /* GELU, exact erf form: y = x/2 (1 + erf(x / sqrt 2)). y may alias x. */
  csal3d_status (*gelu_fwd)(struct c3_engine *e, int64_t n, const float *x, float *y);
  /* dx (+)= dy * gelu'(x), from the forward's INPUT x. */
  csal3d_status (*gelu_bwd)(struct c3_engine *e, int64_t n, const float *x,
                            const float *dy, float *dx, int accum);
  /* Instance norm without affine over the spatial axes of each (n, c), then LeakyReLU:
   *   y = lrelu((x - mean) / sqrt(var + eps)),  lrelu(z) = z > 0 ? z : slope z
   * Saves mean[n*c], var[n*c] (biased), indexed n*c_total + c (NULL: inference). */
  csal3d_status (*inorm_lrelu_fwd)(struct c3_engine *e, const c3_inorm_desc *d,
                                   const float *x, float *y, float *mean, float *var);
  /* dx (+)= dL/dx, from the forward's input x and saved mean/var. */
  csal3d_status (*inorm_lrelu_bwd)(struct c3_engine *e, const c3_inorm_desc *d,
                                   const float *x, const float *mean, const float *var,
                                   const float *dy, float *dx, int accum);
  /* Trilinear x2 upsampling, align_corners = false (PyTorch Upsample(scale_factor=2,
   * mode="trilinear")): per axis src = max((o + 0.5)/2 - 0.5, 0), i0 = floor(src),
   * i1 = min(i0 + 1, side - 1), weights (1 - l, l) with l = src - i0. */
  csal3d_status (*upsample2x_fwd)(struct c3_engine *e, const c3_upsample_desc *d,
                                  const float *x, float *y);
  /* dx (+)= the adjoint applied to dy (dy has the output's sides). */
  csal3d_status (*upsample2x_bwd)(struct c3_engine *e, const c3_upsample_desc *d,
                                  const float *dy, float *dx, int accum);

  /* ================= window attention ================= */
  /* See c3_attn_desc. out [windows, tokens, heads*head_dim] is overwritten; probs
   * (NULL ok) saves P. */
  csal3d_status (*attn_fwd)(struct c3_engine *e, const c3_attn_desc *d, const float *qkv,
                            const float *table, const int32_t *region, float *out,
                            float *probs);
  /* dqkv (+)= dL/dqkv [windows, tokens, 3C]; dtable += dL/dtable. probs: the forward's
   * P, or NULL to recompute it. */
  csal3d_status (*attn_bwd)(struct c3_engine *e, const c3_attn_desc *d, const float *qkv,
                            const float *table, const int32_t *region, const float *probs,
                            const float *dout, float *dqkv, int accum, float *dtable);

  /* ================= layout permutes ================= */
  /* x [batch, D, H, W, C] -> xw (see c3_window_desc): pad, roll, partition. With
   * accum, xw += instead of =. Its adjoint is window_merge (and vice versa). */
  csal3d_status (*window_partition)(struct c3_engine *e, const c3_window_desc *d,
                                    const float *x, float *xw, int accum);
  /* xw [batch*nwin, wd*wh*ww, C] -> x [batch, D, H, W, C]: reverse partition, roll
   * back by +shift, crop the padding (dropped). With accum, x += (residual add). */
  csal3d_status (*window_merge)(struct c3_engine *e, const c3_window_desc *d,
                                const float *xw, float *x, int accum);
  /* Patch merging gather; y is overwritten. */
  csal3d_status (*patch_merge_fwd)(struct c3_engine *e, const c3_merge_desc *d,
                                   const float *x, float *y);
  /* dx (+)= scatter-add of dy (repeated order entries add up). */
  csal3d_status (*patch_merge_bwd)(struct c3_engine *e, const c3_merge_desc *d,
                                   const float *dy, float *dx, int accum);
  /* y[b, c, r] (+)= x[b, r, c] for x [batch, rows, cols]: NDHWC <-> NCDHW with
   * rows = D*H*W, cols = C (and back with rows/cols exchanged). */
  csal3d_status (*transpose)(struct c3_engine *e, int64_t batch, int64_t rows,
                             int64_t cols, const float *x, float *y, int accum);
  /* See c3_permute3d_desc; y (+)= permuted x. */
  csal3d_status (*permute3d)(struct c3_engine *e, const c3_permute3d_desc *d,
                             const float *x, float *y, int accum);

  /* ================= reductions ================= */
  /* y[o, i] (+)= alpha * sum_m x[o, m, i] for x [outer, mid, inner].
   * Spatial mean of token-major [N, T, C]: (N, T, C, 1/T); bias grads: (1, rows, C, 1). */
  csal3d_status (*reduce_sum)(struct c3_engine *e, int64_t outer, int64_t mid,
                              int64_t inner, float alpha, const float *x, float *y,
                              int accum);
  /* y[o, m, i] (+)= alpha * x[o, i]: the adjoint of reduce_sum (and a bias add with
   * outer 1, accum 1). */
  csal3d_status (*broadcast)(struct c3_engine *e, int64_t outer, int64_t mid,
                             int64_t inner, float alpha, const float *x, float *y,
                             int accum);
  /* Host scalars, accumulated in double in fixed blocks (independent of threads):
   * *out = sum x; *out = sum x*y (sumsq: y == x; the global gradient norm is
   * sqrt of sum_tensors dot(g, g)). */
  csal3d_status (*sum)(struct c3_engine *e, int64_t n, const float *x, double *out);
  csal3d_status (*dot)(struct c3_engine *e, int64_t n, const float *x, const float *y,
                       double *out);

  /* ================= elementwise (all may alias) ================= */
  /* z = x + y */
  csal3d_status (*add)(struct c3_engine *e, int64_t n, const float *x, const float *y,
                       float *z);
  /* z = x * y */
  csal3d_status (*mul)(struct c3_engine *e, int64_t n, const float *x, const float *y,
                       float *z);
  /* y = a * x + b * y  (b = 0: y's old content ignored). scale: x = a * x. */
  csal3d_status (*axpby)(struct c3_engine *e, int64_t n, float a, const float *x, float b,
                         float *y);
  csal3d_status (*scale)(struct c3_engine *e, int64_t n, float a, float *x);

  /* ================= losses ================= */
  /* Every loss writes its value to *loss (host, double) and, when the gradient pointer
   * is non-NULL, gradient (+)= grad_scale * dloss/dinput (grad_scale: the loss weight
   * times the upstream gradient, usually its weight / observations). */
  /* loss = sum_i w_i (x_i - t_i)^2 / W, W = sum_i w_i (w NULL: w_i = 1, W = n; W = 0
   * gives loss 0 and zero gradient). dx for x, dt for t (either NULL). */
  csal3d_status (*mse_loss)(struct c3_engine *e, int64_t n, const float *x, const float *t,
                            const float *w, float grad_scale, float *dx, float *dt,
                            int accum, double *loss);
  /* loss = mean over rows of -log softmax(logits[r])[labels[r]], logits [rows, classes],
   * labels int32 [rows] in [0, classes). dlogits = grad_scale (softmax - onehot)/rows. */
  csal3d_status (*cross_entropy)(struct c3_engine *e, int64_t rows, int64_t classes,
                                 const float *logits, const int32_t *labels,
                                 float grad_scale, float *dlogits, int accum, double *loss);
  /* loss = mean |x - y|; dx = grad_scale sign(x - y)/n, dy = -dx (sign(0) = 0). */
  csal3d_status (*l1_loss)(struct c3_engine *e, int64_t n, const float *x, const float *y,
                           float grad_scale, float *dx, float *dy, int accum, double *loss);

  /* ================= optimiser ================= */
  /* One AdamW step over n elements (see c3_adamw_desc). */
  csal3d_status (*adamw)(struct c3_engine *e, const c3_adamw_desc *d, int64_t n,
                         float *param, const float *grad, float *m, float *v);

  /* ================= segmentation (the U-Net trainer) =================
   * Appended last so that the layout before them stays what plugins built earlier
   * fill; the CUDA engine leaves them NULL (no device to test them on yet). */
  /* Channel block copy (skip-connection concatenation and its adjoint): for x
   * [outer, x_ch, inner] and y [outer, y_ch, inner],
   *   y[o, y_off + c, i] (+)= x[o, x_off + c, i]   for c in [0, count).
   * NDHWC tensors: outer = N*D*H*W, inner = 1; NCDHW: outer = N, inner = D*H*W. The
   * adjoint is the same op with x and y exchanged (accum 1). Channels of y outside
   * [y_off, y_off + count) are not touched. */
  csal3d_status (*channel_copy)(struct c3_engine *e, int64_t outer, int64_t inner,
                                int64_t count, int64_t x_ch, int64_t x_off,
                                const float *x, int64_t y_ch, int64_t y_off, float *y,
                                int accum);
  /* See c3_segloss_desc. *loss = the weighted sum; ce and dice (either NULL) receive
   * CE and the soft Dice. dlogits (NULL: none) (+)= grad_scale * dloss/dlogits. */
  csal3d_status (*seg_loss)(struct c3_engine *e, const c3_segloss_desc *d,
                            const float *logits, const int32_t *labels, float grad_scale,
                            float *dlogits, int accum, double *loss, double *ce,
                            double *dice);

} c3_engine;

/* Opens the engine for `device` (CPU or CUDA; AUTO tries CUDA, then CPU).
 * CUDA failures give CSAL3D_ERR_DEVICE_UNAVAILABLE with the reason. */
csal3d_status c3_engine_open(csal3d_device device, int device_index,
                             c3_engine **out);

/* Releases an engine (and unloads its plugin); accepts NULL. */
void c3_engine_close(c3_engine *engine);

/* Fills the CPU engine's table and state (lib/engine/cpu). */
csal3d_status c3_cpu_engine_init(c3_engine *engine);

#ifdef __cplusplus
}
#endif

#endif
