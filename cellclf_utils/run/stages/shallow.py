"""Stage 02c's own step: the frozen backbone's feature extractor, in the dtype policy for the
machine and at the stage's batch size (auto: the CPU batch; inference needs far less memory
than training)."""
from __future__ import annotations

from pathlib import Path

import keras

from ...runfolder import layout
from ...shallow import probe
from ...train.device import memory, precision
from .models import weights_path


def probe_featurizer(P: dict, save_to: Path | None = None) -> probe.Featurizer:
    """Return 02c's featurizer: the frozen backbone's pooled features (with colour histograms
    when ``colour``), computed in bf16 on an accelerator and float32 on a CPU. The seed fixes the
    backbone's weights where they are random (``weights none``), so a rerun gives the same features.
    ``save_to``: a stage folder, which gets the extractor as ``features.keras`` (for predict)."""
    precision.auto()
    keras.utils.set_random_seed(P["seed"])
    featurize = probe.featurizer(P["backbone"], P["image_size"], weights_path(P["weights"]), P["pooling"],
                                 P["batch_size"] or memory.CPU_BATCH, colour=P["colour"])
    if save_to is not None:
        featurize.model.save(Path(save_to) / layout.FEATURES_MODEL)
    return featurize
