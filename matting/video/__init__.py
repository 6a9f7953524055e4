"""Video matting: a clip through one loaded method, frame by frame, streamed.

>>> from matting import video                                                # doctest: +SKIP
>>> result = video.matte_video("modnet", "clip.mp4", out="out/")             # OFD on by default
>>> result.files["alpha"], result.files["composite"], result.flicker_mean    # doctest: +SKIP
>>> video.matte_video("bgmv2", "shot.mp4", background="plate.png", out="out/")  # one plate per clip

What runs:

* **automatic methods** (MODNet, U²-Net, selfie segmentation, the pipelines, …): each frame through
  one :class:`matting.Session` (the network is loaded once), exactly the still-image computation;
* **background methods** (BGMv2): one background plate for the whole clip, as the official
  ``inference_video.py`` does; the plate must be the clip's size and is checked against the first
  frame (:func:`matting.plate.check_plate`: a warning when it cannot be this shot's background).
  Using the first frame as the plate is not offered: that is not the method;
* **trimap methods are not offered**: they need a trimap painted for every frame.

OFD (:mod:`.ofd`, MODNet's one-frame delay) is on by default for MODNet and available to every method.
Frames are decoded, matted and encoded one at a time (:mod:`.codec`): memory stays at a few frames
whatever the clip's length. Every output file is written under a temporary name and renamed when the
whole clip is done; a run that fails leaves nothing behind.

Outputs (``outputs=``): ``alpha`` (grey alpha video, H.264 MP4 or VP9 WebM), ``composite`` (over a colour
or a picture, H.264 MP4 or VP9 WebM: both play in browsers), ``cutout`` (with transparency: VP9-alpha
WebM or ProRes 4444 MOV), ``png_zip`` (RGBA PNG per frame, exact 8-bit alpha), plus ``video.json``.
The source's frame rate is kept, and its audio where the container allows (copied, or re-encoded to
AAC / Opus).
"""
from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .. import composite, io
from ..errors import MattingError
from ..registry import get, methods
from ..runner import Session, estimate_foreground, validate_params
from ..spec import FAMILIES, Inputs, MethodSpec
from . import codec, ofd as ofd_module, temporal
from .codec import VideoInfo, probe

# Defaults sized for a 2-core CPU Space: about a minute of work for the fast methods. Override per
# call (limits=VideoLimits(...)), on the command line (--max-frames …) or with the environment.
DEFAULT_MAX_FRAMES = 300
DEFAULT_MAX_SECONDS = 20.0
DEFAULT_MAX_PIXELS = 1280 * 720
OFD_BY_DEFAULT = frozenset({"modnet"})  # the method whose paper defines OFD
VIDEO_FAMILIES = ("automatic", "background")
OUTPUTS = ("alpha", "composite", "cutout", "png_zip")
DEFAULT_OUTPUTS = ("alpha", "composite", "cutout")
CODECS = {"h264": ("h264", "h264_gray"), "vp9": ("vp9", "vp9_gray")}  # composite kind, alpha kind
CUTOUT_FORMATS = {"webm": "vp9_alpha", "mov": "prores4444"}
TRIMAP_NOTE = ("Trimap methods are not offered for video: they need a trimap (or strokes) painted for every "
               "frame. Use an automatic method, or BGMv2 with a background plate.")


@dataclass(frozen=True)
class VideoLimits:
    """How much of a clip one run may take (0 = no limit)."""

    max_frames: int = DEFAULT_MAX_FRAMES
    max_seconds: float = DEFAULT_MAX_SECONDS
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_env(cls, **overrides) -> "VideoLimits":
        """Defaults, then MATTING_VIDEO_MAX_FRAMES / _SECONDS / _PIXELS, then the given values (None = keep)."""
        values = {"max_frames": DEFAULT_MAX_FRAMES, "max_seconds": DEFAULT_MAX_SECONDS,
                  "max_pixels": DEFAULT_MAX_PIXELS}
        for key, kind in (("max_frames", int), ("max_seconds", float), ("max_pixels", int)):
            name = f"MATTING_VIDEO_{key.upper()}"
            if os.environ.get(name):
                try:
                    values[key] = kind(float(os.environ[name]))
                except ValueError:
                    raise MattingError(f"{name} must be a number, got {os.environ[name]!r}.") from None
            if overrides.get(key) is not None:
                values[key] = kind(overrides[key])
        return cls(**values)

    def describe(self) -> str:
        parts = []
        if self.max_frames:
            parts.append(f"{self.max_frames} frames")
        if self.max_seconds:
            parts.append(f"{self.max_seconds:g} s")
        if self.max_pixels:
            parts.append(f"{self.max_pixels / 1e6:.2f} MP per frame")
        return ", ".join(parts) or "none"


# --------------------------------------------------------------------------- which methods

def video_methods() -> list[MethodSpec]:
    """The registered methods a clip can feed: nothing but frames (automatic) or frames + one plate."""
    return [spec for spec in methods() if is_video_method(spec)]


def is_video_method(spec: MethodSpec) -> bool:
    return (not spec.unavailable and spec.family in VIDEO_FAMILIES and not spec.one_of_inputs
            and set(spec.required_inputs) <= {"background"})


def check_video_method(spec: MethodSpec) -> None:
    if spec.unavailable:
        raise MattingError(f"{spec.name} cannot run here: {spec.unavailable}")
    if spec.family == "trimap" or spec.one_of_inputs or "trimap" in spec.required_inputs:
        raise MattingError(f"{spec.name} is a trimap method. {TRIMAP_NOTE}")
    if not is_video_method(spec):
        raise MattingError(f"{spec.name} needs inputs a clip cannot provide ({spec.describe_needs()}).")


def ofd_default(method_id: str) -> bool:
    """OFD is on by default for MODNet (its paper's post-processing) and off for the others."""
    return method_id in OFD_BY_DEFAULT


def video_params(spec: MethodSpec, params: dict) -> dict:
    """The session parameters of a video run: the foreground is the method's own (BGMv2) or none —
    the frame's colours go with the matte — unless ``foreground`` is given."""
    params = dict(params)
    if "foreground" not in params and any(p.name == "foreground" for p in spec.params):
        params["foreground"] = "model" if spec.provides_foreground else "none"
    return params


# --------------------------------------------------------------------------- checking a clip

def frame_range(info: VideoInfo, start: float = 0.0, duration: float | None = None) -> tuple[float, float | None]:
    """(start, end) in seconds, checked against the clip."""
    try:
        start = float(start or 0.0)
        duration = None if duration in (None, "", 0) else float(duration)
    except (TypeError, ValueError):
        raise MattingError("The start and the duration are numbers of seconds.") from None
    if not np.isfinite(start) or start < 0:
        raise MattingError(f"The start must be 0 s or later; got {start:g} s.")
    if duration is not None and (not np.isfinite(duration) or duration <= 0):
        raise MattingError(f"The duration must be a positive number of seconds; got {duration:g}.")
    if info.duration is not None and start >= info.duration:
        raise MattingError(f"The range starts at {start:g} s but the clip is {info.duration:.2f} s long.")
    return start, (None if duration is None else start + duration)


def expected_frames(info: VideoInfo, start: float, end: float | None) -> int | None:
    if info.duration is None and end is None:
        return info.frames
    last = end if info.duration is None else min(end if end is not None else info.duration, info.duration)
    return max(0, round((last - start) * float(info.fps)))


def check_limits(info: VideoInfo, start: float, end: float | None, limits: VideoLimits, name: str = "video") -> int | None:
    """Raise when the chosen range of the clip is over the limits; return the expected frame count."""
    codec.check_size(info, name)
    pixels = info.width * info.height
    if limits.max_pixels and pixels > limits.max_pixels:
        scale = (limits.max_pixels / pixels) ** 0.5
        raise MattingError(
            f"The {name} is {info.size_text} = {pixels:,} pixels per frame, above the limit of "
            f"{limits.max_pixels:,} pixels ({limits.max_pixels / 1e6:.2f} MP). Downscale it to about {int(info.width * scale) // 2 * 2}×"
            f"{int(info.height * scale) // 2 * 2} or raise the limit (max_pixels, --max-pixels or "
            "MATTING_VIDEO_MAX_PIXELS).")
    count = expected_frames(info, start, end)
    seconds = None if count is None else count / float(info.fps)
    hint = (" Choose a shorter range (start and duration) or raise the limit (--max-frames / --max-seconds, "
            "MATTING_VIDEO_MAX_FRAMES / MATTING_VIDEO_MAX_SECONDS).")
    if limits.max_seconds and seconds is not None and seconds > limits.max_seconds + 0.5 / float(info.fps):
        raise MattingError(f"The chosen range is {seconds:.1f} s of video, above the limit of "
                           f"{limits.max_seconds:g} s.{hint}")
    if limits.max_frames and count is not None and count > limits.max_frames:
        raise MattingError(f"The chosen range has {count} frames, above the limit of {limits.max_frames}.{hint}")
    return count


def load_plate(background, info: VideoInfo, max_pixels: int | None = None) -> np.ndarray:
    plate = io.load_image(background, "background plate", max_pixels or 0)
    if plate.shape[:2] != info.shape:
        same_shape = abs(plate.shape[1] / plate.shape[0] - info.width / info.height) < 0.01 * info.width / info.height
        hint = (" It has the clip's shape at another scale: resize it to the clip's size." if same_shape else
                " Its aspect ratio differs too, so it is probably not this shot's background.")
        raise MattingError(
            f"The background plate is {io.describe_size(plate.shape)} but the clip is {info.size_text} "
            f"(width×height); the plate must be the same shot, the same size, without the subject.{hint}")
    return plate


def _plate_warnings(frame: np.ndarray, plate: np.ndarray) -> list[str]:
    from ..plate import check_plate

    return [f"First frame: {warning}" for warning in check_plate(frame, plate).warnings]


# --------------------------------------------------------------------------- the frame loop

@dataclass
class FrameMatte:
    """One finished frame: the image (float32 H×W×3), its matte after OFD, the raw matte, colours."""

    index: int
    time: float
    image: np.ndarray
    alpha: np.ndarray
    raw_alpha: np.ndarray
    foreground: np.ndarray | None
    warnings: list[str] = field(default_factory=list)


def iter_mattes(session: Session, video, *, background: np.ndarray | None = None, ofd: bool = False,
                ofd_threshold: float = ofd_module.DEFAULT_THRESHOLD, start: float = 0.0, end: float | None = None,
                max_frames: int | None = None, name: str = "video",
                delay: ofd_module.OneFrameDelay | None = None) -> Iterator[FrameMatte]:
    """Matte each frame of ``video`` (a path) in [start, end) with ``session``, streamed; with ``ofd``
    each frame comes out one frame late (see :mod:`.ofd`). ``background``: the plate (float32, frame size);
    ``delay``: a :class:`~.ofd.OneFrameDelay` to use (to read its count of replaced pixels afterwards)."""
    delay = delay or ofd_module.OneFrameDelay(ofd_threshold, enabled=ofd)
    how = session.params.get("foreground")
    for index, moment, frame in codec.read_frames(video, start, end, name):
        if max_frames and index >= max_frames:
            raise MattingError(f"The {name} has more than {max_frames} frames in the chosen range, the limit. "
                               "Choose a shorter range or raise the limit (--max-frames, MATTING_VIDEO_MAX_FRAMES).")
        image = frame.astype(np.float32) / 255.0  # as matting.io loads a uint8 array
        result = session.run_prepared(Inputs(image=image, background=background))
        payload = (index, moment, image, result.foreground, result.warnings)
        for item in delay.push(result.alpha, payload):
            yield _finish(item, how)
    for item in delay.flush():
        yield _finish(item, how)


def _finish(item, how) -> FrameMatte:
    alpha, raw, (index, moment, image, foreground, warnings) = item
    if how in ("multilevel", "closed_form") and alpha is not raw:  # colours for the smoothed matte
        foreground = estimate_foreground(image, alpha, how)
    return FrameMatte(index, moment, image, alpha, raw, foreground, list(warnings))


# --------------------------------------------------------------------------- the whole run

@dataclass
class VideoResult:
    method: str
    params: dict
    source: dict
    frames: int
    fps: float
    size: tuple[int, int]  # width, height
    ofd: bool
    seconds: float  # matting loop, decode and encode included (not the model load)
    load_seconds: float
    files: dict[str, Path]
    flicker: list  # per frame, of the written matte (None for the first frame)
    flicker_raw: list  # per frame, of the raw per-frame matte (what OFD started from)
    flicker_ofd: list  # per frame, of the raw mattes after OFD (= flicker when OFD was on; computed either way)
    ofd_replaced_pixels: int
    errors: dict | None = None  # ground-truth errors (per frame and means), when a ground truth was given
    warnings: list[str] = field(default_factory=list)
    start: float = 0.0

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else float("inf")

    @property
    def flicker_mean(self) -> float | None:
        return temporal._mean(self.flicker)

    @property
    def flicker_raw_mean(self) -> float | None:
        return temporal._mean(self.flicker_raw)

    @property
    def flicker_ofd_mean(self) -> float | None:
        return temporal._mean(self.flicker_ofd)

    def summary(self) -> dict:
        return {
            "method": self.method, "params": self.params, "source": self.source, "start_s": self.start,
            "frames": self.frames, "fps": self.fps, "size": list(self.size), "ofd": self.ofd,
            "seconds": round(self.seconds, 3), "load_seconds": round(self.load_seconds, 3),
            "frames_per_second": round(self.frames_per_second, 3),
            "files": {k: str(v) for k, v in self.files.items()},
            "flicker": {"units": temporal.UNITS["flicker"], "mean": self.flicker_mean,
                        "mean_without_ofd": self.flicker_raw_mean, "mean_with_ofd": self.flicker_ofd_mean,
                        "per_frame": self.flicker, "per_frame_without_ofd": self.flicker_raw,
                        "per_frame_with_ofd": self.flicker_ofd,
                        "static_threshold": temporal.STATIC_THRESHOLD},
            "ofd_replaced_pixels": self.ofd_replaced_pixels,
            "ground_truth_errors": self.errors,
            "warnings": self.warnings,
        }


def _backdrop(backdrop, colour, picture, info: VideoInfo):
    """A function (foreground, alpha) → composite for every frame, with the picture fitted once."""
    if backdrop == "image":
        if picture is None:
            raise MattingError("Choose a picture to composite over, or the colour backdrop.")
        fitted = composite.fit_cover(io.load_image(picture, "backdrop picture", 0), info.height, info.width)
        return lambda fg, alpha: composite.over(fg, alpha, fitted)
    if backdrop == "colour":
        colour_value = composite.parse_colour(colour)
        return lambda fg, alpha: composite.over(fg, alpha, np.broadcast_to(colour_value, fg.shape))
    if backdrop == "checkerboard":
        board = composite.checkerboard(info.height, info.width)
        return lambda fg, alpha: composite.over(fg, alpha, board)
    raise MattingError(f"Unknown backdrop {backdrop!r} for video; choose colour, image or checkerboard.")


def matte_video(method_id: str, video, *, out, background=None, ofd: bool | None = None,
                ofd_threshold: float = ofd_module.DEFAULT_THRESHOLD, start: float = 0.0,
                duration: float | None = None, ground_truth=None, outputs=DEFAULT_OUTPUTS, codec_name: str = "h264",
                cutout_format: str = "webm", backdrop: str = "colour", colour: str = "#00b140",
                backdrop_image=None, keep_audio: bool = True, limits: VideoLimits | None = None,
                progress: Callable[[int, int | None], None] | None = None, session: Session | None = None,
                on_frame: Callable[[FrameMatte], None] | None = None, **params) -> VideoResult:
    """Matte a clip with one method and write the outputs into the folder ``out``.

    ``video``, ``ground_truth``: paths of clips (the ground truth is an alpha video, grey, the same size
    and frame rate); ``background``: the plate (path, bytes, PIL image or array) for a background method;
    ``ofd``: None = the method's default (:func:`ofd_default`); ``start``/``duration`` in seconds;
    ``outputs``: a subset of :data:`OUTPUTS`; ``codec_name``: ``h264`` (MP4) or ``vp9`` (WebM) for the
    alpha and composite videos; ``cutout_format``: ``webm`` (VP9 with alpha) or ``mov`` (ProRes 4444);
    ``progress(done, expected)`` is called after each frame, ``on_frame(FrameMatte)`` with each finished
    frame (its image, final and raw matte; valid during the call); ``session``: an already loaded session of
    this method (its parameters are used; ``params`` must then be empty). Raises
    :class:`MattingError` before anything is written for every problem with the inputs.
    """
    spec = get(method_id)
    check_video_method(spec)
    if session is not None and params:
        raise MattingError("Give either a loaded session or parameters, not both.")
    params = video_params(spec, params) if session is None else dict(session.params)
    validate_params(spec, params)
    outputs = tuple(outputs)
    unknown = sorted(set(outputs) - set(OUTPUTS))
    if unknown or not outputs:
        raise MattingError(f"Outputs are some of {', '.join(OUTPUTS)}; got {', '.join(unknown) or 'none'}.")
    if codec_name not in CODECS:
        raise MattingError(f"The video codec is one of {', '.join(CODECS)}; got {codec_name!r}.")
    if cutout_format not in CUTOUT_FORMATS:
        raise MattingError(f"The cut-out format is one of {', '.join(CUTOUT_FORMATS)}; got {cutout_format!r}.")
    use_ofd = ofd_default(spec.id) if ofd is None else bool(ofd)
    limits = limits or VideoLimits.from_env()

    info = probe(video, "video")
    begin, end = frame_range(info, start, duration)
    expected = check_limits(info, begin, end, limits)
    plate = None
    if spec.accepts("background"):
        if background is None:
            if "background" in spec.required_inputs:
                raise MattingError(f"{spec.name} needs a background plate: one picture of the scene without the "
                                   "subject, the clip's size, used for every frame.")
        else:
            plate = load_plate(background, info)
    elif background is not None:
        raise MattingError(f"{spec.name} does not take a background plate.")
    gt_info = None
    if ground_truth is not None:
        gt_info = probe(ground_truth, "ground-truth alpha video")
        if gt_info.shape != info.shape:
            raise MattingError(f"The ground-truth alpha video is {gt_info.size_text} but the clip is "
                               f"{info.size_text}; they must be the same size.")
        if abs(float(gt_info.fps) - float(info.fps)) > 0.01:
            raise MattingError(f"The ground-truth alpha video runs at {float(gt_info.fps):.3g} frames/s but the clip "
                               f"at {float(info.fps):.3g}; they must have the same frame rate.")
    composer = _backdrop(backdrop, colour, backdrop_image, info) if "composite" in outputs else None

    load_start = time.perf_counter()
    own_session = session is None
    session = session or Session(spec.id, **params)
    load_seconds = time.perf_counter() - load_start

    folder = Path(out)
    files = codec.AtomicFiles()
    writers: dict[str, codec.VideoWriter] = {}
    archive = None
    warnings: list[str] = []
    audio = info.path if keep_audio and info.audio_codec else None
    composite_kind, alpha_kind = CODECS[codec_name]
    plan = {"alpha": (alpha_kind, None), "composite": (composite_kind, audio),
            "cutout": (CUTOUT_FORMATS[cutout_format], audio)}
    finals: dict[str, Path] = {}
    flicker, flicker_raw, flicker_ofd = temporal.Flicker(), temporal.Flicker(), temporal.Flicker()
    preview = ofd_module.OneFrameDelay(ofd_threshold)  # OFD's flicker when the output does not use OFD
    errors = temporal.GroundTruthErrors() if gt_info is not None else None
    gt_frames = codec.read_frames(ground_truth, begin, end, "ground-truth alpha video", format="gray") \
        if gt_info is not None else None
    count = 0
    loop_start = time.perf_counter()
    try:
        for key, (kind, audio_source) in plan.items():
            if key in outputs:
                final = folder / f"{key}{codec.KINDS[kind].suffix}"
                writers[key] = codec.VideoWriter(files.temp(final), kind, info.width, info.height, info.fps,
                                                 audio_source, begin, end)
                finals[key] = final
        if "png_zip" in outputs:
            finals["png_zip"] = folder / "cutout_png.zip"
            archive = zipfile.ZipFile(files.temp(finals["png_zip"]), "w", zipfile.ZIP_STORED)
        delay = ofd_module.OneFrameDelay(ofd_threshold, enabled=use_ofd)
        frames = iter_mattes(session, info.path, background=plate, start=begin, end=end,
                             max_frames=limits.max_frames, delay=delay)
        for item in frames:
            if count == 0 and plate is not None:
                warnings += _plate_warnings(item.image, plate)
            colours = item.foreground if item.foreground is not None else item.image
            alpha8 = io.to_uint8(item.alpha)
            if "alpha" in writers:
                writers["alpha"].write(alpha8)
            if composer is not None:
                writers["composite"].write(io.to_uint8(composer(colours, item.alpha)))
            if "cutout" in writers or archive is not None:
                rgba = np.dstack([io.to_uint8(colours), alpha8])
                if "cutout" in writers:
                    writers["cutout"].write(rgba)
                if archive is not None:
                    archive.writestr(f"frame_{item.index:05d}.png", _png_bytes(rgba))
            flicker.update(item.image, item.alpha)
            flicker_raw.update(item.image, item.raw_alpha)
            if use_ofd:
                flicker_ofd.update(item.image, item.alpha)
            else:
                for smoothed, _, image in preview.push(item.raw_alpha, item.image):
                    flicker_ofd.update(image, smoothed)
            if gt_frames is not None:
                gt = next(gt_frames, None)
                if gt is None:
                    raise MattingError(f"The ground-truth alpha video ends after {count} frames, before the clip "
                                       "does; it must have a matte for every frame.")
                errors.update(item.alpha, gt[2].astype(np.float32) / 255.0)
            for warning in item.warnings:
                if warning not in warnings:
                    warnings.append(warning)
            if on_frame is not None:
                on_frame(item)
            count += 1
            if progress is not None:
                progress(count, expected)
        if count == 0:
            raise MattingError("The video has no frames in the chosen range (nothing could be decoded)."
                               if begin == 0 else f"The video has no frames after {begin:g} s.")
        for smoothed, _, image in (preview.flush() if not use_ofd else ()):
            flicker_ofd.update(image, smoothed)
        for writer in writers.values():
            writer.close()
            warnings += writer.warnings
        if archive is not None:
            archive.close()
        seconds = time.perf_counter() - loop_start
        result = VideoResult(
            method=spec.id, params=dict(session.params), source=info.summary(), frames=count,
            fps=float(info.fps), size=(info.width, info.height), ofd=use_ofd, seconds=seconds,
            load_seconds=load_seconds, files=dict(finals), flicker=flicker.values, flicker_raw=flicker_raw.values,
            flicker_ofd=flicker_ofd.values,
            ofd_replaced_pixels=delay.replaced_pixels, warnings=warnings, start=begin,
            errors=None if errors is None else {**errors.summary(), "per_frame": {
                "sad": errors.sad, "mse": errors.mse, "dtssd": errors.dtssd, "messddt": errors.messddt}})
        summary_path = folder / "video.json"
        result.files["summary"] = summary_path
        text = json.dumps(result.summary(), indent=2, default=str) + "\n"
        files.temp(summary_path).write_bytes(text.encode("utf-8"))
        files.commit()
        return result
    except BaseException:
        for writer in writers.values():
            writer.abort()
        if archive is not None:
            archive.close()
        files.discard()
        raise
    finally:
        if gt_frames is not None:
            gt_frames.close()
        if own_session:
            session.close()


def _png_bytes(rgba: np.ndarray) -> bytes:
    import io as stdio

    from PIL import Image

    buffer = stdio.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


__all__ = ["matte_video", "iter_mattes", "video_methods", "is_video_method", "check_video_method", "ofd_default",
           "VideoLimits", "VideoResult", "FrameMatte", "VideoInfo", "probe", "TRIMAP_NOTE", "video_params"]
