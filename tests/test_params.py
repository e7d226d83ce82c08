import pytest

from cellclf_utils.config import params


def _base(stage="02_baseline_cnn", **kw):
    ns = {"data_dir": "", "classes": "", "run_id": "", "profile": "", "image_size": 64, "resize": "pad",
          "on_bad_image": "error", "limit": 0, "batch_size": 32, "epochs": 2, "lr": 1e-3, "optimizer": "adam",
          "schedule": "constant", "folds": 3, "seed": 0, "dropout": 0.5, "pooling": "gap", "augment": "basic",
          "class_weight": "none", "label_smoothing": 0.0, "monitor": "val_auc", "patience": 0, "tta": False, "gradcam": 0, "unrelated": object()}
    ns.update(kw)
    return ns


def test_valid_values_pass_and_convert():
    P = params.validate("02_baseline_cnn", _base(lr="1e-3", epochs=2.0, tta="true"))
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
    with pytest.raises(params.ParameterError) as e:
        params.validate("02_baseline_cnn", _base(**{name: value}))
    assert f"parameter '{name}'" in str(e.value) and words in str(e.value)


def test_missing_parameter():
    ns = _base()
    del ns["seed"]
    with pytest.raises(params.ParameterError, match="'seed' is missing"):
        params.validate("02_baseline_cnn", ns)


def test_describe_lists_every_parameter():
    text = params.describe("02_baseline_cnn")
    for name in params.STAGE_PARAMS["02_baseline_cnn"]:
        assert name in text
