"""Scores of class-probability predictions: accuracy with a bootstrap CI, macro AUC,
per-class recall and the confusion matrix."""
from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import confusion_matrix, recall_score, roc_auc_score


def accuracy_ci(y, pred, level: float = 0.95, n_resamples: int = 2000, seed: int = 0):
    """Return ``(accuracy, low, high)``: a percentile bootstrap CI over images."""
    correct = (np.asarray(y) == np.asarray(pred)).astype(float)
    acc = float(correct.mean())
    if len(correct) < 2 or correct.min() == correct.max():
        return acc, acc, acc  # no spread to resample
    res = stats.bootstrap((correct,), np.mean, confidence_level=level, n_resamples=n_resamples,
                          method="percentile", random_state=np.random.default_rng(seed))
    return acc, float(res.confidence_interval.low), float(res.confidence_interval.high)


def macro_auc(y, proba) -> float:
    """Return the macro one-vs-rest ROC AUC (NaN when a class is absent from ``y``)."""
    y, proba = np.asarray(y), np.asarray(proba, dtype=float)
    n_classes = proba.shape[1]
    if len(np.unique(y)) < n_classes:
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    # renormalise: float32 softmax rows may miss 1 by 1e-7, which sklearn rejects
    proba = proba / proba.sum(axis=1, keepdims=True)
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=np.arange(n_classes)))


def summary(y, proba, class_names, seed: int = 0) -> dict:
    """Return accuracy (+95% CI), macro AUC, per-class recall, confusion matrix and n."""
    y = np.asarray(y)
    pred = np.asarray(proba).argmax(axis=1)
    labels = np.arange(len(class_names))
    acc, lo, hi = accuracy_ci(y, pred, seed=seed)
    recall = recall_score(y, pred, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": acc, "accuracy_ci": [lo, hi], "macro_auc": macro_auc(y, proba),
        "per_class_recall": {c: float(r) for c, r in zip(class_names, recall)},
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
        "n": int(len(y)),
    }
