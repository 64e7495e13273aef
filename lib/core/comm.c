/* The context's communicator (include/csal3d/comm.h, lib/core/comm.h). */
#include "core/comm.h"

#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/error.h"
#include "core/options.h"

CSAL3D_API csal3d_status csal3d_comm_init(csal3d_comm *comm) {
  C3_CHECK_ARG(comm, "csal3d_comm_init: comm is NULL");
  memset(comm, 0, sizeof *comm);
  comm->struct_size = sizeof *comm;
  comm->size = 1;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_context_set_comm(csal3d_context *ctx, const csal3d_comm *comm) {
  C3_CHECK_ARG(ctx, "csal3d_context_set_comm: context is NULL");
  csal3d_comm c;
  csal3d_comm_init(&c);
  if (comm) C3_TRY(c3_options_read(&c, sizeof c, comm, "csal3d_comm"));
  C3_CHECK_ARG(c.size >= 1 && c.rank >= 0 && c.rank < c.size,
               "csal3d_context_set_comm: rank %d of %d ranks (0 <= rank < size)", c.rank,
               c.size);
  C3_CHECK_ARG(c.size == 1 || (c.allreduce && c.broadcast && c.barrier),
               "csal3d_context_set_comm: a group of %d ranks needs allreduce, broadcast and "
               "barrier", c.size);
  ctx->comm = c;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_context_get_comm(const csal3d_context *ctx, csal3d_comm *comm) {
  C3_CHECK_ARG(ctx && comm, "csal3d_context_get_comm: NULL argument");
  csal3d_comm c = ctx->comm;
  if (c.size < 1) csal3d_comm_init(&c);
  return c3_options_write(comm, &c, sizeof c, "csal3d_context_get_comm (csal3d_comm_init first)");
}

int c3_comm_size(const csal3d_context *ctx) { return ctx->comm.size > 1 ? ctx->comm.size : 1; }
int c3_comm_rank(const csal3d_context *ctx) { return ctx->comm.size > 1 ? ctx->comm.rank : 0; }

static csal3d_status c3_comm_failed(const csal3d_context *ctx, csal3d_status s, const char *op,
                                    const char *what) {
  const csal3d_comm *c = &ctx->comm;
  const char *m = c->error_message ? c->error_message(c->user_data) : NULL;
  return c3_error(CSAL3D_ERR_IO, "%s: the communicator's %s failed on rank %d of %d (status "
                  "%d)%s%s", what, op, c->rank, c->size, (int)s, m && *m ? ": " : "",
                  m ? m : "");
}

csal3d_status c3_comm_allreduce(const csal3d_context *ctx, float *data, size_t count,
                                csal3d_comm_op op, const char *what) {
  if (c3_comm_size(ctx) == 1) return CSAL3D_OK;
  const csal3d_comm *c = &ctx->comm;
  csal3d_status s = c->allreduce(c->user_data, data, count, op);
  return s == CSAL3D_OK ? s : c3_comm_failed(ctx, s, "allreduce", what);
}

csal3d_status c3_comm_broadcast(const csal3d_context *ctx, void *data, size_t bytes, int root,
                                const char *what) {
  if (c3_comm_size(ctx) == 1) return CSAL3D_OK;
  const csal3d_comm *c = &ctx->comm;
  csal3d_status s = c->broadcast(c->user_data, data, bytes, root);
  return s == CSAL3D_OK ? s : c3_comm_failed(ctx, s, "broadcast", what);
}

csal3d_status c3_comm_any_failed(const csal3d_context *ctx, int failed, int *first,
                                 const char *what) {
  *first = failed ? 0 : -1;
  int n = c3_comm_size(ctx);
  if (n == 1) return CSAL3D_OK;
  float *flags;
  C3_TRY(c3_calloc_array((size_t)n, sizeof *flags, "rank flags", (void **)&flags));
  flags[c3_comm_rank(ctx)] = failed ? 1.0f : 0.0f;
  csal3d_status s = c3_comm_allreduce(ctx, flags, (size_t)n, CSAL3D_COMM_SUM, what);
  *first = -1;
  for (int r = 0; s == CSAL3D_OK && r < n && *first < 0; r++)
    if (flags[r] != 0) *first = r;
  c3_free(flags);
  return s;
}

csal3d_status c3_comm_allgather(const csal3d_context *ctx, const void *mine, void *all,
                                size_t bytes, const char *what) {
  int n = c3_comm_size(ctx), me = c3_comm_rank(ctx);
  memcpy((char *)all + (size_t)me * bytes, mine, bytes);
  for (int r = 0; r < n; r++)
    C3_TRY(c3_comm_broadcast(ctx, (char *)all + (size_t)r * bytes, bytes, r, what));
  return CSAL3D_OK;
}
