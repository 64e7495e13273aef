/* Past one machine (docs/distributed.md): sharded scoring merged bitwise equal to a
 * single run, and the merge's refusals (other settings, missing, repeated or foreign
 * shards); data-parallel pretraining over 2 ranks (threads with an in-process
 * communicator, tests/comm_threads.h) against one process with the same global batch,
 * a cancel on one rank stopping both, and the run resumed with another rank count. A
 * tiny model (embed_dim 12) on 5 small phantom CT cases. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csal3d/csal3d.h"
#include "model/ssl_internal.h"
#include "comm_threads.h"
#include "test_omp_env.h"

#define ST_EQ(expr, want)                                                              \
  do {                                                                                 \
    csal3d_status st_ = (expr);                                                        \
    ck_assert_msg(st_ == (want), "%s: %d, want %d: %s", #expr, (int)st_, (int)(want),  \
                  csal3d_last_error());                                                \
  } while (0)

#define HAS(text) ck_assert_msg(strstr(csal3d_last_error(), text), "'%s' not in: %s", text, \
                                csal3d_last_error())

static char dir[256];   /* the test's temporary folder */
static char data[300];  /* the phantom dataset */
static char ckpt[300];  /* a saved tiny model */
static char ckpt2[300]; /* another one (another seed) */
enum { NCASES = 5 };

static void path_in(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static unsigned char *slurp(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  ck_assert_msg(f != NULL, "%s missing", p);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len + 1);
  ck_assert_int_eq(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return b;
}

static void assert_same_file(const char *a, const char *b) {
  size_t na, nb;
  unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
  ck_assert_msg(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
  free(x);
  free(y);
}

/* ---- scoring ---- */

typedef struct run {
  const char *checkpoint, *dataset;
  const char *maps;
  uint64_t seed;      /* 0: the checkpoint's */
  int skip_failed;
  size_t shard, shards;
} run;

/* Scores per r into output; returns the status. */
static csal3d_status score(const run *r, const char *output) {
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  csal3d_ssl_model *m;
  ST_EQ(csal3d_ssl_model_load(ctx, r->checkpoint ? r->checkpoint : ckpt, &m), CSAL3D_OK);
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  const int64_t w[3] = {32, 32, 64};
  for (int a = 0; a < 3; a++) uo.window[a] = w[a], uo.stride[a] = 32;
  uo.keep_map = r->maps != NULL;
  if (r->seed) uo.use_seed = 1, uo.seed = r->seed;
  csal3d_uncertainty *u;
  ck_assert_int_eq(csal3d_uncertainty_create(m, &uo, &u), CSAL3D_OK);
  csal3d_dataset *ds;
  ST_EQ(csal3d_dataset_open(r->dataset ? r->dataset : data, NULL, &ds), CSAL3D_OK);
  csal3d_volume_load_options vl;
  csal3d_volume_load_options_init(&vl);
  vl.modality = CSAL3D_MODALITY_CT;
  csal3d_score_options so;
  csal3d_score_options_init(&so);
  so.load = &vl;
  so.output = output;
  so.maps_dir = r->maps;
  so.overwrite = 1;
  so.resume = 0;
  so.on_error = r->skip_failed ? CSAL3D_CASE_ERRORS_SKIP : CSAL3D_CASE_ERRORS_STOP;
  so.shard_count = r->shards;
  so.shard_index = r->shard;
  csal3d_status s = csal3d_score_dataset(u, ds, &so, NULL);
  csal3d_dataset_free(ds);
  csal3d_uncertainty_free(u);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  return s;
}

/* Shards 1..n/n of r into NAME.I.safetensors (paths into p), unless already there. */
static void score_shards(run r, const char *name, size_t n, char p[][320]) {
  for (size_t i = 0; i < n; i++) {
    char f[64];
    snprintf(f, sizeof f, "%s.%zu.safetensors", name, i + 1);
    path_in(p[i], sizeof p[i], f);
    struct stat st;
    if (stat(p[i], &st) == 0) continue;
    r.shard = i;
    r.shards = n;
    ST_EQ(score(&r, p[i]), CSAL3D_OK);
  }
}

static const char *reference(void) {
  static char ref[320];
  path_in(ref, sizeof ref, "whole.safetensors");
  struct stat st;
  if (stat(ref, &st) != 0) {
    run r = {0};
    ST_EQ(score(&r, ref), CSAL3D_OK);
  }
  return ref;
}

static csal3d_status merge(char p[][320], size_t n, const char *out) {
  const char *v[8];
  for (size_t i = 0; i < n; i++) v[i] = p[i];
  return csal3d_scores_merge_files(v, n, out, 1, NULL);
}

START_TEST(shards_merge_bitwise_equal_to_one_run) {
  char p[3][320], out[320];
  run r = {0};
  score_shards(r, "s", 3, p);
  /* a shard: its cases (positions 1, 4 of 5 for 2/3) and its metadata */
  csal3d_scores *t;
  ST_EQ(csal3d_scores_load(p[1], &t), CSAL3D_OK);
  int64_t n;
  csal3d_scores_size(t, &n, NULL);
  ck_assert_int_eq(n, 2);
  char id[64], meta[64];
  csal3d_scores_case_string(t, 1, "id", id, sizeof id, NULL);
  ck_assert_str_eq(id, "phantom_004");
  csal3d_scores_get_metadata(t, "shard", meta, sizeof meta, NULL);
  ck_assert_str_eq(meta, "2/3");
  csal3d_scores_get_metadata(t, "shard_cases", meta, sizeof meta, NULL);
  ck_assert_str_eq(meta, "5");
  csal3d_scores_free(t);
  /* merged in any order: the single run's bytes */
  path_in(out, sizeof out, "merged.safetensors");
  char q[3][320];
  memcpy(q[0], p[2], 320), memcpy(q[1], p[0], 320), memcpy(q[2], p[1], 320);
  ST_EQ(merge(q, 3, out), CSAL3D_OK);
  assert_same_file(out, reference());
  /* the output is checked first: a shard is never overwritten */
  const char *v[3] = {p[0], p[1], p[2]};
  ST_EQ(csal3d_scores_merge_files(v, 3, p[0], 1, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ST_EQ(csal3d_scores_merge_files(v, 3, out, 0, NULL), CSAL3D_ERR_IO);
}
END_TEST

START_TEST(shards_with_maps_and_skipped_cases) {
  /* a list with a broken file at position 2: skipped in shard 1/2 */
  char bad[320], list[320];
  path_in(bad, sizeof bad, "broken.nii.gz");
  FILE *x = fopen(bad, "w");
  fputs("this is not a NIfTI file", x);
  fclose(x);
  path_in(list, sizeof list, "with_broken.txt");
  x = fopen(list, "w");
  fprintf(x, "%s/imagesTr/phantom_000.nii.gz\n%s/imagesTr/phantom_001.nii.gz\n%s\n"
             "%s/imagesTr/phantom_002.nii.gz\n", data, data, bad, data);
  fclose(x);
  char whole[320], out[320], p[2][320];
  run r = {.dataset = list, .skip_failed = 1};
  path_in(whole, sizeof whole, "whole_broken.safetensors");
  ST_EQ(score(&r, whole), CSAL3D_OK);
  score_shards(r, "b", 2, p);
  path_in(out, sizeof out, "merged_broken.safetensors");
  ST_EQ(merge(p, 2, out), CSAL3D_OK);
  assert_same_file(out, whole);
  csal3d_scores *t;
  ST_EQ(csal3d_scores_load(out, &t), CSAL3D_OK);
  char k[2048];
  csal3d_scores_get_metadata(t, "skipped_cases", k, sizeof k, NULL);
  ck_assert(strstr(k, "\"broken\""));
  csal3d_scores_free(t);
  /* maps: a shard stages its maps in a folder of its own, then publishes them */
  char maps[320], map[400], stage[330];
  path_in(maps, sizeof maps, "maps");
  r.maps = maps;
  r.shard = 1, r.shards = 2;
  ST_EQ(score(&r, out), CSAL3D_OK);
  ST_EQ(csal3d_scores_load(out, &t), CSAL3D_OK);
  csal3d_scores_case_string(t, 0, "map", map, sizeof map, NULL);
  ck_assert(strstr(map, "/maps/phantom_001_uncertainty.nii.gz"));
  csal3d_scores_free(t);
  struct stat st;
  ck_assert_int_eq(stat(map, &st), 0);
  path_in(stage, sizeof stage, ".maps.2-of-2.partial");
  ck_assert(stat(stage, &st) != 0);
}
END_TEST

START_TEST(merge_refusals) {
  char p[3][320], q[3][320], out[320];
  path_in(out, sizeof out, "refused.safetensors");
  run r = {0};
  score_shards(r, "s", 3, p);
  /* missing, repeated */
  ST_EQ(merge(p, 2, out), CSAL3D_ERR_INVALID_ARGUMENT);
  HAS("shard 3/3 is missing (given: 1/3, 2/3)");
  memcpy(q[0], p[0], 320), memcpy(q[1], p[1], 320), memcpy(q[2], p[0], 320);
  ST_EQ(merge(q, 3, out), CSAL3D_ERR_INVALID_ARGUMENT);
  HAS("shard 1/3 is given twice");
  /* a whole run's file is no shard */
  memcpy(q[2], reference(), strlen(reference()) + 1);
  ST_EQ(merge(q, 3, out), CSAL3D_ERR_INVALID_ARGUMENT);
  HAS("is not a shard");
  /* another seed, another checkpoint: the setting named */
  r.seed = 99;
  r.shard = 2, r.shards = 3;
  path_in(q[2], sizeof q[2], "seed99.3.safetensors");
  ST_EQ(score(&r, q[2]), CSAL3D_OK);
  memcpy(q[0], p[0], 320), memcpy(q[1], p[1], 320);
  ST_EQ(merge(q, 3, out), CSAL3D_ERR_INVALID_ARGUMENT);
  HAS("differ in seed: '5' against '99'");
  r.seed = 0;
  r.checkpoint = ckpt2;
  path_in(q[2], sizeof q[2], "other.3.safetensors");
  ST_EQ(score(&r, q[2]), CSAL3D_OK);
  ST_EQ(merge(q, 3, out), CSAL3D_ERR_INVALID_ARGUMENT);
  HAS("differ in checkpoint:");
  /* shards of another cut */
  r.checkpoint = NULL;
  r.shard = 1, r.shards = 2;
  path_in(q[2], sizeof q[2], "half.2.safetensors");
  ST_EQ(score(&r, q[2]), CSAL3D_OK);
  ST_EQ(merge(q, 3, out), CSAL3D_ERR_INVALID_ARGUMENT);
  HAS("different numbers of shards");
  struct stat st;
  ck_assert(stat(out, &st) != 0);
  /* options out of range */
  r.shard = 3, r.shards = 3;
  ST_EQ(score(&r, out), CSAL3D_ERR_INVALID_ARGUMENT);
  HAS("shard_index");
  r.shard = 0, r.shards = 8;
  ST_EQ(score(&r, out), CSAL3D_ERR_INVALID_ARGUMENT);
  HAS("the option shard_count (8) exceeds the 5 cases");
}
END_TEST


/* ---- data-parallel pretraining ---- */

enum { STEPS = 3, PSTOP = 2 };

typedef struct trainer {
  tcomm_group *g; /* NULL: one process */
  int rank;
  const char *resume; /* a checkpoint to continue from, or NULL */
  const char *ckpt;   /* checkpoint_path (every 2 steps), or NULL */
  int64_t stop_after; /* rank 0 cancels after this many steps (0: never) */
  double loss[STEPS]; /* per step */
  int64_t steps;      /* the model's step at the end */
  float *params;      /* at the end (malloc) */
  size_t nparams;
  csal3d_status status;
  char message[512];
} trainer;

static int on_step(void *user, const csal3d_ssl_losses *l, int64_t iterations) {
  trainer *t = user;
  (void)iterations;
  t->loss[l->step] = l->loss;
  return t->stop_after && t->rank == 0 && l->step + 1 >= t->stop_after;
}

static void *train(void *arg) {
  trainer *t = arg;
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.threads = 1;
  co.log_level = CSAL3D_LOG_ERROR;
  csal3d_context *ctx;
  if (csal3d_context_create(&co, &ctx) != CSAL3D_OK) abort();
  tcomm tc;
  csal3d_comm comm;
  if (t->g) {
    tcomm_make(t->g, t->rank, &tc, &comm);
    if (csal3d_context_set_comm(ctx, &comm) != CSAL3D_OK) abort();
  }
  csal3d_ssl_model *m = NULL;
  csal3d_ssl_options so;
  csal3d_ssl_options_init(&so);
  so.embed_dim = 12;
  so.crop_size[0] = so.crop_size[1] = so.crop_size[2] = 32;
  so.batch_size = 2; /* the global batch */
  so.iterations = STEPS;
  so.warmup_steps = 1;
  so.lr = 2e-3;
  so.use_seed = 1;
  so.seed = 21;
  so.checkpoint_every = 2;
  so.checkpoint_path = t->ckpt;
  so.on_step = on_step;
  so.on_step_user_data = t;
  csal3d_status s;
  if (t->resume) {
    s = csal3d_ssl_model_load(ctx, t->resume, &m);
    csal3d_ssl_options o2;
    csal3d_ssl_options_init(&o2);
    if (s == CSAL3D_OK) s = csal3d_ssl_model_get_options(m, &o2);
    o2.on_step = on_step;
    o2.on_step_user_data = t;
    o2.checkpoint_path = t->ckpt;
    if (s == CSAL3D_OK) s = csal3d_ssl_model_set_options(m, &o2);
  } else {
    s = csal3d_ssl_model_create(ctx, &so, &m);
  }
  csal3d_dataset *ds = NULL;
  if (s == CSAL3D_OK) s = csal3d_dataset_open(data, NULL, &ds);
  csal3d_volume_load_options vl;
  csal3d_volume_load_options_init(&vl);
  vl.modality = CSAL3D_MODALITY_CT;
  if (s == CSAL3D_OK) s = csal3d_ssl_model_train(m, ds, &vl);
  t->status = s;
  snprintf(t->message, sizeof t->message, "%s", s ? csal3d_last_error() : "");
  if (m) {
    csal3d_ssl_model_step(m, &t->steps);
    t->nparams = m->m->total;
    t->params = malloc(t->nparams * sizeof(float));
    if (c3_model_get_params(m->m, t->params) != CSAL3D_OK) abort();
  }
  csal3d_dataset_free(ds);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  return NULL;
}

static void run_ranks(trainer *t, int n) {
  pthread_t th[TCOMM_MAX];
  for (int r = 0; r < n; r++) pthread_create(&th[r], NULL, train, &t[r]);
  for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

static void assert_params_close(const trainer *a, const trainer *b, double tol) {
  ck_assert_uint_eq(a->nparams, b->nparams);
  double num = 0, den = 0, worst = 0;
  for (size_t i = 0; i < a->nparams; i++) {
    double d = (double)a->params[i] - b->params[i];
    num += d * d, den += (double)b->params[i] * b->params[i];
    if (fabs(d) > worst) worst = fabs(d);
  }
  ck_assert_msg(sqrt(num / den) < tol, "parameters differ: relative %g (worst element %g)",
                sqrt(num / den), worst);
}

START_TEST(two_ranks_reproduce_one_process) {
  /* one process, batch 2, 4 steps: the reference */
  trainer one;
  memset(&one, 0, sizeof one);
  train(&one);
  ck_assert_msg(one.status == CSAL3D_OK, "%s", one.message);
  ck_assert_int_eq(one.steps, STEPS);
  /* two ranks of one crop each; rank 0 cancels after step 2: both stop there, rank 0's
   * checkpoint of step 2 is the only one */
  char ck[320];
  path_in(ck, sizeof ck, "dp.safetensors");
  tcomm_group g;
  tcomm_group_init(&g, 2);
  trainer two[2];
  memset(two, 0, sizeof two);
  for (int r = 0; r < 2; r++) {
    two[r].g = &g, two[r].rank = r, two[r].stop_after = PSTOP;
    two[r].ckpt = ck;
  }
  run_ranks(two, 2);
  for (int r = 0; r < 2; r++) {
    ck_assert_msg(two[r].status == CSAL3D_ERR_CANCELLED, "rank %d: %d %s", r, two[r].status,
                  two[r].message);
    ck_assert_int_eq(two[r].steps, PSTOP);
  }
  ck_assert(strstr(two[1].message, "by another rank"));
  for (int64_t k = 0; k < PSTOP; k++) {
    ck_assert_msg(rel(two[0].loss[k], one.loss[k]) < 1e-5, "step %lld: loss %.9g against "
                  "%.9g", (long long)k, two[0].loss[k], one.loss[k]);
    ck_assert(two[1].loss[k] == two[0].loss[k]);
  }
  ck_assert(memcmp(two[0].params, two[1].params, two[0].nparams * sizeof(float)) == 0);
  /* resumed in one process (another rank count): the same run to the end */
  trainer res;
  memset(&res, 0, sizeof res);
  res.resume = ck;
  train(&res);
  ck_assert_msg(res.status == CSAL3D_OK, "%s", res.message);
  ck_assert_int_eq(res.steps, STEPS);
  for (int64_t k = PSTOP; k < STEPS; k++)
    ck_assert_msg(rel(res.loss[k], one.loss[k]) < 1e-5, "step %lld: loss %.9g against %.9g",
                  (long long)k, res.loss[k], one.loss[k]);
  assert_params_close(&res, &one, 1e-5);
  free(one.params), free(two[0].params), free(two[1].params), free(res.params);
  pthread_barrier_destroy(&g.bar);
}
END_TEST

START_TEST(ranks_of_different_runs_refused) {
  /* rank 1 resumes a checkpoint that rank 0 does not: both refuse before any step */
  char ck[320];
  path_in(ck, sizeof ck, "one_step.safetensors");
  /* a checkpoint at step 1 */
  {
    csal3d_context_options co;
    csal3d_context_options_init(&co);
    co.device = CSAL3D_DEVICE_CPU;
    csal3d_context *ctx;
    ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
    csal3d_ssl_options so;
    csal3d_ssl_options_init(&so);
    so.embed_dim = 12;
    so.crop_size[0] = so.crop_size[1] = so.crop_size[2] = 32;
    so.batch_size = 2;
    so.iterations = STEPS;
    so.use_seed = 1;
    so.seed = 21;
    csal3d_ssl_model *m;
    ck_assert_int_eq(csal3d_ssl_model_create(ctx, &so, &m), CSAL3D_OK);
    static float crops[32 * 32 * 32];
    for (size_t i = 0; i < sizeof crops / sizeof *crops; i++) crops[i] = (float)(i % 7) / 7;
    const int64_t dhw[3] = {32, 32, 32};
    ST_EQ(csal3d_ssl_model_train_step(m, crops, 1, dhw, NULL), CSAL3D_OK);
    ST_EQ(csal3d_ssl_model_save(m, ck), CSAL3D_OK);
    csal3d_ssl_model_free(m);
    csal3d_context_free(ctx);
  }
  tcomm_group g;
  tcomm_group_init(&g, 2);
  trainer two[2];
  memset(two, 0, sizeof two);
  for (int r = 0; r < 2; r++) two[r].g = &g, two[r].rank = r;
  two[1].resume = ck;
  run_ranks(two, 2);
  ck_assert_int_eq(two[0].status, CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(two[1].status, CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(two[1].message, "rank 1 has step 1 where rank 0 has 0"), "%s",
                two[1].message);
  ck_assert_msg(strstr(two[0].message, "rank 1's run differs"), "%s", two[0].message);
  ck_assert_int_eq(two[0].steps, 0);
  free(two[0].params), free(two[1].params);
  pthread_barrier_destroy(&g.bar);
}
END_TEST

typedef struct scorer {
  tcomm_group *g;
  int rank;
  const char *output;
  csal3d_status status;
  char message[512];
} scorer;

static void *score_rank(void *arg) {
  scorer *sc = arg;
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.threads = 1;
  csal3d_context *ctx;
  if (csal3d_context_create(&co, &ctx) != CSAL3D_OK) abort();
  tcomm tc;
  csal3d_comm comm;
  tcomm_make(sc->g, sc->rank, &tc, &comm);
  if (csal3d_context_set_comm(ctx, &comm) != CSAL3D_OK) abort();
  csal3d_ssl_model *m;
  csal3d_uncertainty *u;
  csal3d_dataset *ds;
  if (csal3d_ssl_model_load(ctx, ckpt, &m) != CSAL3D_OK) abort();
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  const int64_t w[3] = {32, 32, 64};
  for (int a = 0; a < 3; a++) uo.window[a] = w[a], uo.stride[a] = 32;
  if (csal3d_uncertainty_create(m, &uo, &u) != CSAL3D_OK) abort();
  if (csal3d_dataset_open(data, NULL, &ds) != CSAL3D_OK) abort();
  csal3d_volume_load_options vl;
  csal3d_volume_load_options_init(&vl);
  vl.modality = CSAL3D_MODALITY_CT;
  csal3d_score_options so;
  csal3d_score_options_init(&so);
  so.load = &vl;
  so.output = sc->output;
  so.resume = 0;
  csal3d_scores *t = NULL;
  sc->status = csal3d_score_dataset(u, ds, &so, &t);
  snprintf(sc->message, sizeof sc->message, "%s", sc->status ? csal3d_last_error() : "");
  if (sc->status == CSAL3D_OK && (t != NULL) != (sc->rank == 0)) sc->status = CSAL3D_ERR_INTERNAL;
  csal3d_scores_free(t);
  csal3d_dataset_free(ds);
  csal3d_uncertainty_free(u);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  return NULL;
}

START_TEST(ranks_score_one_file) {
  char out[320], part[340];
  path_in(out, sizeof out, "ranks.safetensors");
  tcomm_group g;
  tcomm_group_init(&g, 2);
  scorer sc[2] = {{&g, 0, out, 0, ""}, {&g, 1, out, 0, ""}};
  pthread_t th[2];
  for (int r = 0; r < 2; r++) pthread_create(&th[r], NULL, score_rank, &sc[r]);
  for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
  for (int r = 0; r < 2; r++)
    ck_assert_msg(sc[r].status == CSAL3D_OK, "rank %d: %s", r, sc[r].message);
  assert_same_file(out, reference());
  path_in(part, sizeof part, ".ranks.safetensors.rank-2-of-2");
  struct stat st;
  ck_assert(stat(part, &st) != 0);
  /* the output exists: rank 0 refuses, and so does rank 1 */
  for (int r = 0; r < 2; r++) pthread_create(&th[r], NULL, score_rank, &sc[r]);
  for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
  ck_assert_int_eq(sc[0].status, CSAL3D_ERR_IO);
  ck_assert_int_eq(sc[1].status, CSAL3D_ERR_STATE);
  ck_assert_msg(strstr(sc[1].message, "rank 0 failed"), "%s", sc[1].message);
  pthread_barrier_destroy(&g.bar);
}
END_TEST

START_TEST(comm_arguments) {
  csal3d_comm c;
  ck_assert_int_eq(csal3d_comm_init(&c), CSAL3D_OK);
  ck_assert_int_eq(c.size, 1);
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  c.size = 2;
  ST_EQ(csal3d_context_set_comm(ctx, &c), CSAL3D_ERR_INVALID_ARGUMENT); /* no functions */
  tcomm_group g;
  tcomm_group_init(&g, 2);
  tcomm tc;
  tcomm_make(&g, 1, &tc, &c);
  c.rank = 2;
  ST_EQ(csal3d_context_set_comm(ctx, &c), CSAL3D_ERR_INVALID_ARGUMENT);
  c.rank = 1;
  ST_EQ(csal3d_context_set_comm(ctx, &c), CSAL3D_OK);
  csal3d_comm back;
  csal3d_comm_init(&back);
  ST_EQ(csal3d_context_get_comm(ctx, &back), CSAL3D_OK);
  ck_assert_int_eq(back.size, 2);
  ck_assert_int_eq(back.rank, 1);
  ST_EQ(csal3d_context_set_comm(ctx, NULL), CSAL3D_OK);
  ST_EQ(csal3d_context_get_comm(ctx, &back), CSAL3D_OK);
  ck_assert_int_eq(back.size, 1);
  csal3d_context_free(ctx);
  pthread_barrier_destroy(&g.bar);
}
END_TEST

/* Fixtures in a child process (OpenMP's threads do not survive a fork). */
static void make_fixtures_child(void) {
  csal3d_phantom_options po;
  csal3d_phantom_options_init(&po);
  po.cases = NCASES;
  po.size = 32;
  po.slices = 24;
  po.seed = 11;
  if (csal3d_phantom_generate(data, &po, NULL) != CSAL3D_OK) abort();
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  csal3d_context *ctx;
  if (csal3d_context_create(&co, &ctx) != CSAL3D_OK) abort();
  for (int k = 0; k < 2; k++) {
    csal3d_ssl_options so;
    csal3d_ssl_options_init(&so);
    so.embed_dim = 12;
    so.crop_size[0] = so.crop_size[1] = so.crop_size[2] = 32;
    so.use_seed = 1;
    so.seed = 5 + (uint64_t)k;
    csal3d_ssl_model *m;
    if (csal3d_ssl_model_create(ctx, &so, &m) != CSAL3D_OK) abort();
    if (csal3d_ssl_model_save(m, k ? ckpt2 : ckpt) != CSAL3D_OK) abort();
    csal3d_ssl_model_free(m);
  }
  csal3d_context_free(ctx);
}

static void make_fixtures(void) {
  snprintf(dir, sizeof dir, "/tmp/csal3d_dist_XXXXXX");
  if (!mkdtemp(dir)) abort();
  snprintf(data, sizeof data, "%s/phantom", dir);
  snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", dir);
  snprintf(ckpt2, sizeof ckpt2, "%s/model2.safetensors", dir);
  pid_t pid = fork();
  if (pid < 0) abort();
  if (pid == 0) {
    make_fixtures_child();
    _exit(0);
  }
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) abort();
}

int main(int argc, char **argv) {
  c3_test_passive_openmp(argv);
  (void)argc;
  make_fixtures();
  Suite *s = suite_create("distributed");
  TCase *t = tcase_create("shards");
  tcase_set_timeout(t, 600);
  tcase_add_test(t, shards_merge_bitwise_equal_to_one_run);
  tcase_add_test(t, shards_with_maps_and_skipped_cases);
  tcase_add_test(t, merge_refusals);
  suite_add_tcase(s, t);
  TCase *p = tcase_create("data-parallel");
  tcase_set_timeout(p, 600);
  tcase_add_test(p, comm_arguments);
  tcase_add_test(p, ranks_score_one_file);
  tcase_add_test(p, two_ranks_reproduce_one_process);
  tcase_add_test(p, ranks_of_different_runs_refused);
  suite_add_tcase(s, p);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {
  }
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
