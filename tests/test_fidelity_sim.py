"""SIM (Semantic Image Matting) against the official code's outputs (../shared/fidelity), and the method end to end.

The fixtures hold the official ``MattingModule`` (weights: ``recipe_sim.fill_sim_``, the recipe variant for its
weight-standardised convolutions), the official classifier (``recipe.fill_``), the official pre-processing
(``scripts/main.py: preprocess``) and the official sliding-window semantic trimap
(``extract_semantic_trimap_whole``); see ../shared/fidelity/MANIFEST.md, section "Added: SIM, …".
The end-to-end test writes the same recipe weights as checkpoints in their official formats and points the
``MATTING_WEIGHTS_<ID>`` variables at them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import matting
from matting import weights
from matting.adapters import sim as sim_adapter
from matting.adapters import torch_utils
from matting.errors import MattingError
from matting.models import create
from matting.models.sim import SIM, SIM_CLASSES, SIMClassifier, WSConv2d, classifier_checkpoint_filter
from tests.scenes import noisy_gradient as _image, box_trimap as _trimap

ATOL = 1e-4


@pytest.fixture(autouse=True)
def _reference_path(monkeypatch):
    """These tests check the adapters' processing against the official arithmetic: the reference
    forward (the fast path is bounded against it in test_accelerate.py)."""
    monkeypatch.setenv("MATTING_REFERENCE", "1")


def float_keys(model):
    return [(key, list(value.shape)) for key, value in model.state_dict().items() if value.is_floating_point()]


def tensor(array):
    return torch.from_numpy(np.ascontiguousarray(array))


def max_abs(actual, expected):
    return float(np.max(np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))))


@pytest.fixture(scope="module")
def sim_model(recipe_sim):
    model = SIM()
    recipe_sim.fill_sim_(model)
    return model.eval()


@pytest.fixture(scope="module")
def classifier_model(recipe):
    model = SIMClassifier(4, num_classes=20)
    recipe.fill_(model)
    return model.eval()


# --------------------------------------------------------------------------- networks vs the official ones

def test_sim_keys_and_outputs(fidelity_dir, official_keys, sim_model):
    assert float_keys(sim_model) == official_keys("sim")
    fixture = np.load(fidelity_dir / "sim.npz")
    with torch.no_grad():
        out = sim_model(tensor(fixture["input_image"]), tensor(fixture["input_two_chan_trimap"]),
                        tensor(fixture["input_image_n"]), tensor(fixture["input_trimap_transformed"]),
                        tensor(fixture["input_smap"]), is_training=True)
    assert set(out) == {"alpha", "fg", "bg", "r1", "r2", "r3"}
    np.testing.assert_allclose(out["alpha"].numpy(), fixture["output_alpha"], rtol=0, atol=ATOL, err_msg="alpha")
    for name in ("fg", "bg", "r1", "r2", "r3"):
        np.testing.assert_allclose(out[name].numpy(), fixture[f"output_training_{name}"], rtol=0, atol=ATOL,
                                   err_msg=name)
    # the official alpha is the clamped pre-clamp alpha (6.6 % of the fixture's pixels are clamped at 0)
    np.testing.assert_allclose(out["alpha"].numpy(), np.clip(fixture["preclamp_alpha"], 0, 1), rtol=0, atol=ATOL)


def test_sim_classifier_keys_and_outputs(fidelity_dir, official_keys, classifier_model):
    assert float_keys(classifier_model) == official_keys("sim_classifier")
    assert official_keys("sim_semantic_trimap") == official_keys("sim_classifier")
    fixture = np.load(fidelity_dir / "sim_classifier.npz")
    with torch.no_grad():
        logits, cam, features = classifier_model(tensor(fixture["input_x"]))
    np.testing.assert_allclose(logits.numpy(), fixture["output_logits"], rtol=0, atol=ATOL, err_msg="logits")
    np.testing.assert_allclose(cam.numpy(), fixture["output_cam"], rtol=0, atol=ATOL, err_msg="cam")
    assert len(features) == 5
    for index, feature in enumerate(features):
        np.testing.assert_allclose(feature.numpy(), fixture[f"output_feats_{index}"], rtol=1e-5, atol=ATOL,
                                   err_msg=f"feats_{index}")


# --------------------------------------------------------------------------- official pre-processing

def test_preprocess_equals_the_official(fidelity_dir):
    fixture = np.load(fidelity_dir / "sim_preprocess.npz")
    bgr = fixture["input_image"].astype(np.uint8)  # 8-bit BGR as cv2.imread gives it, stored as float32
    assert np.array_equal(bgr, fixture["input_image"])
    out = sim_adapter.preprocess(np.ascontiguousarray(bgr[:, :, ::-1]), fixture["input_trimap"].astype(np.uint8))
    assert (out["origin_h"], out["origin_w"]) == (203, 448)
    # padding 203×448 → 208×456 with BORDER_REFLECT, the trimap exactly
    for name in ("trimap", "trimap_2chn"):
        assert out[name].dtype == np.float32 and np.array_equal(out[name], fixture[f"output_{name}"]), name
    for name in ("image_scale", "image_trans"):
        np.testing.assert_allclose(out[name], fixture[f"output_{name}"], rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(out["trimap_clks"], fixture["output_trimap_clks"], rtol=0, atol=1e-6)


def test_clicks_leave_an_absent_class_at_zero(fidelity_dir):
    fixture = np.load(fidelity_dir / "sim_preprocess.npz")
    trimap = fixture["input_nofg_trimap"].astype(np.uint8)  # 0 and 128 only: no foreground pixel
    two_chan = sim_adapter.trimap_to_2chn(trimap)
    assert np.array_equal(two_chan, fixture["output_nofg_trimap_2chn"])
    clicks = sim_adapter.trimap_to_clicks(two_chan, 320)
    np.testing.assert_allclose(clicks, fixture["output_nofg_clicks"], rtol=0, atol=1e-6)
    assert not clicks[:, :, 3:].any()


def test_padding_is_reflect_with_the_edge_repeated():
    assert sim_adapter.pad_amounts(203, 448) == (5, 8)  # a multiple of 8 still gets 8 more
    column = np.arange(6, dtype=np.uint8)[None, :].repeat(3, 0)
    padded = sim_adapter.pad_to_stride(column)
    assert padded.shape == (8, 8)
    assert list(padded[0]) == [0, 1, 2, 3, 4, 5, 5, 4]  # cv2.BORDER_REFLECT (numpy 'symmetric')
    assert np.array_equal(padded, np.pad(column, ((0, 5), (0, 2)), mode="symmetric"))


# --------------------------------------------------------------------------- official semantic trimap

def test_window_positions_include_the_partial_windows():
    # the fixture's padded size, 208×456 (MANIFEST: rows 96–207 for the 320 windows, cols 112–455 for the 800 one)
    assert sim_adapter.window_starts(208, 320) == [-112]
    assert sim_adapter.window_span(-112, 320, 208) == (96, 208)
    assert sim_adapter.window_starts(456, 320) == [0, 136]
    assert sim_adapter.window_span(-344, 800, 456) == (112, 456)
    assert sim_adapter.window_span(-592, 800, 208) == (0, 208)
    assert sim_adapter.window_starts(700, 320) == [0, 160, 320, 380]


def test_semantic_trimap_equals_the_official(fidelity_dir, classifier_model):
    fixture = np.load(fidelity_dir / "sim_semantic_trimap.npz")
    trimap = tensor(fixture["input_trimap"])
    with torch.no_grad():
        smap, covered = sim_adapter.semantic_trimap(classifier_model, tensor(fixture["input_image"]), trimap,
                                                    return_coverage=True)
    np.testing.assert_allclose(smap.numpy(), fixture["output_smap"], rtol=0, atol=ATOL)
    # 11.3 % of the pixels (rows 0–95 × cols 0–111) lie in no window: their unknown pixels get one value everywhere
    uncovered = np.ones((208, 456), bool)
    uncovered[96:, :] = uncovered[:, 112:] = False
    assert np.array_equal(~covered[0, 0].numpy(), uncovered)
    corner = smap[0, :, :96, :112].numpy()[:, fixture["input_trimap"][0, 0, :96, :112] == 128]
    assert corner.size and np.ptp(corner) < 1e-6 and abs(corner.mean() - 0.627) < 1e-3


# --------------------------------------------------------------------------- behaviour beyond the fixtures

def test_weight_standardisation_uses_the_unbiased_variance():
    conv = WSConv2d(3, 4, 3)
    standardised = conv.standardised_weight().reshape(4, -1)
    assert torch.allclose(standardised.mean(1), torch.zeros(4), atol=1e-6)
    assert torch.allclose(standardised.var(1, unbiased=True), torch.ones(4), atol=1e-3)


def test_registry_and_arguments():
    network = create("sim")
    assert isinstance(network, SIM) and isinstance(create("sim_classifier"), SIMClassifier)
    with pytest.raises(MattingError):
        SIM(n_channel=7)
    with pytest.raises(MattingError):
        SIM(encoder="resnet50_GN_WS")
    with pytest.raises(MattingError, match="multiples of 8"):
        network(*(torch.zeros(1, c, 12, 16) for c in (3, 2, 3, 6, 20)))
    assert len(SIM_CLASSES) == 20 and [name for name, _, _ in sim_adapter.class_legend()] == list(SIM_CLASSES)


def test_classifier_checkpoint_prefix_is_stripped(classifier_model):
    state = classifier_model.state_dict()
    prefixed = {f"net.{key}": value for key, value in state.items()}
    assert list(classifier_checkpoint_filter(prefixed, classifier_model)) == list(state)
    assert classifier_checkpoint_filter(dict(state), classifier_model).keys() == state.keys()




def test_sim_runs_the_official_pipeline(sim_model, classifier_model, tmp_path, monkeypatch):
    matting_file, classifier_file = tmp_path / "sim.pth", tmp_path / "classifier.pth.tar"
    # the official formats: utils/util.py save_checkpoint; the classifier's keys with one extra leading component
    # (not 'module.', which matting.weights.read_checkpoint removes by itself, so the filter's strip is exercised)
    torch.save({"epoch": 1, "state_dict": sim_model.state_dict(), "best_sad": 27.9}, matting_file)
    torch.save({"epoch": 1, "arch": "resnet50",
                "state_dict": {f"model.{k}": v for k, v in classifier_model.state_dict().items()}}, classifier_file)
    monkeypatch.setenv(weights.entry("sim_matting").env_var, str(matting_file))
    monkeypatch.setenv(weights.entry("sim_classifier").env_var, str(classifier_file))
    torch_utils.clear_cache()
    try:
        height, width = 61, 77
        image, trimap = _image(height, width, seed=3), _trimap(height, width)
        result = matting.run("sim", image, trimap=trimap, foreground="none")
    finally:
        torch_utils.clear_cache()
    assert result.alpha.shape == (height, width) and result.run_resolution == (80, 64)
    assert (result.alpha[trimap == 255] == 1).all() and (result.alpha[trimap == 0] == 0).all()
    assert set(result.maps) == {"semantic_classes", "clicks_background", "clicks_foreground"}
    for item in result.maps.values():
        assert item.array.shape == (height, width, 3) and item.array.dtype == np.float32

    # the same steps restated on the recipe networks directly
    arrays = sim_adapter.preprocess((image * 255 + 0.5).astype(np.uint8), trimap)
    with torch.no_grad():
        smap = sim_adapter.semantic_trimap(classifier_model, tensor(arrays["image_trans"]), tensor(arrays["trimap"]))
        out = sim_model(tensor(arrays["image_scale"]), tensor(arrays["trimap_2chn"]), tensor(arrays["image_trans"]),
                        tensor(arrays["trimap_clks"]), smap, is_training=False)
    assert set(out) == {"alpha"}
    expected = out["alpha"][0, 0].numpy()[:height, :width]
    unknown = trimap == 128
    np.testing.assert_allclose(result.alpha[unknown], expected[unknown], rtol=0, atol=1e-5)
    clicks = arrays["trimap_clks"][0, :, :height, :width].transpose(1, 2, 0)
    assert np.array_equal(result.maps["clicks_background"].array, clicks[:, :, :3])
    assert np.array_equal(result.maps["clicks_foreground"].array, clicks[:, :, 3:])
    classes = result.maps["semantic_classes"].array
    assert (classes[trimap == 0] == 0).all() and (classes[trimap == 255] == 1).all()
    palette = np.array([colour for _, _, colour in sim_adapter.class_legend()], np.float32)
    arg_max = np.argmax(smap[0].numpy()[:, :height, :width], axis=0)
    np.testing.assert_allclose(classes[unknown], palette[arg_max[unknown]], atol=1e-7)
    assert "hair_hard" in result.maps["semantic_classes"].description and not result.warnings
    with pytest.raises(MattingError, match="trimap"):
        matting.run("sim", image)


def test_missing_weights_say_how_to_fetch_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("MATTING_AUTO_FETCH", raising=False)
    for checkpoint_id in ("sim_matting", "sim_classifier"):
        monkeypatch.delenv(weights.entry(checkpoint_id).env_var, raising=False)
    monkeypatch.setattr(weights.store, "_overrides", {})
    with pytest.raises(MattingError) as caught:
        matting.run("sim", _image(32, 40), trimap=_trimap(32, 40), foreground="none")
    assert "python -m matting.weights fetch sim_matting" in str(caught.value)
    assert "python -m matting.weights fetch sim_classifier" in str(caught.value)
