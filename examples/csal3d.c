/* csal3d: the command-line tool of libcsal3d.
 *
 * Subcommands available in this release: info. The pipeline subcommands (pretrain,
 * score, select, demo) arrive with the pipeline work. Exit codes: 0 success, 1 a
 * library error, 2 bad usage. */
#include <stdio.h>
#include <string.h>

#include "csal3d/csal3d.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: csal3d <command> [options]\n"
          "\n"
          "Chooses which unlabelled 3D images to annotate first (CSAL-3D).\n"
          "\n"
          "commands:\n"
          "  info [--json]   library version, engines available, threads\n"
          "\n"
          "Not in this release yet: pretrain, score, select, demo.\n"
          "csal3d <command> --help describes a command.\n");
}

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
      fprintf(stderr, "csal3d info: unknown option '%s'\n", argv[i]);
      return 2;
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
  if (csal3d_context_create(&o, &ctx) != CSAL3D_OK) {
    fprintf(stderr, "csal3d: %s\n", csal3d_last_error());
    return 1;
  }
  csal3d_context_threads(ctx, &threads);
  csal3d_context_free(ctx);
  if (json) {
    printf("{\"version\": \"%s\", \"engines\": {\"cpu\": %s, \"cuda\": %s}, "
           "\"threads\": %d}\n",
           csal3d_version(), cpu ? "true" : "false", cuda ? "true" : "false",
           threads);
  } else {
    printf("libcsal3d %s\n", csal3d_version());
    printf("engines:  cpu %s, cuda %s\n", cpu ? "yes" : "no", cuda ? "yes" : "no");
    if (!cuda) printf("          (cuda: %s)\n", cuda_why);
    printf("threads:  %d\n", threads);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("csal3d %s\n", csal3d_version());
    return 0;
  }
  if (!strcmp(argv[1], "info")) return cmd_info(argc - 2, argv + 2);
  fprintf(stderr, "csal3d: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
