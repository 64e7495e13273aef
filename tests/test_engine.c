/* Every op of every available engine against the float64 reference (tests/ref/ref_ops.h),
 * in the manner of ggml's test-backend-ops.
 *
 * For each op and each shape (small, odd, non-cubic), on each engine (the CPU engine;
 * the CUDA engine too when its plugin opens a device):
 *  - forward: the engine's output against the float64 reference, relative error
 *    ||engine - ref|| / ||ref||;
 *  - backward: the gradient of L = sum_k <r_k, out_k> (r random) from the engine's
 *    backward against central finite differences of the float64 reference forward,
 *    on every coordinate of every differentiable input (a random subset for the
 *    larger shapes); run twice, once overwriting (accum 0, NaN-filled buffers) and once
 *    accumulating (accum 1, random content subtracted after), with parameter
 *    gradients always accumulating;
 *  - determinism: a second forward + backward is bitwise identical.
 * Each case prints one line (op, shape, engine, errors). Set C3_TEST_ENGINE_VERBOSE=0
 * to print only failures. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/cpu/cpu.h"
#include "engine/engine.h"
#include "ref/ref_ops.h"

/* ---- small deterministic RNG ---------------------------------------------------------- */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s * 0x9E3779B97F4A7C15ULL + 12345; }
static uint64_t rng_next(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
static double rng_unif(double lo, double hi) {
  return lo + (hi - lo) * ((double)(rng_next() >> 11) / 9007199254740992.0);
}

/* ---- engines ------------------------------------------------------------------------- */

#define MAX_ENGINES 2
static c3_engine *engines[MAX_ENGINES];
static int n_engines;
static int verbose = 1;
static char cuda_why[1200];

static void open_engines(void) {
  if (n_engines) return;
  /* tests/run.sh names the plugin of this build tree */
  const char *plugin = getenv("CSAL3D_TEST_CUDA_PLUGIN");
  if (plugin && *plugin && !getenv("CSAL3D_CUDA_PLUGIN")) setenv("CSAL3D_CUDA_PLUGIN", plugin, 0);
  const char *v = getenv("C3_TEST_ENGINE_VERBOSE");
  if (v && *v == '0') verbose = 0;
  c3_engine *e = NULL;
  if (c3_engine_open(CSAL3D_DEVICE_CPU, 0, &e) != CSAL3D_OK) {
    fprintf(stderr, "cannot open the CPU engine: %s\n", csal3d_last_error());
    exit(1);
  }
  engines[n_engines++] = e;
  if (c3_engine_open(CSAL3D_DEVICE_CUDA, 0, &e) == CSAL3D_OK)
    engines[n_engines++] = e;
  else
    snprintf(cuda_why, sizeof cuda_why, "%s", csal3d_last_error());
}

/* bf16 engines get looser bounds (bf16 compute: relative errors ~1e-2). */
static double tol_scale(const c3_engine *e) { return e->device == CSAL3D_DEVICE_CUDA ? 500.0 : 1.0; }

/* ---- the harness ----------------------------------------------------------------------- */

typedef enum { T_IN, T_PARAM, T_CONST, T_INT } tkind;

typedef struct tspec {
  const char *name;
  int64_t n;
  tkind kind;
  double lo, hi;
} tspec;

#define MAXIO 6

typedef struct opcase opcase;
typedef void (*ref_fn)(const opcase *c, double *const *in, double *const *out);
typedef csal3d_status (*fwd_fn)(const opcase *c, c3_engine *e, void *const *in,
                                float *const *out, void **saved);
typedef csal3d_status (*bwd_fn)(const opcase *c, c3_engine *e, void *const *in,
                                float *const *out, float *const *dout, float *const *din,
                                int accum, void **saved);

struct opcase {
  const char *op;
  char desc[200];
  int nin, nout;
  tspec in[MAXIO];
  int64_t out_n[MAXIO];
  double tol_f, tol_b;
  c3_conv3d_desc conv;
  c3_matmul_desc mm;
  c3_attn_desc at;
  c3_window_desc win;
  c3_merge_desc mg;
  c3_inorm_desc inorm;
  c3_upsample_desc up;
  c3_permute3d_desc pm;
  c3_segloss_desc seg;
  int64_t cc[7]; /* channel_copy: outer, inner, count, x_ch, x_off, y_ch, y_off */
  int64_t iv[6];
  float fv[4];
  ref_fn ref;
  fwd_fn fwd;
  bwd_fn bwd; /* NULL: forward only */
};

static int failures;

static void init_case(opcase *c, const char *op) {
  memset(c, 0, sizeof *c);
  c->op = op;
  c->tol_f = 1e-5;
  c->tol_b = 1e-4;
}

static void add_in(opcase *c, const char *name, int64_t n, tkind k, double lo, double hi) {
  c->in[c->nin++] = (tspec){name, n, k, lo, hi};
}

static double rel_err(const double *ref, const float *got, const int64_t *sel, int64_t n,
                      double *max_abs) {
  double num = 0.0, den = 0.0, mx = 0.0;
  for (int64_t t = 0; t < n; t++) {
    int64_t i = sel ? sel[t] : t;
    double d = got[i] - ref[i];
    if (isnan(got[i])) d = INFINITY;
    num += d * d;
    den += ref[i] * ref[i];
    if (fabs(d) > mx) mx = fabs(d);
  }
  if (max_abs) *max_abs = mx;
  if (den == 0.0) return num == 0.0 ? 0.0 : sqrt(num) > 1e-6 ? INFINITY : 0.0;
  return sqrt(num / den);
}

static double loss_of(const opcase *c, double *const *in, double *const *out,
                      double *const *r) {
  c->ref(c, in, out);
  double L = 0.0;
  for (int k = 0; k < c->nout; k++)
    for (int64_t i = 0; i < c->out_n[k]; i++) L += r[k][i] * out[k][i];
  return L;
}

#define FD_ALL_MAX 1200
#define FD_SAMPLES 40

static int buffers_equal(const void *a, const void *b, size_t bytes) {
  return memcmp(a, b, bytes) == 0;
}

/* Runs one case on one engine; returns 1 when it passes. */
static int run_case(c3_engine *e, opcase *c, uint64_t seed) {
  double ts = tol_scale(e);
  double t_start = omp_get_wtime();
  int ok = 1;
  char why[512] = "";
  rng_seed(seed);
  double *hin[MAXIO] = {0}, *hout[MAXIO] = {0}, *r[MAXIO] = {0};
  void *din_dev[MAXIO] = {0}, *in_dev[MAXIO] = {0};
  float *out_dev[MAXIO] = {0}, *dout_dev[MAXIO] = {0};
  float *fbuf = NULL, *first_out[MAXIO] = {0}, *first_grad[MAXIO] = {0};
  void *saved[4] = {0};
  double err_f = 0.0, err_b = 0.0;
  size_t maxn = 1;
  for (int k = 0; k < c->nin; k++) maxn = (size_t)c->in[k].n > maxn ? (size_t)c->in[k].n : maxn;
  for (int k = 0; k < c->nout; k++) maxn = (size_t)c->out_n[k] > maxn ? (size_t)c->out_n[k] : maxn;
  fbuf = malloc(maxn * sizeof(float));

  /* inputs */
  for (int k = 0; k < c->nin; k++) {
    tspec *t = &c->in[k];
    hin[k] = malloc(sizeof(double) * t->n);
    for (int64_t i = 0; i < t->n; i++) {
      double v = rng_unif(t->lo, t->hi);
      hin[k][i] = t->kind == T_INT ? floor(v) : (double)(float)v;
    }
    size_t bytes = (size_t)t->n * 4;
    ck_assert_int_eq(e->alloc(e, bytes, t->name, &in_dev[k]), CSAL3D_OK);
    if (t->kind == T_INT) {
      int32_t *ib = (int32_t *)fbuf;
      for (int64_t i = 0; i < t->n; i++) ib[i] = (int32_t)hin[k][i];
    } else {
      for (int64_t i = 0; i < t->n; i++) fbuf[i] = (float)hin[k][i];
    }
    ck_assert_int_eq(e->upload(e, in_dev[k], fbuf, bytes), CSAL3D_OK);
  }
  for (int k = 0; k < c->nout; k++) {
    hout[k] = malloc(sizeof(double) * c->out_n[k]);
    ck_assert_int_eq(e->alloc(e, (size_t)c->out_n[k] * 4, "out", (void **)&out_dev[k]),
                     CSAL3D_OK);
    first_out[k] = malloc((size_t)c->out_n[k] * 4);
  }

  /* forward */
  c->ref(c, hin, hout);
  csal3d_status s = c->fwd(c, e, in_dev, out_dev, saved);
  if (s != CSAL3D_OK) {
    snprintf(why, sizeof why, "forward failed: %s", csal3d_last_error());
    ok = 0;
    goto done;
  }
  for (int k = 0; k < c->nout; k++) {
    ck_assert_int_eq(e->download(e, first_out[k], out_dev[k], (size_t)c->out_n[k] * 4), CSAL3D_OK);
    double ek = rel_err(hout[k], first_out[k], NULL, c->out_n[k], NULL);
    if (ek > err_f) err_f = ek;
  }
  if (!(err_f <= c->tol_f * ts)) {
    snprintf(why, sizeof why, "forward error %.3g > %.3g", err_f, c->tol_f * ts);
    ok = 0;
  }

  if (c->bwd) {
    for (int k = 0; k < c->nout; k++) {
      r[k] = malloc(sizeof(double) * c->out_n[k]);
      for (int64_t i = 0; i < c->out_n[k]; i++) {
        r[k][i] = (double)(float)rng_unif(-1.0, 1.0);
        fbuf[i] = (float)r[k][i];
      }
      ck_assert_int_eq(e->alloc(e, (size_t)c->out_n[k] * 4, "dout", (void **)&dout_dev[k]),
                       CSAL3D_OK);
      ck_assert_int_eq(e->upload(e, dout_dev[k], fbuf, (size_t)c->out_n[k] * 4), CSAL3D_OK);
    }
    double *tmpout[MAXIO];
    for (int k = 0; k < c->nout; k++) tmpout[k] = malloc(sizeof(double) * c->out_n[k]);
    for (int k = 0; k < c->nin; k++) {
      tspec *t = &c->in[k];
      if (t->kind != T_IN && t->kind != T_PARAM) continue;
      ck_assert_int_eq(e->alloc(e, (size_t)t->n * 4, "din", &din_dev[k]), CSAL3D_OK);
      first_grad[k] = malloc((size_t)t->n * 4);
    }
    /* finite differences of the float64 reference, once per differentiable input:
     * every coordinate, or FD_SAMPLES random ones for big tensors */
    double *fd[MAXIO] = {0};
    int64_t *fsel[MAXIO] = {0}, fn[MAXIO] = {0};
    for (int k = 0; k < c->nin; k++) {
      tspec *t = &c->in[k];
      if (!din_dev[k]) continue;
      fn[k] = t->n <= FD_ALL_MAX ? t->n : FD_SAMPLES;
      fsel[k] = malloc(sizeof(int64_t) * fn[k]);
      fd[k] = calloc((size_t)t->n, sizeof(double));
      for (int64_t q = 0; q < fn[k]; q++) {
        int64_t i = t->n <= FD_ALL_MAX ? q : (int64_t)(rng_next() % (uint64_t)t->n);
        fsel[k][q] = i;
        double x0 = hin[k][i], h = 1e-5 * (1.0 + fabs(x0));
        hin[k][i] = x0 + h;
        double lp = loss_of(c, hin, tmpout, r);
        hin[k][i] = x0 - h;
        double lm = loss_of(c, hin, tmpout, r);
        hin[k][i] = x0;
        fd[k][i] = (lp - lm) / (2 * h);
      }
    }
    /* pre-fill content for the accumulation runs */
    double *pre[MAXIO] = {0};
    for (int k = 0; k < c->nin; k++)
      if (din_dev[k]) {
        pre[k] = malloc(sizeof(double) * c->in[k].n);
        for (int64_t i = 0; i < c->in[k].n; i++) pre[k][i] = (double)(float)rng_unif(-1, 1);
      }
    for (int pass = 0; pass < 3 && ok; pass++) {
      int accum = pass == 1;
      /* pass 0: overwrite, NaN prefill; 1: accumulate; 2: repeat of 0 (determinism) */
      for (int k = 0; k < c->nin; k++) {
        if (!din_dev[k]) continue;
        for (int64_t i = 0; i < c->in[k].n; i++)
          fbuf[i] = (c->in[k].kind == T_PARAM || accum) ? (float)pre[k][i] : NAN;
        ck_assert_int_eq(e->upload(e, din_dev[k], fbuf, (size_t)c->in[k].n * 4), CSAL3D_OK);
      }
      if (pass == 2) { /* determinism of the forward too */
        for (int k = 0; k < 4; k++) {
          e->free(e, saved[k]);
          saved[k] = NULL;
        }
        ck_assert_int_eq(c->fwd(c, e, in_dev, out_dev, saved), CSAL3D_OK);
        for (int k = 0; k < c->nout; k++) {
          ck_assert_int_eq(e->download(e, fbuf, out_dev[k], (size_t)c->out_n[k] * 4), CSAL3D_OK);
          if (!buffers_equal(fbuf, first_out[k], (size_t)c->out_n[k] * 4)) {
            snprintf(why, sizeof why, "forward output %d differs between two runs", k);
            ok = 0;
          }
        }
      }
      s = c->bwd(c, e, in_dev, out_dev, dout_dev, (float *const *)din_dev, accum, saved);
      if (s != CSAL3D_OK) {
        snprintf(why, sizeof why, "backward (accum %d) failed: %s", accum, csal3d_last_error());
        ok = 0;
        break;
      }
      for (int k = 0; k < c->nin && ok; k++) {
        tspec *t = &c->in[k];
        if (!din_dev[k]) continue;
        ck_assert_int_eq(e->download(e, fbuf, din_dev[k], (size_t)t->n * 4), CSAL3D_OK);
        if (pass == 2) {
          if (!buffers_equal(fbuf, first_grad[k], (size_t)t->n * 4)) {
            snprintf(why, sizeof why, "gradient of %s differs between two runs", t->name);
            ok = 0;
          }
          continue;
        }
        if (pass == 0) memcpy(first_grad[k], fbuf, (size_t)t->n * 4);
        if (t->kind == T_PARAM || accum)
          for (int64_t i = 0; i < t->n; i++) fbuf[i] = (float)(fbuf[i] - pre[k][i]);
        double mx;
        double ek = rel_err(fd[k], fbuf, fsel[k], fn[k], &mx);
        if (ek > err_b) err_b = ek;
        if (!(ek <= c->tol_b * ts)) {
          snprintf(why, sizeof why, "gradient of %s (accum %d): error %.3g > %.3g (max abs %.3g)",
                   t->name, accum, ek, c->tol_b * ts, mx);
          ok = 0;
        }
      }
    }
    for (int k = 0; k < c->nout; k++) free(tmpout[k]);
    for (int k = 0; k < c->nin; k++) {
      free(pre[k]);
      free(fd[k]);
      free(fsel[k]);
    }
  }
done:
  if (verbose || !ok)
    printf("%-16s %-5s %-64s fwd %8.2e  bwd %8.2e %6.2fs %s%s%s\n", c->op, e->name, c->desc,
           err_f, c->bwd ? err_b : 0.0, omp_get_wtime() - t_start, ok ? "OK" : "FAIL",
           ok ? "" : ": ", why);
  fflush(stdout);
  for (int k = 0; k < 4; k++) e->free(e, saved[k]);
  for (int k = 0; k < MAXIO; k++) {
    free(hin[k]);
    free(hout[k]);
    free(r[k]);
    free(first_out[k]);
    free(first_grad[k]);
    e->free(e, in_dev[k]);
    e->free(e, din_dev[k]);
    e->free(e, out_dev[k]);
    e->free(e, dout_dev[k]);
  }
  free(fbuf);
  if (!ok) failures++;
  return ok;
}

/* Runs a case on every engine; each must provide the op (`have` tells). */
static uint64_t case_counter;
static void run_all(opcase *c, int (*have)(const c3_engine *)) {
  open_engines();
  case_counter++;
  for (int i = 0; i < n_engines; i++) {
    ck_assert_msg(have(engines[i]), "the %s engine lacks %s", engines[i]->name, c->op);
    run_case(engines[i], c, case_counter * 7919 + 17);
  }
}

#define F(p) ((float *)(p))
#define I(p) ((int32_t *)(p))
#define CF(p) ((const float *)(p))

/* ---- conv3d ------------------------------------------------------------------------------- */

static void conv_ref(const opcase *c, double *const *in, double *const *out) {
  ref_conv3d(&c->conv, in[0], in[1], c->nin > 2 ? in[2] : NULL, out[0]);
}
static csal3d_status conv_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                              void **saved) {
  return e->conv3d_fwd(e, &c->conv, CF(in[0]), CF(in[1]), c->nin > 2 ? CF(in[2]) : NULL, out[0]);
}
static csal3d_status conv_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                              float *const *dout, float *const *din, int accum, void **saved) {
  C3_TRY(e->conv3d_bwd_data(e, &c->conv, dout[0], CF(in[1]), din[0], accum));
  return e->conv3d_bwd_weights(e, &c->conv, CF(in[0]), dout[0], din[1], c->nin > 2 ? din[2] : NULL);
}
static int have_conv(const c3_engine *e) {
  return e->conv3d_fwd && e->conv3d_bwd_data && e->conv3d_bwd_weights;
}

static int conv_mode; /* the CPU engine's convolution path for these cases */
static const char *conv_mode_name[] = {"conv3d", "conv3d/direct", "conv3d/gemm"};

static void conv_case(int n, int ci, int co, int d, int h, int w, int k, int s, int p,
                      c3_layout sl, c3_layout dl, int bias) {
  if (conv_mode != C3_CPU_CONV_AUTO && ci * co > 100) return; /* forced paths: small ones */
  opcase c;
  init_case(&c, conv_mode_name[conv_mode]);
  open_engines();
  c3_cpu_engine_set_conv_mode(engines[0], conv_mode);
  c3_conv3d_desc *cd = &c.conv;
  *cd = (c3_conv3d_desc){n, ci, co, {d, h, w}, {k, k, k}, {s, s, s}, {p, p, p}, sl, dl};
  int64_t in_n = (int64_t)n * ci * d * h * w;
  int64_t out_n = (int64_t)n * co * c3_conv3d_out_side(cd, 0) * c3_conv3d_out_side(cd, 1) *
                  c3_conv3d_out_side(cd, 2);
  add_in(&c, "x", in_n, T_IN, -1, 1);
  add_in(&c, "w", (int64_t)co * ci * k * k * k, T_PARAM, -0.5, 0.5);
  if (bias) add_in(&c, "bias", co, T_PARAM, -0.5, 0.5);
  c.nout = 1;
  c.out_n[0] = out_n;
  snprintf(c.desc, sizeof c.desc, "n%d %d->%d %dx%dx%d k%d s%d p%d %s->%s%s", n, ci, co, d, h, w,
           k, s, p, sl == C3_LAYOUT_NCDHW ? "NCDHW" : "NDHWC",
           dl == C3_LAYOUT_NCDHW ? "NCDHW" : "NDHWC", bias ? " bias" : "");
  c.ref = conv_ref;
  c.fwd = conv_fwd;
  c.bwd = conv_bwd;
  run_all(&c, have_conv);
}

START_TEST(op_conv3d) {
  const c3_layout A = C3_LAYOUT_NCDHW, B = C3_LAYOUT_NDHWC;
  conv_mode = _i; /* auto, then each path forced */
  conv_case(1, 1, 4, 6, 4, 8, 2, 2, 0, A, B, 1);  /* patch embed */
  conv_case(2, 2, 3, 4, 6, 2, 2, 2, 0, A, B, 1);
  conv_case(1, 3, 5, 5, 6, 7, 3, 1, 1, A, A, 1);  /* odd, non-cubic */
  conv_case(2, 4, 3, 3, 5, 4, 3, 1, 1, B, B, 1);
  conv_case(1, 5, 2, 4, 3, 5, 3, 1, 1, B, A, 0);
  conv_case(1, 6, 1, 4, 5, 6, 1, 1, 0, B, A, 1);  /* final 1^3 to in_ch */
  conv_case(1, 16, 16, 3, 4, 3, 3, 1, 1, B, B, 1); /* blocked kernels */
  conv_case(2, 24, 8, 3, 4, 5, 3, 1, 1, B, B, 1);
  conv_case(1, 8, 32, 3, 3, 4, 3, 1, 1, A, A, 1);
  conv_case(1, 3, 4, 5, 6, 7, 3, 2, 1, A, B, 1);  /* strided, padded */
  conv_case(2, 2, 3, 5, 4, 7, 2, 2, 0, B, A, 1);  /* odd sides: last plane unused */
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- matmul (forward semantics) and the Linear-layer recipe (backward) ------------------ */

static void mm_ref(const opcase *c, double *const *in, double *const *out) {
  const c3_matmul_desc *d = &c->mm;
  memcpy(out[0], in[3], sizeof(double) * c->out_n[0]);
  ref_matmul(d, in[0], in[1], c->iv[0] ? in[2] : NULL, out[0]);
}
static csal3d_status mm_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  C3_TRY(e->copy(e, out[0], in[3], (size_t)c->out_n[0] * 4));
  return e->matmul(e, &c->mm, CF(in[0]), CF(in[1]), c->iv[0] ? CF(in[2]) : NULL, out[0]);
}
static int have_matmul(const c3_engine *e) { return e->matmul != NULL; }

static void mm_case(int64_t batch, int64_t m, int64_t n, int64_t k, int ta, int tb, int64_t pad,
                    int bcast_b, int bcast_a, float alpha, float beta, int bias) {
  opcase c;
  init_case(&c, "matmul");
  c3_matmul_desc *d = &c.mm;
  int64_t a_n, b_n, c_n;
  ref_matmul_case(d, batch, m, n, k, ta, tb, pad, bcast_a, bcast_b, alpha, beta, &a_n, &b_n,
                  &c_n);
  c.iv[0] = bias;
  add_in(&c, "a", a_n, T_CONST, -1, 1);
  add_in(&c, "b", b_n, T_CONST, -1, 1);
  add_in(&c, "bias", n, T_CONST, -1, 1);
  add_in(&c, "c0", c_n, T_CONST, -1, 1);
  c.nout = 1;
  c.out_n[0] = c_n;
  snprintf(c.desc, sizeof c.desc, "b%lld %lldx%lldx%lld t%d%d ld+%lld%s%s a%g b%g%s",
           (long long)batch, (long long)m, (long long)n, (long long)k, ta, tb, (long long)pad,
           bcast_b ? " bcastB" : "", bcast_a ? " bcastA" : "", alpha, beta, bias ? " bias" : "");
  c.ref = mm_ref;
  c.fwd = mm_fwd;
  run_all(&c, have_matmul);
}

/* y = x W^T + b, backward by the recipe documented in engine.h */
static void lin_ref(const opcase *c, double *const *in, double *const *out) {
  int64_t rows = c->iv[0], fin = c->iv[1], fout = c->iv[2];
  c3_matmul_desc d = {1, rows, fout, fin, 0, 1, 0, 0, 0, 0, 0, 0, 1.0f, 0.0f};
  ref_matmul(&d, in[0], in[1], in[2], out[0]);
}
static csal3d_status lin_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                             void **saved) {
  int64_t rows = c->iv[0], fin = c->iv[1], fout = c->iv[2];
  c3_matmul_desc d = {1, rows, fout, fin, 0, 1, 0, 0, 0, 0, 0, 0, 1.0f, 0.0f};
  return e->matmul(e, &d, CF(in[0]), CF(in[1]), CF(in[2]), out[0]);
}
static csal3d_status lin_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                             float *const *dout, float *const *din, int accum, void **saved) {
  int64_t rows = c->iv[0], fin = c->iv[1], fout = c->iv[2];
  c3_matmul_desc dx = {1, rows, fin, fout, 0, 0, 0, 0, 0, 0, 0, 0, 1.0f, accum ? 1.0f : 0.0f};
  C3_TRY(e->matmul(e, &dx, dout[0], CF(in[1]), NULL, din[0]));
  c3_matmul_desc dw = {1, fout, fin, rows, 1, 0, 0, 0, 0, 0, 0, 0, 1.0f, 1.0f};
  C3_TRY(e->matmul(e, &dw, dout[0], CF(in[0]), NULL, din[1]));
  return e->reduce_sum(e, 1, rows, fout, 1.0f, dout[0], din[2], 1);
}
static int have_linear(const c3_engine *e) { return e->matmul && e->reduce_sum; }

static void lin_case(int64_t rows, int64_t fin, int64_t fout) {
  opcase c;
  init_case(&c, "linear");
  c.iv[0] = rows;
  c.iv[1] = fin;
  c.iv[2] = fout;
  add_in(&c, "x", rows * fin, T_IN, -1, 1);
  add_in(&c, "W", fout * fin, T_PARAM, -0.5, 0.5);
  add_in(&c, "b", fout, T_PARAM, -0.5, 0.5);
  c.nout = 1;
  c.out_n[0] = rows * fout;
  snprintf(c.desc, sizeof c.desc, "rows %lld in %lld out %lld (matmul recipe)", (long long)rows,
           (long long)fin, (long long)fout);
  c.ref = lin_ref;
  c.fwd = lin_fwd;
  c.bwd = lin_bwd;
  run_all(&c, have_linear);
}

START_TEST(op_matmul) {
  mm_case(1, 7, 5, 9, 0, 0, 0, 0, 0, 1.0f, 0.0f, 0);
  mm_case(1, 7, 5, 9, 1, 0, 0, 0, 0, 1.0f, 0.0f, 1);
  mm_case(1, 13, 6, 4, 0, 1, 0, 0, 0, 1.0f, 1.0f, 1);
  mm_case(1, 5, 11, 3, 1, 1, 2, 0, 0, 1.0f, 0.5f, 0);
  mm_case(3, 6, 7, 8, 0, 1, 0, 1, 0, 1.0f, 0.0f, 1);  /* Linear on a batch */
  mm_case(4, 5, 3, 6, 0, 0, 1, 0, 0, 0.25f, 0.0f, 0);
  mm_case(2, 9, 4, 5, 1, 0, 3, 0, 0, 1.0f, 1.0f, 1);
  mm_case(3, 4, 6, 5, 0, 0, 0, 0, 1, 1.0f, 0.0f, 0);  /* shared A */
  mm_case(2, 6, 5, 7, 0, 1, 0, 0, 0, 0.5f, 0.0f, 1);  /* alpha with bias: bias not scaled */
  lin_case(11, 6, 9);
  lin_case(30, 12, 36);
  lin_case(5, 48, 4);
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- layer norm, softmax, GELU --------------------------------------------------------------- */

static void ln_ref(const opcase *c, double *const *in, double *const *out) {
  ref_layer_norm(c->iv[0], c->iv[1], c->fv[0], in[0], c->iv[2] ? in[1] : NULL,
                 c->iv[2] ? in[2] : NULL, out[0]);
}
static csal3d_status ln_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  int64_t rows = c->iv[0];
  if (c->iv[3]) { /* training: save stats */
    C3_TRY(e->alloc(e, (size_t)rows * 4, "mean", &saved[0]));
    C3_TRY(e->alloc(e, (size_t)rows * 4, "var", &saved[1]));
  }
  return e->layer_norm_fwd(e, rows, c->iv[1], c->fv[0], CF(in[0]), c->iv[2] ? CF(in[1]) : NULL,
                           c->iv[2] ? CF(in[2]) : NULL, out[0], F(saved[0]), F(saved[1]));
}
static csal3d_status ln_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  return e->layer_norm_bwd(e, c->iv[0], c->iv[1], c->fv[0], CF(in[0]),
                           c->iv[2] ? CF(in[1]) : NULL, CF(saved[0]), CF(saved[1]), dout[0],
                           din[0], accum, c->iv[2] ? din[1] : NULL, c->iv[2] ? din[2] : NULL);
}
static int have_ln(const c3_engine *e) { return e->layer_norm_fwd && e->layer_norm_bwd; }

static void ln_case(int64_t rows, int64_t cols, int affine, int training) {
  opcase c;
  init_case(&c, "layer_norm");
  c.iv[0] = rows;
  c.iv[1] = cols;
  c.iv[2] = affine;
  c.iv[3] = training;
  c.fv[0] = 1e-5f;
  add_in(&c, "x", rows * cols, T_IN, -2, 3);
  if (affine) {
    add_in(&c, "gamma", cols, T_PARAM, 0.5, 1.5);
    add_in(&c, "beta", cols, T_PARAM, -0.5, 0.5);
  }
  c.nout = 1;
  c.out_n[0] = rows * cols;
  snprintf(c.desc, sizeof c.desc, "%lld x %lld%s%s", (long long)rows, (long long)cols,
           affine ? " affine" : "", training ? "" : " inference");
  c.ref = ln_ref;
  c.fwd = ln_fwd;
  c.bwd = training ? ln_bwd : NULL;
  run_all(&c, have_ln);
}

static void sm_ref(const opcase *c, double *const *in, double *const *out) {
  ref_softmax(c->iv[0], c->iv[1], in[0], out[0]);
}
static csal3d_status sm_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  return e->softmax_fwd(e, c->iv[0], c->iv[1], CF(in[0]), out[0]);
}
static csal3d_status sm_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  return e->softmax_bwd(e, c->iv[0], c->iv[1], out[0], dout[0], din[0], accum);
}
static int have_sm(const c3_engine *e) { return e->softmax_fwd && e->softmax_bwd; }

static void gelu_ref(const opcase *c, double *const *in, double *const *out) {
  ref_gelu(c->iv[0], in[0], out[0]);
}
static csal3d_status gelu_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                              void **saved) {
  return e->gelu_fwd(e, c->iv[0], CF(in[0]), out[0]);
}
static csal3d_status gelu_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                              float *const *dout, float *const *din, int accum, void **saved) {
  return e->gelu_bwd(e, c->iv[0], CF(in[0]), dout[0], din[0], accum);
}
static int have_gelu(const c3_engine *e) { return e->gelu_fwd && e->gelu_bwd; }

START_TEST(op_norm_softmax_gelu) {
  ln_case(7, 12, 1, 1);
  ln_case(33, 48, 1, 1);
  ln_case(5, 96, 0, 1);
  ln_case(9, 24, 1, 0);
  ln_case(4, 384, 1, 1);
  static const int64_t sm[][2] = {{5, 7}, {13, 27}, {3, 343}, {64, 8}};
  for (int i = 0; i < 4; i++) {
    opcase c;
    init_case(&c, "softmax");
    c.iv[0] = sm[i][0];
    c.iv[1] = sm[i][1];
    add_in(&c, "x", sm[i][0] * sm[i][1], T_IN, -4, 4);
    c.nout = 1;
    c.out_n[0] = sm[i][0] * sm[i][1];
    snprintf(c.desc, sizeof c.desc, "%lld x %lld", (long long)sm[i][0], (long long)sm[i][1]);
    c.ref = sm_ref;
    c.fwd = sm_fwd;
    c.bwd = sm_bwd;
    run_all(&c, have_sm);
  }
  static const int64_t gn[] = {1, 37, 1000, 4099};
  for (int i = 0; i < 4; i++) {
    opcase c;
    init_case(&c, "gelu_erf");
    c.iv[0] = gn[i];
    add_in(&c, "x", gn[i], T_IN, -4, 4);
    c.nout = 1;
    c.out_n[0] = gn[i];
    snprintf(c.desc, sizeof c.desc, "n %lld", (long long)gn[i]);
    c.ref = gelu_ref;
    c.fwd = gelu_fwd;
    c.bwd = gelu_bwd;
    run_all(&c, have_gelu);
  }
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- instance norm + LeakyReLU, upsampling ----------------------------------------------------- */

static void in_ref(const opcase *c, double *const *in, double *const *out) {
  ref_inorm_lrelu(&c->inorm, in[0], out[0]);
}
static csal3d_status in_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  int64_t nc = c->inorm.n * c->inorm.c;
  C3_TRY(e->alloc(e, (size_t)nc * 4, "mean", &saved[0]));
  C3_TRY(e->alloc(e, (size_t)nc * 4, "var", &saved[1]));
  return e->inorm_lrelu_fwd(e, &c->inorm, CF(in[0]), out[0], F(saved[0]), F(saved[1]));
}
static csal3d_status in_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  return e->inorm_lrelu_bwd(e, &c->inorm, CF(in[0]), CF(saved[0]), CF(saved[1]), dout[0], din[0],
                            accum);
}
static int have_in(const c3_engine *e) { return e->inorm_lrelu_fwd && e->inorm_lrelu_bwd; }

static void up_ref(const opcase *c, double *const *in, double *const *out) {
  ref_upsample2x(&c->up, in[0], out[0]);
}
static csal3d_status up_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  return e->upsample2x_fwd(e, &c->up, CF(in[0]), out[0]);
}
static csal3d_status up_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  return e->upsample2x_bwd(e, &c->up, dout[0], din[0], accum);
}
static int have_up(const c3_engine *e) { return e->upsample2x_fwd && e->upsample2x_bwd; }

START_TEST(op_inorm_upsample) {
  static const int64_t sh[][5] = {{1, 3, 4, 5, 6}, {2, 5, 3, 3, 7}, {1, 16, 4, 4, 4}, {2, 2, 1, 3, 2}};
  for (int i = 0; i < 4; i++)
    for (int l = 0; l < 2; l++) {
      opcase c;
      init_case(&c, "inorm_lrelu");
      c.inorm = (c3_inorm_desc){sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4],
                                l ? C3_LAYOUT_NDHWC : C3_LAYOUT_NCDHW, 1e-5f, 0.01f};
      int64_t n = sh[i][0] * sh[i][1] * sh[i][2] * sh[i][3] * sh[i][4];
      add_in(&c, "x", n, T_IN, -2, 3);
      c.nout = 1;
      c.out_n[0] = n;
      snprintf(c.desc, sizeof c.desc, "n%lld c%lld %lldx%lldx%lld %s", (long long)sh[i][0],
               (long long)sh[i][1], (long long)sh[i][2], (long long)sh[i][3], (long long)sh[i][4],
               l ? "NDHWC" : "NCDHW");
      c.ref = in_ref;
      c.fwd = in_fwd;
      c.bwd = in_bwd;
      run_all(&c, have_in);
    }
  for (int i = 0; i < 4; i++)
    for (int l = 0; l < 2; l++) {
      opcase c;
      init_case(&c, "upsample2x");
      c.up = (c3_upsample_desc){sh[i][0], sh[i][1], sh[i][2], sh[i][3], sh[i][4],
                                l ? C3_LAYOUT_NDHWC : C3_LAYOUT_NCDHW};
      int64_t n = sh[i][0] * sh[i][1] * sh[i][2] * sh[i][3] * sh[i][4];
      add_in(&c, "x", n, T_IN, -2, 2);
      c.nout = 1;
      c.out_n[0] = 8 * n;
      snprintf(c.desc, sizeof c.desc, "n%lld c%lld %lldx%lldx%lld %s", (long long)sh[i][0],
               (long long)sh[i][1], (long long)sh[i][2], (long long)sh[i][3], (long long)sh[i][4],
               l ? "NDHWC" : "NCDHW");
      c.ref = up_ref;
      c.fwd = up_fwd;
      c.bwd = up_bwd;
      run_all(&c, have_up);
    }
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- window attention ------------------------------------------------------------------------- */

static void at_ref(const opcase *c, double *const *in, double *const *out) {
  ref_attn(&c->at, in[0], in[1], c->nin > 2 ? in[2] : NULL, out[0], NULL);
}
static csal3d_status at_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  const c3_attn_desc *d = &c->at;
  if (c->iv[0])
    C3_TRY(e->alloc(e, (size_t)(d->windows * d->heads * d->tokens * d->tokens) * 4, "probs",
                    &saved[0]));
  return e->attn_fwd(e, d, CF(in[0]), CF(in[1]), c->nin > 2 ? I(in[2]) : NULL, out[0],
                     F(saved[0]));
}
static csal3d_status at_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  return e->attn_bwd(e, &c->at, CF(in[0]), CF(in[1]), c->nin > 2 ? I(in[2]) : NULL,
                     CF(saved[0]), dout[0], din[0], accum, din[1]);
}
static int have_at(const c3_engine *e) { return e->attn_fwd && e->attn_bwd; }

static void at_case(int64_t windows, int64_t tokens, int64_t heads, int64_t hd, int w0, int w1,
                    int w2, int64_t mask_windows, int save) {
  opcase c;
  init_case(&c, "attention");
  c3_attn_desc *d = &c.at;
  *d = (c3_attn_desc){windows, tokens, heads, hd, {w0, w1, w2}, (float)(1.0 / sqrt((double)hd)),
                      mask_windows, -100.0f};
  c.iv[0] = save;
  int64_t C = heads * hd;
  add_in(&c, "qkv", windows * tokens * 3 * C, T_IN, -1.5, 1.5);
  add_in(&c, "table", (int64_t)(2 * w0 - 1) * (2 * w1 - 1) * (2 * w2 - 1) * heads, T_PARAM, -1, 1);
  if (mask_windows) add_in(&c, "region", mask_windows * tokens, T_INT, 0, 3);
  c.nout = 1;
  c.out_n[0] = windows * tokens * C;
  snprintf(c.desc, sizeof c.desc, "win %lld n %lld heads %lld hd %lld full %dx%dx%d%s%s",
           (long long)windows, (long long)tokens, (long long)heads, (long long)hd, w0, w1, w2,
           mask_windows ? " mask" : "", save ? " saved P" : " recompute P");
  c.ref = at_ref;
  c.fwd = at_fwd;
  c.bwd = at_bwd;
  run_all(&c, have_at);
}

START_TEST(op_attention) {
  at_case(3, 8, 2, 4, 2, 2, 2, 0, 1);
  at_case(3, 8, 2, 4, 2, 2, 2, 0, 0);
  at_case(4, 18, 3, 4, 3, 2, 3, 2, 1);  /* mask, 2 images of 2 windows */
  at_case(4, 18, 3, 4, 3, 2, 3, 2, 0);
  at_case(2, 10, 2, 3, 3, 3, 3, 0, 1);  /* clipped: first 10 of a 27-token window */
  at_case(6, 20, 1, 5, 3, 3, 3, 3, 0);  /* clipped + mask */
  at_case(2, 343, 1, 4, 7, 7, 7, 1, 0); /* full 7^3 window (FD on samples) */
  /* head sizes above C3_ATTN_DOT_MAX (8): q k^T by GEMM on the CPU, then the row pass */
  at_case(4, 18, 2, 16, 3, 2, 3, 2, 1);
  at_case(4, 27, 2, 12, 3, 3, 3, 2, 0);
  at_case(2, 20, 1, 32, 3, 3, 3, 0, 0);
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- windows, patch merging, transposes, permutes ----------------------------------------------- */

static void wp_ref(const opcase *c, double *const *in, double *const *out) {
  if (c->iv[0]) ref_window_merge(&c->win, in[0], out[0]);
  else ref_window_partition(&c->win, in[0], out[0]);
}
static csal3d_status wp_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  if (c->iv[0]) return e->window_merge(e, &c->win, CF(in[0]), out[0], 0);
  return e->window_partition(e, &c->win, CF(in[0]), out[0], 0);
}
static csal3d_status wp_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  if (c->iv[0]) return e->window_partition(e, &c->win, dout[0], din[0], accum);
  return e->window_merge(e, &c->win, dout[0], din[0], accum);
}
static int have_wp(const c3_engine *e) { return e->window_partition && e->window_merge; }

static void wp_case(int64_t b, int64_t d, int64_t h, int64_t w, int64_t ch, int w0, int w1, int w2,
                    int s0, int s1, int s2, int merge) {
  opcase c;
  init_case(&c, merge ? "window_merge" : "window_partition");
  c.win = (c3_window_desc){b, d, h, w, ch, {w0, w1, w2}, {s0, s1, s2}};
  c.iv[0] = merge;
  int64_t grid = b * d * h * w * ch;
  int64_t wins = b * c3_window_count(&c.win) * w0 * w1 * w2 * ch;
  add_in(&c, merge ? "xw" : "x", merge ? wins : grid, T_IN, -1, 1);
  c.nout = 1;
  c.out_n[0] = merge ? grid : wins;
  snprintf(c.desc, sizeof c.desc, "b%lld %lldx%lldx%lld c%lld win %dx%dx%d shift %d,%d,%d",
           (long long)b, (long long)d, (long long)h, (long long)w, (long long)ch, w0, w1, w2, s0,
           s1, s2);
  c.tol_f = 1e-7;
  c.tol_b = 1e-5;
  c.ref = wp_ref;
  c.fwd = wp_fwd;
  c.bwd = wp_bwd;
  run_all(&c, have_wp);
}

static void pm_ref(const opcase *c, double *const *in, double *const *out) {
  ref_patch_merge(&c->mg, in[0], out[0]);
}
static csal3d_status pm_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  return e->patch_merge_fwd(e, &c->mg, CF(in[0]), out[0]);
}
static csal3d_status pm_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  return e->patch_merge_bwd(e, &c->mg, dout[0], din[0], accum);
}
static int have_pm(const c3_engine *e) { return e->patch_merge_fwd && e->patch_merge_bwd; }

static void pm_case(int64_t b, int64_t d, int64_t h, int64_t w, int64_t ch, int monai) {
  opcase c;
  init_case(&c, "patch_merge");
  unsigned char mo[8] = C3_MERGE_ORDER_MONAI, di[8] = C3_MERGE_ORDER_DISTINCT;
  c.mg = (c3_merge_desc){b, d, h, w, ch, {0}};
  memcpy(c.mg.order, monai ? mo : di, 8);
  add_in(&c, "x", b * d * h * w * ch, T_IN, -1, 1);
  c.nout = 1;
  c.out_n[0] = b * ((d + 1) / 2) * ((h + 1) / 2) * ((w + 1) / 2) * 8 * ch;
  snprintf(c.desc, sizeof c.desc, "b%lld %lldx%lldx%lld c%lld order %s", (long long)b,
           (long long)d, (long long)h, (long long)w, (long long)ch, monai ? "MONAI" : "distinct");
  c.tol_f = 1e-7;
  c.tol_b = 1e-5;
  c.ref = pm_ref;
  c.fwd = pm_fwd;
  c.bwd = pm_bwd;
  run_all(&c, have_pm);
}

static void tr_ref(const opcase *c, double *const *in, double *const *out) {
  ref_transpose(c->iv[0], c->iv[1], c->iv[2], in[0], out[0]);
}
static csal3d_status tr_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  return e->transpose(e, c->iv[0], c->iv[1], c->iv[2], CF(in[0]), out[0], 0);
}
static csal3d_status tr_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  return e->transpose(e, c->iv[0], c->iv[2], c->iv[1], dout[0], din[0], accum);
}
static int have_tr(const c3_engine *e) { return e->transpose != NULL; }

static void pe_ref(const opcase *c, double *const *in, double *const *out) {
  ref_permute3d(&c->pm, in[0], out[0]);
}
static csal3d_status pe_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  return e->permute3d(e, &c->pm, CF(in[0]), out[0], 0);
}
static csal3d_status pe_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  c3_permute3d_desc inv = c3_permute3d_inverse(&c->pm);
  return e->permute3d(e, &inv, dout[0], din[0], accum);
}
static int have_pe(const c3_engine *e) { return e->permute3d != NULL; }

START_TEST(op_permutes) {
  wp_case(1, 5, 6, 7, 3, 3, 3, 3, 0, 0, 0, 0);  /* padding on every axis */
  wp_case(2, 6, 4, 9, 2, 3, 4, 3, 1, 0, 2, 0);  /* shift + clipped axis */
  wp_case(1, 7, 7, 7, 2, 7, 7, 7, 3, 3, 3, 0);
  wp_case(1, 8, 3, 10, 2, 7, 3, 7, 3, 0, 3, 0); /* pad to 14, shift 3 */
  wp_case(1, 5, 6, 7, 3, 3, 3, 3, 0, 0, 0, 1);
  wp_case(2, 6, 4, 9, 2, 3, 4, 3, 1, 0, 2, 1);
  wp_case(1, 8, 3, 10, 2, 7, 3, 7, 3, 0, 3, 1);
  pm_case(1, 4, 6, 2, 3, 1);
  pm_case(2, 5, 3, 7, 2, 1); /* odd sides: zero padding */
  pm_case(1, 4, 6, 2, 3, 0);
  pm_case(1, 3, 5, 4, 2, 0);
  static const int64_t tr[][3] = {{1, 5, 7}, {2, 33, 40}, {3, 64, 1}, {1, 1, 9}};
  for (int i = 0; i < 4; i++) {
    opcase c;
    init_case(&c, "transpose");
    c.iv[0] = tr[i][0];
    c.iv[1] = tr[i][1];
    c.iv[2] = tr[i][2];
    add_in(&c, "x", tr[i][0] * tr[i][1] * tr[i][2], T_IN, -1, 1);
    c.nout = 1;
    c.out_n[0] = tr[i][0] * tr[i][1] * tr[i][2];
    snprintf(c.desc, sizeof c.desc, "b%lld %lld x %lld", (long long)tr[i][0], (long long)tr[i][1],
             (long long)tr[i][2]);
    c.tol_f = 1e-7;
    c.tol_b = 1e-5;
    c.ref = tr_ref;
    c.fwd = tr_fwd;
    c.bwd = tr_bwd;
    run_all(&c, have_tr);
  }
  /* views and rot90s of the SSL observations, and a general case */
  static const int pe[][6] = {{0, 1, 2, 0, 0, 0}, {1, 0, 2, 0, 0, 0}, {2, 1, 0, 0, 0, 0},
                              {0, 2, 1, 0, 1, 0}, {0, 1, 2, 0, 1, 1}, {0, 2, 1, 0, 0, 1},
                              {2, 0, 1, 1, 0, 1}};
  for (int i = 0; i < 7; i++) {
    opcase c;
    init_case(&c, "permute3d");
    c.pm = (c3_permute3d_desc){2, i == 6 ? 3 : 1, {4, 5, 6}, {pe[i][0], pe[i][1], pe[i][2]},
                               {pe[i][3], pe[i][4], pe[i][5]}};
    int64_t n = c.pm.batch * c.pm.inner * 4 * 5 * 6;
    add_in(&c, "x", n, T_IN, -1, 1);
    c.nout = 1;
    c.out_n[0] = n;
    snprintf(c.desc, sizeof c.desc, "b2 inner %lld 4x5x6 perm %d%d%d flip %d%d%d",
             (long long)c.pm.inner, pe[i][0], pe[i][1], pe[i][2], pe[i][3], pe[i][4], pe[i][5]);
    c.tol_f = 1e-7;
    c.tol_b = 1e-5;
    c.ref = pe_ref;
    c.fwd = pe_fwd;
    c.bwd = pe_bwd;
    run_all(&c, have_pe);
  }
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* rot90 k=1 in (H, W) is out[.., i, j] = in[.., j, W-1-i] (numpy/torch), as docs/algorithms.md says */
START_TEST(permute3d_is_rot90) {
  open_engines();
  c3_engine *e = engines[0];
  float x[2 * 3 * 4], y[2 * 4 * 3];
  for (int i = 0; i < 24; i++) x[i] = (float)i;
  c3_permute3d_desc d = {1, 1, {2, 3, 4}, {0, 2, 1}, {0, 1, 0}};
  float *xd, *yd;
  ck_assert_int_eq(e->alloc(e, sizeof x, "x", (void **)&xd), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, sizeof y, "y", (void **)&yd), CSAL3D_OK);
  e->upload(e, xd, x, sizeof x);
  ck_assert_int_eq(e->permute3d(e, &d, xd, yd, 0), CSAL3D_OK);
  e->download(e, y, yd, sizeof y);
  for (int a = 0; a < 2; a++)
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 3; j++)
        ck_assert_float_eq(y[(a * 4 + i) * 3 + j], x[(a * 3 + j) * 4 + (4 - 1 - i)]);
  e->free(e, xd);
  e->free(e, yd);
}
END_TEST

/* ---- reductions, elementwise --------------------------------------------------------------------- */

static void rs_ref(const opcase *c, double *const *in, double *const *out) {
  if (c->iv[3]) ref_broadcast(c->iv[0], c->iv[1], c->iv[2], c->fv[0], in[0], out[0]);
  else ref_reduce_sum(c->iv[0], c->iv[1], c->iv[2], c->fv[0], in[0], out[0]);
}
static csal3d_status rs_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  if (c->iv[3]) return e->broadcast(e, c->iv[0], c->iv[1], c->iv[2], c->fv[0], CF(in[0]), out[0], 0);
  return e->reduce_sum(e, c->iv[0], c->iv[1], c->iv[2], c->fv[0], CF(in[0]), out[0], 0);
}
static csal3d_status rs_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  if (c->iv[3])
    return e->reduce_sum(e, c->iv[0], c->iv[1], c->iv[2], c->fv[0], dout[0], din[0], accum);
  return e->broadcast(e, c->iv[0], c->iv[1], c->iv[2], c->fv[0], dout[0], din[0], accum);
}
static int have_rs(const c3_engine *e) { return e->reduce_sum && e->broadcast; }

static void ew_ref(const opcase *c, double *const *in, double *const *out) {
  int64_t n = c->iv[0];
  for (int64_t i = 0; i < n; i++) {
    switch (c->iv[1]) {
    case 0: out[0][i] = in[0][i] + in[1][i]; break;
    case 1: out[0][i] = in[0][i] * in[1][i]; break;
    case 2: out[0][i] = c->fv[0] * in[0][i] + c->fv[1] * in[1][i]; break;
    default: out[0][i] = c->fv[0] * in[0][i]; break;
    }
  }
}
static csal3d_status ew_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  int64_t n = c->iv[0];
  switch (c->iv[1]) {
  case 0: return e->add(e, n, CF(in[0]), CF(in[1]), out[0]);
  case 1: return e->mul(e, n, CF(in[0]), CF(in[1]), out[0]);
  case 2:
    C3_TRY(e->copy(e, out[0], in[1], (size_t)n * 4));
    return e->axpby(e, n, c->fv[0], CF(in[0]), c->fv[1], out[0]);
  default:
    C3_TRY(e->copy(e, out[0], in[0], (size_t)n * 4));
    return e->scale(e, n, c->fv[0], out[0]);
  }
}
static int have_ew(const c3_engine *e) { return e->add && e->mul && e->axpby && e->scale; }

static void sd_ref(const opcase *c, double *const *in, double *const *out) {
  double s = 0.0;
  for (int64_t i = 0; i < c->iv[0]; i++) s += c->iv[1] ? in[0][i] * in[1][i] : in[0][i];
  out[0][0] = s;
}
static csal3d_status sd_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  double s;
  if (c->iv[1]) C3_TRY(e->dot(e, c->iv[0], CF(in[0]), CF(in[1]), &s));
  else C3_TRY(e->sum(e, c->iv[0], CF(in[0]), &s));
  float f = (float)s;
  return e->upload(e, out[0], &f, 4);
}
static int have_sd(const c3_engine *e) { return e->sum && e->dot; }

START_TEST(op_reductions_elementwise) {
  static const int64_t rs[][3] = {{1, 37, 5}, {3, 600, 1}, {2, 1, 7}, {4, 9, 48}};
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 4; i++) {
      opcase c;
      init_case(&c, b ? "broadcast" : "reduce_sum");
      c.iv[0] = rs[i][0];
      c.iv[1] = rs[i][1];
      c.iv[2] = rs[i][2];
      c.iv[3] = b;
      c.fv[0] = i == 1 ? 1.0f / 600 : 0.75f;
      int64_t big = rs[i][0] * rs[i][1] * rs[i][2], small = rs[i][0] * rs[i][2];
      add_in(&c, "x", b ? small : big, T_IN, -1, 1);
      c.nout = 1;
      c.out_n[0] = b ? big : small;
      snprintf(c.desc, sizeof c.desc, "[%lld, %lld, %lld] alpha %g", (long long)rs[i][0],
               (long long)rs[i][1], (long long)rs[i][2], c.fv[0]);
      c.ref = rs_ref;
      c.fwd = rs_fwd;
      c.bwd = rs_bwd;
      run_all(&c, have_rs);
    }
  static const char *ew[] = {"add", "mul", "axpby", "scale"};
  for (int k = 0; k < 4; k++)
    for (int64_t n = 1; n < 100000; n *= 97) {
      opcase c;
      init_case(&c, ew[k]);
      c.iv[0] = n;
      c.iv[1] = k;
      c.fv[0] = -1.5f;
      c.fv[1] = 0.25f;
      add_in(&c, "x", n, T_CONST, -2, 2);
      add_in(&c, "y", n, T_CONST, -2, 2);
      c.nout = 1;
      c.out_n[0] = n;
      snprintf(c.desc, sizeof c.desc, "n %lld", (long long)n);
      c.tol_f = 1e-6;
      c.ref = ew_ref;
      c.fwd = ew_fwd;
      run_all(&c, have_ew);
    }
  for (int k = 0; k < 2; k++)
    for (int64_t n = 1; n < 200000; n *= 59) {
      opcase c;
      init_case(&c, k ? "dot" : "sum");
      c.iv[0] = n;
      c.iv[1] = k;
      add_in(&c, "x", n, T_CONST, -1, 2);
      add_in(&c, "y", n, T_CONST, -1, 1);
      c.nout = 1;
      c.out_n[0] = 1;
      snprintf(c.desc, sizeof c.desc, "n %lld", (long long)n);
      c.tol_f = 1e-7;
      c.ref = sd_ref;
      c.fwd = sd_fwd;
      run_all(&c, have_sd);
    }
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- losses ----------------------------------------------------------------------------------- */

static void loss_ref(const opcase *c, double *const *in, double *const *out) {
  int64_t n = c->iv[0];
  switch (c->iv[1]) {
  case 0: out[0][0] = ref_mse(n, in[0], in[1], c->nin > 2 ? in[2] : NULL); break;
  case 1: out[0][0] = ref_cross_entropy(n, c->iv[2], in[0], in[1]); break;
  default: out[0][0] = ref_l1(n, in[0], in[1]); break;
  }
}
static csal3d_status loss_run(const opcase *c, c3_engine *e, void *const *in, float gs,
                              float *const *din, int accum, double *loss) {
  int64_t n = c->iv[0];
  switch (c->iv[1]) {
  case 0:
    return e->mse_loss(e, n, CF(in[0]), CF(in[1]), c->nin > 2 ? CF(in[2]) : NULL, gs,
                       din ? din[0] : NULL, din ? din[1] : NULL, accum, loss);
  case 1:
    return e->cross_entropy(e, n, c->iv[2], CF(in[0]), I(in[1]), gs, din ? din[0] : NULL, accum,
                            loss);
  default:
    return e->l1_loss(e, n, CF(in[0]), CF(in[1]), gs, din ? din[0] : NULL, din ? din[1] : NULL,
                      accum, loss);
  }
}
static csal3d_status loss_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                              void **saved) {
  double loss;
  C3_TRY(loss_run(c, e, in, 1.0f, NULL, 0, &loss));
  float f = (float)loss;
  return e->upload(e, out[0], &f, 4);
}
static csal3d_status loss_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                              float *const *dout, float *const *din, int accum, void **saved) {
  float gs;
  C3_TRY(e->download(e, &gs, dout[0], 4));
  double loss;
  return loss_run(c, e, in, gs, din, accum, &loss);
}
static int have_loss(const c3_engine *e) { return e->mse_loss && e->cross_entropy && e->l1_loss; }

START_TEST(op_losses) {
  for (int k = 0; k < 5; k++) {
    opcase c;
    static const char *names[] = {"mse", "mse_weighted", "cross_entropy", "cross_entropy", "l1"};
    init_case(&c, names[k]);
    int64_t n = k == 2 ? 3 : k == 3 ? 9 : 1 + 37 * (k + 1);
    c.iv[0] = n;
    c.iv[1] = k < 2 ? 0 : k < 4 ? 1 : 2;
    c.iv[2] = 4; /* classes */
    if (c.iv[1] == 1) {
      add_in(&c, "logits", n * 4, T_IN, -3, 3);
      add_in(&c, "labels", n, T_INT, 0, 4);
    } else {
      add_in(&c, "x", n, T_IN, -1, 1);
      add_in(&c, c.iv[1] == 0 ? "target" : "y", n, T_IN, -1, 1);
      if (k == 1) add_in(&c, "w", n, T_CONST, 0, 1);
    }
    c.nout = 1;
    c.out_n[0] = 1;
    snprintf(c.desc, sizeof c.desc, "n %lld%s", (long long)n, c.iv[1] == 1 ? " x 4 classes" : "");
    c.ref = loss_ref;
    c.fwd = loss_fwd;
    c.bwd = loss_bwd;
    run_all(&c, have_loss);
  }
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- segmentation ops (engines that provide them; the CUDA engine does not yet) ---------- */

/* Runs a case on the engines that have the op; says which do not. */
static void run_provided(opcase *c, int (*have)(const c3_engine *)) {
  open_engines();
  case_counter++;
  for (int i = 0; i < n_engines; i++) {
    if (!have(engines[i])) {
      if (verbose) printf("%-16s %-5s not provided (NULL in the table)\n", c->op, engines[i]->name);
      continue;
    }
    run_case(engines[i], c, case_counter * 7919 + 17);
  }
}

static void cc_ref(const opcase *c, double *const *in, double *const *out) {
  const int64_t *v = c->cc;
  memset(out[0], 0, sizeof(double) * c->out_n[0]);
  ref_channel_copy(v[0], v[1], v[2], v[3], v[4], in[0], v[5], v[6], out[0]);
}
static csal3d_status cc_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  const int64_t *v = c->cc;
  C3_TRY(e->zero(e, out[0], (size_t)c->out_n[0] * 4));
  return e->channel_copy(e, v[0], v[1], v[2], v[3], v[4], CF(in[0]), v[5], v[6], out[0], 0);
}
static csal3d_status cc_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  const int64_t *v = c->cc; /* x_ch == count here: the adjoint writes all of dx */
  return e->channel_copy(e, v[0], v[1], v[2], v[5], v[6], dout[0], v[3], v[4], din[0], accum);
}
static int have_cc(const c3_engine *e) { return e->channel_copy != NULL && e->zero != NULL; }

static void sl_ref(const opcase *c, double *const *in, double *const *out) {
  out[0][0] = ref_seg_loss(&c->seg, in[0], in[1]);
}
static csal3d_status sl_fwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            void **saved) {
  double loss;
  C3_TRY(e->seg_loss(e, &c->seg, CF(in[0]), I(in[1]), 1.0f, NULL, 0, &loss, NULL, NULL));
  float f = (float)loss;
  return e->upload(e, out[0], &f, 4);
}
static csal3d_status sl_bwd(const opcase *c, c3_engine *e, void *const *in, float *const *out,
                            float *const *dout, float *const *din, int accum, void **saved) {
  float gs;
  C3_TRY(e->download(e, &gs, dout[0], 4));
  double loss;
  return e->seg_loss(e, &c->seg, CF(in[0]), I(in[1]), gs, din[0], accum, &loss, NULL, NULL);
}
static int have_sl(const c3_engine *e) { return e->seg_loss != NULL; }

START_TEST(op_segmentation) {
  /* outer, inner, count, x_ch, x_off, y_ch, y_off; backward cases have x_ch == count */
  static const int64_t ccs[][8] = {
      {2 * 3 * 4 * 5, 1, 3, 3, 0, 7, 4, 1}, /* NDHWC: the second block of a concat */
      {2 * 3 * 4 * 5, 1, 4, 4, 0, 7, 0, 1}, /* NDHWC: the first block */
      {2, 3 * 4 * 5, 5, 5, 0, 9, 2, 1},     /* NCDHW */
      {3, 7, 2, 6, 3, 4, 1, 0},             /* a block from the middle of x: forward only */
  };
  for (int i = 0; i < 4; i++) {
    opcase c;
    init_case(&c, "channel_copy");
    memcpy(c.cc, ccs[i], sizeof c.cc);
    add_in(&c, "x", ccs[i][0] * ccs[i][3] * ccs[i][1], T_IN, -1, 1);
    c.nout = 1;
    c.out_n[0] = ccs[i][0] * ccs[i][5] * ccs[i][1];
    snprintf(c.desc, sizeof c.desc, "outer %lld inner %lld: %lld of %lld @%lld -> %lld @%lld",
             (long long)ccs[i][0], (long long)ccs[i][1], (long long)ccs[i][2], (long long)ccs[i][3],
             (long long)ccs[i][4], (long long)ccs[i][5], (long long)ccs[i][6]);
    c.tol_f = 0.0;
    c.ref = cc_ref;
    c.fwd = cc_fwd;
    c.bwd = ccs[i][7] ? cc_bwd : NULL;
    run_provided(&c, have_cc);
  }
  /* rows, classes, first_class, ce weight, dice weight; rows > 2048 crosses blocks */
  static const double sls[][5] = {
      {37, 3, 1, 1, 1}, {64, 5, 1, 1, 1}, {50, 2, 0, 0.5, 2}, {29, 4, 1, 0, 1}, {4100, 3, 1, 1, 1}};
  for (int i = 0; i < 5; i++) {
    opcase c;
    init_case(&c, "seg_loss");
    int64_t R = (int64_t)sls[i][0], K = (int64_t)sls[i][1];
    /* weights x rows: gradients of order 1, so that the accumulation pass (which adds
     * them to random content of order 1) does not lose them to float rounding */
    float ws = (float)R;
    c.seg = (c3_segloss_desc){R, K, (int)sls[i][2], 1e-5f, ws * (float)sls[i][3],
                              ws * (float)sls[i][4]};
    add_in(&c, "logits", R * K, T_IN, -3, 3);
    add_in(&c, "labels", R, T_INT, 0, (double)K);
    c.nout = 1;
    c.out_n[0] = 1;
    snprintf(c.desc, sizeof c.desc, "%lld rows x %lld classes, from %d, ce %g dice %g",
             (long long)R, (long long)K, c.seg.first_class, sls[i][3], sls[i][4]);
    c.ref = sl_ref;
    c.fwd = sl_fwd;
    c.bwd = sl_bwd;
    run_provided(&c, have_sl);
  }
  ck_assert_int_eq(failures, 0);
}
END_TEST

/* The Dice part alone: a perfect prediction has soft Dice near 1 and the loss near 0;
 * a bad label is an error naming it. */
START_TEST(seg_loss_values) {
  open_engines();
  c3_engine *e = engines[0];
  const int64_t R = 6, K = 3;
  float lg[18];
  int32_t lab[6] = {0, 1, 2, 1, 0, 2};
  for (int r = 0; r < R; r++)
    for (int k = 0; k < K; k++) lg[r * K + k] = k == lab[r] ? 30.0f : -30.0f;
  float *dl;
  int32_t *dlab;
  ck_assert_int_eq(e->alloc(e, sizeof lg, "l", (void **)&dl), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, sizeof lab, "lab", (void **)&dlab), CSAL3D_OK);
  e->upload(e, dl, lg, sizeof lg);
  e->upload(e, dlab, lab, sizeof lab);
  c3_segloss_desc d = {R, K, 1, 1e-5f, 1.0f, 1.0f};
  double loss, ce, dice;
  ck_assert_int_eq(e->seg_loss(e, &d, dl, dlab, 1.0f, NULL, 0, &loss, &ce, &dice), CSAL3D_OK);
  ck_assert_double_lt(fabs(dice - 1.0), 1e-6);
  ck_assert_double_lt(loss, 1e-6);
  lab[3] = 3;
  e->upload(e, dlab, lab, sizeof lab);
  ck_assert_int_eq(e->seg_loss(e, &d, dl, dlab, 1.0f, NULL, 0, &loss, &ce, &dice),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "label 3 of row 3"));
  e->free(e, dl);
  e->free(e, dlab);
}
END_TEST

/* ---- AdamW against PyTorch's formula in float64 ------------------------------------------------ */

START_TEST(op_adamw) {
  open_engines();
  for (int ei = 0; ei < n_engines; ei++) {
    c3_engine *e = engines[ei];
    ck_assert_msg(e->adamw != NULL, "the %s engine lacks adamw", e->name);
    const int64_t n = 1001;
    double p[1001], g[1001], m[1001], v[1001];
    float fp[1001], fg[1001], fm[1001], fv[1001];
    rng_seed(99);
    for (int i = 0; i < n; i++) {
      p[i] = fp[i] = (float)rng_unif(-1, 1);
      g[i] = fg[i] = (float)rng_unif(-1, 1);
      m[i] = fm[i] = 0.0f;
      v[i] = fv[i] = 0.0f;
    }
    float *dp, *dg, *dm, *dv;
    ck_assert_int_eq(e->alloc(e, n * 4, "p", (void **)&dp), CSAL3D_OK);
    ck_assert_int_eq(e->alloc(e, n * 4, "g", (void **)&dg), CSAL3D_OK);
    ck_assert_int_eq(e->alloc(e, n * 4, "m", (void **)&dm), CSAL3D_OK);
    ck_assert_int_eq(e->alloc(e, n * 4, "v", (void **)&dv), CSAL3D_OK);
    e->upload(e, dp, fp, n * 4);
    e->upload(e, dg, fg, n * 4);
    e->upload(e, dm, fm, n * 4);
    e->upload(e, dv, fv, n * 4);
    double worst = 0.0;
    for (int step = 1; step <= 5; step++) {
      c3_adamw_desc d = {5e-4f * step, 0.9f, 0.999f, 1e-8f, step % 2 ? 0.1f : 0.0f,
                         step == 3 ? 0.5f : 1.0f, step};
      ck_assert_int_eq(e->adamw(e, &d, n, dp, dg, dm, dv), CSAL3D_OK);
      ref_adamw(&d, n, p, g, m, v);
      e->download(e, fp, dp, n * 4);
      e->download(e, fm, dm, n * 4);
      double num = 0, den = 0;
      for (int i = 0; i < n; i++) {
        num += (fp[i] - p[i]) * (fp[i] - p[i]);
        den += p[i] * p[i];
        ck_assert_double_le(fabs(fm[i] - m[i]), 1e-6);
      }
      if (sqrt(num / den) > worst) worst = sqrt(num / den);
    }
    printf("%-16s %-5s %-64s fwd %8.2e  %s\n", "adamw", e->name, "n 1001, 5 steps, wd on/off, clip",
           worst, worst < 1e-6 ? "OK" : "FAIL");
    ck_assert_double_lt(worst, 1e-6 * tol_scale(e));
    e->free(e, dp);
    e->free(e, dg);
    e->free(e, dm);
    e->free(e, dv);
  }
}
END_TEST

/* ---- memory functions ----------------------------------------------------------------------- */

START_TEST(memory_functions) {
  open_engines();
  if (n_engines == 1) printf("engine cuda: not available (%s)\n", cuda_why);
  for (int ei = 0; ei < n_engines; ei++) {
    c3_engine *e = engines[ei];
    size_t use0, peak0, use1, peak1;
    e->memory_stats(e, &use0, &peak0);
    float *a, *b;
    ck_assert_int_eq(e->alloc(e, 1000 * 4, "a", (void **)&a), CSAL3D_OK);
    ck_assert_int_eq(e->alloc(e, 0, "empty", (void **)&b), CSAL3D_OK);
    ck_assert_ptr_nonnull(b);
    e->free(e, b);
    ck_assert_int_eq(e->alloc(e, 1000 * 4, "b", (void **)&b), CSAL3D_OK);
    ck_assert_uint_eq(((uintptr_t)a) % 64, 0);
    e->memory_stats(e, &use1, &peak1);
    ck_assert_uint_eq(use1, use0 + 8000);
    ck_assert_uint_ge(peak1, use1);
    float h[1000], g[1000];
    for (int i = 0; i < 1000; i++) h[i] = (float)i;
    ck_assert_int_eq(e->upload(e, a, h, sizeof h), CSAL3D_OK);
    ck_assert_int_eq(e->copy(e, b, a, sizeof h), CSAL3D_OK);
    ck_assert_int_eq(e->download(e, g, b, sizeof g), CSAL3D_OK);
    ck_assert_int_eq(memcmp(g, h, sizeof g), 0);
    ck_assert_int_eq(e->fill(e, a + 10, 5, 2.5f), CSAL3D_OK);
    ck_assert_int_eq(e->zero(e, b, 40), CSAL3D_OK);
    ck_assert_int_eq(e->synchronize(e), CSAL3D_OK);
    e->download(e, g, a, sizeof g);
    ck_assert_float_eq(g[9], 9.0f);
    ck_assert_float_eq(g[10], 2.5f);
    ck_assert_float_eq(g[14], 2.5f);
    ck_assert_float_eq(g[15], 15.0f);
    e->download(e, g, b, sizeof g);
    ck_assert_float_eq(g[9], 0.0f);
    ck_assert_float_eq(g[10], 10.0f);
    e->free(e, a);
    e->free(e, b);
    e->free(e, NULL);
    e->memory_stats(e, &use1, NULL);
    ck_assert_uint_eq(use1, use0);
    e->reset_peak(e);
    e->memory_stats(e, NULL, &peak1);
    ck_assert_uint_eq(peak1, use0);
  }
}
END_TEST

/* ---- errors are reported, not crashed on ---------------------------------------------------------- */

START_TEST(bad_arguments_fail_with_messages) {
  open_engines();
  c3_engine *e = engines[0];
  float *x;
  ck_assert_int_eq(e->alloc(e, 64 * 4, "x", (void **)&x), CSAL3D_OK);
  c3_conv3d_desc cd = {1, 1, 1, {2, 2, 2}, {3, 3, 3}, {1, 1, 1}, {0, 0, 0}, 0, 0};
  ck_assert_int_eq(e->conv3d_fwd(e, &cd, x, x, NULL, x), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "conv3d_fwd"));
  c3_attn_desc ad = {1, 400, 1, 4, {7, 7, 7}, 0.5f, 0, -100.0f};
  ck_assert_int_eq(e->attn_fwd(e, &ad, x, x, NULL, x, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  c3_window_desc wd = {1, 4, 4, 4, 1, {2, 2, 2}, {2, 0, 0}};
  ck_assert_int_eq(e->window_partition(e, &wd, x, x, 0), CSAL3D_ERR_INVALID_ARGUMENT);
  c3_permute3d_desc pd = {1, 1, {2, 2, 2}, {0, 0, 1}, {0, 0, 0}};
  ck_assert_int_eq(e->permute3d(e, &pd, x, x, 0), CSAL3D_ERR_INVALID_ARGUMENT);
  c3_matmul_desc md = {2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1.0f, 0.0f};
  ck_assert_int_eq(e->matmul(e, &md, x, x, NULL, x), CSAL3D_ERR_INVALID_ARGUMENT);
  int32_t lab[2] = {0, 5};
  double loss;
  ck_assert_int_eq(e->cross_entropy(e, 2, 4, x, lab, 1.0f, NULL, 0, &loss),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "label 5"));
  e->free(e, x);
}
END_TEST

/* ---- non-finite values propagate (and are not undefined behaviour) ----------------------------- */

/* A NaN in one window's queries makes that window's outputs NaN and leaves the other
 * window's outputs finite (the softmax's exp takes NaN without the float-to-int
 * conversion that UBSan reported). */
START_TEST(attention_nan_propagates) {
  open_engines();
  for (int k = 0; k < n_engines; k++) {
    c3_engine *e = engines[k];
    const int64_t W = 2, n = 27, H = 1, hd = 4, C = H * hd;
    c3_attn_desc d = {W, n, H, hd, {3, 3, 3}, 0.5f, 0, -100.0f};
    float *qkv, *table, *out;
    const int64_t nq = W * n * 3 * C, nt = 5 * 5 * 5 * H, no = W * n * C;
    ck_assert_int_eq(e->alloc(e, nq * 4, "qkv", (void **)&qkv), CSAL3D_OK);
    ck_assert_int_eq(e->alloc(e, nt * 4, "table", (void **)&table), CSAL3D_OK);
    ck_assert_int_eq(e->alloc(e, no * 4, "out", (void **)&out), CSAL3D_OK);
    float *h = malloc((size_t)nq * 4), *ho = malloc((size_t)no * 4), *ht = malloc((size_t)nt * 4);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(ho);
    ck_assert_ptr_nonnull(ht);
    rng_seed(9);
    for (int64_t i = 0; i < nq; i++) h[i] = (float)rng_unif(-1, 1);
    for (int64_t i = 0; i < nt; i++) ht[i] = (float)rng_unif(-1, 1);
    h[5 * 3 * C] = NAN; /* query of token 5 in window 0 */
    ck_assert_int_eq(e->upload(e, qkv, h, nq * 4), CSAL3D_OK);
    ck_assert_int_eq(e->upload(e, table, ht, nt * 4), CSAL3D_OK);
    ck_assert_int_eq(e->attn_fwd(e, &d, qkv, table, NULL, out, NULL), CSAL3D_OK);
    ck_assert_int_eq(e->download(e, ho, out, no * 4), CSAL3D_OK);
    for (int64_t c = 0; c < C; c++) ck_assert_msg(isnan(ho[5 * C + c]), "%s: NaN lost", e->name);
    for (int64_t i = n * C; i < no; i++)
      ck_assert_msg(isfinite(ho[i]), "%s: window 1 not finite at %lld", e->name, (long long)i);
    free(h);
    free(ho);
    free(ht);
    e->free(e, qkv);
    e->free(e, table);
    e->free(e, out);
  }
}
END_TEST

/* ---- determinism across thread counts (reported; asserted for the C ops) ------------------------ */

START_TEST(thread_count_independence) {
  open_engines();
  c3_engine *e = engines[0];
  int prev = omp_get_max_threads();
  /* conv backward-weights: oneDNN may reduce in a thread-dependent order */
  c3_cpu_engine_set_conv_mode(e, C3_CPU_CONV_DIRECT);
  c3_conv3d_desc cd = {1, 16, 16, {6, 5, 7}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1},
                       C3_LAYOUT_NDHWC, C3_LAYOUT_NDHWC};
  int64_t nx = 16 * 6 * 5 * 7, nw = 16 * 16 * 27;
  float *x, *dy, *dw[2], *r[2];
  ck_assert_int_eq(e->alloc(e, nx * 4, "x", (void **)&x), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, nx * 4, "dy", (void **)&dy), CSAL3D_OK);
  rng_seed(5);
  for (int64_t i = 0; i < nx; i++) {
    x[i] = (float)rng_unif(-1, 1);
    dy[i] = (float)rng_unif(-1, 1);
  }
  for (int t = 0; t < 2; t++) {
    omp_set_num_threads(t ? 2 : 1);
    ck_assert_int_eq(e->alloc(e, nw * 4, "dw", (void **)&dw[t]), CSAL3D_OK);
    e->zero(e, dw[t], nw * 4);
    ck_assert_int_eq(e->conv3d_bwd_weights(e, &cd, x, dy, dw[t], NULL), CSAL3D_OK);
    ck_assert_int_eq(e->alloc(e, 16 * 4, "r", (void **)&r[t]), CSAL3D_OK);
    ck_assert_int_eq(e->reduce_sum(e, 1, 6 * 5 * 7, 16, 1.0f, dy, r[t], 0), CSAL3D_OK);
  }
  omp_set_num_threads(prev);
  int same = memcmp(dw[0], dw[1], nw * 4) == 0;
  printf("conv3d_bwd_weights (oneDNN direct) 16->16 6x5x7: 1 vs 2 threads %s\n",
         same ? "bitwise identical" : "differ in rounding (oneDNN reduction order)");
  ck_assert_int_eq(memcmp(r[0], r[1], 16 * 4), 0);
  for (int t = 0; t < 2; t++) {
    e->free(e, dw[t]);
    e->free(e, r[t]);
  }
  e->free(e, x);
  e->free(e, dy);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("engine");
  TCase *t = tcase_create("ops");
  tcase_set_timeout(t, 300);
  tcase_add_test(t, memory_functions);
  tcase_add_test(t, bad_arguments_fail_with_messages);
  tcase_add_test(t, attention_nan_propagates);
  tcase_add_loop_test(t, op_conv3d, C3_CPU_CONV_AUTO, C3_CPU_CONV_GEMM + 1);
  tcase_add_test(t, op_matmul);
  tcase_add_test(t, op_norm_softmax_gelu);
  tcase_add_test(t, op_inorm_upsample);
  tcase_add_test(t, op_attention);
  tcase_add_test(t, op_permutes);
  tcase_add_test(t, permute3d_is_rot90);
  tcase_add_test(t, op_reductions_elementwise);
  tcase_add_test(t, op_losses);
  tcase_add_test(t, op_segmentation);
  tcase_add_test(t, seg_loss_values);
  tcase_add_test(t, op_adamw);
  tcase_add_test(t, thread_count_independence);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  for (int i = 0; i < n_engines; i++) c3_engine_close(engines[i]);
  return failed ? 1 : 0;
}
