"""Figures for the notebooks and the run report.

Every plotting function takes plain numpy/pandas inputs and returns a
``matplotlib.figure.Figure`` without closing it: the notebook shows it, the caller saves it
(``save``, or ``runs.Stage.figure``) and closes it. ``images`` are (N, H, W, 3) uint8 RGB,
``labels`` (N,) ints indexing ``class_names``; any number of classes >= 2 works.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.transforms as mtransforms
import numpy as np
import pandas as pd

SPACES = {"rgb": ("red", "green", "blue"),
          "hsv": ("hue", "saturation", "value"),
          "hed": ("haematoxylin", "eosin", "DAB")}


def save(fig, path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created) via a temp file and a rename;
    return the path. A crash mid-write never leaves half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique hidden name opened normally (not mkstemp) so the PNG gets umask permissions
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.png")
    try:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _colours(n: int) -> list:
    """Return ``n`` distinct colours (tab10, then tab20 for many classes)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _message(text: str, title: str | None = None):
    """Return a small figure that only says ``text`` (for empty inputs)."""
    fig, ax = plt.subplots(layout="constrained", figsize=(6, 1.6))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def _rotate_if_crowded(ax, names) -> None:
    # long or many class names overlap when horizontal
    if len(names) > 4 or max(map(len, names)) > 12:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")


def class_counts(labels, class_names, title=None):
    """Return a bar chart of images per class, each bar annotated with its count and share."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(class_names))
    fig, ax = plt.subplots(layout="constrained", figsize=(max(5, 0.9 * len(class_names) + 2), 3.8))
    bars = ax.bar(class_names, counts, color=_colours(len(class_names)))
    total = max(int(counts.sum()), 1)
    ax.bar_label(bars, labels=[f"{c}\n({c / total:.0%})" for c in counts], padding=2, fontsize=9)
    ax.set_ylim(0, counts.max() * 1.25 + 1)  # room for the labels
    ax.set(xlabel="class", ylabel="images", title=title or f"Images per class (n={int(counts.sum())})")
    _rotate_if_crowded(ax, class_names)
    return fig


def image_sizes(sizes_df: pd.DataFrame):
    """Return a scatter of image width vs height per class (columns height, width, label);
    marker area grows with the number of images of that size, hollow markers so classes
    sharing a size stay visible."""
    if len(sizes_df) == 0:
        return _message("no images", "Image sizes")
    agg = sizes_df.groupby(["label", "width", "height"], sort=False).size().rename("n").reset_index()
    classes = sorted(sizes_df["label"].unique())
    fig, ax = plt.subplots(layout="constrained", figsize=(7.5, 4.5))
    for colour, (i, cls) in zip(_colours(len(classes)), enumerate(classes)):
        d = agg[agg.label == cls]
        # shift each class a few points sideways so classes sharing a size do not hide each other
        pts = ax.scatter(d.width, d.height, s=20 + 200 * np.sqrt(d.n / agg.n.max()), facecolors="none",
                         edgecolors=[colour], linewidths=1.5, label=f"{cls} ({int(d.n.sum())})")
        shift = mtransforms.ScaledTranslation(6 * (i - (len(classes) - 1) / 2) / 72, 0, fig.dpi_scale_trans)
        pts.set_offset_transform(ax.transData + shift)
    n_sizes = len(agg[["width", "height"]].drop_duplicates())
    title = "Image sizes per class"
    if n_sizes == 1:
        title += f": all {len(sizes_df)} images are {agg.width[0]}×{agg.height[0]} px"
    ax.set(xlabel="width (px)", ylabel="height (px)", title=title)
    ax.margins(0.15)
    ax.legend(title="class (images)", fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def montage(images, labels, class_names, per_class=8, seed=0, titles=None):
    """Return a grid with one row per class of up to ``per_class`` randomly sampled images
    (seeded); ``titles`` (one per image, e.g. ids) are written above the thumbnails."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    n = len(class_names)
    fig, axes = plt.subplots(n, per_class, layout="constrained", squeeze=False,
                             figsize=(1.3 * per_class + 1, 1.4 * n + 0.5))
    for k, row in enumerate(axes):
        idx = np.flatnonzero(labels == k)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for j, ax in enumerate(row):
            ax.set_xticks([]), ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(pick):
                ax.imshow(images[pick[j]])
                if titles is not None:
                    ax.set_title(str(titles[pick[j]])[-22:], fontsize=7)
        row[0].set_ylabel(f"{class_names[k]}\n({len(idx)})", rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(f"Random images per class (seed {seed})")
    return fig


def _sample_pixels(images, idx, n_pixels, rng) -> np.ndarray:
    """Return up to ``n_pixels`` random (n, 3) uint8 pixels from ``images[idx]``."""
    _, h, w, _ = images.shape
    n = min(n_pixels, len(idx) * h * w)
    return images[rng.choice(idx, n), rng.integers(0, h, n), rng.integers(0, w, n)]


def _to_space(pixels: np.ndarray, space: str) -> np.ndarray:
    """Return (n, 3) float channels of uint8 RGB ``pixels`` in ``space``."""
    rgb = pixels.reshape(-1, 1, 3).astype(np.float64) / 255.0
    if space == "hsv":
        from skimage.color import rgb2hsv
        rgb = rgb2hsv(rgb)
    elif space == "hed":
        from skimage.color import rgb2hed
        rgb = rgb2hed(rgb)
    return rgb.reshape(-1, 3)


def _foreground(pixels: np.ndarray) -> np.ndarray:
    """Return a mask of stained pixels: saturated or dark. The bright slide background
    would otherwise dominate every histogram and hide the stain differences."""
    rgb = pixels.astype(np.float64) / 255.0
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    saturation = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-9), 0.0)
    return (saturation > 0.15) | (mx < 0.6)


def colour_distributions(images, labels, class_names, space, n_pixels=100_000, seed=0, foreground=True):
    """Return per-channel pixel densities in ``space`` ("rgb", "hsv" or "hed"): one subplot
    per channel, one line per class, from up to ``n_pixels`` seeded random pixels per class
    (only stained, non-background pixels when ``foreground``)."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(map(repr, SPACES))} (got {space!r})")
    images, labels = np.asarray(images), np.asarray(labels)
    rng = np.random.default_rng(seed)
    per_class = {}
    for k in range(len(class_names)):
        if not (labels == k).any():
            continue
        px = _sample_pixels(images, np.flatnonzero(labels == k), 4 * n_pixels if foreground else n_pixels, rng)
        if foreground:
            kept = px[_foreground(px)]
            px = kept[:n_pixels] if len(kept) else px[:n_pixels]
        per_class[k] = _to_space(px, space)
    if space == "hed":
        # stain amounts have no fixed range: bin over the central 99% of all pixels
        pooled = np.concatenate(list(per_class.values()) or [np.zeros((1, 3))])
        ranges = [tuple(np.percentile(pooled[:, c], [0.5, 99.5])) for c in range(3)]
    else:
        ranges = [(0.0, 1.0)] * 3
    fig, axes = plt.subplots(1, 3, layout="constrained", figsize=(13, 3.6))
    colours = _colours(len(class_names))
    for c, ax in enumerate(axes):
        lo, hi = ranges[c]
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, 65)
        for k, values in per_class.items():
            dens, _ = np.histogram(values[:, c], bins=edges, density=True)
            ax.plot((edges[:-1] + edges[1:]) / 2, dens, color=colours[k], lw=1.5, label=class_names[k])
        ax.set(title=SPACES[space][c], xlabel="value", ylabel="density" if c == 0 else None)
    axes[-1].legend(fontsize=8, loc="best")
    which = "stained pixels, background excluded" if foreground else "all pixels"
    fig.suptitle(f"Pixel distributions per class ({space.upper()}; {which})")
    return fig


def mean_images(images, labels, class_names):
    """Return the mean image of each class, side by side."""
    labels = np.asarray(labels)
    n = len(class_names)
    fig, axes = plt.subplots(1, n, layout="constrained", figsize=(2.2 * n, 2.7), squeeze=False)
    for k, ax in enumerate(axes[0]):
        members = images[labels == k]
        if len(members):
            ax.imshow(members.mean(axis=0).round().astype(np.uint8))
        else:
            ax.text(0.5, 0.5, "no images", ha="center", va="center")
        ax.set_title(f"{class_names[k]} ({len(members)})", fontsize=9)
        ax.set_axis_off()
    fig.suptitle("Mean image per class")
    return fig


def duplicate_groups(images, ids, groups, max_groups=12, max_members=8):
    """Return thumbnails of the near-duplicate groups (``groups``: one group key per image),
    one row per group of >= 2 images, largest first, captioned with their ids; a figure
    saying "no near-duplicates found" when there are none."""
    groups = pd.Series(np.asarray(groups))
    sizes = groups.value_counts(sort=False)
    dup = sizes[sizes >= 2].sort_values(ascending=False, kind="stable")
    if dup.empty:
        return _message("no near-duplicates found", "Near-duplicate groups")
    shown = dup.index[:max_groups]
    cols = min(int(dup.iloc[0]), max_members)
    per_row = max(1, 8 // cols)  # pack small groups side by side, a gap column between groups
    n_rows = -(-len(shown) // per_row)
    width = per_row * (cols + 1) - 1
    ratios = [0.25 if (j + 1) % (cols + 1) == 0 else 1.0 for j in range(width)]
    fig, axes = plt.subplots(n_rows, width, layout="constrained", squeeze=False,
                             gridspec_kw={"width_ratios": ratios},
                             figsize=(max(1.45 * sum(ratios), 5), 1.7 * n_rows + 0.7))
    for ax in axes.flat:
        ax.set_axis_off()
    for i, g in enumerate(shown):
        members = np.flatnonzero(groups.to_numpy() == g)
        row, first = axes[i // per_row], (i % per_row) * (cols + 1)
        for j in range(min(len(members), cols)):
            row[first + j].imshow(images[members[j]])
            row[first + j].set_title(str(ids[members[j]])[-22:], fontsize=7)
        if len(members) > cols:
            row[first + cols - 1].text(1.02, 0.5, f"+{len(members) - cols}", transform=row[first + cols - 1].transAxes,
                                       va="center")
    more = f"; the {len(shown)} largest shown" if len(dup) > len(shown) else ""
    fig.suptitle(f"{len(dup)} near-duplicate groups ({int(dup.sum())} images){more}")
    return fig


def bad_files_table(bad) -> pd.DataFrame:
    """Return the skipped files (a list of {path, reason} dicts or a DataFrame) as a
    DataFrame with columns path, reason; empty with those columns when there are none."""
    df = pd.DataFrame(list(bad) if bad is not None and not isinstance(bad, pd.DataFrame) else bad,
                      columns=["path", "reason"])
    return df.reset_index(drop=True)


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
        return _message("no training history", "Learning curves")
    h = history.copy()
    if "fold" not in h:
        h["fold"] = 0
    if "epoch" not in h:
        h["epoch"] = h.groupby("fold").cumcount()
    folds = sorted(h["fold"].unique())
    colours = _colours(len(folds))
    head = h[h["phase"] == "head"].epoch if "phase" in h else pd.Series(dtype=float)
    head_epochs = head if len(head) else None
    ncols = 2 if len(groups) == 4 else min(len(groups), 3)
    nrows = -(-len(groups) // ncols)
    fig, axes = plt.subplots(nrows, ncols, layout="constrained", figsize=(4.6 * ncols, 3.4 * nrows), squeeze=False)
    for ax in axes.flat[len(groups):]:
        fig.delaxes(ax)
    for ax, (metric, cols) in zip(axes.flat, groups.items()):
        for colour, f in zip(colours, folds):
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
    handles = [plt.Line2D([], [], color=c, label=f"fold {f}") for c, f in zip(colours, folds)]
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
    bars = ax.bar(names, values, color=_colours(len(names)))
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], padding=2, fontsize=9)
    if values:  # labelled just right of the axes, where no bar can hide it
        m = float(np.mean(values))
        ax.axhline(m, color="k", ls="--", lw=1)
        ax.text(1.01, m, f"mean\n{m:.0%}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set(xlabel="class", ylabel="recall", title=title or "Recall per class")
    _rotate_if_crowded(ax, names)
    return fig


def model_comparison(table: pd.DataFrame, floor: float | None = None, title=None):
    """Return horizontal bars of out-of-fold accuracy with 95% CIs (columns model, accuracy,
    ci_low, ci_high), ensembles in a second colour, and the majority-class floor if given."""
    t = table.iloc[::-1]  # best on top
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 0.45 * len(t) + 1.4))
    colours = ["tab:orange" if str(m).startswith("ensemble") else "tab:blue" for m in t.model]
    err = np.vstack([t.accuracy - t.ci_low, t.ci_high - t.accuracy])
    bars = ax.barh(list(t.model), t.accuracy, xerr=err, color=colours, capsize=3)
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
        return _message("no images to explain", title)
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
                label = f"{cases.loc[r, 'confidence']:.2f}" if right else f"→{pred[:12]} {cases.loc[r, 'confidence']:.2f}"
                ax.set_title(label, fontsize=7, color="tab:green" if right else "tab:red")
        axes[c, 0].set_ylabel(class_names[c], rotation=0, ha="right", va="center", fontsize=9)
    axes[0, 0].annotate("right (most confident)", (0, 1.35), xycoords="axes fraction", fontsize=9)
    axes[0, per_class].annotate("wrong (most confident)", (0, 1.35), xycoords="axes fraction", fontsize=9)
    fig.suptitle(title or "Grad-CAM: where the model looked (its predicted class)")
    return fig
