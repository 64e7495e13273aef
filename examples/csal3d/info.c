/* csal3d info: the library version, the engines that can run here, the thread count; or,
 * given a file, what it is: a NIfTI image, a checkpoint or a scores file. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void info_help(FILE *f) {
  fprintf(f,
          "usage: csal3d info [FILE] [--json]\n"
          "\n"
          "Without FILE: the library version, which engines can run here and the number\n"
          "of CPU threads a default context uses.\n"
          "\n"
          "With FILE, what the file is, told by its content:\n"
          "  a NIfTI image   its shape and spacing as csal3d reads it (RAS+), the file's\n"
          "                  own dimensions, voxel sizes, datatype, qform/sform codes and\n"
          "                  axis codes (e.g. LPS), channels, intensity range\n"
          "  a checkpoint    embed_dim, in_channels, the step reached, the crop, the data\n"
          "                  options it was trained with, its size\n"
          "  a scores file   the cases (labelled, with maps), the feature dimension, the\n"
          "                  scores' range and the metadata of the run that wrote it\n"
          "A file that cannot be read or is none of these exits with 3.\n"
          "\n"
          "options:\n"
          "  --assume-spacing MM  the voxel size (MM or MM,MM,MM along the file's i, j, k)\n"
          "                     of an image whose pixdim is 0, NaN or Inf\n"
          "  --json             the result as one JSON object on stdout\n"
          "  -h, --help         this text\n");
}

static int engines_info(cli *c) {
  int cpu = 0, cuda = 0, threads = 0;
  csal3d_device_available(CSAL3D_DEVICE_CPU, &cpu);
  csal3d_device_available(CSAL3D_DEVICE_CUDA, &cuda);
  char cuda_why[1024] = "";
  if (!cuda) snprintf(cuda_why, sizeof cuda_why, "%s", csal3d_last_error());
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = CSAL3D_DEVICE_CPU;
  csal3d_context *ctx;
  csal3d_status s = csal3d_context_create(&o, &ctx);
  if (s != CSAL3D_OK) return fail(c, s);
  csal3d_context_threads(ctx, &threads);
  csal3d_context_free(ctx);
  if (c->json) {
    printf("{\"version\": \"%s\", \"engines\": {\"cpu\": %s, \"cuda\": %s}, "
           "\"threads\": %d}\n",
           csal3d_version(), cpu ? "true" : "false", cuda ? "true" : "false", threads);
  } else {
    printf("libcsal3d %s\n", csal3d_version());
    printf("engines:  cpu %s, cuda %s\n", cpu ? "yes" : "no", cuda ? "yes" : "no");
    if (!cuda) printf("          (cuda: %s)\n", cuda_why);
    printf("threads:  %d\n", threads);
  }
  return 0;
}

/* ---- output: "key  value" lines, or the members of one JSON object ---- */

typedef struct out {
  int json, first;
} out;

static void key(out *o, const char *k) {
  if (o->json) {
    printf("%s", o->first ? "" : ", ");
    json_str(stdout, k);
    printf(": ");
  } else {
    printf("  %-16s ", k);
  }
  o->first = 0;
}

static void end_line(out *o) {
  if (!o->json) putchar('\n');
}

static void put_str(out *o, const char *k, const char *v) {
  key(o, k);
  if (o->json) json_str(stdout, v);
  else fputs(v, stdout);
  end_line(o);
}

static void put_int(out *o, const char *k, int64_t v) {
  key(o, k);
  printf("%" PRId64, v);
  end_line(o);
}

static void put_num(out *o, const char *k, double v) {
  key(o, k);
  if (o->json) json_num(stdout, v);
  else printf("%.6g", v);
  end_line(o);
}

/* true/false, or yes/no and a remark. */
static void put_bool(out *o, const char *k, int v, const char *remark) {
  key(o, k);
  if (o->json) fputs(v ? "true" : "false", stdout);
  else printf("%s%s", v ? "yes" : "no", remark);
  end_line(o);
}

static void put_i64s(out *o, const char *k, const int64_t *v, int n) {
  key(o, k);
  printf(o->json ? "[" : "");
  for (int i = 0; i < n; i++)
    printf("%s%" PRId64, i ? (o->json ? ", " : " x ") : "", v[i]);
  printf(o->json ? "]" : "");
  end_line(o);
}

static void put_f64s(out *o, const char *k, const double *v, int n, const char *unit) {
  key(o, k);
  printf(o->json ? "[" : "");
  for (int i = 0; i < n; i++) {
    if (o->json) printf("%s", i ? ", " : "");
    else printf("%s", i ? " x " : "");
    if (o->json) json_num(stdout, v[i]);
    else printf("%.6g", v[i]);
  }
  printf(o->json ? "]" : " %s", unit);
  end_line(o);
}

static void begin(out *o, const char *path, const char *type, const char *what) {
  o->first = 1;
  if (o->json) {
    printf("{");
    put_str(o, "path", path);
    put_str(o, "type", type);
  } else {
    printf("%s: %s\n", path, what);
  }
}

static void finish(out *o) {
  if (o->json) printf("}\n");
  fflush(stdout);
}

/* ---- the kinds of file ---- */

static int describe_nifti(cli *c, out *o, const char *path, const double assume[3]) {
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.channel = CSAL3D_CHANNEL_ALL;
  memcpy(lo.assume_spacing, assume, sizeof lo.assume_spacing);
  csal3d_volume *v = NULL;
  int nonfinite = 0;
  csal3d_status s = csal3d_volume_load(path, &lo, &v);
  if (s == CSAL3D_ERR_NUMERICAL) { /* describe it all the same, and say so */
    nonfinite = 1;
    lo.allow_nonfinite = 1;
    s = csal3d_volume_load(path, &lo, &v);
  }
  if (s != CSAL3D_OK) return fail(c, s);
  csal3d_volume_source_info src = {.struct_size = sizeof src};
  int64_t shape[4];
  double sp[3];
  const float *d;
  csal3d_volume_source(v, &src);
  csal3d_volume_shape(v, shape);
  csal3d_volume_spacing(v, sp);
  csal3d_volume_data(v, &d);
  size_t nv = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
  double lo_v = INFINITY, hi_v = -INFINITY, sum = 0;
  int integer = 1;
  for (size_t i = 0; i < nv; i++) {
    double x = d[i];
    lo_v = x < lo_v ? x : lo_v;
    hi_v = x > hi_v ? x : hi_v;
    sum += x;
    integer = integer && x == floor(x);
  }
  char what[64];
  snprintf(what, sizeof what, "NIfTI-%d image", src.nifti_version);
  begin(o, path, "nifti", what);
  put_int(o, "nifti_version", src.nifti_version);
  put_str(o, "datatype", src.datatype_name);
  put_i64s(o, "file_dims", src.dims, src.dims[3] > 1 ? 4 : 3);
  put_f64s(o, "pixdim", src.pixdim, 3, "mm");
  put_str(o, "axis_codes", src.axis_codes);
  put_str(o, "orientation_from", src.orientation_from);
  put_int(o, "qform_code", src.qform_code);
  put_int(o, "sform_code", src.sform_code);
  put_int(o, "channels", shape[0]);
  put_i64s(o, "shape_ras", shape + 1, 3);
  put_f64s(o, "spacing_ras", sp, 3, "mm");
  put_num(o, "min", lo_v);
  put_num(o, "max", hi_v);
  put_num(o, "mean", nv ? sum / (double)nv : NAN);
  put_bool(o, "integer_values", integer, "");
  put_bool(o, "nonfinite", nonfinite, nonfinite ? ": NaN or Inf voxels, read as 0 here (score "
           "and pretrain refuse the file unless --allow-nonfinite)" : "");
  finish(o);
  csal3d_volume_free(v);
  return 0;
}

static int describe_checkpoint(cli *c, out *o, const char *path) {
  csal3d_context *ctx = NULL;
  csal3d_ssl_model *m = NULL;
  cli quiet = *c;
  quiet.verbose = 0;
  csal3d_status s = make_context(&quiet, 0, &ctx);
  if (s == CSAL3D_OK) s = csal3d_ssl_model_load(ctx, path, &m);
  if (s != CSAL3D_OK) {
    csal3d_context_free(ctx);
    return fail(c, s);
  }
  csal3d_ssl_options so;
  csal3d_ssl_options_init(&so);
  csal3d_ssl_model_get_options(m, &so);
  int64_t step = 0, params = 0, fdim = 0;
  csal3d_ssl_model_step(m, &step);
  csal3d_ssl_model_parameter_count(m, &params);
  csal3d_ssl_model_feature_dim(m, &fdim);
  char data[256];
  data_summary(m, data, sizeof data);
  csal3d_intensity_stats is = {.struct_size = sizeof is};
  csal3d_ssl_model_intensity_stats(m, &is);
  begin(o, path, "checkpoint", "csal3d checkpoint");
  put_int(o, "embed_dim", so.embed_dim);
  put_int(o, "in_channels", so.in_channels);
  put_int(o, "step", step);
  put_int(o, "iterations", so.iterations);
  put_i64s(o, "crop", so.crop_size, 3);
  put_int(o, "batch", so.batch_size);
  put_num(o, "lr", so.lr);
  put_num(o, "mask_ratio", so.mask_ratio);
  put_str(o, "data_options", *data ? data : "not recorded");
  put_int(o, "parameters", params);
  put_int(o, "feature_dim", fdim);
  if (is.crops > 0) {
    put_int(o, "trained_crops", is.crops);
    put_num(o, "crop_mean", is.mean);
    put_num(o, "crop_std", is.std);
  }
  finish(o);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  return 0;
}

static int describe_scores(cli *c, out *o, const char *path) {
  csal3d_scores *sc = NULL;
  csal3d_status s = csal3d_scores_load(path, &sc);
  if (s != CSAL3D_OK) return fail(c, s);
  int64_t n = 0, d = 0, labelled = 0, maps = 0;
  csal3d_scores_size(sc, &n, &d);
  float *v = malloc((size_t)n * sizeof *v);
  if (!v) {
    csal3d_scores_free(sc);
    fprintf(stderr, "csal3d info: out of memory\n");
    return EXIT_MEMORY;
  }
  csal3d_scores_copy_scores(sc, v, (size_t)n, NULL);
  double lo_v = INFINITY, hi_v = -INFINITY, sum = 0;
  for (int64_t i = 0; i < n; i++) {
    lo_v = v[i] < lo_v ? v[i] : lo_v;
    hi_v = v[i] > hi_v ? v[i] : hi_v;
    sum += v[i];
    int has_label = 0;
    size_t need = 0;
    csal3d_scores_case_info(sc, i, NULL, &has_label);
    labelled += has_label;
    csal3d_scores_case_string(sc, i, "map", NULL, 0, &need);
    maps += need > 1;
  }
  free(v);
  begin(o, path, "scores", "csal3d scores file");
  put_int(o, "cases", n);
  put_int(o, "labelled", labelled);
  put_int(o, "with_maps", maps);
  put_int(o, "feature_dim", d);
  put_num(o, "score_min", lo_v);
  put_num(o, "score_max", hi_v);
  put_num(o, "score_mean", n ? sum / (double)n : NAN);
  size_t need = 0;
  csal3d_scores_metadata_json(sc, NULL, 0, &need);
  char *meta = need ? malloc(need) : NULL;
  if (meta && csal3d_scores_metadata_json(sc, meta, need, NULL) == CSAL3D_OK) {
    if (o->json) {
      key(o, "metadata");
      fputs(meta, stdout); /* already a JSON object of strings */
    } else {
      static const char *const keys[] = {"checkpoint", "checkpoint_step", "dataset", "modality",
                                         "channel", "spacing", "window", "stride", "feature",
                                         "seed", "library_version", "skipped_cases", NULL};
      for (int k = 0; keys[k]; k++) { /* whole values, however long (skipped_cases) */
        size_t got = 0;
        if (csal3d_scores_get_metadata(sc, keys[k], NULL, 0, &got) != CSAL3D_OK || got == 0)
          continue;
        char *val = malloc(got);
        if (val && csal3d_scores_get_metadata(sc, keys[k], val, got, NULL) == CSAL3D_OK)
          put_str(o, keys[k], val);
        free(val);
      }
    }
  }
  free(meta);
  finish(o);
  csal3d_scores_free(sc);
  return 0;
}

static int describe(cli *c, const char *path, const double assume[3]) {
  csal3d_file_type t;
  csal3d_status s = csal3d_file_identify(path, &t);
  if (s != CSAL3D_OK) return fail(c, s);
  out o = {.json = c->json, .first = 1};
  switch (t) {
  case CSAL3D_FILE_NIFTI: return describe_nifti(c, &o, path, assume);
  case CSAL3D_FILE_CHECKPOINT:
  case CSAL3D_FILE_SAFETENSORS: /* converted weights load as a model at step 0 */
    return describe_checkpoint(c, &o, path);
  case CSAL3D_FILE_SCORES: return describe_scores(c, &o, path);
  default:
    fprintf(stderr, "csal3d info: %s is neither a NIfTI image nor a csal3d checkpoint or "
            "scores file\n", path);
    return EXIT_DATA;
  }
}

int cmd_info(int argc, char **argv) {
  cli c = {.cmd = "info"};
  static const struct option lopts[] = {
      COMMON_LONG_OPTIONS, {"assume-spacing", required_argument, NULL, OPT_ASSUME_SPACING},
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0;
  double assume[3] = {0, 0, 0};
  while ((opt = next_option(&c, NULL, argc, argv, "hqv", lopts, info_help, &rc)) != -1) {
    if (opt == OPT_DONE) return rc;
    if (opt != OPT_ASSUME_SPACING) return usage_error(&c, "unknown option");
    if ((rc = parse_f64x3(&c, "--assume-spacing", optarg, 0, 1e4, assume))) return rc;
  }
  finish_common(&c);
  if (argc - optind == 0) return engines_info(&c);
  if (argc - optind > 1)
    return usage_error(&c, "give one FILE (%d arguments given)", argc - optind);
  return describe(&c, argv[optind], assume);
}
