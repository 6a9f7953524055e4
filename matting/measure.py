"""Measuring a run: peak resident memory above the level at entry (numpy, torch, numba alike)."""
from __future__ import annotations

import resource
import threading


def rss_bytes() -> int:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class PeakMemory:
    """Peak resident memory above the level at entry.

    Exact when the run sets a new high for the process (``ru_maxrss``); otherwise sampled every
    ``interval`` seconds. The interval is long on purpose: each wake-up takes the GIL from the solver,
    and on a loaded machine every hand-back can cost the solver a scheduler time slice.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_bytes = 0

    def __enter__(self):
        self._baseline = rss_bytes()
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._peak = self._baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        peak = max(self._peak, rss_bytes())
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss > self._maxrss_before:  # the process reached a new high inside the run: exact peak
            peak = max(peak, maxrss)
        self.peak_bytes = max(0, peak - self._baseline)
        return False
