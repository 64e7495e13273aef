/* csal3d_evaluate (include/csal3d/evaluate.h): the segmentation trainer on the U-Net of
 * lib/model/unet.c: patches with foreground oversampling, flips and intensity scaling,
 * CE + soft Dice, AdamW with the poly learning rate, checkpoints; then sliding-window
 * inference with Gaussian weights and Dice per label. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "core/rng.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "model/unet.h"
#include "pipeline/dataset.h"
#include "pipeline/evaluate.h"
#include "pipeline/outputs.h"

#define C3_SEG_TAG 0x5345474dULL /* "SEGM": the evaluation's draws */
#define C3_SEG_MAX_LABELS 63

CSAL3D_API csal3d_status csal3d_evaluate_options_init(csal3d_evaluate_options *o) {
  C3_CHECK_ARG(o, "csal3d_evaluate_options_init: options is NULL");
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->iterations = 250;
  o->batch_size = 2;
  o->stages = 5;
  for (int s = 0; s < 5; s++) o->widths[s] = 16 << s;
  o->learning_rate = 1e-3;
  o->weight_decay = 3e-5;
  o->checkpoint_every = 100;
  o->per_case = 1;
  return CSAL3D_OK;
}

csal3d_status c3_evaluate_options_check(const csal3d_evaluate_options *o) {
  C3_CHECK_ARG(o->iterations >= 1 && o->iterations <= 100000000,
               "set the option iterations to at least 1 (it is %lld)", (long long)o->iterations);
  C3_CHECK_ARG(o->batch_size >= 1 && o->batch_size <= 4096,
               "set the option batch_size to 1..4096 (it is %lld)", (long long)o->batch_size);
  C3_CHECK_ARG(o->stages >= 2 && o->stages <= CSAL3D_EVALUATE_MAX_STAGES,
               "set the option stages to 2..%d (it is %d)", CSAL3D_EVALUATE_MAX_STAGES, o->stages);
  for (int s = 0; s < o->stages; s++)
    C3_CHECK_ARG(o->widths[s] >= 1 && o->widths[s] <= 4096,
                 "set the option widths to %d values of 1..4096 (stage %d has %d)", o->stages, s,
                 o->widths[s]);
  int64_t mult = (int64_t)1 << (o->stages - 1);
  int zeros = 0;
  for (int a = 0; a < 3; a++) zeros += o->patch_size[a] == 0;
  C3_CHECK_ARG(zeros == 0 || zeros == 3, "set the option patch_size to three sides or none");
  for (int a = 0; a < 3 && zeros == 0; a++)
    C3_CHECK_ARG(o->patch_size[a] >= mult && o->patch_size[a] % mult == 0 &&
                     o->patch_size[a] <= 4096,
                 "set the option patch_size to multiples of %lld (2^(stages-1)); side %d is %lld",
                 (long long)mult, a, (long long)o->patch_size[a]);
  C3_CHECK_ARG(isfinite(o->learning_rate) && o->learning_rate > 0,
               "set the option learning_rate to a positive number");
  C3_CHECK_ARG(isfinite(o->weight_decay) && o->weight_decay >= 0,
               "set the option weight_decay to a number >= 0");
  C3_CHECK_ARG(o->labels >= 0 && o->labels <= C3_SEG_MAX_LABELS,
               "set the option labels to 0..%d (it is %d)", C3_SEG_MAX_LABELS, o->labels);
  C3_CHECK_ARG(o->checkpoint_every >= 0, "set the option checkpoint_every to 0 or more");
  C3_CHECK_ARG(o->inference_batch >= 0, "set the option inference_batch to 0 or more");
  C3_CHECK_ARG(o->normalization >= CSAL3D_EVALUATE_NORM_AUTO &&
                   o->normalization <= CSAL3D_EVALUATE_NORM_ZSCORE,
               "set the option normalization to auto, none, ct or zscore (it is %d)",
               (int)o->normalization);
  C3_CHECK_ARG(!o->output_csv || *o->output_csv, "the option output_csv is empty");
  C3_CHECK_ARG(!o->output_json || *o->output_json, "the option output_json is empty");
  C3_CHECK_ARG(!o->checkpoint || *o->checkpoint, "the option checkpoint is empty");
  return CSAL3D_OK;
}

/* ---- cases in memory ----------------------------------------------------------------------- */

typedef struct seg_case {
  int64_t dhw[3], vox;
  float *img;    /* [C, D, H, W] */
  uint8_t *lab;  /* [D, H, W] */
  int nfg;       /* labels present (foreground) */
  int fg_label[C3_SEG_MAX_LABELS];
  int64_t fg_start[C3_SEG_MAX_LABELS], fg_count[C3_SEG_MAX_LABELS];
  int64_t *fg;   /* foreground voxel indices grouped by label */
} seg_case;

static void seg_case_free(seg_case *c) {
  c3_free(c->img);
  c3_free(c->lab);
  c3_free(c->fg);
  memset(c, 0, sizeof *c);
}

/* Loads case i's image and label; *max_label receives its largest label. */
static csal3d_status load_case(const csal3d_dataset *ds, size_t i,
                               const csal3d_volume_load_options *lo, int64_t channels,
                               seg_case *c, int *max_label) {
  memset(c, 0, sizeof *c);
  int nimg = 0, has_label = 0;
  C3_TRY(csal3d_dataset_case_info(ds, i, &nimg, &has_label));
  if (!has_label)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "case %zu (%s) has no label: evaluation needs "
                    "labelled cases", i, c3_dataset_id(ds, i));
  csal3d_volume *img = NULL, *lab = NULL;
  csal3d_status s = csal3d_dataset_load_image(ds, i, lo, &img);
  if (s == CSAL3D_OK) s = csal3d_dataset_load_label(ds, i, img, lo, &lab);
  int64_t sh[4] = {0};
  if (s == CSAL3D_OK) s = csal3d_volume_shape(img, sh);
  if (s == CSAL3D_OK && sh[0] != channels)
    s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "case %zu (%s) has %lld channels, the first "
                 "training case %lld", i, c3_dataset_id(ds, i), (long long)sh[0],
                 (long long)channels);
  if (s == CSAL3D_OK) {
    for (int a = 0; a < 3; a++) c->dhw[a] = sh[a + 1];
    c->vox = sh[1] * sh[2] * sh[3];
    s = c3_alloc_array((size_t)(c->vox * sh[0]), sizeof(float), "case image", (void **)&c->img);
  }
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)c->vox, 1, "case label", (void **)&c->lab);
  const float *id = NULL, *ld = NULL;
  if (s == CSAL3D_OK) s = csal3d_volume_data(img, &id);
  if (s == CSAL3D_OK) s = csal3d_volume_data(lab, &ld);
  int64_t count[C3_SEG_MAX_LABELS + 1] = {0};
  int mx = 0;
  if (s == CSAL3D_OK) {
    memcpy(c->img, id, (size_t)(c->vox * sh[0]) * sizeof(float));
    for (int64_t v = 0; v < c->vox && s == CSAL3D_OK; v++) {
      float f = ld[v];
      if (f > C3_SEG_MAX_LABELS) {
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "case %zu (%s): label value %g (at most %d "
                     "labels are supported)", i, c3_dataset_id(ds, i), f, C3_SEG_MAX_LABELS);
        break;
      }
      int l = (int)f;
      c->lab[v] = (uint8_t)l;
      count[l]++;
      if (l > mx) mx = l;
    }
  }
  int64_t nfg = c->vox - count[0];
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)(nfg > 0 ? nfg : 1), sizeof(int64_t), "foreground voxels",
                       (void **)&c->fg);
  if (s == CSAL3D_OK) {
    int64_t off = 0;
    for (int l = 1; l <= mx; l++)
      if (count[l]) {
        c->fg_label[c->nfg] = l;
        c->fg_start[c->nfg] = off;
        c->fg_count[c->nfg] = 0;
        off += count[l];
        c->nfg++;
      }
    int slot[C3_SEG_MAX_LABELS + 1];
    for (int k = 0; k < c->nfg; k++) slot[c->fg_label[k]] = k;
    for (int64_t v = 0; v < c->vox; v++) {
      int l = c->lab[v];
      if (!l) continue;
      int k = slot[l];
      c->fg[c->fg_start[k] + c->fg_count[k]++] = v;
    }
  }
  csal3d_volume_free(img);
  csal3d_volume_free(lab);
  if (s != CSAL3D_OK) {
    seg_case_free(c);
    return c3_error_prefix(s, "evaluation, case %zu (%s)", i, c3_dataset_id(ds, i));
  }
  *max_label = mx;
  return CSAL3D_OK;
}

/* ---- intensity normalisation (nnU-Net's CTNormalization and ZScoreNormalization) ---- */

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

/* numpy.percentile (linear) of sorted v[0..n) */
static double percentile(const float *v, size_t n, double q) {
  double pos = q / 100.0 * (double)(n - 1);
  size_t i = (size_t)pos;
  double f = pos - (double)i;
  return i + 1 < n ? v[i] + f * (v[i + 1] - v[i]) : v[n - 1];
}

#define C3_NORM_SAMPLES 1000000

static int64_t fg_total(const seg_case *c) {
  return c->nfg ? c->fg_start[c->nfg - 1] + c->fg_count[c->nfg - 1] : 0;
}

static csal3d_status normalize_cases(csal3d_context *ctx, csal3d_evaluate_normalization mode,
                                     int64_t C, seg_case *tr, size_t n_train, seg_case *val,
                                     size_t n_val) {
  if (mode == CSAL3D_EVALUATE_NORM_NONE) return CSAL3D_OK;
  if (mode == CSAL3D_EVALUATE_NORM_ZSCORE) {
    for (size_t k = 0; k < n_train + n_val; k++) {
      seg_case *c = k < n_train ? &tr[k] : &val[k - n_train];
      for (int64_t ch = 0; ch < C; ch++) {
        float *x = c->img + ch * c->vox;
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < c->vox; i++) s += x[i];
        double m = s / (double)c->vox;
        for (int64_t i = 0; i < c->vox; i++) s2 += (x[i] - m) * (x[i] - m);
        double sd = sqrt(s2 / (double)c->vox);
        float inv = (float)(1.0 / (sd > 1e-8 ? sd : 1e-8));
        for (int64_t i = 0; i < c->vox; i++) x[i] = (float)(x[i] - m) * inv;
      }
    }
    return CSAL3D_OK;
  }
  /* CT: statistics of the training foreground, an evenly spaced sample of it */
  int64_t nfg = 0;
  for (size_t k = 0; k < n_train; k++) nfg += fg_total(&tr[k]);
  if (nfg == 0) return CSAL3D_OK; /* no foreground to take statistics from */
  int64_t stride = nfg / C3_NORM_SAMPLES + 1;
  size_t cap = (size_t)(nfg / stride + 1);
  float *v;
  C3_TRY(c3_alloc_array(cap, sizeof(float), "foreground intensities", (void **)&v));
  for (int64_t ch = 0; ch < C; ch++) {
    size_t n = 0;
    int64_t g = 0;
    for (size_t k = 0; k < n_train; k++) {
      const seg_case *c = &tr[k];
      for (int64_t j = 0, m = fg_total(c); j < m; j++, g++)
        if (g % stride == 0 && n < cap) v[n++] = c->img[ch * c->vox + c->fg[j]];
    }
    qsort(v, n, sizeof *v, cmp_float);
    double lo = percentile(v, n, 0.5), hi = percentile(v, n, 99.5), s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
      double x = v[i] < lo ? lo : v[i] > hi ? hi : v[i];
      s += x;
      s2 += x * x;
    }
    double m = s / (double)n, var = s2 / (double)n - m * m;
    double sd = sqrt(var > 0 ? var : 0);
    float inv = (float)(1.0 / (sd > 1e-8 ? sd : 1e-8));
    c3_log(ctx, CSAL3D_LOG_INFO, "evaluate: CT normalisation of channel %lld: clip [%.4g, %.4g], "
           "mean %.4g, sd %.4g (%zu foreground voxels of the training cases)", (long long)ch, lo,
           hi, m, sd, n);
    for (size_t k = 0; k < n_train + n_val; k++) {
      seg_case *c = k < n_train ? &tr[k] : &val[k - n_train];
      float *x = c->img + ch * c->vox;
      for (int64_t i = 0; i < c->vox; i++) {
        float y = x[i] < lo ? (float)lo : x[i] > hi ? (float)hi : x[i];
        x[i] = (float)(y - m) * inv;
      }
    }
  }
  c3_free(v);
  return CSAL3D_OK;
}

/* ---- the patches ----------------------------------------------------------------------------- */

typedef struct trainer {
  csal3d_context *ctx;
  c3_engine *e;
  const csal3d_evaluate_options *o;
  int64_t C, patch[3], pvox;
  int classes;
  seg_case *cases; /* training cases */
  size_t n;
  c3_unet *u;
} trainer;

/* Batch item `item` of `step`: image into x ([C, P]) and labels into y ([P]). */
static void make_patch(const trainer *t, int64_t step, int64_t item, float *x, int32_t *y) {
  const int64_t B = t->o->batch_size;
  c3_rng r;
  c3_rng_init(&r, t->o->seed, C3_RNG_CROP, (uint64_t)step, (uint64_t)item, C3_SEG_TAG);
  const seg_case *c = &t->cases[c3_rng_below(&r, t->n)];
  /* nnU-Net's oversampling: item >= round(B (1 - 0.33)) is forced to foreground */
  int forced = item >= (int64_t)llround((double)B * (1.0 - 0.33));
  int64_t lo[3];
  const int64_t *P = t->patch;
  int64_t centre = -1;
  if (forced && c->nfg > 0) {
    int k = (int)c3_rng_below(&r, (uint64_t)c->nfg);
    centre = c->fg[c->fg_start[k] + (int64_t)c3_rng_below(&r, (uint64_t)c->fg_count[k])];
  }
  int64_t cz[3] = {0};
  if (centre >= 0) {
    cz[2] = centre % c->dhw[2];
    cz[1] = (centre / c->dhw[2]) % c->dhw[1];
    cz[0] = centre / (c->dhw[1] * c->dhw[2]);
  }
  for (int a = 0; a < 3; a++) {
    int64_t n = c->dhw[a], lmin = n - P[a] < 0 ? n - P[a] : 0, lmax = n - P[a] > 0 ? n - P[a] : 0;
    int64_t v = c3_rng_range(&r, lmin, lmax); /* drawn always: one stream layout */
    if (centre >= 0) {
      v = cz[a] - P[a] / 2;
      v = v < lmin ? lmin : v > lmax ? lmax : v;
    }
    lo[a] = v;
  }
  int flip[3];
  for (int a = 0; a < 3; a++) flip[a] = c3_rng_uniform(&r) < 0.5;
  float scale = 1.0f;
  if (c3_rng_uniform(&r) < 0.15) scale = (float)(0.75 + 0.5 * c3_rng_uniform(&r));
  const int64_t D = c->dhw[0], H = c->dhw[1], W = c->dhw[2];
  for (int64_t z = 0; z < P[0]; z++)
    for (int64_t q = 0; q < P[1]; q++)
      for (int64_t w = 0; w < P[2]; w++) {
        int64_t sz = lo[0] + (flip[0] ? P[0] - 1 - z : z);
        int64_t sq = lo[1] + (flip[1] ? P[1] - 1 - q : q);
        int64_t sw = lo[2] + (flip[2] ? P[2] - 1 - w : w);
        int64_t di = (z * P[1] + q) * P[2] + w;
        int inside = sz >= 0 && sz < D && sq >= 0 && sq < H && sw >= 0 && sw < W;
        int64_t si = (sz * H + sq) * W + sw;
        y[di] = inside ? c->lab[si] : 0;
        for (int64_t ch = 0; ch < t->C; ch++)
          x[ch * t->pvox + di] = inside ? scale * c->img[ch * c->vox + si] : 0.0f;
      }
}

/* ---- checkpoints ------------------------------------------------------------------------------ */

/* What must match for a checkpoint to be continued: every option that shapes the run. */
static void fingerprint(const trainer *t, const csal3d_dataset *ds, const size_t *train,
                        size_t n_train, char *buf, size_t cap) {
  const csal3d_evaluate_options *o = t->o;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n_train; i++) {
    const char *id = c3_dataset_id(ds, train[i]);
    for (const char *p = id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
  }
  int n = snprintf(buf, cap, "iterations=%lld batch=%lld patch=%lld,%lld,%lld stages=%d widths=",
                   (long long)o->iterations, (long long)o->batch_size, (long long)t->patch[0],
                   (long long)t->patch[1], (long long)t->patch[2], o->stages);
  for (int s = 0; s < o->stages && n > 0 && (size_t)n < cap; s++)
    n += snprintf(buf + n, cap - (size_t)n, "%d,", o->widths[s]);
  if (n > 0 && (size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, " lr=%.17g wd=%.17g seed=%llu classes=%d train=%016llx",
             o->learning_rate, o->weight_decay, (unsigned long long)o->seed, t->classes,
             (unsigned long long)h);
}

static csal3d_status save_checkpoint(const trainer *t, const char *fp) {
  c3_st_writer *w;
  C3_TRY(c3_st_writer_create(&w));
  float *hold = NULL;
  csal3d_status s = c3_unet_add_to_writer(t->u, w, &hold);
  if (s == CSAL3D_OK) s = c3_st_writer_set_metadata(w, "format", "csal3d-segmenter");
  if (s == CSAL3D_OK) s = c3_st_writer_set_metadata(w, "fingerprint", fp);
  if (s == CSAL3D_OK) s = c3_st_writer_write_file(w, t->o->checkpoint);
  c3_free(hold);
  c3_st_writer_free(w);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "evaluation checkpoint %s", t->o->checkpoint);
  return CSAL3D_OK;
}

/* Continues from the checkpoint when it exists and matches (else starts afresh). */
static csal3d_status try_resume(trainer *t, const char *fp) {
  struct stat sb;
  if (!t->o->checkpoint || stat(t->o->checkpoint, &sb) != 0) return CSAL3D_OK;
  c3_safetensors *st;
  csal3d_status s = c3_st_open(t->o->checkpoint, &st);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "evaluation checkpoint");
  const char *f = c3_st_metadata(st, "format"), *p = c3_st_metadata(st, "fingerprint");
  if (!f || strcmp(f, "csal3d-segmenter") != 0) {
    c3_st_free(st);
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "the option checkpoint names %s, which is not an evaluation checkpoint: "
                    "refusing to replace it", t->o->checkpoint);
  }
  if (!p || strcmp(p, fp) != 0) {
    c3_log(t->ctx, CSAL3D_LOG_WARN, "evaluation: checkpoint %s is of another run; starting afresh",
           t->o->checkpoint);
    c3_st_free(st);
    return CSAL3D_OK;
  }
  s = c3_unet_load(t->u, st);
  c3_st_free(st);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "evaluation checkpoint");
  c3_log(t->ctx, CSAL3D_LOG_INFO, "evaluation: continuing from %s at iteration %lld",
         t->o->checkpoint, (long long)t->u->step);
  return CSAL3D_OK;
}

/* ---- training ------------------------------------------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static csal3d_status train(trainer *t, const char *fp) {
  c3_engine *e = t->e;
  const csal3d_evaluate_options *o = t->o;
  const int64_t B = o->batch_size, P = t->pvox, K = t->classes;
  float *xh = NULL, *x = NULL, *dl = NULL;
  int32_t *yh = NULL, *y = NULL;
  csal3d_status s = c3_alloc_array((size_t)(B * t->C * P), sizeof(float), "batch", (void **)&xh);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)(B * P), sizeof(int32_t), "batch labels", (void **)&yh);
  if (s == CSAL3D_OK) s = e->alloc(e, (size_t)(B * t->C * P) * 4, "batch", (void **)&x);
  if (s == CSAL3D_OK) s = e->alloc(e, (size_t)(B * P) * 4, "batch labels", (void **)&y);
  if (s == CSAL3D_OK) s = e->alloc(e, (size_t)(B * P * K) * 4, "logit gradients", (void **)&dl);
  const c3_segloss_desc ld = {B * P, K, 1, 1e-5f, 1.0f, 1.0f};
  while (s == CSAL3D_OK && t->u->step < o->iterations) {
    const int64_t step = t->u->step;
    for (int64_t i = 0; i < B; i++) make_patch(t, step, i, xh + i * t->C * P, yh + i * P);
    double loss = 0, ce = 0, dice = 0, norm = 0;
    double lr = o->learning_rate * pow(1.0 - (double)step / (double)o->iterations, 0.9);
    s = e->upload(e, x, xh, (size_t)(B * t->C * P) * 4);
    if (s == CSAL3D_OK) s = e->upload(e, y, yh, (size_t)(B * P) * 4);
    if (s == CSAL3D_OK) s = c3_unet_zero_grad(t->u);
    if (s == CSAL3D_OK) s = c3_unet_forward(t->u, x, B, t->patch, 1);
    if (s == CSAL3D_OK)
      s = e->seg_loss(e, &ld, c3_unet_logits(t->u), y, 1.0f, dl, 0, &loss, &ce, &dice);
    if (s == CSAL3D_OK) s = c3_unet_backward(t->u, x, dl, NULL);
    if (s == CSAL3D_OK) s = c3_unet_adamw_step(t->u, lr, o->weight_decay, 12.0, &norm);
    if (s != CSAL3D_OK) {
      s = c3_error_prefix(s, "evaluation, training iteration %lld", (long long)step);
      break;
    }
    c3_log(t->ctx, CSAL3D_LOG_DEBUG,
           "evaluate: iteration %lld loss %.5f (ce %.5f, soft dice %.4f) lr %.3g grad norm %.4g",
           (long long)step, loss, ce, dice, lr, norm);
    int64_t done = t->u->step;
    if (o->checkpoint && o->checkpoint_every > 0 && done % o->checkpoint_every == 0 &&
        done < o->iterations) {
      s = save_checkpoint(t, fp);
      if (s != CSAL3D_OK) break;
    }
    s = c3_progress(t->ctx, "evaluate-train", (uint64_t)done, (uint64_t)o->iterations);
    if (s == CSAL3D_ERR_CANCELLED && o->checkpoint) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", csal3d_last_error());
      csal3d_status cs = save_checkpoint(t, fp);
      if (cs != CSAL3D_OK) return cs;
      s = c3_error(CSAL3D_ERR_CANCELLED, "%s (checkpoint %s saved at iteration %lld: run "
                   "again to continue)", msg, o->checkpoint, (long long)done);
    }
  }
  e->free(e, x);
  e->free(e, y);
  e->free(e, dl);
  c3_free(xh);
  c3_free(yh);
  return s;
}

/* ---- inference ------------------------------------------------------------------------------------ */

/* Window starts along an axis of side m >= p (nnU-Net's compute_steps_for_sliding_window,
 * step size 0.5). Returns the count; starts[] has room for it. */
static int64_t window_starts(int64_t m, int64_t p, int64_t *starts) {
  if (m <= p) {
    if (starts) starts[0] = 0;
    return 1;
  }
  double target = 0.5 * (double)p;
  int64_t num = (int64_t)ceil((double)(m - p) / target) + 1;
  double actual = (double)(m - p) / (double)(num - 1);
  if (starts)
    for (int64_t i = 0; i < num; i++) starts[i] = (int64_t)llround(actual * (double)i);
  return num;
}

/* nnU-Net's Gaussian importance map: sigma = side / 8, centred at side // 2, scaled to
 * max 1, zeros replaced by the smallest non-zero value. */
static void gaussian_map(const int64_t p[3], float *g) {
  double *ax[3];
  for (int a = 0; a < 3; a++) {
    ax[a] = malloc(sizeof(double) * (size_t)p[a]);
    double sg = (double)p[a] / 8.0, c = (double)(p[a] / 2);
    for (int64_t i = 0; i < p[a]; i++) ax[a][i] = exp(-((double)i - c) * ((double)i - c) / (2 * sg * sg));
  }
  double mx = 0, mn = INFINITY;
  int64_t n = p[0] * p[1] * p[2];
  for (int64_t i = 0; i < n; i++) {
    double v = ax[0][i / (p[1] * p[2])] * ax[1][(i / p[2]) % p[1]] * ax[2][i % p[2]];
    g[i] = (float)v;
    if (v > mx) mx = v;
  }
  for (int64_t i = 0; i < n; i++) {
    g[i] = (float)(g[i] / mx);
    if (g[i] > 0 && g[i] < mn) mn = g[i];
  }
  for (int64_t i = 0; i < n; i++)
    if (g[i] == 0) g[i] = (float)mn;
  for (int a = 0; a < 3; a++) free(ax[a]);
}

/* Predicts case c and writes the Dice of labels 1..L into dice. */
static csal3d_status predict_case(trainer *t, const seg_case *c, const float *gmap, int L,
                                  double *dice) {
  c3_engine *e = t->e;
  const int64_t *p = t->patch, K = t->classes, P = t->pvox, C = t->C;
  int64_t m[3], nw[3];
  for (int a = 0; a < 3; a++) {
    m[a] = c->dhw[a] > p[a] ? c->dhw[a] : p[a];
    nw[a] = window_starts(m[a], p[a], NULL);
  }
  int64_t *st[3] = {NULL, NULL, NULL};
  const int64_t mv = m[0] * m[1] * m[2], total = nw[0] * nw[1] * nw[2];
  int64_t IB = t->o->inference_batch ? t->o->inference_batch : t->o->batch_size;
  if (IB > total) IB = total;
  float *acc = NULL, *wsum = NULL, *xh = NULL, *lh = NULL, *x = NULL;
  csal3d_status s = CSAL3D_OK;
  for (int a = 0; a < 3 && s == CSAL3D_OK; a++) {
    s = c3_alloc_array((size_t)nw[a], sizeof(int64_t), "window starts", (void **)&st[a]);
    if (s == CSAL3D_OK) window_starts(m[a], p[a], st[a]);
  }
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)(mv * K), sizeof(float), "logit sums", (void **)&acc);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)mv, sizeof(float), "weight sums", (void **)&wsum);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(IB * C * P), sizeof(float), "windows", (void **)&xh);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(IB * P * K), sizeof(float), "window logits", (void **)&lh);
  if (s == CSAL3D_OK) s = e->alloc(e, (size_t)(IB * C * P) * 4, "windows", (void **)&x);
  for (int64_t w0 = 0; w0 < total && s == CSAL3D_OK; w0 += IB) {
    int64_t nb = total - w0 < IB ? total - w0 : IB;
    for (int64_t b = 0; b < nb; b++) {
      int64_t wi = w0 + b;
      int64_t lo[3] = {st[0][wi / (nw[1] * nw[2])], st[1][(wi / nw[2]) % nw[1]], st[2][wi % nw[2]]};
      for (int64_t ch = 0; ch < C; ch++)
        for (int64_t z = 0; z < p[0]; z++)
          for (int64_t q = 0; q < p[1]; q++)
            for (int64_t v = 0; v < p[2]; v++) {
              int64_t sz = lo[0] + z, sq = lo[1] + q, sv = lo[2] + v;
              int in = sz < c->dhw[0] && sq < c->dhw[1] && sv < c->dhw[2];
              xh[(b * C + ch) * P + (z * p[1] + q) * p[2] + v] =
                  in ? c->img[ch * c->vox + (sz * c->dhw[1] + sq) * c->dhw[2] + sv] : 0.0f;
            }
    }
    s = e->upload(e, x, xh, (size_t)(nb * C * P) * 4);
    if (s == CSAL3D_OK) s = c3_unet_forward(t->u, x, nb, p, 0);
    if (s == CSAL3D_OK) s = e->download(e, lh, c3_unet_logits(t->u), (size_t)(nb * P * K) * 4);
    for (int64_t b = 0; b < nb && s == CSAL3D_OK; b++) {
      int64_t wi = w0 + b;
      int64_t lo[3] = {st[0][wi / (nw[1] * nw[2])], st[1][(wi / nw[2]) % nw[1]], st[2][wi % nw[2]]};
      for (int64_t z = 0; z < p[0]; z++)
        for (int64_t q = 0; q < p[1]; q++)
          for (int64_t v = 0; v < p[2]; v++) {
            int64_t pi = (z * p[1] + q) * p[2] + v;
            int64_t di = ((lo[0] + z) * m[1] + lo[1] + q) * m[2] + lo[2] + v;
            float g = gmap[pi];
            const float *l = lh + (b * P + pi) * K;
            float *o = acc + di * K;
            for (int64_t k = 0; k < K; k++) o[k] += g * l[k];
            wsum[di] += g;
          }
    }
  }
  if (s == CSAL3D_OK) {
    int64_t tp[C3_SEG_MAX_LABELS + 1] = {0}, np[C3_SEG_MAX_LABELS + 1] = {0},
            nr[C3_SEG_MAX_LABELS + 1] = {0};
    for (int64_t z = 0; z < c->dhw[0]; z++)
      for (int64_t q = 0; q < c->dhw[1]; q++)
        for (int64_t v = 0; v < c->dhw[2]; v++) {
          const float *o = acc + ((z * m[1] + q) * m[2] + v) * K;
          int best = 0;
          for (int k = 1; k < K; k++)
            if (o[k] > o[best]) best = k;
          int ref = c->lab[(z * c->dhw[1] + q) * c->dhw[2] + v];
          np[best]++;
          nr[ref]++;
          if (best == ref) tp[best]++;
        }
    for (int l = 1; l <= L; l++) {
      int64_t den = np[l] + nr[l];
      dice[l - 1] = den == 0 ? NAN : 2.0 * (double)tp[l] / (double)den;
    }
  }
  for (int a = 0; a < 3; a++) c3_free(st[a]);
  c3_free(acc);
  c3_free(wsum);
  c3_free(xh);
  c3_free(lh);
  e->free(e, x);
  return s;
}

/* ---- results ------------------------------------------------------------------------------------- */

void c3_evaluation_summarise(csal3d_evaluation *ev) {
  const int L = ev->labels;
  for (size_t i = 0; i < ev->n; i++) {
    double sum = 0;
    int k = 0;
    for (int l = 0; l < L; l++)
      if (!isnan(ev->dice[i * (size_t)L + (size_t)l])) {
        sum += ev->dice[i * (size_t)L + (size_t)l];
        k++;
      }
    ev->case_mean[i] = k ? sum / k : NAN;
  }
  double tot = 0;
  int kl = 0;
  for (int l = 0; l < L; l++) {
    double sum = 0;
    size_t k = 0;
    for (size_t i = 0; i < ev->n; i++)
      if (!isnan(ev->dice[i * (size_t)L + (size_t)l])) {
        sum += ev->dice[i * (size_t)L + (size_t)l];
        k++;
      }
    ev->label_mean[l] = k ? sum / (double)k : NAN;
    if (k) {
      tot += ev->label_mean[l];
      kl++;
    }
  }
  ev->mean = kl ? tot / kl : NAN;
}

CSAL3D_API void csal3d_evaluation_free(csal3d_evaluation *ev) {
  if (!ev) return;
  for (size_t i = 0; i < ev->n; i++) c3_free(ev->ids ? ev->ids[i] : NULL);
  for (size_t i = 0; i < ev->n_train; i++) c3_free(ev->train_ids ? ev->train_ids[i] : NULL);
  c3_free(ev->ids);
  c3_free(ev->train_ids);
  c3_free(ev->dice);
  c3_free(ev->case_mean);
  c3_free(ev->label_mean);
  c3_free(ev);
}

csal3d_status c3_evaluation_alloc(size_t n_val, size_t n_train, int L, csal3d_evaluation **out) {
  csal3d_evaluation *ev;
  C3_TRY(c3_calloc_array(1, sizeof *ev, "evaluation", (void **)&ev));
  ev->labels = L;
  csal3d_status s = c3_calloc_array(n_val ? n_val : 1, sizeof(char *), "ids", (void **)&ev->ids);
  if (s == CSAL3D_OK)
    s = c3_calloc_array(n_train ? n_train : 1, sizeof(char *), "ids", (void **)&ev->train_ids);
  if (s == CSAL3D_OK)
    s = c3_alloc_array(n_val * (size_t)L + 1, sizeof(double), "dice", (void **)&ev->dice);
  if (s == CSAL3D_OK) s = c3_alloc_array(n_val + 1, sizeof(double), "dice", (void **)&ev->case_mean);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)L + 1, sizeof(double), "dice", (void **)&ev->label_mean);
  if (s != CSAL3D_OK) {
    csal3d_evaluation_free(ev);
    return s;
  }
  snprintf(ev->strategy, sizeof ev->strategy, "given");
  ev->budget = (int64_t)n_train;
  *out = ev;
  return CSAL3D_OK;
}

/* A run's results for these cases, the ids filled in (ev->n and ev->n_train count them). */
static csal3d_status evaluation_new(const csal3d_dataset *ds, const size_t *train, size_t n_train,
                                    const size_t *val, size_t n_val, int L,
                                    csal3d_evaluation **out) {
  csal3d_evaluation *ev;
  C3_TRY(c3_evaluation_alloc(n_val, n_train, L, &ev));
  csal3d_status s = CSAL3D_OK;
  for (size_t i = 0; i < n_val && s == CSAL3D_OK; i++, ev->n++)
    if (!(ev->ids[i] = c3_strdup(c3_dataset_id(ds, val[i])))) s = CSAL3D_ERR_OUT_OF_MEMORY;
  for (size_t i = 0; i < n_train && s == CSAL3D_OK; i++, ev->n_train++)
    if (!(ev->train_ids[i] = c3_strdup(c3_dataset_id(ds, train[i])))) s = CSAL3D_ERR_OUT_OF_MEMORY;
  if (s != CSAL3D_OK) {
    csal3d_evaluation_free(ev);
    return s;
  }
  *out = ev;
  return CSAL3D_OK;
}

/* ---- one run ----------------------------------------------------------------------------------- */

static int qs_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

csal3d_status c3_evaluate_run(csal3d_context *ctx, const csal3d_dataset *ds, const size_t *tr,
                              size_t n_train, const size_t *val, size_t n_val,
                              const csal3d_evaluate_options *o, csal3d_evaluation **out) {
  *out = NULL;
  trainer t;
  memset(&t, 0, sizeof t);
  t.ctx = ctx;
  t.e = ctx->engine;
  t.o = o;
  t.n = n_train;
  C3_TRY(c3_unet_check_engine(t.e, 1));
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  if (o->load) C3_TRY(c3_options_read(&lo, sizeof lo, o->load, "csal3d_volume_load_options"));
  seg_case *vc = NULL;
  float *gmap = NULL;
  csal3d_evaluation *ev = NULL;
  csal3d_status s = c3_calloc_array(n_train, sizeof(seg_case), "training cases", (void **)&t.cases);
  if (s == CSAL3D_OK) s = c3_calloc_array(n_val, sizeof(seg_case), "validation cases", (void **)&vc);
  if (s != CSAL3D_OK) {
    c3_free(t.cases);
    return s;
  }
  int prev = c3_threads_enter(ctx->options.threads);
  int maxl = 0;
  /* channels of the first training case */
  {
    csal3d_volume *v0 = NULL;
    s = csal3d_dataset_load_image(ds, tr[0], &lo, &v0);
    int64_t sh[4] = {0};
    if (s == CSAL3D_OK) s = csal3d_volume_shape(v0, sh);
    t.C = sh[0];
    csal3d_volume_free(v0);
  }
  c3_log(ctx, CSAL3D_LOG_INFO, "evaluate: loading %zu training and %zu validation cases",
         n_train, n_val);
  for (size_t i = 0; i < n_train && s == CSAL3D_OK; i++) {
    int ml = 0;
    s = load_case(ds, tr[i], &lo, t.C, &t.cases[i], &ml);
    if (ml > maxl) maxl = ml;
  }
  for (size_t i = 0; i < n_val && s == CSAL3D_OK; i++) {
    int ml = 0;
    s = load_case(ds, val[i], &lo, t.C, &vc[i], &ml);
    if (ml > maxl) maxl = ml;
    if (s == CSAL3D_OK && o->labels > 0 && ml > o->labels)
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "validation case %s has label %d, above the "
                   "option labels (%d)", c3_dataset_id(ds, val[i]), ml, o->labels);
  }
  for (size_t i = 0; i < n_train && s == CSAL3D_OK && o->labels > 0; i++)
    for (int k = 0; k < t.cases[i].nfg && s == CSAL3D_OK; k++)
      if (t.cases[i].fg_label[k] > o->labels)
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "training case %s has label %d, above the "
                     "option labels (%d)", c3_dataset_id(ds, tr[i]), t.cases[i].fg_label[k],
                     o->labels);
  if (s == CSAL3D_OK) {
    csal3d_evaluate_normalization nm = o->normalization;
    if (nm == CSAL3D_EVALUATE_NORM_AUTO) {
      csal3d_modality mod = lo.modality;
      if (mod == CSAL3D_MODALITY_AUTO) csal3d_dataset_modality(ds, &mod);
      nm = mod == CSAL3D_MODALITY_CT ? CSAL3D_EVALUATE_NORM_CT : CSAL3D_EVALUATE_NORM_ZSCORE;
    }
    s = normalize_cases(ctx, nm, t.C, t.cases, n_train, vc, n_val);
  }
  const int L = o->labels > 0 ? o->labels : maxl;
  if (s == CSAL3D_OK && L < 1)
    s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "evaluation: the labels hold no foreground "
                 "(every voxel is 0): nothing to segment");
  t.classes = L + 1;
  /* the patch: given, or the median training shape rounded up to 2^(stages-1), <= 128 */
  if (s == CSAL3D_OK) {
    int64_t mult = (int64_t)1 << (o->stages - 1);
    for (int a = 0; a < 3; a++) {
      if (o->patch_size[a]) {
        t.patch[a] = o->patch_size[a];
        continue;
      }
      int64_t *sides = malloc(sizeof(int64_t) * n_train);
      if (!sides) {
        s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "patch sides");
        break;
      }
      for (size_t i = 0; i < n_train; i++) sides[i] = t.cases[i].dhw[a];
      qsort(sides, n_train, sizeof *sides, qs_i64);
      int64_t med = sides[n_train / 2];
      free(sides);
      int64_t pside = (med + mult - 1) / mult * mult;
      int64_t cap = 128 / mult * mult > mult ? 128 / mult * mult : mult;
      t.patch[a] = pside > cap ? cap : pside;
    }
    t.pvox = t.patch[0] * t.patch[1] * t.patch[2];
  }
  char fp[1024] = "";
  if (s == CSAL3D_OK) {
    c3_unet_config uc;
    c3_unet_config_default(&uc, (int)t.C, t.classes);
    uc.stages = o->stages;
    for (int k = 0; k < o->stages; k++) uc.widths[k] = o->widths[k];
    s = c3_unet_create(t.e, &uc, &t.u);
    if (s == CSAL3D_OK) s = c3_unet_init(t.u, o->seed);
    fingerprint(&t, ds, tr, n_train, fp, sizeof fp);
    if (s == CSAL3D_OK) s = try_resume(&t, fp);
  }
  double t0 = now_s();
  if (s == CSAL3D_OK) {
    c3_log(ctx, CSAL3D_LOG_INFO,
           "evaluate: training a U-Net (%d stages, %d..%d channels, %d classes) on %zu cases: "
           "%lld iterations of %lld patches of %lldx%lldx%lld",
           o->stages, o->widths[0], o->widths[o->stages - 1], t.classes, n_train,
           (long long)o->iterations, (long long)o->batch_size, (long long)t.patch[0],
           (long long)t.patch[1], (long long)t.patch[2]);
    s = train(&t, fp);
  }
  double train_s = now_s() - t0;
  if (s == CSAL3D_OK) s = evaluation_new(ds, tr, n_train, val, n_val, L, &ev);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)t.pvox, sizeof(float), "Gaussian map", (void **)&gmap);
  if (s == CSAL3D_OK) gaussian_map(t.patch, gmap);
  for (size_t i = 0; i < n_val && s == CSAL3D_OK; i++) {
    s = predict_case(&t, &vc[i], gmap, L, ev->dice + i * (size_t)L);
    if (s != CSAL3D_OK) s = c3_error_prefix(s, "evaluation, case %s", ev->ids[i]);
    if (s == CSAL3D_OK) s = c3_progress(ctx, "evaluate-infer", i + 1, n_val);
  }
  if (s == CSAL3D_OK) {
    c3_evaluation_summarise(ev);
    ev->train_seed = o->seed;
    ev->iterations = o->iterations;
    ev->train_seconds = train_s;
    c3_log(ctx, CSAL3D_LOG_INFO, "evaluate: mean Dice %.4f on %zu validation cases (training "
           "%.1f s)", ev->mean, n_val, train_s);
    if (o->checkpoint) unlink(o->checkpoint); /* the run is done */
  }
  c3_threads_leave(prev);
  for (size_t i = 0; i < n_train; i++) seg_case_free(&t.cases[i]);
  for (size_t i = 0; i < n_val; i++) seg_case_free(&vc[i]);
  c3_free(t.cases);
  c3_free(vc);
  c3_free(gmap);
  c3_unet_free(t.u);
  if (s != CSAL3D_OK) {
    csal3d_evaluation_free(ev);
    return s;
  }
  *out = ev;
  return CSAL3D_OK;
}

/* ---- indices ------------------------------------------------------------------------------------ */

csal3d_status c3_evaluate_validation(const csal3d_dataset *ds, const size_t *train, size_t n_train,
                                     const size_t *val, size_t n_val,
                                     const char *const *exclude_ids, size_t n_exclude,
                                     size_t **out, size_t *n_out) {
  size_t N = c3_dataset_n(ds);
  unsigned char *mark;
  C3_TRY(c3_calloc_array(N ? N : 1, 1, "case marks", (void **)&mark));
  csal3d_status s = CSAL3D_OK;
  for (size_t i = 0; i < n_train && s == CSAL3D_OK; i++) {
    if (train[i] >= N)
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "training case index %zu: the dataset has %zu "
                   "cases", train[i], N);
    else if (mark[train[i]])
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "training case %s is listed twice",
                   c3_dataset_id(ds, train[i]));
    else
      mark[train[i]] = 1;
  }
  for (size_t j = 0; j < n_exclude && s == CSAL3D_OK; j++)
    for (size_t i = 0; i < N; i++)
      if (!mark[i] && strcmp(c3_dataset_id(ds, i), exclude_ids[j]) == 0) mark[i] = 2;
  size_t *v = NULL, k = 0;
  if (s == CSAL3D_OK) s = c3_alloc_array(N ? N : 1, sizeof(size_t), "validation cases", (void **)&v);
  if (s == CSAL3D_OK && val) {
    for (size_t i = 0; i < n_val && s == CSAL3D_OK; i++) {
      if (val[i] >= N)
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "validation case index %zu: the dataset has "
                     "%zu cases", val[i], N);
      else if (mark[val[i]] == 1)
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "case %s is both a training and a validation "
                     "case", c3_dataset_id(ds, val[i]));
      else if (mark[val[i]] == 3)
        s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "validation case %s is listed twice",
                     c3_dataset_id(ds, val[i]));
      else {
        mark[val[i]] = 3;
        v[k++] = val[i];
      }
    }
  } else if (s == CSAL3D_OK) {
    for (size_t i = 0; i < N; i++) {
      int has = 0;
      if (mark[i] || csal3d_dataset_case_info(ds, i, NULL, &has) != CSAL3D_OK || !has) continue;
      v[k++] = i;
    }
    if (k == 0)
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "no validation case: every labelled case of the "
                   "dataset is in the training selection (or the pool)");
  }
  c3_free(mark);
  if (s != CSAL3D_OK) {
    c3_free(v);
    return s;
  }
  *out = v;
  *n_out = k;
  return CSAL3D_OK;
}

csal3d_status c3_evaluate_check_outputs(const csal3d_dataset *ds,
                                        const csal3d_evaluate_options *o) {
  const char **in = NULL;
  size_t nin = 0;
  C3_TRY(c3_dataset_files(ds, NULL, &in, &nin));
  csal3d_status s = CSAL3D_OK;
  if (o->output_csv)
    s = c3_output_check(o->output_csv, CSAL3D_OUTPUT_FILE, "the results CSV (output_csv)", in,
                        nin, o->overwrite);
  if (s == CSAL3D_OK && o->output_json)
    s = c3_output_check(o->output_json, CSAL3D_OUTPUT_FILE, "the results JSON (output_json)",
                        in, nin, o->overwrite);
  if (s == CSAL3D_OK && o->checkpoint)
    s = c3_output_check(o->checkpoint, CSAL3D_OUTPUT_FILE, "the checkpoint (checkpoint)", in,
                        nin, 1);
  c3_free(in);
  return s;
}

CSAL3D_API csal3d_status csal3d_evaluate(csal3d_context *ctx, const csal3d_dataset *ds,
                                         const size_t *train, size_t n_train,
                                         const size_t *validation, size_t n_validation,
                                         const csal3d_evaluate_options *options,
                                         csal3d_evaluation **out) {
  if (out) *out = NULL;
  C3_CHECK_ARG(ctx && ds && train, "csal3d_evaluate: NULL argument");
  C3_CHECK_ARG(n_train >= 1, "csal3d_evaluate: no training case");
  C3_CHECK_ARG(validation || n_validation == 0,
               "csal3d_evaluate: n_validation is %zu but validation is NULL", n_validation);
  csal3d_evaluate_options o;
  csal3d_evaluate_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_evaluate_options"));
  C3_TRY(c3_evaluate_options_check(&o));
  C3_TRY(c3_unet_check_engine(ctx->engine, 1));
  size_t *val, nv;
  C3_TRY(c3_evaluate_validation(ds, train, n_train, validation, n_validation, NULL, 0, &val, &nv));
  csal3d_status s = c3_evaluate_check_outputs(ds, &o);
  csal3d_evaluation *ev = NULL;
  if (s == CSAL3D_OK) s = c3_evaluate_run(ctx, ds, train, n_train, val, nv, &o, &ev);
  c3_free(val);
  if (s == CSAL3D_OK && (o.output_csv || o.output_json)) {
    const csal3d_evaluation *runs[1] = {ev};
    json_t *settings = c3_evaluate_settings(&o, (const char *const *)ev->ids, ev->n, NULL, NULL);
    s = settings ? c3_evaluation_write(runs, 1, o.per_case, o.output_csv, o.output_json, settings)
                 : c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "evaluation settings");
    json_decref(settings);
  }
  if (s != CSAL3D_OK || !out) {
    csal3d_evaluation_free(ev);
    return s;
  }
  *out = ev;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_evaluation_size(const csal3d_evaluation *ev, size_t *cases,
                                                int *labels) {
  C3_CHECK_ARG(ev, "csal3d_evaluation_size: NULL evaluation");
  if (cases) *cases = ev->n;
  if (labels) *labels = ev->labels;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_evaluation_case(const csal3d_evaluation *ev, size_t index,
                                                char *id, size_t capacity, double *dice,
                                                double *mean_dice) {
  C3_CHECK_ARG(ev, "csal3d_evaluation_case: NULL evaluation");
  C3_CHECK_ARG(index < ev->n, "csal3d_evaluation_case: index %zu of %zu cases", index, ev->n);
  if (id && capacity > 0) {
    size_t n = strlen(ev->ids[index]) + 1;
    if (n > capacity)
      return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL, "csal3d_evaluation_case: the id needs %zu "
                      "bytes", n);
    memcpy(id, ev->ids[index], n);
  }
  if (dice) memcpy(dice, ev->dice + index * (size_t)ev->labels, sizeof(double) * (size_t)ev->labels);
  if (mean_dice) *mean_dice = ev->case_mean[index];
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_evaluation_mean(const csal3d_evaluation *ev, double *dice,
                                                double *mean_dice) {
  C3_CHECK_ARG(ev, "csal3d_evaluation_mean: NULL evaluation");
  if (dice) memcpy(dice, ev->label_mean, sizeof(double) * (size_t)ev->labels);
  if (mean_dice) *mean_dice = ev->mean;
  return CSAL3D_OK;
}
