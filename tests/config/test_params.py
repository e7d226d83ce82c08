"""Parameters are defined once: names, types, allowed values from the registries, defaults per
stage, and checks that name the parameter and what is allowed."""
import pytest

from cellclf_utils.config import ParameterError, SPECS, STAGES, defaults, describe, stage_name, stage_parameters, validate
from cellclf_utils.data.classes import PRESETS as CLASS_PRESETS
from cellclf_utils.model import augment, backbones
from cellclf_utils.train import schedules


def _base(stage="02_baseline_cnn", **kw):
    return {**defaults(stage), "epochs": 2, "gradcam": 0, "unrelated": object(), **kw}


def test_valid_values_pass_and_convert():
    P = validate("02_baseline_cnn", _base(lr="1e-3", epochs=2.0, tta="true"))
    assert P["lr"] == 1e-3 and P["epochs"] == 2 and P["tta"] is True
    assert "unrelated" not in P


@pytest.mark.parametrize("name, value, words", [
    ("optimizer", "rmsprop", "one of sgd, adam, adamw"),
    ("label_smoothing", 0.5, "0 <= label_smoothing < 0.5"),
    ("epochs", 0, "> 0"),
    ("epochs", 1.5, "whole number"),
    ("lr", "fast", "a number"),
    ("folds", 1, "2..20"),
    ("image_size", 8, "16..1024"),
    ("dropout", 1.0, "0 <= dropout < 1"),
    ("run_id", "../escape", "letters, digits"),
    ("tta", "maybe", "true or false"),
    ("gradcam", 21, "0..20"),
    ("patience", -1, ">= 0"),
    ("augment", "mild", "one of none, basic, seed, strong"),
])
def test_bad_values_name_the_parameter(name, value, words):
    with pytest.raises(ParameterError) as e:
        validate("02_baseline_cnn", _base(**{name: value}))
    assert f"parameter '{name}'" in str(e.value) and words in str(e.value)


def test_missing_parameter():
    ns = _base()
    del ns["seed"]
    with pytest.raises(ParameterError, match="'seed' is missing"):
        validate("02_baseline_cnn", ns)


def test_allowed_values_are_the_registries_own():
    assert SPECS["backbone"].choices == tuple(backbones.REGISTRY)
    assert SPECS["augment"].choices == augment.PRESETS
    assert SPECS["optimizer"].choices == schedules.OPTIMIZERS and SPECS["schedule"].choices == schedules.SCHEDULES
    assert all(p in SPECS["classes"].help for p in CLASS_PRESETS)  # the help lists every preset


def test_every_stage_has_a_default_for_each_of_its_parameters_and_they_validate():
    for stage in STAGES:
        P = validate(stage, defaults(stage))
        assert list(P) == list(stage_parameters(stage))
    assert defaults("02c_frozen_probe")["C"] == 0.01 and defaults("02b_classical")["C"] == 1.0
    assert defaults("04_vgg16")["backbone"] == "vgg16" and defaults("02_baseline_cnn")["tta"] is False


@pytest.mark.parametrize("stage, changes, words", [
    ("03_xception", {"monitor": "last", "patience": 3}, "'patience'.*monitor is 'last'"),
    ("03_xception", {"freeze_bn": True, "train_bn_in_frozen": "true"}, "'freeze_bn' and 'train_bn_in_frozen'"),
    ("05_inception_resnet_v2", {"image_size": 64}, "'image_size' must be at least 75 for inception_resnet_v2"),
    ("03_xception", {"weights": "/no/such/file.weights.h5"}, "'weights' must be imagenet, auto, none or an existing"),
    ("02_baseline_cnn", {"classes": "herlev9"}, "'classes': 'herlev9' is neither a preset"),
    ("02_baseline_cnn", {"data_dir": "/no/such/dataset"}, "'data_dir': /no/such/dataset does not exist"),
])
def test_values_fine_alone_but_not_together_or_a_missing_file_are_refused(stage, changes, words):
    with pytest.raises(ParameterError, match=words):
        validate(stage, {**defaults(stage), **changes})


def test_stages_are_named_by_name_number_or_short_name():
    assert stage_name("03") == stage_name("3") == stage_name("xception") == "03_xception"
    assert stage_name("02b") == "02b_classical" and stage_name("2") == "02_baseline_cnn"
    with pytest.raises(ParameterError, match="unknown stage 'nine'.*03_xception"):
        stage_name("nine")


def test_describe_lists_every_parameter_with_its_default():
    text = describe("02_baseline_cnn")
    for name, default in defaults("02_baseline_cnn").items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{name} "))
        assert repr(default) in line


def test_fine_tuning_parameters_are_validated():
    ns = {**defaults("03_xception"), "image_size": 71}
    assert validate("03_xception", ns)["head_epochs"] == 2
    with pytest.raises(ParameterError, match="'backbone' must be one of vgg16, xception"):
        validate("03_xception", {**ns, "backbone": "resnet18"})
    with pytest.raises(ParameterError, match="'train_bn_in_frozen' must be one of default, true, false"):
        validate("04_vgg16", {**ns, "train_bn_in_frozen": "yes"})
    # `-p train_bn_in_frozen false` and `-p unfreeze_from 109` arrive as bool and int
    P = validate("03_xception", {**ns, "train_bn_in_frozen": False, "unfreeze_from": 109})
    assert P["train_bn_in_frozen"] == "false" and P["unfreeze_from"] == "109"
    with pytest.raises(ParameterError, match="'mixup' must be 0 <= mixup <= 10"):
        validate("05_inception_resnet_v2", {**ns, "image_size": 75, "mixup": -0.1})
    with pytest.raises(ParameterError, match="'head_init' must be one of random, probe"):
        validate("03_xception", {**ns, "head_init": "lp"})
    assert validate("03_xception", {**ns, "freeze_bn": "true"})["freeze_bn"] is True
