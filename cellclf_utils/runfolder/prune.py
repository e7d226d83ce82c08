"""Fewer fold models kept on disk (the ``keep_models`` parameter): a fine-tuned fold's
``model.keras`` is the bulk of a run (InceptionResNetV2: ~210 MB a fold), and a stage nobody
will predict with needs none. Scores, predictions and figures are kept whatever is chosen."""
from __future__ import annotations

import numpy as np

from . import layout
from .read import StageFolder

KEEP_MODELS = ("all", "best", "none")
_MODEL_FILES = (layout.FOLD_MODEL, layout.FOLD_PIPELINE)


def fold_accuracy(stage: StageFolder) -> dict[int, float]:
    """Return each fold's out-of-fold accuracy, from the stage's oof.csv."""
    oof = stage.oof()
    cols = [c for c in oof.columns if c.startswith("p_")]
    predicted = np.array([c.removeprefix("p_") for c in cols])[oof[cols].to_numpy().argmax(1)]
    right = predicted == oof["label"].astype(str).to_numpy()
    return {int(k): float(right[oof["fold"].to_numpy() == k].mean()) for k in sorted(oof["fold"].unique())}


def prune_models(stage: StageFolder, keep: str) -> list[int]:
    """Delete the fold models ``keep`` does not keep ('best': all but the fold with the highest
    out-of-fold accuracy, the first on a tie; 'none': all, and 02c's feature extractor);
    return the folds whose models remain."""
    if keep not in KEEP_MODELS:
        raise ValueError(f"parameter 'keep_models' must be one of {', '.join(KEEP_MODELS)} (got {keep!r})")
    folds = [f for f in stage.folds() if any((f.dir / name).is_file() for name in _MODEL_FILES)]
    if keep == "all":
        return [f.k for f in folds]
    kept = []
    if keep == "best" and folds:
        acc = fold_accuracy(stage)
        kept = [max((f.k for f in folds), key=lambda k: (acc.get(k, -1.0), -k))]
    for f in folds:
        if f.k not in kept:
            for name in _MODEL_FILES:
                (f.dir / name).unlink(missing_ok=True)
    if keep == "none":
        stage.file(layout.FEATURES_MODEL).unlink(missing_ok=True)
    return kept
