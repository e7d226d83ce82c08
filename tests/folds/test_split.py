import pandas as pd
import pytest

from cellclf_utils.data import dataset as data, synth
from cellclf_utils.folds import kfold as folds, split
from cellclf_utils.cli import main


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Synthetic set with planted near-duplicate groups (rotated/flipped copies)."""
    out = tmp_path_factory.mktemp("split_src") / "synth"
    synth.generate(out, seed=3, size=48, n_train_per_class=30, n_test_per_class=2, dup_fraction=0.2,
                   progress=False)
    return out


def test_split_is_stratified_hidden_and_keeps_duplicates_on_one_side(source, tmp_path):
    rep = split.split(source, tmp_path / "comp", test_fraction=0.2, seed=1, progress=False)
    before = data.load_dataset(source, progress=False)
    after = data.load_dataset(tmp_path / "comp", progress=False)
    assert rep["train"] + rep["test"] == len(before.items) == len(after.items) + len(after.test_items)
    assert rep["duplicate_groups"] > 0 and rep["groups_split_across"] == 0
    # an independent check: no test image near-duplicates a training image
    assert folds.train_test_duplicates(after).empty
    for c, n in rep["per_class"].items():  # ~20% of each class
        assert abs(n["test"] - 0.2 * (n["train"] + n["test"])) <= 3, (c, n)
    # hidden: flat, anonymous names; labels only in test_labels.csv, matching the files
    labels = pd.read_csv(tmp_path / "comp" / "test_labels.csv")
    assert sorted(labels.id) == sorted(p.name for p in (tmp_path / "comp" / "test").iterdir())
    assert all(i.startswith("test_") for i in labels.id)
    assert after.test_labels is not None and after.class_names == before.class_names
    assert rep["source_test_images_left_out"] == len(before.test_items)
    assert not list(tmp_path.glob(".*partial"))


def test_split_refuses_to_overwrite_and_names_bad_fractions(source, tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main(["data", "split", str(source), str(tmp_path / "busy"), "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err and (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="--test-fraction"):
        split.split(source, tmp_path / "x", test_fraction=0.9)


def test_cli_split_prints_the_counts(source, tmp_path, capsys):
    assert main(["data", "split", str(source), str(tmp_path / "c2"), "--test-fraction", "0.25", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "hidden test images" in out and "0 split across" in out
