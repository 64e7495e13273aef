/* An in-process communicator for tests: the ranks are threads of one process that meet at
 * a barrier (include/csal3d/comm.h). Sums run in rank order, so results are repeatable. */
#ifndef CSAL3D_TEST_COMM_THREADS_H
#define CSAL3D_TEST_COMM_THREADS_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "csal3d/comm.h"

#define TCOMM_MAX 8

typedef struct tcomm_group {
  int size;
  pthread_barrier_t bar;
  void *ptr[TCOMM_MAX];
} tcomm_group;

typedef struct tcomm {
  tcomm_group *g;
  int rank;
} tcomm;

static csal3d_status tcomm_allreduce(void *u, float *data, size_t count, csal3d_comm_op op) {
  tcomm *c = u;
  tcomm_group *g = c->g;
  g->ptr[c->rank] = data;
  pthread_barrier_wait(&g->bar);
  float *tmp = malloc((count ? count : 1) * sizeof *tmp);
  for (size_t i = 0; i < count; i++) {
    float s = 0;
    for (int r = 0; r < g->size; r++) s += ((float *)g->ptr[r])[i];
    tmp[i] = op == CSAL3D_COMM_AVERAGE ? s / (float)g->size : s;
  }
  pthread_barrier_wait(&g->bar);
  memcpy(data, tmp, count * sizeof *tmp);
  free(tmp);
  return CSAL3D_OK;
}

static csal3d_status tcomm_broadcast(void *u, void *data, size_t bytes, int root) {
  tcomm *c = u;
  tcomm_group *g = c->g;
  g->ptr[c->rank] = data;
  pthread_barrier_wait(&g->bar);
  if (c->rank != root) memcpy(data, g->ptr[root], bytes);
  pthread_barrier_wait(&g->bar);
  return CSAL3D_OK;
}

static csal3d_status tcomm_barrier(void *u) {
  pthread_barrier_wait(&((tcomm *)u)->g->bar);
  return CSAL3D_OK;
}

static void tcomm_group_init(tcomm_group *g, int size) {
  memset(g, 0, sizeof *g);
  g->size = size;
  pthread_barrier_init(&g->bar, NULL, (unsigned)size);
}

/* The csal3d_comm of rank `rank` of g (c must outlive its use). */
static void tcomm_make(tcomm_group *g, int rank, tcomm *c, csal3d_comm *out) {
  c->g = g;
  c->rank = rank;
  csal3d_comm_init(out);
  out->size = g->size;
  out->rank = rank;
  out->user_data = c;
  out->allreduce = tcomm_allreduce;
  out->broadcast = tcomm_broadcast;
  out->barrier = tcomm_barrier;
}

#endif
