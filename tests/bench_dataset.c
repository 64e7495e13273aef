/* make bench: opening large datasets (no image is read; the files need not exist).
 *
 * 1. A list of 100,000 lines "cNNNNNN.nii.gz,labels/cNNNNNN.nii.gz" (distinct names).
 * 2. A list of 100,000 lines "sNNNNNN/flair.nii.gz" (one folder per subject: every file
 *    name repeats, so the ids become "sNNNNNN/flair").
 * 3. A CSV of 100,000 rows with a header "id,image_0,image_1,label".
 * Each should open in well under a second (issue 13: 30-54 s before the duplicate-id
 * check was a sort). Prints the wall and CPU seconds per open. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "csal3d/csal3d.h"
#include "bench_util.h"

#define N 100000

static int bench(const char *name, const char *path, const char *first_id) {
  double t0 = now(), c0 = cpu_now();
  csal3d_dataset *ds = NULL;
  if (csal3d_dataset_open(path, NULL, &ds) != CSAL3D_OK) {
    fprintf(stderr, "%s: %s\n", name, csal3d_last_error());
    return 1;
  }
  double dt = now() - t0, dc = cpu_now() - c0;
  size_t n = 0;
  char id[256];
  csal3d_dataset_size(ds, &n);
  csal3d_dataset_case_string(ds, 0, "id", id, sizeof id, NULL);
  csal3d_dataset_free(ds);
  printf("%-44s %7zu cases  %6.3f s (CPU %6.3f s)  first id %s\n", name, n, dt, dc, id);
  if (n != N || strcmp(id, first_id) != 0) {
    fprintf(stderr, "%s: expected %d cases, the first '%s'\n", name, N, first_id);
    return 1;
  }
  return 0;
}

int main(void) {
  char dir[] = "/tmp/csal3d_bench_ds_XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char p[3][300];
  const char *names[3] = {"list.txt", "subjects.txt", "cases.csv"};
  for (int k = 0; k < 3; k++) {
    snprintf(p[k], sizeof p[k], "%s/%s", dir, names[k]);
    FILE *f = fopen(p[k], "w");
    if (!f) return 1;
    if (k == 2) fputs("id,image_0,image_1,label\n", f);
    for (int i = 0; i < N; i++) {
      if (k == 0) fprintf(f, "c%06d.nii.gz,labels/c%06d.nii.gz\n", i, i);
      else if (k == 1) fprintf(f, "s%06d/flair.nii.gz\n", i);
      else fprintf(f, "case%06d,t1/c%06d.nii.gz,flair/c%06d.nii.gz,seg/c%06d.nii.gz\n", i, i, i, i);
    }
    fclose(f);
  }
  printf("opening datasets of %d cases (paths only)\n", N);
  int bad = bench("list: image,label", p[0], "c000000");
  bad |= bench("list: one folder per subject (SUBJ/flair)", p[1], "s000000/flair");
  bad |= bench("CSV: id,image_0,image_1,label", p[2], "case000000");
  for (int k = 0; k < 3; k++) unlink(p[k]);
  rmdir(dir);
  return bad;
}
