"""What every figure shares: the atomic PNG writer, class colours, a figure that only says
something, tick labels that make room."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import matplotlib.pyplot as plt


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


def colours(n: int) -> list:
    """Return ``n`` distinct colours (tab10, then tab20 for many classes)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def message(text: str, title: str | None = None):
    """Return a small figure that only says ``text`` (for empty inputs)."""
    fig, ax = plt.subplots(layout="constrained", figsize=(6, 1.6))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def rotate_if_crowded(ax, names) -> None:
    # long or many class names overlap when horizontal
    if len(names) > 4 or max(map(len, names)) > 12:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
