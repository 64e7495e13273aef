/* Parity with MONAI: for every *.safetensors in CSAL3D_REFERENCE_DIR (default
 * ../shared/reference) that holds forward reference tensors (input, target,
 * labels, reconstruction, ...), build the model from the file's metadata, load its
 * param.* tensors, run forward and backward on `input` with the README's loss
 *   loss = mean((reconstruction - target)^2) + cross_entropy(logits, labels)
 * and compare: relative error ||out - ref|| / ||ref|| <= 1e-4 for the forward
 * tensors (hidden0..4, pooled, logits, reconstruction, loss), <= 1e-3 for every
 * grad.* tensor; where the reference is exactly zero, max |out| <= 1e-6. Every
 * failing tensor is named. Files without forward references are skipped; a new
 * file needs no code change. SKIP (exit 77) when the folder is absent.
 *
 * Options (environment): CSAL3D_PARITY_FILE=name runs one file; CSAL3D_PARITY_VERBOSE=1
 * prints every tensor's error; CSAL3D_PARITY_DEVICE=cuda runs the model on the CUDA
 * engine instead of the CPU (SKIP when it is unavailable; with
 * CSAL3D_CUDA_PRECISION=fp32 the same bounds apply). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/error.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test_parity.h"

#define FWD_TOL 1e-4
#define GRAD_TOL 1e-3
#define ZERO_TOL 1e-6

typedef struct result {
  double max_fwd, max_grad;
  int failures, compared;
  char worst_fwd[128], worst_grad[128];
} result;

static int verbose;

/* Compares out with the reference tensor `name` (n floats); records the error. */
static void compare(const c3_safetensors *st, const char *name, const float *out,
                    size_t n, int is_grad, result *r) {
  const c3_st_entry *e = c3_st_find(st, name);
  if (!e) return;
  if (e->numel != n) {
    printf("  FAIL %-70s shape: reference has %llu elements, model gives %zu\n", name,
           (unsigned long long)e->numel, n);
    r->failures++;
    return;
  }
  float *ref = malloc(n * sizeof(float) + 1);
  if (c3_st_entry_read_f32(st, e, ref, n) != CSAL3D_OK) {
    printf("  FAIL %s: %s\n", name, csal3d_last_error());
    r->failures++;
    free(ref);
    return;
  }
  double num = 0, den = 0, maxabs = 0;
  int finite = 1;
  for (size_t i = 0; i < n; i++) {
    double d = (double)out[i] - ref[i];
    if (!isfinite(out[i])) finite = 0;
    num += d * d;
    den += (double)ref[i] * ref[i];
    if (fabs(out[i]) > maxabs) maxabs = fabs(out[i]);
  }
  free(ref);
  r->compared++;
  int ok;
  double err;
  const char *kind;
  if (den == 0) {
    err = maxabs;
    ok = finite && maxabs <= ZERO_TOL;
    kind = "max|out| (reference is zero)";
  } else {
    err = sqrt(num / den);
    ok = finite && err <= (is_grad ? GRAD_TOL : FWD_TOL);
    kind = "relative error";
    if (is_grad && err > r->max_grad) {
      r->max_grad = err;
      snprintf(r->worst_grad, sizeof r->worst_grad, "%s", name);
    }
    if (!is_grad && err > r->max_fwd) {
      r->max_fwd = err;
      snprintf(r->worst_fwd, sizeof r->worst_fwd, "%s", name);
    }
  }
  if (!ok) {
    printf("  FAIL %-70s %s %.3e (limit %.0e)%s\n", name, kind, err,
           den == 0 ? ZERO_TOL : is_grad ? GRAD_TOL : FWD_TOL,
           finite ? "" : " non-finite values");
    r->failures++;
  } else if (verbose) {
    printf("  ok   %-70s %s %.3e\n", name, kind, err);
  }
}

/* Downloads n floats of engine memory. */
static float *download(c3_engine *e, const float *src, size_t n) {
  float *h = malloc(n * sizeof(float) + 1);
  if (e->download(e, h, src, n * sizeof(float)) != CSAL3D_OK) {
    free(h);
    return NULL;
  }
  return h;
}

static int has_forward_refs(const c3_safetensors *st) {
  return c3_st_find(st, "input") && c3_st_find(st, "target") &&
         c3_st_find(st, "labels") && c3_st_find(st, "reconstruction") &&
         c3_st_find(st, "logits");
}

/* Runs one file; returns 0 pass, 1 fail. */
static int run_file(c3_engine *e, const char *path) {
  c3_safetensors *st;
  if (c3_st_open(path, &st) != CSAL3D_OK) {
    printf("FAIL %s: %s\n", path, csal3d_last_error());
    return 1;
  }
  if (!has_forward_refs(st)) {
    printf("skip %s: no forward reference tensors (input/target/labels/reconstruction/"
           "logits)\n",
           path);
    c3_st_free(st);
    return 0;
  }
  int rc = 1;
  result r = {0};
  c3_model *m = NULL;
  float *dx = NULL, *dt = NULL, *dl = NULL, *dr = NULL, *din = NULL, *host = NULL;
  int32_t *dlab = NULL;
  int64_t *labels = NULL;
  c3_model_config cfg;
  if (c3_model_config_from_metadata(st, &cfg) != CSAL3D_OK) {
    printf("FAIL %s: %s\n", path, csal3d_last_error());
    goto done;
  }
  if (getenv("CSAL3D_PARITY_MERGE")) /* diagnostics: force a merging order */
    cfg.merge_order = strcmp(getenv("CSAL3D_PARITY_MERGE"), "distinct") == 0
                          ? C3_MERGE_DISTINCT
                          : C3_MERGE_MONAI;
  if (c3_model_create(e, &cfg, &m) != CSAL3D_OK || c3_model_load(m, st, "param.") != CSAL3D_OK) {
    printf("FAIL %s: %s\n", path, csal3d_last_error());
    goto done;
  }
  const c3_st_entry *in = c3_st_find(st, "input");
  if (in->ndim != 5 || in->shape[1] != cfg.in_channels) {
    printf("FAIL %s: input must be [N, %d, D, H, W]\n", path, cfg.in_channels);
    goto done;
  }
  int64_t n = in->shape[0], dhw[3] = {in->shape[2], in->shape[3], in->shape[4]};
  size_t nin = (size_t)in->numel;
  printf("%s: embed_dim %d, in_channels %d, input %lld x %d x %lld x %lld x %lld\n", path,
         cfg.embed_dim, cfg.in_channels, (long long)n, cfg.in_channels, (long long)dhw[0],
         (long long)dhw[1], (long long)dhw[2]);
  host = malloc(nin * sizeof(float));
  labels = malloc((size_t)n * sizeof(int64_t));
  int32_t lab32[1024];
  if (n > 1024 || c3_st_read_f32(st, "input", host, nin) != CSAL3D_OK ||
      c3_st_read_i64(st, "labels", labels, (size_t)n) != CSAL3D_OK) {
    printf("FAIL %s: %s\n", path, csal3d_last_error());
    goto done;
  }
  for (int64_t i = 0; i < n; i++) lab32[i] = (int32_t)labels[i];
  if (e->alloc(e, nin * sizeof(float), "input", (void **)&dx) != CSAL3D_OK ||
      e->alloc(e, nin * sizeof(float), "target", (void **)&dt) != CSAL3D_OK ||
      e->alloc(e, nin * sizeof(float), "d_recon", (void **)&dr) != CSAL3D_OK ||
      e->alloc(e, nin * sizeof(float), "d_input", (void **)&din) != CSAL3D_OK ||
      e->alloc(e, (size_t)n * 4 * sizeof(float), "d_logits", (void **)&dl) != CSAL3D_OK ||
      e->alloc(e, (size_t)n * sizeof(int32_t), "labels", (void **)&dlab) != CSAL3D_OK ||
      e->upload(e, dx, host, nin * sizeof(float)) != CSAL3D_OK ||
      e->upload(e, dlab, lab32, (size_t)n * sizeof(int32_t)) != CSAL3D_OK ||
      c3_st_read_f32(st, "target", host, nin) != CSAL3D_OK ||
      e->upload(e, dt, host, nin * sizeof(float)) != CSAL3D_OK) {
    printf("FAIL %s: %s\n", path, csal3d_last_error());
    goto done;
  }
  if (c3_model_forward(m, dx, n, dhw, 1) != CSAL3D_OK) {
    printf("FAIL %s: forward: %s\n", path, csal3d_last_error());
    goto done;
  }
  /* Forward tensors: hidden_i from token-major to [N, C, D, H, W]. */
  for (int i = 0; i <= C3_MODEL_STAGES; i++) {
    int64_t sh[5];
    const float *h = c3_model_hidden(m, i, sh);
    size_t vox = (size_t)(sh[1] * sh[2] * sh[3]), cnt = (size_t)sh[0] * vox * (size_t)sh[4];
    float *t = download(e, h, cnt), *u = malloc(cnt * sizeof(float));
    for (int64_t b = 0; b < sh[0]; b++)
      for (size_t v = 0; v < vox; v++)
        for (int64_t c = 0; c < sh[4]; c++)
          u[((size_t)b * (size_t)sh[4] + (size_t)c) * vox + v] =
              t[((size_t)b * vox + v) * (size_t)sh[4] + (size_t)c];
    char name[24];
    snprintf(name, sizeof name, "hidden%d", i);
    compare(st, name, u, cnt, 0, &r);
    free(t);
    free(u);
  }
  size_t c16 = 16 * (size_t)cfg.embed_dim;
  float *t = download(e, c3_model_pooled(m), (size_t)n * c16);
  compare(st, "pooled", t, (size_t)n * c16, 0, &r);
  free(t);
  t = download(e, c3_model_logits(m), (size_t)n * 4);
  compare(st, "logits", t, (size_t)n * 4, 0, &r);
  free(t);
  t = download(e, c3_model_reconstruction(m), nin);
  compare(st, "reconstruction", t, nin, 0, &r);
  free(t);
  /* Loss and its gradients. */
  double l_mse, l_ce;
  if (e->mse_loss(e, (int64_t)nin, c3_model_reconstruction(m), dt, NULL, 1.0f, dr, NULL,
                  0, &l_mse) != CSAL3D_OK ||
      e->cross_entropy(e, n, 4, c3_model_logits(m), dlab, 1.0f, dl, 0, &l_ce) !=
          CSAL3D_OK) {
    printf("FAIL %s: loss: %s\n", path, csal3d_last_error());
    goto done;
  }
  float loss = (float)(l_mse + l_ce);
  compare(st, "loss", &loss, 1, 0, &r);
  if (c3_model_zero_grad(m) != CSAL3D_OK ||
      c3_model_backward(m, dx, dr, dl, din) != CSAL3D_OK) {
    printf("FAIL %s: backward: %s\n", path, csal3d_last_error());
    goto done;
  }
  float *g = malloc(m->total * sizeof(float));
  c3_model_get_grads(m, g);
  char name[C3_PARAM_NAME_MAX + 8];
  int missing = 0;
  for (size_t k = 0; k < m->nparams; k++) {
    snprintf(name, sizeof name, "grad.%s", m->params[k].name);
    if (!c3_st_find(st, name)) missing++;
    compare(st, name, g + m->params[k].offset, m->params[k].numel, 1, &r);
  }
  free(g);
  t = download(e, din, nin);
  compare(st, "grad.input", t, nin, 1, &r);
  free(t);
  /* Reference tensors this test does not know are reported, not silently ignored. */
  for (size_t i = 0; i < c3_st_count(st); i++) {
    const char *nm = c3_st_entry_at(st, i)->name;
    if (strncmp(nm, "param.", 6) == 0 || strncmp(nm, "grad.", 5) == 0) continue;
    static const char *known[] = {"input", "target", "labels", "hidden0", "hidden1",
                                  "hidden2", "hidden3", "hidden4", "pooled", "logits",
                                  "reconstruction", "loss"};
    int k = 0;
    for (size_t j = 0; j < sizeof known / sizeof known[0]; j++) k |= !strcmp(nm, known[j]);
    if (!k) printf("  note: tensor '%s' not compared\n", nm);
  }
  printf("  %d tensors compared (%d parameters have no grad.* reference): max relative "
         "error forward %.3e (%s), gradients %.3e (%s)\n",
         r.compared, missing, r.max_fwd, r.worst_fwd, r.max_grad, r.worst_grad);
  if (r.failures) printf("FAIL %s: %d tensors out of tolerance\n", path, r.failures);
  else printf("PASS %s\n", path);
  rc = r.failures ? 1 : 0;
done:
  if (dx) e->free(e, dx);
  if (dt) e->free(e, dt);
  if (dr) e->free(e, dr);
  if (din) e->free(e, din);
  if (dl) e->free(e, dl);
  if (dlab) e->free(e, dlab);
  free(host);
  free(labels);
  c3_model_free(m);
  c3_st_free(st);
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *dir = c3_test_reference_dir();
  verbose = getenv("CSAL3D_PARITY_VERBOSE") != NULL;
  const char *only = getenv("CSAL3D_PARITY_FILE");
  DIR *d = opendir(dir);
  if (!d) {
    printf("SKIP: reference folder %s not found (set CSAL3D_REFERENCE_DIR)\n", dir);
    return 77;
  }
  c3_engine *e;
  int rc = c3_test_parity_engine(&e);
  if (rc) {
    closedir(d);
    return rc;
  }
  char *names[256];
  int count = 0;
  struct dirent *de;
  while ((de = readdir(d)) && count < 256) {
    size_t l = strlen(de->d_name);
    if (l > 12 && strcmp(de->d_name + l - 12, ".safetensors") == 0 &&
        (!only || strcmp(only, de->d_name) == 0))
      names[count++] = strdup(de->d_name);
  }
  closedir(d);
  qsort(names, (size_t)count, sizeof names[0], cmp_str);
  int failed = 0, ran = 0;
  for (int i = 0; i < count; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    failed += run_file(e, path);
    ran++;
    free(names[i]);
  }
  c3_engine_close(e);
  if (ran == 0) {
    printf("SKIP: no .safetensors files in %s\n", dir);
    return 77;
  }
  printf("model parity: %d files, %d failed\n", ran, failed);
  return failed ? 1 : 0;
}
