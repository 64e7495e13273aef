/* The csal3d_ssl_model handle's internals (shared with lib/uncertainty). */
#ifndef C3_MODEL_SSL_INTERNAL_H
#define C3_MODEL_SSL_INTERNAL_H

#include "csal3d/ssl_model.h"
#include "model/model.h"
#include "model/optim.h"
#include "model/ssl.h"

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
  /* the crop staging buffer of csal3d_ssl_model_train */
  float *crops;
  size_t crops_cap;
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
