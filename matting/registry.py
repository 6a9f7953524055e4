"""The method registry and the single entry point ``run``."""
from __future__ import annotations

import difflib
import resource
import threading
import time
from dataclasses import replace

import numpy as np

from . import io
from .errors import MattingError
from .spec import INPUT_LABELS, Inputs, IntermediateMap, MethodSpec, Param, Result

_METHODS: dict[str, MethodSpec] = {}

FOREGROUND_ESTIMATORS = ("none", "multilevel", "closed_form")


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
    if spec.id in _METHODS:
        raise ValueError(f"method id {spec.id!r} registered twice")
    if not any(p.name == "foreground" for p in spec.params):
        spec = replace(spec, params=spec.params + (foreground_param(spec.provides_foreground),))
    _METHODS[spec.id] = spec
    return spec


def unregister(method_id: str) -> None:
    """Remove a method (for tests and plug-ins that register temporary methods)."""
    _METHODS.pop(method_id, None)


def _ensure_loaded():
    from . import adapters  # noqa: F401  (registers every adapter on first import)


def methods(family: str | None = None) -> list[MethodSpec]:
    """All registered methods (optionally of one family), in registration order."""
    _ensure_loaded()
    return [m for m in _METHODS.values() if family is None or m.family == family]


def get(method_id: str) -> MethodSpec:
    _ensure_loaded()
    if not isinstance(method_id, str):
        raise MattingError(f"A method id must be a string such as 'closed_form', not {type(method_id).__name__}. "
                           f"Known methods: {', '.join(_METHODS)}.")
    try:
        return _METHODS[method_id]
    except KeyError:
        close = difflib.get_close_matches(method_id[:100], _METHODS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MattingError(
            f"Unknown method {method_id[:100]!r}.{hint} Known methods: {', '.join(_METHODS)}."
        ) from None


# --------------------------------------------------------------------------- measuring

def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class PeakMemory:
    """Peak resident memory above the level at entry (numpy, torch, numba alike).

    Exact when the run sets a new high for the process (``ru_maxrss``); otherwise sampled every
    ``interval`` seconds. The interval is long on purpose: each wake-up takes the GIL from the solver,
    and on a loaded machine every hand-back can cost the solver a scheduler time slice.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_bytes = 0

    def __enter__(self):
        self._baseline = _rss_bytes()
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self._peak = self._baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        peak = max(self._peak, _rss_bytes())
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if maxrss > self._maxrss_before:  # the process reached a new high inside the run: exact peak
            peak = max(peak, maxrss)
        self.peak_bytes = max(0, peak - self._baseline)
        return False


# --------------------------------------------------------------------------- validation

def _validate_params(spec: MethodSpec, given: dict) -> dict:
    known = {p.name: p for p in spec.params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise MattingError(
            f"{spec.id} has no parameter {', '.join(map(repr, unknown))}. "
            f"Its parameters: {', '.join(known) or 'none'}."
        )
    return {name: p.validate(given.get(name, p.default), spec.id) for name, p in known.items()}


def check_trimap_content(trimap: np.ndarray, name: str = "trimap") -> None:
    """A usable trimap has definite foreground, definite background and unknown pixels."""
    missing = [label for value, label in ((255, "definite foreground (white, 255)"),
                                          (0, "definite background (black, 0)"),
                                          (128, "unknown (grey, 128)")) if not (trimap == value).any()]
    if missing:
        raise MattingError(
            f"The {name} has no {' and no '.join(missing)} pixels; a trimap needs all three regions."
        )


def check_scribbles_content(scribbles: io.Scribbles) -> None:
    if not scribbles.foreground.any() or not scribbles.background.any():
        which = "foreground" if not scribbles.foreground.any() else "background"
        raise MattingError(f"The scribbles have no {which} strokes; draw at least one stroke of each kind.")


def prepare_inputs(spec: MethodSpec, image, trimap=None, scribbles=None, background=None,
                   max_pixels: int | None = None, warnings: list | None = None) -> Inputs:
    given = {"trimap": trimap, "scribbles": scribbles, "background": background}
    for name, value in given.items():
        if value is not None and not spec.accepts(name):
            note = f" {spec.scribbles_note}" if name == "scribbles" and spec.scribbles_note else ""
            raise MattingError(f"{spec.name} does not take {INPUT_LABELS[name]}.{note}")
    missing = [INPUT_LABELS[n] for n in spec.required_inputs if given[n] is None]
    present_alternatives = [n for n in spec.one_of_inputs if given[n] is not None]
    if spec.one_of_inputs and not present_alternatives:
        missing.append(" or ".join(INPUT_LABELS[n] for n in spec.one_of_inputs))
    if missing:
        raise MattingError(f"{spec.name} needs {' and '.join(missing)} besides the image.")
    if len(present_alternatives) > 1:
        raise MattingError(
            f"{spec.name} takes {' or '.join(INPUT_LABELS[n] for n in spec.one_of_inputs)}, not both at once."
        )

    image = io.load_image(image, "image", max_pixels, warnings)
    shape = image.shape
    inputs = Inputs(image=image)
    if trimap is not None:
        inputs.trimap = io.load_trimap(trimap, shape, max_pixels=max_pixels)
        check_trimap_content(inputs.trimap)
    if scribbles is not None:
        inputs.scribbles = io.load_scribbles(scribbles, shape, max_pixels=max_pixels)
        check_scribbles_content(inputs.scribbles)
    if background is not None:
        inputs.background = io.load_image(background, "background plate", max_pixels, warnings)
        if inputs.background.shape != shape:
            raise MattingError(
                f"The background plate is {io.describe_size(inputs.background.shape)} but the image is "
                f"{io.describe_size(shape)} (width×height); the plate must be the same shot without the subject."
            )
    return inputs


# --------------------------------------------------------------------------- running

def estimate_foreground(image: np.ndarray, alpha: np.ndarray, how: str) -> np.ndarray:
    """Foreground colours F for I = αF + (1 − α)B, by pymatting's estimators."""
    from . import _pymatting as pm

    image64, alpha64 = image.astype(np.float64), alpha.astype(np.float64)
    if how == "multilevel":
        foreground = pm.estimate_foreground_ml(image64, alpha64)
    elif how == "closed_form":
        foreground = pm.estimate_foreground_cf(image64, alpha64)
    else:
        raise ValueError(how)
    return np.clip(foreground, 0.0, 1.0).astype(np.float32)


def run(method_id: str, image, trimap=None, scribbles=None, background=None, *,
        max_pixels: int | None = None, **params) -> Result:
    """Run one method on one image.

    ``image``, ``trimap``, ``scribbles`` and ``background`` accept a path, bytes, a PIL image or a
    numpy array (see :mod:`matting.io`); ``params`` are the method's parameters (see
    ``matting.get(method_id).params``). Any problem with the input raises :class:`MattingError`.
    """
    spec = get(method_id)
    values = _validate_params(spec, params)
    warnings: list[str] = []
    inputs = prepare_inputs(spec, image, trimap, scribbles, background, max_pixels, warnings)

    timings = {}
    with PeakMemory() as memory:
        start = time.perf_counter()
        output = spec.compute(inputs, values)
        timings["alpha"] = time.perf_counter() - start
        alpha = np.clip(np.asarray(output.alpha, dtype=np.float32), 0.0, 1.0)
        foreground = output.foreground
        how = values["foreground"]
        if how in FOREGROUND_ESTIMATORS[1:]:
            fg_start = time.perf_counter()
            foreground = estimate_foreground(inputs.image, alpha, how)
            timings["foreground"] = time.perf_counter() - fg_start
        elif how == "none":
            foreground = None
        seconds = time.perf_counter() - start
    timings["total"] = seconds

    if alpha.shape != inputs.shape:
        raise RuntimeError(f"{spec.id} returned alpha of shape {alpha.shape} for an image of {inputs.shape}")
    maps = {name: IntermediateMap(np.asarray(m.array), m.kind, m.description) for name, m in output.maps.items()}
    return Result(
        alpha=alpha,
        foreground=None if foreground is None else np.asarray(foreground, dtype=np.float32),
        maps=maps,
        method=spec.id,
        params=values,
        seconds=seconds,
        peak_memory_bytes=memory.peak_bytes,
        run_resolution=output.run_resolution or (inputs.shape[1], inputs.shape[0]),
        timings=timings,
        warnings=warnings + list(output.warnings),
    )
