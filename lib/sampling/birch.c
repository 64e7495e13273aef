/* BIRCH (Zhang, Ramakrishnan and Livny 1996) for CALR.
 *
 * Phase 1: a CF-tree (branching factor B) whose leaf entries are subclusters
 * (n, linear sum, square sum) of radius <= T. A point goes down to the closest child by
 * centroid distance; at the leaf it joins the closest subcluster if the merged radius
 * stays <= T, else it starts a new one; nodes over B entries split around their
 * farthest pair. With T = 0 given, T starts at 0 and, whenever the leaves hold more
 * than max_sub subclusters, grows to the mean over leaves of the smallest merged radius
 * of a pair of their entries (at least 1.5 T), and the tree is rebuilt from its leaf
 * entries (BIRCH's threshold heuristic and rebuild).
 * Phase 3: the subclusters are merged by Ward's criterion (the increase of the sum of
 * squares, n_a n_b / (n_a + n_b) ||c_a - c_b||^2, computed exactly from the CFs) until
 * k clusters remain. Labels: each point takes the cluster of its nearest subcluster
 * centroid (as scikit-learn's Birch.predict). */
#include <math.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/report.h"
#include "sampling/sampling.h"

typedef struct c3_bt {
  int64_t d, B;
  double T2; /* threshold squared */
  /* entries */
  int64_t ne, ecap;
  double *en, *ess, *els; /* n, square sum, linear sums (ecap x d) */
  int64_t *echild;        /* child node, -1 for a leaf entry (subcluster) */
  /* nodes: B + 1 entry slots each */
  int64_t nn, ncap;
  int64_t *ncount, *nent;
  int *nleaf;
  int64_t root;
  int64_t leaves; /* subclusters */
  double *tmp;    /* d */
} c3_bt;

static csal3d_status c3_grow(void **p, int64_t *cap, int64_t need, size_t elem,
                             const char *what) {
  if (need <= *cap) return CSAL3D_OK;
  int64_t nc = *cap ? *cap : 64;
  while (nc < need) nc *= 2;
  void *q;
  C3_TRY(c3_alloc_array((size_t)nc, elem, what, &q));
  if (*p) memcpy(q, *p, (size_t)*cap * elem);
  c3_free(*p);
  *p = q;
  *cap = nc;
  return CSAL3D_OK;
}

static void c3_bt_free(c3_bt *t) {
  c3_free(t->en), c3_free(t->ess), c3_free(t->els), c3_free(t->echild);
  c3_free(t->ncount), c3_free(t->nent), c3_free(t->nleaf), c3_free(t->tmp);
  memset(t, 0, sizeof *t);
}

static csal3d_status c3_bt_new_entry(c3_bt *t, int64_t *out) {
  int64_t need = t->ne + 1, cap = t->ecap;
  int64_t c0 = cap, c1 = cap, c2 = cap, c3 = cap;
  C3_TRY(c3_grow((void **)&t->en, &c0, need, sizeof(double), "BIRCH entries"));
  C3_TRY(c3_grow((void **)&t->ess, &c1, need, sizeof(double), "BIRCH entries"));
  C3_TRY(c3_grow((void **)&t->echild, &c2, need, sizeof(int64_t), "BIRCH entries"));
  if (c3 < need) {
    int64_t nc = c0;
    double *q;
    C3_TRY(c3_alloc_array((size_t)nc, (size_t)t->d * sizeof(double), "BIRCH sums",
                          (void **)&q));
    if (t->els) memcpy(q, t->els, (size_t)(cap * t->d) * sizeof(double));
    c3_free(t->els);
    t->els = q;
  }
  t->ecap = c0;
  *out = t->ne++;
  t->en[*out] = 0, t->ess[*out] = 0, t->echild[*out] = -1;
  memset(t->els + *out * t->d, 0, (size_t)t->d * sizeof(double));
  return CSAL3D_OK;
}

static csal3d_status c3_bt_new_node(c3_bt *t, int leaf, int64_t *out) {
  int64_t need = t->nn + 1, cap = t->ncap;
  int64_t c0 = cap, c1 = cap;
  C3_TRY(c3_grow((void **)&t->ncount, &c0, need, sizeof(int64_t), "BIRCH nodes"));
  C3_TRY(c3_grow((void **)&t->nleaf, &c1, need, sizeof(int), "BIRCH nodes"));
  if (cap < need) {
    int64_t *q;
    C3_TRY(c3_alloc_array((size_t)c0, (size_t)(t->B + 1) * sizeof(int64_t),
                          "BIRCH nodes", (void **)&q));
    if (t->nent) memcpy(q, t->nent, (size_t)(cap * (t->B + 1)) * sizeof(int64_t));
    c3_free(t->nent);
    t->nent = q;
  }
  t->ncap = c0;
  *out = t->nn++;
  t->ncount[*out] = 0;
  t->nleaf[*out] = leaf;
  return CSAL3D_OK;
}

/* squared distance between the centroids of entry e and of the CF (n, ls) */
static double c3_bt_cdist(const c3_bt *t, int64_t e, double n, const double *ls) {
  const double *a = t->els + e * t->d;
  double ia = 1.0 / t->en[e], ib = 1.0 / n, s = 0;
  for (int64_t j = 0; j < t->d; j++) {
    double v = a[j] * ia - ls[j] * ib;
    s += v * v;
  }
  return s;
}

/* squared radius of entry e merged with (n, ls, ss) */
static double c3_bt_merged_r2(const c3_bt *t, int64_t e, double n, const double *ls,
                              double ss) {
  double N = t->en[e] + n, S = t->ess[e] + ss, c2 = 0;
  const double *a = t->els + e * t->d;
  for (int64_t j = 0; j < t->d; j++) {
    double v = (a[j] + ls[j]) / N;
    c2 += v * v;
  }
  double r2 = S / N - c2;
  return r2 > 0 ? r2 : 0;
}

static void c3_bt_add(c3_bt *t, int64_t e, double n, const double *ls, double ss) {
  t->en[e] += n;
  t->ess[e] += ss;
  double *a = t->els + e * t->d;
  for (int64_t j = 0; j < t->d; j++) a[j] += ls[j];
}

/* entry e's CF = the sum of its child's entries */
static void c3_bt_summarise(c3_bt *t, int64_t e) {
  int64_t c = t->echild[e];
  t->en[e] = 0, t->ess[e] = 0;
  memset(t->els + e * t->d, 0, (size_t)t->d * sizeof(double));
  for (int64_t i = 0; i < t->ncount[c]; i++) {
    int64_t f = t->nent[c * (t->B + 1) + i];
    c3_bt_add(t, e, t->en[f], t->els + f * t->d, t->ess[f]);
  }
}

/* splits node `node` (B + 1 entries) around its farthest pair; the new node's id
 * goes to *sibling. */
static csal3d_status c3_bt_split(c3_bt *t, int64_t node, int64_t *sibling) {
  int64_t B1 = t->B + 1;
  int64_t cnt = t->ncount[node];
  int64_t ents[512];
  int64_t *E = cnt <= 512 ? ents : NULL;
  if (!E) C3_TRY(c3_alloc_array((size_t)cnt, sizeof(int64_t), "BIRCH split", (void **)&E));
  memcpy(E, t->nent + node * B1, (size_t)cnt * sizeof(int64_t));
  int64_t s0 = 0, s1 = 1;
  double far = -1;
  for (int64_t i = 0; i < cnt; i++)
    for (int64_t j = i + 1; j < cnt; j++) {
      double v = c3_bt_cdist(t, E[i], t->en[E[j]], t->els + E[j] * t->d);
      if (v > far) far = v, s0 = i, s1 = j;
    }
  int64_t sib;
  csal3d_status s = c3_bt_new_node(t, t->nleaf[node], &sib);
  if (s != CSAL3D_OK) {
    if (E != ents) c3_free(E);
    return s;
  }
  t->ncount[node] = 0;
  for (int64_t i = 0; i < cnt; i++) {
    int to_sib;
    if (i == s0) to_sib = 0;
    else if (i == s1) to_sib = 1;
    else {
      double d0 = c3_bt_cdist(t, E[s0], t->en[E[i]], t->els + E[i] * t->d);
      double d1 = c3_bt_cdist(t, E[s1], t->en[E[i]], t->els + E[i] * t->d);
      to_sib = d1 < d0;
    }
    int64_t dst = to_sib ? sib : node;
    t->nent[dst * B1 + t->ncount[dst]++] = E[i];
  }
  if (E != ents) c3_free(E);
  *sibling = sib;
  return CSAL3D_OK;
}

/* inserts the CF (n, ls, ss) under `node`; *split receives a new sibling or -1 */
static csal3d_status c3_bt_insert_rec(c3_bt *t, int64_t node, double n,
                                      const double *ls, double ss, int64_t *split) {
  int64_t B1 = t->B + 1;
  *split = -1;
  int64_t best = -1;
  double bd = INFINITY;
  for (int64_t i = 0; i < t->ncount[node]; i++) {
    int64_t e = t->nent[node * B1 + i];
    double v = c3_bt_cdist(t, e, n, ls);
    if (v < bd) bd = v, best = i;
  }
  if (t->nleaf[node]) {
    if (best >= 0) {
      int64_t e = t->nent[node * B1 + best];
      if (c3_bt_merged_r2(t, e, n, ls, ss) <= t->T2) {
        c3_bt_add(t, e, n, ls, ss);
        return CSAL3D_OK;
      }
    }
    int64_t e;
    C3_TRY(c3_bt_new_entry(t, &e));
    c3_bt_add(t, e, n, ls, ss);
    t->nent[node * B1 + t->ncount[node]++] = e;
    t->leaves++;
    if (t->ncount[node] > t->B) C3_TRY(c3_bt_split(t, node, split));
    return CSAL3D_OK;
  }
  int64_t e = t->nent[node * B1 + best];
  int64_t child_split;
  C3_TRY(c3_bt_insert_rec(t, t->echild[e], n, ls, ss, &child_split));
  if (child_split < 0) {
    c3_bt_add(t, e, n, ls, ss);
    return CSAL3D_OK;
  }
  c3_bt_summarise(t, e);
  int64_t e2;
  C3_TRY(c3_bt_new_entry(t, &e2));
  t->echild[e2] = child_split;
  c3_bt_summarise(t, e2);
  t->nent[node * B1 + t->ncount[node]++] = e2;
  if (t->ncount[node] > t->B) C3_TRY(c3_bt_split(t, node, split));
  return CSAL3D_OK;
}

static csal3d_status c3_bt_insert(c3_bt *t, double n, const double *ls, double ss) {
  int64_t split;
  C3_TRY(c3_bt_insert_rec(t, t->root, n, ls, ss, &split));
  if (split < 0) return CSAL3D_OK;
  int64_t old = t->root, root, a, b;
  C3_TRY(c3_bt_new_node(t, 0, &root));
  C3_TRY(c3_bt_new_entry(t, &a));
  C3_TRY(c3_bt_new_entry(t, &b));
  t->echild[a] = old, t->echild[b] = split;
  c3_bt_summarise(t, a);
  c3_bt_summarise(t, b);
  int64_t B1 = t->B + 1;
  t->nent[root * B1] = a, t->nent[root * B1 + 1] = b;
  t->ncount[root] = 2;
  t->root = root;
  return CSAL3D_OK;
}

static csal3d_status c3_bt_init(c3_bt *t, int64_t d, int64_t B, double T) {
  memset(t, 0, sizeof *t);
  t->d = d, t->B = B, t->T2 = T * T;
  C3_TRY(c3_alloc_array((size_t)d, sizeof(double), "BIRCH", (void **)&t->tmp));
  return c3_bt_new_node(t, 1, &t->root);
}

/* leaf entries (subclusters) in tree order */
static csal3d_status c3_bt_leaves(const c3_bt *t, int64_t **out, int64_t *count) {
  int64_t *L = NULL, *stack = NULL;
  int64_t cap = t->leaves > 0 ? t->leaves : 1;
  csal3d_status s = c3_alloc_array((size_t)cap, sizeof(int64_t), "BIRCH leaves", (void **)&L);
  if (s == CSAL3D_OK)
    s = c3_alloc_array((size_t)(t->nn + 1), sizeof(int64_t), "BIRCH stack", (void **)&stack);
  if (s != CSAL3D_OK) {
    c3_free(L);
    return s;
  }
  int64_t sp = 0, cnt = 0, B1 = t->B + 1;
  stack[sp++] = t->root;
  while (sp) {
    int64_t node = stack[--sp];
    if (t->nleaf[node]) {
      for (int64_t i = 0; i < t->ncount[node]; i++) L[cnt++] = t->nent[node * B1 + i];
    } else {
      for (int64_t i = t->ncount[node] - 1; i >= 0; i--)
        stack[sp++] = t->echild[t->nent[node * B1 + i]];
    }
  }
  c3_free(stack);
  *out = L;
  *count = cnt;
  return CSAL3D_OK;
}

/* BIRCH's next threshold: the mean over leaf nodes of the smallest merged radius of
 * two of their entries, at least 1.5 T. */
static double c3_bt_next_threshold(const c3_bt *t) {
  double sum = 0;
  int64_t cnt = 0, B1 = t->B + 1;
  for (int64_t node = 0; node < t->nn; node++) {
    if (!t->nleaf[node] || t->ncount[node] < 2) continue;
    double best = INFINITY;
    for (int64_t i = 0; i < t->ncount[node]; i++)
      for (int64_t j = i + 1; j < t->ncount[node]; j++) {
        int64_t a = t->nent[node * B1 + i], b = t->nent[node * B1 + j];
        double r2 = c3_bt_merged_r2(t, a, t->en[b], t->els + b * t->d, t->ess[b]);
        if (r2 < best) best = r2;
      }
    sum += sqrt(best);
    cnt++;
  }
  double T = sqrt(t->T2), next = cnt ? sum / (double)cnt : 0;
  if (next < 1.5 * T) next = 1.5 * T;
  if (!(next > 0)) next = 1e-12;
  return next;
}

/* rebuilds t with threshold T from its own leaf entries */
static csal3d_status c3_bt_rebuild(c3_bt *t, double T) {
  int64_t *L, cnt;
  C3_TRY(c3_bt_leaves(t, &L, &cnt));
  c3_bt nt;
  csal3d_status s = c3_bt_init(&nt, t->d, t->B, T);
  for (int64_t i = 0; s == CSAL3D_OK && i < cnt; i++) {
    int64_t e = L[i];
    s = c3_bt_insert(&nt, t->en[e], t->els + e * t->d, t->ess[e]);
  }
  c3_free(L);
  if (s != CSAL3D_OK) {
    c3_bt_free(&nt);
    return s;
  }
  c3_bt_free(t);
  *t = nt;
  return CSAL3D_OK;
}

/* Ward's merge cost of clusters a and b: n_a n_b / (n_a + n_b) ||c_a - c_b||^2 */
static double c3_ward(const double *cn, const double *cls, int64_t d, int64_t a,
                      int64_t b) {
  double s = 0, ia = 1.0 / cn[a], ib = 1.0 / cn[b];
  for (int64_t j = 0; j < d; j++) {
    double v = cls[a * d + j] * ia - cls[b * d + j] * ib;
    s += v * v;
  }
  return cn[a] * cn[b] / (cn[a] + cn[b]) * s;
}

csal3d_status c3_birch(const csal3d_context *ctx, const float *X, int64_t n,
                       int64_t d, int64_t k, double threshold, int branching,
                       int64_t max_sub, int64_t *labels, c3_birch_result *res) {
  memset(res, 0, sizeof *res);
  if (branching < 2) branching = 2;
  int adaptive = !(threshold > 0);
  c3_bt t;
  int64_t *L = NULL, *nnb = NULL, *group = NULL, *sub_of = NULL;
  double *nnd = NULL, *cn = NULL, *cls = NULL;
  float *cent = NULL, *cnf = NULL, *xn = NULL, *db = NULL;
  unsigned char *active = NULL;
  csal3d_status s = c3_bt_init(&t, d, branching, adaptive ? 0 : threshold);
  if (s != CSAL3D_OK) goto done;
  for (int64_t i = 0; i < n; i++) {
    for (int64_t j = 0; j < d; j++) t.tmp[j] = X[i * d + j];
    double ss = 0;
    for (int64_t j = 0; j < d; j++) ss += t.tmp[j] * t.tmp[j];
    s = c3_bt_insert(&t, 1, t.tmp, ss);
    if (s != CSAL3D_OK) goto done;
    while (adaptive && t.leaves > max_sub) {
      s = c3_bt_rebuild(&t, c3_bt_next_threshold(&t));
      if (s != CSAL3D_OK) goto done;
    }
    if ((i & 4095) == 4095) {
      s = c3_progress(ctx, "select", (uint64_t)i + 1, (uint64_t)n);
      if (s != CSAL3D_OK) goto done;
    }
  }
  int64_t S;
  s = c3_bt_leaves(&t, &L, &S);
  if (s != CSAL3D_OK) goto done;
  res->threshold = sqrt(t.T2);
  res->subclusters = S;
  /* Ward agglomeration of the S subclusters into min(k, S) clusters */
#define C3_ALLOC(ptr, count, size, what)                                       \
  if (s == CSAL3D_OK) s = c3_alloc_array((size_t)(count), (size_t)(size), what, (void **)&(ptr))
  C3_ALLOC(cn, S, sizeof(double), "cluster sizes");
  C3_ALLOC(cls, S, (size_t)d * sizeof(double), "cluster sums");
  C3_ALLOC(nnb, S, sizeof(int64_t), "nearest clusters");
  C3_ALLOC(nnd, S, sizeof(double), "nearest distances");
  C3_ALLOC(group, S, sizeof(int64_t), "cluster of each subcluster");
  C3_ALLOC(active, S, 1, "active clusters");
  C3_ALLOC(cent, S, (size_t)d * sizeof(float), "subcluster centroids");
  C3_ALLOC(cnf, S, sizeof(float), "centroid norms");
  C3_ALLOC(xn, n, sizeof(float), "norms");
  C3_ALLOC(db, 1024, (size_t)S * sizeof(float), "distance block");
  C3_ALLOC(sub_of, S, sizeof(int64_t), "merge forest");
#undef C3_ALLOC
  if (s != CSAL3D_OK) goto done;
  for (int64_t a = 0; a < S; a++) {
    int64_t e = L[a];
    cn[a] = t.en[e];
    memcpy(cls + a * d, t.els + e * d, (size_t)d * sizeof(double));
    for (int64_t j = 0; j < d; j++) cent[a * d + j] = (float)(t.els[e * d + j] / t.en[e]);
    active[a] = 1;
    sub_of[a] = a;
  }
  {
    /* nearest neighbour of each cluster (ties: lower index) */
#pragma omp parallel for schedule(dynamic, 8) if ((S * S * d) > C3_PAR_MIN)
    for (int64_t a = 0; a < S; a++) {
      nnb[a] = -1, nnd[a] = INFINITY;
      for (int64_t b = 0; b < S; b++) {
        if (b == a) continue;
        double v = c3_ward(cn, cls, d, a, b);
        if (v < nnd[a]) nnd[a] = v, nnb[a] = b;
      }
    }
    int64_t clusters = S;
    while (clusters > k) {
      int64_t a = -1;
      for (int64_t i = 0; i < S; i++)
        if (active[i] && (a < 0 || nnd[i] < nnd[a])) a = i;
      int64_t b = nnb[a];
      if (b < a) { int64_t tmp = a; a = b; b = tmp; }
      /* merge b into a */
      cn[a] += cn[b];
      for (int64_t j = 0; j < d; j++) cls[a * d + j] += cls[b * d + j];
      active[b] = 0;
      sub_of[b] = a;
      clusters--;
      nnb[a] = -1, nnd[a] = INFINITY;
      for (int64_t c = 0; c < S; c++) {
        if (!active[c] || c == a) continue;
        double v = c3_ward(cn, cls, d, a, c);
        if (v < nnd[a] || (v == nnd[a] && c < nnb[a])) nnd[a] = v, nnb[a] = c;
        if (nnb[c] == a || nnb[c] == b) {
          nnb[c] = -1, nnd[c] = INFINITY;
          for (int64_t e = 0; e < S; e++) {
            if (!active[e] || e == c) continue;
            double w = c3_ward(cn, cls, d, c, e);
            if (w < nnd[c]) nnd[c] = w, nnb[c] = e;
          }
        } else if (v < nnd[c] || (v == nnd[c] && a < nnb[c])) {
          nnd[c] = v, nnb[c] = a;
        }
      }
    }
  }
  {
    /* number the final clusters in order of their lowest subcluster */
    int64_t next = 0;
    for (int64_t a = 0; a < S; a++) {
      int64_t r = a;
      while (sub_of[r] != r) r = sub_of[r];
      if (r == a) group[a] = next++;
    }
    for (int64_t a = 0; a < S; a++) {
      int64_t r = a;
      while (sub_of[r] != r) r = sub_of[r];
      group[a] = group[r];
    }
  }
  /* every point takes its nearest subcluster's cluster */
  c3_row_sqnorms(cent, S, d, cnf);
  c3_row_sqnorms(X, n, d, xn);
  for (int64_t r0 = 0; r0 < n; r0 += 1024) {
    int64_t r1 = r0 + 1024 < n ? r0 + 1024 : n;
    c3_sqdist(X + r0 * d, xn + r0, r1 - r0, cent, cnf, S, d, db);
#pragma omp parallel for schedule(static) if (((r1 - r0) * S) > C3_PAR_MIN)
    for (int64_t i = r0; i < r1; i++) {
      const float *row = db + (i - r0) * S;
      int64_t best = 0;
      for (int64_t a = 1; a < S; a++)
        if (row[a] < row[best]) best = a;
      labels[i] = group[best];
    }
  }
done:
  c3_bt_free(&t);
  c3_free(L), c3_free(nnb), c3_free(group), c3_free(sub_of);
  c3_free(nnd), c3_free(cn), c3_free(cls), c3_free(cent), c3_free(cnf);
  c3_free(xn), c3_free(db), c3_free(active);
  return s;
}
