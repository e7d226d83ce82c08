"""The run folder: its layout (every file name, once) and the API that reads it.

Entry points: ``open_run(path) -> Run``; ``Run.stages()``/``stage(name) -> StageFolder``;
``StageFolder.folds()``/``fold(k) -> Fold``; ``RunFolderError`` for a file that cannot be read;
``lock.acquire(run_dir, command)`` (one writer per run) / ``RunLockedError``;
``prune.prune_models(stage, keep)`` (the ``keep_models`` parameter).
"""
from . import layout, lock, prune
from .lock import RunLockedError
from .read import Fold, Run, RunFolderError, StageFolder, open_run, read_csv, read_json, read_npz, read_yaml

__all__ = ["layout", "lock", "prune", "RunLockedError", "Fold", "Run", "RunFolderError", "StageFolder", "open_run", "read_csv", "read_json",
           "read_npz", "read_yaml"]
