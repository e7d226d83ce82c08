"""Stain colour maths, in one place: optical density, haematoxylin/eosin/DAB amounts by colour
deconvolution, and the mask of stained (foreground) pixels.

Ruifrok & Johnston (2001): each stain absorbs along its own RGB optical-density vector, so
``OD = stains @ RGB_FROM_HED`` and ``stains = OD @ HED_FROM_RGB`` (the matrix
``skimage.color.rgb2hed`` inverts). Optical density is ``-ln((I + 1) / 256)`` of 0..255
intensities: 0 for white, finite for black.
"""
from __future__ import annotations

import numpy as np

# rows: haematoxylin, eosin, DAB, in RGB optical density
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], "float32")
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype("float32")
STAINS = ("haematoxylin", "eosin", "DAB")
# a pixel is stained when its saturation passes this, or its brightest channel is under DARK
SATURATED = 0.15
DARK = 0.6


def optical_density(rgb) -> np.ndarray:
    """Return the optical density of 0..255 RGB values (any shape ending in 3), float32."""
    return -np.log((np.asarray(rgb, np.float32) + 1.0) / 256.0)


def stains(rgb) -> np.ndarray:
    """Return the haematoxylin, eosin and DAB amounts of 0..255 RGB values (same shape), float32."""
    return optical_density(rgb) @ HED_FROM_RGB


def foreground(rgb) -> np.ndarray:
    """Return the mask of stained pixels of 0..255 RGB values (shape without the last axis):
    saturated or dark. The bright slide background would otherwise dominate every mean and
    histogram and hide the stain differences."""
    x = np.asarray(rgb, np.float32) / 255.0
    mx, mn = x.max(-1), x.min(-1)
    saturation = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    return (saturation > SATURATED) | (mx < DARK)
