#!/usr/bin/env python3
"""Writes the scores-file corpus of tests/test_manifest.c and tests/fuzz_scores.c.

valid_*.safetensors must load; invalid_*.safetensors must fail with the status named
after the second underscore-separated word: invalid_format_*, invalid_checksum_*,
invalid_numerical_*, invalid_unsupported_*. Run from this folder:
    /usr/bin/python3 make_corpus.py   (needs numpy)
"""
import json
import struct
import zlib

import numpy as np


def crc(data, meta):
    c = zlib.crc32(data)
    for k in sorted(meta):
        if k == "checksum":
            continue
        c = zlib.crc32(k.encode() + b"\0", c)
        c = zlib.crc32(meta[k].encode() + b"\0", c)
    return "crc32:%08x" % c


def write(name, tensors, meta, fix_checksum=True, raw_header=None):
    header = {}
    data = b""
    for tname, arr, dtype in tensors:
        b = arr.tobytes()
        header[tname] = {"dtype": dtype, "shape": list(arr.shape),
                         "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    meta = dict(meta)
    if fix_checksum:
        meta["checksum"] = crc(data, meta)
    header["__metadata__"] = meta
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(name, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def cases(n, **extra):
    out = []
    for i in range(n):
        c = {"id": "case_%03d" % i, "images": ["/data/case_%03d_0000.nii.gz" % i],
             "label": "/data/labels/case_%03d.nii.gz" % i if i % 2 == 0 else None}
        out.append(c)
    for i, c in extra.items():
        out[int(i[1:])].update(c)
    return out


def base(n=4, d=3, cs=None, scores=None, feats=None, **meta):
    f = feats if feats is not None else np.arange(n * d, dtype=np.float32).reshape(n, d) / 7
    s = scores if scores is not None else np.linspace(0.1, 0.9, n).astype(np.float32)
    m = {"format": "csal3d-scores", "format_version": "1",
         "cases": json.dumps(cs if cs is not None else cases(n)),
         "checkpoint": "/models/ssl.safetensors", "modality": "mri"}
    m.update(meta)
    return [("features", f, "F32"), ("scores", s, "F32")], m


t, m = base()
write("valid_small.safetensors", t, m)
c = cases(2)
c[1]["images"].append("/data/case_001_0001.nii.gz")
c[0]["map"] = "/maps/case_000.nii.gz"
t, m = base(2, 1, c)
write("valid_two_channels_map.safetensors", t, m)
t, m = base(3, 2, [{"id": "a,b \"q\"", "images": ["/x/a b.nii"]},
                   {"id": "é", "images": ["/x/é.nii.gz"], "label": "/y/é.nii.gz"},
                   {"id": "c", "images": ["rel/c.nii.gz"], "unknown_key": 1}])
write("valid_odd_names.safetensors", t, m)
t, m = base(1, 5, feats=np.ones((1, 5), np.float64), scores=np.zeros(1, np.float64))
t = [("features", t[0][1], "F64"), ("scores", t[1][1], "F64")]
write("valid_f64_single.safetensors", t, m)

t, m = base()
write("invalid_checksum_changed.safetensors", t, dict(m, checksum="crc32:00000000"),
      fix_checksum=False)
t, m = base()
del m["format"]
write("invalid_format_no_format.safetensors", t, m)
t, m = base(format="csal3d-checkpoint")
write("invalid_format_wrong_format.safetensors", t, m)
t, m = base(format_version="2")
write("invalid_unsupported_version2.safetensors", t, m)
t, m = base(format_version="x")
write("invalid_format_version_text.safetensors", t, m)
t, m = base()
del m["cases"]
write("invalid_format_no_cases.safetensors", t, m)
t, m = base(cases="{\"id\": 1}")
write("invalid_format_cases_object.safetensors", t, m)
t, m = base(cases="[")
write("invalid_format_cases_not_json.safetensors", t, m)
t, m = base(cases="[]")
write("invalid_format_cases_empty.safetensors", t, m)
t, m = base(4, 3, cases(3))
write("invalid_format_count_mismatch.safetensors", t, m)
cs = cases(4)
cs[2]["id"] = cs[1]["id"]
t, m = base(4, 3, cs)
write("invalid_format_duplicate_id.safetensors", t, m)
cs = cases(4)
cs[1]["id"] = "a/../b"
t, m = base(4, 3, cs)
write("invalid_format_id_dotdot.safetensors", t, m)
cs = cases(4)
cs[1]["id"] = "/a"
t, m = base(4, 3, cs)
write("invalid_format_id_leading_slash.safetensors", t, m)
cs = cases(4)
cs[1]["id"] = "a\nb"
t, m = base(4, 3, cs)
write("invalid_format_id_newline.safetensors", t, m)
cs = cases(4)
cs[1]["id"] = "subj01/flair"
t, m = base(4, 3, cs)
write("valid_id_subject_path.safetensors", t, m)
cs = cases(4)
cs[3]["images"] = []
t, m = base(4, 3, cs)
write("invalid_format_no_images.safetensors", t, m)
cs = cases(4)
cs[0]["label"] = 5
t, m = base(4, 3, cs)
write("invalid_format_label_number.safetensors", t, m)
cs = cases(4)
cs[0]["images"] = ["x"] * 65
t, m = base(4, 3, cs)
write("invalid_format_too_many_images.safetensors", t, m)
t, m = base(scores=np.array([0.1, np.nan, 0.3, 0.4], np.float32))
write("invalid_numerical_nan_score.safetensors", t, m)
f = np.zeros((4, 3), np.float32)
f[2, 1] = np.inf
t, m = base(feats=f)
write("invalid_numerical_inf_feature.safetensors", t, m)
t, m = base()
t = [("features", t[0][1].reshape(-1), "F32"), t[1]]
write("invalid_format_features_1d.safetensors", t, m)
t, m = base()
t = [t[0], ("scores", np.arange(4, dtype=np.int32), "I32")]
write("invalid_format_scores_int.safetensors", t, m)
t, m = base()
write("invalid_format_no_scores.safetensors", [t[0]], m)
with open("invalid_format_truncated.safetensors", "wb") as f:
    f.write(open("valid_small.safetensors", "rb").read()[:-5])
with open("invalid_format_empty.safetensors", "wb") as f:
    pass
