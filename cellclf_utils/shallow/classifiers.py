"""The scikit-learn classifiers the shallow stages fit on features: standardise, then logistic
regression, an RBF SVM (calibrated probabilities) or a random forest."""
from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

CLASSIFIERS = ("logreg", "svm", "forest")
CLASS_WEIGHTS = ("none", "balanced")  # loss weights per class; balanced = inverse frequency (02-05 too)


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


def mean_proba(model, feats_views: list[np.ndarray], n_classes: int) -> np.ndarray:
    """Return the mean class probabilities of ``model`` over views' features, with a column for
    every class (a fold's training split may lack one)."""
    out = np.zeros((len(feats_views[0]), n_classes))
    for f in feats_views:
        out[:, model.classes_] += model.predict_proba(f)
    return out / len(feats_views)
