/* What the subcommands of the csal3d tool share (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int exit_code(csal3d_status s) {
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

cli cli_for(const cli *parent, const char *cmd) {
  cli c = *parent;
  c.cmd = cmd;
  return c;
}

/* ---- Ctrl-C ---- */

volatile sig_atomic_t g_interrupted;

/* SIGINT and SIGTERM are blocked in every thread from the start of main() (threads the
 * library starts inherit the mask) and taken by one thread that waits for them. A
 * handler that ran on whichever thread was computing (oneDNN's JIT-compiled GEMM among
 * them) went with heap corruption inside dnnl_sgemm in about one Ctrl-C in ten during
 * pretraining; with the signals kept off those threads it has not recurred. While a command is
 * catching them (catch_interrupts), the first signal sets g_interrupted (the command
 * stops after its current unit of work and saves what it can) and a second ends the
 * process at once; otherwise a signal ends the process as it would by default. */
static sigset_t g_stop_signals;
static volatile sig_atomic_t g_catching;

static void on_stop_signal(int sig) {
  if (g_catching && !g_interrupted) {
    g_interrupted = 1;
    return;
  }
  signal(sig, SIG_DFL); /* the default action, from this thread */
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, NULL);
  raise(sig);
}

static void *signal_thread(void *arg) {
  (void)arg;
  for (;;) {
    int sig;
    if (sigwait(&g_stop_signals, &sig) == 0) on_stop_signal(sig);
  }
  return NULL;
}

/* Also installed as the handler: threads that libraries start before main() (OpenBLAS
 * starts its pool when it is loaded) do not block the signals and may take them; they
 * sleep while we compute, so the handler running there is harmless. Installing it also
 * keeps a signal the parent set to be ignored (a shell's background job ignores SIGINT)
 * from being discarded before sigwait can take it. */
void start_signal_thread(void) {
  sigemptyset(&g_stop_signals);
  sigaddset(&g_stop_signals, SIGINT);
  sigaddset(&g_stop_signals, SIGTERM);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  if (pthread_sigmask(SIG_BLOCK, &g_stop_signals, NULL) != 0) return;
  pthread_t t;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &a, signal_thread, NULL) != 0) /* no thread: default actions */
    pthread_sigmask(SIG_UNBLOCK, &g_stop_signals, NULL);
  pthread_attr_destroy(&a);
}

void catch_interrupts(void) { g_catching = 1; }

void release_interrupts(void) { g_catching = 0; }

double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void fmt_duration(char *buf, size_t cap, double s) {
  if (!(s >= 0) || s > 1e8) {
    snprintf(buf, cap, "--:--");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, cap, "%02ld:%02ld", t / 60, t % 60);
}

/* ---- progress bar ---- */

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

void bar_start(bar *b, cli *c, const char *stage, uint64_t first, uint64_t total) {
  memset(b, 0, sizeof *b);
  b->c = c;
  snprintf(b->stage, sizeof b->stage, "%s", stage);
  b->first = b->done = first;
  b->total = total;
  b->t0 = now();
  g_bar = b;
  bar_draw(b, 1);
}

void bar_update(bar *b, uint64_t done, const char *note) {
  b->done = done;
  if (note) snprintf(b->note, sizeof b->note, "%s", note);
  b->sub[0] = '\0';
  bar_draw(b, done == b->total);
}

void bar_clear_line(void) {
  if (g_bar && g_bar->shown) fprintf(stderr, "\r\033[K");
}

void bar_finish(bar *b) {
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

static void translate(const char *msg, char *out, size_t cap);

static void on_log(void *user, csal3d_log_level level, const char *message) {
  cli *c = user;
  if (level > CSAL3D_LOG_WARN && !c->verbose) return;
  bar_clear_line();
  char msg[4096];
  translate(message, msg, sizeof msg);
  fprintf(stderr, "csal3d %s: %s%s\n", c->cmd,
          level == CSAL3D_LOG_ERROR ? "error: " : level == CSAL3D_LOG_WARN ? "warning: " : "",
          msg);
  if (g_bar) bar_draw(g_bar, 1);
}

/* ---- messages ---- */

int usage_error(cli *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "csal3d %s: ", c->cmd);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'csal3d %s --help'.\n", c->cmd);
  return EXIT_USAGE;
}

/* Library messages that name a C option (or that a tool option causes), and the line the
 * tool adds to name its option. A channel count that does not fit the data or the model is
 * bad input (EXIT_DATA) although the library reports it as an invalid argument. */
typedef struct hint {
  const char *match; /* a phrase of the library's message */
  const char *text;  /* the line to add, or NULL */
  int data_error;
} hint;

static const hint hints[] = {
    {"4-D image with", "the images are 4-D: --channel N uses their volume N, --channel all "
     "every volume as a channel", 1},
    {"does not exist (the image has", NULL, 1},
    {"asked of a 3-D image", NULL, 1},
    {"a label image has one channel", NULL, 1},
    {"the model takes", "a model takes as many channels as the first case it was pretrained "
     "on has", 1},
    {"channel_names: ", "fix the list given with --channel-names", 0},
    {"label_names: ", "fix the list given with --label-names", 0},
    {"give label names for every value", "name every label value with --label-names", 0},
    {"(max_voxels)", "csal3d reads images of up to 2^30 voxels; the header may be damaged", 0},
    {"load a single image with csal3d_volume_load", "give the folder that holds the image, "
     "or a text file that lists it", 0},
    {"the foreground is empty", "no voxel of the case exceeds --foreground: lower it", 0},
    {"an output never replaces", "outputs go to new paths: choose another -o (or --maps, "
     "--csv, --manifest, --nnunet)", 0},
    {"the shards of one run are made with", "merge the shard files of one 'csal3d score "
     "--shard I/N' run, all made with the same command but for I", 1},
    {"the journal of an unfinished scoring run", "run the same command again to continue it, "
     "or add --restart to score from the start", 0},
};

/* The library names an option as "the option NAME" (its C name); the tool says its own. */
static const struct {
  const char *lib, *tool;
} option_names[] = {
    {"set the option overwrite to replace it", "add --overwrite to replace it"},
    {"the option allow_nonfinite", "--allow-nonfinite"},
    {"the option channel", "--channel"},
    {"the option modality", "--modality"},
    {"the option spacing", "--spacing"},
    {"the option assume_spacing", "--assume-spacing"},
    {"the option max_memory", "--max-memory"},
    {"the option channel_suffix", "--channel-suffix"},
    {"the option overwrite", "--overwrite"},
    {"the option shard_count", "--shard"},
    {"the option shard_index", "--shard"},
    {"the option labels set to none", "--labels none"},
    {"the option labels", "--labels"},
    {"the option in_channels", "--channel"},
    {"the option embed_dim", "--embed-dim"},
    {"(csal3d_ssl_model_init_from)", "(csal3d pretrain --init)"},
    {"the option max_points", "--max-points"},
    {"the option max_cases", "--max-cases"},
    {"the option image_size", "--image-size"},
    {"the option dataset", "--data"},
    /* csal3d evaluate */
    {"the option iterations", "--iterations"},
    {"the option batch_size", "--batch"},
    {"the option patch_size", "--patch"},
    {"the option stages", "--widths"},
    {"the option widths", "--widths"},
    {"the option learning_rate", "--lr"},
    {"the option weight_decay", "--weight-decay"},
    {"the option normalization", "--normalization"},
    {"the option inference_batch", "--inference-batch"},
    {"the option checkpoint_every", "--checkpoint-every"},
    {"the option checkpoint", "--checkpoint"},
    {"the option output_csv", "-o"},
    {"the option output_json", "--results-json"},
    {"the option per_case", "--summary-only"},
    {"the option seed", "--seed"},
    {"the option n_cand", "--n-cand"},
    {"the option kernel", "--kernel"},
};

/* @p msg with the library's option names replaced by the tool's. */
static void translate(const char *msg, char *out, size_t cap) {
  size_t k = 0;
  while (*msg && k + 1 < cap) {
    size_t i = 0, n = sizeof option_names / sizeof option_names[0];
    for (; i < n; i++) {
      size_t l = strlen(option_names[i].lib);
      char next = msg[l];
      if (!strncmp(msg, option_names[i].lib, l) && next != '_' &&
          !(next >= 'a' && next <= 'z')) {
        k += (size_t)snprintf(out + k, cap - k, "%s", option_names[i].tool);
        msg += l;
        break;
      }
    }
    if (i == n) out[k++] = *msg++;
    if (k >= cap) k = cap - 1;
  }
  out[k] = '\0';
}

static int report(cli *c, csal3d_status s, const char *prefix) {
  bar_clear_line();
  if (s == CSAL3D_ERR_CANCELLED && g_interrupted) {
    fprintf(stderr, "csal3d %s: interrupted\n", c->cmd);
    return EXIT_INTERRUPTED;
  }
  char msg[4096];
  translate(csal3d_last_error(), msg, sizeof msg);
  fprintf(stderr, "csal3d %s: %s%s%s\n", c->cmd, prefix, *prefix ? ": " : "", msg);
  int rc = exit_code(s);
  for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++)
    if (strstr(msg, hints[i].match)) {
      if (hints[i].text) fprintf(stderr, "csal3d %s: %s\n", c->cmd, hints[i].text);
      if (hints[i].data_error && s == CSAL3D_ERR_INVALID_ARGUMENT) rc = EXIT_DATA;
      break;
    }
  return rc;
}

int fail(cli *c, csal3d_status s) { return report(c, s, ""); }

int fail_at(cli *c, csal3d_status s, const char *fmt, ...) {
  char prefix[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  return report(c, s, prefix);
}

void warning(cli *c, const char *fmt, ...) {
  bar_clear_line();
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "csal3d %s: warning: ", c->cmd);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void info(cli *c, const char *fmt, ...) {
  if (c->quiet || c->json || c->mute) return;
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

void json_str(FILE *f, const char *s) {
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

void json_num(FILE *f, double v) {
  if (isnan(v)) fputs("null", f);
  else if (isinf(v)) fputs(v > 0 ? "\"inf\"" : "\"-inf\"", f);
  else fprintf(f, "%.9g", v);
}

/* ---- parsing ---- */

/* "from LO to HI", "LO or more" or "at most HI" (the bounds the caller did not leave open). */
static void range_text(char *buf, size_t cap, int64_t lo, int64_t hi) {
  if (hi >= INT64_MAX / 4096) snprintf(buf, cap, "%" PRId64 " or more", lo);
  else snprintf(buf, cap, "from %" PRId64 " to %" PRId64, lo, hi);
}

int parse_i64(cli *c, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
  char *end, range[96];
  errno = 0;
  long long v = strtoll(s, &end, 10);
  range_text(range, sizeof range, lo, hi);
  if (end == s || *end)
    return usage_error(c, "%s needs a whole number (%s), not '%s'", opt, range, s);
  if (errno == ERANGE || v < lo || v > hi)
    return usage_error(c, "%s %s is out of range: it must be %s", opt, s, range);
  *out = v;
  return 0;
}

int parse_int(cli *c, const char *opt, const char *s, int lo, int hi, int *out) {
  int64_t v;
  int r = parse_i64(c, opt, s, lo, hi, &v);
  if (!r) *out = (int)v;
  return r;
}

int parse_u64(cli *c, const char *opt, const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*s == '-' || end == s || *end)
    return usage_error(c, "%s needs a non-negative whole number, not '%s'", opt, s);
  if (errno == ERANGE)
    return usage_error(c, "%s %s is out of range: it must be at most %" PRIu64, opt, s,
                       UINT64_MAX);
  *out = v;
  return 0;
}

int parse_f64(cli *c, const char *opt, const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end || isnan(v))
    return usage_error(c, "%s needs a number (from %g to %g), not '%s'", opt, lo, hi, s);
  if (!isfinite(v) || v < lo || v > hi || (errno == ERANGE && fabs(v) > 1))
    return usage_error(c, "%s %s is out of range: it must be from %g to %g", opt, s, lo, hi);
  *out = v;
  return 0;
}

/* Splits "a,b,c" into 1 or 3 parts (in @p buf); 0 when the count is neither. */
static int split3(const char *s, char *buf, size_t cap, char *parts[3]) {
  snprintf(buf, cap, "%s", s);
  char *p[4];
  int n = 0;
  for (char *t = strtok(buf, ","); t && n < 4; t = strtok(NULL, ",")) p[n++] = t;
  if (n != 1 && n != 3) return 0;
  for (int i = 0; i < 3; i++) parts[i] = p[n == 1 ? 0 : i];
  return n;
}

int parse_i64x3(cli *c, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t out[3]) {
  char buf[128], *parts[3];
  if (!split3(s, buf, sizeof buf, parts))
    return usage_error(c, "%s needs N or D,H,W, not '%s'", opt, s);
  for (int i = 0; i < 3; i++)
    if (parse_i64(c, opt, parts[i], lo, hi, &out[i])) return EXIT_USAGE;
  return 0;
}

int parse_f64x3(cli *c, const char *opt, const char *s, double lo, double hi, double out[3]) {
  char buf[128], *parts[3];
  if (!split3(s, buf, sizeof buf, parts))
    return usage_error(c, "%s needs MM or MM,MM,MM, not '%s'", opt, s);
  for (int i = 0; i < 3; i++)
    if (parse_f64(c, opt, parts[i], lo, hi, &out[i])) return EXIT_USAGE;
  return 0;
}

int parse_bytes(cli *c, const char *opt, const char *s, int64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  int shift = 0;
  if (end != s && *end && !end[1] && strchr("kKmMgGtT", *end))
    shift = 10 * (int)(strchr("kmgt", *end | 0x20) - "kmgt" + 1), end++;
  if (end == s || *end || isnan(v))
    return usage_error(c, "%s needs a number of bytes (N, or with K, M, G, T: 512M, 8G), "
                       "not '%s'", opt, s);
  v = ldexp(v, shift);
  if (!(v >= 1) || v > 9.2e18)
    return usage_error(c, "%s %s is out of range: it must be from 1 byte to 8E", opt, s);
  *out = (int64_t)v;
  return 0;
}

static int choice_is_alias(const choice *names, int i) {
  for (int k = 0; k < i; k++)
    if (names[k].value == names[i].value) return 1;
  return 0;
}

int parse_choice(cli *c, const char *opt, const char *s, const choice *names, int *out) {
  for (int i = 0; names[i].name; i++)
    if (!strcasecmp(s, names[i].name)) {
      *out = names[i].value;
      return 0;
    }
  char list[256] = "";
  int n = 0, listed = 0;
  for (int i = 0; names[i].name; i++) n += !choice_is_alias(names, i);
  for (int i = 0; names[i].name; i++) {
    if (choice_is_alias(names, i)) continue;
    size_t l = strlen(list);
    snprintf(list + l, sizeof list - l, "%s%s", listed == 0 ? "" : listed == n - 1 ? " or " : ", ",
             names[i].name);
    listed++;
  }
  return usage_error(c, "%s must be %s, not '%s'", opt, list, s);
}

const char *choice_name(const choice *names, int value) {
  for (int i = 0; names[i].name; i++)
    if (names[i].value == value) return names[i].name;
  return "?";
}

/* ---- options every command takes ---- */

static const choice device_names[] = {{"auto", CSAL3D_DEVICE_AUTO},
                                      {"cpu", CSAL3D_DEVICE_CPU},
                                      {"cuda", CSAL3D_DEVICE_CUDA},
                                      {"gpu", CSAL3D_DEVICE_CUDA},
                                      {NULL, 0}};

int common_option(cli *c, int opt, const char *arg, int *rc) {
  int v;
  switch (opt) {
  case 'q': c->quiet = 1; return 1;
  case 'v': c->verbose = 1; return 1;
  case OPT_JSON: c->json = 1; return 1;
  case OPT_THREADS: *rc = parse_int(c, "--threads", arg, 0, 4096, &c->threads); return 1;
  case OPT_DEVICE:
    if (!(*rc = parse_choice(c, "--device", arg, device_names, &v))) c->device = (csal3d_device)v;
    return 1;
  default: return 0;
  }
}

const csal3d_comm *g_tool_comm = NULL;

int tool_rank(void) { return g_tool_comm ? g_tool_comm->rank : 0; }

void finish_common(cli *c) {
  if (tool_rank() != 0) c->quiet = 1, c->json = 0; /* rank 0 speaks for the group */
  c->tty = !c->quiet && isatty(STDERR_FILENO);
}

csal3d_status make_context(cli *c, uint64_t seed, csal3d_context **ctx) {
  csal3d_context_options o;
  csal3d_context_options_init(&o);
  o.device = c->device;
  o.threads = c->threads;
  o.seed = seed;
  o.log = on_log;
  o.log_user_data = c;
  o.log_level = c->verbose ? CSAL3D_LOG_INFO : CSAL3D_LOG_WARN;
  o.progress = on_progress;
  csal3d_status s = csal3d_context_create(&o, ctx);
  if (s == CSAL3D_OK && g_tool_comm) s = csal3d_context_set_comm(*ctx, g_tool_comm);
  return s;
}

/* ---- data options ---- */

static const choice modality_names[] = {{"ct", CSAL3D_MODALITY_CT},
                                        {"mri", CSAL3D_MODALITY_MRI},
                                        {"mr", CSAL3D_MODALITY_MRI},
                                        {"none", CSAL3D_MODALITY_NONE},
                                        {"auto", CSAL3D_MODALITY_AUTO},
                                        {NULL, 0}};

static const choice channel_suffix_names[] = {{"auto", CSAL3D_CHANNEL_SUFFIX_AUTO},
                                              {"always", CSAL3D_CHANNEL_SUFFIX_ALWAYS},
                                              {"never", CSAL3D_CHANNEL_SUFFIX_NEVER},
                                              {NULL, 0}};

void data_opts_init(data_opts *d) {
  memset(d, 0, sizeof *d);
  d->channel = CSAL3D_CHANNEL_NONE;
}

int data_option(cli *c, data_opts *d, int opt, const char *arg, int *rc) {
  int v;
  switch (opt) {
  case OPT_MODALITY:
    if (!(*rc = parse_choice(c, "--modality", arg, modality_names, &v)))
      d->modality = (csal3d_modality)v;
    d->modality_set = 1;
    return 1;
  case OPT_CHANNEL:
    if (!strcasecmp(arg, "all")) d->channel = CSAL3D_CHANNEL_ALL;
    else *rc = parse_int(c, "--channel", arg, 0, 1 << 20, &d->channel);
    d->channel_set = 1;
    return 1;
  case OPT_SPACING:
    *rc = parse_f64x3(c, "--spacing", arg, 0, 1e4, d->spacing);
    d->spacing_set = 1;
    return 1;
  case OPT_ALLOW_NONFINITE: d->allow_nonfinite = 1; return 1;
  case OPT_ASSUME_SPACING:
    *rc = parse_f64x3(c, "--assume-spacing", arg, 0, 1e4, d->assume_spacing);
    return 1;
  case OPT_MAX_MEMORY: *rc = parse_bytes(c, "--max-memory", arg, &d->max_memory); return 1;
  case OPT_CHANNEL_SUFFIX:
    *rc = parse_choice(c, "--channel-suffix", arg, channel_suffix_names, &d->channel_suffix);
    d->channel_suffix_set = 1;
    return 1;
  default: return 0;
  }
}

/* The option getopt_long stopped at: "--name" (without "=value") or "-x". */
static void bad_option_name(char **argv, char *buf, size_t cap) {
  const char *a = optind > 0 ? argv[optind - 1] : "";
  if (a && a[0] == '-' && a[1] == '-') snprintf(buf, cap, "%.*s", (int)strcspn(a, "="), a);
  else snprintf(buf, cap, "-%c", optopt ? optopt : '?');
}

int next_option(cli *c, data_opts *d, int argc, char **argv, const char *shortopts,
                const struct option *longopts, void (*help)(FILE *), int *rc) {
  int opt;
  char quiet_opts[64], name[128];
  /* A leading ':' makes getopt quiet and tell a missing value (':') from an unknown
   * option ('?'): one message, ours, instead of getopt's line and ours. */
  snprintf(quiet_opts, sizeof quiet_opts, ":%s", shortopts);
  while ((opt = getopt_long(argc, argv, quiet_opts, longopts, NULL)) != -1) {
    if (opt == '?' || opt == ':') {
      bad_option_name(argv, name, sizeof name);
      *rc = opt == ':' ? usage_error(c, "%s needs a value", name)
                       : usage_error(c, "unknown option '%s'", name);
      return OPT_DONE;
    }
    if (opt == 'h') {
      help(stdout);
      *rc = 0;
      return OPT_DONE;
    }
    if (!common_option(c, opt, optarg, rc) && !(d && data_option(c, d, opt, optarg, rc)))
      return opt;
    if (*rc) return OPT_DONE;
  }
  return -1;
}

const char *modality_name(csal3d_modality m) { return choice_name(modality_names, (int)m); }

void spacing_text(char *buf, size_t cap, const double sp[3]) {
  if (sp[0] == 0 && sp[1] == 0 && sp[2] == 0) snprintf(buf, cap, "native");
  else snprintf(buf, cap, "%g,%g,%g", sp[0], sp[1], sp[2]);
}

int open_dataset(cli *c, const char *path, const data_opts *d, csal3d_dataset **ds) {
  csal3d_dataset_options o;
  csal3d_dataset_options_init(&o);
  if (d && d->channel_suffix_set) o.channel_suffix = d->channel_suffix;
  csal3d_status s = csal3d_dataset_open(path, &o, ds);
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
  return 0;
}

int require_modality(cli *c, const data_opts *d, const csal3d_dataset *ds, const char *path) {
  if (d->modality_set && d->modality != CSAL3D_MODALITY_AUTO) return 0;
  csal3d_modality m = CSAL3D_MODALITY_NONE;
  csal3d_dataset_modality(ds, &m);
  if (m != CSAL3D_MODALITY_NONE) return 0;
  return usage_error(c, "%s does not say which modality its images are; give --modality ct, "
                     "mri or none", path);
}

const csal3d_volume_load_options *load_options(const data_opts *d, const csal3d_ssl_model *m,
                                               csal3d_volume_load_options *lo) {
  csal3d_volume_load_options_init(lo);
  const int assume = d->assume_spacing[0] > 0 || d->assume_spacing[1] > 0 ||
                     d->assume_spacing[2] > 0;
  if (!d->modality_set && !d->channel_set && !d->spacing_set && !d->allow_nonfinite &&
      !assume && !d->max_memory)
    return NULL;
  if (m) csal3d_ssl_model_data_options(m, lo, NULL); /* the recorded ones, AUTO if none */
  if (d->modality_set) lo->modality = d->modality;
  if (d->channel_set) lo->channel = d->channel;
  if (d->spacing_set) memcpy(lo->spacing, d->spacing, sizeof lo->spacing);
  lo->allow_nonfinite = d->allow_nonfinite;
  memcpy(lo->assume_spacing, d->assume_spacing, sizeof lo->assume_spacing);
  lo->max_memory = d->max_memory;
  return lo;
}

void data_summary(const csal3d_ssl_model *m, char *buf, size_t cap) {
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  int known = 0;
  buf[0] = '\0';
  if (csal3d_ssl_model_data_options(m, &lo, &known) != CSAL3D_OK || !known) return;
  char sp[96];
  spacing_text(sp, sizeof sp, lo.spacing);
  size_t k = 0;
  if (known & CSAL3D_DATA_KNOWN_MODALITY)
    k += (size_t)snprintf(buf + k, cap - k, "%s", modality_name(lo.modality));
  if ((known & CSAL3D_DATA_KNOWN_CHANNEL) && lo.channel != CSAL3D_CHANNEL_NONE && k < cap) {
    if (lo.channel == CSAL3D_CHANNEL_ALL)
      k += (size_t)snprintf(buf + k, cap - k, "%schannel all", k ? ", " : "");
    else
      k += (size_t)snprintf(buf + k, cap - k, "%schannel %d", k ? ", " : "", lo.channel);
  }
  if ((known & CSAL3D_DATA_KNOWN_SPACING) && k < cap)
    snprintf(buf + k, cap - k, "%sspacing %s", k ? ", " : "", sp);
}

/* ---- files ---- */

int check_output(cli *c, const char *path, csal3d_output_kind kind, const char *what,
                 const char *const *inputs, size_t n_inputs, int overwrite) {
  csal3d_status s = csal3d_output_check(path, kind, what, inputs, n_inputs, overwrite);
  return s == CSAL3D_OK ? 0 : fail(c, s);
}

int same_file(const char *a, const char *b) {
  struct stat x, y;
  return a && b && stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev &&
         x.st_ino == y.st_ino;
}

int mkdir_p(const char *path) {
  char *buf = strdup(path);
  if (!buf) return -1; /* errno ENOMEM */
  int rc = 0;
  for (char *p = buf + 1; *p && rc == 0; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST) rc = -1;
      *p = '/';
    }
  if (rc == 0 && mkdir(buf, 0755) != 0 && errno != EEXIST) rc = -1;
  int e = errno;
  free(buf);
  errno = e;
  return rc;
}

char *path_join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s/%s", dir, name);
  return p;
}

char *case_string(const csal3d_scores *sc, int64_t index, const char *what) {
  size_t need = 0;
  if (csal3d_scores_case_string(sc, index, what, NULL, 0, &need) != CSAL3D_OK || need == 0)
    return strdup("");
  char *b = malloc(need);
  if (b && csal3d_scores_case_string(sc, index, what, b, need, NULL) != CSAL3D_OK) b[0] = '\0';
  return b;
}

/* A 32^3 input leaves the deepest feature map 1 voxel wide along every axis: instance
 * norm then erases the decoder's input, so every reconstruction is the same constant
 * (no inpainting signal, zero uncertainty). One side of 64 is enough to avoid it. */
void warn_degenerate(cli *c, const int64_t dhw[3], const char *what) {
  if (dhw[0] <= 32 && dhw[1] <= 32 && dhw[2] <= 32)
    warning(c, "a %s of %" PRId64 "x%" PRId64 "x%" PRId64 " leaves the deepest feature map "
            "1x1x1; instance norm then makes every reconstruction the same, so inpainting "
            "learns nothing and uncertainty is 0. Use 64 along at least one axis (e.g. "
            "64,64,32).", what, dhw[0], dhw[1], dhw[2]);
}

/* ---- equivalent command lines ---- */

void cmdline_init(cmdline *l, const char *command) {
  l->n = 0;
  l->used = 0;
  l->truncated = 0;
  cmdline_add(l, command);
}

void cmdline_add(cmdline *l, const char *arg) {
  size_t len = strlen(arg) + 1;
  const int max = (int)(sizeof l->arg / sizeof l->arg[0]);
  if (l->truncated) return;
  if (l->n == max - 1 || l->used + len > sizeof l->buf) { /* full: the line ends with ... */
    l->arg[l->n++] = "...";
    l->truncated = 1;
    return;
  }
  memcpy(l->buf + l->used, arg, len);
  l->arg[l->n++] = l->buf + l->used;
  l->used += len;
}

void cmdline_opt(cmdline *l, const char *opt, const char *fmt, ...) {
  char v[8192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(v, sizeof v, fmt, ap);
  va_end(ap);
  cmdline_add(l, opt);
  cmdline_add(l, v);
}

void cmdline_opt_i64x3(cmdline *l, const char *opt, const int64_t v[3]) {
  if (v[0] == v[1] && v[1] == v[2]) cmdline_opt(l, opt, "%" PRId64, v[0]);
  else cmdline_opt(l, opt, "%" PRId64 ",%" PRId64 ",%" PRId64, v[0], v[1], v[2]);
}

/* The shortest text that reads back as @p v. */
static void fmt_f64(char *buf, size_t cap, double v) {
  snprintf(buf, cap, "%.15g", v);
  if (strtod(buf, NULL) != v) snprintf(buf, cap, "%.17g", v);
}

void cmdline_opt_f64(cmdline *l, const char *opt, double v) {
  char b[64];
  fmt_f64(b, sizeof b, v);
  cmdline_opt(l, opt, "%s", b);
}

void cmdline_opt_f64x3(cmdline *l, const char *opt, const double v[3]) {
  if (v[0] == v[1] && v[1] == v[2]) {
    cmdline_opt_f64(l, opt, v[0]);
    return;
  }
  char b[3][64];
  for (int i = 0; i < 3; i++) fmt_f64(b[i], sizeof b[i], v[i]);
  cmdline_opt(l, opt, "%s,%s,%s", b[0], b[1], b[2]);
}

void cmdline_common(cmdline *l, const cli *c) {
  if (c->device != CSAL3D_DEVICE_AUTO)
    cmdline_opt(l, "--device", "%s", choice_name(device_names, (int)c->device));
  if (c->threads) cmdline_opt(l, "--threads", "%d", c->threads);
  if (c->quiet) cmdline_add(l, "--quiet");
  if (c->verbose) cmdline_add(l, "--verbose");
  if (c->json) cmdline_add(l, "--json");
}

void cmdline_data(cmdline *l, const data_opts *d) {
  if (d->modality_set) cmdline_opt(l, "--modality", "%s", modality_name(d->modality));
  if (d->channel_set && d->channel == CSAL3D_CHANNEL_ALL) cmdline_opt(l, "--channel", "all");
  else if (d->channel_set && d->channel >= 0) cmdline_opt(l, "--channel", "%d", d->channel);
  if (d->spacing_set) cmdline_opt_f64x3(l, "--spacing", d->spacing);
  if (d->allow_nonfinite) cmdline_add(l, "--allow-nonfinite");
  if (d->assume_spacing[0] > 0 || d->assume_spacing[1] > 0 || d->assume_spacing[2] > 0)
    cmdline_opt_f64x3(l, "--assume-spacing", d->assume_spacing);
  if (d->max_memory) cmdline_opt(l, "--max-memory", "%" PRId64, d->max_memory);
  if (d->channel_suffix_set)
    cmdline_opt(l, "--channel-suffix", "%s", choice_name(channel_suffix_names, d->channel_suffix));
}

/* Single quotes around an argument that the shell would split or expand. */
static void print_quoted(FILE *f, const char *s) {
  int plain = *s != '\0';
  for (const char *p = s; *p; p++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%+,-./:=@_", *p))
      plain = 0;
  if (plain) {
    fputs(s, f);
    return;
  }
  fputc('\'', f);
  for (const char *p = s; *p; p++) {
    if (*p == '\'') fputs("'\\''", f);
    else fputc(*p, f);
  }
  fputc('\'', f);
}

void cmdline_print(FILE *f, const cmdline *l) {
  fputs("csal3d", f);
  for (int i = 0; i < l->n; i++) {
    fputc(' ', f);
    print_quoted(f, l->arg[i]);
  }
}
