"""Running the series: a stage's folder as its notebook writes it (``Stage``, ``start``), what
each stage kind does around its computation (``stages``), the series runner (``run_series``)
and the plan that counts a run before it starts (``plan``).

Entry points: ``run_series``, ``stages.start``, ``plan.plan`` / ``plan.estimate`` / ``plan.against``.
"""
from . import plan, stages
from .runner import RunError, run_series
from .stage import Stage, StageFinishedError, start

__all__ = ["plan", "stages", "RunError", "run_series", "Stage", "StageFinishedError", "start"]
