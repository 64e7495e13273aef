"""csal3d.Context: device, threads, seed, logging and progress."""

import ctypes

from ._native import Owned, check, choice, declare, integer, lib

DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}
_DEVICE_NAMES = {v: k for k, v in DEVICES.items()}
LOG_LEVELS = {"error": 0, "warn": 1, "info": 2, "debug": 3}

_LOG_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p)
_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                ctypes.c_uint64, ctypes.c_uint64)


class _Options(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("device", ctypes.c_int),
                ("device_index", ctypes.c_int),
                ("threads", ctypes.c_int),
                ("seed", ctypes.c_uint64),
                ("log_level", ctypes.c_int),
                ("log", _LOG_FN),
                ("log_user_data", ctypes.c_void_p),
                ("progress", _PROGRESS_FN),
                ("progress_user_data", ctypes.c_void_p)]


_options_init = declare("csal3d_context_options_init", [ctypes.POINTER(_Options)])
_create = declare("csal3d_context_create",
                  [ctypes.POINTER(_Options), ctypes.POINTER(ctypes.c_void_p)])
_device = declare("csal3d_context_device", [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)])
_threads = declare("csal3d_context_threads", [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)])
_seed = declare("csal3d_context_seed", [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)])
_available = declare("csal3d_device_available", [ctypes.c_int, ctypes.POINTER(ctypes.c_int)])
lib.csal3d_context_free.restype = None
lib.csal3d_context_free.argtypes = [ctypes.c_void_p]


def device_available(device):
    """Whether an engine ("cpu" or "cuda") can run on this machine."""
    out = ctypes.c_int()
    check(_available(choice("device", device, DEVICES), ctypes.byref(out)))
    return bool(out.value)


class Context(Owned):
    """Owns the compute engine, the thread count and the seed.

    Context(device="auto", threads=0, seed=0, log=None, log_level="info", progress=None)

    log(level, message) receives the library's messages (level is "error", "warn",
    "info" or "debug"); progress(stage, done, total) receives progress and may
    return True to cancel (the running call then raises csal3d.CancelledError).
    Raises csal3d.DeviceUnavailableError when device="cuda" cannot be used.

    Models and samplers made from it keep it alive: close() (or the end of its `with`
    block) while they live makes the context unusable from Python and frees it when the
    last of them is closed or collected (see the package docstring).
    """

    _FREE = "csal3d_context_free"
    _WHAT = "the context"

    def __init__(self, device="auto", threads=0, seed=0, log=None, log_level="info",
                 progress=None, device_index=0):
        o = _Options()
        check(_options_init(ctypes.byref(o)))
        o.device = choice("device", device, DEVICES)
        o.device_index = integer("device_index", device_index)
        o.threads = integer("threads", threads)
        o.seed = integer("seed", seed, 0)
        o.log_level = choice("log_level", log_level, LOG_LEVELS)
        level_names = {v: k for k, v in LOG_LEVELS.items()}
        # The callbacks are kept on self so that ctypes does not free them.
        self._log = _LOG_FN(lambda _u, lvl, msg: log(level_names.get(lvl, str(lvl)),
                                                     msg.decode("utf-8", "replace"))) \
            if log else _LOG_FN()
        self._progress = _PROGRESS_FN(lambda _u, stage, done, total: int(bool(
            progress(stage.decode(), done, total)))) if progress else _PROGRESS_FN()
        o.log = self._log
        o.progress = self._progress
        handle = ctypes.c_void_p()
        check(_create(ctypes.byref(o), ctypes.byref(handle)))
        self._handle = handle

    def set_comm(self, comm):
        """Runs pretraining and scoring with this context over a group of processes:
        `comm` is a csal3d.Comm, or an mpi4py communicator (wrapped in one); None goes
        back to one process. See docs/distributed.md."""
        from .comm import Comm, _set_comm
        if comm is None:
            check(_set_comm(self.handle, None))
            self._comm = None
            return
        if not isinstance(comm, Comm):
            comm = Comm(comm)
        comm.install(self)

    @property
    def device(self):
        """The device in use: "cpu" or "cuda"."""
        out = ctypes.c_int()
        check(_device(self.handle, ctypes.byref(out)))
        return _DEVICE_NAMES[out.value]

    @property
    def threads(self):
        """The number of CPU threads in use."""
        out = ctypes.c_int()
        check(_threads(self.handle, ctypes.byref(out)))
        return out.value

    @property
    def seed(self):
        """The seed of every random draw made through this context."""
        out = ctypes.c_uint64()
        check(_seed(self.handle, ctypes.byref(out)))
        return out.value
