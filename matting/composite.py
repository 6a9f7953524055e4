"""Compositing I' = αF + (1 − α)B' over new backgrounds, and RGBA export with straight alpha.

All functions take float32 arrays in [0, 1] (foreground H×W×3, alpha H×W) and return float32 H×W×3,
except :func:`rgba` which returns uint8 H×W×4.
"""
from __future__ import annotations

import cv2
import numpy as np

from .errors import MattingError
from .io import load_image, save_png, to_uint8

BACKDROPS = ("checkerboard", "colour", "image", "blur")


def _alpha3(alpha: np.ndarray) -> np.ndarray:
    return np.clip(alpha, 0.0, 1.0)[:, :, None].astype(np.float32)


def over(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The matting equation: αF + (1 − α)B."""
    a = _alpha3(alpha)
    return (a * foreground + (1.0 - a) * background).astype(np.float32)


def parse_colour(colour) -> np.ndarray:
    """'#rrggbb', 'rgb(r, g, b)', an (r, g, b) tuple of 0…255 ints or 0…1 floats → float32 RGB."""
    if isinstance(colour, str):
        text = colour.strip()
        try:
            if text.startswith("#") and len(text) == 7:
                return np.array([int(text[i:i + 2], 16) for i in (1, 3, 5)], np.float32) / 255.0
            if text.startswith("rgb"):
                parts = [float(p) for p in text[text.index("(") + 1:text.index(")")].split(",")[:3]]
                return np.clip(np.array(parts, np.float32) / 255.0, 0, 1)
        except ValueError:
            pass
        raise MattingError(f"Cannot read the colour {colour!r}; use '#rrggbb' or rgb(r, g, b).")
    values = np.asarray(colour, np.float32)
    if values.shape != (3,):
        raise MattingError(f"A colour needs three components; got {colour!r}.")
    return values / 255.0 if values.max() > 1.0 else values


def over_colour(foreground, alpha, colour="#00b140") -> np.ndarray:
    return over(foreground, alpha, np.broadcast_to(parse_colour(colour), foreground.shape))


def fit_cover(background: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``background`` to cover height×width, keeping its aspect ratio, then centre-crop."""
    bh, bw = background.shape[:2]
    scale = max(height / bh, width / bw)
    new_h, new_w = max(height, round(bh * scale)), max(width, round(bw * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(background, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[top:top + height, left:left + width]


def over_image(foreground, alpha, background) -> np.ndarray:
    """Composite over another picture (any size: resized to cover, then centre-cropped)."""
    background = load_image(background, "new background", max_pixels=0)
    return over(foreground, alpha, fit_cover(background, *alpha.shape))


def over_blur(image, foreground, alpha, sigma: float = 12.0) -> np.ndarray:
    """Portrait-mode look: the subject over a Gaussian-blurred copy of the original photo."""
    blurred = cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), sigmaX=float(sigma))
    return over(foreground, alpha, blurred)


def checkerboard(height: int, width: int, square: int = 16, light=0.8, dark=0.6) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    board = np.where(((yy // square) + (xx // square)) % 2 == 0, light, dark).astype(np.float32)
    return np.repeat(board[:, :, None], 3, axis=2)


def over_checkerboard(foreground, alpha, square: int = 16) -> np.ndarray:
    return over(foreground, alpha, checkerboard(*alpha.shape, square=square))


def composite(backdrop: str, image, foreground, alpha, colour="#00b140", background=None) -> np.ndarray:
    """One entry point for the UI and the CLI: backdrop in BACKDROPS."""
    if foreground is None:
        foreground = image
    if backdrop == "checkerboard":
        return over_checkerboard(foreground, alpha)
    if backdrop == "colour":
        return over_colour(foreground, alpha, colour)
    if backdrop == "image":
        if background is None:
            raise MattingError("Choose a picture to composite over, or another backdrop.")
        return over_image(foreground, alpha, background)
    if backdrop == "blur":
        return over_blur(image, foreground, alpha)
    raise MattingError(f"Unknown backdrop {backdrop!r}; choose one of {', '.join(BACKDROPS)}.")


def rgba(foreground: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight (unpremultiplied) RGBA uint8: colour = estimated foreground, A = alpha."""
    return np.dstack([to_uint8(foreground), to_uint8(alpha)])


def save_rgba_png(path, foreground: np.ndarray, alpha: np.ndarray):
    return save_png(path, rgba(foreground, alpha))
