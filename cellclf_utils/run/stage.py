"""The run directory contract: runs/<run_id>/<stage>/ with atomic writes and no overwrites.

A stage is finished when its ``metrics.json`` exists (written last). A finished stage is
never written again: rerun under a new run id, or let ``cellclf run --resume`` skip it.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .. import paths

METRICS = "metrics.json"
_UMASK = os.umask(0)
os.umask(_UMASK)


class StageFinishedError(RuntimeError):
    """Raised instead of overwriting a finished stage."""


def atomic_write(path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temp file and a rename; return the path.

    A run killed mid-write leaves the old file (or none), never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; runs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if np.isnan(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _no_nan(o):
    if isinstance(o, dict):
        return {k: _no_nan(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_no_nan(v) for v in o]
    if isinstance(o, float) and o != o:
        return None  # JSON has no NaN; null reads as "not available"
    return o


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON (numpy values converted, NaN as null), atomically."""
    text = json.dumps(_no_nan(json.loads(json.dumps(obj, default=_jsonable))), indent=2, allow_nan=False)
    return atomic_write(path, text + "\n")


def write_csv(path, df: pd.DataFrame) -> Path:
    """Write ``df`` as CSV without its index, atomically."""
    return atomic_write(path, df.to_csv(index=False, float_format="%.6g"))


def new_run_id(profile: str = "") -> str:
    """Return a fresh run id: ``<profile>-YYYYmmdd-HHMMSS`` (no profile: the timestamp only)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{profile}-{stamp}" if profile else stamp


def is_finished(stage_dir) -> bool:
    return (Path(stage_dir) / METRICS).is_file()


def finished_error(stage_dir) -> StageFinishedError:
    stage_dir = Path(stage_dir)
    return StageFinishedError(
        f"stage {stage_dir.name} of run {stage_dir.parent.name} is already finished ({stage_dir / METRICS}); "
        "finished work is never overwritten: pass a new run_id, or use `cellclf run --resume` to skip it")


class Stage:
    """One notebook's folder in a run: params.json at the start, metrics.json at the end."""

    def __init__(self, name: str, params: dict, run_dir: Path):
        self.name, self.params, self.run_dir = name, params, Path(run_dir)
        self.dir = self.run_dir / name
        self.figures: list[dict] = []
        self.started = time.time()

    @classmethod
    def open(cls, name: str, params: dict) -> "Stage":
        """Return the stage folder for ``params['run_id']`` (a new id when empty), created and
        holding params.json; raises StageFinishedError if that stage is finished."""
        params = dict(params)
        if not params.get("run_id"):
            params["run_id"] = new_run_id(params.get("profile", ""))
        run_dir = paths.runs_dir() / params["run_id"]
        stage = cls(name, params, run_dir)
        if is_finished(stage.dir):
            raise finished_error(stage.dir)
        stage.dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / "params.yaml").exists():
            atomic_write(run_dir / "params.yaml", yaml.safe_dump(params, sort_keys=True))
        write_json(stage.dir / "params.json", params)
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
        import matplotlib.pyplot as plt

        from ..report import plots

        rel = f"figures/{name}.png"
        plots.save(fig, self.dir / rel)
        self.figures = [f for f in self.figures if f["path"] != rel] + [{"path": rel, "caption": caption}]
        try:
            from IPython.display import display
            display(fig)
        except ImportError:
            pass
        plt.close(fig)

    def finish(self, metrics: dict) -> Path:
        """Write metrics.json (stage, figures, elapsed time added): the stage is then finished."""
        out = {"stage": self.name, "run_id": self.params["run_id"], **metrics,
               "figures": self.figures, "elapsed_s": round(time.time() - self.started, 1),
               "finished_at": datetime.now().isoformat(timespec="seconds")}
        path = write_json(self.dir / METRICS, out)
        print(f"stage {self.name} finished → {path}")
        return path
