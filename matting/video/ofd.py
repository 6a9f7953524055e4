"""One-frame delay (OFD): MODNet's post-processing against flicker (Ke et al., AAAI 2022, Sec. 3.4).

A per-frame matting network decides each frame on its own, so a pixel it is unsure about can flip
between foreground and background from one frame to the next: flicker. MODNet's observation is that a
flicker is almost always a one-frame event: the frames before and after agree, the frame in between
does not. With the mattes α_{t−1}, α_t, α_{t+1} of three consecutive frames, a pixel i flickers when

    |α_{t−1}(i) − α_{t+1}(i)| ≤ ξ   and   |α_t(i) − α_{t−1}(i)| > ξ   and   |α_t(i) − α_{t+1}(i)| > ξ,

and there α_t(i) is replaced by (α_{t−1}(i) + α_{t+1}(i)) / 2. Everything else is left alone, so a
static clip is unchanged and real motion (where the neighbours disagree) is not smeared. Frame t can
only be finished when frame t+1 has been matted: the output is **one frame late**. The first and the
last frame have one neighbour only and pass through unchanged.

ξ is :data:`DEFAULT_THRESHOLD` (alpha in [0, 1]); the paper names the threshold without a value,
0.1 is a tenth of the alpha range (well above the noise of an 8-bit matte).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Iterable

import numpy as np

DEFAULT_THRESHOLD = 0.1


def flicker_mask(previous: np.ndarray, current: np.ndarray, following: np.ndarray,
                 threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Boolean H×W: the pixels of ``current`` that OFD replaces."""
    return ((np.abs(previous - following) <= threshold) & (np.abs(current - previous) > threshold)
            & (np.abs(current - following) > threshold))


def smooth(previous: np.ndarray, current: np.ndarray, following: np.ndarray,
           threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """``current`` with its flickering pixels replaced by the mean of the two neighbours (a new array)."""
    mask = flicker_mask(previous, current, following, threshold)
    if not mask.any():
        return current
    out = current.copy()
    out[mask] = 0.5 * (previous[mask] + following[mask])
    return out


class OneFrameDelay:
    """Streaming OFD: :meth:`push` the raw matte of each frame (with any payload, e.g. the frame
    itself), get back the finished matte of the frame before; :meth:`flush` returns the last one.

    Holds three mattes at most. With ``enabled=False`` every matte comes back at once, unchanged (the
    same interface, no delay), so callers need no second code path.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, enabled: bool = True):
        self.threshold = float(threshold)
        self.enabled = enabled
        self._window: deque = deque(maxlen=3)  # (raw alpha, payload)
        self._smoothed_previous: np.ndarray | None = None
        self.replaced_pixels = 0

    def push(self, alpha: np.ndarray, payload: Any = None) -> list[tuple[np.ndarray, np.ndarray, Any]]:
        """Returns [(finished alpha, raw alpha, payload)] — empty for the first frame when enabled."""
        if not self.enabled:
            return [(alpha, alpha, payload)]
        self._window.append((alpha, payload))
        if len(self._window) == 1:
            return []
        if len(self._window) == 2:  # the first frame has no predecessor: unchanged
            first, first_payload = self._window[0]
            return [(first, first, first_payload)]
        (before, _), (current, payload_now), (after, _) = self._window
        mask = flicker_mask(before, current, after, self.threshold)
        self.replaced_pixels += int(mask.sum())
        finished = current
        if mask.any():
            finished = current.copy()
            finished[mask] = 0.5 * (before[mask] + after[mask])
        return [(finished, current, payload_now)]

    def flush(self) -> list[tuple[np.ndarray, np.ndarray, Any]]:
        """The last frame (unchanged: it has no successor)."""
        if not self.enabled or not self._window:
            return []
        last, payload = self._window[-1]
        self._window.clear()
        return [(last, last, payload)]


def apply(alphas: Iterable[np.ndarray], threshold: float = DEFAULT_THRESHOLD) -> list[np.ndarray]:
    """OFD over a whole sequence held in memory (for tests and notebooks; the pipeline streams)."""
    delay = OneFrameDelay(threshold)
    out = []
    for alpha in alphas:
        out += [finished for finished, _, _ in delay.push(np.asarray(alpha, np.float32))]
    out += [finished for finished, _, _ in delay.flush()]
    return out
