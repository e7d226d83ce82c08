"""Figures of the data (EDA, stage 01): class counts, image sizes, montages, colour distributions
in RGB/HSV/HED, mean images, near-duplicate groups."""
from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.transforms as mtransforms
import numpy as np
import pandas as pd
from skimage.color import rgb2hsv

from ...data import colour
from .common import colours, message, rotate_if_crowded

SPACES = {"rgb": ("red", "green", "blue"),
          "hsv": ("hue", "saturation", "value"),
          "hed": colour.STAINS}


def class_counts(labels, class_names, title=None):
    """Return a bar chart of images per class, each bar annotated with its count and share."""
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(class_names))
    fig, ax = plt.subplots(layout="constrained", figsize=(max(5, 0.9 * len(class_names) + 2), 3.8))
    bars = ax.bar(class_names, counts, color=colours(len(class_names)))
    total = max(int(counts.sum()), 1)
    ax.bar_label(bars, labels=[f"{c}\n({c / total:.0%})" for c in counts], padding=2, fontsize=9)
    ax.set_ylim(0, counts.max() * 1.25 + 1)  # room for the labels
    ax.set(xlabel="class", ylabel="images", title=title or f"Images per class (n={int(counts.sum())})")
    rotate_if_crowded(ax, class_names)
    return fig


def image_sizes(sizes_df: pd.DataFrame):
    """Return a scatter of image width vs height per class (columns height, width, label);
    marker area grows with the number of images of that size, hollow markers so classes
    sharing a size stay visible."""
    if len(sizes_df) == 0:
        return message("no images", "Image sizes")
    agg = sizes_df.groupby(["label", "width", "height"], sort=False).size().rename("n").reset_index()
    if len(agg[["width", "height"]].drop_duplicates()) == 1:  # one point says less than one line
        return message(f"all {len(sizes_df)} images are {agg.width[0]}×{agg.height[0]} px", "Image sizes")
    classes = sorted(sizes_df["label"].unique())
    fig, ax = plt.subplots(layout="constrained", figsize=(7.5, 4.5))
    for edge, (i, cls) in zip(colours(len(classes)), enumerate(classes)):
        d = agg[agg.label == cls]
        # shift each class a few points sideways so classes sharing a size do not hide each other
        pts = ax.scatter(d.width, d.height, s=20 + 200 * np.sqrt(d.n / agg.n.max()), facecolors="none",
                         edgecolors=[edge], linewidths=1.5, label=f"{cls} ({int(d.n.sum())})")
        shift = mtransforms.ScaledTranslation(6 * (i - (len(classes) - 1) / 2) / 72, 0, fig.dpi_scale_trans)
        pts.set_offset_transform(ax.transData + shift)
    ax.set(xlabel="width (px)", ylabel="height (px)", title="Image sizes per class")
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
    """Return (n, 3) float channels of uint8 RGB ``pixels`` in ``space`` (HED: ``colour.stains``)."""
    if space == "hed":
        return colour.stains(pixels).astype(np.float64)
    rgb = pixels.reshape(-1, 1, 3).astype(np.float64) / 255.0
    if space == "hsv":
        rgb = rgb2hsv(rgb)
    return rgb.reshape(-1, 3)


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
            kept = px[colour.foreground(px)]
            px = kept[:n_pixels] if len(kept) else px[:n_pixels]
        per_class[k] = _to_space(px, space)
    if space == "hed":
        # stain amounts have no fixed range: bin over the central 99% of all pixels
        pooled = np.concatenate(list(per_class.values()) or [np.zeros((1, 3))])
        ranges = [tuple(np.percentile(pooled[:, c], [0.5, 99.5])) for c in range(3)]
    else:
        ranges = [(0.0, 1.0)] * 3
    fig, axes = plt.subplots(1, 3, layout="constrained", figsize=(13, 3.6))
    palette = colours(len(class_names))
    for c, ax in enumerate(axes):
        lo, hi = ranges[c]
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, 65)
        for k, values in per_class.items():
            dens, _ = np.histogram(values[:, c], bins=edges, density=True)
            ax.plot((edges[:-1] + edges[1:]) / 2, dens, color=palette[k], lw=1.5, label=class_names[k])
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
        return message("no near-duplicates found", "Near-duplicate groups")
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
