/* Benchmark of data-parallel pretraining (make bench; docs/distributed.md): the same
 * global batch of 2 crops trained by `csal3d pretrain` in 1 process x 2 threads and by
 * `mpirun -np 2 csal3d-mpi pretrain` x 1 thread (one crop per rank), crops 64^3,
 * embed_dim 48, on a phantom dataset. Prints seconds per step and steps per second of
 * both, the time per step inside the communicator's allreduce of the gradients and its
 * share of the step, and the peak memory of each process.
 *
 * A step's time is the interval between the tool's "step k/N" lines (--verbose), the
 * first step left out (warm-up). The allreduce is timed inside the tool's MPI
 * communicator (examples/csal3d/comm_mpi.c, CSAL3D_COMM_STATS=1: every call of the
 * largest allreduce, i.e. the gradients, one per step), not by the library; the share is
 * that time over the step's. Peak memory: the process's maximum RSS (wait4 for the one
 * process, getrusage in each rank).
 *
 * SKIPs (exit 0) without mpirun or without bin/csal3d-mpi (MPI=0). Environment:
 * CSAL3D_BENCH_DIST_STEPS (steps per run, default 3: 2 timed), CSAL3D_BENCH_DIST_EMBED
 * (default 48), CSAL3D_BENCH_DIST_CROP (default 64), CSAL3D_BENCH_BIN (the tools' folder,
 * default bin). The machine may be shared: say its load (uptime) with the figures. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench_util.h"

enum { MAX_STEPS = 1000, MAX_RANKS = 2 };

typedef struct run_result {
  double step_at[MAX_STEPS + 1]; /* when "step k/N" was first seen; 0: not seen */
  int ranks_seen;
  double grad_secs[MAX_RANKS][MAX_STEPS]; /* each call of the largest allreduce */
  int grad_calls[MAX_RANKS];
  size_t grad_floats;
  long rss_kb[MAX_RANKS]; /* peak RSS of each rank (or of the one process) */
  char tail[8][512];      /* the last lines, shown on failure */
  int lines;
} run_result;

static void parse_stats(run_result *r, const char *line) {
  int rank, size;
  long calls[3], rss;
  double secs[3];
  size_t floats;
  if (sscanf(line, "csal3d-mpi stats: rank %d of %d: allreduce %ld calls %lf s, broadcast %ld "
             "calls %lf s, barrier %ld calls %lf s, peak RSS %ld kB; largest allreduce %zu",
             &rank, &size, &calls[0], &secs[0], &calls[1], &secs[1], &calls[2], &secs[2], &rss,
             &floats) != 10 || rank < 0 || rank >= MAX_RANKS)
    return;
  r->ranks_seen++;
  r->rss_kb[rank] = rss;
  r->grad_floats = floats;
  const char *p = strstr(line, "seconds: ");
  for (p = p ? p + 9 : NULL; p && *p && *p != '-' && r->grad_calls[rank] < MAX_STEPS;) {
    char *end;
    double v = strtod(p, &end);
    if (end == p) break;
    r->grad_secs[rank][r->grad_calls[rank]++] = v;
    p = *end == ',' ? end + 1 : NULL;
  }
}

/* Runs argv with its stderr read line by line (stdout discarded); 0 on exit status 0. */
static int run(char *const argv[], run_result *r) {
  memset(r, 0, sizeof *r);
  int fd[2];
  if (pipe(fd)) return perror("pipe"), 1;
  pid_t pid = fork();
  if (pid < 0) return perror("fork"), 1;
  if (pid == 0) {
    dup2(fd[1], STDERR_FILENO);
    close(fd[0]);
    close(fd[1]);
    if (!freopen("/dev/null", "w", stdout)) _exit(127);
    execvp(argv[0], argv);
    fprintf(stderr, "bench_distributed: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fd[1]);
  FILE *f = fdopen(fd[0], "r");
  char line[65536];
  while (f && fgets(line, sizeof line, f)) {
    double t = now();
    int k, n;
    if (sscanf(line, "step %d/%d:", &k, &n) == 2 && k >= 1 && k <= MAX_STEPS && !r->step_at[k])
      r->step_at[k] = t;
    else if (!strncmp(line, "csal3d-mpi stats:", 17))
      parse_stats(r, line);
    snprintf(r->tail[r->lines++ % 8], sizeof r->tail[0], "%.*s", (int)sizeof r->tail[0] - 1,
             line);
  }
  if (f) fclose(f);
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) return perror("wait4"), 1;
  if (!r->ranks_seen) r->rss_kb[0] = ru.ru_maxrss;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  fprintf(stderr, "bench_distributed: %s failed (status %d); its last lines:\n", argv[0], status);
  for (int i = r->lines > 8 ? r->lines - 8 : 0; i < r->lines; i++)
    fprintf(stderr, "  %s", r->tail[i % 8]);
  return 1;
}

/* The mean step time over steps 2..n (s), or -1 when a step line is missing. */
static double step_time(const run_result *r, int n) {
  for (int k = 1; k <= n; k++)
    if (!r->step_at[k]) return -1;
  return (r->step_at[n] - r->step_at[1]) / (n - 1);
}

/* The mean gradient allreduce of rank `rank` over the timed steps (s), or 0. */
static double grad_time(const run_result *r, int rank, int n) {
  double sum = 0;
  int m = 0;
  for (int i = 1; i < n && i < r->grad_calls[rank]; i++) sum += r->grad_secs[rank][i], m++;
  return m ? sum / m : 0;
}

int main(void) {
  const int steps = env_int("CSAL3D_BENCH_DIST_STEPS", 3);
  const int embed = env_int("CSAL3D_BENCH_DIST_EMBED", 48);
  const int crop = env_int("CSAL3D_BENCH_DIST_CROP", 64);
  const char *bin = getenv("CSAL3D_BENCH_BIN") && *getenv("CSAL3D_BENCH_BIN")
                        ? getenv("CSAL3D_BENCH_BIN") : "bin";
  if (steps < 2 || steps > MAX_STEPS) {
    fprintf(stderr, "bench_distributed: CSAL3D_BENCH_DIST_STEPS must be 2..%d\n", MAX_STEPS);
    return 1;
  }
  char tool[4096], mpitool[4096], phantom[4096];
  snprintf(tool, sizeof tool, "%s/csal3d", bin);
  snprintf(mpitool, sizeof mpitool, "%s/csal3d-mpi", bin);
  snprintf(phantom, sizeof phantom, "%s/csal3d-phantom", bin);
  if (system("command -v mpirun >/dev/null 2>&1") != 0) {
    printf("SKIP: bench_distributed: no mpirun\n");
    return 0;
  }
  if (access(mpitool, X_OK) || access(tool, X_OK) || access(phantom, X_OK)) {
    printf("SKIP: bench_distributed: %s, %s or %s not built (no mpicc, or MPI=0)\n", tool,
           mpitool, phantom);
    return 0;
  }
  char dir[] = "/tmp/csal3d_bench_dist_XXXXXX";
  if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
  char data[4200], out1[4200], out2[4200], es[16], cs[16], is[16];
  snprintf(data, sizeof data, "%s/data", dir);
  snprintf(out1, sizeof out1, "%s/one.safetensors", dir);
  snprintf(out2, sizeof out2, "%s/two.safetensors", dir);
  snprintf(es, sizeof es, "%d", embed);
  snprintf(cs, sizeof cs, "%d", crop);
  snprintf(is, sizeof is, "%d", steps);
  printf("data-parallel pretraining: embed_dim %d, crops %d^3, global batch 2, %d steps per run "
         "(the first not timed)\n", embed, crop, steps);
  fflush(stdout);

  static run_result r1, r2;
  char *ph[] = {phantom, data, "--cases", "4", "--size", "80", "--slices", "72", "--quiet", NULL};
  int rc = run(ph, &r1);
#define PRETRAIN(out, threads)                                                            \
  "pretrain", data, "-o", out, "--embed-dim", es, "--crop", cs, "--batch", "2",           \
      "--iterations", is, "--seed", "1", "--modality", "ct", "--threads", threads,       \
      "--verbose", NULL
  char *one[] = {tool, PRETRAIN(out1, "2")};
  char *two[] = {"mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", "-x",
                 "CSAL3D_COMM_STATS=1", mpitool, PRETRAIN(out2, "1")};
  if (!rc) rc = run(one, &r1);
  if (!rc) rc = run(two, &r2);
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "bench_distributed: could not remove %s\n", dir);
  if (rc) return 1;

  double t1 = step_time(&r1, steps), t2 = step_time(&r2, steps);
  if (t1 <= 0 || t2 <= 0 || r2.ranks_seen != 2) {
    fprintf(stderr, "bench_distributed: the tools' output lacks step lines or rank stats\n");
    return 1;
  }
  double g0 = grad_time(&r2, 0, steps), g1 = grad_time(&r2, 1, steps);
  printf("%-26s %9s %8s %22s %14s %22s\n", "run", "s/step", "steps/s", "allreduce ms (rank 0/1)",
         "% of step", "peak RSS MB (per process)");
  printf("%-26s %9.2f %8.4f %22s %14s %22.0f\n", "1 process x 2 threads", t1, 1 / t1, "-", "-",
         r1.rss_kb[0] / 1024.0);
  char ar[64], pct[64], mem[64];
  snprintf(ar, sizeof ar, "%.1f / %.1f", 1e3 * g0, 1e3 * g1);
  snprintf(pct, sizeof pct, "%.2f / %.2f", 100 * g0 / t2, 100 * g1 / t2);
  snprintf(mem, sizeof mem, "%.0f + %.0f", r2.rss_kb[0] / 1024.0, r2.rss_kb[1] / 1024.0);
  printf("%-26s %9.2f %8.4f %22s %14s %22s\n", "mpirun -np 2 x 1 thread", t2, 1 / t2, ar, pct,
         mem);
  printf("2 ranks against 1 process: %.2fx the steps per second; the allreduce sums %zu floats "
         "(%.1f MB) per step\n", t1 / t2, r2.grad_floats, r2.grad_floats * 4 / 1e6);
  return 0;
}
