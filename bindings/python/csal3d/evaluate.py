"""Does the selection help? csal3d.evaluate trains the library's 3-D U-Net on a training
selection and returns the Dice of every label on validation cases (csal3d_evaluate, the
call `csal3d evaluate --train` makes); csal3d.compare runs strategies x budgets x
selection seeds from a scores table and returns the table of mean and sd per cell
(csal3d_evaluate_compare, `csal3d evaluate --scores`).

    ds = csal3d.Dataset("msd_hippocampus")
    ev = csal3d.evaluate(ds, "selection.csv", iterations=1000, batch_size=4)
    ev.mean_dice, ev.label_dice, ev.dice          # summary, per label, [cases, labels]
    cells = csal3d.compare(ds, csal3d.Scores.load("scores.safetensors"),
                           budgets=(5, 10, 20), output_csv="results.csv",
                           output_json="results.json", table="table.csv")
    [(c.strategy, c.budget, c.mean, c.sd) for c in cells]

Training options are csal3d_evaluate_options' members as keyword arguments: iterations,
batch_size, patch_size (one side or three; None: the median training shape rounded up),
widths (one per stage; their count is the number of stages), learning_rate,
weight_decay, seed, labels (0: the largest label found), normalization ("auto", "none",
"ct", "zscore"), modality/channel/spacing (how cases load, as Dataset cases), output_csv,
output_json, overwrite, checkpoint, checkpoint_every, per_case, inference_batch.
The network, the training and the files are described in docs/evaluation.md.
"""

import ctypes
import os
from collections import namedtuple

import numpy as np

from ._native import check, choice, declare, integer, lib, three_ints
from .context import Context
from .sampling import STRATEGIES, _Options as _SamplerOptions, _sampler_options, _strategy_code
from .volume import _LoadOptions, _load_options

_P = ctypes.POINTER
_vp = ctypes.c_void_p
_sz = ctypes.c_size_t
MAX_STAGES = 7
NORMALIZATIONS = {"auto": 0, "none": 1, "ct": 2, "zscore": 3}


class _Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("iterations", ctypes.c_int64),
                ("batch_size", ctypes.c_int64),
                ("patch_size", ctypes.c_int64 * 3),
                ("stages", ctypes.c_int),
                ("widths", ctypes.c_int * MAX_STAGES),
                ("learning_rate", ctypes.c_double),
                ("weight_decay", ctypes.c_double),
                ("seed", ctypes.c_uint64),
                ("labels", ctypes.c_int),
                ("load", _P(_LoadOptions)),
                ("output_csv", ctypes.c_char_p),
                ("output_json", ctypes.c_char_p),
                ("overwrite", ctypes.c_int),
                ("checkpoint", ctypes.c_char_p),
                ("checkpoint_every", ctypes.c_int64),
                ("per_case", ctypes.c_int),
                ("inference_batch", ctypes.c_int64),
                ("normalization", ctypes.c_int)]


class _Cell(ctypes.Structure):
    _fields_ = [("strategy", ctypes.c_int),
                ("budget", ctypes.c_int64),
                ("runs", ctypes.c_int64),
                ("mean", ctypes.c_double),
                ("sd", ctypes.c_double),
                ("reused", ctypes.c_int64)]


_options_init = declare("csal3d_evaluate_options_init", [_P(_Options)])
_evaluate = declare("csal3d_evaluate", [_vp, _vp, _P(_sz), _sz, _P(_sz), _sz, _P(_Options),
                                        _P(_vp)])
_size = declare("csal3d_evaluation_size", [_vp, _P(_sz), _P(ctypes.c_int)])
_case = declare("csal3d_evaluation_case", [_vp, _sz, ctypes.c_char_p, _sz,
                                           _P(ctypes.c_double), _P(ctypes.c_double)])
_mean = declare("csal3d_evaluation_mean", [_vp, _P(ctypes.c_double), _P(ctypes.c_double)])
_compare = declare("csal3d_evaluate_compare",
                   [_vp, _vp, _vp, _P(ctypes.c_int), _sz, _P(ctypes.c_int64), _sz,
                    _P(ctypes.c_uint64), _sz, _P(_sz), _sz, _P(_SamplerOptions), _P(_Options),
                    _P(_vp)])
_cells = declare("csal3d_comparison_cells", [_vp, _P(_Cell), _sz, _sz, _P(_sz)])
_write_table = declare("csal3d_comparison_write_table", [_vp, ctypes.c_char_p])
_read_cases = declare("csal3d_evaluate_read_cases", [_vp, ctypes.c_char_p, _P(_P(_sz)),
                                                     _P(_sz)])
for _name in ("csal3d_evaluation_free", "csal3d_comparison_free", "csal3d_evaluate_free_indices"):
    getattr(lib, _name).restype = None
    getattr(lib, _name).argtypes = [_vp]

Evaluation = namedtuple("Evaluation", "case_ids dice case_dice label_dice mean_dice")
Evaluation.__doc__ = """One run's results: the validation case ids (list), dice (float64
[cases, labels]: the Dice of labels 1..L per case, nan where the reference and the
prediction are both empty), case_dice (the mean over each case's defined labels),
label_dice (per label, the mean over the cases where it is defined) and mean_dice
(their mean, nnU-Net's foreground mean)."""

Cell = namedtuple("Cell", "strategy budget runs mean sd reused")
Cell.__doc__ = """A cell of a comparison: a strategy at a budget, its runs (selection
seeds), the mean of their mean Dice, its sample standard deviation, and how many of the
runs were taken from the existing results file (a continued comparison)."""


def _b(p):
    return os.fsencode(os.fspath(p)) if p is not None else None


def read_cases(dataset, path):
    """The dataset indices of the cases a selection file lists (a manifest from
    `csal3d select`, a CSV with a case column, a text file of ids, or a dataset list of
    image paths), in file order."""
    idx, n = _P(_sz)(), _sz()
    check(_read_cases(dataset.handle, _b(path), ctypes.byref(idx), ctypes.byref(n)))
    try:
        return [idx[i] for i in range(n.value)]
    finally:
        lib.csal3d_evaluate_free_indices(idx)


def _indices(dataset, cases, option):
    """Dataset indices from a selection file (str or path-like), or a list of indices or
    case ids; None stays None."""
    if cases is None:
        return None
    if isinstance(cases, (str, bytes, os.PathLike)):
        return read_cases(dataset, cases)
    ids = None
    out = []
    for c in cases:
        if isinstance(c, str):
            if ids is None:
                ids = {dataset._string(i, "id"): i for i in range(len(dataset))}
            if c not in ids:
                raise ValueError(f"{option}: case {c!r} is not in the dataset")
            out.append(ids[c])
        else:
            out.append(integer(option, c, 0))
    return out


def _size_array(values):
    if values is None:
        return None, 0
    return (_sz * len(values))(*values), len(values)


def _options(modality=None, channel=None, spacing=None, iterations=None, batch_size=None,
             patch_size=None, widths=None, learning_rate=None, weight_decay=None, seed=None,
             labels=None, normalization=None, output_csv=None, output_json=None,
             overwrite=False, checkpoint=None, checkpoint_every=None, per_case=True,
             inference_batch=None):
    """(csal3d_evaluate_options, objects to keep alive while it is used)."""
    o = _Options()
    check(_options_init(ctypes.byref(o)))
    keep = []
    if modality is not None or channel is not None or spacing is not None:
        lo = _load_options(channel, modality, spacing)
        keep.append(lo)
        o.load = ctypes.pointer(lo)
    for key, value in (("iterations", iterations), ("batch_size", batch_size),
                       ("labels", labels), ("checkpoint_every", checkpoint_every),
                       ("inference_batch", inference_batch), ("seed", seed)):
        if value is not None:
            setattr(o, key, integer(key, value, 0))
    if patch_size is not None:
        o.patch_size[:] = three_ints("patch_size", patch_size)
    if widths is not None:
        w = [integer("widths", v, 1) for v in widths]
        if not 2 <= len(w) <= MAX_STAGES:
            raise ValueError(f"widths: one per stage, 2 to {MAX_STAGES} stages, not {len(w)}")
        o.stages = len(w)
        o.widths[:len(w)] = w
    if learning_rate is not None:
        o.learning_rate = float(learning_rate)
    if weight_decay is not None:
        o.weight_decay = float(weight_decay)
    if normalization is not None:
        o.normalization = choice("normalization", normalization, NORMALIZATIONS)
    o.output_csv, o.output_json, o.checkpoint = _b(output_csv), _b(output_json), _b(checkpoint)
    o.overwrite = int(bool(overwrite))
    o.per_case = int(bool(per_case))
    return o, keep


def _context(context, threads, progress):
    if context is not None:
        return context, False
    return Context(device="cpu", threads=threads, progress=progress), True


def evaluate(dataset, train, validation=None, context=None, threads=0, progress=None,
             **options):
    """Trains the U-Net on `train` and evaluates it on `validation`; returns an
    Evaluation.

    dataset: a csal3d.Dataset with labels. train, validation: a selection file (path) or
    a list of dataset indices or case ids; validation None: every labelled case not in
    train. context: a csal3d.Context (None: a CPU one with `threads` threads and
    `progress(stage, done, total)`, which may return True to stop: CancelledError, the
    checkpoint saved when one is set). options: see the module docstring.
    """
    tr = _indices(dataset, train, "train")
    va = _indices(dataset, validation, "validation")
    o, keep = _options(**options)
    ctx, own = _context(context, threads, progress)
    tr_a, n_tr = _size_array(tr)
    va_a, n_va = _size_array(va)
    h = _vp()
    try:
        check(_evaluate(ctx.handle, dataset.handle, tr_a, n_tr, va_a, n_va, ctypes.byref(o),
                        ctypes.byref(h)))
    finally:
        del keep  # the load options o points to: kept until the call returns
        if own:
            ctx.close()
    try:
        n, L = _sz(), ctypes.c_int()
        check(_size(h, ctypes.byref(n), ctypes.byref(L)))
        dice = np.empty((n.value, L.value), dtype=np.float64)
        case_mean = np.empty(n.value, dtype=np.float64)
        ids = []
        buf = ctypes.create_string_buffer(4096)
        dp = _P(ctypes.c_double)
        for i in range(n.value):
            cm = ctypes.c_double()
            check(_case(h, i, buf, len(buf), dice[i].ctypes.data_as(dp), ctypes.byref(cm)))
            ids.append(buf.value.decode())
            case_mean[i] = cm.value
        label = np.empty(L.value, dtype=np.float64)
        m = ctypes.c_double()
        check(_mean(h, label.ctypes.data_as(dp), ctypes.byref(m)))
        return Evaluation(ids, dice, case_mean, label, m.value)
    finally:
        lib.csal3d_evaluation_free(h)


def compare(dataset, scores, strategies=("urds", "typiclust", "random"), budgets=(5, 10, 20),
            seeds=(0, 1, 2), validation=None, table=None, context=None, threads=0,
            progress=None, sampler_options=None, **options):
    """Runs every strategy x budget x selection seed from a scores table (its cases, the
    pool, must be cases of `dataset`): each selection trained and evaluated as
    evaluate() does, with the same training options and seed. Returns the list of Cell
    (strategies in the order given, then budgets).

    validation: as in evaluate() (None: every labelled case not in the pool). table: also
    write the table as CSV (strategy,budget,runs,mean_dice,sd_dice). sampler_options: a
    dict of csal3d_sampler_options members (n_cand, kernel, ...); strategy and seed are
    set per run. output_csv/output_json receive every run as it finishes; with
    output_json, an existing results file of the same settings is continued (its runs
    are not trained again: Cell.reused; other settings raise InvalidArgumentError naming
    the difference). Other arguments as evaluate().
    """
    codes = [_strategy_code(s) for s in strategies]
    b = [integer("budgets", v, 1) for v in budgets]
    sd = [integer("seeds", v, 0) for v in seeds]
    if not codes or not b or not sd:
        raise ValueError("compare: give at least one strategy, budget and seed")
    so = _sampler_options(**(sampler_options or {}))
    va = _indices(dataset, validation, "validation")
    o, keep = _options(**options)
    ctx, own = _context(context, threads, progress)
    va_a, n_va = _size_array(va)
    h = _vp()
    try:
        check(_compare(ctx.handle, dataset.handle, scores.handle,
                       (ctypes.c_int * len(codes))(*codes), len(codes),
                       (ctypes.c_int64 * len(b))(*b), len(b),
                       (ctypes.c_uint64 * len(sd))(*sd), len(sd), va_a, n_va,
                       ctypes.byref(so), ctypes.byref(o), ctypes.byref(h)))
    finally:
        del keep  # the load options o points to: kept until the call returns
        if own:
            ctx.close()
    try:
        n = _sz()
        _cells(h, None, ctypes.sizeof(_Cell), 0, ctypes.byref(n))  # the count (too small)
        cells = (_Cell * n.value)()
        check(_cells(h, cells, ctypes.sizeof(_Cell), n.value, ctypes.byref(n)))
        if table is not None:
            check(_write_table(h, _b(table)))
        return [Cell(STRATEGIES[c.strategy], c.budget, c.runs, c.mean, c.sd, c.reused)
                for c in cells]
    finally:
        lib.csal3d_comparison_free(h)
