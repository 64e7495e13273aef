/* Volumes from and to NIfTI files: the load and save options, reorientation to RAS+
 * and back to the file's storage grid, resampling and normalisation on load. The file
 * format itself is lib/io/nifti.c. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "io/nifti.h"
#include "volume/volume_internal.h"

static int c3_ends_with_nocase(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcasecmp(s + n - m, suffix);
}

CSAL3D_API csal3d_status
csal3d_volume_load_options_init(csal3d_volume_load_options *options) {
  C3_CHECK_ARG(options, "volume_load_options_init: options is NULL");
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->channel = CSAL3D_CHANNEL_NONE;
  options->modality = CSAL3D_MODALITY_AUTO;
  options->max_voxels = C3_DEFAULT_MAX_VOXELS;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status
csal3d_volume_save_options_init(csal3d_volume_save_options *options) {
  C3_CHECK_ARG(options, "volume_save_options_init: options is NULL");
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->dtype = CSAL3D_SAVE_AUTO;
  options->compression_level = 1;
  options->source_orientation = 1;
  return CSAL3D_OK;
}

/* The load options' limits with their defaults: max_voxels, and max_memory (4 bytes a
 * voxel of max_voxels unless set). */
static csal3d_status c3_load_budget(const csal3d_volume_load_options *o, int64_t *max_voxels,
                                    int64_t *max_memory) {
  C3_CHECK_ARG(o->max_memory >= 0, "volume_load: max_memory is %lld (0 for the default, or "
               "bytes > 0)", (long long)o->max_memory);
  *max_voxels = o->max_voxels > 0 ? o->max_voxels : C3_DEFAULT_MAX_VOXELS;
  *max_memory = o->max_memory > 0               ? o->max_memory
                : *max_voxels > INT64_MAX / 4 ? INT64_MAX
                                              : 4 * *max_voxels;
  return CSAL3D_OK;
}

/* Resampling on load: within the load options' budget. */
static csal3d_status c3_load_resample(const csal3d_volume *v, const csal3d_volume_load_options *o,
                                      csal3d_volume **out) {
  int64_t max_voxels = 0, max_memory = 0;
  C3_TRY(c3_load_budget(o, &max_voxels, &max_memory));
  return c3_volume_resample_within(v, o->spacing, max_voxels, max_memory, out);
}

/* A NIfTI file as a RAS+ volume: the storage array of lib/io/nifti.c reoriented
 * without interpolation, the source grid kept for writing back. */
csal3d_status c3_volume_load_file(const char *path, const csal3d_volume_load_options *options,
                                  int as_label, csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_load: out is NULL");
  *out = NULL;
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_volume_load_options"));
  int64_t max_voxels = 0, max_memory = 0;
  C3_TRY(c3_load_budget(&o, &max_voxels, &max_memory));
  c3_nifti_read_options ro = {.max_voxels = max_voxels,
                              .channel = o.channel,
                              .as_label = as_label,
                              .allow_nonfinite = o.allow_nonfinite,
                              .max_memory = max_memory,
                              .float_copies = 1 /* the RAS+ copy made below */};
  memcpy(ro.assume_spacing, o.assume_spacing, sizeof ro.assume_spacing);
  c3_nifti_image im;
  C3_TRY(c3_nifti_read(path, &ro, &im));
  c3_axes_map map;
  int64_t rdim[3];
  double ras[4][4];
  csal3d_volume *v = NULL;
  csal3d_status s = c3_affine_ras_orientation(im.affine, im.dim, &map, ras, rdim);
  if (s != CSAL3D_OK) c3_error_prefix(s, "%s (%s)", path, im.sform_code > 0 ? "sform" : "qform");
  if (s == CSAL3D_OK) s = c3_volume_new(im.channels, rdim, &v);
  if (s != CSAL3D_OK) {
    c3_nifti_image_clear(&im);
    return s;
  }
  const int64_t storage_shape[3] = {im.dim[2], im.dim[1], im.dim[0]};
  c3_axes_apply_f32(map, im.data, im.channels, storage_shape, v->data);
  memcpy(v->affine, ras, sizeof ras);
  v->is_label = as_label;
  c3_source_grid *g = &v->source;
  g->present = 1;
  memcpy(g->dim, im.dim, sizeof im.dim);
  memcpy(g->affine, im.affine, sizeof im.affine);
  memcpy(g->qform, im.qform, sizeof im.qform);
  memcpy(g->sform, im.sform, sizeof im.sform);
  g->qform_code = im.qform_code;
  g->sform_code = im.sform_code;
  g->version = im.version;
  g->datatype = im.datatype;
  g->datatype_name = im.datatype_name;
  g->file_volumes = im.file_volumes;
  g->to_ras = map;
  memcpy(g->ras_dim, rdim, sizeof rdim);
  memcpy(g->ras_affine, ras, sizeof ras);
  c3_nifti_image_clear(&im);
  *out = v;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_load(const char *path,
                                            const csal3d_volume_load_options *options,
                                            csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_load: out is NULL");
  *out = NULL;
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_volume_load_options"));
  C3_CHECK_ARG(o.modality >= CSAL3D_MODALITY_NONE && o.modality <= CSAL3D_MODALITY_AUTO,
               "volume_load: unknown modality %d", (int)o.modality);
  if (o.modality == CSAL3D_MODALITY_AUTO) o.modality = CSAL3D_MODALITY_NONE; /* one file */
  csal3d_volume *v;
  C3_TRY(c3_volume_load_file(path, &o, 0, &v));
  csal3d_status s = CSAL3D_OK;
  if (o.spacing[0] > 0 || o.spacing[1] > 0 || o.spacing[2] > 0 || o.spacing[0] < 0 ||
      o.spacing[1] < 0 || o.spacing[2] < 0) {
    csal3d_volume *r;
    s = c3_load_resample(v, &o, &r);
    if (s == CSAL3D_OK) {
      csal3d_volume_free(v);
      v = r;
    }
  }
  if (s == CSAL3D_OK) s = csal3d_volume_normalize(v, o.modality);
  if (s != CSAL3D_OK) {
    csal3d_volume_free(v);
    return c3_error_prefix(s, "%s", path);
  }
  *out = v;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_load_label(const char *path,
                                                  const csal3d_volume *image,
                                                  const csal3d_volume_load_options *options,
                                                  csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_load_label: out is NULL");
  *out = NULL;
  csal3d_volume_load_options o;
  csal3d_volume_load_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_volume_load_options"));
  csal3d_volume *v;
  C3_TRY(c3_volume_load_file(path, &o, 1, &v));
  csal3d_volume *r = NULL;
  csal3d_status s = CSAL3D_OK;
  if (image) {
    char why[256];
    const c3_source_grid *ig = &image->source;
    /* Compare the files' grids when the image came from a file, else the grids as they are. */
    const int64_t *idim = ig->present ? ig->dim : image->dim;
    const double(*iaff)[4] = ig->present ? ig->affine : image->affine;
    const int64_t *ldim = ig->present ? v->source.dim : v->dim;
    const double(*laff)[4] = ig->present ? v->source.affine : v->affine;
    double sp[3];
    c3_affine_spacing(iaff, sp);
    double tol = 0.01 * fmin(sp[0], fmin(sp[1], sp[2]));
    if (!c3_grid_equal(idim, iaff, ldim, laff, tol, why, sizeof why)) {
      csal3d_volume_free(v);
      return c3_error(CSAL3D_ERR_FORMAT, "%s: the label is not on its image's grid: %s", path,
                      why);
    }
    /* Same grid and orientation as the image now has: the label is already in place. */
    if (ig->present ? c3_volume_on_source(image) && c3_axes_equal(v->source.to_ras, ig->to_ras)
                    : 1) {
      *out = v;
      return CSAL3D_OK;
    }
    s = c3_volume_resample_grid(v, image->dim, image->affine, 1, 0, &r);
    if (s == CSAL3D_OK) r->is_label = 1;
  } else if (o.spacing[0] > 0 || o.spacing[1] > 0 || o.spacing[2] > 0) {
    s = c3_load_resample(v, &o, &r);
  } else {
    *out = v;
    return CSAL3D_OK;
  }
  csal3d_volume_free(v);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "%s", path);
  *out = r;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_save(const csal3d_volume *v, const char *path,
                                            const csal3d_volume_save_options *options) {
  C3_CHECK_ARG(v, "volume_save: volume is NULL");
  C3_CHECK_ARG(path && *path, "volume_save: path is NULL or empty");
  csal3d_volume_save_options o;
  csal3d_volume_save_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_volume_save_options"));
  int gz = c3_ends_with_nocase(path, ".nii.gz");
  C3_CHECK_ARG(gz || c3_ends_with_nocase(path, ".nii"),
               "%s: the name must end in .nii or .nii.gz", path);
  C3_CHECK_ARG(o.compression_level >= 0 && o.compression_level <= 9,
               "volume_save: compression_level %d is not in 0..9", o.compression_level);
  C3_CHECK_ARG(o.dtype >= CSAL3D_SAVE_AUTO && o.dtype <= CSAL3D_SAVE_UINT8,
               "volume_save: unknown dtype %d", (int)o.dtype);

  /* Geometry: the source file's storage grid, or the RAS array as it is. */
  const int use_source = o.source_orientation && c3_volume_on_source(v);
  c3_axes_map map;
  int64_t dims[3];
  double aff[4][4];
  int qcode, scode;
  double qmat[4][4], smat[4][4];
  /* Header codes must be valid NIfTI xform codes (1..5) where they are used, so that a
   * reader picks the same matrix we did: sform when the source used its sform, else qform. */
  const c3_source_grid *g = &v->source;
  int sform_used = g->present && g->sform_code > 0;
  int src_s = g->sform_code >= 1 && g->sform_code <= 5 ? g->sform_code : 1;
  int src_q = g->qform_code >= 1 && g->qform_code <= 5 ? g->qform_code : g->qform_code > 0;
  int version = g->present && g->version == 2 ? 2 : 1;
  if (use_source) {
    map = c3_axes_inverse(g->to_ras);
    memcpy(dims, g->dim, sizeof dims);
    memcpy(aff, g->affine, sizeof aff);
    if (sform_used) {
      scode = src_s;
      memcpy(smat, g->sform, sizeof smat);
      qcode = g->qform_code >= 0 && g->qform_code <= 5 ? g->qform_code : 0;
      memcpy(qmat, qcode > 0 ? g->qform : aff, sizeof qmat);
    } else {
      scode = 0;
      memcpy(smat, aff, sizeof smat);
      qcode = src_q;
      memcpy(qmat, g->qform, sizeof qmat);
    }
  } else {
    const c3_axes_map transpose = {{2, 1, 0}, {0, 0, 0}};
    map = transpose;
    memcpy(dims, v->dim, sizeof dims);
    memcpy(aff, v->affine, sizeof aff);
    int code = sform_used ? src_s : g->present && src_q > 0 ? src_q : 1 /* NIFTI_XFORM_SCANNER_ANAT */;
    qcode = scode = code;
    memcpy(qmat, aff, sizeof qmat);
    memcpy(smat, aff, sizeof smat);
  }
  double inv[4][4];
  csal3d_status si = c3_affine_inverse(aff, inv, "affine");
  if (si != CSAL3D_OK) return c3_error_prefix(si, "%s", path);


  /* Pixdim: the spacing; a file without xforms (both codes 0) means pixdim on the
   * diagonal, signs included (NIfTI "method 1"): keep them so that the grid reads back
   * the same. */
  c3_nifti_write_spec w;
  memset(&w, 0, sizeof w);
  c3_affine_spacing(aff, w.pixdim);
  if (use_source && qcode <= 0 && scode <= 0)
    for (int i = 0; i < 3; i++) w.pixdim[i] = g->qform[i][i];
  memcpy(w.dim, dims, sizeof dims);
  w.channels = v->channels;
  w.version = version;
  w.dtype = o.dtype;
  w.is_label = v->is_label;
  w.qform_code = qcode, w.sform_code = scode;
  memcpy(w.qform, qmat, sizeof qmat);
  memcpy(w.sform, smat, sizeof smat);
  w.gz_level = gz ? (o.compression_level ? o.compression_level : 1) : 0;

  /* The voxels in storage order. */
  float *storage;
  C3_TRY(c3_alloc_array((size_t)(c3_volume_voxels(v) * v->channels), sizeof(float),
                        "storage order", (void **)&storage));
  int64_t in_shape[3];
  memcpy(in_shape, v->dim, sizeof in_shape);
  c3_axes_apply_f32(map, v->data, v->channels, in_shape, storage);
  w.data = storage;
  csal3d_status s = c3_nifti_write(path, &w);
  c3_free(storage);
  return s;
}
