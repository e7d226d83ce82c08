"""A stage's saved models classify new images as the stage did: the mean of its fold models at
the stage's size, with its TTA (Keras folds, under TensorFlow and JAX), or its fold pipelines on
the stage's features (02b); a stage without saved models says so."""
import json

import cv2
import keras
import numpy as np
import pytest

from cellclf_utils.data import cache
from cellclf_utils.model import cnn, inference, tta
from cellclf_utils.predict import saved
from cellclf_utils.runfolder import open_run
from cellclf_utils.shallow import classifiers, features, model_files
from conftest import run_under_jax

SIZE = 16


def _stage(run, name, params, folds):
    """A finished model stage with ``folds`` {k: writer(fold folder)}."""
    d = run / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"kind": "model", "classes": ["alpha", "beta"], "model": name,
                                                "cv": {"accuracy": 0.5, "accuracy_ci": [0.4, 0.6], "n": 12}}))
    (d / "params.json").write_text(json.dumps({"image_size": SIZE, "resize": "pad", "batch_size": 4, **params}))
    for k, write in folds.items():
        (d / f"fold{k}").mkdir()
        write(d / f"fold{k}")
    return d


def _paths(small_dataset):
    return sorted((small_dataset / "test").glob("*.png"))


@pytest.fixture
def keras_run(tmp_path):
    def fold(seed):
        def write(folder):
            keras.utils.set_random_seed(seed)
            inference.inference_model(cnn.baseline_cnn(SIZE, 2, augment_preset="basic")).save(folder / "model.keras")
            (folder / "done.json").write_text(json.dumps({"batch_size": 4}))
        return write
    _stage(tmp_path / "run", "02_baseline_cnn", {"tta": True}, {0: fold(0), 1: fold(1)})
    return tmp_path / "run"


def test_keras_folds_are_averaged_with_the_stage_tta(keras_run, small_dataset):
    paths = _paths(small_dataset)
    sm = saved.open_stage(open_run(keras_run), "02_baseline_cnn")
    assert sm.kind == "keras" and [f.k for f in sm.folds] == [0, 1]
    x = cache.load_many(paths, SIZE, "pad", progress=False)
    models = [keras.saving.load_model(keras_run / "02_baseline_cnn" / f"fold{k}" / "model.keras") for k in (0, 1)]
    want = np.mean([tta.predict_proba(m, x, 4, True) for m in models], axis=0)
    np.testing.assert_allclose(saved.predict_proba(sm, paths, progress=False), want, atol=1e-6)
    plain = np.mean([tta.predict_proba(m, x, 4, False) for m in models], axis=0)
    np.testing.assert_allclose(saved.predict_proba(sm, paths, tta=False, progress=False), plain, atol=1e-6)
    code = ("import json, sys\nfrom pathlib import Path\nfrom cellclf_utils.predict import saved\n"
            "from cellclf_utils.runfolder import open_run\n"
            "sm = saved.open_stage(open_run(sys.argv[1]), '02_baseline_cnn')\n"
            "print(json.dumps(saved.predict_proba(sm, sys.argv[2:], progress=False).tolist()))\n")
    under_jax = json.loads(run_under_jax(code, keras_run, *paths).splitlines()[-1])
    np.testing.assert_allclose(under_jax, want, atol=1e-5)


def test_gradcam_writes_one_picture_per_image_outside_the_run(keras_run, small_dataset, tmp_path):
    from cellclf_utils.predict import explain
    paths = _paths(small_dataset)
    sm = saved.open_stage(open_run(keras_run), "02_baseline_cnn")
    ids = [f"sub/{p.name}" for p in paths]
    written = explain.explain(sm, ids, paths, np.array([0, 1, 0, 1]), tmp_path / "cams", progress=False)
    assert [p.name for p in written] == [f"sub__{p.name}__{c}.png" for p, c in zip(paths, ["alpha", "beta"] * 2)]
    picture = cv2.imread(str(written[0]))
    assert picture.shape == (explain.DISPLAY, 2 * explain.DISPLAY, 3)


def test_feature_stages_average_their_fold_pipelines(tmp_path, small_dataset):
    paths = _paths(small_dataset)
    x = cache.load_many(paths, SIZE, "pad", progress=False)
    feats = features.hog_and_colour(x)
    rng = np.random.default_rng(0)
    fitted = [classifiers.make_classifier("logreg").fit(rng.normal(size=(20, feats.shape[1])), np.arange(20) % 2)
              for _ in range(2)]
    folds = {k: (lambda folder, m=m: model_files.save(m, folder / "model.skops")) for k, m in enumerate(fitted)}
    run = tmp_path / "run"
    _stage(run, "02b_classical", {"tta": False}, folds)
    sm = saved.open_stage(open_run(run), "02b_classical")
    assert sm.kind == "features"
    want = np.mean([m.predict_proba(feats) for m in fitted], axis=0)
    np.testing.assert_allclose(saved.predict_proba(sm, paths, progress=False), want, atol=1e-12)


def test_a_stage_without_saved_models_says_it_must_be_rerun(tmp_path):
    _stage(tmp_path / "run", "03_xception", {}, {0: lambda folder: (folder / "model.weights.h5").write_bytes(b"")})
    with pytest.raises(saved.PredictError, match="trained before stages saved their models; rerun it"):
        saved.open_stage(open_run(tmp_path / "run"), "03_xception")


def test_keep_models_best_predicts_with_the_fold_kept_and_none_says_what_to_do(keras_run, small_dataset):
    from cellclf_utils.predict import classify
    metrics = keras_run / "02_baseline_cnn" / "metrics.json"
    m = json.loads(metrics.read_text())
    (keras_run / "02_baseline_cnn" / "fold0" / "model.keras").unlink()  # what keep_models best leaves
    metrics.write_text(json.dumps({**m, "folds": 2, "models_kept": [1]}))
    sm = saved.open_stage(open_run(keras_run), "02_baseline_cnn")
    assert [f.k for f in sm.folds] == [1]
    assert classify.describe(sm).endswith("2 folds (the model of fold 1 only: keep_models)")
    paths = _paths(small_dataset)
    one = keras.saving.load_model(keras_run / "02_baseline_cnn" / "fold1" / "model.keras")
    x = cache.load_many(paths, SIZE, "pad", progress=False)
    np.testing.assert_allclose(saved.predict_proba(sm, paths, progress=False), tta.predict_proba(one, x, 4, True),
                               atol=1e-6)
    metrics.write_text(json.dumps({**m, "models_kept": []}))
    with pytest.raises(saved.PredictError, match=r"kept no fold models \(keep_models none\).*keep_models all"):
        saved.open_stage(open_run(keras_run), "02_baseline_cnn")
