/* Benchmark of the SSL model on the CPU engine (make bench): forward, and a training
 * step (forward + backward + AdamW), one observation, embed_dim 48, at 64^3 and
 * 128^3 (override: CSAL3D_BENCH_SIDES="64,128", CSAL3D_BENCH_EMBED=48,
 * CSAL3D_BENCH_REPS=3). Prints time (best of the repetitions after a warm-up),
 * GFLOP/s (forward: the multiply-adds of convolutions, linear layers and attention
 * products x 2; a step counts 3x the forward) and the engine's peak memory per
 * observation, with and without stored attention probabilities. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/threads.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/optim.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

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
  if (!e->attn_bwd || !e->adamw) {
    printf("bench_model: the CPU engine lacks ops; nothing to measure\n");
    c3_engine_close(e);
    return 0;
  }
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
         embed, c3_model_param_total(m), c3_threads_current());
  printf("%-7s %-26s %10s %10s %12s\n", "input", "what", "time (s)", "GFLOP/s",
         "peak (GiB)");
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
    free(h);
    double gflop = 2 * forward_macs(&cfg, s) * 1e-9;
    for (int mode = 0; mode < 3; mode++) {
      /* 0: inference forward; 1: train step, attention stored; 2: recomputed. */
      m->recompute_attention = mode == 2;
      c3_model_release_workspace(m); /* measure each mode's own peak */
      double best = INFINITY;
      size_t in_use, peak;
      csal3d_status st = CSAL3D_OK;
      e->reset_peak(e);
      for (int r = 0; r <= reps && st == CSAL3D_OK; r++) {
        double t0 = now();
        if (mode == 0) {
          st = c3_model_forward(m, x, 1, dhw, 0);
        } else {
          st = c3_model_zero_grad(m);
          if (st == CSAL3D_OK) st = c3_model_forward(m, x, 1, dhw, 1);
          if (st == CSAL3D_OK) st = c3_model_backward(m, x, dr, dl, NULL);
          if (st == CSAL3D_OK) st = c3_optim_step(o);
        }
        e->synchronize(e);
        double t = now() - t0;
        if (r > 0 && t < best) best = t; /* r = 0 is the warm-up */
      }
      if (st != CSAL3D_OK) {
        printf("%-7lld %-26s failed: %s\n", (long long)s,
               mode == 0 ? "forward" : "train step", csal3d_last_error());
        continue;
      }
      e->memory_stats(e, &in_use, &peak);
      const char *what = mode == 0   ? "forward (inference)"
                         : mode == 1 ? "fwd+bwd+AdamW"
                                     : "fwd+bwd+AdamW, recompute";
      double fl = mode == 0 ? gflop : 3 * gflop;
      char side[16];
      snprintf(side, sizeof side, "%lld^3", (long long)s);
      printf("%-7s %-26s %10.3f %10.1f %12.2f\n", side, what, best, fl / best,
             (double)peak / (1 << 30));
      fflush(stdout);
    }
    e->free(e, x);
    e->free(e, dr);
    e->free(e, dl);
  }
  printf("peak = the engine's memory high-water mark during the measurement (parameters,\n"
         "gradients, AdamW moments, activations of one observation, scratch).\n");
  c3_optim_free(o);
  c3_model_free(m);
  c3_engine_close(e);
  return 0;
}
