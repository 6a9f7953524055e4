"""Background Matting V2 (Lin et al., "Real-Time High-Resolution Background Matting", CVPR 2021).

Follows github.com/PeterL1n/BackgroundMattingV2 ``model/model.py``, ``model/decoder.py``,
``model/refiner.py``, ``model/mobilenet.py`` and ``model/resnet.py``: same constructor
arguments, forward signatures, outputs and ``state_dict()`` keys, so the official
``pytorch_{mobilenetv2,resnet50,resnet101}.pth`` checkpoints load unchanged.

The network sees the source image and a captured background (RGB in [0, 1]):

* :class:`MattingBase` runs a DeepLabV3-style encoder-decoder at the input resolution
  and predicts alpha, a foreground residual, an error map and 32 hidden channels.
* :class:`MattingRefine` runs the same base network on a downsampled copy, then the
  :class:`Refiner` recomputes 4x4 full-resolution patches where the predicted error is
  large (``sampling`` / ``thresholding``) or everywhere (``full``).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import MattingError
from .backbones import ASPP, RESNET_LAYERS, MobileNetV2, ResNet
from .bgmv2_patches import crop_patches as _crop_patches, fast_module, replace_patches as _replace_patches, \
    resize_bilinear as _resize_bilinear
from .registry import Example, InputConfig, register_architecture

__all__ = [
    "BACKBONES",
    "MobileNetV2Encoder",
    "ResNetEncoder",
    "Decoder",
    "Base",
    "MattingBase",
    "Refiner",
    "MattingRefine",
]

BACKBONES = ("resnet50", "resnet101", "mobilenetv2")

# Channels of the base network's output: alpha, foreground residual (RGB), error, hidden.
_PHA, _FGR, _ERR, _HID = slice(0, 1), slice(1, 4), slice(4, 5), slice(5, None)
_HIDDEN_CHANNELS = 32


class MobileNetV2Encoder(MobileNetV2):
    """MobileNetV2 features at output stride 16, returning the feature pyramid.

    As in the official encoder: the final 1x1 convolution (1280 channels) and the
    classifier are removed, block 14 no longer strides, and blocks 15-17 use
    dilation 2 in their depthwise convolutions.
    """

    def __init__(self, in_channels: int):
        super().__init__(in_channels, num_classes=None)
        self.features = self.features[:-1]
        self.features[14].depthwise.stride = (1, 1)
        for block in self.features[15:]:
            block.depthwise.dilation = (2, 2)
            block.depthwise.padding = (2, 2)

    def forward(self, x: torch.Tensor):
        """Return ``(x4, x3, x2, x1, x0)`` at 1/16, 1/8, 1/4, 1/2 and 1/1 resolution."""
        x1 = self.features[:2](x)
        x2 = self.features[2:4](x1)
        x3 = self.features[4:7](x2)
        x4 = self.features[7:](x3)
        return x4, x3, x2, x1, x


class ResNetEncoder(ResNet):
    """ResNet-50/101 at output stride 16 (``layer4`` dilated), returning the feature pyramid."""

    def __init__(self, in_channels: int, variant: str = "resnet101"):
        super().__init__(RESNET_LAYERS[variant], in_channels=in_channels, num_classes=None,
                         replace_stride_with_dilation=(False, False, True))

    def forward(self, x: torch.Tensor):
        """Return ``(x4, x3, x2, x1, x0)`` at 1/16, 1/8, 1/4, 1/2 and 1/1 resolution."""
        x1 = self.forward_stem(x)
        x2 = self.layer1(self.maxpool(x1))
        x3 = self.layer2(x2)
        x4 = self.layer4(self.layer3(x3))
        return x4, x3, x2, x1, x


class Decoder(nn.Module):
    """Upsample x4 step by step, concatenating the encoder feature of each resolution.

    ``channels`` are the widths [input, after conv1, conv2, conv3, output];
    ``feature_channels`` those of the skip features x3, x2, x1, x0.
    """

    def __init__(self, channels, feature_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(feature_channels[0] + channels[0], channels[1], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[1])
        self.conv2 = nn.Conv2d(feature_channels[1] + channels[1], channels[2], 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels[2])
        self.conv3 = nn.Conv2d(feature_channels[2] + channels[2], channels[3], 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels[3])
        self.conv4 = nn.Conv2d(feature_channels[3] + channels[3], channels[4], 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _upsample_and_concat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
        return torch.cat([x, skip], dim=1)

    def forward(self, x4, x3, x2, x1, x0):
        x = self.relu(self.bn1(self.conv1(self._upsample_and_concat(x4, x3))))
        x = self.relu(self.bn2(self.conv2(self._upsample_and_concat(x, x2))))
        x = self.relu(self.bn3(self.conv3(self._upsample_and_concat(x, x1))))
        return self.conv4(self._upsample_and_concat(x, x0))


class Base(nn.Module):
    """Encoder (ResNet or MobileNetV2) -> ASPP -> decoder, any number of in/out channels."""

    def __init__(self, backbone: str, in_channels: int, out_channels: int):
        super().__init__()
        if backbone not in BACKBONES:
            raise MattingError(f"Unknown BackgroundMattingV2 backbone {backbone!r}; "
                               f"expected one of {', '.join(BACKBONES)}.")
        if backbone in ("resnet50", "resnet101"):
            self.backbone = ResNetEncoder(in_channels, variant=backbone)
            self.aspp = ASPP(2048, [3, 6, 9])
            self.decoder = Decoder([256, 128, 64, 48, out_channels], [512, 256, 64, in_channels])
        else:
            self.backbone = MobileNetV2Encoder(in_channels)
            self.aspp = ASPP(320, [3, 6, 9])
            self.decoder = Decoder([256, 128, 64, 48, out_channels], [32, 24, 16, in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_decode(x)

    def encode_decode(self, x: torch.Tensor) -> torch.Tensor:
        """The raw (unclamped) decoder output at the resolution of ``x``."""
        x, *shortcuts = self.backbone(x)
        return self.decoder(self.aspp(x), *shortcuts)


class MattingBase(Base):
    """The coarse network alone, run at the input resolution.

    ``forward(src, bgr) -> (pha, fgr, err, hid)``: alpha (B,1,H,W), foreground
    (B,3,H,W), error (B,1,H,W), all in [0, 1], and the hidden encoding (B,32,H,W).
    """

    def __init__(self, backbone: str):
        super().__init__(backbone, in_channels=6, out_channels=1 + 3 + 1 + _HIDDEN_CHANNELS)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        x = self.encode_decode(torch.cat([src, bgr], dim=1))
        pha = x[:, _PHA].clamp(0.0, 1.0)
        fgr = (x[:, _FGR] + src).clamp(0.0, 1.0)
        err = x[:, _ERR].clamp(0.0, 1.0)
        hid = x[:, _HID].relu()
        return pha, fgr, err, hid


class Refiner(nn.Module):
    """Recompute alpha and foreground residual at full resolution in 4x4 patches.

    Modes: ``full`` refines everywhere with ordinary convolutions; ``sampling``
    refines the ``sample_pixels // 16`` quarter-resolution positions of largest error
    (skipping zero-error positions when ``prevent_oversampling``); ``thresholding``
    refines where ``err > threshold``.

    ``patch_crop_method`` ('unfold', 'roi_align', 'gather') and ``patch_replace_method``
    ('scatter_nd', 'scatter_element') only select export-friendly formulations in the
    official code that compute the same values; they are validated and stored here,
    and the patches are always cut out with ``unfold`` and written back by indexing.

    ``forward(src, bgr, pha, fgr, err, hid) -> (pha, fgr, ref)`` with full-resolution
    alpha and foreground residual (not yet clamped) and the (B,1,H/4,W/4) selection map.
    """

    MODES = ("full", "sampling", "thresholding")
    PATCH_CROP_METHODS = ("unfold", "roi_align", "gather")
    PATCH_REPLACE_METHODS = ("scatter_nd", "scatter_element")

    def __init__(self, mode: str, sample_pixels: int, threshold: float, kernel_size: int = 3,
                 prevent_oversampling: bool = True, patch_crop_method: str = "unfold",
                 patch_replace_method: str = "scatter_nd"):
        super().__init__()
        _check_choice("refine_mode", mode, self.MODES)
        _check_choice("refine_kernel_size", kernel_size, (1, 3))
        _check_choice("refine_patch_crop_method", patch_crop_method, self.PATCH_CROP_METHODS)
        _check_choice("refine_patch_replace_method", patch_replace_method, self.PATCH_REPLACE_METHODS)
        self.mode = mode
        self.sample_pixels = sample_pixels
        self.threshold = threshold
        self.kernel_size = kernel_size
        self.prevent_oversampling = prevent_oversampling
        self.patch_crop_method = patch_crop_method
        self.patch_replace_method = patch_replace_method

        coarse_channels = _HIDDEN_CHANNELS + 1 + 3
        src_bgr_channels = 6
        self.conv1 = nn.Conv2d(coarse_channels + src_bgr_channels, 24, kernel_size, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.conv2 = nn.Conv2d(24, 16, kernel_size, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16 + src_bgr_channels, 12, kernel_size, bias=False)
        self.bn3 = nn.BatchNorm2d(12)
        self.conv4 = nn.Conv2d(12, 4, kernel_size, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, src, bgr, pha, fgr, err, hid):
        if self.mode == "full":
            return self._refine_everywhere(src, bgr, pha, fgr, hid)
        return self._refine_selected_patches(src, bgr, pha, fgr, err, hid)

    def _first_stage(self, coarse: torch.Tensor, src_bgr_half: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(torch.cat([coarse, src_bgr_half], dim=1))))
        return self.relu(self.bn2(self.conv2(x)))

    def _second_stage(self, x: torch.Tensor, src_bgr_full: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn3(self.conv3(torch.cat([x, src_bgr_full], dim=1))))
        return self.conv4(x)

    def _refine_everywhere(self, src, bgr, pha, fgr, hid):
        full_h, full_w = src.shape[2:]
        half_size = (full_h // 2, full_w // 2)
        src_bgr = torch.cat([src, bgr], dim=1)

        coarse = _resize_bilinear(torch.cat([hid, pha, fgr], dim=1), half_size)
        src_bgr_half = _resize_bilinear(src_bgr, half_size)
        if self.kernel_size == 3:
            # Two unpadded 3x3 convolutions eat 2 pixels per side; pad 3 so that one
            # extra pixel per side survives, i.e. 2 after the 2x upsampling below.
            coarse = F.pad(coarse, (3, 3, 3, 3))
            src_bgr_half = F.pad(src_bgr_half, (3, 3, 3, 3))
        x = self._first_stage(coarse, src_bgr_half)

        if self.kernel_size == 3:
            x = F.interpolate(x, (full_h + 4, full_w + 4), mode="nearest")
            src_bgr = F.pad(src_bgr, (2, 2, 2, 2))
        else:
            x = F.interpolate(x, (full_h, full_w), mode="nearest")
        x = self._second_stage(x, src_bgr)

        ref = torch.ones((src.size(0), 1, full_h // 4, full_w // 4), device=src.device, dtype=src.dtype)
        return x[:, :1], x[:, 1:], ref

    def _refine_selected_patches(self, src, bgr, pha, fgr, err, hid):
        full_h, full_w = src.shape[2:]
        half_size = (full_h // 2, full_w // 2)
        src_bgr = torch.cat([src, bgr], dim=1)

        err = _resize_bilinear(err, (full_h // 4, full_w // 4))
        ref = self.select_refinement_regions(err)
        index = torch.nonzero(ref.squeeze(1), as_tuple=True)  # (batch, row, col) of each patch

        out = _resize_bilinear(torch.cat([pha, fgr], dim=1), (full_h, full_w))
        if index[0].numel() > 0:
            # Each selected quarter-resolution position is a 2x2 patch at half resolution
            # and a 4x4 patch at full resolution, cropped with a margin that the
            # unpadded convolutions consume.
            half_margin, full_margin = (3, 2) if self.kernel_size == 3 else (0, 0)
            coarse = _crop_patches(_resize_bilinear(torch.cat([hid, pha, fgr], dim=1), half_size),
                                   index, 2, half_margin)
            src_bgr_half = _crop_patches(_resize_bilinear(src_bgr, half_size), index, 2, half_margin)
            x = self._first_stage(coarse, src_bgr_half)

            x = F.interpolate(x, 4 + 2 * full_margin, mode="nearest")
            x = self._second_stage(x, _crop_patches(src_bgr, index, 4, full_margin))
            out = _replace_patches(out, x, index)
        return out[:, :1], out[:, 1:], ref

    def select_refinement_regions(self, err: torch.Tensor) -> torch.Tensor:
        """(B,1,h,w) error map -> float map with 1 at the positions to refine."""
        if self.mode != "sampling":
            return err.gt(self.threshold).float()
        batch, _, h, w = err.shape
        err = err.view(batch, -1)
        # The official code lets topk fail when more patches are asked for than exist.
        num_patches = min(self.sample_pixels // 16, h * w)
        top = err.topk(num_patches, dim=1, sorted=False).indices
        ref = torch.zeros_like(err).scatter_(1, top, 1.0)
        if self.prevent_oversampling:
            ref = ref * err.gt(0).float()
        return ref.view(batch, 1, h, w)


class MattingRefine(MattingBase):
    """Base network on a ``backbone_scale`` copy of the inputs, then the :class:`Refiner`.

    ``forward(src, bgr) -> (pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)``: full-resolution
    alpha and foreground, the coarse alpha, foreground and error at the backbone
    resolution, and the quarter-resolution map of refined 4x4 patches. H and W must be
    multiples of 4.
    """

    def __init__(self,
                 backbone: str,
                 backbone_scale: float = 1 / 4,
                 refine_mode: str = "sampling",
                 refine_sample_pixels: int = 80_000,
                 refine_threshold: float = 0.1,
                 refine_kernel_size: int = 3,
                 refine_prevent_oversampling: bool = True,
                 refine_patch_crop_method: str = "unfold",
                 refine_patch_replace_method: str = "scatter_nd"):
        if not 0 < backbone_scale <= 1 / 2:
            raise MattingError(f"backbone_scale must be in (0, 1/2], got {backbone_scale}.")
        super().__init__(backbone)
        self.backbone_scale = backbone_scale
        self.refiner = Refiner(refine_mode, refine_sample_pixels, refine_threshold, refine_kernel_size,
                               refine_prevent_oversampling, refine_patch_crop_method,
                               refine_patch_replace_method)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor):
        return self.matte(src, bgr, self.encode_decode, self.refiner)

    def backbone_inputs(self, src: torch.Tensor, bgr: torch.Tensor):
        """``src`` and ``bgr`` resized to the backbone resolution (``backbone_scale``)."""
        height, width = src.shape[2:]
        # Same sizes as the official scale_factor + recompute_scale_factor=True resize.
        small_size = (math.floor(height * self.backbone_scale), math.floor(width * self.backbone_scale))
        return _resize_bilinear(src, small_size), _resize_bilinear(bgr, small_size)

    def matte(self, src: torch.Tensor, bgr: torch.Tensor, encode_decode, refiner):
        """:meth:`forward` with the coarse network (``encode_decode``: 6-channel input at the backbone
        resolution → its raw 37 channels) and the refiner given: the fast path
        (:func:`matting.models.bgmv2_patches.fast_module`) passes its own."""
        if src.shape != bgr.shape:
            raise MattingError(f"src and bgr must have the same shape, got {tuple(src.shape)} "
                               f"and {tuple(bgr.shape)}.")
        height, width = src.shape[2:]
        if height % 4 or width % 4:
            raise MattingError(f"src and bgr height and width must be multiples of 4, got {height}x{width}.")

        src_sm, bgr_sm = self.backbone_inputs(src, bgr)
        x = encode_decode(torch.cat([src_sm, bgr_sm], dim=1))
        pha_sm = x[:, _PHA].clamp(0.0, 1.0)
        fgr_residual_sm = x[:, _FGR]
        err_sm = x[:, _ERR].clamp(0.0, 1.0)
        hid_sm = x[:, _HID].relu()

        pha, fgr_residual, ref_sm = refiner(src, bgr, pha_sm, fgr_residual_sm, err_sm, hid_sm)
        pha = pha.clamp(0.0, 1.0)
        fgr = (fgr_residual + src).clamp(0.0, 1.0)
        fgr_sm = (src_sm + fgr_residual_sm).clamp(0.0, 1.0)
        return pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise MattingError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}.")


def recognise(shapes):
    """'BackgroundMattingV2 …' for a state dict with its module names, with the backbone it uses."""
    heads = {k.split(".", 1)[0] for k in shapes}
    if not {"backbone", "aspp", "decoder"} <= heads:
        return None
    if any(k.startswith("backbone.features.") for k in shapes):
        backbone = "mobilenetv2"
    elif "backbone.layer3.22.conv1.weight" in shapes:
        backbone = "resnet101"
    else:
        backbone = "resnet50"
    refine = "refiner" in heads
    return (f"BackgroundMattingV2 {'MattingRefine' if refine else 'MattingBase'} with a {backbone} backbone "
            f"(arch '{'bgmv2_refine' if refine else 'bgmv2_base'}')")


INPUT = InputConfig(
    channels=("R", "G", "B", "background R", "background G", "background B"), value_range=(0.0, 1.0),
    size_rule="any size with sides multiples of 4; the base network runs at backbone_scale",
    example_size=(1080, 1920), stride=4, split=(3, 3),
    # The official presets (inference_images.py / the paper): HD at 1/4 with 80k refined pixels, 4K at 1/8.
    examples=(Example((1080, 1920), {"backbone_scale": 0.25, "refine_mode": "sampling",
                                     "refine_sample_pixels": 80_000}, "HD"),
              Example((2160, 3840), {"backbone_scale": 0.125, "refine_mode": "sampling",
                                     "refine_sample_pixels": 320_000}, "4K")),
)

register_architecture("bgmv2_base", recognise=recognise, input_config=INPUT,
                      description="MattingBase(backbone)")(MattingBase)
register_architecture("bgmv2_refine", recognise=recognise, input_config=INPUT, fast_module=fast_module,
                      description="MattingRefine(backbone, backbone_scale, refine_mode, refine_sample_pixels, "
                                  "refine_threshold, ...)")(MattingRefine)
