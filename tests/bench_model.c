/* Benchmark of the SSL model on the CPU engine (make bench): forward, and a training
 * step (forward + backward + AdamW), one observation, embed_dim 48, at 64^3 and
 * 128^3 (override: CSAL3D_BENCH_SIDES="64,128", CSAL3D_BENCH_EMBED=48,
 * CSAL3D_BENCH_REPS=3, CSAL3D_BENCH_MODES=0123: 0 forward, 1 step, 2 step with
 * recomputed attention, 3 one SSL step of one crop (lib/model/ssl.c: its 9
 * observations one at a time, as many of them kept in workspace slots as the library's
 * memory rule allows; CSAL3D_BENCH_SLOT_BUDGET=1 forces the recompute path), after a
 * warm-up step, run once; CSAL3D_BENCH_PROFILE=1 adds a per-op time table, wall and
 * process CPU seconds).
 * Prints time (best of the repetitions after a warm-up),
 * GFLOP/s (forward: the multiply-adds of convolutions, linear layers and attention
 * products x 2; a step counts 3x the forward) and the engine's peak memory per
 * observation, with and without stored attention probabilities. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/model_internal.h"
#include "model/optim.h"
#include "model/ssl.h"
#include "bench_util.h"

/* Forward multiply-adds of one observation of side s (cubic). */
static double forward_macs(const c3_model_config *c, int64_t s) {
  double C = c->embed_dim, macs = 0;
  double side = (double)s / 2, T = side * side * side;
  macs += T * C * c->in_channels * 8; /* patch embed */
  for (int st = 0; st < 4; st++) {
    double ch = C * (1 << st);
    int64_t sd = (int64_t)side;
    int64_t w = sd <= c->window ? sd : c->window;
    int64_t nw = (sd + w - 1) / w;
    double padT = (double)(nw * w) * (double)(nw * w) * (double)(nw * w);
    double n = (double)(w * w * w);
    double blk = padT * ch * 3 * ch       /* qkv */
                 + padT * n * ch * 2      /* q k^T and P v */
                 + padT * ch * ch         /* proj */
                 + T * ch * ch * c->mlp_ratio * 2; /* mlp */
    macs += blk * c->depths[st];
    T /= 8;
    side /= 2;
    macs += T * 8 * ch * 2 * ch; /* reduction */
  }
  double ch[6] = {16 * C, 8 * C, 4 * C, 2 * C, C, C};
  double vox = (double)(s / 32) * (s / 32) * (s / 32);
  for (int l = 0; l < 5; l++) {
    macs += vox * ch[l] * ch[l + 1] * 27;
    vox *= 8;
  }
  macs += vox * C * c->in_channels;
  return macs;
}

/* ---- optional per-op profile (CSAL3D_BENCH_PROFILE=1): the engine's table is
 * wrapped with timers, so the table shows where a step spends its time. ---- */
static c3_engine orig;
enum { P_CONV_F, P_CONV_BD, P_CONV_BW, P_MATMUL, P_LN_F, P_LN_B, P_GELU_F, P_GELU_B,
       P_IN_F, P_IN_B, P_UP_F, P_UP_B, P_ATT_F, P_ATT_B, P_WPART, P_WMERGE, P_PM_F, P_PM_B,
       P_RED, P_BCAST, P_COPY, P_ADAMW, P_DOT, P_ZERO, P_N };
static const char *pname[P_N] = {"conv3d_fwd", "conv3d_bwd_data", "conv3d_bwd_weights",
  "matmul", "layer_norm_fwd", "layer_norm_bwd", "gelu_fwd", "gelu_bwd", "inorm_lrelu_fwd",
  "inorm_lrelu_bwd", "upsample2x_fwd", "upsample2x_bwd", "attn_fwd", "attn_bwd",
  "window_partition", "window_merge", "patch_merge_fwd", "patch_merge_bwd", "reduce_sum",
  "broadcast", "copy", "adamw", "dot", "zero"};
static double ptime[P_N], pcpu[P_N];
static long pcount[P_N];
#define WRAP(idx, field, params, args)                                               \
  static csal3d_status w_##field params {                                            \
    double t0 = now(), c0 = cpu_now();                                               \
    csal3d_status s_ = orig.field args;                                              \
    ptime[idx] += now() - t0;                                                        \
    pcpu[idx] += cpu_now() - c0;                                                     \
    pcount[idx]++;                                                                   \
    return s_;                                                                       \
  }
WRAP(P_CONV_F, conv3d_fwd, (c3_engine *e, const c3_conv3d_desc *d, const float *x, const float *w, const float *b, float *y), (e, d, x, w, b, y))
WRAP(P_CONV_BD, conv3d_bwd_data, (c3_engine *e, const c3_conv3d_desc *d, const float *dy, const float *w, float *dx, int a), (e, d, dy, w, dx, a))
WRAP(P_CONV_BW, conv3d_bwd_weights, (c3_engine *e, const c3_conv3d_desc *d, const float *x, const float *dy, float *dw, float *db), (e, d, x, dy, dw, db))
WRAP(P_MATMUL, matmul, (c3_engine *e, const c3_matmul_desc *d, const float *a, const float *b, const float *bias, float *c), (e, d, a, b, bias, c))
WRAP(P_LN_F, layer_norm_fwd, (c3_engine *e, int64_t r, int64_t c, float eps, const float *x, const float *g, const float *b, float *y, float *m, float *v), (e, r, c, eps, x, g, b, y, m, v))
WRAP(P_LN_B, layer_norm_bwd, (c3_engine *e, int64_t r, int64_t c, float eps, const float *x, const float *g, const float *m, const float *v, const float *dy, float *dx, int a, float *dg, float *db), (e, r, c, eps, x, g, m, v, dy, dx, a, dg, db))
WRAP(P_GELU_F, gelu_fwd, (c3_engine *e, int64_t n, const float *x, float *y), (e, n, x, y))
WRAP(P_GELU_B, gelu_bwd, (c3_engine *e, int64_t n, const float *x, const float *dy, float *dx, int a), (e, n, x, dy, dx, a))
WRAP(P_IN_F, inorm_lrelu_fwd, (c3_engine *e, const c3_inorm_desc *d, const float *x, float *y, float *m, float *v), (e, d, x, y, m, v))
WRAP(P_IN_B, inorm_lrelu_bwd, (c3_engine *e, const c3_inorm_desc *d, const float *x, const float *m, const float *v, const float *dy, float *dx, int a), (e, d, x, m, v, dy, dx, a))
WRAP(P_UP_F, upsample2x_fwd, (c3_engine *e, const c3_upsample_desc *d, const float *x, float *y), (e, d, x, y))
WRAP(P_UP_B, upsample2x_bwd, (c3_engine *e, const c3_upsample_desc *d, const float *dy, float *dx, int a), (e, d, dy, dx, a))
WRAP(P_ATT_F, attn_fwd, (c3_engine *e, const c3_attn_desc *d, const float *qkv, const float *t, const int32_t *r, float *o, float *p), (e, d, qkv, t, r, o, p))
WRAP(P_ATT_B, attn_bwd, (c3_engine *e, const c3_attn_desc *d, const float *qkv, const float *t, const int32_t *r, const float *p, const float *dout, float *dqkv, int a, float *dt), (e, d, qkv, t, r, p, dout, dqkv, a, dt))
WRAP(P_WPART, window_partition, (c3_engine *e, const c3_window_desc *d, const float *x, float *xw, int a), (e, d, x, xw, a))
WRAP(P_WMERGE, window_merge, (c3_engine *e, const c3_window_desc *d, const float *xw, float *x, int a), (e, d, xw, x, a))
WRAP(P_PM_F, patch_merge_fwd, (c3_engine *e, const c3_merge_desc *d, const float *x, float *y), (e, d, x, y))
WRAP(P_PM_B, patch_merge_bwd, (c3_engine *e, const c3_merge_desc *d, const float *dy, float *dx, int a), (e, d, dy, dx, a))
WRAP(P_RED, reduce_sum, (c3_engine *e, int64_t o, int64_t m, int64_t i, float al, const float *x, float *y, int a), (e, o, m, i, al, x, y, a))
WRAP(P_BCAST, broadcast, (c3_engine *e, int64_t o, int64_t m, int64_t i, float al, const float *x, float *y, int a), (e, o, m, i, al, x, y, a))
WRAP(P_COPY, copy, (c3_engine *e, void *d, const void *s, size_t b), (e, d, s, b))
WRAP(P_ADAMW, adamw, (c3_engine *e, const c3_adamw_desc *d, int64_t n, float *p, const float *g, float *m, float *v), (e, d, n, p, g, m, v))
WRAP(P_DOT, dot, (c3_engine *e, int64_t n, const float *x, const float *y, double *o), (e, n, x, y, o))
WRAP(P_ZERO, zero, (c3_engine *e, void *p, size_t b), (e, p, b))

static void profile_install(c3_engine *e) {
  orig = *e;
  e->conv3d_fwd = w_conv3d_fwd, e->conv3d_bwd_data = w_conv3d_bwd_data;
  e->conv3d_bwd_weights = w_conv3d_bwd_weights, e->matmul = w_matmul;
  e->layer_norm_fwd = w_layer_norm_fwd, e->layer_norm_bwd = w_layer_norm_bwd;
  e->gelu_fwd = w_gelu_fwd, e->gelu_bwd = w_gelu_bwd;
  e->inorm_lrelu_fwd = w_inorm_lrelu_fwd, e->inorm_lrelu_bwd = w_inorm_lrelu_bwd;
  e->upsample2x_fwd = w_upsample2x_fwd, e->upsample2x_bwd = w_upsample2x_bwd;
  e->attn_fwd = w_attn_fwd, e->attn_bwd = w_attn_bwd;
  e->window_partition = w_window_partition, e->window_merge = w_window_merge;
  e->patch_merge_fwd = w_patch_merge_fwd, e->patch_merge_bwd = w_patch_merge_bwd;
  e->reduce_sum = w_reduce_sum, e->broadcast = w_broadcast, e->copy = w_copy;
  e->adamw = w_adamw, e->dot = w_dot, e->zero = w_zero;
}

static void profile_report(const char *title) {
  double total = 0, total_cpu = 0;
  for (int i = 0; i < P_N; i++) total += ptime[i], total_cpu += pcpu[i];
  printf("  per-op time, %s (total %.3f s wall, %.3f s CPU):\n", title, total, total_cpu);
  for (int i = 0; i < P_N; i++)
    if (pcount[i])
      printf("    %-20s %8.3f s %5.1f%% %8.3f s CPU %5.1f%%  %5ld calls\n", pname[i],
             ptime[i], 100 * ptime[i] / total, pcpu[i], 100 * pcpu[i] / total_cpu, pcount[i]);
  memset(ptime, 0, sizeof ptime);
  memset(pcpu, 0, sizeof pcpu);
  memset(pcount, 0, sizeof pcount);
}

/* Mode 3's loss: a fixed gradient on every reconstruction and logit (what matters
 * here is memory and time, not the value). */
int main(void) {
  const char *sides_env = getenv("CSAL3D_BENCH_SIDES");
  const char *embed_env = getenv("CSAL3D_BENCH_EMBED");
  const char *reps_env = getenv("CSAL3D_BENCH_REPS");
  int embed = embed_env ? atoi(embed_env) : 48, reps = reps_env ? atoi(reps_env) : 3;
  int64_t sides[8];
  int nsides = 0;
  char buf[128];
  snprintf(buf, sizeof buf, "%s", sides_env ? sides_env : "64,128");
  for (char *t = strtok(buf, ","); t && nsides < 8; t = strtok(NULL, ",")) sides[nsides++] = atoll(t);
  c3_engine *e;
  if (c3_engine_open(CSAL3D_DEVICE_CPU, 0, &e) != CSAL3D_OK) {
    fprintf(stderr, "bench_model: %s\n", csal3d_last_error());
    return 1;
  }
  int profile = getenv("CSAL3D_BENCH_PROFILE") != NULL;
  if (profile) profile_install(e);
  c3_model_config cfg;
  c3_model_config_default(&cfg, embed, 1);
  c3_model *m;
  if (c3_model_create(e, &cfg, &m) != CSAL3D_OK || c3_model_init(m, 1) != CSAL3D_OK) {
    fprintf(stderr, "bench_model: %s\n", csal3d_last_error());
    return 1;
  }
  c3_optim_config oc;
  c3_optim_config_default(&oc, 1000);
  oc.warmup_steps = 0;
  c3_optim *o;
  if (c3_optim_create(m, &oc, &o) != CSAL3D_OK) {
    fprintf(stderr, "bench_model: %s\n", csal3d_last_error());
    return 1;
  }
  printf("SSL model, embed_dim %d (%zu parameters), 1 observation, CPU engine, %d threads\n",
         embed, c3_model_param_total(m), omp_get_max_threads());
  printf("%-7s %-26s %10s %10s %12s %12s\n", "input", "what", "time (s)", "GFLOP/s",
         "peak (GiB)", "CPU time (s)");
  for (int si = 0; si < nsides; si++) {
    int64_t s = sides[si], dhw[3] = {s, s, s};
    size_t vox = (size_t)(s * s * s);
    float *x, *dr, *dl;
    float *h = malloc(vox * sizeof(float));
    for (size_t i = 0; i < vox; i++) h[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    if (e->alloc(e, vox * 4, "x", (void **)&x) != CSAL3D_OK ||
        e->alloc(e, vox * 4, "d_recon", (void **)&dr) != CSAL3D_OK ||
        e->alloc(e, 16, "d_logits", (void **)&dl) != CSAL3D_OK) {
      fprintf(stderr, "bench_model: %s\n", csal3d_last_error());
      return 1;
    }
    e->upload(e, x, h, vox * 4);
    for (size_t i = 0; i < vox; i++) h[i] *= 1e-6f;
    e->upload(e, dr, h, vox * 4);
    float hl[4] = {0.1f, -0.1f, 0.05f, -0.05f};
    e->upload(e, dl, hl, 16);
    for (size_t i = 0; i < vox; i++) h[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    double gflop = 2 * forward_macs(&cfg, s) * 1e-9;
    const char *modes = getenv("CSAL3D_BENCH_MODES"); /* e.g. "1" or "012" */
    for (int mode = 0; mode < 4; mode++) {
      if (modes && !strchr(modes, '0' + mode)) continue;
      /* 0: inference forward; 1: train step, attention stored; 2: recomputed. */
      m->recompute_attention = mode == 2;
      c3_model_plan_free(m); /* measure each mode's own peak */
      double best = INFINITY, best_cpu = INFINITY;
      size_t in_use, peak;
      csal3d_status st = CSAL3D_OK;
      e->reset_peak(e);
      /* mode 3: one SSL step of one crop, its 9 observations one at a time */
      c3_ssl_work w;
      c3_ssl_work_init(&w, m);
      const char *budget = getenv("CSAL3D_BENCH_SLOT_BUDGET");
      if (budget) w.slot_budget = (size_t)strtoull(budget, NULL, 10);
      c3_ssl_loss_config lc;
      c3_ssl_loss_config_default(&lc);
      for (int r = 0; r <= (mode == 3 ? 1 : reps) && st == CSAL3D_OK; r++) {
        double t0 = now(), c0 = cpu_now();
        if (mode == 3) {
          c3_ssl_terms terms;
          st = c3_ssl_train_step(&w, o, &lc, 1, h, 1, dhw, NULL, &terms);
        } else if (mode == 0) {
          st = c3_model_forward(m, x, 1, dhw, 0);
        } else {
          st = c3_model_zero_grad(m);
          if (st == CSAL3D_OK) st = c3_model_forward(m, x, 1, dhw, 1);
          if (st == CSAL3D_OK) st = c3_model_backward(m, x, dr, dl, NULL);
          if (st == CSAL3D_OK) st = c3_optim_step(o);
        }
        e->synchronize(e);
        double t = now() - t0, tc = cpu_now() - c0;
        if (r > 0 && t < best) best = t; /* r = 0 is the warm-up */
        if (r > 0 && tc < best_cpu) best_cpu = tc;
        if (profile && r == 0) {
          memset(ptime, 0, sizeof ptime);
          memset(pcount, 0, sizeof pcount);
          memset(pcpu, 0, sizeof pcpu);
        }
      }
      int slots = w.slots;
      c3_ssl_work_free(&w);
      if (st != CSAL3D_OK) {
        printf("%-7lld %-26s failed: %s\n", (long long)s,
               mode == 0 ? "forward" : "train step", csal3d_last_error());
        continue;
      }
      e->memory_stats(e, &in_use, &peak);
      char ssl_what[40];
      snprintf(ssl_what, sizeof ssl_what, "SSL step, %d slot%s", slots, slots == 1 ? "" : "s");
      const char *what = mode == 0   ? "forward (inference)"
                         : mode == 1 ? "fwd+bwd+AdamW"
                         : mode == 2 ? "fwd+bwd+AdamW, recompute"
                                     : ssl_what;
      /* the SSL step: 9 forwards and 9 backwards (~2 each; forwards recomputed for
       * observations without a slot not counted) */
      double fl = mode == 0 ? gflop : mode == 3 ? 27 * gflop : 3 * gflop;
      char side[16];
      snprintf(side, sizeof side, "%lld^3", (long long)s);
      printf("%-7s %-26s %10.3f %10.1f %12.2f %12.3f\n", side, what, best, fl / best,
             (double)peak / (1 << 30), best_cpu);
      if (profile) profile_report(what);
      fflush(stdout);
    }
    e->free(e, x);
    e->free(e, dr);
    e->free(e, dl);
    free(h);
  }
  printf("peak = the engine's memory high-water mark during the measurement (parameters,\n"
         "gradients, AdamW moments, activations of one observation or of the SSL step's\n"
         "slots, scratch). CPU time =\n"
         "the process's CPU seconds (all threads): on a loaded machine, run with\n"
         "OMP_NUM_THREADS=1 and read it as the single-thread cost.\n");
  c3_optim_free(o);
  c3_model_free(m);
  c3_engine_close(e);
  return 0;
}
