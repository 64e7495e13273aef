"""csal3d.Uncertainty: the ensemble uncertainty of a volume (CSAL-3D Eq. 5-8).

    u = csal3d.Uncertainty(model, window=(64, 64, 32), stride=(32, 32, 16))
    score, feature = u.score(volume, volume_id=csal3d.case_key("case_001"))  # both at once
    u.save_map("case_uncertainty.nii.gz")             # on the input file's grid

In each sliding window, 9 masked, rotated views are reconstructed by the model and
brought back; the voxel variance of the 9, averaged over the windows covering a voxel, is
the map U; the score is the mean of U over the volume (or a foreground). The feature is
the mean encoder feature of the clean windows (the same as SSLModel.encode_volume).
"""

import ctypes
import os

import numpy as np

from ._native import Owned, check, choice, declare, integer, lib, three_ints
from .ssl import FEATURES
from .volume import Volume

_P = ctypes.POINTER
_vp = ctypes.c_void_p
_c_float_p = _P(ctypes.c_float)

FOREGROUND = {"none": 0, "threshold": 1, "mask": 2}


class _Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("window", ctypes.c_int64 * 3),
                ("stride", ctypes.c_int64 * 3),
                ("foreground", ctypes.c_int),
                ("foreground_threshold", ctypes.c_double),
                ("feature", ctypes.c_int),
                ("keep_map", ctypes.c_int),
                ("use_seed", ctypes.c_int),
                ("seed", ctypes.c_uint64)]


_options_init = declare("csal3d_uncertainty_options_init", [_P(_Options)])
_create = declare("csal3d_uncertainty_create", [_vp, _P(_Options), _P(_vp)])
_feature_dim = declare("csal3d_uncertainty_feature_dim", [_vp, _P(ctypes.c_int64)])
_score = declare("csal3d_uncertainty_score",
                 [_vp, _vp, _vp, ctypes.c_uint64, _P(ctypes.c_double), _c_float_p,
                  ctypes.c_size_t])
_map = declare("csal3d_uncertainty_map", [_vp, _P(_vp)])
_save_map = declare("csal3d_uncertainty_save_map", [_vp, ctypes.c_char_p])
lib.csal3d_uncertainty_free.restype = None
lib.csal3d_uncertainty_free.argtypes = [_vp]


class Uncertainty(Owned):
    """An uncertainty estimator bound to a csal3d.SSLModel, which it keeps alive (see the
    package docstring: it works on after the model's close()).

    Uncertainty(model, window=128, stride=None, foreground=None, feature="default",
                keep_map=True, seed=None)

    window/stride: one size or (D, H, W); windows are multiples of 32, stride defaults to
    half the window. foreground: None (every voxel), a number (voxels whose value exceeds
    it) or "mask" (pass mask= to score()). feature: "default" (the model's), "reduced",
    "full" or "none". seed: None uses the model's seed.
    """

    _FREE = "csal3d_uncertainty_free"
    _WHAT = "the estimator"

    def __init__(self, model, window=128, stride=None, foreground=None, feature="default",
                 keep_map=True, seed=None):
        o = _Options()
        check(_options_init(ctypes.byref(o)))
        w = three_ints("window", window)
        o.window[:] = w
        o.stride[:] = (three_ints("stride", stride) if stride is not None
                       else [max(1, x // 2) for x in w])
        if foreground is None:
            o.foreground = FOREGROUND["none"]
        elif isinstance(foreground, str):
            if foreground != "mask":
                raise ValueError("foreground must be None, a threshold or 'mask'")
            o.foreground = FOREGROUND["mask"]
        else:
            o.foreground = FOREGROUND["threshold"]
            o.foreground_threshold = float(foreground)
        o.feature = choice("feature", feature, FEATURES)
        o.keep_map = int(bool(keep_map))
        if seed is not None:
            o.use_seed, o.seed = 1, integer("seed", seed, 0)
        self._model = model
        h = _vp()
        check(_create(model.handle, ctypes.byref(o), ctypes.byref(h)))
        self._handle = h
        self._hold(model)
        self.window = tuple(o.window)
        self.stride = tuple(o.stride)

    @property
    def feature_dim(self):
        """The width of the features score() returns (0 with feature="none")."""
        v = ctypes.c_int64()
        check(_feature_dim(self.handle, ctypes.byref(v)))
        return v.value

    def score(self, volume, mask=None, volume_id=0):
        """(score, feature): the uncertainty score of a preprocessed csal3d.Volume and its
        feature (a float32 array, or None with feature="none"). volume_id keys the random
        masks and rotations: use csal3d.case_key(case_id), as score_dataset does, so that
        a case scores the same whatever the order or size of its dataset."""
        d = self.feature_dim
        feat = np.empty(d, dtype=np.float32) if d else None
        s = ctypes.c_double()
        check(_score(self.handle, volume.handle, mask.handle if mask is not None else None,
                     integer("volume_id", volume_id, 0), ctypes.byref(s),
                     feat.ctypes.data_as(_c_float_p) if d else None, d))
        return s.value, feat

    def map(self):
        """The last scored volume's uncertainty map as a csal3d.Volume on its grid."""
        h = _vp()
        check(_map(self.handle, ctypes.byref(h)))
        return Volume(h)

    def save_map(self, path):
        """Saves the last map as NIfTI on the grid of the file the volume came from."""
        check(_save_map(self.handle, os.fsencode(os.fspath(path))))
