"""Using trained stages: ensembles of finished stages fitted on their out-of-fold predictions
(scored by nested cross-validation), and Grad-CAM explanations of a fold's model.

Entry points: ``ensemble.load(run)`` / ``evaluate`` / ``choose`` / ``predict_test``,
``gradcam.heatmaps`` / ``pick_cases`` / ``explain_oof``.
"""
from . import ensemble, gradcam

__all__ = ["ensemble", "gradcam"]
