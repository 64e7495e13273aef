/* Datasets: lazy case lists from a folder, a decathlon / nnU-Net v2 dataset.json or a text
 * file of paths. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "pipeline/dataset.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/options.h"
#include "io/fileutil.h"
#include "volume/volume_internal.h"

typedef struct c3_case {
  char *id;
  int nimages;
  char **images;
  char *label; /* NULL: none */
} c3_case;

struct csal3d_dataset {
  c3_case *cases;
  size_t n, cap;
  csal3d_modality modality;
  char *source; /* the absolute path it was opened from */
};

/* ---- small helpers ---- */

static char *c3_join(const char *dir, const char *rel) {
  if (rel[0] == '/' || !dir || !*dir) return c3_strdup(rel);
  while (rel[0] == '.' && rel[1] == '/') rel += 2;
  size_t a = strlen(dir), b = strlen(rel);
  char *d;
  if (c3_alloc(a + b + 2, "path", (void **)&d) != CSAL3D_OK) return NULL;
  memcpy(d, dir, a);
  size_t k = a;
  if (a && dir[a - 1] != '/') d[k++] = '/';
  memcpy(d + k, rel, b + 1);
  return d;
}

static char *c3_dirname(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return c3_strdup(".");
  size_t n = slash == path ? 1 : (size_t)(slash - path);
  char *d;
  if (c3_alloc(n + 1, "path", (void **)&d) != CSAL3D_OK) return NULL;
  memcpy(d, path, n);
  d[n] = '\0';
  return d;
}

static int c3_is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int c3_is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Length of the NIfTI extension of a name (".nii.gz" 7, ".nii" 4), 0 if none. */
static size_t c3_nifti_ext(const char *name) {
  size_t n = strlen(name);
  if (n > 7 && !strcasecmp(name + n - 7, ".nii.gz")) return 7;
  if (n > 4 && !strcasecmp(name + n - 4, ".nii")) return 4;
  return 0;
}

/* The case id of a file path and its nnU-Net channel (-1 when the name has no _NNNN). */
static char *c3_case_id(const char *path, int *channel) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base) - c3_nifti_ext(base);
  *channel = -1;
  if (n > 5 && base[n - 5] == '_' && isdigit((unsigned char)base[n - 4]) &&
      isdigit((unsigned char)base[n - 3]) && isdigit((unsigned char)base[n - 2]) &&
      isdigit((unsigned char)base[n - 1])) {
    *channel = atoi(base + n - 4);
    n -= 5;
  }
  char *id;
  if (c3_alloc(n + 1, "case id", (void **)&id) != CSAL3D_OK) return NULL;
  memcpy(id, base, n);
  id[n] = '\0';
  return id;
}

static void c3_case_clear(c3_case *c) {
  c3_free(c->id);
  for (int i = 0; i < c->nimages; i++) c3_free(c->images[i]);
  c3_free(c->images);
  c3_free(c->label);
  memset(c, 0, sizeof *c);
}

CSAL3D_API void csal3d_dataset_free(csal3d_dataset *ds) {
  if (!ds) return;
  for (size_t i = 0; i < ds->n; i++) c3_case_clear(&ds->cases[i]);
  c3_free(ds->cases);
  c3_free(ds->source);
  c3_free(ds);
}

/* Appends a case with one image (taking ownership of image and label). */
static csal3d_status c3_add_case(csal3d_dataset *ds, char *id, char *image, char *label) {
  if (!id || !image) {
    c3_free(id), c3_free(image), c3_free(label);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory for a case");
  }
  if (ds->n == ds->cap) {
    size_t cap = ds->cap ? 2 * ds->cap : 64;
    c3_case *nc;
    csal3d_status s = c3_calloc_array(cap, sizeof *nc, "case list", (void **)&nc);
    if (s != CSAL3D_OK) {
      c3_free(id), c3_free(image), c3_free(label);
      return s;
    }
    if (ds->n) memcpy(nc, ds->cases, ds->n * sizeof *nc);
    c3_free(ds->cases);
    ds->cases = nc;
    ds->cap = cap;
  }
  c3_case *c = &ds->cases[ds->n];
  memset(c, 0, sizeof *c);
  csal3d_status s = c3_alloc(sizeof(char *), "image list", (void **)&c->images);
  if (s != CSAL3D_OK) {
    c3_free(id), c3_free(image), c3_free(label);
    return s;
  }
  c->id = id;
  c->images[0] = image;
  c->nimages = 1;
  c->label = label;
  ds->n++;
  return CSAL3D_OK;
}

/* Adds one more channel file to the last case. */
static csal3d_status c3_add_channel(c3_case *c, char *image) {
  if (!image) return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "dataset: out of memory");
  char **imgs;
  csal3d_status s = c3_alloc_array((size_t)c->nimages + 1, sizeof *imgs, "image list",
                                   (void **)&imgs);
  if (s != CSAL3D_OK) {
    c3_free(image);
    return s;
  }
  memcpy(imgs, c->images, (size_t)c->nimages * sizeof *imgs);
  imgs[c->nimages++] = image;
  c3_free(c->images);
  c->images = imgs;
  return CSAL3D_OK;
}

static csal3d_status c3_check_unique_ids(const csal3d_dataset *ds, const char *source) {
  /* Quadratic only in the worst case of a sorted scan; ids are checked once at open. */
  for (size_t i = 0; i < ds->n; i++)
    for (size_t j = i + 1; j < ds->n; j++)
      if (!strcmp(ds->cases[i].id, ds->cases[j].id))
        return c3_error(CSAL3D_ERR_FORMAT,
                        "%s: case id '%s' appears twice (entries %zu and %zu: %s and %s)",
                        source, ds->cases[i].id, i, j, ds->cases[i].images[0],
                        ds->cases[j].images[0]);
  return CSAL3D_OK;
}

/* ---- folders ---- */

typedef struct c3_entry {
  char *id;
  int channel;
  char *path;
} c3_entry;

static int c3_entry_cmp(const void *a, const void *b) {
  const c3_entry *x = a, *y = b;
  int c = strcmp(x->id, y->id);
  return c ? c : (x->channel > y->channel) - (x->channel < y->channel);
}

/* The NIfTI files of a folder as cases (grouping X_0000, X_0001, ...), sorted by id.
 * label_dir: where to look for ID.nii.gz / ID.nii labels (NULL: none). file_ending: only
 * files with this ending (NULL: any NIfTI). */
static csal3d_status c3_scan_folder(csal3d_dataset *ds, const char *dir, const char *label_dir,
                                    const char *file_ending) {
  DIR *d = opendir(dir);
  if (!d) return c3_error(CSAL3D_ERR_IO, "%s: cannot list the folder: %s", dir, strerror(errno));
  c3_entry *e = NULL;
  size_t n = 0, cap = 0;
  csal3d_status s = CSAL3D_OK;
  struct dirent *de;
  while ((de = readdir(d))) {
    const char *name = de->d_name;
    if (name[0] == '.' || !c3_nifti_ext(name)) continue;
    if (file_ending) {
      size_t a = strlen(name), b = strlen(file_ending);
      if (a < b || strcmp(name + a - b, file_ending)) continue;
    }
    if (n == cap) {
      size_t nc = cap ? 2 * cap : 64;
      c3_entry *ne;
      s = c3_calloc_array(nc, sizeof *ne, "folder entries", (void **)&ne);
      if (s != CSAL3D_OK) break;
      if (n) memcpy(ne, e, n * sizeof *ne);
      c3_free(e);
      e = ne, cap = nc;
    }
    e[n].path = c3_join(dir, name);
    e[n].id = c3_case_id(name, &e[n].channel);
    n++;
    if (!e[n - 1].path || !e[n - 1].id) {
      s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: out of memory listing the folder", dir);
      break;
    }
  }
  closedir(d);
  if (s == CSAL3D_OK && n) qsort(e, n, sizeof *e, c3_entry_cmp);
  for (size_t i = 0; s == CSAL3D_OK && i < n;) {
    size_t j = i + 1;
    while (j < n && !strcmp(e[j].id, e[i].id)) j++;
    /* Files i..j-1 share an id: channels 0, 1, ... in order, or a single plain file. */
    for (size_t k = i; k < j && s == CSAL3D_OK; k++) {
      int want = (int)(k - i);
      if (j - i > 1 && e[k].channel != want)
        s = c3_error(CSAL3D_ERR_FORMAT,
                     "%s: case '%s' has %s files; expected channel files %s_0000, %s_0001, ... "
                     "without gaps (%s)", dir, e[i].id,
                     e[k].channel < 0 ? "both plain and channel" : "non-consecutive channel",
                     e[i].id, e[i].id, e[k].path);
    }
    if (s != CSAL3D_OK) break;
    char *label = NULL;
    if (label_dir) {
      static const char *exts[] = {".nii.gz", ".nii"};
      for (int x = 0; x < 2 && !label; x++) {
        char name[1024];
        snprintf(name, sizeof name, "%s%s", e[i].id, file_ending && x == 0 ? file_ending : exts[x]);
        char *p = c3_join(label_dir, name);
        if (p && c3_is_file(p)) label = p;
        else c3_free(p);
      }
    }
    s = c3_add_case(ds, e[i].id, e[i].path, label);
    e[i].id = e[i].path = NULL;
    for (size_t k = i + 1; s == CSAL3D_OK && k < j; k++) {
      s = c3_add_channel(&ds->cases[ds->n - 1], e[k].path);
      e[k].path = NULL;
    }
    i = j;
  }
  for (size_t i = 0; i < n; i++) c3_free(e[i].id), c3_free(e[i].path);
  c3_free(e);
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

static csal3d_status c3_parse_json(csal3d_dataset *ds, const char *json_path, const char *split) {
  json_error_t err;
  json_t *root = json_load_file(json_path, JSON_REJECT_DUPLICATES, &err);
  if (!root) {
    if (!c3_is_file(json_path))
      return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", json_path, strerror(errno));
    return c3_error(CSAL3D_ERR_FORMAT, "%s:%d:%d: %s", json_path, err.line, err.column, err.text);
  }
  csal3d_status s = CSAL3D_OK;
  char *dir = c3_dirname(json_path);
  if (!dir) {
    json_decref(root);
    return c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "%s: out of memory", json_path);
  }
  if (!json_is_object(root)) {
    s = c3_error(CSAL3D_ERR_FORMAT, "%s: expected a JSON object at the top", json_path);
    goto done;
  }
  json_t *mod = json_object_get(root, "modality");
  if (!json_is_object(mod)) mod = json_object_get(root, "channel_names");
  if (json_is_object(mod)) ds->modality = c3_modality_from_name(json_string_value(json_object_get(mod, "0")));
  const int test = !strcmp(split, "test");
  json_t *list = json_object_get(root, test ? "test" : "training");
  json_t *ending = json_object_get(root, "file_ending");
  if (json_is_array(list)) {
    /* Decathlon: "training": [{"image": ..., "label": ...}], "test": ["..."]. */
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
      const char *img = json_is_string(item) ? json_string_value(item)
                                             : json_string_value(json_object_get(item, "image"));
      json_t *lab = json_is_object(item) ? json_object_get(item, "label") : NULL;
      if (!img || (lab && !json_is_string(lab) && !json_is_null(lab))) {
        s = c3_error(CSAL3D_ERR_FORMAT,
                     "%s: \"%s\" entry %zu needs an \"image\" path (and a \"label\" path or "
                     "none)", json_path, test ? "test" : "training", i);
        goto done;
      }
      int ch;
      char *image = c3_join(dir, img);
      char *label = json_is_string(lab) ? c3_join(dir, json_string_value(lab)) : NULL;
      s = c3_add_case(ds, c3_case_id(img, &ch), image, label);
      if (s != CSAL3D_OK) goto done;
    }
    s = c3_check_unique_ids(ds, json_path);
  } else if (json_is_string(ending)) {
    /* nnU-Net v2: cases are the files of imagesTr (imagesTs) with the file ending. */
    char *images = c3_join(dir, test ? "imagesTs" : "imagesTr");
    char *labels = test ? NULL : c3_join(dir, "labelsTr");
    if (!images || (!test && !labels)) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    else s = c3_scan_folder(ds, images, labels && c3_is_dir(labels) ? labels : NULL,
                            json_string_value(ending));
    c3_free(images);
    c3_free(labels);
  } else {
    s = c3_error(CSAL3D_ERR_FORMAT,
                 "%s: neither a decathlon dataset.json (a \"%s\" list) nor an nnU-Net v2 one "
                 "(\"file_ending\")", json_path, test ? "test" : "training");
  }
done:
  c3_free(dir);
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

static csal3d_status c3_parse_list(csal3d_dataset *ds, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char *dir = c3_dirname(path);
  csal3d_status s = dir ? CSAL3D_OK : c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
  char line[8192];
  int lineno = 0;
  while (s == CSAL3D_OK && fgets(line, sizeof line, f)) {
    lineno++;
    size_t len = strlen(line);
    if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
      s = c3_error(CSAL3D_ERR_FORMAT, "%s:%d: line longer than %zu characters", path, lineno,
                   sizeof line - 2);
      break;
    }
    char *t = c3_trim(line);
    if (!*t || *t == '#') continue;
    char *sep = strpbrk(t, ",\t");
    char *lab = NULL;
    if (sep) {
      *sep = '\0';
      lab = c3_trim(sep + 1);
      t = c3_trim(t);
      if (!*lab) lab = NULL;
    }
    if (!*t || !c3_nifti_ext(t)) {
      s = c3_error(CSAL3D_ERR_FORMAT, "%s:%d: '%s' is not a .nii or .nii.gz path", path,
                   lineno, t);
      break;
    }
    int ch;
    s = c3_add_case(ds, c3_case_id(t, &ch), c3_join(dir, t), lab ? c3_join(dir, lab) : NULL);
  }
  if (s == CSAL3D_OK && ferror(f)) s = c3_error(CSAL3D_ERR_IO, "%s: read error", path);
  fclose(f);
  c3_free(dir);
  if (s == CSAL3D_OK) s = c3_check_unique_ids(ds, path);
  return s;
}

/* ---- public ---- */

CSAL3D_API csal3d_status csal3d_dataset_options_init(csal3d_dataset_options *options) {
  C3_CHECK_ARG(options, "dataset_options_init: options is NULL");
  memset(options, 0, sizeof *options);
  options->struct_size = sizeof *options;
  options->split = "training";
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
  struct stat st;
  if (stat(path, &st) != 0)
    return c3_error(CSAL3D_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  csal3d_dataset *ds;
  C3_TRY(c3_calloc_array(1, sizeof *ds, "dataset", (void **)&ds));
  csal3d_status s;
  if (S_ISDIR(st.st_mode)) {
    char *json = c3_join(path, "dataset.json");
    char *images = c3_join(path, !strcmp(o.split, "test") ? "imagesTs" : "imagesTr");
    char *labels = c3_join(path, "labelsTr");
    if (!json || !images || !labels) s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY, "out of memory");
    else if (c3_is_file(json)) s = c3_parse_json(ds, json, o.split);
    else if (c3_is_dir(images))
      s = c3_scan_folder(ds, images,
                         strcmp(o.split, "test") && c3_is_dir(labels) ? labels : NULL, NULL);
    else s = c3_scan_folder(ds, path, NULL, NULL);
    c3_free(json), c3_free(images), c3_free(labels);
  } else {
    size_t n = strlen(path);
    if (n >= 5 && !strcasecmp(path + n - 5, ".json")) s = c3_parse_json(ds, path, o.split);
    else if (c3_nifti_ext(path))
      s = c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                   "%s: a dataset is a folder, a dataset.json or a text file of paths; "
                   "load a single image with csal3d_volume_load", path);
    else s = c3_parse_list(ds, path);
  }
  if (s == CSAL3D_OK && ds->n == 0)
    s = c3_error(CSAL3D_ERR_FORMAT, "%s: no cases found (no .nii or .nii.gz files%s)", path,
                 S_ISDIR(st.st_mode) ? " in the folder or its imagesTr/" : " listed");
  for (size_t i = 0; s == CSAL3D_OK && o.check_files && i < ds->n; i++) {
    const c3_case *c = &ds->cases[i];
    for (int k = 0; k <= c->nimages && s == CSAL3D_OK; k++) {
      const char *p = k < c->nimages ? c->images[k] : c->label;
      if (p && !c3_is_file(p))
        s = c3_error(CSAL3D_ERR_IO, "%s: case '%s': %s: %s", path, c->id, p,
                     strerror(errno ? errno : ENOENT));
    }
  }
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

CSAL3D_API csal3d_status csal3d_dataset_load_image(const csal3d_dataset *dataset,
                                                   size_t index,
                                                   const csal3d_volume_load_options *options,
                                                   csal3d_volume **out) {
  C3_CHECK_ARG(out, "dataset_load_image: out is NULL");
  *out = NULL;
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
