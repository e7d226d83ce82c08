import numpy as np

from cellclf_utils import metrics


def test_accuracy_ci_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 100)
    pred = np.where(rng.random(100) < 0.7, y, (y + 1) % 3)
    acc, lo, hi = metrics.accuracy_ci(y, pred)
    assert lo < acc < hi and 0.5 < acc < 0.9
    y4, p4 = np.tile(y, 16), np.tile(pred, 16)
    acc4, lo4, hi4 = metrics.accuracy_ci(y4, p4)
    assert abs(acc4 - acc) < 1e-12 and (hi4 - lo4) < (hi - lo) / 2


def test_macro_auc_perfect_random_and_missing_class():
    y = np.array([0, 1, 2, 0, 1, 2])
    assert metrics.macro_auc(y, np.eye(3)[y]) == 1.0
    assert metrics.macro_auc(y, np.eye(3)[(y + 1) % 3]) < 0.5
    assert np.isnan(metrics.macro_auc(np.array([0, 0, 1]), np.eye(3)[[0, 0, 1]]))
    assert metrics.macro_auc(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.95, 0.05]])) == 0.5


def test_summary_fields():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.eye(3)[[0, 1, 1, 1, 2, 0]]
    s = metrics.summary(y, proba, ["a", "b", "c"])
    assert s["accuracy"] == 4 / 6
    assert s["per_class_recall"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert s["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert s["n"] == 6
