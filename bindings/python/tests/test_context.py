"""Tests of the binding's loader, errors and context."""

import os
import re
import unittest

import csal3d


class TestBasics(unittest.TestCase):
    def test_version(self):
        self.assertRegex(csal3d.version(), r"^\d+\.\d+\.\d+$")
        self.assertEqual(csal3d.__version__, csal3d.version())

    def test_context(self):
        with csal3d.Context(device="cpu", threads=2, seed=17) as ctx:
            self.assertEqual(ctx.device, "cpu")
            self.assertEqual(ctx.threads, 2)
            self.assertEqual(ctx.seed, 17)
        with self.assertRaises(ValueError):
            ctx.device  # closed

    def test_errors_carry_the_library_message(self):
        with self.assertRaises(csal3d.InvalidArgumentError) as cm:
            csal3d.Context(device="cpu", threads=-3)
        self.assertIsInstance(cm.exception, csal3d.Error)
        self.assertEqual(cm.exception.status, -1)
        self.assertIn("threads", str(cm.exception))

    def test_cuda_unavailable_is_an_exception(self):
        old = os.environ.get("CSAL3D_CUDA_PLUGIN")
        os.environ["CSAL3D_CUDA_PLUGIN"] = "/nonexistent/plugin.so"
        try:
            with self.assertRaises(csal3d.DeviceUnavailableError) as cm:
                csal3d.Context(device="cuda")
            self.assertIn("/nonexistent/plugin.so", str(cm.exception))
            self.assertFalse(csal3d.device_available("cuda"))
            self.assertTrue(csal3d.device_available("cpu"))
        finally:
            if old is None:
                del os.environ["CSAL3D_CUDA_PLUGIN"]
            else:
                os.environ["CSAL3D_CUDA_PLUGIN"] = old

    def test_log_callback(self):
        lines = []
        ctx = csal3d.Context(device="cpu", log=lambda lvl, msg: lines.append((lvl, msg)))
        ctx.close()
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0][0], "info")
        self.assertTrue(re.search(r"cpu engine, \d+ threads", lines[0][1]))


if __name__ == "__main__":
    unittest.main()
