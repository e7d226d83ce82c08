"""Grad-CAM of new images (``cellclf predict --gradcam DIR``): where the model that classified
each image found its class, as one PNG per image (the image, then its heat map over it), from
the Keras fold models of the stage (or of an ensemble's Keras members), averaged."""
from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
from tqdm import tqdm

from ..data import cache
from . import gradcam
from .saved import PredictError, StageModel, images_for

CHUNK = 32     # images per Grad-CAM pass: the feature maps of a chunk stay small
DISPLAY = 224  # least side of a picture: small training sizes are enlarged to be seen


def keras_parts(sm: StageModel) -> list[StageModel]:
    """Return the Keras stages behind ``sm``: itself, or an ensemble's Keras members."""
    if sm.kind == "keras":
        return [sm]
    return [m for m in sm.members if m.kind == "keras"]


def overlay(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Return the RGB image beside itself under the heat map (jet colours, 40% opaque)."""
    colours = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * np.clip(heat, 0, 1)), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blend = np.uint8(0.6 * image + 0.4 * colours)
    return np.hstack([image, blend])


def _maps(part: StageModel, paths, predicted: np.ndarray, size: int, progress: bool) -> np.ndarray:
    """Return the mean Grad-CAM map per image over ``part``'s fold models, at ``size`` px."""
    x = images_for(part, paths, progress=False)
    total = np.zeros((len(x), size, size), np.float32)
    for fold in tqdm(part.folds, desc=f"{part.name}: Grad-CAM per fold", disable=not progress, leave=False):
        model = keras.saving.load_model(fold.model)
        for i in range(0, len(x), CHUNK):
            maps = gradcam.heatmaps(model, x[i:i + CHUNK], predicted[i:i + CHUNK])
            total[i:i + CHUNK] += np.stack([cv2.resize(m, (size, size)) for m in maps])
    return total / len(part.folds)


def explain(sm: StageModel, ids: list[str], paths, predicted: np.ndarray, out_dir: Path,
            progress: bool = True) -> list[Path]:
    """Write one PNG per image into ``out_dir`` (``<id>__<predicted class>.png``, '/' in ids as
    '__'); return their paths."""
    parts = keras_parts(sm)
    if not parts:
        raise PredictError(f"--gradcam needs a Keras stage (02-06); {sm.name} is a "
                           f"{'scikit-learn stage' if sm.kind == 'features' else 'ensemble without Keras members'}")
    size = max(DISPLAY, *(p.feed["image_size"] for p in parts))
    maps = sum(_maps(p, paths, predicted, size, progress) for p in parts) / len(parts)
    shown = cache.load_many(list(paths), size, parts[0].feed.get("resize", "pad"), progress=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for image_id, img, heat, c in zip(ids, shown, maps, predicted):
        path = out_dir / f"{image_id.replace('/', '__')}__{sm.classes[c]}.png"
        ok, buf = cv2.imencode(".png", cv2.cvtColor(overlay(img, heat), cv2.COLOR_RGB2BGR))
        if ok:
            path.write_bytes(buf.tobytes())
            written.append(path)
    return written
