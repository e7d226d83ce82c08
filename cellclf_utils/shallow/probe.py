"""Pooled features of a frozen ImageNet backbone, for the linear-probe stage (02c).

A probe fits a plain classifier on a pretrained network's features; nothing in the network
trains, so it costs one forward pass per image (and view). It is the honest floor a
fine-tune has to beat: with few images, fine-tuning can lose to it (docs/results.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from ..model import backbones
from ..model.inference import inference_model
from ..model.tta import outputs
from .classifiers import make_classifier
from .features import colour_histograms


def extractor(backbone: str, image_size: int, weights: str, pooling: str = "gap") -> keras.Model:
    """Return a model mapping 0..255 RGB images (image_size² x 3) to the frozen backbone's
    globally pooled features (the fine-tuning model up to its pooling layer, so the same
    preprocessing, weights handling and offline error apply), as an inference graph of Keras'
    own layers (``inference.inference_model``), the form the stage saves."""
    full = backbones.build(backbone, image_size, 2, weights=weights, pooling=pooling, dropout=0.0,
                           unfreeze_from="none", train_bn_in_frozen=False)
    pooled = keras.Model(full.input, full.get_layer(pooling).output)
    return inference_model(pooled, name=f"{backbone}_features")


def describe(P: dict) -> str:
    """Return the leaderboard's model name of a probe stage's parameters."""
    w = backbones.weights_label(P["weights"])
    colour = " + colour/stain histograms" if P.get("colour") else ""
    return (f"{P['backbone']} weights={w} {P['pooling']} @{P['image_size']}, frozen{colour}; "
            f"{P['classifier']} C={P['C']}")


@dataclass(frozen=True)
class Featurizer:
    """Called on images: float32 (N, F) pooled features of uint8 images (N, S, S, 3) by the
    frozen ``model``, with ``colour`` followed by 02b's hue/saturation/value and stain
    histograms (96 columns), class evidence (stain uptake) that features learned on ImageNet
    photos need not hold. The network computes in Keras' dtype policy of when it was built;
    features come back as float32 either way."""

    model: keras.Model
    batch_size: int = 32
    colour: bool = False

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 (got {self.batch_size})")

    @property
    def image_size(self) -> int:
        return int(self.model.input_shape[1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        size = self.image_size
        if x.shape[1:3] != (size, size):
            raise ValueError(f"images are {x.shape[1]}x{x.shape[2]} px but the feature extractor was built "
                             f"for {size} px; load them with the same image_size")
        # whole batches only: a short last batch would compile the model a second time
        out = outputs(self.model, x, self.batch_size).astype("float32")
        return np.hstack([out, colour_histograms(x)]) if self.colour else out


def featurizer(backbone: str, image_size: int, weights: str, pooling: str = "gap",
               batch_size: int = 32, colour: bool = False) -> Featurizer:
    """Return the Featurizer of a frozen ``backbone`` (see ``extractor``)."""
    return Featurizer(extractor(backbone, image_size, weights, pooling), batch_size, colour)


PROBE_C = 0.01  # 02c's default: the best of 0.003 / 0.01 / 0.03 on Herlev (docs/results.md)


def pooled_features(model: keras.Model) -> keras.Model:
    """Return a model sharing ``model``'s layers that outputs what its softmax layer 'probs'
    reads (the pooled features; augmentation and dropout are identities at inference)."""
    return keras.Model(model.inputs, model.get_layer("probs").input, name=f"{model.name}_pooled")


def fit_head(model: keras.Model, features: keras.Model, x: np.ndarray, y: np.ndarray, n_classes: int,
             C: float = PROBE_C, batch_size: int = 32) -> float:
    """Set ``model``'s softmax layer to a linear probe and return the probe's training accuracy.

    The probe is 02c's classifier (standardise, then logistic regression) fitted on the frozen
    network's pooled ``features`` of ``x``; the standardisation folds into the dense weights
    (w / sigma, b - w . mu / sigma), so the layer computes the probe's logits exactly. Fine-tuning
    from it ("LP-FT") starts from the best frozen solution instead of a random head, whose first
    gradients distort the pretrained features (Kumar et al., 2022).
    """
    feats = outputs(features, x, batch_size).astype("float64")
    clf = make_classifier("logreg", C).fit(feats, y)
    scaler, logreg = clf[0], clf[-1]
    coef, intercept = logreg.coef_, logreg.intercept_
    if len(logreg.classes_) == 2:  # scikit-learn keeps one logit for two classes: softmax of [0, z]
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    w = np.zeros((feats.shape[1], n_classes))
    b = np.full(n_classes, -30.0)  # a class absent from this training split is never predicted
    w[:, logreg.classes_] = (coef / scaler.scale_).T
    b[logreg.classes_] = intercept - coef @ (scaler.mean_ / scaler.scale_)
    dense = model.get_layer("probs")
    dense.set_weights([w.astype(dense.kernel.dtype), b.astype(dense.bias.dtype)])
    return float((clf.predict(feats) == y).mean())
