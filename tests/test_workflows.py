"""The CI entry points say what the README says they do."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / "README.md").read_text()
    assert re.search(r"^\s*(exec\s+)?make test\b", (ROOT / ".ci" / "run").read_text(), re.M)


def test_gpu_workflow_runs_the_series_on_jax_and_keeps_the_report():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "gpu-series.yml").read_text())
    job = wf["jobs"]["series"]
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    assert job["env"]["KERAS_BACKEND"] == "jax"
    steps = " ".join(str(s.get("run", "")) for s in job["steps"])
    assert "cellclf run" in steps and "ipykernel install" in steps and "jax[cuda" in steps
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "runs/" in upload["with"]["path"]


def test_gpu_workflow_runs_folds_side_by_side_on_ray_when_asked_for_workers():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "gpu-series.yml").read_text())
    inputs = wf[True]["workflow_dispatch"]["inputs"]  # YAML reads the key `on` as true
    assert inputs["workers"]["default"] == "1"
    steps = " ".join(str(s.get("run", "")) for s in wf["jobs"]["series"]["steps"])
    assert "--executor ray --gpus-per-fold" in steps and "[dev,ray]" in steps
