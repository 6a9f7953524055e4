"""Turning alphas, errors and maps into pictures (shared by the CLI, the app and the notebooks)."""
from __future__ import annotations

import numpy as np

ERROR_COLOURMAP = "inferno"


def colourise_error(error: np.ndarray, vmax: float | None = None, colourmap: str = ERROR_COLOURMAP) -> np.ndarray:
    """|α − α*| (or any non-negative map) → float32 H×W×3 through a matplotlib colour map.

    ``vmax`` defaults to the map's maximum (at least 1/255 so a perfect result stays dark).
    """
    from matplotlib import colormaps

    error = np.asarray(error, np.float32)
    top = max(float(error.max(initial=0.0)), 1 / 255) if vmax is None else float(vmax)
    normalised = np.clip(error / top, 0.0, 1.0)
    return colormaps[colourmap](normalised)[:, :, :3].astype(np.float32)


def error_figure(error: np.ndarray, vmax: float | None = None, title: str = "|α − α_gt|"):
    """A matplotlib Figure (no pyplot) with the colour-mapped error and a colour bar."""
    from matplotlib.figure import Figure

    error = np.asarray(error, np.float32)
    top = max(float(error.max(initial=0.0)), 1 / 255) if vmax is None else float(vmax)
    height, width = error.shape
    figure = Figure(figsize=(6, 6 * height / width + 0.4), layout="constrained")
    axes = figure.add_subplot()
    shown = axes.imshow(error, cmap=ERROR_COLOURMAP, vmin=0.0, vmax=top, interpolation="nearest")
    axes.set_axis_off()
    axes.set_title(title)
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.02, label="absolute alpha error")
    return figure


def overlay_mask(image: np.ndarray, mask: np.ndarray, colour=(1.0, 0.2, 0.2), opacity: float = 0.5) -> np.ndarray:
    """Tint the pixels of ``mask`` (bool or [0, 1]) over the image."""
    weight = np.clip(np.asarray(mask, np.float32), 0, 1)[:, :, None] * opacity
    return (image * (1 - weight) + np.asarray(colour, np.float32) * weight).astype(np.float32)


def trimap_overlay(image: np.ndarray, trimap: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """Foreground tinted green, background tinted blue, unknown left as is."""
    out = overlay_mask(image, trimap == 255, (0.1, 0.9, 0.2), opacity)
    return overlay_mask(out, trimap == 0, (0.1, 0.3, 1.0), opacity)


def map_picture(item) -> np.ndarray:
    """An intermediate map as a picture: error maps colour-mapped, the rest as they are."""
    array = np.asarray(item.array, np.float32)
    if item.kind == "error" and array.ndim == 2:
        return colourise_error(array)
    return array
