/* nnU-Net v2 raw dataset export of the chosen cases (include/csal3d/manifest.h). */
#include "pipeline/nnunet.h"
#include "pipeline/outputs.h"
#include "pipeline/commit.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "core/report.h"
#include "io/fileutil.h"
#include "pipeline/scores.h"

static void c3_nnunet_defaults(csal3d_nnunet_options *o) {
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
  o->labels = CSAL3D_NNUNET_LABELS_AUTO;
}

CSAL3D_API csal3d_status csal3d_nnunet_options_init(csal3d_nnunet_options *o) {
  C3_CHECK_ARG(o != NULL, "csal3d_nnunet_options_init: options is NULL");
  c3_nnunet_defaults(o);
  return CSAL3D_OK;
}

/* ---- name lists ---- */

void c3_names_free(c3_names *n) {
  if (!n) return;
  for (int i = 0; i < n->count; i++) c3_free(n->name[i]);
  memset(n, 0, sizeof *n);
}

static csal3d_status c3_names_set(c3_names *n, int i, const char *v, const char *what) {
  if (i < 0 || i >= C3_NAMES_MAX)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: index %d out of range (0 to %d)", what, i,
                    C3_NAMES_MAX - 1);
  if (n->name[i])
    return c3_error(CSAL3D_ERR_FORMAT, "%s: index %d is given twice", what, i);
  size_t len = strlen(v) + 1;
  C3_TRY(c3_alloc(len, "name", (void **)&n->name[i]));
  memcpy(n->name[i], v, len);
  if (i + 1 > n->count) n->count = i + 1;
  return CSAL3D_OK;
}

/* A name must be non-empty text without control characters (it becomes a JSON key). */
static int c3_name_ok(const char *s) {
  if (!*s) return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20) return 0;
  return 1;
}

csal3d_status c3_names_parse_list(const char *list, c3_names *out, const char *what) {
  memset(out, 0, sizeof *out);
  const char *p = list;
  int i = 0;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    while (len && (*p == ' ' || *p == '\t')) p++, len--;
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    char buf[256];
    if (len == 0 || len >= sizeof buf) {
      c3_names_free(out);
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s: name %d of '%s' is %s", what, i, list,
                      len ? "longer than 255 bytes" : "empty");
    }
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (!c3_name_ok(buf)) {
      c3_names_free(out);
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s: name %d holds control characters",
                      what, i);
    }
    csal3d_status s = c3_names_set(out, i, buf, what);
    if (s != CSAL3D_OK) {
      c3_names_free(out);
      return s == CSAL3D_ERR_FORMAT ? c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "%s: more than %d "
                                               "names", what, C3_NAMES_MAX) : s;
    }
    i++;
    if (!comma) break;
    p = comma + 1;
  }
  return CSAL3D_OK;
}

/* Parses a decimal index 0..C3_NAMES_MAX-1 that fills the whole string. */
static int c3_index_of(const char *s) {
  if (!*s || strlen(s) > 6) return -1;
  int v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  return v < C3_NAMES_MAX ? v : -1;
}

/* {"0": "MRI", "1": "ADC"} (decathlon modality, nnU-Net channel_names). */
static csal3d_status c3_index_to_name(json_t *o, c3_names *n, const char *what) {
  const char *k;
  json_t *v;
  json_object_foreach(o, k, v) {
    int i = c3_index_of(k);
    if (i < 0 || !json_is_string(v) || !c3_name_ok(json_string_value(v)))
      return c3_error(CSAL3D_ERR_FORMAT, "%s: entry '%.64s' must map an index (0..%d) to a "
                      "non-empty name", what, k, C3_NAMES_MAX - 1);
    C3_TRY(c3_names_set(n, i, json_string_value(v), what));
  }
  return CSAL3D_OK;
}

csal3d_status c3_dataset_names_parse(const char *text, size_t len, const char *source,
                                     c3_names *labels, c3_names *channels) {
  memset(labels, 0, sizeof *labels);
  memset(channels, 0, sizeof *channels);
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return c3_error(CSAL3D_ERR_FORMAT, "%s: not valid JSON (line %d, column %d: %s)", source,
                    jerr.line, jerr.column, jerr.text);
  csal3d_status st = CSAL3D_OK;
  char what[300];
  if (!json_is_object(root)) {
    st = c3_error(CSAL3D_ERR_FORMAT, "%s: the top level is not a JSON object", source);
    goto done;
  }
  json_t *lab = json_object_get(root, "labels");
  if (lab) {
    snprintf(what, sizeof what, "%.200s: \"labels\"", source);
    if (!json_is_object(lab)) {
      st = c3_error(CSAL3D_ERR_FORMAT, "%s must be a JSON object", what);
      goto done;
    }
    const char *k;
    json_t *v;
    json_object_foreach(lab, k, v) {
      if (json_is_string(v)) { /* decathlon: "1": "liver" */
        int i = c3_index_of(k);
        if (i < 0 || !c3_name_ok(json_string_value(v))) {
          st = c3_error(CSAL3D_ERR_FORMAT, "%s: '%.64s' must be a label value (0..%d) "
                        "mapped to a non-empty name", what, k, C3_NAMES_MAX - 1);
          goto done;
        }
        st = c3_names_set(labels, i, json_string_value(v), what);
      } else if (json_is_integer(v)) { /* nnU-Net v2: "liver": 1 */
        json_int_t i = json_integer_value(v);
        if (i < 0 || i >= C3_NAMES_MAX || !c3_name_ok(k)) {
          st = c3_error(CSAL3D_ERR_FORMAT, "%s: '%.64s' must map a non-empty name to a label "
                        "value 0..%d", what, k, C3_NAMES_MAX - 1);
          goto done;
        }
        st = c3_names_set(labels, (int)i, k, what);
      } else {
        st = c3_error(CSAL3D_ERR_UNSUPPORTED, "%s: '%.64s' is neither a name nor a single "
                      "label value (region-based labels are not supported)", what, k);
      }
      if (st != CSAL3D_OK) goto done;
    }
    for (int i = 0; i < labels->count; i++)
      if (!labels->name[i]) {
        st = c3_error(CSAL3D_ERR_FORMAT, "%s: label value %d is missing (nnU-Net needs the "
                      "values 0..%d without gaps)", what, i, labels->count - 1);
        goto done;
      }
  }
  json_t *ch = json_object_get(root, "channel_names");
  if (!ch) ch = json_object_get(root, "modality");
  if (ch) {
    snprintf(what, sizeof what, "%.200s: channel names", source);
    if (!json_is_object(ch)) {
      st = c3_error(CSAL3D_ERR_FORMAT, "%s must be a JSON object", what);
      goto done;
    }
    if ((st = c3_index_to_name(ch, channels, what)) != CSAL3D_OK) goto done;
    for (int i = 0; i < channels->count; i++)
      if (!channels->name[i]) {
        st = c3_error(CSAL3D_ERR_FORMAT, "%s: channel %d is missing", what, i);
        goto done;
      }
  }
done:
  json_decref(root);
  if (st != CSAL3D_OK) {
    c3_names_free(labels);
    c3_names_free(channels);
  }
  return st;
}

/* Reads the dataset.json that `path` names (a .json file or a folder holding one).
 * *found = 0 (and OK) when there is none. */
static csal3d_status c3_read_source_names(const char *path, c3_names *labels,
                                          c3_names *channels, int *found) {
  *found = 0;
  memset(labels, 0, sizeof *labels);
  memset(channels, 0, sizeof *channels);
  struct stat sb;
  char *json_path = NULL;
  if (stat(path, &sb) != 0) return CSAL3D_OK;
  size_t n = strlen(path) + 16;
  C3_TRY(c3_alloc(n, "path", (void **)&json_path));
  if (S_ISDIR(sb.st_mode)) snprintf(json_path, n, "%s/dataset.json", path);
  else snprintf(json_path, n, "%s", path);
  if (!c3_ends_with(json_path, ".json") || stat(json_path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    c3_free(json_path);
    return CSAL3D_OK;
  }
  FILE *f = fopen(json_path, "rb");
  if (!f) {
    csal3d_status s = c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", json_path, strerror(errno));
    c3_free(json_path);
    return s;
  }
  csal3d_status st = CSAL3D_OK;
  char *buf = NULL;
  if (sb.st_size > (64 << 20)) {
    st = c3_error(CSAL3D_ERR_UNSUPPORTED, "%s: larger than 64 MiB", json_path);
  } else {
    size_t len = (size_t)sb.st_size;
    st = c3_alloc(len + 1, "dataset.json", (void **)&buf);
    if (st == CSAL3D_OK && fread(buf, 1, len, f) != len)
      st = c3_error(CSAL3D_ERR_IO, "%s: read failed", json_path);
    if (st == CSAL3D_OK) st = c3_dataset_names_parse(buf, len, json_path, labels, channels);
    if (st == CSAL3D_OK) *found = 1;
  }
  fclose(f);
  c3_free(buf);
  c3_free(json_path);
  return st;
}

/* ---- the export ---- */

/* mkdir -p of path's parent folder. */
static csal3d_status c3_make_parents(const char *path) {
  size_t n = strlen(path);
  char *p;
  C3_TRY(c3_alloc(n + 1, "path", (void **)&p));
  memcpy(p, path, n + 1);
  char *slash = strrchr(p, '/');
  csal3d_status st = CSAL3D_OK;
  if (slash && slash != p) {
    *slash = '\0';
    for (char *q = p + 1; st == CSAL3D_OK; q++) {
      if (*q == '/' || *q == '\0') {
        char c = *q;
        *q = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
          st = c3_error(CSAL3D_ERR_IO, "%s: cannot create the folder: %s", p, strerror(errno));
        *q = c;
        if (c == '\0') break;
      }
    }
  }
  c3_free(p);
  return st;
}

/* Whether `path` holds a gzip stream: 1 yes, 0 no (plain bytes), or an error. */
static csal3d_status c3_is_gzip(const char *path, int *gz) {
  *gz = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char m[2];
  size_t n = fread(m, 1, 2, f);
  fclose(f);
  *gz = n == 2 && m[0] == 0x1f && m[1] == 0x8b;
  return CSAL3D_OK;
}

/* Decompresses a whole gzip file (every member) to check it: nnU-Net gets it byte for
 * byte, so it must be a gzip stream that ends cleanly (CRC and length checked) and holds
 * a NIfTI header (sizeof_hdr 348 or 540, either byte order). */
static csal3d_status c3_check_gzip_nifti(const char *path) {
  gzFile g = gzopen(path, "rb");
  if (!g) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  gzbuffer(g, 1 << 17);
  static const size_t chunk = 1 << 16;
  unsigned char *buf;
  csal3d_status st = c3_alloc(chunk, "gzip check", (void **)&buf);
  if (st != CSAL3D_OK) {
    gzclose(g);
    return st;
  }
  uint64_t total = 0;
  int header_ok = 0, err = 0;
  for (;;) {
    int r = gzread(g, buf, (unsigned)chunk);
    if (r < 0) {
      err = 1;
      break;
    }
    if (total == 0 && r >= 4) {
      uint32_t le = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
                    (uint32_t)buf[3] << 24;
      uint32_t be = (uint32_t)buf[3] | (uint32_t)buf[2] << 8 | (uint32_t)buf[1] << 16 |
                    (uint32_t)buf[0] << 24;
      header_ok = le == 348 || le == 540 || be == 348 || be == 540;
    }
    total += (uint64_t)r;
    if (r == 0) break;
  }
  int zerr = Z_OK;
  const char *zmsg = err ? gzerror(g, &zerr) : "";
  if (err)
    st = c3_error(CSAL3D_ERR_FORMAT, "%s: the gzip stream is damaged (%s) after %llu bytes; "
                  "nnU-Net could not read it", path, zmsg, (unsigned long long)total);
  else if (!header_ok)
    st = c3_error(CSAL3D_ERR_FORMAT, "%s: gzip data that does not start with a NIfTI header",
                  path);
  gzclose(g);
  c3_free(buf);
  return st;
}

/* Copies one 3-D image or label file to dst (.nii.gz) by its content, not its name: a
 * NIfTI file already gzipped is checked and copied byte for byte, an uncompressed one is
 * gzipped (whether named .nii or .nii.gz), any other (an .hdr/.img pair) is re-saved. */
static csal3d_status c3_export_file(const char *src, const char *dst, const csal3d_volume *v) {
  if (c3_ends_with(src, ".nii.gz") || c3_ends_with(src, ".nii")) {
    int gz;
    C3_TRY(c3_is_gzip(src, &gz));
    if (!gz) return c3_file_gzip(src, dst, 6);
    C3_TRY(c3_check_gzip_nifti(src));
    return c3_file_copy(src, dst);
  }
  csal3d_volume_save_options so;
  csal3d_volume_save_options_init(&so);
  so.compression_level = 6;
  return csal3d_volume_save(v, dst, &so);
}

/* ---- case names in the folder ---- */

/* A case id as nnU-Net's file names take it, into *out (c3_free it): every byte but
 * letters, digits, '-', '_' and '.' becomes '_' (the '/' of ids by relative path,
 * spaces, other punctuation, non-ASCII), and so does a leading '.' (a hidden file). */
static csal3d_status c3_nnunet_case_name(const char *id, char **out) {
  size_t n = strlen(id);
  C3_TRY(c3_alloc(n + 1, "nnU-Net case name", (void **)out));
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)id[i];
    int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               ch == '-' || ch == '_' || (ch == '.' && i > 0);
    (*out)[i] = keep ? (char)ch : '_';
  }
  (*out)[n] = '\0';
  return CSAL3D_OK;
}

typedef struct c3_named {
  const char *name, *id;
  int64_t pos; /* among the chosen cases */
} c3_named;

static int c3_cmp_named(const void *a, const void *b) {
  const c3_named *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The nnU-Net names of the chosen cases (*names[i] for indices[i]; c3_free each and the
 * array), refusing two ids that become one name. */
static csal3d_status c3_nnunet_case_names(const csal3d_scores *s, const int64_t *indices,
                                          int64_t count, char ***names) {
  char **nm;
  C3_TRY(c3_calloc_array((size_t)count, sizeof *nm, "nnU-Net case names", (void **)&nm));
  c3_named *sorted = NULL;
  csal3d_status st = c3_alloc_array((size_t)count, sizeof *sorted, "nnU-Net case names",
                                    (void **)&sorted);
  for (int64_t i = 0; st == CSAL3D_OK && i < count; i++) {
    const char *id = c3_scores_id(s, indices[i]);
    st = c3_nnunet_case_name(id, &nm[i]);
    if (st == CSAL3D_OK) sorted[i] = (c3_named){nm[i], id, i};
    /* CASE_0000.nii.gz must be a file name. */
    if (st == CSAL3D_OK && strlen(nm[i]) + strlen("_0000.nii.gz") > NAME_MAX)
      st = c3_error(CSAL3D_ERR_FORMAT, "case '%s': its nnU-Net file names would be %zu bytes "
                    "long, more than a file name holds (%d); give it a shorter id (an id "
                    "column in a CSV list)", id, strlen(nm[i]) + strlen("_0000.nii.gz"),
                    NAME_MAX);
  }
  if (st == CSAL3D_OK) {
    qsort(sorted, (size_t)count, sizeof *sorted, c3_cmp_named);
    for (int64_t i = 1; i < count; i++)
      if (!strcmp(sorted[i].name, sorted[i - 1].name)) {
        st = c3_error(CSAL3D_ERR_FORMAT,
                      "cases '%s' and '%s' would both be nnU-Net case '%s' (in nnU-Net's "
                      "file names, characters other than letters, digits, '-', '_' and '.' "
                      "become '_'); give them ids that differ (an id column in a CSV list)",
                      sorted[i - 1].id, sorted[i].id, sorted[i].name);
        break;
      }
  }
  c3_free(sorted);
  if (st != CSAL3D_OK) {
    for (int64_t i = 0; i < count; i++) c3_free(nm[i]);
    c3_free(nm);
    return st;
  }
  *names = nm;
  return CSAL3D_OK;
}

typedef struct c3_export {
  const csal3d_scores *s;
  const char *tmp;      /* the folder being built */
  int channels;         /* image channels per case (from the first case) */
  int copy_labels;
  int max_label;        /* largest label value seen */
  int label_limit;      /* largest value allowed (from the names), or -1 */
  char **names;         /* the chosen cases' names in the folder, by position */
} c3_export;

/* Exports the case at position `pos` of the chosen ones (case index idx). */
static csal3d_status c3_export_case(c3_export *x, int64_t pos, int64_t idx) {
  const csal3d_scores *s = x->s;
  const char *id = c3_scores_id(s, idx), *name = x->names[pos];
  size_t plen = strlen(x->tmp) + strlen(name) + 64;
  char *dst;
  C3_TRY(c3_alloc(plen, "path", (void **)&dst));
  csal3d_volume_load_options lo;
  csal3d_volume_load_options_init(&lo);
  lo.channel = CSAL3D_CHANNEL_ALL;
  lo.allow_nonfinite = 1;
  csal3d_volume *first = NULL;
  csal3d_status st = CSAL3D_OK;
  int ch = 0;
  for (int k = 0; st == CSAL3D_OK && k < c3_scores_image_count(s, idx); k++) {
    const char *src = c3_scores_image(s, idx, k);
    csal3d_volume *v = NULL;
    st = csal3d_volume_load(src, &lo, &v);
    if (st != CSAL3D_OK) {
      st = c3_error_prefix(st, "case '%s'", id);
      break;
    }
    int64_t shape[4];
    csal3d_volume_shape(v, shape);
    if (shape[0] == 1) {
      snprintf(dst, plen, "%s/imagesTr/%s_%04d.nii.gz", x->tmp, name, ch++);
      st = c3_export_file(src, dst, v);
    } else {
      /* A 4-D file: one file per channel, on the file's grid. */
      const float *data;
      csal3d_volume_data(v, &data);
      size_t vox = (size_t)shape[1] * (size_t)shape[2] * (size_t)shape[3];
      csal3d_volume_save_options so;
      csal3d_volume_save_options_init(&so);
      so.compression_level = 6;
      for (int64_t c = 0; st == CSAL3D_OK && c < shape[0]; c++) {
        csal3d_volume *one = NULL;
        st = csal3d_volume_create_like(v, 1, data + (size_t)c * vox, &one);
        snprintf(dst, plen, "%s/imagesTr/%s_%04d.nii.gz", x->tmp, name, ch++);
        if (st == CSAL3D_OK) st = csal3d_volume_save(one, dst, &so);
        csal3d_volume_free(one);
      }
    }
    if (!first) first = v;
    else csal3d_volume_free(v);
  }
  if (st == CSAL3D_OK) {
    if (x->channels == 0) x->channels = ch;
    else if (ch != x->channels)
      st = c3_error(CSAL3D_ERR_FORMAT, "case '%s' has %d image channels, the first chosen case "
                    "%d (nnU-Net needs the same channels for every case)", id, ch, x->channels);
  }
  const char *lab = c3_scores_label(s, idx);
  if (st == CSAL3D_OK && x->copy_labels && lab) {
    csal3d_volume *lv = NULL;
    st = csal3d_volume_load_label(lab, first, NULL, &lv);
    if (st != CSAL3D_OK) st = c3_error_prefix(st, "case '%s'", id);
    if (st == CSAL3D_OK) {
      const float *d;
      int64_t shape[4];
      csal3d_volume_data(lv, &d);
      csal3d_volume_shape(lv, shape);
      size_t nv = (size_t)shape[0] * (size_t)shape[1] * (size_t)shape[2] * (size_t)shape[3];
      float mx = 0;
      for (size_t i = 0; i < nv; i++) mx = d[i] > mx ? d[i] : mx;
      if ((int)mx > x->max_label) x->max_label = (int)mx;
      if (x->label_limit >= 0 && mx > (float)x->label_limit)
        st = c3_error(CSAL3D_ERR_FORMAT, "case '%s': %s holds label value %d but only %d labels "
                      "(0..%d) are named; give label names for every value", id, lab, (int)mx,
                      x->label_limit + 1, x->label_limit);
    }
    if (st == CSAL3D_OK) {
      /* The label loaded onto `first`'s grid equals the file's own grid (nothing was
       * resampled), so the file itself is what nnU-Net gets. */
      snprintf(dst, plen, "%s/labelsTr/%s.nii.gz", x->tmp, name);
      if (c3_ends_with(lab, ".nii.gz") || c3_ends_with(lab, ".nii")) {
        st = c3_export_file(lab, dst, NULL);
      } else {
        csal3d_volume_save_options so;
        csal3d_volume_save_options_init(&so);
        so.compression_level = 6;
        st = csal3d_volume_save(lv, dst, &so);
      }
    }
    csal3d_volume_free(lv);
  }
  csal3d_volume_free(first);
  c3_free(dst);
  return st;
}

static int c3_jset(json_t *o, const char *k, json_t *v) {
  return v == NULL || json_object_set_new(o, k, v) != 0;
}

static csal3d_status c3_write_dataset_json(const c3_export *x, const int64_t *indices,
                                           int64_t count, const char *name,
                                           const c3_names *chan, const c3_names *labs,
                                           const char *source) {
  json_t *root = json_object(), *cn = json_object(), *ln = json_object(), *prov = json_object(),
         *ids = json_array();
  int bad = !root || !cn || !ln || !prov || !ids;
  for (int c = 0; !bad && c < x->channels; c++) {
    char key[16], def[32];
    snprintf(key, sizeof key, "%d", c);
    snprintf(def, sizeof def, c ? "image_%d" : "image", c);
    const char *v = c < chan->count && chan->name[c] ? chan->name[c] : def;
    bad |= c3_jset(cn, key, json_string(v));
  }
  for (int l = 0; !bad && l < labs->count; l++) bad |= c3_jset(ln, labs->name[l], json_integer(l));
  json_t *renamed = json_object(); /* id -> name in the folder, where they differ */
  bad |= renamed == NULL;
  for (int64_t i = 0; !bad && i < count; i++) {
    const char *id = c3_scores_id(x->s, indices[i]);
    bad |= json_array_append_new(ids, json_string(id)) != 0;
    if (!bad && strcmp(id, x->names[i])) bad |= c3_jset(renamed, id, json_string(x->names[i]));
  }
  if (!bad) {
    bad |= c3_jset(root, "name", json_string(name));
    bad |= c3_jset(root, "description",
                   json_string("Cases chosen for annotation by libcsal3d (cold-start active "
                               "learning, CSAL-3D)"));
    bad |= c3_jset(root, "channel_names", cn);
    cn = NULL;
    bad |= c3_jset(root, "labels", ln);
    ln = NULL;
    bad |= c3_jset(root, "numTraining", json_integer(count));
    bad |= c3_jset(root, "file_ending", json_string(".nii.gz"));
    bad |= c3_jset(prov, "library_version", json_string(csal3d_version()));
    if (source) bad |= c3_jset(prov, "source_dataset", json_string(source));
    const char *ck = c3_scores_meta(x->s, "checkpoint");
    if (ck) bad |= c3_jset(prov, "checkpoint", json_string(ck));
    bad |= c3_jset(prov, "labels_copied", json_boolean(x->copy_labels));
    json_t *missing = json_array();
    bad |= missing == NULL;
    for (int64_t i = 0; !bad && i < count; i++)
      if (x->copy_labels && !c3_scores_label(x->s, indices[i]))
        bad |= json_array_append_new(missing, json_string(c3_scores_id(x->s, indices[i]))) != 0;
    if (!bad && json_array_size(missing) > 0) {
      bad |= c3_jset(prov, "cases_without_label", missing);
      missing = NULL;
    }
    json_decref(missing);
    bad |= c3_jset(prov, "cases", ids);
    ids = NULL;
    if (!bad && json_object_size(renamed) > 0) {
      bad |= c3_jset(prov, "case_names", renamed);
      renamed = NULL;
    }
    bad |= c3_jset(root, "csal3d", prov);
    prov = NULL;
  }
  json_decref(cn);
  json_decref(ln);
  json_decref(ids);
  json_decref(prov);
  json_decref(renamed);
  if (bad) {
    json_decref(root);
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "dataset.json: cannot build it (out of memory, "
                    "or a name that is not UTF-8)");
  }
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!text) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  size_t n = strlen(x->tmp) + 32;
  char *path;
  csal3d_status st = c3_alloc(n, "path", (void **)&path);
  if (st == CSAL3D_OK) {
    snprintf(path, n, "%s/dataset.json", x->tmp);
    c3_outfile o;
    st = c3_outfile_open(&o, path);
    if (st == CSAL3D_OK) {
      c3_outfile_write(&o, text, strlen(text));
      c3_outfile_write(&o, "\n", 1);
      st = c3_outfile_commit(&o);
      c3_outfile_abort(&o);
    }
    c3_free(path);
  }
  free(text);
  return st;
}

/* The last path component without trailing slashes, into buf. */
static void c3_basename(const char *path, char *buf, size_t cap) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  size_t b = n;
  while (b > 0 && path[b - 1] != '/') b--;
  snprintf(buf, cap, "%.*s", (int)(n - b), path + b);
}

csal3d_status c3_nnunet_check_name(const char *folder) {
  char name[256];
  c3_basename(folder, name, sizeof name);
  /* nnU-Net v2 finds a dataset by its folder, "Dataset" + a 3-digit id + "_" + a name
   * (nnunetv2/utilities/dataset_name_id_conversion.py). */
  int ok = strncmp(name, "Dataset", 7) == 0 && strlen(name) > 11 && name[10] == '_';
  for (int i = 7; ok && i < 10; i++) ok = name[i] >= '0' && name[i] <= '9';
  if (!ok)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "the nnU-Net folder %s: nnU-Net v2 needs the name DatasetNNN_Name (a "
                    "3-digit id and a name, e.g. Dataset501_Hippocampus), not '%s'",
                    folder, name);
  return CSAL3D_OK;
}

/* The current message with the temporary folder's name replaced by the target's, so that
 * a failure (a full disk, say) names the file the user asked for, not a hidden one. */
static csal3d_status c3_retarget(csal3d_status st, const char *tmp, const char *target,
                                 size_t target_len) {
  const char *msg = csal3d_last_error();
  size_t tl = strlen(tmp);
  char out[C3_ERROR_MAX];
  size_t k = 0;
  while (*msg && k + 1 < sizeof out) {
    if (!strncmp(msg, tmp, tl)) {
      k += (size_t)snprintf(out + k, sizeof out - k, "%.*s", (int)target_len, target);
      msg += tl;
    } else {
      out[k++] = *msg++;
    }
    if (k >= sizeof out) k = sizeof out - 1;
  }
  out[k] = '\0';
  return c3_error(st, "%s", out);
}

static csal3d_status c3_nnunet_stage_named(const csal3d_scores *s, const int64_t *indices,
                                           int64_t count, const char *folder,
                                           const csal3d_nnunet_options *opt,
                                           const csal3d_context *ctx, c3_commit *commit,
                                           int copy_labels, int64_t with_label,
                                           int64_t without, char **names);

csal3d_status c3_nnunet_stage(const csal3d_scores *s, const int64_t *indices, int64_t count,
                              const char *folder, const csal3d_nnunet_options *opt,
                              const csal3d_context *ctx, c3_commit *commit) {
  C3_CHECK_ARG(s && indices && folder && *folder, "csal3d_nnunet_export: NULL argument");
  const csal3d_nnunet_options o = *opt;
  C3_CHECK_ARG(o.labels >= CSAL3D_NNUNET_LABELS_AUTO && o.labels <= CSAL3D_NNUNET_LABELS_REQUIRE,
               "csal3d_nnunet_options.labels = %d is not a csal3d_nnunet_labels value",
               (int)o.labels);
  C3_TRY(c3_scores_check_complete(s));
  int64_t n = c3_scores_n(s);
  C3_CHECK_ARG(count >= 1 && count <= n, "csal3d_nnunet_export: %" PRId64 " cases (1 to %" PRId64
               ")", count, n);
  C3_TRY(c3_nnunet_check_name(folder));
  unsigned char *seen;
  C3_TRY(c3_calloc_array((size_t)n, 1, "export", (void **)&seen));
  int64_t with_label = 0, without = 0, first_without = -1;
  for (int64_t i = 0; i < count; i++) {
    int64_t idx = indices[i];
    if (idx < 0 || idx >= n || seen[idx]) {
      c3_free(seen);
      return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "csal3d_nnunet_export: index %" PRId64
                      " (position %" PRId64 ") is %s", idx, i,
                      idx < 0 || idx >= n ? "out of range" : "given twice");
    }
    seen[idx] = 1;
    if (c3_scores_label(s, idx)) with_label++;
    else if (without++ == 0) first_without = idx;
  }
  c3_free(seen);
  if (o.labels == CSAL3D_NNUNET_LABELS_REQUIRE && without > 0)
    return c3_error(CSAL3D_ERR_FORMAT, "case '%s' has no label (%" PRId64 " of the %" PRId64
                    " chosen cases have none) and the option labels asks for every chosen "
                    "case's label; give them their labels, or export without labels (the "
                    "option labels set to none)", c3_scores_id(s, first_without), without,
                    count);
  int copy_labels = o.labels != CSAL3D_NNUNET_LABELS_NONE && with_label > 0;
  char **names;
  C3_TRY(c3_nnunet_case_names(s, indices, count, &names));
  csal3d_status st = c3_nnunet_stage_named(s, indices, count, folder, &o, ctx, commit,
                                           copy_labels, with_label, without, names);
  for (int64_t i = 0; i < count; i++) c3_free(names[i]);
  c3_free(names);
  return st;
}

/* c3_nnunet_stage once the chosen cases are checked and named. */
static csal3d_status c3_nnunet_stage_named(const csal3d_scores *s, const int64_t *indices,
                                           int64_t count, const char *folder,
                                           const csal3d_nnunet_options *opt,
                                           const csal3d_context *ctx, c3_commit *commit,
                                           int copy_labels, int64_t with_label,
                                           int64_t without, char **names) {
  const csal3d_nnunet_options o = *opt;
  const int64_t n = c3_scores_n(s);
  /* The target must not exist (or be empty) unless overwriting, and never be or hold an
   * input: the cases' images, labels and maps (all of them, not only the chosen ones). */
  {
    size_t cap = 1;
    for (int64_t i = 0; i < n; i++) cap += (size_t)c3_scores_image_count(s, i) + 2;
    const char **in;
    C3_TRY(c3_alloc_array(cap, sizeof *in, "input list", (void **)&in));
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
      for (int f = 0; f < c3_scores_image_count(s, i); f++) in[k++] = c3_scores_image(s, i, f);
      if (c3_scores_label(s, i)) in[k++] = c3_scores_label(s, i);
      if (c3_scores_map(s, i)) in[k++] = c3_scores_map(s, i);
    }
    csal3d_status oc = c3_output_check(folder, CSAL3D_OUTPUT_FOLDER, "the nnU-Net folder", in,
                                       k, o.overwrite);
    c3_free(in);
    C3_TRY(oc);
  }
  /* Names. */
  c3_names chan, labs, src_labs, src_chan;
  memset(&chan, 0, sizeof chan);
  memset(&labs, 0, sizeof labs);
  memset(&src_labs, 0, sizeof src_labs);
  memset(&src_chan, 0, sizeof src_chan);
  const char *source = o.source_dataset ? o.source_dataset : c3_scores_meta(s, "dataset");
  int found = 0;
  csal3d_status st = CSAL3D_OK;
  if (source) {
    st = c3_read_source_names(source, &src_labs, &src_chan, &found);
    if (st == CSAL3D_OK && !found && o.source_dataset)
      st = c3_error(CSAL3D_ERR_IO, "%s: no dataset.json there to read label and channel names "
                    "from", o.source_dataset);
    if (st != CSAL3D_OK) return st;
  }
  if (o.channel_names) st = c3_names_parse_list(o.channel_names, &chan, "channel_names");
  else if (src_chan.count) {
    chan = src_chan;
    memset(&src_chan, 0, sizeof src_chan);
  } else {
    const char *m = c3_scores_meta(s, "modality");
    if (m && (strcasecmp(m, "ct") == 0 || strcasecmp(m, "mri") == 0))
      st = c3_names_parse_list(strcasecmp(m, "ct") == 0 ? "CT" : "MRI", &chan, "modality");
  }
  if (st == CSAL3D_OK && o.label_names) st = c3_names_parse_list(o.label_names, &labs, "label_names");
  else if (st == CSAL3D_OK && src_labs.count) {
    labs = src_labs;
    memset(&src_labs, 0, sizeof src_labs);
  }
  c3_names_free(&src_labs);
  c3_names_free(&src_chan);
  char *tmp = NULL;
  size_t flen = strlen(folder);
  while (flen > 1 && folder[flen - 1] == '/') flen--;
  /* ".FOLDER.tmp.PID.XXXXXX" beside it; what killed exports left there goes first. */
  if (st == CSAL3D_OK) st = c3_tmp_beside(folder, "tmp", 1, &tmp);
  if (st == CSAL3D_OK) st = c3_make_parents(tmp);
  int made = 0;
  if (st == CSAL3D_OK) {
    if (!mkdtemp(tmp))
      st = c3_error(CSAL3D_ERR_IO, "%.*s: cannot create a folder beside it: %s", (int)flen,
                    folder, strerror(errno));
    else made = 1;
  }
  if (st == CSAL3D_OK) (void)chmod(tmp, 0755);
  c3_export x = {s, tmp, 0, copy_labels, 0, labs.count ? labs.count - 1 : -1, names};
  if (st == CSAL3D_OK) {
    size_t m = strlen(tmp) + 16;
    char *sub;
    st = c3_alloc(m, "path", (void **)&sub);
    if (st == CSAL3D_OK) {
      snprintf(sub, m, "%s/imagesTr", tmp);
      if (mkdir(sub, 0755) != 0)
        st = c3_error(CSAL3D_ERR_IO, "%.*s/imagesTr: %s", (int)flen, folder, strerror(errno));
      snprintf(sub, m, "%s/labelsTr", tmp);
      if (st == CSAL3D_OK && copy_labels && mkdir(sub, 0755) != 0)
        st = c3_error(CSAL3D_ERR_IO, "%.*s/labelsTr: %s", (int)flen, folder, strerror(errno));
      c3_free(sub);
    }
  }
  for (int64_t i = 0; st == CSAL3D_OK && i < count; i++) {
    st = c3_export_case(&x, i, indices[i]);
    if (st != CSAL3D_OK) st = c3_retarget(st, tmp, folder, flen);
    if (st == CSAL3D_OK) st = c3_progress(ctx, "export", (uint64_t)i + 1, (uint64_t)count);
  }
  if (st == CSAL3D_OK && !labs.count) {
    /* Default names for 0..K. */
    int k = copy_labels ? x.max_label : 0;
    st = c3_names_set(&labs, 0, "background", "labels");
    for (int l = 1; st == CSAL3D_OK && l <= k; l++) {
      char nm[32];
      snprintf(nm, sizeof nm, "label_%d", l);
      st = c3_names_set(&labs, l, nm, "labels");
    }
  }
  if (st == CSAL3D_OK) {
    char name[256];
    if (o.dataset_name) snprintf(name, sizeof name, "%s", o.dataset_name);
    else c3_basename(folder, name, sizeof name);
    st = c3_write_dataset_json(&x, indices, count, name, &chan, &labs, source);
    if (st != CSAL3D_OK) st = c3_retarget(st, tmp, folder, flen);
  }
  if (st == CSAL3D_OK && copy_labels && without > 0) {
    /* Export what exists and say which cases still need a label. */
    char list[512] = "";
    size_t k = 0;
    int64_t listed = 0;
    for (int64_t i = 0; i < count && k + 1 < sizeof list; i++)
      if (!c3_scores_label(s, indices[i])) {
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", listed++ ? ", " : "",
                              c3_scores_id(s, indices[i]));
        if (listed == 20 && without > 20) {
          if (k + 1 < sizeof list) snprintf(list + k, sizeof list - k, ", ...");
          break;
        }
      }
    c3_log(ctx, CSAL3D_LOG_WARN, "%" PRId64 " of the %" PRId64 " chosen cases have no label "
           "(%s): labelsTr/ holds the other %" PRId64 "; add theirs (dataset.json lists them "
           "under csal3d.cases_without_label) before training nnU-Net",
           without, count, list, with_label);
  }
  if (st == CSAL3D_OK) {
    char *target;
    st = c3_alloc(flen + 1, "path", (void **)&target);
    if (st == CSAL3D_OK) {
      snprintf(target, flen + 1, "%.*s", (int)flen, folder);
      st = c3_commit_add(commit, target, tmp, 1); /* takes tmp */
      made = 0;
      tmp = NULL;
      c3_free(target);
    }
  }
  if (made) (void)c3_remove_tree(tmp);
  c3_free(tmp);
  c3_names_free(&chan);
  c3_names_free(&labs);
  return st;
}

CSAL3D_API csal3d_status csal3d_nnunet_export(const csal3d_scores *s, const int64_t *indices,
                                              int64_t count, const char *folder,
                                              const csal3d_nnunet_options *options,
                                              const csal3d_context *ctx) {
  csal3d_nnunet_options o;
  c3_nnunet_defaults(&o);
  C3_TRY(c3_options_read(&o, sizeof o, options, "csal3d_nnunet_options"));
  c3_commit c;
  memset(&c, 0, sizeof c);
  csal3d_status st = c3_nnunet_stage(s, indices, count, folder, &o, ctx, &c);
  if (st == CSAL3D_OK) st = c3_commit_run(&c);
  c3_commit_discard(&c);
  return st;
}
