"""csal3d.SSLModel: the self-supervised Swin-UNETR model (pretraining, features).

    ctx = csal3d.Context(device="cpu", seed=0)
    model = csal3d.SSLModel(ctx, embed_dim=12, crop_size=(64, 64, 32), batch_size=2,
                            iterations=200)
    model.train(csal3d.Dataset("Task04_Hippocampus"),   # modality from its dataset.json
                on_step=lambda losses, total: print(losses.step, losses.loss))
    model.save("ssl.safetensors")
    model = csal3d.SSLModel.load(ctx, "ssl.safetensors")       # exact resume
    model = csal3d.SSLModel(ctx, init_from="swinvit.safetensors")  # public weights
    model.data_options                  # {"modality": "mri", "channel": "none", ...}
    z = model.encode_volume(volume)                               # the volume's feature

Options are the members of the C struct csal3d_ssl_options as keyword arguments
(embed_dim, in_channels, crop_size, batch_size, iterations, lr, weight_decay,
warmup_steps, clip_norm, mask_ratio, mask_mode ("hide"/"keep"), weight_inpainting,
weight_rotation, weight_consistency, inpainting_masked_only, inpainting_zscore_target,
rotation_input ("mean"/"first_token"), feature ("reduced"/"full"), checkpoint_every,
checkpoint_path, seed, cache_bytes); see include/csal3d/ssl_model.h for their meaning and
defaults. Arrays are float32 numpy arrays [N, C, D, H, W] (sides multiples of 32).
"""

import ctypes
import os
from collections import namedtuple

import numpy as np

from ._native import Owned, check, choice, declare, integer, lib, three_ints
from .errors import StateError
from .volume import CHANNEL_ALL, CHANNEL_NONE, _LoadOptions, _load_options

_P = ctypes.POINTER
_vp = ctypes.c_void_p
_c_float_p = _P(ctypes.c_float)

MASK_MODES = {"hide": 0, "keep": 1}
ROTATION_INPUTS = {"mean": 0, "first_token": 1}
FEATURES = {"default": 0, "reduced": 1, "full": 2, "none": 3}


class _Losses(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("step", ctypes.c_int64),
                ("loss", ctypes.c_double),
                ("inpainting", ctypes.c_double),
                ("rotation", ctypes.c_double),
                ("consistency", ctypes.c_double),
                ("lr", ctypes.c_double),
                ("grad_norm", ctypes.c_double)]


_STEP_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, _P(_Losses), ctypes.c_int64)


class _IntensityStats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("crops", ctypes.c_int64),
                ("voxels", ctypes.c_int64),
                ("mean", ctypes.c_double),
                ("std", ctypes.c_double),
                ("min", ctypes.c_double),
                ("max", ctypes.c_double)]


_KNOWN_MODALITY, _KNOWN_CHANNEL, _KNOWN_SPACING = 1, 2, 4
_DATA_MODALITIES = {0: "none", 1: "ct", 2: "mri"}


class _Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("embed_dim", ctypes.c_int),
                ("in_channels", ctypes.c_int),
                ("crop_size", ctypes.c_int64 * 3),
                ("batch_size", ctypes.c_int),
                ("iterations", ctypes.c_int64),
                ("lr", ctypes.c_double),
                ("weight_decay", ctypes.c_double),
                ("warmup_steps", ctypes.c_int64),
                ("clip_norm", ctypes.c_double),
                ("mask_ratio", ctypes.c_double),
                ("mask_mode", ctypes.c_int),
                ("weight_inpainting", ctypes.c_double),
                ("weight_rotation", ctypes.c_double),
                ("weight_consistency", ctypes.c_double),
                ("inpainting_masked_only", ctypes.c_int),
                ("inpainting_zscore_target", ctypes.c_int),
                ("rotation_input", ctypes.c_int),
                ("feature", ctypes.c_int),
                ("checkpoint_every", ctypes.c_int64),
                ("checkpoint_path", ctypes.c_char_p),
                ("use_seed", ctypes.c_int),
                ("seed", ctypes.c_uint64),
                ("on_step", _STEP_FN),
                ("on_step_user_data", ctypes.c_void_p),
                ("cache_bytes", ctypes.c_int64)]


_options_init = declare("csal3d_ssl_options_init", [_P(_Options)])
_create = declare("csal3d_ssl_model_create", [_vp, _P(_Options), _P(_vp)])
_load = declare("csal3d_ssl_model_load", [_vp, ctypes.c_char_p, _P(_vp)])
_save = declare("csal3d_ssl_model_save", [_vp, ctypes.c_char_p])
_get_options = declare("csal3d_ssl_model_get_options", [_vp, _P(_Options)])
_set_options = declare("csal3d_ssl_model_set_options", [_vp, _P(_Options)])
_step = declare("csal3d_ssl_model_step", [_vp, _P(ctypes.c_int64)])
_param_count = declare("csal3d_ssl_model_parameter_count", [_vp, _P(ctypes.c_int64)])
_last_losses = declare("csal3d_ssl_model_last_losses", [_vp, _P(_Losses)])
_train_step = declare("csal3d_ssl_model_train_step",
                      [_vp, _c_float_p, ctypes.c_int64, _P(ctypes.c_int64), _P(_Losses)])
_train = declare("csal3d_ssl_model_train", [_vp, _vp, _vp])
_data_options = declare("csal3d_ssl_model_data_options",
                        [_vp, _P(_LoadOptions), _P(ctypes.c_int)])
_set_data_options = declare("csal3d_ssl_model_set_data_options", [_vp, _P(_LoadOptions)])
_intensity_stats = declare("csal3d_ssl_model_intensity_stats", [_vp, _P(_IntensityStats)])
_feature_dim = declare("csal3d_ssl_model_feature_dim", [_vp, _P(ctypes.c_int64)])
_encode = declare("csal3d_ssl_model_encode",
                  [_vp, _c_float_p, ctypes.c_int64, _P(ctypes.c_int64), _c_float_p,
                   ctypes.c_size_t])
_encode_volume = declare("csal3d_ssl_model_encode_volume",
                         [_vp, _vp, _P(ctypes.c_int64), _P(ctypes.c_int64), _c_float_p,
                          ctypes.c_size_t])
_options_from_weights = declare("csal3d_ssl_options_from_weights",
                                [ctypes.c_char_p, _P(_Options)])


class _InitReport(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("loaded", ctypes.c_int64),
                ("initialised", ctypes.c_int64),
                ("ignored", ctypes.c_int64),
                ("summary", ctypes.c_char_p),
                ("details", ctypes.c_char_p)]


_init_from = declare("csal3d_ssl_model_init_from", [_vp, ctypes.c_char_p, _P(_InitReport)])
_reconstruct = declare("csal3d_ssl_model_reconstruct",
                       [_vp, _c_float_p, ctypes.c_int64, _P(ctypes.c_int64), _c_float_p,
                        ctypes.c_size_t, _c_float_p])
lib.csal3d_ssl_model_free.restype = None
lib.csal3d_ssl_model_free.argtypes = [_vp]

InitReport = namedtuple("InitReport", "loaded initialised ignored summary details")
InitReport.__doc__ = """What SSLModel.init_from() did: the numbers of model tensors loaded from the
file and initialised as for a new model (the rotation head and decoder an encoder-only
file lacks), of file tensors ignored, a one-line summary, and one line per tensor."""

Losses = namedtuple("Losses", "step loss inpainting rotation consistency lr grad_norm")
Losses.__doc__ = """The losses of one training step: the 0-based step, the weighted total,
the three unweighted terms (batch means), the learning rate and the gradient norm before
clipping."""

_ENUMS = {"mask_mode": MASK_MODES, "rotation_input": ROTATION_INPUTS, "feature": FEATURES}
_NAMES = {k: {v: n for n, v in m.items()} for k, m in _ENUMS.items()}
_OPTION_NAMES = [n for n, _ in _Options._fields_
                 if n not in ("struct_size", "on_step", "on_step_user_data", "use_seed")]


def _losses(l):
    return Losses(l.step, l.loss, l.inpainting, l.rotation, l.consistency, l.lr, l.grad_norm)


def _i64x3(v, option="size"):
    return (ctypes.c_int64 * 3)(*three_ints(option, v))


def _as_batch(x, in_channels):
    a = np.ascontiguousarray(x, dtype=np.float32)
    if a.ndim == 3:
        a = a[None, None]
    elif a.ndim == 4:
        a = a[None] if in_channels == a.shape[0] else a[:, None]
    if a.ndim != 5:
        raise ValueError(f"expected an array [N, C, D, H, W], got shape {a.shape}")
    return a


_FLAGS = {"inpainting_masked_only", "inpainting_zscore_target"}


def _apply(o, options, keep_path):
    """Sets options (a dict) on the ctypes struct; returns objects to keep alive."""
    keep = list(keep_path)
    for key, value in options.items():
        if key == "seed":
            if value is None:
                o.use_seed = 0
            else:
                o.use_seed, o.seed = 1, integer("seed", value, 0)
        elif key == "crop_size":
            o.crop_size[:] = list(_i64x3(value, "crop_size"))
        elif key == "checkpoint_path":
            b = os.fsencode(os.fspath(value)) if value is not None else None
            keep.append(b)
            o.checkpoint_path = b
        elif key in _ENUMS:
            setattr(o, key, choice(key, value, _ENUMS[key]))
        elif key in _FLAGS:
            setattr(o, key, int(bool(value)))
        elif key in _OPTION_NAMES:
            if isinstance(getattr(o, key), int):
                setattr(o, key, integer(key, value))
            else:
                setattr(o, key, float(value))
        else:
            raise TypeError(f"unknown SSL option {key!r}; known: {', '.join(_OPTION_NAMES)}")
    return keep


class SSLModel(Owned):
    """The CSAL-3D self-supervised model: Swin encoder, inpainting decoder, rotation head.

    SSLModel(context, **options) makes a freshly initialised model (step 0);
    SSLModel.load(context, path) restores a checkpoint (parameters, optimiser, step,
    options) so that train() continues exactly. SSLModel(context, init_from=path,
    **options) starts from pretrained weights (see init_from(); embed_dim and
    in_channels default to the file's; `init_report` says what was loaded). The model
    keeps its context alive (see the package docstring): it works on after the context's
    `with` block or close().

    in_channels=None (the default) takes the input channels from the data, as
    `csal3d pretrain` does: the first case train() loads (with its `channel`), or the C
    axis of the first [N, C, D, H, W] array or volume given to train_step(), encode(),
    encode_volume() or reconstruct(). Until then (and while still at step 0) the model
    is a one-channel model; on first seeing data with C channels it is re-made with C
    channels, from the same seed and options (the same parameters `csal3d pretrain` would
    start from). An explicit in_channels is kept as given.
    """

    _FREE = "csal3d_ssl_model_free"
    _WHAT = "the model"

    def __init__(self, context, _handle=None, init_from=None, **options):
        self._context = context
        self._keep = []
        self._on_step = None
        self._infer_channels = False
        self.init_report = None
        if _handle is None:
            o = _Options()
            check(_options_init(ctypes.byref(o)))
            if init_from is not None:  # the width and channels of the weights
                check(_options_from_weights(os.fsencode(os.fspath(init_from)), ctypes.byref(o)))
            if options.get("in_channels", None) is None:
                options.pop("in_channels", None)
                self._infer_channels = init_from is None
            self._keep = _apply(o, options, [])
            _handle = _vp()
            check(_create(context.handle, ctypes.byref(o), ctypes.byref(_handle)))
        self._handle = _handle
        self._hold(context)
        if init_from is not None:
            self.init_from(init_from)

    def init_from(self, path):
        """Sets the model's weights (at step 0) from pretrained ones: a MONAI SwinUNETR
        state_dict, a public self-supervised Swin checkpoint (Tang et al., SwinMM) or a
        csal3d checkpoint, as safetensors (convert .pt/.pth files with
        `python3 -m csal3d.convert`). The encoder must be whole and of the model's width;
        the rotation head and decoder come from the file where it has them, else are
        initialised as for a new model. Returns an InitReport (also kept as
        `init_report`). Raises csal3d.StateError after training steps,
        InvalidArgumentError for another width or channel count (naming the tensor and
        both shapes), FormatError for other mismatches. A model made with
        in_channels=None takes the file's channels."""
        p = os.fsencode(os.fspath(path))
        if self._infer_channels:
            o = _Options()
            check(_options_init(ctypes.byref(o)))
            check(_options_from_weights(p, ctypes.byref(o)))
            self._see_channels(o.in_channels)
        r = _InitReport()
        r.struct_size = ctypes.sizeof(_InitReport)
        check(_init_from(self.handle, p, ctypes.byref(r)))
        self._infer_channels = False
        self.init_report = InitReport(r.loaded, r.initialised, r.ignored,
                                      os.fsdecode(r.summary or b""),
                                      os.fsdecode(r.details or b""))
        return self.init_report

    @classmethod
    def load(cls, context, path):
        """Loads a checkpoint written by save() (checksum verified) or the converted
        weights of a whole SSL model. Raises csal3d.IOError_, FormatError, ChecksumError.
        To start from an encoder alone (MONAI SwinUNETR, the public self-supervised
        checkpoints), use SSLModel(context, init_from=path) instead."""
        h = _vp()
        check(_load(context.handle, os.fsencode(os.fspath(path)), ctypes.byref(h)))
        return cls(context, _handle=h)

    def _see_channels(self, channels):
        """in_channels=None: re-makes the step-0 model for data of `channels` channels
        (once: the first data seen decides)."""
        if not self._infer_channels:
            return
        o = self._raw_options()
        if channels == o.in_channels or self.step != 0:
            self._infer_channels = False
            return
        if self._children:
            raise StateError(
                f"the data has {channels} channels and the model, made with "
                f"in_channels=None, takes them from the first data it sees, but estimators "
                f"made from it before are still alive: close them, or make the model with "
                f"in_channels={channels}")
        o.in_channels = channels
        o.on_step = _STEP_FN()
        o.on_step_user_data = None
        known = ctypes.c_int()
        lo = _LoadOptions()
        lo.struct_size = ctypes.sizeof(_LoadOptions)
        check(_data_options(self.handle, ctypes.byref(lo), ctypes.byref(known)))
        h = _vp()
        # The old model (whose checkpoint_path `o` points into) is freed only after.
        check(_create(self._context._handle, ctypes.byref(o), ctypes.byref(h)))
        try:
            if known.value & _KNOWN_MODALITY:
                check(_set_data_options(h, ctypes.byref(lo)))
        except BaseException:
            lib.csal3d_ssl_model_free(h)
            raise
        old, self._handle = self._handle, h
        lib.csal3d_ssl_model_free(old)
        self._infer_channels = False

    def _batch(self, x):
        """x as a float32 [N, C, D, H, W] array with C the model's in_channels (taken
        from x if they are to be inferred); ValueError naming the shape expected."""
        a = np.asarray(x)
        if self._infer_channels and a.ndim == 5:
            self._see_channels(a.shape[1])
        c = self.options["in_channels"]
        a = _as_batch(a, c)
        if a.shape[1] != c:
            raise ValueError(f"expected an array [N, {c}, D, H, W] (the model takes {c} "
                             f"channels), got shape {a.shape}")
        return a

    def save(self, path):
        """Writes a checkpoint (safetensors, MONAI names, optimiser state), atomically."""
        check(_save(self.handle, os.fsencode(os.fspath(path))))

    def _raw_options(self):
        o = _Options()
        o.struct_size = ctypes.sizeof(_Options)
        check(_get_options(self.handle, ctypes.byref(o)))
        return o

    @property
    def options(self):
        """The model's options as a dict (enums as names, seed the one in use)."""
        o = self._raw_options()
        out = {}
        for name in _OPTION_NAMES:
            v = getattr(o, name)
            if name == "crop_size":
                v = tuple(v)
            elif name == "checkpoint_path":
                v = os.fsdecode(v) if v else None
            elif name in _NAMES:
                v = _NAMES[name].get(v, v)
            out[name] = v
        return out

    def set_options(self, **options):
        """Changes training options (iterations, lr, loss weights, checkpointing, ...);
        the architecture (embed_dim, in_channels, rotation_input, feature) cannot change."""
        o = self._raw_options()
        o.on_step = _STEP_FN()
        o.on_step_user_data = None
        keep = _apply(o, options, [])
        check(_set_options(self.handle, ctypes.byref(o)))
        self._keep = keep

    @property
    def data_options(self):
        """The data options the model was trained with, as recorded in it and its
        checkpoints: a dict of the known ones among "modality" ("ct", "mri", "none"),
        "channel" (an index, "all" or "none"), "spacing" (3 floats in mm, 0 = native) and
        "intensity" (statistics of the normalised training crops: crops, voxels, mean,
        std, min, max). Empty for a new model or an older checkpoint."""
        o = _LoadOptions()
        o.struct_size = ctypes.sizeof(_LoadOptions)
        known = ctypes.c_int()
        check(_data_options(self.handle, ctypes.byref(o), ctypes.byref(known)))
        out = {}
        if known.value & _KNOWN_MODALITY:
            out["modality"] = _DATA_MODALITIES[o.modality]
        if known.value & _KNOWN_CHANNEL:
            out["channel"] = ("all" if o.channel == CHANNEL_ALL else
                              "none" if o.channel == CHANNEL_NONE else o.channel)
        if known.value & _KNOWN_SPACING:
            out["spacing"] = tuple(o.spacing)
        st = _IntensityStats()
        st.struct_size = ctypes.sizeof(_IntensityStats)
        check(_intensity_stats(self.handle, ctypes.byref(st)))
        if st.crops:
            out["intensity"] = {k: getattr(st, k) for k, _ in _IntensityStats._fields_[1:]}
        return out

    def set_data_options(self, modality, channel=None, spacing=None):
        """Records data options ("ct", "mri" or "none"; channel; spacing) in the model, e.g.
        for one trained with train_step() on crops prepared by the caller."""
        if modality is None or str(modality).lower() == "auto":
            raise ValueError("modality must be 'ct', 'mri' or 'none'")
        o = _load_options(channel, modality, spacing)
        check(_set_data_options(self.handle, ctypes.byref(o)))

    def _run_load_options(self, modality, channel, spacing):
        """The load options of train() and score_dataset(): None when none is given (the library resolves
        them), else those given over the recorded ones (modality None: "auto")."""
        if modality is None and channel is None and spacing is None:
            return None
        rec = self.data_options
        if channel is None:
            channel = rec.get("channel")
        if spacing is None:
            spacing = rec.get("spacing")
        return _load_options(channel, modality, spacing)

    @property
    def step(self):
        """Training steps done so far."""
        v = ctypes.c_int64()
        check(_step(self.handle, ctypes.byref(v)))
        return v.value

    @property
    def parameter_count(self):
        """Number of model parameters (18,703,463 at embed_dim 48 with one channel)."""
        v = ctypes.c_int64()
        check(_param_count(self.handle, ctypes.byref(v)))
        return v.value

    @property
    def feature_dim(self):
        """The width of a feature (16C/3 reduced, or 16C)."""
        v = ctypes.c_int64()
        check(_feature_dim(self.handle, ctypes.byref(v)))
        return v.value

    @property
    def last_losses(self):
        """Losses of the last training step (raises csal3d.StateError before any)."""
        l = _Losses()
        l.struct_size = ctypes.sizeof(_Losses)
        check(_last_losses(self.handle, ctypes.byref(l)))
        return _losses(l)

    def train_step(self, crops):
        """One training step on crops [B, C, D, H, W] (float32, sides multiples of 32);
        returns its Losses."""
        x = self._batch(crops)
        l = _Losses()
        l.struct_size = ctypes.sizeof(_Losses)
        check(_train_step(self.handle, x.ctypes.data_as(_c_float_p), x.shape[0],
                          _i64x3(x.shape[2:]), ctypes.byref(l)))
        return _losses(l)

    def train(self, dataset, modality=None, channel=None, spacing=None, on_step=None,
              **options):
        """Trains from the current step to `iterations` over a csal3d.Dataset.

        modality/channel/spacing say how cases are loaded (as Volume.load). Left out, they
        are the model's recorded ones (data_options: a resumed run keeps its spacing), else
        the dataset's: the modality its dataset.json states, native spacing. A modality
        other than the recorded one raises csal3d.InvalidArgumentError; other spacing or
        channel is used with a warning in the context's log. on_step(losses, iterations)
        is called after each step and may return True to stop (then
        csal3d.CancelledError is raised; the steps done are kept). Extra keyword arguments
        change options first (as set_options). A model made with in_channels=None takes
        its input channels from the dataset's first case (see the class docstring)."""
        if options:
            self.set_options(**options)
        if self._infer_channels and len(dataset):
            # As `csal3d pretrain`: the first case, loaded with the run's channel option.
            ch = channel if channel is not None else self.data_options.get("channel")
            first = dataset[0].load_image(channel=ch, modality="none")
            try:
                self._see_channels(first.shape[0])
            finally:
                first.close()
        o = self._raw_options()
        errors = []

        def cb(_user, losses, iterations):
            try:
                return int(bool(on_step(_losses(losses.contents), iterations)))
            except BaseException as e:  # noqa: BLE001 - re-raised after the C call
                errors.append(e)
                return 1

        fn = _STEP_FN(cb) if on_step else _STEP_FN()
        o.on_step = fn
        o.on_step_user_data = None
        lo = self._run_load_options(modality, channel, spacing)
        check(_set_options(self.handle, ctypes.byref(o)))
        try:
            status = _train(self.handle, dataset.handle,
                            ctypes.byref(lo) if lo is not None else None)
        finally:
            o.on_step = _STEP_FN()
            _set_options(self.handle, ctypes.byref(o))
        if errors:
            raise errors[0]
        check(status)

    def encode(self, x):
        """Features of crops [N, C, D, H, W]: an array [N, feature_dim]."""
        a = self._batch(x)
        out = np.empty((a.shape[0], self.feature_dim), dtype=np.float32)
        check(_encode(self.handle, a.ctypes.data_as(_c_float_p), a.shape[0],
                      _i64x3(a.shape[2:]), out.ctypes.data_as(_c_float_p), out.size))
        return out

    def encode_volume(self, volume, window=None, stride=None):
        """The feature of a whole csal3d.Volume (mean over sliding windows; window
        default the crop size, stride default half the window)."""
        if self._infer_channels:
            self._see_channels(volume.shape[0])
        out = np.empty(self.feature_dim, dtype=np.float32)
        check(_encode_volume(self.handle, volume.handle,
                             _i64x3(window, "window") if window is not None else None,
                             _i64x3(stride, "stride") if stride is not None else None,
                             out.ctypes.data_as(_c_float_p), out.size))
        return out

    def reconstruct(self, x, logits=False):
        """Reconstructions of inputs [N, C, D, H, W] (no masking); with logits=True also
        the rotation logits [N, 4]."""
        a = self._batch(x)
        out = np.empty_like(a)
        lg = np.empty((a.shape[0], 4), dtype=np.float32) if logits else None
        check(_reconstruct(self.handle, a.ctypes.data_as(_c_float_p), a.shape[0],
                           _i64x3(a.shape[2:]), out.ctypes.data_as(_c_float_p), out.size,
                           lg.ctypes.data_as(_c_float_p) if logits else None))
        return (out, lg) if logits else out

    def __repr__(self):
        if self.closed:
            return "<csal3d.SSLModel closed>"
        o = self.options
        return (f"<csal3d.SSLModel embed_dim {o['embed_dim']}, {self.parameter_count} "
                f"parameters, step {self.step}/{o['iterations']}>")
