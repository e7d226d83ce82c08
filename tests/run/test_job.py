"""What a job process of the Ray executor gets from the driver: its backend and precision said
explicitly, the run and cache folders, the run lock's holder, and on a shared card JAX
memory settings that let several processes share it."""
from pathlib import Path

from cellclf_utils.run import job
from cellclf_utils.runfolder import lock


def test_a_job_takes_the_drivers_backend_and_precision_and_the_runs_folders():
    env = job.environment(Path("/shared/runs/r1"), Path("/shared/cache"), 1.0,
                          {"KERAS_BACKEND": "jax", "CELLCLF_PRECISION": "float32", "HOME": "/home/me",
                           lock.HOLDER_ENV: "4242"})
    assert env["KERAS_BACKEND"] == "jax" and env["CELLCLF_PRECISION"] == "float32"
    assert env["CELLCLF_RUNS"] == "/shared/runs" and env["CELLCLF_CACHE"] == "/shared/cache"
    assert env[lock.HOLDER_ENV] == "4242"  # its stage writes under the driver's lock
    assert "HOME" not in env and "OMP_NUM_THREADS" not in env  # the rest is the worker's own
    # ... less the thread count Ray sets per task: the driver's (here: none) computes as the local runner
    assert "OMP_NUM_THREADS" in job.DRIVER_ONLY
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in env


def test_the_backend_is_always_said_and_a_shared_card_caps_jax_memory():
    env = job.environment(Path("/r/x"), Path("/c"), 0.5, {})
    assert env["KERAS_BACKEND"] == "tensorflow"
    assert env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.45"


def test_a_job_logs_in_its_folds_folder_or_its_stages():
    assert job.folder(Path("/r/x"), "03_xception", 2) == Path("/r/x/03_xception/fold2")
    assert job.folder(Path("/r/x"), "07_ensemble", None) == Path("/r/x/07_ensemble")
