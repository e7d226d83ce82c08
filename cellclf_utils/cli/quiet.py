"""Keras imported without the C++ start-up lines TensorFlow writes to file descriptor 2.

``TF_CPP_MIN_LOG_LEVEL`` does not reach the lines absl writes before it starts ("Could not find
cuda drivers", oneDNN), and a ``sys.stderr`` redirect cannot catch what C++ writes; so the
descriptor itself points at /dev/null while keras (and its backend) load, and back after. A
Python error raised by the import is still shown: it is printed once the descriptor is back.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager


@contextmanager
def native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the block (Python's own stderr included)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def import_keras() -> None:
    """Import keras (and the backend KERAS_BACKEND names) once, without its start-up lines."""
    if "keras" in sys.modules:
        return
    with native_stderr_silenced():
        import keras  # noqa: F401
