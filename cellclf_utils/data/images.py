"""Decode image files to RGB uint8 and resize them, with errors that name the file.

Files are read as bytes and decoded with ``cv2.imdecode`` so that non-ASCII paths work
on every platform (``cv2.imread`` fails on them on Windows).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

RESIZE_POLICIES = ("pad", "crop", "stretch")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class BadImageError(ValueError):
    """An image file that cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def decode_bytes(data: bytes, path="<bytes>") -> np.ndarray:
    """Return the image in ``data`` as an HxWx3 RGB uint8 array, as a viewer shows it.

    A JPEG's EXIF orientation is applied; grayscale is repeated to 3 channels; an alpha channel
    is composited on white (the usual slide background); 16-bit files are scaled by their real
    depth (``bit_depth``: 12-bit data, common from microscope cameras, is not read as 16-bit).
    Raises BadImageError naming ``path`` for anything else.
    """
    return to_rgb(decode_raw(data, path), path)


def _cut_jpeg(data: bytes) -> bool:
    """Return whether a JPEG lacks the end-of-image marker after its (first) scan: the file was cut
    off. Bytes after that marker (a camera's trailer) are fine; an EXIF thumbnail's marker comes
    before the scan, so it does not count."""
    scan = data.find(b"\xff\xda")
    return scan < 0 or data.rfind(b"\xff\xd9") < scan


def decode_raw(data: bytes, path="<bytes>") -> np.ndarray:
    """Return the file's pixels as OpenCV decodes them (any depth and channel count), a JPEG
    turned upright by its EXIF orientation; of a multi-frame file, frame 0."""
    if len(data) == 0:
        raise BadImageError(path, "empty file (0 bytes)")
    jpeg = data[:2] == b"\xff\xd8"
    if jpeg and _cut_jpeg(data):
        # libjpeg decodes a cut-off JPEG as grey below the cut, with only a console warning
        raise BadImageError(path, "truncated JPEG (no end-of-image marker after its image data): the file was cut off")
    # IMREAD_COLOR applies the EXIF orientation (JPEGs are 8-bit without alpha); other formats
    # keep their depth and alpha with IMREAD_UNCHANGED
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if jpeg else cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BadImageError(path, "not a decodable image (corrupt, truncated or not an image format OpenCV reads)")
    return img


def _animated(data: bytes) -> bool:
    """Return whether ``data`` may hold more than one frame: a TIFF (pages), an animated PNG
    (its ``acTL`` chunk) or an animated WebP (its ``ANIM`` chunk)."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return True
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"acTL" in data[:data.find(b"IDAT")]  # acTL must come before the first image data
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP" and b"ANIM" in data[12:64]


def frame_count(data: bytes) -> int:
    """Return how many frames (pages of a TIFF, frames of an animated PNG or WebP) the file
    holds; ``decode_raw`` reads frame 0 of such a file, as a viewer first shows it."""
    if not _animated(data):
        return 1
    ok, frames = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return len(frames) if ok else 1


def bit_depth(img: np.ndarray) -> int:
    """Return the bits a decoded image's values use: 8 for uint8; for uint16, 12 when no value
    reaches 4096 (12-bit data in a 16-bit file), else 16."""
    if img.dtype != np.uint16:
        return 8
    return 12 if int(img.max()) < 4096 else 16


def to_rgb(img: np.ndarray, path="<bytes>") -> np.ndarray:
    """Return a decoded OpenCV image as HxWx3 RGB uint8 (see decode_bytes)."""
    if img.dtype == np.uint16:
        img = (img >> (bit_depth(img) - 8)).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise BadImageError(path, f"unsupported pixel type {img.dtype} (expected 8- or 16-bit)")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:  # gray + alpha
        gray, alpha = img[:, :, 0], img[:, :, 1]
        return cv2.cvtColor(_over_white(gray[..., None], alpha)[..., 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        rgb = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
        return _over_white(rgb, img[:, :, 3])
    raise BadImageError(path, f"unsupported channel count {channels}")


def _over_white(img: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[..., None] / 255.0
    return np.round(img * a + 255.0 * (1.0 - a)).astype(np.uint8)


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """Return the k-th (0..7) of the 8 flips/rotations of an NHWC batch of square images:
    ``np.rot90`` k % 4 times, then (k >= 4) the columns reversed. In numpy's names, k = 0..7 are
    identity, rot90, rot180, rot270, flip_lr, transverse, flip_ud, transpose."""
    y = np.rot90(x, k % 4, axes=(1, 2))
    return np.ascontiguousarray(y[:, :, ::-1] if k >= 4 else y)


def read_image(path) -> np.ndarray:
    """Return the image file at ``path`` as HxWx3 RGB uint8 (see decode_bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadImageError(path, "file not found") from None
    except OSError as e:
        raise BadImageError(path, f"cannot read file ({e.strerror or e})") from None
    return decode_bytes(data, path)


def resize(img: np.ndarray, size: int, policy: str = "pad") -> np.ndarray:
    """Return ``img`` as a size x size RGB uint8 array.

    pad: keep the aspect ratio, fill the border by replicating edge pixels (cells sit on
    background, so this adds background, not black bars); crop: centre square crop;
    stretch: ignore the aspect ratio.
    """
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"resize policy must be one of {', '.join(RESIZE_POLICIES)} (got {policy!r})")
    h, w = img.shape[:2]
    if policy == "crop" and h != w:
        s = min(h, w)
        y, x = (h - s) // 2, (w - s) // 2
        img = img[y:y + s, x:x + s]
    elif policy == "pad" and h != w:
        s = max(h, w)
        top, left = (s - h) // 2, (s - w) // 2
        img = cv2.copyMakeBorder(img, top, s - h - top, left, s - w - left, cv2.BORDER_REPLICATE)
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(img)
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)
