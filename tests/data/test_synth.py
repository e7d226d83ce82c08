"""The embedded synthetic dataset: layout, determinism, class evidence, label noise, copies."""
import numpy as np
import pandas as pd
import pytest

from cellclf_utils.data import synth
from cellclf_utils.data.images import read_image

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

    real = synth.photograph
    monkeypatch.setattr(synth, "photograph", fail_late)
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
        corr = [np.corrcoef(a, synth.transform(b, k).ravel())[0, 1] for k in range(8)]
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


# --- the default set is unchanged by the n_classes option --------------------------------------
# Recorded from the generator before n_classes existed (seed 0, SMALL): a hash of every planned
# value and of the label and duplicate tables (exact: they come from numpy's seeded generators and
# string formatting; README.md, which names the module, is checked on its own), and per image its nucleus/cell area ratio and decoded mean intensity (compared
# with a tolerance: they pass through OpenCV's float blur and the JPEG codec, whose last bits may
# differ across CPUs and OpenCV builds). All-file sha256 on the recording machine (x86_64, the
# pinned opencv-python-headless): f4ca5d8d4d5778c93c8eadaadf33143dc00ba2a7cfa807f3f9c78382468985eb.
DEFAULT_PLAN_SHA256 = "ab622478a9a11d658b713fd4f0f219907d2a2e66d19e31bd0afa3b0c8f7fdc92"
DEFAULT_FRAC = [0.199, 0.084, 0.112, 0.065, 0.188, 0.019, 0.525, 0.782, 0.094, 0.112, 0.074, 0.095, 0.567, 0.351,
                0.087, 0.033, 0.108, 0.403, 0.142, 0.264, 0.167, 0.269, 0.132, 0.149, 0.234, 0.275, 0.089, 0.035,
                0.275, 0.285, 0.278, 0.407, 0.664, 0.405, 0.199, 0.029, 0.251, 0.12, 0.095, 0.325, 0.074, 0.567,
                0.189, 0.167, 0.058, 0.097, 0.044, 0.436]
DEFAULT_MEANS = [225.7, 215.0, 216.1, 225.1, 225.9, 223.2, 226.9, 214.4, 222.9, 217.5, 230.0, 221.6, 224.4, 221.4,
                 220.1, 211.8, 217.3, 227.0, 231.5, 227.6, 227.0, 222.8, 223.6, 223.2, 215.3, 228.9, 220.0, 214.2,
                 221.5, 225.7, 223.4, 214.1, 223.2, 219.9, 227.3, 215.1, 231.5, 226.6, 215.9, 212.9, 221.9, 212.8,
                 224.4, 233.5, 224.6, 211.0, 230.6, 225.0]


def test_default_set_is_what_it_was_before_n_classes(small):
    import hashlib
    out, summary = small
    meta = pd.read_csv(out / "synth_meta.csv")
    h = hashlib.sha256(meta[["id", "split", "label", "true_label", "site", "stain_batch", "n_cells"]]
                       .to_csv(index=False).encode())
    for f in ("test_labels.csv", "duplicates_truth.csv"):
        h.update((out / f).read_bytes())
    assert h.hexdigest() == DEFAULT_PLAN_SHA256
    assert "`cellclf_utils.data.synth.generate(out_dir, seed=0, size=48, n_train_per_class=12, n_test_per_class=4, " \
           "dup_fraction=0.05, n_test_dups=3, label_noise=0.03)`" in (out / "README.md").read_text()
    assert np.allclose(meta.nucleus_area_frac, DEFAULT_FRAC, atol=0.01)
    means = [read_image(out / i).mean() for i in meta.id]
    assert np.allclose(means, DEFAULT_MEANS, atol=0.5)
    assert summary["classes"] == list(synth.CLASSES) and summary["n_classes"] == 3


def test_n_classes_3_is_the_default_byte_for_byte(tmp_path, small):
    out, _ = small
    synth.generate(tmp_path / "three", seed=0, n_classes=3, **SMALL)
    assert _files(out) == _files(tmp_path / "three")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """8 classes, 40 training images each (no noise, no copies) at 32 px: enough for class means."""
    out = tmp_path_factory.mktemp("graded") / "synth"
    summary = synth.generate(out, seed=0, size=32, n_train_per_class=40, n_test_per_class=1, n_classes=8,
                             label_noise=0, dup_fraction=0, n_test_dups=0, progress=False)
    return out, summary


def test_any_number_of_classes(graded):
    out, summary = graded
    names = synth.class_names(8)
    assert names == ("normal", *(f"grade_{k}" for k in range(1, 8)))
    assert summary["classes"] == list(names) and summary["counts"]["train"] == {c: 40 for c in names}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted([*names, "test"])
    labels = pd.read_csv(out / "test_labels.csv")
    assert sorted(labels.label) == sorted(names)
    readme = (out / "README.md").read_text()
    assert "n_classes=8" in readme and "8 classes: normal, grade_1" in readme
    assert synth.class_names(2) == ("normal", "abnormal")
    assert synth.class_names(12)[1] == "grade_01", "zero-padded: folder order is grade order"


def test_grades_are_ordered_but_overlap(graded):
    out, _ = graded
    meta = pd.read_csv(out / "synth_meta.csv")
    names = list(synth.class_names(8))
    frac = meta[meta.split == "train"].groupby("true_label").nucleus_area_frac
    means = frac.mean()[names].to_numpy()
    assert (np.diff(means) > 0).all(), means  # severity grows with the grade
    q = frac.quantile([0.1, 0.9]).unstack().loc[names]
    # neighbours overlap: each grade's top decile reaches past the next grade's bottom decile
    assert (q[0.9].to_numpy()[1:-1] > q[0.1].to_numpy()[2:]).all()
    severity, nuclei = synth.class_spec(8)
    assert [m for m, _ in severity.values()] == sorted(m for m, _ in severity.values())
    assert all(abs(sum(p) - 1) < 1e-9 and min(p) >= 0 for p in nuclei.values())
    assert synth.class_spec(3) == (synth.SEVERITY, synth.N_NUCLEI_P)


@pytest.mark.parametrize("n", [1, 21, 2.5, True, "8"])
def test_bad_n_classes(tmp_path, n):
    with pytest.raises(ValueError, match="n_classes must be an integer from 2 to 20"):
        synth.generate(tmp_path / "x", n_classes=n, **SMALL)
    assert not (tmp_path / "x").exists()
