"""Is this background plate really the photo's background? Cheap checks with readable warnings.

A background-matting method (BGMv2) takes the photo and a second shot of the same scene without the
subject, from the same camera position. The commonest misuse is a plate that is not that: another
size, a moved camera, another scene, or the photo itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .io import describe_size
from .visualise import colourise_error

# A pixel "differs" when its mean absolute RGB difference exceeds this (≈ 25 grey levels: above
# sensor noise and JPEG artefacts, below most subject/background contrasts).
DIFFERENCE_THRESHOLD = 0.1
MOSTLY_DIFFERENT = 0.85  # the subject rarely fills more than this fraction of a frame
BARELY_DIFFERENT = 0.002  # below this there is no subject to cut out
SHIFT_TOLERANCE_PX = 2.0
BORDER_MISMATCH = 0.05  # median |photo − plate| along the border (≈ 13 grey levels: above noise and JPEG)
ANALYSIS_SIDE = 512  # checks run on a downscaled copy: fast, and robust to noise


@dataclass
class PlateCheck:
    difference: np.ndarray | None  # float32 H×W mean |photo − plate| in [0, 1] (at analysis size)
    changed_fraction: float | None = None
    shift: tuple[float, float] | None = None  # (dx, dy) in photo pixels
    warnings: list[str] = field(default_factory=list)

    @property
    def preview(self) -> np.ndarray | None:
        """|photo − plate| colour-mapped (0 → black, ≥ 0.5 → bright)."""
        if self.difference is None:
            return None
        return colourise_error(self.difference, vmax=0.5)


def _small(image: np.ndarray) -> np.ndarray:
    scale = min(1.0, ANALYSIS_SIDE / max(image.shape[:2]))
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _border(shape, fraction: float = 0.08) -> dict[str, tuple[slice, slice]]:
    """The four strips along the image's edges, where a photo usually shows background."""
    height, width = shape[:2]
    band_y, band_x = max(2, round(height * fraction)), max(2, round(width * fraction))
    return {"top": (slice(0, band_y), slice(None)), "bottom": (slice(height - band_y, None), slice(None)),
            "left": (slice(None), slice(0, band_x)), "right": (slice(None), slice(width - band_x, None))}


def _border_difference(photo: np.ndarray, plate: np.ndarray) -> float:
    """Median |photo − plate| along the border: ~0 for a matching plate even where the subject
    reaches the edge (the median ignores it), large for another scene or exposure."""
    difference = np.abs(photo - plate).mean(axis=2)
    return float(np.median(np.concatenate([difference[strip].ravel() for strip in _border(photo.shape).values()])))


def _shift(photo: np.ndarray, plate: np.ndarray) -> tuple[float, float] | None:
    """Global translation (dx, dy) of the plate against the photo, or None when there is none to speak of.

    Phase correlation proposes a shift; it is believed only if moving the plate by it removes most of
    the difference along the border, because on smooth scenes the proposal alone is noise.
    """
    grey_photo = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float64)
    grey_plate = cv2.cvtColor(plate, cv2.COLOR_RGB2GRAY).astype(np.float64)
    window = cv2.createHanningWindow(grey_photo.shape[::-1], cv2.CV_64F)
    (dx, dy), _response = cv2.phaseCorrelate(grey_photo, grey_plate, window)
    if max(abs(dx), abs(dy)) < 0.5:
        return None
    moved = cv2.warpAffine(plate, np.float32([[1, 0, -dx], [0, 1, -dy]]), plate.shape[1::-1],
                           borderMode=cv2.BORDER_REPLICATE)
    before, after = _border_difference(photo, plate), _border_difference(photo, moved)
    return (float(dx), float(dy)) if before > 0.005 and after < 0.5 * before else None


def check_plate(photo: np.ndarray, plate: np.ndarray) -> PlateCheck:
    """Compare a photo and a plate (float32 H×W×3 in [0, 1]) and say what looks wrong."""
    if photo.shape != plate.shape:
        ratio_photo = photo.shape[1] / photo.shape[0]
        ratio_plate = plate.shape[1] / plate.shape[0]
        hint = (" It has the same shape at another scale: resize it to the photo's size."
                if abs(ratio_photo - ratio_plate) < 0.01 * ratio_photo else
                " Its aspect ratio differs too, so it is probably not the same shot.")
        return PlateCheck(None, warnings=[
            f"The plate is {describe_size(plate.shape)} but the photo is {describe_size(photo.shape)} "
            f"(width×height); a background plate must be the same shot, the same size, without the subject.{hint}"
        ])
    small_photo, small_plate = _small(photo), _small(plate)
    difference = np.abs(small_photo - small_plate).mean(axis=2).astype(np.float32)
    changed = float((difference > DIFFERENCE_THRESHOLD).mean())
    scale = photo.shape[1] / small_photo.shape[1]
    shift = _shift(small_photo, small_plate) if changed <= MOSTLY_DIFFERENT else None
    check = PlateCheck(difference, changed, None if shift is None else (shift[0] * scale, shift[1] * scale))
    if changed > MOSTLY_DIFFERENT:
        check.warnings.append(
            f"The plate differs from the photo almost everywhere ({changed:.0%} of the pixels): it does not "
            "look like this photo's background. Use a shot of the same scene from the same position, "
            "with the same exposure, just without the subject."
        )
    elif changed < BARELY_DIFFERENT:
        check.warnings.append(
            f"The plate is practically identical to the photo ({changed:.2%} of the pixels differ): there is "
            "no subject in front of it, so the matte will be empty. Upload the shot without the subject as "
            "the plate, not the photo itself."
        )
    if check.shift is not None and max(map(abs, check.shift)) > SHIFT_TOLERANCE_PX:
        dx, dy = check.shift
        check.warnings.append(
            f"The plate looks shifted by about ({dx:+.0f}, {dy:+.0f}) pixels against the photo (the camera "
            "moved between the shots). Background matting needs the camera fixed; align the plate first or "
            "shoot both from a tripod."
        )
    elif changed <= MOSTLY_DIFFERENT and _border_difference(small_photo, small_plate) > BORDER_MISMATCH:
        check.warnings.append(
            "Along the image border, where a photo normally shows only background, the plate does not match "
            "the photo: it is another scene, or the exposure or white balance changed between the shots. "
            "Shoot the plate right after the photo with exposure and white balance locked."
        )
    return check
