/* Tests of the optimiser (lib/model/optim) and checkpoints (lib/model/checkpoint):
 * schedule known answers, parameter groups, clipping, exact resume (bitwise),
 * checksum verification, atomic writes and configuration checks. Gradients are
 * set directly (no forward/backward) so that only the optimiser and the file
 * format are under test. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "model/checkpoint.h"
#include "model/import.h"
#include "model/model.h"
#include "model/optim.h"

static c3_engine *engine(void) {
  c3_engine *e;
  ck_assert_int_eq(c3_engine_open(CSAL3D_DEVICE_CPU, 0, &e), CSAL3D_OK);
  return e;
}

static c3_model *small_model(c3_engine *e, uint64_t seed) {
  c3_model_config c;
  c3_model_config_default(&c, 12, 1);
  c3_model *m;
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_OK);
  ck_assert_int_eq(c3_model_init(m, seed), CSAL3D_OK);
  return m;
}

/* Deterministic pseudo-gradients for step `step`, scaled by `amp`. */
static void set_grads(c3_model *m, int64_t step, float amp) {
  ck_assert_int_eq(c3_model_zero_grad(m), CSAL3D_OK);
  float *g = calloc(m->total, sizeof(float));
  for (size_t i = 0; i < m->nparams; i++) {
    c3_rng r;
    c3_rng_init(&r, 99, C3_RNG_TEST, (uint64_t)step, i, 0);
    for (size_t k = 0; k < m->params[i].numel; k++)
      g[m->params[i].offset + k] = amp * (float)c3_rng_normal(&r);
  }
  ck_assert_int_eq(m->e->upload(m->e, m->g, g, m->total * sizeof(float)), CSAL3D_OK);
  free(g);
}

START_TEST(schedule_known_answers) {
  c3_optim_config c;
  c3_optim_config_default(&c, 1500);
  ck_assert_int_eq(c3_optim_config_check(&c), CSAL3D_OK);
  ck_assert(c3_optim_lr_at(&c, 0) == 0.0);
  ck_assert(fabs(c3_optim_lr_at(&c, 250) - 2.5e-4) < 1e-15);
  ck_assert(fabs(c3_optim_lr_at(&c, 500) - 5e-4) < 1e-15);
  ck_assert(fabs(c3_optim_lr_at(&c, 1000) - 2.5e-4) < 1e-15); /* half way: cos = 0 */
  ck_assert(fabs(c3_optim_lr_at(&c, 1500)) < 1e-15);
  ck_assert(c3_optim_lr_at(&c, 2000) >= 0);
  /* Monotone: up during warm-up, down after. */
  for (int64_t s = 1; s < 1500; s++) {
    if (s <= 500) ck_assert(c3_optim_lr_at(&c, s) > c3_optim_lr_at(&c, s - 1));
    else ck_assert(c3_optim_lr_at(&c, s) < c3_optim_lr_at(&c, s - 1) ||
                   c3_optim_lr_at(&c, s) == 0);
  }
  c.warmup_steps = 0;
  ck_assert(c3_optim_lr_at(&c, 0) == 5e-4);
  c.clip_norm = -1;
  ck_assert_int_eq(c3_optim_config_check(&c), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "clipping"));
}
END_TEST

START_TEST(groups_clipping_and_adamw_update) {
  c3_engine *e = engine();
  c3_model *m = small_model(e, 1);
  c3_optim_config c;
  c3_optim_config_default(&c, 100);
  c.warmup_steps = 0;
  c.lr = 1e-2;
  c.clip_norm = 0.5;
  c3_optim *o;
  ck_assert_int_eq(c3_optim_create(m, &c, &o), CSAL3D_OK);
  float *before = malloc(m->total * sizeof(float)), *after = malloc(m->total * sizeof(float));
  float *g = malloc(m->total * sizeof(float));
  ck_assert_int_eq(c3_model_get_params(m, before), CSAL3D_OK);
  set_grads(m, 0, 0.01f);
  ck_assert_int_eq(c3_model_get_grads(m, g), CSAL3D_OK);
  double ss = 0;
  for (size_t i = 0; i < m->total; i++) ss += (double)g[i] * g[i];
  ck_assert_int_eq(c3_optim_step(o), CSAL3D_OK);
  ck_assert(fabs(o->last_norm - sqrt(ss)) < 1e-6 * sqrt(ss));
  double scale = 0.5 / (sqrt(ss) + 1e-6);
  ck_assert(fabs(o->last_scale - (scale < 1 ? scale : 1)) < 1e-9);
  ck_assert(o->last_lr == 1e-2);
  ck_assert_int_eq(o->step, 1);
  ck_assert_int_eq(c3_model_get_params(m, after), CSAL3D_OK);
  /* Host AdamW, first step: m = (1-b1) g', v = (1-b2) g'^2, bias-corrected ratio
   * m^/(sqrt(v^)+eps) = g'/(|g'| + eps); p = p (1 - lr wd) - lr * that. */
  double worst = 0;
  for (size_t i = 0; i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    double wd = p->decay ? 0.1 : 0.0;
    for (size_t k = 0; k < p->numel; k++) {
      size_t j = p->offset + k;
      double gs = (double)g[j] * o->last_scale;
      double want = before[j] * (1 - 1e-2 * wd) - 1e-2 * gs / (fabs(gs) + 1e-8);
      double err = fabs(after[j] - want);
      if (err > worst) worst = err;
    }
  }
  ck_assert_msg(worst < 2e-6, "AdamW update differs from the host formula by %g", worst);
  /* With zero gradients, only the decay group moves (shrinks by lr * wd). */
  ck_assert_int_eq(c3_model_get_params(m, before), CSAL3D_OK);
  ck_assert_int_eq(c3_model_zero_grad(m), CSAL3D_OK);
  ck_assert_int_eq(c3_optim_config_check(&o->cfg), CSAL3D_OK);
  c3_optim *o2;
  ck_assert_int_eq(c3_optim_create(m, &c, &o2), CSAL3D_OK);
  ck_assert_int_eq(c3_optim_step(o2), CSAL3D_OK);
  ck_assert_int_eq(c3_model_get_params(m, after), CSAL3D_OK);
  for (size_t i = 0; i < m->nparams; i++) {
    const c3_param *p = &m->params[i];
    for (size_t k = 0; k < p->numel; k += 7) {
      size_t j = p->offset + k;
      float want = p->decay ? before[j] * (1 - 1e-2f * 0.1f) : before[j];
      ck_assert_msg(fabsf(after[j] - want) <= 1e-7f * (1 + fabsf(want)), "%s[%zu]: %g vs %g",
                    p->name, k, after[j], want);
    }
  }
  c3_optim_free(o2);
  /* A non-finite gradient is refused and changes nothing. */
  set_grads(m, 1, 1.0f);
  float nan = NAN;
  ck_assert_int_eq(e->upload(e, m->g + 5, &nan, sizeof nan), CSAL3D_OK);
  ck_assert_int_eq(c3_model_get_params(m, before), CSAL3D_OK);
  ck_assert_int_eq(c3_optim_step(o), CSAL3D_ERR_NUMERICAL);
  ck_assert_int_eq(c3_model_get_params(m, after), CSAL3D_OK);
  ck_assert_mem_eq(before, after, m->total * sizeof(float));
  ck_assert_int_eq(o->step, 1);
  free(before);
  free(after);
  free(g);
  c3_optim_free(o);
  c3_model_free(m);
  c3_engine_close(e);
}
END_TEST

static char tmpdir[256];

/* A new temporary folder in tmpdir and path = tmpdir/name. */
static void temp_file(char *path, size_t cap, const char *name) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/c3_ckpt_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  snprintf(path, cap, "%s/%s", tmpdir, name);
}

START_TEST(exact_resume_and_checksum) {
  c3_engine *e = engine();
  char path[512];
  temp_file(path, sizeof path, "run.safetensors");
  c3_optim_config c;
  c3_optim_config_default(&c, 8);
  c.warmup_steps = 3;
  c.lr = 1e-3;
  /* Reference: 6 uninterrupted steps. */
  c3_model *a = small_model(e, 5);
  c3_optim *oa;
  ck_assert_int_eq(c3_optim_create(a, &c, &oa), CSAL3D_OK);
  for (int64_t s = 0; s < 6; s++) {
    set_grads(a, s, s == 4 ? 100.0f : 0.05f); /* one clipped step */
    ck_assert_int_eq(c3_optim_step(oa), CSAL3D_OK);
  }
  /* Interrupted: 3 steps, save, a fresh model and optimiser resume. */
  c3_model *b = small_model(e, 5);
  c3_optim *ob;
  ck_assert_int_eq(c3_optim_create(b, &c, &ob), CSAL3D_OK);
  for (int64_t s = 0; s < 3; s++) {
    set_grads(b, s, 0.05f);
    ck_assert_int_eq(c3_optim_step(ob), CSAL3D_OK);
  }
  const char *extra[] = {"data_position", "17", NULL};
  ck_assert_int_eq(c3_checkpoint_save(path, b, ob, 1234, extra), CSAL3D_OK);
  c3_optim_free(ob);
  c3_model_free(b);

  c3_safetensors *st;
  int verified;
  ck_assert_int_eq(c3_checkpoint_open(path, &st, &verified), CSAL3D_OK);
  ck_assert_int_eq(verified, 1);
  ck_assert_str_eq(c3_st_metadata(st, "data_position"), "17");
  ck_assert_str_eq(c3_st_metadata(st, "format"), "csal3d-checkpoint");
  ck_assert_ptr_nonnull(c3_st_find(st, "swinViT.layers1.0.blocks.0.attn.qkv.weight"));
  ck_assert_ptr_nonnull(c3_st_find(st, "optim.exp_avg_sq.conv.20.bias"));
  c3_model_config mc;
  ck_assert_int_eq(c3_model_config_from_metadata(st, &mc), CSAL3D_OK);
  c3_model *r;
  ck_assert_int_eq(c3_model_create(e, &mc, &r), CSAL3D_OK);
  c3_optim_config other;
  c3_optim_config_default(&other, 1000); /* overwritten by the checkpoint's */
  c3_optim *orr;
  ck_assert_int_eq(c3_optim_create(r, &other, &orr), CSAL3D_OK);
  uint64_t seed = 0;
  ck_assert_int_eq(c3_checkpoint_restore(st, r, orr, &seed), CSAL3D_OK);
  ck_assert_uint_eq(seed, 1234);
  ck_assert_int_eq(orr->step, 3);
  ck_assert_int_eq(orr->cfg.total_steps, 8);
  ck_assert(orr->cfg.lr == 1e-3);
  c3_st_free(st);
  for (int64_t s = 3; s < 6; s++) {
    set_grads(r, s, s == 4 ? 100.0f : 0.05f);
    ck_assert_int_eq(c3_optim_step(orr), CSAL3D_OK);
  }
  float *pa = malloc(a->total * sizeof(float)), *pr = malloc(a->total * sizeof(float));
  ck_assert_int_eq(c3_model_get_params(a, pa), CSAL3D_OK);
  ck_assert_int_eq(c3_model_get_params(r, pr), CSAL3D_OK);
  ck_assert_msg(memcmp(pa, pr, a->total * sizeof(float)) == 0,
                "resumed training differs from uninterrupted training");
  float *ma = malloc(a->total * sizeof(float)), *va = malloc(a->total * sizeof(float));
  float *mr = malloc(a->total * sizeof(float)), *vr = malloc(a->total * sizeof(float));
  ck_assert_int_eq(c3_optim_get_moments(oa, ma, va), CSAL3D_OK);
  ck_assert_int_eq(c3_optim_get_moments(orr, mr, vr), CSAL3D_OK);
  ck_assert_mem_eq(ma, mr, a->total * sizeof(float));
  ck_assert_mem_eq(va, vr, a->total * sizeof(float));

  /* Corruption: a flipped data byte and an edited metadata value. */
  FILE *f = fopen(path, "rb");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *all = malloc((size_t)size);
  ck_assert_uint_eq(fread(all, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  char bad[600];
  snprintf(bad, sizeof bad, "%s/bad.safetensors", tmpdir);
  all[size - 100] ^= 1;
  f = fopen(bad, "wb");
  fwrite(all, 1, (size_t)size, f);
  fclose(f);
  ck_assert_int_eq(c3_checkpoint_open(bad, &st, &verified), CSAL3D_ERR_CHECKSUM);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "bad.safetensors: checksum mismatch"));
  all[size - 100] ^= 1;
  char *hit = memmem(all, (size_t)size, "\"data_position\":\"17\"", 20);
  ck_assert_ptr_nonnull(hit);
  hit[18] = '8';
  f = fopen(bad, "wb");
  fwrite(all, 1, (size_t)size, f);
  fclose(f);
  ck_assert_int_eq(c3_checkpoint_open(bad, &st, &verified), CSAL3D_ERR_CHECKSUM);
  free(all);
  unlink(bad);

  /* A model of another size refuses the checkpoint. */
  ck_assert_int_eq(c3_checkpoint_open(path, &st, &verified), CSAL3D_OK);
  c3_model_config big;
  c3_model_config_default(&big, 24, 1);
  c3_model *wrong;
  ck_assert_int_eq(c3_model_create(e, &big, &wrong), CSAL3D_OK);
  ck_assert_int_eq(c3_checkpoint_restore(st, wrong, NULL, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "embed_dim 12"));
  c3_model_free(wrong);
  c3_st_free(st);
  /* Reserved extra keys are refused. */
  const char *clash[] = {"step", "9", NULL};
  ck_assert_int_eq(c3_checkpoint_save(path, r, orr, 1, clash), CSAL3D_ERR_INVALID_ARGUMENT);

  free(pa);
  free(pr);
  free(ma);
  free(va);
  free(mr);
  free(vr);
  c3_optim_free(oa);
  c3_optim_free(orr);
  c3_model_free(a);
  c3_model_free(r);
  unlink(path);
  ck_assert_int_eq(rmdir(tmpdir), 0); /* nothing else left behind */
  c3_engine_close(e);
}
END_TEST

/* Without an optimiser: weights only, still checksummed. */
START_TEST(weights_only_checkpoint) {
  c3_engine *e = engine();
  char path[512];
  temp_file(path, sizeof path, "w.safetensors");
  c3_model *m = small_model(e, 9);
  ck_assert_int_eq(c3_checkpoint_save(path, m, NULL, 77, NULL), CSAL3D_OK);
  c3_safetensors *st;
  int verified;
  ck_assert_int_eq(c3_checkpoint_open(path, &st, &verified), CSAL3D_OK);
  ck_assert_int_eq(verified, 1);
  ck_assert_ptr_null(c3_st_find(st, "optim.exp_avg.conv.0.weight"));
  c3_model *r = small_model(e, 10);
  uint64_t seed;
  ck_assert_int_eq(c3_checkpoint_restore(st, r, NULL, &seed), CSAL3D_OK);
  ck_assert_uint_eq(seed, 77);
  float *a = malloc(m->total * sizeof(float)), *b = malloc(m->total * sizeof(float));
  c3_model_get_params(m, a);
  c3_model_get_params(r, b);
  ck_assert_mem_eq(a, b, m->total * sizeof(float));
  free(a);
  free(b);
  c3_st_free(st);
  c3_model_free(m);
  c3_model_free(r);
  unlink(path);
  rmdir(tmpdir);
  c3_engine_close(e);
}
END_TEST

/* Starting weights (model/import.c): key mapping with reasons, the report, the parts
 * initialised as for a new model, and every refusal leaving the model unchanged. */
static void tang_name(const char *monai, const char *prefix, char *out, size_t cap) {
  snprintf(out, cap, "%s%s", prefix, monai + 8); /* without "swinViT." */
  char *fc = strstr(out, ".linear1."), *fc2 = strstr(out, ".linear2.");
  if (fc) memmove(fc + 3, fc + 7, strlen(fc + 7) + 1), memcpy(fc, ".fc1", 4);
  if (fc2) memmove(fc2 + 3, fc2 + 7, strlen(fc2 + 7) + 1), memcpy(fc2, ".fc2", 4);
}

/* The encoder of src (values a) under Tang et al.'s names with `prefix`, less the tensor
 * named `skip`, plus `extra` (a tensor name with a [1] shape, or NULL) and metadata
 * key=value pairs (NULL-terminated); parsed as `source`. */
typedef struct mem_file {
  c3_safetensors *st;
  void *buf;
} mem_file;

static mem_file tang_file(const c3_model *src, const float *a, const char *prefix,
                          const char *skip, const char *extra, const char *const *meta) {
  c3_st_writer *w;
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  char name[256];
  for (size_t i = 0; i < src->nparams; i++) {
    const c3_param *p = &src->params[i];
    if (strncmp(p->name, "swinViT.", 8) != 0 || (skip && !strcmp(skip, p->name))) continue;
    tang_name(p->name, prefix, name, sizeof name);
    ck_assert_int_eq(c3_st_writer_add(w, name, C3_ST_F32, p->ndim, p->shape, a + p->offset),
                     CSAL3D_OK);
  }
  int64_t one[1] = {1};
  float zero = 0;
  if (extra) ck_assert_int_eq(c3_st_writer_add(w, extra, C3_ST_F32, 1, one, &zero), CSAL3D_OK);
  for (size_t i = 0; meta && meta[i]; i += 2)
    ck_assert_int_eq(c3_st_writer_set_metadata(w, meta[i], meta[i + 1]), CSAL3D_OK);
  size_t len;
  mem_file f;
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &f.buf, &len), CSAL3D_OK);
  ck_assert_int_eq(c3_st_parse(f.buf, len, "tang.safetensors", &f.st), CSAL3D_OK);
  c3_st_writer_free(w);
  return f;
}

/* Imports and expects failure with `code` and `text` in the message, m unchanged. */
static void import_fails(c3_model *m, mem_file f, csal3d_status code, const char *text) {
  float *before = malloc(m->total * 4), *after = malloc(m->total * 4);
  c3_model_get_params(m, before);
  c3_merge_order mo = m->cfg.merge_order;
  ck_assert_int_eq(c3_model_import(m, f.st, 5, NULL), code);
  ck_assert_msg(strstr(csal3d_last_error(), text), "'%s' lacks '%s'", csal3d_last_error(), text);
  c3_model_get_params(m, after);
  ck_assert_msg(memcmp(before, after, m->total * 4) == 0, "a refused import changed the model");
  ck_assert_int_eq(m->cfg.merge_order, mo);
  free(before);
  free(after);
  c3_st_free(f.st);
  c3_free(f.buf);
}

START_TEST(import_maps_public_keys) {
  char out[256];
  c3_import_why why;
  ck_assert_int_eq(c3_import_map_name("module.layers2.0.blocks.1.mlp.fc1.weight", out, sizeof out,
                                      &why), C3_IMPORT_MAPPED);
  ck_assert_str_eq(out, "swinViT.layers2.0.blocks.1.mlp.linear1.weight");
  ck_assert_int_eq(why, C3_IMPORT_WHY_NONE);
  ck_assert_int_eq(c3_import_map_name("state_dict.module.swin_vit.patch_embed.proj.bias", out,
                                      sizeof out, NULL), C3_IMPORT_MAPPED);
  ck_assert_str_eq(out, "swinViT.patch_embed.proj.bias");
  static const struct {
    const char *key;
    c3_import_why why;
  } ignored[] = {{"swinViT.layers1.0.blocks.0.attn.relative_position_index", C3_IMPORT_WHY_INDEX},
                 {"module.contrastive_head.weight", C3_IMPORT_WHY_OTHER_HEAD},
                 {"module.mask_token", C3_IMPORT_WHY_OTHER_HEAD},
                 {"decoder5.transp_conv.conv.weight", C3_IMPORT_WHY_SEGMENTATION},
                 {"encoder10.layer.conv1.conv.weight", C3_IMPORT_WHY_SEGMENTATION},
                 {"out.conv.conv.bias", C3_IMPORT_WHY_SEGMENTATION},
                 {"optim.exp_avg.conv.0.weight", C3_IMPORT_WHY_OPTIMISER}};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++) {
    ck_assert_int_eq(c3_import_map_name(ignored[i].key, out, sizeof out, &why), C3_IMPORT_IGNORED);
    ck_assert_int_eq(why, ignored[i].why);
  }
  ck_assert_int_eq(c3_import_map_name("conv.4.weight", out, sizeof out, &why), C3_IMPORT_MAPPED);
  ck_assert_str_eq(out, "conv.4.weight");

  c3_engine *e = engine();
  c3_model *src = small_model(e, 21), *dst = small_model(e, 22);
  float *a = malloc(src->total * 4), *b = malloc(src->total * 4), *fresh = malloc(src->total * 4);
  c3_model_get_params(src, a);
  ck_assert_int_eq(c3_model_init_host(dst, 5, fresh), CSAL3D_OK); /* a new model of seed 5 */
  int encoder = 0;
  for (size_t i = 0; i < src->nparams; i++) encoder += !strncmp(src->params[i].name, "swinViT.", 8);
  /* Tang et al.'s encoder alone, with an index buffer, another head and an unknown tensor. */
  c3_st_writer *w;
  void *buf;
  size_t len;
  mem_file f0 = tang_file(src, a, "module.", NULL, "module.norm.weight", NULL);
  c3_safetensors *st0 = f0.st;
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  int64_t idx_shape[2] = {343, 343}, ch[2] = {512, 192};
  int64_t *idx = calloc(343 * 343, 8);
  float *junk = calloc(512 * 192, 4);
  for (size_t i = 0; i < c3_st_count(st0); i++) {
    const c3_st_entry *x = c3_st_entry_at(st0, i);
    ck_assert_int_eq(c3_st_writer_add(w, x->name, x->dtype, x->ndim, x->shape, x->data), CSAL3D_OK);
  }
  ck_assert_int_eq(c3_st_writer_add(w, "module.layers1.0.blocks.0.attn.relative_position_index",
                                    C3_ST_I64, 2, idx_shape, idx), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_add(w, "module.contrastive_head.weight", C3_ST_F32, 2, ch, junk),
                   CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
  c3_st_writer_free(w);
  c3_st_free(st0);
  c3_free(f0.buf);
  c3_safetensors *st;
  ck_assert_int_eq(c3_st_parse(buf, len, "tang.safetensors", &st), CSAL3D_OK);
  c3_import_report rep;
  ck_assert_msg(c3_model_import(dst, st, 5, &rep) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(rep.loaded, encoder);
  ck_assert_int_eq(rep.initialised, (int)dst->nparams - encoder); /* rotation head, decoder */
  ck_assert_int_eq(rep.ignored, 3);
  ck_assert_int_eq(rep.ignored_why[C3_IMPORT_WHY_UNKNOWN], 1);
  ck_assert_int_eq(rep.ignored_why[C3_IMPORT_WHY_INDEX], 1);
  ck_assert_int_eq(rep.ignored_why[C3_IMPORT_WHY_OTHER_HEAD], 1);
  char want[256];
  snprintf(want, sizeof want, "loaded %d tensors (the encoder); initialised %d as for a new model "
           "(the rotation head, the decoder); ignored 3 (", encoder, (int)dst->nparams - encoder);
  ck_assert_msg(strstr(rep.summary, want), "%s", rep.summary);
  ck_assert_ptr_nonnull(strstr(rep.details,
                               "loaded      swinViT.layers2.0.blocks.1.mlp.linear1.weight"
                               " <- module.layers2.0.blocks.1.mlp.fc1.weight\n"));
  ck_assert_ptr_nonnull(strstr(rep.details, "initialised rotation_head.weight\n"));
  ck_assert_ptr_nonnull(
      strstr(rep.details, "ignored     module.norm.weight: not in the SSL model\n"));
  c3_model_get_params(dst, b);
  for (size_t i = 0; i < dst->nparams; i++) { /* the rest as a NEW model, not as before */
    const c3_param *p = &dst->params[i];
    const float *ref = strncmp(p->name, "swinViT.", 8) == 0 ? a : fresh;
    ck_assert_msg(memcmp(b + p->offset, ref + p->offset, p->numel * 4) == 0, "%s", p->name);
  }
  ck_assert_int_eq(dst->cfg.merge_order, C3_MERGE_DISTINCT);
  c3_import_report_free(&rep);
  c3_st_free(st);
  c3_free(buf);
  /* Wrapped in state_dict, MONAI's order from the metadata, feature_size as the width. */
  const char *monai[] = {"merge_order", "monai", "feature_size", "12", NULL};
  mem_file f = tang_file(src, a, "state_dict.module.", NULL, NULL, monai);
  st = f.st;
  buf = f.buf;
  ck_assert_msg(c3_model_import(dst, st, 5, &rep) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(rep.loaded, encoder);
  ck_assert_int_eq(dst->cfg.merge_order, C3_MERGE_MONAI);
  ck_assert_ptr_nonnull(strstr(rep.summary, "MONAI's patch merging order"));
  c3_import_report_free(&rep);
  c3_st_free(st);
  c3_free(buf);
  /* Another width: INVALID_ARGUMENT naming the tensor, both shapes and the option. */
  c3_model_config big;
  c3_model_config_default(&big, 24, 1);
  c3_model *wide;
  ck_assert_int_eq(c3_model_create(e, &big, &wide), CSAL3D_OK);
  import_fails(wide, tang_file(src, a, "module.", NULL, NULL, NULL),
               CSAL3D_ERR_INVALID_ARGUMENT,
               "'module.patch_embed.proj.weight' has shape [12, 1, 2, 2, 2], the model's "
               "'swinViT.patch_embed.proj.weight' [24, 1, 2, 2, 2]: the weights have embed_dim "
               "12, the model 24; set the option embed_dim to 12");
  c3_model_config two;
  c3_model_config_default(&two, 12, 2);
  c3_model *m2;
  ck_assert_int_eq(c3_model_create(e, &two, &m2), CSAL3D_OK);
  import_fails(m2, tang_file(src, a, "module.", NULL, NULL, NULL),
               CSAL3D_ERR_INVALID_ARGUMENT, "the weights take 1 input channel(s), the model 2");
  /* A partial encoder, an encoder tensor of another architecture, metadata that
   * contradicts the weights, a file without an encoder: refused, nothing changed. */
  import_fails(dst, tang_file(src, a, "module.", "swinViT.layers4.0.downsample.norm.bias", NULL,
                              NULL), CSAL3D_ERR_FORMAT,
               "has 117 of the encoder's 118 tensors; 'swinViT.layers4.0.downsample.norm.bias' "
               "is missing");
  import_fails(dst, tang_file(src, a, "module.", NULL, "module.layers3.0.blocks.2.norm1.weight",
                              NULL), CSAL3D_ERR_FORMAT,
               "'module.layers3.0.blocks.2.norm1.weight' (as "
               "'swinViT.layers3.0.blocks.2.norm1.weight') is no parameter of the model's Swin "
               "encoder (depths 2,2,2,2");
  const char *wrong[] = {"feature_size", "24", NULL};
  import_fails(dst, tang_file(src, a, "module.", NULL, NULL, wrong), CSAL3D_ERR_FORMAT,
               "metadata feature_size 24 contradicts its weights (embed_dim 12");
  const char *disagree[] = {"feature_size", "24", "embed_dim", "12", NULL};
  import_fails(dst, tang_file(src, a, "module.", NULL, NULL, disagree),
               CSAL3D_ERR_FORMAT, "metadata embed_dim 12 and feature_size 24 disagree");
  const char *deeper[] = {"depths", "2,2,6,2", NULL};
  import_fails(dst, tang_file(src, a, "module.", NULL, NULL, deeper),
               CSAL3D_ERR_UNSUPPORTED, "metadata depths 2,2,6,2: the model has 2,2,2,2");
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  int64_t one[1] = {1};
  ck_assert_int_eq(c3_st_writer_add(w, "fc.weight", C3_ST_F32, 1, one, junk), CSAL3D_OK);
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
  c3_st_writer_free(w);
  ck_assert_int_eq(c3_st_parse(buf, len, "resnet.safetensors", &st), CSAL3D_OK);
  import_fails(dst, (mem_file){st, buf}, CSAL3D_ERR_FORMAT,
               "resnet.safetensors: no tensor of a Swin encoder");
  /* A tensor of another shape names both. */
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  for (size_t i = 0; i < src->nparams; i++) {
    const c3_param *p = &src->params[i];
    int64_t sh[5];
    memcpy(sh, p->shape, sizeof sh);
    if (!strcmp(p->name, "rotation_head.weight")) sh[0] = 5;
    ck_assert_int_eq(c3_st_writer_add(w, p->name, C3_ST_F32, p->ndim, sh,
                                      sh[0] == 5 ? (const void *)junk : a + p->offset), CSAL3D_OK);
  }
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
  c3_st_writer_free(w);
  ck_assert_int_eq(c3_st_parse(buf, len, "five.safetensors", &st), CSAL3D_OK);
  import_fails(dst, (mem_file){st, buf}, CSAL3D_ERR_FORMAT,
               "'rotation_head.weight' has shape [5, 192], the model's 'rotation_head.weight' "
               "needs [4, 192]");
  /* Our own checkpoint: everything loaded, the optimiser's moments ignored. */
  char path[512];
  temp_file(path, sizeof path, "own.safetensors");
  c3_optim_config oc;
  c3_optim_config_default(&oc, 10);
  c3_optim *o;
  ck_assert_int_eq(c3_optim_create(src, &oc, &o), CSAL3D_OK);
  ck_assert_int_eq(c3_checkpoint_save(path, src, o, 1, NULL), CSAL3D_OK);
  ck_assert_int_eq(c3_checkpoint_open(path, &st, NULL), CSAL3D_OK);
  ck_assert_msg(c3_model_import(dst, st, 5, &rep) == CSAL3D_OK, "%s", csal3d_last_error());
  ck_assert_int_eq(rep.loaded, (int)dst->nparams);
  ck_assert_int_eq(rep.initialised, 0);
  ck_assert_int_eq(rep.ignored, 2 * (int)dst->nparams);
  ck_assert_int_eq(rep.ignored_why[C3_IMPORT_WHY_OPTIMISER], 2 * (int)dst->nparams);
  ck_assert_msg(strstr(rep.summary, "(the encoder, the rotation head, the decoder); nothing "
                                    "initialised; ignored 264 (264 optimiser state"), "%s",
                rep.summary);
  ck_assert_int_eq(dst->cfg.merge_order, C3_MERGE_DISTINCT); /* the file's order */
  c3_model_get_params(dst, b);
  ck_assert_msg(memcmp(a, b, src->total * 4) == 0, "own checkpoint: weights differ");
  c3_import_report_free(&rep);
  c3_st_free(st);
  c3_optim_free(o);
  unlink(path);
  rmdir(tmpdir);
  free(idx);
  free(junk);
  free(a);
  free(b);
  free(fresh);
  c3_model_free(wide);
  c3_model_free(m2);
  c3_model_free(src);
  c3_model_free(dst);
  c3_engine_close(e);
}
END_TEST

/* Exact resume through real training steps (forward, loss, backward, AdamW): two
 * uninterrupted steps equal one step, a checkpoint, a fresh model and one step. */
static void train_step(c3_model *m, c3_optim *o, const float *x, const float *t, float *dr,
                       float *dl, const int32_t *lab, const int64_t dhw[3], size_t vin) {
  c3_engine *e = m->e;
  double l1, l2;
  ck_assert_int_eq(c3_model_zero_grad(m), CSAL3D_OK);
  ck_assert_int_eq(c3_model_forward(m, x, 1, dhw, 1), CSAL3D_OK);
  ck_assert_int_eq(e->mse_loss(e, (int64_t)vin, c3_model_reconstruction(m), t, NULL, 1.0f, dr,
                               NULL, 0, &l1), CSAL3D_OK);
  ck_assert_int_eq(e->cross_entropy(e, 1, 4, c3_model_logits(m), lab, 1.0f, dl, 0, &l2),
                   CSAL3D_OK);
  ck_assert_int_eq(c3_model_backward(m, x, dr, dl, NULL), CSAL3D_OK);
  ck_assert_int_eq(c3_optim_step(o), CSAL3D_OK);
}

START_TEST(exact_resume_with_training_steps) {
  c3_engine *e = engine();
  char path[512];
  temp_file(path, sizeof path, "step.safetensors");
  int64_t dhw[3] = {32, 32, 32};
  size_t vin = 32 * 32 * 32;
  float *h = malloc(vin * 4), *x, *t, *dr, *dl;
  int32_t *lab, one = 2;
  for (size_t i = 0; i < vin; i++) h[i] = (float)((i * 7919) % 101) / 101.0f;
  ck_assert_int_eq(e->alloc(e, vin * 4, "x", (void **)&x), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, vin * 4, "t", (void **)&t), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, vin * 4, "dr", (void **)&dr), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, 16, "dl", (void **)&dl), CSAL3D_OK);
  ck_assert_int_eq(e->alloc(e, 4, "lab", (void **)&lab), CSAL3D_OK);
  e->upload(e, x, h, vin * 4);
  for (size_t i = 0; i < vin; i++) h[i] = 1.0f - h[i];
  e->upload(e, t, h, vin * 4);
  e->upload(e, lab, &one, 4);
  c3_optim_config c;
  c3_optim_config_default(&c, 10);
  c.warmup_steps = 1;
  c3_model *a = small_model(e, 3), *b = small_model(e, 3);
  c3_optim *oa, *ob;
  ck_assert_int_eq(c3_optim_create(a, &c, &oa), CSAL3D_OK);
  ck_assert_int_eq(c3_optim_create(b, &c, &ob), CSAL3D_OK);
  for (int s = 0; s < 3; s++) train_step(a, oa, x, t, dr, dl, lab, dhw, vin);
  for (int s = 0; s < 2; s++) train_step(b, ob, x, t, dr, dl, lab, dhw, vin);
  ck_assert_int_eq(c3_checkpoint_save(path, b, ob, 5, NULL), CSAL3D_OK);
  c3_optim_free(ob);
  c3_model_free(b);
  c3_safetensors *st;
  ck_assert_int_eq(c3_checkpoint_open(path, &st, NULL), CSAL3D_OK);
  c3_model *r = small_model(e, 99);
  c3_optim *orr;
  ck_assert_int_eq(c3_optim_create(r, &c, &orr), CSAL3D_OK);
  ck_assert_int_eq(c3_checkpoint_restore(st, r, orr, NULL), CSAL3D_OK);
  c3_st_free(st);
  train_step(r, orr, x, t, dr, dl, lab, dhw, vin);
  float *pa = malloc(a->total * 4), *pr = malloc(a->total * 4);
  c3_model_get_params(a, pa);
  c3_model_get_params(r, pr);
  ck_assert_msg(memcmp(pa, pr, a->total * 4) == 0, "resumed step differs");
  ck_assert_int_eq(orr->step, 3);
  free(pa);
  free(pr);
  free(h);
  e->free(e, x), e->free(e, t), e->free(e, dr), e->free(e, dl), e->free(e, lab);
  c3_optim_free(oa);
  c3_optim_free(orr);
  c3_model_free(a);
  c3_model_free(r);
  unlink(path);
  ck_assert_int_eq(rmdir(tmpdir), 0);
  c3_engine_close(e);
}
END_TEST

int main(void) {
  Suite *s = suite_create("checkpoint");
  TCase *t = tcase_create("optim+checkpoint");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, schedule_known_answers);
  tcase_add_test(t, groups_clipping_and_adamw_update);
  tcase_add_test(t, exact_resume_and_checksum);
  tcase_add_test(t, weights_only_checkpoint);
  tcase_add_test(t, import_maps_public_keys);
  tcase_add_test(t, exact_resume_with_training_steps);
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
