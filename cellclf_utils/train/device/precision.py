"""Mixed precision where it pays: bfloat16 compute on an accelerator, float32 on a CPU."""
from __future__ import annotations

import os

import keras


def accelerator() -> str | None:
    """Return 'gpu' or 'tpu' when the Keras backend sees one, else None."""
    if keras.backend.backend() == "torch":  # Keras has no distribution API for torch
        import torch
        return "gpu" if torch.cuda.is_available() else None
    try:
        kinds = {d.split(":")[0].lower() for d in keras.distribution.list_devices()}
    except (NotImplementedError, RuntimeError):  # a backend without the distribution API
        return None
    return "tpu" if "tpu" in kinds else "gpu" if kinds & {"gpu", "cuda", "rocm"} else None


def auto() -> str:
    """Set and return Keras' global dtype policy: CELLCLF_PRECISION if set (e.g. float32,
    mixed_bfloat16), else mixed_bfloat16 on a GPU/TPU and float32 on a CPU (bfloat16 is
    slower than float32 on most CPUs). Models keep a float32 softmax either way."""
    policy = os.environ.get("CELLCLF_PRECISION") or ("mixed_bfloat16" if accelerator() else "float32")
    try:
        keras.mixed_precision.set_global_policy(policy)
    except ValueError as e:
        raise ValueError(f"CELLCLF_PRECISION={policy!r} is not a Keras dtype policy "
                         "(use float32, mixed_bfloat16 or mixed_float16)") from e
    return policy
