"""Background Matting v1 and SHM (lizhengwei1992's light re-implementation) against the official code.

* ``bgmv1.npz`` / ``shm.npz``: outputs of the official classes filled with the recipe's deterministic
  weights (../shared/fidelity/MANIFEST.md); keys and shapes must equal ``<name>.keys.json``.
* ``shm_real_weights.npz``: the port's ``test_camera.py`` pipeline with its trained checkpoint
  (../shared/weights/shm_fast_human_matting.pth) on three scikit-image photos; our SHM method must give
  the same alpha before clipping (atol 1e-4).
* End to end through ``matting.run`` with random-weight checkpoints written to tmp files and named by
  ``MATTING_WEIGHTS_<ID>``, on tiny inputs; missing weights raise the usual fetch message.

Tests that need ../shared skip cleanly without it; the rest need nothing but the package.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import matting
from matting import models, weights
from matting.adapters import bgmv1 as bgmv1_adapter
from matting.adapters import shm as shm_adapter
from matting.adapters import torch_utils
from matting.errors import MattingError
from matting.models.bgmv1 import ResnetConditionHR
from matting.models.random_init import recipe_like_weights_
from matting.models.shm import SHM
from tests.scenes import noisy_gradient as _photo

ATOL = 1e-4
# SHM's photo pipeline where OpenCV's resize put one input value a level (1/255) off the fixture's
# (measured on chelsea: 4.6e-4 on the trimap logits, 1.5e-4 on the alpha)
INPUT_LEVEL_ATOL = 2e-3


@pytest.fixture(autouse=True)
def _reference_path(monkeypatch):
    """These tests check the adapters' processing against the official arithmetic: the reference
    forward (the fast path is bounded against it in test_accelerate.py)."""
    monkeypatch.setenv("MATTING_REFERENCE", "1")
PHOTOS = ("astronaut", "chelsea", "coffee")
SHM_ID = "shm_fast_human_matting"
BGMV1_IDS = ("bgmv1_real_fixed_cam", "bgmv1_real_hand_held", "bgmv1_syn_comp_adobe")


def float_keys(model):
    return [(key, list(value.shape)) for key, value in model.state_dict().items() if value.is_floating_point()]


def close(actual, expected, name, atol=ATOL):
    actual = actual.detach().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=name)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """One thread: on a shared, busy 2-core machine two spinning threads make these small forwards up to
    100× slower. (The official BGMv1 test script runs with torch.set_num_threads(1) too; the fixtures
    differ from 2-thread runs by < 1e-5, MANIFEST.md.)"""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    torch_utils.clear_cache()
    yield
    torch_utils.clear_cache()


# --------------------------------------------------------------------------- fixtures of the official code

def test_bgmv1_keys_and_outputs(fidelity_dir, recipe, official_keys):
    model = ResnetConditionHR(input_nc=(3, 3, 1, 4), output_nc=4, n_blocks1=7, n_blocks2=3)
    assert float_keys(model) == official_keys("bgmv1")
    recipe.fill_(model)
    model.eval()
    fixture = np.load(fidelity_dir / "bgmv1.npz")
    captured = {}
    hook = model.model_al_out[-2].register_forward_hook(lambda m, i, o: captured.setdefault("pre", o.clone()))
    inputs = [torch.from_numpy(fixture[f"input_{n}"]) for n in ("image", "back", "seg", "multi")]
    with torch.no_grad():
        alpha_pred, fg_pred_tmp = model(*inputs)
    hook.remove()
    close(alpha_pred, fixture["output_alpha_pred"], "alpha_pred")
    close(fg_pred_tmp, fixture["output_fg_pred_tmp"], "fg_pred_tmp")
    close(captured["pre"], fixture["preclamp_alpha_pred"], "preclamp_alpha_pred")


def test_shm_keys_and_outputs(fidelity_dir, recipe, official_keys):
    model = SHM()
    assert float_keys(model) == official_keys("shm")
    recipe.fill_(model)
    model.eval()
    fixture = np.load(fidelity_dir / "shm.npz")
    with torch.no_grad():
        trimap, alpha_p = model(torch.from_numpy(fixture["input_input"]))
    close(trimap, fixture["output_trimap"], "trimap")
    close(alpha_p, fixture["output_alpha_p"], "alpha_p")


@pytest.fixture(scope="module")
def shm_real_checkpoint(shared_dir):
    path = shared_dir / "weights" / "shm_fast_human_matting.pth"
    if not path.is_file():
        pytest.skip("../shared/weights/shm_fast_human_matting.pth is not present")
    return path


def assert_cubic_resize_equal(actual, expected, name):
    """Equal, except where OpenCV's 8-bit INTER_CUBIC resize rounds differently on another CPU: its
    SIMD kernel is picked by the CPU's features, and on an AVX2-only machine one pixel of the chelsea
    photo came out one level (1/255) away from the fixture's. At most one level, on at most 0.01 % of
    the values."""
    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert difference.max() <= 1 / 255 + 1e-6, f"{name}: max |Δ| {difference.max():.3g}"
    assert (difference > 0).mean() <= 1e-4, f"{name}: {(difference > 0).sum()} values differ"


def test_shm_method_reproduces_the_ports_pipeline_with_its_weights(fidelity_dir, shm_real_checkpoint, monkeypatch):
    """Pre-processing, both network outputs and the resized alpha before clipping equal the official
    test_camera.py pipeline's; matting.run's alpha is that alpha clipped to [0, 1]."""
    monkeypatch.setenv(weights.entry(SHM_ID).env_var, str(shm_real_checkpoint))
    fixture = np.load(fidelity_dir / "shm_real_weights.npz")
    model = torch_utils.load_model("shm", SHM_ID)
    runs = {}
    for name in PHOTOS:
        bgr = fixture[f"image_{name}"]
        rgb = bgr[:, :, ::-1].astype(np.float32) / 255.0  # what matting.io gives for the photo
        official_input = fixture[f"input_{name}"]
        ours = shm_adapter.preprocess(rgb)
        assert_cubic_resize_equal(ours, official_input, name)
        # the network on the official input itself
        trimap, alpha_p = torch_utils.run(model, torch.from_numpy(official_input))
        close(trimap[0], fixture[f"output_{name}_trimap"][0], f"{name} trimap")
        close(alpha_p[0, 0], fixture[f"output_{name}_alpha"][0, 0], f"{name} alpha_p")
        # the pipeline from the photo, exact where our input is the official one
        tolerance = ATOL if np.array_equal(ours, official_input) else INPUT_LEVEL_ATOL
        alpha, raw = shm_adapter.official_alpha(rgb, model)
        close(raw["trimap_logits"], fixture[f"output_{name}_trimap"][0], f"{name} trimap", tolerance)
        close(alpha, fixture[f"post_{name}_alpha"], f"{name} alpha (before clipping)", tolerance)
        result = runs[name] = matting.run("shm", rgb, foreground="none")
        close(result.alpha, np.clip(fixture[f"post_{name}_alpha"], 0, 1), f"{name} run alpha", tolerance)
        assert set(result.maps) == {"trimap", "raw_alpha"}
        assert result.maps["trimap"].array.shape == bgr.shape
        assert 0 <= result.maps["trimap"].array.min() and result.maps["trimap"].array.max() <= 1
    assert (runs["astronaut"].alpha > 0.5).mean() > 0.3  # the astronaut is found; the cat and the coffee are not
    assert runs["chelsea"].alpha.max() < 0.2 and runs["coffee"].alpha.max() < 0.2


# --------------------------------------------------------------------------- network properties

@pytest.fixture(scope="module")
def random_bgmv1():
    return recipe_like_weights_(ResnetConditionHR(), seed=1).eval()


def test_bgmv1_motion_cue_never_reaches_the_outputs(random_bgmv1):
    """Official bug (issue #36), kept: comb_multi sees the background feature, not the motion one."""
    torch.manual_seed(0)
    model = random_bgmv1
    image, back, seg, multi = (torch.rand(1, c, 32, 32) * 2 - 1 for c in (3, 3, 1, 4))
    with torch.no_grad():
        alpha, fg = model(image, back, seg, multi)
        alpha0, fg0 = model(image, back, seg, torch.zeros_like(multi))
        alpha_noseg, _ = model(image, back, torch.zeros_like(seg), multi)
    assert torch.equal(alpha, alpha0) and torch.equal(fg, fg0)
    assert not torch.equal(alpha, alpha_noseg)
    assert alpha.shape == (1, 1, 32, 32) and fg.shape == (1, 3, 32, 32)
    with pytest.raises(MattingError, match="multiples of 4"):
        model(*(torch.zeros(1, c, 30, 32) for c in (3, 3, 1, 4)))
    with pytest.raises(MattingError, match="input_nc"):
        ResnetConditionHR(input_nc=(3, 3, 1, 3))


def test_shm_size_rule_and_recognition():
    model = SHM().eval()
    with torch.no_grad():
        trimap, alpha = model(torch.zeros(1, 3, 64, 96))
    assert trimap.shape == (1, 3, 64, 96) and alpha.shape == (1, 1, 64, 96)
    with pytest.raises(MattingError, match="multiples of 32"):
        model(torch.zeros(1, 3, 64, 80))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert "arch 'shm'" in models.guess_architecture(shapes)
    assert "arch 'bgmv1'" in models.guess_architecture(
        {f"module.{k}": v for k, v in ResnetConditionHR().state_dict().items()})


# --------------------------------------------------------------------------- BGMv1 official steps

def test_bgmv1_bounding_box_rule():
    mask = np.zeros((200, 300), np.uint8)
    mask[50:121, 100:141] = 255  # rows 50..120, cols 100..140: extent max(70, 40) = 70
    assert bgmv1_adapter.bounding_box(mask) == (43, 93, 84, 84)  # 50 − 7, 100 − 7, side 1.2 · 70
    mask = np.zeros((100, 100), np.uint8)
    mask[10:100, 90:100] = 1  # touches the bottom-right corner: clamped to H − 1, W − 1
    row, col, height, width = bgmv1_adapter.bounding_box(mask)
    assert (row, col) == (1, 81) and row + height == 99 and col + width == 99
    with pytest.raises(MattingError, match="empty"):
        bgmv1_adapter.bounding_box(np.zeros((10, 10), np.uint8))


def test_bgmv1_mask_processing_extends_the_person_to_the_bottom():
    mask = np.zeros((512, 512), np.uint8)
    mask[100:300, 200:300] = 255  # ends at row 299: rows ≥ 298 are dropped and replaced by row 297
    mask[60:80, 20:40] = 40  # a faint region (≤ 0.2) stays faint, then erodes away
    out = bgmv1_adapter.process_mask(mask)
    assert out.shape == (512, 512) and out.dtype == np.uint8
    assert out[500, 250] >= 254 and out[511, 250] > 200  # extended straight down
    assert out[500, 100] == 0
    assert out[70, 30] < 40
    untouched = np.zeros((512, 512), np.uint8)
    untouched[100:512, 200:300] = 255  # reaches the bottom: nothing is dropped
    assert bgmv1_adapter.process_mask(untouched)[150, 250] >= 254


def test_bgmv1_postprocessing_keeps_the_photo_and_the_largest_component():
    alpha_pred = np.full((20, 20), -1.0, np.float32)
    alpha_pred[2:12, 2:12] = 0.99  # large blob, nearly opaque
    alpha_pred[15:18, 15:18] = 0.0  # small blob (alpha 0.5)
    fg = np.full((20, 20, 3), -0.5, np.float32)
    image = np.full((20, 20, 3), 0.5, np.float32)
    alpha, foreground, found = bgmv1_adapter.postprocess(alpha_pred, fg, image)
    assert found
    assert alpha[5, 5] == pytest.approx(0.995) and alpha[16, 16] == 0 and alpha[0, 0] == 0
    np.testing.assert_allclose(foreground[5, 5], 0.75)  # the photo's colour, (0.5 + 1) / 2
    assert (foreground[16, 16] == 0).all() and (foreground[0, 0] == 0).all()
    nothing = bgmv1_adapter.postprocess(np.full((8, 8), -1.0, np.float32), fg[:8, :8], image[:8, :8])
    assert not nothing[2] and not nothing[0].any()


def test_bgmv1_mask_methods_are_the_automatic_methods():
    spec = matting.get("bgmv1")
    choice = spec.param("mask_method")
    assert choice.default == "selfie_segmentation"
    assert set(choice.choices) <= {m.id for m in matting.methods("automatic")}
    assert {"selfie_segmentation", "shm"} <= set(choice.choices)
    assert spec.param("checkpoint").choices == ("real-fixed-cam", "real-hand-held", "syn-comp-adobe")
    assert spec.weights == BGMV1_IDS and spec.required_inputs == ("background",)
    assert "CC BY-NC-SA 4.0" in spec.card.code_license and "issue #36" in spec.card.notes
    assert "unofficial light re-implementation, not the paper's networks" in matting.get("shm").card.notes.lower()


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def random_checkpoints(tmp_path_factory, random_bgmv1):
    """A BGMv1 checkpoint as the authors save it (DataParallel keys) and an SHM one as the port's file
    ({'epoch', 'state_dict'}, no num_batches_tracked), both with recipe-like random weights."""
    folder = tmp_path_factory.mktemp("bgmv1_shm_weights")
    bgm = random_bgmv1
    bgm_path = folder / "bgmv1.pth"
    torch.save({f"module.{k}": v for k, v in bgm.state_dict().items()}, bgm_path)
    shm = recipe_like_weights_(SHM(), seed=2)
    shm_path = folder / "shm.pth"
    torch.save({"epoch": 800, "state_dict": {k: v for k, v in shm.state_dict().items()
                                             if not k.endswith("num_batches_tracked")}}, shm_path)
    return {"bgmv1": bgm_path, "shm": shm_path}



def test_shm_and_bgmv1_run_end_to_end(random_checkpoints, monkeypatch):
    monkeypatch.setenv(weights.entry(SHM_ID).env_var, str(random_checkpoints["shm"]))
    monkeypatch.setenv(weights.entry("bgmv1_real_hand_held").env_var, str(random_checkpoints["bgmv1"]))
    image, plate = _photo(48, 40), _photo(48, 40, seed=1)

    result = matting.run("shm", image, foreground="none")
    assert result.alpha.shape == (48, 40) and result.run_resolution == (256, 256)
    assert 0 <= result.alpha.min() and result.alpha.max() <= 1

    result = matting.run("bgmv1", image, background=plate, checkpoint="real-hand-held", mask_method="shm",
                         resolution=64)
    assert result.alpha.shape == (48, 40) and result.foreground.shape == (48, 40, 3)
    assert result.run_resolution == (64, 64) and result.params["foreground"] == "model"
    assert set(result.maps) == {"mask", "network_alpha", "network_foreground"}
    for item in result.maps.values():
        assert item.array.shape[:2] == (48, 40) and 0 <= item.array.min() and item.array.max() <= 1
    assert (result.alpha <= result.maps["network_alpha"].array + 1e-6).all()  # largest component only
    with pytest.raises(MattingError, match="multiple of 4"):
        matting.run("bgmv1", image, background=plate, checkpoint="real-hand-held", resolution=66)


@pytest.mark.parametrize("method_id, params, checkpoint_id", [
    ("shm", {}, SHM_ID),
    ("bgmv1", {}, "bgmv1_real_fixed_cam"),
    ("bgmv1", {"checkpoint": "real-hand-held"}, "bgmv1_real_hand_held"),
    ("bgmv1", {"checkpoint": "syn-comp-adobe"}, "bgmv1_syn_comp_adobe"),
])
def test_missing_weights_say_how_to_fetch_them(method_id, params, checkpoint_id, tmp_path, monkeypatch):
    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("MATTING_AUTO_FETCH", raising=False)
    monkeypatch.delenv(weights.entry(checkpoint_id).env_var, raising=False)
    monkeypatch.setattr(weights.store, "_overrides", {})
    extra = {"background": _photo(32, 32, 1)} if method_id == "bgmv1" else {}
    with pytest.raises(MattingError) as caught:
        matting.run(method_id, _photo(32, 32), foreground="none", **params, **extra)
    assert f"python -m matting.weights fetch {checkpoint_id}" in str(caught.value)


def test_manifest_entries():
    entry = weights.entry(SHM_ID)
    assert entry.arch == "shm" and entry.container == "torch" and not entry.default
    assert entry.size == 3519237 and entry.license == "none stated"
    assert entry.sha256 == "cd51a9552231642754d52472ddeb5b85a6f61c9f51dffe9a0bb676458442b4dc"
    assert entry.sources[0].url.endswith("/fast_human_matting/ckpt/fpn_human_matting/model/ckpt_lastest.pth")
    for checkpoint_id in BGMV1_IDS:
        entry = weights.entry(checkpoint_id)
        assert entry.arch == "bgmv1" and entry.container == "torch" and not entry.default
        assert entry.license == "CC-BY-NC-SA-4.0" and entry.sha256 is None and entry.sha256_note
