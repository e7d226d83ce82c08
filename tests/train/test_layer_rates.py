import json

import numpy as np
import pytest

import keras

from cellclf_utils.train import layer_rates
from conftest import run_under, run_under_jax


def _model():
    inp = keras.Input((8,))
    base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="low"), keras.layers.Dense(8, name="mid"),
                             keras.layers.Dense(8, name="top")], name="base")
    return keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="head")(base(inp)))


def test_the_backbone_rate_rises_geometrically_from_ratio_to_1_and_the_head_trains_at_lr():
    model = _model()
    by_layer = dict(zip([v.path for v in model.trainable_variables],
                        layer_rates.scales(model, model.trainable_variables, 0.01)))
    base = model.get_layer("base")
    layers = [base.get_layer("low"), base.get_layer("mid"), base.get_layer("top"), model.get_layer("head")]
    for layer, expected in zip(layers, (0.01, 0.1, 1.0, 1.0)):
        assert [by_layer[v.path] for v in layer.trainable_weights] == pytest.approx([expected] * 2), layer.name
    assert layer_rates.scales(model, model.trainable_variables, 1.0) == [1.0] * 8
    # a frozen layer is not counted: the lowest trained one starts the ramp
    model.get_layer("base").get_layer("low").trainable = False
    assert layer_rates.scales(model, model.trainable_variables, 0.01)[:2] == pytest.approx([0.01, 0.01])
    with pytest.raises(ValueError, match="'backbone_lr' must be in"):
        layer_rates.scales(model, model.trainable_variables, 0.0)


# Adam's first step moves every weight by its learning rate (times the sign of its gradient),
# so each layer's largest move is its own rate.
ONE_STEP = """
import json, numpy as np, keras
from cellclf_utils.train import layer_rates, schedules
keras.utils.set_random_seed(0)
inp = keras.Input((8,))
base = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="low"), keras.layers.Dense(8, name="top")],
                        name="base")
model = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="head")(base(inp)))
scales = layer_rates.scales(model, model.trainable_variables, 0.1)
model.compile(optimizer=schedules.make_optimizer("adam", 1e-2, scales=scales), loss="sparse_categorical_crossentropy")
before = {v.path: np.array(v) for v in model.trainable_variables}
rng = np.random.default_rng(0)
model.fit(rng.normal(size=(16, 8)), np.arange(16) % 2, batch_size=16, epochs=1, verbose=0)
moved = {}
for v in model.trainable_variables:
    layer = v.path.split("/")[-2]
    moved[layer] = max(moved.get(layer, 0.0), float(np.abs(np.array(v) - before[v.path]).max()))
print(json.dumps({k: round(x, 5) for k, x in moved.items()}))
"""


def _moves(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_each_layer_steps_at_its_own_rate():
    moved = _moves(run_under("tensorflow", ONE_STEP))
    assert moved == pytest.approx({"low": 1e-3, "top": 1e-2, "head": 1e-2}, rel=1e-3)


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_layer_rates_under_jax():
    assert _moves(run_under_jax(ONE_STEP)) == pytest.approx({"low": 1e-3, "top": 1e-2, "head": 1e-2}, rel=1e-3)
