"""The stages an ensemble combines: stages of its own run, named by folder, or finished stages
of other runs, named by path (``runs/<run_id>/<stage>``). Members from other runs must have
been cross-validated on the same folds (the same ids in the same folds of ``folds.csv``):
otherwise one member's out-of-fold predictions would come from models that saw images of
another's validation fold, and the nested scores would be optimistic."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import paths
from ..runfolder import Run, StageFolder


@dataclass(frozen=True)
class Member:
    label: str           # how tables name it: the stage folder, or <run_id>/<stage> for another run's
    stage: StageFolder
    run: Run

    @property
    def foreign(self) -> bool:
        """Whether the member is a stage of another run than the ensemble's."""
        return "/" in self.label


def resolve(run: Run, spec: str) -> Member:
    """Return the member ``spec`` names: a stage folder of ``run``, or a path to another run's
    stage (from the working directory, else the checkout)."""
    if "/" not in spec and "\\" not in spec:
        return Member(spec, run.stage(spec), run)
    path = paths.resolve(spec)
    if not path.is_dir():
        raise ValueError(f"ensemble member {spec!r}: no stage folder {path} (name a stage of this run, or "
                         "another run's stage as runs/<run_id>/<stage>)")
    if path.parent.resolve() == run.dir.resolve():
        return Member(path.name, run.stage(path.name), run)
    other = Run(path.parent)
    return Member(f"{other.id}/{path.name}", StageFolder(path), other)


def _first_difference(a: pd.DataFrame, b: pd.DataFrame) -> str | None:
    """Return how fold tables ``a`` and ``b`` (id, fold) first differ, or None when they agree."""
    only_a, only_b = sorted(set(a.id) - set(b.id)), sorted(set(b.id) - set(a.id))
    if only_a or only_b:
        which, image = ("the first", only_a[0]) if only_a else ("the second", only_b[0])
        return f"image {image!r} is only in {which}"
    both = a.merge(b, on="id", suffixes=("_a", "_b"))
    differ = both[both.fold_a != both.fold_b]
    if len(differ):
        r = differ.iloc[0]
        return f"image {r.id!r} is in fold {r.fold_a} of the first and fold {r.fold_b} of the second"
    return None


def same_folds(run: Run, members: list[Member]) -> pd.DataFrame | None:
    """Return the folds the members were scored on (``run``'s own when it has them); ValueError
    naming the first image whose fold differs between two of the runs involved."""
    runs = {m.run.dir.resolve(): m.run for m in members if m.foreign}
    if not runs:
        return run.folds()
    tables = [(r, r.folds()) for r in ([run] if run.folds() is not None else []) + list(runs.values())]
    for r, folds in tables:
        if folds is None:
            raise ValueError(f"run {r.id} has no folds.csv: its stages cannot be checked against the others' folds")
    (first, ref), rest = tables[0], tables[1:]
    for r, folds in rest:
        why = _first_difference(ref[["id", "fold"]], folds[["id", "fold"]])
        if why:
            raise ValueError(f"ensemble members were cross-validated on different folds: {first.dir / 'folds.csv'} "
                             f"(first) and {r.dir / 'folds.csv'} (second): {why}; combine stages trained on the "
                             "same folds.csv (train them in one run, or start the runs from one folds.csv)")
    return ref


def sources(members: list[Member]) -> dict[str, str]:
    """Return label -> absolute stage folder of the members from other runs (for predict)."""
    return {m.label: str(Path(m.stage.dir).resolve()) for m in members if m.foreign}
