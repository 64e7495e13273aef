/* The volume handle: creation, accessors, affine geometry, resampling onto a grid. */
#include "volume/volume_internal.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"

int64_t c3_volume_voxels(const csal3d_volume *v) { return v->dim[0] * v->dim[1] * v->dim[2]; }

static void c3_identity4(double a[4][4]) {
  memset(a, 0, 16 * sizeof(double));
  for (int i = 0; i < 4; i++) a[i][i] = 1.0;
}

csal3d_status c3_volume_new(int64_t channels, const int64_t dim[3], csal3d_volume **out) {
  *out = NULL;
  C3_CHECK_ARG(channels >= 1 && dim[0] >= 1 && dim[1] >= 1 && dim[2] >= 1,
               "volume shape [%lld, %lld, %lld, %lld]: every size must be >= 1",
               (long long)channels, (long long)dim[0], (long long)dim[1], (long long)dim[2]);
  size_t n;
  if (c3_mul_size((size_t)channels, (size_t)dim[0], &n) || c3_mul_size(n, (size_t)dim[1], &n) ||
      c3_mul_size(n, (size_t)dim[2], &n) || n > (size_t)INT64_MAX / sizeof(float))
    return c3_error(CSAL3D_ERR_UNSUPPORTED, "volume shape [%lld, %lld, %lld, %lld] is too large",
                    (long long)channels, (long long)dim[0], (long long)dim[1],
                    (long long)dim[2]);
  csal3d_volume *v;
  C3_TRY(c3_calloc_array(1, sizeof *v, "volume", (void **)&v));
  csal3d_status s = c3_calloc_array(n, sizeof(float), "volume voxels", (void **)&v->data);
  if (s != CSAL3D_OK) {
    c3_free(v);
    return s;
  }
  v->channels = channels;
  memcpy(v->dim, dim, sizeof v->dim);
  c3_identity4(v->affine);
  *out = v;
  return CSAL3D_OK;
}

CSAL3D_API void csal3d_volume_free(csal3d_volume *volume) {
  if (!volume) return;
  c3_free(volume->data);
  c3_free(volume);
}

/* ---- affine geometry ---- */

void c3_affine_spacing(const double a[4][4], double spacing[3]) {
  for (int c = 0; c < 3; c++)
    spacing[c] = sqrt(a[0][c] * a[0][c] + a[1][c] * a[1][c] + a[2][c] * a[2][c]);
}

void c3_affine_mul(const double a[4][4], const double b[4][4], double out[4][4]) {
  double t[4][4];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      double s = 0;
      for (int k = 0; k < 4; k++) s += a[i][k] * b[k][j];
      t[i][j] = s;
    }
  memcpy(out, t, sizeof t);
}

csal3d_status c3_affine_inverse(const double a[4][4], double inv[4][4], const char *what) {
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      if (!isfinite(a[i][j]))
        return c3_error(CSAL3D_ERR_FORMAT, "%s: the affine has a non-finite entry", what);
  /* 3x3 part by cofactors; the last row must be (0, 0, 0, 1). */
  const double(*m)[4] = a;
  double c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
  double c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
  double c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
  double det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
  double sp[3];
  c3_affine_spacing(a, sp);
  double scale = sp[0] * sp[1] * sp[2];
  if (!(scale > 0) || !(fabs(det) > 1e-9 * scale))
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: the affine is singular (its voxel axes are not independent: "
                    "determinant %g, spacing %g x %g x %g)",
                    what, det, sp[0], sp[1], sp[2]);
  double r[3][3] = {
      {c00 / det, (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det,
       (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det},
      {c01 / det, (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det,
       (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det},
      {c02 / det, (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det,
       (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det}};
  double t[4][4];
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++) t[i][j] = r[i][j];
    t[i][3] = -(r[i][0] * m[0][3] + r[i][1] * m[1][3] + r[i][2] * m[2][3]);
  }
  t[3][0] = t[3][1] = t[3][2] = 0;
  t[3][3] = 1;
  memcpy(inv, t, sizeof t);
  return CSAL3D_OK;
}

/* How close two direction cosines of a voxel axis count as a tie (see below): float32
 * quaternions, as NIfTI-1 stores them, carry about 1e-7 of noise. */
#define C3_ORIENTATION_TIE 1e-5

csal3d_status c3_affine_ras_orientation(const double a[4][4], const int64_t dim[3],
                                        c3_axes_map *map, double ras_affine[4][4],
                                        int64_t ras_dim[3]) {
  double inv[4][4];
  C3_TRY(c3_affine_inverse(a, inv, "orientation"));
  /* nibabel.orientations.io_orientation: the rotation part of the affine (columns scaled
   * to unit length, then the nearest orthogonal matrix by SVD), then for each voxel axis
   * in turn the world axis with the largest |entry|, which is then taken out. */
  double sp[3];
  c3_affine_spacing(a, sp);
  double rs[9], u[9], s[3], vt[9], superb[2];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) rs[i * 3 + j] = a[i][j] / sp[j];
  lapack_int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'A', 'A', 3, 3, rs, 3, s, u, 3, vt, 3,
                                   superb);
  if (info != 0)
    return c3_error(CSAL3D_ERR_FORMAT, "orientation: SVD of the affine failed (%d)",
                    (int)info);
  double r[3][3];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) r[i][j] = u[i * 3 + 0] * vt[0 * 3 + j] +
                                          u[i * 3 + 1] * vt[1 * 3 + j] +
                                          u[i * 3 + 2] * vt[2 * 3 + j];
  /* Ties: where two world axes are (nearly) equally close to a voxel axis (a rotation of
   * 180 degrees about (1, 1, 1) has |entries| 1/3, 2/3, 2/3), nibabel's argmax takes the
   * first of exactly equal ones, and otherwise whichever the last bits of the matrix
   * favour, so that a save, which rewrites the quaternion, could reorder the axes when the
   * file is read again. Entries within C3_ORIENTATION_TIE of the largest count as equal and
   * the first world axis among them wins: the same choice as nibabel's wherever the
   * entries differ by more, and one that survives a save and load. */
  int world_of[3], sign_of[3];
  for (int v = 0; v < 3; v++) {
    double top = 0;
    for (int w = 0; w < 3; w++) top = fmax(top, fabs(r[w][v]));
    int best = 0;
    while (best < 2 && !(fabs(r[best][v]) >= top - C3_ORIENTATION_TIE)) best++;
    if (r[best][v] == 0)
      return c3_error(CSAL3D_ERR_FORMAT, "orientation: voxel axis %d has no direction", v);
    world_of[v] = best;
    sign_of[v] = r[best][v] < 0 ? -1 : 1;
    for (int j = 0; j < 3; j++) r[best][j] = 0;
  }
  double na[4][4];
  c3_identity4(na);
  for (int i = 0; i < 3; i++) na[i][3] = a[i][3];
  for (int v = 0; v < 3; v++) {
    int w = world_of[v];
    /* RAS array axis w reads the storage C array's axis 2 - v (storage is [nz][ny][nx]). */
    map->perm[w] = 2 - v;
    map->flip[w] = sign_of[v] < 0;
    ras_dim[w] = dim[v];
    for (int i = 0; i < 3; i++) {
      na[i][w] = a[i][v] * sign_of[v];
      if (sign_of[v] < 0) na[i][3] += a[i][v] * (double)(dim[v] - 1);
    }
  }
  memcpy(ras_affine, na, sizeof na);
  return CSAL3D_OK;
}

int c3_grid_equal(const int64_t dim_a[3], const double a[4][4], const int64_t dim_b[3],
                  const double b[4][4], double tol, char *why, size_t why_cap) {
  if (dim_a[0] != dim_b[0] || dim_a[1] != dim_b[1] || dim_a[2] != dim_b[2]) {
    if (why)
      snprintf(why, why_cap, "dimensions %lld x %lld x %lld differ from %lld x %lld x %lld",
               (long long)dim_b[0], (long long)dim_b[1], (long long)dim_b[2],
               (long long)dim_a[0], (long long)dim_a[1], (long long)dim_a[2]);
    return 0;
  }
  double worst = 0;
  for (int corner = 0; corner < 8; corner++) {
    double p[3] = {corner & 1 ? (double)(dim_a[0] - 1) : 0,
                   corner & 2 ? (double)(dim_a[1] - 1) : 0,
                   corner & 4 ? (double)(dim_a[2] - 1) : 0};
    double d2 = 0;
    for (int i = 0; i < 3; i++) {
      double xa = a[i][3], xb = b[i][3];
      for (int j = 0; j < 3; j++) xa += a[i][j] * p[j], xb += b[i][j] * p[j];
      d2 += (xa - xb) * (xa - xb);
    }
    if (!(sqrt(d2) <= worst)) worst = sqrt(d2);
  }
  if (!(worst <= tol)) {
    if (why)
      snprintf(why, why_cap,
               "affines differ: a corner voxel lies %.4g mm apart (tolerance %.3g mm)", worst,
               tol);
    return 0;
  }
  return 1;
}

int c3_volume_on_source(const csal3d_volume *v) {
  if (!v->source.present) return 0;
  if (v->dim[0] != v->source.ras_dim[0] || v->dim[1] != v->source.ras_dim[1] ||
      v->dim[2] != v->source.ras_dim[2])
    return 0;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 4; j++)
      if (v->affine[i][j] != v->source.ras_affine[i][j]) return 0;
  return 1;
}

/* ---- public: creation and accessors ---- */

CSAL3D_API csal3d_status csal3d_volume_create(int64_t channels, const int64_t dims[3],
                                              const float *data, const double affine[16],
                                              csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_create: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(dims, "volume_create: dims is NULL");
  double a[4][4];
  if (affine) {
    memcpy(a, affine, sizeof a);
    double inv[4][4];
    C3_TRY(c3_affine_inverse(a, inv, "volume_create"));
    C3_CHECK_ARG(a[3][0] == 0 && a[3][1] == 0 && a[3][2] == 0 && a[3][3] == 1,
                 "volume_create: the affine's last row must be 0 0 0 1");
  } else {
    c3_identity4(a);
  }
  csal3d_volume *v;
  C3_TRY(c3_volume_new(channels, dims, &v));
  memcpy(v->affine, a, sizeof a);
  if (data) memcpy(v->data, data, (size_t)(channels * c3_volume_voxels(v)) * sizeof(float));
  *out = v;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_create_like(const csal3d_volume *like,
                                                   int64_t channels, const float *data,
                                                   csal3d_volume **out) {
  C3_CHECK_ARG(out, "volume_create_like: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(like, "volume_create_like: like is NULL");
  csal3d_volume *v;
  C3_TRY(c3_volume_new(channels, like->dim, &v));
  memcpy(v->affine, like->affine, sizeof v->affine);
  v->source = like->source;
  if (data) memcpy(v->data, data, (size_t)(channels * c3_volume_voxels(v)) * sizeof(float));
  *out = v;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_clone(const csal3d_volume *volume,
                                             csal3d_volume **out) {
  C3_CHECK_ARG(volume && out, "volume_clone: NULL argument");
  C3_TRY(csal3d_volume_create_like(volume, volume->channels, volume->data, out));
  (*out)->is_label = volume->is_label;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_shape(const csal3d_volume *volume, int64_t shape[4]) {
  C3_CHECK_ARG(volume && shape, "volume_shape: NULL argument");
  shape[0] = volume->channels;
  for (int i = 0; i < 3; i++) shape[i + 1] = volume->dim[i];
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_spacing(const csal3d_volume *volume,
                                               double spacing[3]) {
  C3_CHECK_ARG(volume && spacing, "volume_spacing: NULL argument");
  c3_affine_spacing(volume->affine, spacing);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_affine(const csal3d_volume *volume,
                                              double affine[16]) {
  C3_CHECK_ARG(volume && affine, "volume_affine: NULL argument");
  memcpy(affine, volume->affine, sizeof volume->affine);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_source(const csal3d_volume *volume,
                                              csal3d_volume_source_info *info) {
  C3_CHECK_ARG(volume && info, "csal3d_volume_source: NULL argument");
  csal3d_volume_source_info r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  const c3_source_grid *g = &volume->source;
  if (g->present) {
    r.from_file = 1;
    r.nifti_version = g->version;
    r.datatype = g->datatype;
    snprintf(r.datatype_name, sizeof r.datatype_name, "%s",
             g->datatype_name ? g->datatype_name : "unknown");
    for (int a = 0; a < 3; a++) r.dims[a] = g->dim[a];
    r.dims[3] = g->file_volumes > 0 ? g->file_volumes : 1;
    c3_affine_spacing(g->affine, r.pixdim);
    r.qform_code = g->qform_code;
    r.sform_code = g->sform_code;
    snprintf(r.orientation_from, sizeof r.orientation_from, "%s",
             g->sform_code > 0 ? "sform" : g->qform_code > 0 ? "qform" : "none");
    /* The RAS+ array's axis a reads storage axis perm[a] of [nz][ny][nx] (flipped or
     * not), so file axis i (x), j (y), k (z) is storage axis 2, 1, 0. */
    for (int f = 0; f < 3; f++)
      for (int a = 0; a < 3; a++)
        if (g->to_ras.perm[a] == 2 - f) r.axis_codes[f] = (g->to_ras.flip[a] ? "LPI" : "RAS")[a];
  }
  return c3_options_write(info, &r, sizeof r, "csal3d_volume_source_info");
}

CSAL3D_API csal3d_status csal3d_volume_is_label(const csal3d_volume *volume, int *is_label) {
  C3_CHECK_ARG(volume && is_label, "volume_is_label: NULL argument");
  *is_label = volume->is_label;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_copy_data(const csal3d_volume *volume, float *buffer,
                                                 size_t capacity, size_t *needed) {
  C3_CHECK_ARG(volume, "volume_copy_data: volume is NULL");
  size_t n = (size_t)(volume->channels * c3_volume_voxels(volume));
  if (needed) *needed = n;
  if (!buffer && capacity == 0) return CSAL3D_OK;
  C3_CHECK_ARG(buffer, "volume_copy_data: buffer is NULL with capacity %zu", capacity);
  if (capacity < n)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL,
                    "volume_copy_data: the buffer holds %zu floats, the volume has %zu "
                    "(C*D*H*W)", capacity, n);
  memcpy(buffer, volume->data, n * sizeof(float));
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_volume_data(const csal3d_volume *volume, const float **data) {
  C3_CHECK_ARG(volume && data, "volume_data: NULL argument");
  *data = volume->data;
  return CSAL3D_OK;
}

/* ---- resampling onto a grid ---- */

csal3d_status c3_volume_resample_grid(const csal3d_volume *src, const int64_t dim[3],
                                      const double affine[4][4], int nearest, int clamp_all,
                                      csal3d_volume **out) {
  *out = NULL;
  double inv[4][4], m[4][4];
  C3_TRY(c3_affine_inverse(src->affine, inv, "resample"));
  c3_affine_mul(inv, affine, m); /* dst voxel -> src voxel */
  csal3d_volume *v;
  C3_TRY(c3_volume_new(src->channels, dim, &v));
  memcpy(v->affine, affine, sizeof v->affine);
  v->source = src->source;
  v->is_label = src->is_label;
  const int64_t n0 = src->dim[0], n1 = src->dim[1], n2 = src->dim[2];
  const int64_t svox = c3_volume_voxels(src), dvox = c3_volume_voxels(v);
  const int64_t rows = dim[0] * dim[1];
#pragma omp parallel for schedule(static) if (dvox > (1 << 18))
  for (int64_t r = 0; r < rows; r++) {
    int64_t d = r / dim[1], h = r % dim[1];
    for (int64_t w = 0; w < dim[2]; w++) {
      double p[3];
      int inside = 1;
      for (int i = 0; i < 3; i++) {
        p[i] = m[i][0] * d + m[i][1] * h + m[i][2] * w + m[i][3];
        double n = (double)(i == 0 ? n0 : i == 1 ? n1 : n2);
        if (!clamp_all && !(p[i] > -1 + 1e-6 && p[i] < n - 1e-6)) inside = 0;
        if (p[i] < 0) p[i] = 0;
        if (p[i] > n - 1) p[i] = n - 1;
      }
      int64_t o = (d * dim[1] + h) * dim[2] + w;
      if (!inside) {
        for (int64_t c = 0; c < src->channels; c++) v->data[c * dvox + o] = 0.0f;
        continue;
      }
      if (nearest) {
        /* Round half up, with a margin for round-off in the affine products. */
        int64_t i0 = (int64_t)floor(p[0] + 0.5 + 1e-6), i1 = (int64_t)floor(p[1] + 0.5 + 1e-6),
                i2 = (int64_t)floor(p[2] + 0.5 + 1e-6);
        i0 = i0 > n0 - 1 ? n0 - 1 : i0, i1 = i1 > n1 - 1 ? n1 - 1 : i1, i2 = i2 > n2 - 1 ? n2 - 1 : i2;
        for (int64_t c = 0; c < src->channels; c++)
          v->data[c * dvox + o] = src->data[c * svox + (i0 * n1 + i1) * n2 + i2];
        continue;
      }
      int64_t lo[3], hi[3];
      double f[3];
      for (int i = 0; i < 3; i++) {
        double fl = floor(p[i]);
        int64_t n = i == 0 ? n0 : i == 1 ? n1 : n2;
        lo[i] = (int64_t)fl;
        hi[i] = lo[i] + 1 < n ? lo[i] + 1 : n - 1;
        f[i] = p[i] - fl;
      }
      for (int64_t c = 0; c < src->channels; c++) {
        const float *s = src->data + c * svox;
#define AT(a, b, e) ((double)s[((a) * n1 + (b)) * n2 + (e)])
        double v00 = AT(lo[0], lo[1], lo[2]) * (1 - f[2]) + AT(lo[0], lo[1], hi[2]) * f[2];
        double v01 = AT(lo[0], hi[1], lo[2]) * (1 - f[2]) + AT(lo[0], hi[1], hi[2]) * f[2];
        double v10 = AT(hi[0], lo[1], lo[2]) * (1 - f[2]) + AT(hi[0], lo[1], hi[2]) * f[2];
        double v11 = AT(hi[0], hi[1], lo[2]) * (1 - f[2]) + AT(hi[0], hi[1], hi[2]) * f[2];
#undef AT
        double v0 = v00 * (1 - f[1]) + v01 * f[1], v1 = v10 * (1 - f[1]) + v11 * f[1];
        v->data[c * dvox + o] = (float)(v0 * (1 - f[0]) + v1 * f[0]);
      }
    }
  }
  *out = v;
  return CSAL3D_OK;
}
