"""The pipeline's files: csal3d.Scores (the scores file), write_manifest, export_nnunet,
write_selection (both as one transaction, as `csal3d select` writes them) and score_dataset (a dataset scored with a model: the library call that `csal3d score` makes).

    scores = csal3d.score_dataset(model, dataset, modality="mri", window=(32, 64, 32))
    scores.save("scores.safetensors")                # what `csal3d select` reads
    scores = csal3d.Scores.load("scores.safetensors")
    picks = csal3d.select(scores.features, scores.scores, budget=10)
    csal3d.write_manifest(scores, picks, csv="selection.csv", json="selection.json")
    csal3d.export_nnunet(scores, picks, "nnUNet_raw/Dataset501_Hippocampus")

The scores file format is described in include/csal3d/manifest.h and docs/guide.md.
"""

import ctypes
import json as _json
import os

import numpy as np

from ._native import Owned, check, choice, declare, integer, lib
from .sampling import RULES, Picks, Selection, _Record, _strategy_code
from .uncertainty import Uncertainty
from .volume import _LoadOptions

_P = ctypes.POINTER
_vp = ctypes.c_void_p
_c_float_p = _P(ctypes.c_float)
_sz = ctypes.c_size_t


class _ManifestOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("strategy", ctypes.c_int),
                ("n_cand", ctypes.c_int),
                ("seed", ctypes.c_uint64),
                ("scores_path", ctypes.c_char_p),
                ("assignment", _P(ctypes.c_int64))]


class _NnunetOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("dataset_name", ctypes.c_char_p),
                ("channel_names", ctypes.c_char_p),
                ("label_names", ctypes.c_char_p),
                ("source_dataset", ctypes.c_char_p),
                ("labels", ctypes.c_int),
                ("overwrite", ctypes.c_int)]


class _SelectionOutputs(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("csv_path", ctypes.c_char_p),
                ("json_path", ctypes.c_char_p),
                ("nnunet_folder", ctypes.c_char_p),
                ("overwrite", ctypes.c_int),
                ("inputs", _P(ctypes.c_char_p)),
                ("n_inputs", ctypes.c_size_t),
                ("check_only", ctypes.c_int)]


NNUNET_LABELS = {"auto": 0, "none": 1, "require": 2}

_CASE_FN = ctypes.CFUNCTYPE(ctypes.c_int, _vp, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int,
                            ctypes.c_double, ctypes.c_int, ctypes.c_char_p)

_create = declare("csal3d_scores_create", [ctypes.c_int64, ctypes.c_int64, _P(_vp)])
_size = declare("csal3d_scores_size", [_vp, _P(ctypes.c_int64), _P(ctypes.c_int64)])
_set_case = declare("csal3d_scores_set_case",
                    [_vp, ctypes.c_int64, ctypes.c_char_p, _P(ctypes.c_char_p), ctypes.c_int,
                     ctypes.c_char_p, ctypes.c_float, _c_float_p])
_set_case_ds = declare("csal3d_scores_set_case_from_dataset",
                       [_vp, ctypes.c_int64, _vp, _sz, ctypes.c_float, _c_float_p])
_set_case_map = declare("csal3d_scores_set_case_map", [_vp, ctypes.c_int64, ctypes.c_char_p])
_case_string = declare("csal3d_scores_case_string",
                       [_vp, ctypes.c_int64, ctypes.c_char_p, ctypes.c_char_p, _sz, _P(_sz)])
_case_info = declare("csal3d_scores_case_info",
                     [_vp, ctypes.c_int64, _P(ctypes.c_int), _P(ctypes.c_int)])
_copy_scores = declare("csal3d_scores_copy_scores", [_vp, _c_float_p, _sz, _P(_sz)])
_copy_features = declare("csal3d_scores_copy_features", [_vp, _c_float_p, _sz, _P(_sz)])
_set_meta = declare("csal3d_scores_set_metadata", [_vp, ctypes.c_char_p, ctypes.c_char_p])
_meta_json = declare("csal3d_scores_metadata_json", [_vp, ctypes.c_char_p, _sz, _P(_sz)])
_save = declare("csal3d_scores_save", [_vp, ctypes.c_char_p])
_load = declare("csal3d_scores_load", [ctypes.c_char_p, _P(_vp)])
_manifest_init = declare("csal3d_manifest_options_init", [_P(_ManifestOptions)])
_manifest_write = declare("csal3d_manifest_write",
                          [_vp, _P(_Record), _sz, ctypes.c_int64, _P(_ManifestOptions),
                           ctypes.c_char_p, ctypes.c_char_p])
_nnunet_init = declare("csal3d_nnunet_options_init", [_P(_NnunetOptions)])
_nnunet_export = declare("csal3d_nnunet_export",
                         [_vp, _P(ctypes.c_int64), ctypes.c_int64, ctypes.c_char_p,
                          _P(_NnunetOptions), _vp])
_outputs_init = declare("csal3d_selection_outputs_init", [_P(_SelectionOutputs)])
_selection_write = declare("csal3d_selection_write",
                           [_vp, _P(_Record), _sz, ctypes.c_int64, _P(_SelectionOutputs),
                            _P(_ManifestOptions), _P(_NnunetOptions), _vp])
lib.csal3d_scores_free.restype = None
lib.csal3d_scores_free.argtypes = [_vp]


def _b(p):
    return os.fsencode(os.fspath(p)) if p is not None else None


class Scores(Owned):
    """Features, uncertainty scores and file paths of N scored cases.

    Scores(n, d) makes an empty table (fill every case with set_case); Scores.load(path)
    reads a scores file (every field validated, checksum verified: raises
    csal3d.FormatError, ChecksumError, NumericalError, IOError_). After loading:
    `ids`, `image_paths`, `label_paths`, `map_paths` (lists), `scores` (float32 [N]),
    `features` (float32 [N, d]), `metadata` (dict of str).
    """

    _FREE = "csal3d_scores_free"
    _WHAT = "the scores table"

    def __init__(self, n, d, _handle=None):
        if _handle is None:
            _handle = _vp()
            check(_create(integer("n", n, 0), integer("d", d, 0), ctypes.byref(_handle)))
        self._handle = _handle

    @classmethod
    def load(cls, path):
        """Reads and validates a scores file (checksum included); raises on any defect."""
        h = _vp()
        check(_load(_b(path), ctypes.byref(h)))
        return cls(0, 0, _handle=h)

    @property
    def shape(self):
        """(N, d)."""
        n, d = ctypes.c_int64(), ctypes.c_int64()
        check(_size(self.handle, ctypes.byref(n), ctypes.byref(d)))
        return n.value, d.value

    def __len__(self):
        return self.shape[0]

    def set_case(self, index, id, images, score, feature, label=None):
        """Sets case `index`: its id, image path(s) (a path or a list, one per channel
        file), score, feature (d floats) and optional label path. Relative paths are made
        absolute."""
        if isinstance(images, (str, bytes, os.PathLike)):
            images = [images]
        enc = [_b(p) for p in images]
        arr = (ctypes.c_char_p * len(enc))(*enc)
        f = self._feature(feature)
        check(_set_case(self.handle, integer("index", index), id.encode(), arr, len(enc), _b(label),
                        float(score), f.ctypes.data_as(_c_float_p)))

    def _feature(self, feature):
        d = self.shape[1]
        f = np.asarray(feature, dtype=np.float32)
        if f.shape != (d,):
            raise ValueError(f"the feature must be {d} values, shape ({d},), not shape "
                             f"{f.shape}")
        return np.ascontiguousarray(f)

    def set_case_from_dataset(self, index, dataset, case_index, score, feature):
        """Sets case `index` from case `case_index` of a csal3d.Dataset (id and paths)."""
        f = self._feature(feature)
        check(_set_case_ds(self.handle, integer("index", index), dataset.handle,
                           integer("case_index", case_index, 0),
                           float(score), f.ctypes.data_as(_c_float_p)))

    def set_case_map(self, index, path):
        """Records case `index`'s uncertainty map path (None clears it)."""
        check(_set_case_map(self.handle, integer("index", index), _b(path)))

    def case_string(self, index, what):
        """"id", "image", "image:N", "label" or "map" of case `index` ("" when none)."""
        index, need = integer("index", index), _sz()
        check(_case_string(self.handle, index, what.encode(), None, 0, ctypes.byref(need)))
        buf = ctypes.create_string_buffer(need.value)
        check(_case_string(self.handle, index, what.encode(), buf, need.value, None))
        return os.fsdecode(buf.value)

    def case_images(self, index):
        """The image paths of case `index` (one per channel file)."""
        files = ctypes.c_int()
        check(_case_info(self.handle, integer("index", index), ctypes.byref(files), None))
        return [self.case_string(index, f"image:{k}") for k in range(files.value)]

    @property
    def ids(self):
        """The case identifiers, in the table's order."""
        return [self.case_string(i, "id") for i in range(len(self))]

    @property
    def image_paths(self):
        """The first image file of each case."""
        return [self.case_string(i, "image") for i in range(len(self))]

    @property
    def label_paths(self):
        """The label file of each case, or None where the case has none."""
        return [self.case_string(i, "label") or None for i in range(len(self))]

    @property
    def map_paths(self):
        """The uncertainty map written for each case, or None where none was written."""
        return [self.case_string(i, "map") or None for i in range(len(self))]

    @property
    def scores(self):
        """float32 array [N] (larger = more uncertain)."""
        out = np.empty(len(self), dtype=np.float32)
        check(_copy_scores(self.handle, out.ctypes.data_as(_c_float_p), out.size, None))
        return out

    @property
    def features(self):
        """float32 array [N, d]."""
        out = np.empty(self.shape, dtype=np.float32)
        check(_copy_features(self.handle, out.ctypes.data_as(_c_float_p), out.size, None))
        return out

    @property
    def metadata(self):
        """The metadata strings as a dict (in the order they were set)."""
        need = _sz()
        check(_meta_json(self.handle, None, 0, ctypes.byref(need)))
        buf = ctypes.create_string_buffer(need.value)
        check(_meta_json(self.handle, buf, need.value, None))
        return _json.loads(buf.value.decode("utf-8"))

    def set_metadata(self, key, value):
        """Sets (value a str) or removes (value None) a metadata string."""
        check(_set_meta(self.handle, key.encode(), value.encode() if value is not None else None))

    def save(self, path):
        """Writes the scores file (safetensors), atomically."""
        check(_save(self.handle, _b(path)))

    def __repr__(self):
        if self.closed:
            return "<csal3d.Scores closed>"
        n, d = self.shape
        return f"<csal3d.Scores {n} cases, features of {d}>"


def _records(selection):
    recs = (_Record * len(selection))()
    for r, s in zip(recs, selection):
        if isinstance(s, Selection):
            rule = RULES.index(s.rule) if s.rule in RULES else 0
            r.index, r.cluster, r.cluster_size = s.index, s.cluster, s.cluster_size
            r.typicality, r.score, r.rule = s.typicality, s.score, rule
        else:  # a bare index
            r.index, r.cluster, r.cluster_size = integer("a selected index", s), -1, 0
            r.typicality, r.score, r.rule = float("nan"), float("nan"), 0
    return recs


_MANIFEST_DEFAULTS = {"strategy": "urds", "n_cand": 3, "seed": 0, "assignment": None}


def _provenance(selection, given):
    """strategy, n_cand, seed, assignment for the manifest: those the selection carries
    (Picks), else those given, else the defaults; ValueError where a given one contradicts
    the selection's."""
    out = {}
    for key, default in _MANIFEST_DEFAULTS.items():
        mine = getattr(selection, key, None) if isinstance(selection, Picks) else None
        value = given[key]
        if mine is not None and value is not None:
            if key == "strategy":
                same = _strategy_code(value) == _strategy_code(mine)
            elif key == "assignment":
                same = np.array_equal(np.asarray(value), mine)
            else:
                same = integer(key, value) == mine
            if not same:
                shown = "another" if key == "assignment" else repr(value)
                raise ValueError(f"write_manifest: the selection was made with {key} "
                                 f"{'its own' if key == 'assignment' else repr(mine)}, not "
                                 f"{shown}; leave {key} out to record the selection's")
        out[key] = mine if mine is not None else value if value is not None else default
    return out


def _manifest_options(scores, selection, strategy, n_cand, seed, scores_path, assignment):
    """The C manifest options and the objects that must outlive them."""
    prov = _provenance(selection, {"strategy": strategy, "n_cand": n_cand, "seed": seed,
                                   "assignment": assignment})
    o = _ManifestOptions()
    check(_manifest_init(ctypes.byref(o)))
    o.strategy = _strategy_code(prov["strategy"])
    o.n_cand = integer("n_cand", prov["n_cand"])
    o.seed = integer("seed", prov["seed"], 0)
    sp = _b(scores_path)
    o.scores_path = sp
    keep = [sp]
    if prov["assignment"] is not None:
        a = np.ascontiguousarray(prov["assignment"], dtype=np.int64)
        if a.shape != (len(scores),):
            raise ValueError(f"assignment needs {len(scores)} entries (shape "
                             f"({len(scores)},)), not shape {a.shape}")
        o.assignment = a.ctypes.data_as(_P(ctypes.c_int64))
        keep.append(a)
    return o, keep


def write_manifest(scores, selection, csv=None, json=None, strategy=None, n_cand=None,
                   seed=None, scores_path=None, assignment=None):
    """Writes the manifest of a selection as CSV and/or JSON, atomically (both or
    neither); see docs/guide.md for the columns. Existing files are replaced: use
    write_selection for the checks before work (no input replaced, overwrite=).

    selection: what csal3d.select or Sampler.select returned (Picks), or a list of
    csal3d.Selection or of case indices. Picks carry their strategy, seed, n_cand and
    cluster assignment (written to the JSON's "clusters"), and those are recorded; for a
    plain list give them here (defaults: strategy "urds", n_cand 3, seed 0, no
    assignment). A value given here that contradicts the selection's raises ValueError."""
    if csv is None and json is None:
        raise ValueError("give csv= and/or json=")
    o, _keep = _manifest_options(scores, selection, strategy, n_cand, seed, scores_path,
                                 assignment)
    recs = _records(selection)
    check(_manifest_write(scores.handle, recs, ctypes.sizeof(_Record), len(recs), ctypes.byref(o),
                          _b(csv), _b(json)))


def _nnunet_options(dataset_name, channel_names, label_names, source_dataset, labels,
                    overwrite):
    """The C nnU-Net options and the objects that must outlive them."""
    o = _NnunetOptions()
    check(_nnunet_init(ctypes.byref(o)))

    def names(v):
        if v is None:
            return None
        return (v if isinstance(v, str) else ",".join(v)).encode()

    keep = [dataset_name.encode() if dataset_name else None, names(channel_names),
            names(label_names), _b(source_dataset)]
    o.dataset_name, o.channel_names, o.label_names, o.source_dataset = keep
    o.labels = choice("labels", labels, NNUNET_LABELS)
    o.overwrite = int(bool(overwrite))
    return o, keep


def export_nnunet(scores, selection, folder, dataset_name=None, channel_names=None,
                  label_names=None, source_dataset=None, labels="auto", overwrite=False,
                  context=None):
    """Writes an nnU-Net v2 raw dataset folder of the chosen cases (Selection records or
    indices): imagesTr/CASE_0000.nii.gz, labelsTr/ (labels="auto": the labels that exist,
    cases without one named in a warning and in dataset.json; "none"; "require": every
    chosen case must have one, else FormatError) and dataset.json. The folder must be
    named DatasetNNN_Name (e.g. Dataset501_Hippocampus). Names are lists or
    comma-separated strings; by default they come from the source dataset.json. The folder
    appears whole or not at all; an existing one needs overwrite=True."""
    idx = np.ascontiguousarray([s.index if isinstance(s, Selection)
                                else integer("a selected index", s)
                                for s in selection], dtype=np.int64)
    o, _keep = _nnunet_options(dataset_name, channel_names, label_names, source_dataset,
                               labels, overwrite)
    check(_nnunet_export(scores.handle, idx.ctypes.data_as(_P(ctypes.c_int64)), idx.size,
                         _b(folder), ctypes.byref(o),
                         context.handle if context is not None else None))


def write_selection(scores, selection, csv=None, json=None, nnunet=None, overwrite=False,
                    inputs=(), strategy=None, n_cand=None, seed=None, scores_path=None,
                    assignment=None, dataset_name=None, channel_names=None, label_names=None,
                    source_dataset=None, labels="auto", context=None):
    """Writes every output of a selection as one transaction, as `csal3d select` does:
    the CSV and JSON manifests (as write_manifest) and the nnU-Net folder (as
    export_nnunet) appear together, or none of them changes. Every output is checked first
    (existing ones need overwrite=True; none may be, or hold, a case's image, label or
    map, scores_path or a path of `inputs`; the manifests lie outside the nnU-Net folder);
    then all are built under temporary names and renamed into place, and a failure or a
    cancellation (context's progress) puts everything back as it was."""
    if csv is None and json is None and nnunet is None:
        raise ValueError("give csv=, json= and/or nnunet=")
    mo, keep_m = _manifest_options(scores, selection, strategy, n_cand, seed, scores_path,
                                   assignment)
    no, keep_n = _nnunet_options(dataset_name, channel_names, label_names, source_dataset,
                                 labels, overwrite)
    ins = [_b(p) for p in inputs]
    arr = (ctypes.c_char_p * max(len(ins), 1))(*ins)
    out = _SelectionOutputs()
    check(_outputs_init(ctypes.byref(out)))
    paths = [_b(csv), _b(json), _b(nnunet)]
    out.csv_path, out.json_path, out.nnunet_folder = paths
    out.overwrite = int(bool(overwrite))
    out.inputs = ctypes.cast(arr, _P(ctypes.c_char_p)) if ins else None
    out.n_inputs = len(ins)
    recs = _records(selection)
    _alive = (keep_m, keep_n, paths, arr)  # noqa: F841 (what the C structs point into)
    check(_selection_write(scores.handle, recs, ctypes.sizeof(_Record), len(recs),
                           ctypes.byref(out), ctypes.byref(mo), ctypes.byref(no),
                           context.handle if context is not None else None))


class _ScoreOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("load", _P(_LoadOptions)),
                ("cases", _P(ctypes.c_size_t)),
                ("case_count", ctypes.c_size_t),
                ("output", ctypes.c_char_p),
                ("maps_dir", ctypes.c_char_p),
                ("overwrite", ctypes.c_int),
                ("resume", ctypes.c_int),
                ("on_error", ctypes.c_int),
                ("on_case", _CASE_FN),
                ("on_case_user_data", _vp),
                ("shard_count", ctypes.c_size_t),
                ("shard_index", ctypes.c_size_t)]


ON_ERROR = {"stop": 0, "skip": 1}

_score_init = declare("csal3d_score_options_init", [_P(_ScoreOptions)])
_score_dataset = declare("csal3d_score_dataset", [_vp, _vp, _P(_ScoreOptions), _P(_vp)])
_case_key = declare("csal3d_case_key", [ctypes.c_char_p, _P(ctypes.c_uint64)])


def case_key(case_id):
    """The 64-bit key that keys a case's random draws (pass it as Uncertainty.score's
    volume_id to score one volume exactly as score_dataset does)."""
    k = ctypes.c_uint64()
    check(_case_key(case_id.encode(), ctypes.byref(k)))
    return k.value


def score_dataset(model, dataset, modality=None, channel=None, spacing=None, window=None,
                  stride=None, foreground=None, feature="default", seed=None, maps_dir=None,
                  progress=None, output=None, cases=None, overwrite=False, resume=True,
                  on_error="stop", dataset_path=None, shard_index=0, shard_count=0):
    """Scores the cases of a csal3d.Dataset with a csal3d.SSLModel through the library's
    csal3d_score_dataset (the same call as `csal3d score`) and returns a Scores table.

    modality/channel/spacing: how cases are loaded; left out, as the model was trained
    (its data_options), else the dataset's (the dataset.json's modality, native spacing);
    a modality that contradicts the model's raises csal3d.InvalidArgumentError. window (default: the model's crop size),
    stride (default: half the window), foreground, feature, seed: as csal3d.Uncertainty.
    maps_dir: also save each case's uncertainty map there as CASE_uncertainty.nii.gz.
    output: also write the scores file there (resumable: an interrupted run leaves
    OUTPUT.partial and the next run with the same settings continues from it).
    cases: dataset indices to score (default all). overwrite: replace existing outputs.
    on_error: "stop" (default) or "skip" (failed cases are left out and listed in the
    metadata "skipped_cases"). progress(i, n, case_id, score) is called after each case
    (score None for a skipped case); returning True stops (csal3d.CancelledError).
    dataset_path is ignored (the dataset knows where it was opened from).
    shard_count N >= 2 scores only shard shard_index (0-based) of N: the cases at
    positions shard_index, shard_index + N, ... of the case list (job arrays);
    merge_scores() joins the N shard files into the file one run would write."""
    crop = model.options["crop_size"]
    win = window if window is not None else crop
    u = Uncertainty(model, window=win, stride=stride, foreground=foreground, feature=feature,
                    keep_map=maps_dir is not None, seed=seed)
    o = _ScoreOptions()
    check(_score_init(ctypes.byref(o)))
    keep = []
    lo = model._run_load_options(modality, channel, spacing)
    if lo is not None:
        keep.append(lo)
        o.load = ctypes.pointer(lo)
    n = len(dataset)
    if cases is not None:
        idx = (ctypes.c_size_t * len(cases))(*[integer("cases", c, 0) for c in cases])
        keep.append(idx)
        o.cases = ctypes.cast(idx, _P(ctypes.c_size_t))
        o.case_count = len(cases)
        n = len(cases)
    o.output = _b(output)
    o.maps_dir = _b(maps_dir)
    o.overwrite = int(bool(overwrite))
    o.resume = int(bool(resume))
    o.on_error = choice("on_error", on_error, ON_ERROR)
    o.shard_count = integer("shard_count", shard_count, 0)
    o.shard_index = integer("shard_index", shard_index, 0)
    if o.shard_count > 1:
        n = len(range(o.shard_index, n, o.shard_count))
    state = {"done": 0, "error": None}

    def on_case(_user, _index, case_id, status, score, _reused, _message):
        state["done"] += 1
        try:
            stop = progress(state["done"], n, case_id.decode(), score if status == 0 else None)
            return 1 if stop else 0
        except BaseException as e:  # noqa: BLE001 - re-raised after the call
            state["error"] = e
            return 1

    if progress is not None:
        cb = _CASE_FN(on_case)
        keep.append(cb)
        o.on_case = cb
    h = _vp()
    try:
        status = _score_dataset(u.handle, dataset.handle, ctypes.byref(o), ctypes.byref(h))
        if state["error"] is not None:
            raise state["error"]
        check(status)
    finally:
        u.close()
    return Scores(0, 0, _handle=h)


_merge = declare("csal3d_scores_merge", [_P(_vp), _P(ctypes.c_char_p), ctypes.c_size_t, _P(_vp)])
_merge_files = declare("csal3d_scores_merge_files",
                       [_P(ctypes.c_char_p), ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int,
                        _P(_vp)])


def merge_scores(shards, output=None, overwrite=False):
    """Joins the shards of one sharded scoring run (score_dataset(shard_count=N) or
    `csal3d score --shard I/N`) into the Scores table one run would have made; with
    output, also writes it (bitwise equal to the single run's file). shards: the shard
    files' paths or Scores tables, in any order. Missing or repeated shards and shards
    made with other settings raise csal3d.InvalidArgumentError naming them."""
    shards = list(shards)
    if not shards:
        raise ValueError("merge_scores: no shards")
    h = _vp()
    if all(isinstance(s, (str, bytes)) for s in shards) and output is not None:
        paths = (ctypes.c_char_p * len(shards))(*[_b(s) for s in shards])
        check(_merge_files(paths, len(shards), _b(output), int(bool(overwrite)),
                           ctypes.byref(h)))
        return Scores(0, 0, _handle=h)
    tables = [Scores.load(s) if isinstance(s, (str, bytes)) else s for s in shards]
    names = [_b(s) if isinstance(s, (str, bytes)) else None for s in shards]
    handles = (_vp * len(tables))(*[t.handle for t in tables])
    cnames = (ctypes.c_char_p * len(tables))(*names)
    check(_merge(handles, cnames, len(tables), ctypes.byref(h)))
    merged = Scores(0, 0, _handle=h)
    if output is not None:
        if not overwrite and os.path.exists(output):
            raise FileExistsError(output)
        merged.save(output)
    return merged
