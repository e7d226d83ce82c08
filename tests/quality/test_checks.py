"""Data-quality report: planted problems are found by name, numbers are right, HTML is whole."""
import json
import re
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest

from cellclf_utils import cli, quality
from cellclf_utils.data import synth
from cellclf_utils.data.images import read_image
from cellclf_utils.quality import checks, colour
from cellclf_utils.report import plots, quality_page
from conftest import write_image

GREEN = "alpha/green_cell.png"              # a purple cell re-stained green: a colour outlier
MOVED = "alpha/moved_from_beta.jpg"         # a beta image copied into the alpha folder
LEAK = "test/leak.png"                      # a rotated, darker copy of a training image
LEAK_SOURCE = "alpha/a03.jpg"
FLIPPED = "alpha/flipped_a05.png"           # a flipped copy inside the training set
WIDE = "alpha/wide.png"                     # stretched to 48 x 120


def restain(img: np.ndarray, od: tuple) -> np.ndarray:
    """Return ``img`` re-stained with one stain: its optical density (summed over channels)
    spread along the RGB absorption vector ``od`` (Beer-Lambert, as the generator draws)."""
    density = -np.log((img.astype(np.float32) + 1) / 256).sum(-1, keepdims=True)
    v = 1.5 * np.asarray(od, np.float32) / np.sum(od)
    return np.clip(255 * np.exp(-density * v), 0, 255).round().astype(np.uint8)


BROWN = (0.2, 0.45, 0.9)     # absorbs blue: a brown (DAB-like) class
GREEN_OD = (1.0, 0.05, 1.0)  # absorbs red and blue: a green image no class has


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Two colour classes from the synthetic generator (alpha: its purple cells, 28 images;
    beta: cells re-stained brown, 14 images) with planted problems, and its quality report."""
    base = tmp_path_factory.mktemp("quality")
    src = base / "synth"
    synth.generate(src, seed=2, size=48, n_train_per_class=14, n_test_per_class=2, dup_fraction=0, n_test_dups=0,
                   label_noise=0, progress=False)
    root = base / "ds"
    alpha = sorted((src / "normal").glob("*.jpg")) + sorted((src / "degenerated_severe").glob("*.jpg"))
    for i, p in enumerate(alpha):
        (root / "alpha").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / "alpha" / f"a{i:02d}.jpg")
    for i, p in enumerate(sorted((src / "degenerated").glob("*.jpg"))):
        write_image(root / "beta" / f"b{i:02d}.jpg", restain(read_image(p), BROWN), ".jpg")
    for i, p in enumerate(sorted((src / "test").glob("*.jpg"))):
        write_image(root / "test" / f"t{i}.png", read_image(p))
    a = read_image(root / "alpha" / "a10.jpg")
    write_image(root / GREEN, restain(a, GREEN_OD))
    shutil.copy(root / "beta" / "b04.jpg", root / MOVED)
    leak = np.rot90(read_image(root / LEAK_SOURCE)).astype(np.float32) * 0.95
    write_image(root / LEAK, leak.round().astype(np.uint8))
    write_image(root / FLIPPED, read_image(root / "alpha" / "a05.jpg")[:, ::-1])
    write_image(root / WIDE, cv2.resize(read_image(root / "alpha" / "a20.jpg"), (120, 48)))
    with pytest.MonkeyPatch.context() as mp:  # module fixtures run before conftest's per-test isolation
        mp.setenv("CELLCLF_CACHE", str(base / "cache"))
        rep = quality.run(root)
    return root, rep


def test_planted_colour_outlier_is_flagged_by_name(planted):
    _, rep = planted
    out = rep.colour_outliers
    assert out.id.iloc[0] == GREEN, out
    assert "green" in out.reason.iloc[0] and out.score.iloc[0] > colour.ISOLATION
    # the brown class is a class (14 alike images), not 14 outliers; the moved image has a crowd too
    assert len(out) <= 2 and MOVED not in set(out.id) and not out.id.str.startswith("beta/").any()


def test_image_in_the_wrong_class_folder_is_unlike_its_class(planted):
    _, rep = planted
    un = rep.unlike_class
    assert MOVED in set(un.id), un
    row = un.set_index("id").loc[MOVED]
    assert row.label == "alpha" and row.nearest_class == "beta"
    assert row.own_distance > colour.UNLIKE_OWN and row.other_distance < row.own_distance / 2
    assert "like beta" in row.reason
    assert GREEN not in set(un.id), "unlike every class is a colour outlier, not a wrong folder"


def test_duplicates_within_training_and_across_splits(planted):
    _, rep = planted
    cross = rep.cross_duplicates
    assert LEAK in set(cross.test_id), cross
    hit = cross[cross.test_id == LEAK].iloc[0]
    assert hit.train_id == LEAK_SOURCE and hit.train_label == "alpha" and not hit.exact
    assert LEAK_SOURCE in hit.reason
    d = rep.duplicates
    # the copy under another label comes first and is called what it is
    first = d.iloc[0]
    assert {first.id_a, first.id_b} == {"beta/b04.jpg", MOVED} and first.exact
    assert "identical files under two labels" in first.reason
    pairs = {frozenset(p) for p in zip(d.id_a, d.id_b)}
    assert frozenset({"alpha/a05.jpg", FLIPPED}) in pairs


def test_balance_and_sizes(planted):
    _, rep = planted
    b = rep.balance
    assert b["counts"] == {"alpha": 32, "beta": 14}  # 28 + green, moved, flipped, wide
    assert b["smallest"] == "beta" and b["smallest_n"] == 14 and b["largest"] == "alpha"
    assert b["imbalance_ratio"] == pytest.approx(32 / 14, abs=1e-3) and b["imbalanced"]
    assert b["majority_share"] == pytest.approx(32 / 46, abs=1e-4)
    s = rep.sizes
    assert s["distinct_sizes"] == 2 and s["width"]["max"] == 120 and s["aspect"]["max"] == 2.5
    assert list(rep.size_outliers.id) == [WIDE] and "aspect 2.5:1" in rep.size_outliers.reason[0]


def test_class_balance_numbers():
    b = checks.class_balance({"a": 10, "b": 4, "c": 6})
    assert (b["smallest"], b["smallest_n"], b["largest"], b["largest_n"]) == ("b", 4, "a", 10)
    assert b["imbalance_ratio"] == 2.5 and b["majority_share"] == 0.5 and b["total"] == 20 and b["imbalanced"]
    assert not checks.class_balance({"a": 5, "b": 4})["imbalanced"]


def test_robust_z_and_isolation():
    rng = np.random.default_rng(0)
    # a bimodal feature (two stain batches) and one far point
    v = np.r_[rng.normal(0, 1, 60), rng.normal(10, 1, 40), 40.0]
    z = colour.robust_z(pd.DataFrame({"f": v}))
    med, mad = np.median(v), 1.4826 * np.median(np.abs(v - np.median(v)))
    assert z.f.iloc[-1] == pytest.approx((40 - med) / mad)
    zs = colour.robust_z(pd.DataFrame({"f": v}), spread=True)  # the IQR keeps the modes close
    assert abs(zs.f.iloc[60:100]).median() < 2 < abs(z.f.iloc[60:100]).median() and zs.f.iloc[-1] > 5
    # isolation in 3 features: two stain batches (300 and 200 images) and one far image
    x = np.r_[rng.normal(0, 1, (300, 3)), rng.normal(6, 1, (200, 3)), [[3, 3, 30]]]
    zs = colour.robust_z(pd.DataFrame(x), spread=True)
    iso = colour.isolation(zs, np.ones(len(x), bool))
    assert iso[-1] > 2 * colour.ISOLATION and (iso[:500] > colour.ISOLATION).sum() == 0
    assert np.median(iso[300:500]) == pytest.approx(1, abs=0.3), "the smaller batch is a crowd, not outliers"
    # scored against a reference subset: a test row at the far point is isolated too
    assert colour.isolation(zs, np.r_[np.ones(500, bool), False])[-1] > 2 * colour.ISOLATION
    same = colour.robust_z(pd.DataFrame({"f": np.ones(5)}))  # no spread: finite
    assert np.isfinite(same.to_numpy()).all()


def test_figures_show_flagged_thumbnails_with_names(planted):
    _, rep = planted
    figs = plots.quality_figures(rep)
    assert set(figs) == {k for k, n in rep.counts().items() if n}
    fig, caption = figs["colour_outlier"]
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert any(t.startswith(GREEN) and "green" in t for t in titles) and "found" in caption
    assert any(ax.get_images() for ax in fig.axes)
    import matplotlib.pyplot as plt
    for f, _ in figs.values():
        plt.close(f)


def test_html_report_is_self_contained_with_thumbnails(planted, tmp_path):
    _, rep = planted
    path = quality_page.write_html(rep, tmp_path / "q" / "report.html")
    page = path.read_text(encoding="utf-8")
    imgs = re.findall(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    n_rows = len(rep.colour_outliers) + len(rep.unlike_class) + 2 * len(rep.duplicates) \
        + 2 * len(rep.cross_duplicates) + len(rep.size_outliers)
    assert len(imgs) >= n_rows + 2  # a thumbnail per finding, plus the figures
    assert not re.search(r'src="(?!data:)', page) and "<link" not in page
    for name in (GREEN, MOVED, LEAK, WIDE):
        assert name in page
    # the thumbnail next to the green cell is the green cell
    thumb = re.search(rf'alt="{re.escape(GREEN)}" src="data:image/png;base64,([^"]+)"', page).group(1)
    import base64
    img = cv2.imdecode(np.frombuffer(base64.b64decode(thumb), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (checks.THUMB, checks.THUMB, 3)


def test_cli_check_prints_findings_and_writes_the_report(planted, tmp_path, capsys):
    root, _ = planted
    out = tmp_path / "check.html"
    assert cli.main(["data", "check", str(root), "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "colour / stain outliers: 1" in text or "colour / stain outliers: 2" in text
    assert f"    {GREEN}: unusual stain colour" in text
    assert f"    {LEAK}: near-duplicate" in text and "imbalance ratio 2.29 (imbalanced)" in text
    assert f"data-quality report: {out}" in text and out.stat().st_size > 10_000
    assert cli.main(["data", "check", str(root), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    q = rep["quality"]
    assert q["findings"]["duplicate_train_test"] == 1 and q["worst"]["colour_outlier"][0] == GREEN
    assert q["balance"]["smallest"] == "beta"
    assert cli.main(["data", "check", str(root), "--no-quality"]) == 0
    assert "data quality" not in capsys.readouterr().out


def test_tiny_sets_do_not_break_the_report(tmp_path, small_dataset):
    # 2 classes of 6 one-blob images; and one class with fewer images than a centre needs
    rep = quality.run(small_dataset)
    assert rep.balance["imbalance_ratio"] == 1.0 and len(rep.frame) == 16
    for p in sorted((small_dataset / "beta").iterdir())[2:]:
        p.unlink()
    rep = quality.run(small_dataset)
    assert rep.balance["counts"] == {"alpha": 6, "beta": 2} and rep.unlike_class.empty
    assert "<html" in quality_page.to_html(rep) and "None found." in quality_page.to_html(rep)
