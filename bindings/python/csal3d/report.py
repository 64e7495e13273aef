"""csal3d.write_report: one self-contained HTML page of a scores table and its selections
(the library call csal3d_report_write, the same as `csal3d report`).

    csal3d.write_report("scores.safetensors", "report.html",
                        selections=["urds/selection.json", "random/selection.json"],
                        evaluation="results.csv")

The page (described in include/csal3d/report.h and docs/guide.md) shows the feature space
(PCA, clusters, the chosen cases with their ranks), the scores' distribution, three slices
through each chosen case's most uncertain region with its uncertainty map, the selections'
overlap and cluster coverage, and an evaluation's Dice per strategy and budget. It loads
nothing from elsewhere: images are inline PNG, plots inline SVG.
"""

import ctypes
import os

from ._native import check, declare, integer
from .pipeline import Scores, _b

_P = ctypes.POINTER


class _ReportOptions(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("selections", _P(ctypes.c_char_p)),
                ("n_selections", ctypes.c_size_t),
                ("maps_dir", ctypes.c_char_p),
                ("dataset", ctypes.c_char_p),
                ("evaluation", ctypes.c_char_p),
                ("scores_path", ctypes.c_char_p),
                ("title", ctypes.c_char_p),
                ("max_points", ctypes.c_int64),
                ("max_cases", ctypes.c_int64),
                ("image_size", ctypes.c_int),
                ("overwrite", ctypes.c_int)]


_init = declare("csal3d_report_options_init", [_P(_ReportOptions)])
_write = declare("csal3d_report_write",
                 [ctypes.c_void_p, _P(_ReportOptions), ctypes.c_char_p, ctypes.c_void_p])


def write_report(scores, output, selections=(), maps_dir=None, dataset=None, evaluation=None,
                 scores_path=None, title=None, max_points=None, max_cases=None,
                 image_size=None, overwrite=False, context=None):
    """Writes the report page to `output` and returns its path.

    scores: a csal3d.Scores table, or the path of a scores file (then loaded, and named on
    the page). selections: paths of JSON manifests (`csal3d select`'s selection.json,
    write_manifest's json=) made from these scores, one per strategy (a single path is
    accepted too). maps_dir: the maps folder, when not the one the scores record.
    dataset: a dataset to take the images from by case id (files moved). evaluation: a
    results file (CSV with strategy, budget, seed, mean_dice; or JSON runs).
    max_points (2000), max_cases (48), image_size (160): None for the defaults.
    overwrite: replace an existing page (else csal3d.IOError_). context: a csal3d.Context
    for the log (cases whose files cannot be read), progress and cancellation.
    Bad inputs raise csal3d.FormatError or IOError_ naming the file."""
    if isinstance(selections, (str, bytes, os.PathLike)):
        selections = [selections]
    owned = None
    if not isinstance(scores, Scores):
        if scores_path is None:
            scores_path = scores
        owned = scores = Scores.load(scores)
    try:
        sel = [_b(p) for p in selections]
        arr = (ctypes.c_char_p * max(len(sel), 1))(*sel)
        o = _ReportOptions()
        check(_init(ctypes.byref(o)))
        o.selections = ctypes.cast(arr, _P(ctypes.c_char_p)) if sel else None
        o.n_selections = len(sel)
        keep = [_b(maps_dir), _b(dataset), _b(evaluation), _b(scores_path),
                title.encode() if title is not None else None]
        o.maps_dir, o.dataset, o.evaluation, o.scores_path, o.title = keep
        if max_points is not None:
            o.max_points = integer("max_points", max_points, 1)
        if max_cases is not None:
            o.max_cases = integer("max_cases", max_cases, 1)
        if image_size is not None:
            o.image_size = integer("image_size", image_size, 32)
        o.overwrite = int(bool(overwrite))
        check(_write(scores.handle, ctypes.byref(o), _b(output),
                     context.handle if context is not None else None))
    finally:
        if owned is not None:
            owned.close()
    return os.fspath(output)
