/* The caller's communicator (include/csal3d/comm.h) as the library uses it: the group of
 * a context, and its collectives with errors turned into the library's messages. */
#ifndef C3_CORE_COMM_H
#define C3_CORE_COMM_H

#include <stddef.h>

#include "csal3d/comm.h"

/* The number of ranks of the context's group (1 without a communicator) and its rank. */
int c3_comm_size(const csal3d_context *ctx);
int c3_comm_rank(const csal3d_context *ctx);

/* The collectives; a failure is CSAL3D_ERR_IO naming `what`, the rank and the
 * communicator's message. Host memory unless the communicator takes device memory. */
csal3d_status c3_comm_allreduce(const csal3d_context *ctx, float *data, size_t count,
                                csal3d_comm_op op, const char *what);
csal3d_status c3_comm_broadcast(const csal3d_context *ctx, void *data, size_t bytes, int root,
                                const char *what);

/* Whether any rank failed: every rank gives `failed` (0 or 1) and receives the lowest
 * rank that failed in *first (-1: none). A collective itself failing is returned. */
csal3d_status c3_comm_any_failed(const csal3d_context *ctx, int failed, int *first,
                                 const char *what);

/* Every rank's `bytes` bytes at `mine` gathered into all (size x bytes, rank order). */
csal3d_status c3_comm_allgather(const csal3d_context *ctx, const void *mine, void *all,
                                size_t bytes, const char *what);

#endif
