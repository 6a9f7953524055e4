"""2-D convolutions by FFT (NNPACK, bundled with PyTorch's CPU builds), for the torch backend's fast path.

PyTorch itself sends a batch-1 convolution to oneDNN's direct algorithm (it uses NNPACK only from
batch 16 up). For large kernels on large feature maps NNPACK's FFT algorithm (8×8 tiles) does the
same sums with far fewer multiplications: measured on the 2-core machine at 1 thread, a 5×5
convolution of DIM's decoder at 320² takes 0.2–0.5× oneDNN's time, a 3×3 one of its encoder at
≥ 80² about 0.8×; on small maps (≤ 20² at 512 channels) the per-call transform of the kernels
costs more than it saves. FFT rounding is that of a direct convolution (|Δ| vs a float64 reference
1–2e-6 on unit-scale activations, the same as oneDNN's).

NNPACK's 3×3 algorithm is Winograd F(6, 3), whose rounding is 30× larger (5e-5 per layer, 1e-3 after
DIM's 19 layers), so a 3×3 kernel is zero-padded to 5×5 (with one more pixel of zero padding): the
same convolution, computed by FFT.

:func:`with_fft_convolutions` returns a copy of a network whose chosen convolutions become
:class:`FFTConv2d`; each falls back to its ordinary forward where NNPACK cannot run it (not on the
CPU, not float32, strided, grouped, dilated, autograd on, NNPACK unavailable or failing) or where its
input is smaller than the network's measured threshold. NNPACK's thread pool is made at its first
convolution with ``torch.get_num_threads()`` threads at that moment; :func:`available` makes that
first convolution at every core, so the FFTs run on all of them whatever torch's own count
(:func:`matting.threads.torch_threads`, set around every accelerated call) is.

NNPACK keeps its workspace (the transformed tiles: about 3.5× the largest feature map convolved,
2.2 GB after a 1600² DIM forward) in a thread-local buffer that is freed only when the thread ends.
:class:`InWorkerThread` runs a forward in a worker thread of its own: one whose workspace stays
under :data:`KEEP_WORKSPACE_BYTES` is kept for the next forward, a larger one ends with its forward,
handing the memory back (measured: 0.56 GB resident after a 960² DIM forward so run, 1.37 GB
otherwise). Keeping the small ones matters as much: a new thread per forward also gets a new malloc
arena and a new OpenMP team, and DIM at 320² then touched 270–300 MB of fresh pages per forward
(70 k page faults) against 67 MB with the thread kept, and ran 1.17× slower (one process, 2 cores).
"""
from __future__ import annotations

import copy
import functools
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FFTConv2d", "InWorkerThread", "KEEP_WORKSPACE_BYTES", "available", "with_fft_convolutions"]

log = logging.getLogger(__name__)

FFT_KERNEL = 5  # kernels smaller than this are zero-padded up to it, so that NNPACK picks its FFT
# A worker thread whose NNPACK workspace may be larger than this ends after its forward (module docstring).
KEEP_WORKSPACE_BYTES = 256 * 2**20
WORKSPACE_PER_MAP_BYTE = 3.5  # NNPACK's workspace against the largest feature map it convolved, measured
MAX_IDLE_WORKERS = 1

_convolved = threading.local()  # .largest: bytes of the largest input or output of this thread's NNPACK calls


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """Whether this torch build has NNPACK and it runs on this CPU (the call also initialises it,
    without which every NNPACK convolution fails, and makes its thread pool: :func:`_make_pool`)."""
    try:
        if not torch._nnpack_available():
            return False
        _make_pool()
        return True
    except (AttributeError, RuntimeError):
        return False


def _make_pool() -> None:
    """NNPACK's thread pool, sized to every core of the machine (:func:`matting.threads.available_cores`).

    PyTorch makes the pool at the first NNPACK convolution of the process with the calling thread's
    torch thread count, and keeps it. Made at one thread (a busy machine), every later FFT ran on
    one core on a quiet one too. So the first convolution is this one, at every core. Measured, DIM
    at 608×800 on 2 cores with the pool at 2 against the reference at torch's default 2 threads: 0.56×
    with the machine quiet, 0.65× with 1–2 other busy processes (torch's own layers at one thread:
    the FFT's pieces are small and its pool hands them out as workers come free)."""
    from ..threads import available_cores
    from .accelerate import threads_context

    with threads_context(available_cores()):
        x = torch.zeros(1, 1, 8, 8)
        torch._nnpack_spatial_convolution(x, torch.zeros(1, 1, FFT_KERNEL, FFT_KERNEL), torch.zeros(1),
                                          [FFT_KERNEL // 2] * 2)


class FFTConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (stride 1, the same zero padding on every side: 'same' or none, e.g. after a
    reflection pad) whose forward uses NNPACK's FFT on inputs of at least ``min_pixels`` pixels
    (height × width), its ordinary forward otherwise."""

    def __init__(self, conv: nn.Conv2d, min_pixels: int):
        kernel = tuple(conv.kernel_size)
        super().__init__(conv.in_channels, conv.out_channels, kernel, stride=conv.stride, padding=conv.padding,
                         dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                         padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
        self.load_state_dict(conv.state_dict())
        self.min_pixels = int(min_pixels)
        self.eligible = (conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                         and conv.padding_mode == "zeros" and kernel[0] == kernel[1] and kernel[0] % 2 == 1
                         and isinstance(conv.padding, tuple) and conv.padding[0] == conv.padding[1])
        grow = max(0, (FFT_KERNEL - kernel[0]) // 2)
        # a kernel grown by `grow` zeros on each side needs as much more zero padding for the same output
        self.fft_padding = [conv.padding[0] + grow] * 2 if self.eligible else [0, 0]
        self._grow = grow

    def _fft_weight(self) -> torch.Tensor:
        if not self._grow:
            return self.weight
        return F.pad(self.weight, (self._grow,) * 4)  # zeros around the kernel: the same convolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.eligible and x.dim() == 4 and x.device.type == "cpu" and x.dtype == torch.float32
                and x.shape[2] * x.shape[3] >= self.min_pixels and not torch.is_grad_enabled() and available()):
            bias = self.bias if self.bias is not None else torch.zeros(self.out_channels, dtype=x.dtype)
            try:
                output = torch._nnpack_spatial_convolution(x, self._fft_weight(), bias, self.fft_padding)
                _convolved.largest = max(getattr(_convolved, "largest", 0),
                                         max(x.numel(), output.numel()) * x.element_size())
                return output
            except RuntimeError as exc:  # NNPACK says only "failed" (e.g. no memory for its workspace)
                self.eligible = False
                log.warning("NNPACK convolution of a %s input failed (%s); this layer convolves directly from now on",
                            "×".join(map(str, x.shape)), exc)
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, fft from {self.min_pixels} pixels"


def with_fft_convolutions(model: nn.Module, min_pixels: Mapping[int, int]) -> nn.Module:
    """An eval-mode copy of ``model`` whose ``nn.Conv2d`` modules with a square kernel of a size in
    ``min_pixels`` are :class:`FFTConv2d` with that size's threshold (kernel size → pixels); the
    rest, and ``model`` itself, unchanged."""
    copied = copy.deepcopy(model).eval()
    for owner in list(copied.modules()):
        for name, child in list(owner.named_children()):
            if type(child) is nn.Conv2d and child.kernel_size[0] == child.kernel_size[1] \
                    and child.kernel_size[0] in min_pixels:
                setattr(owner, name, FFTConv2d(child, min_pixels[child.kernel_size[0]]).eval())
    return copied


class _WorkerThread:
    """One thread (a one-worker executor) that runs the calls handed to it until it is retired, and
    the process that made it (a forked child cannot use it)."""

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="matting-fast-forward")
        self.pid = os.getpid()

    def run(self, call):
        """``call()`` in this thread; returns what it returns, raises what it raises."""
        return self._executor.submit(call).result()

    def retire(self):
        self._executor.shutdown(wait=False)


_idle_workers: list[_WorkerThread] = []
_idle_lock = threading.Lock()
if hasattr(os, "register_at_fork"):  # POSIX: a forked child has none of these threads
    os.register_at_fork(after_in_child=_idle_workers.clear)


def _take_worker() -> _WorkerThread:
    with _idle_lock:
        while _idle_workers:
            worker = _idle_workers.pop()
            if worker.pid == os.getpid():
                return worker
    return _WorkerThread()


def _hand_back(worker: _WorkerThread, workspace_bytes: float) -> None:
    """Keep ``worker`` for the next forward if its NNPACK workspace is small and none is waiting yet."""
    with _idle_lock:
        if workspace_bytes <= KEEP_WORKSPACE_BYTES and len(_idle_workers) < MAX_IDLE_WORKERS:
            _idle_workers.append(worker)
            return
    worker.retire()


class InWorkerThread(nn.Module):
    """``module``'s forward, run in a worker thread (not the caller's), with the caller's grad /
    inference mode and torch thread count (torch's OpenMP thread count is per thread).

    The worker is kept for the next forward while NNPACK's workspace in it (thread-local, freed only
    when the thread ends) is at most :data:`KEEP_WORKSPACE_BYTES`; after a forward that needed more
    it ends. Concurrent forwards each get a worker; at most :data:`MAX_IDLE_WORKERS` wait between
    forwards (see the module docstring for why a kept thread is faster)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args):
        inference, grad, count = torch.is_inference_mode_enabled(), torch.is_grad_enabled(), torch.get_num_threads()
        result = {}

        def work():
            try:
                if torch.get_num_threads() != count:
                    torch.set_num_threads(count)
                with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                    result["outputs"] = self.module(*args)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                result["error"] = exc
            result["workspace"] = WORKSPACE_PER_MAP_BYTE * getattr(_convolved, "largest", 0)

        worker = _take_worker()
        worker.run(work)
        _hand_back(worker, result["workspace"])
        if "error" in result:
            raise result["error"]
        return result["outputs"]
