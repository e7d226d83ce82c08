"""The embedded synthetic "stained cells" dataset (no download, generated from a seed).

It mirrors the competition in the write-up: three classes, 400 labelled training images per
class and 40 test images per class by default (``n_classes`` asks for 2 to 20 classes instead:
normal plus graded severity levels), with the data problems the author met:
stain-batch colour shifts, cells off-centre, one to four cells per image (normal bystanders
beside abnormal cells), three tissue sites whose normal cells look different, debris, blur,
noise, rotated/flipped re-photographed copies (also leaking into the test set) and a few
wrong labels.

Class evidence sits where a cytologist looks, all drawn from one latent severity per cell
with overlapping class distributions: nuclear size and nucleus/cytoplasm ratio, nuclear
contour irregularity, chromatin texture (fine -> coarse, clumped), hyperchromasia,
nucleoli, cytoplasmic vacuoles, and multinucleation (more common in the severe class).

Each image is drawn by ``synth_scene``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .images import dihedral
from .synth_scene import JPEG_QUALITY, N_BATCHES, photograph, scene, stain_batches

CLASSES = ("normal", "degenerated", "degenerated_severe")
SITES = ("superficial", "intermediate", "columnar")
SITE_P = (0.4, 0.4, 0.2)
# the 7 non-identity symmetries of the square, index = position in this tuple
TRANSFORMS = ("identity", "rot90", "rot180", "rot270", "flip_lr", "flip_ud", "transpose", "transverse")

# latent severity per class (mean, sd), clipped to [0, 1]; the overlap (degenerated vs severe
# most of all) is what keeps the task from being solvable, as in the write-up
SEVERITY = {0: (0.08, 0.08), 1: (0.42, 0.14), 2: (0.66, 0.15)}
# probability of 1, 2, 3, 4 nuclei in an abnormal target cell, per class
N_NUCLEI_P = {0: (1.0, 0, 0, 0), 1: (0.86, 0.11, 0.03, 0), 2: (0.62, 0.22, 0.11, 0.05)}
MAX_CLASSES = 20
# other class counts (n_classes != 3): normal, then abnormal grades whose mean severity is
# spread evenly over this range, each with an sd of GRADE_OVERLAP x the spacing between
# neighbouring grades (capped at the severe class's 0.15): neighbours overlap about as much
# as degenerated and degenerated_severe do, so grades are learnable but not trivially
GRADE_RANGE = (0.30, 0.85)
GRADE_OVERLAP = 0.7


def class_names(n_classes: int = len(CLASSES)) -> tuple[str, ...]:
    """Return the class (folder) names for ``n_classes``: the write-up's three for 3,
    ``normal, abnormal`` for 2, else ``normal, grade_1 .. grade_<n-1>`` (zero-padded so that
    folder order is grade order)."""
    _check_n_classes(n_classes)
    if n_classes == len(CLASSES):
        return CLASSES
    if n_classes == 2:
        return ("normal", "abnormal")
    width = len(str(n_classes - 1))
    return ("normal",) + tuple(f"grade_{k:0{width}d}" for k in range(1, n_classes))


def _check_n_classes(n_classes) -> None:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
            or not 2 <= n_classes <= MAX_CLASSES:
        raise ValueError(f"n_classes must be an integer from 2 to {MAX_CLASSES} (got {n_classes!r})")


def class_spec(n_classes: int = len(CLASSES)) -> tuple[dict, dict]:
    """Return ``(severity, nuclei_p)`` per class index: the latent severity (mean, sd) and the
    probabilities of 1-4 nuclei. 3 classes: SEVERITY and N_NUCLEI_P unchanged; otherwise normal
    plus abnormal grades spread over GRADE_RANGE, multinucleation interpolated on severity."""
    _check_n_classes(n_classes)
    if n_classes == len(CLASSES):
        return SEVERITY, N_NUCLEI_P
    if n_classes == 2:
        means, sd = [float(np.mean(GRADE_RANGE))], 0.18
    else:
        means = np.linspace(*GRADE_RANGE, n_classes - 1).tolist()
        sd = min(0.15, GRADE_OVERLAP * (means[1] - means[0]))
    severity = {0: SEVERITY[0], **{k + 1: (round(m, 4), round(sd, 4)) for k, m in enumerate(means)}}
    # multinucleation follows mean severity through the three reference classes
    ref_mean = [SEVERITY[k][0] for k in range(3)]
    ref_p = np.array([N_NUCLEI_P[k] for k in range(3)], float)
    nuclei = {0: N_NUCLEI_P[0]}
    for k, m in enumerate(means, start=1):
        p = np.array([np.interp(m, ref_mean, ref_p[:, j]) for j in range(4)])
        nuclei[k] = tuple(float(v) for v in p / p.sum())
    return severity, nuclei


# TRANSFORMS index -> images.dihedral's k (its views in another order)
_DIHEDRAL_K = (0, 1, 2, 3, 4, 6, 7, 5)


def transform(img: np.ndarray, t: int) -> np.ndarray:
    """Return ``img`` (H, W, C) under symmetry ``t`` (index into TRANSFORMS)."""
    return dihedral(img[None], _DIHEDRAL_K[t])[0]


def _plan(rng, n_train_per_class, n_test_per_class, dup_fraction, n_test_dups, label_noise,
          names=CLASSES) -> pd.DataFrame:
    """Return one row per image: id, split, label (given), true_label, site, stain_batch,
    orig (row of the image it copies, -1 if none) and sym (the symmetry applied to it)."""
    n_cls = len(names)
    ids, split, label = [], [], []
    for part, n, prefix in (("train", n_train_per_class, "s"), ("test", n_test_per_class, "t")):
        labs = rng.permutation(np.repeat(np.arange(n_cls), n))  # given labels stay balanced
        width = max(4, len(str(len(labs) - 1)))
        ids += [f"{names[v] if part == 'train' else 'test'}/{prefix}{i:0{width}d}.jpg" for i, v in enumerate(labs)]
        split += [part] * len(labs)
        label.append(labs)
    label = np.concatenate(label)
    n = len(label)
    site, batch = rng.choice(len(SITES), n, p=SITE_P), rng.integers(N_BATCHES, size=n)
    orig, sym = np.full(n, -1), np.zeros(n, int)
    is_train = np.array(split) == "train"
    train, test = np.flatnonzero(is_train), np.flatnonzero(~is_train)
    # copies: a copy takes the place of an image of the same given label; each original is used
    # once and is never itself a copy, so planted pairs do not chain
    free = is_train.copy()
    for part, k in ((train, round(dup_fraction * len(train))), (test, min(n_test_dups, len(test)))):
        made = 0
        for c in rng.permutation(part):
            if made == k:
                break
            pool = np.flatnonzero(free & (label == label[c]))
            pool = pool[pool != c]
            if (is_train[c] and not free[c]) or not pool.size:
                continue
            o = rng.choice(pool)
            orig[c], sym[c], site[c], batch[c] = o, rng.integers(1, 8), site[o], batch[o]
            free[[o, c]] = False
            made += 1
    # label noise: the true class of an exact share of the non-copies differs from the given label
    true = label.copy()
    for part in (train, test):
        cand = part[orig[part] < 0]
        flip = rng.permutation(cand)[:round(label_noise * len(cand))]
        true[flip] = (label[flip] + rng.integers(1, n_cls, flip.size)) % n_cls
    copies = orig >= 0
    true[copies] = true[orig[copies]]
    return pd.DataFrame({"id": ids, "split": split, "label": label, "true_label": true, "site": site,
                         "stain_batch": batch, "orig": orig, "sym": sym})


def _check_arguments(out: Path, size, n_train_per_class, n_test_per_class, dup_fraction, n_test_dups,
                     label_noise) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not empty; synth.generate never overwrites a dataset "
                         "(pick another folder or delete it)")
    if size < 24:
        raise ValueError(f"size must be at least 24 px (got {size})")
    if n_train_per_class < 1 or n_test_per_class < 0:
        raise ValueError("n_train_per_class must be >= 1 and n_test_per_class >= 0")
    if not (0 <= dup_fraction <= 0.5 and 0 <= label_noise < 1 and n_test_dups >= 0):
        raise ValueError("need 0 <= dup_fraction <= 0.5, 0 <= label_noise < 1, n_test_dups >= 0")


def _draw_images(tmp: Path, plan: pd.DataFrame, img_ss, batches, size, severity, nuclei_p, progress):
    """Write every planned image into ``tmp``; return per image (cells drawn, nucleus/cell area ratio)."""
    orig, sym, true, site, batch = (plan[c].to_numpy() for c in ("orig", "sym", "true_label", "site", "stain_batch"))
    n_cells, frac = np.zeros(len(plan), int), np.zeros(len(plan))
    for i in tqdm(range(len(plan)), desc="synth images", disable=not progress):
        src = orig[i] if orig[i] >= 0 else i
        # a copy re-renders its original's scene from the original's own generator
        clean, n_cells[i], frac[i] = scene(np.random.default_rng(img_ss[src]), true[src], site[src],
                                           batches[batch[src]], size, severity, nuclei_p)
        rng = np.random.default_rng(img_ss[i])
        if orig[i] >= 0:  # re-photographed: rotated/flipped, a little brighter or darker, tinted
            clean = transform(clean, sym[i]) * rng.uniform(0.93, 1.07) * rng.normal(1, 0.02, 3).astype(np.float32)
        (tmp / plan.id[i]).write_bytes(photograph(clean, rng))
    return n_cells, frac


def _write_tables(tmp: Path, plan: pd.DataFrame, names, n_cells, frac) -> pd.DataFrame:
    """Write synth_meta.csv, test_labels.csv and duplicates_truth.csv; return the meta table."""
    meta = plan.assign(label=[names[v] for v in plan.label], true_label=[names[v] for v in plan.true_label],
                       site=[SITES[v] for v in plan.site], n_cells=n_cells, nucleus_area_frac=frac.round(4))
    meta[["id", "split", "label", "true_label", "site", "stain_batch", "n_cells", "nucleus_area_frac"]] \
        .to_csv(tmp / "synth_meta.csv", index=False)
    test = meta[meta.split == "test"]
    if len(test):
        pd.DataFrame({"id": test.id.str.removeprefix("test/"), "label": test.label}) \
            .to_csv(tmp / "test_labels.csv", index=False)
    orig, sym = plan.orig.to_numpy(), plan.sym.to_numpy()
    is_copy = orig >= 0
    pd.DataFrame({"copy": plan.id[is_copy], "original": plan.id.to_numpy()[orig[is_copy]],
                  "transform": [TRANSFORMS[t] for t in sym[is_copy]]}) \
        .to_csv(tmp / "duplicates_truth.csv", index=False)
    return meta


def generate(out_dir, *, seed=0, size=128, n_train_per_class=400, n_test_per_class=40,
             dup_fraction=0.05, n_test_dups=3, label_noise=0.03, progress=True, n_classes=3) -> dict:
    """Write the synthetic dataset to ``out_dir`` (which must not exist or be empty) and return
    a summary: counts per split and class, duplicates planted, label flips, seconds taken.

    ``n_classes`` (2-20): 3 is the write-up's set (the default, unchanged); other counts give
    ``class_names(n_classes)``: normal plus graded severity levels (``class_spec``).

    Same arguments -> byte-identical files. The set is built in a hidden sibling folder and
    renamed into place at the end, so an interrupted run never leaves a half dataset.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    _check_arguments(out, size, n_train_per_class, n_test_per_class, dup_fraction, n_test_dups, label_noise)
    names = class_names(n_classes)  # checks n_classes
    severity, nuclei_p = class_spec(n_classes)
    ss = np.random.SeedSequence(seed)
    plan_ss, *img_ss = ss.spawn(1 + len(names) * (n_train_per_class + n_test_per_class))
    plan_rng = np.random.default_rng(plan_ss)
    batches = stain_batches(plan_rng)
    plan = _plan(plan_rng, n_train_per_class, n_test_per_class, dup_fraction, n_test_dups, label_noise, names)
    args = dict(seed=seed, size=size, n_train_per_class=n_train_per_class, n_test_per_class=n_test_per_class,
                dup_fraction=dup_fraction, n_test_dups=n_test_dups, label_noise=label_noise)
    if n_classes != len(CLASSES):  # the default's README (and so its bytes) stay as they were
        args["n_classes"] = n_classes
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        for name in names + ("test",) if n_test_per_class else names:
            (tmp / name).mkdir()
        n_cells, frac = _draw_images(tmp, plan, img_ss, batches, size, severity, nuclei_p, progress)
        meta = _write_tables(tmp, plan, names, n_cells, frac)
        (tmp / "README.md").write_text(_readme(args), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above); rename cannot replace a directory everywhere
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    is_copy = plan.orig.to_numpy() >= 0
    return {"out_dir": str(out), **args, "n_classes": n_classes, "classes": list(names),
            "counts": {s: {c: int(((meta.split == s) & (meta.label == c)).sum()) for c in names}
                       for s in ("train", "test")},
            "n_duplicates": int((is_copy & (plan.split == "train")).sum()),
            "n_test_duplicates": int((is_copy & (plan.split == "test")).sum()),
            "n_label_flips": int((plan.label != plan.true_label).sum()),
            "seconds": round(time.perf_counter() - t0, 2)}


def _readme(args: dict) -> str:
    call = ", ".join(f"{k}={v!r}" for k, v in args.items())
    n = args.get("n_classes", len(CLASSES))
    names = class_names(n)
    if n == len(CLASSES):
        classes_line = f"Three classes like the competition in the write-up: {', '.join(CLASSES)}."
        overlap = "degenerated vs degenerated_severe overlaps most."
    else:
        severity, _ = class_spec(n)
        classes_line = (f"{n} classes: {', '.join(names)}; " + ("normal vs abnormal" if n == 2 else
                        "normal and graded severity levels") + " (latent severity mean/sd per class: "
                        + ", ".join(f"{c} {m:.2f}/{s:.2f}" for c, (m, s) in zip(names, severity.values())) + ").")
        overlap = "Neighbouring grades overlap about as much as the write-up's two degenerated classes."
    return f"""# Synthetic stained-cell dataset (cellclf embedded default)

Generated, not photographed: `cellclf_utils.data.synth.generate(out_dir, {call})`.
The same call always writes byte-identical files.

{classes_line}

- `<class>/s*.jpg`: labelled training images (JPEG, quality {JPEG_QUALITY}, {args["size"]} px square).
- `test/t*.jpg`: unlabeled test images; `test_labels.csv` (`id,label`) is for scoring only.
- `duplicates_truth.csv` (`copy,original,transform`): planted rotated/flipped re-photographed
  copies (new brightness, tint, sensor noise and JPEG), inside the training set and from the
  training set into the test set (leakage a report should reveal).
- `synth_meta.csv`: per image `id,split,label,true_label,site,stain_batch,n_cells,nucleus_area_frac`;
  `label` is the given (folder) label, `true_label` the class the image was drawn from (they
  differ for the label-noise share); `nucleus_area_frac` = nucleus area / cell area of the main cell.

Class evidence: one latent severity per cell drawn from overlapping class distributions
drives nuclear size and nucleus/cytoplasm ratio, contour irregularity, chromatin coarseness
and clumping, hyperchromasia, nucleoli and cytoplasmic vacuoles; multinucleation is more
common in the severe class{"es" if n != len(CLASSES) else ""}. {overlap}

Nuisance factors: {N_BATCHES} stain batches (haematoxylin/eosin/light-green hue and intensity,
background tint); 3 tissue sites with different normal cells ({", ".join(SITES)}); main cell
off-centre in ~40% of images; 1-4 cells per image with normal bystanders beside abnormal cells;
debris, inflammatory cells, mucus; uneven illumination, mild defocus, sensor noise, JPEG.
"""
