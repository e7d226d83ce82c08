"""Frozen MobileNetV2 features of the 8 flips/rotations of every Herlev image, saved for the
probe comparisons (benchmarks/probe_tta.py, benchmarks/probe_repeat.py).

Measures nothing by itself beyond the time of the forward passes (printed, "features <s>");
it writes an .npz with V (8, N, F) float32 features of dihedral view k of each image, ids and
y (herlev3 labels), the input of the "how the 8 views are used" table and of the six fold
draws in docs/results.md. MobileNetV2 @224 with the offline ImageNet weights, global average
pooling, images padded to square (02c's featurizer).

usage (from the repository root):
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/probe_views.py            # -> views224.npz
options: --size 224, --out views224.npz, --data ../shared/data/herlev,
         --weights ../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5
About 4 min on a 2-core CPU with nothing else running.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

# cellclf_utils imports (the package's subpackage layout; adjust here if a module moves)
from cellclf_utils.data import load_dataset
from cellclf_utils.data.images import dihedral
from cellclf_utils.shallow import probe

WEIGHTS = "../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5"


def main(size: int, out: str, data_dir: str, weights: str) -> None:
    ds = load_dataset(data_dir, "herlev3")
    f = probe.featurizer("mobilenet_v2", size, weights)
    x = ds.images(size, "pad")
    t = time.time()
    V = np.stack([f(dihedral(x, k)) for k in range(8)])
    print("features", time.time() - t)
    np.savez(out, V=V, ids=np.array(ds.ids), y=ds.labels)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", default="views224.npz")
    ap.add_argument("--data", default="../shared/data/herlev")
    ap.add_argument("--weights", default=WEIGHTS)
    a = ap.parse_args()
    main(a.size, a.out, a.data, a.weights)
