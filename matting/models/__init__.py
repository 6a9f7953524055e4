"""Network architectures, one file each: pure ``nn.Module``s with the official parameter names.

Each architecture file registers its networks with
:func:`~matting.models.registry.register_architecture`, together with what belongs to the network:
how its published checkpoints are read, how its state dicts are recognised, its input conventions.
Nothing here lists the files: they are found when first needed (see :mod:`matting.models.registry`),
so adding a network is adding its file (or, from another package, an entry point in the group
``matting.architectures``).

>>> from matting import models
>>> models.architectures()                                   # doctest: +SKIP
['bgmv2_base', 'bgmv2_refine', 'dim', 'modnet', 'selfie_segmenter', 'u2net', 'u2netp']
>>> net = models.create("u2netp", checkpoint="u2netp")      # doctest: +SKIP  (ready: weights, eval mode)
>>> bare = models.create("modnet", hr_channels=32)          # doctest: +SKIP  (official kwargs, no weights)

``python -m matting methods`` and :func:`describe` print each architecture with its official class.
"""
from .checkpoints import check_state_dict, create, load_into, resolve, strip_prefix
from .registry import (Architecture, Example, InputConfig, add_architecture, architectures, get_architecture,
                       guess_architecture, register_architecture, remove_architecture)

__all__ = [
    "accelerate", "Architecture", "Example", "InputConfig", "add_architecture", "architectures", "check_state_dict", "create",
    "describe", "get_architecture", "guess_architecture", "input_config", "load_into",
    "register_architecture", "remove_architecture", "resolve", "strip_prefix",
]


def input_config(arch: str) -> InputConfig | None:
    """The input conventions architecture ``arch`` declares (mean/std, value range, size rule)."""
    return get_architecture(arch).input_config


def describe() -> list[tuple[str, str]]:
    """(architecture, official class and arguments) for every architecture."""
    return [(name, get_architecture(name).description) for name in architectures()]


def accelerate(model, *example_inputs, backend=None, weights_sha256=None):
    """The fast inference path of ``model``: a callable with its forward's arguments and outputs
    (see :mod:`matting.models.accelerate`; torch is imported only here)."""
    from .accelerate import accelerate as implementation

    globals()["accelerate"] = _accelerate  # importing the submodule bound its name to the module
    return implementation(model, *example_inputs, backend=backend, weights_sha256=weights_sha256)


_accelerate = accelerate
