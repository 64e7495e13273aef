/* Pretraining over a dataset (csal3d_ssl_model_train, declared in ssl_model.h): the case
 * order, the volume cache, the crops, the data options and checkpoints every N steps.
 * The step itself, the crop staging buffer and the checkpoint writer are the model's
 * (lib/model/ssl_internal.h). */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/comm.h"
#include "core/context.h"
#include "core/error.h"
#include "core/report.h"
#include "core/rng.h"
#include "core/threads.h"
#include "model/ssl_internal.h"
#include "pipeline/data_options.h"
#include "pipeline/dataset.h"
#include "pipeline/outputs.h"

/* The cases of an epoch in a seeded order. */
static void c3_epoch_order(uint64_t seed, uint64_t epoch, int64_t n, int64_t *perm) {
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_DATA, epoch, 0x55534c /* "SSL" */, 0);
  c3_rng_shuffle(&r, perm, (size_t)n);
}

typedef struct c3_vol_cache {
  csal3d_volume **v;
  int64_t n;
  int64_t bytes, limit;
} c3_vol_cache;

static csal3d_status c3_cached_volume(c3_vol_cache *c, c3_data_check *chk,
                                      const csal3d_dataset *ds, int64_t i,
                                      const csal3d_volume_load_options *load,
                                      csal3d_volume **out, int *owned) {
  *owned = 0;
  if (c->v[i]) {
    *out = c->v[i];
    return CSAL3D_OK;
  }
  csal3d_volume *v;
  C3_TRY(c3_data_load_case(chk, ds, (size_t)i, load, &v));
  int64_t sh[4];
  csal3d_volume_shape(v, sh);
  int64_t b = sh[0] * sh[1] * sh[2] * sh[3] * (int64_t)sizeof(float);
  if (c->bytes + b <= c->limit) {
    c->v[i] = v;
    c->bytes += b;
  } else {
    *owned = 1;
  }
  *out = v;
  return CSAL3D_OK;
}

/* Fills crop i of the batch of `step` from case idx. */
static csal3d_status c3_fill_crop(csal3d_ssl_model *h, c3_vol_cache *cache, c3_data_check *chk,
                                  const csal3d_dataset *ds, int64_t idx,
                                  const csal3d_volume_load_options *lo, int64_t step,
                                  int64_t i, float *dst, size_t per) {
  csal3d_volume *v = NULL, *crop = NULL;
  int owned = 0;
  csal3d_status s = c3_cached_volume(cache, chk, ds, idx, lo, &v, &owned);
  if (s == CSAL3D_OK)
    s = csal3d_volume_random_crop(v, h->o.crop_size, h->seed, (uint64_t)step, (uint64_t)i,
                                  NULL, &crop);
  if (s == CSAL3D_OK) {
    const float *data;
    csal3d_volume_data(crop, &data);
    memcpy(dst, data, per * sizeof(float));
  }
  csal3d_volume_free(crop);
  if (owned) csal3d_volume_free(v);
  if (s != CSAL3D_OK) {
    s = c3_error_prefix(s, "pretraining step %lld, case %lld (%s)", (long long)step,
                        (long long)idx, c3_dataset_id(ds, (size_t)idx));
  }
  return s;
}

/* The checks before any work (rank 0 checks the checkpoint it alone writes). */
static csal3d_status c3_train_prepare(csal3d_ssl_model *h, const csal3d_dataset *ds,
                                      const csal3d_volume_load_options *load,
                                      csal3d_volume_load_options *lo) {
  if (h->ckpt_path && c3_comm_rank(h->ctx) == 0) {
    /* before any work: a wrong path fails now, not after the steps */
    const char **in = NULL;
    size_t nin = 0;
    C3_TRY(c3_dataset_files(ds, NULL, &in, &nin));
    csal3d_status cs = c3_output_check(h->ckpt_path, CSAL3D_OUTPUT_FILE,
                                       "the checkpoint (checkpoint_path)", in, nin, 1);
    c3_free(in);
    C3_TRY(cs);
  }
  return c3_data_options_resolve(h, ds, load, "pretraining", h->ctx, lo);
}

/* With several ranks: whether every rank got through `s`; the first that did not is named
 * on the others (its own error stays with it). */
static csal3d_status c3_train_agree(csal3d_ssl_model *h, csal3d_status s, const char *when) {
  if (c3_comm_size(h->ctx) == 1) return s;
  char mine[C3_ERROR_MAX] = "";
  if (s != CSAL3D_OK) snprintf(mine, sizeof mine, "%s", csal3d_last_error());
  int first;
  C3_TRY(c3_comm_any_failed(h->ctx, s != CSAL3D_OK, &first, when));
  if (s != CSAL3D_OK) return c3_error(s, "%s", mine);
  if (first >= 0)
    return c3_error(CSAL3D_ERR_STATE, "pretraining stopped %s: rank %d failed (its messages "
                    "say why)", when, first);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_ssl_model_train(csal3d_ssl_model *h,
                                                const csal3d_dataset *ds,
                                                const csal3d_volume_load_options *load) {
  C3_CHECK_ARG(h && ds, "csal3d_ssl_model_train: NULL argument");
  size_t nc;
  C3_TRY(csal3d_dataset_size(ds, &nc));
  C3_CHECK_ARG(nc >= 1, "csal3d_ssl_model_train: the dataset has no cases");
  /* Data-parallel over the context's ranks: crop i of each batch is rank i mod size's. */
  const int size = c3_comm_size(h->ctx), rank = c3_comm_rank(h->ctx);
  csal3d_volume_load_options lo;
  C3_TRY(c3_train_agree(h, c3_train_prepare(h, ds, load, &lo), "before the first step"));
  C3_TRY(c3_ssl_sync(h));
  c3_data_check chk;
  c3_data_check_init(&chk, h, &lo, "pretraining", h->ctx);
  const csal3d_ssl_options *o = &h->o;
  const int64_t B = o->batch_size, N = (int64_t)nc;
  const int64_t mine = B / size + (rank < B % size); /* this rank's crops per step */
  const int64_t *cs = o->crop_size;
  const size_t per = (size_t)(o->in_channels * cs[0] * cs[1] * cs[2]);
  float *crops;
  C3_TRY(c3_ssl_crop_buffer(h, per * (size_t)(mine ? mine : 1), &crops));
  int64_t *perm = NULL, *items = NULL;
  c3_vol_cache cache = {NULL, N, 0, o->cache_bytes};
  C3_TRY(c3_alloc_array((size_t)N, sizeof(int64_t), "case order", (void **)&perm));
  csal3d_status s = c3_calloc_array((size_t)N, sizeof(csal3d_volume *), "volume cache",
                                    (void **)&cache.v);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)(mine ? mine : 1), sizeof *items, "batch items", (void **)&items);
  if (s != CSAL3D_OK) {
    c3_free(perm);
    c3_free(cache.v);
    return s;
  }
  int prev = c3_threads_enter(h->ctx->options.threads);
  int64_t epoch = -1;
  const int64_t start = h->opt->step;
  c3_log(h->ctx, CSAL3D_LOG_INFO, "pretraining: steps %lld..%lld on %lld cases%s",
         (long long)start, (long long)o->iterations, (long long)N,
         size > 1 ? " (data-parallel)" : "");
  if (size > 1)
    c3_log(h->ctx, CSAL3D_LOG_INFO, "rank %d of %d: %lld of the %lld crops of each step",
           rank, size, (long long)mine, (long long)B);
  int wrote_last = 0, recorded = 0;
  while (s == CSAL3D_OK && h->opt->step < o->iterations) {
    const int64_t step = h->opt->step;
    wrote_last = 0;
    /* this rank's crops; every draw keyed by the global step and item */
    csal3d_status prep = CSAL3D_OK;
    int64_t n = 0;
    for (int64_t i = 0; prep == CSAL3D_OK && i < B; i++) {
      int64_t g = step * B + i, e = g / N;
      if (e != epoch) {
        c3_epoch_order(h->seed, (uint64_t)e, N, perm);
        epoch = e;
      }
      if (i % size != rank) continue;
      prep = c3_fill_crop(h, &cache, &chk, ds, perm[g % N], &lo, step, i,
                          crops + (size_t)n * per, per);
      items[n++] = i;
    }
    if (prep == CSAL3D_OK) prep = c3_check_finite(crops, per * (size_t)n, "pretraining crops");
    if (size == 1 && prep != CSAL3D_OK) {
      s = prep;
      break;
    }
    s = c3_ssl_step_shared(h, crops, items, n, B, cs, prep);
    if (s != CSAL3D_OK) break;
    /* the model now carries what it was trained on (and its next checkpoint too) */
    if (!recorded) s = csal3d_ssl_model_set_data_options(h, &lo);
    recorded = 1;
    if (s == CSAL3D_OK) s = c3_ssl_data_add_shared(h, crops, per, n);
    if (s != CSAL3D_OK) break;
    c3_log(h->ctx, CSAL3D_LOG_DEBUG,
           "step %lld: loss %.6f (inpainting %.6f, rotation %.6f, consistency %.6f), "
           "lr %.3g, grad norm %.4g",
           (long long)step, h->last.loss, h->last.inpainting, h->last.rotation,
           h->last.consistency, h->last.lr, h->last.grad_norm);
    int64_t done = h->opt->step;
    if (h->ckpt_path && o->checkpoint_every > 0 && done % o->checkpoint_every == 0) {
      if (rank == 0) s = c3_ssl_checkpoint(h);
      wrote_last = 1;
    }
    if (s == CSAL3D_OK && o->on_step && o->on_step(o->on_step_user_data, &h->last, o->iterations))
      s = c3_error(CSAL3D_ERR_CANCELLED, "pretraining cancelled after step %lld",
                   (long long)step);
    if (s == CSAL3D_OK)
      s = c3_progress(h->ctx, "pretrain", (uint64_t)done, (uint64_t)o->iterations);
    if (size > 1) {
      /* a checkpoint that failed or a rank cancelled stops every rank after this step */
      float f[2] = {s == CSAL3D_ERR_CANCELLED, s != CSAL3D_OK && s != CSAL3D_ERR_CANCELLED};
      char msg[C3_ERROR_MAX] = "";
      if (s != CSAL3D_OK) snprintf(msg, sizeof msg, "%s", csal3d_last_error());
      char what[64];
      snprintf(what, sizeof what, "pretraining step %lld", (long long)step);
      csal3d_status cs2 = c3_comm_allreduce(h->ctx, f, 2, CSAL3D_COMM_SUM, what);
      if (cs2 != CSAL3D_OK) s = cs2;
      else if (s != CSAL3D_OK) s = c3_error(s, "%s", msg);
      else if (f[1] != 0)
        s = c3_error(CSAL3D_ERR_STATE, "pretraining stopped after step %lld: another rank "
                     "failed (its messages say why)", (long long)step);
      else if (f[0] != 0)
        s = c3_error(CSAL3D_ERR_CANCELLED, "pretraining cancelled after step %lld (by "
                     "another rank)", (long long)step);
    }
  }
  if (s == CSAL3D_OK && h->ckpt_path && !wrote_last && h->opt->step > start)
    s = c3_train_agree(h, rank == 0 ? c3_ssl_checkpoint(h) : CSAL3D_OK, "at the last checkpoint");
  c3_threads_leave(prev);
  c3_model_release_slots(h->m); /* the observations' workspaces: scoring needs one */
  for (int64_t i = 0; i < N; i++) csal3d_volume_free(cache.v[i]);
  c3_free(cache.v);
  c3_free(items);
  c3_free(perm);
  c3_data_check_clear(&chk);
  return s;
}
