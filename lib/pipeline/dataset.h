/* Internal side of datasets (the public API is in include/csal3d/volume.h). */
#ifndef C3_PIPELINE_DATASET_H
#define C3_PIPELINE_DATASET_H

#include <stdint.h>

#include "csal3d/volume.h"

/* The absolute path the dataset was opened from (a folder, a dataset.json or a list). */
const char *c3_dataset_source(const csal3d_dataset *ds);

/* Direct (read-only) access for the pipeline; i < c3_dataset_n(ds), k < image count. */
size_t c3_dataset_n(const csal3d_dataset *ds);
const char *c3_dataset_id(const csal3d_dataset *ds, size_t i);
int c3_dataset_image_count(const csal3d_dataset *ds, size_t i);
const char *c3_dataset_image(const csal3d_dataset *ds, size_t i, int k);
const char *c3_dataset_label(const csal3d_dataset *ds, size_t i); /* NULL: none */

/* csal3d_dataset_load_image, telling which of the case's image files have no orientation
 * codes (qform_code and sform_code 0, NIfTI's "method 1": pixdim on the diagonal, no
 * rotation or origin): bit k of *unoriented (if not NULL) for image file k < 64. */
csal3d_status c3_dataset_load_image_told(const csal3d_dataset *ds, size_t index,
                                         const csal3d_volume_load_options *options,
                                         csal3d_volume **out, uint64_t *unoriented);

/* The files a run on the dataset reads, which no output may replace: `extra` (a
 * checkpoint, say; may be NULL), the path it was opened from, every image and label.
 * *out (c3_free it) points into the dataset. */
csal3d_status c3_dataset_files(const csal3d_dataset *ds, const char *extra, const char ***out,
                               size_t *count);

#endif
