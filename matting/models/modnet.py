"""MODNet (Ke et al., "MODNet: Real-Time Trimap-Free Portrait Matting via Objective
Decomposition", AAAI 2022).

Follows github.com/ZHKKKe/MODNet ``src/models/modnet.py`` and its MobileNetV2 backbone
(``src/models/backbones/wrapper.py``, ``mobilenetv2.py``): same constructor arguments,
``forward(img, inference)`` outputs and ``state_dict()`` keys, so the released
``modnet_*_portrait_matting.ckpt`` files load through :func:`checkpoint_filter`.

Three branches share one MobileNetV2 encoder (input RGB normalised to [-1, 1]):

* semantic branch (:class:`LRBranch`, low resolution): coarse semantics at 1/8,
  ``pred_semantic`` at 1/16 when training;
* detail branch (:class:`HRBranch`, high resolution): boundary details at 1/2,
  ``pred_detail`` at full resolution when training;
* fusion branch (:class:`FusionBranch`): the final ``pred_matte``.

The semantic branch keeps a reference to the shared encoder, so every encoder tensor
appears twice in ``state_dict()``: as ``backbone.model.*`` and ``lr_branch.backbone.model.*``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import MattingError
from .registry import InputConfig, register_architecture

__all__ = [
    "MODNet",
    "INPUT",
    "checkpoint_filter",
    "MobileNetV2Backbone",
    "LRBranch",
    "HRBranch",
    "FusionBranch",
    "IBNorm",
    "strip_dataparallel_prefix",
]


# --------------------------------------------------------------------------------------
# Backbone: MODNet's own MobileNetV2 (from thuyngch/Human-Segmentation-PyTorch), whose
# blocks are flat Sequentials and therefore have other key names than torchvision's.
# --------------------------------------------------------------------------------------

def _conv_bn_relu6(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                   groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2,
                  groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    ]


class _InvertedResidual(nn.Module):
    """MobileNetV2 block; ``conv`` is one flat Sequential ([expand,] depthwise, project)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = round(in_channels * expansion)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers = []
        if expansion != 1:
            layers += _conv_bn_relu6(in_channels, hidden, 1)
        layers += _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class _MobileNetV2Features(nn.Module):
    """``features``: stem, 17 inverted residual blocks and a 1x1 conv to 1280 channels."""

    # (expansion, output channels, repeats, first stride)
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, in_channels: int):
        super().__init__()
        channels = 32
        layers = [nn.Sequential(*_conv_bn_relu6(in_channels, channels, 3, stride=2))]
        for expansion, out_channels, repeats, first_stride in self.SETTINGS:
            for i in range(repeats):
                layers.append(_InvertedResidual(channels, out_channels, first_stride if i == 0 else 1, expansion))
                channels = out_channels
        layers.append(nn.Sequential(*_conv_bn_relu6(channels, 1280, 1)))
        self.features = nn.Sequential(*layers)


class MobileNetV2Backbone(nn.Module):
    """MODNet's encoder wrapper: ``model.features`` plus the feature pyramid it returns."""

    # features[start:end] produce the outputs at 1/2, 1/4, 1/8, 1/16 and 1/32 resolution.
    STAGE_ENDS = (2, 4, 7, 14, 19)

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.model = _MobileNetV2Features(in_channels)
        self.enc_channels = [16, 24, 32, 96, 1280]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return ``[enc2x, enc4x, enc8x, enc16x, enc32x]``."""
        pyramid = []
        start = 0
        for end in self.STAGE_ENDS:
            x = self.model.features[start:end](x)
            pyramid.append(x)
            start = end
        return pyramid


SUPPORTED_BACKBONES = {"mobilenetv2": MobileNetV2Backbone}


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

class IBNorm(nn.Module):
    """BatchNorm on the first half of the channels, InstanceNorm on the second half.

    The InstanceNorm has no affine parameters and no running statistics, so it always
    normalises with the statistics of the current image, in eval() too.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.bnorm_channels = in_channels // 2
        self.inorm_channels = in_channels - self.bnorm_channels
        self.bnorm = nn.BatchNorm2d(self.bnorm_channels, affine=True)
        self.inorm = nn.InstanceNorm2d(self.inorm_channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The official code slices the InstanceNorm half from index inorm_channels,
        # which only works (and equals this split) for even channel counts, the only
        # ones MODNet uses.
        bn_half = self.bnorm(x[:, :self.bnorm_channels].contiguous())
        in_half = self.inorm(x[:, self.bnorm_channels:].contiguous())
        return torch.cat((bn_half, in_half), dim=1)


class Conv2dIBNormRelu(nn.Module):
    """Conv2d [-> IBNorm] [-> ReLU], children under ``layers``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True,
                 with_ibn: bool = True, with_relu: bool = True):
        super().__init__()
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                            dilation=dilation, groups=groups, bias=bias)]
        if with_ibn:
            layers.append(IBNorm(out_channels))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _prediction_head(in_channels: int, kernel_size: int, padding: int) -> Conv2dIBNormRelu:
    """A plain convolution to one logit channel."""
    return Conv2dIBNormRelu(in_channels, 1, kernel_size, stride=1, padding=padding,
                            with_ibn=False, with_relu=False)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel attention (Hu et al. 2018), bias-free."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 1):
        super().__init__()
        squeezed = in_channels // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(in_channels, squeezed, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(squeezed, out_channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        weights = self.fc(self.pool(x).view(b, c)).view(b, c, 1, 1)
        return x * weights


def _upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=1 / factor, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------
# Branches
# --------------------------------------------------------------------------------------

class LRBranch(nn.Module):
    """Semantic (low-resolution) branch: encoder, SE attention, decode 1/32 -> 1/8.

    ``forward(img, inference) -> (pred_semantic, lr8x, [enc2x, enc4x])``;
    ``pred_semantic`` (1/16 resolution, sigmoid) is None when ``inference``.
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        enc_channels = backbone.enc_channels
        self.backbone = backbone
        self.se_block = SEBlock(enc_channels[4], enc_channels[4], reduction=4)
        self.conv_lr16x = Conv2dIBNormRelu(enc_channels[4], enc_channels[3], 5, stride=1, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc_channels[3], enc_channels[2], 5, stride=1, padding=2)
        self.conv_lr = Conv2dIBNormRelu(enc_channels[2], 1, kernel_size=3, stride=2, padding=1,
                                        with_ibn=False, with_relu=False)

    def forward(self, img: torch.Tensor, inference: bool):
        enc2x, enc4x, _, _, enc32x = self.backbone(img)
        enc32x = self.se_block(enc32x)
        lr16x = self.conv_lr16x(_upsample2x(enc32x))
        lr8x = self.conv_lr8x(_upsample2x(lr16x))

        pred_semantic = None
        if not inference:
            pred_semantic = torch.sigmoid(self.conv_lr(lr8x))
        return pred_semantic, lr8x, [enc2x, enc4x]


class HRBranch(nn.Module):
    """Detail (high-resolution) branch: image + shallow encoder features + semantics.

    ``forward(img, enc2x, enc4x, lr8x, inference) -> (pred_detail, hr2x)``;
    ``pred_detail`` (full resolution, sigmoid) is None when ``inference``.
    """

    def __init__(self, hr_channels: int, enc_channels):
        super().__init__()
        hr = hr_channels
        self.tohr_enc2x = Conv2dIBNormRelu(enc_channels[0], hr, 1, stride=1, padding=0)
        self.conv_enc2x = Conv2dIBNormRelu(hr + 3, hr, 3, stride=2, padding=1)

        self.tohr_enc4x = Conv2dIBNormRelu(enc_channels[1], hr, 1, stride=1, padding=0)
        self.conv_enc4x = Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1)

        self.conv_hr4x = nn.Sequential(
            Conv2dIBNormRelu(3 * hr + 3, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1),
        )
        self.conv_hr2x = nn.Sequential(
            Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, stride=1, padding=1),
            Conv2dIBNormRelu(hr, hr, 3, stride=1, padding=1),
        )
        self.conv_hr = nn.Sequential(
            Conv2dIBNormRelu(hr + 3, hr, 3, stride=1, padding=1),
            _prediction_head(hr, kernel_size=1, padding=0),
        )

    def forward(self, img, enc2x, enc4x, lr8x, inference: bool):
        img2x = _downsample(img, 2)
        img4x = _downsample(img, 4)

        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat((img2x, enc2x), dim=1))
        hr4x = self.conv_enc4x(torch.cat((hr4x, self.tohr_enc4x(enc4x)), dim=1))
        hr4x = self.conv_hr4x(torch.cat((hr4x, _upsample2x(lr8x), img4x), dim=1))
        hr2x = self.conv_hr2x(torch.cat((_upsample2x(hr4x), enc2x), dim=1))

        pred_detail = None
        if not inference:
            hr = self.conv_hr(torch.cat((_upsample2x(hr2x), img), dim=1))
            pred_detail = torch.sigmoid(hr)
        return pred_detail, hr2x


class FusionBranch(nn.Module):
    """Fuse semantics (``lr8x``) and details (``hr2x``) into ``pred_matte`` (sigmoid)."""

    def __init__(self, hr_channels: int, enc_channels):
        super().__init__()
        self.conv_lr4x = Conv2dIBNormRelu(enc_channels[2], hr_channels, 5, stride=1, padding=2)
        self.conv_f2x = Conv2dIBNormRelu(2 * hr_channels, hr_channels, 3, stride=1, padding=1)
        self.conv_f = nn.Sequential(
            Conv2dIBNormRelu(hr_channels + 3, hr_channels // 2, 3, stride=1, padding=1),
            _prediction_head(hr_channels // 2, kernel_size=1, padding=0),
        )

    def forward(self, img, lr8x, hr2x):
        lr2x = _upsample2x(self.conv_lr4x(_upsample2x(lr8x)))
        f2x = self.conv_f2x(torch.cat((lr2x, hr2x), dim=1))
        f = self.conv_f(torch.cat((_upsample2x(f2x), img), dim=1))
        return torch.sigmoid(f)


# --------------------------------------------------------------------------------------
# MODNet
# --------------------------------------------------------------------------------------

class MODNet(nn.Module):
    """MODNet portrait matting network.

    ``forward(img, inference) -> (pred_semantic, pred_detail, pred_matte)`` for ``img``
    (B, 3, H, W) in [-1, 1] with H, W multiples of 32. ``pred_matte`` is (B, 1, H, W);
    with ``inference=True`` the two auxiliary outputs are skipped and returned as None,
    otherwise ``pred_semantic`` is (B, 1, H/16, W/16) and ``pred_detail`` (B, 1, H, W).
    """

    def __init__(self, in_channels: int = 3, hr_channels: int = 32, backbone_arch: str = "mobilenetv2",
                 backbone_pretrained: bool = False):
        super().__init__()
        if backbone_arch not in SUPPORTED_BACKBONES:
            raise MattingError(f"Unknown MODNet backbone {backbone_arch!r}; "
                               f"supported: {', '.join(SUPPORTED_BACKBONES)}.")
        if backbone_pretrained:
            raise MattingError("MODNet(backbone_pretrained=True) is not supported: no ImageNet/human-"
                               "segmentation backbone weights are loaded here. Build the network with "
                               "backbone_pretrained=False and load a full MODNet checkpoint instead.")
        if hr_channels % 4:
            raise MattingError(f"hr_channels must be a multiple of 4 (the fusion branch normalises "
                               f"hr_channels/2 channels in two equal halves), got {hr_channels}.")
        self.in_channels = in_channels
        self.hr_channels = hr_channels
        self.backbone_arch = backbone_arch
        self.backbone_pretrained = backbone_pretrained

        self.backbone = SUPPORTED_BACKBONES[backbone_arch](in_channels)
        self.lr_branch = LRBranch(self.backbone)
        self.hr_branch = HRBranch(hr_channels, self.backbone.enc_channels)
        self.f_branch = FusionBranch(hr_channels, self.backbone.enc_channels)
        self._init_weights()

    @property
    def semantic_branch(self) -> LRBranch:
        return self.lr_branch

    @property
    def detail_branch(self) -> HRBranch:
        return self.hr_branch

    @property
    def fusion_branch(self) -> FusionBranch:
        return self.f_branch

    def forward(self, img: torch.Tensor, inference: bool):
        pred_semantic, lr8x, (enc2x, enc4x) = self.lr_branch(img, inference)
        pred_detail, hr2x = self.hr_branch(img, enc2x, enc4x, lr8x, inference)
        pred_matte = self.f_branch(img, lr8x, hr2x)
        return pred_semantic, pred_detail, pred_matte

    def freeze_norm(self) -> None:
        """Put every BatchNorm/InstanceNorm in eval mode (used when fine-tuning)."""
        for module in self.modules():
            if isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
                module.eval()

    def _init_weights(self) -> None:
        # As the official constructor: He-uniform convolutions, identity norms.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=0, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def strip_dataparallel_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str = "module.") -> OrderedDict:
    """Drop the ``module.`` prefix that ``nn.DataParallel`` checkpoints put on every key.

    Keys without the prefix are kept as they are, so plain state dicts pass through.
    The official MODNet checkpoints hold both ``module.backbone.*`` and
    ``module.lr_branch.backbone.*``; both names remain, and both are expected by
    ``MODNet.load_state_dict(..., strict=True)`` since they name one shared module.
    """
    return OrderedDict(
        (key[len(prefix):] if key.startswith(prefix) else key, value)
        for key, value in state_dict.items()
    )


def checkpoint_filter(checkpoint: Mapping[str, torch.Tensor], model=None) -> dict:
    """An official (DataParallel) checkpoint as this network's state dict.

    The semantic branch holds the encoder too, so ``state_dict()`` names every encoder tensor twice
    (``backbone.*`` and ``lr_branch.backbone.*``); a checkpoint that lists only one name gets the other.
    """
    state = dict(strip_dataparallel_prefix(checkpoint))
    for ours, alias in (("backbone.", "lr_branch.backbone."), ("lr_branch.backbone.", "backbone.")):
        for key in [k for k in state if k.startswith(ours)]:
            state.setdefault(alias + key[len(ours):], state[key])
    return state


def recognise(shapes):
    heads = {k.split(".", 1)[0] for k in shapes}
    return "MODNet (arch 'modnet')" if {"lr_branch", "hr_branch", "f_branch"} <= heads else None


INPUT = InputConfig(
    channels=("R", "G", "B"), value_range=(0.0, 1.0), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    size_rule="shorter side 512 when both sides are below or above 512 (else kept), both rounded down to "
              "multiples of 32, 'area' resize",
    example_size=(512, 512), stride=32, extra_args=(True,),
)

register_architecture("modnet", checkpoint_filter=checkpoint_filter, recognise=recognise, input_config=INPUT,
                      description="MODNet(in_channels=3, hr_channels=32, backbone_arch='mobilenetv2')",
                      fast_backend="openvino")(MODNet)
