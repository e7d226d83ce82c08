"""Fold-level resume: a finished fold (``fold<k>/done.json``) is loaded, not retrained, when it
was trained with the same parameters (its signature); one trained with others is an error,
never overwritten."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ..atomic import write_csv, write_json, write_npz
from ..folds import FoldResult
from ..runfolder import Fold, layout

# values that do not change what a fold computes, so they may differ on resume
_NOT_IN_SIGNATURE = ("run_id", "profile", "data_dir", "gradcam", "keep_models", "weights_note")
# parameters added after runs existed: at their default they are left out of the signature,
# so folds finished before the parameter existed still resume
_ADDED_LATER = {"head_init": "random", "freeze_bn": False, "patience": 0, "ema": 0.0, "swa_epochs": 0,
                "backbone_lr": 1.0, "distill": "", "distill_weight": 0.5}


class ResumeMismatchError(RuntimeError):
    """A fold folder holds results computed with other parameters."""


def signature(params: dict) -> str:
    """Return a short hash of the parameters that determine a fold's result."""
    keep = {k: v for k, v in sorted(params.items())
            if k not in _NOT_IN_SIGNATURE and not (k in _ADDED_LATER and v == _ADDED_LATER[k])}
    return hashlib.sha1(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def load_finished(fold_dir: Path, sig: str) -> FoldResult | None:
    """Return the finished fold in ``fold_dir`` (None when it is not finished); raise
    ResumeMismatchError when it was trained with other parameters."""
    fold = Fold(Path(fold_dir))
    if not fold.is_done:
        return None
    info = fold.done()
    if info.get("signature") != sig:
        raise ResumeMismatchError(
            f"{fold.dir} was trained with other parameters (signature {info.get('signature')} vs {sig}); "
            "finished work is not overwritten: use a new run_id")
    saved = fold.preds()
    return FoldResult(saved["val"], saved["val_plain"], saved.get("test"), {**info, "resumed": True}, fold.history())


def save(fold_dir: Path, model: keras.Model, val_idx, result: FoldResult) -> FoldResult:
    """Write the fold's model (``model.keras``: architecture and weights, for inference), its
    predictions and history, then done.json (last: the fold counts as finished only now);
    return ``result``."""
    fold_dir = Path(fold_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    model.save(fold_dir / layout.FOLD_MODEL)
    arrays = {"val_idx": np.asarray(val_idx), "val": result.val_proba, "val_plain": result.val_plain}
    if result.test_proba is not None:
        arrays["test"] = result.test_proba
    write_npz(fold_dir / layout.FOLD_PREDS, **arrays)
    write_csv(fold_dir / layout.FOLD_HISTORY, result.history if len(result.history) else pd.DataFrame())
    write_json(fold_dir / layout.FOLD_DONE, {k: v for k, v in result.record.items() if k != "resumed"})
    return result
