/* Sampling internals: distances, k-means, multi-kernel k-means, BIRCH, typicality and
 * the strategies behind csal3d_sampler.
 *
 * Threading: OpenMP only. A selection runs OpenBLAS with one thread (its own pthread
 * pool would fight OpenMP's spinning workers for the cores: on 2 cores a 270-case URDS
 * took 6 s instead of 0.05 s) and parallelises the big products itself: fixed blocks
 * of rows (or columns) of the output, one single-threaded BLAS call per block, in an
 * OpenMP loop. Each output element is computed by one call, so results are the same
 * whatever the thread count. Every other reduction whose order could change a result
 * is done in a fixed order (fixed-size chunks, summed in order). LAPACK's eigensolvers
 * run on one thread. */
#ifndef C3_SAMPLING_SAMPLING_H
#define C3_SAMPLING_SAMPLING_H

#include <stdint.h>

#include "csal3d/sampler.h"

/* Rows processed per fixed-order chunk of a reduction. Part of the results'
 * definition (it fixes the summation order): do not make it depend on threads. */
#define C3_CHUNK 4096

/* Loops with less work than this (about one operation per unit) run on one thread:
 * a parallel region costs microseconds, and much more on a loaded machine. */
#define C3_PAR_MIN (1 << 20)

/* RNG stream tags (id0 of C3_RNG_SAMPLING streams). Part of the results' definition. */
enum {
  C3_STREAM_KMEANS = 1,   /* id1 = caller's stream id, id2 = restart */
  C3_STREAM_MEDIAN = 2,   /* pair sampling for the median distance */
  C3_STREAM_NYSTROM = 3,  /* landmarks */
  C3_STREAM_REFERENCE = 4,/* random initial labels of the reference kernel k-means */
  C3_STREAM_RANDOM = 5,   /* the Random strategy */
  C3_STREAM_PROBCOVER = 6 /* random picks after full coverage */
};

/* ---- BLAS thread control ---- */

/* Sets OpenBLAS's thread count (process-wide) and returns the previous one. */
int c3_blas_threads_enter(int n);
void c3_blas_threads_leave(int previous);

/* ---- distances (linalg.c) ---- */

/* out[i] = ||A_i||^2 (accumulated in double). */
void c3_row_sqnorms(const float *A, int64_t rows, int64_t d, float *out);

/* out[i * k + j] = max(0, an[i] + bn[j] - 2 A_i . B_j): rows x k squared distances
 * through one sgemm. an, bn: squared norms of the rows of A and B. */
void c3_sqdist(const float *A, const float *an, int64_t rows, const float *B,
               const float *bn, int64_t k, int64_t d, float *out);

/* Rows (or columns) of an output computed by one BLAS call. */
#define C3_GEMM_ROWS 64

/* C (rows x n) = A (rows x k) B (k x n), row-major, parallel over row blocks. */
void c3_dgemm_rows(int64_t rows, int64_t n, int64_t k, const double *A, int64_t lda,
                   const double *B, int64_t ldb, double *C, int64_t ldc);

/* G (R x R, row-major) += F^T F for F (rows x R): the upper triangle and some of the
 * lower, parallel over column blocks; callers mirror the upper triangle at the end. */
void c3_dgram_acc(int64_t rows, int64_t R, const double *F, double *G);

/* A copy of X with the column means (computed in double, fixed order) subtracted:
 * distances are unchanged and the norm trick loses less to cancellation. */
csal3d_status c3_center_copy(const float *X, int64_t n, int64_t d, float **out);

/* The median of the squared Euclidean distances over pairs i < j: exact when there
 * are at most C3_MEDIAN_EXACT_PAIRS pairs (through sgemm), else over 2^18 pairs drawn
 * uniformly (seeded). 0 for n < 2. */
#define C3_MEDIAN_EXACT_PAIRS (1 << 22)
csal3d_status c3_median_sq_distance(const float *X, int64_t n, int64_t d,
                                    uint64_t seed, double *out);

/* k nearest neighbours of every row among the other rows (Euclidean; ties: lower
 * index), chosen by the norm trick on centred features, their distances then computed
 * again in double from the differences. dist: n x K, ascending, squared distances
 * when `squared`, else distances; idx (may be NULL): n x K. K must be <= n - 1.
 * Blocked: memory O(n d + block x n), no n x n matrix. */
csal3d_status c3_knn(const csal3d_context *ctx, const float *X, int64_t n,
                     int64_t d, int64_t K, int squared, float *dist, int64_t *idx);

/* Selection of the k-th smallest of n doubles (0-based), reordering v. */
double c3_select_kth(double *v, int64_t n, int64_t k);

/* ---- k-means (kmeans.c) ---- */

typedef struct c3_kmeans_params {
  int64_t k;
  int restarts;    /* k-means++ restarts, >= 1 */
  int max_iter;    /* Lloyd iterations per restart */
  double tol;      /* relative to the mean per-feature variance */
  int64_t batch;   /* > 0: mini-batch k-means when n > 4 batch */
  uint64_t seed;
  uint64_t stream; /* distinguishes the k-means runs of one selection */
} c3_kmeans_params;

typedef struct c3_kmeans_result {
  double inertia;   /* sum of squared distances to the assigned centres */
  int iterations;   /* of the best restart */
  int64_t empty;    /* clusters left empty (only with duplicate points) */
} c3_kmeans_result;

/* Lloyd's k-means with greedy k-means++ seeding (2 + ln k trials per centre) and
 * restarts; the restart with the lowest inertia wins (ties: the earlier). labels: n;
 * centres: k x d (may be NULL). Empty clusters are moved to the points farthest from
 * their centres, as long as those are at a positive distance. */
csal3d_status c3_kmeans(const csal3d_context *ctx, const float *X, int64_t n,
                        int64_t d, const c3_kmeans_params *p, int64_t *labels,
                        float *centres, c3_kmeans_result *res);

/* ---- multi-kernel k-means (mkkm.c) ---- */

typedef struct c3_mkkm_params {
  int n_kernels;
  double gammas[CSAL3D_MAX_KERNELS];
  int gamma_raw;      /* 1: gammas as given; 0: divided by the median sq. distance */
  double tol;
  int max_iter;
  int64_t exact_max_n;
  int64_t landmarks;
  uint64_t seed;
} c3_mkkm_params;

typedef struct c3_mkkm_result {
  double gammas[CSAL3D_MAX_KERNELS];
  double weights[CSAL3D_MAX_KERNELS];
  double median;
  int iterations;
  double objective;
  int nystrom;
  int64_t landmarks;
  double *history;      /* optional, caller's: objective after each iteration */
  int history_cap;
} c3_mkkm_result;

/* The MKKM spectral embedding: H (n x m, row-major, orthonormal columns) of the
 * weighted kernel sum at convergence, with the weights. Exact (dense n x n kernels,
 * dsyevr) when n <= exact_max_n, else Nystrom with `landmarks` landmarks per kernel
 * (at least m). */
csal3d_status c3_mkkm_embed(const csal3d_context *ctx, const float *X, int64_t n,
                            int64_t d, int64_t m, const c3_mkkm_params *p,
                            double *H, c3_mkkm_result *res);

/* MKKM then k-means (k-means++, restarts) on the rows of H scaled to unit length. */
csal3d_status c3_mkkm_cluster(const csal3d_context *ctx, const float *X,
                              int64_t n, int64_t d, int64_t m,
                              const c3_mkkm_params *p, const c3_kmeans_params *kp,
                              int64_t *labels, c3_mkkm_result *res,
                              c3_kmeans_result *kres);

/* The reference code's clustering: K = sum_p K_p / (u_i + u_j + eps), u the
 * min-max-scaled scores, Lloyd-style kernel k-means into m clusters from uniform
 * random labels, until no label changes or max_iter. n <= exact_max_n. */
csal3d_status c3_reference_cluster(const csal3d_context *ctx, const float *X,
                                   const float *scores, int64_t n, int64_t d,
                                   int64_t m, const c3_mkkm_params *p, double eps,
                                   int64_t *labels, c3_mkkm_result *res);

/* ---- BIRCH (birch.c) ---- */

typedef struct c3_birch_result {
  double threshold;
  int64_t subclusters;
} c3_birch_result;

/* BIRCH (Zhang et al. 1996): a CF-tree of leaf subclusters of radius <= threshold
 * (threshold 0: start at 0 and rebuild with a larger one whenever there are more than
 * max_sub subclusters), then Ward agglomeration of the subclusters into k clusters,
 * then every point labelled by its nearest subcluster's cluster. */
csal3d_status c3_birch(const csal3d_context *ctx, const float *X, int64_t n,
                       int64_t d, int64_t k, double threshold, int branching,
                       int64_t max_sub, int64_t *labels, c3_birch_result *res);

/* ---- typicality and orderings (strategies.c) ---- */

/* Eq. 10: T_i = 1 / mean over the other members j of i's cluster of (1 - cos(z_i, z_j));
 * +inf for a singleton or when that mean is 0. Labels < 0 give NaN. */
csal3d_status c3_typicality_cosine(const float *X, int64_t n, int64_t d,
                                   const int64_t *labels, int64_t k, double *T);

/* ---- strategies (strategies.c) ---- */

typedef struct c3_strategy_in {
  const csal3d_context *ctx;
  const csal3d_sampler_options *o;
  uint64_t seed;
  const float *X;      /* n x d */
  const float *S;      /* n, or NULL without scores */
  int64_t n, d, m;     /* m: the budget, 1 <= m <= n */
} c3_strategy_in;

typedef struct c3_strategy_out {
  csal3d_selection *sel;     /* m records (score filled by the caller) */
  int64_t *assign;           /* n: cluster of every case, -1 for none */
  csal3d_sampler_info *info; /* filled as far as the strategy knows */
  double *history;           /* optional: MKKM objective per iteration */
  int history_cap;
} c3_strategy_out;

typedef csal3d_status (*c3_strategy_fn)(const c3_strategy_in *in, c3_strategy_out *out);

/* One row of the strategy table (strategies.c), the one place that knows, for each
 * strategy, its name, the function that runs it, whether it needs scores, what its
 * records carry and which options it reads. Everything else (dispatch, option
 * checks, names, csal3d_strategy_get_info) reads it. */
typedef struct c3_strategy_def {
  const char *name;
  const char *description;
  c3_strategy_fn run;
  int needs_scores;   /* always; the reference kernel adds its own (c3_needs_scores) */
  int has_clusters;
  int has_typicality;
  unsigned options;   /* CSAL3D_SAMPLER_OPT_* read */
} c3_strategy_def;

/* Strategies are 0 .. c3_strategy_count() - 1; c3_strategy_get: NULL when unknown. */
int c3_strategy_count(void);
const c3_strategy_def *c3_strategy_get(int strategy);

/* Rules are 0 .. c3_rule_count() - 1; c3_rule_get_name: NULL when unknown. */
int c3_rule_count(void);
const char *c3_rule_get_name(int rule);

/* Whether a selection with these options needs scores: the strategy's own need, or
 * the reference kernel (which weighs by the scores) for strategies that read it. */
int c3_needs_scores(const csal3d_sampler_options *o);

/* Runs o->strategy through the table (o->strategy must be known). */
csal3d_status c3_run_strategy(const c3_strategy_in *in, c3_strategy_out *out);

#endif
