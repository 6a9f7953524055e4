"""python -m matting.bench prompts: how long a click on the "Click to select" tab takes to answer.

A random ``SamModel`` of the real size (``--segmenter vit_b``: SAM ViT-B's configuration, the default;
``slimsam``: SlimSAM-77's, the default segmenter's size) is saved as a checkpoint folder and named by
``MATTING_WEIGHTS_SAM_SLIMSAM_77``, so the app's own load path, weights rules and caches run; no download.
Random weights give meaningless masks but the same arithmetic and shapes as the trained checkpoints.

Each round is one fresh photo (the tab's photo cache and SAM's embedding cache emptied) clicked
``--clicks`` times through the tab's handlers, as the browser's click does: ``on_add`` (the click
becomes a point; positive and negative in turn) then ``on_mask`` (SAM's mask, the overlay, the PNG the
browser shows). The first click computes the image embedding (SAM's ViT encoder); every later click
must reuse it, which the table checks by counting ``get_image_embeddings`` calls.

Options: ``--segmenter vit_b|slimsam``, ``--sides 512,4000`` (long side of the photos; 4:3 for any
but 512, the example photo's size), ``--clicks 6``, ``--rounds 3``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

VISION = {"vit_b": {}, "slimsam": {"hidden_size": 168, "mlp_dim": 696}}  # SlimSAM-77's config.json


def save_random_sam(folder: Path, segmenter: str) -> Path:
    """A random SamModel of ``segmenter``'s size and SAM's processor, saved as a checkpoint folder."""
    import torch
    from transformers import SamConfig, SamModel

    from ..models.sam import build_processor

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar in the table's output
    torch.manual_seed(0)
    SamModel(SamConfig(vision_config=VISION[segmenter])).eval().save_pretrained(folder, safe_serialization=True)
    build_processor().image_processor.save_pretrained(folder)
    return folder / "model.safetensors"


def photo_file(folder: Path, side: int) -> str:
    from skimage import data
    from skimage.transform import resize

    from .. import io

    shape = (side, side) if side == 512 else (side * 3 // 4, side)
    image = data.astronaut()  # 512×512 RGB, public domain; the app's example photo
    if image.shape[:2] != shape:
        image = (resize(image, shape, order=1, anti_aliasing=True) * 255).astype(np.uint8)
    return str(io.save_png(folder / f"photo_{side}.png", image))


def click_points(shape, count: int) -> list[tuple[float, float, str]]:
    """``count`` clicks on the photo: positive near the middle, then negative and positive in turn."""
    from ..ui.prompts_tab import NEGATIVE, POSITIVE

    height, width = shape[:2]
    rng = np.random.default_rng(1)
    clicks = [(0.5 * width, 0.45 * height, POSITIVE)]
    for n in range(1, count):
        x, y = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        clicks.append((x, y, NEGATIVE if n % 2 else POSITIVE))
    return clicks


def one_round(path: str, clicks: int, bundle) -> tuple[list[float], int, list[str]]:
    """Seconds per click (on_add + on_mask) on a photo no cache has seen, the encoder calls, the notes."""
    from ..ui import prompts_tab

    prompts_tab._photos.clear()
    bundle.embeddings.clear()
    calls = []
    original = bundle.model.get_image_embeddings

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    bundle.model.get_image_embeddings = counting
    seconds, notes, text, corner = [], [], prompts_tab.EMPTY, None
    try:
        shape = prompts_tab._photo(path).image.shape
        prompts_tab._photos.clear()  # the first click decodes the photo itself, as in the app
        for x, y, mode in click_points(shape, clicks):
            start = time.perf_counter()
            text, corner = prompts_tab.on_add(path, text, mode, x, y, corner)
            _, note = prompts_tab.on_mask(path, text)
            seconds.append(time.perf_counter() - start)
            notes.append(note)
    finally:
        del bundle.model.get_image_embeddings  # the instance attribute; the class's method again
    return seconds, len(calls), notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench prompts", description=__doc__.splitlines()[0])
    parser.add_argument("--segmenter", choices=tuple(VISION), default="vit_b")
    parser.add_argument("--sides", default="512,4000", help="long sides of the photos, comma-separated")
    parser.add_argument("--clicks", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    import torch

    from ..adapters import sam_pipeline
    from ..threads import torch_threads

    with tempfile.TemporaryDirectory(prefix="bench-prompts-") as temporary:
        folder = Path(temporary)
        os.environ["MATTING_WEIGHTS_SAM_SLIMSAM_77"] = str(save_random_sam(folder / "sam", args.segmenter))
        bundle = sam_pipeline.load_segmenter("slimsam_77")
        parameters = sum(p.numel() for p in bundle.model.parameters()) / 1e6
        print(f"\n### Click → mask in the app's handlers (random SAM, {args.segmenter} size, {parameters:.1f} M "
              f"parameters; {bundle.device}, {torch_threads()} torch thread(s) for SAM, torch default "
              f"{torch.get_num_threads()}; {args.rounds} fresh photos × {args.clicks} clicks)\n")
        print("| photo | first click s (median) | later clicks s (median) | later clicks s (max) | "
              "encoder calls per photo |")
        print("|---|---|---|---|---|")
        for side in (int(s) for s in args.sides.split(",")):
            path = photo_file(folder, side)
            firsts, laters, encoder_calls = [], [], set()
            for _ in range(args.rounds):
                seconds, calls, _ = one_round(path, args.clicks, bundle)
                firsts.append(seconds[0])
                laters.extend(seconds[1:])
                encoder_calls.add(calls)
            shape = "512×512" if side == 512 else f"{side}×{side * 3 // 4}"
            later_median = statistics.median(laters) if laters else float("nan")
            print(f"| {shape} | {statistics.median(firsts):.2f} | {later_median:.3f} | "
                  f"{max(laters, default=float('nan')):.3f} | {', '.join(map(str, sorted(encoder_calls)))} |",
                  flush=True)
    os.environ.pop("MATTING_WEIGHTS_SAM_SLIMSAM_77", None)
    return 0
