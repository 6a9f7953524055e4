"""The typed vocabulary shared by every method, the CLI, the app, the notebooks and the benchmarks."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .errors import MattingError
from .io import Scribbles

FAMILIES = {
    "trimap": "Trimap & strokes",
    "automatic": "Automatic",
    "background": "Background plate",
    "prompts": "Click to select",
}
INPUT_NAMES = ("trimap", "scribbles", "background", "prompts")
INPUT_LABELS = {"trimap": "a trimap", "scribbles": "scribbles", "background": "a background plate",
                "prompts": "prompts (clicks or a box, see matting.prompts)"}
MAP_KINDS = ("alpha", "error", "rgb", "overlay", "trimap")
FOREGROUND_ESTIMATORS = ("none", "multilevel", "closed_form")  # besides a method's own ('model')


@dataclass(frozen=True)
class Param:
    """One user-settable parameter; enough for the UI to build a control without special cases."""

    name: str
    default: Any
    help: str
    kind: str = "float"  # float | int | bool | choice
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple = ()
    log_scale: bool = False
    label: str | None = None
    # For a choice that picks a checkpoint: choice value → manifest id (the app's uploads, the CLI's
    # --weights and the smoke tests read which value loads which file from here).
    checkpoints: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def validate(self, value, method_id: str):
        """The value as the method receives it, or MattingError; never another exception, whatever ``value`` is."""
        where = f"Parameter {self.name!r} of {method_id}"
        shown = _shown(value)
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value.item()
        if self.kind == "choice":
            for choice in self.choices:
                if _same_scalar(value, choice):
                    return choice
            raise MattingError(f"{where} must be one of {', '.join(map(repr, self.choices))}; got {shown}.")
        if self.kind == "bool":
            if isinstance(value, (bool, np.bool_)):
                return bool(value)
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
                return value.strip().lower() in ("1", "true")
            if _same_scalar(value, 0) or _same_scalar(value, 1):
                return bool(value)
            raise MattingError(f"{where} must be true or false; got {shown}.")
        if isinstance(value, (np.ndarray, complex, np.complexfloating)):
            raise MattingError(f"{where} must be a single real number; got {shown}.")
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float (e.g. 10**400, or -p radius=1000…0)
            raise MattingError(f"{where} is far too large; got {shown}.") from None
        except Exception:  # noqa: BLE001 - TypeError, ValueError or whatever a hostile __float__ raises
            raise MattingError(f"{where} must be a number; got {shown}.") from None
        if not math.isfinite(number):
            raise MattingError(f"{where} must be finite; got {shown}.")
        if self.kind == "int":
            if number != int(number):
                raise MattingError(f"{where} must be a whole number; got {shown}.")
            number = int(number)
        low, high = self.minimum, self.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            if low is not None and high is not None:
                bounds = f"between {low:g} and {high:g}"
            else:
                bounds = f"at least {low:g}" if low is not None else f"at most {high:g}"
            raise MattingError(f"{where} must be {bounds}; got {shown}.")
        return number


def _shown(value, limit: int = 80) -> str:
    """repr() of a user value for a message: bounded, and never raising (ints over 4300 digits, odd objects)."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _same_scalar(value, choice) -> bool:
    """value == choice for plain scalars only: arrays, containers and objects with odd __eq__ never match."""
    if isinstance(value, np.generic):
        value = value.item()
    if type(value) is not type(choice) and not (
        isinstance(value, numbers.Real) and isinstance(choice, numbers.Real)
        and not isinstance(value, bool) and not isinstance(choice, bool)
    ):
        return False
    try:
        return bool(value == choice)
    except Exception:  # noqa: BLE001
        return False


@dataclass(frozen=True)
class Card:
    """What a person needs to know about a method: where it comes from, its licences, how it works."""

    paper: str
    authors: str
    year: int
    venue: str
    paper_url: str
    code: str
    code_license: str
    weights_license: str
    how_it_works: str
    notes: str = ""


@dataclass(frozen=True)
class OutputMap:
    """Declaration of a named intermediate map a method returns."""

    name: str
    kind: str  # one of MAP_KINDS
    description: str


@dataclass(frozen=True)
class IntermediateMap:
    array: np.ndarray
    kind: str
    description: str


@dataclass
class Inputs:
    """Validated inputs handed to a method: all arrays already at the image's size."""

    image: np.ndarray  # float32 H×W×3 in [0, 1]
    trimap: np.ndarray | None = None  # uint8 H×W in {0, 128, 255}
    scribbles: Scribbles | None = None
    background: np.ndarray | None = None  # float32 H×W×3 in [0, 1]
    prompts: Any = None  # matting.prompts.Prompts, checked against the image size

    @property
    def shape(self):
        return self.image.shape[:2]


@dataclass
class MethodOutput:
    """What a method's compute function returns (the registry adds timing, memory, parameters)."""

    alpha: np.ndarray
    foreground: np.ndarray | None = None
    maps: dict[str, IntermediateMap] = field(default_factory=dict)
    run_resolution: tuple[int, int] | None = None  # (width, height) the method really ran at
    warnings: list[str] = field(default_factory=list)


@dataclass
class Result:
    """Everything one ``matting.run`` produced."""

    alpha: np.ndarray  # float32 H×W in [0, 1]
    foreground: np.ndarray | None  # float32 H×W×3 in [0, 1], or None
    maps: dict[str, IntermediateMap]
    method: str
    params: dict[str, Any]
    seconds: float
    peak_memory_bytes: int
    run_resolution: tuple[int, int]  # (width, height)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.alpha.shape[1], self.alpha.shape[0]

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (no arrays)."""
        return {
            "method": self.method,
            "params": self.params,
            "seconds": round(self.seconds, 4),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "peak_memory_mb": round(self.peak_memory_bytes / 2**20, 1),
            "input_size": list(self.size),
            "run_resolution": list(self.run_resolution),
            "maps": {name: {"kind": m.kind, "description": m.description} for name, m in self.maps.items()},
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: identity, inputs, parameters, card, weights and its compute function.

    ``required_inputs`` must all be given; of ``one_of_inputs`` exactly one must be given (e.g. a trimap
    or scribbles); ``optional_inputs`` may be given. The image is always required.

    ``compute(inputs, params)`` returns a :class:`MethodOutput`. A method with something expensive to
    prepare once (a network to load) also declares ``load(params)``; its result is then handed to compute
    as a third argument, ``compute(inputs, params, loaded)``, and a :func:`matting.session` keeps it for
    every image or frame. ``load`` raises :class:`MattingError` when weights are missing.
    """

    id: str
    name: str
    family: str  # key of FAMILIES
    compute: Callable[..., MethodOutput]
    card: Card
    params: tuple[Param, ...] = ()
    required_inputs: tuple[str, ...] = ()
    one_of_inputs: tuple[str, ...] = ()
    optional_inputs: tuple[str, ...] = ()
    outputs: tuple[OutputMap, ...] = ()
    weights: tuple[str, ...] = ()  # manifest ids; a Param with ``checkpoints`` picks among those it maps,
    #                                the others are all needed (see checkpoints_for)
    provides_foreground: bool = False
    scribbles_note: str = ""  # why a method does not take scribbles, if it does not
    load: Callable[[dict], Any] | None = None
    unavailable: str = ""  # non-empty: the method is listed with its card but cannot run, and this says why

    @property
    def accepted_inputs(self) -> tuple[str, ...]:
        return tuple(n for n in INPUT_NAMES if n in self.required_inputs + self.one_of_inputs + self.optional_inputs)

    def accepts(self, name: str) -> bool:
        return name in self.accepted_inputs

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def missing_inputs(self, given) -> list[str]:
        """Labels of what is still needed besides the image, given the names of the inputs present
        (an empty list when the method can run). The one rule for the runner, the app and the CLI."""
        given = set(given)
        missing = [INPUT_LABELS[n] for n in self.required_inputs if n not in given]
        if self.one_of_inputs and not given & set(self.one_of_inputs):
            missing.append(" or ".join(INPUT_LABELS[n] for n in self.one_of_inputs))
        return missing

    def describe_needs(self) -> str:
        return "image" + "".join(f" + {p}" for p in self.missing_inputs(()))

    @property
    def checkpoint_param(self) -> Param | None:
        """The parameter whose choice picks the checkpoint, if the method has several."""
        return next((p for p in self.params if p.checkpoints), None)

    def checkpoints_for(self, params: Mapping) -> tuple[str, ...]:
        """Every manifest id that a run with ``params`` loads: the one a checkpoint parameter picks,
        plus each listed checkpoint that no parameter chooses (those are always needed, e.g. SIM's
        matting network and its classifier)."""
        chooser = self.checkpoint_param
        chosen = () if chooser is None else (chooser.checkpoints[params.get(chooser.name, chooser.default)],)
        always = tuple(c for c in self.weights if chooser is None or c not in chooser.checkpoints.values())
        return chosen + always

    def checkpoint_for(self, params: Mapping) -> str | None:
        """The (first) manifest id that a run with ``params`` loads; None for a method without weights."""
        needed = self.checkpoints_for(params)
        return needed[0] if needed else None

    def can_run_with(self, usable: Callable[[str], bool]) -> bool:
        """Whether some choice of parameters finds every checkpoint it needs usable."""
        if self.unavailable:
            return False
        chooser = self.checkpoint_param
        always = self.checkpoints_for({chooser.name: chooser.default} if chooser else {})[1 if chooser else 0:]
        return all(usable(c) for c in always) and (
            chooser is None or any(usable(c) for c in chooser.checkpoints.values()))

    def params_selecting(self, checkpoint_id: str) -> dict | None:
        """Parameter values that make a run load ``checkpoint_id`` ({} when nothing needs choosing),
        or None when no run of this method loads it."""
        if checkpoint_id not in self.weights:
            return None
        chooser = self.checkpoint_param
        if chooser is None or checkpoint_id not in chooser.checkpoints.values():
            return {}
        return next({chooser.name: value} for value, cid in chooser.checkpoints.items() if cid == checkpoint_id)
