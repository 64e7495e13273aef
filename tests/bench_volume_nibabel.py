#!/usr/bin/env python3
"""The nibabel + numpy side of tests/bench_volume.c: load, reorient to RAS+ and normalise
(MRI: z-score, clip to the 1st-99th percentiles, rescale to [0, 1]) every image of a
decathlon dataset. Prints one line: "<volumes> <seconds>"."""
import json
import os
import sys
import time

import nibabel as nib
import numpy as np


def main(root):
    with open(os.path.join(root, "dataset.json")) as f:
        cases = json.load(f)["training"]
    paths = [os.path.join(root, c["image"]) for c in cases]
    t = time.perf_counter()
    for p in paths:
        x = nib.as_closest_canonical(nib.load(p)).get_fdata(dtype=np.float32)
        x = (x - x.mean()) / x.std()
        lo, hi = np.percentile(x, [1, 99])
        x = (np.clip(x, lo, hi) - lo) / (hi - lo)
    print(len(paths), time.perf_counter() - t)


if __name__ == "__main__":
    main(sys.argv[1])
