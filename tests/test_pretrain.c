/* Pretraining over a dataset and the data options a model carries (lib/pipeline/pretrain.c,
 * lib/pipeline/data_options.c, lib/model/ssl_data.c): the modality from dataset.json by
 * default, the options recorded in checkpoints and kept by a resumed run, contradicting
 * modalities and channel counts refused with the option named, overrides and intensity
 * ranges that do not fit the modality reported through the log, iterations below the
 * step refused. Tiny models (embed_dim 12, 32^3 crops) on tiny NIfTI files and the
 * phantom. */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "csal3d/csal3d.h"
#include "model/ssl_internal.h"
#include "pipeline/data_options.h"
#include "test_omp_env.h"

/* ---- helpers ---- */

typedef struct logbuf {
  int n;
  int level[64];
  char msg[64][600];
} logbuf;

static void log_fn(void *user, csal3d_log_level level, const char *message) {
  logbuf *b = user;
  if (b->n >= 64) return;
  b->level[b->n] = (int)level;
  snprintf(b->msg[b->n], sizeof b->msg[b->n], "%s", message);
  b->n++;
}

/* The number of messages at `level` that contain every one of the needles (NULL-ended). */
static int log_count(const logbuf *b, csal3d_log_level level, const char *needle,
                     const char *needle2) {
  int c = 0;
  for (int i = 0; i < b->n; i++)
    if (b->level[i] == (int)level && (!needle || strstr(b->msg[i], needle)) &&
        (!needle2 || strstr(b->msg[i], needle2)))
      c++;
  return c;
}

static void log_print(const logbuf *b, const char *what) {
  for (int i = 0; i < b->n; i++)
    if (b->level[i] <= CSAL3D_LOG_WARN) printf("%s: log %d: %s\n", what, b->level[i], b->msg[i]);
}

static csal3d_context *make_ctx(logbuf *b) {
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.seed = 3;
  if (b) {
    memset(b, 0, sizeof *b);
    co.log = log_fn;
    co.log_user_data = b;
  }
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  return ctx;
}

static void small_options(csal3d_ssl_options *o) {
  csal3d_ssl_options_init(o);
  o->embed_dim = 12;
  o->crop_size[0] = o->crop_size[1] = o->crop_size[2] = 32;
  o->batch_size = 1;
  o->iterations = 1;
  o->warmup_steps = 0;
  o->lr = 1e-3;
}

static void make_tmp(char *dir, size_t n) {
  snprintf(dir, n, "/tmp/csal3d_pretrain_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

/* The kinds of synthetic images. */
enum { RAW_MRI, ZSCORED_MRI, CT_HU };

/* Values of image kind `kind` on a grid: a smooth blob plus noise. RAW_MRI: about
 * 100..900 (MRI intensities); ZSCORED_MRI: mean 0, std 1; CT_HU: air -1000 outside an
 * ellipsoid body of soft tissue (about 40 HU) with a bone core (700 HU). */
static float *make_values(int kind, int64_t channels, const int64_t d[3], uint64_t seed,
                          size_t *count) {
  size_t vox = (size_t)(d[0] * d[1] * d[2]), n = vox * (size_t)channels;
  float *x = malloc(n * sizeof *x);
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_TEST, 11, 0, 0);
  for (int64_t c = 0; c < channels; c++)
    for (int64_t i = 0; i < d[0]; i++)
      for (int64_t j = 0; j < d[1]; j++)
        for (int64_t k = 0; k < d[2]; k++) {
          double a = (double)i / (double)d[0] - 0.5, b = (double)j / (double)d[1] - 0.5,
                 e = (double)k / (double)d[2] - 0.5, r2 = a * a + b * b + e * e;
          double u = c3_rng_uniform(&r), v;
          if (kind == RAW_MRI) v = 100 + 600 * exp(-6 * r2) + 200 * u + 50 * (double)c;
          else if (kind == ZSCORED_MRI) v = 2.5 * exp(-6 * r2) - 1.0 + (u - 0.5);
          else v = r2 > 0.16 ? -1000 + 20 * u : r2 < 0.02 ? 700 + 50 * u : 40 + 30 * u;
          x[(size_t)c * vox + (size_t)((i * d[1] + j) * d[2] + k)] = (float)v;
        }
  if (count) *count = n;
  return x;
}

static void write_image(const char *path, int kind, int64_t channels, uint64_t seed) {
  const int64_t d[3] = {36 + (int64_t)seed % 5, 34, 40};
  float *x = make_values(kind, channels, d, seed, NULL);
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_create(channels, d, x, NULL, &v), CSAL3D_OK);
  ck_assert_msg(csal3d_volume_save(v, path, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  csal3d_volume_free(v);
  free(x);
}

/* A dataset of `n` images of `kind` in dir: a decathlon dataset.json stating `modality`
 * ("MRI", "CT"), or with modality NULL a text file of paths (no modality stated).
 * Returns the path to open. */
static void make_dataset(const char *dir, int kind, int64_t channels, const char *modality,
                         int n, char *open_path, size_t cap) {
  char p[512], list[4096] = "";
  snprintf(p, sizeof p, "%s/imagesTr", dir);
  ck_assert_int_eq(mkdir(p, 0755), 0);
  for (int i = 0; i < n; i++) {
    snprintf(p, sizeof p, "%s/imagesTr/case_%d.nii.gz", dir, i);
    write_image(p, kind, channels, (uint64_t)i + 1);
    size_t len = strlen(list);
    if (modality)
      snprintf(list + len, sizeof list - len, "%s{\"image\": \"./imagesTr/case_%d.nii.gz\"}",
               i ? ", " : "", i);
    else
      snprintf(list + len, sizeof list - len, "imagesTr/case_%d.nii.gz\n", i);
  }
  if (modality) {
    char json[4600];
    snprintf(json, sizeof json, "{\"name\": \"t\", \"modality\": {\"0\": \"%s\"}, "
             "\"training\": [%s]}\n", modality, list);
    snprintf(open_path, cap, "%s/dataset.json", dir);
    write_text(open_path, json);
  } else {
    snprintf(open_path, cap, "%s/cases.txt", dir);
    write_text(open_path, list);
  }
}

static csal3d_dataset *open_dataset(const char *path) {
  csal3d_dataset *ds;
  ck_assert_msg(csal3d_dataset_open(path, NULL, &ds) == CSAL3D_OK, "%s", csal3d_last_error());
  return ds;
}

static csal3d_dataset *phantom(const char *dir) {
  csal3d_phantom_options po;
  csal3d_phantom_options_init(&po);
  po.cases = 2;
  po.size = 40;
  po.slices = 24;
  po.seed = 2;
  ck_assert_int_eq(csal3d_phantom_generate(dir, &po, NULL), CSAL3D_OK);
  return open_dataset(dir);
}

static int first_loss_step(csal3d_ssl_model *m, const csal3d_dataset *ds,
                           const csal3d_volume_load_options *lo, double *loss) {
  csal3d_status s = csal3d_ssl_model_train(m, ds, lo);
  if (s != CSAL3D_OK) return (int)s;
  csal3d_ssl_losses l = {.struct_size = sizeof l};
  ck_assert_int_eq(csal3d_ssl_model_last_losses(m, &l), CSAL3D_OK);
  *loss = l.loss;
  return 0;
}

static void data_options(const csal3d_ssl_model *m, csal3d_volume_load_options *o,
                         int *known) {
  csal3d_volume_load_options_init(o);
  ck_assert_int_eq(csal3d_ssl_model_data_options(m, o, known), CSAL3D_OK);
}

/* ---- tests ---- */

/* The checkpoint keeps the data options and the statistics; a checkpoint without them
 * (an older one) loads with nothing known; AUTO is refused; NULL forgets. */
START_TEST(data_options_round_trip_through_a_checkpoint) {
  char dir[64], ck[256], ck0[256];
  make_tmp(dir, sizeof dir);
  snprintf(ck, sizeof ck, "%s/m.safetensors", dir);
  snprintf(ck0, sizeof ck0, "%s/m0.safetensors", dir);
  csal3d_context *ctx = make_ctx(NULL);
  csal3d_ssl_options so;
  small_options(&so);
  csal3d_ssl_model *m;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &m), CSAL3D_OK);
  csal3d_volume_load_options o;
  int known = -1;
  data_options(m, &o, &known);
  ck_assert_int_eq(known, 0);
  ck_assert_int_eq(o.modality, CSAL3D_MODALITY_AUTO);
  ck_assert_int_eq(o.channel, CSAL3D_CHANNEL_NONE);
  csal3d_intensity_stats st = {.struct_size = 0};
  ck_assert_int_eq(csal3d_ssl_model_intensity_stats(m, &st), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "struct_size"));
  st.struct_size = sizeof st;
  ck_assert_int_eq(csal3d_ssl_model_intensity_stats(m, &st), CSAL3D_OK);
  ck_assert_int_eq(st.crops, 0);
  ck_assert_int_eq(csal3d_ssl_model_save(m, ck0), CSAL3D_OK);
  /* set, with statistics of two crops */
  o.modality = CSAL3D_MODALITY_AUTO;
  ck_assert_int_eq(csal3d_ssl_model_set_data_options(m, &o), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "modality"));
  o.modality = CSAL3D_MODALITY_MRI;
  o.channel = CSAL3D_CHANNEL_ALL;
  o.spacing[0] = 1.5, o.spacing[1] = 0.7, o.spacing[2] = 2;
  o.spacing[1] = -1;
  ck_assert_int_eq(csal3d_ssl_model_set_data_options(m, &o), CSAL3D_ERR_INVALID_ARGUMENT);
  o.spacing[1] = 0.1 + 0.2; /* not exact in decimal: the text must round-trip */
  ck_assert_int_eq(csal3d_ssl_model_set_data_options(m, &o), CSAL3D_OK);
  const float crops[6] = {0, 0.25f, 0.5f, 1, 0.75f, 0.5f};
  c3_ssl_data_add_crops(m, crops, 3, 1);
  c3_ssl_data_add_crops(m, crops + 3, 3, 1);
  ck_assert_int_eq(csal3d_ssl_model_intensity_stats(m, &st), CSAL3D_OK);
  ck_assert_int_eq(st.crops, 2);
  ck_assert_int_eq(st.voxels, 6);
  ck_assert_double_eq_tol(st.mean, 0.5, 1e-12);
  ck_assert_double_eq_tol(st.std, sqrt(0.3125 / 3.0), 1e-12); /* population std */
  ck_assert(st.min == 0 && st.max == 1);
  ck_assert_int_eq(csal3d_ssl_model_save(m, ck), CSAL3D_OK);
  csal3d_ssl_model *b;
  ck_assert_msg(csal3d_ssl_model_load(ctx, ck, &b) == CSAL3D_OK, "%s", csal3d_last_error());
  csal3d_volume_load_options ob;
  data_options(b, &ob, &known);
  ck_assert_int_eq(known, CSAL3D_DATA_KNOWN_MODALITY | CSAL3D_DATA_KNOWN_CHANNEL |
                              CSAL3D_DATA_KNOWN_SPACING);
  ck_assert_int_eq(ob.modality, CSAL3D_MODALITY_MRI);
  ck_assert_int_eq(ob.channel, CSAL3D_CHANNEL_ALL);
  ck_assert_int_eq(memcmp(ob.spacing, o.spacing, sizeof o.spacing), 0);
  csal3d_intensity_stats sb = {.struct_size = sizeof sb};
  ck_assert_int_eq(csal3d_ssl_model_intensity_stats(b, &sb), CSAL3D_OK);
  ck_assert_int_eq(sb.crops, 2);
  ck_assert_int_eq(sb.voxels, 6);
  ck_assert(sb.mean == st.mean && sb.min == 0 && sb.max == 1);
  ck_assert_double_eq_tol(sb.std, st.std, 1e-15);
  /* channel index, native spacing along two axes (-0 is 0), CT */
  o.modality = CSAL3D_MODALITY_CT;
  o.channel = 2;
  o.spacing[0] = 2;
  o.spacing[1] = -0.0;
  o.spacing[2] = 0;
  ck_assert_int_eq(csal3d_ssl_model_set_data_options(b, &o), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_save(b, ck), CSAL3D_OK);
  csal3d_ssl_model_free(b);
  ck_assert_int_eq(csal3d_ssl_model_load(ctx, ck, &b), CSAL3D_OK);
  data_options(b, &ob, &known);
  ck_assert_int_eq(known, 7);
  ck_assert_int_eq(ob.modality, CSAL3D_MODALITY_CT);
  ck_assert_int_eq(ob.channel, 2);
  ck_assert(ob.spacing[0] == 2 && ob.spacing[1] == 0 && ob.spacing[2] == 0);
  ck_assert(!signbit(ob.spacing[1]));
  /* a smaller (older) struct gets the first members only */
  csal3d_volume_load_options small;
  memset(&small, 0x5a, sizeof small);
  small.struct_size = offsetof(csal3d_volume_load_options, spacing);
  ck_assert_int_eq(csal3d_ssl_model_data_options(b, &small, NULL), CSAL3D_OK);
  ck_assert_int_eq(small.modality, CSAL3D_MODALITY_CT);
  unsigned char pat[8];
  memset(pat, 0x5a, sizeof pat);
  ck_assert_int_eq(memcmp(&small.spacing, pat, 8), 0);
  /* NULL forgets */
  ck_assert_int_eq(csal3d_ssl_model_set_data_options(b, NULL), CSAL3D_OK);
  data_options(b, &ob, &known);
  ck_assert_int_eq(known, 0);
  csal3d_ssl_model_free(b);
  /* the checkpoint written before anything was recorded: nothing known */
  ck_assert_int_eq(csal3d_ssl_model_load(ctx, ck0, &b), CSAL3D_OK);
  data_options(b, &ob, &known);
  ck_assert_int_eq(known, 0);
  ck_assert_int_eq(csal3d_ssl_model_intensity_stats(b, &sb), CSAL3D_OK);
  ck_assert_int_eq(sb.crops, 0);
  csal3d_ssl_model_free(b);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  remove_dir(dir);
}
END_TEST

/* Training with NULL load options on a dataset whose dataset.json says MRI normalises as
 * MRI (the first loss is of [0, 1] data, not of raw intensities, which give a loss in
 * the hundreds of thousands), records it, and warns of nothing. */
START_TEST(dataset_json_modality_is_the_default) {
  char dir[64], path[256];
  make_tmp(dir, sizeof dir);
  make_dataset(dir, RAW_MRI, 1, "MRI", 2, path, sizeof path);
  csal3d_dataset *ds = open_dataset(path);
  logbuf lb;
  csal3d_context *ctx = make_ctx(&lb);
  csal3d_ssl_options so;
  small_options(&so);
  csal3d_ssl_model *m, *raw;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &m), CSAL3D_OK);
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &raw), CSAL3D_OK);
  double loss = 0, loss_raw = 0;
  ck_assert_msg(first_loss_step(m, ds, NULL, &loss) == 0, "%s", csal3d_last_error());
  log_print(&lb, "MRI by default");
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, NULL, NULL), 0);
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_INFO, "modality mri", "dataset.json"), 1);
  csal3d_volume_load_options o;
  int known;
  data_options(m, &o, &known);
  ck_assert_int_eq(known, 7);
  ck_assert_int_eq(o.modality, CSAL3D_MODALITY_MRI);
  ck_assert_int_eq(o.channel, CSAL3D_CHANNEL_NONE);
  ck_assert(o.spacing[0] == 0 && o.spacing[1] == 0 && o.spacing[2] == 0);
  csal3d_intensity_stats st = {.struct_size = sizeof st};
  csal3d_ssl_model_intensity_stats(m, &st);
  ck_assert_int_eq(st.crops, 1);
  ck_assert_int_eq(st.voxels, 32 * 32 * 32);
  ck_assert(st.min >= 0 && st.max <= 1 && st.std > 0.05);
  /* the same step on raw intensities, asked for explicitly (the dataset.json disagrees) */
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.modality = CSAL3D_MODALITY_NONE;
  lb.n = 0;
  ck_assert_msg(first_loss_step(raw, ds, &lo, &loss_raw) == 0, "%s", csal3d_last_error());
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, "modality none", "dataset.json states MRI"),
                   1);
  printf("first loss: MRI-normalised %.4f, raw intensities %.1f\n", loss, loss_raw);
  ck_assert(loss > 0 && loss < 10);
  ck_assert(loss_raw > 1000);
  csal3d_ssl_model_free(m);
  csal3d_ssl_model_free(raw);
  csal3d_context_free(ctx);
  csal3d_dataset_free(ds);
  remove_dir(dir);
}
END_TEST

/* A run resumed from a checkpoint with NULL load options keeps the recorded spacing (the
 * log says so); an explicit other spacing is used with a warning; an explicit other
 * modality is refused before any step, naming the option. */
START_TEST(resume_keeps_spacing_and_refuses_a_contradicting_modality) {
  char dir[64], ck[256];
  make_tmp(dir, sizeof dir);
  snprintf(ck, sizeof ck, "%s/m.safetensors", dir);
  csal3d_dataset *ds = phantom(dir);
  logbuf lb;
  csal3d_context *ctx = make_ctx(&lb);
  csal3d_ssl_options so;
  small_options(&so);
  so.checkpoint_path = ck;
  csal3d_ssl_model *a;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &a), CSAL3D_OK);
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo); /* modality AUTO: the dataset.json's CT */
  lo.spacing[0] = lo.spacing[1] = lo.spacing[2] = 4;
  ck_assert_msg(csal3d_ssl_model_train(a, ds, &lo) == CSAL3D_OK, "%s", csal3d_last_error());
  log_print(&lb, "phantom as CT");
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, NULL, NULL), 0); /* proper CT */
  csal3d_ssl_model *b;
  ck_assert_int_eq(csal3d_ssl_model_load(ctx, ck, &b), CSAL3D_OK);
  csal3d_volume_load_options o;
  int known;
  data_options(b, &o, &known);
  ck_assert_int_eq(known, 7);
  ck_assert_int_eq(o.modality, CSAL3D_MODALITY_CT);
  ck_assert(o.spacing[0] == 4 && o.spacing[1] == 4 && o.spacing[2] == 4);
  csal3d_ssl_options ob;
  csal3d_ssl_options_init(&ob);
  csal3d_ssl_model_get_options(b, &ob);
  ob.iterations = 2;
  ck_assert_int_eq(csal3d_ssl_model_set_options(b, &ob), CSAL3D_OK);
  /* an explicit MRI contradicts the recorded CT: refused, no step */
  csal3d_volume_load_options bad;
  csal3d_volume_load_options_init(&bad);
  bad.modality = CSAL3D_MODALITY_MRI;
  ck_assert_int_eq(csal3d_ssl_model_train(b, ds, &bad), CSAL3D_ERR_INVALID_ARGUMENT);
  const char *msg = csal3d_last_error();
  ck_assert_msg(strstr(msg, "trained on CT (modality ct)") && strstr(msg, "modality mri") &&
                    strstr(msg, "set the option modality to ct"),
                "%s", msg);
  int64_t step;
  csal3d_ssl_model_step(b, &step);
  ck_assert_int_eq(step, 1);
  /* resumed with NULL: the checkpoint's spacing, said in the log */
  lb.n = 0;
  ck_assert_msg(csal3d_ssl_model_train(b, ds, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_INFO, "checkpoint's data options",
                             "modality ct, channel none, spacing 4,4,4"),
                   1);
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, NULL, NULL), 0);
  csal3d_ssl_model_free(b);
  ck_assert_int_eq(csal3d_ssl_model_load(ctx, ck, &b), CSAL3D_OK);
  csal3d_ssl_model_step(b, &step);
  ck_assert_int_eq(step, 2);
  data_options(b, &o, &known);
  ck_assert(o.spacing[0] == 4 && o.spacing[1] == 4 && o.spacing[2] == 4);
  csal3d_intensity_stats st = {.struct_size = sizeof st};
  csal3d_ssl_model_intensity_stats(b, &st);
  ck_assert_int_eq(st.crops, 2); /* one per run, accumulated across the resume */
  ck_assert(st.min >= 0 && st.max <= 1);
  /* an explicit other spacing and channel: used, with warnings naming what they override */
  csal3d_volume_load_options nat, out;
  csal3d_volume_load_options_init(&nat);
  nat.channel = 0;
  lb.n = 0;
  ck_assert_int_eq(c3_data_options_resolve(b, ds, &nat, "scoring", ctx, &out), CSAL3D_OK);
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN,
                             "scoring: overriding the checkpoint's spacing 4,4,4 with native",
                             NULL),
                   1);
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, "checkpoint's channel none with 0", NULL),
                   1);
  ck_assert_int_eq(out.modality, CSAL3D_MODALITY_CT);
  ck_assert(out.spacing[0] == 0 && out.channel == 0);
  csal3d_ssl_model_free(b);
  csal3d_ssl_model_free(a);
  csal3d_context_free(ctx);
  csal3d_dataset_free(ds);
  remove_dir(dir);
}
END_TEST

/* The resolution rules without training: NULL and AUTO fall back to the dataset.json,
 * then NONE with a warning; an explicit modality against the dataset.json is a warning. */
START_TEST(resolution_rules) {
  char dir[64], ct_dir[128], list_dir[128], path[256], list[256];
  make_tmp(dir, sizeof dir);
  snprintf(ct_dir, sizeof ct_dir, "%s/ct", dir);
  snprintf(list_dir, sizeof list_dir, "%s/list", dir);
  mkdir(ct_dir, 0755);
  mkdir(list_dir, 0755);
  make_dataset(ct_dir, CT_HU, 1, "CT", 1, path, sizeof path);
  make_dataset(list_dir, CT_HU, 1, NULL, 1, list, sizeof list);
  csal3d_dataset *ct = open_dataset(path), *plain = open_dataset(list);
  logbuf lb;
  csal3d_context *ctx = make_ctx(&lb);
  csal3d_volume_load_options out, req;
  ck_assert_int_eq(c3_data_options_resolve(NULL, ct, NULL, "scoring", ctx, &out), CSAL3D_OK);
  ck_assert_int_eq(out.modality, CSAL3D_MODALITY_CT);
  ck_assert_int_eq(out.channel, CSAL3D_CHANNEL_NONE);
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, NULL, NULL), 0);
  ck_assert_int_eq(c3_data_options_resolve(NULL, plain, NULL, "scoring", ctx, &out),
                   CSAL3D_OK);
  ck_assert_int_eq(out.modality, CSAL3D_MODALITY_NONE);
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, "raw intensities are used", NULL), 1);
  csal3d_volume_load_options_init(&req);
  req.modality = CSAL3D_MODALITY_MRI;
  lb.n = 0;
  ck_assert_int_eq(c3_data_options_resolve(NULL, ct, &req, "scoring", ctx, &out), CSAL3D_OK);
  ck_assert_int_eq(out.modality, CSAL3D_MODALITY_MRI);
  ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, "dataset.json states CT", NULL), 1);
  req.modality = (csal3d_modality)7;
  ck_assert_int_eq(c3_data_options_resolve(NULL, ct, &req, "scoring", ctx, &out),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  /* a model that recorded raw intensities: AUTO takes them, explicit CT is refused */
  csal3d_ssl_options so;
  small_options(&so);
  csal3d_ssl_model *m;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &m), CSAL3D_OK);
  csal3d_volume_load_options rec;
  csal3d_volume_load_options_init(&rec);
  rec.modality = CSAL3D_MODALITY_NONE;
  ck_assert_int_eq(csal3d_ssl_model_set_data_options(m, &rec), CSAL3D_OK);
  req.modality = CSAL3D_MODALITY_AUTO;
  ck_assert_int_eq(c3_data_options_resolve(m, ct, &req, "scoring", ctx, &out), CSAL3D_OK);
  ck_assert_int_eq(out.modality, CSAL3D_MODALITY_NONE);
  req.modality = CSAL3D_MODALITY_CT;
  ck_assert_int_eq(c3_data_options_resolve(m, ct, &req, "scoring", ctx, &out),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "scoring: the model was trained on raw "
                                                    "intensities (modality none)"));
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  csal3d_dataset_free(ct);
  csal3d_dataset_free(plain);
  remove_dir(dir);
}
END_TEST

/* A case whose channel count is not the model's in_channels is refused, naming the case
 * and the options to change. */
START_TEST(channel_mismatch_is_refused) {
  char dir[64], path[256];
  make_tmp(dir, sizeof dir);
  make_dataset(dir, RAW_MRI, 2, "MRI", 1, path, sizeof path);
  csal3d_dataset *ds = open_dataset(path);
  csal3d_context *ctx = make_ctx(NULL);
  csal3d_ssl_options so;
  small_options(&so);
  csal3d_ssl_model *m;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &m), CSAL3D_OK);
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.channel = CSAL3D_CHANNEL_ALL;
  ck_assert_int_eq(csal3d_ssl_model_train(m, ds, &lo), CSAL3D_ERR_INVALID_ARGUMENT);
  const char *msg = csal3d_last_error();
  printf("channel mismatch: %s\n", msg);
  ck_assert_msg(strstr(msg, "case 'case_0' has 2 channel(s), the model takes 1") &&
                    strstr(msg, "set the option channel") && strstr(msg, "in_channels"),
                "%s", msg);
  int64_t step;
  csal3d_ssl_model_step(m, &step);
  ck_assert_int_eq(step, 0);
  int known;
  data_options(m, &lo, &known);
  ck_assert_int_eq(known, 0); /* nothing trained, nothing recorded */
  /* one channel of the two: trains */
  csal3d_volume_load_options_init(&lo);
  lo.channel = 1;
  ck_assert_msg(csal3d_ssl_model_train(m, ds, &lo) == CSAL3D_OK, "%s", csal3d_last_error());
  data_options(m, &lo, &known);
  ck_assert_int_eq(lo.channel, 1);
  /* scoring's message names only the channel option */
  c3_data_check chk;
  lo.modality = CSAL3D_MODALITY_MRI;
  c3_data_check_init(&chk, m, &lo, "scoring", ctx);
  csal3d_volume *v;
  lo.channel = CSAL3D_CHANNEL_ALL;
  lo.modality = CSAL3D_MODALITY_NONE;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 0, &lo, &v), CSAL3D_OK);
  ck_assert_int_eq(c3_data_check_case(&chk, v, "case_0"), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'case_0' has 2 channel(s)"));
  ck_assert_ptr_null(strstr(csal3d_last_error(), "in_channels"));
  csal3d_volume_free(v);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  csal3d_dataset_free(ds);
  remove_dir(dir);
}
END_TEST

/* The thresholds on synthetic intensities: CT in HU fits CT and not MRI; z-scored and raw
 * MRI fit MRI and not CT. */
START_TEST(intensity_thresholds) {
  const int64_t d[3] = {20, 18, 16};
  struct {
    int kind;
    int fits_ct, fits_mri;
  } cases[3] = {{CT_HU, 1, 0}, {ZSCORED_MRI, 0, 1}, {RAW_MRI, 0, 1}};
  for (int c = 0; c < 3; c++) {
    size_t n;
    float *x = make_values(cases[c].kind, 1, d, 5, &n);
    double lo = x[0], hi = x[0];
    for (size_t i = 0; i < n; i++) lo = fmin(lo, x[i]), hi = fmax(hi, x[i]);
    char why[320];
    ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_CT, lo, hi, why, sizeof why),
                     cases[c].fits_ct);
    if (!cases[c].fits_ct) printf("kind %d as CT: %s\n", cases[c].kind, why);
    ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_MRI, lo, hi, why, sizeof why),
                     cases[c].fits_mri);
    if (!cases[c].fits_mri) printf("kind %d as MRI: %s\n", cases[c].kind, why);
    ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_NONE, lo, hi, why, sizeof why), 1);
    if (cases[c].kind == ZSCORED_MRI) {
      /* the case: squashed into a band 0.498..0.504 wide by the CT normalisation */
      c3_intensity_fits(CSAL3D_MODALITY_CT, lo, hi, why, sizeof why);
      ck_assert_ptr_nonnull(strstr(why, "span less than 50 HU"));
      ck_assert_ptr_nonnull(strstr(why, "0.49"));
    }
    free(x);
  }
  /* the edges */
  char why[320];
  ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_CT, -1000, -951, why, sizeof why), 0);
  ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_CT, -1000, -950, why, sizeof why), 1);
  ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_CT, -3000, -1000, why, sizeof why), 0);
  ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_CT, -200, 1000, why, sizeof why), 0);
  ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_CT, -201, 1000, why, sizeof why), 1);
  ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_MRI, -500, 1000, why, sizeof why), 1);
  ck_assert_int_eq(c3_intensity_fits(CSAL3D_MODALITY_MRI, -501, 1000, why, sizeof why), 0);
}
END_TEST

/* Through training: z-scored MRI loaded as CT (the case) and CT loaded as MRI
 * warn once per run, naming the case; proper MRI and CT do not (above and in
 * resume_keeps_spacing_and_refuses_a_contradicting_modality). */
START_TEST(intensity_warnings_when_training) {
  char dir[64], zdir[128], cdir[128], zpath[256], cpath[256];
  make_tmp(dir, sizeof dir);
  snprintf(zdir, sizeof zdir, "%s/z", dir);
  snprintf(cdir, sizeof cdir, "%s/c", dir);
  mkdir(zdir, 0755);
  mkdir(cdir, 0755);
  make_dataset(zdir, ZSCORED_MRI, 1, NULL, 2, zpath, sizeof zpath);
  make_dataset(cdir, CT_HU, 1, NULL, 2, cpath, sizeof cpath);
  csal3d_dataset *z = open_dataset(zpath), *c = open_dataset(cpath);
  logbuf lb;
  csal3d_context *ctx = make_ctx(&lb);
  csal3d_ssl_options so;
  small_options(&so);
  so.iterations = 2; /* both cases */
  csal3d_volume_load_options lo;
  struct {
    const csal3d_dataset *ds;
    csal3d_modality m;
    const char *needle;
  } runs[4] = {{z, CSAL3D_MODALITY_CT, "does not look like CT"},
               {c, CSAL3D_MODALITY_MRI, "does not look like MRI"},
               {z, CSAL3D_MODALITY_MRI, NULL},
               {c, CSAL3D_MODALITY_CT, NULL}};
  for (int r = 0; r < 4; r++) {
    csal3d_ssl_model *m;
    ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &m), CSAL3D_OK);
    csal3d_volume_load_options_init(&lo);
    lo.modality = runs[r].m;
    lb.n = 0;
    ck_assert_msg(csal3d_ssl_model_train(m, runs[r].ds, &lo) == CSAL3D_OK, "%s",
                  csal3d_last_error());
    log_print(&lb, "intensity run");
    if (runs[r].needle) {
      ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, runs[r].needle, "option modality"), 1);
      ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, "pretraining: case 'case_", NULL), 1);
    } else {
      ck_assert_int_eq(log_count(&lb, CSAL3D_LOG_WARN, NULL, NULL), 0);
    }
    csal3d_ssl_model_free(m);
  }
  csal3d_context_free(ctx);
  csal3d_dataset_free(z);
  csal3d_dataset_free(c);
  remove_dir(dir);
}
END_TEST

/* The iterations of a model cannot go below the steps it has trained. */
START_TEST(iterations_below_the_step_are_refused) {
  csal3d_context *ctx = make_ctx(NULL);
  csal3d_ssl_options so;
  small_options(&so);
  so.iterations = 5;
  csal3d_ssl_model *m;
  ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &m), CSAL3D_OK);
  const int64_t dhw[3] = {32, 32, 32};
  size_t n;
  float *x = make_values(ZSCORED_MRI, 1, dhw, 1, &n);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(csal3d_ssl_model_train_step(m, x, 1, dhw, NULL), CSAL3D_OK);
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  csal3d_ssl_model_get_options(m, &o);
  o.iterations = 1;
  ck_assert_int_eq(csal3d_ssl_model_set_options(m, &o), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(csal3d_last_error(), "iterations 1 is below the model's step 2"), "%s",
                csal3d_last_error());
  csal3d_ssl_model_get_options(m, &o);
  ck_assert_int_eq(o.iterations, 5); /* unchanged */
  o.iterations = 2; /* the step itself: nothing more to train */
  ck_assert_int_eq(csal3d_ssl_model_set_options(m, &o), CSAL3D_OK);
  free(x);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
}
END_TEST

int main(int argc, char **argv) {
  (void)argc;
  c3_test_passive_openmp(argv);
  Suite *s = suite_create("pretrain");
  TCase *t = tcase_create("data options");
  tcase_set_timeout(t, 900);
  tcase_add_test(t, data_options_round_trip_through_a_checkpoint);
  tcase_add_test(t, dataset_json_modality_is_the_default);
  tcase_add_test(t, resume_keeps_spacing_and_refuses_a_contradicting_modality);
  tcase_add_test(t, resolution_rules);
  tcase_add_test(t, channel_mismatch_is_refused);
  tcase_add_test(t, intensity_thresholds);
  tcase_add_test(t, intensity_warnings_when_training);
  tcase_add_test(t, iterations_below_the_step_are_refused);
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
