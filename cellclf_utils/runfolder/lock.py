"""One writer per run: ``runs/<run_id>/.lock``, held by ``cellclf run`` (and by a notebook run by
hand) while it writes the run, with its holder in ``.lock.json`` (pid, start time, command).

The operating system releases the lock when its holder dies, so the lock of a killed run is
free: the next writer takes it over and says whose it was. The kernels `cellclf run` starts
write under its lock: they find its pid in ``HOLDER_ENV``.
"""
from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from ..atomic import write_json
from . import layout

HOLDER_ENV = "CELLCLF_RUN_LOCK_HOLDER"  # the pid of the `cellclf run` whose kernels write the run


class RunLockedError(RuntimeError):
    """Another process is writing the run."""


def holder(run_dir: Path) -> dict | None:
    """Return who holds (or last held, if it died) the run's lock, or None."""
    try:
        info = json.loads((Path(run_dir) / layout.RUN_LOCK_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _who(info: dict | None) -> str:
    info = info or {}
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')} (started {info.get('started', '?')}: "
            f"{info.get('command', '?')})")


@dataclass
class RunLock:
    """A held run lock; ``release`` when the run is written."""

    run_dir: Path
    lock: FileLock

    def release(self) -> None:
        if self.lock.lock_counter == 1:  # the last hold in this process: say so before letting go
            (self.run_dir / layout.RUN_LOCK_INFO).unlink(missing_ok=True)
        self.lock.release()


def held_by_parent(run_dir: Path) -> bool:
    """Return whether the run's lock is held by the `cellclf run` that started this process."""
    info = holder(run_dir)
    return bool(info) and os.environ.get(HOLDER_ENV) == str(info.get("pid"))


def acquire(run_dir: Path, command: str, wait: bool = False) -> RunLock:
    """Return the run's lock, held by this process; RunLockedError naming the holder when
    another process holds it (``wait``: block until it is released)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # one lock object per path and process, counting holds: a process may open several stages
    lock = FileLock(str(run_dir / layout.RUN_LOCK), is_singleton=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise RunLockedError(f"run {run_dir.name} is being written by {_who(holder(run_dir))}; wait for it to "
                                 "finish (or pass --wait), or use another --run-id") from None
        print(f"run {run_dir.name} is being written by {_who(holder(run_dir))}; waiting for it (--wait)", flush=True)
        lock.acquire()
    stale = holder(run_dir)
    if stale and stale.get("pid") != os.getpid():  # a holder removes its .lock.json as it releases
        print(f"note: run {run_dir.name} was held by {_who(stale)}, which stopped without releasing it; taking over")
    write_json(run_dir / layout.RUN_LOCK_INFO, {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                                "started": datetime.now().isoformat(timespec="seconds")})
    return RunLock(run_dir, lock)
