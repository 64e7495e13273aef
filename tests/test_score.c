/* Scoring a dataset (lib/pipeline/score.c, journal.c, outputs.c): the metadata schema;
 * a case's score and feature bitwise equal whatever the order or subset it is scored
 * in; resuming after a cancellation and after SIGKILL (with a torn last record) gives
 * a file bitwise equal to an uninterrupted run's; a journal of other settings is
 * refused; every output checked before any work; the skip policy; maps; hostile
 * journals; ids with '/' (one folder per subject). A tiny model (embed_dim 12) on 6
 * small phantom CT cases. */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csal3d/csal3d.h"
#include "pipeline/data_options.h"
#include "pipeline/journal.h"
#include "test_omp_env.h"

/* A status check that shows the library's message when it fails. */
#define ST_EQ(expr, want)                                                              \
  do {                                                                                 \
    csal3d_status st_ = (expr);                                                        \
    ck_assert_msg(st_ == (want), "%s: %d, want %d: %s", #expr, (int)st_, (int)(want),  \
                  csal3d_last_error());                                                \
  } while (0)

static char dir[256];      /* the test's temporary folder */
static char data[300];     /* the phantom dataset */
static char ckpt[300];     /* a saved tiny model */
enum { NCASES = 6 };

static csal3d_context *make_ctx(void) {
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.seed = 3;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  return ctx;
}

typedef struct fixture {
  csal3d_context *ctx;
  csal3d_ssl_model *m;
  csal3d_uncertainty *u;
  csal3d_dataset *ds;
} fixture;

static void fx_open(fixture *f, const char *dataset, int64_t stride) {
  f->ctx = make_ctx();
  ck_assert_msg(csal3d_ssl_model_load(f->ctx, ckpt, &f->m) == CSAL3D_OK, "%s",
                csal3d_last_error());
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  const int64_t w[3] = {32, 32, 64};
  for (int a = 0; a < 3; a++) uo.window[a] = w[a], uo.stride[a] = stride;
  ck_assert_int_eq(csal3d_uncertainty_create(f->m, &uo, &f->u), CSAL3D_OK);
  ck_assert_msg(csal3d_dataset_open(dataset ? dataset : data, NULL, &f->ds) == CSAL3D_OK, "%s",
                csal3d_last_error());
}

static void fx_close(fixture *f) {
  csal3d_dataset_free(f->ds);
  csal3d_uncertainty_free(f->u);
  csal3d_ssl_model_free(f->m);
  csal3d_context_free(f->ctx);
}

static void path_in(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
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

/* A run to `output` with the defaults; returns the status. */
static csal3d_status score_to(fixture *f, const char *output, csal3d_score_options *o,
                              csal3d_scores **out) {
  csal3d_score_options d;
  if (!o) {
    csal3d_score_options_init(&d);
    o = &d;
  }
  o->output = output;
  return csal3d_score_dataset(f->u, f->ds, o, out);
}

/* The reference file of an uninterrupted run over the whole dataset. */
static const char *reference_file(void) {
  static char ref[320];
  path_in(ref, sizeof ref, "reference.safetensors");
  if (!exists(ref)) {
    fixture f;
    fx_open(&f, NULL, 32);
    ck_assert_msg(score_to(&f, ref, NULL, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
    fx_close(&f);
  }
  return ref;
}

START_TEST(case_key_known_answers) {
  uint64_t k;
  ck_assert_int_eq(csal3d_case_key("case_001", &k), CSAL3D_OK);
  ck_assert_uint_eq(k, 0x8c971469ff366342ull);
  ck_assert_int_eq(csal3d_case_key("", &k), CSAL3D_OK);
  ck_assert_uint_eq(k, 0xc3817c016ba4ff30ull);
  ck_assert_int_eq(csal3d_case_key("hippocampus_001", &k), CSAL3D_OK);
  ck_assert_uint_eq(k, 0xc4792c9ea3b50afcull);
  ck_assert_int_eq(csal3d_case_key(NULL, &k), CSAL3D_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(metadata_schema_and_file) {
  fixture f;
  fx_open(&f, NULL, 32);
  char out[320], partial[330];
  path_in(out, sizeof out, "schema.safetensors");
  snprintf(partial, sizeof partial, "%s.partial", out);
  csal3d_scores *t;
  ck_assert_msg(score_to(&f, out, NULL, &t) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert(!exists(partial));
  int64_t n, d;
  csal3d_scores_size(t, &n, &d);
  ck_assert_int_eq(n, NCASES);
  ck_assert_int_eq(d, 64); /* 16 x 12 / 3 */
  size_t need;
  ck_assert_int_eq(csal3d_scores_metadata_json(t, NULL, 0, &need), CSAL3D_OK);
  char *text = malloc(need);
  csal3d_scores_metadata_json(t, text, need, NULL);
  json_t *m = json_loads(text, 0, NULL);
  ck_assert(m != NULL);
  static const char *keys[] = {"checkpoint", "checkpoint_checksum", "checkpoint_step",
                               "embed_dim", "in_channels", "dataset", "modality", "channel",
                               "spacing", "window", "stride", "foreground", "feature",
                               "feature_dim", "seed", "draws", "library_version"};
  ck_assert_int_eq(json_object_size(m), sizeof keys / sizeof keys[0]);
  size_t i = 0;
  const char *k;
  json_t *v;
  json_object_foreach(m, k, v) ck_assert_str_eq(k, keys[i++]); /* schema order */
  char real[PATH_MAX];
  ck_assert(realpath(ckpt, real) != NULL);
  ck_assert_str_eq(json_string_value(json_object_get(m, "checkpoint")), real);
  ck_assert(!strncmp(json_string_value(json_object_get(m, "checkpoint_checksum")), "crc32:", 6));
  ck_assert_str_eq(json_string_value(json_object_get(m, "modality")), "ct"); /* dataset.json */
  ck_assert_str_eq(json_string_value(json_object_get(m, "window")), "32,32,64");
  ck_assert_str_eq(json_string_value(json_object_get(m, "stride")), "32,32,32");
  ck_assert_str_eq(json_string_value(json_object_get(m, "draws")), "case-id");
  ck_assert_str_eq(json_string_value(json_object_get(m, "feature_dim")), "64");
  json_decref(m);
  free(text);
  /* The file holds the same table. */
  csal3d_scores *back;
  ck_assert_int_eq(csal3d_scores_load(out, &back), CSAL3D_OK);
  float a[NCASES], b[NCASES];
  csal3d_scores_copy_scores(t, a, NCASES, NULL);
  csal3d_scores_copy_scores(back, b, NCASES, NULL);
  ck_assert(!memcmp(a, b, sizeof a));
  csal3d_scores_free(back);
  csal3d_scores_free(t);
  fx_close(&f);
}
END_TEST

/* Score and feature of case `id` in a table; 0 when absent. */
static int find_case(csal3d_scores *t, const char *id, float *score, float *feat) {
  int64_t n, d;
  csal3d_scores_size(t, &n, &d);
  float *s = malloc((size_t)n * 4), *x = malloc((size_t)(n * d) * 4);
  csal3d_scores_copy_scores(t, s, (size_t)n, NULL);
  csal3d_scores_copy_features(t, x, (size_t)(n * d), NULL);
  int found = 0;
  for (int64_t i = 0; i < n && !found; i++) {
    char cid[256];
    csal3d_scores_case_string(t, i, "id", cid, sizeof cid, NULL);
    if (!strcmp(cid, id)) {
      *score = s[i];
      memcpy(feat, x + i * d, (size_t)d * 4);
      found = 1;
    }
  }
  free(s);
  free(x);
  return found;
}

START_TEST(order_and_subset_do_not_change_scores) {
  csal3d_scores *all;
  ck_assert_int_eq(csal3d_scores_load(reference_file(), &all), CSAL3D_OK);
  /* A subset in another order. */
  fixture f;
  fx_open(&f, NULL, 32);
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  size_t pick[3] = {5, 2, 0};
  o.cases = pick;
  o.case_count = 3;
  csal3d_scores *sub;
  ck_assert_msg(csal3d_score_dataset(f.u, f.ds, &o, &sub) == CSAL3D_OK, "%s", csal3d_last_error());
  int64_t n;
  csal3d_scores_size(sub, &n, NULL);
  ck_assert_int_eq(n, 3);
  char id[256];
  csal3d_scores_case_string(sub, 0, "id", id, sizeof id, NULL);
  ck_assert_str_eq(id, "phantom_005"); /* the order asked for */
  /* The same cases listed in reverse in a list file: another dataset. */
  char list[320];
  path_in(list, sizeof list, "reversed.txt");
  FILE *lf = fopen(list, "w");
  for (int i = NCASES - 1; i >= 0; i--) fprintf(lf, "%s/imagesTr/phantom_%03d.nii.gz\n", data, i);
  fclose(lf);
  fixture g;
  fx_open(&g, list, 32);
  csal3d_score_options lo;
  csal3d_score_options_init(&lo);
  csal3d_volume_load_options vl; /* a list file states no modality: say CT */
  csal3d_volume_load_options_init(&vl);
  vl.modality = CSAL3D_MODALITY_CT;
  lo.load = &vl;
  csal3d_scores *rev;
  ck_assert_msg(csal3d_score_dataset(g.u, g.ds, &lo, &rev) == CSAL3D_OK, "%s", csal3d_last_error());
  for (int i = 0; i < NCASES; i++) {
    char cid[32];
    snprintf(cid, sizeof cid, "phantom_%03d", i);
    float s0, s1, f0[64], f1[64];
    ck_assert(find_case(all, cid, &s0, f0));
    ck_assert(find_case(rev, cid, &s1, f1));
    ck_assert_msg(!memcmp(&s0, &s1, 4) && !memcmp(f0, f1, sizeof f0), "%s differs reversed", cid);
    if (find_case(sub, cid, &s1, f1))
      ck_assert_msg(!memcmp(&s0, &s1, 4) && !memcmp(f0, f1, sizeof f0), "%s differs in a subset",
                    cid);
  }
  csal3d_scores_free(rev);
  csal3d_scores_free(sub);
  csal3d_scores_free(all);
  fx_close(&g);
  fx_close(&f);
}
END_TEST

typedef struct counter {
  int calls, reused, failed, stop_after, kill_after;
  char failed_id[64];
} counter;

static int on_case(void *user, size_t index, const char *id, csal3d_status status, double score,
                   int reused, const char *message) {
  counter *c = user;
  (void)index, (void)score, (void)message;
  c->calls++;
  c->reused += reused;
  if (status != CSAL3D_OK) {
    c->failed++;
    snprintf(c->failed_id, sizeof c->failed_id, "%s", id);
  }
  if (c->kill_after && c->calls == c->kill_after) raise(SIGKILL);
  return c->stop_after && c->calls >= c->stop_after;
}

START_TEST(resume_after_cancel_is_bitwise_equal) {
  const char *ref = reference_file();
  fixture f;
  fx_open(&f, NULL, 32);
  char out[320], partial[330];
  path_in(out, sizeof out, "cancelled.safetensors");
  snprintf(partial, sizeof partial, "%s.partial", out);
  counter c = {.stop_after = 2};
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  o.on_case = on_case;
  o.on_case_user_data = &c;
  ST_EQ(score_to(&f, out, &o, NULL), CSAL3D_ERR_CANCELLED);
  ck_assert_msg(strstr(csal3d_last_error(), "2 cases scored are kept"), "%s", csal3d_last_error());
  ck_assert(!exists(out));
  ck_assert(exists(partial));
  counter c2 = {0};
  o.on_case_user_data = &c2;
  ck_assert_msg(score_to(&f, out, &o, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(c2.calls, NCASES);
  ck_assert_int_eq(c2.reused, 2);
  ck_assert(!exists(partial));
  assert_same_file(ref, out);
  fx_close(&f);
}
END_TEST

START_TEST(resume_after_sigkill_is_bitwise_equal) {
  /* Fork before this process runs OpenMP (a forked child cannot use the parent's
   * thread pool); the reference comes after. */
  char out[320], partial[330];
  path_in(out, sizeof out, "killed.safetensors");
  snprintf(partial, sizeof partial, "%s.partial", out);
  pid_t pid = fork();
  ck_assert(pid >= 0);
  if (pid == 0) {
    fixture f;
    fx_open(&f, NULL, 32);
    counter c = {.kill_after = 3};
    csal3d_score_options o;
    csal3d_score_options_init(&o);
    o.on_case = on_case;
    o.on_case_user_data = &c;
    score_to(&f, out, &o, NULL);
    _exit(0); /* not reached */
  }
  int st;
  ck_assert(waitpid(pid, &st, 0) == pid);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  ck_assert(!exists(out));
  /* A torn record at the end, as a kill inside a write leaves it. */
  int fd = open(partial, O_WRONLY | O_APPEND);
  ck_assert(fd >= 0);
  ck_assert_int_eq(write(fd, "REC1\x40\x00\x00\x00garbage", 15), 15);
  close(fd);
  const char *ref = reference_file();
  fixture f;
  fx_open(&f, NULL, 32);
  counter c = {0};
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  o.on_case = on_case;
  o.on_case_user_data = &c;
  ck_assert_msg(score_to(&f, out, &o, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(c.reused, 3);
  assert_same_file(ref, out);
  fx_close(&f);
}
END_TEST

START_TEST(journal_of_other_settings_refused) {
  fixture f;
  fx_open(&f, NULL, 32);
  char out[320];
  path_in(out, sizeof out, "settings.safetensors");
  counter c = {.stop_after = 1};
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  o.on_case = on_case;
  o.on_case_user_data = &c;
  ST_EQ(score_to(&f, out, &o, NULL), CSAL3D_ERR_CANCELLED);
  fx_close(&f);
  fixture g;
  fx_open(&g, NULL, 16); /* another stride */
  counter c2 = {0};
  o.on_case_user_data = &c2;
  ST_EQ(score_to(&g, out, &o, NULL), CSAL3D_ERR_FORMAT);
  ck_assert_msg(strstr(csal3d_last_error(), "stride") && strstr(csal3d_last_error(), "32,32,32"),
                "%s", csal3d_last_error());
  ck_assert_int_eq(c2.calls, 0);
  o.resume = 0; /* start afresh */
  ck_assert_msg(score_to(&g, out, &o, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(c2.reused, 0);
  fx_close(&g);
}
END_TEST

START_TEST(outputs_checked_before_any_work) {
  fixture f;
  fx_open(&f, NULL, 32);
  counter c = {0};
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  o.on_case = on_case;
  o.on_case_user_data = &c;
  char out[320];
  path_in(out, sizeof out, "exists.safetensors");
  FILE *x = fopen(out, "w");
  fputs("keep me", x);
  fclose(x);
  ST_EQ(score_to(&f, out, &o, NULL), CSAL3D_ERR_IO);
  ck_assert_msg(strstr(csal3d_last_error(), "exists"), "%s", csal3d_last_error());
  /* the checkpoint is an input: never an output, even when overwriting */
  o.overwrite = 1;
  ST_EQ(score_to(&f, ckpt, &o, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(csal3d_last_error(), "input"), "%s", csal3d_last_error());
  /* so is an image of the dataset */
  char img[400];
  snprintf(img, sizeof img, "%s/imagesTr/phantom_001.nii.gz", data);
  ST_EQ(score_to(&f, img, &o, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  /* a folder that does not exist */
  char missing[320];
  path_in(missing, sizeof missing, "no/such/folder/s.safetensors");
  ST_EQ(score_to(&f, missing, &o, NULL), CSAL3D_ERR_IO);
  ck_assert_msg(strstr(csal3d_last_error(), "does not exist"), "%s", csal3d_last_error());
  /* maps among the dataset's images */
  char images[400];
  snprintf(images, sizeof images, "%s/imagesTr", data);
  o.maps_dir = images;
  path_in(out, sizeof out, "maps_in_images.safetensors");
  ST_EQ(score_to(&f, out, &o, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c.calls, 0); /* nothing was scored */
  /* a map that exists, not made by an earlier run of these settings */
  char maps[320], m0[400];
  path_in(maps, sizeof maps, "maps_exist");
  mkdir(maps, 0777);
  snprintf(m0, sizeof m0, "%s/phantom_003_uncertainty.nii.gz", maps);
  x = fopen(m0, "w");
  fputs("user's", x);
  fclose(x);
  o.maps_dir = maps;
  o.overwrite = 0;
  ST_EQ(score_to(&f, out, &o, NULL), CSAL3D_ERR_IO);
  ck_assert_msg(strstr(csal3d_last_error(), "phantom_003_uncertainty"), "%s", csal3d_last_error());
  ck_assert_int_eq(c.calls, 0);
  size_t n;
  unsigned char *b = slurp(m0, &n);
  ck_assert(n == 6 && !memcmp(b, "user's", 6));
  free(b);
  fx_close(&f);
}
END_TEST

START_TEST(maps_written_recorded_and_reused) {
  fixture f;
  fx_open(&f, NULL, 32);
  char out[320], maps[320];
  path_in(out, sizeof out, "maps.safetensors");
  path_in(maps, sizeof maps, "maps/deeper");
  counter c = {.stop_after = 2};
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  o.maps_dir = maps;
  o.on_case = on_case;
  o.on_case_user_data = &c;
  ST_EQ(score_to(&f, out, &o, NULL), CSAL3D_ERR_CANCELLED);
  /* Until a run succeeds its maps wait in a hidden folder beside the maps folder. */
  char stage[330], m0[400];
  path_in(stage, sizeof stage, "maps/.deeper.partial");
  snprintf(m0, sizeof m0, "%s/phantom_000_uncertainty.nii.gz", stage);
  ck_assert(!exists(maps) && exists(m0));
  counter c2 = {0};
  o.on_case_user_data = &c2; /* the maps of the first run are its own: reused */
  csal3d_scores *t;
  ck_assert_msg(score_to(&f, out, &o, &t) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(c2.reused, 2);
  ck_assert(!exists(stage));
  for (int64_t i = 0; i < NCASES; i++) {
    char mp[512], id[64];
    csal3d_scores_case_string(t, i, "map", mp, sizeof mp, NULL);
    csal3d_scores_case_string(t, i, "id", id, sizeof id, NULL);
    ck_assert_msg(strstr(mp, id) && exists(mp), "map %s", mp);
    csal3d_volume *v;
    ck_assert_int_eq(csal3d_volume_load(mp, NULL, &v), CSAL3D_OK);
    csal3d_volume_free(v);
  }
  csal3d_scores_free(t);
  /* Scores with maps equal the reference (maps change nothing else). */
  csal3d_scores *ref;
  ck_assert_int_eq(csal3d_scores_load(reference_file(), &ref), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_load(out, &t), CSAL3D_OK);
  float a[NCASES], b[NCASES];
  csal3d_scores_copy_scores(t, a, NCASES, NULL);
  csal3d_scores_copy_scores(ref, b, NCASES, NULL);
  ck_assert(!memcmp(a, b, sizeof a));
  csal3d_scores_free(t);
  csal3d_scores_free(ref);
  fx_close(&f);
}
END_TEST

/* A list dataset of cases 0..2 and a broken file in the middle. */
static void broken_list(char *list, size_t cap) {
  char bad[320];
  path_in(bad, sizeof bad, "broken.nii.gz");
  FILE *x = fopen(bad, "w");
  fputs("this is not a NIfTI file", x);
  fclose(x);
  snprintf(list, cap, "%s/with_broken.txt", dir);
  x = fopen(list, "w");
  fprintf(x, "%s/imagesTr/phantom_000.nii.gz\n%s\n%s/imagesTr/phantom_001.nii.gz\n"
             "%s/imagesTr/phantom_002.nii.gz\n", data, bad, data, data);
  fclose(x);
}

START_TEST(failing_cases_stop_or_are_skipped) {
  char list[320], out[320], partial[330];
  broken_list(list, sizeof list);
  fixture f;
  fx_open(&f, list, 32);
  csal3d_volume_load_options vl;
  csal3d_volume_load_options_init(&vl);
  vl.modality = CSAL3D_MODALITY_CT;
  counter c = {0};
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  o.load = &vl;
  o.on_case = on_case;
  o.on_case_user_data = &c;
  path_in(out, sizeof out, "broken.safetensors");
  snprintf(partial, sizeof partial, "%s.partial", out);
  ST_EQ(score_to(&f, out, &o, NULL), CSAL3D_ERR_FORMAT);
  ck_assert_msg(strstr(csal3d_last_error(), "case 'broken'") &&
                    strstr(csal3d_last_error(), "1 cases scored are kept"),
                "%s", csal3d_last_error());
  ck_assert(exists(partial) && !exists(out));
  /* skip: the others are scored (one reused from the journal), the broken one named */
  o.on_error = CSAL3D_CASE_ERRORS_SKIP;
  counter c2 = {0};
  o.on_case_user_data = &c2;
  csal3d_scores *t;
  ck_assert_msg(score_to(&f, out, &o, &t) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(c2.failed, 1);
  ck_assert_str_eq(c2.failed_id, "broken");
  ck_assert_int_eq(c2.reused, 1);
  int64_t n;
  csal3d_scores_size(t, &n, NULL);
  ck_assert_int_eq(n, 3);
  char buf[2048];
  ck_assert_int_eq(csal3d_scores_get_metadata(t, "skipped_cases", buf, sizeof buf, NULL),
                   CSAL3D_OK);
  json_t *j = json_loads(buf, 0, NULL);
  ck_assert(json_is_array(j) && json_array_size(j) == 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "id")), "broken");
  ck_assert(strstr(json_string_value(json_object_get(json_array_get(j, 0), "error")), "NIfTI"));
  json_decref(j);
  csal3d_scores_free(t);
  /* without a journal (no output), the maps a failed run made are taken back */
  char maps[320];
  path_in(maps, sizeof maps, "maps_rollback");
  csal3d_score_options m;
  csal3d_score_options_init(&m);
  m.load = &vl;
  m.maps_dir = maps;
  ST_EQ(csal3d_score_dataset(f.u, f.ds, &m, NULL), CSAL3D_ERR_FORMAT);
  char stage[330];
  path_in(stage, sizeof stage, ".maps_rollback.partial");
  ck_assert(!exists(maps) && !exists(stage));
  fx_close(&f);
}
END_TEST

START_TEST(hostile_journals) {
  /* A valid journal, then every truncation and a few corruptions of it. */
  char p[320];
  path_in(p, sizeof p, "hostile.partial");
  unlink(p);
  c3_journal j;
  ck_assert_int_eq(c3_journal_open(p, "{\"a\":\"1\"}", 2, 1, &j), CSAL3D_OK);
  float f2[2] = {1.5f, -2.0f};
  ck_assert_int_eq(c3_journal_append(&j, "case_a", "/x/a.nii.gz", NULL, 0.25f, f2), CSAL3D_OK);
  ck_assert_int_eq(c3_journal_append(&j, "case_b", "/x/b.nii.gz", "/m/b.nii.gz", 0.5f, f2),
                   CSAL3D_OK);
  c3_journal_close(&j, 0);
  size_t n;
  unsigned char *b = slurp(p, &n);
  c3_journal k;
  ck_assert_int_eq(c3_journal_parse(b, n, "j", &k), CSAL3D_OK);
  ck_assert_uint_eq(k.n, 2);
  ck_assert_str_eq(k.recs[1].map, "/m/b.nii.gz");
  ck_assert(k.recs[0].map == NULL);
  ck_assert(c3_journal_find(&k, "case_b", "/x/b.nii.gz") != NULL);
  ck_assert(c3_journal_find(&k, "case_b", "/other/b.nii.gz") == NULL);
  c3_journal_close(&k, 0);
  size_t last_header = 0;
  for (size_t len = 0; len < n; len++) {
    csal3d_status s = c3_journal_parse(b, len, "j", &k);
    if (s == CSAL3D_OK) {
      if (!last_header) last_header = len;
      ck_assert(k.n < 2);
      ck_assert(k.valid_bytes <= len);
      c3_journal_close(&k, 0);
    } else {
      ck_assert_int_eq(s, CSAL3D_ERR_FORMAT);
      ck_assert(last_header == 0);
    }
  }
  ck_assert(last_header > 0);
  for (size_t i = 0; i < n; i++) { /* every byte flipped: never a crash, never more */
    b[i] ^= 0x5a;
    if (c3_journal_parse(b, n, "j", &k) == CSAL3D_OK) {
      ck_assert(k.n <= 2);
      c3_journal_close(&k, 0);
    }
    b[i] ^= 0x5a;
  }
  free(b);
  /* the fuzzer's corpus, replayed */
  const char *corpus = "tests/data/score_journal";
  char cmd[512];
  snprintf(cmd, sizeof cmd, "ls %s 2>/dev/null", corpus);
  FILE *ls = popen(cmd, "r");
  char name[256];
  int files = 0;
  while (ls && fgets(name, sizeof name, ls)) {
    name[strcspn(name, "\n")] = '\0';
    char fp[512];
    snprintf(fp, sizeof fp, "%s/%s", corpus, name);
    unsigned char *c = slurp(fp, &n);
    if (c3_journal_parse(c, n, fp, &k) == CSAL3D_OK) c3_journal_close(&k, 0);
    free(c);
    files++;
  }
  if (ls) pclose(ls);
  ck_assert_msg(files > 0, "no corpus in %s", corpus);
}
END_TEST

/* One folder per subject (ids "s1/ct", "s2/ct"): scored, the ids kept in the scores
 * file, maps named with '_' for '/'; ids whose map names would clash are refused before
 * any work, naming both. */
START_TEST(subject_ids_with_slash) {
  char subj[320], link[400], target[400];
  path_in(subj, sizeof subj, "subjects");
  ck_assert_int_eq(mkdir(subj, 0755), 0);
  for (int i = 0; i < 2; i++) {
    snprintf(link, sizeof link, "%s/s%d", subj, i + 1);
    ck_assert_int_eq(mkdir(link, 0755), 0);
    snprintf(link, sizeof link, "%s/s%d/ct.nii.gz", subj, i + 1);
    snprintf(target, sizeof target, "%s/imagesTr/phantom_00%d.nii.gz", data, i);
    ck_assert_int_eq(symlink(target, link), 0);
  }
  fixture f;
  fx_open(&f, subj, 32);
  char out[320], maps[320];
  path_in(out, sizeof out, "subjects.safetensors");
  path_in(maps, sizeof maps, "subject_maps");
  csal3d_score_options o;
  csal3d_score_options_init(&o);
  o.maps_dir = maps;
  csal3d_scores *t;
  ST_EQ(score_to(&f, out, &o, &t), CSAL3D_OK);
  csal3d_scores_free(t);
  ck_assert_int_eq(csal3d_scores_load(out, &t), CSAL3D_OK);
  const char *want[2] = {"s1/ct", "s2/ct"};
  for (int64_t i = 0; i < 2; i++) {
    char id[64], mp[512], name[64];
    csal3d_scores_case_string(t, i, "id", id, sizeof id, NULL);
    ck_assert_str_eq(id, want[i]);
    csal3d_scores_case_string(t, i, "map", mp, sizeof mp, NULL);
    snprintf(name, sizeof name, "/s%d_ct_uncertainty.nii.gz", (int)i + 1);
    ck_assert_msg(strstr(mp, name) && exists(mp), "map %s", mp);
  }
  csal3d_scores_free(t);
  fx_close(&f);
  /* a/b_c and a_b/c would both write a_b_c_uncertainty.nii.gz. */
  char csv[320];
  path_in(csv, sizeof csv, "clash.csv");
  FILE *x = fopen(csv, "w");
  fprintf(x, "id,image\na/b_c,%s/imagesTr/phantom_000.nii.gz\na_b/c,%s/imagesTr/phantom_001.nii.gz\n",
          data, data);
  fclose(x);
  fx_open(&f, csv, 32);
  path_in(out, sizeof out, "clash.safetensors");
  ST_EQ(score_to(&f, out, &o, NULL), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "cases 'a/b_c' and 'a_b/c'"));
  ck_assert(!exists(out));
  fx_close(&f);
}
END_TEST

/* Issue 12: a file without orientation codes (qform_code and sform_code 0) is read as
 * NIfTI's method 1 says; the run warns through the context's log, once per file however
 * often it is loaded, naming it. */
typedef struct warnings {
  int n, orientation;
  char last[2048];
} warnings;

static void on_log(void *user, csal3d_log_level level, const char *msg) {
  warnings *w = user;
  if (level != CSAL3D_LOG_WARN) return;
  w->n++;
  if (strstr(msg, "has no orientation")) {
    w->orientation++;
    snprintf(w->last, sizeof w->last, "%s", msg);
  }
}

/* A copy of `src` (a NIfTI-1 .nii) at `dst` with both orientation codes 0. */
static void copy_without_orientation(const char *src, const char *dst) {
  size_t n;
  unsigned char *b = slurp(src, &n);
  ck_assert(n > 352 && b[0] == 92 && b[1] == 1); /* sizeof_hdr 348, little endian */
  b[252] = b[253] = b[254] = b[255] = 0;          /* qform_code, sform_code */
  FILE *f = fopen(dst, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fwrite(b, 1, n, f), n);
  fclose(f);
  free(b);
}

START_TEST(files_without_orientation_warn_once) {
  char nii[320], bare[320], csv[320], out[320];
  path_in(nii, sizeof nii, "oriented.nii");
  path_in(bare, sizeof bare, "bare.nii");
  csal3d_volume *v;
  char src[400];
  snprintf(src, sizeof src, "%s/imagesTr/phantom_001.nii.gz", data);
  ST_EQ(csal3d_volume_load(src, NULL, &v), CSAL3D_OK);
  ST_EQ(csal3d_volume_save(v, nii, NULL), CSAL3D_OK);
  csal3d_volume_free(v);
  copy_without_orientation(nii, bare);
  csal3d_volume_source_info si = {.struct_size = sizeof si};
  ST_EQ(csal3d_volume_load(bare, NULL, &v), CSAL3D_OK);
  ST_EQ(csal3d_volume_source(v, &si), CSAL3D_OK);
  ck_assert(si.qform_code == 0 && si.sform_code == 0);
  csal3d_volume_free(v);
  path_in(csv, sizeof csv, "orientation.csv");
  FILE *x = fopen(csv, "w");
  fprintf(x, "id,image\nwith_codes,%s/imagesTr/phantom_000.nii.gz\nwithout,%s\n", data, bare);
  fclose(x);
  warnings w;
  memset(&w, 0, sizeof w);
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.log = on_log;
  co.log_user_data = &w;
  co.log_level = CSAL3D_LOG_WARN;
  fixture f;
  fx_open(&f, csv, 32);
  csal3d_uncertainty_free(f.u);
  csal3d_ssl_model_free(f.m);
  csal3d_context_free(f.ctx);
  ck_assert_int_eq(csal3d_context_create(&co, &f.ctx), CSAL3D_OK);
  ST_EQ(csal3d_ssl_model_load(f.ctx, ckpt, &f.m), CSAL3D_OK);
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  for (int a = 0; a < 3; a++) uo.window[a] = a == 2 ? 64 : 32, uo.stride[a] = 32;
  ST_EQ(csal3d_uncertainty_create(f.m, &uo, &f.u), CSAL3D_OK);
  path_in(out, sizeof out, "orientation.safetensors");
  ST_EQ(score_to(&f, out, NULL, NULL), CSAL3D_OK);
  ck_assert_msg(w.orientation == 1, "%d warnings", w.orientation);
  ck_assert_msg(strstr(w.last, bare) && strstr(w.last, "case 'without'") &&
                    strstr(w.last, "qform_code and sform_code are 0") &&
                    strstr(w.last, "method 1"), "%s", w.last);
  /* Loaded again and again in one run (pretraining without a cache): still once. */
  c3_data_check chk;
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.modality = CSAL3D_MODALITY_NONE;
  c3_data_check_init(&chk, f.m, &lo, "pretraining", f.ctx);
  for (int rep = 0; rep < 3; rep++)
    for (size_t c = 0; c < 2; c++) {
      ST_EQ(c3_data_load_case(&chk, f.ds, c, &lo, &v), CSAL3D_OK);
      csal3d_volume_free(v);
    }
  c3_data_check_clear(&chk);
  ck_assert_msg(w.orientation == 2, "%d warnings", w.orientation);
  fx_close(&f);
}
END_TEST

/* The fixtures are made in a child process: the test runner forks each test, and a
 * process that has started OpenMP's threads cannot use them after a fork. */
static void make_fixtures_child(void);
static void make_fixtures(void) {
  snprintf(dir, sizeof dir, "/tmp/csal3d_score_XXXXXX");
  if (!mkdtemp(dir)) abort();
  snprintf(data, sizeof data, "%s/phantom", dir);
  snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", dir);
  pid_t pid = fork();
  if (pid < 0) abort();
  if (pid == 0) {
    make_fixtures_child();
    _exit(0);
  }
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) abort();
}

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
  csal3d_ssl_options so;
  csal3d_ssl_options_init(&so);
  so.embed_dim = 12;
  so.crop_size[0] = so.crop_size[1] = so.crop_size[2] = 32;
  csal3d_ssl_model *m;
  if (csal3d_ssl_model_create(ctx, &so, &m) != CSAL3D_OK) abort();
  if (csal3d_ssl_model_save(m, ckpt) != CSAL3D_OK) abort();
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
}

int main(int argc, char **argv) {
  c3_test_passive_openmp(argv);
  (void)argc;
  make_fixtures();
  Suite *s = suite_create("score");
  TCase *t = tcase_create("score");
  tcase_set_timeout(t, 600);
  tcase_add_test(t, case_key_known_answers);
  tcase_add_test(t, metadata_schema_and_file);
  tcase_add_test(t, order_and_subset_do_not_change_scores);
  tcase_add_test(t, resume_after_cancel_is_bitwise_equal);
  tcase_add_test(t, resume_after_sigkill_is_bitwise_equal);
  tcase_add_test(t, journal_of_other_settings_refused);
  tcase_add_test(t, outputs_checked_before_any_work);
  tcase_add_test(t, maps_written_recorded_and_reused);
  tcase_add_test(t, failing_cases_stop_or_are_skipped);
  tcase_add_test(t, hostile_journals);
  tcase_add_test(t, subject_ids_with_slash);
  tcase_add_test(t, files_without_orientation_warn_once);
  suite_add_tcase(s, t);
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
