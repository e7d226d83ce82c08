"""The networks: the write-up's small CNN, ImageNet backbones from keras.applications with the
write-up's freeze policies, training-time augmentation layers, MixUp/CutMix, and batched
prediction with test-time augmentation.

Entry points: ``cnn.baseline_cnn``, ``backbones.build`` / ``backbones.REGISTRY``,
``augment.pipeline`` / ``augment.PRESETS``, ``mixing.training_model``, ``tta.predict_proba``,
``batching`` (whole batches: the counts training, prediction and the plan share).
"""
from . import augment, backbones, batching, cnn, mixing, tta

__all__ = ["augment", "backbones", "batching", "cnn", "mixing", "tta"]
