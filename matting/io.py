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
import tempfile
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MattingError

DEFAULT_MAX_PIXELS = 16_000_000
MIN_SIDE = 8
SNAP_TOLERANCE = 16
TRIMAP_LEVELS = (0, 128, 255)
STROKE_ALPHA_THRESHOLD = 32

Image.MAX_IMAGE_PIXELS = None  # our own guard (max_pixels) replaces PIL's bomb warning


def max_pixels_default() -> int:
    value = os.environ.get("MATTING_MAX_PIXELS")
    if value is None:
        return DEFAULT_MAX_PIXELS
    try:
        return int(float(value))
    except ValueError:
        raise MattingError(f"MATTING_MAX_PIXELS must be a number of pixels, got {value!r}.") from None


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


def describe_size(shape) -> str:
    """'W×H' for a numpy shape (H, W, ...)."""
    return f"{shape[1]}×{shape[0]}"


# --------------------------------------------------------------------------- decoding

def _open_pil(source, name: str) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise MattingError(f"The {name} file {str(path)!r} does not exist.")
        if path.is_dir():
            raise MattingError(f"The {name} {str(path)!r} is a folder, not an image file.")
        data = path.read_bytes()
        label = f"{name} file {path.name!r}"
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = f"{name} data"
    else:
        raise TypeError(source)
    if len(data) == 0:
        raise MattingError(f"The {label} is empty (0 bytes); expected a PNG, JPEG, WebP, TIFF or BMP image.")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise MattingError(
            f"The {label} is not an image that can be read (expected PNG, JPEG, WebP, TIFF or BMP)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the user's file, not our bug
        raise MattingError(f"The {label} could not be read as an image: {exc}.") from None
    image.info["_label"] = label
    return image


def _decode(image: Image.Image, name: str, max_pixels: int | None) -> Image.Image:
    label = image.info.get("_label", name)
    check_pixels(image.size[1], image.size[0], name, max_pixels)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise MattingError(f"The {label} is truncated or corrupt and could not be decoded ({exc}).") from None
    return image


def check_pixels(height: int, width: int, name: str, max_pixels: int | None = None) -> None:
    limit = max_pixels_default() if max_pixels is None else max_pixels
    if min(height, width) < MIN_SIDE:
        raise MattingError(
            f"The {name} is {width}×{height} pixels; each side must be at least {MIN_SIDE} pixels."
        )
    if limit and height * width > limit:
        scale = (limit / (height * width)) ** 0.5
        raise MattingError(
            f"The {name} is {width}×{height} = {height * width / 1e6:.1f} megapixels, above the limit of "
            f"{limit / 1e6:.1f} MP. Downscale it to about {int(width * scale)}×{int(height * scale)} "
            f"or raise the limit (max_pixels=… or the MATTING_MAX_PIXELS environment variable)."
        )


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """PIL image → float32 array in [0, 1], H×W or H×W×C, keeping an alpha channel if present."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if mode == "I":
        array = np.asarray(image, dtype=np.float64)
        return (array / (65535.0 if array.max() > 255 else 255.0)).astype(np.float32)
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode or "transparency" in image.info else "RGB")
    return np.asarray(image, dtype=np.float32) / 255.0


def _array_to_unit_float(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if np.issubdtype(array.dtype, np.integer):
        if array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise MattingError(
                f"The {name} array has integer values outside 0…255 (dtype {array.dtype}); "
                "use uint8 (0…255), uint16 (0…65535) or float in [0, 1]."
            )
        return array.astype(np.float32) / 255.0
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise MattingError(f"The {name} array contains {bad} NaN or infinite values; all values must be finite.")
        low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if low < -1e-3 or high > 1 + 1e-3:
            hint = " (it looks like 0…255: divide by 255)" if high <= 255 and low >= 0 else ""
            raise MattingError(
                f"The {name} array has float values in [{low:.3g}, {high:.3g}]; float inputs must lie in [0, 1]{hint}."
            )
        return np.clip(array, 0.0, 1.0).astype(np.float32)
    raise MattingError(f"The {name} array has dtype {array.dtype}; expected uint8, uint16, bool or float.")


def _to_unit_array(source, name: str, max_pixels: int | None) -> np.ndarray:
    """Any accepted source → float32 array in [0, 1] (H×W or H×W×C), size-checked."""
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise MattingError(
                f"The {name} array has shape {source.shape}; expected H×W, H×W×1, H×W×3 or H×W×4."
            )
        check_pixels(source.shape[0], source.shape[1], name, max_pixels)
        array = _array_to_unit_float(source, name)
    elif isinstance(source, Image.Image):
        array = _pil_to_array(_decode(source, name, max_pixels))
    elif isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        array = _pil_to_array(_decode(_open_pil(source, name), name, max_pixels))
    elif source is None:
        raise MattingError(f"No {name} was given.")
    else:
        raise MattingError(
            f"The {name} must be a file path, bytes, a PIL image or a numpy array, not {type(source).__name__}."
        )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return array


def _split_alpha(array: np.ndarray):
    if array.ndim == 3 and array.shape[2] == 4:
        return array[:, :, :3], array[:, :, 3]
    if array.ndim == 3 and array.shape[2] == 2:  # LA
        return array[:, :, :1], array[:, :, 1]
    return array, None


def _check_shape(array: np.ndarray, name: str, expected_shape) -> None:
    if expected_shape is not None and tuple(array.shape[:2]) != tuple(expected_shape[:2]):
        raise MattingError(
            f"The {name} is {describe_size(array.shape)} but the image is {describe_size(expected_shape)} "
            f"(width×height); they must be the same size."
        )


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
        foreground, background = source.foreground, source.background
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


def save_png(path, array: np.ndarray) -> Path:
    """Lossless PNG of an H×W, H×W×3 or H×W×4 array (float [0, 1] or uint8), written atomically: a reader
    (or a concurrent writer of the same path) sees the old file or the whole new one, never a part."""
    path = Path(path)
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(array)).save(buffer, format="PNG")
    return write_bytes_atomically(path, buffer.getvalue())


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
