"""MixUp and CutMix on training batches.

They mix labels as well as images, so they cannot live in the model's augmentation layers
(which see images only): ``MixedBatches`` serves shuffled batches to ``model.fit`` and mixes
each with a shuffled copy of itself. The images stay 0..255 RGB; the model's own augmentation
and preprocessing layers run after the mixing, as for plain batches.
"""
from __future__ import annotations

import keras
import numpy as np


def mixup(x: np.ndarray, y: np.ndarray, lam: float, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``lam * batch + (1 - lam) * batch[perm]`` for images and soft labels."""
    return (lam * x + (1 - lam) * x[perm]).astype("float32"), lam * y + (1 - lam) * y[perm]


def cutmix(x: np.ndarray, y: np.ndarray, lam: float, perm: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return the batch with a random box pasted from ``batch[perm]``, covering about
    ``1 - lam`` of each image; labels mix by the box's exact area share."""
    n, h, w = x.shape[:3]
    cut = np.sqrt(1 - lam)
    bh, bw = int(round(h * cut)), int(round(w * cut))
    cy, cx = rng.integers(0, h), rng.integers(0, w)
    y0, y1 = np.clip([cy - bh // 2, cy + (bh - bh // 2)], 0, h)
    x0, x1 = np.clip([cx - bw // 2, cx + (bw - bw // 2)], 0, w)
    out = x.astype("float32", copy=True)
    out[:, y0:y1, x0:x1] = x[perm, y0:y1, x0:x1]
    share = (y1 - y0) * (x1 - x0) / (h * w)  # the clipped box decides the label mix
    return out, (1 - share) * y + share * y[perm]


class MixedBatches(keras.utils.PyDataset):
    """Shuffled, full training batches ``(images, soft labels, sample weights)`` with MixUp
    (``mixup`` = Beta alpha) and/or CutMix (``cutmix`` = Beta alpha); with both, each batch
    uses one of the two at random. ``class_weight`` becomes per-image weights (a mixed image
    weighs by its label mix), since Keras' class_weight needs hard labels."""

    def __init__(self, x, y_onehot, batch_size: int, *, mixup: float = 0.0, cutmix: float = 0.0,
                 class_weight: dict | None = None, seed: int = 0):
        super().__init__()
        if mixup < 0 or cutmix < 0:
            raise ValueError(f"mixup and cutmix must be >= 0 (got {mixup}, {cutmix})")
        self.x, self.y, self.batch_size = x, np.asarray(y_onehot, dtype="float32"), batch_size
        self.alphas = [(kind, a) for kind, a in (("mixup", mixup), ("cutmix", cutmix)) if a > 0]
        n_classes = self.y.shape[1]
        self.class_w = np.array([(class_weight or {}).get(c, 1.0) for c in range(n_classes)], "float32")
        self.rng = np.random.default_rng(seed)
        self.order = self._epoch_order()

    def _epoch_order(self) -> np.ndarray:
        # full batches only (a few random images twice per epoch): one compiled train step
        order = self.rng.permutation(len(self.x))
        fill = -len(order) % self.batch_size
        return np.concatenate([order, self.rng.choice(len(order), fill, replace=fill > len(order))])

    def __len__(self) -> int:
        return len(self.order) // self.batch_size

    def __getitem__(self, i: int):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        x, y = self.x[idx], self.y[idx]
        if self.alphas and len(idx) > 1:
            kind, alpha = self.alphas[self.rng.integers(len(self.alphas))]
            lam = float(self.rng.beta(alpha, alpha))
            perm = self.rng.permutation(len(idx))
            x, y = mixup(x, y, lam, perm) if kind == "mixup" else cutmix(x, y, lam, perm, self.rng)
        else:
            x = x.astype("float32")
        return x, y, y @ self.class_w

    def on_epoch_end(self):
        self.order = self._epoch_order()
