"""Pooled features of a frozen ImageNet backbone, for the linear-probe stage (02c).

A probe fits a plain classifier on a pretrained network's features; nothing in the network
trains, so it costs one forward pass per image (and view). It is the honest floor a
fine-tune has to beat: with few images, fine-tuning can lose to it (docs/results.md).
"""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from . import backbones, classical
from .predict import pad_to_batches


def extractor(backbone: str, image_size: int, weights: str, pooling: str = "gap") -> keras.Model:
    """Return a model mapping 0..255 RGB images (image_size² x 3) to the frozen backbone's
    globally pooled features (the fine-tuning model up to its pooling layer, so the same
    preprocessing, weights handling and offline error apply)."""
    full = backbones.build(backbone, image_size, 2, weights=weights, pooling=pooling, dropout=0.0,
                           unfreeze_from="none", train_bn_in_frozen=False)
    return keras.Model(full.input, full.get_layer(pooling).output, name=f"{backbone}_features")


def describe(P: dict) -> str:
    """Return the leaderboard's model name of a probe stage's parameters."""
    w = backbones.weights_label(P["weights"])
    colour = " + colour/stain histograms" if P.get("colour") else ""
    return (f"{P['backbone']} weights={w} {P['pooling']} @{P['image_size']}, frozen{colour}; "
            f"{P['classifier']} C={P['C']}")


def featurizer(backbone: str, image_size: int, weights: str, pooling: str = "gap",
               batch_size: int = 32, colour: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``featurize(x)``: float32 (N, F) pooled features of uint8 images (N, S, S, 3),
    with ``colour`` followed by 02b's hue/saturation/value and stain histograms (96 columns),
    class evidence (stain uptake) that features learned on ImageNet photos need not hold."""
    model = extractor(backbone, image_size, weights, pooling)

    def featurize(x: np.ndarray) -> np.ndarray:
        if x.shape[1:3] != (image_size, image_size):
            raise ValueError(f"images are {x.shape[1]}x{x.shape[2]} px but the feature extractor was built "
                             f"for {image_size} px; load them with the same image_size")
        # whole batches only: a short last batch would compile the model a second time
        out = model.predict(pad_to_batches(x, batch_size), batch_size=batch_size, verbose=0)
        out = np.asarray(out[:len(x)], dtype="float32")
        return np.hstack([out, classical.colour_histograms(x)]) if colour else out
    return featurize
