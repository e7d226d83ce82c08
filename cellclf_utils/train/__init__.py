"""Training Keras models on the run's folds: cross-validation with fold-level resume, one
fold's phases (prepare, head warm-up, fine-tune, predict, save), the best-epoch callback,
learning-rate schedules, pseudo-labelling, and the device side (precision, memory, resident
images, compile cache).

Entry points: ``cross_validate(build, x, y, fold_of, x_test, params, stage_dir) -> CVResult``,
``train_fold`` (one fold alone, as a fold job), ``fit_fold``, ``signature``, ``BestEpoch``, ``schedules.make_optimizer``, ``pseudo``.
"""
from .callbacks import BestEpoch
from .cross_validation import cross_validate, train_fold
from .fold import fit_fold
from .resume import ResumeMismatchError, signature

__all__ = ["BestEpoch", "cross_validate", "train_fold", "fit_fold", "ResumeMismatchError", "signature"]
