/* Tests of datasets (folders, one folder per subject, decathlon and nnU-Net v2
 * dataset.json, text files and CSVs, .hdr/.img pairs, case ids: nnU-Net's channel suffix
 * only where the layout is nnU-Net's, repeated file names, refused control characters),
 * the phantom generator, and the integration test over ../shared/data/msd_hippocampus
 * (skipped where absent; CSAL3D_DATA_DIR overrides ../shared/data). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "csal3d/csal3d.h"

static char dir[256];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/csal3d_ds_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static void sub(const char *name) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void write_text(const char *name, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

/* A 3 x 4 x 5 image filled with `value`, 1 mm voxels shifted by `shift` along x. */
static void write_volume(const char *name, float value, double shift, int label) {
  float x[60];
  for (int i = 0; i < 60; i++) x[i] = label ? (float)(i % 3) : value + (float)i;
  double aff[16] = {1, 0, 0, shift, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  const int64_t dims[3] = {3, 4, 5};
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_create(1, dims, x, aff, &v), CSAL3D_OK);
  char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  ck_assert_msg(csal3d_volume_save(v, p, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  csal3d_volume_free(v);
}

static const char *case_str(const csal3d_dataset *ds, size_t i, const char *what) {
  static char buf[1024];
  ck_assert_msg(csal3d_dataset_case_string(ds, i, what, buf, sizeof buf, NULL) == CSAL3D_OK,
                "%s", csal3d_last_error());
  return buf;
}

/* Opens dir/rel with the given channel_suffix option. */
static csal3d_dataset *open_suffix(const char *rel, int channel_suffix) {
  char p[512];
  snprintf(p, sizeof p, "%s%s%s", dir, *rel ? "/" : "", rel);
  csal3d_dataset_options o;
  csal3d_dataset_options_init(&o);
  o.channel_suffix = channel_suffix;
  csal3d_dataset *ds = NULL;
  ck_assert_msg(csal3d_dataset_open(p, &o, &ds) == CSAL3D_OK, "%s: %s", p, csal3d_last_error());
  return ds;
}

static csal3d_dataset *open_ok(const char *rel) {
  return open_suffix(rel, CSAL3D_CHANNEL_SUFFIX_AUTO);
}

/* Opening dir/rel fails with `status` and a message holding `text`. */
static void open_fails(const char *rel, csal3d_status status, const char *text) {
  char p[512];
  snprintf(p, sizeof p, "%s%s%s", dir, *rel ? "/" : "", rel);
  csal3d_dataset *ds = (csal3d_dataset *)1;
  csal3d_status st = csal3d_dataset_open(p, NULL, &ds);
  ck_assert_msg(st == status && strstr(csal3d_last_error(), text), "%s: status %d, '%s'", rel,
                (int)st, csal3d_last_error());
  ck_assert_ptr_null(ds);
}

static size_t size_of(const csal3d_dataset *ds) {
  size_t n = 0;
  ck_assert_int_eq(csal3d_dataset_size(ds, &n), CSAL3D_OK);
  return n;
}

static int image_files(const csal3d_dataset *ds, size_t i) {
  int files = 0, has_label = 0;
  ck_assert_int_eq(csal3d_dataset_case_info(ds, i, &files, &has_label), CSAL3D_OK);
  return files;
}

START_TEST(folder_of_files_groups_channels) {
  write_volume("b.nii", 10, 0, 0);
  write_volume("a.nii.gz", 0, 0, 0);
  write_volume("c_0001.nii.gz", 200, 0, 0);
  write_volume("c_0000.nii.gz", 100, 0, 0);
  write_volume(".hidden.nii.gz", 0, 0, 0);
  write_text("notes.txt", "not an image\n");
  /* By default a plain folder is not nnU-Net's: c_0000 and c_0001 are two cases. */
  csal3d_dataset *ds = open_ok("");
  ck_assert_uint_eq(size_of(ds), 4);
  ck_assert_str_eq(case_str(ds, 2, "id"), "c_0000");
  ck_assert_str_eq(case_str(ds, 3, "id"), "c_0001");
  csal3d_dataset_free(ds);
  ds = open_suffix("", CSAL3D_CHANNEL_SUFFIX_ALWAYS);
  size_t n;
  csal3d_dataset_size(ds, &n);
  ck_assert_uint_eq(n, 3);
  ck_assert_str_eq(case_str(ds, 0, "id"), "a");
  ck_assert_str_eq(case_str(ds, 1, "id"), "b");
  ck_assert_str_eq(case_str(ds, 2, "id"), "c");
  int files, has_label;
  csal3d_dataset_case_info(ds, 2, &files, &has_label);
  ck_assert_int_eq(files, 2);
  ck_assert_int_eq(has_label, 0);
  ck_assert_ptr_nonnull(strstr(case_str(ds, 2, "image:1"), "c_0001.nii.gz"));
  ck_assert_str_eq(case_str(ds, 2, "label"), "");
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 2, NULL, &v), CSAL3D_OK);
  int64_t s[4];
  csal3d_volume_shape(v, s);
  ck_assert_int_eq(s[0], 2);
  const float *x;
  csal3d_volume_data(v, &x);
  ck_assert_float_eq(x[0], 100.0f);
  ck_assert_float_eq(x[60], 200.0f);
  csal3d_volume_free(v);
  ck_assert_int_eq(csal3d_dataset_load_label(ds, 0, NULL, NULL, &v), CSAL3D_ERR_STATE);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'a' has no label"));
  /* Buffers and bad arguments. */
  size_t need;
  char small[2];
  ck_assert_int_eq(csal3d_dataset_case_string(ds, 0, "image", NULL, 0, &need), CSAL3D_OK);
  ck_assert_uint_eq(need, strlen(dir) + strlen("/a.nii.gz") + 1);
  ck_assert_int_eq(csal3d_dataset_case_string(ds, 0, "image", small, 2, &need),
                   CSAL3D_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(csal3d_dataset_case_string(ds, 0, "image:1", small, 2, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_dataset_case_string(ds, 3, "id", small, 2, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_dataset_case_string(ds, 0, "size", small, 2, NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_dataset_free(ds);
  csal3d_dataset_free(NULL);
  /* Channel files on different grids cannot be stacked. */
  write_volume("d_0000.nii.gz", 0, 0, 0);
  write_volume("d_0001.nii.gz", 0, 3.0, 0);
  ds = open_suffix("", CSAL3D_CHANNEL_SUFFIX_ALWAYS);
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 3, NULL, &v), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'd'"));
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not on the grid"));
  csal3d_dataset_free(ds);
  /* A gap in the channel numbers. */
  write_volume("e_0000.nii.gz", 0, 0, 0);
  write_volume("e_0002.nii.gz", 0, 0, 0);
  char p[512];
  snprintf(p, sizeof p, "%s", dir);
  csal3d_dataset_options o;
  csal3d_dataset_options_init(&o);
  ck_assert_int_eq(o.channel_suffix, CSAL3D_CHANNEL_SUFFIX_AUTO);
  o.channel_suffix = CSAL3D_CHANNEL_SUFFIX_ALWAYS;
  ck_assert_int_eq(csal3d_dataset_open(p, &o, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'e'"));
  o.channel_suffix = 3;
  ck_assert_int_eq(csal3d_dataset_open(p, &o, &ds), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "the option channel_suffix"));
  /* Two extensions of one name are one case twice. */
  write_volume("e_0002.nii", 0, 0, 0);
  o.channel_suffix = CSAL3D_CHANNEL_SUFFIX_NEVER;
  ck_assert_int_eq(csal3d_dataset_open(p, &o, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "two extensions"));
}
END_TEST

START_TEST(images_and_labels_folders) {
  sub("imagesTr");
  sub("labelsTr");
  write_volume("imagesTr/p1_0000.nii.gz", 0, 0, 0);
  write_volume("imagesTr/p2_0000.nii.gz", 0, 0, 0);
  write_volume("labelsTr/p1.nii.gz", 0, 0, 1);
  csal3d_dataset *ds = open_ok("");
  size_t n;
  csal3d_dataset_size(ds, &n);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(case_str(ds, 0, "id"), "p1");
  int files, has_label;
  csal3d_dataset_case_info(ds, 0, &files, &has_label);
  ck_assert_int_eq(has_label, 1);
  csal3d_dataset_case_info(ds, 1, &files, &has_label);
  ck_assert_int_eq(has_label, 0);
  csal3d_volume *img, *lab;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 0, NULL, &img), CSAL3D_OK);
  ck_assert_int_eq(csal3d_dataset_load_label(ds, 0, img, NULL, &lab), CSAL3D_OK);
  int is_label;
  csal3d_volume_is_label(lab, &is_label);
  ck_assert_int_eq(is_label, 1);
  csal3d_volume_free(img);
  csal3d_volume_free(lab);
  csal3d_dataset_free(ds);
}
END_TEST

START_TEST(decathlon_json) {
  sub("imagesTr");
  sub("labelsTr");
  write_volume("imagesTr/liver_7.nii.gz", 0, 0, 0);
  write_volume("imagesTr/liver_3.nii.gz", 5, 0, 0);
  write_volume("labelsTr/liver_7.nii.gz", 0, 0, 1);
  write_volume("labelsTr/liver_3.nii.gz", 0, 2.0, 1); /* off its image's grid */
  write_text("dataset.json",
             "{\"name\": \"t\", \"modality\": {\"0\": \"CT\"},\n"
             " \"training\": [{\"image\": \"./imagesTr/liver_7.nii.gz\", \"label\": "
             "\"./labelsTr/liver_7.nii.gz\"},\n"
             "  {\"image\": \"./imagesTr/liver_3.nii.gz\", \"label\": \"./labelsTr/liver_3.nii.gz\"}],\n"
             " \"test\": [\"./imagesTs/liver_9.nii.gz\"]}\n");
  csal3d_dataset *ds = open_ok(""); /* the folder finds its dataset.json */
  size_t n;
  csal3d_dataset_size(ds, &n);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(case_str(ds, 0, "id"), "liver_7"); /* listed order */
  csal3d_modality m;
  csal3d_dataset_modality(ds, &m);
  ck_assert_int_eq(m, CSAL3D_MODALITY_CT);
  csal3d_volume *img, *lab;
  /* The default modality (AUTO) is the dataset.json's for a case (CT: value 5 HU becomes
   * (5 + 1024) / 2048), NONE for a file loaded alone and when asked. */
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  ck_assert_int_eq(lo.modality, CSAL3D_MODALITY_AUTO);
  const float *x;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 1, &lo, &img), CSAL3D_OK);
  csal3d_volume_data(img, &x);
  ck_assert_float_eq_tol(x[0], 1029.0f / 2048.0f, 1e-6f);
  csal3d_volume_free(img);
  lo.modality = CSAL3D_MODALITY_NONE;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 1, &lo, &img), CSAL3D_OK);
  csal3d_volume_data(img, &x);
  ck_assert_float_eq(x[0], 5.0f);
  csal3d_volume_free(img);
  ck_assert_int_eq(csal3d_volume_load(case_str(ds, 1, "image"), NULL, &img), CSAL3D_OK);
  csal3d_volume_data(img, &x);
  ck_assert_float_eq(x[0], 5.0f);
  csal3d_volume_free(img);
  lo.modality = (csal3d_modality)4;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 1, &lo, &img), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 1, NULL, &img), CSAL3D_OK);
  csal3d_volume_data(img, &x);
  ck_assert_float_eq_tol(x[0], 1029.0f / 2048.0f, 1e-6f);
  ck_assert_int_eq(csal3d_dataset_load_label(ds, 1, img, NULL, &lab), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'liver_3'"));
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not on its image's grid"));
  csal3d_volume_free(img);
  csal3d_dataset_free(ds);
  /* The test split; check_files finds the missing image at open. */
  csal3d_dataset_options o;
  csal3d_dataset_options_init(&o);
  o.split = "test";
  char p[512];
  snprintf(p, sizeof p, "%s/dataset.json", dir);
  ck_assert_int_eq(csal3d_dataset_open(p, &o, &ds), CSAL3D_OK);
  ck_assert_str_eq(case_str(ds, 0, "id"), "liver_9");
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 0, NULL, &img), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "liver_9.nii.gz"));
  csal3d_dataset_free(ds);
  o.check_files = 1;
  ck_assert_int_eq(csal3d_dataset_open(p, &o, &ds), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'liver_9'"));
  o.split = "validation";
  ck_assert_int_eq(csal3d_dataset_open(p, &o, &ds), CSAL3D_ERR_INVALID_ARGUMENT);
  /* Broken JSON: the message gives line and column. */
  write_text("dataset.json", "{\"training\": [\n  {\"image\": }\n]}\n");
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "dataset.json:2:"));
  write_text("dataset.json", "{\"training\": [{\"label\": \"x.nii.gz\"}]}");
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "entry 0 needs an \"image\""));
  write_text("dataset.json", "{\"name\": \"no list\"}");
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_FORMAT);
  /* Repeated file names: ids by relative path; the same file twice is an error. */
  write_text("dataset.json", "{\"training\": [{\"image\": \"a/x.nii.gz\"}, {\"image\": \"b/x.nii\"}]}");
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_OK);
  ck_assert_str_eq(case_str(ds, 0, "id"), "a/x");
  ck_assert_str_eq(case_str(ds, 1, "id"), "b/x");
  csal3d_dataset_free(ds);
  write_text("dataset.json", "{\"training\": [{\"image\": \"a/x.nii.gz\"}, {\"image\": \"./a/x.nii\"}]}");
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "appears twice"));
  write_text("dataset.json", "{\"training\": []}");
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "no cases"));
}
END_TEST

START_TEST(nnunet_v2_json) {
  sub("imagesTr");
  sub("labelsTr");
  write_volume("imagesTr/case_000_0000.nii.gz", 1, 0, 0);
  write_volume("imagesTr/case_000_0001.nii.gz", 2, 0, 0);
  write_volume("imagesTr/case_001_0000.nii.gz", 3, 0, 0);
  write_volume("imagesTr/case_001_0001.nii.gz", 4, 0, 0);
  write_volume("imagesTr/other.nii", 4, 0, 0); /* wrong ending: ignored */
  write_volume("labelsTr/case_000.nii.gz", 0, 0, 1);
  write_volume("labelsTr/case_001.nii.gz", 0, 0, 1);
  write_text("dataset.json", "{\"channel_names\": {\"0\": \"T2\", \"1\": \"ADC\"},\n"
                             " \"labels\": {\"background\": 0, \"prostate\": 1},\n"
                             " \"numTraining\": 2, \"file_ending\": \".nii.gz\"}\n");
  csal3d_dataset *ds = open_ok("dataset.json");
  size_t n;
  csal3d_dataset_size(ds, &n);
  ck_assert_uint_eq(n, 2);
  csal3d_modality m;
  csal3d_dataset_modality(ds, &m);
  ck_assert_int_eq(m, CSAL3D_MODALITY_MRI);
  int files, has_label;
  csal3d_dataset_case_info(ds, 1, &files, &has_label);
  ck_assert_int_eq(files, 2);
  ck_assert_int_eq(has_label, 1);
  csal3d_volume *img, *lab;
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.modality = CSAL3D_MODALITY_MRI;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 1, &lo, &img), CSAL3D_OK);
  ck_assert_int_eq(csal3d_dataset_load_label(ds, 1, img, NULL, &lab), CSAL3D_OK);
  int64_t s[4];
  csal3d_volume_shape(img, s);
  ck_assert_int_eq(s[0], 2);
  const float *x;
  csal3d_volume_data(img, &x);
  for (int i = 0; i < 120; i++) ck_assert(x[i] >= 0.0f && x[i] <= 1.0f);
  csal3d_volume_free(img);
  csal3d_volume_free(lab);
  csal3d_dataset_free(ds);
}
END_TEST

START_TEST(text_list) {
  sub("scans");
  write_volume("scans/x1.nii.gz", 0, 0, 0);
  write_volume("scans/x1_seg.nii.gz", 0, 0, 1);
  write_volume("scans/x2_0000.nii", 0, 0, 0);
  char abs_line[600];
  snprintf(abs_line, sizeof abs_line,
           "# image, label\n\nscans/x1.nii.gz, scans/x1_seg.nii.gz\n  %s/scans/x2_0000.nii  \n",
           dir);
  write_text("cases.txt", abs_line);
  csal3d_dataset *ds = open_ok("cases.txt");
  size_t n;
  csal3d_dataset_size(ds, &n);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(case_str(ds, 0, "id"), "x1");
  ck_assert_str_eq(case_str(ds, 1, "id"), "x2_0000"); /* a list is not nnU-Net's */
  csal3d_dataset_free(ds);
  ds = open_suffix("cases.txt", CSAL3D_CHANNEL_SUFFIX_ALWAYS);
  ck_assert_str_eq(case_str(ds, 1, "id"), "x2");
  char want[600];
  snprintf(want, sizeof want, "%s/scans/x1_seg.nii.gz", dir);
  ck_assert_str_eq(case_str(ds, 0, "label"), want);
  csal3d_volume *img, *lab;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 0, NULL, &img), CSAL3D_OK);
  ck_assert_int_eq(csal3d_dataset_load_label(ds, 0, img, NULL, &lab), CSAL3D_OK);
  csal3d_volume_free(img);
  csal3d_volume_free(lab);
  csal3d_dataset_free(ds);
  write_text("bad.txt", "scans/x1.nii.gz\nscans/readme.md\n");
  char p[512];
  snprintf(p, sizeof p, "%s/bad.txt", dir);
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "bad.txt:2:"));
  snprintf(p, sizeof p, "%s/missing.txt", dir);
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_IO);
  snprintf(p, sizeof p, "%s/scans/x1.nii.gz", dir);
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- the phantom ---- */

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(*n + 1);
  ck_assert_uint_eq(fread(b, 1, *n, f), *n);
  fclose(f);
  return b;
}

static int cancel_at_3(void *u, const char *stage, uint64_t done, uint64_t total) {
  (void)u, (void)stage, (void)total;
  return done >= 3;
}

START_TEST(phantom_is_deterministic_and_loadable) {
  csal3d_phantom_options o;
  csal3d_phantom_options_init(&o);
  o.cases = 12;
  o.size = 32;
  o.slices = 24;
  o.seed = 5;
  char a[512], b[512], c[512];
  snprintf(a, sizeof a, "%s/a", dir);
  snprintf(b, sizeof b, "%s/b", dir);
  snprintf(c, sizeof c, "%s/c", dir);
  ck_assert_msg(csal3d_phantom_generate(a, &o, NULL) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(csal3d_phantom_generate(b, &o, NULL), CSAL3D_OK);
  o.seed = 6;
  ck_assert_int_eq(csal3d_phantom_generate(c, &o, NULL), CSAL3D_OK);
  const char *files[] = {"dataset.json", "imagesTr/phantom_000.nii.gz",
                         "labelsTr/phantom_011.nii.gz"};
  int differs = 0;
  for (int i = 0; i < 3; i++) {
    char pa[600], pb[600], pc[600];
    snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
    snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
    snprintf(pc, sizeof pc, "%s/%s", c, files[i]);
    size_t na, nb, nc;
    unsigned char *xa = slurp(pa, &na), *xb = slurp(pb, &nb), *xc = slurp(pc, &nc);
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(xa, xb, na), 0); /* same seed, same bytes */
    differs += na != nc || memcmp(xa, xc, na);
    free(xa), free(xb), free(xc);
  }
  ck_assert_int_ge(differs, 2);
  /* It is a decathlon dataset: CT, labels on their images, every anatomy type present. */
  csal3d_dataset *ds;
  ck_assert_int_eq(csal3d_dataset_open(a, NULL, &ds), CSAL3D_OK);
  size_t n;
  csal3d_dataset_size(ds, &n);
  ck_assert_uint_eq(n, 12);
  csal3d_modality m;
  csal3d_dataset_modality(ds, &m);
  ck_assert_int_eq(m, CSAL3D_MODALITY_CT);
  int classes[5] = {0};
  for (size_t i = 0; i < n; i++) {
    csal3d_volume *img, *lab;
    csal3d_volume_load_options lo;
    csal3d_volume_load_options_init(&lo);
    lo.modality = CSAL3D_MODALITY_CT;
    ck_assert_int_eq(csal3d_dataset_load_image(ds, i, &lo, &img), CSAL3D_OK);
    ck_assert_msg(csal3d_dataset_load_label(ds, i, img, NULL, &lab) == CSAL3D_OK, "%s",
                  csal3d_last_error());
    int64_t s[4];
    csal3d_volume_shape(img, s);
    ck_assert(s[1] >= 24 && s[1] <= 32 && s[2] == s[1] && s[3] >= 14 && s[3] <= 24);
    double sp[3];
    csal3d_volume_spacing(img, sp);
    ck_assert(sp[2] != sp[0]); /* anisotropic */
    const float *x, *y;
    csal3d_volume_data(img, &x);
    csal3d_volume_data(lab, &y);
    int64_t out_of_range = 0;
    for (int64_t k = 0; k < s[1] * s[2] * s[3]; k++) {
      out_of_range += !(x[k] >= 0.0f && x[k] <= 1.0f) || !(y[k] >= 0 && y[k] <= 4);
      if (y[k] >= 0 && y[k] <= 4) classes[(int)y[k]]++;
    }
    ck_assert_int_eq(out_of_range, 0);
    csal3d_volume_free(img);
    csal3d_volume_free(lab);
  }
  for (int k = 0; k < 5; k++) ck_assert_msg(classes[k] > 0, "class %d never appears", k);
  csal3d_dataset_free(ds);
  /* The JSON lists each case's type: all five types among 12 cases. */
  char pj[600];
  snprintf(pj, sizeof pj, "%s/dataset.json", a);
  size_t nj;
  char *json = (char *)slurp(pj, &nj);
  json[nj] = '\0';
  const char *types[] = {"\"normal\"", "\"hepatomegaly_lesions\"", "\"single_kidney\"",
                         "\"situs_inversus\"", "\"renal_tumour\""};
  for (int t = 0; t < 5; t++) ck_assert_ptr_nonnull(strstr(json, types[t]));
  free(json);
  /* Cancellation stops it with CANCELLED. */
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.progress = cancel_at_3;
  csal3d_context *ctx;
  ck_assert_int_eq(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  snprintf(pj, sizeof pj, "%s/d", dir);
  ck_assert_int_eq(csal3d_phantom_generate(pj, &o, ctx), CSAL3D_ERR_CANCELLED);
  csal3d_context_free(ctx);
  o.cases = 0;
  ck_assert_int_eq(csal3d_phantom_generate(pj, &o, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- case ids (issue 12) and hostile lists (issue 13) ---- */

/* AMOS-style names: _NNNN is part of the name outside nnU-Net's layout. */
START_TEST(amos_names_are_not_channels) {
  sub("imagesTr");
  write_volume("imagesTr/amos_0001.nii.gz", 1, 0, 0);
  write_volume("imagesTr/amos_0004.nii.gz", 2, 0, 0);
  write_volume("imagesTr/amos_0005.nii.gz", 3, 0, 0);
  write_text("dataset.json",
             "{\"name\": \"AMOS\", \"modality\": {\"0\": \"CT\"}, \"training\": [\n"
             " {\"image\": \"./imagesTr/amos_0005.nii.gz\"},\n"
             " {\"image\": \"./imagesTr/amos_0001.nii.gz\"},\n"
             " {\"image\": \"./imagesTr/amos_0004.nii.gz\"}]}\n");
  csal3d_dataset *ds = open_ok("dataset.json"); /* was: "case id 'amos' appears twice" */
  ck_assert_uint_eq(size_of(ds), 3);
  ck_assert_str_eq(case_str(ds, 0, "id"), "amos_0005"); /* as listed */
  ck_assert_str_eq(case_str(ds, 1, "id"), "amos_0001");
  csal3d_dataset_free(ds);
  /* A folder of amos_0000..0002 is three cases (it was one case of three channels). */
  sub("flat");
  for (int i = 0; i < 3; i++) {
    char name[64];
    snprintf(name, sizeof name, "flat/amos_%04d.nii.gz", i);
    write_volume(name, (float)i, 0, 0);
  }
  ds = open_ok("flat");
  ck_assert_uint_eq(size_of(ds), 3);
  ck_assert_int_eq(image_files(ds, 0), 1);
  ck_assert_str_eq(case_str(ds, 2, "id"), "amos_0002");
  csal3d_dataset_free(ds);
  /* imagesTr/ without a dataset.json: nnU-Net's only when labelsTr/ names labels after
   * the names without the suffix. */
  sub("raw");
  sub("raw/imagesTr");
  sub("raw/labelsTr");
  write_volume("raw/imagesTr/amos_0001.nii.gz", 0, 0, 0);
  write_volume("raw/imagesTr/amos_0004.nii.gz", 0, 0, 0);
  write_volume("raw/labelsTr/amos_0001.nii.gz", 0, 0, 1);
  ds = open_ok("raw");
  ck_assert_uint_eq(size_of(ds), 2);
  ck_assert_str_eq(case_str(ds, 0, "id"), "amos_0001");
  int files, has_label;
  csal3d_dataset_case_info(ds, 0, &files, &has_label);
  ck_assert_int_eq(has_label, 1);
  csal3d_dataset_free(ds);
  /* The option never, on an nnU-Net v2 dataset.json: every file its own case. */
  sub("nn");
  sub("nn/imagesTr");
  write_volume("nn/imagesTr/p_0000.nii.gz", 0, 0, 0);
  write_volume("nn/imagesTr/p_0001.nii.gz", 0, 0, 0);
  write_text("nn/dataset.json", "{\"channel_names\": {\"0\": \"T2\", \"1\": \"ADC\"}, "
                                "\"file_ending\": \".nii.gz\"}");
  ds = open_ok("nn");
  ck_assert_uint_eq(size_of(ds), 1);
  ck_assert_int_eq(image_files(ds, 0), 2);
  csal3d_dataset_free(ds);
  ds = open_suffix("nn", CSAL3D_CHANNEL_SUFFIX_NEVER);
  ck_assert_uint_eq(size_of(ds), 2);
  ck_assert_str_eq(case_str(ds, 1, "id"), "p_0001");
  csal3d_dataset_free(ds);
  /* channel_names without file_ending is nnU-Net's too (any image extension). */
  write_text("nn/dataset.json", "{\"channel_names\": {\"0\": \"T2\", \"1\": \"ADC\"}}");
  ds = open_ok("nn");
  ck_assert_uint_eq(size_of(ds), 1);
  csal3d_dataset_free(ds);
}
END_TEST

/* One folder per subject: found below the top, ids by relative path where names repeat. */
START_TEST(one_folder_per_subject) {
  sub("subj01");
  sub("subj02");
  sub("subj03");
  sub("subj03/anat");
  sub(".cache");
  write_volume("subj01/flair.nii.gz", 1, 0, 0);
  write_volume("subj02/flair.nii.gz", 2, 0, 0);
  write_volume("subj03/anat/flair.nii.gz", 3, 0, 0);
  write_volume("subj01/t1.nii.gz", 4, 0, 0);
  write_volume(".cache/flair.nii.gz", 5, 0, 0); /* hidden: skipped */
  write_text("subj01/notes.txt", "x");
  csal3d_dataset *ds = open_ok(""); /* was: "no cases found" */
  ck_assert_uint_eq(size_of(ds), 4);
  /* Sorted by id; "flair" repeats: each id takes folders above it while it repeats. */
  ck_assert_str_eq(case_str(ds, 0, "id"), "anat/flair");
  ck_assert_str_eq(case_str(ds, 1, "id"), "subj01/flair");
  ck_assert_str_eq(case_str(ds, 2, "id"), "subj02/flair");
  ck_assert_str_eq(case_str(ds, 3, "id"), "t1");
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 2, NULL, &v), CSAL3D_OK);
  const float *x;
  csal3d_volume_data(v, &x);
  ck_assert_float_eq(x[0], 2.0f);
  csal3d_volume_free(v);
  csal3d_dataset_free(ds);
  /* Deeper: two levels where one is not enough (the relative paths). */
  sub("subj04");
  sub("subj04/anat");
  write_volume("subj04/anat/flair.nii.gz", 6, 0, 0);
  ds = open_ok("");
  ck_assert_uint_eq(size_of(ds), 5);
  ck_assert_str_eq(case_str(ds, 0, "id"), "subj01/flair");
  ck_assert_str_eq(case_str(ds, 2, "id"), "subj03/anat/flair");
  ck_assert_str_eq(case_str(ds, 3, "id"), "subj04/anat/flair");
  csal3d_dataset_free(ds);
  /* A list of the same: relative paths, ".." resolved. */
  write_text("list.txt", "subj01/flair.nii.gz\n./subj02/../subj02/flair.nii.gz\n");
  ds = open_ok("list.txt");
  ck_assert_str_eq(case_str(ds, 0, "id"), "subj01/flair");
  ck_assert_str_eq(case_str(ds, 1, "id"), "subj02/flair");
  csal3d_dataset_free(ds);
  write_text("list.txt", "subj01/flair.nii.gz\nsubj02/../subj01/flair.nii.gz\n");
  open_fails("list.txt", CSAL3D_ERR_FORMAT, "appears twice (entries 0 and 1");
  /* A link back up is not followed round; a FIFO named like an image is not a case. */
  char p[512], q[512];
  snprintf(p, sizeof p, "%s/subj02/loop", dir);
  ck_assert_int_eq(symlink("..", p), 0);
  snprintf(p, sizeof p, "%s/subj02/fifo.nii.gz", dir);
  ck_assert_int_eq(mkfifo(p, 0644), 0);
  ds = open_ok("");
  ck_assert_uint_eq(size_of(ds), 5);
  csal3d_dataset_free(ds);
  /* Linked subject folders are followed. */
  snprintf(p, sizeof p, "%s/subj04", dir);
  snprintf(q, sizeof q, "%s/elsewhere", dir);
  ck_assert_int_eq(rename(p, q), 0);
  snprintf(q, sizeof q, "%s/.elsewhere", dir);
  snprintf(p, sizeof p, "%s/elsewhere", dir);
  ck_assert_int_eq(rename(p, q), 0);
  snprintf(p, sizeof p, "%s/subj04", dir);
  ck_assert_int_eq(symlink(".elsewhere", p), 0);
  ds = open_ok("");
  ck_assert_uint_eq(size_of(ds), 5);
  ck_assert_str_eq(case_str(ds, 3, "id"), "subj04/anat/flair");
  csal3d_dataset_free(ds);
  /* A decathlon folder without the split asked for has no cases (the training images
   * are not test cases). */
  sub("msd");
  sub("msd/imagesTr");
  write_volume("msd/imagesTr/a.nii.gz", 0, 0, 0);
  snprintf(p, sizeof p, "%s/msd", dir);
  csal3d_dataset_options o;
  csal3d_dataset_options_init(&o);
  o.split = "test";
  ck_assert_int_eq(csal3d_dataset_open(p, &o, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "no cases found"));
}
END_TEST

/* Several images per line for channels; CSVs with a header. */
START_TEST(list_channels_and_csv) {
  sub("s1");
  write_volume("s1/t1.nii.gz", 10, 0, 0);
  write_volume("s1/flair.nii.gz", 20, 0, 0);
  write_volume("s1/seg.nii.gz", 0, 0, 1);
  write_volume("t1 b.nii.gz", 30, 0, 0);
  write_text("list.txt", "s1/t1.nii.gz;s1/flair.nii.gz,s1/seg.nii.gz\n");
  csal3d_dataset *ds = open_ok("list.txt");
  ck_assert_uint_eq(size_of(ds), 1);
  ck_assert_str_eq(case_str(ds, 0, "id"), "t1");
  ck_assert_int_eq(image_files(ds, 0), 2);
  ck_assert_ptr_nonnull(strstr(case_str(ds, 0, "label"), "s1/seg.nii.gz"));
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 0, NULL, &v), CSAL3D_OK);
  int64_t shape[4];
  csal3d_volume_shape(v, shape);
  ck_assert_int_eq(shape[0], 2);
  const float *x;
  csal3d_volume_data(v, &x);
  ck_assert_float_eq(x[0], 10.0f);
  ck_assert_float_eq(x[60], 20.0f);
  csal3d_volume_free(v);
  csal3d_dataset_free(ds);
  /* A CSV: a byte order mark, columns in any order, names in any case, quoted fields,
   * ignored columns, ids given or (empty) from the file name. */
  write_text("cases.csv", "\xef\xbb\xbf" "Label,age,IMAGE_1,id,image_0\n"
                          "s1/seg.nii.gz,54,s1/flair.nii.gz,subject 1,s1/t1.nii.gz\n"
                          ",61,s1/t1.nii.gz,,\"t1 b.nii.gz\"\n");
  ds = open_ok("cases.csv");
  ck_assert_uint_eq(size_of(ds), 2);
  ck_assert_str_eq(case_str(ds, 0, "id"), "subject 1");
  ck_assert_str_eq(case_str(ds, 1, "id"), "t1 b");
  ck_assert_ptr_nonnull(strstr(case_str(ds, 0, "image:0"), "s1/t1.nii.gz"));
  ck_assert_ptr_nonnull(strstr(case_str(ds, 0, "image:1"), "s1/flair.nii.gz"));
  ck_assert_str_eq(case_str(ds, 1, "label"), "");
  csal3d_dataset_free(ds);
  /* "image" with ';' channels, tab-separated. */
  write_text("cases.tsv", "image\tlabel\ns1/t1.nii.gz; s1/flair.nii.gz\ts1/seg.nii.gz\n");
  ds = open_ok("cases.tsv");
  ck_assert_int_eq(image_files(ds, 0), 2);
  csal3d_dataset_free(ds);
  /* An empty first cell of a tab-separated row stays a cell. */
  write_text("cases.tsv", "id\timage\n\ts1/t1.nii.gz\n  x 1 \ts1/flair.nii.gz\n");
  ds = open_ok("cases.tsv");
  ck_assert_str_eq(case_str(ds, 0, "id"), "t1");
  ck_assert_str_eq(case_str(ds, 1, "id"), "x 1");
  csal3d_dataset_free(ds);
  /* Refused, naming the line. */
  write_text("bad.csv", "id,label\nx,s1/seg.nii.gz\n");
  open_fails("bad.csv", CSAL3D_ERR_FORMAT, "bad.csv:1:");
  write_text("bad.csv", "image,image\ns1/t1.nii.gz,s1/t1.nii.gz\n");
  open_fails("bad.csv", CSAL3D_ERR_FORMAT, "say the same");
  write_text("bad.csv", "image,label\ns1/t1.nii.gz,s1/seg.nii.gz,extra\n");
  open_fails("bad.csv", CSAL3D_ERR_FORMAT, "bad.csv:2: 3 fields, the header has 2");
  write_text("bad.csv", "image_0,image_1\ns1/t1.nii.gz,\n");
  open_fails("bad.csv", CSAL3D_ERR_FORMAT, "bad.csv:2:");
  write_text("bad.csv", "image\n\"s1/t1.nii.gz\n");
  open_fails("bad.csv", CSAL3D_ERR_FORMAT, "bad.csv:2: a quoted field is not closed");
  write_text("bad.txt", "s1/t1.nii.gz,s1/seg.nii.gz,s1/flair.nii.gz\n");
  open_fails("bad.txt", CSAL3D_ERR_FORMAT, "bad.txt:1: 3 fields");
  write_text("bad.txt", "s1/t1.nii.gz;;s1/flair.nii.gz\n");
  open_fails("bad.txt", CSAL3D_ERR_FORMAT, "bad.txt:1: '' is not");
}
END_TEST

/* Writes dir/name.nii as a NIfTI-1 pair name.hdr + name.img (magic "ni1", offset 0). */
static void nii_to_pair(const char *name) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s.nii", dir, name);
  size_t n;
  unsigned char *b = slurp(p, &n);
  ck_assert_uint_gt(n, 352);
  memcpy(b + 344, "ni1\0", 4);
  float zero = 0;
  memcpy(b + 108, &zero, 4);
  snprintf(p, sizeof p, "%s/%s.hdr", dir, name);
  FILE *f = fopen(p, "wb");
  ck_assert_uint_eq(fwrite(b, 1, 348, f), 348);
  fclose(f);
  snprintf(p, sizeof p, "%s/%s.img", dir, name);
  f = fopen(p, "wb");
  ck_assert_uint_eq(fwrite(b + 352, 1, n - 352, f), n - 352);
  fclose(f);
  free(b);
  snprintf(p, sizeof p, "%s/%s.nii", dir, name);
  unlink(p);
}

/* .hdr/.img pairs in folders, lists and dataset.json (was: "no cases found"). */
START_TEST(analyze_pairs_everywhere) {
  sub("pairs");
  write_volume("pairs/p1.nii", 7, 0, 0);
  write_volume("pairs/p2.nii", 8, 0, 0);
  nii_to_pair("pairs/p1");
  nii_to_pair("pairs/p2");
  csal3d_dataset *ds = open_ok("pairs");
  ck_assert_uint_eq(size_of(ds), 2); /* one case per pair, not per file */
  ck_assert_str_eq(case_str(ds, 0, "id"), "p1");
  ck_assert_ptr_nonnull(strstr(case_str(ds, 0, "image"), "p1.hdr"));
  csal3d_volume *v;
  ck_assert_msg(csal3d_dataset_load_image(ds, 1, NULL, &v) == CSAL3D_OK, "%s",
                csal3d_last_error());
  const float *x;
  csal3d_volume_data(v, &x);
  ck_assert_float_eq(x[0], 8.0f);
  csal3d_volume_free(v);
  csal3d_dataset_free(ds);
  /* A list naming the .img: it stands for its .hdr. */
  write_text("pairs.txt", "pairs/p1.img\npairs/p2.hdr\n");
  ds = open_ok("pairs.txt");
  ck_assert_uint_eq(size_of(ds), 2);
  ck_assert_ptr_nonnull(strstr(case_str(ds, 0, "image"), "pairs/p1.hdr"));
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 0, NULL, &v), CSAL3D_OK);
  csal3d_volume_free(v);
  csal3d_dataset_free(ds);
  write_text("dataset.json", "{\"training\": [{\"image\": \"pairs/p2.img\", \"label\": null}]}");
  ds = open_ok("dataset.json");
  ck_assert_str_eq(case_str(ds, 0, "id"), "p2");
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 0, NULL, &v), CSAL3D_OK);
  csal3d_volume_free(v);
  csal3d_dataset_free(ds);
}
END_TEST

/* Control characters never become ids; NUL bytes never hide in a line (issue 13). */
START_TEST(control_characters_refused) {
  /* A list line with an embedded NUL: "a.nii.gz\0junk" was read as a.nii.gz. */
  write_volume("a.nii.gz", 0, 0, 0);
  char p[512];
  snprintf(p, sizeof p, "%s/nul.txt", dir);
  FILE *f = fopen(p, "wb");
  fwrite("b.nii.gz\n", 1, 9, f);
  fwrite("a.nii.gz\0.nii.gz\n", 1, 17, f);
  fclose(f);
  open_fails("nul.txt", CSAL3D_ERR_FORMAT, "nul.txt:2: the line holds a NUL byte");
  write_text("esc.txt", "b.nii.gz\n\x1b[2Ja.nii.gz\n");
  open_fails("esc.txt", CSAL3D_ERR_FORMAT, "esc.txt:2: the line holds the control character 0x1b");
  /* CRLF line ends are fine. */
  write_text("crlf.txt", "a.nii.gz\r\n");
  csal3d_dataset *ds = open_ok("crlf.txt");
  ck_assert_str_eq(case_str(ds, 0, "id"), "a");
  csal3d_dataset_free(ds);
  /* A file name with a newline or a tab, in a folder or a dataset.json. */
  sub("nl");
  write_volume("nl/ok.nii.gz", 0, 0, 0);
  write_volume("nl/evil\nname.nii.gz", 0, 0, 0);
  open_fails("nl", CSAL3D_ERR_FORMAT, "'evil\\nname'");
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "control character"));
  write_text("tab.json", "{\"training\": [{\"image\": \"x\\tcmd.nii.gz\"}]}");
  open_fails("tab.json", CSAL3D_ERR_FORMAT, "'x\\tcmd' of");
  /* Formula-like ids stay as they are (the manifest's CSV writer defuses them). */
  write_volume("=cmd|' calc'!A0.nii.gz", 0, 0, 0);
  write_text("formula.txt", "=cmd|' calc'!A0.nii.gz\n");
  ds = open_ok("formula.txt");
  ck_assert_str_eq(case_str(ds, 0, "id"), "=cmd|' calc'!A0");
  csal3d_dataset_free(ds);
}
END_TEST

/* 100,000 lines open (in well under a second: make bench, tests/bench_dataset.c, times
 * it); a duplicate at the end is found and named. */
START_TEST(large_list_and_late_duplicate) {
  char p[512];
  snprintf(p, sizeof p, "%s/big.txt", dir);
  FILE *f = fopen(p, "w");
  for (int i = 0; i < 100000; i++) fprintf(f, "s%06d/flair.nii.gz\n", i);
  fprintf(f, "s000017/flair.nii.gz\n");
  fclose(f);
  open_fails("big.txt", CSAL3D_ERR_FORMAT, "(entries 17 and 100000:");
  f = fopen(p, "w");
  fputs("id,image\n", f);
  for (int i = 0; i < 100000; i++) fprintf(f, "c%d,x%d.nii.gz\n", i, i);
  fclose(f);
  csal3d_dataset *ds = open_ok("big.txt");
  ck_assert_uint_eq(size_of(ds), 100000);
  ck_assert_str_eq(case_str(ds, 99999, "id"), "c99999");
  csal3d_dataset_free(ds);
}
END_TEST

/* Every allocation failure during open fails cleanly (no leak under ASan). */
START_TEST(open_survives_allocation_failures) {
  sub("s1");
  sub("s2");
  write_volume("s1/f.nii.gz", 0, 0, 0);
  write_volume("s2/f.nii.gz", 0, 0, 0);
  write_text("c.csv", "id,image_0,image_1,label\n,s1/f.nii.gz,s2/f.nii.gz,s1/f.nii.gz\n"
                      "b,s2/f.nii.gz,s1/f.nii.gz,\n");
  const char *what[] = {"", "c.csv"};
  for (int w = 0; w < 2; w++) {
    char p[512];
    snprintf(p, sizeof p, "%s%s%s", dir, *what[w] ? "/" : "", what[w]);
    int ok = 0;
    for (long k = 1; k < 200 && !ok; k++) {
      csal3d_dataset *ds = NULL;
      c3_alloc_fail_after(k);
      csal3d_status st = csal3d_dataset_open(p, NULL, &ds);
      c3_alloc_fail_after(0);
      ck_assert_msg(st == CSAL3D_OK || st == CSAL3D_ERR_OUT_OF_MEMORY, "'%s', failure %ld: %s",
                    what[w], k, csal3d_last_error());
      ok = st == CSAL3D_OK;
      ck_assert(ok == (ds != NULL));
      csal3d_dataset_free(ds);
    }
    ck_assert(ok);
  }
}
END_TEST

/* The list files of tests/data/dataset_list (also the seeds of tests/fuzz_dataset_list.c):
 * valid_* open, invalid_* fail with CSAL3D_ERR_FORMAT naming the file. */
START_TEST(list_corpus_replayed) {
  const char *cdir = "tests/data/dataset_list";
  DIR *d = opendir(cdir);
  ck_assert_msg(d != NULL, "corpus folder %s is missing", cdir);
  int seen = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", cdir, e->d_name);
    csal3d_dataset *ds = NULL;
    csal3d_status st = csal3d_dataset_open(p, NULL, &ds);
    if (!strncmp(e->d_name, "valid_", 6)) {
      ck_assert_msg(st == CSAL3D_OK, "%s: %s", e->d_name, csal3d_last_error());
      ck_assert_uint_gt(size_of(ds), 0);
    } else {
      ck_assert_msg(st == CSAL3D_ERR_FORMAT && strstr(csal3d_last_error(), e->d_name),
                    "%s: status %d: %s", e->d_name, (int)st, csal3d_last_error());
      ck_assert_ptr_null(ds);
    }
    csal3d_dataset_free(ds);
    seen++;
  }
  closedir(d);
  ck_assert_int_ge(seen, 10);
}
END_TEST

/* ---- real data ---- */

START_TEST(msd_hippocampus_all_cases) {
  const char *root = getenv("CSAL3D_DATA_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/msd_hippocampus/dataset.json",
           root && *root ? root : "../shared/data");
  if (access(path, R_OK) != 0) {
    printf("SKIP: %s not found (set CSAL3D_DATA_DIR)\n", path);
    return;
  }
  csal3d_dataset *ds;
  ck_assert_int_eq(csal3d_dataset_open(path, NULL, &ds), CSAL3D_OK);
  size_t n;
  csal3d_dataset_size(ds, &n);
  ck_assert_uint_eq(n, 260);
  csal3d_modality m;
  csal3d_dataset_modality(ds, &m);
  ck_assert_int_eq(m, CSAL3D_MODALITY_MRI);
  ck_assert_str_eq(case_str(ds, 0, "id"), "hippocampus_001");
  int64_t lo[3] = {1000, 1000, 1000}, hi[3] = {0, 0, 0};
  int labels_seen[3] = {0};
  for (size_t i = 0; i < n; i++) {
    csal3d_volume *img, *lab;
    csal3d_volume_load_options lo_opt;
    csal3d_volume_load_options_init(&lo_opt);
    lo_opt.modality = CSAL3D_MODALITY_MRI;
    ck_assert_msg(csal3d_dataset_load_image(ds, i, &lo_opt, &img) == CSAL3D_OK, "%s",
                  csal3d_last_error());
    ck_assert_msg(csal3d_dataset_load_label(ds, i, img, NULL, &lab) == CSAL3D_OK, "%s",
                  csal3d_last_error());
    int64_t s[4], t[4];
    csal3d_volume_shape(img, s);
    csal3d_volume_shape(lab, t);
    ck_assert_int_eq(s[0], 1);
    for (int a = 1; a < 4; a++) {
      ck_assert_int_eq(s[a], t[a]);
      if (s[a] < lo[a - 1]) lo[a - 1] = s[a];
      if (s[a] > hi[a - 1]) hi[a - 1] = s[a];
    }
    double sp[3];
    csal3d_volume_spacing(img, sp);
    for (int a = 0; a < 3; a++) ck_assert_double_eq_tol(sp[a], 1.0, 1e-3);
    const float *x, *y;
    csal3d_volume_data(img, &x);
    csal3d_volume_data(lab, &y);
    float mn = 1, mx = 0;
    int64_t odd = 0; /* (per-voxel ck_asserts would cost a write each) */
    for (int64_t k = 0; k < s[1] * s[2] * s[3]; k++) {
      mn = fminf(mn, x[k]), mx = fmaxf(mx, x[k]);
      if (y[k] == 0 || y[k] == 1 || y[k] == 2) labels_seen[(int)y[k]] = 1;
      else odd++;
    }
    ck_assert_int_eq(odd, 0);
    ck_assert_float_eq(mn, 0.0f);
    ck_assert_float_eq(mx, 1.0f);
    csal3d_volume_free(img);
    csal3d_volume_free(lab);
  }
  /* README: 31..43 x 40..59 x 24..47 voxels (RAS order here, the files are RAS). */
  ck_assert_int_eq(lo[0], 31);
  ck_assert_int_eq(hi[0], 43);
  ck_assert_int_eq(lo[1], 40);
  ck_assert_int_eq(hi[1], 59);
  ck_assert_int_eq(lo[2], 24);
  ck_assert_int_eq(hi[2], 47);
  ck_assert(labels_seen[0] && labels_seen[1] && labels_seen[2]);
  csal3d_dataset_free(ds);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("dataset");
  TCase *t = tcase_create("lists");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, folder_of_files_groups_channels);
  tcase_add_test(t, images_and_labels_folders);
  tcase_add_test(t, decathlon_json);
  tcase_add_test(t, nnunet_v2_json);
  tcase_add_test(t, text_list);
  tcase_add_test(t, amos_names_are_not_channels);
  tcase_add_test(t, one_folder_per_subject);
  tcase_add_test(t, list_channels_and_csv);
  tcase_add_test(t, analyze_pairs_everywhere);
  tcase_add_test(t, control_characters_refused);
  tcase_add_test(t, large_list_and_late_duplicate);
  tcase_add_test(t, open_survives_allocation_failures);
  tcase_add_test(t, list_corpus_replayed);
  suite_add_tcase(s, t);
  TCase *p = tcase_create("phantom");
  tcase_set_timeout(p, 60);
  tcase_add_checked_fixture(p, setup, teardown);
  tcase_add_test(p, phantom_is_deterministic_and_loadable);
  suite_add_tcase(s, p);
  TCase *r = tcase_create("real data");
  tcase_set_timeout(r, 60);
  tcase_add_test(r, msd_hippocampus_all_cases);
  suite_add_tcase(s, r);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
