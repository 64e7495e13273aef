/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file sampler.h
 * @brief Choosing the cases to annotate: URDS and the baseline strategies.
 *
 * A ::csal3d_sampler takes features (N x d, float32, row-major) and
 * uncertainty scores (N) and a budget M, and chooses M cases: by
 * Uncertainty-Reinforced Diversity Sampling (multi-kernel k-means into M
 * clusters, the N_cand most typical members of each, the most uncertain of
 * those), by its ablations (Unc-only, Div-only), or by a baseline (Random,
 * TypiClust, ProbCover, ALPS, CALR, Coreset, USL). Each chosen case comes back
 * with its cluster, cluster size, typicality, score and the rule that chose
 * it; the cluster assignment of every case can be read back too.
 *
 * Results depend only on the inputs, the options and the seed, not on the
 * number of threads.
 *
 * @code
 * csal3d_sampler_options so;
 * csal3d_sampler_options_init(&so);
 * so.strategy = CSAL3D_STRATEGY_URDS;
 * csal3d_sampler *s;
 * csal3d_sampler_create(ctx, &so, &s);
 * csal3d_sampler_set_features(s, features, n, d);   // copied
 * csal3d_sampler_set_scores(s, scores, n);          // copied
 * if (csal3d_sampler_select(s, 20) != CSAL3D_OK)
 *   fprintf(stderr, "csal3d: %s\n", csal3d_last_error());
 * csal3d_selection picks[20];
 * int64_t count;
 * csal3d_sampler_get_selection(s, picks, sizeof picks[0], 20, &count);
 * csal3d_sampler_free(s);
 * @endcode
 */
#ifndef CSAL3D_SAMPLER_H
#define CSAL3D_SAMPLER_H

#include "csal3d/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque sampler: a strategy, its options, the features and scores given to it. */
typedef struct csal3d_sampler csal3d_sampler;

/** The selection strategies. Values never change once released. */
typedef enum csal3d_strategy {
  /** URDS (the paper): multi-kernel k-means into M clusters, the N_cand most
   *  typical members of each, the most uncertain of those. Needs scores. */
  CSAL3D_STRATEGY_URDS = 0,
  /** Ablation: the M cases with the largest scores. Needs scores. */
  CSAL3D_STRATEGY_UNC_ONLY = 1,
  /** Ablation: URDS's clusters, the most typical member of each. */
  CSAL3D_STRATEGY_DIV_ONLY = 2,
  /** M cases drawn uniformly without replacement (seeded). */
  CSAL3D_STRATEGY_RANDOM = 3,
  /** TypiClust (Hacohen et al. 2022): k-means into M clusters, the member
   *  with the largest kNN typicality of each, largest clusters first (see
   *  ::csal3d_typiclust_variant for the original code's rules). */
  CSAL3D_STRATEGY_TYPICLUST = 4,
  /** ProbCover (Yehuda et al. 2022): greedy maximum coverage of delta-balls. */
  CSAL3D_STRATEGY_PROBCOVER = 5,
  /** ALPS-style: k-means into M clusters, the member nearest each centre. */
  CSAL3D_STRATEGY_ALPS = 6,
  /** CALR: BIRCH into M clusters, the member with the largest mean cosine
   *  similarity to its cluster. */
  CSAL3D_STRATEGY_CALR = 7,
  /** Coreset (Sener and Savarese 2018): k-center greedy from the case
   *  nearest the mean. */
  CSAL3D_STRATEGY_CORESET = 8,
  /** USL (Wang et al. 2022): kNN density, one case per k-means cluster, with
   *  the regulariser that pushes picks away from the other clusters' picks (as
   *  the original code's get_selection_with_reg). */
  CSAL3D_STRATEGY_USL = 9
} csal3d_strategy;

/** How URDS (and Div-only) cluster the features. */
typedef enum csal3d_kernel_mode {
  /** Multi-kernel k-means (Huang et al. 2012) as the paper specifies: the
   *  default. */
  CSAL3D_KERNEL_MKKM = 0,
  /** The reference code's variant: a fixed sum of the Gaussian kernels, each
   *  multiplied by 1 / (u_i + u_j + eps) with u the min-max-scaled scores,
   *  clustered by Lloyd-style kernel k-means from random labels. Needs scores
   *  and N <= exact_max_n. */
  CSAL3D_KERNEL_REFERENCE = 1
} csal3d_kernel_mode;

/** How the Gaussian kernels' gammas are set. */
typedef enum csal3d_gamma_mode {
  /** g_p = gammas[p] / median of the squared pairwise distances (default). */
  CSAL3D_GAMMA_MEDIAN = 0,
  /** g_p = gammas[p] as given. */
  CSAL3D_GAMMA_RAW = 1
} csal3d_gamma_mode;

/** Which TypiClust: the variant the CSAL-3D paper compared against, or the
 *  original code's (avihu111/TypiClust, deep-al/pycls/al/typiclust.py). */
typedef enum csal3d_typiclust_variant {
  /** The paper's (default): typicality = 1 / mean distance to the
   *  K = min(typiclust_k, |C| - 1) nearest members of the cluster, one pick
   *  per cluster, largest clusters first, no minimum cluster size (but see
   *  typiclust_min_cluster_size). */
  CSAL3D_TYPICLUST_PAPER = 0,
  /** The original code's, for cold start: min(M, 500) k-means clusters; only
   *  clusters of more than 5 members are used, largest first, and the picks
   *  cycle over them; each pick is the member of largest typicality
   *  1 / (mean squared distance to the K = min(typiclust_k, |R| / 2) nearest
   *  + 1e-5) among the cluster's members R not yet picked. Selecting fails
   *  with ::CSAL3D_ERR_UNSUPPORTED (as the original fails) when no cluster has
   *  more than 5 members or a cluster runs out of members.
   *  typiclust_min_cluster_size is not read. */
  CSAL3D_TYPICLUST_ORIGINAL = 1
} csal3d_typiclust_variant;

/** Which rule chose a case (csal3d_rule_name() gives a short name). */
typedef enum csal3d_rule {
  CSAL3D_RULE_NONE = 0,               /**< Not a choice (unused in results). */
  CSAL3D_RULE_URDS = 1,               /**< The most uncertain of its cluster's N_cand most typical members. */
  CSAL3D_RULE_REFILL = 2,             /**< For an empty cluster: the next candidate of the largest cluster. */
  CSAL3D_RULE_TOP_SCORE = 3,          /**< Unc-only: among the M largest scores. */
  CSAL3D_RULE_MOST_TYPICAL = 4,       /**< Div-only, TypiClust: the most typical member of its cluster. */
  CSAL3D_RULE_RANDOM = 5,             /**< Random: drawn uniformly. */
  CSAL3D_RULE_MAX_COVERAGE = 6,       /**< ProbCover: covers the most uncovered cases. */
  CSAL3D_RULE_COVERED_RANDOM = 7,     /**< ProbCover: everything was covered; drawn uniformly. */
  CSAL3D_RULE_NEAREST_CENTRE = 8,     /**< ALPS: the member nearest its cluster's centre. */
  CSAL3D_RULE_MAX_COSINE = 9,         /**< CALR: largest mean cosine similarity to its cluster. */
  CSAL3D_RULE_KCENTER_START = 10,     /**< Coreset: the case nearest the mean. */
  CSAL3D_RULE_KCENTER_FARTHEST = 11,  /**< Coreset: farthest from the cases already chosen. */
  CSAL3D_RULE_USL_UTILITY = 12        /**< USL: largest density minus regulariser in its cluster. */
} csal3d_rule;

/** Largest number of Gaussian kernels in ::csal3d_sampler_options. */
#define CSAL3D_MAX_KERNELS 8

/**
 * Options of a sampler. Fill with csal3d_sampler_options_init() first, then
 * change what you need. New members are only ever appended.
 */
typedef struct csal3d_sampler_options {
  /** sizeof(csal3d_sampler_options) as the caller compiled it. */
  size_t struct_size;
  /** The strategy. Default ::CSAL3D_STRATEGY_URDS. */
  csal3d_strategy strategy;
  /** URDS: candidates kept per cluster (the most typical). Default 3. */
  int n_cand;
  /** Non-zero: use @ref seed; zero: use the context's seed. Default 0. */
  int use_seed;
  /** The seed when @ref use_seed is set. Default 0. */
  uint64_t seed;

  /** URDS / Div-only clustering. Default ::CSAL3D_KERNEL_MKKM. */
  csal3d_kernel_mode kernel;
  /** How gammas scale. Default ::CSAL3D_GAMMA_MEDIAN. */
  csal3d_gamma_mode gamma_mode;
  /** Number of Gaussian kernels, 1..::CSAL3D_MAX_KERNELS. Default 3. */
  int n_kernels;
  /** The kernels' gammas (see @ref gamma_mode). Default {0.1, 1, 10}. */
  double gammas[CSAL3D_MAX_KERNELS];
  /** MKKM: stop when the objective changes by less than this, relatively. Default 1e-6. */
  double mkkm_tol;
  /** MKKM (and the reference kernel k-means): most iterations. Default 100. */
  int mkkm_max_iter;
  /** Reference kernel: eps in 1 / (u_i + u_j + eps). Default 1e-3. */
  double reference_eps;
  /** Largest N clustered with exact N x N kernels (8 N^2 bytes); above it the
   *  kernels are approximated by Nystrom. Default 8192. */
  int64_t exact_max_n;
  /** Nystrom: landmarks per kernel, drawn uniformly without replacement (at
   *  least M are used). Default 256. */
  int64_t nystrom_landmarks;

  /** k-means (all strategies that use it): restarts from k-means++ seeds. Default 10. */
  int kmeans_restarts;
  /** k-means: most Lloyd iterations per restart. Default 300. */
  int kmeans_max_iter;
  /** k-means: converged when the centres move by less than tol x the mean
   *  per-feature variance (scikit-learn's meaning). Default 1e-4. */
  double kmeans_tol;
  /** k-means: 0 = full Lloyd (default); > 0 = mini-batch k-means with this
   *  batch size, used when N is larger than 4 batches. */
  int64_t kmeans_batch;

  /** TypiClust: neighbours K = min(typiclust_k, |C| - 1) (the original
   *  variant: min(typiclust_k, |R| / 2)). Default 20. */
  int typiclust_k;
  /** TypiClust, paper variant: clusters smaller than this are passed over
   *  while larger ones remain, and the picks cycle over the others. Default 0
   *  (none: every cluster gets its pick, as the paper's variant). */
  int typiclust_min_cluster_size;
  /** ProbCover: the ball radius; 0 chooses it from the purity grid. Default 0. */
  double probcover_delta;
  /** ProbCover: required purity of the delta-balls. Default 0.95. */
  double probcover_purity;
  /** ProbCover: grid steps; delta is searched on k r / steps, k = 1..steps,
   *  r the median pairwise distance. Default 100. */
  int probcover_grid;
  /** ProbCover: most graph edges kept (memory 4 bytes each). Default 2^28. */
  int64_t probcover_max_edges;
  /** CALR: BIRCH radius threshold; 0 adapts it (BIRCH's rebuilds). Default 0. */
  double birch_threshold;
  /** CALR: BIRCH branching factor. Default 50. */
  int birch_branching;
  /** CALR: most leaf subclusters before BIRCH rebuilds with a larger
   *  threshold (at least 4 M). Default 1024. */
  int64_t birch_max_subclusters;
  /** USL: neighbours of the kNN density, the case itself included (as the
   *  original's KNN_K): density = 1 / mean squared distance to the
   *  min(usl_k, N) nearest. Default 20. */
  int usl_k;
  /** USL: regulariser weight lambda (the original's W). Default 0.5. */
  double usl_lambda;
  /** USL: regulariser exponent alpha in 1 / (squared distance)^alpha. Default 0.5. */
  double usl_alpha;
  /** USL: selection passes (the original's NITERS), >= 1; the first uses the
   *  density alone. Default 10. */
  int usl_iterations;
  /** USL: momentum of the regulariser's moving average. Default 0.9. */
  double usl_momentum;
  /** USL: 0 = the regulariser sums over every other cluster's pick (the
   *  original); h >= 1: over the h nearest of them. Default 0. */
  int usl_horizon;
  /** TypiClust: which variant. Default ::CSAL3D_TYPICLUST_PAPER. */
  csal3d_typiclust_variant typiclust_variant;
} csal3d_sampler_options;

/**
 * One chosen case. Read back with csal3d_sampler_get_selection(), which
 * takes sizeof(csal3d_selection) as compiled by the caller so that records
 * can grow at the end in later versions.
 */
typedef struct csal3d_selection {
  /** Row of the case in the features (0-based). */
  int64_t index;
  /** Its cluster (clusters are numbered by size, largest first), or -1 for
   *  strategies without clusters (Unc-only, Random). For Coreset the cluster
   *  is the chosen centre's position; for ProbCover the pick that first
   *  covered the case. */
  int64_t cluster;
  /** Members of that cluster (ProbCover: cases it newly covered); 0 without clusters. */
  int64_t cluster_size;
  /** The typicality the strategy ranked by: Eq. 10 for URDS and Div-only
   *  (+inf for a singleton cluster or identical members), kNN typicality for
   *  TypiClust, mean cosine similarity for CALR, kNN density for USL; NaN
   *  where the strategy has none. */
  double typicality;
  /** The case's score, NaN when no scores were given. */
  double score;
  /** The rule that chose it. */
  csal3d_rule rule;
} csal3d_selection;

/**
 * What the last selection did, for inspection and reports.
 */
typedef struct csal3d_sampler_info {
  /** sizeof(csal3d_sampler_info) as the caller compiled it. */
  size_t struct_size;
  csal3d_strategy strategy;  /**< The strategy run. */
  int64_t n;                 /**< Cases. */
  int64_t d;                 /**< Feature dimension. */
  int64_t budget;            /**< M. */
  int64_t n_clusters;        /**< Clusters formed (0 for strategies without). */
  int64_t empty_clusters;    /**< Clusters that ended up empty (refilled). */
  /** URDS / Div-only: 1 when the kernels were approximated by Nystrom. */
  int nystrom;
  int64_t landmarks;         /**< Nystrom landmarks per kernel (0 when exact). */
  int n_kernels;             /**< Kernels used. */
  double gammas[CSAL3D_MAX_KERNELS];          /**< The gammas actually used. */
  double kernel_weights[CSAL3D_MAX_KERNELS];  /**< MKKM's final weights (sum 1). */
  int mkkm_iterations;       /**< MKKM (or reference kernel k-means) iterations. */
  double mkkm_objective;     /**< MKKM's final objective sum_p w_p^2 Tr(K_p (I - H H^T)). */
  double median_sq_distance; /**< The median squared pairwise distance used. */
  double kmeans_inertia;     /**< Final k-means inertia (whatever k-means ran last). */
  double probcover_delta;    /**< ProbCover: the radius used. */
  double probcover_purity;   /**< ProbCover: the purity at that radius. */
  double probcover_coverage; /**< ProbCover: fraction of cases covered by the picks. */
  double birch_threshold;    /**< CALR: BIRCH's final threshold. */
  int64_t birch_subclusters; /**< CALR: BIRCH's leaf subclusters. */
} csal3d_sampler_info;

/**
 * Fills @p options with the defaults (and sets struct_size).
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT if @p options is NULL.
 */
CSAL3D_API csal3d_status
csal3d_sampler_options_init(csal3d_sampler_options *options);

/**
 * Creates a sampler. It keeps a pointer to @p ctx (threads, seed, progress
 * and log), which must outlive it.
 * @param ctx the context; not NULL.
 * @param options the options, or NULL for the defaults (read as
 *        csal3d_context_create() reads its options).
 * @param out receives the sampler; NULL on failure.
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT for bad values (the message names
 *         the member).
 */
CSAL3D_API csal3d_status
csal3d_sampler_create(csal3d_context *ctx,
                      const csal3d_sampler_options *options,
                      csal3d_sampler **out);

/** Releases a sampler. Accepts NULL. */
CSAL3D_API void csal3d_sampler_free(csal3d_sampler *sampler);

/**
 * Gives the sampler its features: @p n rows of @p d float32 values,
 * row-major, copied. Replaces earlier features and clears earlier results
 * (and scores of another length).
 * @return ::CSAL3D_ERR_NUMERICAL if a value is NaN or infinite (the message
 *         names the row and column); ::CSAL3D_ERR_INVALID_ARGUMENT for n < 1,
 *         d < 1 or NULL.
 */
CSAL3D_API csal3d_status csal3d_sampler_set_features(csal3d_sampler *sampler,
                                                     const float *features,
                                                     int64_t n, int64_t d);

/**
 * Gives the sampler the uncertainty scores, one per row of the features
 * (larger = more uncertain), copied. Needed by URDS, Unc-only and the
 * reference kernel; reported by every strategy when given.
 * @return ::CSAL3D_ERR_NUMERICAL naming the first NaN or infinite score;
 *         ::CSAL3D_ERR_INVALID_ARGUMENT when @p n differs from the features'.
 */
CSAL3D_API csal3d_status csal3d_sampler_set_scores(csal3d_sampler *sampler,
                                                   const float *scores,
                                                   int64_t n);

/**
 * Chooses @p budget cases with the sampler's strategy. Reports progress to
 * the context's callback (stage "select") and can be cancelled.
 * @return ::CSAL3D_ERR_STATE without features (or without scores where the
 *         strategy needs them); ::CSAL3D_ERR_INVALID_ARGUMENT when
 *         budget < 1 or budget > N; ::CSAL3D_ERR_CANCELLED.
 */
CSAL3D_API csal3d_status csal3d_sampler_select(csal3d_sampler *sampler,
                                               int64_t budget);

/**
 * Copies the chosen cases, in the order the strategy chose them, into
 * @p records (@p capacity records of @p record_size bytes each; pass
 * sizeof(csal3d_selection)). @p count receives the number of chosen cases
 * (the budget); pass records = NULL and capacity = 0 to ask for it.
 * @return ::CSAL3D_ERR_STATE before a selection; ::CSAL3D_ERR_BUFFER_TOO_SMALL
 *         when capacity < count (count is still set).
 */
CSAL3D_API csal3d_status csal3d_sampler_get_selection(
    const csal3d_sampler *sampler, csal3d_selection *records,
    size_t record_size, int64_t capacity, int64_t *count);

/**
 * Copies the cluster of every case (N values; -1 where a case has none) into
 * @p clusters of @p capacity entries; @p n receives N.
 * @return ::CSAL3D_ERR_STATE before a selection; ::CSAL3D_ERR_BUFFER_TOO_SMALL.
 */
CSAL3D_API csal3d_status csal3d_sampler_get_assignment(
    const csal3d_sampler *sampler, int64_t *clusters, int64_t capacity,
    int64_t *n);

/**
 * Details of the last selection (weights, delta, thresholds...).
 * @param sampler the sampler, after csal3d_sampler_select().
 * @param info with struct_size set by the caller (sizeof); members beyond it
 *        are not written.
 * @return ::CSAL3D_ERR_STATE before a selection.
 */
CSAL3D_API csal3d_status csal3d_sampler_get_info(const csal3d_sampler *sampler,
                                                 csal3d_sampler_info *info);

/**
 * Whether a selection with this sampler's strategy and options needs scores:
 * URDS and Unc-only always, Div-only with ::CSAL3D_KERNEL_REFERENCE (the
 * strategies that read ::CSAL3D_SAMPLER_OPT_KERNEL need them with that
 * kernel). csal3d_sampler_select() fails with ::CSAL3D_ERR_STATE without them.
 * @param sampler the sampler; not NULL.
 * @param needs receives 1 or 0; not NULL.
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT for NULL.
 */
CSAL3D_API csal3d_status csal3d_sampler_needs_scores(const csal3d_sampler *sampler,
                                                     int *needs);

/* ---- the strategies and rules, as the library knows them ---- */

/**
 * Groups of ::csal3d_sampler_options members, as bits of
 * csal3d_strategy_info::options: which options a strategy reads (the others
 * it ignores). csal3d_sampler_option_name() names a group. Bits are never
 * reused; new groups take new bits.
 */
enum {
  /** n_cand. */
  CSAL3D_SAMPLER_OPT_N_CAND = 1u << 0,
  /** use_seed, seed: the strategy draws at random. */
  CSAL3D_SAMPLER_OPT_SEED = 1u << 1,
  /** kernel, reference_eps. */
  CSAL3D_SAMPLER_OPT_KERNEL = 1u << 2,
  /** gamma_mode, n_kernels, gammas. */
  CSAL3D_SAMPLER_OPT_GAMMA = 1u << 3,
  /** mkkm_tol, mkkm_max_iter, exact_max_n, nystrom_landmarks. */
  CSAL3D_SAMPLER_OPT_MKKM = 1u << 4,
  /** kmeans_restarts, kmeans_max_iter, kmeans_tol, kmeans_batch. */
  CSAL3D_SAMPLER_OPT_KMEANS = 1u << 5,
  /** typiclust_k, typiclust_min_cluster_size, typiclust_variant. */
  CSAL3D_SAMPLER_OPT_TYPICLUST = 1u << 6,
  /** probcover_delta, probcover_purity, probcover_grid, probcover_max_edges. */
  CSAL3D_SAMPLER_OPT_PROBCOVER = 1u << 7,
  /** birch_threshold, birch_branching, birch_max_subclusters. */
  CSAL3D_SAMPLER_OPT_BIRCH = 1u << 8,
  /** usl_k, usl_lambda, usl_alpha, usl_iterations, usl_momentum, usl_horizon. */
  CSAL3D_SAMPLER_OPT_USL = 1u << 9
};

/**
 * The name of one group of sampler options (one ::CSAL3D_SAMPLER_OPT_N_CAND
 * ... bit): "n_cand", "seed", "kernel", "gamma", "mkkm", "kmeans",
 * "typiclust", "probcover", "birch", "usl".
 * @param flag a single bit.
 * @return a static string; NULL when @p flag is not exactly one known bit.
 */
CSAL3D_API const char *csal3d_sampler_option_name(unsigned flag);

/**
 * What the library knows of a strategy. Read with csal3d_strategy_get_info(),
 * which takes sizeof(csal3d_strategy_info) as compiled by the caller in
 * struct_size; new members are only appended.
 */
typedef struct csal3d_strategy_info {
  /** sizeof(csal3d_strategy_info) as the caller compiled it. */
  size_t struct_size;
  /** The strategy (its ::csal3d_strategy value). */
  csal3d_strategy strategy;
  /** Its name, as csal3d_strategy_name() gives (static). */
  const char *name;
  /** One line on what it chooses (static, English). */
  const char *description;
  /** 1: csal3d_sampler_select() fails without scores whatever the options.
   *  0: scores are only reported (but see csal3d_sampler_needs_scores(): the
   *  reference kernel needs them for every strategy that reads
   *  ::CSAL3D_SAMPLER_OPT_KERNEL). */
  int needs_scores;
  /** 1: the picks carry a cluster and csal3d_sampler_get_assignment() gives
   *  clusters; 0: cluster -1 everywhere. */
  int has_clusters;
  /** 1: the picks carry the typicality the strategy ranked by; 0: NaN. */
  int has_typicality;
  /** The groups of sampler options it reads: ::CSAL3D_SAMPLER_OPT_N_CAND | ... */
  unsigned options;
} csal3d_strategy_info;

/**
 * The number of strategies. They are numbered 0 .. count - 1 (the
 * ::csal3d_strategy values), so a loop over them is
 * `for (int q = 0; q < csal3d_strategy_count(); q++)`.
 */
CSAL3D_API int csal3d_strategy_count(void);

/**
 * Describes a strategy.
 * @param strategy 0 .. csal3d_strategy_count() - 1.
 * @param info with struct_size set by the caller (sizeof); members beyond it
 *        are not written.
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT for an unknown strategy, NULL or a
 *         struct_size below sizeof(size_t).
 */
CSAL3D_API csal3d_status csal3d_strategy_get_info(csal3d_strategy strategy,
                                                  csal3d_strategy_info *info);

/**
 * The lower-case name of a strategy: "urds", "unc-only", "div-only",
 * "random", "typiclust", "probcover", "alps", "calr", "coreset", "usl".
 * @param strategy the strategy.
 * @return a static string; "unknown" for other values.
 */
CSAL3D_API const char *csal3d_strategy_name(csal3d_strategy strategy);

/**
 * The strategy with a given name (as csal3d_strategy_name() gives, case
 * insensitive; "_" may stand for "-").
 * @param name the name; not NULL.
 * @param out receives the strategy; not NULL.
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT listing the names when unknown.
 */
CSAL3D_API csal3d_status csal3d_strategy_from_name(const char *name,
                                                   csal3d_strategy *out);

/**
 * The number of rules, ::CSAL3D_RULE_NONE included: rules are numbered
 * 0 .. count - 1 and csal3d_rule_name() names each.
 */
CSAL3D_API int csal3d_rule_count(void);

/**
 * A short name for a rule: "urds", "refill", "top-score", "most-typical",
 * "random", "max-coverage", "covered-random", "nearest-centre",
 * "max-cosine", "kcenter-start", "kcenter-farthest", "usl-utility".
 * @param rule the rule.
 * @return a static string; "none" for ::CSAL3D_RULE_NONE, "unknown" otherwise.
 */
CSAL3D_API const char *csal3d_rule_name(csal3d_rule rule);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_SAMPLER_H */
