"""K-fold training of a Keras model: one model per fold (``fold.fit_fold``) on the run's
folds, out-of-fold and test predictions, fold-level resume, and the batch size settled for
the machine before the first fold."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import keras
import numpy as np

from ..folds import CVResult, FoldResult, cross_validate as fold_loop, splits
from ..model import batching
from ..runfolder import layout
from .device import compile_cache, memory
from .fold import fit_fold
from .trainers import Trainers


def _with_batch_size(build: Callable[[], keras.Model], params: dict) -> dict:
    """Return ``params`` with batch_size settled for this machine: 0 (auto) becomes the largest
    that fits the accelerator (memory.choose_batch_size); a given size is checked against it.
    The model is built only where there is something to decide (not for a given size on a CPU)."""
    available = memory.device_bytes()
    if params["batch_size"] > 0 and available is None:
        return params
    batch_size, note = memory.choose_batch_size(params["batch_size"], build(), params["optimizer"], available)
    if note:
        print(note)
    return {**params, "batch_size": batch_size}


def _fold_fitter(build: Callable[[], keras.Model], x, y, fold_of, x_test, params: dict, stage_dir: Path,
                 extra_for_fold: Callable[[int], tuple] | None,
                 soft: np.ndarray | None) -> Callable[[int, np.ndarray, np.ndarray], FoldResult]:
    """Return ``fit(fold, train_idx, val_idx)`` for the folds of ``fold_of``, with what they
    share settled first: the batch size, the schedule's length and the compiled steps."""
    compile_cache.enable()
    params = _with_batch_size(build, params)
    folds = splits(fold_of)
    extras = {f: extra_for_fold(f) if extra_for_fold else None for f, _, _ in folds}
    # one schedule length for all folds (the largest training split), so folds can share a
    # compiled train step; a smaller fold ends its schedule at most a step early
    steps = max(batching.steps(len(tr) + (len(extras[f][0]) if extras[f] else 0), params["batch_size"])
                for f, tr, _ in folds)
    trainers = Trainers()  # the models each phase fits, with their compiled steps, shared by the folds

    def fit(fold: int, train_idx: np.ndarray, val_idx: np.ndarray) -> FoldResult:
        r = fit_fold(build, x, y, train_idx, val_idx, x_test, params, fold,
                     Path(stage_dir) / layout.fold_dir(fold), steps, extras[fold], trainers, soft)
        rec = r.record
        print(f"fold {fold}: best epoch {rec['best_epoch'] + 1}, {rec['seconds']:.0f} s, "
              f"{rec['images_per_s']:.0f} img/s{' (resumed from disk)' if rec['resumed'] else ''}")
        return r

    return fit


def _clear() -> None:
    policy = keras.mixed_precision.global_policy()
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)  # clear_session resets it to float32


def cross_validate(build: Callable[[], keras.Model], x, y, fold_of, x_test, params: dict,
                   stage_dir: Path, extra_for_fold: Callable[[int], tuple] | None = None,
                   soft: np.ndarray | None = None) -> CVResult:
    """Train one model per fold (``fold_of[i]`` is image i's validation fold) and return
    out-of-fold and fold-averaged test probabilities. ``extra_for_fold(fold)`` may add
    ``(images, target probabilities)`` to that fold's training split (pseudo-labels); ``soft``
    (N, classes): teacher probabilities mixed into the targets (``distill_weight``)."""
    cv = fold_loop(_fold_fitter(build, x, y, fold_of, x_test, params, stage_dir, extra_for_fold, soft), fold_of)
    _clear()
    return cv


def train_fold(build: Callable[[], keras.Model], x, y, fold_of, x_test, params: dict, stage_dir: Path,
               fold: int, soft: np.ndarray | None = None) -> FoldResult | None:
    """Train (or load, when finished) fold ``fold`` alone, exactly as ``cross_validate`` trains it
    among the others: a fold job of the Ray executor. None when ``fold_of`` has no such fold."""
    chosen = [(tr, va) for f, tr, va in splits(fold_of) if f == fold]
    if not chosen:
        return None
    r = _fold_fitter(build, x, y, fold_of, x_test, params, stage_dir, None, soft)(fold, *chosen[0])
    _clear()
    return r
