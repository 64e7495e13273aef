/* The selection strategies: URDS (paper Eq. 9-12), its ablations and the baselines.
 *
 * Cluster-based strategies share one scheme: clusters are renumbered by size (largest
 * first; ties: the cluster whose lowest member index is lower), each cluster ranks its
 * members by the strategy's preference, the first of each non-empty cluster is chosen
 * (in cluster order), and each empty cluster is refilled by the next member in the
 * preference of the largest cluster that still has one (rule "refill"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/report.h"
#include "core/rng.h"
#include "sampling/sampling.h"

/* k-means stream ids: the baselines share one clustering of the features */
#define C3_KM_FEATURES 0
#define C3_KM_EMBEDDING 1

/* ---- clusters ---- */

typedef struct c3_clusters {
  int64_t k;
  int64_t *start;   /* k + 1 */
  int64_t *members; /* n, grouped by cluster, ascending index within */
  int64_t *pref;    /* n, grouped likewise, in the strategy's order */
} c3_clusters;

static void c3_clusters_free(c3_clusters *c) {
  c3_free(c->start), c3_free(c->members), c3_free(c->pref);
  memset(c, 0, sizeof *c);
}

/* Renumbers labels (0..k-1, or < 0 for none) by cluster size, largest first (ties:
 * lower first member); empty clusters take the last numbers. Builds the groups. */
static csal3d_status c3_clusters_build(int64_t *labels, int64_t n, int64_t k,
                                       c3_clusters *c) {
  memset(c, 0, sizeof *c);
  int64_t *size = NULL, *first = NULL, *order = NULL, *newid = NULL;
  csal3d_status s = c3_calloc_array((size_t)k, sizeof(int64_t), "cluster sizes", (void **)&size);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)k, sizeof(int64_t), "clusters", (void **)&first);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)k, sizeof(int64_t), "clusters", (void **)&order);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)k, sizeof(int64_t), "clusters", (void **)&newid);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)(k + 1), sizeof(int64_t), "clusters", (void **)&c->start);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(int64_t), "clusters", (void **)&c->members);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(int64_t), "clusters", (void **)&c->pref);
  if (s != CSAL3D_OK) goto done;
  c->k = k;
  for (int64_t q = 0; q < k; q++) first[q] = n;
  for (int64_t i = 0; i < n; i++) {
    int64_t l = labels[i];
    if (l < 0) continue;
    if (!size[l]++) first[l] = i;
  }
  for (int64_t q = 0; q < k; q++) order[q] = q;
  /* insertion sort by (size desc, first asc): k is at most n and usually small */
  for (int64_t a = 1; a < k; a++) {
    int64_t v = order[a], b = a;
    while (b > 0) {
      int64_t u = order[b - 1];
      int before = size[v] > size[u] || (size[v] == size[u] && first[v] < first[u]);
      if (!before) break;
      order[b] = u, b--;
    }
    order[b] = v;
  }
  for (int64_t q = 0; q < k; q++) newid[order[q]] = q;
  for (int64_t i = 0; i < n; i++)
    if (labels[i] >= 0) labels[i] = newid[labels[i]];
  for (int64_t i = 0; i < n; i++)
    if (labels[i] >= 0) c->start[labels[i] + 1]++;
  for (int64_t q = 0; q < k; q++) c->start[q + 1] += c->start[q];
  {
    int64_t *cur = order; /* reuse as cursors */
    for (int64_t q = 0; q < k; q++) cur[q] = c->start[q];
    for (int64_t i = 0; i < n; i++)
      if (labels[i] >= 0) c->members[cur[labels[i]]++] = i;
  }
  memcpy(c->pref, c->members, (size_t)n * sizeof(int64_t));
done:
  c3_free(size), c3_free(first), c3_free(order), c3_free(newid);
  if (s != CSAL3D_OK) c3_clusters_free(c);
  return s;
}

static int64_t c3_csize(const c3_clusters *c, int64_t q) {
  return c->start[q + 1] - c->start[q];
}

/* sort context for qsort_r: keys compared in order, then index ascending */
typedef struct c3_keys {
  const double *k1; int desc1;
  const double *k2; int desc2;
} c3_keys;

static int c3_cmp_key(double a, double b, int desc) {
  /* NaN sorts last */
  if (isnan(a) || isnan(b)) return isnan(a) - isnan(b);
  if (a == b) return 0;
  return (a < b) == !desc ? -1 : 1;
}

static int c3_cmp_members(const void *pa, const void *pb, void *ctx) {
  const c3_keys *k = ctx;
  int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
  int r = c3_cmp_key(k->k1[a], k->k1[b], k->desc1);
  if (r) return r;
  if (k->k2) {
    r = c3_cmp_key(k->k2[a], k->k2[b], k->desc2);
    if (r) return r;
  }
  return (a > b) - (a < b);
}

static void c3_sort_idx(int64_t *v, int64_t n, const double *k1, int desc1,
                        const double *k2, int desc2) {
  c3_keys k = {k1, desc1, k2, desc2};
  qsort_r(v, (size_t)n, sizeof(int64_t), c3_cmp_members, &k);
}

/* every cluster's pref sorted by the keys */
static void c3_sort_clusters(c3_clusters *c, const double *k1, int desc1,
                             const double *k2, int desc2) {
#pragma omp parallel for schedule(dynamic, 1) if ((c->start[c->k] * 16) > C3_PAR_MIN)
  for (int64_t q = 0; q < c->k; q++)
    c3_sort_idx(c->pref + c->start[q], c3_csize(c, q), k1, desc1, k2, desc2);
}

static void c3_record(csal3d_selection *r, int64_t index, int64_t cluster,
                      int64_t size, double typ, csal3d_rule rule) {
  memset(r, 0, sizeof *r);
  r->index = index;
  r->cluster = cluster;
  r->cluster_size = size;
  r->typicality = typ;
  r->score = NAN;
  r->rule = rule;
}

/* The first preferred member of each non-empty cluster, in cluster order, then one
 * refill per empty cluster from the largest cluster with members left. */
static csal3d_status c3_one_per_cluster(const c3_clusters *c, const double *typ,
                                        csal3d_rule rule, csal3d_selection *sel,
                                        int64_t m, int64_t *empty_out) {
  int64_t *used = NULL;
  C3_TRY(c3_calloc_array((size_t)c->k, sizeof(int64_t), "refill cursors", (void **)&used));
  int64_t cnt = 0, empty = 0;
  for (int64_t q = 0; q < c->k && cnt < m; q++) {
    if (!c3_csize(c, q)) {
      empty++;
      continue;
    }
    int64_t i = c->pref[c->start[q]];
    c3_record(&sel[cnt++], i, q, c3_csize(c, q), typ ? typ[i] : NAN, rule);
    used[q] = 1;
  }
  for (int64_t e = 0; e < empty && cnt < m; e++) {
    int64_t q = 0;
    while (q < c->k && used[q] >= c3_csize(c, q)) q++;
    if (q == c->k) break;
    int64_t i = c->pref[c->start[q] + used[q]++];
    c3_record(&sel[cnt++], i, q, c3_csize(c, q), typ ? typ[i] : NAN,
              CSAL3D_RULE_REFILL);
  }
  c3_free(used);
  if (empty_out) *empty_out = empty;
  if (cnt != m)
    return c3_error(CSAL3D_ERR_INTERNAL, "selection: %lld of %lld cases chosen",
                    (long long)cnt, (long long)m);
  return CSAL3D_OK;
}

/* ---- typicality ---- */

#define C3_TYP_PAIRWISE_MAX 256

csal3d_status c3_typicality_cosine(const float *X, int64_t n, int64_t d,
                                   const int64_t *labels, int64_t k, double *T) {
  double *U = NULL, *Sc = NULL;
  int64_t *cnt = NULL, *start = NULL, *mem = NULL;
  csal3d_status s = c3_alloc_array((size_t)n, (size_t)d * sizeof(double), "unit features", (void **)&U);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)k, (size_t)d * sizeof(double), "cluster sums", (void **)&Sc);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)k, sizeof(int64_t), "cluster sizes", (void **)&cnt);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)(k + 1), sizeof(int64_t), "clusters", (void **)&start);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(int64_t), "clusters", (void **)&mem);
  if (s != CSAL3D_OK) goto done;
#pragma omp parallel for schedule(static) if ((n * d) > C3_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double nr = 0;
    for (int64_t j = 0; j < d; j++) nr += (double)X[i * d + j] * X[i * d + j];
    nr = nr > 0 ? 1.0 / sqrt(nr) : 0;
    for (int64_t j = 0; j < d; j++) U[i * d + j] = X[i * d + j] * nr;
  }
  for (int64_t i = 0; i < n; i++)
    if (labels[i] >= 0) cnt[labels[i]]++, start[labels[i] + 1]++;
  for (int64_t q = 0; q < k; q++) start[q + 1] += start[q];
  {
    int64_t *cur = NULL;
    s = c3_alloc_array((size_t)k, sizeof(int64_t), "clusters", (void **)&cur);
    if (s != CSAL3D_OK) goto done;
    memcpy(cur, start, (size_t)k * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++)
      if (labels[i] >= 0) mem[cur[labels[i]]++] = i;
    c3_free(cur);
  }
  /* cluster sums of unit vectors, members in index order */
#pragma omp parallel for schedule(dynamic, 1) if ((n * d) > C3_PAR_MIN)
  for (int64_t q = 0; q < k; q++) {
    double *sq = Sc + q * d;
    for (int64_t t = start[q]; t < start[q + 1]; t++)
      for (int64_t j = 0; j < d; j++) sq[j] += U[mem[t] * d + j];
  }
#pragma omp parallel for schedule(dynamic, 64) if ((n * d) > C3_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    int64_t q = labels[i];
    if (q < 0) {
      T[i] = NAN;
      continue;
    }
    int64_t size = cnt[q];
    if (size == 1) {
      T[i] = INFINITY;
      continue;
    }
    const double *u = U + i * d;
    double sum; /* sum over j != i of (1 - cos) */
    if (size <= C3_TYP_PAIRWISE_MAX) {
      sum = 0;
      for (int64_t t = start[q]; t < start[q + 1]; t++) {
        int64_t j = mem[t];
        if (j == i) continue;
        double c = 0;
        for (int64_t e = 0; e < d; e++) c += u[e] * U[j * d + e];
        sum += 1 - c;
      }
    } else {
      double dot = 0, uu = 0;
      for (int64_t e = 0; e < d; e++) dot += u[e] * Sc[q * d + e], uu += u[e] * u[e];
      sum = (double)(size - 1) - (dot - uu);
    }
    double mean = sum / (double)(size - 1);
    T[i] = mean > 1e-12 ? 1.0 / mean : INFINITY;
  }
done:
  c3_free(U), c3_free(Sc), c3_free(cnt), c3_free(start), c3_free(mem);
  return s;
}

/* ---- helpers ---- */

static void c3_kmeans_params_from(const c3_strategy_in *in, int64_t k,
                                  uint64_t stream, c3_kmeans_params *kp) {
  kp->k = k;
  kp->restarts = in->o->kmeans_restarts;
  kp->max_iter = in->o->kmeans_max_iter;
  kp->tol = in->o->kmeans_tol;
  kp->batch = in->o->kmeans_batch;
  kp->seed = in->seed;
  kp->stream = stream;
}

static void c3_mkkm_params_from(const c3_strategy_in *in, c3_mkkm_params *p) {
  const csal3d_sampler_options *o = in->o;
  memset(p, 0, sizeof *p);
  p->n_kernels = o->n_kernels;
  for (int q = 0; q < o->n_kernels; q++) p->gammas[q] = o->gammas[q];
  p->gamma_raw = o->gamma_mode == CSAL3D_GAMMA_RAW;
  p->tol = o->mkkm_tol;
  p->max_iter = o->mkkm_max_iter;
  p->exact_max_n = o->exact_max_n;
  p->landmarks = o->nystrom_landmarks;
  p->seed = in->seed;
}

static void c3_info_mkkm(csal3d_sampler_info *info, const c3_mkkm_result *r, int P) {
  info->nystrom = r->nystrom;
  info->landmarks = r->landmarks;
  info->n_kernels = P;
  for (int q = 0; q < P; q++) {
    info->gammas[q] = r->gammas[q];
    info->kernel_weights[q] = r->weights[q];
  }
  info->mkkm_iterations = r->iterations;
  info->mkkm_objective = r->objective;
  info->median_sq_distance = r->median;
}

/* ---- URDS, Div-only ---- */

static csal3d_status c3_urds(const c3_strategy_in *in, c3_strategy_out *out,
                             int div_only) {
  const int64_t n = in->n, m = in->m;
  const csal3d_sampler_options *o = in->o;
  c3_mkkm_params mp;
  c3_mkkm_params_from(in, &mp);
  c3_mkkm_result mr;
  memset(&mr, 0, sizeof mr);
  mr.history = out->history;
  mr.history_cap = out->history_cap;
  c3_kmeans_result kr;
  memset(&kr, 0, sizeof kr);
  int64_t *labels = out->assign;
  double *T = NULL, *S = NULL;
  c3_clusters c;
  memset(&c, 0, sizeof c);
  csal3d_status s;
  if (o->kernel == CSAL3D_KERNEL_REFERENCE) {
    s = c3_reference_cluster(in->ctx, in->X, in->S, n, in->d, m, &mp, o->reference_eps,
                             labels, &mr);
  } else {
    c3_kmeans_params kp;
    c3_kmeans_params_from(in, m, C3_KM_EMBEDDING, &kp);
    s = c3_mkkm_cluster(in->ctx, in->X, n, in->d, m, &mp, &kp, labels, &mr, &kr);
    out->info->kmeans_inertia = kr.inertia;
  }
  if (s != CSAL3D_OK) return s;
  c3_info_mkkm(out->info, &mr, mp.n_kernels);
  s = c3_clusters_build(labels, n, m, &c);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(double), "typicality", (void **)&T);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(double), "scores", (void **)&S);
  if (s == CSAL3D_OK) s = c3_typicality_cosine(in->X, n, in->d, labels, m, T);
  if (s != CSAL3D_OK) goto done;
  for (int64_t i = 0; i < n; i++) S[i] = in->S ? in->S[i] : NAN;
  /* most typical first (ties: lower index) */
  c3_sort_clusters(&c, T, 1, NULL, 0);
  if (!div_only) {
    /* the N_cand most typical, by score (ties: typicality, then index); the rest
     * stay in typicality order behind them for refills */
#pragma omp parallel for schedule(dynamic, 1) if ((m * o->n_cand * 16) > C3_PAR_MIN)
    for (int64_t q = 0; q < m; q++) {
      int64_t size = c3_csize(&c, q);
      int64_t nc = size < o->n_cand ? size : o->n_cand;
      c3_sort_idx(c.pref + c.start[q], nc, S, 1, T, 1);
    }
  }
  s = c3_one_per_cluster(&c, T, div_only ? CSAL3D_RULE_MOST_TYPICAL : CSAL3D_RULE_URDS,
                         out->sel, m, &out->info->empty_clusters);
  out->info->n_clusters = m;
done:
  c3_clusters_free(&c);
  c3_free(T), c3_free(S);
  return s;
}

/* ---- Unc-only, Random ---- */

static csal3d_status c3_unc_only(const c3_strategy_in *in, c3_strategy_out *out) {
  int64_t *idx = NULL;
  double *S = NULL;
  csal3d_status s = c3_alloc_array((size_t)in->n, sizeof(int64_t), "order", (void **)&idx);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)in->n, sizeof(double), "scores", (void **)&S);
  if (s == CSAL3D_OK) {
    for (int64_t i = 0; i < in->n; i++) idx[i] = i, S[i] = in->S[i];
    c3_sort_idx(idx, in->n, S, 1, NULL, 0);
    for (int64_t t = 0; t < in->m; t++)
      c3_record(&out->sel[t], idx[t], -1, 0, NAN, CSAL3D_RULE_TOP_SCORE);
    for (int64_t i = 0; i < in->n; i++) out->assign[i] = -1;
  }
  c3_free(idx), c3_free(S);
  return s;
}

static csal3d_status c3_random(const c3_strategy_in *in, c3_strategy_out *out) {
  int64_t *idx = NULL;
  C3_TRY(c3_alloc_array((size_t)in->m, sizeof(int64_t), "sample", (void **)&idx));
  c3_rng r;
  c3_rng_init(&r, in->seed, C3_RNG_SAMPLING, C3_STREAM_RANDOM, 0, 0);
  csal3d_status s = c3_rng_sample(&r, in->n, in->m, idx);
  if (s == CSAL3D_OK) {
    for (int64_t t = 0; t < in->m; t++)
      c3_record(&out->sel[t], idx[t], -1, 0, NAN, CSAL3D_RULE_RANDOM);
    for (int64_t i = 0; i < in->n; i++) out->assign[i] = -1;
  }
  c3_free(idx);
  return s;
}

/* ---- TypiClust, ALPS, CALR ---- */

/* k-means of the features into k clusters (the clustering TypiClust, ALPS and USL
 * share; ProbCover's purity too). */
static csal3d_status c3_feature_kmeans(const c3_strategy_in *in, c3_strategy_out *out,
                                       int64_t k, float *centres) {
  c3_kmeans_params kp;
  c3_kmeans_params_from(in, k, C3_KM_FEATURES, &kp);
  c3_kmeans_result kr;
  C3_TRY(c3_kmeans(in->ctx, in->X, in->n, in->d, &kp, out->assign, centres, &kr));
  out->info->kmeans_inertia = kr.inertia;
  out->info->n_clusters = k;
  return CSAL3D_OK;
}

/* For the cases mem[0..size): mean[t] = the mean over the K nearest others among them
 * of the distance (squared when `squared`). 1 <= K <= size - 1. */
static csal3d_status c3_knn_means(const c3_strategy_in *in, const int64_t *mem,
                                  int64_t size, int64_t K, int squared, double *mean) {
  const int64_t d = in->d;
  float *sub = NULL, *dist = NULL;
  csal3d_status s = c3_alloc_array((size_t)size, (size_t)d * sizeof(float),
                                   "cluster features", (void **)&sub);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)size, (size_t)K * sizeof(float), "neighbour distances",
                       (void **)&dist);
  if (s == CSAL3D_OK) {
    for (int64_t t = 0; t < size; t++)
      memcpy(sub + t * d, in->X + mem[t] * d, (size_t)d * sizeof(float));
    s = c3_knn(in->ctx, sub, size, d, K, squared, dist, NULL);
  }
  if (s == CSAL3D_OK)
    for (int64_t t = 0; t < size; t++) {
      double v = 0;
      for (int64_t j = 0; j < K; j++) v += dist[t * K + j];
      mean[t] = v / (double)K;
    }
  c3_free(sub), c3_free(dist);
  return s;
}

/* TypiClust as the CSAL-3D paper compared against (docs/sampling.md). */
static csal3d_status c3_typiclust_paper(const c3_strategy_in *in, c3_strategy_out *out) {
  const int64_t n = in->n, m = in->m;
  c3_clusters c;
  memset(&c, 0, sizeof c);
  double *T = NULL, *mean = NULL;
  int64_t *eligible = NULL, *used = NULL;
  csal3d_status s = c3_feature_kmeans(in, out, m, NULL);
  if (s == CSAL3D_OK) s = c3_clusters_build(out->assign, n, m, &c);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(double), "typicality", (void **)&T);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(double), "typicality", (void **)&mean);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)m, sizeof(int64_t), "clusters", (void **)&eligible);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)m, sizeof(int64_t), "clusters", (void **)&used);
  if (s != CSAL3D_OK) goto done;
  /* typicality = 1 / mean distance to the K = min(k, |C| - 1) nearest members */
  for (int64_t q = 0; q < m; q++) {
    int64_t size = c3_csize(&c, q);
    if (!size) continue;
    int64_t K = size - 1 < in->o->typiclust_k ? size - 1 : in->o->typiclust_k;
    const int64_t *mem = c.members + c.start[q];
    if (K == 0) {
      T[mem[0]] = INFINITY;
      continue;
    }
    s = c3_knn_means(in, mem, size, K, 0, mean);
    if (s != CSAL3D_OK) goto done;
    for (int64_t t = 0; t < size; t++) T[mem[t]] = mean[t] > 0 ? 1.0 / mean[t] : INFINITY;
  }
  c3_sort_clusters(&c, T, 1, NULL, 0);
  /* clusters by size (the numbering); those below typiclust_min_cluster_size (none by
   * default) are passed over while larger ones remain; picks cycle over the eligible
   * clusters, taking each one's next most typical member */
  int64_t ne = 0;
  for (int64_t q = 0; q < m; q++)
    if (c3_csize(&c, q) >= in->o->typiclust_min_cluster_size && c3_csize(&c, q) > 0)
      eligible[ne++] = q;
  if (ne == 0)
    for (int64_t q = 0; q < m; q++)
      if (c3_csize(&c, q) > 0) eligible[ne++] = q;
  int64_t cnt = 0;
  for (int64_t round = 0; cnt < m; round++) {
    int64_t progress = 0;
    for (int64_t e = 0; e < ne && cnt < m; e++) {
      int64_t q = eligible[e];
      if (used[q] >= c3_csize(&c, q)) continue;
      int64_t i = c.pref[c.start[q] + used[q]++];
      c3_record(&out->sel[cnt++], i, q, c3_csize(&c, q), T[i],
                round == 0 ? CSAL3D_RULE_MOST_TYPICAL : CSAL3D_RULE_REFILL);
      progress++;
    }
    if (!progress && cnt < m) {
      /* only passed-over clusters have members left */
      for (int64_t q = 0; q < m && cnt < m; q++)
        while (used[q] < c3_csize(&c, q) && cnt < m) {
          int64_t i = c.pref[c.start[q] + used[q]++];
          int taken = 0;
          for (int64_t e = 0; e < ne; e++) taken |= eligible[e] == q;
          if (taken) continue;
          c3_record(&out->sel[cnt++], i, q, c3_csize(&c, q), T[i], CSAL3D_RULE_REFILL);
        }
      break;
    }
  }
  int64_t empty = 0;
  for (int64_t q = 0; q < m; q++) empty += c3_csize(&c, q) == 0;
  out->info->empty_clusters = empty;
done:
  c3_clusters_free(&c);
  c3_free(T), c3_free(mean), c3_free(eligible), c3_free(used);
  return s;
}

/* The original code's constants (TypiClust.MIN_CLUSTER_SIZE, MAX_NUM_CLUSTERS) and
 * the 1e-5 of its calculate_typicality. */
#define C3_TYPICLUST_MIN_SIZE 5
#define C3_TYPICLUST_MAX_CLUSTERS 500
#define C3_TYPICLUST_EPS 1e-5

/* TypiClust as the original code selects from an empty labelled set:
 * avihu111/TypiClust, deep-al/pycls/al/typiclust.py, TypiClust.select_samples and
 * calculate_typicality. min(M, 500) clusters (init_features_and_clusters); the
 * clusters of more than 5 members, largest first (sort_values on existing_count, all
 * 0, then -size; ties here: the lower first member, where the original keeps its
 * k-means label order); pick t goes to the (t mod count)-th of them and takes, among
 * its members not yet picked, the one of largest 1 / (mean squared distance to its
 * K = min(typiclust_k, |R| // 2) nearest + 1e-5) (faiss IndexFlatL2: squared L2,
 * the case itself dropped), the first in index order on ties (argmax). With K = 0
 * (one member left) the original's mean is NaN and argmax takes that member: here too,
 * typicality NaN. Where the original fails (no cluster left after the size filter, or
 * argmax over a cluster with no members left) this is an error. */
static csal3d_status c3_typiclust_original(const c3_strategy_in *in, c3_strategy_out *out) {
  const int64_t n = in->n, m = in->m;
  const int64_t k = m < C3_TYPICLUST_MAX_CLUSTERS ? m : C3_TYPICLUST_MAX_CLUSTERS;
  c3_clusters c;
  memset(&c, 0, sizeof c);
  double *mean = NULL;
  int64_t *eligible = NULL, *left = NULL;
  unsigned char *picked = NULL;
  csal3d_status s = c3_feature_kmeans(in, out, k, NULL);
  if (s == CSAL3D_OK) s = c3_clusters_build(out->assign, n, k, &c);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(double), "typicality", (void **)&mean);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)k, sizeof(int64_t), "clusters", (void **)&eligible);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(int64_t), "members", (void **)&left);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)n, 1, "picked", (void **)&picked);
  if (s != CSAL3D_OK) goto done;
  int64_t ne = 0;
  for (int64_t q = 0; q < k; q++)
    if (c3_csize(&c, q) > C3_TYPICLUST_MIN_SIZE) eligible[ne++] = q;
  if (ne == 0) {
    s = c3_error(CSAL3D_ERR_UNSUPPORTED,
                 "TypiClust (original variant): none of the %lld clusters has more than "
                 "%d members (the largest has %lld), and the original code picks only "
                 "from those; choose fewer cases (a smaller budget) or set the option "
                 "typiclust_variant to paper", (long long)k, C3_TYPICLUST_MIN_SIZE,
                 (long long)c3_csize(&c, 0));
    goto done;
  }
  for (int64_t t = 0; t < m; t++) {
    int64_t q = eligible[t % ne], size = c3_csize(&c, q), nl = 0;
    for (int64_t u = c.start[q]; u < c.start[q + 1]; u++)
      if (!picked[c.members[u]]) left[nl++] = c.members[u];
    if (nl == 0) {
      s = c3_error(CSAL3D_ERR_UNSUPPORTED,
                   "TypiClust (original variant): pick %lld of %lld falls to cluster %lld, "
                   "whose %lld members are all picked already (only %lld of the %lld "
                   "clusters have more than %d members, and the original code fails "
                   "here); choose fewer cases (a smaller budget) or set the option "
                   "typiclust_variant to paper", (long long)(t + 1), (long long)m,
                   (long long)q, (long long)size, (long long)ne, (long long)k,
                   C3_TYPICLUST_MIN_SIZE);
      goto done;
    }
    int64_t K = nl / 2 < in->o->typiclust_k ? nl / 2 : in->o->typiclust_k;
    int64_t best = 0;
    double tbest = NAN;
    if (K > 0) {
      s = c3_knn_means(in, left, nl, K, 1, mean);
      if (s != CSAL3D_OK) goto done;
      tbest = 1.0 / (mean[0] + C3_TYPICLUST_EPS);
      for (int64_t r = 1; r < nl; r++) {
        double v = 1.0 / (mean[r] + C3_TYPICLUST_EPS);
        if (v > tbest) tbest = v, best = r;
      }
    }
    picked[left[best]] = 1;
    c3_record(&out->sel[t], left[best], q, size, tbest,
              t < ne ? CSAL3D_RULE_MOST_TYPICAL : CSAL3D_RULE_REFILL);
  }
  int64_t empty = 0;
  for (int64_t q = 0; q < k; q++) empty += c3_csize(&c, q) == 0;
  out->info->empty_clusters = empty;
done:
  c3_clusters_free(&c);
  c3_free(mean), c3_free(eligible), c3_free(left), c3_free(picked);
  return s;
}

static csal3d_status c3_typiclust(const c3_strategy_in *in, c3_strategy_out *out) {
  return in->o->typiclust_variant == CSAL3D_TYPICLUST_ORIGINAL
             ? c3_typiclust_original(in, out)
             : c3_typiclust_paper(in, out);
}

static csal3d_status c3_alps(const c3_strategy_in *in, c3_strategy_out *out) {
  const int64_t n = in->n, d = in->d, m = in->m;
  float *C = NULL;
  double *dist = NULL;
  c3_clusters c;
  memset(&c, 0, sizeof c);
  int64_t *raw = NULL;
  csal3d_status s = c3_alloc_array((size_t)m, (size_t)d * sizeof(float), "centres", (void **)&C);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(double), "distances", (void **)&dist);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(int64_t), "labels", (void **)&raw);
  if (s == CSAL3D_OK) s = c3_feature_kmeans(in, out, m, C);
  if (s != CSAL3D_OK) goto done;
  memcpy(raw, out->assign, (size_t)n * sizeof(int64_t));
#pragma omp parallel for schedule(static) if ((n * d) > C3_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    const float *x = in->X + i * d, *cc = C + raw[i] * d;
    double v = 0;
    for (int64_t j = 0; j < d; j++) {
      double e = (double)x[j] - cc[j];
      v += e * e;
    }
    dist[i] = v;
  }
  s = c3_clusters_build(out->assign, n, m, &c);
  if (s != CSAL3D_OK) goto done;
  c3_sort_clusters(&c, dist, 0, NULL, 0);
  s = c3_one_per_cluster(&c, NULL, CSAL3D_RULE_NEAREST_CENTRE, out->sel, m,
                         &out->info->empty_clusters);
done:
  c3_clusters_free(&c);
  c3_free(C), c3_free(dist), c3_free(raw);
  return s;
}

static csal3d_status c3_calr(const c3_strategy_in *in, c3_strategy_out *out) {
  const int64_t n = in->n, d = in->d, m = in->m;
  const csal3d_sampler_options *o = in->o;
  c3_birch_result br;
  int64_t max_sub = o->birch_max_subclusters > 4 * m ? o->birch_max_subclusters : 4 * m;
  c3_clusters c;
  memset(&c, 0, sizeof c);
  double *U = NULL, *Sc = NULL, *mc = NULL;
  csal3d_status s = c3_birch(in->ctx, in->X, n, d, m, o->birch_threshold,
                             o->birch_branching, max_sub, out->assign, &br);
  if (s != CSAL3D_OK) return s;
  out->info->birch_threshold = br.threshold;
  out->info->birch_subclusters = br.subclusters;
  out->info->n_clusters = m;
  s = c3_clusters_build(out->assign, n, m, &c);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, (size_t)d * sizeof(double), "unit features", (void **)&U);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)m, (size_t)d * sizeof(double), "cluster sums", (void **)&Sc);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(double), "similarities", (void **)&mc);
  if (s != CSAL3D_OK) goto done;
  /* mean cosine similarity of each member to its cluster (itself included) */
#pragma omp parallel for schedule(static) if ((n * d) > C3_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double nr = 0;
    for (int64_t j = 0; j < d; j++) nr += (double)in->X[i * d + j] * in->X[i * d + j];
    nr = nr > 0 ? 1.0 / sqrt(nr) : 0;
    for (int64_t j = 0; j < d; j++) U[i * d + j] = in->X[i * d + j] * nr;
  }
#pragma omp parallel for schedule(dynamic, 1) if ((n * d) > C3_PAR_MIN)
  for (int64_t q = 0; q < m; q++)
    for (int64_t t = c.start[q]; t < c.start[q + 1]; t++)
      for (int64_t j = 0; j < d; j++) Sc[q * d + j] += U[c.members[t] * d + j];
#pragma omp parallel for schedule(static) if ((n * d) > C3_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    int64_t q = out->assign[i];
    double v = 0;
    for (int64_t j = 0; j < d; j++) v += U[i * d + j] * Sc[q * d + j];
    mc[i] = v / (double)c3_csize(&c, q);
  }
  c3_sort_clusters(&c, mc, 1, NULL, 0);
  s = c3_one_per_cluster(&c, mc, CSAL3D_RULE_MAX_COSINE, out->sel, m,
                         &out->info->empty_clusters);
done:
  c3_clusters_free(&c);
  c3_free(U), c3_free(Sc), c3_free(mc);
  return s;
}

/* ---- Coreset ---- */

static csal3d_status c3_coreset(const c3_strategy_in *in, c3_strategy_out *out) {
  const int64_t n = in->n, d = in->d, m = in->m;
  double *mind = NULL, *mean = NULL;
  int64_t *count = NULL;
  unsigned char *chosen = NULL;
  csal3d_status s = c3_alloc_array((size_t)n, sizeof(double), "distances", (void **)&mind);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)d, sizeof(double), "mean", (void **)&mean);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)m, sizeof(int64_t), "sizes", (void **)&count);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)n, 1, "chosen", (void **)&chosen);
  if (s != CSAL3D_OK) goto done;
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < d; j++) mean[j] += in->X[i * d + j];
  for (int64_t j = 0; j < d; j++) mean[j] /= (double)n;
#pragma omp parallel for schedule(static) if ((n * d) > C3_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double v = 0;
    for (int64_t j = 0; j < d; j++) {
      double e = in->X[i * d + j] - mean[j];
      v += e * e;
    }
    mind[i] = v;
  }
  int64_t cur = 0;
  for (int64_t i = 1; i < n; i++)
    if (mind[i] < mind[cur]) cur = i;
  for (int64_t t = 0; t < m; t++) {
    chosen[cur] = 1;
    out->sel[t].index = cur;
    out->sel[t].rule = t == 0 ? CSAL3D_RULE_KCENTER_START : CSAL3D_RULE_KCENTER_FARTHEST;
    const float *c = in->X + cur * d;
#pragma omp parallel for schedule(static) if ((n * d) > C3_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
      double v = 0;
      for (int64_t j = 0; j < d; j++) {
        double e = (double)in->X[i * d + j] - c[j];
        v += e * e;
      }
      if (t == 0 || v < mind[i]) mind[i] = v, out->assign[i] = t;
    }
    out->assign[cur] = t;
    mind[cur] = 0;
    /* farthest from the chosen ones (ties: lower index; never one already chosen) */
    int64_t next = -1;
    for (int64_t i = 0; i < n; i++)
      if (!chosen[i] && (next < 0 || mind[i] > mind[next])) next = i;
    cur = next;
    if (t % 16 == 15) {
      s = c3_progress(in->ctx, "select", (uint64_t)t + 1, (uint64_t)m);
      if (s != CSAL3D_OK) goto done;
    }
  }
  for (int64_t i = 0; i < n; i++) count[out->assign[i]]++;
  for (int64_t t = 0; t < m; t++) {
    csal3d_rule rule = out->sel[t].rule;
    c3_record(&out->sel[t], out->sel[t].index, t, count[t], NAN, rule);
  }
  out->info->n_clusters = m;
done:
  c3_free(mind), c3_free(mean), c3_free(count), c3_free(chosen);
  return s;
}

/* ---- ProbCover ---- */

static csal3d_status c3_probcover(const c3_strategy_in *in, c3_strategy_out *out) {
  const int64_t n = in->n, d = in->d, m = in->m;
  const csal3d_sampler_options *o = in->o;
  float *Xc = NULL, *xn = NULL, *buf = NULL, *nno = NULL;
  int64_t *labels = NULL, *deg = NULL, *off = NULL, *cov = NULL;
  int32_t *adj = NULL, *eu = NULL, *ev = NULL;
  unsigned char *covered = NULL, *chosen = NULL;
  int64_t ne = 0, ecap = 0;
  double delta = o->probcover_delta;
  int64_t bq = ((int64_t)1 << 24) / n;
  if (bq > 1024) bq = 1024;
  if (bq < 16) bq = 16;
  if (bq > n) bq = n;
  csal3d_status s = c3_center_copy(in->X, n, d, &Xc);
#define C3_ALLOC(ptr, count, size, what)                                       \
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(count), (size_t)(size), what, (void **)&(ptr))
  C3_ALLOC(xn, n, sizeof(float), "norms");
  C3_ALLOC(buf, bq, (size_t)n * sizeof(float), "distance block");
  C3_ALLOC(labels, n, sizeof(int64_t), "labels");
  C3_ALLOC(deg, n, sizeof(int64_t), "degrees");
  C3_ALLOC(off, n + 1, sizeof(int64_t), "graph offsets");
  C3_ALLOC(cov, n, sizeof(int64_t), "coverage");
  C3_ALLOC(covered, n, 1, "covered");
  C3_ALLOC(chosen, n, 1, "chosen");
#undef C3_ALLOC
  if (s != CSAL3D_OK) goto done;
  c3_row_sqnorms(Xc, n, d, xn);
  if (!(delta > 0)) {
    /* purity of delta-balls against k-means(M): a ball is pure when no case of
     * another cluster lies within delta, i.e. delta < nearest other-cluster distance */
    c3_kmeans_params kp;
    c3_kmeans_params_from(in, m, C3_KM_FEATURES, &kp);
    c3_kmeans_result kr;
    s = c3_kmeans(in->ctx, in->X, n, d, &kp, labels, NULL, &kr);
    if (s != CSAL3D_OK) goto done;
    out->info->kmeans_inertia = kr.inertia;
    s = c3_alloc_array((size_t)n, sizeof(float), "other-cluster distances", (void **)&nno);
    if (s != CSAL3D_OK) goto done;
    for (int64_t q0 = 0; q0 < n; q0 += bq) {
      int64_t q1 = q0 + bq < n ? q0 + bq : n;
      c3_sqdist(Xc + q0 * d, xn + q0, q1 - q0, Xc, xn, n, d, buf);
#pragma omp parallel for schedule(static) if (((q1 - q0) * n) > C3_PAR_MIN)
      for (int64_t i = q0; i < q1; i++) {
        float best = INFINITY;
        const float *row = buf + (i - q0) * n;
        for (int64_t j = 0; j < n; j++)
          if (labels[j] != labels[i] && row[j] < best) best = row[j];
        nno[i] = sqrtf(best);
      }
      s = c3_progress(in->ctx, "select", (uint64_t)q1, (uint64_t)n);
      if (s != CSAL3D_OK) goto done;
    }
    double med;
    s = c3_median_sq_distance(Xc, n, d, in->seed, &med);
    if (s != CSAL3D_OK) goto done;
    double r = sqrt(med);
    int G = o->probcover_grid;
    delta = 0;
    for (int g = G; g >= 1 && r > 0; g--) {
      double cand = r * g / G;
      int64_t impure = 0;
      for (int64_t i = 0; i < n; i++) impure += nno[i] <= cand;
      if ((double)(n - impure) / (double)n >= o->probcover_purity) {
        delta = cand;
        break;
      }
    }
    if (!(delta > 0)) {
      /* even the smallest grid value is impure: the largest other-cluster distance
       * that keeps the purity (a value strictly below the cut) */
      double *v = NULL;
      s = c3_alloc_array((size_t)n, sizeof(double), "distances", (void **)&v);
      if (s != CSAL3D_OK) goto done;
      for (int64_t i = 0; i < n; i++) v[i] = nno[i];
      int64_t q = (int64_t)floor((1 - o->probcover_purity) * (double)n);
      if (q > n - 1) q = n - 1;
      double cut = c3_select_kth(v, n, q);
      delta = 0;
      for (int64_t i = 0; i < n; i++)
        if (nno[i] < cut && nno[i] > delta) delta = nno[i];
      c3_free(v);
    }
    int64_t impure = 0;
    for (int64_t i = 0; i < n; i++) impure += nno[i] <= delta;
    out->info->probcover_purity = (double)(n - impure) / (double)n;
  } else {
    out->info->probcover_purity = NAN;
  }
  out->info->probcover_delta = delta;
  /* the delta-ball graph: undirected edges i < j with ||x_i - x_j|| <= delta, the
   * distance taken from row min(i, j) so that the relation is symmetric */
  {
    float d2 = (float)(delta * delta);
    memset(deg, 0, (size_t)n * sizeof(int64_t));
    for (int64_t q0 = 0; q0 < n; q0 += bq) {
      int64_t q1 = q0 + bq < n ? q0 + bq : n;
      c3_sqdist(Xc + q0 * d, xn + q0, q1 - q0, Xc, xn, n, d, buf);
      for (int64_t i = q0; i < q1; i++) {
        const float *row = buf + (i - q0) * n;
        for (int64_t j = i + 1; j < n; j++) {
          if (!(row[j] <= d2)) continue;
          if (ne == ecap) {
            int64_t nc = ecap ? 2 * ecap : 1 << 16;
            if (2 * nc > o->probcover_max_edges) nc = o->probcover_max_edges / 2;
            if (nc <= ne) {
              s = c3_error(CSAL3D_ERR_OUT_OF_MEMORY,
                           "ProbCover: the delta-ball graph (delta %g) has more than "
                           "%lld edges (probcover_max_edges); set a smaller "
                           "probcover_delta or raise the limit",
                           delta, (long long)o->probcover_max_edges);
              goto done;
            }
            int32_t *nu = NULL, *nv = NULL;
            s = c3_alloc_array((size_t)nc, sizeof(int32_t), "graph edges", (void **)&nu);
            if (s == CSAL3D_OK)
              s = c3_alloc_array((size_t)nc, sizeof(int32_t), "graph edges", (void **)&nv);
            if (s != CSAL3D_OK) {
              c3_free(nu);
              goto done;
            }
            if (ne) {
              memcpy(nu, eu, (size_t)ne * sizeof(int32_t));
              memcpy(nv, ev, (size_t)ne * sizeof(int32_t));
            }
            c3_free(eu), c3_free(ev);
            eu = nu, ev = nv, ecap = nc;
          }
          eu[ne] = (int32_t)i, ev[ne] = (int32_t)j, ne++;
          deg[i]++, deg[j]++;
        }
      }
      s = c3_progress(in->ctx, "select", (uint64_t)q1, (uint64_t)n);
      if (s != CSAL3D_OK) goto done;
    }
    /* CSR with the vertex itself first in its own ball */
    off[0] = 0;
    for (int64_t i = 0; i < n; i++) off[i + 1] = off[i] + deg[i] + 1;
    s = c3_alloc_array((size_t)off[n], sizeof(int32_t), "graph", (void **)&adj);
    if (s != CSAL3D_OK) goto done;
    for (int64_t i = 0; i < n; i++) adj[off[i]] = (int32_t)i, deg[i] = 1;
    for (int64_t e = 0; e < ne; e++) {
      int64_t a = eu[e], b = ev[e];
      adj[off[a] + deg[a]++] = (int32_t)b;
      adj[off[b] + deg[b]++] = (int32_t)a;
    }
    c3_free(eu), c3_free(ev);
    eu = ev = NULL;
  }
  /* greedy maximum coverage */
  memset(covered, 0, (size_t)n);
  memset(chosen, 0, (size_t)n);
  for (int64_t i = 0; i < n; i++) cov[i] = off[i + 1] - off[i], out->assign[i] = -1;
  {
    c3_rng r;
    c3_rng_init(&r, in->seed, C3_RNG_SAMPLING, C3_STREAM_PROBCOVER, 0, 0);
    int64_t ncov = 0;
    for (int64_t t = 0; t < m; t++) {
      int64_t best = -1;
      for (int64_t i = 0; i < n; i++)
        if (!chosen[i] && (best < 0 || cov[i] > cov[best])) best = i;
      csal3d_rule rule = CSAL3D_RULE_MAX_COVERAGE;
      if (cov[best] == 0) {
        /* everything is covered: a uniform draw among the cases not chosen */
        int64_t left = 0;
        for (int64_t i = 0; i < n; i++) left += !chosen[i];
        int64_t pick = (int64_t)c3_rng_below(&r, (uint64_t)left);
        for (int64_t i = 0; i < n; i++)
          if (!chosen[i] && pick-- == 0) {
            best = i;
            break;
          }
        rule = CSAL3D_RULE_COVERED_RANDOM;
      }
      chosen[best] = 1;
      int64_t gain = 0;
      for (int64_t e = off[best]; e < off[best + 1]; e++) {
        int64_t j = adj[e];
        if (covered[j]) continue;
        covered[j] = 1;
        out->assign[j] = t;
        gain++;
        for (int64_t f = off[j]; f < off[j + 1]; f++) cov[adj[f]]--;
      }
      ncov += gain;
      c3_record(&out->sel[t], best, t, gain, NAN, rule);
    }
    out->info->probcover_coverage = (double)ncov / (double)n;
  }
  out->info->n_clusters = m;
done:
  c3_free(Xc), c3_free(xn), c3_free(buf), c3_free(nno), c3_free(labels);
  c3_free(deg), c3_free(off), c3_free(cov), c3_free(adj), c3_free(eu), c3_free(ev);
  c3_free(covered), c3_free(chosen);
  return s;
}

/* ---- USL ---- */

/* Squared distances below this count as this in 1 / (d^2)^alpha (the original asserts
 * that none is 0: a case identical to another cluster's pick). */
#define C3_USL_MIN_SQ 1e-24

/* USL as the original code selects on CIFAR: TonyLianLong/UnsupervisedSelectiveLabeling,
 * selective_labeling/usl-cifar.py with shared/utils/nn_utils.py, partitioned_kNN (the
 * density) and get_selection_with_reg (the selection), defaults from
 * selective_labeling/config.py (NITERS 10, W 0.5, MOMENTUM 0.9, ALPHA 0.5).
 * Density rho = 1 / mean of the squared distances to the K = min(usl_k, N) nearest
 * cases, the case itself (distance 0) among them, as KeOps' Kmin over the whole set
 * gives. Then usl_iterations passes: each cluster picks its largest
 * rho - lambda x regulariser (argmax: the first in index order on ties), the first
 * pass with the regulariser 0; after every pass but the last, regulariser = momentum x
 * regulariser + (1 - momentum) x sum over the picks of the other clusters of
 * 1 / (squared distance)^alpha. Not followed: the original's HORIZON_DIST (4) leaves
 * out picks at squared distance >= 4, which on its unit-length features leaves out
 * only exact opposites (our features have any scale; usl_horizon > 0 keeps the h
 * nearest picks instead), and its same-cluster term 1 / (1e10)^alpha, the same for
 * every case. */
static csal3d_status c3_usl(const c3_strategy_in *in, c3_strategy_out *out) {
  const int64_t n = in->n, d = in->d, m = in->m;
  const csal3d_sampler_options *o = in->o;
  /* the K nearest with the case itself: K - 1 others */
  const int64_t K = o->usl_k < n ? o->usl_k : n, Ko = K - 1;
  float *kd = NULL;
  double *rho = NULL, *reg = NULL, *util = NULL;
  int64_t *sel = NULL;
  c3_clusters c;
  memset(&c, 0, sizeof c);
  csal3d_status s = c3_alloc_array((size_t)n, sizeof(double), "density", (void **)&rho);
  if (s == CSAL3D_OK) s = c3_calloc_array((size_t)n, sizeof(double), "regulariser", (void **)&reg);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)n, sizeof(double), "utility", (void **)&util);
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)m, sizeof(int64_t), "picks", (void **)&sel);
  if (s == CSAL3D_OK && Ko > 0)
    s = c3_alloc_array((size_t)n, (size_t)Ko * sizeof(float), "neighbour distances", (void **)&kd);
  if (s != CSAL3D_OK) goto done;
  if (Ko > 0) {
    s = c3_knn(in->ctx, in->X, n, d, Ko, 1, kd, NULL);
    if (s != CSAL3D_OK) goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    double sum = 0;
    for (int64_t j = 0; j < Ko; j++) sum += kd[i * Ko + j];
    rho[i] = sum > 0 ? (double)K / sum : INFINITY;
  }
  s = c3_feature_kmeans(in, out, m, NULL);
  if (s == CSAL3D_OK) s = c3_clusters_build(out->assign, n, m, &c);
  if (s != CSAL3D_OK) goto done;
  for (int64_t i = 0; i < n; i++) util[i] = rho[i];
  const int H = o->usl_horizon;
  for (int it = 0; it < o->usl_iterations; it++) {
    if (it > 0) {
#pragma omp parallel for schedule(static) if ((n * m * d) > C3_PAR_MIN)
      for (int64_t i = 0; i < n; i++) {
        double near[64], nr = 0;
        int have = 0;
        int64_t qi = out->assign[i];
        for (int64_t q = 0; q < m; q++) {
          if (q == qi || sel[q] < 0) continue;
          const float *x = in->X + i * d, *y = in->X + sel[q] * d;
          double v = 0;
          for (int64_t j = 0; j < d; j++) {
            double e = (double)x[j] - y[j];
            v += e * e;
          }
          if (v < C3_USL_MIN_SQ) v = C3_USL_MIN_SQ;
          if (!H) {
            nr += 1.0 / pow(v, o->usl_alpha);
            continue;
          }
          if (have == H && !(v < near[H - 1])) continue;
          int p = have < H ? have++ : H - 1;
          while (p > 0 && near[p - 1] > v) near[p] = near[p - 1], p--;
          near[p] = v;
        }
        for (int t = 0; t < have; t++) nr += 1.0 / pow(near[t], o->usl_alpha);
        reg[i] = o->usl_momentum * reg[i] + (1 - o->usl_momentum) * nr;
        util[i] = rho[i] - o->usl_lambda * reg[i];
      }
    }
    memcpy(c.pref, c.members, (size_t)n * sizeof(int64_t));
    c3_sort_clusters(&c, util, 1, NULL, 0);
    for (int64_t q = 0; q < m; q++) sel[q] = c3_csize(&c, q) ? c.pref[c.start[q]] : -1;
  }
  s = c3_one_per_cluster(&c, rho, CSAL3D_RULE_USL_UTILITY, out->sel, m,
                         &out->info->empty_clusters);
done:
  c3_clusters_free(&c);
  c3_free(kd), c3_free(rho), c3_free(reg), c3_free(util), c3_free(sel);
  return s;
}

/* ---- the table ---- */

static csal3d_status c3_urds_full(const c3_strategy_in *in, c3_strategy_out *out) {
  return c3_urds(in, out, 0);
}

static csal3d_status c3_div_only(const c3_strategy_in *in, c3_strategy_out *out) {
  return c3_urds(in, out, 1);
}

#define C3_OPT_URDS_CLUSTERING                                                   \
  (CSAL3D_SAMPLER_OPT_SEED | CSAL3D_SAMPLER_OPT_KERNEL | CSAL3D_SAMPLER_OPT_GAMMA | \
   CSAL3D_SAMPLER_OPT_MKKM | CSAL3D_SAMPLER_OPT_KMEANS)
#define C3_OPT_KMEANS (CSAL3D_SAMPLER_OPT_SEED | CSAL3D_SAMPLER_OPT_KMEANS)

/* Indexed by csal3d_strategy. Columns: name, description, run, needs scores,
 * has clusters, has typicality, options read. */
static const c3_strategy_def c3_strategies[] = {
    [CSAL3D_STRATEGY_URDS] = {
        "urds", "URDS: multi-kernel k-means into M clusters, the most uncertain of the "
        "N_cand most typical members of each", c3_urds_full, 1, 1, 1,
        CSAL3D_SAMPLER_OPT_N_CAND | C3_OPT_URDS_CLUSTERING},
    [CSAL3D_STRATEGY_UNC_ONLY] = {
        "unc-only", "Ablation: the M cases with the largest scores", c3_unc_only, 1, 0, 0,
        0},
    [CSAL3D_STRATEGY_DIV_ONLY] = {
        "div-only", "Ablation: URDS's clusters, the most typical member of each",
        c3_div_only, 0, 1, 1, C3_OPT_URDS_CLUSTERING},
    [CSAL3D_STRATEGY_RANDOM] = {
        "random", "M cases drawn uniformly without replacement", c3_random, 0, 0, 0,
        CSAL3D_SAMPLER_OPT_SEED},
    [CSAL3D_STRATEGY_TYPICLUST] = {
        "typiclust", "TypiClust: k-means into M clusters, the member with the largest kNN "
        "typicality of each, largest clusters first (or the original code's rules)",
        c3_typiclust, 0, 1, 1, C3_OPT_KMEANS | CSAL3D_SAMPLER_OPT_TYPICLUST},
    [CSAL3D_STRATEGY_PROBCOVER] = {
        "probcover", "ProbCover: greedy maximum coverage of delta-balls, delta from the "
        "purity against k-means", c3_probcover, 0, 1, 0,
        C3_OPT_KMEANS | CSAL3D_SAMPLER_OPT_PROBCOVER},
    [CSAL3D_STRATEGY_ALPS] = {
        "alps", "ALPS-style: k-means into M clusters, the member nearest each centre",
        c3_alps, 0, 1, 0, C3_OPT_KMEANS},
    [CSAL3D_STRATEGY_CALR] = {
        "calr", "CALR: BIRCH into M clusters, the member with the largest mean cosine "
        "similarity to its cluster", c3_calr, 0, 1, 1, CSAL3D_SAMPLER_OPT_BIRCH},
    [CSAL3D_STRATEGY_CORESET] = {
        "coreset", "Coreset: k-center greedy from the case nearest the mean", c3_coreset,
        0, 1, 0, 0},
    [CSAL3D_STRATEGY_USL] = {
        "usl", "USL: the densest case of each k-means cluster, pushed away from the other "
        "clusters' picks (as the original code)", c3_usl, 0, 1, 1,
        C3_OPT_KMEANS | CSAL3D_SAMPLER_OPT_USL},
};
#define C3_N_STRATEGIES (int)(sizeof c3_strategies / sizeof c3_strategies[0])
_Static_assert(C3_N_STRATEGIES == CSAL3D_STRATEGY_USL + 1,
               "the strategy table covers every csal3d_strategy");

/* Indexed by csal3d_rule. */
static const char *const c3_rule_names[] = {
    [CSAL3D_RULE_NONE] = "none",
    [CSAL3D_RULE_URDS] = "urds",
    [CSAL3D_RULE_REFILL] = "refill",
    [CSAL3D_RULE_TOP_SCORE] = "top-score",
    [CSAL3D_RULE_MOST_TYPICAL] = "most-typical",
    [CSAL3D_RULE_RANDOM] = "random",
    [CSAL3D_RULE_MAX_COVERAGE] = "max-coverage",
    [CSAL3D_RULE_COVERED_RANDOM] = "covered-random",
    [CSAL3D_RULE_NEAREST_CENTRE] = "nearest-centre",
    [CSAL3D_RULE_MAX_COSINE] = "max-cosine",
    [CSAL3D_RULE_KCENTER_START] = "kcenter-start",
    [CSAL3D_RULE_KCENTER_FARTHEST] = "kcenter-farthest",
    [CSAL3D_RULE_USL_UTILITY] = "usl-utility",
};
#define C3_N_RULES (int)(sizeof c3_rule_names / sizeof c3_rule_names[0])
_Static_assert(C3_N_RULES == CSAL3D_RULE_USL_UTILITY + 1,
               "the rule table covers every csal3d_rule");

int c3_strategy_count(void) { return C3_N_STRATEGIES; }

const c3_strategy_def *c3_strategy_get(int strategy) {
  return strategy >= 0 && strategy < C3_N_STRATEGIES ? &c3_strategies[strategy] : NULL;
}

int c3_rule_count(void) { return C3_N_RULES; }

const char *c3_rule_get_name(int rule) {
  return rule >= 0 && rule < C3_N_RULES ? c3_rule_names[rule] : NULL;
}

int c3_needs_scores(const csal3d_sampler_options *o) {
  const c3_strategy_def *def = c3_strategy_get((int)o->strategy);
  if (!def) return 0;
  return def->needs_scores ||
         ((def->options & CSAL3D_SAMPLER_OPT_KERNEL) && o->kernel == CSAL3D_KERNEL_REFERENCE);
}

csal3d_status c3_run_strategy(const c3_strategy_in *in, c3_strategy_out *out) {
  const c3_strategy_def *def = c3_strategy_get((int)in->o->strategy);
  if (!def)
    return c3_error(CSAL3D_ERR_INVALID_ARGUMENT, "unknown strategy %d", (int)in->o->strategy);
  return def->run(in, out);
}
