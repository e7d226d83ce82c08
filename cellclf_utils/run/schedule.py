"""How long a planned run takes on N workers (cards), each running one fold of one stage at a
time, as the series is a graph of (stage, fold) jobs: every model stage's folds are independent
once 01 has drawn the folds; pseudo-labelling waits for its teacher, the ensemble for every
stage before it. Jobs start first come, first served in the series' order, as a queue of tasks
on a cluster runs them. A fold on its own worker compiles its training steps itself unless it
starts after the stage's first fold finished compiling: then it loads them from the persistent
compilation cache (``train.device.compile_cache``, JAX: a folder every worker sees), as later
folds on one worker do.
"""
from __future__ import annotations

import heapq
import math

import pandas as pd

from . import graph


def _depends_on(row: str, earlier: list[str]) -> list[str]:
    """Return the rows ``row`` waits for (``graph.waits_for``); 06's row names its teacher:
    '06_pseudo_labelling (03_xception)'."""
    stage, _, teacher = row.partition(" (")
    return graph.waits_for(stage, earlier, teacher.rstrip(")"))


def wall_seconds(table: pd.DataFrame, workers: int) -> float:
    """Return the network seconds the estimated plan ``table`` (``plan.estimate``'s rows: stage,
    folds, seconds, compile_s) takes on ``workers`` workers; NaN when a stage's time is unknown.
    One worker is the local runner (every fold in one kernel, compiled once: the plan's sum).
    Pseudo-labelling's rounds are counted as one round's folds side by side (a lower bound)."""
    if workers < 1:
        raise ValueError(f"--gpus must be at least 1 (got {workers})")
    if table["seconds"].isna().any():
        return math.nan
    if workers == 1:
        return float(table["seconds"].sum())
    free = [0.0] * workers  # when each worker is next free
    heapq.heapify(free)
    done: dict[str, float] = {}
    for r in table.itertuples():
        ready = max((done.get(d, 0.0) for d in _depends_on(r.stage, list(done))), default=0.0)
        folds = int(r.folds) if r.seconds and not pd.isna(r.folds) and int(r.folds) > 0 else 0
        if not folds:
            done[r.stage] = ready
            continue
        compile_s = 0.0 if pd.isna(r.compile_s) else float(r.compile_s)
        job = (float(r.seconds) - compile_s) / folds
        finish, compiled_at = ready, math.inf
        for _ in range(folds):
            start = max(heapq.heappop(free), ready)
            compiled_at = min(compiled_at, start + compile_s)  # the first fold's compile, then cached
            end = start + job + (compile_s if start < compiled_at else 0.0)
            heapq.heappush(free, end)
            finish = max(finish, end)
        done[r.stage] = finish
    return max(done.values(), default=0.0)
