"""How images are grouped and split: near-duplicates (a rotation/flip-invariant hash), the
run's leak-safe folds (folds.csv), the competition-style train/test split, and the fold loop
every trained stage shares.

Entry points: ``ensure(run_dir, ds, k, seed)`` (the run's folds), ``subset`` (``limit``),
``duplicate_groups``, ``train_test_duplicates``, ``split.split`` (``cellclf data split``),
``cross_validate(fit, fold_of) -> CVResult``.
"""
from .cv import CVResult, FoldResult, cross_validate, splits
from .kfold import (FoldsError, assign, duplicate_groups, ensure, matching, subset, train_test_duplicates)

__all__ = ["CVResult", "FoldResult", "cross_validate", "splits", "FoldsError", "assign", "duplicate_groups",
           "ensure", "matching", "subset", "train_test_duplicates"]
