"""Download progress as one callback, ``on_progress(done_bytes, total_bytes)`` (total ``None`` when the
server does not say), that every consumer shares: a tqdm bar on the terminal (:class:`TqdmProgress`),
the app's ``gr.Progress`` (``matting.ui.downloads``) or anything a caller passes to ``fetch``.

:func:`reporting` lets code far above the download (an app handler around a method run) receive the
progress of any checkpoint fetched on first use inside it, without threading a parameter through every
adapter. :class:`Meter` turns the callback's numbers into words: bytes, speed and time left.
"""
from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable

from ._fs import human_bytes, progress_bar

OnProgress = Callable[[int, "int | None"], None]

# A factory, entry -> on_progress, set by reporting() for the code that runs inside it.
_sink: contextvars.ContextVar = contextvars.ContextVar("matting_weights_progress", default=None)


@contextlib.contextmanager
def reporting(factory):
    """Inside this block, every checkpoint fetched on first use (:func:`matting.weights.require`)
    reports to ``factory(entry)``, a callable ``(done_bytes, total_bytes)`` (or ``None`` for none)."""
    token = _sink.set(factory)
    try:
        yield
    finally:
        _sink.reset(token)


def reporter_for(item) -> OnProgress | None:
    """The callback :func:`reporting` asks for ``item``, or ``None`` outside any such block."""
    factory = _sink.get()
    return factory(item) if factory is not None else None


def combine(*callbacks) -> OnProgress:
    """One callback calling each of ``callbacks`` (``None`` entries are skipped); a consumer that
    fails is ignored, so that a broken progress display never breaks a download."""
    chosen = [c for c in callbacks if c is not None]

    def report(done: int, total: int | None) -> None:
        for callback in chosen:
            try:
                callback(done, total)
            except Exception:  # noqa: BLE001 - progress is a courtesy
                pass

    return report


class TqdmProgress:
    """``on_progress`` drawing a byte-counting tqdm bar on stderr (created on the first call)."""

    def __init__(self, description: str):
        self.description = description
        self.bar = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            self.bar = progress_bar(total, done, self.description, True)
            return
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Meter:
    """Bytes, speed and time left of one download, in words, from ``on_progress`` calls."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.started = None
        self.first_done = 0
        self.done = 0
        self.total = None

    def update(self, done: int, total: int | None) -> None:
        now = self.clock()
        if self.started is None or done < self.done:  # first call, or a restart from zero
            self.started, self.first_done = now, done
        self.done, self.total = done, total

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None

    @property
    def speed(self) -> float | None:
        """Bytes per second since the first call (None until there is something to say)."""
        elapsed = self.clock() - self.started if self.started is not None else 0
        moved = self.done - self.first_done
        return moved / elapsed if elapsed > 0.2 and moved > 0 else None

    @property
    def seconds_left(self) -> float | None:
        speed = self.speed
        if not speed or not self.total:
            return None
        return max(0.0, (self.total - self.done) / speed)

    def text(self) -> str:
        """E.g. '12.3 of 26.3 MB · 4.1 MB/s · 4 s left'."""
        amount = (f"{human_bytes(self.done)} of {human_bytes(self.total)}" if self.total
                  else human_bytes(self.done))
        parts = [amount]
        if self.speed:
            parts.append(f"{human_bytes(int(self.speed))}/s")
        left = self.seconds_left
        if left is not None:
            parts.append(f"{_duration(left)} left")
        return " · ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
