/* csal3d merge: the shard files of 'csal3d score --shard I/N' joined into one scores file. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void merge_help(FILE *f) {
  fprintf(f,
          "usage: csal3d merge SHARD... -o SCORES [options]\n"
          "\n"
          "Joins the N shard files of one scoring run ('csal3d score --shard I/N', e.g. the\n"
          "tasks of a Slurm job array) into SCORES, bitwise equal to the file a single\n"
          "'csal3d score' would have written. Refuses a missing or repeated shard and\n"
          "shards made with other checkpoints, datasets or options (naming the setting).\n"
          "\n"
          "options:\n"
          "  -o, --output PATH      the scores file to write (required)\n"
          "  --overwrite            replace an existing scores file\n"
          "%s",
          COMMON_HELP);
}

enum { OPT_OVERWRITE = OPT_COMMAND };

int cmd_merge(int argc, char **argv) {
  cli c = {.cmd = "merge"};
  static const struct option lopts[] = {COMMON_LONG_OPTIONS,
                                        {"output", required_argument, NULL, 'o'},
                                        {"overwrite", no_argument, NULL, OPT_OVERWRITE},
                                        {NULL, 0, NULL, 0}};
  const char *output = NULL;
  int overwrite = 0;
  optind = 0;
  int opt, rc = 0;
  while ((opt = next_option(&c, NULL, argc, argv, "hqvo:", lopts, merge_help, &rc)) != -1) {
    if (opt == OPT_DONE) return rc;
    switch (opt) {
    case 'o': output = optarg; break;
    case OPT_OVERWRITE: overwrite = 1; break;
    default: return usage_error(&c, "unknown option");
    }
  }
  finish_common(&c);
  if (!output) return usage_error(&c, "give the scores file to write with -o PATH");
  if (argc - optind < 1) return usage_error(&c, "give the shard files to merge");
  size_t count = (size_t)(argc - optind);
  csal3d_scores *t = NULL;
  csal3d_status s = csal3d_scores_merge_files((const char *const *)(argv + optind), count,
                                              output, overwrite, &t);
  if (s != CSAL3D_OK) return fail(&c, s);
  int64_t n = 0;
  csal3d_scores_size(t, &n, NULL);
  csal3d_scores_free(t);
  if (c.json) {
    printf("{\"command\": \"merge\", \"scores\": ");
    json_str(stdout, output);
    printf(", \"shards\": %zu, \"cases\": %" PRId64 "}\n", count, n);
  } else {
    info(&c, "merged %zu shards: %" PRId64 " cases\nscores file: %s\n", count, n, output);
  }
  return 0;
}
