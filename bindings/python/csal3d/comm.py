"""A communicator for data-parallel pretraining and scoring over several processes
(include/csal3d/comm.h): csal3d.Comm wraps an mpi4py communicator (or any object with
Get_rank, Get_size, Allreduce, Bcast and Barrier as mpi4py's) as the library's callback
communicator. Set it on a context with Context.set_comm(Comm(MPI.COMM_WORLD)); then
SSLModel.train over every rank is data-parallel and score_dataset splits the cases among
the ranks, rank 0 writing the one scores file. Launch with mpirun or srun."""

import ctypes

import numpy as np

from ._native import check, declare

_vp = ctypes.c_void_p
_ALLREDUCE_FN = ctypes.CFUNCTYPE(ctypes.c_int, _vp, ctypes.POINTER(ctypes.c_float),
                                 ctypes.c_size_t, ctypes.c_int)
_BCAST_FN = ctypes.CFUNCTYPE(ctypes.c_int, _vp, _vp, ctypes.c_size_t, ctypes.c_int)
_BARRIER_FN = ctypes.CFUNCTYPE(ctypes.c_int, _vp)
_MESSAGE_FN = ctypes.CFUNCTYPE(_vp, _vp)  # a char * that the Comm keeps
_IO = -3  # CSAL3D_ERR_IO


class _Comm(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("size", ctypes.c_int),
                ("rank", ctypes.c_int),
                ("user_data", _vp),
                ("allreduce", _ALLREDUCE_FN),
                ("broadcast", _BCAST_FN),
                ("barrier", _BARRIER_FN),
                ("error_message", _MESSAGE_FN),
                ("device_memory", ctypes.c_int)]


_comm_init = declare("csal3d_comm_init", [ctypes.POINTER(_Comm)])
_set_comm = declare("csal3d_context_set_comm", [_vp, ctypes.POINTER(_Comm)])


class Comm:
    """The library's communicator over an mpi4py communicator `mpi_comm`. Keep it alive
    while it is set on a context. An exception in a collective fails the library call
    with csal3d.IOError_ carrying its text."""

    def __init__(self, mpi_comm):
        self.mpi = mpi_comm
        self.rank = mpi_comm.Get_rank()
        self.size = mpi_comm.Get_size()
        self._error = ctypes.create_string_buffer(1024)
        self._struct = _Comm()
        check(_comm_init(ctypes.byref(self._struct)))
        self._struct.size = self.size
        self._struct.rank = self.rank
        # the callbacks are kept on self so that ctypes does not free them
        self._cbs = (_ALLREDUCE_FN(self._allreduce), _BCAST_FN(self._bcast),
                     _BARRIER_FN(self._barrier),
                     _MESSAGE_FN(lambda _u: ctypes.addressof(self._error)))
        (self._struct.allreduce, self._struct.broadcast, self._struct.barrier,
         self._struct.error_message) = self._cbs

    def _guard(self, f):
        try:
            f()
            return 0
        except BaseException as e:  # noqa: BLE001 - reported through the library
            self._error.value = ("%s: %s" % (type(e).__name__, e)).encode("utf-8",
                                                                          "replace")[:1023]
            return _IO

    def _allreduce(self, _u, data, count, op):
        def run():
            from mpi4py import MPI
            a = np.ctypeslib.as_array(data, shape=(count,)) if count else np.zeros(0, np.float32)
            self.mpi.Allreduce(MPI.IN_PLACE, [a, MPI.FLOAT], op=MPI.SUM)
            if op == 1:
                a /= self.size
        return self._guard(run)

    def _bcast(self, _u, data, nbytes, root):
        def run():
            from mpi4py import MPI
            buf = (ctypes.c_char * nbytes).from_address(data) if nbytes else bytearray()
            self.mpi.Bcast([buf, MPI.BYTE], root=root)
        return self._guard(run)

    def _barrier(self, _u):
        return self._guard(self.mpi.Barrier)

    def install(self, context):
        """Sets this communicator on `context` (Context.set_comm does this)."""
        check(_set_comm(context.handle, ctypes.byref(self._struct)))
        context._comm = self  # kept alive with the context
