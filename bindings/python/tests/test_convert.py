"""Tests of csal3d.convert: the safetensors writer/reader round trip, the layout the
C reader requires, atomic writes, the metadata (MONAI's names, the width and channels read
from the weights) and, where PyTorch is importable, .pt conversion end to end: a model's
weights saved by torch under the public checkpoints' key names, converted with
`python3 -m csal3d.convert`, load into csal3d and give the same features."""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import csal3d
from csal3d import convert
from tests.helpers import child_env

HAVE_TORCH = importlib.util.find_spec("torch") is not None
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class SafetensorsWriterTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "x.safetensors")

    def tearDown(self):
        self.dir.cleanup()

    def test_round_trip_and_layout(self):
        t = {
            "u8": np.arange(5, dtype=np.uint8),
            "w": np.arange(6, dtype=np.float32).reshape(2, 3),
            "labels": np.array([3, -1], dtype=np.int64),
            "h": np.array([1.5, -2], dtype=np.float16),
            "scalar": np.float64(7.25),
            "empty": np.zeros((0, 4), dtype=np.float32),
        }
        convert.write_safetensors(t, self.path, {"embed_dim": "12"})
        back, meta = convert.read_safetensors(self.path)
        self.assertEqual(meta, {"embed_dim": "12"})
        self.assertEqual(set(back), set(t))
        for k, v in t.items():
            np.testing.assert_array_equal(back[k], np.asarray(v))
            self.assertEqual(back[k].dtype, np.asarray(v).dtype)
        with open(self.path, "rb") as f:
            data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        self.assertEqual(n % 8, 0)
        header = json.loads(data[8:8 + n])
        ends = []
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            size = np.dtype(convert._NUMPY[info["dtype"]]).itemsize
            self.assertEqual(b % size, 0, name)  # aligned to its element size
            ends.append((b, e))
        ends.sort()
        at = 0
        for b, e in ends:  # the tensors tile the data section
            self.assertEqual(b, at)
            at = e
        self.assertEqual(at, len(data) - 8 - n)

    def test_bad_input_leaves_no_file(self):
        with self.assertRaises(TypeError):
            convert.write_safetensors({"c": np.zeros(2, dtype=np.complex64)}, self.path)
        with self.assertRaises(TypeError):
            convert.write_safetensors({"a": np.zeros(2)}, self.path, {"k": 3})
        with self.assertRaises(ValueError):
            convert.write_safetensors({"__metadata__": np.zeros(2)}, self.path)
        self.assertEqual(os.listdir(self.dir.name), [])

    def test_state_dict_of(self):
        inner = {"a": 1}
        self.assertIs(convert.state_dict_of({"state_dict": inner, "epoch": 3}), inner)
        self.assertIs(convert.state_dict_of({"model": inner}), inner)
        self.assertIs(convert.state_dict_of(inner), inner)
        with self.assertRaises(TypeError):
            convert.state_dict_of([1, 2])

    def test_command_line_errors(self):
        missing = os.path.join(self.dir.name, "missing.pt")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(convert.main([missing, self.path]), 1)
        self.assertIn("csal3d.convert:", err.getvalue())
        self.assertFalse(os.path.exists(self.path))

    def test_metadata_names_and_values(self):
        n = convert.normalize_metadata
        self.assertEqual(n({"feature_size": "48", "in_chans": 1}),
                         {"embed_dim": "48", "in_channels": "1"})
        self.assertEqual(n({"embed_dim": "48", "feature_size": " 48"}), {"embed_dim": "48"})
        self.assertEqual(n({"depths": "(2, 2, 6, 2)", "num_heads": "[3,6,12,24]"}),
                         {"depths": "2,2,6,2", "num_heads": "3,6,12,24"})
        self.assertEqual(n({"merge_order": "monai"}), {"merge_order": "monai"})
        with self.assertRaisesRegex(ValueError, "embed_dim: '48' and '24' disagree"):
            n({"embed_dim": "48", "feature_size": "24"})
        with self.assertRaisesRegex(ValueError, "feature_size='wide': not an integer"):
            n({"feature_size": "wide"})
        with self.assertRaisesRegex(ValueError, "depths"):
            n({"depths": "2,two"})

    def test_geometry_from_the_patch_embedding(self):
        geo, where = convert._geometry({
            "module.layers1.0.blocks.0.norm1.weight": np.zeros(24),
            "module.patch_embed.proj.weight": np.zeros((24, 4, 2, 2, 2))})
        self.assertEqual(geo, {"embed_dim": "24", "in_channels": "4"})
        self.assertIn("module.patch_embed.proj.weight [24, 4, 2, 2, 2]", where)
        self.assertEqual(convert._geometry({"w": np.zeros(3)}), ({}, None))


def _main(*args):
    """convert.main(ARGS) in this process: (returncode, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = convert.main(list(args))
    return rc, out.getvalue(), err.getvalue()


def _run_convert(*args):
    """python3 -m csal3d.convert ARGS in a child process: (returncode, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-m", "csal3d.convert"] + list(args), env=child_env(),
                       capture_output=True, text=True, timeout=300, check=False)
    return r.returncode, r.stdout, r.stderr


@unittest.skipUnless(HAVE_TORCH, "PyTorch is not installed (Debian: python3-torch)")
class TorchConversionTest(unittest.TestCase):  # pragma: no cover - depends on the machine
    @classmethod
    def setUpClass(cls):
        import torch
        cls.torch = torch
        cls.dir = tempfile.TemporaryDirectory()
        cls.ctx = csal3d.Context(device="cpu", threads=1, seed=0)
        cls.model = csal3d.SSLModel(cls.ctx, embed_dim=12, crop_size=32, seed=3)
        ckpt = os.path.join(cls.dir.name, "ours.safetensors")
        cls.model.save(ckpt)
        tensors, _ = convert.read_safetensors(ckpt)
        cls.params = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
        cls.x = np.random.default_rng(0).random((1, 1, 32, 32, 32), dtype=np.float32)
        cls.want = cls.model.encode(cls.x)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()
        cls.ctx.close()
        cls.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def save_pt(self, name, state_dict, **extra):
        t = self.torch
        sd = {k: t.from_numpy(np.array(v)) for k, v in state_dict.items()}
        obj = dict(extra, state_dict=sd) if extra else sd
        t.save(obj, self.path(name))
        return self.path(name)

    def tang_style(self):
        """The parameters under the public self-supervised checkpoints' names: module.*,
        the encoder without its swinViT prefix, mlp.fc1/fc2."""
        out = {}
        for k, v in self.params.items():
            k = k.replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2.")
            out["module." + k.replace("swinViT.", "", 1)] = v
        return out

    def test_tang_style_names_are_kept(self):
        src = self.save_pt("model_swinvit.pt", self.tang_style(), epoch=3)
        dst = self.path("swinvit.safetensors")
        rc, out, err = _run_convert(src, dst)
        self.assertEqual(rc, 0, err)
        self.assertIn("(embed_dim 12, in_channels 1)", out)
        tensors, meta = convert.read_safetensors(dst)
        self.assertEqual((meta["embed_dim"], meta["in_channels"]), ("12", "1"))
        self.assertEqual(meta["source"], "model_swinvit.pt")
        want = self.tang_style()
        self.assertEqual(set(tensors), set(want))
        for k, v in want.items():
            self.assertEqual(tensors[k].dtype, np.float32)
            np.testing.assert_array_equal(tensors[k], v, err_msg=k)

    def test_reference_weights_convert_to_the_fixtures(self):
        """The public-weight fixtures are what the converter writes from a .pth: bare
        MONAI state_dict and Tang et al.'s wrapped one give the same tensors (int64
        relative_position_index included) and the width and channels in the metadata."""
        folder = os.environ.get("CSAL3D_REFERENCE_DIR") or os.path.join(
            ROOT, "..", "shared", "reference")
        names = [n for n in ("swinunetr_e12_monai", "swinunetr_e12_tang_style")
                 if os.path.exists(os.path.join(folder, n + ".safetensors"))]
        if not names:
            self.skipTest(f"no public-weight fixtures in {folder}")
        for name in names:
            with self.subTest(name=name):
                want, want_meta = convert.read_safetensors(
                    os.path.join(folder, name + ".safetensors"))
                extra = {"epoch": 100} if "tang" in name else {}
                src = self.save_pt(name + ".pth", want, **extra)
                dst = self.path(name + ".safetensors")
                self.assertEqual(convert.convert(src, dst), len(want))
                got, meta = convert.read_safetensors(dst)
                self.assertEqual(set(got), set(want))
                for k, v in want.items():
                    self.assertEqual(got[k].dtype, v.dtype, k)
                    np.testing.assert_array_equal(got[k], v, err_msg=k)
                for key in ("embed_dim", "in_channels"):
                    self.assertEqual(meta[key], want_meta[key])

    def test_monai_names_and_contradictions(self):
        src = self.save_pt("monai.pth", self.params)  # a bare state_dict, MONAI's names
        dst = self.path("monai.safetensors")
        rc, out, err = _main(src, dst, "--meta", "feature_size=12", "--meta",
                             "depths=(2, 2, 2, 2)")
        self.assertEqual(rc, 0, err)
        _, meta = convert.read_safetensors(dst)
        self.assertEqual(meta["embed_dim"], "12")
        self.assertNotIn("feature_size", meta)
        self.assertEqual(meta["depths"], "2,2,2,2")
        with csal3d.SSLModel.load(self.ctx, dst) as m:
            np.testing.assert_array_equal(m.encode(self.x), self.want)
        os.unlink(dst)
        rc, _, err = _main(src, dst, "--meta", "feature_size=48")
        self.assertEqual(rc, 1)
        self.assertIn("the weights have embed_dim 12 (swinViT.patch_embed.proj.weight "
                      "[12, 1, 2, 2, 2]), the metadata given says 48", err)
        self.assertFalse(os.path.exists(dst))

    def test_pickled_objects_need_trust(self):
        src = self.save_pt("with_args.pt", {"w": np.ones(2, np.float32)},
                           args=argparse.Namespace(feature_size=12))
        dst = self.path("with_args.safetensors")
        rc, _, err = _main(src, dst)
        self.assertEqual(rc, 1)
        self.assertIn("--trust-pickle", err)
        self.assertFalse(os.path.exists(dst))
        rc, out, err = _main(src, dst, "--trust-pickle")
        self.assertEqual(rc, 0, err)
        self.assertIn("1 tensors written", out)

    def test_pt_conversion_in_process(self):
        t = self.torch
        src = self.path("m.pt")
        t.save({"state_dict": {"module.layers1.0.blocks.0.mlp.fc1.weight": t.ones(4, 2),
                               "idx": t.arange(3), "h": t.ones(2, dtype=t.float64)},
                "epoch": 1}, src)
        dst = self.path("m.safetensors")
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.assertEqual(convert.main([src, dst, "--meta", "embed_dim=48"]), 0)
        self.assertIn("3 tensors written (embed_dim 48)", out.getvalue())
        back, meta = convert.read_safetensors(dst)
        self.assertEqual(meta["embed_dim"], "48")
        self.assertEqual(back["idx"].dtype, np.int64)
        self.assertEqual(back["h"].dtype, np.float32)
        np.testing.assert_array_equal(back["module.layers1.0.blocks.0.mlp.fc1.weight"],
                                      np.ones((4, 2), np.float32))
        self.assertEqual(convert.convert(src, dst, keep_dtype=True), 3)
        self.assertEqual(convert.read_safetensors(dst)[0]["h"].dtype, np.float64)


if __name__ == "__main__":
    unittest.main()
