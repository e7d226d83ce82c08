"""What a stage reads before it computes: the dataset its parameters name, and for a model
stage the run's folds (drawn by the first stage that needs them) and the images at its size."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...data import Dataset, load_dataset as load, resolve_source
from ...folds import ensure, subset
from ..stage import Stage


@dataclass
class TrainingData:
    ds: Dataset
    folds: pd.DataFrame        # the run's folds.csv rows used by this stage (after `limit`)
    index: np.ndarray          # positions of those rows in ds.items
    x: np.ndarray              # (N, S, S, 3) uint8
    y: np.ndarray              # (N,) int
    fold: np.ndarray           # (N,) validation fold of each image
    x_test: np.ndarray         # (M, S, S, 3) uint8, unlabeled
    ids: list[str]

    @property
    def class_names(self) -> list[str]:
        return self.ds.class_names


def load_dataset(P: dict) -> Dataset:
    """Return the dataset named by the parameters (the embedded synthetic set when data_dir is '')."""
    # no progress bars in notebooks: loading takes seconds, and text bars clutter the saved pages
    return load(resolve_source(P["data_dir"], progress=False), P["classes"], P["on_bad_image"], progress=False)


def training_data(st: Stage, P: dict, ds: Dataset | None = None) -> TrainingData:
    """Return images, labels and folds for a model stage; draws the run's folds if no stage
    has yet. ``limit`` keeps a fixed per-class subset of them."""
    ds = ds or load_dataset(P)
    use = subset(ensure(st.run_dir, ds, P["folds"], P["seed"], progress=False), P.get("limit", 0), P["seed"])
    index = use.index.to_numpy()
    x = ds.images(P["image_size"], P["resize"], progress=False)[index]
    x_test = ds.test_images(P["image_size"], P["resize"], progress=False)
    td = TrainingData(ds, use.reset_index(drop=True), index, x, ds.labels[index], use.fold.to_numpy(),
                      x_test, [ds.ids[i] for i in index])
    counts = ", ".join(f"{c} {int((td.y == i).sum())}" for i, c in enumerate(ds.class_names))
    print(f"{len(td.y)} training images ({counts}); {len(x_test)} test images; "
          f"{P['folds']} folds; {P['image_size']} px")
    return td
