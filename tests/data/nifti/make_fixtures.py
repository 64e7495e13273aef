#!/usr/bin/env python3
"""Writes the NIfTI fixtures of tests/test_nifti.c and their expected values.

Run from the repository root with Debian's python3-nibabel and numpy:
    /usr/bin/python3 tests/data/nifti/make_fixtures.py
Expected values (expected.json) come from nibabel: the RAS+ array of
nibabel.as_closest_canonical(img) (float64 data cast to float32), its affine and
shape. The C loader must agree with them exactly (arrays) and to 1e-5 (affines).
The broken files in ../nifti_bad are the loader's bad-input corpus (and fuzz seeds).
"""
import gzip
import json
import os
import struct

import nibabel as nib
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(HERE, "..", "nifti_bad")


def grid(shape, base=0.0):
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape[:3]], indexing="ij")
    return base + i + 10.0 * j + 100.0 * k


def rot_z(deg):
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def affine(rzs, origin):
    a = np.eye(4)
    a[:3, :3] = rzs
    a[:3, 3] = origin
    return a


def save(img, name, sform=True, qform=True):
    if not sform:
        img.header.set_sform(None, code=0)
    if not qform:
        img.header.set_qform(None, code=0)
    nib.save(img, os.path.join(HERE, name))


fixtures = {}


def record(name, channels=None):
    img = nib.load(os.path.join(HERE, name))
    can = nib.as_closest_canonical(img)
    data = np.asarray(can.get_fdata(dtype=np.float64)).astype(np.float32)
    if data.ndim == 3:
        data = data[None]
    else:
        data = np.moveaxis(data, 3, 0)
    fixtures[name] = {
        "shape": list(data.shape),
        "affine": can.affine.tolist(),
        "data": [float(x) for x in data.ravel()],
    }


# 1. RAS already, int16 with scaling.
a = affine(np.diag([2.0, 3.0, 4.0]), [10, 20, 30])
img = nib.Nifti1Image(grid((4, 5, 6)).astype(np.int16), a)
img.header.set_slope_inter(0.5, -3.0)
save(img, "ras_int16_scaled.nii.gz")
record("ras_int16_scaled.nii.gz")

# 2. LPS (as converted from DICOM), uint8, uncompressed.
a = affine(np.diag([-1.0, -1.0, 2.5]), [50, 60, -70])
save(nib.Nifti1Image(np.clip(grid((3, 4, 5)) / 4, 0, 255).astype(np.uint8), a),
     "lps_uint8.nii")
record("lps_uint8.nii")

# 3. Oblique and permuted: voxel axes i -> +S, j -> -R, k -> +A, rotated 25 degrees about z.
perm = np.array([[0, -1, 0], [0, 0, 1], [1, 0, 0]], float) @ np.diag([1.5, 0.8, 2.0])
a = affine(rot_z(25) @ perm, [-5, 7, 11])
save(nib.Nifti1Image(grid((5, 4, 3)).astype(np.float32) * 0.25, a), "oblique_float32.nii.gz")
record("oblique_float32.nii.gz")

# 4. NIfTI-2, float64, flipped along y only.
a = affine(np.diag([0.7, -0.9, 1.1]), [1, 2, 3])
save(nib.Nifti2Image(grid((4, 3, 2)) - 50.5, a), "nifti2_float64.nii")
record("nifti2_float64.nii")

# 5. qform only (sform_code 0), flipped x and z.
a = affine(np.diag([-1.2, 1.0, -3.0]), [9, 8, 7])
img = nib.Nifti1Image(grid((3, 3, 4)).astype(np.int32) - 100, a)
save(img, "qform_only_int32.nii.gz", sform=False)
record("qform_only_int32.nii.gz")

# 6. 4-D: three channels of int16.
a = affine(np.diag([1.0, 1.0, 2.0]), [0, 0, 0])
d4 = np.stack([grid((3, 4, 2)) + 1000 * t for t in range(3)], axis=3).astype(np.int16)
save(nib.Nifti1Image(d4, a), "multichannel_int16.nii.gz")
record("multichannel_int16.nii.gz")

# 7. Labels: on the grid of fixture 1, and one whose origin is off by a voxel.
a = affine(np.diag([2.0, 3.0, 4.0]), [10, 20, 30])
lab = (grid((4, 5, 6)).astype(np.int64) % 3).astype(np.uint8)
save(nib.Nifti1Image(lab, a), "label_ras.nii.gz")
record("label_ras.nii.gz")
save(nib.Nifti1Image(lab, affine(np.diag([2.0, 3.0, 4.0]), [12, 20, 30])),
     "label_shifted.nii.gz")
save(nib.Nifti1Image(lab[:, :, :5], a), "label_short.nii.gz")
save(nib.Nifti1Image(grid((4, 5, 6)).astype(np.float32) * 0.5, a), "label_fractional.nii.gz")

with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump(fixtures, f, indent=0)

# ---- the bad-input corpus ----
os.makedirs(BAD, exist_ok=True)
good = open(os.path.join(HERE, "lps_uint8.nii"), "rb").read()


def bad(name, data, compress=False):
    path = os.path.join(BAD, name)
    if compress:
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


def patch(data, offset, fmt, *values):
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


bad("empty.nii", b"")
bad("short_header.nii", good[:200])
bad("truncated_data.nii", good[:len(good) - 10])
gz = gzip.compress(patch(patch(patch(good, 42, "<h", 16), 44, "<h", 16), 46, "<h", 16)[:352]
                   + bytes(range(256)) * 16, mtime=0)
bad("truncated_stream.nii.gz", gz[:len(gz) - 30])  # header whole, voxels cut short
bad("not_gzip.nii.gz", b"this is not a gzip stream at all" * 20)
bad("wrong_magic.nii", patch(good, 344, "4s", b"xyz\0"))
bad("analyze.nii", patch(good, 344, "4s", b"\0\0\0\0"))
bad("bad_sizeof_hdr.nii", patch(good, 0, "<i", 123))
bad("zero_dim.nii", patch(good, 42, "<h", 0))
bad("negative_dim.nii", patch(good, 44, "<h", -4))
bad("bad_ndim.nii", patch(good, 40, "<h", 9))
bad("huge_dims.nii", patch(patch(patch(good, 42, "<h", 32000), 44, "<h", 32000), 46, "<h", 32000))
bad("complex64.nii", patch(patch(good, 70, "<h", 32), 72, "<h", 64))
bad("rgb24.nii", patch(patch(good, 70, "<h", 128), 72, "<h", 24))
bad("five_d.nii", patch(patch(patch(good, 40, "<h", 5), 48, "<h", 1), 50, "<h", 2))
# float32 data with a NaN and an Inf.
img = nib.Nifti1Image(np.ones((2, 2, 2), np.float32), np.eye(4))
nib.save(img, os.path.join(BAD, "nan.nii"))
raw = bytearray(open(os.path.join(BAD, "nan.nii"), "rb").read())
struct.pack_into("<f", raw, 352 + 4 * 3, float("nan"))
struct.pack_into("<f", raw, 352 + 4 * 5, float("inf"))
bad("nan.nii", bytes(raw))
# an sform of zeros (singular) with no qform.
sing = patch(good, 254, "<h", 1)  # sform_code = 1
sing = patch(sing, 252, "<h", 0)  # qform_code = 0
sing = patch(sing, 280, "<12f", *([0.0] * 12))
bad("singular_affine.nii", sing)
print("fixtures written:", sorted(fixtures))
