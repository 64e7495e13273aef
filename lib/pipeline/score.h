/* Internal side of dataset scoring (csal3d_score_dataset in include/csal3d/pipeline.h). */
#ifndef C3_PIPELINE_SCORE_H
#define C3_PIPELINE_SCORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "csal3d/pipeline.h"

/* The metadata of a scoring run (the schema in pipeline.h) as a JSON object of strings
 * in schema order. */
csal3d_status c3_score_settings(const csal3d_uncertainty *u, const csal3d_dataset *ds,
                                const csal3d_volume_load_options *lo, json_t **out);

/* A case left out of a run (CSAL3D_CASE_ERRORS_SKIP): its id, its error and its position
 * in the run's whole case list (a shard's positions are those of the whole list). */
typedef struct c3_skip {
  char *id, *error;
  size_t position;
} c3_skip;

/* The metadata "skipped_cases" of n skipped cases: a JSON array of {"id", "error"}
 * (compact; free() it). */
csal3d_status c3_skipped_cases_text(const c3_skip *k, size_t n, char **text);

/* The checksum of a case list ("shard_case_list"): CRC-32 (zlib) of every id with its
 * NUL, in list order; start from crc 0 and feed the ids one by one. */
uint32_t c3_case_list_crc(uint32_t crc, const char *id);

#endif
