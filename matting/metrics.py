"""Matting error metrics as used by alphamatting.com (Rhemann et al. 2009) and Composition-1k (Xu et al. 2017).

All metrics take alphas as float arrays in [0, 1] and are computed over a region: the unknown pixels of
a trimap (value 128), or a given boolean mask, or the whole image. Names carry their scaling:

* ``sad``  — sum of absolute differences, **in thousands** (Σ|α − α*| / 1000).
* ``mse``  — mean squared error over the region, **× 10³** (as Composition-1k tables print it).
* ``grad`` — gradient error, **in thousands**: Σ(‖∇α‖ − ‖∇α*‖)² / 1000 with first-derivative-of-Gaussian
  filters, σ = 1.4.
* ``conn`` — connectivity error, **in thousands**, threshold step 0.1, θ = 0.15, 4-connectivity.

These follow the MATLAB evaluation code released with Deep Image Matting (compute_sad_loss,
compute_mse_loss, compute_gradient_loss with gaussgradient, compute_connectivity_error). Known
differences from that reference:

* The MATLAB code reads 8-bit PNGs and divides by 255; here the caller's float alpha is used as given
  (identical for 8-bit inputs).
* MATLAB's ``imfilter(..., 'replicate', 'conv')`` is reproduced with ``scipy.ndimage.convolve`` in
  ``'nearest'`` mode; results agree to floating-point rounding.
* MATLAB's ``bwconncomp`` picks the first of several equally large components; ``scipy.ndimage.label``
  orders components differently, so with exact ties in size a different component may be chosen (rare on
  real mattes; the error then differs only where the tied components lie).
* The connectivity thresholds are 0, 0.1, …, 1 computed as k/10 (MATLAB's ``0:0.1:1`` gives the same
  doubles up to rounding); with 8-bit alphas (k/255) no pixel lies exactly on a threshold other than 0 and 1.
* alphamatting.com itself ranks by its own server-side evaluation on 0…255 alphas; the SAD here is
  identical to its SAD / 255 / 1000 but its gradient and connectivity scaling differ, so compare numbers
  only with papers that use the Composition-1k convention.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .errors import MattingError

METRIC_NAMES = ("sad", "mse", "grad", "conn")
METRIC_UNITS = {"sad": "SAD (×10³)", "mse": "MSE (×10⁻³)", "grad": "Grad (×10³)", "conn": "Conn (×10³)"}


def region_from(trimap=None, mask=None, shape=None) -> np.ndarray:
    """Boolean evaluation region: trimap == 128, or ``mask``, or everything."""
    if trimap is not None and mask is not None:
        raise MattingError("Give either a trimap or a mask for the evaluation region, not both.")
    if trimap is not None:
        return np.asarray(trimap) == 128
    if mask is not None:
        return np.asarray(mask, bool)
    return np.ones(shape, bool)


def _check(pred, gt, region):
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape or region.shape != gt.shape:
        raise MattingError(
            f"Alpha {pred.shape}, ground truth {gt.shape} and evaluation region {region.shape} must have the same shape."
        )
    return pred, gt


def sad(pred, gt, trimap=None, mask=None) -> float:
    region = region_from(trimap, mask, np.shape(gt))
    pred, gt = _check(pred, gt, region)
    return float(np.abs(pred - gt)[region].sum() / 1000.0)


def mse(pred, gt, trimap=None, mask=None) -> float:
    region = region_from(trimap, mask, np.shape(gt))
    pred, gt = _check(pred, gt, region)
    count = region.sum()
    if count == 0:
        return 0.0
    return float(((pred - gt) ** 2)[region].sum() / count * 1000.0)


def _gaussian_derivative_kernel(sigma: float, epsilon: float = 1e-2) -> np.ndarray:
    """The x-derivative-of-Gaussian kernel of MATLAB's ``gaussgradient`` (unit L2 norm)."""
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-offsets**2 / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dgauss = -offsets * gauss / sigma**2
    kernel = np.outer(gauss, dgauss)  # rows: Gaussian along y, columns: derivative along x
    return kernel / math.sqrt((kernel**2).sum())


def gradient_magnitude(alpha: np.ndarray, sigma: float = 1.4) -> np.ndarray:
    kernel_x = _gaussian_derivative_kernel(sigma)
    gx = ndimage.convolve(alpha, kernel_x, mode="nearest")
    gy = ndimage.convolve(alpha, kernel_x.T, mode="nearest")
    return np.sqrt(gx**2 + gy**2)


def grad(pred, gt, trimap=None, mask=None, sigma: float = 1.4) -> float:
    region = region_from(trimap, mask, np.shape(gt))
    pred, gt = _check(pred, gt, region)
    difference = (gradient_magnitude(pred, sigma) - gradient_magnitude(gt, sigma)) ** 2
    return float(difference[region].sum() / 1000.0)


_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])


def connectivity_levels(pred: np.ndarray, gt: np.ndarray, step: float = 0.1) -> np.ndarray:
    """For each pixel, the last threshold at which it was still in the largest common connected region."""
    thresholds = np.arange(0, round(1 / step) + 1) * step
    level = np.full(gt.shape, -1.0)
    for previous, threshold in zip(thresholds[:-1], thresholds[1:]):
        common = (pred >= threshold) & (gt >= threshold)
        labels, count = ndimage.label(common, structure=_FOUR_CONNECTED)
        largest = np.zeros(gt.shape, bool)
        if count:
            sizes = np.bincount(labels.ravel())[1:]
            largest = labels == (int(np.argmax(sizes)) + 1)
        level[(level == -1) & ~largest] = previous
    level[level == -1] = 1.0
    return level


def conn(pred, gt, trimap=None, mask=None, step: float = 0.1, theta: float = 0.15) -> float:
    region = region_from(trimap, mask, np.shape(gt))
    pred, gt = _check(pred, gt, region)
    level = connectivity_levels(pred, gt, step)
    pred_d, gt_d = pred - level, gt - level
    pred_phi = 1.0 - pred_d * (pred_d >= theta)
    gt_phi = 1.0 - gt_d * (gt_d >= theta)
    return float(np.abs(pred_phi - gt_phi)[region].sum() / 1000.0)


def all_metrics(pred, gt, trimap=None, mask=None) -> dict[str, float]:
    """{'sad', 'mse', 'grad', 'conn'} over the trimap's unknown region (or mask, or everything)."""
    return {
        "sad": sad(pred, gt, trimap, mask),
        "mse": mse(pred, gt, trimap, mask),
        "grad": grad(pred, gt, trimap, mask),
        "conn": conn(pred, gt, trimap, mask),
    }


def error_map(pred, gt) -> np.ndarray:
    """|α − α*| as float32 H×W."""
    return np.abs(np.asarray(pred, np.float32) - np.asarray(gt, np.float32))
