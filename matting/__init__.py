"""Image-matting workbench: one registry and one call for classical and deep matting methods.

>>> import matting
>>> [m.id for m in matting.methods()]                          # doctest: +SKIP
>>> result = matting.run("closed_form", "photo.png", trimap="trimap.png")  # doctest: +SKIP
>>> result.alpha, result.foreground, result.maps, result.seconds            # doctest: +SKIP
"""
import os as _os

from .paths import numba_cache_dir as _numba_cache_dir

_os.environ.setdefault("NUMBA_CACHE_DIR", str(_numba_cache_dir()))

from .errors import MattingError  # noqa: E402
from .io import Scribbles, load_alpha, load_image, load_scribbles, load_trimap  # noqa: E402
from .registry import get, methods, register, run  # noqa: E402
from .spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param, Result  # noqa: E402

__all__ = [
    "MattingError", "Scribbles", "load_image", "load_trimap", "load_scribbles", "load_alpha",
    "get", "methods", "register", "run",
    "Card", "Inputs", "IntermediateMap", "MethodOutput", "MethodSpec", "OutputMap", "Param", "Result",
]
