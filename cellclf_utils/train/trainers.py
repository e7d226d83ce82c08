"""The models a cross-validation's folds fit, built once and shared by every fold.

A stage's ``build()`` hands back one model with its initial weights restored, fold after fold.
Each training phase fits a model of its own over that model's layers (the model itself, a
second functional model for the head warm-up, or a MixUp/CutMix wrapper), each taking its
images from one device-resident ``ImageStore`` by index, and each keeping its own compiled
train step: a two-phase stage compiles twice per backbone, not twice per fold. ``Trainers``
holds them, explicitly, for one cross-validation; nothing is stored on the Keras objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from ..model import mixing
from ..shallow import probe
from .device import resident
from . import layer_rates
from .schedules import Schedule, make_optimizer


@dataclass
class Phase:
    """One training phase's fitted model: ``inner`` (what trains) wrapped by ``trainer`` (which
    gathers its images from the store), and the settings ``trainer`` was last compiled with."""
    inner: keras.Model
    trainer: keras.Model
    compiled: tuple | None = None


class Trainers:
    """What the folds of one cross-validation share: the image store, one ``Phase`` per training
    phase, and the pooled-features model of LP-FT's probe."""

    def __init__(self):
        self.model: keras.Model | None = None
        self.store: resident.ImageStore | None = None
        self.phases: dict[tuple, Phase] = {}
        self.pooled_model: keras.Model | None = None

    def bind(self, model: keras.Model) -> None:
        """Use ``model`` for the next fold; a model other than the last one starts afresh."""
        if model is not self.model:
            self.model, self.phases, self.pooled_model = model, {}, None

    def images(self, x_train: np.ndarray, capacity: int) -> resident.ImageStore:
        """Return the store holding ``x_train`` (one store per cross-validation: a larger one only
        when a fold needs it, and then the phases are rebuilt over it)."""
        shape, dtype = x_train.shape[1:], x_train.dtype.name
        s = self.store
        if s is None or s.capacity < capacity or s.image_shape != shape or s.image_dtype != dtype:
            self.store = resident.ImageStore(capacity, shape, dtype, name="training_images")
            self.phases = {}
        self.store.load(x_train)
        return self.store

    def phase(self, name: str, mixup: float, cutmix: float, seed: int) -> Phase:
        """Return phase ``name``'s ('head' or 'train') fitted model, built on first use; MixUp/CutMix
        draws restart at ``seed``."""
        key = (name, mixup, cutmix)
        if key not in self.phases:
            if mixup or cutmix:
                inner = mixing.training_model(self.model, mixup, cutmix, seed)
            elif name == "head":
                inner = keras.Model(self.model.inputs, self.model.outputs, name=f"{self.model.name}_head_warmup")
            else:
                inner = self.model
            self.phases[key] = Phase(inner, resident.training_model(inner, self.store))
        phase = self.phases[key]
        if mixup or cutmix:
            phase.inner.get_layer("mix_batch").reseed(seed)
        return phase

    def pooled(self) -> keras.Model:
        """Return the model's pooled-features model (LP-FT's probe reads it), built once."""
        if self.pooled_model is None:
            self.pooled_model = probe.pooled_features(self.model)
        return self.pooled_model


def compile_phase(phase: Phase, params: dict, kind: str, epochs: int, steps: int, mixed: bool = False,
                  classifier: keras.Model | None = None) -> None:
    """Compile ``phase.trainer`` for one training phase (``mixed``: a ``mixing.training_model``
    inside; ``classifier``: the model whose backbone ``backbone_lr`` scales, default the phase's
    own). When it was last compiled with the same settings (the next fold), reset the
    optimizer's state instead: recompiling would trace the train step again, which costs
    10-70 s for a big backbone."""
    model = phase.trainer
    ema, ratio = params.get("ema", 0.0), params.get("backbone_lr", 1.0)
    key = (params["optimizer"], params["lr"], params.get("label_smoothing", 0.0), kind, epochs, steps, ema, ratio,
           tuple(v.path for v in model.trainable_variables))
    if phase.compiled == key and getattr(model, "optimizer", None) is not None:
        # iterations (drives the schedule and restarts the EMA), moments, momenta
        for v in model.optimizer.variables:
            if "learning_rate" not in v.path:
                v.assign(keras.ops.zeros(v.shape, v.dtype))
        return
    smoothing = params.get("label_smoothing", 0.0)
    if mixed:
        n_classes = (model.output_shape[-1] - 1) // 2
        loss, acc = mixing.mixed_crossentropy(n_classes, smoothing), mixing.mixed_accuracy(n_classes)
    else:
        loss, acc = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing), "accuracy"
    scales = layer_rates.scales(classifier or phase.inner, model.trainable_variables, ratio)
    optimizer = make_optimizer(params["optimizer"], Schedule(kind, params["lr"], epochs, steps), ema, scales)
    model.compile(optimizer=optimizer, loss=loss, metrics=[acc])
    phase.compiled = key
