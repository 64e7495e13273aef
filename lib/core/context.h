/* The context's internals, shared by every stage of the library. */
#ifndef C3_CORE_CONTEXT_H
#define C3_CORE_CONTEXT_H

#include "csal3d/comm.h"
#include "csal3d/context.h"

struct c3_engine;

struct csal3d_context {
  csal3d_context_options options; /* as resolved: device never AUTO, threads >= 1 */
  struct c3_engine *engine;
  csal3d_comm comm; /* size 0 or 1: one process (core/comm.h) */
};

#endif
