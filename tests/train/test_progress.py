"""Training writes its fold, epoch and last scores to the stage's progress.json as it goes."""
import json

from cellclf_utils.runfolder import layout
from cellclf_utils.train.progress import EpochProgress


def test_each_fold_starts_at_epoch_0_and_each_epoch_adds_its_scores_and_speed(tmp_path):
    path = tmp_path / layout.PROGRESS
    cb = EpochProgress(path, fold=1, folds=3, epochs=4, n_train=120)
    assert json.loads(path.read_text()) == {"fold": 2, "folds": 3, "epoch": 0, "epochs": 4}
    cb.on_epoch_begin(0)
    cb.on_epoch_end(0, {"val_accuracy": 0.5, "val_auc": 0.75, "loss": 1.0})
    state = json.loads(path.read_text())
    assert state["epoch"] == 1 and state["val_accuracy"] == 0.5 and state["val_auc"] == 0.75
    assert state["images_per_s"] > 0
    cb.on_epoch_begin(1)
    cb.on_epoch_end(1, {})  # the head warm-up and fine-tuning count on: epochs across phases
    assert json.loads(path.read_text())["epoch"] == 2
