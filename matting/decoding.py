"""Reading and decoding image inputs safely: the pixel limit, capped file reads, PIL's bomb guard,
and turning any array or PIL image into float32 in [0, 1] with range and NaN checks.

:mod:`matting.io` builds the public loaders on these; nothing here knows what a trimap or scribble is.
"""
from __future__ import annotations

import errno
import io
import math
import numbers
import os
import stat
import struct

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MattingError

DEFAULT_MAX_PIXELS = 16_000_000
MIN_SIDE = 8
SNAP_TOLERANCE = 16
TRIMAP_LEVELS = (0, 128, 255)
STROKE_ALPHA_THRESHOLD = 32

# A file is read whole before decoding, so its size is capped too: 16 bytes per allowed pixel (an
# uncompressed float32 RGBA TIFF), never less than MIN_FILE_CAP_BYTES.
FILE_BYTES_PER_PIXEL = 16
MIN_FILE_CAP_BYTES = 64 * 2**20


def _shown(value, limit: int = 80) -> str:
    """repr() of a user value for a message: bounded in length, never raising (huge ints, odd objects)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - ValueError for ints over 4300 digits, or a hostile __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_pixel_limit(value, where: str = "max_pixels") -> int:
    """A pixel limit (int, float, numeric string) → int ≥ 0, where 0 means no limit; else MattingError."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise MattingError(f"{where} must be a number of pixels (0 = no limit); got {_shown(value)}.") from None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise MattingError(f"{where} must be a number of pixels (0 = no limit); got {_shown(value)}.")
    if isinstance(value, numbers.Rational):  # int, numpy ints, Fraction: exact, however large
        number = int(value)
    else:
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):
            number = math.nan
        if not math.isfinite(number):
            raise MattingError(f"{where} must be a finite number of pixels (0 = no limit); got {_shown(value)}.")
        number = int(number)
    if number < 0:
        raise MattingError(f"{where} must be 0 (no limit) or a positive number of pixels; got {_shown(value)}.")
    return number


def max_pixels_default() -> int:
    value = os.environ.get("MATTING_MAX_PIXELS")
    if value is None:
        return DEFAULT_MAX_PIXELS
    return parse_pixel_limit(value, "MATTING_MAX_PIXELS")


def resolve_max_pixels(max_pixels=None) -> int:
    """The pixel limit in force: ``max_pixels`` if given, else MATTING_MAX_PIXELS, else the default (0 = none)."""
    return max_pixels_default() if max_pixels is None else parse_pixel_limit(max_pixels)


def max_file_bytes(max_pixels=None) -> int:
    """The largest file the loaders read: 16 bytes per allowed pixel, at least 64 MiB."""
    limit = resolve_max_pixels(max_pixels) or DEFAULT_MAX_PIXELS
    return max(MIN_FILE_CAP_BYTES, FILE_BYTES_PER_PIXEL * limit)


def _initial_pil_guard() -> int:
    try:
        return max(DEFAULT_MAX_PIXELS, max_pixels_default())
    except MattingError:
        return DEFAULT_MAX_PIXELS


# Process-wide decompression-bomb guard for every decoder outside this module (e.g. Gradio decoding
# the painter's layers): PIL warns above this many pixels and refuses twice as many before decoding.
# This module checks declared sizes against ``max_pixels`` itself, before decoding, and never changes
# PIL's guard (see _pil_open).
Image.MAX_IMAGE_PIXELS = _initial_pil_guard()



def describe_size(shape) -> str:
    """'W×H' for a numpy shape (H, W, ...)."""
    return f"{shape[1]}×{shape[0]}"


# --------------------------------------------------------------------------- decoding

_OPEN_ERRORS = {
    errno.ENOENT: "does not exist",
    errno.ENOTDIR: "does not exist (a part of its path is not a folder)",
    errno.ELOOP: "is a symbolic link that loops (or too many levels of links)",
    errno.ENAMETOOLONG: "has a path that is too long",
    errno.EACCES: "cannot be read (permission denied)",
    errno.EPERM: "cannot be read (permission denied)",
    errno.EISDIR: "is a folder, not an image file",
    errno.ENXIO: "is a socket or a device, not a regular file",
}


def _read_file(path, name: str, max_pixels) -> tuple[bytes, str]:
    """The bytes of a regular file, at most max_file_bytes(); FIFOs, devices, sockets and folders are refused.

    The file is opened non-blocking (a FIFO without a writer cannot hang the open) and checked with
    fstat on the opened descriptor, so what is checked is what is read.
    """
    try:
        raw = os.fspath(path)
        text = os.fsdecode(raw)
    except (TypeError, ValueError) as exc:
        raise MattingError(f"The {name} path is not a valid file path ({exc}).") from None
    shown = _shown(text, 120)
    label = f"{name} file {_shown(os.path.basename(text) or text, 120)}"
    try:
        fd = os.open(raw, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except ValueError:  # embedded NUL byte
        raise MattingError(f"The {name} path {shown} is not a valid file path (it contains a NUL character).") from None
    except OSError as exc:
        what = _OPEN_ERRORS.get(exc.errno, f"could not be opened ({exc.strerror or exc})")
        noun = "" if exc.errno == errno.EISDIR else " file"
        raise MattingError(f"The {name}{noun} {shown} {what}.") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise MattingError(f"The {name} {shown} is a folder, not an image file.")
        if not stat.S_ISREG(info.st_mode):
            kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else
                    "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                    "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file")
            raise MattingError(
                f"The {name} {shown} is {kind}, not a regular file; only image files are read "
                "(special files can block forever or never end)."
            )
        cap = max_file_bytes(max_pixels)
        if info.st_size > cap:
            raise MattingError(
                f"The {label} is {info.st_size / 2**20:.1f} MB, above the {cap / 2**20:.0f} MB cap on image "
                "files (16 bytes per allowed pixel); downscale or compress it."
            )
        chunks, total = [], 0
        while total <= cap:
            chunk = os.read(fd, min(cap + 1 - total, 16 * 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > cap:
            raise MattingError(f"The {label} grew beyond the {cap / 2**20:.0f} MB cap on image files while being read.")
        return b"".join(chunks), label
    except OSError as exc:
        raise MattingError(f"The {label} could not be read ({exc.strerror or exc}).") from None
    finally:
        os.close(fd)


def _pil_open(data: bytes) -> Image.Image:
    """Image.open on bytes. Where PIL's process-wide bomb guard refuses the declared size, the header
    is read again without that check (the caller checks the declared size against its own limit before
    decoding), leaving the guard itself untouched for every other thread."""
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        return _open_unchecked(data)


def _open_unchecked(data: bytes) -> Image.Image:
    """Image.open's format detection (Pillow's OPEN / ID registry) without its decompression-bomb check."""
    fp, prefix = io.BytesIO(data), data[:16]
    try:
        for loader in (Image.preinit, Image.init):
            loader()
            for fmt in list(Image.ID):
                factory, accept = Image.OPEN[fmt]
                result = not accept or accept(prefix)
                if not result or isinstance(result, str):
                    continue
                fp.seek(0)
                try:
                    return factory(fp, "")
                except (SyntaxError, IndexError, TypeError, struct.error):
                    continue
    except (AttributeError, KeyError, ValueError) as exc:  # Pillow's registry changed shape
        raise MattingError(
            f"The image declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} megapixels, "
            "above the limit (its exact size could not be read)."
        ) from exc
    raise UnidentifiedImageError("cannot identify image file")


def _open_pil(source, name: str, max_pixels=None) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        data, label = _read_file(source, name, max_pixels)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = f"{name} data"
        cap = max_file_bytes(max_pixels)
        if len(data) > cap:
            raise MattingError(
                f"The {label} is {len(data) / 2**20:.1f} MB, above the {cap / 2**20:.0f} MB cap on image files."
            )
    else:
        raise TypeError(source)
    if len(data) == 0:
        raise MattingError(f"The {label} is empty (0 bytes); expected a PNG, JPEG, WebP, TIFF or BMP image.")
    try:
        image = _pil_open(data)
    except UnidentifiedImageError:
        raise MattingError(
            f"The {label} is not an image that can be read (expected PNG, JPEG, WebP, TIFF or BMP)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the user's file, not our bug
        raise MattingError(f"The {label} could not be read as an image: {_shown(str(exc), 200)}.") from None
    image.info["_label"] = label
    return image


def _decode(image: Image.Image, name: str, max_pixels: int | None) -> Image.Image:
    label = image.info.get("_label", name)
    check_pixels(image.size[1], image.size[0], name, max_pixels)  # declared size, before any decoding
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:  # a frame or layer larger than the declared size
        raise MattingError(f"The {label} holds a frame too large to decode safely ({exc}).") from None
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data
        raise MattingError(
            f"The {label} is truncated or corrupt and could not be decoded ({_shown(str(exc), 200)})."
        ) from None
    check_pixels(image.size[1], image.size[0], name, max_pixels)
    return image


def check_pixels(height: int, width: int, name: str, max_pixels: int | None = None) -> None:
    if min(height, width) < MIN_SIDE:
        raise MattingError(
            f"The {name} is {width}×{height} pixels; each side must be at least {MIN_SIDE} pixels."
        )
    check_pixel_count(height, width, name, max_pixels)


def check_pixel_count(height: int, width: int, name: str, max_pixels: int | None = None) -> None:
    """MattingError if height × width exceeds the pixel limit (``max_pixels``, else MATTING_MAX_PIXELS)."""
    limit = resolve_max_pixels(max_pixels)
    if limit and height * width > limit:
        scale = (limit / (height * width)) ** 0.5
        raise MattingError(
            f"The {name} is {width}×{height} = {height * width / 1e6:.1f} megapixels, above the limit of "
            f"{limit / 1e6:.1f} MP. Downscale it to about {int(width * scale)}×{int(height * scale)} "
            f"or raise the limit (max_pixels=… or the MATTING_MAX_PIXELS environment variable)."
        )


_PREMULTIPLIED = {"La": "LA", "RGBa": "RGBA"}  # PIL converts these only to their straight-alpha form


def _pil_to_array(image: Image.Image, name: str = "image") -> np.ndarray:
    """PIL image → float32 array in [0, 1], H×W or H×W×C, keeping an alpha channel if present.

    Every mode ends in :func:`_array_to_unit_float`, the same range / NaN check as numpy input.
    """
    label = image.info.get("_label", name)
    mode = image.mode
    if mode.startswith("I;16"):
        return _array_to_unit_float(np.asarray(image).astype(np.uint16), name, label)
    if mode == "I" or mode.startswith("I;"):  # 32-bit integers
        try:
            array = np.asarray(image.convert("I") if mode != "I" else image).astype(np.int64)
        except Exception as exc:  # noqa: BLE001
            raise MattingError(f"The {label} has the image mode {mode!r}, which cannot be read ({exc}).") from None
        low, high = int(array.min(initial=0)), int(array.max(initial=0))
        if low < 0 or high > 65535:
            raise MattingError(
                f"The {label} is a 32-bit integer image with values in [{low}, {high}]; "
                "integer images must lie in 0…255 (8-bit) or 0…65535 (16-bit)."
            )
        return _array_to_unit_float(array.astype(np.uint16 if high > 255 else np.uint8), name, label)
    if mode == "F":
        return _array_to_unit_float(np.asarray(image, dtype=np.float32), name, label)
    if mode not in ("L", "LA", "RGB", "RGBA"):
        try:
            if mode in _PREMULTIPLIED:
                image = image.convert(_PREMULTIPLIED[mode])
            else:
                has_alpha = "A" in mode.upper() or "transparency" in image.info
                image = image.convert("RGBA" if has_alpha else "RGB")
        except Exception as exc:  # noqa: BLE001 - a mode PIL cannot convert
            raise MattingError(
                f"The {label} has the image mode {mode!r}, which cannot be converted to RGB ({_shown(str(exc), 120)})."
            ) from None
    return _array_to_unit_float(np.asarray(image), name, label)


def _array_to_unit_float(array: np.ndarray, name: str, what: str | None = None) -> np.ndarray:
    """The one range check for pixel data (numpy input and decoded images alike) → float32 in [0, 1].

    ``what`` names the data in messages (default: "<name> array"; a decoded file passes its label)."""
    what = what or f"{name} array"
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return array.astype(np.float32)
    if kind == "u" and size == 1:
        return array.astype(np.float32) / 255.0
    if kind == "u" and size == 2:
        return array.astype(np.float32) / 65535.0
    if kind in "iu":
        if array.min(initial=0) < 0 or array.max(initial=0) > 255:
            raise MattingError(
                f"The {what} has integer values outside 0…255 (dtype {array.dtype}); "
                "use uint8 (0…255), uint16 (0…65535) or float in [0, 1]."
            )
        return array.astype(np.float32) / 255.0
    if kind == "f":
        finite = np.isfinite(array)
        if not finite.all():
            bad = int(array.size - np.count_nonzero(finite))
            raise MattingError(f"The {what} contains {bad} NaN or infinite values; all values must be finite.")
        del finite
        low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if low < -1e-3 or high > 1 + 1e-3:
            hint = " (it looks like 0…255: divide by 255)" if high <= 255 and low >= 0 else ""
            raise MattingError(
                f"The {what} has float values in [{low:.3g}, {high:.3g}]; float inputs must lie in [0, 1]{hint}."
            )
        return np.clip(array, 0.0, 1.0).astype(np.float32)
    raise MattingError(f"The {what} has dtype {array.dtype}; expected uint8, uint16, bool or float.")


def _to_unit_array(source, name: str, max_pixels: int | None) -> np.ndarray:
    """Any accepted source → float32 array in [0, 1] (H×W or H×W×C), size-checked."""
    if isinstance(source, np.ndarray):
        source = np.asarray(source)  # subclasses (np.matrix, masked arrays) as plain arrays
        if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
            raise MattingError(
                f"The {name} array has shape {source.shape}; expected H×W, H×W×1, H×W×3 or H×W×4."
            )
        check_pixels(source.shape[0], source.shape[1], name, max_pixels)
        array = _array_to_unit_float(source, name)
    elif isinstance(source, Image.Image):
        array = _pil_to_array(_decode(source, name, max_pixels), name)
    elif isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        array = _pil_to_array(_decode(_open_pil(source, name, max_pixels), name, max_pixels), name)
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


