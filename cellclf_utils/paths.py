"""Where things live: the series' checkout (notebooks and profiles beside the installed
package), the runs folder, the decoded-image cache, and relative paths.

The checkout is found from the installed package, not the working directory, so every
command works from any folder. Runs go to ``$CELLCLF_RUNS``, else to the checkout's ``runs/``
when the working directory is inside the checkout, else to ``./runs``.
"""
from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


class SeriesNotFoundError(RuntimeError):
    """The notebooks of the series are not beside the installed package."""


def package_checkout() -> Path | None:
    """Return the folder holding the package and the series' ``notebooks/`` (a checkout, as an
    editable install keeps it), or None when the package is installed without them."""
    root = _PACKAGE.parent
    return root if (root / "notebooks").is_dir() else None


def project_root() -> Path:
    """Return the series' checkout: $CELLCLF_ROOT, else the one the installed package sits in."""
    env = os.environ.get("CELLCLF_ROOT")
    if env:
        return Path(env).resolve()
    root = package_checkout()
    if root is None:
        raise SeriesNotFoundError(
            f"the notebook series is not beside the installed package ({_PACKAGE}): install cellclf from a "
            "checkout (`pip install -e .` in it, as `make` does), or set CELLCLF_ROOT to the checkout")
    return root


def inside_checkout(path: Path | None = None) -> bool:
    """Return whether ``path`` (default: the working directory) is inside the series' checkout."""
    try:
        root = project_root()
    except SeriesNotFoundError:
        return False
    here = Path(path or Path.cwd()).resolve()
    return here == root or root in here.parents


def resolve(path: str | os.PathLike) -> Path:
    """Return an absolute path: as given if absolute or existing relative to the working
    directory, else relative to the checkout."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.exists():
        return p.resolve()
    try:
        return (project_root() / p).resolve()
    except SeriesNotFoundError:
        return p.resolve()


def cache_dir() -> Path:
    """Return the decoded-image cache folder: $CELLCLF_CACHE, else the checkout's .cache/cellclf,
    else ~/.cache/cellclf."""
    env = os.environ.get("CELLCLF_CACHE")
    if env:
        return Path(env)
    try:
        return project_root() / ".cache" / "cellclf"
    except SeriesNotFoundError:
        return Path.home() / ".cache" / "cellclf"


def runs_dir() -> Path:
    """Return the folder that holds run folders: $CELLCLF_RUNS, else the checkout's runs/ when
    the working directory is inside it, else ./runs."""
    env = os.environ.get("CELLCLF_RUNS")
    if env:
        return Path(env).resolve()
    return project_root() / "runs" if inside_checkout() else Path.cwd().resolve() / "runs"
