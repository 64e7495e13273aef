/* Tests of NIfTI loading and saving and of the volume preprocessing: known answers from
 * nibabel (tests/data/nifti/expected.json), bad files (the corpus in tests/data/nifti_bad
 * and files broken here), hostile files (tests/data/hostile: vox_offset, scl_inter,
 * pixdim; FIFOs, gzip bombs built here), atomic writes (write errors, writers killed inside
 * their write), out-of-memory paths. Run from the repository root. */
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
#include "volume/volume_internal.h"
#include "hostile.h"
#include <fcntl.h>
#include <zlib.h>

#define FIX "tests/data/nifti/"
#define BAD "tests/data/nifti_bad/"

static char tmpdir[256];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/csal3d_nifti_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tree(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* Files in a folder whose name contains `part`. */
static int count_files(const char *dir, const char *part) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, part)) n++;
  closedir(d);
  return n;
}

static csal3d_volume *load_ok(const char *path, int channel) {
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.channel = channel;
  csal3d_volume *v = NULL;
  csal3d_status s = csal3d_volume_load(path, &o, &v);
  ck_assert_msg(s == CSAL3D_OK, "%s: %s", path, csal3d_last_error());
  return v;
}

static void assert_matches_expected(csal3d_volume *v, json_t *e, int channel_only) {
  json_t *shape = json_object_get(e, "shape"), *data = json_object_get(e, "data"),
         *aff = json_object_get(e, "affine");
  int64_t s[4];
  csal3d_volume_shape(v, s);
  int64_t c0 = channel_only >= 0 ? channel_only : 0;
  int64_t want_c = channel_only >= 0 ? 1 : json_integer_value(json_array_get(shape, 0));
  ck_assert_int_eq(s[0], want_c);
  for (int i = 1; i < 4; i++) ck_assert_int_eq(s[i], json_integer_value(json_array_get(shape, i)));
  const float *x;
  csal3d_volume_data(v, &x);
  int64_t vox = s[1] * s[2] * s[3];
  for (int64_t i = 0; i < vox * s[0]; i++)
    ck_assert_float_eq(x[i], (float)json_real_value(json_array_get(data, c0 * vox + i)));
  double a[16];
  csal3d_volume_affine(v, a);
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++)
      ck_assert_double_eq_tol(a[r * 4 + c],
                              json_number_value(json_array_get(json_array_get(aff, r), c)),
                              1e-5);
  double sp[3];
  csal3d_volume_spacing(v, sp);
  for (int c = 0; c < 3; c++) {
    double n = 0;
    for (int r = 0; r < 3; r++) n += a[r * 4 + c] * a[r * 4 + c];
    ck_assert_double_eq_tol(sp[c], sqrt(n), 1e-12);
  }
}

START_TEST(fixtures_match_nibabel) {
  json_error_t err;
  json_t *root = json_load_file(FIX "expected.json", 0, &err);
  ck_assert_msg(root != NULL, "expected.json: %s", err.text);
  const char *name;
  json_t *e;
  int n = 0;
  json_object_foreach(root, name, e) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    int multi = strstr(name, "multichannel") != NULL;
    csal3d_volume *v = load_ok(path, multi ? CSAL3D_CHANNEL_ALL : CSAL3D_CHANNEL_NONE);
    assert_matches_expected(v, e, -1);
    csal3d_volume_free(v);
    if (multi) {
      v = load_ok(path, 1);
      assert_matches_expected(v, e, 1);
      csal3d_volume_free(v);
    }
    n++;
  }
  ck_assert_int_ge(n, 7);
  json_decref(root);
}
END_TEST

START_TEST(oblique_orientation_by_hand) {
  /* i -> +S, j -> -R (rotated 25 deg about z), k -> +A: the RAS array is [X, Y, Z] =
   * [j reversed, k, i]; voxel value i + 10 j + 100 k (x 0.25). */
  csal3d_volume *v = load_ok(FIX "oblique_float32.nii.gz", CSAL3D_CHANNEL_NONE);
  int64_t s[4];
  csal3d_volume_shape(v, s);
  ck_assert_int_eq(s[1], 4);
  ck_assert_int_eq(s[2], 3);
  ck_assert_int_eq(s[3], 5);
  const float *x;
  csal3d_volume_data(v, &x);
  for (int64_t d = 0; d < 4; d++)
    for (int64_t h = 0; h < 3; h++)
      for (int64_t w = 0; w < 5; w++) {
        int64_t i = w, j = 3 - d, k = h;
        ck_assert_float_eq(x[(d * 3 + h) * 5 + w], 0.25f * (float)(i + 10 * j + 100 * k));
      }
  double sp[3];
  csal3d_volume_spacing(v, sp);
  ck_assert_double_eq_tol(sp[0], 0.8, 1e-6);
  ck_assert_double_eq_tol(sp[1], 2.0, 1e-6);
  ck_assert_double_eq_tol(sp[2], 1.5, 1e-6);
  csal3d_volume_free(v);
}
END_TEST

START_TEST(four_d_needs_a_channel) {
  csal3d_volume *v = (csal3d_volume *)1;
  ck_assert_int_eq(csal3d_volume_load(FIX "multichannel_int16.nii.gz", NULL, &v),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(v);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "4-D image with 3 channels"));
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "multichannel_int16.nii.gz"));
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.channel = 3;
  ck_assert_int_eq(csal3d_volume_load(FIX "multichannel_int16.nii.gz", &o, &v),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "channel 3 does not exist"));
  o.channel = 1; /* of a 3-D image */
  ck_assert_int_eq(csal3d_volume_load(FIX "lps_uint8.nii", &o, &v), CSAL3D_ERR_INVALID_ARGUMENT);
  o.channel = 0;
  ck_assert_int_eq(csal3d_volume_load(FIX "lps_uint8.nii", &o, &v), CSAL3D_OK);
  csal3d_volume_free(v);
}
END_TEST

START_TEST(labels_on_their_image_grid) {
  csal3d_volume *img = load_ok(FIX "ras_int16_scaled.nii.gz", CSAL3D_CHANNEL_NONE), *lab;
  ck_assert_int_eq(csal3d_volume_load_label(FIX "label_ras.nii.gz", img, NULL, &lab), CSAL3D_OK);
  int is_label = 0;
  csal3d_volume_is_label(lab, &is_label);
  ck_assert_int_eq(is_label, 1);
  const float *x;
  csal3d_volume_data(lab, &x);
  for (int64_t i = 0; i < 4; i++)
    for (int64_t j = 0; j < 5; j++)
      for (int64_t k = 0; k < 6; k++)
        ck_assert_float_eq(x[(i * 5 + j) * 6 + k], (float)((i + 10 * j + 100 * k) % 3));
  csal3d_volume_free(lab);
  lab = (csal3d_volume *)1;
  ck_assert_int_eq(csal3d_volume_load_label(FIX "label_shifted.nii.gz", img, NULL, &lab),
                   CSAL3D_ERR_FORMAT);
  ck_assert_ptr_null(lab);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not on its image's grid"));
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "2 mm apart"));
  ck_assert_int_eq(csal3d_volume_load_label(FIX "label_short.nii.gz", img, NULL, &lab),
                   CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "dimensions 4 x 5 x 5 differ"));
  ck_assert_int_eq(csal3d_volume_load_label(FIX "label_fractional.nii.gz", NULL, NULL, &lab),
                   CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not a label image"));
  /* Image resampled to 1 mm: the label follows onto the new grid (nearest). */
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.spacing[0] = 1, o.spacing[1] = 1, o.spacing[2] = 1;
  csal3d_volume *img1;
  ck_assert_int_eq(csal3d_volume_load(FIX "ras_int16_scaled.nii.gz", &o, &img1), CSAL3D_OK);
  ck_assert_int_eq(csal3d_volume_load_label(FIX "label_ras.nii.gz", img1, NULL, &lab), CSAL3D_OK);
  int64_t s[4];
  csal3d_volume_shape(lab, s);
  ck_assert_int_eq(s[1], 8);
  ck_assert_int_eq(s[2], 15);
  ck_assert_int_eq(s[3], 24);
  csal3d_volume_data(lab, &x);
  /* Voxel (d, h, w) at 1 mm samples the 2x3x4 mm grid at (d/2, h/3, w/4), nearest. */
  for (int64_t d = 0; d < 8; d++)
    for (int64_t h = 0; h < 15; h++)
      for (int64_t w = 0; w < 24; w++) {
        int64_t i = (int64_t)floor(d / 2.0 + 0.5), j = (int64_t)floor(h / 3.0 + 0.5),
                k = (int64_t)floor(w / 4.0 + 0.5);
        i = i > 3 ? 3 : i, j = j > 4 ? 4 : j, k = k > 5 ? 5 : k;
        ck_assert_msg(x[(d * 15 + h) * 24 + w] == (float)((i + 10 * j + 100 * k) % 3), "at %d %d %d: %g", (int)d, (int)h, (int)w, x[(d * 15 + h) * 24 + w]);
      }
  csal3d_volume_free(lab);
  csal3d_volume_free(img1);
  csal3d_volume_free(img);
}
END_TEST

typedef struct bad_case {
  const char *file;
  csal3d_status status;
  const char *message;
} bad_case;

static const bad_case bad_cases[] = {
    {"empty.nii", CSAL3D_ERR_FORMAT, "not a NIfTI file (only 0 bytes)"},
    {"short_header.nii", CSAL3D_ERR_IO, "truncated NIfTI-1 header (200 of 348 bytes)"},
    {"truncated_data.nii", CSAL3D_ERR_IO, "truncated: the header promises 60 bytes"},
    {"truncated_stream.nii.gz", CSAL3D_ERR_IO, "truncated or corrupt voxel data"},
    {"not_gzip.nii.gz", CSAL3D_ERR_FORMAT, "not a NIfTI file (header size field"},
    {"wrong_magic.nii", CSAL3D_ERR_FORMAT, "wrong magic \"xyz\""},
    {"analyze.nii", CSAL3D_ERR_FORMAT, "ANALYZE 7.5 files are not supported"},
    {"bad_sizeof_hdr.nii", CSAL3D_ERR_FORMAT, "header size field is 123"},
    {"zero_dim.nii", CSAL3D_ERR_FORMAT, "dimension 1 is 0 (must be >= 1)"},
    {"negative_dim.nii", CSAL3D_ERR_FORMAT, "dimension 2 is -4"},
    {"bad_ndim.nii", CSAL3D_ERR_FORMAT, "dim[0] is 9"},
    {"huge_dims.nii", CSAL3D_ERR_UNSUPPORTED, "more than the limit"},
    {"complex64.nii", CSAL3D_ERR_UNSUPPORTED, "datatype 32 (complex64) is not supported"},
    {"rgb24.nii", CSAL3D_ERR_UNSUPPORTED, "datatype 128 (rgb24)"},
    {"five_d.nii", CSAL3D_ERR_UNSUPPORTED, "at most 4-D"},
    {"nan.nii", CSAL3D_ERR_NUMERICAL, "2 NaN or Inf voxels (the first at i=1 j=1 k=0"},
    {"singular_affine.nii", CSAL3D_ERR_FORMAT, "the affine is singular"},
    {"does_not_exist.nii.gz", CSAL3D_ERR_IO, "cannot open: No such file"},
};

START_TEST(bad_corpus_gives_specific_errors) {
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    char path[256];
    snprintf(path, sizeof path, BAD "%s", bad_cases[i].file);
    csal3d_volume *v = (csal3d_volume *)1;
    csal3d_status s = csal3d_volume_load(path, NULL, &v);
    ck_assert_msg(s == bad_cases[i].status, "%s: status %d (%s), want %d", path, s,
                  csal3d_last_error(), bad_cases[i].status);
    ck_assert_ptr_null(v);
    ck_assert_msg(strstr(csal3d_last_error(), bad_cases[i].message) != NULL,
                  "%s: message '%s' lacks '%s'", path, csal3d_last_error(),
                  bad_cases[i].message);
    ck_assert_msg(strstr(csal3d_last_error(), bad_cases[i].file) != NULL,
                  "%s: message does not name the file", path);
  }
  /* NaN and Inf read as 0 when allowed. */
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.allow_nonfinite = 1;
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_load(BAD "nan.nii", &o, &v), CSAL3D_OK);
  const float *x;
  csal3d_volume_data(v, &x);
  int zeros = 0;
  for (int i = 0; i < 8; i++) zeros += x[i] == 0.0f;
  ck_assert_int_eq(zeros, 2);
  csal3d_volume_free(v);
  /* A small max_voxels refuses an ordinary image. */
  o.allow_nonfinite = 0;
  o.max_voxels = 10;
  ck_assert_int_eq(csal3d_volume_load(FIX "lps_uint8.nii", &o, &v), CSAL3D_ERR_UNSUPPORTED);
  /* Not a NIfTI name. */
  ck_assert_int_eq(csal3d_volume_load("Makefile", NULL, &v), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_volume_load("tests", NULL, &v), CSAL3D_ERR_IO);
}
END_TEST

static unsigned char *read_all(const char *path, size_t *n) {
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

static void write_all(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}

/* Every truncation of a valid file fails cleanly; so does a flipped magic byte. */
START_TEST(files_broken_here_fail_cleanly) {
  make_tmpdir();
  const char *srcs[] = {FIX "lps_uint8.nii", FIX "oblique_float32.nii.gz",
                        FIX "nifti2_float64.nii"};
  for (int si = 0; si < 3; si++) {
    size_t n;
    unsigned char *b = read_all(srcs[si], &n);
    int gz = strstr(srcs[si], ".gz") != NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/cut%s", tmpdir, gz ? ".nii.gz" : ".nii");
    for (size_t len = 0; len < n; len += (gz ? 1 : 1 + len / 64)) {
      write_all(path, b, len);
      csal3d_volume *v = (csal3d_volume *)1;
      csal3d_status s = csal3d_volume_load(path, NULL, &v);
      /* A gzip stream cut inside its 8-byte trailer still holds all the data. */
      if (gz && len + 8 >= n && s == CSAL3D_OK) {
        csal3d_volume_free(v);
        continue;
      }
      ck_assert_msg(s == CSAL3D_ERR_IO || s == CSAL3D_ERR_FORMAT,
                    "%s cut to %zu bytes: status %d (%s)", srcs[si], len, s, csal3d_last_error());
      ck_assert_ptr_null(v);
    }
    if (!gz) {
      b[si == 2 ? 5 : 345] ^= 0x20; /* flip a magic byte */
      write_all(path, b, n);
      csal3d_volume *v;
      ck_assert_int_eq(csal3d_volume_load(path, NULL, &v), CSAL3D_ERR_FORMAT);
      ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "wrong magic"));
    }
    free(b);
  }
  remove_tree(tmpdir);
}
END_TEST

START_TEST(save_round_trips_on_the_input_grid) {
  make_tmpdir();
  const char *srcs[] = {FIX "oblique_float32.nii.gz", FIX "lps_uint8.nii",
                        FIX "qform_only_int32.nii.gz", FIX "nifti2_float64.nii"};
  for (int si = 0; si < 4; si++) {
    csal3d_volume *v = load_ok(srcs[si], CSAL3D_CHANNEL_NONE), *w;
    char path[512];
    snprintf(path, sizeof path, "%s/out%d.nii.gz", tmpdir, si);
    ck_assert_int_eq(csal3d_volume_save(v, path, NULL), CSAL3D_OK);
    w = load_ok(path, CSAL3D_CHANNEL_NONE);
    int64_t a[4], b[4];
    csal3d_volume_shape(v, a);
    csal3d_volume_shape(w, b);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(a[i], b[i]);
    const float *x, *y;
    csal3d_volume_data(v, &x);
    csal3d_volume_data(w, &y);
    ck_assert_int_eq(memcmp(x, y, sizeof(float) * (size_t)(a[0] * a[1] * a[2] * a[3])), 0);
    double A[16], B[16];
    csal3d_volume_affine(v, A);
    csal3d_volume_affine(w, B);
    for (int i = 0; i < 16; i++) ck_assert_double_eq_tol(A[i], B[i], 1e-4);
    /* Written in the input's own voxel order: the storage grids coincide. */
    ck_assert_int_eq(v->source.dim[0], w->source.dim[0]);
    ck_assert_int_eq(v->source.dim[1], w->source.dim[1]);
    ck_assert_int_eq(v->source.dim[2], w->source.dim[2]);
    ck_assert(c3_axes_equal(v->source.to_ras, w->source.to_ras));
    ck_assert_int_eq(v->source.sform_code, w->source.sform_code);
    ck_assert_int_eq(v->source.qform_code, w->source.qform_code);
    csal3d_volume_free(w);
    /* RAS output: the array as it is, same world grid. */
    csal3d_volume_save_options so;
    csal3d_volume_save_options_init(&so);
    so.source_orientation = 0;
    snprintf(path, sizeof path, "%s/ras%d.nii", tmpdir, si);
    ck_assert_int_eq(csal3d_volume_save(v, path, &so), CSAL3D_OK);
    w = load_ok(path, CSAL3D_CHANNEL_NONE);
    csal3d_volume_data(w, &y);
    ck_assert_int_eq(memcmp(x, y, sizeof(float) * (size_t)(a[0] * a[1] * a[2] * a[3])), 0);
    const c3_axes_map transpose = {{2, 1, 0}, {0, 0, 0}};
    ck_assert(c3_axes_equal(w->source.to_ras, transpose));
    csal3d_volume_free(w);
    csal3d_volume_free(v);
  }
  ck_assert_int_eq(count_files(tmpdir, ".tmp."), 0);
  remove_tree(tmpdir);
}
END_TEST

START_TEST(save_is_atomic_and_checks_values) {
  make_tmpdir();
  csal3d_volume *v = load_ok(FIX "lps_uint8.nii", CSAL3D_CHANNEL_NONE);
  char path[512], missing[512];
  snprintf(path, sizeof path, "%s/keep.nii.gz", tmpdir);
  snprintf(missing, sizeof missing, "%s/no/such/folder/x.nii.gz", tmpdir);
  ck_assert_int_eq(csal3d_volume_save(v, missing, NULL), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "temporary file"));
  ck_assert_int_eq(csal3d_volume_save(v, path, NULL), CSAL3D_OK);
  size_t n0;
  unsigned char *before = read_all(path, &n0);
  /* A failing save leaves the existing file as it was and no temporary behind. */
  csal3d_volume *big;
  int64_t dims[3] = {2, 2, 2};
  float vals[8] = {0, 1, 2, 3, 4, 5, 6, 40000};
  ck_assert_int_eq(csal3d_volume_create(1, dims, vals, NULL, &big), CSAL3D_OK);
  csal3d_volume_save_options so;
  csal3d_volume_save_options_init(&so);
  so.dtype = CSAL3D_SAVE_INT16;
  ck_assert_int_eq(csal3d_volume_save(big, path, &so), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "do not fit in int16"));
  vals[7] = NAN;
  csal3d_volume_free(big);
  ck_assert_int_eq(csal3d_volume_create(1, dims, vals, NULL, &big), CSAL3D_OK);
  ck_assert_int_eq(csal3d_volume_save(big, path, &so), CSAL3D_ERR_NUMERICAL);
  /* Out of memory while writing: still nothing half-written. */
  c3_alloc_fail_after(1);
  ck_assert_int_eq(csal3d_volume_save(v, path, NULL), CSAL3D_ERR_OUT_OF_MEMORY);
  c3_alloc_fail_after(0);
  size_t n1;
  unsigned char *after = read_all(path, &n1);
  ck_assert_uint_eq(n0, n1);
  ck_assert_int_eq(memcmp(before, after, n0), 0);
  ck_assert_int_eq(count_files(tmpdir, ".tmp."), 0);
  free(before), free(after);
  ck_assert_int_eq(csal3d_volume_save(v, "x.txt", NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  /* int16 and uint8 round values; labels choose uint8. */
  vals[7] = 7.4f;
  csal3d_volume_free(big);
  ck_assert_int_eq(csal3d_volume_create(1, dims, vals, NULL, &big), CSAL3D_OK);
  ck_assert_int_eq(csal3d_volume_save(big, path, &so), CSAL3D_OK);
  csal3d_volume *back = load_ok(path, CSAL3D_CHANNEL_NONE);
  const float *y;
  csal3d_volume_data(back, &y);
  ck_assert_float_eq(y[7], 7.0f);
  ck_assert_float_eq(y[3], 3.0f);
  csal3d_volume_free(back);
  csal3d_volume_free(big);
  csal3d_volume_free(v);
  remove_tree(tmpdir);
}
END_TEST

START_TEST(multichannel_save_and_create_like) {
  make_tmpdir();
  csal3d_volume *v = load_ok(FIX "multichannel_int16.nii.gz", CSAL3D_CHANNEL_ALL), *w, *m;
  char path[512];
  snprintf(path, sizeof path, "%s/four_d.nii", tmpdir);
  ck_assert_int_eq(csal3d_volume_save(v, path, NULL), CSAL3D_OK);
  w = load_ok(path, CSAL3D_CHANNEL_ALL);
  const float *x, *y;
  csal3d_volume_data(v, &x);
  csal3d_volume_data(w, &y);
  ck_assert_int_eq(memcmp(x, y, sizeof(float) * 3 * 24), 0);
  csal3d_volume_free(w);
  /* A one-channel map on the grid of a loaded image lands on that image's grid. */
  float map[24];
  for (int i = 0; i < 24; i++) map[i] = (float)i / 7.0f;
  ck_assert_int_eq(csal3d_volume_create_like(v, 1, map, &m), CSAL3D_OK);
  snprintf(path, sizeof path, "%s/map.nii.gz", tmpdir);
  ck_assert_int_eq(csal3d_volume_save(m, path, NULL), CSAL3D_OK);
  w = load_ok(path, CSAL3D_CHANNEL_NONE);
  csal3d_volume_data(w, &y);
  ck_assert_int_eq(memcmp(map, y, sizeof map), 0);
  double A[16], B[16];
  csal3d_volume_affine(v, A);
  csal3d_volume_affine(w, B);
  for (int i = 0; i < 16; i++) ck_assert_double_eq_tol(A[i], B[i], 1e-6);
  /* The buffer API. */
  size_t need = 0;
  ck_assert_int_eq(csal3d_volume_copy_data(v, NULL, 0, &need), CSAL3D_OK);
  ck_assert_uint_eq(need, 72);
  float buf[72];
  ck_assert_int_eq(csal3d_volume_copy_data(v, buf, 71, &need), CSAL3D_ERR_BUFFER_TOO_SMALL);
  ck_assert_int_eq(csal3d_volume_copy_data(v, buf, 72, NULL), CSAL3D_OK);
  ck_assert_int_eq(memcmp(buf, x, sizeof buf), 0);
  csal3d_volume_free(w);
  csal3d_volume_free(m);
  csal3d_volume_free(v);
  remove_tree(tmpdir);
}
END_TEST

START_TEST(out_of_memory_during_load_is_clean) {
  /* Fail each allocation in turn: a clean status, and (under ASan) no leak. */
  for (long n = 1; n < 20; n++) {
    c3_alloc_fail_after(n);
    csal3d_volume *v = NULL;
    csal3d_volume_load_options o;
    csal3d_volume_load_options_init(&o);
    o.modality = CSAL3D_MODALITY_MRI;
    o.spacing[0] = 0.5;
    csal3d_status s = csal3d_volume_load(FIX "oblique_float32.nii.gz", &o, &v);
    c3_alloc_fail_after(0);
    if (s == CSAL3D_OK) {
      csal3d_volume_free(v);
      break;
    }
    ck_assert_int_eq(s, CSAL3D_ERR_OUT_OF_MEMORY);
    ck_assert_ptr_null(v);
  }
}
END_TEST

/* ---- preprocessing ---- */

static csal3d_volume *make(int64_t c, int64_t d, int64_t h, int64_t w, const float *x,
                           const double *affine) {
  csal3d_volume *v;
  int64_t dims[3] = {d, h, w};
  ck_assert_int_eq(csal3d_volume_create(c, dims, x, affine, &v), CSAL3D_OK);
  return v;
}

START_TEST(percentiles_match_numpy) {
  float x[100];
  for (int i = 0; i < 100; i++) x[i] = (float)((i * 37) % 100); /* 0..99 shuffled */
  ck_assert_double_eq_tol(c3_percentile(x, 100, 1.0), 0.99, 1e-9);
  ck_assert_double_eq_tol(c3_percentile(x, 100, 99.0), 98.01, 1e-9);
  ck_assert_double_eq_tol(c3_percentile(x, 100, 50.0), 49.5, 1e-9);
  ck_assert_double_eq(c3_percentile(x, 100, 0.0), 0.0);
  ck_assert_double_eq(c3_percentile(x, 100, 100.0), 99.0);
  float y[7] = {5, 5, 5, 1, 5, 5, 9}; /* np.percentile(y, 99) = 8.76 */
  ck_assert_double_eq_tol(c3_percentile(y, 7, 99.0), 8.76, 1e-9);
  float z[7] = {5, 5, 5, 1, 5, 5, 9}; /* np.percentile(z, 1) = 1.24 */
  ck_assert_double_eq_tol(c3_percentile(z, 7, 1.0), 1.24, 1e-9);
}
END_TEST

START_TEST(normalisation_known_answers) {
  float ct[6] = {-2000, -1024, 0, 512, 1024, 3000};
  csal3d_volume *v = make(1, 1, 1, 6, ct, NULL);
  ck_assert_int_eq(csal3d_volume_normalize(v, CSAL3D_MODALITY_CT), CSAL3D_OK);
  const float *x;
  csal3d_volume_data(v, &x);
  const float want[6] = {0, 0, 0.5f, 0.75f, 1, 1};
  for (int i = 0; i < 6; i++) ck_assert_float_eq(x[i], want[i]);
  csal3d_volume_free(v);
  /* MRI, two channels: channel 0 = 0..99, channel 1 constant. z-scoring is affine, so the
   * result is clip((x - p1) / (p99 - p1)) with p1 = 0.99, p99 = 98.01 of 0..99. */
  float mr[200];
  for (int i = 0; i < 100; i++) mr[i] = (float)i, mr[100 + i] = 3.0f;
  v = make(2, 4, 5, 5, mr, NULL);
  ck_assert_int_eq(csal3d_volume_normalize(v, CSAL3D_MODALITY_MRI), CSAL3D_OK);
  csal3d_volume_data(v, &x);
  for (int i = 0; i < 100; i++) {
    double e = (i - 0.99) / (98.01 - 0.99);
    e = e < 0 ? 0 : e > 1 ? 1 : e;
    ck_assert_double_eq_tol(x[i], e, 2e-6);
    ck_assert_float_eq(x[100 + i], 0.0f);
  }
  ck_assert_int_eq(csal3d_volume_normalize(v, (csal3d_modality)7), CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_volume_free(v);
}
END_TEST

START_TEST(resample_known_answers) {
  /* A ramp along W at 2 mm resampled to 1 mm: 4 -> 8 voxels, sample i at i/2. */
  float ramp[4] = {0, 10, 20, 40};
  double aff[16] = {1, 0, 0, 5, 0, 1, 0, 6, 0, 0, 2, 7, 0, 0, 0, 1};
  csal3d_volume *v = make(1, 1, 1, 4, ramp, aff), *r;
  const double sp[3] = {0, 0, 1.0};
  ck_assert_int_eq(csal3d_volume_resample(v, sp, &r), CSAL3D_OK);
  int64_t s[4];
  csal3d_volume_shape(r, s);
  ck_assert_int_eq(s[3], 8);
  const float *x;
  csal3d_volume_data(r, &x);
  const float want[8] = {0, 5, 10, 15, 20, 30, 40, 40};
  for (int i = 0; i < 8; i++) ck_assert_float_eq_tol(x[i], want[i], 1e-5);
  double a[16];
  csal3d_volume_affine(r, a);
  ck_assert_double_eq(a[10], 1.0);
  ck_assert_double_eq(a[11], 7.0); /* the first voxel centre stays */
  double spacing[3];
  csal3d_volume_spacing(r, spacing);
  ck_assert_double_eq(spacing[2], 1.0);
  /* Back to the source grid is not possible for a created volume. */
  csal3d_volume *b;
  ck_assert_int_eq(csal3d_volume_to_source_grid(r, 0, &b), CSAL3D_ERR_STATE);
  csal3d_volume_free(r);
  /* Coarser: 4 voxels at 2 mm -> 3 mm: round(8/3) = 3 voxels sampling 0, 1.5, 3. */
  const double sp3[3] = {0, 0, 3.0};
  ck_assert_int_eq(csal3d_volume_resample(v, sp3, &r), CSAL3D_OK);
  csal3d_volume_shape(r, s);
  ck_assert_int_eq(s[3], 3);
  csal3d_volume_data(r, &x);
  ck_assert_float_eq_tol(x[0], 0, 1e-6);
  ck_assert_float_eq_tol(x[1], 15, 1e-5);
  ck_assert_float_eq_tol(x[2], 40, 1e-5);
  csal3d_volume_free(r);
  const double bad[3] = {0, -1, 0};
  ck_assert_int_eq(csal3d_volume_resample(v, bad, &r), CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_volume_free(v);
}
END_TEST

START_TEST(crop_pad_bbox_random_crop) {
  float x[2 * 4 * 4 * 4];
  for (int i = 0; i < 128; i++) x[i] = (float)i;
  double aff[16] = {2, 0, 0, 1, 0, 3, 0, 2, 0, 0, 4, 3, 0, 0, 0, 1};
  csal3d_volume *v = make(2, 4, 4, 4, x, aff), *c;
  /* Centre pad to 6 and crop to 2: lo = -1 along D, +1 along H, 0 along W. */
  const int64_t shape[3] = {6, 2, 4};
  ck_assert_int_eq(csal3d_volume_crop_or_pad(v, shape, -5.0f, &c), CSAL3D_OK);
  const float *y;
  csal3d_volume_data(c, &y);
  for (int ch = 0; ch < 2; ch++)
    for (int d = 0; d < 6; d++)
      for (int h = 0; h < 2; h++)
        for (int w = 0; w < 4; w++) {
          int sd = d - 1, sh = h + 1;
          float want = sd < 0 || sd > 3 ? -5.0f : x[ch * 64 + (sd * 4 + sh) * 4 + w];
          ck_assert_float_eq(y[ch * 48 + (d * 2 + h) * 4 + w], want);
        }
  double a[16];
  csal3d_volume_affine(c, a);
  /* World of voxel (0,0,0) of the crop = world of voxel (-1, 1, 0) of the input. */
  ck_assert_double_eq(a[3], 1 - 2.0);
  ck_assert_double_eq(a[7], 2 + 3.0);
  ck_assert_double_eq(a[11], 3.0);
  csal3d_volume_free(c);
  /* Foreground box. */
  float f[4 * 4 * 4] = {0};
  f[(1 * 4 + 2) * 4 + 3] = 1, f[(2 * 4 + 0) * 4 + 1] = 1;
  csal3d_volume *fg = make(1, 4, 4, 4, f, NULL);
  int64_t lo[3], hi[3];
  ck_assert_int_eq(csal3d_volume_foreground_bbox(fg, 0.5f, lo, hi), CSAL3D_OK);
  ck_assert_int_eq(lo[0], 1);
  ck_assert_int_eq(hi[0], 3);
  ck_assert_int_eq(lo[1], 0);
  ck_assert_int_eq(hi[1], 3);
  ck_assert_int_eq(lo[2], 1);
  ck_assert_int_eq(hi[2], 4);
  ck_assert_int_eq(csal3d_volume_foreground_bbox(fg, 2.0f, lo, hi), CSAL3D_OK);
  ck_assert_int_eq(lo[0] + lo[1] + lo[2] + hi[0] + hi[1] + hi[2], 0);
  csal3d_volume_free(fg);
  /* Random crops: deterministic by key, inside the volume, all starts reachable. */
  const int64_t size[3] = {2, 3, 4};
  int seen[3][3] = {{0}};
  for (uint64_t item = 0; item < 200; item++) {
    int64_t l1[3], l2[3];
    csal3d_volume *c1, *c2;
    ck_assert_int_eq(csal3d_volume_random_crop(v, size, 9, 1, item, l1, &c1), CSAL3D_OK);
    ck_assert_int_eq(csal3d_volume_random_crop(v, size, 9, 1, item, l2, &c2), CSAL3D_OK);
    ck_assert_int_eq(memcmp(l1, l2, sizeof l1), 0);
    ck_assert(l1[0] >= 0 && l1[0] <= 2 && l1[1] >= 0 && l1[1] <= 1 && l1[2] == 0);
    seen[0][l1[0]]++, seen[1][l1[1]]++;
    const float *p;
    csal3d_volume_data(c1, &p);
    ck_assert_float_eq(p[0], x[(l1[0] * 4 + l1[1]) * 4 + l1[2]]);
    csal3d_volume_free(c1);
    csal3d_volume_free(c2);
  }
  ck_assert(seen[0][0] && seen[0][1] && seen[0][2] && seen[1][0] && seen[1][1]);
  /* Larger than the volume: centred padding. */
  const int64_t bigger[3] = {6, 4, 4};
  int64_t l3[3];
  ck_assert_int_eq(csal3d_volume_random_crop(v, bigger, 9, 1, 0, l3, &c), CSAL3D_OK);
  ck_assert_int_eq(l3[0], -1);
  csal3d_volume_free(c);
  csal3d_volume_free(v);
}
END_TEST

START_TEST(back_to_the_source_grid) {
  csal3d_volume *v = load_ok(FIX "oblique_float32.nii.gz", CSAL3D_CHANNEL_NONE), *c, *b;
  /* Crop then back: the cropped part is exact, the rest is 0. */
  const int64_t lo[3] = {1, 0, 1}, size[3] = {2, 3, 3};
  ck_assert_int_eq(csal3d_volume_crop(v, lo, size, 0.0f, &c), CSAL3D_OK);
  ck_assert_int_eq(csal3d_volume_to_source_grid(c, 0, &b), CSAL3D_OK);
  const float *x, *y;
  csal3d_volume_data(v, &x);
  csal3d_volume_data(b, &y);
  for (int d = 0; d < 4; d++)
    for (int h = 0; h < 3; h++)
      for (int w = 0; w < 5; w++) {
        int in = d >= 1 && d < 3 && w >= 1 && w < 4;
        ck_assert_float_eq_tol(y[(d * 3 + h) * 5 + w], in ? x[(d * 3 + h) * 5 + w] : 0.0f, 1e-5);
      }
  csal3d_volume_free(b);
  csal3d_volume_free(c);
  /* Resampled to half the spacing and back: a linear image comes back exactly (trilinear
   * is exact on linear functions) up to rounding. */
  const double sp[3] = {0.4, 1.0, 0.75};
  ck_assert_int_eq(csal3d_volume_resample(v, sp, &c), CSAL3D_OK);
  ck_assert_int_eq(csal3d_volume_to_source_grid(c, 0, &b), CSAL3D_OK);
  csal3d_volume_data(b, &y);
  for (int i = 0; i < 60; i++) ck_assert_float_eq_tol(y[i], x[i], 1e-3);
  /* Saved from the resampled grid: in RAS order with the resampled affine. */
  csal3d_volume_free(b);
  csal3d_volume_free(c);
  csal3d_volume_free(v);
}
END_TEST

static void fuzz_properties(const char *path);

/* The fuzzer's orientation_tie_roundtrip.nii: a rotation of 180 degrees about (1, 1, 1)
 * has direction cosines 1/3, 2/3, 2/3 in every column, so world axes tie. nibabel's
 * io_orientation takes the first of equal ones: voxel i -> world y, voxel j -> world x,
 * voxel k -> world -z. The choice must not move with the last bits a save changes. */
START_TEST(orientation_ties_go_to_the_first_axis) {
  const double R[3][3] = {{-1.0 / 3, 2.0 / 3, 2.0 / 3},
                          {2.0 / 3, -1.0 / 3, 2.0 / 3},
                          {2.0 / 3, 2.0 / 3, -1.0 / 3}};
  const double sp[3] = {0.8, 1.2, 3.0};
  const int64_t dim[3] = {5, 6, 7};
  uint64_t state = 12345;
  for (int trial = 0; trial < 200; trial++) {
    double a[4][4] = {{0}};
    for (int i = 0; i < 3; i++) {
      for (int j = 0; j < 3; j++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        double noise = trial ? ((double)(state >> 11) / 9007199254740992.0 - 0.5) * 2e-7 : 0;
        a[i][j] = (R[i][j] + noise) * sp[j];
      }
      a[i][3] = 10.0 * i;
    }
    a[3][3] = 1;
    c3_axes_map map;
    double ras[4][4];
    int64_t rdim[3];
    ck_assert_int_eq(c3_affine_ras_orientation(a, dim, &map, ras, rdim), CSAL3D_OK);
    /* RAS axis x reads voxel axis j (storage axis 1), y reads i (2), z reads k (0) flipped. */
    ck_assert_msg(map.perm[0] == 1 && map.perm[1] == 2 && map.perm[2] == 0 && !map.flip[0] &&
                      !map.flip[1] && map.flip[2],
                  "trial %d: perm %d %d %d flip %d %d %d", trial, map.perm[0], map.perm[1],
                  map.perm[2], map.flip[0], map.flip[1], map.flip[2]);
    ck_assert(rdim[0] == 6 && rdim[1] == 5 && rdim[2] == 7);
  }
  /* Clearly apart (by more than the tolerance), the largest still wins, as in nibabel. */
  double b[4][4] = {{0.6, -0.8, 0, 0}, {0.8, 0.6, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
  c3_axes_map map;
  double ras[4][4];
  int64_t rdim[3];
  ck_assert_int_eq(c3_affine_ras_orientation(b, dim, &map, ras, rdim), CSAL3D_OK);
  ck_assert(map.perm[1] == 2 && !map.flip[1] && map.perm[0] == 1 && map.flip[0]);
  /* The fuzzer's file itself, saved and read back: the same voxels in the same order. */
  make_tmpdir();
  fuzz_properties("tests/data/nifti_fuzz/orientation_tie_roundtrip.nii");
  remove_tree(tmpdir);
}
END_TEST

/* A file of ones, 164 x 166 x 26 at sx x sx x 5 mm in LPS+ (as CT scans are stored), as
 * the MSD spleen CT that showed a zero slab in its uncertainty maps. */
static void save_spleen_like(const char *path, double sx) {
  int64_t dims[3] = {164, 166, 26};
  size_t n = 164 * 166 * 26;
  float *x = malloc(n * sizeof *x);
  ck_assert_ptr_nonnull(x);
  for (size_t i = 0; i < n; i++) x[i] = 1.0f;
  double aff[16] = {-sx, 0, 0, 60, 0, -sx, 0, 70, 0, 0, 5, -30, 0, 0, 0, 1};
  csal3d_volume *raw;
  ck_assert_int_eq(csal3d_volume_create(1, dims, x, aff, &raw), CSAL3D_OK);
  ck_assert_int_eq(csal3d_volume_save(raw, path, NULL), CSAL3D_OK);
  csal3d_volume_free(raw);
  free(x);
}

/* How many voxels of v's source grid a map of ones on v's grid leaves 0 once brought back. */
static int64_t zeros_back_on_source(const csal3d_volume *v) {
  csal3d_volume *ones, *back;
  int64_t sh[4];
  csal3d_volume_shape(v, sh);
  ck_assert_int_eq(csal3d_volume_create_like(v, 1, NULL, &ones), CSAL3D_OK);
  const float *d;
  csal3d_volume_data(ones, &d);
  for (int64_t i = 0; i < sh[1] * sh[2] * sh[3]; i++) ((float *)d)[i] = 1.0f;
  ck_assert_msg(csal3d_volume_to_source_grid(ones, 0, &back) == CSAL3D_OK, "%s",
                csal3d_last_error());
  csal3d_volume_shape(back, sh);
  csal3d_volume_data(back, &d);
  int64_t zeros = 0;
  for (int64_t i = 0; i < sh[1] * sh[2] * sh[3]; i++) zeros += d[i] == 0.0f;
  csal3d_volume_free(back);
  csal3d_volume_free(ones);
  return zeros;
}

/* Issue 12: scoring the spleen CT (0.79 x 0.79 x 5 mm, 164 x 166 x 26) at 3 mm left the
 * last x plane of every map 0 (4,316 voxels): round(164 x 0.793 / 3) = 43 voxels end
 * 3.25 mm before the last input centre, more than the one new voxel within which the
 * way back takes the edge's value. The grid now reaches every input voxel. */
START_TEST(resampled_maps_cover_every_input_voxel) {
  make_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/spleen.nii", tmpdir);
  save_spleen_like(path, 0.79296875);
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.spacing[0] = o.spacing[1] = o.spacing[2] = 3.0;
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_load(path, &o, &v), CSAL3D_OK);
  int64_t sh[4];
  csal3d_volume_shape(v, sh);
  ck_assert_int_eq(sh[1], 44); /* round(43.35) = 43, one more to reach the last plane */
  ck_assert_int_eq(sh[2], 44);
  ck_assert_int_eq(sh[3], 43);
  ck_assert_int_eq(zeros_back_on_source(v), 0);
  csal3d_volume_free(v);
  /* Other sizes and spacings along one axis: every input voxel gets a value, and the
   * size is round(n * old / new) wherever that already reaches the last input voxel. */
  int checked = 0, grown = 0;
  for (int n = 2; n <= 40; n += 4)
    for (double old = 0.55; old <= 2.0; old += 0.45) {
      int64_t dims[3] = {n, 2, 2};
      double aff[16] = {old, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
      float *x = calloc((size_t)n * 4, sizeof *x);
      csal3d_volume *raw, *line, *w;
      ck_assert_int_eq(csal3d_volume_create(1, dims, x, aff, &raw), CSAL3D_OK);
      free(x);
      snprintf(path, sizeof path, "%s/line.nii", tmpdir);
      ck_assert_int_eq(csal3d_volume_save(raw, path, NULL), CSAL3D_OK);
      csal3d_volume_free(raw);
      line = load_ok(path, CSAL3D_CHANNEL_NONE);
      for (double nw = 0.7; nw <= 6.0; nw += 0.9) {
        const double sp[3] = {nw, 0, 0};
        ck_assert_int_eq(csal3d_volume_resample(line, sp, &w), CSAL3D_OK);
        csal3d_volume_shape(w, sh);
        double r = floor(n * old / nw + 0.5);
        r = r < 1 ? 1 : r;
        grown += sh[1] != (int64_t)r;
        ck_assert_int_ge(sh[1], (int64_t)r);
        ck_assert_int_le(sh[1], (int64_t)r + 1);
        ck_assert_msg(zeros_back_on_source(w) == 0, "n %d, %g mm -> %g mm: %lld voxels", n,
                      old, nw, (long long)sh[1]);
        csal3d_volume_free(w);
        checked++;
      }
      csal3d_volume_free(line);
    }
  ck_assert_int_ge(checked, 240);
  ck_assert_int_gt(grown, 0);
  remove_tree(tmpdir);
}
END_TEST

/* Issue 12: score --spacing 0.001,12,12 resampled to an enormous grid and ran for hours.
 * The new grid is bounded along each axis, and checked against the load options' budget
 * before anything is allocated. */
START_TEST(resampling_beyond_the_budget_fails_first) {
  make_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/spleen.nii", tmpdir);
  save_spleen_like(path, 0.79);
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.spacing[0] = 0.001, o.spacing[1] = 12, o.spacing[2] = 12; /* 129,560 x 11 x 11 */
  csal3d_volume *v = (csal3d_volume *)1;
  ck_assert_int_eq(csal3d_volume_load(path, &o, &v), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_null(v);
  const char *m = csal3d_last_error();
  ck_assert_msg(strstr(m, "spacing 0.001 mm along axis 0 would give 129560 voxels (at most "
                       "32767)") && strstr(m, "the option spacing") && strstr(m, "spleen.nii"),
                "%s", m);
  /* 25,912 x 11 x 11 is allowed along each axis, but needs 15 MiB with the image (4 bytes
   * a voxel of each), beyond a budget of 12 MiB (the file alone needs 8.5). */
  o.spacing[0] = 0.005;
  o.max_memory = 12 << 20;
  ck_assert_int_eq(csal3d_volume_load(path, &o, &v), CSAL3D_ERR_UNSUPPORTED);
  ck_assert_ptr_null(v);
  m = csal3d_last_error();
  ck_assert_msg(strstr(m, "resampling to spacing 0.005,12,12 mm would give 25912 x 11 x 11 "
                       "voxels and need 14.7 MiB") && strstr(m, "the limit of 12.0 MiB") &&
                    strstr(m, "the option spacing") && strstr(m, "the option max_memory"),
                "%s", m);
  /* The same budget for a label resampled on its own. */
  ck_assert_int_eq(csal3d_volume_load_label(path, NULL, &o, &v), CSAL3D_ERR_UNSUPPORTED);
  /* Within the budget it loads. */
  o.spacing[0] = 0.01;
  ck_assert_int_eq(csal3d_volume_load(path, &o, &v), CSAL3D_OK);
  csal3d_volume_free(v);
  /* max_voxels bounds the new grid too. */
  o.spacing[0] = 0.005;
  o.max_voxels = 1 << 20;
  o.max_memory = (int64_t)1 << 32;
  ck_assert_int_eq(csal3d_volume_load(path, &o, &v), CSAL3D_ERR_UNSUPPORTED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "more than the limit of 1048576"));
  /* csal3d_volume_resample by itself refuses more than 2^30 voxels (1.8e12 here) instead of
   * trying to allocate them. */
  csal3d_volume_load_options_init(&o);
  ck_assert_int_eq(csal3d_volume_load(path, &o, &v), CSAL3D_OK);
  const double tiny[3] = {0.005, 0.005, 0.05};
  csal3d_volume *r = (csal3d_volume *)1;
  ck_assert_int_eq(csal3d_volume_resample(v, tiny, &r), CSAL3D_ERR_UNSUPPORTED);
  ck_assert_ptr_null(r);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "more than the limit of 1073741824"));
  csal3d_volume_free(v);
  remove_tree(tmpdir);
}
END_TEST


/* The fuzz target's properties on the checked-in corpora (with the hostile files) and the
 * regression inputs the fuzzer found (tests/data/nifti_fuzz): a clean failure, or a save/load round trip that
 * gives the same voxels bit for bit. */
static void fuzz_properties(const char *path) {
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.max_voxels = 1 << 22;
  for (int pass = 0; pass < 2; pass++) {
    o.channel = pass ? CSAL3D_CHANNEL_ALL : CSAL3D_CHANNEL_NONE;
    csal3d_volume *v = (csal3d_volume *)1;
    if (csal3d_volume_load(path, &o, &v) != CSAL3D_OK) {
      ck_assert_ptr_null(v);
      ck_assert(csal3d_last_error()[0] != '\0');
      continue;
    }
    char out[512];
    snprintf(out, sizeof out, "%s/rt.nii", tmpdir);
    csal3d_volume_save_options so;
    csal3d_volume_save_options_init(&so);
    so.dtype = CSAL3D_SAVE_FLOAT32;
    ck_assert_msg(csal3d_volume_save(v, out, &so) == CSAL3D_OK, "%s", csal3d_last_error());
    csal3d_volume_load_options o2;
    csal3d_volume_load_options_init(&o2);
    o2.channel = CSAL3D_CHANNEL_ALL;
    csal3d_volume *w;
    ck_assert_msg(csal3d_volume_load(out, &o2, &w) == CSAL3D_OK, "%s", csal3d_last_error());
    int64_t a[4], b[4];
    csal3d_volume_shape(v, a);
    csal3d_volume_shape(w, b);
    ck_assert_int_eq(memcmp(a, b, sizeof a), 0);
    const float *x, *y;
    csal3d_volume_data(v, &x);
    csal3d_volume_data(w, &y);
    ck_assert_msg(!memcmp(x, y, sizeof(float) * (size_t)(a[0] * a[1] * a[2] * a[3])),
                  "%s: the saved copy reads back differently", path);
    csal3d_volume_free(w);
    csal3d_volume_free(v);
  }
}

START_TEST(fuzz_corpus_properties) {
  make_tmpdir();
  const char *dirs[] = {"tests/data/nifti", "tests/data/nifti_bad", "tests/data/nifti_fuzz",
                        HOSTILE "nifti"};
  int n = 0;
  for (int d = 0; d < 4; d++) {
    DIR *dp = opendir(dirs[d]);
    ck_assert_ptr_nonnull(dp);
    struct dirent *e;
    while ((e = readdir(dp))) {
      if (e->d_name[0] == '.' || !strstr(e->d_name, ".nii")) continue;
      char path[512];
      snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
      fuzz_properties(path);
      n++;
    }
    closedir(dp);
  }
  ck_assert_int_ge(n, 65);
  remove_tree(tmpdir);
}
END_TEST


/* ---- hostile files (tests/data/hostile, issue 13) ---- */

/* Each file of the corpus gives its status and a message naming the file and the field;
 * the files that load give the expected spacing and voxels. */
START_TEST(hostile_corpus_gives_specific_errors) {
  json_t *root, *a = hostile_entries("nifti", &root), *e;
  size_t i;
  json_array_foreach(a, i, e) {
    char buf[512];
    const char *path = hostile_path(e, buf, sizeof buf);
    csal3d_volume_load_options o;
    csal3d_volume_load_options_init(&o);
    json_t *opt = json_object_get(e, "options"), *as = json_object_get(opt, "assume_spacing");
    for (int k = 0; as && k < 3; k++) o.assume_spacing[k] = json_number_value(json_array_get(as, k));
    if (json_object_get(opt, "max_memory"))
      o.max_memory = json_integer_value(json_object_get(opt, "max_memory"));
    csal3d_volume *v = (csal3d_volume *)1;
    csal3d_status s = csal3d_volume_load(path, &o, &v);
    hostile_check(e, path, s);
    if (s != CSAL3D_OK) {
      ck_assert_ptr_null(v);
      continue;
    }
    double sp[3];
    csal3d_volume_spacing(v, sp);
    for (int x = 0; x < 3; x++) /* sorted */
      for (int y = x + 1; y < 3; y++)
        if (sp[y] < sp[x]) {
          double t = sp[x];
          sp[x] = sp[y], sp[y] = t;
        }
    json_t *want = json_object_get(e, "spacing");
    for (int k = 0; k < 3; k++)
      ck_assert_msg(fabs(sp[k] - json_number_value(json_array_get(want, k))) < 1e-6,
                    "%s: spacing %g, want %g", path, sp[k],
                    json_number_value(json_array_get(want, k)));
    int64_t sh[4];
    csal3d_volume_shape(v, sh);
    const float *x;
    csal3d_volume_data(v, &x);
    double sum = 0;
    for (int64_t k = 0; k < sh[0] * sh[1] * sh[2] * sh[3]; k++) sum += x[k];
    ck_assert_msg(sum == json_number_value(json_object_get(e, "sum")), "%s: sum %g", path, sum);
    csal3d_volume_free(v);
  }
  ck_assert_uint_ge(json_array_size(a), 40);
  json_decref(root);
  /* assume_spacing: 0 or a spacing > 0. */
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.assume_spacing[1] = -1;
  csal3d_volume *v;
  ck_assert_int_eq(csal3d_volume_load(HOSTILE "nifti/baseline.nii", &o, &v),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "assume_spacing[1] is -1"));
  o.assume_spacing[1] = NAN;
  ck_assert_int_eq(csal3d_volume_load(HOSTILE "nifti/baseline.nii", &o, &v),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  o.assume_spacing[1] = 0;
  o.max_memory = -1;
  ck_assert_int_eq(csal3d_volume_load(HOSTILE "nifti/baseline.nii", &o, &v),
                   CSAL3D_ERR_INVALID_ARGUMENT);
}
END_TEST

/* A file loaded with an assumed spacing is saved with it: the copy loads without options. */
START_TEST(assumed_spacing_is_saved) {
  make_tmpdir();
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.assume_spacing[2] = 1.5;
  const char *src[] = {HOSTILE "nifti/pixdim3_nan_no_xform.nii", HOSTILE "nifti/pixdim3_zero_qform.nii"};
  for (int i = 0; i < 2; i++) {
    csal3d_volume *v, *w;
    ck_assert_msg(csal3d_volume_load(src[i], &o, &v) == CSAL3D_OK, "%s", csal3d_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/assumed%d.nii.gz", tmpdir, i);
    ck_assert_int_eq(csal3d_volume_save(v, path, NULL), CSAL3D_OK);
    w = load_ok(path, CSAL3D_CHANNEL_NONE);
    double a[3], b[3];
    csal3d_volume_spacing(v, a);
    csal3d_volume_spacing(w, b);
    for (int k = 0; k < 3; k++) ck_assert_double_eq_tol(a[k], b[k], 1e-6);
    ck_assert(fabs(a[0] - 1.5) < 1e-6 || fabs(a[1] - 1.5) < 1e-6 || fabs(a[2] - 1.5) < 1e-6);
    csal3d_volume_free(v);
    csal3d_volume_free(w);
  }
  remove_tree(tmpdir);
}
END_TEST

/* A FIFO or a device named like a NIfTI file is refused before it is opened (opening a
 * FIFO blocks until a writer comes: the alarm fails the test if it does). */
START_TEST(fifos_and_devices_are_refused_unopened) {
  alarm(20);
  make_tmpdir();
  char path[512], img[512];
  csal3d_volume *v = (csal3d_volume *)1;
  snprintf(path, sizeof path, "%s/fifo.nii.gz", tmpdir);
  ck_assert_int_eq(mkfifo(path, 0644), 0);
  ck_assert_int_eq(csal3d_volume_load(path, NULL, &v), CSAL3D_ERR_IO);
  ck_assert_ptr_null(v);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "fifo.nii.gz: not a regular file"));
  snprintf(path, sizeof path, "%s/zero.nii", tmpdir);
  ck_assert_int_eq(symlink("/dev/zero", path), 0);
  ck_assert_int_eq(csal3d_volume_load(path, NULL, &v), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "zero.nii: not a regular file"));
  /* A .hdr whose .img is a FIFO (nifticlib would open it to see that it exists). */
  size_t n;
  unsigned char *b = read_all(HOSTILE "nifti/baseline.nii", &n);
  memcpy(b + 344, "ni1\0", 4);
  const float zero = 0;
  memcpy(b + 108, &zero, 4); /* vox_offset 0 in the .img */
  snprintf(path, sizeof path, "%s/pair.hdr", tmpdir);
  write_all(path, b, 348);
  snprintf(img, sizeof img, "%s/pair.img", tmpdir);
  write_all(img, b + 352, n - 352);
  csal3d_volume *ok = load_ok(path, CSAL3D_CHANNEL_NONE); /* the pair itself is fine */
  csal3d_volume_free(ok);
  unlink(img);
  ck_assert_int_eq(mkfifo(img, 0644), 0);
  ck_assert_int_eq(csal3d_volume_load(path, NULL, &v), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "pair.img is not a regular file"));
  free(b);
  remove_tree(tmpdir);
  alarm(0);
}
END_TEST

/* The gzip bomb: a uint8 header claiming dims, then `members` gzip members of
 * 1 MiB of zeros (about 1 KiB each). */
static void write_bomb(const char *path, int16_t nx, int16_t ny, int16_t nz, int members) {
  size_t n;
  unsigned char *h = read_all(HOSTILE "nifti/baseline.nii", &n);
  const int16_t dims[4] = {3, nx, ny, nz}, dt[2] = {2, 8};
  memcpy(h + 40, dims, sizeof dims);
  memcpy(h + 70, dt, sizeof dt);
  gzFile g = gzopen(path, "wb9");
  ck_assert_ptr_nonnull(g);
  ck_assert_int_eq(gzwrite(g, h, 352), 352);
  ck_assert_int_eq(gzclose(g), Z_OK);
  free(h);
  static unsigned char zeros[1 << 20], member[1 << 14];
  z_stream z;
  memset(&z, 0, sizeof z);
  ck_assert_int_eq(deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = zeros, z.avail_in = sizeof zeros;
  z.next_out = member, z.avail_out = sizeof member;
  ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t len = sizeof member - z.avail_out;
  deflateEnd(&z);
  FILE *f = fopen(path, "ab");
  ck_assert_ptr_nonnull(f);
  for (int i = 0; i < members; i++) ck_assert_uint_eq(fwrite(member, 1, len, f), len);
  fclose(f);
}

START_TEST(gzip_bombs_fail_fast) {
  make_tmpdir();
  char path[512];
  snprintf(path, sizeof path, "%s/bomb.nii.gz", tmpdir);
  write_bomb(path, 1024, 1024, 1024, 1024); /* 1 MB on disk, 1 GiB of voxels */
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  ck_assert_int_lt(st.st_size, 2 << 20);
  /* Refused from its header (9 GiB to load, more than the default 4 GiB), before any
   * voxel is inflated: in well under a second, without the memory. */
  const double rss0 = max_rss_mib(), t0 = now();
  csal3d_volume *v = (csal3d_volume *)1;
  ck_assert_int_eq(csal3d_volume_load(path, NULL, &v), CSAL3D_ERR_UNSUPPORTED);
  ck_assert_ptr_null(v);
  ck_assert_msg(strstr(csal3d_last_error(), "loading it would need 9.0 GiB") &&
                    strstr(csal3d_last_error(), "more than the limit of 4.0 GiB") &&
                    strstr(csal3d_last_error(), "the option max_memory"),
                "%s", csal3d_last_error());
  ck_assert_msg(now() - t0 < 1.0, "took %.2f s", now() - t0);
  ck_assert_msg(max_rss_mib() - rss0 < 64, "grew by %.0f MiB", max_rss_mib() - rss0);
  /* A header that promises 8 voxels, then the same gigabyte: reading stops soon after
   * the promise (not at the end of the stream) and the file is refused. */
  snprintf(path, sizeof path, "%s/long.nii.gz", tmpdir);
  write_bomb(path, 2, 2, 2, 1024);
  const double t1 = now();
  ck_assert_int_eq(csal3d_volume_load(path, NULL, &v), CSAL3D_ERR_FORMAT);
  ck_assert_msg(strstr(csal3d_last_error(), "inflates to more than the 360 bytes the header "
                       "promises"), "%s", csal3d_last_error());
  ck_assert_msg(now() - t1 < 0.5, "took %.2f s", now() - t1);
  remove_tree(tmpdir);
}
END_TEST

/* ---- atomic writes: write errors name the target; killed writers are cleaned up ---- */

static csal3d_volume *noise_volume(void) {
  enum { N = 32 };
  static float x[N * N * N];
  uint32_t r = 12345;
  for (int i = 0; i < N * N * N; i++) {
    r = r * 1664525u + 1013904223u;
    x[i] = (float)(r >> 8) / 65536.0f; /* compresses poorly */
  }
  csal3d_volume *v;
  int64_t dims[3] = {N, N, N};
  ck_assert_int_eq(csal3d_volume_create(1, dims, x, NULL, &v), CSAL3D_OK);
  return v;
}

typedef struct save_job {
  const csal3d_volume *v;
  const char *path;
} save_job;

static int save_fails_naming_target(void *arg) {
  const save_job *j = arg;
  return failed_naming(csal3d_volume_save(j->v, j->path, NULL), j->path);
}

static void save_killed(void *arg) {
  const save_job *j = arg;
  (void)csal3d_volume_save(j->v, j->path, NULL);
}

START_TEST(save_write_errors_name_the_target) {
  make_tmpdir();
  csal3d_volume *v = noise_volume(), *small = load_ok(FIX "lps_uint8.nii", CSAL3D_CHANNEL_NONE);
  const char *names[] = {"full.nii", "full.nii.gz"};
  for (int i = 0; i < 2; i++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
    ck_assert_int_eq(csal3d_volume_save(small, path, NULL), CSAL3D_OK);
    size_t n0, n1;
    unsigned char *before = read_all(path, &n0);
    save_job j = {v, path};
    ck_assert_int_eq(with_write_limit(save_fails_naming_target, &j, 16384), 0);
    unsigned char *after = read_all(path, &n1);
    ck_assert(n0 == n1 && !memcmp(before, after, n0)); /* the old file, untouched */
    free(before), free(after);
  }
  ck_assert_int_eq(count_files(tmpdir, ".tmp."), 0);
  csal3d_volume_free(v);
  csal3d_volume_free(small);
  remove_tree(tmpdir);
}
END_TEST

/* A save killed inside its write leaves its temporary file; the next save of the same
 * file removes it, and nothing else. */
START_TEST(killed_save_leaves_nothing_after_the_next) {
  make_tmpdir();
  csal3d_volume *v = noise_volume();
  char path[512], names[8][256], keep[6][256];
  snprintf(path, sizeof path, "%s/map.nii.gz", tmpdir);
  save_job j = {v, path};
  /* Killed three times: each save removes what the one killed before it left. */
  char stale[64];
  for (int k = 0; k < 3; k++) {
    pid_t p = killed_inside_write(save_killed, &j, 16384);
    ck_assert_int_eq(names_with(tmpdir, ".map.nii.gz.tmp.", names, 8), 1);
    snprintf(stale, sizeof stale, ".map.nii.gz.tmp.%d.", (int)p);
    ck_assert_msg(strstr(names[0], stale) == names[0], "%s is not %s*", names[0], stale);
  }
  ck_assert(!exists_in(tmpdir, "map.nii.gz"));
  make_decoys(tmpdir, "map.nii.gz", "tmp", 0, dead_pid(), keep);
  ck_assert_int_eq(csal3d_volume_save(v, path, NULL), CSAL3D_OK);
  ck_assert(exists_in(tmpdir, "map.nii.gz"));
  int left = names_with(tmpdir, ".map.nii.gz.tmp.", names, 8);
  for (int k = 0; k < left && k < 8; k++) ck_assert_ptr_null(strstr(names[k], stale));
  for (int k = 0; k < 6; k++) ck_assert_msg(exists_in(tmpdir, keep[k]), "%s removed", keep[k]);
  csal3d_volume_free(v);
  remove_tree(tmpdir);
}
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("nifti");
  TCase *t = tcase_create("load");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, fixtures_match_nibabel);
  tcase_add_test(t, oblique_orientation_by_hand);
  tcase_add_test(t, four_d_needs_a_channel);
  tcase_add_test(t, labels_on_their_image_grid);
  tcase_add_test(t, bad_corpus_gives_specific_errors);
  tcase_add_test(t, files_broken_here_fail_cleanly);
  tcase_add_test(t, out_of_memory_during_load_is_clean);
  tcase_add_test(t, fuzz_corpus_properties);
  tcase_add_test(t, hostile_corpus_gives_specific_errors);
  tcase_add_test(t, fifos_and_devices_are_refused_unopened);
  tcase_add_test(t, gzip_bombs_fail_fast);
  suite_add_tcase(s, t);
  TCase *w = tcase_create("save");
  tcase_add_test(w, save_round_trips_on_the_input_grid);
  tcase_add_test(w, save_is_atomic_and_checks_values);
  tcase_add_test(w, multichannel_save_and_create_like);
  tcase_add_test(w, assumed_spacing_is_saved);
  tcase_add_test(w, save_write_errors_name_the_target);
  tcase_add_test(w, killed_save_leaves_nothing_after_the_next);
  suite_add_tcase(s, w);
  TCase *p = tcase_create("preprocess");
  tcase_set_timeout(p, 30);
  tcase_add_test(p, percentiles_match_numpy);
  tcase_add_test(p, normalisation_known_answers);
  tcase_add_test(p, resample_known_answers);
  tcase_add_test(p, crop_pad_bbox_random_crop);
  tcase_add_test(p, back_to_the_source_grid);
  tcase_add_test(p, resampled_maps_cover_every_input_voxel);
  tcase_add_test(p, orientation_ties_go_to_the_first_axis);
  tcase_add_test(p, resampling_beyond_the_budget_fails_first);
  suite_add_tcase(s, p);
  return s;
}

int main(void) {
  SRunner *r = srunner_create(suite());
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
