"""Atomic file writes: bytes or text, JSON, CSV. A write goes to a temp file beside its target
and is renamed over it, so a run killed mid-write leaves the old file (or none), never half a
file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` (parents created) through a temp file and a rename; return the path."""
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
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
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


def write_npz(path, **arrays) -> Path:
    """Write numpy arrays as one .npz, atomically."""
    import io
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write(path, buf.getvalue())
