/* csal3d pretrain: self-supervised pretraining of the model on a dataset. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static void pretrain_help(FILE *f) {
  fprintf(f,
          "usage: csal3d pretrain DATASET -o CHECKPOINT [options]\n"
          "       csal3d pretrain DATASET --init WEIGHTS -o CHECKPOINT [options]\n"
          "       csal3d pretrain DATASET --resume CHECKPOINT [-o NEW] [--iterations N]\n"
          "\n"
          "Self-supervised pretraining of the Swin-UNETR encoder, inpainting decoder and\n"
          "rotation head (CSAL-3D): each step takes random crops of BATCH cases, makes 9\n"
          "masked, rotated views of each, and minimises inpainting + rotation +\n"
          "consistency losses with AdamW (warm-up, cosine decay). Checkpoints are\n"
          "safetensors files (MONAI parameter names) that resume exactly.\n"
          "\n"
          "options:\n"
          "  -o, --output PATH      the checkpoint to write (with --resume: default the\n"
          "                         resumed file, replaced atomically)\n"
          "  --resume PATH          continue a run from its checkpoint (with the data\n"
          "                         options it records)\n"
          "  --overwrite            -o may replace an existing file\n"
          "  --init WEIGHTS         start from pretrained weights: a MONAI SwinUNETR or\n"
          "                         self-supervised Swin checkpoint converted with\n"
          "                         'python3 -m csal3d.convert', or a csal3d checkpoint; the\n"
          "                         encoder comes from the file (and its width, unless\n"
          "                         --embed-dim), the rest is initialised as for a new model\n"
          "  --embed-dim C          encoder width, a multiple of 12 (default 48)\n"
          "  --crop N               crop size N or D,H,W, multiples of 32 (default 128)\n"
          "  --batch B              crops per step (default 4)\n"
          "  --iterations N         total steps of the schedule (default 30000)\n"
          "  --lr X                 peak learning rate (default 5e-4 x batch / 2)\n"
          "  --warmup N             warm-up steps (default 500, at most iterations / 10\n"
          "                         when iterations < 5000)\n"
          "  --mask-ratio R         fraction of 16^3 cubes hidden (default 0.3)\n"
          "  --seed S               seed of every random draw (default 0)\n"
          "  --checkpoint-every K   also write the checkpoint every K steps (default 0:\n"
          "                         only at the end and on Ctrl-C)\n"
          "  --cache-mb N           keep preprocessed volumes in memory (default 1024)\n"
          "%s%s",
          DATA_HELP, COMMON_HELP);
}

void pretrain_opts_init(pretrain_opts *o) {
  memset(o, 0, sizeof *o);
  data_opts_init(&o->data);
  o->embed_dim = o->batch = o->iterations = o->warmup = o->checkpoint_every = o->cache_mb = -1;
  o->crop[0] = o->crop[1] = o->crop[2] = -1;
  o->lr = o->mask_ratio = -1;
}

void pretrain_cmdline(cmdline *l, const cli *c, const pretrain_opts *o) {
  cmdline_init(l, "pretrain");
  cmdline_add(l, o->dataset);
  if (o->output) cmdline_opt(l, "-o", "%s", o->output);
  if (o->resume) cmdline_opt(l, "--resume", "%s", o->resume);
  if (o->init) cmdline_opt(l, "--init", "%s", o->init);
  if (o->embed_dim != -1) cmdline_opt(l, "--embed-dim", "%" PRId64, o->embed_dim);
  if (o->crop[0] != -1) cmdline_opt_i64x3(l, "--crop", o->crop);
  if (o->batch != -1) cmdline_opt(l, "--batch", "%" PRId64, o->batch);
  if (o->iterations != -1) cmdline_opt(l, "--iterations", "%" PRId64, o->iterations);
  if (o->lr != -1) cmdline_opt_f64(l, "--lr", o->lr);
  if (o->warmup != -1) cmdline_opt(l, "--warmup", "%" PRId64, o->warmup);
  if (o->mask_ratio != -1) cmdline_opt_f64(l, "--mask-ratio", o->mask_ratio);
  cmdline_data(l, &o->data);
  if (o->seed_set) cmdline_opt(l, "--seed", "%" PRIu64, o->seed);
  if (o->checkpoint_every != -1)
    cmdline_opt(l, "--checkpoint-every", "%" PRId64, o->checkpoint_every);
  if (o->cache_mb != -1) cmdline_opt(l, "--cache-mb", "%" PRId64, o->cache_mb);
  if (o->overwrite) cmdline_add(l, "--overwrite");
  if (c) cmdline_common(l, c);
}

/* What the command line cannot check by itself; returns an exit code. */
static int pretrain_check(cli *c, const pretrain_opts *o) {
  if (!o->output && !o->resume) return usage_error(c, "give the checkpoint to write with -o PATH");
  if (o->init && o->resume)
    return usage_error(c, "--init starts a new run from weights, --resume continues one: give "
                       "one of them");
  for (int a = 0; a < 3; a++)
    if (o->crop[a] != -1 && o->crop[a] % 32)
      return usage_error(c, "--crop sides must be multiples of 32 (the encoder halves the "
                         "size 5 times)");
  if (o->embed_dim != -1 && o->embed_dim % 12)
    return usage_error(c, "--embed-dim must be a multiple of 12 (3 attention heads of the "
                       "first stage need C/3 divisible by 4)");
  return 0;
}

typedef struct pretrain_state {
  cli *c;
  bar b;
} pretrain_state;

static int on_step(void *user, const csal3d_ssl_losses *l, int64_t iterations) {
  pretrain_state *p = user;
  char note[192];
  snprintf(note, sizeof note, "loss %.4f (inp %.4f rot %.3f cons %.4f) lr %.2g", l->loss,
           l->inpainting, l->rotation, l->consistency, l->lr);
  p->b.total = (uint64_t)iterations;
  bar_update(&p->b, (uint64_t)l->step + 1, note);
  if (!p->c->tty && p->c->verbose)
    fprintf(stderr, "step %" PRId64 "/%" PRId64 ": %s\n", l->step + 1, iterations, note);
  return g_interrupted ? 1 : 0;
}

/* After Ctrl-C: saves a resumable checkpoint and says how to continue. */
static int pretrain_interrupted(csal3d_ssl_model *m, const pretrain_opts *o, const char *output,
                                int64_t start) {
  int64_t step = 0;
  csal3d_ssl_model_step(m, &step);
  if (step <= start) {
    fprintf(stderr, "csal3d pretrain: interrupted before the first step; nothing written\n");
    return EXIT_INTERRUPTED;
  }
  if (csal3d_ssl_model_save(m, output) != CSAL3D_OK) {
    fprintf(stderr, "csal3d pretrain: interrupted; saving %s failed: %s\n", output,
            csal3d_last_error());
    return EXIT_INTERRUPTED;
  }
  pretrain_opts next; /* the checkpoint records the data options: none to repeat */
  pretrain_opts_init(&next);
  next.dataset = o->dataset;
  next.resume = output;
  cmdline l;
  pretrain_cmdline(&l, NULL, &next);
  fprintf(stderr, "csal3d pretrain: interrupted after %" PRId64 " steps; saved %s; continue "
          "with: ", step, output);
  cmdline_print(stderr, &l);
  fputc('\n', stderr);
  return EXIT_INTERRUPTED;
}

int run_pretrain(cli *c, const pretrain_opts *o) {
  int rc = pretrain_check(c, o);
  if (rc) return rc;
  const char *output = o->output ? o->output : o->resume;
  csal3d_dataset *ds = NULL;
  if ((rc = open_dataset(c, o->dataset, &o->data, &ds))) return rc;
  /* Before any work: the checkpoint's folder, and no existing file replaced unless asked
   * (the resumed checkpoint itself is continued in place). */
  const char *inputs[] = {o->dataset, o->init};
  int in_place = o->resume && (!o->output || same_file(o->output, o->resume));
  if ((rc = check_output(c, output, CSAL3D_OUTPUT_FILE, "the checkpoint (-o)", inputs,
                         o->init ? 2 : 1,
                         o->overwrite || in_place)) ||
      (!o->resume && (rc = require_modality(c, &o->data, ds, o->dataset)))) {
    csal3d_dataset_free(ds);
    return rc;
  }
  size_t ncases;
  csal3d_dataset_size(ds, &ncases);
  csal3d_context *ctx = NULL;
  csal3d_ssl_model *m = NULL;
  csal3d_status s = make_context(c, o->seed, &ctx);
  if (s != CSAL3D_OK) {
    csal3d_dataset_free(ds);
    return fail(c, s);
  }
  pretrain_state ps = {.c = c};
  csal3d_ssl_options so;
  csal3d_ssl_options_init(&so);
  if (o->resume) {
    s = csal3d_ssl_model_load(ctx, o->resume, &m);
    if (s == CSAL3D_OK) s = csal3d_ssl_model_get_options(m, &so);
    if (s == CSAL3D_OK && o->embed_dim != -1 && o->embed_dim != so.embed_dim) {
      rc = usage_error(c, "%s was pretrained with --embed-dim %d; the architecture cannot "
                       "change on --resume", o->resume, so.embed_dim);
      goto done;
    }
  } else {
    /* The width from the starting weights; in_channels from the first case, so that
     * multi-channel data just works (and weights for other channels are refused). */
    if (o->init) s = csal3d_ssl_options_from_weights(o->init, &so);
    csal3d_volume *first = NULL;
    csal3d_volume_load_options flo;
    const csal3d_volume_load_options *fl = load_options(&o->data, NULL, &flo);
    if (s == CSAL3D_OK) s = csal3d_dataset_load_image(ds, 0, fl ? fl : &flo, &first);
    if (s == CSAL3D_OK) {
      int64_t sh[4];
      csal3d_volume_shape(first, sh);
      so.in_channels = (int)sh[0];
      csal3d_volume_free(first);
    }
    if (o->embed_dim != -1) so.embed_dim = (int)o->embed_dim;
  }
  if (s != CSAL3D_OK) goto lib_fail;
  if (o->crop[0] != -1) memcpy(so.crop_size, o->crop, sizeof so.crop_size);
  if (o->batch != -1) so.batch_size = (int)o->batch;
  if (o->iterations != -1) so.iterations = o->iterations;
  if (o->lr != -1) so.lr = o->lr;
  if (o->mask_ratio != -1) so.mask_ratio = o->mask_ratio;
  if (o->warmup != -1) so.warmup_steps = o->warmup;
  else if (!o->resume && so.iterations < 5000 && so.warmup_steps > so.iterations / 10)
    so.warmup_steps = so.iterations / 10; /* short runs: do not spend them warming up */
  if (o->checkpoint_every != -1) so.checkpoint_every = o->checkpoint_every;
  if (o->cache_mb != -1) so.cache_bytes = o->cache_mb << 20;
  if (o->seed_set || !o->resume) {
    so.use_seed = 1;
    so.seed = o->seed;
  }
  so.checkpoint_path = output;
  so.on_step = on_step;
  so.on_step_user_data = &ps;
  s = o->resume ? csal3d_ssl_model_set_options(m, &so) : csal3d_ssl_model_create(ctx, &so, &m);
  csal3d_ssl_init_report init;
  memset(&init, 0, sizeof init);
  init.struct_size = sizeof init;
  if (s == CSAL3D_OK && o->init) s = csal3d_ssl_model_init_from(m, o->init, &init);
  if (s != CSAL3D_OK) goto lib_fail;
  if (o->init) info(c, "starting weights: %s\n", init.summary);
  warn_degenerate(c, so.crop_size, "crop");
  int64_t start = 0, step = 0, params = 0;
  csal3d_ssl_model_step(m, &start);
  csal3d_ssl_model_parameter_count(m, &params);
  info(c, "pretraining on %zu cases: embed-dim %d (%" PRId64 " parameters), crop %" PRId64
       "x%" PRId64 "x%" PRId64 ", batch %d, steps %" PRId64 "..%" PRId64 "\n", ncases,
       so.embed_dim, params, so.crop_size[0], so.crop_size[1], so.crop_size[2], so.batch_size,
       start, so.iterations);
  csal3d_volume_load_options lo;
  const csal3d_volume_load_options *load = load_options(&o->data, o->resume ? m : NULL, &lo);
  catch_interrupts();
  bar_start(&ps.b, c, "pretrain", (uint64_t)start, (uint64_t)so.iterations);
  double t0 = now();
  s = csal3d_ssl_model_train(m, ds, load);
  double secs = now() - t0;
  bar_finish(&ps.b);
  if (s == CSAL3D_ERR_CANCELLED && (g_interrupted || g_tool_comm)) {
    /* over MPI a Ctrl-C on any rank stops every rank after the same step: rank 0 saves */
    rc = tool_rank() == 0 ? pretrain_interrupted(m, o, output, start) : EXIT_INTERRUPTED;
    goto done;
  }
  if (s != CSAL3D_OK) goto lib_fail;
  csal3d_ssl_model_step(m, &step);
  if (step == start && !in_place && tool_rank() == 0) { /* no step was run (already at iterations) */
    s = csal3d_ssl_model_save(m, output);
    if (s != CSAL3D_OK) goto lib_fail;
  }
  char data[160];
  data_summary(m, data, sizeof data);
  csal3d_ssl_losses l;
  memset(&l, 0, sizeof l);
  l.struct_size = sizeof l;
  int have_losses = csal3d_ssl_model_last_losses(m, &l) == CSAL3D_OK;
  if (c->json) {
    printf("{\"command\": \"pretrain\", \"checkpoint\": ");
    json_str(stdout, output);
    printf(", \"dataset\": ");
    json_str(stdout, o->dataset);
    printf(", \"data\": ");
    json_str(stdout, data);
    printf(", \"cases\": %zu, \"embed_dim\": %d, \"parameters\": %" PRId64
           ", \"start_step\": %" PRId64 ", \"step\": %" PRId64 ", \"iterations\": %" PRId64
           ", \"seconds\": %.3f",
           ncases, so.embed_dim, params, start, step, so.iterations, secs);
    if (o->init) {
      printf(", \"init\": {\"path\": ");
      json_str(stdout, o->init);
      printf(", \"loaded\": %" PRId64 ", \"initialised\": %" PRId64 ", \"ignored\": %" PRId64
             "}", init.loaded, init.initialised, init.ignored);
    }
    if (have_losses)
      printf(", \"loss\": %.9g, \"inpainting\": %.9g, \"rotation\": %.9g, \"consistency\": "
             "%.9g, \"lr\": %.9g", l.loss, l.inpainting, l.rotation, l.consistency, l.lr);
    printf("}\n");
  } else {
    char el[32];
    fmt_duration(el, sizeof el, secs);
    info(c, "done: steps %" PRId64 "..%" PRId64 " in %s (%.2f steps/s)\n", start, step, el,
         secs > 0 ? (double)(step - start) / secs : 0.0);
    if (have_losses)
      info(c, "last step: loss %.4f = inpainting %.4f + rotation %.4f + consistency %.4f\n",
           l.loss, l.inpainting, l.rotation, l.consistency);
    info(c, "checkpoint: %s (data: %s)\n", output, data);
  }
  rc = 0;
  goto done;
lib_fail:
  rc = fail(c, s);
done:
  release_interrupts();
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  csal3d_dataset_free(ds);
  return rc;
}

enum {
  OPT_RESUME = OPT_COMMAND,
  OPT_INIT,
  OPT_EMBED,
  OPT_CROP,
  OPT_BATCH,
  OPT_ITER,
  OPT_LR,
  OPT_WARMUP,
  OPT_MASK_RATIO,
  OPT_SEED,
  OPT_CKPT_EVERY,
  OPT_CACHE,
  OPT_OVERWRITE
};

int cmd_pretrain(int argc, char **argv) {
  cli c = {.cmd = "pretrain"};
  pretrain_opts o;
  pretrain_opts_init(&o);
  static const struct option lopts[] = {
      COMMON_LONG_OPTIONS, DATA_LONG_OPTIONS,
      {"output", required_argument, NULL, 'o'},
      {"resume", required_argument, NULL, OPT_RESUME},
      {"init", required_argument, NULL, OPT_INIT},
      {"embed-dim", required_argument, NULL, OPT_EMBED},
      {"crop", required_argument, NULL, OPT_CROP},
      {"batch", required_argument, NULL, OPT_BATCH},
      {"iterations", required_argument, NULL, OPT_ITER},
      {"lr", required_argument, NULL, OPT_LR},
      {"warmup", required_argument, NULL, OPT_WARMUP},
      {"mask-ratio", required_argument, NULL, OPT_MASK_RATIO},
      {"seed", required_argument, NULL, OPT_SEED},
      {"checkpoint-every", required_argument, NULL, OPT_CKPT_EVERY},
      {"cache-mb", required_argument, NULL, OPT_CACHE},
      {"overwrite", no_argument, NULL, OPT_OVERWRITE},
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0;
  while ((opt = next_option(&c, &o.data, argc, argv, "hqvo:", lopts, pretrain_help, &rc)) != -1) {
    if (opt == OPT_DONE) return rc;
    switch (opt) {
    case 'o': o.output = optarg; break;
    case OPT_RESUME: o.resume = optarg; break;
    case OPT_INIT: o.init = optarg; break;
    case OPT_EMBED: rc = parse_i64(&c, "--embed-dim", optarg, 12, 768, &o.embed_dim); break;
    case OPT_CROP: rc = parse_i64x3(&c, "--crop", optarg, 32, 4096, o.crop); break;
    case OPT_BATCH: rc = parse_i64(&c, "--batch", optarg, 1, 4096, &o.batch); break;
    case OPT_ITER:
      rc = parse_i64(&c, "--iterations", optarg, 1, INT64_MAX / 4096, &o.iterations);
      break;
    case OPT_LR: rc = parse_f64(&c, "--lr", optarg, 1e-12, 10, &o.lr); break;
    case OPT_WARMUP: rc = parse_i64(&c, "--warmup", optarg, 0, INT64_MAX / 4096, &o.warmup); break;
    case OPT_MASK_RATIO: rc = parse_f64(&c, "--mask-ratio", optarg, 0, 1, &o.mask_ratio); break;
    case OPT_SEED:
      rc = parse_u64(&c, "--seed", optarg, &o.seed);
      o.seed_set = 1;
      break;
    case OPT_CKPT_EVERY:
      rc = parse_i64(&c, "--checkpoint-every", optarg, 0, INT64_MAX / 4096, &o.checkpoint_every);
      break;
    case OPT_CACHE:
      rc = parse_i64(&c, "--cache-mb", optarg, 0, INT64_MAX >> 21, &o.cache_mb);
      break;
    case OPT_OVERWRITE: o.overwrite = 1; break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (optind + 1 != argc)
    return usage_error(&c, optind >= argc ? "give the DATASET" : "one DATASET only ('%s'?)",
                       optind < argc ? argv[optind + 1] : "");
  o.dataset = argv[optind];
  finish_common(&c);
  return run_pretrain(&c, &o);
}
