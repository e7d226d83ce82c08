"""Training-time augmentation as Keras preprocessing layers.

The layers sit inside the model, so they run on the same device as the training step
(GPU too) and are inactive at inference. They work on 0..255 float images.
"""
from __future__ import annotations

import keras
from keras import layers

PRESETS = ("none", "basic")


def pipeline(preset: str, seed: int = 0) -> keras.Sequential | None:
    """Return the augmentation layers for ``preset`` (None for 'none').

    basic: the geometric part of the write-up's ImageDataGenerator, toned down for cells
    that must stay in frame: any flip, rotation up to 90°, 10% shift and zoom, reflected
    borders (the write-up used 'wrap'; reflect avoids seams through a cell).
    """
    if preset not in PRESETS:
        raise ValueError(f"parameter 'augment' must be one of {', '.join(PRESETS)} (got {preset!r})")
    if preset == "none":
        return None
    return keras.Sequential([
        layers.RandomFlip("horizontal_and_vertical", seed=seed),
        layers.RandomRotation(0.25, fill_mode="reflect", seed=seed + 1),
        layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 2),
        layers.RandomZoom(0.1, fill_mode="reflect", seed=seed + 3),
    ], name=f"augment_{preset}")
