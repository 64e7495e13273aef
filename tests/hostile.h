/* Helpers of the hostile-file and atomic-write tests (test_nifti.c, test_safetensors.c,
 * test_manifest.c): the corpus of tests/data/hostile (expected.json), processes that are
 * no longer running, writers killed inside their write, write errors in a child process.
 * Header-only: each test program includes it once. */
#ifndef CSAL3D_TESTS_HOSTILE_H
#define CSAL3D_TESTS_HOSTILE_H

#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "csal3d/common.h"

#define HOSTILE "tests/data/hostile/"

/* The status named in expected.json ("OK", "FORMAT", ...). */
static inline csal3d_status hostile_status(const char *name) {
  static const struct {
    const char *name;
    csal3d_status s;
  } t[] = {{"OK", CSAL3D_OK}, {"IO", CSAL3D_ERR_IO}, {"FORMAT", CSAL3D_ERR_FORMAT},
           {"UNSUPPORTED", CSAL3D_ERR_UNSUPPORTED}, {"NUMERICAL", CSAL3D_ERR_NUMERICAL},
           {"INVALID_ARGUMENT", CSAL3D_ERR_INVALID_ARGUMENT}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (!strcmp(t[i].name, name)) return t[i].s;
  ck_abort_msg("expected.json: unknown status %s", name);
  return CSAL3D_ERR_INTERNAL;
}

/* The entries of one format ("nifti", "safetensors") of expected.json; the caller
 * json_decref()s *root. */
static inline json_t *hostile_entries(const char *format, json_t **root) {
  json_error_t err;
  *root = json_load_file(HOSTILE "expected.json", 0, &err);
  ck_assert_msg(*root != NULL, "expected.json: %s", err.text);
  json_t *a = json_object_get(*root, format);
  ck_assert_msg(json_is_array(a) && json_array_size(a) > 0, "expected.json: no %s", format);
  return a;
}

/* The path of an entry's file (in buf). */
static inline const char *hostile_path(json_t *e, char *buf, size_t cap) {
  snprintf(buf, cap, HOSTILE "%s", json_string_value(json_object_get(e, "file")));
  return buf;
}

/* Checks a result against an entry: the status, and a message naming the file and
 * holding each of the entry's strings. */
static inline void hostile_check(json_t *e, const char *path, csal3d_status s) {
  csal3d_status want = hostile_status(json_string_value(json_object_get(e, "status")));
  ck_assert_msg(s == want, "%s: status %d (%s), want %d", path, s,
                s ? csal3d_last_error() : "", want);
  if (want == CSAL3D_OK) return;
  const char *msg = csal3d_last_error(), *base = strrchr(path, '/');
  ck_assert_msg(strstr(msg, base ? base + 1 : path), "%s: the message does not name the "
                "file: %s", path, msg);
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(e, "message"), i, m)
    ck_assert_msg(strstr(msg, json_string_value(m)), "%s: message '%s' lacks '%s'", path, msg,
                  json_string_value(m));
}

/* The id of a process that has exited (and been reaped): no process runs with it. */
static inline pid_t dead_pid(void) {
  pid_t p = fork();
  ck_assert_int_ge(p, 0);
  if (p == 0) _exit(0);
  int st;
  ck_assert_int_eq(waitpid(p, &st, 0), p);
  ck_assert_msg(kill(p, 0) != 0, "pid %d still runs", (int)p);
  return p;
}

/* Runs fn(arg) in a child process that may write only `limit` bytes to any file and is
 * killed (SIGXFSZ, no core dump) when it tries to write more: a writer killed inside its
 * write, at a known point. Returns the child's pid, after checking it was killed so. */
static inline pid_t killed_inside_write(void (*fn)(void *), void *arg, rlim_t limit) {
  fflush(NULL);
  pid_t p = fork();
  ck_assert_int_ge(p, 0);
  if (p == 0) {
    struct rlimit core = {0, 0}, fsize = {limit, limit};
    setrlimit(RLIMIT_CORE, &core);
    signal(SIGXFSZ, SIG_DFL);
    setrlimit(RLIMIT_FSIZE, &fsize);
    fn(arg);
    _exit(3); /* not killed: the write was smaller than the limit */
  }
  int st;
  ck_assert_int_eq(waitpid(p, &st, 0), p);
  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGXFSZ,
                "the writer was not killed inside its write (status %#x)", st);
  return p;
}

/* Runs fn(arg) in a child process whose writes beyond `limit` bytes fail (EFBIG, as a
 * full disk fails them with ENOSPC). fn returns 0 when the failure was reported as it
 * should be, else an exit code (and prints why); the child's code is returned. */
static inline int with_write_limit(int (*fn)(void *), void *arg, rlim_t limit) {
  fflush(NULL);
  pid_t p = fork();
  ck_assert_int_ge(p, 0);
  if (p == 0) {
    struct rlimit fsize = {limit, limit};
    signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &fsize);
    int rc = fn(arg);
    fflush(NULL);
    _exit(rc);
  }
  int st;
  ck_assert_int_eq(waitpid(p, &st, 0), p);
  ck_assert_msg(WIFEXITED(st), "the writer died (status %#x)", st);
  return WEXITSTATUS(st);
}

/* In the child of with_write_limit: the write failed with CSAL3D_ERR_IO and a message
 * that names `target` and no temporary file. */
static inline int failed_naming(csal3d_status s, const char *target) {
  const char *m = csal3d_last_error();
  if (s != CSAL3D_ERR_IO || !strstr(m, target) || strstr(m, ".tmp.")) {
    fprintf(stderr, "write of %s: status %d, message: %s\n", target, s, m);
    return 1;
  }
  return 0;
}

/* The names in `dir` that contain `part` (up to `cap`), and how many there are. */
static inline int names_with(const char *dir, const char *part, char names[][256], int cap) {
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strstr(e->d_name, part)) {
      if (n < cap) snprintf(names[n], 256, "%s", e->d_name);
      n++;
    }
  closedir(d);
  return n;
}

/* Creates `dir/name` as an empty file (or a folder). */
static inline void touch(const char *dir, const char *name, int folder) {
  char p[2048];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (folder) {
    ck_assert_int_eq(mkdir(p, 0755), 0);
  } else {
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
  }
}

static inline int exists_in(const char *dir, const char *name) {
  char p[2048];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return lstat(p, &st) == 0;
}

/* Temporaries beside TARGET (in dir) that the next write of TARGET must leave alone: its
 * own PID's (a write in progress in this process), PID 1's (a live process), names
 * without a PID (an older libcsal3d's, whose writer may run), another target's, and a
 * symbolic link. `tag` is "tmp" (or "old"); `folder` makes them folders. Writes the
 * names into keep[6]. */
static inline void make_decoys(const char *dir, const char *target, const char *tag,
                               int folder, pid_t dead, char keep[6][256]) {
  snprintf(keep[0], 256, ".%s.%s.%d.aaaaaa", target, tag, (int)getpid());
  snprintf(keep[1], 256, ".%s.%s.1.bbbbbb", target, tag);
  snprintf(keep[2], 256, ".%s.%s.cccccc", target, tag);
  snprintf(keep[3], 256, ".other%s.%s.%d.dddddd", target, tag, (int)dead);
  snprintf(keep[4], 256, ".%s.%s.%d.eeeeeee", target, tag, (int)dead);
  for (int i = 0; i < 5; i++) touch(dir, keep[i], folder);
  snprintf(keep[5], 256, ".%s.%s.%d.ffffff", target, tag, (int)dead);
  char link[2048];
  snprintf(link, sizeof link, "%s/%s", dir, keep[5]);
  ck_assert_int_eq(symlink("/nonexistent", link), 0);
}

#endif
