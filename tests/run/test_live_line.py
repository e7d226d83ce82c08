"""The live line of a running stage: the fold and epoch its kernel reached, read from
progress.json; printed once per change where the output is not a terminal."""
import io
import json
import time

from cellclf_utils.run import live_line
from cellclf_utils.runfolder import layout


def test_progress_reads_as_words():
    assert live_line.describe({}) == ""
    assert live_line.describe({"fold": 2, "folds": 3, "epoch": 4, "epochs": 10, "val_accuracy": 0.71,
                              "images_per_s": 52.4}) == "fold 2/3 · epoch 4/10 · val acc 71.0% · 52 img/s"
    assert live_line.describe({"fold": 1, "folds": 3, "epoch": 0, "epochs": 10}) == "fold 1/3 · epoch 0/10"


def test_a_log_gets_a_line_per_epoch_and_the_stages_time_and_the_file_goes(tmp_path):
    out = io.StringIO()  # not a terminal
    path = tmp_path / layout.PROGRESS
    with live_line.LiveLine(tmp_path, "[2/9] 02_baseline_cnn", stream=out, interval=0.02):
        for epoch in (0, 1, 1):  # the same state twice: printed once
            path.write_text(json.dumps({"fold": 1, "folds": 2, "epoch": epoch, "epochs": 1}))
            time.sleep(0.15)
        path.write_text("{cut")  # being replaced: skipped, not an error
        time.sleep(0.1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[2/9] 02_baseline_cnn …"
    assert [ln.split(" · ")[1:3] for ln in lines[1:-1]] == [["fold 1/2", "epoch 0/1"], ["fold 1/2", "epoch 1/1"]]
    assert lines[-1].startswith("[2/9] 02_baseline_cnn: done in ") and not path.exists()


def test_a_stage_that_fails_says_stopped(tmp_path):
    out = io.StringIO()
    try:
        with live_line.LiveLine(tmp_path, "[1/1] 01_eda_colour", stream=out, interval=0.02):
            raise RuntimeError("the stage failed")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines()[-1].startswith("[1/1] 01_eda_colour: stopped in ")


def test_the_newest_progress_file_under_the_stage_is_the_one_shown(tmp_path):
    """06 trains its students in <teacher>/round<r>/: their progress files sit there."""
    a, b = tmp_path / "02_baseline_cnn" / "round1", tmp_path / "03_xception" / "round1"
    out = io.StringIO()
    with live_line.LiveLine(tmp_path, "[8/9] 06_pseudo_labelling", stream=out, interval=0.02) as line:
        for d, fold in ((a, 3), (b, 2)):  # the first teacher's student finished, the second's started
            d.mkdir(parents=True)
            (d / layout.PROGRESS).write_text(json.dumps({"fold": fold, "folds": 3, "epoch": 1, "epochs": 5}))
            time.sleep(0.05)
        assert "fold 2/3 · epoch 1/5" in line.line()
    assert not list(tmp_path.rglob(layout.PROGRESS))
