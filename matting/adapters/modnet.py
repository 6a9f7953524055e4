"""MODNet trimap-free portrait matting (Ke et al., AAAI 2022).

Pre- and post-processing follow the official image demo (ZHKKKe/MODNet
``demo/image_matting/colab/inference.py``), re-implemented here:

* RGB ``ToTensor()`` (0…1) then ``Normalize((0.5,)*3, (0.5,)*3)`` → [−1, 1];
* reference-size rule (``ref_size = 512``): if the longer side is below 512 or the shorter side above
  512, the shorter side becomes 512 and the longer one ``int(long / short * 512)``; otherwise the size
  is kept; then both sides are rounded *down* to a multiple of 32 (:func:`input_size`);
* ``F.interpolate(..., mode='area')`` to that size, ``modnet(im, True)`` → ``pred_matte``, and
  ``F.interpolate(..., mode='area')`` back to the image size.

The official script then writes ``(matte * 255).astype('uint8')`` (truncation); the float matte is
kept here.
"""
from __future__ import annotations

import numpy as np

from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param
from . import torch_utils

REF_SIZE = 512
STRIDE = 32
CHECKPOINTS = {"photographic": "modnet_photographic", "webcam": "modnet_webcam"}

OUTPUTS = (
    OutputMap("semantic", "alpha",
              "Semantic branch (pred_semantic): coarse person probability predicted at 1/16 of the network's "
              "input size, upsampled bilinearly for display. Trained against a blurred, downsampled matte."),
    OutputMap("detail", "alpha",
              "Detail branch (pred_detail) at the network's input size, resized back with 'area'. Trained only "
              "inside the transition band around the subject's outline: elsewhere its values mean nothing."),
    OutputMap("matte", "alpha", "Fusion branch (pred_matte): the final matte, which is also the method's alpha."),
)


def input_size(height: int, width: int, ref_size: int = REF_SIZE) -> tuple[int, int]:
    """The official demo's network input size (height, width) for an image of ``height`` × ``width``.

    Sides are multiples of 32; a side that the official rule would round down to 0 (a side under 32
    pixels) is set to 32 here, where the official code would fail.
    """
    if max(height, width) < ref_size or min(height, width) > ref_size:
        if width >= height:
            new_height, new_width = ref_size, int(width / height * ref_size)
        else:
            new_height, new_width = int(height / width * ref_size), ref_size
    else:
        new_height, new_width = height, width
    new_height -= new_height % STRIDE
    new_width -= new_width % STRIDE
    return max(new_height, STRIDE), max(new_width, STRIDE)


def load(params: dict):
    return torch_utils.load_model("modnet", CHECKPOINTS[params["checkpoint"]])


def compute(inputs: Inputs, params: dict, model) -> MethodOutput:
    import torch.nn.functional as F

    height, width = inputs.shape
    run_height, run_width = input_size(height, width)
    with torch_utils.inference():
        image = (torch_utils.to_tensor(inputs.image) - 0.5) / 0.5
        image = F.interpolate(image, size=(run_height, run_width), mode="area")
        semantic, detail, matte = torch_utils.run(model, image, False)  # inference=False also returns the two branch maps
        matte = F.interpolate(matte, size=(height, width), mode="area")
        detail = F.interpolate(detail, size=(height, width), mode="area")
        semantic = F.interpolate(semantic, size=(height, width), mode="bilinear", align_corners=False)
    alpha = torch_utils.plane(matte)
    arrays = {"semantic": torch_utils.plane(semantic), "detail": torch_utils.plane(detail), "matte": alpha}
    maps = {spec.name: IntermediateMap(np.clip(arrays[spec.name], 0, 1), spec.kind, spec.description)
            for spec in OUTPUTS}
    return MethodOutput(alpha=alpha, maps=maps, run_resolution=(run_width, run_height))


SPEC = MethodSpec(
    id="modnet", name="MODNet (portrait)", family="automatic", compute=compute, load=load,
    params=(
        Param("checkpoint", "photographic",
              "Official weights: 'photographic' (trained for portrait photos) or 'webcam' (for webcam video "
              "frames).", kind="choice", choices=tuple(CHECKPOINTS), label="Checkpoint",
              checkpoints=CHECKPOINTS),
    ),
    outputs=OUTPUTS, weights=tuple(CHECKPOINTS.values()),
    card=Card(
        paper="MODNet: Real-Time Trimap-Free Portrait Matting via Objective Decomposition",
        authors="Zhanghan Ke, Jiayu Sun, Kaican Li, Qiong Yan, Rynson W. H. Lau",
        year=2022, venue="AAAI 2022 (arXiv:2011.11961, 2020)", paper_url="https://arxiv.org/abs/2011.11961",
        code="github.com/ZHKKKe/MODNet (network re-implemented in matting/models/modnet.py)",
        code_license="Apache-2.0 (since 2022-01-28; the repository was CC BY-NC-SA 4.0 before)",
        weights_license="Apache-2.0 (README 'License': code, models and demos; CC BY-NC-SA 4.0 before 2022-01-28)",
        how_it_works=(
            "Portrait matting without a trimap, split into three sub-objectives that share one MobileNetV2 "
            "encoder: a semantic branch predicts a coarse person mask at 1/16 resolution, a detail branch "
            "works at high resolution on the image and shallow features to resolve the boundary, and a "
            "fusion branch combines both into the matte. Official inference (demo/image_matting/colab/"
            "inference.py): RGB normalised to [−1, 1]; the image is resized with 'area' interpolation so the "
            "shorter side is 512 when the image is smaller than 512 on both sides or larger on both "
            "(else kept), both sides rounded down to multiples of 32; the matte is resized back with 'area'."),
        notes=(
            "Trained on portraits only: other subjects are not 'foreground'. The semantic and detail maps "
            "come from the same forward pass with the official inference flag off (the matte is identical "
            "either way). Very thin images (a side under 32 pixels after the size rule) run at 32 pixels "
            "on that side, where the official code would fail."),
    ),
)

register(SPEC)
