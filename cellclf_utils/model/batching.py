"""How images are fed in whole batches, for training, prediction and the plan that counts them.

Every batch has one shape, so a compiled step (XLA under JAX) is traced and compiled once: a
training epoch fills its last batch with a few random images seen twice, a prediction pads its
last batch with the first rows repeated and cuts their outputs off.
"""
from __future__ import annotations

import numpy as np


def steps(n: int, batch_size: int) -> int:
    """Return the batches an epoch (or a prediction pass) of ``n`` images takes."""
    return -(-n // batch_size)


def padded(n: int, batch_size: int) -> int:
    """Return ``n`` rounded up to whole batches: the images an epoch trains or a pass predicts."""
    return steps(n, batch_size) * batch_size


def fill_rows(n: int, batch_size: int, seed: int) -> np.ndarray:
    """Return int32 rows ``0..n-1`` followed by random ones (``seed``) up to ``padded(n)``: one
    epoch's images in whole batches."""
    n_fill = padded(n, batch_size) - n
    fill = np.random.default_rng(seed).choice(n, n_fill, replace=n_fill > n)
    return np.concatenate([np.arange(n), fill]).astype("int32")


def pad_to_batches(x: np.ndarray, batch_size: int) -> np.ndarray:
    """Return ``x`` with its first rows repeated at the end so its length is ``padded(len(x))``."""
    fill = padded(len(x), batch_size) - len(x)
    return np.concatenate([x, x[np.arange(fill) % len(x)]]) if fill else x
