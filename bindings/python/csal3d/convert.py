"""Convert PyTorch checkpoints (.pt/.pth state_dicts) to safetensors for libcsal3d.

Public Swin-UNETR / SwinMM / CSAL-3D weights are PyTorch pickles; libcsal3d reads
safetensors only (no pickle, no torch at run time). This module turns a state_dict into
a safetensors file that the library imports with its key mapping.

End to end (PyTorch is needed for the conversion only: Debian ``python3-torch`` or
``pip install torch``)::

    python3 -m csal3d.convert model_swinvit.pt swinvit.safetensors
    # swinvit.safetensors: 126 tensors written (embed_dim 48, in_channels 1)

then start pretraining from it: ``csal3d pretrain DATASET --init swinvit.safetensors -o
ssl.safetensors``, ``csal3d.SSLModel(ctx, init_from="swinvit.safetensors")`` in Python or
``csal3d_ssl_model_init_from()`` in C (the encoder from the file, the rotation head and
decoder initialised as for a new model; a report says what was loaded, initialised and
ignored). ``csal3d.SSLModel.load()`` takes only a whole SSL model's weights.

What is written:

- the tensors of the state_dict, under their own names (the library maps them: "module."
  stripped, "swin_vit" -> "swinViT", fc1/fc2 -> linear1/linear2, heads it does not use
  ignored). A checkpoint that wraps its state_dict (under "state_dict", "model", "net"
  or "network") is unwrapped; entries that are not tensors (epoch, optimiser, ...) are
  left out. Floating tensors become float32 (--keep-dtype keeps float16/float64; bfloat16
  always becomes float32); integer tensors (relative_position_index) keep their type.
- metadata (all strings): "source" (the input's file name), "converted_by"
  ("csal3d.convert"), "embed_dim" and "in_channels" (read from the patch embedding's
  weight, ``*patch_embed.proj.weight`` of shape [embed_dim, in_channels, p, p, p], when
  the state_dict has one; "patch_size" too when p is not 2), and every --meta KEY=VALUE.
  MONAI's names are accepted and written under libcsal3d's: ``feature_size`` ->
  ``embed_dim``, ``in_chans`` -> ``in_channels``; ``depths`` and ``num_heads`` may be
  written as MONAI prints them ("(2, 2, 2, 2)") and are stored as "2,2,2,2". A value
  given that contradicts the weights, or two names of one setting that disagree, is an
  error. Weights pretrained with MONAI's PatchMerging need ``--meta merge_order=monai``.

A file that is not a plain state_dict (pickled Python objects besides tensors) is
refused unless --trust-pickle is given: unpickling runs code from the file.

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


_ALIASES = {"feature_size": "embed_dim", "in_chans": "in_channels"}
_LISTS = ("depths", "num_heads")


def normalize_metadata(metadata):
    """The metadata with MONAI's names mapped to libcsal3d's (feature_size -> embed_dim,
    in_chans -> in_channels) and depths / num_heads as "a,b,c,d"; ValueError when two
    names of one setting disagree or a value is malformed."""
    out = {}
    for key, value in (metadata or {}).items():
        name = _ALIASES.get(key, key)
        value = str(value).strip()
        if name in ("embed_dim", "in_channels"):
            try:
                value = str(int(value))
            except ValueError:
                raise ValueError("metadata %s=%r: not an integer" % (key, value)) from None
        elif name in _LISTS:
            parts = value.strip("()[] ").replace(" ", "").split(",")
            try:
                value = ",".join(str(int(p)) for p in parts if p != "")
            except ValueError:
                raise ValueError("metadata %s=%r: want integers, e.g. 2,2,2,2"
                                 % (key, value)) from None
        if name in out and out[name] != value:
            raise ValueError("metadata %s: %r and %r disagree" % (name, out[name], value))
        out[name] = value
    return out


def _geometry(tensors):
    """{"embed_dim", "in_channels"[, "patch_size"]} from the patch embedding's weight, and
    its name; ({}, None) when the state_dict has none."""
    for name, a in tensors.items():
        if name.endswith("patch_embed.proj.weight") and np.ndim(a) == 5:
            shape = np.shape(a)
            geo = {"embed_dim": str(shape[0]), "in_channels": str(shape[1])}
            if shape[2] != 2:
                geo["patch_size"] = str(shape[2])
            return geo, "%s %s" % (name, list(shape))
    return {}, None


def _torch_load(src, trust_pickle):
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("reading .pt/.pth files needs PyTorch (Debian: apt-get install "
                           "python3-torch; or pip install torch)") from exc
    if trust_pickle:
        try:
            return torch, torch.load(src, map_location="cpu", weights_only=False)
        except TypeError:  # torch < 1.13 has no weights_only
            return torch, torch.load(src, map_location="cpu")
    try:
        return torch, torch.load(src, map_location="cpu", weights_only=True)
    except TypeError:  # pragma: no cover - torch < 1.13 has no weights_only
        return torch, torch.load(src, map_location="cpu")
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError
        raise RuntimeError("%s holds more than tensors (%s); if you trust the file, "
                           "convert it with --trust-pickle" % (src, exc)) from exc


def convert(src, dst, metadata=None, keep_dtype=False, trust_pickle=False):
    """Converts a .pt/.pth checkpoint to safetensors (see the module docstring for what
    is written); returns the number of tensors."""
    return _convert(src, dst, metadata, keep_dtype, trust_pickle)[0]


def _convert(src, dst, metadata, keep_dtype, trust_pickle):
    """convert(), returning (number of tensors, metadata written)."""
    meta_given = normalize_metadata(metadata)
    torch, obj = _torch_load(src, trust_pickle)
    tensors = {}
    for name, t in state_dict_of(obj).items():
        if not torch.is_tensor(t):
            continue
        t = t.detach().cpu()
        if t.is_floating_point() and (not keep_dtype or t.dtype == torch.bfloat16):
            t = t.float()
        tensors[str(name)] = t.numpy()
    if not tensors:
        raise ValueError("%s: no tensors found" % src)
    geo, where = _geometry(tensors)
    for key, value in geo.items():
        if key in meta_given and meta_given[key] != value:
            raise ValueError("the weights have %s %s (%s), the metadata given says %s"
                             % (key, value, where, meta_given[key]))
    meta = {"source": os.path.basename(src), "converted_by": "csal3d.convert"}
    meta.update(geo)
    meta.update(meta_given)
    write_safetensors(tensors, dst, meta)
    return len(tensors), meta


def main(argv=None):
    """Command line: python3 -m csal3d.convert IN.pt OUT.safetensors (see --help)."""
    p = argparse.ArgumentParser(
        prog="python3 -m csal3d.convert",
        description="Convert a PyTorch state_dict (.pt/.pth) to safetensors for libcsal3d. "
                    "embed_dim and in_channels are read from the weights.")
    p.add_argument("src", help="input .pt or .pth file")
    p.add_argument("dst", help="output .safetensors file")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata to store, e.g. merge_order=monai, feature_size=48 "
                        "(MONAI's name of embed_dim), depths=2,2,2,2")
    p.add_argument("--keep-dtype", action="store_true",
                   help="keep float64/float16 tensors as they are (default: float32)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load a checkpoint that holds Python objects besides tensors "
                        "(unpickling runs code from the file: only for files you trust)")
    args = p.parse_args(argv)
    meta = {}
    for kv in args.meta:
        if "=" not in kv:
            p.error("--meta wants KEY=VALUE, got %r" % kv)
        k, v = kv.split("=", 1)
        meta[k] = v
    try:
        n, written = _convert(args.src, args.dst, meta, args.keep_dtype, args.trust_pickle)
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        print("csal3d.convert: %s" % exc, file=sys.stderr)
        return 1
    shape = ", ".join("%s %s" % (k, written[k]) for k in ("embed_dim", "in_channels")
                      if k in written)
    print("%s: %d tensors written%s" % (args.dst, n, " (%s)" % shape if shape else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
