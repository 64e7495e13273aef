/* Tests of the pipeline's files (include/csal3d/manifest.h): the scores file (round trip,
 * validation, checksum, the checked-in corpus tests/data/scores which also seeds
 * tests/fuzz_scores.c, allocation failures), the manifest (CSV and JSON read back), the
 * nnU-Net v2 export (byte copies, gzip of .nii, 4-D split, labels, dataset.json, names
 * from decathlon / nnU-Net dataset.json, no partial folder on any failure, what killed
 * exports left removed by the next) and the
 * dataset.json names reader (seeds tests/fuzz_dataset_names.c). */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "csal3d/csal3d.h"
#include "pipeline/commit.h"
#include "pipeline/nnunet.h"
#include "pipeline/scores.h"
#include "hostile.h"

static char dir[256];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/csal3d_manifest_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static const char *P(const char *name) {
  static char bufs[8][1024];
  static int k;
  char *b = bufs[k++ % 8];
  snprintf(b, 1024, "%s/%s", dir, name);
  return b;
}

static int exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0;
}

/* Number of entries in dir (besides . and ..). */
static int count_entries(const char *d) {
  DIR *h = opendir(d);
  ck_assert_ptr_nonnull(h);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(h)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(h);
  return n;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  ck_assert_msg(f != NULL, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
  b[n] = '\0';
  fclose(f);
  if (len) *len = (size_t)n;
  return b;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

static const char *cstr(const csal3d_scores *s, int64_t i, const char *what) {
  static char buf[2048];
  ck_assert_msg(csal3d_scores_case_string(s, i, what, buf, sizeof buf, NULL) == CSAL3D_OK, "%s",
                csal3d_last_error());
  return buf;
}

/* A table of n cases "case_i" with d-dimensional features i + j/10, score i/10. */
static csal3d_scores *make_scores(int64_t n, int64_t d) {
  csal3d_scores *s;
  ck_assert_int_eq(csal3d_scores_create(n, d, &s), CSAL3D_OK);
  float f[16];
  for (int64_t i = 0; i < n; i++) {
    char id[32], img[64], lab[64];
    snprintf(id, sizeof id, "case_%02d", (int)i);
    snprintf(img, sizeof img, "/data/images/case_%02d.nii.gz", (int)i);
    snprintf(lab, sizeof lab, "/data/labels/case_%02d.nii.gz", (int)i);
    for (int64_t j = 0; j < d; j++) f[j] = (float)i + (float)j / 10;
    const char *imgs[1] = {img};
    ck_assert_msg(csal3d_scores_set_case(s, i, id, imgs, 1, i % 2 ? NULL : lab, (float)i / 10,
                                         f) == CSAL3D_OK, "%s", csal3d_last_error());
  }
  return s;
}

/* ---- scores file ---- */

START_TEST(scores_round_trip) {
  csal3d_scores *s = make_scores(5, 3);
  const char *imgs[2] = {"rel/a_0000.nii.gz", "/abs/a_0001.nii.gz"};
  float f[3] = {-1, 0.5f, 1e-20f};
  ck_assert_int_eq(csal3d_scores_set_case(s, 2, "two,\"channels\"", imgs, 2, "", 7.25f, f),
                   CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_set_case_map(s, 3, "maps/case_03.nii.gz"), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "checkpoint", "/m/ssl.safetensors"), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "window", "64,64,64"), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "drop", "x"), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "drop", NULL), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_save(s, P("s.safetensors")), CSAL3D_OK);
  csal3d_scores *t;
  ck_assert_msg(csal3d_scores_load(P("s.safetensors"), &t) == CSAL3D_OK, "%s",
                csal3d_last_error());
  int64_t n, d;
  csal3d_scores_size(t, &n, &d);
  ck_assert_int_eq(n, 5);
  ck_assert_int_eq(d, 3);
  float a[15], b[15], sa[5], sb[5];
  size_t need;
  ck_assert_int_eq(csal3d_scores_copy_features(s, a, 15, &need), CSAL3D_OK);
  ck_assert_int_eq(need, 15);
  ck_assert_int_eq(csal3d_scores_copy_features(t, b, 15, NULL), CSAL3D_OK);
  ck_assert_mem_eq(a, b, sizeof a);
  ck_assert_int_eq(csal3d_scores_copy_scores(s, sa, 5, NULL), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_copy_scores(t, sb, 5, NULL), CSAL3D_OK);
  ck_assert_mem_eq(sa, sb, sizeof sa);
  ck_assert(sb[2] == 7.25f);
  for (int64_t i = 0; i < 5; i++) {
    char want[2048];
    snprintf(want, sizeof want, "%s", cstr(s, i, "id"));
    ck_assert_str_eq(cstr(t, i, "id"), want);
    snprintf(want, sizeof want, "%s", cstr(s, i, "image"));
    ck_assert_str_eq(cstr(t, i, "image"), want);
    snprintf(want, sizeof want, "%s", cstr(s, i, "label"));
    ck_assert_str_eq(cstr(t, i, "label"), want);
    snprintf(want, sizeof want, "%s", cstr(s, i, "map"));
    ck_assert_str_eq(cstr(t, i, "map"), want);
  }
  /* Relative paths became absolute (cwd); "" label means none. */
  char cwd[1024], want[2048];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  snprintf(want, sizeof want, "%s/rel/a_0000.nii.gz", cwd);
  ck_assert_str_eq(cstr(t, 2, "image:0"), want);
  ck_assert_str_eq(cstr(t, 2, "image:1"), "/abs/a_0001.nii.gz");
  snprintf(want, sizeof want, "%s/maps/case_03.nii.gz", cwd);
  ck_assert_str_eq(cstr(t, 3, "map"), want);
  ck_assert_str_eq(cstr(t, 2, "id"), "two,\"channels\"");
  int nimg, has_label;
  ck_assert_int_eq(csal3d_scores_case_info(t, 2, &nimg, &has_label), CSAL3D_OK);
  ck_assert_int_eq(nimg, 2);
  ck_assert_int_eq(has_label, 0);
  ck_assert_int_eq(csal3d_scores_case_info(t, 0, &nimg, &has_label), CSAL3D_OK);
  ck_assert_int_eq(has_label, 1);
  /* Metadata kept in order, removed key gone. */
  char buf[256];
  ck_assert_int_eq(csal3d_scores_get_metadata(t, "window", buf, sizeof buf, &need), CSAL3D_OK);
  ck_assert_str_eq(buf, "64,64,64");
  ck_assert_int_eq(need, 9);
  ck_assert_int_eq(csal3d_scores_get_metadata(t, "drop", buf, sizeof buf, &need), CSAL3D_OK);
  ck_assert_int_eq(need, 0);
  ck_assert_str_eq(buf, "");
  ck_assert_int_eq(csal3d_scores_metadata_json(t, buf, sizeof buf, NULL), CSAL3D_OK);
  ck_assert_str_eq(buf, "{\"checkpoint\":\"/m/ssl.safetensors\",\"window\":\"64,64,64\"}");
  csal3d_scores_free(s);
  csal3d_scores_free(t);
}
END_TEST

START_TEST(scores_arguments_and_states) {
  csal3d_scores *s;
  ck_assert_int_eq(csal3d_scores_create(0, 3, &s), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(s);
  ck_assert_int_eq(csal3d_scores_create(3, 0, &s), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_scores_create(INT64_MAX, INT64_MAX, &s), CSAL3D_ERR_OUT_OF_MEMORY);
  ck_assert_int_eq(csal3d_scores_create(3, 2, &s), CSAL3D_OK);
  const char *img[1] = {"/x.nii.gz"};
  float f[2] = {1, 2}, fn[2] = {1, NAN};
  ck_assert_int_eq(csal3d_scores_set_case(s, 3, "a", img, 1, NULL, 0, f),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_scores_set_case(s, 0, "", img, 1, NULL, 0, f),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  /* Ids may hold '/' between parts (subj01/flair), not empty, "." or ".." parts nor
   * control characters. */
  const char *bad_ids[] = {"a/../b", "/a", "a/", "a//b", "./a", "a\nb", "a\tb", "\x7f"};
  for (size_t k = 0; k < sizeof bad_ids / sizeof bad_ids[0]; k++)
    ck_assert_msg(csal3d_scores_set_case(s, 0, bad_ids[k], img, 1, NULL, 0, f) ==
                  CSAL3D_ERR_INVALID_ARGUMENT, "id %zu accepted", k);
  ck_assert_int_eq(csal3d_scores_set_case(s, 0, "subj01/flair", img, 1, NULL, 0, f), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_set_case(s, 0, "a", img, 0, NULL, 0, f),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_scores_set_case(s, 0, "a", img, 1, NULL, NAN, f), CSAL3D_ERR_NUMERICAL);
  ck_assert_int_eq(csal3d_scores_set_case(s, 0, "a", img, 1, NULL, 1, fn), CSAL3D_ERR_NUMERICAL);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "feature element 1"));
  ck_assert_int_eq(csal3d_scores_set_case(s, 0, "a", img, 1, NULL, 1, f), CSAL3D_OK);
  /* Unset cases: reads and save fail naming the case. */
  char buf[8];
  ck_assert_int_eq(csal3d_scores_case_string(s, 1, "id", buf, sizeof buf, NULL), CSAL3D_ERR_STATE);
  float out[6];
  ck_assert_int_eq(csal3d_scores_copy_features(s, out, 6, NULL), CSAL3D_ERR_STATE);
  ck_assert_int_eq(csal3d_scores_save(s, P("x.safetensors")), CSAL3D_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 1"));
  ck_assert(!exists(P("x.safetensors")));
  ck_assert_int_eq(csal3d_scores_set_case(s, 1, "b", img, 1, NULL, 1, f), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_set_case(s, 2, "a", img, 1, NULL, 1, f), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_save(s, P("x.safetensors")), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "same id 'a'"));
  ck_assert(!exists(P("x.safetensors")));
  ck_assert_int_eq(count_entries(dir), 0);
  ck_assert_int_eq(csal3d_scores_set_case(s, 2, "c", img, 1, NULL, 1, f), CSAL3D_OK);
  /* Buffers. */
  size_t need;
  ck_assert_int_eq(csal3d_scores_case_string(s, 0, "image", NULL, 0, &need), CSAL3D_OK);
  ck_assert_int_eq(need, strlen("/x.nii.gz") + 1);
  ck_assert_int_eq(csal3d_scores_case_string(s, 0, "image", buf, 4, &need),
                   CSAL3D_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(csal3d_scores_case_string(s, 0, "image:1", buf, sizeof buf, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_scores_case_string(s, 0, "colour", buf, sizeof buf, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_scores_copy_features(s, NULL, 0, &need), CSAL3D_OK);
  ck_assert_int_eq(need, 6);
  ck_assert_int_eq(csal3d_scores_copy_features(s, out, 5, NULL), CSAL3D_ERR_BUFFER_TOO_SMALL);
  /* Metadata keys. */
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "cases", "x"), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "checksum", "x"), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "", "x"), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "k", "\xff\xfe"), CSAL3D_ERR_INVALID_ARGUMENT);
  /* Saving into a missing folder fails cleanly. */
  ck_assert_int_eq(csal3d_scores_save(s, P("no/such/x.safetensors")), CSAL3D_ERR_IO);
  ck_assert_int_eq(csal3d_scores_save(s, P("x.safetensors")), CSAL3D_OK);
  csal3d_scores_free(s);
  csal3d_scores_free(NULL);
  ck_assert_int_eq(csal3d_scores_load(P("missing.safetensors"), &s), CSAL3D_ERR_IO);
  ck_assert_ptr_null(s);
}
END_TEST

START_TEST(scores_checksum_detects_changes) {
  csal3d_scores *s = make_scores(4, 2);
  ck_assert_int_eq(csal3d_scores_save(s, P("s.safetensors")), CSAL3D_OK);
  csal3d_scores_free(s);
  size_t len;
  char *b = read_all(P("s.safetensors"), &len);
  /* Flip a bit in the data section (the last byte is a score). */
  b[len - 1] ^= 0x01;
  ck_assert_int_eq(c3_scores_parse(b, len, "flipped", &s), CSAL3D_ERR_CHECKSUM);
  ck_assert_ptr_null(s);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "flipped: checksum mismatch"));
  b[len - 1] ^= 0x01;
  ck_assert_int_eq(c3_scores_parse(b, len, "ok", &s), CSAL3D_OK);
  csal3d_scores_free(s);
  /* Change a path inside the header (same length, so the framing stays valid). */
  char *p = memmem(b, len, "case_01.nii.gz", 14);
  ck_assert_ptr_nonnull(p);
  p[5] = '9';
  ck_assert_int_eq(c3_scores_parse(b, len, "edited", &s), CSAL3D_ERR_CHECKSUM);
  free(b);
}
END_TEST

static csal3d_status expected_status(const char *name) {
  if (strncmp(name, "valid_", 6) == 0) return CSAL3D_OK;
  if (strncmp(name, "invalid_checksum", 16) == 0) return CSAL3D_ERR_CHECKSUM;
  if (strncmp(name, "invalid_numerical", 17) == 0) return CSAL3D_ERR_NUMERICAL;
  if (strncmp(name, "invalid_unsupported", 19) == 0) return CSAL3D_ERR_UNSUPPORTED;
  return CSAL3D_ERR_FORMAT;
}

/* The checked-in corpus (also the fuzzer's seeds): valid_* load, invalid_* fail with the
 * status their name says, from a file and from memory alike. */
START_TEST(corpus_files_load_or_fail_cleanly) {
  const char *cdir = "tests/data/scores";
  DIR *d = opendir(cdir);
  ck_assert_msg(d != NULL, "corpus folder %s is missing", cdir);
  int seen = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strstr(e->d_name, ".safetensors")) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", cdir, e->d_name);
    csal3d_status want = expected_status(e->d_name);
    csal3d_scores *s = NULL;
    csal3d_status got = csal3d_scores_load(path, &s);
    ck_assert_msg(got == want, "%s: got %s (%s), want %s", e->d_name, csal3d_status_string(got),
                  csal3d_last_error(), csal3d_status_string(want));
    if (got == CSAL3D_OK) {
      int64_t n;
      csal3d_scores_size(s, &n, NULL);
      for (int64_t i = 0; i < n; i++) cstr(s, i, "id");
      csal3d_scores_free(s);
    } else {
      ck_assert_ptr_null(s);
      ck_assert_ptr_nonnull(strstr(csal3d_last_error(), e->d_name));
    }
    size_t len;
    char *b = read_all(path, &len);
    got = c3_scores_parse(b, len, e->d_name, &s);
    ck_assert_msg(got == want, "%s (memory): %s", e->d_name, csal3d_last_error());
    csal3d_scores_free(s);
    free(b);
    seen++;
  }
  closedir(d);
  ck_assert_int_ge(seen, 20);
}
END_TEST

START_TEST(scores_allocation_failures) {
  size_t len;
  char *b = read_all("tests/data/scores/valid_two_channels_map.safetensors", &len);
  int failures = 0;
  for (long k = 1; k < 400; k++) {
    csal3d_scores *s = NULL;
    c3_alloc_fail_after(k);
    csal3d_status st = c3_scores_parse(b, len, "oom", &s);
    c3_alloc_fail_after(0);
    if (st == CSAL3D_OK) {
      csal3d_scores_free(s);
      break;
    }
    ck_assert_int_eq(st, CSAL3D_ERR_OUT_OF_MEMORY);
    ck_assert_ptr_null(s);
    failures++;
  }
  ck_assert_int_gt(failures, 5);
  free(b);
}
END_TEST

START_TEST(scores_from_dataset) {
  char p[1024];
  snprintf(p, sizeof p, "%s/list.txt", dir);
  write_text(p, "imgs/a.nii.gz,labs/a.nii.gz\nimgs/b.nii.gz\n");
  csal3d_dataset *ds;
  ck_assert_msg(csal3d_dataset_open(p, NULL, &ds) == CSAL3D_OK, "%s", csal3d_last_error());
  csal3d_scores *s;
  ck_assert_int_eq(csal3d_scores_create(2, 1, &s), CSAL3D_OK);
  float f = 1;
  for (size_t i = 0; i < 2; i++)
    ck_assert_msg(csal3d_scores_set_case_from_dataset(s, (int64_t)i, ds, i, 0.5f, &f) == CSAL3D_OK,
                  "%s", csal3d_last_error());
  ck_assert_str_eq(cstr(s, 0, "id"), "a");
  ck_assert_str_eq(cstr(s, 0, "image"), P("imgs/a.nii.gz"));
  ck_assert_str_eq(cstr(s, 0, "label"), P("labs/a.nii.gz"));
  ck_assert_str_eq(cstr(s, 1, "label"), "");
  ck_assert_int_eq(csal3d_scores_set_case_from_dataset(s, 0, ds, 5, 0.5f, &f),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_scores_free(s);
  csal3d_dataset_free(ds);
}
END_TEST

/* ---- manifest ---- */

static void make_records(csal3d_selection *r) {
  memset(r, 0, 3 * sizeof *r);
  r[0] = (csal3d_selection){3, 0, 2, 1.5, 0.3, CSAL3D_RULE_URDS};
  r[1] = (csal3d_selection){0, 1, 1, INFINITY, 0.0, CSAL3D_RULE_URDS};
  r[2] = (csal3d_selection){4, 2, 2, NAN, 0.4, CSAL3D_RULE_REFILL};
}

START_TEST(manifest_csv_and_json) {
  csal3d_scores *s = make_scores(5, 2);
  const char *img[1] = {"/data/with,comma \"q\".nii.gz"};
  float f[2] = {0, 0};
  ck_assert_int_eq(csal3d_scores_set_case(s, 4, "case_04", img, 1, NULL, 0.4f, f), CSAL3D_OK);
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "checkpoint", "/m/ssl.safetensors"), CSAL3D_OK);
  csal3d_selection r[3];
  make_records(r);
  int64_t assignment[5] = {1, 0, 0, 0, 2};
  csal3d_manifest_options o;
  csal3d_manifest_options_init(&o);
  o.strategy = CSAL3D_STRATEGY_URDS;
  o.seed = 42;
  o.n_cand = 3;
  o.scores_path = "/runs/scores.safetensors";
  o.assignment = assignment;
  ck_assert_msg(csal3d_manifest_write(s, r, sizeof r[0], 3, &o, P("m.csv"), P("m.json")) ==
                    CSAL3D_OK, "%s", csal3d_last_error());
  char *csv = read_all(P("m.csv"), NULL);
  ck_assert_str_eq(csv,
                   "rank,case,path,label,score,cluster,cluster_size,typicality,rule\n"
                   "1,case_03,/data/images/case_03.nii.gz,,0.3,0,2,1.5,urds\n"
                   "2,case_00,/data/images/case_00.nii.gz,/data/labels/case_00.nii.gz,0,1,1,"
                   "inf,urds\n"
                   "3,case_04,\"/data/with,comma \"\"q\"\".nii.gz\",,0.4,2,2,nan,refill\n");
  free(csv);
  json_error_t err;
  json_t *j = json_load_file(P("m.json"), 0, &err);
  ck_assert_msg(j != NULL, "%s", err.text);
  ck_assert_str_eq(json_string_value(json_object_get(j, "format")), "csal3d-manifest");
  ck_assert_str_eq(json_string_value(json_object_get(j, "strategy")), "urds");
  ck_assert_int_eq(json_integer_value(json_object_get(j, "budget")), 3);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "n_cases")), 5);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "seed")), 42);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "n_cand")), 3);
  ck_assert_str_eq(json_string_value(json_object_get(j, "scores_file")), "/runs/scores.safetensors");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "scores_metadata"),
                                                     "checkpoint")), "/m/ssl.safetensors");
  json_t *sel = json_object_get(j, "selection");
  ck_assert_int_eq(json_array_size(sel), 3);
  json_t *e0 = json_array_get(sel, 0), *e1 = json_array_get(sel, 1), *e2 = json_array_get(sel, 2);
  ck_assert_str_eq(json_string_value(json_object_get(e0, "case")), "case_03");
  ck_assert_int_eq(json_integer_value(json_object_get(e0, "rank")), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(e0, "index")), 3);
  ck_assert(json_is_null(json_object_get(e0, "label")));
  ck_assert_double_eq_tol(json_number_value(json_object_get(e0, "score")), 0.3, 1e-7);
  ck_assert_double_eq_tol(json_number_value(json_object_get(e0, "typicality")), 1.5, 1e-12);
  ck_assert_int_eq(json_integer_value(json_object_get(e0, "cluster_size")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(e1, "typicality")), "inf");
  ck_assert_str_eq(json_string_value(json_object_get(e1, "label")), "/data/labels/case_00.nii.gz");
  ck_assert(json_is_null(json_object_get(e2, "typicality")));
  ck_assert_str_eq(json_string_value(json_object_get(e2, "rule")), "refill");
  ck_assert_str_eq(json_string_value(json_object_get(e2, "path")), "/data/with,comma \"q\".nii.gz");
  ck_assert_int_eq(json_array_size(json_object_get(e2, "images")), 1);
  json_t *cl = json_object_get(j, "clusters");
  ck_assert_int_eq(json_object_size(cl), 5);
  ck_assert_int_eq(json_integer_value(json_object_get(cl, "case_00")), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(cl, "case_04")), 2);
  json_decref(j);
  /* n_cand is recorded only for a strategy that reads it (the strategy table) */
  o.strategy = CSAL3D_STRATEGY_TYPICLUST;
  ck_assert_int_eq(csal3d_manifest_write(s, r, sizeof r[0], 3, &o, NULL, P("t.json")),
                   CSAL3D_OK);
  j = json_load_file(P("t.json"), 0, &err);
  ck_assert_msg(j != NULL, "%s", err.text);
  ck_assert_str_eq(json_string_value(json_object_get(j, "strategy")), "typiclust");
  ck_assert_ptr_null(json_object_get(j, "n_cand"));
  json_decref(j);
  /* One file alone; a smaller (older) record size. */
  ck_assert_int_eq(csal3d_manifest_write(s, r, sizeof r[0], 3, NULL, P("only.csv"), NULL),
                   CSAL3D_OK);
  ck_assert(!exists(P("only.json")));
  csal3d_scores_free(s);
}
END_TEST

START_TEST(manifest_refuses_bad_records_without_output) {
  csal3d_scores *s = make_scores(5, 2);
  csal3d_selection r[3];
  make_records(r);
  write_text(P("old.csv"), "previous\n");
  r[2].index = 3; /* twice */
  ck_assert_int_eq(csal3d_manifest_write(s, r, sizeof r[0], 3, NULL, P("old.csv"), P("m.json")),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "chosen twice"));
  r[2].index = 5; /* out of range */
  ck_assert_int_eq(csal3d_manifest_write(s, r, sizeof r[0], 3, NULL, P("old.csv"), P("m.json")),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_manifest_write(s, r, sizeof r[0], 2, NULL, NULL, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_manifest_write(s, r, 8, 2, NULL, P("old.csv"), NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  /* The CSV's folder is missing: the JSON must not appear either. */
  make_records(r);
  ck_assert_int_eq(csal3d_manifest_write(s, r, sizeof r[0], 3, NULL, P("no/m.csv"), P("m.json")),
                   CSAL3D_ERR_IO);
  ck_assert(!exists(P("m.json")));
  char *old = read_all(P("old.csv"), NULL);
  ck_assert_str_eq(old, "previous\n");
  free(old);
  ck_assert_int_eq(count_entries(dir), 1);
  csal3d_scores_free(s);
}
END_TEST

/* ---- nnU-Net export ---- */

/* Writes a 4 x 5 x 6 image (value base + i) and, when label_path, a label with values
 * i % (max_label + 1). */
static void write_case(const char *img, const char *lab, float base, int max_label,
                       int channels) {
  const int64_t dims[3] = {4, 5, 6};
  float x[2 * 120];
  for (int i = 0; i < 120 * channels; i++) x[i] = base + (float)i;
  double aff[16] = {2, 0, 0, -10, 0, 1.5, 0, 4, 0, 0, 1, 3, 0, 0, 0, 1};
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_create(channels, dims, x, aff, &v), CSAL3D_OK);
  ck_assert_msg(csal3d_volume_save(v, img, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  csal3d_volume_free(v);
  if (!lab) return;
  for (int i = 0; i < 120; i++) x[i] = (float)(i % (max_label + 1));
  ck_assert_int_eq(csal3d_volume_create(1, dims, x, aff, &v), CSAL3D_OK);
  csal3d_volume_save_options so;
  csal3d_volume_save_options_init(&so);
  so.dtype = CSAL3D_SAVE_UINT8;
  ck_assert_msg(csal3d_volume_save(v, lab, &so) == CSAL3D_OK, "%s", csal3d_last_error());
  csal3d_volume_free(v);
}

/* Cases c0 (.nii.gz + label), c1 (.nii + label), c2 (4-D, 2 channels, label),
 * c3 (no label); dataset.json in decathlon form with 3 labels. */
static csal3d_scores *export_fixture(int with_json) {
  mkdir(P("src"), 0755);
  write_case(P("src/c0.nii.gz"), P("src/c0_seg.nii.gz"), 0, 2, 1);
  write_case(P("src/c1.nii"), P("src/c1_seg.nii"), 100, 1, 1);
  write_case(P("src/c2.nii.gz"), P("src/c2_seg.nii.gz"), 200, 2, 2);
  write_case(P("src/c3.nii.gz"), NULL, 300, 0, 1);
  if (with_json)
    write_text(P("src/dataset.json"),
               "{\"name\": \"Toy\", \"modality\": {\"0\": \"T1\"},"
               " \"labels\": {\"0\": \"background\", \"1\": \"Anterior\", \"2\": \"Posterior\"},"
               " \"training\": []}");
  csal3d_scores *s;
  ck_assert_int_eq(csal3d_scores_create(4, 1, &s), CSAL3D_OK);
  const char *ids[4] = {"c0", "c1", "c2", "c3"};
  const char *labs[4] = {"src/c0_seg.nii.gz", "src/c1_seg.nii", "src/c2_seg.nii.gz", NULL};
  const char *imgs[4] = {"src/c0.nii.gz", "src/c1.nii", "src/c2.nii.gz", "src/c3.nii.gz"};
  for (int i = 0; i < 4; i++) {
    const char *im[1] = {P(imgs[i])};
    float f = (float)i;
    ck_assert_int_eq(csal3d_scores_set_case(s, i, ids[i], im, 1, labs[i] ? P(labs[i]) : NULL,
                                            f, &f), CSAL3D_OK);
  }
  if (with_json) ck_assert_int_eq(csal3d_scores_set_metadata(s, "dataset", P("src")), CSAL3D_OK);
  return s;
}

static void assert_same_voxels(const char *a, const char *b, int channel) {
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.channel = channel;
  csal3d_volume *va, *vb;
  ck_assert_msg(csal3d_volume_load(a, &lo, &va) == CSAL3D_OK, "%s", csal3d_last_error());
  csal3d_volume_load_options_init(&lo);
  ck_assert_msg(csal3d_volume_load(b, &lo, &vb) == CSAL3D_OK, "%s", csal3d_last_error());
  int64_t sa[4], sb[4];
  csal3d_volume_shape(va, sa);
  csal3d_volume_shape(vb, sb);
  ck_assert_mem_eq(sa, sb, sizeof sa);
  const float *da, *db;
  csal3d_volume_data(va, &da);
  csal3d_volume_data(vb, &db);
  ck_assert_mem_eq(da, db, (size_t)(sa[0] * sa[1] * sa[2] * sa[3]) * sizeof(float));
  double aa[16], ab[16];
  csal3d_volume_affine(va, aa);
  csal3d_volume_affine(vb, ab);
  for (int i = 0; i < 16; i++) ck_assert_double_eq_tol(aa[i], ab[i], 1e-6);
  csal3d_volume_free(va);
  csal3d_volume_free(vb);
}

START_TEST(nnunet_export_with_labels) {
  csal3d_scores *s = export_fixture(1);
  csal3d_nnunet_options o;
  csal3d_nnunet_options_init(&o);
  /* A 4-D image is split into its channels. */
  int64_t four_d[1] = {2};
  ck_assert_msg(csal3d_nnunet_export(s, four_d, 1, P("raw/Dataset500_4D"), &o, NULL) ==
                    CSAL3D_OK, "%s", csal3d_last_error());
  assert_same_voxels(P("src/c2.nii.gz"), P("raw/Dataset500_4D/imagesTr/c2_0000.nii.gz"), 0);
  assert_same_voxels(P("src/c2.nii.gz"), P("raw/Dataset500_4D/imagesTr/c2_0001.nii.gz"), 1);
  ck_assert_int_eq(count_entries(P("raw/Dataset500_4D/imagesTr")), 2);
  json_error_t err;
  json_t *j = json_load_file(P("raw/Dataset500_4D/dataset.json"), 0, &err);
  ck_assert_msg(j != NULL, "%s", err.text);
  json_t *cn = json_object_get(j, "channel_names");
  ck_assert_int_eq(json_object_size(cn), 2);
  ck_assert_str_eq(json_string_value(json_object_get(cn, "0")), "T1");
  ck_assert_str_eq(json_string_value(json_object_get(cn, "1")), "image_1");
  json_decref(j);
  int64_t pick[2] = {1, 0};
  char out[1024];
  snprintf(out, sizeof out, "%s", P("raw/Dataset501_Toy"));
  ck_assert_msg(csal3d_nnunet_export(s, pick, 2, out, &o, NULL) == CSAL3D_OK, "%s",
                csal3d_last_error());
  /* Byte copies of .nii.gz, gzip of .nii. */
  size_t la, lb;
  char *a = read_all(P("src/c0.nii.gz"), &la);
  char *b = read_all(P("raw/Dataset501_Toy/imagesTr/c0_0000.nii.gz"), &lb);
  ck_assert_int_eq(la, lb);
  ck_assert_mem_eq(a, b, la);
  free(a);
  free(b);
  assert_same_voxels(P("src/c1.nii"), P("raw/Dataset501_Toy/imagesTr/c1_0000.nii.gz"), -1);
  assert_same_voxels(P("src/c1_seg.nii"), P("raw/Dataset501_Toy/labelsTr/c1.nii.gz"), -1);
  ck_assert(exists(P("raw/Dataset501_Toy/labelsTr/c0.nii.gz")));
  ck_assert_int_eq(count_entries(P("raw/Dataset501_Toy/imagesTr")), 2);
  ck_assert_int_eq(count_entries(P("raw/Dataset501_Toy/labelsTr")), 2);
  ck_assert_int_eq(count_entries(P("raw")), 2); /* no temporary folder left */
  j = json_load_file(P("raw/Dataset501_Toy/dataset.json"), 0, &err);
  ck_assert_msg(j != NULL, "%s", err.text);
  ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "Dataset501_Toy");
  ck_assert_int_eq(json_integer_value(json_object_get(j, "numTraining")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(j, "file_ending")), ".nii.gz");
  cn = json_object_get(j, "channel_names");
  ck_assert_int_eq(json_object_size(cn), 1);
  ck_assert_str_eq(json_string_value(json_object_get(cn, "0")), "T1");
  json_t *lb2 = json_object_get(j, "labels");
  ck_assert_int_eq(json_object_size(lb2), 3);
  ck_assert_int_eq(json_integer_value(json_object_get(lb2, "background")), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(lb2, "Posterior")), 2);
  json_t *ids = json_object_get(json_object_get(j, "csal3d"), "cases");
  ck_assert_str_eq(json_string_value(json_array_get(ids, 0)), "c1");
  json_decref(j);
  /* Exists and is not empty: refused, then replaced with overwrite. */
  int64_t one[1] = {0};
  ck_assert_int_eq(csal3d_nnunet_export(s, one, 1, out, &o, NULL), CSAL3D_ERR_IO);
  ck_assert_int_eq(count_entries(P("raw/Dataset501_Toy/imagesTr")), 2);
  o.overwrite = 1;
  o.label_names = "bg, a ,b";
  o.channel_names = "MR";
  o.dataset_name = "Dataset502_Other";
  ck_assert_msg(csal3d_nnunet_export(s, one, 1, out, &o, NULL) == CSAL3D_OK, "%s",
                csal3d_last_error());
  ck_assert_int_eq(count_entries(P("raw/Dataset501_Toy/imagesTr")), 1);
  ck_assert_int_eq(count_entries(P("raw")), 2);
  j = json_load_file(P("raw/Dataset501_Toy/dataset.json"), 0, &err);
  ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "Dataset502_Other");
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "labels"), "a")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "channel_names"), "0")),
                   "MR");
  json_decref(j);
  csal3d_scores_free(s);
}
END_TEST


typedef struct export_job {
  const csal3d_scores *s;
  const char *out;
} export_job;

static void export_killed(void *arg) {
  const export_job *j = arg;
  int64_t pick[2] = {1, 0};
  csal3d_nnunet_options o;
  csal3d_nnunet_options_init(&o);
  (void)csal3d_nnunet_export(j->s, pick, 2, j->out, &o, NULL);
}

/* An export killed while it copies leaves its hidden folder ".NAME.tmp.PID.XXXXXX"; the
 * next export to NAME removes it (and a ".NAME.old.PID.XXXXXX" of a dead PID once NAME
 * exists again), never another process's folder. */
START_TEST(nnunet_export_removes_what_killed_exports_left) {
  csal3d_scores *s = export_fixture(1);
  char out[1024], names[8][256], keep[6][256], stale[256], old[128];
  snprintf(out, sizeof out, "%s", P("raw/Dataset503_K"));
  export_job j = {s, out};
  pid_t p = killed_inside_write(export_killed, &j, 64);
  ck_assert_int_eq(names_with(P("raw"), ".Dataset503_K.tmp.", names, 8), 1);
  snprintf(stale, sizeof stale, ".Dataset503_K.tmp.%d.", (int)p);
  ck_assert_msg(strstr(names[0], stale) == names[0], "%s is not %s*", names[0], stale);
  snprintf(stale, sizeof stale, "%s", names[0]);
  ck_assert(!exists(out));
  const pid_t dead = dead_pid();
  snprintf(old, sizeof old, ".Dataset503_K.old.%d.oooooo", (int)dead);
  touch(P("raw"), old, 1); /* with no Dataset503_K, perhaps the only copy: kept */
  make_decoys(P("raw"), "Dataset503_K", "tmp", 1, dead, keep);
  int64_t pick[2] = {1, 0};
  csal3d_nnunet_options o;
  csal3d_nnunet_options_init(&o);
  ck_assert_msg(csal3d_nnunet_export(s, pick, 2, out, &o, NULL) == CSAL3D_OK, "%s",
                csal3d_last_error());
  ck_assert_int_eq(count_entries(P("raw/Dataset503_K/imagesTr")), 2);
  ck_assert(!exists_in(P("raw"), stale));
  ck_assert(exists_in(P("raw"), old));
  for (int k = 0; k < 6; k++) ck_assert_msg(exists_in(P("raw"), keep[k]), "%s removed", keep[k]);
  /* Replacing it: the stale ".old." folder goes too. */
  o.overwrite = 1;
  ck_assert_msg(csal3d_nnunet_export(s, pick, 1, out, &o, NULL) == CSAL3D_OK, "%s",
                csal3d_last_error());
  ck_assert_int_eq(count_entries(P("raw/Dataset503_K/imagesTr")), 1);
  ck_assert(!exists_in(P("raw"), old));
  ck_assert_int_eq(names_with(P("raw"), ".Dataset503_K.old.", names, 8), 0);
  for (int k = 0; k < 6; k++) ck_assert_msg(exists_in(P("raw"), keep[k]), "%s removed", keep[k]);
  csal3d_scores_free(s);
}
END_TEST

START_TEST(nnunet_export_labels_modes_and_failures) {
  csal3d_scores *s = export_fixture(0);
  csal3d_nnunet_options o;
  csal3d_nnunet_options_init(&o);
  /* c0 has a label, c3 has none: REQUIRE refuses (bad input, FORMAT) before any work;
   * AUTO exports both and c0's label (nnunet_export_mixed_labels). */
  int64_t mix[2] = {0, 3};
  o.labels = CSAL3D_NNUNET_LABELS_REQUIRE;
  ck_assert_int_eq(csal3d_nnunet_export(s, mix, 2, P("Dataset001_Out"), &o, NULL), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "'c3' has no label"));
  ck_assert(!exists(P("Dataset001_Out")));
  o.labels = CSAL3D_NNUNET_LABELS_NONE;
  ck_assert_msg(csal3d_nnunet_export(s, mix, 2, P("Dataset001_Out"), &o, NULL) == CSAL3D_OK, "%s",
                csal3d_last_error());
  ck_assert(!exists(P("Dataset001_Out/labelsTr")));
  json_error_t err;
  json_t *j = json_load_file(P("Dataset001_Out/dataset.json"), 0, &err);
  ck_assert_int_eq(json_object_size(json_object_get(j, "labels")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "channel_names"), "0")),
                   "image");
  json_decref(j);
  /* Without names: background, label_1, label_2 from the largest value. */
  o.labels = CSAL3D_NNUNET_LABELS_REQUIRE;
  int64_t two[2] = {1, 0};
  ck_assert_int_eq(csal3d_scores_set_metadata(s, "modality", "ct"), CSAL3D_OK);
  ck_assert_msg(csal3d_nnunet_export(s, two, 2, P("Dataset002_Out"), &o, NULL) == CSAL3D_OK, "%s",
                csal3d_last_error());
  j = json_load_file(P("Dataset002_Out/dataset.json"), 0, &err);
  ck_assert_int_eq(json_object_size(json_object_get(j, "labels")), 3);
  ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "labels"), "label_2")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "channel_names"), "0")),
                   "CT");
  json_decref(j);
  /* Label values beyond the names given: refused, no folder. */
  o.label_names = "background,one";
  ck_assert_int_eq(csal3d_nnunet_export(s, two, 2, P("Dataset003_Out"), &o, NULL), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "label value 2"));
  /* Channels differ between cases (c2 has two). */
  o.label_names = NULL;
  int64_t ch[2] = {0, 2};
  ck_assert_int_eq(csal3d_nnunet_export(s, ch, 2, P("Dataset003_Out"), &o, NULL), CSAL3D_ERR_FORMAT);
  /* A label on another grid. */
  write_case(P("src/c1_seg.nii"), NULL, 0, 0, 1);
  {
    const int64_t dims[3] = {4, 5, 7};
    csal3d_volume *v;
    ck_assert_int_eq(csal3d_volume_create(1, dims, NULL, NULL, &v), CSAL3D_OK);
    ck_assert_int_eq(csal3d_volume_save(v, P("src/c1_seg.nii"), NULL), CSAL3D_OK);
    csal3d_volume_free(v);
  }
  ck_assert_int_eq(csal3d_nnunet_export(s, two, 2, P("Dataset003_Out"), &o, NULL), CSAL3D_ERR_FORMAT);
  /* A missing image. */
  unlink(P("src/c3.nii.gz"));
  int64_t c3[1] = {3};
  o.labels = CSAL3D_NNUNET_LABELS_AUTO;
  ck_assert_int_eq(csal3d_nnunet_export(s, c3, 1, P("Dataset003_Out"), &o, NULL), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'c3'"));
  /* Bad arguments. */
  int64_t dup[2] = {0, 0}, bad[1] = {4};
  ck_assert_int_eq(csal3d_nnunet_export(s, dup, 2, P("Dataset003_Out"), &o, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_nnunet_export(s, bad, 1, P("Dataset003_Out"), &o, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  o.source_dataset = P("nowhere");
  ck_assert_int_eq(csal3d_nnunet_export(s, two, 1, P("Dataset003_Out"), &o, NULL), CSAL3D_ERR_IO);
  o.source_dataset = NULL;
  o.channel_names = "a,,b";
  ck_assert_int_eq(csal3d_nnunet_export(s, two, 1, P("Dataset003_Out"), &o, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  /* Nothing but the successful outputs and the sources is left behind. */
  ck_assert(!exists(P("Dataset003_Out")));
  ck_assert_int_eq(count_entries(dir), 3);
  csal3d_scores_free(s);
}
END_TEST

/* A CPU context with a progress and a log callback (either may be NULL). */
static csal3d_context *cpu_context(csal3d_progress_fn progress, csal3d_log_fn log) {
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.progress = progress;
  co.log = log;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  return ctx;
}

static int cancel_at_2(void *u, const char *stage, uint64_t done, uint64_t total) {
  (void)u, (void)total;
  return strcmp(stage, "export") == 0 && done == 2;
}

START_TEST(nnunet_export_cancelled_leaves_nothing) {
  csal3d_scores *s = export_fixture(1);
  csal3d_context *ctx = cpu_context(cancel_at_2, NULL);
  int64_t pick[3] = {0, 1, 2};
  ck_assert_int_eq(csal3d_nnunet_export(s, pick, 3, P("Dataset001_Out"), NULL, ctx), CSAL3D_ERR_CANCELLED);
  ck_assert(!exists(P("Dataset001_Out")));
  ck_assert_int_eq(count_entries(dir), 1);
  csal3d_context_free(ctx);
  csal3d_scores_free(s);
}
END_TEST

/* nnU-Net reads .nii.gz files with gzip: a file is copied by its content, not its name. */
START_TEST(nnunet_export_copies_by_content) {
  csal3d_scores *s = export_fixture(0);
  /* c0's image becomes an uncompressed NIfTI named .nii.gz (which the loader reads). */
  write_case(P("src/plain.nii"), NULL, 0, 0, 1);
  ck_assert_int_eq(rename(P("src/plain.nii"), P("src/c0.nii.gz")), 0);
  int64_t pick[2] = {0, 1};
  csal3d_nnunet_options o;
  csal3d_nnunet_options_init(&o);
  o.labels = CSAL3D_NNUNET_LABELS_NONE;
  ck_assert_msg(csal3d_nnunet_export(s, pick, 2, P("Dataset010_Gz"), &o, NULL) == CSAL3D_OK,
                "%s", csal3d_last_error());
  size_t n0;
  char *a = read_all(P("Dataset010_Gz/imagesTr/c0_0000.nii.gz"), &n0);
  ck_assert_int_ge(n0, 2);
  ck_assert(a[0] == '\x1f' && a[1] == '\x8b'); /* gzipped, not a byte copy */
  free(a);
  assert_same_voxels(P("src/c0.nii.gz"), P("Dataset010_Gz/imagesTr/c0_0000.nii.gz"), -1);
  assert_same_voxels(P("src/c1.nii"), P("Dataset010_Gz/imagesTr/c1_0000.nii.gz"), -1);
  csal3d_scores_free(s);
}
END_TEST

START_TEST(nnunet_export_needs_dataset_name) {
  csal3d_scores *s = export_fixture(0);
  int64_t pick[1] = {0};
  const char *bad[] = {"nnx", "Dataset1_X", "Dataset501", "Dataset501_", "dataset501_X",
                       "DatasetABC_X"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(csal3d_nnunet_export(s, pick, 1, P(bad[i]), NULL, NULL),
                     CSAL3D_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "Dataset501_Hippocampus"));
  }
  ck_assert_int_eq(count_entries(dir), 1); /* nothing was created */
  ck_assert_msg(csal3d_nnunet_export(s, pick, 1, P("Dataset501_X/"), NULL, NULL) == CSAL3D_OK,
                "%s", csal3d_last_error());
  csal3d_scores_free(s);
}
END_TEST

static char g_logged[2048];
static void log_to_buffer(void *u, csal3d_log_level level, const char *msg) {
  (void)u;
  if (level == CSAL3D_LOG_WARN) snprintf(g_logged, sizeof g_logged, "%s", msg);
}

/* Under AUTO, chosen cases with and without labels: every image and the labels that
 * exist are exported, and the cases without are named (log and dataset.json). */
START_TEST(nnunet_export_mixed_labels) {
  csal3d_scores *s = export_fixture(1);
  csal3d_context *ctx = cpu_context(NULL, log_to_buffer);
  g_logged[0] = '\0';
  int64_t mix[3] = {3, 0, 1};
  ck_assert_msg(csal3d_nnunet_export(s, mix, 3, P("Dataset020_Mix"), NULL, ctx) == CSAL3D_OK,
                "%s", csal3d_last_error());
  ck_assert_int_eq(count_entries(P("Dataset020_Mix/imagesTr")), 3);
  ck_assert_int_eq(count_entries(P("Dataset020_Mix/labelsTr")), 2);
  ck_assert(exists(P("Dataset020_Mix/labelsTr/c0.nii.gz")));
  ck_assert(!exists(P("Dataset020_Mix/labelsTr/c3.nii.gz")));
  ck_assert_ptr_nonnull(strstr(g_logged, "1 of the 3 chosen cases have no label (c3)"));
  json_error_t err;
  json_t *j = json_load_file(P("Dataset020_Mix/dataset.json"), 0, &err);
  ck_assert_msg(j != NULL, "%s", err.text);
  json_t *missing = json_object_get(json_object_get(j, "csal3d"), "cases_without_label");
  ck_assert_int_eq(json_array_size(missing), 1);
  ck_assert_str_eq(json_string_value(json_array_get(missing, 0)), "c3");
  ck_assert_int_eq(json_integer_value(json_object_get(j, "numTraining")), 3);
  json_decref(j);
  csal3d_context_free(ctx);
  csal3d_scores_free(s);
}
END_TEST

/* A write that fails inside the folder being built names the file in the target folder,
 * not in the hidden temporary one. */
static int block_case_1(void *u, const char *stage, uint64_t done, uint64_t total) {
  (void)u, (void)total;
  if (strcmp(stage, "export") || done != 1) return 0;
  DIR *d = opendir(dir);
  struct dirent *e;
  while ((e = readdir(d)))
    if (!strncmp(e->d_name, ".Dataset070_T.tmp.", 18)) {
      char p[1024];
      snprintf(p, sizeof p, "%s/%s/imagesTr/c1_0000.nii.gz", dir, e->d_name);
      mkdir(p, 0755);
    }
  closedir(d);
  return 0;
}

START_TEST(nnunet_export_failure_names_the_target) {
  csal3d_scores *s = export_fixture(0);
  csal3d_context *ctx = cpu_context(block_case_1, NULL);
  int64_t pick[2] = {0, 1};
  ck_assert_int_eq(csal3d_nnunet_export(s, pick, 2, P("Dataset070_T"), NULL, ctx), CSAL3D_ERR_IO);
  const char *m = csal3d_last_error();
  char want[1024];
  snprintf(want, sizeof want, "%s/imagesTr/c1_0000.nii.gz", P("Dataset070_T"));
  ck_assert_msg(strstr(m, want) && !strstr(m, ".tmp."), "%s", m);
  ck_assert_int_eq(count_entries(dir), 1);
  csal3d_context_free(ctx);
  csal3d_scores_free(s);
}
END_TEST

/* ---- the whole output of a selection, as one transaction ---- */

static void selection_records(csal3d_selection *r, int n, const int64_t *idx) {
  memset(r, 0, sizeof *r * (size_t)n);
  for (int i = 0; i < n; i++) {
    r[i].index = idx[i];
    r[i].cluster = -1;
    r[i].typicality = NAN;
    r[i].score = i;
  }
}

static void outputs(csal3d_selection_outputs *o, const char *csv, const char *js,
                    const char *nn, int overwrite) {
  csal3d_selection_outputs_init(o);
  o->csv_path = csv;
  o->json_path = js;
  o->nnunet_folder = nn;
  o->overwrite = overwrite;
}

static void assert_text(const char *path, const char *want) {
  char *t = read_all(path, NULL);
  ck_assert_str_eq(t, want);
  free(t);
}

/* Issue 12: ids by relative path (subj01/flair) hold '/', which nnU-Net's file names cannot:
 * the folder names the case with '_' for it (and for any other character nnU-Net cannot
 * take), dataset.json and the manifests keep the id, and two ids that become one name are
 * refused before anything is written, naming both. */
START_TEST(nnunet_export_names_from_ids) {
  csal3d_scores *s = export_fixture(0), *t;
  ck_assert_int_eq(csal3d_scores_create(4, 1, &t), CSAL3D_OK);
  const char *ids[4] = {"subj01/flair", "subj02/flair", "c2", ".x y=1"};
  for (int64_t i = 0; i < 4; i++) {
    char img[2048], lab[2048];
    snprintf(img, sizeof img, "%s", cstr(s, i, "image"));
    snprintf(lab, sizeof lab, "%s", cstr(s, i, "label"));
    const char *im[1] = {img};
    float f = (float)i;
    ck_assert_int_eq(csal3d_scores_set_case(t, i, ids[i], im, 1, *lab ? lab : NULL, f, &f),
                     CSAL3D_OK);
  }
  csal3d_selection r[3];
  const int64_t idx[3] = {0, 1, 3};
  selection_records(r, 3, idx);
  char csv[512], js[512], nn[512];
  snprintf(csv, sizeof csv, "%s", P("sel.csv"));
  snprintf(js, sizeof js, "%s", P("sel.json"));
  snprintf(nn, sizeof nn, "%s", P("Dataset040_Ids"));
  csal3d_selection_outputs o;
  outputs(&o, csv, js, nn, 0);
  ck_assert_msg(csal3d_selection_write(t, r, sizeof r[0], 3, &o, NULL, NULL, NULL) == CSAL3D_OK,
                "%s", csal3d_last_error());
  const char *files[] = {"imagesTr/subj01_flair_0000.nii.gz", "imagesTr/subj02_flair_0000.nii.gz",
                         "imagesTr/_x_y_1_0000.nii.gz", "labelsTr/subj01_flair.nii.gz",
                         "labelsTr/subj02_flair.nii.gz"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char p[1100];
    snprintf(p, sizeof p, "%s/%s", nn, files[i]);
    ck_assert_msg(exists(p), "%s missing", p);
  }
  ck_assert_int_eq(count_entries(P("Dataset040_Ids/imagesTr")), 3);
  assert_same_voxels(P("src/c1.nii"), P("Dataset040_Ids/imagesTr/subj02_flair_0000.nii.gz"), -1);
  json_error_t err;
  json_t *j = json_load_file(P("Dataset040_Ids/dataset.json"), 0, &err);
  ck_assert_msg(j != NULL, "%s", err.text);
  json_t *prov = json_object_get(j, "csal3d"), *names = json_object_get(prov, "case_names");
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(prov, "cases"), 0)),
                   "subj01/flair");
  ck_assert_int_eq(json_object_size(names), 3);
  ck_assert_str_eq(json_string_value(json_object_get(names, "subj02/flair")), "subj02_flair");
  ck_assert_str_eq(json_string_value(json_object_get(names, ".x y=1")), "_x_y_1");
  json_decref(j);
  char *text = read_all(csv, NULL);
  ck_assert_msg(strstr(text, "subj01/flair") && strstr(text, ".x y=1") && !strstr(text, "subj01_flair"),
                "%s", text);
  free(text);
  text = read_all(js, NULL);
  ck_assert_msg(strstr(text, "\"subj02/flair\""), "%s", text);
  free(text);
  /* Ids without such characters keep their names (and dataset.json has no case_names). */
  const int64_t plain[1] = {2};
  ck_assert_msg(csal3d_nnunet_export(t, plain, 1, P("Dataset041_Plain"), NULL, NULL) ==
                    CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert(exists(P("Dataset041_Plain/imagesTr/c2_0000.nii.gz")));
  j = json_load_file(P("Dataset041_Plain/dataset.json"), 0, &err);
  ck_assert_ptr_null(json_object_get(json_object_get(j, "csal3d"), "case_names"));
  json_decref(j);
  /* subj01/flair and subj01_flair would both be subj01_flair: refused, naming both. */
  ck_assert_int_eq(csal3d_scores_set_case(t, 2, "subj01_flair", (const char *[]){cstr(s, 2, "image")},
                                          1, NULL, 2.0f, (float[]){2.0f}),
                   CSAL3D_OK);
  const int64_t clash[2] = {2, 0};
  ck_assert_int_eq(csal3d_nnunet_export(t, clash, 2, P("Dataset042_Clash"), NULL, NULL),
                   CSAL3D_ERR_FORMAT);
  ck_assert_msg(strstr(csal3d_last_error(), "cases 'subj01_flair' and 'subj01/flair' would "
                                            "both be nnU-Net case 'subj01_flair'"),
                "%s", csal3d_last_error());
  ck_assert(!exists(P("Dataset042_Clash")));
  /* An id too long for a file name (300 bytes + "_0000.nii.gz") is refused, not cut. */
  char longid[301];
  memset(longid, 'L', 300);
  longid[300] = '\0';
  ck_assert_int_eq(csal3d_scores_set_case(t, 2, longid, (const char *[]){cstr(s, 2, "image")}, 1,
                                          NULL, 2.0f, (float[]){2.0f}),
                   CSAL3D_OK);
  ck_assert_int_eq(csal3d_nnunet_export(t, clash, 2, P("Dataset043_Long"), NULL, NULL),
                   CSAL3D_ERR_FORMAT);
  ck_assert_msg(strstr(csal3d_last_error(), "file names would be 312 bytes long, more than a "
                                            "file name holds (255); give it a shorter id"),
                "%s", csal3d_last_error());
  ck_assert(!exists(P("Dataset043_Long")));
  csal3d_scores_free(t);
  csal3d_scores_free(s);
}
END_TEST

START_TEST(selection_write_all_or_nothing) {
  csal3d_scores *s = export_fixture(1);
  csal3d_selection r[2];
  const int64_t idx[2] = {1, 0};
  selection_records(r, 2, idx);
  char csv[512], js[512], nn[512];
  snprintf(csv, sizeof csv, "%s", P("sel.csv"));
  snprintf(js, sizeof js, "%s", P("sel.json"));
  snprintf(nn, sizeof nn, "%s", P("raw/Dataset030_Sel"));
  csal3d_selection_outputs o;
  outputs(&o, csv, js, nn, 0);
  ck_assert_msg(csal3d_selection_write(s, r, sizeof r[0], 2, &o, NULL, NULL, NULL) == CSAL3D_OK,
                "%s", csal3d_last_error());
  ck_assert(exists(csv) && exists(js) && exists(P("raw/Dataset030_Sel/dataset.json")));
  ck_assert_int_eq(count_entries(P("raw")), 1);
  /* Existing outputs are refused before any work without overwrite. */
  write_text(csv, "old csv\n");
  write_text(js, "old json\n");
  ck_assert_int_eq(csal3d_selection_write(s, r, sizeof r[0], 2, &o, NULL, NULL, NULL),
                   CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "the option overwrite"));
  /* With overwrite, a failure to move any of the three into place leaves all three as
   * they were (the folder's old contents, the old manifests) and no temporary. */
  o.overwrite = 1;
  write_text(P("raw/Dataset030_Sel/mine.txt"), "keep\n");
  for (int at = 1; at <= 3; at++) {
    c3_commit_fail_at = at;
    ck_assert_int_eq(csal3d_selection_write(s, r, sizeof r[0], 2, &o, NULL, NULL, NULL),
                     CSAL3D_ERR_IO);
    c3_commit_fail_at = 0;
    assert_text(csv, "old csv\n");
    assert_text(js, "old json\n");
    assert_text(P("raw/Dataset030_Sel/mine.txt"), "keep\n");
    ck_assert_int_eq(count_entries(P("raw")), 1);
    ck_assert_msg(count_entries(dir) == 4, "at %d", at); /* src, raw, sel.csv, sel.json */
  }
  /* A new output set where none existed: a failure leaves none of them. */
  char csv2[512], js2[512], nn2[512];
  snprintf(csv2, sizeof csv2, "%s", P("b.csv"));
  snprintf(js2, sizeof js2, "%s", P("b.json"));
  snprintf(nn2, sizeof nn2, "%s", P("raw/Dataset031_B"));
  outputs(&o, csv2, js2, nn2, 0);
  c3_commit_fail_at = 3;
  ck_assert_int_eq(csal3d_selection_write(s, r, sizeof r[0], 2, &o, NULL, NULL, NULL),
                   CSAL3D_ERR_IO);
  c3_commit_fail_at = 0;
  ck_assert(!exists(csv2) && !exists(js2) && !exists(nn2));
  ck_assert_int_eq(count_entries(dir), 4);
  /* Success replaces all three. */
  outputs(&o, csv, js, nn, 1);
  ck_assert_int_eq(csal3d_selection_write(s, r, sizeof r[0], 2, &o, NULL, NULL, NULL),
                   CSAL3D_OK);
  ck_assert(!exists(P("raw/Dataset030_Sel/mine.txt")));
  char *t = read_all(csv, NULL);
  ck_assert_ptr_nonnull(strstr(t, "rank,case"));
  free(t);
  ck_assert_int_eq(count_entries(dir), 4);
  ck_assert_int_eq(count_entries(P("raw")), 1);
  csal3d_scores_free(s);
}
END_TEST

/* The CSV target turns into a folder while the export runs: moving the CSV into place
 * fails after the folder was placed, and the folder is taken back. */
static const char *g_block;
static int block_at_end(void *u, const char *stage, uint64_t done, uint64_t total) {
  (void)u;
  if (!strcmp(stage, "export") && done == total) mkdir(g_block, 0755);
  return 0;
}

START_TEST(selection_write_undoes_a_late_failure) {
  csal3d_scores *s = export_fixture(1);
  csal3d_selection r[2];
  const int64_t idx[2] = {0, 1};
  selection_records(r, 2, idx);
  char csv[512], js[512], nn[512];
  snprintf(csv, sizeof csv, "%s", P("late.csv"));
  snprintf(js, sizeof js, "%s", P("late.json"));
  snprintf(nn, sizeof nn, "%s", P("Dataset040_Late"));
  g_block = csv;
  csal3d_context *ctx = cpu_context(block_at_end, NULL);
  csal3d_selection_outputs o;
  outputs(&o, csv, js, nn, 0);
  ck_assert_int_eq(csal3d_selection_write(s, r, sizeof r[0], 2, &o, NULL, NULL, ctx),
                   CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), csv)); /* names the target */
  ck_assert(!exists(nn) && !exists(js));
  ck_assert_int_eq(count_entries(dir), 2); /* src and the folder made in the CSV's place */
  csal3d_context_free(ctx);
  csal3d_scores_free(s);
}
END_TEST

static int cancel_export_at_1(void *u, const char *stage, uint64_t done, uint64_t total) {
  (void)u, (void)total;
  return !strcmp(stage, "export") && done == 1;
}

START_TEST(selection_write_cancelled_keeps_the_old_outputs) {
  csal3d_scores *s = export_fixture(1);
  csal3d_selection r[2];
  const int64_t idx[2] = {0, 1};
  selection_records(r, 2, idx);
  write_text(P("old.csv"), "old csv\n");
  csal3d_context *ctx = cpu_context(cancel_export_at_1, NULL);
  char csv[512], js[512], nn[512];
  snprintf(csv, sizeof csv, "%s", P("old.csv"));
  snprintf(js, sizeof js, "%s", P("new.json"));
  snprintf(nn, sizeof nn, "%s", P("Dataset050_C"));
  csal3d_selection_outputs o;
  outputs(&o, csv, js, nn, 1);
  ck_assert_int_eq(csal3d_selection_write(s, r, sizeof r[0], 2, &o, NULL, NULL, ctx),
                   CSAL3D_ERR_CANCELLED);
  assert_text(csv, "old csv\n");
  ck_assert(!exists(js) && !exists(nn));
  ck_assert_int_eq(count_entries(dir), 2);
  csal3d_context_free(ctx);
  csal3d_scores_free(s);
}
END_TEST

START_TEST(selection_write_checks_before_work) {
  csal3d_scores *s = export_fixture(1);
  ck_assert_int_eq(csal3d_scores_save(s, P("scores.safetensors")), CSAL3D_OK);
  csal3d_manifest_options mo;
  csal3d_manifest_options_init(&mo);
  char sp[512];
  snprintf(sp, sizeof sp, "%s", P("scores.safetensors"));
  mo.scores_path = sp; /* P's buffers are reused */
  csal3d_selection_outputs o;
  /* check_only writes nothing, records may be absent. */
  outputs(&o, P("a.csv"), P("a.json"), P("Dataset060_A"), 0);
  o.check_only = 1;
  ck_assert_int_eq(csal3d_selection_write(s, NULL, sizeof(csal3d_selection), 0, &o, &mo, NULL,
                                          NULL), CSAL3D_OK);
  ck_assert_int_eq(count_entries(dir), 2);
  /* The scores file, an image, a map folder: inputs, refused even with overwrite. */
  outputs(&o, P("scores.safetensors"), NULL, NULL, 1);
  o.check_only = 1;
  ck_assert_int_eq(csal3d_selection_write(s, NULL, sizeof(csal3d_selection), 0, &o, &mo, NULL,
                                          NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  outputs(&o, NULL, P("src/c0.nii.gz"), NULL, 1);
  o.check_only = 1;
  ck_assert_int_eq(csal3d_selection_write(s, NULL, sizeof(csal3d_selection), 0, &o, &mo, NULL,
                                          NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  /* The same file twice; a manifest inside the nnU-Net folder; a bad folder name. */
  outputs(&o, P("x.csv"), P("./x.csv"), NULL, 1);
  o.check_only = 1;
  ck_assert_int_eq(csal3d_selection_write(s, NULL, sizeof(csal3d_selection), 0, &o, &mo, NULL,
                                          NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  mkdir(P("Dataset061_In"), 0755);
  outputs(&o, P("Dataset061_In/x.csv"), NULL, P("Dataset061_In"), 1);
  o.check_only = 1;
  ck_assert_int_eq(csal3d_selection_write(s, NULL, sizeof(csal3d_selection), 0, &o, &mo, NULL,
                                          NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(csal3d_last_error(), "lies in the nnU-Net folder"), "%s", csal3d_last_error());
  outputs(&o, P("y.csv"), NULL, P("nnx"), 1);
  o.check_only = 1;
  ck_assert_int_eq(csal3d_selection_write(s, NULL, sizeof(csal3d_selection), 0, &o, &mo, NULL,
                                          NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  /* A device is never replaced, even with overwrite. */
  outputs(&o, "/dev/null", NULL, NULL, 1);
  o.check_only = 1;
  ck_assert_int_eq(csal3d_selection_write(s, NULL, sizeof(csal3d_selection), 0, &o, &mo, NULL,
                                          NULL), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not a regular file"));
  ck_assert_int_eq(count_entries(dir), 3);
  csal3d_scores_free(s);
}
END_TEST

/* csal3d_manifest_write: when the JSON cannot be moved into place, the CSV put there
 * just before is taken back (the previous one restored). */
START_TEST(manifest_write_undoes_the_first_file) {
  csal3d_scores *s = make_scores(5, 2);
  csal3d_selection r[3];
  make_records(r);
  write_text(P("m.csv"), "previous\n");
  c3_commit_fail_at = 2;
  ck_assert_int_eq(csal3d_manifest_write(s, r, sizeof r[0], 3, NULL, P("m.csv"), P("m.json")),
                   CSAL3D_ERR_IO);
  c3_commit_fail_at = 0;
  assert_text(P("m.csv"), "previous\n");
  ck_assert(!exists(P("m.json")));
  ck_assert_int_eq(count_entries(dir), 1);
  csal3d_scores_free(s);
}
END_TEST

/* Case ids that a spreadsheet would run as formulas are quoted in the CSV (OWASP). */
START_TEST(manifest_csv_defuses_formulas) {
  csal3d_scores *s;
  ck_assert_int_eq(csal3d_scores_create(5, 1, &s), CSAL3D_OK);
  const char *ids[5] = {"=cmd|' -C calc'!A0", "+1", "-2", "@SUM(A1)", "plain-id"};
  for (int i = 0; i < 5; i++) {
    char img[64];
    snprintf(img, sizeof img, "/data/%d.nii.gz", i);
    const char *im[1] = {img};
    float f = (float)i;
    ck_assert_int_eq(csal3d_scores_set_case(s, i, ids[i], im, 1, NULL, f, &f), CSAL3D_OK);
  }
  csal3d_selection r[5];
  const int64_t idx[5] = {0, 1, 2, 3, 4};
  selection_records(r, 5, idx);
  ck_assert_int_eq(csal3d_manifest_write(s, r, sizeof r[0], 5, NULL, P("f.csv"), P("f.json")),
                   CSAL3D_OK);
  char *t = read_all(P("f.csv"), NULL);
  ck_assert_ptr_nonnull(strstr(t, "\n1,'=cmd|' -C calc'!A0,/data/0.nii.gz,"));
  ck_assert_ptr_nonnull(strstr(t, "\n2,'+1,"));
  ck_assert_ptr_nonnull(strstr(t, "\n3,'-2,"));
  ck_assert_ptr_nonnull(strstr(t, "\n4,'@SUM(A1),"));
  ck_assert_ptr_nonnull(strstr(t, "\n5,plain-id,"));
  free(t);
  json_error_t err;
  json_t *j = json_load_file(P("f.json"), 0, &err);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j,
                   "selection"), 0), "case")), ids[0]); /* the JSON keeps the exact id */
  json_decref(j);
  csal3d_scores_free(s);
}
END_TEST

START_TEST(file_identify_by_content) {
  csal3d_scores *s = export_fixture(0);
  ck_assert_int_eq(csal3d_scores_save(s, P("s.safetensors")), CSAL3D_OK);
  write_case(P("p.nii"), NULL, 0, 0, 1);
  ck_assert_int_eq(rename(P("p.nii"), P("plain_named.nii.gz")), 0);
  write_text(P("t.txt"), "hello\n");
  csal3d_file_type t;
  ck_assert_int_eq(csal3d_file_identify(P("src/c0.nii.gz"), &t), CSAL3D_OK);
  ck_assert_int_eq(t, CSAL3D_FILE_NIFTI);
  ck_assert_int_eq(csal3d_file_identify(P("plain_named.nii.gz"), &t), CSAL3D_OK);
  ck_assert_int_eq(t, CSAL3D_FILE_NIFTI);
  ck_assert_int_eq(csal3d_file_identify(P("s.safetensors"), &t), CSAL3D_OK);
  ck_assert_int_eq(t, CSAL3D_FILE_SCORES);
  ck_assert_int_eq(csal3d_file_identify(P("t.txt"), &t), CSAL3D_OK);
  ck_assert_int_eq(t, CSAL3D_FILE_UNKNOWN);
  ck_assert_int_eq(csal3d_file_identify(P("src"), &t), CSAL3D_ERR_IO);
  ck_assert_int_eq(csal3d_file_identify("/dev/null", &t), CSAL3D_ERR_IO);
  ck_assert_int_eq(csal3d_file_identify(P("none"), &t), CSAL3D_ERR_IO);
  csal3d_scores_free(s);
}
END_TEST

/* ---- dataset.json names ---- */

static csal3d_status names(const char *text, c3_names *l, c3_names *c) {
  return c3_dataset_names_parse(text, strlen(text), "t.json", l, c);
}

START_TEST(dataset_names_reader) {
  c3_names l, c;
  ck_assert_int_eq(names("{\"labels\": {\"1\": \"a\", \"0\": \"bg\"}, \"modality\": {\"0\": \"CT\"}}",
                         &l, &c), CSAL3D_OK);
  ck_assert_int_eq(l.count, 2);
  ck_assert_str_eq(l.name[0], "bg");
  ck_assert_str_eq(l.name[1], "a");
  ck_assert_int_eq(c.count, 1);
  ck_assert_str_eq(c.name[0], "CT");
  c3_names_free(&l);
  c3_names_free(&c);
  ck_assert_int_eq(names("{\"labels\": {\"background\": 0, \"x\": 2, \"y\": 1},"
                         " \"channel_names\": {\"1\": \"ADC\", \"0\": \"T2\"}}", &l, &c), CSAL3D_OK);
  ck_assert_int_eq(l.count, 3);
  ck_assert_str_eq(l.name[2], "x");
  ck_assert_str_eq(c.name[1], "ADC");
  c3_names_free(&l);
  c3_names_free(&c);
  ck_assert_int_eq(names("{}", &l, &c), CSAL3D_OK);
  ck_assert_int_eq(l.count + c.count, 0);
  ck_assert_int_eq(names("{\"labels\": {\"0\": \"bg\", \"2\": \"gap\"}}", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "label value 1 is missing"));
  ck_assert_int_eq(names("{\"labels\": {\"bg\": 0, \"x\": 0}}", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(names("{\"labels\": {\"x\": [1, 2]}}", &l, &c), CSAL3D_ERR_UNSUPPORTED);
  ck_assert_int_eq(names("{\"labels\": {\"-1\": \"x\"}}", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(names("{\"labels\": {\"x\": 99999}}", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(names("{\"labels\": [\"bg\"]}", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(names("{\"modality\": {\"0\": 1}}", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(names("{\"modality\": {\"0\": \"\"}}", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(names("[1]", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(names("{\"labels\": {\"0\": \"a\", \"0\": \"b\"}}", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(names("{", &l, &c), CSAL3D_ERR_FORMAT);
  ck_assert_int_eq(c3_names_parse_list(" a , b,c ", &l, "t"), CSAL3D_OK);
  ck_assert_int_eq(l.count, 3);
  ck_assert_str_eq(l.name[1], "b");
  c3_names_free(&l);
  ck_assert_int_eq(c3_names_parse_list("a,", &l, "t"), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(c3_names_parse_list("", &l, "t"), CSAL3D_ERR_INVALID_ARGUMENT);
}
END_TEST

/* The fuzz seeds of tests/fuzz_dataset_names.c: every file parses or fails cleanly. */
START_TEST(dataset_names_corpus) {
  const char *cdir = "tests/data/dataset_json";
  DIR *d = opendir(cdir);
  ck_assert_msg(d != NULL, "corpus folder %s is missing", cdir);
  int seen = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strstr(e->d_name, ".json")) continue;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", cdir, e->d_name);
    size_t len;
    char *b = read_all(path, &len);
    c3_names l, c;
    csal3d_status st = c3_dataset_names_parse(b, len, e->d_name, &l, &c);
    int valid = strncmp(e->d_name, "valid_", 6) == 0;
    ck_assert_msg((st == CSAL3D_OK) == valid, "%s: %s", e->d_name, csal3d_last_error());
    if (st == CSAL3D_OK) {
      ck_assert_int_gt(l.count, 0);
      c3_names_free(&l);
      c3_names_free(&c);
    }
    free(b);
    seen++;
  }
  closedir(d);
  ck_assert_int_ge(seen, 4);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("manifest");
  TCase *t = tcase_create("scores");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, scores_round_trip);
  tcase_add_test(t, scores_arguments_and_states);
  tcase_add_test(t, scores_checksum_detects_changes);
  tcase_add_test(t, corpus_files_load_or_fail_cleanly);
  tcase_add_test(t, scores_allocation_failures);
  tcase_add_test(t, scores_from_dataset);
  suite_add_tcase(s, t);
  t = tcase_create("manifest");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, manifest_csv_and_json);
  tcase_add_test(t, manifest_refuses_bad_records_without_output);
  tcase_add_test(t, manifest_write_undoes_the_first_file);
  tcase_add_test(t, manifest_csv_defuses_formulas);
  suite_add_tcase(s, t);
  t = tcase_create("nnunet");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, nnunet_export_with_labels);
  tcase_add_test(t, nnunet_export_labels_modes_and_failures);
  tcase_add_test(t, nnunet_export_cancelled_leaves_nothing);
  tcase_add_test(t, nnunet_export_removes_what_killed_exports_left);
  tcase_add_test(t, nnunet_export_copies_by_content);
  tcase_add_test(t, nnunet_export_needs_dataset_name);
  tcase_add_test(t, nnunet_export_mixed_labels);
  tcase_add_test(t, nnunet_export_failure_names_the_target);
  tcase_add_test(t, nnunet_export_names_from_ids);
  tcase_add_test(t, selection_write_all_or_nothing);
  tcase_add_test(t, selection_write_undoes_a_late_failure);
  tcase_add_test(t, selection_write_cancelled_keeps_the_old_outputs);
  tcase_add_test(t, selection_write_checks_before_work);
  tcase_add_test(t, file_identify_by_content);
  tcase_add_test(t, dataset_names_reader);
  tcase_add_test(t, dataset_names_corpus);
  suite_add_tcase(s, t);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
