import keras
import numpy as np
import pytest

from cellclf_utils.model import mixing
from conftest import run_under_jax

# Two classes whose images are all 0 (class 0) or all 255 (class 1): after mixing, an
# image's mean pixel / 255 must equal its label's class-1 share, whatever the draw was.
CHECK = """
import numpy as np
from cellclf_utils.model import mixing

def batch(n=16, size=12):
    y = np.arange(n) % 2
    x = np.repeat((255.0 * y)[:, None, None, None], size * size * 3).reshape(n, size, size, 3)
    w = np.where(y == 1, 0.5, 2.0)  # class weights 2 (class 0) and 0.5 (class 1)
    return x.astype("uint8"), np.stack([1.0 - y, y, w], 1).astype("float32")

def check(mixup, cutmix, draws=12):
    x, rows = batch()
    layer = mixing.MixBatch(mixup, cutmix, seed=1)
    soft = 0
    for _ in range(draws):
        xm, rm = (np.asarray(t) for t in layer(x, rows, training=True))
        assert xm.shape == x.shape and rm.shape == rows.shape and xm.dtype == np.float32
        np.testing.assert_allclose(xm.mean(axis=(1, 2, 3)) / 255, rm[:, 1], atol=1e-5)
        np.testing.assert_allclose(rm[:, 0] + rm[:, 1], 1, atol=1e-6)
        np.testing.assert_allclose(rm[:, 2], 2.0 * rm[:, 0] + 0.5 * rm[:, 1], atol=1e-5)
        if cutmix and not mixup:  # pasted pixels, never blended ones
            assert np.isin(xm, [0, 255]).all()
        soft += int((np.abs(rm[:, 1] - 0.5) < 0.49).any())
    assert soft >= draws // 2, soft
    xm, rm = layer(x, rows, training=False)
    np.testing.assert_array_equal(np.asarray(xm), x) and np.testing.assert_array_equal(np.asarray(rm), rows)
    layer.reseed(7); a = np.asarray(layer(x, rows, training=True)[1])
    layer.reseed(7); b = np.asarray(layer(x, rows, training=True)[1])
    np.testing.assert_array_equal(a, b)

for mixup, cutmix in ((0.4, 0.0), (0.0, 1.0), (0.4, 1.0)):
    check(mixup, cutmix)
    print("mixing ok", mixup, cutmix)
"""


def test_mixed_labels_and_weights_match_the_mixed_pixels():
    exec(compile(CHECK, "CHECK", "exec"), {})


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_mixed_labels_and_weights_match_the_mixed_pixels_under_jax():
    assert run_under_jax(CHECK).count("mixing ok") == 3


def test_mixed_crossentropy_is_weighted_crossentropy_on_unmixed_rows():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), 5).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 2, 1, 1, 0]]
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0], "float32")
    y_pred = np.concatenate([p, y, w[:, None]], 1)
    for smoothing in (0.0, 0.1):
        got = np.asarray(mixing.mixed_crossentropy(3, smoothing)(y, y_pred))
        want = np.asarray(keras.losses.CategoricalCrossentropy(label_smoothing=smoothing, reduction=None)(y, p))
        np.testing.assert_allclose(got, want * w, rtol=1e-5)


def test_training_model_trains_the_classifier_it_wraps():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    clf = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    trainer = mixing.training_model(clf, mixup=0.4, cutmix=1.0, seed=0)
    assert trainer.output_shape == (None, 5)
    y = np.arange(64) % 2
    images = np.zeros((64, 8, 8, 3), "uint8")
    images[y == 1, ..., 0] = 255  # class 1: red
    rows = np.concatenate([np.eye(2)[y], np.ones((64, 1))], 1).astype("float32")
    plain = np.asarray(trainer({"images": images[:16], "labels": rows[:16]}, training=False))
    np.testing.assert_allclose(plain[:, 2:], rows[:16])
    mixed = np.asarray(trainer({"images": images[:16], "labels": rows[:16]}, training=True))
    assert (mixed[:, 2:4].max(1) < 0.99).any()  # training mixes the labels (and images)
    assert {id(v) for v in clf.trainable_variables} <= {id(v) for v in trainer.trainable_variables}
    trainer.compile(optimizer=keras.optimizers.Adam(0.05), loss=mixing.mixed_crossentropy(2),
                    metrics=[mixing.mixed_accuracy(2)])
    h = trainer.fit({"images": images, "labels": rows}, np.eye(2)[y], batch_size=16, epochs=15, verbose=0)
    assert "accuracy" in h.history and h.history["loss"][-1] < h.history["loss"][0]
    assert (clf.predict(images, verbose=0).argmax(1) == y).all()


def test_negative_alpha_is_refused():
    with pytest.raises(ValueError, match="mixup and cutmix must be >= 0"):
        mixing.MixBatch(mixup=-1)
