"""The parameters shared by every notebook, defined once: names, types, allowed values (taken
from the registries that implement them), defaults, and which stage takes which.

Notebooks declare their parameters in a cell tagged ``parameters`` (papermill injects
overrides after it); a test holds each cell to ``defaults(stage)``. ``validate`` (in
``config.validate``) checks values, in the notebook's first cell and in `cellclf run` before
any kernel starts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..data.classes import PRESETS as CLASS_PRESETS
from ..data.dataset import ON_BAD_IMAGE
from ..data.images import RESIZE_POLICIES
from ..model.augment import PRESETS as AUGMENT_PRESETS
from ..model.backbones import REGISTRY as BACKBONES
from ..model.cnn import POOLING
from ..predict.ensemble import COMBINERS
from ..runfolder.prune import KEEP_MODELS
from ..shallow.classifiers import CLASS_WEIGHTS, CLASSIFIERS
from ..shallow.probe import PROBE_C
from ..train.callbacks import MONITORS
from ..train.fold import HEAD_INITS
from ..train.schedules import OPTIMIZERS, SCHEDULES


class ParameterError(ValueError):
    """A parameter value outside what the stage accepts."""


@dataclass(frozen=True)
class Spec:
    kind: type
    default: Any
    help: str
    choices: tuple | None = None
    check: Callable[[Any], bool] | None = None
    allowed: str = ""  # words for `check`, used in the error message


def _pos(x):
    return x > 0


def _run_id_ok(s: str) -> bool:
    return s == "" or (s.replace("-", "").replace("_", "").replace(".", "").isalnum() and not s.startswith("."))


SPECS: dict[str, Spec] = {
    "data_dir": Spec(str, "", "dataset folder or CSV manifest; '' = the embedded synthetic set (data/synth)"),
    "classes": Spec(str, "", "class mapping: '' (one class per folder), a preset "
                             f"({', '.join(CLASS_PRESETS)}) or a YAML file"),
    "run_id": Spec(str, "", "run folder under runs/; '' = a new id from the date and time", check=_run_id_ok,
                   allowed="letters, digits, '-', '_', '.'"),
    "profile": Spec(str, "", "profile name recorded with the run (quick, full, smoke, or custom)"),
    "image_size": Spec(int, 128, "square input size in pixels", check=lambda x: 16 <= x <= 1024, allowed="16..1024"),
    "resize": Spec(str, "pad", "how non-square images become square", choices=RESIZE_POLICIES),
    "on_bad_image": Spec(str, "error", "unreadable image: stop naming it, or skip it and list it in the report",
                         choices=ON_BAD_IMAGE),
    "limit": Spec(int, 0, "use at most this many training images per class (0 = all), for quick runs",
                  check=lambda x: x >= 0, allowed=">= 0"),
    "batch_size": Spec(int, 32, "images per training step; 0 = the largest (up to 64) that fits the "
                                "accelerator's memory, 32 on a CPU", check=lambda x: x >= 0, allowed=">= 0 (0: auto)"),
    "epochs": Spec(int, 15, "passes over each fold's training split", check=_pos, allowed="> 0"),
    "lr": Spec(float, 1e-3, "initial learning rate", check=lambda x: 0 < x < 10, allowed="0 < lr < 10"),
    "optimizer": Spec(str, "sgd", "optimiser (sgd with momentum 0.9; adamw with weight decay 1e-4)",
                      choices=OPTIMIZERS),
    "schedule": Spec(str, "step", "learning-rate schedule per step: step = the write-up's decay scaled to epochs; "
                                  "cosine with a 5% warm-up; onecycle", choices=SCHEDULES),
    "label_smoothing": Spec(float, 0.0, "label smoothing of the cross-entropy targets",
                            check=lambda x: 0 <= x < 0.5, allowed="0 <= label_smoothing < 0.5"),
    "folds": Spec(int, 3, "number of cross-validation folds", check=lambda x: 2 <= x <= 20, allowed="2..20"),
    "seed": Spec(int, 0, "random seed for folds, initialisation and augmentation", check=lambda x: x >= 0,
                 allowed=">= 0"),
    "dropout": Spec(float, 0.7, "dropout rate before the classifier", check=lambda x: 0 <= x < 1,
                    allowed="0 <= dropout < 1"),
    "pooling": Spec(str, "gap", "global pooling before the classifier", choices=tuple(POOLING)),
    "augment": Spec(str, "seed", "training-time augmentation preset (model.augment.describe)",
                    choices=AUGMENT_PRESETS),
    "class_weight": Spec(str, "none", "loss weights per class ('balanced' = inverse frequency)", choices=CLASS_WEIGHTS),
    "monitor": Spec(str, "val_auc", "which epoch to keep per fold: best validation AUC, best validation loss, "
                                    "or the last", choices=MONITORS),
    "patience": Spec(int, 0, "stop a fold's training after this many epochs without a better monitor score; "
                             "the best epoch's weights are kept (0 = train every epoch)",
                     check=lambda x: x >= 0, allowed=">= 0"),
    "tta": Spec(bool, True, "average predictions over the 8 flips/rotations"),
    "gradcam": Spec(int, 4, "Grad-CAM montage: this many most confident right and wrong out-of-fold images per "
                            "class (0 = none)", check=lambda x: 0 <= x <= 20, allowed="0..20"),
    "keep_models": Spec(str, "all", "fold models kept once the stage finishes: all (predict and export average them), "
                                    "best (only the fold with the highest out-of-fold accuracy: about 1/folds of "
                                    "the disk) or none (scores only: predict and export refuse the stage)",
                        choices=KEEP_MODELS),
    "backbone": Spec(str, "xception", "ImageNet backbone from keras.applications", choices=tuple(BACKBONES)),
    "weights": Spec(str, "imagenet", "backbone weights: imagenet (Keras' download), auto (imagenet when it can be "
                                     "had, else none; the choice is recorded), none (from scratch) or a path to a "
                                     "no-top .weights.h5 file", check=lambda s: s.strip() != "",
                    allowed="imagenet, auto, none or a file path"),
    "unfreeze_from": Spec(str, "default", "first trainable layer of the backbone (name or index), all, none, or "
                                          "default (the write-up's policy for the backbone)",
                          check=lambda s: s.strip() != "", allowed="default, all, none, a layer name or index"),
    "train_bn_in_frozen": Spec(str, "default", "keep BatchNormalization trainable below unfreeze_from "
                                               "(default: the backbone's policy)", choices=("default", "true", "false")),
    "head_epochs": Spec(int, 2, "epochs training only the new head (at 10x lr) on a frozen backbone before "
                                "fine-tuning (0 = none)", check=lambda x: x >= 0, allowed=">= 0"),
    "freeze_bn": Spec(bool, False, "freeze every BatchNormalization layer, above unfreeze_from too: they keep their "
                                   "ImageNet statistics, scale and offset while the convolutions fine-tune"),
    "head_init": Spec(str, "random", "the new head's start: random, or probe (a logistic regression fitted on the "
                                     "frozen backbone's features of the fold's training images, then fine-tuned: "
                                     "LP-FT)", choices=HEAD_INITS),
    "ema": Spec(float, 0.0, "fine-tuning: keep an exponential moving average of the weights with this momentum "
                            "(Keras' use_ema), and score and keep each epoch with the average (0 = off; e.g. 0.99)",
                check=lambda x: 0 <= x < 1, allowed="0 <= ema < 1"),
    "swa_epochs": Spec(int, 0, "fine-tuning: keep the mean of the weights of its last this many epochs (SWA) "
                               "instead of the best epoch (0 = off)", check=lambda x: x >= 0, allowed=">= 0"),
    "backbone_lr": Spec(float, 1.0, "fine-tuning: the learning rate of the backbone's first trainable layer as a "
                                    "fraction of lr, rising geometrically layer by layer to lr at its top; the head "
                                    "trains at lr (1 = one rate for all)", check=lambda x: 0 < x <= 1,
                        allowed="0 < backbone_lr <= 1"),
    "distill": Spec(str, "", "fine-tuning: comma-separated stages whose out-of-fold probabilities, averaged, make "
                             "distill_weight of each training target (knowledge distillation): folders of this run, "
                             "or other runs' stages on the same folds as runs/<run_id>/<stage>; '' = off"),
    "distill_weight": Spec(float, 0.5, "fine-tuning with distill: the teachers' share of each training target, the "
                                       "rest the true label", check=lambda x: 0 < x <= 1,
                           allowed="0 < distill_weight <= 1"),
    "mixup": Spec(float, 0.0, "MixUp Beta(alpha, alpha) on training batches (0 = off)",
                  check=lambda x: 0 <= x <= 10, allowed="0 <= mixup <= 10"),
    "cutmix": Spec(float, 0.0, "CutMix Beta(alpha, alpha) on training batches (0 = off); with mixup, each "
                               "batch uses one of the two at random", check=lambda x: 0 <= x <= 10,
                   allowed="0 <= cutmix <= 10"),
    "classifier": Spec(str, "logreg", "classical and probe stages: logistic regression, RBF SVM or random forest "
                                      "on the stage's features", choices=CLASSIFIERS),
    "C": Spec(float, 1.0, "classical and probe stages: inverse regularisation strength (logreg, svm)",
              check=lambda x: 0 < x <= 1e6, allowed="0 < C <= 1e6"),
    "colour": Spec(bool, True, "probe stage: append 02b's colour and stain histograms to the backbone features"),
    "teacher": Spec(str, "", "pseudo-labelling: comma-separated finished stages to retrain with their own "
                             "confident test predictions; '' = the best trained stage"),
    "threshold": Spec(float, 0.9, "pseudo-labelling: least top-class probability for a test image to be used",
                      check=lambda x: 0 < x <= 1, allowed="0 < threshold <= 1"),
    "per_class_cap": Spec(int, 0, "pseudo-labelling: at most this many pseudo-labels per class and fold "
                                  "(0 = no cap)", check=lambda x: x >= 0, allowed=">= 0"),
    "soft": Spec(bool, False, "pseudo-labelling: train on the teacher's probabilities instead of its top class"),
    "rounds": Spec(int, 1, "pseudo-labelling: teacher -> student rounds (each student teaches the next)",
                   check=lambda x: 1 <= x <= 5, allowed="1..5"),
    "student_augment": Spec(str, "", "pseudo-labelling: the students' augmentation preset (Noisy Student: stronger "
                                     "than the teacher's); '' = the teacher's",
                            check=lambda s: s in ("", *AUGMENT_PRESETS), allowed=f"'', {', '.join(AUGMENT_PRESETS)}"),
    "student_dropout": Spec(float, -1.0, "pseudo-labelling: the students' dropout rate before the classifier; "
                                         "-1 = the teacher's", check=lambda x: x == -1 or 0 <= x < 1,
                            allowed="-1 or 0 <= student_dropout < 1"),
    "members": Spec(str, "", "ensemble: comma-separated stages to combine: folders of this run, or other runs' "
                             "stages on the same folds as runs/<run_id>/<stage>; '' = every finished model "
                             "stage of this run that scored all training images"),
    "submit": Spec(str, "best", "ensemble: the model whose test predictions become submission.csv: best (highest "
                                f"out-of-fold accuracy), a combiner ({', '.join(COMBINERS)}) or a stage",
                   check=lambda s: s.strip() != "", allowed="best, a combiner or a stage name"),
}

_DATA = ("data_dir", "classes", "run_id", "profile", "on_bad_image")
_FOLDS = ("resize", "folds", "seed")
_TRAINING = (*_DATA, *_FOLDS, "limit", "image_size", "batch_size", "epochs", "lr", "optimizer", "schedule",
             "pooling", "dropout", "augment", "class_weight", "label_smoothing", "monitor", "patience", "tta", "gradcam",
             "keep_models")
_FINETUNE = (*_DATA, *_FOLDS, "limit", "backbone", "weights", "unfreeze_from", "train_bn_in_frozen", "head_epochs",
             "head_init", "freeze_bn", "image_size", "batch_size", "epochs", "lr", "backbone_lr", "optimizer",
             "schedule", "ema", "swa_epochs", "pooling", "dropout", "augment", "mixup", "cutmix", "class_weight",
             "label_smoothing", "distill", "distill_weight", "monitor", "patience", "tta", "gradcam", "keep_models")

# every stage: its parameters in the order of its notebook's cell, and where its defaults differ from SPECS'
STAGES: dict[str, tuple[tuple[str, ...], dict]] = {
    "01_eda_colour": ((*_DATA, *_FOLDS, "image_size"), {"image_size": 96}),
    "02_baseline_cnn": (_TRAINING, {"image_size": 64, "epochs": 10, "optimizer": "adam", "schedule": "constant",
                                    "dropout": 0.5, "augment": "basic", "tta": False}),
    "02b_classical": ((*_DATA, *_FOLDS, "limit", "image_size", "classifier", "C", "class_weight", "tta", "keep_models"),
                      {"image_size": 64, "tta": False}),
    "02c_frozen_probe": ((*_DATA, *_FOLDS, "limit", "image_size", "batch_size", "backbone", "weights", "pooling",
                          "colour", "classifier", "C", "class_weight", "tta", "keep_models"),
                         {"image_size": 224, "backbone": "mobilenet_v2", "C": PROBE_C}),
    "03_xception": (_FINETUNE, {"backbone": "xception"}),
    "04_vgg16": (_FINETUNE, {"backbone": "vgg16"}),
    "05_inception_resnet_v2": (_FINETUNE, {"backbone": "inception_resnet_v2"}),
    "06_pseudo_labelling": ((*_DATA, "seed", "teacher", "threshold", "per_class_cap", "soft", "rounds",
                             "student_augment", "student_dropout"), {}),
    "07_ensemble": ((*_DATA, "seed", "members", "submit"), {}),
}


def stage_name(text: str) -> str:
    """Return the stage named by ``text``: its full name, its number ('03', '3', '02b') or the name
    after the number ('xception'); ParameterError listing the stages otherwise."""
    t = str(text).strip()
    for stage in STAGES:
        number, _, rest = stage.partition("_")
        if t in (stage, number, rest) or (t.isdigit() and t.zfill(2) == number):
            return stage
    raise ParameterError(f"unknown stage {text!r}; stages: {', '.join(STAGES)} (or their numbers: "
                         f"{', '.join(s.partition('_')[0] for s in STAGES)})")


def stage_parameters(stage: str) -> tuple[str, ...]:
    """Return the parameter names of ``stage`` in its notebook's order."""
    return STAGES[stage_name(stage)][0]


def defaults(stage: str) -> dict:
    """Return the default value of each of ``stage``'s parameters (what its notebook's cell holds)."""
    names, own = STAGES[stage_name(stage)]
    return {name: own.get(name, SPECS[name].default) for name in names}


def allowed(name: str) -> str:
    """Return the allowed values of parameter ``name`` in words."""
    s = SPECS[name]
    return ", ".join(map(str, s.choices)) if s.choices else (s.allowed or s.kind.__name__)


def describe(stage: str) -> str:
    """Return a one-line-per-parameter help text for the stage: name, default, allowed values, meaning."""
    lines = [f"{'parameter':18s} {'default':14s} {'allowed':30s} meaning"]
    for name, default in defaults(stage).items():
        lines.append(f"{name:18s} {repr(default):14s} {allowed(name):30s} {SPECS[name].help}")
    return "\n".join(lines)


def reference() -> str:
    """Return docs/reference/parameters.md: every parameter with its type, allowed values,
    meaning, and the stages that take it with their defaults (``cellclf params --reference``)."""
    lines = ["# Parameters", "",
             "Generated from `cellclf_utils/config/params.py` by `cellclf params --reference` (a test keeps it",
             "current). Every notebook's cell tagged `parameters` holds these defaults; `cellclf run` and each",
             "notebook's first cell check the values. `cellclf params <stage>` lists one stage's.", "",
             "| parameter | type | allowed | stages (default) | meaning |", "|---|---|---|---|---|"]
    for name, spec in SPECS.items():
        taking = [(stage, defaults(stage)[name]) for stage, (names, _) in STAGES.items() if name in names]
        by_default: dict = {}
        for stage, default in taking:
            by_default.setdefault(repr(default), []).append(stage.partition("_")[0])
        where = "; ".join(f"{', '.join(st)} (`{d}`)" for d, st in by_default.items())
        allowed_text = allowed(name).replace("|", "\\|")
        lines.append(f"| `{name}` | {spec.kind.__name__} | {allowed_text} | {where} | {spec.help} |")
    return "\n".join(lines) + "\n"
