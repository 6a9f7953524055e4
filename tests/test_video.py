"""Video matting (matting.video): codecs, the frame loop against the still-image path, OFD, temporal
metrics, limits and bad inputs, atomic outputs, the CLI.

Clips are tiny (64×48, a handful of frames) and made here from a synthetic scene with a known alpha
(:mod:`matting.video.synthetic`). Fast checks use two throw-away methods registered by this module (an
automatic threshold and a background-difference method); the real methods run on 3–4 frames: U²-NetP and
selfie segmentation with their offline weights, MODNet and BGMv2 with random-recipe checkpoints
written to a temporary folder and named by ``MATTING_WEIGHTS_<ID>`` (as tests/test_adapters_deep.py).
"""
from __future__ import annotations

import json
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import matting
from matting import io, registry, weights
from matting.errors import MattingError
from matting.models import create
from matting.spec import Card, MethodOutput, MethodSpec, Param
from matting.video import (TRIMAP_NOTE, VideoLimits, check_video_method, codec, iter_mattes, matte_video, ofd,
                           ofd_default, synthetic, temporal, video_methods)

CARD = Card(paper="test", authors="Nobody", year=2024, venue="tests", paper_url="https://example.org",
            code="tests/test_video.py", code_license="MIT", weights_license="none", how_it_works="Test.")
LOADS = {"count": 0}
FLICKER_AT = {"frames": ()}  # calls (0-based) at which the flicker method inverts a block


def _red_threshold(inputs, params, loaded=None):
    alpha = np.clip((inputs.image[:, :, 0] - 0.55) * 4 + 0.5, 0, 1)
    return MethodOutput(alpha=alpha.astype(np.float32))


def _load(params):
    LOADS["count"] += 1
    return {"calls": 0}


def _flickering(inputs, params, loaded):
    alpha = _red_threshold(inputs, params).alpha
    if loaded["calls"] in FLICKER_AT["frames"]:
        alpha = alpha.copy()
        alpha[10:30, 5:20] = 1 - alpha[10:30, 5:20]
    loaded["calls"] += 1
    return MethodOutput(alpha=alpha)


def _difference(inputs, params, loaded=None):
    alpha = np.clip(np.abs(inputs.image - inputs.background).mean(axis=2) * 6, 0, 1)
    return MethodOutput(alpha=alpha.astype(np.float32), foreground=inputs.image)


def _failing(inputs, params, loaded):
    loaded["calls"] += 1
    if loaded["calls"] > 3:
        raise MattingError("the test method gives up at frame 4")
    return _red_threshold(inputs, params)


FOREGROUND = (Param("foreground", "multilevel", "colours", kind="choice", choices=("none", "multilevel")),)
FAKES = [
    MethodSpec(id="test_video_threshold", name="Test video threshold", family="automatic", compute=_red_threshold,
               card=CARD, params=FOREGROUND),
    MethodSpec(id="test_video_flicker", name="Test flicker", family="automatic", compute=_flickering, load=_load,
               card=CARD, params=FOREGROUND),
    MethodSpec(id="test_video_plate", name="Test plate difference", family="background", compute=_difference,
               required_inputs=("background",), provides_foreground=True, card=CARD,
               params=(Param("foreground", "model", "colours", kind="choice", choices=("none", "model")),)),
    MethodSpec(id="test_video_failing", name="Test failing", family="automatic", compute=_failing, load=_load,
               card=CARD, params=FOREGROUND),
]


@pytest.fixture(scope="module", autouse=True)
def fakes():
    matting.methods()
    for spec in FAKES:
        registry.register(spec)
    yield
    for spec in FAKES:
        registry.unregister(spec.id)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return synthetic.disc_clip(tmp_path_factory.mktemp("clip"), width=64, height=48, frames=8, fps=24)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """MODNet and BGMv2 (MobileNetV2) with random-recipe weights, named by MATTING_WEIGHTS_<ID>."""
    folder = tmp_path_factory.mktemp("random_weights")
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as patch:
        for checkpoint_id, arch, kwargs, wrap in (
                ("modnet_photographic", "modnet", {}, lambda s: {f"module.{k}": v for k, v in s.items()}),
                ("bgmv2_mobilenetv2", "bgmv2_refine", {"backbone": "mobilenetv2"}, dict)):
            path = folder / weights.entry(checkpoint_id).file
            torch.save(wrap(create(arch, **kwargs).eval().state_dict()), path)
            patch.setenv(weights.entry(checkpoint_id).env_var, str(path))
        yield folder


def _frames(path, **kwargs):
    return [frame for _, _, frame in codec.read_frames(path, **kwargs)]


def _zip_alphas(path) -> list[np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        return [np.asarray(Image.open(archive.open(name)))[:, :, 3] for name in sorted(archive.namelist())]


def _assert_nothing_written(folder: Path):
    assert not folder.exists() or not any(folder.iterdir()), sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- which methods

def test_video_methods_are_the_automatic_and_plate_methods_not_trimap_ones():
    ids = {spec.id for spec in video_methods()}
    assert {"u2netp", "modnet", "selfie_segmentation", "bgmv2", "test_video_threshold"} <= ids
    assert not {spec.id for spec in matting.methods("trimap")} & ids
    with pytest.raises(MattingError, match="trimap method") as caught:
        check_video_method(matting.get("closed_form"))
    assert TRIMAP_NOTE in str(caught.value)
    assert ofd_default("modnet") and not ofd_default("u2netp") and not ofd_default("bgmv2")


# --------------------------------------------------------------------------- codecs

@pytest.mark.parametrize("kind", ["h264", "vp9", "vp9_alpha", "prores4444", "h264_gray", "ffv1_gray"])
@pytest.mark.parametrize("fps", [24, 30000 / 1001])
def test_encode_decode_round_trip_keeps_frame_count_size_and_fps(tmp_path, kind, fps):
    rng = np.random.default_rng(0)
    channels = {"rgb24": 3, "rgba": 4, "gray": 0}[codec.KINDS[kind].input_format]
    shape = (48, 64, channels) if channels else (48, 64)
    frames = [(rng.random(shape) * 255).astype(np.uint8) for _ in range(10)]
    path = codec.write_video(tmp_path / f"clip{codec.KINDS[kind].suffix}", frames, kind, fps)
    info = codec.probe(path)
    assert (info.width, info.height) == (64, 48)
    assert abs(float(info.fps) - fps) < 1e-3
    decoded = _frames(path)
    assert len(decoded) == 10 and decoded[0].shape == (48, 64, 3)
    if kind == "ffv1_gray":  # lossless: exact
        assert all((got[:, :, 0] == sent).all() for got, sent in zip(decoded, frames))
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_wheel_has_the_encoders_used():
    found = codec.available_codecs()
    assert all(found[name] for name in ("libx264", "libvpx-vp9", "prores_ks", "ffv1", "aac", "libopus")), found


def _with_audio(tmp_path) -> Path:
    """A 64×48 H.264 + AAC clip (a sine tone) made with PyAV."""
    import av

    path = tmp_path / "with_audio.mp4"
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        tone = (0.2 * np.sin(np.arange(44100 // 2) * 2 * np.pi * 440 / 44100)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2, axis=0), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 44100, 0
        for packet in audio.encode(frame):
            container.mux(packet)
        for index in range(12):
            picture = np.zeros((48, 64, 3), np.uint8)
            picture[:, : 20 + index * 2] = (230, 120, 40)
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode(None):
                container.mux(packet)
    return path


def test_audio_is_copied_into_mp4_and_re_encoded_for_webm(tmp_path):
    source = _with_audio(tmp_path)
    result = matte_video("test_video_threshold", source, out=tmp_path / "out", outputs=("composite", "cutout"))
    assert codec.probe(result.files["composite"]).audio_codec == "aac"   # copied
    assert codec.probe(result.files["cutout"]).audio_codec == "opus"     # WebM takes no AAC: re-encoded
    assert result.frames == 12 and not result.warnings
    trimmed = matte_video("test_video_threshold", source, out=tmp_path / "trimmed", outputs=("composite",),
                          start=0.25, duration=0.2)
    info = codec.probe(trimmed.files["composite"])
    assert trimmed.frames == 5 and info.audio_codec == "aac"
    silent = matte_video("test_video_threshold", source, out=tmp_path / "silent", outputs=("composite",),
                         keep_audio=False)
    assert codec.probe(silent.files["composite"]).audio_codec is None


# --------------------------------------------------------------------------- the video path = the still path

def _still_alphas(method_id, frames, background=None, **params):
    return [matting.run(method_id, frame, background=background, **params).alpha for frame in frames]


@pytest.mark.parametrize("method_id, params, needs", [
    ("test_video_threshold", {}, None),
    ("u2netp", {}, "offline"),
    ("selfie_segmentation", {}, "offline"),
    pytest.param("modnet", {}, "random", marks=pytest.mark.slow),  # runs at 672×512 whatever the clip
    ("bgmv2", {"preset": "custom", "backbone_scale": 0.5}, "random"),
    ("test_video_plate", {}, None),
])
def test_every_video_path_gives_the_still_image_alpha_on_the_same_frames(tmp_path, request, clip, method_id,
                                                                         params, needs):
    """One pass of matte_video with OFD: the raw per-frame matte equals matting.run on the same decoded
    frame (same method, same parameters) exactly; the written matte equals OFD applied to the still
    mattes; the PNG ZIP holds that matte in 8 bits."""
    if needs == "random":
        request.getfixturevalue("random_weights")
    spec = matting.get(method_id)
    if needs == "offline" and weights.path(spec.weights[0]) is None:
        pytest.skip(f"offline weights of {method_id} are missing")
    count = 3 if method_id in ("modnet", "bgmv2", "u2netp", "selfie_segmentation") else 8
    duration = count / clip.fps
    frames = _frames(clip.video, end=duration)
    plate = io.load_image(clip.plate) if spec.accepts("background") else None
    seen = []
    result = matte_video(method_id, clip.video, out=tmp_path / "out", background=clip.plate if plate is not None
                         else None, ofd=True, duration=duration, outputs=("png_zip", "alpha"),
                         on_frame=lambda item: seen.append((item.raw_alpha.copy(), item.alpha.copy())), **params)
    still_params = {"foreground": result.params["foreground"], **params}
    still = _still_alphas(method_id, frames, plate, **still_params)
    assert result.frames == len(seen) == len(still) == count
    for (raw, _), expected in zip(seen, still):
        np.testing.assert_array_equal(raw, expected)
    smoothed = ofd.apply(still)
    for (_, final), expected in zip(seen, smoothed):
        np.testing.assert_array_equal(final, expected)
    for written, expected in zip(_zip_alphas(result.files["png_zip"]), smoothed):
        np.testing.assert_array_equal(written, io.to_uint8(expected))
    assert codec.probe(result.files["alpha"]).frames == count


def test_the_method_is_loaded_once_per_clip(tmp_path, clip):
    LOADS["count"] = 0
    FLICKER_AT["frames"] = ()
    result = matte_video("test_video_flicker", clip.video, out=tmp_path, outputs=("alpha",))
    assert result.frames == 8 and LOADS["count"] == 1


# --------------------------------------------------------------------------- OFD

def _static_sequence(count=7):
    base = np.zeros((48, 64), np.float32)
    base[12:36, 16:48] = 1.0
    base[12:36, 14:16] = 0.5
    return [base.copy() for _ in range(count)]


def test_ofd_removes_an_injected_one_frame_flicker_exactly():
    clean = _static_sequence()
    noisy = [a.copy() for a in clean]
    noisy[3][20:30, 20:30] = 0.0  # a hole for one frame
    noisy[5][0:5, 0:5] = 1.0      # a speck for one frame
    smoothed = ofd.apply(noisy)
    for got, expected in zip(smoothed, clean):
        np.testing.assert_array_equal(got, expected)


def test_ofd_leaves_a_static_clip_and_real_motion_unchanged():
    static = _static_sequence()
    assert all((a == b).all() for a, b in zip(ofd.apply(static), static))
    moving = []  # an edge moving 4 px a frame: neighbours disagree, nothing is a flicker
    for t in range(6):
        alpha = np.zeros((48, 64), np.float32)
        alpha[:, : 10 + 4 * t] = 1
        moving.append(alpha)
    assert all((a == b).all() for a, b in zip(ofd.apply(moving), moving))


def test_ofd_outputs_one_frame_late_and_keeps_first_and_last():
    delay = ofd.OneFrameDelay()
    frames = _static_sequence(3)
    assert delay.push(frames[0], "a") == []
    (first, _, payload), = delay.push(frames[1], "b")
    assert payload == "a" and first is frames[0]
    (second, _, payload), = delay.push(frames[2], "c")
    assert payload == "b"
    (last, _, payload), = delay.flush()
    assert payload == "c" and last is frames[2]


def test_ofd_in_the_pipeline_removes_flicker_a_static_clip_stays_the_same(tmp_path):
    frames = [np.full((48, 64, 3), 0.2, np.float32) for _ in range(8)]
    for frame in frames:
        frame[8:40, 16:48] = (0.9, 0.5, 0.2)
    path = codec.write_video(tmp_path / "static.mp4", [io.to_uint8(f) for f in frames], "h264", 24)
    FLICKER_AT["frames"] = (3, 6)
    flickering = matte_video("test_video_flicker", path, out=tmp_path / "off", ofd=False, outputs=("png_zip",))
    FLICKER_AT["frames"] = (3, 6)
    smoothed = matte_video("test_video_flicker", path, out=tmp_path / "on", ofd=True, outputs=("png_zip",))
    FLICKER_AT["frames"] = ()
    plain = matte_video("test_video_flicker", path, out=tmp_path / "plain", ofd=False, outputs=("png_zip",))
    plain_ofd = matte_video("test_video_flicker", path, out=tmp_path / "plain_ofd", ofd=True, outputs=("png_zip",))
    assert flickering.flicker_mean > 10 and smoothed.flicker_mean == pytest.approx(0, abs=1e-6)
    assert smoothed.flicker_raw_mean == pytest.approx(flickering.flicker_mean)  # same raw mattes
    assert flickering.flicker_ofd_mean == pytest.approx(0, abs=1e-6)  # OFD's curve is computed with OFD off too
    assert smoothed.ofd_replaced_pixels == 2 * 20 * 15
    for a, b in zip(_zip_alphas(smoothed.files["png_zip"]), _zip_alphas(plain.files["png_zip"])):
        np.testing.assert_array_equal(a, b)  # flicker gone: equal to the clip without it
    for a, b in zip(_zip_alphas(plain_ofd.files["png_zip"]), _zip_alphas(plain.files["png_zip"])):
        np.testing.assert_array_equal(a, b)  # a static clip is unchanged by OFD
    assert plain_ofd.ofd_replaced_pixels == 0


# --------------------------------------------------------------------------- temporal metrics

def test_dtssd_and_messddt_by_hand():
    gt = _static_sequence(2)
    assert temporal.dtssd_pair(gt[1], gt[0], gt[1], gt[0]) == 0
    offset = [np.clip(a + 0.1, 0, 1) for a in gt]  # wrong by the same amount in both frames: no temporal error
    assert temporal.dtssd_pair(offset[1], offset[0], gt[1], gt[0]) == pytest.approx(0, abs=1e-6)
    assert temporal.messddt_pair(offset[1], offset[0], gt[1], gt[0]) == pytest.approx(0, abs=1e-6)
    flicker = gt[1].copy()
    flicker[0:12, :] = 0.5  # a quarter of the pixels (background: α* = 0) jump by 0.5 in one frame
    assert temporal.dtssd_pair(flicker, gt[0], gt[1], gt[0]) == pytest.approx(np.sqrt(0.25 * 0.5 ** 2) * 1e2)
    # error² appears on those pixels (0.25) and was 0 a frame before: mean 0.25 × 0.25
    assert temporal.messddt_pair(flicker, gt[0], gt[1], gt[0]) == pytest.approx(0.25 * 0.25 * 1e3, rel=1e-4)


def test_flicker_counts_only_pixels_whose_image_does_not_change():
    image = np.zeros((4, 4, 3), np.float32)
    moved = image.copy()
    moved[:2] = 1.0  # the top half of the image changes
    alpha, alpha_next = np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32)
    alpha_next[:2] = 1.0  # …and so does the matte there: that is motion, not flicker
    alpha_next[3, 0] = 0.5  # one static pixel flickers
    assert temporal.flicker_value(alpha_next, alpha, moved, image) == pytest.approx(0.5 / 8 * 1e3)
    assert temporal.flicker_value(alpha_next, alpha, image + 1, image) is None


def test_ground_truth_errors_of_a_run(tmp_path, clip):
    result = matte_video("test_video_threshold", clip.video, out=tmp_path, ground_truth=clip.alpha,
                         outputs=("alpha",))
    errors = result.errors
    assert len(errors["per_frame"]["sad"]) == 8 and len(errors["per_frame"]["dtssd"]) == 7
    assert errors["units"]["dtssd"] == "dtSSD (×10⁻²)" and errors["mse"] > 0
    summary = json.loads(result.files["summary"].read_text())
    assert summary["ground_truth_errors"]["dtssd"] == pytest.approx(errors["dtssd"])
    assert summary["flicker"]["units"] == "flicker (×10⁻³)"
    gt = [f[:, :, 0].astype(np.float32) / 255 for f in _frames(clip.alpha)]
    assert gt[0].max() == 1.0 and gt[0].min() == 0.0  # the lossless ground truth decodes exactly


# --------------------------------------------------------------------------- bad inputs: a message, nothing written

def _empty_mkv(path):
    import av

    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "gray"
        container.start_encoding()
    return path


@pytest.fixture
def bad_files(tmp_path, clip):
    text = tmp_path / "notes.mp4"
    text.write_text("these are not frames")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    still = io.save_png(tmp_path / "photo.png", np.zeros((48, 64, 3), np.float32))
    unknown = tmp_path / "unknown.mp4"
    unknown.write_bytes(Path(clip.video).read_bytes().replace(b"avc1", b"zzz1"))
    small_plate = io.save_png(tmp_path / "small_plate.png", np.zeros((24, 32, 3), np.float32))
    wide_plate = io.save_png(tmp_path / "wide_plate.png", np.zeros((48, 96, 3), np.float32))
    short_gt = codec.write_video(tmp_path / "short_gt.mkv", [np.zeros((48, 64), np.uint8)] * 3, "ffv1_gray", 24)
    big_gt = codec.write_video(tmp_path / "big_gt.mkv", [np.zeros((96, 128), np.uint8)] * 3, "ffv1_gray", 24)
    return {"text": text, "empty": empty, "still": still, "unknown": unknown, "zero": _empty_mkv(tmp_path / "zero.mkv"),
            "small_plate": small_plate, "wide_plate": wide_plate, "short_gt": short_gt, "big_gt": big_gt,
            "missing": tmp_path / "nowhere.mp4"}


@pytest.mark.parametrize("case, kwargs, message", [
    ("text", {}, "is not a video that can be read"),
    ("empty", {}, "is empty"),
    ("missing", {}, "does not exist"),
    ("still", {}, "is a still image"),
    ("zero", {}, "contains no frames"),
    ("unknown", {}, "cannot decode"),
    ("clip", {"limits": VideoLimits(max_frames=5)}, "8 frames, above the limit of 5"),
    ("clip", {"limits": VideoLimits(max_seconds=0.2)}, "above the limit of 0.2 s"),
    ("clip", {"limits": VideoLimits(max_pixels=1000)}, "above the limit of 1,000 pixels"),
    ("clip", {"start": 5}, "starts at 5 s but the clip is 0.33 s long"),
    ("clip", {"duration": -1}, "positive number of seconds"),
    ("clip", {"method": "closed_form"}, "Trimap methods are not offered for video"),
    ("clip", {"method": "test_video_plate"}, "needs a background plate"),
    ("clip", {"method": "test_video_plate", "background": "small_plate"}, "resize it to the clip's size"),
    ("clip", {"method": "test_video_plate", "background": "wide_plate"}, "aspect ratio differs"),
    ("clip", {"background": "small_plate"}, "does not take a background plate"),
    ("clip", {"ground_truth": "big_gt"}, "ground-truth alpha video is 128×96 but the clip is 64×48"),
    ("clip", {"ground_truth": "short_gt"}, "ends after 3 frames"),
    ("clip", {"method": "test_video_failing"}, "gives up at frame 4"),
    ("clip", {"outputs": ("gif",)}, "Outputs are some of"),
    ("clip", {"threshold": 3}, "has no parameter 'threshold'"),
])
def test_bad_input_gets_a_clear_message_and_nothing_is_written(tmp_path, clip, bad_files, case, kwargs, message):
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "test_video_threshold")
    for key in ("background", "ground_truth"):
        if key in kwargs:
            kwargs[key] = bad_files[kwargs[key]]
    source = clip.video if case == "clip" else bad_files[case]
    out = tmp_path / "out"
    with pytest.raises(MattingError, match=message):
        matte_video(method, source, out=out, outputs=kwargs.pop("outputs", ("alpha", "composite", "cutout",
                                                                            "png_zip")), **kwargs)
    _assert_nothing_written(out)


def test_environment_overrides_the_limits(monkeypatch):
    monkeypatch.setenv("MATTING_VIDEO_MAX_FRAMES", "12")
    assert VideoLimits.from_env().max_frames == 12
    assert VideoLimits.from_env(max_frames=0).max_frames == 0
    monkeypatch.setenv("MATTING_VIDEO_MAX_SECONDS", "soon")
    with pytest.raises(MattingError, match="MATTING_VIDEO_MAX_SECONDS must be a number"):
        VideoLimits.from_env()


def test_concurrent_runs_into_one_folder_leave_whole_files(tmp_path, clip):
    errors = []

    def one():
        try:
            matte_video("test_video_threshold", clip.video, out=tmp_path, outputs=("alpha", "composite"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha.mp4", "composite.mp4", "video.json"]
    assert len(_frames(tmp_path / "composite.mp4")) == 8


# --------------------------------------------------------------------------- command line

def test_cli_video_writes_the_outputs_and_reports_frames_per_second(tmp_path, clip, capsys):
    from matting.cli import main

    out = tmp_path / "out"
    code = main(["video", "test_video_threshold", "--video", str(clip.video), "--out", str(out), "--ofd",
                 "--outputs", "alpha,composite,cutout,png_zip", "--cutout", "mov", "--codec", "vp9", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "frames/s" in printed
    assert {p.name for p in out.iterdir()} == {"alpha.webm", "composite.webm", "cutout.mov", "cutout_png.zip",
                                               "video.json"}
    assert json.loads((out / "video.json").read_text())["ofd"] is True
    code = main(["video", "test_video_threshold", "--video", str(clip.video), "--out", str(tmp_path / "bad"),
                 "--max-frames", "2", "--quiet"])
    assert code == 2 and "above the limit of 2" in capsys.readouterr().err
    _assert_nothing_written(tmp_path / "bad")
