"""What several test modules share: a dataset-and-model fixture and the environment of
a child Python that imports this csal3d."""

import os
import shutil
import tempfile
import unittest

import csal3d
from csal3d import _native


class DatasetModelTest(unittest.TestCase):
    """A temporary folder `dir`, the Dataset make_dataset(dir) returns, a one-thread CPU
    context `ctx` (context_options() adds to it) and model(**options): an SSLModel with
    the small MODEL options, overridden by those given."""

    MODEL = dict(embed_dim=12, crop_size=32, batch_size=1, iterations=1, seed=1,
                 warmup_steps=0)

    @classmethod
    def make_dataset(cls, folder):
        raise NotImplementedError

    @classmethod
    def context_options(cls):
        return {}

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="csal3d_py_")
        cls.dataset = cls.make_dataset(cls.dir)
        cls.ctx = csal3d.Context(device="cpu", threads=1, seed=0, **cls.context_options())

    @classmethod
    def tearDownClass(cls):
        cls.dataset.close()
        cls.ctx.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def model(self, **options):
        opts = dict(self.MODEL)
        opts.update(options)
        return csal3d.SSLModel(self.ctx, **opts)


def child_env():
    """os.environ for a child Python that imports this csal3d with this library."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (
        os.path.dirname(os.path.dirname(os.path.abspath(csal3d.__file__))),
        env.get("PYTHONPATH")) if p)
    if not env.get("CSAL3D_LIBRARY") and getattr(_native, "path", None):
        env["CSAL3D_LIBRARY"] = _native.path
    return env
