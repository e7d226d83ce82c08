"""Fitted scikit-learn models on disk, in skops' format: it rebuilds only the types it is
told to trust, where a pickle would run whatever code the file holds."""
from __future__ import annotations

from pathlib import Path

import skops.io as sio

# beyond skops' own defaults: what the classifiers of classifiers.py hold once fitted
TRUSTED = ("sklearn.calibration._CalibratedClassifier", "sklearn.calibration._SigmoidCalibration",
           "sklearn.tree._tree.Tree")


class SavedModelError(ValueError):
    """A saved model file that cannot be loaded; the message names it and why."""


def save(model, path: Path) -> Path:
    """Write fitted ``model`` to ``path`` (.skops) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return path


def load(path: Path):
    """Return the model in ``path``, refusing a file that holds types outside skops' defaults
    and TRUSTED."""
    path = Path(path)
    if not path.is_file():
        raise SavedModelError(f"{path} is missing: the stage saved no fitted model there (trained before "
                              "stages saved their models?); rerun the stage under a new run id")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:  # skops raises zip, JSON and its own errors for a damaged file
        raise SavedModelError(f"{path} is unreadable ({e}); rerun the stage under a new run id") from None
    unknown = [t for t in untrusted if t not in TRUSTED]
    if unknown:
        raise SavedModelError(f"{path} holds types this project never saves ({', '.join(unknown)}); "
                              "it was not written by cellclf and is not loaded")
    return sio.load(path, trusted=list(untrusted))
