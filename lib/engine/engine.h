/* The engine: the one interface between the model and the hardware.
 *
 * One engine per device kind (CPU, CUDA). A context opens its engine once. The op
 * table (memory functions, convolutions, matmuls, norms, attention, losses, AdamW)
 * is added to this struct by the engine/model work; this file is its only home. */
#ifndef C3_ENGINE_ENGINE_H
#define C3_ENGINE_ENGINE_H

#include "csal3d/context.h"

typedef struct c3_engine {
  const char *name;      /* "cpu" or "cuda" */
  csal3d_device device;  /* CSAL3D_DEVICE_CPU or CSAL3D_DEVICE_CUDA */
  void *plugin;          /* dlopen handle of the CUDA plugin, else NULL */
  void *state;           /* the engine's own data */
  void (*close)(struct c3_engine *engine); /* releases state; may be NULL */
} c3_engine;

/* Opens the engine for `device` (CPU or CUDA; AUTO tries CUDA, then CPU).
 * CUDA failures give CSAL3D_ERR_DEVICE_UNAVAILABLE with the reason. */
csal3d_status c3_engine_open(csal3d_device device, int device_index,
                             c3_engine **out);

/* Releases an engine (and unloads its plugin); accepts NULL. */
void c3_engine_close(c3_engine *engine);

#endif
