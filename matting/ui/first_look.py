"""The app's first impression: it opens with an example loaded and one result shown, so that a
visitor sees the workbench working before touching anything.

The result is U²-NetP → trimap → closed-form on the astronaut portrait (offline: U²-NetP is one of the
default weights), shown in the Automatic tab; where that method cannot run (its weights are missing and
this server works offline, or the fetch fails) it is closed-form matting with the example's trimap, in
the Trimap tab. It is computed once per process, on the first page load (API clients never pay for
it), and each later visit gets the same pictures at once. The page-load event also puts the photo in
the photo input and its trimap in the painter, so every tab can run straight away.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..errors import MattingError
from ..registry import get, methods
from ..runner import run
from . import checkpoints, editor, handlers
from .examples import FIRST_LOOK

log = logging.getLogger("matting.ui")

AUTOMATIC, FALLBACK = FIRST_LOOK  # (family, method id) presets, kept with the other example presets
NOTE = ("\n\nThis is an example result, made by this app on the astronaut photo. Upload your own photo above, "
        "or pick another example, then press Run.")
_current: "FirstLook | None" = None  # the one wired into the last app built (see warm)


def plan() -> tuple[str, str] | None:
    """(family, method id) of the first result, decided when the app is built (no run, no download)."""
    registered = {spec.id for spec in methods()}
    family, method_id = AUTOMATIC
    if method_id in registered:
        spec = get(method_id)
        if not spec.unavailable and (checkpoints.is_ready(spec) or checkpoints.auto_fetch()):
            return AUTOMATIC
    return FALLBACK if FALLBACK[1] in registered else None


@dataclass
class _Shown:
    family: str
    spec: object
    image: object
    levels: object
    result: object
    inputs: dict
    outputs: handlers.RunOutputs | None = None


class FirstLook:
    """What the page-load event returns: computed once, shared by every visit."""

    def __init__(self, example, families: tuple[str, ...]):
        self.example = example
        self.families = families  # the result panels that are outputs, in order
        self._shown: _Shown | None = None
        self._lock = threading.Lock()

    def _compute(self) -> _Shown:
        from .. import io

        image = io.load_image(self.example.photo, "photo")
        levels = io.load_trimap(self.example.trimap, image.shape) if self.example.trimap else None
        chosen = plan()
        if chosen == AUTOMATIC:
            try:
                return _Shown("automatic", get(AUTOMATIC[1]), image, levels, run(AUTOMATIC[1], image), {})
            except MattingError as exc:
                log.warning("first look: %s could not run (%s); showing closed-form instead", AUTOMATIC[1], exc)
        inputs = {"trimap": levels}
        return _Shown("trimap", get(FALLBACK[1]), image, levels, run(FALLBACK[1], image, trimap=levels), inputs)

    def _outputs(self) -> _Shown:
        with self._lock:
            if self._shown is None:
                self._shown = self._compute()
            shown = self._shown
            folder = Path(shown.outputs.state["folder"]) if shown.outputs else None
            if folder is None or not folder.is_dir():  # first visit, or the run folder was cleaned up
                outputs = handlers.present_result(shown.spec, shown.image, shown.result, shown.inputs, None,
                                                  "checkerboard", None, None)
                shown.outputs = outputs._replace(status=outputs.status + NOTE)
            return shown

    def on_load(self):
        try:
            shown = self._outputs()
        except Exception:  # noqa: BLE001 - a first impression must never break the page
            log.exception("first look: could not prepare the example result")
            return [gr.update()] * (7 + len(self.families) * (1 + len(handlers.RunOutputs._fields)))
        image = shown.image
        values = [
            gr.Tabs(selected=shown.family),
            self.example.photo,
            handlers.preview(image),
            editor.editor_value(image, shown.levels),
            handlers.MODE_TRIMAP,
            f"**Photo:** {image.shape[1]}×{image.shape[0]} px (example: {self.example.label})",
            handlers._trimap_note("Loaded the example's trimap", shown.levels) if shown.levels is not None else "",
        ]
        for family in self.families:
            if family == shown.family:
                values += [shown.spec.id, *shown.outputs]
            else:
                values += [gr.update()] * (1 + len(handlers.RunOutputs._fields))
        return values


def wire(demo, tabs, shared, tab_parts: dict, example) -> None:
    """Fill the page on load: ``tab_parts`` maps family -> (method dropdown, result panel)."""
    if example is None or plan() is None:
        return
    families = tuple(f for f in (AUTOMATIC[0], FALLBACK[0]) if f in tab_parts)
    if not families:
        return
    look = FirstLook(example, families)
    outputs = [tabs, shared.photo_file, shared.photo_preview, shared.painter, shared.input_mode, shared.photo_note,
               shared.painter_note]
    for family in families:
        method, panel = tab_parts[family]
        outputs += [method, *panel.outputs()]
    global _current
    _current = look
    demo.load(look.on_load, None, outputs, api_name="first_look", api_visibility="private",
              concurrency_limit=2, show_progress="hidden")


def warm() -> threading.Thread | None:
    """Compute the first result in the background now (app.py calls it at start-up), so that the first
    visitor does not wait for it."""
    look = _current
    if look is None:
        return None

    def compute():
        try:
            look._outputs()
        except Exception:  # noqa: BLE001 - on_load will try again and log
            log.exception("first look: could not prepare the example result")

    thread = threading.Thread(target=compute, name="first look", daemon=True)
    thread.start()
    return thread
