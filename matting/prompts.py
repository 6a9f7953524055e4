"""Prompts: clicks and an optional box that say which object to cut out (the input of promptable
segmenters such as SAM).

The documented, JSON-serialisable form, in pixel coordinates of the original image (x to the right,
y down, the centre of the top-left pixel is (0, 0))::

    {"points": [[x, y, 1], [x, y, 0]],   # 1 = positive click (on the object), 0 = negative (not it)
     "box": [x0, y0, x1, y1]}            # optional: left, top, right, bottom

``points`` may be empty or absent when a box is given; a label may also be written ``"+"``/``"-"``
or ``true``/``false``. :func:`parse` accepts that form as a dict, as JSON text (``str`` / ``bytes``),
as a path to a ``.json`` file, or an existing :class:`Prompts`; :func:`validate` checks it against the
image size. Every problem raises :class:`~matting.errors.MattingError` with a message for a person.

>>> p = parse('{"points": [[120, 80, 1], [30, 200, 0]], "box": [10, 10, 300, 250]}')
>>> p.positive, p.negative, p.box
(((120.0, 80.0),), ((30.0, 200.0),), (10.0, 10.0, 300.0, 250.0))
>>> p.to_json()
'{"points": [[120.0, 80.0, 1], [30.0, 200.0, 0]], "box": [10.0, 10.0, 300.0, 250.0]}'

On the command line: ``--points 120,80,+ 30,200,-  --box 10,10,300,250`` (:func:`from_cli`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import MattingError

__all__ = ["Prompts", "parse", "validate", "from_cli", "MAX_POINTS", "EXAMPLE"]

MAX_POINTS = 64
EXAMPLE = '{"points": [[x, y, 1], [x, y, 0]], "box": [x0, y0, x1, y1]}'
_LABELS = {1: 1, 0: 0, True: 1, False: 0, "1": 1, "0": 0, "+": 1, "-": 0, "pos": 1, "neg": 0,
           "positive": 1, "negative": 0}


@dataclass(frozen=True)
class Prompts:
    """Clicks and an optional box, in pixel coordinates of the original image."""

    points: tuple[tuple[float, float, int], ...] = ()  # (x, y, label): 1 = positive, 0 = negative
    box: tuple[float, float, float, float] | None = None  # (x0, y0, x1, y1)

    @property
    def positive(self) -> tuple[tuple[float, float], ...]:
        return tuple((x, y) for x, y, label in self.points if label == 1)

    @property
    def negative(self) -> tuple[tuple[float, float], ...]:
        return tuple((x, y) for x, y, label in self.points if label == 0)

    def to_dict(self) -> dict:
        out: dict = {"points": [[x, y, label] for x, y, label in self.points]}
        if self.box is not None:
            out["box"] = list(self.box)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def add(self, x: float, y: float, positive: bool = True) -> "Prompts":
        return Prompts(self.points + ((float(x), float(y), 1 if positive else 0),), self.box)

    def undo(self) -> "Prompts":
        """Without the last click (or, with no click left, without the box)."""
        if self.points:
            return Prompts(self.points[:-1], self.box)
        return Prompts((), None)

    def with_box(self, box) -> "Prompts":
        return Prompts(self.points, None if box is None else _box(box))

    def __bool__(self) -> bool:
        return bool(self.points) or self.box is not None


def _number(value, what: str) -> float:
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None:
        raise MattingError(f"The prompts' {what} must be a number of pixels; got {value!r}.")
    if not math.isfinite(number):
        raise MattingError(f"The prompts' {what} must be finite; got {value!r}.")
    return number


def _point(item, index: int) -> tuple[float, float, int]:
    where = f"point {index + 1}"
    if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
        raise MattingError(f"The prompts' {where} must be [x, y, label] (label 1 = positive, 0 = negative); "
                           f"got {item!r}.")
    x, y = _number(item[0], f"{where} x"), _number(item[1], f"{where} y")
    raw = item[2] if len(item) == 3 else 1
    key = raw.strip().lower() if isinstance(raw, str) else raw
    if isinstance(key, float) and key in (0.0, 1.0):
        key = int(key)
    try:
        label = _LABELS[key]
    except (KeyError, TypeError):
        raise MattingError(f"The prompts' {where} has the label {raw!r}; use 1 (or '+') for a positive click "
                           "and 0 (or '-') for a negative one.") from None
    return x, y, label


def _box(item) -> tuple[float, float, float, float]:
    if not isinstance(item, (list, tuple)) or len(item) != 4:
        raise MattingError(f"The prompts' box must be [x0, y0, x1, y1] (left, top, right, bottom); got {item!r}.")
    x0, y0, x1, y1 = (_number(v, "box coordinate") for v in item)
    if x1 <= x0 or y1 <= y0:
        raise MattingError(f"The prompts' box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] is empty: it must be "
                           "[left, top, right, bottom] with right > left and bottom > top.")
    return x0, y0, x1, y1


def _from_text(text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise MattingError(f"The prompts are not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
                           f"Expected {EXAMPLE}.") from None


def parse(value) -> Prompts:
    """Prompts from a :class:`Prompts`, a dict, JSON text (str or bytes) or a path to a .json file.

    Only the form is checked here (numbers, labels, a non-empty box); :func:`validate` checks the
    coordinates against the image."""
    if isinstance(value, Prompts):
        return value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip().endswith(".json")
                                          and not value.lstrip().startswith(("{", "["))):
        path = Path(value)
        if not path.is_file():
            raise MattingError(f"The prompts file {str(path)!r} does not exist.")
        value = path.read_text(encoding="utf-8", errors="replace")
    if isinstance(value, str):
        if not value.strip():
            raise MattingError(f"The prompts are empty. Expected {EXAMPLE}.")
        value = _from_text(value)
    if isinstance(value, (list, tuple)):  # a bare list of points
        value = {"points": list(value)}
    if not isinstance(value, dict):
        raise MattingError(f"The prompts must be an object like {EXAMPLE}; got {type(value).__name__}.")
    unknown = sorted(set(value) - {"points", "box"})
    if unknown:
        raise MattingError(f"The prompts have unknown keys {', '.join(map(repr, unknown))}; "
                           f"only 'points' and 'box' are read ({EXAMPLE}).")
    raw_points = value.get("points") or []
    if not isinstance(raw_points, (list, tuple)):
        raise MattingError(f"The prompts' 'points' must be a list of [x, y, label]; got {raw_points!r}.")
    if len(raw_points) > MAX_POINTS:
        raise MattingError(f"The prompts have {len(raw_points)} points; at most {MAX_POINTS} are accepted.")
    points = tuple(_point(item, i) for i, item in enumerate(raw_points))
    box = value.get("box")
    return Prompts(points, None if box is None else _box(box))


def validate(prompts: Prompts, shape, require_positive: bool = True) -> Prompts:
    """Raise unless every point and the box lie inside an image of ``shape`` (H, W, ...) and (unless
    ``require_positive`` is false) there is something positive to segment (a positive click or a box)."""
    height, width = int(shape[0]), int(shape[1])
    for number, (x, y, label) in enumerate(prompts.points, 1):
        if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
            raise MattingError(f"Prompt point {number} ({x:g}, {y:g}) lies outside the image, which is "
                               f"{width}×{height} pixels (x from 0 to {width - 1}, y from 0 to {height - 1}).")
    if prompts.box is not None:
        x0, y0, x1, y1 = prompts.box
        if x0 < -0.5 or y0 < -0.5 or x1 > width - 0.5 + 1 or y1 > height - 0.5 + 1:
            raise MattingError(f"The prompts' box [{x0:g}, {y0:g}, {x1:g}, {y1:g}] reaches outside the image, "
                               f"which is {width}×{height} pixels.")
    if require_positive and not prompts.positive and prompts.box is None:
        what = "only negative clicks" if prompts.points else "no clicks"
        raise MattingError(f"The prompts have {what}: click at least once on the object (a positive point) "
                           "or draw a box around it.")
    return prompts


def from_cli(points: list[str] | None, box: str | None) -> Prompts | None:
    """Prompts from the command line: ``--points 120,80,+ 30,200,-`` and ``--box x0,y0,x1,y1``
    (None when neither is given). A point without a label is positive."""
    if not points and not box:
        return None
    parsed = []
    for text in points or ():
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) not in (2, 3):
            raise MattingError(f"--points takes x,y,+ or x,y,- (for example 120,80,+); got {text!r}.")
        parsed.append(parts)
    box_value = None
    if box:
        box_value = [p.strip() for p in str(box).split(",")]
    return parse({"points": parsed, **({"box": box_value} if box_value is not None else {})})
