/* Helpers shared by the `make bench` programs (tests/bench_*.c) and the tests that bound
 * time or memory (hostile.h): clocks, peak memory and settings read from the environment. */
#ifndef CSAL3D_TESTS_BENCH_UTIL_H
#define CSAL3D_TESTS_BENCH_UTIL_H

#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

/* Seconds of wall-clock time (monotonic). */
static inline double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds of CPU time used by the whole process (all threads). */
static inline double cpu_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The integer in environment variable `name`, or `dflt` when it is unset or empty. */
static inline int env_int(const char *name, int dflt) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : dflt;
}

/* The most memory this process has held so far, in MiB. */
static inline double max_rss_mib(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_maxrss / 1024.0;
}

#endif
