/* csal3d_volume_source: what the file a volume came from says about itself (datatype,
 * the file's dimensions and voxel sizes, qform/sform codes, axis codes as nibabel's
 * aff2axcodes), on NIfTI-1 files written byte by byte here; kept through resampling. */
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csal3d/csal3d.h"

static char dir[256];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/csal3d_vsrc_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* A NIfTI-1 file nx x ny x nz (x nt when nt > 1) of int16 (datatype 4) or float32 (16)
 * zeros with the given codes and sform rows (the qform is left at identity quaternions,
 * pixdim from the sform's column lengths is not needed by the reader). */
static void write_nifti(const char *path, int nx, int ny, int nz, int nt, int datatype,
                        int qcode, int scode, const float srow[3][4]) {
  unsigned char h[352];
  memset(h, 0, sizeof h);
  int32_t v32 = 348;
  memcpy(h, &v32, 4);
  int16_t dim[8] = {(int16_t)(nt > 1 ? 4 : 3), (int16_t)nx, (int16_t)ny, (int16_t)nz,
                    (int16_t)nt, 1, 1, 1};
  memcpy(h + 40, dim, sizeof dim);
  int16_t dt = (int16_t)datatype, bitpix = (int16_t)(datatype == 4 ? 16 : 32);
  memcpy(h + 70, &dt, 2);
  memcpy(h + 72, &bitpix, 2);
  float pixdim[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  memcpy(h + 76, pixdim, sizeof pixdim);
  float off = 352;
  memcpy(h + 108, &off, 4);
  int16_t q = (int16_t)qcode, s = (int16_t)scode;
  memcpy(h + 252, &q, 2);
  memcpy(h + 254, &s, 2);
  for (int r = 0; r < 3; r++) memcpy(h + 280 + 16 * r, srow[r], 16);
  memcpy(h + 344, "n+1\0", 4);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fwrite(h, 1, sizeof h, f), sizeof h);
  size_t bytes = (size_t)nx * ny * nz * nt * (datatype == 4 ? 2 : 4);
  char *zero = calloc(1, bytes);
  ck_assert_int_eq(fwrite(zero, 1, bytes, f), bytes);
  free(zero);
  fclose(f);
}

static csal3d_volume *load(const char *path, int channel) {
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  o.channel = channel;
  csal3d_volume *v;
  ck_assert_msg(csal3d_volume_load(path, &o, &v) == CSAL3D_OK, "%s", csal3d_last_error());
  return v;
}

START_TEST(source_of_a_3d_lps_file) {
  char path[512];
  snprintf(path, sizeof path, "%s/lps.nii", dir);
  const float srow[3][4] = {{-2, 0, 0, 10}, {0, -3, 0, 20}, {0, 0, 4, -5}};
  write_nifti(path, 4, 5, 6, 1, 4, 0, 1, srow);
  csal3d_volume *v = load(path, CSAL3D_CHANNEL_NONE);
  csal3d_volume_source_info info = {.struct_size = sizeof info};
  ck_assert_int_eq(csal3d_volume_source(v, &info), CSAL3D_OK);
  ck_assert_int_eq(info.from_file, 1);
  ck_assert_int_eq(info.nifti_version, 1);
  ck_assert_int_eq(info.datatype, 4);
  ck_assert_str_eq(info.datatype_name, "int16");
  ck_assert_int_eq(info.dims[0], 4);
  ck_assert_int_eq(info.dims[1], 5);
  ck_assert_int_eq(info.dims[2], 6);
  ck_assert_int_eq(info.dims[3], 1);
  ck_assert_double_eq_tol(info.pixdim[0], 2, 1e-9);
  ck_assert_double_eq_tol(info.pixdim[1], 3, 1e-9);
  ck_assert_double_eq_tol(info.pixdim[2], 4, 1e-9);
  ck_assert_int_eq(info.qform_code, 0);
  ck_assert_int_eq(info.sform_code, 1);
  ck_assert_str_eq(info.axis_codes, "LPS");
  ck_assert_str_eq(info.orientation_from, "sform");
  /* Resampling keeps the source grid, hence its description. */
  double sp[3] = {1, 1, 1};
  csal3d_volume *r;
  ck_assert_int_eq(csal3d_volume_resample(v, sp, &r), CSAL3D_OK);
  csal3d_volume_source_info ri = {.struct_size = sizeof ri};
  ck_assert_int_eq(csal3d_volume_source(r, &ri), CSAL3D_OK);
  ck_assert_str_eq(ri.axis_codes, "LPS");
  ck_assert_str_eq(ri.datatype_name, "int16");
  csal3d_volume_free(r);
  /* An older, shorter struct receives its members only. */
  csal3d_volume_source_info old;
  memset(&old, 0x55, sizeof old);
  old.struct_size = offsetof(csal3d_volume_source_info, datatype);
  ck_assert_int_eq(csal3d_volume_source(v, &old), CSAL3D_OK);
  ck_assert_int_eq(old.nifti_version, 1);
  ck_assert_int_eq(old.datatype, 0x55555555);
  csal3d_volume_free(v);
}
END_TEST

START_TEST(source_of_a_4d_oblique_axes_file) {
  char path[512];
  snprintf(path, sizeof path, "%s/air.nii", dir);
  /* i points along +y (A), j along -z (I), k along +x (R). */
  const float srow[3][4] = {{0, 0, 2, 0}, {3, 0, 0, 0}, {0, -4, 0, 0}};
  write_nifti(path, 4, 5, 6, 3, 16, 2, 2, srow);
  csal3d_volume *v = load(path, 1);
  csal3d_volume_source_info info = {.struct_size = sizeof info};
  ck_assert_int_eq(csal3d_volume_source(v, &info), CSAL3D_OK);
  ck_assert_str_eq(info.datatype_name, "float32");
  ck_assert_int_eq(info.datatype, 16);
  ck_assert_int_eq(info.dims[3], 3);
  ck_assert_str_eq(info.axis_codes, "AIR");
  ck_assert_double_eq_tol(info.pixdim[0], 3, 1e-9);
  ck_assert_double_eq_tol(info.pixdim[1], 4, 1e-9);
  ck_assert_double_eq_tol(info.pixdim[2], 2, 1e-9);
  int64_t shape[4];
  csal3d_volume_shape(v, shape);
  ck_assert_int_eq(shape[0], 1); /* one of the file's three volumes */
  ck_assert_int_eq(shape[1], 6);  /* RAS+: x is the file's k */
  csal3d_volume_free(v);
}
END_TEST

START_TEST(source_without_orientation_or_file) {
  char path[512];
  snprintf(path, sizeof path, "%s/none.nii", dir);
  const float srow[3][4] = {{0}};
  write_nifti(path, 4, 5, 6, 1, 16, 0, 0, srow);
  csal3d_volume *v = load(path, CSAL3D_CHANNEL_NONE);
  csal3d_volume_source_info info = {.struct_size = sizeof info};
  ck_assert_int_eq(csal3d_volume_source(v, &info), CSAL3D_OK);
  ck_assert_str_eq(info.orientation_from, "none");
  ck_assert_str_eq(info.axis_codes, "RAS"); /* NIfTI method 1: the pixdim diagonal */
  csal3d_volume_free(v);
  const int64_t dims[3] = {2, 2, 2};
  ck_assert_int_eq(csal3d_volume_create(1, dims, NULL, NULL, &v), CSAL3D_OK);
  ck_assert_int_eq(csal3d_volume_source(v, &info), CSAL3D_OK);
  ck_assert_int_eq(info.from_file, 0);
  ck_assert_str_eq(info.axis_codes, "");
  ck_assert_int_eq(csal3d_volume_source(NULL, &info), CSAL3D_ERR_INVALID_ARGUMENT);
  csal3d_volume_free(v);
}
END_TEST

int main(void) {
  Suite *s = suite_create("volume_source");
  TCase *t = tcase_create("source");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, source_of_a_3d_lps_file);
  tcase_add_test(t, source_of_a_4d_oblique_axes_file);
  tcase_add_test(t, source_without_orientation_or_file);
  suite_add_tcase(s, t);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
