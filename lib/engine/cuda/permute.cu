/* Layout permutes: window partition (pad + cyclic shift + partition) and merge, patch
 * merging gather and its scatter-add (as a gather: one writer per element), tiled
 * transposes, and spatial permutations with flips. One thread per output element,
 * channels fastest, so that warps read and write contiguous rows. */
#include "engine/cuda/cuda_internal.h"

#define GRID_LOOP(i, n)                                                        \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);    \
       i += (int64_t)gridDim.x * blockDim.x)
#define LAUNCH(n) <<<c3cu_blocks((n), 256), 256, 0, c3cu(e)->stream>>>

/* ---- windows ---------------------------------------------------------------------------- */

struct win_geom {
  int64_t sz[3], wn[3], P[3], nwin, T, C;
  int win[3], shift[3];
};

static csal3d_status window_check(c3_engine *e, const c3_window_desc *d, const char *op) {
  CU_CHECK_ARG(e, d && d->batch >= 1 && d->d >= 1 && d->h >= 1 && d->w >= 1 && d->c >= 1,
               "%s: bad sizes", op);
  for (int a = 0; a < 3; a++)
    CU_CHECK_ARG(e, d->window[a] >= 1 && d->shift[a] >= 0 && d->shift[a] < d->window[a],
                 "%s: window %d / shift %d on axis %d", op, d->window[a], d->shift[a], a);
  return CSAL3D_OK;
}

static win_geom win_make(const c3_window_desc *d) {
  win_geom g;
  g.sz[0] = d->d;
  g.sz[1] = d->h;
  g.sz[2] = d->w;
  for (int a = 0; a < 3; a++) {
    g.win[a] = d->window[a];
    g.shift[a] = d->shift[a];
    g.wn[a] = (g.sz[a] + d->window[a] - 1) / d->window[a];
    g.P[a] = g.wn[a] * d->window[a];
  }
  g.nwin = g.wn[0] * g.wn[1] * g.wn[2];
  g.T = (int64_t)d->window[0] * d->window[1] * d->window[2];
  g.C = d->c;
  return g;
}

__global__ void k_window_partition(win_geom g, int64_t total, const float *x, float *xw,
                                   int accum) {
  GRID_LOOP(idx, total) {
    int64_t c = idx % g.C, row = idx / g.C;
    int64_t t = row % g.T, win = (row / g.T) % g.nwin, b = row / (g.T * g.nwin);
    int64_t td = t / (g.win[1] * g.win[2]), th = (t / g.win[2]) % g.win[1], tw = t % g.win[2];
    int64_t wd = win / (g.wn[1] * g.wn[2]), wh = (win / g.wn[2]) % g.wn[1], ww = win % g.wn[2];
    int64_t q0 = (wd * g.win[0] + td + g.shift[0]) % g.P[0];
    int64_t q1 = (wh * g.win[1] + th + g.shift[1]) % g.P[1];
    int64_t q2 = (ww * g.win[2] + tw + g.shift[2]) % g.P[2];
    float v = 0.0f;
    if (q0 < g.sz[0] && q1 < g.sz[1] && q2 < g.sz[2])
      v = x[(((b * g.sz[0] + q0) * g.sz[1] + q1) * g.sz[2] + q2) * g.C + c];
    xw[idx] = accum ? xw[idx] + v : v;
  }
}

__global__ void k_window_merge(win_geom g, int64_t total, const float *xw, float *x,
                               int accum) {
  GRID_LOOP(idx, total) {
    int64_t c = idx % g.C, row = idx / g.C;
    int64_t q2 = row % g.sz[2], q1 = (row / g.sz[2]) % g.sz[1],
            q0 = (row / (g.sz[1] * g.sz[2])) % g.sz[0];
    int64_t b = row / (g.sz[0] * g.sz[1] * g.sz[2]);
    int64_t p0 = (q0 - g.shift[0] + g.P[0]) % g.P[0];
    int64_t p1 = (q1 - g.shift[1] + g.P[1]) % g.P[1];
    int64_t p2 = (q2 - g.shift[2] + g.P[2]) % g.P[2];
    int64_t win = ((p0 / g.win[0]) * g.wn[1] + p1 / g.win[1]) * g.wn[2] + p2 / g.win[2];
    int64_t t = ((p0 % g.win[0]) * g.win[1] + p1 % g.win[1]) * g.win[2] + p2 % g.win[2];
    float v = xw[((b * g.nwin + win) * g.T + t) * g.C + c];
    x[idx] = accum ? x[idx] + v : v;
  }
}

static csal3d_status cu_window_partition(c3_engine *e, const c3_window_desc *d,
                                         const float *x, float *xw, int accum) {
  CU_TRY(window_check(e, d, "window_partition"));
  CU_CHECK_ARG(e, x && xw, "window_partition: NULL tensor");
  win_geom g = win_make(d);
  int64_t total = d->batch * g.nwin * g.T * g.C;
  k_window_partition LAUNCH(total)(g, total, x, xw, accum);
  CU_LAUNCHED(e, "window_partition");
  return CSAL3D_OK;
}

static csal3d_status cu_window_merge(c3_engine *e, const c3_window_desc *d, const float *xw,
                                     float *x, int accum) {
  CU_TRY(window_check(e, d, "window_merge"));
  CU_CHECK_ARG(e, x && xw, "window_merge: NULL tensor");
  win_geom g = win_make(d);
  int64_t total = d->batch * d->d * d->h * d->w * g.C;
  k_window_merge LAUNCH(total)(g, total, xw, x, accum);
  CU_LAUNCHED(e, "window_merge");
  return CSAL3D_OK;
}

/* ---- patch merging ------------------------------------------------------------------------- */

struct merge_geom {
  int64_t D, H, W, C, od, oh, ow;
  unsigned char order[8];
};

static csal3d_status merge_check(c3_engine *e, const c3_merge_desc *d, const char *op) {
  CU_CHECK_ARG(e, d && d->batch >= 1 && d->d >= 1 && d->h >= 1 && d->w >= 1 && d->c >= 1,
               "%s: bad sizes", op);
  for (int s = 0; s < 8; s++)
    CU_CHECK_ARG(e, d->order[s] < 8, "%s: order[%d] = %d (must be 0..7)", op, s, d->order[s]);
  return CSAL3D_OK;
}

static merge_geom merge_make(const c3_merge_desc *d) {
  merge_geom g;
  g.D = d->d;
  g.H = d->h;
  g.W = d->w;
  g.C = d->c;
  g.od = (d->d + 1) / 2;
  g.oh = (d->h + 1) / 2;
  g.ow = (d->w + 1) / 2;
  for (int s = 0; s < 8; s++) g.order[s] = d->order[s];
  return g;
}

__global__ void k_merge_fwd(merge_geom g, int64_t total, const float *x, float *y) {
  GRID_LOOP(idx, total) {
    int64_t c = idx % g.C, s = (idx / g.C) % 8, pos = idx / (8 * g.C);
    int64_t k = pos % g.ow, j = (pos / g.ow) % g.oh, i = (pos / (g.ow * g.oh)) % g.od;
    int64_t b = pos / (g.ow * g.oh * g.od);
    int o = g.order[s];
    int64_t z0 = 2 * i + (o >> 2), z1 = 2 * j + ((o >> 1) & 1), z2 = 2 * k + (o & 1);
    float v = 0.0f;
    if (z0 < g.D && z1 < g.H && z2 < g.W) v = x[(((b * g.D + z0) * g.H + z1) * g.W + z2) * g.C + c];
    y[idx] = v;
  }
}

__global__ void k_merge_bwd(merge_geom g, int64_t total, const float *dy, float *dx,
                            int accum) {
  GRID_LOOP(idx, total) {
    int64_t c = idx % g.C, pos = idx / g.C;
    int64_t z2 = pos % g.W, z1 = (pos / g.W) % g.H, z0 = (pos / (g.W * g.H)) % g.D;
    int64_t b = pos / (g.W * g.H * g.D);
    int pat = (int)((z0 & 1) << 2 | (z1 & 1) << 1 | (z2 & 1));
    const float *yr = dy + (((b * g.od + z0 / 2) * g.oh + z1 / 2) * g.ow + z2 / 2) * 8 * g.C;
    float s = accum ? dx[idx] : 0.0f;
    for (int k = 0; k < 8; k++)
      if (g.order[k] == pat) s += yr[k * g.C + c];
    dx[idx] = s;
  }
}

static csal3d_status cu_patch_merge_fwd(c3_engine *e, const c3_merge_desc *d, const float *x,
                                        float *y) {
  CU_TRY(merge_check(e, d, "patch_merge_fwd"));
  CU_CHECK_ARG(e, x && y, "patch_merge_fwd: NULL tensor");
  merge_geom g = merge_make(d);
  int64_t total = d->batch * g.od * g.oh * g.ow * 8 * g.C;
  k_merge_fwd LAUNCH(total)(g, total, x, y);
  CU_LAUNCHED(e, "patch_merge_fwd");
  return CSAL3D_OK;
}

static csal3d_status cu_patch_merge_bwd(c3_engine *e, const c3_merge_desc *d, const float *dy,
                                        float *dx, int accum) {
  CU_TRY(merge_check(e, d, "patch_merge_bwd"));
  CU_CHECK_ARG(e, dy && dx, "patch_merge_bwd: NULL tensor");
  merge_geom g = merge_make(d);
  int64_t total = d->batch * g.D * g.H * g.W * g.C;
  k_merge_bwd LAUNCH(total)(g, total, dy, dx, accum);
  CU_LAUNCHED(e, "patch_merge_bwd");
  return CSAL3D_OK;
}

/* ---- transpose ------------------------------------------------------------------------------ */

#define TT 32
/* 1-D grid over (batch, row tile, column tile); block 32 x 8 */
__global__ void k_transpose(int64_t rows, int64_t cols, int64_t gx, int64_t gy, const float *x,
                            float *y, int accum) {
  __shared__ float tile[TT][TT + 1];
  int64_t bid = blockIdx.x;
  int64_t tx = bid % gx, ty = (bid / gx) % gy, b = bid / (gx * gy);
  const float *xs = x + b * rows * cols;
  float *ys = y + b * rows * cols;
  int64_t r0 = ty * TT, c0 = tx * TT;
  for (int k = threadIdx.y; k < TT; k += 8) {
    int64_t r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = xs[r * cols + c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < TT; k += 8) {
    int64_t c = c0 + k, r = r0 + threadIdx.x;
    if (r < rows && c < cols) {
      float v = tile[threadIdx.x][k];
      int64_t o = c * rows + r;
      ys[o] = accum ? ys[o] + v : v;
    }
  }
}

csal3d_status c3cu_transpose(c3_engine *e, int64_t batch, int64_t rows, int64_t cols,
                             const float *x, float *y, int accum) {
  CU_CHECK_ARG(e, batch >= 1 && rows >= 1 && cols >= 1 && x && y,
               "transpose: bad arguments (batch %lld, rows %lld, cols %lld)", (long long)batch,
               (long long)rows, (long long)cols);
  int64_t gx = (cols + TT - 1) / TT, gy = (rows + TT - 1) / TT;
  int64_t blocks = gx * gy * batch;
  CU_CHECK_ARG(e, blocks < 2147483647LL,
               "transpose: %lld x %lld x batch %lld is beyond this kernel's grid",
               (long long)rows, (long long)cols, (long long)batch);
  k_transpose<<<(unsigned)blocks, dim3(TT, 8), 0, c3cu(e)->stream>>>(rows, cols, gx, gy, x, y,
                                                                      accum);
  CU_LAUNCHED(e, "transpose");
  return CSAL3D_OK;
}

/* ---- permute3d ------------------------------------------------------------------------------ */

struct perm_geom {
  int64_t inner, o[3], st[3], base, vol;
};

__global__ void k_permute3d(perm_geom g, int64_t total, const float *x, float *y, int accum) {
  GRID_LOOP(t, total) {
    int64_t in = t % g.inner, r = t / g.inner;
    int64_t o2 = r % g.o[2], o1 = (r / g.o[2]) % g.o[1], o0 = (r / (g.o[2] * g.o[1])) % g.o[0];
    int64_t b = r / (g.o[0] * g.o[1] * g.o[2]);
    int64_t src = g.base + o0 * g.st[0] + o1 * g.st[1] + o2 * g.st[2];
    float v = x[(b * g.vol + src) * g.inner + in];
    y[t] = accum ? y[t] + v : v;
  }
}

static csal3d_status cu_permute3d(c3_engine *e, const c3_permute3d_desc *d, const float *x,
                                  float *y, int accum) {
  CU_CHECK_ARG(e, d && x && y && d->batch >= 1 && d->inner >= 1, "permute3d: bad arguments");
  int seen = 0;
  for (int a = 0; a < 3; a++) {
    CU_CHECK_ARG(e, d->s[a] >= 1, "permute3d: side %d is %lld", a, (long long)d->s[a]);
    CU_CHECK_ARG(e, d->perm[a] >= 0 && d->perm[a] < 3, "permute3d: perm[%d] = %d", a,
                 d->perm[a]);
    seen |= 1 << d->perm[a];
  }
  CU_CHECK_ARG(e, seen == 7, "permute3d: perm is not a permutation of 0, 1, 2");
  int64_t ist[3] = {d->s[1] * d->s[2], d->s[2], 1};
  perm_geom g;
  g.inner = d->inner;
  g.vol = d->s[0] * d->s[1] * d->s[2];
  g.base = 0;
  for (int a = 0; a < 3; a++) {
    g.o[a] = d->s[d->perm[a]];
    int64_t s = ist[d->perm[a]];
    g.st[a] = d->flip[a] ? -s : s;
    if (d->flip[a]) g.base += (g.o[a] - 1) * s;
  }
  int64_t total = d->batch * g.vol * g.inner;
  k_permute3d LAUNCH(total)(g, total, x, y, accum);
  CU_LAUNCHED(e, "permute3d");
  return CSAL3D_OK;
}

static csal3d_status cu_transpose(c3_engine *e, int64_t batch, int64_t rows, int64_t cols,
                                  const float *x, float *y, int accum) {
  return c3cu_transpose(e, batch, rows, cols, x, y, accum);
}

void c3cu_fill_permute_ops(c3_engine *e) {
  e->window_partition = cu_window_partition;
  e->window_merge = cu_window_merge;
  e->patch_merge_fwd = cu_patch_merge_fwd;
  e->patch_merge_bwd = cu_patch_merge_bwd;
  e->transpose = cu_transpose;
  e->permute3d = cu_permute3d;
}
