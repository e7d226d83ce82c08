"""A rehearsal of benchmarks/gpu_check.sh, the one-call script for a lent GPU machine, on this
CPU under JAX (the backend it sets): device time is scarce, so a broken flag or path must show
here, not in the device's minutes."""
import csv
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT, shared_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gpu_check")]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
# the whole path of `full` (plan, run, plan against the run, archive) on three cheap stages
FULL_ARGS = "--only 02,06,07 -p image_size 32 -p epochs 1 -p folds 2 -p limit 8 -p tta false"


@pytest.fixture(scope="module")
def device_env(tmp_path_factory):
    pytest.importorskip("jax")
    tmp = tmp_path_factory.mktemp("gpu_check")
    # bf16, as the card picks by itself (precision.auto)
    return {**os.environ, "SKIP_INSTALL": "1", "PY": sys.executable, "JAX_PLATFORMS": "cpu",
            "CELLCLF_PRECISION": "mixed_bfloat16",
            "CELLCLF_RUNS": str(tmp / "runs"), "CELLCLF_CACHE": str(tmp / "cache"),
            "CELLCLF_COMPILE_CACHE": str(tmp / "xla"), "CELLCLF_ROOT": str(ROOT)}, tmp


def _check(part: str, env: dict, out: Path, **knobs) -> str:
    r = subprocess.run(["bash", str(SCRIPT), part], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**env, "OUT": str(out), **knobs})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def test_full_runs_the_series_then_resumes_it(device_env):
    from cellclf_utils.folds import split
    env, tmp = device_env
    herlev = shared_or_skip("data", "herlev")
    data = tmp / "herlev-split"  # as prepared for the device: a held-out test/ for pseudo-labelling
    split.split(herlev, data, test_fraction=0.2, seed=0, progress=False)
    out = tmp / "out1"
    log = _check("full", env, out, FULL_DATA=str(data), FULL_ARGS=FULL_ARGS, FULL_S="500")
    assert "jax" in (out / "device.txt").read_text()
    for stage in ("02_baseline_cnn", "06_pseudo_labelling (02_baseline_cnn)", "07_ensemble"):
        assert stage in (out / "plan.txt").read_text()
    assert "stage 07_ensemble finished" in log
    # the plan beside the run: it read each stage's wall time from the run's own files
    against = (out / "plan_vs_run.txt").read_text()
    assert "run_stage_s" in against and "0.0 min of stage wall time" not in against
    with tarfile.open(out / "gpu-full.tgz") as t:
        names = t.getnames()
    assert {f"gpu-full/{s}/metrics.json" for s in ("02_baseline_cnn", "06_pseudo_labelling", "07_ensemble")} <= set(names)
    assert not [n for n in names if n.endswith((".weights.h5", ".npz"))]  # the archive stays small
    # a second call (the device's next one, after a time limit) continues the same run
    metrics = Path(env["CELLCLF_RUNS"]) / "gpu-full" / "02_baseline_cnn" / "metrics.json"
    before = metrics.stat().st_mtime_ns
    log = _check("full", env, tmp / "out2", FULL_DATA=str(data), FULL_ARGS=FULL_ARGS, FULL_S="500")
    assert "02_baseline_cnn: finished earlier, skipped (--resume)" in log
    assert metrics.stat().st_mtime_ns == before


def test_bench_measures_and_names_what_it_skips(device_env):
    env, tmp = device_env
    out = tmp / "bench"
    log = _check("bench", env, out, BENCH_MODELS="baseline@32", BENCH_VARIANTS="project naive head predict",
                 BENCH_ARGS="--steps 2 --batch-size 8 --stage-models baseline")
    with open(out / "throughput.csv", newline="") as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    assert float(rows["project"]["img_s"]) > 0 and float(rows["predict"]["img_s"]) > 0
    assert set(rows) == {"project", "predict"}
    # every row in bf16: clear_session() between rows resets Keras' policy, the script sets it again
    assert {r["precision"] for r in rows.values()} == {"mixed_bfloat16"}
    assert "skipped: naive for baseline@32: stage 02's CNN is not in keras.applications or timm" in log
    assert "skipped: timm for baseline@32" in log  # its own process, before the Keras ones
    assert "skipped: head for baseline@32: stage 02's CNN has no base to freeze" in log


def test_epoch_times_a_stage_epoch(device_env):
    env, tmp = device_env
    out = tmp / "epoch"
    _check("epoch", env, out, EPOCH_MODELS="baseline@32",
           EPOCH_ARGS="--train 32 --val 16 --batch-size 8 --epochs 1 2")
    row = [line for line in (out / "epoch_overhead.md").read_text().splitlines() if line.startswith("| baseline@32 |")]
    assert len(row) == 1, (out / "epoch_overhead.md").read_text()
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    # steps per epoch, then seconds: bare fit, stage fit, validation predict, rest, model.predict, two copies
    assert cells[2] == "4" and all(c.endswith(" s") and not math.isnan(float(c[:-2])) for c in cells[3:])
