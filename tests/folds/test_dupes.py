"""Rotation/flip-invariant near-duplicate finder, measured on the synthetic set's planted copies."""
import cv2
import numpy as np
import pandas as pd
import pytest

from cellclf_utils.folds import dupes
from cellclf_utils.data import synth
from cellclf_utils.data.images import read_image


def _load(root):
    """Return (train ids, train images, test ids, test images, planted copy pairs) of a synthetic set."""
    meta = pd.read_csv(root / "synth_meta.csv")
    imgs = {i: read_image(root / i) for i in meta.id}
    train = [i for i in meta.id if not i.startswith("test/")]
    test = [i for i in meta.id if i.startswith("test/")]
    truth = pd.read_csv(root / "duplicates_truth.csv")
    return train, [imgs[i] for i in train], test, [imgs[i] for i in test], truth


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The default set (1,200 + 120 images, 63 planted copies), generated once."""
    out = tmp_path_factory.mktemp("dupes") / "synth0"
    synth.generate(out, seed=0, progress=False)
    return _load(out)


@pytest.fixture(scope="module")
def other_seed(tmp_path_factory):
    """Another seed, half size (600 + 60 images, 33 planted copies)."""
    out = tmp_path_factory.mktemp("dupes") / "synth1"
    synth.generate(out, seed=1, n_train_per_class=200, n_test_per_class=20, progress=False)
    return _load(out)


def _rephotograph(img, t, rng):
    """Return ``img`` under symmetry ``t``, a little darker and tinted, with fresh noise."""
    out = synth.transform(img, t).astype(np.float32) * 0.94 * np.array([1.02, 1.0, 0.98], np.float32)
    return np.clip(out + rng.normal(0, 3, out.shape), 0, 255).astype(np.uint8)


def test_hamming_known_values():
    assert dupes.hamming(np.uint64(0), np.uint64(2**64 - 1)) == 64
    assert dupes.hamming(np.uint64(0b1011), np.uint64(0b0001)) == 2
    assert dupes.hamming(np.uint64(12345), np.uint64(12345)) == 0
    d = dupes.hamming(np.array([[0], [1]], np.uint64), np.array([0, 3, 7], np.uint64))
    assert d.shape == (2, 3) and d.tolist() == [[0, 2, 3], [1, 1, 2]]


def test_hashes_follow_the_symmetries(full):
    _, imgs, _, _, _ = full
    h = dupes.dihedral_hashes(imgs[:20])
    assert h.shape == (20, 8) and h.dtype == np.uint64
    assert len(np.unique(h[:, 0])) == 20
    for t in range(8):
        ht = dupes.dihedral_hashes([synth.transform(im, t) for im in imgs[:20]])[:, 0]
        assert (ht == h[:, t]).all(), synth.TRANSFORMS[t]


@pytest.mark.parametrize("t", range(1, 8), ids=synth.TRANSFORMS[1:])
def test_a_planted_copy_is_found_under_each_symmetry(full, t):
    train, imgs, _, _, truth = full
    rng = np.random.default_rng(t)
    planted = set(truth["copy"]) | set(truth.original)
    unrelated = [i for i, name in enumerate(train) if name not in planted]
    picked = [imgs[i] for i in rng.choice(unrelated, 30, replace=False)]
    ids = [f"img{i}" for i in range(30)] + ["copy"]
    res = dupes.find_groups(picked + [_rephotograph(picked[7], t, rng)], ids)
    assert res.group[-1] == res.group[7]
    assert res.pairs[["id_a", "id_b"]].values.tolist() == [["img7", "copy"]]
    assert res.group.max() == 29 and res.group[:30].tolist() == list(range(30)), "ids in order of first appearance"


def test_unrelated_images_are_not_grouped():
    rng = np.random.default_rng(0)
    imgs = [cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 2) for _ in range(50)]
    res = dupes.find_groups(imgs, range(50))
    assert res.group.tolist() == list(range(50)) and res.pairs.empty
    assert list(res.pairs.columns) == ["id_a", "id_b", "distance"]


def test_non_square_images_of_different_sizes():
    rng = np.random.default_rng(1)
    base = cv2.resize(cv2.GaussianBlur(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8), (0, 0), 1.5), (140, 90))
    other = cv2.resize(cv2.GaussianBlur(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8), (0, 0), 1.5), (140, 90))
    smaller = cv2.resize(_rephotograph(base, 1, rng), (64, 100), interpolation=cv2.INTER_AREA)  # rot90, 0.7x
    res = dupes.find_groups([base, other, smaller, np.ascontiguousarray(base[::-1])], ["a", "b", "c", "d"])
    assert res.group.tolist() == [0, 1, 0, 0]
    assert sorted(map(tuple, res.pairs[["id_a", "id_b"]].values)) == [("a", "c"), ("a", "d"), ("c", "d")]


def _precision_recall(imgs, ids, truth):
    group = dict(zip(ids, dupes.find_groups(imgs, ids).group))
    planted = {frozenset(p) for p in zip(truth["copy"], truth.original)}
    found = sum(group[a] == group[b] for a, b in map(tuple, planted))
    sizes = np.bincount(list(group.values()))
    grouped = int((sizes * (sizes - 1) // 2).sum())
    return found / max(grouped, 1), found / len(planted), len(planted)


@pytest.mark.parametrize("data", ["full", "other_seed"])
def test_precision_and_recall_on_planted_copies(data, request):
    train, train_imgs, test, test_imgs, truth = request.getfixturevalue(data)
    precision, recall, n = _precision_recall(train_imgs + test_imgs, train + test, truth)
    assert n >= 30
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    # the folds hash 64-px thumbnails (folds.HASH_SIZE): the threshold must hold there too
    small = [cv2.resize(im, (64, 64), interpolation=cv2.INTER_AREA) for im in train_imgs + test_imgs]
    precision, recall, _ = _precision_recall(small, train + test, truth)
    assert precision >= 0.95 and recall >= 0.95, ("64 px", precision, recall)


def test_cross_pairs_finds_the_train_test_leaks(full):
    train, train_imgs, test, test_imgs, truth = full
    leaks = truth[truth["copy"].str.startswith("test/")]
    found = dupes.cross_pairs(train_imgs, train, test_imgs, [t.removeprefix("test/") for t in test])
    assert list(found.columns) == ["test_id", "train_id", "distance"]
    assert set(zip("test/" + found.test_id, found.train_id)) == set(zip(leaks["copy"], leaks.original))
    assert (found.distance <= dupes.DEFAULT_THRESHOLD).all()
    assert dupes.cross_pairs(train_imgs[:5], train[:5], [], []).empty
