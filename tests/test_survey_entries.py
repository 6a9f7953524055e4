"""The survey's card-only entries (MMNet, FDMPA, HAttMatting) and FDMPA's runnable idea (guided-filter feathering).

The card-only entries must say why they cannot run wherever a method can be chosen: ``matting.run``,
the CLI (``methods`` and ``run``), the app's Compare and Methods tabs (through gradio_client), and
they must not be offered by the family tabs. The feathering method is checked on a synthetic composite
against a direct ``cv2.ximgproc.guidedFilter`` call.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import matting
from matting import cli, io
from matting.synthetic import make_composite

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CARD_ONLY = {"mmnet": "issue #5", "fdmpa": "never published weights", "hattmatting": "neither code nor weights"}
FEATHERING = "selfie_guided_filter"


def _soft_fraction(alpha: np.ndarray) -> float:
    return float(((alpha > 0.02) & (alpha < 0.98)).mean())


# --------------------------------------------------------------------------- card-only entries

@pytest.mark.parametrize("method_id", sorted(CARD_ONLY))
def test_card_only_entries_give_their_reason_through_run(method_id):
    spec = matting.get(method_id)
    assert spec.unavailable and CARD_ONLY[method_id] in spec.unavailable
    assert spec.card.paper and spec.card.year and spec.card.paper_url.startswith("https://")
    with pytest.raises(matting.MattingError, match="cannot run here") as caught:
        matting.run(method_id, np.zeros((8, 8, 3), np.float32))
    assert CARD_ONLY[method_id] in str(caught.value)


def test_cli_lists_them_as_not_runnable_with_the_reason(tmp_path, capsys):
    assert cli.main(["methods"]) == 0
    printed = capsys.readouterr().out
    for method_id, reason in CARD_ONLY.items():
        row = next(line for line in printed.splitlines() if line.startswith(method_id + " "))
        assert "not runnable" in row
        assert f"{method_id} is not runnable: " in printed and reason in printed
    photo = io.save_png(tmp_path / "photo.png", make_composite(32, 32).image)
    assert cli.main(["run", "hattmatting", "--image", str(photo), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: HAttMatting cannot run here") and "Traceback" not in error


def test_family_tabs_do_not_offer_them_and_compare_marks_them():
    from matting.ui import compare, handlers, layout

    offered = {method_id for family in matting.spec.FAMILIES for _, method_id in handlers.method_choices(family)}
    assert FEATHERING in offered and not offered & set(CARD_ONLY)
    assert not {method_id for _, method_id in layout._automatic_choices()} & set(CARD_ONLY)
    labels = dict((method_id, label) for label, method_id in compare.compare_choices())
    assert all(labels[method_id].endswith("· unavailable") for method_id in CARD_ONLY)
    assert not labels[FEATHERING].endswith("unavailable")


# --------------------------------------------------------------------------- the app, through gradio_client

@pytest.fixture(scope="module")
def client():
    pytest.importorskip("gradio_client")
    from conftest import free_port
    from gradio_client import Client

    from matting.ui import build_demo, launch_options

    demo = build_demo()
    demo.queue(default_concurrency_limit=2)
    try:
        _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                                quiet=True, ssr_mode=False, **launch_options())
        yield Client(url, verbose=False)
    finally:
        demo.close()


def test_app_compare_runs_feathering_and_lists_the_card_only_entries_with_their_reason(client, tmp_path):
    from gradio_client import handle_file

    from matting.ui.checkpoints import is_ready

    photo = handle_file(str(io.save_png(tmp_path / "photo.png", make_composite(64, 64).image)))
    chosen = sorted(CARD_ONLY) + ([FEATHERING] if is_ready(matting.get(FEATHERING)) else [])
    if FEATHERING in chosen:
        status, *_ = client.predict(chosen, photo, api_name="/compare")
        assert "compared 1 method" in status
    else:  # without the selfie segmenter nothing can run: the reasons come in the error
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError) as caught:
            client.predict(chosen, photo, api_name="/compare")
        status = str(caught.value)
    for method_id, reason in CARD_ONLY.items():
        assert f"{matting.get(method_id).name}: cannot run here: " in status and reason in status
    overview, *cards = client.predict(api_name="/refresh_methods")
    assert all(reason in overview for reason in CARD_ONLY.values())
    assert sum(card.startswith("**Not runnable:**") for card in cards) == len(CARD_ONLY)


# --------------------------------------------------------------------------- guided-filter feathering

@pytest.fixture(scope="module")
def scene():
    return make_composite(96, 96)  # a disc with a 4-pixel soft edge


def test_feathering_softens_a_hard_mask_along_the_photo(scene):
    from matting.adapters.feathering import feather

    hard = (scene.alpha >= 0.5).astype(np.float32)
    alpha = feather(scene.image, hard, radius=4, eps=1e-2)
    assert alpha.dtype == np.float32 and alpha.shape == hard.shape
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert _soft_fraction(alpha) > _soft_fraction(hard) == 0.0  # the hard edge became soft
    # guided by the photo, the soft edge is the composite's own: closer to the true alpha than the mask
    assert np.abs(alpha - scene.alpha).mean() < 0.5 * np.abs(hard - scene.alpha).mean()


def test_feathering_method_equals_a_direct_guided_filter_call(scene):
    import cv2

    spec = matting.get(FEATHERING)
    from matting.ui.checkpoints import is_ready

    if not is_ready(spec):
        pytest.skip("the selfie segmenter's weights are not present (python -m matting.weights fetch --default)")
    result = matting.run(FEATHERING, scene.image, radius=6, eps=1e-3, foreground="none")
    mask = result.maps["mask"].array
    direct = np.clip(cv2.ximgproc.guidedFilter(scene.image.astype(np.float32), mask.astype(np.float32), 6, 1e-3, -1),
                     0, 1)
    np.testing.assert_array_equal(result.alpha, direct)
    assert 0.0 <= result.alpha.min() and result.alpha.max() <= 1.0
    assert result.params["radius"] == 6 and result.params["eps"] == 1e-3
    # the guided filter widens the mask's soft edge (the mask's own edge is bilinear from 256×256)
    assert _soft_fraction(result.alpha) >= _soft_fraction(mask)
