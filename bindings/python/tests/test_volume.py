"""Tests of csal3d.Volume, csal3d.Dataset and the phantom generator."""

import ctypes
import json
import os
import tempfile
import unittest

import numpy as np

import csal3d

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIX = os.path.join(ROOT, "tests", "data", "nifti")
BAD = os.path.join(ROOT, "tests", "data", "nifti_bad")
HOSTILE = os.path.join(ROOT, "tests", "data", "hostile", "nifti")

try:
    import nibabel
except ImportError:  # Debian's python3-nibabel; optional
    nibabel = None


class TestVolume(unittest.TestCase):
    def test_fixtures_match_expected(self):
        with open(os.path.join(FIX, "expected.json")) as f:
            expected = json.load(f)
        for name, e in expected.items():
            channel = "all" if "multichannel" in name else None
            v = csal3d.Volume.load(os.path.join(FIX, name), channel=channel)
            a = v.to_numpy()
            self.assertEqual(a.dtype, np.float32)
            self.assertEqual(list(a.shape), e["shape"], name)
            self.assertEqual(v.shape, tuple(e["shape"]))
            np.testing.assert_array_equal(a.ravel(), np.float32(e["data"]), err_msg=name)
            np.testing.assert_allclose(v.affine, e["affine"], atol=1e-5)
            np.testing.assert_allclose(v.spacing, np.linalg.norm(v.affine[:3, :3], axis=0))

    def test_axis_order_is_nibabel_canonical(self):
        if nibabel is None:
            self.skipTest("nibabel is not installed")
        for name in ("oblique_float32.nii.gz", "lps_uint8.nii", "qform_only_int32.nii.gz"):
            path = os.path.join(FIX, name)
            can = nibabel.as_closest_canonical(nibabel.load(path))
            v = csal3d.Volume.load(path)
            np.testing.assert_array_equal(v.to_numpy()[0], can.get_fdata().astype(np.float32))
            np.testing.assert_allclose(v.affine, can.affine, atol=1e-5)

    def test_errors(self):
        with self.assertRaises(csal3d.InvalidArgumentError) as cm:
            csal3d.Volume.load(os.path.join(FIX, "multichannel_int16.nii.gz"))
        self.assertIn("4-D image with 3 channels", str(cm.exception))
        with self.assertRaises(csal3d.FormatError):
            csal3d.Volume.load(os.path.join(BAD, "wrong_magic.nii"))
        with self.assertRaises(csal3d.NumericalError):
            csal3d.Volume.load(os.path.join(BAD, "nan.nii"))
        with self.assertRaises(csal3d.UnsupportedError):
            csal3d.Volume.load(os.path.join(BAD, "complex64.nii"))
        with self.assertRaises(csal3d.IOError_):
            csal3d.Volume.load(os.path.join(BAD, "missing.nii.gz"))
        with self.assertRaises(ValueError):
            csal3d.Volume.load(os.path.join(FIX, "lps_uint8.nii"), modality="pet")
        v = csal3d.Volume.load(os.path.join(BAD, "nan.nii"), allow_nonfinite=True)
        self.assertEqual(int((v.to_numpy() == 0).sum()), 2)

    def test_load_options_hostile_headers(self):
        from csal3d import volume
        o = volume._load_options()
        self.assertEqual(o.struct_size, ctypes.sizeof(volume._LoadOptions))
        path = os.path.join(HOSTILE, "pixdim3_zero_qform.nii")
        with self.assertRaises(csal3d.FormatError) as cm:
            csal3d.Volume.load(path)
        self.assertIn("pixdim[3]", str(cm.exception))
        self.assertIn("assume_spacing", str(cm.exception))
        v = csal3d.Volume.load(path, assume_spacing=[0, 0, 1.5])
        self.assertEqual(sorted(np.round(v.spacing, 6)), [1.5, 2.0, 3.0])
        v = csal3d.Volume.load_label(path, assume_spacing=2.5)
        self.assertEqual(sorted(np.round(v.spacing, 6)), [2.0, 2.5, 3.0])
        with self.assertRaises(ValueError):
            csal3d.Volume.load(path, assume_spacing=[1, 2])
        with self.assertRaises(csal3d.UnsupportedError) as cm:
            csal3d.Volume.load(os.path.join(FIX, "lps_uint8.nii"), max_memory=100)
        self.assertIn("max_memory", str(cm.exception))

    def test_channels_and_modality(self):
        path = os.path.join(FIX, "multichannel_int16.nii.gz")
        allc = csal3d.Volume.load(path, channel="all")
        one = csal3d.Volume.load(path, channel=2)
        np.testing.assert_array_equal(allc.to_numpy()[2], one.to_numpy()[0])
        mri = csal3d.Volume.load(path, channel="all", modality="mri").to_numpy()
        self.assertEqual(mri.min(), 0.0)
        self.assertEqual(mri.max(), 1.0)
        for c in range(3):  # per channel, each spans [0, 1]
            self.assertEqual(mri[c].min(), 0.0)
            self.assertEqual(mri[c].max(), 1.0)
        ct = csal3d.Volume.load(os.path.join(FIX, "ras_int16_scaled.nii.gz"), modality="ct")
        raw = csal3d.Volume.load(os.path.join(FIX, "ras_int16_scaled.nii.gz")).to_numpy()
        np.testing.assert_allclose(ct.to_numpy(), (np.clip(raw, -1024, 1024) + 1024) / 2048,
                                   rtol=1e-6)

    def test_save_round_trip_and_maps(self):
        v = csal3d.Volume.load(os.path.join(FIX, "oblique_float32.nii.gz"))
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "copy.nii.gz")
            v.save(p)
            w = csal3d.Volume.load(p)
            np.testing.assert_array_equal(v.to_numpy(), w.to_numpy())
            np.testing.assert_allclose(v.affine, w.affine, atol=1e-5)
            # A map computed on the volume, saved on the input grid.
            m = v.like(v.to_numpy()[0] * 2.0)
            p2 = os.path.join(d, "map.nii")
            m.save(p2)
            if nibabel is not None:
                src = nibabel.load(os.path.join(FIX, "oblique_float32.nii.gz"))
                out = nibabel.load(p2)
                self.assertEqual(out.shape, src.shape)  # the input's own voxel order
                np.testing.assert_allclose(out.affine, src.affine, atol=1e-5)
                np.testing.assert_allclose(out.get_fdata(), src.get_fdata() * 2.0, rtol=1e-6)
            with self.assertRaises(csal3d.InvalidArgumentError):
                m.save(os.path.join(d, "x.png"))
            self.assertEqual([f for f in os.listdir(d) if ".tmp." in f], [])

    def test_from_numpy_and_geometry(self):
        a = np.arange(2 * 4 * 5 * 6, dtype=np.float32).reshape(2, 4, 5, 6)
        aff = np.diag([2.0, 3.0, 4.0, 1.0])
        v = csal3d.Volume.from_numpy(a, aff)
        self.assertEqual(v.shape, (2, 4, 5, 6))
        self.assertEqual(v.spacing, (2.0, 3.0, 4.0))
        np.testing.assert_array_equal(v.to_numpy(), a)
        c = v.crop((1, 1, 1), (2, 2, 2))
        np.testing.assert_array_equal(c.to_numpy(), a[:, 1:3, 1:3, 1:3])
        np.testing.assert_allclose(c.affine[:3, 3], [2.0, 3.0, 4.0])
        p = v.crop_or_pad((6, 5, 4), pad_value=-1)
        np.testing.assert_array_equal(p.to_numpy()[:, 1:5, :, :], a[:, :, :, 1:5])
        self.assertTrue((p.to_numpy()[:, 0] == -1).all())
        r = v.resample((1.0, 0, 0))
        self.assertEqual(r.shape, (2, 8, 5, 6))
        crop, lo = v.random_crop((2, 2, 2), seed=3, item=4)
        crop2, lo2 = v.random_crop((2, 2, 2), seed=3, item=4)
        self.assertEqual(lo, lo2)
        np.testing.assert_array_equal(crop.to_numpy(), a[:, lo[0]:lo[0] + 2, lo[1]:lo[1] + 2,
                                                        lo[2]:lo[2] + 2])
        fg = np.zeros((4, 5, 6), np.float32)
        fg[1, 2:4, 5] = 1
        self.assertEqual(csal3d.Volume.from_numpy(fg).foreground_bbox(),
                         ((1, 2, 5), (2, 4, 6)))
        with self.assertRaises(ValueError):
            csal3d.Volume.from_numpy(np.zeros((2, 2)))


class TestDataset(unittest.TestCase):
    def test_phantom_dataset(self):
        with tempfile.TemporaryDirectory() as d:
            ds = csal3d.generate_phantom(d, cases=4, seed=1, size=24, slices=16)
            self.assertEqual(len(ds), 4)
            self.assertEqual(ds.modality, "ct")
            ids = [c.id for c in ds]
            self.assertEqual(ids, [f"phantom_{i:03d}" for i in range(4)])
            case = ds[-1]
            self.assertTrue(case.label_path.endswith("labelsTr/phantom_003.nii.gz"))
            img = case.load_image(modality="ct")
            lab = case.load_label(img)
            self.assertTrue(lab.is_label)
            self.assertEqual(img.shape, lab.shape)
            x = img.to_numpy()
            self.assertTrue(0.0 <= x.min() and x.max() <= 1.0)
            self.assertTrue(set(np.unique(lab.to_numpy())) <= {0, 1, 2, 3, 4})
            with open(os.path.join(d, "dataset.json")) as f:
                meta = json.load(f)
            self.assertEqual(len(meta["phantom"]), 4)
            with self.assertRaises(IndexError):
                ds[4]

    def test_text_list(self):
        with tempfile.TemporaryDirectory() as d:
            a = np.ones((3, 3, 3), np.float32)
            csal3d.Volume.from_numpy(a).save(os.path.join(d, "s1_0000.nii.gz"))
            csal3d.Volume.from_numpy(a).save(os.path.join(d, "s1_0001.nii.gz"))
            # A plain folder is not nnU-Net's: two cases, unless channel_suffix says so.
            self.assertEqual([c.id for c in csal3d.Dataset(d)], ["s1_0000", "s1_0001"])
            ds = csal3d.Dataset(d, channel_suffix="always")
            self.assertEqual(len(ds), 1)
            self.assertEqual(len(ds[0].image_paths), 2)
            self.assertEqual(ds[0].load_image().shape, (2, 3, 3, 3))
            with self.assertRaises(ValueError):
                csal3d.Dataset(d, channel_suffix="sometimes")
            with open(os.path.join(d, "list.txt"), "w") as f:
                f.write("# cases\ns1_0000.nii.gz\n")
            self.assertEqual([c.id for c in csal3d.Dataset(os.path.join(d, "list.txt"))],
                             ["s1_0000"])
            self.assertEqual([c.id for c in csal3d.Dataset(os.path.join(d, "list.txt"),
                                                           channel_suffix="always")], ["s1"])
            # Channels on one line; a CSV with a header.
            with open(os.path.join(d, "list.txt"), "w") as f:
                f.write("s1_0000.nii.gz;s1_0001.nii.gz\n")
            ds = csal3d.Dataset(os.path.join(d, "list.txt"))
            self.assertEqual(ds[0].load_image().shape, (2, 3, 3, 3))
            with open(os.path.join(d, "cases.csv"), "w") as f:
                f.write("id,image_0,image_1\nsubject,s1_0000.nii.gz,s1_0001.nii.gz\n")
            ds = csal3d.Dataset(os.path.join(d, "cases.csv"))
            self.assertEqual([c.id for c in ds], ["subject"])
            self.assertEqual(len(ds[0].image_paths), 2)
            with self.assertRaises(csal3d.FormatError) as cm:
                csal3d.Dataset(_write(os.path.join(d, "x.json"), "{]"))
            self.assertIn("x.json:1:", str(cm.exception))


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


if __name__ == "__main__":
    unittest.main()
