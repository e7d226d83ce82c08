"""MixUp and CutMix inside the compiled train step.

They mix labels as well as images, so they cannot be plain augmentation layers (which see
images only). Instead a training-only wrapper model (``training_model``) takes the labels as a
second input, with each image's class weight as an extra column; one ``MixBatch`` draw mixes
images and label rows alike; the classifier sees the mixed images; and the wrapper outputs
the classifier's probabilities beside the mixed labels, which ``mixed_crossentropy`` scores.
It is all keras.ops (tested under TensorFlow and JAX), so it runs on the device, and the host
only slices uint8 batches, as for unmixed training. The classifier itself is unchanged: it is
what gets validated, saved and used for predictions.
"""
from __future__ import annotations

import keras
from keras import ops


class MixBatch(keras.layers.Layer):
    """Mixes a batch with a shuffled copy of itself while training (identity otherwise):
    MixUp (``mixup`` = Beta alpha: ``lam * x + (1 - lam) * x[perm]``) and/or CutMix (``cutmix``
    = Beta alpha: a box covering about ``1 - lam`` of each image pasted from its partner, the
    labels mixed by the box's exact area share). With both, each batch uses one at random.
    Call with ``(images, rows)``: rows (labels, weights, ...) are mixed like the labels."""

    def __init__(self, mixup: float = 0.0, cutmix: float = 0.0, seed: int | None = None, **kwargs):
        # float32 even under mixed precision: label shares and weights need the precision
        super().__init__(dtype="float32", **kwargs)
        if mixup < 0 or cutmix < 0:
            raise ValueError(f"mixup and cutmix must be >= 0 (got {mixup}, {cutmix})")
        self.mixup, self.cutmix, self.seed = float(mixup), float(cutmix), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def reseed(self, seed: int) -> None:
        """Restart the random draws from ``seed`` (each fold draws the same sequence on resume)."""
        state = self.seed_generator.state
        state.assign(ops.convert_to_tensor([seed, 0], dtype=state.dtype))

    def _lam(self, alpha: float):
        return keras.random.beta((), alpha, alpha, seed=self.seed_generator)

    def _mixup(self, x, rows, x2, rows2):
        lam = self._lam(self.mixup)
        return lam * x + (1 - lam) * x2, lam * rows + (1 - lam) * rows2

    def _cutmix(self, x, rows, x2, rows2):
        h, w = x.shape[1], x.shape[2]
        cut = ops.sqrt(1 - self._lam(self.cutmix))
        bh, bw = ops.round(h * cut), ops.round(w * cut)
        cy = ops.cast(keras.random.randint((), 0, h, seed=self.seed_generator), "float32")
        cx = ops.cast(keras.random.randint((), 0, w, seed=self.seed_generator), "float32")
        y0, x0 = cy - ops.floor(bh / 2), cx - ops.floor(bw / 2)
        rows_in = ops.logical_and(ops.arange(h, dtype="float32") >= y0, ops.arange(h, dtype="float32") < y0 + bh)
        cols_in = ops.logical_and(ops.arange(w, dtype="float32") >= x0, ops.arange(w, dtype="float32") < x0 + bw)
        box = ops.cast(ops.logical_and(rows_in[:, None], cols_in[None, :]), "float32")  # clipped by the image
        share = ops.mean(box)  # the clipped box decides the label mix
        box = box[None, :, :, None]
        return x * (1 - box) + x2 * box, (1 - share) * rows + share * rows2

    def call(self, images, rows, training=None):
        images, rows = ops.cast(images, "float32"), ops.cast(rows, "float32")
        if not training or not (self.mixup or self.cutmix):
            return images, rows
        perm = keras.random.shuffle(ops.arange(ops.shape(images)[0]), seed=self.seed_generator)
        x2, rows2 = ops.take(images, perm, axis=0), ops.take(rows, perm, axis=0)
        mixed = [f(images, rows, x2, rows2) for a, f in ((self.mixup, self._mixup), (self.cutmix, self._cutmix)) if a]
        if len(mixed) == 1:
            return mixed[0]
        use_mixup = keras.random.uniform((), seed=self.seed_generator) < 0.5
        return (ops.where(use_mixup, mixed[0][0], mixed[1][0]), ops.where(use_mixup, mixed[0][1], mixed[1][1]))

    def compute_output_spec(self, images, rows, training=None):
        return (keras.KerasTensor(images.shape, "float32"), keras.KerasTensor(rows.shape, "float32"))

    def get_config(self):
        return {**super().get_config(), "mixup": self.mixup, "cutmix": self.cutmix, "seed": self.seed}


def training_model(model: keras.Model, mixup: float, cutmix: float, seed: int = 0) -> keras.Model:
    """Return a wrapper that trains ``model`` (shares its weights) on mixed batches. Inputs:
    ``{"images": (B, H, W, 3), "labels": (B, C + 1)}``, one-hot (or soft) labels followed by
    each image's sample weight; output: ``(B, 2C + 1)``, the probabilities followed by the
    mixed label rows. Fit it with ``mixed_crossentropy(C)`` and ``mixed_accuracy(C)``."""
    n_classes = model.output_shape[-1]
    images = keras.Input(model.input_shape[1:], name="images")
    labels = keras.Input((n_classes + 1,), name="labels")
    mixed_images, mixed_labels = MixBatch(mixup, cutmix, seed, name="mix_batch")(images, labels)
    probs = keras.layers.Activation("linear", dtype="float32", name="probs_f32")(model(mixed_images))
    out = keras.layers.Concatenate(dtype="float32", name="probs_and_mixed_labels")([probs, mixed_labels])
    return keras.Model({"images": images, "labels": labels}, out, name=f"{model.name}_mixed")


def mixed_crossentropy(n_classes: int, label_smoothing: float = 0.0):
    """Return the loss for ``training_model``'s output: cross-entropy of the probabilities
    against the mixed (optionally smoothed) labels, times the mixed sample weight. Keras'
    ``y_true`` is not used: the mixed labels travel in ``y_pred``."""
    def loss(y_true, y_pred):
        probs = ops.clip(y_pred[:, :n_classes], 1e-7, 1.0)
        target = ops.stop_gradient(y_pred[:, n_classes:2 * n_classes])
        target = target * (1 - label_smoothing) + label_smoothing / n_classes
        return -ops.sum(target * ops.log(probs), axis=-1) * ops.stop_gradient(y_pred[:, 2 * n_classes])
    loss.__name__ = "mixed_crossentropy"
    return loss


def mixed_accuracy(n_classes: int) -> keras.metrics.Metric:
    """Return an 'accuracy' metric of ``training_model``'s probabilities against the unmixed labels."""
    def accuracy(y_true, y_pred):
        return ops.cast(ops.argmax(y_true, -1) == ops.argmax(y_pred[:, :n_classes], -1), "float32")
    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")
