"""Multi-scale TTA on a finished fine-tuning stage, without retraining: each fold's saved model
scores its own validation images over the 8 flips/rotations at the stage's size (what the stage
recorded) and at a zoom (the image loaded at zoom x size, its centre cut back to size: the cell
seen larger), and the mean of the two. Out-of-fold accuracy of each.

usage: python benchmarks/tta_scales.py runs/abl-base/03_xception [--zoom 1.2 0.85]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cellclf_utils import metrics  # noqa: E402
from cellclf_utils.data import load_dataset, resolve_source  # noqa: E402
from cellclf_utils.folds import ensure  # noqa: E402
from cellclf_utils.model.tta import predict_proba  # noqa: E402
from cellclf_utils.runfolder import layout  # noqa: E402


def zoomed(ds, size: int, zoom: float, resize: str) -> np.ndarray:
    """Return the images seen at ``zoom``: larger (> 1) loaded at zoom x size and their centre
    cut to size; smaller (< 1) loaded at zoom x size and reflected out to size."""
    inner = int(round(size * zoom))
    x = ds.images(inner, resize, progress=False)
    if inner >= size:
        a = (inner - size) // 2
        return x[:, a:a + size, a:a + size]
    a = (size - inner) // 2
    return np.pad(x, ((0, 0), (a, size - inner - a), (a, size - inner - a), (0, 0)), mode="reflect")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", type=Path)
    ap.add_argument("--zoom", type=float, nargs="+", default=[1.2])
    a = ap.parse_args()
    P = json.loads((a.stage / layout.STAGE_PARAMS).read_text())
    ds = load_dataset(resolve_source(P["data_dir"], progress=False), P["classes"], P["on_bad_image"], progress=False)
    folds = ensure(a.stage.parent, ds, P["folds"], P["seed"], progress=False)
    fold_of, y, size = folds.fold.to_numpy(), ds.labels, P["image_size"]
    views = {1.0: ds.images(size, P["resize"], progress=False), **{z: zoomed(ds, size, z, P["resize"]) for z in a.zoom}}
    oof = {z: np.zeros((len(y), len(ds.class_names))) for z in views}
    for k in np.unique(fold_of):
        model = keras.saving.load_model(a.stage / layout.fold_dir(int(k)) / layout.FOLD_MODEL)
        val = fold_of == k
        for z, x in views.items():
            oof[z][val] = predict_proba(model, x[val], 32, tta=True)
        print(f"fold {k} scored", flush=True)
    for name, p in [*((f"zoom {z:g}", p) for z, p in oof.items()),
                    *((f"mean of zoom 1 and {z:g}", (oof[1.0] + oof[z]) / 2) for z in a.zoom)]:
        s = metrics.summary(y, p, ds.class_names)
        lo, hi = s["accuracy_ci"]
        rec = " / ".join(f"{r:.0%}" for r in s["per_class_recall"].values())
        print(f"{name}: {s['accuracy']:.1%} [{lo:.1%}–{hi:.1%}], AUC {s['macro_auc']:.3f}, recall {rec}")


if __name__ == "__main__":
    main()
