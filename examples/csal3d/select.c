/* csal3d select: the cases to annotate, from a scores file: manifest and nnU-Net folder. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void select_help(FILE *f) {
  fprintf(f,
          "usage: csal3d select SCORES --budget M [options]\n"
          "\n"
          "Chooses the M cases to annotate from a scores file ('csal3d score'). URDS (the\n"
          "default): multi-kernel k-means of the features into M clusters, the N_cand most\n"
          "typical cases of each, the most uncertain of those. Writes the manifest\n"
          "(selection.csv and selection.json: case, path, score, cluster, typicality, rule)\n"
          "and, with --nnunet, an nnU-Net v2 raw dataset folder of the chosen cases.\n"
          "\n"
          "options:\n"
          "  -m, --budget M         cases to choose (required)\n"
          "  --strategy S           urds (default), unc-only, div-only, random, typiclust,\n"
          "                         probcover, alps, calr, coreset, usl\n"
          "  --n-cand N             URDS candidates per cluster (default 3)\n"
          "  --kernel K             URDS clustering: mkkm (default) or reference\n"
          "  --typiclust-variant V  TypiClust as the paper compared against (paper, the\n"
          "                         default) or as its original code (original: only\n"
          "                         clusters of more than 5 cases, K = min(20, |C| / 2))\n"
          "  --seed S               seed (default 0)\n"
          "  -o, --output DIR       where selection.csv and selection.json go (default .)\n"
          "  --csv PATH             the CSV manifest's path instead\n"
          "  --manifest PATH        the JSON manifest's path instead\n"
          "nnU-Net export:\n"
          "  --nnunet DIR           write DIR/imagesTr/CASE_0000.nii.gz, DIR/labelsTr/ (when\n"
          "                         the cases have labels) and DIR/dataset.json; DIR is\n"
          "                         named DatasetNNN_Name as nnU-Net needs, e.g.\n"
          "                         $nnUNet_raw/Dataset501_Hippocampus\n"
          "  --labels L             auto (default: copy the labels that exist; chosen cases\n"
          "                         without one are exported and named in a warning and in\n"
          "                         dataset.json), none, or require (every chosen case must\n"
          "                         have a label, else exit 3 before anything is written)\n"
          "  --dataset-name NAME    dataset.json's name (default: the folder's name)\n"
          "  --label-names LIST     names of label values 0..K ('background,liver,...');\n"
          "                         default: the source dataset.json's\n"
          "  --channel-names LIST   channel names ('CT' or 'T2,ADC'); default: the source's\n"
          "  --source-dataset PATH  the dataset.json those names come from (default: the\n"
          "                         dataset the scores were computed on)\n"
          "  --overwrite            replace existing manifests and an existing nnU-Net DIR\n"
          "The manifests and the nnU-Net folder appear together or not at all: on a failure\n"
          "or Ctrl-C (or SIGTERM) every output is left as it was before the command.\n"
          "%s",
          COMMON_HELP);
}

static const choice kernel_names[] = {
    {"mkkm", CSAL3D_KERNEL_MKKM}, {"reference", CSAL3D_KERNEL_REFERENCE}, {NULL, 0}};
static const choice variant_names[] = {{"paper", CSAL3D_TYPICLUST_PAPER},
                                       {"original", CSAL3D_TYPICLUST_ORIGINAL},
                                       {NULL, 0}};
static const choice labels_names[] = {{"auto", CSAL3D_NNUNET_LABELS_AUTO},
                                      {"none", CSAL3D_NNUNET_LABELS_NONE},
                                      {"require", CSAL3D_NNUNET_LABELS_REQUIRE},
                                      {NULL, 0}};

void select_opts_init(select_opts *o) {
  memset(o, 0, sizeof *o);
  o->budget = -1;
  o->strategy = CSAL3D_STRATEGY_URDS;
  o->n_cand = 3;
  o->kernel = CSAL3D_KERNEL_MKKM;
  o->typiclust_variant = CSAL3D_TYPICLUST_PAPER;
  o->outdir = ".";
  csal3d_nnunet_options_init(&o->export_opts);
}

void select_cmdline(cmdline *l, const cli *c, const select_opts *o) {
  const csal3d_nnunet_options *x = &o->export_opts;
  cmdline_init(l, "select");
  cmdline_add(l, o->scores);
  cmdline_opt(l, "--budget", "%" PRId64, o->budget);
  cmdline_opt(l, "--strategy", "%s", csal3d_strategy_name(o->strategy));
  if (o->n_cand != 3) cmdline_opt(l, "--n-cand", "%d", o->n_cand);
  if (o->typiclust_variant != CSAL3D_TYPICLUST_PAPER)
    cmdline_opt(l, "--typiclust-variant", "%s", choice_name(variant_names, (int)o->typiclust_variant));
  if (o->kernel != CSAL3D_KERNEL_MKKM)
    cmdline_opt(l, "--kernel", "%s", choice_name(kernel_names, (int)o->kernel));
  cmdline_opt(l, "--seed", "%" PRIu64, o->seed);
  if (strcmp(o->outdir, ".") != 0) cmdline_opt(l, "-o", "%s", o->outdir);
  if (o->csv) cmdline_opt(l, "--csv", "%s", o->csv);
  if (o->manifest) cmdline_opt(l, "--manifest", "%s", o->manifest);
  if (o->nnunet) cmdline_opt(l, "--nnunet", "%s", o->nnunet);
  if (x->labels != CSAL3D_NNUNET_LABELS_AUTO)
    cmdline_opt(l, "--labels", "%s", choice_name(labels_names, (int)x->labels));
  if (x->dataset_name) cmdline_opt(l, "--dataset-name", "%s", x->dataset_name);
  if (x->label_names) cmdline_opt(l, "--label-names", "%s", x->label_names);
  if (x->channel_names) cmdline_opt(l, "--channel-names", "%s", x->channel_names);
  if (x->source_dataset) cmdline_opt(l, "--source-dataset", "%s", x->source_dataset);
  if (x->overwrite) cmdline_add(l, "--overwrite");
  if (c) cmdline_common(l, c);
}

/* The chosen cases as a table (text) or a JSON object on stdout; returns an exit code. */
static int print_selection(cli *c, const select_opts *o, const csal3d_scores *sc,
                            const csal3d_selection *rec, int64_t count, int64_t n,
                            const char *csv_path, const char *json_path, double secs) {
  if (!c->json && (c->quiet || c->mute)) return 0;
  /* The ids whole, however long (case ids by relative path can be). */
  char **names = calloc((size_t)count + 1, sizeof *names);
  int oom = !names;
  size_t idw = 4;
  for (int64_t i = 0; !oom && i < count; i++) {
    names[i] = case_string(sc, rec[i].index, "id");
    oom = !names[i];
    size_t l = oom ? 0 : strlen(names[i]);
    idw = l > idw ? l : idw;
  }
  if (oom) {
    for (int64_t i = 0; names && i < count; i++) free(names[i]);
    free(names);
    fprintf(stderr, "csal3d select: out of memory\n");
    return EXIT_MEMORY;
  }
  if (c->json) {
    printf("{\"command\": \"select\", \"strategy\": ");
    json_str(stdout, csal3d_strategy_name(o->strategy));
    if (o->strategy == CSAL3D_STRATEGY_TYPICLUST) {
      printf(", \"typiclust_variant\": ");
      json_str(stdout, choice_name(variant_names, (int)o->typiclust_variant));
    }
    printf(", \"budget\": %" PRId64 ", \"cases\": %" PRId64 ", \"seed\": %" PRIu64
           ", \"manifest_csv\": ", o->budget, n, o->seed);
    json_str(stdout, csv_path);
    printf(", \"manifest_json\": ");
    json_str(stdout, json_path);
    if (o->nnunet) {
      printf(", \"nnunet\": ");
      json_str(stdout, o->nnunet);
    }
    printf(", \"seconds\": %.3f, \"selection\": [", secs);
    for (int64_t i = 0; i < count; i++) {
      char *path = case_string(sc, rec[i].index, "image");
      printf("%s{\"rank\": %" PRId64 ", \"case\": ", i ? ", " : "", i + 1);
      json_str(stdout, names[i]);
      printf(", \"index\": %" PRId64 ", \"path\": ", rec[i].index);
      json_str(stdout, path ? path : "");
      free(path);
      printf(", \"score\": ");
      json_num(stdout, rec[i].score);
      printf(", \"cluster\": %" PRId64 ", \"cluster_size\": %" PRId64 ", \"typicality\": ",
             rec[i].cluster, rec[i].cluster_size);
      json_num(stdout, rec[i].typicality);
      printf(", \"rule\": ");
      json_str(stdout, csal3d_rule_name(rec[i].rule));
      printf("}");
    }
    printf("]}\n");
  } else {
    char extra[64] = "";
    if (o->strategy == CSAL3D_STRATEGY_URDS)
      snprintf(extra, sizeof extra, ", n-cand %d", o->n_cand);
    printf("%s chose %" PRId64 " of %" PRId64 " cases (seed %" PRIu64 "%s):\n\n",
           csal3d_strategy_name(o->strategy), count, n, o->seed, extra);
    printf("%4s  %-*s  %12s  %7s  %5s  %11s  %s\n", "rank", (int)idw, "case", "score",
           "cluster", "size", "typicality", "rule");
    for (int64_t i = 0; i < count; i++) {
      char sc_t[32], ty_t[32], cl_t[32], sz_t[32];
      if (isnan(rec[i].score)) snprintf(sc_t, sizeof sc_t, "-");
      else snprintf(sc_t, sizeof sc_t, "%.6g", rec[i].score);
      if (isnan(rec[i].typicality)) snprintf(ty_t, sizeof ty_t, "-");
      else if (isinf(rec[i].typicality)) snprintf(ty_t, sizeof ty_t, "inf");
      else snprintf(ty_t, sizeof ty_t, "%.4g", rec[i].typicality);
      if (rec[i].cluster < 0) {
        snprintf(cl_t, sizeof cl_t, "-");
        snprintf(sz_t, sizeof sz_t, "-");
      } else {
        snprintf(cl_t, sizeof cl_t, "%" PRId64, rec[i].cluster);
        snprintf(sz_t, sizeof sz_t, "%" PRId64, rec[i].cluster_size);
      }
      printf("%4" PRId64 "  %-*s  %12s  %7s  %5s  %11s  %s\n", i + 1, (int)idw, names[i], sc_t,
             cl_t, sz_t, ty_t, csal3d_rule_name(rec[i].rule));
    }
    printf("\nmanifest: %s\n          %s\n", csv_path, json_path);
    if (o->nnunet)
      printf("nnU-Net:  %s (imagesTr/, %sdataset.json)\n", o->nnunet,
             o->export_opts.labels == CSAL3D_NNUNET_LABELS_NONE ? "" : "labelsTr/ if labelled, ");
  }
  for (int64_t i = 0; i < count; i++) free(names[i]);
  free(names);
  return 0;
}

/* The manifest options and the outputs of @p o (paths in the caller's buffers). */
static void outputs_of(const select_opts *o, const char *csv_path, const char *json_path,
                       const char *abs_scores, csal3d_manifest_options *mo,
                       csal3d_selection_outputs *out) {
  csal3d_manifest_options_init(mo);
  mo->strategy = o->strategy;
  mo->n_cand = o->strategy == CSAL3D_STRATEGY_URDS ? o->n_cand : 0;
  mo->seed = o->seed;
  mo->scores_path = abs_scores;
  csal3d_selection_outputs_init(out);
  out->csv_path = csv_path;
  out->json_path = json_path;
  out->nnunet_folder = o->nnunet;
  out->overwrite = o->export_opts.overwrite;
}

int run_select(cli *c, const select_opts *o) {
  if (o->budget < 0) return usage_error(c, "give the budget with --budget M");
  catch_interrupts();
  char *csv_path = o->csv ? strdup(o->csv) : path_join(o->outdir, "selection.csv");
  char *json_path = o->manifest ? strdup(o->manifest) : path_join(o->outdir, "selection.json");
  char *abs_scores = NULL;
  int rc, made_outdir = 0;
  csal3d_scores *sc = NULL;
  csal3d_context *ctx = NULL;
  csal3d_sampler *smp = NULL;
  float *feat = NULL, *scores = NULL;
  int64_t *assignment = NULL;
  csal3d_selection *rec = NULL;
  bar b;
  memset(&b, 0, sizeof b);
  int64_t n = 0, d = 0, count = 0;
  csal3d_status s = CSAL3D_OK;
  csal3d_manifest_options mo;
  if (!csv_path || !json_path) {
    fprintf(stderr, "csal3d select: out of memory\n");
    rc = EXIT_MEMORY;
    goto done;
  }
  s = csal3d_scores_load(o->scores, &sc);
  if (s != CSAL3D_OK) goto lib_fail;
  csal3d_scores_size(sc, &n, &d);
  abs_scores = realpath(o->scores, NULL);
  if (!abs_scores) abs_scores = strdup(o->scores);
  csal3d_selection_outputs out;
  outputs_of(o, csv_path, json_path, abs_scores, &mo, &out);
  struct stat od;
  made_outdir = (!o->csv || !o->manifest) && stat(o->outdir, &od) != 0;
  if ((!o->csv || !o->manifest) && mkdir_p(o->outdir) != 0) {
    fprintf(stderr, "csal3d select: cannot create the folder %s: %s\n", o->outdir,
            strerror(errno));
    rc = EXIT_DATA;
    goto done;
  }
  /* Before any work: every output writable, none an input, none replaced unless asked,
   * the nnU-Net folder named as nnU-Net needs. */
  out.check_only = 1;
  s = csal3d_selection_write(sc, NULL, sizeof *rec, 0, &out, &mo, &o->export_opts, NULL);
  out.check_only = 0;
  if (s != CSAL3D_OK) goto lib_fail;
  if (o->budget > n) {
    rc = usage_error(c, "--budget %" PRId64 " is more than the %" PRId64 " cases of %s",
                     o->budget, n, o->scores);
    goto done;
  }
  feat = malloc((size_t)(n * d) * sizeof(float));
  scores = malloc((size_t)n * sizeof(float));
  assignment = malloc((size_t)n * sizeof(int64_t));
  rec = calloc((size_t)o->budget, sizeof *rec);
  if (!feat || !scores || !assignment || !rec) {
    fprintf(stderr, "csal3d select: out of memory\n");
    rc = EXIT_MEMORY;
    goto done;
  }
  s = csal3d_scores_copy_features(sc, feat, (size_t)(n * d), NULL);
  if (s == CSAL3D_OK) s = csal3d_scores_copy_scores(sc, scores, (size_t)n, NULL);
  if (s == CSAL3D_OK) s = make_context(c, o->seed, &ctx);
  csal3d_sampler_options so;
  csal3d_sampler_options_init(&so);
  so.strategy = o->strategy;
  so.n_cand = o->n_cand;
  so.kernel = o->kernel;
  so.typiclust_variant = o->typiclust_variant;
  so.use_seed = 1;
  so.seed = o->seed;
  if (s == CSAL3D_OK) s = csal3d_sampler_create(ctx, &so, &smp);
  if (s == CSAL3D_OK) s = csal3d_sampler_set_features(smp, feat, n, d);
  if (s == CSAL3D_OK) s = csal3d_sampler_set_scores(smp, scores, n);
  if (s != CSAL3D_OK) goto lib_fail;
  bar_start(&b, c, "select", 0, 0);
  double t0 = now();
  s = csal3d_sampler_select(smp, o->budget);
  if (s == CSAL3D_OK) b.done = b.total;
  bar_finish(&b);
  if (s == CSAL3D_OK)
    s = csal3d_sampler_get_selection(smp, rec, sizeof *rec, o->budget, &count);
  int64_t n_assigned = 0;
  if (s == CSAL3D_OK) s = csal3d_sampler_get_assignment(smp, assignment, n, &n_assigned);
  if (s != CSAL3D_OK) goto lib_fail;
  mo.assignment = assignment;
  /* The manifests and the nnU-Net folder: all of them or none. */
  if (o->nnunet) bar_start(&b, c, "export", 0, (uint64_t)count);
  s = csal3d_selection_write(sc, rec, sizeof *rec, count, &out, &mo, &o->export_opts, ctx);
  bar_finish(&b);
  if (s != CSAL3D_OK) goto lib_fail;
  rc = print_selection(c, o, sc, rec, count, n, csv_path, json_path, now() - t0);
  goto done;
lib_fail:
  rc = fail(c, s);
done:
  release_interrupts();
  if (rc && made_outdir) rmdir(o->outdir); /* the -o folder made for nothing (if empty) */
  free(feat);
  free(scores);
  free(assignment);
  free(rec);
  free(csv_path);
  free(json_path);
  free(abs_scores);
  csal3d_sampler_free(smp);
  csal3d_context_free(ctx);
  csal3d_scores_free(sc);
  return rc;
}

enum {
  OPT_STRATEGY = OPT_COMMAND,
  OPT_NCAND,
  OPT_KERNEL,
  OPT_SEED,
  OPT_CSV,
  OPT_MANIFEST,
  OPT_NNUNET,
  OPT_LABELS,
  OPT_DATASET_NAME,
  OPT_LABEL_NAMES,
  OPT_CHANNEL_NAMES,
  OPT_SOURCE,
  OPT_OVERWRITE,
  OPT_VARIANT
};

int cmd_select(int argc, char **argv) {
  cli c = {.cmd = "select"};
  select_opts o;
  select_opts_init(&o);
  csal3d_nnunet_options *x = &o.export_opts;
  static const struct option lopts[] = {
      COMMON_LONG_OPTIONS,
      {"budget", required_argument, NULL, 'm'},
      {"strategy", required_argument, NULL, OPT_STRATEGY},
      {"n-cand", required_argument, NULL, OPT_NCAND},
      {"kernel", required_argument, NULL, OPT_KERNEL},
      {"seed", required_argument, NULL, OPT_SEED},
      {"output", required_argument, NULL, 'o'},
      {"csv", required_argument, NULL, OPT_CSV},
      {"manifest", required_argument, NULL, OPT_MANIFEST},
      {"nnunet", required_argument, NULL, OPT_NNUNET},
      {"labels", required_argument, NULL, OPT_LABELS},
      {"dataset-name", required_argument, NULL, OPT_DATASET_NAME},
      {"label-names", required_argument, NULL, OPT_LABEL_NAMES},
      {"channel-names", required_argument, NULL, OPT_CHANNEL_NAMES},
      {"source-dataset", required_argument, NULL, OPT_SOURCE},
      {"overwrite", no_argument, NULL, OPT_OVERWRITE},
      {"typiclust-variant", required_argument, NULL, OPT_VARIANT},
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0, v;
  while ((opt = next_option(&c, NULL, argc, argv, "hqvm:o:", lopts, select_help, &rc)) != -1) {
    if (opt == OPT_DONE) return rc;
    switch (opt) {
    case 'm': rc = parse_i64(&c, "--budget", optarg, 1, INT64_MAX, &o.budget); break;
    case OPT_STRATEGY:
      if (csal3d_strategy_from_name(optarg, &o.strategy) != CSAL3D_OK)
        rc = usage_error(&c, "%s", csal3d_last_error());
      break;
    case OPT_NCAND: rc = parse_int(&c, "--n-cand", optarg, 1, 1 << 20, &o.n_cand); break;
    case OPT_KERNEL:
      if (!(rc = parse_choice(&c, "--kernel", optarg, kernel_names, &v)))
        o.kernel = (csal3d_kernel_mode)v;
      break;
    case OPT_SEED: rc = parse_u64(&c, "--seed", optarg, &o.seed); break;
    case 'o': o.outdir = optarg; break;
    case OPT_CSV: o.csv = optarg; break;
    case OPT_MANIFEST: o.manifest = optarg; break;
    case OPT_NNUNET: o.nnunet = optarg; break;
    case OPT_LABELS:
      if (!(rc = parse_choice(&c, "--labels", optarg, labels_names, &v)))
        x->labels = (csal3d_nnunet_labels)v;
      break;
    case OPT_DATASET_NAME: x->dataset_name = optarg; break;
    case OPT_LABEL_NAMES: x->label_names = optarg; break;
    case OPT_CHANNEL_NAMES: x->channel_names = optarg; break;
    case OPT_SOURCE: x->source_dataset = optarg; break;
    case OPT_OVERWRITE: x->overwrite = 1; break;
    case OPT_VARIANT:
      if (!(rc = parse_choice(&c, "--typiclust-variant", optarg, variant_names, &v)))
        o.typiclust_variant = (csal3d_typiclust_variant)v;
      break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (argc - optind != 1)
    return usage_error(&c, "give one SCORES file (%d arguments given)", argc - optind);
  o.scores = argv[optind];
  finish_common(&c);
  return run_select(&c, &o);
}
