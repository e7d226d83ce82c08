"""The network a trained stage (02-06) cross-validates, built from its parameters: the
write-up's CNN (02) or an ImageNet backbone (03-05), in the dtype policy for the machine."""
from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import pandas as pd

from ... import paths
from ...model import augment, backbones, cnn
from ...train.device import precision


def weights_path(weights: str) -> str:
    """Return ``weights`` as given ('imagenet', 'none') or as the absolute path of the file
    (relative paths: from the working directory, else the checkout; validation checked it exists)."""
    return weights if weights in backbones.NAMED_WEIGHTS else str(paths.resolve(weights))


def _freeze_policy(P: dict) -> tuple:
    unfreeze = None if P["unfreeze_from"] == "default" else P["unfreeze_from"]
    bn = None if P["train_bn_in_frozen"] == "default" else P["train_bn_in_frozen"] == "true"
    return unfreeze, bn


def backbone_model(P: dict, n_classes: int) -> tuple[Callable[[], keras.Model], str]:
    """Return ``(build, description)`` for a fine-tuning stage. The model is built once
    (failing fast on bad weights or sizes) and ``build()`` hands it back with its initial
    weights and freeze flags restored, so folds reuse one model instead of rebuilding it."""
    policy = precision.auto()
    unfreeze, bn = _freeze_policy(P)
    keras.utils.set_random_seed(P["seed"])  # the new head's initial weights
    model = backbones.build(P["backbone"], P["image_size"], n_classes, weights=weights_path(P["weights"]),
                            pooling=P["pooling"], dropout=P["dropout"], unfreeze_from=unfreeze,
                            train_bn_in_frozen=bn, augment=augment.pipeline(P["augment"], P["seed"]),
                            freeze_bn=P.get("freeze_bn", False))
    initial = model.get_weights()
    restore_freeze = backbones.remember_trainable(model.get_layer("base"))

    def build() -> keras.Model:
        model.set_weights(initial)
        restore_freeze()
        return model

    table = freeze_table(model)
    name = backbones.weights_label(P["weights"])
    desc = (f"{P['backbone']} weights={name} unfreeze_from={P['unfreeze_from']} {P['pooling']} "
            f"dropout={P['dropout']}")
    print(f"{P['backbone']} @ {P['image_size']} px, weights {name}, {policy}: "
          f"{int(table.trainable.sum())} of {len(table)} weighted backbone layers trainable")
    return build, desc


def cnn_model(P: dict, n_classes: int) -> Callable[[], keras.Model]:
    """Return ``build()`` for the write-up's CNN (02): a new model per fold."""
    precision.auto()  # bf16 on an accelerator, as for the backbones
    return lambda: cnn.baseline_cnn(P["image_size"], n_classes, P["pooling"], P["dropout"], P["augment"], P["seed"])


def stage_model(stage_params: dict, n_classes: int) -> Callable[[], keras.Model]:
    """Return ``build()`` for a finished stage's model from its params.json: its backbone
    (03-05) or the baseline CNN (02)."""
    if "backbone" in stage_params:
        return backbone_model(stage_params, n_classes)[0]
    return cnn_model(stage_params, n_classes)


def finetune_title(P: dict) -> str:
    """Return the report title of a fine-tuning stage, named for the backbone it ran."""
    return f"Fine-tuning {backbones.get(P['backbone']).constructor}"


def freeze_table(model: keras.Model) -> pd.DataFrame:
    """Return the backbone's weighted layers with index, type and whether each trains."""
    base = model.get_layer("base")
    rows = [{"index": i, "layer": layer.name, "type": type(layer).__name__, "trainable": layer.trainable,
             "parameters": int(sum(np.prod(w.shape) for w in layer.weights))}
            for i, layer in enumerate(base.layers) if layer.weights]
    return pd.DataFrame(rows)
