/* Internals of lib/model shared between its files. */
#ifndef C3_MODEL_MODEL_INTERNAL_H
#define C3_MODEL_MODEL_INTERNAL_H

#include "model/model.h"

/* Offsets (in floats) of one block's saved activations in the workspace. */
typedef struct c3_block_acts {
  size_t ln1_mean, ln1_var, xw, qkv, probs, ao, xmid, ln2_mean, ln2_var, ln2, h1,
      g, xout;
} c3_block_acts;

typedef struct c3_stage_plan {
  int64_t d, h, w, tokens, ch, heads; /* the stage's input grid and channels */
  c3_window_desc win[2];              /* [block parity]: effective window and shift */
  int shifted[2];                     /* the block parity uses a shift (and a mask) */
  int64_t nwin, ntok;                 /* windows per image, tokens per window */
  int32_t *region;                    /* engine memory [nwin, ntok] or NULL */
  c3_attn_desc attn[2];
  c3_merge_desc merge;
  int64_t od, oh, ow, out_tokens;     /* after merging */
  c3_block_acts blk[C3_MODEL_MAX_DEPTH];
  size_t merged, dn_mean, dn_var, mn, y, hid, hid_mean, hid_var;
} c3_stage_plan;

typedef struct c3_level_plan {
  int64_t d, h, w, c_in, c_out; /* the conv's input grid (= output grid) */
  size_t in, co, mean, var, up;
} c3_level_plan;

struct c3_model_plan {
  int64_t n, dhw[3];
  int train;        /* training layout: every block keeps its activations */
  int probs_stored;
  c3_stage_plan st[C3_MODEL_STAGES];
  size_t e0, h0, h0_mean, h0_var;
  c3_level_plan lv[C3_MODEL_LEVELS];
  size_t recon, pooled, logits;
  size_t tmp_tc, tmp_win, act; /* forward temporaries */
  float *ws;
  size_t ws_floats, ws_cap; /* used / allocated floats (kept across shapes) */
  /* offsets into the model's backward buffers (m->bws, allocated on the first
   * backward, shared by the slots) */
  size_t bws_floats;
  size_t gx, da, db, dbig1, dbig2, dwin1, dwin2, dd1, dd2, dh4, dpool;
  int backward_ready; /* the last forward ran with train = 1 */
};

/* Frees every slot's workspace and the backward buffers. */
void c3_model_plan_free(c3_model *m);

#endif
