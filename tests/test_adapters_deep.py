"""Deep-learning methods: official pre/post-processing, shapes, maps, weights handling.

* Random weights (a freshly initialised network saved in the checkpoint's own format and handed to the
  method with ``matting.weights.use_file``) exercise every deep method end to end through ``matting.run``
  without any trained checkpoint, and check each adapter against an independent re-statement of the
  official inference steps.
* The official U²-NetP weights (``weights/u2netp.onnx``) and the MediaPipe selfie model
  (``weights/selfie_segmentation.tflite``) are used when present. The official U²-Net test images
  are not available offline, so "reproduces the official results" is checked as: our PyTorch path
  (ONNX converted to a state dict) vs onnxruntime on the same ONNX file, both through the full
  official pre/post-processing, on scikit-image's sample photos (max |Δ| ≤ 1/255 on the 8-bit map).
"""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
import torch.nn.functional as F
from PIL import Image

import matting
from matting import weights
from matting.adapters import bgmv2, dim, modnet, torch_utils, u2net
from matting.errors import MattingError
from matting.models import create
from tests.scenes import noisy_gradient as _image, box_trimap as _trimap


@pytest.fixture(autouse=True)
def _reference_path(monkeypatch):
    """These tests check the adapters' processing against the official arithmetic: the reference
    forward (the fast path is bounded against it in test_accelerate.py)."""
    monkeypatch.setenv("MATTING_REFERENCE", "1")

DEEP_METHODS = ("u2netp", "u2net", "u2net_human_seg", "modnet", "bgmv2", "dim", "selfie_segmentation",
                "u2netp_closed_form", "selfie_closed_form")




@pytest.fixture(scope="module")
def random_checkpoints(tmp_path_factory):
    """Write freshly initialised networks as checkpoints in their official formats; use them."""
    folder = tmp_path_factory.mktemp("random_weights")
    torch.manual_seed(0)
    written = {}
    paths = {}

    def save(checkpoint_id, arch, wrap, **kwargs):
        model = create(arch, **kwargs).eval()
        state = model.state_dict()
        path = folder / weights.entry(checkpoint_id).file
        torch.save(wrap(state), path)
        weights.use_file(checkpoint_id, path)
        written[checkpoint_id] = model
        paths[checkpoint_id] = path
        return model

    save("modnet_photographic", "modnet", lambda s: {f"module.{k}": v for k, v in s.items()})  # DataParallel
    save("bgmv2_mobilenetv2", "bgmv2_refine", dict, backbone="mobilenetv2")
    save("dim_stage1", "dim", lambda s: {"epoch": 12, "state_dict": s, "best_sad": 52.9}, stage=1)
    written["paths"] = paths
    yield written
    for checkpoint_id in paths:
        weights.use_file(checkpoint_id, None)


# --------------------------------------------------------------------------- registry

def test_deep_methods_are_registered_with_cards_and_outputs():
    for method_id in DEEP_METHODS:
        spec = matting.get(method_id)
        assert spec.family in ("automatic", "background", "trimap")
        for field in ("paper", "authors", "venue", "paper_url", "code", "code_license", "weights_license",
                      "how_it_works"):
            assert getattr(spec.card, field), (method_id, field)
        assert spec.outputs and spec.weights
        assert all(w in weights.manifest() for w in spec.weights)
        assert spec.param("foreground").default == ("model" if spec.provides_foreground else "multilevel")
    assert matting.get("bgmv2").required_inputs == ("background",)
    assert matting.get("dim").accepts("trimap") and not matting.get("dim").accepts("scribbles")


# --------------------------------------------------------------------------- U²-Net official processing

def test_u2net_preprocessing_is_the_official_rescale_and_normalisation():
    image = _image(480, 700)  # downsampled, where anti-aliasing would matter
    x = u2net.preprocess(image)
    assert x.shape == (1, 3, 320, 320) and x.dtype == np.float32
    from skimage.transform import resize
    small = resize(image.astype(np.float64), (320, 320), order=1, mode="constant", anti_aliasing=False)
    small = small / small.max()
    expected = (small - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(x[0].transpose(1, 2, 0), expected, atol=1e-6)
    smoothed = resize(image.astype(np.float64), (320, 320), order=1, mode="constant", anti_aliasing=True)
    assert np.abs(smoothed / smoothed.max() - small).max() > 1e-3  # anti-aliasing would change it


def test_u2net_postprocessing_is_the_official_norm_pred_and_save_output():
    rng = np.random.default_rng(1)
    prediction = (0.2 + 0.5 * rng.random((320, 320))).astype(np.float32)
    normalised = u2net.norm_pred(prediction)
    assert normalised.min() == 0 and normalised.max() == 1
    out = u2net.to_image_size(normalised, 200, 120)
    official = np.array(Image.fromarray(normalised * 255).convert("RGB").resize((200, 120), resample=Image.BILINEAR))
    assert out.shape == (120, 200) and out.dtype == np.uint8
    assert (official == out[:, :, None]).all()


# --------------------------------------------------------------------------- official U²-NetP weights

needs_u2netp = pytest.mark.skipif(weights.path("u2netp") is None, reason="weights/u2netp.onnx is not present")


@needs_u2netp
def test_u2netp_finds_the_astronaut():
    image = skimage.data.astronaut()
    result = matting.run("u2netp", image, foreground="none")
    alpha = result.alpha
    assert alpha.shape == (512, 512) and result.run_resolution == (320, 320)
    assert set(result.maps) == {f"d{i}" for i in range(7)}
    assert all(m.array.shape == (512, 512) and m.kind == "alpha" for m in result.maps.values())
    assert alpha[100:180, 180:260].mean() > 0.9  # face
    assert alpha[350:450, 100:250].mean() > 0.9  # suit
    assert alpha[:40, :40].mean() < 0.05 and alpha[:40, -40:].mean() < 0.05  # top corners: wall
    assert np.allclose(alpha * 255, np.round(alpha * 255), atol=1e-3)  # 8-bit, as the official PNG


@needs_u2netp
def test_u2netp_matches_onnxruntime_through_the_official_pipeline():
    """Stand-in for the official u2netp_results: same ONNX weights, onnxruntime vs our PyTorch path."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(weights.path("u2netp")), providers=["CPUExecutionProvider"])
    for name in ("astronaut", "coffee"):
        image = getattr(skimage.data, name)()
        height, width = image.shape[:2]
        fused = session.run(None, {session.get_inputs()[0].name: u2net.preprocess(image / 255.0)})[0][0, 0]
        official = np.array(Image.fromarray(u2net.norm_pred(fused) * 255).convert("RGB")
                            .resize((width, height), resample=Image.BILINEAR))[:, :, 0].astype(int)
        ours = np.round(matting.run("u2netp", image, foreground="none").alpha * 255).astype(int)
        assert np.abs(ours - official).max() <= 1, name
        assert (ours != official).mean() < 0.01, name


# --------------------------------------------------------------------------- MODNet

@pytest.mark.parametrize("size, expected", [
    ((512, 512), (512, 512)),
    ((300, 400), (512, 672)),    # both sides < 512: short side → 512, long = int(400/300*512) = 682 → 672
    ((400, 300), (672, 512)),
    ((1000, 2000), (512, 1024)),  # both sides > 512
    ((4000, 3000), (672, 512)),
    ((600, 400), (576, 384)),    # straddles 512: kept, rounded down to multiples of 32
    ((511, 513), (480, 512)),
    ((20, 5000), (32, 4992)),    # the official rule would give 0 rows
])
def test_modnet_reference_size_rule(size, expected):
    assert modnet.input_size(*size) == expected


def test_modnet_runs_the_official_pipeline(random_checkpoints):
    image = _image(70, 530)  # straddles 512: runs at 64×512 (small, quick), 'area' both ways
    result = matting.run("modnet", image, foreground="none")
    assert result.alpha.shape == (70, 530) and result.run_resolution == (512, 64)
    assert 0 <= result.alpha.min() and result.alpha.max() <= 1
    assert set(result.maps) == {"semantic", "detail", "matte"}
    assert all(m.array.shape == (70, 530) for m in result.maps.values())
    # An independent statement of demo/image_matting/colab/inference.py with the same network.
    network = random_checkpoints["modnet_photographic"]
    with torch.no_grad():
        x = (torch.from_numpy(image.transpose(2, 0, 1))[None] - 0.5) / 0.5
        _, _, matte = network(F.interpolate(x, size=(64, 512), mode="area"), True)
        expected = F.interpolate(matte, size=(70, 530), mode="area")[0, 0].numpy()
    np.testing.assert_allclose(result.alpha, expected, atol=1e-5)
    np.testing.assert_array_equal(result.maps["matte"].array, result.alpha)


def test_modnet_accepts_checkpoints_without_the_aliased_backbone_keys(random_checkpoints, tmp_path):
    state = {k: v for k, v in random_checkpoints["modnet_photographic"].state_dict().items()
             if not k.startswith("lr_branch.backbone.")}
    path = tmp_path / "webcam.ckpt"
    torch.save(state, path)
    weights.use_file("modnet_webcam", path)
    try:
        result = matting.run("modnet", _image(40, 520), checkpoint="webcam", foreground="none")
    finally:
        weights.use_file("modnet_webcam", None)
    reference = matting.run("modnet", _image(40, 520), foreground="none")
    np.testing.assert_allclose(result.alpha, reference.alpha, atol=1e-6)


# --------------------------------------------------------------------------- BackgroundMattingV2

def test_bgmv2_pads_to_multiples_of_four_and_returns_its_maps(random_checkpoints):
    image, plate = _image(70, 90, seed=1), _image(70, 90, seed=2)
    result = matting.run("bgmv2", image, background=plate)
    assert result.alpha.shape == (70, 90) and result.foreground.shape == (70, 90, 3)
    assert result.run_resolution == (92, 72)
    assert result.params["foreground"] == "model"
    assert any("padded" in w for w in result.warnings)
    kinds = {name: m.kind for name, m in result.maps.items()}
    assert kinds == {"coarse_alpha": "alpha", "coarse_foreground": "rgb", "error": "error",
                     "refined_patches": "overlay"}
    assert result.maps["coarse_foreground"].array.shape == (70, 90, 3)
    assert set(np.unique(result.maps["refined_patches"].array)) <= {0.0, 1.0}


def test_bgmv2_matches_the_official_model_call(random_checkpoints):
    image, plate = _image(64, 96, seed=3), _image(64, 96, seed=4)
    result = matting.run("bgmv2", image, background=plate, preset="custom", backbone_scale=0.5,
                         refine_mode="full")
    network = create("bgmv2_refine", backbone="mobilenetv2", backbone_scale=0.5, refine_mode="full").eval()
    network.load_state_dict(random_checkpoints["bgmv2_mobilenetv2"].state_dict())
    with torch.no_grad():
        src = torch.from_numpy(image.transpose(2, 0, 1))[None]
        bgr = torch.from_numpy(plate.transpose(2, 0, 1))[None]
        pha, fgr, *_ = network(src, bgr)
    np.testing.assert_allclose(result.alpha, pha[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.foreground, fgr[0].permute(1, 2, 0).numpy(), atol=1e-6)
    assert result.maps["refined_patches"].array.min() == 1.0  # 'full' refines every patch
    assert result.run_resolution == (96, 64)


def test_bgmv2_presets_and_refine_modes(random_checkpoints):
    assert bgmv2.settings({"preset": "HD"}) == (0.25, 80_000)
    assert bgmv2.settings({"preset": "4K"}) == (0.125, 320_000)
    assert bgmv2.settings({"preset": "custom", "backbone_scale": 0.3, "refine_sample_pixels": 16}) == (0.3, 16)
    image, plate = _image(64, 64, seed=5), _image(64, 64, seed=6)
    none_refined = matting.run("bgmv2", image, background=plate, refine_mode="thresholding", refine_threshold=1.0)
    assert none_refined.maps["refined_patches"].array.max() == 0.0  # err ≤ 1 is never > 1
    with pytest.raises(MattingError, match="background plate"):
        matting.run("bgmv2", image)
    assert any("only 8×8 pixels" in w for w in matting.run("bgmv2", image, background=plate, preset="4K").warnings)
    with pytest.raises(MattingError, match="too small"):
        matting.run("bgmv2", image[:16, :16], background=plate[:16, :16], preset="custom", backbone_scale=0.04)


# --------------------------------------------------------------------------- Deep Image Matting

@pytest.mark.parametrize("size, max_size, expected", [
    ((80, 100), 1600, (64, 96)),
    ((2000, 1700), 1600, (1600, 1600)),  # each side capped separately, as the port does
    ((1650, 40), 1600, (1600, 32)),
    ((1200, 1300), 1000, (992, 992)),    # max_size rounded down to a multiple of 32
    ((20, 300), 1600, (32, 288)),        # a side under 32 pixels runs at 32
])
def test_dim_whole_image_size_rule(size, max_size, expected):
    assert dim.input_size(*size, max_size) == expected


def test_dim_runs_the_ports_deploy_pipeline(random_checkpoints):
    import cv2

    image, trimap = _image(80, 100, seed=7), _trimap(80, 100)
    result = matting.run("dim", image, trimap=trimap, foreground="none")
    assert result.alpha.shape == (80, 100) and result.run_resolution == (96, 64)
    assert (result.alpha[trimap == 255] == 1).all() and (result.alpha[trimap == 0] == 0).all()
    assert set(result.maps) == {"raw_alpha"}
    # core/deploy.py inference_img_whole + inference_once, restated on a BGR uint8 image as the port reads it.
    bgr = cv2.cvtColor((image * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
    scaled = cv2.cvtColor(cv2.resize(bgr, (96, 64), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    scaled_trimap = cv2.resize(trimap, (96, 64), interpolation=cv2.INTER_LINEAR)
    x = (torch.from_numpy(scaled.transpose(2, 0, 1).astype(np.float32))[None] / 255
         - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    t = torch.from_numpy(scaled_trimap.astype(np.float32))[None, None] / 255.0
    with torch.no_grad():
        pred, _ = random_checkpoints["dim_stage1"](torch.cat((x, t), 1))
    expected = cv2.resize(pred[0, 0].numpy(), (100, 80), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(result.maps["raw_alpha"].array, np.clip(expected, 0, 1), atol=1e-5)
    unknown = trimap == 128
    np.testing.assert_allclose(result.alpha[unknown], expected[unknown], atol=1e-5)
    with pytest.raises(MattingError, match="trimap"):
        matting.run("dim", image)


# --------------------------------------------------------------------------- weights handling

def test_loaded_networks_are_cached_per_weights_file(random_checkpoints, tmp_path):
    first = torch_utils.load_model("modnet", "modnet_photographic")
    assert torch_utils.load_model("modnet", "modnet_photographic") is first
    other = tmp_path / "other.ckpt"
    torch.save(random_checkpoints["modnet_photographic"].state_dict(), other)
    weights.use_file("modnet_photographic", other)
    try:
        assert torch_utils.load_model("modnet", "modnet_photographic") is not first
    finally:
        weights.use_file("modnet_photographic", random_checkpoints["paths"]["modnet_photographic"])


def test_full_u2net_checkpoints_load_as_plain_state_dicts(tmp_path):
    """u2net / u2net_human_seg share u2netp's compute (tested above); only their loading differs.

    (A forward pass of the full U²-Net at 320×320 takes ~10 s on two cores, so it is not run here.)
    """
    torch.manual_seed(1)
    network = create("u2net").eval()
    path = tmp_path / "u2net_human_seg.pth"
    torch.save(network.state_dict(), path)
    weights.use_file("u2net_human_seg", path)
    try:
        loaded = torch_utils.load_model("u2net", "u2net_human_seg")
    finally:
        weights.use_file("u2net_human_seg", None)
    assert type(loaded).__name__ == "U2NET" and not loaded.training
    for key, value in network.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    bad = tmp_path / "u2netp_as_u2net.pth"
    torch.save(create("u2netp").state_dict(), bad)
    weights.use_file("u2net", bad)
    try:
        with pytest.raises(MattingError, match="U²-NetP"):
            matting.run("u2net", _image(32, 32), foreground="none")
    finally:
        weights.use_file("u2net", None)


@pytest.mark.parametrize("method_id, params, checkpoint_id", [
    ("u2net", {}, "u2net"),
    ("u2net_human_seg", {}, "u2net_human_seg"),
    ("modnet", {"checkpoint": "photographic"}, "modnet_photographic"),
    ("modnet", {"checkpoint": "webcam"}, "modnet_webcam"),
    ("bgmv2", {"backbone": "resnet50"}, "bgmv2_resnet50"),
    ("bgmv2", {"backbone": "resnet101"}, "bgmv2_resnet101"),
    ("dim", {}, "dim_stage1"),
])
def test_missing_weights_say_how_to_fetch_them(method_id, params, checkpoint_id, tmp_path, monkeypatch):
    monkeypatch.setenv("MATTING_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.delenv("MATTING_AUTO_FETCH", raising=False)
    monkeypatch.delenv(weights.entry(checkpoint_id).env_var, raising=False)
    monkeypatch.setattr(weights.store, "_overrides", {})
    extra = {"background": _image(64, 64, 1)} if method_id == "bgmv2" else {}
    if method_id == "dim":
        extra = {"trimap": _trimap(64, 64)}
    with pytest.raises(MattingError) as caught:
        matting.run(method_id, _image(64, 64), foreground="none", **params, **extra)
    assert f"python -m matting.weights fetch {checkpoint_id}" in str(caught.value)


# --------------------------------------------------------------------------- MediaPipe selfie model

needs_selfie = pytest.mark.skipif(weights.path("selfie_segmenter") is None,
                                  reason="weights/selfie_segmentation.tflite is not present "
                                         "(python -m matting.weights fetch selfie_segmenter)")


def _person_and_corners(alpha):
    return alpha[100:180, 180:260].mean(), alpha[350:450, 100:250].mean(), alpha[:40, :40].mean(), \
        alpha[:40, -40:].mean()


@needs_selfie
def test_selfie_segmentation_finds_the_astronaut():
    result = matting.run("selfie_segmentation", skimage.data.astronaut(), foreground="none")
    face, suit, left, right = _person_and_corners(result.alpha)
    assert face > 0.9 and suit > 0.9 and left < 0.05 and right < 0.05
    assert result.run_resolution == (256, 256)
    assert result.maps["network_mask"].array.shape == (512, 512)


@needs_selfie
@pytest.mark.parametrize("method_id", ["selfie_closed_form", pytest.param("u2netp_closed_form", marks=needs_u2netp)])
def test_pipelines_refine_the_segmentation(method_id):
    result = matting.run(method_id, skimage.data.astronaut(), foreground="none")
    face, suit, left, right = _person_and_corners(result.alpha)
    assert face > 0.9 and suit > 0.9 and left < 0.05 and right < 0.05
    assert set(result.maps) == {"model_alpha", "mask", "trimap", "refined_alpha"}
    trimap = result.maps["trimap"].array
    assert set(np.round(np.unique(trimap) * 255).astype(int)) == {0, 128, 255}
    known = trimap != 128 / 255
    np.testing.assert_allclose(result.alpha[known], trimap[known], atol=1e-6)  # closed-form keeps constraints
    assert 0.0 < (result.alpha[~known] * (1 - result.alpha[~known])).max()  # soft values in the band


def test_pipeline_band_scales_with_large_images():
    params = {"erode": 10, "dilate": 6, "scale_band": True}
    from matting.adapters import pipelines
    assert pipelines.band_widths(params, (600, 800)) == (10, 6)
    assert pipelines.band_widths(params, (3000, 4096)) == (40, 24)
    assert pipelines.band_widths({**params, "scale_band": False}, (3000, 4096)) == (10, 6)
