"""Learning-rate schedules and optimisers.

Schedules are per training step (smooth even with few epochs) and written with keras.ops, so
one object serves every backend. ``step`` is the write-up's decay: the rate until 80% of
training, then divided by 10 at 80, 83, 86, 89, 92 and 95% (its epochs 80..95 of 100).
"""
from __future__ import annotations

import math

import keras
from keras import ops

from . import layer_rates

SCHEDULES = ("constant", "step", "cosine", "onecycle")
OPTIMIZERS = ("sgd", "adam", "adamw")
STEP_MILESTONES = (0.80, 0.83, 0.86, 0.89, 0.92, 0.95)
WARMUP = 0.05         # cosine: share of training spent warming up linearly
ONECYCLE_PEAK = 0.3   # onecycle: share of training spent rising to the peak rate
ONECYCLE_START = 25.0  # onecycle starts at lr / 25 and ends at lr / 1e4 (fast.ai's defaults)
ONECYCLE_END = 1e4
WEIGHT_DECAY = 1e-4   # adamw


@keras.saving.register_keras_serializable(package="cellclf")
class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate at each step for ``kind`` in SCHEDULES, peak rate ``lr``."""

    def __init__(self, kind: str, lr: float, epochs: int, steps_per_epoch: int):
        if kind not in SCHEDULES:
            raise ValueError(f"parameter 'schedule' must be one of {', '.join(SCHEDULES)} (got {kind!r})")
        self.kind, self.lr, self.epochs, self.steps_per_epoch = kind, float(lr), int(epochs), int(steps_per_epoch)

    def __call__(self, step):
        total = float(max(1, self.epochs * self.steps_per_epoch))
        t = ops.cast(step, "float32")
        lr = self.lr
        if self.kind == "constant":
            return ops.convert_to_tensor(lr, "float32")
        if self.kind == "step":
            epoch = ops.floor(t / self.steps_per_epoch)
            # whole epochs, as the write-up's callback did: decay from the first epoch >= milestone
            n = sum(ops.cast(epoch >= math.ceil(m * self.epochs - 1e-9), "float32") for m in STEP_MILESTONES)
            return lr * ops.power(0.1, n)
        if self.kind == "cosine":
            warm = max(1.0, WARMUP * total)
            rise = lr * (t + 1.0) / warm
            frac = ops.clip((t - warm) / max(1.0, total - warm), 0.0, 1.0)
            fall = lr * 0.5 * (1.0 + ops.cos(math.pi * frac))
            return ops.where(t < warm, rise, fall)
        peak = max(1.0, ONECYCLE_PEAK * total)
        start, end = lr / ONECYCLE_START, lr / ONECYCLE_END
        up = ops.clip(t / peak, 0.0, 1.0)
        down = ops.clip((t - peak) / max(1.0, total - peak), 0.0, 1.0)
        rising = start + (lr - start) * 0.5 * (1.0 - ops.cos(math.pi * up))
        falling = end + (lr - end) * 0.5 * (1.0 + ops.cos(math.pi * down))
        return ops.where(t < peak, rising, falling)

    def get_config(self):
        return {"kind": self.kind, "lr": self.lr, "epochs": self.epochs, "steps_per_epoch": self.steps_per_epoch}


def lr_at(epoch: float, lr: float, schedule: str, epochs: int, steps_per_epoch: int = 1) -> float:
    """Return the learning rate at the start of (0-based, possibly fractional) ``epoch``."""
    step = int(round(epoch * steps_per_epoch))
    return float(ops.convert_to_numpy(Schedule(schedule, lr, epochs, steps_per_epoch)(step)))


def make_optimizer(name: str, learning_rate, ema: float = 0.0, scales: list[float] | None = None):
    """Return a Keras optimiser: 'sgd' (momentum 0.9), 'adam', or 'adamw' (weight decay 1e-4).
    ``learning_rate`` is a float or a Schedule; ``ema`` > 0 keeps an exponential moving average
    of the weights with that momentum (``finalize_variable_values`` puts it in the model);
    ``scales``: one learning-rate multiple per trained variable (``layer_rates.scales``)."""
    classes = {"sgd": (keras.optimizers.SGD, {"momentum": 0.9}), "adam": (keras.optimizers.Adam, {}),
               "adamw": (keras.optimizers.AdamW, {"weight_decay": WEIGHT_DECAY})}
    if name not in classes:
        raise ValueError(f"parameter 'optimizer' must be one of {', '.join(OPTIMIZERS)} (got {name!r})")
    cls, kwargs = classes[name]
    if ema:
        kwargs = {**kwargs, "use_ema": True, "ema_momentum": float(ema)}
    if scales is not None and any(s != 1 for s in scales):
        cls, kwargs = layer_rates.with_scales(cls), {**kwargs, "scales": scales}
    return cls(learning_rate=learning_rate, **kwargs)
