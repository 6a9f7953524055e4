"""The fast inference path (``matting.models.accelerate``) against the reference forward.

On the fidelity fixtures' inputs, with the recipe's deterministic weights (../shared/fidelity), and
on random inputs at another size (the onnx graphs have dynamic spatial axes), the fast path of every
network must agree with the reference forward (the official arithmetic, what the fidelity tests
check):

* the 8-bit alpha (the official scripts' ``(alpha * 255)`` truncation; U²-Net's normPRED first)
  differs by at most 1 level, on at most 0.1 % of the pixels;
* every float output differs by at most ``FLOAT_TOLERANCE[arch]`` (absolute): the fast paths only
  re-associate sums (BatchNorm folded in float64 then rounded, channels_last or onnxruntime
  convolution order), so the bound is float32 rounding of these networks' activations, with margin.

The first run on a machine exports the onnx graphs (about 10–25 s each on 2 busy cores); later runs
find them in the cache (``<cache dir>/onnx``), as the app does.
"""
import numpy as np
import pytest
import torch

from matting import models
from matting.adapters import torch_utils
from matting.models.accelerate import BACKENDS, EXPORT_TOLERANCE, accelerate, reference_requested, threads

# Largest accepted |fast − reference| of any float output, per network (recipe weights, fixture inputs).
FLOAT_TOLERANCE = {
    "u2netp": 1e-4,
    "u2net": 1e-4,
    "modnet": 1e-4,
    "dim": 1e-4,
    "bgmv2_refine": 1e-4,
    "sim": 1e-4,
    "sim_classifier": 1e-4,
    "bgmv1": 1e-4,
    "shm": 1e-4,
}
ALPHA_LEVELS = 1            # 8-bit alpha: at most this many levels apart …
ALPHA_PIXEL_FRACTION = 1e-3  # … on at most this fraction of the pixels

# case: (architecture, constructor kwargs, fixture, input names, extra arguments, where the alpha is in
# the outputs (index or key; None: no alpha, the SIM classifier), the recipe's filler for the weights)
CASES = {
    "u2netp": ("u2netp", {}, "u2netp", ["input_x"], (), 0, "fill_"),
    "u2net": ("u2net", {}, "u2net", ["input_x"], (), 0, "fill_"),
    "modnet": ("modnet", {}, "modnet", ["input_img"], (False,), 2, "fill_"),
    "dim": ("dim", {"stage": 1}, "dim", ["input_x"], (), 0, "fill_"),
    "bgmv2_mobilenetv2_sampling": ("bgmv2_refine", dict(backbone="mobilenetv2", backbone_scale=0.25,
                                                        refine_mode="sampling", refine_sample_pixels=4096),
                                   "bgmv2_mobilenetv2_refine_sampling", ["input_src", "input_bgr"], (), 0, "fill_"),
    "bgmv2_resnet50_full": ("bgmv2_refine", dict(backbone="resnet50", backbone_scale=0.25, refine_mode="full"),
                            "bgmv2_resnet50_refine_full", ["input_src", "input_bgr"], (), 0, "fill_"),
    # the adapter's call: forward(image, two_chan_trimap, image_n, trimap_transformed, smap, inputs=None,
    # is_training=False) -> {"alpha": …}
    "sim": ("sim", {}, "sim", ["input_image", "input_two_chan_trimap", "input_image_n", "input_trimap_transformed",
                                "input_smap"], (None, False), "alpha", "fill_sim_"),
    "sim_classifier": ("sim_classifier", {}, "sim_classifier", ["input_x"], (), None, "fill_"),
    "bgmv1": ("bgmv1", {}, "bgmv1", ["input_image", "input_back", "input_seg", "input_multi"], (), 0, "fill_"),
    "shm": ("shm", {}, "shm", ["input_input"], (True,), 1, "fill_"),  # return_raw_alpha, as the adapter calls it
}


def tensors(outputs):
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        return [t for item in outputs.values() for t in tensors(item)]
    if isinstance(outputs, (tuple, list)):
        return [t for item in outputs for t in tensors(item)]
    return []


def alpha8(arch, alpha):
    """The 8-bit alpha the method would write from this network output."""
    alpha = alpha[0, 0].float().numpy()
    if arch.startswith("u2net"):
        from matting.adapters.u2net import norm_pred

        alpha = norm_pred(alpha)
    if arch == "bgmv1":  # tanh output in [-1, 1]
        alpha = (alpha + 1) / 2
    return (np.clip(alpha, 0, 1) * np.float32(255)).astype(np.uint8)


def assert_fast_matches_reference(arch, reference, fast, alpha_index):
    assert type(reference) is type(fast) and len(reference) == len(fast)
    if isinstance(reference, dict):
        assert list(reference) == list(fast)
    else:
        for ref_item, fast_item in zip(reference, fast):  # same structure: None / 0 where the reference has them
            if not isinstance(ref_item, torch.Tensor) and not isinstance(ref_item, (list, tuple)):
                assert fast_item == ref_item
    assert len(tensors(reference)) == len(tensors(fast))
    for ref_tensor, fast_tensor in zip(tensors(reference), tensors(fast)):
        assert isinstance(fast_tensor, torch.Tensor) and fast_tensor.shape == ref_tensor.shape
        difference = float((fast_tensor.float() - ref_tensor.float()).abs().max())
        assert difference <= FLOAT_TOLERANCE[arch], f"{arch}: max |Δ| {difference:.3g}"
    if alpha_index is None:
        return
    a, b = alpha8(arch, reference[alpha_index]).astype(int), alpha8(arch, fast[alpha_index]).astype(int)
    levels = np.abs(a - b)
    assert levels.max() <= ALPHA_LEVELS
    assert (levels > 0).mean() <= ALPHA_PIXEL_FRACTION


@pytest.fixture(scope="module")
def networks(request, recipe):
    built = {}

    def get(case):
        if case not in built:
            arch, kwargs, *_, filler = CASES[case]
            model = models.create(arch, **kwargs)
            source = request.getfixturevalue("recipe_sim") if filler == "fill_sim_" else recipe
            getattr(source, filler)(model)
            built[case] = model.eval()
        return built[case]

    return get


@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_matches_reference_on_fixture_inputs(fidelity_dir, networks, case, monkeypatch):
    monkeypatch.delenv("MATTING_REFERENCE", raising=False)
    monkeypatch.delenv("MATTING_BACKEND", raising=False)
    arch, _, fixture_name, input_names, extra, alpha_index, _ = CASES[case]
    fixture = np.load(fidelity_dir / f"{fixture_name}.npz")
    inputs = (*(torch.from_numpy(fixture[name]) for name in input_names), *extra)
    model = networks(case)
    fast = accelerate(model, *inputs)
    expected_backend = models.get_architecture(arch).fast_backend or "torch"
    assert fast.backend == expected_backend, fast.note
    with torch.inference_mode():
        reference = model(*inputs)
    assert_fast_matches_reference(arch, reference, fast(*inputs), alpha_index)


@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_matches_reference_on_random_inputs_of_another_size(fidelity_dir, networks, case, monkeypatch):
    monkeypatch.delenv("MATTING_REFERENCE", raising=False)
    monkeypatch.delenv("MATTING_BACKEND", raising=False)
    arch, _, fixture_name, input_names, extra, alpha_index, _ = CASES[case]
    fixture = np.load(fidelity_dir / f"{fixture_name}.npz")
    example = (*(torch.from_numpy(fixture[name]) for name in input_names), *extra)
    model = networks(case)
    fast = accelerate(model, *example)
    generator = torch.Generator().manual_seed(3)
    height, width = 160, 224
    inputs = []
    for x in example:
        if isinstance(x, torch.Tensor):
            low, high = float(x.min()), float(x.max())
            inputs.append(low + (high - low) * torch.rand((1, x.shape[1], height, width), generator=generator))
        else:
            inputs.append(x)
    with torch.inference_mode():
        reference = model(*inputs)
    assert_fast_matches_reference(arch, reference, fast(*inputs), alpha_index)


def test_reference_switch_and_forced_backends(monkeypatch):
    model = models.create("dim", stage=1).eval()
    x = torch.rand(1, 4, 64, 64)
    monkeypatch.setenv("MATTING_REFERENCE", "1")
    assert reference_requested()
    assert accelerate(model, x).backend == "reference"
    monkeypatch.delenv("MATTING_REFERENCE")
    assert accelerate(model, x, backend="reference").backend == "reference"
    fast = accelerate(model, x, backend="torch")
    assert fast.backend == "torch"
    pred, zero = fast(x)
    assert zero == 0 and pred.shape == (1, 1, 64, 64) and pred.is_contiguous()
    assert set(BACKENDS) == {"reference", "torch", "onnxruntime", "openvino"}
    with pytest.raises(Exception, match="backend"):
        accelerate(model, x, backend="tensorrt")


def test_modnet_inference_flag_keeps_none_outputs():
    model = models.create("modnet").eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    semantic, detail, matte = accelerate(model, x, True, backend="torch")(x, True)
    assert semantic is None and detail is None and matte.shape == (1, 1, 64, 64)


def test_threads_env_override(monkeypatch):
    monkeypatch.setenv("MATTING_THREADS", "3")
    assert threads() == 3
    monkeypatch.delenv("MATTING_THREADS")
    assert threads() >= 1


def test_torch_utils_run_caches_per_signature_and_honours_reference(monkeypatch):
    monkeypatch.delenv("MATTING_REFERENCE", raising=False)
    model = models.create("dim", stage=1).eval()
    x = torch.rand(1, 4, 64, 64)
    first = torch_utils.run(model, x)
    torch_utils.run(model, torch.rand(1, 4, 96, 64))  # another size: same callable
    assert len(torch_utils.accelerated_for(model)) == 1
    monkeypatch.setenv("MATTING_REFERENCE", "1")
    with torch.inference_mode():
        expected = model(x)
    torch.testing.assert_close(torch_utils.run(model, x)[0], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(first[0], expected[0], rtol=0, atol=FLOAT_TOLERANCE["dim"])


def test_export_tolerance_is_tight():
    assert EXPORT_TOLERANCE <= 1e-3

