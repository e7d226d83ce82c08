"""07's submitted model on disk: each combiner, saved and loaded, gives on the members' test
predictions what 07 submitted for them."""
import numpy as np
import pytest

from cellclf_utils.predict import combiner, ensemble
from cellclf_utils.runfolder import StageFolder, layout


def _members(n=120, t=20, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)

    def probs(logits):
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    oof = np.stack([probs(2 * np.eye(c)[y] + rng.normal(0, 1, (n, c))), probs(rng.normal(0, 1, (n, c)))])
    test = np.stack([probs(rng.normal(0, 1, (t, c))) for _ in range(2)])
    return ensemble.Members(["02_a", "03_b"], ["x", "y", "z"], [f"i{i}" for i in range(n)], y,
                            np.arange(n) % 4, oof, [f"t{i}" for i in range(t)], test)


@pytest.mark.parametrize("choice", ["03_b", *(f"ensemble: {c}" for c in ensemble.COMBINERS)])
def test_a_saved_combiner_applies_what_07_submitted(tmp_path, choice):
    m = _members()
    combiner.save(tmp_path, m, choice)
    assert (tmp_path / layout.COMBINER).is_file()
    assert (tmp_path / layout.COMBINER_STACKER).is_file() == (choice == "ensemble: stacking")
    loaded = combiner.load(StageFolder(tmp_path))
    assert loaded.members == m.names and loaded.classes == m.classes
    assert loaded.member == (None if choice.startswith("ensemble: ") else choice)
    np.testing.assert_allclose(loaded.apply(m.test), ensemble.predict_test(m, choice), atol=1e-12)
