/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file manifest.h
 * @brief The pipeline's files: the scores file, the selection manifest, the nnU-Net export.
 *
 * Scoring a dataset gives every case a feature vector and an uncertainty score; a
 * ::csal3d_scores table holds them with each case's id and file paths, and is saved as a
 * **scores file** (safetensors, see below) that the selection step reads. Selecting
 * (see sampler.h) gives records that csal3d_manifest_write() turns into the **manifest**
 * (CSV and JSON: case, path, score, cluster, typicality, rule), and
 * csal3d_nnunet_export() copies the chosen cases into an **nnU-Net v2 raw dataset
 * folder** (imagesTr/CASE_0000.nii.gz, labelsTr/ when labels exist, dataset.json).
 *
 * Every file is written atomically: data go to a temporary name beside the target
 * (`.NAME.tmp.PID.XXXXXX`) and are renamed over it when complete, so a failure or
 * cancellation leaves no partial file (and the previous file, if any, untouched); what
 * killed writers of the same name left is removed by the next write (docs/robustness.md).
 * csal3d_selection_write() writes the manifests and the nnU-Net folder of one selection
 * as one transaction: all of them or none.
 *
 * ## The scores file (format "csal3d-scores", version 1)
 *
 * A safetensors file (https://github.com/huggingface/safetensors) with
 * - tensor `features`: F32, shape [N, d], row i the feature of case i;
 * - tensor `scores`: F32, shape [N], the uncertainty score of case i (finite);
 * - metadata `format` = "csal3d-scores", `format_version` = "1";
 * - metadata `cases`: a JSON array of N objects
 *   `{"id": "case_001", "images": ["/abs/case_001.nii.gz"], "label": "/abs/lab.nii.gz" or null,
 *   "map": "/abs/maps/case_001.nii.gz"}` (`map` only where an uncertainty map was written);
 *   ids are unique, non-empty, hold no control character (below 0x20, 0x7f) and may hold
 *   '/' between parts that are neither empty, "." nor ".." (`subj01/flair`: the ids
 *   csal3d_dataset_open() gives repeated file names);
 * - metadata `checksum` = "crc32:XXXXXXXX": CRC-32 (zlib) of the data section followed
 *   by every other metadata "key\0value\0" in key order; loading verifies it;
 * - any other metadata strings the writer set (csal3d_scores_set_metadata()); the
 *   `csal3d score` command records "checkpoint", "dataset", "modality", "channel",
 *   "window", "stride", "spacing", "seed" and "library_version".
 * Python reads it with `csal3d.Scores.load()` (or any safetensors reader plus `json`).
 */
#ifndef CSAL3D_MANIFEST_H
#define CSAL3D_MANIFEST_H

#include "csal3d/context.h"
#include "csal3d/sampler.h"
#include "csal3d/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque table of scored cases: per case an id, image paths, an optional label
 *  path, an optional uncertainty-map path, a score and a feature; plus metadata. */
typedef struct csal3d_scores csal3d_scores;

/**
 * Creates a table of @p n cases with features of @p d values, every case still unset.
 * @param n cases, >= 1. @param d feature dimension, >= 1.
 * @param out receives the table; NULL on failure.
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT for n < 1 or d < 1;
 *         ::CSAL3D_ERR_OUT_OF_MEMORY when n x d floats cannot be allocated.
 */
CSAL3D_API csal3d_status csal3d_scores_create(int64_t n, int64_t d, csal3d_scores **out);

/** Releases a table. Accepts NULL. */
CSAL3D_API void csal3d_scores_free(csal3d_scores *scores);

/** The number of cases @p n and the feature dimension @p d (either may be NULL). */
CSAL3D_API csal3d_status csal3d_scores_size(const csal3d_scores *scores, int64_t *n,
                                            int64_t *d);

/**
 * Sets case @p index (0-based; every case must be set before saving).
 * @param scores the table.
 * @param index the case, 0 <= @p index < n. Setting a case again replaces it (a map
 *        set with csal3d_scores_set_case_map() is kept).
 * @param id the case id: non-empty, no control character, '/' only between parts that
 *        are neither empty, "." nor ".."; unique in the table (checked at save).
 * @param images @p image_count >= 1 image paths (one per channel file). Relative paths
 *        are made absolute against the current working directory.
 * @param image_count the number of paths in @p images, 1 to 64.
 * @param label the label path, or NULL (or "") for none; made absolute likewise.
 * @param score the uncertainty score; must be finite (::CSAL3D_ERR_NUMERICAL).
 * @param feature @p d floats, copied; must be finite (::CSAL3D_ERR_NUMERICAL naming the
 *        element).
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT for an index out of range, an id against these
 *         rules, no images.
 */
CSAL3D_API csal3d_status csal3d_scores_set_case(csal3d_scores *scores, int64_t index,
                                                const char *id, const char *const *images,
                                                int image_count, const char *label,
                                                float score, const float *feature);

/**
 * Sets case @p index from case @p case_index of a dataset (its id, image paths and label
 * path) with its score and feature, as csal3d_scores_set_case() does.
 */
CSAL3D_API csal3d_status csal3d_scores_set_case_from_dataset(csal3d_scores *scores,
                                                             int64_t index,
                                                             const csal3d_dataset *dataset,
                                                             size_t case_index, float score,
                                                             const float *feature);

/**
 * Records the path of case @p index's uncertainty map (NULL or "" clears it); made
 * absolute like the image paths.
 */
CSAL3D_API csal3d_status csal3d_scores_set_case_map(csal3d_scores *scores, int64_t index,
                                                    const char *map_path);

/**
 * A string of case @p index: @p what is "id", "image" (the first image path), "image:N"
 * (image file N), "label" ("" when none) or "map" ("" when none). Copied with its NUL
 * into @p buffer of @p capacity bytes; @p needed (may be NULL) receives the bytes needed
 * including the NUL; @p buffer may be NULL with capacity 0 to ask.
 * @return ::CSAL3D_ERR_BUFFER_TOO_SMALL if it does not fit; ::CSAL3D_ERR_STATE for a
 *         case not set yet; ::CSAL3D_ERR_INVALID_ARGUMENT for an unknown @p what.
 */
CSAL3D_API csal3d_status csal3d_scores_case_string(const csal3d_scores *scores,
                                                   int64_t index, const char *what,
                                                   char *buffer, size_t capacity,
                                                   size_t *needed);

/** The number of image files of case @p index and whether it has a label (either may be NULL). */
CSAL3D_API csal3d_status csal3d_scores_case_info(const csal3d_scores *scores, int64_t index,
                                                 int *image_files, int *has_label);

/**
 * Copies the N scores into @p buffer (@p capacity floats).
 * @param scores the table; every case must be set.
 * @param buffer receives the N scores, case i at [i]; may be NULL when @p capacity is 0.
 * @param capacity the size of @p buffer in floats (not bytes).
 * @param needed receives N (may be NULL); buffer NULL with capacity 0 asks for it.
 * @return ::CSAL3D_ERR_BUFFER_TOO_SMALL when capacity < N; ::CSAL3D_ERR_STATE when some
 *         case is not set (the message names the first).
 */
CSAL3D_API csal3d_status csal3d_scores_copy_scores(const csal3d_scores *scores, float *buffer,
                                                   size_t capacity, size_t *needed);

/**
 * Copies the N x d features (row-major) into @p buffer (@p capacity floats); as
 * csal3d_scores_copy_scores() with N x d.
 */
CSAL3D_API csal3d_status csal3d_scores_copy_features(const csal3d_scores *scores,
                                                     float *buffer, size_t capacity,
                                                     size_t *needed);

/**
 * Sets a metadata string (copied); @p value NULL removes the key. Keys are non-empty
 * UTF-8 of at most 1024 bytes; "format", "format_version", "cases" and "checksum" are
 * reserved (::CSAL3D_ERR_INVALID_ARGUMENT).
 */
CSAL3D_API csal3d_status csal3d_scores_set_metadata(csal3d_scores *scores, const char *key,
                                                    const char *value);

/**
 * A metadata string, copied with its NUL into @p buffer of @p capacity bytes. @p needed
 * receives the bytes needed including the NUL, or 0 when the key is absent (then
 * ::CSAL3D_OK and, if capacity > 0, buffer = ""). ::CSAL3D_ERR_BUFFER_TOO_SMALL if the
 * value does not fit.
 */
CSAL3D_API csal3d_status csal3d_scores_get_metadata(const csal3d_scores *scores,
                                                    const char *key, char *buffer,
                                                    size_t capacity, size_t *needed);

/**
 * All metadata as one JSON object of strings (compact, keys in the order set), copied
 * like csal3d_scores_get_metadata() copies a value.
 */
CSAL3D_API csal3d_status csal3d_scores_metadata_json(const csal3d_scores *scores,
                                                     char *buffer, size_t capacity,
                                                     size_t *needed);

/**
 * Saves the table as a scores file (format above), atomically.
 * @return ::CSAL3D_ERR_STATE when a case is not set (naming it);
 *         ::CSAL3D_ERR_INVALID_ARGUMENT for duplicate ids (naming both cases);
 *         ::CSAL3D_ERR_IO when the file cannot be written.
 */
CSAL3D_API csal3d_status csal3d_scores_save(const csal3d_scores *scores, const char *path);

/**
 * Loads a scores file. Everything is checked (structure, shapes, dtypes, finite values,
 * the cases list, unique ids, the checksum).
 * @return ::CSAL3D_ERR_IO (missing or unreadable file), ::CSAL3D_ERR_FORMAT (not a
 *         scores file, or malformed: the message says what and where),
 *         ::CSAL3D_ERR_CHECKSUM (the file was changed or damaged),
 *         ::CSAL3D_ERR_NUMERICAL (a NaN or infinite score or feature, naming the case),
 *         ::CSAL3D_ERR_UNSUPPORTED (a newer format_version).
 */
CSAL3D_API csal3d_status csal3d_scores_load(const char *path, csal3d_scores **out);

/* ---- the manifest ---- */

/** What csal3d_manifest_write() records besides the selection. Fill with
 *  csal3d_manifest_options_init(). */
typedef struct csal3d_manifest_options {
  /** sizeof(csal3d_manifest_options) as the caller compiled it. */
  size_t struct_size;
  /** The strategy that chose the cases (recorded). Default ::CSAL3D_STRATEGY_URDS. */
  csal3d_strategy strategy;
  /** URDS's N_cand (recorded; 0 omits it). Default 3. */
  int n_cand;
  /** The sampler's seed (recorded). Default 0. */
  uint64_t seed;
  /** The scores file's path (recorded; NULL omits it). Default NULL. */
  const char *scores_path;
  /**
   * NULL (default) or N entries: the cluster of every case (as
   * csal3d_sampler_get_assignment() gives), written to the JSON as "clusters".
   */
  const int64_t *assignment;
} csal3d_manifest_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status csal3d_manifest_options_init(csal3d_manifest_options *options);

/**
 * Writes the manifest of a selection, as CSV and/or JSON, atomically (both files are
 * complete before either is renamed into place).
 *
 * CSV (RFC 4180, one header line): `rank,case,path,label,score,cluster,cluster_size,
 * typicality,rule`: rank from 1 in the order chosen; path = the first image file; label
 * = its path or empty; a text cell (case, path, label) that starts with `=`, `+`, `-`,
 * `@`, a tab or a carriage return, which a spreadsheet would run as a formula (CSV
 * injection), is written with a single quote before it (`'=cmd|...`), as OWASP
 * recommends: read such a cell back without its first character, or take the exact text
 * from the JSON, which is never altered; score and typicality with 9 significant digits, "nan" where the
 * strategy has none and "inf" for a singleton cluster's typicality; cluster -1 for
 * strategies without clusters; rule as csal3d_rule_name() gives.
 *
 * JSON: `{"format": "csal3d-manifest", "format_version": 1, "library_version",
 * "strategy", "budget", "n_cases", "n_cand", "seed", "scores_file", "scores_metadata":
 * {...}, "selection": [{"rank", "case", "path", "images", "label", "score",
 * "cluster", "cluster_size", "typicality", "rule"}, ...], "clusters": {"case": k, ...}}`;
 * a NaN is written as null and an infinite typicality as the string "inf".
 *
 * @param scores the table the records index.
 * @param records @p count records of @p record_size bytes (sizeof(csal3d_selection)),
 *        as csal3d_sampler_get_selection() gives them; indices must be distinct and < N.
 *        May be NULL when @p count is 0.
 * @param record_size sizeof(csal3d_selection) as the caller compiled it: the stride
 *        between records, a multiple of 8 that covers at least the members through
 *        `score`; members a shorter record lacks read as 0.
 * @param count the number of records, >= 0; they are written in this order (rank 1
 *        first).
 * @param csv_path, json_path the files (either may be NULL, not both). Existing files
 *        are replaced (check them first with csal3d_output_check(), or use
 *        csal3d_selection_write(), which does); when the second cannot be moved into
 *        place, the first is put back as it was.
 * @param options NULL for the defaults.
 */
CSAL3D_API csal3d_status csal3d_manifest_write(const csal3d_scores *scores,
                                               const csal3d_selection *records,
                                               size_t record_size, int64_t count,
                                               const csal3d_manifest_options *options,
                                               const char *csv_path, const char *json_path);

/* ---- nnU-Net v2 export ---- */

/** Whether csal3d_nnunet_export() writes labelsTr/. */
typedef enum csal3d_nnunet_labels {
  /** Copy the labels that exist: labelsTr/ holds the label of every chosen case that has
   *  one (none when no case has one). Cases without a label are exported all the same;
   *  they are named in a warning (the context's log) and in dataset.json's
   *  "csal3d"."cases_without_label", to be annotated before training. The default. */
  CSAL3D_NNUNET_LABELS_AUTO = 0,
  /** Never copy labels (the chosen cases are still to be annotated). */
  CSAL3D_NNUNET_LABELS_NONE = 1,
  /** Every chosen case must have a label: ::CSAL3D_ERR_FORMAT (bad input, naming a case
   *  without) otherwise, before anything is written. */
  CSAL3D_NNUNET_LABELS_REQUIRE = 2
} csal3d_nnunet_labels;

/** How csal3d_nnunet_export() writes the folder. Fill with csal3d_nnunet_options_init(). */
typedef struct csal3d_nnunet_options {
  /** sizeof(csal3d_nnunet_options) as the caller compiled it. */
  size_t struct_size;
  /** "name" in dataset.json. NULL (default): the folder's last component. */
  const char *dataset_name;
  /**
   * Channel names for dataset.json's "channel_names", comma-separated, one per image
   * channel (e.g. "CT", or "T2,ADC"). NULL (default): from the source dataset.json's
   * "modality" / "channel_names" (see @ref source_dataset), else from the scores
   * metadata "modality" ("CT"/"MRI"), else "image", "image_1", ...
   */
  const char *channel_names;
  /**
   * Label names for 0, 1, ..., K, comma-separated ("background,liver,spleen"). NULL
   * (default): from the source dataset.json's "labels", else "background", "label_1",
   * ..., "label_K" with K the largest value in the copied labels.
   */
  const char *label_names;
  /**
   * The dataset.json (or a folder holding one) that label and channel names are read
   * from. NULL (default): the scores metadata "dataset" when it names one.
   */
  const char *source_dataset;
  /** Labels: see ::csal3d_nnunet_labels. Default AUTO. */
  csal3d_nnunet_labels labels;
  /** 1: replace an existing @p folder; 0 (default): fail if it exists and is not empty. */
  int overwrite;
} csal3d_nnunet_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status csal3d_nnunet_options_init(csal3d_nnunet_options *options);

/**
 * Writes an nnU-Net v2 raw dataset folder of the chosen cases:
 * `imagesTr/CASE_0000.nii.gz` (and _0001, ... for further channels; a 4-D file is split
 * into its channels), `labelsTr/CASE.nii.gz` when labels are copied, and `dataset.json`
 * (`channel_names`, `labels` as name -> value, `numTraining`, `file_ending` ".nii.gz",
 * `name`, and the provenance of the selection under "csal3d"). CASE is the case's id with
 * each character that nnU-Net's file names cannot hold (all but letters, digits, '-', '_'
 * and '.', and a leading '.': the '/' of ids by relative path, spaces, ...) as '_'
 * (`subj01/flair` -> `subj01_flair_0000.nii.gz`); two chosen ids that become one name are
 * refused before anything is written (::CSAL3D_ERR_FORMAT naming both). dataset.json's
 * "csal3d" object lists the ids under "cases" and those renamed under "case_names"
 * (id -> name); the manifests keep the ids. NIfTI files are copied by
 * their content, whatever their name: a gzipped one is decompressed once to check it (a
 * clean gzip stream holding a NIfTI header) and copied byte for byte, an uncompressed one
 * (`.nii`, or `.nii.gz` that is not gzip) is gzipped, other files (`.hdr`/`.img`) are
 * re-saved; images and labels keep their grid, so nnU-Net sees the original geometry.
 *
 * The folder's last component must be `DatasetNNN_Name` (a 3-digit id, e.g.
 * `Dataset501_Hippocampus`), the only form nnU-Net v2 finds
 * (::CSAL3D_ERR_INVALID_ARGUMENT otherwise). The folder is checked before any work as
 * csal3d_output_check() checks: it may not be, or hold, an image, label or map of any case
 * of @p scores.
 *
 * Each chosen label is loaded and checked: integer values on its image's grid, and
 * within the label names given (nnU-Net needs the values 0..K). The folder is built
 * under a temporary name beside @p folder and renamed at the end, so it appears whole
 * or not at all.
 *
 * @param scores the table (for ids and paths).
 * @param indices @p count distinct case indices (e.g. the records' index members).
 * @param count the number of cases to export, 1 to N.
 * @param folder the output folder, e.g. "nnUNet_raw/Dataset501_Hippocampus".
 * @param options NULL for the defaults.
 * @param ctx optional (NULL allowed): progress ("export", case, count) and cancellation.
 * @return ::CSAL3D_ERR_IO (a file cannot be read or written, @p folder exists),
 *         ::CSAL3D_ERR_FORMAT (a label that is not on its image's grid or has values
 *         beyond the label names, a damaged gzip file, labels missing under
 *         ::CSAL3D_NNUNET_LABELS_REQUIRE, two ids that become one case name), ::CSAL3D_ERR_INVALID_ARGUMENT (also a folder
 *         not named DatasetNNN_Name, or one that is or holds an input),
 *         ::CSAL3D_ERR_CANCELLED.
 */
CSAL3D_API csal3d_status csal3d_nnunet_export(const csal3d_scores *scores,
                                              const int64_t *indices, int64_t count,
                                              const char *folder,
                                              const csal3d_nnunet_options *options,
                                              const csal3d_context *ctx);

/* ---- the whole output of a selection ---- */

/** Where csal3d_selection_write() puts a selection. Fill with
 *  csal3d_selection_outputs_init(). */
typedef struct csal3d_selection_outputs {
  /** sizeof(csal3d_selection_outputs) as the caller compiled it. */
  size_t struct_size;
  /** The CSV manifest's path, or NULL (default) for none. */
  const char *csv_path;
  /** The JSON manifest's path, or NULL (default) for none. */
  const char *json_path;
  /** The nnU-Net v2 folder (`.../DatasetNNN_Name`), or NULL (default) for no export. */
  const char *nnunet_folder;
  /**
   * 1: existing outputs (a manifest, a non-empty folder) are replaced; 0 (default): they
   * are refused before any work. This applies to the nnU-Net folder too (the nnU-Net
   * options' own overwrite is not read).
   */
  int overwrite;
  /**
   * Further paths that no output may be or hold, @ref n_inputs of them (the scores file
   * when @ref csal3d_manifest_options.scores_path does not name it, say). The images,
   * labels and maps of every case of the scores and the manifest options' scores_path
   * are always inputs. Default NULL.
   */
  const char *const *inputs;
  /** The number of paths in @ref inputs. Default 0. */
  size_t n_inputs;
  /**
   * 1: only the checks that come before any work, nothing written (records may be NULL
   * and count 0): a caller makes them before a long selection, so that a wrong path
   * fails at once. 0 (default): check and write.
   */
  int check_only;
} csal3d_selection_outputs;

/** Fills @p outputs with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status csal3d_selection_outputs_init(csal3d_selection_outputs *outputs);

/**
 * Writes every output of a selection as one transaction: the CSV and JSON manifests (as
 * csal3d_manifest_write() writes them) and the nnU-Net folder (as csal3d_nnunet_export()
 * writes it) appear together, or none of them changes.
 *
 * First, before any work, every output is checked as csal3d_output_check() checks it
 * (its folder writable; not an input nor holding one; an existing one only with
 * @ref csal3d_selection_outputs.overwrite), the two manifests must be distinct files
 * outside the nnU-Net folder, and the folder must be named DatasetNNN_Name (with
 * @ref csal3d_selection_outputs.check_only the call ends here, having written nothing).
 * Then every
 * output is built under a temporary name beside its target (the export may be cancelled
 * through @p ctx's progress callback, stages "export" and a last "write"). Only when all
 * are complete are they renamed into place, the nnU-Net folder first and the JSON
 * manifest last; an output that existed is moved aside first and removed once all are
 * in place. When a rename fails (a full disk, a target that changed meanwhile), the
 * outputs already renamed are taken back and the previous ones restored. On any failure
 * or cancellation no temporary is left and every target is as it was. (A process killed
 * during the final renames, which take microseconds, may leave some of them done.)
 *
 * @param scores the table the records index.
 * @param records @p count records of @p record_size bytes, as for csal3d_manifest_write().
 * @param record_size sizeof(csal3d_selection) as the caller compiled it.
 * @param count the number of records (>= 1 with an nnU-Net folder).
 * @param outputs the paths and overwrite; at least one path.
 * @param manifest what the manifest records; NULL for the defaults.
 * @param nnunet how the folder is written (names, labels); NULL for the defaults.
 * @param ctx optional (NULL allowed): the log (cases without labels), progress and
 *        cancellation.
 * @return ::CSAL3D_OK, or the first failure: as csal3d_output_check(),
 *         csal3d_manifest_write() and csal3d_nnunet_export() return them,
 *         ::CSAL3D_ERR_CANCELLED.
 */
CSAL3D_API csal3d_status csal3d_selection_write(const csal3d_scores *scores,
                                                const csal3d_selection *records,
                                                size_t record_size, int64_t count,
                                                const csal3d_selection_outputs *outputs,
                                                const csal3d_manifest_options *manifest,
                                                const csal3d_nnunet_options *nnunet,
                                                const csal3d_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_MANIFEST_H */
