"""Small deterministic inputs shared by the adapter tests (not fixtures: plain functions)."""
from __future__ import annotations

import numpy as np


def noisy_gradient(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colour gradient with noise: float32 H×W×3 in [0, 1], different for every seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([xx, yy, 0.5 * (xx + yy)], axis=2)
    return np.clip(base + 0.1 * rng.standard_normal((height, width, 3)), 0, 1).astype(np.float32)


def box_trimap(height: int, width: int) -> np.ndarray:
    """Background outside the middle half, unknown inside it, foreground in its middle quarter."""
    trimap = np.zeros((height, width), np.uint8)
    trimap[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = 128
    trimap[3 * height // 8: 5 * height // 8, 3 * width // 8: 5 * width // 8] = 255
    return trimap
