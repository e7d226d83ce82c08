"""`cellclf run`, `report`, `plan` and `params`: the notebook series and its parameters."""
from __future__ import annotations

import logging
import re
import sys

from .quiet import import_keras


class _CleanLog(logging.Filter):
    """``--log-output``: the notebook's output without the libraries' start-up lines, papermill's
    cell markers and figures' text placeholders; progress bars at their final state."""

    SAID_BY_PAPERMILL = re.compile(r"^((Executing|Ending) Cell \d+-+|<Figure size [\d.]+x[\d.]+ with \d+ Axes>)$")

    def filter(self, record: logging.LogRecord) -> bool:
        from ..report.notebook_noise import drop_noise
        if record.name.startswith("papermill") and isinstance(record.msg, str) and not record.args:
            record.msg = drop_noise(record.msg).strip("\n")
            return bool(record.msg.strip()) and not self.SAID_BY_PAPERMILL.match(record.msg.strip())
        return True


def _overrides(pairs) -> dict:
    """Return ``-p NAME VALUE`` pairs as {name: value}, each value read as YAML (as papermill does)."""
    from ..yamltext import YAMLTextError, safe_load
    out = {}
    for name, text in pairs or []:
        try:
            out[name] = safe_load(text, f"-p {name} {text!r}")
        except YAMLTextError as e:
            raise ValueError(f"{e}; give a number, true/false, a list such as [a, b], or text in quotes") from None
    return out


def _cmd_run(a) -> int:
    import_keras()
    from ..run import RunError, run_series
    overrides = _overrides(a.parameters)
    if a.log_output:
        # papermill streams cell output through its logger at INFO, which is silent unless configured
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        for handler in logging.getLogger().handlers:
            handler.addFilter(_CleanLog())
        logging.getLogger("papermill").setLevel(logging.INFO)
    try:
        index = run_series(a.profile, a.data, a.classes, a.run_id, a.only, a.resume, overrides,
                           a.log_output, a.hide_code, progress=not a.no_progress_bar, wait=a.wait,
                           executor=a.executor, address=a.address, gpus_per_fold=a.gpus_per_fold)
    except RunError as e:
        print(f"cellclf run: {e}", file=sys.stderr)
        return 1
    from ..report import summary_lines
    print("\n".join(["", *summary_lines(index.parent), f"report: {index}"]))
    return 0


def _cmd_report(a) -> int:
    from ..report import write_report
    from ..runfolder import RunFolderError, open_run
    try:
        run = open_run(a.run_dir)
    except RunFolderError as e:
        print(f"cellclf report: {e}", file=sys.stderr)
        return 1
    print(f"report: {write_report(run.dir, hide_code=a.hide_code)}")
    return 0


def _cmd_plan(a) -> int:
    import_keras()
    import pandas as pd
    from ..run import RunError, plan
    from ..runfolder import open_run
    overrides = _overrides(a.parameters)
    try:
        params = plan.stage_parameters(a.profile or "quick", a.data, a.classes, overrides, a.only)
        speeds = plan.read_speeds(a.speeds) if a.speeds else None
    except RunError as e:
        print(f"cellclf plan: {e}", file=sys.stderr)
        return 1
    # the run's own folds (near-duplicate groups kept together), so its fold sizes are the plan's
    table = plan.plan(params, speeds, open_run(a.against).folds() if a.against else None)
    if speeds is not None:
        table = plan.estimate(table, speeds)
    if a.against:
        table = plan.against(table, a.against)
    if a.json:
        print(table.to_json(orient="records", indent=1))
        return 0
    said = ("note", "basis", "run_note")
    notes = [f"  {r.stage}: " + "; ".join(t for t in (getattr(r, k, "") for k in said) if t)
             for r in table.itertuples() if any(getattr(r, k, "") for k in said)]
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.drop(columns=list(said), errors="ignore").to_string(index=False))
    if notes:
        print("notes:\n" + "\n".join(notes))
    totals = table[["trained", "frozen_base", "predicted"]].sum()
    print(f"\nin all: {totals.trained:,} images trained, {totals.frozen_base:,} through a frozen base, "
          f"{totals.predicted:,} predicted")
    if speeds is not None:
        known = table.seconds.notna()
        if not (table.seconds[known] > 0).any():
            print(f"no network time: {a.speeds} has no speed for these networks at these sizes")
        else:
            print(f"about {table.seconds[known].sum() / 60:.1f} min of network time at the speeds in {a.speeds}"
                  + ("" if known.all() else f" (without {', '.join(table.stage[~known])}: no speed measured)")
                  + "; kernel starts, image loading and reports come on top")
    if a.gpus:
        print(_walls(table, a.gpus) if speeds is not None else
              "no wall time: --gpus needs --speeds (images/s measured by benchmarks/throughput.py --csv)")
    if a.against:
        print(f"{a.against} recorded: {table.run_fold_s.sum() / 60:.1f} min in its folds (training and "
              f"per-epoch scoring), {table.run_stage_s.sum() / 60:.1f} min of stage wall time in all")
    return 0


def _walls(table, gpus: str) -> str:
    """Return the plan's network wall time on each worker count of ``--gpus`` ('1,4,8')."""
    from ..run.schedule import wall_seconds
    try:
        counts = [int(g) for g in gpus.split(",") if g.strip()]
    except ValueError:
        raise ValueError(f"--gpus {gpus!r}: give worker counts, e.g. --gpus 1,4,8") from None
    walls = {n: wall_seconds(table, n) for n in counts}
    if any(w != w for w in walls.values()):
        return "no wall time: a stage's speed was not measured (see the notes)"
    return ("network wall time, one fold per worker at a time (a fold compiles unless its stage's first fold "
            "already has: the persistent cache; 1 = the local runner): "
            + ", ".join(f"{n} worker(s) {w / 60:.1f} min" for n, w in walls.items()))


def _cmd_params(a) -> int:
    import_keras()
    from ..config import describe, stage_name
    from ..config.params import reference
    if a.reference:
        print(reference(), end="")
        return 0
    if not a.stage:
        print("cellclf params: name a stage (03, xception, 03_xception), or give --reference", file=sys.stderr)
        return 2
    print(describe(stage_name(a.stage)))
    return 0


def _series_options(p, only_example: str) -> None:
    """The options `run` and `plan` share: which profile, data, classes, stages and parameters."""
    p.add_argument("--profile", default=None, help="quick | full | smoke | path to a YAML profile (default quick; "
                                                 "`run --resume` with only --run-id: the run's recorded settings)")
    p.add_argument("--data", default=None, help="dataset folder or manifest (default: the embedded synthetic set)")
    p.add_argument("--classes", default=None, help="class preset or YAML mapping (default: one class per folder)")
    p.add_argument("--only", default=None, help=f"comma-separated stages by name or number, e.g. {only_example}")
    p.add_argument("-p", "--parameter", dest="parameters", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   default=[], help="override one notebook parameter, as with papermill -p (repeatable)")


def _run_parsers(sub) -> None:
    r = sub.add_parser("run", help="run the notebook series through papermill and write the report")
    _series_options(r, "01,02")
    r.add_argument("--run-id", default=None, help="run folder name under runs/ (default: <profile>-<date>-<time>)")
    r.add_argument("--resume", action="store_true", help="skip finished stages (and finished folds)")
    r.add_argument("--wait", action="store_true", help="when another process is writing the run, wait for it "
                                                       "instead of stopping")
    r.add_argument("--log-output", action="store_true", help="stream notebook output (for CI logs)")
    r.add_argument("--no-progress-bar", action="store_true", help="no live line per stage (fold, epoch, last validation score)")
    r.add_argument("--hide-code", action="store_true", help="leave code cells out of the HTML pages")
    r.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: one stage after another in this process (default); ray: every stage's folds as "
                        "Ray tasks side by side (needs the ray extra and a run folder every worker sees)")
    r.add_argument("--address", default=None, help="with --executor ray: the cluster, e.g. ray://head:10001 "
                                                   "(default: RAY_ADDRESS, else Ray on this machine)")
    r.add_argument("--gpus-per-fold", type=float, default=1.0, metavar="F",
                   help="with --executor ray: the share of a card each job asks for (0.5: two folds per card; "
                        "ignored where the cluster has no cards)")
    r.set_defaults(func=_cmd_run)
    rep = sub.add_parser("report", help="(re)write a run's HTML pages and index.html")
    rep.add_argument("run_dir", help="the run folder, runs/<run_id>")
    rep.add_argument("--hide-code", action="store_true", help="leave code cells out of the HTML pages")
    rep.set_defaults(func=_cmd_report)


def _plan_parser(sub) -> None:
    pl = sub.add_parser("plan", help="count the images a run would train and predict per stage (and, with "
                        "--speeds, about how long that takes) without running it")
    _series_options(pl, "03,04")
    pl.add_argument("--speeds", metavar="CSV", default=None,
                    help="images/s measured on the target machine by benchmarks/throughput.py (--csv)")
    pl.add_argument("--against", metavar="RUN_DIR", default=None,
                    help="a finished (or partly finished) run of the same settings, runs/<run_id>: adds the "
                         "epochs, fold seconds and stage wall time it recorded beside the plan")
    pl.add_argument("--gpus", metavar="N[,N...]", default=None,
                    help="with --speeds: the network wall time on N workers (cards), each running one fold of "
                         "one stage at a time, e.g. --gpus 1,4,8")
    pl.add_argument("--json", action="store_true", help="print the table as JSON records")
    pl.set_defaults(func=_cmd_plan)


def add_parsers(sub) -> None:
    _run_parsers(sub)
    _plan_parser(sub)
    pp = sub.add_parser("params", help="list a stage's parameters: default, allowed values, meaning")
    pp.add_argument("stage", nargs="?", help="a stage's name, number or short name: 03_xception, 03, xception")
    pp.add_argument("--reference", action="store_true",
                    help="every parameter of every stage as markdown (docs/reference/parameters.md)")
    pp.set_defaults(func=_cmd_params)
