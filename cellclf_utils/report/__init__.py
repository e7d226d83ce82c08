"""The report of a run: figures, each stage's executed notebook as a page, the run's index
(verdict, leaderboard, key numbers and figures per stage, files left out, stages not
finished) and the data-quality page, all from the jinja2 templates in ``templates/``.

Entry points: ``write_report(run_dir)``, ``leaderboard``, ``summary_lines`` (the terminal's), ``stage_html``,
``quality_page.write_html``, ``plots``.
"""
from . import plots, quality_page
from .index import leaderboard, verdict, write_report
from .stage_page import stage_html
from .summary import summary_lines

__all__ = ["plots", "quality_page", "leaderboard", "verdict", "write_report", "stage_html", "summary_lines"]
