"""Running the series: a stage's folder as its notebook writes it (``Stage``, ``start``), what
each stage kind does around its computation (``stages``), the series runner (``run_series``),
the plan that counts a run before it starts (``plan``), and the Ray executor: the series as a
graph of (stage, fold) jobs (``graph``), each in a process of its own (``job``), run as Ray
tasks (``ray_executor``); a stage's notebook is run the same way by both (``notebook``).

Entry points: ``run_series``, ``stages.start``, ``plan.plan`` / ``plan.estimate`` / ``plan.against``.
"""
from . import plan, stages
from .runner import RunError, run_series
from .stage import Stage, StageFinishedError, start

__all__ = ["plan", "stages", "RunError", "run_series", "Stage", "StageFinishedError", "start"]
