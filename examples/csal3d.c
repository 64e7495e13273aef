/* csal3d: the command-line tool of libcsal3d.
 *
 *   csal3d pretrain DATASET -o ssl.safetensors     self-supervised pretraining
 *   csal3d score ssl.safetensors DATASET -o scores.safetensors
 *   csal3d select scores.safetensors --budget 20 [--nnunet DIR]
 *   csal3d demo                                     the whole pipeline on phantom data
 *   csal3d info                                     version, engines, threads
 *
 * Every command has --help. Progress bars go to stderr when it is a terminal (never with
 * --quiet); results go to stdout, as text or with --json as one JSON object.
 *
 * Environment: OMP_WAIT_POLICY (default passive here, see passive_openmp), OMP_* as usual.
 *
 * Exit codes:
 *   0    success
 *   1    failure inside the library not covered below (a bug, a call in the wrong state)
 *   2    bad command line (unknown option, missing or invalid value)
 *   3    bad or unreadable input, or output that cannot be written (a file is missing,
 *        truncated, corrupt, not what it should be, holds NaN, ...)
 *   4    the requested device (CUDA) is not available
 *   5    out of memory
 *   130  interrupted (Ctrl-C); nothing partial is left (pretrain saves a resumable
 *        checkpoint first)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csal3d/csal3d.h"

enum {
  EXIT_LIBRARY = 1,
  EXIT_USAGE = 2,
  EXIT_DATA = 3,
  EXIT_DEVICE = 4,
  EXIT_MEMORY = 5,
  EXIT_INTERRUPTED = 130
};

static int exit_code(csal3d_status s) {
  switch (s) {
  case CSAL3D_OK: return 0;
  case CSAL3D_ERR_IO:
  case CSAL3D_ERR_FORMAT:
  case CSAL3D_ERR_UNSUPPORTED:
  case CSAL3D_ERR_NUMERICAL:
  case CSAL3D_ERR_CHECKSUM: return EXIT_DATA;
  case CSAL3D_ERR_INVALID_ARGUMENT: return EXIT_USAGE;
  case CSAL3D_ERR_DEVICE_UNAVAILABLE: return EXIT_DEVICE;
  case CSAL3D_ERR_OUT_OF_MEMORY: return EXIT_MEMORY;
  case CSAL3D_ERR_CANCELLED: return EXIT_INTERRUPTED;
  default: return EXIT_LIBRARY;
  }
}

/* ---- shared state ---- */

typedef struct cli {
  const char *cmd; /* the running command, for messages */
  int quiet, json, verbose;
  int tty;         /* stderr is a terminal and not quiet: draw progress bars */
  int threads;
  csal3d_device device;
} cli;

static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
  if (g_interrupted) { /* a second Ctrl-C stops at once */
    signal(sig, SIG_DFL);
    raise(sig);
  }
  g_interrupted = 1;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fmt_duration(char *buf, size_t cap, double s) {
  if (!(s >= 0) || s > 1e8) {
    snprintf(buf, cap, "--:--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

/* ---- progress bar (stderr, terminals only) ---- */

typedef struct bar {
  cli *c;
  char stage[32];
  uint64_t done, total, first; /* first: done when the bar started (resumed runs) */
  double t0, drawn;
  char note[192], sub[64];
  int shown;
} bar;

static bar *g_bar;

static void bar_draw(bar *b, int force) {
  if (!b || !b->c->tty) return;
  double t = now();
  if (!force && t - b->drawn < 0.1) return;
  b->drawn = t;
  char el[32], eta[32] = "--:--";
  fmt_duration(el, sizeof el, t - b->t0);
  if (b->done > b->first && b->total > b->done)
    fmt_duration(eta, sizeof eta,
                 (t - b->t0) / (double)(b->done - b->first) * (double)(b->total - b->done));
  else if (b->total && b->done >= b->total)
    snprintf(eta, sizeof eta, "00:00");
  char bars[32];
  int width = 24, fill = b->total ? (int)((double)width * (double)b->done / (double)b->total) : 0;
  if (fill > width) fill = width;
  for (int i = 0; i < width; i++) bars[i] = i < fill ? '#' : '-';
  bars[width] = '\0';
  fprintf(stderr, "\r\033[K%-8s [%s] %" PRIu64 "/%" PRIu64 "  %s  ETA %s  %s%s%s", b->stage,
          bars, b->done, b->total, el, eta, b->note, b->sub[0] ? "  " : "", b->sub);
  fflush(stderr);
  b->shown = 1;
}

static void bar_start(bar *b, cli *c, const char *stage, uint64_t first, uint64_t total) {
  memset(b, 0, sizeof *b);
  b->c = c;
  snprintf(b->stage, sizeof b->stage, "%s", stage);
  b->first = b->done = first;
  b->total = total;
  b->t0 = now();
  g_bar = b;
  bar_draw(b, 1);
}

static void bar_update(bar *b, uint64_t done, const char *note) {
  b->done = done;
  if (note) snprintf(b->note, sizeof b->note, "%s", note);
  b->sub[0] = '\0';
  bar_draw(b, done == b->total);
}

static void bar_clear_line(void) {
  if (g_bar && g_bar->shown) fprintf(stderr, "\r\033[K");
}

static void bar_finish(bar *b) {
  if (b->shown) {
    bar_draw(b, 1);
    fputc('\n', stderr);
  }
  b->shown = 0;
  if (g_bar == b) g_bar = NULL;
}

/* The context's progress callback: the running command's stage moves its bar; a nested
 * stage (windows of one volume, say) shows as a note. Ctrl-C cancels. */
static int on_progress(void *user, const char *stage, uint64_t done, uint64_t total) {
  (void)user;
  bar *b = g_bar;
  if (b) {
    if (strcmp(stage, b->stage) == 0) {
      b->done = done;
      if (total) b->total = total;
      bar_draw(b, 0);
    } else if (total > 1) {
      snprintf(b->sub, sizeof b->sub, "(%s %" PRIu64 "/%" PRIu64 ")", stage, done, total);
      bar_draw(b, 0);
    }
  }
  return g_interrupted ? 1 : 0;
}

static void on_log(void *user, csal3d_log_level level, const char *message) {
  cli *c = user;
  if (level > CSAL3D_LOG_WARN && !c->verbose) return;
  bar_clear_line();
  fprintf(stderr, "csal3d %s: %s%s\n", c->cmd,
          level == CSAL3D_LOG_ERROR ? "error: " : level == CSAL3D_LOG_WARN ? "warning: " : "",
          message);
  if (g_bar) bar_draw(g_bar, 1);
}

/* ---- messages ---- */

static int usage_error(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(cli *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "csal3d %s: ", c->cmd);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'csal3d %s --help'.\n", c->cmd);
  return EXIT_USAGE;
}

/* Reports a library failure (with its message) and returns the exit code. */
static int fail(cli *c, csal3d_status s) {
  bar_clear_line();
  if (s == CSAL3D_ERR_CANCELLED && g_interrupted)
    fprintf(stderr, "csal3d %s: interrupted\n", c->cmd);
  else
    fprintf(stderr, "csal3d %s: %s\n", c->cmd, csal3d_last_error());
  return exit_code(s);
}

static void info(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info(cli *c, const char *fmt, ...) {
  if (c->quiet || c->json) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

/* A JSON string literal. */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p == '\n') fputs("\\n", f);
    else if (*p == '\t') fputs("\\t", f);
    else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

/* A JSON number, null for NaN, "inf" for infinities (as the manifest writes them). */
static void json_num(FILE *f, double v) {
  if (isnan(v)) fputs("null", f);
  else if (isinf(v)) fputs(v > 0 ? "\"inf\"" : "\"-inf\"", f);
  else fprintf(f, "%.9g", v);
}

/* ---- parsing ---- */

static int parse_i64(cli *c, const char *opt, const char *s, int64_t lo, int64_t hi,
                     int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end == s || *end || errno || v < lo || v > hi)
    return usage_error(c, "%s needs a whole number from %" PRId64 " to %" PRId64 ", not '%s'",
                       opt, lo, hi, s);
  *out = v;
  return 0;
}

static int parse_int(cli *c, const char *opt, const char *s, int lo, int hi, int *out) {
  int64_t v;
  int r = parse_i64(c, opt, s, lo, hi, &v);
  if (!r) *out = (int)v;
  return r;
}

static int parse_u64(cli *c, const char *opt, const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  if (*s == '-') return usage_error(c, "%s needs a non-negative whole number, not '%s'", opt, s);
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || *end || errno)
    return usage_error(c, "%s needs a non-negative whole number, not '%s'", opt, s);
  *out = v;
  return 0;
}

static int parse_f64(cli *c, const char *opt, const char *s, double lo, double hi,
                     double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || errno || !isfinite(v) || v < lo || v > hi)
    return usage_error(c, "%s needs a number from %g to %g, not '%s'", opt, lo, hi, s);
  *out = v;
  return 0;
}

/* "N" (all three axes) or "D,H,W". */
static int parse_i64x3(cli *c, const char *opt, const char *s, int64_t lo, int64_t hi,
                       int64_t out[3]) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", s);
  char *parts[4];
  int n = 0;
  for (char *t = strtok(buf, ","); t && n < 4; t = strtok(NULL, ",")) parts[n++] = t;
  if (n != 1 && n != 3)
    return usage_error(c, "%s needs N or D,H,W, not '%s'", opt, s);
  for (int i = 0; i < n; i++)
    if (parse_i64(c, opt, parts[i], lo, hi, &out[i])) return EXIT_USAGE;
  if (n == 1) out[1] = out[2] = out[0];
  return 0;
}

static int parse_f64x3(cli *c, const char *opt, const char *s, double lo, double hi,
                       double out[3]) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", s);
  char *parts[4];
  int n = 0;
  for (char *t = strtok(buf, ","); t && n < 4; t = strtok(NULL, ",")) parts[n++] = t;
  if (n != 1 && n != 3) return usage_error(c, "%s needs MM or MM,MM,MM, not '%s'", opt, s);
  for (int i = 0; i < n; i++)
    if (parse_f64(c, opt, parts[i], lo, hi, &out[i])) return EXIT_USAGE;
  if (n == 1) out[1] = out[2] = out[0];
  return 0;
}

/* ---- options every command takes ---- */

enum {
  OPT_JSON = 256,
  OPT_THREADS,
  OPT_DEVICE,
  OPT_MODALITY,
  OPT_CHANNEL,
  OPT_SPACING,
  OPT_EMBED,
  OPT_CROP,
  OPT_BATCH,
  OPT_ITER,
  OPT_LR,
  OPT_WARMUP,
  OPT_SEED,
  OPT_CKPT_EVERY,
  OPT_RESUME,
  OPT_CACHE,
  OPT_WINDOW,
  OPT_STRIDE,
  OPT_MAPS,
  OPT_FOREGROUND,
  OPT_FEATURE,
  OPT_STRATEGY,
  OPT_NCAND,
  OPT_KERNEL,
  OPT_CSV,
  OPT_MANIFEST,
  OPT_NNUNET,
  OPT_DATASET_NAME,
  OPT_LABELS,
  OPT_LABEL_NAMES,
  OPT_CHANNEL_NAMES,
  OPT_SOURCE,
  OPT_OVERWRITE,
  OPT_DIR,
  OPT_CASES,
  OPT_MASK_RATIO
};

#define COMMON_LONG_OPTIONS                                                    \
  {"help", no_argument, NULL, 'h'}, {"quiet", no_argument, NULL, 'q'},         \
      {"verbose", no_argument, NULL, 'v'}, {"json", no_argument, NULL, OPT_JSON}, \
      {"threads", required_argument, NULL, OPT_THREADS},                       \
      {"device", required_argument, NULL, OPT_DEVICE}

#define COMMON_HELP                                                            \
  "common options:\n"                                                          \
  "  --threads N        CPU threads (default: one per core)\n"                 \
  "  --device D         auto (default), cpu or cuda\n"                         \
  "  -q, --quiet        no progress bars and no summary (errors still go to stderr)\n" \
  "  -v, --verbose      the library's log messages on stderr\n"                \
  "  --json             the result as one JSON object on stdout\n"             \
  "  -h, --help         this text\n"                                           \
  "Progress bars go to stderr when it is a terminal. Exit codes: 0 ok, 2 bad command\n" \
  "line, 3 bad/unreadable input or unwritable output, 4 device unavailable, 5 out of\n" \
  "memory, 130 interrupted, 1 other library failure.\n"

/* Handles a common option; returns 1 if it was one (and *rc != 0 on a bad value). */
static int common_option(cli *c, int opt, const char *arg, int *rc) {
  switch (opt) {
  case 'q': c->quiet = 1; return 1;
  case 'v': c->verbose = 1; return 1;
  case OPT_JSON: c->json = 1; return 1;
  case OPT_THREADS: *rc = parse_int(c, "--threads", arg, 0, 4096, &c->threads); return 1;
  case OPT_DEVICE:
    if (!strcasecmp(arg, "auto")) c->device = CSAL3D_DEVICE_AUTO;
    else if (!strcasecmp(arg, "cpu")) c->device = CSAL3D_DEVICE_CPU;
    else if (!strcasecmp(arg, "cuda") || !strcasecmp(arg, "gpu")) c->device = CSAL3D_DEVICE_CUDA;
    else *rc = usage_error(c, "--device must be auto, cpu or cuda, not '%s'", arg);
    return 1;
  default: return 0;
  }
}

static void finish_common(cli *c) {
  c->tty = !c->quiet && isatty(STDERR_FILENO);
}

static csal3d_status make_context(cli *c, uint64_t seed, csal3d_context **ctx) {
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = c->device;
  o.threads = c->threads;
  o.seed = seed;
  o.log = on_log;
  o.log_user_data = c;
  o.log_level = c->verbose ? CSAL3D_LOG_INFO : CSAL3D_LOG_WARN;
  o.progress = on_progress;
  return csal3d_context_create(&o, ctx);
}

/* ---- datasets ---- */

typedef struct data_opts {
  csal3d_modality modality;
  int modality_set;
  int channel; /* CSAL3D_CHANNEL_NONE unless set */
  double spacing[3];
} data_opts;

static void data_opts_init(data_opts *d) {
  memset(d, 0, sizeof *d);
  d->channel = CSAL3D_CHANNEL_NONE;
}

/* Handles a data option; returns 1 if it was one. */
static int data_option(cli *c, data_opts *d, int opt, const char *arg, int *rc) {
  switch (opt) {
  case OPT_MODALITY:
    if (!strcasecmp(arg, "ct")) d->modality = CSAL3D_MODALITY_CT;
    else if (!strcasecmp(arg, "mri") || !strcasecmp(arg, "mr")) d->modality = CSAL3D_MODALITY_MRI;
    else if (!strcasecmp(arg, "none")) d->modality = CSAL3D_MODALITY_NONE;
    else *rc = usage_error(c, "--modality must be ct, mri or none, not '%s'", arg);
    d->modality_set = 1;
    return 1;
  case OPT_CHANNEL:
    if (!strcasecmp(arg, "all")) d->channel = CSAL3D_CHANNEL_ALL;
    else *rc = parse_int(c, "--channel", arg, 0, 1 << 20, &d->channel);
    return 1;
  case OPT_SPACING: *rc = parse_f64x3(c, "--spacing", arg, 0, 1e4, d->spacing); return 1;
  default: return 0;
  }
}

#define DATA_LONG_OPTIONS                                                      \
  {"modality", required_argument, NULL, OPT_MODALITY},                         \
      {"channel", required_argument, NULL, OPT_CHANNEL},                       \
      {"spacing", required_argument, NULL, OPT_SPACING}

#define DATA_HELP                                                              \
  "data options (DATASET: a folder of NIfTI files or with imagesTr/, a decathlon or\n" \
  "nnU-Net dataset.json, or a text file with one 'image[,label]' per line):\n"  \
  "  --modality M       ct (clip [-1024, 1024] HU, scale to [0, 1]), mri (z-score,\n" \
  "                     1st/99th percentiles, [0, 1]) or none; default: what the\n" \
  "                     dataset.json says\n"                                   \
  "  --channel C        which volume of 4-D images (0, 1, ...) or 'all' as channels\n" \
  "  --spacing MM       resample to this spacing (MM or MM,MM,MM; 0 keeps an axis)\n"

static const char *modality_name(csal3d_modality m) {
  return m == CSAL3D_MODALITY_CT ? "ct" : m == CSAL3D_MODALITY_MRI ? "mri" : "none";
}

/* Opens the dataset and fills the load options; returns an exit code. */
static int open_dataset(cli *c, const char *path, data_opts *d, csal3d_dataset **ds,
                        csal3d_volume_load_options *lo) {
  csal3d_status s = csal3d_dataset_open(path, NULL, ds);
  if (s != CSAL3D_OK) return fail(c, s);
  size_t n = 0;
  csal3d_dataset_size(*ds, &n);
  if (n == 0) {
    fprintf(stderr, "csal3d %s: %s: no cases found (no NIfTI files, or an empty list)\n",
            c->cmd, path);
    csal3d_dataset_free(*ds);
    *ds = NULL;
    return EXIT_DATA;
  }
  if (!d->modality_set) {
    csal3d_modality m = CSAL3D_MODALITY_NONE;
    csal3d_dataset_modality(*ds, &m);
    if (m == CSAL3D_MODALITY_NONE) {
      csal3d_dataset_free(*ds);
      *ds = NULL;
      return usage_error(c, "%s does not say which modality its images are; give --modality "
                         "ct, mri or none", path);
    }
    d->modality = m;
  }
  csal3d_volume_load_options_init(lo);
  lo->modality = d->modality;
  lo->channel = d->channel;
  memcpy(lo->spacing, d->spacing, sizeof lo->spacing);
  return 0;
}

static void spacing_text(char *buf, size_t cap, const double sp[3]) {
  if (sp[0] == 0 && sp[1] == 0 && sp[2] == 0) snprintf(buf, cap, "native");
  else snprintf(buf, cap, "%g,%g,%g", sp[0], sp[1], sp[2]);
}

/* mkdir -p; 0 or -1 (errno set). */
static int mkdir_p(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
      *p = '/';
    }
  return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int file_exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

/* A 32^3 input leaves the deepest feature map 1 voxel wide along every axis: instance
 * norm then erases the decoder's input, so every reconstruction is the same constant
 * (no inpainting signal, zero uncertainty). One side of 64 is enough to avoid it. */
static void warn_degenerate(cli *c, const int64_t dhw[3], const char *what) {
  if (dhw[0] <= 32 && dhw[1] <= 32 && dhw[2] <= 32) {
    bar_clear_line();
    fprintf(stderr, "csal3d %s: warning: a %s of %" PRId64 "x%" PRId64 "x%" PRId64 " leaves the "
            "deepest feature map 1x1x1; instance norm then makes every reconstruction the "
            "same, so inpainting learns nothing and uncertainty is 0. Use 64 along at least "
            "one axis (e.g. 64,64,32).\n", c->cmd, what, dhw[0], dhw[1], dhw[2]);
  }
}

/* ================================================================ pretrain */

static void pretrain_help(FILE *f) {
  fprintf(f,
          "usage: csal3d pretrain DATASET -o CHECKPOINT [options]\n"
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
          "  --resume PATH          continue a run from its checkpoint (same data options!)\n"
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

typedef struct pretrain_state {
  cli *c;
  bar b;
  double last_loss;
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

static int cmd_pretrain(int argc, char **argv) {
  cli c = {.cmd = "pretrain"};
  data_opts d;
  data_opts_init(&d);
  const char *output = NULL, *resume = NULL, *dataset = NULL;
  int64_t embed = -1, batch = -1, iterations = -1, warmup = -1, every = -1, cache_mb = -1;
  int64_t crop[3] = {-1, -1, -1};
  double lr = -1, mask_ratio = -1;
  uint64_t seed = 0;
  int seed_set = 0;
  static const struct option lopts[] = {
      COMMON_LONG_OPTIONS, DATA_LONG_OPTIONS,
      {"output", required_argument, NULL, 'o'},
      {"resume", required_argument, NULL, OPT_RESUME},
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
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0;
  while ((opt = getopt_long(argc, argv, "hqvo:", lopts, NULL)) != -1) {
    if (opt == 'h') {
      pretrain_help(stdout);
      return 0;
    }
    if (common_option(&c, opt, optarg, &rc) || data_option(&c, &d, opt, optarg, &rc)) {
      if (rc) return rc;
      continue;
    }
    switch (opt) {
    case 'o': output = optarg; break;
    case OPT_RESUME: resume = optarg; break;
    case OPT_EMBED: rc = parse_i64(&c, "--embed-dim", optarg, 12, 4800, &embed); break;
    case OPT_CROP: rc = parse_i64x3(&c, "--crop", optarg, 32, 4096, crop); break;
    case OPT_BATCH: rc = parse_i64(&c, "--batch", optarg, 1, 4096, &batch); break;
    case OPT_ITER: rc = parse_i64(&c, "--iterations", optarg, 1, INT64_MAX / 4096, &iterations); break;
    case OPT_LR: rc = parse_f64(&c, "--lr", optarg, 1e-12, 10, &lr); break;
    case OPT_WARMUP: rc = parse_i64(&c, "--warmup", optarg, 0, INT64_MAX / 4096, &warmup); break;
    case OPT_MASK_RATIO: rc = parse_f64(&c, "--mask-ratio", optarg, 0, 1, &mask_ratio); break;
    case OPT_SEED: rc = parse_u64(&c, "--seed", optarg, &seed); seed_set = 1; break;
    case OPT_CKPT_EVERY: rc = parse_i64(&c, "--checkpoint-every", optarg, 0, INT64_MAX / 4096, &every); break;
    case OPT_CACHE: rc = parse_i64(&c, "--cache-mb", optarg, 0, INT64_MAX >> 21, &cache_mb); break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (optind + 1 != argc)
    return usage_error(&c, optind >= argc ? "give the DATASET" : "one DATASET only ('%s'?)",
                       optind < argc ? argv[optind + 1] : "");
  dataset = argv[optind];
  if (!output && !resume) return usage_error(&c, "give the checkpoint to write with -o PATH");
  if (!output) output = resume;
  for (int a = 0; a < 3; a++)
    if (crop[a] != -1 && crop[a] % 32)
      return usage_error(&c, "--crop sides must be multiples of 32 (the encoder halves the "
                         "size 5 times)");
  if (embed != -1 && embed % 12)
    return usage_error(&c, "--embed-dim must be a multiple of 12 (3 attention heads of the "
                       "first stage need C/3 divisible by 4)");
  finish_common(&c);

  csal3d_dataset *ds = NULL;
  csal3d_volume_load_options lo;
  if ((rc = open_dataset(&c, dataset, &d, &ds, &lo))) return rc;
  size_t ncases;
  csal3d_dataset_size(ds, &ncases);
  csal3d_context *ctx = NULL;
  csal3d_ssl_model *m = NULL;
  csal3d_status s = make_context(&c, seed, &ctx);
  if (s != CSAL3D_OK) {
    csal3d_dataset_free(ds);
    return fail(&c, s);
  }
  pretrain_state ps = {.c = &c};
  csal3d_ssl_options so;
  csal3d_ssl_options_init(&so);
  if (resume) {
    s = csal3d_ssl_model_load(ctx, resume, &m);
    if (s == CSAL3D_OK) s = csal3d_ssl_model_get_options(m, &so);
    if (s == CSAL3D_OK && embed != -1 && embed != so.embed_dim) {
      rc = usage_error(&c, "%s has embed_dim %d; the architecture cannot change on --resume",
                       resume, so.embed_dim);
      goto done;
    }
  } else {
    /* in_channels from the first case, so that multi-channel data just works. */
    csal3d_volume *first = NULL;
    s = csal3d_dataset_load_image(ds, 0, &lo, &first);
    if (s == CSAL3D_OK) {
      int64_t sh[4];
      csal3d_volume_shape(first, sh);
      so.in_channels = (int)sh[0];
      csal3d_volume_free(first);
    }
    if (embed != -1) so.embed_dim = (int)embed;
  }
  if (s != CSAL3D_OK) goto lib_fail;
  if (crop[0] != -1) memcpy(so.crop_size, crop, sizeof crop);
  if (batch != -1) so.batch_size = (int)batch;
  if (iterations != -1) so.iterations = iterations;
  if (lr != -1) so.lr = lr;
  if (mask_ratio != -1) so.mask_ratio = mask_ratio;
  if (warmup != -1) so.warmup_steps = warmup;
  else if (!resume && so.iterations < 5000 && so.warmup_steps > so.iterations / 10)
    so.warmup_steps = so.iterations / 10; /* short runs: do not spend them warming up */
  if (every != -1) so.checkpoint_every = every;
  if (cache_mb != -1) so.cache_bytes = cache_mb << 20;
  if (seed_set || !resume) {
    so.use_seed = 1;
    so.seed = seed;
  }
  so.checkpoint_path = output;
  so.on_step = on_step;
  so.on_step_user_data = &ps;
  s = resume ? csal3d_ssl_model_set_options(m, &so) : csal3d_ssl_model_create(ctx, &so, &m);
  if (s != CSAL3D_OK) goto lib_fail;
  warn_degenerate(&c, so.crop_size, "crop");
  int64_t start = 0, step = 0, params = 0;
  csal3d_ssl_model_step(m, &start);
  csal3d_ssl_model_parameter_count(m, &params);
  char sp[64];
  spacing_text(sp, sizeof sp, d.spacing);
  info(&c, "pretraining on %zu cases (%s, spacing %s): embed_dim %d (%" PRId64
       " parameters), crop %" PRId64 "x%" PRId64 "x%" PRId64 ", batch %d, steps %" PRId64
       "..%" PRId64 "\n", ncases, modality_name(d.modality), sp, so.embed_dim, params,
       so.crop_size[0], so.crop_size[1], so.crop_size[2], so.batch_size, start, so.iterations);
  signal(SIGINT, on_sigint);
  signal(SIGTERM, on_sigint);
  bar_start(&ps.b, &c, "pretrain", (uint64_t)start, (uint64_t)so.iterations);
  double t0 = now();
  s = csal3d_ssl_model_train(m, ds, &lo);
  double secs = now() - t0;
  bar_finish(&ps.b);
  csal3d_ssl_model_step(m, &step);
  if (s == CSAL3D_ERR_CANCELLED && g_interrupted) {
    if (step > start) {
      csal3d_status s2 = csal3d_ssl_model_save(m, output);
      if (s2 == CSAL3D_OK) {
        char opts[256] = "", sp_opt[96] = "";
        if (d.spacing[0] || d.spacing[1] || d.spacing[2])
          snprintf(sp_opt, sizeof sp_opt, " --spacing %g,%g,%g", d.spacing[0], d.spacing[1],
                   d.spacing[2]);
        char ch_opt[32] = "";
        if (d.channel == CSAL3D_CHANNEL_ALL) snprintf(ch_opt, sizeof ch_opt, " --channel all");
        else if (d.channel >= 0) snprintf(ch_opt, sizeof ch_opt, " --channel %d", d.channel);
        snprintf(opts, sizeof opts, " --modality %s%s%s", modality_name(d.modality), ch_opt,
                 sp_opt);
        fprintf(stderr, "csal3d pretrain: interrupted after %" PRId64 " steps; saved %s; "
                "continue with: csal3d pretrain %s --resume %s%s\n", step, output, dataset,
                output, opts);
      }
      else
        fprintf(stderr, "csal3d pretrain: interrupted; saving %s failed: %s\n", output,
                csal3d_last_error());
    } else {
      fprintf(stderr, "csal3d pretrain: interrupted before the first step; nothing written\n");
    }
    rc = EXIT_INTERRUPTED;
    goto done;
  }
  if (s != CSAL3D_OK) goto lib_fail;
  if (!file_exists(output)) { /* no step was run (already at iterations) */
    s = csal3d_ssl_model_save(m, output);
    if (s != CSAL3D_OK) goto lib_fail;
  }
  csal3d_ssl_losses l;
  memset(&l, 0, sizeof l);
  l.struct_size = sizeof l;
  int have_losses = csal3d_ssl_model_last_losses(m, &l) == CSAL3D_OK;
  if (c.json) {
    printf("{\"command\": \"pretrain\", \"checkpoint\": ");
    json_str(stdout, output);
    printf(", \"dataset\": ");
    json_str(stdout, dataset);
    printf(", \"cases\": %zu, \"embed_dim\": %d, \"parameters\": %" PRId64
           ", \"start_step\": %" PRId64 ", \"step\": %" PRId64 ", \"iterations\": %" PRId64
           ", \"seconds\": %.3f",
           ncases, so.embed_dim, params, start, step, so.iterations, secs);
    if (have_losses)
      printf(", \"loss\": %.9g, \"inpainting\": %.9g, \"rotation\": %.9g, \"consistency\": "
             "%.9g, \"lr\": %.9g", l.loss, l.inpainting, l.rotation, l.consistency, l.lr);
    printf("}\n");
  } else {
    char el[32];
    fmt_duration(el, sizeof el, secs);
    info(&c, "done: steps %" PRId64 "..%" PRId64 " in %s (%.2f steps/s)\n", start, step, el,
         secs > 0 ? (double)(step - start) / secs : 0.0);
    if (have_losses)
      info(&c, "last step: loss %.4f = inpainting %.4f + rotation %.4f + consistency %.4f\n",
           l.loss, l.inpainting, l.rotation, l.consistency);
    info(&c, "checkpoint: %s\n", output);
  }
  rc = 0;
  goto done;
lib_fail:
  rc = fail(&c, s);
done:
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  csal3d_ssl_model_free(m);
  csal3d_context_free(ctx);
  csal3d_dataset_free(ds);
  return rc;
}

/* ================================================================ score */

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

static int cmd_score(int argc, char **argv) {
  cli c = {.cmd = "score"};
  data_opts d;
  data_opts_init(&d);
  const char *output = NULL, *maps = NULL;
  int64_t window[3] = {-1, -1, -1}, stride[3] = {-1, -1, -1};
  double foreground = NAN;
  csal3d_feature_mode feature = CSAL3D_FEATURE_DEFAULT;
  uint64_t seed = 0;
  int seed_set = 0;
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
  int opt, rc = 0;
  while ((opt = getopt_long(argc, argv, "hqvo:", lopts, NULL)) != -1) {
    if (opt == 'h') {
      score_help(stdout);
      return 0;
    }
    if (common_option(&c, opt, optarg, &rc) || data_option(&c, &d, opt, optarg, &rc)) {
      if (rc) return rc;
      continue;
    }
    switch (opt) {
    case 'o': output = optarg; break;
    case OPT_WINDOW: rc = parse_i64x3(&c, "--window", optarg, 32, 4096, window); break;
    case OPT_STRIDE: rc = parse_i64x3(&c, "--stride", optarg, 1, 4096, stride); break;
    case OPT_MAPS: maps = optarg; break;
    case OPT_FOREGROUND: rc = parse_f64(&c, "--foreground", optarg, -1e30, 1e30, &foreground); break;
    case OPT_FEATURE:
      if (!strcasecmp(optarg, "reduced")) feature = CSAL3D_FEATURE_REDUCED;
      else if (!strcasecmp(optarg, "full")) feature = CSAL3D_FEATURE_FULL;
      else rc = usage_error(&c, "--feature must be reduced or full, not '%s'", optarg);
      break;
    case OPT_SEED: rc = parse_u64(&c, "--seed", optarg, &seed); seed_set = 1; break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (argc - optind != 2)
    return usage_error(&c, "give the CHECKPOINT and the DATASET (%d arguments given)",
                       argc - optind);
  const char *ckpt = argv[optind], *dataset = argv[optind + 1];
  if (!output) return usage_error(&c, "give the scores file to write with -o PATH");
  for (int a = 0; a < 3; a++)
    if (window[a] != -1 && window[a] % 32)
      return usage_error(&c, "--window sides must be multiples of 32");
  finish_common(&c);

  csal3d_dataset *ds = NULL;
  csal3d_volume_load_options lo;
  if ((rc = open_dataset(&c, dataset, &d, &ds, &lo))) return rc;
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
  csal3d_status s = make_context(&c, 0, &ctx);
  if (s == CSAL3D_OK) s = csal3d_ssl_model_load(ctx, ckpt, &m);
  if (s != CSAL3D_OK) goto lib_fail;
  csal3d_ssl_options so;
  csal3d_ssl_options_init(&so);
  csal3d_ssl_model_get_options(m, &so);
  csal3d_uncertainty_options uo;
  csal3d_uncertainty_options_init(&uo);
  for (int a = 0; a < 3; a++) {
    uo.window[a] = window[0] != -1 ? window[a] : so.crop_size[a];
    uo.stride[a] = stride[0] != -1 ? stride[a] : (uo.window[a] / 2 > 0 ? uo.window[a] / 2 : 1);
    if (uo.stride[a] > uo.window[a]) {
      rc = usage_error(&c, "--stride must not exceed the window (%" PRId64 ")", uo.window[a]);
      goto done;
    }
  }
  if (!isnan(foreground)) {
    uo.foreground = CSAL3D_FOREGROUND_THRESHOLD;
    uo.foreground_threshold = foreground;
  }
  uo.feature = feature;
  uo.keep_map = maps != NULL;
  if (seed_set) {
    uo.use_seed = 1;
    uo.seed = seed;
  }
  warn_degenerate(&c, uo.window, "window");
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
      rc = usage_error(&c, "--maps %s exists and is not a folder", maps);
      goto done;
    }
    size_t ml = strlen(maps) + 32;
    maps_tmp = malloc(ml);
    map_names = calloc(n, sizeof *map_names);
    if (!maps_tmp || !map_names) {
      s = CSAL3D_ERR_OUT_OF_MEMORY;
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
  info(&c, "scoring %zu cases (%s, spacing %s): windows %" PRId64 "x%" PRId64 "x%" PRId64
       ", stride %" PRId64 "x%" PRId64 "x%" PRId64 ", feature of %" PRId64 " values\n",
       n, modality_name(d.modality), sp, uo.window[0], uo.window[1], uo.window[2],
       uo.stride[0], uo.stride[1], uo.stride[2], fdim);
  signal(SIGINT, on_sigint);
  signal(SIGTERM, on_sigint);
  bar_start(&b, &c, "score", 0, n);
  double t0 = now(), smin = INFINITY, smax = -INFINITY, ssum = 0;
  int reported = 0;
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
    if (s == CSAL3D_OK) s = csal3d_uncertainty_score(u, v, NULL, (uint64_t)i, &score, feat, (size_t)fdim);
    csal3d_volume_free(v);
    if (s == CSAL3D_OK && !isfinite(score)) {
      bar_clear_line();
      fprintf(stderr, "csal3d score: case %zu (%s): the score is not finite\n", i, id);
      s = CSAL3D_ERR_NUMERICAL;
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
        bar_clear_line();
        fprintf(stderr, "csal3d score: case %zu (%s): %s\n", i, id, csal3d_last_error());
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
    char abs_ckpt[4096], abs_ds[4096], buf[256];
    if (!realpath(ckpt, abs_ckpt)) snprintf(abs_ckpt, sizeof abs_ckpt, "%s", ckpt);
    if (!realpath(dataset, abs_ds)) snprintf(abs_ds, sizeof abs_ds, "%s", dataset);
    int64_t step = 0;
    csal3d_ssl_model_step(m, &step);
    csal3d_scores_set_metadata(sc, "checkpoint", abs_ckpt);
    snprintf(buf, sizeof buf, "%" PRId64, step);
    csal3d_scores_set_metadata(sc, "checkpoint_step", buf);
    snprintf(buf, sizeof buf, "%d", so.embed_dim);
    csal3d_scores_set_metadata(sc, "embed_dim", buf);
    csal3d_scores_set_metadata(sc, "dataset", abs_ds);
    csal3d_scores_set_metadata(sc, "modality", modality_name(d.modality));
    if (d.channel == CSAL3D_CHANNEL_ALL) snprintf(buf, sizeof buf, "all");
    else if (d.channel == CSAL3D_CHANNEL_NONE) snprintf(buf, sizeof buf, "none");
    else snprintf(buf, sizeof buf, "%d", d.channel);
    csal3d_scores_set_metadata(sc, "channel", buf);
    csal3d_scores_set_metadata(sc, "spacing", sp);
    snprintf(buf, sizeof buf, "%" PRId64 ",%" PRId64 ",%" PRId64, uo.window[0], uo.window[1],
             uo.window[2]);
    csal3d_scores_set_metadata(sc, "window", buf);
    snprintf(buf, sizeof buf, "%" PRId64 ",%" PRId64 ",%" PRId64, uo.stride[0], uo.stride[1],
             uo.stride[2]);
    csal3d_scores_set_metadata(sc, "stride", buf);
    if (!isnan(foreground)) {
      snprintf(buf, sizeof buf, "%.9g", foreground);
      csal3d_scores_set_metadata(sc, "foreground_threshold", buf);
    }
    if (seed_set) {
      snprintf(buf, sizeof buf, "%" PRIu64, seed);
      csal3d_scores_set_metadata(sc, "seed", buf);
    }
    csal3d_scores_set_metadata(sc, "library_version", csal3d_version());
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
    s = csal3d_scores_save(sc, output);
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
    } else if (reported) {
      rc = exit_code(s);
    } else {
      rc = fail(&c, s);
    }
    goto done;
  }
  if (c.json) {
    printf("{\"command\": \"score\", \"scores\": ");
    json_str(stdout, output);
    printf(", \"checkpoint\": ");
    json_str(stdout, ckpt);
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
    info(&c, "done: %zu cases in %s (%.2f s per case); scores %.4g .. %.4g, mean %.4g\n", n, el,
         secs / (double)n, smin, smax, ssum / (double)n);
    info(&c, "scores file: %s\n", output);
    if (maps) info(&c, "uncertainty maps: %s/\n", maps);
  }
  rc = 0;
  goto done;
lib_fail:
  rc = fail(&c, s);
done:
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
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

/* ================================================================ select */

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
          "  --seed S               seed (default 0)\n"
          "  -o, --output DIR       where selection.csv and selection.json go (default .)\n"
          "  --csv PATH             the CSV manifest's path instead\n"
          "  --manifest PATH        the JSON manifest's path instead\n"
          "nnU-Net export:\n"
          "  --nnunet DIR           write DIR/imagesTr/CASE_0000.nii.gz, DIR/labelsTr/ (when\n"
          "                         the cases have labels) and DIR/dataset.json, e.g.\n"
          "                         $nnUNet_raw/Dataset501_Hippocampus\n"
          "  --labels L             auto (default: copy labels if every chosen case has\n"
          "                         one), none, or require\n"
          "  --dataset-name NAME    dataset.json's name (default: the folder's name)\n"
          "  --label-names LIST     names of label values 0..K ('background,liver,...');\n"
          "                         default: the source dataset.json's\n"
          "  --channel-names LIST   channel names ('CT' or 'T2,ADC'); default: the source's\n"
          "  --source-dataset PATH  the dataset.json those names come from (default: the\n"
          "                         dataset the scores were computed on)\n"
          "  --overwrite            replace an existing DIR\n"
          "%s",
          COMMON_HELP);
}

static int cmd_select(int argc, char **argv) {
  cli c = {.cmd = "select"};
  int64_t budget = -1;
  int n_cand = 3;
  uint64_t seed = 0;
  csal3d_strategy strategy = CSAL3D_STRATEGY_URDS;
  csal3d_kernel_mode kernel = CSAL3D_KERNEL_MKKM;
  const char *outdir = ".", *csv = NULL, *manifest = NULL, *nnunet = NULL;
  csal3d_nnunet_options no;
  csal3d_nnunet_options_init(&no);
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
      {NULL, 0, NULL, 0}};
  optind = 0;
  int opt, rc = 0;
  while ((opt = getopt_long(argc, argv, "hqvm:o:", lopts, NULL)) != -1) {
    if (opt == 'h') {
      select_help(stdout);
      return 0;
    }
    if (common_option(&c, opt, optarg, &rc)) {
      if (rc) return rc;
      continue;
    }
    switch (opt) {
    case 'm': rc = parse_i64(&c, "--budget", optarg, 1, INT64_MAX, &budget); break;
    case OPT_STRATEGY:
      if (csal3d_strategy_from_name(optarg, &strategy) != CSAL3D_OK)
        rc = usage_error(&c, "%s", csal3d_last_error());
      break;
    case OPT_NCAND: rc = parse_int(&c, "--n-cand", optarg, 1, 1 << 20, &n_cand); break;
    case OPT_KERNEL:
      if (!strcasecmp(optarg, "mkkm")) kernel = CSAL3D_KERNEL_MKKM;
      else if (!strcasecmp(optarg, "reference")) kernel = CSAL3D_KERNEL_REFERENCE;
      else rc = usage_error(&c, "--kernel must be mkkm or reference, not '%s'", optarg);
      break;
    case OPT_SEED: rc = parse_u64(&c, "--seed", optarg, &seed); break;
    case 'o': outdir = optarg; break;
    case OPT_CSV: csv = optarg; break;
    case OPT_MANIFEST: manifest = optarg; break;
    case OPT_NNUNET: nnunet = optarg; break;
    case OPT_LABELS:
      if (!strcasecmp(optarg, "auto")) no.labels = CSAL3D_NNUNET_LABELS_AUTO;
      else if (!strcasecmp(optarg, "none")) no.labels = CSAL3D_NNUNET_LABELS_NONE;
      else if (!strcasecmp(optarg, "require")) no.labels = CSAL3D_NNUNET_LABELS_REQUIRE;
      else rc = usage_error(&c, "--labels must be auto, none or require, not '%s'", optarg);
      break;
    case OPT_DATASET_NAME: no.dataset_name = optarg; break;
    case OPT_LABEL_NAMES: no.label_names = optarg; break;
    case OPT_CHANNEL_NAMES: no.channel_names = optarg; break;
    case OPT_SOURCE: no.source_dataset = optarg; break;
    case OPT_OVERWRITE: no.overwrite = 1; break;
    default: return usage_error(&c, "unknown option");
    }
    if (rc) return rc;
  }
  if (argc - optind != 1)
    return usage_error(&c, "give one SCORES file (%d arguments given)", argc - optind);
  if (budget < 0) return usage_error(&c, "give the budget with --budget M");
  const char *scores_path = argv[optind];
  finish_common(&c);
  char csv_path[8192], json_path[8192];
  if (csv) snprintf(csv_path, sizeof csv_path, "%s", csv);
  else snprintf(csv_path, sizeof csv_path, "%s/selection.csv", outdir);
  if (manifest) snprintf(json_path, sizeof json_path, "%s", manifest);
  else snprintf(json_path, sizeof json_path, "%s/selection.json", outdir);
  if ((!csv || !manifest) && mkdir_p(outdir) != 0) {
    fprintf(stderr, "csal3d select: cannot create %s: %s\n", outdir, strerror(errno));
    return EXIT_DATA;
  }

  csal3d_scores *sc = NULL;
  csal3d_context *ctx = NULL;
  csal3d_sampler *smp = NULL;
  float *feat = NULL, *scores = NULL;
  int64_t *assignment = NULL, *indices = NULL;
  csal3d_selection *rec = NULL;
  char *names = NULL;
  bar b;
  memset(&b, 0, sizeof b);
  int64_t n = 0, d = 0, count = 0;
  csal3d_status s = csal3d_scores_load(scores_path, &sc);
  if (s != CSAL3D_OK) goto lib_fail;
  csal3d_scores_size(sc, &n, &d);
  if (budget > n) {
    rc = usage_error(&c, "--budget %" PRId64 " is more than the %" PRId64 " cases of %s", budget,
                     n, scores_path);
    goto done;
  }
  feat = malloc((size_t)(n * d) * sizeof(float));
  scores = malloc((size_t)n * sizeof(float));
  assignment = malloc((size_t)n * sizeof(int64_t));
  rec = calloc((size_t)budget, sizeof *rec);
  indices = malloc((size_t)budget * sizeof(int64_t));
  if (!feat || !scores || !assignment || !rec || !indices) {
    fprintf(stderr, "csal3d select: out of memory\n");
    rc = EXIT_MEMORY;
    goto done;
  }
  s = csal3d_scores_copy_features(sc, feat, (size_t)(n * d), NULL);
  if (s == CSAL3D_OK) s = csal3d_scores_copy_scores(sc, scores, (size_t)n, NULL);
  if (s == CSAL3D_OK) s = make_context(&c, seed, &ctx);
  csal3d_sampler_options so;
  csal3d_sampler_options_init(&so);
  so.strategy = strategy;
  so.n_cand = n_cand;
  so.kernel = kernel;
  so.use_seed = 1;
  so.seed = seed;
  if (s == CSAL3D_OK) s = csal3d_sampler_create(ctx, &so, &smp);
  if (s == CSAL3D_OK) s = csal3d_sampler_set_features(smp, feat, n, d);
  if (s == CSAL3D_OK) s = csal3d_sampler_set_scores(smp, scores, n);
  if (s != CSAL3D_OK) goto lib_fail;
  signal(SIGINT, on_sigint);
  bar_start(&b, &c, "select", 0, 0);
  double t0 = now();
  s = csal3d_sampler_select(smp, budget);
  if (s == CSAL3D_OK) b.done = b.total;
  bar_finish(&b);
  if (s == CSAL3D_OK)
    s = csal3d_sampler_get_selection(smp, rec, sizeof *rec, budget, &count);
  int64_t n_assigned = 0;
  if (s == CSAL3D_OK) s = csal3d_sampler_get_assignment(smp, assignment, n, &n_assigned);
  if (s != CSAL3D_OK) goto lib_fail;
  csal3d_manifest_options mo;
  csal3d_manifest_options_init(&mo);
  mo.strategy = strategy;
  mo.n_cand = strategy == CSAL3D_STRATEGY_URDS ? n_cand : 0;
  mo.seed = seed;
  char abs_scores[4096];
  if (!realpath(scores_path, abs_scores)) snprintf(abs_scores, sizeof abs_scores, "%s", scores_path);
  mo.scores_path = abs_scores;
  mo.assignment = assignment;
  s = csal3d_manifest_write(sc, rec, sizeof *rec, count, &mo, csv_path, json_path);
  if (s != CSAL3D_OK) goto lib_fail;
  if (nnunet) {
    for (int64_t i = 0; i < count; i++) indices[i] = rec[i].index;
    bar_start(&b, &c, "export", 0, (uint64_t)count);
    s = csal3d_nnunet_export(sc, indices, count, nnunet, &no, ctx);
    bar_finish(&b);
    if (s != CSAL3D_OK) {
      /* The manifest is there, the folder is not: say so. */
      rc = fail(&c, s);
      fprintf(stderr, "csal3d select: the manifest was written (%s), the nnU-Net folder was "
              "not\n", json_path);
      goto done;
    }
  }
  double secs = now() - t0;
  /* Ids, for the table. */
  size_t idw = 4;
  names = calloc((size_t)count, 256);
  if (!names) {
    rc = EXIT_MEMORY;
    goto done;
  }
  for (int64_t i = 0; i < count; i++) {
    csal3d_scores_case_string(sc, rec[i].index, "id", names + i * 256, 256, NULL);
    size_t l = strlen(names + i * 256);
    idw = l > idw ? l : idw;
  }
  if (c.json) {
    printf("{\"command\": \"select\", \"strategy\": ");
    json_str(stdout, csal3d_strategy_name(strategy));
    printf(", \"budget\": %" PRId64 ", \"cases\": %" PRId64 ", \"seed\": %" PRIu64
           ", \"manifest_csv\": ", budget, n, seed);
    json_str(stdout, csv_path);
    printf(", \"manifest_json\": ");
    json_str(stdout, json_path);
    if (nnunet) {
      printf(", \"nnunet\": ");
      json_str(stdout, nnunet);
    }
    printf(", \"seconds\": %.3f, \"selection\": [", secs);
    for (int64_t i = 0; i < count; i++) {
      char path[4096] = "";
      csal3d_scores_case_string(sc, rec[i].index, "image", path, sizeof path, NULL);
      printf("%s{\"rank\": %" PRId64 ", \"case\": ", i ? ", " : "", i + 1);
      json_str(stdout, names + i * 256);
      printf(", \"index\": %" PRId64 ", \"path\": ", rec[i].index);
      json_str(stdout, path);
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
  } else if (!c.quiet) {
    char extra[64] = "";
    if (strategy == CSAL3D_STRATEGY_URDS) snprintf(extra, sizeof extra, ", N_cand %d", n_cand);
    printf("%s chose %" PRId64 " of %" PRId64 " cases (seed %" PRIu64 "%s):\n\n",
           csal3d_strategy_name(strategy), count, n, seed, extra);
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
      printf("%4" PRId64 "  %-*s  %12s  %7s  %5s  %11s  %s\n", i + 1, (int)idw,
             names + i * 256, sc_t, cl_t, sz_t, ty_t, csal3d_rule_name(rec[i].rule));
    }
    printf("\nmanifest: %s\n          %s\n", csv_path, json_path);
    if (nnunet) printf("nnU-Net:  %s (imagesTr/, %sdataset.json)\n", nnunet,
                       no.labels == CSAL3D_NNUNET_LABELS_NONE ? "" : "labelsTr/ if labelled, ");
  }
  rc = 0;
  goto done;
lib_fail:
  rc = fail(&c, s);
done:
  signal(SIGINT, SIG_DFL);
  free(names);
  free(feat);
  free(scores);
  free(assignment);
  free(rec);
  free(indices);
  csal3d_sampler_free(smp);
  csal3d_context_free(ctx);
  csal3d_scores_free(sc);
  return rc;
}

/* ================================================================ demo */

static void demo_help(FILE *f) {
  fprintf(f,
          "usage: csal3d demo [options]\n"
          "\n"
          "The whole pipeline on synthetic data, small enough for a laptop CPU: writes a\n"
          "phantom CT dataset (docs/phantom.md), pretrains a small model briefly, scores\n"
          "every case, chooses the cases to annotate with URDS and prints them; the same\n"
          "steps as 'csal3d pretrain', 'score' and 'select' (it prints those commands).\n"
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

/* Runs a subcommand with the given arguments, after printing it. */
static int run_step(cli *c, int (*fn)(int, char **), char **args) {
  int n = 0;
  while (args[n]) n++;
  if (!c->quiet && !c->json) {
    printf("\n$ csal3d");
    for (int i = 0; i < n; i++) printf(" %s", args[i]);
    printf("\n");
    fflush(stdout);
  }
  char *argv[64];
  for (int i = 0; i < n && i < 63; i++) argv[i] = args[i];
  argv[n] = NULL;
  return fn(n, argv);
}

static int cmd_demo(int argc, char **argv) {
  cli c = {.cmd = "demo"};
  const char *dir = "csal3d-demo", *strategy = "urds";
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
  while ((opt = getopt_long(argc, argv, "hqvm:", lopts, NULL)) != -1) {
    if (opt == 'h') {
      demo_help(stdout);
      return 0;
    }
    if (common_option(&c, opt, optarg, &rc)) {
      if (rc) return rc;
      continue;
    }
    switch (opt) {
    case OPT_DIR: dir = optarg; break;
    case OPT_CASES: rc = parse_i64(&c, "--cases", optarg, 2, 100000, &cases); break;
    case 'm': rc = parse_i64(&c, "--budget", optarg, 1, 100000, &budget); break;
    case OPT_ITER: rc = parse_i64(&c, "--iterations", optarg, 1, 100000000, &iterations); break;
    case OPT_EMBED: rc = parse_i64(&c, "--embed-dim", optarg, 12, 4800, &embed); break;
    case OPT_CROP: rc = parse_i64x3(&c, "--crop", optarg, 32, 4096, crop); break;
    case OPT_WINDOW: rc = parse_i64x3(&c, "--window", optarg, 32, 4096, window); break;
    case OPT_BATCH: rc = parse_i64(&c, "--batch", optarg, 1, 4096, &batch); break;
    case OPT_SPACING: rc = parse_f64(&c, "--spacing", optarg, 0, 1e4, &spacing); break;
    case OPT_STRATEGY: strategy = optarg; break;
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
  finish_common(&c);
  if (mkdir_p(dir) != 0) {
    fprintf(stderr, "csal3d demo: cannot create %s: %s\n", dir, strerror(errno));
    return EXIT_DATA;
  }
  char data[4096], ckpt[4096], scores[4096], maps[4096], nnunet[4096];
  snprintf(data, sizeof data, "%s/phantom", dir);
  snprintf(ckpt, sizeof ckpt, "%s/ssl.safetensors", dir);
  snprintf(scores, sizeof scores, "%s/scores.safetensors", dir);
  snprintf(maps, sizeof maps, "%s/maps", dir);
  snprintf(nnunet, sizeof nnunet, "%s/nnUNet_raw/Dataset900_Phantom", dir);
  char s_cases[32], s_budget[32], s_iter[32], s_embed[32], s_crop[96], s_window[96],
      s_batch[32], s_spacing[64], s_seed[32], s_threads[32];
  snprintf(s_cases, sizeof s_cases, "%" PRId64, cases);
  snprintf(s_budget, sizeof s_budget, "%" PRId64, budget);
  snprintf(s_iter, sizeof s_iter, "%" PRId64, iterations);
  snprintf(s_embed, sizeof s_embed, "%" PRId64, embed);
  snprintf(s_crop, sizeof s_crop, "%" PRId64 ",%" PRId64 ",%" PRId64, crop[0], crop[1], crop[2]);
  snprintf(s_window, sizeof s_window, "%" PRId64 ",%" PRId64 ",%" PRId64, window[0], window[1],
           window[2]);
  snprintf(s_batch, sizeof s_batch, "%" PRId64, batch);
  snprintf(s_spacing, sizeof s_spacing, "%g", spacing);
  snprintf(s_seed, sizeof s_seed, "%" PRIu64, seed);
  snprintf(s_threads, sizeof s_threads, "%d", c.threads);
  const char *dev = c.device == CSAL3D_DEVICE_CPU ? "cpu" : c.device == CSAL3D_DEVICE_CUDA ? "cuda"
                                                                                          : "auto";
  double t0 = now();

  /* 1. data */
  info(&c, "csal3d demo: cold-start active learning on %" PRId64 " synthetic CT scans in %s/\n",
       cases, dir);
  info(&c, "\n[1/4] phantom dataset: %" PRId64 " abdominal CT volumes, five anatomy types "
       "(one rare), some hard cases\n", cases);
  {
    csal3d_context *ctx = NULL;
    csal3d_phantom_options po;
    csal3d_phantom_options_init(&po);
    po.cases = (int)cases;
    po.seed = seed;
    bar b;
    csal3d_status s = make_context(&c, seed, &ctx);
    if (s == CSAL3D_OK) {
      bar_start(&b, &c, "phantom", 0, (uint64_t)cases);
      s = csal3d_phantom_generate(data, &po, ctx);
      bar_finish(&b);
    }
    csal3d_context_free(ctx);
    if (s != CSAL3D_OK) return fail(&c, s);
    info(&c, "wrote %s/ (imagesTr/, labelsTr/, dataset.json)\n", data);
  }
  const char *common[8];
  int nc = 0;
  common[nc++] = "--device";
  common[nc++] = dev;
  if (c.threads) {
    common[nc++] = "--threads";
    common[nc++] = s_threads;
  }
  if (c.quiet) common[nc++] = "--quiet";
  common[nc] = NULL;
#define ADD_COMMON(a, k)                                                       \
  for (int i_ = 0; i_ < nc; i_++) (a)[(k)++] = (char *)common[i_];

  /* 2. pretrain */
  info(&c, "\n[2/4] self-supervised pretraining (a short run; the paper trains 30,000 steps)\n");
  {
    char *a[40];
    int k = 0;
    a[k++] = "pretrain";
    a[k++] = data;
    a[k++] = "-o";
    a[k++] = ckpt;
    a[k++] = "--embed-dim";
    a[k++] = s_embed;
    a[k++] = "--crop";
    a[k++] = s_crop;
    a[k++] = "--batch";
    a[k++] = s_batch;
    a[k++] = "--iterations";
    a[k++] = s_iter;
    a[k++] = "--spacing";
    a[k++] = s_spacing;
    a[k++] = "--seed";
    a[k++] = s_seed;
    ADD_COMMON(a, k);
    a[k] = NULL;
    if ((rc = run_step(&c, cmd_pretrain, a))) return rc;
  }
  /* 3. score */
  info(&c, "\n[3/4] uncertainty and features of every case\n");
  {
    char *a[40];
    int k = 0;
    a[k++] = "score";
    a[k++] = ckpt;
    a[k++] = data;
    a[k++] = "-o";
    a[k++] = scores;
    a[k++] = "--spacing";
    a[k++] = s_spacing;
    a[k++] = "--window";
    a[k++] = s_window;
    a[k++] = "--stride";
    a[k++] = s_window;
    a[k++] = "--maps";
    a[k++] = maps;
    ADD_COMMON(a, k);
    a[k] = NULL;
    if ((rc = run_step(&c, cmd_score, a))) return rc;
  }
  /* 4. select */
  info(&c, "\n[4/4] choosing %" PRId64 " cases to annotate\n", budget);
  {
    char *a[40];
    int k = 0;
    a[k++] = "select";
    a[k++] = scores;
    a[k++] = "--budget";
    a[k++] = s_budget;
    a[k++] = "--strategy";
    a[k++] = (char *)strategy;
    a[k++] = "--seed";
    a[k++] = s_seed;
    a[k++] = "-o";
    a[k++] = (char *)dir;
    a[k++] = "--nnunet";
    a[k++] = nnunet;
    a[k++] = "--overwrite";
    ADD_COMMON(a, k);
    if (c.json) a[k++] = "--json";
    a[k] = NULL;
    if ((rc = run_step(&c, cmd_select, a))) return rc;
  }
#undef ADD_COMMON
  char el[32];
  fmt_duration(el, sizeof el, now() - t0);
  info(&c, "\noutputs (in %s):\n"
       "  %s/                 the phantom dataset (dataset.json lists each case's anatomy type)\n"
       "  %s          the pretrained model (resume with csal3d pretrain --resume)\n"
       "  %s       features and uncertainty of every case\n"
       "  %s/                    uncertainty maps, one NIfTI per case (open over the scan)\n"
       "  %s/selection.csv, selection.json   the cases to annotate, with reasons\n"
       "  %s/   the chosen cases as an nnU-Net v2 raw dataset\n"
       "demo finished in %s\n",
       dir, data, ckpt, scores, maps, dir, nnunet, el);
  return 0;
}

/* ================================================================ info */

static int cmd_info(int argc, char **argv) {
  int json = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: csal3d info [--json]\n\n"
             "Prints the library version, which engines can run here and the\n"
             "number of CPU threads a default context uses.\n");
      return 0;
    } else {
      fprintf(stderr, "csal3d info: unknown option '%s'\nTry 'csal3d info --help'.\n", argv[i]);
      return EXIT_USAGE;
    }
  }
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
  if (s != CSAL3D_OK) {
    fprintf(stderr, "csal3d info: %s\n", csal3d_last_error());
    return exit_code(s);
  }
  csal3d_context_threads(ctx, &threads);
  csal3d_context_free(ctx);
  if (json) {
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

/* ================================================================ main */

static void usage(FILE *f) {
  fprintf(f,
          "usage: csal3d <command> [options]\n"
          "\n"
          "Chooses which unlabelled 3D images to annotate first (cold-start active\n"
          "learning, CSAL-3D): self-supervised pretraining, ensemble uncertainty,\n"
          "uncertainty-reinforced diversity sampling.\n"
          "\n"
          "commands:\n"
          "  pretrain DATASET -o CKPT        self-supervised pretraining\n"
          "  score CKPT DATASET -o SCORES    features and uncertainty of every case\n"
          "  select SCORES --budget M        the cases to annotate: manifest, nnU-Net folder\n"
          "  demo                            the whole pipeline on phantom data\n"
          "  info                            version, engines available, threads\n"
          "\n"
          "csal3d <command> --help describes a command; csal3d --version the version.\n"
          "Exit codes: 0 ok, 2 bad command line, 3 bad input or output, 4 device\n"
          "unavailable, 5 out of memory, 130 interrupted, 1 other library failure.\n");
}

/* OpenMP threads that wait for work spin by default; on a machine that is busy with other
 * work (a shared server, a CI box building in parallel) a spinning thread holds a core
 * that the thread it waits for needs, and the many short parallel regions of small models
 * then run several times slower. libgomp reads OMP_WAIT_POLICY when it loads, so the tool
 * re-executes itself once with OMP_WAIT_POLICY=passive unless the caller chose a policy
 * (OMP_WAIT_POLICY=active restores spinning). Results do not depend on the policy. */
static void passive_openmp(char **argv) {
  if (getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv); /* on failure: go on with the default policy */
}

int main(int argc, char **argv) {
  passive_openmp(argv);
  char *help_argv[3] = {NULL, "--help", NULL};
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    if (argc >= 3 && !strcmp(argv[1], "help")) {
      help_argv[0] = argv[2];
      argv = help_argv;
      argc = 2;
      goto dispatch;
    }
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("csal3d %s\n", csal3d_version());
    return 0;
  }
  argv++;
  argc--;
dispatch:
  if (!strcmp(argv[0], "info")) return cmd_info(argc - 1, argv + 1);
  if (!strcmp(argv[0], "pretrain")) return cmd_pretrain(argc, argv);
  if (!strcmp(argv[0], "score")) return cmd_score(argc, argv);
  if (!strcmp(argv[0], "select")) return cmd_select(argc, argv);
  if (!strcmp(argv[0], "demo")) return cmd_demo(argc, argv);
  fprintf(stderr, "csal3d: unknown command '%s'\n", argv[0]);
  usage(stderr);
  return EXIT_USAGE;
}
