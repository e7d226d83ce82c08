"""End to end: the real CLI runs every notebook through papermill. One smoke series per test
session, on a tiny 8-class synthetic set (any number of classes >= 2 works; the write-up has 3,
Herlev 7, PBC 8), started in a folder outside the checkout: the series is found from the
installed package and the run lands in ./runs there. The other tests run single stages."""
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import BIN, ROOT, SMOKE_CLASSES as N_CLASSES, SMOKE_LIMIT as LIMIT, run_process as _run

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("series")]
WEIGHTS = "../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5"
needs_weights = pytest.mark.skipif(not (ROOT.parent / "shared" / "weights" / "mobilenet_v2").is_dir(),
                                   reason="../shared/weights is absent")


def _stages():
    from cellclf_utils.config import STAGES
    return list(STAGES)


def test_the_series_runs_from_any_folder_and_says_where_its_run_goes(series):
    run_dir, r = series
    assert r.stdout.splitlines()[0] == f"run smoke1 (smoke profile): {len(_stages())} stage(s) → {run_dir}"
    assert r.stdout.strip().endswith(f"report: {run_dir / 'index.html'}")


def test_the_terminal_shows_each_stages_folds_and_epochs_and_ends_with_the_result(series):
    """Not a terminal here, so the live line prints once per fold and epoch reached; at the end,
    the leaderboard's top rows and the verdict; none of the libraries' start-up lines."""
    run_dir, r = series
    n = len(_stages())
    assert re.search(rf"^\[5/{n}\] 03_xception · fold 2/2 · epoch \d+/\d+ · val acc [\d.]+% · \d+ img/s · \d+ s$",
                     r.stderr, re.M), r.stderr[-3000:]
    for i, stage in enumerate(_stages(), 1):
        assert re.search(rf"^\[{i}/{n}\] {stage}: done in \d+ s$", r.stderr, re.M), stage
    tail = r.stdout[r.stdout.index("leaderboard (out-of-fold accuracy"):]
    # ranked rows numbered; rows at the largest-class floor (every smoke stage, on 96 images) marked "-."
    rows = re.findall(r"^ +(\d+|-)\. \S+ +\d+\.\d% \[[\d.]+–[\d.]+\]  n=\d+  .+$", tail, re.M)
    assert len(rows) == 5 and "\nverdict:\n  " in tail, tail
    assert not list(run_dir.rglob("progress.json"))  # the line's source goes with the line (06: its rounds too)
    for text in (r.stdout, r.stderr):
        assert "absl::InitializeLog" not in text and "cuda drivers" not in text and "IPKernelApp" not in text


NOISE = ("absl::InitializeLog", "Could not find cuda drivers", "failed call to cuInit", "oneDNN custom operations",
         "Kernel is running over TCP without encryption")


def test_no_page_carries_the_libraries_start_up_lines(series):
    run_dir, _ = series
    pages = sorted(run_dir.rglob("*.html"))
    assert len(pages) > len(_stages())
    for page in pages + sorted(run_dir.glob("*/notebook.ipynb")):
        text = page.read_text(encoding="utf-8")
        assert not [s for s in NOISE if s in text], page
    log = (run_dir / "03_xception" / "kernel.log").read_text()
    assert "IPKernelApp" in log or "absl" in log or "oneDNN" in log  # where they went instead


def test_every_stage_finished_with_its_page_and_figures(series):
    run_dir, _ = series
    for stage in _stages():
        d = run_dir / stage
        for name in ("notebook.ipynb", "notebook.html", "params.json", "metrics.json"):
            assert (d / name).is_file(), f"{stage}/{name} missing"
        m = json.loads((d / "metrics.json").read_text())
        assert m["stage"] == stage and m["run_id"] == "smoke1"
        for fig in m["figures"]:
            assert (d / fig["path"]).stat().st_size > 0, f"{stage}: {fig['path']}"
    assert (run_dir / "params.yaml").exists()


def test_folds_and_model_outputs_follow_the_run_contract(series, tiny):
    run_dir, _ = series
    classes = tiny[1]
    folds = pd.read_csv(run_dir / "folds.csv")
    assert list(folds.columns) == ["id", "fold", "group", "label"] and len(folds) == 14 * N_CLASSES
    assert (folds.groupby("group").fold.nunique() == 1).all()
    d = run_dir / "02_baseline_cnn"
    oof = pd.read_csv(d / "oof.csv")
    assert list(oof.columns) == ["id", "fold", "label"] + [f"p_{c}" for c in classes]
    assert len(oof) == LIMIT * N_CLASSES and set(oof.id) <= set(folds.id)
    merged = oof.merge(folds, on="id", suffixes=("", "_run"))
    assert (merged.fold == merged.fold_run).all(), "a stage must use the run's folds.csv"
    test = pd.read_csv(d / "test.csv")
    assert len(test) == 3 * N_CLASSES and list(test.columns) == ["id"] + [f"p_{c}" for c in classes]
    assert {"fold", "epoch", "loss", "val_auc"} <= set(pd.read_csv(d / "history.csv").columns)
    assert (d / "fold0" / "model.keras").exists() and (d / "fold1" / "model.keras").exists()
    m = json.loads((d / "metrics.json").read_text())
    assert 0 <= m["cv"]["accuracy"] <= 1 and m["test"]["n"] == 3 * N_CLASSES
    assert any(f["path"] == "figures/gradcam.png" for f in m["figures"])  # the Grad-CAM montage
    for stage in [s for s in _stages() if (run_dir / s / "oof.csv").exists()]:  # every class, every stage
        o = pd.read_csv(run_dir / stage / "oof.csv")
        assert list(o.columns) == list(oof.columns) and set(o.id) == set(oof.id), stage
        assert set(o.label) == set(classes) and np.allclose(o.filter(like="p_").sum(axis=1), 1, atol=1e-3), stage
        scores = json.loads((run_dir / stage / "metrics.json").read_text())
        if "cv" in scores:
            assert set(scores["cv"]["per_class_recall"]) == set(classes), stage


def test_eda_pseudo_labelling_and_the_ensemble(series, tiny):
    run_dir, _ = series
    classes = tiny[1]
    eda = json.loads((run_dir / "01_eda_colour" / "metrics.json").read_text())
    assert eda["counts"] == {c: 14 for c in classes} and eda["quality"]["balance"]["n_classes"] == N_CLASSES
    assert (run_dir / "01_eda_colour" / "quality.html").is_file()
    cnn = json.loads((run_dir / "02_baseline_cnn" / "metrics.json").read_text())
    pl = json.loads((run_dir / "06_pseudo_labelling" / "metrics.json").read_text())
    assert [r["teacher"] for r in pl["pseudo"]] == ["02_baseline_cnn"]
    assert 0 <= pl["pseudo"][0]["cv_after"] <= 1 and pl["pseudo"][0]["cv_before"] == cnn["cv"]["accuracy"]
    assert len(pd.read_csv(run_dir / "06_pseudo_labelling" / "oof.csv")) == LIMIT * N_CLASSES
    # the students trained with the teacher's parameters and the smoke profile's noise (Noisy Student)
    from cellclf_utils.train import signature
    teacher = json.loads((run_dir / "02_baseline_cnn" / "params.json").read_text())
    student = {**teacher, "augment": "strong", "dropout": 0.2,
               "pseudo": {"threshold": 0.34, "per_class_cap": 0, "soft": False, "round": 1}}
    done = json.loads((run_dir / "06_pseudo_labelling" / "02_baseline_cnn" / "round1" / "fold0" / "done.json").read_text())
    assert teacher["augment"] != "strong" and done["signature"] == signature(student)
    assert "student augment strong, student dropout 0.2" in pl["model"]
    ens = run_dir / "07_ensemble"
    sub = pd.read_csv(ens / "submission.csv")
    assert list(sub.columns) == ["id", "label"] and len(sub) == 3 * N_CLASSES and set(sub.label) <= set(classes)
    assert set(sub.id) == set(pd.read_csv(run_dir / "02_baseline_cnn" / "test.csv").id)
    assert {"ensemble: mean", "ensemble: stacking", "02_baseline_cnn"} <= set(pd.read_csv(ens / "leaderboard.csv").model)
    em = json.loads((ens / "metrics.json").read_text())
    assert em["kind"] == "ensemble" and em["test"]["n"] == 3 * N_CLASSES
    assert {"02_baseline_cnn", "02c_frozen_probe"} <= set(em["members"])
    assert {"best_single", "gain", "mcnemar_p"} <= set(em["versus"]) and em["versus"]["best_single"] in em["members"]


def test_the_report_links_every_stage_and_names_the_submission(series, tiny):
    run_dir, _ = series
    index = (run_dir / "index.html").read_text(encoding="utf-8")
    for stage in _stages():
        assert f"{stage}/notebook.html" in index, stage
    assert all(c in index for c in tiny[1])
    assert "02_baseline_cnn/figures/gradcam.png" in index
    em = json.loads((run_dir / "07_ensemble" / "metrics.json").read_text())
    from cellclf_utils.report.index import submitted_words
    assert f"Submit {submitted_words(em)}, chosen by 07_ensemble: out-of-fold accuracy" in html.unescape(index)


@pytest.mark.parametrize("stage,backbone,size", [("03_xception", "xception", 71), ("04_vgg16", "vgg16", 32),
                                                 ("05_inception_resnet_v2", "inception_resnet_v2", 75)])
def test_fine_tuning_stages_follow_the_contract(series, stage, backbone, size):
    run_dir, _ = series
    d = run_dir / stage
    params = json.loads((d / "params.json").read_text())
    # the smoke profile's stage section reached the notebook, the rest came from the profile
    assert params["backbone"] == backbone and params["image_size"] == size and params["weights"] == "none"
    assert params["epochs"] == 1 and params["limit"] == LIMIT
    oof = pd.read_csv(d / "oof.csv")
    assert len(oof) == LIMIT * N_CLASSES and oof.filter(like="p_").sum(axis=1).round(4).eq(1).all()
    assert len(pd.read_csv(d / "test.csv")) == 3 * N_CLASSES
    m = json.loads((d / "metrics.json").read_text())
    assert m["model"].startswith(backbone) and len(m["fold_times"]) == 2
    hist = pd.read_csv(d / "history.csv")
    if stage == "03_xception":  # head warm-up then fine-tuning, scored with and without TTA
        assert list(hist[hist.fold == 0].phase) == ["head", "train"]
        assert "without_tta" in m["cv"]
    assert (d / "figures" / "gradcam.png").stat().st_size > 0


def test_finished_stages_are_never_overwritten(series, tiny, env):
    run_dir, _ = series
    metrics = run_dir / "02_baseline_cnn" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    args = [str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(tiny[0]), "--run-id", "smoke1",
            "--only", "02,02b", "--no-progress-bar"]
    here = {**env, "CELLCLF_RUNS": str(run_dir.parent)}
    r = _run(args, here)
    assert r.returncode == 1 and "already finished" in r.stderr and "--resume" in r.stderr
    r = _run(args + ["--resume"], here)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "02_baseline_cnn: finished earlier, skipped (--resume)" in r.stdout
    assert metrics.stat().st_mtime_ns == before


def test_imagenet_offline_fails_naming_what_to_pass(tiny, env, tmp_path):
    env = {**env, "KERAS_HOME": str(tmp_path / "keras_home")}  # no cached download
    r = _run([str(BIN / "papermill"), "notebooks/04_vgg16.ipynb", str(tmp_path / "out.ipynb"), "-p", "data_dir",
              str(tiny[0]), "-p", "image_size", "32", "-p", "limit", "4", "-p", "folds", "2", "-p", "run_id", "offline",
              "--no-progress-bar"], env)
    if r.returncode == 0:
        pytest.skip("this machine can download ImageNet weights")
    assert "WeightsError: cannot download ImageNet weights for vgg16" in r.stderr
    assert "weights=none" in r.stderr


def test_papermill_by_hand(tiny, env, tmp_path):
    r = _run([str(BIN / "papermill"), "notebooks/02_baseline_cnn.ipynb", str(tmp_path / "out.ipynb"), "-f",
              "notebooks/profiles/smoke.yaml", "-p", "data_dir", str(tiny[0]), "-p", "lr", "1e-3", "-p", "epochs", "1",
              "--no-progress-bar"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [p for p in Path(env["CELLCLF_RUNS"]).iterdir() if p.name.startswith("smoke-")]
    assert len(runs) == 1
    params = json.loads((runs[0] / "02_baseline_cnn" / "params.json").read_text())
    assert params["lr"] == 1e-3 and params["epochs"] == 1
    # by hand a bad value stops the notebook in its first cell, naming the parameter; no stage folder
    r = _run([str(BIN / "papermill"), "notebooks/02_baseline_cnn.ipynb", str(tmp_path / "bad.ipynb"), "-p", "data_dir",
              str(tiny[0]), "-p", "optimizer", "rmsprop", "-p", "run_id", "bad", "--no-progress-bar"], env)
    assert r.returncode != 0
    assert "ParameterError: parameter 'optimizer' must be one of sgd, adam, adamw (got 'rmsprop')" in r.stderr
    assert not (Path(env["CELLCLF_RUNS"]) / "bad").exists()


@needs_weights
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fine_tuning_stage_runs_with_offline_weights_under_another_backend(tiny, env, tmp_path, backend):
    """The GPU runner here has JAX and PyTorch and no TensorFlow: the fine-tuning stage must run
    under JAX there, and under PyTorch where a user's runner has that (torch is not a project
    dependency: that case runs where it is installed). Another backbone than the notebook's,
    from the offline ImageNet weights file, as a user passes it by hand."""
    pytest.importorskip(backend)
    backend_env = {**env, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    r = _run([str(BIN / "papermill"), "notebooks/03_xception.ipynb", str(tmp_path / "out.ipynb"),
              "-p", "data_dir", str(tiny[0]), "-p", "backbone", "mobilenet_v2", "-p", "weights", WEIGHTS,
              "-p", "image_size", "32", "-p", "epochs", "1", "-p", "head_epochs", "1", "-p", "folds", "2",
              "-p", "limit", "3", "-p", "mixup", "0.2", "-p", "augment", "strong", "-p", "run_id", backend,
              "--no-progress-bar"], backend_env)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((Path(env["CELLCLF_RUNS"]) / backend / "03_xception" / "metrics.json").read_text())
    assert m["cv"]["n"] == 3 * N_CLASSES and "without_tta" in m["cv"]
    assert m["title"] == "Fine-tuning MobileNetV2"  # named for the backbone it ran, not the notebook
    assert m["model"].startswith("mobilenet_v2 weights=mobilenet_v2_imagenet_notop.weights.h5")


def test_a_dataset_without_test_images_skips_pseudo_labelling_and_the_series_goes_on(env, tmp_path):
    """Herlev as shipped has no test/ folder: 06 must say why it has nothing to do, not stop the
    run. With --log-output the terminal gets papermill's log of each stage."""
    from cellclf_utils.data import synth
    notest = tmp_path / "notest"
    synth.generate(notest, seed=2, size=48, n_train_per_class=10, n_test_per_class=0, progress=False)
    assert not (notest / "test").exists()
    r = _run([str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(notest), "--run-id", "notest",
              "--only", "02,02b,06,07", "--no-progress-bar", "--log-output"], env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    assert "Executing notebook with kernel: cellclf" in r.stderr  # --log-output streams papermill's log
    run_dir = Path(env["CELLCLF_RUNS"]) / "notest"
    pl = json.loads((run_dir / "06_pseudo_labelling" / "metrics.json").read_text())
    assert pl["kind"] == "skipped" and "no unlabeled test images" in pl["note"] and pl["pseudo"] == []
    assert not (run_dir / "06_pseudo_labelling" / "oof.csv").exists()
    em = json.loads((run_dir / "07_ensemble" / "metrics.json").read_text())
    assert em["kind"] == "ensemble" and "06_pseudo_labelling" not in em["members"] and em["test"] is None
    index = html.unescape((run_dir / "index.html").read_text())
    assert "no unlabeled test images" in index and "06_pseudo_labelling/notebook.html" in index
