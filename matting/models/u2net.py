"""U²-Net and U²-NetP (Qin et al., "U²-Net: Going Deeper with Nested U-Structure
for Salient Object Detection", Pattern Recognition 2020).

Layout, parameter names and order of operations follow the official
``model/u2net.py`` of github.com/xuebinqin/U-2-Net, so official checkpoints
(``u2net.pth``, ``u2netp.pth``, ...) load with ``load_state_dict(strict=True)``.
The official file has one class per residual U-block height (RSU7 … RSU4, RSU4F);
here a single :class:`RSU` is parametrised by its height and by ``dilated``.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MattingError
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .registry import InputConfig, register_architecture

__all__ = ["ConvBnRelu", "RSU", "U2NET", "U2NETP", "INPUT", "checkpoint_filter"]

INPUT = InputConfig(
    channels=("R", "G", "B"), value_range=(0.0, 1.0), mean=IMAGENET_MEAN, std=IMAGENET_STD,
    size_rule="320×320 (aspect ratio not kept); the image is divided by its maximum before mean/std",
    example_size=(320, 320),
)


def checkpoint_filter(checkpoint, model):
    """Official ``.pth`` state dicts load as they are; an ONNX graph (rembg's ``u2netp.onnx``, whose
    BatchNorms are folded into the convolutions) is unfolded back into a state dict with identity
    BatchNorms (:mod:`matting.models.onnx_fold`)."""
    if isinstance(checkpoint, dict):
        return checkpoint
    from .onnx_fold import state_dict_from_folded_onnx

    return state_dict_from_folded_onnx(checkpoint, model)


def recognise(shapes):
    """'U²-Net …' for a state dict with U²-Net's stage names, by the width of its first stage."""
    heads = {k.split(".", 1)[0] for k in shapes}
    if {"stage1", "stage6", "outconv"} <= heads:
        width = shapes.get("stage1.rebnconv1.conv_s1.weight", (0,))[0]
        return {32: "U²-Net (arch 'u2net')", 16: "U²-NetP (arch 'u2netp')"}.get(width, "a U²-Net variant")
    return None


def upsample_like(source, target):
    """Bilinearly resize ``source`` to the spatial size of ``target`` (official ``_upsample_like``)."""
    return F.interpolate(source, size=target.shape[2:], mode="bilinear", align_corners=False)


def downsample(x):
    return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)


class ConvBnRelu(nn.Module):
    """3×3 (dilated) convolution → BatchNorm → ReLU; the official ``REBNCONV``."""

    def __init__(self, in_ch, out_ch, dilation=1):
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)
        self.bn_s1 = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        return F.relu(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block of height ``height`` (RSU-7, -6, -5, -4), or RSU-4F when ``dilated``.

    An input convolution (``rebnconvin``) maps to ``out_ch`` channels; a small
    U-Net of ``height`` encoder layers (``rebnconv1`` … ``rebnconv<height>``) and
    ``height - 1`` decoder layers (``rebnconv<height-1>d`` … ``rebnconv1d``) works
    on ``mid_ch`` channels; its output is added to the input convolution's.

    * plain RSU-L: max-pool after encoder layers 1 … L-2, upsampling in the
      decoder; only the innermost layer is dilated (rate 2).
    * RSU-4F (``dilated=True``): no pooling at all; encoder layer i has dilation
      2^(i-1) (1, 2, 4, 8) and decoder layer i the same rate as encoder layer i.
    """

    def __init__(self, height, in_ch, mid_ch, out_ch, dilated=False):
        super().__init__()
        if height < 2:
            raise MattingError(f"RSU height must be at least 2, got {height}.")
        self.height = height
        self.dilated = dilated

        # Registration order gives the official state_dict order:
        # rebnconvin, rebnconv1 … rebnconv<height>, rebnconv<height-1>d … rebnconv1d.
        self.rebnconvin = ConvBnRelu(in_ch, out_ch)
        for level in range(1, height + 1):
            level_in = out_ch if level == 1 else mid_ch
            self.add_module(f"rebnconv{level}", ConvBnRelu(level_in, mid_ch, self._dilation(level)))
        for level in range(height - 1, 0, -1):
            level_out = out_ch if level == 1 else mid_ch
            self.add_module(f"rebnconv{level}d", ConvBnRelu(2 * mid_ch, level_out, self._dilation(level)))

    def _dilation(self, level):
        if self.dilated:
            return 2 ** (level - 1)
        return 2 if level == self.height else 1

    def forward(self, x):
        residual = self.rebnconvin(x)

        skips = []
        hx = residual
        for level in range(1, self.height):
            hx = getattr(self, f"rebnconv{level}")(hx)
            skips.append(hx)
            if not self.dilated and level < self.height - 1:
                hx = downsample(hx)
        hx = getattr(self, f"rebnconv{self.height}")(hx)

        for level in range(self.height - 1, 0, -1):
            skip = skips[level - 1]
            hx = getattr(self, f"rebnconv{level}d")(torch.cat((hx, skip), 1))
            if not self.dilated and level > 1:
                hx = upsample_like(hx, skips[level - 2])
        return hx + residual


class _U2NetBase(nn.Module):
    """Six-stage encoder, five-stage decoder of RSU blocks, six side outputs fused by a 1×1 conv.

    ``stage_channels`` lists ``(in_ch, mid_ch, out_ch)`` for the eleven stages in the
    official order stage1 … stage6, stage5d … stage1d.
    """

    # Height and dilation of each stage; stage5, stage6 and stage5d are RSU-4F.
    _BLOCKS = {
        "stage1": (7, False), "stage2": (6, False), "stage3": (5, False),
        "stage4": (4, False), "stage5": (4, True), "stage6": (4, True),
        "stage5d": (4, True), "stage4d": (4, False), "stage3d": (5, False),
        "stage2d": (6, False), "stage1d": (7, False),
    }

    def __init__(self, stage_channels, out_ch):
        super().__init__()
        for (name, (height, dilated)), (cin, cmid, cout) in zip(self._BLOCKS.items(), stage_channels):
            self.add_module(name, RSU(height, cin, cmid, cout, dilated=dilated))

        # Side outputs read the decoder stages 1d … 5d and the bottleneck stage 6.
        side_inputs = [stage_channels[i][2] for i in (10, 9, 8, 7, 6, 5)]
        for index, channels in enumerate(side_inputs, start=1):
            self.add_module(f"side{index}", nn.Conv2d(channels, out_ch, 3, padding=1))
        self.outconv = nn.Conv2d(6 * out_ch, out_ch, 1)

    def forward(self, x):
        """Return ``(d0, d1, …, d6)``: sigmoid of the fused map and of the six side outputs."""
        hx1 = self.stage1(x)
        hx2 = self.stage2(downsample(hx1))
        hx3 = self.stage3(downsample(hx2))
        hx4 = self.stage4(downsample(hx3))
        hx5 = self.stage5(downsample(hx4))
        hx6 = self.stage6(downsample(hx5))

        hx5d = self.stage5d(torch.cat((upsample_like(hx6, hx5), hx5), 1))
        hx4d = self.stage4d(torch.cat((upsample_like(hx5d, hx4), hx4), 1))
        hx3d = self.stage3d(torch.cat((upsample_like(hx4d, hx3), hx3), 1))
        hx2d = self.stage2d(torch.cat((upsample_like(hx3d, hx2), hx2), 1))
        hx1d = self.stage1d(torch.cat((upsample_like(hx2d, hx1), hx1), 1))

        d1 = self.side1(hx1d)
        side_logits = [d1] + [
            upsample_like(side(features), d1)
            for side, features in ((self.side2, hx2d), (self.side3, hx3d), (self.side4, hx4d),
                                   (self.side5, hx5d), (self.side6, hx6))
        ]
        d0 = self.outconv(torch.cat(side_logits, 1))
        return tuple(torch.sigmoid(logits) for logits in [d0] + side_logits)


@register_architecture("u2net", checkpoint_filter=checkpoint_filter, recognise=recognise, input_config=INPUT,
                       description="U2NET(in_ch=3, out_ch=1)", fast_backend="onnxruntime")
class U2NET(_U2NetBase):
    """The full U²-Net (176 MB checkpoint); official ``U2NET(in_ch, out_ch)``."""

    def __init__(self, in_ch=3, out_ch=1):
        super().__init__(
            [(in_ch, 32, 64), (64, 32, 128), (128, 64, 256), (256, 128, 512), (512, 256, 512),
             (512, 256, 512),
             (1024, 256, 512), (1024, 128, 256), (512, 64, 128), (256, 32, 64), (128, 16, 64)],
            out_ch,
        )


@register_architecture("u2netp", checkpoint_filter=checkpoint_filter, recognise=recognise, input_config=INPUT,
                       description="U2NETP(in_ch=3, out_ch=1)", fast_backend="onnxruntime")
class U2NETP(_U2NetBase):
    """The small U²-Net† (4.7 MB checkpoint); official ``U2NETP(in_ch, out_ch)``."""

    def __init__(self, in_ch=3, out_ch=1):
        super().__init__(
            [(in_ch, 16, 64)] + [(64, 16, 64)] * 5 + [(128, 16, 64)] * 5,
            out_ch,
        )
