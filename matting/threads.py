"""How many threads the compute libraries use: one policy for torch, onnxruntime and numba.

The count depends on the library, because their thread pools behave differently when the cores are
busy. Measured on 2 cores with 0, 1, 2 and 6 other processes spinning on them (median ms; the same
loops are ``python -m matting.bench threads``)::

    other busy processes on the 2 cores:                       0      1      2      6
    onnxruntime, U²-NetP at 320², 1 thread                    265    443    486    985
    onnxruntime, 2 threads (idle workers not spinning)        165    387    334    642
    torch, six 32-channel 3×3 convolutions at 160², 1 thread   29     34     73    149
    torch, 2 threads                                           23     95     51    381
    numba, pymatting's foreground estimate at 512², 1 thread   32     49     97    171
    numba, 2 threads                                           35     99    124    406

onnxruntime's pool hands out small pieces of work and the calling thread takes what a descheduled
worker has not started, so a second thread never hurt and a busy machine gives the process a larger
share of the cores. torch (OpenMP) and numba split a parallel region into one fixed piece per thread
and wait for the slowest: every region waits for a worker the scheduler gave to another process
(up to 3× slower), and a Space shares its two cores with the web server.

torch at two threads does win when the cores are idle (SIM's matting network at 320²: 0.64 s at two
threads against 1.4 s at one, ``python -m matting.bench models``), so its count follows the machine's
state (:func:`cores_idle`: no other process runnable, little CPU pressure).

So, unless ``MATTING_THREADS`` says otherwise:

* :func:`threads` (numba): 1 on a machine with at most 2 cores, half the cores up to 8 above
  (hyper-threads and the caller's own threads keep the rest busy; beyond 8 the kernels scale poorly);
* :func:`torch_threads`: every core of a machine with at most 2 while :func:`cores_idle`, else as
  :func:`threads`; read at every forward;
* :func:`onnxruntime_threads`: every core on a machine with at most 2, else the same as
  :func:`threads` but at least 2 (fixed per session).

"Cores" are :func:`available_cores`: the CPUs this process may run on, fewer where a container's CPU
quota (cgroup ``cpu.max``) allows less — a 2-CPU Space on a 64-core host is a 2-core machine.

torch and onnxruntime get the count per call or per session (:mod:`matting.models.accelerate`,
:mod:`matting.models.runtime`); numba gets it through :func:`limit_numba` (its thread count is per
calling thread, so every caller sets it), with ``NUMBA_NUM_THREADS`` as numba's own upper bound left
as the user set it. Torch-free.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import MattingError

__all__ = ["available_cores", "cores_idle", "limit_numba", "onnxruntime_threads", "solver_threads", "threads",
           "torch_threads"]

# cgroup v2, then v1: "<quota> <period>" (or "max <period>"), and quota / period in two files.
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
# CPU pressure (PSI): the container's own first, then the machine's.
CPU_PRESSURE_FILES = (Path("/sys/fs/cgroup/cpu.pressure"), Path("/proc/pressure/cpu"))
IDLE_PRESSURE_PERCENT = 5.0  # "some avg10" below this: runnable tasks hardly ever waited for a core


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the container's quota (e.g. 2.0), or None where there is no quota to read."""
    try:
        quota, period = CGROUP_V2_CPU_MAX.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(CGROUP_V1_QUOTA.read_text())
        period = int(CGROUP_V1_PERIOD.read_text())
        return None if quota <= 0 or period <= 0 else quota / period
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """CPUs this process may use: its affinity set, capped by a cgroup CPU quota (rounded up)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = _cgroup_cpu_limit()
    if limit is not None and limit > 0:
        cores = min(cores, max(1, math.ceil(limit)))
    return max(1, cores)


def _override() -> int | None:
    value = os.environ.get("MATTING_THREADS", "").strip()
    if not value:
        return None
    try:
        return max(1, int(value))
    except ValueError:
        raise MattingError(f"MATTING_THREADS={value!r} is not a whole number.") from None


def cpu_pressure() -> float | None:
    """The share of the last 10 s (percent) in which some runnable task waited for a CPU (PSI
    ``some avg10``), or None where the kernel does not report it."""
    for path in CPU_PRESSURE_FILES:
        try:
            for line in path.read_text().splitlines():
                if line.startswith("some "):
                    fields = dict(item.split("=", 1) for item in line.split()[1:])
                    return float(fields["avg10"])
        except (OSError, ValueError, KeyError):
            continue
    return None


LOADAVG = Path("/proc/loadavg")
OWN_TASKS = Path("/proc/self/task")


def other_runnable_tasks() -> int | None:
    """Tasks of other processes running or waiting for a CPU right now (the kernel's count in
    ``/proc/loadavg`` less this process's threads in state R), or None where Linux does not say."""
    try:
        total = int(LOADAVG.read_text().split()[3].split("/")[0])
        own = 0
        for task in OWN_TASKS.iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue  # the thread ended meanwhile
            own += stat[stat.rindex(")") + 2:].startswith("R")
    except (OSError, ValueError, IndexError):
        return None
    return max(0, total - own)


def cores_idle(samples: int = 3) -> bool:
    """Whether this process may use every core: no other process's task is runnable (the fewest
    over ``samples`` readings, so a short-lived task does not count) and, where the kernel reports
    CPU pressure, runnable tasks waited for a CPU less than :data:`IDLE_PRESSURE_PERCENT` of the
    last 10 s. This process's own threads never count. Unknown counts as busy."""
    others = [other_runnable_tasks() for _ in range(samples)]
    if None in others or min(others) > 0:
        return False
    pressure = cpu_pressure()
    return pressure is None or pressure < IDLE_PRESSURE_PERCENT


def threads() -> int:
    """Threads for one numba kernel (see the module docstring)."""
    override = _override()
    if override is not None:
        return override
    cores = available_cores()
    return 1 if cores <= 2 else min(8, cores // 2)


def torch_threads() -> int:
    """Threads for one torch forward, read at each call (see the module docstring)."""
    override = _override()
    if override is not None:
        return override
    cores = available_cores()
    if cores <= 2:
        return cores if cores_idle() else 1
    return min(8, cores // 2)


def solver_threads() -> int:
    """Threads for the sparse solvers' split products and side-by-side set-up steps
    (:mod:`matting.sparse_threads`), read at each solve: the same rule as :func:`torch_threads`,
    because a fixed split waits for its slowest piece just as torch's regions do."""
    return torch_threads()


def onnxruntime_threads() -> int:
    """Intra-op threads of an onnxruntime session (idle workers not spinning; see the module docstring)."""
    override = _override()
    if override is not None:
        return override
    cores = available_cores()
    return cores if cores <= 2 else max(2, min(8, cores // 2))


def limit_numba() -> int:
    """Set numba's thread count for parallel kernels called from this thread to :func:`threads`
    (capped by numba's pool size); returns the count. Cheap; call it before pymatting's kernels."""
    import numba

    count = min(threads(), numba.config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != count:
        numba.set_num_threads(count)
    return count
