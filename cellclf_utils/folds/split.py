"""A competition-style split of a labelled folder: ``train/`` as class folders and an unlabeled
``test/`` with ``test_labels.csv`` kept aside for scoring, stratified by class folder and never
putting two near-duplicates on different sides.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..data import dataset
from . import kfold


def split(src, out, test_fraction: float = 0.2, seed: int = 0, on_bad_image: str = "error",
          progress: bool = True) -> dict:
    """Copy the labelled images of ``src`` into ``out``: ``out/<class folder>/...`` for training,
    ``out/test/test_NNNN<ext>`` (names that say nothing of the class, in random order) and
    ``out/test_labels.csv`` (``id,label``) for the hidden test. Return a summary (counts per
    class and side, duplicate groups). ``out`` must not exist or be empty: nothing is overwritten."""
    if not 0.05 <= test_fraction <= 0.5:
        raise ValueError(f"--test-fraction must be between 0.05 and 0.5 (got {test_fraction})")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; a split never overwrites: choose a new folder")
    # one class per folder, so the split stratifies by the finest labels a preset could group
    ds = dataset.load_dataset(src, "", on_bad_image, progress=progress)
    labels = np.array([it.original_label for it in ds.items])
    groups = kfold.duplicate_groups(ds, progress=progress).group
    k = int(round(1 / test_fraction))
    names = sorted(set(labels))
    try:  # the run's own fold drawing (stratified, groups whole); fold 0 becomes the hidden test
        drawn = kfold.assign(ds.ids, [names.index(c) for c in labels], groups, k, seed, names)
    except kfold.FoldsError as e:
        raise ValueError(f"too few images for a {test_fraction:.0%} test split ({e}); "
                         "raise --test-fraction or add images") from None
    is_test = drawn.fold.to_numpy() == 0
    test_idx = np.flatnonzero(is_test)
    # built in a hidden sibling and renamed at the end: an interrupted split leaves no half dataset
    final, out = out, out.parent / f".{out.name}.partial"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(test_idx)  # test names in random order: the index says nothing either
    rows = []
    for n, i in enumerate(tqdm(order, desc="test images", disable=not progress)):
        it = ds.items[i]
        name = f"test_{n:04d}{it.path.suffix.lower()}"
        _copy(it.path, out / dataset.TEST_DIR / name)
        rows.append({"id": name, "label": it.original_label, "source": it.id})
    for i in tqdm(np.flatnonzero(~is_test), desc="training images", disable=not progress):
        it = ds.items[i]
        _copy(it.path, out / it.id)
    pd.DataFrame(rows)[["id", "label"]].to_csv(out / dataset.TEST_LABELS, index=False)
    # provenance outside the data folders (a loader ignores it): which source file each test image is
    pd.DataFrame(rows).to_csv(out / "split_sources.csv", index=False)
    counts = pd.crosstab(labels, np.where(is_test, "test", "train"))
    crossing = int(sum(len(set(is_test[groups == g])) > 1 for g in np.unique(groups)))
    summary = {"source": str(Path(src)), "out": str(final), "test_fraction": test_fraction, "seed": seed,
               "train": int((~is_test).sum()), "test": int(is_test.sum()),
               "per_class": {c: {"train": int(counts.loc[c].get("train", 0)), "test": int(counts.loc[c].get("test", 0))}
                             for c in counts.index},
               "duplicate_groups": int((pd.Series(groups).value_counts() > 1).sum()),
               "groups_split_across": crossing,
               # a source's own test/ images have no labels to stratify by: they are not copied
               "source_test_images_left_out": len(ds.test_items)}
    (out / "split.json").write_text(json.dumps(summary, indent=2))
    if final.exists():
        final.rmdir()  # empty (checked above)
    out.rename(final)
    return summary


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
