"""The trimap / scribble painter: what goes into gr.ImageEditor and how its layer becomes a trimap.

The editor shows a copy of the photo whose long side is at most :data:`EDITOR_MAX_SIDE` (browsers
render wider canvases black and lose strokes). Painted layers come back at that size and are scaled
to the photo's full resolution with nearest-neighbour sampling, so the three trimap levels survive.
"""
from __future__ import annotations

import cv2
import numpy as np

from .. import trimap as trimaps
from ..errors import MattingError
from ..io import STROKE_ALPHA_THRESHOLD, Scribbles, check_pixel_count, describe_size, to_uint8

EDITOR_MAX_SIDE = 2048
LEVELS = np.array([trimaps.BACKGROUND, trimaps.UNKNOWN, trimaps.FOREGROUND], np.float32)
# A preloaded trimap is drawn half-transparent so the photo stays visible under it.
PRELOAD_ALPHA = 120
# Unknown pixels of a preloaded trimap are painted grey only this faintly: visible, yet the photo
# shows through the band where the edges are decided.
PRELOAD_UNKNOWN_ALPHA = 60


def editor_scale(shape) -> float:
    """Factor (≤ 1) from the photo's size to the editor's."""
    return min(1.0, EDITOR_MAX_SIDE / max(shape[:2]))


def editor_size(shape) -> tuple[int, int]:
    """(height, width) of the editor canvas for a photo of ``shape``."""
    scale = editor_scale(shape)
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def editor_background(image: np.ndarray) -> np.ndarray:
    """The photo as uint8 RGB at editor size."""
    height, width = editor_size(image.shape)
    picture = to_uint8(image)
    if (height, width) != picture.shape[:2]:
        picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
    return picture


def editor_value(image: np.ndarray, trimap: np.ndarray | None = None) -> dict:
    """An ImageEditor value: the photo, plus ``trimap`` (full resolution) preloaded as the paint layer."""
    background = editor_background(image)
    layers = [] if trimap is None else [trimap_layer(trimap, background.shape)]
    return {"background": background, "layers": layers, "composite": None}


def trimap_layer(trimap: np.ndarray, editor_shape) -> np.ndarray:
    """A full-resolution trimap as an RGBA paint layer of the editor's size."""
    height, width = editor_shape[:2]
    small = cv2.resize(trimap, (width, height), interpolation=cv2.INTER_NEAREST)
    layer = np.zeros((height, width, 4), np.uint8)
    layer[..., :3] = small[..., None]
    layer[..., 3] = np.where(small == trimaps.UNKNOWN, PRELOAD_UNKNOWN_ALPHA, PRELOAD_ALPHA)
    return layer


def _layers(value) -> list[np.ndarray]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise MattingError("The painted trimap must be an image-editor value (background, layers, composite).")
    layers = []
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        if not isinstance(layer, np.ndarray):
            raise MattingError(f"A painted layer must be an RGBA image array, not {type(layer).__name__}.")
        array = layer
        if array.ndim != 3 or array.shape[2] != 4 or array.dtype.kind not in "biuf":
            raise MattingError(
                "A painted layer must be an RGBA image (transparent where nothing is painted); "
                f"got an array of shape {array.shape} and dtype {array.dtype}."
            )
        # Gradio has decoded it already (under PIL's process-wide bomb guard, see matting.io); refuse
        # here anything over the pixel limit before it is processed further.
        check_pixel_count(array.shape[0], array.shape[1], "painted layer")
        layers.append(array)
    return layers


def painted_regions(value) -> dict[str, np.ndarray] | None:
    """{'foreground', 'background', 'unknown'} boolean masks at the editor's size, or None if nothing
    is painted. A pixel is painted where its layer alpha is ≥ 32 (faint brush edges count); its class
    is the nearest of black / grey / white."""
    layers = _layers(value)
    if not layers:
        return None
    shape = layers[0].shape[:2]
    level = np.full(shape, -1, np.int8)  # -1 = unpainted, else index into LEVELS
    for layer in layers:  # later layers are on top
        if layer.shape[:2] != shape:
            raise MattingError("The painted layers have different sizes; reload the photo and paint again.")
        painted = layer[..., 3] >= STROKE_ALPHA_THRESHOLD
        grey = layer[..., :3].astype(np.float32).mean(axis=2)
        nearest = np.abs(grey[..., None] - LEVELS).argmin(axis=2).astype(np.int8)
        level[painted] = nearest[painted]
    if (level < 0).all():
        return None
    return {"background": level == 0, "unknown": level == 1, "foreground": level == 2}


def _to_full(mask: np.ndarray, shape, what: str) -> np.ndarray:
    height, width = shape[:2]
    if mask.shape == (height, width):
        return mask
    mask_ratio, image_ratio = mask.shape[1] / mask.shape[0], width / height
    if abs(mask_ratio - image_ratio) > 0.02 * image_ratio:
        raise MattingError(
            f"The painted {what} is {describe_size(mask.shape)} but the photo is {describe_size(shape)} "
            "(width×height), a different shape: it was painted on another photo. Load the photo again and repaint."
        )
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def trimap_from_editor(value, shape) -> np.ndarray | None:
    """The painted trimap at full resolution (unpainted = unknown), or None if nothing is painted."""
    regions = painted_regions(value)
    if regions is None:
        return None
    full = {name: _to_full(mask, shape, "trimap") for name, mask in regions.items()}
    return trimaps.from_layers(**full, shape=tuple(shape[:2]))


def scribbles_from_editor(value, shape) -> Scribbles | None:
    """White and black strokes as scribbles at full resolution (grey strokes mean 'no constraint')."""
    regions = painted_regions(value)
    if regions is None:
        return None
    foreground = _to_full(regions["foreground"], shape, "strokes")
    background = _to_full(regions["background"], shape, "strokes")
    if not foreground.any() and not background.any():
        return None
    return Scribbles(foreground, background)
