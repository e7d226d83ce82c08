"""One fold's training, in phases: prepare, head initialisation (LP-FT), head warm-up,
fine-tuning, predict, save the kept model's inference graph. A finished fold with the same
parameters is loaded instead."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import pandas as pd
from sklearn.utils.class_weight import compute_class_weight

from ..folds import FoldResult
from ..model import backbones, batching
from ..model.inference import inference_model
from ..model.tta import predict_proba
from ..shallow import probe
from ..runfolder import layout
from .callbacks import BestEpoch, WeightAverage
from .device import compile_cache
from .progress import EpochProgress
from .resume import load_finished, save, signature
from .trainers import Trainers, compile_phase


HEAD_INITS = ("random", "probe")  # the new head's start: random, or a linear probe (LP-FT)


@dataclass
class FoldTraining:
    """What a fold's training phases share."""
    model: keras.Model          # the classifier: validated, saved, used for predictions
    best: BestEpoch             # scores each epoch, keeps the best weights
    fit: dict                   # keyword arguments of every phase's ``fit``
    steps: int                  # per epoch: sizes the learning-rate schedule
    seed: int                   # the fold's seed (MixUp/CutMix draws)
    n_train: int                # training images, pseudo-labelled ones included
    mixed: bool                 # MixUp/CutMix on
    has_base: bool              # a backbone model (head phases apply), not the baseline CNN


def fit_fold(build: Callable[[], keras.Model], x, y, train_idx, val_idx, x_test, params: dict, fold: int,
             fold_dir: Path, steps: int | None = None, extra=None, trainers: Trainers | None = None,
             soft=None) -> FoldResult:
    """Train one fold and return its FoldResult; if ``fold_dir`` holds a finished fold with the
    same parameters, load it instead. ``steps`` (per epoch) sizes the learning-rate schedule;
    default: this fold's. ``extra``: ``(images, target probabilities)`` trained on beside the
    fold's split (pseudo-labels). ``trainers``: shared by the folds of one cross-validation.
    ``soft``: (N, classes) teacher probabilities of every image, ``distill_weight`` of each
    training target (knowledge distillation)."""
    sig = signature(params)
    finished = load_finished(Path(fold_dir), sig)
    if finished is not None:
        return finished
    keras.utils.set_random_seed(params["seed"] * 100 + fold)
    compiled_before = compile_cache.stats()
    trainers = trainers if trainers is not None else Trainers()
    f = prepare(build, x, y, train_idx, val_idx, params, fold, steps, extra, trainers, soft)
    epochs = params["epochs"] + (params.get("head_epochs", 0) if f.has_base else 0)
    f.fit["callbacks"].append(EpochProgress(Path(fold_dir) / layout.PROGRESS, fold, params.get("folds", 1),
                                            epochs, f.n_train))
    t0 = time.time()
    init_head(f, x[train_idx], y[train_idx], params, fold, trainers)
    swa = WeightAverage(f.model, max(0, params["epochs"] - params["swa_epochs"])) if params.get("swa_epochs") else None
    histories = [warm_up_head(f, params, trainers), fine_tune(f, params, trainers, swa)]
    seconds = time.time() - t0
    best_epoch = _keep(f, swa, fold)
    history = _history(histories, fold)
    # the trained model predicts (its predict step is compiled once for all folds); the saved
    # inference graph computes the same to float rounding, so `cellclf predict` reproduces these
    val, val_plain, test = predict(f.model, x[val_idx], x_test, params)
    kept = inference_model(f.model)
    record = {"fold": fold, "signature": sig, "best_epoch": int(best_epoch), "epochs": len(history),
              "seconds": round(seconds, 2), "images_per_s": round(f.n_train * len(history) / seconds, 1),
              **_compiles_since(compiled_before), "batch_size": params["batch_size"], "resumed": False}
    return save(fold_dir, kept, val_idx, FoldResult(val, val_plain, test, record, history))


def _class_weight(y_train: np.ndarray, params: dict) -> dict | None:
    if params.get("class_weight") != "balanced":
        return None
    present = np.unique(y_train)
    return dict(zip(present.tolist(), compute_class_weight("balanced", classes=present, y=y_train)))


def prepare(build, x, y, train_idx, val_idx, params: dict, fold: int, steps: int | None, extra,
            trainers: Trainers, soft=None) -> FoldTraining:
    """Build the fold's model, put its training images (pseudo-labelled ones after them) on the
    device and return what its phases share."""
    model = build()
    _reseed(model, params["seed"] * 100 + fold)
    trainers.bind(model)
    n_classes, bs = model.output_shape[-1], params["batch_size"]
    mixed = bool(params.get("mixup", 0) or params.get("cutmix", 0))
    # one-hot targets so label smoothing applies; the loss is the same cross-entropy otherwise
    targets, x_train = keras.utils.to_categorical(y[train_idx], n_classes), x[train_idx]
    if soft is not None:  # distillation: part of each target is the teacher's out-of-fold belief
        w = params["distill_weight"]
        targets = (1 - w) * targets + w * np.asarray(soft[train_idx], targets.dtype)
    n_extra = len(extra[0]) if extra is not None else 0
    if n_extra:
        x_train = np.concatenate([x_train, extra[0]])
        targets = np.concatenate([targets, np.asarray(extra[1], targets.dtype)])
    print(f"fold {fold}: {len(train_idx)} train / {len(val_idx)} validation images"
          + (f" + {n_extra} pseudo-labelled" if n_extra else ""))
    steps = steps or batching.steps(len(x_train), bs)
    # full batches only, so one compiled train step serves every batch
    rows = batching.fill_rows(len(x_train), bs, params["seed"] * 100 + fold)
    # the training images go to the device once; each step sends only their row indices
    trainers.images(x_train, max(steps * bs, len(x_train)))
    class_weight = _class_weight(y[train_idx], params)
    if not mixed:
        fit = dict(x=rows, y=targets[rows], class_weight=class_weight)
    else:
        # the labels (and class weights, as per-image weights a mixed image shares by its
        # label mix) go in as a second input, mixed on the device with the images
        w = np.array([(class_weight or {}).get(c, 1.0) for c in range(n_classes)], "float32")
        labels = np.concatenate([targets, (targets @ w)[:, None]], axis=1).astype("float32")
        fit = dict(x={"index": rows, "labels": labels[rows]}, y=targets[rows])
    best = BestEpoch(x[val_idx], y[val_idx], params["monitor"], bs, scored=model)
    fit |= dict(batch_size=bs, shuffle=True, callbacks=[best], verbose=2)
    has_base = any(layer.name == "base" for layer in model.layers)
    return FoldTraining(model, best, fit, steps, params["seed"] * 100 + fold, len(x_train), mixed, has_base)


def _reseed(model: keras.Model, seed: int) -> None:
    """Restart the random draws of the model's layers (augmentation, dropout) from ``seed``, so
    a fold draws the same whether it follows other folds on one model or runs alone (a fold job)."""
    states = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    for i, state in enumerate(states):
        # a first element of its own per generator: the second one only counts draws
        state.assign(keras.ops.convert_to_tensor([(seed * 1009 + i) % 2**31, 0], dtype=state.dtype))


def init_head(f: FoldTraining, x_train, y_train, params: dict, fold: int, trainers: Trainers) -> None:
    """LP-FT (``head_init probe``): start from the linear probe's head instead of a random one."""
    if params.get("head_init") != "probe" or not f.has_base:
        return
    acc = probe.fit_head(f.model, trainers.pooled(), x_train, y_train, f.model.output_shape[-1],
                         batch_size=params["batch_size"])
    print(f"fold {fold}: head set to a linear probe on the frozen features (training accuracy {acc:.1%})")


def warm_up_head(f: FoldTraining, params: dict, trainers: Trainers) -> pd.DataFrame:
    """Train only the new head, ``head_epochs`` at 10x lr on a frozen base, so its random gradients
    do not wreck the pretrained features when the base is unfrozen; return its history."""
    head_epochs = params.get("head_epochs", 0)
    if not head_epochs or not f.has_base:
        return pd.DataFrame()
    base = f.model.get_layer("base")
    restore = backbones.remember_trainable(base)
    base.trainable = False
    phase = trainers.phase("head", params.get("mixup", 0), params.get("cutmix", 0), f.seed)
    # a fresh head needs a larger step than the pretrained base: 10x lr, constant; its weights
    # are not averaged (two epochs from a random start)
    compile_phase(phase, {**params, "lr": min(10 * params["lr"], 1.0), "ema": 0.0}, "constant", head_epochs,
                  f.steps, f.mixed, f.model)
    f.best.ema = False
    history = pd.DataFrame(phase.trainer.fit(epochs=head_epochs, **f.fit).history).assign(phase="head")
    restore()  # the fine-tuning freeze policy
    return history


def fine_tune(f: FoldTraining, params: dict, trainers: Trainers, swa: WeightAverage | None = None) -> pd.DataFrame:
    """Train with the stage's freeze policy and schedule (``backbone_lr``: lower rates down the
    backbone; ``ema``: epochs scored with the weights' moving average), stopping early after
    ``patience`` epochs without a better score, ``swa`` averaging the last epochs; return its history."""
    phase = trainers.phase("train", params.get("mixup", 0), params.get("cutmix", 0), f.seed)
    compile_phase(phase, params, params["schedule"], params["epochs"], f.steps, f.mixed, f.model)
    f.best.patience = params.get("patience", 0)  # the head warm-up is short and fixed: never stopped
    f.best.ema = bool(params.get("ema", 0.0))
    fit = {**f.fit, "callbacks": [*f.fit["callbacks"], *([swa] if swa is not None else [])]}
    return pd.DataFrame(phase.trainer.fit(epochs=params["epochs"], **fit).history).assign(phase="train")


def _keep(f: FoldTraining, swa: WeightAverage | None, fold: int) -> int:
    """Put the kept weights in the model and return the epoch recorded as kept: with ``swa``, the
    average of the last epochs (the last epoch's number), else the best epoch by the monitor."""
    averaged = swa.apply() if swa is not None else 0
    if not averaged:
        return f.best.restore()
    print(f"fold {fold}: kept the mean of its last {averaged} epoch{'s' if averaged > 1 else ''}' weights (SWA)")
    return f.best.seen - 1


def predict(model: keras.Model, x_val, x_test, params: dict):
    """Return the kept model's (validation, validation without TTA, test or None) probabilities."""
    bs, tta = params["batch_size"], params.get("tta", False)
    val = predict_proba(model, x_val, bs, tta)
    # with TTA also keep the plain prediction, so the report can show what TTA changed
    val_plain = predict_proba(model, x_val, bs, False) if tta else val
    test = predict_proba(model, x_test, bs, tta) if x_test is not None and len(x_test) else None
    return val, val_plain, test


def _history(histories: list[pd.DataFrame], fold: int) -> pd.DataFrame:
    """Return the phases' histories as one table, epochs numbered across phases."""
    # the fine-tuning phase's table is there even when it logged no epoch (a fit stopped at once)
    history = pd.concat([h for h in histories if len(h)] or histories[-1:], ignore_index=True)
    history.insert(0, "epoch", np.arange(len(history)))
    history.insert(0, "fold", fold)
    return history


def _compiles_since(before: dict) -> dict:
    """Return the XLA compiles of this fold (JAX backend only; 0 elsewhere), their seconds, and the
    programs loaded from the persistent cache instead of compiled."""
    now = compile_cache.stats()
    return {"compiles": now["compiles"] - before["compiles"],
            "compile_s": round(now["compile_s"] - before["compile_s"], 1),
            "cache_loads": now["cache_hits"] - before["cache_hits"]}
