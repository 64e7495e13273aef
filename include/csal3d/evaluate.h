/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file evaluate.h
 * @brief Does the selection help? Train a segmenter on chosen cases and measure Dice.
 *
 * csal3d_evaluate() trains a 3-D U-Net (nnU-Net's plain U-Net without deep
 * supervision: per stage two 3x3x3 convolutions with instance norm and LeakyReLU 0.01,
 * strided convolutions down, transposed convolutions up, skip concatenation, a 1x1x1
 * head) on the labelled cases of a training selection, predicts every validation case
 * by sliding windows and reports the Dice of each label per case and on average. It is
 * a fast, deterministic proxy for nnU-Net training, built in so that a comparison of
 * strategies runs on a CPU: csal3d_evaluate_compare() selects with several strategies,
 * budgets and selection seeds from one scores file and trains on each selection.
 *
 * Training (docs/evaluation.md): patches of @ref csal3d_evaluate_options.patch_size; of
 * each batch of B, the last B - round(2B/3) patches are centred on a foreground voxel
 * (a label drawn uniformly among those the case holds, then a voxel of it: nnU-Net's
 * oversampling of one third), the others placed uniformly; volumes smaller than the
 * patch are padded with 0 (image) and background (label); random flips along each axis
 * (p 0.5 each) and intensity scaling by U(0.75, 1.25) (p 0.15 per patch); loss
 * cross-entropy + soft Dice (batch Dice over the foreground labels, smooth 1e-5);
 * AdamW (betas 0.9, 0.999, weight decay on convolution weights) with the poly learning
 * rate lr (1 - step / iterations)^0.9 and gradient norm clipping at 12. Every draw is
 * keyed by (seed, step, batch item): the same options give the same network on the same
 * machine and thread count.
 *
 * Inference: windows of the patch size with a step of half a patch (nnU-Net's
 * overlap 0.5: steps spread evenly so that the last window ends at the volume's edge),
 * logits weighted by a Gaussian (sigma 1/8 of the patch side, nnU-Net's) and
 * normalised by the summed weights, argmax; on the volume's own grid (as loaded, after
 * any resampling the load options ask for), against its label on that grid. No test-
 * time mirroring.
 *
 * Dice of label l on a case: 2 |P_l & R_l| / (|P_l| + |R_l|). When both the reference
 * and the prediction are empty it is NaN (nnU-Net's convention) and left out of every
 * mean; an empty reference with a non-empty prediction gives 0.
 *
 * Results files (CSV and JSON), one schema for csal3d_evaluate() and
 * csal3d_evaluate_compare(). CSV columns, in this order:
 *  - `strategy`: the strategy's name (csal3d_strategy_name()), or "given" for a
 *    selection passed to csal3d_evaluate();
 *  - `budget`: the number of training cases;
 *  - `seed`: the selection seed (compare), empty for a given selection;
 *  - `train_seed`: the training seed (@ref csal3d_evaluate_options.seed);
 *  - `case`: a validation case id, or `mean` for the run's summary row;
 *  - `dice_1` ... `dice_L`: the Dice of each foreground label (L labels: the most of
 *    the file's runs; with the option labels 0 a run whose training and validation
 *    cases lack the last labels has fewer classes, and their Dice is NaN); on the mean
 *    row the mean over the validation cases where it is defined;
 *  - `mean_dice`: on a case row, the mean over its defined labels; on the mean row,
 *    the mean of the dice_l of that row (nnU-Net's foreground mean).
 *  NaN is written `nan`. Rows of a run are contiguous, its case rows first (when kept)
 *  and its mean row last. The JSON file holds {"format": "csal3d-evaluation", "labels":
 *  L, "columns": [...], "settings": {what shapes the runs: see csal3d_evaluate_compare()},
 *  "runs": [{"strategy", "budget", "seed" (null for a given selection), "train_seed",
 *  "train_cases": [ids], "iterations", "train_seconds", "dice": [L numbers or null],
 *  "mean_dice", "cases": [{"id", "dice": [...], "mean_dice"}]}]}.
 */
#ifndef CSAL3D_EVALUATE_H
#define CSAL3D_EVALUATE_H

#include "csal3d/context.h"
#include "csal3d/manifest.h"
#include "csal3d/sampler.h"
#include "csal3d/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most U-Net stages in ::csal3d_evaluate_options. */
#define CSAL3D_EVALUATE_MAX_STAGES 7

/** How csal3d_evaluate() normalises intensities after loading (nnU-Net's schemes). */
typedef enum csal3d_evaluate_normalization {
  /** CT for datasets whose modality (load option, else dataset.json) is CT, else
   *  Z-score (the default). */
  CSAL3D_EVALUATE_NORM_AUTO = 0,
  /** None: the values as loaded. */
  CSAL3D_EVALUATE_NORM_NONE = 1,
  /** nnU-Net's CTNormalization: per channel, clip to the [0.5, 99.5] percentiles of the
   *  training cases' foreground (labelled) voxels, then subtract their mean and divide
   *  by their standard deviation (the same numbers for every case). */
  CSAL3D_EVALUATE_NORM_CT = 2,
  /** nnU-Net's ZScoreNormalization: per case and channel, (x - mean) / sd. */
  CSAL3D_EVALUATE_NORM_ZSCORE = 3
} csal3d_evaluate_normalization;

/** Options of csal3d_evaluate() and csal3d_evaluate_compare(). Fill with
 *  csal3d_evaluate_options_init(); members are only ever appended. */
typedef struct csal3d_evaluate_options {
  /** sizeof(csal3d_evaluate_options) as the caller compiled it. */
  size_t struct_size;
  /** Training iterations (AdamW updates). Default 250. */
  int64_t iterations;
  /** Patches per batch. Default 2. */
  int64_t batch_size;
  /** Patch sides D, H, W, each a multiple of 2^(stages-1); zeros (default): the median
   *  shape of the training cases rounded up to such a multiple, at most 128 per side. */
  int64_t patch_size[3];
  /** U-Net resolution stages, 2..::CSAL3D_EVALUATE_MAX_STAGES. Default 5. */
  int stages;
  /** Channels of each stage. Default 16, 32, 64, 128, 256. */
  int widths[CSAL3D_EVALUATE_MAX_STAGES];
  /** Peak learning rate of AdamW. Default 1e-3. */
  double learning_rate;
  /** AdamW weight decay (convolution weights only). Default 3e-5. */
  double weight_decay;
  /** Seed of the initialisation, the patches and the augmentation. Default 0. */
  uint64_t seed;
  /** Foreground labels L (classes 1..L); 0 (default): the largest label value found in
   *  the training and validation labels. */
  int labels;
  /** How to load the cases, or NULL (default): the dataset's modality (its dataset.json)
   *  at native spacing. Labels are loaded onto each image's grid. */
  const csal3d_volume_load_options *load;
  /** A CSV results file to write (see the file description), or NULL (default). */
  const char *output_csv;
  /** A JSON results file to write, or NULL (default). */
  const char *output_json;
  /** 1: replace existing results files; 0 (default): refuse them before any work. */
  int overwrite;
  /** A checkpoint file for the training (network, AdamW moments, step): written every
   *  @ref checkpoint_every iterations and when the progress callback cancels, removed
   *  when the run finishes; a run started with the same options and an existing
   *  checkpoint continues from it. NULL (default): none. csal3d_evaluate_compare()
   *  uses it for each run in turn. */
  const char *checkpoint;
  /** Iterations between checkpoints (0: only on cancellation). Default 100. */
  int64_t checkpoint_every;
  /** 1 (default): write per-case rows (and JSON "cases") besides each run's mean row. */
  int per_case;
  /** Windows per inference batch; 0 (default): @ref batch_size. */
  int64_t inference_batch;
  /** Intensity normalisation after loading. Default ::CSAL3D_EVALUATE_NORM_AUTO. */
  csal3d_evaluate_normalization normalization;
} csal3d_evaluate_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status csal3d_evaluate_options_init(csal3d_evaluate_options *options);

/** The results of csal3d_evaluate(): one run's Dice per validation case and label. */
typedef struct csal3d_evaluation csal3d_evaluation;

/**
 * Trains the U-Net on the training cases and evaluates it on the validation cases.
 *
 * Runs on the context's engine; the CPU engine provides every op. On the CUDA engine it
 * fails with ::CSAL3D_ERR_UNSUPPORTED ("not supported on the CUDA engine yet"). Progress
 * goes to the context's callback as ("evaluate-train", iteration, iterations) and
 * ("evaluate-infer", case, cases); cancelling saves the checkpoint (when one is set)
 * and returns ::CSAL3D_ERR_CANCELLED.
 *
 * @param ctx the context (engine, threads, log, progress).
 * @param dataset the cases; every training and validation case must have a label.
 * @param train @p n_train dataset indices (distinct), the training selection.
 * @param n_train at least 1.
 * @param validation @p n_validation dataset indices (distinct, none in @p train), or
 *        NULL with 0: every labelled case of the dataset not in @p train.
 * @param n_validation the number of entries in @p validation.
 * @param options NULL for the defaults.
 * @param out receives the results (free with csal3d_evaluation_free()); may be NULL
 *        when only the files are wanted.
 * @return ::CSAL3D_OK; ::CSAL3D_ERR_INVALID_ARGUMENT (bad indices, a case without a
 *         label, a label above @ref csal3d_evaluate_options.labels, bad options: the
 *         message names them), ::CSAL3D_ERR_UNSUPPORTED (the engine), ::CSAL3D_ERR_IO
 *         (an output exists or cannot be written), ::CSAL3D_ERR_CANCELLED, or a case's
 *         load error naming it.
 */
CSAL3D_API csal3d_status csal3d_evaluate(csal3d_context *ctx, const csal3d_dataset *dataset,
                                         const size_t *train, size_t n_train,
                                         const size_t *validation, size_t n_validation,
                                         const csal3d_evaluate_options *options,
                                         csal3d_evaluation **out);

/** Releases results. Accepts NULL. */
CSAL3D_API void csal3d_evaluation_free(csal3d_evaluation *evaluation);

/**
 * The size of the results.
 * @param evaluation the results.
 * @param cases receives the number of validation cases (may be NULL).
 * @param labels receives L, the number of foreground labels (may be NULL).
 */
CSAL3D_API csal3d_status csal3d_evaluation_size(const csal3d_evaluation *evaluation,
                                                size_t *cases, int *labels);

/**
 * One validation case's results.
 * @param evaluation the results.
 * @param index 0 <= index < cases, in the order of the validation list.
 * @param id receives the case id (NUL-terminated) when @p capacity > 0; may be NULL.
 * @param capacity the size of @p id in bytes; ::CSAL3D_ERR_BUFFER_TOO_SMALL if short.
 * @param dice receives L values, the Dice of labels 1..L (NaN where undefined); may be NULL.
 * @param mean_dice receives the mean of the defined values (NaN if none); may be NULL.
 */
CSAL3D_API csal3d_status csal3d_evaluation_case(const csal3d_evaluation *evaluation,
                                                size_t index, char *id, size_t capacity,
                                                double *dice, double *mean_dice);

/**
 * The summary: per label the mean Dice over the validation cases where it is defined,
 * and their mean (nnU-Net's foreground mean).
 * @param evaluation the results.
 * @param dice receives L values (NaN for a label undefined on every case); may be NULL.
 * @param mean_dice receives the mean of the defined @p dice; may be NULL.
 */
CSAL3D_API csal3d_status csal3d_evaluation_mean(const csal3d_evaluation *evaluation,
                                                double *dice, double *mean_dice);

/** A comparison's table: runs and their mean and standard deviation per cell. */
typedef struct csal3d_comparison csal3d_comparison;

/** One cell of a comparison: a strategy at a budget, over the selection seeds. */
typedef struct csal3d_comparison_cell {
  /** The strategy. */
  csal3d_strategy strategy;
  /** The budget (training cases). */
  int64_t budget;
  /** The runs (selection seeds) in the cell. */
  int64_t runs;
  /** The mean over the runs of each run's mean_dice. */
  double mean;
  /** Their sample standard deviation (n - 1; 0 for a single run). */
  double sd;
  /** How many of the runs came from the existing results file (an earlier, interrupted
   *  comparison with the same settings) instead of being trained again. */
  int64_t reused;
} csal3d_comparison_cell;

/**
 * Runs strategies x budgets x selection seeds from one scores file: for each, the
 * sampler (@p sampler_options with the strategy and use_seed = 1, seed = the selection
 * seed) chooses the budget's cases among the scored cases (the pool), whose ids must
 * be cases of @p dataset; then the U-Net is trained on them (@p options, the same
 * training seed for every run) and evaluated on the validation cases. Each finished
 * run is appended to the results files (CSV and JSON, as csal3d_evaluate() writes
 * them, rewritten atomically after each run), so a long comparison can be followed as it
 * goes. Progress: ("evaluate-compare", runs done, runs) besides each run's own.
 *
 * Continuing: the JSON results file records the settings (its "settings": the training,
 * load and sampler options, the scores' fingerprint and the validation ids). When
 * @ref csal3d_evaluate_options.output_json names an existing file and overwrite is 0,
 * its runs are taken instead of being trained again, provided its settings are these
 * (else ::CSAL3D_ERR_INVALID_ARGUMENT names the first difference, before any work); each
 * such run's selection is made again and must be the file's. Its other runs (other
 * strategies, budgets or seeds) are kept, first in the files, and the new runs follow: a
 * comparison killed midway continues with the same call, and one grid can be added to
 * another's file. An existing CSV is then replaced only if it is a results CSV. Without
 * output_json an existing output_csv is refused unless overwrite is 1. The checkpoint
 * option continues the run that was interrupted. ::csal3d_comparison_cell.reused
 * counts the runs taken from the file.
 *
 * @param ctx the context.
 * @param dataset the cases (images and labels).
 * @param scores the scores file's table (features and scores of the pool).
 * @param strategies @p n_strategies strategies.
 * @param n_strategies at least 1.
 * @param budgets @p n_budgets budgets, each 1 .. pool size.
 * @param n_budgets at least 1.
 * @param seeds @p n_seeds selection seeds.
 * @param n_seeds at least 1.
 * @param validation dataset indices of the validation cases, or NULL with 0: every
 *        labelled dataset case whose id is not in the pool.
 * @param n_validation the number of entries in @p validation.
 * @param sampler_options NULL for the defaults (strategy, use_seed and seed are set per
 *        run).
 * @param options NULL for the defaults.
 * @param out receives the table (free with csal3d_comparison_free()); may be NULL.
 */
CSAL3D_API csal3d_status csal3d_evaluate_compare(
    csal3d_context *ctx, const csal3d_dataset *dataset, const csal3d_scores *scores,
    const csal3d_strategy *strategies, size_t n_strategies, const int64_t *budgets,
    size_t n_budgets, const uint64_t *seeds, size_t n_seeds, const size_t *validation,
    size_t n_validation, const csal3d_sampler_options *sampler_options,
    const csal3d_evaluate_options *options, csal3d_comparison **out);

/** Releases a comparison. Accepts NULL. */
CSAL3D_API void csal3d_comparison_free(csal3d_comparison *comparison);

/**
 * The cells of a comparison, strategies in the order given, then budgets.
 * @param comparison the table.
 * @param cells receives up to @p capacity cells; may be NULL with capacity 0.
 * @param cell_size sizeof(csal3d_comparison_cell) as the caller compiled it.
 * @param capacity the number of cells @p cells can hold.
 * @param count receives the number of cells.
 * @return ::CSAL3D_ERR_BUFFER_TOO_SMALL when capacity < count (count still set).
 */
CSAL3D_API csal3d_status csal3d_comparison_cells(const csal3d_comparison *comparison,
                                                 csal3d_comparison_cell *cells,
                                                 size_t cell_size, size_t capacity,
                                                 size_t *count);

/**
 * Writes the table as CSV: `strategy,budget,runs,mean_dice,sd_dice` (one row per
 * cell; sd_dice the sample standard deviation over the selection seeds).
 */
CSAL3D_API csal3d_status csal3d_comparison_write_table(const csal3d_comparison *comparison,
                                                       const char *path);

/**
 * Case ids of a training selection from a file: a manifest CSV written by
 * csal3d_manifest_write() (`csal3d select`; its `case` column) or any CSV with a
 * `case`, `case_id` or `id` column, or a text file of one id per line (blank lines and
 * lines starting with # skipped), or a dataset list (`image[,label]` per line, as
 * csal3d_dataset_open() reads it): an entry that is no case id is taken as an image path
 * (relative to the file's folder unless absolute) and names the case whose first image is
 * that file. Each entry must be a case of @p dataset.
 * @param dataset the dataset the ids refer to.
 * @param path the file.
 * @param indices receives a malloc'ed array of dataset indices (free with
 *        csal3d_evaluate_free_indices()), in file order.
 * @param count receives the number of indices.
 * @return ::CSAL3D_ERR_IO, ::CSAL3D_ERR_FORMAT (an id the dataset lacks, named, a
 *         repeated id, an empty file).
 */
CSAL3D_API csal3d_status csal3d_evaluate_read_cases(const csal3d_dataset *dataset,
                                                    const char *path, size_t **indices,
                                                    size_t *count);

/** Releases indices from csal3d_evaluate_read_cases(). Accepts NULL. */
CSAL3D_API void csal3d_evaluate_free_indices(size_t *indices);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_EVALUATE_H */
