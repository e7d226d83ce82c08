"""Decoded-image cache keyed by file content, so a second run does not decode again.

Per file content hash (sha1 of the bytes) it stores the decode result (shape, or the
reason it failed) and one resized uint8 array per (size, resize policy). Renaming or
moving a file keeps its cache entries; editing it invalidates them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import paths
from ..atomic import atomic_write
from . import images

_hash_memo: dict[tuple, str] = {}


def content_hash(path) -> str:
    """Return the sha1 hex digest of the file's bytes (memoised per path, mtime and size)."""
    st = os.stat(path)
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _hash_memo:
        _hash_memo[key] = hashlib.sha1(Path(path).read_bytes()).hexdigest()
    return _hash_memo[key]


# part of every entry's name: raised when decoding changes (2: EXIF orientation, 12-bit depth,
# JPEGs judged by their markers; 3: frames counted), so entries decoded the old way are never read again
DECODER_VERSION = 3


def _entry(digest: str, suffix: str, root: Path | None) -> Path:
    return (root or paths.cache_dir()) / digest[:2] / f"{digest}_d{DECODER_VERSION}{suffix}"


def probe(path, root: Path | None = None) -> dict:
    """Return ``{"height", "width", "channels", "dtype", "bits", "frames"}`` of the decoded file, or
    ``{"error": reason}`` when it cannot be used. Cached by content."""
    path = Path(path)
    try:
        digest = content_hash(path)
    except FileNotFoundError:
        return {"error": "file not found"}
    except OSError as e:
        return {"error": f"cannot read file ({e.strerror or e})"}
    entry = _entry(digest, ".json", root)
    if entry.exists():
        try:
            return json.loads(entry.read_text())
        except ValueError:
            pass  # a damaged entry is simply recomputed
    try:
        data = path.read_bytes()
        raw = images.decode_raw(data, path)
        rgb = images.to_rgb(raw, path)
        info = {"height": int(rgb.shape[0]), "width": int(rgb.shape[1]),
                "channels": 1 if raw.ndim == 2 else int(raw.shape[2]), "dtype": str(raw.dtype),
                "bits": images.bit_depth(raw), "frames": images.frame_count(data)}
    except images.BadImageError as e:
        info = {"error": e.reason}
    atomic_write(entry, json.dumps(info))
    return info


def load_resized(path, size: int, policy: str = "pad", root: Path | None = None) -> np.ndarray:
    """Return the file as a size x size x 3 uint8 array, from the cache when present."""
    digest = content_hash(path)
    entry = _entry(digest, f"_{size}_{policy}.npy", root)
    if entry.exists():
        try:
            arr = np.load(entry)
            if arr.shape == (size, size, 3) and arr.dtype == np.uint8:
                return arr
        except (ValueError, OSError):
            pass
    arr = images.resize(images.read_image(path), size, policy)
    buf = io.BytesIO()
    np.save(buf, arr)
    atomic_write(entry, buf.getvalue())
    return arr


def load_many(file_paths, size: int, policy: str = "pad", progress: bool = True,
              desc: str = "images", root: Path | None = None) -> np.ndarray:
    """Return an (N, size, size, 3) uint8 array of the files, in order."""
    out = np.empty((len(file_paths), size, size, 3), np.uint8)
    bar = tqdm(file_paths, desc=f"{desc} @{size}px", disable=not progress or len(file_paths) < 50,
               leave=False)
    for i, p in enumerate(bar):
        out[i] = load_resized(p, size, policy, root)
    return out
