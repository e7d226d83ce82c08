"""Shallow stages: a scikit-learn classifier on image features, cross-validated on the run's
folds. 02b fits HOG + colour histograms; 02c a frozen ImageNet backbone's pooled features (the
linear probe, the floor a fine-tune must beat), whose head fitting LP-FT also uses.

Entry points: ``cv.cross_validate``, ``features.hog_and_colour``, ``probe.featurizer``,
``probe.fit_head``, ``classifiers.make_classifier`` / ``CLASSIFIERS``, ``model_files.save`` /
``load`` (fitted pipelines on disk, skops).
"""
from . import classifiers, cv, features, model_files, probe

__all__ = ["classifiers", "cv", "features", "model_files", "probe"]
