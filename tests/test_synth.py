"""The embedded synthetic dataset: layout, determinism, class evidence, label noise, copies."""
import numpy as np
import pandas as pd
import pytest

from cellclf_utils import synth
from cellclf_utils.images import read_image

SMALL = dict(size=48, n_train_per_class=12, n_test_per_class=4, progress=False)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "synth"
    return out, synth.generate(out, seed=0, **SMALL)


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """Enough images (180 training) for class statistics; more label noise to measure it."""
    out = tmp_path_factory.mktemp("medium") / "synth"
    synth.generate(out, seed=5, size=48, n_train_per_class=60, n_test_per_class=20, label_noise=0.2, progress=False)
    return pd.read_csv(out / "synth_meta.csv")


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_counts(small):
    out, summary = small
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*synth.CLASSES, "test", "test_labels.csv", "duplicates_truth.csv", "synth_meta.csv", "README.md"])
    for c in synth.CLASSES:
        assert len(list((out / c).glob("*.jpg"))) == 12
    assert len(list((out / "test").glob("*.jpg"))) == 12
    assert summary["counts"] == {"train": {c: 12 for c in synth.CLASSES}, "test": {c: 4 for c in synth.CLASSES}}
    assert not list(out.parent.glob(".*partial*")), "the temporary build folder must be gone"
    assert "generate(out_dir, seed=0, size=48" in (out / "README.md").read_text()


def test_test_labels_and_meta_match_the_files(small):
    out, _ = small
    labels = pd.read_csv(out / "test_labels.csv")
    assert list(labels.columns) == ["id", "label"]
    assert sorted(labels.id) == sorted(p.name for p in (out / "test").iterdir())
    assert labels.label.value_counts().to_dict() == {c: 4 for c in synth.CLASSES}
    meta = pd.read_csv(out / "synth_meta.csv")
    assert list(meta.columns) == ["id", "split", "label", "true_label", "site", "stain_batch", "n_cells",
                                  "nucleus_area_frac"]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    assert sorted(meta.id) == files
    train = meta[meta.split == "train"]
    assert (train.id.str.split("/").str[0] == train.label).all(), "train folder = given label"
    test = meta[meta.split == "test"].assign(id=lambda d: d.id.str.removeprefix("test/"))
    assert test.set_index("id").label.sort_index().equals(labels.set_index("id").label.sort_index())
    assert set(meta.site) <= set(synth.SITES) and meta.n_cells.between(1, 4).all()


def test_images_decode_at_size(small):
    out, _ = small
    for p in out.rglob("*.jpg"):
        img = read_image(p)
        assert img.shape == (48, 48, 3) and img.dtype == np.uint8
        assert img.mean() > 120, "a light microscope background, not a dark image"


def test_same_seed_same_bytes_other_seed_differs(tmp_path, small):
    out, _ = small
    again = synth.generate(tmp_path / "again", seed=0, **SMALL)
    assert _files(out) == _files(tmp_path / "again")
    assert again["n_duplicates"] == small[1]["n_duplicates"]
    synth.generate(tmp_path / "other", seed=1, **SMALL)
    a, b = _files(out), _files(tmp_path / "other")
    assert a.keys() != b.keys() or any(a[k] != b[k] for k in a if k.endswith(".jpg"))
    assert (tmp_path / "other" / "normal").is_dir()


def test_refuses_a_non_empty_folder_but_fills_an_empty_one(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        synth.generate(busy, seed=0, **SMALL)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    synth.generate(empty, seed=0, **SMALL)
    assert (empty / "synth_meta.csv").exists()


def test_an_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def fail_late(clean, rng):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return real(clean, rng)

    real = synth._photograph
    monkeypatch.setattr(synth, "_photograph", fail_late)
    with pytest.raises(KeyboardInterrupt):
        synth.generate(tmp_path / "ds", seed=0, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_planted_copies_are_transformed_originals(small):
    out, summary = small
    truth = pd.read_csv(out / "duplicates_truth.csv")
    assert list(truth.columns) == ["copy", "original", "transform"]
    assert len(truth) == summary["n_duplicates"] + summary["n_test_duplicates"]
    assert summary["n_duplicates"] == round(0.05 * 36) and summary["n_test_duplicates"] == 3
    assert truth["transform"].isin(synth.TRANSFORMS[1:]).all()
    assert truth["copy"].str.startswith("test/").sum() == 3 and not truth.original.str.startswith("test/").any()
    meta = pd.read_csv(out / "synth_meta.csv").set_index("id")
    for copy, orig, t in truth.itertuples(index=False):
        assert meta.label[copy] == meta.label[orig] and meta.true_label[copy] == meta.true_label[orig]
        a, b = read_image(out / copy).mean(-1).ravel(), read_image(out / orig).mean(-1)
        corr = [np.corrcoef(a, synth._dihedral(b, k).ravel())[0, 1] for k in range(8)]
        # the named symmetry (and only it) maps the original onto its re-photographed copy
        k = synth.TRANSFORMS.index(t)
        assert corr[k] > 0.95 and int(np.argmax(corr)) == k, (copy, t, corr)

def test_class_evidence_is_real_but_overlapping(medium):
    frac = medium.groupby("true_label").nucleus_area_frac
    means = frac.mean()
    assert means["normal"] < means["degenerated"] < means["degenerated_severe"]
    q = frac.quantile([0.1, 0.9]).unstack()
    # overlapping, not separable: a class's top decile reaches past the next class's bottom decile
    assert q.loc["degenerated", 0.9] > q.loc["degenerated_severe", 0.1]
    assert frac.max()["normal"] > frac.min()["degenerated"]
    # bystanders / multinucleation: severe images are not all single cells
    assert (medium.n_cells > 1).mean() > 0.3


def test_label_noise_fraction(medium, small):
    flipped = medium.label != medium.true_label
    for split in ("train", "test"):
        share = flipped[medium.split == split].mean()
        assert abs(share - 0.2) < 0.05, (split, share)
    # the given labels stay balanced: noise moves true labels, not folder counts
    assert (medium[medium.split == "train"].label.value_counts() == 60).all()
    out, _ = small
    meta = pd.read_csv(out / "synth_meta.csv")
    assert 1 <= (meta.label != meta.true_label).sum() <= 2  # 3% of 48 images, copies inherit


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="size"):
        synth.generate(tmp_path / "a", size=8, progress=False)
    with pytest.raises(ValueError, match="label_noise"):
        synth.generate(tmp_path / "b", label_noise=1.5, progress=False)
