"""The 'Click to select' tab through gradio_client, with a tiny random SAM (no download): clicks become
prompts JSON, each click answers with the mask overlay (the embedding reused from the second click on),
bad prompts get clear errors, and Matte runs SAM → trimap → closed-form."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("transformers")
pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402

from matting import io  # noqa: E402
from matting.adapters import torch_utils  # noqa: E402

from hf_tiny import save_tiny_sam  # noqa: E402

SIDE = 96
ENV = "MATTING_WEIGHTS_SAM_SLIMSAM_77"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from matting.ui import build_demo, launch_options

    folder = tmp_path_factory.mktemp("app_prompts")
    saved = {name: os.environ.pop(name, None) for name in (ENV, "MATTING_AUTO_FETCH", "MATTING_MAX_PIXELS")}
    os.environ[ENV] = str(save_tiny_sam(folder / "sam"))
    yy, xx = np.mgrid[:SIDE, :SIDE].astype(np.float32)
    disk = (np.hypot(xx - SIDE / 2, yy - SIDE / 2) < 28).astype(np.float32)[..., None]
    image = disk * np.array([0.9, 0.7, 0.2], np.float32) + (1 - disk) * np.dstack([xx / SIDE, yy / SIDE, 0.4 + 0 * xx])
    photo = io.save_png(folder / "photo.png", image.astype(np.float32))
    demo = build_demo()
    demo.queue(default_concurrency_limit=2)
    try:
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True, ssr_mode=False, **launch_options())
        yield {"client": Client(url, verbose=False), "photo": handle_file(str(photo))}
    finally:
        demo.close()
        torch_utils.clear_cache()
        os.environ.pop(ENV, None)
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


def test_clicks_masks_and_matte(app):
    client, photo = app["client"], app["photo"]
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/prompt_add", "/prompt_mask", "/prompt_click", "/prompt_undo", "/prompt_clear", "/run_prompts_tab"} <= set(endpoints)
    prompts, corner = client.predict(photo, '{"points": []}', "Positive point", 48, 48, None, api_name="/prompt_add")
    assert prompts == '{"points": [[48.0, 48.0, 1]]}' and corner is None
    picture, note = client.predict(photo, prompts, "slimsam_77", None, api_name="/prompt_mask")
    assert "**Mask:**" in note and "embedding computed" in note
    assert np.asarray(Image.open(picture)).shape[:2] == (SIDE, SIDE)
    prompts, _ = client.predict(photo, prompts, "Negative point", 5, 5, None, api_name="/prompt_add")
    _, note = client.predict(photo, prompts, "slimsam_77", None, api_name="/prompt_mask")
    assert "embedding reused" in note and "1 positive, 1 negative" in note
    # a box from two corners
    same, corner = client.predict(photo, prompts, "Box (two corners)", 10, 12, None, api_name="/prompt_add")
    assert same == prompts and corner == [10.0, 12.0]
    boxed, corner = client.predict(photo, prompts, "Box (two corners)", 80, 70, corner, api_name="/prompt_add")
    assert '"box": [10.0, 12.0, 80.0, 70.0]' in boxed and corner is None
    undone, _ = client.predict(boxed, None, api_name="/prompt_undo")
    assert undone == '{"points": [[48.0, 48.0, 1]], "box": [10.0, 12.0, 80.0, 70.0]}'

    outputs = client.predict(photo, '{"points": [[48, 48, 1]]}', "slimsam_77", "closed_form", 2, None,
                             api_name="/run_prompts_tab")
    status, alpha_path, details = outputs[0], outputs[1], outputs[8]
    if "finished" not in status:
        pytest.fail(status)
    assert details["params"]["refine"] == "closed_form" and "prompts" in details["inputs"]
    assert np.asarray(Image.open(alpha_path)).shape[:2] == (SIDE, SIDE)


@pytest.mark.parametrize("prompts, x, message", [
    ('{"points": []}', 500, "outside the image"),
    ('{"points": [[1, 2, 1]', 5, "not valid JSON"),
])
def test_bad_clicks_and_prompts_get_clear_errors(app, prompts, x, message):
    with pytest.raises(AppError, match=message):
        app["client"].predict(app["photo"], prompts, "Positive point", x, 5, None, api_name="/prompt_add")


def test_only_negative_points_say_what_to_do(app):
    _, note = app["client"].predict(app["photo"], '{"points": [[5, 5, 0]]}', "slimsam_77", None,
                                    api_name="/prompt_mask")
    assert "add a positive point" in note
    with pytest.raises(AppError, match="only negative clicks"):
        app["client"].predict(app["photo"], '{"points": [[5, 5, 0]]}', "slimsam_77", "closed_form", 10, None,
                              api_name="/run_prompts_tab")


def test_methods_tab_and_compare_list_the_new_methods():
    from matting.ui import cards, compare

    overview = cards.methods_overview()
    assert "ViTMatte" in overview and "Click → SAM mask" in overview
    card = cards.method_card(__import__("matting").get("vitmatte"))
    assert "non-commercial" in card and "MIT" in card
    assert "vitmatte" in [value for _, value in compare.compare_choices()]


def test_a_photo_is_decoded_once_for_all_its_clicks(app, tmp_path, monkeypatch):
    """The click handlers decode, hash and shrink a photo once (the tab's photo cache); a changed file is
    decoded again."""
    from matting.ui import handlers, prompts_tab

    image = np.random.default_rng(3).random((SIDE, SIDE + 8, 3)).astype(np.float32)
    photo = str(io.save_png(tmp_path / "clicked.png", image))
    decoded = []
    original = handlers.load_photo
    monkeypatch.setattr(handlers, "load_photo", lambda f: decoded.append(f) or original(f))
    text = prompts_tab.EMPTY
    for x, y in ((40, 40), (60, 30), (20, 70)):
        text, _ = prompts_tab.on_add(photo, text, prompts_tab.POSITIVE, x, y, None)
        picture, note = prompts_tab.on_mask(photo, text)
    assert len(decoded) == 1 and "embedding reused" in note
    assert np.asarray(Image.open(picture)).shape[:2] == (SIDE, SIDE + 8)  # the overlay: the preview's size
    io.save_png(photo, image[::-1].copy())
    os.utime(photo, ns=(os.stat(photo).st_atime_ns, os.stat(photo).st_mtime_ns + 10**9))
    prompts_tab.on_mask(photo, text)
    assert len(decoded) == 2
