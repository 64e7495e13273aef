"""csal3d.Volume and csal3d.Dataset: NIfTI images as float32 arrays in RAS+ order.

Axis order: ``Volume.to_numpy()`` returns a float32 array of shape (C, D, H, W) whose
spatial axes D, H, W point along +x (towards the patient's Right), +y (Anterior) and
+z (Superior), as closely as the file's affine allows. This is MONAI's and nibabel's
order: for a 3-D file, ``vol.to_numpy()[0]`` equals
``nibabel.as_closest_canonical(nibabel.load(path)).get_fdata()`` (as float32).
``vol.affine`` maps voxel indices (d, h, w, 1) to world millimetres.
"""

import ctypes
import os

import numpy as np

from ._native import Owned, check, choice, declare, hold, integer, let_go, lib

_c_float_p = ctypes.POINTER(ctypes.c_float)

CHANNEL_NONE = -1
CHANNEL_ALL = -2
MODALITY_AUTO = 3
_MODALITIES = {None: MODALITY_AUTO, "auto": MODALITY_AUTO, "none": 0, "ct": 1, "mri": 2,
               "mr": 2}
_MODALITY_NAMES = {0: None, 1: "ct", 2: "mri"}
_SAVE_DTYPES = {"auto": 0, "float32": 1, "int16": 2, "uint8": 3}


class _LoadOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("channel", ctypes.c_int),
                ("modality", ctypes.c_int),
                ("spacing", ctypes.c_double * 3),
                ("max_voxels", ctypes.c_int64),
                ("allow_nonfinite", ctypes.c_int),
                ("assume_spacing", ctypes.c_double * 3),
                ("max_memory", ctypes.c_int64)]


class _SaveOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("dtype", ctypes.c_int),
                ("compression_level", ctypes.c_int),
                ("source_orientation", ctypes.c_int)]


class _DatasetOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("split", ctypes.c_char_p),
                ("check_files", ctypes.c_int),
                ("channel_suffix", ctypes.c_int64)]


_CHANNEL_SUFFIX = {"auto": 0, "always": 1, "never": 2}


class _PhantomOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("cases", ctypes.c_int),
                ("seed", ctypes.c_uint64),
                ("size", ctypes.c_int),
                ("slices", ctypes.c_int)]


_P = ctypes.POINTER
_vp = ctypes.c_void_p
_i64x3 = ctypes.c_int64 * 3
_load_options_init = declare("csal3d_volume_load_options_init", [_P(_LoadOptions)])
_save_options_init = declare("csal3d_volume_save_options_init", [_P(_SaveOptions)])
_load = declare("csal3d_volume_load", [ctypes.c_char_p, _P(_LoadOptions), _P(_vp)])
_load_label = declare("csal3d_volume_load_label",
                      [ctypes.c_char_p, _vp, _P(_LoadOptions), _P(_vp)])
_create = declare("csal3d_volume_create", [ctypes.c_int64, _P(ctypes.c_int64), _c_float_p,
                                           _P(ctypes.c_double), _P(_vp)])
_create_like = declare("csal3d_volume_create_like", [_vp, ctypes.c_int64, _c_float_p, _P(_vp)])
_clone = declare("csal3d_volume_clone", [_vp, _P(_vp)])
_shape = declare("csal3d_volume_shape", [_vp, _P(ctypes.c_int64)])
_spacing = declare("csal3d_volume_spacing", [_vp, _P(ctypes.c_double)])
_affine = declare("csal3d_volume_affine", [_vp, _P(ctypes.c_double)])
_is_label = declare("csal3d_volume_is_label", [_vp, _P(ctypes.c_int)])
_copy_data = declare("csal3d_volume_copy_data", [_vp, _c_float_p, ctypes.c_size_t,
                                                 _P(ctypes.c_size_t)])
_save = declare("csal3d_volume_save", [_vp, ctypes.c_char_p, _P(_SaveOptions)])
_normalize = declare("csal3d_volume_normalize", [_vp, ctypes.c_int])
_resample = declare("csal3d_volume_resample", [_vp, _P(ctypes.c_double), _P(_vp)])
_crop = declare("csal3d_volume_crop", [_vp, _P(ctypes.c_int64), _P(ctypes.c_int64),
                                       ctypes.c_float, _P(_vp)])
_crop_or_pad = declare("csal3d_volume_crop_or_pad", [_vp, _P(ctypes.c_int64), ctypes.c_float,
                                                     _P(_vp)])
_bbox = declare("csal3d_volume_foreground_bbox", [_vp, ctypes.c_float, _P(ctypes.c_int64),
                                                  _P(ctypes.c_int64)])
_random_crop = declare("csal3d_volume_random_crop",
                       [_vp, _P(ctypes.c_int64), ctypes.c_uint64, ctypes.c_uint64,
                        ctypes.c_uint64, _P(ctypes.c_int64), _P(_vp)])
_to_source = declare("csal3d_volume_to_source_grid", [_vp, ctypes.c_int, _P(_vp)])
_ds_options_init = declare("csal3d_dataset_options_init", [_P(_DatasetOptions)])
_ds_open = declare("csal3d_dataset_open", [ctypes.c_char_p, _P(_DatasetOptions), _P(_vp)])
_ds_size = declare("csal3d_dataset_size", [_vp, _P(ctypes.c_size_t)])
_ds_modality = declare("csal3d_dataset_modality", [_vp, _P(ctypes.c_int)])
_ds_string = declare("csal3d_dataset_case_string",
                     [_vp, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                      _P(ctypes.c_size_t)])
_ds_info = declare("csal3d_dataset_case_info", [_vp, ctypes.c_size_t, _P(ctypes.c_int),
                                                _P(ctypes.c_int)])
_ds_load_image = declare("csal3d_dataset_load_image", [_vp, ctypes.c_size_t, _P(_LoadOptions),
                                                       _P(_vp)])
_ds_load_label = declare("csal3d_dataset_load_label", [_vp, ctypes.c_size_t, _vp,
                                                       _P(_LoadOptions), _P(_vp)])
_phantom_options_init = declare("csal3d_phantom_options_init", [_P(_PhantomOptions)])
_phantom = declare("csal3d_phantom_generate", [ctypes.c_char_p, _P(_PhantomOptions), _vp])
lib.csal3d_volume_free.restype = None
lib.csal3d_volume_free.argtypes = [_vp]
lib.csal3d_dataset_free.restype = None
lib.csal3d_dataset_free.argtypes = [_vp]


def _path(p):
    return os.fsencode(os.fspath(p))


def _modality(m):
    if m is None:
        return MODALITY_AUTO
    return choice("modality (None for auto)", m.lower() if isinstance(m, str) else m,
                  {k: v for k, v in _MODALITIES.items() if k is not None})


def _load_options(channel=None, modality=None, spacing=None, max_voxels=0,
                  allow_nonfinite=False, assume_spacing=None, max_memory=0):
    o = _LoadOptions()
    check(_load_options_init(ctypes.byref(o)))
    if channel is None or channel == "none":
        o.channel = CHANNEL_NONE
    elif isinstance(channel, str):
        if channel != "all":
            raise ValueError(f"channel must be None, an index or 'all', not {channel!r}")
        o.channel = CHANNEL_ALL
    else:
        o.channel = integer("channel", channel)
    o.modality = _modality(modality)
    if spacing is not None:
        sp = [float(s) for s in (spacing if np.ndim(spacing) else [spacing] * 3)]
        if len(sp) != 3:
            raise ValueError("spacing needs 3 values (mm along D, H, W; 0 keeps an axis)")
        o.spacing[:] = sp
    if max_voxels:
        o.max_voxels = integer("max_voxels", max_voxels, 0)
    o.allow_nonfinite = int(bool(allow_nonfinite))
    if assume_spacing is not None:
        sp = [float(s) for s in (assume_spacing if np.ndim(assume_spacing)
                                 else [assume_spacing] * 3)]
        if len(sp) != 3:
            raise ValueError("assume_spacing needs 3 values (mm along the file's i, j, k; "
                             "0 assumes nothing)")
        o.assume_spacing[:] = sp
    if max_memory:
        o.max_memory = int(max_memory)
    return o


def _i64(values, option):
    values = [integer(option, v) for v in values]
    if len(values) != 3:
        raise ValueError(f"{option}: expected 3 values (D, H, W), got {len(values)}")
    return (ctypes.c_int64 * 3)(*values)


class Volume(Owned):
    """A float32 image [C, D, H, W] in RAS+ order with its spacing and affine;
    np.asarray(volume) is volume.to_numpy().

    Make one with Volume.load(), Volume.load_label(), Volume.from_numpy() or
    vol.like(array). Geometry methods (resample, crop, ...) return new volumes.
    """

    _FREE = "csal3d_volume_free"
    _WHAT = "the volume"

    def __init__(self, handle):
        self._handle = handle

    # ---- creation ----

    @classmethod
    def load(cls, path, channel=None, modality=None, spacing=None, allow_nonfinite=False,
             max_voxels=0, assume_spacing=None, max_memory=0):
        """Loads a NIfTI file (.nii, .nii.gz; NIfTI-1 or -2), reoriented to RAS+.

        channel: None (a 4-D file is an error), an index into a 4-D file, or "all" to keep
        every volume as a channel. modality: None or "none" (the stored values), "ct"
        (clip [-1024, 1024] HU, scale to [0, 1]) or "mri" (z-score, clip to the 1st-99th
        percentiles, rescale to [0, 1]).
        spacing: resample to this spacing in mm (a number or 3 values; 0 keeps an axis).
        assume_spacing: the spacing in mm to assume along the file's i, j, k axes where
        pixdim is NaN, Inf or 0 and no sform gives the geometry (a number or 3 values; by
        default such a file is a FormatError). max_memory: the most bytes loading the file
        may take (default 4 x max_voxels; a header claiming more is an UnsupportedError
        before anything is read).
        Raises csal3d.FormatError, IOError_, UnsupportedError, NumericalError (NaN/Inf
        voxels unless allow_nonfinite), InvalidArgumentError (e.g. 4-D without channel).
        """
        o = _load_options(channel, modality, spacing, max_voxels, allow_nonfinite,
                          assume_spacing, max_memory)
        h = _vp()
        check(_load(_path(path), ctypes.byref(o), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def load_label(cls, path, image=None, channel=None, spacing=None, assume_spacing=None):
        """Loads a label image (integers 0..65535). With `image`, the label must be on the
        grid of the file `image` came from and is brought onto `image`'s current grid.
        assume_spacing: as for load()."""
        o = _load_options(channel, None, spacing, assume_spacing=assume_spacing)
        h = _vp()
        check(_load_label(_path(path), image.handle if image is not None else None,
                          ctypes.byref(o), ctypes.byref(h)))
        return cls(h)

    @classmethod
    def from_numpy(cls, array, affine=None):
        """A volume from an array [C, D, H, W] or [D, H, W] (copied as float32) and a 4x4
        affine (default: identity, 1 mm voxels)."""
        a = np.ascontiguousarray(array, dtype=np.float32)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4:
            raise ValueError(f"expected an array [C, D, H, W] or [D, H, W], got shape {a.shape}")
        aff = None
        if affine is not None:
            aff = np.ascontiguousarray(affine, dtype=np.float64)
            if aff.shape != (4, 4):
                raise ValueError("affine must be 4x4")
            aff = aff.ctypes.data_as(_P(ctypes.c_double))
        h = _vp()
        check(_create(a.shape[0], _i64(a.shape[1:], "shape"), a.ctypes.data_as(_c_float_p), aff,
                      ctypes.byref(h)))
        return cls(h)

    def like(self, array):
        """A volume with this one's grid (and source file grid) holding `array`
        ([C, D, H, W] or [D, H, W]): save() then writes it on the input file's grid."""
        a = np.ascontiguousarray(array, dtype=np.float32)
        if a.ndim == 3:
            a = a[None]
        if a.shape[1:] != self.shape[1:]:
            raise ValueError(f"array spatial shape {a.shape[1:]} is not {self.shape[1:]}")
        h = _vp()
        check(_create_like(self.handle, a.shape[0], a.ctypes.data_as(_c_float_p),
                           ctypes.byref(h)))
        return Volume(h)

    def copy(self):
        """A copy of this volume."""
        h = _vp()
        check(_clone(self.handle, ctypes.byref(h)))
        return Volume(h)

    # ---- properties ----

    @property
    def shape(self):
        """(C, D, H, W)."""
        s = (ctypes.c_int64 * 4)()
        check(_shape(self.handle, s))
        return tuple(int(x) for x in s)

    @property
    def spacing(self):
        """Voxel spacing in mm along (D, H, W)."""
        s = (ctypes.c_double * 3)()
        check(_spacing(self.handle, s))
        return tuple(s)

    @property
    def affine(self):
        """4x4 float64 array: world (x, y, z, 1) = affine @ (d, h, w, 1), RAS+ mm."""
        a = np.empty((4, 4), dtype=np.float64)
        check(_affine(self.handle, a.ctypes.data_as(_P(ctypes.c_double))))
        return a

    @property
    def is_label(self):
        """True when the volume holds labels (Volume.load_label, Case.load_label)."""
        out = ctypes.c_int()
        check(_is_label(self.handle, ctypes.byref(out)))
        return bool(out.value)

    def to_numpy(self):
        """A float32 copy of the voxels, shape (C, D, H, W), RAS+ axis order."""
        shape = self.shape
        a = np.empty(shape, dtype=np.float32)
        check(_copy_data(self.handle, a.ctypes.data_as(_c_float_p), a.size, None))
        return a

    def __array__(self, dtype=None, copy=None):
        """np.asarray(volume): the voxels as to_numpy() gives them (C, D, H, W), converted
        to `dtype` if given. Always a new array, so copy=False (NumPy 2) raises
        ValueError, as NumPy asks."""
        if copy is False:
            raise ValueError("a csal3d.Volume's voxels live in the library: converting "
                             "them to a NumPy array always copies (use copy=None)")
        a = self.to_numpy()
        return a if dtype is None else a.astype(dtype, copy=False)

    def __repr__(self):
        if self.closed:
            return "<csal3d.Volume closed>"
        sp = ", ".join(f"{s:g}" for s in self.spacing)
        kind = "label " if self.is_label else ""
        return f"<csal3d.Volume {kind}{self.shape} spacing ({sp}) mm>"

    # ---- saving ----

    def save(self, path, dtype="auto", compression_level=1, source_orientation=True):
        """Writes NIfTI (.nii or .nii.gz), atomically. dtype: "auto" (float32; labels as
        uint8/uint16), "float32", "int16" or "uint8". While the volume is on the grid of the
        file it was loaded from, the file is written in that file's voxel order and affine."""
        o = _SaveOptions()
        check(_save_options_init(ctypes.byref(o)))
        o.dtype = choice("dtype", dtype, _SAVE_DTYPES)
        o.compression_level = integer("compression_level", compression_level)
        o.source_orientation = int(bool(source_orientation))
        check(_save(self.handle, _path(path), ctypes.byref(o)))

    # ---- preprocessing ----

    def normalize(self, modality):
        """Normalises in place ("ct" or "mri"; None or "none" leaves it); returns self."""
        check(_normalize(self.handle, 0 if modality is None else _modality(modality)))
        return self

    def resample(self, spacing):
        """A new volume at `spacing` mm (a number or 3 values; 0 keeps an axis)."""
        sp = [float(s) for s in (spacing if np.ndim(spacing) else [spacing] * 3)]
        h = _vp()
        check(_resample(self.handle, (ctypes.c_double * 3)(*sp), ctypes.byref(h)))
        return Volume(h)

    def crop(self, lo, size, pad_value=0.0):
        """The box [lo, lo + size) as a new volume (outside voxels = pad_value)."""
        h = _vp()
        check(_crop(self.handle, _i64(lo, "lo"), _i64(size, "size"), pad_value,
                    ctypes.byref(h)))
        return Volume(h)

    def crop_or_pad(self, shape, pad_value=0.0):
        """Centre crop or pad to (D, H, W)."""
        h = _vp()
        check(_crop_or_pad(self.handle, _i64(shape, "shape"), pad_value, ctypes.byref(h)))
        return Volume(h)

    def foreground_bbox(self, threshold=0.0):
        """(lo, hi) of the voxels above threshold (hi exclusive); ((0,0,0), (0,0,0)) if none."""
        lo, hi = _i64x3(), _i64x3()
        check(_bbox(self.handle, threshold, lo, hi))
        return tuple(lo), tuple(hi)

    def random_crop(self, size, seed, step=0, item=0):
        """(crop, lo): a crop of `size` at a start drawn from (seed, step, item)."""
        lo = _i64x3()
        h = _vp()
        check(_random_crop(self.handle, _i64(size, "size"), integer("seed", seed, 0),
                           integer("step", step, 0), integer("item", item, 0), lo,
                           ctypes.byref(h)))
        return Volume(h), tuple(lo)

    def to_source_grid(self, nearest=False):
        """This volume brought back onto the grid of the file it was loaded from."""
        h = _vp()
        check(_to_source(self.handle, int(bool(nearest)), ctypes.byref(h)))
        return Volume(h)

    # ---- lifetime ----


class Case:
    """One case of a Dataset: its id, image file(s) and optional label file. A case keeps
    its dataset alive: it can still be loaded after the dataset's close()."""

    def __init__(self, dataset, index):
        self.index = index
        self.id = dataset._string(index, "id")
        files, has_label = ctypes.c_int(), ctypes.c_int()
        check(_ds_info(dataset.handle, index, ctypes.byref(files), ctypes.byref(has_label)))
        self.image_paths = [dataset._string(index, f"image:{k}") for k in range(files.value)]
        self.label_path = dataset._string(index, "label") if has_label.value else None
        self._dataset = dataset
        hold(self, dataset)

    def __del__(self):
        try:
            let_go(self)
        except Exception:  # noqa: BLE001 - interpreter shutdown: the library may be gone
            pass

    def load_image(self, channel=None, modality=None, spacing=None, **kw):
        """The image as a Volume (several channel files are stacked as channels).
        modality None (or "auto") normalises as the dataset.json states, if it does;
        "none" keeps the stored values."""
        o = _load_options(channel, modality, spacing, **kw)
        h = _vp()
        check(_ds_load_image(self._dataset._handle, self.index, ctypes.byref(o),
                             ctypes.byref(h)))
        return Volume(h)

    def load_label(self, image=None, channel=None):
        """The label as a Volume on `image`'s grid (see Volume.load_label)."""
        o = _load_options(channel)
        h = _vp()
        check(_ds_load_label(self._dataset._handle, self.index,
                             image.handle if image is not None else None, ctypes.byref(o),
                             ctypes.byref(h)))
        return Volume(h)

    def __repr__(self):
        return f"<csal3d.Case {self.id!r} {len(self.image_paths)} image file(s)" \
               f"{', labelled' if self.label_path else ''}>"


class Dataset(Owned):
    """A lazy list of cases: Dataset(path, split="training", check_files=False,
    channel_suffix="auto").

    path: a dataset.json (decathlon or nnU-Net v2), a folder (with a dataset.json, an
    imagesTr/ subfolder, NIfTI files, or one subfolder per subject), or a text file of
    "image[;image...][,label]" lines or a CSV with a header (image or image_0, image_1,
    ...; label; id). channel_suffix: whether a name's "_0000" numbers nnU-Net channels:
    "auto" (only in nnU-Net's layout), "always" or "never". Case ids are file names
    without the extension; repeated names take their folders ("subj01/flair").
    Iterating gives Case objects; nothing is loaded until asked.
    """

    _FREE = "csal3d_dataset_free"
    _WHAT = "the dataset"

    def __init__(self, path, split="training", check_files=False, channel_suffix="auto"):
        if channel_suffix not in _CHANNEL_SUFFIX:
            raise ValueError(f"channel_suffix must be one of {', '.join(_CHANNEL_SUFFIX)}, "
                             f"not {channel_suffix!r}")
        o = _DatasetOptions()
        check(_ds_options_init(ctypes.byref(o)))
        self._split = split.encode()
        o.split = self._split
        o.check_files = int(bool(check_files))
        o.channel_suffix = _CHANNEL_SUFFIX[channel_suffix]
        h = _vp()
        check(_ds_open(_path(path), ctypes.byref(o), ctypes.byref(h)))
        self._handle = h

    @property
    def modality(self):
        """"ct", "mri" or None, from the dataset.json."""
        m = ctypes.c_int()
        check(_ds_modality(self.handle, ctypes.byref(m)))
        return _MODALITY_NAMES.get(m.value)

    def _string(self, index, what):
        need = ctypes.c_size_t()
        check(_ds_string(self.handle, index, what.encode(), None, 0, ctypes.byref(need)))
        buf = ctypes.create_string_buffer(need.value)
        check(_ds_string(self.handle, index, what.encode(), buf, need.value, None))
        return os.fsdecode(buf.value)

    def __len__(self):
        n = ctypes.c_size_t()
        check(_ds_size(self.handle, ctypes.byref(n)))
        return n.value

    def __getitem__(self, index):
        index = integer("index", index)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"case {index} of a dataset of {n}")
        return Case(self, index)

    def __iter__(self):
        for i in range(len(self)):
            yield Case(self, i)


def generate_phantom(folder, cases=40, seed=0, size=80, slices=64):
    """Writes the synthetic CT dataset of docs/phantom.md into `folder` (imagesTr/,
    labelsTr/, dataset.json) and returns it as a Dataset."""
    o = _PhantomOptions()
    check(_phantom_options_init(ctypes.byref(o)))
    o.cases, o.seed = integer("cases", cases), integer("seed", seed, 0)
    o.size, o.slices = integer("size", size), integer("slices", slices)
    check(_phantom(_path(folder), ctypes.byref(o), None))
    return Dataset(folder)
