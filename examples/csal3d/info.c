/* csal3d info: the library version, the engines that can run here, the thread count. */
#include <string.h>

#include "cli.h"

int cmd_info(int argc, char **argv) {
  int json = 0;
  for (int i = 1; i < argc; i++) {
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
    cli c = {.cmd = "info"};
    return fail(&c, s);
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
