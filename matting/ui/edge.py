"""The app's edge: what Gradio itself rejects before (or after) a handler runs gets a readable message.

Gradio validates and preprocesses every input before calling the handler; a value it cannot use (text
where a number belongs, a malformed painter value, a layer PIL refuses as a decompression bomb) raises
there, outside :func:`matting.ui.handlers.friendly`, and without ``show_error`` the client receives an
error with no message at all. :class:`WorkbenchBlocks` turns every such failure into a ``gr.Error``
naming the input (its label) and what it expects, and refuses non-finite numbers that Gradio lets
through. ``show_error=True`` was not used: it would show Gradio's internal messages (pydantic dumps,
component indices) instead of ones meant for a person.
"""
from __future__ import annotations

import logging
import math
import re

import gradio as gr
from PIL import Image

log = logging.getLogger("matting.ui")

MAX_SHOWN = 80


def _label(block) -> str:
    label = getattr(block, "label", None) or getattr(block, "elem_id", None) or type(block).__name__
    return str(label)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "…"


def _expected(block) -> str:
    if isinstance(block, gr.ImageEditor):
        return ("the painter's value: {'background': an image file, 'layers': [image files], 'composite': "
                "an image file or None} (from gradio_client: handle_file(path) for each file)")
    if isinstance(block, (gr.Slider, gr.Number)):
        low, high = getattr(block, "minimum", None), getattr(block, "maximum", None)
        if low is not None and high is not None:
            return f"a number between {low:g} and {high:g}"
        return "a number"
    if isinstance(block, (gr.File, gr.Image, gr.Gallery)):
        return "an uploaded file (from gradio_client: handle_file(path))"
    return f"a value a {type(block).__name__} accepts"


def _bomb_message(block, error: BaseException) -> str:
    pixels = re.findall(r"\d+", str(error))
    declared = f" declares {int(pixels[0]):,} pixels and" if pixels else ""
    return (f"An image given as “{_label(block)}”{declared} is too large to open: images over "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels are refused unread, as a guard against "
            "decompression bombs. Downscale it (at most 16 megapixels are used).")


def readable_input_error(block, value, error: BaseException) -> gr.Error:
    cause = error
    while cause is not None:
        if isinstance(cause, Image.DecompressionBombError):
            return gr.Error(_bomb_message(block, cause), print_exception=False)
        if isinstance(cause, gr.Error):
            return cause
        cause = cause.__cause__
    return gr.Error(f"The value given as “{_label(block)}” cannot be used: expected {_expected(block)}; "
                    f"got {_shown(value)}.", print_exception=False)


def _failing_input(block_fn, inputs, error):
    """(component, value) of the input that failed, or (None, None) when it cannot be told."""
    match = re.search(r"input component at index (\d+)", str(error))
    if match and int(match.group(1)) < len(block_fn.inputs):
        index = int(match.group(1))
        return block_fn.inputs[index], inputs[index] if index < len(inputs) else None
    for index, block in enumerate(block_fn.inputs):  # a value the component's data model refused
        model = getattr(block, "data_model", None)
        if model is None or index >= len(inputs) or inputs[index] is None:
            continue
        try:
            model.model_validate(inputs[index], context={"validate_meta": True})
        except Exception:  # noqa: BLE001 - this is the one
            return block, inputs[index]
    return None, None


class WorkbenchBlocks(gr.Blocks):
    """gr.Blocks whose input and output processing never fails without a message."""

    async def preprocess_data(self, block_fn, inputs, state, explicit_call=False):
        shown = list(inputs)  # the values as sent, before Gradio rewrites file paths
        try:
            values = await super().preprocess_data(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - every rejected input gets words
            block, value = _failing_input(block_fn, shown, exc)
            log.info("input refused before %s: %s", block_fn.name, exc)
            if block is None:
                raise gr.Error(f"The request could not be read: {type(exc).__name__}. Check the values sent "
                               "against the API page (“Use via API”).", print_exception=False) from None
            raise readable_input_error(block, value, exc) from None
        for block, value in zip(block_fn.inputs, values):
            if isinstance(block, (gr.Slider, gr.Number)) and isinstance(value, float) and not math.isfinite(value):
                raise gr.Error(f"The value given as “{_label(block)}” must be a finite number ({_expected(block)}); "
                               f"got {value}.", print_exception=False)
        return values

    async def postprocess_data(self, block_fn, predictions, state):
        try:
            return await super().postprocess_data(block_fn, predictions, state)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug, but the user still gets a sentence
            log.exception("could not show the results of %s", block_fn.name)
            raise gr.Error(f"Something went wrong inside the app while showing the results ({type(exc).__name__}). "
                           "This is a bug, not your input; the details are in the server log.",
                           print_exception=False) from None
