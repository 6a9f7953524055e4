"""Downloading checkpoints from the browser: a Download button beside each weights panel's upload,
with the file's size and licence next to it, and the download's progress (bytes, speed, time left) in
the app's progress bar. The same progress adapter reports checkpoints fetched on first use during a run.

Everything here is written for a person at the browser: no server paths, settings or commands.
"""
from __future__ import annotations

import time

import gradio as gr

from ..errors import MattingError
from . import checkpoints


def _weights():
    from .. import weights

    return weights


class GradioDownloadProgress:
    """``on_progress(done, total)`` for :func:`matting.weights.fetch` that drives a ``gr.Progress``:
    'Downloading modnet….ckpt: 12.3 MB of 26.3 MB · 4.1 MB/s · 3 s left', a few times a second."""

    def __init__(self, progress, item, min_interval_s: float = 0.25, clock=time.monotonic):
        self.progress = progress
        self.item = item
        self.meter = _weights().Meter(clock=clock)
        self.clock = clock
        self.min_interval_s = min_interval_s
        self.last_shown = None

    def __call__(self, done: int, total: int | None) -> None:
        self.meter.update(done, total)
        now = self.clock()
        finished = total is not None and done >= total
        if self.last_shown is not None and now - self.last_shown < self.min_interval_s and not finished:
            return
        self.last_shown = now
        self.progress(self.meter.fraction, desc=f"Downloading {self.item.file}: {self.meter.text()}")


def reporting_to(progress):
    """Context manager: checkpoints fetched on first use inside it report to ``progress`` (a gr.Progress)."""
    return _weights().reporting(lambda item: GradioDownloadProgress(progress, item))


# --------------------------------------------------------------------------- the button and its note

def license_note(terms: str) -> str:
    lowered = terms.lower()
    if "non-commercial" in lowered or "-nc" in lowered:
        return " · **non-commercial licence**: research and teaching only"
    if "not-stated" in lowered or "none stated" in lowered:
        return " · **no licence stated**: treat it as non-commercial"
    return ""


def download_note(checkpoint_id) -> str:
    """Size and licence of the chosen checkpoint, and what Download does."""
    if not checkpoint_id:
        return ""
    weights = _weights()
    try:
        item = weights.entry(checkpoint_id)
    except MattingError as exc:
        return exc.for_browser
    text = f"`{item.file}` · {item.size_text} · licence {item.license}{license_note(item.license)}"
    state = checkpoints.checkpoint_state(item.id)
    if state in weights.USABLE:
        return f"{text} · on this server"
    if weights.offline_reason():
        return f"{text} · this server works offline, so Download is off; upload the file instead"
    return f"{text} · Download fetches it from its published sources and checks its checksum"


def download_button_update(checkpoint_id):
    weights = _weights()
    if not checkpoint_id:
        return gr.update(value="Download", interactive=False)
    try:
        item = weights.entry(checkpoint_id)
    except MattingError:
        return gr.update(value="Download", interactive=False)
    if checkpoints.checkpoint_state(item.id) in weights.USABLE:
        return gr.update(value=f"{item.id} is on this server", interactive=False)
    return gr.update(value=f"Download ({item.size_text})", interactive=not weights.offline_reason())


def on_checkpoint_choice(checkpoint_id):
    """The checkpoint dropdown changed: the button's label and the note beside it."""
    return download_button_update(checkpoint_id), download_note(checkpoint_id)


def download(checkpoint_id, progress) -> str:
    """Fetch ``checkpoint_id`` with its progress in ``progress``; a short confirmation."""
    weights = _weights()
    if not checkpoint_id:
        raise MattingError("Choose which checkpoint to download.")
    item = weights.entry(checkpoint_id)
    if checkpoints.checkpoint_state(item.id) in weights.USABLE:
        return f"`{item.id}` is already on this server."
    why_off = weights.offline_reason()
    if why_off:
        raise MattingError(f"Not downloading {item.file}: {why_off}.",
                           browser=f"This server works offline, so it does not download {item.file} "
                                   f"({item.size_text}). If you have the file, upload it instead.")
    progress(0.0, desc=f"Downloading {item.file} ({item.size_text})")
    weights.fetch(item.id, on_progress=GradioDownloadProgress(progress, item))
    return f"**Downloaded** `{item.id}` ({item.file}, {item.size_text}); its checksum was verified."


def download_row(checkpoint_id):
    """The button and its note (call inside a Blocks context); returns (button, note)."""
    with gr.Row(equal_height=True):
        button = gr.Button("Download", variant="secondary", scale=0, min_width=200,
                           **_initial_button(checkpoint_id))
        note = gr.Markdown(download_note(checkpoint_id), elem_classes=["small-note"])
    return button, note


def _initial_button(checkpoint_id) -> dict:
    update = download_button_update(checkpoint_id)
    return {"value": update.get("value", "Download"), "interactive": update.get("interactive", True)}


# --------------------------------------------------------------------------- event handlers (wrapped in
# handlers.friendly by the layout, so a failure reaches the browser in its browser wording)

def on_download_in_tab(method_id, checkpoint_id, progress=gr.Progress()):
    """A family tab's Download: fetch, then the panel's status, button and note."""
    from ..registry import get

    confirmation = download(checkpoint_id, progress)
    status = checkpoints.status_markdown(get(method_id)) if method_id else ""
    return f"{confirmation}\n\n{status}", *on_checkpoint_choice(checkpoint_id)


def on_download_any(checkpoint_id, progress=gr.Progress()):
    """The Methods tab's Download: fetch, then the confirmation, the overview, button and note."""
    from .cards import methods_overview

    confirmation = download(checkpoint_id, progress)
    return confirmation, methods_overview(), *on_checkpoint_choice(checkpoint_id)
