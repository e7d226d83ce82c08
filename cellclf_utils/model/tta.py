"""Class probabilities from a trained model, optionally averaged over flips/rotations (TTA)."""
from __future__ import annotations

import numpy as np


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """Return the k-th (0..7) of the 8 flips/rotations of an NHWC batch of square images."""
    y = np.rot90(x, k % 4, axes=(1, 2))
    return np.ascontiguousarray(y[:, :, ::-1] if k >= 4 else y)


def pad_to_batches(x: np.ndarray, batch_size: int) -> np.ndarray:
    """Return ``x`` with its first rows repeated at the end so its length is a multiple of
    ``batch_size``: every batch then has one shape, and a compiled step (XLA, JAX) is not
    traced and compiled a second time for a short last batch."""
    fill = -len(x) % batch_size
    return np.concatenate([x, x[np.arange(fill) % len(x)]]) if fill else x


def predict_proba(model, x: np.ndarray, batch_size: int = 64, tta: bool = False) -> np.ndarray:
    """Return (N, n_classes) float probabilities; with ``tta`` the mean over the 8 dihedral
    transforms (cells have no up or left, so every view is equally valid)."""
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    views = range(8) if tta else range(1)
    return np.mean([outputs(model, dihedral(x, k), batch_size) for k in views], axis=0)


def outputs(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Return the model's outputs for every row of ``x`` (N, ...), fed in whole batches (the
    last one padded, then cut off) with one ``predict_on_batch`` each: ``model.predict`` builds
    a data iterator per call, which under TensorFlow costs ~60 ms on a CPU, more than scoring a
    small validation split, and stages score one every epoch."""
    padded = pad_to_batches(x, batch_size)
    return np.concatenate([np.asarray(model.predict_on_batch(padded[i:i + batch_size]))
                           for i in range(0, len(padded), batch_size)])[:len(x)]
