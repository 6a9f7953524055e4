"""Is this background plate really the photo's background? Cheap checks with readable warnings.

A background-matting method (BGMv2) takes the photo and a second shot of the same scene without the
subject, from the same camera position. The commonest misuse is a plate that is not that: another
size, a moved camera, another scene, or the photo itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..io import describe_size
from ..visualise import colourise_error

# A pixel "differs" when its mean absolute RGB difference exceeds this (≈ 25 grey levels: above
# sensor noise and JPEG artefacts, below most subject/background contrasts).
DIFFERENCE_THRESHOLD = 0.1
MOSTLY_DIFFERENT = 0.85  # the subject rarely fills more than this fraction of a frame
BARELY_DIFFERENT = 0.002  # below this there is no subject to cut out
SHIFT_TOLERANCE_PX = 2.0
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


def _shift(photo: np.ndarray, plate: np.ndarray) -> tuple[float, float]:
    """Global translation of the plate against the photo by phase correlation (in the given pixels)."""
    grey_photo = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float64)
    grey_plate = cv2.cvtColor(plate, cv2.COLOR_RGB2GRAY).astype(np.float64)
    window = cv2.createHanningWindow(grey_photo.shape[::-1], cv2.CV_64F)
    (dx, dy), _response = cv2.phaseCorrelate(grey_photo, grey_plate, window)
    return float(dx), float(dy)


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
    dx, dy = _shift(small_photo, small_plate)
    check = PlateCheck(difference, changed, (dx * scale, dy * scale))
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
    if max(abs(dx), abs(dy)) * scale > SHIFT_TOLERANCE_PX and changed <= MOSTLY_DIFFERENT:
        check.warnings.append(
            f"The plate looks shifted by about ({dx * scale:+.0f}, {dy * scale:+.0f}) pixels against the photo "
            "(the camera moved between the shots). Background matting needs the camera fixed; align the plate "
            "first or shoot both from a tripod."
        )
    return check
