/* csal3d_evaluate end to end on phantom CT cases (lib/pipeline/evaluate*.c): a tiny U-Net
 * trained for 30 iterations segments the liver well above what a broken trainer
 * reaches (all background: Dice 0; a flipped gradient sign drives the liver's
 * probability down: ~0), a cancelled run saves its checkpoint and a second run
 * continues from it to the network of an uninterrupted run, bit for bit (determinism
 * by seed), the results files follow the
 * documented schema, the case list reader and the comparison mode work. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csal3d/csal3d.h"
#include "test_omp_env.h"

#define ST_EQ(expr, want)                                                              \
  do {                                                                                 \
    csal3d_status st_ = (expr);                                                        \
    ck_assert_msg(st_ == (want), "%s: %d, want %d: %s", #expr, (int)st_, (int)(want),  \
                  csal3d_last_error());                                                \
  } while (0)

static char dir[256], data[300];

static void make_data(void) {
  if (dir[0]) return;
  snprintf(dir, sizeof dir, "/tmp/c3_evaluate_XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(dir));
  snprintf(data, sizeof data, "%s/phantom", dir);
  csal3d_phantom_options po;
  csal3d_phantom_options_init(&po);
  po.cases = 8;
  po.seed = 4;
  po.size = 40;
  po.slices = 24;
  ST_EQ(csal3d_phantom_generate(data, &po, NULL), CSAL3D_OK);
}

static csal3d_context *make_ctx(csal3d_progress_fn progress, void *user) {
  csal3d_context_options co;
  csal3d_context_options_init(&co);
  co.device = CSAL3D_DEVICE_CPU;
  co.threads = 2;
  co.progress = progress;
  co.progress_user_data = user;
  csal3d_context *ctx;
  ST_EQ(csal3d_context_create(&co, &ctx), CSAL3D_OK);
  return ctx;
}

static void small_options(csal3d_evaluate_options *o) {
  csal3d_evaluate_options_init(o);
  o->iterations = 30;
  o->batch_size = 3; /* the last of 3 is forced to foreground */
  o->stages = 3;
  o->widths[0] = 8, o->widths[1] = 16, o->widths[2] = 32;
  o->patch_size[0] = 32, o->patch_size[1] = 32, o->patch_size[2] = 16;
  o->learning_rate = 1e-2;
  o->seed = 5;
}

static const size_t train_ids[5] = {0, 1, 2, 3, 4};
static const size_t val_ids[3] = {5, 6, 7};

START_TEST(trains_segments_and_writes_results) {
  make_data();
  csal3d_context *ctx = make_ctx(NULL, NULL);
  csal3d_dataset *ds;
  ST_EQ(csal3d_dataset_open(data, NULL, &ds), CSAL3D_OK);
  csal3d_evaluate_options o;
  small_options(&o);
  char csv[400], json[400];
  snprintf(csv, sizeof csv, "%s/results.csv", dir);
  snprintf(json, sizeof json, "%s/results.json", dir);
  o.output_csv = csv;
  o.output_json = json;
  csal3d_evaluation *ev;
  ST_EQ(csal3d_evaluate(ctx, ds, train_ids, 5, val_ids, 3, &o, &ev), CSAL3D_OK);
  size_t n;
  int L;
  ST_EQ(csal3d_evaluation_size(ev, &n, &L), CSAL3D_OK);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(L, 4); /* liver, spleen, kidney, lesion */
  double dice[4], mean;
  ST_EQ(csal3d_evaluation_mean(ev, dice, &mean), CSAL3D_OK);
  printf("evaluate (phantom, 5 training cases, 30 iterations): Dice liver %.3f spleen %.3f "
         "kidney %.3f lesion %.3f, mean %.3f\n", dice[0], dice[1], dice[2], dice[3], mean);
  /* all background gives 0; a flipped gradient gives chance overlap (the liver fills
   * well under a third of a case) */
  ck_assert_double_gt(dice[0], 0.6);
  char id[64];
  double cd[4], cm;
  ST_EQ(csal3d_evaluation_case(ev, 1, id, sizeof id, cd, &cm), CSAL3D_OK);
  ck_assert_str_eq(id, "phantom_006");
  ST_EQ(csal3d_evaluation_case(ev, 1, id, 3, cd, &cm), CSAL3D_ERR_BUFFER_TOO_SMALL);
  /* the files: header, 3 case rows and the mean row */
  FILE *f = fopen(csv, "r");
  ck_assert_ptr_nonnull(f);
  char line[1024];
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert_str_eq(line, "strategy,budget,seed,train_seed,case,dice_1,dice_2,dice_3,dice_4,"
                         "mean_dice\n");
  int rows = 0;
  char last[1024] = "";
  while (fgets(line, sizeof line, f)) {
    rows++;
    snprintf(last, sizeof last, "%s", line);
  }
  fclose(f);
  ck_assert_int_eq(rows, 4);
  ck_assert_msg(!strncmp(last, "given,5,,5,mean,", 16), "%s", last);
  f = fopen(json, "r");
  ck_assert_ptr_nonnull(f);
  char buf[8192];
  size_t got = fread(buf, 1, sizeof buf - 1, f);
  buf[got] = '\0';
  fclose(f);
  ck_assert_ptr_nonnull(strstr(buf, "\"train_cases\""));
  ck_assert_ptr_nonnull(strstr(buf, "\"phantom_004\""));
  /* existing results are refused before any work */
  ST_EQ(csal3d_evaluate(ctx, ds, train_ids, 5, val_ids, 3, &o, NULL), CSAL3D_ERR_IO);
  /* bad arguments */
  size_t dup[2] = {1, 1};
  o.output_csv = NULL;
  ST_EQ(csal3d_evaluate(ctx, ds, dup, 2, val_ids, 3, &o, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ST_EQ(csal3d_evaluate(ctx, ds, train_ids, 5, train_ids, 1, &o, NULL),
        CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "both a training and a validation"));
  o.patch_size[2] = 18;
  ST_EQ(csal3d_evaluate(ctx, ds, train_ids, 5, val_ids, 3, &o, NULL), CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "the option patch_size"));
  csal3d_evaluation_free(ev);
  csal3d_dataset_free(ds);
  csal3d_context_free(ctx);
}
END_TEST

static int cancel_at_6(void *user, const char *stage, uint64_t done, uint64_t total) {
  int *armed = user;
  return *armed && !strcmp(stage, "evaluate-train") && done == 6;
}

START_TEST(cancel_saves_a_checkpoint_and_resumes) {
  make_data();
  int armed = 1;
  csal3d_context *ctx = make_ctx(cancel_at_6, &armed);
  csal3d_dataset *ds;
  ST_EQ(csal3d_dataset_open(data, NULL, &ds), CSAL3D_OK);
  csal3d_evaluate_options o;
  small_options(&o);
  o.iterations = 12;
  char ck[400];
  snprintf(ck, sizeof ck, "%s/eval.ckpt", dir);
  o.checkpoint = ck;
  const size_t val[1] = {7};
  ST_EQ(csal3d_evaluate(ctx, ds, train_ids, 3, val, 1, &o, NULL), CSAL3D_ERR_CANCELLED);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "saved at iteration 6"));
  struct stat sb;
  ck_assert_int_eq(stat(ck, &sb), 0);
  armed = 0;
  csal3d_evaluation *a, *b;
  ST_EQ(csal3d_evaluate(ctx, ds, train_ids, 3, val, 1, &o, &a), CSAL3D_OK);
  ck_assert_int_ne(stat(ck, &sb), 0); /* removed when the run is done */
  o.checkpoint = NULL;
  ST_EQ(csal3d_evaluate(ctx, ds, train_ids, 3, val, 1, &o, &b), CSAL3D_OK);
  double da[4], db[4];
  ST_EQ(csal3d_evaluation_case(a, 0, NULL, 0, da, NULL), CSAL3D_OK);
  ST_EQ(csal3d_evaluation_case(b, 0, NULL, 0, db, NULL), CSAL3D_OK);
  for (int l = 0; l < 4; l++)
    ck_assert_msg((isnan(da[l]) && isnan(db[l])) || da[l] == db[l],
                  "label %d: resumed %.17g, uninterrupted %.17g", l + 1, da[l], db[l]);
  csal3d_evaluation_free(a);
  csal3d_evaluation_free(b);
  csal3d_dataset_free(ds);
  csal3d_context_free(ctx);
}
END_TEST

static int cancel_after_one_run(void *user, const char *stage, uint64_t done, uint64_t total) {
  (void)total;
  int *armed = user;
  return *armed && !strcmp(stage, "evaluate-compare") && done == 1;
}

static int count_lines(const char *path) {
  FILE *f = fopen(path, "r");
  int n = 0, c;
  while (f && (c = fgetc(f)) != EOF) n += c == '\n';
  if (f) fclose(f);
  return n;
}

static int same_bytes(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa && fb, ca, cb;
  while (same && ((ca = fgetc(fa)) != EOF) | ((cb = fgetc(fb)) != EOF)) same = ca == cb;
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

START_TEST(case_lists_and_comparison) {
  make_data();
  csal3d_context *ctx = make_ctx(NULL, NULL);
  csal3d_dataset *ds;
  ST_EQ(csal3d_dataset_open(data, NULL, &ds), CSAL3D_OK);
  /* a manifest-like CSV and a plain list */
  char p1[400], p2[400];
  snprintf(p1, sizeof p1, "%s/sel.csv", dir);
  snprintf(p2, sizeof p2, "%s/sel.txt", dir);
  FILE *f = fopen(p1, "w");
  fprintf(f, "rank,case,path\n1,phantom_003,x\n2,\"phantom_001\",y\n");
  fclose(f);
  f = fopen(p2, "w");
  fprintf(f, "# ids\nphantom_002\n\nphantom_000\nphantom_009\n");
  fclose(f);
  size_t *idx, n;
  ST_EQ(csal3d_evaluate_read_cases(ds, p1, &idx, &n), CSAL3D_OK);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(idx[0], 3);
  ck_assert_uint_eq(idx[1], 1);
  csal3d_evaluate_free_indices(idx);
  ST_EQ(csal3d_evaluate_read_cases(ds, p2, &idx, &n), CSAL3D_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "phantom_009"));
  /* a dataset list: image paths relative to its folder, or absolute */
  char p3[400];
  snprintf(p3, sizeof p3, "%s/list.txt", data);
  f = fopen(p3, "w");
  fprintf(f, "imagesTr/phantom_006.nii.gz,labelsTr/phantom_006.nii.gz\n%s/imagesTr/"
          "phantom_002.nii.gz\n", data);
  fclose(f);
  ST_EQ(csal3d_evaluate_read_cases(ds, p3, &idx, &n), CSAL3D_OK);
  ck_assert_uint_eq(n, 2);
  ck_assert_uint_eq(idx[0], 6);
  ck_assert_uint_eq(idx[1], 2);
  csal3d_evaluate_free_indices(idx);
  unlink(p3);
  /* comparison: a pool of 5 scored cases (features made up), 2 strategies x 1 budget x
   * 2 seeds, validation = the labelled cases outside the pool */
  csal3d_scores *sc;
  ST_EQ(csal3d_scores_create(5, 2, &sc), CSAL3D_OK);
  for (int i = 0; i < 5; i++) {
    float feat[2] = {(float)i, (float)(i * i % 3)};
    ST_EQ(csal3d_scores_set_case_from_dataset(sc, i, ds, (size_t)i, 0.1f * (float)i, feat),
          CSAL3D_OK);
  }
  csal3d_evaluate_options o;
  small_options(&o);
  o.iterations = 2;
  o.per_case = 0;
  char csv[400], table[400];
  snprintf(csv, sizeof csv, "%s/compare.csv", dir);
  snprintf(table, sizeof table, "%s/table.csv", dir);
  o.output_csv = csv;
  csal3d_strategy st[2] = {CSAL3D_STRATEGY_RANDOM, CSAL3D_STRATEGY_URDS};
  int64_t budgets[1] = {2};
  uint64_t seeds[2] = {1, 2};
  csal3d_sampler_options so;
  csal3d_sampler_options_init(&so);
  so.kmeans_restarts = 1;
  csal3d_comparison *cmp;
  ST_EQ(csal3d_evaluate_compare(ctx, ds, sc, st, 2, budgets, 1, seeds, 2, NULL, 0, &so, &o, &cmp),
        CSAL3D_OK);
  csal3d_comparison_cell cells[4];
  size_t nc;
  ST_EQ(csal3d_comparison_cells(cmp, cells, sizeof cells[0], 4, &nc), CSAL3D_OK);
  ck_assert_uint_eq(nc, 2);
  ck_assert_int_eq(cells[0].strategy, CSAL3D_STRATEGY_RANDOM);
  ck_assert_int_eq(cells[1].runs, 2);
  ck_assert(cells[1].sd >= 0);
  ST_EQ(csal3d_comparison_write_table(cmp, table), CSAL3D_OK);
  f = fopen(csv, "r");
  char line[1024];
  int rows = 0;
  while (fgets(line, sizeof line, f)) rows++;
  fclose(f);
  ck_assert_int_eq(rows, 1 + 4); /* header + a mean row per run */
  f = fopen(table, "r");
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert_str_eq(line, "strategy,budget,runs,mean_dice,sd_dice\n");
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert_msg(!strncmp(line, "random,2,2,", 11), "%s", line);
  fclose(f);
  csal3d_comparison_free(cmp);
  csal3d_context_free(ctx);

  /* Run-level resume: cancelled after its first run, the same call again continues
   * with the other three and writes the uninterrupted comparison's CSV, byte for byte. */
  int armed = 1;
  ctx = make_ctx(cancel_after_one_run, &armed);
  char csv2[400], json2[400];
  snprintf(csv2, sizeof csv2, "%s/compare2.csv", dir);
  snprintf(json2, sizeof json2, "%s/compare2.json", dir);
  o.output_csv = csv2;
  o.output_json = json2;
  ST_EQ(csal3d_evaluate_compare(ctx, ds, sc, st, 2, budgets, 1, seeds, 2, NULL, 0, &so, &o, &cmp),
        CSAL3D_ERR_CANCELLED);
  ck_assert_int_eq(count_lines(csv2), 1 + 1);
  armed = 0;
  ST_EQ(csal3d_evaluate_compare(ctx, ds, sc, st, 2, budgets, 1, seeds, 2, NULL, 0, &so, &o, &cmp),
        CSAL3D_OK);
  ST_EQ(csal3d_comparison_cells(cmp, cells, sizeof cells[0], 4, &nc), CSAL3D_OK);
  ck_assert_int_eq(cells[0].reused, 1);
  ck_assert_int_eq(cells[1].reused, 0);
  ck_assert_int_eq(cells[0].runs + cells[1].runs, 4);
  csal3d_comparison_free(cmp);
  ck_assert_msg(same_bytes(csv, csv2), "resumed results differ from an uninterrupted run's");
  /* other settings: refused before any work, naming the difference */
  o.iterations = 3;
  ST_EQ(csal3d_evaluate_compare(ctx, ds, sc, st, 2, budgets, 1, seeds, 2, NULL, 0, &so, &o, NULL),
        CSAL3D_ERR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(csal3d_last_error(), "the option iterations is 2 there and 3 now"));
  o.iterations = 2;
  /* another grid into the same file: its earlier runs kept, one new run */
  uint64_t seeds3[3] = {1, 2, 3};
  ST_EQ(csal3d_evaluate_compare(ctx, ds, sc, st, 1, budgets, 1, seeds3, 3, NULL, 0, &so, &o, &cmp),
        CSAL3D_OK);
  ST_EQ(csal3d_comparison_cells(cmp, cells, sizeof cells[0], 4, &nc), CSAL3D_OK);
  ck_assert_uint_eq(nc, 1);
  ck_assert_int_eq(cells[0].runs, 3);
  ck_assert_int_eq(cells[0].reused, 2);
  csal3d_comparison_free(cmp);
  ck_assert_int_eq(count_lines(csv2), 1 + 5);
  /* a JSON that is not a results file is not replaced */
  f = fopen(json2, "w");
  fprintf(f, "{\"hello\": 1}\n");
  fclose(f);
  ST_EQ(csal3d_evaluate_compare(ctx, ds, sc, st, 1, budgets, 1, seeds, 1, NULL, 0, &so, &o, NULL),
        CSAL3D_ERR_FORMAT);
  csal3d_scores_free(sc);
  csal3d_dataset_free(ds);
  csal3d_context_free(ctx);
}
END_TEST

int main(int argc, char **argv) {
  (void)argc;
  c3_test_passive_openmp(argv);
  Suite *s = suite_create("evaluate");
  TCase *t = tcase_create("evaluate");
  tcase_set_timeout(t, 300);
  tcase_add_test(t, trains_segments_and_writes_results);
  tcase_add_test(t, cancel_saves_a_checkpoint_and_resumes);
  tcase_add_test(t, case_lists_and_comparison);
  suite_add_tcase(s, t);
  SRunner *r = srunner_create(s);
  srunner_set_fork_status(r, CK_NOFORK);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  char cmd[400];
  if (dir[0]) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  }
  return failed ? 1 : 0;
}
