"""Training memory: cellclf's estimate (memory.training_bytes, what `-p batch_size 0` goes by)
against what training takes. On a CPU: the growth of the process's peak resident memory during
`fit` (after one `predict`, so inference buffers are in the baseline); on a JAX accelerator: the
device's peak bytes in use. One model per process, every layer trainable, SGD with momentum.

usage: KERAS_BACKEND=tensorflow python benchmarks/memory_check.py xception 128 32
"""
from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np

from cellclf_utils.model import backbones
from cellclf_utils.train.device import memory, precision


def main(name: str, size: int, batch: int) -> None:
    policy = precision.auto()
    model = backbones.build(name, size, 3, weights="none", unfreeze_from="all")
    x = np.random.default_rng(0).integers(0, 256, (batch * 3, size, size, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(np.arange(len(x)) % 3, 3)
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss="categorical_crossentropy")
    model.predict(x[:batch], batch_size=batch, verbose=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    model.fit(x, y, batch_size=batch, epochs=2, verbose=0)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    est = memory.training_bytes(model, batch, "sgd")
    device = None
    if keras.backend.backend() == "jax":
        import jax
        stats = jax.local_devices()[0].memory_stats() or {}
        device = stats.get("peak_bytes_in_use")
    measured = (f"device peak {device / memory.GIB:.2f} GiB" if device
                else f"peak RSS growth in fit {after - before:.2f} GiB")
    print(f"{keras.backend.backend()} {policy} {name}@{size} batch {batch}: {measured}; estimate "
          f"{est['total'] / memory.GIB:.2f} GiB (activations {est['activations'] / memory.GIB:.2f})")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
