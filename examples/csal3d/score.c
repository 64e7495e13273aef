/* csal3d score: the uncertainty score and the feature of every case of a dataset. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void score_help(FILE *f) {
  fprintf(f,
          "usage: csal3d score CHECKPOINT DATASET -o SCORES [options]\n"
          "\n"
          "Scores every case of DATASET with a pretrained model: sliding windows over the\n"
          "preprocessed volume, 9 masked views of each window reconstructed and brought\n"
          "back, the voxel variance of the 9 averaged over the volume (the uncertainty\n"
          "score), and the encoder's feature of the volume from the same sweep. Writes a\n"
          "scores file (safetensors: features, scores, case paths; see docs/guide.md) that\n"
          "'csal3d select' reads. Cases are loaded as the checkpoint was trained unless the\n"
          "data options below say otherwise. While it runs, each scored case is kept in\n"
          "SCORES.partial: after Ctrl-C, a kill or a failed case, the same command again\n"
          "continues where it stopped and writes the same file as an uninterrupted run.\n"
          "\n"
          "options:\n"
          "  -o, --output PATH      the scores file to write (required)\n"
          "  --window N             window N or D,H,W, multiples of 32 (default: the\n"
          "                         checkpoint's training crop)\n"
          "  --stride N             window stride (default: half the window)\n"
          "  --maps DIR             also write each case's uncertainty map as\n"
          "                         DIR/CASE_uncertainty.nii.gz, on the input's grid\n"
          "  --foreground T         score only voxels whose preprocessed value exceeds T\n"
          "  --feature F            reduced (16C/3 values, default) or full (16C)\n"
          "  --seed S               seed of the masks and rotations (default: the\n"
          "                         checkpoint's)\n"
          "  --overwrite            replace an existing scores file and maps\n"
          "  --restart              ignore SCORES.partial of an earlier run: score all again\n"
          "  --skip-failed          leave out cases that cannot be read or scored (listed in\n"
          "                         the file's metadata \"skipped_cases\") instead of stopping\n"
          "  --shard I/N            score only shard I of N (1 <= I <= N): the cases at\n"
          "                         positions I, I+N, I+2N, ... of the dataset (or list);\n"
          "                         for job arrays: 'csal3d merge' joins the N shard files\n"
          "                         into the file one run would write\n"
          "%s%s",
          DATA_HELP, COMMON_HELP);
}

static const choice feature_names[] = {
    {"reduced", CSAL3D_FEATURE_REDUCED}, {"full", CSAL3D_FEATURE_FULL}, {NULL, 0}};

void score_opts_init(score_opts *o) {
  memset(o, 0, sizeof *o);
  data_opts_init(&o->data);
  for (int a = 0; a < 3; a++) o->window[a] = o->stride[a] = -1;
  o->foreground = NAN;
  o->feature = CSAL3D_FEATURE_DEFAULT;
}

void score_cmdline(cmdline *l, const cli *c, const score_opts *o) {
  cmdline_init(l, "score");
  cmdline_add(l, o->checkpoint);
  cmdline_add(l, o->dataset);
  cmdline_opt(l, "-o", "%s", o->output);
  cmdline_data(l, &o->data);
  if (o->window[0] != -1) cmdline_opt_i64x3(l, "--window", o->window);
  if (o->stride[0] != -1) cmdline_opt_i64x3(l, "--stride", o->stride);
  if (o->maps) cmdline_opt(l, "--maps", "%s", o->maps);
  if (!isnan(o->foreground)) cmdline_opt_f64(l, "--foreground", o->foreground);
  if (o->feature != CSAL3D_FEATURE_DEFAULT)
    cmdline_opt(l, "--feature", "%s", choice_name(feature_names, (int)o->feature));
  if (o->seed_set) cmdline_opt(l, "--seed", "%" PRIu64, o->seed);
  if (o->overwrite) cmdline_add(l, "--overwrite");
  if (o->restart) cmdline_add(l, "--restart");
  if (o->skip_failed) cmdline_add(l, "--skip-failed");
  if (o->shard_count > 1) cmdline_opt(l, "--shard", "%zu/%zu", o->shard_index + 1, o->shard_count);
  if (c) cmdline_common(l, c);
}

/* What the per-case callback gathers for the bar and the summary. */
typedef struct score_state {
  bar b;
  size_t done, scored, reused, skipped;
  double smin, smax, ssum;
} score_state;

static int on_case(void *user, size_t index, const char *id, csal3d_status status,
                   double score, int reused, const char *message) {
  score_state *st = user;
  (void)index;
  char note[192];
  st->done++;
  if (status == CSAL3D_OK) {
    st->scored++;
    st->reused += reused != 0;
    st->ssum += score;
    st->smin = score < st->smin ? score : st->smin;
    st->smax = score > st->smax ? score : st->smax;
    snprintf(note, sizeof note, "%.100s: %.4g%s", id, score, reused ? " (from the journal)" : "");
  } else {
    st->skipped++;
    bar_clear_line();
    fprintf(stderr, "csal3d score: skipped %s: %s\n", id, message);
    snprintf(note, sizeof note, "%.100s: skipped", id);
  }
  bar_update(&st->b, st->done, note);
  return g_interrupted ? 1 : 0;
}

int run_score(cli *c, const score_opts *o) {
  if (!o->output) return usage_error(c, "give the scores file to write with -o PATH");
  for (int a = 0; a < 3; a++)
    if (o->window[a] != -1 && o->window[a] % 32)
      return usage_error(c, "--window sides must be multiples of 32");
  int rc;
  /* The scores file first, before the dataset and the model are read (the library
   * checks every output again, the maps too, before it scores a case). */
  const char *inputs[2] = {o->checkpoint, o->dataset};
  if ((rc = check_output(c, o->output, CSAL3D_OUTPUT_FILE, "the scores file (-o)", inputs, 2,
                         o->overwrite)))
    return rc;
  csal3d_dataset *ds = NULL;
  if ((rc = open_dataset(c, o->dataset, &o->data, &ds))) return rc;
  size_t n;
  csal3d_dataset_size(ds, &n);
  csal3d_context *ctx = NULL;
  csal3d_ssl_model *m = NULL;
  csal3d_uncertainty *u = NULL;
  csal3d_scores *table = NULL;
  score_state st;
  memset(&st, 0, sizeof st);
  st.smin = INFINITY;
  st.smax = -INFINITY;
  csal3d_status s = make_context(c, 0, &ctx);
  if (s == CSAL3D_OK) s = csal3d_ssl_model_load(ctx, o->checkpoint, &m);
  if (s != CSAL3D_OK) goto lib_fail;
  csal3d_ssl_options so;
  csal3d_ssl_options_init(&so);
  csal3d_ssl_model_get_options(m, &so);
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  for (int a = 0; a < 3; a++) {
    uo.window[a] = o->window[0] != -1 ? o->window[a] : so.crop_size[a];
    uo.stride[a] = o->stride[0] != -1 ? o->stride[a]
                                      : (uo.window[a] / 2 > 0 ? uo.window[a] / 2 : 1);
    if (uo.stride[a] > uo.window[a]) {
      rc = usage_error(c, "--stride must not exceed the window (%" PRId64 ")", uo.window[a]);
      goto done;
    }
  }
  if (!isnan(o->foreground)) {
    uo.foreground = CSAL3D_FOREGROUND_THRESHOLD;
    uo.foreground_threshold = o->foreground;
  }
  uo.feature = o->feature;
  uo.keep_map = o->maps != NULL;
  if (o->seed_set) {
    uo.use_seed = 1;
    uo.seed = o->seed;
  }
  warn_degenerate(c, uo.window, "window");
  s = csal3d_uncertainty_create(m, &uo, &u);
  if (s != CSAL3D_OK) goto lib_fail;
  csal3d_volume_load_options lo;
  csal3d_score_options sco;
  csal3d_score_options_init(&sco);
  sco.load = load_options(&o->data, m, &lo);
  sco.output = o->output;
  sco.maps_dir = o->maps;
  sco.overwrite = o->overwrite;
  sco.resume = !o->restart;
  sco.on_error = o->skip_failed ? CSAL3D_CASE_ERRORS_SKIP : CSAL3D_CASE_ERRORS_STOP;
  sco.on_case = on_case;
  sco.on_case_user_data = &st;
  sco.shard_count = o->shard_count;
  sco.shard_index = o->shard_index;
  if (o->shard_count > 1) n = (n + o->shard_count - 1 - o->shard_index) / o->shard_count;
  info(c, "scoring %zu cases: windows %" PRId64 "x%" PRId64 "x%" PRId64 ", stride %" PRId64
       "x%" PRId64 "x%" PRId64 "\n", n, uo.window[0], uo.window[1], uo.window[2], uo.stride[0],
       uo.stride[1], uo.stride[2]);
  catch_interrupts();
  bar_start(&st.b, c, "score", 0, n);
  double t0 = now();
  s = csal3d_score_dataset(u, ds, &sco, &table);
  double secs = now() - t0;
  bar_finish(&st.b);
  if (s == CSAL3D_ERR_CANCELLED && g_interrupted) {
    fprintf(stderr, "csal3d score: interrupted after %zu cases; %s\n", st.scored,
            st.scored ? "run the same command again to continue from them" : "nothing kept");
    rc = EXIT_INTERRUPTED;
    goto done;
  }
  if (s != CSAL3D_OK) goto lib_fail;
  int64_t fdim = 0;
  csal3d_scores_size(table, NULL, &fdim);
  char modality[32] = "", spacing[96] = "";
  csal3d_scores_get_metadata(table, "modality", modality, sizeof modality, NULL);
  csal3d_scores_get_metadata(table, "spacing", spacing, sizeof spacing, NULL);
  double mean = st.scored ? st.ssum / (double)st.scored : NAN;
  if (c->json) {
    printf("{\"command\": \"score\", \"scores\": ");
    json_str(stdout, o->output);
    printf(", \"checkpoint\": ");
    json_str(stdout, o->checkpoint);
    printf(", \"cases\": %zu, \"reused\": %zu, \"skipped\": %zu, \"feature_dim\": %" PRId64
           ", \"modality\": ", st.scored, st.reused, st.skipped, fdim);
    json_str(stdout, modality);
    printf(", \"spacing\": ");
    json_str(stdout, spacing);
    printf(", \"score_min\": ");
    json_num(stdout, st.scored ? st.smin : NAN);
    printf(", \"score_mean\": ");
    json_num(stdout, mean);
    printf(", \"score_max\": ");
    json_num(stdout, st.scored ? st.smax : NAN);
    printf(", \"seconds\": %.3f", secs);
    if (o->maps) {
      printf(", \"maps\": ");
      json_str(stdout, o->maps);
    }
    printf("}\n");
  } else {
    char el[32];
    fmt_duration(el, sizeof el, secs);
    info(c, "done: %zu cases (%s, spacing %s) in %s", st.scored, modality, spacing, el);
    if (st.reused) info(c, ", %zu of them from an earlier run's journal", st.reused);
    info(c, "; scores %.4g .. %.4g, mean %.4g\n", st.smin, st.smax, mean);
    if (st.skipped)
      info(c, "skipped %zu cases that could not be scored (listed in the file's "
           "\"skipped_cases\")\n", st.skipped);
    info(c, "scores file: %s\n", o->output);
    if (o->maps) info(c, "uncertainty maps: %s/\n", o->maps);
  }
  rc = 0;
  goto done;
lib_fail:
  rc = fail(c, s);
done:
  release_interrupts();
  csal3d_scores_free(table);
  csal3d_uncertainty_free(u);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  csal3d_dataset_free(ds);
  return rc;
}

enum {
  OPT_WINDOW = OPT_COMMAND,
  OPT_STRIDE,
  OPT_MAPS,
  OPT_FOREGROUND,
  OPT_FEATURE,
  OPT_SEED,
  OPT_OVERWRITE,
  OPT_RESTART,
  OPT_SKIP_FAILED,
  OPT_SHARD
};

/* --shard I/N: 1 <= I <= N, N >= 2 */
static int parse_shard(cli *c, const char *arg, score_opts *o) {
  char *end;
  unsigned long long i = strtoull(arg, &end, 10), n = 0;
  if (end != arg && *end == '/') {
    const char *q = end + 1;
    n = strtoull(q, &end, 10);
    if (end == q) n = 0;
  }
  if (*end || n < 2 || i < 1 || i > n || n > 1000000 || strchr(arg, '-'))
    return usage_error(c, "--shard takes I/N with 1 <= I <= N and N >= 2 (got '%s')", arg);
  o->shard_index = (size_t)i - 1;
  o->shard_count = (size_t)n;
  return 0;
}

int cmd_score(int argc, char **argv) {
  cli c = {.cmd = "score"};
  score_opts o;
  score_opts_init(&o);
  static const struct option lopts[] = {
      COMMON_LONG_OPTIONS, DATA_LONG_OPTIONS,
      {"output", required_argument, NULL, 'o'},
      {"window", required_argument, NULL, OPT_WINDOW},
      {"stride", required_argument, NULL, OPT_STRIDE},
      {"maps", required_argument, NULL, OPT_MAPS},
      {"foreground", required_argument, NULL, OPT_FOREGROUND},
      {"feature", required_argument, NULL, OPT_FEATURE},
      {"seed", required_argument, NULL, OPT_SEED},
      {"overwrite", no_argument, NULL, OPT_OVERWRITE},
      {"restart", no_argument, NULL, OPT_RESTART},
      {"skip-failed", no_argument, NULL, OPT_SKIP_FAILED},
      {"shard", required_argument, NULL, OPT_SHARD},
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0, v;
  while ((opt = next_option(&c, &o.data, argc, argv, "hqvo:", lopts, score_help, &rc)) != -1) {
    if (opt == OPT_DONE) return rc;
    switch (opt) {
    case 'o': o.output = optarg; break;
    case OPT_WINDOW: rc = parse_i64x3(&c, "--window", optarg, 32, 4096, o.window); break;
    case OPT_STRIDE: rc = parse_i64x3(&c, "--stride", optarg, 1, 4096, o.stride); break;
    case OPT_MAPS: o.maps = optarg; break;
    case OPT_FOREGROUND:
      rc = parse_f64(&c, "--foreground", optarg, -1e30, 1e30, &o.foreground);
      break;
    case OPT_FEATURE:
      if (!(rc = parse_choice(&c, "--feature", optarg, feature_names, &v)))
        o.feature = (csal3d_feature_mode)v;
      break;
    case OPT_SEED:
      rc = parse_u64(&c, "--seed", optarg, &o.seed);
      o.seed_set = 1;
      break;
    case OPT_OVERWRITE: o.overwrite = 1; break;
    case OPT_RESTART: o.restart = 1; break;
    case OPT_SKIP_FAILED: o.skip_failed = 1; break;
    case OPT_SHARD: rc = parse_shard(&c, optarg, &o); break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (argc - optind != 2)
    return usage_error(&c, "give the CHECKPOINT and the DATASET (%d arguments given)",
                       argc - optind);
  o.checkpoint = argv[optind];
  o.dataset = argv[optind + 1];
  finish_common(&c);
  return run_score(&c, &o);
}
