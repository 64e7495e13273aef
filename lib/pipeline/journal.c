/* The journal of a dataset scoring run (format in journal.h). */
#include "pipeline/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "io/fileutil.h"

#define C3_JOURNAL_MAGIC "C3SJRNL1"
#define C3_JOURNAL_REC 0x31434552u
#define C3_JOURNAL_HEADER_FIXED (8 + 4 + 8)
/* Limits that keep a hostile file from asking for absurd allocations. */
#define C3_JOURNAL_MAX_SETTINGS (1u << 24)
#define C3_JOURNAL_MAX_D ((int64_t)1 << 20)
#define C3_JOURNAL_MAX_STRING (1u << 16)

static uint32_t c3_crc(const void *p, size_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  const unsigned char *b = p;
  while (n > 0) {
    uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    c = crc32(c, b, k);
    b += k, n -= k;
  }
  return (uint32_t)c;
}

static void c3_rec_clear(c3_journal_rec *r) {
  c3_free(r->id), c3_free(r->image), c3_free(r->map), c3_free(r->feature);
  memset(r, 0, sizeof *r);
}

void c3_journal_close(c3_journal *j, int remove_file) {
  if (!j) return;
  if (j->fd >= 0) close(j->fd);
  if (remove_file && j->path) unlink(j->path);
  for (size_t i = 0; i < j->n; i++) c3_rec_clear(&j->recs[i]);
  c3_free(j->recs);
  c3_free(j->settings);
  c3_free(j->path);
  memset(j, 0, sizeof *j);
  j->fd = -1;
}

static csal3d_status c3_journal_push(c3_journal *j, c3_journal_rec *r) {
  if (j->n == j->cap) {
    size_t cap = j->cap ? 2 * j->cap : 64;
    c3_journal_rec *nr;
    C3_TRY(c3_alloc_array(cap, sizeof *nr, "journal records", (void **)&nr));
    if (j->n) memcpy(nr, j->recs, j->n * sizeof *nr);
    c3_free(j->recs);
    j->recs = nr;
    j->cap = cap;
  }
  j->recs[j->n++] = *r;
  memset(r, 0, sizeof *r);
  return CSAL3D_OK;
}

/* Reads a u32-prefixed string of the payload at *p (< end); NULL on a bad one. */
static char *c3_take_string(const unsigned char **p, const unsigned char *end, int allow_empty) {
  uint32_t n;
  if ((size_t)(end - *p) < 4) return NULL;
  memcpy(&n, *p, 4);
  *p += 4;
  if (n > C3_JOURNAL_MAX_STRING || (size_t)(end - *p) < n || (!n && !allow_empty)) return NULL;
  if (memchr(*p, '\0', n)) return NULL;
  char *s;
  if (c3_alloc(n + 1, "journal string", (void **)&s) != CSAL3D_OK) return NULL;
  memcpy(s, *p, n);
  s[n] = '\0';
  *p += n;
  return s;
}

/* One record's payload; 0 when it is malformed. */
static int c3_parse_record(const unsigned char *p, size_t len, int64_t d, c3_journal_rec *r) {
  const unsigned char *end = p + len;
  memset(r, 0, sizeof *r);
  r->id = c3_take_string(&p, end, 0);
  if (r->id) r->image = c3_take_string(&p, end, 0);
  if (r->image) r->map = c3_take_string(&p, end, 1);
  if (!r->map || (size_t)(end - p) != 4 + 4 * (size_t)d) {
    c3_rec_clear(r);
    return 0;
  }
  if (!*r->map) {
    c3_free(r->map);
    r->map = NULL;
  }
  memcpy(&r->score, p, 4);
  p += 4;
  if (c3_alloc_array((size_t)(d ? d : 1), sizeof(float), "journal feature",
                     (void **)&r->feature) != CSAL3D_OK) {
    c3_rec_clear(r);
    return 0;
  }
  memcpy(r->feature, p, 4 * (size_t)d);
  int ok = isfinite(r->score);
  for (int64_t k = 0; ok && k < d; k++) ok = isfinite(r->feature[k]);
  if (!ok) c3_rec_clear(r);
  return ok;
}

csal3d_status c3_journal_parse(const void *buf, size_t len, const char *source,
                               c3_journal *out) {
  memset(out, 0, sizeof *out);
  out->fd = -1;
  const unsigned char *b = buf;
  if (len < C3_JOURNAL_HEADER_FIXED + 4 || memcmp(b, C3_JOURNAL_MAGIC, 8))
    return c3_error(CSAL3D_ERR_FORMAT, "%s: not a csal3d scoring journal", source);
  uint32_t sl;
  int64_t d;
  memcpy(&sl, b + 8, 4);
  memcpy(&d, b + 12, 8);
  if (sl > C3_JOURNAL_MAX_SETTINGS || d < 0 || d > C3_JOURNAL_MAX_D ||
      len - (C3_JOURNAL_HEADER_FIXED + 4) < sl)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: damaged journal header", source);
  size_t hl = C3_JOURNAL_HEADER_FIXED + sl;
  uint32_t crc;
  memcpy(&crc, b + hl, 4);
  if (crc != c3_crc(b, hl) || memchr(b + C3_JOURNAL_HEADER_FIXED, '\0', sl))
    return c3_error(CSAL3D_ERR_FORMAT, "%s: damaged journal header (checksum)", source);
  C3_TRY(c3_alloc(sl + 1, "journal settings", (void **)&out->settings));
  memcpy(out->settings, b + C3_JOURNAL_HEADER_FIXED, sl);
  out->settings[sl] = '\0';
  out->d = d;
  size_t at = hl + 4;
  out->valid_bytes = at;
  while (len - at >= 12) {
    uint32_t magic, pl, pcrc;
    memcpy(&magic, b + at, 4);
    memcpy(&pl, b + at + 4, 4);
    if (magic != C3_JOURNAL_REC || pl > len - at - 12) break;
    memcpy(&pcrc, b + at + 8 + pl, 4);
    if (pcrc != c3_crc(b + at + 8, pl)) break;
    c3_journal_rec r;
    if (!c3_parse_record(b + at + 8, pl, d, &r)) break;
    csal3d_status s = c3_journal_push(out, &r);
    if (s != CSAL3D_OK) {
      c3_rec_clear(&r);
      c3_journal_close(out, 0);
      return s;
    }
    at += 12 + pl;
    out->valid_bytes = at;
  }
  return CSAL3D_OK;
}

/* The first key whose value differs between two settings texts, for the message. */
static void c3_settings_difference(const char *a, const char *b, char *why, size_t cap) {
  snprintf(why, cap, "its settings differ");
  json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
  if (json_is_object(ja) && json_is_object(jb)) {
    const char *k;
    json_t *va;
    json_object_foreach(ja, k, va) {
      json_t *vb = json_object_get(jb, k);
      const char *sa = json_string_value(va), *sb = json_string_value(vb);
      if (!sb || !sa || strcmp(sa, sb)) {
        snprintf(why, cap, "it was started with %s = \"%.200s\", this run has \"%.200s\"", k,
                 sa ? sa : "?", sb ? sb : "(none)");
        break;
      }
    }
  }
  json_decref(ja);
  json_decref(jb);
}

static csal3d_status c3_read_file(const char *path, unsigned char **buf, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
    fclose(f);
    return c3_error(CSAL3D_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
  }
  size_t n = (size_t)st.st_size;
  csal3d_status s = c3_alloc(n ? n : 1, "journal", (void **)buf);
  if (s == CSAL3D_OK && fread(*buf, 1, n, f) != n) {
    s = c3_error(CSAL3D_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    c3_free(*buf);
    *buf = NULL;
  }
  fclose(f);
  *len = n;
  return s;
}

csal3d_status c3_journal_open(const char *path, const char *settings, int64_t d, int resume,
                              c3_journal *out) {
  memset(out, 0, sizeof *out);
  out->fd = -1;
  size_t sl = strlen(settings);
  C3_CHECK_ARG(sl <= C3_JOURNAL_MAX_SETTINGS && d >= 0 && d <= C3_JOURNAL_MAX_D,
               "journal: settings or feature width out of range");
  struct stat st;
  int exists = stat(path, &st) == 0;
  if (exists && resume) {
    unsigned char *buf = NULL;
    size_t len = 0;
    C3_TRY(c3_read_file(path, &buf, &len));
    csal3d_status s = c3_journal_parse(buf, len, path, out);
    c3_free(buf);
    if (s != CSAL3D_OK)
      return c3_error(s, "%s; delete it (or do not resume) to score from the start",
                      csal3d_last_error());
    if (strcmp(out->settings, settings) || out->d != d) {
      char why[600];
      c3_settings_difference(out->settings, settings, why, sizeof why);
      c3_journal_close(out, 0);
      return c3_error(CSAL3D_ERR_FORMAT,
                      "%s is the journal of an unfinished scoring run, but %s: run with "
                      "the same settings to continue it, or delete it (or do not resume) "
                      "to score from the start", path, why);
    }
    s = c3_path_absolute(path, &out->path);
    if (s == CSAL3D_OK) {
      out->fd = open(path, O_WRONLY);
      if (out->fd < 0 || ftruncate(out->fd, (off_t)out->valid_bytes) != 0 ||
          lseek(out->fd, 0, SEEK_END) < 0)
        s = c3_error(CSAL3D_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    if (s != CSAL3D_OK) c3_journal_close(out, 0);
    return s;
  }
  /* A new journal: the header written atomically, then opened for appending. */
  size_t hl = C3_JOURNAL_HEADER_FIXED + sl;
  unsigned char *h;
  C3_TRY(c3_alloc(hl + 4, "journal header", (void **)&h));
  memcpy(h, C3_JOURNAL_MAGIC, 8);
  uint32_t sl32 = (uint32_t)sl;
  memcpy(h + 8, &sl32, 4);
  memcpy(h + 12, &d, 8);
  memcpy(h + C3_JOURNAL_HEADER_FIXED, settings, sl);
  uint32_t crc = c3_crc(h, hl);
  memcpy(h + hl, &crc, 4);
  csal3d_status s = c3_write_file_atomic(path, h, hl + 4);
  c3_free(h);
  if (s == CSAL3D_OK) s = c3_alloc(sl + 1, "journal settings", (void **)&out->settings);
  if (s == CSAL3D_OK) {
    memcpy(out->settings, settings, sl + 1);
    out->d = d;
    out->valid_bytes = hl + 4;
    s = c3_path_absolute(path, &out->path);
  }
  if (s == CSAL3D_OK) {
    out->fd = open(path, O_WRONLY | O_APPEND);
    if (out->fd < 0) s = c3_error(CSAL3D_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
  }
  if (s != CSAL3D_OK) c3_journal_close(out, 1);
  return s;
}

const c3_journal_rec *c3_journal_find(const c3_journal *j, const char *id, const char *image) {
  /* The last record of an id wins (a case scored again after a damaged write). */
  for (size_t i = j->n; i-- > 0;)
    if (!strcmp(j->recs[i].id, id)) return strcmp(j->recs[i].image, image) ? NULL : &j->recs[i];
  return NULL;
}

static void c3_put(unsigned char **p, const void *src, size_t n) {
  memcpy(*p, src, n);
  *p += n;
}

csal3d_status c3_journal_append(c3_journal *j, const char *id, const char *image,
                                const char *map, float score, const float *feature) {
  size_t il = strlen(id), gl = strlen(image), ml = map ? strlen(map) : 0;
  C3_CHECK_ARG(il && gl && il <= C3_JOURNAL_MAX_STRING && gl <= C3_JOURNAL_MAX_STRING &&
               ml <= C3_JOURNAL_MAX_STRING, "journal: id or path too long");
  size_t pl = 12 + il + gl + ml + 4 + 4 * (size_t)j->d;
  unsigned char *buf;
  C3_TRY(c3_alloc(pl + 12, "journal record", (void **)&buf));
  unsigned char *p = buf;
  uint32_t magic = C3_JOURNAL_REC, pl32 = (uint32_t)pl, u;
  c3_put(&p, &magic, 4);
  c3_put(&p, &pl32, 4);
  u = (uint32_t)il, c3_put(&p, &u, 4), c3_put(&p, id, il);
  u = (uint32_t)gl, c3_put(&p, &u, 4), c3_put(&p, image, gl);
  u = (uint32_t)ml, c3_put(&p, &u, 4), c3_put(&p, map ? map : "", ml);
  c3_put(&p, &score, 4);
  c3_put(&p, feature, 4 * (size_t)j->d);
  uint32_t crc = c3_crc(buf + 8, pl);
  c3_put(&p, &crc, 4);
  size_t total = pl + 12, done = 0;
  csal3d_status s = CSAL3D_OK;
  while (done < total) {
    ssize_t w = write(j->fd, buf + done, total - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      s = c3_error(CSAL3D_ERR_IO, "%s: write failed: %s", j->path, w < 0 ? strerror(errno) : "no progress");
      break;
    }
    done += (size_t)w;
  }
  if (s == CSAL3D_OK && fdatasync(j->fd) != 0)
    s = c3_error(CSAL3D_ERR_IO, "%s: flushing to disk failed: %s", j->path, strerror(errno));
  if (s == CSAL3D_OK) {
    /* Keep it in memory too (the caller may look it up again). */
    c3_journal_rec r;
    memset(&r, 0, sizeof r);
    if (!c3_parse_record(buf + 8, pl, j->d, &r))
      s = c3_error(CSAL3D_ERR_INTERNAL, "journal: a record does not read back");
    else if ((s = c3_journal_push(j, &r)) != CSAL3D_OK)
      c3_rec_clear(&r);
    j->valid_bytes += total;
  } else if (done > 0) {
    /* A partial record: cut it off so the next one starts clean. */
    if (ftruncate(j->fd, (off_t)j->valid_bytes) != 0) {
    }
  }
  c3_free(buf);
  return s;
}
