"""Grad-CAM: maps peak where the planted evidence is, match the closed form for a GAP head,
use each image's own fold model, and compute under TensorFlow, JAX and PyTorch (where installed)."""

import keras
import numpy as np
import pytest

from cellclf_utils.predict import gradcam
from cellclf_utils.model import cnn
from cellclf_utils.report import plots
from conftest import run_under


def red_detector(size=16, sign=1.0) -> keras.Model:
    """A chain model whose class 1 logit is ``sign`` x the mean redness (1x1 conv, GAP)."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(1, 1, use_bias=False, name="red")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, out)
    model.get_layer("red").set_weights([np.array([1.0, 0.0, 0.0]).reshape(1, 1, 3, 1)])
    model.get_layer("probs").set_weights([np.array([[0.0, sign]]), np.zeros(2)])
    return model


def red_corner(size=16) -> np.ndarray:
    img = np.zeros((1, size, size, 3), np.float32)
    img[0, :4, :4, 0] = 255.0  # red only in the top-left corner
    return img


def test_map_peaks_on_the_evidence_and_is_empty_against_it():
    model, img = red_detector(), red_corner()
    m = gradcam.heatmaps(model, img, [1])[0]
    assert m.shape == (16, 16) and m.max() == pytest.approx(1.0)
    assert m[:4, :4].mean() > 0.9 and m[8:, 8:].max() == 0
    # class 0 has no evidence here (its weight is 0): ReLU leaves nothing
    assert gradcam.heatmaps(model, img, [0])[0].max() == 0
    # evidence against a class (negative weight) is not drawn either
    assert gradcam.heatmaps(red_detector(sign=-1.0), img, [1])[0].max() == 0


def test_equals_class_activation_map_for_a_gap_head():
    # with GAP -> Dense, d logit_c / d A_k = W[k, c] / (h w), so Grad-CAM is CAM (Zhou 2016)
    keras.utils.set_random_seed(0)
    model = cnn.baseline_cnn(32, 3, pooling="gap")
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    classes = np.array([0, 1, 2, 1])
    got = gradcam.heatmaps(model, x, classes)
    s = gradcam.split(model)
    assert s.features[-1].name == "conv4"
    a = keras.ops.convert_to_numpy(gradcam._features(s, x))
    w = model.get_layer("probs").get_weights()[0]  # (K, C)
    import cv2
    for i, c in enumerate(classes):
        cam = np.maximum(a[i] @ w[:, c], 0)
        cam = cv2.resize(cam, (32, 32), interpolation=cv2.INTER_LINEAR)
        if cam.max() > 0:
            cam = cam / cam.max()
        np.testing.assert_allclose(got[i], cam, atol=1e-4)


def test_split_refuses_a_model_without_feature_maps():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError, match="no 4-D feature map"):
        gradcam.split(model)


def test_pick_cases_takes_the_most_confident_right_and_wrong_per_class():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([[.9, .1], [.6, .4], [.2, .8], [.3, .7], [.45, .55], [.95, .05]])
    cases = gradcam.pick_cases(y, p, np.array([0, 1, 0, 1, 0, 1]), per_class=1)
    assert list(cases["index"]) == [0, 2, 3, 5]
    assert list(cases.correct) == [True, False, True, False]
    assert list(cases.predicted) == [0, 1, 1, 0]
    assert cases.confidence.tolist() == pytest.approx([.9, .8, .7, .95])


def test_each_case_is_explained_by_its_own_fold_model(tmp_path):
    # fold 0's model finds class 1 in red, fold 1's in green: the same red image gets a map
    # only from fold 0's model
    m0, m1 = red_detector(), red_detector()
    m1.get_layer("red").set_weights([np.array([0.0, 1.0, 0.0]).reshape(1, 1, 3, 1)])
    for k, m in enumerate((m0, m1)):
        (tmp_path / f"fold{k}").mkdir()
        m.save(tmp_path / f"fold{k}" / "model.keras")
    x = np.concatenate([red_corner(), red_corner()])
    cases = gradcam.pick_cases(np.array([1, 1]), np.array([[.2, .8], [.1, .9]]), np.array([0, 1]), 2)
    maps = gradcam.explain_oof({k: tmp_path / f"fold{k}" / "model.keras" for k in (0, 1)}, x, cases)
    by_image = dict(zip(cases["index"], maps))
    assert by_image[0][:4, :4].mean() > 0.9 and by_image[1].max() == 0


def test_montage_draws_every_case(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3)).astype(np.uint8)
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([[.9, .1], [.6, .4], [.2, .8], [.3, .7], [.45, .55], [.95, .05]])
    cases = gradcam.pick_cases(y, p, np.zeros(6, int), per_class=2)
    maps = np.random.default_rng(1).random((len(cases), 16, 16))
    fig = plots.gradcam_montage(x, maps, cases, ["a", "b"], per_class=2)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == len(cases)
    assert sum(ax.title.get_color() == "tab:red" for ax in drawn) == int((~cases.correct).sum())
    plots.save(fig, tmp_path / "g.png")
    # a wrong case names the predicted class whole, long names too
    fig = plots.gradcam_montage(x, maps, cases, ["normal", "degenerated_severe"], per_class=2)
    wrong = [ax.title.get_text() for ax in fig.axes if ax.images and ax.title.get_color() == "tab:red"]
    assert wrong and all(t.split("\n")[0] in ("→normal", "→degenerated_severe") for t in wrong)


def test_montage_cells_line_up_when_a_class_has_no_right_case():
    x = np.zeros((4, 16, 16, 3), np.uint8)
    y = np.array([0, 0, 1, 1])
    p = np.array([[.2, .8], [.3, .7], [.1, .9], [.8, .2]])  # class a: never right
    cases = gradcam.pick_cases(y, p, np.zeros(4, int), per_class=2)
    fig = plots.gradcam_montage(x, np.zeros((len(cases), 16, 16)), cases, ["a", "b"], per_class=2)
    fig.canvas.draw()
    boxes = np.array([ax.get_position().bounds for ax in fig.axes])  # x0, y0, width, height
    # empty cells the size of image cells: columns line up across rows
    assert np.ptp(boxes[:, 2]) < 1e-6 and np.ptp(boxes[:, 3]) < 1e-6, boxes
    assert np.allclose(boxes[:4, 0], boxes[4:, 0]), boxes


_OTHER_BACKEND = """
import sys
import numpy as np, keras
assert keras.backend.backend() == sys.argv[1]
from test_gradcam import red_detector, red_corner
from cellclf_utils.predict import gradcam
from cellclf_utils.model import cnn
m = gradcam.heatmaps(red_detector(), red_corner(), [1])[0]
keras.utils.set_random_seed(0)
model = cnn.baseline_cnn(32, 3, augment_preset="seed")
x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
g = gradcam.heatmaps(model, x, [0, 2])
print(sys.argv[1], round(float(m[:4, :4].mean()), 3), float(m[8:, 8:].max()), g.shape, bool(np.isfinite(g).all()))
"""


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_computes_under_other_backends(backend):
    # each backend has its own gradient call (gradcam._gradient); torch is not a project
    # dependency (the GPU image has it), so its case runs where it is installed
    pytest.importorskip(backend)
    out = run_under(backend, _OTHER_BACKEND, backend)
    assert out.strip().splitlines()[-1] == f"{backend} 1.0 0.0 (2, 32, 32) True"
