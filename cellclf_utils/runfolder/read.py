"""Reading a run folder: ``open_run(path)`` gives a ``Run``, its ``StageFolder``s and their
``Fold``s. Every reader names the file it could not read and why (``RunFolderError``), and a
stage counts as finished only when its metrics.json is there and holds a JSON object."""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import yamltext
from . import layout

_RERUN = "rerun the stage under a new run id, or delete the damaged file and continue with --resume"


class RunFolderError(ValueError):
    """A run-folder file that is missing or cannot be read; the message names it and why."""


def read_json(path: Path) -> dict:
    """Return the JSON object in ``path``; RunFolderError naming the file when it is missing,
    cut or not an object."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunFolderError(f"{path} is unreadable ({e}); {_RERUN}") from None
    if not isinstance(obj, dict):
        raise RunFolderError(f"{path} does not hold a JSON object; {_RERUN}")
    return obj


def read_yaml(path: Path) -> dict:
    """Return the YAML mapping in ``path`` ({} for an empty file)."""
    try:
        obj = yamltext.safe_load(Path(path).read_text(encoding="utf-8"), str(path)) or {}
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing") from None
    except yamltext.YAMLTextError as e:
        raise RunFolderError(f"{e}; {_RERUN}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{path} is unreadable ({e}); {_RERUN}") from None
    if not isinstance(obj, dict):
        raise RunFolderError(f"{path} does not hold a mapping of parameters")
    return obj


def read_csv(path: Path, columns=(), id_column: bool = True) -> pd.DataFrame:
    """Return the CSV at ``path`` (ids read as text); RunFolderError when it is missing, cut or
    lacks one of ``columns``."""
    try:
        df = pd.read_csv(path, dtype={"id": str} if id_column else None)
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:  # pandas' parser errors are ValueErrors
        raise RunFolderError(f"{path} is unreadable ({e}); {_RERUN}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise RunFolderError(f"{path} lacks column(s) {', '.join(missing)} (has {', '.join(df.columns)}); {_RERUN}")
    return df


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Return the arrays of the .npz at ``path``, loaded."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise RunFolderError(f"{path} is missing") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise RunFolderError(f"{path} is unreadable ({e}); {_RERUN}") from None


@dataclass(frozen=True)
class Fold:
    """One fold folder of a trained stage (``fold<k>/``)."""

    dir: Path

    @property
    def k(self) -> int:
        return int(self.dir.name.removeprefix("fold"))

    @property
    def model(self) -> Path:
        """The fold's saved Keras model (``model.keras``)."""
        return self.dir / layout.FOLD_MODEL

    @property
    def pipeline(self) -> Path:
        """The fold's saved scikit-learn pipeline (``model.skops``)."""
        return self.dir / layout.FOLD_PIPELINE

    @property
    def is_done(self) -> bool:
        return (self.dir / layout.FOLD_DONE).is_file()

    def done(self) -> dict:
        """Return done.json (RunFolderError when missing or unreadable)."""
        return read_json(self.dir / layout.FOLD_DONE)

    def preds(self) -> dict[str, np.ndarray]:
        """Return preds.npz: val_idx, val, val_plain and, when the stage predicted test images, test."""
        return read_npz(self.dir / layout.FOLD_PREDS)

    def history(self) -> pd.DataFrame:
        return read_csv(self.dir / layout.FOLD_HISTORY, id_column=False)


@dataclass(frozen=True)
class StageFolder:
    """One stage's folder (``<run>/<stage>/``), or a sub-folder laid out like one (06's
    ``<teacher>/round<r>/``)."""

    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    def file(self, name: str) -> Path:
        return self.dir / name

    def status(self) -> tuple[str, str]:
        """Return ``(state, why)``: ('finished', ''), ('unfinished', '') when metrics.json is not
        there yet, or ('damaged', reason) when it is there but unreadable: a damaged stage is
        not finished, and is never silently rerun over."""
        path = self.dir / layout.METRICS
        if not path.is_file():
            return "unfinished", ""
        try:
            read_json(path)
        except RunFolderError as e:
            return "damaged", str(e)
        return "finished", ""

    @property
    def is_finished(self) -> bool:
        return self.status()[0] == "finished"

    def metrics(self) -> dict:
        """Return metrics.json (RunFolderError when missing or unreadable)."""
        return read_json(self.dir / layout.METRICS)

    def params(self) -> dict:
        """Return params.json, the stage's validated parameters."""
        return read_json(self.dir / layout.STAGE_PARAMS)

    def oof(self) -> pd.DataFrame:
        return read_csv(self.dir / layout.OOF, ("id", "fold", "label"))

    def test(self) -> pd.DataFrame | None:
        """Return test.csv, or None when the stage predicted no test images."""
        path = self.dir / layout.TEST
        return read_csv(path, ("id",)) if path.is_file() else None

    def fold_times(self) -> pd.DataFrame | None:
        path = self.dir / layout.FOLD_TIMES
        return read_csv(path, id_column=False) if path.is_file() else None

    def folds(self) -> list[Fold]:
        """Return the stage's fold folders in fold order."""
        found = [Fold(d) for d in self.dir.glob("fold*") if d.is_dir() and d.name[4:].isdigit()]
        return sorted(found, key=lambda f: f.k)

    def fold(self, k: int) -> Fold:
        return Fold(self.dir / layout.fold_dir(k))

    def sub(self, *parts: str) -> "StageFolder":
        """Return a folder inside this one laid out like a stage (06: ``sub(teacher, 'round1')``)."""
        return StageFolder(self.dir.joinpath(*parts))


@dataclass(frozen=True)
class Run:
    """A run folder (``runs/<run_id>/``)."""

    dir: Path

    @property
    def id(self) -> str:
        return self.dir.name

    def params(self) -> dict:
        """Return params.yaml ({} when the run has none: a stage run by hand writes it first)."""
        path = self.dir / layout.PARAMS_YAML
        return read_yaml(path) if path.is_file() else {}

    def folds(self) -> pd.DataFrame | None:
        """Return folds.csv (None before any stage drew the folds)."""
        path = self.dir / layout.FOLDS_CSV
        return read_csv(path, layout.FOLDS_COLUMNS) if path.is_file() else None

    def stages(self) -> list[StageFolder]:
        """Return every stage folder (visible sub-folders), in name order: the series' order."""
        return [StageFolder(p) for p in sorted(self.dir.iterdir())
                if p.is_dir() and not p.name.startswith((".", "_"))]

    def stage(self, name: str) -> StageFolder:
        return StageFolder(self.dir / name)

    def finished(self, kind: str | None = None) -> list[StageFolder]:
        """Return the finished stages (of metrics ``kind``, e.g. 'model', when given)."""
        return [s for s in self.stages() if s.is_finished and (kind is None or s.metrics().get("kind") == kind)]


def open_run(path) -> Run:
    """Return the run folder at ``path``; RunFolderError when there is none."""
    path = Path(path)
    if not path.is_dir():
        raise RunFolderError(f"no run folder {path} (a run folder is runs/<run_id>/, made by `cellclf run` "
                             "or by a notebook)")
    return Run(path)
