/* Starting a csal3d_ssl_model from pretrained weights (public encoders or our own
 * checkpoints): csal3d_ssl_options_from_weights and csal3d_ssl_model_init_from. The
 * key mapping and checks are model/import.c's. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "core/threads.h"
#include "io/fileutil.h"
#include "model/checkpoint.h"
#include "model/import.h"
#include "model/ssl_internal.h"

/* The file's patch embedding weight (under any of the names import.c maps), or NULL. */
static const c3_st_entry *c3_find_embedding(const c3_safetensors *st) {
  for (size_t i = 0; i < c3_st_count(st); i++) {
    const c3_st_entry *e = c3_st_entry_at(st, i);
    char name[512];
    if (c3_import_map_name(e->name, name, sizeof name, NULL) == C3_IMPORT_MAPPED &&
        strcmp(name, "swinViT.patch_embed.proj.weight") == 0 && e->ndim == 5)
      return e;
  }
  return NULL;
}

/* embed_dim or in_channels (dim 0 or 1 of the embedding) from the metadata or the
 * weights; both present must agree. */
static csal3d_status c3_weights_size(const c3_safetensors *st, const c3_st_entry *pe,
                                     const char *key, int dim, int *value) {
  const char *found;
  int v = 0;
  C3_TRY(c3_model_metadata_int(st, key, &v, &found));
  if (pe && found && v != pe->shape[dim]) {
    char a[128];
    c3_model_shape_text(pe->ndim, pe->shape, a, sizeof a);
    return c3_error(CSAL3D_ERR_FORMAT, "%s: metadata %s %d contradicts '%s' [%s]",
                    c3_st_source(st), found, v, pe->name, a);
  }
  if (!found && !pe)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: no %s in the metadata and no patch embedding "
                    "(swinViT.patch_embed.proj.weight) to read it from: not a Swin encoder",
                    c3_st_source(st), key);
  *value = found ? v : (int)pe->shape[dim];
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_options_from_weights(const char *path,
                                                         csal3d_ssl_options *options) {
  C3_CHECK_ARG(path && options, "csal3d_ssl_options_from_weights: NULL argument");
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_ssl_options"));
  c3_safetensors *st;
  C3_TRY(c3_checkpoint_open(path, &st, NULL));
  const c3_st_entry *pe = c3_find_embedding(st);
  csal3d_status s = c3_weights_size(st, pe, "embed_dim", 0, &o.embed_dim);
  if (s == CSAL3D_OK) s = c3_weights_size(st, pe, "in_channels", 1, &o.in_channels);
  c3_model_config mc;
  if (s == CSAL3D_OK && (c3_st_metadata(st, "rotation_input") || c3_st_metadata(st, "feature"))) {
    s = c3_model_config_from_metadata(st, &mc);
    if (s == CSAL3D_OK && c3_st_metadata(st, "rotation_input"))
      o.rotation_input = mc.rot_input == C3_ROT_FIRST_TOKEN ? CSAL3D_ROTATION_INPUT_FIRST_TOKEN
                                                             : CSAL3D_ROTATION_INPUT_MEAN;
    if (s == CSAL3D_OK && c3_st_metadata(st, "feature"))
      o.feature = mc.feature_full ? CSAL3D_FEATURE_FULL : CSAL3D_FEATURE_REDUCED;
  }
  c3_st_free(st);
  if (s != CSAL3D_OK) return s;
  return c3_options_write(options, &o, sizeof o, "csal3d_ssl_options_from_weights");
}

CSAL3D_API csal3d_status csal3d_ssl_model_init_from(csal3d_ssl_model *h, const char *path,
                                                    csal3d_ssl_init_report *report) {
  C3_CHECK_ARG(h && path, "csal3d_ssl_model_init_from: NULL argument");
  C3_CHECK_ARG(!report || report->struct_size >= sizeof(size_t),
               "csal3d_ssl_model_init_from: set report->struct_size");
  if (h->opt->step != 0)
    return c3_error(CSAL3D_ERR_STATE,
                    "csal3d_ssl_model_init_from: the model has trained %lld steps; starting "
                    "weights go into a model at step 0 (make a new one)",
                    (long long)h->opt->step);
  int prev = c3_threads_enter(h->ctx->options.threads);
  c3_safetensors *st = NULL;
  c3_import_report rep = {0};
  char *abs = NULL;
  csal3d_status s = c3_checkpoint_open(path, &st, NULL);
  if (s == CSAL3D_OK) s = c3_path_absolute(path, &abs);
  if (s == CSAL3D_OK) s = c3_model_import(h->m, st, h->seed, &rep);
  if (s == CSAL3D_OK) {
    c3_free(h->source_path);
    h->source_path = abs;
    abs = NULL;
    const char *sum = c3_st_metadata(st, "checksum");
    snprintf(h->source_checksum, sizeof h->source_checksum, "%s", sum ? sum : "");
    h->source_step = 0;
    h->have_last = 0;
    snprintf(h->init_summary, sizeof h->init_summary, "%s", rep.summary);
    c3_free(h->init_details);
    h->init_details = rep.details;
    rep.details = NULL;
  }
  c3_free(abs);
  c3_st_free(st);
  c3_threads_leave(prev);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "starting weights");
  c3_log(h->ctx, CSAL3D_LOG_INFO, "%s", h->init_summary);
  if (report) {
    csal3d_ssl_init_report r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.loaded = rep.loaded;
    r.initialised = rep.initialised;
    r.ignored = rep.ignored;
    r.summary = h->init_summary;
    r.details = h->init_details;
    s = c3_options_write(report, &r, sizeof r, "csal3d_ssl_model_init_from (the report)");
  }
  return s;
}
