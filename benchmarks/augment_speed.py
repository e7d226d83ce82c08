"""Time the geometric augmentation alone: Keras' RandomFlip/Rotation/Translation/Zoom layers
(what the presets used before) against cellclf's RandomAffine (one map, one resampling), on the
current backend, compiled (tf.function / jax.jit), one batch of random 0..255 images.

usage: KERAS_BACKEND=jax python benchmarks/augment_speed.py [--size 299] [--batch 32] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras
import numpy as np
from keras import layers

from cellclf_utils.model import augment


def keras_layers(preset: str, seed: int = 0) -> keras.Sequential:
    """Return the preset's geometry as the Keras layers it was built from before RandomAffine."""
    if preset == "basic":
        stack = [layers.RandomFlip("horizontal_and_vertical", seed=seed),
                 layers.RandomRotation(0.25, fill_mode="reflect", seed=seed + 1),
                 layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2),
                 layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 3)]
    else:
        stack = [layers.RandomFlip("horizontal_and_vertical", seed=seed),
                 layers.RandomTranslation(0.9, 0.9, fill_mode="wrap", seed=seed + 2),
                 layers.RandomRotation(0.25, fill_mode="wrap", seed=seed + 1),
                 layers.RandomZoom(0.4, 0.4, fill_mode="wrap", seed=seed + 3)]
    return keras.Sequential(stack)


def compiled(pipe: keras.Sequential, shape):
    """Return a function images -> augmented images, compiled for the current backend."""
    pipe.build((None, *shape[1:]))
    if keras.backend.backend() == "jax":
        import jax
        state = ([v.value for v in pipe.trainable_variables], [v.value for v in pipe.non_trainable_variables])
        f = jax.jit(lambda x: pipe.stateless_call(*state, x, training=True)[0])
        return lambda x: f(x).block_until_ready()
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        f = tf.function(lambda x: pipe(x, training=True))
        return lambda x: f(x).numpy()
    return lambda x: keras.ops.convert_to_numpy(pipe(x, training=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, nargs="+", default=[64, 299])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--presets", nargs="+", default=["basic", "seed"])
    a = ap.parse_args()
    print(f"| backend | preset | size | Keras layers (ms/batch of {a.batch}) | RandomAffine | speed-up |")
    print("|---|---|---|---|---|---|")
    for size in a.size:
        x = np.random.default_rng(0).uniform(0, 255, (a.batch, size, size, 3)).astype("float32")
        for preset in a.presets:
            ms = []
            for pipe in (keras_layers(preset), augment.pipeline(preset, 0)):
                f = compiled(pipe, x.shape)
                f(x)  # compile
                t = time.perf_counter()
                for _ in range(a.repeats):
                    f(x)
                ms.append((time.perf_counter() - t) / a.repeats * 1000)
            print(f"| {keras.backend.backend()} | {preset} | {size} | {ms[0]:.0f} | {ms[1]:.0f} | "
                  f"{ms[0] / ms[1]:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
