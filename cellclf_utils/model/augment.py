"""Training-time augmentation as Keras preprocessing layers.

The layers sit inside the model, so they run on the same device as the training step
(GPU too) and are inactive at inference. They take and return (B, H, W, 3) float images in
the 0..255 range; models do their own rescaling afterwards.

Presets (``describe(preset)`` gives the one-line version used in notebooks and reports):

- ``none``: no layers.
- ``basic``: the write-up's geometry toned down so cells stay in frame.
- ``seed``: the write-up's ImageDataGenerator geometry as it was (wrap fill, 90% shifts).
- ``strong``: ``basic`` geometry plus stain (HED), colour, blur and noise jitter, the extra
  augmentation the write-up's author listed but did not get to.
- ``trivial``: ``basic`` geometry plus ONE photometric operation per image, drawn uniformly
  with a strength drawn uniformly up to its maximum (TrivialAugment, Müller & Hutter 2021;
  no policy searched or tuned), among operations that keep a stained cell a stained cell.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from ..data.colour import HED_FROM_RGB, RGB_FROM_HED

PRESETS = ("none", "basic", "seed", "strong", "trivial")

# `strong` magnitudes, moderate on purpose: colour carries class evidence (hyperchromatic
# nuclei), so jitter should look like stain-batch variation, not recolour the cell.
HED_SCALE = 0.1          # each stain's amount x U(0.9, 1.1) per image
HED_SHIFT = 0.02         # plus U(-0.02, 0.02) optical density (natural log) per stain
BRIGHTNESS = 0.1         # + U(-0.1, 0.1) x 255 grey levels
CONTRAST = 0.2           # contrast x U(0.8, 1.2) around the image mean
SATURATION = (0.43, 0.57)  # Keras' scale, 0.5 = unchanged: saturation x U(0.75, 1.33)
BLUR = 0.5               # blur probability per image ~ U(0, 0.5), i.e. ~25% of images blurred
BLUR_SIGMA = (0.1, 1.0)  # 3x3 Gaussian kernel, sigma drawn per batch
NOISE = 4.0              # additive Gaussian noise, sd in grey levels


@keras.saving.register_keras_serializable(package="cellclf")
class HEDJitter(layers.Layer):
    """Perturb the haematoxylin, eosin and DAB stain amounts of 0..255 RGB images.

    RGB -> optical density OD = -ln((I + 1) / 256) -> stain concentrations (``data.colour``'s
    optical density and Ruifrok-Johnston matrix, in keras.ops) -> per image and stain: c * U(1 - scale, 1 + scale) + U(-shift, shift) ->
    back to RGB, clipped to 0..255. Identity at inference (``training=False``) and when
    ``scale == shift == 0`` (up to float rounding). Backend-agnostic (keras.ops/keras.random).
    """

    def __init__(self, scale: float = HED_SCALE, shift: float = HED_SHIFT, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= scale <= 1 or shift < 0:
            raise ValueError(f"HEDJitter needs 0 <= scale <= 1 and shift >= 0 (got {scale}, {shift})")
        self.scale, self.shift, self.seed = float(scale), float(shift), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        images = ops.cast(images, self.compute_dtype)
        if not training:
            return images
        # float32 whatever the policy: log/exp of 0..255 data are too coarse in float16
        x = ops.cast(images, "float32")
        stains = ops.matmul(-ops.log((x + 1.0) / 256.0), ops.convert_to_tensor(HED_FROM_RGB))
        shape = tuple(ops.shape(x)[:-3]) + (1, 1, 3)  # one draw per image and stain
        alpha = keras.random.uniform(shape, 1.0 - self.scale, 1.0 + self.scale, seed=self.seed_generator)
        beta = keras.random.uniform(shape, -self.shift, self.shift, seed=self.seed_generator)
        od = ops.matmul(stains * alpha + beta, ops.convert_to_tensor(RGB_FROM_HED))
        return ops.cast(ops.clip(256.0 * ops.exp(-od) - 1.0, 0.0, 255.0), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "shift": self.shift, "seed": self.seed}


@keras.saving.register_keras_serializable(package="cellclf")
class PixelNoise(layers.Layer):
    """Add Gaussian noise of ``stddev`` grey levels and clip to 0..255 in training; identity
    at inference. (keras.layers.GaussianNoise caps stddev at 1, i.e. assumes 0..1 data.)"""

    def __init__(self, stddev: float = NOISE, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if stddev < 0:
            raise ValueError(f"PixelNoise stddev must be >= 0 (got {stddev})")
        self.stddev, self.seed = float(stddev), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        images = ops.cast(images, self.compute_dtype)
        if not training:
            return images
        noise = keras.random.normal(ops.shape(images), stddev=self.stddev, seed=self.seed_generator,
                                    dtype=self.compute_dtype)
        return ops.clip(images + noise, 0.0, 255.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


# `trivial`: each operation's strength at its maximum (drawn per image from 0 to it, either sign)
TRIVIAL_MAX = {"identity": 0.0, "stain": 0.3, "brightness": 0.25, "contrast": 0.5, "saturation": 0.5,
               "blur": 1.0, "sharpness": 1.0, "noise": 12.0}
_BOX = np.full((3, 3, 3, 1), 1 / 9, np.float32)  # 3x3 mean per channel


@keras.saving.register_keras_serializable(package="cellclf")
class TrivialColour(layers.Layer):
    """One photometric operation per 0..255 image, drawn uniformly from ``TRIVIAL_MAX``'s, at a
    strength ~ U(0, max) with a random sign: identity; the three stain amounts (HED) each
    x (1 ± s); brightness ± s x 255; contrast and saturation x (1 ± s) around the image's mean
    and each pixel's grey; a 3x3 blur mixed in by s; sharpening by s; Gaussian noise of sd s.
    Every operation is computed for the batch and each image keeps its own: cheap next to the
    network, one traced graph under every backend. Identity at inference."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _stain(self, x, s):
        stains = ops.matmul(-ops.log((x + 1.0) / 256.0), ops.convert_to_tensor(HED_FROM_RGB))
        sign = ops.sign(keras.random.uniform(ops.shape(s)[:-1] + (3,), -1.0, 1.0, seed=self.seed_generator))
        od = ops.matmul(stains * (1.0 + s * sign), ops.convert_to_tensor(RGB_FROM_HED))
        return 256.0 * ops.exp(-od) - 1.0

    def _operations(self, x, s, sign):
        """Return every operation's result on the batch, in ``TRIVIAL_MAX``'s order."""
        grey, mean = ops.mean(x, axis=-1, keepdims=True), ops.mean(x, axis=(1, 2, 3), keepdims=True)
        blurred = ops.depthwise_conv(ops.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect"),
                                     ops.convert_to_tensor(_BOX), padding="valid")
        m = TRIVIAL_MAX
        return [x, self._stain(x, s * m["stain"]), x + sign * s * m["brightness"] * 255.0,
                mean + (x - mean) * (1.0 + sign * s * m["contrast"]),
                grey + (x - grey) * (1.0 + sign * s * m["saturation"]),
                x + (blurred - x) * s * m["blur"], x + (x - blurred) * s * m["sharpness"],
                x + keras.random.normal(ops.shape(x), seed=self.seed_generator) * s * m["noise"]]

    def call(self, images, training=True):
        images = ops.cast(images, self.compute_dtype)
        if not training:
            return images
        x = ops.cast(images, "float32")  # float32 whatever the policy, as HEDJitter
        per_image = tuple(ops.shape(x)[:-3]) + (1, 1, 1)
        s = keras.random.uniform(per_image, 0.0, 1.0, seed=self.seed_generator)
        sign = ops.sign(keras.random.uniform(per_image, -1.0, 1.0, seed=self.seed_generator))
        choice = keras.random.randint(per_image, 0, len(TRIVIAL_MAX), seed=self.seed_generator)
        out = ops.zeros_like(x)
        for k, result in enumerate(self._operations(x, s, sign)):
            out = out + ops.cast(ops.equal(choice, k), "float32") * result
        return ops.cast(ops.clip(out, 0.0, 255.0), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


FILL_MODES = ("reflect", "wrap", "constant", "nearest")


@keras.saving.register_keras_serializable(package="cellclf")
class RandomAffine(layers.Layer):
    """Random flips, rotation, shift and zoom of 0..255 images as ONE affine map per image,
    sampled once with bilinear interpolation; identity at inference.

    Why not Keras' RandomFlip/RandomRotation/RandomTranslation/RandomZoom: each resamples
    the image again, and under JAX their ``affine_transform`` interpolates in 3-D over
    (row, column, channel) with ``jax.scipy.ndimage.map_coordinates``; on an H100 a batch of
    32 images at 299 px took ~1.3 s per training step with them, against ~20 ms for the
    network itself. Here: 4 gathers of whole pixels per output pixel, with keras.ops only,
    so it compiles the same under TensorFlow, JAX and PyTorch.

    rotation: fraction of a full turn, angle ~ U(-rotation, rotation) x 360° (Keras' factor).
    shift: fraction of the side, per axis ~ U(-shift, shift). zoom: scale ~ U(1 - zoom,
    1 + zoom), the same for both axes unless ``independent_zoom``. flip: each axis flipped
    with probability 1/2. fill_mode: reflect (edge pixel repeated, as Keras), wrap, constant
    (0) or nearest, for pixels that map from outside the image.
    """

    def __init__(self, rotation: float = 0.0, shift: float = 0.0, zoom: float = 0.0, flip: bool = True,
                 fill_mode: str = "reflect", independent_zoom: bool = False, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if fill_mode not in FILL_MODES:
            raise ValueError(f"fill_mode must be one of {', '.join(FILL_MODES)} (got {fill_mode!r})")
        if not (0 <= rotation <= 0.5 and 0 <= shift <= 1 and 0 <= zoom < 1):
            raise ValueError(f"RandomAffine needs 0 <= rotation <= 0.5, 0 <= shift <= 1, 0 <= zoom < 1 "
                             f"(got {rotation}, {shift}, {zoom})")
        self.rotation, self.shift, self.zoom = float(rotation), float(shift), float(zoom)
        self.flip, self.fill_mode, self.independent_zoom, self.seed = bool(flip), fill_mode, bool(independent_zoom), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _draw(self, n, low, high):
        return keras.random.uniform((n,), low, high, seed=self.seed_generator)

    def transforms(self, batch) -> tuple:
        """Return per-image (a, b, c, d, tx, ty): source = [[a, b], [c, d]] @ target - t x side,
        in pixels from the image centre (x = column, y = row); t > 0 moves content right/down."""
        angle = self._draw(batch, -self.rotation, self.rotation) * (2 * np.pi)
        zx = self._draw(batch, 1 - self.zoom, 1 + self.zoom)
        zy = self._draw(batch, 1 - self.zoom, 1 + self.zoom) if self.independent_zoom else zx
        one = ops.ones((batch,))
        fx = ops.where(self._draw(batch, 0, 1) < 0.5, -one, one) if self.flip else one
        fy = ops.where(self._draw(batch, 0, 1) < 0.5, -one, one) if self.flip else one
        tx, ty = self._draw(batch, -self.shift, self.shift), self._draw(batch, -self.shift, self.shift)
        cos, sin = ops.cos(angle), ops.sin(angle)
        # target -> flip -> rotate -> 1/zoom (zoom > 1 magnifies) -> shift
        return cos * fx / zx, -sin * fy / zx, sin * fx / zy, cos * fy / zy, tx, ty

    def _index(self, i, n):
        """Return (index inside 0..n-1, 1 where the pixel exists / 0 for constant fill)."""
        if self.fill_mode == "wrap":
            return i % n, None
        if self.fill_mode == "reflect":  # d c b a | a b c d | d c b a
            m = i % (2 * n)
            return ops.where(m < n, m, 2 * n - 1 - m), None
        inside = ops.cast((i >= 0) & (i < n), "float32")
        return ops.clip(i, 0, n - 1), (inside if self.fill_mode == "constant" else None)

    def call(self, images, training=True):
        images = ops.cast(images, self.compute_dtype)
        if not training:
            return images
        batch, h, w, ch = ops.shape(images)
        a, b, c, d, tx, ty = (ops.reshape(t, (-1, 1, 1)) for t in self.transforms(batch))
        # target pixel grid, centred
        ys = ops.reshape(ops.arange(h, dtype="float32") - (h - 1) / 2, (1, h, 1))
        xs = ops.reshape(ops.arange(w, dtype="float32") - (w - 1) / 2, (1, 1, w))
        sx = a * xs + b * ys + (w - 1) / 2 - tx * w
        sy = c * xs + d * ys + (h - 1) / 2 - ty * h
        x0, y0 = ops.floor(sx), ops.floor(sy)
        wx, wy = sx - x0, sy - y0
        x0, y0 = ops.cast(x0, "int32"), ops.cast(y0, "int32")
        flat = ops.reshape(ops.cast(images, "float32"), (-1, ch))
        base = ops.reshape(ops.arange(batch, dtype="int32") * (h * w), (-1, 1, 1))
        out = 0.0
        for dy, dx, weight in ((0, 0, (1 - wy) * (1 - wx)), (0, 1, (1 - wy) * wx),
                               (1, 0, wy * (1 - wx)), (1, 1, wy * wx)):
            xi, x_in = self._index(x0 + dx, w)
            yi, y_in = self._index(y0 + dy, h)
            if x_in is not None:
                weight = weight * x_in * y_in
            pixels = ops.take(flat, ops.reshape(base + yi * w + xi, (-1,)), axis=0)
            out = out + ops.reshape(pixels, (batch, h, w, ch)) * weight[..., None]
        return ops.cast(ops.clip(out, 0.0, 255.0), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "shift": self.shift, "zoom": self.zoom,
                "flip": self.flip, "fill_mode": self.fill_mode, "independent_zoom": self.independent_zoom,
                "seed": self.seed}


def _check(preset: str, grayscale: float) -> None:
    """Raise ValueError naming the parameter and its allowed values."""
    if preset not in PRESETS:
        raise ValueError(f"parameter 'augment' must be one of {', '.join(PRESETS)} (got {preset!r})")
    if not 0.0 <= grayscale <= 1.0:
        raise ValueError(f"parameter 'grayscale' must be a probability in [0, 1] (got {grayscale!r})")
    if grayscale and preset != "strong":
        raise ValueError(f"parameter 'grayscale' applies to augment='strong' only (got augment={preset!r})")


def _basic(seed: int) -> list:
    """Return the `basic` geometry: both flips, rotation ±90°, shift ±10%, zoom ±10%,
    reflected borders, as one affine map (the magnitudes of Keras' RandomFlip/Rotation/
    Translation/Zoom layers that stage 02 first used)."""
    return [RandomAffine(rotation=0.25, shift=0.1, zoom=0.1, flip=True, fill_mode="reflect", seed=seed)]


def _seed(seed: int) -> list:
    """Return the write-up's ImageDataGenerator geometry, reproduced faithfully.

    rotation_range=90 -> U(-90°, 90°); width/height_shift_range=0.9 with fill_mode='wrap' ->
    a cyclic shift of up to 90% per axis (content leaving one edge re-enters at the other,
    so cells can be cut and re-joined across the border, as in the original); zoom_range=0.4
    -> independent x and y scale in U(0.6, 1.4); both flips. Like the generator, one
    combined affine map per image, wrapped once.
    """
    return [RandomAffine(rotation=0.25, shift=0.9, zoom=0.4, flip=True, fill_mode="wrap",
                         independent_zoom=True, seed=seed)]


def _strong(seed: int, grayscale: float) -> list:
    """Return colour jitter (stain first, as the slide would vary), `basic` geometry, the
    optics/sensor part (blur, then noise clipped to 0..255) and optional grayscale last, so
    a grey image stays exactly grey."""
    out = [
        HEDJitter(HED_SCALE, HED_SHIFT, seed=seed + 10),
        layers.RandomBrightness(BRIGHTNESS, value_range=(0, 255), seed=seed + 11),
        layers.RandomContrast(CONTRAST, value_range=(0, 255), seed=seed + 12),
        layers.RandomSaturation(SATURATION, value_range=(0, 255), seed=seed + 13),
        *_basic(seed),
        layers.RandomGaussianBlur(BLUR, kernel_size=3, sigma=BLUR_SIGMA, value_range=(0, 255), seed=seed + 14),
        PixelNoise(NOISE, seed=seed + 15),
    ]
    if grayscale:  # the write-up wondered whether grey inputs can still use ImageNet weights
        out.append(layers.RandomGrayscale(grayscale, seed=seed + 16))
    return out


def _trivial(seed: int) -> list:
    """Return `basic` geometry after one photometric operation per image (TrivialColour)."""
    return [TrivialColour(seed=seed + 20), *_basic(seed)]


def pipeline(preset: str, seed: int = 0, grayscale: float = 0.0) -> keras.Sequential | None:
    """Return the augmentation layers for ``preset`` as one Sequential (None for 'none').

    ``grayscale`` (``strong`` only) is the probability of turning an image grey (3 equal
    channels). Called outside ``fit``/``predict`` it augments unless ``training=False``.
    """
    _check(preset, grayscale)
    if preset == "none":
        return None
    built = {"basic": lambda: _basic(seed), "seed": lambda: _seed(seed),
             "strong": lambda: _strong(seed, grayscale), "trivial": lambda: _trivial(seed)}[preset]()
    return keras.Sequential(built, name=f"augment_{preset}")


def describe(preset: str, grayscale: float = 0.0) -> str:
    """Return a one-line human description of ``preset`` (for notebooks and reports)."""
    _check(preset, grayscale)
    basic = "flips, rotation ±90°, shift ±10%, zoom ±10% (reflected borders)"
    if preset == "none":
        return "none: no augmentation"
    if preset == "basic":
        return f"basic: {basic}"
    if preset == "seed":
        return ("seed (write-up's ImageDataGenerator): flips, rotation ±90°, cyclic shift up to 90% "
                "(wrap), zoom 0.6-1.4x per axis (wrap)")
    if preset == "trivial":
        ops_text = ", ".join(f"{k} {v:g}" for k, v in TRIVIAL_MAX.items() if v)
        return (f"trivial (TrivialAugment): {basic}; one of identity or {ops_text} (largest strength) per "
                "image, at a uniform random strength")
    s_lo, s_hi = (f / (1 - f) for f in SATURATION)
    grey = f", grayscale p={grayscale:g}" if grayscale else ""
    return (f"strong: {basic}; HED stain jitter (x1±{HED_SCALE:g}, ±{HED_SHIFT:g} OD), "
            f"brightness ±{BRIGHTNESS:.0%}, contrast x1±{CONTRAST:g}, saturation x{s_lo:.2f}-{s_hi:.2f}, "
            f"3x3 blur (~{BLUR / 2:.0%} of images), noise sd {NOISE:g} grey levels{grey}")
