/* Tests of the report page (include/csal3d/report.h, lib/pipeline/report*.c): the PCA's
 * known answers, the overlap matrix, the manifests and evaluation files read back (and
 * refused), the peak of an uncertainty map, PNG through libpng, and whole pages: self-
 * contained (nothing outside themselves; every <img> a PNG data URI that libpng decodes),
 * quick at 10,000 cases (a sampled scatter, said on the page), checked before work.
 *
 * Also a helper for tests/report_test.sh: `test_report --fixture DIR` writes a small
 * dataset (images, maps, scores file, two manifests, evaluation results) and
 * `test_report --png-stats FILE` prints "WIDTH HEIGHT COLOURS NONWHITE_PERCENT" of a PNG. */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "csal3d/csal3d.h"
#include "pipeline/report.h"

static char dir[256];

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/csal3d_report_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  ck_assert_int_eq(system(cmd), 0);
}

static const char *P(const char *name) {
  static char bufs[64][1024]; /* each test takes fewer: they stay valid through it */
  static int k;
  char *b = bufs[k++ % 64];
  snprintf(b, 1024, "%s/%s", dir, name);
  return b;
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

/* The points of the feature space: <circle>s in its <g class="pts">. */
static int scatter_points(const char *html) {
  const char *g = strstr(html, "<g class=\"pts\">");
  ck_assert_ptr_nonnull(g);
  const char *end = strstr(g, "</g>");
  int n = 0;
  for (const char *p = g; (p = strstr(p, "<circle ")) && p < end; p++) n++;
  return n;
}

#define CHECK_OK(expr) ck_assert_msg((expr) == CSAL3D_OK, "%s: %s", #expr, csal3d_last_error())

/* ---- the fixture: a small dataset with images, maps, a scores file, manifests ---- */

#define FX_N 12
#define FX_D 8
static const int64_t fx_dims[3] = {20, 24, 16};

/* Case c's hot spot of uncertainty (voxel D, H, W), inside the body. */
static void fx_hot(int c, int64_t at[3]) {
  at[0] = 6 + c % 8, at[1] = 8 + (c * 5) % 8, at[2] = 5 + c % 6;
}

/* Writes DIR/img/case_NN.nii.gz, DIR/maps/case_NN_uncertainty.nii.gz, DIR/scores.safetensors
 * (maps recorded), DIR/urds.json and DIR/random.json (4 cases each, from the sampler),
 * DIR/eval.csv; returns the table (caller frees). */
static csal3d_scores *make_fixture(const char *d) {
  char path[1024], mp[1024];
  snprintf(path, sizeof path, "%s/img", d);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/maps", d);
  mkdir(path, 0755);
  int64_t nv = fx_dims[0] * fx_dims[1] * fx_dims[2];
  float *img = malloc((size_t)nv * sizeof *img), *map = malloc((size_t)nv * sizeof *map);
  double aff[16] = {1, 0, 0, -10, 0, 1, 0, -12, 0, 0, 2, -16, 0, 0, 0, 1}; /* 2 mm along W */
  csal3d_scores *s = NULL;
  CHECK_OK(csal3d_scores_create(FX_N, FX_D, &s));
  float feat[FX_N * FX_D], score[FX_N];
  for (int c = 0; c < FX_N; c++) {
    int64_t hot[3];
    fx_hot(c, hot);
    double sum = 0;
    for (int64_t i = 0; i < nv; i++) {
      int64_t x = i / (fx_dims[1] * fx_dims[2]), y = i / fx_dims[2] % fx_dims[1], z = i % fx_dims[2];
      double ex = (x - 9.5) / 8.5, ey = (y - 11.5) / 10.5, ez = (z - 7.5) / 7.0;
      int body = ex * ex + ey * ey + ez * ez < 1;
      img[i] = body ? (float)(300 + 40 * sin(0.7 * x + 0.3 * y + c)) : -900.0f;
      double r2 = (double)((x - hot[0]) * (x - hot[0]) + (y - hot[1]) * (y - hot[1]) +
                           (z - hot[2]) * (z - hot[2]));
      /* the hot spot, background noise, and a bright face at x = 0 outside the body that
       * the search must ignore */
      map[i] = (float)(0.01 + 0.005 * ((i * 7919) % 13) / 13.0 + exp(-r2 / 6.0) +
                       (x == 0 ? 3.0 : 0.0));
      sum += map[i];
    }
    csal3d_volume *v = NULL;
    snprintf(path, sizeof path, "%s/img/case_%02d.nii.gz", d, c);
    CHECK_OK(csal3d_volume_create(1, fx_dims, img, aff, &v));
    CHECK_OK(csal3d_volume_save(v, path, NULL));
    csal3d_volume_free(v);
    snprintf(mp, sizeof mp, "%s/maps/case_%02d_uncertainty.nii.gz", d, c);
    CHECK_OK(csal3d_volume_create(1, fx_dims, map, aff, &v));
    CHECK_OK(csal3d_volume_save(v, mp, NULL));
    csal3d_volume_free(v);
    score[c] = (float)(sum / (double)nv);
    for (int k = 0; k < FX_D; k++)
      feat[c * FX_D + k] = (float)(sin(1.3 * c + 0.7 * k) + (c % 3 == k % 3 ? 2.0 : 0.0));
    char id[32];
    snprintf(id, sizeof id, "case_%02d", c);
    const char *imgs[1] = {path};
    CHECK_OK(csal3d_scores_set_case(s, c, id, imgs, 1, NULL, score[c], feat + c * FX_D));
    CHECK_OK(csal3d_scores_set_case_map(s, c, mp));
  }
  free(img);
  free(map);
  CHECK_OK(csal3d_scores_set_metadata(s, "modality", "ct"));
  snprintf(path, sizeof path, "%s/scores.safetensors", d);
  CHECK_OK(csal3d_scores_save(s, path));
  /* two selections from the sampler, written as csal3d select writes them */
  csal3d_context *ctx = NULL;
  CHECK_OK(csal3d_context_create(NULL, &ctx));
  const csal3d_strategy st[2] = {CSAL3D_STRATEGY_URDS, CSAL3D_STRATEGY_RANDOM};
  const char *names[2] = {"urds.json", "random.json"};
  for (int k = 0; k < 2; k++) {
    csal3d_sampler_options so;
    csal3d_sampler_options_init(&so);
    so.strategy = st[k];
    so.use_seed = 1;
    so.seed = 3;
    csal3d_sampler *smp = NULL;
    CHECK_OK(csal3d_sampler_create(ctx, &so, &smp));
    CHECK_OK(csal3d_sampler_set_features(smp, feat, FX_N, FX_D));
    CHECK_OK(csal3d_sampler_set_scores(smp, score, FX_N));
    CHECK_OK(csal3d_sampler_select(smp, 4));
    csal3d_selection rec[4];
    int64_t got = 0, assign[FX_N], na = 0;
    CHECK_OK(csal3d_sampler_get_selection(smp, rec, sizeof rec[0], 4, &got));
    CHECK_OK(csal3d_sampler_get_assignment(smp, assign, FX_N, &na));
    csal3d_manifest_options mo;
    csal3d_manifest_options_init(&mo);
    mo.strategy = st[k];
    mo.assignment = assign;
    snprintf(path, sizeof path, "%s/%s", d, names[k]);
    CHECK_OK(csal3d_manifest_write(s, rec, sizeof rec[0], got, &mo, NULL, path));
    csal3d_sampler_free(smp);
  }
  csal3d_context_free(ctx);
  snprintf(path, sizeof path, "%s/eval.csv", d);
  write_text(path, "strategy,budget,seed,mean_dice,note\n"
                   "urds,4,0,0.71,a\nurds,4,1,0.74,b\nrandom,4,0,0.62,c\nrandom,4,1,0.66,d\n"
                   "urds,8,0,0.80,e\nrandom,8,0,0.75,f\n");
  return s;
}

/* ---- PNG decoding (libpng's simplified API) ---- */

/* Decodes a PNG held in memory into RGB; returns 0 on failure. */
static int png_decode(const void *data, size_t len, int *w, int *h, unsigned char **rgb) {
  png_image im;
  memset(&im, 0, sizeof im);
  im.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&im, data, len)) return 0;
  im.format = PNG_FORMAT_RGB;
  *rgb = malloc(PNG_IMAGE_SIZE(im));
  if (!png_image_finish_read(&im, NULL, *rgb, 0, NULL)) {
    free(*rgb);
    *rgb = NULL;
    return 0;
  }
  *w = (int)im.width, *h = (int)im.height;
  return 1;
}

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decodes base64 up to the first character that is not base64; NULL on a bad length. */
static unsigned char *b64_decode(const char *s, size_t *len) {
  size_t n = 0;
  while (b64_value(s[n]) >= 0) n++;
  size_t pad = 0;
  while (s[n + pad] == '=') pad++;
  if ((n + pad) % 4) return NULL;
  unsigned char *out = malloc(n * 3 / 4 + 3);
  size_t k = 0;
  for (size_t i = 0; i + 1 < n; i += 4) {
    uint32_t v = 0;
    int m = 0;
    for (int j = 0; j < 4; j++) {
      int b = i + j < n ? b64_value(s[i + j]) : 0;
      v = v << 6 | (uint32_t)b;
      m += i + j < n;
    }
    out[k++] = (unsigned char)(v >> 16);
    if (m > 2) out[k++] = (unsigned char)(v >> 8);
    if (m > 3) out[k++] = (unsigned char)v;
  }
  *len = k;
  return out;
}

/* The page refers to nothing outside itself, and every <img> is a PNG data URI that
 * decodes at the size its attributes give. Returns the number of images. */
static int check_self_contained(const char *html) {
  static const char *banned[] = {"http:", "https:", "ftp:", "file:", "<script", "<link",
                                 "@import", "<iframe", "<object", "<embed", "url(", "\"//",
                                 "'//", "xlink:href"};
  for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
    ck_assert_msg(strcasestr(html, banned[i]) == NULL, "the page holds '%s'", banned[i]);
  static const char *attrs[] = {" src=\"", " href=\""};
  for (int a = 0; a < 2; a++)
    for (const char *p = html; (p = strstr(p, attrs[a])); p++) {
      const char *v = p + strlen(attrs[a]);
      ck_assert_msg(!strncmp(v, "data:", 5) || *v == '#', "%.40s refers outside the page", p);
    }
  int images = 0;
  for (const char *p = html; (p = strstr(p, "<img ")); p++) {
    images++;
    const char *end = strchr(p, '>');
    ck_assert_ptr_nonnull(end);
    const char *src = strstr(p, " src=\"data:image/png;base64,");
    ck_assert_msg(src && src < end, "an <img> without a PNG data URI: %.60s", p);
    int aw = 0, ah = 0;
    ck_assert_int_eq(sscanf(strstr(p, "width=\""), "width=\"%d\" height=\"%d\"", &aw, &ah), 2);
    size_t len = 0;
    unsigned char *png = b64_decode(src + strlen(" src=\"data:image/png;base64,"), &len);
    ck_assert_msg(png != NULL, "image %d: bad base64", images);
    int w = 0, h = 0;
    unsigned char *rgb = NULL;
    ck_assert_msg(png_decode(png, len, &w, &h, &rgb), "image %d: libpng cannot decode it",
                  images);
    ck_assert_int_eq(w, aw);
    ck_assert_int_eq(h, ah);
    free(rgb);
    free(png);
  }
  return images;
}

/* ---- known answers ---- */

START_TEST(pca_known_answer) {
  /* columns of +-1 patterns that are orthogonal and balanced, scaled 3, 2, 1 and rotated:
   * the covariance's eigenvalues are 9, 4, 1 (over n - 1), so the axes hold 9/14 and
   * 4/14 of the variance and project onto +-3 and +-2 */
  enum { N = 64 };
  const double c = cos(0.6), s = sin(0.6), c2 = cos(1.1), s2 = sin(1.1);
  const double R[3][3] = {{c, -s, 0}, {s * c2, c * c2, -s2}, {s * s2, c * s2, c2}};
  float X[N * 3];
  for (int i = 0; i < N; i++) {
    double v[3] = {3.0 * (i & 1 ? 1 : -1), 2.0 * (i & 2 ? 1 : -1), 1.0 * (i & 4 ? 1 : -1)};
    for (int r = 0; r < 3; r++)
      X[i * 3 + r] = (float)(5.0 + R[r][0] * v[0] + R[r][1] * v[1] + R[r][2] * v[2]);
  }
  double Y[N * 2], frac[2];
  CHECK_OK(c3_report_pca(X, N, 3, Y, frac));
  ck_assert_double_eq_tol(frac[0], 9.0 / 14, 1e-5);
  ck_assert_double_eq_tol(frac[1], 4.0 / 14, 1e-5);
  double sign0 = Y[0] / -3.0, sign1 = Y[1] / -2.0; /* case 0 has -3, -2 */
  ck_assert_double_eq_tol(fabs(sign0), 1, 1e-5);
  ck_assert_double_eq_tol(fabs(sign1), 1, 1e-5);
  for (int i = 0; i < N; i++) {
    ck_assert_double_eq_tol(Y[i * 2], sign0 * 3.0 * (i & 1 ? 1 : -1), 1e-4);
    ck_assert_double_eq_tol(Y[i * 2 + 1], sign1 * 2.0 * (i & 2 ? 1 : -1), 1e-4);
  }
  /* one dimension: one axis with everything; equal features: nothing */
  float x1[4] = {1, 2, 3, 6};
  CHECK_OK(c3_report_pca(x1, 4, 1, Y, frac));
  ck_assert_double_eq_tol(frac[0], 1, 1e-12);
  ck_assert_double_eq(frac[1], 0);
  ck_assert_double_eq_tol(Y[6] - Y[0], 5, 1e-6);
  ck_assert_double_eq(Y[7], 0);
  float same[6] = {2, 2, 2, 2, 2, 2};
  CHECK_OK(c3_report_pca(same, 3, 2, Y, frac));
  ck_assert_double_eq(frac[0] + frac[1], 0);
  for (int i = 0; i < 6; i++) ck_assert_double_eq(Y[i], 0);
}
END_TEST

START_TEST(overlap_matrix) {
  int64_t a[4] = {0, 3, 5, 7}, b[3] = {5, 1, 0}, c[2] = {9, 8};
  c3_report_sel sel[3];
  memset(sel, 0, sizeof sel);
  sel[0].index = a, sel[0].count = 4;
  sel[1].index = b, sel[1].count = 3;
  sel[2].index = c, sel[2].count = 2;
  int64_t M[9];
  CHECK_OK(c3_report_overlap(sel, 3, 10, M));
  const int64_t want[9] = {4, 2, 0, 2, 3, 0, 0, 0, 2};
  for (int i = 0; i < 9; i++) ck_assert_int_eq(M[i], want[i]);
}
END_TEST

START_TEST(peak_of_a_map) {
  const int64_t dims[3] = {12, 10, 14};
  int64_t nv = 12 * 10 * 14, at[3];
  float *m = calloc((size_t)nv, sizeof *m);
  /* a 3x3x3 block of 1 around (7, 4, 9) and one voxel of 5 at (2, 2, 2): the box mean
   * (r = 1) is 1 at the block's centre, 5/27 at the single voxel */
  for (int x = 6; x <= 8; x++)
    for (int y = 3; y <= 5; y++)
      for (int z = 8; z <= 10; z++) m[(x * 10 + y) * 14 + z] = 1;
  m[(2 * 10 + 2) * 14 + 2] = 5;
  CHECK_OK(c3_report_peak(m, dims, 1, NULL, at));
  ck_assert_int_eq(at[0], 7);
  ck_assert_int_eq(at[1], 4);
  ck_assert_int_eq(at[2], 9);
  /* a mask without the block: the single voxel's neighbourhood wins */
  unsigned char *mask = calloc((size_t)nv, 1);
  for (int64_t i = 0; i < nv; i++) mask[i] = i / 140 < 5;
  CHECK_OK(c3_report_peak(m, dims, 1, mask, at));
  ck_assert_int_eq(at[0] <= 3 && at[1] <= 3 && at[2] <= 3, 1);
  /* a high border face is skipped when the volume is wide enough */
  for (int y = 0; y < 10; y++)
    for (int z = 0; z < 14; z++) m[(0 * 10 + y) * 14 + z] = 50;
  CHECK_OK(c3_report_peak(m, dims, 1, NULL, at));
  ck_assert_int_eq(at[0], 7);
  free(mask);
  free(m);
}
END_TEST

START_TEST(png_round_trip_and_colours) {
  enum { W = 37, H = 11 };
  uint8_t rgb[W * H * 3];
  for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 31 % 251);
  uint8_t *png = NULL;
  size_t len = 0;
  CHECK_OK(c3_png_rgb(rgb, W, H, &png, &len));
  ck_assert(len > 8 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
  int w, h;
  unsigned char *back = NULL;
  ck_assert(png_decode(png, len, &w, &h, &back));
  ck_assert_int_eq(w, W);
  ck_assert_int_eq(h, H);
  ck_assert_int_eq(memcmp(back, rgb, sizeof rgb), 0);
  free(back);
  c3_free(png);
  ck_assert_int_eq(c3_png_rgb(rgb, 0, H, &png, &len), CSAL3D_ERR_INVALID_ARGUMENT);
  /* viridis's ends, clamping; cluster colours distinct */
  uint8_t c[3];
  c3_viridis(0, c);
  ck_assert(c[0] == 0x44 && c[1] == 0x01 && c[2] == 0x54);
  c3_viridis(1, c);
  ck_assert(c[0] == 0xfd && c[1] == 0xe7 && c[2] == 0x25);
  c3_viridis(NAN, c);
  ck_assert(c[0] == 0x44);
  char a[8], b[8];
  for (int i = 0; i < 30; i++)
    for (int j = 0; j < i; j++) {
      c3_cluster_colour(i, a);
      c3_cluster_colour(j, b);
      ck_assert_msg(strcmp(a, b), "clusters %d and %d share %s", i, j, a);
    }
}
END_TEST

/* ---- inputs ---- */

START_TEST(selections_read_back_and_refused) {
  csal3d_scores *s = make_fixture(dir);
  c3_report_sel sel;
  CHECK_OK(c3_report_read_selection(s, P("urds.json"), &sel));
  ck_assert_str_eq(sel.strategy, "urds");
  ck_assert_int_eq(sel.count, 4);
  ck_assert_ptr_nonnull(sel.assign);
  ck_assert_int_eq(sel.n_clusters, 4);
  for (int64_t k = 0; k < 4; k++) {
    ck_assert_int_eq(sel.assign[sel.index[k]], sel.cluster[k]);
    ck_assert_str_eq(sel.rule[k], "urds");
    ck_assert(isfinite(sel.typicality[k]) || isinf(sel.typicality[k]));
  }
  c3_report_sel_free(&sel);
  CHECK_OK(c3_report_read_selection(s, P("random.json"), &sel));
  ck_assert_ptr_null(sel.assign); /* random has no clusters */
  ck_assert(isnan(sel.typicality[0]));
  c3_report_sel_free(&sel);
  /* refused: missing, not JSON, not a manifest, another table's */
  ck_assert_int_eq(c3_report_read_selection(s, P("none.json"), &sel), CSAL3D_ERR_IO);
  write_text(P("bad.json"), "{ nope");
  ck_assert_int_eq(c3_report_read_selection(s, P("bad.json"), &sel), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not JSON"));
  write_text(P("other.json"), "{\"format\": \"something\"}");
  ck_assert_int_eq(c3_report_read_selection(s, P("other.json"), &sel), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "not a csal3d manifest"));
  write_text(P("ghost.json"), "{\"format\": \"csal3d-manifest\", \"n_cases\": 12, \"strategy\": "
                              "\"urds\", \"selection\": [{\"case\": \"case_99\"}]}");
  ck_assert_int_eq(c3_report_read_selection(s, P("ghost.json"), &sel), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "case_99"));
  write_text(P("n.json"), "{\"format\": \"csal3d-manifest\", \"n_cases\": 13, \"selection\": []}");
  ck_assert_int_eq(c3_report_read_selection(s, P("n.json"), &sel), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "13 cases"));
  csal3d_scores_free(s);
}
END_TEST

START_TEST(evaluation_files) {
  c3_eval_run *r = NULL;
  size_t n = 0, out = 0;
  /* CSV: columns in any order and case, quotes, CRLF, a BOM, an empty line, extras */
  write_text(P("e.csv"), "\xef\xbb\xbfSeed,Mean_Dice,\"strategy\",budget,extra\r\n"
                         "0,0.5,urds,10,x\r\n\r\n1,0.7,\"ty,pi\",10,\"a \"\"b\"\"\"\r\n");
  CHECK_OK(c3_report_read_evaluation(P("e.csv"), &r, &n, &out));
  ck_assert_int_eq(n, 2);
  ck_assert_int_eq(out, 0);
  ck_assert_str_eq(r[0].strategy, "urds");
  ck_assert_int_eq(r[0].budget, 10);
  ck_assert_int_eq(r[0].seed, 0);
  ck_assert_double_eq(r[0].dice, 0.5);
  ck_assert_str_eq(r[1].strategy, "ty,pi");
  ck_assert_int_eq(r[1].seed, 1);
  c3_free(r);
  /* csal3d evaluate's results: case rows and a "mean" row per run; a given selection
   * (no seed); a run without a defined Dice left out */
  write_text(P("runs.csv"),
             "strategy,budget,seed,train_seed,case,dice_1,dice_2,mean_dice\n"
             "urds,5,0,0,hippocampus_300,0.8,0.7,0.75\nurds,5,0,0,mean,0.8,0.7,0.75\n"
             "random,5,1,0,hippocampus_300,0.6,0.5,0.55\nrandom,5,1,0,mean,0.6,0.5,0.55\n"
             "given,5,,0,mean,0.9,0.9,0.9\nrandom,5,2,0,mean,nan,nan,nan\n");
  CHECK_OK(c3_report_read_evaluation(P("runs.csv"), &r, &n, &out));
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(out, 1);
  ck_assert_str_eq(r[1].strategy, "random");
  ck_assert_double_eq(r[1].dice, 0.55);
  ck_assert_int_eq(r[2].seed, -1);
  c3_free(r);
  /* JSON: an array, or {"runs": [...]} as csal3d evaluate writes it */
  write_text(P("e.json"), "{\"labels\": 2, \"runs\": [{\"strategy\": \"random\", \"budget\": 5, "
                          "\"seed\": 2, \"train_seed\": 0, \"mean_dice\": 0.25, \"dice\": [0.2, 0.3]}, "
                          "{\"strategy\": \"given\", \"budget\": 5, \"seed\": null, "
                          "\"mean_dice\": null}]}");
  CHECK_OK(c3_report_read_evaluation(P("e.json"), &r, &n, &out));
  ck_assert_int_eq(n, 1);
  ck_assert_int_eq(out, 1);
  ck_assert_str_eq(r[0].strategy, "random");
  ck_assert_int_eq(r[0].budget, 5);
  ck_assert_double_eq(r[0].dice, 0.25);
  c3_free(r);
  write_text(P("a.json"), "[{\"strategy\": \"urds\", \"budget\": \"5\", \"seed\": 0, "
                          "\"mean_dice\": 1}]");
  CHECK_OK(c3_report_read_evaluation(P("a.json"), &r, &n, &out));
  ck_assert_int_eq(r[0].budget, 5);
  c3_free(r);
  /* refused, naming the line or the run and the value */
  static const struct {
    const char *text, *says;
  } bad[] = {
      {"strategy,budget,seed\nurds,1,0\n", "no column 'mean_dice'"},
      {"strategy,budget,runs,mean_dice,sd_dice\nurds,10,3,0.8,0.01\n", "a table of means"},
      {"strategy,budget,seed,mean_dice\nurds,ten,0,0.5\n", "line 2: the budget 'ten'"},
      {"strategy,budget,seed,mean_dice\nurds,1,0,0.5\nurds,1,1,inf\n", "line 3: mean_dice 'inf'"},
      {"strategy,budget,seed,mean_dice\nurds,1,-3,0.5\n", "line 2: the seed '-3'"},
      {"strategy,budget,seed,mean_dice\nurds,1,0\n", "line 2: 3 fields"},
      {"strategy,budget,seed,mean_dice\n", "no run"},
      {"strategy,budget,seed,mean_dice\nurds,1,0,nan\n", "no run with a mean Dice"},
      {"strategy,budget,seed,mean_dice\n,1,0,0.5\n", "the strategy is empty"},
      {"[{\"strategy\": \"u\", \"budget\": 0, \"seed\": 0, \"mean_dice\": 0.5}]", "run 1: the budget '0'"},
      {"[{\"strategy\": \"u\", \"budget\": 1, \"seed\": 0}]", "mean_dice '(missing)'"},
      {"{\"x\": 1}", "expected an array of runs"},
      {"[1, 2", "not JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text(P("bad"), bad[i].text);
    ck_assert_int_eq(c3_report_read_evaluation(P("bad"), &r, &n, &out), CSAL3D_ERR_FORMAT);
    ck_assert_msg(strstr(csal3d_last_error(), bad[i].says), "case %zu: '%s' lacks '%s'", i,
                  csal3d_last_error(), bad[i].says);
    ck_assert_ptr_null(r);
  }
  ck_assert_int_eq(c3_report_read_evaluation(P("missing.csv"), &r, &n, &out), CSAL3D_ERR_IO);
}
END_TEST

/* ---- whole pages ---- */

static int cancel_at_two(void *user, const char *stage, uint64_t done, uint64_t total) {
  (void)user, (void)total;
  return !strcmp(stage, "report") && done == 2;
}

START_TEST(page_is_self_contained) {
  csal3d_scores *s = make_fixture(dir);
  const char *sels[2] = {P("urds.json"), P("random.json")};
  csal3d_report_options o;
  CHECK_OK(csal3d_report_options_init(&o));
  o.selections = sels;
  o.n_selections = 2;
  o.evaluation = P("eval.csv");
  o.scores_path = P("scores.safetensors");
  o.title = "A <test> & \"page\"";
  CHECK_OK(csal3d_report_write(s, &o, P("page.html"), NULL));
  size_t len = 0;
  char *html = read_all(P("page.html"), &len);
  ck_assert_ptr_nonnull(strstr(html, "<!DOCTYPE html>"));
  ck_assert_ptr_nonnull(strstr(html, "</html>"));
  ck_assert_ptr_nonnull(strstr(html, "A &lt;test&gt; &amp; &quot;page&quot;"));
  int images = check_self_contained(html);
  /* the chosen cases (both selections, each once) with three slices each */
  c3_report_sel a, b;
  CHECK_OK(c3_report_read_selection(s, sels[0], &a));
  CHECK_OK(c3_report_read_selection(s, sels[1], &b));
  int64_t M[4];
  c3_report_sel both[2] = {a, b};
  CHECK_OK(c3_report_overlap(both, 2, FX_N, M));
  int64_t distinct = a.count + b.count - M[1];
  ck_assert_int_eq(images, 3 * distinct);
  /* each shown case's slices cross its hot spot (the map's peak in the body), not the
   * bright face at x = 0 */
  for (int64_t k = 0; k < a.count; k++) {
    c3_case_planes p;
    char map[1024];
    snprintf(map, sizeof map, "%s/maps/case_%02" PRId64 "_uncertainty.nii.gz", dir, a.index[k]);
    char img[1024];
    snprintf(img, sizeof img, "%s/img/case_%02" PRId64 ".nii.gz", dir, a.index[k]);
    CHECK_OK(c3_case_planes_make(img, map, 96, &p));
    int64_t hot[3];
    fx_hot((int)a.index[k], hot);
    for (int ax = 0; ax < 3; ax++) ck_assert_int_eq(p.at[ax], hot[ax]);
    ck_assert(p.has_image && p.has_map && !p.note[0]);
    /* mm-true: W has 2 mm voxels, so the axial view (D x H) and the sagittal (H x W) */
    ck_assert_int_eq(p.w[0], 60); /* 32 mm along W is the longest side: 3 px per mm */
    ck_assert_int_eq(p.h[0], 72);
    ck_assert_int_eq(p.w[2], 72);
    ck_assert_int_eq(p.h[2], 96);
    c3_case_planes_free(&p);
  }
  /* the sections and what they state */
  ck_assert_ptr_nonnull(strstr(html, "id=\"space\""));
  ck_assert_ptr_nonnull(strstr(html, "of the variance"));
  ck_assert_ptr_nonnull(strstr(html, "id=\"scores\""));
  ck_assert_ptr_nonnull(strstr(html, "id=\"selections\""));
  ck_assert_ptr_nonnull(strstr(html, "id=\"evaluation\""));
  ck_assert_ptr_nonnull(strstr(html, "urds, budget 4: 0.725 +- 0.02121 over 2 seeds"));
  ck_assert_ptr_null(strstr(html, "random sample")); /* 12 cases: all drawn */
  ck_assert_int_eq(scatter_points(html), FX_N);
  char id[32];
  for (int c = 0; c < FX_N; c++) {
    snprintf(id, sizeof id, "<title>case_%02d\nscore ", c);
    ck_assert_msg(strstr(html, id), "no hover text for case %d", c);
  }
  free(html);
  c3_report_sel_free(&a);
  c3_report_sel_free(&b);
  /* without evaluation, selections or maps: the sections go, the page stays whole */
  o.evaluation = NULL;
  o.n_selections = 0;
  o.overwrite = 1;
  CHECK_OK(csal3d_report_write(s, &o, P("page.html"), NULL));
  html = read_all(P("page.html"), NULL);
  ck_assert_ptr_null(strstr(html, "id=\"evaluation\""));
  ck_assert_ptr_null(strstr(html, "id=\"selections\""));
  ck_assert_int_eq(check_self_contained(html), 0);
  free(html);
  csal3d_scores_free(s);
}
END_TEST

START_TEST(page_checks_before_work) {
  csal3d_scores *s = make_fixture(dir);
  const char *sels[1] = {P("urds.json")};
  csal3d_report_options o;
  csal3d_report_options_init(&o);
  o.selections = sels;
  o.n_selections = 1;
  o.scores_path = P("scores.safetensors");
  /* an input as the output, an existing page, a missing folder */
  ck_assert_int_eq(csal3d_report_write(s, &o, P("urds.json"), NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_report_write(s, &o, P("scores.safetensors"), NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_report_write(s, &o, P("img/case_00.nii.gz"), NULL),
                   CSAL3D_ERR_INVALID_ARGUMENT);
  write_text(P("old.html"), "old");
  ck_assert_int_eq(csal3d_report_write(s, &o, P("old.html"), NULL), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "the option overwrite"));
  ck_assert_int_eq(csal3d_report_write(s, &o, P("no/such/page.html"), NULL), CSAL3D_ERR_IO);
  /* bad options and inputs: nothing written */
  o.image_size = 5;
  ck_assert_int_eq(csal3d_report_write(s, &o, P("p.html"), NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "the option image_size"));
  o.image_size = 0;
  o.maps_dir = P("nomaps");
  ck_assert_int_eq(csal3d_report_write(s, &o, P("p.html"), NULL), CSAL3D_ERR_IO);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "the maps folder"));
  o.maps_dir = NULL;
  write_text(P("e.csv"), "strategy,budget\n");
  o.evaluation = P("e.csv");
  ck_assert_msg(csal3d_report_write(s, &o, P("p.html"), NULL) == CSAL3D_ERR_FORMAT, "%s",
                csal3d_last_error());
  o.evaluation = NULL;
  sels[0] = P("missing.json");
  ck_assert_int_eq(csal3d_report_write(s, &o, P("p.html"), NULL), CSAL3D_ERR_IO);
  ck_assert_int_eq(access(P("p.html"), F_OK), -1);
  o.n_selections = 17;
  ck_assert_int_eq(csal3d_report_write(s, &o, P("p.html"), NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_int_eq(csal3d_report_write(NULL, NULL, P("p.html"), NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  /* cancelled through the progress callback: no page, no temporary */
  sels[0] = P("urds.json");
  o.n_selections = 1;
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.progress = cancel_at_two;
  csal3d_context *ctx = NULL;
  CHECK_OK(csal3d_context_create(&co, &ctx));
  ck_assert_int_eq(csal3d_report_write(s, &o, P("p.html"), ctx), CSAL3D_ERR_CANCELLED);
  ck_assert_int_eq(access(P("p.html"), F_OK), -1);
  csal3d_context_free(ctx);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls -a '%s' | grep -c tmp", dir);
  FILE *f = popen(cmd, "r");
  int tmps = -1;
  ck_assert_int_eq(fscanf(f, "%d", &tmps), 1);
  pclose(f);
  ck_assert_int_eq(tmps, 0);
  /* a moved image and a maps folder without the map: notes in the panels, a page all
   * the same */
  o.maps_dir = P("img"); /* no *_uncertainty.nii.gz in there */
  CHECK_OK(csal3d_report_write(s, &o, P("p.html"), NULL));
  char *html = read_all(P("p.html"), NULL);
  ck_assert_ptr_nonnull(strstr(html, "uncertainty map "));
  ck_assert_int_eq(check_self_contained(html), 12); /* images, grey only */
  free(html);
  csal3d_scores_free(s);
}
END_TEST

START_TEST(page_of_ten_thousand_cases) {
  enum { N = 10000, D = 16, M = 20 };
  csal3d_scores *s = NULL;
  CHECK_OK(csal3d_scores_create(N, D, &s));
  float f[D];
  const char *imgs[1] = {"/nonexistent/image.nii.gz"};
  for (int i = 0; i < N; i++) {
    for (int k = 0; k < D; k++) f[k] = (float)sin(0.37 * i * (k + 1) + k);
    char id[32];
    snprintf(id, sizeof id, "c%05d", i);
    CHECK_OK(csal3d_scores_set_case(s, i, id, imgs, 1, NULL, (float)(1 + sin(i)), f));
  }
  csal3d_selection rec[M];
  memset(rec, 0, sizeof rec);
  for (int k = 0; k < M; k++) {
    rec[k].index = k * 499;
    rec[k].cluster = -1;
    rec[k].typicality = NAN;
    rec[k].score = 1 + sin(k * 499);
    rec[k].rule = CSAL3D_RULE_RANDOM;
  }
  csal3d_manifest_options mo;
  csal3d_manifest_options_init(&mo);
  mo.strategy = CSAL3D_STRATEGY_RANDOM;
  CHECK_OK(csal3d_manifest_write(s, rec, sizeof rec[0], M, &mo, NULL, P("sel.json")));
  const char *sels[1] = {P("sel.json")};
  csal3d_report_options o;
  csal3d_report_options_init(&o);
  o.selections = sels;
  o.n_selections = 1;
  o.max_cases = 3;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK_OK(csal3d_report_write(s, &o, P("big.html"), NULL));
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  size_t len = 0;
  char *html = read_all(P("big.html"), &len);
  ck_assert_msg(len < 1500000, "a page of %zu bytes", len);
  ck_assert_msg(secs < 10, "%.1f s", secs);
  ck_assert_ptr_nonnull(strstr(html, "a random sample of 2000 of the 9980 others"));
  ck_assert_int_eq(scatter_points(html), 2000 + M);
  ck_assert_ptr_nonnull(strstr(html, "3 of the 20 chosen cases are shown"));
  ck_assert_int_eq(check_self_contained(html), 0); /* the images do not exist: notes */
  ck_assert_ptr_nonnull(strstr(html, "/nonexistent/image.nii.gz"));
  free(html);
  csal3d_scores_free(s);
}
END_TEST

/* test_report --fixture DIR */
START_TEST(write_fixture) { csal3d_scores_free(make_fixture(dir)); }
END_TEST

static Suite *suite(void) {
  Suite *s = suite_create("report");
  TCase *t = tcase_create("parts");
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, pca_known_answer);
  tcase_add_test(t, overlap_matrix);
  tcase_add_test(t, peak_of_a_map);
  tcase_add_test(t, png_round_trip_and_colours);
  tcase_add_test(t, selections_read_back_and_refused);
  tcase_add_test(t, evaluation_files);
  suite_add_tcase(s, t);
  t = tcase_create("pages");
  tcase_set_timeout(t, 60);
  tcase_add_checked_fixture(t, setup, teardown);
  tcase_add_test(t, page_is_self_contained);
  tcase_add_test(t, page_checks_before_work);
  tcase_add_test(t, page_of_ten_thousand_cases);
  suite_add_tcase(s, t);
  return s;
}

/* --png-stats FILE: "WIDTH HEIGHT COLOURS NONWHITE_PERCENT" (colours: distinct RGB values,
 * counted up to 65536; non-white: pixels darker than 245 in some channel). */
static int png_stats(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return perror(path), 1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)n);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) return fclose(f), 1;
  fclose(f);
  int w, h;
  unsigned char *rgb = NULL;
  if (!png_decode(buf, (size_t)n, &w, &h, &rgb)) return fprintf(stderr, "%s: not a PNG\n", path), 1;
  unsigned char *seen = calloc(1 << 21, 1); /* one bit per 24-bit colour */
  long colours = 0, dark = 0;
  for (long i = 0; i < (long)w * h; i++) {
    const unsigned char *p = rgb + i * 3;
    uint32_t c = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    if (!(seen[c >> 3] & (1 << (c & 7)))) seen[c >> 3] |= (unsigned char)(1 << (c & 7)), colours++;
    dark += p[0] < 245 || p[1] < 245 || p[2] < 245;
  }
  printf("%d %d %ld %.1f\n", w, h, colours, 100.0 * (double)dark / ((double)w * h));
  free(seen), free(rgb), free(buf);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--png-stats")) return png_stats(argv[2]);
  Suite *s;
  if (argc != 3 || strcmp(argv[1], "--fixture")) {
    s = suite();
  } else { /* Check's asserts need a running test */
    snprintf(dir, sizeof dir, "%s", argv[2]);
    s = suite_create("fixture");
    TCase *t = tcase_create("fixture");
    tcase_add_test(t, write_fixture);
    suite_add_tcase(s, t);
  }
  SRunner *r = srunner_create(s);
  if (argc == 3) srunner_set_fork_status(r, CK_NOFORK);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? 1 : 0;
}
