"""The "Click to select" tab: click the photo, SAM draws the mask, a trimap method finishes the edges.

* Clicking the photo adds a positive point, a negative point, or a box corner (two clicks make the
  box), as the "Click adds" choice says; Undo and Clear edit the prompts. After every click the mask
  is computed and overlaid (the image embedding is cached, so only the first click on a photo waits
  for SAM's encoder).
* The prompts live in a text box as the JSON form of :mod:`matting.prompts`, so they can be read,
  copied into ``matting.run(..., prompts=...)`` or the CLI, or typed.
* "Matte" runs the ``prompts`` family's method (``sam_trimap``): mask → trimap → the chosen trimap method.
* A click answers in well under a second after the first (``python -m matting.bench prompts``): the photo
  is decoded, hashed and shrunk once (:func:`_photo`), SAM's mask is post-processed straight to the
  preview size, and the overlay goes to the browser as a JPEG.

API: ``/prompt_add`` (a point or box corner at x, y), ``/prompt_mask`` (the mask overlay for the
prompts), ``/prompt_undo``, ``/prompt_clear``, ``/prompt_photo``, ``/run_prompts_tab``. The click on the
picture (``/prompt_click``) is ``/prompt_add`` fed by the browser's click position.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

import gradio as gr

from .. import prompts as prompt_tools
from ..errors import MattingError
from ..registry import methods
from . import handlers

FAMILY = "prompts"
POSITIVE, NEGATIVE, BOX = "Positive point", "Negative point", "Box (two corners)"
MODES = (POSITIVE, NEGATIVE, BOX)
EMPTY = '{"points": []}'
OVERLAY_COLOUR = np.array([30, 144, 255], np.float32)


class Photo(NamedTuple):
    """A decoded photo of this tab, kept between clicks: the image (float, do not modify it), its
    :func:`matting.adapters.sam_pipeline.image_key` and its uint8 preview."""
    image: np.ndarray
    key: str
    preview: np.ndarray


PHOTOS_KEPT = 2
_photos: OrderedDict = OrderedDict()
_photos_lock = threading.Lock()


def _photo(photo_file) -> Photo:
    """The photo behind ``photo_file``, decoded once per file: every click used to decode it twice (the
    click and the mask each), hash it and shrink it again, which on a large photo cost more than SAM's
    decoder. Keyed by the file's path, size and modification time (and the pixel limit)."""
    from ..adapters.sam_pipeline import image_key
    from ..io import to_uint8

    if not photo_file:
        handlers.load_photo(photo_file)  # raises "upload a photo first"
    try:
        stat = os.stat(photo_file)
        cache_key = (os.path.realpath(photo_file), stat.st_size, stat.st_mtime_ns, handlers.max_pixels())
    except (OSError, TypeError):
        cache_key = None
    with _photos_lock:
        found = _photos.get(cache_key) if cache_key is not None else None
        if found is not None:
            _photos.move_to_end(cache_key)
            return found
    image = handlers.load_photo(photo_file)
    image.setflags(write=False)
    found = Photo(image, image_key(to_uint8(image)), handlers.preview(image))
    if cache_key is not None:
        with _photos_lock:
            _photos[cache_key] = found
            while len(_photos) > PHOTOS_KEPT:
                _photos.popitem(last=False)
    return found


def _parse(text) -> prompt_tools.Prompts:
    if not text or not str(text).strip():
        return prompt_tools.Prompts()
    return prompt_tools.parse(text)


def _preview_scale(image: np.ndarray) -> float:
    return min(1.0, handlers.PREVIEW_SIDE / max(image.shape[:2]))


def overlay(image: np.ndarray, prompts: prompt_tools.Prompts, mask: np.ndarray | None = None,
            corner=None, preview: np.ndarray | None = None) -> np.ndarray:
    """The preview-sized photo with the mask tinted, the clicks (green +, red −) and the box drawn
    (``preview``: :func:`handlers.preview` of ``image`` when the caller has it)."""
    import cv2

    picture = (handlers.preview(image) if preview is None else preview).astype(np.float32)
    scale = _preview_scale(image)
    if mask is not None:
        small = mask if mask.shape == picture.shape[:2] else cv2.resize(
            mask.astype(np.uint8), (picture.shape[1], picture.shape[0]), interpolation=cv2.INTER_NEAREST)
        small = small.astype(bool)
        picture[small] = 0.5 * picture[small] + 0.5 * OVERLAY_COLOUR
    picture = np.ascontiguousarray(np.clip(picture, 0, 255).astype(np.uint8))
    radius = max(3, round(max(picture.shape[:2]) / 100))
    if prompts.box is not None:
        x0, y0, x1, y1 = (round(v * scale) for v in prompts.box)
        cv2.rectangle(picture, (x0, y0), (x1, y1), (255, 215, 0), max(1, radius // 2))
    if corner is not None:
        cv2.drawMarker(picture, (round(corner[0] * scale), round(corner[1] * scale)), (255, 215, 0),
                       cv2.MARKER_CROSS, 3 * radius, max(1, radius // 2))
    for x, y, label in prompts.points:
        centre = (round(x * scale), round(y * scale))
        cv2.circle(picture, centre, radius, (0, 200, 0) if label else (220, 0, 0), -1)
        cv2.circle(picture, centre, radius, (255, 255, 255), 1)
    return picture


def _view(picture: np.ndarray) -> str:
    """The overlay as a JPEG (quality 90) in a fresh folder of this request, for display only: one is
    written per click, and a 1024-pixel PNG took 0.17 s to encode here against 0.01 s for the JPEG
    (a seventh of the bytes, too); the results and downloads stay PNG."""
    from io import BytesIO

    from PIL import Image

    from ..io import write_bytes_atomically

    buffer = BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=90)
    return str(write_bytes_atomically(handlers.new_output_dir("view") / "prompts.jpg", buffer.getvalue()))


def _describe(prompts: prompt_tools.Prompts) -> str:
    parts = [f"{len(prompts.positive)} positive", f"{len(prompts.negative)} negative"]
    if prompts.box is not None:
        parts.append("a box")
    return ", ".join(parts)


# --------------------------------------------------------------------------- handlers

@handlers.friendly
def on_photo(photo_file):
    """A new photo: show it, forget the prompts."""
    if not photo_file:
        return None, EMPTY, "Upload a photo (or pick an example), then click on the object.", None
    photo = _photo(photo_file)
    return (_view(overlay(photo.image, prompt_tools.Prompts(), preview=photo.preview)), EMPTY,
            "Click on the object to select it (a positive point); switch to negative points to remove parts.", None)


@handlers.friendly
def on_add(photo_file, prompts_text, mode=POSITIVE, x=None, y=None, corner=None):
    """Add a point (or a box corner) at (x, y) in the photo's pixels; returns the new prompts JSON and the
    pending box corner."""
    image = _photo(photo_file).image
    if x is None or y is None:
        raise MattingError("A click needs both x and y (pixels of the photo).")
    prompts = _parse(prompts_text)
    if mode == BOX:
        if corner is None:
            return prompts.to_json(), [float(x), float(y)]
        (ax, ay), (bx, by) = corner, (float(x), float(y))
        prompts = prompts.with_box([min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)])
        corner = None
    elif mode in (POSITIVE, NEGATIVE):
        prompts = prompts.add(x, y, positive=mode == POSITIVE)
    else:
        raise MattingError(f"'Click adds' must be one of {', '.join(MODES)}; got {mode!r}.")
    prompt_tools.validate(prompts, image.shape, require_positive=False)
    return prompts.to_json(), corner


def on_click(photo_file, prompts_text, mode, corner, evt: gr.SelectData):
    """The browser's click on the (preview-sized) picture → :func:`on_add` in the photo's pixels."""
    if not photo_file or evt is None or evt.index is None:
        return prompts_text, corner
    scale = _preview_scale(_photo(photo_file).image)
    x, y = (float(v) / scale for v in evt.index[:2])
    return on_add(photo_file, prompts_text, mode, x, y, corner)


@handlers.friendly
def on_mask(photo_file, prompts_text, segmenter=None, corner=None):
    """The mask overlay for the prompts (SAM; the photo's embedding is computed once, then reused)."""
    from ..adapters import sam_pipeline

    photo = _photo(photo_file)
    image = photo.image
    prompts = _parse(prompts_text)
    if not prompts.positive and prompts.box is None:
        note = ("Click on the object (a positive point) or draw a box." if not prompts.points else
                "Only negative points so far: add a positive point on the object.")
        return _view(overlay(image, prompts, corner=corner, preview=photo.preview)), note
    prompt_tools.validate(prompts, image.shape)
    # The overlay is preview-sized, so SAM's mask is post-processed straight to that size.
    found = sam_pipeline.segment(sam_pipeline.load_segmenter(segmenter or sam_pipeline.DEFAULT_SEGMENTER),
                                 image, prompts, key=photo.key, size=photo.preview.shape[:2])
    note = (f"**Mask:** {found['mask'].mean():.0%} of the photo · {_describe(prompts)} · predicted IoU "
            f"{found['score']:.2f} · {found['seconds']:.2f} s (image embedding "
            f"{'reused' if found['reused'] else 'computed'}). Click again to refine, or **Matte**.")
    return _view(overlay(image, prompts, found["mask"], corner, preview=photo.preview)), note


@handlers.friendly
def on_undo(prompts_text, corner=None):
    if corner is not None:
        return _parse(prompts_text).to_json(), None
    return _parse(prompts_text).undo().to_json(), None


def on_clear():
    return EMPTY, None


def run_prompts(photo_file, prompts_text, segmenter=None, refine=None, band=10,
                ground_truth_file=None, progress=gr.Progress()):
    """Matte: SAM's mask → trimap → the chosen trimap method, with the family tabs' result panel
    (the family's method; segmenter and matting method default to its parameters' defaults)."""
    from ..runner import run

    @handlers.friendly
    def go():
        spec = methods(FAMILY)[0]
        nonlocal segmenter, refine
        segmenter = segmenter or spec.param("segmenter").default
        refine = refine or spec.param("refine").default
        image = handlers.load_photo(photo_file)
        prompts = prompt_tools.validate(_parse(prompts_text), image.shape)
        ground_truth = handlers.load_ground_truth(ground_truth_file, image.shape)
        progress(0.1, desc=f"Running {spec.name}")
        band_px = int(band if band is not None else 10)
        result = run(spec.id, image, prompts=prompts, max_pixels=handlers.max_pixels(), segmenter=segmenter,
                     refine=refine, erode=band_px, dilate=band_px)
        return handlers.present_result(spec, image, result, {"prompts": prompts.to_dict()}, ground_truth,
                                       "checkerboard", None, None)

    return go()


# --------------------------------------------------------------------------- the tab

def build(shared, result_panel, heavy: str, workers: int):
    """The tab (inside ``gr.Tabs``); nothing when no method of the ``prompts`` family is registered.

    ``result_panel(family)`` builds the family tabs' result panel (layout's), ``heavy`` / ``workers`` are
    the concurrency group and limit of runs.
    """
    specs = methods(FAMILY)
    if not specs:
        return
    from ..spec import FAMILIES

    spec = specs[0]
    segmenters = spec.param("segmenter")
    refine = spec.param("refine")
    with gr.Tab(FAMILIES[FAMILY], id=FAMILY, elem_id=f"tab-{FAMILY}"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                gr.Markdown("Click on the object in the photo: SAM turns the clicks into a mask, the mask becomes "
                            "a trimap, and a trimap method finishes the edges.")
                mode = gr.Radio(list(MODES), value=POSITIVE, label="Click adds", elem_id="prompt-mode")
                with gr.Row():
                    undo = gr.Button("Undo", size="sm", elem_id="prompt-undo")
                    clear = gr.Button("Clear", size="sm", elem_id="prompt-clear")
                segmenter = gr.Dropdown(list(segmenters.choices), value=segmenters.default, label="Segmenter",
                                        info=segmenters.help, elem_id="prompt-segmenter")
                method = gr.Dropdown(list(refine.choices), value=refine.default, label="Matting method",
                                     info=refine.help, elem_id="prompt-refine")
                band = gr.Slider(0, 60, value=10, step=1, label="Unknown band (pixels each side)")
                prompts_text = gr.Textbox(EMPTY, label="Prompts (JSON, pixels of the photo)", lines=2,
                                          elem_id="prompts-json")
                matte = gr.Button("Matte", variant="primary", elem_id="run-prompts")
            with gr.Column(scale=5):
                picture = gr.Image(label="Click on the object", interactive=False, format="png", height=520,
                                   elem_id="prompts-image", buttons=["fullscreen"])
                note = gr.Markdown(elem_id="prompts-note", elem_classes=["status-line"])
        panel = result_panel(FAMILY)
        corner = gr.JSON(None, visible=False)  # a pending box corner (a component, so the API sees it)
        x = gr.Number(visible=False)  # for /prompt_add and /prompt_mask through the API
        y = gr.Number(visible=False)
        add = gr.Button(visible=False)
        mask_trigger = gr.Button(visible=False)

    fast = dict(concurrency_limit=None, show_progress="hidden")
    mask_event = dict(fn=on_mask, inputs=[shared.photo_file, prompts_text, segmenter, corner], outputs=[picture, note],
                      concurrency_id=heavy, concurrency_limit=workers, show_progress="hidden")
    shared.photo_file.change(on_photo, [shared.photo_file], [picture, prompts_text, note, corner],
                             api_name="prompt_photo", **fast)
    picture.select(on_click, [shared.photo_file, prompts_text, mode, corner], [prompts_text, corner],
                   api_name="prompt_click", **fast).then(**mask_event, api_name="prompt_click_mask")
    add.click(on_add, [shared.photo_file, prompts_text, mode, x, y, corner], [prompts_text, corner],
              api_name="prompt_add", **fast)
    mask_trigger.click(**mask_event, api_name="prompt_mask")
    undo.click(on_undo, [prompts_text, corner], [prompts_text, corner], api_name="prompt_undo",
               **fast).then(**mask_event, api_name=False)
    clear.click(on_clear, None, [prompts_text, corner], api_name="prompt_clear", **fast).then(
        **mask_event, api_name=False)
    matte.click(run_prompts, [shared.photo_file, prompts_text, segmenter, method, band, shared.ground_truth_file],
                panel.outputs(), api_name="run_prompts_tab", concurrency_id=heavy, concurrency_limit=workers)
