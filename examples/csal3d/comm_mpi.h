/* csal3d-mpi: the tool with the communicator over MPI (comm_mpi.c). */
#ifndef CSAL3D_TOOL_COMM_MPI_H
#define CSAL3D_TOOL_COMM_MPI_H

#include "csal3d/comm.h"

/* MPI_Init and the communicator of MPI_COMM_WORLD (valid until tool_mpi_finalize), or
 * NULL when MPI cannot start. */
const csal3d_comm *tool_mpi_init(int *argc, char ***argv);

/* MPI_Finalize; after a failure (rc not 0 nor 130) MPI_Abort, so that no rank waits. */
void tool_mpi_finalize(int rc);

#endif
