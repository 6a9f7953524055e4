"""The Video tab: a clip through any method a clip can feed (automatic ones, BGMv2 with one plate).

Built from the registry like the other tabs (:func:`matting.video.video_methods`): nothing here names
a method. Handlers are plain functions of component values (wrapped by :func:`.handlers.friendly`), so
they run without a browser; every event has an ``api_name``.
"""
from __future__ import annotations

import gradio as gr
import numpy as np

from .. import video as vid, weights
from ..errors import MattingError
from ..registry import get
from ..spec import FAMILIES
from . import handlers
from .handlers import friendly

BACKDROPS = (("Colour", "colour"), ("Picture", "image"))
CODEC_CHOICES = (("H.264 (MP4)", "h264"), ("VP9 (WebM)", "vp9"))
CUTOUT_CHOICES = (("VP9 with alpha (WebM)", "webm"), ("ProRes 4444 (MOV)", "mov"))


def limits() -> vid.VideoLimits:
    return vid.VideoLimits.from_env()


def video_choices() -> list[tuple[str, str]]:
    return [(f"{spec.name} · {FAMILIES.get(spec.family, spec.family)}", spec.id) for spec in vid.video_methods()]


def _default_method() -> str | None:
    """The first video method that can run here without a download (the registry's order)."""
    choices = [value for _, value in video_choices()]
    ready = [method_id for method_id in choices if get(method_id).can_run_with(weights.usable)]
    return (ready or choices or [None])[0]


def method_note(spec) -> str:
    lines = [handlers.method_summary(spec)]
    if spec.accepts("background"):
        lines.append("**Background plate:** one picture of the scene without the subject, the clip's size, used "
                     "for every frame (as the official inference_video.py); it is checked against the first frame.")
    if vid.ofd_default(spec.id):
        lines.append("**OFD** (one-frame delay, from this method's paper) is on by default.")
    return "\n\n".join(lines)


INTRO = (f"Mattes a clip frame by frame with one loaded method; the output is streamed, so the clip length "
         f"only costs time. {vid.TRIMAP_NOTE} **OFD** (MODNet's one-frame delay) replaces a pixel whose alpha "
         "flips for one frame while its neighbours agree; the result is one frame late.")


# --------------------------------------------------------------------------- handlers

def on_video_method(method_id):
    """A method was chosen: its card, whether it takes a plate, its OFD default."""
    if not method_id:
        return "No method selected.", gr.update(visible=False), gr.update()
    try:
        spec = get(method_id)
    except MattingError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    return method_note(spec), gr.update(visible=spec.accepts("background")), gr.update(value=vid.ofd_default(spec.id))


def _range_note(info, start=0.0, duration=None) -> str:
    box = limits()
    try:
        begin, end = vid.frame_range(info, start, duration)
        count = vid.check_limits(info, begin, end, box)
    except MattingError as exc:
        return f"**Clip:** {info.describe()}\n\n**Over the limits:** {exc}"
    frames = f"{count} frames" if count is not None else "frames: unknown until decoded"
    return f"**Clip:** {info.describe()}\n\n**Range:** {frames} · limits: {box.describe()}"


@friendly
def on_video_file(video_file=None, start=0.0, duration=None):
    """A clip was uploaded (or the range changed): what it is and whether the range fits the limits."""
    if not video_file:
        return "No clip yet."
    return _range_note(vid.probe(video_file), start, duration)


@friendly
def on_video_example():
    """The example clip: scikit-image's astronaut moving over the rocket photo, with plate and true alpha."""
    from ..ui.examples import examples_dir
    from ..video.synthetic import example_clip

    clip = example_clip(examples_dir() / "video")
    note = _range_note(vid.probe(clip.video))
    return str(clip.video), str(clip.plate), str(clip.alpha), note + "\n\n" + (
        "**Example:** the astronaut (NASA, public domain) composited over the rocket photo (SpaceX, public "
        "domain), moving; its plate and true alpha are known, so the temporal errors have something to show.")


def flicker_figure(result):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 3.0), layout="constrained")
    axes = figure.add_subplot()
    frames = np.arange(len(result.flicker))
    as_array = lambda values: np.array([np.nan if v is None else v for v in values], float)  # noqa: E731
    for values, colour, label in ((result.flicker_raw, "#c0504d", "without OFD"),
                                  (result.flicker_ofd, "#4f7cac", "with OFD")):
        series = as_array(values)
        mean = np.nanmean(series) if np.isfinite(series).any() else float("nan")
        axes.plot(frames, series, color=colour, marker=".", label=f"{label} (mean {mean:.2f})")
    axes.set_xlabel("frame")
    axes.set_ylabel("flicker: mean |Δα| ×10³ (static pixels)")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, fontsize=8)
    axes.set_title(f"Flicker per frame (the output uses {'OFD' if result.ofd else 'no OFD'})")
    return figure


def metrics_table(result):
    import pandas as pd

    rows = [{"measure": f"flicker, per-frame matte ({vid.temporal.UNITS['flicker']})",
             "value": _round(result.flicker_raw_mean)}]
    rows.append({"measure": f"flicker, with OFD ({vid.temporal.UNITS['flicker']})",
                 "value": _round(result.flicker_ofd_mean)})
    if result.ofd:
        rows.append({"measure": "pixels changed by OFD", "value": result.ofd_replaced_pixels})
    if result.errors:
        for key in ("sad", "mse", "dtssd", "messddt"):
            rows.append({"measure": f"mean {vid.temporal.UNITS[key]} vs ground truth", "value": _round(result.errors[key])})
    return pd.DataFrame(rows)


def _round(value):
    return None if value is None else round(float(value), 4)


@friendly
def on_video_run(method_id, video_file, plate_file=None, ground_truth_file=None, ofd=None, start=0.0, duration=None,
                 codec="h264", cutout="webm", png_zip=False, backdrop="colour", colour="#00b140", backdrop_file=None,
                 progress=gr.Progress()):
    """Matte the clip; alpha and composite players, downloads, temporal metrics and the flicker chart."""
    spec = handlers.spec_for(method_id)
    if not video_file:
        raise MattingError("Upload a clip first (or load the example clip).")
    vid.check_video_method(spec)
    progress(0.0, desc="Reading the clip")
    folder = handlers.new_output_dir("video")
    outputs = ["alpha", "composite", "cutout"] + (["png_zip"] if png_zip else [])

    def step(done, expected):
        progress((done, expected), desc=f"{spec.name}: frame {done}" + (f" of {expected}" if expected else ""),
                 unit="frames")

    result = vid.matte_video(
        spec.id, video_file, out=folder, background=plate_file if spec.accepts("background") else None,
        ofd=None if ofd is None else bool(ofd), start=start or 0.0, duration=duration or None,
        ground_truth=ground_truth_file or None, outputs=outputs, codec_name=codec or "h264",
        cutout_format=cutout or "webm", backdrop=backdrop or "colour", colour=colour or "#00b140",
        backdrop_image=backdrop_file or None, limits=limits(), progress=step)
    status = (f"**Done:** {spec.name} matted **{result.frames} frames** ({result.size[0]}×{result.size[1]}) in "
              f"**{result.seconds:.1f} s** — **{result.frames_per_second:.2f} frames/s** (model load "
              f"{result.load_seconds:.1f} s) · OFD {'on' if result.ofd else 'off'}")
    if result.flicker_raw_mean is not None:
        status += f" · flicker {result.flicker_raw_mean:.2f}"
        if result.ofd:
            status += f" → {result.flicker_mean:.2f} with OFD"
    if result.errors:
        status += f" · dtSSD {result.errors['dtssd']:.3f} · MESSDdt {result.errors['messddt']:.3f}" \
            if result.errors["dtssd"] is not None else ""
    for warning in result.warnings:
        gr.Warning(warning)
        status += f"\n\n**Warning:** {warning}"
    downloads = [str(result.files[k]) for k in ("alpha", "composite", "cutout", "png_zip", "summary")
                 if k in result.files]
    return (status, str(result.files["alpha"]), str(result.files["composite"]), downloads,
            metrics_table(result), flicker_figure(result), result.summary())


# --------------------------------------------------------------------------- layout

def build_video_tab(heavy: str, concurrency: int) -> None:
    """The Video tab (call inside ``gr.Tabs``); ``heavy``/``concurrency``: the app's method-run queue."""
    choices = video_choices()
    default = _default_method()
    spec = get(default) if default else None
    with gr.Tab("Video", id="video", elem_id="tab-video"):
        gr.Markdown(INTRO)
        if not choices:
            gr.Markdown("No method that a clip can feed is registered.")
            return
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                method = gr.Dropdown(choices, value=default, label="Method", elem_id="video-method")
                info = gr.Markdown(method_note(spec), elem_classes=["method-info"])
                video_file = gr.File(label="Video clip (MP4, WebM, MOV, MKV, …)", elem_id="video-file", height=120)
                video_note = gr.Markdown("No clip yet.", elem_id="video-note")
                plate_file = gr.File(label="Background plate: the scene without the subject (one for the clip)",
                                     elem_id="video-plate", height=120, visible=spec.accepts("background"))
                gt_file = gr.File(label="Ground-truth alpha video (optional): dtSSD, MESSDdt, SAD/MSE per frame",
                                  elem_id="video-ground-truth", height=120)
                ofd = gr.Checkbox(value=vid.ofd_default(spec.id), label="OFD: one-frame-delay smoothing",
                                  info="A pixel that flips for one frame while its neighbours agree takes their mean.")
                with gr.Row():
                    start = gr.Number(0, label="Start (s)", minimum=0)
                    duration = gr.Number(0, label="Duration (s, 0 = to the end)", minimum=0)
                with gr.Accordion("Output", open=False):
                    codec = gr.Radio(list(CODEC_CHOICES), value="h264", label="Alpha and composite videos")
                    cutout = gr.Radio(list(CUTOUT_CHOICES), value="webm", label="Cut-out with transparency")
                    png_zip = gr.Checkbox(False, label="Also a ZIP of RGBA PNGs (exact 8-bit alpha per frame)")
                    backdrop = gr.Radio(list(BACKDROPS), value="colour", label="Composite over")
                    colour = gr.ColorPicker(value="#00b140", label="Colour")
                    backdrop_file = gr.File(label="Picture to composite over", height=100)
                with gr.Row():
                    example = gr.Button("Load the example clip", elem_id="video-example")
                    run_button = gr.Button("Matte the clip", variant="primary", elem_id="run-video")
            with gr.Column(scale=5):
                status = gr.Markdown(elem_id="status-video", elem_classes=["status-line"])
                with gr.Row(equal_height=True):
                    alpha_player = gr.Video(label="Alpha", interactive=False, height=320, elem_id="video-alpha")
                    composite_player = gr.Video(label="Composite", interactive=False, height=320,
                                                elem_id="video-composite")
                downloads = gr.File(label="Downloads (alpha, composite, cut-out, PNG ZIP, video.json)",
                                    file_count="multiple", interactive=False, elem_id="video-downloads")
                with gr.Row(equal_height=False):
                    table = gr.Dataframe(label="Temporal metrics", interactive=False, wrap=True, scale=2)
                    plot = gr.Plot(label="Flicker per frame", format="png", scale=3)
                with gr.Accordion("Run details (JSON)", open=False):
                    details = gr.JSON(show_label=False)

    method.change(on_video_method, [method], [info, plate_file, ofd], api_name="select_video_method",
                  concurrency_limit=None, show_progress="hidden")
    gr.on([video_file.upload, video_file.clear, start.change, duration.change], on_video_file,
          [video_file, start, duration], [video_note], api_name="probe_video", concurrency_limit=4,
          show_progress="hidden")
    example.click(on_video_example, None, [video_file, plate_file, gt_file, video_note], api_name="video_example",
                  concurrency_id=heavy, concurrency_limit=concurrency)
    run_button.click(on_video_run,
                     [method, video_file, plate_file, gt_file, ofd, start, duration, codec, cutout, png_zip,
                      backdrop, colour, backdrop_file],
                     [status, alpha_player, composite_player, downloads, table, plot, details],
                     api_name="run_video", concurrency_id=heavy, concurrency_limit=concurrency)
