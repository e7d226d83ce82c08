"""Score a `cellclf predict` table against held-out labels (a `cellclf data split`'s
test_labels.csv): accuracy with its bootstrap 95% interval, macro AUC and recall per class.

usage: python benchmarks/score_predictions.py preds.csv test_labels.csv [--classes herlev3]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cellclf_utils import metrics  # noqa: E402
from cellclf_utils.data import classes as classes_mod  # noqa: E402


def labelled(preds: pd.DataFrame, labels: Path, mapping: str, source: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Return ``preds`` (id, p_<class>...) joined with ``labels`` (a test_labels.csv: id,
    folder), and each image's class index under ``mapping``; SystemExit naming ``source`` when
    a labelled image has no prediction."""
    names = [c[2:] for c in preds.columns if c.startswith("p_")]
    inverse = classes_mod.inverse(classes_mod.load_mapping(mapping), names)
    truth = pd.read_csv(labels, dtype={"id": str})
    both = preds.merge(truth.rename(columns={"label": "truth"}), on="id", how="inner")
    if len(both) != len(truth):
        raise SystemExit(f"{len(truth) - len(both)} labelled image(s) have no prediction in {source}")
    return both, np.array([inverse[t] for t in both.truth])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preds")
    ap.add_argument("labels")
    ap.add_argument("--classes", default="", help="the mapping the run used (its --classes)")
    a = ap.parse_args()
    preds = pd.read_csv(a.preds, dtype={"id": str})
    names = [c[2:] for c in preds.columns if c.startswith("p_")]
    both, y = labelled(preds, a.labels, a.classes, a.preds)
    s = metrics.summary(y, both[[f"p_{c}" for c in names]].to_numpy(), names)
    lo, hi = s["accuracy_ci"]
    recall = ", ".join(f"{c} {r:.1%}" for c, r in s["per_class_recall"].items())
    print(f"{len(y)} images: accuracy {s['accuracy']:.1%} [95% CI {lo:.1%}–{hi:.1%}], macro AUC {s['macro_auc']:.3f}; "
          f"recall {recall}")


if __name__ == "__main__":
    main()
