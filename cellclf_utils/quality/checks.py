"""Data-quality report: what in a dataset deserves a look before any model is trained.

Findings, each one a table (``pandas.DataFrame``) with the file, its split and label, a score
and a plain-words reason, so they can be tested without plotting:

- **class balance**: counts, imbalance ratio (largest / smallest class), the smallest class and
  the share of the largest (the accuracy a constant guess gets);
- **image sizes**: the spread of widths, heights and aspect ratios, and images far from the
  typical size (area under a quarter or over 4x the median, or stretched past 2:1);
- **colour / stain outliers**: per image, the colour of its stained (foreground) pixels: the
  share of their optical density in each of red, green and blue (the hue of the stain mix,
  whatever its strength) and their mean haematoxylin and eosin (``data.colour.stains``,
  the stains' amounts). Features are centred on the labelled images' median and scaled by the
  larger of 1.4826 MAD and IQR / 1.349 (stain features are often bimodal: pink and cyan
  cytoplasm, stain batches, classes). An image is flagged when it is isolated there: its
  distance to its k-th nearest labelled image is over ``ISOLATION`` times the median such
  distance. So a whole stain batch, tissue site or class (a mode of the data, which every
  image in it shares with its neighbours) is not flagged, a green image among purple ones is,
  however wide the set's colour range. The reason names the features that set it apart, as
  robust z-scores against the whole set ((x - median) / (1.4826 MAD)); test images are scored
  against the labelled ones;
- **images unlike their class**: in those scaled colour features, each class has a centre
  (the median of its images) and a spread (the median distance of its images to the centre,
  at least half the median over all classes, so one very uniform class does not flag its own
  small wobbles); an image is flagged when it lies far outside its own class (``UNLIKE_OWN``
  spreads) and at most half as far, in spreads, from another class's centre, inside that
  class's usual range (``UNLIKE_OTHER``): a file in the wrong folder, or a class whose colour
  is not one thing;
- **duplicates** inside the training set (``dupes.find_groups``; a pair under two labels is
  listed first) and test images that copy a training image (``dupes.cross_pairs``); identical
  files are called exact copies.

``build`` computes the report from a loaded dataset; ``figures`` draws the flagged images as
thumbnails with their file names and reasons; ``write_html`` writes one self-contained page
(figures and thumbnails embedded as base64 PNG); ``summary`` and ``summary_lines`` are the
JSON-able counts and the text the CLI prints (``cellclf data check DIR --report out.html``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import cache, dataset
from ..folds import dupes
from .colour import (COLOUR_FEATURES, ISOLATION, UNLIKE_OTHER, UNLIKE_OWN, UNLIKE_RATIO, colour_features,
                     colour_outliers, robust_z, unlike_class)

THUMB = 64                 # px; images are read at this size: stretched for colour features (every pixel
                           # of the file counts once, no replicated padding), padded for hashes and thumbnails
SIZE_AREA = 4.0            # an image whose area is over 4x or under 1/4 of the median
SIZE_ASPECT = 2.0          # or whose longer side is over twice its shorter side
IMBALANCE_FLAG = 1.5       # largest / smallest class at or above this is reported as imbalanced
KINDS = {  # finding kind: title in the summary and the HTML page
    "colour_outlier": "colour / stain outliers",
    "unlike_class": "images unlike their class's colour",
    "duplicate_train": "near-duplicate pairs in the training set",
    "duplicate_train_test": "test images that copy a training image",
    "size_outlier": "images far from the usual size",
}


@dataclass
class QualityReport:
    """Everything ``build`` found; tables are empty (with their columns) when nothing was."""

    root: str
    class_names: list[str]
    frame: pd.DataFrame              # one row per image: id, split, label, height, width, colour features, z-scores
    balance: dict
    sizes: dict
    colour_outliers: pd.DataFrame    # id, split, label, score (isolation), max_z, reason
    unlike_class: pd.DataFrame       # id, label, nearest_class, own_distance, other_distance, reason
    duplicates: pd.DataFrame         # id_a, id_b, label_a, label_b, distance, exact, reason
    cross_duplicates: pd.DataFrame   # test_id, train_id, test_label, train_label, distance, exact, reason
    size_outliers: pd.DataFrame      # id, split, label, width, height, reason
    thumbs: np.ndarray               # (N, THUMB, THUMB, 3) uint8, rows of ``frame``
    skipped: list[dict] = field(default_factory=list)

    def thumb(self, image_id: str) -> np.ndarray:
        return self.thumbs[self._row[image_id]]

    def __post_init__(self):
        self._row = {i: k for k, i in enumerate(self.frame["id"])}

    def counts(self) -> dict:
        """Return the number of findings per kind (KINDS order)."""
        return {"colour_outlier": len(self.colour_outliers), "unlike_class": len(self.unlike_class),
                "duplicate_train": len(self.duplicates), "duplicate_train_test": len(self.cross_duplicates),
                "size_outlier": len(self.size_outliers)}


# ---------------------------------------------------------------------------------------- findings

def class_balance(counts: dict) -> dict:
    """Return balance numbers of ``{class: n}``: imbalance ratio (largest / smallest), the
    smallest and largest class, the majority share (the accuracy of always guessing it)."""
    if not counts:
        return {"counts": {}, "n_classes": 0}
    small = min(counts, key=lambda c: (counts[c], c))
    large = max(counts, key=lambda c: (counts[c], c))
    total = sum(counts.values())
    ratio = counts[large] / counts[small] if counts[small] else float("inf")
    return {"counts": dict(counts), "n_classes": len(counts), "total": total,
            "smallest": small, "smallest_n": counts[small], "largest": large, "largest_n": counts[large],
            "imbalance_ratio": round(ratio, 3), "majority_share": round(counts[large] / max(total, 1), 4),
            "imbalanced": ratio >= IMBALANCE_FLAG}


def size_spread(frame: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Return (summary, outliers) of the images' sizes (columns id, split, label, width,
    height): distinct sizes, min/median/max width and height, aspect-ratio range, median size
    per class; outliers are far from the median area (SIZE_AREA) or stretched (SIZE_ASPECT)."""
    cols = ["id", "split", "label", "width", "height", "reason"]
    if frame.empty:
        return {"n_images": 0}, pd.DataFrame(columns=cols)
    w, h = frame.width.astype(float), frame.height.astype(float)
    area, aspect = w * h, np.maximum(w, h) / np.maximum(np.minimum(w, h), 1)
    med_area = float(np.median(area))
    train = frame[frame.split == "train"]
    summary = {
        "n_images": len(frame), "distinct_sizes": int(frame[["width", "height"]].drop_duplicates().shape[0]),
        "width": {"min": int(w.min()), "median": float(np.median(w)), "max": int(w.max())},
        "height": {"min": int(h.min()), "median": float(np.median(h)), "max": int(h.max())},
        "aspect": {"min": round(float(aspect.min()), 3), "max": round(float(aspect.max()), 3)},
        "median_per_class": {c: f"{int(np.median(g.width))}x{int(np.median(g.height))}"
                             for c, g in train.groupby("label")},
    }
    reasons = []
    for a, asp in zip(area, aspect):
        r = []
        if a > SIZE_AREA * med_area:
            r.append(f"{a / med_area:.1f}x the median area")
        elif a * SIZE_AREA < med_area:
            r.append(f"1/{med_area / max(a, 1):.1f} of the median area")
        if asp > SIZE_ASPECT:
            r.append(f"aspect {asp:.1f}:1")
        reasons.append("; ".join(r))
    out = frame.assign(reason=reasons, _dev=np.abs(np.log(area / med_area)) + np.log(aspect))
    out = out[out.reason != ""].sort_values("_dev", ascending=False, kind="stable")
    return summary, out[cols].reset_index(drop=True)


def _exact(paths_by_id: dict, a: str, b: str) -> bool:
    try:
        return cache.content_hash(paths_by_id[a]) == cache.content_hash(paths_by_id[b])
    except (KeyError, OSError):
        return False


def duplicate_table(pairs: pd.DataFrame, label_of: dict, paths_by_id: dict) -> pd.DataFrame:
    """Return training-set near-duplicate pairs (dupes.DupeResult.pairs) with their labels,
    exact copies named; pairs under two different labels first, then by distance."""
    cols = ["id_a", "id_b", "label_a", "label_b", "distance", "exact", "reason"]
    if pairs is None or len(pairs) == 0:
        return pd.DataFrame(columns=cols)
    df = pairs.assign(label_a=pairs.id_a.map(label_of), label_b=pairs.id_b.map(label_of),
                      exact=[_exact(paths_by_id, a, b) for a, b in zip(pairs.id_a, pairs.id_b)])
    what = np.where(df.exact, "identical files", "near-duplicates (distance " + df.distance.astype(str) + ")")
    conflict = df.label_a != df.label_b
    df["reason"] = np.where(conflict, what + " under two labels: " + df.label_a + " and " + df.label_b,
                            what + ", both " + df.label_a)
    df = df.assign(_c=~conflict).sort_values(["_c", "distance"], kind="stable")
    return df[cols].reset_index(drop=True)


def cross_table(cross: pd.DataFrame, label_of: dict, paths_by_id: dict) -> pd.DataFrame:
    """Return test images that copy a training image (dupes.cross_pairs) with labels and reasons."""
    cols = ["test_id", "train_id", "test_label", "train_label", "distance", "exact", "reason"]
    if cross is None or len(cross) == 0:
        return pd.DataFrame(columns=cols)
    df = cross.assign(test_label=cross.test_id.map(label_of).fillna(""), train_label=cross.train_id.map(label_of),
                      exact=[_exact(paths_by_id, a, b) for a, b in zip(cross.test_id, cross.train_id)])
    df["reason"] = [("identical file to" if e else f"near-duplicate (distance {d}) of") + f" training image {t} ({lab})"
                    for e, d, t, lab in zip(df.exact, df.distance, df.train_id, df.train_label)]
    return df.sort_values("distance", kind="stable")[cols].reset_index(drop=True)


def build(ds, dup=None, cross=None, isolated: float = ISOLATION, progress: bool = False) -> QualityReport:
    """Return the quality report of a loaded ``data.Dataset``. ``dup`` (dupes.DupeResult of the
    training images) and ``cross`` (dupes.cross_pairs table) are reused when given (the 01
    notebook has them), else computed here from THUMB-px images, as folds.duplicate_groups does."""
    frame = ds.frame()

    def read(policy):
        x = ds.images(THUMB, policy, progress=progress)
        return np.concatenate([x, ds.test_images(THUMB, policy, progress=progress)]) if ds.test_items else x

    x = read("pad")
    if dup is None:
        dup = dupes.find_groups(x[:len(ds.items)], ds.ids)
    if cross is None:
        cross = dupes.cross_pairs(x[:len(ds.items)], ds.ids, x[len(ds.items):], ds.test_ids) if ds.test_items \
            else pd.DataFrame(columns=["test_id", "train_id", "distance"])
    feats = colour_features(read("stretch"))
    is_train = (frame.split == "train").to_numpy()
    z = robust_z(feats[list(COLOUR_FEATURES)], is_train)
    zs = robust_z(feats[list(COLOUR_FEATURES)], is_train, spread=True)
    frame = pd.concat([frame, feats, z.add_prefix("z_")], axis=1)
    label_of = dict(zip(frame.id, frame.label))
    paths_by_id = {it.id: it.path for it in [*ds.items, *ds.test_items]}
    sizes, size_out = size_spread(frame)
    counts = {c: int((frame[is_train].label == c).sum()) for c in ds.class_names}
    return QualityReport(
        root=str(ds.root), class_names=list(ds.class_names), frame=frame, balance=class_balance(counts),
        sizes=sizes, colour_outliers=colour_outliers(frame, z, zs, isolated), unlike_class=unlike_class(frame, zs),
        duplicates=duplicate_table(dup.pairs, label_of, paths_by_id),
        cross_duplicates=cross_table(cross, label_of, paths_by_id), size_outliers=size_out,
        thumbs=x, skipped=list(ds.skipped))


def run(source, classes="", progress: bool = False) -> QualityReport:
    """Return the quality report of the dataset at ``source`` (unreadable files are skipped
    and listed, never raised)."""
    return build(dataset.load_dataset(source, classes, on_bad_image="skip", progress=progress), progress=progress)


# ---------------------------------------------------------------------------------------- summaries

def flagged(rep: QualityReport, kind: str) -> list[tuple[str, str]]:
    """Return (file id, reason) per finding of ``kind``, worst first."""
    if kind == "colour_outlier":
        df = rep.colour_outliers
    elif kind == "unlike_class":
        df = rep.unlike_class
    elif kind == "duplicate_train":
        return [(f"{a} ~ {b}", r) for a, b, r in zip(rep.duplicates.id_a, rep.duplicates.id_b, rep.duplicates.reason)]
    elif kind == "duplicate_train_test":
        return list(zip(rep.cross_duplicates.test_id, rep.cross_duplicates.reason))
    elif kind == "size_outlier":
        df = rep.size_outliers
    else:
        raise ValueError(f"unknown finding kind {kind!r}; one of {', '.join(KINDS)}")
    return list(zip(df.id, df.reason))


def findings(rep: QualityReport) -> pd.DataFrame:
    """Return every finding as one table: kind, id, reason (kinds in KINDS order, worst first)."""
    rows = [(k, i, r) for k in KINDS for i, r in flagged(rep, k)]
    return pd.DataFrame(rows, columns=["kind", "id", "reason"])


def summary(rep: QualityReport, worst: int = 5) -> dict:
    """Return a JSON-able summary: balance, sizes, finding counts and the worst file names per kind."""
    return {"balance": rep.balance, "sizes": rep.sizes, "findings": rep.counts(),
            "worst": {k: [i for i, _ in flagged(rep, k)[:worst]] for k in KINDS},
            "thresholds": {"isolation": ISOLATION, "unlike_own": UNLIKE_OWN, "unlike_other": UNLIKE_OTHER,
                           "unlike_ratio": UNLIKE_RATIO, "size_area": SIZE_AREA, "size_aspect": SIZE_ASPECT}}


def summary_lines(rep: QualityReport, worst: int = 3) -> list[str]:
    """Return the text summary: balance, size spread, then per finding kind its count and the
    worst few files with their reasons."""
    b, s = rep.balance, rep.sizes
    lines = ["data quality:"]
    if b.get("n_classes") and b["largest_n"] == b["smallest_n"]:
        lines.append(f"  class balance: all {b['n_classes']} classes have {b['largest_n']} images "
                     f"(imbalance ratio 1.00); always guessing one scores {b['majority_share']:.1%}")
    elif b.get("n_classes"):
        lines.append(f"  class balance: largest {b['largest']} {b['largest_n']}, smallest {b['smallest']} "
                     f"{b['smallest_n']}, imbalance ratio {b['imbalance_ratio']:.2f}"
                     f"{' (imbalanced)' if b['imbalanced'] else ''}; always guessing {b['largest']} "
                     f"scores {b['majority_share']:.1%}")
    if s.get("n_images"):
        lines.append(f"  image sizes: {s['distinct_sizes']} distinct; width {s['width']['min']}-{s['width']['max']}, "
                     f"height {s['height']['min']}-{s['height']['max']} px; aspect up to {s['aspect']['max']:.2f}:1")
    for kind, title in KINDS.items():
        found = flagged(rep, kind)
        lines.append(f"  {title}: {len(found)}")
        for i, r in found[:worst]:
            lines.append(f"    {i}: {r}")
        if len(found) > worst:
            lines.append(f"    ... {len(found) - worst} more")
    return lines
