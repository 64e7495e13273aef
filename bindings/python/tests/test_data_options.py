"""SSLModel.train and the data options a model carries: the modality from dataset.json by
default (not raw intensities), recorded in checkpoints and kept by a resumed run,
contradictions refused. A tiny decathlon-layout MRI dataset (embed_dim 12, 32^3 crops)."""

import json
import os
import unittest

import numpy as np

import csal3d

from tests.helpers import DatasetModelTest


def _mri_like(shape, seed):
    """MRI-like raw intensities (about 100..900): a smooth blob plus noise."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-0.5, 0.5, n) for n in shape], indexing="ij")
    r2 = sum(g * g for g in grid)
    return (100 + 600 * np.exp(-6 * r2) + 200 * rng.random(shape)).astype(np.float32)


class TestDataOptions(DatasetModelTest):
    @classmethod
    def make_dataset(cls, folder):
        os.mkdir(os.path.join(folder, "imagesTr"))
        training = []
        for i in range(2):
            rel = f"./imagesTr/hippo_{i}.nii.gz"
            csal3d.Volume.from_numpy(_mri_like((36 + i, 34, 40), i)).save(
                os.path.join(folder, rel))
            training.append({"image": rel})
        with open(os.path.join(folder, "dataset.json"), "w") as f:
            json.dump({"name": "tiny", "modality": {"0": "MRI"}, "training": training}, f)
        return csal3d.Dataset(folder)

    @classmethod
    def context_options(cls):
        cls.logs = []
        return {"log": lambda level, msg: cls.logs.append((level, msg))}

    def test_dataset_json_modality_by_default_and_in_the_checkpoint(self):
        self.assertEqual(self.dataset.modality, "mri")
        m = self.model()
        self.assertEqual(m.data_options, {})
        losses = []
        m.train(self.dataset, on_step=lambda l, total: losses.append(l.loss))
        # normalised to [0, 1]: a loss of a few units, not of raw intensities
        self.assertLess(losses[0], 10)
        raw = self.model()
        raw_losses = []
        raw.train(self.dataset, modality="none", on_step=lambda l, t: raw_losses.append(l.loss))
        self.assertGreater(raw_losses[0], 1000)
        opts = m.data_options
        self.assertEqual((opts["modality"], opts["channel"], opts["spacing"]),
                         ("mri", "none", (0.0, 0.0, 0.0)))
        self.assertEqual(opts["intensity"]["crops"], 1)
        self.assertGreaterEqual(opts["intensity"]["min"], 0)
        self.assertLessEqual(opts["intensity"]["max"], 1)
        path = os.path.join(self.dir, "m.safetensors")
        m.save(path)
        back = csal3d.SSLModel.load(self.ctx, path)
        self.assertEqual(back.data_options, opts)
        self.assertEqual(back.data_options["modality"], "mri")

    def test_resume_keeps_spacing_and_refuses_contradictions(self):
        m = self.model()
        m.train(self.dataset, spacing=2)
        self.assertEqual(m.data_options["spacing"], (2.0, 2.0, 2.0))
        self.assertEqual(m.data_options["modality"], "mri")  # auto: the dataset.json's
        path = os.path.join(self.dir, "r.safetensors")
        m.save(path)
        r = csal3d.SSLModel.load(self.ctx, path)
        with self.assertRaises(csal3d.InvalidArgumentError) as cm:
            r.train(self.dataset, modality="ct", iterations=2)
        self.assertIn("modality", str(cm.exception))
        self.assertEqual(r.step, 1)
        r.train(self.dataset, iterations=2)  # no options: the checkpoint's
        self.assertEqual(r.step, 2)
        self.assertEqual(r.data_options["spacing"], (2.0, 2.0, 2.0))
        self.assertEqual(r.data_options["intensity"]["crops"], 2)
        # only the modality given: the recorded spacing stays, without an override warning
        del self.logs[:]
        r.train(self.dataset, modality="mri", iterations=3)
        self.assertEqual(r.data_options["spacing"], (2.0, 2.0, 2.0))
        self.assertFalse([msg for _, msg in self.logs if "overriding" in msg])
        with self.assertRaises(csal3d.InvalidArgumentError) as cm:
            r.set_options(iterations=1)
        self.assertIn("iterations 1 is below the model's step 3", str(cm.exception))
        r.set_data_options("ct", spacing=1.5)
        self.assertEqual(r.data_options["modality"], "ct")
        self.assertEqual(r.data_options["spacing"], (1.5, 1.5, 1.5))
        with self.assertRaises(ValueError):
            r.set_data_options("auto")


if __name__ == "__main__":
    unittest.main()
