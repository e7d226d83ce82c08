"""The fixed cost per epoch of a stage's training loop, beyond its training steps.

On a GPU an epoch of a Herlev fold is short (~590 images: a third of a second for Xception @299
on an H100), and the full profile runs ~660 of them, so whatever each epoch costs besides its
steps (scoring the validation split, the best weights' copy, reading the learning rate,
logging) adds up. This times, for a model at a small input (so steps are cheap and the fixed
cost shows), the seconds per epoch of

  bare     model.fit on resident row indices, no callbacks, verbose 0
  stage    train.fit_fold as a stage runs it (train.BestEpoch scoring the validation split
           every epoch and copying the weights when they improve, verbose 2)
  predict  the validation split's forward pass alone (part of `stage`'s cost), as
           model.tta.predict_proba does it (one predict_on_batch per batch), and through one
           model.predict call (how it was done before 2026-11-28)
  weights  keeping the best epoch's weights once: every variable to numpy (get_weights, before
           2026-11-28) vs a copy where they live (train.callbacks.snapshot, now)

each as the difference between a long and a short run (compile and set-up cancel out).

usage: KERAS_BACKEND=tensorflow python benchmarks/epoch_overhead.py [--models baseline@64 xception@71]
       [--train 64] [--val 64] [--batch-size 32] [--epochs 3 13] [--copies-only]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np


def per_epoch(run, epochs: tuple[int, int]) -> float:
    """Return seconds per epoch: (time of ``run(long)`` - time of ``run(short)``) / difference."""
    times = []
    for e in epochs:
        t = time.perf_counter()
        run(e)
        times.append(time.perf_counter() - t)
    return (times[1] - times[0]) / (epochs[1] - epochs[0])


def _synchronised(arrays: list) -> list:
    """Return ``arrays`` once the backend has finished computing them."""
    import keras
    if keras.backend.backend() == "jax":
        import jax
        return jax.block_until_ready(arrays)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        tf.test.experimental.sync_devices()
    return arrays


def timed(f) -> float:
    """Return the mean seconds of 5 calls of ``f`` after one untimed call (compile, warm-up)."""
    f()
    t = time.perf_counter()
    for _ in range(5):
        f()
    return (time.perf_counter() - t) / 5


def build(name: str, size: int):
    """Return the baseline CNN or a backbone (random weights, every layer trainable), 3 classes."""
    from cellclf_utils.model import backbones, cnn
    if name == "baseline":
        return cnn.baseline_cnn(size, 3)
    return backbones.build(name, size, 3, weights="none", unfreeze_from="all")


def weight_copies(model) -> dict:
    """Return the seconds of keeping the best epoch's weights once: what BestEpoch did until
    2026-11-28 (every variable to numpy) and what it does now (a copy where the weights live),
    synchronised so an accelerator's asynchronous copy is counted in full."""
    from cellclf_utils.train.callbacks import snapshot
    return {"to_host_s": round(timed(lambda: [w.copy() for w in model.get_weights()]), 4),
            "on_device_s": round(timed(lambda: _synchronised(snapshot(model))), 4)}


def measure(name: str, size: int, n_train: int, n_val: int, bs: int, epochs: tuple[int, int]) -> dict:
    import keras
    from cellclf_utils.model import batching, tta
    from cellclf_utils.train import fit_fold
    from cellclf_utils.train.device import resident
    from cellclf_utils.train.trainers import Trainers

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n_train + n_val, size, size, 3), dtype=np.uint8)
    y = np.arange(n_train + n_val) % 3
    model = build(name, size)
    n_params = model.count_params()
    # bare: the same resident-image fit, nothing else per epoch
    store = resident.ImageStore(n_train, x.shape[1:])
    store.load(x[:n_train])
    bare = resident.training_model(model, store)
    bare.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss="categorical_crossentropy")
    rows = np.arange(n_train, dtype="int32")
    targets = keras.utils.to_categorical(y[:n_train], 3)
    def fit_bare(e):
        bare.fit(rows, targets, batch_size=bs, epochs=e, shuffle=True, verbose=0)
    fit_bare(1)  # compile first
    bare_s = per_epoch(fit_bare, epochs)

    val = x[n_train:]
    predict_s = timed(lambda: tta.predict_proba(model, val, bs))
    copies = weight_copies(model)
    model_predict_s = timed(lambda: model.predict(batching.pad_to_batches(val, bs), batch_size=bs, verbose=0))

    P = {"seed": 0, "optimizer": "sgd", "lr": 1e-3, "monitor": "val_auc", "batch_size": bs, "epochs": 1,
         "schedule": "constant", "tta": False, "class_weight": "none"}
    trainers = Trainers()  # shared, as across a cross-validation's folds: compiled once
    tmp = Path(tempfile.mkdtemp(prefix="epoch-overhead-"))
    counter = iter(range(100))

    def stage(e):
        fit_fold(lambda: model, x, y, np.arange(n_train), np.arange(n_train, n_train + n_val), None,
                       {**P, "epochs": e}, 0, tmp / f"run{next(counter)}", trainers=trainers)
    stage(1)  # compile the stage's own train step first
    stage_s = per_epoch(stage, epochs)
    keras.backend.clear_session()
    return {"model": f"{name}@{size}", "params_M": round(n_params / 1e6, 1), "steps": -(-n_train // bs),
            "bare_s": round(bare_s, 3), "stage_s": round(stage_s, 3), "predict_s": round(predict_s, 3),
            "model_predict_s": round(model_predict_s, 3), **copies,
            "fixed_s": round(stage_s - bare_s - predict_s, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["baseline@64", "xception@71"])
    ap.add_argument("--train", type=int, default=64)
    ap.add_argument("--val", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, nargs=2, default=[3, 13])
    ap.add_argument("--copies-only", action="store_true",
                    help="time only the best-weights copies, on the freshly built models (no training)")
    a = ap.parse_args()
    import contextlib
    import io

    import keras
    if a.copies_only:
        print(f"Keras {keras.__version__} on {keras.backend.backend()}; one copy of the weights, mean of 5")
        print("| model | variables | MiB | best weights to host (get_weights) | best weights copied on the device |")
        print("|---|---|---|---|---|")
        for item in a.models:
            name, size = item.split("@")
            model = build(name, int(size))
            mib = 4 * sum(int(np.prod(v.shape)) for v in model.weights) / 2 ** 20  # float32 variables
            c = weight_copies(model)
            print(f"| {item} | {len(model.weights)} | {mib:.0f} | {c['to_host_s']} s | {c['on_device_s']} s |", flush=True)
            keras.backend.clear_session()
        return
    print(f"Keras {keras.__version__} on {keras.backend.backend()}; {a.train} training / {a.val} validation "
          f"images, batch {a.batch_size}; seconds per epoch from {a.epochs[0]} vs {a.epochs[1]} epochs", flush=True)
    print("| model | params | steps/epoch | bare fit | stage fit | of which validation predict | rest (fixed) "
          "| the predict as one model.predict | best weights to host (get_weights) | best weights copied on the device |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for item in a.models:
        name, size = item.split("@")
        with contextlib.redirect_stdout(io.StringIO()):  # fit_fold's per-epoch log lines
            r = measure(name, int(size), a.train, a.val, a.batch_size, tuple(a.epochs))
        print(f"| {r['model']} | {r['params_M']} M | {r['steps']} | {r['bare_s']} s | {r['stage_s']} s | "
              f"{r['predict_s']} s | {r['fixed_s']} s | {r['model_predict_s']} s | {r['to_host_s']} s | "
              f"{r['on_device_s']} s |", flush=True)


if __name__ == "__main__":
    main()
