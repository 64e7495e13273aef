/* For test programs that run many small parallel regions (tiny models): OpenMP's
 * default spin-waiting makes them crawl when the machine is oversubscribed (several
 * test suites or builds at once on 2 cores), because a spinning thread holds a core
 * that the thread it waits for needs. libgomp reads OMP_WAIT_POLICY when it loads, so
 * the program re-executes itself once with OMP_WAIT_POLICY=passive unless the caller
 * chose a policy. Results do not depend on the policy. */
#ifndef CSAL3D_TEST_OMP_ENV_H
#define CSAL3D_TEST_OMP_ENV_H

#include <stdlib.h>
#include <unistd.h>

static void c3_test_passive_openmp(char **argv) {
  if (getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);
  /* exec failed: go on with the default policy */
}

#endif
