"""Figures for the notebooks and the report.

Every plotting function takes plain numpy/pandas inputs and returns a
``matplotlib.figure.Figure`` without closing it: the notebook shows it, the caller saves it
(``save``, or ``Stage.figure``) and closes it. ``images`` are (N, H, W, 3) uint8 RGB,
``labels`` (N,) ints indexing ``class_names``; any number of classes >= 2 works.
"""
from .common import save
from .data import (SPACES, bad_files_table, class_counts, colour_distributions, duplicate_groups, image_sizes,
                   mean_images, montage)
from .model import (before_after, confusion_matrix, gradcam_montage, learning_curves, model_comparison,
                    per_class_recall)
from .quality import pairs_figure, quality_figure, quality_figures, thumbnails

__all__ = ["save", "SPACES", "bad_files_table", "class_counts", "colour_distributions", "duplicate_groups",
           "image_sizes", "mean_images", "montage", "before_after", "confusion_matrix", "gradcam_montage",
           "learning_curves", "model_comparison", "per_class_recall", "quality_figure", "quality_figures",
           "pairs_figure", "thumbnails"]
