"""keep_models: the fold models a finished stage keeps on disk; scores and predictions stay."""
import json

import pandas as pd
import pytest

from cellclf_utils.runfolder import StageFolder, layout, prune


@pytest.fixture
def stage(tmp_path):
    """Three folds: fold 1 gets both its images right, folds 0 and 2 one of two."""
    d = tmp_path / "03_xception"
    for k in range(3):
        (d / layout.fold_dir(k)).mkdir(parents=True)
        (d / layout.fold_dir(k) / layout.FOLD_MODEL).write_bytes(b"model")
        (d / layout.fold_dir(k) / layout.FOLD_PREDS).write_bytes(b"preds")
    (d / layout.FEATURES_MODEL).write_bytes(b"features")
    pd.DataFrame({"id": list("abcdef"), "fold": [0, 0, 1, 1, 2, 2], "label": ["x", "y"] * 3,
                  "p_x": [0.9, 0.8, 0.9, 0.1, 0.2, 0.3], "p_y": [0.1, 0.2, 0.1, 0.9, 0.8, 0.7]}) \
        .to_csv(d / layout.OOF, index=False)
    return StageFolder(d)


def _models(stage):
    return sorted(p.parent.name for p in stage.dir.glob(f"fold*/{layout.FOLD_MODEL}"))


def test_per_fold_accuracy_comes_from_oof_csv(stage):
    assert prune.fold_accuracy(stage) == {0: 0.5, 1: 1.0, 2: 0.5}


def test_all_keeps_every_model(stage):
    assert prune.prune_models(stage, "all") == [0, 1, 2] and _models(stage) == ["fold0", "fold1", "fold2"]


def test_best_keeps_the_fold_that_scored_best_and_nothing_else_is_touched(stage):
    assert prune.prune_models(stage, "best") == [1]
    assert _models(stage) == ["fold1"]
    assert len(list(stage.dir.glob(f"fold*/{layout.FOLD_PREDS}"))) == 3 and stage.file(layout.OOF).is_file()


def test_none_keeps_no_model_and_no_feature_extractor(stage):
    assert prune.prune_models(stage, "none") == []
    assert _models(stage) == [] and not stage.file(layout.FEATURES_MODEL).exists()


def test_an_unknown_choice_is_refused_naming_the_parameter(stage):
    with pytest.raises(ValueError, match="parameter 'keep_models' must be one of all, best, none"):
        prune.prune_models(stage, "some")
    assert _models(stage) == ["fold0", "fold1", "fold2"]


def test_a_stage_finishing_with_keep_models_records_what_it_kept(stage, monkeypatch, tmp_path):
    from cellclf_utils.run.stage import Stage
    st = Stage("03_xception", {"run_id": "r", "keep_models": "best"}, tmp_path)
    st.finish({"kind": "model"})
    m = json.loads(stage.file(layout.METRICS).read_text())
    assert m["models_kept"] == [1] and _models(stage) == ["fold1"]
