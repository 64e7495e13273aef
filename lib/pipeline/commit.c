/* Outputs that appear together or not at all (commit.h). */
#include "pipeline/commit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/fileutil.h"

int c3_commit_fail_at;

csal3d_status c3_commit_add(c3_commit *c, const char *target, char *tmp, int is_dir) {
  csal3d_status s = CSAL3D_OK;
  char *t = NULL;
  if (c->n >= C3_COMMIT_MAX)
    s = c3_error(CSAL3D_ERR_INTERNAL, "commit: more than %d outputs", C3_COMMIT_MAX);
  else if (!(t = c3_strdup(target)))
    s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  if (s != CSAL3D_OK) {
    if (tmp) (void)c3_remove_tree(tmp);
    c3_free(tmp);
    return s;
  }
  c3_staged *it = &c->item[c->n++];
  memset(it, 0, sizeof *it);
  it->target = t;
  it->tmp = tmp;
  it->is_dir = is_dir;
  return CSAL3D_OK;
}

/* A new name beside `target` for its previous version, ".BASE.old.PID.XXXXXX" (what
 * killed commits of this target left is removed first: called only when the target
 * exists, so a backup that may hold the only copy is never taken), created empty so
 * that the rename replaces it. */
static csal3d_status c3_backup_name(const char *target, int is_dir, char **out) {
  char *b;
  C3_TRY(c3_tmp_beside(target, "old", is_dir, &b));
  int fd = -1;
  if (is_dir ? mkdtemp(b) != NULL : (fd = mkstemp(b)) >= 0) {
    if (fd >= 0) close(fd);
    *out = b;
    return CSAL3D_OK;
  }
  csal3d_status s = c3_error(CSAL3D_ERR_IO, "%s: cannot move the previous %s aside: %s",
                             target, is_dir ? "folder" : "file", strerror(errno));
  c3_free(b);
  return s;
}

/* Puts item `it` back as it was: the new output removed, the previous one restored. */
static void c3_undo(c3_staged *it) {
  if (it->placed) {
    /* The temporary name is free again: move the new output back there (removed later
     * with the other temporaries), or remove it where that fails. */
    if (rename(it->target, it->tmp) != 0) (void)c3_remove_tree(it->target);
    it->placed = 0;
  }
  if (it->backup) {
    /* A second link of the untouched target: rename() would do nothing (the same file),
     * so the link goes. */
    struct stat a, b;
    if (!it->is_dir && stat(it->backup, &a) == 0 && stat(it->target, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino && unlink(it->backup) == 0) {
      c3_free(it->backup);
      it->backup = NULL;
    } else if (rename(it->backup, it->target) == 0) {
      c3_free(it->backup);
      it->backup = NULL;
    } else if (it->is_dir) {
      (void)rmdir(it->backup); /* the empty placeholder, when the move aside failed */
    }
  }
}

csal3d_status c3_commit_run(c3_commit *c) {
  csal3d_status s = CSAL3D_OK;
  int i;
  for (i = 0; i < c->n; i++) {
    c3_staged *it = &c->item[i];
    struct stat sb;
    if (lstat(it->target, &sb) == 0) {
      if (S_ISDIR(sb.st_mode) != (it->is_dir != 0)) { /* changed since it was checked */
        s = c3_error(CSAL3D_ERR_IO, "%s: cannot move the finished %s into place: %s",
                     it->target, it->is_dir ? "folder" : "file",
                     it->is_dir ? "a file is there now" : "a folder is there now");
        break;
      }
      s = c3_backup_name(it->target, it->is_dir, &it->backup);
      /* A file is kept by a second link, so that the target never disappears: the
       * rename below replaces it atomically (a plain move where links are not
       * supported). A folder is moved aside. */
      int kept = 0;
      if (s == CSAL3D_OK && !it->is_dir) {
        (void)unlink(it->backup);
        kept = link(it->target, it->backup) == 0;
      }
      if (s == CSAL3D_OK && !kept && rename(it->target, it->backup) != 0) {
        s = c3_error(CSAL3D_ERR_IO, "%s: cannot move the previous %s aside: %s", it->target,
                     it->is_dir ? "folder" : "file", strerror(errno));
        if (it->is_dir) (void)rmdir(it->backup);
        else (void)unlink(it->backup);
        c3_free(it->backup);
        it->backup = NULL;
      }
      if (s != CSAL3D_OK) break;
    }
    int e = c3_commit_fail_at == i + 1 ? EIO : 0;
    if (!e && rename(it->tmp, it->target) != 0) e = errno;
    if (e) {
      s = c3_error(CSAL3D_ERR_IO, "%s: cannot move the finished %s into place: %s", it->target,
                   it->is_dir ? "folder" : "file", strerror(e));
      break;
    }
    it->placed = 1;
  }
  if (s != CSAL3D_OK) {
    for (int k = i; k >= 0; k--)
      if (k < c->n) c3_undo(&c->item[k]);
    c3_commit_discard(c);
    return s;
  }
  for (i = 0; i < c->n; i++) {
    c3_staged *it = &c->item[i];
    if (it->backup) (void)c3_remove_tree(it->backup);
    c3_free(it->backup);
    it->backup = NULL;
    c3_free(it->tmp);
    it->tmp = NULL; /* now the target */
    if (it->is_dir) c3_sync_dir(it->target);
    char *parent = c3_strdup(it->target);
    if (parent) {
      char *slash = strrchr(parent, '/');
      if (slash && slash != parent) *slash = '\0';
      else if (slash) slash[1] = '\0';
      c3_sync_dir(slash ? parent : ".");
      c3_free(parent);
    }
  }
  c3_commit_discard(c);
  return CSAL3D_OK;
}

void c3_commit_discard(c3_commit *c) {
  for (int i = 0; i < c->n; i++) {
    c3_staged *it = &c->item[i];
    if (it->tmp && !it->placed) (void)c3_remove_tree(it->tmp);
    c3_free(it->tmp);
    c3_free(it->target);
    c3_free(it->backup); /* a backup not put back stays on disk: it holds user data */
    memset(it, 0, sizeof *it);
  }
  c->n = 0;
}
