"""`cellclf runs`: every run folder with its status (finished, unfinished, failed: a notebook
that raised, or a damaged metrics.json), its best stage and submitted model; two runs compared
by the parameters that differ and their per-stage scores."""
import json

import yaml

from cellclf_utils import cli
from cellclf_utils.report import runs


def _stage(run, name, params=None, metrics=None, notebook_failed=None):
    d = run / name
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps(params or {"lr": 0.001}))
    if metrics is not None:
        (d / "metrics.json").write_text(metrics if isinstance(metrics, str) else json.dumps(metrics))
    if notebook_failed is not None:
        (d / "notebook.ipynb").write_text(json.dumps({"metadata": {"papermill": {"exception": notebook_failed}}}))


def _model(acc, model="m"):
    return {"kind": "model", "model": model, "cv": {"accuracy": acc, "accuracy_ci": [acc - .05, acc + .05]}}


def _runs(root):
    for name, lr in (("done", 0.001), ("running", 0.001), ("broken", 0.01), ("damaged", 0.001)):
        (root / name).mkdir(parents=True)
        (root / name / "params.yaml").write_text(yaml.safe_dump({"profile": "quick", "data_dir": "", "lr": lr}))
    _stage(root / "done", "02_baseline_cnn", metrics=_model(0.6))
    _stage(root / "done", "02c_frozen_probe", metrics=_model(0.8), params={"lr": 0.001, "C": 0.01})
    _stage(root / "done", "07_ensemble", metrics={"kind": "ensemble", "model": "ensemble: mean",
                                                  "cv": {"accuracy": 0.7, "accuracy_ci": [0.65, 0.75]}})
    _stage(root / "running", "02_baseline_cnn", notebook_failed=None)
    _stage(root / "broken", "02_baseline_cnn", metrics=_model(0.5))
    _stage(root / "broken", "02c_frozen_probe", notebook_failed=True, params={"lr": 0.01, "C": 0.1})
    _stage(root / "damaged", "02_baseline_cnn", metrics='{"kind": "mod')


def test_every_run_is_listed_with_its_status_best_stage_and_submission(tmp_path):
    _runs(tmp_path)
    t = runs.table(tmp_path).set_index("run")
    assert t.loc["done", "status"] == "finished" and t.loc["done", "stages"] == "3/3"
    assert t.loc["done", "best"] == "02c_frozen_probe 80.0% [75.0–85.0]"
    assert t.loc["done", "submitted"] == "ensemble: mean" and t.loc["done", "profile"] == "quick"
    assert t.loc["running", "status"] == "unfinished (02_baseline_cnn)" and t.loc["running", "best"] == ""
    assert t.loc["broken", "status"] == "failed (02c_frozen_probe)" and t.loc["broken", "stages"] == "1/2"
    assert t.loc["damaged", "status"] == "failed (02_baseline_cnn)"
    assert t.loc["done", "data"] == "(embedded synthetic)"


def test_two_runs_compared_by_what_differs(tmp_path):
    _runs(tmp_path)
    differ, scores = runs.compare(tmp_path / "done", tmp_path / "broken")
    assert differ.values.tolist() == [["lr", 0.001, 0.01], ["02c_frozen_probe.C", 0.01, 0.1]]
    s = scores.set_index("stage")
    assert s.loc["02_baseline_cnn"].tolist() == ["60.0% [55.0–65.0]", "50.0% [45.0–55.0]"]
    assert s.loc["07_ensemble", "broken"] == ""


def test_the_command_prints_the_tables_and_writes_the_page(tmp_path, monkeypatch, capsys):
    _runs(tmp_path / "runs")
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path / "runs"))
    assert cli.main(["runs", "--html", str(tmp_path / "runs.html")]) == 0
    out = capsys.readouterr().out
    assert "failed (02c_frozen_probe)" in out and "ensemble: mean" in out
    assert "<table" in (tmp_path / "runs.html").read_text()
    assert cli.main(["runs", "--compare", "done", "nothere"]) == 2
    assert "no run folder" in capsys.readouterr().err
