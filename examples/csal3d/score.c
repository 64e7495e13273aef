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
          "'csal3d select' reads.\n"
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
  if (c) cmdline_common(l, c);
}

/* The scores file's metadata: where the scores come from and how they were computed. */
static void set_metadata(csal3d_scores *sc, const score_opts *o, const data_opts *d,
                         const csal3d_ssl_model *m, const csal3d_ssl_options *so,
                         const csal3d_uncertainty_options *uo) {
  char abs_ckpt[4096], abs_ds[4096], buf[256];
  if (!realpath(o->checkpoint, abs_ckpt)) snprintf(abs_ckpt, sizeof abs_ckpt, "%s", o->checkpoint);
  if (!realpath(o->dataset, abs_ds)) snprintf(abs_ds, sizeof abs_ds, "%s", o->dataset);
  int64_t step = 0;
  csal3d_ssl_model_step(m, &step);
  csal3d_scores_set_metadata(sc, "checkpoint", abs_ckpt);
  snprintf(buf, sizeof buf, "%" PRId64, step);
  csal3d_scores_set_metadata(sc, "checkpoint_step", buf);
  snprintf(buf, sizeof buf, "%d", so->embed_dim);
  csal3d_scores_set_metadata(sc, "embed_dim", buf);
  csal3d_scores_set_metadata(sc, "dataset", abs_ds);
  csal3d_scores_set_metadata(sc, "modality", modality_name(d->modality));
  if (d->channel == CSAL3D_CHANNEL_ALL) snprintf(buf, sizeof buf, "all");
  else if (d->channel == CSAL3D_CHANNEL_NONE) snprintf(buf, sizeof buf, "none");
  else snprintf(buf, sizeof buf, "%d", d->channel);
  csal3d_scores_set_metadata(sc, "channel", buf);
  spacing_text(buf, sizeof buf, d->spacing);
  csal3d_scores_set_metadata(sc, "spacing", buf);
  snprintf(buf, sizeof buf, "%" PRId64 ",%" PRId64 ",%" PRId64, uo->window[0], uo->window[1],
           uo->window[2]);
  csal3d_scores_set_metadata(sc, "window", buf);
  snprintf(buf, sizeof buf, "%" PRId64 ",%" PRId64 ",%" PRId64, uo->stride[0], uo->stride[1],
           uo->stride[2]);
  csal3d_scores_set_metadata(sc, "stride", buf);
  if (!isnan(o->foreground)) {
    snprintf(buf, sizeof buf, "%.9g", o->foreground);
    csal3d_scores_set_metadata(sc, "foreground_threshold", buf);
  }
  if (o->seed_set) {
    snprintf(buf, sizeof buf, "%" PRIu64, o->seed);
    csal3d_scores_set_metadata(sc, "seed", buf);
  }
  csal3d_scores_set_metadata(sc, "library_version", csal3d_version());
}

int run_score(cli *c, const score_opts *o) {
  if (!o->output) return usage_error(c, "give the scores file to write with -o PATH");
  for (int a = 0; a < 3; a++)
    if (o->window[a] != -1 && o->window[a] % 32)
      return usage_error(c, "--window sides must be multiples of 32");
  const char *maps = o->maps;
  data_opts d = o->data;
  int rc;
  csal3d_dataset *ds = NULL;
  csal3d_volume_load_options lo;
  if ((rc = open_dataset(c, o->dataset, &d, &ds, &lo))) return rc;
  size_t n;
  csal3d_dataset_size(ds, &n);
  csal3d_context *ctx = NULL;
  csal3d_ssl_model *m = NULL;
  csal3d_uncertainty *u = NULL;
  csal3d_scores *sc = NULL;
  float *feat = NULL;
  char *maps_tmp = NULL;
  char **map_names = NULL;
  bar b;
  memset(&b, 0, sizeof b);
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
  uo.keep_map = maps != NULL;
  if (o->seed_set) {
    uo.use_seed = 1;
    uo.seed = o->seed;
  }
  warn_degenerate(c, uo.window, "window");
  s = csal3d_uncertainty_create(m, &uo, &u);
  int64_t fdim = 0;
  if (s == CSAL3D_OK) s = csal3d_uncertainty_feature_dim(u, &fdim);
  if (s == CSAL3D_OK) s = csal3d_scores_create((int64_t)n, fdim, &sc);
  if (s == CSAL3D_OK && !(feat = calloc((size_t)fdim, sizeof(float))))
    s = CSAL3D_ERR_OUT_OF_MEMORY;
  if (s != CSAL3D_OK) goto lib_fail;
  if (maps) {
    /* Maps are written into a temporary folder beside DIR and moved in at the end. */
    struct stat sb;
    if (stat(maps, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
      rc = usage_error(c, "--maps %s exists and is not a folder", maps);
      goto done;
    }
    size_t ml = strlen(maps) + 32;
    maps_tmp = malloc(ml);
    map_names = calloc(n, sizeof *map_names);
    if (!maps_tmp || !map_names) {
      fprintf(stderr, "csal3d score: out of memory\n");
      rc = EXIT_MEMORY;
      goto done;
    }
    size_t l = strlen(maps);
    while (l > 1 && maps[l - 1] == '/') l--;
    snprintf(maps_tmp, ml, "%.*s.tmp.XXXXXX", (int)l, maps);
    if (!mkdtemp(maps_tmp)) {
      fprintf(stderr, "csal3d score: cannot create a folder beside %s: %s\n", maps,
              strerror(errno));
      free(maps_tmp);
      maps_tmp = NULL;
      rc = EXIT_DATA;
      goto done;
    }
  }
  char sp[64];
  spacing_text(sp, sizeof sp, d.spacing);
  info(c, "scoring %zu cases (%s, spacing %s): windows %" PRId64 "x%" PRId64 "x%" PRId64
       ", stride %" PRId64 "x%" PRId64 "x%" PRId64 ", feature of %" PRId64 " values\n",
       n, modality_name(d.modality), sp, uo.window[0], uo.window[1], uo.window[2],
       uo.stride[0], uo.stride[1], uo.stride[2], fdim);
  catch_interrupts(1);
  bar_start(&b, c, "score", 0, n);
  double t0 = now(), smin = INFINITY, smax = -INFINITY, ssum = 0;
  int reported = 0; /* a case's failure was reported (rc set) */
  for (size_t i = 0; i < n; i++) {
    if (g_interrupted) {
      s = CSAL3D_ERR_CANCELLED;
      break;
    }
    char id[512] = "";
    csal3d_dataset_case_string(ds, i, "id", id, sizeof id, NULL);
    csal3d_volume *v = NULL;
    double score = 0;
    s = csal3d_dataset_load_image(ds, i, &lo, &v);
    if (s == CSAL3D_OK)
      s = csal3d_uncertainty_score(u, v, NULL, (uint64_t)i, &score, feat, (size_t)fdim);
    csal3d_volume_free(v);
    if (s == CSAL3D_OK && !isfinite(score)) {
      bar_clear_line();
      fprintf(stderr, "csal3d score: case %zu (%s): the score is not finite\n", i, id);
      s = CSAL3D_ERR_NUMERICAL;
      rc = EXIT_DATA;
      reported = 1;
      break;
    }
    if (s == CSAL3D_OK)
      s = csal3d_scores_set_case_from_dataset(sc, (int64_t)i, ds, i, (float)score, feat);
    if (s == CSAL3D_OK && maps) {
      size_t ml = strlen(maps_tmp) + strlen(id) + 32;
      char *p = malloc(ml);
      map_names[i] = malloc(strlen(id) + 32);
      if (!p || !map_names[i]) {
        free(p);
        s = CSAL3D_ERR_OUT_OF_MEMORY;
        break;
      }
      snprintf(map_names[i], strlen(id) + 32, "%s_uncertainty.nii.gz", id);
      snprintf(p, ml, "%s/%s", maps_tmp, map_names[i]);
      s = csal3d_uncertainty_save_map(u, p);
      free(p);
      if (s == CSAL3D_OK) {
        size_t fl = strlen(maps) + strlen(map_names[i]) + 2;
        char *final = malloc(fl);
        if (!final) {
          s = CSAL3D_ERR_OUT_OF_MEMORY;
          break;
        }
        snprintf(final, fl, "%s/%s", maps, map_names[i]);
        s = csal3d_scores_set_case_map(sc, (int64_t)i, final);
        free(final);
      }
    }
    if (s != CSAL3D_OK) {
      if (s != CSAL3D_ERR_CANCELLED) {
        rc = fail_at(c, s, "case %zu (%s)", i, id);
        reported = 1;
      }
      break;
    }
    ssum += score;
    smin = score < smin ? score : smin;
    smax = score > smax ? score : smax;
    char note[160];
    snprintf(note, sizeof note, "%.100s: %.4g", id, score);
    bar_update(&b, i + 1, note);
  }
  bar_finish(&b);
  double secs = now() - t0;
  if (s == CSAL3D_OK) {
    set_metadata(sc, o, &d, m, &so, &uo);
    /* Maps into place first (the scores file names them), then the scores file. */
    if (maps) {
      if (mkdir_p(maps) != 0) {
        fprintf(stderr, "csal3d score: cannot create %s: %s\n", maps, strerror(errno));
        rc = EXIT_DATA;
        goto done;
      }
      for (size_t i = 0; i < n; i++) {
        char from[8192], to[8192];
        snprintf(from, sizeof from, "%s/%s", maps_tmp, map_names[i]);
        snprintf(to, sizeof to, "%s/%s", maps, map_names[i]);
        if (rename(from, to) != 0) {
          fprintf(stderr, "csal3d score: cannot move %s to %s: %s\n", from, to, strerror(errno));
          for (size_t k = 0; k < i; k++) { /* take back the ones already moved */
            snprintf(to, sizeof to, "%s/%s", maps, map_names[k]);
            unlink(to);
          }
          rc = EXIT_DATA;
          goto done;
        }
      }
    }
    s = csal3d_scores_save(sc, o->output);
    if (s != CSAL3D_OK && maps)
      for (size_t i = 0; i < n; i++) {
        char to[8192];
        snprintf(to, sizeof to, "%s/%s", maps, map_names[i]);
        unlink(to);
      }
  }
  if (s != CSAL3D_OK) {
    if (s == CSAL3D_ERR_CANCELLED && g_interrupted) {
      fprintf(stderr, "csal3d score: interrupted; nothing written\n");
      rc = EXIT_INTERRUPTED;
    } else if (!reported) {
      rc = fail(c, s);
    }
    goto done;
  }
  if (c->json) {
    printf("{\"command\": \"score\", \"scores\": ");
    json_str(stdout, o->output);
    printf(", \"checkpoint\": ");
    json_str(stdout, o->checkpoint);
    printf(", \"cases\": %zu, \"feature_dim\": %" PRId64 ", \"score_min\": %.9g, "
           "\"score_mean\": %.9g, \"score_max\": %.9g, \"seconds\": %.3f",
           n, fdim, smin, ssum / (double)n, smax, secs);
    if (maps) {
      printf(", \"maps\": ");
      json_str(stdout, maps);
    }
    printf("}\n");
  } else {
    char el[32];
    fmt_duration(el, sizeof el, secs);
    info(c, "done: %zu cases in %s (%.2f s per case); scores %.4g .. %.4g, mean %.4g\n", n, el,
         secs / (double)n, smin, smax, ssum / (double)n);
    info(c, "scores file: %s\n", o->output);
    if (maps) info(c, "uncertainty maps: %s/\n", maps);
  }
  rc = 0;
  goto done;
lib_fail:
  rc = fail(c, s);
done:
  release_interrupts();
  if (maps_tmp) {
    /* Whatever is left in the temporary folder (nothing after success). */
    for (size_t i = 0; map_names && i < n; i++)
      if (map_names[i]) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", maps_tmp, map_names[i]);
        unlink(p);
      }
    rmdir(maps_tmp);
  }
  if (map_names)
    for (size_t i = 0; i < n; i++) free(map_names[i]);
  free(map_names);
  free(maps_tmp);
  free(feat);
  csal3d_scores_free(sc);
  csal3d_uncertainty_free(u);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  csal3d_dataset_free(ds);
  return rc;
}

enum { OPT_WINDOW = OPT_COMMAND, OPT_STRIDE, OPT_MAPS, OPT_FOREGROUND, OPT_FEATURE, OPT_SEED };

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
