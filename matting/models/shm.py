"""Semantic Human Matting (Chen et al., ACM MM 2018): the public *light re-implementation*.

No official code or weights of SHM were ever released. This is the network of lizhengwei1992's
unofficial port, branch ``fast_human_matting`` (commit 9e3ccc1, 2019-04-11), ``model/network.py:
net()`` — a T-Net ``RD_FPNnet`` (residual dense blocks + an FPN-style decoder) and an M-Net
``M_tiny_net`` (a small conv/max-pool encoder–decoder), not the paper's PSPNet-50 / VGG-16 networks.
The module tree and ``state_dict()`` keys are those of that port (``t_net.*``, ``m_net.*``, 308 float
entries), so its trained checkpoint ``ckpt_lastest.pth`` loads with ``strict=True``. Written here
from the port's layer description, not copied.

``SHM()(x) -> (trimap_logits, alpha_p)`` for ``x`` = 1×3×H×W (BGR minus (104, 112, 121), / 255 in the
port's test script), H and W multiples of 32:

* T-Net: four ``AvgPool2d(3, 2, 1)`` copies of the input (1/2 … 1/16, padding counted in the mean)
  are fed again at every scale; stem conv 3×3/2 → 24 + BN + PReLU at 1/2, then per scale a BN+PReLU
  of the concatenation, a strided 3×3 conv+BN+PReLU and residual dense blocks (PReLU per channel),
  down to 192 channels at 1/32; a 1×1 classifier gives 3-class logits, which an FPN path brings
  back up (bilinear ×2, ``align_corners=False``; + a 1×1 projection of each scale; a 3×3 conv), and
  a last bilinear ×2 to the input size.
* Fusion: ``p = softmax(logits)``; channels (0, 1, 2) are named (bg, fg, unsure) by the port;
  ``alpha_r = M-Net(cat(x, p))`` (no activation) and ``alpha_p = p[1] + p[2] · alpha_r``
  (not clamped: it can leave [0, 1]).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MattingError
from .registry import InputConfig, register_architecture

__all__ = ["SHM", "TNet", "MNet", "INPUT", "BGR_MEAN", "STRIDE"]

# The port's test script (test_camera.py): OpenCV BGR image minus this mean, divided by 255.
BGR_MEAN = (104.0, 112.0, 121.0)
STRIDE = 32

INPUT = InputConfig(
    channels=("B", "G", "R"), value_range=(0.0, 255.0), mean=BGR_MEAN, std=(255.0, 255.0, 255.0),
    size_rule="stretched to 256×256 with cubic interpolation (test_camera.py --size 256); sides multiples of 32",
    example_size=(256, 256), stride=STRIDE,
)


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    # nn.Upsample(scale_factor=2, mode='bilinear') of torch 0.4: align_corners False.
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _conv_bn_prelu(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Keys ``0`` (3×3 conv, no bias), ``1`` (BatchNorm), ``2`` (PReLU, one slope per channel)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout))


def _bn_prelu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.PReLU(channels))


class _DenseLayer(nn.Module):
    """3×3 conv (no bias) → BN → ReLU, appended to its input along the channels."""

    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(growth)

    def forward(self, x):
        return torch.cat([x, F.relu(self.bn(self.conv(x)))], dim=1)


class _DenseLayers(nn.Module):
    def __init__(self, width: int, layers: int):
        super().__init__()
        self.dense_layers = nn.Sequential(*[_DenseLayer(width * (i + 1), width) for i in range(layers)])

    def forward(self, x):
        return self.dense_layers(x)


class ResidualDenseBlock(nn.Module):
    """``channels`` → 1×1 reduce to ``channels // parts`` → ``parts − 1`` dense layers (back to
    ``channels``) → + input → BN → PReLU."""

    def __init__(self, channels: int, parts: int):
        super().__init__()
        width = channels // parts
        self.conv = nn.Conv2d(channels, width, 1, bias=False)
        self.dense_block = _DenseLayers(width, parts - 1)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.PReLU(channels)

    def forward(self, x):
        return self.act(self.bn(x + self.dense_block(self.conv(x))))


class TNet(nn.Module):
    """The port's ``RD_FPNnet(classes=3)``: 3-class trimap logits at the input size."""

    # (width at 1/2, 1/4, 1/8, 1/16, 1/32), blocks per scale and dense split of each block
    WIDTHS = (24, 24, 48, 96, 192)
    BLOCKS = (1, 2, 2, 2, 2)
    PARTS = (3, 3, 4, 4, 6)

    def __init__(self, classes: int = 3, in_channels: int = 3):
        super().__init__()
        w = self.WIDTHS
        self.head_conv = _conv_bn_prelu(in_channels, w[0], 2)
        self.stage_0 = ResidualDenseBlock(w[0], self.PARTS[0])
        for i in range(1, 5):
            # scale i sees the input pooled i times, the previous scale's entry and exit features
            # (only the exit for scale 1, whose stage is a single block)
            cin = in_channels + (w[i - 1] if i == 1 else 2 * w[i - 1])
            setattr(self, f"ba_{i}", _bn_prelu(cin))
            setattr(self, f"down_{i}", _conv_bn_prelu(cin, w[i], 2))
            setattr(self, f"stage_{i}", nn.Sequential(
                *[ResidualDenseBlock(w[i], self.PARTS[i]) for _ in range(self.BLOCKS[i])]))
        self.classifier = nn.Conv2d(w[4], classes, 1)
        for i in (3, 2, 1, 0):
            setattr(self, f"stage{i}_down", nn.Conv2d(w[i], classes, 1))
            setattr(self, f"conv_{i}", nn.Conv2d(classes, classes, 3, 1, 1))

    @staticmethod
    def cascade(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)

    def forward(self, x):
        pooled = [x]
        for _ in range(4):
            pooled.append(self.cascade(pooled[-1]))
        s0 = self.stage_0(self.head_conv(x))
        exits, entries = [s0], [None]
        for i in range(1, 5):
            parts = [pooled[i]] + ([exits[-1]] if i == 1 else [entries[-1], exits[-1]])
            entry = getattr(self, f"down_{i}")(getattr(self, f"ba_{i}")(torch.cat(parts, dim=1)))
            entries.append(entry)
            exits.append(getattr(self, f"stage_{i}")(entry))
        p = self.classifier(exits[4])
        for i in (3, 2, 1, 0):
            p = getattr(self, f"conv_{i}")(_upsample2(p) + getattr(self, f"stage{i}_down")(exits[i]))
        return _upsample2(p)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class MNet(nn.Module):
    """The port's ``M_tiny_net()``: raw alpha from image + trimap probabilities (6 channels).

    Four conv+BN+ReLU / max-pool(3, 2, 1) steps down to 1/16, four conv+BN+ReLU / bilinear ×2 steps
    back up, a 5×5 conv to one channel. ``en_conv_bn_relu_5`` exists in the port (and its checkpoint)
    but its forward never calls it; it is kept for the keys.
    """

    ENCODER = (8, 12, 16, 24)
    DECODER = (24, 16, 12, 8)

    def __init__(self, in_channels: int = 6):
        super().__init__()
        cin = in_channels
        for i, cout in enumerate(self.ENCODER, 1):
            setattr(self, f"en_conv_bn_relu_{i}", _conv_bn_relu(cin, cout))
            cin = cout
        self.en_conv_bn_relu_5 = _conv_bn_relu(cin, cin)  # unused by forward (as in the port)
        for i, cout in enumerate(self.DECODER, 1):
            setattr(self, f"de_conv_bn_relu_{i}", _conv_bn_relu(cin, cout))
            cin = cout
        self.conv = nn.Conv2d(cin, 1, 5, 1, 2, bias=False)

    def forward(self, x):
        for i in range(1, 5):
            x = F.max_pool2d(getattr(self, f"en_conv_bn_relu_{i}")(x), 3, 2, 1)
        for i in range(1, 5):
            x = _upsample2(getattr(self, f"de_conv_bn_relu_{i}")(x))
        return self.conv(x)


def recognise(shapes):
    heads = {k.split(".", 2)[1] for k in shapes if k.count(".") >= 2}
    if {"head_conv", "stage_4", "classifier"} <= heads and {"en_conv_bn_relu_1", "de_conv_bn_relu_4"} <= heads:
        return "SHM, lizhengwei1992's light re-implementation (arch 'shm')"
    return None


def checkpoint_filter(checkpoint, model=None) -> dict:
    """The port's ``{'epoch', 'state_dict'}`` file arrives unwrapped (:func:`matting.weights.read_checkpoint`);
    its keys are the network's. Its 55 absent ``num_batches_tracked`` buffers (torch 0.4.0) are tolerated by
    the strict load (:func:`matting.models.check_state_dict`)."""
    return dict(checkpoint)


@register_architecture("shm", checkpoint_filter=checkpoint_filter, recognise=recognise, input_config=INPUT,
                       fast_backend="openvino",
                       description="net() of lizhengwei1992/Semantic_Human_Matting@fast_human_matting "
                                   "(t_net=RD_FPNnet(), m_net=M_tiny_net()); unofficial")
class SHM(nn.Module):
    """``net()`` of the port: ``forward(x) -> (trimap_logits, alpha_p)``."""

    def __init__(self):
        super().__init__()
        self.t_net = TNet()
        self.m_net = MNet()

    def forward(self, x: torch.Tensor, return_raw_alpha: bool = False):
        if x.dim() != 4 or x.shape[1] != 3:
            raise MattingError(f"SHM expects a N×3×H×W tensor, got {tuple(x.shape)}.")
        height, width = x.shape[2:]
        if height % STRIDE or width % STRIDE:
            raise MattingError(f"SHM needs height and width that are multiples of {STRIDE}, got {height}×{width}.")
        trimap = self.t_net(x)
        probabilities = F.softmax(trimap, dim=1)
        alpha_r = self.m_net(torch.cat([x, probabilities], dim=1))
        alpha_p = probabilities[:, 1:2] + probabilities[:, 2:3] * alpha_r
        if return_raw_alpha:
            return trimap, alpha_p, alpha_r
        return trimap, alpha_p
