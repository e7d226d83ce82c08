"""ImageNet backbones from ``keras.applications`` for the fine-tuning stages (03-05).

``build`` wraps a backbone (``include_top=False``) into the series' model: 0..255 RGB input,
optional augmentation, the backbone's own preprocessing as a layer (so it runs on the
device and is saved with the model), the base, global pooling, dropout and a softmax head.
``apply_freeze`` sets the write-up's freeze policies; ``REGISTRY`` holds their defaults.
"""
from __future__ import annotations

import difflib
import os
import socket
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
from keras import layers, ops

from .augment import pipeline as augment_pipeline
from .cnn import POOLING

# the host keras.applications downloads ImageNet weights from; tests point these elsewhere
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
PROBE_TIMEOUT_S = 5.0
OFFLINE_WEIGHTS = "../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5"
# the weights values that name no file; auto: ImageNet when they can be had, else none
NAMED_WEIGHTS = ("imagenet", "auto", "none")


@dataclass(frozen=True)
class Backbone:
    name: str                  # registry key
    constructor: str           # keras.applications attribute, e.g. "Xception"
    min_size: int              # smallest square input keras accepts without top
    native_size: int           # ImageNet training size
    unfreeze_from: str         # default freeze policy (see apply_freeze)
    train_bn_in_frozen: bool   # default: BatchNormalization stays trainable in the frozen part
    module: str                # keras.applications submodule holding preprocess_input
    mode: str | None           # imagenet_utils mode: caffe, tf, torch; None = built into the model
    weights_file: str          # Keras' cached no-top file name ({size}: see weights_file())


REGISTRY: dict[str, Backbone] = {b.name: b for b in (
    # the write-up: layers from block5_conv1 on trainable (the last conv block)
    Backbone("vgg16", "VGG16", 32, 224, "block5_conv1", False, "vgg16", "caffe",
             "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    # the write-up: index <= 108 frozen except BatchNormalization, after 108 trainable.
    # In Keras 3 (as in Keras 2) layer 108 is block12_sepconv1_bn, so block12_sepconv2
    # (index 110) is the first trainable conv: the last middle-flow block (12) from its
    # second separable conv, and the exit flow. Measured: 47 of 80 weighted layers trainable,
    # 33 of them BatchNormalization layers below the boundary (14 layers without those).
    Backbone("xception", "Xception", 71, 299, "109", True, "xception", "tf",
             "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    # the write-up: trainable from block8_10_conv (the last residual block's projection and
    # the final conv_7b + BN; the block's branch convs come earlier and stay frozen)
    Backbone("inception_resnet_v2", "InceptionResNetV2", 75, 299, "block8_10_conv", False,
             "inception_resnet_v2", "tf", "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    # Not in the write-up. The small modern nets are fine-tuned whole ("all"): they are
    # cheap to train end to end, and stained cells are far from ImageNet photos, so the early
    # filters gain from adapting too. Use "none" for a linear probe when data is very scarce.
    Backbone("mobilenet_v2", "MobileNetV2", 32, 224, "all", False, "mobilenet_v2", "tf",
             "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5"),
    Backbone("efficientnetv2_b0", "EfficientNetV2B0", 32, 224, "all", False, "efficientnet_v2", None,
             "efficientnetv2-b0_notop.h5"),
    # Not in the write-up: the VGG16 recipe carried over, the last stage (conv5) trainable
    Backbone("resnet50", "ResNet50", 32, 224, "conv5_block1_1_conv", False, "resnet50", "caffe",
             "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
)}

_MEAN_STD = {"caffe": ((103.939, 116.779, 123.68), None),  # BGR means, 0..255 scale
             "torch": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}  # RGB, 0..1 scale


class WeightsError(RuntimeError):
    """Backbone weights could not be downloaded or loaded."""


def get(name: str) -> Backbone:
    """Return the registry entry for ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"parameter 'backbone' must be one of {', '.join(REGISTRY)} (got {name!r})")
    return REGISTRY[name]


@keras.saving.register_keras_serializable(package="cellclf")
class ImagenetPreprocessing(layers.Layer):
    """keras.applications' ``preprocess_input`` for NHWC 0..255 RGB input, in keras.ops.

    tf: x / 127.5 - 1; torch: (x / 255 - mean) / std; caffe: RGB -> BGR, minus the means.
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "tf", "torch"):
            raise ValueError(f"mode must be one of caffe, tf, torch (got {mode!r})")
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        mean, std = _MEAN_STD[self.mode]
        if self.mode == "caffe":
            x = ops.flip(x, axis=-1)
        else:
            x = x / 255.0
        x = x - ops.convert_to_tensor(mean, dtype=self.compute_dtype)
        if std is not None:
            x = x / ops.convert_to_tensor(std, dtype=self.compute_dtype)
        return x

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(w, b)`` with ``x @ w + b`` equal to this layer on RGB pixels ``x`` (3 x 3
        and 3 numbers: a scale and shift per channel, and the channel reversal of caffe)."""
        if self.mode == "tf":
            return np.eye(3) / 127.5, -np.ones(3)
        mean, std = np.asarray(_MEAN_STD[self.mode][0], float), _MEAN_STD[self.mode][1]
        if self.mode == "caffe":  # output channel j is input channel 2 - j (RGB -> BGR), minus its mean
            return np.eye(3)[::-1], -mean
        std = np.asarray(std, float)
        return np.diag(1 / (255 * std)), -mean / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def preprocessing(name: str) -> layers.Layer:
    """Return a layer doing ``keras.applications.<module>.preprocess_input`` for backbone
    ``name`` (an identity for EfficientNetV2, which preprocesses inside the model)."""
    spec = get(name)
    if spec.mode is None:
        return layers.Identity(name="preprocess")
    return ImagenetPreprocessing(spec.mode, name="preprocess")


def weights_file(name: str, image_size: int) -> str:
    """Return the file name Keras caches the no-top ImageNet weights under (MobileNetV2
    has one file per input size 96..224 and falls back to 224)."""
    size = image_size if image_size in (96, 128, 160, 192, 224) else 224
    return get(name).weights_file.format(size=size)


def weights_label(weights: str) -> str:
    """Return how reports name a ``weights`` parameter: imagenet, none, or the file's name."""
    return weights if weights in NAMED_WEIGHTS else Path(weights).name


def _keras_cache() -> Path:
    """Return Keras' download folder. Keras reads KERAS_HOME once at import; this reads it
    per call, which agrees unless the variable changes while the process runs."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser() / "models"


def _host_reachable() -> bool:
    """Return whether a TCP connection to DOWNLOAD_HOST opens within PROBE_TIMEOUT_S."""
    ok = []

    def attempt():
        try:
            socket.create_connection(DOWNLOAD_HOST, timeout=PROBE_TIMEOUT_S).close()
            ok.append(True)
        except OSError:
            pass

    # a thread bounds the DNS look-up too, which ignores socket timeouts
    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(PROBE_TIMEOUT_S + 0.5)
    return bool(ok)


def _offline_hint(name: str) -> str:
    """Return what to pass instead of weights=imagenet when the download is impossible."""
    hint = ("pass weights=none to train from scratch or weights=<path to a .weights.h5> "
            f"holding {name} no-top weights")
    if name == "mobilenet_v2":
        hint += f" (offline ImageNet weights, from the repository root: weights={OFFLINE_WEIGHTS})"
    return hint


def choose_weights(name: str, image_size: int) -> tuple[str, str]:
    """Return ``(weights, note)`` for ``weights auto``: 'imagenet' when Keras' ImageNet weights are
    cached or download now (into Keras' cache, where the stage's build finds them), else 'none',
    the note saying which and why."""
    spec = get(name)
    if (_keras_cache() / weights_file(name, image_size)).exists():
        return "imagenet", f"weights auto: ImageNet weights for {name} (in Keras' cache)"
    try:
        _base(spec, image_size, "imagenet")
    except WeightsError as e:
        why = str(e).split(";")[0].removeprefix(f"cannot download ImageNet weights for {name}: ")
        return "none", f"weights auto: ImageNet weights for {name} could not be had ({why}): trained from scratch"
    return "imagenet", f"weights auto: ImageNet weights for {name} (downloaded)"


def _base(spec: Backbone, image_size: int, weights) -> keras.Model:
    """Return the backbone without top, with random, ImageNet or file weights."""
    make = getattr(keras.applications, spec.constructor)
    kwargs = {"include_top": False, "input_shape": (image_size, image_size, 3)}
    if spec.mode is None:
        kwargs["include_preprocessing"] = True  # EfficientNetV2 takes 0..255 input itself
    if weights is None or weights == "none":
        return make(weights=None, **kwargs)
    if weights == "imagenet":
        cached = _keras_cache() / weights_file(spec.name, image_size)
        # proxies: urllib goes through them, so a direct probe says nothing
        if not cached.exists() and not urllib.request.getproxies().get("https") and not _host_reachable():
            raise WeightsError(
                f"cannot download ImageNet weights for {spec.name}: {DOWNLOAD_HOST[0]}:{DOWNLOAD_HOST[1]} "
                f"is unreachable (no internet?) and {cached} is not cached; {_offline_hint(spec.name)}")
        try:
            return make(weights="imagenet", **kwargs)
        except Exception as e:  # Keras raises a bare Exception for failed downloads
            raise WeightsError(f"downloading ImageNet weights for {spec.name} failed ({e}); "
                               f"{_offline_hint(spec.name)}") from e
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} for backbone {spec.name} does not exist; "
                           "weights must be none, imagenet or a path to a .weights.h5 file")
    base = make(weights=None, **kwargs)
    try:
        base.load_weights(path)
    except Exception as e:
        raise WeightsError(f"weights file {str(path)!r} does not fit backbone {spec.name} "
                           f"(include_top=False, {image_size}x{image_size}): {e}") from e
    return base


def _boundary(base: keras.Model, unfreeze_from) -> int:
    """Return the index of the first trainable layer for policy ``unfreeze_from``."""
    n = len(base.layers)
    if unfreeze_from == "all":
        return 0
    if unfreeze_from == "none":
        return n
    if isinstance(unfreeze_from, int) and not isinstance(unfreeze_from, bool) or \
            isinstance(unfreeze_from, str) and unfreeze_from.isdigit():
        index = int(unfreeze_from)
        if index >= n:
            raise ValueError(f"parameter 'unfreeze_from' index {index} is out of range: "
                             f"{base.name} has {n} layers (use 'none' to freeze all)")
        return index
    names = [layer.name for layer in base.layers]
    if unfreeze_from not in names:
        near = difflib.get_close_matches(str(unfreeze_from), names, n=6, cutoff=0.4) or names[-6:]
        raise ValueError(f"parameter 'unfreeze_from' must be all, none, a layer index or a layer name "
                         f"of the base (got {unfreeze_from!r}); near names: {', '.join(near)}")
    return names.index(unfreeze_from)


def apply_freeze(base: keras.Model, unfreeze_from, train_bn_in_frozen: bool, freeze_bn: bool = False) -> list[str]:
    """Freeze ``base`` below ``unfreeze_from`` and return the names of its layers that now
    have trainable weights.

    unfreeze_from: a layer name (it and later layers trainable), a layer index (int or digit
    string; layers with index >= it trainable), 'all' or 'none' (a linear probe).
    train_bn_in_frozen: keep BatchNormalization layers trainable in the frozen part. A frozen
    BatchNormalization layer also runs in inference mode (moving statistics) in Keras 3.
    freeze_bn: freeze every BatchNormalization layer, also above the cut, so all normalise with
    their ImageNet moving statistics while the convolutions fine-tune. Trainable BN layers
    normalise by the statistics of each small training batch, which shifts the features a head
    was fitted on (Keras 3 ignores ``base(x, training=False)`` inside ``fit``, so freezing is
    the way to keep them in inference mode).
    """
    if freeze_bn and train_bn_in_frozen:
        raise ValueError("parameters 'freeze_bn' and 'train_bn_in_frozen' contradict each other: "
                         "set train_bn_in_frozen false to freeze every BatchNormalization layer")
    start = _boundary(base, unfreeze_from)
    base.trainable = True  # a frozen parent hides its layers' flags
    for i, layer in enumerate(base.layers):
        is_bn = isinstance(layer, layers.BatchNormalization)
        layer.trainable = (i >= start or (train_bn_in_frozen and is_bn)) and not (freeze_bn and is_bn)
    return [layer.name for layer in base.layers if layer.trainable_weights]


def remember_trainable(base: keras.Model) -> Callable[[], None]:
    """Return a function that puts back ``base``'s per-layer trainable flags as they are now
    (the freeze policy), after a head warm-up froze it or a fold's training changed it."""
    flags = [(layer, layer.trainable) for layer in base.layers]

    def restore() -> None:
        base.trainable = True  # a frozen parent hides its layers' flags
        for layer, flag in flags:
            layer.trainable = flag
    return restore


def build(name: str, image_size: int, n_classes: int, *, weights="none", pooling: str = "gap",
          dropout: float = 0.5, unfreeze_from=None, train_bn_in_frozen: bool | None = None,
          augment=None, freeze_bn: bool = False) -> keras.Model:
    """Return the fine-tuning model: 0..255 RGB (image_size² x 3) -> augment -> preprocessing
    -> backbone ``name`` (layer 'base') -> GAP/GMP -> dropout -> softmax 'probs' (float32).

    weights: 'none' (random), 'imagenet' (Keras' download; WeightsError fast when offline) or a
    path to no-top weights. unfreeze_from / train_bn_in_frozen default to the registry's
    policy (see apply_freeze). augment: a Keras layer, a preset name of augment.pipeline, or None.
    freeze_bn: freeze every BatchNormalization layer, above the cut too (see apply_freeze).
    """
    spec = get(name)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < spec.min_size:
        raise ValueError(f"parameter 'image_size' must be an integer of at least {spec.min_size} "
                         f"for {name} (its minimum input size; got {image_size!r})")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"parameter 'n_classes' must be an integer >= 2 (got {n_classes!r})")
    if pooling not in POOLING:
        raise ValueError(f"parameter 'pooling' must be one of {', '.join(POOLING)} (got {pooling!r})")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"parameter 'dropout' must be a number in [0, 1) (got {dropout!r})")
    if isinstance(augment, str):
        augment = augment_pipeline(augment)

    base = _base(spec, image_size, weights)
    base.name = "base"  # after construction: EfficientNetV2 derives its weights file from its name
    apply_freeze(base, spec.unfreeze_from if unfreeze_from is None else unfreeze_from,
                 # the default policy gives way to an explicit freeze_bn
                 spec.train_bn_in_frozen and not freeze_bn if train_bn_in_frozen is None else train_bn_in_frozen,
                 freeze_bn)

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = augment(inputs) if augment is not None else inputs
    x = preprocessing(name)(x)
    x = base(x)
    x = POOLING[pooling](name=pooling)(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    # float32 softmax keeps probabilities exact under mixed precision
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=f"{name}_finetune")
