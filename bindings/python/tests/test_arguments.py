"""Arguments checked before any work: np.asarray(volume), enum-like keywords (ValueError
listing the choices, never a bare KeyError), integers (no silent truncation), array shapes
(named in the error) and the provenance a selection carries into its manifest."""

import json
import os
import shutil
import tempfile
import unittest

import numpy as np

import csal3d


def _blobs(n=30, d=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(3, d))
    x = centres[rng.integers(0, 3, n)] + rng.normal(0, 0.3, size=(n, d))
    return x.astype(np.float32), rng.random(n).astype(np.float32)


class TestArrayProtocol(unittest.TestCase):
    def test_asarray_of_a_volume(self):
        data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
        v = csal3d.Volume.from_numpy(data)
        a = np.asarray(v)
        self.assertEqual(a.dtype, np.float32)
        np.testing.assert_array_equal(a, data)
        b = np.asarray(v, dtype=np.float64)
        self.assertEqual(b.dtype, np.float64)
        np.testing.assert_array_equal(b, data)
        c = np.array(v)
        c[0, 0, 0, 0] = -1  # a copy: the volume is unchanged
        self.assertEqual(v.to_numpy()[0, 0, 0, 0], 0)
        self.assertEqual(float(np.mean(v)), float(data.mean()))
        # NumPy 2 passes copy=: a copy is always made, so copy=False cannot be honoured.
        np.testing.assert_array_equal(v.__array__(copy=True), data)
        np.testing.assert_array_equal(v.__array__(None, None), data)
        with self.assertRaises(ValueError):
            v.__array__(copy=False)
        v.close()
        with self.assertRaisesRegex(ValueError, "the volume is closed"):
            np.asarray(v)


class TestChoices(unittest.TestCase):
    def assertChoices(self, fn, option, names):
        with self.assertRaises(ValueError) as cm:
            fn()
        self.assertNotIsInstance(cm.exception, KeyError)
        text = str(cm.exception)
        self.assertIn(option, text)
        for name in names:
            self.assertIn(repr(name), text)

    def test_every_enum_like_keyword(self):
        x, s = _blobs()
        self.assertChoices(lambda: csal3d.select(x, s, 2, kernel="rbf"), "kernel",
                           ["mkkm", "reference"])
        self.assertChoices(lambda: csal3d.Sampler("urds", gamma_mode="mean"), "gamma_mode",
                           ["median", "raw"])
        self.assertChoices(lambda: csal3d.Sampler("urds", kernel=7), "kernel",
                           ["mkkm", "reference"])
        self.assertChoices(lambda: csal3d.Context(log_level="verbose"), "log_level",
                           ["error", "warn", "info", "debug"])
        self.assertChoices(lambda: csal3d.Context(device="gpu"), "device",
                           ["auto", "cpu", "cuda"])
        self.assertChoices(lambda: csal3d.device_available("tpu"), "device", ["cpu", "cuda"])
        with csal3d.Context(device="cpu", threads=1) as ctx:
            self.assertChoices(lambda: csal3d.SSLModel(ctx, mask_mode="random"), "mask_mode",
                               ["hide", "keep"])
            self.assertChoices(lambda: csal3d.SSLModel(ctx, feature="mean"), "feature",
                               ["reduced", "full"])
            self.assertChoices(lambda: csal3d.SSLModel(ctx, rotation_input="cls"),
                               "rotation_input", ["mean", "first_token"])
            with csal3d.SSLModel(ctx, embed_dim=12, crop_size=32) as m:
                self.assertChoices(lambda: csal3d.Uncertainty(m, window=32, feature="mean"),
                                   "feature", ["default", "reduced", "full", "none"])
        v = csal3d.Volume.from_numpy(np.zeros((4, 4, 4)))
        self.assertChoices(lambda: v.save("/nonexistent/x.nii", dtype="float64"), "dtype",
                           ["auto", "float32", "int16", "uint8"])
        self.assertChoices(lambda: v.normalize("pet"), "modality", ["ct", "mri", "none"])
        with self.assertRaises(ValueError):  # the strategy: the library's list
            csal3d.select(x, s, 2, strategy="kcenter")


class TestIntegers(unittest.TestCase):
    def test_budget_and_counts_are_never_truncated(self):
        x, s = _blobs()
        for bad in (2.7, 2.0, "2", np.float64(3)):
            with self.assertRaisesRegex(TypeError, "budget must be an integer"):
                csal3d.select(x, s, bad)
        with csal3d.Sampler("urds") as sampler:
            with self.assertRaisesRegex(TypeError, "budget must be an integer, not 2.7"):
                sampler.select(2.7, x, s)
            self.assertEqual(len(sampler.select(np.int64(3), x, s)), 3)
        self.assertEqual(len(csal3d.select(x, s, np.int32(2))), 2)
        with self.assertRaisesRegex(TypeError, "n_cand"):
            csal3d.select(x, s, 2, n_cand=2.5)
        with self.assertRaisesRegex(TypeError, "seed"):
            csal3d.select(x, s, 2, seed=1.5)
        with self.assertRaisesRegex(TypeError, "typiclust_k"):
            csal3d.select(x, None, 2, strategy="typiclust", typiclust_k=3.5)
        with self.assertRaisesRegex(TypeError, "threads"):
            csal3d.Context(threads=1.5)
        with csal3d.Context(device="cpu", threads=1) as ctx:
            with self.assertRaisesRegex(TypeError, "iterations"):
                csal3d.SSLModel(ctx, iterations=2.5)
            with self.assertRaisesRegex(TypeError, "crop_size"):
                csal3d.SSLModel(ctx, crop_size=(32.5, 32, 32))
            with csal3d.SSLModel(ctx, embed_dim=12, crop_size=32) as m:
                with self.assertRaisesRegex(TypeError, "iterations"):
                    m.set_options(iterations=10.5)
                with self.assertRaisesRegex(TypeError, "window"):
                    csal3d.Uncertainty(m, window=32.5)
                m.set_options(lr=1, iterations=np.int64(5))  # floats take ints
                self.assertEqual(m.options["iterations"], 5)
                self.assertEqual(m.options["lr"], 1.0)
        v = csal3d.Volume.from_numpy(np.zeros((4, 4, 4)))
        with self.assertRaisesRegex(TypeError, "size"):
            v.crop((0, 0, 0), (2, 2, 2.5))


class TestShapes(unittest.TestCase):
    def test_scores_must_be_one_dimensional(self):
        x, s = _blobs()
        with self.assertRaisesRegex(ValueError, r"shape \(30,\), not of shape \(30, 1\)"):
            csal3d.select(x, s.reshape(-1, 1), 2)
        with self.assertRaisesRegex(ValueError, r"shape \(30,\), not of shape \(3, 10\)"):
            csal3d.select(x, s.reshape(3, 10), 2)
        with csal3d.Sampler("urds") as sampler:
            with self.assertRaisesRegex(ValueError, r"\(N,\)"):
                sampler.set_scores(s.reshape(1, -1))
            with self.assertRaisesRegex(ValueError, r"\(N,\), not of shape \(\)"):
                sampler.set_scores(np.float32(1))
        with csal3d.Scores(2, 3) as t:
            with self.assertRaisesRegex(ValueError, r"shape \(3,\), not shape \(1, 3\)"):
                t.set_case(0, "a", "a.nii", 0.5, [[1, 2, 3]])
            t.set_case(0, "a", "a.nii", 0.5, [1, 2, 3])


class TestProvenance(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="csal3d_py_provenance_")
        self.x, self.s = _blobs(n=24, seed=3)
        self.table = csal3d.Scores(len(self.x), self.x.shape[1])
        for i in range(len(self.x)):
            self.table.set_case(i, f"case{i:02d}", f"/d/case{i:02d}.nii.gz", self.s[i],
                                self.x[i])

    def tearDown(self):
        self.table.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def manifest(self, picks, **kw):
        path = os.path.join(self.dir, "sel.json")
        csal3d.write_manifest(self.table, picks, json=path, **kw)
        with open(path) as f:
            return json.load(f)

    def test_the_selection_records_how_it_was_made(self):
        picks = csal3d.select(self.x, None, 3, strategy="typiclust", seed=7)
        self.assertIsInstance(picks, list)
        self.assertEqual((picks.strategy, picks.seed, picks.n_cand, picks.budget),
                         ("typiclust", 7, 3, 3))
        self.assertEqual(picks.assignment.shape, (len(self.x),))
        self.assertEqual(picks.info["strategy"], "typiclust")
        j = self.manifest(picks)
        self.assertEqual(j["strategy"], "typiclust")
        self.assertEqual(j["seed"], 7)
        self.assertEqual(j["clusters"], {f"case{i:02d}": int(c)
                                         for i, c in enumerate(picks.assignment)})
        self.assertEqual(j["budget"], 3)
        # Repeating the same values is fine; contradicting them is refused.
        self.assertEqual(self.manifest(picks, strategy="TypiClust", seed=7)["seed"], 7)
        with self.assertRaisesRegex(ValueError, "strategy 'typiclust', not 'urds'"):
            self.manifest(picks, strategy="urds")
        with self.assertRaisesRegex(ValueError, "seed 7, not 0"):
            self.manifest(picks, seed=0)
        with self.assertRaisesRegex(ValueError, "assignment"):
            self.manifest(picks, assignment=np.zeros(len(self.x), np.int64))

    def test_a_sampler_records_its_seed_and_n_cand(self):
        with csal3d.Context(device="cpu", threads=1, seed=5) as ctx, \
                csal3d.Sampler("urds", n_cand=2, context=ctx) as sampler:
            picks = sampler.select(4, self.x, self.s)
            self.assertEqual((picks.strategy, picks.seed, picks.n_cand), ("urds", 5, 2))
            j = self.manifest(picks)
            self.assertEqual((j["strategy"], j["seed"], j["n_cand"]), ("urds", 5, 2))
            self.assertEqual(list(j["clusters"].values()), sampler.assignment.tolist())
        picks = csal3d.select(self.x, None, 2, strategy="random", seed=3)
        self.assertIsNone(picks.assignment)  # no clusters: none recorded
        j = self.manifest(picks)
        self.assertEqual((j["strategy"], j["seed"]), ("random", 3))
        self.assertNotIn("clusters", j)

    def test_plain_lists_take_what_is_given(self):
        picks = csal3d.select(self.x, None, 3, strategy="typiclust", seed=7)
        j = self.manifest(list(picks), strategy="typiclust", seed=7)
        self.assertEqual((j["strategy"], j["seed"]), ("typiclust", 7))
        j = self.manifest([p.index for p in picks])
        self.assertEqual((j["strategy"], j["seed"]), ("urds", 0))  # the documented defaults


if __name__ == "__main__":
    unittest.main()
