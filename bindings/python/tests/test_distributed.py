"""Sharded scoring from Python (score_dataset(shard_count=...), merge_scores) on a tiny
phantom dataset: the shards merged are the single run's file, bit for bit, and shards of
other settings are refused."""

import os
import unittest

import csal3d

from tests.helpers import DatasetModelTest

CROP = (64, 32, 32)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


class TestShards(DatasetModelTest):
    MODEL = dict(embed_dim=12, crop_size=CROP, batch_size=1, iterations=1, seed=1,
                 warmup_steps=0)

    @classmethod
    def make_dataset(cls, folder):
        return csal3d.generate_phantom(os.path.join(folder, "phantom"), cases=3, size=40,
                                       slices=24, seed=2)

    def test_shards_merged_equal_one_run(self):
        m = self.model()
        kw = dict(modality="ct", spacing=12, window=CROP, stride=CROP)
        ref = os.path.join(self.dir, "whole.safetensors")
        csal3d.score_dataset(m, self.dataset, output=ref, **kw)
        shards = []
        for i in range(2):
            p = os.path.join(self.dir, "shard%d.safetensors" % i)
            t = csal3d.score_dataset(m, self.dataset, output=p, shard_index=i, shard_count=2,
                                     **kw)
            self.assertEqual(t.metadata["shard"], "%d/2" % (i + 1))
            self.assertEqual(len(t), 2 - i)
            shards.append(p)
        out = os.path.join(self.dir, "merged.safetensors")
        merged = csal3d.merge_scores(reversed(shards), output=out)
        self.assertEqual(len(merged), 3)
        self.assertEqual(_read(out), _read(ref))
        # tables in memory merge the same way
        tables = [csal3d.Scores.load(p) for p in shards]
        self.assertEqual(csal3d.merge_scores(tables).ids, merged.ids)
        with self.assertRaisesRegex(csal3d.InvalidArgumentError, "shard 2/2 is missing"):
            csal3d.merge_scores(shards[:1])
        other = os.path.join(self.dir, "other.safetensors")
        csal3d.score_dataset(m, self.dataset, output=other, shard_index=1, shard_count=2,
                             seed=7, **kw)
        with self.assertRaisesRegex(csal3d.InvalidArgumentError, "differ in seed"):
            csal3d.merge_scores([shards[0], other], output=os.path.join(self.dir, "x"))


if __name__ == "__main__":
    unittest.main()
