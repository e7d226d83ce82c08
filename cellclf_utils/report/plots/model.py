"""Figures of trained stages: confusion matrices, learning curves, recall per class, members
and ensembles, pseudo-labelling before/after, Grad-CAM montages."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .common import colours, message, rotate_if_crowded


def confusion_matrix(cm, class_names, normalize=True, title=None):
    """Return a heatmap of ``cm`` (rows true, columns predicted) annotated with counts and,
    with ``normalize``, row percentages (recall per class on the diagonal), coloured by them."""
    import seaborn as sns

    cm = np.asarray(cm)
    rows = cm.sum(axis=1, keepdims=True)
    pct = np.divide(100.0 * cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    annot = np.array([[f"{c}\n{p:.0f}%" if normalize else f"{c}" for c, p in zip(rc, rp)]
                      for rc, rp in zip(cm, pct)])
    n = len(class_names)
    fig, ax = plt.subplots(layout="constrained", figsize=(1.1 * n + 3, 0.9 * n + 2.2))
    sns.heatmap(pct if normalize else cm, annot=annot, fmt="", cmap="Blues", square=True,
                vmin=0, vmax=100 if normalize else None, xticklabels=class_names, yticklabels=class_names,
                annot_kws={"fontsize": 9 if n <= 5 else 7},
                cbar_kws={"label": "% of true class" if normalize else "images"}, ax=ax)
    ax.set(xlabel="predicted", ylabel="true", title=title or "Confusion matrix")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    plt.setp(ax.get_yticklabels(), rotation=0)
    return fig


def _metric_groups(history: pd.DataFrame) -> dict[str, list[str]]:
    """Return {metric: [train column, val column]} from the numeric history columns, in
    column order (fold, epoch and labels such as the training phase are not metrics)."""
    out: dict[str, list[str]] = {}
    for c in history.columns:
        if c in ("fold", "epoch") or not pd.api.types.is_numeric_dtype(history[c]):
            continue
        out.setdefault(c[4:] if c.startswith("val_") else c, []).append(c)
    return out


def learning_curves(history: pd.DataFrame, kept: dict | None = None):
    """Return one subplot per metric (train solid, validation dashed), one colour per fold.
    ``history`` has columns fold, epoch and any of loss/val_loss/accuracy/val_auc/lr...; with
    a ``phase`` column, the head warm-up epochs are shaded. ``kept``: {fold: epoch whose
    weights were kept}, starred on each validation curve (with early stopping the curve's
    end shows where the fold stopped)."""
    groups = _metric_groups(history)
    if history.empty or not groups:
        return message("no training history", "Learning curves")
    h = history.copy()
    if "fold" not in h:
        h["fold"] = 0
    if "epoch" not in h:
        h["epoch"] = h.groupby("fold").cumcount()
    folds = sorted(h["fold"].unique())
    palette = colours(len(folds))
    head = h[h["phase"] == "head"].epoch if "phase" in h else pd.Series(dtype=float)
    head_epochs = head if len(head) else None
    ncols = 2 if len(groups) == 4 else min(len(groups), 3)
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, layout="constrained", figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        fig.delaxes(ax)
    for ax, (metric, cols) in zip(axes.flat, groups.items()):
        for colour, f in zip(palette, folds):
            d = h[h.fold == f]
            for c in cols:
                ax.plot(d.epoch, d[c], color=colour, ls="--" if c.startswith("val_") else "-",
                        marker="." if len(d) < 15 else None)
                if kept and f in kept and c.startswith("val_"):
                    at = d[d.epoch == kept[f]]
                    ax.plot(at.epoch, at[c], ls="none", marker="*", ms=10, color=colour, mec="black", mew=0.5)
        if metric in ("lr", "learning_rate") and (h[cols].to_numpy() > 0).all():
            ax.set_yscale("log")
        ax.set(title=metric, xlabel="epoch")
        ax.grid(alpha=0.3)
        if head_epochs is not None:
            ax.axvspan(head_epochs.min() - 0.5, head_epochs.max() + 0.5, color="grey", alpha=0.12, lw=0)
    # one legend for the figure: colour = fold, line style = train/validation
    handles = [plt.Line2D([], [], color=c, label=f"fold {f}") for c, f in zip(palette, folds)]
    handles += [plt.Line2D([], [], color="grey", ls="-", label="train"),
                plt.Line2D([], [], color="grey", ls="--", label="validation")]
    if head_epochs is not None:
        handles.append(plt.Rectangle((0, 0), 1, 1, color="grey", alpha=0.12, label="head warm-up"))
    if kept:
        handles.append(plt.Line2D([], [], ls="none", marker="*", ms=10, color="grey", mec="black", mew=0.5,
                                  label="epoch kept"))
    fig.suptitle("Learning curves")
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    return fig


def per_class_recall(recall: dict, title=None):
    """Return a bar chart of recall per class (0-1), annotated in %, with the mean
    (balanced accuracy) as a dashed line."""
    names, values = list(recall), [float(v) for v in recall.values()]
    fig, ax = plt.subplots(layout="constrained", figsize=(max(5, 0.9 * len(names) + 2), 3.8))
    bars = ax.bar(names, values, color=colours(len(names)))
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=2, fontsize=9)
    if values:  # labelled just right of the axes, where no bar can hide it
        m = float(np.mean(values))
        ax.axhline(m, color="k", ls="--", lw=1)
        ax.text(1.01, m, f"mean\n{m:.0%}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set(xlabel="class", ylabel="recall", title=title or "Recall per class")
    rotate_if_crowded(ax, names)
    return fig


def model_comparison(table: pd.DataFrame, floor: float | None = None, title=None):
    """Return horizontal bars of out-of-fold accuracy with 95% CIs (columns model, accuracy,
    ci_low, ci_high), ensembles in a second colour, and the majority-class floor if given."""
    t = table.iloc[::-1]  # best on top
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 0.45 * len(t) + 1.4))
    bar_colours = ["tab:orange" if str(m).startswith("ensemble") else "tab:blue" for m in t.model]
    err = np.vstack([t.accuracy - t.ci_low, t.ci_high - t.accuracy])
    bars = ax.barh(list(t.model), t.accuracy, xerr=err, color=bar_colours, capsize=3)
    ax.bar_label(bars, labels=[f"{a:.1%}" for a in t.accuracy], padding=18, fontsize=8)
    if floor is not None:
        ax.axvline(floor, color="k", ls=":", lw=1)
        ax.text(floor, 0.005, " largest class", transform=ax.get_xaxis_transform(), fontsize=8, va="bottom")
    ax.set_xlim(0, 1.1)
    ax.set(xlabel="out-of-fold accuracy (95% CI)", title=title or "Members and ensembles")
    return fig


def before_after(table: pd.DataFrame, title=None):
    """Return paired bars of out-of-fold accuracy before and after pseudo-labelling, one pair
    per teacher and round (columns teacher, round, cv_before, cv_after)."""
    names = [f"{t}\nround {r}" for t, r in zip(table.teacher, table["round"])]
    x = np.arange(len(names))
    fig, ax = plt.subplots(layout="constrained", figsize=(max(5, 1.6 * len(names) + 2), 3.8))
    for offset, col, label in ((-0.2, "cv_before", "teacher"), (0.2, "cv_after", "student (+ pseudo-labels)")):
        bars = ax.bar(x + offset, table[col], 0.4, label=label)
        ax.bar_label(bars, labels=[f"{v:.1%}" for v in table[col]], padding=2, fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.12)
    ax.set(ylabel="out-of-fold accuracy", title=title or "Pseudo-labelling: before and after")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def gradcam_montage(images, maps, cases: pd.DataFrame, class_names, per_class: int, title=None):
    """Return a grid of Grad-CAM overlays: one row per true class, its ``per_class`` most
    confident right predictions, then its ``per_class`` most confident wrong ones (columns
    of ``gradcam.pick_cases``: index, label, predicted, confidence, correct; ``images`` are
    indexed by ``index``, ``maps`` align with ``cases``' rows). Empty cells: no such case."""
    n = len(class_names)
    if not len(cases):
        return message("no images to explain", title)
    fig, axes = plt.subplots(n, 2 * per_class, layout="constrained", squeeze=False,
                             figsize=(1.35 * 2 * per_class + 1.2, 1.55 * n + 0.8))
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_box_aspect(1)  # empty cells as square as image cells, so the row headers line up
        for s in ax.spines.values():
            s.set_visible(False)
    cases = cases.reset_index(drop=True)
    for c in range(n):
        for right, offset in ((True, 0), (False, per_class)):
            rows = cases.index[(cases.label == c) & (cases.correct == right)][:per_class]
            if not len(rows):  # say so, rather than leave a blank that reads like a drawing error
                axes[c, offset].text(0.5, 0.5, "none right" if right else "none wrong", ha="center",
                                     va="center", fontsize=8, color="0.4", transform=axes[c, offset].transAxes)
            for j, r in enumerate(rows):
                ax = axes[c, offset + j]
                ax.imshow(images[cases.loc[r, "index"]])
                ax.imshow(maps[r], cmap="jet", alpha=0.4, vmin=0, vmax=1)
                pred = class_names[cases.loc[r, "predicted"]]
                # the whole class name, on its own line: a cut name reads as another class
                label = f"{cases.loc[r, 'confidence']:.2f}" if right else f"→{pred}\n{cases.loc[r, 'confidence']:.2f}"
                ax.set_title(label, fontsize=8, color="tab:green" if right else "tab:red")
        axes[c, 0].set_ylabel(class_names[c], rotation=0, ha="right", va="center", fontsize=9)
    axes[0, 0].annotate("right (most confident)", (0, 1.35), xycoords="axes fraction", fontsize=9)
    axes[0, per_class].annotate("wrong (most confident)", (0, 1.35), xycoords="axes fraction", fontsize=9)
    fig.suptitle(title or "Grad-CAM: where the model looked (its predicted class)")
    return fig
