"""Trained stages used outside their run, on the smoke series: `cellclf predict` reproduces each
stage's own test predictions from its saved models, the exported model loads without cellclf
and predicts the same, and bad input stops with a message naming it, writing nothing into the run."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from cellclf_utils.predict import ensemble, saved
from cellclf_utils.runfolder import open_run
from conftest import BIN, run_process, run_under

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("series")]


def _test_images(tiny):
    test = tiny[0] / "test"
    return [f"test/{p.relative_to(test).as_posix()}" for p in sorted(test.rglob("*")) if p.is_file()], test


def _snapshot(run_dir):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in run_dir.rglob("*")}


@pytest.mark.parametrize("stage", ["02_baseline_cnn", "02b_classical", "02c_frozen_probe", "03_xception",
                                   "05_inception_resnet_v2", "06_pseudo_labelling"])
def test_each_stage_reproduces_its_own_test_predictions(series, tiny, stage):
    run = open_run(series[0])
    ids, _ = _test_images(tiny)
    own = run.stage(stage).test().set_index("id").loc[ids]
    proba = saved.predict_proba(saved.open_stage(run, stage), [tiny[0] / i for i in ids], progress=False)
    np.testing.assert_allclose(proba, own.filter(like="p_").to_numpy(), atol=1e-5)


def test_the_ensemble_reproduces_what_07_submitted(series, tiny):
    run = open_run(series[0])
    ids, _ = _test_images(tiny)
    metrics = run.stage("07_ensemble").metrics()
    members = ensemble.load(run, metrics["members"])
    want = pd.DataFrame(ensemble.predict_test(members, metrics["model"]), index=members.test_ids).loc[ids]
    proba = saved.predict_proba(saved.open_stage(run, "07_ensemble"), [tiny[0] / i for i in ids], progress=False)
    np.testing.assert_allclose(proba, want.to_numpy(), atol=1e-5)


def test_predict_names_a_bad_image_skips_it_when_told_and_leaves_the_run_as_it_was(series, tiny, env, tmp_path):
    run_dir = series[0]
    images = tmp_path / "new"
    shutil.copytree(_test_images(tiny)[1], images)
    (images / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    before = _snapshot(run_dir)
    out = tmp_path / "preds.csv"
    args = [str(BIN / "cellclf"), "predict", str(run_dir), str(images), "--out", str(out), "--quiet"]
    r = run_process(args, env, cwd=tmp_path)
    assert r.returncode == 2 and "zz_broken.png" in r.stderr and "--on-bad-image skip" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    r = run_process(args + ["--on-bad-image", "skip"], env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((run_dir / "07_ensemble" / "metrics.json").read_text())
    assert f"model: smoke1/07_ensemble: {m['model']}; out-of-fold accuracy" in r.stdout
    assert f"skipped {images / 'zz_broken.png'}" in r.stdout
    preds = pd.read_csv(out)
    classes = m["classes"]
    assert list(preds.columns) == ["id", "label", *(f"p_{c}" for c in classes)] and len(preds) == len(_test_images(tiny)[0])
    assert (preds.label == [classes[i] for i in preds.filter(like="p_").to_numpy().argmax(1)]).all()
    r = run_process(args + ["--on-bad-image", "skip"], env, cwd=tmp_path)
    assert r.returncode == 2 and "--overwrite" in r.stderr  # an existing --out is kept
    assert _snapshot(run_dir) == before


def test_an_exported_stage_loads_without_cellclf_and_predicts_as_predict_does(series, tiny, env, tmp_path):
    run_dir = series[0]
    out = tmp_path / "bundle"
    r = run_process([str(BIN / "cellclf"), "export", str(run_dir), "--stage", "03", "--out", str(out), "--tta"], env)
    assert r.returncode == 0, r.stderr[-3000:]
    card = (out / "model_card.md").read_text()
    m = json.loads((run_dir / "03_xception" / "metrics.json").read_text())
    assert all(f"`{c}`" in card for c in m["classes"]) and "Out-of-fold accuracy" in card and "TTA" in card
    ids, _ = _test_images(tiny)
    run = open_run(run_dir)
    sm = saved.open_stage(run, "03_xception")
    want = saved.predict_proba(sm, [tiny[0] / i for i in ids], tta=True, progress=False)
    x = saved.images_for(sm, [tiny[0] / i for i in ids], False)
    np.save(tmp_path / "x.npy", x)
    code = ("import json, sys, keras, numpy as np\n"
            "m = keras.saving.load_model(sys.argv[1])\n"
            "assert not any(k.startswith('cellclf') for k in sys.modules), 'cellclf imported'\n"
            "print(json.dumps(m.predict(np.load(sys.argv[2]), verbose=0).tolist()))\n")
    got = np.array(json.loads(run_under("tensorflow", code, out / "model.keras", tmp_path / "x.npy").splitlines()[-1]))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_scikit_learn_stages_and_the_ensemble_export_their_parts(series, env, tmp_path):
    run_dir = series[0]
    r = run_process([str(BIN / "cellclf"), "export", str(run_dir), "--stage", "02c", "--out", str(tmp_path / "probe")], env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "probe").iterdir()) == [
        "features.keras", "fold0.skops", "fold1.skops", "model_card.md", "parameters.yaml"]
    r = run_process([str(BIN / "cellclf"), "export", str(run_dir), "--out", str(tmp_path / "ens")], env)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((run_dir / "07_ensemble" / "metrics.json").read_text())
    members = [m["model"]] if not m["model"].startswith("ensemble: ") else m["members"]
    assert sorted(p.name for p in (tmp_path / "ens" / "members").iterdir()) == sorted(members)
    assert (tmp_path / "ens" / "combiner.json").is_file() and "members/" in (tmp_path / "ens" / "model_card.md").read_text()
