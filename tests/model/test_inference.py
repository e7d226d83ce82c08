"""Inference graphs: the saved model computes what the trained one does at inference, without
its augmentation, from Keras' own layers only (it loads in a Python without cellclf), and the
exported average of fold models (with TTA inside) equals the mean of their predictions."""
import json

import keras
import numpy as np
import pytest

from cellclf_utils.model import backbones, cnn, inference, tta
from conftest import run_under


def _images(n=5, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["tf", "caffe", "torch"])
def test_the_preprocessing_as_a_dense_map_equals_keras_preprocess_input(mode):
    layer = backbones.ImagenetPreprocessing(mode)
    x = _images(2).astype("float32")
    dense = inference.preprocessing_as_dense(layer)
    np.testing.assert_allclose(np.asarray(dense(x)), np.asarray(layer(x)), atol=1e-4)
    assert not dense.trainable


@pytest.mark.parametrize("name", ["vgg16", "mobilenet_v2", "efficientnetv2_b0"])
def test_the_inference_model_leaves_out_augmentation_and_predicts_as_the_trained_model(name):
    keras.utils.set_random_seed(0)
    model = backbones.build(name, 32, 3, augment="strong")
    assert any(layer.name.startswith("augment_") for layer in model.layers)
    kept = inference.inference_model(model)
    assert [layer.name for layer in kept.layers] == ["image", "preprocess", "base", "gap", "dropout", "probs"]
    x = _images()
    np.testing.assert_allclose(tta.predict_proba(kept, x, 4), tta.predict_proba(model, x, 4), atol=1e-6)
    assert all(type(layer).__module__.startswith("keras") for layer in kept.layers)


def test_the_baseline_cnn_keeps_its_own_layers():
    model = cnn.baseline_cnn(32, 4, augment_preset="basic")
    kept = inference.inference_model(model)
    assert len(kept.layers) == len(model.layers) - 1  # the augmentation only
    x = _images()
    np.testing.assert_allclose(tta.predict_proba(kept, x, 4), tta.predict_proba(model, x, 4), atol=1e-6)


def test_dihedral_views_are_the_eight_flips_and_rotations():
    x = _images(2, 8)
    inp = keras.Input((8, 8, 3))
    views = keras.Model(inp, inference.dihedral_views(inp, 8))(x.astype("float32"))
    got = sorted(np.asarray(v).tobytes() for v in views)
    want = sorted(tta.dihedral(x, k).astype("float32").tobytes() for k in range(tta.VIEWS))
    assert got == want


@pytest.mark.parametrize("use_tta", [False, True])
def test_the_averaged_model_is_the_mean_of_its_folds_and_loads_without_cellclf(tmp_path, use_tta):
    keras.utils.set_random_seed(0)
    folds = [inference.inference_model(backbones.build("vgg16", 32, 3, dropout=0.0)) for _ in range(2)]
    x = _images()
    want = np.mean([tta.predict_proba(f, x, 4, use_tta) for f in folds], axis=0)
    bundle = inference.averaged(folds, tta=use_tta)
    np.testing.assert_allclose(bundle.predict(x, verbose=0), want, atol=1e-6)
    path = tmp_path / "model.keras"
    bundle.save(path)
    np.save(tmp_path / "x.npy", x)
    code = ("import json, sys, keras, numpy as np\n"
            "m = keras.saving.load_model(sys.argv[1])\n"
            "assert not any(k.startswith('cellclf') for k in sys.modules), 'cellclf imported'\n"
            "print(json.dumps(m.predict(np.load(sys.argv[2]), verbose=0).tolist()))\n")
    got = np.array(json.loads(run_under("tensorflow", code, path, tmp_path / "x.npy").strip().splitlines()[-1]))
    np.testing.assert_allclose(got, want, atol=1e-6)
