"""Pseudo-labelling: retrain a finished stage (the teacher) with its confident predictions on the
unlabeled test images added to each fold's training split.

Leak-safety: fold k's student only ever sees pseudo-labels made by the teacher's fold-k model
(trained without fold k's images), and never a test image that near-duplicates one of fold k's
validation images. So a fold's validation images reach its training in no form, and the
out-of-fold score stays honest.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


class PseudoError(ValueError):
    """A teacher that cannot be used; the message says what to pick instead."""


def teachers(run_dir: Path, teacher: str) -> list[str]:
    """Return the teacher stages: ``teacher`` as a comma-separated list of stage folders, or
    (empty) the finished trained stage with the best out-of-fold accuracy. Each must have kept
    per-fold test predictions (``fold<k>/preds.npz``)."""
    run_dir = Path(run_dir)
    usable = {}
    for d in sorted(run_dir.iterdir()):
        m = d / "metrics.json"
        if m.exists() and list(d.glob("fold*/preds.npz")):
            metrics = json.loads(m.read_text())
            if metrics.get("kind") == "model" and "test" in np.load(next(d.glob("fold*/preds.npz"))):
                usable[d.name] = (metrics.get("cv") or {}).get("accuracy", 0)
    names = [t.strip() for t in teacher.split(",") if t.strip()] or \
        ([max(usable, key=usable.get)] if usable else [])
    bad = [t for t in names if t not in usable]
    if not names or bad:
        raise PseudoError(f"parameter 'teacher': {', '.join(bad) or 'no stage'} cannot teach in run {run_dir.name}: "
                          "a teacher is a finished trained stage (02-05) that predicted test images per fold; "
                          f"usable here: {', '.join(usable) or 'none (does the dataset have a test/ folder?)'}")
    return names


def teacher_fold_proba(stage_dir: Path, fold: int) -> np.ndarray:
    """Return the test-set probabilities of the teacher's fold-``fold`` model."""
    path = Path(stage_dir) / f"fold{fold}" / "preds.npz"
    if not path.exists():
        raise PseudoError(f"{path} is missing: the teacher's fold {fold} did not finish; rerun it with --resume")
    return np.load(path)["test"]


def select(proba: np.ndarray, threshold: float, per_class_cap: int = 0) -> np.ndarray:
    """Return the indices of test images whose top probability is at least ``threshold``, at
    most ``per_class_cap`` per predicted class (the most confident; 0 = no cap), so one class
    cannot flood the training set."""
    top, conf = proba.argmax(1), proba.max(1)
    chosen = []
    for c in range(proba.shape[1]):
        idx = np.flatnonzero((top == c) & (conf >= threshold))
        idx = idx[np.argsort(-conf[idx], kind="stable")]
        chosen.append(idx[:per_class_cap] if per_class_cap else idx)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, int)


def targets(proba: np.ndarray, soft: bool) -> np.ndarray:
    """Return training targets: the probabilities themselves (soft) or one-hot of the top class."""
    return proba.astype("float32") if soft else np.eye(proba.shape[1], dtype="float32")[proba.argmax(1)]


def blocked_by_fold(test_dupes: pd.DataFrame, fold_of_id: dict[str, int], test_ids: list[str]) -> dict[int, set]:
    """Return, per fold, the test indices that near-duplicate one of that fold's validation
    images (``test_dupes``: test_id, train_id rows): pseudo-labelling them would train the fold
    on a copy of its own validation image."""
    where = {t: i for i, t in enumerate(test_ids)}
    out: dict[int, set] = {}
    for r in test_dupes.itertuples():
        if r.train_id in fold_of_id and r.test_id in where:
            out.setdefault(fold_of_id[r.train_id], set()).add(where[r.test_id])
    return out


def fold_extras(proba_by_fold: dict[int, np.ndarray], x_test: np.ndarray, threshold: float, per_class_cap: int,
                soft: bool, blocked: dict[int, set] | None = None) -> dict[int, tuple]:
    """Return per fold ``(images, targets, test indices)`` of its pseudo-labelled test images."""
    out = {}
    for fold, proba in proba_by_fold.items():
        idx = select(proba, threshold, per_class_cap)
        idx = np.array([i for i in idx if i not in (blocked or {}).get(fold, set())], dtype=int)
        out[fold] = (x_test[idx], targets(proba[idx], soft), idx)
    return out


def label_accuracy(proba_by_fold: dict[int, np.ndarray], extras: dict[int, tuple],
                   test_labels: np.ndarray | None) -> float | None:
    """Return the share of pseudo-labels that are right, over all folds (None without labels)."""
    if test_labels is None:
        return None
    right = total = 0
    for fold, (_, _, idx) in extras.items():
        right += int((proba_by_fold[fold][idx].argmax(1) == test_labels[idx]).sum())
        total += len(idx)
    return right / total if total else None
