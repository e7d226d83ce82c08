"""One job of the series (``graph.Job``) in a process of its own, as an executor's worker starts
it: ``python -m cellclf_utils.run.job SPEC`` with SPEC a JSON object (run folder, stage, its
notebook, fold or none, the stage's parameters, the resume command). A fold job trains that fold alone with the
calls the stage's notebook makes (``train.train_fold``); a stage job runs the stage's notebook
through papermill (``notebook.run_stage``), as the local runner does.

A process per job gives each its own environment (``environment``: backend, precision, JAX
memory) and a clean Keras; its output goes to ``job.log`` in its folder. On failure it prints
one line starting with ``FAILED`` and the message, and exits with status 1.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..runfolder import layout, lock
from .notebook import RunError, failed, run_stage

FAILED = "FAILED "
# what a job takes from the driver's environment as it is
PASSED_ON = ("KERAS_BACKEND", "CELLCLF_PRECISION", "CELLCLF_COMPILE_CACHE", "CELLCLF_ROOT", "PYTHONHASHSEED",
             "TF_CPP_MIN_LOG_LEVEL", "KERAS_HOME", "OMP_NUM_THREADS")
# what a job never takes from its worker: Ray sets OMP_NUM_THREADS to the task's CPUs (1), and
# BLAS on one thread sums in another order than the local runner's kernel (02b's probabilities
# differed by 1e-4); the driver's own value, if any, comes through PASSED_ON
DRIVER_ONLY = ("OMP_NUM_THREADS",)


def environment(run_dir: Path, cache_dir: Path, gpus_per_job: float, driver_env: dict) -> dict:
    """Return the variables a job process sets on top of its worker's environment (less
    ``DRIVER_ONLY``): the driver's backend, precision and thread count, the run and image cache
    folders, the run lock's holder; on a card it shares (``gpus_per_job`` < 1), JAX allocating
    as it goes, within its share of the memory."""
    env = {k: driver_env[k] for k in PASSED_ON if k in driver_env}
    env.setdefault("KERAS_BACKEND", "tensorflow")  # said explicitly: Keras remembers a backend in ~/.keras
    env |= {"CELLCLF_RUNS": str(Path(run_dir).parent), "CELLCLF_CACHE": str(cache_dir),
            lock.HOLDER_ENV: driver_env.get(lock.HOLDER_ENV, "")}
    # several processes on one machine: JAX must not take 75% of a card each at start
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if 0 < gpus_per_job < 1:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * gpus_per_job:.2f}"
    return env


def folder(run_dir: Path, stage: str, fold: int | None) -> Path:
    """Return the folder a job writes its log in: its fold's, or its stage's."""
    stage_dir = Path(run_dir) / stage
    return stage_dir if fold is None else stage_dir / layout.fold_dir(fold)


def _train_fold(run_dir: Path, stage: str, params: dict, fold: int) -> None:
    """Train fold ``fold`` of ``stage`` as its notebook would (or load it, when finished)."""
    # imported here: the driver imports this module for ``folder`` and ``environment`` only
    from ..config import defaults, validate
    from ..train import train_fold
    from .stage import Stage, resolve_auto_weights
    from .stages import soft_targets, stage_model, training_data
    P = resolve_auto_weights(validate(stage, {**defaults(stage), **params}))
    st = Stage(stage, P, run_dir)  # the folder only: the stage's notebook opens it and writes params.json
    td = training_data(st, P)
    r = train_fold(stage_model(P, len(td.class_names)), td.x, td.y, td.fold, td.x_test, P, st.dir, fold,
                   soft_targets(st, P, td))
    if r is None:
        print(f"{stage}: the run's folds have no fold {fold}; nothing to train")


def run(spec: dict) -> None:
    """Run the job ``spec`` describes; RunError (or the stage's own error) when it fails."""
    run_dir = Path(spec["run_dir"])
    if spec.get("fold") is None:
        run_stage(Path(spec["notebook"]), spec["params"], run_dir / spec["stage"], False, spec["resume_hint"])
    else:
        _train_fold(run_dir, spec["stage"], spec["params"], int(spec["fold"]))


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    print(f"job {spec['stage']}" + ("" if spec.get("fold") is None else f" fold {spec['fold']}")
          + f": pid {os.getpid()}, KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}", flush=True)
    try:
        run(spec)
    except RunError as e:
        print(FAILED + str(e), flush=True)
        return 1
    except Exception as e:  # the stage's own error, as the local runner reports a notebook's
        import traceback
        traceback.print_exc()
        log = folder(Path(spec["run_dir"]), spec["stage"], spec["fold"]) / layout.JOB_LOG
        print(FAILED + failed(spec["stage"], type(e).__name__, str(e), f"its log: {log}",
                              spec["resume_hint"]), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
