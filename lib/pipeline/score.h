/* Internal side of dataset scoring (csal3d_score_dataset in include/csal3d/pipeline.h):
 * the names that the run's metadata uses, shared with the other pipeline writers. */
#ifndef C3_PIPELINE_SCORE_H
#define C3_PIPELINE_SCORE_H

#include <jansson.h>
#include <stddef.h>

#include "csal3d/pipeline.h"

/* "ct", "mri" or "none". */
const char *c3_modality_name(csal3d_modality m);
/* "N", "all" or "none". */
void c3_channel_text(int channel, char *buf, size_t cap);
/* "D,H,W" (mm) or "native". */
void c3_spacing_text(const double spacing[3], char *buf, size_t cap);

/* The metadata of a scoring run (the schema in pipeline.h) as a JSON object of strings
 * in schema order. */
csal3d_status c3_score_settings(const csal3d_uncertainty *u, const csal3d_dataset *ds,
                                const csal3d_volume_load_options *lo, json_t **out);

#endif
