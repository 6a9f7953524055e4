"""Deep Image Matting (Xu et al., CVPR 2017), huochaitiantang's PyTorch port and its stage-1 checkpoint.

Pre- and post-processing follow the port's test code (``core/deploy.py``: ``inference_img_whole`` and
``inference_once``, with the defaults ``--crop_or_resize whole --max_size 1600`` that ``core/demo.py``
also uses), re-implemented here:

* network size: ``new_h = min(max_size, h − h % 32)``, ``new_w = min(max_size, w − w % 32)`` (each side
  separately, so an image larger than ``max_size`` is squeezed, not scaled uniformly);
* the 8-bit image and the trimap are resized with ``cv2.resize(..., INTER_LINEAR)`` (the trimap too, so
  its resized edges take in-between values);
* image: BGR→RGB, ``ToTensor()`` (/255), ``Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])``;
  fourth channel: trimap / 255;
* stage 1: the answer is the encoder–decoder output ``pred_mattes``, resized back with
  ``cv2.resize(..., INTER_LINEAR)``; then pixels that are 255 in the original trimap are set to 1 and
  pixels that are 0 are set to 0 ("only attention unknown region").

The port then saves ``(alpha * 255).astype(uint8)``; the float alpha is kept here.
"""
from __future__ import annotations

import numpy as np

from ..io import to_uint8
from ..models.constants import IMAGENET_MEAN, IMAGENET_STD
from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param
from . import torch_utils

STRIDE = 32
MAX_SIZE = 1600
CHECKPOINT = "dim_stage1"

OUTPUTS = (
    OutputMap("raw_alpha", "alpha",
              "The encoder–decoder's alpha (pred_mattes) everywhere, resized back to the image, before the "
              "trimap's known regions are fixed to 0 and 1."),
)


def input_size(height: int, width: int, max_size: int = MAX_SIZE) -> tuple[int, int]:
    """The port's 'whole' network size (height, width); ``max_size`` is rounded down to a multiple of 32
    and a side below 32 pixels runs at 32 (the port would fail on it)."""
    max_size = max(STRIDE, max_size - max_size % STRIDE)
    return (max(STRIDE, min(max_size, height - height % STRIDE)),
            max(STRIDE, min(max_size, width - width % STRIDE)))


def load(params: dict):
    return torch_utils.load_model("dim", CHECKPOINT)


def compute(inputs: Inputs, params: dict, model) -> MethodOutput:
    import cv2
    import torch

    height, width = inputs.shape
    run_height, run_width = input_size(height, width, int(params["max_size"]))
    image = cv2.resize(to_uint8(inputs.image), (run_width, run_height), interpolation=cv2.INTER_LINEAR)
    trimap = cv2.resize(inputs.trimap, (run_width, run_height), interpolation=cv2.INTER_LINEAR)
    with torch_utils.inference():
        rgb = torch_utils.to_tensor(image.astype(np.float32)) / 255.0
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=rgb.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=rgb.device).view(1, 3, 1, 1)
        network_input = torch.cat(((rgb - mean) / std, torch_utils.to_tensor(trimap.astype(np.float32)) / 255.0), 1)
        pred_mattes, _ = torch_utils.run(model, network_input)
    raw = cv2.resize(torch_utils.plane(pred_mattes), (width, height), interpolation=cv2.INTER_LINEAR)
    alpha = raw.copy()
    alpha[inputs.trimap == 255] = 1.0
    alpha[inputs.trimap == 0] = 0.0
    maps = {"raw_alpha": IntermediateMap(np.clip(raw, 0, 1), "alpha", OUTPUTS[0].description)}
    return MethodOutput(alpha=alpha, maps=maps, run_resolution=(run_width, run_height))


SPEC = MethodSpec(
    id="dim", name="Deep Image Matting", family="trimap", compute=compute, load=load,
    one_of_inputs=("trimap",),
    scribbles_note="It was trained on dense trimaps. Turn scribbles into a trimap first "
                   "(matting.trimap.dense_from_scribbles, or 'Strokes → trimap' in the app).",
    params=(
        Param("max_size", MAX_SIZE,
              "Largest network input side (the port's --max_size, default 1600). Each side is rounded down "
              "to a multiple of 32 and capped at this value separately, as in the port.",
              kind="int", minimum=STRIDE, maximum=4096, label="Max size"),
    ),
    outputs=OUTPUTS, weights=(CHECKPOINT,),
    card=Card(
        paper="Deep Image Matting",
        authors="Ning Xu, Brian Price, Scott Cohen, Thomas Huang",
        year=2017, venue="CVPR 2017", paper_url="https://arxiv.org/abs/1703.03872",
        code="github.com/huochaitiantang/pytorch-deep-image-matting (unofficial PyTorch port; network "
             "re-implemented in matting/models/dim.py)",
        code_license="no licence file in the port's repository (its code is not copied here)",
        weights_license="non-commercial only: the port's README (Disclaimer) says that, as covered by the Adobe "
                        "Image Dataset licence agreement, its pre-trained models can only be used and "
                        "distributed for non-commercial purposes",
        how_it_works=(
            "The first deep network for trimap-based matting: a VGG-16 encoder–decoder takes the image and the "
            "trimap as a fourth channel and predicts alpha, trained on composites of the Adobe matting data set "
            "over COCO/VOC backgrounds (alpha loss plus compositional loss). This port adds skip connections "
            "(the 2020 checkpoint, SAD 52.9 on Composition-1k). Test-time processing of the port's deploy.py "
            "('whole' mode): both sides rounded down to multiples of 32 and capped at max_size, bilinear "
            "resize (cv2) of image and trimap, ImageNet normalisation, trimap / 255 as the fourth channel; "
            "the output is resized back bilinearly and the trimap's known pixels are fixed to 0 and 1."),
        notes=(
            "Stage-1 checkpoint (stage1_skip_sad_52.9.pth): the encoder–decoder only, without the paper's "
            "refinement stage (the only released refinement weights predate the current network). The paper "
            "runs at full resolution; the port caps the input side at max_size and squeezes larger images "
            "anisotropically. A whole 1600×1600 pass needs several GB of memory on the CPU."),
    ),
)

register(SPEC)
