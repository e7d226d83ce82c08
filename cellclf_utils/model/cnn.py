"""The write-up's small CNN (stage 02), and the global pooling layers every model head uses."""
from __future__ import annotations

import keras
from keras import layers

from . import augment

POOLING = {"gap": layers.GlobalAveragePooling2D, "gmp": layers.GlobalMaxPooling2D}


def baseline_cnn(image_size: int, n_classes: int, pooling: str = "gap", dropout: float = 0.5,
                 augment_preset: str = "none", seed: int = 0) -> keras.Model:
    """Return the write-up's CNN: Conv2D 32-64-128-128 (3x3 ReLU), max-pooling after the
    first three, global average or max pooling, dropout, softmax. Inputs are 0..255 RGB."""
    if pooling not in POOLING:
        raise ValueError(f"parameter 'pooling' must be one of {', '.join(POOLING)} (got {pooling!r})")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    aug = augment.pipeline(augment_preset, seed)
    if aug is not None:
        x = aug(x)
    x = layers.Rescaling(1.0 / 255)(x)
    for i, filters in enumerate((32, 64, 128, 128)):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        if i < 3:
            x = layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = POOLING[pooling](name=pooling)(x)
    x = layers.Dropout(dropout, seed=seed)(x)
    # float32 softmax keeps probabilities exact under mixed precision
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="baseline_cnn")
