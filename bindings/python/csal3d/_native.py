"""Loading libcsal3d and calling it: the one place that knows about ctypes."""

import ctypes
import ctypes.util
import os

from .errors import error_for_status

_SONAME = "libcsal3d.so.0"


def _candidates():
    env = os.environ.get("CSAL3D_LIBRARY")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, _SONAME)  # shipped next to the package
    yield os.path.join(here, "..", "..", "..", "lib", _SONAME)  # the build tree
    found = ctypes.util.find_library("csal3d")
    if found:
        yield found
    yield _SONAME  # the dynamic loader's own search


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append(f"{path}: not found")
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("cannot load libcsal3d (set CSAL3D_LIBRARY to its path): "
                      + "; ".join(errors))


lib = _load()

lib.csal3d_version.restype = ctypes.c_char_p
lib.csal3d_version.argtypes = []
lib.csal3d_version_number.restype = ctypes.c_int
lib.csal3d_version_number.argtypes = []
lib.csal3d_status_string.restype = ctypes.c_char_p
lib.csal3d_status_string.argtypes = [ctypes.c_int]
lib.csal3d_last_error.restype = ctypes.c_char_p
lib.csal3d_last_error.argtypes = []


def declare(name, argtypes):
    """Declares a library function that returns csal3d_status."""
    fn = getattr(lib, name)
    fn.restype = ctypes.c_int
    fn.argtypes = argtypes
    return fn


def check(status):
    """Raises the csal3d.Error subclass for a failing status, with the library's message."""
    if status != 0:
        message = lib.csal3d_last_error().decode("utf-8", "replace")
        name = lib.csal3d_status_string(status).decode()
        raise error_for_status(status, name, message)
    return status


class Owned:
    """Base of the wrappers that own a library object: `handle` (ValueError once
    closed), close() (also run on garbage collection) and `with` support. A subclass
    names the library's free function in _FREE and itself in _WHAT ("the model")."""

    _FREE = None
    _WHAT = "object"
    _handle = None

    @property
    def handle(self):
        """The C handle, for other wrappers (ValueError once closed)."""
        if not self._handle:
            raise ValueError(f"{self._WHAT} is closed")
        return self._handle

    def close(self):
        """Releases the library object now (also done when it is garbage collected)."""
        if self._handle:
            getattr(lib, self._FREE)(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
