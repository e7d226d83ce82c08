"""A finished stage's saved models, loaded to classify new images as the stage classified its
own test images: the mean over its fold models, each with the stage's test-time augmentation.

Three kinds: ``keras`` (02-05, and 06's student: ``fold<k>/model.keras``), ``features`` (02b and
02c: a scikit-learn pipeline per fold on HOG + colour or on the frozen ``features.keras``), and
``ensemble`` (07: its ``combiner.json`` over the member stages' own predictions).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from ..data import cache
from ..model import tta as tta_mod
from ..runfolder import Fold, Run, StageFolder, layout
from ..shallow import model_files
from ..shallow.classifiers import mean_proba
from ..shallow.cv import view_features
from ..shallow.features import hog_and_colour
from ..shallow.probe import Featurizer
from ..train.device import memory
from . import combiner as combiner_mod


class PredictError(ValueError):
    """A stage that cannot classify new images; the message says why and what to do."""


@dataclass
class StageModel:
    run: Run
    name: str
    kind: str                   # keras | features | ensemble
    classes: list[str]
    feed: dict                  # the parameters that fed it in training: image_size, resize, tta, ... (07: its own)
    folds: list[Fold] = field(default_factory=list)
    members: list["StageModel"] = field(default_factory=list)        # ensemble
    combiner: combiner_mod.Combiner | None = None                     # ensemble

    @property
    def metrics(self) -> dict:
        return self.run.stage(self.name).metrics()


def _finished(run: Run, name: str) -> StageFolder:
    stage = run.stage(name)
    state, why = stage.status()
    if state != "finished":
        done = ", ".join(s.name for s in run.finished()) or "none"
        raise PredictError(f"stage {name} of run {run.id} is {'not finished' if not why else why}; "
                           f"finished stages: {done}")
    return stage


def _fold_kind(run: Run, name: str, folds: list[Fold], kept) -> str:
    if kept == []:
        raise PredictError(f"stage {name} of run {run.id} kept no fold models (keep_models none): its scores are "
                           "in the report; to predict with it, rerun it under a new run id with keep_models all")
    if folds and all(f.model.is_file() for f in folds):
        return "keras"
    if folds and all(f.pipeline.is_file() for f in folds):
        return "features"
    raise PredictError(f"stage {name} of run {run.id} holds no saved fold models ({layout.FOLD_MODEL} or "
                       f"{layout.FOLD_PIPELINE} per fold): it was trained before stages saved their models; "
                       "rerun it under a new run id")


def _open_member(run: Run, label: str, sources: dict) -> StageModel:
    """Return an ensemble member's models: a stage of ``run``, or of another run (``sources``)."""
    if label not in sources:
        return open_stage(run, label)
    folder = Path(sources[label])
    if not folder.is_dir():
        raise PredictError(f"ensemble member {label} of run {run.id} was {folder}, which is gone; "
                           "an ensemble of other runs' stages needs those runs in place")
    return open_stage(Run(folder.parent), folder.name)


def open_stage(run: Run, name: str) -> StageModel:
    """Return the saved models of finished stage ``name`` of ``run``."""
    stage = _finished(run, name)
    m = stage.metrics()
    if m.get("kind") == "ensemble":
        comb = combiner_mod.load(stage)
        members = [_open_member(run, s, comb.sources) for s in ([comb.member] if comb.member else comb.members)]
        return StageModel(run, name, "ensemble", list(m["classes"]), stage.params(), members=members, combiner=comb)
    if m.get("kind") != "model":
        raise PredictError(f"stage {name} of run {run.id} trains no model ({m.get('kind')}); name a model stage "
                           "or the ensemble")
    student = m.get("student")  # 06: the student's folds, fed like its teacher
    folds_at = stage.sub(*student["folds"].split("/")) if student else stage
    feed = run.stage(student["params_of"]).params() if student else stage.params()
    kept = m.get("models_kept")  # keep_models best/none: only those folds' models are on disk
    folds = [f for f in folds_at.folds() if kept is None or f.k in kept]
    return StageModel(run, name, _fold_kind(run, name, folds, kept), list(m["classes"]), feed, folds)


def images_for(sm: StageModel, paths, progress: bool = True) -> np.ndarray:
    """Return the image files as (N, S, S, 3) uint8, at the size and resize policy the stage trained on."""
    size = sm.feed["image_size"]
    return cache.load_many(list(paths), size, sm.feed.get("resize", "pad"), progress, f"{sm.name}: images")


def _keras_proba(sm: StageModel, x: np.ndarray, tta: bool, progress: bool) -> np.ndarray:
    out = []
    for fold in tqdm(sm.folds, desc=f"{sm.name}: fold models", disable=not progress, leave=False):
        batch_size = fold.done().get("batch_size") or sm.feed.get("batch_size") or memory.CPU_BATCH
        out.append(tta_mod.predict_proba(keras.saving.load_model(fold.model), x, batch_size, tta))
    return np.mean(out, axis=0)


def _features_proba(sm: StageModel, x: np.ndarray, tta: bool, progress: bool) -> np.ndarray:
    extractor = sm.run.stage(sm.name).file(layout.FEATURES_MODEL)
    featurize = hog_and_colour
    if extractor.is_file():  # 02c: the frozen backbone it saved, at its batch size
        featurize = Featurizer(keras.saving.load_model(extractor), sm.feed.get("batch_size") or memory.CPU_BATCH,
                               bool(sm.feed.get("colour")))
    feats = view_features(featurize, x, tta_mod.VIEWS if tta else 1, sm.name, progress)
    pipelines = [model_files.load(f.pipeline) for f in sm.folds]
    return np.mean([mean_proba(p, feats, len(sm.classes)) for p in pipelines], axis=0)


def predict_proba(sm: StageModel, paths, tta: bool | None = None, progress: bool = True) -> np.ndarray:
    """Return (N, C) class probabilities of the image files ``paths``, in order. ``tta``: the
    stage's own setting when None (an ensemble's members each keep theirs)."""
    if sm.kind == "ensemble":
        proba = np.stack([predict_proba(m, paths, tta, progress) for m in sm.members])
        return proba[0] if sm.combiner.member else sm.combiner.apply(proba)
    use_tta = bool(sm.feed.get("tta")) if tta is None else tta
    x = images_for(sm, paths, progress)
    fn = _keras_proba if sm.kind == "keras" else _features_proba
    return fn(sm, x, use_tta, progress)
