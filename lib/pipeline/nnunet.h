/* Internal side of the nnU-Net export: name lists and the dataset.json names reader
 * (the fuzz target's entry point). */
#ifndef C3_PIPELINE_NNUNET_H
#define C3_PIPELINE_NNUNET_H

#include <stddef.h>

#include "csal3d/manifest.h"
#include "pipeline/commit.h"

/* Most label values / channels accepted. */
#define C3_NAMES_MAX 1024

/* Names by index 0..count-1 (an entry may be NULL while a list is being filled). */
typedef struct c3_names {
  int count;
  char *name[C3_NAMES_MAX];
} c3_names;

void c3_names_free(c3_names *n);

/* "a,b,c" -> names 0, 1, 2 (spaces around names trimmed; empty names refused). */
csal3d_status c3_names_parse_list(const char *list, c3_names *out, const char *what);

/* Reads label names and channel names from a decathlon or nnU-Net v2 dataset.json held
 * in memory: "labels" as {"0": "background", ...} (decathlon) or {"background": 0, ...}
 * (nnU-Net v2; values must be single integers) without gaps; "channel_names" (else
 * "modality") as {"0": "CT", ...}. Absent lists give count 0. */
csal3d_status c3_dataset_names_parse(const char *text, size_t len, const char *source,
                                     c3_names *labels, c3_names *channels);

/* Refuses a folder whose last component is not nnU-Net's DatasetNNN_Name. */
csal3d_status c3_nnunet_check_name(const char *folder);

/* The checks of csal3d_nnunet_export() (before any work), then the folder built under a
 * temporary name beside `folder` and added to `commit` (not moved into place yet).
 * `options` is complete (read with c3_options_read); its overwrite applies. */
csal3d_status c3_nnunet_stage(const csal3d_scores *scores, const int64_t *indices,
                              int64_t count, const char *folder,
                              const csal3d_nnunet_options *options, const csal3d_context *ctx,
                              c3_commit *commit);

#endif
