"""pymatting, imported with its numba compilation cache inside the project's cache directory.

pymatting compiles its kernels eagerly at import (explicit numba signatures); with the cache in
``.cache/numba`` (warmed by setup) a start costs a fraction of a second instead of most of a minute.
Import pymatting only through this module, and only when a method actually runs.
"""
import os

from .paths import numba_cache_dir

os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))

from pymatting import (  # noqa: E402
    estimate_alpha_cf,
    estimate_alpha_knn,
    estimate_alpha_lbdm,
    estimate_alpha_lkm,
    estimate_alpha_rw,
    estimate_alpha_sm,
    estimate_foreground_cf,
    estimate_foreground_ml,
)

from .threads import limit_numba  # noqa: E402

limit_numba()  # for the importing thread; Session.run_prepared sets it for every other calling thread

__all__ = [
    "estimate_alpha_cf", "estimate_alpha_knn", "estimate_alpha_lbdm", "estimate_alpha_lkm",
    "estimate_alpha_rw", "estimate_alpha_sm", "estimate_foreground_cf", "estimate_foreground_ml",
]
