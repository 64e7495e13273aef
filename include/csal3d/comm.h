/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file comm.h
 * @brief A communicator that the caller implements: data-parallel pretraining and
 * scoring over several processes without the library linking MPI or NCCL.
 *
 * A ::csal3d_comm is a table of collective operations over a group of @ref
 * csal3d_comm.size processes (ranks): allreduce of floats (sum or average), broadcast of
 * bytes, barrier. Every rank makes the same calls in the same order, as with MPI. Set it
 * on a context with csal3d_context_set_comm(); then
 * - csal3d_ssl_model_train() trains data-parallel: each step's global batch of
 *   batch_size crops is shared among the ranks (crop i of the batch goes to rank
 *   i mod size), each rank back-propagates its crops, the gradients are summed with
 *   one allreduce over the whole flat gradient buffer after the backward pass (not
 *   overlapped with it), and every rank applies the same update. Every draw is keyed
 *   by (seed, global step, global crop index), so N ranks reproduce one process with
 *   the same batch_size up to the order of the sums, and a run may be resumed with
 *   another number of ranks. Only rank 0 writes checkpoints (atomically); a rank that
 *   fails or is cancelled stops every rank at the same step.
 * - csal3d_score_dataset() splits the cases among the ranks (the shards of
 *   csal3d_score_options.shard_count, rank r taking shard r) and rank 0 writes the one
 *   scores file, bitwise equal to a single process's.
 *
 * The library ships no implementation: the tool `csal3d-mpi` (built where MPI is found)
 * implements it with MPI, the Python binding wraps an mpi4py communicator, and tests use
 * threads of one process. An implementation over NCCL plugs in the same way: set
 * @ref csal3d_comm.device_memory and the allreduce receives the engine's device
 * buffers (the CUDA engine's gradients) instead of host copies.
 *
 * A collective that cannot complete (a peer died, a timeout) returns an error status;
 * the library then fails the call with ::CSAL3D_ERR_IO and the message of
 * @ref csal3d_comm.error_message. Implementations should time out rather than wait
 * forever: a rank that stops calling must not hang the others.
 */
#ifndef CSAL3D_COMM_H
#define CSAL3D_COMM_H

#include "csal3d/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The reduction of csal3d_comm.allreduce. */
typedef enum csal3d_comm_op {
  /** Element-wise sum over the ranks. */
  CSAL3D_COMM_SUM = 0,
  /** Element-wise sum divided by the number of ranks. */
  CSAL3D_COMM_AVERAGE = 1
} csal3d_comm_op;

/**
 * A communicator: the group's size, this process's rank and its collectives. Fill with
 * csal3d_comm_init() and set the members; the library copies the struct (the
 * functions and `user_data` must stay valid while it is set on a context). Every
 * function returns ::CSAL3D_OK, or another status when the collective failed.
 */
typedef struct csal3d_comm {
  /** sizeof(csal3d_comm) as the caller compiled it. */
  size_t struct_size;
  /** The number of ranks, >= 1. */
  int size;
  /** This process's rank, 0 <= rank < size. */
  int rank;
  /** Passed back to every function. */
  void *user_data;
  /**
   * In place over every rank: @p data (@p count floats, the same count on every rank)
   * becomes the sum (or average) of every rank's @p data. Required.
   */
  csal3d_status (*allreduce)(void *user_data, float *data, size_t count, csal3d_comm_op op);
  /** @p bytes bytes at @p data of rank @p root copied to every rank's @p data. Required. */
  csal3d_status (*broadcast)(void *user_data, void *data, size_t bytes, int root);
  /** Returns when every rank has called it. Required. */
  csal3d_status (*barrier)(void *user_data);
  /** A description of the last failure (a peer that died, a timeout), or NULL. Optional. */
  const char *(*error_message)(void *user_data);
  /**
   * 0 (default): the library passes host memory to @ref allreduce. 1: the communicator
   * takes the engine's own buffers (device memory of the CUDA engine), as an NCCL
   * implementation does; the CPU engine's buffers are host memory either way. Only the
   * gradient allreduce of pretraining passes device memory, after the engine's queued
   * work has finished; the small collectives (a few floats a step) and every broadcast
   * still pass host memory, so such a communicator must tell them apart (e.g. with
   * cudaPointerGetAttributes).
   */
  int device_memory;
} csal3d_comm;

/** Fills @p comm with a one-rank group (size 1, rank 0, no functions) and struct_size. */
CSAL3D_API csal3d_status csal3d_comm_init(csal3d_comm *comm);

/**
 * Sets the communicator of @p ctx (copied; NULL or a one-rank group: none). The
 * pretraining and scoring calls made with models of this context then run over the
 * group. Every rank must use the same settings otherwise.
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT for a size below 1, a rank outside 0..size-1 or
 *         a group of several ranks lacking a required function.
 */
CSAL3D_API csal3d_status csal3d_context_set_comm(csal3d_context *ctx, const csal3d_comm *comm);

/**
 * The communicator of @p ctx: @p comm receives a copy (set its struct_size first, e.g.
 * with csal3d_comm_init()); a one-rank group when none is set.
 */
CSAL3D_API csal3d_status csal3d_context_get_comm(const csal3d_context *ctx, csal3d_comm *comm);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_COMM_H */
