/* csal3d report: one self-contained HTML page of a scores file, its selections, the chosen
 * cases' uncertainty and an evaluation (csal3d_report_write). */
#include <inttypes.h>
#include <string.h>

#include "cli.h"

static void report_help(FILE *f) {
  fprintf(f,
          "usage: csal3d report SCORES [--selection MANIFEST ...] [options] -o report.html\n"
          "\n"
          "Writes one HTML page that needs nothing else (no network, no script; images\n"
          "inline) to see a selection before paying for annotations: the feature space\n"
          "(PCA, coloured by cluster, the chosen cases marked with their rank; hover for\n"
          "case, score, cluster, typicality), the distribution of the uncertainty scores,\n"
          "three slices through each chosen case's most uncertain region with its\n"
          "uncertainty map over it, how several selections overlap and which clusters each\n"
          "covers, and an evaluation's Dice per strategy and budget.\n"
          "\n"
          "options:\n"
          "  -o, --output PATH      the page to write (default report.html)\n"
          "  --selection MANIFEST   a selection.json of 'csal3d select' on SCORES; repeat\n"
          "                         for several strategies (up to 16)\n"
          "  --maps DIR             the uncertainty maps folder ('csal3d score --maps');\n"
          "                         default: the maps SCORES records\n"
          "  --data DATASET         take the images from DATASET (matched by case id)\n"
          "                         instead of the paths SCORES records (files moved)\n"
          "  --evaluation RESULTS   the results file of 'csal3d evaluate' (CSV or JSON), or\n"
          "                         a CSV with the columns strategy, budget, seed, mean_dice\n"
          "  --title TEXT           the page's title (default 'csal3d report')\n"
          "  --max-points N         unchosen cases drawn in the feature space; above N a\n"
          "                         random sample, said on the page (default 2000)\n"
          "  --max-cases N          chosen cases shown with slices (default 48)\n"
          "  --image-size PX        longest side of a slice image (default 160)\n"
          "  --overwrite            replace an existing page\n"
          "%s",
          COMMON_HELP);
}

void report_opts_init(report_opts *o) {
  memset(o, 0, sizeof *o);
  o->output = "report.html";
}

void report_cmdline(cmdline *l, const cli *c, const report_opts *o) {
  cmdline_init(l, "report");
  cmdline_add(l, o->scores);
  for (int i = 0; i < o->n_selections; i++) cmdline_opt(l, "--selection", "%s", o->selections[i]);
  if (o->maps) cmdline_opt(l, "--maps", "%s", o->maps);
  if (o->data) cmdline_opt(l, "--data", "%s", o->data);
  if (o->evaluation) cmdline_opt(l, "--evaluation", "%s", o->evaluation);
  if (o->title) cmdline_opt(l, "--title", "%s", o->title);
  if (o->max_points) cmdline_opt(l, "--max-points", "%" PRId64, o->max_points);
  if (o->max_cases) cmdline_opt(l, "--max-cases", "%" PRId64, o->max_cases);
  if (o->image_size) cmdline_opt(l, "--image-size", "%d", o->image_size);
  cmdline_opt(l, "-o", "%s", o->output);
  if (o->overwrite) cmdline_add(l, "--overwrite");
  if (c) cmdline_common(l, c);
}

int run_report(cli *c, const report_opts *o) {
  catch_interrupts();
  csal3d_scores *sc = NULL;
  csal3d_context *ctx = NULL;
  bar b;
  memset(&b, 0, sizeof b);
  int64_t n = 0;
  int rc = 0;
  double t0 = now();
  csal3d_status s = csal3d_scores_load(o->scores, &sc);
  if (s == CSAL3D_OK) s = make_context(c, 0, &ctx);
  if (s == CSAL3D_OK) {
    csal3d_scores_size(sc, &n, NULL);
    csal3d_report_options ro;
    csal3d_report_options_init(&ro);
    ro.selections = o->selections;
    ro.n_selections = (size_t)o->n_selections;
    ro.maps_dir = o->maps;
    ro.dataset = o->data;
    ro.evaluation = o->evaluation;
    ro.scores_path = o->scores;
    ro.title = o->title;
    ro.max_points = o->max_points;
    ro.max_cases = o->max_cases;
    ro.image_size = o->image_size;
    ro.overwrite = o->overwrite;
    bar_start(&b, c, "report", 0, 0);
    s = csal3d_report_write(sc, &ro, o->output, ctx);
    bar_finish(&b);
  }
  if (s != CSAL3D_OK) {
    rc = fail(c, s);
  } else if (c->json) {
    printf("{\"command\": \"report\", \"report\": ");
    json_str(stdout, o->output);
    printf(", \"cases\": %" PRId64 ", \"selections\": %d, \"seconds\": %.3f}\n", n,
           o->n_selections, now() - t0);
  } else {
    info(c, "report: %s\n", o->output);
  }
  release_interrupts();
  csal3d_context_free(ctx);
  csal3d_scores_free(sc);
  return rc;
}

enum {
  OPT_SELECTION = OPT_COMMAND,
  OPT_MAPS,
  OPT_DATA,
  OPT_EVALUATION,
  OPT_TITLE,
  OPT_MAX_POINTS,
  OPT_MAX_CASES,
  OPT_IMAGE_SIZE,
  OPT_OVERWRITE
};

int cmd_report(int argc, char **argv) {
  cli c = {.cmd = "report"};
  report_opts o;
  report_opts_init(&o);
  static const struct option lopts[] = {
      COMMON_LONG_OPTIONS,
      {"output", required_argument, NULL, 'o'},
      {"selection", required_argument, NULL, OPT_SELECTION},
      {"maps", required_argument, NULL, OPT_MAPS},
      {"data", required_argument, NULL, OPT_DATA},
      {"evaluation", required_argument, NULL, OPT_EVALUATION},
      {"title", required_argument, NULL, OPT_TITLE},
      {"max-points", required_argument, NULL, OPT_MAX_POINTS},
      {"max-cases", required_argument, NULL, OPT_MAX_CASES},
      {"image-size", required_argument, NULL, OPT_IMAGE_SIZE},
      {"overwrite", no_argument, NULL, OPT_OVERWRITE},
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0;
  const int max_sel = (int)(sizeof o.selections / sizeof o.selections[0]);
  while ((opt = next_option(&c, NULL, argc, argv, "hqvo:", lopts, report_help, &rc)) != -1) {
    if (opt == OPT_DONE) return rc;
    switch (opt) {
    case 'o': o.output = optarg; break;
    case OPT_SELECTION:
      if (o.n_selections == max_sel)
        return usage_error(&c, "at most %d --selection on one page", max_sel);
      o.selections[o.n_selections++] = optarg;
      break;
    case OPT_MAPS: o.maps = optarg; break;
    case OPT_DATA: o.data = optarg; break;
    case OPT_EVALUATION: o.evaluation = optarg; break;
    case OPT_TITLE: o.title = optarg; break;
    case OPT_MAX_POINTS:
      rc = parse_i64(&c, "--max-points", optarg, 1, INT64_MAX, &o.max_points);
      break;
    case OPT_MAX_CASES: rc = parse_i64(&c, "--max-cases", optarg, 1, INT64_MAX, &o.max_cases); break;
    case OPT_IMAGE_SIZE: rc = parse_int(&c, "--image-size", optarg, 32, 1024, &o.image_size); break;
    case OPT_OVERWRITE: o.overwrite = 1; break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (argc - optind != 1)
    return usage_error(&c, "give one SCORES file (%d arguments given)", argc - optind);
  o.scores = argv[optind];
  finish_common(&c);
  return run_report(&c, &o);
}
