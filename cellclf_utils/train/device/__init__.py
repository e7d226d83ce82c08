"""The device side of training: the dtype policy (bf16 on an accelerator), the batch size that
fits the card's memory, training images resident on the device, and XLA's persistent compile
cache under JAX.

Entry points: ``precision.auto``, ``memory.choose_batch_size`` / ``device_bytes``,
``resident.ImageStore`` / ``training_model``, ``compile_cache.enable`` / ``stats``.
"""
from . import compile_cache, memory, precision, resident

__all__ = ["compile_cache", "memory", "precision", "resident"]
