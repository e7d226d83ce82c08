"""A stage's folder as its notebook writes it: ``params.json`` at the start, outputs and figures
along the way, ``metrics.json`` last (the stage is then finished). A finished stage is never
written again: rerun under a new run id, or let ``cellclf run --resume`` skip it."""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import yaml

from .. import paths
from ..atomic import atomic_write, write_csv, write_json
from ..config import validate
from ..model import backbones
from ..report import plots
from ..runfolder import StageFolder, layout, lock, prune


class StageFinishedError(RuntimeError):
    """Raised instead of overwriting a finished stage."""


def new_run_id(profile: str = "") -> str:
    """Return a fresh run id: ``<profile>-YYYYmmdd-HHMMSS`` (no profile: the timestamp only)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{profile}-{stamp}" if profile else stamp


def refuse_finished(stage: StageFolder) -> None:
    """Raise StageFinishedError when ``stage`` is finished, or its metrics.json is damaged."""
    state, why = stage.status()
    if state == "finished":
        raise StageFinishedError(
            f"stage {stage.name} of run {stage.dir.parent.name} is already finished ({stage.file(layout.METRICS)}); "
            "finished work is never overwritten: pass a new run_id, or use `cellclf run --resume` to skip it")
    if state == "damaged":
        raise StageFinishedError(f"stage {stage.name} is not counted as finished: {why}")


class Stage:
    """One notebook's folder in a run: params.json at the start, metrics.json at the end."""

    def __init__(self, name: str, params: dict, run_dir: Path):
        self.name, self.params, self.run_dir = name, params, Path(run_dir)
        self.dir = self.run_dir / name
        self.figures: list[dict] = []
        self.started = time.time()
        self.lock: lock.RunLock | None = None  # held while a notebook run by hand writes the run

    @classmethod
    def open(cls, name: str, params: dict) -> "Stage":
        """Return the stage folder for ``params['run_id']`` (a new id when empty), created and
        holding params.json; raises StageFinishedError if that stage is finished."""
        params = dict(params)
        if not params.get("run_id"):
            params["run_id"] = new_run_id(params.get("profile", ""))
        run_dir = paths.runs_dir() / params["run_id"]
        stage = cls(name, params, run_dir)
        # by hand (not under `cellclf run`, which holds the run's lock): this kernel holds it
        stage.lock = None if lock.held_by_parent(run_dir) else lock.acquire(run_dir, f"notebook {name}")
        try:
            refuse_finished(StageFolder(stage.dir))
        except StageFinishedError:
            stage.release()
            raise
        stage.dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / layout.PARAMS_YAML).exists():
            atomic_write(run_dir / layout.PARAMS_YAML, yaml.safe_dump(params, sort_keys=True))
        write_json(stage.dir / layout.STAGE_PARAMS, params)
        print(f"run {params['run_id']} · stage {name} → {stage.dir}")
        return stage

    def path(self, rel: str) -> Path:
        return self.dir / rel

    def write_csv(self, rel: str, df: pd.DataFrame) -> Path:
        return write_csv(self.dir / rel, df)

    def write_json(self, rel: str, obj) -> Path:
        return write_json(self.dir / rel, obj)

    def figure(self, fig, name: str, caption: str) -> None:
        """Save ``fig`` as figures/<name>.png for the report, then show it once in the notebook."""
        rel = layout.figure(name)
        plots.save(fig, self.dir / rel)
        self.figures = [f for f in self.figures if f["path"] != rel] + [{"path": rel, "caption": caption}]
        try:
            from IPython.display import display
            display(fig)
        except ImportError:  # outside IPython (a script): saved, not shown
            pass
        plt.close(fig)

    def release(self) -> None:
        """Let go of the run's lock, if this stage took it (a notebook run by hand)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def finish(self, metrics: dict) -> Path:
        """Write metrics.json (stage, figures, elapsed time added): the stage is then finished.
        A stage with ``keep_models`` first deletes the fold models it does not keep, and records
        the folds whose models remain (``models_kept``)."""
        if "keep_models" in self.params:
            metrics = {**metrics, "models_kept": prune.prune_models(StageFolder(self.dir), self.params["keep_models"])}
        out = {"stage": self.name, "run_id": self.params["run_id"], **metrics,
               "figures": self.figures, "elapsed_s": round(time.time() - self.started, 1),
               "finished_at": datetime.now().isoformat(timespec="seconds")}
        path = write_json(self.dir / layout.METRICS, out)
        self.release()
        print(f"stage {self.name} finished → {path}")
        return path


def resolve_auto_weights(P: dict) -> dict:
    """Return ``P`` with ``weights auto`` resolved to what the stage will use (imagenet or none),
    the reason in ``weights_note``; other values as they are. Resolved once, before params.json
    and the folds' signatures, so a resumed fold never mixes the two."""
    if P.get("weights") != "auto":
        return P
    chosen, note = backbones.choose_weights(P["backbone"], P["image_size"])
    print(note)
    return {**P, "weights": chosen, "weights_note": note}


def start(stage: str, namespace: dict) -> tuple[Stage, dict]:
    """Return ``(stage folder, validated parameters)`` for a notebook's globals()."""
    P = resolve_auto_weights(validate(stage, namespace))
    return Stage.open(stage, P), P
