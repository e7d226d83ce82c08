import numpy as np
import pytest

import keras

from cellclf_utils import train
from cellclf_utils.config import ParameterError, validate
from cellclf_utils.data.images import dihedral
from cellclf_utils.model import batching, cnn, mixing, tta
from cellclf_utils.train import callbacks, schedules, trainers as trainers_module
from cellclf_utils.train.device import resident
from conftest import run_under, run_under_jax, toy_images, train_params


def test_step_schedule_follows_the_writeup():
    lrs = [schedules.lr_at(e, 1e-3, "step", 100) for e in range(100)]
    assert np.isclose(lrs[79], 1e-3) and np.isclose(lrs[80], 1e-4) and np.isclose(lrs[83], 1e-5)
    assert np.isclose(lrs[95], 1e-9) and np.isclose(lrs[99], 1e-9)
    scaled = [schedules.lr_at(e, 1.0, "step", 10) for e in range(10)]
    assert np.allclose(scaled[:8], 1.0) and scaled[8] < 1.0
    assert np.isclose(schedules.lr_at(5, 0.1, "constant", 10), 0.1)


def test_cosine_warms_up_then_decays_and_onecycle_peaks_at_30_percent():
    cos = [schedules.lr_at(e / 10, 1.0, "cosine", 10, steps_per_epoch=10) for e in range(100)]
    peak = int(np.argmax(cos))
    assert 0 < peak <= 6 and cos[0] < 0.5 and np.isclose(max(cos), 1.0, atol=0.01)
    assert all(a >= b - 1e-6 for a, b in zip(cos[peak:], cos[peak + 1:])) and cos[-1] < 0.01
    one = [schedules.lr_at(e / 10, 1.0, "onecycle", 10, steps_per_epoch=10) for e in range(100)]
    assert int(np.argmax(one)) == 30 and np.isclose(one[0], 1 / 25) and one[-1] < 1e-3


def test_optimizers():
    assert isinstance(schedules.make_optimizer("adamw", 1e-3), keras.optimizers.AdamW)
    with pytest.raises(ValueError, match="one of sgd, adam, adamw"):
        schedules.make_optimizer("rmsprop", 1e-3)


def test_cross_validation_learns_and_resumes(tmp_path, monkeypatch):
    x, y = toy_images(64)
    fold_of = (np.arange(len(y)) // 2) % 2  # both classes in every fold
    build = lambda: cnn.baseline_cnn(16, 2, dropout=0.0)
    P = train_params(epochs=8, lr=3e-3, monitor="last")
    cv = train.cross_validate(build, x, y, fold_of, x[:5], P, tmp_path)
    assert cv.oof.shape == (64, 2) and not np.isnan(cv.oof).any()
    assert np.allclose(cv.oof.sum(1), 1, atol=1e-4)
    assert (cv.oof.argmax(1) == y).mean() > 0.8
    assert cv.test.shape == (5, 2)
    assert set(cv.history.fold) == {0, 1} and "val_auc" in cv.history
    saved = keras.saving.load_model(tmp_path / "fold0" / "model.keras")  # the fold's model, whole
    np.testing.assert_allclose(saved.predict(x[fold_of == 0], verbose=0), cv.oof[fold_of == 0], atol=1e-6)

    # a killed run: fold 1 never finished. Resume must load fold 0, retrain only fold 1.
    (tmp_path / "fold1" / "done.json").unlink()
    calls = []
    monkeypatch.setattr(trainers_module, "make_optimizer", lambda *a: calls.append(a) or keras.optimizers.Adam(3e-3))
    again = train.cross_validate(build, x, y, fold_of, x[:5], P, tmp_path)
    assert len(calls) == 1
    assert again.folds.resumed.tolist() == [True, False]
    assert np.allclose(again.oof[fold_of == 0], cv.oof[fold_of == 0])


def test_resume_with_other_parameters_is_refused(tmp_path):
    x, y = toy_images(24)
    build = lambda: cnn.baseline_cnn(16, 2)
    train.cross_validate(build, x, y, (np.arange(24) // 2) % 2, None, train_params(epochs=1), tmp_path)
    with pytest.raises(train.ResumeMismatchError, match="new run_id"):
        train.cross_validate(build, x, y, (np.arange(24) // 2) % 2, None, train_params(epochs=1, lr=0.5), tmp_path)


def test_best_epoch_by_val_auc_is_restored(tmp_path):
    x, y = toy_images(32)
    cv = train.cross_validate(lambda: cnn.baseline_cnn(16, 2), x, y, (np.arange(32) // 2) % 2, None,
                              train_params(epochs=3, lr=0.05), tmp_path)
    h = cv.history
    for fold, best in zip(cv.folds.fold, cv.folds.best_epoch):
        aucs = h[h.fold == fold].val_auc.to_numpy()
        assert best == int(np.nanargmax(aucs))


def test_patience_stops_after_that_many_epochs_without_a_better_score(monkeypatch):
    """Scripted validation accuracies 0.6, 0.8, 0.7, 0.75, 0.7: the best is epoch 1, so with
    patience 3 the fit is told to stop at the end of epoch 4 and not before."""
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(inp))
    model.compile(optimizer="sgd", loss="categorical_crossentropy")  # BestEpoch logs its learning rate
    y = np.array([0, 1] * 10)
    script = iter([0.6, 0.8, 0.7, 0.75, 0.7])

    def scripted(m, x, batch_size, tta=False):  # right class at that probability for every image
        p = np.full((len(y), 2), 1 - (acc := next(script)))
        p[np.arange(len(y)), y] = acc
        return p
    monkeypatch.setattr(callbacks, "predict_proba", scripted)
    best = train.BestEpoch(np.zeros((20, 4)), y, "val_loss", 4)
    best.set_model(model)
    best.patience = 3
    stops = []
    for epoch in range(5):
        model.stop_training = False
        best.on_epoch_end(epoch, {})
        stops.append(model.stop_training)
    assert stops == [False, False, False, False, True] and best.best_epoch == 1


def _frozen_score_model():
    """A model with a 'base' (so fit_fold runs a head phase) whose scores never change at lr 0
    (no BatchNormalization statistics to drift)."""
    inp = keras.Input((16, 16, 3))
    base = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(4)], name="base")
    return keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="probs")(base(inp)))


def test_patience_applies_to_fine_tuning_not_the_head_warm_up(tmp_path):
    # lr 0: every epoch scores the same, so epoch 0 stays best; the 4 head epochs all run
    # (patience 2 would have cut them at 3), then fine-tuning stops after its first epoch
    # (epoch 4 - best 0 >= patience 2), not after 10
    x, y = toy_images(24)
    model = _frozen_score_model()
    cv = train.cross_validate(lambda: model, x, y, (np.arange(24) // 2) % 2, None,
                              train_params(epochs=10, head_epochs=4, lr=0.0, patience=2), tmp_path)
    assert cv.folds.epochs.tolist() == [5, 5] and cv.folds.best_epoch.tolist() == [0, 0]
    assert cv.history.groupby("fold").phase.apply(list).tolist() == [["head"] * 4 + ["train"]] * 2
    # off (0), every epoch runs
    off = train.cross_validate(lambda: model, x, y, (np.arange(24) // 2) % 2, None,
                               train_params(epochs=10, head_epochs=4, lr=0.0), tmp_path / "off")
    assert off.folds.epochs.tolist() == [14, 14]


def test_patience_needs_a_score_to_watch_and_keeps_old_signatures():
    from cellclf_utils.config import defaults
    with pytest.raises(ParameterError, match="'patience'.*monitor is 'last'"):  # refused before any training
        validate("02_baseline_cnn", {**defaults("02_baseline_cnn"), "monitor": "last", "patience": 3})
    # folds trained before the parameter existed still resume; a set patience is a new fold
    assert train.signature(train_params(patience=0)) == train.signature(train_params())
    assert train.signature(train_params(patience=5)) != train.signature(train_params())


BEST_WEIGHTS = """
import json, numpy as np, keras
from cellclf_utils import train
from cellclf_utils.train import callbacks
from conftest import toy_images
keras.utils.set_random_seed(0)
x, y = toy_images(32)  # labels alternate 0, 1, ...
inp = keras.Input((16, 16, 3))
h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inp))  # moving statistics too
model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h)))
model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
script = iter([0.6, 0.9, 0.7, 0.65, 0.8, 0.7])  # validation accuracy per epoch: epoch 1 is best
def scripted(m, images, batch_size, tta=False):
    acc = next(script)
    p = np.full((len(images), 2), 1 - acc)
    p[np.arange(len(images)), np.arange(len(images)) % 2] = acc
    return p
callbacks.predict_proba = scripted
seen = []
class Record(keras.callbacks.Callback):  # the weights after each epoch, as numpy
    def on_epoch_end(self, epoch, logs=None):
        seen.append([np.array(w) for w in self.model.get_weights()])
best = train.BestEpoch(x[16:], y[16:], "val_loss", 8)
model.fit(x[:16], y[:16], batch_size=8, epochs=6, callbacks=[best, Record()], verbose=0)
epoch = best.restore()
restored = model.get_weights()
print(json.dumps({"epoch": epoch, "differs_from_last": any(not np.array_equal(a, b) for a, b in zip(restored, seen[-1])),
                  "equal": all(np.array_equal(a, b) for a, b in zip(restored, seen[epoch]))}))
"""


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_best_weights_kept_on_the_device_are_the_best_epochs_under_tf_and_jax():
    """The best epoch's weights are copied where they live (no numpy round trip) while fit goes
    on updating the variables (under JAX, donating their buffers to the next step): restore()
    must give exactly that epoch's weights, BatchNormalization statistics included."""
    import json
    for out in (run_under("tensorflow", BEST_WEIGHTS), run_under_jax(BEST_WEIGHTS)):
        assert json.loads(out.strip().splitlines()[-1]) == {"epoch": 1, "differs_from_last": True, "equal": True}


def test_dihedral_tta_views_are_distinct_and_complete():
    x = np.arange(2 * 3 * 3 * 1).reshape(2, 3, 3, 1)
    views = {dihedral(x, k).tobytes() for k in range(8)}
    assert len(views) == 8


def test_baseline_architecture_is_the_writeups():
    m = cnn.baseline_cnn(64, 3, pooling="gmp", dropout=0.7, augment_preset="basic")
    convs = [l for l in m.layers if l.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 64, 128, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(l.__class__.__name__ == "MaxPooling2D" for l in m.layers) == 3
    assert any(l.__class__.__name__ == "GlobalMaxPooling2D" for l in m.layers)
    assert m.get_layer("probs").dtype_policy.name == "float32"
    assert m.output_shape == (None, 3)


JAX_STEP = """
import os, numpy as np
os.environ["KERAS_BACKEND"] = "jax"
from cellclf_utils.model import cnn
from cellclf_utils.train import schedules
import keras
assert keras.backend.backend() == "jax"
x = np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3)).astype(np.uint8)
y = np.arange(16) % 3
m = cnn.baseline_cnn(32, 3, augment_preset="basic")
m.compile(optimizer=schedules.make_optimizer("sgd", 0.01), loss="sparse_categorical_crossentropy")
loss = m.train_on_batch(x, y)
assert np.isfinite(loss), loss
print("jax ok", loss)
"""


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_baseline_trains_under_jax():
    assert "jax ok" in run_under_jax(JAX_STEP)


TWO_PHASES = """
import numpy as np, keras, pytest
from cellclf_utils import train
from cellclf_utils.train import callbacks
from conftest import toy_images, train_params

def two_phases(tmp_path):
    x, y = toy_images(48)
    inp = keras.Input((16, 16, 3))
    # 0..1 inputs: on 0..255 the softmax saturates and JAX's gradients vanish, which would hide
    # whether the base trains
    base = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(4, 3, name="frozen_conv"),
                             keras.layers.Conv2D(4, 3, name="tuned_conv")], name="base")
    base.get_layer("frozen_conv").trainable = False
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="probs")(
        keras.layers.GlobalAveragePooling2D()(base(inp))))
    initial = model.get_weights()
    tuned0 = base.get_layer("tuned_conv").get_weights()[0].copy()
    compiled, after_head = [], []
    compile_ = keras.Model.compile

    def counting_compile(self, *a, **k):
        compiled.append(self.name)
        return compile_(self, *a, **k)
    keras.Model.compile = counting_compile

    class HeadOnly(keras.callbacks.Callback):  # the base must not move in the head phase
        def on_train_end(self, logs=None):
            if not base.trainable:  # the head phase just ended (the train phase ends unfrozen)
                after_head.append(np.array_equal(base.get_layer("tuned_conv").get_weights()[0], tuned0))

    def build():
        model.set_weights(initial)
        return model

    fit = keras.Model.fit
    keras.Model.fit = lambda self, *a, **k: fit(self, *a, **{**k, "callbacks": [*k["callbacks"], HeadOnly()]})
    try:
        P = train_params(epochs=2, head_epochs=1, monitor="last", tta=True)
        cv = train.cross_validate(build, x, y, np.arange(48) % 3, None, P, tmp_path)
    finally:
        keras.Model.compile, keras.Model.fit = compile_, fit
    h = cv.history[cv.history.fold == 0]
    assert h.phase.tolist() == ["head", "train", "train"] and h.epoch.tolist() == [0, 1, 2]
    assert h.learning_rate.iloc[0] == pytest.approx(min(10 * P["lr"], 1.0))  # the fresh head's larger step
    assert len(compiled) == 2, compiled  # one per phase for all 3 folds, not one per phase per fold
    assert after_head == [True, True, True], after_head
    assert base.trainable and not base.get_layer("frozen_conv").trainable and base.get_layer("tuned_conv").trainable
    np.testing.assert_array_equal(base.get_layer("frozen_conv").get_weights()[0], initial[0])
    assert not np.array_equal(base.get_layer("tuned_conv").get_weights()[0], tuned0)  # phase 2 trained it
    assert cv.oof_plain.shape == cv.oof.shape and not np.allclose(cv.oof_plain, cv.oof)
"""


def test_head_warmup_then_fine_tune_keeps_the_freeze_policy_and_compiles_once_per_phase(tmp_path):
    """Phase 1 trains only the head on a frozen base; phase 2 restores the policy's flags;
    each phase's model is compiled once and reused by every fold."""
    scope = {}
    exec(compile(TWO_PHASES, "TWO_PHASES", "exec"), scope)
    scope["two_phases"](tmp_path)


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_two_phase_reuse_under_jax(tmp_path):
    """Under JAX a compiled step is tied to which variables train: reusing one per phase
    must still freeze the base in the head phase and train it in the next, fold after fold."""
    code = TWO_PHASES + "\nimport pathlib, sys; two_phases(pathlib.Path(sys.argv[1]))\nprint('two phases ok')"
    assert "two phases ok" in run_under_jax(code, tmp_path, timeout=600)


def test_a_reused_model_is_compiled_once_and_its_optimizer_reset_per_fold(tmp_path, monkeypatch):
    """Folds sharing one model keep its compiled train step (the resident-images wrapper
    built once); each fold starts from zero optimizer state."""
    import keras
    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp)))
    initial = model.get_weights()
    trainers, seen = [], []
    wrap = resident.training_model
    monkeypatch.setattr(resident, "training_model", lambda *a, **k: trainers.append(wrap(*a, **k)) or trainers[-1])

    def build():
        model.set_weights(initial)
        opt = getattr(trainers[0], "optimizer", None) if trainers else None
        seen.append((opt, int(opt.iterations) if opt is not None else None))
        return model

    x, y = toy_images(48)
    train.cross_validate(build, x, y, np.arange(48) % 3, None, train_params(epochs=2), tmp_path)
    assert len(trainers) == 1
    opts = [o for o, _ in seen[1:]]
    assert len(set(map(id, opts))) == 1 and opts[0] is not None  # no recompile after the first fold
    steps = -(-32 // 16)
    assert int(trainers[0].optimizer.iterations) == 2 * steps  # reset, not 3 folds' worth
    assert [it for _, it in seen[1:]] == [2 * steps, 2 * steps]  # each fold ended at its own count


def test_mixup_cutmix_train_on_the_device_with_one_wrapper_for_all_folds(tmp_path, monkeypatch):
    """MixUp/CutMix: folds share one training wrapper (one compiled step, optimizer reset);
    the classifier it wraps learns, is validated and is what gets saved."""
    import keras
    inp = keras.Input((16, 16, 3))
    x_ = keras.layers.Rescaling(1 / 255)(inp)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x_)))
    initial = model.get_weights()
    trainers, fitted = [], []
    wrap, wrap_resident = mixing.training_model, resident.training_model
    monkeypatch.setattr(mixing, "training_model", lambda *a, **k: trainers.append(wrap(*a, **k)) or trainers[-1])
    monkeypatch.setattr(resident, "training_model",
                        lambda *a, **k: fitted.append(wrap_resident(*a, **k)) or fitted[-1])

    def build():
        model.set_weights(initial)
        return model

    x, y = toy_images(48)
    P = train_params(epochs=20, lr=0.1, mixup=0.4, cutmix=1.0, class_weight="balanced", monitor="last")
    cv = train.cross_validate(build, x, y, np.arange(48) % 3, None, P, tmp_path)
    assert len(trainers) == len(fitted) == 1  # built in fold 0, reused by folds 1 and 2
    assert trainers[0] in fitted[0].layers  # the fitted model gathers images for the mixing wrapper
    assert int(fitted[0].optimizer.iterations) == 20 * 2  # reset per fold: one fold's steps
    assert (cv.oof.argmax(1) == y).mean() > 0.9
    assert {"loss", "accuracy", "val_auc"} <= set(cv.history.columns)
    saved = keras.saving.load_model(tmp_path / "fold2" / "model.keras")  # the classifier, not the wrapper
    np.testing.assert_allclose(saved.predict(x[2::3], verbose=0), cv.oof[2::3], rtol=1e-4, atol=1e-5)


def test_every_batch_has_one_shape_so_each_step_is_traced_once(tmp_path, monkeypatch):
    """Uneven folds, a short last batch and TTA still give one train and one predict trace:
    a second shape would mean a second XLA compile (20-70 s for a big backbone on a GPU)."""
    import keras
    shapes = {"train": set(), "predict": set()}

    def first_shape(data):
        return tuple(keras.tree.flatten(data)[0].shape)

    class Counting(keras.Model):
        def predict_step(self, *a):  # (data) under TensorFlow, (state, data) under JAX
            shapes["predict"].add(first_shape(a[-1]))
            return super().predict_step(*a)

    def counting_trainer(*a, **k):  # the fitted model gets its images' row indices
        trainer = wrap(*a, **k)
        step = trainer.train_step
        # train_step(data) under TensorFlow, train_step(state, data) under JAX
        trainer.train_step = lambda *a: shapes["train"].add(first_shape(a[-1])) or step(*a)
        return trainer
    wrap = resident.training_model
    monkeypatch.setattr(resident, "training_model", counting_trainer)

    inp = keras.Input((16, 16, 3))
    model = Counting(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp)))
    initial = model.get_weights()

    def build():
        model.set_weights(initial)
        return model

    x, y = toy_images(50)  # 3 folds: 33/33/34 training and 17/17/16 validation images, batches of 16
    cv = train.cross_validate(build, x, y, np.arange(50) % 3, x[:5], train_params(epochs=2, tta=True), tmp_path)
    assert shapes == {"train": {(16,)}, "predict": {(16, 16, 16, 3)}}
    assert cv.oof.shape == (50, 2) and cv.test.shape == (5, 2) and not np.isnan(cv.oof).any()


def test_padded_prediction_equals_plain_prediction():
    import keras
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp)))
    x = np.random.default_rng(1).integers(0, 255, (13, 8, 8, 3)).astype(np.uint8)
    assert batching.pad_to_batches(x, 5).shape[0] == 15 and batching.pad_to_batches(x, 13) is x
    np.testing.assert_allclose(tta.predict_proba(model, x, batch_size=5),
                               model.predict(x.astype("float32"), batch_size=13, verbose=0), rtol=1e-5, atol=1e-6)


def test_probe_head_init_starts_each_fold_from_its_own_probe(tmp_path, monkeypatch):
    """head_init=probe: before any training step each fold's head is the probe fitted on that
    fold's training images only (never its validation images); default params keep old signatures."""
    from cellclf_utils.model import backbones
    from cellclf_utils.shallow import probe
    keras.utils.set_random_seed(0)
    model = backbones.build("mobilenet_v2", 32, 2, weights="none", unfreeze_from="none")
    initial = model.get_weights()
    x, y = toy_images(48, 32)
    fold_of = np.arange(48) % 3
    fitted = []
    fit_head = probe.fit_head

    def spy(m, features, xs, ys, n_classes, **k):
        fitted.append(xs.copy())
        acc = fit_head(m, features, xs, ys, n_classes, **k)
        fitted.append(m.get_layer("probs").get_weights()[0].copy())
        return acc
    monkeypatch.setattr(probe, "fit_head", spy)
    starts = []
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **k: starts.append(  # the head when fit starts
        model.get_layer("probs").get_weights()[0].copy()) or keras.callbacks.History())

    def build():
        model.set_weights(initial)
        return model
    P = train_params(epochs=1, head_init="probe", monitor="last")
    train.cross_validate(build, x, y, fold_of, None, P, tmp_path)
    for f, xs in enumerate(fitted[0::2]):  # the fold's training split, never its validation images
        np.testing.assert_array_equal(xs, x[fold_of != f])
    for probe_w, start in zip(fitted[1::2], starts):
        np.testing.assert_array_equal(probe_w, start)
    assert not np.array_equal(starts[0], starts[1])  # refitted per fold
    assert train.signature(train_params(head_init="random")) == train.signature(train_params())
    assert train.signature(P) != train.signature(train_params(epochs=1, monitor="last"))


def test_cross_validation_leaves_the_precision_policy_as_it_found_it(tmp_path):
    # keras.backend.clear_session() resets the global dtype policy to float32: a model built
    # after a cross-validation (a second teacher, a benchmark's next model) would lose bf16
    x, y = toy_images(32)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        train.cross_validate(lambda: cnn.baseline_cnn(16, 2, dropout=0.0), x, y, np.arange(32) % 2, None,
                             train_params(epochs=1, monitor="last"), tmp_path)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
