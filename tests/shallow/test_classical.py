import numpy as np
import pytest

from cellclf_utils.shallow import classifiers, cv as shallow_cv, features


def _images(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_features_have_one_row_per_image_and_normalised_histograms():
    x = _images(5)
    f = features.hog_and_colour(x)
    assert f.shape[0] == 5 and f.dtype == np.float32 and np.isfinite(f).all()
    hist = features.colour_histograms(x).reshape(5, 6, features.BINS)
    np.testing.assert_allclose(hist.sum(-1), 1.0, rtol=1e-5)
    assert f.shape[1] == features.hog_features(x).shape[1] + 6 * features.BINS


def test_stain_histogram_sees_haematoxylin():
    white = np.full((1, 32, 32, 3), 245, np.uint8)
    purple = np.zeros((1, 32, 32, 3), np.uint8)
    purple[:] = (60, 40, 120)  # a dark haematoxylin-blue nucleus colour
    h = [features.colour_histograms(x).reshape(6, features.BINS)[3] for x in (white, purple)]
    centres = np.arange(features.BINS)
    assert (h[1] * centres).sum() > (h[0] * centres).sum() + 3  # more stain: higher bins


def _params(**kw):
    return {"classifier": "logreg", "C": 1.0, "class_weight": "none", "seed": 0, "tta": False, **kw}


def test_learns_colour_and_predicts_every_image_out_of_fold():
    x = _images(60, seed=1)
    y = np.arange(60) % 3
    x[y == 1, ..., 2] //= 3   # class 1: less blue
    x[y == 2, ..., 0] //= 3   # class 2: less red
    fold = (np.arange(60) // 3) % 3  # every class in every fold
    cv = shallow_cv.cross_validate(x, y, fold, x[:4], _params(), 3)
    assert cv.oof.shape == (60, 3) and not np.isnan(cv.oof).any()
    np.testing.assert_allclose(cv.oof.sum(1), 1.0, rtol=1e-6)
    assert (cv.oof.argmax(1) == y).mean() > 0.9
    assert cv.test.shape == (4, 3) and len(cv.folds) == 3 and cv.history.empty


def test_validation_images_never_train_their_fold():
    """Random labels on noise: a model that saw its validation images would score near 100%
    out of fold (it fits its training split perfectly); honest folds stay near chance."""
    x = _images(90, seed=2)
    y = np.random.default_rng(3).integers(0, 2, 90)
    cv = shallow_cv.cross_validate(x, y, np.arange(90) % 3, None, _params(C=100.0), 2)
    assert (cv.oof.argmax(1) == y).mean() < 0.7
    model = classifiers.make_classifier("logreg", 100.0).fit(features.hog_and_colour(x), y)
    assert model.score(features.hog_and_colour(x), y) == 1.0  # what a leak would look like


def test_tta_averages_views_and_keeps_the_plain_prediction():
    x = _images(30, seed=4)
    y = np.arange(30) % 2
    x[y == 1, :16] //= 2  # class 1: dark top half (not flip-invariant: views disagree)
    cv = shallow_cv.cross_validate(x, y, (np.arange(30) // 2) % 2, None, _params(tta=True), 2)
    assert not np.allclose(cv.oof, cv.oof_plain)


@pytest.mark.parametrize("name", ["svm", "forest"])
def test_other_classifiers_give_probabilities(name):
    x = _images(24, seed=5)
    y = np.arange(24) % 2
    cv = shallow_cv.cross_validate(x, y, (np.arange(24) // 2) % 2, None, _params(classifier=name), 2)
    np.testing.assert_allclose(cv.oof.sum(1), 1.0, rtol=1e-6)


def test_unknown_classifier_names_the_parameter():
    with pytest.raises(ValueError, match="parameter 'classifier'"):
        classifiers.make_classifier("knn")
