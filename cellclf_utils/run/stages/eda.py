"""Stage 01's own steps: the data-quality report (its figures on the stage page, its own
quality.html beside the notebook) and the metrics the stage records."""
from __future__ import annotations

import pandas as pd

from ... import quality
from ...data import Dataset
from ...folds.dupes import DupeResult
from ...report import plots, quality_page
from ...runfolder import layout
from ..stage import Stage


def quality_report(st: Stage, ds: Dataset, dup: DupeResult, cross: pd.DataFrame) -> quality.QualityReport:
    """Build the dataset's quality report (reusing the stage's near-duplicate groups), print its
    summary, show each finding's thumbnails and write quality.html; return the report."""
    qr = quality.build(ds, dup=dup, cross=cross)
    print("\n".join(quality.summary_lines(qr)))
    for kind, (fig, caption) in plots.quality_figures(qr).items():
        st.figure(fig, f"quality_{kind}", caption)
    quality_page.write_html(qr, st.path(layout.QUALITY_HTML))
    return qr


def eda_metrics(ds: Dataset, dup: DupeResult, cross: pd.DataFrame, qr: quality.QualityReport) -> dict:
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
            "skipped": ds.skipped, "ignored": ds.ignored, "notes": ds.notes, "twelve_bit": ds.twelve_bit,
            "quality": quality.summary(qr)}
