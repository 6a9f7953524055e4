"""Background Matting V2 (Lin et al., CVPR 2021): matting with a clean plate of the background.

Inference follows the official ``inference_images.py`` and ``doc/model_usage.md`` of
PeterL1n/BackgroundMattingV2:

* source and background are RGB ``ToTensor()`` (0…1), no normalisation;
* ``MattingRefine(backbone, backbone_scale, refine_mode, refine_sample_pixels, refine_threshold,
  refine_kernel_size=3)``; the documented presets are HD (``backbone_scale=0.25``,
  ``refine_sample_pixels=80_000``) and 4K (``0.125``, ``320_000``); model defaults
  ``refine_mode='sampling'``, ``refine_threshold=0.1`` (the script's own CLI default threshold is 0.7);
* the answer is ``pha`` and ``fgr``; the script writes ``err`` upsampled bilinearly
  (``align_corners=False``) and ``ref`` upsampled with nearest-neighbour to the source size.

The official model asserts that height and width are divisible by 4. Other sizes are padded here at
the bottom/right by repeating the edge pixels (at most 3 rows/columns) and the outputs cropped back.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import MattingError
from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param
from . import torch_utils

BACKBONES = {"mobilenetv2": "bgmv2_mobilenetv2", "resnet50": "bgmv2_resnet50", "resnet101": "bgmv2_resnet101"}
PRESETS = {"HD": (0.25, 80_000), "4K": (0.125, 320_000)}
REFINE_MODES = ("sampling", "thresholding", "full")
MIN_BACKBONE_SIDE = 1
SMALL_BACKBONE_SIDE = 32

OUTPUTS = (
    OutputMap("coarse_alpha", "alpha",
              "pha_sm: the base network's coarse alpha at backbone_scale × the image size, upsampled bilinearly "
              "for display."),
    OutputMap("coarse_foreground", "rgb",
              "fgr_sm: the base network's coarse foreground colours (source + predicted residual) at the "
              "backbone resolution, upsampled bilinearly."),
    OutputMap("error", "error",
              "err_sm: the base network's prediction of its own alpha error, at the backbone resolution, "
              "upsampled bilinearly as inference_images.py writes it. The refiner picks patches where it is large."),
    OutputMap("refined_patches", "overlay",
              "ref_sm: 1 where a 4×4 full-resolution patch was recomputed by the refiner, 0 where the upsampled "
              "coarse result was kept (nearest-neighbour upsampling, as inference_images.py writes it)."),
)


def padding(height: int, width: int) -> tuple[int, int]:
    """Rows and columns to add (bottom, right) so both sides are divisible by 4."""
    return (-height) % 4, (-width) % 4


def settings(params: dict) -> tuple[float, int]:
    """(backbone_scale, refine_sample_pixels) of the chosen preset, or the explicit values for 'custom'."""
    if params["preset"] in PRESETS:
        return PRESETS[params["preset"]]
    return float(params["backbone_scale"]), int(params["refine_sample_pixels"])


def load(params: dict):
    """The MattingRefine network for these parameters, with the chosen backbone's official weights."""
    backbone_scale, sample_pixels = settings(params)
    return torch_utils.load_model(
        "bgmv2_refine", BACKBONES[params["backbone"]], backbone=params["backbone"], backbone_scale=backbone_scale,
        refine_mode=params["refine_mode"], refine_sample_pixels=sample_pixels,
        refine_threshold=float(params["refine_threshold"]), refine_kernel_size=3)


def compute(inputs: Inputs, params: dict, model) -> MethodOutput:
    import torch.nn.functional as F

    height, width = inputs.shape
    backbone_scale, sample_pixels = settings(params)
    pad_bottom, pad_right = padding(height, width)
    full_height, full_width = height + pad_bottom, width + pad_right
    backbone_size = (math.floor(full_height * backbone_scale), math.floor(full_width * backbone_scale))
    if min(backbone_size) < MIN_BACKBONE_SIDE:
        raise MattingError(
            f"The image is too small for backbone_scale {backbone_scale:g}: the base network would run at "
            f"{backbone_size[1]}×{backbone_size[0]} pixels. Use a larger image or a larger backbone scale "
            "(preset 'custom').")

    with torch_utils.inference():
        src, bgr = torch_utils.to_tensor(inputs.image), torch_utils.to_tensor(inputs.background)
        if pad_bottom or pad_right:
            src = F.pad(src, (0, pad_right, 0, pad_bottom), mode="replicate")
            bgr = F.pad(bgr, (0, pad_right, 0, pad_bottom), mode="replicate")
        pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm = torch_utils.run(model, src, bgr)
        size = (full_height, full_width)
        coarse_alpha = F.interpolate(pha_sm, size, mode="bilinear", align_corners=False)
        coarse_foreground = F.interpolate(fgr_sm, size, mode="bilinear", align_corners=False)
        error = F.interpolate(err_sm, size, mode="bilinear", align_corners=False)
        refined = F.interpolate(ref_sm, size, mode="nearest")
        refined_fraction = float(ref_sm.mean())

    def crop(array):
        return np.clip(array[:height, :width], 0.0, 1.0)

    arrays = {
        "coarse_alpha": crop(torch_utils.plane(coarse_alpha)),
        "coarse_foreground": crop(torch_utils.rgb(coarse_foreground)),
        "error": crop(torch_utils.plane(error)),
        "refined_patches": crop(torch_utils.plane(refined)),
    }
    maps = {spec.name: IntermediateMap(arrays[spec.name], spec.kind,
                                       spec.description + (f" Refined: {refined_fraction:.1%} of the patches."
                                                           if spec.name == "refined_patches" else ""))
            for spec in OUTPUTS}
    warnings = []
    if min(backbone_size) < SMALL_BACKBONE_SIDE:
        warnings.append(f"The base network ran at only {backbone_size[1]}×{backbone_size[0]} pixels "
                        f"(backbone_scale {backbone_scale:g}); for an image this small choose preset 'custom' "
                        "with a larger backbone scale (up to 0.5).")
    if pad_bottom or pad_right:
        warnings.append(f"BackgroundMattingV2 needs sides divisible by 4: the image was padded by {pad_right} "
                        f"column(s) and {pad_bottom} row(s) of repeated edge pixels, and the result cropped back.")
    return MethodOutput(alpha=crop(torch_utils.plane(pha)), foreground=crop(torch_utils.rgb(fgr)), maps=maps,
                        run_resolution=(full_width, full_height), warnings=warnings)


SPEC = MethodSpec(
    id="bgmv2", name="Background Matting V2", family="background", compute=compute, load=load,
    required_inputs=("background",), provides_foreground=True,
    params=(
        Param("backbone", "mobilenetv2",
              "Encoder of the base network; each has its own official checkpoint (MobileNetV2 20 MB, "
              "ResNet-50 161 MB, ResNet-101 237 MB).", kind="choice", choices=tuple(BACKBONES), label="Backbone",
              checkpoints=BACKBONES),
        Param("preset", "HD",
              "The authors' recommended settings: HD = backbone_scale 0.25 and 80,000 refined pixels (for "
              "~1920×1080), 4K = 0.125 and 320,000 (for ~3840×2160); 'custom' uses the two values below.",
              kind="choice", choices=tuple(PRESETS) + ("custom",), label="Preset"),
        Param("backbone_scale", 0.25,
              "Only for preset 'custom': the base network runs on the image scaled by this factor (at most 1/2).",
              minimum=0.03125, maximum=0.5, label="Backbone scale"),
        Param("refine_mode", "sampling",
              "Which 4×4 patches the refiner recomputes at full resolution: 'sampling' = a fixed number of the "
              "patches with the largest predicted error, 'thresholding' = every patch whose error exceeds the "
              "threshold, 'full' = all of them (slow; the authors use it for debugging).",
              kind="choice", choices=REFINE_MODES, label="Refine mode"),
        Param("refine_sample_pixels", 80_000,
              "Only for preset 'custom' with refine mode 'sampling': pixels to refine (in 4×4 patches, so "
              "this / 16 patches).", kind="int", minimum=16, maximum=10_000_000, label="Refined pixels"),
        Param("refine_threshold", 0.1,
              "Only for refine mode 'thresholding': refine where the predicted error exceeds this "
              "(model default 0.1; inference_images.py's command-line default is 0.7).",
              minimum=0.0, maximum=1.0, label="Refine threshold"),
    ),
    outputs=OUTPUTS, weights=tuple(BACKBONES.values()),
    card=Card(
        paper="Real-Time High-Resolution Background Matting",
        authors="Shanchuan Lin, Andrey Ryabtsev, Soumyadip Sengupta, Brian Curless, Steve Seitz, "
                "Ira Kemelmacher-Shlizerman",
        year=2021, venue="CVPR 2021", paper_url="https://arxiv.org/abs/2012.07810",
        code="github.com/PeterL1n/BackgroundMattingV2 (network re-implemented in matting/models/bgmv2.py)",
        code_license="MIT (since 2020-12-21)",
        weights_license="MIT (official PyTorch checkpoints, release v1.0.0)",
        how_it_works=(
            "Needs a second photo of the same scene without the subject (a 'clean plate'). A DeepLabV3-style "
            "base network sees the photo and the plate at reduced resolution (backbone_scale) and predicts a "
            "coarse alpha, foreground colours, an error map and hidden features. A small refiner then "
            "recomputes, at full resolution, only the 4×4 patches where the predicted error is large, which "
            "makes 4K real-time on a GPU. Official inference (inference_images.py): RGB in [0, 1] without "
            "normalisation; presets from doc/model_usage.md (HD: scale 0.25, 80,000 pixels; 4K: 0.125, 320,000)."),
        notes=(
            "The plate must be aligned with the photo (same camera position and exposure); moving cameras, "
            "changed lighting or shadows of the subject break the difference cue. The method predicts its own "
            "foreground colours (foreground = 'model'). Sides not divisible by 4 are edge-padded and cropped "
            "back (the official model refuses them)."),
    ),
)

register(SPEC)
