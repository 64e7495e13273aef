/* csal3d demo: the whole pipeline on phantom data, through the subcommands' run_ functions
 * (it prints the equivalent command lines). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void demo_help(FILE *f) {
  fprintf(f,
          "usage: csal3d demo [options]\n"
          "\n"
          "The whole pipeline on synthetic data, small enough for a laptop CPU: writes a\n"
          "phantom CT dataset (docs/phantom.md), pretrains a small model briefly, scores\n"
          "every case, chooses the cases to annotate with URDS and prints them, then writes\n"
          "a report page (DIR/report.html) that compares the choice with a random one; the\n"
          "same steps as 'csal3d pretrain', 'score', 'select' and 'report' (it prints those\n"
          "commands).\n"
          "\n"
          "options (defaults sized for 2 cores and a few minutes):\n"
          "  --dir DIR          where everything goes (default csal3d-demo)\n"
          "  --cases N          phantom cases (default 40)\n"
          "  --budget M         cases to choose (default 8)\n"
          "  --iterations N     pretraining steps (default 20)\n"
          "  --embed-dim C      encoder width (default 12)\n"
          "  --crop N           training crop, N or D,H,W (default 64,64,32)\n"
          "  --window N         scoring window (default: the crop; stride = window)\n"
          "  --batch B          crops per step (default 1)\n"
          "  --spacing MM       resampling before everything (default 10 mm)\n"
          "  --strategy S       selection strategy (default urds)\n"
          "  --seed S           seed of everything (default 0)\n"
          "%s",
          COMMON_HELP);
}

/* Prints the command line of a step (users copy it). */
static void show_step(const cli *demo, const cmdline *l) {
  if (demo->quiet || demo->json) return;
  printf("\n$ ");
  cmdline_print(stdout, l);
  printf("\n");
  fflush(stdout);
}

/* 1. the phantom dataset */
static int demo_phantom(cli *c, const char *data, int64_t cases, uint64_t seed) {
  csal3d_context *ctx = NULL;
  csal3d_phantom_options po;
  csal3d_phantom_options_init(&po);
  po.cases = (int)cases;
  po.seed = seed;
  bar b;
  csal3d_status s = make_context(c, seed, &ctx);
  if (s == CSAL3D_OK) {
    bar_start(&b, c, "phantom", 0, (uint64_t)cases);
    s = csal3d_phantom_generate(data, &po, ctx);
    bar_finish(&b);
  }
  csal3d_context_free(ctx);
  if (s != CSAL3D_OK) return fail(c, s);
  info(c, "wrote %s/ (imagesTr/, labelsTr/, dataset.json)\n", data);
  return 0;
}

enum {
  OPT_DIR = OPT_COMMAND,
  OPT_CASES,
  OPT_ITER,
  OPT_EMBED,
  OPT_CROP,
  OPT_WINDOW,
  OPT_BATCH,
  OPT_STRATEGY,
  OPT_SEED
};

int cmd_demo(int argc, char **argv) {
  cli c = {.cmd = "demo"};
  const char *dir = "csal3d-demo";
  csal3d_strategy strategy = CSAL3D_STRATEGY_URDS;
  int64_t cases = 40, budget = 8, iterations = 20, embed = 12, batch = 1;
  int64_t crop[3] = {64, 64, 32}, window[3] = {-1, -1, -1};
  double spacing = 10;
  uint64_t seed = 0;
  static const struct option lopts[] = {
      COMMON_LONG_OPTIONS,
      {"dir", required_argument, NULL, OPT_DIR},
      {"cases", required_argument, NULL, OPT_CASES},
      {"budget", required_argument, NULL, 'm'},
      {"iterations", required_argument, NULL, OPT_ITER},
      {"embed-dim", required_argument, NULL, OPT_EMBED},
      {"crop", required_argument, NULL, OPT_CROP},
      {"window", required_argument, NULL, OPT_WINDOW},
      {"batch", required_argument, NULL, OPT_BATCH},
      {"spacing", required_argument, NULL, OPT_SPACING},
      {"strategy", required_argument, NULL, OPT_STRATEGY},
      {"seed", required_argument, NULL, OPT_SEED},
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0;
  while ((opt = next_option(&c, NULL, argc, argv, "hqvm:", lopts, demo_help, &rc)) != -1) {
    if (opt == OPT_DONE) return rc;
    switch (opt) {
    case OPT_DIR: dir = optarg; break;
    case OPT_CASES: rc = parse_i64(&c, "--cases", optarg, 2, 100000, &cases); break;
    case 'm': rc = parse_i64(&c, "--budget", optarg, 1, 100000, &budget); break;
    case OPT_ITER: rc = parse_i64(&c, "--iterations", optarg, 1, 100000000, &iterations); break;
    case OPT_EMBED: rc = parse_i64(&c, "--embed-dim", optarg, 12, 768, &embed); break;
    case OPT_CROP: rc = parse_i64x3(&c, "--crop", optarg, 32, 4096, crop); break;
    case OPT_WINDOW: rc = parse_i64x3(&c, "--window", optarg, 32, 4096, window); break;
    case OPT_BATCH: rc = parse_i64(&c, "--batch", optarg, 1, 4096, &batch); break;
    case OPT_SPACING: rc = parse_f64(&c, "--spacing", optarg, 0, 1e4, &spacing); break;
    case OPT_STRATEGY:
      if (csal3d_strategy_from_name(optarg, &strategy) != CSAL3D_OK)
        rc = usage_error(&c, "%s", csal3d_last_error());
      break;
    case OPT_SEED: rc = parse_u64(&c, "--seed", optarg, &seed); break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (optind != argc) return usage_error(&c, "unexpected argument '%s'", argv[optind]);
  if (budget > cases) return usage_error(&c, "--budget is larger than --cases");
  if (window[0] == -1) memcpy(window, crop, sizeof window);
  for (int a = 0; a < 3; a++)
    if (crop[a] % 32 || window[a] % 32)
      return usage_error(&c, "--crop and --window sides must be multiples of 32");
  if (embed % 12) return usage_error(&c, "--embed-dim must be a multiple of 12");
  finish_common(&c);
  if (mkdir_p(dir) != 0) {
    fprintf(stderr, "csal3d demo: cannot create %s: %s\n", dir, strerror(errno));
    return EXIT_DATA;
  }
  char *data = path_join(dir, "phantom"), *ckpt = path_join(dir, "ssl.safetensors"),
       *scores = path_join(dir, "scores.safetensors"), *maps = path_join(dir, "maps"),
       *nnunet = path_join(dir, "nnUNet_raw/Dataset900_Phantom");
  char *other_dir = NULL, *other_json = NULL, *choice_json = NULL, *page = NULL;
  if (!data || !ckpt || !scores || !maps || !nnunet) {
    fprintf(stderr, "csal3d demo: out of memory\n");
    rc = EXIT_MEMORY;
    goto out;
  }
  /* The steps run as their commands would, with the demo's common options; under --json
   * only select's result goes to stdout. */
  cli step = cli_for(&c, "pretrain");
  step.json = 0;
  step.mute = c.json;
  cmdline l;
  double t0 = now();

  info(&c, "csal3d demo: cold-start active learning on %" PRId64 " synthetic CT scans in %s/\n",
       cases, dir);
  info(&c, "\n[1/5] phantom dataset: %" PRId64 " abdominal CT volumes, five anatomy types "
       "(one rare), some hard cases\n", cases);
  if ((rc = demo_phantom(&c, data, cases, seed))) goto out;

  info(&c, "\n[2/5] self-supervised pretraining (a short run; the paper trains 30,000 steps)\n");
  pretrain_opts p;
  pretrain_opts_init(&p);
  p.dataset = data;
  p.output = ckpt;
  p.embed_dim = embed;
  memcpy(p.crop, crop, sizeof p.crop);
  p.batch = batch;
  p.iterations = iterations;
  p.data.spacing[0] = p.data.spacing[1] = p.data.spacing[2] = spacing;
  p.data.spacing_set = 1;
  p.overwrite = 1; /* the demo's own folder: a second run replaces the first */
  p.seed = seed;
  p.seed_set = 1;
  pretrain_cmdline(&l, &step, &p);
  show_step(&c, &l);
  if ((rc = run_pretrain(&step, &p))) goto out;

  info(&c, "\n[3/5] uncertainty and features of every case\n");
  step.cmd = "score";
  score_opts s;
  score_opts_init(&s);
  s.checkpoint = ckpt;
  s.dataset = data;
  s.output = scores; /* loaded as the checkpoint was trained: no data options to repeat */
  s.overwrite = 1;
  memcpy(s.window, window, sizeof s.window);
  memcpy(s.stride, window, sizeof s.stride);
  s.maps = maps;
  score_cmdline(&l, &step, &s);
  show_step(&c, &l);
  if ((rc = run_score(&step, &s))) goto out;

  info(&c, "\n[4/5] choosing %" PRId64 " cases to annotate\n", budget);
  step = cli_for(&c, "select");
  select_opts x;
  select_opts_init(&x);
  x.scores = scores;
  x.budget = budget;
  x.strategy = strategy;
  x.seed = seed;
  x.outdir = dir;
  x.nnunet = nnunet;
  x.export_opts.overwrite = 1;
  select_cmdline(&l, &step, &x);
  show_step(&c, &l);
  if ((rc = run_select(&step, &x))) goto out;

  /* 5. a random choice beside it, and the page that shows both */
  info(&c, "\n[5/5] the report: the choice beside a random one, in one page\n");
  select_opts_init(&x);
  x.scores = scores;
  x.budget = budget;
  x.strategy = strategy == CSAL3D_STRATEGY_RANDOM ? CSAL3D_STRATEGY_TYPICLUST
                                                  : CSAL3D_STRATEGY_RANDOM;
  x.seed = seed;
  x.export_opts.overwrite = 1;
  /* the comparison is TypiClust when the demo's own choice is random */
  other_dir = path_join(dir, x.strategy == CSAL3D_STRATEGY_TYPICLUST ? "typiclust" : "random");
  other_json = other_dir ? path_join(other_dir, "selection.json") : NULL;
  choice_json = path_join(dir, "selection.json");
  page = path_join(dir, "report.html");
  if (!other_dir || !other_json || !choice_json || !page) {
    fprintf(stderr, "csal3d demo: out of memory\n");
    rc = EXIT_MEMORY;
    goto out;
  }
  x.outdir = other_dir;
  cli quiet = step; /* no table, and no JSON: under --json only the choice's goes out */
  quiet.json = 0;
  quiet.mute = 1;
  select_cmdline(&l, &quiet, &x);
  show_step(&c, &l);
  if ((rc = run_select(&quiet, &x))) goto out;
  step = cli_for(&c, "report");
  step.json = 0;
  step.mute = c.json;
  report_opts ro;
  report_opts_init(&ro);
  ro.scores = scores;
  ro.selections[0] = choice_json;
  ro.selections[1] = other_json;
  ro.n_selections = 2;
  ro.output = page;
  ro.title = "csal3d demo: phantom CT";
  ro.overwrite = 1;
  report_cmdline(&l, &step, &ro);
  show_step(&c, &l);
  if ((rc = run_report(&step, &ro))) goto out;

  char el[32];
  fmt_duration(el, sizeof el, now() - t0);
  info(&c, "\noutputs (in %s):\n"
       "  %s/                 the phantom dataset (dataset.json lists each case's anatomy type)\n"
       "  %s          the pretrained model (resume with csal3d pretrain --resume)\n"
       "  %s       features and uncertainty of every case\n"
       "  %s/                    uncertainty maps, one NIfTI per case (open over the scan)\n"
       "  %s/selection.csv, selection.json   the cases to annotate, with reasons\n"
       "  %s/   the chosen cases as an nnU-Net v2 raw dataset\n"
       "  %s/selection.json   a %s choice to compare with\n"
       "  %s   the report: open it in a browser (it needs nothing else)\n"
       "demo finished in %s\n",
       dir, data, ckpt, scores, maps, dir, nnunet, other_dir,
       csal3d_strategy_name(x.strategy), page, el);
out:
  free(data), free(ckpt), free(scores), free(maps), free(nnunet);
  free(other_dir), free(other_json), free(choice_json), free(page);
  return rc;
}
