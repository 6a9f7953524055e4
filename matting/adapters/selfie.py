"""MediaPipe Selfie Segmentation (general 256×256 model) run through OpenCV's TFLite reader.

The processing mirrors MediaPipe's own graph (``mediapipe/modules/selfie_segmentation/
selfie_segmentation_cpu.pbtxt``): the RGB image is stretched to 256×256 (``keep_aspect_ratio: false``)
as floats in [0, 1]; the model's single output is already a probability (``activation: NONE`` in
``TensorsToSegmentationCalculator``), which is resized bilinearly back to the image size.
Here: ``cv2.dnn.blobFromImage(rgb_uint8, 1/255, (256, 256))`` (bilinear resize, no channel swap: the
model wants RGB) → ``net.forward()`` (1×1×256×256) → ``cv2.resize(..., INTER_LINEAR)``.
MediaPipe resizes with an affine warp rather than ``cv2.resize``; the masks agree to IoU 0.992
(../shared/notes/offline-weights.md).
"""
from __future__ import annotations

import numpy as np

from ..io import to_uint8
from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap
from . import torch_utils

CHECKPOINT = "selfie_segmenter"
INPUT_SIZE = 256

OUTPUTS = (
    OutputMap("network_mask", "alpha",
              "The model's 256×256 output shown with nearest-neighbour upsampling: the resolution the "
              "segmentation really has."),
)

def load(params: dict | None = None):
    """The OpenCV-run TFLite segmenter (cached per file)."""
    return torch_utils.load_model("selfie_segmenter", CHECKPOINT)


def segment(image: np.ndarray, segmenter=None) -> np.ndarray:
    """Float32 256×256 person probability for an RGB float image in [0, 1]."""
    import cv2

    segmenter = segmenter or load()
    blob = cv2.dnn.blobFromImage(to_uint8(image), 1.0 / 255.0, (INPUT_SIZE, INPUT_SIZE), swapRB=False, crop=False)
    return segmenter(blob)


def compute(inputs: Inputs, params: dict, segmenter) -> MethodOutput:
    import cv2

    height, width = inputs.shape
    small = segment(inputs.image, segmenter)
    mask = np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    coarse = cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)
    maps = {"network_mask": IntermediateMap(np.clip(coarse, 0, 1), "alpha", OUTPUTS[0].description)}
    return MethodOutput(alpha=mask, maps=maps, run_resolution=(INPUT_SIZE, INPUT_SIZE))


SPEC = MethodSpec(
    id="selfie_segmentation", name="Selfie segmentation (MediaPipe)", family="automatic", compute=compute,
    load=load, outputs=OUTPUTS, weights=(CHECKPOINT,),
    card=Card(
        paper="MediaPipe Selfie Segmentation (model card); MediaPipe: A Framework for Building Perception Pipelines",
        authors="Google (model); Camillo Lugaresi et al. (framework)", year=2021,
        venue="Google model card, 2021; arXiv:1906.08172 (framework, 2019)",
        paper_url="https://arxiv.org/abs/1906.08172",
        code="github.com/google-ai-edge/mediapipe (graph selfie_segmentation_cpu.pbtxt; here the .tflite is run "
             "by OpenCV's cv2.dnn)",
        code_license="Apache-2.0",
        weights_license="Apache-2.0 (selfie_segmentation.tflite from the mediapipe 0.10.21 wheel)",
        how_it_works=(
            "A small MobileNetV3-style encoder–decoder made for real-time video calls: the whole image is "
            "stretched to 256×256 (aspect ratio not kept), values in [0, 1], and the network outputs the "
            "probability that each pixel belongs to a person; that map is resized back bilinearly. "
            "Processing as in MediaPipe's selfie_segmentation_cpu graph."),
        notes=(
            "A segmentation mask, not a matte: it says where the person is, with soft edges only 3–5 pixels "
            "wide at 256×256 (so tens of pixels in a large photo) and no hair strands. Use it as a source of "
            "an automatic trimap (see 'selfie segmentation → trimap → closed-form'). Only people count as "
            "foreground; objects they hold may or may not be included."),
    ),
)

register(SPEC)
