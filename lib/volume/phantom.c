/* The phantom dataset: synthetic abdominal CT volumes with organ labels, in the decathlon
 * layout, deterministic by seed (docs/phantom.md). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "core/rng.h"
#include "io/fileutil.h"
#include "volume/volume_internal.h"

enum { P_NORMAL, P_HEPATOMEGALY, P_SINGLE_KIDNEY, P_SITUS_INVERSUS, P_RENAL_TUMOUR, P_TYPES };
static const char *const c3_phantom_type_names[P_TYPES] = {
    "normal", "hepatomegaly_lesions", "single_kidney", "situs_inversus", "renal_tumour"};
static const double c3_phantom_type_freq[P_TYPES] = {0.45, 0.25, 0.15, 0.10, 0.05};

enum { L_BG = 0, L_LIVER = 1, L_SPLEEN = 2, L_KIDNEY = 3, L_LESION = 4 };

/* An organ: a deformed ellipsoid in world mm. */
typedef struct c3_blob {
  double c[3], r[3];  /* centre and semi-axes */
  double rot;         /* rotation about z (radians) */
  double amp[3], freq[3], phase[3], dir[3][3]; /* boundary harmonics */
  float hu, hu_sd;    /* intensity and its texture */
  int label;
  int present;
} c3_blob;

CSAL3D_API csal3d_status csal3d_phantom_options_init(csal3d_phantom_options *options) {
  C3_CHECK_ARG(options, "phantom_options_init: options is NULL");
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->cases = 40;
  options->seed = 0;
  options->size = 80;
  options->slices = 64;
  return CSAL3D_OK;
}

static double c3_u(c3_rng *r, double lo, double hi) { return lo + (hi - lo) * c3_rng_uniform(r); }

static void c3_blob_init(c3_blob *b, c3_rng *r, const double c[3], const double radii[3],
                         double jitter, float hu, int label) {
  memset(b, 0, sizeof *b);
  for (int i = 0; i < 3; i++) {
    b->c[i] = c[i] + c3_u(r, -jitter, jitter);
    b->r[i] = radii[i] * c3_u(r, 0.85, 1.15);
  }
  b->rot = c3_u(r, -0.35, 0.35);
  for (int k = 0; k < 3; k++) {
    b->amp[k] = c3_u(r, 0.0, k == 0 ? 0.18 : 0.08);
    b->freq[k] = c3_u(r, 1.5, 4.0);
    b->phase[k] = c3_u(r, 0, 2 * M_PI);
    double v[3], n = 0;
    for (int i = 0; i < 3; i++) v[i] = c3_rng_normal(r), n += v[i] * v[i];
    n = sqrt(n) + 1e-12;
    for (int i = 0; i < 3; i++) b->dir[k][i] = v[i] / n;
  }
  b->hu = hu;
  b->hu_sd = 6.0f;
  b->label = label;
  b->present = 1;
}

/* How far inside the blob a world point is: < 1 inside. */
static double c3_blob_level(const c3_blob *b, const double p[3]) {
  double dx = p[0] - b->c[0], dy = p[1] - b->c[1], dz = p[2] - b->c[2];
  double cr = cos(b->rot), sr = sin(b->rot);
  double q[3] = {(cr * dx + sr * dy) / b->r[0], (-sr * dx + cr * dy) / b->r[1], dz / b->r[2]};
  double rho = sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2]);
  if (rho > 1.5) return rho; /* far outside: skip the harmonics */
  double inv = rho > 1e-9 ? 1.0 / rho : 0, bump = 0;
  for (int k = 0; k < 3; k++) {
    double t = (q[0] * b->dir[k][0] + q[1] * b->dir[k][1] + q[2] * b->dir[k][2]) * inv;
    bump += b->amp[k] * sin(b->freq[k] * t * M_PI + b->phase[k]);
  }
  return rho / (1.0 + bump);
}

/* Assigns anatomy types with the target frequencies (each at least once when cases >= 10),
 * in a seeded random order. */
static csal3d_status c3_phantom_types(int cases, uint64_t seed, int *types) {
  int count[P_TYPES], total = 0;
  for (int t = 0; t < P_TYPES; t++) {
    count[t] = (int)floor(c3_phantom_type_freq[t] * cases + 0.5);
    if (cases >= 10 && count[t] < 1) count[t] = 1;
    total += count[t];
  }
  while (total > cases) { /* trim the most frequent */
    count[P_NORMAL]--;
    total--;
  }
  while (total < cases) {
    count[P_NORMAL]++;
    total++;
  }
  int64_t *idx;
  C3_TRY(c3_alloc_array((size_t)cases, sizeof *idx, "phantom types", (void **)&idx));
  int k = 0;
  for (int t = 0; t < P_TYPES; t++)
    for (int i = 0; i < count[t]; i++) idx[k++] = t;
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_DATA, 0xFA17, 0, 0);
  c3_rng_shuffle(&r, idx, (size_t)cases);
  for (int i = 0; i < cases; i++) types[i] = (int)idx[i];
  c3_free(idx);
  return CSAL3D_OK;
}

typedef struct c3_phantom_case {
  int type, hard, lps;
  int64_t dim[3];
  double spacing[3];
  double noise, contrast;
  int lesions;
} c3_phantom_case;

/* Generates one case into image (int16 HU as float) and label volumes. */
static csal3d_status c3_phantom_case_make(const csal3d_phantom_options *o, int index, int type,
                                          c3_phantom_case *info, csal3d_volume **image,
                                          csal3d_volume **label) {
  *image = *label = NULL;
  c3_rng r;
  c3_rng_init(&r, o->seed, C3_RNG_DATA, (uint64_t)index, 1, 0);
  memset(info, 0, sizeof *info);
  info->type = type;
  info->hard = c3_rng_uniform(&r) < 0.2;
  info->lps = c3_rng_uniform(&r) < 0.7; /* most CT comes from DICOM in LPS order */
  /* Grid: varied in-plane size and field of view, anisotropic slices. */
  int64_t nxy = (int64_t)floor(o->size * c3_u(&r, 0.75, 1.0) + 0.5);
  int64_t nz = (int64_t)floor(o->slices * c3_u(&r, 0.6, 1.0) + 0.5);
  nxy = nxy < 8 ? 8 : nxy, nz = nz < 8 ? 8 : nz;
  double fov = c3_u(&r, 300, 420);
  double sxy = fov / (double)nxy, sz = c3_u(&r, 2.5, 5.0) * (64.0 / (double)o->slices);
  if (sz < 1.0) sz = 1.0;
  info->dim[0] = nxy, info->dim[1] = nxy, info->dim[2] = nz;
  info->spacing[0] = sxy, info->spacing[1] = sxy, info->spacing[2] = sz;
  /* World: body centre near the origin; the scan's z range starts at a varied level. */
  double z0 = c3_u(&r, -0.25, 0.05) * (double)nz * sz; /* lowest slice, relative to kidneys */
  double a = c3_u(&r, 140, 180), b = c3_u(&r, 100, 130); /* body half-axes (x, y) */
  double bc[2] = {c3_u(&r, -15, 15), c3_u(&r, -15, 15)};
  /* Contrast and noise: hard cases have less of the one and more of the other. */
  info->contrast = info->hard ? c3_u(&r, 0.25, 0.45) : c3_u(&r, 0.8, 1.2);
  info->noise = info->hard ? c3_u(&r, 25, 40) : c3_u(&r, 8, 22);
  double size_scale = info->hard ? c3_u(&r, 0.65, 0.8) : 1.0;
  const float soft = 40.0f;
  /* Organs (RAS: +x is the patient's right). */
  double mirror = type == P_SITUS_INVERSUS ? -1.0 : 1.0;
  c3_blob organs[8];
  int norg = 0;
  double hep = type == P_HEPATOMEGALY ? 1.3 : 1.0;
  double lc[3] = {mirror * (bc[0] + 0.45 * a), bc[1] + 0.05 * b, 70};
  double lr[3] = {80 * hep * size_scale, 65 * hep * size_scale, 70 * hep * size_scale};
  c3_blob_init(&organs[norg++], &r, lc, lr, 12, soft + (float)(50 * info->contrast), L_LIVER);
  double spc[3] = {-mirror * (bc[0] + 0.55 * a), bc[1] - 0.25 * b, 80};
  double spr[3] = {32 * size_scale, 22 * size_scale, 45 * size_scale};
  c3_blob_init(&organs[norg++], &r, spc, spr, 10, soft + (float)(65 * info->contrast), L_SPLEEN);
  int missing = type == P_SINGLE_KIDNEY ? (int)c3_rng_below(&r, 2) : -1;
  for (int side = 0; side < 2; side++) {
    double kc[3] = {(side ? -1 : 1) * (bc[0] + 0.38 * a), bc[1] - 0.5 * b, 10};
    double grow = missing >= 0 ? 1.2 : 1.0;
    double kr[3] = {24 * grow * size_scale, 30 * grow * size_scale, 48 * grow * size_scale};
    c3_blob_init(&organs[norg], &r, kc, kr, 8, soft + (float)(130 * info->contrast), L_KIDNEY);
    organs[norg].present = side != missing;
    norg++;
  }
  /* Lesions: liver lesions (hypodense) or a renal tumour (the rare type). */
  if (type == P_HEPATOMEGALY) {
    info->lesions = 1 + (int)c3_rng_below(&r, 3);
    for (int k = 0; k < info->lesions; k++) {
      double rad = c3_u(&r, 6, 18) * (info->hard ? 0.7 : 1.0);
      double lcen[3] = {organs[0].c[0] + c3_u(&r, -0.5, 0.5) * organs[0].r[0],
                        organs[0].c[1] + c3_u(&r, -0.5, 0.5) * organs[0].r[1],
                        organs[0].c[2] + c3_u(&r, -0.5, 0.5) * organs[0].r[2]};
      double lrad[3] = {rad, rad, rad};
      float drop = (float)(info->hard ? c3_u(&r, 8, 15) : c3_u(&r, 25, 60));
      c3_blob_init(&organs[norg++], &r, lcen, lrad, 0, organs[0].hu - drop, L_LESION);
    }
  } else if (type == P_RENAL_TUMOUR) {
    info->lesions = 1;
    int side = organs[2].present ? 2 : 3;
    double rad = c3_u(&r, 15, 28);
    double tc[3] = {organs[side].c[0] + 0.6 * organs[side].r[0] * (side == 2 ? 1 : -1),
                    organs[side].c[1], organs[side].c[2] + c3_u(&r, -0.4, 0.4) * organs[side].r[2]};
    double trad[3] = {rad, rad * 0.9, rad * 1.1};
    c3_blob_init(&organs[norg], &r, tc, trad, 4, soft + (float)c3_u(&r, 10, 60), L_LESION);
    organs[norg++].hu_sd = 25.0f; /* heterogeneous */
  }
  /* Smooth additive bias. */
  double bias_amp = c3_u(&r, 0, 25), bias_ph[3], bias_len[3];
  for (int i = 0; i < 3; i++) bias_ph[i] = c3_u(&r, 0, 2 * M_PI), bias_len[i] = c3_u(&r, 250, 600);

  /* Affine: LPS (i towards the left, j posterior) or RAS; centred in-plane. */
  double aff[16] = {0};
  double sx = info->lps ? -sxy : sxy, sy = info->lps ? -sxy : sxy;
  aff[0] = sx, aff[5] = sy, aff[10] = sz, aff[15] = 1;
  aff[3] = -sx * (double)(nxy - 1) / 2.0;
  aff[7] = -sy * (double)(nxy - 1) / 2.0;
  aff[11] = z0;
  csal3d_status s = csal3d_volume_create(1, info->dim, NULL, aff, image);
  if (s == CSAL3D_OK) s = csal3d_volume_create(1, info->dim, NULL, aff, label);
  float *noise = NULL;
  const int64_t vox = nxy * nxy * nz;
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)vox, sizeof(float), "phantom noise", (void **)&noise);
  if (s != CSAL3D_OK) {
    csal3d_volume_free(*image), csal3d_volume_free(*label);
    *image = *label = NULL;
    c3_free(noise);
    return s;
  }
  c3_rng nr;
  c3_rng_init(&nr, o->seed, C3_RNG_DATA, (uint64_t)index, 2, 0);
  c3_rng_fill_normal(&nr, noise, (size_t)vox, 0.0f, 1.0f);
  float *img = (*image)->data, *lab = (*label)->data;
  /* Voxel (i, j, k) of the [D][H][W] = [i][j][k] array is at world aff * (i, j, k). */
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < nxy; i++)
    for (int64_t j = 0; j < nxy; j++)
      for (int64_t k = 0; k < nz; k++) {
        double p[3] = {sx * (double)i + aff[3], sy * (double)j + aff[7], sz * (double)k + z0};
        int64_t o_ = (i * nxy + j) * nz + k;
        double ex = (p[0] - bc[0]) / a, ey = (p[1] - bc[1]) / b, e = sqrt(ex * ex + ey * ey);
        double hu = -1000, sd = 5;
        int l = L_BG;
        if (e < 1.0) {
          hu = e > 1.0 - 15.0 / b ? -100 : soft; /* subcutaneous fat, then soft tissue */
          sd = 8;
          /* Spine: a vertebral body behind the organs, cortical rim. */
          double vx = p[0] - bc[0], vy = p[1] - (bc[1] - 0.62 * b);
          double vr = sqrt(vx * vx + vy * vy);
          if (vr < 20) hu = vr > 16 ? 700 : 300;
          for (int g = 0; g < norg; g++) {
            if (!organs[g].present) continue;
            if (organs[g].label == L_LESION && l != L_LIVER && organs[g].hu_sd < 20) continue;
            if (c3_blob_level(&organs[g], p) < 1.0) {
              hu = organs[g].hu;
              sd = organs[g].hu_sd;
              l = organs[g].label;
            }
          }
          hu += bias_amp * sin(2 * M_PI * p[0] / bias_len[0] + bias_ph[0]) *
                cos(2 * M_PI * p[1] / bias_len[1] + bias_ph[1]) *
                cos(2 * M_PI * p[2] / bias_len[2] + bias_ph[2]);
        }
        double v = hu + (sd + info->noise) * noise[o_];
        v = floor(v + 0.5);
        img[o_] = (float)(v < -1024 ? -1024 : v > 3071 ? 3071 : v);
        lab[o_] = (float)l;
      }
  c3_free(noise);
  (*label)->is_label = 1;
  return CSAL3D_OK;
}

static csal3d_status c3_mkdir(const char *path) {
  if (mkdir(path, 0755) == 0 || errno == EEXIST) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return CSAL3D_OK;
    return c3_error(CSAL3D_ERR_IO, "%s: exists and is not a folder", path);
  }
  return c3_error(CSAL3D_ERR_IO, "%s: cannot create the folder: %s", path, strerror(errno));
}

CSAL3D_API csal3d_status csal3d_phantom_generate(const char *folder,
                                                 const csal3d_phantom_options *options,
                                                 const csal3d_context *ctx) {
  C3_CHECK_ARG(folder && *folder, "phantom_generate: folder is NULL or empty");
  csal3d_phantom_options o;
  csal3d_phantom_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_phantom_options"));
  C3_CHECK_ARG(o.cases >= 1 && o.cases <= 100000, "phantom_generate: cases %d not in 1..100000",
               o.cases);
  C3_CHECK_ARG(o.size >= 16 && o.size <= 1024, "phantom_generate: size %d not in 16..1024",
               o.size);
  C3_CHECK_ARG(o.slices >= 8 && o.slices <= 1024,
               "phantom_generate: slices %d not in 8..1024", o.slices);
  char path[4200], images[4096], labels[4096];
  snprintf(images, sizeof images, "%s/imagesTr", folder);
  snprintf(labels, sizeof labels, "%s/labelsTr", folder);
  C3_TRY(c3_mkdir(folder));
  C3_TRY(c3_mkdir(images));
  C3_TRY(c3_mkdir(labels));
  int *types;
  C3_TRY(c3_alloc_array((size_t)o.cases, sizeof *types, "phantom types", (void **)&types));
  csal3d_status s = c3_phantom_types(o.cases, o.seed, types);
  json_t *root = json_object(), *training = json_array(), *meta = json_array();
  if (!root || !training || !meta) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "phantom: json");
  csal3d_volume_save_options so;
  csal3d_volume_save_options_init(&so);
  for (int i = 0; s == CSAL3D_OK && i < o.cases; i++) {
    s = c3_progress(ctx, "phantom", (uint64_t)i, (uint64_t)o.cases);
    if (s != CSAL3D_OK) break;
    c3_phantom_case info;
    csal3d_volume *img, *lab;
    s = c3_phantom_case_make(&o, i, types[i], &info, &img, &lab);
    if (s != CSAL3D_OK) break;
    char id[32];
    snprintf(id, sizeof id, "phantom_%03d", i);
    so.dtype = CSAL3D_SAVE_INT16;
    snprintf(path, sizeof path, "%s/%s.nii.gz", images, id);
    s = csal3d_volume_save(img, path, &so);
    so.dtype = CSAL3D_SAVE_UINT8;
    snprintf(path, sizeof path, "%s/%s.nii.gz", labels, id);
    if (s == CSAL3D_OK) s = csal3d_volume_save(lab, path, &so);
    csal3d_volume_free(img);
    csal3d_volume_free(lab);
    if (s != CSAL3D_OK) break;
    char ip[64], lp[64];
    snprintf(ip, sizeof ip, "./imagesTr/%s.nii.gz", id);
    snprintf(lp, sizeof lp, "./labelsTr/%s.nii.gz", id);
    json_array_append_new(training, json_pack("{s:s, s:s}", "image", ip, "label", lp));
    json_array_append_new(
        meta, json_pack("{s:s, s:s, s:b, s:i, s:[I,I,I], s:[f,f,f], s:s, s:f, s:f}", "case", id,
                        "type", c3_phantom_type_names[info.type], "hard", info.hard, "lesions",
                        info.lesions, "shape", (json_int_t)info.dim[0], (json_int_t)info.dim[1],
                        (json_int_t)info.dim[2], "spacing", info.spacing[0], info.spacing[1],
                        info.spacing[2], "orientation", info.lps ? "LPS" : "RAS", "noise_hu",
                        info.noise, "contrast", info.contrast));
  }
  c3_free(types);
  if (s == CSAL3D_OK) {
    json_object_set_new(root, "name", json_string("csal3d phantom"));
    json_object_set_new(root, "description",
                        json_string("Synthetic abdominal CT for libcsal3d: five anatomy types "
                                    "of unequal frequency, hard cases; see docs/phantom.md"));
    json_object_set_new(root, "reference", json_string("libcsal3d"));
    json_object_set_new(root, "licence", json_string("Apache-2.0"));
    json_object_set_new(root, "tensorImageSize", json_string("3D"));
    json_object_set_new(root, "modality", json_pack("{s:s}", "0", "CT"));
    json_object_set_new(root, "labels", json_pack("{s:s, s:s, s:s, s:s, s:s}", "0", "background",
                                                  "1", "liver", "2", "spleen", "3", "kidney",
                                                  "4", "lesion"));
    json_object_set_new(root, "numTraining", json_integer(o.cases));
    json_object_set_new(root, "numTest", json_integer(0));
    json_object_set_new(root, "training", training);
    json_object_set_new(root, "test", json_array());
    json_object_set_new(root, "phantom_seed", json_integer((json_int_t)o.seed));
    json_object_set_new(root, "phantom", meta);
    training = meta = NULL;
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    if (!text) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "phantom: dataset.json");
    snprintf(path, sizeof path, "%s/dataset.json", folder);
    if (s == CSAL3D_OK) s = c3_write_file_atomic(path, text, strlen(text));
    free(text);
  }
  json_decref(training);
  json_decref(meta);
  json_decref(root);
  if (s == CSAL3D_OK) s = c3_progress(ctx, "phantom", (uint64_t)o.cases, (uint64_t)o.cases);
  return s;
}
