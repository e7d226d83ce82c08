"""Ensembles across runs: members named by path from other runs on the same folds give the
ensemble the same members inside one run give; runs on other folds are refused, naming the
first image whose fold differs."""
import json

import numpy as np
import pandas as pd
import pytest

from cellclf_utils.predict import ensemble, members
from cellclf_utils.runfolder import open_run

IDS = [f"i{k}" for k in range(40)]


def _run(root, name, stages, fold=None):
    """A run folder with folds.csv and finished model stages {name: (oof probabilities, test)}."""
    run = root / name
    y = np.arange(len(IDS)) % 2
    fold = np.arange(len(IDS)) % 4 if fold is None else fold
    labels = np.array(["a", "b"])[y]
    run.mkdir(parents=True)
    pd.DataFrame({"id": IDS, "fold": fold, "group": range(len(IDS)), "label": labels}).to_csv(run / "folds.csv", index=False)
    for stage, seed in stages.items():
        d = run / stage
        d.mkdir()
        p = np.clip(0.5 + (0.3 if seed else 0.1) * (2 * y - 1) + np.random.default_rng(seed).normal(0, .3, len(y)), .01, .99)
        pd.DataFrame({"id": IDS, "fold": fold, "label": labels, "p_a": 1 - p, "p_b": p}).to_csv(d / "oof.csv", index=False)
        pd.DataFrame({"id": ["t1", "t2"], "p_a": [.4, .7], "p_b": [.6, .3]}).to_csv(d / "test.csv", index=False)
        (d / "metrics.json").write_text(json.dumps({"kind": "model"}))
    return run


def test_members_of_other_runs_give_the_ensemble_of_one_run(tmp_path, monkeypatch):
    one = _run(tmp_path, "one", {"02_cnn": 1, "03_x": 0})
    a, b = _run(tmp_path, "a", {"02_cnn": 1}), _run(tmp_path, "b", {"03_x": 0})
    combo = tmp_path / "combo"
    combo.mkdir()
    monkeypatch.chdir(tmp_path)
    inside = ensemble.load(open_run(one), ["02_cnn", "03_x"])
    across = ensemble.load(open_run(combo), ["a/02_cnn", str(b / "03_x")])
    assert across.names == ["a/02_cnn", "b/03_x"] and across.sources == {
        "a/02_cnn": str((a / "02_cnn").resolve()), "b/03_x": str((b / "03_x").resolve())}
    table_in, _ = ensemble.evaluate(inside)
    table_across, _ = ensemble.evaluate(across)
    renamed = table_across.replace({"model": {"a/02_cnn": "02_cnn", "b/03_x": "03_x"}, "vs": {"a/02_cnn": "02_cnn"}})
    pd.testing.assert_frame_equal(renamed, table_in)
    # a member of the ensemble's own run named by path is that run's stage
    assert members.resolve(open_run(one), str(one / "03_x")).label == "03_x"


def test_runs_on_other_folds_are_refused_naming_the_first_image(tmp_path):
    _run(tmp_path, "a", {"02_cnn": 1})
    moved = np.arange(len(IDS)) % 4
    moved[7] = (moved[7] + 1) % 4
    _run(tmp_path, "b", {"03_x": 0}, fold=moved)
    combo = tmp_path / "combo"
    combo.mkdir()
    with pytest.raises(ValueError, match=r"different folds: .*a/folds.csv \(first\) and .*b/folds.csv \(second\): "
                                         r"image 'i7' is in fold 3 of the first and fold 0 of the second"):
        ensemble.load(open_run(combo), [str(tmp_path / "a" / "02_cnn"), str(tmp_path / "b" / "03_x")])
    with pytest.raises(ValueError, match="no stage folder"):
        ensemble.load(open_run(combo), [str(tmp_path / "a" / "02_cnn"), str(tmp_path / "b" / "nothere")])
