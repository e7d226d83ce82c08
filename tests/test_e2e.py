"""End to end: the real CLI runs the notebooks through papermill on a tiny synthetic set."""
import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def _run(args, env, timeout=900):
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3-class synthetic set: 14 training images per class at 48 px, 4 test images per class."""
    from cellclf_utils.data import synth
    out = tmp_path_factory.mktemp("tiny") / "synth"
    synth.generate(out, seed=1, size=48, n_train_per_class=14, n_test_per_class=4, progress=False)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    runs = tmp_path_factory.mktemp("e2e_runs")
    return {**os.environ, "CELLCLF_RUNS": str(runs), "CELLCLF_CACHE": str(runs.parent / "e2e_cache"),
            "KERAS_BACKEND": "tensorflow", "CELLCLF_ROOT": str(ROOT)}


@pytest.fixture(scope="module")
def smoke_run(tiny, env):
    r = _run([str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(tiny), "--run-id", "smoke1",
              "--no-progress-bar"], env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return Path(env["CELLCLF_RUNS"]) / "smoke1", r


def test_run_folder_contract(smoke_run):
    run_dir, r = smoke_run
    assert "index.html" in r.stdout
    assert (run_dir / "params.yaml").exists()
    folds = pd.read_csv(run_dir / "folds.csv")
    assert list(folds.columns) == ["id", "fold", "group", "label"] and len(folds) == 42
    assert (folds.groupby("group").fold.nunique() == 1).all()
    for stage in ("01_eda_colour", "02_baseline_cnn", "02b_classical", "02c_frozen_probe"):
        d = run_dir / stage
        for name in ("notebook.ipynb", "notebook.html", "params.json", "metrics.json"):
            assert (d / name).is_file(), f"{stage}/{name} missing"
        m = json.loads((d / "metrics.json").read_text())
        assert m["stage"] == stage and m["run_id"] == "smoke1"
        for fig in m["figures"]:
            assert (d / fig["path"]).stat().st_size > 0
    d = run_dir / "02_baseline_cnn"
    oof = pd.read_csv(d / "oof.csv")
    classes = ["degenerated", "degenerated_severe", "normal"]
    assert list(oof.columns) == ["id", "fold", "label"] + [f"p_{c}" for c in classes]
    assert len(oof) == 36  # smoke profile: limit 12 per class
    assert set(oof.id) <= set(folds.id)
    merged = oof.merge(folds, on="id", suffixes=("", "_run"))
    assert (merged.fold == merged.fold_run).all(), "a stage must use the run's folds.csv"
    test = pd.read_csv(d / "test.csv")
    assert len(test) == 12 and list(test.columns) == ["id"] + [f"p_{c}" for c in classes]
    assert {"fold", "epoch", "loss", "val_auc"} <= set(pd.read_csv(d / "history.csv").columns)
    assert (d / "fold0" / "model.weights.h5").exists() and (d / "fold1" / "model.weights.h5").exists()
    m = json.loads((d / "metrics.json").read_text())
    assert 0 <= m["cv"]["accuracy"] <= 1 and m["test"]["n"] == 12
    pl = json.loads((run_dir / "06_pseudo_labelling" / "metrics.json").read_text())
    assert [r["teacher"] for r in pl["pseudo"]] == ["02_baseline_cnn"]
    assert 0 <= pl["pseudo"][0]["cv_after"] <= 1 and pl["pseudo"][0]["cv_before"] == m["cv"]["accuracy"]
    assert len(pd.read_csv(run_dir / "06_pseudo_labelling" / "oof.csv")) == 36
    ens = run_dir / "07_ensemble"
    sub = pd.read_csv(ens / "submission.csv")
    assert list(sub.columns) == ["id", "label"] and len(sub) == 12 and set(sub.label) <= set(classes)
    assert set(sub.id) == set(test.id)
    board = pd.read_csv(ens / "leaderboard.csv")
    assert {"ensemble: mean", "ensemble: stacking", "02_baseline_cnn"} <= set(board.model)
    em = json.loads((ens / "metrics.json").read_text())
    assert em["kind"] == "ensemble" and em["test"]["n"] == 12 and "02_baseline_cnn" in em["members"]
    hog = pd.read_csv(run_dir / "02b_classical" / "oof.csv")
    assert list(hog.columns) == list(oof.columns) and set(hog.id) == set(oof.id)
    assert "02b_classical/notebook.html" in (run_dir / "index.html").read_text()
    probe = pd.read_csv(run_dir / "02c_frozen_probe" / "oof.csv")
    assert list(probe.columns) == list(oof.columns) and set(probe.id) == set(oof.id)
    assert "02c_frozen_probe" in em["members"]
    eda = json.loads((run_dir / "01_eda_colour" / "metrics.json").read_text())
    assert eda["counts"] == {c: 14 for c in classes}
    index = (run_dir / "index.html").read_text()
    assert "02_baseline_cnn/notebook.html" in index and "01_eda_colour/notebook.html" in index
    # Grad-CAM montage in the stage's figures and on the index; the verdict names the submission
    assert any(f["path"] == "figures/gradcam.png" for f in m["figures"])
    assert (d / "figures" / "gradcam.png").stat().st_size > 0 and "02_baseline_cnn/figures/gradcam.png" in index
    assert f"Submit {em['model']} (chosen by 07_ensemble)" in html.unescape(index)
    assert {"best_single", "gain", "mcnemar_p"} <= set(em["versus"]) and em["versus"]["best_single"] in em["members"]


@pytest.mark.parametrize("stage,backbone,size", [("03_xception", "xception", 71), ("04_vgg16", "vgg16", 32),
                                                 ("05_inception_resnet_v2", "inception_resnet_v2", 75)])
def test_fine_tuning_stages_follow_the_contract(smoke_run, stage, backbone, size):
    run_dir, _ = smoke_run
    d = run_dir / stage
    params = json.loads((d / "params.json").read_text())
    # the smoke profile's stage section reached the notebook, the rest came from the profile
    assert params["backbone"] == backbone and params["image_size"] == size and params["weights"] == "none"
    assert params["epochs"] == 1 and params["limit"] == 12
    oof = pd.read_csv(d / "oof.csv")
    assert len(oof) == 36 and oof.filter(like="p_").sum(axis=1).round(4).eq(1).all()
    assert len(pd.read_csv(d / "test.csv")) == 12
    m = json.loads((d / "metrics.json").read_text())
    assert m["model"].startswith(backbone) and len(m["fold_times"]) == 2
    hist = pd.read_csv(d / "history.csv")
    if stage == "03_xception":  # head warm-up then fine-tuning, scored with and without TTA
        assert list(hist[hist.fold == 0].phase) == ["head", "train"]
        assert "without_tta" in m["cv"]
    assert f"{stage}/notebook.html" in (run_dir / "index.html").read_text()
    assert (d / "figures" / "gradcam.png").stat().st_size > 0


@pytest.mark.skipif(not (ROOT.parent / "shared" / "weights" / "mobilenet_v2").is_dir(),
                    reason="../shared/weights is absent")
def test_papermill_runs_another_backbone_with_offline_weights(tiny, env, tmp_path):
    out = tmp_path / "out.ipynb"
    weights = "../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5"
    r = _run([str(BIN / "papermill"), "notebooks/03_xception.ipynb", str(out), "-p", "data_dir", str(tiny),
              "-p", "backbone", "mobilenet_v2", "-p", "weights", weights, "-p", "image_size", "32",
              "-p", "epochs", "1", "-p", "head_epochs", "0", "-p", "folds", "2", "-p", "limit", "6",
              "-p", "run_id", "mnv2", "--no-progress-bar"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((Path(env["CELLCLF_RUNS"]) / "mnv2" / "03_xception" / "metrics.json").read_text())
    assert m["model"].startswith("mobilenet_v2 weights=mobilenet_v2_imagenet_notop.weights.h5")


def test_imagenet_offline_fails_naming_what_to_pass(tiny, env, tmp_path):
    out = tmp_path / "out.ipynb"
    env = {**env, "KERAS_HOME": str(tmp_path / "keras_home")}  # no cached download
    r = _run([str(BIN / "papermill"), "notebooks/04_vgg16.ipynb", str(out), "-p", "data_dir", str(tiny),
              "-p", "image_size", "32", "-p", "limit", "4", "-p", "folds", "2", "-p", "run_id", "offline",
              "--no-progress-bar"], env)
    if r.returncode == 0:
        pytest.skip("this machine can download ImageNet weights")
    assert "WeightsError: cannot download ImageNet weights for vgg16" in r.stderr
    assert "weights=none" in r.stderr


def test_finished_stages_are_never_overwritten(smoke_run, tiny, env):
    run_dir, _ = smoke_run
    metrics = run_dir / "02_baseline_cnn" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    args = [str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(tiny), "--run-id", "smoke1",
            "--no-progress-bar"]
    r = _run(args, env)
    assert r.returncode == 1 and "already finished" in r.stderr and "--resume" in r.stderr
    r = _run(args + ["--resume"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipped (--resume)" in r.stdout
    assert metrics.stat().st_mtime_ns == before


def test_bad_parameter_fails_naming_it(tiny, env):
    r = _run([str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(tiny), "--run-id", "bad",
              "--only", "02", "-p", "optimizer", "rmsprop", "--no-progress-bar", "--log-output"], env)
    assert r.returncode == 1
    assert "Executing notebook with kernel: cellclf" in r.stderr  # --log-output streams papermill's log
    assert "stage 02_baseline_cnn failed: ParameterError: parameter 'optimizer' must be one of sgd, adam" in r.stderr
    assert "bad/02_baseline_cnn/notebook.ipynb" in r.stderr
    assert not (Path(env["CELLCLF_RUNS"]) / "bad" / "02_baseline_cnn" / "metrics.json").exists()


def test_papermill_by_hand(tiny, env, tmp_path):
    out = tmp_path / "out.ipynb"
    r = _run([str(BIN / "papermill"), "notebooks/02_baseline_cnn.ipynb", str(out), "-f",
              "notebooks/profiles/smoke.yaml", "-p", "data_dir", str(tiny), "-p", "lr", "1e-3", "-p", "epochs", "1",
              "--no-progress-bar"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [p for p in Path(env["CELLCLF_RUNS"]).iterdir() if p.name.startswith("smoke-")]
    assert len(runs) == 1
    params = json.loads((runs[0] / "02_baseline_cnn" / "params.json").read_text())
    assert params["lr"] == 1e-3 and params["epochs"] == 1


@pytest.mark.skipif(not (ROOT.parent / "shared" / "weights" / "mobilenet_v2").is_dir(),
                    reason="../shared/weights is absent")
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fine_tuning_stage_runs_under_another_backend(tiny, env, tmp_path, backend):
    """The GPU runner here has JAX and PyTorch and no TensorFlow: the fine-tuning stage must run
    under JAX there, and under PyTorch where a user's runner has that (torch is not a project
    dependency: that case runs where it is installed)."""
    pytest.importorskip(backend)
    backend_env = {**env, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"}
    weights = "../shared/weights/mobilenet_v2/mobilenet_v2_imagenet_notop.weights.h5"
    r = _run([str(BIN / "papermill"), "notebooks/03_xception.ipynb", str(tmp_path / "out.ipynb"),
              "-p", "data_dir", str(tiny), "-p", "backbone", "mobilenet_v2", "-p", "weights", weights,
              "-p", "image_size", "32", "-p", "epochs", "1", "-p", "head_epochs", "1", "-p", "folds", "2",
              "-p", "limit", "6", "-p", "mixup", "0.2", "-p", "augment", "strong", "-p", "run_id", backend,
              "--no-progress-bar"], backend_env)
    assert r.returncode == 0, r.stderr[-3000:]
    d = Path(env["CELLCLF_RUNS"]) / backend / "03_xception"
    m = json.loads((d / "metrics.json").read_text())
    assert m["cv"]["n"] == 18 and "without_tta" in m["cv"]
    assert m["title"] == "Fine-tuning MobileNetV2"  # named for the backbone it ran, not the notebook


def test_a_dataset_without_test_images_skips_pseudo_labelling_and_the_series_goes_on(env, tmp_path):
    """Herlev as shipped has no test/ folder: 06 must say why it has nothing to do, not stop the run."""
    from cellclf_utils.data import synth
    notest = tmp_path / "notest"
    synth.generate(notest, seed=2, size=48, n_train_per_class=10, n_test_per_class=0, progress=False)
    assert not (notest / "test").exists()
    r = _run([str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(notest), "--run-id", "notest",
              "--only", "02,02b,06,07", "--no-progress-bar"], env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    run_dir = Path(env["CELLCLF_RUNS"]) / "notest"
    pl = json.loads((run_dir / "06_pseudo_labelling" / "metrics.json").read_text())
    assert pl["kind"] == "skipped" and "no unlabeled test images" in pl["note"] and pl["pseudo"] == []
    assert not (run_dir / "06_pseudo_labelling" / "oof.csv").exists()
    em = json.loads((run_dir / "07_ensemble" / "metrics.json").read_text())
    assert em["kind"] == "ensemble" and "06_pseudo_labelling" not in em["members"] and em["test"] is None
    index = html.unescape((run_dir / "index.html").read_text())
    assert "no unlabeled test images" in index and "06_pseudo_labelling/notebook.html" in index
