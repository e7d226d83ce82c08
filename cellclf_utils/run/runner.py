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
from ..report import stage_html, write_report
from ..report.notebook_noise import clean_file
from ..runfolder import RunFolderError, StageFolder, layout, lock, read_yaml
from . import kernel
from .live_line import LiveLine
from .stage import StageFinishedError, new_run_id, refuse_finished

KERNEL = "cellclf"


class RunError(RuntimeError):
    """A series run that stopped; the message names the stage and what to do."""


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


def _execute(nb: Path, out: Path, parameters: dict, log_output: bool, resume_hint: str):
    """Run one notebook through papermill into ``out``; RunError naming the stage when it fails."""
    import papermill as pm
    from nbclient.exceptions import DeadKernelError
    try:
        pm.execute_notebook(str(nb), str(out), parameters=parameters, kernel_name=KERNEL, cwd=str(Path.cwd()),
                            progress_bar=False, log_output=log_output,
                            **kernel.engine_options(out.parent / layout.KERNEL_LOG))
    except pm.PapermillExecutionError as e:
        _try_html(out)
        raise RunError(f"stage {nb.stem} failed: {e.ename}: {e.evalue}\n  executed notebook: {out}\n"
                       f"  fix the cause, then continue with: {resume_hint}") from None
    except DeadKernelError:
        _try_html(out)
        raise RunError(f"stage {nb.stem}: its kernel died (killed, or out of memory: try a smaller "
                       f"image_size or batch_size)\n  executed notebook so far: {out}\n"
                       f"  finished folds are kept; continue with: {resume_hint}") from None
    except KeyboardInterrupt:  # Ctrl-C: the same way back as a failure
        raise RunError(f"stage {nb.stem} interrupted\n  finished folds are kept; continue with: {resume_hint}") from None
    _tidy(out)


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
               progress: bool = True, wait: bool = False) -> Path:
    """Run the series' notebooks in order into runs/<run_id>/ and write the report; return the
    path of index.html. Finished stages are skipped with ``resume`` and refused without it; a
    failing stage stops the run with a RunError naming it. ``resume`` with only a run id takes
    the run's recorded profile, data, classes and parameters. The run's lock is held throughout:
    a second writer is refused naming this one (``wait``: it waits for the lock)."""
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
        _run_stages(run_dir, chosen, passed, only, log_output, progress)
    finally:
        held.release()
        if before is None:
            os.environ.pop(lock.HOLDER_ENV, None)
        else:
            os.environ[lock.HOLDER_ENV] = before
    return write_report(run_dir, hide_code=hide_code)


def _run_stages(run_dir: Path, chosen: list[Path], passed: dict, only: str | None, log_output: bool,
                progress: bool) -> None:
    """Execute the chosen stages' notebooks in order, skipping finished ones."""
    # the run's params.yaml holds everything else, so this is the whole command
    hint = f"cellclf run --run-id {run_dir.name} --resume" + (f" --only {only}" if only else "")
    for i, nb in enumerate(chosen, 1):
        stage = StageFolder(run_dir / nb.stem)
        if stage.is_finished:
            print(f"[{i}/{len(chosen)}] {nb.stem}: finished earlier, skipped (--resume)")
            continue
        stage.dir.mkdir(parents=True, exist_ok=True)
        out = stage.file(layout.NOTEBOOK)
        label = f"[{i}/{len(chosen)}] {nb.stem}"
        # streamed output (--log-output) and a live line would cut through each other
        with LiveLine(stage.dir, label) if progress and not log_output else nullcontext():
            _execute(nb, out, passed[nb.stem], log_output, hint)
        if not stage.is_finished:
            raise RunError(f"stage {nb.stem} ran to the end without writing {layout.METRICS}; "
                           f"its last cell must call st.finish(...) (see {out})")


def _tidy(nb_path: Path) -> None:
    """Take the libraries' start-up lines out of the executed notebook; never raises (the
    notebook as papermill wrote it is kept then)."""
    try:
        if nb_path.is_file():
            clean_file(nb_path)
    except Exception as e:  # a page with noise is better than a run stopped for it
        print(f"(could not clean {nb_path}: {e})", file=sys.stderr)


def _try_html(nb_path: Path) -> None:
    """Render a failed stage's notebook so the error can be read in a browser; never raises."""
    _tidy(nb_path)
    try:
        stage_html(nb_path)
    except Exception as e:  # the RunError being raised matters more
        print(f"(could not render {nb_path} to HTML: {e})", file=sys.stderr)
