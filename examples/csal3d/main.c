/* csal3d: the command-line tool of libcsal3d.
 *
 *   csal3d pretrain DATASET -o ssl.safetensors     self-supervised pretraining
 *   csal3d score ssl.safetensors DATASET -o scores.safetensors
 *   csal3d select scores.safetensors --budget 20 [--nnunet DIR]
 *   csal3d report scores.safetensors --selection selection.json -o report.html
 *   csal3d evaluate DATASET --train selection.csv -o results.csv
 *                                                   does the selection help? (Dice)
 *   csal3d demo                                     the whole pipeline on phantom data
 *   csal3d info [FILE]                              version, engines, threads; or what
 *                                                   FILE is (image, checkpoint, scores)
 *
 * Every command has --help. Progress bars go to stderr when it is a terminal (never with
 * --quiet); results go to stdout, as text or with --json as one JSON object.
 *
 * Sources: this file dispatches; one file per command (pretrain.c, score.c, select.c,
 * evaluate.c, report.c, merge.c, demo.c, info.c), each parsing its command line into an
 * options struct for its run_ function (the demo fills those structs itself); cli.c /
 * cli.h hold what they share.
 *
 * Environment: OMP_WAIT_POLICY (default passive here, see passive_openmp), OMP_* as usual.
 *
 * Exit codes:
 *   0    success
 *   1    failure inside the library not covered below (a bug, a call in the wrong state)
 *   2    bad command line (unknown option, missing or invalid value, an output that is
 *        or holds an input, an nnU-Net folder not named DatasetNNN_Name)
 *   3    bad or unreadable input, or output that cannot be written (a file is missing,
 *        truncated, corrupt, not what it should be, holds NaN, has a channel count that
 *        does not fit --channel or the model, a checkpoint's metadata is malformed, a
 *        chosen case lacks its label under --labels require, ...)
 *   4    the requested device (CUDA) is not available
 *   5    out of memory
 *   130  interrupted (Ctrl-C or SIGTERM); nothing partial is left (pretrain saves a
 *        resumable checkpoint first, score keeps its journal, select leaves every output
 *        as it was, evaluate keeps its finished runs and its --checkpoint).
 *        docs/robustness.md lists these promises with their tests.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#ifdef CSAL3D_TOOL_MPI
#include "comm_mpi.h"
#endif
#ifdef CSAL3D_TOOL_NCCL
#include "comm_nccl.h"
#endif

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
          "  report SCORES --selection M     one HTML page to see the selection (self-contained)\n"
          "  evaluate DATASET --train SEL    train a U-Net on the chosen cases, Dice on the\n"
          "                                  others; --scores: the strategies' table\n"
          "  demo                            the whole pipeline on phantom data\n"
          "  info [FILE]                     version, engines, threads; or what FILE is\n"
          "  merge SHARD... -o SCORES        join the shards of 'score --shard I/N'\n"
          "\n"
          "csal3d <command> --help describes a command; csal3d --version the version.\n"
          "Exit codes: 0 ok, 2 bad command line, 3 bad input or output, 4 device\n"
          "unavailable, 5 out of memory, 130 interrupted, 1 other library failure.\n");
#ifdef CSAL3D_TOOL_MPI
  fprintf(f, "\ncsal3d-mpi (under mpirun or srun): --comm mpi (default) or --comm nccl with\n"
             "--device cuda: the collectives over MPI, or the gradients summed by NCCL on\n"
             "the GPUs (docs/distributed.md).\n");
#endif
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

static const struct {
  const char *name;
  int (*run)(int argc, char **argv); /* argv[0] is the command's name */
} commands[] = {{"pretrain", cmd_pretrain},
                {"score", cmd_score},
                {"select", cmd_select},
                {"report", cmd_report},
                {"evaluate", cmd_evaluate},
                {"demo", cmd_demo},
                {"info", cmd_info},
                {"merge", cmd_merge}};

static int tool_main(int argc, char **argv);

#ifdef CSAL3D_TOOL_MPI
/* csal3d-mpi --comm mpi|nccl (anywhere after the command's name; default mpi), taken out
 * of argv before the command parses it: 0 mpi, 1 nccl, -1 a bad value (said). */
static int take_comm_flag(int *argc, char **argv) {
  int kind = 0;
  for (int i = 1; i < *argc && strcmp(argv[i], "--");) {
    int used = !strcmp(argv[i], "--comm") ? 2 : !strncmp(argv[i], "--comm=", 7) ? 1 : 0;
    if (!used) {
      i++;
      continue;
    }
    const char *v = used == 1 ? argv[i] + 7 : i + 1 < *argc ? argv[i + 1] : "";
    if (!strcmp(v, "mpi") || !strcmp(v, "nccl")) {
      kind = !strcmp(v, "nccl");
    } else {
      if (tool_rank() == 0)
        fprintf(stderr, "csal3d-mpi: --comm must be mpi or nccl, not '%s'\n", v);
      return -1;
    }
    memmove(argv + i, argv + i + used, (size_t)(*argc - i - used + 1) * sizeof *argv);
    *argc -= used;
  }
  return kind;
}

/* Whether the command line says --device cuda (or gpu). */
static int wants_cuda(int argc, char **argv) {
  for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
    const char *v = !strcmp(argv[i], "--device") && i + 1 < argc ? argv[i + 1]
                    : !strncmp(argv[i], "--device=", 9) ? argv[i] + 9 : NULL;
    if (v && (!strcasecmp(v, "cuda") || !strcasecmp(v, "gpu"))) return 1;
  }
  return 0;
}

/* --comm nccl: the NCCL communicator in place of MPI's (every rank agrees), or the exit
 * code after saying why not. */
static int start_nccl(int argc, char **argv) {
  if (!wants_cuda(argc, argv)) {
    if (tool_rank() == 0)
      fprintf(stderr, "csal3d-mpi: --comm nccl sums the CUDA engine's gradients on the GPU: "
              "give --device cuda too\n");
    return EXIT_USAGE;
  }
#ifdef CSAL3D_TOOL_NCCL
  char why[640];
  const csal3d_comm *c = tool_nccl_init(g_tool_comm, 0, why, sizeof why);
  if (c) {
    g_tool_comm = c;
    return 0;
  }
  if (tool_rank() == 0 || !strstr(why, "could not start NCCL"))
    fprintf(stderr, "csal3d-mpi: rank %d: --comm nccl: %s\n", tool_rank(), why);
#else
  if (tool_rank() == 0)
    fprintf(stderr, "csal3d-mpi: --comm nccl: this csal3d-mpi was built without NCCL (nccl.h "
            "was not found, or make NCCL=0)\n");
#endif
  return EXIT_DEVICE;
}
#endif

/* csal3d-mpi (built with CSAL3D_TOOL_MPI): under mpirun or srun every rank runs the
 * command over the communicator of MPI_COMM_WORLD (docs/distributed.md), or with
 * --comm nccl over NCCL (CSAL3D_TOOL_NCCL). */
int main(int argc, char **argv) {
  passive_openmp(argv);
  start_signal_thread();
#ifdef CSAL3D_TOOL_MPI
  g_tool_comm = tool_mpi_init(&argc, &argv);
  if (!g_tool_comm) {
    fprintf(stderr, "csal3d-mpi: MPI_Init failed\n");
    return EXIT_LIBRARY;
  }
  int nccl = take_comm_flag(&argc, argv), rc = nccl < 0 ? EXIT_USAGE : 0;
  if (nccl > 0) rc = start_nccl(argc, argv);
  if (rc != 0) { /* every rank refused alike: MPI ends normally */
    tool_mpi_finalize(0);
    return rc;
  }
  rc = tool_main(argc, argv);
#ifdef CSAL3D_TOOL_NCCL
  tool_nccl_finalize(rc);
#endif
  tool_mpi_finalize(rc);
  return rc;
#else
  return tool_main(argc, argv);
#endif
}

static int tool_main(int argc, char **argv) {
  char *help_argv[3] = {NULL, "--help", NULL};
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    if (argc >= 3 && !strcmp(argv[1], "help")) { /* csal3d help COMMAND */
      help_argv[0] = argv[2];
      argv = help_argv;
      argc = 2;
      goto dispatch;
    }
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? EXIT_USAGE : 0;
  }
  if (!strcmp(argv[1], "--version") || (!strcmp(argv[1], "--json") && argc == 3 &&
                                          !strcmp(argv[2], "--version"))) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
      if (!strcmp(argv[i], "--json")) json = 1;
      else if (strcmp(argv[i], "--version")) {
        fprintf(stderr, "csal3d: --version takes only --json, not '%s'\n", argv[i]);
        return EXIT_USAGE;
      }
    }
    if (json) printf("{\"version\": \"%s\", \"version_number\": %d}\n", csal3d_version(),
                     csal3d_version_number());
    else printf("csal3d %s\n", csal3d_version());
    return 0;
  }
  argv++;
  argc--;
dispatch:
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[0], commands[i].name)) return commands[i].run(argc, argv);
  fprintf(stderr, "csal3d: unknown command '%s'\n", argv[0]);
  usage(stderr);
  return EXIT_USAGE;
}
