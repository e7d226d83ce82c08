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

from ..model import backbones, mixing, tta as predict
from .device import compile_cache, memory, resident
from .. import metrics
from ..shallow import probe
from ..run import stage as runs
from ..config.params import ParameterError
from .schedules import Schedule, make_optimizer

# values that do not change what a fold computes, so they may differ on resume
_NOT_IN_SIGNATURE = ("run_id", "profile", "data_dir", "gradcam")
# parameters added after runs existed: at their default they are left out of the signature,
# so folds finished before the parameter existed still resume
_ADDED_LATER = {"head_init": "random", "freeze_bn": False, "patience": 0}


class ResumeMismatchError(RuntimeError):
    """A fold folder holds results computed with other parameters."""


class BestEpoch(keras.callbacks.Callback):
    """Scores the validation split each epoch (val_loss, val_accuracy, val_auc = macro
    one-vs-rest AUC via scikit-learn) and keeps the weights of the best epoch by ``monitor``
    ('last' keeps the final epoch). Epochs are counted across fits (training phases);
    ``restore()`` puts the best weights back. ``scored``: the classifier to score and keep
    when the fitted model is a training wrapper around it (MixUp/CutMix). ``patience`` (set
    per phase; 0 = off) stops the fit after that many epochs without a better score."""

    def __init__(self, x_val, y_val, monitor: str, batch_size: int, scored: keras.Model | None = None):
        super().__init__()
        self.x_val, self.y_val, self.monitor, self.batch_size = x_val, y_val, monitor, batch_size
        self.scored = scored
        self.best, self.best_epoch, self.best_weights, self.seen = None, -1, None, 0
        self.patience = 0

    @property
    def classifier(self) -> keras.Model:
        return self.scored if self.scored is not None else self.model

    def on_epoch_end(self, epoch, logs=None):
        epoch, self.seen = self.seen, self.seen + 1
        logs = logs if logs is not None else {}
        p = predict.predict_proba(self.classifier, self.x_val, self.batch_size).astype(np.float64)
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
            self.best_weights = _snapshot(self.classifier)
        if self.patience and epoch - self.best_epoch >= self.patience:
            self.model.stop_training = True  # Keras ends the fit after this epoch

    def restore(self) -> int:
        """Set the best epoch's weights; return that epoch (0-based, across phases)."""
        if self.best_weights is None:
            return self.seen - 1
        for v, w in zip(self.classifier.weights, self.best_weights):
            v.assign(w)
        return self.best_epoch


def _snapshot(model: keras.Model) -> list:
    """Return copies of ``model``'s weights made where they live (on the accelerator): keeping the
    best epoch costs no trip to the host, where ``get_weights`` would send every variable (about
    900 for InceptionResNetV2, 220 MB) to numpy one by one each time the score improves."""
    return [keras.ops.copy(v.value) for v in model.weights]


def _set_base_frozen(model: keras.Model):
    """Freeze the model's ``base`` layer for a head warm-up; return a function that puts
    back the per-layer trainable flags (the fine-tuning freeze policy)."""
    base = model.get_layer("base")
    restore = backbones.remember_trainable(base)
    base.trainable = False
    return restore


def _compile(model, params: dict, kind: str, epochs: int, steps: int, mixed: bool = False) -> None:
    """Compile ``model`` for one training phase (``mixed``: a ``mixing.training_model``
    wrapper). When the model was last compiled with the same settings (the next fold of a
    single-phase stage), reset the optimizer's state instead: recompiling would trace the
    train step again, which costs 10-70 s for a big backbone."""
    key = (params["optimizer"], params["lr"], params.get("label_smoothing", 0.0), kind, epochs, steps,
           tuple(v.path for v in model.trainable_variables))
    if getattr(model, "_cellclf_compile_key", None) == key and getattr(model, "optimizer", None) is not None:
        for v in model.optimizer.variables:  # iterations (drives the schedule), moments, momenta
            if "learning_rate" not in v.path:
                v.assign(keras.ops.zeros(v.shape, v.dtype))
        return
    smoothing = params.get("label_smoothing", 0.0)
    if mixed:
        n_classes = (model.output_shape[-1] - 1) // 2
        loss, acc = mixing.mixed_crossentropy(n_classes, smoothing), mixing.mixed_accuracy(n_classes)
    else:
        loss, acc = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing), "accuracy"
    model.compile(optimizer=make_optimizer(params["optimizer"], Schedule(kind, params["lr"], epochs, steps)),
                  loss=loss, metrics=[acc])
    model._cellclf_compile_key = key


def _trainer(model: keras.Model, phase: str, mixup: float, cutmix: float, seed: int,
             store: resident.ImageStore, cache: dict) -> keras.Model:
    """Return the model to fit in training ``phase`` ('head' or 'train'): ``model`` itself, a
    second functional model over the same layers for the head warm-up, or a MixUp/CutMix
    training wrapper (its draws restarted at ``seed``), each taking its images from ``store``
    by index (``resident.training_model``). Each shares ``model``'s weights and keeps its own
    compiled train step: with one ``cache`` per cross-validation every fold reuses them, so a
    two-phase stage compiles twice per backbone, not twice per fold."""
    key = (id(model), id(store), phase, mixup, cutmix)
    if key not in cache:
        if mixup or cutmix:
            inner = mixing.training_model(model, mixup, cutmix, seed)
        elif phase == "head":
            inner = keras.Model(model.inputs, model.outputs, name=f"{model.name}_head_warmup")
        else:
            inner = model
        cache[key] = inner, resident.training_model(inner, store)
    inner, trainer = cache[key]
    if mixup or cutmix:
        inner.get_layer("mix_batch").reseed(seed)
    return trainer


def _store(images: np.ndarray, capacity: int, cache: dict) -> resident.ImageStore:
    """Return the cross-validation's ``ImageStore`` for images like ``images``, holding at
    least ``capacity`` of them (one per cross-validation; a larger one only if a fold needs it)."""
    key = ("store", images.shape[1:], images.dtype.name)
    if key not in cache or cache[key].capacity < capacity:
        cache[key] = resident.ImageStore(capacity, images.shape[1:], images.dtype.name, name="training_images")
    return cache[key]


@dataclass
class CVResult:
    oof: np.ndarray                # (N, C) out-of-fold probabilities, rows in input order
    test: np.ndarray | None        # (M, C) mean over folds
    history: pd.DataFrame          # fold, epoch, loss, accuracy, val_loss, val_accuracy, val_auc, learning_rate, phase
    folds: pd.DataFrame            # per fold: best_epoch, seconds, images_per_s, resumed
    oof_plain: np.ndarray          # out-of-fold probabilities without TTA (== oof when tta is off)


def signature(params: dict) -> str:
    """Return a short hash of the parameters that determine a fold's result."""
    keep = {k: v for k, v in sorted(params.items())
            if k not in _NOT_IN_SIGNATURE and not (k in _ADDED_LATER and v == _ADDED_LATER[k])}
    return hashlib.sha1(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def fit_fold(build: Callable[[], keras.Model], x, y, train_idx, val_idx, x_test, params: dict,
             fold: int, fold_dir: Path, steps: int | None = None, extra=None, trainers: dict | None = None) -> dict:
    """Train one fold and return its record (val/test probabilities, history, timing);
    if ``fold_dir`` holds a finished fold with the same parameters, load it instead.
    ``steps`` (per epoch) sizes the learning-rate schedule; default: this fold's. ``extra``:
    ``(images, target probabilities)`` trained on beside the fold's split (pseudo-labels).
    ``trainers``: a dict the folds of one cross-validation share, keeping the models each
    training phase fits (and their compiled steps) for reuse."""
    fold_dir = Path(fold_dir)
    _check_patience(params)
    sig = signature(params)
    done = fold_dir / "done.json"
    if done.exists():
        info = json.loads(done.read_text())
        if info["signature"] != sig:
            raise ResumeMismatchError(
                f"{fold_dir} was trained with other parameters (signature {info['signature']} vs {sig}); "
                "finished work is not overwritten: use a new run_id")
        saved = np.load(fold_dir / "preds.npz")
        return {**info, "val_proba": saved["val"], "val_plain": saved["val_plain"],
                "test_proba": saved["test"] if "test" in saved else None,
                "history": pd.read_csv(fold_dir / "history.csv"), "resumed": True}

    keras.utils.set_random_seed(params["seed"] * 100 + fold)
    compiled_before = compile_cache.stats()
    model = build()
    n_classes = model.output_shape[-1]
    mixup, cutmix = params.get("mixup", 0), params.get("cutmix", 0)
    mixed = bool(mixup or cutmix)
    best = BestEpoch(x[val_idx], y[val_idx], params["monitor"], params["batch_size"], scored=model)
    class_weight = None
    if params.get("class_weight") == "balanced":
        present = np.unique(y[train_idx])
        class_weight = dict(zip(present.tolist(), compute_class_weight("balanced", classes=present,
                                                                       y=y[train_idx])))
    # one-hot targets so label smoothing applies; the loss is the same cross-entropy otherwise
    targets = keras.utils.to_categorical(y[train_idx], n_classes)
    x_train = x[train_idx]
    if extra is not None and len(extra[0]):
        x_train = np.concatenate([x_train, extra[0]])
        targets = np.concatenate([targets, np.asarray(extra[1], targets.dtype)])
    print(f"fold {fold}: {len(train_idx)} train / {len(val_idx)} validation images"
          + (f" + {len(extra[0])} pseudo-labelled" if extra is not None and len(extra[0]) else ""))
    steps = steps or -(-len(x_train) // params["batch_size"])
    # full batches only (a few random images twice per epoch), so one compiled train step
    # serves every batch: a short last batch would be traced and compiled again
    n_fill = -len(x_train) % params["batch_size"]
    fill = np.random.default_rng(params["seed"] * 100 + fold).choice(
        len(x_train), n_fill, replace=n_fill > len(x_train))
    rows = np.concatenate([np.arange(len(x_train)), fill]).astype("int32")
    trainers = {} if trainers is None else trainers
    # the training images go to the device once; each step sends only their row indices
    store = _store(x_train, max(steps * params["batch_size"], len(x_train)), trainers)
    store.load(x_train)
    if not mixed:
        fit = dict(x=rows, y=targets[rows], class_weight=class_weight)
    else:
        # the labels (and class weights, as per-image weights a mixed image shares by its
        # label mix) go in as a second input, mixed on the device with the images
        w = np.array([(class_weight or {}).get(c, 1.0) for c in range(n_classes)], "float32")
        rows_in = np.concatenate([targets, (targets @ w)[:, None]], axis=1).astype("float32")
        fit = dict(x={"index": rows, "labels": rows_in[rows]}, y=targets[rows])
    fit |= dict(batch_size=params["batch_size"], shuffle=True, callbacks=[best], verbose=2)
    histories = []
    t0 = time.time()
    has_base = any(layer.name == "base" for layer in model.layers)
    if params.get("head_init") == "probe" and has_base:
        # LP-FT: start from the linear probe's head instead of a random one (probe.fit_head)
        if (id(model), "pooled") not in trainers:
            trainers[(id(model), "pooled")] = probe.pooled_features(model)
        features = trainers[(id(model), "pooled")]
        acc = probe.fit_head(model, features, x[train_idx], y[train_idx], n_classes,
                             batch_size=params["batch_size"])
        print(f"fold {fold}: head set to a linear probe on the frozen features (training accuracy {acc:.1%})")
    head_epochs = params.get("head_epochs", 0)
    if head_epochs and has_base:
        # warm the new head up on a frozen base, so its random gradients do not wreck the
        # pretrained features when the base is unfrozen
        unfreeze = _set_base_frozen(model)
        trainer = _trainer(model, "head", mixup, cutmix, params["seed"] * 100 + fold, store, trainers)
        # a fresh head needs a larger step than the pretrained base: 10x lr, constant
        _compile(trainer, {**params, "lr": min(10 * params["lr"], 1.0)}, "constant", head_epochs, steps, mixed)
        histories.append(pd.DataFrame(trainer.fit(epochs=head_epochs, **fit).history)
                         .assign(phase="head"))
        unfreeze()
    trainer = _trainer(model, "train", mixup, cutmix, params["seed"] * 100 + fold, store, trainers)
    _compile(trainer, params, params["schedule"], params["epochs"], steps, mixed)
    # early stopping in the fine-tuning phase only: the head warm-up is short and fixed
    best.patience = params.get("patience", 0)
    histories.append(pd.DataFrame(trainer.fit(epochs=params["epochs"], **fit).history)
                     .assign(phase="train"))
    seconds = time.time() - t0
    best_epoch = best.restore()
    history = pd.concat(histories, ignore_index=True)
    history.insert(0, "epoch", np.arange(len(history)))
    history.insert(0, "fold", fold)
    tta = params.get("tta", False)
    val_proba = predict.predict_proba(model, x[val_idx], params["batch_size"], tta)
    # with TTA also keep the plain prediction, so the report can show what TTA changed
    val_plain = predict.predict_proba(model, x[val_idx], params["batch_size"], False) if tta else val_proba
    test_proba = (predict.predict_proba(model, x_test, params["batch_size"], tta)
                  if x_test is not None and len(x_test) else None)
    fold_dir.mkdir(parents=True, exist_ok=True)
    model.save_weights(fold_dir / "model.weights.h5")
    arrays = {"val_idx": np.asarray(val_idx), "val": val_proba, "val_plain": val_plain}
    if test_proba is not None:
        arrays["test"] = test_proba
    tmp = fold_dir / "preds.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(fold_dir / "preds.npz")
    runs.write_csv(fold_dir / "history.csv", history)
    compiled = compile_cache.stats()
    info = {"fold": fold, "signature": sig, "best_epoch": int(best_epoch), "epochs": len(history),
            "seconds": round(seconds, 2), "images_per_s": round(len(x_train) * len(history) / seconds, 1),
            # XLA compiles in this fold (JAX backend only; 0 elsewhere), their seconds, and the
            # programs loaded from the persistent cache instead of compiled
            "compiles": compiled["compiles"] - compiled_before["compiles"],
            "compile_s": round(compiled["compile_s"] - compiled_before["compile_s"], 1),
            "cache_loads": compiled["cache_hits"] - compiled_before["cache_hits"],
            "batch_size": params["batch_size"]}
    runs.write_json(done, info)  # last: the fold counts as finished only now
    return {**info, "val_proba": val_proba, "val_plain": val_plain, "test_proba": test_proba,
            "history": history, "resumed": False}


def _check_patience(params: dict):
    """Raise ParameterError when early stopping has no score to watch."""
    if params.get("patience", 0) and params["monitor"] == "last":
        raise ParameterError("parameter 'patience' stops training when the monitored score stops improving, "
                             "but monitor is 'last' (no score kept): set monitor val_auc or val_loss, or patience 0")


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


def cross_validate(build: Callable[[], keras.Model], x, y, fold_of, x_test, params: dict,
                   stage_dir: Path, extra_for_fold: Callable[[int], tuple] | None = None) -> CVResult:
    """Train one model per fold (``fold_of[i]`` is image i's validation fold) and return
    out-of-fold and fold-averaged test probabilities. ``extra_for_fold(fold)`` may add
    ``(images, target probabilities)`` to that fold's training split (pseudo-labels)."""
    fold_of = np.asarray(fold_of)
    compile_cache.enable()
    params = _with_batch_size(build, params)
    oof = oof_plain = None
    tests, hists, rows = [], [], []
    trainers: dict = {}  # the models each phase fits, with their compiled steps, shared by the folds
    # one schedule length for all folds (the largest training split), so folds can share a
    # compiled train step; a smaller fold ends its schedule at most a step early
    extras = {int(f): extra_for_fold(int(f)) if extra_for_fold else None for f in np.unique(fold_of)}
    steps = max(-(-(int((fold_of != f).sum()) + (len(extras[int(f)][0]) if extras[int(f)] else 0))
                    // params["batch_size"]) for f in np.unique(fold_of))
    for fold in sorted(np.unique(fold_of)):
        val_idx = np.flatnonzero(fold_of == fold)
        train_idx = np.flatnonzero(fold_of != fold)
        rec = fit_fold(build, x, y, train_idx, val_idx, x_test, params, int(fold), Path(stage_dir) / f"fold{fold}",
                       steps, extras[int(fold)], trainers)
        if oof is None:
            oof = np.full((len(y), rec["val_proba"].shape[1]), np.nan)
            oof_plain = oof.copy()
        oof[val_idx] = rec["val_proba"]
        oof_plain[val_idx] = rec["val_plain"]
        if rec["test_proba"] is not None:
            tests.append(rec["test_proba"])
        hists.append(rec["history"])
        rows.append({k: rec.get(k) for k in ("fold", "best_epoch", "epochs", "seconds", "images_per_s", "compiles",
                                             "compile_s", "cache_loads", "batch_size", "resumed")})
        print(f"fold {fold}: best epoch {rec['best_epoch'] + 1}, {rec['seconds']:.0f} s, "
              f"{rec['images_per_s']:.0f} img/s{' (resumed from disk)' if rec['resumed'] else ''}")
    policy = keras.mixed_precision.global_policy()
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)  # clear_session resets it to float32
    return CVResult(oof, np.mean(tests, axis=0) if tests else None, pd.concat(hists, ignore_index=True),
                    pd.DataFrame(rows), oof_plain)
