"""BGMv2's refinement patches: how the reference refiner cuts and pastes them, and how the fast
path cuts the same ones without the reference's full-size maps.

:func:`crop_patches` and :func:`replace_patches` are the reference's (``model/refiner.py``'s
``unfold`` crop and indexed write-back). The torch backend's copy of ``MattingRefine``
(:func:`fast_module`, declared by :mod:`matting.models.bgmv2` and used by
:func:`matting.models.accelerate`) is folded, channels_last, and refines with
:class:`WindowedRefiner`. Its layers are the reference refiner's own; only where the windows come
from changes. ``tests/test_bgmv2_windows.py`` checks every window against the reference crop and
the network against the reference; ``tests/test_accelerate.py`` bounds it on the fixtures.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .fuse import fold_batchnorm, to_channels_last

__all__ = ["CoarseNetwork", "WindowedRefiner", "crop_patches", "fast_module", "replace_patches", "resize_bilinear"]


# --------------------------------------------------------------------------- the reference's crop and paste

def resize_bilinear(x: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


def crop_patches(image: torch.Tensor, index, size: int, margin: int) -> torch.Tensor:
    """Cut (P, C, size + 2*margin, size + 2*margin) patches at grid positions ``index``.

    Patch ``p`` covers rows ``index[1][p] * size - margin`` onward (zero padding outside).
    """
    if margin:
        image = F.pad(image, (margin,) * 4)
    window = size + 2 * margin
    # (B, C, rows, cols, window, window) -> (B, rows, cols, C, window, window)
    grid = image.unfold(2, window, size).unfold(3, window, size).permute(0, 2, 3, 1, 4, 5)
    batch, row, col = index
    return grid[batch, row, col]


def replace_patches(image: torch.Tensor, patches: torch.Tensor, index) -> torch.Tensor:
    """Write (P, C, s, s) ``patches`` into ``image`` (in place) at grid positions ``index``."""
    b, c, h, w = image.shape
    size = patches.shape[-1]
    grid = image.view(b, c, h // size, size, w // size, size).permute(0, 2, 4, 1, 3, 5)
    batch, row, col = index
    grid[batch, row, col] = patches
    return image


# --------------------------------------------------------------------------- the fast path's windows

class WindowedRefiner(nn.Module):
    """The fast path's :class:`Refiner` (``fast_module``): the same patches from the same layers,
    without building the full-size maps the reference cuts them from.

    The reference concatenates source and background at full size (6 × H × W), resizes the 36
    coarse channels (hidden, alpha, foreground) to half size and zero-pads both, then cuts one
    8×8 window per selected position from each. Here every window is gathered straight from its
    unpadded map, zeros outside, and the coarse windows are interpolated from a 5×5 window of
    the quarter-size map: at exactly 2× (``backbone_scale`` 1/4) bilinear interpolation is local,
    0.75 / 0.25 of the two nearest quarter-size samples per axis, with the border sample held
    (replicate padding, what the reference's index clamping does): a depthwise transposed
    convolution.

    Measured on 2 cores, mobilenetv2 HD, 5000 patches (one process, the parts timed alone): the
    coarse resize, padding and crop took 55 + 50 ms there and 19 ms here, the full-size
    concatenation, padding and crop 12 + 27 ms and 10 ms here; the whole network 427 against 293 ms.
    Then conv1 and conv3 split instead of joining their input windows, and the coarse alpha and
    foreground up-sampled in NCHW: the whole fast network 0.58–0.61× → 0.49–0.56× the reference
    (mobilenetv2 HD, two runs each, 9 interleaved rounds).
    The results differ from the reference's by float rounding (the interpolation weights are
    applied in another order; ``tests/test_bgmv2_windows.py`` checks the windows and the network,
    ``tests/test_accelerate.py`` bounds the network on the fixtures). Other configurations (``full`` mode, 1×1 kernels, another backbone
    scale) run the reference refiner's code.
    """

    def __init__(self, refiner: nn.Module):
        super().__init__()
        self.refiner = refiner
        # conv1 and conv3 read a concatenation of windows (coarse maps + source/background at half
        # size, refined features + source/background at full size); the concatenation of 5000 HD
        # windows alone took 30 ms. A convolution of a concatenation is the sum of the convolutions
        # of its parts with the matching slices of the kernel, so the windows are never joined.
        source_background = 6  # the last input channels of both: source and background windows
        self.conv1_parts = _split_input_channels(refiner.conv1, refiner.conv1.in_channels - source_background)
        self.conv3_parts = _split_input_channels(refiner.conv3, refiner.conv3.in_channels - source_background)

    def forward(self, src, bgr, pha, fgr, err, hid):
        refiner = self.refiner
        full_h, full_w = src.shape[2:]
        quarter = (full_h // 4, full_w // 4)
        if refiner.mode == "full" or refiner.kernel_size != 3 or tuple(hid.shape[2:]) != quarter:
            return refiner(src, bgr, pha, fgr, err, hid)
        ref = refiner.select_refinement_regions(resize_bilinear(err, quarter))
        index = torch.nonzero(ref.squeeze(1), as_tuple=True)
        # NCHW: 4 channels up-sampled to full size took twice as long in channels_last (20 against 10 ms).
        out = resize_bilinear(torch.cat([pha, fgr], dim=1).contiguous(), (full_h, full_w))
        if index[0].numel() > 0:
            half = (full_h // 2, full_w // 2)
            coarse = _doubled_windows(torch.cat([hid, pha, fgr], dim=1), index)
            src_bgr_half = torch.cat([_windows(resize_bilinear(src, half), index, 2, 3),
                                      _windows(resize_bilinear(bgr, half), index, 2, 3)], dim=1)
            x = refiner.relu(refiner.bn1(_convolve_parts(self.conv1_parts, coarse, src_bgr_half)))
            x = refiner.relu(refiner.bn2(refiner.conv2(x)))  # the rest of Refiner._first_stage
            x = F.interpolate(x, 8, mode="nearest")
            src_bgr_full = torch.cat([_windows(src, index, 4, 2), _windows(bgr, index, 4, 2)], dim=1)
            x = refiner.relu(refiner.bn3(_convolve_parts(self.conv3_parts, x, src_bgr_full)))
            x = refiner.conv4(x)  # the rest of Refiner._second_stage
            out = replace_patches(out, x, index)
        return out[:, :1], out[:, 1:], ref


def _split_input_channels(conv: nn.Conv2d, first: int) -> tuple:
    """``conv``'s kernel cut after input channel ``first``: (first kernel, bias or None, the rest),
    contiguous copies, for :func:`_convolve_parts`. Made where the fast module is built, on the
    kernel's device."""
    weight = conv.weight.detach()
    bias = None if conv.bias is None else conv.bias.detach().clone()
    return weight[:, :first].clone(), bias, weight[:, first:].clone()


def _convolve_parts(parts, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``conv(torch.cat([a, b], 1))`` (unpadded, stride 1) as ``conv_a(a) + conv_b(b)``."""
    first, bias, rest = parts
    out = F.conv2d(a, first, bias)
    return out.add_(F.conv2d(b, rest))


def _window_positions(index, size: int, margin: int, height: int, width: int):
    """Rows and columns ((P, window) each) of the windows at grid positions ``index``, and the
    (P, window, window) mask of those inside the height × width map."""
    _, row, col = index
    steps = torch.arange(size + 2 * margin, device=row.device)
    rows = row[:, None] * size - margin + steps
    cols = col[:, None] * size - margin + steps
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    return rows, cols, inside


def _gather(image: torch.Tensor, batch, rows, cols) -> torch.Tensor:
    """(P, C, w, w) pixels of ``image`` at ``rows`` × ``cols`` ((P, w) each, inside the image) of
    images ``batch``: one row gather of the (pixels, channels) view (channels_last memory)."""
    channels, height, width = image.shape[1:]
    flat = (batch[:, None, None] * height + rows[:, :, None]) * width + cols[:, None, :]
    pixels = image.permute(0, 2, 3, 1).reshape(-1, channels).index_select(0, flat.reshape(-1))
    return pixels.view(*flat.shape, channels).permute(0, 3, 1, 2)


def _zero_outside(windows: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Zero ``windows`` (P, C, w, w; in place) where ``inside`` (P, w, w) is False: the reference's
    zero padding. Only the few windows at the border are touched."""
    outside = ~inside
    edge = outside.flatten(1).any(1).nonzero().squeeze(1)
    if edge.numel():
        windows[edge] = windows[edge].masked_fill(outside[edge][:, None], 0.0)
    return windows


def _windows(image: torch.Tensor, index, size: int, margin: int) -> torch.Tensor:
    """:func:`crop_patches` (zero padding outside) without padding ``image``: (P, C, w, w)."""
    height, width = image.shape[2:]
    rows, cols, inside = _window_positions(index, size, margin, height, width)
    windows = _gather(image, index[0], rows.clamp(0, height - 1), cols.clamp(0, width - 1))
    return _zero_outside(windows, inside)


# Bilinear 2× up-sampling (align_corners=False) as a transposed convolution: output 2m + 1 takes
# 0.75 of input m and 0.25 of m + 1, output 2m + 2 takes 0.25 and 0.75 (per axis).
_DOUBLING_TAPS = (0.25, 0.75, 0.75, 0.25)


def _doubled_windows(quarter: torch.Tensor, index) -> torch.Tensor:
    """``crop_patches(resize_bilinear(quarter, 2× its size), index, 2, 3)`` from 5×5 windows of
    ``quarter``: (P, C, 8, 8).

    A window's half-size rows 2·row − 3 … 2·row + 4 read quarter rows row − 2 … row + 2: half-size
    row 2m reads quarter rows m − 1 and m with weights 0.25 and 0.75, row 2m + 1 reads m and m + 1
    with 0.75 and 0.25, the border row held (replicate padding: the reference clamps its indices).
    One depthwise transposed convolution (stride 2, 4×4 taps) does both axes."""
    channels, height, width = quarter.shape[1:]
    padded = F.pad(quarter, (2, 2, 2, 2), mode="replicate")  # quarter row r is row r + 2 here
    _, row, col = index
    steps = torch.arange(5, device=row.device)
    taps = _gather(padded, index[0], row[:, None] + steps, col[:, None] + steps)
    axis = torch.tensor(_DOUBLING_TAPS, dtype=quarter.dtype, device=quarter.device)
    weight = (axis[:, None] * axis[None, :]).expand(channels, 1, 4, 4).contiguous()
    windows = F.conv_transpose2d(taps, weight, stride=2, padding=2, groups=channels)
    return _zero_outside(windows, _window_positions(index, 2, 3, 2 * height, 2 * width)[2])


class _ChannelsLastInputs(nn.Module):
    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, *inputs):
        return self.network(*to_channels_last(inputs))


class CoarseNetwork(nn.Module):
    """BGMv2's encoder, ASPP and decoder (``Base.encode_decode``): 6 channels at the backbone
    resolution → the 37 raw output channels. What the fast path exports as a graph; it shares the
    given network's modules (no copy)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.backbone, self.aspp, self.decoder = network.backbone, network.aspp, network.decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, *shortcuts = self.backbone(x)
        return self.decoder(self.aspp(x), *shortcuts)


class _GraphCoarse(nn.Module):
    """``MattingRefine``'s forward with its coarse network run as a graph and the windowed refiner in
    torch (channels_last)."""

    def __init__(self, network: nn.Module, coarse: nn.Module):
        super().__init__()
        self.network, self.coarse = network, coarse

    def forward(self, src, bgr):
        src, bgr = to_channels_last((src, bgr))
        return self.network.matte(src, bgr, self._coarse, self.network.refiner)

    def _coarse(self, x):
        return self.coarse(x).contiguous(memory_format=torch.channels_last)


def fast_module(model, *example_inputs):
    """The torch backend's BGMv2: BatchNorms folded, channels_last, :class:`WindowedRefiner`, and,
    on the CPU, MattingRefine's encoder–decoder as a graph on OpenVINO
    (:func:`matting.models.graph_module.graph_module`; onnxruntime without it, torch where neither
    can run it or ``MATTING_BACKEND=torch``).

    Why the split: the refiner's patch choice is data-dependent (a top-k over the error map) and is
    not exported, but the encoder–decoder is a static graph, and OpenVINO ran it at 0.88× (ResNet-50
    and ResNet-101 HD) and 0.85× (MobileNetV2) the folded channels_last torch copy; the whole
    network, measured interleaved against the reference (2 cores): ResNet-50 HD 0.76 → 0.68×,
    ResNet-101 0.81 → 0.72×, MobileNetV2 0.59 → 0.58×."""
    from .graph_module import graph_module

    folded = fold_batchnorm(model, *example_inputs).to(memory_format=torch.channels_last)
    if not hasattr(folded, "refiner"):  # MattingBase (no refiner)
        return _ChannelsLastInputs(folded)
    folded.refiner = WindowedRefiner(folded.refiner)
    on_cpu = all(p.device.type == "cpu" for p in model.parameters()) and all(
        x.device.type == "cpu" for x in example_inputs if isinstance(x, torch.Tensor))
    coarse = None
    if on_cpu:
        coarse_example = torch.cat(model.backbone_inputs(*example_inputs[:2]), dim=1)
        coarse = graph_module(CoarseNetwork(model), coarse_example)
    if coarse is None:
        return _ChannelsLastInputs(folded)
    del folded.backbone, folded.aspp, folded.decoder  # the graph has them; the reference keeps its own
    return _GraphCoarse(folded, coarse)
