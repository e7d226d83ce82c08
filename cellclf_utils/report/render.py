"""The report's HTML pages from the jinja2 templates in ``templates/`` (one base page: the
index and the data-quality page share its style), and images embedded as base64 PNG."""
from __future__ import annotations

import base64
import io
from functools import lru_cache

import jinja2
import numpy as np


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    # autoescape: every string (captions, paths, reasons, params) comes from files on disk
    return jinja2.Environment(loader=jinja2.PackageLoader("cellclf_utils.report", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context) -> str:
    """Return ``templates/<template>`` rendered with ``context``."""
    return _env().get_template(template).render(**context)


def figure_png(fig, dpi: int = 100) -> str:
    """Return ``fig`` as base64 PNG, and close it."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_png(img: np.ndarray) -> str:
    """Return an RGB uint8 image as base64 PNG."""
    import cv2
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode("ascii") if ok else ""
