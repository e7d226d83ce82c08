"""What a trained stage writes when its cross-validation is done: oof.csv, test.csv,
history.csv, fold_times.csv, its scores and figures (and a Grad-CAM montage), and the metrics
``Stage.finish`` records."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ... import metrics
from ...folds import CVResult
from ...predict import gradcam
from ...report import plots
from ...runfolder import layout
from ..stage import Stage
from .inputs import TrainingData


def proba_frame(ids, proba, class_names) -> pd.DataFrame:
    """Return ``id, p_<class>...`` rows of probabilities (test.csv's columns)."""
    return pd.DataFrame({"id": ids, **{f"p_{c}": proba[:, i] for i, c in enumerate(class_names)}})


def format_scores(name: str, s: dict) -> str:
    """Return one readable line of scores."""
    lo, hi = s["accuracy_ci"]
    auc = s["macro_auc"]
    rec = ", ".join(f"{c} {r:.0%}" for c, r in s["per_class_recall"].items())
    return (f"{name}: accuracy {s['accuracy']:.1%} [95% CI {lo:.1%}–{hi:.1%}], macro AUC "
            f"{'n/a' if auc != auc else f'{auc:.3f}'}, recall: {rec} (n={s['n']})")


def _write_tables(st: Stage, td: TrainingData, cv: CVResult) -> None:
    names = td.class_names
    oof = proba_frame(td.ids, cv.oof, names)
    oof.insert(1, "fold", td.fold)
    oof.insert(2, "label", [names[i] for i in td.y])
    st.write_csv(layout.OOF, oof)
    if cv.test is not None:
        st.write_csv(layout.TEST, proba_frame(td.ds.test_ids, cv.test, names))
    st.write_csv(layout.HISTORY, cv.history)
    st.write_csv(layout.FOLD_TIMES, cv.folds)


def _figures(st: Stage, cv: CVResult, names: list[str], cv_scores: dict, test_scores: dict | None) -> None:
    if len(cv.history):  # stages without epochs (the classical baseline) have no curves
        kept = dict(zip(cv.folds.fold, cv.folds.best_epoch)) if "best_epoch" in cv.folds else None
        st.figure(plots.learning_curves(cv.history, kept), "learning_curves",
                  "Learning curves per fold (star: the epoch kept)")
    st.figure(plots.confusion_matrix(np.array(cv_scores["confusion"]), names, title="Out-of-fold confusion matrix"),
              "confusion_cv", "Out-of-fold confusion matrix (row-normalised)")
    st.figure(plots.per_class_recall(cv_scores["per_class_recall"], title="Out-of-fold recall per class"),
              "recall_cv", "Out-of-fold recall per class")
    if test_scores:
        st.figure(plots.confusion_matrix(np.array(test_scores["confusion"]), names, title="Test confusion matrix"),
                  "confusion_test", "Test-set confusion matrix (labels used for scoring only)")


def save_model_outputs(st: Stage, td: TrainingData, cv: CVResult, P: dict, model_name: str) -> dict:
    """Write oof.csv, test.csv, history.csv, fold_times.csv and the stage's figures; return the
    metrics dict for ``st.finish`` (CV scores, and test scores when test labels exist)."""
    names = td.class_names
    _write_tables(st, td, cv)
    cv_scores = metrics.summary(td.y, cv.oof, names, seed=P["seed"])
    if P.get("tta"):
        cv_scores["without_tta"] = metrics.summary(td.y, cv.oof_plain, names, seed=P["seed"])
    test_scores = None
    if cv.test is not None and td.ds.test_labels is not None:
        test_scores = metrics.summary(td.ds.test_labels, cv.test, names, seed=P["seed"])
    _figures(st, cv, names, cv_scores, test_scores)
    print(format_scores("out-of-fold", cv_scores))
    if "without_tta" in cv_scores:
        print(format_scores("out-of-fold without TTA", cv_scores["without_tta"]))
    if test_scores:
        print(format_scores("test", test_scores))
    return {"kind": "model", "model": model_name, "classes": names, "n_train": int(len(td.y)),
            "n_test": int(len(td.x_test)), "folds": int(P["folds"]), "cv": cv_scores, "test": test_scores,
            "fold_times": cv.folds.to_dict("records"), "skipped": td.ds.skipped,
            **({"weights_note": P["weights_note"]} if P.get("weights_note") else {})}


def gradcam_figure(st: Stage, td: TrainingData, cv: CVResult, P: dict) -> pd.DataFrame:
    """Save the Grad-CAM montage (``P['gradcam']`` most confident right and wrong out-of-fold
    images per class, each explained by its own fold's model); return the cases shown with
    their ids (empty when ``gradcam`` is 0)."""
    if not P.get("gradcam"):
        return pd.DataFrame()
    cases = gradcam.pick_cases(td.y, cv.oof, td.fold, P["gradcam"])
    models = {k: st.dir / layout.fold_dir(k) / layout.FOLD_MODEL for k in np.unique(td.fold)}
    maps = gradcam.explain_oof(models, td.x, cases)
    st.figure(plots.gradcam_montage(td.x, maps, cases, td.class_names, P["gradcam"]), "gradcam",
              "Grad-CAM: most confident right and wrong out-of-fold predictions per class "
              "(heat = evidence for the predicted class)")
    names = td.class_names
    return cases.assign(id=[td.ids[i] for i in cases["index"]], label=[names[i] for i in cases.label],
                        predicted=[names[i] for i in cases.predicted]).drop(columns="index")
