import numpy as np
import pandas as pd
import pytest

from cellclf_utils.train import pseudo, cross_validation as train


def test_select_keeps_confident_images_and_caps_each_class():
    p = np.array([[0.95, 0.05], [0.91, 0.09], [0.97, 0.03], [0.5, 0.5], [0.02, 0.98], [0.2, 0.8]])
    assert pseudo.select(p, 0.9).tolist() == [0, 1, 2, 4]
    assert pseudo.select(p, 0.9, per_class_cap=1).tolist() == [2, 4]  # the most confident of class 0
    assert pseudo.select(p, 0.99).tolist() == []
    np.testing.assert_array_equal(pseudo.targets(p[:2], soft=False), [[1, 0], [1, 0]])
    np.testing.assert_allclose(pseudo.targets(p[:2], soft=True), p[:2])


def test_a_student_trains_with_its_teachers_parameters_and_only_the_noise_it_is_given():
    teacher = {"augment": "basic", "dropout": 0.5, "lr": 3e-4}
    assert pseudo.student_params(teacher, {"student_augment": "", "student_dropout": -1}) == teacher
    noisy = pseudo.student_params(teacher, {"student_augment": "trivial", "student_dropout": 0.0})
    assert noisy == {"augment": "trivial", "dropout": 0.0, "lr": 3e-4}  # dropout 0 is a rate, not "unset"
    assert teacher["augment"] == "basic"  # the teacher's parameters are not changed


def test_a_test_copy_of_a_validation_image_never_teaches_that_fold():
    """Planted ids: test image t1 copies training image a (fold 0), t2 copies b (fold 1)."""
    dupes = pd.DataFrame({"test_id": ["t1", "t2"], "train_id": ["a", "b"], "distance": [0, 0]})
    blocked = pseudo.blocked_by_fold(dupes, {"a": 0, "b": 1, "c": 0}, ["t0", "t1", "t2"])
    assert blocked == {0: {1}, 1: {2}}
    confident = np.array([[0.99, 0.01]] * 3)
    x_test = np.arange(3).reshape(3, 1, 1, 1).astype(np.uint8)
    extras = pseudo.fold_extras({0: confident, 1: confident}, x_test, 0.9, 0, False, blocked)
    assert extras[0][2].tolist() == [0, 2] and extras[1][2].tolist() == [0, 1]
    assert extras[0][0].ravel().tolist() == [0, 2]  # the images themselves, not just indices


def test_label_accuracy_counts_every_fold():
    proba = {0: np.array([[0.9, 0.1], [0.1, 0.9]]), 1: np.array([[0.9, 0.1], [0.9, 0.1]])}
    extras = {0: (None, None, np.array([0, 1])), 1: (None, None, np.array([1]))}
    assert pseudo.label_accuracy(proba, extras, np.array([0, 1])) == pytest.approx(2 / 3)
    assert pseudo.label_accuracy(proba, extras, None) is None


def test_extra_images_join_the_training_split_only(tmp_path, monkeypatch):
    """What each fold's fit sees: its training split plus its own pseudo-labelled images,
    never a validation image (all images are distinct, so rows can be traced)."""
    import keras
    seen = {}
    fit = keras.Model.fit

    def recording_fit(self, *args, **kwargs):
        # the fitted model gathers its images from the resident store by row index
        store = keras.ops.convert_to_numpy(self.get_layer("training_images").images)
        seen.setdefault(model._fold, []).append(store[np.asarray(kwargs["x"])])
        return fit(self, *args, **kwargs)
    monkeypatch.setattr(keras.Model, "fit", recording_fit)

    inp = keras.Input((4, 4, 3))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inp)))
    initial = model.get_weights()
    x = np.arange(24 * 48, dtype=np.int64).reshape(24, 4, 4, 3) % 251  # distinct images
    x = (x + np.arange(24)[:, None, None, None]).astype(np.uint8)
    y = np.arange(24) % 2
    fold_of = (np.arange(24) // 2) % 3
    extra_imgs = {k: np.full((2, 4, 4, 3), 200 + k, np.uint8) for k in range(3)}
    calls = iter(range(3))

    def build():
        model.set_weights(initial)
        model._fold = next(calls)
        return model

    P = {"seed": 0, "optimizer": "adam", "lr": 1e-2, "monitor": "last", "batch_size": 8, "epochs": 1,
         "schedule": "constant", "tta": False, "class_weight": "none"}
    train.cross_validate(build, x, y, fold_of, None, P, tmp_path,
                         extra_for_fold=lambda k: (extra_imgs[k], np.eye(2, dtype="float32")[[0, 1]]))
    key = lambda a: a.tobytes()
    for k in range(3):
        rows = {key(r) for r in seen[k][0]}
        assert not rows & {key(r) for r in x[fold_of == k]}, f"fold {k} trained on a validation image"
        assert {key(r) for r in x[fold_of != k]} <= rows
        assert key(extra_imgs[k][0]) in rows and not any(key(extra_imgs[j][0]) in rows for j in range(3) if j != k)
