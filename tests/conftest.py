"""Shared test set-up: an explicit Keras backend, a headless matplotlib, and caches and
runs kept in temporary folders so tests never touch the project's runs/."""
import os
import subprocess
import sys
from pathlib import Path

os.environ["KERAS_BACKEND"] = os.environ.get("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's commands: cellclf, papermill
SHARED = ROOT.parent / "shared"
TEST_DIRS = [str(ROOT / "tests"), *sorted(str(d) for d in (ROOT / "tests").rglob("*") if d.is_dir()
                                           and not d.name.startswith((".", "_")))]


def run_under(backend: str, code: str, *args, timeout: int = 300) -> str:
    """Return the stdout of ``code`` run by a fresh Python under KERAS_BACKEND=``backend`` on the
    CPU (project root as working directory, ``args`` as sys.argv[1:]); fail with its stderr when
    it fails. For code that patches modules, or needs a backend the suite's process is not on."""
    # the test folders on the path too: the code may import a test module, which imports conftest
    path = os.pathsep.join(filter(None, [*TEST_DIRS, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def run_under_jax(code: str, *args, timeout: int = 300) -> str:
    """``run_under('jax', ...)``, skipped when JAX is absent. The suite's own process stays on
    TensorFlow."""
    pytest.importorskip("jax")
    return run_under("jax", code, *args, timeout=timeout)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("CELLCLF_CACHE", str(base / "cache"))
    monkeypatch.setenv("CELLCLF_RUNS", str(base / "runs"))
    monkeypatch.setenv("CELLCLF_COMPILE_CACHE", str(base / "xla"))
    monkeypatch.setenv("CELLCLF_ROOT", str(ROOT))


def write_image(path: Path, img: np.ndarray, ext: str = ".png") -> Path:
    """Write an RGB (or gray/RGBA/16-bit) array with OpenCV via bytes (non-ASCII names work)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def blob_image(rng, size=40, colour=(200, 80, 120)) -> np.ndarray:
    """Return a light image with one coloured disc at a random place."""
    img = np.full((size, size, 3), 235, np.uint8)
    c = tuple(int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
    cv2.circle(img, c, size // 5, colour, -1)
    return img


@pytest.fixture
def small_dataset(tmp_path):
    """A two-class folder dataset (6 images per class) with a test/ folder and labels."""
    rng = np.random.default_rng(0)
    root = tmp_path / "ds"
    for cls, colour in (("alpha", (200, 60, 60)), ("beta", (60, 60, 200))):
        for i in range(6):
            write_image(root / cls / f"{cls}{i}.png", blob_image(rng, colour=colour))
    for i in range(4):
        write_image(root / "test" / f"t{i}.png", blob_image(rng, colour=(200, 60, 60) if i % 2 else (60, 60, 200)))
    (root / "test_labels.csv").write_text("id,label\n" + "".join(
        f"t{i}.png,{'alpha' if i % 2 else 'beta'}\n" for i in range(4)))
    return root


def shared_or_skip(*parts) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent (../shared holds the real data and weights; CI has it)")
    return p


def train_params(**kw) -> dict:
    """Return the parameters a training test runs with (small, fast), ``kw`` on top."""
    P = {"seed": 0, "optimizer": "adam", "lr": 1e-2, "monitor": "val_auc", "batch_size": 16, "epochs": 2,
         "schedule": "constant", "tta": False, "class_weight": "none"}
    P.update(kw)
    return P


def toy_images(n=48, size=16):
    """Return images whose class is the brightness of the left half: learnable in a few steps."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    x[y == 1, :, : size // 2] += 150
    return x, y


# The smoke series the end-to-end tests share (tests/e2e): one run per test session, in the
# worker of xdist_group "series", on a tiny 8-class synthetic set.
SMOKE_CLASSES = 8
SMOKE_LIMIT = 12  # the smoke profile's images per class


def run_process(args, env, cwd=ROOT, timeout=1800):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """8 classes x 14 training images at 48 px, 3 test images per class; and the class names."""
    from cellclf_utils.data import synth
    out = tmp_path_factory.mktemp("tiny") / "synth8"
    summary = synth.generate(out, seed=3, size=48, n_train_per_class=14, n_test_per_class=3, n_classes=SMOKE_CLASSES,
                             progress=False)
    return out, sorted(summary["classes"])


@pytest.fixture(scope="session")
def env(tmp_path_factory):
    runs = tmp_path_factory.mktemp("e2e_runs")
    return {**os.environ, "CELLCLF_RUNS": str(runs), "CELLCLF_CACHE": str(runs.parent / "e2e_cache"),
            "KERAS_BACKEND": "tensorflow", "CELLCLF_ROOT": str(ROOT)}


@pytest.fixture(scope="session")
def series(tiny, env, tmp_path_factory):
    """``(run folder, completed process)`` of `cellclf run --profile smoke` started outside the
    checkout, with neither CELLCLF_ROOT nor CELLCLF_RUNS set."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    bare = {k: v for k, v in env.items() if k not in ("CELLCLF_ROOT", "CELLCLF_RUNS")}
    r = run_process([str(BIN / "cellclf"), "run", "--profile", "smoke", "--data", str(tiny[0]), "--run-id", "smoke1"],
                    bare, cwd=elsewhere)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    return elsewhere / "runs" / "smoke1", r
