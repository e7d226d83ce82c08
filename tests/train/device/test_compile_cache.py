import ast
import os

import pytest

from cellclf_utils.train.device import compile_cache
from conftest import run_under_jax

# two folds of a two-phase fine-tune (head warm-up, then the whole model) under JAX
SCRIPT = r"""
import sys, numpy as np, keras
from cellclf_utils.train.device import compile_cache
from cellclf_utils.train import cross_validation as train
compile_cache.enable(sys.argv[1], min_compile_s=0)  # cache even the toy model's quick compiles
rng = np.random.default_rng(0)
y = np.arange(40) % 2
x = rng.integers(0, 60, (40, 16, 16, 3)).astype(np.uint8)
x[y == 1, :, :8] += 150
inp = keras.Input((16, 16, 3))
base = keras.Sequential([keras.layers.Conv2D(4, 3)], name="base")
model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(base(inp))))
initial = model.get_weights()
def build():
    model.set_weights(initial)
    return model
P = {"seed": 0, "optimizer": "adam", "lr": 1e-2, "monitor": "val_auc", "batch_size": 8, "epochs": 1,
     "schedule": "constant", "tta": False, "class_weight": "none", "head_epochs": 1}
cv = train.cross_validate(build, x, y, np.arange(40) % 2, None, P, sys.argv[2])
print("RESULT", (cv.folds.compiles.tolist(), cv.folds.compile_s.tolist(), cv.folds.cache_loads.tolist()))
"""


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_compiled_steps_are_reused_by_later_folds_and_loaded_from_the_cache_by_later_runs(tmp_path):
    def run(name):
        out = run_under_jax(SCRIPT, tmp_path / "xla", tmp_path / name)
        return ast.literal_eval(out.split("RESULT")[1].strip()), out[-2000:]

    (compiles, seconds, loads), out = run("run1")
    # fold 0 compiles both phases' train steps and the predict step; fold 1 reuses them in memory
    assert compiles[0] >= 3 and compiles[1] < compiles[0] and seconds[1] < seconds[0], out
    assert any((tmp_path / "xla").iterdir())
    (compiles2, seconds2, loads2), out = run("run2")
    # a later run (a new process) loads them from disk instead of compiling again; a load is
    # not counted as a compile (JAX reports it inside its compile event)
    assert loads == [0, 0] and loads2[0] >= 3, out
    assert sum(compiles2) <= sum(compiles) // 4 and seconds2[0] < seconds[0] / 2, out


def test_the_cache_is_a_jax_matter():
    # the suite runs on TensorFlow: nothing to cache, nothing counted
    if os.environ["KERAS_BACKEND"] != "tensorflow":
        pytest.skip("checks the TensorFlow backend")
    assert compile_cache.enable() is None
    assert compile_cache.stats() == {"compiles": 0, "compile_s": 0.0, "cache_hits": 0}
