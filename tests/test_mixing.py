import numpy as np
import pytest

from cellclf_utils import mixing


def _batch(n=8, size=10, classes=3):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, 3)).astype("uint8")
    y = np.eye(classes, dtype="float32")[np.arange(n) % classes]
    return x, y


def test_mixup_blends_images_and_labels_with_the_same_weight():
    x, y = _batch()
    perm = np.roll(np.arange(8), 1)
    xm, ym = mixing.mixup(x, y, 0.7, perm)
    np.testing.assert_allclose(xm[0], 0.7 * x[0] + 0.3 * x[perm[0]], rtol=1e-5)
    np.testing.assert_allclose(ym.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(ym[0], 0.7 * y[0] + 0.3 * y[perm[0]])


def test_cutmix_label_share_is_the_pasted_area():
    x, y = _batch(size=20)
    perm = np.roll(np.arange(8), 1)
    xm, ym = mixing.cutmix(x, y, 0.75, perm, np.random.default_rng(3))
    pasted = (xm != x.astype("float32")).any(axis=(0, 3))  # pixels taken from the partner
    share = pasted.mean()
    assert 0 < share <= 0.25 + 1e-9  # a box of sqrt(0.25) per side, clipped at the border
    partner = ym[0, np.argmax(y[perm[0]])]
    assert partner == pytest.approx(share, abs=0.03)
    np.testing.assert_allclose(ym.sum(1), 1.0, rtol=1e-6)


def test_mixed_batches_cover_the_data_and_weight_classes():
    x, y = _batch(n=10)
    ds = mixing.MixedBatches(x, y, 4, class_weight={0: 2.0, 1: 1.0, 2: 0.5}, seed=1)
    assert len(ds) == 3
    xs, ys, ws = zip(*(ds[i] for i in range(len(ds))))
    # full batches (one compiled step): 12 rows, every image at least once
    assert [len(b) for b in xs] == [4, 4, 4] and xs[0].dtype == np.float32
    # no mixing: weight = its class weight
    seen = np.concatenate([b.reshape(len(b), -1)[:, :5] for b in xs])
    assert len({tuple(r) for r in seen}) == 10
    expected = {0: 2.0, 1: 1.0, 2: 0.5}
    for yb, wb in zip(ys, ws):
        np.testing.assert_allclose(wb, [expected[int(i)] for i in yb.argmax(1)])


def test_mixed_batches_mix_with_soft_labels_and_reshuffle():
    x, y = _batch(n=16)
    ds = mixing.MixedBatches(x, y, 8, mixup=0.4, cutmix=1.0, seed=0)
    _, yb, wb = ds[0]
    assert yb.shape == (8, 3) and np.allclose(yb.sum(1), 1) and np.allclose(wb, 1.0)
    soft = [(ds[i][1].max(1) < 1).any() for i in range(2) for _ in range(5)]
    assert any(soft)
    order = ds.order.copy()
    ds.on_epoch_end()
    assert not np.array_equal(order, ds.order)


def test_negative_alpha_is_refused():
    x, y = _batch()
    with pytest.raises(ValueError, match="mixup and cutmix must be >= 0"):
        mixing.MixedBatches(x, y, 4, mixup=-1)
