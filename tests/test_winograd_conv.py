"""``matting.models.winograd_conv``: Winograd F(4×4, 3×3) convolutions for the torch backend (DIM's fast path).

The bound: |Winograd − float64 convolution| ≤ ``RELATIVE_BOUND`` × the largest sum of absolute terms
(``conv(|x|, |w|) + |b|``). Measured worst 2.2e-6 (about 36 float32 ulps) over 64–512 channels and
ReLU, Gaussian and [0, 100) inputs; oneDNN's direct sum is about 10× tighter.
"""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from matting import models
from matting.models import dim, winograd_conv
from matting.models.fft_conv import FFTConv2d, with_fft_convolutions
from matting.models.winograd_conv import WinogradConv2d, kernel_transform, winograd_conv3x3, with_winograd_convolutions

RELATIVE_BOUND = 1e-5


def assert_close_to_exact(x, weight, bias, padding, result):
    exact = F.conv2d(x.double(), weight.double(), None if bias is None else bias.double(), padding=padding)
    magnitude = F.conv2d(x.double().abs(), weight.double().abs(), None if bias is None else bias.double().abs(),
                         padding=padding)
    assert result.shape == exact.shape and result.dtype == torch.float32
    error = float((result.double() - exact).abs().max())
    assert error <= RELATIVE_BOUND * float(magnitude.max()) + 1e-30, error


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 3), in_channels=st.integers(1, 20), out_channels=st.integers(1, 20),
       height=st.integers(1, 29), width=st.integers(1, 29), padding=st.sampled_from([0, 1]),
       with_bias=st.booleans(), scale=st.sampled_from([1e-3, 1.0, 1e3]), seed=st.integers(0, 2 ** 16))
def test_matches_a_float64_convolution_for_any_shape(batch, in_channels, out_channels, height, width, padding,
                                                   with_bias, scale, seed):
    if padding == 0 and (height < 3 or width < 3):
        height, width = max(height, 3), max(width, 3)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, in_channels, height, width, generator=generator) * scale
    weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator)
    bias = torch.randn(out_channels, generator=generator) if with_bias else None
    assert_close_to_exact(x, weight, bias, padding, winograd_conv3x3(x, kernel_transform(weight), bias, padding))


@pytest.mark.parametrize("channels,size", [(256, (80, 80)), (512, (19, 25))])
def test_wide_layers_like_dims_stay_within_the_bound(channels, size):
    generator = torch.Generator().manual_seed(channels)
    x = torch.relu(torch.randn(1, channels, *size, generator=generator))
    weight = torch.randn(channels, channels, 3, 3, generator=generator) * (2 / (9 * channels)) ** 0.5
    bias = torch.randn(channels, generator=generator) * 0.1
    assert_close_to_exact(x, weight, bias, 1, winograd_conv3x3(x, kernel_transform(weight), bias, 1))


def test_bands_of_tile_rows_cover_the_whole_output(monkeypatch):
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 24, 61, 37, generator=generator)
    weight = torch.randn(16, 24, 3, 3, generator=generator)
    products = []
    original = torch.matmul
    monkeypatch.setattr(torch, "matmul", lambda *args: products.append(1) or original(*args))
    monkeypatch.setattr(winograd_conv, "BAND_BYTES", 1)  # one tile row per band
    banded = winograd_conv3x3(x, kernel_transform(weight), None)
    assert len(products) == 16  # 61 rows of output: 16 rows of 4×4 tiles
    assert_close_to_exact(x, weight, None, 1, banded)


def test_an_input_without_a_3x3_output_is_refused():
    with pytest.raises(ValueError, match="no 3×3 output"):
        winograd_conv3x3(torch.zeros(1, 2, 2, 5), kernel_transform(torch.zeros(3, 2, 3, 3)), None, padding=0)


def layer(cin=8, cout=6, **options):
    torch.manual_seed(cin)
    return nn.Conv2d(cin, cout, 3, padding=options.pop("padding", 1), **options).eval()


@pytest.fixture
def winograd_calls(monkeypatch):
    calls = []
    original = winograd_conv.winograd_conv3x3

    def counted(x, *args, **kwargs):
        calls.append(tuple(x.shape))
        return original(x, *args, **kwargs)

    monkeypatch.setattr(winograd_conv, "winograd_conv3x3", counted)
    return calls


def test_the_module_convolves_by_winograd_only_within_its_pixel_range(winograd_calls):
    conv = layer()
    module = WinogradConv2d(conv, min_pixels=10 * 10, max_pixels=20 * 20)
    small, inside, large = torch.rand(1, 8, 9, 9), torch.rand(1, 8, 12, 30), torch.rand(1, 8, 21, 20)
    with torch.inference_mode():
        for x in (small, inside, large):
            torch.testing.assert_close(module(x), conv(x), rtol=0, atol=1e-5)
    assert winograd_calls == [tuple(inside.shape)]


def test_calls_it_cannot_run_go_to_the_wrapped_convolution(winograd_calls):
    conv = layer()
    module = WinogradConv2d(conv, 0, 10 ** 6)
    x = torch.rand(1, 8, 16, 16)
    grad = module(x.requires_grad_())  # autograd on: the ordinary convolution, with its gradient
    grad.sum().backward()
    assert x.grad is not None and conv.weight.grad is not None
    with torch.inference_mode():
        expected = conv(x.detach())
        conv.double()  # float64 weights and input: not this module's arithmetic
        torch.testing.assert_close(module(x.detach().double()).float(), expected)
    assert winograd_calls == []


@pytest.mark.parametrize("options", [dict(stride=2), dict(dilation=2, padding=2), dict(groups=2),
                                     dict(padding=2), dict(padding_mode="reflect")])
def test_convolutions_it_cannot_run_are_refused_and_left_alone(options):
    conv = layer(**options)
    assert not WinogradConv2d.supports(conv)
    with pytest.raises(ValueError, match="cannot run"):
        WinogradConv2d(conv, 0, 1)
    model = nn.Sequential(conv)
    assert type(with_winograd_convolutions(model, lambda c: (0, 10 ** 6))[0]) is nn.Conv2d


def test_with_winograd_convolutions_wraps_the_chosen_layers_of_a_copy():
    model = nn.Sequential(layer(8, 8), nn.ReLU(), layer(8, 32), nn.Conv2d(32, 4, 5, padding=2))
    fft = with_fft_convolutions(model, {3: 0})
    copied = with_winograd_convolutions(fft, lambda conv: (4, 400) if conv.out_channels >= 32 else None)
    assert isinstance(copied[0], FFTConv2d)  # not chosen
    assert isinstance(copied[2], WinogradConv2d) and isinstance(copied[2].conv, FFTConv2d)
    assert type(copied[3]) is nn.Conv2d  # 5×5
    assert not any(isinstance(m, WinogradConv2d) for m in fft.modules())
    x = torch.rand(1, 8, 15, 15)
    with torch.inference_mode():
        torch.testing.assert_close(copied(x), model(x), rtol=0, atol=1e-5)


def test_dims_fast_path_sends_its_wide_encoder_layers_to_winograd():
    fast = dim.fast_module(models.create("dim", stage=1).eval()).module
    wrapped = sorted(name for name, m in fast.named_modules() if isinstance(m, WinogradConv2d))
    assert wrapped == ["conv3_2", "conv3_3", "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3",
                       "conv6_1"]
    # conv6_1 (1/32 scale: 10² at 320²) is below the range and keeps its own convolution
    assert fast.conv6_1.min_pixels > 10 * 10
