/* The CPU engine's plain C + OpenMP ops. */
#include "engine/cpu/cpu.h"

void c3_cpu_fill_c_ops(c3_engine *e) {}
