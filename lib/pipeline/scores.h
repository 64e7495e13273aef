/* Internal side of the scores file (include/csal3d/manifest.h describes the format). */
#ifndef C3_PIPELINE_SCORES_H
#define C3_PIPELINE_SCORES_H

#include <stddef.h>

#include "csal3d/manifest.h"

#define C3_SCORES_FORMAT "csal3d-scores"
#define C3_SCORES_VERSION 1
/* Most image files (channels) per case accepted in a scores file. */
#define C3_SCORES_MAX_IMAGES 64

/* The rule for case ids (datasets, scores files): NULL when `id` is valid, else why not
 * ("is empty", ...). An id is not empty, holds no control character (bytes below 0x20,
 * 0x7f) and may hold '/' between parts that are neither empty, "." nor ".."
 * ("subj01/flair"), so that it can become a relative path or, with '/' replaced, a file
 * name. */
const char *c3_case_id_problem(const char *id);

/* Parses a scores file held in memory (the fuzz target's entry point). `source`
 * names the input in messages. */
csal3d_status c3_scores_parse(const void *buf, size_t len, const char *source,
                              csal3d_scores **out);

/* Direct (read-only) access for the library's writers; index must be valid and set. */
const char *c3_scores_id(const csal3d_scores *s, int64_t i);
int c3_scores_image_count(const csal3d_scores *s, int64_t i);
const char *c3_scores_image(const csal3d_scores *s, int64_t i, int k);
const char *c3_scores_label(const csal3d_scores *s, int64_t i); /* NULL: none */
const char *c3_scores_map(const csal3d_scores *s, int64_t i);   /* NULL: none */
int64_t c3_scores_n(const csal3d_scores *s);
float c3_scores_score(const csal3d_scores *s, int64_t i);
const float *c3_scores_feature(const csal3d_scores *s, int64_t i); /* d floats */
/* Metadata value or NULL; and the count / i-th pair in the order set. */
const char *c3_scores_meta(const csal3d_scores *s, const char *key);
size_t c3_scores_meta_count(const csal3d_scores *s);
void c3_scores_meta_at(const csal3d_scores *s, size_t i, const char **key, const char **value);
/* CSAL3D_ERR_STATE naming the first case not set, else OK. */
csal3d_status c3_scores_check_complete(const csal3d_scores *s);

#endif
