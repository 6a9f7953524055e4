"""ViTMatte (Yao et al., Information Fusion 2024) through Hugging Face ``transformers``.

The official processing is the library's own ``VitMatteImageProcessor`` (loaded from the checkpoint's
``preprocessor_config.json``), used as it is: the 8-bit image and the trimap are rescaled by 1/255, the
image normalised with mean = std = 0.5, the trimap appended as a fourth channel (0, 128/255, 1), and
the four channels zero-padded at the right and bottom to multiples of 32. The network's ``alphas`` are
cropped back to the image (``alphas[..., :H, :W]``, as the model card's example does). Then the
trimap's known pixels are kept: 255 → 1, 0 → 0 (the ``raw_alpha`` map shows the network's output
before that).

The whole image runs at full resolution, as in the paper's evaluation; memory grows with the pixel
count (ViT-S at 1024×1024 needs about 2 GB on the CPU).
"""
from __future__ import annotations

import numpy as np

from ..io import to_uint8
from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param
from . import torch_utils

CHECKPOINTS = {
    "small_composition_1k": "vitmatte_small_c1k",
    "base_composition_1k": "vitmatte_base_c1k",
    "small_distinctions_646": "vitmatte_small_d646",
    "base_distinctions_646": "vitmatte_base_d646",
}
DEFAULT_CHECKPOINT = "small_composition_1k"

OUTPUTS = (
    OutputMap("raw_alpha", "alpha",
              "ViTMatte's alpha everywhere (cropped back from the padded input), before the trimap's known "
              "pixels are fixed to 0 and 1."),
)


def load(params: dict):
    bundle = torch_utils.load_model("vitmatte", CHECKPOINTS[params["checkpoint"]])
    return bundle.to(torch_utils.device())


def predict(bundle, image: np.ndarray, trimap: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """ViTMatte's raw alpha (H×W float32) for a float image in [0, 1] and a uint8 trimap, and the padded
    (width, height) it ran at: processor → model → crop, nothing else."""
    height, width = image.shape[:2]
    encoded = bundle.processor(images=to_uint8(image), trimaps=trimap, return_tensors="pt")
    pixel_values = encoded["pixel_values"].to(bundle.device)
    with torch_utils.library_forward():
        alphas = bundle.model(pixel_values=pixel_values).alphas
    raw = alphas[0, 0, :height, :width].to("cpu", torch_utils.torch_float32()).numpy().copy()
    return raw, (int(pixel_values.shape[-1]), int(pixel_values.shape[-2]))


def compute(inputs: Inputs, params: dict, bundle) -> MethodOutput:
    raw, run_size = predict(bundle, inputs.image, inputs.trimap)
    alpha = raw.copy()
    alpha[inputs.trimap == 255] = 1.0
    alpha[inputs.trimap == 0] = 0.0
    maps = {"raw_alpha": IntermediateMap(np.clip(raw, 0, 1), "alpha", OUTPUTS[0].description)}
    return MethodOutput(alpha=alpha, maps=maps, run_resolution=run_size)


SPEC = MethodSpec(
    id="vitmatte", name="ViTMatte", family="trimap", compute=compute, load=load,
    one_of_inputs=("trimap",),
    scribbles_note="It was trained on dense trimaps. Turn scribbles into a trimap first "
                   "(matting.trimap.dense_from_scribbles, or 'Strokes → trimap' in the app).",
    params=(
        Param("checkpoint", DEFAULT_CHECKPOINT,
              "Which published ViTMatte: ViT-S (small) or ViT-B (base) backbone, trained on Composition-1k "
              "(Adobe, objects) or Distinctions-646.",
              kind="choice", choices=tuple(CHECKPOINTS), checkpoints=CHECKPOINTS, label="Checkpoint"),
    ),
    outputs=OUTPUTS, weights=tuple(CHECKPOINTS.values()),
    card=Card(
        paper="ViTMatte: Boosting Image Matting with Pretrained Plain Vision Transformers",
        authors="Jingfeng Yao, Xinggang Wang, Shusheng Yang, Baoyuan Wang",
        year=2024, venue="Information Fusion 103 (2024), 102091", paper_url="https://arxiv.org/abs/2305.15272",
        code="github.com/hustvl/ViTMatte; run here through Hugging Face transformers (VitMatteForImageMatting "
             "and VitMatteImageProcessor, used as they are)",
        code_license="MIT (hustvl/ViTMatte); Apache-2.0 (transformers)",
        weights_license="non-commercial: the checkpoints were trained on the Adobe Deep Image Matting data set "
                        "(Composition-1k) or on Distinctions-646, both licensed for non-commercial research "
                        "only (the Hub model cards carry an apache-2.0 tag, which does not lift the data "
                        "licence)",
        how_it_works=(
            "A plain Vision Transformer (ViTDet, pretrained with DINO) takes the image and the trimap as a "
            "fourth channel; a light 'detail capture' convolution stream on the full-resolution input adds "
            "the fine structure the 16-pixel patches lose, and fusion blocks decode alpha. The library's "
            "processor normalises (mean = std = 0.5), appends trimap / 255 and zero-pads to multiples of 32; "
            "the alpha is cropped back and the trimap's known pixels are kept."),
        notes=(
            "Small: ViT-S (about 25 M parameters); base: ViT-B (about 97 M). The paper reports SAD 21.5 (S) "
            "and 20.3 (B) on Composition-1k. Runs at full resolution: large photos need a lot of memory. "
            "Needs the transformers package (imported only when ViTMatte runs)."),
    ),
)

register(SPEC)
