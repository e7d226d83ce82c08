"""Distillation's teachers: their mean out-of-fold probabilities, in the student's image order,
from finished stages on the student's folds; anything else is refused, naming what to do."""
import json

import numpy as np
import pandas as pd
import pytest

import keras

from cellclf_utils import train
from cellclf_utils.model import cnn
from cellclf_utils.run import stages
from cellclf_utils.run.stages import DistillError, TrainingData
from cellclf_utils.train import fold as fold_module
from cellclf_utils.train.trainers import Trainers
from conftest import toy_images, train_params

IDS = [f"i{k}" for k in range(12)]
CLASSES = ["a", "b"]


def _run(root, name, teachers, fold=None):
    """A run with folds.csv and finished stages {name: p_b per image}."""
    run = root / name
    run.mkdir(parents=True)
    y = np.arange(len(IDS)) % 2
    fold = np.arange(len(IDS)) % 3 if fold is None else fold
    labels = np.array(CLASSES)[y]
    pd.DataFrame({"id": IDS, "fold": fold, "group": range(len(IDS)), "label": labels}).to_csv(run / "folds.csv",
                                                                                             index=False)
    for stage, p in teachers.items():
        d = run / stage
        d.mkdir()
        pd.DataFrame({"id": IDS, "fold": fold, "label": labels, "p_a": 1 - p, "p_b": p}).to_csv(d / "oof.csv",
                                                                                             index=False)
        (d / "metrics.json").write_text(json.dumps({"kind": "model"}))
    return run


class _St:
    def __init__(self, run_dir):
        self.run_dir = run_dir


def _td(ids=IDS, classes=CLASSES):
    y = np.arange(len(ids)) % 2
    return TrainingData(type("DS", (), {"class_names": classes})(), None, None, None, y, None, None, list(ids))


def test_the_students_targets_are_its_teachers_mean_in_its_own_image_order(tmp_path, monkeypatch):
    p1, p2 = np.linspace(0.1, 0.9, 12), np.full(12, 0.5)
    run = _run(tmp_path, "r", {"02c_probe": p1})
    other = _run(tmp_path, "other", {"03_x": p2})
    monkeypatch.chdir(tmp_path)
    order = IDS[::-1]
    soft = stages.soft_targets(_St(run), {"distill": f"02c_probe, other/03_x", "distill_weight": 0.5}, _td(order))
    expected_b = ((p1 + p2) / 2)[::-1]
    np.testing.assert_allclose(soft, np.stack([1 - expected_b, expected_b], 1), atol=1e-6)
    assert stages.soft_targets(_St(run), {"distill": ""}, _td()) is None


def test_teachers_that_cannot_teach_are_named(tmp_path, monkeypatch):
    run = _run(tmp_path, "r", {"02c_probe": np.full(12, 0.6)})
    (run / "03_unfinished").mkdir()
    moved = np.arange(12) % 3
    moved[4] = (moved[4] + 1) % 3
    _run(tmp_path, "elsewhere", {"03_x": np.full(12, 0.6)}, fold=moved)
    monkeypatch.chdir(tmp_path)
    P = {"distill_weight": 0.5}
    with pytest.raises(DistillError, match="03_unfinished is not a finished stage.*train it first"):
        stages.soft_targets(_St(run), {**P, "distill": "03_unfinished"}, _td())
    with pytest.raises(DistillError, match="different folds.*image 'i4'"):
        stages.soft_targets(_St(run), {**P, "distill": "elsewhere/03_x"}, _td())
    with pytest.raises(DistillError, match="classes \\['a', 'b'\\], this stage \\['x', 'y'\\]"):
        stages.soft_targets(_St(run), {**P, "distill": "02c_probe"}, _td(classes=["x", "y"]))
    with pytest.raises(DistillError, match="no out-of-fold prediction for image 'new'"):
        stages.soft_targets(_St(run), {**P, "distill": "02c_probe"}, _td(ids=[*IDS[:-1], "new"]))


def test_each_training_target_mixes_the_true_label_and_the_teacher_by_distill_weight():
    x, y = toy_images(24)
    soft = np.tile([[0.8, 0.2]], (24, 1)).astype("float32")
    train_idx, val_idx = np.arange(16), np.arange(16, 24)
    P = train_params(distill_weight=0.25)
    f = fold_module.prepare(lambda: cnn.baseline_cnn(16, 2), x, y, train_idx, val_idx, P, 0, None, None,
                            Trainers(), soft)
    rows = f.fit["x"]  # the row of each training step's image
    expected = 0.75 * keras.utils.to_categorical(y[train_idx][rows], 2) + 0.25 * soft[train_idx][rows]
    np.testing.assert_allclose(f.fit["y"], expected, atol=1e-6)


def test_distillation_parameters_keep_old_signatures():
    assert train.signature(train_params(distill="", distill_weight=0.5)) == train.signature(train_params())
