"""The architecture registry: every network file under ``matting/models/`` registers itself here.

An architecture is a name bound to its builder (the official class, or a function) and to everything
that belongs to that network rather than to a method: how its published checkpoints are read
(``checkpoint_filter``), how a state dict of it is recognised (``recognise``, for the hint when a
user uploads the wrong file) and its input conventions (``input_config``)::

    @register_architecture("u2netp", checkpoint_filter=u2net_checkpoint_filter, recognise=recognise_u2net,
                           input_config=U2NET_INPUT, description="U2NETP(in_ch=3, out_ch=1)")
    class U2NETP(nn.Module): ...

Discovery is lazy, so ``import matting`` stays torch-free: the first question about architectures
imports every public module of this package (each registers what it defines) and every module named
by the entry-point group ``matting.architectures`` (third-party networks). This module imports no
other part of the package except the errors.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from ..errors import MattingError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "matting.architectures"

# Modules of this package that define no architecture (imported only by those that need them).
_NOT_ARCHITECTURES = {"accelerate", "registry", "checkpoints", "constants", "onnx_fold", "fuse", "fft_conv",
                      "random_init", "backbones", "runtime"}


@dataclass(frozen=True)
class Example:
    """A size (height, width) at which to time a network, with constructor arguments for that size
    (e.g. BGMv2's 4K preset) and a short label."""

    size: tuple[int, int]
    kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    label: str = ""


@dataclass(frozen=True)
class InputConfig:
    """What a network expects as input, as data (like timm's ``pretrained_cfg``): read by the adapters'
    pre-processing and by the benchmarks' example inputs.

    ``channels`` are the input channels in order (e.g. ``("R", "G", "B", "trimap")``; a ``trimap``
    channel holds 0, 0.5 and 1); ``split`` how many of them each tensor argument of ``forward`` takes
    (BGMv2: ``(3, 3)`` for ``forward(src, bgr)``; default one tensor), and ``extra_args`` the other
    arguments (MODNet: ``(True,)`` for ``inference``). ``value_range`` is the range colour channels are
    scaled to before ``mean``/``std`` (per colour triple). ``size_rule`` is a sentence;
    ``example_size`` (height, width) a size at which to time the network, ``examples`` several
    (:class:`Example`, overriding ``example_size``). ``example_inputs(height, width, generator)``, for a
    forward whose arguments are not colour and trimap planes (SIM: image, trimaps, click maps and the
    classifier's semantic map), returns the arguments themselves (the benchmarks' inputs).
    """

    channels: tuple[str, ...]
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    size_rule: str = ""
    example_size: tuple[int, int] = (320, 320)
    stride: int = 1
    split: tuple[int, ...] | None = None
    extra_args: tuple = ()
    examples: tuple[Example, ...] = ()
    example_inputs: Callable[[int, int, object], tuple] | None = None

    def timing_examples(self) -> tuple[Example, ...]:
        return self.examples or (Example(self.example_size),)


@dataclass(frozen=True)
class Architecture:
    """A registered network.

    ``build(**kwargs)`` returns the network (an ``nn.Module`` for torch architectures). For networks
    shipped as a runtime graph (TFLite), ``load_file(path, **kwargs)`` returns a ready callable instead,
    and ``build`` is ``None``.

    ``checkpoint_filter(checkpoint, model)`` turns what :func:`matting.weights.read_checkpoint`
    returned (a state dict, an ``onnx.ModelProto``, …) into this network's state dict. When the file
    is not a tensor container (an ONNX graph to convert back into tensors), the filter's result is
    cached on disk by the file's sha256, so the conversion happens once per machine.

    ``fast_backend`` is the backend :func:`matting.models.accelerate` uses for this network when the
    caller names none (``None``: the default, ``"torch"``); declared only where the model benchmark
    (``python -m matting.bench models``) measured another one faster. ``fast_module(model,
    *example_inputs)``, where given, returns the module that the ``"torch"`` backend runs in place of
    its default copy (BatchNorms folded, channels_last): the network's own measured choice of
    kernels and memory layout, with the reference forward's outputs; ``model`` itself unchanged.
    """

    name: str
    build: Callable[..., Any] | None
    description: str = ""
    checkpoint_filter: Callable[[Any, Any], Mapping] | None = None
    recognise: Callable[[Mapping[str, tuple]], str | None] | None = None
    input_config: InputConfig | None = None
    load_file: Callable[..., Any] | None = None
    module: str = ""
    fast_backend: str | None = None
    fast_module: Callable[..., Any] | None = None

    @property
    def is_torch(self) -> bool:
        return self.load_file is None


_ARCHITECTURES: dict[str, Architecture] = {}
_lock = threading.RLock()
_discovered = False


def register_architecture(name: str, **fields):
    """Decorator: register the decorated class or builder function as architecture ``name``.

    Keyword arguments are :class:`Architecture` fields. Stack it to register several names.
    """

    def decorate(builder):
        add_architecture(Architecture(name=name, build=builder, module=getattr(builder, "__module__", ""),
                                      **fields))
        return builder

    return decorate


def add_architecture(architecture: Architecture) -> Architecture:
    with _lock:
        known = _ARCHITECTURES.get(architecture.name)
        if known is not None and known.module != architecture.module:
            raise ValueError(f"architecture {architecture.name!r} registered twice "
                             f"({known.module} and {architecture.module})")
        _ARCHITECTURES[architecture.name] = architecture
    return architecture


def remove_architecture(name: str) -> None:
    """Forget an architecture (tests and plug-ins that register temporary ones)."""
    with _lock:
        _ARCHITECTURES.pop(name, None)


def discover(refresh: bool = False) -> None:
    """Import every architecture module: this package's, then those of the entry-point group
    ``matting.architectures``. Runs once; ``refresh=True`` looks at the entry points again."""
    global _discovered
    with _lock:
        if _discovered and not refresh:
            return
        _discovered = True  # set first: a module that asks for architectures while importing must not recurse
        package = __name__.rsplit(".", 1)[0]
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            if not module.name.startswith("_") and module.name not in _NOT_ARCHITECTURES:
                importlib.import_module(f"{package}.{module.name}")
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                importlib.import_module(point.value.split(":", 1)[0])
            except Exception:  # noqa: BLE001 - a broken plug-in must not hide the built-in networks
                log.exception("the architecture plug-in %r failed to load", point.value)


_discover = discover


def architectures() -> list[str]:
    """The names of every registered architecture, sorted."""
    _discover()
    return sorted(_ARCHITECTURES)


def get_architecture(name: str) -> Architecture:
    _discover()
    try:
        return _ARCHITECTURES[name]
    except (KeyError, TypeError):
        raise MattingError(f"Unknown architecture {name!r}; known: {', '.join(architectures())}.") from None


def guess_architecture(state_dict: Mapping) -> str | None:
    """Name the network a state dict seems to come from (each architecture's ``recognise``), or None."""
    _discover()
    keys = [k[len("module."):] if k.startswith("module.") else k for k in state_dict]
    shapes = {k: tuple(getattr(v, "shape", ())) for k, v in zip(keys, state_dict.values())}
    seen = set()
    for architecture in _ARCHITECTURES.values():
        if architecture.recognise is None or architecture.recognise in seen:
            continue
        seen.add(architecture.recognise)
        answer = architecture.recognise(shapes)
        if answer:
            return answer
    return None
