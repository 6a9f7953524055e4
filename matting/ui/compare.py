"""The Compare tab: several methods on the same photo and inputs, a grid, a slider, metrics and times."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

import gradio as gr

from .. import io, metrics
from ..errors import MattingError
from ..registry import get, methods
from ..runner import run
from ..spec import FAMILIES
from .handlers import (MODE_TRIMAP, friendly, gather_inputs, load_ground_truth, load_photo, max_pixels,
                       missing_inputs, new_output_dir, render_composite, u8)


def compare_choices() -> list[tuple[str, str]]:
    return [(f"{spec.name} · {FAMILIES.get(spec.family, spec.family)}" + (" · unavailable" if spec.unavailable else ""),
             spec.id) for spec in methods()]


class CompareOutputs(NamedTuple):
    status: str
    gallery: object
    slider: object
    slider_left: object
    slider_right: object
    metrics: object
    time_plot: object
    state: object


def time_figure(names: list[str], seconds: list[float]):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 0.45 * len(names) + 1.2), layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    bars = axes.barh(positions, seconds, color="#4f7cac")
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    axes.set_xlabel("wall time (s)")
    axes.bar_label(bars, labels=[f"{s:.2f} s" for s in seconds], padding=3)
    axes.set_xlim(0, max(seconds) * 1.25 if seconds else 1)
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_title("Time per method")
    return figure


@friendly
def on_compare(method_ids, photo_file, input_mode=MODE_TRIMAP, editor_value=None, plate_file=None,
               ground_truth_file=None, backdrop="checkerboard", progress=gr.Progress()):
    """Run several methods on the same photo with their default parameters."""
    import pandas as pd

    if not method_ids:
        raise MattingError("Tick at least one method to compare.")
    image = load_photo(photo_file)
    ground_truth = load_ground_truth(ground_truth_file, image.shape)
    folder = new_output_dir("compare")
    io.save_png(folder / "photo.png", image)
    specs = [get(method_id) for method_id in method_ids]
    gallery, rows, times, skipped, runs = [], [], [], [], {}
    region = None
    for index, spec in enumerate(specs):
        progress((index, len(specs)), desc=f"{spec.name} ({index + 1}/{len(specs)})")
        try:
            inputs = gather_inputs(spec, image, input_mode, editor_value, plate_file)
        except MattingError as exc:
            skipped.append(f"{spec.name}: {exc}")
            continue
        reason = missing_inputs(spec, inputs)
        if reason:
            skipped.append(f"{spec.name}: {reason}")
            continue
        try:
            result = run(spec.id, image, max_pixels=max_pixels(), **inputs)
        except MattingError as exc:
            skipped.append(f"{spec.name}: {exc}")
            continue
        foreground = result.foreground
        composited = render_composite(image, foreground, result.alpha, backdrop or "checkerboard", None, None)
        alpha_path = io.save_png(folder / f"{spec.id}_alpha.png", result.alpha)
        composite_path = io.save_png(folder / f"{spec.id}_composite.png", composited)
        runs[spec.id] = {"name": spec.name, "alpha": str(alpha_path), "composite": str(composite_path),
                         "seconds": result.seconds}
        gallery += [(str(alpha_path), f"{spec.name} — alpha ({result.seconds:.2f} s)"),
                    (str(composite_path), f"{spec.name} — composite")]
        times.append((spec.name, result.seconds))
        if ground_truth is not None:
            if region is None and "trimap" in inputs:
                region = inputs["trimap"]
            values = metrics.all_metrics(result.alpha, ground_truth, trimap=region)
            rows.append({"method": spec.name, **{metrics.METRIC_UNITS[n]: round(values[n], 4)
                                                  for n in metrics.METRIC_NAMES},
                         "time (s)": round(result.seconds, 3)})
    progress((len(specs), len(specs)), desc="Done")
    if not runs:
        raise MattingError("None of the chosen methods could run:\n" + "\n".join(f"- {s}" for s in skipped))

    ran = [(info["name"], method_id) for method_id, info in runs.items()]
    left = ran[0][1]
    right = ran[1][1] if len(ran) > 1 else ran[0][1]
    status = f"**Done:** compared {len(runs)} method{'s' if len(runs) > 1 else ''}: " + ", ".join(
        f"{name} {seconds:.2f} s" for name, seconds in times)
    if skipped:
        status += "\n\nSkipped:\n" + "\n".join(f"- {s}" for s in skipped)
    if rows:
        where = "unknown pixels of the trimap" if region is not None else "whole image"
        status += f"\n\nMetrics are over the {where}, the same region for every method."
    table = gr.update(value=pd.DataFrame(rows), visible=True) if rows else gr.update(value=None, visible=False)
    state = {"folder": str(folder), "runs": runs}
    return CompareOutputs(
        status=status,
        gallery=gallery,
        slider=_slider_images(state, left, right, "alpha"),
        slider_left=gr.update(choices=ran, value=left),
        slider_right=gr.update(choices=ran, value=right),
        metrics=table,
        time_plot=time_figure([name for name, _ in times], [s for _, s in times]),
        state=state,
    )


def _slider_images(state, left, right, kind):
    runs = (state or {}).get("runs") or {}
    if left not in runs or right not in runs:
        raise MattingError("Run the comparison first, then choose two of its methods.")
    key = "composite" if kind == "composite" else "alpha"
    return (u8(io.load_image(runs[left][key], max_pixels=0)), u8(io.load_image(runs[right][key], max_pixels=0)))


@friendly
def on_compare_slider(state, left=None, right=None, kind="alpha"):
    if not state:
        return None
    return _slider_images(state, left, right, kind)
