"""What every notebook stage does at its start and its end, so notebooks stay thin.

start: validate parameters, open the stage folder. training_data: dataset, the run's
folds, images. save_model_outputs: oof.csv, test.csv, history.csv, scores and figures.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

import keras

from ..config import params
from ..data import dataset as data
from ..folds import kfold as folds
from ..model import augment, backbones, cnn as models
from ..predict import ensemble, gradcam
from ..report import plots
from ..train import cross_validation as train, pseudo
from ..train.device import precision
from .. import metrics, paths
from . import stage as runs


def start(stage: str, namespace: dict) -> tuple[runs.Stage, dict]:
    """Return ``(stage folder, validated parameters)`` for a notebook's globals()."""
    P = params.validate(stage, namespace)
    return runs.Stage.open(stage, P), P


@dataclass
class TrainingData:
    ds: data.Dataset
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


def load_dataset(P: dict) -> data.Dataset:
    """Return the dataset named by the parameters (embedded synthetic set when data_dir is '')."""
    # no progress bars in notebooks: loading takes seconds, and text bars clutter the saved pages
    return data.load_dataset(data.resolve_source(P["data_dir"], progress=False), P["classes"],
                             P["on_bad_image"], progress=False)


def training_data(st: runs.Stage, P: dict, ds: data.Dataset | None = None) -> TrainingData:
    """Return images, labels and folds for a model stage; draws the run's folds if no stage
    has yet. ``limit`` keeps a fixed per-class subset of them."""
    ds = ds or load_dataset(P)
    fdf = folds.ensure(st.run_dir, ds, P["folds"], P["seed"], progress=False)
    use = folds.subset(fdf, P.get("limit", 0), P["seed"])
    index = use.index.to_numpy()
    x = ds.images(P["image_size"], P["resize"], progress=False)[index]
    x_test = ds.test_images(P["image_size"], P["resize"], progress=False)
    td = TrainingData(ds, use.reset_index(drop=True), index, x, ds.labels[index], use.fold.to_numpy(),
                      x_test, [ds.ids[i] for i in index])
    counts = ", ".join(f"{c} {int((td.y == i).sum())}" for i, c in enumerate(ds.class_names))
    print(f"{len(td.y)} training images ({counts}); {len(x_test)} test images; "
          f"{P['folds']} folds; {P['image_size']} px")
    return td


def weights_path(weights: str) -> str:
    """Return ``weights`` as given ('imagenet', 'none') or as an absolute path to an
    existing file (relative paths: from the working directory, else the project root)."""
    if weights in ("imagenet", "none"):
        return weights
    p = paths.resolve(weights)
    if not p.is_file():
        raise params.ParameterError(
            f"parameter 'weights' must be imagenet, none or an existing .weights.h5 file "
            f"(got {weights!r}; looked for {p})")
    return str(p)


def backbone_model(P: dict, n_classes: int) -> tuple[Callable[[], keras.Model], str]:
    """Return ``(build, description)`` for a fine-tuning stage. The model is built once
    (failing fast on bad weights or sizes) and ``build()`` hands it back with its initial
    weights and freeze flags restored, so folds reuse one model instead of rebuilding it."""
    policy = precision.auto()
    unfreeze = None if P["unfreeze_from"] == "default" else P["unfreeze_from"]
    bn = None if P["train_bn_in_frozen"] == "default" else P["train_bn_in_frozen"] == "true"
    spec = backbones.get(P["backbone"])
    if P["image_size"] < spec.min_size:
        raise params.ParameterError(f"parameter 'image_size' must be at least {spec.min_size} for "
                                    f"{P['backbone']} (got {P['image_size']})")
    keras.utils.set_random_seed(P["seed"])  # the new head's initial weights
    model = backbones.build(P["backbone"], P["image_size"], n_classes, weights=weights_path(P["weights"]),
                            pooling=P["pooling"], dropout=P["dropout"], unfreeze_from=unfreeze,
                            train_bn_in_frozen=bn, augment=augment.pipeline(P["augment"], P["seed"]),
                            freeze_bn=P.get("freeze_bn", False))
    initial = model.get_weights()
    restore_freeze = backbones.remember_trainable(model.get_layer("base"))

    def build() -> keras.Model:
        model.set_weights(initial)
        restore_freeze()
        return model

    table = freeze_table(model)
    name = backbones.weights_label(P["weights"])
    desc = (f"{P['backbone']} weights={name} unfreeze_from={P['unfreeze_from']} {P['pooling']} "
            f"dropout={P['dropout']}")
    print(f"{P['backbone']} @ {P['image_size']} px, weights {name}, {policy}: "
          f"{int(table.trainable.sum())} of {len(table)} weighted backbone layers trainable")
    return build, desc


def finetune_title(P: dict) -> str:
    """Return the report title of a fine-tuning stage, named for the backbone it ran."""
    return f"Fine-tuning {backbones.get(P['backbone']).constructor}"


def freeze_table(model: keras.Model) -> pd.DataFrame:
    """Return the backbone's weighted layers with index, type and whether each trains."""
    base = model.get_layer("base")
    rows = [{"index": i, "layer": layer.name, "type": type(layer).__name__, "trainable": layer.trainable,
             "parameters": int(sum(np.prod(w.shape) for w in layer.weights))}
            for i, layer in enumerate(base.layers) if layer.weights]
    return pd.DataFrame(rows)


def _proba_frame(ids, proba, class_names) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, **{f"p_{c}": proba[:, i] for i, c in enumerate(class_names)}})


def save_model_outputs(st: runs.Stage, td: TrainingData, cv, P: dict, model_name: str) -> dict:
    """Write oof.csv, test.csv, history.csv and the stage's figures; return the metrics
    dict for ``st.finish`` (CV scores, and test scores when test labels exist)."""
    names = td.class_names
    oof = _proba_frame(td.ids, cv.oof, names)
    oof.insert(1, "fold", td.fold)
    oof.insert(2, "label", [names[i] for i in td.y])
    st.write_csv("oof.csv", oof)
    if cv.test is not None:
        st.write_csv("test.csv", _proba_frame(td.ds.test_ids, cv.test, names))
    st.write_csv("history.csv", cv.history)
    st.write_csv("fold_times.csv", cv.folds)
    cv_scores = metrics.summary(td.y, cv.oof, names, seed=P["seed"])
    if P.get("tta"):
        cv_scores["without_tta"] = metrics.summary(td.y, cv.oof_plain, names, seed=P["seed"])
    test_scores = None
    if cv.test is not None and td.ds.test_labels is not None:
        test_scores = metrics.summary(td.ds.test_labels, cv.test, names, seed=P["seed"])
    if len(cv.history):  # stages without epochs (the classical baseline) have no curves
        kept = dict(zip(cv.folds.fold, cv.folds.best_epoch)) if "best_epoch" in cv.folds else None
        st.figure(plots.learning_curves(cv.history, kept), "learning_curves",
                  "Learning curves per fold (star: the epoch kept)")
    st.figure(plots.confusion_matrix(np.array(cv_scores["confusion"]), names,
                                     title="Out-of-fold confusion matrix"),
              "confusion_cv", "Out-of-fold confusion matrix (row-normalised)")
    st.figure(plots.per_class_recall(cv_scores["per_class_recall"], title="Out-of-fold recall per class"),
              "recall_cv", "Out-of-fold recall per class")
    if test_scores:
        st.figure(plots.confusion_matrix(np.array(test_scores["confusion"]), names,
                                         title="Test confusion matrix"),
                  "confusion_test", "Test-set confusion matrix (labels used for scoring only)")
    print(format_scores("out-of-fold", cv_scores))
    if "without_tta" in cv_scores:
        print(format_scores("out-of-fold without TTA", cv_scores["without_tta"]))
    if test_scores:
        print(format_scores("test", test_scores))
    return {"kind": "model", "model": model_name, "classes": names, "n_train": int(len(td.y)),
            "n_test": int(len(td.x_test)), "folds": int(P["folds"]), "cv": cv_scores, "test": test_scores,
            "fold_times": cv.folds.to_dict("records"), "skipped": td.ds.skipped}


def gradcam_figure(st: runs.Stage, td: TrainingData, cv, build: Callable[[], keras.Model], P: dict) -> pd.DataFrame:
    """Save the Grad-CAM montage (``P['gradcam']`` most confident right and wrong out-of-fold
    images per class, each explained by its own fold's model); return the cases shown with
    their ids (empty when ``gradcam`` is 0)."""
    if not P.get("gradcam"):
        return pd.DataFrame()
    cases = gradcam.pick_cases(td.y, cv.oof, td.fold, P["gradcam"])
    maps = gradcam.explain_oof(build, {k: st.dir / f"fold{k}" for k in np.unique(td.fold)}, td.x, cases)
    st.figure(plots.gradcam_montage(td.x, maps, cases, td.class_names, P["gradcam"]), "gradcam",
              "Grad-CAM: most confident right and wrong out-of-fold predictions per class "
              "(heat = evidence for the predicted class)")
    names = td.class_names
    return cases.assign(id=[td.ids[i] for i in cases["index"]], label=[names[i] for i in cases.label],
                        predicted=[names[i] for i in cases.predicted]).drop(columns="index")


def format_scores(name: str, s: dict) -> str:
    """Return one readable line of scores."""
    lo, hi = s["accuracy_ci"]
    auc = s["macro_auc"]
    rec = ", ".join(f"{c} {r:.0%}" for c, r in s["per_class_recall"].items())
    return (f"{name}: accuracy {s['accuracy']:.1%} [95% CI {lo:.1%}–{hi:.1%}], macro AUC "
            f"{'n/a' if auc != auc else f'{auc:.3f}'}, recall: {rec} (n={s['n']})")


def eda_metrics(ds: data.Dataset, dup, cross: pd.DataFrame) -> dict:
    """Return the EDA stage's metrics.json content."""
    y = ds.labels
    sizes = ds.frame().groupby(["width", "height"]).size()
    group_sizes = pd.Series(dup.group).value_counts()
    return {"kind": "eda", "title": "EDA and colour", "classes": ds.class_names,
            "n_train": len(ds.items), "n_test": len(ds.test_items),
            "counts": {c: int((y == i).sum()) for i, c in enumerate(ds.class_names)},
            "image_sizes": {f"{w}x{h}": int(n) for (w, h), n in sizes.items()},
            "duplicate_groups": int((group_sizes > 1).sum()),
            "images_in_duplicate_groups": int(group_sizes[group_sizes > 1].sum()),
            "train_test_duplicates": int(len(cross)),
            "skipped": ds.skipped, "ignored": ds.ignored}


def save_ensemble_outputs(st: runs.Stage, ds: data.Dataset, m, table: pd.DataFrame, oof: dict,
                          choice: str, P: dict) -> dict:
    """Write leaderboard.csv, submission.csv (test images, when members predicted them) and the
    ensemble's figures; return the metrics dict for ``st.finish`` (CV scores of ``choice``)."""
    names = m.classes
    st.write_csv("leaderboard.csv", table)
    cv_scores = metrics.summary(m.y, oof[choice], names, seed=P["seed"])
    floor = float(np.bincount(m.y).max() / len(m.y))
    st.figure(plots.model_comparison(table, floor), "models", "Members and ensembles, out-of-fold accuracy")
    st.figure(plots.per_class_recall(cv_scores["per_class_recall"], title=f"Recall per class: {choice}"),
              "recall_cv", f"Out-of-fold recall per class of the submitted model ({choice})")
    st.figure(plots.confusion_matrix(np.array(cv_scores["confusion"]), names, title=choice),
              "confusion_cv", "Out-of-fold confusion matrix of the submitted model (row-normalised)")
    test_scores, n_test = None, 0
    proba = ensemble.predict_test(m, choice)
    if proba is not None:
        sub = ensemble.submission(m.test_ids, proba, names)
        st.write_csv("submission.csv", sub)
        n_test = len(sub)
        if ds.test_labels is not None:
            truth = dict(zip(ds.test_ids, ds.test_labels))
            test_scores = metrics.summary(np.array([truth[i] for i in m.test_ids]), proba, names, seed=P["seed"])
    weights = ensemble.fit_full(m, "ensemble: weights")
    # the question the report answers: is the submitted model really better than the best single stage?
    versus = ensemble.versus_best(m, oof[choice])
    print(format_scores(f"out-of-fold, {choice}", cv_scores))
    if test_scores:
        print(format_scores(f"test, {choice}", test_scores))
    return {"kind": "ensemble", "model": choice, "classes": names, "n_train": int(len(m.y)),
            "n_test": n_test, "folds": int(len(np.unique(m.fold))), "members": m.names,
            "weights": dict(zip(m.names, np.round(weights, 4).tolist())), "versus": versus, "cv": cv_scores,
            "test": test_scores}


def stage_model(stage_params: dict, n_classes: int) -> Callable[[], keras.Model]:
    """Return ``build()`` for a finished stage's model from its params.json: its backbone
    (03-05) or the baseline CNN (02)."""
    if "backbone" in stage_params:
        return backbone_model(stage_params, n_classes)[0]
    precision.auto()  # bf16 on an accelerator, as for the backbones
    return lambda: models.baseline_cnn(stage_params["image_size"], n_classes, stage_params["pooling"],
                                       stage_params["dropout"], stage_params["augment"], stage_params["seed"])


def pseudo_label(st: runs.Stage, P: dict, teacher: str) -> tuple[TrainingData, train.CVResult, list[dict], dict]:
    """Retrain finished stage ``teacher`` with pseudo-labelled test images, ``P['rounds']``
    times (each round's student teaches the next); return the teacher's images, the last
    round's CV result, one row per round (teacher's and student's out-of-fold and test
    accuracy, pseudo-labels used and their accuracy where test labels exist) and the
    teacher's parameters (which the student reuses)."""
    TP = {**json.loads((st.run_dir / teacher / "params.json").read_text()), "run_id": P["run_id"]}
    td = training_data(st, TP)
    if not len(td.x_test):
        raise pseudo.PseudoError("the dataset has no test images to pseudo-label (add a test/ folder, "
                                 "or make one with `cellclf data split`)")
    blocked = pseudo.blocked_by_fold(folds.train_test_duplicates(td.ds), dict(zip(td.ids, td.fold)),
                                     td.ds.test_ids)
    proba = {int(k): pseudo.teacher_fold_proba(st.run_dir / teacher, int(k)) for k in np.unique(td.fold)}
    before = json.loads((st.run_dir / teacher / "metrics.json").read_text())
    rows, acc_before = [], (before["cv"]["accuracy"], (before.get("test") or {}).get("accuracy"))
    for r in range(1, P["rounds"] + 1):
        extras = pseudo.fold_extras(proba, td.x_test, P["threshold"], P["per_class_cap"], P["soft"], blocked)
        print(f"{teacher}, round {r}: " + ", ".join(f"fold {k}: {len(e[2])}" for k, e in extras.items())
              + " pseudo-labelled test images")
        # the pseudo-label settings join the fold signature, so --resume never reuses a fold
        # trained on other pseudo-labels
        SP = {**TP, "pseudo": {k: P[k] for k in ("threshold", "per_class_cap", "soft")} | {"round": r}}
        cv = train.cross_validate(stage_model(TP, len(td.class_names)), td.x, td.y, td.fold, td.x_test, SP,
                                  st.dir / teacher / f"round{r}", extra_for_fold=lambda k: extras[k][:2])
        after = metrics.summary(td.y, cv.oof, td.class_names, seed=TP["seed"])
        test_after = (float((cv.test.argmax(1) == td.ds.test_labels).mean())
                      if cv.test is not None and td.ds.test_labels is not None else None)
        rows.append({"teacher": teacher, "round": r, "pseudo_labels": int(np.mean([len(e[2]) for e in extras.values()])),
                     "pseudo_label_accuracy": pseudo.label_accuracy(proba, extras, td.ds.test_labels),
                     "cv_before": acc_before[0], "cv_after": after["accuracy"],
                     "test_before": acc_before[1], "test_after": test_after})
        acc_before = (after["accuracy"], test_after)
        proba = {k: np.load(st.dir / teacher / f"round{r}" / f"fold{k}" / "preds.npz")["test"] for k in proba}
    return td, cv, rows, TP


NO_TEST_IMAGES = ("Not run: the dataset has no unlabeled test images (no test/ folder) to pseudo-label. "
                  "`cellclf data split` makes a copy with a held-out test/; the ensemble (07) goes on without this stage.")


def pseudo_label_teachers(st: runs.Stage, P: dict) -> dict:
    """Return ``{teacher: pseudo_label(...)}`` for the teachers ``P['teacher']`` names (or the
    best trained stage), or {} when the dataset has no unlabeled test images: there is nothing
    to pseudo-label, so the stage says so and finishes as skipped instead of stopping the run."""
    if not len(load_dataset(P).test_ids):
        print(NO_TEST_IMAGES)
        return {}
    return {t: pseudo_label(st, P, t) for t in pseudo.teachers(st.run_dir, P["teacher"])}


def pseudo_table(st: runs.Stage, results: dict) -> pd.DataFrame:
    """Return one row per teacher and round (out-of-fold and test accuracy before and after,
    pseudo-labels used), written to pseudo_labelling.csv with its before/after figure; an
    empty table when nothing was pseudo-labelled."""
    table = pd.DataFrame([row for _, _, rows, _ in results.values() for row in rows])
    if len(table):
        st.write_csv("pseudo_labelling.csv", table)
        st.figure(plots.before_after(table), "before_after", "Out-of-fold accuracy of each teacher and its student")
    return table


def save_best_student(st: runs.Stage, results: dict, P: dict) -> dict:
    """Write the best student's (last round, best out-of-fold accuracy) predictions like any
    model stage's and return the metrics for ``st.finish``, with every teacher's rounds under
    ``pseudo``; without results, a ``skipped`` record that says why (07 leaves it out)."""
    if not results:
        return {"kind": "skipped", "title": "Pseudo-labelling", "note": NO_TEST_IMAGES, "pseudo": []}
    best = max(results, key=lambda t: results[t][2][-1]["cv_after"])
    td, cv, _, TP = results[best]
    scores = save_model_outputs(st, td, cv, TP, model_name=f"{best} + pseudo-labels (threshold {P['threshold']})")
    return {**scores, "title": "Pseudo-labelling",
            "pseudo": [row for _, _, rows, _ in results.values() for row in rows]}
