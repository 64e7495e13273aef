/* The csal3d communicator (include/csal3d/comm.h) over MPI, for the tool csal3d-mpi:
 * main.c built with CSAL3D_TOOL_MPI (the Makefile builds it where mpicc is found; the
 * plain csal3d tool leaves this file out). Collectives are MPI's blocking ones on a
 * duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN (an error is returned to the
 * library, which fails the call naming it), each watched by a watchdog thread: a rank
 * that died or hangs makes the others exit with a clear message after
 * CSAL3D_MPI_TIMEOUT seconds (default 600) instead of waiting forever; mpirun or srun
 * then end the job. With CSAL3D_COMM_STATS=1 every rank prints at the end the time
 * spent inside each collective (make bench: tests/bench_distributed.c). */
#include "comm_mpi.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static MPI_Comm g_comm = MPI_COMM_NULL;
static double g_timeout = 600;
static char g_error[512];
static csal3d_comm g_csal3d;

/* The watchdog: a thread that ends the process when a collective outlives the deadline
 * (blocking collectives run at full speed; a nonblocking one polled with pauses does
 * not progress in OpenMPI). */
static pthread_mutex_t g_dog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_dog_cond = PTHREAD_COND_INITIALIZER;
static const char *g_dog_op; /* the collective running, NULL: none */
static struct timespec g_dog_deadline;
static int g_rank;

static void *watchdog(void *arg) {
  (void)arg;
  pthread_mutex_lock(&g_dog_lock);
  for (;;) {
    if (!g_dog_op) {
      pthread_cond_wait(&g_dog_cond, &g_dog_lock);
      continue;
    }
    if (pthread_cond_timedwait(&g_dog_cond, &g_dog_lock, &g_dog_deadline) == 0) continue;
    if (g_dog_op) {
      struct timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      if (now.tv_sec < g_dog_deadline.tv_sec) continue;
      fprintf(stderr, "csal3d-mpi: rank %d: MPI_%s: no answer from every rank in %.0f s "
              "(CSAL3D_MPI_TIMEOUT): a rank died or hangs; stopping\n", g_rank, g_dog_op,
              g_timeout);
      fflush(stderr);
      _exit(3);
    }
  }
  return NULL;
}

static void dog_arm(const char *op) {
  pthread_mutex_lock(&g_dog_lock);
  clock_gettime(CLOCK_REALTIME, &g_dog_deadline);
  g_dog_deadline.tv_sec += (time_t)g_timeout;
  g_dog_op = op;
  pthread_cond_signal(&g_dog_cond);
  pthread_mutex_unlock(&g_dog_lock);
}

static void dog_disarm(void) {
  pthread_mutex_lock(&g_dog_lock);
  g_dog_op = NULL;
  pthread_cond_signal(&g_dog_cond);
  pthread_mutex_unlock(&g_dog_lock);
}

static csal3d_status mpi_done(int rc, const char *op) {
  dog_disarm();
  if (rc == MPI_SUCCESS) return CSAL3D_OK;
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, text, &len);
  snprintf(g_error, sizeof g_error, "MPI_%s: %s", op, text);
  return CSAL3D_ERR_IO;
}

enum { CHUNK = 1 << 28 }; /* elements per call: counts are int */

/* ---- timings of the collectives (CSAL3D_COMM_STATS=1; make bench reads them) ---- */
static int g_stats;
static long g_calls[3];
static double g_secs[3];
enum { BIG_MAX = 4096 };
static size_t g_big_count;  /* the largest allreduce (the gradients) */
static double g_big_secs[BIG_MAX];
static int g_big_n;

double tool_comm_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void tool_comm_record(tool_comm_op op, size_t count, double seconds) {
  g_calls[op]++;
  g_secs[op] += seconds;
  if (op != TOOL_COMM_ALLREDUCE || count < g_big_count) return;
  if (count > g_big_count) g_big_count = count, g_big_n = 0;
  if (g_big_n < BIG_MAX) g_big_secs[g_big_n++] = seconds;
}

static void print_stats(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  char big[BIG_MAX * 12 + 1] = "", *p = big;
  for (int i = 0; i < g_big_n; i++) p += sprintf(p, "%s%.4f", i ? "," : "", g_big_secs[i]);
  fprintf(stderr, "csal3d-mpi stats: rank %d of %d: allreduce %ld calls %.4f s, broadcast %ld "
          "calls %.4f s, barrier %ld calls %.4f s, peak RSS %ld kB; largest allreduce %zu "
          "floats, seconds: %s\n", g_csal3d.rank, g_csal3d.size, g_calls[0], g_secs[0],
          g_calls[1], g_secs[1], g_calls[2], g_secs[2], ru.ru_maxrss, g_big_count,
          g_big_n ? big : "-");
  fflush(stderr);
}

static csal3d_status allreduce_chunks(float *data, size_t count, csal3d_comm_op op) {
  for (size_t off = 0; off < count; off += CHUNK) {
    size_t n = count - off < CHUNK ? count - off : CHUNK;
    dog_arm("Allreduce");
    csal3d_status s = mpi_done(MPI_Allreduce(MPI_IN_PLACE, data + off, (int)n, MPI_FLOAT,
                                             MPI_SUM, g_comm), "Allreduce");
    if (s != CSAL3D_OK) return s;
  }
  if (op == CSAL3D_COMM_AVERAGE) {
    int size;
    MPI_Comm_size(g_comm, &size);
    for (size_t i = 0; i < count; i++) data[i] /= (float)size;
  }
  return CSAL3D_OK;
}

static csal3d_status mpi_allreduce(void *u, float *data, size_t count, csal3d_comm_op op) {
  (void)u;
  double t0 = tool_comm_now();
  csal3d_status s = allreduce_chunks(data, count, op);
  tool_comm_record(TOOL_COMM_ALLREDUCE, count, tool_comm_now() - t0);
  return s;
}

static csal3d_status mpi_broadcast(void *u, void *data, size_t bytes, int root) {
  (void)u;
  double t0 = tool_comm_now();
  csal3d_status s = CSAL3D_OK;
  for (size_t off = 0; off < bytes && s == CSAL3D_OK; off += CHUNK) {
    size_t n = bytes - off < CHUNK ? bytes - off : CHUNK;
    dog_arm("Bcast");
    s = mpi_done(MPI_Bcast((char *)data + off, (int)n, MPI_BYTE, root, g_comm), "Bcast");
  }
  tool_comm_record(TOOL_COMM_BROADCAST, bytes, tool_comm_now() - t0);
  return s;
}

static csal3d_status mpi_barrier(void *u) {
  (void)u;
  double t0 = tool_comm_now();
  dog_arm("Barrier");
  csal3d_status s = mpi_done(MPI_Barrier(g_comm), "Barrier");
  tool_comm_record(TOOL_COMM_BARRIER, 0, tool_comm_now() - t0);
  return s;
}

static const char *mpi_message(void *u) {
  (void)u;
  return g_error;
}

const csal3d_comm *tool_mpi_init(int *argc, char ***argv) {
  int provided;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) return NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &g_comm);
  MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
  const char *st = getenv("CSAL3D_COMM_STATS");
  g_stats = st && *st && strcmp(st, "0");
  const char *t = getenv("CSAL3D_MPI_TIMEOUT");
  if (t && atof(t) > 0) g_timeout = atof(t);
  int size, rank;
  MPI_Comm_size(g_comm, &size);
  MPI_Comm_rank(g_comm, &rank);
  g_rank = rank;
  pthread_t dog;
  if (pthread_create(&dog, NULL, watchdog, NULL) == 0) pthread_detach(dog);
  csal3d_comm_init(&g_csal3d);
  g_csal3d.size = size;
  g_csal3d.rank = rank;
  g_csal3d.allreduce = mpi_allreduce;
  g_csal3d.broadcast = mpi_broadcast;
  g_csal3d.barrier = mpi_barrier;
  g_csal3d.error_message = mpi_message;
  return &g_csal3d;
}

double tool_mpi_timeout(void) { return g_timeout; }

void tool_mpi_finalize(int rc) {
  if (g_comm == MPI_COMM_NULL) return;
  if (g_stats) print_stats();
  /* a rank that failed may leave the others in a collective: end the job rather than
   * wait in MPI_Finalize */
  if (rc != 0 && rc != 130) MPI_Abort(MPI_COMM_WORLD, rc);
  MPI_Comm_free(&g_comm);
  MPI_Finalize();
}
