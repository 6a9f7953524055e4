"""An exported network run by OpenVINO on the CPU, behind the part of onnxruntime's session interface
that :mod:`matting.models.runtime` uses (``get_inputs()``, ``run(None, feed)``).

Why a second runtime for the same onnx file: on the networks whose graphs are mostly convolutions
followed by normalisation and activation, OpenVINO's CPU plugin fuses more of each block into one
kernel than onnxruntime does. Measured here (2 cores, the cached exports, both runtimes with the
free axes fixed, interleaved in one process, ≥ 10 rounds): MODNet 512² 0.81× onnxruntime's time,
SHM 256² 0.77×; U²-NetP 0.96×, the SIM classifier 0.99×, U²-Net 1.04× and SIM 1.03×, so only MODNet
and SHM declare it (``fast_backend="openvino"``); the others stay on onnxruntime.

Settings, each for a reason:

* ``INFERENCE_PRECISION_HINT = f32``: on CPUs with bf16 or AMX units OpenVINO otherwise runs in bf16,
  which would break the bound of the fast path against the reference forward.
* ``INFERENCE_NUM_THREADS``: the caller's count (:func:`matting.threads.onnxruntime_threads`, the
  same rule as onnxruntime's sessions), ``PERFORMANCE_HINT = LATENCY``, one stream: one image at a
  time as fast as possible, not throughput over many requests.
* ``ENABLE_CPU_PINNING = False``: a shared machine (a Space, a laptop) moves other work onto our
  cores; pinned workers would then wait instead of migrating. Unpinned measured the same on an idle
  machine (MODNet 312 ms both ways).

An infer request is made per call (0.2 ms), so concurrent callers never share one; the compiled
model is shared. Torch-free, like :mod:`matting.models.runtime`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["OpenVINOSession", "available"]

# Our exports make axes 0, 2 and 3 of every 4-D input free (accelerate's ``_export``), named so.
_FREE_POSITIONS = {"batch": 0, "height": 2, "width": 3}

_core = None
_core_lock = threading.Lock()


def available() -> bool:
    """Whether OpenVINO can be imported here."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _shared_core():
    global _core
    with _core_lock:
        if _core is None:
            import openvino as ov

            _core = ov.Core()
        return _core


@dataclass(frozen=True)
class _Input:
    name: str
    shape: list


class OpenVINOSession:
    """``path`` (an onnx file) compiled for the CPU at ``count`` threads; ``fixed_dimensions``
    ({"batch"|"height"|"width": size}) fixes those free axes of every 4-D input before compiling."""

    def __init__(self, path: Path, count: int, fixed_dimensions: dict | None = None):
        import openvino as ov

        core = _shared_core()
        model = core.read_model(str(path))
        if fixed_dimensions:
            shapes = {}
            for port in model.inputs:
                shape = port.get_partial_shape()
                if shape.rank.is_static and shape.rank.get_length() == 4:
                    dims = [shape[i] for i in range(4)]
                    for axis, size in fixed_dimensions.items():
                        position = _FREE_POSITIONS[axis]
                        if dims[position].is_dynamic:
                            dims[position] = ov.Dimension(int(size))
                    shapes[port.any_name] = ov.PartialShape(dims)
            if shapes:
                model.reshape(shapes)
        self._compiled = core.compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": "f32",
            "INFERENCE_NUM_THREADS": int(count),
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "ENABLE_CPU_PINNING": False,
        })
        self._inputs = [_Input(port.any_name, [d.get_length() if d.is_static else None for d in port.get_partial_shape()])
                        for port in self._compiled.inputs]
        self._output_count = len(self._compiled.outputs)

    def get_inputs(self) -> list[_Input]:
        return list(self._inputs)

    def run(self, output_names, feed: dict) -> list[np.ndarray]:
        """Every output for ``feed`` ({input name: float32 array}), in graph order (``output_names``
        must be None, as :mod:`matting.models.runtime` passes it)."""
        if output_names is not None:
            raise ValueError("OpenVINOSession.run returns every output; pass None")
        request = self._compiled.create_infer_request()
        request.infer({name: np.ascontiguousarray(array) for name, array in feed.items()})
        # Copies: the request and the memory of its output tensors go when this call returns.
        return [np.array(request.get_output_tensor(i).data, copy=True) for i in range(self._output_count)]
