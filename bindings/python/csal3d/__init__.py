"""csal3d: Python binding of libcsal3d (cold-start active learning for 3D images).

The package loads the C library with ctypes, looking in this order: the path in
$CSAL3D_LIBRARY (when set, that file only), next to this package, the source tree's lib/
folder, `pkg-config --variable=libdir csal3d`, `ldconfig -p`, then the dynamic loader's
own search; ImportError lists what was tried. `csal3d._native.path` is the file loaded.
Every failure of the library raises a subclass of csal3d.Error carrying the library's
message.

Lifetimes. Some objects are made from others and need them: an SSLModel and a Sampler
need their Context, an Uncertainty its SSLModel, a Case its Dataset. Each keeps what it
needs alive, so objects can be closed or garbage-collected in any order without a crash:

- close() (or the end of a `with` block) on an object that others still need makes it
  unusable from Python at once (using it raises ValueError "... is closed"; nothing new
  can be made from it), but its C object is freed only when the last object that needs
  it is closed or collected. Those keep working:

      with csal3d.Context(device="cpu") as ctx:
          model = csal3d.SSLModel(ctx, embed_dim=12)
      model.encode(x)          # works: the context is freed when the model goes

- close() on an object nothing needs frees it at once; del and garbage collection
  close it too.

Volumes, Scores and Datasets stand alone (a Volume loaded from a Case does not need the
Dataset); maps and score tables returned by Uncertainty and score_dataset are
independent objects too.

Arguments are checked before any work: enum-like keywords (device, kernel, modality,
feature, ...) raise ValueError listing their choices; counts and sizes must be integers
(budget=2.7 raises TypeError); arrays of the wrong shape raise ValueError naming the
shape expected.
"""

from ._native import lib as _lib
from .context import Context, device_available
from .errors import (BufferTooSmallError, CancelledError, ChecksumError,
                     DeviceUnavailableError, Error, FormatError, InternalError,
                     InvalidArgumentError, IOError_, NumericalError,
                     OutOfMemoryError, StateError, UnsupportedError)

__version__ = _lib.csal3d_version().decode()


def version():
    """The version of the loaded C library, "MAJOR.MINOR.PATCH"."""
    return _lib.csal3d_version().decode()


__all__ = [
    "BufferTooSmallError", "CancelledError", "ChecksumError", "Context",
    "DeviceUnavailableError", "Error", "FormatError", "IOError_", "InternalError",
    "InvalidArgumentError", "NumericalError", "OutOfMemoryError", "StateError",
    "UnsupportedError", "device_available", "version",
]

from .volume import Case, Dataset, Volume, generate_phantom  # noqa: E402
__all__ += ["Case", "Dataset", "Volume", "generate_phantom"]

from .sampling import (Picks, Sampler, Selection, StrategyInfo, select,  # noqa: E402
                       strategies)
__all__ += ["Picks", "Sampler", "Selection", "StrategyInfo", "select", "strategies"]

from .ssl import InitReport, Losses, SSLModel  # noqa: E402
from .uncertainty import Uncertainty  # noqa: E402
from .pipeline import merge_scores  # noqa: E402
from .comm import Comm  # noqa: E402
from .pipeline import (Scores, case_key, export_nnunet, score_dataset,  # noqa: E402
                       write_manifest, write_selection)
__all__ += ["merge_scores", "Comm"]
__all__ += ["InitReport", "Losses", "SSLModel", "Uncertainty", "Scores", "case_key",
            "export_nnunet", "score_dataset", "write_manifest", "write_selection"]

from .report import write_report  # noqa: E402
__all__ += ["write_report"]
from .evaluate import Cell, Evaluation, compare, evaluate, read_cases  # noqa: E402
__all__ += ["Cell", "Evaluation", "compare", "evaluate", "read_cases"]
