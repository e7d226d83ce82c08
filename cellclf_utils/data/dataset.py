"""Load a labelled image dataset from a class-folder tree or a CSV manifest.

Layouts (see README "Dataset layout"):
- folder: ``<dir>/<class>/<image>``; images may sit in sub-folders of a class folder;
  an optional unlabeled ``<dir>/test/`` with optional ``<dir>/test_labels.csv`` (``id,label``;
  id = path inside test/) used only for scoring;
- manifest: a CSV with ``path,label`` (paths relative to the CSV) and an optional ``split``
  column (``train``/``test``; test rows' labels are used only for scoring).
"""
from __future__ import annotations

import csv
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import pandas as pd
from tqdm import tqdm

from .. import paths
from . import cache, classes as classes_mod, images, synth

ON_BAD_IMAGE = ("error", "skip")
TEST_DIR = "test"
TEST_LABELS = "test_labels.csv"


class DatasetError(ValueError):
    """A dataset that cannot be loaded as asked; the message says what to change."""


@dataclass
class Item:
    id: str               # path relative to the dataset root, posix form
    path: Path
    original_label: str   # folder name or manifest label ("" for unlabeled test items)
    label: int = -1       # index into Dataset.class_names; -1 when unknown
    height: int = 0
    width: int = 0
    bits: int = 8         # bits its values use (12: 12-bit data in a 16-bit file, scaled as such)
    frames: int = 1       # frames in the file (pages of a TIFF); frame 0 is the one read


@dataclass
class Dataset:
    """Training items, unlabeled test items, and what was left out and why."""

    root: Path
    class_names: list[str]
    items: list[Item]
    test_items: list[Item] = field(default_factory=list)
    # labels of test items, used only to score predictions, never for training
    test_labels: np.ndarray | None = None
    skipped: list[dict] = field(default_factory=list)   # bad images left out: path, reason
    ignored: list[dict] = field(default_factory=list)   # files seen and not used: path, reason

    @property
    def ids(self) -> list[str]:
        return [it.id for it in self.items]

    @property
    def labels(self) -> np.ndarray:
        return np.array([it.label for it in self.items], dtype=np.int64)

    @property
    def test_ids(self) -> list[str]:
        return [it.id for it in self.test_items]

    @property
    def notes(self) -> list[dict]:
        """Files read with a caveat the user should know: each multi-frame file (frame 0 used)."""
        return frame_notes(self.items + self.test_items)

    @property
    def twelve_bit(self) -> int:
        """How many images are 16-bit files holding 12-bit data (scaled from 12 bits)."""
        return sum(it.bits == 12 for it in self.items + self.test_items)

    def images(self, size: int, resize: str = "pad", progress: bool = True) -> np.ndarray:
        """Return the training images as (N, size, size, 3) uint8, via the cache."""
        return cache.load_many([it.path for it in self.items], size, resize, progress, "train images")

    def test_images(self, size: int, resize: str = "pad", progress: bool = True) -> np.ndarray:
        """Return the test images as (M, size, size, 3) uint8, via the cache."""
        return cache.load_many([it.path for it in self.test_items], size, resize, progress, "test images")

    def frame(self) -> pd.DataFrame:
        """Return one row per training and test item: id, split, label, original_label, height, width."""
        rows = [{"id": it.id, "split": "train", "label": self.class_names[it.label],
                 "original_label": it.original_label, "height": it.height, "width": it.width}
                for it in self.items]
        for i, it in enumerate(self.test_items):
            lab = self.test_labels[i] if self.test_labels is not None else -1
            rows.append({"id": it.id, "split": "test", "label": self.class_names[lab] if lab >= 0 else "",
                         "original_label": it.original_label, "height": it.height, "width": it.width})
        return pd.DataFrame(rows, columns=["id", "split", "label", "original_label", "height", "width"])


def is_image(p: Path) -> bool:
    """Return whether ``p``'s suffix is one of the image formats read (IMAGE_SUFFIXES)."""
    return p.suffix.lower() in images.IMAGE_SUFFIXES


def _rel(p: Path, root: Path) -> str:
    return p.relative_to(root).as_posix()


def _unused(p: Path) -> str:
    """Return why the file ``p`` in an image folder is not read ('' when it is an image to read)."""
    if p.name.startswith("."):
        return "hidden file (its name starts with '.')"
    if p.is_symlink() and not p.exists():
        return f"broken link (to {os.readlink(p)}, which does not exist)"
    if not p.is_file():
        return "not a regular file"
    if not is_image(p):
        return f"not an image file name ({p.suffix or 'no suffix'})"
    return ""


def list_images(folder: Path, ignored: list) -> list[Path]:
    """Return the image files under ``folder`` and its sub-folders, in path order; add every
    other entry to ``ignored`` with the reason it is not read (a hidden file or folder, a broken
    link, a link to a folder, a name without an image suffix), so nothing is left out unsaid."""
    found = []
    for here, dirs, files in os.walk(folder):
        here = Path(here)
        for d in dirs:
            if d.startswith("."):
                ignored.append({"path": str(here / d), "reason": "hidden folder (nothing in it is read)"})
            elif (here / d).is_symlink():
                ignored.append({"path": str(here / d), "reason": "link to a folder (not followed)"})
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (here / d).is_symlink())
        for name in files:
            why = _unused(here / name)
            if why:
                ignored.append({"path": str(here / name), "reason": why})
            else:
                found.append(here / name)
    ignored.sort(key=lambda f: f["path"])
    return sorted(found)


def _scan_folder(root: Path, ignored: list) -> tuple[list[Item], list[Item], dict[str, str]]:
    """Return (train items, test items, test labels by test id) of a class-folder tree."""
    train, test = [], []
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    ignored += [{"path": str(d), "reason": "hidden folder (not read as a class)"}
                for d in sorted(root.iterdir()) if d.is_dir() and d.name.startswith(".")]
    for d in class_dirs:
        files = list_images(d, ignored)
        if d.name == TEST_DIR:
            test += [Item(_rel(p, root), p, "") for p in files]
            continue
        if not files:
            raise DatasetError(
                f"class folder {d} has no images ({', '.join(images.IMAGE_SUFFIXES)}); "
                "add images or remove the folder")
        train += [Item(_rel(p, root), p, d.name) for p in files]
    labels = {}
    lab_file = root / TEST_LABELS
    if lab_file.is_file():
        df = read_table(lab_file, ("id", "label"))
        labels = {f"{TEST_DIR}/{str(r.id).removeprefix(TEST_DIR + '/')}": str(r.label)
                  for r in df.itertuples()}
    return train, test, labels


def read_table(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """Return the CSV at ``path`` as text columns; DatasetError when unreadable or lacking ``required``."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: empty file; its first line names the columns {', '.join(required)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: not a readable CSV ({e})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}")
    return df


def _inside(csv_path: Path, line: int, path: str) -> str:
    """Return ``path`` in posix form; DatasetError when it leaves the manifest's folder (absolute,
    or ../ above it): a dataset is its folder, which split and the cache copy and key by it."""
    norm = posixpath.normpath(path.replace("\\", "/"))
    if PurePosixPath(norm).is_absolute() or PureWindowsPath(path).drive or norm == ".." or norm.startswith("../"):
        raise DatasetError(f"{csv_path} line {line}: path {path!r} is outside the manifest's folder "
                           f"{csv_path.parent}; list images by paths inside it (move the manifest beside them)")
    return norm


def _scan_manifest(csv_path: Path) -> tuple[list[Item], list[Item], dict[str, str]]:
    df = read_table(csv_path, ("path", "label"))
    base = csv_path.parent
    train, test, labels = [], [], {}
    first_line: dict[str, tuple[int, str]] = {}
    for line, r in enumerate(df.itertuples(), start=2):
        if not r.path:
            raise DatasetError(f"{csv_path} line {line}: empty path")
        rel = _inside(csv_path, line, r.path)
        if rel in first_line:
            seen, label = first_line[rel]
            raise DatasetError(f"{csv_path} lines {seen} and {line}: {rel} is listed twice (labels {label!r} and "
                               f"{r.label!r}); list each image once")
        first_line[rel] = (line, r.label)
        p = base / rel
        split = getattr(r, "split", "train") or "train"
        if split not in ("train", "test"):
            raise DatasetError(f"{csv_path} line {line}: split must be train or test (got {split!r})")
        if split == "train" and not r.label:
            raise DatasetError(f"{csv_path} line {line}: training row without a label ({r.path})")
        item = Item(rel, p, r.label if split == "train" else "")
        (train if split == "train" else test).append(item)
        if split == "test" and r.label:
            labels[item.id] = r.label
    return train, test, labels


def check_files(items: list[Item], on_bad_image: str, skipped: list, progress: bool,
                skip_hint: str = "pass on_bad_image='skip' to leave it out (skipped files are listed in the report)"
                ) -> list[Item]:
    """Return the items whose files decode; record the others in ``skipped``, or with
    ``on_bad_image='error'`` raise BadImageError for the first, ending with ``skip_hint``."""
    good = []
    for it in tqdm(items, desc="checking images", disable=not progress or len(items) < 200, leave=False):
        info = cache.probe(it.path)
        if "error" in info:
            if on_bad_image == "error":
                raise images.BadImageError(it.path, f"{info['error']}. Fix or remove the file, or {skip_hint}")
            skipped.append({"path": str(it.path), "reason": info["error"]})
            continue
        it.height, it.width, it.bits, it.frames = info["height"], info["width"], info["bits"], info["frames"]
        good.append(it)
    return good


def frame_notes(items: list[Item]) -> list[dict]:
    """Return ``{"path", "note"}`` for each multi-frame file among ``items``: frame 0 is the image used."""
    return [{"path": str(it.path), "note": f"{it.frames} frames (a multi-page or animated file): frame 0 is used"}
            for it in items if it.frames > 1]


def load_dataset(source, classes: str | dict | None = "", on_bad_image: str = "error",
                 progress: bool = True) -> Dataset:
    """Return the Dataset at ``source`` (class-folder tree or CSV manifest).

    Every image is decoded once (cached by content) so bad files surface here, before any
    fold is drawn: ``on_bad_image='error'`` raises BadImageError naming the file,
    ``'skip'`` leaves it out and records it in ``Dataset.skipped``.
    """
    if on_bad_image not in ON_BAD_IMAGE:
        raise ValueError(f"parameter 'on_bad_image' must be one of {', '.join(ON_BAD_IMAGE)} (got {on_bad_image!r})")
    src = paths.resolve(source)
    ignored: list[dict] = []
    if src.is_dir():
        root, label_source = src, src / TEST_LABELS
        train, test, test_lab = _scan_folder(root, ignored)
    elif src.is_file() and src.suffix.lower() == ".csv":
        root, label_source = src.parent, src
        train, test, test_lab = _scan_manifest(src)
    else:
        raise DatasetError(f"parameter 'data_dir': {source} is not a folder or a .csv manifest "
                           f"(resolved to {src}); run `cellclf data synth data/synth` for the embedded set")
    if not train:
        raise DatasetError(f"{src}: no labelled images found; expected <dir>/<class>/<image> or a manifest")
    unmatched = sorted(set(test_lab) - {it.id for it in test})
    if unmatched:
        raise DatasetError(f"{label_source}: {len(unmatched)} label(s) name no test image, e.g. {unmatched[0]!r}; "
                           f"ids are paths inside {TEST_DIR}/ (fix the id, or add the image)")
    skipped: list[dict] = []
    train = check_files(train, on_bad_image, skipped, progress)
    test = check_files(test, on_bad_image, skipped, progress)
    mapping = classes_mod.load_mapping(classes)
    class_names, labels = classes_mod.apply(mapping, [it.original_label for it in train])
    for it, lab in zip(train, labels):
        it.label = lab
    test_labels = None
    if test_lab and test:
        missing = [it.id for it in test if it.id not in test_lab]
        if missing:
            raise DatasetError(f"{label_source}: no label for {len(missing)} test image(s), e.g. {missing[0]}")
        inverse = classes_mod.inverse(mapping, class_names)
        unknown = sorted({test_lab[it.id] for it in test} - inverse.keys())
        if unknown:
            raise DatasetError(f"{label_source}: labels {', '.join(map(repr, unknown))} are not "
                               f"training classes ({', '.join(class_names)})")
        for it in test:
            it.original_label = test_lab[it.id]
        test_labels = np.array([inverse[it.original_label] for it in test], dtype=np.int64)
    return Dataset(root, class_names, train, test, test_labels, skipped, ignored)


def check(source, classes: str | dict | None = "") -> dict:
    """Return a data-check summary: per-class counts, image sizes, and every unreadable
    or ignored file with its reason. Never raises for a bad image."""
    return describe(load_dataset(source, classes, on_bad_image="skip"))


def describe(ds: Dataset) -> dict:
    """Return ``check``'s summary of an already loaded dataset (per-class counts, image sizes,
    unreadable and ignored files, multi-frame files and the count of 12-bit ones)."""
    df = ds.frame()
    train = df[df.split == "train"]
    sizes = (df.assign(size=df.width.astype(str) + "x" + df.height.astype(str))
             .groupby("size").size().sort_values(ascending=False))
    return {
        "root": str(ds.root),
        "classes": ds.class_names,
        "counts": {c: int((train.label == c).sum()) for c in ds.class_names},
        "n_train": len(ds.items), "n_test": len(ds.test_items),
        "test_labels": ds.test_labels is not None,
        "sizes": {k: int(v) for k, v in sizes.items()},
        "skipped": ds.skipped, "ignored": ds.ignored, "notes": ds.notes, "twelve_bit": ds.twelve_bit,
    }


DEFAULT_SYNTH = "data/synth"


def resolve_source(data_dir: str, progress: bool = True) -> Path:
    """Return the dataset path for the ``data_dir`` parameter; '' means the embedded
    synthetic set at <root>/data/synth, generated (seed 0) when missing."""
    if data_dir:
        return paths.resolve(data_dir)
    path = paths.project_root() / DEFAULT_SYNTH
    if not path.exists():
        print(f"generating the embedded synthetic dataset in {path} (seed 0) ...")
        synth.generate(path, seed=0, progress=progress)
    return path
