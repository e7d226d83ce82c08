"""``cellclf run --executor ray``: the series' jobs (``graph``) as Ray tasks, side by side on the
workers of a local Ray instance (this machine's cores or cards) or of a cluster (``--address``,
or ``RAY_ADDRESS``). Every task runs its job in a process of its own (``job``), in the run
folder every worker sees (a shared filesystem); the driver holds the run's lock throughout.

A task asks for one CPU, and ``gpus_per_fold`` of a card where the cluster has cards (0.5 packs
two folds on one). A worker lost mid-job (killed, its node gone) is retried by Ray; the job
process dies with its worker, so a retried fold is never trained twice at once. A job that
fails stops the run with its stage's message, as the local runner's.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from .. import paths
from ..atomic import write_json
from ..config import defaults
from ..runfolder import Fold, RunFolderError, StageFolder, layout, read_json
from . import graph, job
from .live_line import describe, read, remove_progress
from .notebook import RunError

RETRIES = 2  # a job whose worker is lost runs at most this many times more
EVERY = 5.0  # seconds between looks at the running jobs' progress
INSTALL = "pip install -e '.[ray]' in a checkout, or pip install 'ray>=2.40'"


class JobFailed(RuntimeError):
    """A job's process ended with an error; the message is its stage's, as the local runner's."""


def require():
    """Return the ray module; RunError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise RunError(f"--executor ray needs Ray, which is not installed here: {INSTALL}") from None
    return ray


def _die_with_parent() -> None:
    """In the job process: be killed when the worker that started it dies (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # elsewhere a lost worker's job runs on to its end
        pass


def _attempt(folder: Path) -> int:
    """Return this attempt's number, recorded in the job's job.json with where it runs."""
    try:
        attempt = int(read_json(folder / layout.JOB_INFO).get("attempt", 0)) + 1
    except (RunFolderError, TypeError, ValueError):  # no earlier attempt, or its record cut short
        attempt = 1
    write_json(folder / layout.JOB_INFO, {"pid": os.getpid(), "host": socket.gethostname(), "attempt": attempt,
                                          "started": datetime.now().isoformat(timespec="seconds")})
    return attempt


def _failure(log: Path, rc: int, key: str) -> str:
    """Return the message a failed job printed after ``job.FAILED``, else one naming its log."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    if job.FAILED in text:
        return text[text.rindex(job.FAILED) + len(job.FAILED):].strip()
    how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
    return f"job {key} {how} (out of memory?); its log: {log}"


def run_job(spec: dict, env: dict, cwd: str, *_needed) -> dict:
    """The Ray task: run one job in a process of its own; return where and how long it ran.
    ``_needed``: the results of the jobs it waits for (Ray starts it once they are there)."""
    folder = job.folder(Path(spec["run_dir"]), spec["stage"], spec.get("fold"))
    folder.mkdir(parents=True, exist_ok=True)
    attempt, started = _attempt(folder), time.time()
    log_path = folder / layout.JOB_LOG
    with open(log_path, "ab") as log:
        rc = subprocess.run([sys.executable, "-m", "cellclf_utils.run.job", json.dumps(spec)],
                            env={**{k: v for k, v in os.environ.items() if k not in job.DRIVER_ONLY}, **env},
                            cwd=cwd if Path(cwd).is_dir() else None,
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent).returncode
    if rc:
        raise JobFailed(_failure(log_path, rc, spec["key"]))
    return {"host": socket.gethostname(), "seconds": time.time() - started, "attempt": attempt}


def _specs(run_dir: Path, notebooks: list[Path], passed: dict, resume_hint: str) -> list[tuple[graph.Job, dict]]:
    """Return the run's jobs, each with the spec its process reads."""
    by_stage = {nb.stem: nb for nb in notebooks}
    stages = list(by_stage)
    effective = {s: {**defaults(s), **passed[s]} for s in stages}
    folds = {s: int(P["folds"]) for s, P in effective.items() if "folds" in P}
    teacher = str(effective.get(graph.PSEUDO, {}).get("teacher", ""))
    distill = {s: str(P.get("distill", "")) for s, P in effective.items()}
    jobs = graph.jobs(stages, folds, teacher, lambda s: StageFolder(run_dir / s).is_finished,
                      lambda s, k: Fold(run_dir / s / layout.fold_dir(k)).is_done, distill)
    return [(j, {"key": j.key, "run_dir": str(run_dir), "stage": j.stage, "fold": j.fold,
                 "notebook": str(by_stage[j.stage]),
                 "params": passed[j.stage], "resume_hint": resume_hint}) for j in jobs]


def _init(ray, address: str | None) -> bool:
    """Connect to ``address`` (RAY_ADDRESS when None; else start Ray on this machine); return
    whether this call started it (and so shuts it down)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise RunError(f"--executor ray: could not reach Ray at {address or os.environ.get('RAY_ADDRESS')}: {e}") from None
    return True


def _resources(ray, gpus_per_fold: float) -> dict:
    """Return what each task asks for: a CPU, and ``gpus_per_fold`` of a card where there are
    cards; say what the cluster has."""
    have = ray.cluster_resources()
    cpus, gpus = int(have.get("CPU", 0)), int(have.get("GPU", 0))
    asks = {"num_cpus": 1, "num_gpus": gpus_per_fold} if gpus else {"num_cpus": 1}
    print(f"ray: {cpus} CPU(s), {gpus} GPU(s); each job asks for 1 CPU"
          + (f" and {gpus_per_fold:g} of a GPU" if gpus else " (no GPU: one job per core)"), file=sys.stderr, flush=True)
    return asks


def run_jobs(run_dir: Path, notebooks: list[Path], passed: dict, resume_hint: str, address: str | None = None,
             gpus_per_fold: float = 1.0, progress: bool = True) -> None:
    """Run the chosen stages' ``notebooks`` of the run in ``run_dir`` as Ray tasks; RunError when a job fails
    (the rest are cancelled: finished folds and stages are kept for ``--resume``). ``progress``:
    a line whenever a running fold reaches another epoch."""
    ray = require()
    specs = _specs(Path(run_dir), notebooks, passed, resume_hint)
    if not specs:
        return
    started = _init(ray, address)
    try:
        env = job.environment(run_dir, paths.cache_dir(), gpus_per_fold, dict(os.environ))
        task = ray.remote(max_retries=RETRIES, **_resources(ray, gpus_per_fold))(run_job)
        refs, pending = {}, {}
        for j, spec in specs:  # in graph order: the refs a job waits for are there before it
            refs[j.key] = task.options(name=j.key).remote(spec, env, os.getcwd(), *(refs[k] for k in j.needs))
            pending[refs[j.key]] = j
        _wait(ray, pending, Path(run_dir), resume_hint, progress)
    finally:
        if started:
            ray.shutdown()


def _progress(run_dir: Path, jobs, said: dict) -> None:
    """Print a line for each running job whose progress changed since ``said`` (updated): a
    fold's, or a whole stage's (06's students); a stage's notebook only gathers its folds."""
    for j in jobs:
        if j.fold is None and graph.splits_into_folds(j.stage):
            continue
        state = describe(read(job.folder(run_dir, j.stage, j.fold)))
        if state and said.get(j.key) != state:
            said[j.key] = state
            print(f"  {j.stage} · {state}", file=sys.stderr, flush=True)


def _wait(ray, pending: dict, run_dir: Path, resume_hint: str, progress: bool) -> None:
    """Print a line as each job ends (and, with ``progress``, as its folds reach another epoch);
    on a failure (or Ctrl-C) cancel the rest and raise RunError."""
    total, n, said = len(pending), 0, {}
    j = None
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=EVERY if progress else None)
            if progress:
                _progress(run_dir, pending.values(), said)
            if not ready:
                continue
            j = pending.pop(ready[0])
            info = ray.get(ready[0])
            n += 1
            remove_progress(job.folder(run_dir, j.stage, j.fold))
            again = f", attempt {info['attempt']}" if info["attempt"] > 1 else ""
            print(f"[{n}/{total}] {j.key}: done in {info['seconds']:.0f} s on {info['host']}{again}",
                  file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        _cancel(ray, pending)
        raise RunError(f"interrupted\n  finished folds are kept; continue with: {resume_hint}") from None
    except Exception as e:
        _cancel(ray, pending)
        raise RunError(_message(ray, e, j, resume_hint)) from None


def _message(ray, e: Exception, j: graph.Job | None, resume_hint: str) -> str:
    """Return the run's message for job ``j``'s exception ``e``: its stage's, or what befell it."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, JobFailed):
        return str(cause)
    if isinstance(e, (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError,
                      ray.exceptions.NodeDiedError)):
        return (f"job {j.key if j else '?'}: its worker was lost {RETRIES + 1} times ({type(e).__name__}: killed, out of "
                f"memory or its node gone)\n  finished folds are kept; continue with: {resume_hint}")
    return f"job {j.key if j else '?'}: {type(e).__name__}: {e}\n  finished folds are kept; continue with: {resume_hint}"


def _cancel(ray, pending: dict) -> None:
    for ref in pending:
        ray.cancel(ref, force=True)
