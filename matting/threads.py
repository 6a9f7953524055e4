"""How many threads the compute libraries use: one policy for torch, onnxruntime and numba.

``MATTING_THREADS`` if set; else 1 on a machine with at most 2 cores, and half the cores, at most 8,
above that. Measured on 2 shared cores (``python -m matting.bench models`` and ``end_to_end``): one
thread beat two by up to 6× for the networks and by 4–10× for pymatting's numba kernels (the
multi-level foreground estimate: 32 ms at 1 thread, 145–346 ms at 2, 512² photo) — with both cores
busy, every parallel region waits for a worker that the scheduler has handed to another process, and
a Space shares its two cores with the web server. Above 2 cores, hyper-threads and the caller's own
threads keep the rest busy; beyond 8 the convolutions of these networks scale poorly.

torch and onnxruntime get the count per call (:mod:`matting.models.accelerate`); numba gets it
through :func:`limit_numba` (its thread count is per calling thread, so every caller sets it), with
``NUMBA_NUM_THREADS`` as numba's own upper bound left as the user set it. Torch-free.
"""
from __future__ import annotations

import os

from .errors import MattingError

__all__ = ["limit_numba", "threads"]


def threads() -> int:
    """Threads for one forward or one numba kernel (see the module docstring)."""
    value = os.environ.get("MATTING_THREADS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise MattingError(f"MATTING_THREADS={value!r} is not a whole number.") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if cores <= 2 else min(8, cores // 2)


def limit_numba() -> int:
    """Set numba's thread count for parallel kernels called from this thread to :func:`threads`
    (capped by numba's pool size); returns the count. Cheap; call it before pymatting's kernels."""
    import numba

    count = min(threads(), numba.config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != count:
        numba.set_num_threads(count)
    return count
