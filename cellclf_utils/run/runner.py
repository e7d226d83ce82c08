"""Run the numbered notebooks of the series through papermill into one run folder."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from .. import paths
from . import stage as runs

KERNEL = "cellclf"


class RunError(RuntimeError):
    """A series run that stopped; the message names the stage and what to do."""


def notebooks(root: Path | None = None) -> list[Path]:
    """Return the series' notebooks in order (notebooks/NN_*.ipynb; NNb_*.ipynb sorts after NN_)."""
    root = root or paths.project_root()
    return sorted((root / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


def load_profile(profile: str, root: Path | None = None) -> dict:
    """Return the parameters of a profile: a name in notebooks/profiles/ or a YAML path."""
    root = root or paths.project_root()
    path = root / "notebooks" / "profiles" / f"{profile}.yaml"
    if not path.exists():
        path = paths.resolve(profile)
    if not path.is_file():
        known = sorted(p.stem for p in (root / "notebooks" / "profiles").glob("*.yaml"))
        raise RunError(f"--profile {profile!r}: no such profile (known: {', '.join(known)}) or YAML file")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise RunError(f"{path}: a profile is a flat mapping 'parameter: value'")
    values.setdefault("profile", path.stem)
    return values


def declared_parameters(nb: Path) -> set[str]:
    """Return the names assigned in the notebook's cell tagged 'parameters'."""
    import papermill as pm
    return set(pm.inspect_notebook(str(nb)))


def notebook_defaults(nb: Path) -> dict:
    """Return the notebook's parameters cell as ``{name: value}`` (papermill gives the values'
    source text; a value that is not a Python literal is kept as that text)."""
    import ast

    import papermill as pm
    out = {}
    for name, spec in pm.inspect_notebook(str(nb)).items():
        try:
            out[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            out[name] = spec["default"]
    return out


def select(nbs: list[Path], only: str | None) -> list[Path]:
    """Return the notebooks named by ``only`` ('01,02' or stage names), all when None."""
    if not only:
        return nbs
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [nb for nb in nbs if any(nb.stem == w or nb.stem.split("_")[0] == w.zfill(2) for w in wanted)]
    unknown = [w for w in wanted if not any(nb.stem == w or nb.stem.split("_")[0] == w.zfill(2) for nb in nbs)]
    if unknown:
        raise RunError(f"--only: unknown stage(s) {', '.join(unknown)}; stages: {', '.join(nb.stem for nb in nbs)}")
    return chosen


def resolve_parameters(profile: str, data: str | None, classes: str | None, overrides: dict | None,
                       root: Path | None = None) -> tuple[dict, dict, dict]:
    """Return ``(P, per_stage, cli)``: the profile's parameters with the command line's on top,
    the profile's per-stage sections, and the command line's own (which win over a section)."""
    P = load_profile(profile, root)
    # precedence: profile < the profile's per-stage section < command line
    per_stage = P.pop("stages", None) or {}
    cli = dict(overrides or {})
    if data is not None:
        cli["data_dir"] = str(paths.resolve(data)) if data else ""
    if classes is not None:
        cli["classes"] = classes
    P.update(cli)
    return P, per_stage, cli


def check_parameters(profile: str, P: dict, per_stage: dict, declared: dict[str, set]) -> None:
    """Raise RunError for a parameter no notebook declares, or a per-stage section naming an
    unknown stage or a parameter that stage lacks."""
    unknown = sorted(set(P) - set().union(*declared.values()))
    if unknown:
        raise RunError(f"parameter(s) {', '.join(unknown)} are not parameters of any notebook in the series; "
                       "`cellclf params <stage>` lists them")
    for stem, values in per_stage.items():
        if stem not in declared:
            raise RunError(f"profile {profile!r}: section stages.{stem} names no notebook of the series")
        wrong = sorted(set(values) - declared[stem])
        if wrong:
            raise RunError(f"profile {profile!r}: {', '.join(wrong)} are not parameters of {stem}")


def parameters_for(stem: str, P: dict, per_stage: dict, cli: dict, declared: set) -> dict:
    """Return the parameters notebook ``stem`` gets: only those its parameters cell declares."""
    merged = {**P, **per_stage.get(stem, {}), **cli}
    return {k: v for k, v in merged.items() if k in declared}


def run_series(profile: str = "quick", data: str | None = None, classes: str | None = None,
               run_id: str | None = None, only: str | None = None, resume: bool = False,
               overrides: dict | None = None, log_output: bool = False, hide_code: bool = False,
               progress: bool = True) -> Path:
    """Run the series' notebooks in order into runs/<run_id>/ and write the report.

    Returns the path of index.html. Finished stages are skipped with ``resume`` and refused
    without it; a failing stage stops the run with a RunError naming it.
    """
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    root = paths.project_root()
    P, per_stage, cli = resolve_parameters(profile, data, classes, overrides, root)
    P["run_id"] = run_id or P.get("run_id") or runs.new_run_id(P["profile"])
    run_dir = paths.runs_dir() / P["run_id"]
    stored = run_dir / "params.yaml"
    # what the run records: per-stage sections included, so --resume compares them too
    record = {**P, "stages": per_stage} if per_stage else dict(P)
    if stored.exists():
        before = yaml.safe_load(stored.read_text()) or {}
        changed = {k for k in set(before) | set(record) if before.get(k) != record.get(k)}
        if changed:
            raise RunError(f"run {P['run_id']} exists with other parameters ({', '.join(sorted(changed))} "
                           f"differ from {stored}); use a new --run-id")
    series = notebooks(root)
    stages = select(series, only)
    if not stages:
        raise RunError(f"no notebooks found in {root / 'notebooks'}")
    declared = {nb.stem: declared_parameters(nb) for nb in series}
    check_parameters(profile, P, per_stage, declared)
    for nb in stages:
        if runs.is_finished(run_dir / nb.stem) and not resume:
            raise RunError(str(runs.finished_error(run_dir / nb.stem)))
    run_dir.mkdir(parents=True, exist_ok=True)
    if not stored.exists():
        runs.atomic_write(stored, yaml.safe_dump(record, sort_keys=True))
    print(f"run {P['run_id']} ({P['profile']} profile): {len(stages)} stage(s) → {run_dir}")
    for i, nb in enumerate(stages, 1):
        stage_dir = run_dir / nb.stem
        if runs.is_finished(stage_dir):
            print(f"[{i}/{len(stages)}] {nb.stem}: finished earlier, skipped (--resume)")
            continue
        stage_dir.mkdir(parents=True, exist_ok=True)
        out = stage_dir / "notebook.ipynb"
        try:
            # the run's folder name wins over a `-p run_id`
            mine = parameters_for(nb.stem, P, per_stage, {**cli, "run_id": P["run_id"]}, declared[nb.stem])
            pm.execute_notebook(str(nb), str(out), parameters=mine, kernel_name=KERNEL, cwd=str(root),
                                progress_bar={"desc": f"[{i}/{len(stages)}] {nb.stem}"} if progress else False,
                                log_output=log_output)
        except pm.PapermillExecutionError as e:
            _try_html(out)
            raise RunError(f"stage {nb.stem} failed: {e.ename}: {e.evalue}\n"
                           f"  executed notebook: {out}\n"
                           f"  fix the cause, then continue with: cellclf run --run-id {P['run_id']} "
                           f"--profile {profile} --resume") from None
        except DeadKernelError:
            _try_html(out)
            raise RunError(f"stage {nb.stem}: its kernel died (killed, or out of memory: try a smaller "
                           f"image_size or batch_size)\n"
                           f"  executed notebook so far: {out}\n"
                           f"  finished folds are kept; continue with: cellclf run --run-id {P['run_id']} "
                           f"--profile {profile} --resume") from None
        if not runs.is_finished(stage_dir):
            raise RunError(f"stage {nb.stem} ran to the end without writing metrics.json; "
                           f"its last cell must call st.finish(...) (see {out})")
    from ..report import index as report
    index = report.write_report(run_dir, hide_code=hide_code)
    return index


def _try_html(nb_path: Path) -> None:
    """Render a failed stage's notebook so the error can be read in a browser; never raises."""
    try:
        from ..report import index as report
        report.stage_html(nb_path)
    except Exception as e:  # the RunError being raised matters more
        print(f"(could not render {nb_path} to HTML: {e})", file=sys.stderr)
