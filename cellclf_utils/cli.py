"""The ``cellclf`` command: data synth/check, run the series, write the report, classify new
images with a trained stage and export it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _param_value(text: str):
    import yaml
    return yaml.safe_load(text)


def _cmd_synth(a) -> int:
    from .data import synth
    out = Path(a.out)
    if a.if_missing and out.exists() and any(out.iterdir()):
        print(f"{out} exists; keeping it (--if-missing)")
        return 0
    summary = synth.generate(out, seed=a.seed, size=a.size, n_train_per_class=a.n_train_per_class,
                             n_test_per_class=a.n_test_per_class, n_classes=a.n_classes, progress=not a.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _cmd_check(a) -> int:
    from .data import describe, load_dataset
    ds = load_dataset(a.dir, a.classes, on_bad_image="skip")  # loaded once for both checks
    rep = describe(ds)
    qrep = None
    if not a.no_quality or a.report:
        from . import quality
        from .report import quality_page
        qrep = quality.build(ds)
        if a.report:
            html_path = quality_page.write_html(qrep, a.report)
    if a.json:
        if qrep is not None:
            rep["quality"] = quality.summary(qrep)
        if a.report:
            rep["quality_report"] = str(html_path)
        print(json.dumps(rep, indent=2, default=str))
        return 1 if rep["skipped"] else 0
    print(f"dataset {rep['root']}: {rep['n_train']} labelled images in {len(rep['classes'])} classes, "
          f"{rep['n_test']} test images{' (with test_labels.csv)' if rep['test_labels'] else ''}")
    width = max(map(len, rep["classes"]))
    for c, n in rep["counts"].items():
        print(f"  {c:<{width}}  {n:6d}")
    print("image sizes (WxH: count): " + ", ".join(f"{k}: {v}" for k, v in list(rep["sizes"].items())[:8])
          + (" ..." if len(rep["sizes"]) > 8 else ""))
    for f in rep["ignored"]:
        print(f"ignored {f['path']}: {f['reason']}")
    if qrep is not None:
        print("\n".join(quality.summary_lines(qrep, worst=a.worst)))
    if a.report:
        print(f"data-quality report: {html_path}")
    if rep["skipped"]:
        print(f"{len(rep['skipped'])} unreadable file(s):")
        for f in rep["skipped"]:
            print(f"  {f['path']}: {f['reason']}")
        return 1
    print("all images readable")
    return 0


def _cmd_split(a) -> int:
    from .folds import split
    rep = split.split(a.dir, a.out, a.test_fraction, a.seed, progress=not a.quiet)
    print(f"{rep['out']}: {rep['train']} training images, {rep['test']} hidden test images "
          f"(test_labels.csv kept aside for scoring); {rep['duplicate_groups']} near-duplicate group(s), "
          f"{rep['groups_split_across']} split across train and test")
    for c, n in rep["per_class"].items():
        print(f"  {c}: {n['train']} train / {n['test']} test")
    if rep["source_test_images_left_out"]:
        print(f"  ({rep['source_test_images_left_out']} unlabeled test image(s) of the source were not copied)")
    return 0


def _print_fetched(summary: dict) -> None:
    spec, counts = summary["set"], summary["counts"]
    print(f"{summary['dest']}: {sum(counts.values())} images of {spec.title} in {len(counts)} class folders")
    width = max(map(len, counts))
    for c, n in counts.items():
        print(f"  {c:<{width}}  {n:6d}")
    for f, h in summary["sha256"].items():
        status = {"published": "matches the published checksum",
                  "lock": f"matches {summary.get('lock')}",
                  "recorded": f"no published checksum: recorded in {summary.get('lock')}; "
                              "later downloads must match it"}.get(summary.get("hash_status"), "")
        print(f"sha256 {f}: {h}" + (f" ({status})" if status else ""))
    print(f"class presets: {', '.join(f'--classes {p}' for p in spec.presets)}")
    print(f"cite: {spec.citation}\nlicence: {spec.licence}")


def _cmd_fetch(a) -> int:
    from .data import fetch
    _print_fetched(fetch.fetch(a.name, a.dir, url=a.url, lock=a.lock, progress=not a.quiet))
    return 0


def _cmd_import(a) -> int:
    from .data import fetch
    _print_fetched(fetch.install(a.name, a.archives, a.dir))
    return 0


def _cmd_run(a) -> int:
    from .run import RunError, run_series
    overrides = {k: _param_value(v) for k, v in (a.parameters or [])}
    if a.log_output:
        # papermill streams cell output through its logger at INFO, which is silent unless configured
        import logging
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        logging.getLogger("papermill").setLevel(logging.INFO)
    try:
        index = run_series(a.profile, a.data, a.classes, a.run_id, a.only, a.resume, overrides,
                           a.log_output, a.hide_code, progress=not a.no_progress_bar)
    except RunError as e:
        print(f"cellclf run: {e}", file=sys.stderr)
        return 1
    print(f"report: {index}")
    return 0


def _cmd_report(a) -> int:
    from .report import write_report
    from .runfolder import RunFolderError, open_run
    try:
        run = open_run(a.run_dir)
    except RunFolderError as e:
        print(f"cellclf report: {e}", file=sys.stderr)
        return 1
    print(f"report: {write_report(run.dir, hide_code=a.hide_code)}")
    return 0


def _cmd_plan(a) -> int:
    import pandas as pd
    from .run import RunError, plan
    from .runfolder import open_run
    overrides = {k: _param_value(v) for k, v in (a.parameters or [])}
    try:
        params = plan.stage_parameters(a.profile, a.data, a.classes, overrides, a.only)
    except RunError as e:
        print(f"cellclf plan: {e}", file=sys.stderr)
        return 1
    speeds = plan.read_speeds(a.speeds) if a.speeds else None
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
    if a.against:
        print(f"{a.against} recorded: {table.run_fold_s.sum() / 60:.1f} min in its folds (training and "
              f"per-epoch scoring), {table.run_stage_s.sum() / 60:.1f} min of stage wall time in all")
    return 0


def _cmd_params(a) -> int:
    from .config import describe, stage_name
    from .config.params import reference
    if a.reference:
        print(reference(), end="")
        return 0
    if not a.stage:
        print("cellclf params: name a stage (03, xception, 03_xception), or give --reference", file=sys.stderr)
        return 2
    print(describe(stage_name(a.stage)))
    return 0


def _open_run(a):
    """Return the run a command names (RUN: a run folder, or a run id under runs/)."""
    from . import paths
    from .runfolder import open_run
    given = Path(a.run)
    return open_run(given if given.is_dir() or len(given.parts) > 1 else paths.runs_dir() / a.run)


def _stage_arg(stage: str) -> str:
    from .config import stage_name
    return stage if stage == "auto" else stage_name(stage)


def _cmd_predict(a) -> int:
    from .atomic import write_csv
    from .data.new_images import gather
    from .predict.classify import choose, describe, table
    from .predict.saved import open_stage, predict_proba
    out = Path(a.out)
    if out.exists() and not a.overwrite:
        raise FileExistsError(f"{out} exists: pass another --out, or --overwrite to replace it")
    run = _open_run(a)
    sm = open_stage(run, choose(run, _stage_arg(a.stage)))
    print(f"model: {describe(sm)}")
    found = gather(a.images, a.on_bad_image)
    for f in found.ignored:
        print(f"ignored {f['path']}: {f['reason']}")
    for f in found.skipped:
        print(f"skipped {f['path']}: {f['reason']}")
    proba = predict_proba(sm, found.paths, a.tta, progress=not a.quiet)
    preds = table(found.ids, proba, sm.classes)
    write_csv(out, preds)
    counts = ", ".join(f"{c} {n}" for c, n in preds.label.value_counts().reindex(sm.classes, fill_value=0).items())
    print(f"{len(preds)} image(s) classified ({counts}){f', {len(found.skipped)} skipped' if found.skipped else ''}"
          f" → {out}")
    return 0


def _cmd_export(a) -> int:
    from .predict import export
    out = export.export(_open_run(a), a.out, _stage_arg(a.stage), tta=a.tta)
    print(f"exported → {out}: {export.MODEL} (load with keras.saving.load_model), {export.CARD}, {export.PARAMETERS}")
    return 0


def _synth_parser(dsub) -> None:
    s = dsub.add_parser("synth", help="generate the embedded synthetic stained-cell dataset")
    s.add_argument("out", help="new folder (must not exist or be empty)")
    s.add_argument("--seed", type=int, default=0, help="the same seed writes the same bytes (default 0)")
    s.add_argument("--size", type=int, default=128, help="image size in pixels (default 128)")
    s.add_argument("--n-train-per-class", type=int, default=400, help="labelled images per class (default 400)")
    s.add_argument("--n-test-per-class", type=int, default=40, help="unlabeled test images per class (default 40)")
    s.add_argument("--n-classes", type=int, default=3,
                   help="number of classes, 2-20 (3: the write-up's set; otherwise normal + graded severity levels)")
    s.add_argument("--if-missing", action="store_true", help="do nothing if OUT exists and is not empty")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)


def _check_parsers(dsub) -> None:
    c = dsub.add_parser("check", help="per-class counts, image sizes, every unreadable file with its reason, and a "
                                      "data-quality report (balance, size spread, colour/stain outliers, images "
                                      "unlike their class, duplicates within and across splits)")
    c.add_argument("dir", help="dataset folder or CSV manifest")
    c.add_argument("--classes", default="", help="preset (herlev3, ...) or YAML mapping; default one class per folder")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.add_argument("--report", metavar="OUT.html", default=None,
                   help="also write the data-quality report as one self-contained HTML page with thumbnails")
    c.add_argument("--worst", type=int, default=3, help="flagged files printed per finding (default 3)")
    c.add_argument("--no-quality", action="store_true", help="counts, sizes and unreadable files only")
    c.set_defaults(func=_cmd_check)
    sp = dsub.add_parser("split", help="competition-style split: train/ class folders, hidden test/ + test_labels.csv")
    sp.add_argument("dir", help="labelled dataset folder or CSV manifest")
    sp.add_argument("out", help="new folder (must not exist or be empty)")
    sp.add_argument("--test-fraction", type=float, default=0.2, help="share of images held out (default 0.2)")
    sp.add_argument("--seed", type=int, default=0, help="seed of the stratified draw (default 0)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_split)


def _public_set_parsers(dsub) -> None:
    from .data.fetch import DEFAULT_LOCK
    from .data.public_sets import SETS  # stdlib only: cheap enough for the parser
    fe = dsub.add_parser("fetch", help="download a public cell-image set (checksum, lock file, safe unpacking) "
                                       "into DIR/<class>/<image>")
    fe.add_argument("name", choices=list(SETS), help="the public set")
    fe.add_argument("dir", help="new folder (must not exist or be empty)")
    fe.add_argument("--lock", default=str(DEFAULT_LOCK),
                    help=f"JSON file of trusted sha256 per set (default {DEFAULT_LOCK})")
    fe.add_argument("--url", default=None, help="a mirror of the set's archive (checked like the original)")
    fe.add_argument("--quiet", action="store_true", help="no progress bar")
    fe.set_defaults(func=_cmd_fetch)
    im = dsub.add_parser("import", help="build DIR from a public set's archive(s) downloaded by hand")
    im.add_argument("name", choices=list(SETS), help="the public set")
    im.add_argument("archives", nargs="+", metavar="ARCHIVE",
                    help="the downloaded .zip/.tar file(s), or the folder(s) they were extracted to")
    im.add_argument("dir", help="new folder (must not exist or be empty)")
    im.set_defaults(func=_cmd_import)


def _series_options(p, only_example: str) -> None:
    """The options `run` and `plan` share: which profile, data, classes, stages and parameters."""
    p.add_argument("--profile", default="quick", help="quick | full | smoke | path to a YAML profile (default quick)")
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
    r.add_argument("--log-output", action="store_true", help="stream notebook output (for CI logs)")
    r.add_argument("--no-progress-bar", action="store_true", help="no papermill cell counter per stage")
    r.add_argument("--hide-code", action="store_true", help="leave code cells out of the HTML pages")
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
    pl.add_argument("--json", action="store_true", help="print the table as JSON records")
    pl.set_defaults(func=_cmd_plan)


def _use_parsers(sub) -> None:
    """`predict` and `export`: a trained stage used outside its run."""
    run_help = "the run: its folder (runs/<run_id>) or its id"
    stage_help = ("auto (what 07 submitted, else the best out-of-fold stage), or a stage by name, number or "
                  "short name: 02c_frozen_probe, 03, xception")
    pr = sub.add_parser("predict", help="classify new images with a run's trained stage (the mean of its fold models)")
    pr.add_argument("run", help=run_help)
    pr.add_argument("images", nargs="+", help="a folder of images, image files, or a CSV manifest with a path column")
    pr.add_argument("--stage", default="auto", help=stage_help)
    pr.add_argument("--out", default="preds.csv", help="CSV written: id,label,p_<class>... (default preds.csv)")
    pr.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    pr.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                    help="average over the 8 flips/rotations (default: as the stage was scored)")
    pr.add_argument("--on-bad-image", choices=("error", "skip"), default="error",
                    help="an unreadable image stops (error, default) or is listed and left out (skip)")
    pr.add_argument("--quiet", action="store_true", help="no progress bars")
    pr.set_defaults(func=_cmd_predict)
    ex = sub.add_parser("export", help="write a Keras stage as one .keras model (fold models averaged inside) "
                                       "with a model card, loadable without cellclf")
    ex.add_argument("run", help=run_help)
    ex.add_argument("--stage", default="auto", help=stage_help)
    ex.add_argument("--out", required=True, help="new folder for the bundle")
    ex.add_argument("--tta", action="store_true", help="average the 8 flips/rotations inside the model (8x the work)")
    ex.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    p = argparse.ArgumentParser(prog="cellclf", description=__doc__)
    p.add_argument("--version", action="version", version=f"cellclf {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="datasets: generate the synthetic set, check a folder, split off a test set, "
                                    "fetch or import a public set")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    _synth_parser(dsub)
    _check_parsers(dsub)
    _public_set_parsers(dsub)
    _run_parsers(sub)
    _plan_parser(sub)
    _use_parsers(sub)
    pp = sub.add_parser("params", help="list a stage's parameters: default, allowed values, meaning")
    pp.add_argument("stage", nargs="?", help="a stage's name, number or short name: 03_xception, 03, xception")
    pp.add_argument("--reference", action="store_true",
                    help="every parameter of every stage as markdown (docs/reference/parameters.md)")
    pp.set_defaults(func=_cmd_params)
    return p


def main(argv=None) -> int:
    import cellclf_utils  # noqa: F401  (pins KERAS_BACKEND before anything imports keras)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError, FileExistsError) as e:
        # our errors say what to do; a traceback would bury that
        print(f"cellclf: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
