"""Colour findings of the data-quality report: per image the colour of its stained pixels
(optical-density shares per channel, haematoxylin and eosin amounts; ``data.colour``), robust
z-scores against the labelled images, and the two findings built on them: colour outliers
(isolated among their neighbours) and images unlike their own class (see ``checks``' docstring).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import colour

# od_<c>: the share of the stained pixels' optical density absorbed in channel c (sums to 1)
COLOUR_FEATURES = ("od_red", "od_green", "od_blue", "haematoxylin", "eosin")
FEATURE_NAMES = {"od_red": "red absorption share", "od_green": "green absorption share",
                 "od_blue": "blue absorption share", "haematoxylin": "haematoxylin", "eosin": "eosin"}
ISOLATION = 4.0            # k-th nearest-neighbour distance over this x the median: a colour outlier
COLOUR_Z = 2.0             # the features named in its reason: robust |z| past this (else the largest)
# measured on the embedded synthetic set (1,320 images: 4 outliers by ISOLATION, 0 unlike their
# class) and Herlev (917 images: 18 and 19, the pinkest cells; normal_superficiel is the pink class)
UNLIKE_OWN = 1.5           # distance to its own class centre, in that class's spreads, at least ...
UNLIKE_OTHER = 1.0         # ... and at most this far from another class's centre (in its spreads)
UNLIKE_RATIO = 0.2         # ... and at most this share of the distance to its own class
MIN_CLASS = 5              # classes with fewer labelled images get no centre (too few to trust)
_MAD = 1.4826  # MAD -> standard deviation for normal data


def colour_features(images, chunk: int = 256) -> pd.DataFrame:
    """Return per image, over its stained pixels (``colour.foreground``): the share of their mean
    optical density in each channel (od_red, od_green, od_blue), their mean haematoxylin and
    eosin (``colour.stains``; a negative amount, the deconvolution's noise, counts as none, as
    ``skimage.color.rgb2hed`` clips it: the thresholds were measured so), their mean red, green, blue (0..1) and optical density
    (``density``); and ``stained``, their share of the image. An image with under 1% stained
    pixels is described by all its pixels."""
    images = np.asarray(images)
    rows = []
    for s in range(0, len(images), chunk):
        x = images[s:s + chunk]
        fg = colour.foreground(x)
        share = fg.mean(axis=(1, 2))
        w = np.where((share >= 0.01)[:, None, None], fg, True).astype(np.float64)[..., None]
        n = w.sum(axis=(1, 2))
        od = colour.optical_density(x).astype(np.float64)

        def mean(v):
            return (v * w).sum(axis=(1, 2)) / n
        mean_od = mean(od)
        total = mean_od.sum(1, keepdims=True)
        od_share = mean_od / np.maximum(total, 1e-6)
        rows.append(np.column_stack([od_share, mean(np.maximum(od @ colour.HED_FROM_RGB, 0))[:, :2], mean(x / 255.0), total / 3,
                                     share]))
    data = np.concatenate(rows) if rows else np.zeros((0, 10))
    return pd.DataFrame(data, columns=[*COLOUR_FEATURES, "red", "green", "blue", "density", "stained"])


def robust_z(values: pd.DataFrame, reference: np.ndarray | None = None, spread: bool = False) -> pd.DataFrame:
    """Return (value - median) / scale per column over the rows in the boolean mask
    ``reference`` (all rows when None): scale = 1.4826 MAD (the robust z-score), or with
    ``spread`` the larger of that and IQR / 1.349 (both the standard deviation for normal data;
    the IQR keeps the modes of a bimodal feature apart without calling either an outlier).
    A floor of 1e-4 (or 1% of the median) keeps identical images finite."""
    v = values.to_numpy(np.float64)
    ref = v if reference is None else v[np.asarray(reference, bool)]
    med = np.median(ref, axis=0)
    scale = _MAD * np.median(np.abs(ref - med), axis=0)
    if spread:
        q1, q3 = np.percentile(ref, [25, 75], axis=0)
        scale = np.maximum(scale, (q3 - q1) / 1.349)
    scale = np.maximum(scale, np.maximum(1e-4, 0.01 * np.abs(med)))
    return pd.DataFrame((v - med) / scale, columns=values.columns, index=values.index)


def isolation(z: pd.DataFrame, reference: np.ndarray, k: int | None = None) -> np.ndarray:
    """Return per row its distance to its k-th nearest reference row (itself excluded) over
    the median of that distance among the reference rows: about 1 inside the crowd, large
    for an image unlike any other. ``k`` defaults to min(10, n_reference // 10), at least 2,
    so a handful of alike outliers cannot vouch for each other."""
    from sklearn.neighbors import NearestNeighbors
    x = z.to_numpy(np.float64)
    reference = np.asarray(reference, bool)
    ref = x[reference]
    if len(ref) < 3:
        return np.ones(len(x))
    k = min(k or max(2, min(10, len(ref) // 10)), len(ref) - 1)
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(ref).kneighbors(x)
    # a reference row finds itself at distance 0 first: drop it; other rows drop their (k+1)-th
    ref_pos = np.full(len(x), -1)
    ref_pos[reference] = np.arange(len(ref))
    self_hit = idx == ref_pos[:, None]
    kth = np.where(self_hit.any(1), np.sort(np.where(self_hit, np.inf, dist), 1)[:, k - 1], dist[:, k - 1])
    typical = max(float(np.median(kth[reference])), 1e-9)
    return kth / typical


def _reason_z(z_row: pd.Series, iso: float) -> str:
    top = z_row.abs().sort_values(ascending=False)
    parts = [f"{FEATURE_NAMES[n]} {z_row[n]:+.1f}" for n in top.index[:3] if abs(z_row[n]) > COLOUR_Z] or \
            [f"{FEATURE_NAMES[top.index[0]]} {z_row[top.index[0]]:+.1f}"]
    return f"unusual stain colour ({iso:.1f}x more isolated than usual), robust z {', '.join(parts)}"


def colour_outliers(frame: pd.DataFrame, z: pd.DataFrame, zs: pd.DataFrame,
                    isolated: float = ISOLATION) -> pd.DataFrame:
    """Return the images whose isolation (``isolation``) in the spread-scaled colour features
    ``zs`` passes ``isolated``, most isolated first (id, split, label, score = isolation,
    max_z = the largest |robust z| in ``z``, reason)."""
    cols = ["id", "split", "label", "score", "max_z", "reason"]
    zc = z[list(COLOUR_FEATURES)]
    iso = isolation(zs[list(COLOUR_FEATURES)], (frame.split == "train").to_numpy())
    max_z = zc.abs().max(axis=1).to_numpy()
    bad = iso > isolated
    out = frame.loc[bad, ["id", "split", "label"]].assign(
        score=iso[bad].round(2), max_z=max_z[bad].round(2),
        reason=[_reason_z(zc.iloc[i], iso[i]) for i in np.flatnonzero(bad)])
    return out.sort_values("score", ascending=False, kind="stable")[cols].reset_index(drop=True)


def unlike_class(frame: pd.DataFrame, z: pd.DataFrame, own: float = UNLIKE_OWN, other: float = UNLIKE_OTHER,
                 ratio: float = UNLIKE_RATIO) -> pd.DataFrame:
    """Return labelled images whose colour (``z``: spread-scaled features) sits far from their
    own class's centre and close to another class's (see the module docstring), worst
    (smallest other/own ratio) first."""
    cols = ["id", "label", "nearest_class", "own_distance", "other_distance", "reason"]
    train = (frame.split == "train").to_numpy()
    labels = frame.label.to_numpy()
    x = z[list(COLOUR_FEATURES)].to_numpy()
    centres, spread = {}, {}
    for c in pd.unique(labels[train]):
        members = x[train & (labels == c)]
        if len(members) < MIN_CLASS:
            continue
        centres[c] = np.median(members, axis=0)
        spread[c] = float(np.median(np.linalg.norm(members - centres[c], axis=1)))
    if len(centres) < 2:
        return pd.DataFrame(columns=cols)
    floor = max(0.5 * float(np.median(list(spread.values()))), 1e-6)
    spread = {c: max(v, floor) for c, v in spread.items()}
    names = list(centres)
    d = np.stack([np.linalg.norm(x - centres[c], axis=1) / spread[c] for c in names], 1)
    rows = []
    for i in np.flatnonzero(train):
        if labels[i] not in centres:
            continue
        k_own = names.index(labels[i])
        d_own = d[i, k_own]
        others = [k for k in range(len(names)) if k != k_own]
        k = min(others, key=lambda j: d[i, j])
        if d_own >= own and d[i, k] <= other and d[i, k] <= ratio * d_own:
            rows.append((frame.id.iat[i], labels[i], names[k], round(d_own, 2), round(d[i, k], 2),
                         f"colour like {names[k]} ({d[i, k]:.1f} spreads from its centre), unlike its own "
                         f"class {labels[i]} ({d_own:.1f} spreads)"))
    out = pd.DataFrame(rows, columns=cols)
    return out.iloc[np.argsort((out.other_distance / out.own_distance).to_numpy(), kind="stable")] \
        .reset_index(drop=True)
