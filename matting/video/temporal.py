"""Temporal errors of a matted clip.

With a ground-truth alpha video (Erofeev, Gitman, Vatolin, Fedorov, Wang: *Perceptually Motivated
Benchmark for Video Matting*, BMVC 2015 — the videomatting.com benchmark):

* per frame, ``sad`` (Σ|α − α*| / 1000, as :func:`matting.metrics.sad`) and ``mse`` (mean (α − α*)² × 10³,
  as :func:`matting.metrics.mse`), over the whole frame;
* ``dtssd`` — the error of the temporal derivative: for each pair of consecutive frames
  sqrt( mean_p ((α_t − α_{t−1}) − (α*_t − α*_{t−1}))² ), **× 10²**, averaged over the pairs. A matte
  that is wrong but wrong the same way in every frame scores 0; flicker scores high;
* ``messddt`` — motion-aware change of the error: the ground truth's optical flow (Farnebäck, OpenCV)
  takes each pixel p of frame t to q in frame t−1, and per pair
  mean_p | (α_t(p) − α*_t(p))² − (α_{t−1}(q) − α*_{t−1}(q))² |, **× 10³**, averaged over the pairs.
  An error that moves with the subject scores 0; an error that appears and disappears scores high.

The paper sums over the pixels; here both are means over the pixels (as Robust Video Matting's
evaluation code does for dtSSD), so that clips of different sizes compare, and scaled as stated.
Lower is better for all of them.

Without ground truth, :class:`Flicker` gives the mean |α_t − α_{t−1}| over the pixels whose image
barely changes between the two frames (mean |I_t − I_{t−1}| over the channels below
:data:`STATIC_THRESHOLD`): there the matte should not change either, so what changes is flicker.
Reported **× 10³** (a value of 10 means alpha moves by 1 % of its range per frame, on average, where
nothing moves).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import metrics

STATIC_THRESHOLD = 2.0 / 255.0  # a pixel is static when its colour changes by less than this (mean over RGB)
UNITS = {"sad": "SAD (×10³)", "mse": "MSE (×10⁻³)", "dtssd": "dtSSD (×10⁻²)", "messddt": "MESSDdt (×10⁻³)",
         "flicker": "flicker (×10⁻³)"}


def dtssd_pair(pred_t, pred_prev, gt_t, gt_prev) -> float:
    """dtSSD of one pair of frames, × 10² (see the module docstring)."""
    difference = (np.asarray(pred_t, np.float64) - pred_prev) - (np.asarray(gt_t, np.float64) - gt_prev)
    return float(np.sqrt(np.mean(difference ** 2)) * 1e2)


def _flow_back(gt_t: np.ndarray, gt_prev: np.ndarray) -> np.ndarray:
    """Flow from frame t to frame t−1 of the ground truth (H×W×2, x then y)."""
    import cv2

    return cv2.calcOpticalFlowFarneback(
        (gt_t * 255 + 0.5).astype(np.uint8), (gt_prev * 255 + 0.5).astype(np.uint8), None,
        pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def messddt_pair(pred_t, pred_prev, gt_t, gt_prev) -> float:
    """MESSDdt of one pair of frames, × 10³ (see the module docstring)."""
    import cv2

    gt_t = np.asarray(gt_t, np.float32)
    gt_prev = np.asarray(gt_prev, np.float32)
    flow = _flow_back(gt_t, gt_prev)
    height, width = gt_t.shape
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
    warp = lambda a: cv2.remap(np.asarray(a, np.float32), map_x, map_y, cv2.INTER_NEAREST,  # noqa: E731
                               borderMode=cv2.BORDER_REPLICATE)
    error_t = (np.asarray(pred_t, np.float32) - gt_t) ** 2
    error_prev = (warp(pred_prev) - warp(gt_prev)) ** 2
    return float(np.mean(np.abs(error_t - error_prev)) * 1e3)


def static_mask(image_t: np.ndarray, image_prev: np.ndarray, threshold: float = STATIC_THRESHOLD) -> np.ndarray:
    return np.abs(np.asarray(image_t, np.float32) - image_prev).mean(axis=2) < threshold


def flicker_value(alpha_t, alpha_prev, image_t, image_prev, threshold: float = STATIC_THRESHOLD) -> float | None:
    """Mean |α_t − α_{t−1}| × 10³ over the static pixels; None when no pixel is static."""
    mask = static_mask(image_t, image_prev, threshold)
    if not mask.any():
        return None
    return float(np.abs(np.asarray(alpha_t, np.float32) - alpha_prev)[mask].mean() * 1e3)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


class Flicker:
    """Streaming flicker: :meth:`update` with each frame (float image) and its matte, in order."""

    def __init__(self, threshold: float = STATIC_THRESHOLD):
        self.threshold = threshold
        self.values: list[float | None] = []  # one per frame; None for the first (and frames without static pixels)
        self._previous = None

    def update(self, image: np.ndarray, alpha: np.ndarray) -> float | None:
        value = None
        if self._previous is not None:
            value = flicker_value(alpha, self._previous[1], image, self._previous[0], self.threshold)
        self.values.append(value)
        self._previous = (image, alpha)
        return value

    @property
    def mean(self) -> float | None:
        return _mean(self.values)


@dataclass
class GroundTruthErrors:
    """Streaming errors against a ground-truth alpha: :meth:`update` per frame, in order."""

    sad: list = field(default_factory=list)
    mse: list = field(default_factory=list)
    dtssd: list = field(default_factory=list)  # one per pair (frame t against t−1), from the second frame
    messddt: list = field(default_factory=list)
    _previous: tuple | None = None

    def update(self, alpha: np.ndarray, gt: np.ndarray) -> None:
        self.sad.append(metrics.sad(alpha, gt))
        self.mse.append(metrics.mse(alpha, gt))
        if self._previous is not None:
            self.dtssd.append(dtssd_pair(alpha, self._previous[0], gt, self._previous[1]))
            self.messddt.append(messddt_pair(alpha, self._previous[0], gt, self._previous[1]))
        self._previous = (alpha, gt)

    def summary(self) -> dict:
        return {"sad": _mean(self.sad), "mse": _mean(self.mse), "dtssd": _mean(self.dtssd),
                "messddt": _mean(self.messddt), "units": {k: UNITS[k] for k in ("sad", "mse", "dtssd", "messddt")}}


def sequence_errors(alphas, gts) -> dict:
    """All ground-truth errors of two sequences held in memory (tests, notebooks)."""
    errors = GroundTruthErrors()
    for alpha, gt in zip(alphas, gts):
        errors.update(np.asarray(alpha, np.float32), np.asarray(gt, np.float32))
    return {**errors.summary(), "per_frame": {"sad": errors.sad, "mse": errors.mse, "dtssd": errors.dtssd,
                                              "messddt": errors.messddt}}
