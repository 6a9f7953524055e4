"""Clips with a known alpha: a foreground moving over a fixed background, for tests, benchmarks,
notebooks and the app's example.

``I_t = α_t F_t + (1 − α_t) B`` with F and α shifted by a whole number of pixels per frame (no
resampling: the ground truth is exact), B fixed (so B is also the clip's background plate). The
clip is encoded with H.264 (what a camera gives); the ground-truth alpha losslessly with FFV1, so it
decodes to exactly the 8-bit matte that was composited.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import composite, io
from ..synthetic import smooth_texture, soft_disc_alpha
from . import codec


@dataclass(frozen=True)
class Clip:
    video: Path
    alpha: Path  # ground truth, FFV1 grey (lossless)
    plate: Path  # the fixed background, PNG
    frames: int
    fps: float
    width: int
    height: int


def shifted(array: np.ndarray, dx: int, dy: int = 0) -> np.ndarray:
    """``array`` moved by (dx, dy) whole pixels, zeros where it came from outside."""
    out = np.zeros_like(array)
    height, width = array.shape[:2]
    src_x, dst_x = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
    src_y, dst_y = (slice(0, height - dy), slice(dy, height)) if dy >= 0 else (slice(-dy, height), slice(0, height + dy))
    out[dst_y, dst_x] = array[src_y, src_x]
    return out


def positions(frames: int, amplitude: int) -> list[int]:
    """Horizontal offsets: there and back (a triangle wave), whole pixels."""
    if frames <= 1:
        return [0] * frames
    phase = np.linspace(0, 2, frames)
    return [int(round(amplitude * (1 - abs(1 - p) * 2))) for p in phase]


def frames_and_alphas(foreground, alpha, background, frames: int, amplitude: int):
    """Generator of (uint8 image, uint8 alpha) per frame; everything is 8-bit exact."""
    alpha8 = io.to_uint8(alpha)
    for dx in positions(frames, amplitude):
        a8 = shifted(alpha8, dx)
        a = a8.astype(np.float32) / 255.0
        image = composite.over(shifted(foreground, dx), a, background)
        yield io.to_uint8(image), a8


def write_clip(folder, foreground, alpha, background, frames: int = 12, fps: float = 24, amplitude: int | None = None,
               stem: str = "clip", kind: str = "h264", audio_from=None) -> Clip:
    folder = Path(folder)
    height, width = alpha.shape
    amplitude = max(1, width // 6) if amplitude is None else amplitude
    video = folder / f"{stem}{codec.KINDS[kind].suffix}"
    gt = folder / f"{stem}_alpha.mkv"
    codec.write_video(video, (image for image, _ in frames_and_alphas(foreground, alpha, background, frames, amplitude)),
                      kind, fps, audio_from=audio_from)
    codec.write_video(gt, (a for _, a in frames_and_alphas(foreground, alpha, background, frames, amplitude)),
                      "ffv1_gray", fps)
    plate = io.save_png(folder / f"{stem}_plate.png", background)
    return Clip(video, gt, plate, frames, float(fps), width, height)


def disc_clip(folder, width: int = 64, height: int = 48, frames: int = 12, fps: float = 24, **kwargs) -> Clip:
    """A soft orange disc moving over a smooth blue-green background."""
    alpha = soft_disc_alpha(height, width, radius_fraction=0.3, edge=3.0)
    foreground = smooth_texture(height, width, (0.9, 0.5, 0.2), seed=1)
    background = smooth_texture(height, width, (0.2, 0.45, 0.6), seed=2)
    return write_clip(folder, foreground, alpha, background, frames, fps, **kwargs)


def example_clip(folder, side: int = 256, frames: int = 36, fps: float = 12) -> Clip:
    """The app's example: scikit-image's astronaut (her matte and colours from the image examples)
    moving over the rocket photo, ``side``² pixels. Public-domain material only (see ui/examples.py)."""
    import cv2

    from ..ui.examples import ensure_examples

    folder = Path(folder)
    done = folder / f"astronaut_{side}_alpha.mkv"
    if done.exists() and (folder / f"astronaut_{side}.mp4").exists():
        return Clip(folder / f"astronaut_{side}.mp4", done, folder / f"astronaut_{side}_plate.png", frames, fps,
                    side, side)
    example = ensure_examples()[-1]  # astronaut over the rocket: true alpha and plate
    from ..runner import estimate_foreground

    image = io.load_image(example.photo)
    alpha = io.load_alpha(example.ground_truth)
    foreground = estimate_foreground(image, alpha, "multilevel")
    plate = io.load_image(example.plate)
    resize = lambda a: cv2.resize(a, (side, side), interpolation=cv2.INTER_AREA)  # noqa: E731
    return write_clip(folder, resize(foreground), np.clip(resize(alpha), 0, 1), resize(plate), frames, fps,
                      amplitude=side // 5, stem=f"astronaut_{side}")
