"""A classical baseline: HOG shape features + HSV and stain (haematoxylin/eosin) colour
histograms + a scikit-learn classifier, cross-validated on the run's folds.

The write-up never tried it; it costs seconds on a CPU, gives the leaderboard an honest floor
that is not a neural network, and makes errors unlike a CNN's (cheap diversity for an ensemble).
``cross_validate`` takes any featurizer: the linear probe (02c) passes frozen CNN features.
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import pandas as pd
from skimage.feature import hog
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm import tqdm

from ..model.augment import HED_FROM_RGB
from ..model.tta import dihedral

CLASSIFIERS = ("logreg", "svm", "forest")
BINS = 16
# stain amounts (natural-log optical density) span these ranges on Herlev; outliers fall in the end bins
HED_RANGES = ((0.0, 2.5), (-0.75, 0.75), (-0.25, 1.25))
HOG_CELLS = 8  # cells per image side, whatever the image size


def hog_features(x: np.ndarray) -> np.ndarray:
    """Return (N, F) HOG descriptors of the grey images (9 orientations, 8x8 cells, 2x2 blocks)."""
    cell = max(x.shape[1] // HOG_CELLS, 2)
    return np.stack([hog(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), orientations=9, pixels_per_cell=(cell, cell),
                         cells_per_block=(2, 2), feature_vector=True) for img in x]).astype("float32")


def colour_histograms(x: np.ndarray) -> np.ndarray:
    """Return (N, 6 x BINS) histograms (each channel sums to 1): hue, saturation, value, then
    haematoxylin, eosin and DAB amounts (Ruifrok-Johnston colour deconvolution)."""
    out = []
    for img in x:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)  # uint8: H 0..179, S and V 0..255
        stains = -np.log((img.reshape(-1, 3).astype("float32") + 1) / 256) @ HED_FROM_RGB
        hists = [np.histogram(hsv[..., c], BINS, (0, 180 if c == 0 else 256))[0] for c in range(3)]
        hists += [np.histogram(np.clip(stains[:, c], lo, hi), BINS, (lo, hi))[0]
                  for c, (lo, hi) in enumerate(HED_RANGES)]
        out.append(np.concatenate([h / max(h.sum(), 1) for h in hists]))
    return np.asarray(out, "float32")


def features(x: np.ndarray) -> np.ndarray:
    """Return HOG and colour features of uint8 RGB images (N, S, S, 3), one row per image."""
    return np.hstack([hog_features(x), colour_histograms(x)])


def make_classifier(name: str, C: float = 1.0, class_weight: str = "none", seed: int = 0):
    """Return an unfitted scikit-learn pipeline: standardise, then logistic regression, an
    RBF SVM (calibrated probabilities) or a random forest."""
    cw = "balanced" if class_weight == "balanced" else None
    if name == "logreg":
        clf = LogisticRegression(C=C, max_iter=3000, class_weight=cw)
    elif name == "svm":
        # Platt-scaled probabilities, fitted by internal cross-validation (scikit-learn's way now)
        clf = CalibratedClassifierCV(SVC(C=C, class_weight=cw, random_state=seed), ensemble=False)
    elif name == "forest":
        clf = RandomForestClassifier(n_estimators=500, class_weight=cw, random_state=seed, n_jobs=-1)
    else:
        raise ValueError(f"parameter 'classifier' must be one of {', '.join(CLASSIFIERS)} (got {name!r})")
    return make_pipeline(StandardScaler(), clf)


def _proba(model, feats_views: list[np.ndarray], n_classes: int) -> np.ndarray:
    """Mean class probabilities over views, columns for all classes (a fold may lack one)."""
    out = np.zeros((len(feats_views[0]), n_classes))
    for f in feats_views:
        out[:, model.classes_] += model.predict_proba(f)
    return out / len(feats_views)


def _view_features(featurize, x: np.ndarray, n_views: int, what: str) -> list[np.ndarray]:
    """Return [featurize(view k of x) for k < n_views], with a progress bar."""
    return [featurize(dihedral(x, k)) for k in tqdm(range(n_views), desc=f"{what} features, per view", leave=False)]


def cross_validate(x: np.ndarray, y: np.ndarray, fold_of: np.ndarray, x_test: np.ndarray | None,
                   params: dict, n_classes: int, featurize=features, fit_on_views: bool = False):
    """Fit one classifier per fold on the training split's features; return a train.CVResult
    (out-of-fold and fold-averaged test probabilities; with ``tta``, averaged over the 8
    flips/rotations, the same model's prediction of the unflipped image kept in ``oof_plain``).

    featurize: uint8 images (N, S, S, 3) -> (N, F) features (default: HOG + colour).
    fit_on_views: with ``tta``, fit on the features of all 8 views of each training image
    (8x the rows) instead of the unflipped image only. It helps frozen CNN features (+2
    points on Herlev) and hurts HOG (-4 points), hence a choice (docs/results.md).
    """
    from ..train.cross_validation import CVResult
    tta = params.get("tta", False)
    n_views = 8 if tta else 1
    t0 = time.time()
    feats = _view_features(featurize, x, n_views, "training")
    feats_test = _view_features(featurize, x_test, n_views, "test") if x_test is not None and len(x_test) else None
    print(f"{feats[0].shape[1]} features per image ({n_views} view(s)) in {time.time() - t0:.1f} s")
    oof = np.full((len(y), n_classes), np.nan)
    oof_plain = oof.copy()
    tests, rows = [], []
    for fold in sorted(np.unique(fold_of)):
        t = time.time()
        val, tr = fold_of == fold, fold_of != fold
        model = make_classifier(params["classifier"], params["C"], params["class_weight"], params["seed"])
        fit_views = feats if fit_on_views else feats[:1]
        model.fit(np.concatenate([f[tr] for f in fit_views]), np.tile(y[tr], len(fit_views)))
        oof[val] = _proba(model, [f[val] for f in feats], n_classes)
        oof_plain[val] = _proba(model, [feats[0][val]], n_classes)
        if feats_test is not None:
            tests.append(_proba(model, feats_test, n_classes))
        seconds = time.time() - t
        rows.append({"fold": int(fold), "best_epoch": 0, "seconds": round(seconds, 2),
                     "images_per_s": round(int(tr.sum()) / max(seconds, 1e-9), 1), "compiles": 0,
                     "compile_s": 0.0, "cache_loads": 0, "resumed": False})
        print(f"fold {fold}: {int(tr.sum())} train / {int(val.sum())} validation images, "
              f"accuracy {(oof[val].argmax(1) == y[val]).mean():.1%}")
    return CVResult(oof, np.mean(tests, axis=0) if tests else None, pd.DataFrame(), pd.DataFrame(rows), oof_plain)
