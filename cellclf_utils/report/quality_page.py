"""The data-quality report drawn: thumbnails of each finding of :mod:`quality` with file names
and reasons (``figures``), and one self-contained HTML page with every figure and thumbnail
embedded as base64 PNG (``write_html``, what `cellclf data check --report` and notebook 01 write)."""
from __future__ import annotations

import base64
import html
import io
import textwrap
from pathlib import Path

import numpy as np

from ..quality.checks import KINDS, QualityReport, flagged, summary_lines


def _label(image_id: str, reason: str, width: int = 26) -> str:
    name = image_id if len(image_id) <= width else "…" + image_id[-(width - 1):]
    body = textwrap.wrap(reason, width)
    return "\n".join([name, *body[:4]]) + ("…" if len(body) > 4 else "")


def thumbnails(images, ids, reasons, title: str, cols: int = 6, max_n: int = 24):
    """Return a grid of image thumbnails, each captioned with its file name and reason (the
    first ``max_n``, in order); a small figure saying so when there are none."""
    import matplotlib.pyplot as plt
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
    import matplotlib.pyplot as plt
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


def figure(rep: QualityReport, kind: str, max_n: int = 24):
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


def figures(rep: QualityReport, max_n: int = 24, only_found: bool = True) -> dict:
    """Return ``{kind: (figure, caption)}`` for the finding kinds with findings (all kinds
    when ``only_found`` is False). The caller shows, saves and closes them."""
    out = {}
    for kind, title in KINDS.items():
        n = rep.counts()[kind]
        if n or not only_found:
            out[kind] = (figure(rep, kind, max_n), f"{title[0].upper() + title[1:]}: {n} found")
    return out


# ---------------------------------------------------------------------------------------- HTML page

def _png(fig) -> str:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _thumb_png(img: np.ndarray) -> str:
    import cv2
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""


def _img(b64: str, alt: str, cls: str = "") -> str:
    return f'<img{f" class={cls!r}" if cls else ""} alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _table(rows: list[list[str]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _rows(rep: QualityReport, kind: str, max_rows: int) -> tuple[list[str], list[list[str]]]:
    e, t = html.escape, lambda i: _img(_thumb_png(rep.thumb(i)), i, "t")
    if kind == "duplicate_train":
        d = rep.duplicates.head(max_rows)
        return (["image", "copy", "files", "reason"],
                [[t(a), t(b), f"{e(a)}<br>{e(b)}", e(r)] for a, b, r in zip(d.id_a, d.id_b, d.reason)])
    if kind == "duplicate_train_test":
        d = rep.cross_duplicates.head(max_rows)
        return (["test image", "training image", "files", "reason"],
                [[t(a), t(b), f"{e(a)}<br>{e(b)}", e(r)] for a, b, r in zip(d.test_id, d.train_id, d.reason)])
    lab = dict(zip(rep.frame.id, rep.frame.label))
    return (["image", "file", "label", "reason"],
            [[t(i), e(i), e(str(lab.get(i, ""))), e(r)] for i, r in flagged(rep, kind)[:max_rows]])


def to_html(rep: QualityReport, max_rows: int = 200, max_thumbs: int = 24) -> str:
    """Return the report as one self-contained HTML page: summary, class balance and image
    size figures, then per finding kind a thumbnails figure and a table of every finding (up
    to ``max_rows``) with the image, its file name and the reason. No external files."""
    from . import plots
    e = html.escape
    b, s = rep.balance, rep.sizes
    parts = [f"<h1>Data-quality report</h1><p class=src>{e(rep.root)}</p>"]
    counts = rep.counts()
    parts.append("<h2>Summary</h2>" + _table(
        [[e(KINDS[k][0].upper() + KINDS[k][1:]), str(n)] for k, n in counts.items()]
        + [["Unreadable files (left out)", str(len(rep.skipped))]], ["finding", "count"]))
    parts.append("<pre>" + e("\n".join(summary_lines(rep))) + "</pre>")
    if b.get("n_classes"):
        labels = np.repeat(np.arange(len(rep.class_names)), [b["counts"][c] for c in rep.class_names])
        parts.append("<h2>Class balance</h2>" + _table(
            [[e(c), str(n), f"{n / max(b['total'], 1):.1%}"] for c, n in b["counts"].items()], ["class", "images", "share"])
            + f"<p>Imbalance ratio {b['imbalance_ratio']:.2f} (largest {e(b['largest'])} / smallest "
              f"{e(b['smallest'])}); always guessing {e(b['largest'])} scores {b['majority_share']:.1%}.</p>"
            + _img(_png(plots.class_counts(labels, rep.class_names)), "class counts", "f"))
    if s.get("n_images"):
        per_class = _table([[e(c), e(v)] for c, v in s["median_per_class"].items()], ["class", "median size (WxH)"])
        parts.append(f"<h2>Image sizes</h2><p>{s['distinct_sizes']} distinct size(s); width {s['width']['min']}–"
                     f"{s['width']['max']} px, height {s['height']['min']}–{s['height']['max']} px, aspect ratio "
                     f"{s['aspect']['min']:.2f}–{s['aspect']['max']:.2f}.</p>" + per_class
                     + _img(_png(plots.image_sizes(rep.frame[rep.frame.split == "train"])), "image sizes", "f"))
    for kind, title in KINDS.items():
        head = f"<h2>{e(title[0].upper() + title[1:])}: {counts[kind]}</h2>"
        if not counts[kind]:
            parts.append(head + "<p>None found.</p>")
            continue
        cols, rows = _rows(rep, kind, max_rows)
        more = f"<p>{counts[kind] - max_rows} more not listed.</p>" if counts[kind] > max_rows else ""
        parts.append(head + _img(_png(figure(rep, kind, max_thumbs)), kind, "f") + _table(rows, cols) + more)
    if rep.skipped:
        parts.append("<h2>Unreadable files (left out)</h2>" + _table(
            [[e(f["path"]), e(f["reason"])] for f in rep.skipped], ["file", "reason"]))
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
             "margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:middle;"
             "font-size:13px}img.t{width:64px;height:64px;image-rendering:pixelated}img.f{max-width:100%;"
             "display:block;margin:.5em 0}.src{color:#555}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Data quality: {e(rep.root)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_html(rep: QualityReport, path, **kw) -> Path:
    """Write ``to_html(rep)`` to ``path`` atomically (parents created); return the path."""
    from ..run.stage import atomic_write
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, to_html(rep, **kw))
