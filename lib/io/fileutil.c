/* Small file helpers of the pipeline's writers; see fileutil.h. */
#include "io/fileutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
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

void c3_sync_parent(const char *path) {
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

/* The PID in a sibling's name ".NAME.TAG.PID.XXXXXX" (NAME and TAG given), or 0 when the
 * name is not of that pattern. */
static long c3_tmp_pid(const char *entry, const char *base, size_t blen, const char *tag) {
  size_t tlen = strlen(tag);
  if (entry[0] != '.' || strncmp(entry + 1, base, blen) || entry[1 + blen] != '.' ||
      strncmp(entry + 2 + blen, tag, tlen) || entry[2 + blen + tlen] != '.')
    return 0;
  const char *p = entry + 3 + blen + tlen;
  long pid = 0;
  int digits = 0;
  for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++) pid = pid * 10 + (*p - '0');
  if (!digits || *p != '.' || strlen(p + 1) != 6) return 0;
  for (const char *q = p + 1; *q; q++)
    if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9')))
      return 0;
  return pid > 0 && pid <= INT32_MAX ? pid : 0;
}

/* Removes what killed writers of `base` left in `dir` (see c3_tmp_beside). */
static void c3_tmp_sweep(const char *dir, const char *base, const char *tag, int is_dir) {
  DIR *d = opendir(*dir ? dir : ".");
  if (!d) return;
  const size_t blen = strlen(base), dlen = strlen(dir);
  const long self = (long)getpid();
  const int dfd = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d))) {
    long pid = c3_tmp_pid(e->d_name, base, blen, tag);
    if (!pid || pid == self || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    struct stat st;
    if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || st.st_uid != geteuid())
      continue;
    if (!is_dir && S_ISREG(st.st_mode)) {
      (void)unlinkat(dfd, e->d_name, 0);
    } else if (is_dir && S_ISDIR(st.st_mode)) {
      char *p;
      size_t n = dlen + strlen(e->d_name) + 2;
      if (c3_alloc(n, "path", (void **)&p) != CSAL3D_OK) continue;
      snprintf(p, n, "%s%s", dir, e->d_name);
      (void)c3_remove_tree(p);
      c3_free(p);
    }
  }
  closedir(d);
}

csal3d_status c3_tmp_beside(const char *path, const char *tag, int is_dir, char **out) {
  *out = NULL;
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') len--; /* a folder named with a final slash */
  const char *slash = NULL;
  for (size_t i = 0; i < len; i++)
    if (path[i] == '/') slash = path + i;
  const size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
  C3_CHECK_ARG(len > dirlen, "%s: names a folder, not a file", path);
  char *dir, *base;
  C3_TRY(c3_alloc(dirlen + 1, "path", (void **)&dir));
  csal3d_status s = c3_alloc(len - dirlen + 1, "path", (void **)&base);
  if (s != CSAL3D_OK) {
    c3_free(dir);
    return s;
  }
  memcpy(dir, path, dirlen);
  dir[dirlen] = '\0';
  memcpy(base, path + dirlen, len - dirlen);
  base[len - dirlen] = '\0';
  c3_tmp_sweep(dir, base, tag, is_dir);
  size_t n = len + strlen(tag) + 32;
  s = c3_alloc(n, "path", (void **)out);
  if (s == CSAL3D_OK)
    snprintf(*out, n, "%s.%s.%s.%ld.XXXXXX", dir, base, tag, (long)getpid());
  c3_free(dir);
  c3_free(base);
  return s;
}

csal3d_status c3_outfile_open(c3_outfile *o, const char *path) {
  memset(o, 0, sizeof *o);
  C3_CHECK_ARG(path && *path, "output path is empty");
  const char *slash = strrchr(path, '/');
  C3_CHECK_ARG(*(slash ? slash + 1 : path), "%s: names a folder, not a file", path);
  C3_TRY(c3_tmp_beside(path, "tmp", 0, &o->tmp));
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
    return c3_error(CSAL3D_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
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

csal3d_status c3_write_all(int fd, const void *data, size_t n, const char *path) {
  const char *p = data;
  for (size_t done = 0; done < n;) {
    size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
    ssize_t w = write(fd, p + done, chunk);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      return c3_error(CSAL3D_ERR_IO, "%s: write failed: %s", path,
                      w < 0 ? strerror(errno) : "no progress");
    done += (size_t)w;
  }
  return CSAL3D_OK;
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
  return c3_write_all(o->fd, buf, n, o->path);
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
