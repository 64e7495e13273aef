/* csal3d_output_check: an output is checked before any work, so that a wrong path fails
 * in a second instead of after hours, and no input is ever overwritten. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csal3d/pipeline.h"

#include "core/alloc.h"
#include "core/error.h"
#include "pipeline/outputs.h"

static int c3_same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The folder that will hold `path`: "." when it has no slash. */
static csal3d_status c3_parent_writable(const char *path, const char *what) {
  const char *slash = strrchr(path, '/');
  char dir[PATH_MAX];
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == path)
    snprintf(dir, sizeof dir, "/");
  else if ((size_t)(slash - path) < sizeof dir)
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  else
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s %s: the path is too long", what, path);
  struct stat st;
  if (stat(dir, &st) != 0)
    return c3_error(CSAL3D_ERR_IO, "%s %s: its folder %s does not exist (%s)", what, path, dir,
                    strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return c3_error(CSAL3D_ERR_IO, "%s %s: %s is not a folder", what, path, dir);
  if (access(dir, W_OK | X_OK) != 0)
    return c3_error(CSAL3D_ERR_IO, "%s %s: cannot write into %s (%s)", what, path, dir,
                    strerror(errno));
  return CSAL3D_OK;
}

/* 1 if folder `dir` (an existing folder) is or contains `file` (an existing path). */
static int c3_folder_holds(const char *dir_real, const char *file) {
  char r[PATH_MAX];
  if (!realpath(file, r)) return 0;
  size_t n = strlen(dir_real);
  if (n == 1 && dir_real[0] == '/') return 1;
  return strncmp(r, dir_real, n) == 0 && (r[n] == '/' || r[n] == '\0');
}

csal3d_status c3_output_check(const char *path, csal3d_output_kind kind, const char *what,
                              const char *const *inputs, size_t n_inputs, int overwrite) {
  C3_CHECK_ARG(path && *path, "%s: the path is empty", what ? what : "output");
  if (!what || !*what) what = kind == CSAL3D_OUTPUT_FOLDER ? "the output folder" : "the output";
  C3_CHECK_ARG(kind == CSAL3D_OUTPUT_FILE || kind == CSAL3D_OUTPUT_FOLDER,
               "output check: unknown kind %d", (int)kind);
  C3_CHECK_ARG(inputs || n_inputs == 0, "output check: inputs is NULL");
  /* A trailing slash names a folder; strip it for the parent lookup. */
  char p[PATH_MAX];
  size_t len = strlen(path);
  if (len >= sizeof p)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s %s: the path is too long", what, path);
  memcpy(p, path, len + 1);
  while (len > 1 && p[len - 1] == '/') p[--len] = '\0';
  if (kind == CSAL3D_OUTPUT_FILE && len < strlen(path))
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s %s names a folder, not a file", what,
                    path);
  if (kind == CSAL3D_OUTPUT_FILE) {
    C3_TRY(c3_parent_writable(p, what));
  } else {
    /* A folder is created with its missing parents: the nearest existing one must be a
     * writable folder. */
    char anc[PATH_MAX + 4]; /* p (shorter than PATH_MAX) and "/x" */
    snprintf(anc, sizeof anc, "%s/x", p);
    struct stat sa;
    do {
      char *slash = strrchr(anc, '/');
      if (!slash) snprintf(anc, sizeof anc, ".");
      else if (slash == anc) anc[1] = '\0';
      else *slash = '\0';
    } while (stat(anc, &sa) != 0 && strcmp(anc, ".") && strcmp(anc, "/"));
    if (stat(anc, &sa) != 0 || !S_ISDIR(sa.st_mode))
      return c3_error(CSAL3D_ERR_IO, "%s %s: %s is not a folder", what, path, anc);
    if (access(anc, W_OK | X_OK) != 0)
      return c3_error(CSAL3D_ERR_IO, "%s %s: cannot write into %s (%s)", what, path, anc,
                      strerror(errno));
  }
  struct stat st;
  int exists = stat(p, &st) == 0;
  if (kind == CSAL3D_OUTPUT_FILE) {
    if (exists && S_ISDIR(st.st_mode))
      return c3_error(CSAL3D_ERR_IO, "%s %s is a folder; give a file name", what, path);
    if (exists && !S_ISREG(st.st_mode))
      return c3_error(CSAL3D_ERR_IO, "%s %s is not a regular file (a device, FIFO or "
                      "socket), which an output never replaces; give a file name", what, path);
    for (size_t i = 0; exists && i < n_inputs; i++) {
      struct stat si;
      if (inputs[i] && stat(inputs[i], &si) == 0 && c3_same_file(&st, &si))
        return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                        "%s %s is the input %s: an output never replaces an input; choose "
                        "another path", what, path, inputs[i]);
    }
    if (exists && !overwrite)
      return c3_error(CSAL3D_ERR_IO, "%s %s exists; set the option overwrite to replace it",
                      what, path);
    return CSAL3D_OK;
  }
  if (exists && !S_ISDIR(st.st_mode))
    return c3_error(CSAL3D_ERR_IO, "%s %s is a file, not a folder", what, path);
  if (exists) {
    char real[PATH_MAX];
    if (!realpath(p, real))
      return c3_error(CSAL3D_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    for (size_t i = 0; i < n_inputs; i++)
      if (inputs[i] && c3_folder_holds(real, inputs[i]))
        return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                        "%s %s holds the input %s: an output never replaces or contains an "
                        "input; choose another folder", what, path, inputs[i]);
    DIR *d = opendir(p);
    if (!d) return c3_error(CSAL3D_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    int empty = 1;
    struct dirent *e;
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
        empty = 0;
        break;
      }
    closedir(d);
    if (!empty && !overwrite)
      return c3_error(CSAL3D_ERR_IO, "%s %s exists and is not empty; set the option "
                      "overwrite to replace it", what, path);
  }
  /* A folder that does not exist yet cannot hold an existing input. */
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_output_check(const char *path, csal3d_output_kind kind,
                                             const char *what, const char *const *inputs,
                                             size_t n_inputs, int overwrite) {
  return c3_output_check(path, kind, what, inputs, n_inputs, overwrite);
}
