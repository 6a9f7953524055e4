"""Event handlers of the app. Plain functions of component values, so they can be tested without a
browser; nothing here knows about a particular method: everything comes from the method specs."""
from __future__ import annotations

import functools
import inspect
import logging
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numpy as np

import gradio as gr

from .. import composite, export, io, metrics, trimap, visualise
from ..errors import MattingError
from ..registry import get, methods
from ..runner import run
from .. import plate
from . import checkpoints, downloads, editor, messages
from .cards import method_summary, methods_overview
from .controls import Slot, collect_params, control_update, slot_param

log = logging.getLogger("matting.ui")

MODE_TRIMAP = "Trimap"
MODE_SCRIBBLES = "Scribbles"
INPUT_MODES = (MODE_TRIMAP, MODE_SCRIBBLES)
BACKDROP_LABELS = {"checkerboard": "Checkerboard", "colour": "Colour", "image": "Picture", "blur": "Blurred original"}
DEFAULT_BAND = 10
KEEP_OUTPUTS_S = 3 * 3600
PREVIEW_SIDE = 1024


# --------------------------------------------------------------------------- plumbing

def friendly(handler):
    """Every rejection of user input reaches the user as its own message, in its browser wording (no
    server paths or settings: :mod:`.messages`); anything else as a short note (the traceback goes to
    the log, not the browser). Pictures returned as arrays are handed to Gradio as files of this request
    (:func:`as_files`), never through its shared content-hashed cache."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return as_files(handler(*args, **kwargs))
        except gr.Error:
            raise
        except MattingError as exc:
            raise gr.Error(messages.for_browser(exc), duration=20, print_exception=False) from None
        except Exception as exc:  # noqa: BLE001 - the browser gets a readable line, the log the details
            log.error("Unexpected error in %s:\n%s", handler.__name__, traceback.format_exc())
            raise gr.Error(f"Something went wrong inside the app ({type(exc).__name__}: {messages.scrub(str(exc))}). "
                           "This is a bug, not your input; the details are in the server log.",
                           print_exception=False) from None

    return wrapper


def as_files(value, folder: list | None = None):
    """``value`` with every image array (in tuples, lists, dicts and ``gr.update``s) replaced by the path
    of a PNG written atomically into a fresh folder of this request.

    Gradio saves a returned array under a path named by the hash of its content, writing it in place; two
    requests with the same result (people clicking the same example) wrote the same file at once, and
    clients read truncated PNGs. A returned path is copied into Gradio's cache through a temporary file
    and a rename, so every client gets a whole file."""
    folder = [] if folder is None else folder
    if isinstance(value, np.ndarray) and value.dtype != object and (
            value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (1, 3, 4))):
        if not folder:
            folder.append(new_output_dir("view"))
        folder.append(None)  # one entry per file written: the next file's number
        path = folder[0] / f"{len(folder) - 1}.png"
        return str(io.save_png(path, value[:, :, 0] if value.ndim == 3 and value.shape[2] == 1 else value))
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple outputs
        return type(value)(*(as_files(item, folder) for item in value))
    if isinstance(value, (tuple, list)):
        return type(value)(as_files(item, folder) for item in value)
    if isinstance(value, dict):
        return {key: as_files(item, folder) for key, item in value.items()}
    return value


def max_pixels() -> int:
    return io.max_pixels_default()


def output_root() -> Path:
    return Path(tempfile.gettempdir()) / "matting-app" / str(os.getpid())


def new_output_dir(prefix: str) -> Path:
    """A fresh folder for one run's files; folders older than a few hours are removed."""
    root = output_root()
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - KEEP_OUTPUTS_S
    for old in root.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:
            pass
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root))


def load_photo(photo_file) -> np.ndarray:
    if not photo_file:
        raise MattingError("Upload a photo first (or pick one of the examples).")
    return io.load_image(photo_file, "photo", max_pixels())


def load_ground_truth(ground_truth_file, shape) -> np.ndarray | None:
    if not ground_truth_file:
        return None
    return io.load_alpha(ground_truth_file, shape, max_pixels=max_pixels())


def u8(array) -> np.ndarray | None:
    return None if array is None else io.to_uint8(np.asarray(array, np.float32))


def preview(image: np.ndarray) -> np.ndarray:
    """A display copy (long side ≤ 1024); full-resolution results are in the downloads."""
    return u8(_shrink(image, PREVIEW_SIDE) if max(image.shape[:2]) > PREVIEW_SIDE else image)


def _shrink(image: np.ndarray, side: int) -> np.ndarray:
    import cv2

    scale = side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def method_choices(family: str | None = None) -> list[tuple[str, str]]:
    """The methods a family tab offers: those that can run (a card-only entry is in Methods and Compare)."""
    return [(spec.name, spec.id) for spec in methods(family) if not spec.unavailable]


def spec_for(method_id):
    if not method_id:
        raise MattingError("Choose a method first.")
    return get(method_id)


# --------------------------------------------------------------------------- inputs

def brush_for(mode: str):
    colours = ["#ffffff", "#000000", "#808080"] if mode != MODE_SCRIBBLES else ["#ffffff", "#000000"]
    return gr.Brush(colors=colours, default_color="#ffffff", color_mode="fixed", default_size="auto")


LEGENDS = {
    MODE_TRIMAP: "**Trimap brushes:** white = definitely foreground · black = definitely background · "
                 "grey = unknown. Unpainted pixels are unknown too; the method decides every unknown pixel.",
    MODE_SCRIBBLES: "**Scribble brushes:** white strokes on the subject, black strokes on the background; "
                    "everything else is decided by the method. Methods that need a dense trimap: "
                    "use **Strokes → trimap**.",
}


@friendly
def on_photo(photo_file, plate_file=None):
    """Photo uploaded: preview, editor canvas, size note, and a fresh check of the plate against it."""
    if not photo_file:
        return None, None, "No photo yet.", None, ""
    warnings: list[str] = []
    image = io.load_image(photo_file, "photo", max_pixels(), warnings)
    height, width = image.shape[:2]
    note = f"**Photo:** {width}×{height} px"
    scale = editor.editor_scale(image.shape)
    if scale < 1:
        eh, ew = editor.editor_size(image.shape)
        note += (f" · shown in the painter at {ew}×{eh}; painted trimaps are scaled back to full "
                 "resolution")
    for warning in warnings:
        note += f"\n\n**Warning:** {warning}"
    plate_preview, plate_note = _plate_outputs(image, plate_file)
    return preview(image), editor.editor_value(image), note, plate_preview, plate_note


def on_mode(mode):
    return gr.update(brush=brush_for(mode)), LEGENDS.get(mode, "")


@friendly
def on_trimap_file(photo_file, trimap_file):
    """An uploaded trimap is loaded into the painter, where it can be touched up."""
    image = load_photo(photo_file)
    if not trimap_file:
        raise MattingError("Choose a trimap file to load.")
    levels = io.load_trimap(trimap_file, image.shape, max_pixels=max_pixels())
    trimap.validate(levels, "uploaded trimap")
    return editor.editor_value(image, levels), MODE_TRIMAP, _trimap_note("Loaded the uploaded trimap", levels)


def _trimap_note(what: str, levels: np.ndarray) -> str:
    return (f"**Done:** {what} into the painter ({trimap.unknown_fraction(levels):.0%} unknown). "
            "Touch it up with the brushes, then run a method.")


@friendly
def on_auto_trimap(photo_file, method_id, band=DEFAULT_BAND, progress=gr.Progress()):
    """Preload an editable trimap made from an automatic method's mask."""
    image = load_photo(photo_file)
    spec = spec_for(method_id)
    progress(0.1, desc=f"Running {spec.name} for a mask")
    with downloads.reporting_to(progress):  # a checkpoint fetched on first use shows its download
        mask = run(spec.id, image, max_pixels=max_pixels(), foreground="none").alpha
    band = int(band if band is not None else DEFAULT_BAND)
    progress(0.9, desc="Making the trimap")
    levels = trimap.from_mask(mask, erode=band, dilate=band)
    trimap.validate(levels, f"trimap from {spec.name}")
    return editor.editor_value(image, levels), MODE_TRIMAP, _trimap_note(
        f"Made a trimap from {spec.name}'s mask (band {band} px) and loaded it", levels)


@friendly
def on_strokes_to_trimap(photo_file, editor_value, progress=gr.Progress()):
    """Scribbles → a dense trimap (closed-form propagation of the strokes), for methods that need one."""
    image = load_photo(photo_file)
    scribbles = editor.scribbles_from_editor(editor_value, image.shape)
    if scribbles is None:
        raise MattingError("Paint some white strokes on the subject and black strokes on the background first.")
    progress(0.2, desc="Propagating the strokes")
    levels = trimap.dense_from_scribbles(image, scribbles)
    trimap.validate(levels, "trimap from the strokes")
    return editor.editor_value(image, levels), MODE_TRIMAP, _trimap_note("Turned the strokes into a trimap", levels)


def _plate_outputs(image, plate_file):
    if not plate_file:
        return None, ""
    background = io.load_image(plate_file, "background plate", max_pixels())
    check = plate.check_plate(image, background)
    if check.warnings:
        note = "\n\n".join(f"**Warning:** {w}" for w in check.warnings)
    else:
        note = (f"**Looks right:** same size, aligned, and {check.changed_fraction:.0%} of the pixels differ "
                "(that should be the subject).")
    return (None if check.preview is None else u8(check.preview)), note


@friendly
def on_plate(photo_file=None, plate_file=None):
    """Plate uploaded: |photo − plate| preview and a warning when it cannot be the photo's background."""
    if not plate_file:
        return None, ""
    if not photo_file:
        io.load_image(plate_file, "background plate", max_pixels())  # still say if it is not an image
        return None, "Plate loaded; upload the photo to check it against the plate."
    return _plate_outputs(load_photo(photo_file), plate_file)


@friendly
def on_ground_truth(photo_file=None, ground_truth_file=None):
    if not ground_truth_file:
        return "No ground truth: metrics and error maps are off."
    if not photo_file:
        io.load_alpha(ground_truth_file, max_pixels=max_pixels())
        return "Ground truth loaded; it will be checked against the photo's size."
    image = load_photo(photo_file)
    load_ground_truth(ground_truth_file, image.shape)
    return "**Ground truth loaded:** every run now shows |α − α_gt| and SAD / MSE / Grad / Conn."


def gather_inputs(spec, image, mode, editor_value, plate_file) -> dict:
    """The inputs this method takes, from the painter and the plate upload."""
    inputs = {}
    if spec.accepts("trimap") or spec.accepts("scribbles"):
        if mode == MODE_SCRIBBLES:
            inputs["scribbles"] = editor.scribbles_from_editor(editor_value, image.shape)
        else:
            inputs["trimap"] = editor.trimap_from_editor(editor_value, image.shape)
        if mode == MODE_SCRIBBLES and inputs["scribbles"] is not None and not spec.accepts("scribbles"):
            note = f" {spec.scribbles_note}" if spec.scribbles_note else ""
            raise MattingError(f"{spec.name} does not take scribbles.{note}")
    if spec.accepts("background") and plate_file:
        inputs["background"] = io.load_image(plate_file, "background plate", max_pixels())
    return {name: value for name, value in inputs.items() if value is not None}


def missing_inputs(spec, inputs: dict) -> str | None:
    """Why the method cannot run with these inputs, or None (the spec's own rule)."""
    if spec.unavailable:
        return f"cannot run here: {spec.unavailable}"
    missing = spec.missing_inputs(inputs)
    return f"needs {' and '.join(missing)}" if missing else None


# --------------------------------------------------------------------------- method selection

def weights_choices(spec) -> list[str]:
    return list(spec.weights)


def select_method(slots: list[Slot]):
    """Handler factory: a method was chosen in a family tab."""

    def on_select(method_id):
        if not method_id:
            return ("No method selected.", gr.update(visible=False), "", gr.update(),
                    *[gr.update(visible=False) for _ in slots])
        try:
            spec = get(method_id)
        except MattingError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return (
            method_summary(spec),
            gr.update(visible=bool(spec.weights), open=not checkpoints.is_ready(spec)),
            checkpoints.status_markdown(spec),
            gr.update(choices=weights_choices(spec), value=spec.weights[0] if spec.weights else None),
            *[control_update(slot, slot_param(slot, spec)) for slot in slots],
        )

    return on_select


@friendly
def on_use_weights(method_id, checkpoint_id, checkpoint_file=None, progress=gr.Progress()):
    """Upload of a checkpoint: validate it through the method's own loading, then use it."""
    spec = get(method_id) if method_id else None
    progress(0.2, desc="Checking the checkpoint")
    confirmation = checkpoints.use_uploaded_checkpoint(checkpoint_id, checkpoint_file, spec)
    status = checkpoints.status_markdown(spec) if spec else ""
    return f"{confirmation}\n\n{status}"


@friendly
def on_use_any_weights(checkpoint_id, checkpoint_file=None, progress=gr.Progress()):
    progress(0.2, desc="Checking the checkpoint")
    return checkpoints.use_uploaded_checkpoint(checkpoint_id, checkpoint_file), methods_overview()


# --------------------------------------------------------------------------- one run

class RunOutputs(NamedTuple):
    status: str
    alpha: object
    foreground: object
    composite: object
    cutout: object
    maps: object
    error_plot: object
    metrics: object
    details: object
    state: object


def _metrics_table(alpha, ground_truth, region_trimap, label: str):
    import pandas as pd

    values = metrics.all_metrics(alpha, ground_truth, trimap=region_trimap)
    row = {"method": label}
    row.update({metrics.METRIC_UNITS[name]: round(values[name], 4) for name in metrics.METRIC_NAMES})
    row["region"] = "unknown pixels of the trimap" if region_trimap is not None else "whole image"
    return pd.DataFrame([row]), values


def render_composite(image, foreground, alpha, backdrop, colour, backdrop_file):
    return u8(composite.composite(backdrop or "checkerboard", image, foreground, alpha,
                                  colour or "#00b140", backdrop_file))


def _map_gallery(result, saved: dict, error=None) -> list[tuple]:
    """The maps as gallery items: the PNGs ``save_result`` just wrote (Gradio would encode arrays again)."""
    items = []
    for name, item in result.maps.items():
        items.append((str(saved[f"maps/{name}"]), f"{name}: {item.description}"))
    if error is not None:
        items.append((u8(visualise.colourise_error(error)), "|α − α_gt|: absolute error against the ground truth"))
    return items


def run_summary_line(spec, result, image) -> str:
    width, height = result.run_resolution
    text = (f"**Done:** {spec.name} finished in **{result.seconds:.2f} s** · peak memory "
            f"**{result.peak_memory_bytes / 2**20:.0f} MB** · ran at **{width}×{height}**")
    if (width, height) != (image.shape[1], image.shape[0]):
        text += f" (photo {image.shape[1]}×{image.shape[0]}; results are at full size)"
    return text


def run_method(slots: list[Slot]):
    """Handler factory: the Run button of a family tab (parameters arrive as keyword inputs)."""

    @friendly
    def run_selected(method_id, photo_file, input_mode=MODE_TRIMAP, editor_value=None, plate_file=None,
                     ground_truth_file=None, backdrop="checkerboard", backdrop_colour="#00b140",
                     backdrop_file=None, progress=gr.Progress(), **params):
        spec = spec_for(method_id)
        progress(0.02, desc="Reading the inputs")
        image = load_photo(photo_file)
        inputs = gather_inputs(spec, image, input_mode, editor_value, plate_file)
        ground_truth = load_ground_truth(ground_truth_file, image.shape)
        values = collect_params(spec, slots, params)
        progress(0.1, desc=f"Running {spec.name}")
        with downloads.reporting_to(progress):  # a checkpoint fetched on first use shows its download
            result = run(spec.id, image, max_pixels=max_pixels(), **inputs, **values)
        progress(0.85, desc="Composites, maps and metrics")
        return present_result(spec, image, result, inputs, ground_truth, backdrop, backdrop_colour, backdrop_file)

    # Name every parameter in the signature (default None = the method's default), so that Gradio's
    # API page and gradio_client list them as optional keyword arguments.
    signature = inspect.signature(run_selected)
    fixed = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    keywords = [inspect.Parameter(slot.key, inspect.Parameter.KEYWORD_ONLY, default=None) for slot in slots]
    run_selected.__signature__ = signature.replace(parameters=fixed + keywords)
    return run_selected


def present_result(spec, image, result, inputs, ground_truth, backdrop, colour, backdrop_file) -> RunOutputs:
    folder = new_output_dir(spec.id)
    notes = list(result.warnings)
    try:
        composited = render_composite(image, result.foreground, result.alpha, backdrop, colour, backdrop_file)
    except MattingError as exc:
        notes.append(f"Composite: {exc}")
        composited = render_composite(image, result.foreground, result.alpha, "checkerboard", None, None)
    saved = export.save_result(result, image, folder, composited=composited, also={"photo": ("photo.png", image)})

    details = result.summary()
    details["inputs"] = sorted(["image", *inputs])
    status = run_summary_line(spec, result, image)
    error = None
    plot_update = gr.update(value=None, visible=False)
    table_update = gr.update(value=None, visible=False)
    if ground_truth is not None:
        region = inputs.get("trimap")
        table, values = _metrics_table(result.alpha, ground_truth, region, spec.name)
        error = metrics.error_map(result.alpha, ground_truth)
        plot_update = gr.update(value=visualise.error_figure(error), visible=True)
        table_update = gr.update(value=table, visible=True)
        details["metrics"] = {name: round(values[name], 6) for name in metrics.METRIC_NAMES}
        details["metrics_region"] = table["region"][0]
        status += " · " + " · ".join(f"{metrics.METRIC_UNITS[n]} {values[n]:.3f}" for n in metrics.METRIC_NAMES)
    for note in notes:
        gr.Warning(note)
        status += f"\n\n**Warning:** {note}"
    details["warnings"] = notes
    state = {"folder": str(folder), "method": spec.id}
    return RunOutputs(
        status=status,
        alpha=str(saved["alpha"]),  # this request's own files (see as_files)
        foreground=str(saved["foreground"]) if "foreground" in saved else None,
        composite=str(saved["composite"]),
        cutout=str(saved["cutout"]),
        maps=_map_gallery(result, saved, error),
        error_plot=plot_update,
        metrics=table_update,
        details=details,
        state=state,
    )


def _load_state_images(state):
    if not state or not Path(state.get("folder", "")).is_dir():
        raise MattingError("Run a method first; its results are composited here.")
    folder = Path(state["folder"])
    image = io.load_image(folder / "photo.png", max_pixels=0)
    alpha = io.load_alpha(folder / "alpha.png", max_pixels=0)
    foreground_path = folder / "foreground.png"
    foreground = io.load_image(foreground_path, max_pixels=0) if foreground_path.exists() else None
    return image, foreground, alpha


@friendly
def on_backdrop(state, backdrop="checkerboard", colour="#00b140", backdrop_file=None):
    """Backdrop changed: composite the last result again (no re-run)."""
    visibility = (gr.update(visible=backdrop == "colour"), gr.update(visible=backdrop == "image"))
    if not state:
        return (None, *visibility)  # nothing run yet
    if backdrop == "image" and not backdrop_file:
        return (gr.update(), *visibility)  # keep the last composite until a picture is chosen
    image, foreground, alpha = _load_state_images(state)
    return (render_composite(image, foreground, alpha, backdrop, colour, backdrop_file), *visibility)


# --------------------------------------------------------------------------- examples

@friendly
def on_example(photo_file, trimap_file=None, ground_truth_file=None, plate_file=None):
    """An example row was clicked: photo, painter with its trimap, plate check and ground truth."""
    image = load_photo(photo_file)
    levels = io.load_trimap(trimap_file, image.shape) if trimap_file else None
    plate_preview, plate_note = _plate_outputs(image, plate_file)
    trimap_note = _trimap_note("Loaded the example's trimap", levels) if levels is not None else ""
    photo_note = f"**Photo:** {image.shape[1]}×{image.shape[0]} px (example)"
    gt_note = on_ground_truth(photo_file, ground_truth_file)
    return (preview(image), editor.editor_value(image, levels), MODE_TRIMAP, photo_note, trimap_note,
            plate_preview, plate_note, gt_note)

