"""Discriminative learning rates: the backbone's trainable layers step at a fraction of the
head's rate, smallest at the bottom (fastai's ``slice(lr_low, lr)``, timm's layer-wise decay).

``scales`` gives each trainable variable its multiple of the learning rate: the backbone's
first trainable layer ``ratio``, rising geometrically layer by layer to 1 at its top; the head
(everything outside the layer named ``base``) 1. ``with_scales`` turns a Keras optimiser class
into one that applies them; Keras 3 optimisers have one rate for every variable.
"""
from __future__ import annotations

import keras


def scales(model: keras.Model, variables: list, ratio: float) -> list[float]:
    """Return each of ``variables``' (a fitted model's trainable variables) multiple of the
    learning rate, for a backbone ``ratio`` (1: one rate for all)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"parameter 'backbone_lr' must be in (0, 1] (got {ratio!r})")
    by_id: dict[int, float] = {}
    names = [layer.name for layer in model.layers]
    if ratio != 1 and "base" in names:
        trained = [layer for layer in model.get_layer("base").layers if layer.trainable_weights]
        top = max(1, len(trained) - 1)
        for i, layer in enumerate(trained):
            for v in layer.trainable_weights:
                by_id[id(v)] = float(ratio ** ((top - i) / top)) if len(trained) > 1 else 1.0
    return [by_id.get(id(v), 1.0) for v in variables]


def with_scales(optimizer_class: type) -> type:
    """Return a subclass of ``optimizer_class`` taking ``scales``: one learning-rate multiple per
    variable, in the order of the variables it is built with (the fitted model's trainable ones)."""

    class Scaled(optimizer_class):
        def __init__(self, *args, scales=(), **kwargs):
            super().__init__(*args, **kwargs)
            self.scales = [float(s) for s in scales]

        def build(self, variables):
            if len(variables) != len(self.scales):
                raise ValueError(f"{len(self.scales)} learning-rate scales for {len(variables)} variables")
            super().build(variables)

        def update_step(self, gradient, variable, learning_rate):
            # the optimiser's own index of the variable (Keras' optimisers find their slots so)
            scale = self.scales[self._get_variable_index(variable)]
            return super().update_step(gradient, variable, learning_rate if scale == 1 else learning_rate * scale)

    Scaled.__name__ = Scaled.__qualname__ = f"{optimizer_class.__name__}WithLayerRates"
    return Scaled
