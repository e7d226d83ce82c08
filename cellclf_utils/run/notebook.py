"""One stage's notebook run through papermill into its folder: the executed notebook, its
kernel's own log, and the page of a failed one. Both executors run a stage this way: the local
one in the runner's process, the Ray one in a job process on a worker (``job``)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..report import stage_html
from ..report.notebook_noise import clean_file
from ..runfolder import StageFolder, layout
from . import kernel

KERNEL = "cellclf"


class RunError(RuntimeError):
    """A series run that stopped; the message names the stage and what to do."""


def run_stage(nb: Path, parameters: dict, stage_dir: Path, log_output: bool, resume_hint: str) -> None:
    """Run notebook ``nb`` into ``stage_dir``/notebook.ipynb; RunError naming the stage when it
    fails or ends without finishing the stage (metrics.json)."""
    stage = StageFolder(stage_dir)
    stage.dir.mkdir(parents=True, exist_ok=True)
    out = stage.file(layout.NOTEBOOK)
    _execute(nb, out, parameters, log_output, resume_hint)
    if not stage.is_finished:
        raise RunError(f"stage {nb.stem} ran to the end without writing {layout.METRICS}; "
                       f"its last cell must call st.finish(...) (see {out})")


def failed(stage: str, ename: str, evalue: str, where: str, resume_hint: str) -> str:
    """Return the message of a stage whose code raised ``ename: evalue``; ``where`` names what to read."""
    return f"stage {stage} failed: {ename}: {evalue}\n  {where}\n  fix the cause, then continue with: {resume_hint}"


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
        raise RunError(failed(nb.stem, e.ename, e.evalue, f"executed notebook: {out}", resume_hint)) from None
    except DeadKernelError:
        _try_html(out)
        raise RunError(f"stage {nb.stem}: its kernel died (killed, or out of memory: try a smaller "
                       f"image_size or batch_size)\n  executed notebook so far: {out}\n"
                       f"  finished folds are kept; continue with: {resume_hint}") from None
    except KeyboardInterrupt:  # Ctrl-C: the same way back as a failure
        raise RunError(f"stage {nb.stem} interrupted\n  finished folds are kept; continue with: {resume_hint}") from None
    _tidy(out)


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
