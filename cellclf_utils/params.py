"""The parameters shared by every notebook: names, allowed values, validation.

Notebooks declare their parameters in a cell tagged ``parameters`` (papermill injects
overrides after it); the next cell calls :func:`validate`, so a bad value fails at the top
of the notebook with a message naming the parameter and what is allowed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


class ParameterError(ValueError):
    """A parameter value outside what the stage accepts."""


@dataclass(frozen=True)
class Spec:
    kind: type
    help: str
    choices: tuple | None = None
    check: Callable[[Any], bool] | None = None
    allowed: str = ""  # words for `check`, used in the error message


def _pos(x):
    return x > 0


SPECS: dict[str, Spec] = {
    "data_dir": Spec(str, "dataset folder or CSV manifest; '' = the embedded synthetic set (data/synth)"),
    "classes": Spec(str, "class mapping: '' (one class per folder), a preset (herlev3, herlev7, synth3) or a YAML file"),
    "run_id": Spec(str, "run folder under runs/; '' = a new id from the date and time",
                   check=lambda s: s == "" or (s.replace("-", "").replace("_", "").replace(".", "").isalnum()
                                               and not s.startswith(".")),
                   allowed="letters, digits, '-', '_', '.'"),
    "profile": Spec(str, "profile name recorded with the run (quick, full, smoke, or custom)"),
    "image_size": Spec(int, "square input size in pixels", check=lambda x: 16 <= x <= 1024, allowed="16..1024"),
    "resize": Spec(str, "how non-square images become square", choices=("pad", "crop", "stretch")),
    "on_bad_image": Spec(str, "unreadable image: stop naming it, or skip it and list it in the report",
                         choices=("error", "skip")),
    "limit": Spec(int, "use at most this many training images per class (0 = all), for quick runs",
                  check=lambda x: x >= 0, allowed=">= 0"),
    "batch_size": Spec(int, "images per training step", check=_pos, allowed="> 0"),
    "epochs": Spec(int, "passes over each fold's training split", check=_pos, allowed="> 0"),
    "lr": Spec(float, "initial learning rate", check=lambda x: 0 < x < 10, allowed="0 < lr < 10"),
    "optimizer": Spec(str, "optimiser", choices=("sgd", "adam")),
    "schedule": Spec(str, "learning-rate schedule ('step' = the write-up's step decay scaled to epochs)",
                     choices=("constant", "step")),
    "folds": Spec(int, "number of cross-validation folds", check=lambda x: 2 <= x <= 20, allowed="2..20"),
    "seed": Spec(int, "random seed for folds, initialisation and augmentation", check=lambda x: x >= 0,
                 allowed=">= 0"),
    "dropout": Spec(float, "dropout rate before the classifier", check=lambda x: 0 <= x < 1, allowed="0 <= dropout < 1"),
    "pooling": Spec(str, "global pooling before the classifier", choices=("gap", "gmp")),
    "augment": Spec(str, "training-time augmentation preset", choices=("none", "basic")),
    "class_weight": Spec(str, "loss weights per class ('balanced' = inverse frequency)", choices=("none", "balanced")),
    "monitor": Spec(str, "which epoch to keep per fold: best validation AUC, best validation loss, or the last",
                    choices=("val_auc", "val_loss", "last")),
    "tta": Spec(bool, "average predictions over the 8 flips/rotations"),
}

STAGE_PARAMS = {
    "01_eda_colour": ("data_dir", "classes", "run_id", "profile", "image_size", "resize", "on_bad_image",
                      "folds", "seed"),
    "02_baseline_cnn": ("data_dir", "classes", "run_id", "profile", "image_size", "resize", "on_bad_image",
                        "limit", "batch_size", "epochs", "lr", "optimizer", "schedule", "folds", "seed",
                        "dropout", "pooling", "augment", "class_weight", "monitor", "tta"),
}


def _coerce(name: str, value, spec: Spec):
    """Return ``value`` as ``spec.kind``; strings from the command line are converted."""
    if spec.kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ParameterError(f"parameter '{name}' must be true or false (got {value!r})")
    if spec.kind is int:
        if isinstance(value, bool):
            raise ParameterError(f"parameter '{name}' must be a whole number (got {value!r})")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value) if isinstance(value, (int, str)) else _fail(name, value, "a whole number")
        except ValueError:
            _fail(name, value, "a whole number")
    if spec.kind is float:
        if isinstance(value, bool):
            _fail(name, value, "a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            _fail(name, value, "a number")
    if spec.kind is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            _fail(name, value, "text")
        return value
    return value


def _fail(name, value, what):
    raise ParameterError(f"parameter '{name}' must be {what} (got {value!r})")


def validate(stage: str, namespace: dict) -> dict:
    """Return the stage's parameters taken from ``namespace`` (a notebook's globals()),
    converted and checked. Raises ParameterError naming the first bad one."""
    if stage not in STAGE_PARAMS:
        raise ParameterError(f"unknown stage {stage!r}; known: {', '.join(STAGE_PARAMS)}")
    out = {}
    for name in STAGE_PARAMS[stage]:
        if name not in namespace:
            raise ParameterError(f"parameter '{name}' is missing from the notebook's parameters cell")
        spec = SPECS[name]
        value = _coerce(name, namespace[name], spec)
        if spec.choices and value not in spec.choices:
            raise ParameterError(f"parameter '{name}' must be one of {', '.join(map(str, spec.choices))} "
                                 f"(got {value!r}): {spec.help}")
        if spec.check and not spec.check(value):
            raise ParameterError(f"parameter '{name}' must be {spec.allowed} (got {value!r}): {spec.help}")
        out[name] = value
    return out


def describe(stage: str) -> str:
    """Return a one-line-per-parameter help text for the stage."""
    lines = []
    for name in STAGE_PARAMS[stage]:
        s = SPECS[name]
        allowed = ", ".join(map(str, s.choices)) if s.choices else (s.allowed or s.kind.__name__)
        lines.append(f"{name:14s} {allowed:28s} {s.help}")
    return "\n".join(lines)
