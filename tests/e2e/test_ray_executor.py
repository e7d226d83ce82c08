"""`cellclf run --executor ray` on a real local Ray (this machine's cores, nothing mocked): the
smoke series gives what the local runner gives, fold by fold; a worker killed mid-fold is
retried and only its fold is trained again; a killed driver resumes with --resume; a failing
fold stops the run with the local runner's message."""
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from conftest import BIN, ROOT, run_process as _run

pytestmark = pytest.mark.slow


def _ray_run(tiny, env, runs, run_id, *extra):
    args = [str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(tiny[0]), "--run-id", run_id,
            "--executor", "ray", *extra]
    return args, {**env, "CELLCLF_RUNS": str(runs)}


def _hashes(fold_dir):
    """The fold's results: its files less the job's own record and the progress line's source
    (removed when the stage ends)."""
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(fold_dir.iterdir())
            if p.name not in ("job.json", "job.log", "progress.json")}


def _attempts(fold_dir) -> int:
    return json.loads((fold_dir / "job.json").read_text())["attempt"]


@pytest.mark.xdist_group("series")
def test_the_smoke_series_on_ray_gives_the_local_runners_folds_predictions_and_leaderboard(series, tiny, env,
                                                                                          tmp_path):
    local, _ = series
    args, here = _ray_run(tiny, env, tmp_path, "ray1")
    r = _run(args, here)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    ray = tmp_path / "ray1"
    assert (ray / "folds.csv").read_text() == (local / "folds.csv").read_text()
    preds = sorted(local.rglob("preds.npz"))
    assert len(preds) >= 8  # 02-05 and 06's students, two folds each
    for p in preds:
        mine, theirs = np.load(ray / p.relative_to(local)), np.load(p)
        assert mine.files == theirs.files
        for k in theirs.files:
            np.testing.assert_allclose(mine[k], theirs[k], atol=1e-6, err_msg=str(p))
    for oof in sorted(local.glob("*/oof.csv")):
        pd.testing.assert_frame_equal(pd.read_csv(ray / oof.relative_to(local)), pd.read_csv(oof), atol=1e-6)
    board = "07_ensemble/leaderboard.csv"
    pd.testing.assert_frame_equal(pd.read_csv(ray / board), pd.read_csv(local / board), atol=1e-6)
    # each fold ran as a job of its own, said where it was as it trained, and said so as it ended
    assert "] 03_xception/fold1: done in" in r.stderr and (ray / "03_xception" / "fold1" / "job.log").is_file()
    assert re.search(r"^  03_xception · fold 2/2 · epoch \d/\d", r.stderr, re.M), r.stderr[-3000:]
    assert (ray / "index.html").is_file() and not list(ray.rglob("progress.json"))


def _start(args, env):
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for_a_fold_done_and_one_training(stage_dir, proc, timeout=600):
    """Return (finished fold folders, a fold folder whose job is training) once there are both."""
    end = time.time() + timeout
    while time.time() < end:
        assert proc.poll() is None, proc.communicate()
        folds = sorted(stage_dir.glob("fold*"))
        done = [f for f in folds if (f / "done.json").is_file()]
        training = [f for f in folds if f not in done and (f / "job.json").is_file() and (f / "job.log").is_file()
                    and f"fold {f.name[4:]}: " in (f / "job.log").read_text(errors="replace")]
        if done and training:
            return done, training[0]
        time.sleep(0.2)
    raise AssertionError(f"no fold finished beside a training one within {timeout} s")


# three folds on two workers: a fold finishes while another trains; enough epochs to be caught mid-fold
LONG = ("--only", "04", "-p", "folds", "3", "-p", "epochs", "8", "--no-progress-bar")


def _caught_mid_fold(tiny, env, tmp_path, run_id):
    """Start the LONG run; return it once a fold is finished and another trains, with the
    finished folds' file hashes."""
    args, here = _ray_run(tiny, env, tmp_path, run_id, *LONG)
    proc = _start(args, here)
    stage = tmp_path / run_id / "04_vgg16"
    done, training = _wait_for_a_fold_done_and_one_training(stage, proc)
    return args, here, proc, stage, done, training, {f.name: _hashes(f) for f in done}


@pytest.mark.xdist_group("ray")
def test_a_worker_killed_mid_fold_is_retried_and_only_that_fold_trains_again(tiny, env, tmp_path):
    args, here, proc, stage, done, victim, before = _caught_mid_fold(tiny, env, tmp_path, "kill1")
    os.kill(json.loads((victim / "job.json").read_text())["pid"], signal.SIGKILL)  # the Ray worker running it
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:] + err[-6000:]
    assert (stage / "metrics.json").is_file()
    assert _attempts(victim) == 2 and f"04_vgg16/{victim.name}: done in" in err and "attempt 2" in err
    for f in done:
        assert _hashes(f) == before[f.name] and _attempts(f) == 1, f.name


@pytest.mark.xdist_group("ray")
def test_a_killed_driver_resumes_with_resume_skipping_finished_folds(tiny, env, tmp_path):
    args, here, proc, stage, done, _, before = _caught_mid_fold(tiny, env, tmp_path, "resume1")
    os.killpg(proc.pid, signal.SIGKILL)  # the driver (and the Ray instance it started)
    proc.communicate()
    r = _run(args + ["--resume"], here)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    assert (stage / "metrics.json").is_file()
    for f in done:
        assert _hashes(f) == before[f.name], f.name
        assert f"04_vgg16/{f.name}: done" not in r.stderr  # no job for a finished fold


@pytest.mark.xdist_group("ray")
def test_a_failing_fold_stops_the_run_with_the_local_runners_message(tiny, env, tmp_path):
    bad = tmp_path / "cut.weights.h5"
    bad.write_bytes(b"not an HDF5 file")
    first_lines = {}
    for executor in ("local", "ray"):
        args = [str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(tiny[0]), "--run-id", executor,
                "--only", "04", "-p", "weights", str(bad), "--executor", executor, "--no-progress-bar"]
        r = _run(args, {**env, "CELLCLF_RUNS": str(tmp_path)})
        assert r.returncode == 1, r.stderr[-3000:]
        said = [line for line in r.stderr.splitlines() if line.startswith("cellclf run: ")]
        assert said and "Traceback" not in r.stderr.split(said[0])[1], r.stderr[-3000:]
        first_lines[executor] = said[0]
        assert f"cellclf run --run-id {executor} --resume --only 04" in r.stderr
    assert first_lines["ray"] == first_lines["local"]
    assert first_lines["ray"].startswith("cellclf run: stage 04_vgg16 failed: ")


def test_without_ray_the_executor_says_how_to_install_it(tiny, env, tmp_path):
    # a Python path entry that hides ray: the package's own import of it fails as if it were absent
    hide = tmp_path / "noray"
    (hide / "ray").mkdir(parents=True)
    (hide / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    args, here = _ray_run(tiny, env, tmp_path, "noray1")
    r = _run(args, {**here, "PYTHONPATH": str(hide)})
    assert r.returncode == 1 and "--executor ray needs Ray" in r.stderr and "pip install" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "noray1").exists()
