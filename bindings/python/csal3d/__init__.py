"""csal3d: Python binding of libcsal3d (cold-start active learning for 3D images).

The package loads the C library with ctypes, looking in this order: the path in
$CSAL3D_LIBRARY, next to this package, the source tree's lib/ folder, then the
system's library path. Every failure of the library raises a subclass of
csal3d.Error carrying the library's message.
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

from .sampling import Sampler, Selection, StrategyInfo, select, strategies  # noqa: E402
__all__ += ["Sampler", "Selection", "StrategyInfo", "select", "strategies"]

from .ssl import Losses, SSLModel  # noqa: E402
from .uncertainty import Uncertainty  # noqa: E402
from .pipeline import (Scores, case_key, export_nnunet, score_dataset,  # noqa: E402
                       write_manifest)
__all__ += ["Losses", "SSLModel", "Uncertainty", "Scores", "case_key", "export_nnunet",
            "score_dataset", "write_manifest"]
