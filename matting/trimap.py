"""Trimap tools: from a mask, from painted layers, from scribbles, and validation.

Trimaps are uint8 H×W arrays with 0 = definite background, 128 = unknown, 255 = definite foreground.
"""
from __future__ import annotations

import cv2
import numpy as np

from .errors import MattingError
from .io import Scribbles, load_image, load_mask

BACKGROUND, UNKNOWN, FOREGROUND = 0, 128, 255

__all__ = [
    "from_mask", "from_layers", "from_scribbles", "dense_from_scribbles", "validate", "check_scribbles",
    "unknown_fraction",
    "BACKGROUND", "UNKNOWN", "FOREGROUND",
]


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a disk of ``radius`` pixels (pixels outside the image count as inside the mask)."""
    if radius <= 0:
        return mask.copy()
    return cv2.erode(mask.astype(np.uint8), _disk(radius), borderType=cv2.BORDER_REPLICATE).astype(bool)


def _check_width(value, name: str) -> int:
    if not float(value).is_integer() or value < 0 or value > 1000:
        raise MattingError(f"The {name} width must be a whole number of pixels from 0 to 1000; got {value!r}.")
    return int(value)


def from_mask(mask, erode: int = 10, dilate: int = 10, threshold: float = 0.5,
              soft_margin: float = 0.05) -> np.ndarray:
    """The standard automatic trimap from a binary or soft mask.

    The mask is thresholded at ``threshold``; definite foreground is the mask eroded by ``erode`` pixels,
    definite background is its complement eroded by ``dilate`` pixels (i.e. outside the mask dilated by
    ``dilate``), and everything between is unknown. Pixels of a soft mask that are neither near 0 nor near
    1 (outside [soft_margin, 1 − soft_margin]) are always unknown, so soft edges stay unknown whatever the
    widths.
    """
    mask = load_mask(mask, name="mask")
    erode, dilate = _check_width(erode, "erosion"), _check_width(dilate, "dilation")
    if not 0.0 < threshold < 1.0:
        raise MattingError(f"The mask threshold must be between 0 and 1; got {threshold!r}.")
    inside = mask >= threshold
    trimap = np.full(mask.shape, UNKNOWN, np.uint8)
    trimap[_erode(inside, erode)] = FOREGROUND
    trimap[_erode(~inside, dilate)] = BACKGROUND
    uncertain = (mask > soft_margin) & (mask < 1.0 - soft_margin)
    trimap[uncertain] = UNKNOWN
    return trimap


def from_layers(foreground=None, background=None, unknown=None, shape=None, default: int = UNKNOWN) -> np.ndarray:
    """A trimap from painted layers (boolean masks); later layers win: background, foreground, unknown.

    Unpainted pixels get ``default`` (unknown unless told otherwise).
    """
    layers = [m for m in (foreground, background, unknown) if m is not None]
    if shape is None:
        if not layers:
            raise MattingError("No painted layer was given and no size to make an empty trimap.")
        shape = np.asarray(layers[0]).shape[:2]
    if default not in (BACKGROUND, UNKNOWN, FOREGROUND):
        raise MattingError(f"The default trimap value must be 0, 128 or 255; got {default!r}.")
    trimap = np.full(shape, default, np.uint8)
    for layer, value, name in ((background, BACKGROUND, "background"), (foreground, FOREGROUND, "foreground"),
                               (unknown, UNKNOWN, "unknown")):
        if layer is None:
            continue
        layer = np.asarray(layer).astype(bool)
        if layer.shape != tuple(shape):
            raise MattingError(
                f"The painted {name} layer is {layer.shape[1]}×{layer.shape[0]} but the trimap is "
                f"{shape[1]}×{shape[0]} (width×height)."
            )
        trimap[layer] = value
    return trimap


def from_scribbles(scribbles: Scribbles) -> np.ndarray:
    """Scribbles as a sparse trimap: strokes fixed, everything else unknown."""
    return scribbles.as_sparse_trimap()


def dense_from_scribbles(image, scribbles: Scribbles, confidence: float = 0.02, band: int = 4,
                         epsilon: float = 1e-7) -> np.ndarray:
    """A dense trimap from scribbles, for methods that need one (large kernel, shared sampling, DIM).

    Closed-form matting is solved with the strokes as the only constraints (as in Levin et al.); pixels
    whose alpha is within ``confidence`` of 0 or 1 become definite background / foreground, the rest are
    unknown, and the unknown region is widened by ``band`` pixels so every soft edge is inside it.
    Strokes always keep their own label.
    """
    from . import _pymatting as pm

    band = _check_width(band, "band")
    if not 0.0 < confidence < 0.5:
        raise MattingError(f"The confidence margin must be between 0 and 0.5; got {confidence!r}.")
    image = load_image(image)
    if scribbles.foreground.shape != image.shape[:2]:
        raise MattingError(f"The scribbles are {scribbles.foreground.shape[1]}×{scribbles.foreground.shape[0]} "
                           f"but the image is {image.shape[1]}×{image.shape[0]}.")
    check_scribbles(scribbles)
    sparse = scribbles.as_sparse_trimap().astype(np.float64) / 255.0
    alpha = pm.estimate_alpha_cf(image.astype(np.float64), sparse, laplacian_kwargs={"epsilon": epsilon})
    certain_fg = alpha >= 1.0 - confidence
    certain_bg = alpha <= confidence
    trimap = np.full(alpha.shape, UNKNOWN, np.uint8)
    trimap[_erode(certain_fg, band)] = FOREGROUND
    trimap[_erode(certain_bg, band)] = BACKGROUND
    trimap[scribbles.foreground] = FOREGROUND
    trimap[scribbles.background] = BACKGROUND
    return trimap


def validate(trimap: np.ndarray, name: str = "trimap") -> np.ndarray:
    """Raise MattingError unless the trimap has foreground, background and unknown pixels."""
    missing = [label for value, label in ((FOREGROUND, "definite foreground (white, 255)"),
                                          (BACKGROUND, "definite background (black, 0)"),
                                          (UNKNOWN, "unknown (grey, 128)")) if not (trimap == value).any()]
    if missing:
        raise MattingError(
            f"The {name} has no {' and no '.join(missing)} pixels; a trimap needs all three regions."
        )
    return trimap


def check_scribbles(scribbles: Scribbles) -> Scribbles:
    """Raise MattingError unless there is at least one foreground and one background stroke."""
    if not scribbles.foreground.any() or not scribbles.background.any():
        which = "foreground" if not scribbles.foreground.any() else "background"
        raise MattingError(f"The scribbles have no {which} strokes; draw at least one stroke of each kind.")
    return scribbles


def unknown_fraction(trimap: np.ndarray) -> float:
    return float((trimap == UNKNOWN).mean())
