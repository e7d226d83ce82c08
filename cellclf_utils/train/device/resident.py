"""Training images resident on the device for a whole cross-validation.

``model.fit`` on a numpy array slices a batch on the host and copies it to the device every
step. Instead the training split's uint8 images are loaded once per fold into an
``ImageStore`` (a non-trainable uint8 variable, which the backend keeps on the accelerator),
and the model that is fitted (``training_model``) takes a batch of row indices and gathers
its images inside the compiled train step: the host sends a few bytes of indices and labels
per step. Shuffling, batching and the results are those of fitting the images directly (a
test checks the weights are identical). The store is a training-only wrapper: the classifier
is what gets validated, saved and used for predictions.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


class ImageStore(keras.layers.Layer):
    """Holds up to ``capacity`` images of ``image_shape`` (``image_dtype``: uint8, as the
    project decodes them) in one variable and returns the rows named by a batch of indices.
    ``load`` replaces the rows (one fold's training split) without changing the variable's
    shape, so compiled train steps stay valid."""

    def __init__(self, capacity: int, image_shape: tuple, image_dtype: str = "uint8", **kwargs):
        super().__init__(**kwargs)
        self.capacity, self.image_shape = int(capacity), tuple(image_shape)
        self.image_dtype = np.dtype(image_dtype).name
        self.images = self.add_weight(shape=(self.capacity, *self.image_shape), dtype=self.image_dtype,
                                      initializer="zeros", trainable=False, name="images")

    def load(self, images: np.ndarray) -> None:
        """Put ``images`` in rows ``0..len(images)-1`` (the rest zero)."""
        images = np.asarray(images)
        if images.dtype != self.image_dtype or images.shape[1:] != self.image_shape or len(images) > self.capacity:
            raise ValueError(f"ImageStore holds up to {self.capacity} {self.image_dtype} images of shape "
                             f"{self.image_shape}; got {len(images)} {images.dtype} images of shape {images.shape[1:]}")
        full = np.zeros((self.capacity, *self.image_shape), self.image_dtype)
        full[:len(images)] = images
        self.images.assign(full)

    def call(self, index):
        return ops.take(self.images, ops.cast(index, "int32"), axis=0)

    def compute_output_spec(self, index):
        return keras.KerasTensor((index.shape[0], *self.image_shape), self.image_dtype)


def training_model(model: keras.Model, store: ImageStore) -> keras.Model:
    """Return a model that fits ``model`` (sharing its weights) on images gathered from
    ``store``. Its inputs are ``model``'s with the images replaced by ``"index"`` (B,) int32:
    a single index array for an image classifier, ``{"index", "labels"}`` for a
    ``mixing.training_model``."""
    index = keras.Input((), dtype="int32", name="index")
    images = store(index)
    if len(model.inputs) == 1:
        return keras.Model(index, model(images), name=f"{model.name}_resident")
    others = {t.name: keras.Input(t.shape[1:], dtype=t.dtype, name=t.name)
              for t in model.inputs if t.name != "images"}
    return keras.Model({"index": index, **others}, model({"images": images, **others}),
                       name=f"{model.name}_resident")
