"""SSLModel's input channels come from the data unless given, as `csal3d pretrain` takes
them from the first case: a two-channel dataset (4-D files, channel="all") trains a
two-channel model with the parameters an explicit in_channels=2 would give."""

import json
import os
import unittest

import numpy as np

import csal3d

from tests.helpers import DatasetModelTest

CROP = (32, 32, 32)


class TestInChannels(DatasetModelTest):
    MODEL = dict(DatasetModelTest.MODEL, crop_size=CROP)

    @classmethod
    def make_dataset(cls, folder):
        os.mkdir(os.path.join(folder, "imagesTr"))
        training = []
        rng = np.random.default_rng(0)
        for i in range(2):
            rel = f"./imagesTr/brain_{i}.nii.gz"
            data = (100 + 800 * rng.random((2, 34, 36, 33))).astype(np.float32)
            csal3d.Volume.from_numpy(data).save(os.path.join(folder, rel))
            training.append({"image": rel})
        with open(os.path.join(folder, "dataset.json"), "w") as f:
            json.dump({"name": "two channels", "modality": {"0": "T1", "1": "T2"},
                       "training": training}, f)
        return csal3d.Dataset(folder)

    def test_train_takes_the_channels_of_the_first_case(self):
        self.assertEqual(self.dataset[0].load_image(channel="all").shape[0], 2)
        m = self.model()
        self.assertEqual(m.options["in_channels"], 1)  # nothing seen yet
        m.set_options(iterations=1)  # options set before the data are kept
        m.train(self.dataset, channel="all", modality="mri")
        self.assertEqual(m.options["in_channels"], 2)
        self.assertEqual(m.step, 1)
        self.assertEqual(m.data_options["channel"], "all")
        z = m.encode_volume(self.dataset[1].load_image(channel="all", modality="mri"))
        self.assertEqual(z.shape, (m.feature_dim,))
        # Explicit channels are kept: the library refuses the mismatch.
        with self.assertRaisesRegex(csal3d.Error, "channels"):
            self.model(in_channels=1).train(self.dataset, channel="all", modality="mri")
        # channel=0 picks one volume of the 4-D files: a one-channel model.
        m1 = self.model()
        m1.train(self.dataset, channel=0, modality="mri")
        self.assertEqual(m1.options["in_channels"], 1)

    def test_same_parameters_as_an_explicit_in_channels(self):
        x = np.random.default_rng(1).random((1, 2) + CROP, dtype=np.float32)
        inferred, explicit = self.model(), self.model(in_channels=2)
        np.testing.assert_array_equal(inferred.encode(x), explicit.encode(x))
        self.assertEqual(inferred.options, explicit.options)
        self.assertEqual(inferred.parameter_count, explicit.parameter_count)
        # The first data decided: later data of another width are refused.
        with self.assertRaisesRegex(ValueError, r"\[N, 2, D, H, W\].*\(1, 1, 32, 32, 32\)"):
            inferred.encode(x[:, :1])
        # train_step and encode_volume infer too.
        m = self.model()
        self.assertEqual(m.train_step(x).step, 0)
        self.assertEqual(m.options["in_channels"], 2)
        m = self.model()
        m.encode_volume(csal3d.Volume.from_numpy(x[0]))
        self.assertEqual(m.options["in_channels"], 2)

    def test_not_re_made_once_trained_loaded_or_in_use(self):
        path = os.path.join(self.dir, "one.safetensors")
        self.model().save(path)
        loaded = csal3d.SSLModel.load(self.ctx, path)  # a checkpoint keeps its channels
        with self.assertRaisesRegex(csal3d.Error, "channels"):
            loaded.train(self.dataset, channel="all", modality="mri")
        self.assertEqual(loaded.options["in_channels"], 1)
        m = self.model()
        u = csal3d.Uncertainty(m, window=CROP)
        with self.assertRaisesRegex(csal3d.StateError, "in_channels=2"):
            m.train(self.dataset, channel="all", modality="mri")
        u.close()
        m.train(self.dataset, channel="all", modality="mri")
        self.assertEqual(m.options["in_channels"], 2)


if __name__ == "__main__":
    unittest.main()
