"""Hand-made image features for the classical baseline (02b), and the colour part the probe
(02c) appends to its frozen CNN features: HOG shape descriptors, and HSV and stain
(haematoxylin/eosin/DAB) histograms."""
from __future__ import annotations

import cv2
import numpy as np
from skimage.feature import hog

from ..data import colour

BINS = 16
# stain amounts (natural-log optical density) span these ranges on Herlev; outliers fall in the end bins
HED_RANGES = ((0.0, 2.5), (-0.75, 0.75), (-0.25, 1.25))
HOG_CELLS = 8  # cells per image side, whatever the image size
COLOUR_COLUMNS = 6 * BINS


def hog_features(x: np.ndarray) -> np.ndarray:
    """Return (N, F) HOG descriptors of the grey images (9 orientations, 8x8 cells, 2x2 blocks)."""
    cell = max(x.shape[1] // HOG_CELLS, 2)
    return np.stack([hog(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), orientations=9, pixels_per_cell=(cell, cell),
                         cells_per_block=(2, 2), feature_vector=True) for img in x]).astype("float32")


def colour_histograms(x: np.ndarray) -> np.ndarray:
    """Return (N, 6 x BINS) histograms (each channel sums to 1): hue, saturation, value, then
    haematoxylin, eosin and DAB amounts (``colour.stains``)."""
    out = []
    for img in x:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)  # uint8: H 0..179, S and V 0..255
        stains = colour.stains(img.reshape(-1, 3))
        hists = [np.histogram(hsv[..., c], BINS, (0, 180 if c == 0 else 256))[0] for c in range(3)]
        hists += [np.histogram(np.clip(stains[:, c], lo, hi), BINS, (lo, hi))[0]
                  for c, (lo, hi) in enumerate(HED_RANGES)]
        out.append(np.concatenate([h / max(h.sum(), 1) for h in hists]))
    return np.asarray(out, "float32")


def hog_and_colour(x: np.ndarray) -> np.ndarray:
    """Return HOG and colour features of uint8 RGB images (N, S, S, 3), one row per image (02b)."""
    return np.hstack([hog_features(x), colour_histograms(x)])
