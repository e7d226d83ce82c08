"""The live line ``cellclf run`` shows for the stage it is running: its place in the series,
the fold and epoch its kernel reached (``progress.json``, written by training), the last
validation score, the training speed and the time so far.

On a terminal the line is rewritten in place every second; elsewhere (a CI log, a pipe) a line
is printed when the fold or epoch changes, so a log shows every epoch once.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from ..runfolder import layout


def describe(state: dict) -> str:
    """Return progress.json's ``state`` as words: 'fold 2/3 · epoch 4/10 · val acc 71.0% · 52 img/s'."""
    if not state:
        return ""
    parts = [f"fold {state['fold']}/{state['folds']}", f"epoch {state['epoch']}/{state['epochs']}"]
    if state.get("val_accuracy") is not None:
        parts.append(f"val acc {100 * state['val_accuracy']:.1f}%")
    if state.get("images_per_s"):
        parts.append(f"{state['images_per_s']:.0f} img/s")
    return " · ".join(parts)


def _files(stage_dir: Path) -> list[Path]:
    """Return the stage's progress files: in its folds' folders (06: its students')."""
    return list(Path(stage_dir).rglob(layout.PROGRESS))


def read(stage_dir: Path) -> dict:
    """Return the newest progress state under ``stage_dir`` ({} when none is readable yet)."""
    try:
        newest = max(_files(stage_dir), key=lambda p: p.stat().st_mtime, default=None)
        state = json.loads(newest.read_text(encoding="utf-8")) if newest else {}
    except (OSError, ValueError):
        return {}  # being replaced: the next poll reads it
    return state if isinstance(state, dict) and {"fold", "folds", "epoch", "epochs"} <= state.keys() else {}


def remove_progress(stage_dir: Path) -> None:
    """Delete the stage's progress files (the stage ended, or starts afresh)."""
    for p in _files(stage_dir) if Path(stage_dir).is_dir() else []:
        p.unlink(missing_ok=True)


class LiveLine:
    """Context manager: while its block runs (the stage's notebook), show ``label`` with the
    stage's progress on ``stream``; at the end, one line with the stage's time."""

    def __init__(self, stage_dir: Path, label: str, stream=None, interval: float = 1.0):
        self.dir = Path(stage_dir)
        self.label, self.interval = label, interval
        self.stream = stream if stream is not None else sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._started, self._last = 0.0, None

    def line(self) -> str:
        """Return the line as it stands: label, progress, seconds so far."""
        text = describe(read(self.dir))
        return f"{self.label}" + (f" · {text}" if text else "") + f" · {time.time() - self._started:.0f} s"

    def _show(self) -> None:
        if self.live:
            self.stream.write("\r\033[K" + self.line())
            self.stream.flush()
            return
        state = describe(read(self.dir))
        if state and state != self._last:
            self._last = state
            print(self.line(), file=self.stream, flush=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._show()

    def __enter__(self) -> "LiveLine":
        remove_progress(self.dir)  # a resumed stage starts its line afresh
        self._started = time.time()
        print(self.label + " …", file=self.stream, end="" if self.live else "\n", flush=True)
        self._thread.start()
        return self

    def __exit__(self, kind, *_) -> None:
        self._stop.set()
        self._thread.join()
        end = "done" if kind is None else "stopped"
        seconds = time.time() - self._started
        remove_progress(self.dir)  # the line's source; the stage's own files say the rest
        print(("\r\033[K" if self.live else "") + f"{self.label}: {end} in {seconds:.0f} s", file=self.stream, flush=True)
