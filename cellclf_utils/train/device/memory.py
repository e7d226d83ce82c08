"""The batch size for the card: how much accelerator memory training a model takes, estimated.

An estimate, not a measurement: float32 weights, their gradients and optimizer slots, plus
every layer's output for a batch (what the backward pass keeps, and as much again for the
gradients flowing back), in the compute dtype. XLA fuses many of those outputs away, so the
estimate errs high; `benchmarks/throughput.py` prints it beside the card's measured peak.
"""
from __future__ import annotations

import math

import keras

from . import precision

OPTIMIZER_SLOTS = {"sgd": 1, "adam": 2, "adamw": 2}  # float32 slots per trainable weight (momentum; m and v)
ACTIVATION_FACTOR = 2.0  # the outputs kept for the backward pass, and their gradients
FRACTION = 0.85          # of the card's memory: the rest for the framework, cuDNN/XLA workspaces, the image store
AUTO_MAX = 64            # auto never goes above this: bigger batches change training more than they speed it up
AUTO_MIN = 8
CPU_BATCH = 32           # auto where no accelerator memory is known (a CPU): the profiles' batch size
GIB = 2 ** 30


def _leaf_layers(layer):
    """Yield the layers that compute (nested models are walked into, not counted themselves)."""
    inner = getattr(layer, "layers", None)
    if inner is None:
        yield layer
        return
    for sub in inner:
        yield from _leaf_layers(sub)


def activation_elements(model: keras.Model) -> int:
    """Return the number of values all of ``model``'s layers output for one image (inputs included)."""
    total = 0
    for layer in _leaf_layers(model):
        # every call of the layer in the graph (layer.output raises for a layer called twice)
        for node in getattr(layer, "_inbound_nodes", []):
            for t in node.output_tensors:
                total += math.prod(d for d in t.shape[1:] if d is not None)
    return total


def training_bytes(model: keras.Model, batch_size: int, optimizer: str = "sgd") -> dict:
    """Return the estimated bytes of training ``model`` on batches of ``batch_size``: weights,
    gradients and optimizer slots (float32), the best epoch's copy of the weights that
    train.BestEpoch keeps beside them, activations (compute dtype) and their total."""
    n_all = sum(math.prod(w.shape) for w in model.weights)
    n_train = sum(math.prod(w.shape) for w in model.trainable_weights)
    compute = model.dtype_policy.compute_dtype
    act_bytes = 2 if compute in ("bfloat16", "float16") else 4
    parts = {"weights": 4 * n_all, "best_weights": 4 * n_all,
             "gradients_and_optimizer": 4 * n_train * (1 + OPTIMIZER_SLOTS.get(optimizer, 2)),
             "activations": int(batch_size * activation_elements(model) * act_bytes * ACTIVATION_FACTOR)}
    return {**parts, "total": sum(parts.values())}


def device_bytes() -> int | None:
    """Return the accelerator's memory in bytes as the Keras backend reports it; None on a CPU,
    or under TensorFlow (which reports what is in use, not what there is)."""
    if precision.accelerator() is None:
        return None
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        return (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
    if backend == "torch":
        import torch
        return torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None
    return None


def choose_batch_size(requested: int, model: keras.Model, optimizer: str, memory: int | None) -> tuple[int, str]:
    """Return ``(batch size, what to print)``. ``requested`` > 0 is kept (with a warning when its
    estimate exceeds the card); 0 means auto: the largest power of two from AUTO_MIN to AUTO_MAX
    whose estimate fits in FRACTION of ``memory``, or CPU_BATCH where ``memory`` is None."""
    def need(bs):
        return training_bytes(model, bs, optimizer)["total"]

    if requested > 0:
        if memory and need(requested) > FRACTION * memory:
            return requested, (f"warning: batch_size {requested} may not fit: training needs about "
                               f"{need(requested) / GIB:.1f} GiB (estimate), the accelerator has {memory / GIB:.1f} GiB; "
                               f"if it runs out of memory, use -p batch_size 0 (the largest that fits) or a smaller one")
        return requested, ""
    if not memory:
        return CPU_BATCH, f"batch_size auto: {CPU_BATCH} (no accelerator memory known)"
    bs = AUTO_MAX
    while bs > AUTO_MIN and need(bs) > FRACTION * memory:
        bs //= 2
    note = "" if need(bs) <= FRACTION * memory else " (even this may not fit: try a smaller image_size)"
    return bs, (f"batch_size auto: {bs}, training needs about {need(bs) / GIB:.1f} GiB (estimate) of the "
                f"accelerator's {memory / GIB:.1f} GiB{note}")
