/* Threads: OpenMP thread counts per calling thread. */
#include "core/threads.h"

#include <omp.h>

int c3_threads_available(void) {
  int n = omp_get_num_procs();
  return n >= 1 ? n : 1;
}

int c3_threads_enter(int n) {
  int previous = omp_get_max_threads();
  omp_set_num_threads(n >= 1 ? n : 1);
  return previous;
}

void c3_threads_leave(int previous) { omp_set_num_threads(previous); }
