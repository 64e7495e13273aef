/* Engine benchmark: every heavy op at the sizes of the SSL model (embed_dim 48), on
 * every available engine. Prints time (best of several runs after a warm-up), GFLOP/s
 * for compute-bound ops, GB/s of tensor traffic for memory-bound ones, the bytes of
 * the op's tensors and the engine's peak scratch beyond them.
 *
 *   make bench                          (all bench programs)
 *   build/tests/bench_engine [filter]   (only ops whose name contains filter)
 *   OMP_NUM_THREADS=n                   (threads; default: all cores)
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csal3d/common.h"
#include "engine/engine.h"

static const char *filter;

static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct bench {
  const char *name;
  char desc[96];
  double flops;   /* 0: memory-bound, report bytes/s */
  double bytes;   /* tensor traffic of one call */
  int reps;
} bench;

typedef csal3d_status (*bench_fn)(c3_engine *e, void *arg);

static void *dalloc(c3_engine *e, size_t floats) {
  void *p = NULL;
  if (e->alloc(e, floats * sizeof(float), "bench", &p) != CSAL3D_OK) {
    fprintf(stderr, "out of memory (%zu floats): %s\n", floats, csal3d_last_error());
    exit(1);
  }
  float *h = malloc(4096 * sizeof(float));
  for (int i = 0; i < 4096; i++) h[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
  for (size_t o = 0; o < floats; o += 4096) {
    size_t n = floats - o < 4096 ? floats - o : 4096;
    e->upload(e, (float *)p + o, h, n * sizeof(float));
  }
  free(h);
  return p;
}

static void run(c3_engine *e, bench *b, bench_fn fn, void *arg) {
  if (filter && !strstr(b->name, filter)) return;
  size_t use0, peak;
  e->memory_stats(e, &use0, NULL);
  e->reset_peak(e);
  if (fn(e, arg) != CSAL3D_OK) {
    printf("%-20s %-38s FAILED: %s\n", b->name, b->desc, csal3d_last_error());
    return;
  }
  e->synchronize(e);
  double best = 1e30, best_cpu = 1e30;
  for (int r = 0; r < b->reps; r++) {
    double t0 = omp_get_wtime(), c0 = cpu_seconds();
    fn(e, arg);
    e->synchronize(e);
    double t = omp_get_wtime() - t0, c = cpu_seconds() - c0;
    if (t < best) best = t;
    if (c < best_cpu) best_cpu = c;
  }
  e->memory_stats(e, NULL, &peak);
  double scratch = (double)(peak - use0);
  if (b->flops > 0)
    printf("%-20s %-38s %9.2f ms %9.2f ms %8.1f GFLOP/s %9.1f MB %8.1f MB\n", b->name, b->desc,
           best * 1e3, best_cpu * 1e3, b->flops / best * 1e-9, b->bytes / 1048576.0,
           scratch / 1048576.0);
  else
    printf("%-20s %-38s %9.2f ms %9.2f ms %8.1f GB/s    %9.1f MB %8.1f MB\n", b->name, b->desc,
           best * 1e3, best_cpu * 1e3, b->bytes / best * 1e-9, b->bytes / 1048576.0,
           scratch / 1048576.0);
  fflush(stdout);
}

/* ---- convolution ---- */
typedef struct conv_arg {
  c3_conv3d_desc d;
  float *x, *w, *b, *y, *dx, *dw, *db;
  int which; /* 0 fwd, 1 bwd data, 2 bwd weights */
} conv_arg;

static csal3d_status conv_run(c3_engine *e, void *p) {
  conv_arg *a = p;
  if (a->which == 0) return e->conv3d_fwd(e, &a->d, a->x, a->w, a->b, a->y);
  if (a->which == 1) return e->conv3d_bwd_data(e, &a->d, a->y, a->w, a->dx, 0);
  return e->conv3d_bwd_weights(e, &a->d, a->x, a->y, a->dw, a->db);
}

static void bench_conv(c3_engine *e, const char *label, int64_t ci, int64_t co, int64_t side,
                       int k, int s, int p, c3_layout sl, c3_layout dl, int reps) {
  if (filter && !strstr("conv3d_fwd conv3d_bwd_data conv3d_bwd_weights", filter)) return;
  conv_arg a;
  memset(&a, 0, sizeof a);
  a.d = (c3_conv3d_desc){1, ci, co, {side, side, side}, {k, k, k}, {s, s, s}, {p, p, p}, sl, dl};
  int64_t os = c3_conv3d_out_side(&a.d, 0);
  size_t nx = (size_t)(ci * side * side * side), ny = (size_t)(co * os * os * os);
  size_t nw = (size_t)(co * ci * k * k * k);
  a.x = dalloc(e, nx);
  a.w = dalloc(e, nw);
  a.b = dalloc(e, (size_t)co);
  a.y = dalloc(e, ny);
  a.dx = dalloc(e, nx);
  a.dw = dalloc(e, nw);
  a.db = dalloc(e, (size_t)co);
  double fl = 2.0 * (double)ny * (double)(ci * k * k * k);
  double by = 4.0 * (double)(nx + ny + nw);
  static const char *names[] = {"conv3d_fwd", "conv3d_bwd_data", "conv3d_bwd_weights"};
  for (int w = 0; w < 3; w++) {
    bench b = {names[w], "", fl, by, reps};
    snprintf(b.desc, sizeof b.desc, "%s %lld->%lld %lld^3 k%d s%d", label, (long long)ci,
             (long long)co, (long long)side, k, s);
    a.which = w;
    run(e, &b, conv_run, &a);
  }
  e->free(e, a.x);
  e->free(e, a.w);
  e->free(e, a.b);
  e->free(e, a.y);
  e->free(e, a.dx);
  e->free(e, a.dw);
  e->free(e, a.db);
}

/* ---- linear layers (matmul) ---- */
typedef struct lin_arg {
  int64_t rows, fin, fout;
  float *x, *w, *b, *y, *dx, *dw;
  int which;
} lin_arg;

static csal3d_status lin_run(c3_engine *e, void *p) {
  lin_arg *a = p;
  if (a->which == 0) {
    c3_matmul_desc d = {1, a->rows, a->fout, a->fin, 0, 1, 0, 0, 0, 0, 0, 0, 1.0f, 0.0f};
    return e->matmul(e, &d, a->x, a->w, a->b, a->y);
  }
  if (a->which == 1) {
    c3_matmul_desc d = {1, a->rows, a->fin, a->fout, 0, 0, 0, 0, 0, 0, 0, 0, 1.0f, 0.0f};
    return e->matmul(e, &d, a->y, a->w, NULL, a->dx);
  }
  c3_matmul_desc d = {1, a->fout, a->fin, a->rows, 1, 0, 0, 0, 0, 0, 0, 0, 1.0f, 1.0f};
  return e->matmul(e, &d, a->y, a->x, NULL, a->dw);
}

static void bench_linear(c3_engine *e, const char *label, int64_t rows, int64_t fin,
                         int64_t fout, int reps) {
  if (filter && !strstr("matmul_fwd matmul_dx matmul_dw", filter)) return;
  lin_arg a = {rows, fin, fout, 0, 0, 0, 0, 0, 0, 0};
  a.x = dalloc(e, (size_t)(rows * fin));
  a.w = dalloc(e, (size_t)(fin * fout));
  a.b = dalloc(e, (size_t)fout);
  a.y = dalloc(e, (size_t)(rows * fout));
  a.dx = dalloc(e, (size_t)(rows * fin));
  a.dw = dalloc(e, (size_t)(fin * fout));
  static const char *names[] = {"matmul_fwd", "matmul_dx", "matmul_dw"};
  for (int w = 0; w < 3; w++) {
    bench b = {names[w], "", 2.0 * rows * fin * fout, 4.0 * (rows * (fin + fout) + fin * fout),
               reps};
    snprintf(b.desc, sizeof b.desc, "%s %lld x %lld->%lld", label, (long long)rows,
             (long long)fin, (long long)fout);
    a.which = w;
    run(e, &b, lin_run, &a);
  }
  e->free(e, a.x);
  e->free(e, a.w);
  e->free(e, a.b);
  e->free(e, a.y);
  e->free(e, a.dx);
  e->free(e, a.dw);
}

/* ---- window attention ---- */
typedef struct at_arg {
  c3_attn_desc d;
  float *qkv, *table, *out, *probs, *dqkv, *dtable;
  int32_t *region;
  int which; /* 0 fwd, 1 fwd saving P, 2 bwd with P, 3 bwd recomputing */
} at_arg;

static csal3d_status at_run(c3_engine *e, void *p) {
  at_arg *a = p;
  switch (a->which) {
  case 0: return e->attn_fwd(e, &a->d, a->qkv, a->table, a->region, a->out, NULL);
  case 1: return e->attn_fwd(e, &a->d, a->qkv, a->table, a->region, a->out, a->probs);
  case 2:
    return e->attn_bwd(e, &a->d, a->qkv, a->table, a->region, a->probs, a->out, a->dqkv, 0,
                       a->dtable);
  default:
    return e->attn_bwd(e, &a->d, a->qkv, a->table, a->region, NULL, a->out, a->dqkv, 0,
                       a->dtable);
  }
}

static void bench_attn(c3_engine *e, const char *label, int64_t windows, int64_t tokens,
                       int64_t heads, int mask, int reps) {
  if (filter && !strstr("attn_fwd attn_fwd_saveP attn_bwd_savedP attn_bwd_recompute", filter))
    return;
  at_arg a;
  memset(&a, 0, sizeof a);
  int64_t hd = 16, C = heads * hd;
  a.d = (c3_attn_desc){windows, tokens, heads, hd, {7, 7, 7}, 0.25f, mask ? windows : 0, -100.0f};
  a.qkv = dalloc(e, (size_t)(windows * tokens * 3 * C));
  a.dqkv = dalloc(e, (size_t)(windows * tokens * 3 * C));
  a.table = dalloc(e, (size_t)(2197 * heads));
  a.dtable = dalloc(e, (size_t)(2197 * heads));
  a.out = dalloc(e, (size_t)(windows * tokens * C));
  a.probs = dalloc(e, (size_t)(windows * heads * tokens * tokens));
  if (mask) {
    e->alloc(e, (size_t)(windows * tokens) * 4, "region", (void **)&a.region);
    int32_t *r = malloc((size_t)(windows * tokens) * 4);
    for (int64_t i = 0; i < windows * tokens; i++) r[i] = (int32_t)((i / 3) % 2);
    e->upload(e, a.region, r, (size_t)(windows * tokens) * 4);
    free(r);
  }
  double mm = 2.0 * windows * heads * tokens * tokens * hd; /* one n x n x hd product */
  double io = 4.0 * windows * tokens * 4 * C;
  static const char *names[] = {"attn_fwd", "attn_fwd_saveP", "attn_bwd_savedP",
                                "attn_bwd_recompute"};
  double fl[] = {2 * mm, 2 * mm, 4 * mm, 5 * mm};
  for (int w = 0; w < 4; w++) {
    bench b = {names[w], "", fl[w], io + (w == 1 || w == 2 ? 4.0 * windows * heads * tokens * tokens : 0), reps};
    snprintf(b.desc, sizeof b.desc, "%s %lld win n%lld h%lld%s", label, (long long)windows,
             (long long)tokens, (long long)heads, mask ? " mask" : "");
    a.which = w;
    run(e, &b, at_run, &a);
  }
  e->free(e, a.qkv);
  e->free(e, a.dqkv);
  e->free(e, a.table);
  e->free(e, a.dtable);
  e->free(e, a.out);
  e->free(e, a.probs);
  e->free(e, a.region);
}

/* ---- memory-bound ops ---- */
typedef struct mb_arg {
  int op;
  int64_t n, rows, cols;
  c3_inorm_desc in;
  c3_upsample_desc up;
  c3_window_desc win;
  c3_merge_desc mg;
  float *x, *y, *dx, *g, *b, *m, *v;
} mb_arg;

static csal3d_status mb_run(c3_engine *e, void *p) {
  mb_arg *a = p;
  double loss;
  switch (a->op) {
  case 0: return e->layer_norm_fwd(e, a->rows, a->cols, 1e-5f, a->x, a->g, a->b, a->y, a->m, a->v);
  case 1:
    return e->layer_norm_bwd(e, a->rows, a->cols, 1e-5f, a->x, a->g, a->m, a->v, a->y, a->dx, 0,
                             a->g, a->b);
  case 2: return e->gelu_fwd(e, a->n, a->x, a->y);
  case 3: return e->gelu_bwd(e, a->n, a->x, a->y, a->dx, 0);
  case 4: return e->softmax_fwd(e, a->rows, a->cols, a->x, a->y);
  case 5: return e->inorm_lrelu_fwd(e, &a->in, a->x, a->y, a->m, a->v);
  case 6: return e->inorm_lrelu_bwd(e, &a->in, a->x, a->m, a->v, a->y, a->dx, 0);
  case 7: return e->upsample2x_fwd(e, &a->up, a->x, a->y);
  case 8: return e->upsample2x_bwd(e, &a->up, a->y, a->x, 0);
  case 9: return e->window_partition(e, &a->win, a->x, a->y, 0);
  case 10: return e->window_merge(e, &a->win, a->y, a->x, 1);
  case 11: return e->patch_merge_fwd(e, &a->mg, a->x, a->y);
  case 12: return e->patch_merge_bwd(e, &a->mg, a->y, a->x, 0);
  case 13: return e->mse_loss(e, a->n, a->x, a->y, NULL, 1.0f, a->dx, NULL, 0, &loss);
  case 14: return e->reduce_sum(e, 1, a->rows, a->cols, 1.0f, a->x, a->g, 1);
  default: {
    c3_adamw_desc d = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.1f, 1.0f, 10};
    return e->adamw(e, &d, a->n, a->x, a->y, a->m, a->v);
  }
  }
}

static void bench_mb(c3_engine *e, const char *name, const char *desc, mb_arg *a, size_t nx,
                     size_t ny, size_t nstat, double bytes, int reps) {
  if (filter && !strstr(name, filter)) return;
  a->x = dalloc(e, nx);
  a->dx = dalloc(e, nx);
  a->y = dalloc(e, ny);
  a->g = dalloc(e, nstat);
  a->b = dalloc(e, nstat);
  a->m = dalloc(e, nstat > ny ? nstat : ny);
  a->v = dalloc(e, nstat > ny ? nstat : ny);
  if (a->op == 15) { /* adamw: m, v start at zero */
    e->zero(e, a->m, ny * 4);
    e->zero(e, a->v, ny * 4);
  }
  bench b = {name, "", 0.0, bytes, reps};
  snprintf(b.desc, sizeof b.desc, "%s", desc);
  if (a->op == 1 || a->op == 6) mb_run(e, &(mb_arg){.op = a->op - 1, .n = a->n, .rows = a->rows,
                                                      .cols = a->cols, .in = a->in, .x = a->x,
                                                      .y = a->y, .g = a->g, .b = a->b, .m = a->m,
                                                      .v = a->v});
  run(e, &b, mb_run, a);
  e->free(e, a->x);
  e->free(e, a->dx);
  e->free(e, a->y);
  e->free(e, a->g);
  e->free(e, a->b);
  e->free(e, a->m);
  e->free(e, a->v);
}

static void bench_engine(c3_engine *e) {
  printf("\nengine %s, %d threads\n", e->name, omp_get_max_threads());
  printf("%-20s %-38s %12s %12s %16s %12s %11s\n", "op", "shape (embed 48, 128^3 crop)",
         "wall", "cpu", "rate (wall)", "tensors", "+scratch");
  const c3_layout A = C3_LAYOUT_NCDHW, B = C3_LAYOUT_NDHWC;
  /* convolutions: the anchor (3^3, 48 -> 48 at 48^3: oneDNN's brgconv reaches ~228 GFLOP/s on
   * AVX-512 CPUs, about their float32 peak), the patch embed, the decoder at 128^3 */
  bench_conv(e, "anchor", 48, 48, 48, 3, 1, 1, B, B, 5);
  bench_conv(e, "patch_embed", 1, 48, 128, 2, 2, 0, A, B, 3);
  bench_conv(e, "dec conv.0", 768, 384, 4, 3, 1, 1, B, B, 5);
  bench_conv(e, "dec conv.8", 192, 96, 16, 3, 1, 1, B, B, 5);
  bench_conv(e, "dec conv.12", 96, 48, 32, 3, 1, 1, B, B, 3);
  bench_conv(e, "dec conv.16", 48, 48, 64, 3, 1, 1, B, B, 2);
  bench_conv(e, "dec conv.20", 48, 1, 128, 1, 1, 0, B, A, 3);
  /* stage-1 linear layers at a 128^3 crop: 64^3 tokens (padded to 70^3 in windows) */
  int64_t tok = 64 * 64 * 64;
  bench_linear(e, "qkv", tok, 48, 144, 3);
  bench_linear(e, "mlp fc1", tok, 48, 192, 3);
  bench_linear(e, "mlp fc2", tok, 192, 48, 3);
  bench_linear(e, "stage4 fc1", 64, 768, 3072, 5);
  /* attention: stage 1 of a 64^3 crop (32^3 -> 5^3 windows) and stage 2 of 128^3 */
  bench_attn(e, "stage1 64^3", 125, 343, 3, 1, 3);
  bench_attn(e, "stage2 128^3", 125, 343, 6, 1, 3);
  bench_attn(e, "stage4 128^3", 1, 64, 24, 0, 5);
  /* memory-bound */
  mb_arg a;
  memset(&a, 0, sizeof a);
  a.rows = tok;
  a.cols = 48;
  a.op = 0;
  double ln = 4.0 * tok * 48 * 2;
  bench_mb(e, "layer_norm_fwd", "262144 x 48 affine", &a, tok * 48, tok * 48, tok, ln, 5);
  a.op = 1;
  bench_mb(e, "layer_norm_bwd", "262144 x 48 affine", &a, tok * 48, tok * 48, tok, 1.5 * ln, 5);
  a.op = 2;
  a.n = tok * 192;
  bench_mb(e, "gelu_fwd", "262144 x 192", &a, a.n, a.n, 1, 8.0 * a.n, 5);
  a.op = 3;
  bench_mb(e, "gelu_bwd", "262144 x 192", &a, a.n, a.n, 1, 12.0 * a.n, 5);
  a.op = 4;
  a.rows = 125 * 3 * 343;
  a.cols = 343;
  bench_mb(e, "softmax_fwd", "128625 x 343", &a, a.rows * 343, a.rows * 343, 1,
           8.0 * a.rows * 343, 5);
  for (int l = 0; l < 2; l++) {
    a.in = (c3_inorm_desc){1, 48, 64, 64, 64, l ? B : A, 1e-5f, 0.01f};
    a.op = 5;
    int64_t n = 48 * 64 * 64 * 64;
    bench_mb(e, "inorm_lrelu_fwd", l ? "48 x 64^3 NDHWC" : "48 x 64^3 NCDHW", &a, n, n, 48,
             4.0 * n * 3, 5);
    a.op = 6;
    bench_mb(e, "inorm_lrelu_bwd", l ? "48 x 64^3 NDHWC" : "48 x 64^3 NCDHW", &a, n, n, 48,
             4.0 * n * 5, 5);
    a.up = (c3_upsample_desc){1, 48, 64, 64, 64, l ? B : A};
    a.op = 7;
    bench_mb(e, "upsample2x_fwd", l ? "48 x 64^3 -> 128^3 NDHWC" : "48 x 64^3 -> 128^3 NCDHW",
             &a, n, 8 * n, 1, 4.0 * 9 * n, 3);
    a.op = 8;
    bench_mb(e, "upsample2x_bwd", l ? "48 x 128^3 -> 64^3 NDHWC" : "48 x 128^3 -> 64^3 NCDHW",
             &a, n, 8 * n, 1, 4.0 * 9 * n, 3);
  }
  a.win = (c3_window_desc){1, 64, 64, 64, 48, {7, 7, 7}, {3, 3, 3}};
  int64_t nwin = c3_window_count(&a.win);
  a.op = 9;
  bench_mb(e, "window_partition", "64^3 x 48 win 7 shift 3", &a, tok * 48, nwin * 343 * 48, 1,
           4.0 * (tok + nwin * 343) * 48, 5);
  a.op = 10;
  bench_mb(e, "window_merge", "64^3 x 48 win 7 shift 3 (+=)", &a, tok * 48, nwin * 343 * 48, 1,
           4.0 * (2 * tok + nwin * 343) * 48, 5);
  a.mg = (c3_merge_desc){1, 64, 64, 64, 48, C3_MERGE_ORDER_MONAI};
  a.op = 11;
  bench_mb(e, "patch_merge_fwd", "64^3 x 48 -> 32^3 x 384", &a, tok * 48, tok * 48, 1,
           8.0 * tok * 48, 5);
  a.op = 12;
  bench_mb(e, "patch_merge_bwd", "32^3 x 384 -> 64^3 x 48", &a, tok * 48, tok * 48, 1,
           8.0 * tok * 48, 5);
  a.op = 13;
  a.n = 128 * 128 * 128;
  bench_mb(e, "mse_loss", "128^3 with gradient", &a, a.n, a.n, 1, 12.0 * a.n, 5);
  a.op = 14;
  a.rows = tok;
  a.cols = 144;
  bench_mb(e, "reduce_sum", "bias grad 262144 x 144", &a, tok * 144, 1, 144, 4.0 * tok * 144, 5);
  a.op = 15;
  a.n = 18703463;
  bench_mb(e, "adamw", "18,703,463 parameters", &a, a.n, a.n, 1, 4.0 * 7 * a.n, 3);
}

int main(int argc, char **argv) {
  filter = argc > 1 ? argv[1] : NULL;
  const char *plugin = getenv("CSAL3D_TEST_CUDA_PLUGIN");
  if (plugin && *plugin && !getenv("CSAL3D_CUDA_PLUGIN")) setenv("CSAL3D_CUDA_PLUGIN", plugin, 0);
  c3_engine *e;
  if (c3_engine_open(CSAL3D_DEVICE_CPU, 0, &e) != CSAL3D_OK) {
    fprintf(stderr, "CPU engine: %s\n", csal3d_last_error());
    return 1;
  }
  printf("wall: best wall time; cpu: best process CPU time of a call (all threads; on a\n"
         "loaded machine run with OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive and read cpu);\n"
         "rate: GFLOP/s for compute-bound ops, GB/s of tensor traffic for memory-bound ones;\n"
         "tensors: the op's inputs and outputs; +scratch: engine memory the op added\n");
  bench_engine(e);
  c3_engine_close(e);
  if (c3_engine_open(CSAL3D_DEVICE_CUDA, 0, &e) == CSAL3D_OK) {
    bench_engine(e);
    c3_engine_close(e);
  } else {
    printf("\nengine cuda: not available (%s)\n", csal3d_last_error());
  }
  return 0;
}
