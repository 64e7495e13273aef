"""Loading libcsal3d and calling it: the one place that knows about ctypes.

Where the library is looked for, in order (the first that loads wins):

1. $CSAL3D_LIBRARY, when set: that file only (an explicit choice is never second-guessed);
2. ``libcsal3d.so.0`` next to this package (a copy shipped with it);
3. the source tree's ``lib/`` folder, when the package is run from a checkout;
4. ``pkg-config --variable=libdir csal3d`` (an installed ``csal3d.pc``; honours
   $PKG_CONFIG_PATH);
5. ``ldconfig -p`` (the system's library cache);
6. the dynamic loader's own search for ``libcsal3d.so.0`` ($LD_LIBRARY_PATH, default
   folders).

When none loads, ImportError lists every place tried and why each failed. `path` is the
file that was loaded.
"""

import ctypes
import operator
import os
import shutil
import subprocess

import numpy as np

from .errors import error_for_status

_SONAME = "libcsal3d.so.0"


def _pkg_config():
    """(path or None, why not)."""
    exe = shutil.which("pkg-config")
    if not exe:
        return None, "pkg-config is not installed"
    try:
        r = subprocess.run([exe, "--variable=libdir", "csal3d"], capture_output=True,
                           text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"pkg-config failed: {e}"
    libdir = r.stdout.strip()
    if r.returncode != 0 or not libdir:
        why = r.stderr.strip().splitlines()
        return None, "no csal3d.pc" + (f" ({why[0]})" if why else "")
    return os.path.join(libdir, _SONAME), None


def _ldconfig():
    """(path or None, why not)."""
    exe = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.path.exists(p)), None)
    if not exe:
        return None, "ldconfig is not installed"
    try:
        r = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10,
                           check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"ldconfig -p failed: {e}"
    for line in r.stdout.splitlines():
        name, sep, target = line.strip().partition(" => ")
        if sep and name.split(" ", 1)[0] == _SONAME:
            return target.strip(), None
    return None, f"{_SONAME} is not in the cache"


def _candidates():
    """Yields (what, path or None, why not) in the order of the module docstring."""
    env = os.environ.get("CSAL3D_LIBRARY")
    if env:
        yield "$CSAL3D_LIBRARY", env, None
        return
    yield "$CSAL3D_LIBRARY", None, "not set"
    here = os.path.dirname(os.path.abspath(__file__))
    yield "next to the package", os.path.join(here, _SONAME), None
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    if os.path.basename(os.path.dirname(os.path.dirname(here))) == "bindings":
        yield "the source tree", os.path.join(root, "lib", _SONAME), None
    yield ("pkg-config --variable=libdir csal3d",) + _pkg_config()
    yield ("ldconfig -p",) + _ldconfig()
    yield "the dynamic loader", _SONAME, None


def _load():
    tried = []
    for what, path, why in _candidates():
        if path is None:
            tried.append(f"{what}: {why}")
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{what}: {path} does not exist")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{what}: {e}")
    if os.environ.get("CSAL3D_LIBRARY"):
        hint = ("Fix $CSAL3D_LIBRARY, or unset it to search next to the package, "
                "pkg-config, ldconfig and the loader's path.")
    else:
        hint = ("Set CSAL3D_LIBRARY to the path of libcsal3d.so.0, or install the library "
                "(make install) where pkg-config or ldconfig finds it.")
    raise ImportError("cannot load libcsal3d; tried " + "; ".join(tried) + ". " + hint)


lib, path = _load()

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


def choice(option, value, table):
    """The C value of an enum-like keyword: a name in `table` (a dict name -> value) or
    one of its values; ValueError listing the names otherwise."""
    if isinstance(value, str):
        if value in table:
            return table[value]
    elif isinstance(value, int) and not isinstance(value, bool) and value in table.values():
        return value
    names = ", ".join(repr(k) for k in table if isinstance(k, str))
    raise ValueError(f"{option} must be one of {names}, not {value!r}")


def integer(option, value, minimum=None):
    """`value` as an int: ints and numpy integers only (2.7 is not silently 2: TypeError);
    ValueError below `minimum`."""
    if isinstance(value, bool):
        raise TypeError(f"{option} must be an integer, not {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{option} must be an integer, not {value!r}") from None
    if minimum is not None and v < minimum:
        raise ValueError(f"{option} must be at least {minimum}, not {v}")
    return v


def hold(child, *parents):
    """Makes `child` (any object) keep each parent (an Owned) and its C object alive until
    let_go(child): a strong reference and a count on the parent. The parents must be
    open (ValueError otherwise)."""
    for p in parents:
        p.handle  # noqa: B018 - raises ValueError if the parent is already closed
    for p in parents:
        p._children += 1
    child._parents = tuple(getattr(child, "_parents", ())) + tuple(parents)


def let_go(child):
    """Undoes hold(child, ...): a closed parent with no child left is freed."""
    parents, child._parents = getattr(child, "_parents", ()), ()
    for p in parents:
        p._children -= 1
        p._release()


def three_ints(option, value):
    """[D, H, W] from one integer (for all three) or three (see integer())."""
    values = list(value) if np.ndim(value) else [value] * 3
    if len(values) != 3:
        raise ValueError(f"{option}: expected one size or three (D, H, W), not {len(values)}")
    return [integer(option, v) for v in values]


class Owned:
    """Base of the wrappers that own a library object, and of their lifetimes.

    `handle` is the C handle (ValueError once closed); close() releases it (also done on
    garbage collection); `with` closes on exit. A subclass names the library's free
    function in _FREE and itself in _WHAT ("the model").

    A wrapper whose C object needs another's to stay alive (a model its context, an
    estimator its model, ...) holds it with _hold(parent): a strong reference, so that
    garbage collection cannot free the parent first, and a count on the parent. close()
    on a parent that still has living children makes the parent unusable from Python at
    once (its `handle` raises ValueError) but defers the C free until its last child is
    closed or collected; the children keep working. Closing or collecting in any order is
    therefore safe.
    """

    _FREE = None
    _WHAT = "object"
    _handle = None   # the C object while it lives (also while a closed parent waits)
    _closed = False  # close() was called: `handle` refuses
    _children = 0    # living children that hold this object
    _parents = ()    # the objects this one holds

    @property
    def handle(self):
        """The C handle, for other wrappers (ValueError once closed)."""
        if self._closed or not self._handle:
            raise ValueError(f"{self._WHAT} is closed")
        return self._handle

    @property
    def closed(self):
        """Whether close() was called (the C object may live on for its children)."""
        return self._closed or not self._handle

    def _hold(self, *parents):
        """Keeps each parent's C object alive until this one is freed. Call it once this
        object's C handle exists (the parents must be open)."""
        hold(self, *parents)

    def _release(self):
        """Frees the C object when it was closed and no child needs it any more; then
        lets go of the parents (which may be freed in turn)."""
        if not self._closed or self._children or not self._handle:
            return
        h, self._handle = self._handle, None
        getattr(lib, self._FREE)(h)
        let_go(self)

    def close(self):
        """Releases the library object (also done when it is garbage collected). If objects
        made from this one are still alive (see the class docstring), the C object lives
        on until they go; this wrapper refuses any further use either way."""
        self._closed = True
        self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: the library may be gone
            pass
