"""Stage 07's own steps: the members it combines (read from the run folder), and what it
writes: leaderboard.csv, submission.csv, its figures and metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import metrics
from ...atomic import write_csv
from ...data import Dataset
from ...predict import combiner, ensemble
from ...report import plots
from ...runfolder import layout, open_run
from ..stage import Stage
from .outputs import format_scores


def members(st: Stage, P: dict) -> ensemble.Members:
    """Return the finished stages ``P['members']`` names (stages of this run, or other runs'
    stages on the same folds, as runs/<run_id>/<stage>; default: every model stage of this run
    that scored all images), aligned on the images all of them scored."""
    names = [s.strip() for s in P["members"].split(",") if s.strip()] or None
    run = open_run(st.run_dir)
    m = ensemble.load(run, names)
    print(f"{len(m.names)} members: {', '.join(m.names)}; {len(m.ids)} images scored by all of them")
    if m.sources and run.folds() is None:
        # members of other runs: this run takes their (checked, identical) folds as its own
        write_csv(run.dir / layout.FOLDS_CSV, m.folds)
    return m


def _figures(st: Stage, table: pd.DataFrame, m: ensemble.Members, choice: str, cv_scores: dict) -> None:
    floor = float(np.bincount(m.y).max() / len(m.y))
    st.figure(plots.model_comparison(table, floor), "models", "Members and ensembles, out-of-fold accuracy")
    st.figure(plots.per_class_recall(cv_scores["per_class_recall"], title=f"Recall per class: {choice}"),
              "recall_cv", f"Out-of-fold recall per class of the submitted model ({choice})")
    st.figure(plots.confusion_matrix(np.array(cv_scores["confusion"]), m.classes, title=choice),
              "confusion_cv", "Out-of-fold confusion matrix of the submitted model (row-normalised)")


def _submission(st: Stage, ds: Dataset, m: ensemble.Members, choice: str, seed: int) -> tuple[int, dict | None]:
    """Write submission.csv when the members predicted test images; return (test images, test scores)."""
    proba = ensemble.predict_test(m, choice)
    if proba is None:
        return 0, None
    sub = ensemble.submission(m.test_ids, proba, m.classes)
    st.write_csv(layout.SUBMISSION, sub)
    if ds.test_labels is None:
        return len(sub), None
    truth = dict(zip(ds.test_ids, ds.test_labels))
    return len(sub), metrics.summary(np.array([truth[i] for i in m.test_ids]), proba, m.classes, seed=seed)


def save_ensemble_outputs(st: Stage, ds: Dataset, m: ensemble.Members, table: pd.DataFrame, oof: dict,
                          choice: str, P: dict) -> dict:
    """Write leaderboard.csv, submission.csv (test images, when members predicted them) and the
    ensemble's figures; return the metrics dict for ``st.finish`` (CV scores of ``choice``)."""
    st.write_csv(layout.LEADERBOARD, table)
    combiner.save(st.dir, m, choice)  # what `cellclf predict` applies to new images
    cv_scores = metrics.summary(m.y, oof[choice], m.classes, seed=P["seed"])
    _figures(st, table, m, choice, cv_scores)
    n_test, test_scores = _submission(st, ds, m, choice, P["seed"])
    weights = ensemble.fit_full(m, "ensemble: weights")
    # the question the report answers: is the submitted model really better than the best single stage?
    versus = ensemble.versus_best(m, oof[choice])
    print(format_scores(f"out-of-fold, {choice}", cv_scores))
    if test_scores:
        print(format_scores(f"test, {choice}", test_scores))
    return {"kind": "ensemble", "model": choice, "classes": m.classes, "n_train": int(len(m.y)),
            "n_test": n_test, "folds": int(len(np.unique(m.fold))), "members": m.names,
            "weights": dict(zip(m.names, np.round(weights, 4).tolist())), "versus": versus, "cv": cv_scores,
            "test": test_scores}
