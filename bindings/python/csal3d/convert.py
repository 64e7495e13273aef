"""Convert PyTorch checkpoints (.pt/.pth state_dicts) to safetensors for libcsal3d.

Public Swin-UNETR / SwinMM / CSAL-3D weights are PyTorch pickles; libcsal3d reads
safetensors only (no pickle, no torch at run time). This module turns a state_dict
into a safetensors file that the library imports with its key mapping ("module."
stripped, "swin_vit" -> "swinViT", fc1/fc2 -> linear1/linear2, heads it does not
use ignored).

Command line (torch must be installed for .pt/.pth input)::

    python3 -m csal3d.convert model_swinvit.pt swinvit.safetensors --meta embed_dim=48
    python3 bindings/python/csal3d/convert.py in.pth out.safetensors

The writer and reader here need only numpy and can be used on their own:
``write_safetensors({"w": array}, "x.safetensors", {"k": "v"})``.
"""

import argparse
import json
import os
import struct
import sys
import tempfile

import numpy as np

_DTYPES = {
    np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
    np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("uint16"): "U16",
    np.dtype("uint32"): "U32", np.dtype("uint64"): "U64", np.dtype("bool"): "BOOL",
}
_NUMPY = {v: k for k, v in _DTYPES.items()}


def write_safetensors(tensors, path, metadata=None):
    """Writes a dict name -> numpy array (little-endian) as safetensors.

    Tensors are laid out by decreasing element size (each aligned to its size),
    the header is padded with spaces to a multiple of 8 bytes, metadata values must
    be strings. The file is written to a temporary file beside `path`, flushed and
    renamed over it, so a failure never leaves a partial file."""
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors metadata keys and values must be strings: %r" % (k,))
    arrays = []
    for name, a in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError("invalid tensor name %r" % (name,))
        a = np.asarray(a)
        if a.dtype not in _DTYPES:
            raise TypeError("tensor %r: dtype %s has no safetensors equivalent" % (name, a.dtype))
        arrays.append((name, np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))))
    arrays.sort(key=lambda t: -t[1].dtype.itemsize)  # stable: keeps the given order per size
    header = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, a in arrays:
        header[name] = {"dtype": _DTYPES[a.dtype.newbyteorder("=")], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for _, a in arrays:
                f.write(a.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_safetensors(path):
    """Reads a safetensors file: returns (dict name -> numpy array, metadata dict).
    BF16 and F8 tensors are returned as raw uint16 / uint8 arrays."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise ValueError("%s: header length %d does not fit the file" % (path, n))
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + n:]
    raw = {"BF16": np.dtype("<u2"), "F8_E4M3": np.dtype("u1"), "F8_E5M2": np.dtype("u1")}
    out = {}
    for name, info in header.items():
        dt = raw.get(info["dtype"]) or _NUMPY[info["dtype"]].newbyteorder("<")
        b, e = info["data_offsets"]
        out[name] = np.frombuffer(body[b:e], dtype=dt).reshape(info["shape"]).copy()
    return out, meta


def state_dict_of(obj):
    """The tensor dict inside a loaded checkpoint: the object itself, or its
    "state_dict" / "model" / "net" / "network" entry."""
    for key in ("state_dict", "model", "net", "network"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return obj[key]
    if isinstance(obj, dict):
        return obj
    raise TypeError("not a state_dict (a %s)" % type(obj).__name__)


def convert(src, dst, metadata=None, keep_dtype=False):
    """Converts a .pt/.pth checkpoint to safetensors; returns the number of tensors.
    Floating tensors become float32 unless keep_dtype; non-tensor entries are
    skipped."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("reading .pt/.pth files needs PyTorch (pip install torch)") from exc
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        obj = torch.load(src, map_location="cpu")
    tensors = {}
    for name, t in state_dict_of(obj).items():
        if not torch.is_tensor(t):
            continue
        t = t.detach().cpu()
        if t.is_floating_point() and (not keep_dtype or t.dtype == torch.bfloat16):
            t = t.float()
        tensors[name] = t.numpy()
    meta = {"source": os.path.basename(src), "converted_by": "csal3d.convert"}
    meta.update(metadata or {})
    write_safetensors(tensors, dst, meta)
    return len(tensors)


def main(argv=None):
    """Command line: python3 -m csal3d.convert IN.pt OUT.safetensors (see --help)."""
    p = argparse.ArgumentParser(
        prog="python3 -m csal3d.convert",
        description="Convert a PyTorch state_dict (.pt/.pth) to safetensors for libcsal3d.")
    p.add_argument("src", help="input .pt or .pth file")
    p.add_argument("dst", help="output .safetensors file")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata to store, e.g. embed_dim=48 in_channels=1 merge_order=monai")
    p.add_argument("--keep-dtype", action="store_true",
                   help="keep float64/float16 tensors as they are (default: float32)")
    args = p.parse_args(argv)
    meta = {}
    for kv in args.meta:
        if "=" not in kv:
            p.error("--meta wants KEY=VALUE, got %r" % kv)
        k, v = kv.split("=", 1)
        meta[k] = v
    try:
        n = convert(args.src, args.dst, meta, args.keep_dtype)
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        print("csal3d.convert: %s" % exc, file=sys.stderr)
        return 1
    print("%s: %d tensors written" % (args.dst, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
