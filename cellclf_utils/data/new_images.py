"""Unlabelled images to classify with a trained model (``cellclf predict``): a folder (every
image in it and its sub-folders), image files, or a CSV manifest with a ``path`` column (paths
relative to the CSV), or several of these. Each image is checked as the training data was:
an unusable file stops with its name, or with ``on_bad_image='skip'`` is listed and left out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import images
from .dataset import ON_BAD_IMAGE, DatasetError, Item, check_files, frame_notes, list_images, read_table


@dataclass
class NewImages:
    ids: list[str]                                      # the id each row of the output gets
    paths: list[Path]
    skipped: list[dict] = field(default_factory=list)   # unusable files left out: path, reason
    ignored: list[dict] = field(default_factory=list)   # files in a folder that are not read: path, reason
    notes: list[dict] = field(default_factory=list)     # multi-frame files (frame 0 used): path, note


def _from_folder(folder: Path, ignored: list) -> list[tuple[str, Path]]:
    """Return ``(id, path)`` of the images under ``folder``, ids relative to it."""
    return [(p.relative_to(folder).as_posix(), p) for p in list_images(folder, ignored)]


def _from_manifest(csv_path: Path) -> list[tuple[str, Path]]:
    """Return ``(id, path)`` per row of a manifest: the id is the row's path as written."""
    rows = []
    for line, path in enumerate(read_table(csv_path, ("path",)).path, start=2):
        if not path:
            raise DatasetError(f"{csv_path} line {line}: empty path")
        rows.append((path, Path(path) if Path(path).is_absolute() else csv_path.parent / path))
    return rows


def _listed(sources: list[str], ignored: list) -> list[tuple[str, Path]]:
    found = []
    for source in sources:
        p = Path(source).expanduser()
        if p.is_dir():
            found += _from_folder(p, ignored)
        elif p.is_file() and p.suffix.lower() == ".csv":
            found += _from_manifest(p)
        elif p.is_file():
            found.append((source, p))
        else:
            raise DatasetError(f"{source}: no such file or folder (give a folder of images, image files "
                               "or a CSV manifest with a path column)")
    return found


def gather(sources: list[str], on_bad_image: str = "error") -> NewImages:
    """Return the images ``sources`` name, each decoded once to check it (cached by content)."""
    if on_bad_image not in ON_BAD_IMAGE:
        raise ValueError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)} (got {on_bad_image!r})")
    ignored: list[dict] = []
    found = _listed(sources, ignored)
    if not found:
        raise DatasetError(f"no images in {', '.join(sources)} ({', '.join(images.IMAGE_SUFFIXES)})")
    repeated = pd.Series([i for i, _ in found]).duplicated()
    if repeated.any():
        raise DatasetError(f"image id {found[int(repeated.idxmax())][0]!r} is given twice: name each image once")
    skipped: list[dict] = []
    kept = check_files([Item(image_id, path, "") for image_id, path in found], on_bad_image, skipped, False,
                       "pass --on-bad-image skip to leave it out (skipped files are listed)")
    if not kept:
        raise DatasetError(f"none of the {len(found)} image(s) could be read (every one skipped)")
    return NewImages([it.id for it in kept], [it.path for it in kept], skipped, ignored, frame_notes(kept))
