"""SHM — Semantic Human Matting (Chen et al., ACM MM 2018), lizhengwei1992's unofficial light
re-implementation (branch ``fast_human_matting``): automatic portrait matting.

No official SHM code or weights exist. Processing follows that port's ``test_camera.py``
(``seg_process``, default ``--size 256``), re-implemented here:

1. the image as OpenCV gives it: 8-bit **BGR** (our float RGB is rounded to 8 bits, channels swapped);
2. ``cv2.resize`` to 256×256 with ``INTER_CUBIC`` on the 8-bit image (aspect ratio not kept);
3. ``(image − (104, 112, 121)) / 255`` per B, G, R channel in float64, then float32, N×C×H×W;
4. ``trimap, alpha = net(inputs)``: T-Net's 3-class logits and the fused ``alpha_p``;
5. ``cv2.resize(alpha[0, 0], (W, H), INTER_CUBIC)`` back to the image size.

The script stops there (and composites for display); its alpha can leave [0, 1] (the fusion has no
clamp and cubic interpolation overshoots: −0.05…1.035 on scikit-image's astronaut). Here it is then
clipped to [0, 1] (step 6), as every method's alpha is.
"""
from __future__ import annotations

import numpy as np

from ..io import to_uint8
from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap
from . import torch_utils

CHECKPOINT = "shm_fast_human_matting"
SIZE = 256  # test_camera.py --size (default)
BGR_MEAN = (104.0, 112.0, 121.0)

OUTPUTS = (
    OutputMap("trimap", "rgb",
              "T-Net's 3-class trimap, softmax of its logits at 256×256, resized back with cubic interpolation: "
              "red = class 0 ('bg' in the port), green = class 1 ('fg'), blue = class 2 ('unsure'). The port's "
              "training turned class 1 into the person and class 2 into the band where M-Net's alpha is used."),
    OutputMap("raw_alpha", "alpha",
              "M-Net's raw alpha (alpha_r, no activation) before the fusion alpha = P(fg) + P(unsure) · alpha_r, "
              "resized back with cubic interpolation and clipped to [0, 1] for display. Only meaningful where "
              "P(unsure) is large."),
)


def preprocess(image: np.ndarray) -> np.ndarray:
    """Float RGB image in [0, 1] → the port's 1×3×256×256 float32 network input (steps 1–3)."""
    import cv2

    bgr = to_uint8(image)[:, :, ::-1]
    small = cv2.resize(np.ascontiguousarray(bgr), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    x = (small - np.asarray(BGR_MEAN)) / 255.0
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def to_image_size(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """Step 5: a 256×256 float map back to ``height`` × ``width`` with ``INTER_CUBIC`` (not clipped)."""
    import cv2

    return cv2.resize(np.ascontiguousarray(plane, dtype=np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


def official_alpha(image: np.ndarray, model) -> tuple[np.ndarray, dict]:
    """The port's alpha at the image size before any clipping (steps 1–5), and the network's raw outputs."""
    import torch.nn.functional as F

    height, width = image.shape[:2]
    with torch_utils.inference():
        x = torch_utils.from_nchw(preprocess(image))
        trimap, alpha_p, alpha_r = torch_utils.run(model, x, return_raw_alpha=True)
        probabilities = F.softmax(trimap, dim=1)
    raw = {"trimap_logits": trimap[0].cpu().numpy(), "probabilities": probabilities[0].cpu().numpy(),
           "alpha_p": torch_utils.plane(alpha_p), "alpha_r": torch_utils.plane(alpha_r)}
    return to_image_size(raw["alpha_p"], height, width), raw


def load(params: dict):
    return torch_utils.load_model("shm", CHECKPOINT)


def compute(inputs: Inputs, params: dict, model) -> MethodOutput:
    height, width = inputs.shape
    alpha, raw = official_alpha(inputs.image, model)
    trimap = np.stack([to_image_size(p, height, width) for p in raw["probabilities"]], axis=2)
    maps = {
        "trimap": IntermediateMap(np.clip(trimap, 0.0, 1.0), "rgb", OUTPUTS[0].description),
        "raw_alpha": IntermediateMap(np.clip(to_image_size(raw["alpha_r"], height, width), 0.0, 1.0), "alpha",
                                     OUTPUTS[1].description),
    }
    # Step 6 (not in the port): clip. On most photos a few per cent of the pixels lie slightly outside.
    return MethodOutput(alpha=np.clip(alpha, 0.0, 1.0), maps=maps, run_resolution=(SIZE, SIZE))


SPEC = MethodSpec(
    id="shm", name="SHM (unofficial light re-implementation)", family="automatic", compute=compute, load=load,
    outputs=OUTPUTS, weights=(CHECKPOINT,),
    card=Card(
        paper="Semantic Human Matting",
        authors="Quan Chen, Tiezheng Ge, Yanyu Xu, Zhiqiang Zhang, Xinxin Yang, Kun Gai",
        year=2018, venue="ACM Multimedia 2018", paper_url="https://arxiv.org/abs/1809.01354",
        code="github.com/lizhengwei1992/Semantic_Human_Matting, branch fast_human_matting (commit 9e3ccc1): an "
             "unofficial light re-implementation, not the paper's networks; no official code was ever released "
             "(network re-implemented in matting/models/shm.py)",
        code_license="none stated (the repository has no LICENSE file and its README states no licence)",
        weights_license="none stated: ckpt/fpn_human_matting/model/ckpt_lastest.pth of that branch, trained by "
                        "the port's author on his own ~6k portraits; no official SHM weights exist",
        how_it_works=(
            "SHM's idea: a trimap network (T-Net) predicts background / foreground / unknown classes, a matting "
            "network (M-Net) predicts alpha from the image and those probabilities, and a fusion takes the "
            "foreground probability plus the unknown probability times M-Net's alpha. This is the port's "
            "unofficial light re-implementation, not the paper's networks (PSPNet-50 and a VGG-16 "
            "encoder–decoder): T-Net is a residual-dense-block FPN (RD_FPNnet), M-Net a tiny 4-level "
            "encoder–decoder (M_tiny_net), ~0.9 M parameters in all. Processing as in the port's test_camera.py: "
            "8-bit BGR image stretched to 256×256 with cubic interpolation, minus (104, 112, 121), divided by "
            "255; the fused alpha resized back with cubic interpolation."),
        notes=(
            "Unofficial light re-implementation, not the paper's networks. Trained on portraits only: the alpha "
            "is a smooth, segmentation-like person matte at 256×256 resolution (no hair detail); photos "
            "without a person come out near 0. The port's own output is not clipped (fusion without clamp, "
            "cubic overshoot): here alpha is clipped to [0, 1] after the port's last step. The port's training "
            "used another mean, (114, 121, 134); its test script's (104, 112, 121) is used, as the port "
            "runs it."),
    ),
)

register(SPEC)
