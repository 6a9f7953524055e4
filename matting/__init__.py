"""Image-matting workbench: one registry and one call for classical and deep matting methods.

>>> import matting
>>> [m.id for m in matting.methods()]                          # doctest: +SKIP
>>> result = matting.run("closed_form", "photo.png", trimap="trimap.png")  # doctest: +SKIP
>>> result.alpha, result.foreground, result.maps, result.seconds            # doctest: +SKIP
>>> with matting.session("u2netp") as s:                       # doctest: +SKIP
...     alphas = [s.run(frame).alpha for frame in frames]

Importing the package registers every method once: the adapters of :mod:`matting.adapters`, then the
modules that installed packages name in the entry-point group ``matting.methods`` (a third-party
method is one module that calls :func:`register`). Heavy libraries (torch, pymatting) are imported only
when a method runs.
"""
import logging as _logging
import os as _os
from importlib.metadata import entry_points as _entry_points

from .paths import numba_cache_dir as _numba_cache_dir

_os.environ.setdefault("NUMBA_CACHE_DIR", str(_numba_cache_dir()))

from .errors import MattingError  # noqa: E402
from .io import Scribbles, load_alpha, load_image, load_scribbles, load_trimap  # noqa: E402
from .registry import get, methods, register, unregister  # noqa: E402
from .runner import Session, run, session  # noqa: E402
from .spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param, Result  # noqa: E402
from . import adapters  # noqa: E402,F401  (registers the built-in methods)

METHODS_ENTRY_POINT_GROUP = "matting.methods"


def _load_plugins() -> None:
    """Import the modules of the ``matting.methods`` entry points; one that fails is logged, not fatal."""
    for point in _entry_points(group=METHODS_ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception:  # noqa: BLE001 - a broken plug-in must not take the workbench down
            _logging.getLogger(__name__).exception("the method plug-in %r failed to load", point.value)


_load_plugins()

__all__ = [
    "MattingError", "Scribbles", "load_image", "load_trimap", "load_scribbles", "load_alpha",
    "get", "methods", "register", "unregister", "run", "session", "Session",
    "Card", "Inputs", "IntermediateMap", "MethodOutput", "MethodSpec", "OutputMap", "Param", "Result",
]
