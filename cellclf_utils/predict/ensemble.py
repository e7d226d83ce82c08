"""Ensembles of finished stages, fitted on out-of-fold predictions and scored without optimism.

Every fitted combiner (weights, stacking, class biases) is scored by nested cross-validation
on the run's folds: for each fold, fit on the other folds' out-of-fold predictions, apply to
this fold. The ensemble's own out-of-fold score is then as honest as a single stage's.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from .. import metrics
from ..runfolder import Run, layout
from . import members as members_mod

EPS = 1e-7


@dataclass
class Members:
    names: list[str]        # stage folders
    classes: list[str]
    ids: list[str]          # training images scored by every member, in one order
    y: np.ndarray           # (N,) class index
    fold: np.ndarray        # (N,) validation fold
    oof: np.ndarray         # (M, N, C) out-of-fold probabilities per member
    test_ids: list[str]
    test: np.ndarray | None  # (M, T, C), or None when a member has no test predictions
    sources: dict[str, str] = field(default_factory=dict)  # <run_id>/<stage> -> folder, members of other runs
    folds: pd.DataFrame | None = None  # the folds.csv every member was cross-validated on


def _finished_models(run: Run) -> list[str]:
    return [st.name for st in run.finished("model") if st.file(layout.OOF).is_file()]


def default_members(run: Run) -> list[str]:
    """Return the finished model stages that scored every image of the run's folds.csv (a
    stage run on a `limit` subset would shrink the ensemble to that subset), or all finished
    model stages when fewer than two did."""
    found = _finished_models(run)
    folds = run.folds()
    full = [s for s in found if folds is not None and len(run.stage(s).oof()) == len(folds)]
    return full if len(full) >= 2 else found


def _checked(run: Run, names: list[str]) -> list[members_mod.Member]:
    """Return the members ``names`` gives, each a finished model stage with out-of-fold predictions."""
    found = _finished_models(run)
    chosen = [members_mod.resolve(run, s) for s in names]
    missing = [m.label for m in chosen if not (m.stage.is_finished and m.stage.file(layout.OOF).is_file()
                                               and m.stage.metrics().get("kind") == "model")]
    if missing or len(chosen) < 2:
        raise ValueError(f"an ensemble needs at least 2 finished model stages of run {run.id} or of other runs; "
                         f"asked for {', '.join(names) or 'all'}, finished here: {', '.join(found) or 'none'}"
                         + (f" (missing: {', '.join(missing)})" if missing else ""))
    return chosen


def load(run: Run, stages: list[str] | None = None) -> Members:
    """Return the out-of-fold (and test) predictions of finished model stages (``stages``: folder
    names of ``run``'s stages, or paths to other runs' stages on the same folds; default:
    ``default_members``), aligned on the images all of them scored."""
    chosen = _checked(run, stages or default_members(run))
    folds = members_mod.same_folds(run, chosen)
    names = [m.label for m in chosen]
    frames = {m.label: m.stage.oof() for m in chosen}
    classes = [c[2:] for c in frames[names[0]].columns if c.startswith("p_")]
    for s, f in frames.items():
        if [c[2:] for c in f.columns if c.startswith("p_")] != classes:
            raise ValueError(f"stage {s} predicts other classes than {names[0]}: members must share classes")
    common = set.intersection(*(set(f.id) for f in frames.values()))
    ref = frames[names[0]]
    ref = ref[ref.id.isin(common)].reset_index(drop=True)
    cols = [f"p_{c}" for c in classes]
    oof = np.stack([frames[s].set_index("id").loc[ref.id, cols].to_numpy(float) for s in names])
    tests = [m.stage.test() for m in chosen]
    test, test_ids = None, []
    if all(t is not None for t in tests):
        tf = [t.set_index("id") for t in tests]
        test_ids = list(tf[0].index)
        test = np.stack([t.loc[test_ids, cols].to_numpy(float) for t in tf])
    y = np.array([classes.index(c) for c in ref.label])
    return Members(names, classes, list(ref.id), y, ref.fold.to_numpy(), oof, test_ids, test,
                   members_mod.sources(chosen), folds)


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    """Return the mean negative log probability of the true class."""
    return float(-np.log(np.clip(p[np.arange(len(y)), y], EPS, 1)).mean())


def combine(P: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Return the weighted mean over members of (M, N, C) probabilities (plain mean if no w)."""
    w = np.full(len(P), 1 / len(P)) if w is None else np.asarray(w, float)
    return np.tensordot(w, P, axes=1)


def fit_weights(P: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return member weights on the simplex minimising the log loss of their weighted mean
    (softmax parameterisation, L-BFGS from equal weights)."""
    def loss(z):
        w = np.exp(z - z.max())
        return log_loss(combine(P, w / w.sum()), y)
    z = minimize(loss, np.zeros(len(P)), method="L-BFGS-B").x
    w = np.exp(z - z.max())
    return w / w.sum()


def stack_fit(P: np.ndarray, y: np.ndarray, C: float = 1.0) -> LogisticRegression:
    """Return a multinomial logistic regression on the members' log probabilities."""
    return LogisticRegression(C=C, max_iter=2000).fit(_stack_features(P), y)


def _stack_features(P: np.ndarray) -> np.ndarray:
    return np.log(np.clip(P, EPS, 1)).transpose(1, 0, 2).reshape(P.shape[1], -1)


def stack_apply(model: LogisticRegression, P: np.ndarray, n_classes: int) -> np.ndarray:
    """Return (N, C) probabilities of a stacker, columns for every class."""
    out = np.zeros((P.shape[1], n_classes))
    out[:, model.classes_] = model.predict_proba(_stack_features(P))
    return out


def fit_bias(p: np.ndarray, y: np.ndarray, grid: np.ndarray | None = None, rounds: int = 2) -> np.ndarray:
    """Return per-class offsets added to log probabilities that maximise balanced accuracy
    (mean recall over classes) on (p, y), by coordinate search over ``grid``. Raising a
    class's offset trades other classes' recall for its own (the write-up's idea of weighting
    the worsened class)."""
    grid = np.linspace(-3, 3, 61) if grid is None else grid
    logp = np.log(np.clip(p, EPS, 1))
    b = np.zeros(p.shape[1])
    for _ in range(rounds):
        for c in range(p.shape[1]):
            scores = []
            for v in grid:
                trial = b.copy()
                trial[c] = v
                scores.append((balanced_accuracy(y, (logp + trial).argmax(1), p.shape[1]), -abs(v)))
            b[c] = grid[max(range(len(grid)), key=lambda i: scores[i])]  # ties: the smaller offset
    return b


def apply_bias(p: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return probabilities with log-offsets ``b`` applied and renormalised."""
    q = np.clip(p, EPS, 1) * np.exp(b)
    return q / q.sum(1, keepdims=True)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int | None = None) -> float:
    """Return the mean recall over the classes present in ``y`` (scikit-learn's balanced accuracy)."""
    with warnings.catch_warnings():  # a predicted class absent from y is ignored, as intended
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y, pred))


def nested(fit: Callable, apply: Callable, P: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Return (N, C) out-of-fold predictions of a fitted combiner: for each fold, ``fit(P_train,
    y_train)`` on the other folds and ``apply(params, P_fold)`` on it."""
    out = np.full(P.shape[1:], np.nan)
    for f in np.unique(fold):
        val = fold == f
        out[val] = apply(fit(P[:, ~val], y[~val]), P[:, val])
    return out


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """Return McNemar's exact test of two classifiers on the same images: the counts of
    images only A gets right and only B gets right, and the two-sided p-value."""
    a_ok, b_ok = pred_a == y, pred_b == y
    only_a, only_b = int((a_ok & ~b_ok).sum()), int((~a_ok & b_ok).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"only_a": only_a, "only_b": only_b, "p_value": p}


def _fit_weights_bias(P, y):
    w = fit_weights(P, y)
    return w, fit_bias(combine(P, w), y)


COMBINERS = ("mean", "weights", "stacking", "weights+bias")


def combiners(n_classes: int) -> dict[str, tuple[Callable, Callable]]:
    """Return name -> (fit(P, y) -> params, apply(params, P) -> probabilities) for each way
    of combining members: plain mean, optimised weights, logistic-regression stacking, and
    optimised weights plus class biases (toward balanced recall)."""
    made = {
        "mean": (lambda P, y: None, lambda _, P: combine(P)),
        "weights": (fit_weights, lambda w, P: combine(P, w)),
        "stacking": (stack_fit, lambda model, P: stack_apply(model, P, n_classes)),
        "weights+bias": (_fit_weights_bias, lambda wb, P: apply_bias(combine(P, wb[0]), wb[1])),
    }
    return {name: made[name] for name in COMBINERS}


def best_member(m: Members) -> str:
    """Return the name of the member with the highest out-of-fold accuracy (first on ties)."""
    return max(m.names, key=lambda n: (m.oof[m.names.index(n)].argmax(1) == m.y).mean())


def versus_best(m: Members, proba: np.ndarray) -> dict:
    """Return how out-of-fold ``proba`` compares with the best single member: its name and
    accuracy, the accuracy gain, the discordant counts and McNemar's p."""
    best = best_member(m)
    pred, best_pred = proba.argmax(1), m.oof[m.names.index(best)].argmax(1)
    t = mcnemar(m.y, pred, best_pred)
    best_acc = float((best_pred == m.y).mean())
    return {"best_single": best, "best_single_accuracy": best_acc, "gain": float((pred == m.y).mean()) - best_acc,
            "only_submitted_right": t["only_a"], "only_best_right": t["only_b"], "mcnemar_p": t["p_value"]}


def evaluate(m: Members, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Return (table, out-of-fold probabilities by name) for every member and every combiner
    (nested CV). The table has accuracy with bootstrap CI, macro AUC, recall per class and
    McNemar's test against the best single member; best accuracy first."""
    oof = {name: m.oof[i] for i, name in enumerate(m.names)}
    for name, (fit, apply) in combiners(len(m.classes)).items():
        oof[f"ensemble: {name}"] = nested(fit, apply, m.oof, m.y, m.fold)
    rows = []
    for name, p in oof.items():
        s = metrics.summary(m.y, p, m.classes, seed=seed)
        row = {"model": name, "accuracy": s["accuracy"], "ci_low": s["accuracy_ci"][0],
               "ci_high": s["accuracy_ci"][1], "macro_auc": s["macro_auc"],
               **{f"recall_{c}": r for c, r in s["per_class_recall"].items()}}
        if name.startswith("ensemble: "):
            v = versus_best(m, p)
            row.update({"vs": v["best_single"], "only_ensemble_right": v["only_submitted_right"],
                        "only_best_right": v["only_best_right"], "mcnemar_p": v["mcnemar_p"]})
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)
    return table, oof


def choose(table: pd.DataFrame, submit: str) -> str:
    """Return the model to submit: ``submit`` as named in the table ('mean', 'stacking', ...
    for combiners, or a stage), or 'best' = the highest out-of-fold accuracy."""
    names = list(table.model)
    if submit == "best":
        return names[0]
    for candidate in (submit, f"ensemble: {submit}"):
        if candidate in names:
            return candidate
    raise ValueError(f"parameter 'submit' must be best or one of {', '.join(n.replace('ensemble: ', '') for n in names)} "
                     f"(got {submit!r})")


def fit_full(m: Members, name: str):
    """Return ``name``'s parameters fitted on all out-of-fold predictions (for the test set)."""
    if not name.startswith("ensemble: "):
        return None
    fit, _ = combiners(len(m.classes))[name.removeprefix("ensemble: ")]
    return fit(m.oof, m.y)


def predict_test(m: Members, name: str) -> np.ndarray | None:
    """Return (T, C) test probabilities of member or combiner ``name`` (combiners fitted on all
    out-of-fold predictions), or None when the members have no test predictions."""
    if m.test is None:
        return None
    if not name.startswith("ensemble: "):
        return m.test[m.names.index(name)]
    _, apply = combiners(len(m.classes))[name.removeprefix("ensemble: ")]
    return apply(fit_full(m, name), m.test)


def submission(test_ids: list[str], proba: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Return the submission table: one row per test image, ``id,label``."""
    return pd.DataFrame({"id": test_ids, "label": [classes[i] for i in proba.argmax(1)]})
