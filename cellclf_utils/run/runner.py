"""Run the numbered notebooks of the series through papermill into one run folder, then write
its report. Every stage's parameters are validated before the first kernel starts and before
anything is written, so a bad value costs seconds and leaves no run behind."""
from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from pathlib import Path

import yaml

from .. import paths
from ..atomic import atomic_write
from ..config import STAGES, ParameterError, profiles, stage_name
from ..config.validate import value
from ..report import write_report
from ..runfolder import RunFolderError, StageFolder, layout, lock, read_yaml
from .live_line import LiveLine
from .notebook import RunError, run_stage
from .stage import StageFinishedError, new_run_id, refuse_finished

def notebooks() -> list[Path]:
    """Return the series' notebooks in order (notebooks/NN_*.ipynb; NNb_*.ipynb sorts after NN_)."""
    found = sorted((paths.project_root() / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
    unknown = [nb.name for nb in found if nb.stem not in STAGES]
    if unknown:
        raise RunError(f"notebook(s) {', '.join(unknown)} have no parameters in cellclf_utils.config.params.STAGES")
    return found


def select(nbs: list[Path], only: str | None) -> list[Path]:
    """Return the notebooks named by ``only`` ('01,02', '03,vgg16' or full names), all when None."""
    if not only:
        return nbs
    try:
        wanted = {stage_name(w) for w in only.split(",") if w.strip()}
    except ParameterError as e:
        raise RunError(f"--only: {e}") from None
    return [nb for nb in nbs if nb.stem in wanted]


def _check_run(run_dir: Path, record: dict, chosen: list[Path], resume: bool) -> None:
    """Raise RunError when the run exists with other parameters, or holds a chosen stage finished
    (without ``resume``) or damaged."""
    stored = run_dir / layout.PARAMS_YAML
    if stored.exists():
        try:
            before = read_yaml(stored)
        except RunFolderError as e:
            raise RunError(str(e)) from None
        # runs recorded before params.yaml kept the command line compare without it
        keys = (set(before) | set(record)) - ({profiles.COMMAND_LINE} - set(before))
        changed = {k for k in keys if before.get(k) != record.get(k)}
        if changed:
            raise RunError(f"run {run_dir.name} exists with other parameters ({', '.join(sorted(changed))} "
                           f"differ from {stored}); use a new --run-id")
    for nb in chosen:
        stage = StageFolder(run_dir / nb.stem)
        if resume and stage.is_finished:
            continue
        try:
            refuse_finished(stage)
        except StageFinishedError as e:
            raise RunError(str(e)) from None


def plan_run(settings: profiles.Settings, run_id: str | None, chosen: list[Path], resume: bool) -> tuple[Path, dict]:
    """Return (run folder, {stage: the parameters its notebook gets}) once every chosen stage's
    parameters and the run id are valid; nothing is written."""
    try:
        for nb in chosen:
            settings.stage(nb.stem)  # validated in full: defaults and what is passed
        run_id = value("run_id", run_id or settings.values.get("run_id") or new_run_id(settings.values["profile"]))
    except ParameterError as e:
        raise RunError(str(e)) from None
    run_dir = paths.runs_dir() / run_id
    _check_run(run_dir, settings.record(), chosen, resume)
    # the run's folder name wins over a `-p run_id`
    return run_dir, {nb.stem: {**settings.passed(nb.stem), "run_id": run_id} for nb in chosen}


def _settings(profile: str | None, data, classes, overrides, run_id: str | None, resume: bool) -> profiles.Settings:
    """Return the run's Settings: with ``resume`` and nothing else given, those the run recorded
    in its params.yaml; otherwise the profile (default quick) with the command line on top."""
    recorded = paths.runs_dir() / (run_id or "") / layout.PARAMS_YAML
    try:
        if resume and run_id and profile is None and data is None and classes is None and not overrides \
                and recorded.is_file():
            return profiles.from_record(read_yaml(recorded))
        return profiles.resolve(profile or "quick", data, classes, overrides)
    except (ParameterError, RunFolderError) as e:
        raise RunError(str(e)) from None


def run_series(profile: str | None = None, data: str | None = None, classes: str | None = None,
               run_id: str | None = None, only: str | None = None, resume: bool = False,
               overrides: dict | None = None, log_output: bool = False, hide_code: bool = False,
               progress: bool = True, wait: bool = False, executor: str = "local", address: str | None = None,
               gpus_per_fold: float = 1.0) -> Path:
    """Run the series' notebooks in order into runs/<run_id>/ and write the report; return the
    path of index.html. Finished stages are skipped with ``resume`` and refused without it; a
    failing stage stops the run with a RunError naming it. ``resume`` with only a run id takes
    the run's recorded profile, data, classes and parameters. The run's lock is held throughout:
    a second writer is refused naming this one (``wait``: it waits for the lock). ``executor``
    'ray' runs the stages' folds side by side as Ray tasks (``ray_executor``), at ``address``
    (None: RAY_ADDRESS, else Ray on this machine), each asking for ``gpus_per_fold`` of a card."""
    _check_executor(executor, gpus_per_fold)
    settings = _settings(profile, data, classes, overrides, run_id, resume)
    chosen = select(notebooks(), only)
    run_dir, passed = plan_run(settings, run_id, chosen, resume)
    print(f"run {run_dir.name} ({settings.values['profile']} profile): {len(chosen)} stage(s) → {run_dir}", flush=True)
    try:
        held = lock.acquire(run_dir, " ".join(["cellclf", *sys.argv[1:]]), wait)
    except lock.RunLockedError as e:
        raise RunError(str(e)) from None
    before = os.environ.get(lock.HOLDER_ENV)
    os.environ[lock.HOLDER_ENV] = str(os.getpid())  # the kernels started below write under this lock
    try:
        _check_run(run_dir, settings.record(), chosen, resume)  # again: another writer may have finished meanwhile
        if not (run_dir / layout.PARAMS_YAML).exists():
            atomic_write(run_dir / layout.PARAMS_YAML, yaml.safe_dump(settings.record(), sort_keys=True))
        hint = _resume_hint(run_dir, only, executor, address)
        if executor == "ray":
            from . import ray_executor
            ray_executor.run_jobs(run_dir, chosen, passed, hint, address, gpus_per_fold, progress and not log_output)
        else:
            _run_stages(chosen, run_dir, passed, hint, log_output, progress)
    finally:
        held.release()
        if before is None:
            os.environ.pop(lock.HOLDER_ENV, None)
        else:
            os.environ[lock.HOLDER_ENV] = before
    return write_report(run_dir, hide_code=hide_code)


def _resume_hint(run_dir: Path, only: str | None, executor: str, address: str | None) -> str:
    """Return the command that continues the run (its params.yaml holds everything else)."""
    return (f"cellclf run --run-id {run_dir.name} --resume" + (f" --only {only}" if only else "")
            + (f" --executor {executor}" if executor != "local" else "") + (f" --address {address}" if address else ""))


def _check_executor(executor: str, gpus_per_fold: float) -> None:
    """Raise RunError, before anything is written, for an unknown executor, a missing Ray or a
    share of a card out of range."""
    if executor not in ("local", "ray"):
        raise RunError(f"--executor {executor!r}: use local (one stage after another here) or ray")
    if executor == "ray":
        from . import ray_executor
        ray_executor.require()
        if not 0 < gpus_per_fold <= 8:
            raise RunError(f"--gpus-per-fold {gpus_per_fold}: give a share of a card above 0 (0.5 packs two "
                           "folds on a card) and at most 8")


def _run_stages(chosen: list[Path], run_dir: Path, passed: dict, hint: str, log_output: bool,
                progress: bool) -> None:
    """Execute the chosen stages' notebooks in order here, skipping finished ones."""
    for i, nb in enumerate(chosen, 1):
        stage = StageFolder(run_dir / nb.stem)
        if stage.is_finished:
            print(f"[{i}/{len(chosen)}] {nb.stem}: finished earlier, skipped (--resume)")
            continue
        label = f"[{i}/{len(chosen)}] {nb.stem}"
        # streamed output (--log-output) and a live line would cut through each other
        with LiveLine(stage.dir, label) if progress and not log_output else nullcontext():
            run_stage(nb, passed[nb.stem], stage.dir, log_output, hint)
