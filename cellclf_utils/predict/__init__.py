"""Using trained stages: ensembles of finished stages fitted on their out-of-fold predictions
(scored by nested cross-validation), Grad-CAM explanations of a fold's model, and a finished
stage's saved models classifying new images (``cellclf predict``) or exported as one model.

Entry points: ``ensemble.load(run)`` / ``evaluate`` / ``choose`` / ``predict_test``,
``combiner.save`` / ``load`` (07's submitted model), ``saved.open_stage(run, name)`` /
``predict_proba``, ``classify.choose`` / ``describe`` / ``table``, ``export.export``,
``gradcam.heatmaps`` / ``pick_cases`` / ``explain_oof``.
"""
from . import classify, combiner, ensemble, export, gradcam, saved

__all__ = ["classify", "combiner", "ensemble", "export", "gradcam", "saved"]
