"""The callback every trained stage fits with: score the validation split each epoch and keep
the best epoch's weights (on the device), with optional early stopping."""
from __future__ import annotations

import keras
import numpy as np

from .. import metrics
from ..model.tta import predict_proba


MONITORS = ("val_auc", "val_loss", "last")  # which epoch a fold keeps


class BestEpoch(keras.callbacks.Callback):
    """Scores the validation split each epoch (val_loss, val_accuracy, val_auc = macro
    one-vs-rest AUC via scikit-learn) and keeps the weights of the best epoch by ``monitor``
    ('last' keeps the final epoch). Epochs are counted across fits (training phases);
    ``restore()`` puts the best weights back. ``scored``: the classifier to score and keep
    when the fitted model is a training wrapper around it (MixUp/CutMix). ``patience`` (set
    per phase; 0 = off) stops the fit after that many epochs without a better score. ``ema``
    (set per phase): the optimiser keeps a moving average of the weights, and each epoch is
    scored and kept with that average in place of the trained weights."""

    def __init__(self, x_val, y_val, monitor: str, batch_size: int, scored: keras.Model | None = None):
        super().__init__()
        self.x_val, self.y_val, self.monitor, self.batch_size = x_val, y_val, monitor, batch_size
        self.scored = scored
        self.best, self.best_epoch, self.best_weights, self.seen = None, -1, None, 0
        self.patience = 0  # set per phase: fine-tuning stops early, the head warm-up never
        self.ema = False   # set per phase: fine-tuning may average its weights, the head warm-up never

    @property
    def classifier(self) -> keras.Model:
        return self.scored if self.scored is not None else self.model

    def on_epoch_end(self, epoch, logs=None):
        epoch, self.seen = self.seen, self.seen + 1
        logs = logs if logs is not None else {}
        trained = self._swap_in_average() if self.ema else None
        self._score(epoch, logs)
        if trained is not None:  # training goes on from the trained weights, not their average
            for v, w in zip(self.model.trainable_weights, trained):
                v.assign(w)

    def _swap_in_average(self) -> list:
        """Put the optimiser's moving average in the fitted model's trained weights; return the
        trained values."""
        trained = [keras.ops.copy(v.value) for v in self.model.trainable_weights]
        self.model.optimizer.finalize_variable_values(self.model.trainable_weights)
        return trained

    def _score(self, epoch: int, logs: dict) -> None:
        p = predict_proba(self.classifier, self.x_val, self.batch_size).astype(np.float64)
        p_true = np.clip(p[np.arange(len(self.y_val)), self.y_val], 1e-7, 1.0)
        logs["val_loss"] = float(-np.log(p_true).mean())
        logs["val_accuracy"] = float((p.argmax(1) == self.y_val).mean())
        logs["val_auc"] = metrics.macro_auc(self.y_val, p)
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.monitor == "last":
            return
        value = logs[self.monitor]
        better = (value > self.best if self.monitor == "val_auc" else value < self.best) \
            if self.best is not None else True
        if better and value == value:  # NaN AUC (a class absent) never counts as best
            self.best, self.best_epoch = value, epoch
            self.best_weights = snapshot(self.classifier)
        if self.patience and epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True  # Keras ends the fit after this epoch

    def restore(self) -> int:
        """Set the best epoch's weights; return that epoch (0-based, across phases)."""
        if self.best_weights is None:
            return self.seen - 1
        for v, w in zip(self.classifier.weights, self.best_weights):
            v.assign(w)
        return self.best_epoch


class WeightAverage(keras.callbacks.Callback):
    """Stochastic weight averaging: the mean of the scored model's weights at the end of each
    fit epoch from ``first`` (0-based, within the fit) on, kept on the device; ``apply()`` puts
    it in the model. BatchNormalization statistics are averaged like the rest (exact when they
    are frozen, as with ``freeze_bn``)."""

    def __init__(self, scored: keras.Model, first: int):
        super().__init__()
        self.scored, self.first = scored, first
        self.mean, self.count = None, 0

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first:
            return
        self.count += 1
        now = [v.value for v in self.scored.weights]
        if self.mean is None:
            self.mean = [keras.ops.copy(w) for w in now]
        else:
            self.mean = [m + (keras.ops.cast(w, m.dtype) - m) / self.count for m, w in zip(self.mean, now)]

    def apply(self) -> int:
        """Set the averaged weights; return how many epochs they average (0: none ran, nothing set)."""
        if self.mean is not None:
            for v, m in zip(self.scored.weights, self.mean):
                v.assign(keras.ops.cast(m, v.dtype))
        return self.count


def snapshot(model: keras.Model) -> list:
    """Return copies of ``model``'s weights made where they live (on the accelerator): keeping the
    best epoch costs no trip to the host, where ``get_weights`` would send every variable (about
    900 for InceptionResNetV2, 220 MB) to numpy one by one each time the score improves."""
    return [keras.ops.copy(v.value) for v in model.weights]
