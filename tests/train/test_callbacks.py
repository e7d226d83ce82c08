import json

import numpy as np
import pytest

import keras

from cellclf_utils import train
from cellclf_utils.train import callbacks
from conftest import run_under, run_under_jax, toy_images, train_params

# One optimiser step per epoch: the weights trained at each epoch's end are recorded before
# BestEpoch scores, the weights it scores with inside its predict call, and the weights after it.
EMA = """
import json, numpy as np, keras
from cellclf_utils import train
from cellclf_utils.train import callbacks, schedules
from conftest import toy_images
keras.utils.set_random_seed(0)
x, y = toy_images(16)
inp = keras.Input((16, 16, 3))
model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp)))
model.compile(optimizer=schedules.make_optimizer("adam", 0.05, ema=0.5), loss="sparse_categorical_crossentropy")
trained, scored, after = [], [], []
script = iter([0.6, 0.9, 0.7, 0.65])  # validation accuracy per epoch: epoch 1 is best
def scripted(m, images, batch_size, tta=False):
    scored.append([np.array(w) for w in m.get_weights()])
    acc = next(script)
    p = np.full((len(images), 2), 1 - acc)
    p[np.arange(len(images)), np.arange(len(images)) % 2] = acc
    return p
callbacks.predict_proba = scripted
class Record(keras.callbacks.Callback):
    def __init__(self, into):
        super().__init__()
        self.into = into
    def on_epoch_end(self, epoch, logs=None):
        self.into.append([np.array(w) for w in self.model.get_weights()])
best = train.BestEpoch(x[8:], y[8:], "val_loss", 8)
best.ema = True
model.fit(x[:8], y[:8], batch_size=8, epochs=4, callbacks=[Record(trained), best, Record(after)], verbose=0)
average = [trained[0]]  # Keras' first step starts the average at the weights
for w in trained[1:]:
    average.append([0.5 * a + 0.5 * b for a, b in zip(average[-1], w)])
close = lambda a, b: all(np.allclose(u, v, atol=1e-6) for u, v in zip(a, b))
epoch = best.restore()
print(json.dumps({"scored_is_average": all(close(s, a) for s, a in zip(scored, average)),
                  "differs": not close(scored[-1], trained[-1]),
                  "training_goes_on_from_trained": all(close(t, a) for t, a in zip(trained, after[:-1])),
                  "kept": epoch, "kept_is_average": close(model.get_weights(), average[1])}))
"""
EMA_OK = {"scored_is_average": True, "differs": True, "training_goes_on_from_trained": True, "kept": 1,
          "kept_is_average": True}


def test_with_ema_each_epoch_is_scored_and_kept_with_the_moving_average():
    """Training goes on from the trained weights; the score, and the kept epoch, use their
    average (Keras' ``use_ema``: ``avg = m * avg + (1 - m) * w`` after every step)."""
    assert json.loads(run_under("tensorflow", EMA).strip().splitlines()[-1]) == EMA_OK


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_ema_under_jax():
    assert json.loads(run_under_jax(EMA).strip().splitlines()[-1]) == EMA_OK


def test_weight_average_is_the_mean_of_the_epochs_from_first_on():
    x, y = toy_images(16)
    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp)))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append([np.array(w) for w in self.model.get_weights()])
    swa = callbacks.WeightAverage(model, first=2)
    model.fit(x, y, batch_size=8, epochs=5, callbacks=[Record(), swa], verbose=0)
    assert swa.apply() == 3
    for w, *epochs in zip(model.get_weights(), *seen[2:]):
        np.testing.assert_allclose(w, np.mean(epochs, axis=0), atol=1e-6)
    assert callbacks.WeightAverage(model, first=9).apply() == 0  # no epoch averaged: nothing set


def _frozen_score_model():
    inp = keras.Input((16, 16, 3))
    base = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(4)], name="base")
    return keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="probs")(base(inp)))


def test_with_swa_a_fold_keeps_the_average_not_the_best_epoch(tmp_path, capsys):
    # lr 0: every epoch scores the same, so the monitor would keep epoch 0; SWA keeps the last ones
    x, y = toy_images(24)
    model = _frozen_score_model()
    cv = train.cross_validate(lambda: model, x, y, (np.arange(24) // 2) % 2, None,
                              train_params(epochs=4, head_epochs=1, lr=0.0, swa_epochs=2), tmp_path)
    assert cv.folds.best_epoch.tolist() == [4, 4]  # 1 head + 4 fine-tuning epochs: the last
    assert "kept the mean of its last 2 epochs' weights (SWA)" in capsys.readouterr().out


def test_the_averaging_parameters_keep_old_signatures():
    base = train.signature(train_params())
    assert train.signature(train_params(ema=0.0, swa_epochs=0, backbone_lr=1.0)) == base
    assert train.signature(train_params(ema=0.99)) != base
