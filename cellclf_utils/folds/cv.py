"""The fold loop every trained stage shares: one model per fold, scored on the fold it never
saw, and the out-of-fold and test predictions assembled from the folds' own.

A stage supplies ``fit(fold, train_idx, val_idx) -> FoldResult`` (a Keras fine-tune, a
scikit-learn classifier on features); ``cross_validate`` runs it for each fold in order and
returns a ``CVResult``: every image's probabilities from the model that did not train on it,
the test images' probabilities averaged over the folds' models, and each fold's record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

# what every stage records per fold (fold_times.csv, metrics.json "fold_times")
RECORD = ("fold", "best_epoch", "epochs", "seconds", "images_per_s", "compiles", "compile_s", "cache_loads",
          "batch_size", "resumed")


@dataclass
class FoldResult:
    val_proba: np.ndarray              # (n_val, C) probabilities of the fold's validation images
    val_plain: np.ndarray              # the same without TTA (== val_proba when TTA is off)
    test_proba: np.ndarray | None      # (M, C), None when there are no test images
    record: dict                       # RECORD's keys that apply to the stage
    history: pd.DataFrame = field(default_factory=pd.DataFrame)  # per epoch; empty without epochs


@dataclass
class CVResult:
    oof: np.ndarray                # (N, C) out-of-fold probabilities, rows in input order
    test: np.ndarray | None        # (M, C) mean over folds
    history: pd.DataFrame          # fold, epoch, loss, accuracy, val_loss, val_accuracy, val_auc, learning_rate, phase
    folds: pd.DataFrame            # one row per fold: RECORD's columns
    oof_plain: np.ndarray          # out-of-fold probabilities without TTA (== oof when tta is off)


def splits(fold_of) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Return ``(fold, train_idx, val_idx)`` per fold, in fold order."""
    fold_of = np.asarray(fold_of)
    return [(int(f), np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in sorted(np.unique(fold_of))]


def cross_validate(fit: Callable[[int, np.ndarray, np.ndarray], FoldResult], fold_of) -> CVResult:
    """Return the CVResult of ``fit`` run on every fold of ``fold_of`` (image i's validation fold)."""
    fold_of = np.asarray(fold_of)
    oof = oof_plain = None
    tests, hists, rows = [], [], []
    for fold, train_idx, val_idx in splits(fold_of):
        r = fit(fold, train_idx, val_idx)
        if oof is None:
            oof = np.full((len(fold_of), r.val_proba.shape[1]), np.nan)
            oof_plain = oof.copy()
        oof[val_idx], oof_plain[val_idx] = r.val_proba, r.val_plain
        if r.test_proba is not None:
            tests.append(r.test_proba)
        hists.append(r.history)
        rows.append({k: r.record.get(k) for k in RECORD if k in r.record})
    history = pd.concat(hists, ignore_index=True) if any(len(h) for h in hists) else pd.DataFrame()
    return CVResult(oof, np.mean(tests, axis=0) if tests else None, history, pd.DataFrame(rows), oof_plain)
