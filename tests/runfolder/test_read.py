"""The run folder is read through one API: every file it could not read is named with why, and
an unreadable metrics.json never counts as finished."""
import json

import numpy as np
import pandas as pd
import pytest

from cellclf_utils.runfolder import RunFolderError, layout, open_run


@pytest.fixture
def run(tmp_path):
    """A run with a finished model stage (two folds), an unfinished one and folds.csv."""
    d = tmp_path / "r1"
    st = d / "02_baseline_cnn"
    for k in (0, 1):
        f = st / layout.fold_dir(k)
        f.mkdir(parents=True)
        np.savez(f / layout.FOLD_PREDS, val_idx=np.array([k]), val=np.eye(2)[[k]], val_plain=np.eye(2)[[k]],
                 test=np.full((3, 2), 0.5))
        (f / layout.FOLD_DONE).write_text(json.dumps({"fold": k, "signature": "s", "seconds": 1.5}))
        pd.DataFrame({"epoch": [0]}).to_csv(f / layout.FOLD_HISTORY, index=False)
    (st / layout.STAGE_PARAMS).write_text(json.dumps({"lr": 0.1}))
    (st / layout.METRICS).write_text(json.dumps({"kind": "model", "cv": {"accuracy": 0.5}}))
    pd.DataFrame({"id": ["a", "b"], "fold": [0, 1], "label": ["x", "y"], "p_x": [1, 0], "p_y": [0, 1]}) \
        .to_csv(st / layout.OOF, index=False)
    (d / "03_xception").mkdir()
    pd.DataFrame({"id": ["007", "b"], "fold": [0, 1], "group": [0, 1], "label": ["x", "y"]}) \
        .to_csv(d / layout.FOLDS_CSV, index=False)
    (d / layout.PARAMS_YAML).write_text("lr: 0.1\n")
    return open_run(d)


def test_a_run_lists_its_stages_folds_and_files(run):
    assert [s.name for s in run.stages()] == ["02_baseline_cnn", "03_xception"]
    assert [s.name for s in run.finished("model")] == ["02_baseline_cnn"] and run.finished("eda") == []
    st = run.stage("02_baseline_cnn")
    assert st.params() == {"lr": 0.1} and st.metrics()["cv"]["accuracy"] == 0.5
    assert [f.k for f in st.folds()] == [0, 1] and st.fold(1).done()["seconds"] == 1.5
    assert st.fold(0).preds()["test"].shape == (3, 2) and st.test() is None
    assert run.folds().id.tolist() == ["007", "b"]  # ids stay text
    assert run.params() == {"lr": 0.1} and run.stage("03_xception").status() == ("unfinished", "")


@pytest.mark.parametrize("name, cut", [(layout.METRICS, '{"kind": "mo'), (layout.METRICS, "[1, 2]")])
def test_an_unreadable_metrics_json_is_damaged_not_finished(run, name, cut):
    st = run.stage("02_baseline_cnn")
    (st.dir / name).write_text(cut)
    state, why = st.status()
    assert state == "damaged" and str(st.dir / name) in why and not st.is_finished
    assert run.finished() == []
    with pytest.raises(RunFolderError, match="metrics.json"):
        st.metrics()


def test_cut_files_are_named_with_what_to_do(run):
    st = run.stage("02_baseline_cnn")
    preds = st.fold(0).dir / layout.FOLD_PREDS
    preds.write_bytes(preds.read_bytes()[:40])
    with pytest.raises(RunFolderError, match=r"fold0/preds.npz is unreadable .*--resume"):
        st.fold(0).preds()
    (st.fold(1).dir / layout.FOLD_DONE).write_text("{")
    with pytest.raises(RunFolderError, match="fold1/done.json is unreadable"):
        st.fold(1).done()
    (run.dir / layout.FOLDS_CSV).write_text("id,fold\na,0\n")
    with pytest.raises(RunFolderError, match="folds.csv lacks column.*group, label"):
        run.folds()
    (run.dir / layout.PARAMS_YAML).write_text("lr: [0.1\n")
    with pytest.raises(RunFolderError, match=r"params.yaml: not YAML \(line 2, column 1: .*--resume"):
        run.params()
    with pytest.raises(RunFolderError, match="no run folder"):
        open_run(run.dir / "nope")


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", b"id,fold,group,label\n\"a,0"])
def test_an_empty_binary_or_cut_folds_csv_is_named(run, content):
    (run.dir / layout.FOLDS_CSV).write_bytes(content)
    with pytest.raises(RunFolderError, match=r"folds.csv (is unreadable|lacks column)"):
        run.folds()
