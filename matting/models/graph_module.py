"""A part of a network run as its checked onnx export inside a torch fast module.

BGMv2's refiner picks its patches with a data-dependent top-k and cannot be exported, but its
encoder–decoder is a static graph: :func:`graph_module` exports and checks that part alone (through
:func:`matting.models.accelerate.accelerate`, so the same cache, checks and fallbacks apply) and
returns a module the rest of the torch fast module calls. An earlier mix, that encoder–decoder
on onnxruntime beside a torch refiner, gained nothing (0.90× against 0.81× for mobilenetv2 HD);
with OpenVINO (no spinning workers) the split ran ResNet-50 HD at 0.68× the reference against 0.76×
for the all-torch module, ResNet-101 at 0.72× against 0.81×, MobileNetV2 at 0.58× against 0.59×
(interleaved, one process, 2 cores).
"""
from __future__ import annotations

import os

from torch import nn

from . import runtime
from .accelerate import Accelerated, accelerate
from .runtime import reference_requested

__all__ = ["GraphModule", "graph_module"]


class GraphModule(nn.Module):
    """A part of a network run as its checked onnx export, inside a ``fast_module`` that runs the
    rest in torch (BGMv2: the encoder–decoder on OpenVINO, the data-dependent refiner in torch).
    Takes and returns what the part's forward does (outputs as contiguous torch tensors)."""

    def __init__(self, accelerated: Accelerated):
        super().__init__()
        self._accelerated = accelerated  # not a submodule: its network's parameters are not ours
        self.backend = accelerated.backend

    def forward(self, *args):
        return self._accelerated(*args)

    def extra_repr(self) -> str:
        return f"{type(self._accelerated.model).__name__} on {self.backend}"


def graph_module(part: nn.Module, *example_inputs, engine: str | None = None) -> GraphModule | None:
    """``part`` (a sub-network, e.g. BGMv2's encoder–decoder) as a :class:`GraphModule` run by
    ``engine`` (default: ``MATTING_BACKEND`` when it names an engine, else ``"openvino"``, with
    onnxruntime in its place where OpenVINO is missing or differs), exported and checked against
    ``part``'s own forward like a whole network's graph (cached under ``part``'s class name and a
    digest of its tensors). None where no graph can run it, or where ``MATTING_BACKEND`` asks for
    torch or the reference: the caller keeps ``part`` in torch."""
    if engine is None:
        if reference_requested():
            return None
        engine = os.environ.get("MATTING_BACKEND", "").strip() or "openvino"
    if engine not in runtime.ENGINES:
        return None
    accelerated = accelerate(part, *example_inputs, backend=engine)
    return GraphModule(accelerated) if accelerated.backend in runtime.ENGINES else None
