"""The runs of a runs folder as one table (``cellclf runs``), and two runs side by side: the
parameters where they differ and each stage's out-of-fold score."""
from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path

import pandas as pd

from .. import paths
from ..runfolder import Run, RunFolderError, StageFolder, layout, open_run
from .index import acc_ci, leaderboard

# params.yaml's keys that hold no value of their own: per-stage sections (compared per stage)
# and the command line's values (already among the values)
_NOT_PARAMETERS = ("stages", "command_line")
COLUMNS = ["run", "date", "status", "stages", "data", "classes", "profile", "best", "submitted"]


def _notebook_failed(stage: StageFolder) -> bool:
    """Return whether papermill recorded an exception in the stage's executed notebook."""
    try:
        nb = json.loads(stage.file(layout.NOTEBOOK).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(nb.get("metadata", {}).get("papermill", {}).get("exception"))


def status(run: Run) -> tuple[str, str]:
    """Return ``(status, detail)``: failed (a stage's notebook raised, or its metrics.json is
    damaged), unfinished (a stage without metrics.json: running, or stopped), or finished."""
    states = {s.name: s.status()[0] for s in run.stages()}
    failed = [s.name for s in run.stages() if states[s.name] == "damaged"
              or states[s.name] == "unfinished" and _notebook_failed(s)]
    if failed:
        return "failed", ", ".join(failed)
    waiting = [name for name, state in states.items() if state != "finished"]
    if waiting or not states:
        return "unfinished", ", ".join(waiting) or "no stage yet"
    return "finished", ""


def _settings(run: Run) -> dict:
    """Return params.yaml, or the first stage's params.json for a run of notebooks by hand."""
    try:
        given = run.params()
        if given:
            return given
        first = next((s for s in run.stages() if s.file(layout.STAGE_PARAMS).is_file()), None)
        return first.params() if first else {}
    except RunFolderError:
        return {}


def row(run: Run) -> dict:
    """Return the run's line of the table (COLUMNS)."""
    state, detail = status(run)
    P = _settings(run)
    board = leaderboard(run.dir)
    best = board.iloc[0] if len(board) else None
    submitted = next((s.metrics().get("model") for s in run.finished("ensemble")), "")
    started = run.dir / layout.PARAMS_YAML
    stamp = (started if started.exists() else run.dir).stat().st_mtime
    return {"run": run.id, "date": datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M"),
            "status": state + (f" ({detail})" if detail else ""),
            "stages": f"{len(run.finished())}/{len(run.stages())}", "data": P.get("data_dir") or "(embedded synthetic)",
            "classes": P.get("classes") or "(folders)", "profile": P.get("profile") or "",
            "best": "" if best is None else f"{best.stage} {acc_ci(best.cv_accuracy, [best.ci_low, best.ci_high])}",
            "submitted": submitted or ""}


def table(runs_dir: Path | None = None, data: str | None = None) -> pd.DataFrame:
    """Return one row per run folder under ``runs_dir`` (default: the project's runs/), newest
    first; ``data``: only runs on that dataset."""
    root = Path(runs_dir or paths.runs_dir())
    runs = [Run(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith((".", "_"))] \
        if root.is_dir() else []
    if data is not None:
        want = paths.resolve(data).resolve()
        runs = [r for r in runs if Path(_settings(r).get("data_dir") or "/nonexistent").resolve() == want]
    df = pd.DataFrame([row(r) for r in runs], columns=COLUMNS)
    return df.sort_values("date", ascending=False, kind="stable").reset_index(drop=True)


def _differences(a: dict, b: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """Return (name, value in a, value in b) for every key whose values differ."""
    missing = "(not set)"
    return [(prefix + k, a.get(k, missing), b.get(k, missing)) for k in sorted(set(a) | set(b))
            if a.get(k, missing) != b.get(k, missing)]


def compare(a, b) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (the parameters that differ between runs ``a`` and ``b``: the series' settings, then
    each stage both ran where it differs otherwise; each stage's out-of-fold accuracy with its
    interval in both)."""
    ra, rb = open_run(a), open_run(b)
    top = _differences(*({k: v for k, v in _settings(r).items() if k not in _NOT_PARAMETERS} for r in (ra, rb)))
    shown = {name: (va, vb) for name, va, vb in top}
    rows = list(top)
    both = sorted({s.name for s in ra.stages()} & {s.name for s in rb.stages()})
    for name in both:
        sa, sb = ra.stage(name), rb.stage(name)
        if sa.file(layout.STAGE_PARAMS).is_file() and sb.file(layout.STAGE_PARAMS).is_file():
            rows += [(f"{name}.{k}", va, vb) for k, va, vb in _differences(sa.params(), sb.params())
                     if k != "run_id" and shown.get(k) != (va, vb)]
    scores = {}
    for run in (ra, rb):
        for r in leaderboard(run.dir).itertuples():
            scores.setdefault(r.stage, {"stage": r.stage})[run.id] = acc_ci(r.cv_accuracy, [r.ci_low, r.ci_high])
    side = pd.DataFrame(sorted(scores.values(), key=lambda d: d["stage"]), columns=["stage", ra.id, rb.id]).fillna("")
    return pd.DataFrame(rows, columns=["parameter", ra.id, rb.id]), side


def html(tables: dict[str, pd.DataFrame], title: str) -> str:
    """Return one self-contained HTML page of the ``tables`` (heading -> table)."""
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin-bottom:2em}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}th{background:#f3f3f3}")
    body = "".join(f"<h2>{escape(h)}</h2>{t.to_html(index=False, escape=True, border=0)}" for h, t in tables.items())
    return (f"<!doctype html><meta charset='utf-8'><title>{escape(title)}</title><style>{style}</style>"
            f"<h1>{escape(title)}</h1>{body}")
