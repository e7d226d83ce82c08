"""Where things live: the project root, relative paths, the cache folder."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """Return the cellclf checkout: $CELLCLF_ROOT, else the nearest folder above the
    working directory holding both `notebooks/` and `cellclf_utils/`, else the cwd.

    Notebooks run with their own folder as cwd in JupyterLab and with the caller's cwd
    under papermill; resolving against the root makes both behave the same.
    """
    env = os.environ.get("CELLCLF_ROOT")
    if env:
        return Path(env).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "notebooks").is_dir() and (d / "cellclf_utils").is_dir():
            return d
    return here


def resolve(path: str | os.PathLike) -> Path:
    """Return an absolute path: as given if absolute or existing relative to the cwd,
    else relative to the project root."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.exists():
        return p.resolve()
    return (project_root() / p).resolve()


def cache_dir() -> Path:
    """Return the decoded-image cache folder: $CELLCLF_CACHE or <root>/.cache/cellclf."""
    env = os.environ.get("CELLCLF_CACHE")
    return Path(env) if env else project_root() / ".cache" / "cellclf"


def runs_dir() -> Path:
    """Return the folder that holds run directories: $CELLCLF_RUNS or <root>/runs."""
    env = os.environ.get("CELLCLF_RUNS")
    return Path(env) if env else project_root() / "runs"
