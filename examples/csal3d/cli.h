/* What the subcommands of the csal3d tool share: exit codes, the running command's common
 * options, progress bars, messages (and hints that name the tool's options where a library
 * message names a C one), option parsing, data options, JSON output, Ctrl-C, and the
 * equivalent command lines that the demo prints. Then each subcommand's entry points: the
 * demo fills an options struct and calls run_X directly; cmd_X parses argv into that struct
 * and calls run_X. */
#ifndef CSAL3D_TOOL_CLI_H
#define CSAL3D_TOOL_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "csal3d/csal3d.h"

/* ---- exit codes (main.c documents them) ---- */

enum {
  EXIT_LIBRARY = 1,
  EXIT_USAGE = 2,
  EXIT_DATA = 3,
  EXIT_DEVICE = 4,
  EXIT_MEMORY = 5,
  EXIT_INTERRUPTED = 130
};

/* The exit code of a library status. */
int exit_code(csal3d_status s);

/* ---- the running command ---- */

typedef struct cli {
  const char *cmd; /* the running command, for messages */
  int quiet, json, verbose;
  int mute;        /* no summary on stdout (the demo's steps under --json) */
  int tty;         /* stderr is a terminal and not quiet: draw progress bars */
  int threads;
  csal3d_device device;
} cli;

/* The common options of @p parent for the subcommand @p cmd (the demo's steps). */
cli cli_for(const cli *parent, const char *cmd);

/* ---- Ctrl-C ---- */

/* SIGINT and SIGTERM go to one thread started by start_signal_thread() (first thing in
 * main, before any other thread). Once a command catches them (every command that
 * writes does, from its start, until release_interrupts()), the first sets g_interrupted:
 * the library is asked to stop at its next progress report and the command exits 130
 * with nothing partial left; a second ends the process at once. Otherwise they end it. */
extern volatile sig_atomic_t g_interrupted;
void start_signal_thread(void);
void catch_interrupts(void);
void release_interrupts(void);

double now(void);
void fmt_duration(char *buf, size_t cap, double seconds);

/* ---- progress bar (stderr, terminals only) ---- */

typedef struct bar {
  cli *c;
  char stage[32];
  uint64_t done, total, first; /* first: done when the bar started (resumed runs) */
  double t0, drawn;
  char note[192], sub[64];
  int shown;
} bar;

/* Starts @p b and makes it the bar that the library's progress for @p stage moves. */
void bar_start(bar *b, cli *c, const char *stage, uint64_t first, uint64_t total);
void bar_update(bar *b, uint64_t done, const char *note);
/* Erases the bar's line before a message (the next update draws it again). */
void bar_clear_line(void);
void bar_finish(bar *b);

/* ---- messages ---- */

/* "csal3d CMD: ..." and a pointer to --help on stderr; returns EXIT_USAGE. */
int usage_error(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports the library's failure @p s (its message, then a line naming the tool option to
 * change where the message names a C option) and returns the exit code. fail_at puts a
 * prefix (the case, say) before the library's message. */
int fail(cli *c, csal3d_status s);
int fail_at(cli *c, csal3d_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "csal3d CMD: warning: ..." on stderr. */
void warning(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A summary line on stdout (not with --quiet or --json). */
void info(cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A JSON string literal; a JSON number (null for NaN, "inf"/"-inf" as the manifest). */
void json_str(FILE *f, const char *s);
void json_num(FILE *f, double v);

/* ---- parsing (each returns 0, or EXIT_USAGE after a message naming @p opt) ---- */

int parse_i64(cli *c, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
int parse_int(cli *c, const char *opt, const char *s, int lo, int hi, int *out);
int parse_u64(cli *c, const char *opt, const char *s, uint64_t *out);
int parse_f64(cli *c, const char *opt, const char *s, double lo, double hi, double *out);
/* "N" (all three axes) or "D,H,W"; "MM" or "MM,MM,MM". */
int parse_i64x3(cli *c, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t out[3]);
int parse_f64x3(cli *c, const char *opt, const char *s, double lo, double hi, double out[3]);
/* A number of bytes, "N" or with a binary suffix: "512K", "800M", "8G", "1T" (KiB, MiB...). */
int parse_bytes(cli *c, const char *opt, const char *s, int64_t *out);

/* The names an option takes; an entry with an earlier entry's value is an alias (not
 * listed in messages). Ends with a NULL name. */
typedef struct choice {
  const char *name;
  int value;
} choice;
int parse_choice(cli *c, const char *opt, const char *s, const choice *names, int *out);
/* The first name of @p value ("?" if none). */
const char *choice_name(const choice *names, int value);

/* ---- options every command takes ---- */

/* getopt_long values of the common and data options; a command's own start at OPT_COMMAND. */
enum {
  OPT_JSON = 256,
  OPT_THREADS,
  OPT_DEVICE,
  OPT_MODALITY,
  OPT_CHANNEL,
  OPT_SPACING,
  OPT_ALLOW_NONFINITE,
  OPT_ASSUME_SPACING,
  OPT_MAX_MEMORY,
  OPT_CHANNEL_SUFFIX,
  OPT_COMMAND = 300,
  OPT_DONE = -2 /* next_option: stop */
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

/* After parsing: whether to draw progress bars. */
void finish_common(cli *c);
/* Handles a common option; returns 1 if it was one (and *rc != 0 on a bad value). */
int common_option(cli *c, int opt, const char *arg, int *rc);
/* A context with the common options, the seed, the log and the progress callbacks. */
csal3d_status make_context(cli *c, uint64_t seed, csal3d_context **ctx);

/* ---- data options (pretrain, score) ---- */

typedef struct data_opts {
  csal3d_modality modality;
  int modality_set;
  int channel; /* CSAL3D_CHANNEL_NONE unless set */
  int channel_set;
  double spacing[3];
  int spacing_set;
  int allow_nonfinite;
  double assume_spacing[3]; /* --assume-spacing (all 0 unless set) */
  int64_t max_memory;       /* --max-memory (0 unless set) */
  int channel_suffix;       /* --channel-suffix: a csal3d_channel_suffix */
  int channel_suffix_set;
} data_opts;

void data_opts_init(data_opts *d);
/* Handles a data option; returns 1 if it was one. */
int data_option(cli *c, data_opts *d, int opt, const char *arg, int *rc);
/* getopt_long for a command: the next option that is the command's own (optarg set), after
 * handling --help (prints @p help), the common options and, with @p d, the data options.
 * Returns -1 after the last option, or OPT_DONE when the command must return *rc at once
 * (0 after --help, an exit code after a bad value). Set optind = 0 before the first call. */
int next_option(cli *c, data_opts *d, int argc, char **argv, const char *shortopts,
                const struct option *longopts, void (*help)(FILE *), int *rc);

#define DATA_LONG_OPTIONS                                                      \
  {"modality", required_argument, NULL, OPT_MODALITY},                         \
      {"channel", required_argument, NULL, OPT_CHANNEL},                       \
      {"spacing", required_argument, NULL, OPT_SPACING},                       \
      {"allow-nonfinite", no_argument, NULL, OPT_ALLOW_NONFINITE},                  \
      {"assume-spacing", required_argument, NULL, OPT_ASSUME_SPACING},             \
      {"max-memory", required_argument, NULL, OPT_MAX_MEMORY},                     \
      {"channel-suffix", required_argument, NULL, OPT_CHANNEL_SUFFIX}

#define DATA_HELP                                                              \
  "data options (DATASET: a folder of NIfTI files or with imagesTr/, a decathlon or\n" \
  "nnU-Net dataset.json, or a text file with one 'image[,label]' per line). Left out,\n" \
  "they are the checkpoint's (a model remembers how it was trained), else the\n" \
  "dataset.json's modality at native spacing:\n"                                   \
  "  --modality M       ct (clip [-1024, 1024] HU, scale to [0, 1]), mri (z-score,\n" \
  "                     1st/99th percentiles, [0, 1]), none, or auto (default: the\n" \
  "                     checkpoint's, else what the dataset.json says)\n"           \
  "  --channel C        which volume of 4-D images (0, 1, ...) or 'all' as channels\n" \
  "  --spacing MM       resample to this spacing (MM or MM,MM,MM; 0 keeps an axis)\n" \
  "  --allow-nonfinite  read NaN and Inf voxels as 0 (default: refuse such images)\n" \
  "  --assume-spacing MM  the voxel size (MM or MM,MM,MM along the file's i, j, k) of\n" \
  "                     files whose pixdim is 0, NaN or Inf (default: refuse them)\n" \
  "  --max-memory N     the most memory loading one image may take, resampled grid\n" \
  "                     included: bytes, or 512M, 8G (default: 4G)\n"        \
  "  --channel-suffix S whether X_0000, X_0001 file names number a case's channels:\n" \
  "                     auto (default: in nnU-Net layouts only), always or never\n" \
  "(--assume-spacing, --max-memory and --channel-suffix are not recorded in a\n" \
  "checkpoint: give them to each command.)\n"

const char *modality_name(csal3d_modality m);
/* "native" or "D,H,W" (mm). */
void spacing_text(char *buf, size_t cap, const double spacing[3]);
/* Opens the dataset (it must have cases) as the data options say (@p d may be NULL);
 * returns an exit code. */
int open_dataset(cli *c, const char *path, const data_opts *d, csal3d_dataset **ds);
/* Fails (a usage error) when neither --modality nor the dataset.json says what the images
 * are; for a new model, whose checkpoint records nothing yet. */
int require_modality(cli *c, const data_opts *d, const csal3d_dataset *ds, const char *path);
/* The load options to hand the library: NULL when no data option was given (the library
 * then loads as the model was trained, else as the dataset.json says), else those given
 * over the model's recorded ones (@p m may be NULL), the modality "auto" unless given. */
const csal3d_volume_load_options *load_options(const data_opts *d, const csal3d_ssl_model *m,
                                               csal3d_volume_load_options *lo);
/* "ct, spacing 1.5,1.5,1.5" of the data options a model records ("" when none). */
void data_summary(const csal3d_ssl_model *m, char *buf, size_t cap);

/* ---- files ---- */

/* An output checked before any work (csal3d_output_check): 0, or the exit code after the
 * message (and the hint naming --overwrite). */
int check_output(cli *c, const char *path, csal3d_output_kind kind, const char *what,
                 const char *const *inputs, size_t n_inputs, int overwrite);
/* Whether two paths name the same existing file. */
int same_file(const char *a, const char *b);

/* mkdir -p; 0 or -1 (errno set). */
int mkdir_p(const char *path);
/* "DIR/NAME" in a new string (free it); NULL when out of memory. */
char *path_join(const char *dir, const char *name);
/* A string of a scores file's case (csal3d_scores_case_string's @p what: "id", "image",
 * ...) in a new string of its full length (free it); "" on a library failure, NULL when
 * out of memory. */
char *case_string(const csal3d_scores *sc, int64_t index, const char *what);
/* Warns when a crop or window of at most 32 along every axis makes the model degenerate. */
void warn_degenerate(cli *c, const int64_t dhw[3], const char *what);

/* ---- equivalent command lines ---- */

/* A csal3d command line built from an options struct, for printing (shell-quoted). */
typedef struct cmdline {
  int n;
  const char *arg[64];
  char buf[16384];
  size_t used;
  int truncated; /* too long: ends with "..." */
} cmdline;

void cmdline_init(cmdline *l, const char *command);
void cmdline_add(cmdline *l, const char *arg);
/* Adds @p opt and its value (printf format). */
void cmdline_opt(cmdline *l, const char *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Values as the parsers read them: "N" when the three agree, else "D,H,W". */
void cmdline_opt_i64x3(cmdline *l, const char *opt, const int64_t v[3]);
void cmdline_opt_f64(cmdline *l, const char *opt, double v);
void cmdline_opt_f64x3(cmdline *l, const char *opt, const double v[3]);
/* The common options of @p c that differ from the defaults (--json too). */
void cmdline_common(cmdline *l, const cli *c);
/* The data options that differ from the defaults. */
void cmdline_data(cmdline *l, const data_opts *d);
/* "csal3d ARG ..." (no newline). */
void cmdline_print(FILE *f, const cmdline *l);

/* ---- the subcommands ---- */

/* pretrain.c. -1 (or unset flags): the library's default, or the checkpoint's on --resume. */
typedef struct pretrain_opts {
  const char *dataset, *output, *resume; /* output NULL: the resumed file */
  const char *init;                      /* --init: starting weights, or NULL */
  int overwrite;                         /* -o may replace an existing file */
  data_opts data;
  int64_t embed_dim, batch, iterations, warmup, checkpoint_every, cache_mb;
  int64_t crop[3];
  double lr, mask_ratio;
  uint64_t seed;
  int seed_set;
} pretrain_opts;

void pretrain_opts_init(pretrain_opts *o);
int run_pretrain(cli *c, const pretrain_opts *o);
void pretrain_cmdline(cmdline *l, const cli *c, const pretrain_opts *o);
int cmd_pretrain(int argc, char **argv);

/* score.c. -1 / NaN / unset flags: defaults (the checkpoint's crop, half the window, ...). */
typedef struct score_opts {
  const char *checkpoint, *dataset, *output, *maps;
  int overwrite, restart, skip_failed; /* --overwrite, --restart, --skip-failed */
  data_opts data;
  int64_t window[3], stride[3];
  double foreground;
  csal3d_feature_mode feature;
  uint64_t seed;
  int seed_set;
  size_t shard_index, shard_count; /* --shard I/N (0-based index); count 0: whole */
} score_opts;

void score_opts_init(score_opts *o);
int run_score(cli *c, const score_opts *o);
void score_cmdline(cmdline *l, const cli *c, const score_opts *o);
int cmd_score(int argc, char **argv);

/* select.c. budget -1: not given (an error). */
typedef struct select_opts {
  const char *scores;
  int64_t budget;
  csal3d_strategy strategy;
  int n_cand;
  csal3d_kernel_mode kernel;
  csal3d_typiclust_variant typiclust_variant;
  uint64_t seed;
  const char *outdir, *csv, *manifest, *nnunet;
  csal3d_nnunet_options export_opts;
} select_opts;

void select_opts_init(select_opts *o);
int run_select(cli *c, const select_opts *o);
void select_cmdline(cmdline *l, const cli *c, const select_opts *o);
int cmd_select(int argc, char **argv);

/* report.c. 0 / NULL: the library's defaults. */
typedef struct report_opts {
  const char *scores, *output, *maps, *data, *evaluation, *title;
  const char *selections[16];
  int n_selections;
  int64_t max_points, max_cases;
  int image_size, overwrite;
} report_opts;

void report_opts_init(report_opts *o);
int run_report(cli *c, const report_opts *o);
void report_cmdline(cmdline *l, const cli *c, const report_opts *o);
int cmd_report(int argc, char **argv);
/* evaluate.c */
int cmd_evaluate(int argc, char **argv);

/* demo.c, info.c */
int cmd_demo(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* csal3d-mpi: the communicator of MPI_COMM_WORLD, set on every context (NULL: one
 * process); ranks other than 0 are quiet. */
extern const csal3d_comm *g_tool_comm;
int tool_rank(void);

/* merge.c: csal3d merge SHARD... -o SCORES */
int cmd_merge(int argc, char **argv);

#endif
