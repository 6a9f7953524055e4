"""Saving a result: the one set of file names that the CLI, the app and batch runs write.

``save_result(result, image, folder)`` writes, each file atomically (a reader never sees half a file):

==================  =========================================================================
``alpha.png``       the matte, 8-bit grey
``foreground.png``  the estimated foreground colours (only when the run produced them)
``cutout.png``      straight-alpha RGBA: foreground (or the photo's colours) with the matte
``composite.png``   the cut-out over a backdrop (checkerboard, a colour, a blurred copy, …)
``maps/<name>.png`` every intermediate map, as a picture
``result.json``     parameters, timings, memory, resolution, warnings (``Result.summary()``)
==================  =========================================================================
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import composite, io
from .spec import Result
from .visualise import map_picture

FILE_NAMES = ("alpha.png", "foreground.png", "cutout.png", "composite.png", "result.json")


def save_result(result: Result, image: np.ndarray, folder, *, backdrop: str = "checkerboard",
                colour: str = "#00b140", composited: np.ndarray | None = None, extra: dict | None = None,
                also: dict | None = None, workers: int | None = None) -> dict:
    """Write ``result`` (of a run on ``image``) into ``folder``; returns {name: path} of what was written.

    ``composited`` replaces the composite this function would make (the app renders its own backdrop);
    ``extra`` is merged into ``result.json``; ``also`` ({key: (file name, array)}) adds pictures of
    the caller's (the app's copy of the photo). The PNGs are encoded ``workers`` at a time
    (:func:`matting.io.save_pngs`); ``result.json`` is written last.
    """
    folder = Path(folder)
    colours = result.foreground if result.foreground is not None else image
    if composited is None:
        composited = composite.composite(backdrop, image, colours, result.alpha, colour)
    pictures = {"alpha": (folder / "alpha.png", result.alpha)}
    if result.foreground is not None:
        pictures["foreground"] = (folder / "foreground.png", result.foreground)
    pictures["cutout"] = (folder / "cutout.png", composite.rgba(colours, result.alpha))
    pictures["composite"] = (folder / "composite.png", composited)
    for name, item in result.maps.items():
        pictures[f"maps/{name}"] = (folder / "maps" / f"{name}.png", map_picture(item))
    pictures.update({key: (folder / name, array) for key, (name, array) in (also or {}).items()})
    written = dict(zip(pictures, io.save_pngs(pictures.values(), workers)))
    summary = {**result.summary(), **(extra or {})}
    text = json.dumps(summary, indent=2, default=str) + "\n"
    written["result"] = io.write_bytes_atomically(folder / "result.json", text.encode("utf-8"))
    return written
