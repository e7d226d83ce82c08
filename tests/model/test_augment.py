import keras
import numpy as np
import pytest
from skimage.color import rgb2hed, rgb_from_hed

from cellclf_utils.model import augment
from cellclf_utils.model.augment import HEDJitter
from conftest import run_under_jax

ACTIVE = [p for p in augment.PRESETS if p != "none"]


def _cells(n=8, size=32, seed=0):
    """Return 0..255 float32 images: a light background with one dark-blue blob, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 6) ** 2))[..., None]
        out[i] = 235 - blob * np.array([150, 140, 60]) + rng.normal(0, 5, (size, size, 3))
    out[:, 0, 0] = (0, 255, 128)  # the extremes of the range occur too
    return np.clip(out, 0, 255)


def _check_preset(aug, x, name):
    y = keras.ops.convert_to_numpy(aug(x, training=True))
    assert y.shape == x.shape, name
    assert np.issubdtype(y.dtype, np.floating), (name, y.dtype)
    assert y.min() >= 0 and y.max() <= 255, (name, y.min(), y.max())
    assert np.abs(y - x).mean() > 1.0, f"{name} did not change the images"
    z = keras.ops.convert_to_numpy(aug(x, training=False))
    assert np.array_equal(z, x), f"{name} is not the identity at inference"


@pytest.mark.parametrize("preset", augment.PRESETS)
def test_presets_keep_shape_and_range_and_are_identity_at_inference(preset):
    aug = augment.pipeline(preset, seed=1)
    if preset == "none":
        assert aug is None
        return
    _check_preset(aug, _cells(), preset)


JAX_PRESETS = """
import numpy as np, keras
assert keras.backend.backend() == "jax"
from cellclf_utils.model import augment
from test_augment import ACTIVE, _cells, _check_preset
x = _cells(4, 16)
y = np.arange(4) % 2
for preset in ACTIVE:
    _check_preset(augment.pipeline(preset, seed=1), x, preset)
    # inside a compiled model: the layers must trace under jax.jit
    inp = keras.Input((16, 16, 3))
    h = augment.pipeline(preset, seed=1)(inp)
    h = keras.layers.Rescaling(1 / 255)(h)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h))
    m = keras.Model(inp, out)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", jit_compile=True)
    losses = [float(m.train_on_batch(x, y)) for _ in range(2)]
    assert np.all(np.isfinite(losses)), (preset, losses)
    assert np.array_equal(m.predict(x, verbose=0), m.predict(x, verbose=0)), preset
    print(preset, "jax ok", losses)
"""


@pytest.mark.slow  # a fresh Python under another Keras backend: make test, not make test-fast
def test_presets_work_and_compile_under_jax():
    out = run_under_jax(JAX_PRESETS)
    assert all(f"{p} jax ok" in out for p in ACTIVE), out


def test_hed_jitter_without_strength_is_the_identity():
    x = _cells()
    y = keras.ops.convert_to_numpy(HEDJitter(0.0, 0.0, seed=0)(x, training=True))
    assert np.abs(y - x).max() <= 1.0


def _haematoxylin_only(n=6, size=24):
    """Return images made of haematoxylin alone (varying density), via Beer-Lambert."""
    dens = np.linspace(0.1, 1.5, size * size, dtype=np.float32).reshape(size, size, 1)
    od = dens * rgb_from_hed[0]  # skimage's matrix: an independent reference
    return np.repeat(np.clip(256 * np.exp(-od) - 1, 0, 255)[None], n, axis=0)


def test_hed_jitter_perturbs_the_stain_not_arbitrary_colour():
    x = _haematoxylin_only()
    y = keras.ops.convert_to_numpy(HEDJitter(0.3, 0.0, seed=0)(x, training=True))
    before, after = (rgb2hed(np.round(a).astype(np.uint8)) for a in (x, y))
    change = np.abs(after - before).mean(axis=(0, 1, 2))  # per stain channel H, E, D
    assert change[0] > 0.05 * before[..., 0].mean(), change
    assert change[1] < 0.1 * change[0] and change[2] < 0.1 * change[0], change
    # every image got its own haematoxylin scale within 1 ± 0.3
    ratio = after[..., 0].mean(axis=(1, 2)) / before[..., 0].mean(axis=(1, 2))
    assert np.all((ratio > 0.65) & (ratio < 1.35)) and ratio.std() > 0.01, ratio


@pytest.mark.parametrize("preset", ACTIVE)
def test_same_seed_same_batch_other_seed_other_batch(preset):
    x = _cells(4, 24)
    run = lambda seed: keras.ops.convert_to_numpy(augment.pipeline(preset, seed=seed)(x, training=True))
    a = run(7)
    assert np.array_equal(a, run(7))
    assert not np.array_equal(a, run(8))


def test_presets_resample_once_with_no_keras_geometry_layer():
    """Keras' geometric layers resample per layer and crawl under JAX on a GPU (1.3 s per
    step at 299 px on an H100): every preset uses one RandomAffine instead."""
    geometric = (keras.layers.RandomFlip, keras.layers.RandomRotation, keras.layers.RandomTranslation,
                 keras.layers.RandomZoom)
    for preset in ACTIVE:
        used = augment.pipeline(preset).layers
        assert not any(isinstance(l, geometric) for l in used), preset
        assert sum(isinstance(l, augment.RandomAffine) for l in used) == 1, preset
    basic, seed = augment.pipeline("basic").layers[0], augment.pipeline("seed").layers[0]
    assert (basic.rotation, basic.shift, basic.zoom, basic.fill_mode) == (0.25, 0.1, 0.1, "reflect")
    assert (seed.rotation, seed.shift, seed.zoom, seed.fill_mode, seed.independent_zoom) == \
        (0.25, 0.9, 0.4, "wrap", True)


class _Fixed(augment.RandomAffine):
    """RandomAffine with a given map (a, b, c, d, tx, ty) for every image."""

    def __init__(self, m, fill_mode="reflect"):
        super().__init__(fill_mode=fill_mode)
        self.m = m

    def transforms(self, batch):
        return tuple(keras.ops.full((batch,), float(v)) for v in self.m)


def _affine(m, x, fill_mode="reflect"):
    return keras.ops.convert_to_numpy(_Fixed(m, fill_mode)(x, training=True))


@pytest.mark.parametrize("fill_mode", augment.FILL_MODES)
def test_affine_identity_flips_and_quarter_turns_are_exact(fill_mode):
    x = _cells(3, 20)
    np.testing.assert_allclose(_affine((1, 0, 0, 1, 0, 0), x, fill_mode), x, atol=1e-3)
    np.testing.assert_allclose(_affine((-1, 0, 0, 1, 0, 0), x, fill_mode), x[:, :, ::-1], atol=1e-3)
    np.testing.assert_allclose(_affine((1, 0, 0, -1, 0, 0), x, fill_mode), x[:, ::-1], atol=1e-3)
    # source = [[0, -1], [1, 0]] @ target: a quarter turn, exactly np.rot90 of the rows/columns
    np.testing.assert_allclose(_affine((0, -1, 1, 0, 0, 0), x, fill_mode), np.rot90(x, 1, axes=(1, 2)),
                               atol=1e-3)


def test_affine_borders_wrap_reflect_and_fill():
    x = _cells(2, 20)
    shift = (1, 0, 0, 1, 0.25, 0)  # content moves 5 px to the right (source = target - 5)
    np.testing.assert_allclose(_affine(shift, x, "wrap"), np.roll(x, 5, axis=2), atol=1e-3)
    reflected = np.concatenate([x[:, :, 4::-1], x[:, :, :15]], axis=2)  # edge pixel repeated
    np.testing.assert_allclose(_affine(shift, x, "reflect"), reflected, atol=1e-3)
    filled = _affine(shift, x, "constant")
    assert np.all(filled[:, :, :5] == 0)
    np.testing.assert_allclose(filled[:, :, 5:], x[:, :, :15], atol=1e-3)
    np.testing.assert_allclose(_affine(shift, x, "nearest")[:, :, :5], np.repeat(x[:, :, :1], 5, axis=2),
                               atol=1e-3)
    # a half-pixel shift blends neighbours bilinearly
    half = _affine((1, 0, 0, 1, 0.5 / 20, 0), x, "wrap")
    np.testing.assert_allclose(half, (x + np.roll(x, 1, axis=2)) / 2, atol=1e-2)


def test_affine_rejects_bad_settings():
    with pytest.raises(ValueError, match="fill_mode"):
        augment.RandomAffine(fill_mode="mirror")
    with pytest.raises(ValueError, match="zoom"):
        augment.RandomAffine(zoom=1.5)


def test_strong_grayscale_option_gives_grey_images():
    x = _cells(4, 24)
    y = keras.ops.convert_to_numpy(augment.pipeline("strong", seed=0, grayscale=1.0)(x, training=True))
    assert np.allclose(y[..., 0], y[..., 1], atol=1e-3) and np.allclose(y[..., 1], y[..., 2], atol=1e-3)
    assert not any(isinstance(l, keras.layers.RandomGrayscale) for l in augment.pipeline("strong").layers)


def test_descriptions_are_one_line_and_distinct():
    texts = [augment.describe(p) for p in augment.PRESETS]
    assert all(t and "\n" not in t for t in texts) and len(set(texts)) == len(texts)
    assert "wrap" in augment.describe("seed") and "HED" in augment.describe("strong")


@pytest.mark.parametrize("call", [lambda: augment.pipeline("heavy"), lambda: augment.describe("heavy"),
                                  lambda: augment.pipeline(None)])
def test_unknown_preset_names_the_parameter_and_choices(call):
    with pytest.raises(ValueError, match=r"^parameter 'augment' must be one of none, basic, seed, strong"):
        call()


def test_grayscale_is_a_strong_only_probability():
    with pytest.raises(ValueError, match="grayscale"):
        augment.pipeline("basic", grayscale=0.5)
    with pytest.raises(ValueError, match="grayscale"):
        augment.pipeline("strong", grayscale=1.5)


def test_trivial_changes_each_image_by_one_operation_at_most_its_largest_strength():
    """TrivialColour alone (no geometry): about 1 image in 8 draws the identity and is left as
    it was; the rest change, by strengths drawn from nothing to a lot."""
    x = np.repeat(_cells(8, 16), 16, axis=0)  # 128 images
    layer = augment.TrivialColour(seed=3)
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    unchanged = np.all(y == x, axis=(1, 2, 3))
    assert 0.03 < unchanged.mean() < 0.3, unchanged.mean()
    assert y.min() >= 0 and y.max() <= 255
    change = np.abs(y - x).mean(axis=(1, 2, 3))[~unchanged]
    assert change.min() < 2 and change.max() > 10, (change.min(), change.max())
    # the geometry follows in the preset: one colour operation, then one affine map
    used = augment.pipeline("trivial").layers
    assert [type(l) for l in used] == [augment.TrivialColour, augment.RandomAffine]
