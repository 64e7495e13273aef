/* Benchmark of the CUDA engine's ops at the sizes of the SSL model (embed_dim 48, one
 * 128^3 observation), in each precision (CSAL3D_CUDA_PRECISION fp32, tf32, bf16).
 * Prints a table: median time, TFLOP/s (matrix work) or GB/s (memory-bound ops, bytes
 * read + written once), and the engine memory the op needed above its tensors (its
 * scratch, counted from before its first call; scratch already grown by an earlier op of
 * the same engine is not counted again).
 * Without a GPU (or without the plugin) it says so and exits 0.
 * Options: C3_BENCH_REPS (default 10), C3_BENCH_PREC (e.g. "bf16" for one mode). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "engine/engine.h"
#include "bench_util.h"

static int reps = 10;
static c3_engine *E;

#define TRY(x)                                                                 \
  do {                                                                         \
    csal3d_status s_ = (x);                                                    \
    if (s_ != CSAL3D_OK) {                                                     \
      fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, csal3d_last_error()); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

static float *buf(int64_t n, float lo, float hi) {
  void *p;
  TRY(E->alloc(E, (size_t)n * 4, "bench", &p));
  /* random content, made on the host in pieces (never time zeros) */
  const int64_t piece = 1 << 20;
  float *h = malloc(piece * 4);
  uint64_t z = 0x1234567ULL + (uint64_t)n;
  for (int64_t i = 0; i < piece; i++) {
    z = z * 6364136223846793005ULL + 1442695040888963407ULL;
    h[i] = lo + (hi - lo) * (float)((z >> 40) / 16777216.0);
  }
  for (int64_t o = 0; o < n; o += piece)
    TRY(E->upload(E, (float *)p + o, h, (size_t)((n - o < piece ? n - o : piece) * 4)));
  free(h);
  return p;
}

typedef void (*op_fn)(void *ctx);

/* Times fn: 2 warm-up runs, then the median of reps. */
static void bench(const char *op, const char *cfg, const char *prec, double flops, double bytes,
                  op_fn fn, void *ctx) {
  size_t base, peak;
  TRY(E->synchronize(E));
  E->memory_stats(E, &base, NULL); /* before the op's first call: its scratch counts */
  E->reset_peak(E);
  fn(ctx);
  fn(ctx);
  TRY(E->synchronize(E));
  double t[64];
  int n = reps > 64 ? 64 : reps;
  for (int r = 0; r < n; r++) {
    double t0 = now();
    fn(ctx);
    TRY(E->synchronize(E));
    t[r] = now() - t0;
  }
  E->memory_stats(E, NULL, &peak);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
      double x = t[j];
      t[j] = t[j - 1];
      t[j - 1] = x;
    }
  double med = t[n / 2];
  char rate[32] = "";
  if (flops > 0)
    snprintf(rate, sizeof rate, "%8.1f TFLOP/s", flops / med / 1e12);
  else
    snprintf(rate, sizeof rate, "%8.0f GB/s   ", bytes / med / 1e9);
  printf("%-16s %-40s %-5s %9.3f ms %s %8.1f MiB\n", op, cfg, prec, med * 1e3, rate,
         (double)(peak > base ? peak - base : 0) / 1048576.0);
  fflush(stdout);
}

/* ---- ops ----------------------------------------------------------------------------- */

typedef struct {
  c3_conv3d_desc d;
  float *x, *w, *b, *y;
  int kind;
} conv_ctx;
static void conv_run(void *p) {
  conv_ctx *c = p;
  if (c->kind == 0) TRY(E->conv3d_fwd(E, &c->d, c->x, c->w, c->b, c->y));
  if (c->kind == 1) TRY(E->conv3d_bwd_data(E, &c->d, c->y, c->w, c->x, 0));
  if (c->kind == 2) TRY(E->conv3d_bwd_weights(E, &c->d, c->x, c->y, c->w, c->b));
}

static void conv_bench(const char *prec, int64_t n, int64_t ci, int64_t co, int64_t side, int k,
                       int s, int p, c3_layout sl, c3_layout dl) {
  conv_ctx c;
  c.d = (c3_conv3d_desc){n, ci, co, {side, side, side}, {k, k, k}, {s, s, s}, {p, p, p}, sl, dl};
  int64_t o = c3_conv3d_out_side(&c.d, 0);
  int64_t xn = n * ci * side * side * side, yn = n * co * o * o * o;
  c.x = buf(xn, -1, 1);
  c.w = buf(co * ci * k * k * k, -0.1f, 0.1f);
  c.b = buf(co, -0.1f, 0.1f);
  c.y = buf(yn, -1, 1);
  double flops = 2.0 * (double)n * co * ci * k * k * k * o * o * o;
  char cfg[96];
  static const char *kinds[3] = {"fwd", "bwd data", "bwd weights"};
  for (c.kind = 0; c.kind < 3; c.kind++) {
    snprintf(cfg, sizeof cfg, "%lld->%lld %lld^3 k%d s%d %s", (long long)ci, (long long)co,
             (long long)side, k, s, kinds[c.kind]);
    bench("conv3d", cfg, prec, flops, 0, conv_run, &c);
  }
  E->free(E, c.x);
  E->free(E, c.w);
  E->free(E, c.b);
  E->free(E, c.y);
}

typedef struct {
  c3_matmul_desc d;
  float *a, *b, *bias, *c;
} mm_ctx;
static void mm_run(void *p) {
  mm_ctx *c = p;
  TRY(E->matmul(E, &c->d, c->a, c->b, c->bias, c->c));
}
static void mm_bench(const char *prec, const char *what, int64_t m, int64_t n, int64_t k, int ta,
                     int tb, float beta) {
  mm_ctx c;
  c.d = (c3_matmul_desc){1, m, n, k, ta, tb, 0, 0, 0, 0, 0, 0, 1.0f, beta};
  c.a = buf(m * k, -1, 1);
  c.b = buf(k * n, -1, 1);
  c.bias = NULL;
  c.c = buf(m * n, -1, 1);
  char cfg[96];
  snprintf(cfg, sizeof cfg, "%s %lldx%lldx%lld", what, (long long)m, (long long)n, (long long)k);
  bench("matmul", cfg, prec, 2.0 * m * n * k, 0, mm_run, &c);
  E->free(E, c.a);
  E->free(E, c.b);
  E->free(E, c.c);
}

typedef struct {
  c3_attn_desc d;
  float *qkv, *table, *out, *dqkv, *dtable;
  int32_t *region;
  int bwd;
} at_ctx;
static void at_run(void *p) {
  at_ctx *c = p;
  if (!c->bwd)
    TRY(E->attn_fwd(E, &c->d, c->qkv, c->table, c->region, c->out, NULL));
  else
    TRY(E->attn_bwd(E, &c->d, c->qkv, c->table, c->region, NULL, c->out, c->dqkv, 0,
                    c->dtable));
}
static void at_bench(const char *prec, int64_t windows, int64_t heads, int mask) {
  at_ctx c;
  const int64_t n = 343, hd = 16, C = heads * hd;
  c.d = (c3_attn_desc){windows, n, heads, hd, {7, 7, 7}, 0.25f, windows, -100.0f};
  c.qkv = buf(windows * n * 3 * C, -1, 1);
  c.table = buf(13 * 13 * 13 * heads, -0.1f, 0.1f);
  c.out = buf(windows * n * C, -1, 1);
  c.dqkv = buf(windows * n * 3 * C, -1, 1);
  c.dtable = buf(13 * 13 * 13 * heads, 0, 0);
  c.region = NULL;
  if (mask) {
    int32_t *h = malloc(sizeof(int32_t) * windows * n);
    for (int64_t i = 0; i < windows * n; i++) h[i] = (int32_t)((i * 7 / n) % 3);
    TRY(E->alloc(E, sizeof(int32_t) * windows * n, "region", (void **)&c.region));
    TRY(E->upload(E, c.region, h, sizeof(int32_t) * windows * n));
    free(h);
  }
  double f = 4.0 * windows * heads * n * n * hd; /* QK^T and PV */
  char cfg[96];
  for (c.bwd = 0; c.bwd < 2; c.bwd++) {
    snprintf(cfg, sizeof cfg, "%lld win x %lld heads n343 hd16%s %s", (long long)windows,
             (long long)heads, mask ? " mask" : "", c.bwd ? "bwd (recompute P)" : "fwd");
    bench("attention", cfg, prec, c.bwd ? 3.0 * f : f, 0, at_run, &c);
  }
  E->free(E, c.qkv);
  E->free(E, c.table);
  E->free(E, c.out);
  E->free(E, c.dqkv);
  E->free(E, c.dtable);
  E->free(E, c.region);
}

typedef struct {
  int which;
  int64_t a, b;
  float *x, *y, *m, *v, *g;
  c3_inorm_desc in;
  c3_upsample_desc up;
  c3_window_desc win;
} mem_ctx;
static void mem_run(void *p) {
  mem_ctx *c = p;
  switch (c->which) {
  case 0: TRY(E->layer_norm_fwd(E, c->a, c->b, 1e-5f, c->x, c->g, c->m, c->y, c->v, c->v + c->a)); break;
  case 1: TRY(E->inorm_lrelu_fwd(E, &c->in, c->x, c->y, c->m, c->v)); break;
  case 2: TRY(E->upsample2x_fwd(E, &c->up, c->x, c->y)); break;
  case 3: TRY(E->window_partition(E, &c->win, c->x, c->y, 0)); break;
  case 4: TRY(E->gelu_fwd(E, c->a, c->x, c->y)); break;
  case 5: {
    c3_adamw_desc d = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 10};
    TRY(E->adamw(E, &d, c->a, c->x, c->g, c->m, c->v));
    break;
  }
  case 6: {
    double s;
    TRY(E->dot(E, c->a, c->x, c->x, &s));
    break;
  }
  default: TRY(E->layer_norm_bwd(E, c->a, c->b, 1e-5f, c->x, c->g, c->v, c->v + c->a, c->x, c->y, 0, c->m, c->m + c->b)); break;
  }
}

static void mem_benches(const char *prec) {
  mem_ctx c;
  memset(&c, 0, sizeof c);
  const int64_t T = 64 * 64 * 64, C = 48;
  /* layer norm over the stage-0 tokens */
  c.a = T;
  c.b = C;
  c.x = buf(T * C, -1, 1);
  c.y = buf(T * C, -1, 1);
  c.g = buf(C, 0.5f, 1.5f);
  c.m = buf(2 * C, -0.1f, 0.1f);
  c.v = buf(2 * T, 0, 1);
  c.which = 0;
  bench("layer_norm_fwd", "262144 x 48", prec, 0, 2.0 * T * C * 4, mem_run, &c);
  TRY(E->layer_norm_fwd(E, c.a, c.b, 1e-5f, c.x, c.g, c.m, c.y, c.v, c.v + c.a));
  c.which = 7;
  bench("layer_norm_bwd", "262144 x 48 (+dgamma, dbeta)", prec, 0, 3.0 * T * C * 4, mem_run, &c);
  c.which = 4;
  c.a = T * C;
  bench("gelu_fwd", "262144 x 48", prec, 0, 2.0 * T * C * 4, mem_run, &c);
  E->free(E, c.x);
  E->free(E, c.y);
  E->free(E, c.g);
  E->free(E, c.m);
  E->free(E, c.v);
  /* decoder: instance norm at 64^3 x 48 and the x2 upsampling to 128^3 */
  c.in = (c3_inorm_desc){1, C, 64, 64, 64, C3_LAYOUT_NDHWC, 1e-5f, 0.01f};
  c.x = buf(T * C, -1, 1);
  c.y = buf(8 * T * C, -1, 1);
  c.m = buf(C, 0, 0);
  c.v = buf(C, 0, 0);
  c.which = 1;
  bench("inorm_lrelu_fwd", "48 ch 64^3 NDHWC", prec, 0, 3.0 * T * C * 4, mem_run, &c);
  c.up = (c3_upsample_desc){1, C, 64, 64, 64, C3_LAYOUT_NDHWC};
  c.which = 2;
  bench("upsample2x_fwd", "48 ch 64^3 -> 128^3 NDHWC", prec, 0, 9.0 * T * C * 4, mem_run, &c);
  c.win = (c3_window_desc){1, 64, 64, 64, C, {7, 7, 7}, {3, 3, 3}};
  c.which = 3;
  bench("window_partition", "64^3 x 48, shift 3 (pad to 70^3)", prec, 0,
        (T + 343000.0) * C * 4, mem_run, &c);
  E->free(E, c.x);
  E->free(E, c.y);
  E->free(E, c.m);
  E->free(E, c.v);
  /* AdamW over the 18.7M parameters; the global gradient norm */
  c.a = 18703463;
  c.x = buf(c.a, -1, 1);
  c.g = buf(c.a, -1, 1);
  c.m = buf(c.a, -0.1f, 0.1f);
  c.v = buf(c.a, 0, 0.01f);
  c.which = 5;
  bench("adamw", "18703463 parameters", prec, 0, 7.0 * c.a * 4, mem_run, &c);
  c.which = 6;
  bench("dot", "18703463 (gradient norm)", prec, 0, 1.0 * c.a * 4, mem_run, &c);
  E->free(E, c.x);
  E->free(E, c.g);
  E->free(E, c.m);
  E->free(E, c.v);
}

int main(void) {
  const char *r = getenv("C3_BENCH_REPS");
  if (r && atoi(r) > 0) reps = atoi(r);
  const char *only = getenv("C3_BENCH_PREC");
  const char *plugin = getenv("CSAL3D_TEST_CUDA_PLUGIN");
  if (plugin && *plugin && !getenv("CSAL3D_CUDA_PLUGIN")) setenv("CSAL3D_CUDA_PLUGIN", plugin, 0);
  static const char *precs[3] = {"fp32", "tf32", "bf16"};
  printf("%-16s %-40s %-5s %12s %15s %12s\n", "op", "configuration", "prec", "median",
         "rate", "extra mem");
  for (int p = 0; p < 3; p++) {
    if (only && *only && strcmp(only, precs[p])) continue;
    setenv("CSAL3D_CUDA_PRECISION", precs[p], 1);
    csal3d_status s = c3_engine_open(CSAL3D_DEVICE_CUDA, 0, &E);
    if (s != CSAL3D_OK) {
      printf("SKIP: no CUDA engine: %s\n", csal3d_last_error());
      return 0;
    }
    const c3_layout A = C3_LAYOUT_NCDHW, B = C3_LAYOUT_NDHWC;
    conv_bench(precs[p], 1, 1, 48, 128, 2, 2, 0, A, B);   /* patch embed */
    conv_bench(precs[p], 1, 96, 48, 32, 3, 1, 1, B, B);  /* conv.12 */
    conv_bench(precs[p], 1, 48, 48, 64, 3, 1, 1, B, B);  /* conv.16 */
    conv_bench(precs[p], 1, 48, 1, 128, 1, 1, 0, B, A);  /* conv.20 */
    mm_bench(precs[p], "qkv", 262144, 144, 48, 0, 1, 0.0f);
    mm_bench(precs[p], "mlp fc1", 262144, 192, 48, 0, 1, 0.0f);
    mm_bench(precs[p], "mlp fc2", 262144, 48, 192, 0, 1, 0.0f);
    mm_bench(precs[p], "fc1 dW", 192, 48, 262144, 1, 0, 1.0f);
    at_bench(precs[p], 1000, 3, 1); /* stage 1 of one 128^3 observation */
    at_bench(precs[p], 125, 6, 0);  /* stage 2 */
    if (p == 0) mem_benches(precs[p]);
    size_t used, peak;
    E->memory_stats(E, &used, &peak);
    printf("(%s: engine memory peak %.1f MiB)\n", precs[p], peak / 1048576.0);
    c3_engine_close(E);
    E = NULL;
  }
  unsetenv("CSAL3D_CUDA_PRECISION");
  printf("The full-model numbers of issue 7 (uncertainty window, training step) need the\n"
         "model on the engine table; they are not measured by this program.\n");
  return 0;
}
