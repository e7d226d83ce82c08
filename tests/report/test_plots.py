"""plots: every figure has the expected axes/rows for 2 and 8 classes, and save() is atomic."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cellclf_utils.report import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def dataset(n_classes, per_class=5, size=16):
    """Return (images, labels, class_names): each class one flat colour, ``per_class`` images."""
    labels = np.repeat(np.arange(n_classes), per_class)
    colours = np.stack([np.linspace(20, 230, n_classes), np.full(n_classes, 90), np.linspace(230, 20, n_classes)], 1)
    images = np.broadcast_to(colours[labels][:, None, None, :].astype(np.uint8), (len(labels), size, size, 3)).copy()
    return images, labels, [f"class_{k}" for k in range(n_classes)]


N_CLASSES = pytest.mark.parametrize("n", [2, 8])


def grid_rows(fig) -> int:
    return fig.axes[0].get_subplotspec().get_gridspec().nrows


@N_CLASSES
def test_class_counts_one_bar_per_class_annotated(n):
    _, labels, names = dataset(n)
    labels = np.r_[labels, np.zeros(3, int)]  # class 0 has 3 more
    fig = plots.class_counts(labels, names, title="counts")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert [round(p.get_height()) for p in ax.patches] == [8] + [5] * (n - 1)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "8" in texts and "5" in texts
    assert ax.get_title() == "counts"


@N_CLASSES
def test_image_sizes_one_series_per_class(n):
    _, labels, names = dataset(n)
    df = pd.DataFrame({"height": 100 + labels, "width": 120, "label": [names[i] for i in labels]})
    fig = plots.image_sizes(df)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].collections) == n
    assert len(fig.axes[0].get_legend().get_texts()) == n


def test_one_image_size_is_a_line_of_text_not_a_scatter_of_one_point():
    df = pd.DataFrame({"height": [128] * 5, "width": 128, "label": ["a", "a", "b", "b", "b"]})
    fig = plots.image_sizes(df)
    assert [t.get_text() for t in fig.axes[0].texts] == ["all 5 images are 128×128 px"]
    assert fig.get_size_inches()[1] < 2


def test_image_sizes_empty_frame_gives_a_message():
    fig = plots.image_sizes(pd.DataFrame(columns=["height", "width", "label"]))
    assert "no images" in " ".join(t.get_text() for t in fig.axes[0].texts)


@N_CLASSES
def test_montage_one_row_per_class_sampled_with_seed(n):
    images, labels, names = dataset(n, per_class=5)
    fig = plots.montage(images, labels, names, per_class=4, seed=1, titles=[f"id{i}" for i in range(len(labels))])
    assert isinstance(fig, Figure)
    assert grid_rows(fig) == n and len(fig.axes) == n * 4
    assert sum(len(ax.images) for ax in fig.axes) == n * 4
    # row k shows class k's images only, captioned with their ids
    for k in range(n):
        for ax in fig.axes[4 * k:4 * k + 4]:
            assert np.array_equal(ax.images[0].get_array()[0, 0], images[labels == k][0, 0, 0])
            assert int(ax.get_title()[2:]) in np.flatnonzero(labels == k)
    again = plots.montage(images, labels, names, per_class=4, seed=1, titles=[f"id{i}" for i in range(len(labels))])
    assert [a.get_title() for a in fig.axes] == [a.get_title() for a in again.axes]


def test_montage_leaves_cells_blank_when_a_class_is_small():
    images, labels, names = dataset(2, per_class=5)
    keep = np.r_[np.flatnonzero(labels == 0)[:2], np.flatnonzero(labels == 1)]
    fig = plots.montage(images[keep], labels[keep], names, per_class=4)
    assert len(fig.axes) == 8
    assert [len(ax.images) for ax in fig.axes] == [1, 1, 0, 0, 1, 1, 1, 1]


@N_CLASSES
@pytest.mark.parametrize("space", ["rgb", "hsv", "hed"])
def test_colour_distributions_one_subplot_per_channel_one_line_per_class(n, space):
    images, labels, names = dataset(n)
    fig = plots.colour_distributions(images, labels, names, space)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    for ax in fig.axes:
        assert len(ax.lines) == n
    assert [ax.get_title() for ax in fig.axes] == list(plots.SPACES[space])


def test_colour_distributions_are_densities():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    labels = np.repeat([0, 1], 10)
    fig = plots.colour_distributions(images, labels, ["a", "b"], "rgb", n_pixels=2000)
    for line in fig.axes[0].lines:
        x, y = line.get_data()
        assert np.sum(y * np.diff(x)[0]) == pytest.approx(1.0, abs=1e-6)


def test_colour_distributions_rejects_unknown_space():
    images, labels, names = dataset(2)
    with pytest.raises(ValueError, match=r"'rgb', 'hsv', 'hed'.*'lab'"):
        plots.colour_distributions(images, labels, names, "lab")


@N_CLASSES
def test_mean_images_side_by_side_and_correct(n):
    images, labels, names = dataset(n)
    images[np.flatnonzero(labels == 0)[0]] = 0  # one black image in class 0
    fig = plots.mean_images(images, labels, names)
    assert isinstance(fig, Figure) and len(fig.axes) == n and grid_rows(fig) == 1
    shown0 = fig.axes[0].images[0].get_array()
    expected0 = np.round(images[labels == 0].mean(axis=0)).astype(np.uint8)
    assert np.array_equal(shown0, expected0)
    assert [ax.get_title() for ax in fig.axes] == [f"{c} (5)" for c in names]


def test_duplicate_groups_packed_side_by_side_captioned_with_ids():
    images, _, _ = dataset(2, per_class=5)
    ids = [f"img{i}.png" for i in range(10)]
    groups = [0, 1, 2, 0, 3, 0, 4, 5, 4, 6]  # group 0 has 3 images, group 4 has 2
    fig = plots.duplicate_groups(images, ids, groups)
    # 3 columns per group + a gap column; two groups fit one row
    assert grid_rows(fig) == 1 and len(fig.axes) == 7
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["img0.png", "img3.png", "img5.png", "", "img6.png", "img8.png", ""]


def test_duplicate_groups_caps_rows():
    images = np.zeros((40, 8, 8, 3), np.uint8)
    fig = plots.duplicate_groups(images, [str(i) for i in range(40)], np.arange(40) // 2, max_groups=5)
    assert grid_rows(fig) == 2  # four pairs per row
    assert sum(bool(ax.get_title()) for ax in fig.axes) == 10


def test_duplicate_groups_none_found():
    images, _, _ = dataset(2)
    fig = plots.duplicate_groups(images, list(range(10)), np.arange(10))
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert "no near-duplicates found" in [t.get_text() for t in fig.axes[0].texts]


def test_bad_files_table():
    empty = plots.bad_files_table([])
    assert list(empty.columns) == ["path", "reason"] and len(empty) == 0
    assert list(plots.bad_files_table(None).columns) == ["path", "reason"]
    df = plots.bad_files_table([{"path": "/a.jpg", "reason": "not a decodable image"}])
    assert df.to_dict("records") == [{"path": "/a.jpg", "reason": "not a decodable image"}]


@N_CLASSES
def test_confusion_matrix_counts_and_row_percentages(n):
    cm = np.eye(n, dtype=int) * 3
    cm[0, 1] = 1  # class 0: 3 right, 1 wrong -> 75% / 25%
    fig = plots.confusion_matrix(cm, [f"c{k}" for k in range(n)], title="CM")
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # heatmap + colour bar
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == n * n
    assert texts[0] == "3\n75%" and texts[1] == "1\n25%"
    assert ax.get_title() == "CM" and [t.get_text() for t in ax.get_yticklabels()] == [f"c{k}" for k in range(n)]
    raw = plots.confusion_matrix(cm, [f"c{k}" for k in range(n)], normalize=False)
    assert [t.get_text() for t in raw.axes[0].texts][:2] == ["3", "1"]


def test_confusion_matrix_empty_row_is_zero_percent():
    fig = plots.confusion_matrix(np.array([[2, 0], [0, 0]]), ["a", "b"])
    assert [t.get_text() for t in fig.axes[0].texts] == ["2\n100%", "0\n0%", "0\n0%", "0\n0%"]


def history(folds=2, epochs=3, cols=("loss", "val_loss", "accuracy", "val_accuracy", "val_auc", "lr")):
    rows = [{"fold": f, "epoch": e, **{c: 0.1 * (e + 1) for c in cols}} for f in range(folds) for e in range(epochs)]
    return pd.DataFrame(rows)


def test_learning_curves_one_subplot_per_metric_one_line_per_fold():
    fig = plots.learning_curves(history())
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "auc", "lr"]
    lines = {ax.get_title(): ax.lines for ax in fig.axes}
    assert len(lines["loss"]) == 4  # 2 folds x (train, val)
    assert len(lines["auc"]) == 2  # val only
    assert {line.get_linestyle() for line in lines["loss"]} == {"-", "--"}


def test_learning_curves_tolerate_absent_metrics():
    fig = plots.learning_curves(history(folds=3, cols=("loss", "val_loss")))
    assert [ax.get_title() for ax in fig.axes] == ["loss"]
    assert len(fig.axes[0].lines) == 6
    empty = plots.learning_curves(pd.DataFrame(columns=["fold", "epoch"]))
    assert "no training history" in [t.get_text() for t in empty.axes[0].texts]


@N_CLASSES
def test_per_class_recall_bars(n):
    recall = {f"c{k}": k / n for k in range(n)}
    fig = plots.per_class_recall(recall, title="R")
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and len(ax.patches) == n
    assert [p.get_height() for p in ax.patches] == pytest.approx(list(recall.values()))
    assert ax.get_title() == "R"


def test_save_writes_png_atomically(tmp_path):
    fig = plots.class_counts([0, 1, 1], ["a", "b"])
    out = plots.save(fig, tmp_path / "new" / "dir" / "counts.png")
    assert out == tmp_path / "new" / "dir" / "counts.png"
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000
    assert [p.name for p in out.parent.iterdir()] == ["counts.png"]  # no temp file left
    plots.save(fig, out)  # replacing works too
    assert [p.name for p in out.parent.iterdir()] == ["counts.png"]


def test_save_failure_leaves_nothing(tmp_path, monkeypatch):
    fig = plots.class_counts([0, 1], ["a", "b"])

    def boom(path, **k):  # half a file, then a failure
        open(path, "wb").write(b"\x89PNG half")
        raise RuntimeError("disk full")
    monkeypatch.setattr(fig, "savefig", boom)
    with pytest.raises(RuntimeError):
        plots.save(fig, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_learning_curves_shade_the_head_phase_and_skip_labels():
    h = history(epochs=4).assign(phase=lambda d: np.where(d.epoch < 2, "head", "train"))
    fig = plots.learning_curves(h)
    assert "phase" not in [ax.get_title() for ax in fig.axes]  # a label column is not a metric
    spans = [p for p in fig.axes[0].patches]
    assert len(spans) == 1 and spans[0].get_x() == -0.5
    assert "head warm-up" in [t.get_text() for t in fig.legends[0].texts]


def test_learning_curves_star_each_folds_kept_epoch_on_its_validation_curves():
    h = history(epochs=5)
    h = h[~((h.fold == 1) & (h.epoch > 2))]  # fold 1 stopped early, after epoch 2
    fig = plots.learning_curves(h, kept={0: 3, 1: 1})
    stars = {ax.get_title(): [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines
                              if line.get_marker() == "*"] for ax in fig.axes}
    assert stars["loss"] == [([3], [pytest.approx(0.4)]), ([1], [pytest.approx(0.2)])]  # on val_loss only
    assert len(stars["auc"]) == 2 and stars["lr"] == []  # no validation curve, no star
    assert "epoch kept" in [t.get_text() for t in fig.legends[0].texts]
    assert "epoch kept" not in [t.get_text() for t in plots.learning_curves(h).legends[0].texts]


def test_model_comparison_shows_every_model_with_its_interval():
    import pandas as pd
    t = pd.DataFrame({"model": ["ensemble: mean", "02_cnn", "03_x"], "accuracy": [0.8, 0.7, 0.6],
                      "ci_low": [0.75, 0.65, 0.55], "ci_high": [0.85, 0.75, 0.65]})
    fig = plots.model_comparison(t, floor=0.5)
    ax = fig.axes[0]
    assert [tick.get_text() for tick in ax.get_yticklabels()] == ["03_x", "02_cnn", "ensemble: mean"]
    assert len(ax.patches) == 3 and ax.patches[2].get_width() == 0.8


def test_before_after_pairs_teacher_and_student():
    import pandas as pd
    t = pd.DataFrame({"teacher": ["02_cnn", "03_x"], "round": [1, 1], "cv_before": [0.6, 0.8],
                      "cv_after": [0.65, 0.78]})
    ax = plots.before_after(t).axes[0]
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["02_cnn\nround 1", "03_x\nround 1"]
    assert sorted(p.get_height() for p in ax.patches) == [0.6, 0.65, 0.78, 0.8]
