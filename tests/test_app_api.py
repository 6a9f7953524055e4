"""Every endpoint of the app through gradio_client, with good and bad input.

The app runs in this process on 127.0.0.1 and a free port. Before it is built, a throw-away method
with its own kinds of parameters is registered, to show that a new registry entry reaches the UI and
the API with no UI code. Test images are small synthetic scenes with a known alpha.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

import matting  # noqa: E402
from matting import io, registry, trimap  # noqa: E402
from matting.spec import Card, MethodOutput, MethodSpec, Param  # noqa: E402

SIDE = 96


# --------------------------------------------------------------------------- a method only this test knows

def _threshold_compute(inputs, params):
    channel = {"red": 0, "green": 1, "blue": 2}.get(params["channel"])
    values = inputs.image.mean(axis=2) if channel is None else inputs.image[:, :, channel]
    alpha = np.clip((values - params["threshold"]) * params["steepness"] + 0.5, 0, 1)
    return MethodOutput(alpha=1 - alpha if params["invert"] else alpha)


FAKE = MethodSpec(
    id="test_app_threshold", name="Test threshold (app test)", family="automatic", compute=_threshold_compute,
    params=(
        Param("threshold", 0.5, "Level that maps to alpha 0.5.", minimum=0.0, maximum=1.0),
        Param("steepness", 8, "Slope of the ramp.", kind="int", minimum=1, maximum=100),
        Param("invert", False, "Swap foreground and background.", kind="bool"),
        Param("channel", "luma", "Which channel to threshold.", kind="choice", choices=("luma", "red", "green", "blue")),
    ),
    card=Card(paper="A test method", authors="Nobody", year=2024, venue="tests", paper_url="https://example.org",
              code="tests/test_app_api.py", code_license="MIT", weights_license="none",
              how_it_works="Thresholds a channel."),
)


# --------------------------------------------------------------------------- test images

def _scene():
    yy, xx = np.mgrid[:SIDE, :SIDE].astype(np.float32)
    background = np.dstack([xx / SIDE, yy / SIDE, 0.5 * np.ones_like(xx)]).astype(np.float32) * 0.6
    alpha = np.clip(26.5 - np.hypot(xx - SIDE / 2, yy - SIDE / 2), 0, 1).astype(np.float32)
    foreground = np.dstack([0.95 * np.ones_like(xx), 0.8 + 0.1 * np.sin(xx / 3), 0.2 * np.ones_like(xx)])
    image = alpha[..., None] * foreground + (1 - alpha[..., None]) * background
    return image.astype(np.float32), alpha, background


def _layer(levels: np.ndarray, painted: np.ndarray | None = None) -> np.ndarray:
    """A painter layer: grey levels, opaque where painted."""
    painted = np.ones(levels.shape, bool) if painted is None else painted
    return np.dstack([levels, levels, levels, np.where(painted, 255, 0)]).astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app_inputs")
    image, alpha, background = _scene()
    levels = trimap.from_mask(alpha, erode=4, dilate=4)
    strokes = np.full(alpha.shape, 128, np.uint8)
    strokes[44:52, 40:56] = 255
    strokes[4:12, 4:40] = 0
    painted_strokes = strokes != 128
    paths = {
        "photo": io.save_png(folder / "photo.png", image),
        "alpha": io.save_png(folder / "alpha.png", alpha),
        "plate": io.save_png(folder / "plate.png", background),
        "trimap": io.save_png(folder / "trimap.png", levels),
        "trimap_layer": io.save_png(folder / "trimap_layer.png", _layer(levels)),
        "stroke_layer": io.save_png(folder / "stroke_layer.png", _layer(strokes, painted_strokes)),
        "empty_layer": io.save_png(folder / "empty_layer.png", np.zeros((SIDE, SIDE, 4), np.uint8)),
        "small": io.save_png(folder / "small.png", image[:48, :64]),
        "colour_trimap": io.save_png(folder / "colour_trimap.png", image),
        "unrelated": io.save_png(folder / "unrelated.png", 1 - image[::-1]),
        "brighter_plate": io.save_png(folder / "brighter_plate.png", np.clip(background * 1.4, 0, 1)),
    }
    text = folder / "notes.png"  # an image name, text inside
    text.write_text("these are not pixels")
    paths["not_image"] = text
    paths["levels"] = levels
    paths["strokes"] = strokes
    return paths


def _editor(files, layer="trimap_layer"):
    return {"background": handle_file(str(files["photo"])), "layers": [handle_file(str(files[layer]))],
            "composite": None, "id": None}


def _read(path) -> np.ndarray:
    return np.asarray(Image.open(path))


# --------------------------------------------------------------------------- the app

@pytest.fixture(scope="module")
def app_url():
    from matting.ui import build_demo, launch_options
    from matting.ui.examples import examples_dir

    saved = {name: os.environ.pop(name, None) for name in ("MATTING_AUTO_FETCH", "MATTING_MAX_PIXELS")}
    matting.methods()  # load the real adapters first
    matting.register(FAKE)
    demo = None
    try:
        demo = build_demo()
        demo.queue(default_concurrency_limit=2)
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True, ssr_mode=False, allowed_paths=[str(examples_dir())],
                                **launch_options())
        yield url
    finally:
        if demo is not None:
            demo.close()
        registry.unregister(FAKE.id)
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


class CheckedClient(Client):
    """A client that checks what the app tells a person at the browser: no message of any endpoint
    (error or text output) shows an absolute server path or an environment variable."""

    def predict(self, *args, **kwargs):
        from matting.ui.messages import has_server_detail

        try:
            result = super().predict(*args, **kwargs)
        except AppError as exc:
            assert not has_server_detail(str(exc)), f"{kwargs.get('api_name')} showed server details: {exc}"
            raise
        for text in _texts(result):
            assert not has_server_detail(text), f"{kwargs.get('api_name')} returned server details: {text}"
        return result


def _texts(value):
    """The text outputs in ``value``, leaving out files the client downloaded (their paths are local)
    and URLs."""
    if isinstance(value, str):
        if not _is_local_file(value) and not value.startswith(("http://", "https://", "data:")):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)


def _is_local_file(text: str) -> bool:
    try:
        return "\n" not in text and len(text) < 1024 and os.path.isfile(text)
    except (OSError, ValueError):
        return False


@pytest.fixture
def client(app_url):
    return CheckedClient(app_url, verbose=False)


def _needs_ready(method_id):
    from matting.ui.checkpoints import is_ready

    try:
        spec = matting.get(method_id)
    except matting.MattingError:
        pytest.skip(f"{method_id} is not registered")
    if not is_ready(spec):
        pytest.skip(f"the weights of {method_id} are not present")
    return spec


def _endpoints(client) -> dict:
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


# --------------------------------------------------------------------------- API shape

def test_every_endpoint_is_named_and_parameters_are_named_after_the_specs(client):
    endpoints = _endpoints(client)
    expected = {"/load_photo", "/clear_photo", "/check_ground_truth", "/clear_ground_truth", "/set_input_mode",
                "/load_trimap", "/auto_trimap", "/strokes_to_trimap", "/check_plate", "/clear_plate", "/compare",
                "/compare_slider", "/refresh_methods", "/use_weights", "/load_example"}
    for family in matting.spec.FAMILIES:
        if matting.methods(family) and family != "prompts":  # the prompts family has its own tab
            expected |= {f"/select_method_{family}", f"/run_{family}", f"/composite_{family}",
                         f"/use_weights_{family}"}
    assert expected <= set(endpoints)
    run_automatic = {p["parameter_name"]: p for p in endpoints["/run_automatic"]["parameters"]}
    for param in FAKE.params:  # the test method's parameters, by name, optional
        assert param.name in run_automatic
        assert run_automatic[param.name]["parameter_has_default"]
    for optional in ("editor_value", "plate_file", "ground_truth_file", "backdrop_file"):
        assert run_automatic[optional]["parameter_has_default"]


def test_a_registered_method_appears_with_its_controls(client):
    info, _weights_status, _checkpoint, *controls = client.predict(
        FAKE.id, api_name="/select_method_automatic")
    assert FAKE.name in info and "Thresholds a channel" in info
    shown = [c for c in controls if isinstance(c, dict) and c.get("visible")]
    assert {c["label"] for c in shown} == {p.title for p in matting.get(FAKE.id).params}  # + foreground
    channel = next(c for c in shown if c["label"] == "Channel")
    assert [choice[1] for choice in channel["choices"]] == ["", "luma", "red", "green", "blue"]
    with pytest.raises(AppError, match="no_such_method is not in the list of choices"):
        client.predict("no_such_method", api_name="/select_method_automatic")


def test_registered_method_runs_with_parameters_by_name(client, files):
    outputs = client.predict(FAKE.id, handle_file(str(files["photo"])), threshold=0.6, steepness=50,
                             invert="true", channel="red", api_name="/run_automatic")
    status, alpha_path, details = outputs[0], outputs[1], outputs[8]
    assert "Test threshold" in status
    assert details["params"] == {"threshold": 0.6, "steepness": 50, "invert": True, "channel": "red",
                                 "foreground": "multilevel"}
    alpha = _read(alpha_path)
    assert alpha.shape == (SIDE, SIDE)
    with pytest.raises(AppError, match="must be between 0 and 1"):
        client.predict(FAKE.id, handle_file(str(files["photo"])), threshold=3.0, api_name="/run_automatic")
    with pytest.raises(AppError, match="must be one of"):
        client.predict(FAKE.id, handle_file(str(files["photo"])), channel="purple", api_name="/run_automatic")


def test_the_app_bench_calls_the_run_endpoint_as_a_page_does(app_url, files):
    """matting.bench app's raw HTTP call: every output file is fetched, an error answer is raised."""
    import httpx

    from matting.bench.app import http_predict

    with httpx.Client(timeout=60) as connection:
        fetched = http_predict(connection, app_url, "run_automatic", str(files["photo"]), method_id=FAKE.id)
        assert fetched >= 4  # alpha, foreground, composite, cut-out (+ maps)
        with pytest.raises(RuntimeError, match="answered error"):
            http_predict(connection, app_url, "run_automatic", str(files["photo"]), method_id=FAKE.id,
                         threshold=3.0)


# --------------------------------------------------------------------------- photo, ground truth, modes

def test_load_photo(client, files):
    preview, editor, note, plate_preview, plate_note = client.predict(
        handle_file(str(files["photo"])), api_name="/load_photo")
    assert f"{SIDE}×{SIDE}" in note
    assert _read(preview).shape[:2] == (SIDE, SIDE)
    assert _read(editor["background"]).shape[:2] == (SIDE, SIDE) and editor["layers"] == []
    assert plate_preview is None


def test_load_photo_rejects_a_file_that_is_not_an_image(client, files):
    with pytest.raises(AppError, match="not an image that can be read"):
        client.predict(handle_file(str(files["not_image"])), api_name="/load_photo")


def test_max_pixels_guard(client, files, monkeypatch):
    monkeypatch.setenv("MATTING_MAX_PIXELS", "5000")
    with pytest.raises(AppError, match="above the limit"):
        client.predict(handle_file(str(files["photo"])), api_name="/load_photo")
    with pytest.raises(AppError, match="above the limit"):
        client.predict("closed_form", handle_file(str(files["photo"])), editor_value=_editor(files),
                       api_name="/run_trimap")


def test_large_photo_is_downscaled_for_the_painter_and_the_trimap_scaled_back(client, tmp_path):
    width, height = 2560, 64
    ramp = np.linspace(0, 1, width, dtype=np.float32)
    photo = io.save_png(tmp_path / "wide.png", np.dstack([np.tile(ramp, (height, 1))] * 3))
    _preview, editor, note, _, _ = client.predict(handle_file(str(photo)), api_name="/load_photo")
    assert "shown in the painter at 2048×51" in note
    assert _read(editor["background"]).shape[:2] == (51, 2048)
    levels = np.full((51, 2048), 128, np.uint8)
    levels[:, :700], levels[:, -700:] = 255, 0
    layer = io.save_png(tmp_path / "wide_layer.png", _layer(levels))
    painted = {"background": handle_file(editor["background"]), "layers": [handle_file(str(layer))],
               "composite": None, "id": None}
    outputs = client.predict("closed_form", handle_file(str(photo)), "Trimap", painted, api_name="/run_trimap")
    alpha = _read(outputs[1])
    assert alpha.shape == (height, width)
    assert alpha[:, :870].min() == 255 and alpha[:, -870:].max() == 0


def test_clear_photo(client):
    preview, editor, note, _, _ = client.predict(None, api_name="/clear_photo")
    assert preview is None and "No photo" in note


def test_ground_truth(client, files):
    note = client.predict(handle_file(str(files["photo"])), handle_file(str(files["alpha"])),
                          api_name="/check_ground_truth")
    assert "Ground truth loaded" in note
    with pytest.raises(AppError, match="ground-truth alpha is 64×48 but the image is 96×96"):
        client.predict(handle_file(str(files["photo"])), handle_file(str(files["small"])),
                       api_name="/check_ground_truth")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(files["photo"])), handle_file(str(files["not_image"])),
                       api_name="/check_ground_truth")
    assert "off" in client.predict(handle_file(str(files["photo"])), None, api_name="/clear_ground_truth")


def test_input_mode(client):
    _editor_update, legend = client.predict("Scribbles", api_name="/set_input_mode")
    assert "Scribble brushes" in legend
    _editor_update, legend = client.predict("Trimap", api_name="/set_input_mode")
    assert "grey = unknown" in legend


# --------------------------------------------------------------------------- trimaps

def test_load_trimap_fills_the_painter(client, files):
    editor, mode, note = client.predict(handle_file(str(files["photo"])), handle_file(str(files["trimap"])),
                                        api_name="/load_trimap")
    assert mode == "Trimap" and "Loaded" in note
    layer = _read(editor["layers"][0])
    assert layer.shape == (SIDE, SIDE, 4)
    from matting.ui.editor import trimap_from_editor

    assert np.array_equal(trimap_from_editor({"layers": [layer]}, (SIDE, SIDE)), files["levels"])


def test_load_trimap_rejects_bad_trimaps(client, files):
    with pytest.raises(AppError, match="must be greyscale"):
        client.predict(handle_file(str(files["photo"])), handle_file(str(files["colour_trimap"])),
                       api_name="/load_trimap")
    with pytest.raises(AppError, match="trimap is 64×48 but the image is 96×96"):
        client.predict(handle_file(str(files["photo"])), handle_file(str(files["small"])), api_name="/load_trimap")
    with pytest.raises(AppError, match="Upload a photo first"):
        client.predict(None, handle_file(str(files["trimap"])), api_name="/load_trimap")


def test_auto_trimap_from_an_automatic_method(client, files):
    editor, mode, note = client.predict(handle_file(str(files["photo"])), FAKE.id, 3, api_name="/auto_trimap")
    assert mode == "Trimap" and FAKE.name in note
    from matting.ui.editor import trimap_from_editor

    levels = trimap_from_editor({"layers": [_read(editor["layers"][0])]}, (SIDE, SIDE))
    assert {0, 128, 255} <= set(np.unique(levels))
    with pytest.raises(AppError, match="greater than maximum value 60"):
        client.predict(handle_file(str(files["photo"])), FAKE.id, 5000, api_name="/auto_trimap")
    with pytest.raises(AppError, match="Upload a photo first"):
        client.predict(None, FAKE.id, 5, api_name="/auto_trimap")


def test_auto_trimap_with_u2netp(client, files):
    _needs_ready("u2netp")
    editor, mode, note = client.predict(handle_file(str(files["photo"])), "u2netp", 4, api_name="/auto_trimap")
    assert "U²-NetP" in note and len(editor["layers"]) == 1


def test_strokes_to_trimap(client, files):
    editor, mode, note = client.predict(handle_file(str(files["photo"])), _editor(files, "stroke_layer"),
                                        api_name="/strokes_to_trimap")
    assert mode == "Trimap" and "strokes" in note
    with pytest.raises(AppError, match="Paint some white strokes"):
        client.predict(handle_file(str(files["photo"])), _editor(files, "empty_layer"),
                       api_name="/strokes_to_trimap")


# --------------------------------------------------------------------------- one run

def test_run_trimap_with_ground_truth(client, files):
    outputs = client.predict(
        "closed_form", handle_file(str(files["photo"])), "Trimap", _editor(files),
        ground_truth_file=handle_file(str(files["alpha"])), backdrop="colour", backdrop_colour="#0000ff",
        epsilon=1e-6, api_name="/run_trimap")
    status, alpha_path, foreground_path, composite_path, cutout, maps, plot, table, details = outputs
    status = status.replace("*", "")
    assert "Closed-form matting" in status and "peak memory" in status and "ran at 96×96" in status
    assert "SAD (×10³)" in status
    expected = matting.run("closed_form", files["photo"], trimap=files["levels"], epsilon=1e-6).alpha
    alpha = _read(alpha_path)
    assert alpha_path.endswith(".png") and np.abs(alpha.astype(int) - io.to_uint8(expected)).max() <= 1
    assert _read(foreground_path).shape == (SIDE, SIDE, 3)
    composite = _read(composite_path)
    assert composite[2, 2, 2] > 200 and composite[2, 2, 0] < 40  # outside the disc: the blue backdrop
    rgba = _read(cutout)
    assert rgba.shape == (SIDE, SIDE, 4) and np.array_equal(rgba[..., 3], alpha)
    captions = [item["caption"] for item in maps]
    assert any(c.startswith("constraints") for c in captions) and any("α_gt" in c for c in captions)
    assert plot is not None
    assert plot["visible"] and table["visible"]  # shown only with a ground truth
    assert table["value"]["headers"][:5] == ["method", "SAD (×10³)", "MSE (×10⁻³)", "Grad (×10³)", "Conn (×10³)"]
    assert details["params"]["epsilon"] == 1e-6 and set(details["metrics"]) == {"sad", "mse", "grad", "conn"}
    assert details["metrics"]["sad"] < 0.2  # a clean synthetic disc: closed-form is close


def test_run_trimap_with_scribbles(client, files):
    outputs = client.predict("closed_form", handle_file(str(files["photo"])), "Scribbles",
                             _editor(files, "stroke_layer"), api_name="/run_trimap")
    alpha = _read(outputs[1])
    strokes = files["strokes"]
    assert alpha[strokes == 255].min() >= 250 and alpha[strokes == 0].max() <= 5
    with pytest.raises(AppError, match="does not take scribbles"):
        client.predict("shared_sampling", handle_file(str(files["photo"])), "Scribbles",
                       _editor(files, "stroke_layer"), api_name="/run_trimap")


def test_run_trimap_bad_input(client, files):
    with pytest.raises(AppError, match="needs a trimap or scribbles"):
        client.predict("closed_form", handle_file(str(files["photo"])), "Trimap", _editor(files, "empty_layer"),
                       api_name="/run_trimap")
    with pytest.raises(AppError, match="must be between"):
        client.predict("closed_form", handle_file(str(files["photo"])), editor_value=_editor(files), epsilon=5.0,
                       api_name="/run_trimap")
    with pytest.raises(AppError, match="Upload a photo first"):
        client.predict("closed_form", None, editor_value=_editor(files), api_name="/run_trimap")
    with pytest.raises(AppError, match="Choose a method"):
        client.predict(None, handle_file(str(files["photo"])), api_name="/run_trimap")


def test_composite_again_without_rerunning(client, files):
    client.predict("closed_form", handle_file(str(files["photo"])), editor_value=_editor(files),
                   api_name="/run_trimap")
    composite, colour_update, file_update = client.predict("colour", "#ff0000", None, api_name="/composite_trimap")
    picture = _read(composite)
    assert picture[2, 2, 0] > 200 and picture[2, 2, 2] < 40
    composite, _, _ = client.predict("image", "#ff0000", handle_file(str(files["plate"])),
                                     api_name="/composite_trimap")
    assert _read(composite).shape == (SIDE, SIDE, 3)
    with pytest.raises(AppError, match="Cannot read the colour"):
        client.predict("colour", "not a colour", None, api_name="/composite_trimap")


def test_composite_before_any_run_changes_nothing(client):
    composite, _, _ = client.predict("blur", "#00b140", None, api_name="/composite_automatic")
    assert composite is None


def test_run_automatic_u2netp(client, files):
    _needs_ready("u2netp")
    outputs = client.predict("u2netp", handle_file(str(files["photo"])), ground_truth_file=handle_file(
        str(files["alpha"])), api_name="/run_automatic")
    status, details = outputs[0].replace("*", ""), outputs[8]
    assert "ran at 320×320 (photo 96×96" in status and details["metrics_region"] == "whole image"
    assert len(outputs[5]) >= 1  # U²-NetP's side outputs


def test_missing_weights_say_what_to_do_at_the_browser(client, files):
    """Offline (the suite's setting), a method whose checkpoint is missing says so in words for the
    browser: the file and its size, upload it; no terminal command, path or setting (CheckedClient)."""
    from matting import weights

    missing = [spec for spec in matting.methods("automatic")
               if spec.weights and all(weights.status(c) == "missing" for c in spec.weights)]
    if not missing:
        pytest.skip("every automatic method has its weights here")
    spec = missing[0]
    item = weights.entry(spec.weights[0])
    with pytest.raises(AppError) as caught:
        client.predict(spec.id, handle_file(str(files["photo"])), api_name="/run_automatic")
    message = str(caught.value)
    assert item.file in message and item.size_text in message and "works offline" in message
    assert "python -m" not in message and "upload it in the Weights panel" in message
    _info, status, _checkpoint, *_ = client.predict(spec.id, api_name="/select_method_automatic")
    assert "works offline: upload the file below" in status and "python -m" not in status
    note = client.predict(spec.weights[0], api_name="/choose_checkpoint_automatic")  # (a button is no API output)
    assert "Download is off" in note and item.size_text in note


@pytest.fixture
def served_checkpoint(tmp_path, monkeypatch):
    """modnet_photographic as a file on a local HTTP server: a copy of the manifest whose only source for
    it is that server (with the file's size and sha256), an empty weights dir, downloads on."""
    import hashlib
    import json
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import torch

    from matting import weights

    served = tmp_path / "served"
    served.mkdir()
    checkpoint = _random_checkpoint(served / "modnet.ckpt", "modnet")
    data = checkpoint.read_bytes()

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    raw = json.loads(weights.DEFAULT_MANIFEST.read_text())
    for item in raw["checkpoints"]:
        if item["id"] == "modnet_photographic":
            item.update(size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                        sources=[{"kind": "url", "url": f"http://127.0.0.1:{server.server_address[1]}/modnet.ckpt"}])
    manifest_file = tmp_path / "manifest.json"
    manifest_file.write_text(json.dumps(raw))
    monkeypatch.setenv("MATTING_WEIGHTS_MANIFEST", str(manifest_file))
    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("MATTING_OFFLINE", raising=False)
    monkeypatch.delenv("MATTING_WEIGHTS_MODNET_PHOTOGRAPHIC", raising=False)
    monkeypatch.setattr(weights.reach, "_unreachable_hosts", {})
    del torch
    yield data
    server.shutdown()
    server.server_close()


def test_download_button_fetches_and_flips_the_status(client, served_checkpoint):
    from matting import weights

    assert weights.status("modnet_photographic") == "missing"
    note = client.predict("modnet_photographic", api_name="/choose_checkpoint")
    assert "licence Apache-2.0" in note and "Download fetches it" in note
    status, overview, note = client.predict("modnet_photographic", api_name="/download_weights")
    assert "Downloaded" in status and "modnet_photographic" in status
    assert weights.status("modnet_photographic") == "present"
    assert (Path(os.environ["MATTING_WEIGHTS_DIR"]) / "modnet_photographic_portrait_matting.ckpt").read_bytes() \
        == served_checkpoint
    assert "on this server" in note
    _info, panel_status, *_ = client.predict("modnet", api_name="/select_method_automatic")
    assert "`modnet_photographic`" in panel_status and "**present**" in panel_status


class ProgressStandIn:
    """Records what a handler tells its gr.Progress."""

    def __init__(self):
        self.calls = []

    def __call__(self, fraction=None, desc=None, **kwargs):
        self.calls.append((fraction, desc))


def test_first_use_fetches_with_progress_and_the_run_completes(served_checkpoint, files):
    """Run MODNet with its checkpoint missing: the run handler fetches it on first use (local server),
    the download's bytes, speed and fraction reach the progress stand-in, and the run finishes."""
    from matting import weights
    from matting.adapters import torch_utils
    from matting.ui import handlers
    from matting.ui.layout import RUN_INPUT_NAMES
    from matting.ui.controls import plan_slots

    torch_utils.clear_cache()
    assert weights.status("modnet_photographic") == "missing"
    run = handlers.run_method(plan_slots(matting.methods("automatic"), RUN_INPUT_NAMES))
    progress = ProgressStandIn()
    outputs = run("modnet", str(files["photo"]), progress=progress)
    assert "MODNet" in outputs.status and "finished" in outputs.status
    assert weights.status("modnet_photographic") == "present"
    downloads = [(f, d) for f, d in progress.calls if d and d.startswith("Downloading")]
    assert downloads, progress.calls
    size = f"{len(served_checkpoint) / 1e6:.1f} MB"
    assert downloads[-1] == (1.0, f"Downloading modnet_photographic_portrait_matting.ckpt: {size} of {size}"
                             + downloads[-1][1].split(size + " of " + size)[1])
    assert all(0 <= f <= 1 for f, _ in downloads)
    torch_utils.clear_cache()


def test_download_button_when_offline(client, monkeypatch):
    with pytest.raises(AppError, match="works offline"):
        client.predict("modnet_photographic", api_name="/download_weights")


# --------------------------------------------------------------------------- weights uploads

def _random_checkpoint(path: Path, arch: str, prefix: str = "", **kwargs) -> Path:
    import torch

    from matting.models import create

    torch.manual_seed(0)
    state = {prefix + key: value for key, value in create(arch, **kwargs).state_dict().items()}
    torch.save(state, path)
    return path


@pytest.fixture
def forget_uploads():
    from matting import weights
    from matting.ui import checkpoints

    yield
    for checkpoint_id in list(checkpoints._accepted):
        weights.use_file(checkpoint_id, None)
        checkpoints._accepted.pop(checkpoint_id, None)


def test_checkpoint_upload_is_validated(client, files, tmp_path, forget_uploads):
    import torch

    bad = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(AppError, match=r"does not fit the MattingRefine network[\s\S]*missing keys"):
        client.predict("bgmv2", "bgmv2_mobilenetv2", handle_file(str(bad)), api_name="/use_weights_background")
    with pytest.raises(AppError, match="not a readable PyTorch checkpoint"):
        client.predict("bgmv2", "bgmv2_mobilenetv2", handle_file(str(files["not_image"])),
                       api_name="/use_weights_background")
    with pytest.raises(AppError, match="Upload the checkpoint file first"):
        client.predict("bgmv2_mobilenetv2", None, api_name="/use_weights")


def test_uploaded_checkpoint_is_used(client, files, tmp_path, forget_uploads):
    checkpoint = _random_checkpoint(tmp_path / "pytorch_mobilenetv2.pth", "bgmv2_refine", backbone="mobilenetv2")
    status = client.predict("bgmv2", "bgmv2_mobilenetv2", handle_file(str(checkpoint)),
                            api_name="/use_weights_background")
    assert "Accepted" in status and "loaded it and ran" in status
    outputs = client.predict("bgmv2", handle_file(str(files["photo"])), plate_file=handle_file(str(files["plate"])),
                             api_name="/run_background")
    assert "Background Matting V2" in outputs[0] and _read(outputs[1]).shape == (SIDE, SIDE)


def test_run_background_needs_a_plate(client, files):
    with pytest.raises(AppError, match="needs a background plate"):
        client.predict("bgmv2", handle_file(str(files["photo"])), api_name="/run_background")


# --------------------------------------------------------------------------- plate checks

@pytest.mark.parametrize("plate, expected", [
    ("plate", "Looks right"),
    ("photo", "practically identical"),
    ("unrelated", "differs from the photo almost everywhere"),
    ("brighter_plate", "exposure or white balance changed"),
    ("small", "The plate is 64×48 but the photo is 96×96"),
])
def test_check_plate(client, files, plate, expected):
    preview, note = client.predict(handle_file(str(files["photo"])), handle_file(str(files[plate])),
                                   api_name="/check_plate")
    assert expected in note
    assert (preview is None) == (plate == "small")


def test_check_plate_notices_a_moved_camera(client, tmp_path):
    from matting.ui.examples import ensure_examples

    synthetic = ensure_examples()[-1]
    moved = io.save_png(tmp_path / "moved_plate.png", np.roll(io.load_image(synthetic.plate), -12, axis=1))
    _preview, note = client.predict(handle_file(synthetic.photo), handle_file(str(moved)), api_name="/check_plate")
    assert "shifted by about (-12" in note or "shifted by about (-13" in note
    _preview, note = client.predict(handle_file(synthetic.photo), handle_file(synthetic.plate),
                                    api_name="/check_plate")
    assert "Looks right" in note


def test_check_plate_bad_file(client, files):
    with pytest.raises(AppError, match="background plate file 'notes.png' is not an image"):
        client.predict(handle_file(str(files["photo"])), handle_file(str(files["not_image"])),
                       api_name="/check_plate")
    assert client.predict(handle_file(str(files["photo"])), None, api_name="/clear_plate") == (None, "")


# --------------------------------------------------------------------------- compare

def test_compare(client, files):
    chosen = ["closed_form", "knn", FAKE.id, "bgmv2"]
    status, gallery, slider, left, right, table, plot, = client.predict(
        chosen, handle_file(str(files["photo"])), "Trimap", _editor(files),
        ground_truth_file=handle_file(str(files["alpha"])), api_name="/compare")
    assert "compared 3 methods" in status and "Background Matting V2: needs a background plate" in status
    assert len(gallery) == 6 and "Closed-form matting — alpha" in gallery[0]["caption"]
    assert [row[0] for row in table["value"]["data"]] == ["Closed-form matting", "KNN matting", FAKE.name]
    assert plot is not None
    assert left["value"] == "closed_form" and right["value"] == "knn"
    assert _read(slider[0]).shape[:2] == (SIDE, SIDE)
    first, second = client.predict("knn", FAKE.id, "composite", api_name="/compare_slider")
    assert _read(first).shape == (SIDE, SIDE, 3) and _read(second).shape == (SIDE, SIDE, 3)
    with pytest.raises(AppError, match="Run the comparison first"):
        client.predict("knn", "dim", "alpha", api_name="/compare_slider")


def test_compare_bad_input(client, files):
    with pytest.raises(AppError, match="Tick at least one method"):
        client.predict([], handle_file(str(files["photo"])), api_name="/compare")
    with pytest.raises(AppError, match="None of the chosen methods could run"):
        client.predict(["closed_form", "bgmv2"], handle_file(str(files["photo"])), api_name="/compare")
    assert client.predict("closed_form", "knn", "alpha", api_name="/compare_slider") is None  # no comparison yet


# --------------------------------------------------------------------------- methods tab and examples

def test_methods_overview_lists_every_method(client):
    overview, *cards = client.predict(api_name="/refresh_methods")
    for spec in matting.methods():
        assert spec.name in overview
    assert len(cards) == len(matting.methods())
    assert any(FAKE.card.how_it_works in card for card in cards)


def test_examples(client):
    from matting.ui.examples import ensure_examples

    rows = ensure_examples()
    photo, trimap_file, ground_truth, plate = client.predict(len(rows) - 1, api_name="/load_example")
    assert all(Path(p["value"] if isinstance(p, dict) else p).name.endswith(".png")
               for p in (photo, trimap_file, ground_truth, plate))
    for row in rows:
        assert Path(row.photo).is_file() and Path(row.trimap).is_file()
    synthetic = rows[-1]
    image = io.load_image(synthetic.photo)
    assert matting.trimap.validate(io.load_trimap(synthetic.trimap, image.shape)) is not None
    assert io.load_alpha(synthetic.ground_truth, image.shape).shape == image.shape[:2]
    assert io.load_image(synthetic.plate).shape == image.shape


# --------------------------------------------------------------------------- several users

def test_light_events_are_not_held_up_by_runs(app_url, files, tmp_path):
    """Slow runs occupy the method workers; loading a photo still answers at once."""
    image, _alpha, _background = _scene()
    # 480×480 from strokes: long enough (seconds, even with the multigrid solver) to keep both workers busy.
    big = io.save_png(tmp_path / "big.png", np.kron(image, np.ones((5, 5, 1), np.float32)))
    strokes = np.kron(files["strokes"], np.ones((5, 5), np.uint8))
    layer = io.save_png(tmp_path / "big_strokes.png", _layer(strokes, strokes != 128))
    editor = {"background": handle_file(str(big)), "layers": [handle_file(str(layer))], "composite": None, "id": None}
    slow = Client(app_url, verbose=False)
    jobs = [slow.submit("closed_form", handle_file(str(big)), "Scribbles", editor, api_name="/run_trimap")
            for _ in range(4)]
    time.sleep(1.0)
    started = time.perf_counter()
    note = Client(app_url, verbose=False).predict(handle_file(str(files["photo"])), api_name="/load_photo")[2]
    answered = time.perf_counter() - started
    busy = sum(not job.done() for job in jobs)
    results = [job.result(timeout=300) for job in jobs]
    assert "96×96" in note
    assert all("Closed-form matting" in r[0] for r in results)
    assert busy >= 1, "the runs finished too fast to show anything"
    assert answered < 5.0, f"loading a photo took {answered:.1f} s while runs were queued"
