import numpy as np
import pytest

from cellclf_utils.train.device import resident
from cellclf_utils.train import cross_validation as train
from conftest import run_under_jax
from conftest import toy_images, train_params

# Fitting through the ImageStore (row indices in, images gathered on the device) must train
# exactly like fitting the images: same shuffling, same batches, same weights.
SAME = """
import keras, numpy as np
from cellclf_utils.model import mixing
from cellclf_utils.train.device import resident

def classifier():
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Rescaling(1 / 255)(inp)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    h = keras.layers.BatchNormalization()(h)  # moving statistics are trained state too
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(h))

def fitted_weights(mixed, store_rows=None):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, 3, 40), 3)
    labels = np.concatenate([y, np.ones((40, 1))], 1).astype("float32")
    m = classifier()
    fitted = mixing.training_model(m, 0.4, 1.0, seed=3) if mixed else m
    data = {"images": x, "labels": labels} if mixed else x
    if store_rows is not None:
        store = resident.ImageStore(48, (16, 16, 3))
        store.load(x[store_rows])
        fitted = resident.training_model(fitted, store)
        index = np.arange(40, dtype="int32")
        data = {"index": index, "labels": labels} if mixed else index
    fitted.compile(optimizer="adam", loss=mixing.mixed_crossentropy(3) if mixed else "categorical_crossentropy")
    keras.utils.set_random_seed(1)
    fitted.fit(data, y, batch_size=8, epochs=2, shuffle=True, verbose=0)
    return m.get_weights()

def check():
    for mixed in (False, True):
        direct = fitted_weights(mixed)
        for a, b in zip(direct, fitted_weights(mixed, np.arange(40))):
            np.testing.assert_array_equal(a, b)
        # the check can fail: a store holding the images one row off trains differently
        shifted = fitted_weights(mixed, np.roll(np.arange(40), 1))
        assert any(not np.allclose(a, b) for a, b in zip(direct, shifted))
    print("same weights")
"""


def test_fitting_through_the_store_trains_exactly_like_fitting_the_images():
    scope = {}
    exec(compile(SAME, "SAME", "exec"), scope)
    scope["check"]()


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_fitting_through_the_store_under_jax():
    assert "same weights" in run_under_jax(SAME + "\ncheck()", timeout=300)


def test_store_keeps_uint8_under_mixed_precision():
    import keras
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        store = resident.ImageStore(4, (2, 2, 3))
        x = np.arange(3 * 12, dtype=np.uint8).reshape(3, 2, 2, 3)
        store.load(x)
        got = store(np.array([2, 0], "int32"))
        assert keras.backend.standardize_dtype(got.dtype) == "uint8" and store.images.dtype == "uint8"
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), x[[2, 0]])
        assert not store.trainable_weights  # never touched by the optimizer
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_load_names_what_does_not_fit():
    store = resident.ImageStore(4, (2, 2, 3))
    with pytest.raises(ValueError, match="up to 4 uint8 images of shape \\(2, 2, 3\\); got 5"):
        store.load(np.zeros((5, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="got 2 float32 images"):
        store.load(np.zeros((2, 2, 2, 3), np.float32))


def test_cross_validation_loads_each_folds_training_images_into_one_store(tmp_path, monkeypatch):
    """One store for all folds (compiled steps stay valid); each fold's rows are exactly its
    training images plus its pseudo-labelled ones, never its validation images."""
    import keras
    inp = keras.Input((16, 16, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inp))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(h))
    initial = model.get_weights()
    loaded = []
    load = resident.ImageStore.load
    monkeypatch.setattr(resident.ImageStore, "load", lambda self, x: loaded.append((id(self), x.copy())) or load(self, x))

    def build():
        model.set_weights(initial)
        return model

    x, y = toy_images(48)
    fold_of = np.arange(48) % 3
    extra = {f: (x[:2] + np.uint8(f), np.eye(2, dtype="float32")[[0, 1]]) for f in range(3)}
    train.cross_validate(build, x, y, fold_of, None, train_params(epochs=1), tmp_path, lambda f: extra[f])
    assert len(loaded) == 3 and len({i for i, _ in loaded}) == 1
    for f, (_, rows) in enumerate(loaded):
        np.testing.assert_array_equal(rows, np.concatenate([x[fold_of != f], extra[f][0]]))
