"""Pseudo-labelling: retrain a finished stage (the teacher) with its confident predictions on the
unlabeled test images added to each fold's training split.

Leak-safety: fold k's student only ever sees pseudo-labels made by the teacher's fold-k model
(trained without fold k's images), and never a test image that near-duplicates one of fold k's
validation images. So a fold's validation images reach its training in no form, and the
out-of-fold score stays honest.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import keras
import numpy as np
import pandas as pd

from .. import metrics
from ..runfolder import Run, StageFolder, layout
from .cross_validation import cross_validate


class PseudoError(ValueError):
    """A teacher that cannot be used; the message says what to pick instead."""


def teachers(run: Run, teacher: str) -> list[str]:
    """Return the teacher stages: ``teacher`` as a comma-separated list of stage folders, or
    (empty) the finished trained stage with the best out-of-fold accuracy. Each must have kept
    per-fold test predictions (``fold<k>/preds.npz``)."""
    usable = {}
    for st in run.finished("model"):
        done = [f for f in st.folds() if f.is_done]
        if done and "test" in done[0].preds():
            usable[st.name] = (st.metrics().get("cv") or {}).get("accuracy", 0)
    names = [t.strip() for t in teacher.split(",") if t.strip()] or \
        ([max(usable, key=usable.get)] if usable else [])
    bad = [t for t in names if t not in usable]
    if not names or bad:
        raise PseudoError(f"parameter 'teacher': {', '.join(bad) or 'no stage'} cannot teach in run {run.id}: "
                          "a teacher is a finished trained stage (02-05) that predicted test images per fold; "
                          f"usable here: {', '.join(usable) or 'none (does the dataset have a test/ folder?)'}")
    return names


def fold_proba(stage: StageFolder, fold: int) -> np.ndarray:
    """Return the test-set probabilities of a stage's fold-``fold`` model (a teacher, or the
    student of a round)."""
    f = stage.fold(fold)
    if not f.is_done:
        raise PseudoError(f"{f.dir} is not finished: the teacher's fold {fold} did not finish; rerun it with --resume")
    return f.preds()["test"]


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


SETTINGS = ("threshold", "per_class_cap", "soft")  # what a student's pseudo-labels depend on
NOISE = ("student_augment", "student_dropout")     # how a student's training differs from its teacher's


def student_params(teacher_params: dict, noise: dict) -> dict:
    """Return the parameters a student trains with: its teacher's, with ``noise['student_augment']``
    as its augmentation ('' = the teacher's) and ``noise['student_dropout']`` as its dropout
    (-1 = the teacher's). Noisy Student (Xie et al., 2020): the teacher labels the test images
    without noise and the student learns them under more, so it does not merely copy them."""
    out = dict(teacher_params)
    if noise.get("student_augment"):
        out["augment"] = noise["student_augment"]
    if noise.get("student_dropout", -1) != -1:
        out["dropout"] = float(noise["student_dropout"])
    return out


def rounds(build: Callable[[], keras.Model], x, y, fold_of, x_test, test_labels, class_names: list[str],
           params: dict, settings: dict, teacher: StageFolder, out_dir: Path,
           blocked: dict[int, set]) -> tuple:
    """Retrain ``teacher`` (a finished stage) with its confident test predictions, ``settings['rounds']``
    times (each round's student teaches the next), each round's folds under ``out_dir/round<r>``
    trained with ``params`` (``student_params``: the teacher's, with any noise); return (the last
    round's CVResult, one row per round: the teacher's and the student's out-of-fold and test
    accuracy, pseudo-labels used and their accuracy where test labels exist)."""
    proba = {f: fold_proba(teacher, f) for f in np.unique(fold_of).tolist()}
    before = teacher.metrics()
    acc_before = (before["cv"]["accuracy"], (before.get("test") or {}).get("accuracy"))
    rows, cv = [], None
    for r in range(1, settings["rounds"] + 1):
        extras = fold_extras(proba, x_test, settings["threshold"], settings["per_class_cap"], settings["soft"], blocked)
        print(f"{teacher.name}, round {r}: " + ", ".join(f"fold {k}: {len(e[2])}" for k, e in extras.items())
              + " pseudo-labelled test images")
        # the pseudo-label settings join the fold signature, so --resume never reuses a fold
        # trained on other pseudo-labels
        student = {**params, "pseudo": {k: settings[k] for k in SETTINGS} | {"round": r}}
        round_dir = Path(out_dir) / layout.round_dir(r)
        cv = cross_validate(build, x, y, fold_of, x_test, student, round_dir, extra_for_fold=lambda k: extras[k][:2])
        after = metrics.summary(y, cv.oof, class_names, seed=params["seed"])
        test_after = (float((cv.test.argmax(1) == test_labels).mean())
                      if cv.test is not None and test_labels is not None else None)
        rows.append({"teacher": teacher.name, "round": r,
                     "pseudo_labels": int(np.mean([len(e[2]) for e in extras.values()])),
                     "pseudo_label_accuracy": label_accuracy(proba, extras, test_labels),
                     "cv_before": acc_before[0], "cv_after": after["accuracy"],
                     "test_before": acc_before[1], "test_after": test_after})
        acc_before = (after["accuracy"], test_after)
        proba = {k: fold_proba(StageFolder(round_dir), k) for k in proba}
    return cv, rows
