/* Output checks before work (csal3d_output_check in include/csal3d/pipeline.h). */
#ifndef C3_PIPELINE_OUTPUTS_H
#define C3_PIPELINE_OUTPUTS_H

#include <stddef.h>

#include "csal3d/pipeline.h"

csal3d_status c3_output_check(const char *path, csal3d_output_kind kind, const char *what,
                              const char *const *inputs, size_t n_inputs, int overwrite);

#endif
