"""Grad-CAM (Selvaraju et al. 2017): where in the image a trained model found its class.

The model is split at its last 4-D feature map (the backbone's output, or the baseline
CNN's last convolution): ``features`` runs the layers up to it, ``head`` the rest with the
final softmax left off, so the score is the class logit. The gradient of that logit with
respect to the feature map is taken with whichever autodiff the Keras backend has
(TensorFlow, JAX or PyTorch): Keras 3 has no backend-neutral gradient call.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import keras
import numpy as np
import pandas as pd


@dataclass
class Split:
    features: list      # layers from the input to the last 4-D feature map
    head: list          # the layers after it; the last is the softmax Dense


def split(model: keras.Model) -> Split:
    """Return the model's layers split at its last 4-D output. The model must be a chain
    (each layer feeding the next), as the project's builders make."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    cut = max((i for i, layer in enumerate(layers) if len(layer.output.shape) == 4), default=None)
    if cut is None or cut == len(layers) - 1:
        raise ValueError(f"model {model.name!r} has no 4-D feature map followed by a classifier; "
                         "Grad-CAM needs a convolutional model")
    if not isinstance(layers[-1], keras.layers.Dense):
        raise ValueError(f"model {model.name!r} does not end in a Dense classifier (got {type(layers[-1]).__name__})")
    return Split(layers[:cut + 1], layers[cut + 1:])


def _features(s: Split, x):
    for layer in s.features:
        x = layer(x, training=False)  # augmentation layers are the identity at inference
    return keras.ops.cast(x, "float32")


def _logits(s: Split, a):
    """Class scores before the softmax (Grad-CAM's y^c) from feature maps ``a``."""
    for layer in s.head[:-1]:
        a = keras.ops.cast(layer(a, training=False), "float32")
    dense = s.head[-1]
    return keras.ops.matmul(a, keras.ops.cast(dense.kernel, "float32")) + keras.ops.cast(dense.bias, "float32")


def _gradient(score, a: np.ndarray) -> np.ndarray:
    """Return d score(a) / d a as numpy, using the active backend's autodiff."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        t = tf.convert_to_tensor(a)
        with tf.GradientTape() as tape:
            tape.watch(t)
            value = score(t)
        return tape.gradient(value, t).numpy()
    if backend == "jax":
        import jax
        return np.asarray(jax.grad(score)(jax.numpy.asarray(a)))
    if backend == "torch":
        t = keras.ops.convert_to_tensor(a).detach().requires_grad_(True)  # on Keras' device
        score(t).backward()
        return t.grad.detach().cpu().numpy()
    raise NotImplementedError(f"Grad-CAM has no gradient for the {backend!r} Keras backend "
                              "(use tensorflow, jax or torch)")


def heatmaps(model: keras.Model, images: np.ndarray, classes) -> np.ndarray:
    """Return (N, H, W) Grad-CAM maps in [0, 1] at the images' size, for class ``classes[i]``
    of image i: ReLU of the feature maps weighted by their mean logit gradient."""
    images = np.asarray(images)
    if not len(images):
        return np.zeros((0, *images.shape[1:3]), np.float32)
    s = split(model)
    a = keras.ops.convert_to_numpy(_features(s, keras.ops.convert_to_tensor(images.astype("float32"))))
    # a backend tensor, not numpy: a torch tensor that needs gradients cannot meet a numpy array
    onehot = keras.ops.convert_to_tensor(np.eye(model.output_shape[-1], dtype="float32")[np.asarray(classes)])
    # the per-image logits sum: every image's gradient is its own (inference mode, no batch coupling)
    grads = _gradient(lambda t: keras.ops.sum(keras.ops.multiply(_logits(s, t), onehot)), a)
    weights = grads.mean(axis=(1, 2), keepdims=True)          # (N, 1, 1, K): importance of each map
    cams = np.maximum((weights * a).sum(-1), 0)               # (N, h, w)
    out = np.stack([cv2.resize(c, images.shape[2:0:-1], interpolation=cv2.INTER_LINEAR) for c in cams])
    peak = out.reshape(len(out), -1).max(1)[:, None, None]
    return (out / np.where(peak > 0, peak, 1)).astype(np.float32)


def pick_cases(y, proba, fold, per_class: int) -> pd.DataFrame:
    """Return the images to explain: per true class, the ``per_class`` most confident right
    predictions and the ``per_class`` most confident wrong ones (columns: index, label,
    predicted, confidence, correct, fold), from out-of-fold probabilities."""
    y, proba, fold = np.asarray(y), np.asarray(proba), np.asarray(fold)
    pred = proba.argmax(1)
    rows = []
    for c in np.unique(y):
        for correct in (True, False):
            idx = np.flatnonzero((y == c) & ((pred == y) == correct))
            idx = idx[np.argsort(-proba[idx, pred[idx]], kind="stable")][:per_class]
            rows += [{"index": int(i), "label": int(c), "predicted": int(pred[i]),
                      "confidence": float(proba[i, pred[i]]), "correct": correct, "fold": int(fold[i])}
                     for i in idx]
    return pd.DataFrame(rows, columns=["index", "label", "predicted", "confidence", "correct", "fold"])


def explain_oof(fold_models: dict, x: np.ndarray, cases: pd.DataFrame) -> np.ndarray:
    """Return the Grad-CAM map of each case (rows of ``pick_cases``) for the class the model
    predicted, computed with the model of the image's own fold (``fold_models[fold]``: its saved
    ``model.keras``): the model that made that out-of-fold prediction never saw the image."""
    cases = cases.reset_index(drop=True)
    maps = np.zeros((len(cases), *x.shape[1:3]), np.float32)
    for k, part in cases.groupby("fold"):
        model = keras.saving.load_model(fold_models[k])
        rows = part.index.to_numpy()
        maps[rows] = heatmaps(model, x[part["index"].to_numpy()], part["predicted"].to_numpy())
    return maps
