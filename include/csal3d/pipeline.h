/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file pipeline.h
 * @brief The workflow as library calls: scoring a dataset, checking outputs before work.
 *
 * csal3d_score_dataset() is the `csal3d score` command and Python's
 * `csal3d.score_dataset()`: every case of a dataset (or a subset) loaded as the model
 * was trained, scored by an uncertainty estimator, its feature and score gathered into a
 * ::csal3d_scores table with one metadata schema, optionally written as a scores file and
 * with uncertainty maps. It is resumable: while it runs, each scored case is appended to a
 * journal beside the scores file (`SCORES.partial`); after Ctrl-C, SIGKILL, a power cut or
 * a case that failed, running it again with the same settings continues from the cases
 * already scored and writes a file bitwise equal to an uninterrupted run's.
 *
 * A case's random draws (views, rotations, masks) are keyed by its id
 * (csal3d_case_key()), not its position, so a case scores the same, bit for bit, whatever
 * the order or size of the dataset it is scored in.
 *
 * @code
 * csal3d_score_options so;
 * csal3d_score_options_init(&so);
 * so.output = "scores.safetensors";
 * so.maps_dir = "maps";                      // optional
 * csal3d_scores *scores;
 * if (csal3d_score_dataset(u, dataset, &so, &scores) != CSAL3D_OK)
 *   fprintf(stderr, "csal3d: %s\n", csal3d_last_error());
 * @endcode
 */
#ifndef CSAL3D_PIPELINE_H
#define CSAL3D_PIPELINE_H

#include "csal3d/context.h"
#include "csal3d/manifest.h"
#include "csal3d/uncertainty.h"
#include "csal3d/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The 64-bit key of a case id that keys the case's random draws in
 * csal3d_score_dataset() (pass it as csal3d_uncertainty_score()'s volume_id to score a
 * single volume the same way): FNV-1a 64 of the id's bytes, then the splitmix64
 * finaliser. Stable across versions and platforms.
 * @param case_id the id, a NUL-terminated string (not NULL).
 * @param key receives the key.
 */
CSAL3D_API csal3d_status csal3d_case_key(const char *case_id, uint64_t *key);

/** What csal3d_score_dataset() does when a case cannot be loaded or scored. */
typedef enum csal3d_case_errors {
  /** Stop with that case's error (the default). The cases scored so far stay in the
   *  journal: after fixing the file, running again continues. */
  CSAL3D_CASE_ERRORS_STOP = 0,
  /** Leave the case out of the scores, record it (id and error) in the metadata
   *  "skipped_cases" and go on. At least one case must succeed. */
  CSAL3D_CASE_ERRORS_SKIP = 1
} csal3d_case_errors;

/**
 * Called by csal3d_score_dataset() after each case: @p index is the case's index in the
 * dataset, @p id its id, @p status ::CSAL3D_OK with its @p score, or the error that
 * skipped it (with @p message); @p reused is 1 when the result came from the journal of
 * an earlier run. Strings are valid during the call. Return non-zero to stop
 * (::CSAL3D_ERR_CANCELLED; the journal keeps what was done).
 */
typedef int (*csal3d_score_case_fn)(void *user_data, size_t index, const char *id,
                                    csal3d_status status, double score, int reused,
                                    const char *message);

/** Options of csal3d_score_dataset(). Fill with csal3d_score_options_init(). */
typedef struct csal3d_score_options {
  /** sizeof(csal3d_score_options) as the caller compiled it. */
  size_t struct_size;
  /**
   * How to load the cases, or NULL (default): as the model was trained (the data options
   * its checkpoint records; for a model without them, the dataset.json's modality at
   * native spacing). Given options that contradict the model (modality, channels) are
   * refused; others that differ are used and logged.
   */
  const csal3d_volume_load_options *load;
  /** @p case_count dataset indices to score, in this order (distinct), or NULL
   *  (default) for every case in dataset order. */
  const size_t *cases;
  /** The number of entries in @ref cases. */
  size_t case_count;
  /** The scores file to write (atomically, at the end), or NULL (default): the table is
   *  only returned, and nothing is journaled. */
  const char *output;
  /** A folder for each case's uncertainty map, `CASE_uncertainty.nii.gz` on the case's
   *  grid (created if missing; '/' in an id becomes '_': `subj01/flair` writes
   *  `subj01_flair_uncertainty.nii.gz`, and two ids that would write one file are refused
   *  before any work), or NULL (default): no maps. The estimator must keep its
   *  map (csal3d_uncertainty_options.keep_map). While the run goes on, maps wait in a
   *  hidden folder beside it (`.NAME.partial`); they move into the maps folder when the
   *  run succeeds, so the folder never holds the maps of an unfinished run. */
  const char *maps_dir;
  /** 1: replace an existing @ref output and existing maps of the same names; 0
   *  (default): refuse them before any work (::CSAL3D_ERR_IO naming the file). */
  int overwrite;
  /** 1 (default): continue from the journal of an earlier run with the same settings;
   *  0: start afresh (an existing journal is then replaced). A journal made with other
   *  settings is refused, naming the first difference. */
  int resume;
  /** See ::csal3d_case_errors. Default ::CSAL3D_CASE_ERRORS_STOP. */
  csal3d_case_errors on_error;
  /** Per-case callback, or NULL. */
  csal3d_score_case_fn on_case;
  /** Passed back to @ref on_case. */
  void *on_case_user_data;
  /**
   * Sharded scoring (Slurm or Kubernetes job arrays): 0 or 1 (default) scores every
   * case; N >= 2 scores only shard @ref shard_index of N: the cases at positions p of
   * the run's case list (@ref cases in its order, else the dataset's order) with
   * p mod N = @ref shard_index. The rule depends on the case list alone, so N jobs with
   * the same settings cover every case once. N may not exceed the number of cases.
   * The table (and @ref output, the shard's scores file) holds the shard's cases and,
   * besides the schema of csal3d_score_dataset(), the metadata "shard" ("I/N", I from
   * 1), "shard_cases" (the cases of the whole list), "shard_case_list" (a checksum of
   * the ids of the whole list, "crc32:XXXXXXXX") and, when cases were skipped,
   * "shard_skipped_positions" (their positions in the whole list, a JSON array).
   * csal3d_scores_merge_files() joins the N shard files into the file one process
   * would have written, bit for bit.
   */
  size_t shard_count;
  /** The shard this run scores, 0 <= shard_index < @ref shard_count (0-based; the
   *  metadata and the tool's `--shard I/N` count from 1). Default 0. */
  size_t shard_index;
} csal3d_score_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status csal3d_score_options_init(csal3d_score_options *options);

/**
 * Scores cases of a dataset with an uncertainty estimator (and its model).
 *
 * Before any work, every output is checked (csal3d_output_check()): the scores file and
 * the maps must be writable, none of them an input (the checkpoint, the dataset's files),
 * none existing unless @ref csal3d_score_options.overwrite. Then each case is loaded
 * (see @ref csal3d_score_options.load), its channels checked against the model, scored
 * with csal3d_uncertainty_score() keyed by csal3d_case_key(id), its map saved, and the
 * result appended to the journal `OUTPUT.partial` (fsync'ed). At the end the scores file
 * is written atomically and the journal removed. Progress goes to the context's callback
 * as ("score", cases done, cases) and may cancel.
 *
 * The table's metadata (and the file's) is one schema, whatever the front end:
 * "checkpoint" (absolute path, "" for a model never saved or loaded),
 * "checkpoint_checksum" ("crc32:XXXXXXXX" or ""), "checkpoint_step", "embed_dim",
 * "in_channels", "dataset" (the absolute path the dataset was opened from),
 * "modality" (ct, mri or none), "channel" (N, all or none), "spacing" ("D,H,W" in mm or
 * "native"), "window", "stride" ("D,H,W"), "foreground" (none, threshold or mask),
 * "foreground_threshold" (with threshold), "feature" (reduced, full or none),
 * "feature_dim", "seed", "draws" ("case-id": the key scheme), "library_version", and,
 * when cases were skipped, "skipped_cases" (a JSON array of {"id", "error"}).
 *
 * Over a communicator of N ranks (csal3d_context_set_comm() on the model's context;
 * every rank makes the same call): rank r scores shard r of N into its own file beside
 * the output (`.NAME.rank-R-of-N`, with its own journal), then rank 0 merges the N files
 * into @ref csal3d_score_options.output (csal3d_scores_merge_files(): bitwise the file
 * of one process) and removes them. The option output is required and shard_count must
 * be 0; only rank 0 receives the table (@p out is NULL on the others); a rank that fails
 * makes every rank fail, naming it.
 *
 * @param u the estimator (its model, window, stride, foreground, feature and seed).
 * @param dataset the cases; read, not changed.
 * @param options NULL for the defaults.
 * @param out receives the table (caller frees with csal3d_scores_free()), or NULL when
 *        only the file is wanted.
 * @return ::CSAL3D_OK; ::CSAL3D_ERR_IO (an output cannot be written or exists),
 *         ::CSAL3D_ERR_INVALID_ARGUMENT (an output is an input, load options that
 *         contradict the model, a case whose channels do not match: named),
 *         ::CSAL3D_ERR_CANCELLED (the journal keeps the cases done; run again to
 *         continue), ::CSAL3D_ERR_FORMAT (a journal made with other settings), or a
 *         case's own error prefixed with its index and id.
 */
CSAL3D_API csal3d_status csal3d_score_dataset(csal3d_uncertainty *u,
                                              const csal3d_dataset *dataset,
                                              const csal3d_score_options *options,
                                              csal3d_scores **out);

/* ---- shards ---- */

/**
 * Joins the shard tables of one sharded scoring run (csal3d_score_options.shard_count)
 * into the table a single run would have made: the cases back in the order of the
 * run's case list, the skipped cases merged likewise, the shard metadata removed. Saved
 * with csal3d_scores_save(), it is bitwise equal to the single run's scores file.
 *
 * Refused, before anything is built: a table that is not a shard (no metadata "shard"),
 * shards of different counts N, a shard missing or given twice, and shards made with
 * different settings or case lists (any metadata other than the shard's own: the
 * checkpoint, its checksum or step, the dataset, the data options, window, stride,
 * seed, feature, library version, the case list's checksum...): the message names the
 * setting and both values. A shard whose cases do not fit its share of the list is
 * ::CSAL3D_ERR_FORMAT.
 * @param shards @p count tables, in any order.
 * @param names @p count names for messages (the files' paths), or NULL ("shard table
 *        k").
 * @param count the number of tables, >= 1.
 * @param out receives the merged table (caller frees with csal3d_scores_free()).
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT (not a shard, missing or duplicate shards,
 *         differing settings), ::CSAL3D_ERR_FORMAT (inconsistent shard metadata).
 */
CSAL3D_API csal3d_status csal3d_scores_merge(const csal3d_scores *const *shards,
                                             const char *const *names, size_t count,
                                             csal3d_scores **out);

/**
 * csal3d_scores_merge() on files: loads the @p count shard scores files, merges them and
 * writes @p output atomically. The output is checked first (csal3d_output_check(): not
 * one of the shards, existing only with @p overwrite).
 * @param paths the shard files (csal3d_score_dataset() with shard_count, or
 *        `csal3d score --shard I/N`).
 * @param count the number of files, >= 1.
 * @param output the scores file to write.
 * @param overwrite 1 to replace an existing @p output.
 * @param out receives the merged table too (caller frees), or NULL.
 * @return as csal3d_scores_merge() and csal3d_scores_load(), ::CSAL3D_ERR_IO for the
 *         output.
 */
CSAL3D_API csal3d_status csal3d_scores_merge_files(const char *const *paths, size_t count,
                                                   const char *output, int overwrite,
                                                   csal3d_scores **out);

/* ---- outputs ---- */

/** What csal3d_output_check() is checking. */
typedef enum csal3d_output_kind {
  /** A file that will be written (replaced atomically). */
  CSAL3D_OUTPUT_FILE = 0,
  /** A folder that will be created (or filled: see csal3d_output_check()). */
  CSAL3D_OUTPUT_FOLDER = 1
} csal3d_output_kind;

/**
 * Checks, before any work, that an output can be written without destroying anything:
 * its parent folder exists and is writable; for a file, it is not a folder nor another
 * file that is not a regular one (a device such as /dev/null, a FIFO, a socket: a rename
 * would replace it), it is none of
 * @p inputs (same file, by device and inode, whatever the path) and it exists only when
 * @p overwrite is 1; for a folder, it is not a file, it is not and does not contain any of
 * @p inputs, and it is absent or empty unless @p overwrite is 1. Nothing is created.
 * @param path the output.
 * @param kind ::CSAL3D_OUTPUT_FILE or ::CSAL3D_OUTPUT_FOLDER.
 * @param what names the output in messages ("the scores file", "--nnunet").
 * @param inputs @p n_inputs paths that must not be overwritten (missing ones are
 *        ignored); may be NULL when @p n_inputs is 0.
 * @param n_inputs the number of @p inputs.
 * @param overwrite 1 if an existing output may be replaced.
 * @return ::CSAL3D_OK; ::CSAL3D_ERR_IO (missing or unwritable folder, existing output)
 *         or ::CSAL3D_ERR_INVALID_ARGUMENT (the output is or contains an input), with a
 *         message naming @p what, the path and the remedy.
 */
CSAL3D_API csal3d_status csal3d_output_check(const char *path, csal3d_output_kind kind,
                                             const char *what, const char *const *inputs,
                                             size_t n_inputs, int overwrite);

/* ---- files ---- */

/** What kind of file csal3d_file_identify() found. */
typedef enum csal3d_file_type {
  /** None of the kinds below. */
  CSAL3D_FILE_UNKNOWN = 0,
  /** A NIfTI-1 or NIfTI-2 image (`.nii`, `.nii.gz` or `.hdr`), gzipped or not. */
  CSAL3D_FILE_NIFTI = 1,
  /** A csal3d checkpoint (safetensors, format "csal3d-checkpoint"): csal3d_ssl_model_load(). */
  CSAL3D_FILE_CHECKPOINT = 2,
  /** A scores file (safetensors, format "csal3d-scores"): csal3d_scores_load(). */
  CSAL3D_FILE_SCORES = 3,
  /** Another safetensors file (weights of another program, say). */
  CSAL3D_FILE_SAFETENSORS = 4
} csal3d_file_type;

/**
 * Tells what a file is by its content (its first bytes and, for safetensors, the
 * "format" of its header's metadata), not its name; reads at most the header, so it is
 * quick on large files. Nothing is validated beyond that: load the file to check it.
 * @param path the file.
 * @param type receives the kind (::CSAL3D_FILE_UNKNOWN for none of them, with OK).
 * @return ::CSAL3D_ERR_IO when the file cannot be opened or read, or is not a regular
 *         file (a folder, a FIFO, a device).
 */
CSAL3D_API csal3d_status csal3d_file_identify(const char *path, csal3d_file_type *type);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_PIPELINE_H */
