"""The method registry: register and look up. Nothing else.

Adapters (``matting/adapters/``, and third-party packages through the entry-point group
``matting.methods``) register their :class:`~matting.spec.MethodSpec` here when they are imported;
``import matting`` imports them once. This module imports no adapter and nothing that runs a method;
running is :mod:`matting.runner`.
"""
from __future__ import annotations

import difflib
import threading
from dataclasses import replace

from .errors import MattingError
from .spec import FOREGROUND_ESTIMATORS, MethodSpec, Param

_METHODS: dict[str, MethodSpec] = {}
_lock = threading.Lock()


def foreground_param(provides_foreground: bool) -> Param:
    choices = (("model",) if provides_foreground else ()) + FOREGROUND_ESTIMATORS
    return Param(
        "foreground",
        choices[0] if provides_foreground else "multilevel",
        "How to estimate the foreground colours F for composites: the method's own estimate ('model'), "
        "pymatting's multi-level estimator (Germer et al. 2020, fast), closed-form (Levin et al. 2008, slower), "
        "or none (no foreground; composites use the photo's colours, with spill).",
        kind="choice",
        choices=choices,
        label="Foreground estimation",
    )


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method; the foreground-estimation parameter is added to every method."""
    if not any(p.name == "foreground" for p in spec.params):
        spec = replace(spec, params=spec.params + (foreground_param(spec.provides_foreground),))
    with _lock:
        if spec.id in _METHODS:
            raise ValueError(f"method id {spec.id!r} registered twice")
        _METHODS[spec.id] = spec
    return spec


def unregister(method_id: str) -> None:
    """Remove a method (for tests and plug-ins that register temporary methods)."""
    with _lock:
        _METHODS.pop(method_id, None)


def methods(family: str | None = None) -> list[MethodSpec]:
    """All registered methods (optionally of one family), in registration order."""
    return [m for m in list(_METHODS.values()) if family is None or m.family == family]


def get(method_id: str) -> MethodSpec:
    if not isinstance(method_id, str):
        raise MattingError(f"A method id must be a string such as 'closed_form', not {type(method_id).__name__}. "
                           f"Known methods: {', '.join(_METHODS)}.")
    try:
        return _METHODS[method_id]
    except KeyError:
        close = difflib.get_close_matches(method_id[:100], list(_METHODS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MattingError(
            f"Unknown method {method_id[:100]!r}.{hint} Known methods: {', '.join(_METHODS)}."
        ) from None
