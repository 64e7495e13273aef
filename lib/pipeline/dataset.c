/* Datasets: lazy case lists from a folder, a decathlon / nnU-Net v2 dataset.json or a text
 * file (a list of paths or a CSV with a header).
 *
 * Every source adds cases with their image paths and a "stem" (the first image's path
 * without its extension, and without nnU-Net's _NNNN channel suffix where the layout
 * uses it); ids are assigned once all cases are known (c3_assign_ids): the stem's file
 * name, or as many of its last folders as make ids of repeated names differ. Duplicates
 * are found by sorting, so opening is O(n log n) in the cases. Paths and ids live in an
 * arena freed with the dataset: a case costs no allocation of its own. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/dataset.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "io/fileutil.h"
#include "pipeline/scores.h"
#include "volume/volume_internal.h"

/* The longest line of a list file, and how deep a folder scan looks for subjects. */
#define C3_LIST_MAX_LINE 65536
#define C3_SCAN_DEPTH 8
/* The most columns of a list file's CSV header. */
#define C3_LIST_MAX_COLUMNS 256
/* The arena's block size. */
#define C3_ARENA_BLOCK ((size_t)256 * 1024)

/* A case; its strings and image list are in the dataset's arena. */
typedef struct c3_case {
  char *id;
  int nimages;
  char **images;
  char *label; /* NULL: none */
  char *stem;  /* while opening: what the id is derived from (NULL: the id was given) */
} c3_case;

typedef struct c3_block {
  struct c3_block *next;
  size_t used, cap;
  char data[];
} c3_block;

struct csal3d_dataset {
  c3_case *cases;
  size_t n, cap;
  csal3d_modality modality;
  char *source;     /* the absolute path it was opened from */
  c3_block *arena;  /* the cases' strings */
  char *cwd;        /* while opening: the working folder (from getcwd) */
};

/* ---- the arena ---- */

/* n bytes (aligned for pointers) that live as long as the dataset; NULL: out of memory
 * (message set). */
static void *c3_arena(csal3d_dataset *ds, size_t n) {
  n = (n + 7) & ~(size_t)7;
  c3_block *b = ds->arena;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > C3_ARENA_BLOCK ? n : C3_ARENA_BLOCK;
    if (c3_alloc(sizeof *b + cap, "dataset paths", (void **)&b) != CSAL3D_OK) return NULL;
    b->next = ds->arena;
    b->used = 0;
    b->cap = cap;
    ds->arena = b;
  }
  void *p = b->data + b->used;
  b->used += n;
  return p;
}

static char *c3_arena_strndup(csal3d_dataset *ds, const char *s, size_t n) {
  char *d = c3_arena(ds, n + 1);
  if (d) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static char *c3_arena_strdup(csal3d_dataset *ds, const char *s) {
  return c3_arena_strndup(ds, s, strlen(s));
}

/* ---- small helpers ---- */

/* dir/rel in the arena (rel when absolute or dir is empty); NULL: out of memory. */
static char *c3_join(csal3d_dataset *ds, const char *dir, const char *rel) {
  if (rel[0] == '/' || !dir || !*dir) return c3_arena_strdup(ds, rel);
  while (rel[0] == '.' && rel[1] == '/') rel += 2;
  size_t a = strlen(dir), b = strlen(rel);
  char *d = c3_arena(ds, a + b + 2);
  if (!d) return NULL;
  memcpy(d, dir, a);
  size_t k = a;
  if (a && dir[a - 1] != '/') d[k++] = '/';
  memcpy(d + k, rel, b + 1);
  return d;
}

static char *c3_dirname(csal3d_dataset *ds, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return c3_arena_strdup(ds, ".");
  return c3_arena_strndup(ds, path, slash == path ? 1 : (size_t)(slash - path));
}

static const char *c3_basename(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static int c3_is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int c3_is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Image extensions: NIfTI files and NIfTI/Analyze pairs (.hdr + .img). The loader takes
 * a pair by its .hdr, so an .img path stands for the .hdr beside it. */
static const char *const c3_exts[] = {".nii.gz", ".nii", ".hdr.gz", ".hdr", ".img.gz", ".img"};
enum { C3_EXT_NII_GZ, C3_EXT_NII, C3_EXT_HDR_GZ, C3_EXT_HDR, C3_EXT_IMG_GZ, C3_EXT_IMG, C3_NEXT };

/* Which extension a name ends in (case-insensitively, with something before it), or -1. */
static int c3_ext_of(const char *name) {
  size_t n = strlen(name);
  for (int i = 0; i < C3_NEXT; i++) {
    size_t e = strlen(c3_exts[i]);
    if (n > e && name[n - e - 1] != '/' && !strcasecmp(name + n - e, c3_exts[i])) return i;
  }
  return -1;
}

/* The path joined to dir, an .img of a pair replaced by its .hdr (case kept). */
static char *c3_image_path(csal3d_dataset *ds, const char *dir, const char *rel) {
  char *p = c3_join(ds, dir, rel);
  int e = p ? c3_ext_of(p) : -1;
  if (e == C3_EXT_IMG || e == C3_EXT_IMG_GZ) {
    char *x = p + strlen(p) - strlen(c3_exts[e]) + 1; /* "img" */
    static const char hdr[] = "hdr";
    for (int k = 0; k < 3; k++)
      x[k] = isupper((unsigned char)x[k]) ? (char)toupper(hdr[k]) : hdr[k];
  }
  return p;
}

/* nnU-Net's channel number when the file name of stem (a path without extension) ends
 * in _NNNN after at least one character, else -1. */
static int c3_suffix_channel(const char *stem) {
  const char *b = c3_basename(stem);
  size_t n = strlen(b);
  if (n <= 5 || b[n - 5] != '_') return -1;
  for (size_t k = n - 4; k < n; k++)
    if (!isdigit((unsigned char)b[k])) return -1;
  return atoi(b + n - 4);
}

/* A copy of path without its image extension, and without the channel suffix when
 * strip_suffix (NULL: out of memory). */
static char *c3_stem_of(csal3d_dataset *ds, const char *path, int strip_suffix) {
  int e = c3_ext_of(path);
  size_t n = strlen(path) - (e >= 0 ? strlen(c3_exts[e]) : 0);
  char *s = c3_arena_strndup(ds, path, n);
  if (s && strip_suffix && c3_suffix_channel(s) >= 0) s[n - 5] = '\0';
  return s;
}

/* An id or path quoted for a message: control characters as \n, \t, \xNN. */
static const char *c3_printable(const char *s, char *buf, size_t cap) {
  size_t k = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && k + 5 < cap; p++) {
    if (*p >= 0x20 && *p != 0x7f) buf[k++] = (char)*p;
    else if (*p == '\n') buf[k++] = '\\', buf[k++] = 'n';
    else if (*p == '\t') buf[k++] = '\\', buf[k++] = 't';
    else k += (size_t)snprintf(buf + k, cap - k, "\\x%02x", *p);
  }
  buf[k] = '\0';
  return buf;
}

CSAL3D_API void csal3d_dataset_free(csal3d_dataset *ds) {
  if (!ds) return;
  for (c3_block *b = ds->arena, *next; b; b = next) {
    next = b->next;
    c3_free(b);
  }
  free(ds->cwd);
  c3_free(ds->cases);
  c3_free(ds->source);
  c3_free(ds);
}

/* Adds an image path (in the arena; NULL: out of memory) to a case being built. */
static csal3d_status c3_case_add_image(csal3d_dataset *ds, c3_case *c, char *image) {
  if (!image) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory");
  if (c->nimages >= C3_SCORES_MAX_IMAGES)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: more than %d image files in one case", image,
                    C3_SCORES_MAX_IMAGES);
  if ((c->nimages & (c->nimages - 1)) == 0) { /* 0, 1, 2, 4, ...: full, double it */
    char **imgs = c3_arena(ds, (size_t)(c->nimages ? 2 * c->nimages : 1) * sizeof *imgs);
    if (!imgs) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory");
    if (c->nimages) memcpy(imgs, c->images, (size_t)c->nimages * sizeof *imgs);
    c->images = imgs;
  }
  c->images[c->nimages++] = image;
  return CSAL3D_OK;
}

/* Appends a built case (at least one image, a stem or an id). */
static csal3d_status c3_push_case(csal3d_dataset *ds, const c3_case *c) {
  csal3d_status s = CSAL3D_OK;
  if (!c->id && !c->stem) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory");
  if (s == CSAL3D_OK && ds->n == ds->cap) {
    size_t cap = ds->cap ? 2 * ds->cap : 64;
    c3_case *nc;
    s = c3_alloc_array(cap, sizeof *nc, "case list", (void **)&nc);
    if (s == CSAL3D_OK) {
      if (ds->n) memcpy(nc, ds->cases, ds->n * sizeof *nc);
      c3_free(ds->cases);
      ds->cases = nc;
      ds->cap = cap;
    }
  }
  if (s == CSAL3D_OK) ds->cases[ds->n++] = *c;
  return s;
}

/* ---- case ids ---- */

/* The absolute form of path with "." and ".." resolved lexically, in the arena. */
static csal3d_status c3_normalize(csal3d_dataset *ds, const char *path, char **res) {
  const char *cwd = "";
  if (path[0] != '/') {
    if (!ds->cwd && !(ds->cwd = getcwd(NULL, 0)))
      return c3_error(CSAL3D_ERR_IO, "%s: cannot make the path absolute: %s", path,
                      strerror(errno));
    cwd = ds->cwd;
  }
  char *out = c3_arena(ds, strlen(cwd) + strlen(path) + 3);
  if (!out) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory for case ids");
  size_t k = 0;
  for (int part = 0; part < 2; part++)
    for (const char *p = part ? path : cwd; *p;) {
      while (*p == '/') p++;
      const char *e = p;
      while (*e && *e != '/') e++;
      size_t len = (size_t)(e - p);
      if (len == 2 && p[0] == '.' && p[1] == '.') {
        while (k > 0 && out[k - 1] != '/') k--;
        if (k > 0) k--;
      } else if (len && !(len == 1 && p[0] == '.')) {
        out[k++] = '/';
        memcpy(out + k, p, len);
        k += len;
      }
      p = e;
    }
  if (k == 0) out[k++] = '/';
  out[k] = '\0';
  *res = out;
  return CSAL3D_OK;
}

typedef struct c3_idref {
  const char *id;  /* the id, or the tail of the stem being tried as one */
  size_t index;    /* the case */
  int exhausted;   /* the tail is the whole stem */
  int grow;        /* to take one more folder */
} c3_idref;

static int c3_idref_cmp(const void *a, const void *b) {
  const c3_idref *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Gives each case without an id one (see csal3d_dataset_open) and checks that ids are
 * valid and unique. */
static csal3d_status c3_assign_ids(csal3d_dataset *ds, const char *source) {
  const size_t n = ds->n;
  c3_idref *r;
  C3_TRY(c3_alloc_array(n ? n : 1, sizeof *r, "case ids", (void **)&r));
  csal3d_status s = CSAL3D_OK;
  for (size_t i = 0; i < n && s == CSAL3D_OK; i++) {
    c3_case *c = &ds->cases[i];
    r[i] = (c3_idref){c->id, i, 1, 0};
    if (c->id) continue;
    char *norm = NULL;
    if ((s = c3_normalize(ds, c->stem, &norm)) != CSAL3D_OK) break;
    c->stem = norm;
    r[i].id = strrchr(norm, '/') + 1;
    r[i].exhausted = r[i].id == norm + 1;
  }
  if (s == CSAL3D_OK && n) qsort(r, n, sizeof *r, c3_idref_cmp);
  /* Repeated file names: their ids take one more folder each round until they differ. */
  for (size_t i = 0; s == CSAL3D_OK && i < n;) {
    size_t j = i + 1;
    while (j < n && !strcmp(r[j].id, r[i].id)) j++;
    for (;;) {
      /* Each id that is still repeated (and can) takes the next folder up; an id that no
       * longer repeats keeps its depth: tails of different depths never collide. */
      int progress = 0;
      for (size_t k = i; k < j; k++) {
        const char *stem = ds->cases[r[k].index].stem;
        int dup = (k > i && !strcmp(r[k].id, r[k - 1].id)) ||
                  (k + 1 < j && !strcmp(r[k].id, r[k + 1].id));
        r[k].grow = dup && stem && !r[k].exhausted;
        progress |= r[k].grow;
      }
      if (!progress) break; /* what repeats now is the same file twice: reported below */
      for (size_t k = i; k < j; k++) {
        if (!r[k].grow) continue;
        const char *stem = ds->cases[r[k].index].stem;
        const char *t = r[k].id - 1; /* the '/' before the tail */
        while (t > stem && t[-1] != '/') t--;
        r[k].id = t;
        r[k].exhausted = t == stem + 1;
      }
      qsort(r + i, j - i, sizeof *r, c3_idref_cmp);
    }
    i = j;
  }
  for (size_t i = 0; s == CSAL3D_OK && i < n; i++) {
    c3_case *c = &ds->cases[r[i].index];
    if (!c->id) c->id = (char *)r[i].id; /* the tail of its stem, in the arena */
    const char *why = c3_case_id_problem(c->id);
    if (why) {
      char b1[256], b2[512];
      s = c3_error(CSAL3D_ERR_FORMAT, "%s: the case id '%s' of %s %s; rename the file or give "
                   "the case an id", source, c3_printable(c->id, b1, sizeof b1),
                   c3_printable(c->images[0], b2, sizeof b2), why);
    }
  }
  for (size_t i = 0; i < n; i++) ds->cases[i].stem = NULL;
  /* Unique, whatever their origin (ids given by a CSV, derived ones). */
  if (s == CSAL3D_OK) {
    for (size_t i = 0; i < n; i++) r[i] = (c3_idref){ds->cases[i].id, i, 0, 0};
    if (n) qsort(r, n, sizeof *r, c3_idref_cmp);
    for (size_t i = 1; s == CSAL3D_OK && i < n; i++)
      if (!strcmp(r[i - 1].id, r[i].id))
        s = c3_error(CSAL3D_ERR_FORMAT,
                     "%s: case id '%s' appears twice (entries %zu and %zu: %s and %s)", source,
                     r[i].id, r[i - 1].index, r[i].index, ds->cases[r[i - 1].index].images[0],
                     ds->cases[r[i].index].images[0]);
  }
  c3_free(r);
  return s;
}

static int c3_case_id_cmp(const void *a, const void *b) {
  return strcmp(((const c3_case *)a)->id, ((const c3_case *)b)->id);
}

/* ---- folders ---- */

typedef struct c3_entry { /* strings in the arena */
  char *path;
  char *stem;  /* the path without its extension (and channel suffix once grouped) */
  int channel; /* _NNNN, else -1 */
} c3_entry;

typedef struct c3_entries {
  c3_entry *e;
  size_t n, cap;
} c3_entries;

static int c3_entry_cmp(const void *a, const void *b) {
  const c3_entry *x = a, *y = b;
  int c = strcmp(x->stem, y->stem);
  return c ? c : (x->channel > y->channel) - (x->channel < y->channel);
}

/* A folder being listed and the folders above it (to stop at symbolic-link loops). */
typedef struct c3_dirid {
  dev_t dev;
  ino_t ino;
  const struct c3_dirid *up;
} c3_dirid;

/* Adds the image files of dir (.nii, .nii.gz, .hdr, .hdr.gz; hidden ones, folders and
 * special files skipped; with file_ending only names ending in it) and, while depth > 0,
 * those of its subfolders (followed through links, never into a folder above). */
static csal3d_status c3_list_images(csal3d_dataset *ds, c3_entries *es, const char *dir,
                                    const char *file_ending, int depth, const c3_dirid *up) {
  DIR *d = opendir(dir);
  if (!d) return c3_error(CSAL3D_ERR_IO, "%s: cannot list the folder: %s", dir, strerror(errno));
  csal3d_status s = CSAL3D_OK;
  struct dirent *de;
  while (s == CSAL3D_OK && (de = readdir(d))) {
    const char *name = de->d_name;
    const unsigned char type = de->d_type;
    if (name[0] == '.' || (type != DT_UNKNOWN && type != DT_REG && type != DT_LNK &&
                           type != DT_DIR))
      continue;
    int e = c3_ext_of(name);
    int image = type != DT_DIR && e >= 0 && e != C3_EXT_IMG && e != C3_EXT_IMG_GZ;
    if (image && file_ending) {
      size_t a = strlen(name), b = strlen(file_ending);
      image = a > b && !strcmp(name + a - b, file_ending);
    }
    if (!image && (depth <= 0 || type == DT_REG)) continue;
    char *path = c3_join(ds, dir, name);
    if (!path) {
      s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: out of memory listing the folder", dir);
      break;
    }
    if (!image) {
      struct stat st;
      if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
      const c3_dirid *a = up;
      while (a && !(a->dev == st.st_dev && a->ino == st.st_ino)) a = a->up;
      c3_dirid here = {st.st_dev, st.st_ino, up};
      if (!a) s = c3_list_images(ds, es, path, file_ending, depth - 1, &here);
      continue;
    }
    if (es->n == es->cap) {
      size_t nc = es->cap ? 2 * es->cap : 64;
      c3_entry *ne;
      s = c3_calloc_array(nc, sizeof *ne, "folder entries", (void **)&ne);
      if (s != CSAL3D_OK) break;
      if (es->n) memcpy(ne, es->e, es->n * sizeof *ne);
      c3_free(es->e);
      es->e = ne, es->cap = nc;
    }
    c3_entry *x = &es->e[es->n++];
    x->path = path;
    x->stem = c3_stem_of(ds, path, 0);
    if (!x->stem) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: out of memory listing the folder", dir);
    else x->channel = c3_suffix_channel(x->stem);
  }
  closedir(d);
  return s;
}

/* Whether label_dir holds a label for file name `name` (its first len bytes) ending in
 * file_ending (when not NULL), .nii.gz, .nii, .hdr or .hdr.gz: 1 with its path in buf. */
static int c3_find_label(const char *label_dir, const char *name, size_t len,
                         const char *file_ending, char *buf, size_t cap) {
  const char *ends[] = {file_ending, ".nii.gz", ".nii", ".hdr", ".hdr.gz"};
  for (size_t x = 0; x < sizeof ends / sizeof ends[0]; x++)
    if (ends[x] && (size_t)snprintf(buf, cap, "%s/%.*s%s", label_dir, (int)len, name,
                                    ends[x]) < cap && c3_is_file(buf))
      return 1;
  return 0;
}

/* Whether an imagesTr/ without a dataset.json is laid out as nnU-Net's: every image
 * name ends in _NNNN and labelsTr/ names labels after the names without it (X.nii.gz for
 * X_0000.nii.gz), never after the full names. */
static int c3_nnunet_evidence(const c3_entries *es, const char *label_dir) {
  if (!label_dir || !es->n) return 0;
  for (size_t i = 0; i < es->n; i++)
    if (es->e[i].channel < 0) return 0;
  int stripped = 0;
  char buf[4200];
  for (size_t i = 0; i < es->n; i++) {
    const char *b = c3_basename(es->e[i].stem);
    size_t len = strlen(b);
    if (c3_find_label(label_dir, b, len, NULL, buf, sizeof buf)) return 0;
    stripped = stripped || c3_find_label(label_dir, b, len - 5, NULL, buf, sizeof buf);
  }
  return stripped;
}

/* The listed files as cases: with `suffix`, files X_0000, X_0001, ... of one folder form
 * one case X; labels from label_dir (may be NULL). Cases are sorted by id later. */
static csal3d_status c3_cases_from_entries(csal3d_dataset *ds, c3_entries *es, int suffix,
                                           const char *label_dir, const char *file_ending,
                                           const char *dir) {
  c3_entry *e = es->e;
  const size_t n = es->n;
  for (size_t i = 0; i < n; i++) {
    if (!suffix) e[i].channel = -1;
    else if (e[i].channel >= 0) e[i].stem[strlen(e[i].stem) - 5] = '\0';
  }
  if (n) qsort(e, n, sizeof *e, c3_entry_cmp);
  csal3d_status s = CSAL3D_OK;
  for (size_t i = 0; s == CSAL3D_OK && i < n;) {
    size_t j = i + 1;
    while (j < n && !strcmp(e[j].stem, e[i].stem)) j++;
    /* Files i..j-1 share a stem: channels 0, 1, ... in order, or a single file. */
    for (size_t k = i; j - i > 1 && k < j && s == CSAL3D_OK; k++) {
      if (!suffix || (e[i].channel < 0 && e[i + 1].channel < 0))
        s = c3_error(CSAL3D_ERR_FORMAT, "%s: %s and %s are one case under two extensions; "
                     "remove one", dir, e[i].path, e[i + 1].path);
      else if (e[k].channel != (int)(k - i))
        s = c3_error(CSAL3D_ERR_FORMAT,
                     "%s: case '%s' has %s files; expected channel files %s_0000, %s_0001, ... "
                     "without gaps (%s)", dir, c3_basename(e[i].stem),
                     e[k].channel < 0 ? "both plain and channel" : "non-consecutive channel",
                     c3_basename(e[i].stem), c3_basename(e[i].stem), e[k].path);
    }
    if (s != CSAL3D_OK) break;
    c3_case c = {.stem = e[i].stem};
    char buf[4200];
    const char *b = c3_basename(e[i].stem);
    if (label_dir && c3_find_label(label_dir, b, strlen(b), file_ending, buf, sizeof buf) &&
        !(c.label = c3_arena_strdup(ds, buf)))
      s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory");
    for (size_t k = i; s == CSAL3D_OK && k < j; k++) s = c3_case_add_image(ds, &c, e[k].path);
    if (s == CSAL3D_OK) s = c3_push_case(ds, &c);
    i = j;
  }
  return s;
}

/* A folder of images as cases. nnunet: 1 the layout is nnU-Net's (channel suffixes
 * grouped unless the option says never), 0 it is not (grouped only when it says always),
 * -1 decide from labelsTr (c3_nnunet_evidence). depth > 0: when the folder holds no
 * image, look in its subfolders (one folder per subject). */
static csal3d_status c3_scan_folder(csal3d_dataset *ds, const char *dir, const char *label_dir,
                                    const char *file_ending, int mode, int nnunet, int depth) {
  c3_entries es = {0};
  csal3d_status s = c3_list_images(ds, &es, dir, file_ending, 0, NULL);
  struct stat st;
  if (s == CSAL3D_OK && es.n == 0 && depth > 0 && stat(dir, &st) == 0) {
    c3_dirid top = {st.st_dev, st.st_ino, NULL};
    s = c3_list_images(ds, &es, dir, file_ending, depth, &top);
  }
  if (s == CSAL3D_OK) {
    if (nnunet < 0) nnunet = c3_nnunet_evidence(&es, label_dir);
    int suffix = mode == CSAL3D_CHANNEL_SUFFIX_ALWAYS ||
                 (mode == CSAL3D_CHANNEL_SUFFIX_AUTO && nnunet);
    s = c3_cases_from_entries(ds, &es, suffix, label_dir, file_ending, dir);
  }
  c3_free(es.e);
  return s;
}

/* ---- dataset.json ---- */

static csal3d_modality c3_modality_from_name(const char *name) {
  if (!name) return CSAL3D_MODALITY_NONE;
  char up[32];
  size_t i = 0;
  for (; name[i] && i < sizeof up - 1; i++) up[i] = (char)toupper((unsigned char)name[i]);
  up[i] = '\0';
  if (!strncmp(up, "CT", 2)) return CSAL3D_MODALITY_CT;
  static const char *mri[] = {"MR", "T1", "T2", "FLAIR", "ADC", "DWI", "PD", "SWI", "DTI",
                              "BOLD", "ZSCORE"};
  for (size_t k = 0; k < sizeof mri / sizeof mri[0]; k++)
    if (!strncmp(up, mri[k], strlen(mri[k]))) return CSAL3D_MODALITY_MRI;
  return CSAL3D_MODALITY_NONE;
}

/* One decathlon entry: "image" is a path or a list of channel paths. */
static csal3d_status c3_json_entry(csal3d_dataset *ds, const char *dir, json_t *item,
                                   int strip, const char *json_path, const char *list,
                                   size_t i) {
  json_t *img = json_is_object(item) ? json_object_get(item, "image") : item;
  json_t *lab = json_is_object(item) ? json_object_get(item, "label") : NULL;
  int ok = (json_is_string(img) || (json_is_array(img) && json_array_size(img) > 0)) &&
           (!lab || json_is_string(lab) || json_is_null(lab));
  for (size_t k = 0; ok && json_is_array(img) && k < json_array_size(img); k++)
    ok = json_is_string(json_array_get(img, k));
  if (!ok)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: \"%s\" entry %zu needs an \"image\" path or a list of channel paths "
                    "(and a \"label\" path or none)", json_path, list, i);
  c3_case c = {0};
  size_t count = json_is_array(img) ? json_array_size(img) : 1;
  for (size_t k = 0; k < count; k++) {
    const char *p = json_string_value(json_is_array(img) ? json_array_get(img, k) : img);
    C3_TRY(c3_case_add_image(ds, &c, c3_image_path(ds, dir, p)));
  }
  if (json_is_string(lab) && !(c.label = c3_image_path(ds, dir, json_string_value(lab))))
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory");
  c.stem = c3_stem_of(ds, c.images[0], strip);
  return c3_push_case(ds, &c);
}

static csal3d_status c3_parse_json(csal3d_dataset *ds, const char *json_path, const char *split,
                                   int mode, int *sorted) {
  json_error_t err;
  json_t *root = json_load_file(json_path, JSON_REJECT_DUPLICATES, &err);
  if (!root) {
    if (!c3_is_file(json_path))
      return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", json_path, strerror(errno));
    return c3_error(CSAL3D_ERR_FORMAT, "%s:%d:%d: %s", json_path, err.line, err.column, err.text);
  }
  csal3d_status s = CSAL3D_OK;
  char *dir = c3_dirname(ds, json_path);
  if (!dir) {
    json_decref(root);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: out of memory", json_path);
  }
  if (!json_is_object(root)) {
    s = c3_error(CSAL3D_ERR_FORMAT, "%s: expected a JSON object at the top", json_path);
    goto done;
  }
  json_t *mod = json_object_get(root, "modality");
  json_t *channels = json_object_get(root, "channel_names");
  if (!json_is_object(mod)) mod = channels;
  if (json_is_object(mod)) ds->modality = c3_modality_from_name(json_string_value(json_object_get(mod, "0")));
  const int test = !strcmp(split, "test");
  json_t *list = json_object_get(root, test ? "test" : "training");
  json_t *ending = json_object_get(root, "file_ending");
  if (json_is_array(list)) {
    /* Decathlon: "training": [{"image": ..., "label": ...}], "test": ["..."]; the cases
     * as listed, ids from the file names as they are (unless the option says always). */
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
      s = c3_json_entry(ds, dir, item, mode == CSAL3D_CHANNEL_SUFFIX_ALWAYS, json_path,
                        test ? "test" : "training", i);
      if (s != CSAL3D_OK) goto done;
    }
  } else if (json_is_string(ending) || json_is_object(channels)) {
    /* nnU-Net v2: cases are the files of imagesTr (imagesTs) with the file ending. */
    char *images = c3_join(ds, dir, test ? "imagesTs" : "imagesTr");
    char *labels = test ? NULL : c3_join(ds, dir, "labelsTr");
    if (!images || (!test && !labels)) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    else s = c3_scan_folder(ds, images, labels && c3_is_dir(labels) ? labels : NULL,
                            json_string_value(ending), mode, 1, 0);
    *sorted = 1;
  } else {
    s = c3_error(CSAL3D_ERR_FORMAT,
                 "%s: neither a decathlon dataset.json (a \"%s\" list) nor an nnU-Net v2 one "
                 "(\"file_ending\", \"channel_names\")", json_path, test ? "test" : "training");
  }
done:
  json_decref(root);
  return s;
}

/* ---- text files ---- */

static char *c3_trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
  return s;
}

/* Splits a line in place into fields at ',' or tab, CSV-style: a field may be quoted
 * ("a, b" and "" for a quote); unquoted fields are trimmed. Returns the field count, or
 * -1 (an unterminated quote, or text after a closing quote), or -2 (more than max). */
static int c3_split_fields(char *line, char **f, int max) {
  int n = 0;
  char *r = line;
  for (;;) {
    if (n == max) return -2;
    while (*r == ' ') r++;
    char *w = r, *start = r;
    if (*r == '"') {
      r++;
      for (;;) {
        if (!*r) return -1;
        if (*r == '"' && r[1] == '"') *w++ = '"', r += 2;
        else if (*r == '"') break;
        else *w++ = *r++;
      }
      r++;
      while (*r == ' ') r++;
      if (*r && *r != ',' && *r != '\t') return -1;
    } else {
      while (*r && *r != ',' && *r != '\t') *w++ = *r++;
      while (w > start && isspace((unsigned char)w[-1])) w--;
    }
    char sep = *r;
    *w = '\0';
    f[n++] = start;
    if (!sep) return n;
    r++;
  }
}

/* The columns of a list file's CSV header (-1: absent). */
typedef struct c3_columns {
  int id, image, label, nchan;
  int chan[C3_SCORES_MAX_IMAGES]; /* image_0, image_1, ... (by number) */
  int count;
} c3_columns;

/* Recognises a header: no field is an image path and one is "image" or "image_N" /
 * "imageN". 0: not a header; 1: a header read into *c; -1: a bad header (message set). */
static int c3_read_header(char **f, int nf, c3_columns *c, const char *path, int lineno) {
  int named = 0;
  for (int k = 0; k < nf; k++) {
    if (c3_ext_of(f[k]) >= 0) return 0;
    named |= !strncasecmp(f[k], "image", 5);
  }
  if (!named) return 0;
  int num[C3_SCORES_MAX_IMAGES];
  *c = (c3_columns){.id = -1, .image = -1, .label = -1, .count = nf};
  for (int k = 0; k < nf; k++) {
    const char *x = f[k];
    int *role = NULL;
    if (!strcasecmp(x, "id") || !strcasecmp(x, "case") || !strcasecmp(x, "case_id")) role = &c->id;
    else if (!strcasecmp(x, "image")) role = &c->image;
    else if (!strcasecmp(x, "label") || !strcasecmp(x, "seg") || !strcasecmp(x, "segmentation"))
      role = &c->label;
    else if (!strncasecmp(x, "image", 5)) {
      const char *d = x + 5 + (x[5] == '_');
      char *end;
      long v = strtol(d, &end, 10);
      if (!isdigit((unsigned char)*d) || *end || v > 9999) continue; /* not a channel column */
      if (c->nchan == C3_SCORES_MAX_IMAGES) {
        c3_error(CSAL3D_ERR_FORMAT, "%s:%d: more than %d image columns", path, lineno,
                 C3_SCORES_MAX_IMAGES);
        return -1;
      }
      int at = c->nchan++;
      while (at > 0 && num[at - 1] > v) num[at] = num[at - 1], c->chan[at] = c->chan[at - 1], at--;
      if (at > 0 && num[at - 1] == v) {
        c3_error(CSAL3D_ERR_FORMAT, "%s:%d: two columns for image %ld", path, lineno, v);
        return -1;
      }
      num[at] = (int)v, c->chan[at] = k;
      continue;
    }
    if (!role) continue; /* other columns are ignored */
    if (*role >= 0) {
      c3_error(CSAL3D_ERR_FORMAT, "%s:%d: columns '%s' and '%s' say the same", path, lineno,
               f[*role], x);
      return -1;
    }
    *role = k;
  }
  if ((c->image >= 0) == (c->nchan > 0)) {
    c3_error(CSAL3D_ERR_FORMAT, "%s:%d: the header needs either an 'image' column or "
             "'image_0', 'image_1', ... columns", path, lineno);
    return -1;
  }
  return 1;
}

/* Adds image paths to a case from one cell: several when split (channels separated by
 * ';'). */
static csal3d_status c3_cell_images(csal3d_dataset *ds, c3_case *c, char *cell, int split,
                                    const char *dir, const char *path, int lineno) {
  for (char *p = cell;;) {
    char *semi = split ? strchr(p, ';') : NULL;
    if (semi) *semi = '\0';
    char *t = c3_trim(p);
    if (!*t || c3_ext_of(t) < 0)
      return c3_error(CSAL3D_ERR_FORMAT, "%s:%d: '%s' is not a .nii, .nii.gz, .hdr or .img "
                      "path (a CSV starts with a header line naming its columns: image or "
                      "image_0, image_1, ...; label; id)", path, lineno, t);
    C3_TRY(c3_case_add_image(ds, c, c3_image_path(ds, dir, t)));
    if (!semi) return CSAL3D_OK;
    p = semi + 1;
  }
}

/* One line of a list: IMAGE[;IMAGE...][,LABEL] without a header, else the header's
 * columns. */
static csal3d_status c3_list_row(csal3d_dataset *ds, char **f, int nf, const c3_columns *h,
                                 int strip, const char *dir, const char *path, int lineno) {
  if (!h && nf > 2)
    return c3_error(CSAL3D_ERR_FORMAT, "%s:%d: %d fields; a line is IMAGE[;IMAGE...][,LABEL] "
                    "(for more columns, start the file with a header line: image,label)", path,
                    lineno, nf);
  if (h && nf > h->count)
    return c3_error(CSAL3D_ERR_FORMAT, "%s:%d: %d fields, the header has %d", path, lineno, nf,
                    h->count);
  c3_case c = {0};
  char empty[1] = "";
  csal3d_status s = CSAL3D_OK;
  if (!h) {
    s = c3_cell_images(ds, &c, f[0], 1, dir, path, lineno);
  } else if (h->image >= 0) {
    s = c3_cell_images(ds, &c, h->image < nf ? f[h->image] : empty, 1, dir, path, lineno);
  } else {
    for (int k = 0; k < h->nchan && s == CSAL3D_OK; k++)
      s = c3_cell_images(ds, &c, h->chan[k] < nf ? f[h->chan[k]] : empty, 0, dir, path,
                         lineno);
  }
  int li = h ? h->label : 1;
  const char *lab = li >= 0 && li < nf ? f[li] : "";
  if (s == CSAL3D_OK && *lab && !(c.label = c3_image_path(ds, dir, lab)))
    s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory");
  const char *id = h && h->id >= 0 && h->id < nf ? f[h->id] : "";
  if (s == CSAL3D_OK && *id) c.id = c3_arena_strdup(ds, id);
  if (s == CSAL3D_OK && !*id) c.stem = c3_stem_of(ds, c.images[0], strip);
  return s == CSAL3D_OK ? c3_push_case(ds, &c) : s;
}

/* Reads one line without its '\n' into buf (cap bytes): its length, -1 at the end of the
 * file, -2 when it does not fit (the rest of the line is not read). */
static long c3_read_line(FILE *f, char *buf, size_t cap) {
  size_t n = 0;
  int ch;
  while ((ch = getc_unlocked(f)) != EOF && ch != '\n') {
    if (n + 1 >= cap) return -2;
    buf[n++] = (char)ch;
  }
  if (ch == EOF && n == 0) return -1;
  buf[n] = '\0';
  return (long)n;
}

static csal3d_status c3_parse_list(csal3d_dataset *ds, const char *path, int mode) {
  FILE *f = fopen(path, "r");
  if (!f) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char *dir = c3_dirname(ds, path);
  csal3d_status s = dir ? CSAL3D_OK : c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  const int strip = mode == CSAL3D_CHANNEL_SUFFIX_ALWAYS;
  char *line = NULL, **fields = NULL;
  long len;
  int lineno = 0, first = 1;
  c3_columns header, *h = NULL;
  if (s == CSAL3D_OK)
    s = c3_alloc_array(C3_LIST_MAX_COLUMNS, sizeof *fields, "list fields", (void **)&fields);
  if (s == CSAL3D_OK) s = c3_alloc(C3_LIST_MAX_LINE + 2, "list line", (void **)&line);
  while (s == CSAL3D_OK && (len = c3_read_line(f, line, C3_LIST_MAX_LINE + 2)) != -1) {
    lineno++;
    if (len < 0) {
      s = c3_error(CSAL3D_ERR_FORMAT, "%s:%d: line longer than %d characters", path, lineno,
                   C3_LIST_MAX_LINE);
      break;
    }
    char *t = line;
    if (lineno == 1 && !strncmp(t, "\xef\xbb\xbf", 3)) t += 3; /* a UTF-8 byte order mark */
    if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
    for (long k = 0; k < len && s == CSAL3D_OK; k++) {
      unsigned char ch = (unsigned char)line[k];
      if (ch == '\0')
        s = c3_error(CSAL3D_ERR_FORMAT, "%s:%d: the line holds a NUL byte at column %ld (not "
                     "a text file?)", path, lineno, k + 1);
      else if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        s = c3_error(CSAL3D_ERR_FORMAT, "%s:%d: the line holds the control character 0x%02x "
                     "at column %ld", path, lineno, ch, k + 1);
    }
    if (s != CSAL3D_OK) break;
    const char *first_char = t + strspn(t, " \t");
    if (!*first_char || *first_char == '#') continue;
    /* Fields are trimmed one by one: a leading tab is an empty first field. */
    int nf = c3_split_fields(t, fields, C3_LIST_MAX_COLUMNS);
    if (nf == -1)
      s = c3_error(CSAL3D_ERR_FORMAT, "%s:%d: a quoted field is not closed, or text follows "
                   "its closing quote", path, lineno);
    else if (nf < 0)
      s = c3_error(CSAL3D_ERR_FORMAT, "%s:%d: more than %d fields", path, lineno,
                   C3_LIST_MAX_COLUMNS);
    if (s != CSAL3D_OK) break;
    if (first) {
      first = 0;
      int r = c3_read_header(fields, nf, &header, path, lineno);
      if (r < 0) s = CSAL3D_ERR_FORMAT;
      if (r) {
        h = &header;
        continue;
      }
    }
    s = c3_list_row(ds, fields, nf, h, strip, dir, path, lineno);
  }
  if (s == CSAL3D_OK && ferror(f)) s = c3_error(CSAL3D_ERR_IO, "%s: read error", path);
  fclose(f);
  c3_free(line);
  c3_free(fields);
  return s;
}

/* ---- public ---- */

CSAL3D_API csal3d_status csal3d_dataset_options_init(csal3d_dataset_options *options) {
  C3_CHECK_ARG(options, "dataset_options_init: options is NULL");
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->split = "training";
  options->channel_suffix = CSAL3D_CHANNEL_SUFFIX_AUTO;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_dataset_open(const char *path,
                                             const csal3d_dataset_options *options,
                                             csal3d_dataset **out) {
  C3_CHECK_ARG(out, "dataset_open: out is NULL");
  *out = NULL;
  C3_CHECK_ARG(path && *path, "dataset_open: path is NULL or empty");
  csal3d_dataset_options o;
  csal3d_dataset_options_init(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_dataset_options"));
  if (!o.split) o.split = "training";
  C3_CHECK_ARG(!strcmp(o.split, "training") || !strcmp(o.split, "test"),
               "dataset_open: split must be \"training\" or \"test\", not \"%s\"", o.split);
  C3_CHECK_ARG(o.channel_suffix >= CSAL3D_CHANNEL_SUFFIX_AUTO &&
               o.channel_suffix <= CSAL3D_CHANNEL_SUFFIX_NEVER,
               "dataset_open: the option channel_suffix is %lld; set it to auto (0), always (1) "
               "or never (2)", (long long)o.channel_suffix);
  struct stat st;
  if (stat(path, &st) != 0)
    return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  csal3d_dataset *ds;
  C3_TRY(c3_calloc_array(1, sizeof *ds, "dataset", (void **)&ds));
  csal3d_status s;
  const int mode = (int)o.channel_suffix, test = !strcmp(o.split, "test");
  int sorted = 0; /* folders: cases sorted by id; lists: as listed */
  if (S_ISDIR(st.st_mode)) {
    char *json = c3_join(ds, path, "dataset.json");
    char *images = c3_join(ds, path, test ? "imagesTs" : "imagesTr");
    char *labels = c3_join(ds, path, "labelsTr");
    if (!json || !images || !labels) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    else if (c3_is_file(json)) s = c3_parse_json(ds, json, o.split, mode, &sorted);
    else if (c3_is_dir(images)) {
      sorted = 1;
      s = c3_scan_folder(ds, images, !test && c3_is_dir(labels) ? labels : NULL, NULL, mode,
                         -1, 0);
    } else {
      /* Subject folders, unless the folder is a decathlon or nnU-Net one without the
       * split asked for (a test split must not find the training images). */
      static const char *const layout[] = {"imagesTr", "imagesTs", "labelsTr", "labelsTs"};
      int depth = C3_SCAN_DEPTH;
      s = CSAL3D_OK;
      for (size_t k = 0; k < sizeof layout / sizeof *layout && depth && s == CSAL3D_OK; k++) {
        char *p = c3_join(ds, path, layout[k]);
        if (!p) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
        else if (c3_is_dir(p)) depth = 0;
      }
      sorted = 1;
      if (s == CSAL3D_OK) s = c3_scan_folder(ds, path, NULL, NULL, mode, 0, depth);
    }
  } else {
    size_t n = strlen(path);
    if (n >= 5 && !strcasecmp(path + n - 5, ".json"))
      s = c3_parse_json(ds, path, o.split, mode, &sorted);
    else if (c3_ext_of(path) >= 0)
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                   "%s: a dataset is a folder, a dataset.json or a text file of paths; "
                   "load a single image with csal3d_volume_load", path);
    else s = c3_parse_list(ds, path, mode);
  }
  if (s == CSAL3D_OK && ds->n == 0)
    s = c3_error(CSAL3D_ERR_FORMAT, "%s: no cases found (no .nii, .nii.gz or .hdr files%s)",
                 path, S_ISDIR(st.st_mode) ? " in the folder, its subfolders or its imagesTr/"
                                           : " listed");
  if (s == CSAL3D_OK) s = c3_assign_ids(ds, path);
  if (s == CSAL3D_OK && sorted && ds->n) qsort(ds->cases, ds->n, sizeof *ds->cases, c3_case_id_cmp);
  for (size_t i = 0; s == CSAL3D_OK && o.check_files && i < ds->n; i++) {
    const c3_case *c = &ds->cases[i];
    for (int k = 0; k <= c->nimages && s == CSAL3D_OK; k++) {
      const char *p = k < c->nimages ? c->images[k] : c->label;
      if (p && !c3_is_file(p))
        s = c3_error(CSAL3D_ERR_IO, "%s: case '%s': %s: %s", path, c->id, p,
                     strerror(errno ? errno : ENOENT));
    }
  }
  free(ds->cwd);
  ds->cwd = NULL;
  if (s == CSAL3D_OK) s = c3_path_absolute(path, &ds->source);
  if (s != CSAL3D_OK) {
    csal3d_dataset_free(ds);
    return s;
  }
  *out = ds;
  return CSAL3D_OK;
}

const char *c3_dataset_source(const csal3d_dataset *ds) { return ds->source ? ds->source : ""; }
size_t c3_dataset_n(const csal3d_dataset *ds) { return ds->n; }
const char *c3_dataset_id(const csal3d_dataset *ds, size_t i) { return ds->cases[i].id; }
int c3_dataset_image_count(const csal3d_dataset *ds, size_t i) { return ds->cases[i].nimages; }
const char *c3_dataset_image(const csal3d_dataset *ds, size_t i, int k) {
  return ds->cases[i].images[k];
}
const char *c3_dataset_label(const csal3d_dataset *ds, size_t i) { return ds->cases[i].label; }

csal3d_status c3_dataset_files(const csal3d_dataset *ds, const char *extra, const char ***out,
                               size_t *count) {
  size_t cap = 2;
  for (size_t i = 0; i < ds->n; i++) cap += (size_t)ds->cases[i].nimages + 1;
  const char **in;
  C3_TRY(c3_alloc_array(cap, sizeof *in, "input list", (void **)&in));
  size_t k = 0;
  if (extra) in[k++] = extra;
  in[k++] = c3_dataset_source(ds);
  for (size_t i = 0; i < ds->n; i++) {
    for (int c = 0; c < ds->cases[i].nimages; c++) in[k++] = ds->cases[i].images[c];
    if (ds->cases[i].label) in[k++] = ds->cases[i].label;
  }
  *out = in;
  *count = k;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_dataset_size(const csal3d_dataset *dataset, size_t *size) {
  C3_CHECK_ARG(dataset && size, "dataset_size: NULL argument");
  *size = dataset->n;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_dataset_modality(const csal3d_dataset *dataset,
                                                 csal3d_modality *modality) {
  C3_CHECK_ARG(dataset && modality, "dataset_modality: NULL argument");
  *modality = dataset->modality;
  return CSAL3D_OK;
}

static csal3d_status c3_case_at(const csal3d_dataset *ds, size_t index, const c3_case **c) {
  C3_CHECK_ARG(ds, "dataset: NULL dataset");
  C3_CHECK_ARG(index < ds->n, "dataset: case %zu does not exist (the dataset has %zu)", index,
               ds->n);
  *c = &ds->cases[index];
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_dataset_case_string(const csal3d_dataset *dataset,
                                                    size_t index, const char *what,
                                                    char *buffer, size_t capacity,
                                                    size_t *needed) {
  const c3_case *c = NULL;
  C3_TRY(c3_case_at(dataset, index, &c));
  C3_CHECK_ARG(what, "dataset_case_string: what is NULL");
  const char *v;
  if (!strcmp(what, "id")) v = c->id;
  else if (!strcmp(what, "image")) v = c->images[0];
  else if (!strcmp(what, "label")) v = c->label ? c->label : "";
  else if (!strncmp(what, "image:", 6)) {
    char *end;
    long k = strtol(what + 6, &end, 10);
    C3_CHECK_ARG(*end == '\0' && end != what + 6 && k >= 0 && k < c->nimages,
                 "dataset_case_string: '%s': case '%s' has image files 0..%d", what, c->id,
                 c->nimages - 1);
    v = c->images[k];
  } else {
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "dataset_case_string: what must be \"id\", \"image\", \"label\" or "
                    "\"image:N\", not \"%s\"", what);
  }
  size_t n = strlen(v) + 1;
  if (needed) *needed = n;
  if (!buffer && capacity == 0) return CSAL3D_OK;
  C3_CHECK_ARG(buffer, "dataset_case_string: buffer is NULL with capacity %zu", capacity);
  if (capacity < n)
    return c3_error(CSAL3D_ERR_BUFFER_TOO_SMALL,
                    "dataset_case_string: %s of case '%s' needs %zu bytes, the buffer has %zu",
                    what, c->id, n, capacity);
  memcpy(buffer, v, n);
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_dataset_case_info(const csal3d_dataset *dataset,
                                                  size_t index, int *image_files,
                                                  int *has_label) {
  const c3_case *c = NULL;
  C3_TRY(c3_case_at(dataset, index, &c));
  if (image_files) *image_files = c->nimages;
  if (has_label) *has_label = c->label != NULL;
  return CSAL3D_OK;
}

/* Whether a loaded volume's file has no orientation codes (qform_code and sform_code 0). */
static int c3_unoriented(const csal3d_volume *v) {
  csal3d_volume_source_info si = {.struct_size = sizeof si};
  return csal3d_volume_source(v, &si) == CSAL3D_OK && si.from_file && si.qform_code <= 0 &&
         si.sform_code <= 0;
}

CSAL3D_API csal3d_status csal3d_dataset_load_image(const csal3d_dataset *dataset,
                                                   size_t index,
                                                   const csal3d_volume_load_options *options,
                                                   csal3d_volume **out) {
  return c3_dataset_load_image_told(dataset, index, options, out, NULL);
}

csal3d_status c3_dataset_load_image_told(const csal3d_dataset *dataset, size_t index,
                                         const csal3d_volume_load_options *options,
                                         csal3d_volume **out, uint64_t *unoriented) {
  C3_CHECK_ARG(out, "dataset_load_image: out is NULL");
  *out = NULL;
  if (unoriented) *unoriented = 0;
  const c3_case *c = NULL;
  C3_TRY(c3_case_at(dataset, index, &c));
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  C3_TRY(c3_options_read(&lo, sizeof lo, options, "csal3d_volume_load_options"));
  if (lo.modality == CSAL3D_MODALITY_AUTO) lo.modality = dataset->modality;
  options = &lo;
  csal3d_volume *first;
  csal3d_status s = csal3d_volume_load(c->images[0], options, &first);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "case '%s'", c->id);
  if (unoriented && c3_unoriented(first)) *unoriented |= 1;
  if (c->nimages == 1) {
    *out = first;
    return CSAL3D_OK;
  }
  /* Several files: load each and stack their channels. */
  csal3d_volume **parts;
  s = c3_calloc_array((size_t)c->nimages, sizeof *parts, "channel files", (void **)&parts);
  if (s != CSAL3D_OK) {
    csal3d_volume_free(first);
    return s;
  }
  parts[0] = first;
  int64_t channels = first->channels;
  for (int k = 1; k < c->nimages && s == CSAL3D_OK; k++) {
    s = csal3d_volume_load(c->images[k], options, &parts[k]);
    if (s != CSAL3D_OK) break;
    if (unoriented && k < 64 && c3_unoriented(parts[k])) *unoriented |= (uint64_t)1 << k;
    char why[256];
    if (!c3_grid_equal(first->dim, first->affine, parts[k]->dim, parts[k]->affine,
                       1e-3, why, sizeof why)) {
      s = c3_error(CSAL3D_ERR_FORMAT, "%s: not on the grid of %s: %s", c->images[k],
                   c->images[0], why);
      break;
    }
    channels += parts[k]->channels;
  }
  csal3d_volume *v = NULL;
  if (s == CSAL3D_OK) s = csal3d_volume_create_like(first, channels, NULL, &v);
  if (s == CSAL3D_OK) {
    size_t off = 0, vox = (size_t)c3_volume_voxels(first);
    for (int k = 0; k < c->nimages; k++) {
      memcpy(v->data + off, parts[k]->data, (size_t)parts[k]->channels * vox * sizeof(float));
      off += (size_t)parts[k]->channels * vox;
    }
  }
  for (int k = 0; k < c->nimages; k++) csal3d_volume_free(parts[k]);
  c3_free(parts);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "case '%s'", c->id);
  *out = v;
  return CSAL3D_OK;
}

CSAL3D_API csal3d_status csal3d_dataset_load_label(const csal3d_dataset *dataset,
                                                   size_t index, const csal3d_volume *image,
                                                   const csal3d_volume_load_options *options,
                                                   csal3d_volume **out) {
  C3_CHECK_ARG(out, "dataset_load_label: out is NULL");
  *out = NULL;
  const c3_case *c = NULL;
  C3_TRY(c3_case_at(dataset, index, &c));
  if (!c->label)
    return c3_error(CSAL3D_ERR_STATE, "case '%s' has no label", c->id);
  csal3d_status s = csal3d_volume_load_label(c->label, image, options, out);
  if (s != CSAL3D_OK) return c3_error_prefix(s, "case '%s'", c->id);
  return CSAL3D_OK;
}
