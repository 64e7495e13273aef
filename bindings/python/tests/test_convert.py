"""Tests of csal3d.convert: the safetensors writer/reader round trip, the layout the
C reader requires, atomic writes and (when PyTorch is installed) .pt conversion."""

import contextlib
import io
import json
import os
import struct
import tempfile
import unittest

import numpy as np

from csal3d import convert


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

    @unittest.skipUnless(__import__("importlib").util.find_spec("torch"), "PyTorch not installed")
    def test_pt_conversion(self):  # pragma: no cover - depends on the machine
        import torch
        src = os.path.join(self.dir.name, "m.pt")
        torch.save({"state_dict": {"module.layers1.0.blocks.0.mlp.fc1.weight": torch.ones(4, 2),
                                   "idx": torch.arange(3)}, "epoch": 1}, src)
        self.assertEqual(convert.main([src, self.path, "--meta", "embed_dim=48"]), 0)
        back, meta = convert.read_safetensors(self.path)
        self.assertEqual(meta["embed_dim"], "48")
        self.assertEqual(back["idx"].dtype, np.int64)
        np.testing.assert_array_equal(back["module.layers1.0.blocks.0.mlp.fc1.weight"],
                                      np.ones((4, 2), np.float32))


if __name__ == "__main__":
    unittest.main()
