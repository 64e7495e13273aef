/* Benchmark of the segmentation U-Net's training (make bench), next to PyTorch training
 * the same network the same way on the same machine and threads
 * (tests/bench_unet_torch.py, when /usr/bin/python3 has torch): a hippocampus-sized run,
 * batch 4 of whole volumes padded to 48x64x48, one channel, 3 classes, 5 stages of
 * 16..256 channels; each iteration is what csal3d_evaluate's trainer does (upload the
 * batch, forward, CE + soft Dice, backward, AdamW with clipping). Prints seconds per
 * iteration (the mean over the timed iterations after warm-up) of both, and the ratio.
 *
 * Environment: CSAL3D_BENCH_ITERS (timed iterations, default 24), CSAL3D_BENCH_WARMUP
 * (default 2), CSAL3D_BENCH_THREADS (default: every core), CSAL3D_BENCH_TORCH=0 (skip
 * PyTorch), CSAL3D_BENCH_TORCH_FORMATS (default "ncdhw,channels_last_3d": PyTorch's
 * memory formats to time; the faster counts), CSAL3D_BENCH_PROFILE=1 (a per-op time
 * table of ours). The machine may be shared: run it twice and keep the better of each. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/threads.h"
#include "engine/engine.h"
#include "model/unet.h"
#include "bench_util.h"

enum { B = 4, D = 48, H = 64, W = 48, CLASSES = 3 };

/* ---- optional per-op profile: the ops the U-Net calls, wrapped with timers ---- */
static c3_engine orig;
enum { P_CONV_F, P_CONV_BD, P_CONV_BW, P_IN_F, P_IN_B, P_CCOPY, P_BCAST, P_RED, P_LOSS,
       P_ADAMW, P_DOT, P_ZERO, P_N };
static const char *pname[P_N] = {"conv3d_fwd", "conv3d_bwd_data", "conv3d_bwd_weights",
                                 "inorm_lrelu_fwd", "inorm_lrelu_bwd", "channel_copy",
                                 "broadcast", "reduce_sum", "seg_loss", "adamw", "dot", "zero"};
static double ptime[P_N];
static long pcount[P_N];
#define TIMED(idx, call)                                                                   \
  do {                                                                                     \
    double t0_ = now();                                                                    \
    csal3d_status s_ = call;                                                               \
    ptime[idx] += now() - t0_;                                                             \
    pcount[idx]++;                                                                         \
    return s_;                                                                             \
  } while (0)
static csal3d_status p_conv_f(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                              const float *w, const float *b, float *y) {
  TIMED(P_CONV_F, orig.conv3d_fwd(e, d, x, w, b, y));
}
static csal3d_status p_conv_bd(c3_engine *e, const c3_conv3d_desc *d, const float *dy,
                               const float *w, float *dx, int a) {
  TIMED(P_CONV_BD, orig.conv3d_bwd_data(e, d, dy, w, dx, a));
}
static csal3d_status p_conv_bw(c3_engine *e, const c3_conv3d_desc *d, const float *x,
                               const float *dy, float *dw, float *db) {
  TIMED(P_CONV_BW, orig.conv3d_bwd_weights(e, d, x, dy, dw, db));
}
static csal3d_status p_in_f(c3_engine *e, const c3_inorm_desc *d, const float *x, float *y,
                            float *m, float *v) {
  TIMED(P_IN_F, orig.inorm_lrelu_fwd(e, d, x, y, m, v));
}
static csal3d_status p_in_b(c3_engine *e, const c3_inorm_desc *d, const float *x,
                            const float *m, const float *v, const float *dy, float *dx, int a) {
  TIMED(P_IN_B, orig.inorm_lrelu_bwd(e, d, x, m, v, dy, dx, a));
}
static csal3d_status p_ccopy(c3_engine *e, int64_t rows, int64_t groups, int64_t len,
                             int64_t src_stride, int64_t src_off, const float *src,
                             int64_t dst_stride, int64_t dst_off, float *dst, int a) {
  TIMED(P_CCOPY, orig.channel_copy(e, rows, groups, len, src_stride, src_off, src, dst_stride,
                                   dst_off, dst, a));
}
static csal3d_status p_bcast(c3_engine *e, int64_t o, int64_t m, int64_t i, float al,
                             const float *x, float *y, int a) {
  TIMED(P_BCAST, orig.broadcast(e, o, m, i, al, x, y, a));
}
static csal3d_status p_red(c3_engine *e, int64_t o, int64_t m, int64_t i, float al,
                           const float *x, float *y, int a) {
  TIMED(P_RED, orig.reduce_sum(e, o, m, i, al, x, y, a));
}
static csal3d_status p_loss(c3_engine *e, const c3_segloss_desc *d, const float *l,
                            const int32_t *y, float g, float *dl, int a, double *loss,
                            double *ce, double *dice) {
  TIMED(P_LOSS, orig.seg_loss(e, d, l, y, g, dl, a, loss, ce, dice));
}
static csal3d_status p_adamw(c3_engine *e, const c3_adamw_desc *d, int64_t n, float *p,
                             const float *g, float *m, float *v) {
  TIMED(P_ADAMW, orig.adamw(e, d, n, p, g, m, v));
}
static csal3d_status p_dot(c3_engine *e, int64_t n, const float *x, const float *y, double *o) {
  TIMED(P_DOT, orig.dot(e, n, x, y, o));
}
static csal3d_status p_zero(c3_engine *e, void *p, size_t b) { TIMED(P_ZERO, orig.zero(e, p, b)); }

static void profile_install(c3_engine *e) {
  orig = *e;
  e->conv3d_fwd = p_conv_f, e->conv3d_bwd_data = p_conv_bd, e->conv3d_bwd_weights = p_conv_bw;
  e->inorm_lrelu_fwd = p_in_f, e->inorm_lrelu_bwd = p_in_b, e->channel_copy = p_ccopy;
  e->broadcast = p_bcast, e->reduce_sum = p_red, e->seg_loss = p_loss, e->adamw = p_adamw;
  e->dot = p_dot, e->zero = p_zero;
}

static void profile_report(int iters, double total) {
  double ops = 0;
  for (int i = 0; i < P_N; i++) ops += ptime[i];
  printf("  per-op time per iteration (ops %.3f s of %.3f s):\n", ops / iters, total / iters);
  for (int i = 0; i < P_N; i++)
    if (pcount[i])
      printf("    %-20s %8.4f s %5.1f%%  %5.0f calls\n", pname[i], ptime[i] / iters,
             100 * ptime[i] / total, (double)pcount[i] / iters);
}

/* The batch: intensities with some structure, two ellipsoids of labels 1 and 2 in each
 * volume's middle (a hippocampus-like foreground). */
static void make_batch(float *x, int32_t *y) {
  for (int b = 0; b < B; b++)
    for (int z = 0; z < D; z++)
      for (int q = 0; q < H; q++)
        for (int w = 0; w < W; w++) {
          size_t i = (((size_t)b * D + z) * H + q) * W + w;
          double dz = (z - D / 2.0) / 8, dq = (q - H / 2.0 - 4 * b) / 14, dw = (w - W / 2.0) / 9;
          double r = dz * dz + dq * dq + dw * dw;
          int l = r < 1 ? (dq < 0 ? 1 : 2) : 0;
          y[i] = l;
          x[i] = (float)(l * 0.8 + 0.3 * sin(0.37 * z + 0.11 * q * w) +
                         0.2 * (double)((i * 2654435761u) % 1000) / 1000.0);
        }
}

int main(void) {
  const int iters = env_int("CSAL3D_BENCH_ITERS", 24), warm = env_int("CSAL3D_BENCH_WARMUP", 2);
  const int threads = env_int("CSAL3D_BENCH_THREADS", c3_threads_available());
  c3_threads_enter(threads);
  c3_engine *e;
  if (c3_engine_open(CSAL3D_DEVICE_CPU, 0, &e) != CSAL3D_OK) {
    fprintf(stderr, "bench_unet: %s\n", csal3d_last_error());
    return 1;
  }
  int profile = getenv("CSAL3D_BENCH_PROFILE") != NULL;
  if (profile) profile_install(e);
  c3_unet_config cfg;
  c3_unet_config_default(&cfg, 1, CLASSES);
  c3_unet *u;
  const int64_t P = (int64_t)D * H * W, dhw[3] = {D, H, W};
  float *xh = malloc(sizeof(float) * B * P), *x, *dl;
  int32_t *yh = malloc(sizeof(int32_t) * B * P), *y;
  if (!xh || !yh || c3_unet_create(e, &cfg, &u) != CSAL3D_OK || c3_unet_init(u, 1) != CSAL3D_OK ||
      e->alloc(e, sizeof(float) * B * P, "x", (void **)&x) != CSAL3D_OK ||
      e->alloc(e, sizeof(int32_t) * B * P, "y", (void **)&y) != CSAL3D_OK ||
      e->alloc(e, sizeof(float) * B * P * CLASSES, "dl", (void **)&dl) != CSAL3D_OK) {
    fprintf(stderr, "bench_unet: %s\n", csal3d_last_error());
    return 1;
  }
  make_batch(xh, yh);
  size_t params = 0;
  for (size_t i = 0; i < u->nparams; i++) params += u->params[i].numel;
  printf("U-Net training (nnU-Net plain U-Net, 5 stages 16..256, %zu parameters), batch %d of "
         "%dx%dx%d, %d classes, CPU, %d threads\n", params, B, D, H, W, CLASSES, threads);
  const c3_segloss_desc ld = {B * P, CLASSES, 1, 1e-5f, 1.0f, 1.0f};
  double t0 = 0, first_loss = 0, loss = 0;
  for (int it = 0; it < warm + iters; it++) {
    if (it == warm) {
      t0 = now();
      memset(ptime, 0, sizeof ptime);
      memset(pcount, 0, sizeof pcount);
    }
    double ce, dice, norm;
    double lr = 1e-2 * pow(1.0 - (double)it / (warm + iters), 0.9);
    csal3d_status s = e->upload(e, x, xh, sizeof(float) * B * P);
    if (s == CSAL3D_OK) s = e->upload(e, y, yh, sizeof(int32_t) * B * P);
    if (s == CSAL3D_OK) s = c3_unet_zero_grad(u);
    if (s == CSAL3D_OK) s = c3_unet_forward(u, x, B, dhw, 1);
    if (s == CSAL3D_OK) s = e->seg_loss(e, &ld, c3_unet_logits(u), y, 1.0f, dl, 0, &loss, &ce, &dice);
    if (s == CSAL3D_OK) s = c3_unet_backward(u, x, dl, NULL);
    if (s == CSAL3D_OK) s = c3_unet_adamw_step(u, lr, 3e-5, 12.0, &norm);
    if (s != CSAL3D_OK) {
      fprintf(stderr, "bench_unet: iteration %d: %s\n", it, csal3d_last_error());
      return 1;
    }
    if (it == 0) first_loss = loss;
  }
  double ours = (now() - t0) / iters;
  printf("%-34s %8.3f s/iteration (%d iterations after %d warm-up; loss %.3f -> %.3f; "
         "workspace %.2f GiB)\n", "libcsal3d", ours, iters, warm, first_loss, loss,
         (double)c3_unet_workspace_bytes(u) / (1 << 30));
  if (profile) profile_report(iters, ours * iters);
  c3_unet_free(u);
  e->free(e, x);
  e->free(e, y);
  e->free(e, dl);
  c3_engine_close(e);
  free(xh);
  free(yh);
  if (!env_int("CSAL3D_BENCH_TORCH", 1)) return 0;
  const char *formats = getenv("CSAL3D_BENCH_TORCH_FORMATS");
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "/usr/bin/python3 -c 'import torch' 2>/dev/null && /usr/bin/python3 "
           "tests/bench_unet_torch.py --threads %d --iterations %d --warmup %d --formats %s",
           threads, iters, warm, formats && *formats ? formats : "ncdhw,channels_last_3d");
  FILE *p = popen(cmd, "r");
  char line[512];
  double best = 0;
  while (p && fgets(line, sizeof line, p)) {
    char fmt[64];
    double t;
    if (sscanf(line, "torch %63s %lf", fmt, &t) == 2) {
      char what[96];
      snprintf(what, sizeof what, "PyTorch %s (%s)", "1.13", fmt);
      printf("%-34s %8.3f s/iteration\n", what, t);
      if (best == 0 || t < best) best = t;
    } else {
      fputs(line, stdout);
    }
  }
  if (p) pclose(p);
  if (best > 0)
    printf("%-34s %8.2fx (PyTorch's faster memory format / libcsal3d)\n", "speed-up", best / ours);
  else
    printf("%-34s SKIP: /usr/bin/python3 has no torch (apt-get install python3-torch)\n",
           "PyTorch");
  return 0;
}
