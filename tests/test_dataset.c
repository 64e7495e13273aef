/* Tests of datasets (folders, decathlon and nnU-Net v2 dataset.json, text files), the
 * phantom generator, and the integration test over ../shared/data/msd_hippocampus
 * (skipped where absent; CSAL3D_DATA_DIR overrides ../shared/data). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static csal3d_dataset *open_ok(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s%s%s", dir, *rel ? "/" : "", rel);
  csal3d_dataset *ds = NULL;
  ck_assert_msg(csal3d_dataset_open(p, NULL, &ds) == CSAL3D_OK, "%s: %s", p, csal3d_last_error());
  return ds;
}

START_TEST(folder_of_files_groups_channels) {
  write_volume("b.nii", 10, 0, 0);
  write_volume("a.nii.gz", 0, 0, 0);
  write_volume("c_0001.nii.gz", 200, 0, 0);
  write_volume("c_0000.nii.gz", 100, 0, 0);
  write_volume(".hidden.nii.gz", 0, 0, 0);
  write_text("notes.txt", "not an image\n");
  csal3d_dataset *ds = open_ok("");
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
  ds = open_ok("");
  ck_assert_int_eq(csal3d_dataset_load_image(ds, 3, NULL, &v), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'd'"));
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not on the grid"));
  csal3d_dataset_free(ds);
  /* A gap in the channel numbers. */
  write_volume("e_0000.nii.gz", 0, 0, 0);
  write_volume("e_0002.nii.gz", 0, 0, 0);
  char p[512];
  snprintf(p, sizeof p, "%s", dir);
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case 'e'"));
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
  write_text("dataset.json", "{\"training\": [{\"image\": \"a/x.nii.gz\"}, {\"image\": \"b/x.nii\"}]}");
  ck_assert_int_eq(csal3d_dataset_open(p, NULL, &ds), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "'x' appears twice"));
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
