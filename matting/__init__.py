"""Image-matting workbench: one registry and one call for classical and deep matting methods.

>>> import matting
>>> [m.id for m in matting.methods()]                          # doctest: +SKIP
>>> result = matting.run("closed_form", "photo.png", trimap="trimap.png")  # doctest: +SKIP
>>> result.alpha, result.foreground, result.maps, result.seconds            # doctest: +SKIP
>>> with matting.session("u2netp") as s:                       # doctest: +SKIP
...     alphas = [s.run(frame).alpha for frame in frames]

Importing the package registers every method once: the adapters of :mod:`matting.adapters`, then the
plug-ins of installed packages (:mod:`matting.plugins`: entry-point groups ``matting.methods``,
``matting.architectures`` and ``matting.manifests``). Heavy libraries (torch, pymatting) are imported only
when a method runs.
"""
import os as _os

from .paths import numba_cache_dir as _numba_cache_dir

_os.environ.setdefault("NUMBA_CACHE_DIR", str(_numba_cache_dir()))

from .errors import MattingError  # noqa: E402
from .io import Scribbles, load_alpha, load_image, load_scribbles, load_trimap  # noqa: E402
from .registry import get, methods, register, unregister  # noqa: E402
from .runner import Session, run, session  # noqa: E402
from .spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param, Result  # noqa: E402
from . import adapters  # noqa: E402,F401  (registers the built-in methods)
from .plugins import load_plugins  # noqa: E402

load_plugins()

__all__ = [
    "MattingError", "Scribbles", "load_image", "load_trimap", "load_scribbles", "load_alpha",
    "get", "methods", "register", "unregister", "run", "session", "Session", "load_plugins",
    "Card", "Inputs", "IntermediateMap", "MethodOutput", "MethodSpec", "OutputMap", "Param", "Result",
]
