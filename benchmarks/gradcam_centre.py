"""Where a finished stage's model looks: Grad-CAM of its most confident right and wrong
out-of-fold images, and how much of each map lies on the cell (the image centre).

For a stage folder of a finished 5-fold run (02-05), picks per true class the N most confident
right and the N most confident wrong out-of-fold images (gradcam.pick_cases), explains each
with its own fold's model (gradcam.explain_oof: that model never saw the image), saves the
montage (plots.gradcam_montage) and prints, per map, the share of its mass in the central disc
(radius half the image) and in the outer ring (r > 0.9 of the half-width), averaged over all
maps and over the right and the wrong ones. The Grad-CAM rows of docs/results.md (Herlev,
MobileNetV2 @160 from block_8_expand, `herlev-mnv2-160-b8`). The montage shows dataset images:
keep it out of git for Herlev.

usage (from the repository root):
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/gradcam_centre.py \
        runs/herlev-mnv2-160-b8/03_xception out.png 4
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from cellclf_utils.data import load_dataset
from cellclf_utils.predict import gradcam
from cellclf_utils.report import plots
from cellclf_utils.run import stages


def main(stage_dir: Path, out: str, per_class: int) -> None:
    P = json.loads((stage_dir / "params.json").read_text())
    ds = load_dataset(P["data_dir"], P["classes"], progress=False)
    oof = pd.read_csv(stage_dir / "oof.csv")
    idx = np.array([ds.ids.index(i) for i in oof.id])
    x = ds.images(P["image_size"], P["resize"], progress=False)[idx]
    y = np.array([ds.class_names.index(c) for c in oof.label])
    cases = gradcam.pick_cases(y, oof[[f"p_{c}" for c in ds.class_names]].to_numpy(), oof.fold.to_numpy(), per_class)
    maps = gradcam.explain_oof(stages.stage_model(P, len(ds.class_names)),
                               {k: stage_dir / f"fold{k}" / "model.weights.h5" for k in oof.fold.unique()}, x, cases)
    plots.gradcam_montage(x, maps, cases, ds.class_names, per_class).savefig(out, dpi=100)

    s = x.shape[1]
    r = np.hypot(*(np.mgrid[:s, :s] - s // 2)) / (s // 2)  # distance from the centre, in half-widths
    total = maps.sum((1, 2))
    centre = (maps * (r < 0.5)).sum((1, 2)) / total
    border = (maps * (r > 0.9)).sum((1, 2)) / total
    right = cases["correct"].to_numpy(bool)
    print(f"{len(cases)} maps; central disc {(r < 0.5).mean():.1%} of the area")
    print(f"mass in the central disc {centre.mean():.1%} (right {centre[right].mean():.1%}, "
          f"wrong {centre[~right].mean():.1%}); in the outer ring {border.mean():.1%}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 4)
