"""Decoding and encoding clips with PyAV (FFmpeg's libraries, shipped in the ``av`` wheel).

* :func:`probe` opens a file and says what it is (:class:`VideoInfo`), or raises one
  :class:`~matting.errors.MattingError` meant for a person: missing or empty file, not a video, a still
  image, no video track, a codec this FFmpeg cannot decode, no frames.
* :func:`read_frames` streams RGB frames (uint8 H×W×3) of a time range, one at a time: memory stays
  at a frame or two whatever the clip's length.
* :class:`VideoWriter` encodes frames into one file (see :data:`KINDS`), copying the source's audio
  when the container takes its codec and re-encoding it (AAC, Opus) when it does not. Output is
  written to the path it is given; :class:`AtomicFiles` gives it a temporary name and renames the
  finished files, so that a reader never sees half a video.

Frame timing: the output has the source's average frame rate (constant rate; a variable-rate source
is re-timed to its average).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import MattingError
from ..io import MIN_SIDE

# Formats FFmpeg opens for single pictures: a still image is not a clip.
STILL_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "tiff_pipe", "webp_pipe", "pgm_pipe", "ppm_pipe",
                 "pam_pipe", "j2k_pipe", "dpx_pipe", "exr_pipe", "jpegls_pipe", "qoi_pipe", "svg_pipe", "psd_pipe"}
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif", ".ogv", ".mpg", ".mpeg", ".ts")


@dataclass(frozen=True)
class Kind:
    """One kind of output file: container, codec, pixel format, options, what it is for."""

    container: str
    suffix: str
    codec: str
    pix_fmt: str
    input_format: str  # of the arrays handed to write(): rgb24, rgba or gray
    options: tuple = ()
    even: bool = False  # the codec needs even sides at this pixel format (pad by repeating the edge)
    audio: str | None = None  # codec to re-encode audio to when the source's cannot be copied
    copy_audio: frozenset = frozenset()  # source audio codecs the container takes as they are
    description: str = ""


_MP4_AUDIO = frozenset({"aac", "mp3", "alac", "opus", "ac3", "eac3", "flac"})
_MOV_AUDIO = frozenset({"aac", "mp3", "alac", "pcm_s16le", "pcm_s24le", "pcm_f32le", "ac3"})
_WEBM_AUDIO = frozenset({"opus", "vorbis"})

KINDS: dict[str, Kind] = {
    "h264": Kind("mp4", ".mp4", "libx264", "yuv420p", "rgb24",
                 (("crf", "18"), ("preset", "veryfast")), True, "aac", _MP4_AUDIO,
                 "H.264 in MP4 (4:2:0): plays in every browser"),
    "h264_gray": Kind("mp4", ".mp4", "libx264", "yuv420p", "gray",
                      (("crf", "12"), ("preset", "veryfast")), True, None, frozenset(),
                      "grey alpha as H.264 in MP4 (near-lossless, crf 12): plays in every browser"),
    "vp9": Kind("webm", ".webm", "libvpx-vp9", "yuv420p", "rgb24",
                (("crf", "32"), ("b", "0"), ("deadline", "realtime"), ("cpu-used", "8"), ("row-mt", "1")),
                False, "libopus", _WEBM_AUDIO, "VP9 in WebM: plays in Chrome, Firefox, Edge, Safari ≥ 14"),
    "vp9_gray": Kind("webm", ".webm", "libvpx-vp9", "yuv420p", "gray",
                     (("crf", "20"), ("b", "0"), ("deadline", "realtime"), ("cpu-used", "8"), ("row-mt", "1")),
                     False, None, frozenset(), "grey alpha as VP9 in WebM"),
    "vp9_alpha": Kind("webm", ".webm", "libvpx-vp9", "yuva420p", "rgba",
                      (("crf", "32"), ("b", "0"), ("deadline", "realtime"), ("cpu-used", "8"), ("row-mt", "1"),
                       ("auto-alt-ref", "0")),
                      False, "libopus", _WEBM_AUDIO,
                      "cut-out with transparency: VP9 with alpha in WebM (Chrome, Firefox, Edge play it transparent)"),
    "prores4444": Kind("mov", ".mov", "prores_ks", "yuva444p10le", "rgba", (("profile", "4444"),), True, "aac",
                       _MOV_AUDIO, "cut-out with transparency: ProRes 4444 in MOV (editing software; large files)"),
    "ffv1_gray": Kind("matroska", ".mkv", "ffv1", "gray", "gray", (), False, None, frozenset(),
                      "lossless grey (FFV1 in Matroska): exact alpha, for ground truth; browsers do not play it"),
}


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` found."""

    path: str
    width: int
    height: int
    fps: Fraction
    frames: int | None  # from the container, or estimated from duration × fps; None when unknown
    duration: float | None  # seconds
    codec: str
    container: str
    audio_codec: str | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def size_text(self) -> str:
        return f"{self.width}×{self.height}"

    def describe(self) -> str:
        parts = [f"{self.size_text} px", f"{float(self.fps):.3g} frames/s"]
        if self.frames is not None:
            parts.append(f"{self.frames} frames")
        if self.duration is not None:
            parts.append(f"{self.duration:.2f} s")
        parts.append(f"{self.codec} in {self.container}")
        parts.append(f"audio: {self.audio_codec}" if self.audio_codec else "no audio")
        return " · ".join(parts)

    def summary(self) -> dict:
        return {"width": self.width, "height": self.height, "fps": float(self.fps), "frames": self.frames,
                "duration_s": self.duration, "codec": self.codec, "container": self.container,
                "audio": self.audio_codec}


def _av():
    import av

    return av


def _label(path: Path, name: str) -> str:
    return f"{name} file {path.name!r}"


def _open(path, name: str):
    """av.open with every failure turned into a sentence about the user's file."""
    av = _av()
    path = Path(path)
    if not path.exists():
        raise MattingError(f"The {name} file {str(path)!r} does not exist.")
    if path.is_dir():
        raise MattingError(f"The {name} {str(path)!r} is a folder, not a video file.")
    label = _label(path, name)
    if path.stat().st_size == 0:
        raise MattingError(f"The {label} is empty (0 bytes); expected a video such as MP4, WebM or MOV.")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.EOFError:
        raise MattingError(f"The {label} contains no frames (the container ends before any picture).") from None
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MattingError(
            f"The {label} is not a video that can be read (expected MP4, WebM, MOV, MKV, AVI or GIF): "
            f"{getattr(exc, 'strerror', None) or exc}."
        ) from None


def probe(path, name: str = "video") -> VideoInfo:
    """Open ``path`` and describe its first video stream (nothing is decoded but the header)."""
    container = _open(path, name)
    label = _label(Path(path), name)
    try:
        format_name = container.format.name
        if format_name in STILL_FORMATS or format_name.endswith("_pipe"):
            raise MattingError(f"The {label} is a still image ({format_name.replace('_pipe', '').upper()}), not a "
                               "video; use the image tabs for a single picture.")
        if not container.streams.video:
            audio = " (it has only audio)" if container.streams.audio else ""
            raise MattingError(f"The {label} has no video track{audio}.")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise MattingError(
                f"The {label} uses a video codec that this build of FFmpeg cannot decode (unknown codec "
                f"{_codec_tag(stream)}); re-encode it as H.264 (MP4) or VP9 (WebM).")
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise MattingError(f"The {label} has a video track without a picture size; it is damaged.")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            rate = Fraction(25)
        duration = None
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        frames = int(stream.frames) if stream.frames else (round(duration * rate) if duration else None)
        audio = container.streams.audio[0].codec_context if container.streams.audio else None
        return VideoInfo(str(path), int(width), int(height), Fraction(rate), frames, duration,
                         stream.codec_context.name, format_name.split(",")[0],
                         audio.name if audio is not None else None)
    finally:
        container.close()


def _codec_tag(stream) -> str:
    try:
        tag = stream.codec_tag
    except AttributeError:
        tag = ""
    return repr(tag) if tag else "id 0"


def read_frames(path, start: float = 0.0, end: float | None = None, name: str = "video",
                format: str = "rgb24") -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in s from ``start``, uint8 frame) for each frame with start ≤ time < end, streamed.

    ``format`` is ``rgb24`` (H×W×3) or ``gray`` (H×W, for alpha videos). Frames are decoded one at a
    time; the index counts the frames yielded (0, 1, …).
    """
    av = _av()
    container = _open(path, name)
    label = _label(Path(path), name)
    try:
        if not container.streams.video or container.streams.video[0].codec_context is None:
            probe(path, name)  # raises the right message
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start > 0:
            container.seek(int(start / stream.time_base) + (stream.start_time or 0), stream=stream, backward=True)
        index = 0
        origin = float((stream.start_time or 0) * stream.time_base)
        try:
            for frame in container.decode(stream):
                time = (float(frame.time) - origin) if frame.time is not None else index / float(
                    stream.average_rate or 25)
                if time < start - 1e-6:
                    continue
                if end is not None and time >= end - 1e-6:
                    break
                yield index, time - start, frame.to_ndarray(format=format)
                index += 1
        except av.error.FFmpegError as exc:
            raise MattingError(f"The {label} is damaged: decoding stopped after {index} frames ({exc}).") from None
    finally:
        container.close()


# --------------------------------------------------------------------------- writing

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class AtomicFiles:
    """Temporary names next to the final ones; :meth:`commit` renames them all, :meth:`discard` removes
    them. Unique names: two runs writing into the same folder never share a temporary file."""

    def __init__(self):
        self._pending: list[tuple[Path, Path]] = []

    def temp(self, final) -> Path:
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
        os.close(handle)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; the finished file gets the usual mode
        self._pending.append((Path(name), final))
        return Path(name)

    def commit(self) -> list[Path]:
        done = []
        for temporary, final in self._pending:
            os.replace(temporary, final)
            done.append(final)
        self._pending = []
        return done

    def discard(self) -> None:
        for temporary, _ in self._pending:
            temporary.unlink(missing_ok=True)
        self._pending = []


class _Audio:
    """The source's first audio track carried into an output container, interleaved with the video."""

    def __init__(self, source, output, kind: Kind, start: float, end: float | None):
        av = _av()
        self.input = av.open(str(source), metadata_errors="ignore")
        self.in_stream = self.input.streams.audio[0]
        self.start, self.end = start, end
        self.output = output
        self.copy = self.in_stream.codec_context.name in kind.copy_audio
        if self.copy:
            self.out_stream = output.add_stream_from_template(self.in_stream)
        else:
            rate = 48000 if kind.audio == "libopus" else (self.in_stream.codec_context.sample_rate or 48000)
            self.out_stream = output.add_stream(kind.audio, rate=rate)
            self.out_stream.layout = "stereo" if self.in_stream.codec_context.channels != 1 else "mono"
            self.resampler = av.AudioResampler(format=self.out_stream.codec_context.format,
                                               layout=self.out_stream.layout, rate=rate)
        if start > 0:
            self.input.seek(int(start * 1_000_000), backward=True)
        self.packets = self.input.demux(self.in_stream)
        self.done = False
        self.pending = None

    def _time(self, packet) -> float | None:
        if packet.pts is None:
            return None
        return float(packet.pts * packet.time_base) - float((self.in_stream.start_time or 0) * self.in_stream.time_base)

    def advance(self, until: float) -> None:
        """Write the audio up to ``until`` seconds of output time."""
        while not self.done:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                self.done = True
                break
            time = self._time(packet)
            if time is None:
                continue
            if self.end is not None and time >= self.end:
                self.done = True
                break
            if time - self.start > until:
                self.pending = packet
                break
            if time < self.start - 1e-6:
                continue
            self._write(packet)

    def _write(self, packet) -> None:
        shift = round(self.start / packet.time_base) + (self.in_stream.start_time or 0)
        if self.copy:
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self.out_stream
            self.output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            for piece in self.resampler.resample(frame):
                for out in self.out_stream.encode(piece):
                    self.output.mux(out)

    def finish(self) -> None:
        self.advance(float("inf"))
        if not self.copy:
            for piece in self.resampler.resample(None):
                for out in self.out_stream.encode(piece):
                    self.output.mux(out)
            for out in self.out_stream.encode(None):
                self.output.mux(out)
        self.input.close()

    def close(self) -> None:
        self.input.close()


class VideoWriter:
    """Encode frames (uint8 arrays in the kind's ``input_format``) into ``path``.

    ``audio_from``: a source file whose first audio track is kept (copied if the container takes its
    codec, else re-encoded), trimmed to [start, end) like the frames. Audio problems never stop the
    video: they land in :attr:`warnings`.
    """

    def __init__(self, path, kind: str, width: int, height: int, fps, audio_from=None, start: float = 0.0,
                 end: float | None = None):
        av = _av()
        self.kind = KINDS[kind]
        self.path = Path(path)
        self.width, self.height = width, height
        self.pad = (height % 2, width % 2) if self.kind.even else (0, 0)
        self.fps = Fraction(fps).limit_denominator(1001 * 1000)
        muxer_options = {"movflags": "+faststart"} if self.kind.container == "mp4" else {}
        self.container = av.open(str(self.path), "w", format=self.kind.container, options=muxer_options)
        self.stream = self.container.add_stream(self.kind.codec, rate=self.fps, options=dict(self.kind.options))
        self.stream.width, self.stream.height = width + self.pad[1], height + self.pad[0]
        self.stream.pix_fmt = self.kind.pix_fmt
        self.stream.time_base = 1 / self.fps
        self.stream.codec_context.time_base = 1 / self.fps
        self.warnings: list[str] = []
        self.audio = None
        if audio_from is not None and self.kind.audio is not None:
            try:
                self.audio = _Audio(audio_from, self.container, self.kind, start, end)
            except Exception as exc:  # noqa: BLE001 - the picture matters more than the sound
                self.warnings.append(f"The audio could not be kept in {self.path.suffix} ({exc}).")
                self.audio = None
        self.count = 0

    def write(self, array: np.ndarray) -> None:
        av = _av()
        if self.pad != (0, 0):
            pad = ((0, self.pad[0]), (0, self.pad[1])) + (((0, 0),) if array.ndim == 3 else ())
            array = np.pad(array, pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=self.kind.input_format)
        frame.pts = self.count
        frame.time_base = self.stream.codec_context.time_base
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1
        if self.audio is not None:
            self._audio(lambda: self.audio.advance(self.count / float(self.fps)))

    def _audio(self, step) -> None:
        try:
            step()
        except Exception as exc:  # noqa: BLE001
            self.warnings.append(f"The audio stopped part-way in {self.path.suffix} ({exc}).")
            self.audio.close()
            self.audio = None

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        if self.audio is not None:
            self._audio(self.audio.finish)
        self.container.close()

    def abort(self) -> None:
        try:
            if self.audio is not None:
                self.audio.close()
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is thrown away anyway
            pass


def write_video(path, frames, kind: str, fps, audio_from=None) -> Path:
    """Encode an iterable of uint8 arrays into ``path`` atomically (for examples, tests and notebooks)."""
    files = AtomicFiles()
    temporary = files.temp(path)
    writer = None
    try:
        for frame in frames:
            if writer is None:
                writer = VideoWriter(temporary, kind, frame.shape[1], frame.shape[0], fps, audio_from)
            writer.write(frame)
        if writer is None:
            raise MattingError("No frames to write.")
        writer.close()
        files.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        files.discard()
        raise
    return Path(path)


def available_codecs() -> dict[str, bool]:
    """Which encoders of :data:`KINDS` (and the audio ones) this PyAV wheel has."""
    av = _av()
    names = {kind.codec for kind in KINDS.values()} | {"aac", "libopus"}
    found = {}
    for name in sorted(names):
        try:
            av.codec.Codec(name, "w")
            found[name] = True
        except Exception:  # noqa: BLE001
            found[name] = False
    return found


def check_size(info: VideoInfo, name: str = "video") -> None:
    if min(info.width, info.height) < MIN_SIDE:
        raise MattingError(f"The {name} is {info.size_text} pixels; each side must be at least {MIN_SIDE} pixels.")
