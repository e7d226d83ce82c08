"""The HTML report of a run: each finished stage's executed notebook rendered to
``notebook.html`` next to it, and ``runs/<run_id>/index.html`` with the leaderboard, every
stage's key numbers and figures, the files left out, and the stages not finished.

index.html is self-contained (inline CSS, no scripts) and links to the stage pages and
figures by relative paths, so the run folder can be moved or zipped as a whole.
"""
from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import jinja2
import pandas as pd

from ..run.stage import METRICS, atomic_write

LEADERBOARD_COLUMNS = ["stage", "title", "model", "cv_accuracy", "ci_low", "ci_high", "macro_auc", "test_accuracy",
                       "cv_accuracy_no_tta"]

# nbconvert's lab template minus require.js, which is fetched from a CDN and only serves widgets
_NB_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
"""


def stage_html(notebook_path, out_path=None, hide_code=False) -> Path:
    """Render an executed notebook to HTML (``notebook.html`` next to it by default; code
    cells' source left out with ``hide_code``), written atomically; return its path.
    Outputs' images are already base64 in the notebook, so the page stands alone."""
    import nbformat
    from nbconvert import HTMLExporter

    nb_path = Path(notebook_path)
    out = Path(out_path) if out_path else nb_path.with_suffix(".html")
    nb = nbformat.read(nb_path, as_version=4)
    exporter = HTMLExporter(template_name="lab", template_file="cellclf_stage.html.j2",
                            extra_loaders=[jinja2.DictLoader({"cellclf_stage.html.j2": _NB_TEMPLATE})],
                            exclude_input=hide_code, embed_images=True)
    # the page title: the stage folder's name says more than "notebook"
    title = nb_path.parent.name if nb_path.stem == "notebook" else nb_path.stem
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title, "path": str(nb_path.parent)}})
    return atomic_write(out, body)


def _stage_dirs(run_dir: Path) -> list[Path]:
    """Return the run's stage folders (every visible sub-folder), in name order."""
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _metrics(stage_dir: Path) -> dict | None:
    """Return the stage's metrics.json (None when unfinished; an ``error`` entry when unreadable)."""
    path = stage_dir / METRICS
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
        return m if isinstance(m, dict) else {"error": f"{METRICS} does not hold a JSON object"}
    except (OSError, ValueError) as e:
        return {"error": f"{METRICS} is unreadable: {e}"}


def _num(x) -> float:
    """Return ``x`` as a float, NaN for None or anything non-numeric."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def leaderboard(run_dir) -> pd.DataFrame:
    """Return one row per finished stage with CV scores (stage, title, model, cv_accuracy,
    ci_low, ci_high, macro_auc, test_accuracy, and cv_accuracy_no_tta for stages scored with
    TTA; NaN where absent), best CV accuracy first."""
    rows = []
    for d in _stage_dirs(Path(run_dir)):
        m = _metrics(d)
        if not m or not isinstance(m.get("cv"), dict):
            continue
        cv, test = m["cv"], m.get("test") or {}
        ci = cv.get("accuracy_ci") or [None, None]
        rows.append({"stage": d.name, "title": m.get("title") or d.name, "model": m.get("model") or "",
                     "cv_accuracy": _num(cv.get("accuracy")), "ci_low": _num(ci[0]), "ci_high": _num(ci[1]),
                     "macro_auc": _num(cv.get("macro_auc")), "test_accuracy": _num(test.get("accuracy")),
                     "cv_accuracy_no_tta": _num((cv.get("without_tta") or {}).get("accuracy"))})
    df = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    # stable sort: ties keep stage order; stages with no accuracy go last
    return df.sort_values("cv_accuracy", ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def _pct(x) -> str:
    x = _num(x)
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _acc_ci(acc, ci=None) -> str:
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
    if m.get("model"):
        add(("Model", str(m["model"])))
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
        add((f"{label} accuracy, 95% CI", _acc_ci(s.get("accuracy"), s.get("accuracy_ci")) + n))
        add((f"{label} macro AUC", _auc(s.get("macro_auc"))))
        if isinstance(s.get("per_class_recall"), dict):
            add((f"{label} recall per class",
                 " · ".join(f"{c} {_pct(r)}" for c, r in s["per_class_recall"].items())))
    if "test" in m and m["test"] is None:
        add(("Test", "no test labels: not scored"))
    if isinstance(m.get("weights"), dict):  # the ensemble: who carries it
        add(("Ensemble weights (simplex, all folds)",
             " · ".join(f"{s} {_num(w):.2f}" for s, w in sorted(m["weights"].items(), key=lambda kv: -_num(kv[1])))))
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


def _figures(stage_dir: Path, m: dict) -> list[dict]:
    """Return the stage's figures ({src, caption, exists}): those metrics.json lists, then any
    other PNG in figures/ (captioned by file name), src relative to index.html."""
    listed = [f for f in m.get("figures") or [] if isinstance(f, dict) and f.get("path")]
    seen = {Path(f["path"]).as_posix() for f in listed}
    extra = [{"path": p.relative_to(stage_dir).as_posix(), "caption": p.stem.replace("_", " ")}
             for p in sorted((stage_dir / "figures").glob("*.png")) if p.relative_to(stage_dir).as_posix() not in seen]
    return [{"src": quote(f"{stage_dir.name}/{Path(f['path']).as_posix()}"), "caption": f.get("caption") or "",
             "exists": (stage_dir / f["path"]).is_file()} for f in listed + extra]


def _file_rows(stages: list[dict], key: str) -> list[dict]:
    """Return one row per distinct (path, reason) listed under ``key`` by any stage, with the
    stages that listed it (every stage that loads the data reports the same files)."""
    rows: dict[tuple, list[str]] = {}
    for st in stages:
        for f in st["metrics"].get(key) or []:
            if isinstance(f, dict):
                rows.setdefault((str(f.get("path", "")), str(f.get("reason", ""))), []).append(st["name"])
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
        out.append(f"Submit {m.get('model')} (chosen by {ens['name']}): out-of-fold accuracy "
                   f"{_acc_ci(cv.get('accuracy'), cv.get('accuracy_ci'))}"
                   + (f", hidden test {_acc_ci(test.get('accuracy'), test.get('accuracy_ci'))}" if test else "")
                   + ".")
        v = m.get("versus")
        if isinstance(v, dict) and v.get("best_single") and v.get("best_single") != m.get("model"):
            p = _num(v.get("mcnemar_p"))
            out.append(f"Against the best single stage, {v['best_single']} ({_pct(v.get('best_single_accuracy'))}): "
                       f"{100 * _num(v.get('gain')):+.1f} points; {v.get('only_submitted_right')} images only the "
                       f"submitted model gets right, {v.get('only_best_right')} only {v['best_single']}; McNemar "
                       f"p = {p:.3g}: " + ("unlikely to be chance." if p < 0.05 else
                                           "the difference could well be chance; either is a defensible submission."))
        return out
    best = board.iloc[0]
    test = (by_stage.get(best.stage) or {}).get("test") or {}
    out.append(f"Best out-of-fold accuracy: {best.title} ({best.stage}), "
               f"{_acc_ci(best.cv_accuracy, [best.ci_low, best.ci_high])}"
               + (f", hidden test {_pct(test.get('accuracy'))}" if test else "") + ".")
    if len(board) > 1:
        second = board.iloc[1]
        out.append(f"Runner-up {second.title} ({second.stage}) {_pct(second.cv_accuracy)}: "
                   + ("its confidence interval overlaps, so the order may not hold on new images."
                      if _overlaps(best, second) else "outside the best stage's confidence interval."))
    out.append("No ensemble stage ran: run 07_ensemble to combine the stages and test the difference.")
    return out


def _folds_note(run_dir: Path) -> str:
    path = run_dir / "folds.csv"
    try:
        f = pd.read_csv(path)
        counts = f["label"].value_counts()
        # the floor every model must beat: always answering the largest class
        floor = (f"; always answering the largest class ({counts.index[0]}) would score "
                 f"{counts.iloc[0] / len(f):.1%}") if len(counts) else ""
        return f"{f['fold'].nunique()} folds over {len(f)} training images ({path.name}){floor}"
    except Exception:  # missing or malformed: the note says so instead of failing the report
        return "the run's folds.csv (missing or unreadable)"


def write_report(run_dir, hide_code=False) -> Path:
    """Render every finished stage's notebook.ipynb to notebook.html, then write the run's
    index.html atomically; return its path. Unfinished stages are listed, not rendered."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    finished, unfinished = [], []
    for d in _stage_dirs(run_dir):
        m = _metrics(d)
        if m is None:
            unfinished.append({"name": d.name, "has_notebook": (d / "notebook.ipynb").is_file(),
                               "html": quote(f"{d.name}/notebook.html") if (d / "notebook.html").is_file() else None})
            continue
        st = {"name": d.name, "title": m.get("title") or d.name, "metrics": m,
              "kind": m.get("kind", ""), "error": m.get("error"), "html": None, "html_error": None,
              "numbers": _key_numbers(m), "figures": _figures(d, m),
              # other pages a stage wrote beside its notebook (01's data-quality report)
              "pages": [{"href": quote(f"{d.name}/{p.name}"), "name": p.name}
                        for p in sorted(d.glob("*.html")) if p.name != "notebook.html"]}
        if (d / "notebook.ipynb").is_file():
            try:
                stage_html(d / "notebook.ipynb", hide_code=hide_code)
                st["html"] = quote(f"{d.name}/notebook.html")
            except Exception as e:  # one broken notebook must not cost the whole report
                st["html_error"] = f"{type(e).__name__}: {e}"
        finished.append(st)
    board = leaderboard(run_dir)
    best = board["cv_accuracy"].max() if len(board) else math.nan
    tests = {st["name"]: st["metrics"].get("test") or {} for st in finished}  # for the test CI
    board_rows = [{"stage": r.stage, "anchor": quote(r.stage), "title": r.title, "model": r.model,
                   "cv": _acc_ci(r.cv_accuracy, [r.ci_low, r.ci_high]), "auc": _auc(r.macro_auc),
                   "test": ("—" if math.isnan(r.test_accuracy)
                            else _acc_ci(r.test_accuracy, tests[r.stage].get("accuracy_ci"))),
                   "no_tta": "—" if math.isnan(r.cv_accuracy_no_tta) else _pct(r.cv_accuracy_no_tta),
                   "best": r.cv_accuracy == best} for r in board.itertuples()]
    params = run_dir / "params.yaml"
    started = datetime.fromtimestamp((params if params.exists() else run_dir).stat().st_mtime)
    html = _env().from_string(_INDEX).render(
        run_id=run_dir.name, started=started.strftime("%Y-%m-%d %H:%M"),
        written=datetime.now().strftime("%Y-%m-%d %H:%M"),
        params=params.read_text(encoding="utf-8", errors="replace") if params.exists() else None,
        board=board_rows, verdict=verdict(finished, board), folds_note=_folds_note(run_dir), stages=finished, unfinished=unfinished,
        skipped=_file_rows(finished, "skipped"), ignored=_file_rows(finished, "ignored"), hide_code=hide_code)
    return atomic_write(run_dir / "index.html", html)


def _env() -> jinja2.Environment:
    # autoescape: every string (captions, paths, reasons, params) comes from files on disk
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cellclf run {{ run_id }}</title>
<style>
  :root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg2: #f6f8fa; --accent: #0969da; --best: #dafbe1; }
  body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
         max-width: 1240px; margin: 0 auto; padding: 24px 32px 64px; }
  h1 { margin: 0 0 4px; font-size: 26px; }
  h2 { margin-top: 40px; padding-bottom: 6px; border-bottom: 1px solid var(--line); font-size: 20px; }
  h3 { margin: 0; font-size: 17px; }
  a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
  .muted { color: var(--muted); font-size: 13px; }
  .warn { color: #9a6700; }
  .err { color: #cf222e; }
  table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
  th, td { border-bottom: 1px solid var(--line); padding: 6px 12px; text-align: left; vertical-align: top; }
  th { background: var(--bg2); font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  tr.best td { background: var(--best); font-weight: 600; }
  details { margin: 12px 0; } summary { cursor: pointer; color: var(--muted); }
  pre { background: var(--bg2); padding: 12px; border-radius: 6px; overflow-x: auto; font-size: 13px; }
  .stage { border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 20px 0; }
  .stage header { display: flex; justify-content: space-between; align-items: baseline; gap: 16px; }
  .stage table.kv th { background: none; font-weight: normal; color: var(--muted); width: 40%; }
  /* figures side by side at a readable height; a click opens the full-size PNG */
  .figs { display: flex; flex-wrap: wrap; gap: 16px; margin-top: 12px; align-items: flex-start; }
  figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; background: #fff; max-width: 100%;
           box-sizing: border-box; }
  figure img { display: block; max-width: 100%; max-height: 400px; width: auto; height: auto; }
  figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
  code { font-size: 13px; word-break: break-all; }
  .verdict { border-left: 4px solid var(--accent); background: var(--bg2); padding: 4px 16px; margin: 12px 0; }
  .verdict p { margin: 8px 0; }
</style>
</head>
<body>
<h1>Run <code>{{ run_id }}</code></h1>
<div class="muted">started {{ started }} · report written {{ written }}{% if hide_code %} · code hidden in stage pages{% endif %}</div>
{% if params is not none %}
<details><summary>Parameters (params.yaml)</summary><pre>{{ params }}</pre></details>
{% else %}
<p class="warn">params.yaml is missing from this run.</p>
{% endif %}

<h2>Leaderboard</h2>
{% if verdict %}
<div class="verdict">{% for line in verdict %}<p>{{ line }}</p>{% endfor %}</div>
{% endif %}
{% if board %}
<table>
  <tr><th>Stage</th><th>Model</th><th>CV accuracy [95% CI]</th><th>CV macro AUC</th><th>CV without TTA</th><th>Test accuracy</th></tr>
  {% for r in board %}
  <tr{% if r.best %} class="best"{% endif %}>
    <td><a href="#{{ r.anchor }}">{{ r.title }}</a><br><span class="muted">{{ r.stage }}</span></td>
    <td>{{ r.model }}</td><td class="num">{{ r.cv }}</td><td class="num">{{ r.auc }}</td><td class="num">{{ r.no_tta }}</td><td class="num">{{ r.test }}</td>
  </tr>
  {% endfor %}
</table>
<p class="muted">CV = out-of-fold predictions: every training image is scored by the model that did not train on it,
over {{ folds_note }}; the 95% CI is a bootstrap over images. Test accuracy is shown only where test labels exist
(used for scoring, never for training or selection). Stages run with <code>tta</code> average each image over its 8 flips/rotations; "CV without TTA" is the same
models scored on the plain images. Best CV accuracy highlighted.</p>
{% else %}
<p>No model stage has finished yet.</p>
{% endif %}

<h2>Stages</h2>
{% if not stages %}
<p>No stage of this run has finished yet{% if unfinished %} (see the unfinished stages below){% endif %}.</p>
{% endif %}
{% for st in stages %}
<section class="stage" id="{{ st.name }}">
  <header>
    <h3>{{ st.title }} <span class="muted">{{ st.name }}{% if st.kind %} · {{ st.kind }}{% endif %}</span></h3>
    {% if st.html %}<a href="{{ st.html }}">notebook →</a>
    {% elif st.html_error %}<span class="err">notebook could not be rendered: {{ st.html_error }}</span>
    {% else %}<span class="muted">no executed notebook (stage run by hand)</span>{% endif %}
  </header>
  {% if st.pages %}<p class="muted">also: {% for pg in st.pages %}<a href="{{ pg.href }}">{{ pg.name }}</a>{% if not loop.last %} · {% endif %}{% endfor %}</p>{% endif %}
  {% if st.error %}<p class="err">{{ st.error }}</p>{% endif %}
  {% if st.numbers %}
  <table class="kv">
    {% for k, v in st.numbers %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>
    {% endfor %}
  </table>
  {% endif %}
  {% if st.figures %}
  <div class="figs">
    {% for f in st.figures %}
    <figure>
      {% if f.exists %}<a href="{{ f.src }}"><img src="{{ f.src }}" alt="{{ f.caption }}" loading="lazy"></a>
      {% else %}<p class="warn">missing file: <code>{{ f.src }}</code></p>{% endif %}
      <figcaption>{{ f.caption }}</figcaption>
    </figure>
    {% endfor %}
  </div>
  {% endif %}
</section>
{% endfor %}

{% if skipped %}
<h2>Skipped files</h2>
<p>These files were left out of training or testing (nothing is skipped silently).</p>
<table>
  <tr><th>File</th><th>Reason</th><th>Reported by</th></tr>
  {% for f in skipped %}<tr><td><code>{{ f.path }}</code></td><td>{{ f.reason }}</td><td class="muted">{{ f.stages }}</td></tr>
  {% endfor %}
</table>
{% endif %}
{% if ignored %}
<h2>Ignored files</h2>
<p>Files in the dataset folder that are not images by name.</p>
<table>
  <tr><th>File</th><th>Reason</th><th>Reported by</th></tr>
  {% for f in ignored %}<tr><td><code>{{ f.path }}</code></td><td>{{ f.reason }}</td><td class="muted">{{ f.stages }}</td></tr>
  {% endfor %}
</table>
{% endif %}

{% if unfinished %}
<h2>Not finished</h2>
<ul>
  {% for u in unfinished %}
  <li><code>{{ u.name }}</code>: not finished (no metrics.json){% if u.html %}; <a href="{{ u.html }}">its notebook as far as it ran</a>
  {% elif u.has_notebook %}; an executed notebook is there: it may have failed{% endif %}</li>
  {% endfor %}
</ul>
{% endif %}
</body>
</html>
"""
