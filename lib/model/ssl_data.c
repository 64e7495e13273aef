/* The data options an SSL model records (modality, channel, spacing, statistics of the
 * normalised training crops): the public accessors, and their checkpoint metadata
 * ("data.*"), written by csal3d_ssl_model_save() and read strictly on load. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/options.h"
#include "io/safetensors.h"
#include "model/ssl_internal.h"

#define C3_DATA_KNOWN_ALL \
  (CSAL3D_DATA_KNOWN_MODALITY | CSAL3D_DATA_KNOWN_CHANNEL | CSAL3D_DATA_KNOWN_SPACING)

/* ---- names ---- */

const char *c3_modality_name(csal3d_modality m) {
  switch (m) {
  case CSAL3D_MODALITY_CT: return "ct";
  case CSAL3D_MODALITY_MRI: return "mri";
  case CSAL3D_MODALITY_AUTO: return "auto";
  default: return "none";
  }
}

void c3_channel_text(int channel, char *buf, size_t n) {
  if (channel == CSAL3D_CHANNEL_ALL) snprintf(buf, n, "all");
  else if (channel < 0) snprintf(buf, n, "none");
  else snprintf(buf, n, "%d", channel);
}

void c3_spacing_text(const double sp[3], char *buf, size_t n) {
  if (sp[0] == 0 && sp[1] == 0 && sp[2] == 0) snprintf(buf, n, "native");
  else snprintf(buf, n, "%.17g,%.17g,%.17g", sp[0], sp[1], sp[2]);
}

/* ---- the statistics of the crops ---- */

/* The statistics of n values (serial passes: they do not depend on the number of threads). */
static void c3_intensity_block(const float *x, size_t n, int64_t crops, c3_intensity_acc *b) {
  memset(b, 0, sizeof *b);
  if (n == 0) return;
  double sum = 0, lo = x[0], hi = x[0];
  for (size_t i = 0; i < n; i++) {
    sum += x[i];
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  double mb = sum / (double)n, m2b = 0;
  for (size_t i = 0; i < n; i++) m2b += ((double)x[i] - mb) * ((double)x[i] - mb);
  *b = (c3_intensity_acc){crops, (int64_t)n, mb, m2b, lo, hi};
}

/* Chan's merge of block b into a. */
static void c3_intensity_merge(c3_intensity_acc *a, const c3_intensity_acc *b) {
  if (b->voxels == 0) return;
  if (a->voxels == 0) {
    a->mean = b->mean, a->m2 = b->m2, a->min = b->min, a->max = b->max;
  } else {
    double na = (double)a->voxels, nb = (double)b->voxels, d = b->mean - a->mean;
    a->mean += d * nb / (na + nb);
    a->m2 += b->m2 + d * d * na * nb / (na + nb);
    if (b->min < a->min) a->min = b->min;
    if (b->max > a->max) a->max = b->max;
  }
  a->voxels += b->voxels;
  a->crops += b->crops;
}

void c3_ssl_data_add_crops(csal3d_ssl_model *h, const float *x, size_t per, int64_t crops) {
  c3_intensity_acc b;
  c3_intensity_block(x, per * (size_t)crops, crops, &b);
  c3_intensity_merge(&h->data.stats, &b);
}

csal3d_status c3_ssl_data_add_shared(csal3d_ssl_model *h, const float *x, size_t per,
                                     int64_t n) {
  int size = c3_comm_size(h->ctx);
  if (size == 1) {
    c3_ssl_data_add_crops(h, x, per, n);
    return CSAL3D_OK;
  }
  c3_intensity_acc mine, *all;
  c3_intensity_block(x, per * (size_t)n, n, &mine);
  C3_TRY(c3_alloc_array((size_t)size, sizeof *all, "crop statistics", (void **)&all));
  csal3d_status s = c3_comm_allgather(h->ctx, &mine, all, sizeof mine,
                                      "pretraining: the crops' statistics");
  for (int r = 0; s == CSAL3D_OK && r < size; r++) c3_intensity_merge(&h->data.stats, &all[r]);
  c3_free(all);
  return s;
}

/* ---- metadata ---- */

int c3_ssl_data_metadata(const c3_ssl_data *d, c3_ssl_data_text *t, const char **kv) {
  int n = 0;
  if (d->known & CSAL3D_DATA_KNOWN_MODALITY) {
    snprintf(t->value[n], sizeof t->value[n], "%s", c3_modality_name(d->modality));
    kv[2 * n] = "data.modality", kv[2 * n + 1] = t->value[n], n++;
  }
  if (d->known & CSAL3D_DATA_KNOWN_CHANNEL) {
    c3_channel_text(d->channel, t->value[n], sizeof t->value[n]);
    kv[2 * n] = "data.channel", kv[2 * n + 1] = t->value[n], n++;
  }
  if (d->known & CSAL3D_DATA_KNOWN_SPACING) {
    c3_spacing_text(d->spacing, t->value[n], sizeof t->value[n]);
    kv[2 * n] = "data.spacing", kv[2 * n + 1] = t->value[n], n++;
  }
  const c3_intensity_acc *a = &d->stats;
  if (a->crops > 0) {
    snprintf(t->value[n], sizeof t->value[n],
             "{\"crops\":%lld,\"voxels\":%lld,\"mean\":%.17g,\"std\":%.17g,\"min\":%.17g,"
             "\"max\":%.17g}",
             (long long)a->crops, (long long)a->voxels, a->mean,
             sqrt(a->m2 / (double)a->voxels), a->min, a->max);
    kv[2 * n] = "data.intensity", kv[2 * n + 1] = t->value[n], n++;
  }
  kv[2 * n] = NULL;
  return n;
}

static csal3d_status c3_bad_key(const c3_safetensors *st, const char *key, const char *value,
                                const char *want) {
  return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s = '%.60s' (%s)", c3_st_source(st), key,
                  value, want);
}

/* A strict decimal number: no leading space or sign other than '-', nothing after. */
static int c3_parse_spacing(const char *s, double sp[3]) {
  const char *p = s;
  for (int a = 0; a < 3; a++) {
    if (!isdigit((unsigned char)*p) && *p != '.') return 0;
    char *end;
    errno = 0;
    double x = strtod(p, &end);
    if (end == p || errno || !isfinite(x) || x < 0) return 0;
    if (a < 2 ? *end != ',' : *end != '\0') return 0;
    sp[a] = x;
    p = end + 1;
  }
  return 1;
}

static int c3_parse_intensity(const char *s, c3_intensity_acc *a) {
  json_error_t err;
  json_t *root = json_loads(s, JSON_REJECT_DUPLICATES, &err);
  int ok = json_is_object(root);
  json_t *crops = ok ? json_object_get(root, "crops") : NULL;
  json_t *vox = ok ? json_object_get(root, "voxels") : NULL;
  static const char *keys[4] = {"mean", "std", "min", "max"};
  double v[4] = {0};
  ok = ok && json_is_integer(crops) && json_is_integer(vox);
  for (int k = 0; ok && k < 4; k++) {
    json_t *x = json_object_get(root, keys[k]);
    ok = json_is_number(x) && isfinite(json_number_value(x));
    if (ok) v[k] = json_number_value(x);
  }
  if (ok) {
    json_int_t c = json_integer_value(crops), n = json_integer_value(vox);
    ok = c >= 1 && n >= c && v[1] >= 0 && v[2] <= v[3];
    if (ok) {
      a->crops = (int64_t)c;
      a->voxels = (int64_t)n;
      a->mean = v[0];
      a->m2 = v[1] * v[1] * (double)n;
      a->min = v[2];
      a->max = v[3];
      ok = isfinite(a->m2);
    }
  }
  json_decref(root);
  return ok;
}

csal3d_status c3_ssl_data_from_metadata(const c3_safetensors *st, c3_ssl_data *d) {
  memset(d, 0, sizeof *d);
  d->channel = CSAL3D_CHANNEL_NONE;
  const char *v = c3_st_metadata(st, "data.modality");
  if (v) {
    if (!strcmp(v, "ct")) d->modality = CSAL3D_MODALITY_CT;
    else if (!strcmp(v, "mri")) d->modality = CSAL3D_MODALITY_MRI;
    else if (!strcmp(v, "none")) d->modality = CSAL3D_MODALITY_NONE;
    else return c3_bad_key(st, "data.modality", v, "ct, mri or none");
    d->known |= CSAL3D_DATA_KNOWN_MODALITY;
  }
  v = c3_st_metadata(st, "data.channel");
  if (v) {
    if (!strcmp(v, "none")) {
      d->channel = CSAL3D_CHANNEL_NONE;
    } else if (!strcmp(v, "all")) {
      d->channel = CSAL3D_CHANNEL_ALL;
    } else {
      char *end;
      errno = 0;
      long c = isdigit((unsigned char)v[0]) ? strtol(v, &end, 10) : -1;
      if (c < 0 || errno || *end || c > INT_MAX)
        return c3_bad_key(st, "data.channel", v, "a channel index, all or none");
      d->channel = (int)c;
    }
    d->known |= CSAL3D_DATA_KNOWN_CHANNEL;
  }
  v = c3_st_metadata(st, "data.spacing");
  if (v) {
    if (strcmp(v, "native") && !c3_parse_spacing(v, d->spacing))
      return c3_bad_key(st, "data.spacing", v, "x,y,z in mm, each >= 0, or native");
    d->known |= CSAL3D_DATA_KNOWN_SPACING;
  }
  v = c3_st_metadata(st, "data.intensity");
  if (v && !c3_parse_intensity(v, &d->stats))
    return c3_bad_key(st, "data.intensity", v,
                      "a JSON object of crops >= 1, voxels >= crops, finite mean, std >= 0, "
                      "min <= max");
  return CSAL3D_OK;
}

/* ---- public ---- */

CSAL3D_API csal3d_status csal3d_ssl_model_data_options(const csal3d_ssl_model *h,
                                                       csal3d_volume_load_options *options,
                                                       int *known) {
  C3_CHECK_ARG(h && options, "csal3d_ssl_model_data_options: NULL argument");
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  const c3_ssl_data *d = &h->data;
  if (d->known & CSAL3D_DATA_KNOWN_MODALITY) o.modality = d->modality;
  if (d->known & CSAL3D_DATA_KNOWN_CHANNEL) o.channel = d->channel;
  if (d->known & CSAL3D_DATA_KNOWN_SPACING) memcpy(o.spacing, d->spacing, sizeof o.spacing);
  C3_TRY(c3_options_write(options, &o, sizeof o, "csal3d_ssl_model_data_options"));
  if (known) *known = d->known;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_model_set_data_options(
    csal3d_ssl_model *h, const csal3d_volume_load_options *options) {
  C3_CHECK_ARG(h, "csal3d_ssl_model_set_data_options: model is NULL");
  if (!options) {
    h->data.known = 0;
    return CSAL3D_OK;
  }
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_volume_load_options"));
  C3_CHECK_ARG(o.modality == CSAL3D_MODALITY_NONE || o.modality == CSAL3D_MODALITY_CT ||
                   o.modality == CSAL3D_MODALITY_MRI,
               "csal3d_ssl_model_set_data_options: modality must be NONE, CT or MRI (%d)",
               (int)o.modality);
  C3_CHECK_ARG(o.channel >= 0 || o.channel == CSAL3D_CHANNEL_ALL ||
                   o.channel == CSAL3D_CHANNEL_NONE,
               "csal3d_ssl_model_set_data_options: channel %d must be an index, ALL or NONE",
               o.channel);
  for (int a = 0; a < 3; a++)
    C3_CHECK_ARG(isfinite(o.spacing[a]) && o.spacing[a] >= 0,
                 "csal3d_ssl_model_set_data_options: spacing %g must be 0 (native) or > 0",
                 o.spacing[a]);
  h->data.modality = o.modality;
  h->data.channel = o.channel;
  for (int a = 0; a < 3; a++) h->data.spacing[a] = o.spacing[a] > 0 ? o.spacing[a] : 0.0;
  h->data.known = C3_DATA_KNOWN_ALL;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_model_intensity_stats(const csal3d_ssl_model *h,
                                                          csal3d_intensity_stats *stats) {
  C3_CHECK_ARG(h && stats, "csal3d_ssl_model_intensity_stats: NULL argument");
  csal3d_intensity_stats s;
  memset(&s, 0, sizeof s);
  const c3_intensity_acc *a = &h->data.stats;
  if (a->crops > 0) {
    s.crops = a->crops;
    s.voxels = a->voxels;
    s.mean = a->mean;
    s.std = sqrt(a->m2 / (double)a->voxels);
    s.min = a->min;
    s.max = a->max;
  }
  return c3_options_write(stats, &s, sizeof s, "csal3d_ssl_model_intensity_stats");
}
