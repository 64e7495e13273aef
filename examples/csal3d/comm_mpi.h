/* csal3d-mpi: the tool with the communicator over MPI (comm_mpi.c). */
#ifndef CSAL3D_TOOL_COMM_MPI_H
#define CSAL3D_TOOL_COMM_MPI_H

#include "csal3d/comm.h"

/* MPI_Init and the communicator of MPI_COMM_WORLD (valid until tool_mpi_finalize), or
 * NULL when MPI cannot start. */
const csal3d_comm *tool_mpi_init(int *argc, char ***argv);

/* CSAL3D_MPI_TIMEOUT in seconds (default 600): how long a collective may wait. */
double tool_mpi_timeout(void);

/* With CSAL3D_COMM_STATS=1 each rank prints, at tool_mpi_finalize, the time spent inside
 * the communicator's collectives (and each call of the largest allreduce, the gradients
 * of a pretraining step) and its peak RSS: what make bench reads. The communicators
 * record their calls here; tool_comm_now is a monotonic clock in seconds. */
typedef enum tool_comm_op {
  TOOL_COMM_ALLREDUCE,
  TOOL_COMM_BROADCAST,
  TOOL_COMM_BARRIER
} tool_comm_op;
void tool_comm_record(tool_comm_op op, size_t count, double seconds);
double tool_comm_now(void);

/* MPI_Finalize; after a failure (rc not 0 nor 130) MPI_Abort, so that no rank waits. */
void tool_mpi_finalize(int rc);

#endif
