import json

import numpy as np
import pandas as pd
import pytest

from cellclf_utils.run import stage as runs


def test_atomic_write_leaves_no_temp_files(tmp_path):
    runs.write_json(tmp_path / "a.json", {"x": np.float32(0.5), "n": np.int64(3), "nan": float("nan")})
    runs.write_csv(tmp_path / "b.csv", pd.DataFrame({"a": [1, 2]}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.csv"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 0.5, "n": 3, "nan": None}


def test_failed_write_keeps_the_old_file(tmp_path):
    runs.write_json(tmp_path / "a.json", {"v": 1})
    with pytest.raises(TypeError):
        runs.write_json(tmp_path / "a.json", {"v": object()})
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1}
    assert len(list(tmp_path.iterdir())) == 1


def test_stage_contract_and_no_overwrite(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path))
    st = runs.Stage.open("02_baseline_cnn", {"run_id": "r1", "lr": 0.1})
    assert (tmp_path / "r1" / "params.yaml").exists()
    assert json.loads((st.dir / "params.json").read_text())["lr"] == 0.1
    st.finish({"kind": "model"})
    assert runs.is_finished(st.dir)
    with pytest.raises(runs.StageFinishedError, match="never overwritten"):
        runs.Stage.open("02_baseline_cnn", {"run_id": "r1", "lr": 0.2})
    assert json.loads((st.dir / "params.json").read_text())["lr"] == 0.1


def test_empty_run_id_makes_a_new_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path))
    st = runs.Stage.open("01_eda_colour", {"run_id": "", "profile": "quick"})
    assert st.params["run_id"].startswith("quick-") and st.dir.exists()


def test_figure_is_saved_and_recorded(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    monkeypatch.setenv("CELLCLF_RUNS", str(tmp_path))
    st = runs.Stage.open("01_eda_colour", {"run_id": "r"})
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    st.figure(fig, "line", "A line")
    assert (st.dir / "figures" / "line.png").stat().st_size > 0
    metrics = json.loads(st.finish({}).read_text())
    assert metrics["figures"] == [{"path": "figures/line.png", "caption": "A line"}]
