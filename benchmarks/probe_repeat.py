"""How much the fold draw moves the colour probe's score (Herlev, 02c with colour histograms).

Measures the out-of-fold accuracy of 02c's classifier (logistic regression, C = 0.01, fitted on
all 8 views, predicting their mean) on the saved MobileNetV2 @224 features of the 8 views
(benchmarks/probe_views.py's .npz) with 02b's colour/stain histograms of each view appended,
first on the run's folds.csv (seed 0), then on five more fold draws (folds.assign with the
run's near-duplicate groups, seeds 1-5). The "six fold draws" row of docs/results.md.

usage (from the repository root):
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/probe_views.py      # -> views224.npz
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/probe_repeat.py views224.npz
options: --folds CSV (runs/herlev-cnn-balanced/folds.csv), --data DIR (../shared/data/herlev)
prints the accuracy with the run's folds, then one line per seed with its seconds.
About 4 min on a 2-core CPU (17-75 s per draw beside a training run).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

# cellclf_utils imports (the package's subpackage layout; adjust here if a module moves)
from cellclf_utils.data import load_dataset
from cellclf_utils.data.images import dihedral
from cellclf_utils.folds import assign
from cellclf_utils.shallow import classifiers, features

warnings.filterwarnings("ignore")


def main(npz: str, folds_csv: str, data_dir: str) -> None:
    z = np.load(npz)
    V, y, ids = z["V"], z["y"], list(z["ids"])
    ds = load_dataset(data_dir, "herlev3")
    assert list(ds.ids) == ids
    x = ds.images(224, "pad")
    X = [np.hstack([V[k], features.colour_histograms(dihedral(x, k))]) for k in range(8)]
    run = pd.read_csv(folds_csv).set_index("id").loc[ids]

    def score(fold):
        P = np.zeros((len(y), 3))
        for f in np.unique(fold):
            tr, va = fold != f, fold == f
            m = classifiers.make_classifier("logreg", 0.01).fit(np.concatenate([v[tr] for v in X]), np.tile(y[tr], 8))
            P[va] = np.mean([m.predict_proba(v[va]) for v in X], 0)
        return (P.argmax(1) == y).mean()

    print("run folds (seed 0)", round(score(run.fold.values), 4), flush=True)
    for seed in range(1, 6):
        t = time.time()
        fold = assign(ids, y, run.group.values, 5, seed).fold.values
        print("seed", seed, round(score(fold), 4), f"{time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("npz", nargs="?", default="views224.npz")
    ap.add_argument("--folds", default="runs/herlev-cnn-balanced/folds.csv")
    ap.add_argument("--data", default="../shared/data/herlev")
    a = ap.parse_args()
    main(a.npz, a.folds, a.data)
