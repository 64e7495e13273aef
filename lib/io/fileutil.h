/* Small file helpers of the pipeline's writers (scores, manifests, nnU-Net export):
 * atomic text files (temporary file beside the target, fsync, rename), absolute paths,
 * byte copies, gzip, recursive removal, RFC 4180 CSV fields. */
#ifndef C3_IO_FILEUTIL_H
#define C3_IO_FILEUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "csal3d/common.h"

/* A file being written under a temporary name ("DIR/.NAME.tmp.PID.XXXXXX"). */
typedef struct c3_outfile {
  FILE *f;       /* write here (NULL once finished or aborted) */
  char *tmp;     /* the temporary path (NULL once renamed or removed) */
  char *path;    /* the target */
  int failed;    /* a write error seen by c3_outfile_printf */
} c3_outfile;

/* The temporary name of an atomic write of `path` (a file, or a folder when is_dir):
 * "DIR/.NAME.TAG.PID.XXXXXX", PID this process's id, the X's left for mkstemp or
 * mkdtemp; c3_alloc'ed into *out. First removes the siblings of that pattern (same NAME
 * and TAG) whose PID no longer runs (kill(PID, 0) fails with ESRCH): what writers of the
 * same target killed before they could clean up left. Only plain files (folders when
 * is_dir) that this user owns; symbolic links, other names and live PIDs are left alone. */
csal3d_status c3_tmp_beside(const char *path, const char *tag, int is_dir, char **out);

/* Writes `size` bytes to path atomically (temporary file in the same folder, fsync,
 * rename): the file appears whole or not at all. */
csal3d_status c3_write_file_atomic(const char *path, const void *data, size_t size);

/* Opens a temporary file beside `path`. */
csal3d_status c3_outfile_open(c3_outfile *o, const char *path);
/* fprintf into the file; errors are remembered and reported by finish. */
void c3_outfile_printf(c3_outfile *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes bytes (errors remembered as above). */
void c3_outfile_write(c3_outfile *o, const void *data, size_t size);
/* Flushes, fsyncs and closes the temporary file (it is not renamed yet). */
csal3d_status c3_outfile_finish(c3_outfile *o);
/* Renames the finished temporary file over the target. */
csal3d_status c3_outfile_rename(c3_outfile *o);
/* finish + rename. On failure the temporary file is removed. */
csal3d_status c3_outfile_commit(c3_outfile *o);
/* Closes and removes the temporary file, frees everything; safe after commit and
 * on a zeroed struct. */
void c3_outfile_abort(c3_outfile *o);

/* A c3_alloc'ed absolute version of `path` (relative paths are joined to the
 * current working directory; "./" segments dropped). */
csal3d_status c3_path_absolute(const char *path, char **out);

/* Writes all n bytes to fd (retrying short writes and EINTR); a failure names `path`,
 * the file the caller means (the target of an atomic write, not its temporary). */
csal3d_status c3_write_all(int fd, const void *data, size_t n, const char *path);

/* Copies a file byte for byte to dst (dst is created or truncated). */
csal3d_status c3_file_copy(const char *src, const char *dst);
/* Writes src gzip-compressed (level 1..9) to dst. */
csal3d_status c3_file_gzip(const char *src, const char *dst, int level);
/* Removes a file or a folder tree (best effort): 0, or the errno of the first
 * failure. Leaves the thread's error message alone (it runs on failure paths). */
int c3_remove_tree(const char *path);
/* fsyncs a folder (best effort). */
void c3_sync_dir(const char *dir);
/* fsyncs the folder that holds `path` (best effort): makes a rename into it durable. */
void c3_sync_parent(const char *path);

/* Writes s as one CSV field (quoted when it holds a comma, quote, CR or LF). */
void c3_csv_field(c3_outfile *o, const char *s);

/* 1 if s ends with suffix. */
int c3_ends_with(const char *s, const char *suffix);

#endif
