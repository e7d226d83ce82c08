import json

import numpy as np
import pandas as pd
import pytest

from cellclf_utils.predict import ensemble
from cellclf_utils.runfolder import open_run


def _probs(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _members(n=300, c=3, seed=0):
    """Member 0 knows the labels (noisily), members 1 and 2 are noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    good = _probs(2.5 * np.eye(c)[y] + rng.normal(0, 1, (n, c)))
    noise = [_probs(rng.normal(0, 1, (n, c))) for _ in range(2)]
    return np.stack([good, *noise]), y, (np.arange(n) // 3) % 5


def test_weights_recover_the_informative_member():
    P, y, _ = _members()
    w = ensemble.fit_weights(P, y)
    assert w.shape == (3,) and np.isclose(w.sum(), 1) and (w >= 0).all()
    assert w[0] > 0.8, w
    assert ensemble.log_loss(ensemble.combine(P, w), y) < ensemble.log_loss(ensemble.combine(P), y)


def test_nested_scores_are_not_better_than_in_sample_on_random_predictions():
    rng = np.random.default_rng(1)
    P = _probs(rng.normal(0, 1, (4, 200, 3)))
    y = rng.integers(0, 3, 200)
    fold = np.arange(200) % 5
    w = ensemble.fit_weights(P, y)
    in_sample = ensemble.log_loss(ensemble.combine(P, w), y)
    nested = ensemble.nested(ensemble.fit_weights, lambda w, Q: ensemble.combine(Q, w), P, y, fold)
    assert not np.isnan(nested).any()
    assert ensemble.log_loss(nested, y) >= in_sample
    stack_in = ensemble.stack_apply(ensemble.stack_fit(P, y), P, 3)
    stack_nested = ensemble.nested(ensemble.stack_fit, lambda m, Q: ensemble.stack_apply(m, Q, 3), P, y, fold)
    acc = lambda p: (p.argmax(1) == y).mean()
    assert acc(stack_nested) < acc(stack_in) and acc(stack_nested) < 0.45  # near chance (1/3)


def test_bias_tuning_raises_the_recall_of_an_under_called_class():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 600)
    p = _probs(1.5 * np.eye(3)[y] + rng.normal(0, 1, (600, 3)))
    p[:, 2] *= 0.2  # the model under-calls class 2 (the write-up's "worsened" cells)
    p /= p.sum(1, keepdims=True)
    fold = np.arange(600) % 5
    before = (p.argmax(1)[y == 2] == 2).mean()
    tuned = ensemble.nested(lambda q, yy: ensemble.fit_bias(q[0], yy), lambda b, q: ensemble.apply_bias(q[0], b),
                            p[None], y, fold)
    after = (tuned.argmax(1)[y == 2] == 2).mean()
    assert after > before + 0.2, (before, after)
    assert ensemble.balanced_accuracy(y, tuned.argmax(1), 3) > ensemble.balanced_accuracy(y, p.argmax(1), 3)
    b = ensemble.fit_bias(p, y)
    assert b[2] > b[0] and b[2] > b[1]


def test_mcnemar():
    y = np.zeros(100, int)
    same = ensemble.mcnemar(y, y, y)
    assert same == {"only_a": 0, "only_b": 0, "p_value": 1.0}
    a = y.copy()
    b = y.copy()
    b[:30] = 1  # B wrong on 30 images A gets right
    r = ensemble.mcnemar(y, a, b)
    assert r["only_a"] == 30 and r["only_b"] == 0 and r["p_value"] < 1e-6


def _stage(run, name, ids, labels, p, test=None, kind="model"):
    d = run / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"kind": kind}))
    df = pd.DataFrame({"id": ids, "fold": np.arange(len(ids)) % 2, "label": labels,
                       "p_a": p[:, 0], "p_b": p[:, 1]})
    df.to_csv(d / "oof.csv", index=False)
    if test is not None:
        pd.DataFrame({"id": ["t1", "t2"], "p_a": test[:, 0], "p_b": test[:, 1]}).to_csv(d / "test.csv", index=False)


def test_load_aligns_members_on_common_images(tmp_path):
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    t = np.array([[0.5, 0.5], [0.1, 0.9]])
    _stage(tmp_path, "02_cnn", ["i1", "i2", "i3", "i4"], ["a", "b", "a", "b"], p, t)
    _stage(tmp_path, "03_x", ["i4", "i2", "i1"], ["b", "b", "a"], p[[3, 1, 0]], t[::-1])
    _stage(tmp_path, "01_eda", ["i1"], ["a"], p[:1], kind="eda")
    m = ensemble.load(open_run(tmp_path))
    assert m.names == ["02_cnn", "03_x"] and m.classes == ["a", "b"]
    assert m.ids == ["i1", "i2", "i4"] and m.y.tolist() == [0, 1, 1]
    np.testing.assert_allclose(m.oof[0], m.oof[1])  # same images, same rows
    assert m.test.shape == (2, 2, 2) and m.test_ids == ["t1", "t2"]
    with pytest.raises(ValueError, match="at least 2 finished model stages"):
        ensemble.load(open_run(tmp_path), ["02_cnn"])
    with pytest.raises(ValueError, match="missing: 05_y"):
        ensemble.load(open_run(tmp_path), ["02_cnn", "05_y"])


def test_evaluate_choose_and_submit(tmp_path):
    rng = np.random.default_rng(4)
    n = 60
    ids = [f"i{k}" for k in range(n)]
    y = rng.integers(0, 2, n)
    labels = np.array(["a", "b"])[y]
    good = _probs(2 * np.eye(2)[y] + rng.normal(0, 1, (n, 2)))
    bad = _probs(rng.normal(0, 1, (n, 2)))
    t = _probs(rng.normal(0, 1, (2, 2)))
    _stage(tmp_path, "02_cnn", ids, labels, good, t)
    _stage(tmp_path, "03_x", ids, labels, bad, t)
    pd.DataFrame({"id": ids, "fold": np.arange(n) % 2, "group": np.arange(n), "label": labels}) \
        .to_csv(tmp_path / "folds.csv", index=False)
    m = ensemble.load(open_run(tmp_path))
    table, oof = ensemble.evaluate(m)
    assert set(table.model) == {"02_cnn", "03_x", "ensemble: mean", "ensemble: weights", "ensemble: stacking",
                                "ensemble: weights+bias"}
    assert table.accuracy.is_monotonic_decreasing and (table.ci_low <= table.accuracy).all()
    ens = table[table.model.str.startswith("ensemble")]
    assert (ens.vs == "02_cnn").all() and ens.mcnemar_p.between(0, 1).all()
    assert all(p.shape == (n, 2) and not np.isnan(p).any() for p in oof.values())
    assert ensemble.best_member(m) == "02_cnn"
    v = ensemble.versus_best(m, oof["03_x"])
    right_good, right_bad = oof["02_cnn"].argmax(1) == m.y, oof["03_x"].argmax(1) == m.y
    assert v["best_single"] == "02_cnn" and np.isclose(v["gain"], right_bad.mean() - right_good.mean())
    assert (v["only_submitted_right"], v["only_best_right"]) == ((right_bad & ~right_good).sum(),
                                                                 (right_good & ~right_bad).sum())
    assert ensemble.choose(table, "best") == table.model[0]
    assert ensemble.choose(table, "stacking") == "ensemble: stacking"
    with pytest.raises(ValueError, match="parameter 'submit'"):
        ensemble.choose(table, "median")
    for name in ("02_cnn", "ensemble: weights+bias"):
        sub = ensemble.submission(m.test_ids, ensemble.predict_test(m, name), m.classes)
        assert list(sub.columns) == ["id", "label"] and list(sub.id) == ["t1", "t2"]
        assert set(sub.label) <= {"a", "b"}


def test_default_members_are_the_stages_that_scored_every_image(tmp_path):
    p = np.tile([[0.6, 0.4]], (4, 1))
    ids = ["i1", "i2", "i3", "i4"]
    for name in ("02_cnn", "02b_hog"):
        _stage(tmp_path, name, ids, ["a", "b", "a", "b"], p)
    _stage(tmp_path, "03_subset", ids[:2], ["a", "b"], p[:2])
    pd.DataFrame({"id": ids, "fold": [0, 1, 0, 1], "group": range(4), "label": ["a", "b", "a", "b"]}) \
        .to_csv(tmp_path / "folds.csv", index=False)
    assert ensemble.default_members(open_run(tmp_path)) == ["02_cnn", "02b_hog"]
    assert len(ensemble.load(open_run(tmp_path)).ids) == 4
