/* The CPU engine's ops for the segmentation trainer: the channel block copy of skip
 * connections and the softmax cross-entropy + soft Dice loss.
 *
 * Determinism: the loss sums run over fixed blocks of rows (double partials combined
 * in block order), so they do not depend on the number of threads. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "engine/cpu/cpu.h"

static csal3d_status cpu_channel_copy(c3_engine *e, int64_t outer, int64_t inner,
                                      int64_t count, int64_t x_ch, int64_t x_off,
                                      const float *x, int64_t y_ch, int64_t y_off, float *y,
                                      int accum) {
  C3_CHECK_ARG(outer >= 1 && inner >= 1 && count >= 1 && x && y,
               "channel_copy: bad sizes or NULL tensor");
  C3_CHECK_ARG(x_off >= 0 && x_off + count <= x_ch && y_off >= 0 && y_off + count <= y_ch,
               "channel_copy: channels [%lld, %lld) of %lld into [%lld, %lld) of %lld",
               (long long)x_off, (long long)(x_off + count), (long long)x_ch,
               (long long)y_off, (long long)(y_off + count), (long long)y_ch);
  const int64_t run = count * inner; /* contiguous floats per outer index */
#pragma omp parallel for schedule(static) if (outer * run > 32768)
  for (int64_t o = 0; o < outer; o++) {
    const float *s = x + (o * x_ch + x_off) * inner;
    float *d = y + (o * y_ch + y_off) * inner;
    if (accum) {
#pragma omp simd
      for (int64_t i = 0; i < run; i++) d[i] += s[i];
    } else {
      memcpy(d, s, (size_t)run * sizeof(float));
    }
  }
  return CSAL3D_OK;
}

#define SEG_BLOCK 2048 /* rows per partial sum */
#define SEG_MAX_CLASSES 64

/* p[0..K) = softmax(l[0..K)) in float, with log-sum-exp in double for the CE */
static double softmax_row(const float *l, int64_t K, float *p) {
  float mx = l[0];
  for (int64_t c = 1; c < K; c++) mx = l[c] > mx ? l[c] : mx;
  double z = 0.0;
  for (int64_t c = 0; c < K; c++) {
    double v = exp((double)l[c] - mx);
    p[c] = (float)v;
    z += v;
  }
  float iz = (float)(1.0 / z);
  for (int64_t c = 0; c < K; c++) p[c] *= iz;
  return (double)mx + log(z);
}

static csal3d_status cpu_seg_loss(c3_engine *e, const c3_segloss_desc *d, const float *logits,
                                  const int32_t *labels, float grad_scale, float *dlogits,
                                  int accum, double *loss, double *ce_out, double *dice_out) {
  C3_CHECK_ARG(d && logits && labels && loss, "seg_loss: NULL argument");
  const int64_t R = d->rows, K = d->classes;
  C3_CHECK_ARG(R >= 1 && K >= 2 && K <= SEG_MAX_CLASSES,
               "seg_loss: %lld rows of %lld classes (1 row and 2..%d classes at least/most)",
               (long long)R, (long long)K, SEG_MAX_CLASSES);
  C3_CHECK_ARG(d->first_class >= 0 && d->first_class < K,
               "seg_loss: first_class %d of %lld classes", d->first_class, (long long)K);
  C3_CHECK_ARG(d->smooth >= 0.0f, "seg_loss: smooth must be >= 0");
  const int64_t nb = (R + SEG_BLOCK - 1) / SEG_BLOCK;
  /* per block: CE, then I, P, G per class; then a bad-label flag */
  const int64_t stride = 1 + 3 * K + 1;
  double *part;
  C3_TRY(c3_cpu_scratch(e, C3_SLOT_A4, (size_t)(nb * stride) * sizeof(double), (void **)&part));
#pragma omp parallel for schedule(static) if (nb > 1)
  for (int64_t b = 0; b < nb; b++) {
    double *pp = part + b * stride, *I = pp + 1, *P = I + K, *G = P + K;
    for (int64_t i = 0; i < stride; i++) pp[i] = 0.0;
    float p[SEG_MAX_CLASSES];
    int64_t lo = b * SEG_BLOCK, hi = lo + SEG_BLOCK < R ? lo + SEG_BLOCK : R;
    for (int64_t r = lo; r < hi; r++) {
      int32_t y = labels[r];
      if (y < 0 || y >= K) {
        pp[stride - 1] = 1.0;
        continue;
      }
      const float *l = logits + r * K;
      double lse = softmax_row(l, K, p);
      pp[0] += lse - l[y];
      for (int64_t c = 0; c < K; c++) P[c] += p[c];
      I[y] += p[y];
      G[y] += 1.0;
    }
  }
  double ce = 0.0, I[SEG_MAX_CLASSES] = {0}, P[SEG_MAX_CLASSES] = {0}, G[SEG_MAX_CLASSES] = {0};
  for (int64_t b = 0; b < nb; b++) {
    const double *pp = part + b * stride;
    if (pp[stride - 1] != 0.0) {
      for (int64_t r = b * SEG_BLOCK; r < R; r++)
        if (labels[r] < 0 || labels[r] >= K)
          return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                          "seg_loss: label %d of row %lld is outside [0, %lld)", (int)labels[r],
                          (long long)r, (long long)K);
    }
    ce += pp[0];
    for (int64_t c = 0; c < K; c++) {
      I[c] += pp[1 + c];
      P[c] += pp[1 + K + c];
      G[c] += pp[1 + 2 * K + c];
    }
  }
  ce /= (double)R;
  const int64_t nd = K - d->first_class;
  double dice = 0.0;
  /* dL/dp[r, c] = a_c * y[r, c] + b_c (a Dice term per class), with
   * dD_c/dp = (2 y (P+G+s) - (2I+s)) / (P+G+s)^2 */
  float ga[SEG_MAX_CLASSES] = {0}, gb[SEG_MAX_CLASSES] = {0};
  const double s = d->smooth, wd = d->dice_weight;
  for (int64_t c = d->first_class; c < K; c++) {
    double den = P[c] + G[c] + s;
    if (den < 1e-8) den = 1e-8; /* nnU-Net's clip */
    double num = 2.0 * I[c] + s;
    dice += num / den;
    double k = -wd / (double)nd * grad_scale;
    ga[c] = (float)(k * 2.0 / den);
    gb[c] = (float)(-k * num / (den * den));
  }
  dice /= (double)nd;
  *loss = d->ce_weight * ce + wd * (1.0 - dice);
  if (ce_out) *ce_out = ce;
  if (dice_out) *dice_out = dice;
  if (!dlogits) return CSAL3D_OK;
  const float kce = (float)(d->ce_weight * grad_scale / (double)R);
#pragma omp parallel for schedule(static) if (nb > 1)
  for (int64_t b = 0; b < nb; b++) {
    float p[SEG_MAX_CLASSES], g[SEG_MAX_CLASSES];
    int64_t lo = b * SEG_BLOCK, hi = lo + SEG_BLOCK < R ? lo + SEG_BLOCK : R;
    for (int64_t r = lo; r < hi; r++) {
      const float *l = logits + r * K;
      int32_t y = labels[r];
      softmax_row(l, K, p);
      float dot = 0.0f;
      for (int64_t c = 0; c < K; c++) {
        g[c] = gb[c] + (c == y ? ga[c] : 0.0f); /* dL_dice/dp */
        dot += g[c] * p[c];
      }
      float *o = dlogits + r * K;
      for (int64_t c = 0; c < K; c++) {
        float v = p[c] * (g[c] - dot) + kce * (p[c] - (c == y ? 1.0f : 0.0f));
        o[c] = accum ? o[c] + v : v;
      }
    }
  }
  return CSAL3D_OK;
}

void c3_cpu_fill_seg_ops(c3_engine *e) {
  e->channel_copy = cpu_channel_copy;
  e->seg_loss = cpu_seg_loss;
}
