"""Synthetic composites I = αF + (1 − α)B with known α, F and B, for tests, notebooks and examples."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .trimap import from_mask


@dataclass(frozen=True)
class Composite:
    image: np.ndarray  # float32 H×W×3
    alpha: np.ndarray  # float32 H×W
    foreground: np.ndarray  # float32 H×W×3
    background: np.ndarray  # float32 H×W×3

    def trimap(self, band: int = 3) -> np.ndarray:
        """Unknown wherever 0 < α < 1, widened by ``band`` pixels."""
        return from_mask(self.alpha, erode=band, dilate=band, soft_margin=1e-3)


def smooth_texture(height: int, width: int, base, amplitude: float = 0.08, seed: int = 0) -> np.ndarray:
    """A gently varying colour field around ``base`` (stays within one colour line locally)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width] / max(height, width)
    phase = rng.uniform(0, 2 * np.pi, 2)
    wave = np.sin(2 * np.pi * xx + phase[0]) * np.cos(2 * np.pi * yy + phase[1])
    return np.clip(np.asarray(base, np.float32) + amplitude * wave[:, :, None], 0, 1).astype(np.float32)


def soft_disc_alpha(height: int, width: int, radius_fraction: float = 0.3, edge: float = 4.0,
                    hole_fraction: float = 0.0, strands: int = 0, seed: int = 0) -> np.ndarray:
    """A disc with a linear soft edge of ``edge`` pixels, an optional soft hole and thin semi-transparent strands."""
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    cy, cx = height / 2, width / 2
    distance = np.hypot(yy - cy, xx - cx)
    radius = radius_fraction * min(height, width)
    alpha = np.clip((radius - distance) / edge + 0.5, 0, 1)
    if hole_fraction > 0:
        hole_r = hole_fraction * radius
        hole_cx = cx + 0.35 * radius
        hole = np.clip((hole_r - np.hypot(yy - cy, xx - hole_cx)) / edge + 0.5, 0, 1)
        alpha = alpha * (1 - hole)
    rng = np.random.default_rng(seed)
    for _ in range(strands):
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.3, 0.5) * min(height, width)
        t = np.linspace(0, 1, 400)
        sway = 0.15 * length * np.sin(np.pi * t * rng.uniform(1, 2))
        ys = cy + np.sin(angle) * (radius + t * length) + np.cos(angle) * sway
        xs = cx + np.cos(angle) * (radius + t * length) - np.sin(angle) * sway
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        strand = np.zeros_like(alpha)
        strand[ys[inside].astype(int), xs[inside].astype(int)] = 0.7
        alpha = np.maximum(alpha, strand)
    return alpha.astype(np.float32)


def make_composite(height: int = 96, width: int = 96, foreground_colour=(0.85, 0.45, 0.2),
                   background_colour=(0.15, 0.35, 0.75), seed: int = 0, **alpha_kwargs) -> Composite:
    alpha = soft_disc_alpha(height, width, seed=seed, **alpha_kwargs)
    foreground = smooth_texture(height, width, foreground_colour, seed=seed)
    background = smooth_texture(height, width, background_colour, seed=seed + 1)
    a = alpha[:, :, None]
    image = (a * foreground + (1 - a) * background).astype(np.float32)
    return Composite(image=image, alpha=alpha, foreground=foreground, background=background)
