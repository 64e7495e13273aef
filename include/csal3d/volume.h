/*
 * libcsal3d. Copyright 2026 the libcsal3d developers. SPDX-License-Identifier: Apache-2.0
 */
/**
 * @file volume.h
 * @brief Volumes and datasets: NIfTI images loaded, reoriented and preprocessed.
 *
 * A ::csal3d_volume is a float32 image of shape [C, D, H, W] in RAS+ orientation: the
 * voxel axes D, H and W point along +x (towards the patient's Right), +y (Anterior) and
 * +z (Superior) of the NIfTI world, as closely as the image's affine allows (an oblique
 * image keeps its obliquity in the affine). This is the order MONAI and nibabel use ([C, X, Y, Z],
 * `nibabel.as_closest_canonical(img).get_fdata()` with the channel first), so that models
 * pretrained with MONAI see the same axes. Voxels are stored row-major with W fastest.
 *
 * Each volume keeps its voxel spacing (mm, along D, H, W), its 4x4 affine (voxel index
 * (d, h, w, 1) to world mm) and the grid of the file it came from, so that a map computed
 * on it is saved on that file's grid and opens on top of the scan in ITK-SNAP or 3D Slicer.
 *
 * A ::csal3d_dataset is a lazy list of cases (a folder of NIfTI files, a Medical
 * Segmentation Decathlon or nnU-Net v2 dataset.json, or a text file of paths): opening it
 * reads no image.
 *
 * @code
 * csal3d_volume_load_options o;
 * csal3d_volume_load_options_init(&o);
 * o.modality = CSAL3D_MODALITY_CT;          // clip to [-1024, 1024] HU, scale to [0, 1]
 * csal3d_volume *v;
 * if (csal3d_volume_load("ct_001.nii.gz", &o, &v) != CSAL3D_OK)
 *   fprintf(stderr, "csal3d: %s\n", csal3d_last_error());
 * int64_t shape[4];
 * csal3d_volume_shape(v, shape);            // C, D, H, W
 * csal3d_volume_free(v);
 * @endcode
 */
#ifndef CSAL3D_VOLUME_H
#define CSAL3D_VOLUME_H

#include "csal3d/context.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque image volume: float32 voxels [C, D, H, W], spacing, affine. */
typedef struct csal3d_volume csal3d_volume;

/** An opaque, lazily loaded list of cases (image paths, optional label path, case id). */
typedef struct csal3d_dataset csal3d_dataset;

/** How intensities are normalised (csal3d_volume_normalize(); docs/algorithms.md, "Data"). */
typedef enum csal3d_modality {
  /** No normalisation: the stored values (after scl_slope / scl_inter). */
  CSAL3D_MODALITY_NONE = 0,
  /** CT: clip to [-1024, 1024] HU and scale to [0, 1]. */
  CSAL3D_MODALITY_CT = 1,
  /** MRI, per channel: z-score, clip to the [1st, 99th] percentiles, rescale to [0, 1]. */
  CSAL3D_MODALITY_MRI = 2,
  /**
   * A load option only (the default of csal3d_volume_load_options_init()): decided by
   * the caller's context. csal3d_volume_load() of a single file treats it as NONE;
   * csal3d_dataset_load_image() uses the modality the dataset.json states
   * (csal3d_dataset_modality()), else NONE; csal3d_ssl_model_train() uses the model's
   * recorded modality (csal3d_ssl_model_data_options()), else the dataset.json's, else
   * NONE. csal3d_volume_normalize() refuses it.
   */
  CSAL3D_MODALITY_AUTO = 3
} csal3d_modality;

/** ::csal3d_volume_load_options.channel: a 4-D image is an error (the default). */
#define CSAL3D_CHANNEL_NONE (-1)
/** ::csal3d_volume_load_options.channel: keep every volume of a 4-D image as a channel. */
#define CSAL3D_CHANNEL_ALL (-2)

/**
 * How to load a volume. Fill with csal3d_volume_load_options_init(); members are only
 * ever appended.
 */
typedef struct csal3d_volume_load_options {
  /** sizeof(csal3d_volume_load_options) as the caller compiled it. */
  size_t struct_size;
  /**
   * Which volume of a 4-D image (dim[4] > 1) to load: 0-based index, ::CSAL3D_CHANNEL_ALL
   * for all of them as channels, or ::CSAL3D_CHANNEL_NONE (default) to refuse 4-D images
   * with more than one volume. 3-D images ignore it (0 and ALL are accepted).
   */
  int channel;
  /**
   * Normalisation applied after loading (and after resampling). Default
   * ::CSAL3D_MODALITY_AUTO (NONE for a single file, the dataset.json's modality for a
   * dataset's case).
   */
  csal3d_modality modality;
  /**
   * Resample to this voxel spacing in mm along (D, H, W), trilinear (nearest for labels).
   * Zeros (default) keep the file's spacing; each entry must be 0 or > 0, and 0 entries
   * keep that axis.
   */
  double spacing[3];
  /**
   * Refuse images with more voxels than this (all channels together), as a guard against
   * corrupt headers that claim absurd sizes. Default 2^30 (4 GiB of float32); 0 means
   * the default.
   */
  int64_t max_voxels;
  /** Replace NaN and Inf voxels by 0 instead of failing with ::CSAL3D_ERR_NUMERICAL. Default 0. */
  int allow_nonfinite;
  /**
   * The voxel spacing in mm to assume along the file's own i, j, k axes (pixdim[1..3];
   * not the D, H, W of #spacing) where pixdim is NaN, Inf or 0 and the affine is built
   * from it (no sform: the qform, or the pixdim diagonal). Zeros (default) make such a
   * file an error (::CSAL3D_ERR_FORMAT naming pixdim and the axis) rather than 1 mm
   * silently; entries must be 0 or > 0. Axes whose pixdim is usable, and files with an
   * sform, ignore it.
   */
  double assume_spacing[3];
  /**
   * The most memory in bytes that loading one file may take: its header extensions, the
   * voxels as stored, the float32 array they become and its RAS+ copy; then, with a
   * #spacing, the resampled array and the one it comes from (normalisation comes on
   * top). What the header claims is checked against it before any voxel is read or
   * decompressed, so that a small compressed file cannot claim gigabytes, and the
   * resampled grid before it is allocated: ::CSAL3D_ERR_UNSUPPORTED with the amount
   * needed. 0 (default) means 4 bytes x max_voxels (4 GiB with the default max_voxels: a
   * 512 x 512 x 1024 int16 CT needs 2.5). max_voxels bounds the resampled grid too.
   */
  int64_t max_memory;
} csal3d_volume_load_options;

/**
 * Fills @p options with the defaults (and sets struct_size).
 * @return ::CSAL3D_ERR_INVALID_ARGUMENT if @p options is NULL.
 */
CSAL3D_API csal3d_status
csal3d_volume_load_options_init(csal3d_volume_load_options *options);

/**
 * Loads a NIfTI-1 or NIfTI-2 image (`.nii`, `.nii.gz`, or an `.hdr`/`.img` pair).
 *
 * Every datatype from uint8 to float64 is converted to float32 with scl_slope and
 * scl_inter applied (a slope of 0 means no scaling). The image is reoriented to RAS+ from
 * its sform (else its qform; else the pixdim diagonal), without interpolation: axes are
 * permuted and flipped, and the affine follows, so world coordinates are unchanged.
 * A modality of ::CSAL3D_MODALITY_AUTO (the default) means NONE here.
 *
 * @param path the file.
 * @param options the options, or NULL for the defaults.
 * @param out receives the volume; NULL on failure.
 * @return ::CSAL3D_OK;
 *   ::CSAL3D_ERR_IO (missing or unreadable file, truncated data, not a regular file: a
 *   FIFO or a device is refused before it is opened),
 *   ::CSAL3D_ERR_FORMAT (not a NIfTI file: wrong magic or header size; dimensions <= 0;
 *   vox_offset inside the header, not a whole number, or beyond the file; scl_inter NaN or
 *   Inf with a usable scl_slope; pixdim NaN, Inf or 0 where the affine needs it, unless
 *   assume_spacing; a non-invertible affine; a corrupt compressed stream, or one that
 *   inflates beyond what the header promises),
 *   ::CSAL3D_ERR_UNSUPPORTED (complex, RGB or 128-bit datatypes; more than 4 dimensions;
 *   more voxels than max_voxels; more memory than max_memory, the resampled grid's
 *   included),
 *   ::CSAL3D_ERR_INVALID_ARGUMENT (a 4-D image without a channel choice, a channel out
 *   of range, bad options),
 *   ::CSAL3D_ERR_NUMERICAL (NaN or Inf voxels, unless allow_nonfinite);
 *   the message names the file and what is wrong with it.
 */
CSAL3D_API csal3d_status csal3d_volume_load(const char *path,
                                            const csal3d_volume_load_options *options,
                                            csal3d_volume **out);

/**
 * Loads a label image (integer classes; one channel).
 *
 * Values must be finite integers from 0 to 65535 (stored in float32). When @p image is
 * given, the label must lie on the grid of the file @p image came from (same dimensions,
 * and no corner voxel more than 1% of the smallest voxel size away): otherwise
 * ::CSAL3D_ERR_FORMAT says how they differ. It is then brought onto @p image's current grid (after any
 * resampling, cropping or padding) by nearest-neighbour lookup.
 *
 * @param path the label file.
 * @param image the image it belongs to, or NULL.
 * @param options used for channel, max_voxels and (without @p image) spacing; modality
 *        is ignored. NULL for the defaults.
 * @param out receives the label volume.
 */
CSAL3D_API csal3d_status csal3d_volume_load_label(const char *path,
                                                  const csal3d_volume *image,
                                                  const csal3d_volume_load_options *options,
                                                  csal3d_volume **out);

/**
 * Creates a volume from caller data.
 *
 * @param channels C >= 1.
 * @param dims D, H, W, each >= 1.
 * @param data C*D*H*W floats in [C, D, H, W] order (copied), or NULL for zeros.
 * @param affine a 4x4 row-major voxel-to-world matrix (copied), or NULL for the identity.
 *        Its first three columns must be linearly independent; spacing is their length.
 * @param out receives the volume.
 */
CSAL3D_API csal3d_status csal3d_volume_create(int64_t channels, const int64_t dims[3],
                                              const float *data, const double affine[16],
                                              csal3d_volume **out);

/**
 * Creates a volume on the grid of @p like (same D, H, W, affine and source file grid), with
 * @p channels channels of @p data (or zeros): the way to save a map computed on a volume
 * so that it lands on that volume's input grid.
 */
CSAL3D_API csal3d_status csal3d_volume_create_like(const csal3d_volume *like,
                                                   int64_t channels, const float *data,
                                                   csal3d_volume **out);

/** A copy of a volume. */
CSAL3D_API csal3d_status csal3d_volume_clone(const csal3d_volume *volume,
                                             csal3d_volume **out);

/** Releases a volume. Accepts NULL. */
CSAL3D_API void csal3d_volume_free(csal3d_volume *volume);

/** The shape: shape[0] = C, shape[1..3] = D, H, W. */
CSAL3D_API csal3d_status csal3d_volume_shape(const csal3d_volume *volume,
                                             int64_t shape[4]);

/** Voxel spacing in mm along D, H, W (the lengths of the affine's first three columns). */
CSAL3D_API csal3d_status csal3d_volume_spacing(const csal3d_volume *volume,
                                               double spacing[3]);

/** The 4x4 affine, row-major: world (x, y, z, 1) = affine * (d, h, w, 1), RAS+ mm. */
CSAL3D_API csal3d_status csal3d_volume_affine(const csal3d_volume *volume,
                                              double affine[16]);

/** What the file a volume was loaded from says about itself (csal3d_volume_source()). */
typedef struct csal3d_volume_source_info {
  /** sizeof(csal3d_volume_source_info) as the caller compiled it (set it before the call). */
  size_t struct_size;
  /** 1: loaded from a NIfTI file; 0: made by the caller (every other member 0 or ""). */
  int from_file;
  /** 1 or 2: NIfTI-1 or NIfTI-2. */
  int nifti_version;
  /** The datatype on disk as a NIfTI code (2 uint8, 4 int16, 16 float32, 64 float64, ...). */
  int datatype;
  /** Its name: "uint8", "int16", "float32", ... */
  char datatype_name[16];
  /** The file's dimensions in its own voxel order: nx, ny, nz, and nt (1 for a 3-D file,
   *  the number of volumes of a 4-D one, of which the volume may hold one or all). */
  int64_t dims[4];
  /** Voxel sizes along the file's axes i, j, k (mm): the lengths of the orientation's
   *  columns (the sform's, else the qform's). */
  double pixdim[3];
  /** The header's qform_code (0 unknown, 1 scanner, 2 aligned, 3 Talairach, 4 MNI, 5
   *  template). */
  int qform_code;
  /** The header's sform_code (the same codes). */
  int sform_code;
  /** Where the file's axes i, j, k point, as nibabel's aff2axcodes gives them: "RAS",
   *  "LPS", "LAS", ... (R/L, A/P, S/I; the volume itself is always RAS+). */
  char axis_codes[4];
  /** Which header field gave the orientation: "sform", "qform", or "none" (both codes 0:
   *  the pixdim diagonal, NIfTI's method 1). */
  char orientation_from[8];
} csal3d_volume_source_info;

/**
 * Describes the file a volume was loaded from, as its header has it: datatype, the file's
 * dimensions and voxel order, orientation codes and the direction of its axes. Kept by
 * every operation that keeps the volume's source grid (resampling, cropping, clones).
 * @param volume the volume.
 * @param info receives the description; set its struct_size first (a smaller, older
 *        struct receives its members only).
 */
CSAL3D_API csal3d_status csal3d_volume_source(const csal3d_volume *volume,
                                              csal3d_volume_source_info *info);

/** 1 if the volume holds labels (loaded with csal3d_volume_load_label), else 0. */
CSAL3D_API csal3d_status csal3d_volume_is_label(const csal3d_volume *volume, int *is_label);

/**
 * Copies the voxels into a caller buffer, [C, D, H, W] row-major.
 * @param volume the volume.
 * @param buffer receives the C*D*H*W voxels; may be NULL with capacity 0 (see @p needed).
 * @param capacity the buffer's size in floats; ::CSAL3D_ERR_BUFFER_TOO_SMALL (with the
 *        size needed in the message and in @p needed) if it is less than C*D*H*W.
 * @param needed receives C*D*H*W; may be NULL. @p buffer may be NULL with capacity 0 to
 *        ask for the size only (then ::CSAL3D_OK).
 */
CSAL3D_API csal3d_status csal3d_volume_copy_data(const csal3d_volume *volume, float *buffer,
                                                 size_t capacity, size_t *needed);

/**
 * A read-only pointer to the voxels ([C, D, H, W]), valid until the volume is freed or
 * changed; for callers that want no copy. The memory belongs to the volume.
 */
CSAL3D_API csal3d_status csal3d_volume_data(const csal3d_volume *volume, const float **data);

/** NIfTI datatypes csal3d_volume_save() can write. */
typedef enum csal3d_save_dtype {
  CSAL3D_SAVE_AUTO = 0,    /**< float32 for images; uint8 or int16 for labels. */
  CSAL3D_SAVE_FLOAT32 = 1, /**< float32. */
  CSAL3D_SAVE_INT16 = 2,   /**< int16, values rounded (and checked to fit). */
  CSAL3D_SAVE_UINT8 = 3    /**< uint8, values rounded (and checked to fit). */
} csal3d_save_dtype;

/** How to save a volume. Fill with csal3d_volume_save_options_init(). */
typedef struct csal3d_volume_save_options {
  /** sizeof(csal3d_volume_save_options) as the caller compiled it. */
  size_t struct_size;
  /** Datatype on disk. Default ::CSAL3D_SAVE_AUTO. */
  csal3d_save_dtype dtype;
  /** gzip level 1..9 for `.nii.gz` paths. Default 1 (fast; within ~10% of 9 on images). */
  int compression_level;
  /**
   * 1 (default): when the volume is still on the grid of the file it was loaded from, write
   * it in that file's voxel order and with that file's affine and header codes, so the
   * output overlays the input voxel for voxel. 0: always write the RAS+ array and affine.
   */
  int source_orientation;
} csal3d_volume_save_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status
csal3d_volume_save_options_init(csal3d_volume_save_options *options);

/**
 * Saves a volume as NIfTI-1 (NIfTI-2 when a dimension exceeds 32767), gzip-compressed when
 * @p path ends in `.gz`. Several channels are written as a 4-D image. The file appears
 * whole or not at all: data go to a temporary file in the same folder
 * (`.NAME.tmp.PID.XXXXXX`), which is flushed to disk and then renamed over @p path; a write
 * error names @p path. Temporaries of this name left by killed processes (their PID no
 * longer runs) are removed first (docs/robustness.md).
 */
CSAL3D_API csal3d_status csal3d_volume_save(const csal3d_volume *volume, const char *path,
                                            const csal3d_volume_save_options *options);

/* ---- preprocessing ---- */

/**
 * Normalises intensities in place (see ::csal3d_modality). MRI statistics are taken per
 * channel over all voxels; percentiles interpolate linearly between order statistics, as
 * numpy.percentile does. A constant channel becomes 0. Not allowed on labels, nor with
 * ::CSAL3D_MODALITY_AUTO (a load option).
 */
CSAL3D_API csal3d_status csal3d_volume_normalize(csal3d_volume *volume,
                                                 csal3d_modality modality);

/**
 * Resamples to a new voxel spacing (mm along D, H, W; 0 keeps an axis). The new size along
 * an axis of n voxels is max(1, round(n * old / new)), or one more voxel where that grid
 * would end a whole new voxel or more before the last input voxel's centre (so that
 * every input voxel lies within the new grid and csal3d_volume_to_source_grid() gives
 * each a value: floor((n - 1) * old / new) + 1 when larger); output voxel i samples the
 * input at i * new / old (the first voxel centre stays in place), trilinear for images
 * and nearest for labels, clamped at the edges. The affine is updated accordingly.
 * ::CSAL3D_ERR_INVALID_ARGUMENT for a spacing that is negative, not finite, or would
 * give more than 32767 voxels along an axis (1.6 m at 0.05 mm: a slip such as 0.001 for
 * 1); ::CSAL3D_ERR_UNSUPPORTED, before anything is allocated, when the new grid would
 * hold more than 2^30 voxels (all channels together). Loading with a spacing
 * (csal3d_volume_load_options.spacing) checks the new grid against the load options'
 * max_voxels and max_memory (the new grid and the image it comes from, 4 bytes a voxel)
 * instead.
 */
CSAL3D_API csal3d_status csal3d_volume_resample(const csal3d_volume *volume,
                                                const double spacing[3],
                                                csal3d_volume **out);

/**
 * Copies the box [lo, lo + size) (voxel indices along D, H, W; lo may be negative and the
 * box may extend past the volume) into a new volume, filling outside voxels with
 * @p pad_value. The affine's origin moves so that world coordinates are unchanged.
 */
CSAL3D_API csal3d_status csal3d_volume_crop(const csal3d_volume *volume, const int64_t lo[3],
                                            const int64_t size[3], float pad_value,
                                            csal3d_volume **out);

/**
 * Centre crop or pad to a shape (D, H, W): along each axis, a larger volume loses
 * floor((n - s) / 2) voxels at the start, a smaller one gains floor((s - n) / 2) voxels of
 * @p pad_value there (the rest at the end).
 */
CSAL3D_API csal3d_status csal3d_volume_crop_or_pad(const csal3d_volume *volume,
                                                   const int64_t shape[3], float pad_value,
                                                   csal3d_volume **out);

/**
 * The bounding box of the voxels above @p threshold in any channel: lo (inclusive) and hi
 * (exclusive) along D, H, W. An image with no such voxel gives lo = hi = {0, 0, 0}.
 */
CSAL3D_API csal3d_status csal3d_volume_foreground_bbox(const csal3d_volume *volume,
                                                       float threshold, int64_t lo[3],
                                                       int64_t hi[3]);

/**
 * A random crop of @p size (D, H, W): the start along each axis is uniform in
 * [0, n - s], drawn from the counter-based generator keyed by (seed, crop purpose,
 * @p step, @p item), so the same key gives the same crop on any machine and thread count.
 * A volume smaller than the crop along an axis is centre-padded with zeros there.
 * @param volume the volume to crop (not changed).
 * @param size the crop sides D, H, W in voxels, each >= 1.
 * @param seed the seed of the key (e.g. the training seed).
 * @param step the step of the key (e.g. the training step).
 * @param item the item of the key (e.g. the crop's index in its batch).
 * @param lo receives the start (before padding, it may be negative); may be NULL.
 * @param out receives the crop, a new volume of the same channels with the affine
 *        moved as csal3d_volume_crop() moves it; NULL on failure.
 */
CSAL3D_API csal3d_status csal3d_volume_random_crop(const csal3d_volume *volume,
                                                   const int64_t size[3], uint64_t seed,
                                                   uint64_t step, uint64_t item,
                                                   int64_t lo[3], csal3d_volume **out);

/**
 * Brings a volume back onto the grid of the file it was loaded from (undoing resampling,
 * cropping and padding): trilinear, or nearest when @p nearest is non-zero or the volume
 * holds labels; voxels of the source grid outside the volume get 0. A volume already on
 * its source grid is copied.
 */
CSAL3D_API csal3d_status csal3d_volume_to_source_grid(const csal3d_volume *volume,
                                                      int nearest, csal3d_volume **out);

/* ---- datasets ---- */

/**
 * How image file names ending in `_NNNN` (an underscore and four digits: nnU-Net's
 * channel suffix, `X_0000.nii.gz`, `X_0001.nii.gz`, ...) are read
 * (csal3d_dataset_options.channel_suffix).
 */
typedef enum csal3d_channel_suffix {
  /** As channel numbers only where the layout is nnU-Net's: a dataset.json with
   * "file_ending" or "channel_names" and no "training" list (nnU-Net v2), or an imagesTr/
   * without a dataset.json whose every file ends in _NNNN and whose labelsTr/ names its
   * labels after the names without it (labelsTr/X.nii.gz for imagesTr/X_0000.nii.gz).
   * Elsewhere `_NNNN` is part of the name (`amos_0001.nii.gz` is case "amos_0001"). */
  CSAL3D_CHANNEL_SUFFIX_AUTO = 0,
  /** Always: files X_0000, X_0001, ... of one folder form one case X of several
   * channels (folders), and ids drop the suffix (dataset.json lists, text files). */
  CSAL3D_CHANNEL_SUFFIX_ALWAYS = 1,
  /** Never: every file is its own case, named with its suffix. */
  CSAL3D_CHANNEL_SUFFIX_NEVER = 2
} csal3d_channel_suffix;

/** How to open a dataset. Fill with csal3d_dataset_options_init(). */
typedef struct csal3d_dataset_options {
  /** sizeof(csal3d_dataset_options) as the caller compiled it. */
  size_t struct_size;
  /**
   * For a decathlon or nnU-Net dataset.json: which list to read, "training" (default,
   * imagesTr/labelsTr) or "test" (imagesTs, no labels).
   */
  const char *split;
  /** 1: fail if a listed file does not exist (checked at open). 0 (default): fail when it is loaded. */
  int check_files;
  /** A ::csal3d_channel_suffix: whether `_NNNN` ends a name or numbers a channel.
   * Default ::CSAL3D_CHANNEL_SUFFIX_AUTO. (64 bits wide so that it starts after the
   * tail padding of the struct as 0.1.0 callers compiled it.) */
  int64_t channel_suffix;
} csal3d_dataset_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status csal3d_dataset_options_init(csal3d_dataset_options *options);

/**
 * Opens a dataset. @p path may be:
 * - a dataset.json: Medical Segmentation Decathlon (its "training" or "test" list; an
 *   entry's "image" is a path or a list of channel paths, "label" a path or none; the
 *   cases are the entries as listed), or nnU-Net v2 ("file_ending" or "channel_names" and
 *   no list: the cases are the files of imagesTr/ (imagesTs/) with that ending, X_0000,
 *   X_0001, ... forming case X, labels from labelsTr/X);
 * - a folder holding a dataset.json (as above), else an imagesTr/ (imagesTs/) subfolder
 *   (labels from labelsTr/, named as their images), else NIfTI files, else, when it holds
 *   none at the top, the NIfTI files of its subfolders (one folder per subject, up to 8
 *   levels down; every file a case);
 * - a text file, one case per line: `IMAGE[;IMAGE...][,LABEL]`, where several images
 *   separated by ';' are the channels of one case and a tab may replace the comma; or a
 *   CSV whose first line names its columns: `image` (a path, or channel paths separated
 *   by ';') or `image_0`, `image_1`, ... (also `image0`, ...; channels in the order of
 *   their numbers), optionally `label` (or `seg`, `segmentation`) and `id` (or `case`,
 *   `case_id`: the case id; empty cells take the id from the file name); other columns are
 *   ignored; names are case-insensitive; fields may be quoted as in RFC 4180.
 *   Relative paths are relative to the file's folder; blank lines and lines starting with
 *   # are skipped; a line holding a NUL byte or another control character than a tab is
 *   an error (::CSAL3D_ERR_FORMAT naming the line).
 *
 * Image files are `.nii`, `.nii.gz` or `.hdr` (NIfTI/Analyze pairs; a listed `.img` stands
 * for its `.hdr`). A case's id is its (first) image's file name without the extension,
 * and without the `_NNNN` channel suffix where it numbers channels (see
 * ::csal3d_channel_suffix). Where several cases have the same file name
 * (`subj01/flair.nii.gz`, `subj02/flair.nii.gz`, `subj03/anat/flair.nii.gz`), each id
 * that still repeats takes the next folder up, joined with '/', until none repeats
 * (`subj01/flair`, `subj02/flair`, `anat/flair`): the end of the file's path without
 * the extension, "." and ".." resolved (the path relative to the dataset's folder when
 * the subjects' folders are at one depth). Ids must not be empty or hold control
 * characters (tab, newline, ...; ::CSAL3D_ERR_FORMAT naming the file); the same file
 * listed twice is an error. Other text is kept as it is, spreadsheet formulas
 * (`=cmd|...`) included: CSV writers defuse such cells. An uncertainty map's file name
 * has '_' for an id's '/' (csal3d_score_options.maps_dir). Cases are sorted by id for folders and nnU-Net datasets and
 * keep the listed order for decathlon dataset.json and text files. Nothing is loaded
 * until asked; opening takes O(n log n) in the number of cases.
 */
CSAL3D_API csal3d_status csal3d_dataset_open(const char *path,
                                             const csal3d_dataset_options *options,
                                             csal3d_dataset **out);

/** Releases a dataset. Accepts NULL. */
CSAL3D_API void csal3d_dataset_free(csal3d_dataset *dataset);

/** The number of cases. */
CSAL3D_API csal3d_status csal3d_dataset_size(const csal3d_dataset *dataset, size_t *size);

/**
 * The modality that the dataset.json declares for channel 0 ("CT" gives
 * ::CSAL3D_MODALITY_CT; "MRI", "MR", "T1", "T2", "FLAIR", "ADC", ... give MRI), else
 * ::CSAL3D_MODALITY_NONE.
 */
CSAL3D_API csal3d_status csal3d_dataset_modality(const csal3d_dataset *dataset,
                                                 csal3d_modality *modality);

/**
 * A string of case @p index: @p what is "id", "image" (the first channel's path), "label"
 * ("" when the case has none), or "image:N" (the path of channel file N).
 * Copied with its terminating NUL into @p buffer of @p capacity bytes;
 * ::CSAL3D_ERR_BUFFER_TOO_SMALL if it does not fit. @p needed (may be NULL) receives the
 * bytes needed including the NUL; @p buffer may be NULL with capacity 0 to ask.
 */
CSAL3D_API csal3d_status csal3d_dataset_case_string(const csal3d_dataset *dataset,
                                                    size_t index, const char *what,
                                                    char *buffer, size_t capacity,
                                                    size_t *needed);

/** The number of image files (channels) of case @p index and whether it has a label. */
CSAL3D_API csal3d_status csal3d_dataset_case_info(const csal3d_dataset *dataset,
                                                  size_t index, int *image_files,
                                                  int *has_label);

/**
 * Loads the image of case @p index. A case of several files is loaded file by file
 * (channel option applied to each) and stacked as channels; the files must share a grid.
 * A modality of ::CSAL3D_MODALITY_AUTO (the default) normalises as the dataset.json
 * states (csal3d_dataset_modality()), or not at all when it states none.
 * Errors name the case.
 */
CSAL3D_API csal3d_status csal3d_dataset_load_image(const csal3d_dataset *dataset,
                                                   size_t index,
                                                   const csal3d_volume_load_options *options,
                                                   csal3d_volume **out);

/**
 * Loads the label of case @p index onto @p image's grid (see csal3d_volume_load_label());
 * @p image may be NULL. ::CSAL3D_ERR_STATE if the case has no label.
 */
CSAL3D_API csal3d_status csal3d_dataset_load_label(const csal3d_dataset *dataset,
                                                   size_t index, const csal3d_volume *image,
                                                   const csal3d_volume_load_options *options,
                                                   csal3d_volume **out);

/* ---- the phantom dataset ---- */

/** What csal3d_phantom_generate() writes. Fill with csal3d_phantom_options_init(). */
typedef struct csal3d_phantom_options {
  /** sizeof(csal3d_phantom_options) as the caller compiled it. */
  size_t struct_size;
  /** Number of cases. Default 40. */
  int cases;
  /** Seed: the same seed writes the same files. Default 0. */
  uint64_t seed;
  /** Largest in-plane size in voxels (volumes get 0.75x to 1x of it). Default 80. */
  int size;
  /** Largest number of slices (volumes get 0.6x to 1x of it). Default 64. */
  int slices;
} csal3d_phantom_options;

/** Fills @p options with the defaults (and sets struct_size). */
CSAL3D_API csal3d_status csal3d_phantom_options_init(csal3d_phantom_options *options);

/**
 * Writes a synthetic CT dataset in the decathlon layout: @p folder/imagesTr/phantom_NNN.nii.gz
 * (int16 HU), labelsTr/ (uint8: 0 background, 1 liver, 2 spleen, 3 kidney, 4 lesion) and
 * dataset.json (with a "phantom" list giving each case's anatomy type and difficulty).
 * Cases differ in anatomy type (of unequal frequency, some rare), organ shape, size and
 * position, noise, intensity bias, spacing and field of view; some are hard (low contrast,
 * small organs). docs/phantom.md describes it. @p folder is created if needed; existing
 * files of the same names are replaced. Deterministic by seed.
 * @param folder the dataset folder to write; not NULL or empty.
 * @param options NULL for the defaults (40 cases, seed 0).
 * @param ctx optional (NULL allowed): progress ("phantom", case, cases) and cancellation.
 */
CSAL3D_API csal3d_status csal3d_phantom_generate(const char *folder,
                                                 const csal3d_phantom_options *options,
                                                 const csal3d_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* CSAL3D_VOLUME_H */
