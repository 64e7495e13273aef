/* The CPU engine's oneDNN ops (convolution, matmul, layer norm, softmax, GELU,
 * resampling). */
#include "engine/cpu/cpu.h"

csal3d_status c3_cpu_dnnl_open(c3_engine *e) { return CSAL3D_OK; }
void c3_cpu_dnnl_close(c3_engine *e) {}
