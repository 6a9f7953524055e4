"""3×3 convolutions by Winograd's minimal filtering F(4×4, 3×3), for the torch backend's fast path.

A stride-1 3×3 convolution computes each 4×4 block of outputs from a 6×6 tile of input with 36
multiplications per input/output channel pair where a direct convolution needs 144 (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", CVPR 2016). The tile and the kernel are
taken into the transform domain (``Bᵀ d B`` and ``G g Gᵀ``, both Kronecker products here so that a
whole transform is one matrix product), the channel sums become 36 independent matrix products
(``[K, C] @ [C, tiles]``, which is what BLAS does best), and ``Aᵀ m A`` takes the result back.

Where it wins, measured on the 2-core machine at 2 threads against oneDNN's direct convolution
(median of 5, one process): 256 channels at 80² 0.58–0.77×, 512 at 76×100 0.47–0.64×, 512 at
38×50 and 20² 0.57–0.65×, 256 at 128² 0.62×; where it does not: 64 channels (≥ 1.1×: too few
channels for the matrix products to pay for the transforms), 512 at 10² (2.7×: the 4×4 blocks
overhang a 10² map by 20 %), 4 input channels (far worse). On maps of 150×200 and up NNPACK's FFT
(:mod:`matting.models.fft_conv`) beats it (0.60× against 0.70×). A network so picks the algorithm
per layer and per input size (:func:`with_winograd_convolutions`).

Rounding: the transform matrices hold 1, 2, 4, 5, 8 and fractions of 6 and 24, so F(4×4, 3×3)
rounds more than a direct sum: |Δ| against a float64 convolution 3–4e-5 per layer on unit-scale
activations, where oneDNN's is 1e-5. (NNPACK's own Winograd, F(6×6, 3×3), rounds 30× worse, which
is why :mod:`matting.models.fft_conv` avoids it.) The kernel transform is made once, in float64,
and kept: 4× the layer's weight memory (36 instead of 9 numbers per kernel).

Large maps are convolved in bands of tile rows whose transformed tiles stay within
:data:`BAND_BYTES` (in cache, and no multi-hundred-megabyte temporaries), each band's outputs
written straight into the result.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WinogradConv2d", "winograd_conv3x3", "kernel_transform", "with_winograd_convolutions"]

TILE = 4             # outputs per tile side: F(4×4, 3×3)
TILE_INPUT = 6       # inputs per tile side (TILE + kernel − 1)
BAND_BYTES = 8 << 20  # working-set budget of one band of tile rows (transformed inputs or outputs)

# Lavin & Gray's F(4, 3) matrices (interpolation points 0, ±1, ±2, ∞): input Bᵀ, kernel G, output Aᵀ.
_B_T = [[4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1]]
_G = [[1 / 4, 0, 0],
      [-1 / 6, -1 / 6, -1 / 6],
      [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6],
      [1 / 24, -1 / 12, 1 / 6],
      [0, 0, 1]]
_A_T = [[1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1]]


def _kron(rows) -> torch.Tensor:
    matrix = torch.tensor(rows, dtype=torch.float64)
    return torch.kron(matrix, matrix)  # (M ⊗ M) vec(X) = vec(M X Mᵀ) for a row-major vec


INPUT_TRANSFORM = _kron(_B_T).float()    # [36, 36]: a 6×6 input tile, flattened, into the transform domain
OUTPUT_TRANSFORM = _kron(_A_T).float()   # [16, 36]: back to a 4×4 block of outputs
KERNEL_TRANSFORM = _kron(_G)             # [36, 9], float64: the kernels, once


def kernel_transform(weight: torch.Tensor) -> torch.Tensor:
    """``[K, C, 3, 3]`` kernels → ``[36, K, C]`` float32 (computed in float64)."""
    out_channels, in_channels = weight.shape[:2]
    flat = weight.detach().to(torch.float64).reshape(out_channels * in_channels, 9)
    return (KERNEL_TRANSFORM @ flat.T).reshape(36, out_channels, in_channels).float().contiguous()


def winograd_conv3x3(x: torch.Tensor, transformed_kernel: torch.Tensor, bias: torch.Tensor | None,
                     padding: int = 1) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding)`` for 3×3 ``weight`` (stride 1), with the
    kernel given as :func:`kernel_transform` ``(weight)``; ``x`` float32 ``[N, C, H, W]``."""
    batch, in_channels, height, width = x.shape
    out_channels = transformed_kernel.shape[1]
    out_height, out_width = height + 2 * padding - 2, width + 2 * padding - 2
    if out_height < 1 or out_width < 1:
        raise ValueError(f"a {height}×{width} input with padding {padding} has no 3×3 output")
    tile_rows, tile_cols = -(-out_height // TILE), -(-out_width // TILE)
    # zero padding: the convolution's own, then enough on the bottom/right for whole tiles
    padded = F.pad(x, (padding, TILE * tile_cols + 2 - out_width - padding,
                       padding, TILE * tile_rows + 2 - out_height - padding))
    out = torch.empty(batch, out_channels, TILE * tile_rows, TILE * tile_cols, dtype=x.dtype)
    blocks = out.view(batch, out_channels, tile_rows, TILE, tile_cols, TILE)
    # transformed tiles of one tile row: 36 × batch × channels × tile_cols floats, input and output side
    per_row = 36 * 4 * batch * max(in_channels, out_channels) * tile_cols
    band = max(1, BAND_BYTES // per_row)
    for first in range(0, tile_rows, band):
        last = min(tile_rows, first + band)
        rows = last - first
        tiles = padded[:, :, TILE * first:TILE * last + 2].unfold(2, TILE_INPUT, TILE).unfold(3, TILE_INPUT, TILE)
        # [N, C, rows, cols, 6, 6] → [36, N·C·rows·cols]: one column per tile
        columns = tiles.permute(4, 5, 0, 1, 2, 3).reshape(36, -1)
        transformed = (INPUT_TRANSFORM @ columns).view(36, batch, in_channels, rows * tile_cols)
        products = torch.matmul(transformed_kernel.unsqueeze(1), transformed)  # [36, N, K, tiles]
        outputs = (OUTPUT_TRANSFORM @ products.view(36, -1)).view(TILE, TILE, batch, out_channels, rows, tile_cols)
        blocks[:, :, first:last].copy_(outputs.permute(2, 3, 4, 0, 5, 1))
    out = out[:, :, :out_height, :out_width]
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


class WinogradConv2d(nn.Module):
    """``conv`` (a stride-1 3×3 ``nn.Conv2d`` with the same zero padding, 0 or 1, on every side, or
    a subclass such as :class:`~matting.models.fft_conv.FFTConv2d`) with inputs of ``min_pixels``
    to ``max_pixels`` pixels (height × width) convolved by :func:`winograd_conv3x3`; any other input,
    and any call it cannot run (not CPU float32, autograd on), goes to ``conv`` itself."""

    def __init__(self, conv: nn.Conv2d, min_pixels: int, max_pixels: int):
        super().__init__()
        if not self.supports(conv):
            raise ValueError(f"Winograd F(4×4, 3×3) cannot run {conv}")
        self.conv = conv
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)
        self.register_buffer("transformed_kernel", kernel_transform(conv.weight), persistent=False)

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        return (isinstance(conv, nn.Conv2d) and tuple(conv.kernel_size) == (3, 3) and conv.stride == (1, 1)
                and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
                and isinstance(conv.padding, tuple) and conv.padding in ((0, 0), (1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dim() == 4 and x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
                and self.min_pixels <= x.shape[2] * x.shape[3] <= self.max_pixels
                and x.shape[2] + 2 * self.conv.padding[0] >= 3 and x.shape[3] + 2 * self.conv.padding[1] >= 3):
            return winograd_conv3x3(x, self.transformed_kernel, self.conv.bias, self.conv.padding[0])
        return self.conv(x)

    def extra_repr(self) -> str:
        return f"winograd F(4×4, 3×3) from {self.min_pixels} to {self.max_pixels} pixels"


def with_winograd_convolutions(model: nn.Module, pixel_range: Callable[[nn.Conv2d], tuple[int, int] | None]
                               ) -> nn.Module:
    """An eval-mode copy of ``model`` whose 3×3 convolutions that Winograd can run and for which
    ``pixel_range(conv)`` gives ``(min_pixels, max_pixels)`` become :class:`WinogradConv2d` (their
    old module the fallback); the rest, and ``model`` itself, unchanged."""
    copied = copy.deepcopy(model).eval()
    for owner in list(copied.modules()):
        if isinstance(owner, WinogradConv2d):
            continue
        for name, child in list(owner.named_children()):
            if WinogradConv2d.supports(child):
                chosen = pixel_range(child)
                if chosen is not None:
                    setattr(owner, name, WinogradConv2d(child, *chosen).eval())
    return copied
