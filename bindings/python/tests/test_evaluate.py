"""Tests of csal3d.evaluate and csal3d.compare (the segmentation evaluation) on a tiny
phantom dataset: a U-Net of 3 stages of 4..16 channels trained for 2 iterations (the
quality of the segmentation is tested in C, tests/test_evaluate.c; here the wrapper:
arguments, results, files, the comparison's cells)."""

import csv
import ctypes
import importlib
import math
import os
import shutil
import tempfile
import unittest

import numpy as np

import csal3d

# the module (csal3d.evaluate is the function it defines)
ev_mod = importlib.import_module("csal3d.evaluate")

TINY = dict(widths=(4, 8, 16), patch_size=(16, 32, 32), batch_size=2, iterations=2,
            learning_rate=1e-2)


class TestEvaluate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="csal3d_py_eval_")
        cls.dataset = csal3d.generate_phantom(os.path.join(cls.dir, "ph"), cases=6, size=40,
                                              slices=24, seed=3)
        cls.ctx = csal3d.Context(device="cpu", threads=1)

    @classmethod
    def tearDownClass(cls):
        cls.dataset.close()
        cls.ctx.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_options_struct_matches_the_library(self):
        o = ev_mod._Options()
        ev_mod._options_init(ctypes.byref(o))
        self.assertEqual(o.struct_size, ctypes.sizeof(ev_mod._Options))
        self.assertEqual((o.iterations, o.batch_size, o.stages, list(o.widths[:5])),
                         (250, 2, 5, [16, 32, 64, 128, 256]))
        self.assertEqual((o.checkpoint_every, o.per_case), (100, 1))

    def test_one_run_with_files(self):
        csv_path, json_path = self.path("r.csv"), self.path("r.json")
        ev = csal3d.evaluate(self.dataset, ["phantom_000", 1], validation=[4, "phantom_005"],
                             context=self.ctx, output_csv=csv_path, output_json=json_path,
                             **TINY)
        self.assertEqual(ev.case_ids, ["phantom_004", "phantom_005"])
        self.assertEqual(ev.dice.shape, (2, 4))
        self.assertTrue(np.all((ev.dice >= 0) | np.isnan(ev.dice)))
        self.assertTrue(0 <= ev.mean_dice <= 1)
        self.assertAlmostEqual(ev.mean_dice, float(np.nanmean(ev.label_dice)))
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["case"] for r in rows], ["phantom_004", "phantom_005", "mean"])
        self.assertAlmostEqual(float(rows[-1]["mean_dice"]), ev.mean_dice, places=5)
        # existing results are refused before any work; overwrite replaces them
        with self.assertRaises(csal3d.IOError_):
            csal3d.evaluate(self.dataset, [0, 1], validation=[4], context=self.ctx,
                            output_csv=csv_path, **TINY)
        again = csal3d.evaluate(self.dataset, [0, 1], validation=[4, 5], context=self.ctx,
                                output_csv=csv_path, overwrite=True, **TINY)
        np.testing.assert_array_equal(again.dice, ev.dice)  # deterministic by seed

    def test_selection_file_and_default_validation(self):
        sel = self.path("sel.txt")
        with open(sel, "w") as f:
            f.write("# chosen\nphantom_002\nphantom_003\n")
        self.assertEqual(csal3d.read_cases(self.dataset, sel), [2, 3])
        ev = csal3d.evaluate(self.dataset, sel, context=self.ctx, per_case=False, **TINY)
        self.assertEqual(ev.case_ids, ["phantom_000", "phantom_001", "phantom_004",
                                       "phantom_005"])

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            csal3d.evaluate(self.dataset, ["nope"], context=self.ctx, **TINY)
        with self.assertRaises(ValueError):
            csal3d.evaluate(self.dataset, [0], context=self.ctx, widths=(8,), iterations=1)
        with self.assertRaises(ValueError):
            csal3d.evaluate(self.dataset, [0], context=self.ctx, normalization="minmax")
        with self.assertRaises(csal3d.InvalidArgumentError) as e:
            csal3d.evaluate(self.dataset, [0], context=self.ctx,
                            **dict(TINY, patch_size=(18, 32, 32)))
        self.assertIn("patch_size", str(e.exception))
        with self.assertRaises(csal3d.InvalidArgumentError):
            csal3d.evaluate(self.dataset, [0, 1], validation=[1], context=self.ctx, **TINY)

    def test_compare(self):
        sc = csal3d.Scores(4, 2)
        for i in range(4):
            sc.set_case_from_dataset(i, self.dataset, i, 0.1 * i,
                                     np.array([i, (i * i) % 3], dtype=np.float32))
        table = self.path("table.csv")
        cells = csal3d.compare(self.dataset, sc, strategies=("random", "urds"), budgets=(2,),
                               seeds=(0, 1), context=self.ctx, table=table,
                               sampler_options=dict(kmeans_restarts=1),
                               output_csv=self.path("cmp.csv"), per_case=False, **TINY)
        self.assertEqual([(c.strategy, c.budget, c.runs, c.reused) for c in cells],
                         [("random", 2, 2, 0), ("urds", 2, 2, 0)])
        for c in cells:
            self.assertTrue(0 <= c.mean <= 1 and c.sd >= 0 and not math.isnan(c.sd))
        with open(table) as f:
            self.assertEqual(f.readline(), "strategy,budget,runs,mean_dice,sd_dice\n")
        with open(self.path("cmp.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([(r["strategy"], r["seed"], r["case"]) for r in rows],
                         [("random", "0", "mean"), ("random", "1", "mean"),
                          ("urds", "0", "mean"), ("urds", "1", "mean")])
        with self.assertRaises(ValueError):
            csal3d.compare(self.dataset, sc, strategies=("best",), budgets=(2,),
                           context=self.ctx)
        # continued from a results JSON: nothing trained again; other settings refused
        opts = dict(context=self.ctx, sampler_options=dict(kmeans_restarts=1), per_case=False,
                    output_json=self.path("cmp.json"), **TINY)
        first = csal3d.compare(self.dataset, sc, strategies=("random",), budgets=(2,),
                               seeds=(0,), **opts)
        again = csal3d.compare(self.dataset, sc, strategies=("random",), budgets=(2,),
                               seeds=(0,), **opts)
        self.assertEqual((again[0].reused, again[0].mean), (1, first[0].mean))
        with self.assertRaises(csal3d.InvalidArgumentError) as e:
            csal3d.compare(self.dataset, sc, strategies=("random",), budgets=(2,), seeds=(0,),
                           **dict(opts, iterations=3))
        self.assertIn("the option iterations is 2 there and 3 now", str(e.exception))


if __name__ == "__main__":
    unittest.main()
