"""Tests of csal3d.write_report (the library's csal3d_report_write): a page from a Scores
table or a scores file, with two selections and an evaluation; self-contained; errors
raised as the library reports them."""

import ctypes
import os
import re
import shutil
import tempfile
import unittest

import numpy as np

import csal3d
from csal3d import report


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class TestReport(unittest.TestCase):
    N, D = 10, 6

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="csal3d_pyreport_")
        rng = np.random.default_rng(5)
        n, d = cls.N, cls.D
        cls.scores = csal3d.Scores(n, d)
        z, y, x = np.mgrid[0:12, 0:14, 0:10]
        body = ((z - 5.5) / 5) ** 2 + ((y - 6.5) / 6) ** 2 + ((x - 4.5) / 4) ** 2 < 1
        features = rng.normal(size=(n, d)).astype(np.float32)
        values = []
        for i in range(n):
            img = np.where(body, 100.0 + i, 0.0)
            hot = np.exp(-((z - 4 - i % 4) ** 2 + (y - 7) ** 2 + (x - 4) ** 2) / 4.0)
            paths = [os.path.join(cls.dir, f"c{i}.nii.gz"), os.path.join(cls.dir, f"u{i}.nii.gz")]
            for arr, p in zip((img, 0.01 + hot), paths):
                with csal3d.Volume.from_numpy(arr) as v:
                    v.save(p)
            values.append(float((0.01 + hot).mean()))
            cls.scores.set_case(i, f"case{i}", paths[0], values[-1], features[i])
            cls.scores.set_case_map(i, paths[1])
        cls.scores_path = os.path.join(cls.dir, "scores.safetensors")
        cls.scores.save(cls.scores_path)
        cls.manifests = []
        for strategy in ("urds", "random"):
            picks = csal3d.select(features, np.array(values, np.float32), budget=3,
                                  strategy=strategy, seed=1)
            path = os.path.join(cls.dir, f"{strategy}.json")
            csal3d.write_manifest(cls.scores, picks, json=path)
            cls.manifests.append(path)
        cls.evaluation = os.path.join(cls.dir, "eval.csv")
        with open(cls.evaluation, "w") as f:
            f.write("strategy,budget,seed,mean_dice\nurds,3,0,0.7\nurds,3,1,0.72\n"
                    "random,3,0,0.6\n")

    @classmethod
    def tearDownClass(cls):
        cls.scores.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_options_struct_matches_the_library(self):
        o = report._ReportOptions()
        report._init(ctypes.byref(o))
        self.assertEqual(o.struct_size, ctypes.sizeof(report._ReportOptions))
        self.assertEqual((o.n_selections, o.max_points, o.image_size, o.overwrite), (0, 0, 0, 0))

    def test_page_from_a_table(self):
        out = os.path.join(self.dir, "page.html")
        got = csal3d.write_report(self.scores, out, selections=self.manifests,
                                  evaluation=self.evaluation, title="py", overwrite=True)
        self.assertEqual(got, out)
        html = _read(out)
        self.assertIn("<title>py</title>", html)
        self.assertIn("of the variance", html)
        self.assertIn('id="evaluation"', html)
        for bad in ("http:", "https:", "<script", "<link", "url("):
            self.assertNotIn(bad, html)
        srcs = re.findall(r' src="([^"]{0,22})', html)
        self.assertTrue(srcs)
        self.assertTrue(all(s.startswith("data:image/png;base64,") for s in srcs), srcs[:3])
        for i in range(self.N):
            self.assertIn(f"<title>case{i}\nscore ", html)

    def test_page_from_a_file_and_one_selection(self):
        out = os.path.join(self.dir, "file.html")
        csal3d.write_report(self.scores_path, out, selections=self.manifests[0],
                            max_cases=1, image_size=64, overwrite=True)
        html = _read(out)
        self.assertIn(self.scores_path, html)  # the file is named on the page
        self.assertEqual(html.count("<img "), 3)
        self.assertNotIn('id="evaluation"', html)

    def test_errors(self):
        out = os.path.join(self.dir, "err.html")
        bad = os.path.join(self.dir, "bad.json")
        with open(bad, "w") as f:
            f.write('{"format": "csal3d-manifest", "n_cases": 99, "selection": []}')
        with self.assertRaises(csal3d.FormatError) as e:
            csal3d.write_report(self.scores, out, selections=[bad])
        self.assertIn("99 cases", str(e.exception))
        with self.assertRaises(csal3d.IOError_):
            csal3d.write_report(self.scores, out, selections=[os.path.join(self.dir, "no.json")])
        self.assertFalse(os.path.exists(out))
        with open(out, "w") as f:
            f.write("old")
        with self.assertRaises(csal3d.IOError_):
            csal3d.write_report(self.scores, out)
        self.assertEqual(_read(out), "old")
        with self.assertRaises(csal3d.InvalidArgumentError):
            csal3d.write_report(self.scores, self.manifests[0], selections=self.manifests,
                                overwrite=True)  # an input is never the output
        with self.assertRaises(ValueError):
            csal3d.write_report(self.scores, out, max_cases=0)


if __name__ == "__main__":
    unittest.main()
