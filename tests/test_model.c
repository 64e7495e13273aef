/* Tests of lib/model that need only the engine's memory functions: configuration,
 * the parameter table (MONAI names, count, layout), initialisation statistics and
 * determinism, loading, metadata round trips. The numerics (forward, backward) are
 * in test_model_parity.c and test_model_grad.c. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/model.h"

static c3_engine *engine(void) {
  c3_engine *e;
  ck_assert_int_eq(c3_engine_open(CSAL3D_DEVICE_CPU, 0, &e), CSAL3D_OK);
  return e;
}

START_TEST(parameter_count_and_names) {
  c3_engine *e = engine();
  c3_model_config c;
  c3_model_config_default(&c, 48, 1);
  c3_model *m;
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_OK);
  ck_assert_uint_eq(c3_model_param_total(m), 18703463);
  /* 1 + 4 x (2 x 13 + 3) + 2 + 12 tensors */
  ck_assert_uint_eq(m->nparams, 2 + 4 * (2 * 13 + 3) + 2 + 12);
  ck_assert_str_eq(m->params[0].name, "swinViT.patch_embed.proj.weight");
  int i = c3_model_find_param(m, "swinViT.layers1.0.blocks.0.attn.qkv.weight");
  ck_assert_int_ge(i, 0);
  ck_assert_int_eq(m->params[i].shape[0], 144);
  ck_assert_int_eq(m->params[i].shape[1], 48);
  i = c3_model_find_param(m, "swinViT.layers4.0.blocks.1.attn.relative_position_bias_table");
  ck_assert_int_eq(m->params[i].shape[0], 2197);
  ck_assert_int_eq(m->params[i].shape[1], 24);
  ck_assert_int_eq(m->params[i].decay, 0);
  i = c3_model_find_param(m, "swinViT.layers2.0.downsample.reduction.weight");
  ck_assert_int_eq(m->params[i].shape[0], 192);
  ck_assert_int_eq(m->params[i].shape[1], 768);
  ck_assert_int_eq(m->params[i].decay, 1);
  ck_assert_int_ge(c3_model_find_param(m, "rotation_head.bias"), 0);
  i = c3_model_find_param(m, "conv.20.weight");
  ck_assert_int_eq(m->params[i].shape[0], 1);
  ck_assert_int_eq(m->params[i].shape[1], 48);
  ck_assert_int_eq(m->params[i].shape[4], 1);
  ck_assert_int_eq(c3_model_find_param(m, "conv.3.weight"), -1);
  ck_assert_int_eq(c3_model_find_param(m, "swinViT.layers1.0.blocks.0.mlp.fc1.weight"), -1);
  /* Decay only on linear and conv weights. */
  for (size_t k = 0; k < m->nparams; k++) {
    const c3_param *p = &m->params[k];
    size_t len = strlen(p->name);
    int is_weight = len > 7 && strcmp(p->name + len - 7, ".weight") == 0;
    int is_norm = strstr(p->name, "norm") != NULL;
    ck_assert_int_eq(p->decay, is_weight && !is_norm);
    ck_assert_uint_eq(p->offset % 16, 0);
    if (k + 1 < m->nparams) ck_assert_uint_le(p->offset + p->numel, m->params[k + 1].offset);
  }
  c3_model_free(m);
  /* Other channel counts. */
  c3_model_config_default(&c, 12, 2);
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_OK);
  i = c3_model_find_param(m, "swinViT.patch_embed.proj.weight");
  ck_assert_int_eq(m->params[i].shape[1], 2);
  i = c3_model_find_param(m, "conv.20.bias");
  ck_assert_int_eq(m->params[i].shape[0], 2);
  c3_model_free(m);
  c3_engine_close(e);
}
END_TEST

START_TEST(config_is_checked) {
  c3_engine *e = engine();
  c3_model_config c;
  c3_model *m;
  c3_model_config_default(&c, 40, 1);
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "embed_dim 40"));
  ck_assert_ptr_null(m);
  c3_model_config_default(&c, 48, 0);
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "in_channels 0"));
  c3_model_config_default(&c, 48, 1);
  c.heads[2] = 7;
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "num_heads[2] = 7"));
  c3_model_config_default(&c, 48, 1);
  c.patch = 4;
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_ERR_UNSUPPORTED);
  c3_model_free(NULL);
  c3_engine_close(e);
}
END_TEST

/* Mean and standard deviation of a host array. */
static void moments(const float *x, size_t n, double *mean, double *sd, float *lo,
                    float *hi) {
  double s = 0, s2 = 0;
  *lo = INFINITY, *hi = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    s += x[i];
    s2 += (double)x[i] * x[i];
    if (x[i] < *lo) *lo = x[i];
    if (x[i] > *hi) *hi = x[i];
  }
  *mean = s / (double)n;
  *sd = sqrt(s2 / (double)n - *mean * *mean);
}

START_TEST(initialisation_statistics_and_determinism) {
  c3_engine *e = engine();
  c3_model_config c;
  c3_model_config_default(&c, 24, 1);
  c3_model *m;
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_OK);
  ck_assert_int_eq(c3_model_init(m, 7), CSAL3D_OK);
  float *a = malloc(m->total * sizeof(float)), *b = malloc(m->total * sizeof(float));
  ck_assert_int_eq(c3_model_get_params(m, a), CSAL3D_OK);
  for (size_t k = 0; k < m->nparams; k++) {
    const c3_param *p = &m->params[k];
    const float *x = a + p->offset;
    double mean, sd;
    float lo, hi;
    moments(x, p->numel, &mean, &sd, &lo, &hi);
    switch (p->kind) {
      case C3_PK_LINEAR_W:
      case C3_PK_TABLE:
        if (p->numel >= 1000) {
          ck_assert_msg(fabs(sd - 0.02) < 0.002, "%s: sd %g", p->name, sd);
          ck_assert_msg(fabs(mean) < 0.003, "%s: mean %g", p->name, mean);
        }
        break;
      case C3_PK_LINEAR_B:
      case C3_PK_NORM_B:
        ck_assert_msg(lo == 0 && hi == 0, "%s not zero", p->name);
        break;
      case C3_PK_NORM_W:
        ck_assert_msg(lo == 1 && hi == 1, "%s not one", p->name);
        break;
      case C3_PK_CONV_W:
      case C3_PK_CONV_B: {
        double bound = 1.0 / sqrt((double)p->fan_in);
        ck_assert_msg(lo >= -bound && hi <= bound, "%s outside +-%g", p->name, bound);
        if (p->numel >= 1000) /* uniform: sd = bound / sqrt(3) */
          ck_assert_msg(fabs(sd - bound / sqrt(3.0)) < 0.1 * bound, "%s: sd %g",
                        p->name, sd);
        break;
      }
    }
  }
  /* Same seed, same values; another seed, other values. */
  ck_assert_int_eq(c3_model_init(m, 7), CSAL3D_OK);
  ck_assert_int_eq(c3_model_get_params(m, b), CSAL3D_OK);
  ck_assert_mem_eq(a, b, m->total * sizeof(float));
  ck_assert_int_eq(c3_model_init(m, 8), CSAL3D_OK);
  ck_assert_int_eq(c3_model_get_params(m, b), CSAL3D_OK);
  ck_assert(memcmp(a, b, m->total * sizeof(float)) != 0);
  free(a);
  free(b);
  c3_model_free(m);
  c3_engine_close(e);
}
END_TEST

START_TEST(save_and_load_round_trip_with_metadata) {
  c3_engine *e = engine();
  c3_model_config c;
  c3_model_config_default(&c, 12, 1);
  c.merge_order = C3_MERGE_MONAI;
  c.rot_input = C3_ROT_FIRST_TOKEN;
  c3_model *m;
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_OK);
  ck_assert_int_eq(c3_model_init(m, 3), CSAL3D_OK);
  float *host = malloc(m->total * sizeof(float));
  ck_assert_int_eq(c3_model_get_params(m, host), CSAL3D_OK);
  c3_st_writer *w;
  ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
  for (size_t k = 0; k < m->nparams; k++) {
    const c3_param *p = &m->params[k];
    ck_assert_int_eq(c3_st_writer_add(w, p->name, C3_ST_F32, p->ndim, p->shape,
                                      host + p->offset),
                     CSAL3D_OK);
  }
  ck_assert_int_eq(c3_model_config_to_metadata(&c, w), CSAL3D_OK);
  void *buf;
  size_t len;
  ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
  c3_safetensors *st;
  ck_assert_int_eq(c3_st_parse(buf, len, "ckpt", &st), CSAL3D_OK);
  c3_model_config c2;
  ck_assert_int_eq(c3_model_config_from_metadata(st, &c2), CSAL3D_OK);
  ck_assert_mem_eq(&c, &c2, sizeof c);
  c3_model *m2;
  ck_assert_int_eq(c3_model_create(e, &c2, &m2), CSAL3D_OK);
  ck_assert_int_eq(c3_model_load(m2, st, ""), CSAL3D_OK);
  float *host2 = malloc(m->total * sizeof(float));
  ck_assert_int_eq(c3_model_get_params(m2, host2), CSAL3D_OK);
  ck_assert_mem_eq(host, host2, m->total * sizeof(float));
  /* Wrong prefix: the first missing parameter is named. */
  ck_assert_int_eq(c3_model_load(m2, st, "param."), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(
      strstr(csal3d_last_error(), "'param.swinViT.patch_embed.proj.weight' is missing"));
  /* Another embed_dim: shape mismatch named. */
  c3_model *m3;
  c3_model_config c3;
  c3_model_config_default(&c3, 24, 1);
  ck_assert_int_eq(c3_model_create(e, &c3, &m3), CSAL3D_OK);
  ck_assert_int_eq(c3_model_load(m3, st, ""), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(),
                               "'swinViT.patch_embed.proj.weight' has shape [12, 1, 2, "
                               "2, 2], the model needs [24, 1, 2, 2, 2]"));
  c3_model_free(m3);
  c3_st_free(st);
  c3_free(buf);
  c3_st_writer_free(w);
  free(host);
  free(host2);
  c3_model_free(m2);
  c3_model_free(m);
  c3_engine_close(e);
}
END_TEST

START_TEST(metadata_errors_name_the_key) {
  const char *bad[][2] = {
      {"embed_dim", "twelve"}, {"depths", "2,2,2"},   {"num_heads", "3,6,12,x"},
      {"patch_size", "4"},     {"qkv_bias", "false"}, {"patch_merging", "v2"},
      {"merge_order", "odd"},  {"embed_dim", "13"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    c3_st_writer *w;
    ck_assert_int_eq(c3_st_writer_create(&w), CSAL3D_OK);
    ck_assert_int_eq(c3_st_writer_set_metadata(w, bad[i][0], bad[i][1]), CSAL3D_OK);
    void *buf;
    size_t len;
    ck_assert_int_eq(c3_st_writer_write_buffer(w, &buf, &len), CSAL3D_OK);
    c3_safetensors *st;
    ck_assert_int_eq(c3_st_parse(buf, len, "meta", &st), CSAL3D_OK);
    c3_model_config c;
    ck_assert_int_ne(c3_model_config_from_metadata(st, &c), CSAL3D_OK);
    const char *msg = csal3d_last_error();
    ck_assert_msg(strstr(msg, "meta") && (strstr(msg, bad[i][0]) || strstr(msg, bad[i][1])),
                  "%s=%s: %s", bad[i][0], bad[i][1], msg);
    c3_st_free(st);
    c3_free(buf);
    c3_st_writer_free(w);
  }
}
END_TEST

/* Every parameter of the reference files exists in the model with the same
 * shape, and the model has no parameter the files lack. */
START_TEST(names_match_the_reference_files) {
  const char *dir = getenv("CSAL3D_REFERENCE_DIR");
  char path[1024];
  snprintf(path, sizeof path, "%s/ssl_tiny_cube.safetensors",
           dir ? dir : "../shared/reference");
  if (access(path, R_OK) != 0) {
    printf("SKIP: %s not found\n", path);
    return;
  }
  c3_safetensors *st;
  ck_assert_msg(c3_st_open(path, &st) == CSAL3D_OK, "%s", csal3d_last_error());
  c3_model_config c;
  ck_assert_int_eq(c3_model_config_from_metadata(st, &c), CSAL3D_OK);
  c3_engine *e = engine();
  c3_model *m;
  ck_assert_int_eq(c3_model_create(e, &c, &m), CSAL3D_OK);
  size_t nref = 0;
  for (size_t i = 0; i < c3_st_count(st); i++) {
    const c3_st_entry *en = c3_st_entry_at(st, i);
    if (strncmp(en->name, "param.", 6) != 0) continue;
    nref++;
    int k = c3_model_find_param(m, en->name + 6);
    ck_assert_msg(k >= 0, "model lacks %s", en->name);
    ck_assert_int_eq(en->ndim, m->params[k].ndim);
    for (int d = 0; d < en->ndim; d++) ck_assert_int_eq(en->shape[d], m->params[k].shape[d]);
  }
  ck_assert_uint_eq(nref, m->nparams);
  ck_assert_int_eq(c3_model_load(m, st, "param."), CSAL3D_OK);
  c3_model_free(m);
  c3_engine_close(e);
  c3_st_free(st);
}
END_TEST

int main(void) {
  Suite *s = suite_create("model");
  TCase *t = tcase_create("params");
  tcase_set_timeout(t, 60);
  tcase_add_test(t, parameter_count_and_names);
  tcase_add_test(t, config_is_checked);
  tcase_add_test(t, initialisation_statistics_and_determinism);
  tcase_add_test(t, save_and_load_round_trip_with_metadata);
  tcase_add_test(t, metadata_errors_name_the_key);
  tcase_add_test(t, names_match_the_reference_files);
  suite_add_tcase(s, t);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
