"""Tests of csal3d.select and csal3d.Sampler."""

import ctypes
import math
import unittest

import numpy as np

import csal3d
from csal3d import sampling


def blobs(sizes, d=8, sep=3.0, std=0.25, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, sep, size=(len(sizes), d))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(truth)
    x = centres[truth] + rng.normal(0, std, size=(len(truth), d))
    return x.astype(np.float32), truth


def typicality(x, truth, i):
    members = [j for j in range(len(x)) if truth[j] == truth[i] and j != i]
    if not members:
        return math.inf
    x = x.astype(np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    mean = np.mean(1 - u[members] @ u[i])
    return 1 / mean if mean > 1e-12 else math.inf


class TestSampling(unittest.TestCase):
    def test_struct_layouts_match_the_library(self):
        o = sampling._Options()
        sampling._options_init(ctypes.byref(o))
        self.assertEqual(o.struct_size, ctypes.sizeof(sampling._Options))
        self.assertEqual(o.n_cand, 3)
        self.assertEqual(list(o.gammas)[:o.n_kernels], [0.1, 1, 10])
        self.assertEqual(o.usl_horizon, 0)
        self.assertEqual(o.typiclust_variant, 0)
        self.assertEqual(o.typiclust_min_cluster_size, 0)

    def test_urds_on_blobs(self):
        sizes = [30, 45, 25, 40]
        x, truth = blobs(sizes, seed=1)
        scores = np.random.default_rng(2).random(len(x))
        picks = csal3d.select(x, scores, 4)
        self.assertEqual(len(picks), 4)
        self.assertEqual(sorted(truth[p.index] for p in picks), [0, 1, 2, 3])
        t = np.array([typicality(x, truth, i) for i in range(len(x))])
        for p in picks:
            self.assertEqual(p.rule, "urds")
            self.assertEqual(p.cluster_size, sizes[truth[p.index]])
            self.assertAlmostEqual(p.score, np.float32(scores[p.index]), places=6)
            members = np.flatnonzero(truth == truth[p.index])
            order = sorted(members, key=lambda j: (-t[j], j))[:3]
            want = max(order, key=lambda j: (np.float32(scores[j]), t[j], -j))
            self.assertEqual(p.index, want)
            self.assertAlmostEqual(p.typicality / t[p.index], 1, places=6)

    def test_every_strategy_and_plain_sequences(self):
        x, _ = blobs([20, 25, 15], d=4, seed=3)
        scores = list(range(len(x)))
        for name in sampling.STRATEGIES:
            picks = csal3d.select(x.tolist(), scores, 5, strategy=name)
            self.assertEqual(len({p.index for p in picks}), 5, name)
            for p in picks:
                self.assertIn(p.rule, sampling.RULES)
                self.assertTrue(0 <= p.index < len(x))

    def test_sampler_reuse_assignment_and_info(self):
        x, truth = blobs([30, 20, 40], seed=4)
        with csal3d.Sampler("div-only", seed=5) as s:
            s.set_features(x)
            picks = s.select(3)
            a = s.assignment
            self.assertEqual(a.shape, (len(x),))
            for i in range(len(x)):
                for j in range(len(x)):
                    self.assertEqual(a[i] == a[j], truth[i] == truth[j])
            info = s.info
            self.assertEqual(info["strategy"], "div-only")
            self.assertAlmostEqual(sum(info["kernel_weights"]), 1, places=12)
            self.assertFalse(info["nystrom"])
            self.assertEqual([p.rule for p in picks], ["most-typical"] * 3)
            again = s.select(2)
            self.assertEqual(len(again), 2)
        # deterministic for a seed
        a1 = [p.index for p in csal3d.select(x, None, 4, strategy="random", seed=9)]
        a2 = [p.index for p in csal3d.select(x, None, 4, strategy="random", seed=9)]
        a3 = [p.index for p in csal3d.select(x, None, 4, strategy="random", seed=10)]
        self.assertEqual(a1, a2)
        self.assertNotEqual(a1, a3)

    def test_options(self):
        x, _ = blobs([20, 20], d=3, seed=6)
        s = np.linspace(0, 1, len(x))
        p = csal3d.select(x, s, 2, kernel="reference", gammas=(0.5, 2), n_cand=1)
        self.assertEqual(len(p), 2)
        p = csal3d.select(x, None, 2, strategy="probcover", probcover_delta=0.5)
        self.assertEqual(p[0].rule, "max-coverage")
        with self.assertRaises(TypeError):
            csal3d.select(x, s, 2, no_such_option=1)
        with self.assertRaises(ValueError):
            csal3d.select(x, s, 2, strategy="kcenter")
        with self.assertRaises(csal3d.InvalidArgumentError):
            csal3d.select(x, s, 2, n_cand=0)

    def test_typiclust_variants(self):
        # N = 16, M = 4, clusters of 6, 5, 3 and 2: the paper's variant (default) picks
        # in every cluster; the original code's only in the cluster of more than 5
        x, truth = blobs([6, 5, 3, 2], d=4, sep=3.0, std=0.3, seed=21)
        picks = csal3d.select(x, None, 4, strategy="typiclust")
        self.assertEqual(sorted(truth[p.index] for p in picks), [0, 1, 2, 3])
        picks = csal3d.select(x, None, 4, strategy="typiclust", typiclust_variant="original")
        self.assertEqual([truth[p.index] for p in picks], [0, 0, 0, 0])
        self.assertEqual([p.rule for p in picks], ["most-typical"] + ["refill"] * 3)
        # four clusters of 4: the original has none left, and says so
        x, _ = blobs([4, 4, 4, 4], d=4, sep=3.0, std=0.3, seed=22)
        with self.assertRaises(csal3d.UnsupportedError) as cm:
            csal3d.select(x, None, 4, strategy="typiclust", typiclust_variant="original")
        self.assertIn("more than 5 members", str(cm.exception))
        self.assertEqual(len(csal3d.select(x, None, 4, strategy="typiclust",
                                           typiclust_variant=0)), 4)
        with self.assertRaises(ValueError):
            csal3d.select(x, None, 4, strategy="typiclust", typiclust_variant="published")

    def test_errors(self):
        x, _ = blobs([5, 5], d=2, seed=7)
        with self.assertRaises(csal3d.InvalidArgumentError) as cm:
            csal3d.select(x, np.zeros(len(x)), len(x) + 1)
        self.assertIn("budget 11", str(cm.exception))
        x[3, 1] = np.nan
        with self.assertRaises(csal3d.NumericalError) as cm:
            csal3d.select(x, np.zeros(len(x)), 2)
        self.assertIn("row 3", str(cm.exception))
        with self.assertRaises(csal3d.StateError):
            csal3d.select(np.ones((4, 2)), None, 2)  # URDS without scores

    def test_strategies_and_rules_come_from_the_library(self):
        lib = sampling.lib
        lib.csal3d_strategy_name.restype = ctypes.c_char_p
        lib.csal3d_strategy_name.argtypes = [ctypes.c_int]
        count = lib.csal3d_strategy_count()
        self.assertEqual(count, 10)
        want = tuple(lib.csal3d_strategy_name(q).decode() for q in range(count))
        self.assertEqual(sampling.STRATEGIES, want)
        infos = csal3d.strategies()
        self.assertEqual([i.name for i in infos], list(want))
        self.assertEqual([i.value for i in infos], list(range(count)))
        self.assertEqual(sampling.RULES, tuple(lib.csal3d_rule_name(r).decode()
                                               for r in range(lib.csal3d_rule_count())))
        self.assertEqual(sampling.RULES[0], "none")
        self.assertIn("usl-utility", sampling.RULES)
        by_name = {i.name: i for i in infos}
        self.assertTrue(by_name["urds"].needs_scores)
        self.assertTrue(by_name["unc-only"].needs_scores)
        self.assertFalse(by_name["div-only"].needs_scores)
        self.assertIn("n_cand", by_name["urds"].options)
        self.assertIn("kernel", by_name["div-only"].options)
        self.assertEqual(by_name["calr"].options, ("birch",))
        self.assertEqual(by_name["coreset"].options, ())
        self.assertFalse(by_name["random"].has_clusters)
        self.assertTrue(by_name["typiclust"].has_typicality)
        for i in infos:
            self.assertTrue(i.description)
            self.assertNotIn("0x", " ".join(i.options))  # every group has a name
        self.assertEqual(sampling._strategy_code("Div_Only"), 2)
        with self.assertRaises(csal3d.InvalidArgumentError) as cm:
            sampling._strategy_code("kcenter")
        for name in want:
            self.assertIn(name, str(cm.exception))

    def test_needs_scores_comes_from_the_library(self):
        x, _ = blobs([10, 12, 9], d=3, seed=8)
        for info in csal3d.strategies():
            with csal3d.Sampler(info.name) as s:
                self.assertEqual(s.needs_scores, info.needs_scores, info.name)
            if info.needs_scores:
                with self.assertRaises(csal3d.StateError) as cm:
                    csal3d.select(x, None, 3, strategy=info.name)
                self.assertIn(f"'{info.name}' needs scores", str(cm.exception))
            else:
                picks = csal3d.select(x, None, 3, strategy=info.name)
                self.assertEqual(len(picks), 3, info.name)
                self.assertEqual(all(p.cluster >= 0 for p in picks), info.has_clusters)
                self.assertEqual(all(not math.isnan(p.typicality) for p in picks),
                                 info.has_typicality, info.name)
        # Div-only needs scores with the reference kernel only
        with csal3d.Sampler("div-only", kernel="reference") as s:
            self.assertTrue(s.needs_scores)
        with self.assertRaises(csal3d.StateError) as cm:
            csal3d.select(x, None, 3, strategy="div-only", kernel="reference")
        self.assertIn("with these options", str(cm.exception))
        self.assertEqual(len(csal3d.select(x, np.arange(len(x)), 3, strategy="div-only",
                                           kernel="reference")), 3)

    def test_edge_cases(self):
        one = csal3d.select([[1.0, 2.0]], [0.5], 1)
        self.assertEqual(one[0].index, 0)
        self.assertTrue(math.isinf(one[0].typicality))
        same = csal3d.select(np.ones((6, 3)), [0, 5, 1, 5, 2, 0], 3)
        self.assertEqual([p.index for p in same], [1, 2, 0])
        self.assertEqual([p.rule for p in same], ["urds", "refill", "refill"])
        d1 = csal3d.select(np.arange(10.0), np.arange(10.0), 10)  # 1-D features, M = N
        self.assertEqual(sorted(p.index for p in d1), list(range(10)))


if __name__ == "__main__":
    unittest.main()
