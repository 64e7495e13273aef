/* Tests of lib/core and the context: errors, allocation, random numbers,
 * threads, options ABI, logging, progress and device selection. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/error.h"
#include "core/report.h"
#include "core/rng.h"
#include "core/threads.h"
#include "csal3d/csal3d.h"

/* ---- errors ---- */

START_TEST(error_message_is_formatted_and_thread_local) {
  ck_assert_int_eq(c3_error(CSAL3D_ERR_IO, "%s: %d", "a.nii", 7), CSAL3D_ERR_IO);
  ck_assert_str_eq(csal3d_last_error(), "a.nii: 7");
  ck_assert_int_eq(c3_error_prefix(CSAL3D_ERR_IO, "case %d", 3), CSAL3D_ERR_IO);
  ck_assert_str_eq(csal3d_last_error(), "case 3: a.nii: 7");
  c3_error_clear();
  ck_assert_str_eq(csal3d_last_error(), "");
}
END_TEST

START_TEST(error_long_message_is_cut_with_ellipsis) {
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  c3_error(CSAL3D_ERR_FORMAT, "%s", big);
  const char *m = csal3d_last_error();
  ck_assert_uint_eq(strlen(m), C3_ERROR_MAX - 1);
  ck_assert_str_eq(m + strlen(m) - 3, "...");
}
END_TEST

START_TEST(status_strings_are_distinct) {
  const char *seen[16];
  int n = 0;
  for (int s = CSAL3D_OK; s >= CSAL3D_ERR_INTERNAL; s--) {
    const char *name = csal3d_status_string((csal3d_status)s);
    ck_assert_str_ne(name, "unknown status");
    for (int i = 0; i < n; i++) ck_assert_str_ne(seen[i], name);
    seen[n++] = name;
  }
  ck_assert_str_eq(csal3d_status_string((csal3d_status)-999), "unknown status");
}
END_TEST

START_TEST(version_matches_headers) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", CSAL3D_VERSION_MAJOR,
           CSAL3D_VERSION_MINOR, CSAL3D_VERSION_PATCH);
  ck_assert_str_eq(csal3d_version(), want);
  ck_assert_int_eq(csal3d_version_number(), CSAL3D_VERSION_NUMBER);
}
END_TEST

/* ---- allocation ---- */

START_TEST(alloc_is_aligned_and_reports_failure) {
  void *p;
  ck_assert_int_eq(c3_alloc(1000, "test", &p), CSAL3D_OK);
  ck_assert_uint_eq((uintptr_t)p % C3_ALIGN, 0);
  c3_free(p);
  ck_assert_int_eq(c3_alloc(0, "empty", &p), CSAL3D_OK);
  ck_assert_ptr_nonnull(p);
  c3_free(p);
  ck_assert_int_eq(c3_alloc_array(SIZE_MAX / 2, 4, "huge", &p),
                   CSAL3D_ERR_OUT_OF_MEMORY);
  ck_assert_ptr_null(p);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "huge"));
  c3_alloc_fail_after(2);
  ck_assert_int_eq(c3_alloc(8, "first", &p), CSAL3D_OK);
  c3_free(p);
  ck_assert_int_eq(c3_alloc(8, "second", &p), CSAL3D_ERR_OUT_OF_MEMORY);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "second"));
  ck_assert_int_eq(c3_alloc(8, "third", &p), CSAL3D_OK);
  c3_free(p);
  c3_alloc_fail_after(0);
}
END_TEST

START_TEST(calloc_zeroes) {
  unsigned char *p;
  ck_assert_int_eq(c3_calloc_array(100, 3, "z", (void **)&p), CSAL3D_OK);
  for (int i = 0; i < 300; i++) ck_assert_uint_eq(p[i], 0);
  c3_free(p);
}
END_TEST

/* ---- random numbers ---- */

START_TEST(philox_known_answers) {
  /* Random123 kat_vectors, philox4x32 10: counter, key, expected. */
  static const uint32_t kat[3][10] = {
      {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
      {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
       0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
      {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
       0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
  for (int i = 0; i < 3; i++) {
    uint32_t out[4];
    c3_philox4x32_10(kat[i], kat[i] + 4, out);
    for (int j = 0; j < 4; j++) ck_assert_uint_eq(out[j], kat[i][6 + j]);
  }
}
END_TEST

START_TEST(rng_streams_are_keyed) {
  c3_rng a, b, c;
  c3_rng_init(&a, 42, C3_RNG_MASK, 1, 2, 3);
  c3_rng_init(&b, 42, C3_RNG_MASK, 1, 2, 3);
  c3_rng_init(&c, 42, C3_RNG_MASK, 1, 2, 4);
  uint32_t wa[11];
  int differ = 0;
  for (int i = 0; i < 11; i++) {
    wa[i] = c3_rng_u32(&a);
    ck_assert_uint_eq(wa[i], c3_rng_u32(&b));
    differ += wa[i] != c3_rng_u32(&c);
  }
  ck_assert_int_ge(differ, 10);
  /* Different seeds differ. */
  c3_rng_init(&c, 43, C3_RNG_MASK, 1, 2, 3);
  ck_assert_uint_ne(c3_rng_u32(&c), wa[0]);
}
END_TEST

START_TEST(rng_uniform_and_normal_moments) {
  c3_rng r;
  c3_rng_init(&r, 7, C3_RNG_TEST, 0, 0, 0);
  const int n = 200000;
  double s = 0, s2 = 0, z = 0, z2 = 0, z4 = 0;
  for (int i = 0; i < n; i++) {
    double u = c3_rng_uniform(&r);
    ck_assert(u >= 0 && u < 1);
    s += u, s2 += u * u;
    double g = c3_rng_normal(&r);
    z += g, z2 += g * g, z4 += g * g * g * g;
  }
  /* Tolerances are about 5 standard errors. */
  ck_assert_double_eq_tol(s / n, 0.5, 5 * sqrt(1.0 / 12 / n));
  ck_assert_double_eq_tol(s2 / n - (s / n) * (s / n), 1.0 / 12, 0.002);
  ck_assert_double_eq_tol(z / n, 0.0, 5 / sqrt(n));
  ck_assert_double_eq_tol(z2 / n, 1.0, 5 * sqrt(2.0 / n));
  ck_assert_double_eq_tol(z4 / n, 3.0, 5 * sqrt(96.0 / n));
}
END_TEST

START_TEST(rng_below_is_uniform) {
  c3_rng r;
  c3_rng_init(&r, 9, C3_RNG_TEST, 1, 0, 0);
  enum { K = 10, N = 100000 };
  long count[K] = {0};
  for (int i = 0; i < N; i++) {
    uint64_t x = c3_rng_below(&r, K);
    ck_assert_uint_lt(x, K);
    count[x]++;
  }
  double chi2 = 0;
  for (int k = 0; k < K; k++) {
    double e = (double)N / K;
    chi2 += (count[k] - e) * (count[k] - e) / e;
  }
  ck_assert_double_lt(chi2, 27.88); /* chi-square, 9 d.o.f., p = 0.001 */
  for (int i = 0; i < 1000; i++) {
    int64_t v = c3_rng_range(&r, -3, 3);
    ck_assert(v >= -3 && v <= 3);
  }
  ck_assert_uint_eq(c3_rng_below(&r, 1), 0);
}
END_TEST

START_TEST(rng_shuffle_and_sample_are_permutations) {
  c3_rng r;
  c3_rng_init(&r, 1, C3_RNG_TEST, 2, 0, 0);
  int64_t items[50];
  for (int i = 0; i < 50; i++) items[i] = i;
  c3_rng_shuffle(&r, items, 50);
  int seen[50] = {0}, moved = 0;
  for (int i = 0; i < 50; i++) {
    seen[items[i]]++;
    moved += items[i] != i;
  }
  for (int i = 0; i < 50; i++) ck_assert_int_eq(seen[i], 1);
  ck_assert_int_gt(moved, 25);

  int64_t out[20];
  ck_assert_int_eq(c3_rng_sample(&r, 64, 20, out), CSAL3D_OK);
  int hit[64] = {0};
  for (int i = 0; i < 20; i++) {
    ck_assert(out[i] >= 0 && out[i] < 64);
    ck_assert_int_eq(hit[out[i]]++, 0);
  }
  ck_assert_int_eq(c3_rng_sample(&r, 5, 6, out), CSAL3D_ERR_INVALID_ARGUMENT);
  /* Each element of [0, 8) is drawn in a sample of 2 with probability 1/4. */
  long cnt[8] = {0};
  for (int t = 0; t < 40000; t++) {
    ck_assert_int_eq(c3_rng_sample(&r, 8, 2, out), CSAL3D_OK);
    cnt[out[0]]++, cnt[out[1]]++;
  }
  for (int i = 0; i < 8; i++) ck_assert_double_eq_tol(cnt[i] / 40000.0, 0.25, 0.015);
}
END_TEST

START_TEST(rng_fill_is_independent_of_threads) {
  enum { N = 300001 };
  float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
  c3_rng r;
  c3_rng_init(&r, 5, C3_RNG_INIT, 11, 0, 0);
  int prev = c3_threads_enter(1);
  c3_rng_fill_normal(&r, a, N, 0.0f, 0.02f);
  c3_threads_enter(2);
  c3_rng_fill_normal(&r, b, N, 0.0f, 0.02f);
  c3_threads_leave(prev);
  ck_assert_mem_eq(a, b, N * sizeof *a);
  double s = 0, s2 = 0;
  for (int i = 0; i < N; i++) s += a[i], s2 += (double)a[i] * a[i];
  ck_assert_double_eq_tol(s / N, 0.0, 1e-3);
  ck_assert_double_eq_tol(sqrt(s2 / N), 0.02, 1e-3);
  free(a);
  free(b);
}
END_TEST

/* ---- threads ---- */

START_TEST(threads_enter_and_leave) {
  ck_assert_int_ge(c3_threads_available(), 1);
  int prev = c3_threads_enter(3);
  ck_assert_int_eq(omp_get_max_threads(), 3);
  c3_threads_leave(prev);
  ck_assert_int_eq(omp_get_max_threads(), prev);
}
END_TEST

/* ---- context and options ABI ---- */

static csal3d_context *make_cpu_context(int threads, uint64_t seed) {
  csal3d_context_options o;
  ck_assert_int_eq(csal3d_context_options_init(&o), CSAL3D_OK);
  o.device = CSAL3D_DEVICE_CPU;
  o.threads = threads;
  o.seed = seed;
  csal3d_context *ctx = NULL;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_OK);
  return ctx;
}

START_TEST(context_defaults_and_accessors) {
  csal3d_context *ctx = NULL;
  ck_assert_int_eq(csal3d_context_create(NULL, &ctx), CSAL3D_OK);
  csal3d_device dev;
  int threads;
  uint64_t seed = 99;
  ck_assert_int_eq(csal3d_context_device(ctx, &dev), CSAL3D_OK);
  ck_assert(dev == CSAL3D_DEVICE_CPU || dev == CSAL3D_DEVICE_CUDA);
  ck_assert_int_eq(csal3d_context_threads(ctx, &threads), CSAL3D_OK);
  ck_assert_int_eq(threads, c3_threads_available());
  ck_assert_int_eq(csal3d_context_seed(ctx, &seed), CSAL3D_OK);
  ck_assert_uint_eq(seed, 0);
  csal3d_context_free(ctx);
  csal3d_context_free(NULL);

  ctx = make_cpu_context(3, 1234);
  ck_assert_int_eq(csal3d_context_device(ctx, &dev), CSAL3D_OK);
  ck_assert_int_eq(dev, CSAL3D_DEVICE_CPU);
  ck_assert_int_eq(csal3d_context_threads(ctx, &threads), CSAL3D_OK);
  ck_assert_int_eq(threads, 3);
  ck_assert_int_eq(csal3d_context_seed(ctx, &seed), CSAL3D_OK);
  ck_assert_uint_eq(seed, 1234);
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(context_rejects_bad_arguments) {
  csal3d_context_options o;
  csal3d_context *ctx = (csal3d_context *)&o;
  ck_assert_int_eq(csal3d_context_create(NULL, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_context_options_init(NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_context_options_init(&o);
  o.threads = -2;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(ctx);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "threads"));
  csal3d_context_options_init(&o);
  o.device = (csal3d_device)17;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_context_options_init(&o);
  o.struct_size = 0;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "struct_size"));
  int avail = 5;
  ck_assert_int_eq(csal3d_device_available(CSAL3D_DEVICE_AUTO, &avail),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_context_threads(NULL, &avail), CSAL3D_ERR_INVALID_ARGUMENT);
}
END_TEST

/* The options struct as a program compiled against an older, smaller header sees it:
 * only the first members. The library must not read past struct_size. */
typedef struct {
  size_t struct_size;
  csal3d_device device;
  int device_index;
  int threads;
} old_context_options;

START_TEST(older_smaller_options_get_defaults) {
  /* Garbage after the old struct: the library must not read it (the log pointer
   * would crash, the seed would be nonzero). */
  union {
    old_context_options old;
    unsigned char bytes[sizeof(csal3d_context_options) + 64];
  } buf;
  memset(&buf, 0xA5, sizeof buf);
  buf.old.struct_size = sizeof(old_context_options);
  buf.old.device = CSAL3D_DEVICE_CPU;
  buf.old.device_index = 0;
  buf.old.threads = 2;
  csal3d_context *ctx = NULL;
  ck_assert_int_eq(csal3d_context_create((const csal3d_context_options *)&buf, &ctx),
                   CSAL3D_OK);
  ck_assert_int_eq(ctx->options.threads, 2);
  ck_assert_uint_eq(ctx->options.seed, 0);
  ck_assert_int_eq(ctx->options.log_level, CSAL3D_LOG_INFO);
  ck_assert_ptr_null(ctx->options.log);
  ck_assert_ptr_null(ctx->options.progress);
  ck_assert_uint_eq(ctx->options.struct_size, sizeof(csal3d_context_options));
  csal3d_context_free(ctx);
}
END_TEST

START_TEST(newer_larger_options_need_zero_tail) {
  struct {
    csal3d_context_options now;
    uint64_t future_member;
  } newer;
  memset(&newer, 0, sizeof newer);
  csal3d_context_options_init(&newer.now);
  newer.now.struct_size = sizeof newer;
  newer.now.device = CSAL3D_DEVICE_CPU;
  newer.now.seed = 77;
  csal3d_context *ctx = NULL;
  ck_assert_int_eq(csal3d_context_create(&newer.now, &ctx), CSAL3D_OK);
  ck_assert_uint_eq(ctx->options.seed, 77);
  csal3d_context_free(ctx);
  newer.future_member = 1;
  ck_assert_int_eq(csal3d_context_create(&newer.now, &ctx), CSAL3D_ERR_UNSUPPORTED);
  ck_assert_ptr_null(ctx);
}
END_TEST

typedef struct {
  int calls;
  char last[256];
  long stop_at;
  size_t last_len; /* strlen of the last log message */
} sink;

static void log_sink(void *user, csal3d_log_level level, const char *msg) {
  sink *s = user;
  s->calls++;
  s->last_len = strlen(msg);
  snprintf(s->last, sizeof s->last, "%d %s", (int)level, msg);
}

static int progress_sink(void *user, const char *stage, uint64_t done,
                         uint64_t total) {
  sink *s = user;
  s->calls++;
  snprintf(s->last, sizeof s->last, "%s %llu/%llu", stage,
           (unsigned long long)done, (unsigned long long)total);
  return (long)done >= s->stop_at;
}

START_TEST(log_and_progress_callbacks) {
  sink logs = {0}, prog = {0, "", 3, 0};
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = CSAL3D_DEVICE_CPU;
  o.log = log_sink;
  o.log_user_data = &logs;
  o.progress = progress_sink;
  o.progress_user_data = &prog;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_OK);
  ck_assert_int_eq(logs.calls, 1);
  ck_assert_ptr_nonnull(strstr(logs.last, "cpu engine"));
  c3_log(ctx, CSAL3D_LOG_DEBUG, "hidden %d", 1); /* above log_level INFO */
  ck_assert_int_eq(logs.calls, 1);
  c3_log(ctx, CSAL3D_LOG_WARN, "seen %d", 2);
  ck_assert_str_eq(logs.last, "1 seen 2");
  /* Messages naming long paths or ids come whole (they were cut at 1023 bytes). */
  char *path = malloc(3001);
  memset(path, 'p', 3000);
  path[3000] = '\0';
  c3_log(ctx, CSAL3D_LOG_WARN, "%s: no orientation", path);
  ck_assert_uint_eq(logs.last_len, 3000 + strlen(": no orientation"));
  free(path);

  ck_assert_int_eq(c3_progress(ctx, "score", 1, 10), CSAL3D_OK);
  ck_assert_str_eq(prog.last, "score 1/10");
  ck_assert_int_eq(c3_progress(ctx, "score", 3, 10), CSAL3D_ERR_CANCELLED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "score: cancelled"));
  ck_assert_int_eq(c3_progress(NULL, "x", 1, 1), CSAL3D_OK);
  csal3d_context_free(ctx);
}
END_TEST

/* ---- devices ---- */

START_TEST(cuda_request_without_plugin_fails_cleanly) {
  setenv("CSAL3D_CUDA_PLUGIN", "/nonexistent/libcsal3d-cuda.so", 1);
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = CSAL3D_DEVICE_CUDA;
  csal3d_context *ctx = (csal3d_context *)&o;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_ERR_DEVICE_UNAVAILABLE);
  ck_assert_ptr_null(ctx);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "/nonexistent"));
  int avail = 1;
  ck_assert_int_eq(csal3d_device_available(CSAL3D_DEVICE_CUDA, &avail), CSAL3D_OK);
  ck_assert_int_eq(avail, 0);
  ck_assert_int_eq(csal3d_device_available(CSAL3D_DEVICE_CPU, &avail), CSAL3D_OK);
  ck_assert_int_eq(avail, 1);
  /* AUTO falls back to the CPU. */
  o.device = CSAL3D_DEVICE_AUTO;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_OK);
  csal3d_device dev;
  csal3d_context_device(ctx, &dev);
  ck_assert_int_eq(dev, CSAL3D_DEVICE_CPU);
  csal3d_context_free(ctx);
  /* A library that is not our plugin is refused by name. */
  setenv("CSAL3D_CUDA_PLUGIN", "libz.so.1", 1);
  o.device = CSAL3D_DEVICE_CUDA;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_ERR_DEVICE_UNAVAILABLE);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not a libcsal3d CUDA plugin"));
  unsetenv("CSAL3D_CUDA_PLUGIN");
}
END_TEST

/* With the real plugin (when it was built): a GPU gives a CUDA context, no GPU a
 * clear DEVICE_UNAVAILABLE; never a crash. */
START_TEST(cuda_plugin_opens_or_explains) {
  const char *lib = getenv("CSAL3D_TEST_CUDA_PLUGIN");
  if (!lib || access(lib, R_OK) != 0) return; /* not built (CUDA=0) */
  setenv("CSAL3D_CUDA_PLUGIN", lib, 1);
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = CSAL3D_DEVICE_CUDA;
  csal3d_context *ctx = NULL;
  csal3d_status s = csal3d_context_create(&o, &ctx);
  if (s == CSAL3D_OK) {
    csal3d_device dev;
    csal3d_context_device(ctx, &dev);
    ck_assert_int_eq(dev, CSAL3D_DEVICE_CUDA);
    csal3d_context_free(ctx);
  } else {
    ck_assert_int_eq(s, CSAL3D_ERR_DEVICE_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "CUDA engine:"));
  }
  o.device_index = 1000;
  ck_assert_int_eq(csal3d_context_create(&o, &ctx), CSAL3D_ERR_DEVICE_UNAVAILABLE);
  unsetenv("CSAL3D_CUDA_PLUGIN");
}
END_TEST

static Suite *core_suite(void) {
  Suite *s = suite_create("core");
  TCase *t = tcase_create("errors");
  tcase_add_test(t, error_message_is_formatted_and_thread_local);
  tcase_add_test(t, error_long_message_is_cut_with_ellipsis);
  tcase_add_test(t, status_strings_are_distinct);
  tcase_add_test(t, version_matches_headers);
  suite_add_tcase(s, t);
  t = tcase_create("memory");
  tcase_add_test(t, alloc_is_aligned_and_reports_failure);
  tcase_add_test(t, calloc_zeroes);
  suite_add_tcase(s, t);
  t = tcase_create("rng");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, philox_known_answers);
  tcase_add_test(t, rng_streams_are_keyed);
  tcase_add_test(t, rng_uniform_and_normal_moments);
  tcase_add_test(t, rng_below_is_uniform);
  tcase_add_test(t, rng_shuffle_and_sample_are_permutations);
  tcase_add_test(t, rng_fill_is_independent_of_threads);
  tcase_add_test(t, threads_enter_and_leave);
  suite_add_tcase(s, t);
  t = tcase_create("context");
  tcase_add_test(t, context_defaults_and_accessors);
  tcase_add_test(t, context_rejects_bad_arguments);
  tcase_add_test(t, older_smaller_options_get_defaults);
  tcase_add_test(t, newer_larger_options_need_zero_tail);
  tcase_add_test(t, log_and_progress_callbacks);
  tcase_add_test(t, cuda_request_without_plugin_fails_cleanly);
  tcase_add_test(t, cuda_plugin_opens_or_explains);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(core_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
