"""The app's Video tab through gradio_client: its endpoints, a run, the example clip, bad input.

The app runs in this process on 127.0.0.1 and a free port (as tests/test_app_api.py). A throw-away
automatic method registered before the app is built shows that the tab is generated from the
registry; it is fast, so the runs take a second.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

import matting  # noqa: E402
from matting import registry  # noqa: E402
from matting.spec import Card, MethodOutput, MethodSpec, Param  # noqa: E402
from matting.video import codec, synthetic  # noqa: E402


def _threshold(inputs, params):
    return MethodOutput(alpha=np.clip((inputs.image[:, :, 0] - 0.55) * 4 + 0.5, 0, 1).astype(np.float32))


FAKE = MethodSpec(
    id="test_video_app_threshold", name="Test video app threshold", family="automatic", compute=_threshold,
    params=(Param("foreground", "multilevel", "colours", kind="choice", choices=("none", "multilevel")),),
    card=Card(paper="test", authors="Nobody", year=2024, venue="tests", paper_url="https://example.org",
              code="tests/test_video_app.py", code_license="MIT", weights_license="none", how_it_works="Test."))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return synthetic.disc_clip(tmp_path_factory.mktemp("app_clip"), width=64, height=48, frames=8, fps=24)


@pytest.fixture(scope="module")
def app_url():
    from matting.ui import build_demo, launch_options
    from matting.ui.examples import examples_dir

    saved = {name: os.environ.pop(name, None) for name in ("MATTING_AUTO_FETCH", "MATTING_VIDEO_MAX_FRAMES")}
    matting.methods()
    registry.register(FAKE)
    demo = None
    try:
        demo = build_demo()
        demo.queue(default_concurrency_limit=2)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True, ssr_mode=False, allowed_paths=[str(examples_dir())], **launch_options())
        yield url
    finally:
        if demo is not None:
            demo.close()
        registry.unregister(FAKE.id)
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def _path(value):
    return value["video"] if isinstance(value, dict) else value


def test_video_endpoints_are_named_and_list_the_methods_a_clip_can_feed(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/run_video", "/probe_video", "/select_video_method", "/video_example"} <= set(endpoints)
    info, plate, ofd = client.predict(FAKE.id, api_name="/select_video_method")
    assert FAKE.name in info and plate["visible"] is False and ofd["value"] is False
    info, plate, ofd = client.predict("bgmv2", api_name="/select_video_method")
    assert "plate" in info and plate["visible"] is True and ofd["value"] is False
    _, _, ofd = client.predict("modnet", api_name="/select_video_method")
    assert ofd["value"] is True
    with pytest.raises(AppError, match="closed_form is not in the list of choices"):
        client.predict("closed_form", api_name="/select_video_method")


def test_probe_says_what_the_clip_is_and_whether_the_range_fits(client, clip):
    note = client.predict(handle_file(str(clip.video)), 0, 0, api_name="/probe_video")
    assert "64×48" in note and "8 frames" in note
    note = client.predict(handle_file(str(clip.video)), 5, 0, api_name="/probe_video")
    assert "starts at 5 s" in note


def test_run_video_gives_players_downloads_metrics_and_the_flicker_chart(client, clip):
    status, alpha, composite, downloads, table, plot, details = client.predict(
        FAKE.id, handle_file(str(clip.video)), None, handle_file(str(clip.alpha)), True, 0, 0, "h264", "webm",
        True, "colour", "#0000ff", None, api_name="/run_video")
    assert "8 frames" in status and "frames/s" in status
    assert details["frames"] == 8 and details["ofd"] is True
    assert details["ground_truth_errors"]["dtssd"] is not None
    assert len(list(codec.read_frames(_path(alpha)))) == 8
    assert codec.probe(_path(composite)).codec == "h264"
    names = sorted(os.path.basename(item if isinstance(item, str) else item["path"]) for item in downloads)
    assert names == ["alpha.mp4", "composite.mp4", "cutout.webm", "cutout_png.zip", "video.json"]
    measures = [row[0] for row in table["data"]]
    assert any("dtSSD" in m for m in measures) and any("with OFD" in m for m in measures)
    assert plot is not None


def test_bad_clips_get_the_app_s_message(client, clip, tmp_path, monkeypatch):
    text = tmp_path / "clip.mp4"
    text.write_text("not frames")
    with pytest.raises(AppError, match="is not a video that can be read"):
        client.predict(FAKE.id, handle_file(str(text)), api_name="/run_video")
    with pytest.raises(AppError, match="Upload a clip first"):
        client.predict(FAKE.id, None, api_name="/run_video")
    monkeypatch.setenv("MATTING_VIDEO_MAX_FRAMES", "3")  # the server runs in this process
    with pytest.raises(AppError, match="above the limit of 3"):
        client.predict(FAKE.id, handle_file(str(clip.video)), api_name="/run_video")


def test_the_example_clip_has_a_plate_and_a_true_alpha(client):
    video, plate, alpha, note = client.predict(api_name="/video_example")
    assert "astronaut" in note.lower()
    info = codec.probe(video)
    assert (info.width, info.height) == (256, 256) and info.frames == 36
    assert codec.probe(alpha).frames == 36
    status, *_, details = client.predict(FAKE.id, handle_file(video), handle_file(plate), handle_file(alpha), False,
                                         0, 0.5, api_name="/run_video")
    assert details["frames"] == 6 and details["ground_truth_errors"]["sad"] is not None
