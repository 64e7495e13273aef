/* Starting weights from converted public checkpoints and our own (see import.h). */
#include "model/import.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "model/model_internal.h"

static int c3_starts(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int c3_ends(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Replaces the first `from` in buf (cap bytes) by `to`. */
static void c3_replace(char *buf, size_t cap, const char *from, const char *to) {
  char *hit = strstr(buf, from);
  if (!hit) return;
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(hit - buf), buf, to, hit + strlen(from));
  snprintf(buf, cap, "%s", tmp);
}

c3_import_kind c3_import_map_name(const char *key, char *out, size_t cap,
                                  c3_import_why *why) {
  c3_import_why local;
  if (!why) why = &local;
  *why = C3_IMPORT_WHY_NONE;
  for (;;) {
    if (c3_starts(key, "module.")) key += 7;
    else if (c3_starts(key, "state_dict.")) key += 11;
    else break;
  }
  char buf[512];
  if (c3_starts(key, "swin_vit.")) snprintf(buf, sizeof buf, "swinViT.%s", key + 9);
  else if (c3_starts(key, "patch_embed.") ||
           (c3_starts(key, "layers") && isdigit((unsigned char)key[6])))
    snprintf(buf, sizeof buf, "swinViT.%s", key);
  else snprintf(buf, sizeof buf, "%s", key);
  c3_replace(buf, sizeof buf, ".mlp.fc1.", ".mlp.linear1.");
  c3_replace(buf, sizeof buf, ".mlp.fc2.", ".mlp.linear2.");
  snprintf(out, cap, "%s", buf);
  static const char *const segmentation[] = {
      "encoder1.", "encoder2.", "encoder3.", "encoder4.", "encoder10.", "decoder1.",
      "decoder2.", "decoder3.", "decoder4.", "decoder5.", "out.",      NULL};
  static const char *const heads[] = {"contrastive_head.", "contrastive_pre.",
                                      "rotation_pre.", NULL};
  if (c3_ends(buf, "relative_position_index")) *why = C3_IMPORT_WHY_INDEX;
  else if (c3_starts(buf, "optim.")) *why = C3_IMPORT_WHY_OPTIMISER;
  else if (strstr(buf, "mask_token")) *why = C3_IMPORT_WHY_OTHER_HEAD;
  for (int i = 0; !*why && segmentation[i]; i++)
    if (c3_starts(buf, segmentation[i])) *why = C3_IMPORT_WHY_SEGMENTATION;
  for (int i = 0; !*why && heads[i]; i++)
    if (c3_starts(buf, heads[i])) *why = C3_IMPORT_WHY_OTHER_HEAD;
  return *why ? C3_IMPORT_IGNORED : C3_IMPORT_MAPPED;
}

const char *c3_import_why_text(c3_import_why why) {
  switch (why) {
    case C3_IMPORT_WHY_INDEX: return "relative_position_index (recomputed)";
    case C3_IMPORT_WHY_OPTIMISER: return "optimiser state (a new run starts at step 0)";
    case C3_IMPORT_WHY_SEGMENTATION: return "SwinUNETR segmentation decoder";
    case C3_IMPORT_WHY_OTHER_HEAD: return "other self-supervised heads";
    case C3_IMPORT_WHY_UNKNOWN: return "not in the SSL model";
    default: return "used";
  }
}

void c3_import_report_free(c3_import_report *r) {
  if (!r) return;
  c3_free(r->details);
  r->details = NULL;
}

/* ---- a growing text ---- */

typedef struct c3_text {
  char *s;
  size_t len, cap;
  int failed;
} c3_text;

static void c3_text_add(c3_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void c3_text_add(c3_text *t, const char *fmt, ...) {
  if (t->failed) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (t->len + (size_t)n + 1 > t->cap) {
    size_t cap = (t->len + (size_t)n + 1) * 2;
    char *s;
    if (c3_alloc(cap, "import report", (void **)&s) != CSAL3D_OK) {
      t->failed = 1;
      return;
    }
    if (t->s) memcpy(s, t->s, t->len + 1);
    c3_free(t->s);
    t->s = s;
    t->cap = cap;
  }
  va_start(ap, fmt);
  vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  t->len += (size_t)n;
}

/* ---- the model's parts ---- */

enum { C3_PART_ENCODER, C3_PART_ROTATION, C3_PART_DECODER, C3_PARTS };
static const char *const c3_part_name[C3_PARTS] = {"the encoder", "the rotation head",
                                                   "the decoder"};

static int c3_part(const char *name) {
  if (c3_starts(name, "swinViT.")) return C3_PART_ENCODER;
  if (c3_starts(name, "rotation_head.")) return C3_PART_ROTATION;
  return C3_PART_DECODER;
}

/* "the encoder, the decoder (3 of 12)" for the parts where count[part] > 0. */
static void c3_parts_text(const int count[C3_PARTS], const int total[C3_PARTS], char *buf,
                          size_t n) {
  size_t a = 0;
  buf[0] = '\0';
  for (int p = 0; p < C3_PARTS && a < n; p++) {
    if (!count[p]) continue;
    a += (size_t)snprintf(buf + a, n - a, "%s%s", a ? ", " : "", c3_part_name[p]);
    if (count[p] < total[p] && a < n)
      a += (size_t)snprintf(buf + a, n - a, " (%d of %d)", count[p], total[p]);
  }
}

/* ---- checks ---- */

/* The patch embedding decides embed_dim and in_channels: a mismatch names the option. */
static csal3d_status c3_check_embedding(const c3_model *m, const c3_safetensors *st,
                                        const c3_st_entry *e) {
  const c3_param *p = &m->params[m->id.embed_w];
  if (e->ndim != 5 || (e->shape[0] == p->shape[0] && e->shape[1] == p->shape[1]))
    return CSAL3D_OK; /* the general shape check speaks */
  char a[128], b[128];
  c3_model_shape_text(e->ndim, e->shape, a, sizeof a);
  c3_model_shape_text(p->ndim, p->shape, b, sizeof b);
  if (e->shape[0] != p->shape[0])
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "%s: '%s' has shape [%s], the model's '%s' [%s]: the weights have "
                    "embed_dim %lld, the model %d; set the option embed_dim to %lld",
                    c3_st_source(st), e->name, a, p->name, b, (long long)e->shape[0],
                    m->cfg.embed_dim, (long long)e->shape[0]);
  return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                  "%s: '%s' has shape [%s], the model's '%s' [%s]: the weights take %lld "
                  "input channel(s), the model %d (the option in_channels)",
                  c3_st_source(st), e->name, a, p->name, b, (long long)e->shape[1],
                  m->cfg.in_channels);
}

static csal3d_status c3_check_shape(const c3_param *p, const c3_safetensors *st,
                                    const c3_st_entry *e) {
  int same = e->ndim == p->ndim;
  for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
  if (same) return CSAL3D_OK;
  char a[128], b[128];
  c3_model_shape_text(e->ndim, e->shape, a, sizeof a);
  c3_model_shape_text(p->ndim, p->shape, b, sizeof b);
  return c3_error(CSAL3D_ERR_FORMAT, "%s: '%s' has shape [%s], the model's '%s' needs [%s]",
                  c3_st_source(st), e->name, a, p->name, b);
}

static void c3_int4_text(const int v[4], char *buf, size_t n) {
  snprintf(buf, n, "%d,%d,%d,%d", v[0], v[1], v[2], v[3]);
}

/* The metadata keys present must describe the model; merge_order is taken. */
static csal3d_status c3_check_metadata(const c3_model *m, const c3_safetensors *st,
                                       int rotation_loaded, c3_merge_order *merge) {
  const char *src = c3_st_source(st), *key;
  c3_model_config fc;
  C3_TRY(c3_model_config_from_metadata(st, &fc));
  const c3_model_config *mc = &m->cfg;
  int v = 0;
  C3_TRY(c3_model_metadata_int(st, "embed_dim", &v, &key));
  if (key && v != mc->embed_dim)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: metadata %s %d contradicts its weights (embed_dim %d, as the model)",
                    src, key, v, mc->embed_dim);
  C3_TRY(c3_model_metadata_int(st, "in_channels", &v, &key));
  if (key && v != mc->in_channels)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: metadata %s %d contradicts its weights (in_channels %d, as the "
                    "model)",
                    src, key, v, mc->in_channels);
  char a[64], b[64];
  if (memcmp(fc.depths, mc->depths, sizeof fc.depths) != 0) {
    c3_int4_text(fc.depths, a, sizeof a);
    c3_int4_text(mc->depths, b, sizeof b);
    return c3_error(CSAL3D_ERR_UNSUPPORTED, "%s: metadata depths %s: the model has %s", src,
                    a, b);
  }
  if (memcmp(fc.heads, mc->heads, sizeof fc.heads) != 0) {
    c3_int4_text(fc.heads, a, sizeof a);
    c3_int4_text(mc->heads, b, sizeof b);
    return c3_error(CSAL3D_ERR_UNSUPPORTED, "%s: metadata num_heads %s: the model has %s",
                    src, a, b);
  }
  if (fc.window != mc->window || fc.patch != mc->patch || fc.mlp_ratio != mc->mlp_ratio)
    return c3_error(CSAL3D_ERR_UNSUPPORTED,
                    "%s: metadata window_size %d, patch_size %d, mlp_ratio %d: the model has "
                    "%d, %d, %d",
                    src, fc.window, fc.patch, fc.mlp_ratio, mc->window, mc->patch,
                    mc->mlp_ratio);
  if (rotation_loaded && c3_st_metadata(st, "rotation_input") && fc.rot_input != mc->rot_input) {
    const char *names[2] = {"mean", "first_token"};
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT,
                    "%s: its rotation head reads the %s (metadata rotation_input), the "
                    "model's the %s; set the option rotation_input to %s",
                    src, fc.rot_input == C3_ROT_FIRST_TOKEN ? "first token" : "mean",
                    mc->rot_input == C3_ROT_FIRST_TOKEN ? "first token" : "mean",
                    names[fc.rot_input == C3_ROT_FIRST_TOKEN]);
  }
  *merge = c3_st_metadata(st, "merge_order") ? fc.merge_order : C3_MERGE_DISTINCT;
  return CSAL3D_OK;
}

/* ---- the import ---- */

typedef struct c3_import_state {
  size_t *from;        /* [nparams]: file entry index + 1, 0 when the file has none */
  c3_import_why *why;  /* [entries] */
  float *host;
} c3_import_state;

/* Maps every file key and checks what it maps to (no values read yet). */
static csal3d_status c3_import_map(const c3_model *m, const c3_safetensors *st,
                                   c3_import_state *is) {
  const char *src = c3_st_source(st);
  for (size_t i = 0; i < c3_st_count(st); i++) {
    const c3_st_entry *e = c3_st_entry_at(st, i);
    char name[512];
    if (c3_import_map_name(e->name, name, sizeof name, &is->why[i]) == C3_IMPORT_IGNORED)
      continue;
    int k = c3_model_find_param(m, name);
    if (k < 0 && c3_starts(name, "swinViT.")) {
      char d[64];
      c3_int4_text(m->cfg.depths, d, sizeof d);
      return c3_error(CSAL3D_ERR_FORMAT,
                      "%s: '%s' (as '%s') is no parameter of the model's Swin encoder "
                      "(depths %s, window %d): the file holds another architecture",
                      src, e->name, name, d, m->cfg.window);
    }
    if (k < 0) {
      is->why[i] = C3_IMPORT_WHY_UNKNOWN;
      continue;
    }
    if (is->from[k])
      return c3_error(CSAL3D_ERR_FORMAT, "%s: '%s' and '%s' both map to '%s'", src,
                      c3_st_entry_at(st, is->from[k] - 1)->name, e->name, name);
    is->from[k] = i + 1;
  }
  size_t pe = is->from[m->id.embed_w];
  if (pe) C3_TRY(c3_check_embedding(m, st, c3_st_entry_at(st, pe - 1)));
  int enc = 0, enc_total = 0;
  const char *first_missing = NULL;
  for (size_t k = 0; k < m->nparams; k++) {
    const c3_param *p = &m->params[k];
    if (is->from[k]) C3_TRY(c3_check_shape(p, st, c3_st_entry_at(st, is->from[k] - 1)));
    if (c3_part(p->name) != C3_PART_ENCODER) continue;
    enc_total++;
    if (is->from[k]) enc++;
    else if (!first_missing) first_missing = p->name;
  }
  if (enc == 0)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: no tensor of a Swin encoder (MONAI's swinViT.*, or module.patch_embed.*, "
                    "module.layers1.* ... as in the public self-supervised checkpoints; %zu "
                    "tensors, e.g. '%s')",
                    src, c3_st_count(st),
                    c3_st_count(st) ? c3_st_entry_at(st, 0)->name : "none");
  if (enc < enc_total)
    return c3_error(CSAL3D_ERR_FORMAT,
                    "%s: has %d of the encoder's %d tensors; '%s' is missing (a partial "
                    "encoder is not loaded)",
                    src, enc, enc_total, first_missing);
  return CSAL3D_OK;
}

static void c3_import_texts(const c3_model *m, const c3_safetensors *st,
                            const c3_import_state *is, c3_import_report *rep) {
  int loaded[C3_PARTS] = {0}, init[C3_PARTS] = {0}, total[C3_PARTS] = {0};
  c3_text t = {0};
  for (size_t k = 0; k < m->nparams; k++) {
    const char *name = m->params[k].name;
    int part = c3_part(name);
    total[part]++;
    if (is->from[k]) {
      loaded[part]++;
      rep->loaded++;
      c3_text_add(&t, "loaded      %s <- %s\n", name, c3_st_entry_at(st, is->from[k] - 1)->name);
    } else {
      init[part]++;
      rep->initialised++;
      c3_text_add(&t, "initialised %s\n", name);
    }
  }
  for (size_t i = 0; i < c3_st_count(st); i++) {
    if (!is->why[i]) continue;
    rep->ignored++;
    rep->ignored_why[is->why[i]]++;
    c3_text_add(&t, "ignored     %s: %s\n", c3_st_entry_at(st, i)->name,
                c3_import_why_text(is->why[i]));
  }
  rep->details = t.failed ? NULL : t.s;
  if (t.failed) c3_free(t.s);
  char lp[256], ip[256], ig[512] = "";
  c3_parts_text(loaded, total, lp, sizeof lp);
  c3_parts_text(init, total, ip, sizeof ip);
  size_t a = 0;
  for (int w = 1; w < C3_IMPORT_WHY_COUNT && a < sizeof ig; w++)
    if (rep->ignored_why[w])
      a += (size_t)snprintf(ig + a, sizeof ig - a, "%s%d %s", a ? ", " : "",
                            rep->ignored_why[w], c3_import_why_text((c3_import_why)w));
  char init_text[320] = "nothing initialised";
  if (rep->initialised)
    snprintf(init_text, sizeof init_text, "initialised %d as for a new model (%.256s)",
             rep->initialised, ip);
  int n = snprintf(rep->summary, sizeof rep->summary,
                   "%s: loaded %d tensors (%s); %s; ignored %d%s%s%s%s", c3_st_source(st),
                   rep->loaded, lp, init_text, rep->ignored, rep->ignored ? " (" : "", ig,
                   rep->ignored ? ")" : "",
                   rep->merge_monai ? "; MONAI's patch merging order (metadata merge_order)"
                                    : "");
  if (n >= (int)sizeof rep->summary) /* a very long path: say it was cut */
    memcpy(rep->summary + sizeof rep->summary - 4, "...", 4);
}

csal3d_status c3_model_import(c3_model *m, const c3_safetensors *st, uint64_t seed,
                              c3_import_report *rep) {
  C3_CHECK_ARG(m && st, "c3_model_import: NULL argument");
  c3_import_report local;
  if (!rep) rep = &local;
  memset(rep, 0, sizeof *rep);
  size_t n = c3_st_count(st);
  c3_import_state is = {0};
  csal3d_status s = c3_calloc_array(m->nparams, sizeof *is.from, "import", (void **)&is.from);
  if (s == CSAL3D_OK)
    s = c3_calloc_array(n ? n : 1, sizeof *is.why, "import", (void **)&is.why);
  if (s == CSAL3D_OK) s = c3_import_map(m, st, &is);
  c3_merge_order merge = m->cfg.merge_order;
  if (s == CSAL3D_OK)
    s = c3_check_metadata(m, st, is.from[m->id.rot_w] != 0, &merge);
  if (s == CSAL3D_OK)
    s = c3_alloc_array(m->total, sizeof(float), "import", (void **)&is.host);
  if (s == CSAL3D_OK) s = c3_model_init_host(m, seed, is.host);
  for (size_t k = 0; s == CSAL3D_OK && k < m->nparams; k++)
    if (is.from[k])
      s = c3_st_entry_read_f32(st, c3_st_entry_at(st, is.from[k] - 1),
                               is.host + m->params[k].offset, m->params[k].numel);
  if (s == CSAL3D_OK) s = c3_model_set_params(m, is.host);
  if (s == CSAL3D_OK && merge != m->cfg.merge_order) {
    m->cfg.merge_order = merge;
    c3_model_plan_free(m); /* the merging descriptors follow the order */
  }
  if (s == CSAL3D_OK) {
    rep->merge_monai = merge == C3_MERGE_MONAI && c3_st_metadata(st, "merge_order");
    c3_import_texts(m, st, &is, rep);
  }
  c3_free(is.host);
  c3_free(is.why);
  c3_free(is.from);
  if (rep == &local) c3_import_report_free(&local);
  return s;
}
