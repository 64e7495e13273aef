/* k-means: greedy k-means++ seeding, Lloyd iterations (or mini-batch steps), restarts.
 *
 * Memory is O(n + k d + block k): distances are computed block by block through sgemm,
 * never as an n x k matrix for the whole data set. Deterministic whatever the thread
 * count: sums are taken in a fixed order (per cluster in index order, or in fixed
 * chunks), random draws come from counter-based streams. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include <stdio.h>
#include "core/report.h"
#include "core/rng.h"
#include "sampling/sampling.h"

/* Rows per distance chunk: one single-threaded sgemm each, all chunks of a pass in
 * one parallel region (a region per small block costs more than it saves). Up to
 * 256 rows (OpenBLAS then takes its small-matrix path for small k), at most 4 MB per
 * thread. */
#define C3_KM_CHUNK_MAX 256
#define C3_KM_CHUNK_BYTES (4 << 20)

typedef struct c3_km_work {
  const float *X;
  const float *xn; /* squared row norms */
  int64_t n, d, k;
  float *buf;      /* per thread: slot floats */
  int64_t chunk;   /* rows per chunk (a function of k and d only) */
  int64_t slot;    /* chunk x (max(k, trials) + d + 1) */
  float *cn;       /* k */
  int64_t *order;  /* n: rows sorted by label */
  int64_t *start;  /* k + 1 */
  double *acc;     /* k x d */
} c3_km_work;

/* Sum of v[0..n) in fixed chunks, added in order. */
static double c3_fixed_sum(const double *v, int64_t n) {
  int64_t chunks = (n + C3_CHUNK - 1) / C3_CHUNK;
  double total = 0;
  for (int64_t c = 0; c < chunks; c++) {
    int64_t end = (c + 1) * C3_CHUNK < n ? (c + 1) * C3_CHUNK : n;
    double s = 0;
    for (int64_t i = c * C3_CHUNK; i < end; i++) s += v[i];
    total += s;
  }
  return total;
}

/* labels[i] = nearest centre (ties: lower index), mind[i] = its squared distance,
 * for the rows `rows` (NULL: all) of X; returns how many labels changed. */
static int64_t c3_km_assign(c3_km_work *w, const float *C, const int64_t *rows,
                            int64_t nrows, int64_t *labels, double *mind) {
  const int64_t k = w->k, d = w->d;
  c3_row_sqnorms(C, k, d, w->cn);
  int64_t changed = 0;
  int64_t chunks = (nrows + w->chunk - 1) / w->chunk;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : changed) if (nrows * k * d > C3_PAR_MIN)
  for (int64_t ch = 0; ch < chunks; ch++) {
    int64_t r0 = ch * w->chunk;
    int64_t r1 = r0 + w->chunk < nrows ? r0 + w->chunk : nrows;
    float *dist = w->buf + (int64_t)omp_get_thread_num() * w->slot;
    float *gather = dist + w->chunk * k, *gn = gather + w->chunk * d;
    const float *A, *an;
    if (rows) {
      for (int64_t i = r0; i < r1; i++) {
        memcpy(gather + (i - r0) * d, w->X + rows[i] * d, (size_t)d * sizeof(float));
        gn[i - r0] = w->xn[rows[i]];
      }
      A = gather, an = gn;
    } else {
      A = w->X + r0 * d, an = w->xn + r0;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), (int)k, (int)d,
                -2.0f, A, (int)d, C, (int)d, 0.0f, dist, (int)k);
    for (int64_t i = r0; i < r1; i++) {
      const float *row = dist + (i - r0) * k;
      float a = an[i - r0];
      int64_t best = 0;
      float bv = INFINITY;
      for (int64_t c = 0; c < k; c++) {
        float v = row[c] + a + w->cn[c];
        if (v < 0) v = 0;
        if (v < bv) bv = v, best = c;
      }
      if (labels[i] != best) changed++;
      labels[i] = best;
      mind[i] = bv;
    }
  }
  return changed;
}

/* Centres = means of their members, summed per cluster in row order. Empty clusters
 * keep their centre (the caller relocates them). */
static void c3_km_update(c3_km_work *w, const int64_t *labels, float *C,
                         int64_t *counts) {
  const int64_t n = w->n, k = w->k, d = w->d;
  int64_t *start = w->start;
  memset(start, 0, (size_t)(k + 1) * sizeof(int64_t));
  for (int64_t i = 0; i < n; i++) start[labels[i] + 1]++;
  for (int64_t c = 0; c < k; c++) start[c + 1] += start[c];
  for (int64_t c = 0; c < k; c++) counts[c] = start[c + 1] - start[c];
  /* stable counting sort: start[c] advances to start[c + 1], then shifts back */
  for (int64_t i = 0; i < n; i++) w->order[start[labels[i]]++] = i;
  for (int64_t c = k; c > 0; c--) start[c] = start[c - 1];
  start[0] = 0;
#pragma omp parallel for schedule(dynamic, 4) if ((n * d) > C3_PAR_MIN)
  for (int64_t c = 0; c < k; c++) {
    int64_t a = start[c], b = start[c + 1];
    if (a == b) continue;
    double *s = w->acc + c * d;
    memset(s, 0, (size_t)d * sizeof(double));
    for (int64_t t = a; t < b; t++) {
      const float *x = w->X + w->order[t] * d;
#pragma omp simd
      for (int64_t j = 0; j < d; j++) s[j] += x[j];
    }
    double inv = 1.0 / (double)(b - a);
    for (int64_t j = 0; j < d; j++) C[c * d + j] = (float)(s[j] * inv);
  }
}

/* Greedy k-means++ (Arthur and Vassilvitskii 2007, with 2 + ln k local trials as
 * scikit-learn does) over the rows `rows` (NULL: all) of X. */
static csal3d_status c3_km_seed(c3_km_work *w, const int64_t *rows, int64_t m,
                                c3_rng *r, float *C) {
  const int64_t k = w->k, d = w->d;
  const int trials = 2 + (int)log((double)k);
  const int64_t chunks = (m + w->chunk - 1) / w->chunk;
  double *closest = NULL, *cand_d = NULL, *cum = NULL, *part = NULL;
  float *cbuf = NULL, *cnorm = NULL, *Y = NULL, *yn = NULL;
  csal3d_status s = c3_alloc_array((size_t)m, sizeof(double), "k-means++ distances",
                                   (void **)&closest);
#define C3_ALLOC(ptr, count, size, what)                                       \
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(count), (size_t)(size), what, (void **)&(ptr))
  C3_ALLOC(cum, m, sizeof(double), "k-means++ sums");
  C3_ALLOC(cand_d, (size_t)trials * m, sizeof(double), "k-means++ trials");
  C3_ALLOC(part, (size_t)chunks * trials, sizeof(double), "k-means++ sums");
  C3_ALLOC(cbuf, trials, (size_t)d * sizeof(float), "k-means++ candidates");
  C3_ALLOC(cnorm, trials, sizeof(float), "candidate norms");
  if (rows) {
    C3_ALLOC(Y, m, (size_t)d * sizeof(float), "k-means++ sample");
    C3_ALLOC(yn, m, sizeof(float), "sample norms");
    if (s == CSAL3D_OK)
      for (int64_t i = 0; i < m; i++) {
        memcpy(Y + i * d, w->X + rows[i] * d, (size_t)d * sizeof(float));
        yn[i] = w->xn[rows[i]];
      }
  }
#undef C3_ALLOC
  if (s != CSAL3D_OK) goto done;
  const float *P = rows ? Y : w->X;
  const float *pn = rows ? yn : w->xn;
  int64_t cands[64];
  double pot = 0;
  for (int64_t c = 0; c < k; c++) {
    int nt = c == 0 ? 1 : trials;
    if (c == 0) {
      cands[0] = (int64_t)c3_rng_below(r, (uint64_t)m);
    } else {
      double acc = 0;
      for (int64_t i = 0; i < m; i++) cum[i] = (acc += closest[i]);
      for (int t = 0; t < nt; t++) {
        double u = c3_rng_uniform(r);
        if (!(pot > 0)) { /* every point is a centre already: uniform */
          cands[t] = (int64_t)(u * (double)m);
          if (cands[t] >= m) cands[t] = m - 1;
          continue;
        }
        double target = u * cum[m - 1];
        int64_t lo = 0, hi = m - 1; /* first index with cum > target */
        while (lo < hi) {
          int64_t mid = lo + (hi - lo) / 2;
          if (cum[mid] > target)
            hi = mid;
          else
            lo = mid + 1;
        }
        cands[t] = lo;
      }
    }
    for (int t = 0; t < nt; t++) {
      memcpy(cbuf + t * d, P + cands[t] * d, (size_t)d * sizeof(float));
      cnorm[t] = pn[cands[t]];
    }
    /* candidate t's distances, capped by the current closest, and per-chunk sums */
#pragma omp parallel for schedule(dynamic, 1) if (m * nt * d > C3_PAR_MIN)
    for (int64_t ch = 0; ch < chunks; ch++) {
      int64_t r0 = ch * w->chunk;
      int64_t r1 = r0 + w->chunk < m ? r0 + w->chunk : m;
      float *dist = w->buf + (int64_t)omp_get_thread_num() * w->slot;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), nt, (int)d,
                  -2.0f, P + r0 * d, (int)d, cbuf, (int)d, 0.0f, dist, nt);
      for (int t = 0; t < nt; t++) {
        double sum = 0;
        for (int64_t i = r0; i < r1; i++) {
          double v = (double)(dist[(i - r0) * nt + t] + pn[i] + cnorm[t]);
          if (v < 0) v = 0;
          if (c > 0 && closest[i] < v) v = closest[i];
          cand_d[(int64_t)t * m + i] = v;
          sum += v;
        }
        part[ch * trials + t] = sum;
      }
    }
    int best = 0;
    double best_pot = 0;
    for (int t = 0; t < nt; t++) {
      double p = 0;
      for (int64_t ch = 0; ch < chunks; ch++) p += part[ch * trials + t];
      if (t == 0 || p < best_pot) best_pot = p, best = t;
    }
    memcpy(C + c * d, P + cands[best] * d, (size_t)d * sizeof(float));
    memcpy(closest, cand_d + (int64_t)best * m, (size_t)m * sizeof(double));
    pot = best_pot;
  }
done:
  c3_free(closest), c3_free(cum), c3_free(cand_d), c3_free(part), c3_free(cbuf);
  c3_free(cnorm), c3_free(Y), c3_free(yn);
  return s;
}

/* Moves empty clusters onto the points farthest from their centres (at a positive
 * distance), in cluster order. Returns how many stay empty. */
static int64_t c3_km_relocate(c3_km_work *w, const int64_t *counts,
                              const double *mind, float *C, int64_t *used) {
  const int64_t n = w->n, k = w->k, d = w->d;
  int64_t nused = 0, still = 0;
  for (int64_t c = 0; c < k; c++) {
    if (counts[c] > 0) continue;
    int64_t best = -1;
    double bv = 0;
    for (int64_t i = 0; i < n; i++) {
      if (!(mind[i] > bv)) continue;
      int taken = 0;
      for (int64_t u = 0; u < nused; u++)
        if (used[u] == i) taken = 1;
      if (!taken) bv = mind[i], best = i;
    }
    if (best < 0) {
      still++;
      continue;
    }
    used[nused++] = best;
    memcpy(C + c * d, w->X + best * d, (size_t)d * sizeof(float));
  }
  return still;
}

static double c3_km_shift(const float *a, const float *b, int64_t k, int64_t d) {
  double s = 0;
  for (int64_t i = 0; i < k * d; i++) {
    double e = (double)a[i] - b[i];
    s += e * e;
  }
  return s;
}

/* One worker's state: a restart runs entirely on it. */
typedef struct c3_km_state {
  c3_km_work w;
  float *C, *Cold, *best_C;
  int64_t *lab, *best_lab, *counts, *used, *rows;
  double *mind;
  double best_inertia;
  int best_rs, best_iter;
} c3_km_state;

static void c3_km_state_free(c3_km_state *st) {
  c3_free(st->w.buf), c3_free(st->w.cn), c3_free(st->w.order), c3_free(st->w.start);
  c3_free(st->w.acc), c3_free(st->C), c3_free(st->Cold), c3_free(st->best_C);
  c3_free(st->lab), c3_free(st->best_lab), c3_free(st->counts), c3_free(st->used);
  c3_free(st->rows), c3_free(st->mind);
}

static csal3d_status c3_km_state_init(c3_km_state *st, const c3_km_work *proto,
                                      int slots, int64_t batch) {
  const int64_t n = proto->n, k = proto->k, d = proto->d;
  memset(st, 0, sizeof *st);
  st->w = *proto;
  st->w.buf = NULL, st->w.cn = NULL, st->w.order = NULL, st->w.start = NULL;
  st->w.acc = NULL;
  st->best_inertia = INFINITY;
  st->best_rs = -1;
  csal3d_status s = CSAL3D_OK;
#define C3_ALLOC(ptr, count, size, what)                                       \
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(count), (size_t)(size), what, (void **)&(ptr))
  C3_ALLOC(st->w.buf, (size_t)slots * st->w.slot, sizeof(float), "k-means distance blocks");
  C3_ALLOC(st->w.cn, k, sizeof(float), "centre norms");
  C3_ALLOC(st->w.order, n, sizeof(int64_t), "k-means order");
  C3_ALLOC(st->w.start, k + 1, sizeof(int64_t), "k-means offsets");
  C3_ALLOC(st->w.acc, k, (size_t)d * sizeof(double), "k-means sums");
  C3_ALLOC(st->C, k, (size_t)d * sizeof(float), "centres");
  C3_ALLOC(st->Cold, k, (size_t)d * sizeof(float), "centres");
  C3_ALLOC(st->best_C, k, (size_t)d * sizeof(float), "centres");
  C3_ALLOC(st->lab, n, sizeof(int64_t), "labels");
  C3_ALLOC(st->best_lab, n, sizeof(int64_t), "labels");
  C3_ALLOC(st->counts, k, sizeof(int64_t), "counts");
  C3_ALLOC(st->used, k, sizeof(int64_t), "relocations");
  C3_ALLOC(st->mind, n, sizeof(double), "distances");
  if (batch) C3_ALLOC(st->rows, (3 * batch > n ? n : 3 * batch), sizeof(int64_t), "batch");
#undef C3_ALLOC
  return s;
}

/* Restart rs on state st; keeps it if it beats the state's best (ties: earlier). */
static csal3d_status c3_km_restart(const csal3d_context *ctx, c3_km_state *st,
                                   const c3_kmeans_params *p, int rs, int restarts,
                                   double tol_abs, int64_t batch, int report,
                                   volatile int *stop) {
  c3_km_work *w = &st->w;
  const float *X = w->X;
  const int64_t n = w->n, k = w->k, d = w->d;
  float *C = st->C, *Cold = st->Cold;
  int64_t *lab = st->lab, *counts = st->counts, *used = st->used, *rows = st->rows;
  double *mind = st->mind;
  csal3d_status s = CSAL3D_OK;
  c3_rng r;
  c3_rng_init(&r, p->seed, C3_RNG_SAMPLING, C3_STREAM_KMEANS, p->stream, (uint64_t)rs);
  int iterations = 0;
#define C3_CHECK_STOP()                                                        \
  do {                                                                         \
    if (report) {                                                              \
      s = c3_progress(ctx, "select", (uint64_t)rs, (uint64_t)restarts);        \
      if (s != CSAL3D_OK) *stop = 1;                                           \
    }                                                                          \
    if (*stop) return s != CSAL3D_OK ? s : CSAL3D_ERR_CANCELLED;               \
  } while (0)
  C3_CHECK_STOP();
  if (!batch) {
    C3_TRY(c3_km_seed(w, NULL, n, &r, C));
    for (int64_t i = 0; i < n; i++) lab[i] = -1;
    for (int it = 0; it < (p->max_iter >= 1 ? p->max_iter : 1); it++) {
      iterations = it + 1;
      int64_t changed = c3_km_assign(w, C, NULL, n, lab, mind);
      if (it > 0 && changed == 0) break; /* strict convergence */
      memcpy(Cold, C, (size_t)(k * d) * sizeof(float));
      c3_km_update(w, lab, C, counts);
      int64_t moved = 0;
      for (int64_t c = 0; c < k; c++) moved += counts[c] == 0;
      if (moved) c3_km_relocate(w, counts, mind, C, used);
      if (c3_km_shift(C, Cold, k, d) <= tol_abs) {
        c3_km_assign(w, C, NULL, n, lab, mind);
        break;
      }
      C3_CHECK_STOP();
    }
  } else {
    /* mini-batch k-means (Sculley 2010): seeds from 3 batches, then per-batch
     * updates with per-centre learning rates 1/count, early stop when the
     * smoothed batch inertia has not improved for 10 steps */
    int64_t init_n = 3 * batch > n ? n : 3 * batch;
    for (int64_t i = 0; i < init_n; i++) rows[i] = (int64_t)c3_rng_below(&r, (uint64_t)n);
    C3_TRY(c3_km_seed(w, rows, init_n, &r, C));
    memset(counts, 0, (size_t)k * sizeof(int64_t));
    int64_t steps = (int64_t)(p->max_iter >= 1 ? p->max_iter : 1) * n / batch;
    double ewa = -1, best_ewa = INFINITY;
    int no_improve = 0;
    for (int64_t step = 0; step < steps; step++) {
      iterations = (int)(step + 1);
      for (int64_t i = 0; i < batch; i++) rows[i] = (int64_t)c3_rng_below(&r, (uint64_t)n);
      for (int64_t i = 0; i < batch; i++) lab[i] = -1;
      c3_km_assign(w, C, rows, batch, lab, mind);
      memcpy(Cold, C, (size_t)(k * d) * sizeof(float));
      double bi = 0;
      for (int64_t i = 0; i < batch; i++) {
        int64_t c = lab[i];
        counts[c]++;
        double eta = 1.0 / (double)counts[c];
        const float *x = X + rows[i] * d;
        float *cc = C + c * d;
        for (int64_t j = 0; j < d; j++) cc[j] = (float)((1 - eta) * cc[j] + eta * x[j]);
        bi += mind[i];
      }
      bi /= (double)batch;
      double alpha = 2.0 * (double)batch / ((double)n + 1);
      if (alpha > 1) alpha = 1;
      ewa = ewa < 0 ? bi : ewa * (1 - alpha) + bi * alpha;
      if (ewa < best_ewa)
        best_ewa = ewa, no_improve = 0;
      else if (++no_improve >= 10)
        break;
      if (c3_km_shift(C, Cold, k, d) <= tol_abs) break;
      if (step % 16 == 0) C3_CHECK_STOP();
    }
    for (int64_t i = 0; i < n; i++) lab[i] = -1;
    c3_km_assign(w, C, NULL, n, lab, mind);
    /* one Lloyd step to end on the means of the final assignment */
    c3_km_update(w, lab, C, counts);
    int64_t moved = 0;
    for (int64_t c = 0; c < k; c++) moved += counts[c] == 0;
    if (moved) c3_km_relocate(w, counts, mind, C, used);
    c3_km_assign(w, C, NULL, n, lab, mind);
  }
#undef C3_CHECK_STOP
  double inertia = c3_fixed_sum(mind, n);
  if (inertia < st->best_inertia || (inertia == st->best_inertia && rs < st->best_rs)) {
    st->best_inertia = inertia;
    st->best_rs = rs;
    st->best_iter = iterations;
    memcpy(st->best_lab, lab, (size_t)n * sizeof(int64_t));
    memcpy(st->best_C, C, (size_t)(k * d) * sizeof(float));
  }
  return CSAL3D_OK;
}

csal3d_status c3_kmeans(const csal3d_context *ctx, const float *X, int64_t n,
                        int64_t d, const c3_kmeans_params *p, int64_t *labels,
                        float *centres, c3_kmeans_result *res) {
  const int64_t k = p->k;
  if (k < 1 || k > n || d < 1)
    return c3_error(CSAL3D_ERR_INTERNAL, "k-means: k = %lld, n = %lld, d = %lld",
                    (long long)k, (long long)n, (long long)d);
  memset(res, 0, sizeof *res);
  int minibatch = p->batch > 0 && n > 4 * p->batch;
  int64_t batch = minibatch ? p->batch : 0;
  int restarts = p->restarts >= 1 ? p->restarts : 1;
  int nthreads = omp_in_parallel() ? 1 : omp_get_max_threads();
  /* restarts run in parallel, each on one thread (one parallel region for the whole
   * k-means: cheap, and robust on a loaded machine); a single restart parallelises
   * its passes instead. Static round-robin: the calling thread (which alone reports
   * progress) always runs restart 0, so cancellation is seen at once. */
  int outer = restarts >= 2 && nthreads >= 2;
  int nstates = outer ? (restarts < nthreads ? restarts : nthreads) : 1;
  int trials = 2 + (int)log((double)k);
  c3_km_work proto = {X, NULL, n, d, k, NULL, 0, 0, NULL, NULL, NULL, NULL};
  {
    int64_t width = (k > trials ? k : trials) + d + 1;
    proto.chunk = C3_KM_CHUNK_BYTES / (int64_t)sizeof(float) / width;
    if (proto.chunk > C3_KM_CHUNK_MAX) proto.chunk = C3_KM_CHUNK_MAX;
    if (proto.chunk < 16) proto.chunk = 16;
    proto.slot = proto.chunk * width;
  }
  float *xn = NULL;
  double *colsum = NULL;
  c3_km_state *st = NULL;
  csal3d_status s = c3_alloc_array((size_t)n, sizeof(float), "norms", (void **)&xn);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)(2 * d), sizeof(double), "variances", (void **)&colsum);
  if (s == CSAL3D_OK)
    s = c3_calloc_array((size_t)nstates, sizeof *st, "k-means workers", (void **)&st);
  if (s != CSAL3D_OK) goto done;
  c3_row_sqnorms(X, n, d, xn);
  proto.xn = xn;
  for (int t = 0; t < nstates && s == CSAL3D_OK; t++)
    s = c3_km_state_init(&st[t], &proto, outer ? 1 : nthreads, batch);
  if (s != CSAL3D_OK) goto done;

  /* tolerance: tol x mean over features of the variance (scikit-learn's) */
  double tol_abs;
  {
    double mean_var = 0;
    int64_t chunks = (n + C3_CHUNK - 1) / C3_CHUNK;
    memset(colsum, 0, 2 * (size_t)d * sizeof(double));
    for (int64_t c = 0; c < chunks; c++) {
      int64_t end = (c + 1) * C3_CHUNK < n ? (c + 1) * C3_CHUNK : n;
      for (int64_t i = c * C3_CHUNK; i < end; i++)
        for (int64_t j = 0; j < d; j++) {
          double v = X[i * d + j];
          colsum[j] += v;
          colsum[d + j] += v * v;
        }
    }
    for (int64_t j = 0; j < d; j++) {
      double m = colsum[j] / (double)n;
      double v = colsum[d + j] / (double)n - m * m;
      mean_var += v > 0 ? v : 0;
    }
    tol_abs = p->tol * mean_var / (double)d;
  }

  volatile int stop = 0;
  if (outer) {
    csal3d_status fail = CSAL3D_OK;
    char msg[C3_ERROR_MAX] = "";
#pragma omp parallel for schedule(static, 1) num_threads(nstates)
    for (int rs = 0; rs < restarts; rs++) {
      if (stop) continue;
      int me = omp_get_thread_num();
      csal3d_status rs_s = c3_km_restart(ctx, &st[me], p, rs, restarts, tol_abs, batch,
                                         me == 0, &stop);
      if (rs_s != CSAL3D_OK) {
#pragma omp critical(c3_kmeans_fail)
        if (fail == CSAL3D_OK) {
          fail = rs_s;
          snprintf(msg, sizeof msg, "%s", csal3d_last_error());
        }
        stop = 1;
      }
    }
    if (fail != CSAL3D_OK) {
      s = c3_error(fail, "%s", msg);
      goto done;
    }
  } else {
    for (int rs = 0; rs < restarts; rs++) {
      s = c3_km_restart(ctx, &st[0], p, rs, restarts, tol_abs, batch, 1, &stop);
      if (s != CSAL3D_OK) goto done;
    }
  }
  /* the best restart (ties: the earlier), whichever worker ran it */
  int best = 0;
  for (int t = 1; t < nstates; t++)
    if (st[t].best_inertia < st[best].best_inertia ||
        (st[t].best_inertia == st[best].best_inertia && st[t].best_rs < st[best].best_rs))
      best = t;
  res->inertia = st[best].best_inertia;
  res->iterations = st[best].best_iter;
  memcpy(labels, st[best].best_lab, (size_t)n * sizeof(int64_t));
  if (centres) memcpy(centres, st[best].best_C, (size_t)(k * d) * sizeof(float));
  {
    int64_t *counts = st[0].counts;
    memset(counts, 0, (size_t)k * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) counts[labels[i]]++;
    for (int64_t c = 0; c < k; c++) res->empty += counts[c] == 0;
  }
done:
  if (st)
    for (int t = 0; t < nstates; t++) c3_km_state_free(&st[t]);
  c3_free(st), c3_free(xn), c3_free(colsum);
  return s;
}
