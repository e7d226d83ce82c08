"""The linear probe (02c): frozen backbone features equal Keras' own pooled MobileNetV2 with the
shared ImageNet weights (TensorFlow and JAX), and the classical cross-validation fits on the
views it is told to."""
import json

import keras
import numpy as np
import pytest

from cellclf_utils.model import backbones as bb
from cellclf_utils.shallow import classifiers, cv as shallow_cv, features, probe
from cellclf_utils.data.images import dihedral
from conftest import run_under_jax, shared_or_skip


def _images(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_features_are_the_frozen_pooled_base_in_whole_batches():
    keras.utils.set_random_seed(0)
    m = probe.extractor("mobilenet_v2", 32, "none")
    assert m.output.shape[-1] == 1280 and not m.trainable_weights  # nothing in a probe trains
    # VGG16: random weights keep feature magnitudes (MobileNetV2's shrink to ~1e-13 at 32 px)
    keras.utils.set_random_seed(1)
    featurize = probe.featurizer("vgg16", 32, "none", batch_size=4)
    x = _images(5, 32)
    f = featurize(x)
    assert f.shape == (5, 512) and f.dtype == np.float32
    # the short last batch is padded, then cut off: each row is its own image's features
    scale = np.abs(f).mean()
    assert np.abs(f[3] - f[4]).mean() > 0.05 * scale
    np.testing.assert_allclose(f[:4], featurize(x[:4]), atol=1e-4 * scale)
    np.testing.assert_allclose(f[4:], featurize(x[4:]), atol=1e-4 * scale)
    with pytest.raises(ValueError, match="built for 32 px"):
        featurize(_images(2, 40))
    keras.utils.set_random_seed(1)  # the same random weights
    with_colour = probe.featurizer("vgg16", 32, "none", batch_size=4, colour=True)(x)
    assert with_colour.shape == (5, 512 + 6 * features.BINS)
    np.testing.assert_allclose(with_colour[:, :512], f, atol=1e-4 * scale)
    np.testing.assert_array_equal(with_colour[:, 512:], features.colour_histograms(x))


def test_features_come_in_whole_batches_without_model_predict_and_in_bf16_where_asked(monkeypatch):
    """predict_on_batch per whole batch (model.predict costs a data iterator per call), and 02c's
    extractor in the dtype policy the fine-tuning stages set: bfloat16 compute where asked (what
    an accelerator gets), float32 features out."""
    from cellclf_utils.run.stages import probe_featurizer
    seen = []
    monkeypatch.setattr(keras.Model, "predict", lambda *a, **k: pytest.fail("model.predict called"))
    on_batch = keras.Model.predict_on_batch
    monkeypatch.setattr(keras.Model, "predict_on_batch", lambda self, x: seen.append(len(x)) or on_batch(self, x))
    x = _images(5, 32)
    keras.utils.set_random_seed(1)
    f32 = probe.featurizer("vgg16", 32, "none", batch_size=4)(x)
    assert seen == [4, 4] and keras.mixed_precision.global_policy().name == "float32"
    monkeypatch.setenv("CELLCLF_PRECISION", "mixed_bfloat16")
    try:
        keras.utils.set_random_seed(1)  # the same random weights
        bf16 = probe_featurizer({"backbone": "vgg16", "image_size": 32, "weights": "none", "pooling": "gap",
                                 "batch_size": 4, "colour": False, "seed": 1})(x)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert bf16.dtype == np.float32
    scale = np.abs(f32).mean()
    err = np.abs(bf16 - f32).mean()
    assert 0 < err < 0.05 * scale  # bfloat16 rounding (3 significant digits), not other features


def test_model_name_says_backbone_weights_size_and_classifier():
    P = {"backbone": "mobilenet_v2", "weights": "/x/y/mnv2_notop.weights.h5", "pooling": "gap", "image_size": 224,
         "classifier": "logreg", "C": 0.01}
    assert probe.describe(P) == "mobilenet_v2 weights=mnv2_notop.weights.h5 gap @224, frozen; logreg C=0.01"
    assert probe.describe({**P, "colour": True, "weights": "imagenet"}) == \
        "mobilenet_v2 weights=imagenet gap @224, frozen + colour/stain histograms; logreg C=0.01"


_REFERENCE = """
import sys, numpy as np, keras
from cellclf_utils.shallow import probe
x = np.random.default_rng(1).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
print(probe.featurizer("mobilenet_v2", 96, sys.argv[1], batch_size=2)(x).round(5).tolist())
"""


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_shared_weights_give_keras_applications_features_under_tf_and_jax():
    path = shared_or_skip("weights", "mobilenet_v2", "mobilenet_v2_imagenet_notop.weights.h5")
    x = np.random.default_rng(1).integers(0, 256, (3, 96, 96, 3), dtype=np.uint8)
    ref = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3), pooling="avg")
    ref.load_weights(path)
    expected = ref.predict(keras.applications.mobilenet_v2.preprocess_input(x.astype("float32")), verbose=0)
    ours = probe.featurizer("mobilenet_v2", 96, str(path), batch_size=2)(x)
    np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-4)
    under_jax = np.array(json.loads(run_under_jax(_REFERENCE, path).strip().splitlines()[-1]))
    np.testing.assert_allclose(under_jax, expected, rtol=1e-3, atol=1e-3)


def test_imagenet_offline_names_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(bb, "_host_reachable", lambda: False)
    with pytest.raises(bb.WeightsError, match="weights=none .*weights=<path to a .weights.h5>"):
        probe.extractor("mobilenet_v2", 96, "imagenet")


class _Recorder:
    """Stands in for the scikit-learn pipeline: records what it is fitted on, predicts uniform."""
    fits = []

    def fit(self, X, y):
        _Recorder.fits.append((X.copy(), y.copy()))
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))


@pytest.mark.parametrize("tta,fit_on_views,copies", [(True, True, 8), (True, False, 1), (False, True, 1)])
def test_fit_on_views_fits_on_every_view_of_the_training_split(tta, fit_on_views, copies, monkeypatch):
    monkeypatch.setattr(shallow_cv, "make_classifier", lambda *a, **k: _Recorder())
    _Recorder.fits = []
    x, y, fold = _images(12, 8, seed=2), np.arange(12) % 3, np.arange(12) % 2
    calls = []

    def featurize(v):  # the whole image as the feature row, so views are told apart
        calls.append(len(v))
        return v.reshape(len(v), -1).astype("float32")

    params = {"classifier": "logreg", "C": 1.0, "class_weight": "none", "seed": 0, "tta": tta}
    shallow_cv.cross_validate(x, y, fold, None, params, 3, featurize=featurize, fit_on_views=fit_on_views)
    assert calls == [12] * (8 if tta else 1)
    assert len(_Recorder.fits) == 2
    for f, (X, yy) in enumerate(_Recorder.fits):
        tr = fold != f
        expected = np.concatenate([dihedral(x[tr], k).reshape(tr.sum(), -1) for k in range(copies)])
        np.testing.assert_array_equal(X, expected)
        np.testing.assert_array_equal(yy, np.tile(y[tr], copies))


def _finetune_model(n_classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    return bb.build("mobilenet_v2", 32, n_classes, weights="none", unfreeze_from="none", augment="basic",
                    dropout=0.5)


def _separable(n, n_classes):
    """Images whose class is their brightness: a linear probe separates them."""
    y = np.arange(n) % n_classes
    x = _images(n, 32, seed=3) // 4 + (y * 60)[:, None, None, None].astype(np.uint8)
    return x, y


@pytest.mark.parametrize("n_classes", [3, 2])
def test_probe_head_computes_the_fitted_probe_exactly(n_classes):
    """LP-FT: the softmax layer set from a probe gives the scikit-learn pipeline's probabilities
    (standardisation folded into the weights), for three classes and for two (one sklearn logit)."""
    from cellclf_utils.model import tta as predict
    model = _finetune_model(n_classes)
    x, y = _separable(30, n_classes)
    before = predict.predict_proba(model, x, 8)
    features = probe.pooled_features(model)
    acc = probe.fit_head(model, features, x, y, n_classes, batch_size=8)
    feats = np.asarray(features.predict(x, verbose=0), "float64")
    expected = classifiers.make_classifier("logreg", probe.PROBE_C).fit(feats, y).predict_proba(feats)
    after = predict.predict_proba(model, x, 8)
    np.testing.assert_allclose(after, expected, atol=1e-5)
    assert not np.allclose(before, after, atol=1e-3)
    assert acc == pytest.approx((expected.argmax(1) == y).mean())


def test_probe_head_never_predicts_a_class_absent_from_training():
    model = _finetune_model(3)
    x, y = _separable(30, 3)
    keep = y != 1
    probe.fit_head(model, probe.pooled_features(model), x[keep], y[keep], 3, batch_size=8)
    from cellclf_utils.model import tta as predict
    p = predict.predict_proba(model, x, 8)
    assert p[:, 1].max() < 1e-6 and (p.argmax(1) != 1).all()


_LPFT_UNDER_JAX = """
import numpy as np, keras
from cellclf_utils.model import backbones, tta as predict
from cellclf_utils.shallow import classifiers, cv as shallow_cv, features, probe
from test_probe import _separable
keras.utils.set_random_seed(0)
model = backbones.build("resnet50", 32, 3, weights="none", unfreeze_from="all", freeze_bn=True)
x, y = _separable(24, 3)
features = probe.pooled_features(model)
probe.fit_head(model, features, x, y, 3, batch_size=8)
feats = np.asarray(features.predict(x, verbose=0), "float64")
expected = classifiers.make_classifier("logreg", probe.PROBE_C).fit(feats, y).predict_proba(feats)
assert np.abs(predict.predict_proba(model, x, 8) - expected).max() < 1e-4
bn = model.get_layer("base").get_layer("conv5_block3_3_bn")
mean = bn.moving_mean.numpy().copy()
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x, y, batch_size=8, epochs=1, verbose=0)
assert np.array_equal(bn.moving_mean.numpy(), mean)
print("lpft ok")
"""


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_probe_head_and_frozen_bn_fine_tune_under_jax():
    assert "lpft ok" in run_under_jax(_LPFT_UNDER_JAX, timeout=600)
