import keras
import numpy as np
import pytest

from cellclf_utils.train.device import memory
from cellclf_utils.train import cross_validation as train

GIB = 2 ** 30


def tiny_model(name="tiny"):
    inp = keras.Input((8, 8, 3))                                  # 192 values per image
    h = keras.layers.Conv2D(4, 3, padding="same")(inp)            # 256, 3*3*3*4 + 4 = 112 weights
    h = keras.layers.GlobalAveragePooling2D()(h)                  # 4
    return keras.Model(inp, keras.layers.Dense(2)(h), name=name)  # 2, 4*2 + 2 = 10 weights


def test_activations_count_every_layer_output_once_nested_models_included():
    assert memory.activation_elements(tiny_model()) == 192 + 256 + 4 + 2
    inner = tiny_model("inner")
    inp = keras.Input((8, 8, 3))
    outer = keras.Model(inp, keras.layers.Softmax()(inner(inp)))
    # the nested model's layers count, not the nested model as a whole on top of them
    assert memory.activation_elements(outer) == 192 + (192 + 256 + 4 + 2) + 2


@pytest.mark.parametrize("optimizer,slots", [("sgd", 1), ("adam", 2), ("adamw", 2)])
def test_training_bytes_add_weights_optimizer_state_and_a_batch_of_activations(optimizer, slots):
    model = tiny_model()
    model.get_layer(index=1).trainable = False  # the conv: weights kept, no gradient or slots
    b = memory.training_bytes(model, 16, optimizer)
    assert b["weights"] == b["best_weights"] == 4 * 122  # the best epoch's copy lives beside them
    assert b["gradients_and_optimizer"] == 4 * 10 * (1 + slots)
    assert b["activations"] == 16 * 454 * 4 * memory.ACTIVATION_FACTOR
    assert b["total"] == b["weights"] + b["best_weights"] + b["gradients_and_optimizer"] + b["activations"]


def test_activations_are_counted_in_the_compute_dtype():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        half = memory.training_bytes(tiny_model(), 16)["activations"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert half * 2 == memory.training_bytes(tiny_model(), 16)["activations"]


def test_auto_takes_the_largest_power_of_two_that_fits():
    model = tiny_model()
    need = {bs: memory.training_bytes(model, bs)["total"] for bs in (8, 16, 32, 64)}
    # room for 32 but not 64
    room = (need[32] + need[64]) / 2 / memory.FRACTION
    bs, note = memory.choose_batch_size(0, model, "sgd", int(room))
    assert bs == 32 and "batch_size auto: 32" in note
    assert memory.choose_batch_size(0, model, "sgd", 100 * GIB)[0] == memory.AUTO_MAX
    bs, note = memory.choose_batch_size(0, model, "sgd", 1000)
    assert bs == memory.AUTO_MIN and "try a smaller image_size" in note
    assert memory.choose_batch_size(0, model, "sgd", None) == (memory.CPU_BATCH, "batch_size auto: 32 (no accelerator memory known)")


def test_a_given_batch_size_is_kept_and_a_too_big_one_is_warned_about():
    model = tiny_model()
    assert memory.choose_batch_size(48, model, "sgd", 100 * GIB) == (48, "")
    assert memory.choose_batch_size(48, model, "sgd", None) == (48, "")
    bs, note = memory.choose_batch_size(48, model, "sgd", 1000)
    assert bs == 48 and note.startswith("warning: batch_size 48 may not fit") and "-p batch_size 0" in note


def test_there_is_no_accelerator_memory_on_this_cpu():
    assert memory.device_bytes() is None


P = {"seed": 0, "optimizer": "adam", "lr": 1e-2, "monitor": "last", "batch_size": 0, "epochs": 1,
     "schedule": "constant", "tta": False, "class_weight": "none"}


def _data():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    return rng.integers(0, 255, (40, 8, 8, 3)).astype(np.uint8), y, np.arange(40) % 2


def _build():
    model = tiny_model()
    return keras.Model(model.inputs, keras.layers.Softmax(dtype="float32")(model.outputs[0]))


def test_cross_validation_settles_auto_before_the_first_fold(tmp_path, monkeypatch):
    x, y, fold_of = _data()
    cv = train.cross_validate(_build, x, y, fold_of, None, P, tmp_path / "cpu")
    assert cv.folds.batch_size.tolist() == [memory.CPU_BATCH] * 2
    # a card with room for 16 images but not 32 (the estimate is the model's, so it is exact here)
    need = {bs: memory.training_bytes(_build(), bs, "adam")["total"] for bs in (16, 32)}
    monkeypatch.setattr(memory, "device_bytes", lambda: int((need[16] + need[32]) / 2 / memory.FRACTION))
    cv = train.cross_validate(_build, x, y, fold_of, None, P, tmp_path / "card")
    assert cv.folds.batch_size.tolist() == [16, 16]
    cv = train.cross_validate(_build, x, y, fold_of, None, {**P, "batch_size": 8}, tmp_path / "given")
    assert cv.folds.batch_size.tolist() == [8, 8]
