"""The HTML report of a run: each finished stage's executed notebook rendered to
``notebook.html`` next to it, and ``runs/<run_id>/index.html`` with the leaderboard, every
stage's key numbers and figures, the files left out, and the stages not finished.

index.html is self-contained (inline CSS, no scripts) and links to the stage pages and
figures by relative paths, so the run folder can be moved or zipped as a whole.
"""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from ..atomic import atomic_write
from ..runfolder import Run, RunFolderError, StageFolder, layout, open_run
from .floor import not_distinguishable
from .render import render
from .stage_page import stage_html

LEADERBOARD_COLUMNS = ["stage", "title", "model", "cv_accuracy", "ci_low", "ci_high", "n", "macro_auc",
                       "test_accuracy", "cv_accuracy_no_tta"]


def _finished_metrics(run: Run) -> list[tuple[StageFolder, dict]]:
    """Return (stage, metrics) of every finished stage, in the series' order."""
    return [(st, st.metrics()) for st in run.stages() if st.is_finished]


def _num(x) -> float:
    """Return ``x`` as a float, NaN for None or anything non-numeric."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def leaderboard(run_dir) -> pd.DataFrame:
    """Return one row per finished stage with CV scores (stage, title, model, cv_accuracy,
    ci_low, ci_high, n (the images scored), macro_auc, test_accuracy, and cv_accuracy_no_tta
    for stages scored with TTA; NaN where absent), best CV accuracy first."""
    rows = []
    for st, m in _finished_metrics(open_run(run_dir)):
        if not isinstance(m.get("cv"), dict):
            continue
        cv, test = m["cv"], m.get("test") or {}
        ci = cv.get("accuracy_ci") or [None, None]
        rows.append({"stage": st.name, "title": m.get("title") or st.name, "model": m.get("model") or "",
                     "cv_accuracy": _num(cv.get("accuracy")), "ci_low": _num(ci[0]), "ci_high": _num(ci[1]),
                     "n": _num(cv.get("n")),
                     "macro_auc": _num(cv.get("macro_auc")), "test_accuracy": _num(test.get("accuracy")),
                     "cv_accuracy_no_tta": _num((cv.get("without_tta") or {}).get("accuracy"))})
    df = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    # stable sort: ties keep stage order; stages with no accuracy go last
    return df.sort_values("cv_accuracy", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def _pct(x) -> str:
    x = _num(x)
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def acc_ci(acc, ci=None) -> str:
    """Return "71.2% [68.0–74.1]" (the CI part only when known)."""
    lo, hi = (_num(v) for v in (ci or [None, None])[:2])
    text = _pct(acc)
    if math.isnan(lo) or math.isnan(hi) or text == "n/a":
        return text
    return f"{text} [{100 * lo:.1f}–{100 * hi:.1f}]"


def _auc(x) -> str:
    x = _num(x)
    return "n/a" if math.isnan(x) else f"{x:.3f}"


def _key_numbers(m: dict) -> list[tuple[str, str]]:
    """Return (label, value) rows for whatever known keys a metrics.json holds."""
    rows = []
    add = rows.append
    if m.get("note"):  # a stage that had nothing to do says why
        add(("Note", str(m["note"])))
    if m.get("model") and not (m.get("kind") == "ensemble" and isinstance(m.get("weights"), dict)):
        add(("Model", str(m["model"])))
    if m.get("weights_note"):  # weights auto: which weights it got, and why
        add(("Weights", str(m["weights_note"]).removeprefix("weights auto: ")))
    if m.get("classes"):
        add(("Classes", ", ".join(map(str, m["classes"]))))
    for key, label in (("n_train", "Training images"), ("n_test", "Test images"), ("folds", "Folds")):
        if m.get(key) is not None:
            add((label, str(m[key])))
    if isinstance(m.get("counts"), dict):
        add(("Images per class", " · ".join(f"{c} {n}" for c, n in m["counts"].items())))
    if m.get("duplicate_groups") is not None:
        add(("Near-duplicate groups (training set)", str(m["duplicate_groups"])))
    if m.get("train_test_duplicates") is not None:
        add(("Test images near-duplicating a training image", str(m["train_test_duplicates"])))
    cv = m.get("cv")
    no_tta = cv.get("without_tta") if isinstance(cv, dict) else None
    for label, s in (("CV (out-of-fold)", cv), ("CV without TTA", no_tta), ("Test", m.get("test"))):
        if not isinstance(s, dict):
            continue
        n = f" (n={s['n']})" if s.get("n") is not None else ""
        add((f"{label} accuracy, 95% CI", acc_ci(s.get("accuracy"), s.get("accuracy_ci")) + n))
        add((f"{label} macro AUC", _auc(s.get("macro_auc"))))
        if isinstance(s.get("per_class_recall"), dict):
            add((f"{label} recall per class",
                 " · ".join(f"{c} {_pct(r)}" for c, r in s["per_class_recall"].items())))
    if "test" in m and m["test"] is None:
        add(("Test", "no test labels: not scored"))
    if isinstance(m.get("weights"), dict):  # the ensemble: who carries it
        add(("Submitted", submitted_words(m)))
        if m.get("model") != f"{layout.ENSEMBLE_PREFIX}weights":
            add(("Fitted weights (not submitted: they show who carries the ensemble)", _weights(m["weights"])))
    for r in m.get("pseudo") or []:  # pseudo-labelling: the effect per teacher and round
        if isinstance(r, dict):
            known = r.get("pseudo_label_accuracy")
            add((f"Pseudo-labelling {r.get('teacher')} round {r.get('round')}",
                 f"CV {_pct(r.get('cv_before'))} → {_pct(r.get('cv_after'))}; test {_pct(r.get('test_before'))} → "
                 f"{_pct(r.get('test_after'))}; {r.get('pseudo_labels')} pseudo-labels per fold"
                 + (f", {_pct(known)} of them right" if known is not None else "")))
    if m.get("elapsed_s") is not None:
        s = _num(m["elapsed_s"])
        add(("Run time", f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"))
    return rows


def _weights(weights: dict) -> str:
    return " · ".join(f"{s} {_num(w):.2f}" for s, w in sorted(weights.items(), key=lambda kv: -_num(kv[1])))


def submitted_words(m: dict, with_weights: bool = True) -> str:
    """Return what an ensemble stage submits, in words: the combination (with its weights unless
    ``with_weights`` is False), or the single member it chose."""
    model, members = str(m.get("model") or ""), ", ".join(map(str, m.get("members") or []))
    combiner = model.removeprefix(layout.ENSEMBLE_PREFIX) if model.startswith(layout.ENSEMBLE_PREFIX) else None
    if combiner is None:
        return f"{model} alone (no combination of {members} scored higher out of fold)"
    weights = f" ({_weights(m.get('weights') or {})})" if with_weights else ""
    return {"weights": f"a weighted mean of the members' probabilities{weights}",
            "mean": f"the mean of the probabilities of {members}",
            "stacking": f"a logistic regression on the probabilities of {members}",
            "weights+bias": f"a weighted mean plus a per-class bias over the probabilities of {members}",
            }.get(combiner, f"{model} of {members}")


def _figures(stage_dir: Path, m: dict) -> list[dict]:
    """Return the stage's figures ({src, caption, exists}): those metrics.json lists, then any
    other PNG in figures/ (captioned by file name), src relative to index.html."""
    listed = [f for f in m.get("figures") or [] if isinstance(f, dict) and f.get("path")]
    seen = {Path(f["path"]).as_posix() for f in listed}
    extra = [{"path": p.relative_to(stage_dir).as_posix(), "caption": p.stem.replace("_", " ")}
             for p in sorted((stage_dir / layout.FIGURES).glob("*.png")) if p.relative_to(stage_dir).as_posix() not in seen]
    return [{"src": quote(f"{stage_dir.name}/{Path(f['path']).as_posix()}"), "caption": f.get("caption") or "",
             "exists": (stage_dir / f["path"]).is_file()} for f in listed + extra]


def _file_rows(stages: list[dict], key: str, text: str = "reason") -> list[dict]:
    """Return one row per distinct (path, ``text``) listed under ``key`` by any stage, with the
    stages that listed it (every stage that loads the data reports the same files)."""
    rows: dict[tuple, list[str]] = {}
    for st in stages:
        for f in st["metrics"].get(key) or []:
            if isinstance(f, dict):
                rows.setdefault((str(f.get("path", "")), str(f.get(text, ""))), []).append(st["name"])
    return [{"path": p, "reason": r, "stages": ", ".join(s)} for (p, r), s in rows.items()]


def _overlaps(a, b) -> bool:
    """Return True when two leaderboard rows' accuracy CIs overlap (or either is unknown)."""
    if any(math.isnan(v) for v in (a.ci_low, a.ci_high, b.ci_low, b.ci_high)):
        return True
    return a.ci_low <= b.ci_high and b.ci_low <= a.ci_high


def verdict(stages: list[dict], board: pd.DataFrame) -> list[str]:
    """Return the report's answer to "which model do we submit, and how sure are we", as
    sentences: the ensemble stage's choice and its test against the best single stage when
    an ensemble ran, else the best CV stage and whether the runner-up is within its CI."""
    if not len(board):
        return []
    by_stage = {st["name"]: st["metrics"] for st in stages}
    ens = next((st for st in stages if st["kind"] == "ensemble" and isinstance(st["metrics"].get("cv"), dict)), None)
    out = []
    if ens:
        m, cv = ens["metrics"], ens["metrics"]["cv"]
        test = m.get("test") or {}
        out.append(f"Submit {submitted_words(m)}, chosen by {ens['name']}: out-of-fold accuracy "
                   f"{acc_ci(cv.get('accuracy'), cv.get('accuracy_ci'))}"
                   + (f", hidden test {acc_ci(test.get('accuracy'), test.get('accuracy_ci'))}" if test else "")
                   + ".")
        out += _chance(m, "The submitted model")
        v = m.get("versus")
        if isinstance(v, dict) and v.get("best_single") and v.get("best_single") != m.get("model"):
            p = _num(v.get("mcnemar_p"))
            out.append(f"Against the best single stage, {v['best_single']} ({_pct(v.get('best_single_accuracy'))}): "
                       f"{100 * _num(v.get('gain')):+.1f} points; {v.get('only_submitted_right')} images only the "
                       f"submitted model gets right, {v.get('only_best_right')} only {v['best_single']}; McNemar "
                       f"p = {p:.3g}: " + ("unlikely to be chance." if p < 0.05 else
                                           "the difference could well be chance; either is a defensible submission."))
        return out
    # stages within their interval of the largest-class floor are not ranked
    ranked = board[[not not_distinguishable(by_stage.get(s) or {}) for s in board.stage]]
    if not len(ranked):
        best = board.iloc[0]
        return [f"No stage has shown anything learnt yet: the best point estimate, {best.title} ({best.stage}) "
                f"{acc_ci(best.cv_accuracy, [best.ci_low, best.ci_high])}, is "
                f"{not_distinguishable(by_stage[best.stage])}, and so is every other stage {_TO_LEARN}."]
    best = ranked.iloc[0]
    test = (by_stage.get(best.stage) or {}).get("test") or {}
    out.append(f"Best out-of-fold accuracy: {best.title} ({best.stage}), "
               f"{acc_ci(best.cv_accuracy, [best.ci_low, best.ci_high])}"
               + (f", hidden test {_pct(test.get('accuracy'))}" if test else "") + ".")
    if len(ranked) > 1:
        second = ranked.iloc[1]
        out.append(f"Runner-up {second.title} ({second.stage}) {_pct(second.cv_accuracy)}: "
                   + ("its confidence interval overlaps, so the order may not hold on new images."
                      if _overlaps(best, second) else "outside the best stage's confidence interval."))
    out.append("No ensemble stage ran: run 07_ensemble to combine the stages and test the difference.")
    return out


_TO_LEARN = "(more images, epochs or pretrained weights)"  # what a stage at the floor lacks


def _chance(m: dict, who: str) -> list[str]:
    """Return the verdict's warning when ``who``'s interval contains the largest-class floor."""
    words = not_distinguishable(m)
    return [f"{who} is {words}: its 95% interval contains that score, so it has shown nothing yet "
            f"{_TO_LEARN}."] if words else []


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def disk_usage(run_dir: Path) -> str:
    """Return the run's size on disk in words, with the part its saved models take."""
    files = [p for p in Path(run_dir).rglob("*") if p.is_file() and not p.is_symlink()]
    models = (layout.FOLD_MODEL, layout.FOLD_PIPELINE, layout.FEATURES_MODEL)
    total, in_models = sum(p.stat().st_size for p in files), sum(p.stat().st_size for p in files if p.name in models)
    return f"{_megabytes(total)} on disk, {_megabytes(in_models)} of it saved models"


def _folds_note(run: Run) -> tuple[str, int | None]:
    """Return the leaderboard's words on the run's folds and how many training images they hold
    (None when folds.csv is missing or unreadable: the note says so instead of failing the report)."""
    try:
        f = run.folds()
    except RunFolderError as e:
        return f"the run's folds.csv ({e})", None
    if f is None:
        return f"the run's folds ({layout.FOLDS_CSV} is missing)", None
    counts = f["label"].value_counts()
    # the floor every model must beat: always answering the largest class
    floor = (f"; always answering the largest class ({counts.index[0]}) would score "
             f"{counts.iloc[0] / len(f):.1%}") if len(counts) else ""
    return f"{f['fold'].nunique()} folds over {len(f)} training images ({layout.FOLDS_CSV}){floor}", len(f)


def _unfinished(st: StageFolder, reason: str) -> dict:
    page = st.file(layout.NOTEBOOK_HTML)
    return {"name": st.name, "reason": reason, "has_notebook": st.file(layout.NOTEBOOK).is_file(),
            "html": quote(f"{st.name}/{layout.NOTEBOOK_HTML}") if page.is_file() else None}


def _finished(st: StageFolder, m: dict, hide_code: bool) -> dict:
    """Return a finished stage's entry on the index, its notebook rendered to its page."""
    entry = {"name": st.name, "title": m.get("title") or st.name, "metrics": m, "kind": m.get("kind", ""),
             "error": m.get("error"), "html": None, "html_error": None, "numbers": _key_numbers(m),
             "figures": _figures(st.dir, m),
             # other pages a stage wrote beside its notebook (01's data-quality report)
             "pages": [{"href": quote(f"{st.name}/{p.name}"), "name": p.name}
                       for p in sorted(st.dir.glob("*.html")) if p.name != layout.NOTEBOOK_HTML]}
    if st.file(layout.NOTEBOOK).is_file():
        try:
            stage_html(st.file(layout.NOTEBOOK), hide_code=hide_code)
            entry["html"] = quote(f"{st.name}/{layout.NOTEBOOK_HTML}")
        except Exception as e:  # one broken notebook must not cost the whole report
            entry["html_error"] = f"{type(e).__name__}: {e}"
    return entry


def board_rows(board: pd.DataFrame, finished: list[dict], n_run: int | None) -> list[dict]:
    """Return the leaderboard's rows: ranked stages first (the best highlighted), then those not
    distinguishable from always answering the largest class, which are not ranked; each row
    with its n, marked when a `limit` subset of the run's ``n_run`` images was scored."""
    metrics = {st["name"]: st["metrics"] for st in finished}
    rows = []
    for r in board.itertuples():
        m = metrics[r.stage]
        n = None if math.isnan(r.n) else int(r.n)
        rows.append({"stage": r.stage, "anchor": quote(r.stage), "title": r.title,
                     # the ensemble's submission in words, its weights left to the verdict above
                     "model": submitted_words(m, with_weights=False)
                     if m.get("kind") == "ensemble" and isinstance(m.get("weights"), dict) else r.model,
                     "cv": acc_ci(r.cv_accuracy, [r.ci_low, r.ci_high]), "auc": _auc(r.macro_auc),
                     "n": "—" if n is None else str(n), "subset": n is not None and bool(n_run) and n < n_run,
                     "test": "—" if math.isnan(r.test_accuracy)
                     else acc_ci(r.test_accuracy, (m.get("test") or {}).get("accuracy_ci")),
                     "no_tta": "—" if math.isnan(r.cv_accuracy_no_tta) else _pct(r.cv_accuracy_no_tta),
                     "floor": not_distinguishable(m), "acc": r.cv_accuracy})
    ranked = [r for r in rows if not r["floor"]]
    best = max((r["acc"] for r in ranked), default=math.nan)
    for r in rows:
        r["best"] = not r["floor"] and r["acc"] == best
    return ranked + [r for r in rows if r["floor"]]


def write_report(run_dir, hide_code=False) -> Path:
    """Render every finished stage's notebook.ipynb to notebook.html, then write the run's
    index.html atomically; return its path. Unfinished stages (a damaged metrics.json among
    them, with its reason) are listed, not rendered."""
    run = open_run(run_dir)
    finished, unfinished = [], []
    for st in run.stages():
        state, why = st.status()
        if state == "finished":
            finished.append(_finished(st, st.metrics(), hide_code))
        else:
            unfinished.append(_unfinished(st, why))
    board = leaderboard(run.dir)
    folds_note, n_run = _folds_note(run)
    params = run.dir / layout.PARAMS_YAML
    started = datetime.fromtimestamp((params if params.exists() else run.dir).stat().st_mtime)
    html = render("cellclf_index.html.j2", run_id=run.id, started=started.strftime("%Y-%m-%d %H:%M"),
                  written=datetime.now().strftime("%Y-%m-%d %H:%M"),
                  params=params.read_text(encoding="utf-8", errors="replace") if params.exists() else None,
                  board=board_rows(board, finished, n_run), verdict=verdict(finished, board),
                  disk=disk_usage(run.dir),
                  folds_note=folds_note,
                  stages=finished, unfinished=unfinished, skipped=_file_rows(finished, "skipped"),
                  ignored=_file_rows(finished, "ignored"), notes=_file_rows(finished, "notes", "note"),
                  twelve_bit=max((st["metrics"].get("twelve_bit") or 0 for st in finished), default=0),
                  hide_code=hide_code)
    return atomic_write(run.dir / layout.INDEX_HTML, html)
