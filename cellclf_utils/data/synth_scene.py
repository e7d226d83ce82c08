"""One synthetic stained-cell image: stain batches, cells drawn from a latent severity, debris,
uneven light and defocus, then a JPEG "photograph" with sensor noise (``synth.generate`` plans
which images to draw; see its docstring for the class evidence).

Colour follows Beer-Lambert: each stain adds optical density along its own RGB absorption
vector (haematoxylin: blue-purple nuclei; eosin: pink cytoplasm; light green: cyan
cytoplasm), so overlaps darken the way stained material does under a microscope.
"""
from __future__ import annotations

import cv2
import numpy as np

N_BATCHES = 4
JPEG_QUALITY = 92
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


def stain_batches(rng) -> list[dict]:
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
    angle = cv.rng.uniform(0, np.pi)
    w = min(1.0, 2.5 * sev)  # how far the nucleus has left the site's normal look
    cell, r, aspect, rn0 = _cytoplasm(cv, cx, cy, site, sev, w, normal, angle)
    nuc_all = _nuclei(cv, cx, cy, site, sev, w, n_nuclei, angle, r, aspect, rn0, np.zeros_like(cell))
    return float((nuc_all > 0.5).sum() / max(1, (np.maximum(cell, nuc_all) > 0.5).sum()))


def _cytoplasm(cv: _Canvas, cx, cy, site: int, sev: float, w: float, normal: bool, angle: float):
    """Draw a cell's cytoplasm in its site's look (abnormal cells shrink and round up: the
    nucleus/cytoplasm ratio); return (cell mask, radius, aspect, the site's nucleus radius)."""
    rng = cv.rng
    shrink = (1 - 0.45 * sev) * np.exp(rng.normal(0, 0.08))
    look = SITE_LOOK[site]
    r, aspect, cyan, cyt, rn0 = (rng.uniform(*look[k]) for k in ("r", "aspect", "cyan", "cyt", "rn"))
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
    return cell, r, aspect, rn0


def _nuclei(cv: _Canvas, cx, cy, site: int, sev: float, w: float, n_nuclei: int, angle: float, r: float,
            aspect: float, rn0: float, nuc_all: np.ndarray) -> np.ndarray:
    """Draw a cell's nuclei (swelling, irregular contour, coarse clumped dark chromatin,
    nucleoli) and return the mask of all of them (``nuc_all``: an empty mask to fill)."""
    rng = cv.rng
    hd0, rim0 = SITE_LOOK[site]["hd"], SITE_LOOK[site]["rim"]
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
    return nuc_all


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


def scene(rng, label: int, site: int, batch: dict, size: int, severity: dict, nuclei_p: dict):
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


def photograph(clean: np.ndarray, rng) -> bytes:
    """Return JPEG bytes of ``clean`` (RGB 0..1) with fresh sensor noise."""
    noisy = clean + rng.normal(0, rng.uniform(1.5, 4.0) / 255, clean.shape).astype(np.float32)
    img = np.clip(np.round(noisy * 255), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return buf.tobytes()
