"""How a linear probe should use the 8 flips/rotations of each image (Herlev, 5 folds).

Measures the out-of-fold accuracy and macro AUC (one-vs-rest) of a standardised logistic
regression on saved features of the 8 dihedral views (benchmarks/probe_views.py's .npz), per
fold of the run's folds.csv, for C in {0.003, 0.01, 0.03} and four ways of using the views:

  plain     fit and predict on the unflipped image (view 0) only
  view0     fit on view 0, predict the mean of the 8 views' probabilities (02b's way)
  meanfeat  features averaged over the 8 views, for fitting and predicting
  allviews  fit on all 8 views of each training image (8x rows), predict the mean over 8
            (what stage 02c does: shallow.cv.cross_validate(..., fit_on_views=True))

This is the "how the 8 views are used" table of docs/results.md (Herlev, 02c).

--hog instead computes 02b's HOG + colour features of the 8 views at 128 px and compares
view0 and allviews with 02b's classifier (make_classifier("logreg", 1.0)): the check that the
same change hurts HOG + colour (the 70.6% -> 66.0% of docs/results.md). That check was run as a
variant of this loop; --hog packages it as it is described there.

usage (from the repository root):
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/probe_views.py     # -> views224.npz
    .venv/bin/python benchmarks/probe_tta.py views224.npz
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/probe_tta.py --hog
options: --folds CSV (runs/herlev-cnn-balanced/folds.csv), --data DIR (../shared/data/herlev, --hog only)
prints one line per (mode, C): mode, C, accuracy, macro AUC.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

warnings.filterwarnings("ignore")


def hog_views(data_dir: str):
    """(V, y, ids) for 02b's HOG + colour features of the 8 views at 128 px."""
    from cellclf_utils.data import load_dataset
    from cellclf_utils.data.images import dihedral
    from cellclf_utils.shallow import features
    ds = load_dataset(data_dir, "herlev3")
    x = ds.images(128, "pad")
    return np.stack([features.hog_and_colour(dihedral(x, k)) for k in range(8)]), ds.labels, np.array(ds.ids)


def hog_classifier(C: float):
    from cellclf_utils.shallow import classifiers
    return classifiers.make_classifier("logreg", C)


def main(npz: str | None, folds_csv: str, hog: bool, data_dir: str) -> None:
    if hog:
        V, y, ids = hog_views(data_dir)
        modes, Cs, make = ("view0", "allviews"), (1.0,), hog_classifier
    else:
        z = np.load(npz)
        V, y, ids = z["V"], z["y"], z["ids"]
        modes, Cs = ("plain", "view0", "meanfeat", "allviews"), (0.003, 0.01, 0.03)
        make = lambda C: make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))  # noqa: E731
    fo = dict(pd.read_csv(folds_csv)[["id", "fold"]].values)
    fold = np.array([fo[i] for i in ids])

    def run(mode, C):
        P = np.zeros((len(y), 3))
        for f in range(5):
            tr, va = fold != f, fold == f
            m = make(C)
            if mode == "view0":
                m.fit(V[0][tr], y[tr]); P[va] = np.mean([m.predict_proba(v[va]) for v in V], 0)
            elif mode == "plain":
                m.fit(V[0][tr], y[tr]); P[va] = m.predict_proba(V[0][va])
            elif mode == "meanfeat":
                M = V.mean(0); m.fit(M[tr], y[tr]); P[va] = m.predict_proba(M[va])
            elif mode == "allviews":
                m.fit(np.concatenate([v[tr] for v in V]), np.tile(y[tr], 8))
                P[va] = np.mean([m.predict_proba(v[va]) for v in V], 0)
        return (P.argmax(1) == y).mean(), roc_auc_score(y, P, multi_class="ovr")

    for mode in modes:
        for C in Cs:
            print(mode, C, "%.3f %.3f" % run(mode, C), flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("npz", nargs="?", default="views224.npz")
    ap.add_argument("--folds", default="runs/herlev-cnn-balanced/folds.csv")
    ap.add_argument("--hog", action="store_true")
    ap.add_argument("--data", default="../shared/data/herlev")
    a = ap.parse_args()
    main(a.npz, a.folds, a.hog, a.data)
