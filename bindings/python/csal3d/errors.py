"""Exceptions: one csal3d.Error subclass per status code of the C library."""


class Error(Exception):
    """A libcsal3d call failed. `status` is the C status code, `message` the
    library's explanation (csal3d_last_error)."""

    status = None

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(Error, ValueError):
    """A bad value, handle or option (CSAL3D_ERR_INVALID_ARGUMENT)."""
    status = -1


class OutOfMemoryError(Error, MemoryError):
    """An allocation failed (CSAL3D_ERR_OUT_OF_MEMORY)."""
    status = -2


class IOError_(Error, OSError):
    """A file could not be opened, read or written (CSAL3D_ERR_IO)."""
    status = -3


class FormatError(Error):
    """A file or buffer is malformed (CSAL3D_ERR_FORMAT)."""
    status = -4


class UnsupportedError(Error):
    """Valid but not supported (CSAL3D_ERR_UNSUPPORTED)."""
    status = -5


class DeviceUnavailableError(Error):
    """The requested device or engine plugin is missing (CSAL3D_ERR_DEVICE_UNAVAILABLE)."""
    status = -6


class CancelledError(Error):
    """The progress callback asked to stop (CSAL3D_ERR_CANCELLED)."""
    status = -7


class NumericalError(Error, ArithmeticError):
    """NaN or Inf where finite values are required (CSAL3D_ERR_NUMERICAL)."""
    status = -8


class BufferTooSmallError(Error):
    """A buffer has less capacity than needed (CSAL3D_ERR_BUFFER_TOO_SMALL)."""
    status = -9


class ChecksumError(Error):
    """Stored data failed its integrity check (CSAL3D_ERR_CHECKSUM)."""
    status = -10


class StateError(Error):
    """The call is not valid in the object's current state (CSAL3D_ERR_STATE)."""
    status = -11


class InternalError(Error):
    """A bug in libcsal3d (CSAL3D_ERR_INTERNAL)."""
    status = -12


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, OutOfMemoryError, IOError_, FormatError, UnsupportedError,
    DeviceUnavailableError, CancelledError, NumericalError, BufferTooSmallError,
    ChecksumError, StateError, InternalError)}


def error_for_status(status, name, message):
    """The exception instance for a failing status code."""
    cls = _BY_STATUS.get(status, Error)
    text = f"{name}: {message}" if message else name
    return cls(text, status)
