"""K-fold training with out-of-fold and test predictions, best-epoch selection, and
fold-level resume (a finished fold is loaded, not retrained)."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import pandas as pd
from sklearn.utils.class_weight import compute_class_weight

from . import metrics, predict, runs

STEP_MILESTONES = (0.80, 0.83, 0.86, 0.89, 0.92, 0.95)  # the write-up's 80,83,..,95 of 100 epochs
# values that do not change what a fold computes, so they may differ on resume
_NOT_IN_SIGNATURE = ("run_id", "profile", "data_dir")


class ResumeMismatchError(RuntimeError):
    """A fold folder holds results computed with other parameters."""


def lr_at(epoch: int, lr: float, schedule: str, epochs: int) -> float:
    """Return the learning rate for 0-based ``epoch``. 'step' divides by 10 at each of the
    write-up's milestones (80%, 83%, ... 95% of the epochs)."""
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * 0.1 ** sum(epoch >= m * epochs for m in STEP_MILESTONES)
    raise ValueError(f"parameter 'schedule' must be one of constant, step (got {schedule!r})")


def make_optimizer(name: str, lr: float):
    """Return a Keras optimiser: 'sgd' (momentum 0.9) or 'adam'."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=0.9)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    raise ValueError(f"parameter 'optimizer' must be one of sgd, adam (got {name!r})")


class BestEpoch(keras.callbacks.Callback):
    """Scores the validation split each epoch (val_loss, val_accuracy, val_auc = macro
    one-vs-rest AUC via scikit-learn) and keeps the weights of the best epoch by ``monitor``
    ('last' keeps the final epoch); restores them when training ends."""

    def __init__(self, x_val, y_val, monitor: str, batch_size: int):
        super().__init__()
        self.x_val, self.y_val, self.monitor, self.batch_size = x_val, y_val, monitor, batch_size
        self.best, self.best_epoch, self.best_weights = None, -1, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        p = self.model.predict(self.x_val, batch_size=self.batch_size, verbose=0).astype(np.float64)
        p_true = np.clip(p[np.arange(len(self.y_val)), self.y_val], 1e-7, 1.0)
        logs["val_loss"] = float(-np.log(p_true).mean())
        logs["val_accuracy"] = float((p.argmax(1) == self.y_val).mean())
        logs["val_auc"] = metrics.macro_auc(self.y_val, p)
        if self.monitor == "last":
            return
        value = logs[self.monitor]
        better = (value > self.best if self.monitor == "val_auc" else value < self.best) \
            if self.best is not None else True
        if better and value == value:  # NaN AUC (a class absent) never counts as best
            self.best, self.best_epoch = value, epoch
            self.best_weights = [w.copy() for w in self.model.get_weights()]

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


@dataclass
class CVResult:
    oof: np.ndarray                # (N, C) out-of-fold probabilities, rows in input order
    test: np.ndarray | None        # (M, C) mean over folds
    history: pd.DataFrame          # fold, epoch, loss, accuracy, learning_rate, val_loss, val_accuracy, val_auc
    folds: pd.DataFrame            # per fold: best_epoch, seconds, images_per_s, resumed


def signature(params: dict) -> str:
    """Return a short hash of the parameters that determine a fold's result."""
    keep = {k: v for k, v in sorted(params.items()) if k not in _NOT_IN_SIGNATURE}
    return hashlib.sha1(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def fit_fold(build: Callable[[], keras.Model], x, y, train_idx, val_idx, x_test, params: dict,
             fold: int, fold_dir: Path) -> dict:
    """Train one fold and return its record (val/test probabilities, history, timing);
    if ``fold_dir`` holds a finished fold with the same parameters, load it instead."""
    fold_dir = Path(fold_dir)
    sig = signature(params)
    done = fold_dir / "done.json"
    if done.exists():
        info = json.loads(done.read_text())
        if info["signature"] != sig:
            raise ResumeMismatchError(
                f"{fold_dir} was trained with other parameters (signature {info['signature']} vs {sig}); "
                "finished work is not overwritten: use a new run_id")
        saved = np.load(fold_dir / "preds.npz")
        return {**info, "val_proba": saved["val"], "test_proba": saved["test"] if "test" in saved else None,
                "history": pd.read_csv(fold_dir / "history.csv"), "resumed": True}

    keras.utils.set_random_seed(params["seed"] * 100 + fold)
    model = build()
    model.compile(optimizer=make_optimizer(params["optimizer"], params["lr"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    best = BestEpoch(x[val_idx], y[val_idx], params["monitor"], params["batch_size"])
    schedule = keras.callbacks.LearningRateScheduler(
        lambda e: lr_at(e, params["lr"], params["schedule"], params["epochs"]))
    class_weight = None
    if params.get("class_weight") == "balanced":
        present = np.unique(y[train_idx])
        class_weight = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present,
                                                                       y=y[train_idx])))
    print(f"fold {fold}: {len(train_idx)} train / {len(val_idx)} validation images")
    t0 = time.time()
    hist = model.fit(x[train_idx], y[train_idx], batch_size=params["batch_size"], epochs=params["epochs"],
                     shuffle=True, class_weight=class_weight, callbacks=[schedule, best], verbose=2)
    seconds = time.time() - t0
    history = pd.DataFrame(hist.history)
    history.insert(0, "epoch", np.arange(len(history)))
    history.insert(0, "fold", fold)
    val_proba = predict.predict_proba(model, x[val_idx], params["batch_size"], params.get("tta", False))
    test_proba = (predict.predict_proba(model, x_test, params["batch_size"], params.get("tta", False))
                  if x_test is not None and len(x_test) else None)
    fold_dir.mkdir(parents=True, exist_ok=True)
    model.save_weights(fold_dir / "model.weights.h5")
    arrays = {"val_idx": np.asarray(val_idx), "val": val_proba}
    if test_proba is not None:
        arrays["test"] = test_proba
    tmp = fold_dir / "preds.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(fold_dir / "preds.npz")
    runs.write_csv(fold_dir / "history.csv", history)
    info = {"fold": fold, "signature": sig, "best_epoch": int(best.best_epoch if best.best_epoch >= 0
                                                                 else len(history) - 1),
            "seconds": round(seconds, 2), "images_per_s": round(len(train_idx) * len(history) / seconds, 1)}
    runs.write_json(done, info)  # last: the fold counts as finished only now
    return {**info, "val_proba": val_proba, "test_proba": test_proba, "history": history, "resumed": False}


def cross_validate(build: Callable[[], keras.Model], x, y, fold_of, x_test, params: dict,
                   stage_dir: Path) -> CVResult:
    """Train one model per fold (``fold_of[i]`` is image i's validation fold) and return
    out-of-fold and fold-averaged test probabilities."""
    fold_of = np.asarray(fold_of)
    n_classes = None
    oof, tests, hists, rows = None, [], [], []
    for fold in sorted(np.unique(fold_of)):
        val_idx = np.flatnonzero(fold_of == fold)
        train_idx = np.flatnonzero(fold_of != fold)
        rec = fit_fold(build, x, y, train_idx, val_idx, x_test, params, int(fold), Path(stage_dir) / f"fold{fold}")
        if oof is None:
            n_classes = rec["val_proba"].shape[1]
            oof = np.full((len(y), n_classes), np.nan)
        oof[val_idx] = rec["val_proba"]
        if rec["test_proba"] is not None:
            tests.append(rec["test_proba"])
        hists.append(rec["history"])
        rows.append({k: rec[k] for k in ("fold", "best_epoch", "seconds", "images_per_s", "resumed")})
        print(f"fold {fold}: best epoch {rec['best_epoch'] + 1}, {rec['seconds']:.0f} s, "
              f"{rec['images_per_s']:.0f} img/s{' (resumed from disk)' if rec['resumed'] else ''}")
    keras.backend.clear_session()
    return CVResult(oof, np.mean(tests, axis=0) if tests else None, pd.concat(hists, ignore_index=True),
                    pd.DataFrame(rows))
