"""Leak-safe cross-validation folds, drawn once per run and shared by every stage.

Near-duplicate images (dupes.find_groups) share a group, and StratifiedGroupKFold keeps a
group inside one fold, so a rotated copy of a validation image is never trained on.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ..atomic import write_csv
from ..runfolder import layout, read_csv
from . import dupes

HASH_SIZE = 64  # images are hashed from this cached size; pHash works on 32x32 anyway


class FoldsError(ValueError):
    """Folds that cannot be drawn, or a folds.csv that does not fit the data."""


def assign(ids, labels, groups, k: int, seed: int, class_names=None) -> pd.DataFrame:
    """Return a DataFrame ``id, fold, group, label`` with folds 0..k-1, stratified by label
    and never splitting a group."""
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    if counts.min() < k:
        c = int(np.argmin(counts))
        name = class_names[c] if class_names else c
        raise FoldsError(f"parameter 'folds': class {name!r} has {counts.min()} image(s), fewer than "
                         f"folds={k}; lower folds or add images")
    fold = np.full(len(ids), -1)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # sklearn warns when a class has fewer *groups* than folds; the counts check above covers it
        warnings.simplefilter("ignore", UserWarning)
        for f, (_, val) in enumerate(splitter.split(np.zeros(len(ids)), labels, groups)):
            fold[val] = f
    names = [class_names[i] for i in labels] if class_names else labels
    return pd.DataFrame({"id": list(ids), "fold": fold, "group": np.asarray(groups), "label": names})


def duplicate_groups(ds, progress: bool = False):
    """Return the dataset's near-duplicate groups (dupes.DupeResult), hashed at HASH_SIZE so
    every stage draws the same groups whatever its image size."""
    return dupes.find_groups(ds.images(HASH_SIZE, progress=progress), ds.ids)


def train_test_duplicates(ds, progress: bool = False) -> pd.DataFrame:
    """Return test images that near-duplicate a training image (test_id, train_id, distance)."""
    if not ds.test_items:
        return pd.DataFrame(columns=["test_id", "train_id", "distance"])
    return dupes.cross_pairs(ds.images(HASH_SIZE, progress=progress), ds.ids,
                             ds.test_images(HASH_SIZE, progress=progress), ds.test_ids)


def matching(df: pd.DataFrame, ds, k: int, path) -> pd.DataFrame:
    """Return a run's folds.csv rows ``df`` (read from ``path``) in the dataset's order; raise
    FoldsError naming ``path`` where they cover other images or another number of folds."""
    if sorted(df.id) != sorted(ds.ids):
        extra = sorted(set(df.id) - set(ds.ids))[:3]
        missing = sorted(set(ds.ids) - set(df.id))[:3]
        raise FoldsError(f"{path} does not match the dataset (only in folds.csv: {extra}; only in the "
                         f"data: {missing}); a run's stages must share one dataset: use a new run_id")
    if df.fold.nunique() != k:
        raise FoldsError(f"{path} has {df.fold.nunique()} folds but parameter 'folds' is {k}; "
                         "a run's stages share one set of folds: use the same value or a new run_id")
    return df.set_index("id").loc[ds.ids].reset_index()


def ensure(run_dir, ds, k: int, seed: int, groups=None, progress: bool = True) -> pd.DataFrame:
    """Return the run's folds: read ``folds.csv`` if this run has one (checking it matches the
    data and ``k``), else draw them (grouping near-duplicates) and write it once."""
    path = Path(run_dir) / layout.FOLDS_CSV
    if path.exists():
        return matching(read_csv(path, layout.FOLDS_COLUMNS), ds, k, path)
    if groups is None:
        groups = duplicate_groups(ds, progress).group
    df = assign(ds.ids, ds.labels, groups, k, seed, ds.class_names)
    write_csv(path, df)
    return df


def subset(folds_df: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """Return at most ``limit`` rows per label (all when 0), drawn with ``seed``, in the
    original order, so quick runs use a fixed part of the run's folds."""
    if not limit:
        return folds_df
    keep = (folds_df.sample(frac=1.0, random_state=seed).groupby("label", sort=False).head(limit).index)
    return folds_df.loc[sorted(keep)]
