/* The data options of a run over a dataset (see data_options.h): resolution against the
 * model's recorded options and the dataset.json, and the per-case checks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "model/ssl_internal.h"
#include "pipeline/data_options.h"
#include "pipeline/dataset.h"

/* ---- intensities ---- */

int c3_intensity_fits(csal3d_modality m, double lo, double hi, char *why, size_t n) {
  if (m == CSAL3D_MODALITY_CT) {
    double a = lo < -1024 ? -1024 : lo > 1024 ? 1024 : lo;
    double b = hi < -1024 ? -1024 : hi > 1024 ? 1024 : hi;
    if (b - a < C3_CT_MIN_SPAN_HU) {
      snprintf(why, n,
               "its values %g..%g span less than %g HU (normalised as CT they all lie in "
               "%.4f..%.4f): z-scored or already normalised data, not Hounsfield units",
               lo, hi, C3_CT_MIN_SPAN_HU, (a + 1024) / 2048, (b + 1024) / 2048);
      return 0;
    }
    if (lo >= C3_CT_AIR_HU) {
      snprintf(why, n,
               "its lowest value %g is not below %g HU: no air, which CT scans hold "
               "(MRI or other data not in Hounsfield units?)",
               lo, C3_CT_AIR_HU);
      return 0;
    }
  } else if (m == CSAL3D_MODALITY_MRI) {
    if (lo < C3_MRI_HU_FLOOR) {
      snprintf(why, n,
               "its values go down to %g: Hounsfield units of a CT (air is -1000), not MRI "
               "intensities",
               lo);
      return 0;
    }
  }
  if (n) why[0] = '\0';
  return 1;
}

/* ---- resolution ---- */

static const char *c3_modality_upper(csal3d_modality m) {
  return m == CSAL3D_MODALITY_CT ? "CT" : m == CSAL3D_MODALITY_MRI ? "MRI" : "raw intensities";
}

csal3d_status c3_data_options_resolve(const csal3d_ssl_model *model, const csal3d_dataset *ds,
                                      const csal3d_volume_load_options *requested,
                                      const char *purpose, const csal3d_context *ctx,
                                      csal3d_volume_load_options *out) {
  C3_CHECK_ARG(out && purpose, "data options: NULL argument");
  csal3d_volume_load_options rec, o;
  csal3d_volume_load_options_init(&rec);
  csal3d_volume_load_options_init(&o);
  int known = 0;
  if (model) C3_TRY(csal3d_ssl_model_data_options(model, &rec, &known));
  csal3d_modality dm = CSAL3D_MODALITY_NONE;
  if (ds) C3_TRY(csal3d_dataset_modality(ds, &dm));
  char a[96], b[96];
  if (!requested) {
    if (known & CSAL3D_DATA_KNOWN_MODALITY) o.modality = rec.modality;
    if (known & CSAL3D_DATA_KNOWN_CHANNEL) o.channel = rec.channel;
    if (known & CSAL3D_DATA_KNOWN_SPACING) memcpy(o.spacing, rec.spacing, sizeof o.spacing);
    if (known) {
      c3_channel_text(o.channel, a, sizeof a);
      c3_spacing_text(o.spacing, b, sizeof b);
      c3_log(ctx, CSAL3D_LOG_INFO, "%s with the checkpoint's data options: modality %s, "
             "channel %s, spacing %s", purpose, c3_modality_name(o.modality), a, b);
    }
  } else {
    C3_TRY(c3_options_read(&o, sizeof o, requested, "csal3d_volume_load_options"));
    C3_CHECK_ARG(o.modality >= CSAL3D_MODALITY_NONE && o.modality <= CSAL3D_MODALITY_AUTO,
                 "%s: unknown modality %d", purpose, (int)o.modality);
    if ((known & CSAL3D_DATA_KNOWN_MODALITY) && o.modality != CSAL3D_MODALITY_AUTO &&
        o.modality != rec.modality)
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                      "%s: the model was trained on %s (modality %s); modality %s contradicts "
                      "it: set the option modality to %s (or auto, which takes the model's)",
                      purpose, c3_modality_upper(rec.modality), c3_modality_name(rec.modality),
                      c3_modality_name(o.modality), c3_modality_name(rec.modality));
    if ((known & CSAL3D_DATA_KNOWN_SPACING) &&
        (o.spacing[0] != rec.spacing[0] || o.spacing[1] != rec.spacing[1] ||
         o.spacing[2] != rec.spacing[2])) {
      c3_spacing_text(rec.spacing, a, sizeof a);
      c3_spacing_text(o.spacing, b, sizeof b);
      c3_log(ctx, CSAL3D_LOG_WARN, "%s: overriding the checkpoint's spacing %s with %s "
             "(the option spacing)", purpose, a, b);
    }
    if ((known & CSAL3D_DATA_KNOWN_CHANNEL) && o.channel != rec.channel) {
      c3_channel_text(rec.channel, a, sizeof a);
      c3_channel_text(o.channel, b, sizeof b);
      c3_log(ctx, CSAL3D_LOG_WARN, "%s: overriding the checkpoint's channel %s with %s "
             "(the option channel)", purpose, a, b);
    }
  }
  if (o.modality == CSAL3D_MODALITY_AUTO) {
    if (known & CSAL3D_DATA_KNOWN_MODALITY) {
      o.modality = rec.modality;
    } else if (dm != CSAL3D_MODALITY_NONE) {
      o.modality = dm;
      c3_log(ctx, CSAL3D_LOG_INFO, "%s: modality %s, as the dataset.json states", purpose,
             c3_modality_name(dm));
    } else {
      o.modality = CSAL3D_MODALITY_NONE;
      c3_log(ctx, CSAL3D_LOG_WARN, "%s: neither the model nor a dataset.json says which "
             "modality the images are: raw intensities are used (set modality to ct or mri "
             "to normalise them)", purpose);
    }
  }
  if (dm != CSAL3D_MODALITY_NONE && o.modality != dm)
    c3_log(ctx, CSAL3D_LOG_WARN, "%s: loading the images as modality %s although the "
           "dataset.json states %s", purpose, c3_modality_name(o.modality),
           c3_modality_upper(dm));
  *out = o;
  return CSAL3D_OK;
}

/* ---- per case ---- */

void c3_data_check_init(c3_data_check *c, const csal3d_ssl_model *model,
                        const csal3d_volume_load_options *resolved, const char *purpose,
                        const csal3d_context *ctx) {
  memset(c, 0, sizeof *c);
  c->ctx = ctx;
  c->purpose = purpose;
  c->in_channels = model ? model->o.in_channels : 0;
  c->modality = resolved ? resolved->modality : CSAL3D_MODALITY_NONE;
}

csal3d_status c3_data_check_case(c3_data_check *c, const csal3d_volume *raw,
                                 const char *case_id) {
  C3_CHECK_ARG(c && raw, "data check: NULL argument");
  if (!case_id) case_id = "?";
  int64_t sh[4];
  C3_TRY(csal3d_volume_shape(raw, sh));
  if (c->in_channels > 0 && sh[0] != c->in_channels) {
    int pre = !strcmp(c->purpose, "pretraining");
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "case '%s' has %lld channel(s), the model takes %lld: set the option "
                    "channel (an index to take one volume of a 4-D image, or all)%s",
                    case_id, (long long)sh[0], (long long)c->in_channels,
                    pre ? ", or create the model with the option in_channels to match" : "");
  }
  if (c->warned || c->modality == CSAL3D_MODALITY_NONE) return CSAL3D_OK;
  const float *x;
  C3_TRY(csal3d_volume_data(raw, &x));
  size_t n = (size_t)(sh[0] * sh[1] * sh[2] * sh[3]);
  if (n == 0) return CSAL3D_OK;
  float lo = x[0], hi = x[0];
  for (size_t i = 1; i < n; i++) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  char why[320];
  if (!c3_intensity_fits(c->modality, lo, hi, why, sizeof why)) {
    c->warned = 1;
    c3_log(c->ctx, CSAL3D_LOG_WARN, "%s: case '%s' does not look like %s: %s; check the "
           "option modality (said once per run)", c->purpose, case_id,
           c3_modality_upper(c->modality), why);
  }
  return CSAL3D_OK;
}

void c3_data_check_clear(c3_data_check *c) {
  if (!c) return;
  c3_free(c->told);
  c->told = NULL;
  c->told_n = 0;
}

/* Whether the files of case `index` were already named in a warning of this run (and
 * marks them so). Without memory for the marks, every load warns again. */
static int c3_data_told(c3_data_check *c, const csal3d_dataset *ds, size_t index) {
  if (!c->told) {
    size_t n = c3_dataset_n(ds);
    if (c3_calloc_array(n ? n : 1, 1, "warned cases", (void **)&c->told) != CSAL3D_OK) {
      c3_error_clear();
      return 0;
    }
    c->told_n = n;
  }
  if (index >= c->told_n) return 0;
  int was = c->told[index];
  c->told[index] = 1;
  return was;
}

csal3d_status c3_data_load_case(c3_data_check *c, const csal3d_dataset *ds, size_t index,
                                const csal3d_volume_load_options *resolved,
                                csal3d_volume **out) {
  C3_CHECK_ARG(out && c && resolved, "data load: NULL argument");
  *out = NULL;
  csal3d_volume_load_options lo = *resolved;
  lo.modality = CSAL3D_MODALITY_NONE;
  csal3d_volume *v;
  uint64_t unoriented = 0;
  C3_TRY(c3_dataset_load_image_told(ds, index, &lo, &v, &unoriented));
  const char *id = c3_dataset_id(ds, index);
  if (unoriented && !c3_data_told(c, ds, index))
    for (int k = 0; k < c3_dataset_image_count(ds, index) && k < 64; k++)
      if (unoriented & ((uint64_t)1 << k))
        c3_log(c->ctx, CSAL3D_LOG_WARN, "%s: %s (case '%s') has no orientation (its "
               "qform_code and sform_code are 0): read as NIfTI's method 1 says, its axes "
               "i, j, k as right, anterior, superior with pixdim as spacing and no rotation "
               "or origin, which may not be how it was scanned (said once per file)",
               c->purpose, c3_dataset_image(ds, index, k), id);
  csal3d_status s = c3_data_check_case(c, v, id);
  if (s == CSAL3D_OK) {
    s = csal3d_volume_normalize(v, resolved->modality);
    if (s != CSAL3D_OK) s = c3_error_prefix(s, "case '%s'", id);
  }
  if (s != CSAL3D_OK) {
    csal3d_volume_free(v);
    return s;
  }
  *out = v;
  return CSAL3D_OK;
}
