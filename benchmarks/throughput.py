"""Training throughput per backbone, three ways on the same card, batch size and precision:

  project   cellclf's path: uint8 images resident on the device (resident.ImageStore), each step
            gathering its batch by row index inside the compiled step, preprocessing there too,
            full batches only, mixed precision, every layer trainable
  streamed  project, but the uint8 batches streamed from the host by model.fit (one batch
            ahead): cellclf's path before the images were made resident
  stage     the same, with the stage's own freeze policy and `seed` augmentation on the device
            (what a fine-tuning stage runs)
  mixed     stage, plus MixUp and CutMix mixed on the device (`-p mixup 0.2 -p cutmix 1.0`)
  head      stage with the whole base frozen: a head warm-up epoch (`head_epochs`), which runs
            the base forward only, for `cellclf plan --speeds`
  naive     keras.applications model, float32 batches preprocessed on the host, train_on_batch
  timm      timm/torch, channels-last, bf16 autocast, data already on the device
  predict   forward only: the project's model through model.tta.predict_proba (how validation
            and test images are scored), for `cellclf plan --speeds`

`baseline` (stage 02's small CNN) is a model name too, for project, streamed, stage, mixed and
predict (it has no base to freeze, so no head row, and no naive or timm twin). A variant that is
not measured for a model is named on a `skipped:` line, with the reason.

Random images (never zeros). Images/s is measured after warm-up, from the host clock after a
device sync; compile seconds are XLA's (JAX) or the first epoch's extra time. peak GiB is the
accelerator's peak memory in use: torch's for its own measurement; JAX's since the process
began (JAX cannot reset it), so the first row of a process is that row's own (gpu_check.sh runs
one process per model, `project` first); empty on a CPU. estimate GiB is what `-p batch_size 0`
goes by (cellclf_utils.train.device.memory), to hold against the peak.

usage: KERAS_BACKEND=jax python benchmarks/throughput.py [--models xception@299 vgg16@224 ...]
       [--batch-size 64] [--steps 20] [--variants project streamed stage mixed head naive timm predict] [--csv out.csv]
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

TIMM_NAMES = {"vgg16": ["vgg16"], "xception": ["legacy_xception", "xception"],
              "inception_resnet_v2": ["inception_resnet_v2"], "mobilenet_v2": ["mobilenetv2_100"],
              "resnet50": ["resnet50"], "efficientnetv2_b0": ["tf_efficientnetv2_b0"]}
N_CLASSES = 3


def _data(n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, N_CLASSES, n)


def keras_fit(name: str, size: int, bs: int, steps: int, stage: bool, mixed: bool = False,
              resident_images: bool = True, frozen_base: bool = False) -> dict:
    """Return images/s and compile seconds of cellclf's own model and fit path (``mixed``:
    through the MixUp/CutMix training wrapper, as a stage with mixup/cutmix > 0 trains;
    ``resident_images`` False: batches streamed from the host instead; ``frozen_base``: the
    base frozen as in a head warm-up)."""
    import keras
    from cellclf_utils.train.device import compile_cache, memory, resident
    from cellclf_utils.model import mixing
    from cellclf_utils.train.schedules import make_optimizer

    model = _model(name, size, stage)
    if frozen_base:  # as train.fold.warm_up_head: the head alone trains
        model.get_layer("base").trainable = False
    estimate = memory.training_bytes(model, bs, "sgd")["total"] / memory.GIB  # what batch_size 0 goes by
    x, y = _data(bs * steps, size)
    y = keras.utils.to_categorical(y, N_CLASSES)
    loss = "categorical_crossentropy"
    if mixed:
        model = mixing.training_model(model, mixup=0.2, cutmix=1.0)
        loss = mixing.mixed_crossentropy(N_CLASSES)
        x = {"images": x, "labels": np.concatenate([y, np.ones((len(y), 1))], 1).astype("float32")}
    if resident_images:  # as train.fit_fold: the images go to the device once, steps send indices
        images = x["images"] if mixed else x
        store = resident.ImageStore(len(images), images.shape[1:])
        store.load(images)
        model = resident.training_model(model, store)
        index = np.arange(len(images), dtype="int32")
        x = {"index": index, "labels": x["labels"]} if mixed else index
    model.compile(optimizer=make_optimizer("sgd", 1e-3), loss=loss)
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # Keras syncs the device state at epoch end
            times.append(time.perf_counter() - self.t)

    before = compile_cache.stats()
    model.fit(x, y, batch_size=bs, epochs=3, shuffle=True, verbose=0, callbacks=[Clock()])
    compiled = compile_cache.stats()["compile_s"] - before["compile_s"]
    steady = min(times[1:])
    return {"img_s": bs * steps / steady, "compile_s": compiled or times[0] - steady, "est_gib": estimate}


def _model(name: str, size: int, stage: bool):
    """Return the network a stage trains: a backbone with every layer trainable, or with
    ``stage`` its default freeze policy and `seed` augmentation; `baseline` is stage 02's CNN
    (`basic` augmentation with ``stage``)."""
    from cellclf_utils.model import augment, backbones, cnn
    if name == "baseline":
        return cnn.baseline_cnn(size, N_CLASSES, augment_preset="basic" if stage else "none")
    return backbones.build(name, size, N_CLASSES, weights="none", unfreeze_from=None if stage else "all",
                           augment=augment.pipeline("seed", 0) if stage else None)


def keras_predict(name: str, size: int, bs: int, steps: int) -> dict:
    """Return forward-only images/s of the project's model, as stages score images."""
    from cellclf_utils.model import tta

    model = _model(name, size, stage=False)
    x, _ = _data(bs * steps, size)
    t = time.perf_counter()
    tta.predict_proba(model, x[:bs], bs)  # traces and compiles the predict step
    first = time.perf_counter() - t
    times = []
    for _ in range(2):
        t = time.perf_counter()
        tta.predict_proba(model, x, bs)
        times.append(time.perf_counter() - t)
    dt = min(times)
    return {"img_s": len(x) / dt, "compile_s": max(first - dt / steps, 0.0)}


def keras_naive(name: str, size: int, bs: int, steps: int) -> dict:
    """Return images/s of a plain keras.applications model fed float32 numpy batches."""
    import keras
    from cellclf_utils.model import backbones

    spec = backbones.get(name)
    base = getattr(keras.applications, spec.constructor)(include_top=False, weights=None,
                                                         input_shape=(size, size, 3))
    out = keras.layers.Dense(N_CLASSES, activation="softmax", dtype="float32")(
        keras.layers.GlobalAveragePooling2D()(base.output))
    model = keras.Model(base.input, out)
    model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss="categorical_crossentropy")
    x, y = _data(bs * 4, size, seed=1)
    xf = (x.astype("float32") / 127.5 - 1.0)  # host-side preprocessing, as a notebook would
    yf = keras.utils.to_categorical(y, N_CLASSES)
    batches = [(xf[i * bs:(i + 1) * bs], yf[i * bs:(i + 1) * bs]) for i in range(4)]
    t = time.perf_counter()
    for xb, yb in batches[:2]:
        model.train_on_batch(xb, yb)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(steps):
        xb, yb = batches[i % 4]
        model.train_on_batch(xb, yb)  # returns numpy logs: waits for the device every step
    dt = time.perf_counter() - t
    return {"img_s": bs * steps / dt, "compile_s": first - 2 * dt / steps}


def timm_torch(name: str, size: int, bs: int, steps: int) -> dict:
    """Return images/s of the timm model on torch (bf16 autocast, channels-last)."""
    import timm
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device for torch")
    model = None
    for tname in TIMM_NAMES.get(name, [name]):
        try:
            model = timm.create_model(tname, pretrained=False, num_classes=N_CLASSES)
            break
        except Exception:
            continue
    if model is None:
        raise RuntimeError(f"timm has no model for {name}")
    dev = torch.device("cuda")
    torch.cuda.reset_peak_memory_stats()
    torch.backends.cudnn.benchmark = True
    model = model.to(dev).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator(device=dev).manual_seed(0)
    xs = [torch.rand(bs, 3, size, size, device=dev, generator=gen).contiguous(memory_format=torch.channels_last)
          for _ in range(4)]
    ys = [torch.randint(0, N_CLASSES, (bs,), device=dev, generator=gen) for _ in range(4)]
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(i):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(model(xs[i % 4]), ys[i % 4])
        loss.backward()
        opt.step()

    t = time.perf_counter()
    for i in range(3):
        step(i)
    torch.cuda.synchronize()
    first = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    return {"img_s": bs * steps / dt, "compile_s": first - 3 * dt / steps,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


def skipped(name: str, variant: str, stage_models: list[str]) -> str | None:
    """Return why ``variant`` is not measured for model ``name``, or None when it is."""
    if variant in ("stage", "mixed", "head") and name not in stage_models:
        return "not in --stage-models (each stage variant is one more compile)"
    if name == "baseline" and variant == "head":
        return "stage 02's CNN has no base to freeze, so no head warm-up"
    if name == "baseline" and variant in ("naive", "timm"):
        return "stage 02's CNN is not in keras.applications or timm"
    return None


def jax_peak_gib() -> float | None:
    """Return the first JAX device's peak memory in use since the process began, in GiB (None
    where the device keeps no statistics, as on a CPU)."""
    import keras
    if keras.backend.backend() != "jax":
        return None
    import jax
    stats = jax.local_devices()[0].memory_stats() or {}
    return stats["peak_bytes_in_use"] / 2**30 if "peak_bytes_in_use" in stats else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["xception@299", "vgg16@224", "inception_resnet_v2@299"])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--variants", nargs="+", default=["project", "naive", "timm", "stage"],
                    choices=["project", "streamed", "stage", "mixed", "head", "naive", "timm", "predict"])
    ap.add_argument("--stage-models", nargs="*", default=["xception"],
                    help="models that also get the 'stage', 'mixed' and 'head' variants (each is one more compile)")
    ap.add_argument("--csv", default=None, help="append rows here as they finish")
    ap.add_argument("--table", metavar="CSV", help="print the Markdown table of a CSV written earlier, and exit")
    a = ap.parse_args()
    if a.table:
        with open(a.table, newline="") as f:
            print(table(list(csv.DictReader(f))))
        return

    import keras
    from cellclf_utils.train.device import compile_cache, precision

    policy = precision.auto()
    compile_cache.enable(tempfile.mkdtemp(prefix="xla-"))  # fresh: every compile is counted
    devices = ", ".join(keras.distribution.list_devices()) if keras.backend.backend() == "jax" else "default"
    print(f"Keras {keras.__version__} on {keras.backend.backend()} ({devices}); policy {policy}; "
          f"batch {a.batch_size}; {platform.node()}", flush=True)
    rows = []
    for item in a.models:
        name, size = item.split("@")
        size = int(size)
        for variant in a.variants:
            reason = skipped(name, variant, a.stage_models)
            if reason:
                print(f"skipped: {variant} for {item}: {reason}", flush=True)
                continue
            t = time.perf_counter()
            dtype = "bf16 autocast" if variant == "timm" else keras.mixed_precision.global_policy().name
            try:
                if variant in ("project", "streamed", "stage", "mixed", "head"):
                    r = keras_fit(name, size, a.batch_size, a.steps, stage=variant in ("stage", "mixed", "head"),
                                  mixed=variant == "mixed", resident_images=variant != "streamed",
                                  frozen_base=variant == "head")
                elif variant == "predict":
                    r = keras_predict(name, size, a.batch_size, a.steps)
                elif variant == "naive":
                    r = keras_naive(name, size, a.batch_size, a.steps)
                else:
                    r = timm_torch(name, size, a.batch_size, a.steps)
                peak = r["peak_gib"] if "peak_gib" in r else jax_peak_gib()
                row = {"model": name, "size": size, "variant": variant, "batch": a.batch_size, "precision": dtype,
                       "img_s": round(r["img_s"], 1),
                       "compile_s": round(r["compile_s"], 1), "peak_gib": "" if peak is None else round(peak, 2),
                       "est_gib": round(r["est_gib"], 2) if "est_gib" in r else "", "note": ""}
            except Exception as e:  # one missing library or model must not lose the other rows
                row = {"model": name, "size": size, "variant": variant, "batch": a.batch_size, "precision": dtype,
                       "img_s": "", "compile_s": "",
                       "peak_gib": "", "est_gib": "", "note": f"{type(e).__name__}: {str(e)[:120]}"}
            row["wall_s"] = round(time.perf_counter() - t, 1)
            rows.append(row)
            print(row, flush=True)
            if a.csv:
                new = not Path(a.csv).exists()
                with open(a.csv, "a", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(row))
                    if new:
                        w.writeheader()
                    w.writerow(row)
            keras.backend.clear_session()
            precision.auto()  # clear_session resets the dtype policy to float32
    print("\n" + table(rows))


def table(rows: list[dict]) -> str:
    """Return the rows as a Markdown table with each variant's speed relative to naive."""
    lines = ["| model | size | variant | precision | images/s | compile s | peak GiB | estimate GiB | vs naive |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        naive = next((float(q["img_s"]) for q in rows if q["model"] == r["model"] and q["variant"] == "naive"
                      and q["img_s"] != ""), None)
        # forward-only and frozen-base speeds are not comparable with a whole training step
        comparable = r["img_s"] != "" and r["variant"] not in ("predict", "head")
        ratio = f"{float(r['img_s']) / naive:.2f}x" if naive and comparable else ""
        lines.append(f"| {r['model']} | {r['size']} | {r['variant']} | {r.get('precision', '')} | "
                     f"{r['img_s'] or r['note']} | "
                     f"{r['compile_s']} | {r.get('peak_gib') or ''} | {r.get('est_gib') or ''} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
