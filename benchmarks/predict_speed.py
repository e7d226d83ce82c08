"""Time `cellclf predict` on the CPU: seconds per 100 images for stages of a finished run. Each
call loads the stage's fold models (as every `cellclf predict` does); the first call also
decodes the images into the cache and traces the models, so it is reported apart.

usage: KERAS_BACKEND=tensorflow python benchmarks/predict_speed.py RUN IMAGES_DIR [--stage 03 ...] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cellclf_utils.config import stage_name  # noqa: E402
from cellclf_utils.data.new_images import gather  # noqa: E402
from cellclf_utils.predict.saved import open_stage, predict_proba  # noqa: E402
from cellclf_utils.runfolder import open_run  # noqa: E402


def time_stage(run, name: str, paths: list, repeats: int) -> dict:
    """Return the stage's first call and its best later call (fold models loaded in each)."""
    t0 = time.perf_counter()
    predict_proba(open_stage(run, name), paths, progress=False)  # loads, compiles, fills the image cache
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_proba(open_stage(run, name), paths, progress=False)
        best = min(best, time.perf_counter() - t0)
    return {"stage": name, "images": len(paths), "first_s": first, "s_per_100": 100 * best / len(paths)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("images")
    ap.add_argument("--stage", action="append", default=None, help="repeatable (default: 07_ensemble)")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    run, paths = open_run(a.run), gather([a.images]).paths
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"KERAS_BACKEND={os.environ['KERAS_BACKEND']}, run {run.id}")
    print("stage,images,first_call_s,s_per_100_images")
    for name in a.stage or ["07_ensemble"]:
        r = time_stage(run, stage_name(name), paths, a.repeats)
        print(f"{r['stage']},{r['images']},{r['first_s']:.1f},{r['s_per_100']:.2f}")


if __name__ == "__main__":
    main()
