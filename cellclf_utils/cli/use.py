"""`cellclf predict` and `export`: a run's trained stage used outside its run; `cellclf runs`:
the runs listed, or two compared."""
from __future__ import annotations

import argparse
from pathlib import Path

from .quiet import import_keras


def _open_run(text: str):
    """Return the run ``text`` names: a run folder, or a run id under runs/."""
    from .. import paths
    from ..runfolder import open_run
    given = Path(text)
    return open_run(given if given.is_dir() or len(given.parts) > 1 else paths.runs_dir() / text)


def _stage_arg(stage: str) -> str:
    from ..config import stage_name
    return stage if stage == "auto" else stage_name(stage)


def _cmd_predict(a) -> int:
    import_keras()
    from ..atomic import write_csv
    from ..data.new_images import gather
    from ..predict.classify import choose, describe, table
    from ..predict.saved import open_stage, predict_proba
    out = Path(a.out)
    if out.exists() and not a.overwrite:
        raise FileExistsError(f"{out} exists: pass another --out, or --overwrite to replace it")
    run = _open_run(a.run)
    for target in filter(None, (out, a.gradcam and Path(a.gradcam))):
        if target.resolve().is_relative_to(run.dir.resolve()):
            raise ValueError(f"{target} is inside the run folder {run.dir}: predict never writes there; "
                             "name a path outside it")
    sm = open_stage(run, choose(run, _stage_arg(a.stage)))
    print(f"model: {describe(sm)}")
    found = gather(a.images, a.on_bad_image)
    for f in found.ignored:
        print(f"ignored {f['path']}: {f['reason']}")
    for f in found.notes:
        print(f"note: {f['path']}: {f['note']}")
    for f in found.skipped:
        print(f"skipped {f['path']}: {f['reason']}")
    proba = predict_proba(sm, found.paths, a.tta, progress=not a.quiet)
    preds = table(found.ids, proba, sm.classes)
    write_csv(out, preds)
    counts = ", ".join(f"{c} {n}" for c, n in preds.label.value_counts().reindex(sm.classes, fill_value=0).items())
    print(f"{len(preds)} image(s) classified ({counts}){f', {len(found.skipped)} skipped' if found.skipped else ''}"
          f" → {out}")
    if a.gradcam:
        from ..predict.explain import explain
        maps = explain(sm, found.ids, found.paths, proba.argmax(1), Path(a.gradcam), progress=not a.quiet)
        print(f"Grad-CAM: {len(maps)} image(s) → {a.gradcam}")
    return 0


def _cmd_export(a) -> int:
    import_keras()
    from ..predict import export
    out = export.export(_open_run(a.run), a.out, _stage_arg(a.stage), tta=a.tta)
    print(f"exported → {out}: {', '.join(sorted(p.name for p in out.iterdir()))} (how to use it: {export.CARD})")
    return 0


def _cmd_runs(a) -> int:
    import pandas as pd
    from ..atomic import atomic_write
    from ..report import runs
    if a.compare:
        differ, scores = runs.compare(_open_run(a.compare[0]).dir, _open_run(a.compare[1]).dir)
        tables = {"Parameters that differ": differ, "Out-of-fold accuracy per stage [95% CI]": scores}
    else:
        tables = {"Runs": runs.table(data=a.data)}
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 60):
        for heading, t in tables.items():
            print(f"{heading}:\n{t.to_string(index=False) if len(t) else '  (none)'}\n")
    if a.html:
        print(f"page: {atomic_write(Path(a.html), runs.html(tables, 'cellclf runs'))}")
    return 0


def add_parsers(sub) -> None:
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
    pr.add_argument("--gradcam", metavar="DIR", default=None,
                    help="also write one PNG per image into DIR: the image and where the Keras fold models found "
                         "its predicted class (Grad-CAM, averaged over folds)")
    pr.add_argument("--quiet", action="store_true", help="no progress bars")
    pr.set_defaults(func=_cmd_predict)
    ex = sub.add_parser("export", help="write a stage as a bundle with a model card: a Keras stage as one .keras "
                                       "model (fold models averaged inside, loads without cellclf), a scikit-learn "
                                       "stage as its fold pipelines, the ensemble as its members and combiner")
    ex.add_argument("run", help=run_help)
    ex.add_argument("--stage", default="auto", help=stage_help)
    ex.add_argument("--out", required=True, help="new folder for the bundle")
    ex.add_argument("--tta", action="store_true", help="average the 8 flips/rotations inside the model (8x the work)")
    ex.set_defaults(func=_cmd_export)
    rs = sub.add_parser("runs", help="the runs: status, stages finished, data, classes, profile, best out-of-fold "
                                     "score with its interval, submitted model; or two runs compared")
    rs.add_argument("--data", default=None, help="only the runs on this dataset folder or manifest")
    rs.add_argument("--compare", nargs=2, metavar=("A", "B"),
                    help="two runs (folders or ids): the parameters that differ and each stage's score side by side")
    rs.add_argument("--html", metavar="OUT.html", default=None, help="also write the tables as one HTML page")
    rs.set_defaults(func=_cmd_runs)
