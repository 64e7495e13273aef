/* The csal3d communicator (include/csal3d/comm.h) over NCCL, for `csal3d-mpi --comm nccl
 * --device cuda` (docs/distributed.md); built into csal3d-mpi where nccl.h is found
 * (main.c with CSAL3D_TOOL_NCCL).
 *
 * Bootstrapped over MPI: rank 0's ncclGetUniqueId is broadcast through the MPI
 * communicator (comm_mpi.c), then every rank calls ncclCommInitRankConfig on the GPU its
 * engine uses (one GPU per rank: CUDA_VISIBLE_DEVICES, Slurm's --gpus-per-task=1).
 * device_memory = 1: the gradient allreduce of pretraining runs ncclAllReduce in place on
 * the CUDA engine's device buffer, on a stream of its own, then waits for that stream.
 * The library's other collectives pass host memory (a few floats per step, broadcasts of
 * settings and weights): they go through the MPI communicator, as does the barrier
 * (NCCL has none); a pointer's kind is asked of cudaPointerGetAttributes.
 *
 * The NCCL communicator is non-blocking (config.blocking = 0), so no wait is unbounded:
 * each one polls the communicator's state and the stream with a deadline of
 * CSAL3D_MPI_TIMEOUT seconds (default 600). Past it, or on an NCCL or CUDA error, the
 * communicator is aborted (ncclCommAbort) and the call returns CSAL3D_ERR_IO with the
 * reason (error_message); the library then fails the step naming it. Nothing here ends
 * the process. */
#include "comm_nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm_mpi.h"

static const csal3d_comm *g_mpi; /* host memory, barrier, bootstrap */
static ncclComm_t g_nccl;
static cudaStream_t g_stream;
static char g_error[512];
static csal3d_comm g_csal3d;

static csal3d_status failed(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_error, sizeof g_error, fmt, ap);
  va_end(ap);
  return CSAL3D_ERR_IO;
}

static void abort_nccl(void) {
  if (g_nccl) ncclCommAbort(g_nccl);
  g_nccl = NULL;
}

/* Waits until the communicator has no call in progress and, with `stream`, until the
 * stream's work is done; aborts the communicator on an error or past the deadline. */
static csal3d_status nccl_wait(const char *op, int stream) {
  double deadline = tool_comm_now() + tool_mpi_timeout();
  for (;;) {
    ncclResult_t r = ncclInProgress, q = ncclCommGetAsyncError(g_nccl, &r);
    if (q != ncclSuccess) r = q;
    if (r != ncclSuccess && r != ncclInProgress) {
      failed("nccl%s: %s", op, ncclGetErrorString(r));
      abort_nccl();
      return CSAL3D_ERR_IO;
    }
    if (r == ncclSuccess) {
      cudaError_t c = stream ? cudaStreamQuery(g_stream) : cudaSuccess;
      if (c == cudaSuccess) return CSAL3D_OK;
      if (c != cudaErrorNotReady) {
        failed("nccl%s: the stream failed: %s", op, cudaGetErrorString(c));
        abort_nccl();
        return CSAL3D_ERR_IO;
      }
    }
    if (tool_comm_now() > deadline) {
      failed("nccl%s: no answer from every rank in %.0f s (CSAL3D_MPI_TIMEOUT): a rank died "
             "or hangs", op, tool_mpi_timeout());
      abort_nccl();
      return CSAL3D_ERR_IO;
    }
    nanosleep(&(struct timespec){0, 20000}, NULL);
  }
}

/* A call enqueued on the stream: ncclSuccess or ncclInProgress, then the wait. */
static csal3d_status nccl_done(ncclResult_t r, const char *op) {
  if (r == ncclSuccess || r == ncclInProgress) return nccl_wait(op, 1);
  failed("nccl%s: %s", op, ncclGetErrorString(r));
  abort_nccl();
  return CSAL3D_ERR_IO;
}

static int on_device(const void *p) {
  struct cudaPointerAttributes a;
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

static csal3d_status nccl_allreduce(void *u, float *data, size_t count, csal3d_comm_op op) {
  (void)u;
  g_error[0] = 0;
  if (!on_device(data)) return g_mpi->allreduce(g_mpi->user_data, data, count, op);
  if (!g_nccl) return failed("ncclAllReduce: the communicator was aborted by an earlier failure");
  double t0 = tool_comm_now();
  csal3d_status s = nccl_done(ncclAllReduce(data, data, count, ncclFloat,
                                            op == CSAL3D_COMM_AVERAGE ? ncclAvg : ncclSum,
                                            g_nccl, g_stream), "AllReduce");
  tool_comm_record(TOOL_COMM_ALLREDUCE, count, tool_comm_now() - t0);
  return s;
}

static csal3d_status nccl_broadcast(void *u, void *data, size_t bytes, int root) {
  (void)u;
  g_error[0] = 0;
  if (!on_device(data)) return g_mpi->broadcast(g_mpi->user_data, data, bytes, root);
  if (!g_nccl) return failed("ncclBroadcast: the communicator was aborted by an earlier failure");
  double t0 = tool_comm_now();
  csal3d_status s = nccl_done(ncclBroadcast(data, data, bytes, ncclChar, root, g_nccl, g_stream),
                              "Broadcast");
  tool_comm_record(TOOL_COMM_BROADCAST, bytes, tool_comm_now() - t0);
  return s;
}

static csal3d_status nccl_barrier(void *u) {
  (void)u;
  g_error[0] = 0;
  return g_mpi->barrier(g_mpi->user_data);
}

static const char *nccl_message(void *u) {
  (void)u;
  if (g_error[0]) return g_error;
  return g_mpi->error_message ? g_mpi->error_message(g_mpi->user_data) : NULL;
}

/* Every rank learns whether one failed (`mine` non-empty): 1 and the reason in why (the
 * rank's own, else the first rank that failed), or 0. */
static int any_failed(const char *mine, char *why, size_t n) {
  int size = g_mpi->size, first = -1;
  float *flags = calloc((size_t)size, sizeof *flags);
  if (!flags) {
    snprintf(why, n, "out of memory");
    return 1;
  }
  flags[g_mpi->rank] = mine[0] != 0;
  csal3d_status s = g_mpi->allreduce(g_mpi->user_data, flags, (size_t)size, CSAL3D_COMM_SUM);
  for (int r = 0; s == CSAL3D_OK && r < size && first < 0; r++)
    if (flags[r] != 0) first = r;
  free(flags);
  if (s != CSAL3D_OK) {
    const char *m = g_mpi->error_message ? g_mpi->error_message(g_mpi->user_data) : NULL;
    snprintf(why, n, "the MPI bootstrap failed: %s", m && *m ? m : "(no message)");
    return 1;
  }
  if (first < 0) return 0;
  if (mine[0]) snprintf(why, n, "%s", mine);
  else snprintf(why, n, "rank %d could not start NCCL (its message says why)", first);
  return 1;
}

const csal3d_comm *tool_nccl_init(const csal3d_comm *mpi, int device, char *why, size_t n) {
  g_mpi = mpi;
  char mine[sizeof g_error] = "";
  int count = 0;
  cudaError_t c = cudaGetDeviceCount(&count);
  if (c != cudaSuccess)
    snprintf(mine, sizeof mine, "no usable GPU on this rank (cudaGetDeviceCount: %s)", cudaGetErrorString(c));
  else if (count <= device)
    snprintf(mine, sizeof mine, "no CUDA device %d (%d visible)", device, count);
  else if ((c = cudaSetDevice(device)) != cudaSuccess ||
           (c = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking)) != cudaSuccess)
    snprintf(mine, sizeof mine, "CUDA device %d: %s", device, cudaGetErrorString(c));
  if (any_failed(mine, why, n)) return NULL;

  struct {
    ncclUniqueId id;
    int ok;
  } boot;
  memset(&boot, 0, sizeof boot);
  ncclResult_t r = ncclSuccess;
  if (mpi->rank == 0) boot.ok = (r = ncclGetUniqueId(&boot.id)) == ncclSuccess;
  if (mpi->broadcast(mpi->user_data, &boot, sizeof boot, 0) != CSAL3D_OK) {
    snprintf(mine, sizeof mine, "the MPI bootstrap failed: %s", mpi->error_message
             ? mpi->error_message(mpi->user_data) : "MPI_Bcast");
  } else if (!boot.ok) {
    snprintf(mine, sizeof mine, "ncclGetUniqueId on rank 0: %s",
             mpi->rank == 0 ? ncclGetErrorString(r) : "failed");
  } else {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    r = ncclCommInitRankConfig(&g_nccl, mpi->size, boot.id, mpi->rank, &config);
    if (r != ncclSuccess && r != ncclInProgress)
      snprintf(mine, sizeof mine, "ncclCommInitRank: %s", ncclGetErrorString(r));
    else if (nccl_wait("CommInitRank", 0) != CSAL3D_OK)
      snprintf(mine, sizeof mine, "%s", g_error);
  }
  if (any_failed(mine, why, n)) {
    abort_nccl();
    return NULL;
  }
  g_error[0] = 0;
  csal3d_comm_init(&g_csal3d);
  g_csal3d.size = mpi->size;
  g_csal3d.rank = mpi->rank;
  g_csal3d.allreduce = nccl_allreduce;
  g_csal3d.broadcast = nccl_broadcast;
  g_csal3d.barrier = nccl_barrier;
  g_csal3d.error_message = nccl_message;
  g_csal3d.device_memory = 1;
  return &g_csal3d;
}

void tool_nccl_finalize(int rc) {
  if (g_nccl && (rc == 0 || rc == 130)) {
    ncclResult_t r = ncclCommFinalize(g_nccl);
    if ((r == ncclSuccess || r == ncclInProgress) && nccl_wait("CommFinalize", 0) == CSAL3D_OK) {
      ncclCommDestroy(g_nccl);
      g_nccl = NULL;
    }
  }
  abort_nccl(); /* after a failure, or when finalizing failed */
  if (g_stream) cudaStreamDestroy(g_stream);
  g_stream = NULL;
}
