"""report: leaderboard from metrics.json files, stage notebooks to HTML, and index.html."""
import json
import math
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest

from cellclf_utils import report
from cellclf_utils.report import index
from cellclf_utils.runfolder import RunFolderError

CODE = "marker_source_line = 41\nprint(marker_source_line + 1)"
OUTPUT = "visible_output_text 42"


def write_notebook(path):
    """A minimal executed-looking notebook: markdown, and a code cell with a faked output."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Stage heading"),
                nbformat.v4.new_code_cell(CODE, execution_count=1,
                                          outputs=[nbformat.v4.new_output("stream", name="stdout", text=OUTPUT + "\n")])]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def write_png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, np.zeros((4, 4, 3)))


def model_metrics(stage, title, acc, ci, auc, test=None, figures=()):
    return {"stage": stage, "title": title, "kind": "model", "model": f"{stage} model",
            "classes": ["normal", "low_grade", "high_grade"], "n_train": 12, "n_test": 4, "folds": 3,
            "cv": {"accuracy": acc, "accuracy_ci": ci, "macro_auc": auc,
                   "per_class_recall": {"normal": 0.9, "low_grade": 0.5, "high_grade": 0.75},
                   "confusion": [[3, 1, 0], [0, 2, 2], [0, 1, 3]], "n": 12},
            "test": test, "figures": [{"path": p, "caption": c} for p, c in figures], "skipped": [],
            "elapsed_s": 42.0, "an_unknown_key": {"nested": [1, 2]}}


@pytest.fixture
def run_dir(tmp_path):
    """A run with an EDA stage, two finished model stages (one run by hand, without a
    notebook), and an unfinished stage that has a notebook but no metrics.json."""
    run = tmp_path / "runs" / "demo-run"
    run.mkdir(parents=True)
    (run / "params.yaml").write_text("seed: 0\nfolds: 3\nlr: 0.001\n")
    (run / "folds.csv").write_text("id,fold,group,label\n" + "".join(
        f"img{i}.png,{i % 3},{i},{'normal' if i < 9 else 'abnormal'}\n" for i in range(12)))

    eda = run / "01_eda_colour"
    write_notebook(eda / "notebook.ipynb")
    write_png(eda / "figures" / "class_counts.png")
    (eda / "metrics.json").write_text(json.dumps({
        "stage": "01_eda_colour", "title": "EDA and colour", "kind": "eda", "n_train": 12, "n_test": 4,
        "counts": {"normal": 4, "low_grade": 4, "high_grade": 4}, "duplicate_groups": 55,
        "train_test_duplicates": 3,
        "figures": [{"path": "figures/class_counts.png", "caption": "Training images per class"}],
        "skipped": [{"path": "/data/normal/broken_file.jpg", "reason": "not a decodable image"}],
        "ignored": [{"path": "/data/normal/.DS_Store", "reason": "hidden file (its name starts with '.')"}],
        "notes": [{"path": "/data/normal/stack.tif", "note": "3 frames (a multi-page or animated file): frame 0 is used"}],
        "twelve_bit": 5}))

    base = run / "02_baseline_cnn"
    write_notebook(base / "notebook.ipynb")
    write_png(base / "figures" / "confusion_cv.png")
    write_png(base / "figures" / "recall_cv.png")
    (base / "metrics.json").write_text(json.dumps(model_metrics(
        "02_baseline_cnn", "Baseline CNN (write-up model)", 0.712, [0.680, 0.741], 0.85,
        test={"accuracy": 0.70, "accuracy_ci": [0.61, 0.78], "macro_auc": 0.84, "n": 4},
        figures=[("figures/confusion_cv.png", "Out-of-fold confusion matrix"),
                 ("figures/recall_cv.png", "Recall <b>per</b> class")])))

    xc = run / "03_xception"  # run by hand: no notebook.ipynb
    (xc / "figures").mkdir(parents=True)
    m = model_metrics("03_xception", "Xception", 0.80, [0.77, 0.83], None, test=None)
    m["cv"]["without_tta"] = {**m["cv"], "accuracy": 0.765, "accuracy_ci": [0.73, 0.80]}
    (xc / "metrics.json").write_text(json.dumps(m))

    write_notebook(run / "04_vgg16" / "notebook.ipynb")  # started, never finished
    return run


def test_leaderboard_order_and_values(run_dir):
    lb = report.leaderboard(run_dir)
    assert list(lb.columns) == ["stage", "title", "model", "cv_accuracy", "ci_low", "ci_high", "n", "macro_auc",
                                "test_accuracy", "cv_accuracy_no_tta"]
    assert list(lb.stage) == ["03_xception", "02_baseline_cnn"]  # EDA and unfinished stages left out
    best, base = lb.iloc[0], lb.iloc[1]
    assert best.cv_accuracy == 0.80 and (best.ci_low, best.ci_high) == (0.77, 0.83)
    assert math.isnan(best.macro_auc) and math.isnan(best.test_accuracy)
    assert base.title == "Baseline CNN (write-up model)" and base.model == "02_baseline_cnn model"
    assert (base.cv_accuracy, base.macro_auc, base.test_accuracy) == (0.712, 0.85, 0.70)
    assert best.cv_accuracy_no_tta == 0.765 and math.isnan(base.cv_accuracy_no_tta)  # TTA only in 03


def test_write_report_index(run_dir):
    index = report.write_report(run_dir)
    assert index == run_dir / "index.html"
    html = index.read_text()
    assert "demo-run" in html and "<details>" in html and "lr: 0.001" in html
    assert re.search(r"· \d+ kB on disk, 0 kB of it saved models \(the <code>keep_models</code>", html)
    # leaderboard: formatted CI, AUC, test accuracy with CI, best row highlighted, the CV note
    assert "71.2% [68.0–74.1]" in html and "80.0% [77.0–83.0]" in html
    assert "0.850" in html and "70.0% [61.0–78.0]" in html
    best_row = re.search(r'<tr class="best">(.*?)</tr>', html, re.S).group(1)
    assert "03_xception" in best_row and "02_baseline_cnn" not in best_row
    assert "76.5%" in best_row and "CV without TTA" in html  # what TTA changed, next to the score
    assert "CV without TTA accuracy, 95% CI</th><td>76.5% [73.0–80.0]" in html
    eda_section = html[html.index('id="01_eda_colour"'):html.index('id="02_baseline_cnn"')]
    assert "CV (out-of-fold) accuracy" not in eda_section  # no score rows for a stage without scores
    assert "out-of-fold" in html and "3 folds over 12 training images" in html
    # stages: links to rendered notebooks, key numbers, figures with captions
    assert 'href="01_eda_colour/notebook.html"' in html and 'href="02_baseline_cnn/notebook.html"' in html
    assert (run_dir / "01_eda_colour" / "notebook.html").is_file()
    assert (run_dir / "02_baseline_cnn" / "notebook.html").is_file()
    assert "no executed notebook" in html  # 03_xception was run by hand
    assert '<img src="02_baseline_cnn/figures/confusion_cv.png"' in html
    assert '<img src="01_eda_colour/figures/class_counts.png"' in html
    assert "Out-of-fold confusion matrix" in html and "Training images per class" in html
    assert "normal 90.0%" in html and "55" in html
    # escaping: a caption's markup is shown as text
    assert "Recall &lt;b&gt;per&lt;/b&gt; class" in html and "<b>per</b>" not in html
    # skipped files and the unfinished stage
    assert "Skipped files" in html and "/data/normal/broken_file.jpg" in html and "not a decodable image" in html
    assert "/data/normal/.DS_Store</code></td><td>hidden file" in html  # every file not read, with why
    noted = html[html.index("Files read with a note"):]
    assert "5 image(s) are 16-bit files holding 12-bit data" in noted
    assert "/data/normal/stack.tif</code></td><td>3 frames (a multi-page or animated file): frame 0 is used" in noted
    unfinished = html[html.index("Not finished"):]
    assert "04_vgg16" in unfinished
    assert not (run_dir / "04_vgg16" / "notebook.html").exists()  # unfinished stages are not rendered
    # self-contained: no scripts, no external resources; no temp files left behind
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert sorted(p.name for p in run_dir.iterdir() if p.is_file()) == ["folds.csv", "index.html", "params.yaml"]


def test_index_states_the_majority_class_floor(run_dir):
    html = report.write_report(run_dir).read_text()
    assert "always answering the largest class (normal) would score 75.0%" in html


def test_figures_on_disk_but_not_listed_are_still_shown(run_dir):
    write_png(run_dir / "03_xception" / "figures" / "learning_curves.png")
    html = report.write_report(run_dir).read_text()
    assert '<img src="03_xception/figures/learning_curves.png"' in html and "learning curves" in html


def test_stage_html_hide_code(run_dir):
    nb = run_dir / "02_baseline_cnn" / "notebook.ipynb"
    shown = report.stage_html(nb).read_text()
    assert "marker_source_line" in shown and "visible_output_text" in shown
    hidden_path = report.stage_html(nb, out_path=run_dir / "hidden.html", hide_code=True)
    assert hidden_path == run_dir / "hidden.html"
    hidden = hidden_path.read_text()
    assert "marker_source_line" not in hidden and "visible_output_text" in hidden
    assert "Stage heading" in hidden  # markdown stays


def test_write_report_hide_code_reaches_stage_pages(run_dir):
    report.write_report(run_dir, hide_code=True)
    page = (run_dir / "02_baseline_cnn" / "notebook.html").read_text()
    assert "marker_source_line" not in page and "visible_output_text" in page


def test_unreadable_metrics_is_reported_not_fatal(run_dir):
    (run_dir / "05_inception_resnet_v2").mkdir()
    (run_dir / "05_inception_resnet_v2" / "metrics.json").write_text("{not json")
    html = report.write_report(run_dir).read_text()
    assert "05_inception_resnet_v2" in html and "unreadable" in html
    assert list(report.leaderboard(run_dir).stage) == ["03_xception", "02_baseline_cnn"]


def test_empty_run_dir(tmp_path):
    run = tmp_path / "empty-run"
    run.mkdir()
    assert report.leaderboard(run).empty
    html = report.write_report(run).read_text()
    assert "No stage of this run has finished yet" in html and "No model stage has finished yet" in html
    assert "params.yaml is missing" in html and "Skipped files" not in html


def test_run_with_only_unfinished_stages(tmp_path):
    run = tmp_path / "r"
    write_notebook(run / "01_eda_colour" / "notebook.ipynb")
    html = report.write_report(run).read_text()
    assert "No stage of this run has finished yet" in html
    assert "01_eda_colour" in html[html.index("Not finished"):]


def test_missing_run_dir(tmp_path):
    with pytest.raises(RunFolderError, match="no run folder .*nope"):
        report.write_report(tmp_path / "nope")


def test_key_numbers_say_what_the_ensemble_submits_and_the_pseudo_labelling_effect():
    ens = {"kind": "ensemble", "members": ["02_cnn", "03_x"], "weights": {"02_cnn": 0.2, "03_x": 0.8}}
    rows = dict(index._key_numbers({**ens, "model": "ensemble: weights"}))
    assert rows["Submitted"] == "a weighted mean of the members' probabilities (03_x 0.80 · 02_cnn 0.20)"
    assert "Model" not in rows and not any(k.startswith("Fitted weights") for k in rows)
    # a single member submitted: the fitted weights are shown as what they are, not as the submission
    rows = dict(index._key_numbers({**ens, "model": "02_cnn"}))
    assert rows["Submitted"] == "02_cnn alone (no combination of 02_cnn, 03_x scored higher out of fold)"
    assert rows["Fitted weights (not submitted: they show who carries the ensemble)"] == "03_x 0.80 · 02_cnn 0.20"
    rows = dict(index._key_numbers({
        "pseudo": [{"teacher": "03_x", "round": 1, "cv_before": 0.80, "cv_after": 0.82, "test_before": None,
                    "test_after": None, "pseudo_labels": 40, "pseudo_label_accuracy": 0.9}]}))
    line = rows["Pseudo-labelling 03_x round 1"]
    assert "80.0% → 82.0%" in line and "40 pseudo-labels per fold" in line and "90.0% of them right" in line


def test_verdict_without_an_ensemble_names_the_best_stage_and_whether_the_order_holds(run_dir):
    # 03 at 80% [77-83] vs 02 at 71.2% [68.0-74.1]: the intervals do not overlap
    html = report.write_report(run_dir).read_text()
    lines = report.verdict([], report.leaderboard(run_dir))
    assert lines[0].startswith("Best out-of-fold accuracy: Xception (03_xception), 80.0% [77.0–83.0]")
    assert "outside the best stage's confidence interval" in lines[1]
    assert "run 07_ensemble" in lines[2]
    assert 'class="verdict"' in html and "Best out-of-fold accuracy: Xception" in html


def test_verdict_reports_the_ensemble_choice_and_mcnemar(run_dir):
    ens = run_dir / "07_ensemble"
    ens.mkdir()
    m = model_metrics("07_ensemble", "Ensemble", 0.818, [0.79, 0.84], 0.93)
    m.update(kind="ensemble", model="ensemble: stacking", members=["02_baseline_cnn", "03_xception"],
             versus={"best_single": "03_xception", "best_single_accuracy": 0.80, "gain": 0.018,
                     "only_submitted_right": 30, "only_best_right": 19, "mcnemar_p": 0.152})
    (ens / "metrics.json").write_text(json.dumps(m))
    html = report.write_report(run_dir).read_text()
    assert ("Submit a logistic regression on the probabilities of 02_baseline_cnn, 03_xception, chosen by 07_ensemble: "
            "out-of-fold accuracy 81.8% [79.0–84.0]") in html
    assert ("Against the best single stage, 03_xception (80.0%): +1.8 points; 30 images only the submitted model "
            "gets right, 19 only 03_xception; McNemar p = 0.152: the difference could well be chance") in html
    m["versus"]["mcnemar_p"] = 0.001
    (ens / "metrics.json").write_text(json.dumps(m))
    assert "p = 0.001: unlikely to be chance." in report.write_report(run_dir).read_text()


def test_other_pages_a_stage_wrote_are_linked(run_dir):
    (run_dir / "01_eda_colour" / "quality.html").write_text("<html>quality</html>")
    html = report.write_report(run_dir).read_text()
    assert '<a href="01_eda_colour/quality.html">quality.html</a>' in html
    assert html.count("notebook.html</a>") == 0  # the notebook page is linked as "notebook →" only


def test_the_terminal_summary_is_the_leaderboards_top_rows_and_the_verdict(run_dir):
    lines = report.summary_lines(run_dir)
    assert lines[:3] == ["leaderboard (out-of-fold accuracy, 95% CI):",
                         "  1. 03_xception      80.0% [77.0–83.0]  n=12  Xception",
                         "  2. 02_baseline_cnn  71.2% [68.0–74.1]  n=12  Baseline CNN (write-up model)"]
    assert lines[3] == "verdict:" and lines[4].startswith("  Best out-of-fold accuracy: Xception (03_xception)")
    assert report.summary_lines(run_dir, top=1)[0] == "leaderboard (out-of-fold accuracy, 95% CI; top 1 of 2):"


def test_rows_carry_n_and_a_score_at_the_largest_class_floor_is_said_in_words_not_ranked(run_dir):
    """05 ran on a `limit` subset (6 of the run's 12 images) and scored 50% [16.7–83.3], its
    largest class being half of them: within its interval of always answering that class."""
    st = run_dir / "05_inception_resnet_v2"
    st.mkdir()
    m = model_metrics("05_inception_resnet_v2", "Fine-tuning InceptionResNetV2", 0.90, [0.167, 0.833], 0.5)
    m["cv"].update(n=6, confusion=[[2, 1, 0], [0, 1, 0], [1, 0, 1]])
    (st / "metrics.json").write_text(json.dumps(m))
    html = report.write_report(run_dir).read_text()
    board = html[html.index('id="leaderboard"'):html.index("<h2>Stages")]
    rows = [r for r in re.findall(r"<tr class=\"(\w*)\">(.*?)</tr>", board, re.S) if r[0] != "sep"]
    assert [(cls, re.search(r"muted\">(\w+)<", row).group(1)) for cls, row in rows] == [
        ("best", "03_xception"), ("", "02_baseline_cnn"), ("floor", "05_inception_resnet_v2")]
    assert board.index("Not ranked: each of these scores") < board.index("05_inception_resnet_v2")
    floor_row = rows[2][1]
    assert "not distinguishable from always answering normal (50.0%)" in floor_row
    assert ">6<span class=\"warn note\">a <code>limit</code> subset" in floor_row
    assert "<td class=\"num\">12</td>" in rows[0][1]  # the whole run: no mark
    terminal = [ln for ln in report.summary_lines(run_dir) if "05_inception_resnet_v2  " in ln]
    assert terminal == ["  -. 05_inception_resnet_v2  90.0% [16.7–83.3]  n=6  Fine-tuning InceptionResNetV2  "
                        "(not ranked: not distinguishable from always answering normal (50.0%))"]
    stages, board = [{"name": "05_inception_resnet_v2", "kind": "model", "metrics": m}], report.leaderboard(run_dir)
    # the verdict ranks as the table does: 05's 90% point estimate is not the best stage
    assert report.verdict(stages, board)[0].startswith("Best out-of-fold accuracy: Xception (03_xception)")
    alone = report.verdict(stages, board[board.stage == "05_inception_resnet_v2"])
    assert alone == ["No stage has shown anything learnt yet: the best point estimate, Fine-tuning InceptionResNetV2 "
                     "(05_inception_resnet_v2) 90.0% [16.7–83.3], is not distinguishable from always answering normal "
                     "(50.0%), and so is every other stage (more images, epochs or pretrained weights)."]


def test_the_index_has_a_table_of_contents_linking_every_section(run_dir):
    html = report.write_report(run_dir).read_text()
    toc = html[html.index('<nav class="toc">'):html.index("</nav>")]
    for target in ("leaderboard", "01_eda_colour", "02_baseline_cnn", "03_xception", "skipped", "unfinished"):
        assert f'href="#{target}"' in toc and f'id="{target}"' in html, target


def test_disk_usage_names_the_part_the_saved_models_take(tmp_path):
    (tmp_path / "03_xception" / "fold0").mkdir(parents=True)
    (tmp_path / "03_xception" / "fold0" / "model.keras").write_bytes(b"\0" * 3_000_000)
    (tmp_path / "03_xception" / "oof.csv").write_bytes(b"\0" * 1_000_000)
    assert index.disk_usage(tmp_path) == "4 MB on disk, 3 MB of it saved models"
