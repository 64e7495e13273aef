/* Benchmark of the sampling strategies and of k-means against scikit-learn.
 *
 *   build/tests/bench_sampling [--all] [--quick] [--threads T]
 *
 * Data: a mixture of 20 Gaussians in d = 256 (features of a heterogeneous dataset),
 * N = 1,000 / 10,000 / 100,000, budgets M = 20 and 100. Each run is a forked child so
 * that its peak resident memory is its own. At N = 100,000 the strategies whose
 * original algorithms are O(N^2) in time (ProbCover, USL, TypiClust's in-cluster kNN
 * for small M) run only with --all. --quick: N = 1,000 and 10,000 only.
 * Then k-means (k-means++, 10 restarts, 300 iterations, tol 1e-4) against
 * scikit-learn's KMeans with the same settings on the same data, when python3 has
 * sklearn (Debian python3-sklearn). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "core/threads.h"
#include "csal3d/csal3d.h"
#include "sampling/sampling.h"
#include "bench_util.h"

static float *mixture(int64_t n, int64_t d, uint64_t seed) {
  float *X = malloc(sizeof(float) * (size_t)(n * d));
  double *centres = malloc(sizeof(double) * (size_t)(20 * d));
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_TEST, 99, 0, 0);
  for (int64_t i = 0; i < 20 * d; i++) centres[i] = c3_rng_normal(&r);
  for (int64_t i = 0; i < n; i++) {
    int c = (int)c3_rng_below(&r, 20);
    double spread = 0.4 + 0.05 * c;
    for (int64_t j = 0; j < d; j++)
      X[i * d + j] = (float)(centres[c * d + j] + spread * c3_rng_normal(&r));
  }
  free(centres);
  return X;
}

/* Runs one selection in a child; prints time and peak memory. */
static void run(int strategy, const float *X, const float *S, int64_t n, int64_t d,
                int64_t m, int threads) {
  fflush(stdout);
  int fd[2];
  if (pipe(fd)) return;
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    csal3d_context_options co;
    csal3d_context_options_init(&co);
    co.device = CSAL3D_DEVICE_CPU;
    co.threads = threads;
    csal3d_context *ctx;
    csal3d_context_create(&co, &ctx);
    csal3d_sampler_options o;
    csal3d_sampler_options_init(&o);
    o.strategy = (csal3d_strategy)strategy;
    csal3d_sampler *s;
    csal3d_sampler_create(ctx, &o, &s);
    csal3d_sampler_set_features(s, X, n, d);
    csal3d_sampler_set_scores(s, S, n);
    double t0 = now();
    csal3d_status st = csal3d_sampler_select(s, m);
    double t = now() - t0;
    csal3d_sampler_info info;
    info.struct_size = sizeof info;
    char extra[128] = "";
    if (st == CSAL3D_OK && csal3d_sampler_get_info(s, &info) == CSAL3D_OK &&
        (strategy == CSAL3D_STRATEGY_URDS || strategy == CSAL3D_STRATEGY_DIV_ONLY))
      snprintf(extra, sizeof extra, "%s, %d MKKM iterations",
               info.nystrom ? "Nystrom" : "exact", info.mkkm_iterations);
    char line[512];
    if (st == CSAL3D_OK)
      snprintf(line, sizeof line, "%10.3f  %s", t, extra);
    else
      snprintf(line, sizeof line, "failed: %s", csal3d_last_error());
    if (write(fd[1], line, strlen(line) + 1) < 0) _exit(1);
    _exit(0);
  }
  close(fd[1]);
  char line[512] = "";
  ssize_t got = read(fd[0], line, sizeof line - 1);
  if (got < 0) got = 0;
  line[got] = 0;
  close(fd[0]);
  int status;
  struct rusage ru;
  wait4(pid, &status, 0, &ru);
  printf("%-10s %8lld %4lld  %s  peak %6.0f MB\n", csal3d_strategy_name(strategy),
         (long long)n, (long long)m, line, ru.ru_maxrss / 1024.0);
}

static void kmeans_vs_sklearn(const float *X, int64_t n, int64_t d, int64_t k, int threads) {
  c3_kmeans_params p = {k, 10, 300, 1e-4, 0, 1, 0};
  int64_t *labels = malloc(sizeof(int64_t) * (size_t)n);
  c3_kmeans_result r;
  int prev = c3_threads_enter(threads), pb = c3_blas_threads_enter(1);
  double t0 = now();
  c3_kmeans(NULL, X, n, d, &p, labels, NULL, &r);
  double t = now() - t0;
  c3_threads_leave(prev), c3_blas_threads_leave(pb);
  /* Lloyd flops of the best restart only: a lower bound on the rate */
  printf("k-means    %8lld %4lld  csal3d  %8.3f s  inertia %.6e  (%d iterations in the "
         "best restart)\n", (long long)n, (long long)k, t, r.inertia, r.iterations);
  free(labels);
  char path[] = "/tmp/csal3d_bench_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return;
  size_t bytes = sizeof(float) * (size_t)(n * d);
  if (write(fd, X, bytes) != (ssize_t)bytes) {
    close(fd);
    unlink(path);
    return;
  }
  close(fd);
  char cmd[1024];
  snprintf(cmd, sizeof cmd,
           "OMP_NUM_THREADS=%d /usr/bin/python3 -c \"\nimport time, numpy as np\n"
           "try:\n from sklearn.cluster import KMeans\nexcept ImportError:\n"
           " print('sklearn not installed (apt-get install python3-sklearn)'); raise SystemExit\n"
           "x = np.fromfile('%s', dtype=np.float32).reshape(%lld, %lld)\n"
           "km = KMeans(n_clusters=%lld, init='k-means++', n_init=10, max_iter=300, tol=1e-4,"
           " random_state=0, algorithm='lloyd')\n"
           "t = time.time(); km.fit(x); t = time.time() - t\n"
           "print('sklearn %%8.3f s  inertia %%.6e' %% (t, km.inertia_))\n\" 2>/dev/null",
           threads, path, (long long)n, (long long)d, (long long)k);
  FILE *f = popen(cmd, "r");
  char buf[256];
  if (f) {
    while (fgets(buf, sizeof buf, f))
      printf("k-means    %8lld %4lld  %s", (long long)n, (long long)k, buf);
    pclose(f);
  }
  unlink(path);
}

int main(int argc, char **argv) {
  int all = 0, quick = 0, threads = c3_threads_available();
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--all")) all = 1;
    else if (!strcmp(argv[i], "--quick")) quick = 1;
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
  }
  const int64_t d = 256;
  const int64_t sizes[] = {1000, 10000, 100000};
  printf("sampling benchmark: d = %lld, %d threads, mixture of 20 Gaussians\n",
         (long long)d, threads);
  printf("%-10s %8s %4s  %10s  %s\n", "strategy", "N", "M", "time (s)", "notes");
  for (int si = 0; si < (quick ? 2 : 3); si++) {
    int64_t n = sizes[si];
    float *X = mixture(n, d, 7);
    float *S = malloc(sizeof(float) * (size_t)n);
    c3_rng r;
    c3_rng_init(&r, 8, C3_RNG_TEST, 1, 0, 0);
    for (int64_t i = 0; i < n; i++) S[i] = (float)c3_rng_uniform(&r);
    const int64_t budgets[] = {20, 100};
    for (int bi = 0; bi < 2; bi++)
      for (int q = 0; q < 10; q++) {
        int quadratic = q == CSAL3D_STRATEGY_PROBCOVER || q == CSAL3D_STRATEGY_USL ||
                        q == CSAL3D_STRATEGY_TYPICLUST;
        if (n >= 100000 && quadratic && !all) {
          printf("%-10s %8lld %4lld  skipped: O(N^2) in time; run with --all\n",
                 csal3d_strategy_name(q), (long long)n, (long long)budgets[bi]);
          continue;
        }
        run(q, X, S, n, d, budgets[bi], threads);
      }
    free(X), free(S);
  }
  printf("\nk-means (k-means++, 10 restarts, max 300 iterations, tol 1e-4), same data:\n");
  {
    int64_t n = 10000;
    float *X = mixture(n, d, 7);
    kmeans_vs_sklearn(X, n, d, 20, threads);
    kmeans_vs_sklearn(X, n, d, 100, threads);
    free(X);
  }
  return 0;
}
