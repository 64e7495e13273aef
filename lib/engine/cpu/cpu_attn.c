/* The CPU engine's window attention. */
#include "engine/cpu/cpu.h"

void c3_cpu_fill_attn_ops(c3_engine *e) {}
