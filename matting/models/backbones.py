"""ImageNet backbones and the DeepLabV3 ASPP head, with torchvision's parameter names.

torchvision itself is not a dependency here. These modules rebuild the parts that
BackgroundMattingV2 (``model/mobilenet.py``, ``model/resnet.py``, ``model/model.py``)
subclasses or instantiates, so that official checkpoints load without renaming:

* :class:`MobileNetV2` (Sandler et al. 2018), as ``torchvision.models.mobilenetv2``.
* :class:`ResNet` with :class:`Bottleneck` blocks (He et al. 2016, "v1.5": stride on
  the 3x3 convolution), as ``torchvision.models.resnet``, including
  ``replace_stride_with_dilation``; :func:`resnet50` and :func:`resnet101`.
* :class:`ASPP` (Chen et al. 2017), as ``torchvision.models.segmentation.deeplabv3``.

MODNet's MobileNetV2 names its layers differently and lives in ``modnet.py``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import MattingError

__all__ = [
    "ConvBNReLU6",
    "InvertedResidual",
    "MobileNetV2",
    "Bottleneck",
    "ResNet",
    "resnet50",
    "resnet101",
    "ASPP",
]


# --------------------------------------------------------------------------------------
# MobileNetV2
# --------------------------------------------------------------------------------------

class ConvBNReLU6(nn.Sequential):
    """Conv2d -> BatchNorm2d -> ReLU6; children ``0``, ``1``, ``2`` as in torchvision."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: int = 1, groups: int = 1, dilation: int = 1):
        padding = (kernel_size - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                      dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear projection (1x1), residual when shapes allow.

    ``conv`` holds ``[expand,] depthwise, project_conv, project_bn``; the expansion
    layer is left out when ``expand_ratio == 1``, which shifts the indices, exactly as
    in torchvision.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int,
                 dilation: int = 1):
        super().__init__()
        if stride not in (1, 2):
            raise MattingError(f"stride must be 1 or 2, got {stride}.")
        hidden = round(in_channels * expand_ratio)
        self.use_residual = stride == 1 and in_channels == out_channels

        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_channels, hidden, kernel_size=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden, dilation=dilation),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    @property
    def depthwise(self) -> nn.Conv2d:
        """The 3x3 depthwise convolution (``conv[-3][0]``)."""
        return self.conv[-3][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


# (expand_ratio t, output channels c, repeats n, first stride s) of the paper's Table 2.
MOBILENETV2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) with torchvision's ``features.*`` / ``classifier.*`` names.

    ``features`` has 19 children: the stem (``0``), 17 inverted residual blocks
    (``1``..``17``) and the final 1x1 convolution to 1280 channels (``18``).
    ``num_classes=None`` leaves out the classifier.
    """

    def __init__(self, in_channels: int = 3, num_classes: int | None = 1000):
        super().__init__()
        channels = 32
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, channels, stride=2)]
        for expand_ratio, out_channels, repeats, first_stride in MOBILENETV2_SETTINGS:
            for i in range(repeats):
                stride = first_stride if i == 0 else 1
                layers.append(InvertedResidual(channels, out_channels, stride, expand_ratio))
                channels = out_channels
        self.last_channels = 1280
        layers.append(ConvBNReLU6(channels, self.last_channels, kernel_size=1))
        self.features = nn.Sequential(*layers)

        if num_classes is not None:
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channels, num_classes))
        self.num_classes = num_classes
        _init_imagenet_style(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.num_classes is None:
            return x
        return self.classifier(x.mean(dim=(2, 3)))


# --------------------------------------------------------------------------------------
# ResNet
# --------------------------------------------------------------------------------------

class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries stride and dilation) -> 1x1 expand by 4, plus shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResNet(nn.Module):
    """Bottleneck ResNet with torchvision's names (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``).

    ``replace_stride_with_dilation[i]`` turns the stride-2 entry of ``layer{i+2}`` into
    dilation, as in torchvision: the stage's first block keeps the previous dilation,
    the following blocks use the increased one.
    """

    def __init__(self, layers: Sequence[int], in_channels: int = 3, num_classes: int | None = 1000,
                 replace_stride_with_dilation: Sequence[bool] = (False, False, False)):
        super().__init__()
        if len(layers) != 4 or len(replace_stride_with_dilation) != 3:
            raise MattingError("layers needs 4 entries and replace_stride_with_dilation 3.")
        self._in_channels = 64
        self._dilation = 1

        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_stage(64, layers[0])
        self.layer2 = self._make_stage(128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_stage(256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_stage(512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])

        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        self.num_classes = num_classes
        _init_imagenet_style(self)

    def _make_stage(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        first_block_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        out_channels = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self._in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self._in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        stage = [Bottleneck(self._in_channels, planes, stride, downsample, first_block_dilation)]
        self._in_channels = out_channels
        stage += [Bottleneck(out_channels, planes, dilation=self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 -> bn1 -> relu (1/2 resolution, before the max-pool)."""
        return self.relu(self.bn1(self.conv1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.forward_stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.num_classes is None:
            return x
        return self.fc(torch.flatten(self.avgpool(x), 1))


RESNET_LAYERS = {
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
}


def resnet50(**kwargs) -> ResNet:
    return ResNet(RESNET_LAYERS["resnet50"], **kwargs)


def resnet101(**kwargs) -> ResNet:
    return ResNet(RESNET_LAYERS["resnet101"], **kwargs)


# --------------------------------------------------------------------------------------
# DeepLabV3 ASPP
# --------------------------------------------------------------------------------------

class _ASPPConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, dilation: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class _ASPPPooling(nn.Sequential):
    """Image-level features: global average -> 1x1 conv -> broadcast back (bilinear)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``convs`` = [1x1, one 3x3 per rate, pooling], then ``project``."""

    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256):
        super().__init__()
        branches: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )]
        branches += [_ASPPConv(in_channels, out_channels, rate) for rate in atrous_rates]
        branches.append(_ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


def _init_imagenet_style(model: nn.Module) -> None:
    """He-normal convolutions, unit norms, small linear layers: a sane start for training."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)
