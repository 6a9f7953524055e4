"""BGMv2's fast refiner (models.bgmv2_patches.WindowedRefiner) cuts the same windows as the reference
refiner, at the border too, and the whole fast network stays within float rounding of it."""
import pytest
import torch

from matting.models import bgmv2, bgmv2_patches


def _index(batch, rows, cols, count, seed):
    """Grid positions with every corner and edge of every image among them."""
    g = torch.Generator().manual_seed(seed)
    picked = torch.zeros(batch, rows, cols, dtype=torch.bool)
    picked.view(-1)[torch.randperm(batch * rows * cols, generator=g)[:count]] = True
    picked[:, [0, -1], :] = picked[:, :, [0, -1]] = False
    picked[:, 0, 0] = picked[:, -1, -1] = picked[:, 0, -1] = picked[:, -1, 3] = True
    return torch.nonzero(picked, as_tuple=True)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("size,margin", [(2, 3), (4, 2)])
def test_windows_equal_the_reference_crop(layout, size, margin):
    image = torch.rand(2, 5, 24, 36).contiguous(memory_format=layout) + 0.5
    index = _index(2, 24 // size, 36 // size, 30, size)
    expected = bgmv2._crop_patches(image, index, size, margin)
    assert torch.equal(bgmv2_patches._windows(image, index, size, margin), expected)


def test_doubled_windows_equal_the_crop_of_the_resized_map():
    quarter = torch.rand(2, 36, 15, 20).contiguous(memory_format=torch.channels_last) + 0.5
    index = _index(2, 15, 20, 40, 0)
    expected = bgmv2._crop_patches(bgmv2._resize_bilinear(quarter, (30, 40)), index, 2, 3)
    ours = bgmv2_patches._doubled_windows(quarter, index)
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=0, atol=3e-7)
    assert torch.equal(ours == 0, expected == 0)  # exact zeros outside the map


@pytest.mark.parametrize("mode", ["sampling", "thresholding", "full"])
def test_fast_network_matches_the_reference(mode):
    torch.manual_seed(0)
    model = bgmv2.MattingRefine("mobilenetv2", refine_mode=mode, refine_sample_pixels=4000,
                                refine_threshold=0.01).eval()
    for module in model.modules():  # non-trivial statistics, so the folding is exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    src, bgr = torch.rand(1, 3, 128, 160), torch.rand(1, 3, 128, 160)
    fast = bgmv2.fast_module(model, src, bgr).eval()
    assert isinstance(fast.network.refiner, bgmv2_patches.WindowedRefiner)
    with torch.inference_mode():
        expected, ours = model(src, bgr), fast(src, bgr)
    assert torch.equal(expected[5], ours[5])  # the same patches refined
    if mode != "full":
        assert expected[5].sum() > 0
    for a, b in zip(expected, ours):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", ["", "onnxruntime", "torch"])
def test_the_coarse_network_runs_as_a_graph_unless_torch_is_asked_for(backend, monkeypatch, tmp_path):
    from matting.models import runtime

    monkeypatch.setenv("MATTING_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MATTING_REFERENCE", raising=False)
    monkeypatch.setenv("MATTING_BACKEND", backend)
    torch.manual_seed(1)
    model = bgmv2.MattingRefine("mobilenetv2", refine_mode="sampling", refine_sample_pixels=4000).eval()
    src, bgr = torch.rand(1, 3, 128, 160), torch.rand(1, 3, 128, 160)
    fast = bgmv2.fast_module(model, src, bgr).eval()
    expected_engine = {"": "openvino" if runtime.engine_available("openvino") else "onnxruntime",
                       "onnxruntime": "onnxruntime", "torch": None}[backend]
    if expected_engine is None:
        assert not hasattr(fast, "coarse") and hasattr(fast.network, "backbone")
    else:
        assert fast.coarse.backend == expected_engine
        assert not hasattr(fast.network, "backbone")  # the folded copy's encoder is dropped: the graph has it
    other = torch.rand(1, 3, 96, 128), torch.rand(1, 3, 96, 128)  # another size than the example
    for inputs in ((src, bgr), other):
        with torch.inference_mode():
            expected, ours = model(*inputs), fast(*inputs)
        assert torch.equal(expected[5], ours[5])
        for a, b in zip(expected, ours):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
