/* Import of converted public checkpoints with the key mapping of import.h. */
#include "model/import.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

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

c3_import_kind c3_import_map_name(const char *key, char *out, size_t cap) {
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
  static const char *const ignored_prefix[] = {
      "contrastive_head.", "contrastive_pre.", "rotation_pre.", "encoder1.", "encoder2.",
      "encoder3.",         "encoder4.",        "encoder10.",    "decoder1.", "decoder2.",
      "decoder3.",         "decoder4.",        "decoder5.",     "out.",      NULL};
  if (c3_ends(buf, "relative_position_index") || strstr(buf, "mask_token"))
    return C3_IMPORT_IGNORED;
  for (int i = 0; ignored_prefix[i]; i++)
    if (c3_starts(buf, ignored_prefix[i])) return C3_IMPORT_IGNORED;
  return C3_IMPORT_MAPPED;
}

static void c3_append(char *text, size_t cap, const char *fmt, const char *s) {
  size_t n = strlen(text);
  if (n + 1 < cap) snprintf(text + n, cap - n, fmt, s);
}

csal3d_status c3_model_import(c3_model *m, const c3_safetensors *st,
                              c3_import_report *rep) {
  C3_CHECK_ARG(m && st, "c3_model_import: NULL argument");
  c3_import_report local;
  if (!rep) rep = &local;
  memset(rep, 0, sizeof *rep);
  const char *src = c3_st_source(st);
  float *host;
  unsigned char *seen;
  C3_TRY(c3_alloc_array(m->total, sizeof(float), "import", (void **)&host));
  csal3d_status s = c3_calloc_array(m->nparams, 1, "import", (void **)&seen);
  if (s == CSAL3D_OK) s = c3_model_get_params(m, host);
  char unknown[512] = "";
  for (size_t i = 0; s == CSAL3D_OK && i < c3_st_count(st); i++) {
    const c3_st_entry *e = c3_st_entry_at(st, i);
    char name[512];
    if (c3_import_map_name(e->name, name, sizeof name) == C3_IMPORT_IGNORED) {
      rep->ignored++;
      continue;
    }
    int k = c3_model_find_param(m, name);
    if (k < 0) {
      if (rep->unknown < 5) c3_append(unknown, sizeof unknown, rep->unknown ? ", %s" : "%s",
                                      e->name);
      rep->unknown++;
      continue;
    }
    const c3_param *p = &m->params[k];
    int same = e->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
    if (!same) {
      char a[128] = "", b[128] = "";
      for (int d = 0; d < e->ndim && strlen(a) < 100; d++)
        snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? ", " : "",
                 (long long)e->shape[d]);
      for (int d = 0; d < p->ndim; d++)
        snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? ", " : "",
                 (long long)p->shape[d]);
      s = c3_error(CSAL3D_ERR_FORMAT,
                   "%s: '%s' (as '%s') has shape [%s], the model needs [%s]: choose "
                   "embed_dim and in_channels as the checkpoint's",
                   src, e->name, name, a, b);
      break;
    }
    if (seen[k]) {
      s = c3_error(CSAL3D_ERR_FORMAT, "%s: two tensors map to '%s' (the second is '%s')",
                   src, name, e->name);
      break;
    }
    s = c3_st_entry_read_f32(st, e, host + p->offset, p->numel);
    seen[k] = 1;
    rep->loaded++;
  }
  if (s == CSAL3D_OK && rep->loaded == 0)
    s = c3_error(CSAL3D_ERR_FORMAT,
                 "%s: no tensor matches a model parameter (%d unknown, e.g. %s)", src,
                 rep->unknown, unknown[0] ? unknown : "none");
  if (s == CSAL3D_OK) {
    char missing[512] = "";
    for (size_t k = 0; k < m->nparams; k++)
      if (!seen[k]) {
        if (rep->missing < 5)
          c3_append(missing, sizeof missing, rep->missing ? ", %s" : "%s", m->params[k].name);
        rep->missing++;
      }
    snprintf(rep->text, sizeof rep->text,
             "%s: loaded %d of %zu parameters; %d missing (kept as initialised)%s%s%s; %d "
             "ignored (relative position index, mask token, contrastive head, "
             "segmentation decoder); %d unknown%s%s%s",
             src, rep->loaded, m->nparams, rep->missing, missing[0] ? ": " : "", missing,
             rep->missing > 5 ? ", ..." : "", rep->ignored, rep->unknown,
             unknown[0] ? ": " : "", unknown, rep->unknown > 5 ? ", ..." : "");
    s = c3_model_set_params(m, host);
  }
  c3_free(seen);
  c3_free(host);
  return s;
}
