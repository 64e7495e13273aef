/* Starting from public weights, against MONAI: for every swinunetr_STEM_expected.safetensors
 * in CSAL3D_REFERENCE_DIR (default ../shared/reference), which holds `input` and MONAI's
 * encoder outputs hidden0..hidden4 (swinViT(input, normalize=True)), every other
 * swinunetr_STEM_*.safetensors there is a weights file under some naming (MONAI's
 * SwinUNETR state_dict, Tang et al.'s self-supervised checkpoint, ...). For each:
 *   - csal3d_ssl_options_from_weights() gives the width and channels of the expected
 *     file's metadata;
 *   - a model of that configuration is filled with csal3d_ssl_model_init_from();
 *   - the report counts the encoder as loaded, the rotation head and decoder as
 *     initialised (and their values are a new model's of the same seed), and every other
 *     file tensor as ignored; the summary names the file;
 *   - the encoder reproduces hidden0..hidden4 within 1e-4 relative error
 *     (||out - ref|| / ||ref||), and csal3d_ssl_model_encode() gives the triplet means of
 *     the spatial mean of hidden4 within 1e-4;
 *   - saved as our own checkpoint and started from again: everything loaded, nothing
 *     initialised, the same weights.
 * A new width or channel count needs only new files. SKIP (exit 77) when the folder or
 * the files are absent. CSAL3D_PARITY_DEVICE=cuda runs on the CUDA engine. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csal3d/csal3d.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/ssl_internal.h"
#include "test_parity.h"

#define TOL 1e-4
#define SEED 7

static double rel_error(const float *out, const float *ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)out[i] - ref[i];
    if (!isfinite(out[i])) return INFINITY;
    num += d * d;
    den += (double)ref[i] * ref[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Counts of the model's parts. */
static void count_parts(const c3_model *m, int *encoder, int *rest) {
  *encoder = *rest = 0;
  for (size_t i = 0; i < m->nparams; i++) {
    if (strncmp(m->params[i].name, "swinViT.", 8) == 0) ++*encoder;
    else ++*rest;
  }
}

/* hidden i of the last forward, as [N, C, D, H, W] floats (malloc). */
static float *hidden_ncdhw(const c3_model *m, int i, size_t *count) {
  int64_t sh[5];
  const float *h = c3_model_hidden(m, i, sh);
  size_t vox = (size_t)(sh[1] * sh[2] * sh[3]), cnt = (size_t)sh[0] * vox * (size_t)sh[4];
  float *t = malloc(cnt * sizeof(float)), *u = malloc(cnt * sizeof(float));
  m->e->download(m->e, t, h, cnt * sizeof(float));
  for (int64_t b = 0; b < sh[0]; b++)
    for (size_t v = 0; v < vox; v++)
      for (int64_t c = 0; c < sh[4]; c++)
        u[((size_t)b * (size_t)sh[4] + (size_t)c) * vox + v] =
            t[((size_t)b * vox + v) * (size_t)sh[4] + (size_t)c];
  free(t);
  *count = cnt;
  return u;
}

typedef struct expected {
  c3_safetensors *st;
  int embed_dim, in_channels;
  int64_t n, dhw[3];
  float *input;
} expected;

/* Checks one model filled from a weights file against the expected outputs; returns the
 * number of failures. */
static int check_encoder(csal3d_ssl_model *model, const expected *x, const char *what) {
  int failures = 0;
  c3_model *m = model->m;
  size_t nin = (size_t)x->n * (size_t)x->in_channels * (size_t)(x->dhw[0] * x->dhw[1] * x->dhw[2]);
  float *dx;
  if (m->e->alloc(m->e, nin * sizeof(float), "input", (void **)&dx) != CSAL3D_OK ||
      m->e->upload(m->e, dx, x->input, nin * sizeof(float)) != CSAL3D_OK ||
      c3_model_forward(m, dx, x->n, x->dhw, 0) != CSAL3D_OK) {
    printf("  FAIL %s: forward: %s\n", what, csal3d_last_error());
    return 1;
  }
  m->e->free(m->e, dx);
  for (int i = 0; i <= C3_MODEL_STAGES; i++) {
    char name[24];
    snprintf(name, sizeof name, "hidden%d", i);
    size_t cnt;
    float *out = hidden_ncdhw(m, i, &cnt), *ref = malloc(cnt * sizeof(float));
    const c3_st_entry *e = c3_st_find(x->st, name);
    double err = INFINITY;
    if (e && e->numel == cnt && c3_st_read_f32(x->st, name, ref, cnt) == CSAL3D_OK)
      err = rel_error(out, ref, cnt);
    printf("  %s %s: relative error %.3e%s\n", what, name, err, err <= TOL ? "" : "  FAIL");
    failures += !(err <= TOL);
    free(out);
    free(ref);
  }
  /* The public feature: triplet means of the spatial mean of hidden4, per item. */
  const c3_st_entry *h4 = c3_st_find(x->st, "hidden4");
  int64_t fd = 0;
  csal3d_ssl_model_feature_dim(model, &fd);
  size_t c16 = (size_t)h4->shape[1], vox = (size_t)(h4->numel / ((uint64_t)x->n * c16));
  float *ref = malloc(h4->numel * sizeof(float)), *want = calloc((size_t)(x->n * fd), 4),
        *got = malloc((size_t)(x->n * fd) * sizeof(float));
  c3_st_read_f32(x->st, "hidden4", ref, h4->numel);
  for (int64_t b = 0; b < x->n; b++)
    for (size_t c = 0; c < c16; c++) {
      double s = 0;
      for (size_t v = 0; v < vox; v++) s += ref[((size_t)b * c16 + c) * vox + v];
      if (c / 3 < (size_t)fd)
        want[(size_t)b * (size_t)fd + c / 3] += (float)(s / (double)vox / 3.0);
    }
  if (csal3d_ssl_model_encode(model, x->input, x->n, x->dhw, got, (size_t)(x->n * fd)) !=
      CSAL3D_OK) {
    printf("  FAIL %s: encode: %s\n", what, csal3d_last_error());
    failures++;
  } else {
    double err = rel_error(got, want, (size_t)(x->n * fd));
    printf("  %s feature (csal3d_ssl_model_encode): relative error %.3e%s\n", what, err,
           err <= TOL ? "" : "  FAIL");
    failures += !(err <= TOL);
  }
  free(ref);
  free(want);
  free(got);
  return failures;
}

/* The rotation head and decoder of model equal those of a new model of the seed. */
static int check_initialised(csal3d_ssl_model *model, const char *what) {
  c3_model *m = model->m;
  float *now = malloc(m->total * sizeof(float)), *fresh = malloc(m->total * sizeof(float));
  c3_model_get_params(m, now);
  c3_model_init_host(m, SEED, fresh);
  int bad = 0;
  for (size_t i = 0; i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    if (strncmp(p->name, "swinViT.", 8) == 0) continue;
    if (memcmp(now + p->offset, fresh + p->offset, p->numel * sizeof(float)) != 0) {
      printf("  FAIL %s: %s is not a new model's\n", what, p->name);
      bad = 1;
      break;
    }
  }
  free(now);
  free(fresh);
  return bad;
}

static csal3d_ssl_model *new_model(csal3d_context *ctx, const expected *x, uint64_t seed) {
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  o.embed_dim = x->embed_dim;
  o.in_channels = x->in_channels;
  o.use_seed = 1;
  o.seed = seed;
  csal3d_ssl_model *m = NULL;
  if (csal3d_ssl_model_create(ctx, &o, &m) != CSAL3D_OK)
    printf("  FAIL: model: %s\n", csal3d_last_error());
  return m;
}

/* One weights file; returns the number of failures. */
static int run_weights(csal3d_context *ctx, const expected *x, const char *path,
                       const char *tmpdir) {
  printf("%s\n", path);
  int failures = 0;
  csal3d_ssl_options o;
  csal3d_ssl_options_init(&o);
  o.embed_dim = o.in_channels = -1;
  if (csal3d_ssl_options_from_weights(path, &o) != CSAL3D_OK) {
    printf("  FAIL options_from_weights: %s\n", csal3d_last_error());
    return 1;
  }
  if (o.embed_dim != x->embed_dim || o.in_channels != x->in_channels) {
    printf("  FAIL options_from_weights: embed_dim %d, in_channels %d; expected %d, %d\n",
           o.embed_dim, o.in_channels, x->embed_dim, x->in_channels);
    failures++;
  }
  csal3d_ssl_model *model = new_model(ctx, x, SEED);
  if (!model) return failures + 1;
  csal3d_ssl_init_report r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  if (csal3d_ssl_model_init_from(model, path, &r) != CSAL3D_OK) {
    printf("  FAIL init_from: %s\n", csal3d_last_error());
    csal3d_ssl_model_free(model);
    return failures + 1;
  }
  printf("  %s\n", r.summary);
  int encoder, rest;
  count_parts(model->m, &encoder, &rest);
  c3_safetensors *w;
  size_t tensors = 0;
  if (c3_st_open(path, &w) == CSAL3D_OK) {
    tensors = c3_st_count(w);
    c3_st_free(w);
  }
  if (r.loaded != encoder || r.initialised != rest || r.ignored != (int64_t)tensors - encoder ||
      !strstr(r.summary, path) || !r.details ||
      !strstr(r.details, "initialised rotation_head.weight\n")) {
    printf("  FAIL report: loaded %lld (want %d), initialised %lld (want %d), ignored %lld "
           "(want %zu)\n",
           (long long)r.loaded, encoder, (long long)r.initialised, rest, (long long)r.ignored,
           tensors - (size_t)encoder);
    failures++;
  }
  failures += check_initialised(model, "init");
  failures += check_encoder(model, x, "init");
  /* Our own checkpoint of it: everything comes back. */
  char ck[512];
  snprintf(ck, sizeof ck, "%s/own.safetensors", tmpdir);
  csal3d_ssl_model *again = new_model(ctx, x, SEED + 1);
  if (csal3d_ssl_model_save(model, ck) != CSAL3D_OK || !again ||
      csal3d_ssl_model_init_from(again, ck, &r) != CSAL3D_OK) {
    printf("  FAIL own checkpoint: %s\n", csal3d_last_error());
    failures++;
  } else {
    float *a = malloc(model->m->total * 4), *b = malloc(model->m->total * 4);
    c3_model_get_params(model->m, a);
    c3_model_get_params(again->m, b);
    if (r.loaded != encoder + rest || r.initialised != 0 ||
        memcmp(a, b, model->m->total * 4) != 0) {
      printf("  FAIL own checkpoint: loaded %lld, initialised %lld, weights %s\n",
             (long long)r.loaded, (long long)r.initialised,
             memcmp(a, b, model->m->total * 4) ? "differ" : "equal");
      failures++;
    }
    free(a);
    free(b);
    failures += check_encoder(again, x, "own checkpoint");
  }
  unlink(ck);
  csal3d_ssl_model_free(again);
  csal3d_ssl_model_free(model);
  return failures;
}

/* Whether names[j] belongs to another expected file whose stem extends names[i]'s
 * (swinunetr_e12_c2_monai is not a weights file of swinunetr_e12). */
static int longer_stem(char *const *names, int count, int i, int j) {
  size_t own = strlen(names[i]) - strlen("expected.safetensors");
  for (int k = 0; k < count; k++) {
    if (k == i || !ends_with(names[k], "_expected.safetensors")) continue;
    size_t l = strlen(names[k]) - strlen("expected.safetensors");
    if (l > own && strncmp(names[k], names[i], own) == 0 && strncmp(names[j], names[k], l) == 0)
      return 1;
  }
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *dir = c3_test_reference_dir();
  DIR *d = opendir(dir);
  if (!d) {
    printf("SKIP: reference folder %s not found (set CSAL3D_REFERENCE_DIR)\n", dir);
    return 77;
  }
  char *names[256];
  int count = 0;
  struct dirent *de;
  while ((de = readdir(d)) && count < 256)
    if (strncmp(de->d_name, "swinunetr_", 10) == 0 && ends_with(de->d_name, ".safetensors"))
      names[count++] = strdup(de->d_name);
  closedir(d);
  qsort(names, (size_t)count, sizeof names[0], cmp_str);
  int stems = 0, failures = 0;
  for (int i = 0; i < count; i++) stems += ends_with(names[i], "_expected.safetensors");
  if (!stems) {
    printf("SKIP: no swinunetr_*_expected.safetensors in %s\n", dir);
    for (int i = 0; i < count; i++) free(names[i]);
    return 77;
  }
  const char *dev = getenv("CSAL3D_PARITY_DEVICE");
  int cuda = dev && strcmp(dev, "cuda") == 0;
  if (cuda && !getenv("CSAL3D_CUDA_PLUGIN") && getenv("CSAL3D_TEST_CUDA_PLUGIN"))
    setenv("CSAL3D_CUDA_PLUGIN", getenv("CSAL3D_TEST_CUDA_PLUGIN"), 1);
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = cuda ? CSAL3D_DEVICE_CUDA : CSAL3D_DEVICE_CPU;
  co.log_level = CSAL3D_LOG_WARN;
  csal3d_context *ctx;
  if (csal3d_context_create(&co, &ctx) != CSAL3D_OK) {
    printf("%s: %s\n", cuda ? "SKIP" : "FAIL", csal3d_last_error());
    for (int i = 0; i < count; i++) free(names[i]);
    return cuda ? 77 : 1;
  }
  char tmpdir[] = "/tmp/c3_import_XXXXXX";
  if (!mkdtemp(tmpdir)) {
    printf("FAIL: mkdtemp\n");
    return 1;
  }
  for (int i = 0; i < count; i++) {
    if (!ends_with(names[i], "_expected.safetensors")) continue;
    size_t stem_len = strlen(names[i]) - strlen("expected.safetensors"); /* "swinunetr_STEM_" */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    expected x = {0};
    c3_model_config cfg;
    const c3_st_entry *in;
    if (c3_st_open(path, &x.st) != CSAL3D_OK ||
        c3_model_config_from_metadata(x.st, &cfg) != CSAL3D_OK ||
        !(in = c3_st_find(x.st, "input")) || in->ndim != 5 || in->shape[1] != cfg.in_channels) {
      printf("FAIL %s: %s\n", path, x.st ? "no input [N, in_channels, D, H, W] or bad metadata"
                                         : csal3d_last_error());
      failures++;
      c3_st_free(x.st);
      continue;
    }
    x.embed_dim = cfg.embed_dim;
    x.in_channels = cfg.in_channels;
    x.n = in->shape[0];
    for (int a = 0; a < 3; a++) x.dhw[a] = in->shape[2 + a];
    x.input = malloc(in->numel * sizeof(float));
    c3_st_read_f32(x.st, "input", x.input, in->numel);
    printf("%s: embed_dim %d, in_channels %d, input %lld x %d x %lld x %lld x %lld\n", path,
           x.embed_dim, x.in_channels, (long long)x.n, x.in_channels, (long long)x.dhw[0],
           (long long)x.dhw[1], (long long)x.dhw[2]);
    int weights = 0;
    for (int j = 0; j < count; j++) {
      if (j == i || strncmp(names[j], names[i], stem_len) != 0 ||
          ends_with(names[j], "_expected.safetensors") || longer_stem(names, count, i, j))
        continue;
      snprintf(path, sizeof path, "%s/%s", dir, names[j]);
      failures += run_weights(ctx, &x, path, tmpdir);
      weights++;
    }
    if (!weights) {
      printf("FAIL %s: no weights file %.*s*.safetensors beside it\n", names[i], (int)stem_len,
             names[i]);
      failures++;
    }
    free(x.input);
    c3_st_free(x.st);
  }
  rmdir(tmpdir);
  for (int i = 0; i < count; i++) free(names[i]);
  csal3d_context_free(ctx);
  printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
