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
    "batch_size": Spec(int, "images per training step; 0 = the largest (up to 64) that fits the accelerator's "
                            "memory, 32 on a CPU", check=lambda x: x >= 0, allowed=">= 0 (0: auto)"),
    "epochs": Spec(int, "passes over each fold's training split", check=_pos, allowed="> 0"),
    "lr": Spec(float, "initial learning rate", check=lambda x: 0 < x < 10, allowed="0 < lr < 10"),
    "optimizer": Spec(str, "optimiser (sgd with momentum 0.9; adamw with weight decay 1e-4)",
                      choices=("sgd", "adam", "adamw")),
    "schedule": Spec(str, "learning-rate schedule per step: step = the write-up's decay scaled to epochs; "
                          "cosine with a 5% warm-up; onecycle", choices=("constant", "step", "cosine", "onecycle")),
    "label_smoothing": Spec(float, "label smoothing of the cross-entropy targets",
                            check=lambda x: 0 <= x < 0.5, allowed="0 <= label_smoothing < 0.5"),
    "folds": Spec(int, "number of cross-validation folds", check=lambda x: 2 <= x <= 20, allowed="2..20"),
    "seed": Spec(int, "random seed for folds, initialisation and augmentation", check=lambda x: x >= 0,
                 allowed=">= 0"),
    "dropout": Spec(float, "dropout rate before the classifier", check=lambda x: 0 <= x < 1, allowed="0 <= dropout < 1"),
    "pooling": Spec(str, "global pooling before the classifier", choices=("gap", "gmp")),
    "augment": Spec(str, "training-time augmentation preset (see augment.describe)",
                    choices=("none", "basic", "seed", "strong")),
    "class_weight": Spec(str, "loss weights per class ('balanced' = inverse frequency)", choices=("none", "balanced")),
    "monitor": Spec(str, "which epoch to keep per fold: best validation AUC, best validation loss, or the last",
                    choices=("val_auc", "val_loss", "last")),
    "patience": Spec(int, "stop a fold's training after this many epochs without a better monitor score; "
                          "the best epoch's weights are kept (0 = train every epoch)",
                     check=lambda x: x >= 0, allowed=">= 0"),
    "tta": Spec(bool, "average predictions over the 8 flips/rotations"),
    "gradcam": Spec(int, "Grad-CAM montage: this many most confident right and wrong out-of-fold images per "
                         "class (0 = none)", check=lambda x: 0 <= x <= 20, allowed="0..20"),
    "backbone": Spec(str, "ImageNet backbone from keras.applications (see backbones.REGISTRY)",
                     choices=("vgg16", "xception", "inception_resnet_v2", "mobilenet_v2",
                              "efficientnetv2_b0", "resnet50")),
    "weights": Spec(str, "backbone weights: imagenet (Keras' download), none (from scratch) or a "
                         "path to a no-top .weights.h5 file", check=lambda s: s.strip() != "",
                    allowed="imagenet, none or a file path"),
    "unfreeze_from": Spec(str, "first trainable layer of the backbone (name or index), all, none, or "
                               "default (the write-up's policy for the backbone)",
                          check=lambda s: s.strip() != "", allowed="default, all, none, a layer name or index"),
    "train_bn_in_frozen": Spec(str, "keep BatchNormalization trainable below unfreeze_from "
                                    "(default: the backbone's policy)", choices=("default", "true", "false")),
    "head_epochs": Spec(int, "epochs training only the new head (at 10x lr) on a frozen backbone before fine-tuning "
                             "(0 = none)", check=lambda x: x >= 0, allowed=">= 0"),
    "freeze_bn": Spec(bool, "freeze every BatchNormalization layer, above unfreeze_from too: they keep their "
                            "ImageNet statistics, scale and offset while the convolutions fine-tune"),
    "head_init": Spec(str, "the new head's start: random, or probe (a logistic regression fitted on the frozen "
                           "backbone's features of the fold's training images, then fine-tuned: LP-FT)",
                      choices=("random", "probe")),
    "mixup": Spec(float, "MixUp Beta(alpha, alpha) on training batches (0 = off)",
                  check=lambda x: 0 <= x <= 10, allowed="0 <= mixup <= 10"),
    "cutmix": Spec(float, "CutMix Beta(alpha, alpha) on training batches (0 = off); with mixup, each "
                          "batch uses one of the two at random", check=lambda x: 0 <= x <= 10,
                   allowed="0 <= cutmix <= 10"),
    "classifier": Spec(str, "classical and probe stages: logistic regression, RBF SVM or random forest "
                            "on the stage's features", choices=("logreg", "svm", "forest")),
    "C": Spec(float, "classical and probe stages: inverse regularisation strength (logreg, svm)",
              check=lambda x: 0 < x <= 1e6, allowed="0 < C <= 1e6"),
    "colour": Spec(bool, "probe stage: append 02b's colour and stain histograms to the backbone features"),
    "teacher": Spec(str, "pseudo-labelling: comma-separated finished stages to retrain with their own confident "
                         "test predictions; '' = the best trained stage"),
    "threshold": Spec(float, "pseudo-labelling: least top-class probability for a test image to be used",
                      check=lambda x: 0 < x <= 1, allowed="0 < threshold <= 1"),
    "per_class_cap": Spec(int, "pseudo-labelling: at most this many pseudo-labels per class and fold (0 = no cap)",
                          check=lambda x: x >= 0, allowed=">= 0"),
    "soft": Spec(bool, "pseudo-labelling: train on the teacher's probabilities instead of its top class"),
    "rounds": Spec(int, "pseudo-labelling: teacher -> student rounds (each student teaches the next)",
                   check=lambda x: 1 <= x <= 5, allowed="1..5"),
    "members": Spec(str, "ensemble: comma-separated stage folders to combine; '' = every finished model "
                         "stage that scored all training images"),
    "submit": Spec(str, "ensemble: the model whose test predictions become submission.csv: best (highest "
                        "out-of-fold accuracy), a combiner (mean, weights, stacking, weights+bias) or a stage",
                   check=lambda s: s.strip() != "", allowed="best, a combiner or a stage name"),
}

_TRAINING = ("data_dir", "classes", "run_id", "profile", "image_size", "resize", "on_bad_image",
             "limit", "batch_size", "epochs", "lr", "optimizer", "schedule", "folds", "seed",
             "dropout", "pooling", "augment", "class_weight", "label_smoothing", "monitor", "patience", "tta", "gradcam")
_FINETUNE = _TRAINING + ("backbone", "weights", "unfreeze_from", "train_bn_in_frozen", "head_epochs",
                         "head_init", "freeze_bn", "mixup", "cutmix")

STAGE_PARAMS = {
    "01_eda_colour": ("data_dir", "classes", "run_id", "profile", "image_size", "resize", "on_bad_image",
                      "folds", "seed"),
    "02_baseline_cnn": _TRAINING,
    "02b_classical": ("data_dir", "classes", "run_id", "profile", "image_size", "resize", "on_bad_image",
                      "limit", "folds", "seed", "class_weight", "tta", "classifier", "C"),
    "02c_frozen_probe": ("data_dir", "classes", "run_id", "profile", "image_size", "resize", "on_bad_image",
                         "limit", "folds", "seed", "batch_size", "backbone", "weights", "pooling", "colour",
                         "class_weight", "tta", "classifier", "C"),
    "03_xception": _FINETUNE,
    "04_vgg16": _FINETUNE,
    "05_inception_resnet_v2": _FINETUNE,
    "06_pseudo_labelling": ("data_dir", "classes", "run_id", "profile", "on_bad_image", "seed", "teacher",
                            "threshold", "per_class_cap", "soft", "rounds"),
    "07_ensemble": ("data_dir", "classes", "run_id", "profile", "on_bad_image", "seed", "members", "submit"),
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
        # YAML and papermill read `-p x false` / `-p x 109` as bool / int; text parameters take them as written
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
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
