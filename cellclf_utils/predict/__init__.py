"""Using trained stages: ensembles of finished stages (of this run or of other runs on the same
folds) fitted on their out-of-fold predictions and scored by nested cross-validation, Grad-CAM
explanations, and a finished stage's saved models classifying new images (``cellclf predict``)
or written as a bundle (``cellclf export``).

Entry points: ``ensemble.load(run, members)`` / ``evaluate`` / ``choose`` / ``predict_test``,
``members.resolve`` / ``same_folds``, ``combiner.save`` / ``load`` (07's submitted model),
``saved.open_stage(run, name)`` / ``predict_proba``, ``classify.choose`` / ``describe`` / ``table``,
``explain.explain`` (Grad-CAM of new images), ``export.export``, ``gradcam.heatmaps`` /
``pick_cases`` / ``explain_oof``.
"""
from . import classify, combiner, ensemble, explain, export, gradcam, members, saved

__all__ = ["classify", "combiner", "ensemble", "explain", "export", "gradcam", "members", "saved"]
