"""``matting.models.fft_conv``: NNPACK FFT convolutions for the torch backend (DIM's fast path)."""
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from matting import models
from matting.models import fft_conv
from matting.models.accelerate import accelerate
from matting.models.fft_conv import FFTConv2d, InWorkerThread, with_fft_convolutions

needs_nnpack = pytest.mark.skipif(not fft_conv.available(), reason="this torch build has no usable NNPACK")


@pytest.fixture
def nnpack_calls(monkeypatch):
    """Counts the NNPACK convolutions run while the test runs."""
    calls = []
    original = torch._nnpack_spatial_convolution

    def counted(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", counted)
    return calls


def conv(cin, cout, kernel, bias=True, **options):
    torch.manual_seed(kernel * 100 + cin)
    layer = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=bias, **options).eval()
    nn.init.normal_(layer.weight, std=(2 / (cin * kernel * kernel)) ** 0.5)
    return layer


@needs_nnpack
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("shape", [(1, 16, 40, 40), (2, 8, 33, 17)])
def test_fft_matches_a_float64_convolution_as_closely_as_the_direct_one(kernel, shape, nnpack_calls):
    layer = conv(shape[1], 24, kernel)
    x = torch.relu(torch.randn(shape, generator=torch.Generator().manual_seed(1)))
    with torch.inference_mode():
        exact = F.conv2d(x.double(), layer.weight.double(), layer.bias.double(), padding=kernel // 2)
        direct = layer(x)
        fft = FFTConv2d(layer, min_pixels=0)(x)
    assert nnpack_calls == [shape]
    assert fft.shape == direct.shape
    # NNPACK's own 3×3 algorithm (Winograd F(6,3)) is off by ~5e-5 here; FFT by ~1e-6, like oneDNN.
    direct_error = float((direct.double() - exact).abs().max())
    assert float((fft.double() - exact).abs().max()) <= max(4 * direct_error, 5e-6)


@needs_nnpack
@pytest.mark.parametrize("kernel", [3, 7])
def test_fft_of_an_unpadded_convolution_after_a_reflection_pad(kernel, nnpack_calls):
    """BGMv1's layers: reflection pad, then a convolution without padding (a 3×3 one grown to 5×5
    needs one pixel of zero padding for the same output)."""
    torch.manual_seed(kernel)
    layer = nn.Conv2d(8, 12, kernel).eval()
    pad = nn.ReflectionPad2d(kernel // 2)
    x = torch.rand(1, 8, 30, 26)
    with torch.inference_mode():
        padded = pad(x)
        exact = F.conv2d(padded.double(), layer.weight.double(), layer.bias.double())
        fft = FFTConv2d(layer, min_pixels=0)(padded)
    assert nnpack_calls == [tuple(padded.shape)]
    assert fft.shape == (1, 12, 30, 26)
    assert float((fft.double() - exact).abs().max()) <= 5e-6


def test_unequal_padding_is_not_eligible():
    assert not FFTConv2d(nn.Conv2d(4, 4, 3, padding=(1, 0)), 0).eligible
    assert not FFTConv2d(nn.Conv2d(4, 4, 3, padding="same"), 0).eligible


@needs_nnpack
def test_fft_without_bias(nnpack_calls):
    layer = conv(8, 8, 5, bias=False)
    x = torch.rand(1, 8, 20, 20)
    with torch.inference_mode():
        torch.testing.assert_close(FFTConv2d(layer, 0)(x), layer(x), rtol=0, atol=1e-5)
    assert len(nnpack_calls) == 1


def test_falls_back_below_threshold_with_autograd_and_for_strided_convolutions(nnpack_calls):
    layer = conv(8, 8, 3)
    x = torch.rand(1, 8, 16, 16)
    fast = FFTConv2d(layer, min_pixels=17 * 17)
    strided = FFTConv2d(conv(8, 8, 3, stride=2), min_pixels=0)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), layer(x), rtol=0, atol=0)
        assert not strided.eligible and strided(x).shape == (1, 8, 8, 8)
    grad = FFTConv2d(layer, min_pixels=0)(x.requires_grad_())
    grad.sum().backward()
    assert nnpack_calls == [] and x.grad is not None


def test_a_failing_nnpack_call_falls_back_to_the_direct_convolution(monkeypatch, caplog):
    def failing(*args):
        raise RuntimeError("NNPACK SpatialConvolution_updateOutput failed")

    monkeypatch.setattr(fft_conv, "available", lambda: True)
    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", failing)
    layer = conv(8, 8, 5)
    fast = FFTConv2d(layer, min_pixels=0)
    x = torch.rand(1, 8, 12, 12)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), layer(x), rtol=0, atol=0)
        assert not fast.eligible and "convolves directly" in caplog.text
        torch.testing.assert_close(fast(x), layer(x), rtol=0, atol=0)


def test_with_fft_convolutions_swaps_only_the_chosen_kernel_sizes():
    model = nn.Sequential(conv(4, 8, 3), nn.ReLU(), nn.Sequential(conv(8, 8, 5), conv(8, 8, 1)))
    copied = with_fft_convolutions(model, {5: 100})
    assert type(model[0]) is nn.Conv2d and type(model[2][0]) is nn.Conv2d  # the original is unchanged
    assert type(copied[0]) is nn.Conv2d and type(copied[2][1]) is nn.Conv2d
    assert isinstance(copied[2][0], FFTConv2d) and copied[2][0].min_pixels == 100
    torch.testing.assert_close(copied[2][0].weight, model[2][0].weight, rtol=0, atol=0)
    assert copied[2][0].weight.data_ptr() != model[2][0].weight.data_ptr()


@needs_nnpack
@pytest.mark.parametrize("torch_threads", [1, 2])
def test_dim_fast_path_convolves_large_maps_by_fft(nnpack_calls, monkeypatch, torch_threads):
    """FFT for the large maps at any torch thread count (NNPACK's pool is made at every core)."""
    monkeypatch.delenv("MATTING_REFERENCE", raising=False)
    monkeypatch.delenv("MATTING_BACKEND", raising=False)
    monkeypatch.setenv("MATTING_THREADS", str(torch_threads))
    model = models.create("dim", stage=1).eval()
    x = torch.rand(1, 4, 128, 128)
    fast = accelerate(model, x)
    assert fast.backend == "torch"
    assert not any(isinstance(m, FFTConv2d) for m in model.modules())  # the reference keeps its convolutions
    pred, zero = fast(x)
    assert zero == 0 and pred.shape == (1, 1, 128, 128)
    # 3×3 from 64² (1/1 and 1/2 scale: 4 layers), 5×5 from 32² (1/1 … 1/4 and the prediction: 4 layers)
    assert len(nnpack_calls) == 8
    with torch.inference_mode():
        torch.testing.assert_close(pred, model(x)[0], rtol=0, atol=1e-5)


def test_in_worker_thread_keeps_the_callers_modes_and_threads_and_reraises():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append((threading.current_thread() is threading.main_thread(), torch.is_inference_mode_enabled(),
                         torch.is_grad_enabled(), torch.get_num_threads()))
            if x is None:
                raise ValueError("no input")
            return x * 2

    wrapped = InWorkerThread(Probe())
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            out = wrapped(torch.ones(2))
        with torch.no_grad():
            wrapped(torch.ones(2))
    finally:
        torch.set_num_threads(previous)
    assert out.tolist() == [2.0, 2.0] and out.is_inference()
    assert seen == [(False, True, False, 1), (False, False, False, 1)]
    with pytest.raises(ValueError, match="no input"):
        wrapped(None)


class _ThreadProbe(nn.Module):
    """Records the thread of each forward; ``workspace`` bytes are booked as this thread's NNPACK
    workspace estimate, ``barrier`` (if set) makes concurrent forwards wait for each other."""

    def __init__(self, workspace=0, barrier=None):
        super().__init__()
        self.workspace, self.barrier, self.threads = workspace, barrier, []

    def forward(self, x):
        self.threads.append(threading.current_thread())
        fft_conv._convolved.largest = self.workspace / fft_conv.WORKSPACE_PER_MAP_BYTE
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        return x + 1


def test_worker_thread_is_kept_between_forwards_with_a_small_workspace():
    probe = _ThreadProbe(workspace=1024)
    wrapped = InWorkerThread(probe)
    for _ in range(3):
        assert wrapped(torch.zeros(1)).item() == 1.0
    assert len({thread.ident for thread in probe.threads}) == 1
    assert probe.threads[0] is not threading.current_thread() and probe.threads[0].is_alive()


def test_worker_thread_ends_after_a_forward_whose_workspace_is_too_large_to_keep():
    probe = _ThreadProbe(workspace=fft_conv.KEEP_WORKSPACE_BYTES + 1)
    wrapped = InWorkerThread(probe)
    wrapped(torch.zeros(1))
    wrapped(torch.zeros(1))
    first, second = probe.threads
    assert first is not second
    first.join(timeout=10)
    assert not first.is_alive()  # its NNPACK workspace went with it


def test_concurrent_forwards_run_side_by_side_in_workers_of_their_own():
    probe = _ThreadProbe(barrier=threading.Barrier(2))  # each forward waits until the other has started
    wrapped = InWorkerThread(probe)
    outputs = []
    callers = [threading.Thread(target=lambda: outputs.append(wrapped(torch.zeros(1)).item())) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=20)
    assert outputs == [1.0, 1.0]
    assert probe.threads[0] is not probe.threads[1]


@needs_nnpack
def test_bgmv1_fast_path_folds_and_convolves_large_maps_by_fft(nnpack_calls, monkeypatch):
    """At 256²: three 7×7 stems and two 7×7 output layers (256²) and the four upsampling 3×3
    convolutions (128² and 256²) by FFT; the residual blocks (64²) directly. The motion encoder's
    stem never runs: its output is unused (official bug kept), and the fast path skips it."""
    monkeypatch.delenv("MATTING_REFERENCE", raising=False)
    monkeypatch.delenv("MATTING_BACKEND", raising=False)
    torch.manual_seed(0)
    model = models.create("bgmv1").eval()
    for module in model.modules():  # BatchNorm statistics that folding must carry over
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    generator = torch.Generator().manual_seed(1)
    inputs = tuple(torch.rand(1, c, 256, 256, generator=generator) * 2 - 1 for c in (3, 3, 1, 4))
    fast = accelerate(model, *inputs)
    assert fast.backend == "torch"
    nnpack_calls.clear()
    alpha, foreground = fast(*inputs)
    stems = [(1, c, 262, 262) for c in (3, 3, 1)] + [(1, 64, 262, 262)] * 2  # reflection-padded by 3
    upsampling = [(1, 256, 128, 128)] * 2 + [(1, 128, 256, 256), (1, 256, 256, 256)]  # zero padding inside
    assert sorted(nnpack_calls) == sorted(stems + upsampling)
    with torch.inference_mode():
        reference = model(*inputs)
    torch.testing.assert_close(alpha, reference[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(foreground, reference[1], rtol=0, atol=1e-5)


def test_an_idle_worker_of_another_process_is_never_handed_out(monkeypatch):
    """After a fork the parent's idle workers are not threads of the child: they are skipped."""
    stale = fft_conv._WorkerThread()
    stale.pid = -1  # as if made by the parent before a fork
    monkeypatch.setattr(fft_conv, "_idle_workers", [stale])
    fresh = fft_conv._take_worker()
    assert fresh is not stale and fresh.pid == fft_conv.os.getpid()
    assert fft_conv._idle_workers == []
    fresh.retire()
    stale.retire()
