#!/usr/bin/env python3
"""Writes the hostile-file corpus of issue 13 (tests/data/hostile): small NIfTI and
safetensors files that were read wrongly, or at great cost, before the readers checked
them, and expected.json, which says what each must give (replayed by tests/test_nifti.c
and tests/test_safetensors.c, and seeds of the fuzz targets).

Standard library only. Run from the repository root:
    python3 tests/data/hostile/make_hostile.py
The large files are not committed; the tests build them at run time in /tmp. To write
them by hand for a manual check:
    python3 tests/data/hostile/make_hostile.py --bomb /tmp/bomb.nii.gz
    python3 tests/data/hostile/make_hostile.py --sparse /tmp/sparse.safetensors

Each expected.json entry: "file" (relative to this folder), "status" (the csal3d_status
name without CSAL3D_ERR_, or "OK"), "message" (strings the error message must hold; the
file's name is always checked too), and for NIfTI "options" (load options to set) and,
for files that load, "spacing" (the voxel spacing, sorted) and "sum" (of the voxels).
"""
import gzip
import json
import math
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ENTRIES = {"nifti": [], "safetensors": []}

# ---- NIfTI ----

# A 3 x 2 x 2 int16 image, values 1..12 (their sum is 78), spacing 2 x 3 x 4 mm.
SHAPE = (3, 2, 2)
VALUES = list(range(1, 13))
SPACING = (2.0, 3.0, 4.0)


def nifti1(vox_offset=352.0, pixdim=SPACING, slope=1.0, inter=0.0, qform=1, sform=0,
           magic=b"n+1\0", shape=SHAPE, datatype=4, bitpix=16, ext=b"\0\0\0\0"):
    """A NIfTI-1 header (348 bytes) and its 4-byte extension flag."""
    h = bytearray(348)
    struct.pack_into("<i", h, 0, 348)
    dims = [len(shape)] + list(shape) + [1] * (7 - len(shape))
    struct.pack_into("<8h", h, 40, *dims)
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1.0, *pixdim, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<fff", h, 108, vox_offset, slope, inter)
    h[123] = 2  # xyzt_units: mm
    struct.pack_into("<hh", h, 252, qform, sform)
    struct.pack_into("<6f", h, 256, 0, 0, 0, -10.0, 20.0, 30.0)  # identity quaternion
    srow = [[SPACING[0], 0, 0, -10.0], [0, SPACING[1], 0, 20.0], [0, 0, SPACING[2], 30.0]]
    struct.pack_into("<12f", h, 280, *[x for r in srow for x in r])
    h[344:348] = magic
    return bytes(h) + ext


def nifti2(vox_offset=544, pixdim=SPACING, slope=1.0, inter=0.0, qform=1, sform=0):
    h = bytearray(540)
    struct.pack_into("<i", h, 0, 540)
    h[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh", h, 12, 4, 16)
    struct.pack_into("<8q", h, 16, 3, *SHAPE, 1, 1, 1, 1)
    struct.pack_into("<8d", h, 104, 1.0, *pixdim, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<qdd", h, 168, vox_offset, slope, inter)
    struct.pack_into("<ii", h, 344, qform, sform)
    struct.pack_into("<6d", h, 352, 0, 0, 0, -10.0, 20.0, 30.0)
    struct.pack_into("<12d", h, 400, SPACING[0], 0, 0, -10.0, 0, SPACING[1], 0, 20.0, 0, 0,
                     SPACING[2], 30.0)
    struct.pack_into("<i", h, 500, 2)  # xyzt_units: mm
    return bytes(h) + b"\0\0\0\0"


DATA = struct.pack("<12h", *VALUES)


def write(sub, name, content, gz=False):
    os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    path = os.path.join(HERE, sub, name)
    if gz:
        # mtime 0 keeps the file identical from run to run.
        content = gzip.compress(content, compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(content)
    return sub + "/" + name


def nii(name, content, status, message=(), options=None, gz=False, spacing=None, total=None):
    e = {"file": write("nifti", name, content, gz), "status": status, "message": list(message)}
    if options:
        e["options"] = options
    if status == "OK":
        e["spacing"] = sorted(spacing or SPACING)
        e["sum"] = 78 if total is None else total
    ENTRIES["nifti"].append(e)


nii("baseline.nii", nifti1() + DATA, "OK")
nii("baseline_sform.nii.gz", nifti1(qform=0, sform=1) + DATA, "OK", gz=True)
nii("baseline_nifti2.nii", nifti2() + DATA, "OK")

# vox_offset below the header (nifticlib reads them from byte 348: every voxel shifted),
# not a number, not whole, or beyond the file.
for name, v, shown in [("negative", -352.0, "-352"), ("100", 100.0, "100"),
                       ("348", 348.0, "348"), ("zero", 0.0, "0"),
                       ("nan", float("nan"), "nan"), ("inf", float("inf"), "inf"),
                       ("fraction", 352.5, "352.5")]:
    nii(f"vox_offset_{name}.nii", nifti1(vox_offset=v) + DATA, "FORMAT",
        [f"vox_offset is {shown}", "at least 352"])
nii("vox_offset_1e30.nii", nifti1(vox_offset=1e30) + DATA, "FORMAT",
    ["vox_offset 1000000015047466219876688855040 is beyond the end of any file"])
nii("vox_offset_beyond.nii", nifti1(vox_offset=4096) + DATA, "FORMAT",
    ["vox_offset 4096 is beyond the end of the file (376 bytes)"])
nii("vox_offset_1e30.nii.gz", nifti1(vox_offset=1e30) + DATA, "FORMAT",
    ["is beyond the end of any file"], gz=True)
nii("vox_offset_1e8.nii.gz", nifti1(vox_offset=1e8) + DATA, "FORMAT",
    ["vox_offset 100000000 is beyond the end of the file", "cannot inflate to that much"],
    gz=True)
nii("vox_offset_beyond.nii.gz", nifti1(vox_offset=4096) + DATA, "FORMAT",
    ["vox_offset 4096 is beyond the end of the decompressed image data (376 bytes)"], gz=True)
# .hdr/.img pairs: vox_offset is the place of the voxels in the .img (0 is fine there).
PAIR = nifti1(vox_offset=0, magic=b"ni1\0")[:348]
write("nifti", "pair.img", DATA)
nii("pair.hdr", PAIR, "OK")
for name, v, msg in [("negative", -4.0, "vox_offset is -4; a .hdr/.img pair needs"),
                     ("beyond", 4096.0, "vox_offset 4096 is beyond the end of its image file "
                                        "(24 bytes)"),
                     ("1e30", 1e30, "is beyond the end of any file")]:
    write("nifti", f"pair_vox_offset_{name}.img", DATA)
    nii(f"pair_vox_offset_{name}.hdr", nifti1(vox_offset=v, magic=b"ni1\0")[:348], "FORMAT",
        [msg])
nii("nifti2_vox_offset_540.nii", nifti2(vox_offset=540) + DATA, "FORMAT",
    ["vox_offset is 540", "single-file NIfTI-2", "at least 544"])
nii("nifti2_vox_offset_negative.nii", nifti2(vox_offset=-1) + DATA, "FORMAT",
    ["vox_offset is -1"])
nii("nifti2_vox_offset_beyond.nii", nifti2(vox_offset=1 << 40) + DATA, "FORMAT",
    ["vox_offset 1099511627776 is beyond the end of the file (568 bytes)"])

# scl_inter not finite with a usable slope (nifticlib reads it as 0); with a slope of 0
# or NaN there is no scaling at all (nibabel's rule), whatever the intercept.
nii("scl_inter_inf.nii", nifti1(slope=2.0, inter=float("inf")) + DATA, "FORMAT",
    ["scl_inter is inf with scl_slope 2"])
nii("scl_inter_nan.nii", nifti1(slope=1.0, inter=float("nan")) + DATA, "FORMAT",
    ["scl_inter is nan with scl_slope 1"])
nii("nifti2_scl_inter_inf.nii", nifti2(slope=0.5, inter=float("-inf")) + DATA, "FORMAT",
    ["scl_inter is -inf with scl_slope 0.5"])
nii("scl_slope_zero_inter_inf.nii", nifti1(slope=0.0, inter=float("inf")) + DATA, "OK")
nii("scl_slope_nan_inter_nan.nii", nifti1(slope=float("nan"), inter=float("nan")) + DATA, "OK")
nii("scl_scaled.nii", nifti1(slope=2.0, inter=-1.0) + DATA, "OK", total=2 * 78 - 12)

# pixdim NaN, Inf or 0 where the affine comes from it (nifticlib makes each 1 mm).
AXES = "ijk"
for name, bad, shown in [("nan", float("nan"), "nan"), ("inf", float("inf"), "inf"),
                         ("zero", 0.0, "0")]:
    for axis in range(3):
        pd = list(SPACING)
        pd[axis] = bad
        nii(f"pixdim{axis + 1}_{name}_qform.nii", nifti1(pixdim=pd) + DATA, "FORMAT",
            [f"pixdim[{axis + 1}]", f"the file's {AXES[axis]} axis, is {shown}", "qform",
             "the option assume_spacing"])
    pd = [SPACING[0], SPACING[1], bad]
    nii(f"pixdim3_{name}_no_xform.nii", nifti1(pixdim=pd, qform=0) + DATA, "FORMAT",
        ["pixdim[3]", f"is {shown}", "no qform either", "the option assume_spacing"])
# ... unless the caller says which spacing to assume (only the unusable axes take it).
nii("pixdim2_zero_assumed.nii", nifti1(pixdim=[2.0, 0.0, 4.0]) + DATA, "OK",
    options={"assume_spacing": [7.0, 5.0, 7.0]}, spacing=[2.0, 5.0, 4.0])
nii("pixdim3_nan_no_xform_assumed.nii", nifti1(pixdim=[2.0, 3.0, float("nan")], qform=0)
    + DATA, "OK", options={"assume_spacing": [0, 0, 1.5]}, spacing=[2.0, 3.0, 1.5])
# An sform with valid columns does not need pixdim.
nii("pixdim_nan_sform.nii", nifti1(pixdim=[float("nan")] * 3, qform=0, sform=1) + DATA, "OK")
# With a qform, a negative pixdim is its magnitude (nibabel; nifticlib used 1 mm).
nii("pixdim1_negative_qform.nii", nifti1(pixdim=[-2.0, 3.0, 4.0]) + DATA, "OK")
nii("nifti2_pixdim1_zero_qform.nii", nifti2(pixdim=[0.0, 3.0, 4.0]) + DATA, "FORMAT",
    ["pixdim[1]", "is 0"])

# A gzip stream that inflates far beyond what the header promises (2 MiB of zeros after
# the 24 bytes of voxels): refused once it is past them, not read to its end.
nii("gzip_longer_than_promised.nii.gz", nifti1() + DATA + bytes(2 << 20), "FORMAT",
    ["the gzip stream inflates to more than the 376 bytes the header promises"], gz=True)
# A header that claims far more than its gzip file can inflate to.
big = nifti1(shape=(1024, 1024, 1024), datatype=2, bitpix=8)
nii("gzip_claims_too_much.nii.gz", big + bytes(4096), "IO",
    ["truncated", "1073741824 bytes of voxels", "more than a gzip file can inflate to"],
    gz=True)
# More than the memory budget (64^3 uint8 needs 2.3 MiB with its two float32 copies):
# refused from the header, before any voxel is read. The 1024^3 gzip bomb of the issue
# (1 MB on disk, 9 GiB to load) is built at run time by the test (see bomb() below).
nii("memory_budget.nii.gz", nifti1(shape=(64, 64, 64), datatype=2, bitpix=8) + bytes(1 << 18),
    "UNSUPPORTED", ["loading it would need 2.3 MiB", "262144 voxels: 256.0 KiB of uint8",
                    "2 float32 copies each of 1.0 MiB", "more than the limit of 1.0 MiB",
                    "the option max_memory"], options={"max_memory": 1 << 20}, gz=True)


def bomb(path, claim=(1024, 1024, 1024)):
    """A gzip bomb: a uint8 NIfTI of `claim` voxels, all zeros, as concatenated gzip
    members of 1 MiB of zeros each (about 1 KiB each): ~1 MB on disk for 1024^3."""
    n = claim[0] * claim[1] * claim[2]
    member = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(nifti1(shape=claim, datatype=2, bitpix=8), mtime=0))
        for _ in range((n + (1 << 20) - 1) >> 20):
            f.write(member)


# ---- safetensors ----


def st(header, data=b"", pad=True, length=None):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def tensor(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def sft(name, content, status, message=()):
    ENTRIES["safetensors"].append({"file": write("safetensors", name, content),
                                   "status": status, "message": list(message)})


sft("baseline.safetensors", st({"x": tensor("F32", [2], 0, 8)}, struct.pack("<2f", 1, 2)), "OK")
# The 8-byte length and the header's layout, checked against the file's size.
sft("length_zero.safetensors", st(b"", length=0), "FORMAT", ["header length is 0 bytes"])
sft("length_huge.safetensors", st({}, length=(1 << 64) - 1), "FORMAT",
    ["header length 18446744073709551615 exceeds the limit"])
sft("length_past_end.safetensors", st({}, length=4096), "FORMAT",
    ["header length 4096 but only 8 bytes follow"])
sft("claims_2gb.safetensors", st({"x": tensor("F32", [1 << 29], 0, 1 << 31)}), "FORMAT",
    ["tensors need 2147483648 bytes of data but the file holds only 0 after the header"])
sft("offsets_past_end.safetensors",
    st({"x": tensor("U8", [4], 1 << 40, (1 << 40) + 4)}, b"\0" * 4), "FORMAT",
    ["gap in the data section: bytes [0, 1099511627776)"])
sft("header_not_json.safetensors", st(b"{\"x\": [1, 2" + b" " * 30, b"\0" * 64), "FORMAT",
    ["header is not valid JSON"])
sft("data_offsets_negative.safetensors", st({"x": tensor("U8", [1], -1, 0)}, b"\0"), "FORMAT",
    ["tensor 'x': data_offsets is not [begin, end]"])


def sparse(path, size=2 << 30):
    """A sparse file of `size` bytes whose header is malformed: refused before its data
    section is read."""
    with open(path, "wb") as f:
        f.write(st(b"{\"x\": not json" + b" " * 18))
        f.truncate(size)


def main():
    if len(sys.argv) == 3 and sys.argv[1] in ("--bomb", "--sparse"):
        (bomb if sys.argv[1] == "--bomb" else sparse)(sys.argv[2])
        return
    if len(sys.argv) != 1:
        sys.exit(__doc__)
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(ENTRIES, f, indent=1, allow_nan=False)
        f.write("\n")
    print(f"{len(ENTRIES['nifti'])} NIfTI and {len(ENTRIES['safetensors'])} safetensors files")


main()
