import ast
import os
import subprocess
import sys

import pytest

from cellclf_utils import compile_cache

# two folds of a two-phase fine-tune (head warm-up, then the whole model) under JAX
SCRIPT = r"""
import sys, numpy as np, keras
from cellclf_utils import compile_cache, train
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
print("RESULT", (cv.folds.compiles.tolist(), cv.folds.compile_s.tolist(), compile_cache.stats()["cache_hits"]))
"""


def test_later_folds_load_compiled_steps_from_the_cache_under_jax(tmp_path):
    pytest.importorskip("jax")
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "xla"), str(tmp_path / "run")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    compiles, seconds, hits = ast.literal_eval(r.stdout.split("RESULT")[1].strip())
    # fold 0 compiles both phases' train and predict steps; fold 1 loads them from disk
    assert hits >= 4 and compiles[1] < compiles[0] and seconds[1] < seconds[0], r.stdout[-2000:]
    assert any((tmp_path / "xla").iterdir())


def test_the_cache_is_a_jax_matter():
    # the suite runs on TensorFlow: nothing to cache, nothing counted
    if os.environ["KERAS_BACKEND"] != "tensorflow":
        pytest.skip("checks the TensorFlow backend")
    assert compile_cache.enable() is None
    assert compile_cache.stats() == {"compiles": 0, "compile_s": 0.0, "cache_hits": 0}
