"""Inference graphs of the series' models, made of Keras' own layers only, so that a saved
``.keras`` file loads with ``keras.saving.load_model`` in a Python that has no cellclf.

``inference_model`` rebuilds a trained chain (the baseline CNN, a fine-tuning model, a feature
extractor) without its augmentation and with the ImageNet preprocessing as a frozen Dense map
of the colour channels; the layers are shared, so it computes what the trained model computes
at inference. ``averaged`` puts several such models (the folds of a stage) in one that returns
the mean of their probabilities, optionally over the 8 flips/rotations of each image (TTA).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

from .backbones import ImagenetPreprocessing

AUGMENT_PREFIX = "augment_"  # augment.pipeline names its Sequential augment_<preset>


def preprocessing_as_dense(layer: ImagenetPreprocessing) -> layers.Dense:
    """Return a frozen Dense(3) on the channel axis computing ``layer`` (``layer.affine()``)."""
    w, b = layer.affine()
    dense = layers.Dense(3, name=layer.name, dtype=layer.dtype_policy, trainable=False)
    dense.build((None, 3))
    dense.set_weights([w.astype("float32"), b.astype("float32")])
    return dense


def inference_model(model: keras.Model, name: str | None = None) -> keras.Model:
    """Return ``model`` (a chain: each layer feeds the next) for inference: augmentation layers
    left out, ImageNet preprocessing as a frozen Dense, every other layer shared."""
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    inputs = keras.Input(model.input_shape[1:], name=model.inputs[0].name or "image")
    x = inputs
    for layer in chain:
        if layer.name.startswith(AUGMENT_PREFIX):
            continue
        x = (preprocessing_as_dense(layer) if isinstance(layer, ImagenetPreprocessing) else layer)(x)
    return keras.Model(inputs, x, name=name or model.name)


def _reverse(axis: int, n: int, name: str) -> keras.Sequential:
    """Return layers reversing axis ``axis`` (1: rows, 2: columns) of NHWC images of side ``n``:
    the axis moved last, a frozen exchange-matrix Dense, moved back (Keras has no flip layer)."""
    order = (2, 3, 1) if axis == 1 else (1, 3, 2)
    back = (3, 1, 2) if axis == 1 else (1, 3, 2)
    dense = layers.Dense(n, use_bias=False, trainable=False, name=f"{name}_exchange")
    dense.build((None, n))
    dense.set_weights([np.eye(n, dtype="float32")[::-1]])
    return keras.Sequential([layers.Permute(order), dense, layers.Permute(back)], name=name)


def dihedral_views(x, size: int) -> list:
    """Return the 8 flips/rotations of symbolic NHWC square images ``x`` (the dihedral group:
    rows reversed or not, columns reversed or not, transposed or not)."""
    rows, columns = _reverse(1, size, "flip_rows"), _reverse(2, size, "flip_columns")
    transpose = layers.Permute((2, 1, 3), name="transpose")
    views = [x]
    views += [rows(v) for v in views]
    views += [columns(v) for v in views]
    views += [transpose(v) for v in views]
    return views


def averaged(models: list[keras.Model], tta: bool = False, name: str = "cellclf_model") -> keras.Model:
    """Return one model taking 0..255 RGB images that outputs the mean class probabilities of
    ``models`` (same input and classes; each renamed ``fold<k>`` inside), with ``tta`` over the
    8 flips/rotations of every image too."""
    shape = models[0].input_shape[1:]
    for k, m in enumerate(models):
        m.name = f"fold{k}"
    inputs = keras.Input(shape, name="image")
    views = dihedral_views(inputs, shape[0]) if tta else [inputs]
    outputs = [m(v) for m in models for v in views]
    mean = outputs[0] if len(outputs) == 1 else layers.Average(name="mean", dtype="float32")(outputs)
    return keras.Model(inputs, mean, name=name)
