"""Measure the CPU pipeline: synthetic-set generation, image decode (cold and cached),
baseline-CNN training throughput, and fine-tuning throughput per backbone (the stages'
model and freeze policy, weights none). Prints a Markdown table for docs/performance.md.

usage: KERAS_BACKEND=tensorflow python benchmarks/cpu_pipeline.py [--sizes 64 96 128] [--data DIR]
       [--backbones mobilenet_v2@160 xception@96 ...]
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    ap.add_argument("--data", default=None, help="dataset to time decoding on (default: a fresh synthetic set)")
    ap.add_argument("--images", type=int, default=640, help="training images per throughput measurement")
    ap.add_argument("--backbones", nargs="*", default=["mobilenet_v2@160", "xception@96", "vgg16@64",
                                                        "inception_resnet_v2@75"],
                    help="fine-tuning models to time, as name@size (default policy, weights none)")
    a = ap.parse_args()

    import keras
    from cellclf_utils.data import load_dataset, synth
    from cellclf_utils.model import backbones, cnn

    tmp = Path(tempfile.mkdtemp())
    os.environ["CELLCLF_CACHE"] = str(tmp / "cache")
    rows = []
    if a.data is None:
        _, dt = _timed(lambda: synth.generate(tmp / "synth", seed=0, progress=False))
        rows.append(("synthetic set, 1,320 images @128 px", f"{dt:.1f} s", f"{1320 / dt:.0f} img/s"))
        source = tmp / "synth"
    else:
        source = Path(a.data)
    ds, dt = _timed(lambda: load_dataset(source, progress=False))
    _, dt2 = _timed(lambda: ds.images(96, progress=False))
    rows.append((f"load + check {len(ds.items)} images (cold cache)", f"{dt:.1f} s", ""))
    rows.append((f"resize {len(ds.items)} images to 96 px (cold cache)", f"{dt2:.1f} s", ""))
    from cellclf_utils.data import cache
    cache._hash_memo.clear()
    _, dt3 = _timed(lambda: load_dataset(source, progress=False).images(96, progress=False))
    rows.append(("load + images @96 px again (warm cache)", f"{dt3:.1f} s", ""))

    rng = np.random.default_rng(0)
    for size in a.sizes:
        for aug in ("none", "basic"):
            x = rng.integers(0, 255, (a.images, size, size, 3), dtype=np.uint8)
            y = rng.integers(0, 3, a.images)
            m = cnn.baseline_cnn(size, 3, augment_preset=aug)
            m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            m.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # compile outside the clock
            _, dt = _timed(lambda: m.fit(x, y, batch_size=32, epochs=2, verbose=0))
            rows.append((f"baseline CNN train @{size} px, augment={aug}, bs 32", f"{dt:.1f} s / {2 * a.images} img",
                         f"{2 * a.images / dt:.0f} img/s"))
            m.predict(x[:64], batch_size=64, verbose=0)  # trace the predict function outside the clock
            _, dt = _timed(lambda: m.predict(x, batch_size=64, verbose=0))
            rows.append((f"baseline CNN predict @{size} px", f"{dt:.1f} s / {a.images} img", f"{a.images / dt:.0f} img/s"))
    n = a.images // 2  # the big models are slow on a CPU
    for item in a.backbones:
        name, size = item.split("@")
        size = int(size)
        x = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
        y = np.eye(3)[rng.integers(0, 3, n)]
        m = backbones.build(name, size, 3, augment="basic")
        m.compile(optimizer="adam", loss="categorical_crossentropy")
        m.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
        _, dt = _timed(lambda: m.fit(x, y, batch_size=32, epochs=1, verbose=0))
        rows.append((f"fine-tune {name} @{size} px (default freeze policy), augment=basic, bs 32",
                     f"{dt:.1f} s / {n} img", f"{n / dt:.0f} img/s"))
        m.predict(x[:64], batch_size=64, verbose=0)
        _, dt = _timed(lambda: m.predict(x, batch_size=64, verbose=0))
        rows.append((f"{name} predict @{size} px", f"{dt:.1f} s / {n} img", f"{n / dt:.0f} img/s"))
    shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"keras {keras.__version__} ({keras.backend.backend()}); numpy {np.__version__}")
    print("| what | time | rate |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
