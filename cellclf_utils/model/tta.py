"""Class probabilities from a trained model, fed in whole batches, optionally averaged over the
8 flips/rotations of each image (test-time augmentation): cells have no up or left."""
from __future__ import annotations

import numpy as np

from ..data.images import dihedral
from .batching import pad_to_batches

VIEWS = 8  # the dihedral views TTA averages


def predict_proba(model, x: np.ndarray, batch_size: int = 64, tta: bool = False) -> np.ndarray:
    """Return (N, n_classes) float probabilities; with ``tta`` the mean over the 8 dihedral
    transforms (cells have no up or left, so every view is equally valid)."""
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    views = range(VIEWS) if tta else range(1)
    return np.mean([outputs(model, dihedral(x, k), batch_size) for k in views], axis=0)


def outputs(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Return the model's outputs for every row of ``x`` (N, ...), fed in whole batches (the
    last one padded, then cut off) with one ``predict_on_batch`` each: ``model.predict`` builds
    a data iterator per call, which under TensorFlow costs ~60 ms on a CPU, more than scoring a
    small validation split, and stages score one every epoch."""
    padded = pad_to_batches(x, batch_size)
    return np.concatenate([np.asarray(model.predict_on_batch(padded[i:i + batch_size]))
                           for i in range(0, len(padded), batch_size)])[:len(x)]
