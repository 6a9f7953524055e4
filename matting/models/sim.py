"""Semantic Image Matting (Sun, Tang, Tai, CVPR 2021): the matting network and its 20-class classifier.

Re-implemented from the official code, github.com/nowsyn/SIM at commit dc5ed5a (2023-04-09), so that its
released checkpoints load with ``strict=True`` and the same ``state_dict()`` keys and order:

* :class:`SIM` — ``networks/model.py: build_model(args)`` with ``args.arch`` of ``config/sim.toml``
  (``encoder='resnet50_BN', n_channel=11, atrous_rates=[12, 24, 36], aspp_channel=256``), i.e.
  ``MattingModule(args, ResnetDilatedBN(l_resnet50(), dilate_scale=8), Decoder(args))``. Keys
  ``encoder.*`` (the dilated ResNet-50) and ``decoder.*`` (ASPP and up-sampling head).
* :class:`SIMClassifier` — ``networks/resnet.py: resnet50(4, num_classes=20)``, a torchvision-layout
  ResNet-50 whose class activation maps make the *semantic trimap*. Its official checkpoint's keys carry
  one extra leading component (``scripts/main.py: remove_prefix``), removed by :func:`classifier_checkpoint_filter`.

What the matting network does (``forward(image, two_chan_trimap, image_n, trimap_transformed, smap)``):

1. encoder input = ``cat(image_n, trimap_transformed, two_chan_trimap)``: ImageNet-normalised RGB, the six
   Gaussian "click" maps of the trimap and its two one-hot channels (3 + 6 + 2 = 11 channels);
2. deep stem ("ResNet-50 v1c"): three 3×3 convolutions 11→64 (stride 2), 64→64, 64→128, each with BatchNorm
   and ReLU; the 20-channel semantic trimap ``smap`` enters through its own 7×7 stride-2 convolution
   ``conv1_side``, *added* to ``conv1``'s output before ``bn1``;
3. max-pool 3/2/1, then the four Bottleneck stages (stride on the 3×3 convolution); ``layer3`` and
   ``layer4`` are dilated (2 and 4) instead of strided, so the output stride is 8;
4. decoder: ASPP (1×1, three 3×3 atrous branches, image pooling, 1×1 projection; dropout is inactive in eval
   mode) on ``layer4``, concatenated with ``layer4``; ``conv_up1`` → ×2 bilinear → with ``layer1`` ``conv_up2``
   → ×2 → with the stem output ``conv_up3`` → ×2 → with ``image_n``, ``image`` and ``two_chan_trimap``
   (64 + 3 + 3 + 2 = 72 channels) the alpha head ``conv_up4_alpha``, clamped to [0, 1].

Every convolution of the ASPP and of ``conv_up1/2/3`` is *weight-standardised* (``networks/layers_WS.py``):
each filter has its mean removed and is divided by ``sqrt(var + 1e-12) + 1e-5``, where ``var`` is the
UNBIASED variance (``torch.var``'s default); the biased one changes alpha measurably. The encoder and the
``conv_up4_*`` heads use ordinary convolutions. With ``is_training=True`` the official forward also returns the
foreground / background head (``fg``, ``bg``) and the three attention maps (``r1``..``r3``) of the training loss.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import MattingError
from .backbones import Bottleneck, ResNet
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .registry import InputConfig, register_architecture

__all__ = [
    "SIM", "SIMClassifier", "SIMEncoder", "SIMDecoder", "WSConv2d", "WSASPP", "SIM_CLASSES",
    "INPUT", "CLASSIFIER_INPUT", "classifier_checkpoint_filter", "recognise", "recognise_classifier",
]

# The 20 matting-pattern classes of the classifier, in output order (scripts/main.py: load_sim_samples).
SIM_CLASSES = (
    "defocus", "fire", "fur", "glass_ice", "hair_easy", "hair_hard", "insect", "motion", "net",
    "plant_flower", "plant_leaf", "plant_tree", "plastic_bag", "sharp", "smoke_cloud", "spider_web",
    "texture_holed", "texture_smooth", "water_drop", "water_spray",
)

STRIDE = 8


def _example_inputs(height: int, width: int, generator) -> tuple:
    """Arguments of :meth:`SIM.forward` for timing at height × width (a multiple of 8): a random photo,
    a random trimap in both encodings, click maps in [0, 1] and a semantic map that sums to 1."""
    image = torch.rand(1, 3, height, width, generator=generator)
    trimap = torch.randint(0, 3, (1, 1, height, width), generator=generator)
    two_chan_trimap = torch.cat([trimap == 0, trimap == 2], 1).float()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    clicks = torch.rand(1, 6, height, width, generator=generator)
    semantic = torch.softmax(torch.randn(1, len(SIM_CLASSES), height, width, generator=generator), 1)
    return image, two_chan_trimap, (image - mean) / std, clicks, semantic, None, False


INPUT = InputConfig(
    channels=("R", "G", "B", "bg_click_6.4", "bg_click_25.6", "bg_click_51.2", "fg_click_6.4", "fg_click_25.6",
              "fg_click_51.2", "trimap_is_bg", "trimap_is_fg"),
    value_range=(0.0, 1.0), mean=IMAGENET_MEAN, std=IMAGENET_STD,
    size_rule="image and trimap padded at the bottom and right to (side // 8 + 1) * 8 (always 1–8 pixels) with "
              "OpenCV BORDER_REFLECT; besides the 11-channel encoder input the network takes the RGB in [0, 1], the "
              "2-channel trimap and the 20-channel semantic trimap of the classifier ('sim_classifier')",
    example_size=(320, 320), stride=STRIDE, example_inputs=_example_inputs,
)

CLASSIFIER_INPUT = InputConfig(
    channels=("R", "G", "B", "trimap"), value_range=(0.0, 1.0), mean=IMAGENET_MEAN, std=IMAGENET_STD,
    size_rule="windows of 320 and 800 pixels with 50 % overlap over the padded image; the trimap channel is "
              "trimap / 255 (not normalised)",
    example_size=(320, 320), stride=32,
)


# --------------------------------------------------------------------------------------
# Weight-standardised convolution and the ASPP built from it
# --------------------------------------------------------------------------------------

class WSConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose filters are standardised on every call (``networks/layers_WS.py: Conv2d``).

    Per output filter ``w``: ``(w - mean(w)) / (sqrt(var(w) + 1e-12) + 1e-5)`` with the unbiased variance;
    the stored parameter is left untouched (so checkpoints hold the raw filters).
    """

    def standardised_weight(self) -> torch.Tensor:
        weight = self.weight
        centred = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
        variance = torch.var(centred.reshape(centred.shape[0], -1), dim=1, unbiased=True)
        scale = torch.sqrt(variance + 1e-12).reshape(-1, 1, 1, 1) + 1e-5
        return centred / scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.standardised_weight(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


def _ws_bn_relu(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> list[nn.Module]:
    padding = dilation if kernel_size == 3 else 0
    return [WSConv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU()]


class _WSASPPPooling(nn.Sequential):
    """Image-level branch: global average → WS 1×1 conv → BN → ReLU → bilinear back to the input size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), *_ws_bn_relu(in_channels, out_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = super().forward(x)
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class WSASPP(nn.Module):
    """``networks/ppm.py: ASPP`` with batch norm: ``convs`` = [1×1, one atrous 3×3 per rate, pooling] and
    ``project`` (1×1 → BN → ReLU → Dropout(0.5)); every convolution weight-standardised, none with a bias."""

    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256):
        super().__init__()
        branches: list[nn.Module] = [nn.Sequential(*_ws_bn_relu(in_channels, out_channels, 1))]
        branches += [nn.Sequential(*_ws_bn_relu(in_channels, out_channels, 3, int(rate))) for rate in atrous_rates]
        branches.append(_WSASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(*_ws_bn_relu(len(branches) * out_channels, out_channels, 1), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


# --------------------------------------------------------------------------------------
# Encoder: dilated ResNet-50 with the deep stem and the semantic side input
# --------------------------------------------------------------------------------------

def _stage(in_channels: int, planes: int, blocks: int, stride: int, first_dilation: int,
           dilation: int) -> nn.Sequential:
    """A Bottleneck stage; ``first_dilation`` for block 0, ``dilation`` for the others."""
    out_channels = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
    layers = [Bottleneck(in_channels, planes, stride, downsample, first_dilation)]
    layers += [Bottleneck(out_channels, planes, dilation=dilation) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class SIMEncoder(nn.Module):
    """``networks/util.py: ResnetDilatedBN(l_resnet50(), dilate_scale=8)`` with the widened first conv.

    ``forward(x, smap)`` returns the six feature maps the decoder reads, as the official
    ``return_feature_maps=True`` does: ``[x, stem, layer1, layer2, layer3, layer4]`` (the max-pool indices the
    official code also returns are never used and are left out).
    """

    def __init__(self, n_channel: int = 11, semantic_channels: int = 20, layers: Sequence[int] = (3, 4, 6, 3)):
        super().__init__()
        # Registration order = the official state_dict order: conv1, conv1_side, bn1, conv2, bn2, conv3, bn3, ...
        self.conv1 = nn.Conv2d(n_channel, 64, 3, stride=2, padding=1, bias=False)
        self.conv1_side = nn.Conv2d(semantic_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # l_resnet50 (inplanes 128) with _nostride_dilate: layer3's and layer4's stride-2 convolutions run with
        # stride 1; the first block of layer3 keeps dilation 1, its others get 2; layer4: 2 for the first, 4 after.
        self.layer1 = _stage(128, 64, layers[0], stride=1, first_dilation=1, dilation=1)
        self.layer2 = _stage(256, 128, layers[1], stride=2, first_dilation=1, dilation=1)
        self.layer3 = _stage(512, 256, layers[2], stride=1, first_dilation=1, dilation=2)
        self.layer4 = _stage(1024, 512, layers[3], stride=1, first_dilation=2, dilation=4)

    def forward(self, x: torch.Tensor, smap: torch.Tensor) -> list[torch.Tensor]:
        features = [x]
        y = self.relu1(self.bn1(self.conv1(x) + self.conv1_side(smap)))
        y = self.relu2(self.bn2(self.conv2(y)))
        y = self.relu3(self.bn3(self.conv3(y)))
        features.append(y)
        y = self.maxpool(y)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            y = stage(y)
            features.append(y)
        return features


# --------------------------------------------------------------------------------------
# Decoder
# --------------------------------------------------------------------------------------

def _ws_up_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [WSConv2d(in_channels, out_channels, 3, padding=1, bias=True), nn.BatchNorm2d(out_channels),
            nn.LeakyReLU()]


def _head(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 → LeakyReLU → 3×3 → LeakyReLU → 1×1 (no bias), plain convolutions (``conv_up4_*``)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1, bias=True), nn.LeakyReLU(),
        nn.Conv2d(32, 16, 3, padding=1, bias=True), nn.LeakyReLU(),
        nn.Conv2d(16, out_channels, 1, padding=0, bias=False),
    )


class SIMDecoder(nn.Module):
    """``networks/model.py: Decoder(args)`` (batch norm): ASPP on layer4, three up-sampling steps, alpha head."""

    def __init__(self, atrous_rates: Sequence[int] = (12, 24, 36), aspp_channel: int = 256):
        super().__init__()
        middle = 2048
        self.global_module = WSASPP(middle, atrous_rates, aspp_channel)
        self.conv_up1 = nn.Sequential(*_ws_up_block(middle + aspp_channel, 256), *_ws_up_block(256, 256))
        self.conv_up2 = nn.Sequential(*_ws_up_block(256 + 256, 256))
        self.conv_up3 = nn.Sequential(*_ws_up_block(256 + 128, 64))
        self.conv_up4_alpha = _head(64 + 3 + 3 + 2, 1)
        self.conv_up4_fb = _head(64 + 3 + 3 + 2, 6)
        self.conv_up4_attn = _head(64, 3)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, features: Sequence[torch.Tensor], image: torch.Tensor, two_chan_trimap: torch.Tensor,
                is_training: bool = True) -> dict[str, torch.Tensor]:
        network_input, stem, layer1, _layer2, _layer3, layer4 = features
        x = torch.cat([layer4, self.global_module(layer4)], 1)
        x = self._up(self.conv_up1(x))
        x = self._up(self.conv_up2(torch.cat((x, layer1), 1)))
        x = self._up(self.conv_up3(torch.cat((x, stem), 1)))
        y = torch.cat((x, network_input[:, :3], image, two_chan_trimap), 1)
        output = {"alpha": torch.clamp(self.conv_up4_alpha(y), 0, 1)}
        if is_training:
            fb = self.conv_up4_fb(y)
            output["fg"] = torch.sigmoid(fb[:, 0:3])
            output["bg"] = torch.sigmoid(fb[:, 3:6])
            attention = torch.sigmoid(self.conv_up4_attn(x))
            output.update({"r1": attention[:, 0:1], "r2": attention[:, 1:2], "r3": attention[:, 2:3]})
        return output


# --------------------------------------------------------------------------------------
# The matting network
# --------------------------------------------------------------------------------------

def recognise(shapes: Mapping[str, tuple]) -> str | None:
    if "encoder.conv1_side.weight" in shapes and "decoder.conv_up4_alpha.0.weight" in shapes:
        return "Semantic Image Matting, the matting network (arch 'sim')"
    return None


@register_architecture(
    "sim", recognise=recognise, input_config=INPUT, fast_backend="onnxruntime",
    description="MattingModule(args, ResnetDilatedBN(l_resnet50(), dilate_scale=8), Decoder(args)) = "
                "networks/model.py build_model(args), args.arch = (encoder='resnet50_BN', n_channel=11, "
                "atrous_rates=[12, 24, 36], aspp_channel=256)")
class SIM(nn.Module):
    """The official ``MattingModule`` built by ``build_model(args)``; the arguments are ``args.arch``'s.

    ``n_channel`` 11 feeds ``cat(image_n, trimap_transformed, two_chan_trimap)`` to the encoder, 5 (an official
    option without released weights) ``cat(image_n, two_chan_trimap)``. Only the ``resnet50_BN`` encoder is
    ported (the other official choice, ``resnet50_GN_WS``, has no released checkpoint).

    ``forward`` returns a dict like the official one: ``alpha`` (N×1×H×W in [0, 1]) and, with
    ``is_training=True`` (the official default), ``fg``, ``bg``, ``r1``, ``r2``, ``r3``. H and W must be
    multiples of 8 (the official inference pads to that).
    """

    def __init__(self, encoder: str = "resnet50_BN", n_channel: int = 11, atrous_rates: Sequence[int] = (12, 24, 36),
                 aspp_channel: int = 256):
        super().__init__()
        if encoder != "resnet50_BN":
            raise MattingError(f"SIM: only the 'resnet50_BN' encoder is ported, not {encoder!r}.")
        if n_channel not in (5, 11):
            raise MattingError(f"SIM: n_channel must be 5 or 11 (as in the official MattingModule), got {n_channel!r}.")
        self.inc = int(n_channel)
        self.encoder = SIMEncoder(n_channel=self.inc)
        self.decoder = SIMDecoder(tuple(atrous_rates), int(aspp_channel))

    def forward(self, image, two_chan_trimap, image_n, trimap_transformed, smap, inputs=None, is_training=True):
        height, width = image.shape[-2:]
        if height % STRIDE or width % STRIDE:
            raise MattingError(f"SIM needs a height and width that are multiples of {STRIDE}; got {height}×{width} "
                               "(pad the image first, as matting.adapters.sim.pad_to_stride does).")
        if self.inc == 11:
            network_input = torch.cat((image_n, trimap_transformed, two_chan_trimap), 1)
        else:
            network_input = torch.cat((image_n, two_chan_trimap), 1)
        features = self.encoder(network_input, smap)
        return self.decoder(features, image, two_chan_trimap, is_training=is_training)


# --------------------------------------------------------------------------------------
# The classifier that makes the semantic trimap
# --------------------------------------------------------------------------------------

_CLASSIFIER_HEADS = {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}


def _looks_like_classifier(shapes: Mapping[str, tuple]) -> bool:
    heads = {k.split(".", 1)[0] for k in shapes}
    return heads == _CLASSIFIER_HEADS and tuple(shapes.get("fc.weight", ()))[:1] == (len(SIM_CLASSES),)


def _without_first_component(keys) -> dict:
    return {key.split(".", 1)[1] if "." in key else key: key for key in keys}


def recognise_classifier(shapes: Mapping[str, tuple]) -> str | None:
    renamed = _without_first_component(shapes)
    if _looks_like_classifier(shapes) or _looks_like_classifier({k: shapes[v] for k, v in renamed.items()}):
        return "Semantic Image Matting, the 20-class semantic classifier (arch 'sim_classifier')"
    return None


def classifier_checkpoint_filter(checkpoint: Mapping, model: nn.Module) -> dict:
    """The official classifier checkpoint's ``state_dict`` with the first dotted component of every key removed,
    as ``scripts/main.py: remove_prefix`` does before its strict load.

    :func:`matting.weights.read_checkpoint` has already removed a ``module.`` prefix present on every key (the
    likely prefix), so a state dict whose keys already are the network's is returned as it is; otherwise the
    first component is stripped from each key.
    """
    needed = {key for key in model.state_dict() if not key.endswith("num_batches_tracked")}
    if needed <= set(checkpoint):
        return dict(checkpoint)
    return {(key.split(".", 1)[1] if "." in key else key): value for key, value in checkpoint.items()}


@register_architecture(
    "sim_classifier", checkpoint_filter=classifier_checkpoint_filter, recognise=recognise_classifier,
    input_config=CLASSIFIER_INPUT, fast_backend="onnxruntime",
    description="networks/resnet.py resnet50(inc=4, num_classes=20, pretrained=False) (torchvision layout; "
                "forward returns (logits, cam, conv_out))")
class SIMClassifier(ResNet):
    """The official classifier: ResNet-50 (7×7 stem, torchvision's Bottleneck v1.5) with ``inc`` input channels
    and ``num_classes`` outputs. ``forward(x)`` returns ``(logits, cam, conv_out)`` like the official
    ``_forward_impl``: ``cam = einsum('dc,nchw->ndhw', fc.weight, layer4)`` (class activation maps, no bias) and
    ``conv_out = [layer1, layer2, layer3, layer4, avgpool]``.
    """

    def __init__(self, inc: int = 4, num_classes: int = len(SIM_CLASSES)):
        if int(inc) < 1 or int(num_classes) < 1:
            raise MattingError(f"SIM classifier: inc and num_classes must be positive, got {inc!r}, {num_classes!r}.")
        super().__init__((3, 4, 6, 3), in_channels=int(inc), num_classes=int(num_classes))

    def forward(self, x: torch.Tensor):
        y = self.maxpool(self.forward_stem(x))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            y = stage(y)
            features.append(y)
        cam = torch.einsum("dc,nchw->ndhw", self.fc.weight, y)
        pooled = self.avgpool(y)
        features.append(pooled)
        logits = self.fc(torch.flatten(pooled, 1))
        return logits, cam, features
