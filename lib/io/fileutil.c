/* Small file helpers of the pipeline's writers; see fileutil.h. */
#include "io/fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"

int c3_ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

void c3_sync_dir(const char *dir) {
  int fd = open(dir && *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
}

static void c3_sync_parent(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    c3_sync_dir(".");
    return;
  }
  if (slash == path) {
    c3_sync_dir("/");
    return;
  }
  char *d = c3_strdup(path);
  if (!d) return;
  d[slash - path] = '\0';
  c3_sync_dir(d);
  c3_free(d);
}

csal3d_status c3_outfile_open(c3_outfile *o, const char *path) {
  memset(o, 0, sizeof *o);
  C3_CHECK_ARG(path && *path, "output path is empty");
  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
  const char *base = slash ? slash + 1 : path;
  C3_CHECK_ARG(*base, "%s: names a folder, not a file", path);
  size_t n = strlen(path) + 16;
  csal3d_status s = c3_alloc(n, "path", (void **)&o->tmp);
  if (s != CSAL3D_OK) return s;
  snprintf(o->tmp, n, "%.*s.%s.tmp.XXXXXX", (int)dirlen, path, base);
  o->path = c3_strdup(path);
  if (!o->path) {
    c3_outfile_abort(o);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  }
  int fd = mkstemp(o->tmp);
  if (fd < 0) {
    int e = errno;
    c3_free(o->tmp);
    o->tmp = NULL;
    c3_outfile_abort(o);
    return c3_error(CSAL3D_ERR_IO, "%s: cannot create a file beside it: %s", path,
                    strerror(e));
  }
  (void)fchmod(fd, 0644);
  o->f = fdopen(fd, "wb");
  if (!o->f) {
    close(fd);
    c3_outfile_abort(o);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: cannot open a stream", path);
  }
  return CSAL3D_OK;
}

void c3_outfile_printf(c3_outfile *o, const char *fmt, ...) {
  if (!o->f) return;
  va_list ap;
  va_start(ap, fmt);
  if (vfprintf(o->f, fmt, ap) < 0) o->failed = errno ? errno : EIO;
  va_end(ap);
}

void c3_outfile_write(c3_outfile *o, const void *data, size_t size) {
  if (!o->f || size == 0) return;
  if (fwrite(data, 1, size, o->f) != size) o->failed = errno ? errno : EIO;
}

csal3d_status c3_outfile_finish(c3_outfile *o) {
  if (!o->f) return c3_error(CSAL3D_ERR_INTERNAL, "output file finished twice");
  int e = o->failed;
  if (!e && fflush(o->f) != 0) e = errno;
  if (!e && fsync(fileno(o->f)) != 0) e = errno;
  if (fclose(o->f) != 0 && !e) e = errno;
  o->f = NULL;
  if (e) {
    csal3d_status s = c3_error(CSAL3D_ERR_IO, "%s: write failed: %s", o->path, strerror(e));
    unlink(o->tmp);
    c3_free(o->tmp);
    o->tmp = NULL;
    return s;
  }
  return CSAL3D_OK;
}

csal3d_status c3_outfile_rename(c3_outfile *o) {
  if (!o->tmp || o->f) return c3_error(CSAL3D_ERR_INTERNAL, "output file not finished");
  if (rename(o->tmp, o->path) != 0) {
    csal3d_status s = c3_error(CSAL3D_ERR_IO, "%s: cannot move the finished file into place: %s",
                               o->path, strerror(errno));
    unlink(o->tmp);
    c3_free(o->tmp);
    o->tmp = NULL;
    return s;
  }
  c3_free(o->tmp);
  o->tmp = NULL;
  c3_sync_parent(o->path);
  return CSAL3D_OK;
}

csal3d_status c3_outfile_commit(c3_outfile *o) {
  csal3d_status s = c3_outfile_finish(o);
  if (s == CSAL3D_OK) s = c3_outfile_rename(o);
  return s;
}

void c3_outfile_abort(c3_outfile *o) {
  if (o->f) fclose(o->f);
  o->f = NULL;
  if (o->tmp) unlink(o->tmp);
  c3_free(o->tmp);
  c3_free(o->path);
  o->tmp = o->path = NULL;
}

csal3d_status c3_path_absolute(const char *path, char **out) {
  *out = NULL;
  C3_CHECK_ARG(path && *path, "empty path");
  if (path[0] == '/') {
    *out = c3_strdup(path);
    return *out ? CSAL3D_OK : c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  }
  char *cwd = getcwd(NULL, 0);
  if (!cwd)
    return c3_error(CSAL3D_ERR_IO, "%s: cannot make the path absolute: %s", path,
                    strerror(errno));
  while (path[0] == '.' && path[1] == '/') {
    path += 2;
    while (*path == '/') path++;
  }
  if (strcmp(path, ".") == 0 || !*path) {
    *out = c3_strdup(cwd);
    free(cwd);
    return *out ? CSAL3D_OK : c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  }
  size_t a = strlen(cwd), b = strlen(path);
  char *d;
  csal3d_status s = c3_alloc(a + b + 2, "path", (void **)&d);
  if (s == CSAL3D_OK) {
    memcpy(d, cwd, a);
    size_t k = a;
    if (a == 0 || cwd[a - 1] != '/') d[k++] = '/';
    memcpy(d + k, path, b + 1);
    *out = d;
  }
  free(cwd);
  return s;
}

/* Reads the open file `in` (named src) to its end, handing each chunk to sink. */
typedef csal3d_status (*c3_sink)(void *arg, const char *buf, size_t n);
static csal3d_status pump(int in, const char *src, c3_sink sink, void *arg) {
  char buf[1 << 16];
  for (;;) {
    ssize_t r = read(in, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return c3_error(CSAL3D_ERR_IO, "%s: read failed: %s", src, strerror(errno));
    if (r == 0) return CSAL3D_OK;
    C3_TRY(sink(arg, buf, (size_t)r));
  }
}

typedef struct fd_sink {
  int fd;
  const char *path;
} fd_sink;
static csal3d_status write_fd(void *arg, const char *buf, size_t n) {
  const fd_sink *o = arg;
  for (size_t done = 0; done < n;) {
    ssize_t w = write(o->fd, buf + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      return c3_error(CSAL3D_ERR_IO, "%s: write failed: %s", o->path,
                      w < 0 ? strerror(errno) : "no progress");
    done += (size_t)w;
  }
  return CSAL3D_OK;
}

typedef struct gz_sink {
  gzFile gz;
  const char *path;
} gz_sink;
static csal3d_status write_gz(void *arg, const char *buf, size_t n) {
  const gz_sink *o = arg;
  if (gzwrite(o->gz, buf, (unsigned)n) == (int)n) return CSAL3D_OK;
  int zerr;
  const char *m = gzerror(o->gz, &zerr);
  return c3_error(CSAL3D_ERR_IO, "%s: write failed: %s", o->path,
                  zerr == Z_ERRNO ? strerror(errno) : m);
}

csal3d_status c3_file_copy(const char *src, const char *dst) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
  int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    int e = errno;
    close(in);
    return c3_error(CSAL3D_ERR_IO, "%s: cannot create: %s", dst, strerror(e));
  }
  fd_sink o = {out, dst};
  csal3d_status s = pump(in, src, write_fd, &o);
  close(in);
  if (s == CSAL3D_OK && fsync(out) != 0)
    s = c3_error(CSAL3D_ERR_IO, "%s: fsync failed: %s", dst, strerror(errno));
  if (close(out) != 0 && s == CSAL3D_OK)
    s = c3_error(CSAL3D_ERR_IO, "%s: close failed: %s", dst, strerror(errno));
  if (s != CSAL3D_OK) unlink(dst);
  return s;
}

csal3d_status c3_file_gzip(const char *src, const char *dst, int level) {
  int in = open(src, O_RDONLY | O_CLOEXEC);
  if (in < 0) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
  char mode[8];
  snprintf(mode, sizeof mode, "wb%d", level < 1 || level > 9 ? 1 : level);
  gzFile gz = gzopen(dst, mode);
  if (!gz) {
    close(in);
    return c3_error(CSAL3D_ERR_IO, "%s: cannot create: %s", dst, strerror(errno));
  }
  gz_sink o = {gz, dst};
  csal3d_status s = pump(in, src, write_gz, &o);
  close(in);
  if (gzclose(gz) != Z_OK && s == CSAL3D_OK)
    s = c3_error(CSAL3D_ERR_IO, "%s: finishing the gzip stream failed", dst);
  if (s != CSAL3D_OK) unlink(dst);
  return s;
}

static int c3_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p) != 0 ? errno : 0;
}

int c3_remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : errno;
  int r = nftw(path, c3_rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return r > 0 ? r : r < 0 ? errno : 0;
}

void c3_csv_field(c3_outfile *o, const char *s) {
  if (!s) return;
  if (!strpbrk(s, ",\"\r\n")) {
    c3_outfile_write(o, s, strlen(s));
    return;
  }
  c3_outfile_write(o, "\"", 1);
  for (const char *p = s; *p; p++) {
    if (*p == '"') c3_outfile_write(o, "\"", 1);
    c3_outfile_write(o, p, 1);
  }
  c3_outfile_write(o, "\"", 1);
}

csal3d_status c3_write_file_atomic(const char *path, const void *data, size_t size) {
  c3_outfile o;
  C3_TRY(c3_outfile_open(&o, path));
  c3_outfile_write(&o, data, size);
  csal3d_status s = c3_outfile_commit(&o);
  c3_outfile_abort(&o);
  return s;
}
