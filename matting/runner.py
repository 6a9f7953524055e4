"""Running methods: ``matting.session`` for repeated runs, ``matting.run`` for one.

A :class:`Session` is one method with validated parameters and whatever the method prepares once
(``MethodSpec.load``: its network, loaded and checked), like rembg's ``new_session`` or SAM's predictor:

>>> session = matting.session("modnet", checkpoint="webcam")      # doctest: +SKIP
>>> for frame in frames:                                          # doctest: +SKIP
...     alpha = session.run(frame).alpha

:func:`run` is a session used once. Every input problem raises :class:`~matting.errors.MattingError`;
a result whose alpha is not finite (a checkpoint holding NaN) is an error that names the checkpoint.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from . import io, trimap
from .errors import MattingError
from .measure import PeakMemory
from .registry import get
from .threads import limit_numba
from .spec import FOREGROUND_ESTIMATORS, INPUT_LABELS, Inputs, IntermediateMap, MethodSpec, Result


def validate_params(spec: MethodSpec, given: dict) -> dict:
    """Every parameter of ``spec``: the given values checked, the others at their defaults."""
    known = {p.name: p for p in spec.params}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise MattingError(
            f"{spec.id} has no parameter {', '.join(map(repr, unknown))}. "
            f"Its parameters: {', '.join(known) or 'none'}."
        )
    return {name: p.validate(given.get(name, p.default), spec.id) for name, p in known.items()}


def prepare_inputs(spec: MethodSpec, image, trimap_input=None, scribbles=None, background=None,
                   max_pixels: int | None = None, warnings: list | None = None, prompts=None) -> Inputs:
    """Load and check every input of one run (paths, bytes, PIL images or arrays; see :mod:`matting.io`;
    prompts in the form of :mod:`matting.prompts`)."""
    given = {"trimap": trimap_input, "scribbles": scribbles, "background": background, "prompts": prompts}
    present = [name for name, value in given.items() if value is not None]
    for name in present:
        if not spec.accepts(name):
            note = f" {spec.scribbles_note}" if name == "scribbles" and spec.scribbles_note else ""
            raise MattingError(f"{spec.name} does not take {INPUT_LABELS[name]}.{note}")
    missing = spec.missing_inputs(present)
    if missing:
        raise MattingError(f"{spec.name} needs {' and '.join(missing)} besides the image.")
    if len([n for n in spec.one_of_inputs if n in present]) > 1:
        raise MattingError(
            f"{spec.name} takes {' or '.join(INPUT_LABELS[n] for n in spec.one_of_inputs)}, not both at once."
        )

    image = io.load_image(image, "image", max_pixels, warnings)
    shape = image.shape
    inputs = Inputs(image=image)
    if trimap_input is not None:
        inputs.trimap = trimap.validate(io.load_trimap(trimap_input, shape, max_pixels=max_pixels))
    if scribbles is not None:
        inputs.scribbles = trimap.check_scribbles(io.load_scribbles(scribbles, shape, max_pixels=max_pixels))
    if background is not None:
        inputs.background = io.load_image(background, "background plate", max_pixels, warnings)
        if inputs.background.shape != shape:
            raise MattingError(
                f"The background plate is {io.describe_size(inputs.background.shape)} but the image is "
                f"{io.describe_size(shape)} (width×height); the plate must be the same shot without the subject."
            )
    if prompts is not None:
        from . import prompts as prompt_tools

        inputs.prompts = prompt_tools.validate(prompt_tools.parse(prompts), shape)
    return inputs


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, how: str) -> np.ndarray:
    """Foreground colours F for I = αF + (1 − α)B, by pymatting's estimators (float32, in [0, 1]).

    'multilevel' runs :func:`matting.foreground.estimate_foreground_ml`, which returns pymatting's
    result bit for bit, in float32 (what that estimator computes in), so no conversion is made.
    """
    if how == "multilevel":
        from .foreground import estimate_foreground_ml

        return estimate_foreground_ml(image, alpha)  # float32, clamped to [0, 1] by the estimator
    if how == "closed_form":
        from . import _pymatting as pm

        foreground = pm.estimate_foreground_cf(image.astype(np.float64), alpha.astype(np.float64))
        return np.clip(foreground, 0.0, 1.0).astype(np.float32)
    raise ValueError(how)


class Session:
    """One method, its validated parameters and what it loaded once; :meth:`run` per image or frame.

    Sessions are safe to share between threads as long as the method's own ``compute`` is (every
    method of this package is: networks run without state, OpenCV graphs behind a lock).
    """

    def __init__(self, method_id: str, **params):
        self.spec = get(method_id)
        if self.spec.unavailable:
            raise MattingError(f"{self.spec.name} cannot run here: {self.spec.unavailable}")
        self.params = validate_params(self.spec, params)
        start = time.perf_counter()
        self.loaded = self.spec.load(self.params) if self.spec.load is not None else None
        self.load_seconds = time.perf_counter() - start

    @property
    def checkpoint(self) -> str | None:
        """The manifest id of the weights this session runs (None for a method without weights)."""
        return self.spec.checkpoint_for(self.params)

    def compute(self, inputs: Inputs):
        """The method's raw :class:`~matting.spec.MethodOutput` for prepared inputs (no measuring)."""
        if self.spec.load is not None:
            return self.spec.compute(inputs, self.params, self.loaded)
        return self.spec.compute(inputs, self.params)

    def run(self, image, trimap=None, scribbles=None, background=None, *, prompts=None,
            max_pixels: int | None = None) -> Result:
        """Run on one image; inputs as for :func:`matting.run`."""
        warnings: list[str] = []
        inputs = prepare_inputs(self.spec, image, trimap, scribbles, background, max_pixels, warnings, prompts)
        return self.run_prepared(inputs, warnings)

    def run_prepared(self, inputs: Inputs, warnings: list[str] | None = None) -> Result:
        """Run on inputs already loaded and checked (:func:`prepare_inputs`)."""
        timings = {}
        if "numba" in sys.modules:  # numba's thread count is per calling thread (matting.threads)
            limit_numba()
        with PeakMemory() as memory:
            start = time.perf_counter()
            output = self.compute(inputs)
            timings["alpha"] = time.perf_counter() - start
            alpha = self._checked_alpha(output.alpha, inputs)
            foreground = output.foreground
            how = self.params["foreground"]
            if how in FOREGROUND_ESTIMATORS[1:]:
                fg_start = time.perf_counter()
                foreground = estimate_foreground(inputs.image, alpha, how)
                timings["foreground"] = time.perf_counter() - fg_start
            elif how == "none":
                foreground = None
            seconds = time.perf_counter() - start
        timings["total"] = seconds
        maps = {name: IntermediateMap(np.asarray(m.array), m.kind, m.description) for name, m in output.maps.items()}
        return Result(
            alpha=alpha,
            foreground=None if foreground is None else np.asarray(foreground, dtype=np.float32),
            maps=maps,
            method=self.spec.id,
            params=dict(self.params),
            seconds=seconds,
            peak_memory_bytes=memory.peak_bytes,
            run_resolution=output.run_resolution or (inputs.shape[1], inputs.shape[0]),
            timings=timings,
            warnings=list(warnings or ()) + list(output.warnings),
        )

    def _checked_alpha(self, alpha, inputs: Inputs) -> np.ndarray:
        alpha = np.asarray(alpha, dtype=np.float32)
        if alpha.shape != inputs.shape:
            raise RuntimeError(f"{self.spec.id} returned alpha of shape {alpha.shape} for an image of {inputs.shape}")
        if not np.isfinite(alpha).all():
            checkpoint = self.checkpoint
            source = f" with the checkpoint '{checkpoint}'" if checkpoint else ""
            raise MattingError(
                f"{self.spec.name}{source} produced an alpha with NaN or infinite values "
                f"({int((~np.isfinite(alpha)).sum())} pixels)"
                + (": the checkpoint file is damaged or not made for this network; fetch the official one "
                   "again or upload another." if checkpoint else "."))
        return np.clip(alpha, 0.0, 1.0)

    def close(self) -> None:
        """Drop what the session loaded (the method's caches may still hold its network)."""
        self.loaded = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.params.items() if v != self.spec.param(k).default}
        return f"Session({self.spec.id!r}{''.join(f', {k}={v!r}' for k, v in changed.items())})"


def session(method_id: str, **params) -> Session:
    """A :class:`Session`: the method loaded once with ``params``, for many :meth:`Session.run` calls."""
    return Session(method_id, **params)


def run(method_id: str, image, trimap=None, scribbles=None, background=None, *, prompts=None,
        max_pixels: int | None = None, **params) -> Result:
    """Run one method on one image.

    ``image``, ``trimap``, ``scribbles`` and ``background`` accept a path, bytes, a PIL image or a
    numpy array (see :mod:`matting.io`); ``prompts`` (clicks and a box, for promptable methods) the JSON
    form of :mod:`matting.prompts` (a dict, JSON text or a ``Prompts``); ``params`` are the method's parameters (see
    ``matting.get(method_id).params``). Any problem with the input raises :class:`MattingError`.
    The result's ``seconds`` include preparing the method (``timings['load']``).
    """
    spec = get(method_id)
    validate_params(spec, params)  # parameter errors before any input is read or network loaded
    warnings: list[str] = []
    inputs = prepare_inputs(spec, image, trimap, scribbles, background, max_pixels, warnings, prompts)
    with PeakMemory() as memory:
        one = Session(method_id, **params)
        result = one.run_prepared(inputs, warnings)
    result.timings = {"load": one.load_seconds, **result.timings, "total": one.load_seconds + result.seconds}
    result.seconds += one.load_seconds
    result.peak_memory_bytes = max(result.peak_memory_bytes, memory.peak_bytes)
    return result
