import numpy as np
import pandas as pd
import pytest

from cellclf_utils.data import dataset as data
from cellclf_utils.folds import kfold as folds


def test_groups_stay_together_and_classes_are_stratified():
    rng = np.random.default_rng(0)
    n = 300
    labels = rng.integers(0, 3, n)
    groups = np.arange(n)
    groups[1::10] = groups[0::10]  # every 10th pair shares a group
    df = folds.assign([f"i{i}" for i in range(n)], labels, groups, 5, seed=1)
    assert set(df.fold) == set(range(5))
    assert (df.groupby("group").fold.nunique() == 1).all()
    share = pd.crosstab(df.fold, df.label, normalize="index")
    assert (share.max() - share.min()).max() < 0.1


def test_seeded():
    labels = np.repeat([0, 1], 20)
    a = folds.assign(range(40), labels, np.arange(40), 4, seed=3)
    b = folds.assign(range(40), labels, np.arange(40), 4, seed=3)
    c = folds.assign(range(40), labels, np.arange(40), 4, seed=4)
    assert a.fold.tolist() == b.fold.tolist() and a.fold.tolist() != c.fold.tolist()


def test_too_few_images_for_folds():
    with pytest.raises(folds.FoldsError, match="class 'b' has 2 image"):
        folds.assign(range(8), [0] * 6 + [1] * 2, range(8), 3, 0, class_names=["a", "b"])


def test_written_once_and_reused(tmp_path, small_dataset):
    ds = data.load_dataset(small_dataset)
    first = folds.ensure(tmp_path, ds, 2, seed=0, groups=np.arange(12))
    written = (tmp_path / "folds.csv").read_text()
    # another seed cannot redraw them: the run's folds are fixed once written
    again = folds.ensure(tmp_path, ds, 2, seed=99, groups=np.arange(12))
    assert (tmp_path / "folds.csv").read_text() == written
    assert again.fold.tolist() == first.fold.tolist()
    assert list(first.columns) == ["id", "fold", "group", "label"]
    with pytest.raises(folds.FoldsError, match="has 2 folds but parameter 'folds' is 3"):
        folds.ensure(tmp_path, ds, 3, seed=0)


def test_folds_csv_must_match_the_data(tmp_path, small_dataset):
    ds = data.load_dataset(small_dataset)
    folds.ensure(tmp_path, ds, 2, seed=0, groups=np.arange(12))
    (small_dataset / "alpha" / "alpha0.png").unlink()
    with pytest.raises(folds.FoldsError, match="does not match the dataset"):
        folds.ensure(tmp_path, data.load_dataset(small_dataset), 2, seed=0)


def test_subset_is_per_class_and_fixed():
    df = pd.DataFrame({"id": range(30), "fold": np.arange(30) % 3, "label": ["a"] * 20 + ["b"] * 10})
    s = folds.subset(df, 5, seed=0)
    assert s.label.value_counts().to_dict() == {"a": 5, "b": 5}
    assert s.index.tolist() == folds.subset(df, 5, seed=0).index.tolist()
    assert folds.subset(df, 0, 0) is df
