"""Tests of csal3d.SSLModel, csal3d.Uncertainty and the pipeline's files (csal3d.Scores,
write_manifest, export_nnunet, score_dataset) on a tiny phantom dataset. Small shapes
(embed_dim 12, 64x32x32 crops) keep them to a few seconds of model time."""

import csv
import json
import math
import os
import unittest

import numpy as np

import csal3d
from csal3d import pipeline, ssl, uncertainty

from tests.helpers import DatasetModelTest

CROP = (64, 32, 32)


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


class _Base(DatasetModelTest):
    MODEL = dict(embed_dim=12, crop_size=CROP, batch_size=1, iterations=4, seed=1,
                 warmup_steps=1)

    @classmethod
    def make_dataset(cls, folder):
        cls.data = os.path.join(folder, "phantom")
        return csal3d.generate_phantom(cls.data, cases=4, size=40, slices=24, seed=2)

    def volume(self, i=0):
        return self.dataset[i].load_image(modality="ct", spacing=12)


class TestStructs(unittest.TestCase):
    def test_struct_layouts_match_the_library(self):
        import ctypes
        o = ssl._Options()
        ssl._options_init(ctypes.byref(o))
        self.assertEqual(o.struct_size, ctypes.sizeof(ssl._Options))
        self.assertEqual((o.embed_dim, o.batch_size, o.iterations), (48, 4, 30000))
        self.assertEqual(list(o.crop_size), [128] * 3)
        self.assertAlmostEqual(o.mask_ratio, 0.3)
        self.assertEqual(o.cache_bytes, 1 << 30)
        u = uncertainty._Options()
        uncertainty._options_init(ctypes.byref(u))
        self.assertEqual(u.struct_size, ctypes.sizeof(uncertainty._Options))
        self.assertEqual((list(u.window), list(u.stride), u.keep_map), ([128] * 3, [64] * 3, 1))
        m = pipeline._ManifestOptions()
        pipeline._manifest_init(ctypes.byref(m))
        self.assertEqual(m.struct_size, ctypes.sizeof(pipeline._ManifestOptions))
        self.assertEqual(m.n_cand, 3)
        n = pipeline._NnunetOptions()
        pipeline._nnunet_init(ctypes.byref(n))
        self.assertEqual(n.struct_size, ctypes.sizeof(pipeline._NnunetOptions))
        w = pipeline._SelectionOutputs()
        pipeline._outputs_init(ctypes.byref(w))
        self.assertEqual(w.struct_size, ctypes.sizeof(pipeline._SelectionOutputs))
        so = pipeline._ScoreOptions()
        pipeline._score_init(ctypes.byref(so))
        self.assertEqual(so.struct_size, ctypes.sizeof(pipeline._ScoreOptions))
        self.assertEqual((so.resume, so.on_error, so.overwrite), (1, 0, 0))


class TestSSLModel(_Base):
    def test_options_steps_save_load(self):
        m = self.model()
        self.assertEqual(m.step, 0)
        self.assertEqual(m.options["crop_size"], CROP)
        self.assertEqual(m.options["rotation_input"], "mean")
        self.assertEqual(m.feature_dim, 64)  # 16C / 3 for C = 12
        with self.assertRaises(csal3d.StateError):
            m.last_losses
        rng = np.random.default_rng(0)
        crops = rng.random((1, 1) + CROP, dtype=np.float32)
        l1 = m.train_step(crops)
        self.assertEqual(m.step, 1)
        self.assertEqual(l1.step, 0)
        for v in (l1.loss, l1.inpainting, l1.rotation, l1.consistency, l1.grad_norm):
            self.assertTrue(math.isfinite(v))
        self.assertAlmostEqual(l1.loss, l1.inpainting + l1.rotation + l1.consistency, places=5)
        self.assertEqual(m.last_losses, l1)
        path = os.path.join(self.dir, "m.safetensors")
        m.save(path)
        m2 = csal3d.SSLModel.load(self.ctx, path)
        self.assertEqual(m2.step, 1)
        self.assertEqual(m2.options["crop_size"], CROP)
        # The same state continues the same way.
        self.assertEqual(m.train_step(crops), m2.train_step(crops))
        with self.assertRaises(csal3d.InvalidArgumentError):
            m2.set_options(embed_dim=24)
        m2.set_options(iterations=10)
        self.assertEqual(m2.options["iterations"], 10)
        with self.assertRaises(TypeError):
            m2.set_options(colour=1)
        with self.assertRaises(csal3d.IOError_):
            csal3d.SSLModel.load(self.ctx, os.path.join(self.dir, "missing.safetensors"))

    def test_encode_and_reconstruct(self):
        m = self.model()
        x = np.random.default_rng(1).random((2, 1) + CROP, dtype=np.float32)
        z = m.encode(x)
        self.assertEqual(z.shape, (2, 64))
        self.assertTrue(np.all(np.isfinite(z)))
        np.testing.assert_array_equal(m.encode(x[1:]), z[1:])
        r, logits = m.reconstruct(x[:1], logits=True)
        self.assertEqual(r.shape, (1, 1) + CROP)
        self.assertEqual(logits.shape, (1, 4))
        v = self.volume()
        f = m.encode_volume(v, window=CROP)
        self.assertEqual(f.shape, (64,))
        with self.assertRaises(csal3d.InvalidArgumentError):
            m.encode(np.zeros((1, 1, 48, 32, 32), np.float32))

    def test_train_over_a_dataset_and_cancel(self):
        m = self.model(iterations=2)
        seen = []
        m.train(self.dataset, modality="ct", spacing=12,
                on_step=lambda losses, total: seen.append((losses.step, total)))
        self.assertEqual(seen, [(0, 2), (1, 2)])
        self.assertEqual(m.step, 2)
        m.set_options(iterations=4)
        with self.assertRaises(csal3d.CancelledError):
            m.train(self.dataset, modality="ct", spacing=12, on_step=lambda l, t: True)
        self.assertEqual(m.step, 3)  # the step before the cancellation is kept

        def boom(losses, total):
            raise KeyError("from the callback")
        with self.assertRaises(KeyError):
            m.train(self.dataset, modality="ct", spacing=12, on_step=boom)


class TestUncertainty(_Base):
    def test_score_map_feature(self):
        m = self.model()
        u = csal3d.Uncertainty(m, window=CROP, stride=CROP)
        self.assertEqual(u.stride, CROP)
        self.assertEqual(u.feature_dim, 64)
        v = self.volume(1)
        s, f = u.score(v, volume_id=1)
        self.assertTrue(math.isfinite(s) and s > 0)
        np.testing.assert_array_equal(f, m.encode_volume(v, window=CROP, stride=CROP))
        umap = u.map()  # the map of the last volume scored
        self.assertEqual(umap.shape[1:], v.shape[1:])
        a = umap.to_numpy()
        self.assertTrue(np.all(a >= 0))
        self.assertAlmostEqual(float(a.astype(np.float64).mean()), s, places=6)
        p = os.path.join(self.dir, "u.nii.gz")
        u.save_map(p)
        self.assertTrue(os.path.exists(p))
        s2, f2 = u.score(v, volume_id=1)
        self.assertEqual(s, s2)  # same draws
        s3, _ = u.score(v, volume_id=2)
        self.assertNotEqual(s, s3)  # other masks
        none = csal3d.Uncertainty(m, window=CROP, feature="none", keep_map=False)
        s4, f4 = none.score(v, volume_id=1)
        self.assertIsNone(f4)
        with self.assertRaises(csal3d.StateError):
            none.map()
        with self.assertRaises(csal3d.InvalidArgumentError):
            csal3d.Uncertainty(m, window=48)


class TestScores(_Base):
    def test_round_trip_and_errors(self):
        t = csal3d.Scores(3, 2)
        self.assertEqual(t.shape, (3, 2))
        t.set_case(0, "a", "/d/a.nii.gz", 0.5, [1, 2], label="/d/a_seg.nii.gz")
        t.set_case(1, "b", ["/d/b_0000.nii.gz", "/d/b_0001.nii.gz"], 0.25, [3, 4])
        with self.assertRaises(csal3d.StateError):
            t.save(os.path.join(self.dir, "x.safetensors"))
        with self.assertRaises(csal3d.NumericalError):
            t.set_case(2, "c", "c.nii", float("nan"), [0, 0])
        with self.assertRaises(ValueError):
            t.set_case(2, "c", "c.nii", 0.0, [0, 0, 0])
        t.set_case(2, "c", "c.nii", 0.0, [5, 6])
        t.set_case_map(2, "maps/c.nii.gz")
        t.set_metadata("checkpoint", "m.safetensors")
        path = os.path.join(self.dir, "s.safetensors")
        t.save(path)
        r = csal3d.Scores.load(path)
        self.assertEqual(r.ids, ["a", "b", "c"])
        self.assertEqual(r.case_images(1), ["/d/b_0000.nii.gz", "/d/b_0001.nii.gz"])
        self.assertEqual(r.label_paths, ["/d/a_seg.nii.gz", None, None])
        self.assertEqual(r.image_paths[2], os.path.join(os.getcwd(), "c.nii"))
        self.assertEqual(r.map_paths[2], os.path.join(os.getcwd(), "maps/c.nii.gz"))
        np.testing.assert_array_equal(r.scores, np.float32([0.5, 0.25, 0]))
        np.testing.assert_array_equal(r.features, np.float32([[1, 2], [3, 4], [5, 6]]))
        self.assertEqual(r.metadata, {"checkpoint": "m.safetensors"})
        raw = bytearray(_read(path, "rb"))
        raw[-1] ^= 1
        bad = os.path.join(self.dir, "bad.safetensors")
        _write(bad, bytes(raw))
        with self.assertRaises(csal3d.ChecksumError):
            csal3d.Scores.load(bad)
        with self.assertRaises(csal3d.IOError_):
            csal3d.Scores.load(os.path.join(self.dir, "none.safetensors"))
        _write(bad, b"not a safetensors file")
        with self.assertRaises(csal3d.FormatError):
            csal3d.Scores.load(bad)

    def test_score_dataset_resumes_bitwise(self):
        m = self.model(iterations=1)
        ref = os.path.join(self.dir, "ref.safetensors")
        kw = dict(modality="ct", spacing=12, window=CROP, stride=CROP)
        csal3d.score_dataset(m, self.dataset, output=ref, **kw)
        out = os.path.join(self.dir, "resumed.safetensors")
        with self.assertRaises(csal3d.CancelledError):
            csal3d.score_dataset(m, self.dataset, output=out,
                                 progress=lambda i, n, cid, s: i >= 2, **kw)
        self.assertFalse(os.path.exists(out))
        self.assertTrue(os.path.exists(out + ".partial"))
        table = csal3d.score_dataset(m, self.dataset, output=out, **kw)
        self.assertFalse(os.path.exists(out + ".partial"))
        self.assertEqual(_read(ref, "rb"), _read(out, "rb"))
        self.assertEqual(table.metadata["draws"], "case-id")
        self.assertEqual(table.metadata["spacing"], "12,12,12")
        # an existing output is refused before any work, unless overwriting
        with self.assertRaises(csal3d.IOError_):
            csal3d.score_dataset(m, self.dataset, output=out, **kw)
        # a subset in another order: the same values per case
        sub = csal3d.score_dataset(m, self.dataset, cases=[3, 1], **kw)
        self.assertEqual(sub.ids, [table.ids[3], table.ids[1]])
        np.testing.assert_array_equal(sub.scores, table.scores[[3, 1]])
        np.testing.assert_array_equal(sub.features, table.features[[3, 1]])
        # an exception in the progress callback stops the run and comes back
        with self.assertRaises(ZeroDivisionError):
            csal3d.score_dataset(m, self.dataset, progress=lambda i, n, c, s: 1 / 0, **kw)

    def test_tool_and_python_write_the_same_scores_file(self):
        lib = os.environ.get("CSAL3D_LIBRARY", "")
        tool = os.path.join(os.path.dirname(lib), "..", "bin", "csal3d")
        if not os.access(tool, os.X_OK):
            self.skipTest("the csal3d tool is not built beside the library")
        m = self.model(iterations=1)
        m.train(self.dataset, modality="ct", spacing=12)
        ckpt = os.path.join(self.dir, "same.safetensors")
        m.save(ckpt)
        loaded = csal3d.SSLModel.load(self.ctx, ckpt)
        a = os.path.join(self.dir, "same_python.safetensors")
        csal3d.score_dataset(loaded, self.dataset, window=CROP, stride=CROP, output=a)
        b = os.path.join(self.dir, "same_tool.safetensors")
        import subprocess
        w = ",".join(str(x) for x in CROP)
        subprocess.run([tool, "score", ckpt, self.data, "-o", b, "--window", w, "--stride", w,
                        "--threads", "1", "--quiet"], check=True)
        self.assertEqual(csal3d.Scores.load(a).metadata, csal3d.Scores.load(b).metadata)
        self.assertEqual(_read(a, "rb"), _read(b, "rb"))
        self.assertEqual(csal3d.Scores.load(a).metadata["spacing"], "12,12,12")

    def test_pipeline_score_select_manifest_export(self):
        m = self.model(iterations=1)
        m.train(self.dataset, modality="ct", spacing=12)
        seen = []
        maps = os.path.join(self.dir, "maps")
        table = csal3d.score_dataset(m, self.dataset, spacing=12, window=CROP, stride=CROP,
                                     maps_dir=maps,
                                     progress=lambda i, n, cid, s: seen.append((i, n, cid)))
        self.assertEqual([s[:2] for s in seen], [(1, 4), (2, 4), (3, 4), (4, 4)])
        self.assertEqual(table.ids, [c.id for c in self.dataset])
        self.assertEqual(len(os.listdir(maps)), 4)
        self.assertTrue(np.all(table.scores > 0))
        self.assertEqual(table.metadata["modality"], "ct")
        # The same sweep as Uncertainty.score keyed by the case's id.
        u = csal3d.Uncertainty(m, window=CROP, stride=CROP)
        s, f = u.score(self.volume(2), volume_id=csal3d.case_key(table.ids[2]))
        self.assertEqual(np.float32(s), table.scores[2])
        np.testing.assert_array_equal(f, table.features[2])
        path = os.path.join(self.dir, "scores.safetensors")
        table.save(path)
        loaded = csal3d.Scores.load(path)
        sampler = csal3d.Sampler("urds", seed=0, context=self.ctx)
        picks = sampler.select(2, loaded.features, loaded.scores)
        self.assertEqual(len({p.index for p in picks}), 2)
        csv_path = os.path.join(self.dir, "sel.csv")
        json_path = os.path.join(self.dir, "sel.json")
        csal3d.write_manifest(loaded, picks, csv=csv_path, json=json_path, seed=0,
                              scores_path=path, assignment=sampler.assignment)
        rows = list(csv.DictReader(_read(csv_path).splitlines()))
        self.assertEqual([r["case"] for r in rows], [loaded.ids[p.index] for p in picks])
        self.assertEqual([r["rule"] for r in rows], [p.rule for p in picks])
        self.assertAlmostEqual(float(rows[0]["score"]), picks[0].score, places=6)
        j = json.loads(_read(json_path))
        self.assertEqual(j["strategy"], "urds")
        self.assertEqual(len(j["clusters"]), 4)
        self.assertEqual(j["scores_metadata"]["dataset"], os.path.abspath(self.data))
        # Indices work as a selection too.
        csal3d.write_manifest(loaded, [3, 0], csv=csv_path)
        self.assertEqual([r["case"] for r in csv.DictReader(_read(csv_path).splitlines())],
                         [loaded.ids[3], loaded.ids[0]])
        # The strategy by the library's names; n_cand only where the strategy reads it.
        self.assertEqual(j["n_cand"], 3)
        csal3d.write_manifest(loaded, [3, 0], json=json_path, strategy="TYPICLUST")
        j = json.loads(_read(json_path))
        self.assertEqual(j["strategy"], "typiclust")
        self.assertNotIn("n_cand", j)
        with self.assertRaises(ValueError):
            csal3d.write_manifest(loaded, [3, 0], json=json_path, strategy="kcenter")
        out = os.path.join(self.dir, "raw", "Dataset900_Phantom")
        csal3d.export_nnunet(loaded, picks, out)
        ids = sorted(loaded.ids[p.index] for p in picks)
        self.assertEqual(sorted(os.listdir(os.path.join(out, "imagesTr"))),
                         [i + "_0000.nii.gz" for i in ids])
        self.assertEqual(sorted(os.listdir(os.path.join(out, "labelsTr"))),
                         [i + ".nii.gz" for i in ids])
        d = json.loads(_read(os.path.join(out, "dataset.json")))
        self.assertEqual(d["labels"]["liver"], 1)  # from the phantom's dataset.json
        self.assertEqual(d["channel_names"], {"0": "CT"})
        with self.assertRaises(csal3d.IOError_):
            csal3d.export_nnunet(loaded, picks, out)
        csal3d.export_nnunet(loaded, [picks[0]], out, overwrite=True, labels="none",
                             label_names=["bg", "a", "b", "c", "d"])
        self.assertFalse(os.path.exists(os.path.join(out, "labelsTr")))
        with self.assertRaises(ValueError):
            csal3d.export_nnunet(loaded, picks, out, labels="some")
        # The manifests and the folder as one transaction.
        sel = os.path.join(self.dir, "sel2")
        os.mkdir(sel)
        c2, j2 = os.path.join(sel, "s.csv"), os.path.join(sel, "s.json")
        n2 = os.path.join(self.dir, "raw", "Dataset901_Sel")
        csal3d.write_selection(loaded, picks, csv=c2, json=j2, nnunet=n2, scores_path=path,
                               context=self.ctx)
        self.assertEqual(json.loads(_read(j2))["scores_file"], path)
        self.assertEqual(len(os.listdir(os.path.join(n2, "imagesTr"))), 2)
        before = (_read(c2), _read(j2))
        # Refused before any work: existing outputs, a folder not named DatasetNNN_Name,
        # an input as output. Nothing changes.
        with self.assertRaises(csal3d.IOError_):
            csal3d.write_selection(loaded, picks, csv=c2, json=j2, nnunet=n2)
        with self.assertRaises(ValueError):
            csal3d.write_selection(loaded, picks, csv=c2, json=j2,
                                   nnunet=os.path.join(self.dir, "nnx"), overwrite=True)
        with self.assertRaises(ValueError):
            csal3d.write_selection(loaded, picks, csv=c2, json=j2, overwrite=True,
                                   inputs=[c2])
        self.assertEqual((_read(c2), _read(j2)), before)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "nnx")))
        csal3d.write_selection(loaded, [picks[0]], csv=c2, json=j2, nnunet=n2,
                               overwrite=True, labels="none")
        self.assertEqual(len(os.listdir(os.path.join(n2, "imagesTr"))), 1)
        self.assertEqual(sorted(os.listdir(sel)), ["s.csv", "s.json"])


if __name__ == "__main__":
    unittest.main()
