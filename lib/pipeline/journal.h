/* The journal of a dataset scoring run (`SCORES.partial`): an append-only file of the
 * cases scored so far, so that an interrupted run continues where it stopped.
 *
 * Layout (host byte order: a journal is a temporary file of one machine):
 *   header:  "C3SJRNL1" (8 bytes), u32 settings length L, u64 feature width d,
 *            L bytes of settings (the run's metadata as compact JSON), u32 CRC-32 of
 *            everything before it;
 *   records: u32 0x31434552 ("REC1"), u32 payload length P, P bytes of payload, u32
 *            CRC-32 of the payload; payload = u32 + id, u32 + first image path, u32 +
 *            map path (length 0: none), f32 score, d x f32 feature.
 * A record is appended with one write and fdatasync'ed. Reading keeps the records up to
 * the first incomplete or damaged one (what a SIGKILL during a write leaves) and the
 * writer truncates the file there before appending. */
#ifndef C3_PIPELINE_JOURNAL_H
#define C3_PIPELINE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "csal3d/common.h"

typedef struct c3_journal_rec {
  char *id, *image, *map; /* map: NULL when none */
  float score;
  float *feature;         /* d values */
} c3_journal_rec;

typedef struct c3_journal {
  char *settings;         /* the header's settings text */
  int64_t d;
  c3_journal_rec *recs;
  size_t n, cap;
  size_t valid_bytes;     /* the length of the intact prefix of the file */
  int fd;                 /* open for appending, or -1 */
  char *path;
} c3_journal;

/* Parses a journal held in memory (the fuzz target's entry point): the header must be
 * intact (FORMAT otherwise, naming `source`); records are kept up to the first bad one. */
csal3d_status c3_journal_parse(const void *buf, size_t len, const char *source,
                               c3_journal *out);

/* Opens `path` for a run with `settings` and feature width d. When the file exists and
 * resume is 1, its records are read; a journal with other settings fails (FORMAT, the
 * message naming the first setting that differs and the way out). When it does not
 * exist, or resume is 0, a new one is written (atomically) with no records. */
csal3d_status c3_journal_open(const char *path, const char *settings, int64_t d, int resume,
                              c3_journal *out);

/* The record of `id` whose first image is `image`, or NULL. */
const c3_journal_rec *c3_journal_find(const c3_journal *j, const char *id, const char *image);

/* Appends a record (one write + fdatasync) and keeps it in memory. */
csal3d_status c3_journal_append(c3_journal *j, const char *id, const char *image,
                                const char *map, float score, const float *feature);

/* Closes the file and frees everything; `remove_file` 1 also deletes the file. */
void c3_journal_close(c3_journal *j, int remove_file);

#endif
