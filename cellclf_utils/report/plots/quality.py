"""Figures of the data-quality report: thumbnails of each finding's images with their file names
and reasons, duplicate pairs side by side."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt

from ...quality import KINDS, QualityReport, flagged


def _label(image_id: str, reason: str, width: int = 26) -> str:
    name = image_id if len(image_id) <= width else "…" + image_id[-(width - 1):]
    body = textwrap.wrap(reason, width)
    return "\n".join([name, *body[:4]]) + ("…" if len(body) > 4 else "")


def thumbnails(images, ids, reasons, title: str, cols: int = 6, max_n: int = 24):
    """Return a grid of image thumbnails, each captioned with its file name and reason (the
    first ``max_n``, in order); a small figure saying so when there are none."""
    n = min(len(ids), max_n)
    if n == 0:
        fig, ax = plt.subplots(layout="constrained", figsize=(6, 1.4))
        ax.text(0.5, 0.5, "none found", ha="center", va="center", fontsize=12)
        ax.set_axis_off()
        ax.set_title(title)
        return fig
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, layout="constrained", squeeze=False, figsize=(2.1 * cols, 2.75 * rows + 0.4))
    for ax in axes.flat:
        ax.set_axis_off()
    for k in range(n):
        ax = axes.flat[k]
        ax.imshow(images[k])
        ax.set_title(_label(str(ids[k]), str(reasons[k])), fontsize=6.5, loc="left")
    more = f" (first {n} of {len(ids)})" if len(ids) > n else ""
    fig.suptitle(title + more)
    return fig


def pairs_figure(images_a, images_b, ids_a, ids_b, reasons, title: str, max_n: int = 12):
    """Return duplicate pairs side by side (three pairs per row), each pair's files and reason."""
    n = min(len(ids_a), max_n)
    if n == 0:
        return thumbnails([], [], [], title)
    per_row = min(3, n)
    rows = -(-n // per_row)
    fig, axes = plt.subplots(rows, 3 * per_row - 1, layout="constrained", squeeze=False,
                             gridspec_kw={"width_ratios": ([1, 1, 0.2] * per_row)[:3 * per_row - 1]},
                             figsize=(4.4 * per_row, 2.6 * rows + 0.4))
    for ax in axes.flat:
        ax.set_axis_off()
    for k in range(n):
        row, c = axes[k // per_row], 3 * (k % per_row)
        row[c].imshow(images_a[k])
        row[c].set_title(_label(str(ids_a[k]), str(reasons[k]), 24), fontsize=6.5, loc="left")
        row[c + 1].imshow(images_b[k])
        row[c + 1].set_title(_label(str(ids_b[k]), "", 24), fontsize=6.5, loc="left")
    more = f" (first {n} of {len(ids_a)})" if len(ids_a) > n else ""
    fig.suptitle(title + more)
    return fig


def quality_figure(rep: QualityReport, kind: str, max_n: int = 24):
    """Return the thumbnails figure of one finding kind (KINDS)."""
    title = KINDS[kind][0].upper() + KINDS[kind][1:]
    if kind == "duplicate_train":
        d = rep.duplicates
        return pairs_figure([rep.thumb(i) for i in d.id_a[:max_n]], [rep.thumb(i) for i in d.id_b[:max_n]],
                            list(d.id_a), list(d.id_b), list(d.reason), title, max_n=max(1, max_n // 2))
    if kind == "duplicate_train_test":
        d = rep.cross_duplicates
        return pairs_figure([rep.thumb(i) for i in d.test_id[:max_n]], [rep.thumb(i) for i in d.train_id[:max_n]],
                            list(d.test_id), list(d.train_id), list(d.reason), title, max_n=max(1, max_n // 2))
    found = flagged(rep, kind)
    return thumbnails([rep.thumb(i) for i, _ in found[:max_n]], [i for i, _ in found],
                      [r for _, r in found], title, max_n=max_n)


def quality_figures(rep: QualityReport, max_n: int = 24, only_found: bool = True) -> dict:
    """Return ``{kind: (figure, caption)}`` for the finding kinds with findings (all kinds
    when ``only_found`` is False). The caller shows, saves and closes them."""
    out = {}
    for kind, title in KINDS.items():
        n = rep.counts()[kind]
        if n or not only_found:
            out[kind] = (quality_figure(rep, kind, max_n), f"{title[0].upper() + title[1:]}: {n} found")
    return out
