/* Internal side of dataset scoring (csal3d_score_dataset in include/csal3d/pipeline.h). */
#ifndef C3_PIPELINE_SCORE_H
#define C3_PIPELINE_SCORE_H

#include <jansson.h>
#include <stddef.h>

#include "csal3d/pipeline.h"

/* The metadata of a scoring run (the schema in pipeline.h) as a JSON object of strings
 * in schema order. */
csal3d_status c3_score_settings(const csal3d_uncertainty *u, const csal3d_dataset *ds,
                                const csal3d_volume_load_options *lo, json_t **out);

#endif
