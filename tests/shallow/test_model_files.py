"""Fitted scikit-learn pipelines on disk (skops): each classifier round-trips with the same
probabilities; a damaged, missing or foreign file is refused, naming it."""
import numpy as np
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from cellclf_utils.shallow import classifiers, model_files


@pytest.mark.parametrize("name", classifiers.CLASSIFIERS)
def test_every_classifier_round_trips(tmp_path, name):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    model = classifiers.make_classifier(name).fit(x, y)
    path = model_files.save(model, tmp_path / "fold0" / "model.skops")
    np.testing.assert_array_equal(model_files.load(path).predict_proba(x), model.predict_proba(x))


def _shout(x):
    return x


def test_a_missing_damaged_or_foreign_file_is_refused_by_name(tmp_path):
    with pytest.raises(model_files.SavedModelError, match="nothere.skops is missing"):
        model_files.load(tmp_path / "nothere.skops")
    cut = tmp_path / "cut.skops"
    cut.write_bytes(b"PK\x03\x04 not a whole file")
    with pytest.raises(model_files.SavedModelError, match="cut.skops is unreadable"):
        model_files.load(cut)
    foreign = tmp_path / "foreign.skops"
    sio.dump(FunctionTransformer(_shout), foreign)  # a function of this test module: not ours to run
    with pytest.raises(model_files.SavedModelError, match="foreign.skops holds types this project never saves.*_shout"):
        model_files.load(foreign)
