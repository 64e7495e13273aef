/* The outputs of one call appear together or not at all: each is built under a
 * temporary name beside its target, then all are moved into place in order; when a move
 * fails, the ones already moved are taken back and the previous files or folders they
 * replaced are put back. */
#ifndef C3_PIPELINE_COMMIT_H
#define C3_PIPELINE_COMMIT_H

#include "csal3d/common.h"

#define C3_COMMIT_MAX 4

typedef struct c3_staged {
  char *target; /* the final path (c3_alloc'ed) */
  char *tmp;    /* the finished temporary file or folder (c3_alloc'ed) */
  char *backup; /* the previous target, moved aside while committing */
  int is_dir;
  int placed;   /* tmp has been renamed to target */
} c3_staged;

typedef struct c3_commit {
  c3_staged item[C3_COMMIT_MAX];
  int n;
} c3_commit;

/* Adds a finished temporary (a file, or a folder when is_dir) that is to become
 * `target`. Takes `tmp` (c3_alloc'ed) in every case: on failure it is removed and freed. */
csal3d_status c3_commit_add(c3_commit *c, const char *target, char *tmp, int is_dir);

/* Moves every temporary into place in the order added. An existing target is kept until
 * every output is in place (a file through a second, hidden link, so that its name never
 * disappears and the rename replaces it atomically; a folder moved aside); on a failure
 * the outputs already placed are taken back, the previous targets put back, and every
 * temporary removed, so the targets are as before the call (the message names the
 * target). A target whose kind changed since it was checked (a folder where a file goes)
 * is a failure, never moved. */
csal3d_status c3_commit_run(c3_commit *c);

/* Removes the temporaries that were not committed and frees everything; safe after
 * c3_commit_run and on a zeroed struct. */
void c3_commit_discard(c3_commit *c);

/* Test hook: when > 0, the move of the item with this 1-based position fails (EIO) as
 * a rename can (a full disk, a target that became a folder). 0: off. */
extern int c3_commit_fail_at;

#endif
