import json

import pytest

from cellclf_utils.run.stage import Stage, StageFinishedError
from cellclf_utils.runfolder import StageFolder


def test_stage_contract_and_no_overwrite(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path))
    st = Stage.open("02_baseline_cnn", {"run_id": "r1", "lr": 0.1})
    assert (tmp_path / "r1" / "params.yaml").exists()
    assert json.loads((st.dir / "params.json").read_text())["lr"] == 0.1
    st.finish({"kind": "model"})
    assert StageFolder(st.dir).is_finished
    with pytest.raises(StageFinishedError, match="never overwritten"):
        Stage.open("02_baseline_cnn", {"run_id": "r1", "lr": 0.2})
    assert json.loads((st.dir / "params.json").read_text())["lr"] == 0.1


def test_a_damaged_metrics_json_is_neither_finished_nor_written_over(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path))
    st = Stage.open("02_baseline_cnn", {"run_id": "r1"})
    (st.dir / "metrics.json").write_text('{"stage": "02_ba')  # cut mid-write by something outside
    with pytest.raises(StageFinishedError, match="not counted as finished: .*metrics.json is unreadable"):
        Stage.open("02_baseline_cnn", {"run_id": "r1"})


def test_empty_run_id_makes_a_new_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path))
    st = Stage.open("01_eda_colour", {"run_id": "", "profile": "quick"})
    assert st.params["run_id"].startswith("quick-") and st.dir.exists()


def test_figure_is_saved_and_recorded(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path))
    st = Stage.open("01_eda_colour", {"run_id": "r"})
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    st.figure(fig, "line", "A line")
    assert (st.dir / "figures" / "line.png").stat().st_size > 0
    metrics = json.loads(st.finish({}).read_text())
    assert metrics["figures"] == [{"path": "figures/line.png", "caption": "A line"}]


def test_weights_auto_is_resolved_before_anything_records_it(monkeypatch):
    from cellclf_utils.model import backbones
    from cellclf_utils.run import stage
    monkeypatch.setattr(backbones, "choose_weights", lambda name, size: ("none", f"weights auto: {name} offline"))
    P = {"backbone": "mobilenet_v2", "image_size": 96, "weights": "auto"}
    assert stage.resolve_auto_weights(P) == {**P, "weights": "none", "weights_note": "weights auto: mobilenet_v2 offline"}
    assert stage.resolve_auto_weights({**P, "weights": "imagenet"}) == {**P, "weights": "imagenet"}
    from cellclf_utils.train.resume import signature  # the note never changes what a fold computes
    assert signature({**P, "weights": "none"}) == signature(stage.resolve_auto_weights(P))
