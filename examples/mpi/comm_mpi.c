/* The csal3d communicator (include/csal3d/comm.h) over MPI, for the tool csal3d-mpi
 * (examples/csal3d/main.c built with CSAL3D_TOOL_MPI; Makefile: built where mpicc is
 * found). Collectives are MPI's nonblocking ones on a duplicate of MPI_COMM_WORLD with
 * MPI_ERRORS_RETURN, waited for with a deadline: a rank that died or hangs makes the
 * others fail with a clear message after CSAL3D_MPI_TIMEOUT seconds (default 600)
 * instead of waiting forever; the tool then exits with an error, and mpirun or srun end
 * the job. */
#include "comm_mpi.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static MPI_Comm g_comm = MPI_COMM_NULL;
static double g_timeout = 600;
static char g_error[512];
static csal3d_comm g_csal3d;

static csal3d_status mpi_failed(int rc, const char *op) {
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, text, &len);
  snprintf(g_error, sizeof g_error, "MPI_%s: %s", op, text);
  return CSAL3D_ERR_IO;
}

/* Waits for req until done or the deadline. */
static csal3d_status mpi_wait(MPI_Request *req, const char *op) {
  double t0 = MPI_Wtime();
  int done = 0;
  struct timespec nap = {0, 200000}; /* 0.2 ms: a waiting rank leaves the core to others */
  for (;;) {
    int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_failed(rc, op);
    if (done) return CSAL3D_OK;
    if (MPI_Wtime() - t0 > g_timeout) {
      snprintf(g_error, sizeof g_error, "MPI_%s: no answer from every rank in %.0f s "
               "(CSAL3D_MPI_TIMEOUT): a rank died or hangs", op, g_timeout);
      return CSAL3D_ERR_IO;
    }
    nanosleep(&nap, NULL);
  }
}

static csal3d_status mpi_allreduce(void *u, float *data, size_t count, csal3d_comm_op op) {
  (void)u;
  MPI_Request req;
  /* counts beyond INT_MAX go in pieces */
  for (size_t off = 0; off < count || off == 0; off += (size_t)1 << 30) {
    size_t n = count - off < ((size_t)1 << 30) ? count - off : ((size_t)1 << 30);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, data + off, (int)n, MPI_FLOAT, MPI_SUM, g_comm, &req);
    if (rc != MPI_SUCCESS) return mpi_failed(rc, "Iallreduce");
    csal3d_status s = mpi_wait(&req, "Iallreduce");
    if (s != CSAL3D_OK) return s;
    if (count == 0) break;
  }
  if (op == CSAL3D_COMM_AVERAGE) {
    int size;
    MPI_Comm_size(g_comm, &size);
    for (size_t i = 0; i < count; i++) data[i] /= (float)size;
  }
  return CSAL3D_OK;
}

static csal3d_status mpi_broadcast(void *u, void *data, size_t bytes, int root) {
  (void)u;
  for (size_t off = 0; off < bytes || off == 0; off += (size_t)1 << 30) {
    size_t n = bytes - off < ((size_t)1 << 30) ? bytes - off : ((size_t)1 << 30);
    MPI_Request req;
    int rc = MPI_Ibcast((char *)data + off, (int)n, MPI_BYTE, root, g_comm, &req);
    if (rc != MPI_SUCCESS) return mpi_failed(rc, "Ibcast");
    csal3d_status s = mpi_wait(&req, "Ibcast");
    if (s != CSAL3D_OK) return s;
    if (bytes == 0) break;
  }
  return CSAL3D_OK;
}

static csal3d_status mpi_barrier(void *u) {
  (void)u;
  MPI_Request req;
  int rc = MPI_Ibarrier(g_comm, &req);
  if (rc != MPI_SUCCESS) return mpi_failed(rc, "Ibarrier");
  return mpi_wait(&req, "Ibarrier");
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
  const char *t = getenv("CSAL3D_MPI_TIMEOUT");
  if (t && atof(t) > 0) g_timeout = atof(t);
  int size, rank;
  MPI_Comm_size(g_comm, &size);
  MPI_Comm_rank(g_comm, &rank);
  csal3d_comm_init(&g_csal3d);
  g_csal3d.size = size;
  g_csal3d.rank = rank;
  g_csal3d.allreduce = mpi_allreduce;
  g_csal3d.broadcast = mpi_broadcast;
  g_csal3d.barrier = mpi_barrier;
  g_csal3d.error_message = mpi_message;
  return &g_csal3d;
}

void tool_mpi_finalize(int rc) {
  if (g_comm == MPI_COMM_NULL) return;
  /* a rank that failed may leave the others in a collective: end the job rather than
   * wait in MPI_Finalize */
  if (rc != 0 && rc != 130) MPI_Abort(MPI_COMM_WORLD, rc);
  MPI_Comm_free(&g_comm);
  MPI_Finalize();
}
