/* The report's images: the colour maps, the three slices of a case through its most
 * uncertain region, PNG through libpng, base64. */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "pipeline/report.h"
#include "sampling/sampling.h"
#include "volume/volume_internal.h"

/* viridis, 256 entries (matplotlib's, by Stefan van der Walt and Nathaniel Smith,
 * public domain (CC0); as 8-bit RGB in d3-scale-chromatic 3.1.1's interpolateViridis). */
static const uint32_t c3_viridis_lut[256] = {
    0x440154, 0x440256, 0x450457, 0x450559, 0x46075a, 0x46085c, 0x460a5d, 0x460b5e,
    0x470d60, 0x470e61, 0x471063, 0x471164, 0x471365, 0x481467, 0x481668, 0x481769,
    0x48186a, 0x481a6c, 0x481b6d, 0x481c6e, 0x481d6f, 0x481f70, 0x482071, 0x482173,
    0x482374, 0x482475, 0x482576, 0x482677, 0x482878, 0x482979, 0x472a7a, 0x472c7a,
    0x472d7b, 0x472e7c, 0x472f7d, 0x46307e, 0x46327e, 0x46337f, 0x463480, 0x453581,
    0x453781, 0x453882, 0x443983, 0x443a83, 0x443b84, 0x433d84, 0x433e85, 0x423f85,
    0x424086, 0x424186, 0x414287, 0x414487, 0x404588, 0x404688, 0x3f4788, 0x3f4889,
    0x3e4989, 0x3e4a89, 0x3e4c8a, 0x3d4d8a, 0x3d4e8a, 0x3c4f8a, 0x3c508b, 0x3b518b,
    0x3b528b, 0x3a538b, 0x3a548c, 0x39558c, 0x39568c, 0x38588c, 0x38598c, 0x375a8c,
    0x375b8d, 0x365c8d, 0x365d8d, 0x355e8d, 0x355f8d, 0x34608d, 0x34618d, 0x33628d,
    0x33638d, 0x32648e, 0x32658e, 0x31668e, 0x31678e, 0x31688e, 0x30698e, 0x306a8e,
    0x2f6b8e, 0x2f6c8e, 0x2e6d8e, 0x2e6e8e, 0x2e6f8e, 0x2d708e, 0x2d718e, 0x2c718e,
    0x2c728e, 0x2c738e, 0x2b748e, 0x2b758e, 0x2a768e, 0x2a778e, 0x2a788e, 0x29798e,
    0x297a8e, 0x297b8e, 0x287c8e, 0x287d8e, 0x277e8e, 0x277f8e, 0x27808e, 0x26818e,
    0x26828e, 0x26828e, 0x25838e, 0x25848e, 0x25858e, 0x24868e, 0x24878e, 0x23888e,
    0x23898e, 0x238a8d, 0x228b8d, 0x228c8d, 0x228d8d, 0x218e8d, 0x218f8d, 0x21908d,
    0x21918c, 0x20928c, 0x20928c, 0x20938c, 0x1f948c, 0x1f958b, 0x1f968b, 0x1f978b,
    0x1f988b, 0x1f998a, 0x1f9a8a, 0x1e9b8a, 0x1e9c89, 0x1e9d89, 0x1f9e89, 0x1f9f88,
    0x1fa088, 0x1fa188, 0x1fa187, 0x1fa287, 0x20a386, 0x20a486, 0x21a585, 0x21a685,
    0x22a785, 0x22a884, 0x23a983, 0x24aa83, 0x25ab82, 0x25ac82, 0x26ad81, 0x27ad81,
    0x28ae80, 0x29af7f, 0x2ab07f, 0x2cb17e, 0x2db27d, 0x2eb37c, 0x2fb47c, 0x31b57b,
    0x32b67a, 0x34b679, 0x35b779, 0x37b878, 0x38b977, 0x3aba76, 0x3bbb75, 0x3dbc74,
    0x3fbc73, 0x40bd72, 0x42be71, 0x44bf70, 0x46c06f, 0x48c16e, 0x4ac16d, 0x4cc26c,
    0x4ec36b, 0x50c46a, 0x52c569, 0x54c568, 0x56c667, 0x58c765, 0x5ac864, 0x5cc863,
    0x5ec962, 0x60ca60, 0x63cb5f, 0x65cb5e, 0x67cc5c, 0x69cd5b, 0x6ccd5a, 0x6ece58,
    0x70cf57, 0x73d056, 0x75d054, 0x77d153, 0x7ad151, 0x7cd250, 0x7fd34e, 0x81d34d,
    0x84d44b, 0x86d549, 0x89d548, 0x8bd646, 0x8ed645, 0x90d743, 0x93d741, 0x95d840,
    0x98d83e, 0x9bd93c, 0x9dd93b, 0xa0da39, 0xa2da37, 0xa5db36, 0xa8db34, 0xaadc32,
    0xaddc30, 0xb0dd2f, 0xb2dd2d, 0xb5de2b, 0xb8de29, 0xbade28, 0xbddf26, 0xc0df25,
    0xc2df23, 0xc5e021, 0xc8e020, 0xcae11f, 0xcde11d, 0xd0e11c, 0xd2e21b, 0xd5e21a,
    0xd8e219, 0xdae319, 0xdde318, 0xdfe318, 0xe2e418, 0xe5e419, 0xe7e419, 0xeae51a,
    0xece51b, 0xefe51c, 0xf1e51d, 0xf4e61e, 0xf6e620, 0xf8e621, 0xfbe723, 0xfde725,
};

void c3_viridis(double t, uint8_t rgb[3]) {
  if (!(t > 0)) t = 0; /* NaN too */
  int i = t >= 1 ? 255 : (int)(t * 256);
  uint32_t c = c3_viridis_lut[i];
  rgb[0] = (uint8_t)(c >> 16), rgb[1] = (uint8_t)(c >> 8), rgb[2] = (uint8_t)c;
}

/* Tableau 10 (Tableau's categorical palette, as d3's schemeTableau10). */
static const uint32_t c3_tableau10[10] = {0x4e79a7, 0xf28e2c, 0xe15759, 0x76b7b2, 0x59a14f,
                                          0xedc949, 0xaf7aa1, 0xff9da7, 0x9c755f, 0xbab0ab};

void c3_cluster_colour(int64_t k, char out[8]) {
  uint32_t c;
  if (k < 0) {
    c = 0x9a9a9a;
  } else if (k < 10) {
    c = c3_tableau10[k];
  } else { /* HSL hues 137.5 degrees apart, saturation and lightness alternating */
    double h = fmod((double)k * 137.508, 360.0) / 60.0, s = k % 2 ? 0.55 : 0.7,
           l = k % 3 == 0 ? 0.45 : 0.58;
    double ch = (1 - fabs(2 * l - 1)) * s, x = ch * (1 - fabs(fmod(h, 2.0) - 1)),
           m = l - ch / 2, r = 0, g = 0, b = 0;
    switch ((int)h) {
    case 0: r = ch, g = x; break;
    case 1: r = x, g = ch; break;
    case 2: g = ch, b = x; break;
    case 3: g = x, b = ch; break;
    case 4: r = x, b = ch; break;
    default: r = ch, b = x; break;
    }
    c = (uint32_t)lround((r + m) * 255) << 16 | (uint32_t)lround((g + m) * 255) << 8 |
        (uint32_t)lround((b + m) * 255);
  }
  snprintf(out, 8, "#%06x", (unsigned)(c & 0xffffff));
}

/* ---- PNG ---- */

typedef struct c3_membuf {
  uint8_t *data;
  size_t len, cap;
  int oom;
  char why[160];
} c3_membuf;

static void c3_png_write(png_structp png, png_bytep data, size_t n) {
  c3_membuf *m = png_get_io_ptr(png);
  if (m->oom) return;
  if (m->len + n > m->cap) {
    size_t cap = m->cap ? m->cap : 4096;
    while (cap < m->len + n) cap *= 2;
    uint8_t *p;
    if (c3_alloc(cap, "PNG", (void **)&p) != CSAL3D_OK) {
      m->oom = 1;
      png_error(png, "out of memory");
    }
    if (m->len) memcpy(p, m->data, m->len);
    c3_free(m->data);
    m->data = p;
    m->cap = cap;
  }
  memcpy(m->data + m->len, data, n);
  m->len += n;
}

static void c3_png_flush(png_structp png) { (void)png; }

/* libpng's errors: remembered and unwound (never printed, never abort). */
static void c3_png_error(png_structp png, png_const_charp msg) {
  c3_membuf *m = png_get_error_ptr(png);
  snprintf(m->why, sizeof m->why, "%s", msg);
  png_longjmp(png, 1);
}

static void c3_png_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

csal3d_status c3_png_rgb(const uint8_t *rgb, int w, int h, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  C3_CHECK_ARG(w > 0 && h > 0, "PNG of %d x %d pixels", w, h);
  c3_membuf m;
  memset(&m, 0, sizeof m);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &m, c3_png_error,
                                            c3_png_warning);
  if (!png) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "libpng: cannot create a writer");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, NULL);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "libpng: cannot create a writer");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    c3_free(m.data);
    return m.oom ? c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory writing a PNG")
                 : c3_error(CSAL3D_ERR_INTERNAL, "libpng: %s", m.why);
  }
  png_set_write_fn(png, &m, c3_png_write, c3_png_flush);
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 9);
  png_write_info(png, info);
  for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  *out = m.data;
  *len = m.len;
  return CSAL3D_OK;
}

void c3_base64_write(c3_outfile *o, const uint8_t *d, size_t n) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char buf[4096];
  size_t k = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)d[i] << 16;
    if (i + 1 < n) v |= (uint32_t)d[i + 1] << 8;
    if (i + 2 < n) v |= d[i + 2];
    buf[k++] = tab[v >> 18 & 63];
    buf[k++] = tab[v >> 12 & 63];
    buf[k++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
    buf[k++] = i + 2 < n ? tab[v & 63] : '=';
    if (k + 4 > sizeof buf) {
      c3_outfile_write(o, buf, k);
      k = 0;
    }
  }
  if (k) c3_outfile_write(o, buf, k);
}

/* ---- the most uncertain region ---- */

/* Box mean along one axis (sum over [i - r, i + r] clipped, divided by the count), in
 * place over a D x H x W array, through a line buffer. */
static void c3_box_axis(float *a, const int64_t dims[3], int axis, int64_t r, double *line) {
  int64_t n = dims[axis], stride = axis == 2 ? 1 : axis == 1 ? dims[2] : dims[1] * dims[2];
  int64_t lines = dims[0] * dims[1] * dims[2] / n;
  for (int64_t l = 0; l < lines; l++) {
    /* the start of line l: every index but `axis` */
    int64_t base;
    if (axis == 2) base = l * n;
    else if (axis == 1) base = (l / dims[2]) * dims[1] * dims[2] + l % dims[2];
    else base = l;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) line[i] = a[base + i * stride];
    for (int64_t i = 0; i < r && i < n; i++) sum += line[i];
    for (int64_t i = 0; i < n; i++) {
      if (i + r < n) sum += line[i + r];
      if (i - r - 1 >= 0) sum -= line[i - r - 1];
      int64_t lo = i - r < 0 ? 0 : i - r, hi = i + r >= n ? n - 1 : i + r;
      a[base + i * stride] = (float)(sum / (double)(hi - lo + 1));
    }
  }
}

csal3d_status c3_report_peak(const float *map, const int64_t dims[3], int64_t r,
                             const unsigned char *mask, int64_t at[3]) {
  int64_t nv = dims[0] * dims[1] * dims[2], longest = dims[0];
  for (int a = 1; a < 3; a++) longest = dims[a] > longest ? dims[a] : longest;
  float *a = NULL;
  double *line = NULL;
  csal3d_status s = c3_alloc_array((size_t)nv, sizeof *a, "box filter", (void **)&a);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)longest, sizeof *line, "box filter", (void **)&line);
  if (s != CSAL3D_OK) {
    c3_free(a);
    return s;
  }
  memcpy(a, map, (size_t)nv * sizeof *a);
  for (int ax = 0; ax < 3; ax++) c3_box_axis(a, dims, ax, r, line);
  /* the best voxel in the mask whose box stays clear of the borders by an eighth of the
   * side (padded windows are uncertain there whatever the image; where the volume is wide
   * enough); failing that, in the mask; failing that, anywhere */
  int64_t margin[3];
  for (int ax = 0; ax < 3; ax++) {
    margin[ax] = dims[ax] / 8 > r + 1 ? dims[ax] / 8 : r + 1;
    if (dims[ax] <= 2 * margin[ax] + 1) margin[ax] = 0;
  }
  int64_t best = -1;
  for (int pass = 0; pass < 3 && best < 0; pass++)
    for (int64_t i = 0; i < nv; i++) {
      if (pass < 2 && mask && !mask[i]) continue;
      if (pass == 0) {
        int64_t c[3] = {i / (dims[1] * dims[2]), i / dims[2] % dims[1], i % dims[2]}, out = 0;
        for (int ax = 0; ax < 3; ax++)
          out |= c[ax] < margin[ax] || c[ax] >= dims[ax] - margin[ax];
        if (out) continue;
      }
      if (best < 0 || a[i] > a[best]) best = i;
    }
  at[0] = best / (dims[1] * dims[2]);
  at[1] = best / dims[2] % dims[1];
  at[2] = best % dims[2];
  c3_free(a);
  c3_free(line);
  return CSAL3D_OK;
}

/* ---- slices ---- */

/* The p-quantiles (p in [0, 1]) of up to 2^20 values of v taken at a fixed stride, only
 * those where `mask` is set (mask may be NULL). *count (may be NULL) receives how many
 * values were used; none leaves out[] NaN. */
static csal3d_status c3_quantiles(const float *v, int64_t n, const unsigned char *mask,
                                  const double *p, int np, double *out, int64_t *count) {
  int64_t step = n > (1 << 20) ? n / (1 << 20) + 1 : 1, m = 0;
  double *buf;
  C3_TRY(c3_alloc_array((size_t)((n + step - 1) / step), sizeof *buf, "quantiles", (void **)&buf));
  for (int64_t i = 0; i < n; i += step)
    if (!mask || mask[i]) buf[m++] = v[i];
  for (int k = 0; k < np; k++)
    out[k] = m ? c3_select_kth(buf, m, (int64_t)llround(p[k] * (double)(m - 1))) : NAN;
  if (count) *count = m * step;
  c3_free(buf);
  return CSAL3D_OK;
}

/* Trilinear value of channel 0 of v at voxel coordinates c (clamped to the grid), or NaN
 * outside it by more than half a voxel. */
static double c3_sample(const csal3d_volume *v, const double c[3]) {
  int64_t i0[3];
  double f[3];
  for (int a = 0; a < 3; a++) {
    double x = c[a];
    if (x < -0.5 || x > (double)v->dim[a] - 0.5) return NAN;
    if (x < 0) x = 0;
    if (x > (double)(v->dim[a] - 1)) x = (double)(v->dim[a] - 1);
    i0[a] = (int64_t)floor(x);
    if (i0[a] >= v->dim[a] - 1) i0[a] = v->dim[a] > 1 ? v->dim[a] - 2 : 0;
    f[a] = v->dim[a] > 1 ? x - (double)i0[a] : 0;
  }
  double val = 0;
  for (int k = 0; k < 8; k++) {
    int64_t d = i0[0] + (k >> 2 & 1), h = i0[1] + (k >> 1 & 1), w = i0[2] + (k & 1);
    double wt = ((k >> 2 & 1) ? f[0] : 1 - f[0]) * ((k >> 1 & 1) ? f[1] : 1 - f[1]) *
                ((k & 1) ? f[2] : 1 - f[2]);
    if (wt == 0) continue;
    val += wt * v->data[(d * v->dim[1] + h) * v->dim[2] + w];
  }
  return val;
}

/* The views: the axis held fixed, the horizontal and vertical axes and whether each is
 * drawn from high to low index (RAS+: the patient's right on the left, anterior and
 * superior at the top). */
static const struct {
  int fixed, hor, ver, hor_flip, ver_flip;
} c3_views[3] = {{2, 0, 1, 1, 1}, {1, 0, 2, 1, 1}, {0, 1, 2, 1, 1}};

static void c3_note(c3_case_planes *p, const char *what, const char *path) {
  size_t used = strlen(p->note);
  snprintf(p->note + used, sizeof p->note - used, "%s%s %s: %s", used ? "; " : "", what,
           path, csal3d_last_error());
}

csal3d_status c3_case_planes_make(const char *image, const char *map, int size,
                                  c3_case_planes *p) {
  memset(p, 0, sizeof *p);
  p->map_lo = p->map_hi = NAN;
  csal3d_volume *img = NULL, *mv = NULL;
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.modality = CSAL3D_MODALITY_NONE;
  lo.channel = 0;
  if (image && csal3d_volume_load(image, &lo, &img) != CSAL3D_OK) c3_note(p, "image", image);
  if (!image) snprintf(p->note, sizeof p->note, "no image recorded");
  lo.channel = CSAL3D_CHANNEL_NONE;
  if (map && csal3d_volume_load(map, &lo, &mv) != CSAL3D_OK) {
    c3_note(p, "uncertainty map", map);
    mv = NULL;
  }
  p->has_image = img != NULL;
  p->has_map = mv != NULL;
  csal3d_status s = CSAL3D_OK;
  const csal3d_volume *ref = mv ? mv : img;
  double img_lo = 0, img_hi = 1, to_img[4][4];
  unsigned char *mask = NULL; /* the body on the map's grid, or NULL */
  if (!ref) goto done;
  memcpy(p->dims, ref->dim, sizeof p->dims);
  int64_t nv = c3_volume_voxels(ref);
  if (img) {
    /* the body: above a tenth of the image's range; grey levels from its 1st to 99.5th
     * percentile (the background is black, the tissue keeps its contrast) */
    int64_t ni = c3_volume_voxels(img), nf = 0;
    double q[2] = {0.005, 0.998}, v[2];
    if ((s = c3_quantiles(img->data, ni, NULL, q, 2, v, NULL)) != CSAL3D_OK) goto done;
    double thr = v[0] + 0.1 * (v[1] - v[0]);
    unsigned char *body;
    if ((s = c3_alloc((size_t)ni, "mask", (void **)&body)) != CSAL3D_OK) goto done;
    for (int64_t i = 0; i < ni; i++) body[i] = img->data[i] > thr;
    double qf[2] = {0.01, 0.995}, f[2];
    s = c3_quantiles(img->data, ni, body, qf, 2, f, &nf);
    if (s == CSAL3D_OK && nf >= ni / 100 && f[1] > f[0]) img_lo = f[0], img_hi = f[1];
    else img_lo = v[0], img_hi = v[1] > v[0] ? v[1] : v[0] + 1;
    if (s == CSAL3D_OK && mv && nf >= ni / 100 &&
        c3_grid_equal(img->dim, img->affine, mv->dim, mv->affine, 1e-3, NULL, 0))
      mask = body;
    else
      c3_free(body);
    if (s != CSAL3D_OK) goto done;
    /* map voxel -> world -> image voxel */
    double inv[4][4];
    if (c3_affine_inverse(img->affine, inv, image) != CSAL3D_OK) {
      c3_note(p, "image", image);
      p->has_image = 0;
    } else {
      c3_affine_mul(inv, ref->affine, to_img);
    }
  }
  if (mv) {
    /* the colour scale from the map in the body (a padded border can be very uncertain) */
    double q[3] = {0.5, 0.995, 1}, v[3];
    if ((s = c3_quantiles(mv->data, nv, mask, q, 3, v, NULL)) != CSAL3D_OK) goto done;
    p->map_lo = v[0];
    p->map_hi = v[1] > v[0] ? v[1] : v[2];
    int64_t shortest = ref->dim[0];
    for (int a = 1; a < 3; a++) shortest = ref->dim[a] < shortest ? ref->dim[a] : shortest;
    int64_t r = shortest / 20 > 1 ? shortest / 20 : 1;
    /* the search keeps to the body */
    if ((s = c3_report_peak(mv->data, ref->dim, r, mask, p->at)) != CSAL3D_OK) goto done;
  } else {
    for (int a = 0; a < 3; a++) p->at[a] = ref->dim[a] / 2;
  }
  double sp[3];
  c3_affine_spacing(ref->affine, sp);
  double longest = 0;
  for (int a = 0; a < 3; a++)
    longest = (double)ref->dim[a] * sp[a] > longest ? (double)ref->dim[a] * sp[a] : longest;
  double scale = (double)size / longest; /* pixels per mm */
  for (int v = 0; v < 3 && s == CSAL3D_OK; v++) {
    int ha = c3_views[v].hor, va = c3_views[v].ver;
    int w = (int)lround((double)ref->dim[ha] * sp[ha] * scale);
    int h = (int)lround((double)ref->dim[va] * sp[va] * scale);
    p->w[v] = w < 1 ? 1 : w;
    p->h[v] = h < 1 ? 1 : h;
    size_t np = (size_t)p->w[v] * (size_t)p->h[v];
    s = c3_alloc_array(np, sizeof(float), "slice", (void **)&p->grey[v]);
    if (s == CSAL3D_OK) s = c3_alloc_array(np, sizeof(float), "slice", (void **)&p->map[v]);
    for (int y = 0; s == CSAL3D_OK && y < p->h[v]; y++)
      for (int x = 0; x < p->w[v]; x++) {
        double c[3];
        c[c3_views[v].fixed] = (double)p->at[c3_views[v].fixed];
        double u = ((double)x + 0.5) / p->w[v] * (double)ref->dim[ha] - 0.5;
        double t = ((double)y + 0.5) / p->h[v] * (double)ref->dim[va] - 0.5;
        c[ha] = c3_views[v].hor_flip ? (double)(ref->dim[ha] - 1) - u : u;
        c[va] = c3_views[v].ver_flip ? (double)(ref->dim[va] - 1) - t : t;
        size_t k = (size_t)y * p->w[v] + x;
        p->map[v][k] = mv ? (float)c3_sample(mv, c) : NAN;
        if (p->has_image) {
          double ci[3];
          for (int r = 0; r < 3; r++)
            ci[r] = to_img[r][0] * c[0] + to_img[r][1] * c[1] + to_img[r][2] * c[2] + to_img[r][3];
          double g = c3_sample(img, ci);
          p->grey[v][k] = isnan(g) ? 0.0f : (float)((g - img_lo) / (img_hi - img_lo));
        } else {
          p->grey[v][k] = NAN;
        }
      }
  }
done:
  c3_free(mask);
  csal3d_volume_free(img);
  csal3d_volume_free(mv);
  if (s != CSAL3D_OK) c3_case_planes_free(p);
  return s;
}

void c3_case_planes_free(c3_case_planes *p) {
  for (int v = 0; v < 3; v++) {
    c3_free(p->grey[v]);
    c3_free(p->map[v]);
    p->grey[v] = p->map[v] = NULL;
  }
}

csal3d_status c3_case_planes_rgb(const c3_case_planes *p, int v, double lo, double hi,
                                 uint8_t **out) {
  int w = p->w[v], h = p->h[v];
  uint8_t *rgb;
  C3_TRY(c3_alloc_array((size_t)w * (size_t)h, 3, "slice image", (void **)&rgb));
  double range = hi > lo ? hi - lo : 1;
  for (int64_t k = 0; k < (int64_t)w * h; k++) {
    double g = p->grey[v][k];
    g = isnan(g) ? 0.12 : g < 0 ? 0 : g > 1 ? 1 : g; /* no image: a dark backdrop */
    double c[3] = {g * 255, g * 255, g * 255};
    double m = p->map[v][k];
    if (!isnan(m)) {
      double t = (m - lo) / range;
      t = t < 0 ? 0 : t > 1 ? 1 : t;
      uint8_t col[3];
      c3_viridis(t, col);
      double alpha = p->has_image ? 0.85 * sqrt(t) : 1.0;
      for (int i = 0; i < 3; i++) c[i] = c[i] * (1 - alpha) + col[i] * alpha;
    }
    for (int i = 0; i < 3; i++) rgb[k * 3 + i] = (uint8_t)lround(c[i]);
  }
  /* ticks at the borders where the other two planes cross this one */
  int ha = c3_views[v].hor, va = c3_views[v].ver;
  double fx = ((double)(c3_views[v].hor_flip ? p->dims[ha] - 1 - p->at[ha] : p->at[ha]) + 0.5) /
              (double)p->dims[ha];
  double fy = ((double)(c3_views[v].ver_flip ? p->dims[va] - 1 - p->at[va] : p->at[va]) + 0.5) /
              (double)p->dims[va];
  int tx = (int)(fx * w), ty = (int)(fy * h), len = (w < h ? w : h) / 16 + 3;
  for (int i = 0; i < len; i++)
    for (int t = -1; t <= 1; t++) {
      int pts[4][2] = {{tx + t, i}, {tx + t, h - 1 - i}, {i, ty + t}, {w - 1 - i, ty + t}};
      for (int q = 0; q < 4; q++) {
        int x = pts[q][0], y = pts[q][1];
        if (x < 0 || y < 0 || x >= w || y >= h) continue;
        uint8_t *px = rgb + ((size_t)y * w + x) * 3;
        px[0] = 255, px[1] = 64, px[2] = 64;
      }
    }
  *out = rgb;
  return CSAL3D_OK;
}
