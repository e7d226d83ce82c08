"""Data-quality checks: what in a dataset deserves a look before any model is trained (class
balance, image sizes, colour/stain outliers, images unlike their class, duplicates within and
across splits). The HTML page is ``report.quality_page``.

Entry points: ``build(ds) -> QualityReport``, ``run(source, classes)``, ``summary``,
``summary_lines``, ``findings``, ``flagged``, ``KINDS``.
"""
from .checks import KINDS, QualityReport, build, findings, flagged, run, summary, summary_lines

__all__ = ["KINDS", "QualityReport", "build", "findings", "flagged", "run", "summary", "summary_lines"]
