import csv
import json
import re

import keras
import numpy as np
import pytest

from cellclf_utils import cli
from cellclf_utils.train import cross_validation as train
from cellclf_utils.run import plan as workload
from conftest import ROOT, toy_images, train_params


def test_counts_are_the_images_cross_validation_feeds(tmp_path, monkeypatch):
    # a base to freeze, uneven folds, a test set and TTA: every count fold_work makes is exercised
    x, y = toy_images(50)
    inp = keras.Input((16, 16, 3))
    base = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(4, 3)], name="base")
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(base(inp))))
    seen = {"trained": 0, "frozen_base": 0, "predicted": 0}
    fit, predict = keras.Model.fit, keras.Model.predict_on_batch

    def counting_fit(self, x=None, *a, **k):
        rows = x["index"] if isinstance(x, dict) else x
        seen["trained" if base.trainable else "frozen_base"] += len(rows) * k["epochs"]
        return fit(self, x, *a, **k)

    def counting_predict(self, x, *a, **k):  # predict.predict_proba feeds whole batches
        seen["predicted"] += len(x)
        return predict(self, x, *a, **k)
    monkeypatch.setattr(keras.Model, "fit", counting_fit)
    monkeypatch.setattr(keras.Model, "predict_on_batch", counting_predict)
    P = train_params(epochs=2, head_epochs=1, tta=True, monitor="last")
    fold_of = np.arange(50) % 3
    train.cross_validate(lambda: model, x, y, fold_of, x[:5], P, tmp_path)
    assert seen == workload.fold_work(fold_of, 5, P, frozen_head=True)
    # hand count for fold sizes 17/17/16 (train 33/33/34), batch 16: 48 trained per epoch; the
    # validation split padded to 32/32/16, scored after 3 epochs, then 8 TTA views + 1 plain; test 16 x 8
    assert seen["trained"] == 3 * 2 * 48 and seen["frozen_base"] == 3 * 48
    assert seen["predicted"] == (3 + 9) * (32 + 32 + 16) + 3 * 8 * 16


def test_pseudo_labels_add_to_each_fold_and_no_head_without_a_base():
    fold_of = np.arange(40) % 2  # 20 train / 20 validation per fold
    P = {"batch_size": 8, "epochs": 3, "head_epochs": 2, "tta": False}
    plain = workload.fold_work(fold_of, 0, P, frozen_head=False)
    assert plain == {"trained": 2 * 3 * 24, "frozen_base": 0, "predicted": 2 * (3 * 24 + 24)}
    more = workload.fold_work(fold_of, 10, P, frozen_head=False, extra=10)
    assert more["trained"] == 2 * 3 * 32  # 30 images fill four batches of 8
    assert workload.fold_work(fold_of, 0, {**P, "batch_size": 0}, False)["trained"] == 2 * 3 * 32  # auto counts 32


def test_plan_follows_the_profile_and_the_command_line(small_dataset):
    params = workload.stage_parameters("smoke", str(small_dataset), None, {"epochs": 3}, None)
    assert params["02_baseline_cnn"]["epochs"] == 3 and params["03_xception"]["image_size"] == 71
    assert params["02_baseline_cnn"]["pooling"] == "gap"  # the notebook's own default fills in
    table = workload.plan(params).set_index("stage")
    assert (table.loc[["01_eda_colour", "02b_classical", "07_ensemble"], "trained"] == 0).all()
    base = table.loc["02_baseline_cnn"]
    assert base.network == "baseline" and base.images == 12 and base.frozen_base == 0
    assert base.trained == 2 * 3 * 16  # 2 folds of 6 training images, each one batch of 16, 3 epochs
    assert table.loc["03_xception"].frozen_base == 2 * 1 * 16 and table.loc["03_xception"].epochs == "1+3"
    assert table.loc["02c_frozen_probe"].predicted == 16 + 16  # 12 images and 4 test, one view each
    student = table.loc["06_pseudo_labelling (02_baseline_cnn)"]  # smoke names its teacher
    assert student.trained == 2 * 3 * 16 and student.predicted == base.predicted  # 10 images still fill one batch
    assert "all 4 test images pseudo-labelled" in student.note


def test_plan_against_a_run_uses_that_runs_folds(small_dataset, tmp_path, capsys):
    """A run keeps near-duplicates in one fold, so its folds can be uneven: the plan counts the
    run's own folds.csv where it matches the data, and draws its own where it does not."""
    from cellclf_utils.data import dataset as data
    from cellclf_utils.folds import kfold as folds
    params = workload.stage_parameters("smoke", str(small_dataset), None, {"batch_size": 5}, "02")
    P = params["02_baseline_cnn"]
    ds = data.load_dataset(str(small_dataset), None, "error", progress=False)
    groups = [0 if any(d in i for d in "0123") else n for n, i in enumerate(ds.ids, 1)]  # 8 near-duplicates
    run_folds = folds.assign(ds.ids, ds.labels, groups, 2, P["seed"], ds.class_names)
    assert run_folds.fold.value_counts().min() < 6  # the group makes the folds uneven
    counted = workload.plan(params, run_folds=run_folds.iloc[::-1]).set_index("stage").loc["02_baseline_cnn"]
    expected = workload.fold_work(run_folds.fold.to_numpy(), len(ds.test_ids), P, False)
    assert counted.trained == expected["trained"]
    drawn = workload.plan(params).set_index("stage").loc["02_baseline_cnn"]
    assert drawn.trained == P["epochs"] * (10 + 10)  # without groups: training splits of 6 and 6, batches of 5
    assert counted.trained < drawn.trained  # uneven splits pad fewer images to whole batches
    three = folds.assign(ds.ids, ds.labels, groups, 3, P["seed"], ds.class_names)  # another run's k
    assert workload.plan(params, run_folds=three).set_index("stage").loc["02_baseline_cnn"].trained == drawn.trained

    run_dir = tmp_path / "run"  # the CLI reads the run's folds.csv with --against
    run_dir.mkdir()
    run_folds.to_csv(run_dir / "folds.csv", index=False)
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02", "-p", "batch_size", "5",
                     "--against", str(run_dir), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert next(r for r in rows if r["stage"] == "02_baseline_cnn")["trained"] == expected["trained"]


def test_early_stopping_makes_the_count_a_ceiling(small_dataset):
    table = workload.plan(workload.stage_parameters("smoke", str(small_dataset), None, {"patience": 2},
                                                    "02,02b,06")).set_index("stage")
    assert table.loc["02_baseline_cnn"].note == "at most: early stopping (patience 2)"
    assert "at most: early stopping (patience 2)" in table.loc["06_pseudo_labelling (02_baseline_cnn)"].note
    assert table.loc["02b_classical"].note == "no network trained"  # nothing to stop
    plain = workload.plan(workload.stage_parameters("smoke", str(small_dataset), None, {}, "02"))
    assert plain.note.tolist() == [""] and plain.trained.tolist() == [table.loc["02_baseline_cnn"].trained]


def test_no_test_images_means_no_pseudo_labelling(small_dataset):
    for f in (small_dataset / "test").iterdir():
        f.unlink()
    (small_dataset / "test").rmdir()
    (small_dataset / "test_labels.csv").unlink()
    table = workload.plan(workload.stage_parameters("smoke", str(small_dataset), None, {}, "02,06"))
    assert table.stage.tolist() == ["02_baseline_cnn", "06_pseudo_labelling"]
    assert table.iloc[1].trained == 0 and table.iloc[1].note.startswith("skipped")


def test_pseudo_labelling_without_its_teacher_in_the_plan_says_so(small_dataset):
    for teacher in ("02_baseline_cnn", ""):
        table = workload.plan(workload.stage_parameters("smoke", str(small_dataset), None, {"teacher": teacher}, "06"))
        assert table.stage.tolist() == ["06_pseudo_labelling"] and table.trained.tolist() == [0]
        assert "not in this plan" in table.note[0]


def test_estimate_uses_measured_speeds_and_says_where_it_has_none(tmp_path):
    speeds_csv = tmp_path / "speeds.csv"
    with open(speeds_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["model", "size", "variant", "batch", "img_s", "compile_s"])
        w.writeheader()
        w.writerows([{"model": "vgg16", "size": 64, "variant": "project", "batch": 32, "img_s": 10, "compile_s": 1},
                     {"model": "vgg16", "size": 64, "variant": "stage", "batch": 32, "img_s": 20, "compile_s": 2},
                     {"model": "vgg16", "size": 64, "variant": "predict", "batch": 32, "img_s": 100, "compile_s": 0},
                     {"model": "xception", "size": 72, "variant": "stage", "batch": 16, "img_s": "", "compile_s": ""}])
    speeds = workload.read_speeds(speeds_csv)
    assert speeds[("vgg16", 64)] == {"train": 20.0, "compile_s": 2.0, "batch": 32, "predict": 100.0}
    assert ("xception", 72) not in speeds  # a failed measurement is no speed
    import pandas as pd
    table = pd.DataFrame([{"stage": "04", "network": "vgg16", "image_size": 64, "batch_size": 32,
                           "trained": 400, "frozen_base": 100, "predicted": 1000},
                          {"stage": "03", "network": "xception", "image_size": 72, "batch_size": 32,
                           "trained": 10, "frozen_base": 0, "predicted": 10},
                          {"stage": "01", "network": "", "image_size": 64, "batch_size": "",
                           "trained": 0, "frozen_base": 0, "predicted": 0}])
    est = workload.estimate(table, speeds)
    # no head row measured: frozen-base images at the training speed, and the basis says so
    assert est.seconds[0] == pytest.approx(500 / 20 + 1000 / 100 + 2 * 2)  # two phases, one compile each
    assert est.basis[0] == "head epochs at the training speed"
    assert np.isnan(est.seconds[1]) and "no speed measured for xception@72" in est.basis[1]
    assert est.seconds[2] == 0

    with open(speeds_csv, "a", newline="") as f:  # the head warm-up measured: its speed and compile
        csv.DictWriter(f, fieldnames=["model", "size", "variant", "batch", "img_s", "compile_s"]).writerow(
            {"model": "vgg16", "size": 64, "variant": "head", "batch": 32, "img_s": 50, "compile_s": 0.5})
    est = workload.estimate(table, workload.read_speeds(speeds_csv))
    assert est.seconds[0] == pytest.approx(400 / 20 + 100 / 50 + 1000 / 100 + 2 + 0.5)
    assert est.basis[0] == ""


def test_cli_plan_prints_the_totals_and_refuses_an_unknown_profile(small_dataset, capsys):
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02"]) == 0
    out = capsys.readouterr().out
    assert "02_baseline_cnn" in out and "in all: 32 images trained" in out
    import json
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["stage"], r["trained"]) for r in rows] == [("02_baseline_cnn", 32)]
    speeds = small_dataset.parent / "speeds.csv"
    speeds.write_text("model,size,variant,batch,img_s,compile_s\nbaseline,32,stage,16,16,0\n")
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02",
                     "--speeds", str(speeds)]) == 0
    assert "about 0.1 min of network time" in capsys.readouterr().out  # (32 trained + 96 predicted) / 16 img/s = 8 s
    # the smoke profile's 2 folds: 4 s each, side by side on two workers
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02",
                     "--speeds", str(speeds), "--gpus", "1,2"]) == 0
    assert "1 worker(s) 0.1 min, 2 worker(s) 0.1 min" in capsys.readouterr().out
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02",
                     "--speeds", str(speeds), "--gpus", "four"]) == 2
    assert "--gpus 'four': give worker counts, e.g. --gpus 1,4,8" in capsys.readouterr().err
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02", "--gpus", "2"]) == 0
    assert "no wall time: --gpus needs --speeds" in capsys.readouterr().out
    speeds.write_text("model,size,variant,batch,img_s,compile_s\nvgg16,224,stage,16,16,0\n")
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02",
                     "--speeds", str(speeds)]) == 0
    assert "no network time: " in capsys.readouterr().out  # not "about 0.0 min"
    assert cli.main(["plan", "--profile", "nope"]) == 1
    assert "no such profile" in capsys.readouterr().err
    assert cli.main(["plan", "--profile", "smoke", "-p", "lrr", "1"]) == 1
    assert "lrr" in capsys.readouterr().err


def test_without_a_named_teacher_the_costliest_stage_is_counted(small_dataset):
    params = workload.stage_parameters("smoke", str(small_dataset), None, {"teacher": ""}, None)
    by_pixels = workload.plan(params).stage.tolist()
    assert "06_pseudo_labelling (03_xception)" in by_pixels  # 71 px with a head epoch: most pixels trained
    slow_vgg = {("vgg16", 32): {"train": 1.0, "compile_s": 0.0}}
    assert "06_pseudo_labelling (04_vgg16)" in workload.plan(params, slow_vgg).stage.tolist()


@pytest.mark.slow  # the benchmark script in a fresh Python: make test, not make test-fast
def test_throughput_csv_feeds_plan_speeds(tmp_path):
    # the contract between benchmarks/throughput.py and `cellclf plan --speeds`: its rows (a
    # training and a forward-only variant, with the batch size) read back as speeds
    import os
    import subprocess
    import sys
    out = tmp_path / "speeds.csv"
    script = ROOT / "benchmarks" / "throughput.py"
    subprocess.run([sys.executable, str(script), "--models", "baseline@32", "vgg16@32", "--batch-size", "4",
                    "--steps", "2", "--variants", "stage", "predict", "head", "--stage-models", "baseline", "vgg16",
                    "--csv", str(out)],
                   check=True, timeout=300, capture_output=True, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    speeds = workload.read_speeds(out)
    s = speeds[("baseline", 32)]
    assert s["train"] > 0 and s["predict"] > 0 and s["batch"] == 4
    assert "head" not in s  # stage 02's CNN has no base to freeze: no head row
    assert speeds[("vgg16", 32)]["head"] > 0
    # the head row trains the head alone: no gradients or optimizer slots for the base's weights
    est = {r["variant"]: float(r["est_gib"]) for r in csv.DictReader(open(out)) if r["model"] == "vgg16" and r["est_gib"]}
    assert est["head"] < est["stage"] - 0.04  # block5's 7M weights: 2 x 28 MB in the stage row


def test_against_a_run_reads_what_its_folds_and_stages_recorded(small_dataset, tmp_path, capsys):
    """The run's own files, written by the code that writes them in a run (runs.Stage,
    train.cross_validate): epochs and seconds per row, the stage's wall, and notes where the
    run differs from the plan, is unfinished or lacks a stage."""
    from cellclf_utils.run import stage as runs
    params = workload.stage_parameters("smoke", str(small_dataset), None, {}, "02,02b,06")
    run_dir = tmp_path / "runs" / "r1"
    x, y = toy_images(24)
    fold_of = (np.arange(24) // 2) % 2

    def toy():
        inp = keras.Input((16, 16, 3))
        return keras.Model(inp, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp)))
    P = params["02_baseline_cnn"]
    st = runs.Stage("02_baseline_cnn", P, run_dir)
    st.write_json("params.json", {**P, "image_size": P["image_size"] + 8})  # the run used other images
    cv = train.cross_validate(toy, x, y, fold_of, None, train_params(epochs=2), st.dir)
    st.write_csv("fold_times.csv", cv.folds)
    st.finish({})
    train.cross_validate(toy, x, y, fold_of, None, train_params(epochs=3),
                         run_dir / "06_pseudo_labelling" / "02_baseline_cnn" / "round1")  # 06 unfinished

    table = workload.against(workload.plan(params), run_dir).set_index("stage")
    base = table.loc["02_baseline_cnn"]
    assert base.run_epochs == 2 * 2 and base.run_fold_s == pytest.approx(cv.folds.seconds.sum(), abs=0.1)
    assert base.run_stage_s == json.loads((st.dir / "metrics.json").read_text())["elapsed_s"]
    assert base.run_note == f"image_size {P['image_size'] + 8} in the run, {P['image_size']} planned"
    student = table.loc["06_pseudo_labelling (02_baseline_cnn)"]
    assert student.run_epochs == 2 * 3 and student.run_fold_s > 0 and np.isnan(student.run_stage_s)
    # no metrics.json yet; and the student retrains its teacher's settings, so it differs too
    assert student.run_note == "unfinished in the run; " + base.run_note
    assert table.loc["02b_classical"].run_note == "not in the run"
    # without a named teacher the plan counts the costliest stage; the run retrained its best
    costliest = workload.stage_parameters("smoke", str(small_dataset), None, {"teacher": ""}, "02,03,06")
    row = workload.against(workload.plan(costliest), run_dir).set_index("stage").loc["06_pseudo_labelling (03_xception)"]
    assert row.run_epochs == 2 * 3 and row.run_note.startswith("the run retrained 02_baseline_cnn, not 03_xception")

    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--only", "02,02b,06",
                     "--against", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "run_fold_s" in out and "02b_classical: no network trained; not in the run" in out
    assert f"{run_dir} recorded: " in out
    assert cli.main(["plan", "--profile", "smoke", "--data", str(small_dataset), "--against",
                     str(tmp_path / "nope")]) == 2
    assert "no run folder" in capsys.readouterr().err


@pytest.mark.parametrize("content, words", [(None, "no such file"), (b"", "missing column(s) model, size"),
                                            (b"\x00\x01\x02", "missing column(s)"),
                                            (b"model,size,variant,img_s,compile_s\nx,abc,stage,1,2\n",
                                             "line 2: not a number")])
def test_a_speeds_file_that_is_not_one_is_named_with_what_to_do(tmp_path, content, words):
    path = tmp_path / "speeds.csv"
    if content is not None:
        path.write_bytes(content)
    from cellclf_utils.run import RunError
    with pytest.raises(RunError, match=rf"--speeds .*speeds.csv.*{re.escape(words)}"):
        workload.read_speeds(path)
