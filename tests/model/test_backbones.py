"""Backbones: every registry entry builds and trains, preprocessing equals Keras', the
write-up's freeze policies, offline weights, and fast failures without internet."""
import json
import os
import socket
import subprocess
import sys
import time

import cv2
import keras
import numpy as np
import pytest
from skimage import data as skdata

from cellclf_utils.model import backbones as bb
from conftest import ROOT, shared_or_skip

_BUILT = {}


def model_of(name):
    """Return the default model for ``name`` at its minimum size, built once per session
    (InceptionResNetV2 alone takes 5-15 s to build on a busy CPU)."""
    if name not in _BUILT:
        _BUILT[name] = bb.build(name, bb.REGISTRY[name].min_size, 3)
    return _BUILT[name]


def trainable(base):
    return [layer.name for layer in base.layers if layer.trainable_weights]


@pytest.mark.parametrize("name", bb.REGISTRY)
def test_builds_at_min_size_and_trains_one_step(name):
    spec = bb.REGISTRY[name]
    model = model_of(name)
    base = model.get_layer("base")
    bb.apply_freeze(base, spec.unfreeze_from, spec.train_bn_in_frozen)
    assert model.output.shape == (None, 3) and model.get_layer("probs").dtype == "float32"
    weighted = [layer for layer in base.layers if layer.weights]
    first_trainable = next(layer for layer in weighted if layer.trainable_weights)
    frozen = [layer for layer in weighted if not layer.trainable_weights]
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in [first_trainable] + frozen[:3]}
    # eager: graph tracing costs 10-25 s per backbone on CPU and adds nothing here (the JAX
    # check below compiles); the gradients and updates are the same
    # the write-up's lr and a batch of 4: from random init, a batch of 2 whose features are
    # 1x1 (EfficientNetV2 at 32 px) gives degenerate BN statistics and NaN inference afterwards
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="sparse_categorical_crossentropy", run_eagerly=True)
    x = np.random.default_rng(0).uniform(0, 255, (4, spec.min_size, spec.min_size, 3)).astype("float32")
    loss = model.train_on_batch(x, np.array([0, 1, 2, 0]))
    assert np.isfinite(float(np.asarray(loss).ravel()[0]))
    assert not np.allclose(first_trainable.get_weights()[0], before[first_trainable.name][0])
    for layer in frozen[:3]:  # frozen kernels and BN statistics stay put
        assert all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), before[layer.name])), layer.name
    probs = model.predict(x, verbose=0)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_model_layout_options():
    model = bb.build("vgg16", 32, 4, pooling="gmp", dropout=0.7, augment="basic")
    names = [layer.name for layer in model.layers]
    assert names == ["image", "augment_basic", "preprocess", "base", "gmp", "dropout", "probs"]
    assert model.get_layer("dropout").rate == 0.7 and model.output.shape == (None, 4)
    # the model trains the base's trainable layers plus the head, nothing else
    assert len(model.trainable_weights) == 2 * 3 + 2


@pytest.mark.parametrize("name", bb.REGISTRY)
def test_preprocessing_matches_keras_applications(name):
    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = getattr(keras.applications, bb.REGISTRY[name].module).preprocess_input(x.copy())
    got = keras.ops.convert_to_numpy(bb.preprocessing(name)(x))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_torch_mode_and_config_round_trip():
    x = np.random.default_rng(2).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    layer = bb.ImagenetPreprocessing("torch")
    expected = keras.applications.densenet.preprocess_input(x.copy())  # densenet uses torch mode
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), expected, atol=1e-5)
    clone = bb.ImagenetPreprocessing.from_config(bb.ImagenetPreprocessing("caffe").get_config())
    assert clone.mode == "caffe"


def test_vgg16_policy_block5_and_all_none_index():
    base = model_of("vgg16").get_layer("base")
    block5 = ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert bb.apply_freeze(base, bb.REGISTRY["vgg16"].unfreeze_from, False) == block5 == trainable(base)
    assert bb.apply_freeze(base, 15, False) == bb.apply_freeze(base, "15", False) == block5
    assert bb.apply_freeze(base, "none", True) == []  # VGG16 has no BatchNormalization
    assert bb.apply_freeze(base, "all", False) == [layer.name for layer in base.layers if layer.weights]


def test_xception_policy_index_108_with_bn_below():
    base = model_of("xception").get_layer("base")
    spec = bb.REGISTRY["xception"]
    assert (spec.unfreeze_from, spec.train_bn_in_frozen) == ("109", True)
    assert base.layers[108].name == "block12_sepconv1_bn"  # the index the write-up names
    names = set(bb.apply_freeze(base, spec.unfreeze_from, spec.train_bn_in_frozen))
    for i, layer in enumerate(base.layers):
        if layer.weights:
            expected = i > 108 or isinstance(layer, keras.layers.BatchNormalization)
            assert (layer.name in names) == expected, (i, layer.name)
    assert "block12_sepconv1" not in names and "block12_sepconv2" in names and "block1_conv1_bn" in names
    no_bn = bb.apply_freeze(base, 109, False)
    assert no_bn[0] == "block12_sepconv2" and len(no_bn) == 14


def test_inception_resnet_v2_policy_and_bn_only_if_asked():
    base = model_of("inception_resnet_v2").get_layer("base")
    start = [layer.name for layer in base.layers].index("block8_10_conv")
    assert bb.apply_freeze(base, "block8_10_conv", False) == ["block8_10_conv", "conv_7b", "conv_7b_bn"]
    with_bn = bb.apply_freeze(base, "block8_10_conv", True)
    below = [layer for layer in base.layers[:start] if layer.name in with_bn]
    assert below and all(isinstance(layer, keras.layers.BatchNormalization) for layer in below)
    assert bb.apply_freeze(base, "none", False) == []


def test_unknown_layer_or_index_is_a_clear_error():
    base = model_of("vgg16").get_layer("base")
    with pytest.raises(ValueError, match=r"^parameter 'unfreeze_from'.*block5_conv1"):
        bb.apply_freeze(base, "block5_conv", False)
    with pytest.raises(ValueError, match=r"^parameter 'unfreeze_from' index 99 .* 19 layers"):
        bb.apply_freeze(base, 99, False)


@pytest.mark.parametrize("name", bb.REGISTRY)
def test_image_size_below_minimum_names_it(name):
    low = bb.REGISTRY[name].min_size - 1
    with pytest.raises(ValueError, match=rf"^parameter 'image_size' .*at least {low + 1}"):
        bb.build(name, low, 3)


@pytest.mark.parametrize("kwargs, param", [
    ({"name": "resnet"}, "backbone"), ({"pooling": "max"}, "pooling"),
    ({"dropout": 1.0}, "dropout"), ({"n_classes": 1}, "n_classes")])
def test_bad_parameters_name_themselves(kwargs, param):
    args = {"name": "vgg16", "image_size": 32, "n_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=rf"^parameter '{param}'") as err:
        bb.build(args.pop("name"), args.pop("image_size"), args.pop("n_classes"), **args)
    if param == "backbone":
        assert all(name in str(err.value) for name in bb.REGISTRY)


def test_chelsea_is_a_cat_with_shared_weights_and_our_preprocessing():
    folder = shared_or_skip("weights", "mobilenet_v2")
    model = keras.applications.MobileNetV2(weights=str(folder / "mobilenet_v2_imagenet.weights.h5"))
    img = cv2.resize(skdata.chelsea(), (224, 224), interpolation=cv2.INTER_AREA).astype("float32")[None]
    probs = model.predict(bb.preprocessing("mobilenet_v2")(img), verbose=0)[0]
    index = json.loads((folder / "imagenet_class_index.json").read_text())
    top5 = [index[str(i)] for i in np.argsort(probs)[::-1][:5]]
    cats = {"n02123045", "n02123159", "n02123394", "n02123597", "n02124075"}  # ImageNet's domestic cats
    assert any(wnid in cats for wnid, _ in top5), top5


def test_notop_file_loads_into_the_base():
    path = shared_or_skip("weights", "mobilenet_v2", "mobilenet_v2_imagenet_notop.weights.h5")
    assert path == ROOT.parent / "shared" / "weights" / "mobilenet_v2" / path.name
    keras.utils.set_random_seed(0)
    fresh = bb.build("mobilenet_v2", 96, 3).get_layer("base").get_weights()
    keras.utils.set_random_seed(0)
    loaded = bb.build("mobilenet_v2", 96, 3, weights=str(path)).get_layer("base").get_weights()
    reference = keras.applications.MobileNetV2(include_top=False, weights=str(path),
                                               input_shape=(96, 96, 3)).get_weights()
    assert len(fresh) == len(loaded) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, reference))
    kernels = [(a, b) for a, b in zip(fresh, loaded) if a.ndim == 4]
    assert kernels and all(not np.allclose(a, b) for a, b in kernels)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def test_imagenet_offline_fails_fast_and_says_what_to_do(no_cache, monkeypatch):
    port = _free_port()
    monkeypatch.setattr(bb, "DOWNLOAD_HOST", ("127.0.0.1", port))  # nothing listens there
    t0 = time.time()
    with pytest.raises(bb.WeightsError) as err:
        bb.build("mobilenet_v2", 96, 3, weights="imagenet")
    assert time.time() - t0 < 5
    msg = str(err.value)
    assert f"127.0.0.1:{port} is unreachable" in msg  # the probe answered, not a failed download
    assert "weights=none" in msg and "weights=<path to a .weights.h5>" in msg
    assert "../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5" in msg
    with pytest.raises(bb.WeightsError) as err:
        bb.build("vgg16", 32, 3, weights="imagenet")
    assert "weights=none" in str(err.value) and "mobilenet_v2_imagenet" not in str(err.value)


def _recording_get_file(monkeypatch):
    """Replace the downloader keras.applications calls with one that records and fails."""
    asked = []

    def fake_get_file(fname, origin, **kwargs):
        asked.append(fname)
        raise Exception(f"URL fetch failure on {origin}: None -- offline")

    from keras.src.utils import file_utils
    monkeypatch.setattr(file_utils, "get_file", fake_get_file)
    return asked


@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square")
@pytest.mark.parametrize("name, size", [("mobilenet_v2", 96), ("mobilenet_v2", 100), ("efficientnetv2_b0", 32),
                                        ("vgg16", 32)])
def test_download_errors_are_wrapped_and_cache_names_match_keras(name, size, no_cache, monkeypatch):
    # the probe succeeds (a local listener), then Keras' own downloader fails: this checks that
    # the failure becomes a WeightsError and that weights_file() names the file Keras asks for
    server = socket.create_server(("127.0.0.1", 0))
    monkeypatch.setattr(bb, "DOWNLOAD_HOST", server.getsockname())
    asked = _recording_get_file(monkeypatch)
    with server, pytest.raises(bb.WeightsError, match="URL fetch failure.*weights=none"):
        bb.build(name, size, 3, weights="imagenet")
    assert asked == [bb.weights_file(name, size)]


def test_a_cached_file_skips_the_probe(no_cache, monkeypatch):
    cached = bb._keras_cache() / bb.weights_file("mobilenet_v2", 96)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    monkeypatch.setattr(bb, "DOWNLOAD_HOST", ("127.0.0.1", _free_port()))  # would fail if probed
    asked = _recording_get_file(monkeypatch)
    with pytest.raises(bb.WeightsError, match="URL fetch failure"):
        bb.build("mobilenet_v2", 96, 3, weights="imagenet")
    assert asked == [cached.name]


def test_missing_or_broken_weights_file_names_it(tmp_path):
    missing = tmp_path / "nothere.weights.h5"
    with pytest.raises(bb.WeightsError, match="nothere.weights.h5.*vgg16"):
        bb.build("vgg16", 32, 3, weights=str(missing))
    broken = tmp_path / "broken.weights.h5"
    broken.write_bytes(b"not an HDF5 file")
    with pytest.raises(bb.WeightsError, match="broken.weights.h5.*vgg16"):
        bb.build("vgg16", 32, 3, weights=broken)


@pytest.mark.skipif(os.environ.get("CELLCLF_JAX_TESTS") != "1",
                    reason="set CELLCLF_JAX_TESTS=1: building and jit-compiling under JAX takes 1-2 min on CPU")
def test_builds_and_trains_under_jax():
    script = ("import numpy as np, keras; from cellclf_utils.model import backbones as bb; "
              "m = bb.build('mobilenet_v2', 32, 3); m.compile('sgd', 'sparse_categorical_crossentropy'); "
              "x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype('float32'); "
              "loss = float(m.train_on_batch(x, np.array([0, 1]))); "
              "print(keras.backend.backend(), np.isfinite(loss), m.predict(x, verbose=0).shape)")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "jax True (2, 3)"


@pytest.mark.parametrize("freeze_bn", [False, True])
def test_freeze_bn_keeps_imagenet_statistics_while_the_convolutions_train(freeze_bn):
    keras.utils.set_random_seed(0)
    # ResNet50: with random weights and frozen BN, its residual paths keep activations and
    # gradients alive (MobileNetV2's vanish at 32 px)
    model = bb.build("resnet50", 32, 3, unfreeze_from="all", freeze_bn=freeze_bn)
    base = model.get_layer("base")
    bn, conv = base.get_layer("conv5_block3_3_bn"), base.get_layer("conv5_block3_3_conv")
    before = [w.numpy().copy() for w in (bn.moving_mean, bn.gamma, conv.kernel)]
    model.compile("sgd", "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
    model.train_on_batch(x, np.arange(8) % 3)
    mean, gamma, kernel = [w.numpy() for w in (bn.moving_mean, bn.gamma, conv.kernel)]
    assert not np.array_equal(kernel, before[2])  # the convolutions train either way
    assert np.array_equal(mean, before[0]) == freeze_bn and np.array_equal(gamma, before[1]) == freeze_bn
    if freeze_bn:
        assert not any(layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_freeze_bn_overrides_a_default_policy_and_contradicts_an_explicit_one():
    xception = bb.REGISTRY["xception"]
    assert xception.train_bn_in_frozen  # the write-up's policy trains BN below the cut
    model = bb.build("xception", xception.min_size, 3, freeze_bn=True)
    assert not any(layer.trainable for layer in model.get_layer("base").layers
                   if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(ValueError, match="'freeze_bn' and 'train_bn_in_frozen' contradict"):
        bb.build("mobilenet_v2", 32, 3, train_bn_in_frozen=True, freeze_bn=True)


def test_weights_auto_falls_back_to_none_offline_and_says_why(no_cache, monkeypatch):
    port = _free_port()
    monkeypatch.setattr(bb, "DOWNLOAD_HOST", ("127.0.0.1", port))  # nothing listens: offline
    chosen, note = bb.choose_weights("mobilenet_v2", 96)
    assert chosen == "none"
    assert note == (f"weights auto: ImageNet weights for mobilenet_v2 could not be had (127.0.0.1:{port} is "
                    f"unreachable (no internet?) and {bb._keras_cache() / bb.weights_file('mobilenet_v2', 96)} is "
                    "not cached): trained from scratch")


def test_weights_auto_takes_imagenet_from_keras_cache_without_the_network(no_cache, monkeypatch):
    cached = bb._keras_cache() / bb.weights_file("mobilenet_v2", 96)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    monkeypatch.setattr(bb, "DOWNLOAD_HOST", ("127.0.0.1", _free_port()))  # would fail if probed
    assert bb.choose_weights("mobilenet_v2", 96) == ("imagenet", "weights auto: ImageNet weights for mobilenet_v2 "
                                                                 "(in Keras' cache)")


def test_weights_auto_downloads_imagenet_over_http_through_keras_own_downloader(no_cache, monkeypatch, tmp_path):
    """The online path without the internet: a local HTTP server serves a no-top MobileNetV2
    weights file in the format and under the name Keras asks for (random values of a known seed
    stand in for ImageNet's); weights auto fetches it with Keras' downloader into Keras' cache,
    and the base the stage then builds holds exactly those values."""
    import functools
    import http.server
    import threading

    import h5py
    from keras.src.applications import mobilenet_v2 as keras_mobilenet_v2
    from keras.src.backend import config as keras_config
    from keras.src.legacy.saving import legacy_h5_format
    keras.utils.set_random_seed(3)
    served = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    (tmp_path / "www").mkdir()
    with h5py.File(tmp_path / "www" / bb.weights_file("mobilenet_v2", 96), "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, served)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address
    monkeypatch.setattr(bb, "DOWNLOAD_HOST", (host, port))
    monkeypatch.setattr(keras_mobilenet_v2, "BASE_WEIGHT_PATH", f"http://{host}:{port}/")
    home = bb._keras_cache().parent
    home.mkdir(parents=True)  # Keras falls back to /tmp/.keras for a folder it cannot write
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(home))  # Keras read KERAS_HOME at import
    try:
        assert bb.choose_weights("mobilenet_v2", 96) == ("imagenet", "weights auto: ImageNet weights for "
                                                                     "mobilenet_v2 (downloaded)")
    finally:
        server.shutdown()
        server.server_close()
    assert (bb._keras_cache() / bb.weights_file("mobilenet_v2", 96)).is_file()
    base = bb._base(bb.get("mobilenet_v2"), 96, "imagenet")  # from the cache: the server is gone
    for got, want in zip(base.get_weights(), served.get_weights()):
        np.testing.assert_array_equal(got, want)
