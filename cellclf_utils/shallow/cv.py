"""Cross-validation of a classifier on image features (02b: HOG + colour; 02c: a frozen
backbone's features), on the run's folds through the shared fold loop (``folds.cross_validate``).

Features are computed once per image and view; each fold then fits a fresh classifier on its
training split. With ``tta`` the predictions are the mean over the 8 flips/rotations, and the
same model's prediction of the unflipped image is kept as ``oof_plain``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from ..data.images import dihedral
from ..folds import CVResult, FoldResult, cross_validate as fold_loop
from ..model.tta import VIEWS
from ..runfolder import layout
from . import model_files
from .classifiers import make_classifier, mean_proba
from .features import hog_and_colour


def view_features(featurize: Callable, x: np.ndarray, n_views: int, what: str,
                  progress: bool = True) -> list[np.ndarray]:
    """Return [featurize(view k of x) for k < n_views], with a progress bar."""
    views = tqdm(range(n_views), desc=f"{what} features, per view", leave=False, disable=not progress)
    return [featurize(dihedral(x, k)) for k in views]


def cross_validate(x: np.ndarray, y: np.ndarray, fold_of: np.ndarray, x_test: np.ndarray | None,
                   params: dict, n_classes: int, featurize: Callable = hog_and_colour,
                   fit_on_views: bool = False, stage_dir: Path | None = None) -> CVResult:
    """Fit one ``params['classifier']`` per fold on the training split's features; return the
    CVResult (out-of-fold and fold-averaged test probabilities).

    featurize: uint8 images (N, S, S, 3) -> (N, F) features (default: HOG + colour).
    fit_on_views: with ``tta``, fit on the features of all 8 views of each training image
    (8x the rows) instead of the unflipped image only. It helps frozen CNN features (+2
    points on Herlev) and hurts HOG (-4 points), hence a choice (docs/results.md).
    stage_dir: each fold's fitted pipeline is saved as ``<stage_dir>/fold<k>/model.skops``.
    """
    n_views = VIEWS if params.get("tta", False) else 1
    t0 = time.time()
    feats = view_features(featurize, x, n_views, "training")
    feats_test = view_features(featurize, x_test, n_views, "test") if x_test is not None and len(x_test) else None
    print(f"{feats[0].shape[1]} features per image ({n_views} view(s)) in {time.time() - t0:.1f} s")

    def fit(fold: int, tr: np.ndarray, val: np.ndarray) -> FoldResult:
        t = time.time()
        model = make_classifier(params["classifier"], params["C"], params["class_weight"], params["seed"])
        fit_views = feats if fit_on_views else feats[:1]
        model.fit(np.concatenate([f[tr] for f in fit_views]), np.tile(y[tr], len(fit_views)))
        if stage_dir is not None:
            model_files.save(model, Path(stage_dir) / layout.fold_dir(fold) / layout.FOLD_PIPELINE)
        val_proba = mean_proba(model, [f[val] for f in feats], n_classes)
        test_proba = mean_proba(model, feats_test, n_classes) if feats_test is not None else None
        seconds = time.time() - t
        print(f"fold {fold}: {len(tr)} train / {len(val)} validation images, "
              f"accuracy {(val_proba.argmax(1) == y[val]).mean():.1%}")
        record = {"fold": fold, "best_epoch": 0, "seconds": round(seconds, 2),
                  "images_per_s": round(len(tr) / max(seconds, 1e-9), 1), "compiles": 0, "compile_s": 0.0,
                  "cache_loads": 0, "resumed": False}
        return FoldResult(val_proba, mean_proba(model, [feats[0][val]], n_classes), test_proba, record)

    return fold_loop(fit, fold_of)
