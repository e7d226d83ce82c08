"""``cellclf predict``: classify new images with a run's stage, ``auto`` being the model the run
recommends (what 07 submitted, else the stage with the best out-of-fold accuracy)."""
from __future__ import annotations

import pandas as pd

from ..runfolder import Run
from .saved import PredictError, StageModel


def choose(run: Run, stage: str = "auto") -> str:
    """Return the stage folder to predict with: ``stage``, or for ``auto`` the finished ensemble
    (07), else the finished model stage with the best out-of-fold accuracy."""
    if stage != "auto":
        return stage
    ensembles = run.finished("ensemble")
    if ensembles:
        return ensembles[-1].name
    scored = [(s.metrics().get("cv", {}).get("accuracy", -1), s.name) for s in run.finished("model")]
    if not scored:
        raise PredictError(f"run {run.id} has no finished model stage to predict with")
    return max(scored, key=lambda t: t[0])[1]  # first of equals: max keeps the first


def describe(sm: StageModel) -> str:
    """Return one line naming the model used and its out-of-fold accuracy with its 95% interval."""
    m = sm.metrics
    cv = m.get("cv") or {}
    lo, hi = cv.get("accuracy_ci") or (float("nan"),) * 2
    folds = m.get("folds", "?")
    kept = "" if len(sm.folds) in (0, folds) else f" (the model of fold {', '.join(str(f.k) for f in sm.folds)} only: keep_models)"
    return (f"{sm.run.id}/{sm.name}: {m.get('model') or sm.name}; out-of-fold accuracy {cv.get('accuracy', float('nan')):.1%} "
            f"[95% CI {lo:.1%}–{hi:.1%}] on {cv.get('n', '?')} images, {folds} folds{kept}")


def table(ids: list[str], proba, classes: list[str]) -> pd.DataFrame:
    """Return ``id,label,p_<class>...``: one row per image, its most probable class first."""
    return pd.DataFrame({"id": ids, "label": [classes[i] for i in proba.argmax(1)],
                         **{f"p_{c}": proba[:, i] for i, c in enumerate(classes)}})

