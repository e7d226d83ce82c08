"""The fine-tuning stage helper: weights resolution, one model reused across folds, precision."""
import keras
import numpy as np
import pytest

from cellclf_utils.train.device import precision
from cellclf_utils.run import stages


def _P(**kw):
    P = {"backbone": "mobilenet_v2", "weights": "none", "unfreeze_from": "default",
         "train_bn_in_frozen": "default", "image_size": 32, "pooling": "gap", "dropout": 0.5,
         "augment": "none", "seed": 0}
    return {**P, **kw}


def test_build_hands_back_the_model_reset_to_its_initial_weights_and_flags():
    build, desc = stages.backbone_model(_P(unfreeze_from="block_16_expand"), 3)
    assert stages.finetune_title(_P()) == "Fine-tuning MobileNetV2"
    assert desc.startswith("mobilenet_v2 weights=none unfreeze_from=block_16_expand")
    m = build()
    before = [w.copy() for w in m.get_weights()]
    flags = [layer.trainable for layer in m.get_layer("base").layers]
    m.set_weights([w + 1 for w in before])
    m.get_layer("base").trainable = False
    again = build()
    assert again is m  # reused, not rebuilt
    for a, b in zip(again.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert [layer.trainable for layer in again.get_layer("base").layers] == flags
    table = stages.freeze_table(again)
    assert table[table.trainable].layer.iloc[0] == "block_16_expand"


def test_bn_policy_parameter_overrides_the_backbone_default():
    build, _ = stages.backbone_model(_P(backbone="xception", image_size=71), 3)
    t = stages.freeze_table(build())
    assert t[(t["index"] < 100) & (t.type == "BatchNormalization")].trainable.all()  # the write-up's recipe
    build, _ = stages.backbone_model(_P(backbone="xception", image_size=71, train_bn_in_frozen="false"), 3)
    t = stages.freeze_table(build())
    assert not t[t.layer == "block2_sepconv1_bn"].trainable.any()


def test_weights_resolve_to_the_file_and_keep_the_keras_names(tmp_path, monkeypatch):
    from cellclf_utils.run.stages.models import weights_path
    f = tmp_path / "w.weights.h5"
    f.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert weights_path("w.weights.h5") == str(f)  # relative to the working directory
    assert weights_path("imagenet") == "imagenet" and weights_path("none") == "none"


def test_precision_is_float32_on_a_cpu_and_can_be_forced(monkeypatch):
    import keras
    try:
        monkeypatch.delenv("CELLCLF_PRECISION", raising=False)
        assert precision.accelerator() is None and precision.auto() == "float32"
        monkeypatch.setenv("CELLCLF_PRECISION", "mixed_bfloat16")
        assert precision.auto() == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().compute_dtype == "bfloat16"
        monkeypatch.setenv("CELLCLF_PRECISION", "half-ish")
        with pytest.raises(ValueError, match="CELLCLF_PRECISION='half-ish' is not a Keras dtype policy"):
            precision.auto()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_baseline_cnn_gets_the_same_precision_as_the_backbones(monkeypatch):
    P = {"image_size": 32, "pooling": "gap", "dropout": 0.5, "augment": "none", "seed": 0}
    try:
        monkeypatch.setenv("CELLCLF_PRECISION", "mixed_bfloat16")  # what an accelerator picks
        assert stages.stage_model(P, 3)().dtype_policy.name == "mixed_bfloat16"
        monkeypatch.delenv("CELLCLF_PRECISION")
        assert stages.stage_model(P, 3)().dtype_policy.name == "float32"  # this CPU
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_initial_weights_follow_the_seed():
    w = [stages.backbone_model(_P(seed=s), 3)[0]().get_layer("probs").get_weights()[0] for s in (1, 1, 2)]
    np.testing.assert_array_equal(w[0], w[1])
    assert not np.array_equal(w[0], w[2])


def test_freeze_bn_reaches_the_model_and_survives_the_per_fold_reset():
    build, _ = stages.backbone_model(_P(unfreeze_from="all", freeze_bn=True), 3)
    base = build().get_layer("base")
    bn = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and not any(layer.trainable for layer in bn)
    assert all(layer.trainable for layer in base.layers if layer.weights and layer not in bn)
    assert not any(layer.trainable for layer in build().get_layer("base").layers
                   if isinstance(layer, keras.layers.BatchNormalization))


def test_the_probe_features_of_random_weights_follow_the_seed():
    """02c with weights none must give the same features on a rerun: the seed fixes the weights."""
    P = {"backbone": "mobilenet_v2", "image_size": 32, "weights": "none", "pooling": "gap", "batch_size": 4,
         "colour": False, "seed": 0}
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.uint8)
    a, b = stages.probe_featurizer(P)(x), stages.probe_featurizer(P)(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, stages.probe_featurizer({**P, "seed": 1})(x))
