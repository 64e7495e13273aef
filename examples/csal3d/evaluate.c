/* csal3d evaluate: does the selection help? Trains the library's U-Net on a training
 * selection and reports Dice on validation cases (csal3d_evaluate), or runs strategies x
 * budgets x selection seeds from a scores file and prints the table
 * (csal3d_evaluate_compare). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

#define MAX_LIST 64

static void evaluate_help(FILE *f) {
  fprintf(f,
          "usage: csal3d evaluate DATASET --train SELECTION -o RESULTS.csv [options]\n"
          "       csal3d evaluate DATASET --scores SCORES --budgets 5,10,20 -o RESULTS.csv\n"
          "                       [--strategies urds,typiclust,random] [--seeds 0,1,2]\n"
          "                       [--table TABLE.csv] [options]\n"
          "\n"
          "Does the selection help? Trains a 3-D U-Net (nnU-Net's plain U-Net: per stage two\n"
          "3x3x3 convolutions + instance norm + LeakyReLU, skip connections) on the labelled\n"
          "training cases, predicts each validation case by sliding windows and reports the\n"
          "Dice of every label (2|P&R|/(|P|+|R|)) per case and on average: a fast,\n"
          "deterministic proxy for nnU-Net training (docs/evaluation.md).\n"
          "\n"
          "With --train: one run on the cases of SELECTION (a manifest from 'csal3d select',\n"
          "a CSV with a case column, a text file of case ids, or a dataset list of\n"
          "'image[,label]' lines). With --scores: for each strategy, budget and selection\n"
          "seed, the cases that strategy chooses from the scores file's pool, one run each;\n"
          "then the table of mean +- sd (over the seeds) per strategy and budget. Each\n"
          "finished run is written to the results at once; the same command again after\n"
          "Ctrl-C, a kill or a failure continues with the runs not yet in them (the results\n"
          "JSON records the settings: other settings are refused, naming the difference).\n"
          "Another grid (strategies, budgets, seeds) with the same settings adds its runs\n"
          "to the same files.\n"
          "\n"
          "options:\n"
          "  --train SELECTION      the training cases (one run)\n"
          "  --scores SCORES        the pool's scores file (comparison)\n"
          "  --validation LIST      the validation cases, listed as --train takes them\n"
          "                         (default: every labelled case of DATASET not in the\n"
          "                         training selection, or not in the pool)\n"
          "  -o, --output PATH      the results CSV (required): a row per validation case\n"
          "                         and run, and a 'mean' row per run\n"
          "  --results-json PATH    the results as JSON too (with --scores, default: the\n"
          "                         CSV's path with .json: it records the settings, so\n"
          "                         that an interrupted comparison can continue)\n"
          "  --summary-only         only the mean row of each run (no per-case rows)\n"
          "  --overwrite            replace existing results (and the table); with\n"
          "                         --scores, start the comparison afresh\n"
          "comparison (--scores):\n"
          "  --strategies LIST      strategies (default urds,typiclust,random); see\n"
          "                         'csal3d select --help' for the names\n"
          "  --budgets LIST         training set sizes (required), e.g. 5,10,20\n"
          "  --seeds LIST           selection seeds (default 0,1,2)\n"
          "  --table PATH           the table as CSV (strategy,budget,runs,mean_dice,sd_dice)\n"
          "  --n-cand N             URDS candidates per cluster (default 3)\n"
          "  --kernel K             URDS clustering: mkkm (default) or reference\n"
          "training:\n"
          "  --iterations N         AdamW updates (default 250)\n"
          "  --batch B              patches per update (default 2; a third of each batch is\n"
          "                         centred on foreground)\n"
          "  --patch N              patch N or D,H,W, multiples of 2^(stages-1) (default: the\n"
          "                         median training shape rounded up, at most 128)\n"
          "  --widths LIST          channels per stage, one per stage (default\n"
          "                         16,32,64,128,256: 5 stages)\n"
          "  --lr X                 peak learning rate (default 1e-3, poly decay)\n"
          "  --weight-decay X       AdamW weight decay (default 3e-5)\n"
          "  --seed S               seed of the initialisation, patches and augmentation\n"
          "                         (default 0; the same for every run of a comparison)\n"
          "  --labels L             foreground labels 1..L (default: the largest label found)\n"
          "  --normalization N      auto (default: ct for CT datasets, else zscore), none,\n"
          "                         ct or zscore (nnU-Net's schemes)\n"
          "  --inference-batch N    windows per inference batch (default: --batch)\n"
          "  --checkpoint PATH      keep the training run's state in PATH (every\n"
          "                         --checkpoint-every iterations and on Ctrl-C): the same\n"
          "                         command again continues the run from it\n"
          "  --checkpoint-every K   iterations between checkpoints (default 100)\n"
          "%s%s",
          DATA_HELP, COMMON_HELP);
}

typedef struct evaluate_opts {
  const char *dataset, *train, *scores, *validation;
  const char *output, *results_json, *table, *checkpoint;
  int overwrite, summary_only;
  data_opts data;
  csal3d_evaluate_options eo; /* the library's defaults, changed by the flags */
  csal3d_strategy strategies[MAX_LIST];
  size_t n_strategies;
  int64_t budgets[MAX_LIST];
  size_t n_budgets;
  uint64_t seeds[MAX_LIST];
  size_t n_seeds;
  int n_cand;
  csal3d_kernel_mode kernel;
  int compare_only; /* a comparison option was given (refused with --train) */
} evaluate_opts;

static const choice norm_names[] = {{"auto", CSAL3D_EVALUATE_NORM_AUTO},
                                    {"none", CSAL3D_EVALUATE_NORM_NONE},
                                    {"ct", CSAL3D_EVALUATE_NORM_CT},
                                    {"zscore", CSAL3D_EVALUATE_NORM_ZSCORE},
                                    {"z-score", CSAL3D_EVALUATE_NORM_ZSCORE},
                                    {NULL, 0}};
static const choice kernel_names[] = {
    {"mkkm", CSAL3D_KERNEL_MKKM}, {"reference", CSAL3D_KERNEL_REFERENCE}, {NULL, 0}};

/* "a,b,c" into at most MAX_LIST items, each parsed by @p item (an exit code). */
static int parse_list(cli *c, const char *opt, const char *s, size_t *n, void *out,
                      int (*item)(cli *, const char *, const char *, void *, size_t)) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf)
    return usage_error(c, "%s: the list is too long", opt);
  *n = 0;
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    if (*n == MAX_LIST) return usage_error(c, "%s takes at most %d values", opt, MAX_LIST);
    int rc = item(c, opt, t, out, *n);
    if (rc) return rc;
    (*n)++;
  }
  if (*n == 0) return usage_error(c, "%s needs a comma-separated list, not '%s'", opt, s);
  return 0;
}

static int strategy_item(cli *c, const char *opt, const char *s, void *out, size_t i) {
  if (csal3d_strategy_from_name(s, &((csal3d_strategy *)out)[i]) != CSAL3D_OK)
    return usage_error(c, "%s: %s", opt, csal3d_last_error());
  return 0;
}
static int budget_item(cli *c, const char *opt, const char *s, void *out, size_t i) {
  return parse_i64(c, opt, s, 1, INT64_MAX / 4096, &((int64_t *)out)[i]);
}
static int seed_item(cli *c, const char *opt, const char *s, void *out, size_t i) {
  return parse_u64(c, opt, s, &((uint64_t *)out)[i]);
}
static int width_item(cli *c, const char *opt, const char *s, void *out, size_t i) {
  if (i >= CSAL3D_EVALUATE_MAX_STAGES)
    return usage_error(c, "%s: at most %d stages", opt, CSAL3D_EVALUATE_MAX_STAGES);
  return parse_int(c, opt, s, 1, 4096, &((int *)out)[i]);
}

/* The results JSON of a comparison when not given: the CSV's path with .json. */
static void default_json(const char *csv, char *buf, size_t cap) {
  size_t l = strlen(csv);
  if (l > 4 && !strcmp(csv + l - 4, ".csv")) snprintf(buf, cap, "%.*s.json", (int)(l - 4), csv);
  else snprintf(buf, cap, "%s.json", csv);
}

static int file_exists(const char *p) {
  struct stat sb;
  return p && stat(p, &sb) == 0;
}

/* The cases listed in @p path as dataset indices; an exit code. */
static int read_cases(cli *c, const csal3d_dataset *ds, const char *path, const char *opt,
                      size_t **idx, size_t *n) {
  csal3d_status s = csal3d_evaluate_read_cases(ds, path, idx, n);
  return s == CSAL3D_OK ? 0 : fail_at(c, s, "%s", opt);
}

/* ---- one run (--train) ---- */

static void print_run(cli *c, const evaluate_opts *o, const csal3d_evaluation *ev,
                      size_t n_train, double secs) {
  size_t n = 0;
  int L = 0;
  csal3d_evaluation_size(ev, &n, &L);
  double *mean = calloc((size_t)L + 1, sizeof *mean), *cd = calloc((size_t)L + 1, sizeof *cd);
  size_t *defined = calloc((size_t)L + 1, sizeof *defined);
  double m = NAN;
  if (!mean || !cd || !defined) {
    free(mean);
    free(cd);
    free(defined);
    return;
  }
  csal3d_evaluation_mean(ev, mean, &m);
  for (size_t i = 0; i < n; i++)
    if (csal3d_evaluation_case(ev, i, NULL, 0, cd, NULL) == CSAL3D_OK)
      for (int l = 0; l < L; l++) defined[l] += !isnan(cd[l]);
  if (c->json) {
    printf("{\"command\": \"evaluate\", \"mode\": \"train\", \"dataset\": ");
    json_str(stdout, o->dataset);
    printf(", \"train_cases\": %zu, \"validation_cases\": %zu, \"labels\": %d, \"dice\": [",
           n_train, n, L);
    for (int l = 0; l < L; l++) {
      if (l) printf(", ");
      json_num(stdout, mean[l]);
    }
    printf("], \"mean_dice\": ");
    json_num(stdout, m);
    printf(", \"results_csv\": ");
    json_str(stdout, o->output);
    if (o->results_json) {
      printf(", \"results_json\": ");
      json_str(stdout, o->results_json);
    }
    printf(", \"seconds\": %.3f}\n", secs);
  } else {
    char el[32];
    fmt_duration(el, sizeof el, secs);
    info(c, "trained on %zu cases and evaluated %zu validation cases in %s:\n", n_train, n, el);
    info(c, "  label  mean Dice  cases\n");
    for (int l = 0; l < L; l++) {
      if (isnan(mean[l])) info(c, "  %5d          -  %5zu\n", l + 1, defined[l]);
      else info(c, "  %5d     %.4f  %5zu\n", l + 1, mean[l], defined[l]);
    }
    info(c, "  mean      %.4f\n", m);
    info(c, "results: %s%s%s\n", o->output, o->results_json ? ", " : "",
         o->results_json ? o->results_json : "");
  }
  free(mean);
  free(cd);
  free(defined);
}

static int run_train(cli *c, const evaluate_opts *o, csal3d_dataset *ds,
                     const csal3d_evaluate_options *eo, const size_t *val, size_t nv) {
  size_t *tr = NULL, ntr = 0;
  int rc = read_cases(c, ds, o->train, "--train", &tr, &ntr);
  if (rc) return rc;
  csal3d_context *ctx = NULL;
  csal3d_evaluation *ev = NULL;
  bar b;
  memset(&b, 0, sizeof b);
  csal3d_status s = make_context(c, eo->seed, &ctx);
  if (s != CSAL3D_OK) goto lib_fail;
  info(c, "training on %zu cases: %" PRId64 " iterations of %" PRId64 " patches\n", ntr,
       eo->iterations, eo->batch_size);
  bar_start(&b, c, "evaluate-train", 0, (uint64_t)eo->iterations);
  double t0 = now();
  s = csal3d_evaluate(ctx, ds, tr, ntr, val, nv, eo, &ev);
  double secs = now() - t0;
  bar_finish(&b);
  if (s == CSAL3D_ERR_CANCELLED && g_interrupted) {
    if (o->checkpoint && file_exists(o->checkpoint))
      fprintf(stderr, "csal3d evaluate: interrupted; the training state is in %s: run the same "
              "command again to continue\n", o->checkpoint);
    else
      fprintf(stderr, "csal3d evaluate: interrupted; nothing kept (--checkpoint PATH keeps "
              "the training state)\n");
    rc = EXIT_INTERRUPTED;
    goto done;
  }
  if (s != CSAL3D_OK) goto lib_fail;
  print_run(c, o, ev, ntr, secs);
  rc = 0;
  goto done;
lib_fail:
  rc = fail(c, s);
done:
  csal3d_evaluation_free(ev);
  csal3d_context_free(ctx);
  csal3d_evaluate_free_indices(tr);
  return rc;
}

/* ---- the comparison (--scores) ---- */

static void print_table(cli *c, const evaluate_opts *o, const csal3d_comparison_cell *cells,
                        size_t nc, size_t nv, double secs) {
  int64_t runs = 0, reused = 0;
  for (size_t i = 0; i < nc; i++) {
    runs += cells[i].runs;
    reused += cells[i].reused;
  }
  if (c->json) {
    printf("{\"command\": \"evaluate\", \"mode\": \"compare\", \"dataset\": ");
    json_str(stdout, o->dataset);
    printf(", \"scores\": ");
    json_str(stdout, o->scores);
    printf(", \"validation_cases\": %zu, \"runs\": %" PRId64 ", \"reused\": %" PRId64
           ", \"results_csv\": ", nv, runs, reused);
    json_str(stdout, o->output);
    printf(", \"results_json\": ");
    json_str(stdout, o->results_json);
    if (o->table) {
      printf(", \"table_csv\": ");
      json_str(stdout, o->table);
    }
    printf(", \"seconds\": %.3f, \"table\": [", secs);
    for (size_t i = 0; i < nc; i++) {
      printf("%s{\"strategy\": ", i ? ", " : "");
      json_str(stdout, csal3d_strategy_name(cells[i].strategy));
      printf(", \"budget\": %" PRId64 ", \"runs\": %" PRId64 ", \"reused\": %" PRId64
             ", \"mean_dice\": ", cells[i].budget, cells[i].runs, cells[i].reused);
      json_num(stdout, cells[i].mean);
      printf(", \"sd_dice\": ");
      json_num(stdout, cells[i].sd);
      printf("}");
    }
    printf("]}\n");
    return;
  }
  char el[32];
  fmt_duration(el, sizeof el, secs);
  char from[64] = "";
  if (reused) snprintf(from, sizeof from, ", %" PRId64 " of them from the results file", reused);
  info(c, "mean Dice +- sd over the selection seeds (%" PRId64 " runs%s, %zu validation "
       "cases, %s):\n\n", runs, from, nv, el);
  info(c, "%-12s", "strategy");
  for (size_t b = 0; b < o->n_budgets; b++) {
    char h[32];
    snprintf(h, sizeof h, "budget %" PRId64, o->budgets[b]);
    info(c, b + 1 < o->n_budgets ? "  %-17s" : "  %s", h);
  }
  info(c, "\n");
  for (size_t q = 0; q < o->n_strategies; q++) {
    info(c, "%-12s", csal3d_strategy_name(o->strategies[q]));
    for (size_t b = 0; b < o->n_budgets; b++) {
      const csal3d_comparison_cell *x = &cells[q * o->n_budgets + b];
      char t[48];
      if (x->runs == 0 || isnan(x->mean)) snprintf(t, sizeof t, "-");
      else snprintf(t, sizeof t, "%.4f +- %.4f", x->mean, x->sd);
      info(c, b + 1 < o->n_budgets ? "  %-17s" : "  %s", t);
    }
    info(c, "\n");
  }
  info(c, "\nresults: %s, %s%s%s\n", o->output, o->results_json, o->table ? "; table: " : "",
       o->table ? o->table : "");
}

/* The default validation set's size: the labelled cases whose id is not in the pool. */
static size_t outside_pool(const csal3d_dataset *ds, const csal3d_scores *sc) {
  size_t n = 0, k = 0;
  int64_t np = 0;
  csal3d_dataset_size(ds, &n);
  csal3d_scores_size(sc, &np, NULL);
  for (size_t i = 0; i < n; i++) {
    char id[1024], pid[1024];
    int has = 0, in = 0;
    if (csal3d_dataset_case_info(ds, i, NULL, &has) != CSAL3D_OK || !has ||
        csal3d_dataset_case_string(ds, i, "id", id, sizeof id, NULL) != CSAL3D_OK)
      continue;
    for (int64_t j = 0; j < np && !in; j++)
      in = csal3d_scores_case_string(sc, j, "id", pid, sizeof pid, NULL) == CSAL3D_OK &&
           !strcmp(id, pid);
    k += !in;
  }
  return k;
}

static int run_compare(cli *c, const evaluate_opts *o, csal3d_dataset *ds,
                       const csal3d_evaluate_options *eo, const size_t *val, size_t nv) {
  csal3d_scores *sc = NULL;
  csal3d_context *ctx = NULL;
  csal3d_comparison *cmp = NULL;
  csal3d_comparison_cell *cells = NULL;
  bar b;
  memset(&b, 0, sizeof b);
  int rc;
  csal3d_status s = csal3d_scores_load(o->scores, &sc);
  if (s == CSAL3D_OK) s = make_context(c, eo->seed, &ctx);
  if (s != CSAL3D_OK) goto lib_fail;
  csal3d_sampler_options so;
  csal3d_sampler_options_init(&so);
  so.n_cand = o->n_cand;
  so.kernel = o->kernel;
  size_t total = o->n_strategies * o->n_budgets * o->n_seeds;
  info(c, "comparing %zu strategies x %zu budgets x %zu seeds: %zu runs of %" PRId64
       " iterations\n", o->n_strategies, o->n_budgets, o->n_seeds, total, eo->iterations);
  bar_start(&b, c, "evaluate-compare", 0, (uint64_t)total);
  double t0 = now();
  s = csal3d_evaluate_compare(ctx, ds, sc, o->strategies, o->n_strategies, o->budgets,
                              o->n_budgets, o->seeds, o->n_seeds, val, nv, &so, eo, &cmp);
  double secs = now() - t0;
  bar_finish(&b);
  if (s == CSAL3D_ERR_CANCELLED && g_interrupted) {
    fprintf(stderr, "csal3d evaluate: interrupted; the finished runs are in %s%s: run the same "
            "command again to continue with the others\n", o->results_json,
            o->checkpoint && file_exists(o->checkpoint) ? " and the run in progress in the "
                                                         "checkpoint" : "");
    rc = EXIT_INTERRUPTED;
    goto done;
  }
  if (s != CSAL3D_OK) goto lib_fail;
  size_t nc = 0;
  csal3d_comparison_cells(cmp, NULL, sizeof *cells, 0, &nc);
  cells = calloc(nc ? nc : 1, sizeof *cells);
  if (!cells) {
    fprintf(stderr, "csal3d evaluate: out of memory\n");
    rc = EXIT_MEMORY;
    goto done;
  }
  s = csal3d_comparison_cells(cmp, cells, sizeof *cells, nc, &nc);
  if (s == CSAL3D_OK && o->table) s = csal3d_comparison_write_table(cmp, o->table);
  if (s != CSAL3D_OK) goto lib_fail;
  print_table(c, o, cells, nc, val ? nv : outside_pool(ds, sc), secs);
  rc = 0;
  goto done;
lib_fail:
  rc = fail(c, s);
done:
  free(cells);
  csal3d_comparison_free(cmp);
  csal3d_context_free(ctx);
  csal3d_scores_free(sc);
  return rc;
}

static int run_evaluate(cli *c, evaluate_opts *o) {
  if (!o->train == !o->scores)
    return usage_error(c, "give the training cases with --train SELECTION, or a scores file "
                       "with --scores SCORES for a comparison (one of them)");
  if (!o->output) return usage_error(c, "give the results CSV to write with -o PATH");
  if (o->train && o->compare_only)
    return usage_error(c, "--strategies, --budgets, --seeds, --table, --n-cand and --kernel "
                       "are for a comparison (--scores), not --train");
  if (o->scores && o->n_budgets == 0)
    return usage_error(c, "give the budgets to compare with --budgets LIST (e.g. 5,10,20)");
  char json_buf[8192];
  if (o->scores && !o->results_json) {
    default_json(o->output, json_buf, sizeof json_buf);
    o->results_json = json_buf;
  }
  /* Before any work: every output writable, none an input, none replaced unless asked. */
  const char *inputs[4] = {o->dataset, o->train ? o->train : o->scores, o->validation, NULL};
  size_t n_in = o->validation ? 3 : 2;
  int rc;
  /* A comparison continues from existing results (the library checks that their
   * settings are these, before any work): they and the table may then be replaced. */
  int resume = o->scores && !o->overwrite && file_exists(o->results_json);
  if ((rc = check_output(c, o->output, CSAL3D_OUTPUT_FILE, "the results CSV (-o)", inputs,
                         n_in, o->overwrite || resume)) ||
      (o->results_json &&
       (rc = check_output(c, o->results_json, CSAL3D_OUTPUT_FILE, "the results JSON "
                          "(--results-json)", inputs, n_in, o->overwrite || resume))) ||
      (o->table && (rc = check_output(c, o->table, CSAL3D_OUTPUT_FILE, "the table (--table)",
                                      inputs, n_in, o->overwrite || resume))) ||
      (o->checkpoint && (rc = check_output(c, o->checkpoint, CSAL3D_OUTPUT_FILE,
                                           "the checkpoint (--checkpoint)", inputs, n_in, 1))))
    return rc;
  csal3d_dataset *ds = NULL;
  if ((rc = open_dataset(c, o->dataset, &o->data, &ds))) return rc;
  size_t *val = NULL, nv = 0;
  if (o->validation && (rc = read_cases(c, ds, o->validation, "--validation", &val, &nv))) {
    csal3d_dataset_free(ds);
    return rc;
  }
  csal3d_evaluate_options eo = o->eo;
  csal3d_volume_load_options lo;
  eo.load = load_options(&o->data, NULL, &lo);
  eo.output_csv = o->output;
  eo.output_json = o->results_json;
  eo.overwrite = o->overwrite;
  eo.checkpoint = o->checkpoint;
  eo.per_case = !o->summary_only;
  catch_interrupts();
  rc = o->train ? run_train(c, o, ds, &eo, val, nv) : run_compare(c, o, ds, &eo, val, nv);
  release_interrupts();
  if (o->results_json == json_buf) o->results_json = NULL;
  csal3d_evaluate_free_indices(val);
  csal3d_dataset_free(ds);
  return rc;
}

enum {
  OPT_TRAIN = OPT_COMMAND,
  OPT_SCORES,
  OPT_VALIDATION,
  OPT_RESULTS_JSON,
  OPT_SUMMARY_ONLY,
  OPT_OVERWRITE,
  OPT_STRATEGIES,
  OPT_BUDGETS,
  OPT_SEEDS,
  OPT_TABLE,
  OPT_NCAND,
  OPT_KERNEL,
  OPT_ITER,
  OPT_BATCH,
  OPT_PATCH,
  OPT_WIDTHS,
  OPT_LR,
  OPT_WD,
  OPT_SEED,
  OPT_LABELS,
  OPT_NORM,
  OPT_INFER_BATCH,
  OPT_CHECKPOINT,
  OPT_CKPT_EVERY
};

int cmd_evaluate(int argc, char **argv) {
  cli c = {.cmd = "evaluate"};
  evaluate_opts o;
  memset(&o, 0, sizeof o);
  data_opts_init(&o.data);
  csal3d_evaluate_options_init(&o.eo);
  o.n_cand = 3;
  o.kernel = CSAL3D_KERNEL_MKKM;
  static const csal3d_strategy default_strategies[3] = {
      CSAL3D_STRATEGY_URDS, CSAL3D_STRATEGY_TYPICLUST, CSAL3D_STRATEGY_RANDOM};
  memcpy(o.strategies, default_strategies, sizeof default_strategies);
  o.n_strategies = 3;
  for (int i = 0; i < 3; i++) o.seeds[i] = (uint64_t)i;
  o.n_seeds = 3;
  static const struct option lopts[] = {
      COMMON_LONG_OPTIONS, DATA_LONG_OPTIONS,
      {"output", required_argument, NULL, 'o'},
      {"train", required_argument, NULL, OPT_TRAIN},
      {"scores", required_argument, NULL, OPT_SCORES},
      {"validation", required_argument, NULL, OPT_VALIDATION},
      {"results-json", required_argument, NULL, OPT_RESULTS_JSON},
      {"summary-only", no_argument, NULL, OPT_SUMMARY_ONLY},
      {"overwrite", no_argument, NULL, OPT_OVERWRITE},
      {"strategies", required_argument, NULL, OPT_STRATEGIES},
      {"budgets", required_argument, NULL, OPT_BUDGETS},
      {"seeds", required_argument, NULL, OPT_SEEDS},
      {"table", required_argument, NULL, OPT_TABLE},
      {"n-cand", required_argument, NULL, OPT_NCAND},
      {"kernel", required_argument, NULL, OPT_KERNEL},
      {"iterations", required_argument, NULL, OPT_ITER},
      {"batch", required_argument, NULL, OPT_BATCH},
      {"patch", required_argument, NULL, OPT_PATCH},
      {"widths", required_argument, NULL, OPT_WIDTHS},
      {"lr", required_argument, NULL, OPT_LR},
      {"weight-decay", required_argument, NULL, OPT_WD},
      {"seed", required_argument, NULL, OPT_SEED},
      {"labels", required_argument, NULL, OPT_LABELS},
      {"normalization", required_argument, NULL, OPT_NORM},
      {"inference-batch", required_argument, NULL, OPT_INFER_BATCH},
      {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
      {"checkpoint-every", required_argument, NULL, OPT_CKPT_EVERY},
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0, v;
  size_t n;
  csal3d_evaluate_options *e = &o.eo;
  while ((opt = next_option(&c, &o.data, argc, argv, "hqvo:", lopts, evaluate_help, &rc)) != -1) {
    if (opt == OPT_DONE) return rc;
    switch (opt) {
    case 'o': o.output = optarg; break;
    case OPT_TRAIN: o.train = optarg; break;
    case OPT_SCORES: o.scores = optarg; break;
    case OPT_VALIDATION: o.validation = optarg; break;
    case OPT_RESULTS_JSON: o.results_json = optarg; break;
    case OPT_SUMMARY_ONLY: o.summary_only = 1; break;
    case OPT_OVERWRITE: o.overwrite = 1; break;
    case OPT_STRATEGIES:
      rc = parse_list(&c, "--strategies", optarg, &o.n_strategies, o.strategies, strategy_item);
      o.compare_only = 1;
      break;
    case OPT_BUDGETS:
      rc = parse_list(&c, "--budgets", optarg, &o.n_budgets, o.budgets, budget_item);
      o.compare_only = 1;
      break;
    case OPT_SEEDS:
      rc = parse_list(&c, "--seeds", optarg, &o.n_seeds, o.seeds, seed_item);
      o.compare_only = 1;
      break;
    case OPT_TABLE:
      o.table = optarg;
      o.compare_only = 1;
      break;
    case OPT_NCAND:
      rc = parse_int(&c, "--n-cand", optarg, 1, 1 << 20, &o.n_cand);
      o.compare_only = 1;
      break;
    case OPT_KERNEL:
      if (!(rc = parse_choice(&c, "--kernel", optarg, kernel_names, &v)))
        o.kernel = (csal3d_kernel_mode)v;
      o.compare_only = 1;
      break;
    case OPT_ITER:
      rc = parse_i64(&c, "--iterations", optarg, 1, 100000000, &e->iterations);
      break;
    case OPT_BATCH: rc = parse_i64(&c, "--batch", optarg, 1, 4096, &e->batch_size); break;
    case OPT_PATCH: rc = parse_i64x3(&c, "--patch", optarg, 1, 4096, e->patch_size); break;
    case OPT_WIDTHS:
      if (!(rc = parse_list(&c, "--widths", optarg, &n, e->widths, width_item))) {
        if (n < 2) rc = usage_error(&c, "--widths needs one width per stage, 2 stages at least");
        e->stages = (int)n;
      }
      break;
    case OPT_LR: rc = parse_f64(&c, "--lr", optarg, 1e-12, 10, &e->learning_rate); break;
    case OPT_WD: rc = parse_f64(&c, "--weight-decay", optarg, 0, 10, &e->weight_decay); break;
    case OPT_SEED: rc = parse_u64(&c, "--seed", optarg, &e->seed); break;
    case OPT_LABELS: rc = parse_int(&c, "--labels", optarg, 1, 63, &e->labels); break;
    case OPT_NORM:
      if (!(rc = parse_choice(&c, "--normalization", optarg, norm_names, &v)))
        e->normalization = (csal3d_evaluate_normalization)v;
      break;
    case OPT_INFER_BATCH:
      rc = parse_i64(&c, "--inference-batch", optarg, 1, 4096, &e->inference_batch);
      break;
    case OPT_CHECKPOINT: o.checkpoint = optarg; break;
    case OPT_CKPT_EVERY:
      rc = parse_i64(&c, "--checkpoint-every", optarg, 0, INT64_MAX / 4096, &e->checkpoint_every);
      break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (optind + 1 != argc)
    return usage_error(&c, optind >= argc ? "give the DATASET" : "one DATASET only ('%s'?)",
                       optind < argc ? argv[optind + 1] : "");
  o.dataset = argv[optind];
  finish_common(&c);
  return run_evaluate(&c, &o);
}
