/* The data options of a run that feeds a dataset's cases to a model (pretraining,
 * scoring): one resolution of what the caller asked, what the model recorded and what
 * the dataset.json states; and the checks of each case as it is loaded.
 *
 * Resolution (c3_data_options_resolve):
 * - requested NULL: the model's recorded options where known
 *   (csal3d_ssl_model_data_options), else the dataset's defaults: modality AUTO (below),
 *   native spacing, channel NONE.
 * - modality AUTO: the model's recorded modality, else the dataset.json's, else NONE,
 *   with a WARN that raw intensities are used.
 * - an explicit modality (NONE, CT or MRI) other than the model's recorded one:
 *   CSAL3D_ERR_INVALID_ARGUMENT saying what the model was trained on and naming the
 *   option `modality` (the tool's --modality).
 * - a resolved modality other than the one the dataset.json states: WARN.
 * - an explicit spacing or channel other than the model's recorded one: used, with a WARN
 *   ("overriding the checkpoint's spacing 1.5,1.5,1.5 with native").
 * The result's modality is never AUTO.
 *
 * Per case (c3_data_check_case, on the image as loaded WITHOUT normalisation, i.e. after
 * resampling, before the modality's normalisation; c3_data_load_case does both):
 * - a channel count other than the model's in_channels: CSAL3D_ERR_INVALID_ARGUMENT
 *   naming the case and the option `channel` (and `in_channels` when pretraining).
 * - intensities that do not fit the modality: one WARN per run through the context's
 *   log, naming the case (c3_intensity_fits below gives the thresholds).
 * - image files without orientation codes (qform_code and sform_code 0; c3_data_load_case):
 *   one WARN per file and run, naming it.
 */
#ifndef C3_PIPELINE_DATA_OPTIONS_H
#define C3_PIPELINE_DATA_OPTIONS_H

#include <stddef.h>

#include "csal3d/ssl_model.h"
#include "csal3d/volume.h"

/* CT loaded as CT: its raw values (clipped to [-1024, 1024] as the normalisation clips
 * them) must span at least this many HU. Z-scored MRI loaded as CT spans a few units:
 * its CT-normalised values lie within 0.498..0.504, a band 50 HU = 0.0244 wide would
 * already be suspicious. */
#define C3_CT_MIN_SPAN_HU 50.0
/* CT loaded as CT: some value must lie below this (air is -1000 HU, fat about -100;
 * CT scans almost always hold air). MRI intensities (>= 0) fail it. */
#define C3_CT_AIR_HU (-200.0)
/* MRI loaded as MRI: a value below this looks like air in Hounsfield units (a CT); MRI
 * intensities are >= 0, and z-scored MRI rarely goes below -10. */
#define C3_MRI_HU_FLOOR (-500.0)

/* Whether raw intensities spanning [lo, hi] fit modality m: CT needs
 * min(hi, 1024) - max(lo, -1024) >= C3_CT_MIN_SPAN_HU and lo < C3_CT_AIR_HU; MRI needs
 * lo >= C3_MRI_HU_FLOOR; NONE always fits. Returns 1 if they fit, else 0 with the
 * reason in why (n bytes). */
int c3_intensity_fits(csal3d_modality m, double lo, double hi, char *why, size_t n);

/* Resolves the data options of a run (rules above). model and ds may be NULL (nothing
 * recorded, no dataset.json); requested NULL: the model's recorded options. purpose
 * ("pretraining", "scoring") starts the log lines and messages; ctx receives the logs
 * (may be NULL). out receives full options (its struct_size is the library's). */
csal3d_status c3_data_options_resolve(const csal3d_ssl_model *model, const csal3d_dataset *ds,
                                      const csal3d_volume_load_options *requested,
                                      const char *purpose, const csal3d_context *ctx,
                                      csal3d_volume_load_options *out);

/* The state of the per-case checks of one run. */
typedef struct c3_data_check {
  const csal3d_context *ctx;
  const char *purpose;
  int64_t in_channels;      /* the model's */
  csal3d_modality modality; /* resolved: NONE, CT or MRI */
  int warned;               /* the intensity warning was given */
  unsigned char *told;      /* per case: files without orientation codes named */
  size_t told_n;
} c3_data_check;

/* Starts the checks of a run with the model and the resolved options. */
void c3_data_check_init(c3_data_check *c, const csal3d_ssl_model *model,
                        const csal3d_volume_load_options *resolved, const char *purpose,
                        const csal3d_context *ctx);

/* Frees what the checks of a run hold. */
void c3_data_check_clear(c3_data_check *c);

/* Checks a case's image as loaded without normalisation (see above). */
csal3d_status c3_data_check_case(c3_data_check *c, const csal3d_volume *raw,
                                 const char *case_id);

/* Loads case `index` with the resolved options: without normalisation, checked
 * (c3_data_check_case), then normalised with resolved->modality, which gives the same
 * volume as csal3d_dataset_load_image() with the resolved options. */
csal3d_status c3_data_load_case(c3_data_check *c, const csal3d_dataset *ds, size_t index,
                                const csal3d_volume_load_options *resolved,
                                csal3d_volume **out);

#endif
