/* The csal3d_ssl_model handle's internals (shared with lib/uncertainty and lib/pipeline). */
#ifndef C3_MODEL_SSL_INTERNAL_H
#define C3_MODEL_SSL_INTERNAL_H

#include "csal3d/ssl_model.h"
#include "model/model.h"
#include "model/optim.h"
#include "model/ssl.h"

/* The running statistics of the normalised training crops (all channels together):
 * Chan's parallel merge of count, mean and sum of squared deviations. */
typedef struct c3_intensity_acc {
  int64_t crops, voxels;
  double mean, m2, min, max;
} c3_intensity_acc;

/* The data options a model records (csal3d_ssl_model_data_options): which of them are
 * known (CSAL3D_DATA_KNOWN_* bits), their values, and the statistics of the crops. */
typedef struct c3_ssl_data {
  int known;
  csal3d_modality modality; /* NONE, CT or MRI when known */
  int channel;              /* an index, CSAL3D_CHANNEL_ALL or CSAL3D_CHANNEL_NONE */
  double spacing[3];        /* 0: native along that axis */
  c3_intensity_acc stats;   /* crops 0: none */
} c3_ssl_data;

struct csal3d_ssl_model {
  csal3d_context *ctx;
  csal3d_ssl_options o;   /* resolved; o.checkpoint_path points to ckpt_path */
  char *ckpt_path;        /* owned copy, or NULL */
  uint64_t seed;          /* resolved seed */
  c3_model *m;
  c3_optim *opt;
  c3_ssl_loss_config lc;
  c3_ssl_work work;
  csal3d_ssl_losses last;
  int have_last;
  /* the checkpoint this model was loaded from (absolute path, its "checksum" metadata
   * and the step it held), for the provenance of what is computed with it; NULL/"" for
   * a model created in memory */
  char *source_path;
  char source_checksum[32];
  int64_t source_step;
  /* the crop staging buffer of csal3d_ssl_model_train (lib/pipeline/pretrain.c) */
  float *crops;
  size_t crops_cap;
  /* the data it was trained on, saved in checkpoints as "data.*" */
  c3_ssl_data data;
  /* the report of the last csal3d_ssl_model_init_from (ssl_init.c); details owned */
  char init_summary[1024];
  char *init_details;
};

struct c3_safetensors;

/* Training options from a checkpoint's metadata ("ssl.*", "optim.*" and the model
 * configuration mc) over the defaults in o; every value is validated (FORMAT for
 * unparsable text, INVALID_ARGUMENT for out-of-range options, naming the file). */
csal3d_status c3_ssl_options_from_metadata(const struct c3_safetensors *st,
                                           const c3_model_config *mc,
                                           csal3d_ssl_options *o);

/* The checkpoint the model's current weights come from: its absolute path and checksum,
 * or NULL when the model was created in memory or trained since it was loaded. */
const char *c3_ssl_source(const csal3d_ssl_model *h, const char **checksum);

/* The data options of a checkpoint's metadata ("data.modality", "data.channel",
 * "data.spacing", "data.intensity"; ssl_data.c). Absent keys stay unknown (d->known
 * lacks their bit; older checkpoints); a malformed value is CSAL3D_ERR_FORMAT naming
 * the file and the key. */
csal3d_status c3_ssl_data_from_metadata(const struct c3_safetensors *st, c3_ssl_data *d);

/* The metadata values of the known data options: up to four (key, value) pairs appended
 * to kv (NULL-terminated after them) with the values written into text. Returns the
 * number of pairs. */
typedef struct c3_ssl_data_text {
  char value[4][256];
} c3_ssl_data_text;
int c3_ssl_data_metadata(const c3_ssl_data *d, c3_ssl_data_text *text, const char **kv);

/* Names used in metadata and messages: "ct", "mri", "none" ("auto" for AUTO); a channel
 * as "none", "all" or its index; a spacing as "x,y,z" or "native" (all zero). */
const char *c3_modality_name(csal3d_modality m);
void c3_channel_text(int channel, char *buf, size_t n);
void c3_spacing_text(const double spacing[3], char *buf, size_t n);

/* Adds `crops` crops of `per` values each (x, contiguous) to the model's intensity
 * statistics. */
void c3_ssl_data_add_crops(csal3d_ssl_model *h, const float *x, size_t per, int64_t crops);

/* One training step on staged crops (no argument checks; the losses into h->last). */
csal3d_status c3_ssl_step_impl(csal3d_ssl_model *h, const float *crops, int64_t batch,
                               const int64_t dhw[3]);

/* One data-parallel step (core/comm.h), called by every rank at every step: this rank's
 * n crops, items items[0..n) of the global batch of `batch`, with `prepared` the status
 * of preparing them (an error: this rank failed before the step; its message is the
 * current one). Every rank then fails (the failing rank with its error, the others
 * naming it) or takes the same update with the gradients summed over the ranks. One
 * rank: c3_ssl_step_impl. */
csal3d_status c3_ssl_step_shared(csal3d_ssl_model *h, const float *crops, const int64_t *items,
                                 int64_t n, int64_t batch, const int64_t dhw[3],
                                 csal3d_status prepared);

/* Before the first data-parallel step: the same run on every rank (step, iterations,
 * batch, seed, shapes; else INVALID_ARGUMENT naming what differs), then rank 0's
 * parameters and moments on every rank. Nothing with one rank. */
csal3d_status c3_ssl_sync(csal3d_ssl_model *h);

/* Adds this rank's n crops to the intensity statistics of every rank (the ranks' blocks
 * merged in rank order; c3_ssl_data_add_crops with one rank). */
csal3d_status c3_ssl_data_add_shared(csal3d_ssl_model *h, const float *x, size_t per,
                                     int64_t n);

/* The crop staging buffer, grown to at least n floats (kept with the model). */
csal3d_status c3_ssl_crop_buffer(csal3d_ssl_model *h, size_t n, float **out);

/* Writes the model to its checkpoint_path (logged; errors name the step). */
csal3d_status c3_ssl_checkpoint(csal3d_ssl_model *h);

/* CSAL3D_ERR_NUMERICAL naming `what` and the first NaN or Inf of x[0..n). */
csal3d_status c3_check_finite(const float *x, size_t n, const char *what);

/* The fraction of cubes hidden for the model's mask options. */
double c3_ssl_hide_fraction(const csal3d_ssl_options *o);

/* The feature width for a mode (REDUCED or FULL; DEFAULT: the model's). */
int64_t c3_ssl_feature_width(const c3_model *m, csal3d_feature_mode mode);

/* The feature of the last forward's first item into engine memory feat
 * (mode REDUCED, FULL or DEFAULT). */
csal3d_status c3_ssl_feature(c3_model *m, csal3d_feature_mode mode, float *feat);

#endif
