"""Turn whatever a user hands over into validated arrays, or one clear :class:`MattingError`.

Accepted sources for every input: a file path (``str`` / ``Path``), encoded file ``bytes``, a PIL
image or a numpy array.

Canonical forms after loading
-----------------------------
* image, background plate: float32 H×W×3 in [0, 1]. EXIF orientation is applied; greyscale becomes
  RGB; 16-bit becomes 8-bit-range floats (value / 65535); the alpha channel of an RGBA input is
  **discarded** — its colour channels are used as they are (a warning says so), because the
  workbench estimates alpha itself.
* trimap: uint8 H×W with values in {0 (background), 128 (unknown), 255 (foreground)}.
  Input levels are snapped to the nearest of 0, 128, 255 when they lie within ±16 grey levels of it
  (this repairs JPEG noise and 127/128 confusion); any other value is rejected as stray.
  Float trimaps use the same rule on value × 255, so {0, 0.5, 1} is accepted.
* scribbles: :class:`Scribbles` (two boolean masks). An image in the trimap encoding, where
  255 = foreground stroke, 0 = background stroke and 128 = no stroke; in an RGBA image, pixels with
  alpha < 32 are "no stroke" whatever their colour.
* ground-truth alpha: float32 H×W in [0, 1] (one channel of an R=G=B image).
"""
from __future__ import annotations

import io
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import MattingError
from .decoding import (  # noqa: F401  (the limits and checks are part of io's public API)
    DEFAULT_MAX_PIXELS, FILE_BYTES_PER_PIXEL, MIN_FILE_CAP_BYTES, MIN_SIDE, SNAP_TOLERANCE, STROKE_ALPHA_THRESHOLD,
    TRIMAP_LEVELS, _check_shape, _shown, _split_alpha, _to_unit_array, check_pixel_count, check_pixels,
    describe_size, max_file_bytes, max_pixels_default, parse_pixel_limit, resolve_max_pixels)
from .threads import available_cores


@dataclass(frozen=True)
class Scribbles:
    """User strokes: pixels painted as definite foreground and as definite background."""

    foreground: np.ndarray  # bool H×W
    background: np.ndarray  # bool H×W

    @property
    def shape(self):
        return self.foreground.shape

    def as_sparse_trimap(self) -> np.ndarray:
        """Strokes in the trimap encoding: 255 / 0 on strokes, 128 (unknown) everywhere else."""
        trimap = np.full(self.shape, 128, np.uint8)
        trimap[self.foreground] = 255
        trimap[self.background] = 0
        return trimap


# --------------------------------------------------------------------------- public loaders

def load_image(source, name: str = "image", max_pixels: int | None = None, warnings: list | None = None):
    """Image (or background plate) → float32 H×W×3 in [0, 1]. See the module docstring for the rules."""
    array = _to_unit_array(source, name, max_pixels)
    array, alpha = _split_alpha(array)
    if alpha is not None and warnings is not None and float(alpha.min()) < 1.0:
        warnings.append(
            f"The {name} has transparency; its alpha channel was discarded and its colour channels used as they are."
        )
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array, dtype=np.float32)


def _grey_levels(source, name: str, expected_shape, max_pixels):
    """A single-channel 0…255 float array and an optional 'painted' mask from an alpha channel."""
    array = _to_unit_array(source, name, max_pixels)
    _check_shape(array, name, expected_shape)
    array, alpha = _split_alpha(array)
    if array.ndim == 3:
        if not (np.abs(array - array[:, :, :1]).max() <= 2 / 255):
            raise MattingError(
                f"The {name} has colour; it must be greyscale (R = G = B): "
                "black = background, grey = unknown, white = foreground."
            )
        array = array[:, :, 0]
    painted = None if alpha is None else alpha * 255.0 >= STROKE_ALPHA_THRESHOLD
    return array * 255.0, painted


def snap_trimap_levels(levels: np.ndarray, name: str = "trimap") -> np.ndarray:
    """0…255 values → uint8 {0, 128, 255} with the ±16 snapping rule; stray values are rejected."""
    snapped = np.full(levels.shape, 255, np.uint8)
    snapped[levels < 192] = 128
    snapped[levels < 64] = 0
    stray = np.abs(levels - snapped) > SNAP_TOLERANCE
    if stray.any():
        values = np.unique(np.round(levels[stray]).astype(int))
        shown = ", ".join(str(v) for v in values[:8]) + (" …" if len(values) > 8 else "")
        raise MattingError(
            f"The {name} has {int(stray.sum())} pixels with values other than 0 (background), 128 (unknown) "
            f"and 255 (foreground), e.g. {shown}. Values within ±{SNAP_TOLERANCE} of a level are snapped to it; "
            "save the trimap losslessly (PNG) with only these three levels."
        )
    return snapped


def load_trimap(source, expected_shape=None, name: str = "trimap", max_pixels: int | None = None) -> np.ndarray:
    """Trimap → uint8 H×W in {0, 128, 255}. In an RGBA trimap, unpainted (transparent) pixels are unknown."""
    levels, painted = _grey_levels(source, name, expected_shape, max_pixels)
    if painted is not None:
        levels = np.where(painted, levels, 128.0)
    return snap_trimap_levels(levels, name)


def load_scribbles(source, expected_shape=None, name: str = "scribbles", max_pixels: int | None = None) -> Scribbles:
    """Scribbles → :class:`Scribbles`. Also accepts a ``Scribbles`` or a (foreground_mask, background_mask) pair."""
    if isinstance(source, Scribbles):
        masks = []
        for which, mask in (("foreground", source.foreground), ("background", source.background)):
            if not isinstance(mask, np.ndarray) or mask.ndim != 2:
                shape = getattr(mask, "shape", None)
                raise MattingError(
                    f"The {name} {which} mask must be a 2-D H×W boolean array; got "
                    f"{type(mask).__name__}{'' if shape is None else f' of shape {_shown(shape)}'}."
                )
            check_pixels(mask.shape[0], mask.shape[1], f"{name} {which} mask", max_pixels)
            if mask.dtype.kind not in "biuf":
                raise MattingError(f"The {name} {which} mask has dtype {mask.dtype}; expected a boolean array.")
            if mask.dtype.kind == "f" and not np.isfinite(mask).all():
                raise MattingError(f"The {name} {which} mask contains NaN or infinite values.")
            masks.append(mask != 0)
        foreground, background = masks
    elif isinstance(source, (tuple, list)) and len(source) == 2:
        foreground = _load_mask(source[0], f"{name} foreground mask", expected_shape, max_pixels)
        background = _load_mask(source[1], f"{name} background mask", expected_shape, max_pixels)
    else:
        levels, painted = _grey_levels(source, name, expected_shape, max_pixels)
        if painted is not None:
            levels = np.where(painted, levels, 128.0)
        trimap = snap_trimap_levels(levels, name)
        foreground, background = trimap == 255, trimap == 0
    foreground = np.asarray(foreground, bool)
    background = np.asarray(background, bool)
    _check_shape(foreground, name, expected_shape)
    _check_shape(background, name, expected_shape)
    if foreground.shape != background.shape:
        raise MattingError(
            f"The {name} foreground mask is {describe_size(foreground.shape)} but the background mask is "
            f"{describe_size(background.shape)}; they must be the same size."
        )
    if (foreground & background).any():
        raise MattingError(
            f"The {name} mark {int((foreground & background).sum())} pixels as both foreground and background."
        )
    return Scribbles(foreground, background)


def _load_mask(source, name, expected_shape, max_pixels) -> np.ndarray:
    array = _to_unit_array(source, name, max_pixels)
    array, _ = _split_alpha(array)
    if array.ndim == 3:
        array = array.mean(axis=2)
    _check_shape(array, name, expected_shape)
    return array >= 0.5


def load_mask(source, expected_shape=None, name: str = "mask", max_pixels: int | None = None) -> np.ndarray:
    """A soft or binary mask → float32 H×W in [0, 1] (mean of colour channels if any)."""
    array = _to_unit_array(source, name, max_pixels)
    array, _ = _split_alpha(array)
    if array.ndim == 3:
        array = array.mean(axis=2)
    _check_shape(array, name, expected_shape)
    return np.ascontiguousarray(array, dtype=np.float32)


def load_alpha(source, expected_shape=None, name: str = "ground-truth alpha", max_pixels: int | None = None):
    """Alpha matte → float32 H×W in [0, 1]; an RGB matte must have R = G = B."""
    array = _to_unit_array(source, name, max_pixels)
    _check_shape(array, name, expected_shape)
    array, _ = _split_alpha(array)
    if array.ndim == 3:
        if np.abs(array - array[:, :, :1]).max() > 2 / 255:
            raise MattingError(f"The {name} has colour; an alpha matte must be greyscale (R = G = B).")
        array = array[:, :, 0]
    return np.ascontiguousarray(array, dtype=np.float32)


# --------------------------------------------------------------------------- writing

def to_uint8(array: np.ndarray) -> np.ndarray:
    """Float [0, 1] → uint8 with rounding (uint8 passes through)."""
    if array.dtype == np.uint8:
        return array
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


PNG_COMPRESS_LEVEL = 1


def save_png(path, array: np.ndarray) -> Path:
    """Lossless PNG of an H×W, H×W×3 or H×W×4 array (float [0, 1] or uint8), written atomically: a reader
    (or a concurrent writer of the same path) sees the old file or the whole new one, never a part.

    zlib level :data:`PNG_COMPRESS_LEVEL`: measured on a 1-megapixel photo, level 1 encodes an RGB image
    4.5× faster than PIL's default 6 (190 vs 890 ms) for a file 14–30 % larger; an app run writes
    a dozen such files, which at level 6 took longer than U²-NetP itself."""
    path = Path(path)
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(array)).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return write_bytes_atomically(path, buffer.getvalue())


# Pillow releases the GIL while zlib compresses, so independent PNGs encode in parallel threads.
# Unlike a parallel region inside one torch or numba kernel (see matting.threads, where 1 thread beat 2
# on busy cores), these are whole files of 20–80 ms each handed to free workers: a worker that waits for a
# core delays only its own file. Measured on 2 cores, the twelve files of an app run of U²-NetP on a
# 1-megapixel photo: ``python -m matting.bench app`` (row "result files").
PNG_WRITERS = max(1, min(4, available_cores()))  # cores this process may use (a container's quota included)
_png_pools: dict[int, object] = {}
_png_pools_lock = threading.Lock()


def save_pngs(items, workers: int | None = None) -> list[Path]:
    """:func:`save_png` of every ``(path, array)`` in ``items``, ``workers`` (default
    :data:`PNG_WRITERS`) files at a time; returns the paths in the order given. Each file is written
    atomically; when one fails, its error is raised once every other file has finished."""
    from concurrent.futures import ThreadPoolExecutor, wait

    items = [(Path(path), array) for path, array in items]
    workers = PNG_WRITERS if workers is None else max(1, int(workers))
    if workers == 1 or len(items) < 2:
        return [save_png(path, array) for path, array in items]
    with _png_pools_lock:  # one pool per size, shared by concurrent requests
        pool = _png_pools.get(workers)
        if pool is None:
            pool = _png_pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="png-writer")
    futures = [pool.submit(save_png, path, array) for path, array in items]
    wait(futures)
    return [future.result() for future in futures]


def write_bytes_atomically(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a unique temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(data)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path
