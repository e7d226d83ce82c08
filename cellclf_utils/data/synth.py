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

Colour follows Beer-Lambert: each stain adds optical density along its own RGB absorption
vector (haematoxylin: blue-purple nuclei; eosin: pink cytoplasm; light green: cyan
cytoplasm), so overlaps darken the way stained material does under a microscope.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

CLASSES = ("normal", "degenerated", "degenerated_severe")
SITES = ("superficial", "intermediate", "columnar")
SITE_P = (0.4, 0.4, 0.2)
N_BATCHES = 4
JPEG_QUALITY = 92
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
N_CELLS_P = (0.4, 0.3, 0.2, 0.1)

# RGB optical-density vectors (colour of density c is exp(-c * v))
STAIN_OD = np.array([[0.65, 0.70, 0.29],   # haematoxylin: blue-purple
                     [0.15, 0.95, 0.45],   # eosin: pink
                     [0.85, 0.25, 0.35]],  # light green: cyan / blue-green
                    np.float32)
H, E, C = 0, 1, 2

# how each site's NORMAL cells look (128-px units; ranges are drawn uniformly): cell radius,
# aspect ratio, share of cyan (light green) vs pink (eosin) cytoplasm, cytoplasm density,
# nucleus radius; nuclear stain density and vesicular rim strength
SITE_LOOK = {
    # superficial: large flat polygonal pink cells, tiny dense (pyknotic) nuclei
    0: dict(r=(24, 34), aspect=(1, 1.4), cyan=(0, 0.2), cyt=(0.22, 0.4), rn=(2.0, 3.0), hd=2.2, rim=0.0),
    # intermediate: cyan polygonal cells, small round vesicular nuclei
    1: dict(r=(20, 28), aspect=(1, 1.3), cyan=(0.7, 1), cyt=(0.3, 0.5), rn=(3.6, 4.8), hd=0.75, rim=0.6),
    # columnar: tall narrow cells, oval nucleus at the basal end
    2: dict(r=(17, 24), aspect=(2.6, 3.6), cyan=(0.4, 0.9), cyt=(0.4, 0.6), rn=(3.4, 4.4), hd=1.0, rim=0.3),
}


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


def _dihedral(img: np.ndarray, t: int) -> np.ndarray:
    """Return ``img`` under symmetry ``t`` (index into TRANSFORMS)."""
    if t >= 4:
        img = img[:, ::-1] if t in (4, 6) else img[::-1]
        t = {4: 0, 5: 0, 6: 1, 7: 1}[t]  # transpose = flip_lr then rot90
    return np.ascontiguousarray(np.rot90(img, t))


def _stain_batches(rng) -> list[dict]:
    """Return the global stain batches: perturbed stain vectors, gains and background tint."""
    out = []
    for _ in range(N_BATCHES):
        od = np.clip(STAIN_OD + rng.normal(0, 0.12, STAIN_OD.shape), 0.03, None)
        od /= np.linalg.norm(od, axis=1, keepdims=True)
        out.append({"od": od.astype(np.float32),
                    "gain": rng.uniform([0.75, 0.7, 0.7], [1.3, 1.3, 1.3]).astype(np.float32),
                    "bg": np.clip(0.93 + rng.normal(0, 0.02, 3), 0.85, 0.99).astype(np.float32)})
    return out


class _Canvas:
    """Per-stain density maps of one image at ``size`` px; geometry is given at 128 px."""

    def __init__(self, rng, size: int):
        self.rng, self.size, self.k = rng, size, size / 128.0
        self.dens = np.zeros((3, size, size), np.float32)

    def mask(self, pts: np.ndarray, soft: float = 0.6) -> np.ndarray:
        """Return a float mask (0..1) of the polygon ``pts`` (128-px units), edges softened."""
        m = np.zeros((self.size, self.size), np.uint8)
        cv2.fillPoly(m, [np.round(pts * self.k * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        m = m.astype(np.float32) / 255.0
        return cv2.GaussianBlur(m, (0, 0), soft * self.k) if soft > 0 else m

    def texture(self, grain: float) -> np.ndarray:
        """Return unit-sd smooth noise with blobs of about ``grain`` px (128-px units)."""
        t = cv2.GaussianBlur(self.rng.standard_normal((self.size, self.size), np.float32),
                             (0, 0), max(grain * self.k, 0.3))
        return t / (t.std() + 1e-6)


def _outline(rng, cx, cy, r, aspect=1.0, angle=0.0, irregular=0.0, n=56) -> np.ndarray:
    """Return a closed contour: an ellipse whose radius carries random low-order harmonics
    (amplitude ``irregular``); more irregular = the notched, lobulated nuclei of degeneration."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ks = np.arange(2, 11)
    amp = irregular * rng.normal(size=ks.size) / ks ** 0.7
    rad = r * (1 + (amp[:, None] * np.cos(ks[:, None] * th + rng.uniform(0, 6.3, ks.size)[:, None])).sum(0))
    rad = np.maximum(rad, 0.35 * r)
    return _place(rad * np.cos(th), rad * np.sin(th), cx, cy, aspect, angle)


def _polygon(rng, cx, cy, r, aspect, angle, n_vertices) -> np.ndarray:
    """Return a flat squamous-cell outline: a jittered convex-ish polygon."""
    th = np.sort(rng.uniform(0, 2 * np.pi / n_vertices, n_vertices) + np.arange(n_vertices) * 2 * np.pi / n_vertices)
    rad = r * rng.uniform(0.85, 1.12, n_vertices)
    return _place(rad * np.cos(th), rad * np.sin(th), cx, cy, aspect, angle)


def _place(x, y, cx, cy, aspect, angle) -> np.ndarray:
    """Return points stretched by ``aspect`` (area kept), rotated by ``angle``, moved to (cx, cy)."""
    s = np.sqrt(aspect)
    x, y = x * s, y / s
    c, si = np.cos(angle), np.sin(angle)
    return np.stack([cx + c * x - si * y, cy + si * x + c * y], 1)


def _cell(cv: _Canvas, cx, cy, site: int, sev: float, n_nuclei: int, normal: bool) -> float:
    """Draw one cell (cytoplasm + nuclei) into the canvas; return its nucleus/cell area ratio.

    ``sev`` (0..1) moves every nuclear feature from the site's normal look towards
    degeneration; ``normal`` cells keep the site's cytoplasm shape."""
    rng = cv.rng
    angle = rng.uniform(0, np.pi)
    w = min(1.0, 2.5 * sev)  # how far the nucleus has left the site's normal look
    # --- cytoplasm: site look; abnormal cells shrink and round up (nucleus/cytoplasm ratio)
    shrink = (1 - 0.45 * sev) * np.exp(rng.normal(0, 0.08))
    look = SITE_LOOK[site]
    r, aspect, cyan, cyt, rn0 = (rng.uniform(*look[k]) for k in ("r", "aspect", "cyan", "cyt", "rn"))
    hd0, rim0 = look["hd"], look["rim"]
    r *= shrink
    if not normal:
        aspect = 1 + (aspect - 1) * (1 - 0.7 * w)
    # flat squamous cells are polygonal; degenerating ones round up, but not always (no free cue)
    if site < 2 and rng.random() > 0.8 * w:
        pts = _polygon(rng, cx, cy, r, aspect, angle, int(rng.integers(5, 9) if site == 0 else rng.integers(7, 11)))
    else:
        pts = _outline(rng, cx, cy, r, aspect, angle, 0.06 + 0.06 * sev)
    cell = cv.mask(pts, 0.7)
    # vacuoles: pale holes in degenerating cytoplasm
    holes = np.zeros_like(cell)
    for _ in range(rng.poisson(3 * sev)):
        a, d = rng.uniform(0, 6.3), rng.uniform(0.3, 0.75) * r
        hole = _outline(rng, cx + d * np.cos(a), cy + d * np.sin(a), rng.uniform(1.5, 3.5))
        holes = np.maximum(holes, cv.mask(hole, 0.8))
    cyt_d = cyt * (1 + 0.25 * cv.texture(3.0)) * (1 - 0.8 * holes) * cell
    cv.dens[E] += (1 - cyan) * cyt_d
    cv.dens[C] += cyan * cyt_d
    if site == 2 and normal:  # dense apical terminal bar (cilia side) of columnar cells
        tip = _place(np.array([r * 0.95, r * 0.8]), np.array([-r * 0.25, r * 0.25]), cx, cy, aspect, angle)
        bar = np.zeros((cv.size, cv.size), np.float32)
        cv2.line(bar, *[tuple(np.round(p * cv.k * 16).astype(int)) for p in tip], 1.0, max(1, round(1.5 * cv.k)),
                 cv2.LINE_AA, shift=4)
        cv.dens[E] += 0.5 * bar
    # --- nuclei: swelling, irregular contour, coarse clumped dark chromatin, nucleoli
    rn = (rn0 * (1 - 0.45 * sev) + 10.5 * sev * np.exp(rng.normal(0, 0.12))) / np.sqrt(n_nuclei) ** 0.8
    irregular = 0.02 + 0.22 * sev * np.exp(rng.normal(0, 0.3))
    grain = 0.5 + 1.8 * sev * np.exp(rng.normal(0, 0.2))
    clump = 0.15 + 0.75 * sev
    hd = (hd0 * (1 - w) + (0.95 + 1.3 * sev) * w) * np.exp(rng.normal(0, 0.1))
    if site == 2:  # basal end of the long axis, oriented with the cell
        off = 0.55 * np.sqrt(aspect) * r * (1 - 0.6 * w)
        ncx, ncy, naspect = cx - off * np.cos(angle), cy - off * np.sin(angle), 1.6 - 0.5 * w
    else:
        off = rng.uniform(0, 0.3) * max(r - rn, 0)
        a = rng.uniform(0, 6.3)
        ncx, ncy, naspect = cx + off * np.cos(a), cy + off * np.sin(a), rng.uniform(1, 1.35)
    nuc_all = np.zeros_like(cell)
    for _ in range(n_nuclei):
        a = rng.uniform(0, 6.3)
        d = 0 if n_nuclei == 1 else rn * rng.uniform(0.8, 1.2)  # several nuclei cluster around the centre
        x, y = ncx + d * np.cos(a), ncy + d * np.sin(a)
        nuc = cv.mask(_outline(rng, x, y, rn * np.exp(rng.normal(0, 0.08)), naspect,
                               angle if site == 2 else rng.uniform(0, np.pi), irregular), 0.5)
        chrom = np.clip(1 + clump * cv.texture(grain), 0.15, None)
        rim = np.clip(nuc - cv2.GaussianBlur(nuc, (0, 0), 1.1 * cv.k), 0, None) * nuc
        dens = hd * (chrom * nuc + 2 * (rim0 * (1 - w) + (0.2 + 0.5 * sev) * w) * rim)
        for _ in range(rng.binomial(2, 0.5 * sev)):  # nucleoli: small dark dots
            p = rng.normal(0, 0.35 * rn, 2)
            dens += 1.2 * cv.mask(_outline(rng, x + p[0], y + p[1], rng.uniform(0.8, 1.3)), 0.4) * nuc
        cv.dens[H] += dens
        nuc_all = np.maximum(nuc_all, nuc)
    return float((nuc_all > 0.5).sum() / max(1, (np.maximum(cell, nuc_all) > 0.5).sum()))


def _debris(cv: _Canvas):
    """Add background clutter: stain specks, inflammatory cells, faint mucus strands."""
    rng = cv.rng
    for _ in range(rng.poisson(4)):
        x, y = rng.uniform(0, 128, 2)
        stain, amount = rng.integers(0, 3), rng.uniform(0.3, 1.2)
        speck = _outline(rng, x, y, rng.uniform(0.6, 2.4), irregular=0.3)
        cv.dens[stain] += amount * cv.mask(speck, rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:  # neutrophils: small, dark, two-to-three-lobed nuclei
        for _ in range(rng.integers(1, 6)):
            x, y = rng.uniform(0, 128, 2)
            for _ in range(rng.integers(2, 4)):
                lobe = _outline(rng, x + rng.normal(0, 1.5), y + rng.normal(0, 1.5), rng.uniform(1.3, 2.0))
                cv.dens[H] += 1.4 * cv.mask(lobe)
    if rng.random() < 0.25:  # mucus: a faint, blurred cyan strand
        pts = np.cumsum(rng.normal(0, 10, (6, 2)), 0) + rng.uniform(20, 108, 2)
        strand = np.zeros((cv.size, cv.size), np.float32)
        cv2.polylines(strand, [np.round(pts * cv.k * 16).astype(np.int32)], False, 1.0,
                      max(1, round(3 * cv.k)), cv2.LINE_AA, shift=4)
        cv.dens[C] += 0.2 * cv2.GaussianBlur(strand, (0, 0), 2 * cv.k)


def _scene(rng, label: int, site: int, batch: dict, size: int, severity=SEVERITY, nuclei_p=N_NUCLEI_P):
    """Return (clean RGB float32 image in 0..1, n_cells, nucleus/cell area ratio of the main cell)."""
    cv = _Canvas(rng, size)
    n_cells = int(rng.choice(4, p=N_CELLS_P)) + 1
    sev = float(np.clip(rng.normal(*severity[label]), 0, 1))
    # the main cell: near the centre, or anywhere (the write-up: "not always in the centre")
    cx, cy = (64 + rng.normal(0, 9, 2)) if rng.random() < 0.6 else rng.uniform(30, 98, 2)
    frac = _cell(cv, cx, cy, site, sev, int(rng.choice(4, p=nuclei_p[label])) + 1, normal=label == 0)
    for _ in range(n_cells - 1):
        x, y = rng.uniform(10, 118, 2)
        if label and rng.random() < 0.3:  # another abnormal cell of the same class
            _cell(cv, x, y, site, float(np.clip(rng.normal(*severity[label]), 0, 1)), 1, normal=False)
        else:                             # a normal bystander of the same site
            _cell(cv, x, y, site, abs(rng.normal(0, 0.05)), 1, normal=True)
    _debris(cv)
    gain = batch["gain"] * np.exp(rng.normal(0, 0.06, 3)).astype(np.float32)
    od = np.einsum("s,shw,sc->hwc", gain, cv.dens, batch["od"])
    # uneven illumination: a smooth low-order field
    light = cv2.resize(rng.uniform(0.95, 1.03, (3, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    img = batch["bg"] * light[..., None] * np.exp(-od)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.2) * cv.k)  # mild defocus
    return img, n_cells, frac


def _photograph(clean: np.ndarray, rng) -> bytes:
    """Return JPEG bytes of ``clean`` (RGB 0..1) with fresh sensor noise."""
    noisy = clean + rng.normal(0, rng.uniform(1.5, 4.0) / 255, clean.shape).astype(np.float32)
    img = np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return buf.tobytes()


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
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not empty; synth.generate never overwrites a dataset "
                         "(pick another folder or delete it)")
    if size < 24:
        raise ValueError(f"size must be at least 24 px (got {size})")
    if n_train_per_class < 1 or n_test_per_class < 0:
        raise ValueError("n_train_per_class must be >= 1 and n_test_per_class >= 0")
    if not (0 <= dup_fraction <= 0.5 and 0 <= label_noise < 1 and n_test_dups >= 0):
        raise ValueError("need 0 <= dup_fraction <= 0.5, 0 <= label_noise < 1, n_test_dups >= 0")
    names = class_names(n_classes)  # checks n_classes
    severity, nuclei_p = class_spec(n_classes)

    ss = np.random.SeedSequence(seed)
    plan_ss, *img_ss = ss.spawn(1 + len(names) * (n_train_per_class + n_test_per_class))
    plan_rng = np.random.default_rng(plan_ss)
    batches = _stain_batches(plan_rng)
    plan = _plan(plan_rng, n_train_per_class, n_test_per_class, dup_fraction, n_test_dups, label_noise, names)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        for name in names + ("test",) if n_test_per_class else names:
            (tmp / name).mkdir()
        orig, sym, true, site, batch = (plan[c].to_numpy()
                                        for c in ("orig", "sym", "true_label", "site", "stain_batch"))
        n_cells, frac = np.zeros(len(plan), int), np.zeros(len(plan))
        for i in tqdm(range(len(plan)), desc="synth images", disable=not progress):
            src = orig[i] if orig[i] >= 0 else i
            # a copy re-renders its original's scene from the original's own generator
            clean, n_cells[i], frac[i] = _scene(np.random.default_rng(img_ss[src]), true[src], site[src],
                                                batches[batch[src]], size, severity, nuclei_p)
            rng = np.random.default_rng(img_ss[i])
            if orig[i] >= 0:  # re-photographed: rotated/flipped, a little brighter or darker, tinted
                clean = _dihedral(clean, sym[i]) * rng.uniform(0.93, 1.07) * rng.normal(1, 0.02, 3).astype(np.float32)
            (tmp / plan.id[i]).write_bytes(_photograph(clean, rng))

        meta = plan.assign(label=[names[v] for v in plan.label], true_label=[names[v] for v in plan.true_label],
                           site=[SITES[v] for v in plan.site], n_cells=n_cells, nucleus_area_frac=frac.round(4))
        meta[["id", "split", "label", "true_label", "site", "stain_batch", "n_cells", "nucleus_area_frac"]] \
            .to_csv(tmp / "synth_meta.csv", index=False)
        test = meta[meta.split == "test"]
        if len(test):
            pd.DataFrame({"id": test.id.str.removeprefix("test/"), "label": test.label}) \
                .to_csv(tmp / "test_labels.csv", index=False)
        is_copy = orig >= 0
        pd.DataFrame({"copy": plan.id[is_copy], "original": plan.id.to_numpy()[orig[is_copy]],
                      "transform": [TRANSFORMS[t] for t in sym[is_copy]]}) \
            .to_csv(tmp / "duplicates_truth.csv", index=False)
        args = dict(seed=seed, size=size, n_train_per_class=n_train_per_class, n_test_per_class=n_test_per_class,
                    dup_fraction=dup_fraction, n_test_dups=n_test_dups, label_noise=label_noise)
        if n_classes != len(CLASSES):  # the default's README (and so its bytes) stay as they were
            args["n_classes"] = n_classes
        (tmp / "README.md").write_text(_readme(args), encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked above); rename cannot replace a directory everywhere
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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

Generated, not photographed: `cellclf_utils.synth.generate(out_dir, {call})`.
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
