"""Compare fine-tuning recipes on the same folds: each stage's out-of-fold accuracy with its
bootstrap 95% interval, macro AUC, recall per class, training seconds, and McNemar's exact test
of each against the first (the baseline recipe). Optionally the mean of a stage with another
(``--with``, for "the recipe and its ensemble with the probe").

With ``--test-labels`` (a `cellclf data split`'s test_labels.csv) the stages' hidden-test
predictions (test.csv) are scored the same way, McNemar against the baseline's.

usage: python benchmarks/compare_runs.py runs/abl-base/03_xception runs/abl-ema/03_xception ...
       [--with runs/probe/02c_frozen_probe] [--test-labels /tmp/split/test_labels.csv --classes herlev3]
       [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cellclf_utils import metrics  # noqa: E402
from cellclf_utils.predict.ensemble import mcnemar  # noqa: E402
from cellclf_utils.runfolder import layout  # noqa: E402
from score_predictions import labelled  # noqa: E402  (this folder: sys.path[0] when run as a script)


def _oof(stage: Path) -> pd.DataFrame:
    path = stage / layout.OOF
    if not path.is_file():
        raise SystemExit(f"{path} is missing: {stage} is not a finished stage folder")
    return pd.read_csv(path, dtype={"id": str}).sort_values("id").reset_index(drop=True)


def _test(stage: Path, labels: Path, mapping: str) -> pd.DataFrame:
    """The stage's test.csv with each image's label (its class under ``mapping``), in the
    oof.csv's form; ids as test_labels.csv writes them (without the test/ folder)."""
    path = stage / layout.TEST
    if not path.is_file():
        raise SystemExit(f"{path} is missing: {stage} predicted no test images")
    preds = pd.read_csv(path, dtype={"id": str})
    preds["id"] = preds["id"].str.removeprefix("test/")
    names = [c[2:] for c in preds.columns if c.startswith("p_")]
    both, y = labelled(preds, labels, mapping, str(path))
    both["label"] = [names[i] for i in y]
    return both.drop(columns="truth").sort_values("id").reset_index(drop=True)


def _seconds(stage: Path) -> float:
    """Training seconds summed over the folds (their done.json records; 06: every round's)."""
    done = sorted(stage.glob(f"**/fold*/{layout.FOLD_DONE}"))
    return sum(json.loads(p.read_text()).get("seconds", 0.0) for p in done)


def _row(name: str, oof: pd.DataFrame, classes: list[str], base_pred, seconds) -> dict:
    proba = oof[[f"p_{c}" for c in classes]].to_numpy()
    y = oof["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    s = metrics.summary(y, proba, classes)
    pred = proba.argmax(1)
    t = mcnemar(y, pred, base_pred(y)) if base_pred is not None else None
    return {"stage": name, "accuracy": s["accuracy"], "ci": s["accuracy_ci"], "auc": s["macro_auc"],
            "recall": s["per_class_recall"], "seconds": seconds, "mcnemar": t, "pred": pred}


def _print(rows: list[dict], classes: list[str], markdown: bool) -> None:
    for r in rows:
        lo, hi = r["ci"]
        rec = " / ".join(f"{v:.0%}" for v in r["recall"].values())
        t = r["mcnemar"]
        vs = f"+{t['only_a']} / -{t['only_b']}, McNemar p = {t['p_value']:.2f}" if t else "the baseline"
        sec = "—" if np.isnan(r["seconds"]) else f"{r['seconds']:.0f}"
        if markdown:
            print(f"| {r['stage']} | {r['accuracy']:.1%} [{lo:.1%}–{hi:.1%}] | {r['auc']:.3f} | {rec} | {vs} | {sec} |")
        else:
            print(f"{r['stage']}: {r['accuracy']:.1%} [{lo:.1%}–{hi:.1%}], AUC {r['auc']:.3f}, recall {rec} "
                  f"({', '.join(classes)}), {vs} (images only it / only the baseline gets right), "
                  f"{sec} s training")


def _rows(entries: list[tuple], classes: list[str]) -> list[dict]:
    """One row per (name, table, seconds), McNemar against the first entry."""
    rows, base = [], None
    for name, t, sec in entries:
        r = _row(name, t, classes, (lambda y, p=base: p) if base is not None else None, sec)
        base = r["pred"] if base is None else base
        rows.append(r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stages", nargs="+", type=Path, help="stage folders; the first is the baseline")
    ap.add_argument("--with", dest="partner", type=Path, help="also score each stage's mean with this stage")
    ap.add_argument("--test-labels", type=Path, help="also score each stage's test.csv against these labels")
    ap.add_argument("--classes", default="", help="with --test-labels: the mapping the run used (its --classes)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    a = ap.parse_args()
    tables = [_oof(s) for s in a.stages]
    ids = tables[0]["id"].tolist()
    for s, t in zip(a.stages, tables):
        if t["id"].tolist() != ids:
            raise SystemExit(f"{s} scored other images than {a.stages[0]}: compare stages on the same data")
        if "fold" in t and not (t["fold"].to_numpy() == tables[0]["fold"].to_numpy()).all():
            raise SystemExit(f"{s} has other folds than {a.stages[0]}: copy the baseline's folds.csv first")
    classes = [c[2:] for c in tables[0].columns if c.startswith("p_")]
    entries = [(str(s), t, _seconds(s)) for s, t in zip(a.stages, tables)]
    if a.partner is not None:
        partner = _oof(a.partner)
        cols = [f"p_{c}" for c in classes]
        for s, t in zip(a.stages, tables):
            mean = t.copy()
            mean[cols] = (t[cols].to_numpy() + partner[cols].to_numpy()) / 2
            entries.append((f"mean({s}, {a.partner})", mean, float("nan")))
    _print(_rows(entries, classes), classes, a.markdown)
    if a.test_labels is not None:
        print(f"hidden test images ({a.test_labels}):")
        tests = [(str(s), _test(s, a.test_labels, a.classes), float("nan")) for s in a.stages]
        _print(_rows(tests, classes), classes, a.markdown)


if __name__ == "__main__":
    main()
