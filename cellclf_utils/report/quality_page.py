"""The data-quality report as one self-contained HTML page (``write_html``: what `cellclf data
check --report` and notebook 01 write): summary, class balance and image-size figures, then
per finding kind a thumbnails figure and a table of every finding with the image, its file
name and the reason. Figures and thumbnails are embedded as base64 PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..quality import KINDS, QualityReport, flagged, summary_lines
from . import plots
from .render import figure_png, image_png, render


def _title(kind: str) -> str:
    return KINDS[kind][0].upper() + KINDS[kind][1:]


def _thumb(rep: QualityReport, image_id: str) -> dict:
    return {"png": image_png(rep.thumb(image_id)), "alt": image_id}


def _rows(rep: QualityReport, kind: str, max_rows: int) -> tuple[list[str], list[list[dict]]]:
    """Return (column titles, rows of cells: a thumbnail {png, alt} or text {lines}) of a finding."""
    def text(*lines):
        return {"lines": [str(x) for x in lines]}
    if kind in ("duplicate_train", "duplicate_train_test"):
        d = (rep.duplicates.rename(columns={"id_a": "a", "id_b": "b"}) if kind == "duplicate_train"
             else rep.cross_duplicates.rename(columns={"test_id": "a", "train_id": "b"})).head(max_rows)
        cols = ["image", "copy", "files", "reason"] if kind == "duplicate_train" else \
            ["test image", "training image", "files", "reason"]
        return cols, [[_thumb(rep, a), _thumb(rep, b), text(a, b), text(r)] for a, b, r in zip(d.a, d.b, d.reason)]
    lab = dict(zip(rep.frame.id, rep.frame.label))
    return (["image", "file", "label", "reason"],
            [[_thumb(rep, i), text(i), text(lab.get(i, "")), text(r)] for i, r in flagged(rep, kind)[:max_rows]])


def _balance(rep: QualityReport) -> dict | None:
    b = rep.balance
    if not b.get("n_classes"):
        return None
    labels = np.repeat(np.arange(len(rep.class_names)), [b["counts"][c] for c in rep.class_names])
    return {"rows": [(c, n, f"{n / max(b['total'], 1):.1%}") for c, n in b["counts"].items()],
            "text": f"Imbalance ratio {b['imbalance_ratio']:.2f} (largest {b['largest']} / smallest {b['smallest']}); "
                    f"always guessing {b['largest']} scores {b['majority_share']:.1%}.",
            "figure": figure_png(plots.class_counts(labels, rep.class_names))}


def _sizes(rep: QualityReport) -> dict | None:
    s = rep.sizes
    if not s.get("n_images"):
        return None
    return {"text": f"{s['distinct_sizes']} distinct size(s); width {s['width']['min']}–{s['width']['max']} px, "
                    f"height {s['height']['min']}–{s['height']['max']} px, aspect ratio "
                    f"{s['aspect']['min']:.2f}–{s['aspect']['max']:.2f}.",
            "rows": list(s["median_per_class"].items()),
            "figure": figure_png(plots.image_sizes(rep.frame[rep.frame.split == "train"]))}


def to_html(rep: QualityReport, max_rows: int = 200, max_thumbs: int = 24) -> str:
    """Return the report as one self-contained HTML page (up to ``max_rows`` rows per finding)."""
    counts = rep.counts()
    kinds = []
    for kind in KINDS:
        k = {"kind": kind, "title": _title(kind), "count": counts[kind], "more": max(counts[kind] - max_rows, 0)}
        if counts[kind]:
            k["columns"], k["rows"] = _rows(rep, kind, max_rows)
            k["figure"] = figure_png(plots.quality_figure(rep, kind, max_thumbs))
        kinds.append(k)
    summary = [(_title(k), n) for k, n in counts.items()] + [("Unreadable files (left out)", len(rep.skipped))]
    return render("cellclf_quality.html.j2", root=rep.root, summary=summary, summary_text="\n".join(summary_lines(rep)),
                  balance=_balance(rep), sizes=_sizes(rep), kinds=kinds, skipped=rep.skipped)


def write_html(rep: QualityReport, path, **kw) -> Path:
    """Write ``to_html(rep)`` to ``path`` atomically (parents created); return the path."""
    return atomic_write(Path(path), to_html(rep, **kw))
