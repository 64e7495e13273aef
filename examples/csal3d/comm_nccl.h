/* csal3d-mpi --comm nccl: the communicator over NCCL (comm_nccl.c), built where NCCL is
 * found (CSAL3D_TOOL_NCCL). */
#ifndef CSAL3D_TOOL_COMM_NCCL_H
#define CSAL3D_TOOL_COMM_NCCL_H

#include <stddef.h>

#include "csal3d/comm.h"

/* The NCCL communicator of the ranks of @p mpi (tool_mpi_init's), bootstrapped over it,
 * on CUDA device @p device (the one the context's engine uses). Collective: every rank
 * calls it. Returns NULL when any rank has no usable GPU or NCCL cannot start, with the
 * reason in @p why (the same outcome on every rank). Valid until tool_nccl_finalize. */
const csal3d_comm *tool_nccl_init(const csal3d_comm *mpi, int device, char *why, size_t n);

/* Ends the NCCL communicator (aborted after a failure: rc not 0 nor 130). */
void tool_nccl_finalize(int rc);

#endif
