"""csal3d.Comm over mpi4py: `mpirun -np 2` children score a phantom dataset through
Context.set_comm(MPI.COMM_WORLD), and rank 0's file is bitwise the file of one process.
Skipped without mpi4py or mpirun."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import csal3d

from tests.helpers import child_env

CROP = (64, 32, 32)
CHILD = r"""
import sys
from mpi4py import MPI
import csal3d
data, ckpt, out = sys.argv[1:4]
ctx = csal3d.Context(device="cpu", threads=1, seed=0)
ctx.set_comm(csal3d.Comm(MPI.COMM_WORLD))
m = csal3d.SSLModel.load(ctx, ckpt)
ds = csal3d.Dataset(data)
t = csal3d.score_dataset(m, ds, output=out, modality="ct", spacing=12, window=(64, 32, 32),
                         stride=(64, 32, 32))
assert (t is not None and len(t) == 3) if MPI.COMM_WORLD.Get_rank() == 0 else True
"""


def _mpi4py():
    try:
        import mpi4py  # noqa: F401
        return True
    except ImportError:
        return False


@unittest.skipUnless(_mpi4py() and shutil.which("mpirun"), "needs mpi4py and mpirun")
class TestMpi4py(unittest.TestCase):
    def test_two_ranks_score_one_file(self):
        d = tempfile.mkdtemp(prefix="csal3d_py_comm_")
        try:
            data = os.path.join(d, "phantom")
            csal3d.generate_phantom(data, cases=3, size=40, slices=24, seed=2).close()
            ctx = csal3d.Context(device="cpu", threads=1, seed=0)
            m = csal3d.SSLModel(ctx, embed_dim=12, crop_size=CROP, batch_size=1,
                                iterations=1, seed=1)
            ckpt = os.path.join(d, "m.safetensors")
            m.save(ckpt)
            one = os.path.join(d, "one.safetensors")
            ds = csal3d.Dataset(data)
            csal3d.score_dataset(csal3d.SSLModel.load(ctx, ckpt), ds, output=one, modality="ct",
                                 spacing=12, window=CROP, stride=CROP)
            child = os.path.join(d, "child.py")
            with open(child, "w") as f:
                f.write(CHILD)
            two = os.path.join(d, "two.safetensors")
            env = child_env()
            env.setdefault("OMP_WAIT_POLICY", "passive")
            r = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                                sys.executable, child, data, ckpt, two], env=env,
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            with open(one, "rb") as a, open(two, "rb") as b:
                self.assertEqual(a.read(), b.read())
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
