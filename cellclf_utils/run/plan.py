"""The work a run asks of its networks, counted before it starts: per stage, the images each
training phase and each forward pass sees, and, given speeds measured on the machine
(benchmarks/throughput.py's CSV), about how long that takes. `cellclf plan` prints it."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import ParameterError, profiles
from ..data import Dataset, load_dataset, resolve_source
from ..folds import FoldsError, assign, matching, subset
from ..model.batching import padded
from ..model.tta import VIEWS
from ..runfolder import Run, RunFolderError, StageFolder, layout, open_run
from ..train.device.memory import CPU_BATCH
from .runner import RunError, notebooks, select

TRAINED_BY = {"02_baseline_cnn": "baseline"}  # stages whose network is not a `backbone` parameter


def fold_work(fold_of: np.ndarray, n_test: int, P: dict, frozen_head: bool, extra: int = 0) -> dict:
    """Return the images one cross-validation pushes through its network, summed over folds:
    ``trained`` (forward and backward, every layer the phase trains), ``frozen_base`` (head epochs on a
    frozen base), ``predicted`` (forward only: the validation split scored after every epoch,
    then validation and test predictions, with TTA's 8 views). ``extra``: images added to each
    fold's training split (pseudo-labels; at most the test set)."""
    bs = P.get("batch_size") or CPU_BATCH  # auto: the size depends on the card; counted at the CPU's
    head = P.get("head_epochs", 0) if frozen_head else 0
    tta = bool(P.get("tta", False))
    views = VIEWS if tta else 1
    trained = head_images = predicted = 0
    for f in np.unique(fold_of):
        n_train, n_val = int((fold_of != f).sum()) + extra, int((fold_of == f).sum())
        per_epoch = padded(n_train, bs)  # train.fit_fold fills the last batch
        trained += P["epochs"] * per_epoch
        head_images += head * per_epoch
        predicted += (head + P["epochs"]) * padded(n_val, bs)  # train.BestEpoch, every epoch
        # TTA also keeps the plain validation prediction (the report compares the two)
        predicted += (views + (1 if tta else 0)) * padded(n_val, bs) + views * padded(n_test, bs)
    return {"trained": trained, "frozen_base": head_images, "predicted": predicted}


def stage_parameters(profile: str, data_dir: str | None, classes: str | None, overrides: dict | None,
                     only: str | None = None) -> dict[str, dict]:
    """Return ``{stage: parameters}`` as `cellclf run` would run them (defaults, then profile,
    per-stage section and command line, validated), for the stages ``only`` selects."""
    try:
        settings = profiles.resolve(profile, data_dir, classes, overrides)
        return {nb.stem: settings.stage(nb.stem) for nb in select(notebooks(), only)}
    except ParameterError as e:
        raise RunError(str(e)) from None


def _folds(ds: Dataset, P: dict, run_folds: pd.DataFrame | None = None) -> np.ndarray:
    """Return each used image's validation fold: a run's own (``run_folds``, its folds.csv) where
    it covers exactly these images in as many folds, else drawn as a run draws them but without
    near-duplicate groups (hashing every image costs more than the count is worth; sizes can
    then differ from the run's by the size of a group)."""
    df = None
    if run_folds is not None:
        try:
            df = matching(run_folds, ds, P["folds"], "the run's folds.csv")
        except FoldsError:
            pass  # folds of other data or another k: draw them
    if df is None:
        df = assign(ds.ids, ds.labels, np.arange(len(ds.ids)), P["folds"], P["seed"], ds.class_names)
    return subset(df, P.get("limit", 0), P["seed"]).fold.to_numpy()


def _epochs_label(P: dict) -> str:
    """Return the epochs a stage trains as the plan shows them: 'head+main', or 'main'."""
    return f"{P.get('head_epochs', 0)}+{P['epochs']}" if "head_epochs" in P else str(P.get("epochs", ""))


def _row(stage: str, network: str, P: dict, n_used: int, n_test: int, work: dict, note: str = "") -> dict:
    bs = P.get("batch_size")
    if P.get("patience") and any(work.values()):  # where it trains: early stopping makes the count a ceiling
        note = "; ".join(filter(None, [note, f"at most: early stopping (patience {P['patience']})"]))
    return {"stage": stage, "network": network, "image_size": P.get("image_size"),
            "batch_size": bs if bs else (f"auto ({CPU_BATCH} counted)" if bs == 0 else ""),
            "folds": P.get("folds"), "images": n_used, "test_images": n_test,
            "epochs": _epochs_label(P),
            "tta": bool(P.get("tta", False)), **work, "note": note}


def _network_seconds(trained: int, frozen_base: int, predicted: int, speed: dict) -> float:
    """Return the seconds of network work at ``speed`` (``read_speeds``): trained images at the
    training speed, frozen-base ones at the head warm-up's speed and predicted ones at the
    forward speed (each else at the training speed, which errs long)."""
    return (trained / speed["train"] + frozen_base / speed.get("head", speed["train"])
            + predicted / speed.get("predict", speed["train"]))


def _costliest(rows: list[dict], speeds: dict | None) -> str:
    """Return the stage of ``rows`` that costs most: by seconds among those with measured
    speeds, else by image pixels trained (blind to depth, but not to input size)."""
    speed = {r["stage"]: (speeds or {}).get((r["network"], r["image_size"]), {}) for r in rows}
    measured = [r for r in rows if "train" in speed[r["stage"]]]
    if measured:
        cost = [_network_seconds(r["trained"], r["frozen_base"], r["predicted"], speed[r["stage"]]) for r in measured]
        return measured[int(np.argmax(cost))]["stage"]
    return rows[int(np.argmax([(r["trained"] + r["frozen_base"]) * r["image_size"] ** 2 for r in rows]))]["stage"]


def plan(stage_params: dict[str, dict], speeds: dict | None = None,
         run_folds: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return one row per stage: its network, input size, folds, images used, and the images
    trained / trained with a frozen base / predicted (``fold_work``). Stages without a network
    to train (EDA, classical features, ensemble) count zero. ``speeds`` (``read_speeds``) only
    ranks the teachers pseudo-labelling may pick. ``run_folds`` (a run's folds.csv) gives the
    folds that run used, near-duplicate groups included, where it matches the data."""
    rows, by_stage, datasets = [], {}, {}
    none = {"trained": 0, "frozen_base": 0, "predicted": 0}
    for stage, P in stage_params.items():
        key = (P.get("data_dir", ""), P.get("classes", ""))
        if key not in datasets:
            datasets[key] = load_dataset(resolve_source(key[0], progress=False), key[1],
                                         P.get("on_bad_image", "error"), progress=False)
        ds = datasets[key]
        n_test = len(ds.test_ids)
        if "epochs" in P and ("backbone" in P or stage in TRAINED_BY):
            fold_of = _folds(ds, P, run_folds)
            network = P.get("backbone") or TRAINED_BY[stage]
            work = fold_work(fold_of, n_test, P, frozen_head="backbone" in P)
            by_stage[stage] = (network, P, fold_of)
            rows.append(_row(stage, network, P, len(fold_of), n_test, work))
        elif "backbone" in P:  # 02c: features of every image (and view) through the frozen network
            fold_of = _folds(ds, P, run_folds)
            views = VIEWS if P.get("tta") else 1
            bs = P.get("batch_size") or CPU_BATCH
            work = {**none, "predicted": views * (padded(len(fold_of), bs) + padded(n_test, bs))}
            rows.append(_row(stage, P["backbone"], P, len(fold_of), n_test, work, "features only"))
        elif "rounds" in P:  # 06: each teacher retrained per round, with its confident test images
            if not n_test:
                rows.append(_row(stage, "", P, 0, 0, none, "skipped: no test images to pseudo-label"))
                continue
            named = [t.strip() for t in str(P.get("teacher", "")).split(",") if t.strip()]
            note = f"{P['rounds']} round(s), all {n_test} test images pseudo-labelled (at most)"
            if named:
                known = [t for t in named if t in by_stage]
            else:
                # the best trained stage teaches, known only after the run: count the costliest
                candidates = [r for r in rows if r["stage"] in by_stage]
                known = [_costliest(candidates, speeds)] if candidates else []
                note += "; teacher: the costliest stage (the best is known after the run)"
            if not known:
                rows.append(_row(stage, "", P, 0, n_test, none, "not counted: its teacher stage is not in this "
                                 "plan (add it to --only)"))
                continue
            for teacher in known:
                network, TP, fold_of = by_stage[teacher]
                work = fold_work(fold_of, n_test, TP, frozen_head="backbone" in TP, extra=n_test)
                work = {k: v * P["rounds"] for k, v in work.items()}
                rows.append(_row(f"{stage} ({teacher})", network, TP, len(fold_of), n_test, work, note))
        else:
            rows.append(_row(stage, "", P, len(ds.ids), n_test, none, "no network trained"))
    return pd.DataFrame(rows).astype({"image_size": "Int64", "folds": "Int64"})


_SPEED_COLUMNS = ("model", "size", "variant", "img_s", "compile_s")


def _speed_rows(csv_path) -> list[tuple[int, dict]]:
    """Return (line, row) of a speeds CSV; RunError naming the file when it is missing, not text
    or lacks one of the columns benchmarks/throughput.py writes."""
    hint = "write one with benchmarks/throughput.py --csv"
    try:
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(enumerate(reader, start=2))
            columns = reader.fieldnames or []
    except FileNotFoundError:
        raise RunError(f"--speeds {csv_path}: no such file; {hint}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise RunError(f"--speeds {csv_path}: not a CSV ({e}); {hint}") from None
    missing = [c for c in _SPEED_COLUMNS if c not in columns]
    if missing:
        raise RunError(f"--speeds {csv_path}: missing column(s) {', '.join(missing)}; {hint}")
    return rows


def read_speeds(csv_path: str | Path) -> dict[tuple[str, int], dict]:
    """Return ``{(network, size): {"train": img/s, "compile_s": s, "batch": n, "predict": img/s,
    "head": img/s, "head_compile_s": s}}`` from benchmarks/throughput.py's CSV: training speed from
    the 'stage' row (the stage's own model) or else 'project', forward speed from 'predict', the
    head warm-up's (base frozen) from 'head'."""
    speeds: dict[tuple[str, int], dict] = {}
    for line, r in _speed_rows(csv_path):
        if not r.get("img_s"):
            continue
        try:
            s = speeds.setdefault((r["model"], int(r["size"])), {})
            if r["variant"] == "predict":
                s["predict"] = float(r["img_s"])
            elif r["variant"] == "head":
                s["head"], s["head_compile_s"] = float(r["img_s"]), float(r["compile_s"] or 0)
            elif r["variant"] == "stage" or (r["variant"] == "project" and "train" not in s):
                s["train"], s["compile_s"] = float(r["img_s"]), float(r["compile_s"] or 0)
                s["batch"] = int(r["batch"]) if r.get("batch") else None
        except ValueError as e:
            raise RunError(f"--speeds {csv_path} line {line}: not a number ({e})") from None
    return speeds


def estimate(table: pd.DataFrame, speeds: dict[tuple[str, int], dict]) -> pd.DataFrame:
    """Return ``table`` with ``seconds`` (and ``compile_s``, the part compiling takes): trained images at the measured training speed,
    frozen-base images at the measured head warm-up speed and predicted images at the measured
    forward speed (each at the training speed, erring long, where not measured: a head epoch
    skips the base's backward pass, a forward pass is cheaper still), plus one compile per
    training phase (later folds load it from the compile cache). Blank where the network at
    that size was not measured."""
    out = table.copy()
    seconds, compiles, basis = [], [], []
    for r in out.itertuples():
        work = r.trained + r.frozen_base + r.predicted
        s = speeds.get((r.network, int(r.image_size))) if r.network and r.image_size else None
        if not work:
            seconds.append(0.0)
            compiles.append(0.0)
            basis.append("")
            continue
        if not s or "train" not in s:
            seconds.append(np.nan)
            compiles.append(np.nan)
            basis.append(f"no speed measured for {r.network}@{r.image_size}")
            continue
        compile_s = ((s["compile_s"] if r.trained else 0)
                     + (s.get("head_compile_s", s["compile_s"]) if r.frozen_base else 0))
        compiles.append(compile_s)
        seconds.append(_network_seconds(r.trained, r.frozen_base, r.predicted, s) + compile_s)
        notes = [] if s.get("batch") in (None, r.batch_size) else [f"speed measured at batch {s['batch']}"]
        notes += [] if "predict" in s else ["forward at the training speed"]
        notes += [] if "head" in s or not r.frozen_base else ["head epochs at the training speed"]
        basis.append("; ".join(notes))
    out["seconds"] = np.round(seconds, 1)
    out["compile_s"] = compiles  # once per stage on one worker; once per fold when folds run apart
    out["basis"] = basis
    return out


def _teacher_ran(stage: StageFolder, teacher: str, notes: list) -> str:
    """Return the teacher whose rounds the run holds: ``teacher``, or the one the run picked (the
    best stage) where the plan counted the costliest."""
    if not teacher or stage.sub(teacher).dir.is_dir():
        return teacher
    ran = sorted(d.parent.name for d in stage.dir.glob("*/round1"))
    if len(ran) == 1:
        notes.append(f"the run retrained {ran[0]}, not {teacher}: its numbers are {ran[0]}'s")
        return ran[0]
    return teacher


def _differences(r, ran: dict) -> list[str]:
    """Return where a run's parameters ``ran`` differ from plan row ``r``'s."""
    planned = {"image_size": r.image_size, "folds": r.folds, "epochs": str(r.epochs), "tta": bool(r.tta)}
    got = {"image_size": ran.get("image_size"), "folds": ran.get("folds"),
           "epochs": _epochs_label(ran) if "epochs" in ran else None, "tta": bool(ran.get("tta"))}
    return [f"{k} {got[k]} in the run, {planned[k]} planned" for k in planned if got[k] != planned[k]]


def _recorded(r, run: Run, stage: StageFolder, teacher: str, walled: set) -> dict:
    """Return what the run recorded for plan row ``r``: epochs, fold seconds, stage wall, notes."""
    notes, out = [], {"run_epochs": np.nan, "run_fold_s": np.nan, "run_stage_s": np.nan}
    teacher = _teacher_ran(stage, teacher, notes)
    state, why = stage.status()
    if state == "finished" and stage.name not in walled:
        out["run_stage_s"] = stage.metrics().get("elapsed_s", np.nan)
        walled.add(stage.name)  # one stage, several teachers: its wall is counted once
    elif state != "finished":
        notes.append(why or "unfinished in the run")
    trained = run.stage(teacher) if teacher else stage  # a student retrains its teacher's settings
    if r.trained and trained.file(layout.STAGE_PARAMS).is_file():
        notes += _differences(r, trained.params())
    rounds = [stage.sub(teacher, d.name) for d in sorted(stage.sub(teacher).dir.glob("round*"))] if teacher else [stage]
    info = [f.done() for st in rounds for f in st.folds() if f.is_done]
    if info:
        out["run_fold_s"] = round(sum(i["seconds"] for i in info), 1)
        if all("epochs" in i for i in info):
            out["run_epochs"] = sum(i["epochs"] for i in info)
    ft = stage.fold_times()
    if ft is not None and "resumed" in ft and ft.resumed.any():
        notes.append("resumed: its wall time is the last call's only")
    return {**out, "run_note": "; ".join(notes)}


def against(table: pd.DataFrame, run_dir: str | Path) -> pd.DataFrame:
    """Return ``table`` (``plan``'s, with or without ``estimate``) beside what run ``run_dir``
    recorded for each row: ``run_epochs`` (epochs its folds trained, head epochs included: fewer
    than planned with early stopping), ``run_fold_s`` (its folds' own seconds of training and
    per-epoch scoring, from each fold's done.json; pseudo-labelling: the row's teacher, every
    round, or the one teacher the run picked where the plan counted another) and ``run_stage_s``
    (the stage's wall time from metrics.json: kernel start, loading, predictions and pages
    included). ``run_note`` says where the run's parameters differ from the plan's (its numbers
    then answer another question), or a stage is missing or unfinished."""
    run = open_run(run_dir)
    rows, walled = [], set()
    for r in table.itertuples():
        stage_name, _, teacher = r.stage.partition(" (")
        stage = run.stage(stage_name)
        if not stage.dir.is_dir():
            rows.append({"run_epochs": np.nan, "run_fold_s": np.nan, "run_stage_s": np.nan, "run_note": "not in the run"})
            continue
        try:
            rows.append(_recorded(r, run, stage, teacher.rstrip(")"), walled))
        except RunFolderError as e:  # a cut file in the run: the row says which, the plan still prints
            rows.append({"run_epochs": np.nan, "run_fold_s": np.nan, "run_stage_s": np.nan, "run_note": str(e)})
    out = table.copy()
    for k in ("run_epochs", "run_fold_s", "run_stage_s", "run_note"):
        out[k] = [row[k] for row in rows]
    return out.astype({"run_epochs": "Int64"})
