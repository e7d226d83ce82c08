"""Stage 02c's own step: the frozen backbone's feature extractor, in the dtype policy for the
machine and at the stage's batch size (auto: the CPU batch; inference needs far less memory
than training)."""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np

from ...shallow import probe
from ...train.device import memory, precision
from .models import weights_path


def probe_featurizer(P: dict) -> Callable[[np.ndarray], np.ndarray]:
    """Return 02c's ``featurize(x)``: the frozen backbone's pooled features (with colour histograms
    when ``colour``), computed in bf16 on an accelerator and float32 on a CPU. The seed fixes the
    backbone's weights where they are random (``weights none``), so a rerun gives the same features."""
    precision.auto()
    keras.utils.set_random_seed(P["seed"])
    return probe.featurizer(P["backbone"], P["image_size"], weights_path(P["weights"]), P["pooling"],
                            P["batch_size"] or memory.CPU_BATCH, colour=P["colour"])
