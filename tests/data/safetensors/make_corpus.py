#!/usr/bin/env python3
"""Writes the safetensors seed corpus (tests/data/safetensors): valid_* files must
parse, invalid_* files must be rejected with CSAL3D_ERR_FORMAT. They are also the
seeds of tests/fuzz_safetensors.c. Run from this folder; standard library only."""
import json
import struct


def image(header, data, pad=True):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


F = {}
F["valid_empty"] = image({}, b"")
F["valid_metadata_only"] = image({"__metadata__": {"embed_dim": "12", "k": "v"}}, b"")
F["valid_scalar_f32"] = image({"x": t("F32", [], 0, 4)}, struct.pack("<f", 3.5))
F["valid_mixed"] = image(
    {
        "__metadata__": {"format": "pt"},
        "a.weight": t("F64", [2, 2], 0, 32),
        "labels": t("I64", [2], 32, 48),
        "b.bias": t("F32", [3], 48, 60),
        "h": t("F16", [2], 60, 64),
        "bf": t("BF16", [2], 64, 68),
        "i": t("I32", [1], 68, 72),
        "u": t("U8", [3], 72, 75),
        "z": t("F32", [0, 5], 75, 75),
        "bool": t("BOOL", [1], 75, 76),
    },
    struct.pack("<4d", 1, 2, 3, 4) + struct.pack("<2q", 0, 3) + struct.pack("<3f", 1, 2, 3)
    + struct.pack("<2H", 0x3C00, 0xC000) + struct.pack("<2H", 0x3F80, 0x4000)
    + struct.pack("<i", -5) + bytes([1, 2, 3]) + bytes([1]),
)
F["valid_unordered_header"] = image(
    {"b": t("F32", [1], 4, 8), "a": t("F32", [1], 0, 4)}, struct.pack("<2f", 1, 2)
)
F["invalid_truncated_length"] = b"\x10\x00\x00"
F["invalid_huge_header_length"] = struct.pack("<Q", 1 << 62) + b"{}"
F["invalid_header_past_end"] = struct.pack("<Q", 64) + b"{}"
F["invalid_not_json"] = image(b"{not json}", b"")
F["invalid_array_root"] = image(b"[1,2,3]", b"")
F["invalid_duplicate_key"] = image(b'{"a":' + json.dumps(t("F32", [1], 0, 4)).encode() + b',"a":'
                                   + json.dumps(t("F32", [1], 0, 4)).encode() + b"}", b"\0" * 4)
F["invalid_unknown_dtype"] = image({"x": t("F128", [1], 0, 16)}, b"\0" * 16)
F["invalid_size_mismatch"] = image({"x": t("F32", [3], 0, 8)}, b"\0" * 8)
F["invalid_gap"] = image({"x": t("F32", [1], 4, 8)}, b"\0" * 8)
F["invalid_overlap"] = image({"x": t("F32", [2], 0, 8), "y": t("F32", [1], 4, 8)}, b"\0" * 8)
F["invalid_trailing_bytes"] = image({"x": t("F32", [1], 0, 4)}, b"\0" * 12)
F["invalid_truncated_data"] = image({"x": t("F32", [4], 0, 16)}, b"\0" * 10)
F["invalid_shape_overflow"] = image({"x": t("F64", [1 << 32, 1 << 32], 0, 8)}, b"\0" * 8)
F["invalid_negative_dim"] = image({"x": t("F32", [-1], 0, 4)}, b"\0" * 4)
F["invalid_metadata_number"] = image({"__metadata__": {"step": 3}}, b"")

for name, data in F.items():
    with open(name + ".safetensors", "wb") as f:
        f.write(data)
