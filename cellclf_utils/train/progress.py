"""The training stage's progress as a file the run can read while the kernel works:
``progress.json`` in the fold's folder (06: in each student's) holds the fold, the epoch and the
last validation scores, rewritten atomically at the fold's start and after every epoch.
``cellclf run`` shows the newest of a stage's as its live line (``--executor ray``: each running
fold's) and removes them when the stage ends."""
from __future__ import annotations

import time
from pathlib import Path

import keras

from ..atomic import write_json


class EpochProgress(keras.callbacks.Callback):
    """Writes ``path`` (progress.json) for fold ``fold`` of ``folds``: epoch e of ``epochs``
    (counted across the fold's training phases), the validation accuracy and AUC of the last
    epoch and the images per second it trained (its scoring included). Must follow BestEpoch in
    the callback list, which puts the validation scores in the epoch's logs."""

    def __init__(self, path: Path, fold: int, folds: int, epochs: int, n_train: int):
        super().__init__()
        self.path, self.n_train = Path(path), n_train
        self.state = {"fold": fold + 1, "folds": folds, "epoch": 0, "epochs": epochs}
        self._started = time.time()
        write_json(self.path, self.state)

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = max(time.time() - self._started, 1e-9)
        self.state = {**self.state, "epoch": self.state["epoch"] + 1,
                      "val_accuracy": logs.get("val_accuracy"), "val_auc": logs.get("val_auc"),
                      "images_per_s": round(self.n_train / seconds, 1)}
        write_json(self.path, self.state)
