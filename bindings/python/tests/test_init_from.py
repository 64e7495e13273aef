"""Starting from pretrained weights: SSLModel(ctx, init_from=path) and
SSLModel.init_from(path).

Without PyTorch: an encoder saved under the public self-supervised checkpoints' key names
(module.*, mlp.fc1/fc2) with write_safetensors: the width and channels come from the
file, the encoder gives the source model's features, the rotation head and decoder are a
new model's, the report counts them, and the refusals (trained model, another width) are
clear. With PyTorch (Debian python3-torch; skipped where absent): the public-weight
fixtures of ../shared/reference (or $CSAL3D_REFERENCE_DIR) saved as .pth files with
torch.save, converted with `python3 -m csal3d.convert`, loaded through init_from, give
MONAI's encoder feature within 1e-4 and train a step."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import csal3d
from csal3d import convert
from tests.helpers import child_env

HAVE_TORCH = importlib.util.find_spec("torch") is not None
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
REFERENCE = os.environ.get("CSAL3D_REFERENCE_DIR") or os.path.join(ROOT, "..", "shared",
                                                                    "reference")


def tang_names(params):
    """The encoder of a MONAI-named state_dict under Tang et al.'s names."""
    out = {}
    for k, v in params.items():
        if k.startswith("swinViT."):
            k = k.replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2.")
            out["module." + k[len("swinViT."):]] = v
    return out


def reduced_feature(hidden4):
    """MONAI's hidden4 [N, 16C, d, h, w] -> the model's feature: the spatial mean, then
    the means of consecutive channel triplets."""
    pooled = hidden4.reshape(hidden4.shape[0], hidden4.shape[1], -1).mean(axis=2)
    return pooled.reshape(pooled.shape[0], -1, 3).mean(axis=2)


def rel_error(out, ref):
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


class InitFromTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.ctx = csal3d.Context(device="cpu", threads=1, seed=0)
        src = csal3d.SSLModel(cls.ctx, embed_dim=12, in_channels=2, crop_size=32, seed=3)
        ckpt = os.path.join(cls.dir.name, "src.safetensors")
        src.save(ckpt)
        tensors, _ = convert.read_safetensors(ckpt)
        cls.params = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
        cls.x = np.random.default_rng(0).random((1, 2, 32, 32, 32), dtype=np.float32)
        cls.want = src.encode(cls.x)
        cls.src_logits = src.reconstruct(cls.x, logits=True)[1]
        src.close()
        cls.tang = os.path.join(cls.dir.name, "swinvit.safetensors")
        convert.write_safetensors(tang_names(cls.params), cls.tang, {"feature_size": "12"})

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()
        cls.dir.cleanup()

    def test_width_and_channels_from_the_file(self):
        with csal3d.SSLModel(self.ctx, init_from=self.tang, crop_size=32, seed=5) as m:
            self.assertEqual((m.options["embed_dim"], m.options["in_channels"]), (12, 2))
            r = m.init_report
            self.assertEqual((r.loaded, r.initialised, r.ignored), (118, 14, 0))
            self.assertIn(self.tang, r.summary)
            self.assertIn("loaded 118 tensors (the encoder); initialised 14 as for a new model "
                          "(the rotation head, the decoder)", r.summary)
            self.assertIn("loaded      swinViT.layers1.0.blocks.0.mlp.linear1.weight <- "
                          "module.layers1.0.blocks.0.mlp.fc1.weight\n", r.details)
            np.testing.assert_array_equal(m.encode(self.x), self.want)
            self.assertEqual(m.step, 0)
            # The rotation head is a new model's of the seed, not the source's.
            _, lm = m.reconstruct(self.x, logits=True)
            self.assertFalse(np.allclose(lm, self.src_logits))
            with csal3d.SSLModel(self.ctx, embed_dim=12, in_channels=2, crop_size=32,
                                 seed=5) as fresh:
                fresh.init_from(self.tang)
                np.testing.assert_array_equal(fresh.reconstruct(self.x, logits=True)[1], lm)

    def test_in_channels_none_takes_the_files(self):
        with csal3d.SSLModel(self.ctx, embed_dim=12, crop_size=32) as m:
            m.init_from(self.tang)
            self.assertEqual(m.options["in_channels"], 2)
            np.testing.assert_array_equal(m.encode(self.x), self.want)

    def test_refusals(self):
        with csal3d.SSLModel(self.ctx, init_from=self.tang, crop_size=32, batch_size=1,
                             iterations=2) as m:
            m.train_step(self.x)
            with self.assertRaisesRegex(csal3d.StateError, "has trained 1 steps"):
                m.init_from(self.tang)
        with self.assertRaisesRegex(csal3d.InvalidArgumentError,
                                    r"\[12, 2, 2, 2, 2\], the model's "
                                    r"'swinViT.patch_embed.proj.weight' \[24, 2, 2, 2, 2\].*"
                                    "set the option embed_dim to 12"):
            csal3d.SSLModel(self.ctx, init_from=self.tang, embed_dim=24)
        with self.assertRaisesRegex(csal3d.InvalidArgumentError,
                                    r"the weights take 2 input channel\(s\), the model 1"):
            csal3d.SSLModel(self.ctx, init_from=self.tang, in_channels=1)
        bad = os.path.join(self.dir.name, "bad.safetensors")
        convert.write_safetensors(tang_names(self.params), bad, {"feature_size": "24"})
        with self.assertRaisesRegex(csal3d.FormatError,
                                    "metadata feature_size 24 contradicts "
                                    "'module.patch_embed.proj.weight' "):
            csal3d.SSLModel(self.ctx, init_from=bad)


@unittest.skipUnless(HAVE_TORCH, "PyTorch is not installed (Debian: python3-torch)")
class PublicWeightsFromPthTest(unittest.TestCase):  # pragma: no cover - depends on the machine
    NAMES = ("swinunetr_e12_monai", "swinunetr_e12_tang_style")

    @classmethod
    def setUpClass(cls):
        names = [n for n in cls.NAMES + ("swinunetr_e12_expected",)
                 if os.path.exists(os.path.join(REFERENCE, n + ".safetensors"))]
        if len(names) != 3:
            raise unittest.SkipTest(f"no public-weight fixtures in {REFERENCE}")
        import torch
        cls.torch = torch
        cls.dir = tempfile.TemporaryDirectory()
        cls.ctx = csal3d.Context(device="cpu", threads=2, seed=0)
        expected, _ = convert.read_safetensors(
            os.path.join(REFERENCE, "swinunetr_e12_expected.safetensors"))
        cls.input = expected["input"]
        cls.feature = reduced_feature(expected["hidden4"].astype(np.float64))

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()
        cls.dir.cleanup()

    def pth(self, name):
        """The fixture's tensors saved by torch as a .pth: Tang et al.'s wrapped in a
        checkpoint dict with an epoch, MONAI's as a bare state_dict."""
        tensors, _ = convert.read_safetensors(os.path.join(REFERENCE, name + ".safetensors"))
        sd = {k: self.torch.from_numpy(v) for k, v in tensors.items()}
        obj = {"state_dict": sd, "epoch": 100} if "tang" in name else sd
        path = os.path.join(self.dir.name, name + ".pth")
        self.torch.save(obj, path)
        return path, len(tensors)

    def test_convert_then_init_from(self):
        for name in self.NAMES:
            with self.subTest(name=name):
                src, n = self.pth(name)
                dst = os.path.join(self.dir.name, name + ".safetensors")
                r = subprocess.run([sys.executable, "-m", "csal3d.convert", src, dst],
                                   env=child_env(), capture_output=True, text=True,
                                   timeout=300, check=False)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(f"{n} tensors written (embed_dim 12, in_channels 1)", r.stdout)
                with csal3d.SSLModel(self.ctx, init_from=dst, crop_size=64, batch_size=1,
                                     iterations=1, warmup_steps=0) as m:
                    self.assertEqual(m.options["embed_dim"], 12)
                    rep = m.init_report
                    self.assertEqual((rep.loaded, rep.initialised), (118, 14))
                    self.assertEqual(rep.ignored, n - 118)
                    err = rel_error(m.encode(self.input).astype(np.float64), self.feature)
                    self.assertLessEqual(err, 1e-4, f"{name}: feature relative error {err:.3e}")
                    # pretraining starts from them (a 64 x 32 x 32 crop keeps it short)
                    losses = m.train_step(self.input[:, :, :, :32, :32])
                    self.assertTrue(np.isfinite(losses.loss))
                    self.assertEqual(m.step, 1)


if __name__ == "__main__":
    unittest.main()
