/* The CUDA engine against the CPU engine (and the float64 reference), op by op.
 *
 * SKIPs (exit 77) when the CUDA engine cannot be opened: no plugin (CUDA=0 builds) or
 * no GPU. Otherwise every op of the table runs on random inputs of several shapes
 * (small odd non-cubic ones and realistic ones from the Swin-UNETR at 128^3) on both
 * engines:
 *  - outputs compared by ||cuda - cpu|| / ||cpu||: float32 mode within 1e-4 (most ops
 *    far below); the forward of the smaller cases also against tests/ref/ref_ops.h;
 *  - outputs that are overwritten are poisoned with NaN first (an unwritten element
 *    fails); accumulated ones (accum 1, parameter gradients) start from the same random
 *    content on both engines;
 *  - every CUDA run is repeated and must be bitwise identical (determinism);
 *  - the matmul, convolution and attention cases are run again with the engine opened
 *    in tf32 and bf16 precision (CSAL3D_CUDA_PRECISION) within 1e-2.
 * A table of the largest error per op and precision closes the output.
 * C3_TEST_CUDA_SMALL=1 runs only the small cases (under compute-sanitizer).
 * tests/test_engine.c checks the CUDA engine too (finite differences, small shapes). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "engine/engine.h"
#include "ref/ref_ops.h"
#include "bench_util.h"

/* ---- engines ------------------------------------------------------------------------- */

/* P_REF: float32 with the fast paths switched off (every convolution on cuDNN, window
 * attention on the cuBLAS + softmax path), so that both paths are checked. */
enum { P_FP32 = 0, P_TF32 = 1, P_BF16 = 2, P_REF = 3, NPREC = 4 };
static const char *prec_name[NPREC] = {"fp32", "tf32", "bf16", "fp32-ref"};
static c3_engine *cpu, *gpu[NPREC];
static char why_cuda[1200];

static int open_cuda(int prec, c3_engine **out) {
  setenv("CSAL3D_CUDA_PRECISION", prec == P_REF ? "fp32" : prec_name[prec], 1);
  if (prec == P_REF) {
    setenv("CSAL3D_CUDA_CONV_GEMM", "0", 1);
    setenv("CSAL3D_CUDA_ATTN", "ref", 1);
  }
  csal3d_status s = c3_engine_open(CSAL3D_DEVICE_CUDA, 0, out);
  unsetenv("CSAL3D_CUDA_PRECISION");
  unsetenv("CSAL3D_CUDA_CONV_GEMM");
  unsetenv("CSAL3D_CUDA_ATTN");
  if (s != CSAL3D_OK) snprintf(why_cuda, sizeof why_cuda, "%s", csal3d_last_error());
  return s == CSAL3D_OK;
}

static void open_engines(void) {
  if (cpu) return;
  ck_assert_int_eq(c3_engine_open(CSAL3D_DEVICE_CPU, 0, &cpu), CSAL3D_OK);
  for (int p = 0; p < NPREC; p++) ck_assert_msg(open_cuda(p, &gpu[p]), "%s", why_cuda);
}

/* ---- RNG ------------------------------------------------------------------------------- */

static uint64_t rs;
static void rng_seed(uint64_t s) { rs = s * 0x9E3779B97F4A7C15ULL + 99; }
static double unif(double lo, double hi) {
  uint64_t z = (rs += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return lo + (hi - lo) * ((double)(z >> 11) / 9007199254740992.0);
}

/* ---- cases ------------------------------------------------------------------------------- */

enum { B_RAND, B_NAN, B_INT };
typedef struct bspec {
  const char *name;
  int64_t n;
  int init;
  double lo, hi;
  int cmp; /* compared after the run */
} bspec;

#define MAXB 12
typedef struct tcase tcase;
typedef csal3d_status (*run_fn)(c3_engine *e, const tcase *c, void **b, double *scal);
/* float64 reference of the compared buffers from the others (hb: every buffer as double) */
typedef void (*ref_fn)(const tcase *c, double **hb, double *scal);

struct tcase {
  const char *op;
  char desc[180];
  int nb, nscal;
  bspec b[MAXB];
  int lowp;   /* products on tensor cores in tf32/bf16 modes */
  int ref_scalars; /* the reference gives the scalars only (buffers: CPU comparison) */
  double tol; /* fp32 bound */
  run_fn run;
  ref_fn ref; /* NULL: CPU comparison only */
  c3_conv3d_desc conv;
  c3_matmul_desc mm;
  c3_attn_desc at;
  c3_window_desc win;
  c3_merge_desc mg;
  c3_inorm_desc in;
  c3_upsample_desc up;
  c3_permute3d_desc pm;
  c3_adamw_desc aw;
  int64_t iv[6];
  float fv[4];
};

static void init_case(tcase *c, const char *op) {
  memset(c, 0, sizeof *c);
  c->op = op;
  c->tol = 1e-4;
}

static int add_buf(tcase *c, const char *name, int64_t n, int init, double lo, double hi,
                   int cmp) {
  ck_assert_int_lt(c->nb, MAXB);
  c->b[c->nb] = (bspec){name, n, init, lo, hi, cmp};
  return c->nb++;
}

/* ---- the summary table -------------------------------------------------------------------- */

#define MAXOPS 64
static struct {
  const char *op;
  double err[NPREC], ref;
  int cases;
} summary[MAXOPS];
static int nsummary, failures;

static void note(const char *op, int prec, double err, double ref) {
  int i;
  for (i = 0; i < nsummary; i++)
    if (!strcmp(summary[i].op, op)) break;
  if (i == nsummary) {
    if (nsummary == MAXOPS) return;
    memset(&summary[i], 0, sizeof summary[i]);
    for (int p = 0; p < NPREC; p++) summary[i].err[p] = -1.0;
    summary[i].ref = -1.0;
    summary[i].op = op;
    nsummary++;
  }
  if (prec >= 0 && err > summary[i].err[prec]) summary[i].err[prec] = err;
  if (prec == P_FP32) summary[i].cases++;
  if (ref > summary[i].ref) summary[i].ref = ref;
}

/* ---- comparisons ------------------------------------------------------------------------- */

/* ||got - want|| / ||want||; both NaN at an element counts as equal (padding nobody
 * writes); NaN in one only is infinite error. */
static double rel_ff(const float *want, const float *got, int64_t n) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < n; i++) {
    int a = isnan(want[i]), b = isnan(got[i]);
    if (a && b) continue;
    if (a != b || isinf(got[i])) return INFINITY;
    double d = (double)got[i] - want[i];
    num += d * d;
    den += (double)want[i] * want[i];
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return sqrt(num / den);
}

static double rel_df(const double *want, const float *got, int64_t n) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(want[i]) && isnan(got[i])) continue; /* padding nobody writes */
    if (isnan(want[i]) || isnan(got[i]) || isinf(got[i])) return INFINITY;
    double d = (double)got[i] - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return sqrt(num / den);
}

static double rel_scalar(double want, double got) {
  if (isnan(got)) return INFINITY;
  double den = fabs(want) > 1e-30 ? fabs(want) : 1.0;
  return fabs(got - want) / den;
}

/* ---- running a case on one engine ------------------------------------------------------------ */

/* Uploads the initial contents, runs, downloads the compared buffers into out[k]. */
static csal3d_status run_on(c3_engine *e, const tcase *c, float *const *init, float **out,
                            double *scal) {
  void *b[MAXB] = {0};
  csal3d_status s = CSAL3D_OK;
  for (int k = 0; k < c->nb && s == CSAL3D_OK; k++) {
    size_t bytes = (size_t)c->b[k].n * 4;
    s = e->alloc(e, bytes, c->b[k].name, &b[k]);
    if (s == CSAL3D_OK) s = e->upload(e, b[k], init[k], bytes);
  }
  if (s == CSAL3D_OK) s = c->run(e, c, b, scal);
  for (int k = 0; k < c->nb && s == CSAL3D_OK; k++)
    if (c->b[k].cmp) s = e->download(e, out[k], b[k], (size_t)c->b[k].n * 4);
  if (s == CSAL3D_OK) s = e->synchronize(e);
  for (int k = 0; k < c->nb; k++) e->free(e, b[k]);
  return s;
}

/* Runs c on the CPU and on the CUDA engine in every precision; prints one line per
 * precision; counts failures. */
static void check_case(tcase *c) {
  static uint64_t counter;
  open_engines();
  /* C3_TEST_CUDA_SMALL=1: only the small cases (for compute-sanitizer runs) */
  const char *small = getenv("C3_TEST_CUDA_SMALL");
  if (small && *small == '1') {
    int64_t tot = 0;
    for (int k = 0; k < c->nb; k++) tot += c->b[k].n;
    if (tot > ((int64_t)1 << 18)) return;
  }
  double t0 = now();
  rng_seed(++counter * 7919 + 3);
  float *init[MAXB] = {0}, *want[MAXB] = {0}, *got[MAXB] = {0}, *again[MAXB] = {0};
  for (int k = 0; k < c->nb; k++) {
    const bspec *bs = &c->b[k];
    init[k] = malloc((size_t)bs->n * 4);
    ck_assert_ptr_nonnull(init[k]);
    for (int64_t i = 0; i < bs->n; i++) {
      if (bs->init == B_NAN) {
        init[k][i] = NAN;
      } else if (bs->init == B_INT) {
        int32_t v = (int32_t)floor(unif(bs->lo, bs->hi));
        memcpy(&init[k][i], &v, 4);
      } else {
        init[k][i] = (float)unif(bs->lo, bs->hi);
      }
    }
    if (bs->cmp) {
      want[k] = malloc((size_t)bs->n * 4);
      got[k] = malloc((size_t)bs->n * 4);
      again[k] = malloc((size_t)bs->n * 4);
      ck_assert(want[k] && got[k] && again[k]);
    }
  }
  double s_cpu[4] = {0}, s_gpu[4] = {0}, s_again[4] = {0};
  char why[400] = "";
  int ok = 1;
  csal3d_status s = run_on(cpu, c, init, want, s_cpu);
  if (s != CSAL3D_OK) {
    snprintf(why, sizeof why, "CPU engine failed: %s", csal3d_last_error());
    ok = 0;
  }
  /* float64 reference of the forward */
  double err_ref = -1.0, err_cpu_ref = -1.0;
  if (ok && c->ref) {
    double *hb[MAXB] = {0}, rscal[4] = {0};
    for (int k = 0; k < c->nb; k++) {
      hb[k] = malloc(sizeof(double) * (size_t)c->b[k].n);
      ck_assert_ptr_nonnull(hb[k]);
      for (int64_t i = 0; i < c->b[k].n; i++) {
        if (c->b[k].init == B_INT) {
          int32_t v;
          memcpy(&v, &init[k][i], 4);
          hb[k][i] = v;
        } else {
          hb[k][i] = init[k][i];
        }
      }
    }
    c->ref(c, hb, rscal);
    err_cpu_ref = 0.0;
    for (int k = 0; k < c->nb; k++)
      if (c->b[k].cmp && !c->ref_scalars) {
        double ek = rel_df(hb[k], want[k], c->b[k].n);
        if (ek > err_cpu_ref) err_cpu_ref = ek;
      }
    for (int q = 0; q < c->nscal; q++) {
      double ek = rel_scalar(rscal[q], s_cpu[q]);
      if (ek > err_cpu_ref) err_cpu_ref = ek;
    }
    /* the CUDA engine against the reference: below, after its run */
    s = run_on(gpu[P_FP32], c, init, got, s_gpu);
    if (s != CSAL3D_OK) {
      snprintf(why, sizeof why, "CUDA engine failed: %s", csal3d_last_error());
      ok = 0;
    } else {
      err_ref = 0.0;
      for (int k = 0; k < c->nb; k++)
        if (c->b[k].cmp && !c->ref_scalars) {
          double ek = rel_df(hb[k], got[k], c->b[k].n);
          if (ek > err_ref) err_ref = ek;
        }
      for (int q = 0; q < c->nscal; q++) {
        double ek = rel_scalar(rscal[q], s_gpu[q]);
        if (ek > err_ref) err_ref = ek;
      }
    }
    for (int k = 0; k < c->nb; k++) free(hb[k]);
  }
  for (int p = 0; p < NPREC && ok; p++) {
    if (p != P_FP32 && !c->lowp) break;
    double tol = (p == P_FP32 || p == P_REF) ? c->tol : 1e-2;
    if (!(p == P_FP32 && c->ref)) { /* (already run for the reference) */
      s = run_on(gpu[p], c, init, got, s_gpu);
      if (s != CSAL3D_OK) {
        snprintf(why, sizeof why, "CUDA engine (%s) failed: %s", prec_name[p],
                 csal3d_last_error());
        ok = 0;
        break;
      }
    }
    double err = 0.0;
    const char *worst = "";
    for (int k = 0; k < c->nb; k++)
      if (c->b[k].cmp) {
        double ek = rel_ff(want[k], got[k], c->b[k].n);
        if (!(ek <= err)) {
          err = ek;
          worst = c->b[k].name;
        }
      }
    for (int q = 0; q < c->nscal; q++) {
      double ek = rel_scalar(s_cpu[q], s_gpu[q]);
      if (!(ek <= err)) {
        err = ek;
        worst = "scalar";
      }
    }
    if (!(err <= tol)) {
      snprintf(why, sizeof why, "%s: %s differs from the CPU engine by %.3g > %.3g",
               prec_name[p], worst, err, tol);
      ok = 0;
    }
    if (p == P_FP32 && err_ref >= 0.0 && !(err_ref <= tol)) {
      snprintf(why, sizeof why, "differs from the float64 reference by %.3g > %.3g", err_ref,
               tol);
      ok = 0;
    }
    /* determinism: the same run again, bitwise */
    if (ok) {
      s = run_on(gpu[p], c, init, again, s_again);
      ck_assert_msg(s == CSAL3D_OK, "%s", csal3d_last_error());
      for (int k = 0; k < c->nb; k++)
        if (c->b[k].cmp && memcmp(got[k], again[k], (size_t)c->b[k].n * 4) != 0) {
          snprintf(why, sizeof why, "%s: %s differs between two identical runs", prec_name[p],
                   c->b[k].name);
          ok = 0;
        }
      for (int q = 0; q < c->nscal; q++)
        if (memcmp(&s_gpu[q], &s_again[q], sizeof(double)) != 0) {
          snprintf(why, sizeof why, "%s: scalar %d differs between two identical runs",
                   prec_name[p], q);
          ok = 0;
        }
    }
    note(c->op, p, err, p == P_FP32 ? err_ref : -1.0);
    printf("%-18s %-58s %s  vs cpu %8.2e", c->op, c->desc, prec_name[p], err);
    if (p == P_FP32 && err_ref >= 0.0)
      printf("  vs ref %8.2e (cpu %8.2e)", err_ref, err_cpu_ref);
    printf("  %s\n", ok ? "OK" : "FAIL");
  }
  if (!ok) {
    printf("%-18s %-58s FAIL: %s\n", c->op, c->desc, why);
    note(c->op, -1, 0.0, -1.0);
    failures++;
  }
  (void)t0;
  fflush(stdout);
  for (int k = 0; k < MAXB; k++) {
    free(init[k]);
    free(want[k]);
    free(got[k]);
    free(again[k]);
  }
}

#define F(p) ((float *)(p))
#define CF(p) ((const float *)(p))
#define I(p) ((const int32_t *)(p))
static const char *lay(c3_layout l) { return l == C3_LAYOUT_NCDHW ? "NCDHW" : "NDHWC"; }

/* ---- conv3d ---------------------------------------------------------------------------------- */

static csal3d_status conv_fwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->conv3d_fwd(e, &c->conv, CF(b[0]), CF(b[1]), c->iv[0] ? CF(b[2]) : NULL, F(b[3]));
}
static void conv_fwd_ref(const tcase *c, double **hb, double *s) {
  ref_conv3d(&c->conv, hb[0], hb[1], c->iv[0] ? hb[2] : NULL, hb[3]);
}
static csal3d_status conv_bwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  csal3d_status r = e->conv3d_bwd_data(e, &c->conv, CF(b[1]), CF(b[2]), F(b[3]), (int)c->iv[1]);
  if (r != CSAL3D_OK) return r;
  return e->conv3d_bwd_weights(e, &c->conv, CF(b[0]), CF(b[1]), F(b[4]),
                               c->iv[0] ? F(b[5]) : NULL);
}

static void conv_cases(int n, int ci, int co, int d, int h, int w, int k, int st, int pad,
                       c3_layout sl, c3_layout dl, int bias, int with_ref) {
  tcase c;
  init_case(&c, "conv3d_fwd");
  c.conv = (c3_conv3d_desc){n, ci, co, {d, h, w}, {k, k, k}, {st, st, st}, {pad, pad, pad}, sl, dl};
  c.lowp = 1;
  c.iv[0] = bias;
  int64_t in_n = (int64_t)n * ci * d * h * w, wn = (int64_t)co * ci * k * k * k;
  int64_t out_n = (int64_t)n * co * c3_conv3d_out_side(&c.conv, 0) *
                  c3_conv3d_out_side(&c.conv, 1) * c3_conv3d_out_side(&c.conv, 2);
  snprintf(c.desc, sizeof c.desc, "n%d %d->%d %dx%dx%d k%d s%d p%d %s->%s%s", n, ci, co, d, h,
           w, k, st, pad, lay(sl), lay(dl), bias ? " bias" : "");
  add_buf(&c, "x", in_n, B_RAND, -1, 1, 0);
  add_buf(&c, "w", wn, B_RAND, -0.3, 0.3, 0);
  add_buf(&c, "bias", co, B_RAND, -0.5, 0.5, 0);
  add_buf(&c, "y", out_n, B_NAN, 0, 0, 1);
  c.run = conv_fwd_run;
  if (with_ref) c.ref = conv_fwd_ref;
  check_case(&c);
  for (int accum = 0; accum < 2; accum++) {
    tcase b = c;
    b.op = "conv3d_bwd";
    b.ref = NULL;
    b.nb = 0;
    b.iv[1] = accum;
    snprintf(b.desc, sizeof b.desc, "%.160s acc%d", c.desc, accum);
    add_buf(&b, "x", in_n, B_RAND, -1, 1, 0);
    add_buf(&b, "dy", out_n, B_RAND, -1, 1, 0);
    add_buf(&b, "w", wn, B_RAND, -0.3, 0.3, 0);
    add_buf(&b, "dx", in_n, accum ? B_RAND : B_NAN, -1, 1, 1);
    add_buf(&b, "dw", wn, B_RAND, -1, 1, 1);
    add_buf(&b, "dbias", co, B_RAND, -1, 1, 1);
    b.run = conv_bwd_run;
    check_case(&b);
  }
}

START_TEST(cuda_conv3d) {
  int failures0 = failures;
  const c3_layout A = C3_LAYOUT_NCDHW, B = C3_LAYOUT_NDHWC;
  conv_cases(1, 1, 6, 10, 6, 8, 2, 2, 0, A, B, 1, 1);   /* patch embed, small */
  conv_cases(2, 3, 5, 5, 6, 7, 3, 1, 1, A, A, 1, 1);    /* odd, non-cubic */
  conv_cases(1, 5, 7, 9, 4, 6, 3, 1, 1, B, B, 0, 1);
  conv_cases(2, 4, 3, 7, 5, 6, 3, 2, 1, B, A, 1, 1);    /* stride 2, mixed layouts */
  conv_cases(1, 6, 1, 8, 9, 5, 1, 1, 0, B, A, 1, 1);    /* final 1^3 to in_ch */
  conv_cases(1, 2, 48, 64, 64, 64, 2, 2, 0, A, B, 1, 0); /* patch embed at 64^3 (2 ch) */
  conv_cases(1, 96, 48, 32, 32, 32, 3, 1, 1, B, B, 1, 0); /* decoder conv.12 at 128^3 */
  conv_cases(1, 48, 48, 48, 40, 32, 3, 1, 1, B, B, 1, 0); /* decoder conv.16, non-cubic */
  conv_cases(2, 48, 1, 48, 48, 48, 1, 1, 0, B, A, 1, 0);  /* conv.20 */
  conv_cases(1, 384, 192, 8, 8, 8, 3, 1, 1, B, B, 1, 0);  /* conv.4 */
  conv_cases(2, 5, 3, 4, 6, 2, 1, 1, 0, A, B, 1, 1);     /* kernel 1, every layout pair */
  conv_cases(2, 5, 3, 4, 6, 2, 1, 1, 0, A, A, 0, 1);
  conv_cases(2, 5, 3, 4, 6, 2, 1, 1, 0, B, B, 1, 1);
  conv_cases(2, 3, 4, 4, 6, 2, 2, 2, 0, B, B, 1, 1);     /* kernel = stride 2, every pair */
  conv_cases(2, 3, 4, 4, 6, 2, 2, 2, 0, A, A, 1, 1);
  conv_cases(2, 3, 4, 4, 6, 2, 2, 2, 0, B, A, 0, 1);
  conv_cases(1, 2, 3, 6, 4, 8, 2, 2, 0, A, B, 1, 1);     /* k2 s2 on an odd-free grid */
  conv_cases(2, 1, 48, 64, 64, 64, 2, 2, 0, A, B, 1, 0); /* patch embed, 2 images */
  conv_cases(1, 2, 48, 64, 64, 64, 2, 2, 0, A, A, 0, 0); /* the failing plan, unmixed */
  conv_cases(1, 48, 24, 32, 32, 32, 2, 2, 0, B, B, 1, 0);
  conv_cases(1, 48, 24, 32, 32, 32, 3, 2, 1, B, A, 1, 0); /* overlapping stride 2, mixed */
  ck_assert_int_eq(failures, failures0);
}
END_TEST

/* ---- matmul ------------------------------------------------------------------------------------ */

static csal3d_status mm_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->matmul(e, &c->mm, CF(b[0]), CF(b[1]), c->iv[0] ? CF(b[2]) : NULL, F(b[3]));
}
static void mm_ref(const tcase *c, double **hb, double *s) {
  ref_matmul(&c->mm, hb[0], hb[1], c->iv[0] ? hb[2] : NULL, hb[3]);
}

static void mm_case(int64_t batch, int64_t m, int64_t n, int64_t k, int ta, int tb, int64_t pad,
                    int bcast_a, int bcast_b, float alpha, float beta, int bias, int with_ref) {
  tcase c;
  init_case(&c, "matmul");
  c3_matmul_desc *d = &c.mm;
  int64_t a_n, b_n, c_n;
  ref_matmul_case(d, batch, m, n, k, ta, tb, pad, bcast_a, bcast_b, alpha, beta, &a_n, &b_n,
                  &c_n);
  c.iv[0] = bias;
  c.lowp = 1;
  add_buf(&c, "a", a_n, B_RAND, -1, 1, 0);
  add_buf(&c, "b", b_n, B_RAND, -1, 1, 0);
  add_buf(&c, "bias", n, B_RAND, -1, 1, 0);
  /* beta 0: C's old content must be ignored (NaN); padding stays NaN on both */
  add_buf(&c, "c", c_n, beta == 0.0f ? B_NAN : B_RAND, -1, 1, 1);
  snprintf(c.desc, sizeof c.desc, "b%lld %lldx%lldx%lld t%d%d ld+%lld%s%s a%g b%g%s",
           (long long)batch, (long long)m, (long long)n, (long long)k, ta, tb, (long long)pad,
           bcast_a ? " bcastA" : "", bcast_b ? " bcastB" : "", alpha, beta, bias ? " bias" : "");
  c.run = mm_run;
  if (with_ref) c.ref = mm_ref;
  check_case(&c);
}

START_TEST(cuda_matmul) {
  int failures0 = failures;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      mm_case(1, 37, 19, 23, ta, tb, 0, 0, 0, 1.0f, 0.0f, 1, 1);
      mm_case(3, 13, 17, 9, ta, tb, 2, 0, 0, 0.5f, 1.0f, 0, 1);
      mm_case(4, 7, 11, 5, ta, tb, 1, 1, 0, 1.0f, 0.5f, 1, 1);
      mm_case(5, 6, 9, 14, ta, tb, 0, 0, 1, -2.0f, 0.0f, 0, 1);
    }
  /* Linear layers of stage 1 at 128^3 (a chunk of 64 windows of 343 tokens) */
  mm_case(1, 21952, 144, 48, 0, 1, 0, 0, 0, 1.0f, 0.0f, 1, 0); /* qkv */
  mm_case(1, 21952, 48, 144, 0, 0, 0, 0, 0, 1.0f, 1.0f, 0, 0); /* dx, accumulating */
  mm_case(1, 144, 48, 21952, 1, 0, 0, 0, 0, 1.0f, 1.0f, 0, 0); /* dW += dy^T x */
  mm_case(1, 21952, 192, 48, 0, 1, 0, 0, 0, 1.0f, 0.0f, 1, 0); /* MLP */
  mm_case(1, 512, 768, 3072, 0, 1, 0, 0, 0, 1.0f, 0.0f, 0, 0); /* merging 8C -> 2C, stage 4 */
  mm_case(96, 343, 343, 16, 0, 1, 7, 0, 0, 0.25f, 0.0f, 0, 0); /* attention-like, padded */
  ck_assert_int_eq(failures, failures0);
}
END_TEST

/* ---- layer norm, softmax, GELU ----------------------------------------------------------------- */

static csal3d_status ln_fwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  int aff = (int)c->iv[2], train = (int)c->iv[3];
  return e->layer_norm_fwd(e, c->iv[0], c->iv[1], 1e-5f, CF(b[0]), aff ? CF(b[1]) : NULL,
                           aff ? CF(b[2]) : NULL, F(b[3]), train ? F(b[4]) : NULL,
                           train ? F(b[5]) : NULL);
}
static void ln_fwd_ref(const tcase *c, double **hb, double *s) {
  int aff = (int)c->iv[2], train = (int)c->iv[3];
  ref_layer_norm(c->iv[0], c->iv[1], 1e-5, hb[0], aff ? hb[1] : NULL, aff ? hb[2] : NULL, hb[3]);
  if (train) { /* mean and biased variance */
    for (int64_t r = 0; r < c->iv[0]; r++) {
      double m = 0.0, v = 0.0;
      for (int64_t q = 0; q < c->iv[1]; q++) m += hb[0][r * c->iv[1] + q];
      m /= c->iv[1];
      for (int64_t q = 0; q < c->iv[1]; q++) {
        double t = hb[0][r * c->iv[1] + q] - m;
        v += t * t;
      }
      hb[4][r] = m;
      hb[5][r] = v / c->iv[1];
    }
  }
}
static csal3d_status ln_bwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  int64_t rows = c->iv[0], cols = c->iv[1];
  int aff = (int)c->iv[2];
  /* b: x gamma beta y mean var dy dx dgamma dbeta */
  csal3d_status r = e->layer_norm_fwd(e, rows, cols, 1e-5f, CF(b[0]), aff ? CF(b[1]) : NULL,
                                      aff ? CF(b[2]) : NULL, F(b[3]), F(b[4]), F(b[5]));
  if (r != CSAL3D_OK) return r;
  return e->layer_norm_bwd(e, rows, cols, 1e-5f, CF(b[0]), aff ? CF(b[1]) : NULL, CF(b[4]),
                           CF(b[5]), CF(b[6]), F(b[7]), (int)c->iv[4], aff ? F(b[8]) : NULL,
                           aff ? F(b[9]) : NULL);
}

static void ln_cases(int64_t rows, int64_t cols, int aff, int with_ref) {
  tcase c;
  init_case(&c, "layer_norm_fwd");
  c.iv[0] = rows;
  c.iv[1] = cols;
  c.iv[2] = aff;
  c.iv[3] = 1;
  snprintf(c.desc, sizeof c.desc, "%lldx%lld%s", (long long)rows, (long long)cols,
           aff ? " affine" : "");
  add_buf(&c, "x", rows * cols, B_RAND, -2, 3, 0);
  add_buf(&c, "gamma", cols, B_RAND, 0.5, 1.5, 0);
  add_buf(&c, "beta", cols, B_RAND, -0.5, 0.5, 0);
  add_buf(&c, "y", rows * cols, B_NAN, 0, 0, 1);
  add_buf(&c, "mean", rows, B_NAN, 0, 0, 1);
  add_buf(&c, "var", rows, B_NAN, 0, 0, 1);
  c.run = ln_fwd_run;
  if (with_ref) c.ref = ln_fwd_ref;
  check_case(&c);
  for (int accum = 0; accum < 2; accum++) {
    tcase b;
    init_case(&b, "layer_norm_bwd");
    memcpy(b.iv, c.iv, sizeof b.iv);
    b.iv[4] = accum;
    snprintf(b.desc, sizeof b.desc, "%.160s acc%d", c.desc, accum);
    add_buf(&b, "x", rows * cols, B_RAND, -2, 3, 0);
    add_buf(&b, "gamma", cols, B_RAND, 0.5, 1.5, 0);
    add_buf(&b, "beta", cols, B_RAND, -0.5, 0.5, 0);
    add_buf(&b, "y", rows * cols, B_NAN, 0, 0, 0);
    add_buf(&b, "mean", rows, B_NAN, 0, 0, 0);
    add_buf(&b, "var", rows, B_NAN, 0, 0, 0);
    add_buf(&b, "dy", rows * cols, B_RAND, -1, 1, 0);
    add_buf(&b, "dx", rows * cols, accum ? B_RAND : B_NAN, -1, 1, 1);
    add_buf(&b, "dgamma", cols, B_RAND, -1, 1, aff);
    add_buf(&b, "dbeta", cols, B_RAND, -1, 1, aff);
    b.run = ln_bwd_run;
    check_case(&b);
  }
}

static csal3d_status sm_fwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->softmax_fwd(e, c->iv[0], c->iv[1], CF(b[0]), F(b[1]));
}
static void sm_fwd_ref(const tcase *c, double **hb, double *s) {
  ref_softmax(c->iv[0], c->iv[1], hb[0], hb[1]);
}
static csal3d_status sm_bwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  csal3d_status r = e->softmax_fwd(e, c->iv[0], c->iv[1], CF(b[0]), F(b[1]));
  if (r != CSAL3D_OK) return r;
  return e->softmax_bwd(e, c->iv[0], c->iv[1], CF(b[1]), CF(b[2]), F(b[3]), (int)c->iv[2]);
}
static csal3d_status gelu_fwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->gelu_fwd(e, c->iv[0], CF(b[0]), F(b[1]));
}
static void gelu_fwd_ref(const tcase *c, double **hb, double *s) { ref_gelu(c->iv[0], hb[0], hb[1]); }
static csal3d_status gelu_bwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->gelu_bwd(e, c->iv[0], CF(b[0]), CF(b[1]), F(b[2]), (int)c->iv[2]);
}

static void sm_cases(int64_t rows, int64_t cols) {
  tcase c;
  init_case(&c, "softmax_fwd");
  c.iv[0] = rows;
  c.iv[1] = cols;
  snprintf(c.desc, sizeof c.desc, "%lldx%lld", (long long)rows, (long long)cols);
  add_buf(&c, "x", rows * cols, B_RAND, -8, 8, 0);
  add_buf(&c, "y", rows * cols, B_NAN, 0, 0, 1);
  c.run = sm_fwd_run;
  c.ref = sm_fwd_ref;
  check_case(&c);
  for (int accum = 0; accum < 2; accum++) {
    tcase b;
    init_case(&b, "softmax_bwd");
    b.iv[0] = rows;
    b.iv[1] = cols;
    b.iv[2] = accum;
    snprintf(b.desc, sizeof b.desc, "%.160s acc%d", c.desc, accum);
    add_buf(&b, "x", rows * cols, B_RAND, -8, 8, 0);
    add_buf(&b, "y", rows * cols, B_NAN, 0, 0, 0);
    add_buf(&b, "dy", rows * cols, B_RAND, -1, 1, 0);
    add_buf(&b, "dx", rows * cols, accum ? B_RAND : B_NAN, -1, 1, 1);
    b.run = sm_bwd_run;
    check_case(&b);
  }
}

static void gelu_cases(int64_t n) {
  tcase c;
  init_case(&c, "gelu_fwd");
  c.iv[0] = n;
  snprintf(c.desc, sizeof c.desc, "n %lld", (long long)n);
  add_buf(&c, "x", n, B_RAND, -5, 5, 0);
  add_buf(&c, "y", n, B_NAN, 0, 0, 1);
  c.run = gelu_fwd_run;
  c.ref = gelu_fwd_ref;
  check_case(&c);
  for (int accum = 0; accum < 2; accum++) {
    tcase b;
    init_case(&b, "gelu_bwd");
    b.iv[0] = n;
    b.iv[2] = accum;
    snprintf(b.desc, sizeof b.desc, "n %lld acc%d", (long long)n, accum);
    add_buf(&b, "x", n, B_RAND, -5, 5, 0);
    add_buf(&b, "dy", n, B_RAND, -1, 1, 0);
    add_buf(&b, "dx", n, accum ? B_RAND : B_NAN, -1, 1, 1);
    b.run = gelu_bwd_run;
    check_case(&b);
  }
}

START_TEST(cuda_norm_softmax_gelu) {
  int failures0 = failures;
  ln_cases(37, 5, 1, 1);
  ln_cases(129, 48, 0, 1);
  ln_cases(262144, 48, 1, 0);  /* stage 0 tokens at 128^3 */
  ln_cases(4096, 768, 0, 0);   /* hidden4 norm */
  ln_cases(512, 3072, 1, 0);   /* merging LN(8C) of stage 4 */
  sm_cases(7, 5);
  sm_cases(1029, 343);
  sm_cases(3, 1000);
  gelu_cases(1001);
  gelu_cases(3 * 1000003);
  ck_assert_int_eq(failures, failures0);
}
END_TEST

/* ---- instance norm + LeakyReLU, upsampling ---------------------------------------------------------- */

static csal3d_status in_fwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->inorm_lrelu_fwd(e, &c->in, CF(b[0]), F(b[1]), c->iv[0] ? F(b[2]) : NULL,
                            c->iv[0] ? F(b[3]) : NULL);
}
static void in_fwd_ref(const tcase *c, double **hb, double *s) {
  ref_inorm_lrelu(&c->in, hb[0], hb[1]);
  /* mean / var per (n, c) */
  const c3_inorm_desc *d = &c->in;
  int64_t S = d->d * d->h * d->w;
  for (int64_t n = 0; n < d->n; n++)
    for (int64_t ch = 0; ch < d->c; ch++) {
      double m = 0.0, v = 0.0;
      for (int64_t t = 0; t < S; t++)
        m += hb[0][d->layout == C3_LAYOUT_NCDHW ? (n * d->c + ch) * S + t : (n * S + t) * d->c + ch];
      m /= S;
      for (int64_t t = 0; t < S; t++) {
        double q =
            hb[0][d->layout == C3_LAYOUT_NCDHW ? (n * d->c + ch) * S + t : (n * S + t) * d->c + ch] - m;
        v += q * q;
      }
      hb[2][n * d->c + ch] = m;
      hb[3][n * d->c + ch] = v / S;
    }
}
static csal3d_status in_bwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  csal3d_status r = e->inorm_lrelu_fwd(e, &c->in, CF(b[0]), F(b[1]), F(b[2]), F(b[3]));
  if (r != CSAL3D_OK) return r;
  return e->inorm_lrelu_bwd(e, &c->in, CF(b[0]), CF(b[2]), CF(b[3]), CF(b[4]), F(b[5]),
                            (int)c->iv[1]);
}

static void in_cases(int64_t n, int64_t ch, int64_t d, int64_t h, int64_t w, c3_layout l,
                     int with_ref) {
  tcase c;
  init_case(&c, "inorm_lrelu_fwd");
  c.in = (c3_inorm_desc){n, ch, d, h, w, l, 1e-5f, 0.01f};
  c.iv[0] = 1;
  int64_t tot = n * ch * d * h * w;
  snprintf(c.desc, sizeof c.desc, "n%lld c%lld %lldx%lldx%lld %s", (long long)n, (long long)ch,
           (long long)d, (long long)h, (long long)w, lay(l));
  add_buf(&c, "x", tot, B_RAND, -1, 2, 0);
  add_buf(&c, "y", tot, B_NAN, 0, 0, 1);
  add_buf(&c, "mean", n * ch, B_NAN, 0, 0, 1);
  add_buf(&c, "var", n * ch, B_NAN, 0, 0, 1);
  c.run = in_fwd_run;
  if (with_ref) c.ref = in_fwd_ref;
  check_case(&c);
  tcase i = c; /* inference: no saved stats */
  i.iv[0] = 0;
  i.b[2].cmp = i.b[3].cmp = 0;
  i.ref = NULL;
  snprintf(i.desc, sizeof i.desc, "%.160s infer", c.desc);
  check_case(&i);
  for (int accum = 0; accum < 2; accum++) {
    tcase b;
    init_case(&b, "inorm_lrelu_bwd");
    b.in = c.in;
    b.iv[1] = accum;
    snprintf(b.desc, sizeof b.desc, "%.160s acc%d", c.desc, accum);
    add_buf(&b, "x", tot, B_RAND, -1, 2, 0);
    add_buf(&b, "y", tot, B_NAN, 0, 0, 0);
    add_buf(&b, "mean", n * ch, B_NAN, 0, 0, 0);
    add_buf(&b, "var", n * ch, B_NAN, 0, 0, 0);
    add_buf(&b, "dy", tot, B_RAND, -1, 1, 0);
    add_buf(&b, "dx", tot, accum ? B_RAND : B_NAN, -1, 1, 1);
    b.run = in_bwd_run;
    check_case(&b);
  }
}

static csal3d_status up_fwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->upsample2x_fwd(e, &c->up, CF(b[0]), F(b[1]));
}
static void up_fwd_ref(const tcase *c, double **hb, double *s) {
  ref_upsample2x(&c->up, hb[0], hb[1]);
}
static csal3d_status up_bwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->upsample2x_bwd(e, &c->up, CF(b[0]), F(b[1]), (int)c->iv[0]);
}

static void up_cases(int64_t n, int64_t ch, int64_t d, int64_t h, int64_t w, c3_layout l,
                     int with_ref) {
  tcase c;
  init_case(&c, "upsample2x_fwd");
  c.up = (c3_upsample_desc){n, ch, d, h, w, l};
  int64_t tot = n * ch * d * h * w;
  snprintf(c.desc, sizeof c.desc, "n%lld c%lld %lldx%lldx%lld %s", (long long)n, (long long)ch,
           (long long)d, (long long)h, (long long)w, lay(l));
  add_buf(&c, "x", tot, B_RAND, -1, 1, 0);
  add_buf(&c, "y", 8 * tot, B_NAN, 0, 0, 1);
  c.run = up_fwd_run;
  if (with_ref) c.ref = up_fwd_ref;
  check_case(&c);
  for (int accum = 0; accum < 2; accum++) {
    tcase b;
    init_case(&b, "upsample2x_bwd");
    b.up = c.up;
    b.iv[0] = accum;
    snprintf(b.desc, sizeof b.desc, "%.160s acc%d", c.desc, accum);
    add_buf(&b, "dy", 8 * tot, B_RAND, -1, 1, 0);
    add_buf(&b, "dx", tot, accum ? B_RAND : B_NAN, -1, 1, 1);
    b.run = up_bwd_run;
    check_case(&b);
  }
}

START_TEST(cuda_inorm_upsample) {
  int failures0 = failures;
  const c3_layout A = C3_LAYOUT_NCDHW, B = C3_LAYOUT_NDHWC;
  in_cases(2, 3, 5, 4, 7, A, 1);
  in_cases(2, 5, 3, 6, 4, B, 1);
  in_cases(1, 1, 1, 1, 3, B, 1);
  in_cases(2, 48, 64, 64, 64, B, 0); /* decoder conv.16 output at 128^3 */
  in_cases(1, 768, 4, 4, 4, B, 0);
  in_cases(1, 7, 33, 20, 17, A, 0);
  up_cases(1, 2, 3, 4, 5, A, 1);
  up_cases(2, 3, 1, 2, 3, B, 1);
  up_cases(1, 48, 32, 32, 32, B, 0);
  up_cases(2, 5, 9, 7, 13, A, 0);
  ck_assert_int_eq(failures, failures0);
}
END_TEST

/* ---- window attention ------------------------------------------------------------------------------ */

/* b: qkv table region out probs */
static csal3d_status at_fwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->attn_fwd(e, &c->at, CF(b[0]), CF(b[1]), c->iv[0] ? I(b[2]) : NULL, F(b[3]),
                     c->iv[1] ? F(b[4]) : NULL);
}
static void at_fwd_ref(const tcase *c, double **hb, double *s) {
  ref_attn(&c->at, hb[0], hb[1], c->iv[0] ? hb[2] : NULL, hb[3], c->iv[1] ? hb[4] : NULL);
}
/* b: qkv table region probs dout dqkv dtable (+ out scratch) */
static csal3d_status at_bwd_run(c3_engine *e, const tcase *c, void **b, double *s) {
  const int32_t *reg = c->iv[0] ? I(b[2]) : NULL;
  float *probs = c->iv[1] ? F(b[3]) : NULL;
  csal3d_status r = e->attn_fwd(e, &c->at, CF(b[0]), CF(b[1]), reg, F(b[7]), probs);
  if (r != CSAL3D_OK) return r;
  return e->attn_bwd(e, &c->at, CF(b[0]), CF(b[1]), reg, probs, CF(b[4]), F(b[5]),
                     (int)c->iv[2], F(b[6]));
}

static void at_cases(int64_t windows, int64_t tokens, int64_t heads, int64_t hd, int w0, int w1,
                     int w2, int64_t mask_windows, int save, int with_ref) {
  tcase c;
  init_case(&c, "attn_fwd");
  c.at = (c3_attn_desc){windows, tokens, heads, hd, {w0, w1, w2},
                        (float)(1.0 / sqrt((double)hd)), mask_windows ? mask_windows : 1, -100.0f};
  c.iv[0] = mask_windows > 0;
  c.iv[1] = save;
  c.lowp = 1;
  int64_t C = heads * hd, rows = (int64_t)(2 * w0 - 1) * (2 * w1 - 1) * (2 * w2 - 1);
  int64_t pn = windows * heads * tokens * tokens;
  snprintf(c.desc, sizeof c.desc, "win %lld n %lld h %lld hd %lld full %dx%dx%d%s%s",
           (long long)windows, (long long)tokens, (long long)heads, (long long)hd, w0, w1, w2,
           mask_windows ? " mask" : "", save ? " P saved" : "");
  add_buf(&c, "qkv", windows * tokens * 3 * C, B_RAND, -1.5, 1.5, 0);
  add_buf(&c, "table", rows * heads, B_RAND, -1, 1, 0);
  add_buf(&c, "region", (mask_windows ? mask_windows : 1) * tokens, B_INT, 0, 4, 0);
  add_buf(&c, "out", windows * tokens * C, B_NAN, 0, 0, 1);
  add_buf(&c, "probs", save ? pn : 1, B_NAN, 0, 0, save);
  c.run = at_fwd_run;
  if (with_ref) c.ref = at_fwd_ref;
  check_case(&c);
  for (int accum = 0; accum < 2; accum++) {
    tcase b;
    init_case(&b, "attn_bwd");
    b.at = c.at;
    b.iv[0] = c.iv[0];
    b.iv[1] = save;
    b.iv[2] = accum;
    b.lowp = 1;
    snprintf(b.desc, sizeof b.desc, "%.160s acc%d", c.desc, accum);
    add_buf(&b, "qkv", windows * tokens * 3 * C, B_RAND, -1.5, 1.5, 0);
    add_buf(&b, "table", rows * heads, B_RAND, -1, 1, 0);
    add_buf(&b, "region", (mask_windows ? mask_windows : 1) * tokens, B_INT, 0, 4, 0);
    add_buf(&b, "probs", save ? pn : 1, B_NAN, 0, 0, 0);
    add_buf(&b, "dout", windows * tokens * C, B_RAND, -1, 1, 0);
    add_buf(&b, "dqkv", windows * tokens * 3 * C, accum ? B_RAND : B_NAN, -1, 1, 1);
    add_buf(&b, "dtable", rows * heads, B_RAND, -1, 1, 1);
    add_buf(&b, "out", windows * tokens * C, B_NAN, 0, 0, 0);
    b.run = at_bwd_run;
    check_case(&b);
  }
}

START_TEST(cuda_attention) {
  int failures0 = failures;
  at_cases(3, 8, 2, 4, 2, 2, 2, 0, 1, 1);
  at_cases(4, 18, 3, 4, 3, 2, 3, 2, 0, 1);   /* mask: 2 images of 2 windows */
  at_cases(5, 20, 2, 5, 3, 3, 3, 5, 1, 1);   /* clipped (20 of 27) + mask */
  at_cases(8, 343, 3, 16, 7, 7, 7, 4, 0, 1); /* full window, mask */
  at_cases(27, 245, 6, 16, 7, 7, 7, 27, 1, 0); /* clipped 7x7x5 window, stage 2-like */
  at_cases(250, 343, 3, 16, 7, 7, 7, 125, 0, 0); /* stage 1 at 70^3, 2 images, chunked */
  at_cases(2, 64, 24, 16, 7, 7, 7, 0, 0, 0);     /* stage 4: 4^3 tokens, 24 heads */
  at_cases(6, 45, 2, 32, 3, 5, 3, 3, 0, 1);      /* head dim 32, fused */
  at_cases(4, 30, 3, 8, 4, 3, 5, 2, 0, 1);       /* head dim 8, clipped, mask */
  at_cases(3, 27, 2, 5, 3, 3, 3, 0, 0, 1);       /* head dim 5: reference path */
  ck_assert_int_eq(failures, failures0);
}
END_TEST

/* ---- permutes ------------------------------------------------------------------------------------------ */

static csal3d_status wp_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->window_partition(e, &c->win, CF(b[0]), F(b[1]), (int)c->iv[0]);
}
static csal3d_status wm_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->window_merge(e, &c->win, CF(b[0]), F(b[1]), (int)c->iv[0]);
}
static void wp_ref(const tcase *c, double **hb, double *s) {
  ref_window_partition(&c->win, hb[0], hb[1]);
}
static void wm_ref(const tcase *c, double **hb, double *s) {
  ref_window_merge(&c->win, hb[0], hb[1]);
}

static void win_cases(int64_t batch, int64_t d, int64_t h, int64_t w, int64_t ch, int w0, int w1,
                      int w2, int s0, int s1, int s2, int with_ref) {
  c3_window_desc wd = {batch, d, h, w, ch, {w0, w1, w2}, {s0, s1, s2}};
  int64_t xw = batch * c3_window_count(&wd) * w0 * w1 * w2 * ch, x = batch * d * h * w * ch;
  for (int accum = 0; accum < 2; accum++) {
    tcase c;
    init_case(&c, "window_partition");
    c.win = wd;
    c.iv[0] = accum;
    snprintf(c.desc, sizeof c.desc, "b%lld %lldx%lldx%lld c%lld w%d,%d,%d s%d,%d,%d acc%d",
             (long long)batch, (long long)d, (long long)h, (long long)w, (long long)ch, w0, w1,
             w2, s0, s1, s2, accum);
    add_buf(&c, "x", x, B_RAND, -1, 1, 0);
    add_buf(&c, "xw", xw, accum ? B_RAND : B_NAN, -1, 1, 1);
    c.run = wp_run;
    if (with_ref && !accum) c.ref = wp_ref;
    check_case(&c);
    tcase m;
    init_case(&m, "window_merge");
    m.win = wd;
    m.iv[0] = accum;
    snprintf(m.desc, sizeof m.desc, "%s", c.desc);
    add_buf(&m, "xw", xw, B_RAND, -1, 1, 0);
    add_buf(&m, "x", x, accum ? B_RAND : B_NAN, -1, 1, 1);
    m.run = wm_run;
    if (with_ref && !accum) m.ref = wm_ref;
    check_case(&m);
  }
}

static csal3d_status pmf_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->patch_merge_fwd(e, &c->mg, CF(b[0]), F(b[1]));
}
static void pmf_ref(const tcase *c, double **hb, double *s) { ref_patch_merge(&c->mg, hb[0], hb[1]); }
static csal3d_status pmb_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->patch_merge_bwd(e, &c->mg, CF(b[0]), F(b[1]), (int)c->iv[0]);
}

static void merge_cases(int64_t batch, int64_t d, int64_t h, int64_t w, int64_t ch, int monai,
                        int with_ref) {
  c3_merge_desc md = {batch, d, h, w, ch, {0}};
  unsigned char om[8] = C3_MERGE_ORDER_MONAI, od[8] = C3_MERGE_ORDER_DISTINCT;
  memcpy(md.order, monai ? om : od, 8);
  int64_t x = batch * d * h * w * ch, y = batch * ((d + 1) / 2) * ((h + 1) / 2) * ((w + 1) / 2) * 8 * ch;
  tcase c;
  init_case(&c, "patch_merge_fwd");
  c.mg = md;
  snprintf(c.desc, sizeof c.desc, "b%lld %lldx%lldx%lld c%lld %s", (long long)batch,
           (long long)d, (long long)h, (long long)w, (long long)ch, monai ? "monai" : "distinct");
  add_buf(&c, "x", x, B_RAND, -1, 1, 0);
  add_buf(&c, "y", y, B_NAN, 0, 0, 1);
  c.run = pmf_run;
  if (with_ref) c.ref = pmf_ref;
  check_case(&c);
  for (int accum = 0; accum < 2; accum++) {
    tcase b;
    init_case(&b, "patch_merge_bwd");
    b.mg = md;
    b.iv[0] = accum;
    snprintf(b.desc, sizeof b.desc, "%.160s acc%d", c.desc, accum);
    add_buf(&b, "dy", y, B_RAND, -1, 1, 0);
    add_buf(&b, "dx", x, accum ? B_RAND : B_NAN, -1, 1, 1);
    b.run = pmb_run;
    check_case(&b);
  }
}

static csal3d_status tr_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->transpose(e, c->iv[0], c->iv[1], c->iv[2], CF(b[0]), F(b[1]), (int)c->iv[3]);
}
static void tr_ref(const tcase *c, double **hb, double *s) {
  ref_transpose(c->iv[0], c->iv[1], c->iv[2], hb[0], hb[1]);
}
static void tr_cases(int64_t batch, int64_t rows, int64_t cols) {
  for (int accum = 0; accum < 2; accum++) {
    tcase c;
    init_case(&c, "transpose");
    c.iv[0] = batch;
    c.iv[1] = rows;
    c.iv[2] = cols;
    c.iv[3] = accum;
    snprintf(c.desc, sizeof c.desc, "b%lld %lldx%lld acc%d", (long long)batch, (long long)rows,
             (long long)cols, accum);
    add_buf(&c, "x", batch * rows * cols, B_RAND, -1, 1, 0);
    add_buf(&c, "y", batch * rows * cols, accum ? B_RAND : B_NAN, -1, 1, 1);
    c.run = tr_run;
    if (!accum && batch * rows * cols < 4000000) c.ref = tr_ref;
    check_case(&c);
  }
}

static csal3d_status pm_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->permute3d(e, &c->pm, CF(b[0]), F(b[1]), (int)c->iv[0]);
}
static void pm_ref(const tcase *c, double **hb, double *s) { ref_permute3d(&c->pm, hb[0], hb[1]); }
static void perm_cases(int64_t batch, int64_t inner, int64_t s0, int64_t s1, int64_t s2, int p0,
                       int p1, int p2, int f0, int f1, int f2) {
  for (int accum = 0; accum < 2; accum++) {
    tcase c;
    init_case(&c, "permute3d");
    c.pm = (c3_permute3d_desc){batch, inner, {s0, s1, s2}, {p0, p1, p2}, {f0, f1, f2}};
    c.iv[0] = accum;
    snprintf(c.desc, sizeof c.desc, "b%lld i%lld %lldx%lldx%lld p%d%d%d f%d%d%d acc%d",
             (long long)batch, (long long)inner, (long long)s0, (long long)s1, (long long)s2, p0,
             p1, p2, f0, f1, f2, accum);
    int64_t n = batch * inner * s0 * s1 * s2;
    add_buf(&c, "x", n, B_RAND, -1, 1, 0);
    add_buf(&c, "y", n, accum ? B_RAND : B_NAN, -1, 1, 1);
    c.run = pm_run;
    if (!accum) c.ref = pm_ref;
    check_case(&c);
  }
}

START_TEST(cuda_permutes) {
  int failures0 = failures;
  win_cases(2, 9, 8, 10, 3, 7, 7, 7, 3, 3, 3, 1);
  win_cases(1, 6, 13, 5, 4, 6, 7, 5, 0, 3, 0, 1); /* clipped window, partial shift */
  win_cases(2, 5, 3, 4, 2, 3, 2, 4, 1, 1, 2, 1);
  win_cases(1, 64, 64, 64, 48, 7, 7, 7, 3, 3, 3, 0); /* stage 0 at 128^3 */
  win_cases(2, 16, 12, 8, 192, 7, 7, 7, 3, 3, 3, 0);
  merge_cases(1, 5, 4, 7, 3, 1, 1);
  merge_cases(2, 3, 6, 5, 2, 0, 1);
  merge_cases(1, 64, 64, 64, 48, 1, 0);
  tr_cases(2, 37, 5);
  tr_cases(1, 4097, 48);
  tr_cases(2, 48, 262144 / 8);
  tr_cases(1, 2097152, 1);
  perm_cases(2, 1, 4, 5, 6, 0, 2, 1, 0, 1, 0);
  perm_cases(1, 3, 7, 3, 5, 2, 0, 1, 1, 0, 1);
  perm_cases(3, 2, 4, 4, 9, 1, 0, 2, 1, 1, 1);
  perm_cases(1, 1, 128, 96, 64, 0, 2, 1, 0, 1, 0); /* rot90 of a view */
  ck_assert_int_eq(failures, failures0);
}
END_TEST

/* ---- reductions, elementwise, losses, AdamW --------------------------------------------------------- */

static csal3d_status rs_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->reduce_sum(e, c->iv[0], c->iv[1], c->iv[2], c->fv[0], CF(b[0]), F(b[1]), (int)c->iv[3]);
}
static void rs_ref(const tcase *c, double **hb, double *s) {
  ref_reduce_sum(c->iv[0], c->iv[1], c->iv[2], c->fv[0], hb[0], hb[1]);
}
static csal3d_status bc_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->broadcast(e, c->iv[0], c->iv[1], c->iv[2], c->fv[0], CF(b[0]), F(b[1]), (int)c->iv[3]);
}
static void bc_ref(const tcase *c, double **hb, double *s) {
  ref_broadcast(c->iv[0], c->iv[1], c->iv[2], c->fv[0], hb[0], hb[1]);
}

static void red_cases(int64_t outer, int64_t mid, int64_t inner, float alpha) {
  for (int accum = 0; accum < 2; accum++) {
    tcase c;
    init_case(&c, "reduce_sum");
    c.iv[0] = outer;
    c.iv[1] = mid;
    c.iv[2] = inner;
    c.iv[3] = accum;
    c.fv[0] = alpha;
    snprintf(c.desc, sizeof c.desc, "%lldx%lldx%lld a%g acc%d", (long long)outer, (long long)mid,
             (long long)inner, alpha, accum);
    add_buf(&c, "x", outer * mid * inner, B_RAND, -1, 1.2, 0);
    add_buf(&c, "y", outer * inner, accum ? B_RAND : B_NAN, -1, 1, 1);
    c.run = rs_run;
    if (!accum) c.ref = rs_ref;
    check_case(&c);
    tcase b = c;
    b.op = "broadcast";
    b.nb = 0;
    add_buf(&b, "x", outer * inner, B_RAND, -1, 1, 0);
    add_buf(&b, "y", outer * mid * inner, accum ? B_RAND : B_NAN, -1, 1, 1);
    b.run = bc_run;
    b.ref = accum ? NULL : bc_ref;
    check_case(&b);
  }
}

/* elementwise: iv[0] = n, iv[1] = which (0 add, 1 mul, 2 axpby, 3 scale), fv = a, b */
static csal3d_status ew_run(c3_engine *e, const tcase *c, void **b, double *s) {
  int64_t n = c->iv[0];
  switch (c->iv[1]) {
  case 0: return e->add(e, n, CF(b[0]), CF(b[1]), F(b[2]));
  case 1: return e->mul(e, n, CF(b[0]), CF(b[1]), F(b[2]));
  case 2: return e->axpby(e, n, c->fv[0], CF(b[0]), c->fv[1], F(b[2]));
  case 3: return e->scale(e, n, c->fv[0], F(b[2]));
  default: {
    double v;
    csal3d_status r = c->iv[1] == 4 ? e->sum(e, n, CF(b[0]), &v) : e->dot(e, n, CF(b[0]), CF(b[1]), &v);
    s[0] = v;
    return r;
  }
  }
}
static void ew_ref(const tcase *c, double **hb, double *s) {
  int64_t n = c->iv[0];
  double a = c->fv[0], bb = c->fv[1];
  s[0] = 0.0;
  for (int64_t i = 0; i < n; i++) switch (c->iv[1]) {
    case 0: hb[2][i] = hb[0][i] + hb[1][i]; break;
    case 1: hb[2][i] = hb[0][i] * hb[1][i]; break;
    case 2: hb[2][i] = bb == 0.0 ? a * hb[0][i] : a * hb[0][i] + bb * hb[2][i]; break;
    case 3: hb[2][i] = a * hb[2][i]; break;
    case 4: s[0] += hb[0][i]; break;
    default: s[0] += hb[0][i] * hb[1][i]; break;
    }
}

static void ew_cases(int64_t n) {
  static const char *names[6] = {"add", "mul", "axpby", "scale", "sum", "dot"};
  for (int which = 0; which < 6; which++)
    for (int variant = 0; variant < (which == 2 ? 3 : 1); variant++) {
      tcase c;
      init_case(&c, names[which]);
      c.iv[0] = n;
      c.iv[1] = which;
      c.fv[0] = 0.75f;
      c.fv[1] = variant == 0 ? 0.0f : variant == 1 ? 1.0f : -0.5f;
      snprintf(c.desc, sizeof c.desc, "n %lld%s", (long long)n,
               which == 2 ? (variant == 0 ? " b0" : variant == 1 ? " b1" : " b-0.5") : "");
      add_buf(&c, "x", n, B_RAND, -1, 1.5, 0);
      add_buf(&c, "y", n, B_RAND, -1, 1, 0);
      int overwrite = which <= 1 || (which == 2 && variant == 0);
      add_buf(&c, "z", n, overwrite ? B_NAN : B_RAND, -1, 1, which < 4);
      c.nscal = which >= 4;
      c.run = ew_run;
      c.ref = ew_ref;
      check_case(&c);
    }
}

/* losses: iv[0] = n (or rows), iv[1] = which (0 mse, 1 mse weighted, 2 l1, 3 ce), iv[2]
 * classes, iv[3] accum; b: x t w dx dt */
static csal3d_status loss_run(c3_engine *e, const tcase *c, void **b, double *s) {
  int64_t n = c->iv[0];
  int acc = (int)c->iv[3];
  float gs = c->fv[0];
  switch (c->iv[1]) {
  case 0: return e->mse_loss(e, n, CF(b[0]), CF(b[1]), NULL, gs, F(b[3]), F(b[4]), acc, &s[0]);
  case 1: return e->mse_loss(e, n, CF(b[0]), CF(b[1]), CF(b[2]), gs, F(b[3]), NULL, acc, &s[0]);
  case 2: return e->l1_loss(e, n, CF(b[0]), CF(b[1]), gs, F(b[3]), F(b[4]), acc, &s[0]);
  default:
    return e->cross_entropy(e, n, c->iv[2], CF(b[0]), I(b[2]), gs, F(b[3]), acc, &s[0]);
  }
}
static void loss_ref(const tcase *c, double **hb, double *s) {
  int64_t n = c->iv[0];
  switch (c->iv[1]) {
  case 0: s[0] = ref_mse(n, hb[0], hb[1], NULL); break;
  case 1: s[0] = ref_mse(n, hb[0], hb[1], hb[2]); break;
  case 2: s[0] = ref_l1(n, hb[0], hb[1]); break;
  default: s[0] = ref_cross_entropy(n, c->iv[2], hb[0], hb[2]); break;
  }
}

static void loss_cases(int64_t n) {
  static const char *names[4] = {"mse_loss", "mse_loss_w", "l1_loss", "cross_entropy"};
  for (int which = 0; which < 4; which++)
    for (int accum = 0; accum < 2; accum++) {
      tcase c;
      init_case(&c, names[which]);
      int64_t rows = which == 3 ? (n < 9 ? n : 9) : n, classes = 4;
      int64_t xn = which == 3 ? rows * classes : n;
      c.iv[0] = rows;
      c.iv[1] = which;
      c.iv[2] = classes;
      c.iv[3] = accum;
      c.fv[0] = 0.37f;
      c.nscal = 1;
      snprintf(c.desc, sizeof c.desc, "n %lld acc%d", (long long)xn, accum);
      add_buf(&c, "x", xn, B_RAND, -2, 2, 0);
      add_buf(&c, "t", xn, B_RAND, -2, 2, 0);
      if (which == 3)
        add_buf(&c, "labels", rows, B_INT, 0, classes, 0);
      else
        add_buf(&c, "w", xn, B_RAND, 0, 1, 0);
      add_buf(&c, "dx", xn, accum ? B_RAND : B_NAN, -1, 1, 1);
      add_buf(&c, "dt", xn, accum ? B_RAND : (which == 0 || which == 2 ? B_NAN : B_RAND), -1,
              1, which == 0 || which == 2);
      c.run = loss_run;
      c.ref = loss_ref; /* scalars vs the reference; gradients vs the CPU */
      c.ref_scalars = 1;
      check_case(&c);
    }
}

static csal3d_status adamw_run(c3_engine *e, const tcase *c, void **b, double *s) {
  return e->adamw(e, &c->aw, c->iv[0], F(b[0]), CF(b[1]), F(b[2]), F(b[3]));
}
static void adamw_ref(const tcase *c, double **hb, double *s) {
  ref_adamw(&c->aw, c->iv[0], hb[0], hb[1], hb[2], hb[3]);
}

START_TEST(cuda_reduce_elementwise_loss_adamw) {
  int failures0 = failures;
  red_cases(3, 7, 5, 1.0f);
  red_cases(9, 32768, 48, 1.0f / 32768); /* spatial mean of stage-1 tokens, 9 obs */
  red_cases(1, 2097152, 1, 0.5f);
  red_cases(1, 100003, 192, 1.0f); /* a bias gradient */
  red_cases(100000, 3, 7, -2.0f);
  ew_cases(17);
  ew_cases(10000019);
  loss_cases(5);
  loss_cases(2 * 1000003);
  for (int wd = 0; wd < 2; wd++) {
    tcase c;
    init_case(&c, "adamw");
    c.iv[0] = 1000003;
    c.aw = (c3_adamw_desc){1e-3f, 0.9f, 0.999f, 1e-8f, wd ? 0.1f : 0.0f, 0.7f, 17};
    snprintf(c.desc, sizeof c.desc, "n %lld wd %g step 17", (long long)c.iv[0], c.aw.weight_decay);
    add_buf(&c, "p", c.iv[0], B_RAND, -1, 1, 1);
    add_buf(&c, "g", c.iv[0], B_RAND, -1, 1, 0);
    add_buf(&c, "m", c.iv[0], B_RAND, -0.1, 0.1, 1);
    add_buf(&c, "v", c.iv[0], B_RAND, 0, 0.01, 1);
    c.run = adamw_run;
    c.ref = adamw_ref;
    check_case(&c);
  }
  ck_assert_int_eq(failures, failures0);
}
END_TEST

/* ---- memory, errors ------------------------------------------------------------------------------------ */

START_TEST(cuda_memory_and_errors) {
  open_engines();
  c3_engine *e = gpu[P_FP32];
  size_t u0, p0, u1, p1;
  e->memory_stats(e, &u0, &p0);
  void *a = NULL, *z = NULL;
  ck_assert_int_eq(e->alloc(e, 1200, "a", &a), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, 0, "zero", &z), CSAL3D_OK);
  ck_assert_ptr_nonnull(z);
  e->memory_stats(e, &u1, &p1);
  ck_assert_uint_eq(u1, u0 + 1200);
  ck_assert_uint_ge(p1, u1);
  e->free(e, a);
  e->free(e, z);
  e->free(e, NULL);
  e->memory_stats(e, &u1, NULL);
  ck_assert_uint_eq(u1, u0);
  /* the cache hands the block back for the same size */
  void *b = NULL;
  ck_assert_int_eq(e->alloc(e, 1200, "b", &b), CSAL3D_OK);
  ck_assert_ptr_eq(a, b);
  float host[300], back[300];
  for (int i = 0; i < 300; i++) host[i] = (float)i * 0.5f;
  ck_assert_int_eq(e->upload(e, b, host, sizeof host / 2), CSAL3D_OK);
  ck_assert_int_eq(e->fill(e, (float *)b + 150, 100, 2.5f), CSAL3D_OK);
  ck_assert_int_eq(e->zero(e, (float *)b + 250, 50 * 4), CSAL3D_OK);
  ck_assert_int_eq(e->download(e, back, b, sizeof back), CSAL3D_OK);
  for (int i = 0; i < 300; i++)
    ck_assert(back[i] == (i < 150 ? host[i] : i < 250 ? 2.5f : 0.0f));
  e->free(e, b);
  /* out of memory: a status and a message, not a crash */
  void *huge = NULL;
  ck_assert_int_eq(e->alloc(e, (size_t)1 << 46, "huge", &huge), CSAL3D_ERR_OUT_OF_MEMORY);
  ck_assert_ptr_null(huge);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "huge"));
  /* bad labels are an error naming the row */
  int32_t lab[3] = {0, 7, 1};
  float lg[12] = {0};
  void *dl = NULL, *dg = NULL;
  ck_assert_int_eq(e->alloc(e, sizeof lab, "labels", &dl), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, sizeof lg, "logits", &dg), CSAL3D_OK);
  ck_assert_int_eq(e->upload(e, dl, lab, sizeof lab), CSAL3D_OK);
  ck_assert_int_eq(e->upload(e, dg, lg, sizeof lg), CSAL3D_OK);
  double loss;
  ck_assert_int_eq(e->cross_entropy(e, 3, 4, F(dg), I(dl), 1.0f, NULL, 0, &loss),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "row 1"));
  /* argument errors */
  c3_matmul_desc md = {2, 3, 3, 3, 0, 0, 0, 0, 0, 9, 9, 0, 1.0f, 0.0f};
  ck_assert_int_eq(e->matmul(e, &md, F(dg), F(dg), NULL, F(dg)), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "stride_c"));
  c3_conv3d_desc cd = {1, 1, 1, {2, 2, 2}, {3, 3, 3}, {1, 1, 1}, {0, 0, 0}, 0, 0};
  ck_assert_int_eq(e->conv3d_fwd(e, &cd, F(dg), F(dg), NULL, F(dg)), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(e->synchronize(e), CSAL3D_OK);
  e->free(e, dl);
  e->free(e, dg);
  const char *small = getenv("C3_TEST_CUDA_SMALL");
  if (small && *small == '1') return;
  /* repeated big ops keep the engine's scratch bounded: the attention of 1000 windows
   * of stage 1 (one 128^3 observation) without saved probabilities */
  c3_attn_desc ad = {1000, 343, 3, 16, {7, 7, 7}, 0.25f, 1000, -100.0f};
  int64_t qn = 1000 * 343 * 144, on = 1000 * 343 * 48, tn = 13 * 13 * 13 * 3;
  void *qkv = NULL, *out = NULL, *tab = NULL, *dq = NULL, *dt = NULL;
  ck_assert_int_eq(e->alloc(e, qn * 4, "qkv", &qkv), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, qn * 4, "dqkv", &dq), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, on * 4, "out", &out), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, tn * 4, "table", &tab), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, tn * 4, "dtable", &dt), CSAL3D_OK);
  ck_assert_int_eq(e->fill(e, F(qkv), qn, 0.1f), CSAL3D_OK);
  ck_assert_int_eq(e->fill(e, F(tab), tn, 0.2f), CSAL3D_OK);
  ck_assert_int_eq(e->zero(e, dt, tn * 4), CSAL3D_OK);
  size_t before, after, pk;
  e->memory_stats(e, &before, NULL);
  e->reset_peak(e);
  for (int r = 0; r < 2; r++) {
    ck_assert_int_eq(e->attn_fwd(e, &ad, CF(qkv), CF(tab), NULL, F(out), NULL), CSAL3D_OK);
    ck_assert_int_eq(e->attn_bwd(e, &ad, CF(qkv), CF(tab), NULL, NULL, CF(out), F(dq), 0, F(dt)),
                     CSAL3D_OK);
  }
  ck_assert_int_eq(e->synchronize(e), CSAL3D_OK);
  e->memory_stats(e, &after, &pk);
  printf("attention scratch: %.1f MiB held, peak %.1f MiB above the tensors\n",
         (after - before) / 1048576.0, (pk - before) / 1048576.0);
  ck_assert_uint_le(pk - before, (size_t)1 << 30);
  e->free(e, qkv);
  e->free(e, dq);
  e->free(e, out);
  e->free(e, tab);
  e->free(e, dt);
}
END_TEST

static void print_summary(void) {
  if (!nsummary) return;
  printf("\n%-18s %6s %10s %10s %10s %10s %10s\n", "op", "cases", "fp32/cpu", "fp32/ref",
         "tf32/cpu", "bf16/cpu", "fp32-ref");
  for (int i = 0; i < nsummary; i++) {
    printf("%-18s %6d", summary[i].op, summary[i].cases);
    double v[5] = {summary[i].err[P_FP32], summary[i].ref, summary[i].err[P_TF32],
                   summary[i].err[P_BF16], summary[i].err[P_REF]};
    for (int k = 0; k < 5; k++) {
      if (v[k] < 0)
        printf(" %10s", "-");
      else
        printf(" %10.2e", v[k]);
    }
    printf("\n");
  }
  printf("(largest ||cuda - cpu|| / ||cpu|| per op; fp32/ref: against the float64 reference;\n"
         " fp32-ref: float32 with the GEMM convolutions and the fused attention switched off)\n");
}

static Suite *suite(void) {
  Suite *s = suite_create("engine_cuda");
  TCase *t = tcase_create("ops");
  tcase_set_timeout(t, 1200);
  tcase_add_test(t, cuda_memory_and_errors);
  tcase_add_test(t, cuda_reduce_elementwise_loss_adamw);
  tcase_add_test(t, cuda_permutes);
  tcase_add_test(t, cuda_norm_softmax_gelu);
  tcase_add_test(t, cuda_inorm_upsample);
  tcase_add_test(t, cuda_matmul);
  tcase_add_test(t, cuda_conv3d);
  tcase_add_test(t, cuda_attention);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  /* tests/run.sh names the plugin of this build tree */
  const char *plugin = getenv("CSAL3D_TEST_CUDA_PLUGIN");
  if (plugin && *plugin && !getenv("CSAL3D_CUDA_PLUGIN")) setenv("CSAL3D_CUDA_PLUGIN", plugin, 0);
  c3_engine *probe = NULL;
  if (!open_cuda(P_FP32, &probe)) {
    printf("SKIP: no CUDA engine: %s\n", why_cuda);
    return 77;
  }
  c3_engine_close(probe);
  SRunner *r = srunner_create(suite());
  /* one process: the CUDA context is made once and kept (no fork after CUDA init) */
  srunner_set_fork_status(r, CK_NOFORK);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  print_summary();
  for (int p = 0; p < NPREC; p++) c3_engine_close(gpu[p]);
  c3_engine_close(cpu);
  return failed ? 1 : 0;
}
