"""Frozen MobileNetV2 probe on Herlev: does a larger input or training on the 7 fine classes help?

Measures, for one input size, the out-of-fold accuracy of a logistic regression on frozen
MobileNetV2 features (offline ImageNet weights, no top, global average pooling), each image's
features averaged over its 8 flips/rotations. Per fold of the run's folds.csv: StandardScaler +
LogisticRegression(C, max_iter=3000), C in {0.01, 0.03, 0.1}, each without and with balanced
class weights. Two columns per setting: fitted on the 3 herlev3 groups, and "7 -> 3" (fitted on
the 7 Herlev folders, probabilities summed into the 3 groups). The "features @160/@224" rows of
docs/results.md (Herlev, 02c) come from this code.

usage (from the repository root; the folds are those of the Herlev stage-02 run):
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/probe_resolution.py 160
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/probe_resolution.py 224
options: --data DIR (../shared/data/herlev), --folds CSV (runs/herlev-cnn-balanced/folds.csv),
         --weights H5 (../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5)
prints one line per setting: C, class_weight, 3-class accuracy, 7 -> 3 accuracy.
Takes minutes on a 2-core CPU (the forward passes of 8 views: 3.5 min @160, 9.7 min @224).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# cellclf_utils imports (the package's subpackage layout; adjust here if a module moves)
from cellclf_utils.data import classes, load_dataset

WEIGHTS = "../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5"


def main(size: int, data_dir: str, folds_csv: str, weights: str) -> None:
    ds = load_dataset(data_dir, "herlev3")
    fold_of = dict(pd.read_csv(folds_csv)[["id", "fold"]].values)
    fold, y3 = np.array([fold_of[i] for i in ds.ids]), ds.labels
    orig = [it.original_label for it in ds.items]
    fine = sorted(set(orig))
    y7 = np.array([fine.index(o) for o in orig])
    group = {o: g for g, os_ in classes.PRESETS["herlev3"].items() for o in os_}
    M = np.array([[float(group[f] == g) for g in ds.class_names] for f in fine])  # 7 -> 3 sums
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(size, size, 3),
                                          pooling="avg")
    base.load_weights(weights)
    x = ds.images(size, "pad")
    views = [np.rot90(x, k, axes=(1, 2))[:, :, ::f] for k in range(4) for f in (1, -1)]
    feat = np.mean([base.predict(keras.applications.mobilenet_v2.preprocess_input(v.astype("float32")),
                                 batch_size=64, verbose=0) for v in views], axis=0)

    def cv(y, C, cw):
        P = np.zeros((len(y), y.max() + 1))
        for f in np.unique(fold):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000, class_weight=cw))
            P[fold == f] = clf.fit(feat[fold != f], y[fold != f]).predict_proba(feat[fold == f])
        return P

    for C in (0.01, 0.03, 0.1):
        for cw in (None, "balanced"):
            print(C, cw, (cv(y3, C, cw).argmax(1) == y3).mean(), ((cv(y7, C, cw) @ M).argmax(1) == y3).mean(),
                  flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("size", type=int)
    ap.add_argument("--data", default="../shared/data/herlev")
    ap.add_argument("--folds", default="runs/herlev-cnn-balanced/folds.csv")
    ap.add_argument("--weights", default=WEIGHTS)
    a = ap.parse_args()
    main(a.size, a.data, a.folds, a.weights)
