/* Benchmark of the pipeline stages on the CPU (make bench), through the public API:
 *   1. uncertainty of one 128^3 window (embed_dim 48): the clean pass for the feature
 *      and the 9 observations, i.e. 10 forwards in evaluation mode;
 *   2. one hippocampus volume (the first case of CSAL3D_DATA_DIR/msd_hippocampus,
 *      default ../shared/data; a random 36 x 50 x 35 volume when absent): load +
 *      MRI normalisation + score, with 128^3 windows (the default, the volume is padded
 *      to one window) and with 64^3 windows;
 *   3. pretraining steps at small sizes (embed_dim 12 at test_ssl's 32 x 32 x 64 and at
 *      64^3; embed_dim 48 at 64^3 batch 1, with the slots the library chooses and with
 *      one slot, the recompute fallback; lib/model/ssl.h).
 * Prints wall time, CPU time, GFLOP/s (forward multiply-adds of convolutions, linear
 * layers and attention products x 2; a training step counts 9 observations x (a
 * forward + a backward of twice the forward) = 27 forwards per crop, whatever the
 * slots) and peak memory (the engine's high-water mark and the process's maximum RSS).
 * Environment: CSAL3D_BENCH_THREADS (0: all cores), CSAL3D_BENCH_QUICK=1 (skips the
 * embed_dim 48 training steps), CSAL3D_BENCH_ONLY=train (the training steps only) or
 * train48 (the embed_dim 48 steps only),
 * CSAL3D_DATA_DIR. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/context.h"
#include "core/rng.h"
#include "csal3d/csal3d.h"
#include "engine/engine.h"
#include "model/model.h"
#include "model/ssl_internal.h"
#include "volume/windows.h"
#include "bench_util.h"

/* Forward multiply-adds of one observation (sides d, h, w multiples of 32). */
static double forward_macs(int embed, int in_ch, const int64_t dhw[3]) {
  double C = embed, macs = 0;
  double sd[3] = {dhw[0] / 2.0, dhw[1] / 2.0, dhw[2] / 2.0};
  double T = sd[0] * sd[1] * sd[2];
  macs += T * C * in_ch * 8;
  for (int st = 0; st < 4; st++) {
    double ch = C * (1 << st), padT = 1, n = 1;
    for (int a = 0; a < 3; a++) {
      int64_t s = (int64_t)sd[a], w = s <= 7 ? s : 7;
      padT *= (double)(((s + w - 1) / w) * w);
      n *= (double)w;
    }
    double blk = padT * ch * 3 * ch + padT * n * ch * 2 + padT * ch * ch + T * ch * ch * 8;
    macs += 2 * blk;
    T /= 8;
    for (int a = 0; a < 3; a++) sd[a] /= 2;
    macs += T * 8 * ch * 2 * ch;
  }
  double chs[6] = {16 * C, 8 * C, 4 * C, 2 * C, C, C};
  double vox = (double)(dhw[0] / 32) * (double)(dhw[1] / 32) * (double)(dhw[2] / 32);
  for (int l = 0; l < 5; l++) {
    macs += vox * chs[l] * chs[l + 1] * 27;
    vox *= 8;
  }
  macs += vox * C * in_ch;
  return macs;
}

static csal3d_context *ctx;

static void die(const char *what) {
  fprintf(stderr, "bench_pipeline: %s: %s\n", what, csal3d_last_error());
  exit(1);
}

static void reset_peak(void) { ctx->engine->reset_peak(ctx->engine); }

static double engine_peak_gib(void) {
  size_t in_use, peak;
  ctx->engine->memory_stats(ctx->engine, &in_use, &peak);
  return (double)peak / (double)(1 << 30);
}

static void row(const char *what, double wall, double cpu, double gflop, double peak) {
  printf("%-52s %9.2f %9.2f %9.1f %10.2f %9.2f\n", what, wall, cpu,
         gflop > 0 ? gflop / wall : NAN, peak, max_rss_mib() / 1024.0);
}

static csal3d_ssl_model *model(int embed, int64_t crop) {
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  o.embed_dim = embed;
  o.crop_size[0] = o.crop_size[1] = o.crop_size[2] = crop;
  o.batch_size = 1;
  csal3d_ssl_model *h;
  if (csal3d_ssl_model_create(ctx, &o, &h) != CSAL3D_OK) die("model");
  return h;
}

static csal3d_volume *random_volume(int64_t d, int64_t hh, int64_t w) {
  int64_t dims[3] = {d, hh, w};
  size_t n = (size_t)(d * hh * w);
  float *x = malloc(n * 4);
  c3_rng r;
  c3_rng_init(&r, 1, C3_RNG_TEST, 0, 0, 0);
  for (size_t i = 0; i < n; i++) x[i] = (float)c3_rng_uniform(&r);
  csal3d_volume *v;
  if (csal3d_volume_create(1, dims, x, NULL, &v) != CSAL3D_OK) die("volume");
  free(x);
  return v;
}

static csal3d_uncertainty *estimator(csal3d_ssl_model *h, int64_t win) {
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  for (int a = 0; a < 3; a++) uo.window[a] = win, uo.stride[a] = win / 2;
  csal3d_uncertainty *u;
  if (csal3d_uncertainty_create(h, &uo, &u) != CSAL3D_OK) die("estimator");
  return u;
}

static void bench_window(void) {
  csal3d_ssl_model *h = model(48, 128);
  csal3d_volume *v = random_volume(128, 128, 128);
  csal3d_uncertainty *u = estimator(h, 128);
  float feat[256];
  double score;
  /* warm-up on a smaller window (primitive creation for most shapes) is not the
   * same shape: the first 128^3 call is timed separately */
  int64_t dhw[3] = {128, 128, 128};
  double gflop = 10 * 2 * forward_macs(48, 1, dhw) * 1e-9;
  for (int rep = 0; rep < 2; rep++) {
    reset_peak();
    double t = now(), c = cpu_now();
    if (csal3d_uncertainty_score(u, v, NULL, 0, &score, feat, 256) != CSAL3D_OK) die("score");
    row(rep == 0 ? "uncertainty, one 128^3 window, C=48 (first call)"
                 : "uncertainty, one 128^3 window, C=48",
        now() - t, cpu_now() - c, gflop, engine_peak_gib());
  }
  csal3d_uncertainty_free(u);
  csal3d_volume_free(v);
  csal3d_ssl_model_free(h);
}

static void bench_hippocampus(void) {
  const char *dd = getenv("CSAL3D_DATA_DIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/msd_hippocampus/dataset.json",
           dd && *dd ? dd : "../shared/data");
  csal3d_dataset *ds = NULL;
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.modality = CSAL3D_MODALITY_MRI;
  int real = csal3d_dataset_open(path, NULL, &ds) == CSAL3D_OK;
  char id[256] = "synthetic 36x50x35";
  if (real) csal3d_dataset_case_string(ds, 0, "id", id, sizeof id, NULL);
  csal3d_ssl_model *h = model(48, 128);
  const int64_t wins[2] = {128, 64};
  for (int k = 0; k < 2; k++) {
    csal3d_uncertainty *u = estimator(h, wins[k]);
    for (int rep = 0; rep < 2; rep++) {
      reset_peak();
      double t = now(), c = cpu_now();
      csal3d_volume *v;
      if (real) {
        if (csal3d_dataset_load_image(ds, 0, &lo, &v) != CSAL3D_OK) die(path);
      } else {
        v = random_volume(36, 50, 35);
      }
      int64_t sh[4];
      csal3d_volume_shape(v, sh);
      float feat[256];
      double score;
      if (csal3d_uncertainty_score(u, v, NULL, 0, &score, feat, 256) != CSAL3D_OK) die("score");
      c3_window_grid g;
      int64_t wv[3] = {wins[k], wins[k], wins[k]}, st[3] = {wins[k] / 2, wins[k] / 2, wins[k] / 2};
      if (c3_window_grid_init(&g, sh + 1, wv, st) != CSAL3D_OK) die("grid");
      int64_t nw = g.total;
      c3_window_grid_free(&g);
      int64_t dhw[3] = {wins[k], wins[k], wins[k]};
      double gflop = (double)nw * 10 * 2 * forward_macs(48, 1, dhw) * 1e-9;
      char what[128];
      snprintf(what, sizeof what, "hippocampus %s %lldx%lldx%lld, %lld^3 x %lld%s", id,
               (long long)sh[1], (long long)sh[2], (long long)sh[3], (long long)wins[k],
               (long long)nw, rep == 0 ? " (1st)" : "");
      row(what, now() - t, cpu_now() - c, gflop, engine_peak_gib());
      csal3d_volume_free(v);
    }
    csal3d_uncertainty_free(u);
  }
  csal3d_ssl_model_free(h);
  csal3d_dataset_free(ds);
}

/* Pretraining steps of random crops; budget: the SSL work's slot budget (0: the
 * library's rule; 1: one slot, every observation recomputed before its backward). */
static void bench_train(int embed, const int64_t dhw[3], int batch, int steps, size_t budget) {
  csal3d_ssl_model *h = model(embed, dhw[0]);
  h->work.slot_budget = budget;
  size_t n = (size_t)(batch * dhw[0] * dhw[1] * dhw[2]);
  float *x = malloc(n * 4);
  c3_rng r;
  c3_rng_init(&r, 2, C3_RNG_TEST, 0, 0, 0);
  for (size_t i = 0; i < n; i++) x[i] = (float)c3_rng_uniform(&r);
  double gflop = batch * 27 * 2 * forward_macs(embed, 1, dhw) * 1e-9;
  if (csal3d_ssl_model_train_step(h, x, batch, dhw, NULL) != CSAL3D_OK) die("warm-up step");
  reset_peak();
  double t = now(), c = cpu_now();
  for (int s = 0; s < steps; s++)
    if (csal3d_ssl_model_train_step(h, x, batch, dhw, NULL) != CSAL3D_OK) die("step");
  double wall = (now() - t) / steps, cpu = (cpu_now() - c) / steps;
  char what[128], side[48];
  if (dhw[0] == dhw[1] && dhw[1] == dhw[2])
    snprintf(side, sizeof side, "%lld^3", (long long)dhw[0]);
  else
    snprintf(side, sizeof side, "%lldx%lldx%lld", (long long)dhw[0], (long long)dhw[1],
             (long long)dhw[2]);
  snprintf(what, sizeof what, "pretrain step, C=%d, %s x batch %d, %d slot%s", embed, side,
           batch, h->work.slots, h->work.slots == 1 ? "" : "s");
  row(what, wall, cpu, gflop, engine_peak_gib());
  free(x);
  csal3d_ssl_model_free(h);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  const char *th = getenv("CSAL3D_BENCH_THREADS");
  co.threads = th ? atoi(th) : 0;
  if (csal3d_context_create(&co, &ctx) != CSAL3D_OK) die("context");
  int threads;
  csal3d_context_threads(ctx, &threads);
  printf("bench_pipeline: CPU engine, %d thread(s)\n", threads);
  printf("%-52s %9s %9s %9s %10s %9s\n", "what", "wall (s)", "CPU (s)", "GFLOP/s",
         "eng. peak", "max RSS");
  printf("%-52s %9s %9s %9s %10s %9s\n", "", "", "", "", "(GiB)", "(GiB)");
  const char *only = getenv("CSAL3D_BENCH_ONLY");
  if (!only) {
    bench_window();
    bench_hippocampus();
  }
  const int64_t small[3] = {32, 32, 64}, c64[3] = {64, 64, 64};
  if (!only || strcmp(only, "train") == 0) {
    bench_train(12, small, 1, 2, 0); /* test_ssl's sizes */
    bench_train(12, c64, 2, 2, 0);
  }
  if (!getenv("CSAL3D_BENCH_QUICK")) {
    bench_train(48, c64, 1, 2, 0);
    bench_train(48, c64, 1, 1, 1); /* the fallback: one slot, forwards recomputed */
  }
  printf("GFLOP/s counts the forward multiply-adds x 2 (10 forwards per window; 27 forward "
         "equivalents per crop and step: 9 forwards and 9 backwards of twice a forward, "
         "the recomputed forwards of a step with fewer than 9 slots not counted).\n");
  csal3d_context_free(ctx);
  return 0;
}
