/* Views, rotations, inverses and cube masks: signed axis permutations on [N, C, D, H, W]. */
#include "volume/views.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/rng.h"

c3_axes_map c3_axes_identity(void) {
  c3_axes_map m = {{0, 1, 2}, {0, 0, 0}};
  return m;
}

c3_axes_map c3_axes_view(int view) {
  c3_axes_map m = c3_axes_identity();
  if (view == 1) {
    m.perm[0] = 1;
    m.perm[1] = 0;
  } else if (view == 2) {
    m.perm[0] = 2;
    m.perm[2] = 0;
  }
  return m;
}

c3_axes_map c3_axes_rot90(int k) {
  c3_axes_map m = c3_axes_identity();
  switch (((k % 4) + 4) % 4) {
  case 1: /* out[i, j] = in[j, W-1-i] */
    m.perm[1] = 2, m.perm[2] = 1, m.flip[1] = 1;
    break;
  case 2: /* out[i, j] = in[H-1-i, W-1-j] */
    m.flip[1] = 1, m.flip[2] = 1;
    break;
  case 3: /* out[i, j] = in[H-1-j, i] */
    m.perm[1] = 2, m.perm[2] = 1, m.flip[2] = 1;
    break;
  default: break;
  }
  return m;
}

c3_axes_map c3_axes_then(c3_axes_map first, c3_axes_map second) {
  c3_axes_map m;
  for (int a = 0; a < 3; a++) {
    int b = second.perm[a];
    m.perm[a] = first.perm[b];
    m.flip[a] = second.flip[a] ^ first.flip[b];
  }
  return m;
}

c3_axes_map c3_axes_inverse(c3_axes_map m) {
  c3_axes_map inv;
  for (int a = 0; a < 3; a++) {
    inv.perm[m.perm[a]] = a;
    inv.flip[m.perm[a]] = m.flip[a];
  }
  return inv;
}

c3_axes_map c3_axes_observation(int view, int k) {
  return c3_axes_then(c3_axes_view(view), c3_axes_rot90(k));
}

void c3_axes_shape(c3_axes_map m, const int64_t in[3], int64_t out[3]) {
  int64_t t[3] = {in[m.perm[0]], in[m.perm[1]], in[m.perm[2]]};
  memcpy(out, t, sizeof t);
}

int c3_axes_equal(c3_axes_map a, c3_axes_map b) {
  for (int i = 0; i < 3; i++)
    if (a.perm[i] != b.perm[i] || !a.flip[i] != !b.flip[i]) return 0;
  return 1;
}

void c3_axes_apply_f32(c3_axes_map m, const float *in, int64_t lead,
                       const int64_t in_shape[3], float *out) {
  const int64_t in_stride[3] = {in_shape[1] * in_shape[2], in_shape[2], 1};
  int64_t out_shape[3], step[3], base = 0;
  c3_axes_shape(m, in_shape, out_shape);
  for (int a = 0; a < 3; a++) {
    int p = m.perm[a];
    step[a] = m.flip[a] ? -in_stride[p] : in_stride[p];
    if (m.flip[a]) base += (in_shape[p] - 1) * in_stride[p];
  }
  const int64_t vox = in_shape[0] * in_shape[1] * in_shape[2];
  const int64_t n1 = out_shape[1], n2 = out_shape[2];
  if (step[2] == 1) { /* rows stay contiguous: copy them */
    const int64_t rows = lead * out_shape[0];
#pragma omp parallel for schedule(static) if (lead * vox > (1 << 20))
    for (int64_t r = 0; r < rows; r++) {
      int64_t l = r / out_shape[0], o0 = r % out_shape[0];
      const float *src = in + l * vox + base + o0 * step[0];
      float *dst = out + l * vox + o0 * n1 * n2;
      for (int64_t o1 = 0; o1 < n1; o1++, dst += n2)
        memcpy(dst, src + o1 * step[1], (size_t)n2 * sizeof *dst);
    }
    return;
  }
  /* A gather across rows: tiles of 8 x 32 x 32 output voxels, so that the input cache
   * lines a tile touches are reused within it (a blocked transpose). */
  enum { T0 = 8, T1 = 32, T2 = 32 };
  const int64_t blocks0 = (out_shape[0] + T0 - 1) / T0, tasks = lead * blocks0;
#pragma omp parallel for schedule(static) if (lead * vox > (1 << 20))
  for (int64_t t = 0; t < tasks; t++) {
    int64_t l = t / blocks0, b0 = (t % blocks0) * T0;
    int64_t e0 = b0 + T0 < out_shape[0] ? b0 + T0 : out_shape[0];
    const float *src_l = in + l * vox + base;
    float *dst_l = out + l * vox;
    for (int64_t b1 = 0; b1 < n1; b1 += T1) {
      int64_t e1 = b1 + T1 < n1 ? b1 + T1 : n1;
      for (int64_t b2 = 0; b2 < n2; b2 += T2) {
        int64_t e2 = b2 + T2 < n2 ? b2 + T2 : n2;
        for (int64_t o0 = b0; o0 < e0; o0++)
          for (int64_t o1 = b1; o1 < e1; o1++) {
            const float *s = src_l + o0 * step[0] + o1 * step[1];
            float *d = dst_l + (o0 * n1 + o1) * n2;
            for (int64_t o2 = b2; o2 < e2; o2++) d[o2] = s[o2 * step[2]];
          }
      }
    }
  }
}

/* ---- masks ---- */

void c3_mask_grid(const int64_t shape[3], int cube, int64_t cubes[3]) {
  for (int i = 0; i < 3; i++) cubes[i] = (shape[i] + cube - 1) / cube;
}

int64_t c3_mask_hidden_count(int64_t total, double ratio) {
  if (!(ratio > 0)) return 0;
  if (ratio >= 1) return total;
  int64_t n = (int64_t)floor(ratio * (double)total + 0.5);
  return n < 0 ? 0 : n > total ? total : n;
}

csal3d_status c3_mask_draw(uint64_t seed, uint64_t id0, uint64_t id1, uint64_t id2,
                           int64_t total, int64_t hidden, uint8_t *mask) {
  C3_CHECK_ARG(total >= 0 && hidden >= 0 && hidden <= total,
               "mask: cannot hide %lld of %lld cubes", (long long)hidden,
               (long long)total);
  memset(mask, 0, (size_t)total);
  if (hidden == 0) return CSAL3D_OK;
  int64_t *chosen;
  C3_TRY(c3_alloc_array((size_t)hidden, sizeof *chosen, "mask cubes", (void **)&chosen));
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_MASK, id0, id1, id2);
  csal3d_status s = c3_rng_sample(&r, total, hidden, chosen);
  if (s == CSAL3D_OK)
    for (int64_t i = 0; i < hidden; i++) mask[chosen[i]] = 1;
  c3_free(chosen);
  return s;
}

void c3_mask_apply_f32(float *data, int64_t lead, const int64_t shape[3], int cube,
                       const uint8_t *mask) {
  int64_t cubes[3];
  c3_mask_grid(shape, cube, cubes);
  const int64_t plane = shape[1] * shape[2], vox = shape[0] * plane;
  const int64_t rows = lead * shape[0];
#pragma omp parallel for schedule(static) if (lead * vox > (1 << 20))
  for (int64_t r = 0; r < rows; r++) {
    int64_t l = r / shape[0], d = r % shape[0];
    const uint8_t *md = mask + (d / cube) * cubes[1] * cubes[2];
    float *row = data + l * vox + d * plane;
    for (int64_t h = 0; h < shape[1]; h++) {
      const uint8_t *mh = md + (h / cube) * cubes[2];
      for (int64_t cw = 0; cw < cubes[2]; cw++) {
        if (!mh[cw]) continue;
        int64_t w0 = cw * cube, w1 = w0 + cube < shape[2] ? w0 + cube : shape[2];
        memset(row + h * shape[2] + w0, 0, (size_t)(w1 - w0) * sizeof(float));
      }
    }
  }
}

void c3_mask_expand(const int64_t shape[3], int cube, const uint8_t *mask,
                    uint8_t *voxels) {
  int64_t cubes[3];
  c3_mask_grid(shape, cube, cubes);
  for (int64_t d = 0; d < shape[0]; d++)
    for (int64_t h = 0; h < shape[1]; h++)
      for (int64_t w = 0; w < shape[2]; w++)
        *voxels++ = mask[((d / cube) * cubes[1] + h / cube) * cubes[2] + w / cube];
}

/* ---- the 9 observations ---- */

void c3_ssl_draws_free(c3_ssl_draws *d) {
  if (!d) return;
  for (int o = 0; o < C3_SSL_OBSERVATIONS; o++) {
    c3_free(d->masks[o]);
    d->masks[o] = NULL;
  }
}

csal3d_status c3_ssl_draws_reframe(c3_ssl_draws *d) {
  for (int o = 0; o < C3_SSL_OBSERVATIONS; o++) {
    C3_CHECK_ARG(d->view[o] >= 0 && d->view[o] <= 2 && d->k[o] >= 0 && d->k[o] <= 3,
                 "observation %d: view %d and rotation %d must be in 0..2 and 0..3", o,
                 d->view[o], d->k[o]);
    int64_t s[3];
    c3_ssl_observation_shape(d, o, s);
    c3_mask_grid(s, d->cube, d->cubes[o]);
    int64_t total = d->cubes[o][0] * d->cubes[o][1] * d->cubes[o][2];
    if (!d->masks[o] || total != d->cubes_total[o]) {
      c3_free(d->masks[o]);
      d->masks[o] = NULL;
      C3_TRY(c3_alloc((size_t)total, "observation mask", (void **)&d->masks[o]));
    }
    d->cubes_total[o] = total;
    memset(d->masks[o], 0, (size_t)total);
  }
  return CSAL3D_OK;
}

csal3d_status c3_ssl_draws_init(c3_ssl_draws *d, const int64_t shape[3], int cube) {
  memset(d, 0, sizeof *d);
  C3_CHECK_ARG(cube >= 1, "mask cube side must be >= 1, got %d", cube);
  for (int i = 0; i < 3; i++)
    C3_CHECK_ARG(shape[i] >= 1, "crop shape [%lld, %lld, %lld] has an empty axis",
                 (long long)shape[0], (long long)shape[1], (long long)shape[2]);
  memcpy(d->shape, shape, sizeof d->shape);
  d->cube = cube;
  for (int o = 0; o < C3_SSL_OBSERVATIONS; o++) d->view[o] = o / 3;
  csal3d_status s = c3_ssl_draws_reframe(d);
  if (s != CSAL3D_OK) c3_ssl_draws_free(d);
  return s;
}

csal3d_status c3_ssl_draws_random(c3_ssl_draws *d, const int64_t shape[3], int cube,
                                  double hide_fraction, uint64_t seed, uint64_t id0,
                                  uint64_t id1) {
  C3_CHECK_ARG(hide_fraction >= 0 && hide_fraction <= 1,
               "mask fraction must be in [0, 1], got %g", hide_fraction);
  C3_TRY(c3_ssl_draws_init(d, shape, cube));
  c3_rng r;
  c3_rng_init(&r, seed, C3_RNG_VIEW, id0, id1, 0);
  for (int o = 0; o < C3_SSL_OBSERVATIONS; o++) d->k[o] = (int)c3_rng_below(&r, 4);
  csal3d_status s = c3_ssl_draws_reframe(d);
  for (int o = 0; s == CSAL3D_OK && o < C3_SSL_OBSERVATIONS; o++)
    s = c3_mask_draw(seed, id0, id1, (uint64_t)o, d->cubes_total[o],
                     c3_mask_hidden_count(d->cubes_total[o], hide_fraction), d->masks[o]);
  if (s != CSAL3D_OK) c3_ssl_draws_free(d);
  return s;
}

void c3_ssl_observation_shape(const c3_ssl_draws *d, int o, int64_t out[3]) {
  c3_axes_shape(c3_axes_observation(d->view[o], d->k[o]), d->shape, out);
}

void c3_ssl_observation_f32(const c3_ssl_draws *d, int o, const float *x, int64_t lead,
                            float *out, float *unmasked) {
  int64_t s[3];
  c3_ssl_observation_shape(d, o, s);
  c3_axes_apply_f32(c3_axes_observation(d->view[o], d->k[o]), x, lead, d->shape, out);
  if (unmasked) memcpy(unmasked, out, (size_t)(lead * s[0] * s[1] * s[2]) * sizeof *out);
  c3_mask_apply_f32(out, lead, s, d->cube, d->masks[o]);
}
