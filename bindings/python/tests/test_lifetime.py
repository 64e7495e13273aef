"""Object lifetimes: every wrapper keeps alive what its C object needs (a model its
context, an estimator its model, a sampler its context, a case its dataset), whatever the
order of close(), `with`, del and garbage collection. Each test records the library's free
calls: a C object is freed once, after everything made from it, and never while in use.

The C frees are observed by wrapping the library's *_free functions (the wrappers call
them through csal3d._native.lib)."""

import gc
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import numpy as np

import csal3d
from csal3d import _native
from tests.helpers import child_env

_FREES = ("csal3d_context_free", "csal3d_ssl_model_free", "csal3d_uncertainty_free",
          "csal3d_sampler_free", "csal3d_dataset_free")
_SHORT = {"csal3d_context_free": "context", "csal3d_ssl_model_free": "model",
          "csal3d_uncertainty_free": "estimator", "csal3d_sampler_free": "sampler",
          "csal3d_dataset_free": "dataset"}
CROP = (32, 32, 32)


class FreeLog:
    """Records the library's free calls as short names ("context", "model", ...)."""

    def __enter__(self):
        self.names, self._saved = [], {}
        for name in _FREES:
            orig = getattr(_native.lib, name)
            self._saved[name] = orig

            def wrapper(h, _orig=orig, _name=name):
                self.names.append(_SHORT[_name])
                _orig(h)

            setattr(_native.lib, name, wrapper)
        return self

    def __exit__(self, *exc):
        for name, orig in self._saved.items():
            setattr(_native.lib, name, orig)


def _crops():
    return np.random.default_rng(3).random((1, 1) + CROP, dtype=np.float32)


def _volume():
    return csal3d.Volume.from_numpy(np.random.default_rng(4).random(CROP, dtype=np.float32))


def _features():
    rng = np.random.default_rng(5)
    return rng.random((30, 4), dtype=np.float32), rng.random(30, dtype=np.float32)


class _Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="csal3d_py_lifetime_")
        cls.data = os.path.join(cls.dir, "phantom")
        csal3d.generate_phantom(cls.data, cases=2, size=24, slices=12, seed=1).close()
        with csal3d.Context(device="cpu", threads=1, seed=0) as ctx:
            m = csal3d.SSLModel(ctx, embed_dim=12, crop_size=CROP, seed=1, iterations=7)
            cls.checkpoint = os.path.join(cls.dir, "m.safetensors")
            m.save(cls.checkpoint)
            m.close()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def context(self):
        return csal3d.Context(device="cpu", threads=1, seed=0)

    def model(self, ctx):
        return csal3d.SSLModel.load(ctx, self.checkpoint)

    def setUp(self):
        gc.collect()

    def assertClosed(self, obj):
        with self.assertRaisesRegex(ValueError, "is closed"):
            obj.handle  # noqa: B018


class TestContextAndModel(_Base):
    def test_guide_with_block_then_model(self):
        with FreeLog() as log:
            with self.context() as ctx:
                m = self.model(ctx)
                want = m.encode(_crops())
            self.assertEqual(log.names, [])  # the model still needs the context
            self.assertClosed(ctx)
            with self.assertRaisesRegex(ValueError, "the context is closed"):
                csal3d.SSLModel(ctx, embed_dim=12)
            np.testing.assert_array_equal(m.encode(_crops()), want)
            self.assertEqual(m.options["iterations"], 7)
            m.close()
            self.assertEqual(log.names, ["model", "context"])

    def test_every_close_order(self):
        for order in itertools.permutations(["ctx", "model"]):
            with self.subTest(order=order), FreeLog() as log:
                objs = {"ctx": self.context()}
                objs["model"] = self.model(objs["ctx"])
                want = objs["model"].encode(_crops())
                objs[order[0]].close()
                if order[0] == "ctx":
                    np.testing.assert_array_equal(objs["model"].encode(_crops()), want)
                else:
                    self.assertEqual(objs["ctx"].seed, 0)
                objs[order[1]].close()
                self.assertEqual(log.names, ["model", "context"])
                for o in objs.values():
                    self.assertClosed(o)
                    o.close()  # twice is harmless
                self.assertEqual(log.names, ["model", "context"])

    def test_garbage_collection_orders(self):
        with FreeLog() as log:  # the context dropped first: the model still works
            ctx = self.context()
            m = self.model(ctx)
            want = m.encode(_crops())
            del ctx
            gc.collect()
            self.assertEqual(log.names, [])
            np.testing.assert_array_equal(m.encode(_crops()), want)
            del m
            gc.collect()
            self.assertEqual(log.names, ["model", "context"])
        with FreeLog() as log:  # the model dropped first: the context goes on
            ctx = self.context()
            m = self.model(ctx)
            del m
            gc.collect()
            self.assertEqual(log.names, ["model"])
            self.assertEqual(ctx.threads, 1)
            del ctx
            gc.collect()
            self.assertEqual(log.names, ["model", "context"])
        with FreeLog() as log:  # both in a reference cycle, collected together
            cycle = [self.context()]
            cycle.append(self.model(cycle[0]))
            cycle.append(cycle)
            del cycle
            gc.collect()
            self.assertEqual(log.names, ["model", "context"])
        with FreeLog() as log:  # closed context, then the model collected
            ctx = self.context()
            m = self.model(ctx)
            ctx.close()
            del m
            gc.collect()
            self.assertEqual(log.names, ["model", "context"])


class TestModelAndEstimator(_Base):
    def test_every_close_order_of_context_model_estimator(self):
        v = _volume()
        with self.context() as ctx, self.model(ctx) as m, \
                csal3d.Uncertainty(m, window=CROP) as u:
            want_score, want_feature = u.score(v, volume_id=7)
        self.assertGreater(np.abs(want_feature).max(), 0)
        for order in itertools.permutations(["ctx", "model", "u"]):
            with self.subTest(order=order), FreeLog() as log:
                objs = {"ctx": self.context()}
                objs["model"] = self.model(objs["ctx"])
                objs["u"] = csal3d.Uncertainty(objs["model"], window=CROP)
                for k, name in enumerate(order):
                    objs[name].close()
                    self.assertClosed(objs[name])
                    if name != "model" and "model" not in order[:k]:
                        self.assertEqual(objs["model"].options["iterations"], 7)
                    if order[k + 1:] == ("u",):  # everything else closed: it works on
                        s, f = objs["u"].score(v, volume_id=7)
                        self.assertEqual(s, want_score)
                        np.testing.assert_array_equal(f, want_feature)
                self.assertEqual(log.names, ["estimator", "model", "context"])

    def test_estimator_after_model_close_and_gc(self):
        v = _volume()
        with FreeLog() as log:
            ctx = self.context()
            m = self.model(ctx)
            u = csal3d.Uncertainty(m, window=CROP)
            want = u.score(v, volume_id=3)
            m.close()
            with self.assertRaisesRegex(ValueError, "the model is closed"):
                csal3d.Uncertainty(m, window=CROP)
            del m, ctx
            gc.collect()
            self.assertEqual(log.names, [])
            got = u.score(v, volume_id=3)
            self.assertEqual(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            self.assertEqual(u.map().shape, (1,) + CROP)  # an independent volume
            del u
            gc.collect()
            self.assertEqual(log.names, ["estimator", "model", "context"])
        with FreeLog() as log:  # the estimator collected first
            ctx = self.context()
            m = self.model(ctx)
            u = csal3d.Uncertainty(m, window=CROP)
            del u
            gc.collect()
            self.assertEqual(log.names, ["estimator"])
            self.assertEqual(m.options["iterations"], 7)
            del m, ctx
            gc.collect()
            self.assertEqual(log.names, ["estimator", "model", "context"])

    def test_score_dataset_after_the_context_closed(self):
        ds = csal3d.Dataset(self.data)
        with FreeLog() as log:
            with self.context() as ctx:
                m = self.model(ctx)
            table = csal3d.score_dataset(m, ds, modality="ct", window=CROP, stride=CROP)
            self.assertEqual(log.names, ["estimator"])
            m.close()
            self.assertEqual(log.names, ["estimator", "model", "context"])
            self.assertEqual(len(table.scores), 2)  # the table stands alone
        ds.close()


class TestSampler(_Base):
    def test_every_close_order(self):
        x, s = _features()
        for order in itertools.permutations(["ctx", "sampler"]):
            with self.subTest(order=order), FreeLog() as log:
                objs = {"ctx": self.context()}
                objs["sampler"] = csal3d.Sampler("urds", context=objs["ctx"])
                want = objs["sampler"].select(3, x, s)
                objs[order[0]].close()
                if order[0] == "ctx":
                    self.assertEqual(objs["sampler"].select(3), want)
                    np.testing.assert_array_equal(objs["sampler"].assignment,
                                                  want.assignment)
                objs[order[1]].close()
                self.assertEqual(log.names, ["sampler", "context"])

    def test_garbage_collection_and_its_own_context(self):
        x, s = _features()
        with FreeLog() as log:
            with self.context() as ctx:
                sampler = csal3d.Sampler("typiclust", seed=2, context=ctx)
            del ctx
            gc.collect()
            self.assertEqual(len(sampler.select(3, x)), 3)
            del sampler
            gc.collect()
            self.assertEqual(log.names, ["sampler", "context"])
        with FreeLog() as log:  # a sampler without a context makes (and frees) its own
            sampler = csal3d.Sampler("urds")
            sampler.select(2, x, s)
            sampler.close()
            self.assertEqual(log.names, ["sampler", "context"])
            sampler = csal3d.Sampler("urds")
            del sampler
            gc.collect()
            self.assertEqual(log.names, ["sampler", "context"] * 2)
            csal3d.select(x, s, 2)
            self.assertEqual(log.names, ["sampler", "context"] * 3)


class TestDatasetAndCase(_Base):
    def test_every_close_order(self):
        with FreeLog() as log:
            with csal3d.Dataset(self.data) as ds:
                case = ds[1]
                want = case.load_image().to_numpy()
            self.assertClosed(ds)
            with self.assertRaisesRegex(ValueError, "the dataset is closed"):
                ds[0]  # noqa: B018
            with self.assertRaisesRegex(ValueError, "the dataset is closed"):
                len(ds)
            self.assertEqual(log.names, [])
            np.testing.assert_array_equal(case.load_image().to_numpy(), want)
            self.assertEqual(case.load_label().shape[1:], want.shape[1:])
            del case
            gc.collect()
            self.assertEqual(log.names, ["dataset"])
        with FreeLog() as log:  # cases dropped first, then the dataset
            ds = csal3d.Dataset(self.data)
            cases = list(ds)
            del cases
            gc.collect()
            self.assertEqual(log.names, [])
            self.assertEqual(len(ds), 2)
            ds.close()
            self.assertEqual(log.names, ["dataset"])
        with FreeLog() as log:  # the dataset dropped: its cases keep it
            cases = list(csal3d.Dataset(self.data))
            gc.collect()
            self.assertEqual(log.names, [])
            self.assertEqual(cases[0].load_image().shape[0], 1)
            del cases
            gc.collect()
            self.assertEqual(log.names, ["dataset"])

    def test_volumes_stand_alone(self):
        with csal3d.Dataset(self.data) as ds:
            v = ds[0].load_image()
        gc.collect()
        self.assertEqual(v.shape[0], 1)
        self.assertEqual(np.asarray(v).shape, v.shape)


class TestNeverACrash(unittest.TestCase):
    """The three sequences that crashed or read freed memory, in a child process so that a
    regression reports a signal instead of killing the test run."""

    def test_reported_sequences(self):
        script = textwrap.dedent("""
            import faulthandler, gc
            import numpy as np
            import csal3d
            faulthandler.enable()
            x = np.random.default_rng(0).random((1, 1, 32, 32, 32), dtype=np.float32)
            v = csal3d.Volume.from_numpy(x[0])
            with csal3d.Context(device="cpu", threads=1) as ctx:
                model = csal3d.SSLModel(ctx, embed_dim=12, crop_size=32)
            a = model.encode(x)
            ctx = csal3d.Context(device="cpu", threads=1)
            model = csal3d.SSLModel(ctx, embed_dim=12, crop_size=32)
            ctx.close()
            b = model.encode(x)
            assert np.array_equal(a, b)
            u = csal3d.Uncertainty(model, window=32)
            model.close()
            del ctx, model
            gc.collect()
            s, f = u.score(v)
            assert f.shape == (64,)
            print("ok")
        """)
        r = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True,
                           text=True, timeout=300, check=False)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(r.stdout.strip(), "ok")


if __name__ == "__main__":
    unittest.main()
