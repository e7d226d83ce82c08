"""The series as a graph of jobs, for an executor that runs them side by side: 01 first; each
trained stage's folds (02-05) as jobs of their own, then the stage's notebook, which loads its
finished folds, scores them, writes the stage's outputs and renders its page (the gather); the
other stages as one job each; 06 after its teachers, a fine-tune with ``distill`` after the
teachers of its own run, 07 after every stage before it.

Finished work is left out: a finished stage has no job (and nothing waits for it), a finished
fold has none (its stage's notebook still gathers it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import stage_parameters
from ..runfolder import layout

FIRST = "01_eda_colour"
PSEUDO = "06_pseudo_labelling"
ENSEMBLE = "07_ensemble"


@dataclass(frozen=True)
class Job:
    """One job: a stage's fold (``fold`` set) or a stage's notebook (``fold`` None); ``needs``
    holds the keys of the jobs it waits for."""
    stage: str
    fold: int | None = None
    needs: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.stage if self.fold is None else f"{self.stage}/{layout.fold_dir(self.fold)}"


def splits_into_folds(stage: str) -> bool:
    """Return whether ``stage`` trains a Keras model per fold (02-05): its folds run as jobs."""
    name = stage.partition(" (")[0]
    return name != PSEUDO and "epochs" in stage_parameters(name)


def waits_for(stage: str, earlier: list[str], teacher: str = "", distill: str = "") -> list[str]:
    """Return the stages of ``earlier`` (those before ``stage`` in the series) that ``stage``
    waits for: 01 (it draws the folds) for every stage; 06 also its teachers (``teacher``, comma
    separated; empty: every trained stage, since the best of them teaches); a stage taking
    ``distill`` the stages of this run it names; 07 everything."""
    if stage == ENSEMBLE:
        return list(earlier)
    out = [FIRST] if FIRST in earlier and stage != FIRST else []
    if stage == PSEUDO:
        named = [t.strip() for t in teacher.split(",") if t.strip()]
        out += [s for s in earlier if s != FIRST and (s in named if named else splits_into_folds(s))]
    if distill and "distill" in stage_parameters(stage):
        named = [t.strip() for t in distill.split(",")]
        out += [s for s in earlier if s in named and s not in out]
    return out


def jobs(stages: list[str], folds: dict[str, int], teacher: str, finished: Callable[[str], bool],
         fold_done: Callable[[str, int], bool], distill: dict[str, str] | None = None) -> list[Job]:
    """Return the jobs of ``stages`` (series order) in an order that puts every job after those
    it needs. ``folds[stage]``: the folds of a trained stage; ``teacher``: 06's parameter;
    ``distill[stage]``: a fine-tuning stage's."""
    out: list[Job] = []
    for i, stage in enumerate(stages):
        if finished(stage):
            continue
        named = (distill or {}).get(stage, "")
        needs = tuple(s for s in waits_for(stage, stages[:i], teacher, named) if not finished(s))
        fold_jobs = [Job(stage, k, needs) for k in range(folds.get(stage, 0))
                     if splits_into_folds(stage) and not fold_done(stage, k)]
        out += fold_jobs
        out.append(Job(stage, None, tuple(j.key for j in fold_jobs) or needs))
    return out
