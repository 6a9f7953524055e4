"""MediaPipe Selfie Segmentation (general 256×256 model), a TFLite graph run by OpenCV's ``cv2.dnn``.

Not a torch network: the published file is the runtime graph itself, so this architecture has a
``load_file`` instead of a builder. :class:`SelfieSegmenter` serialises the (stateful) OpenCV forward
with a lock, so one loaded model can serve concurrent requests.
"""
from __future__ import annotations

import threading

import numpy as np

from ..errors import MattingError
from .registry import Architecture, InputConfig, add_architecture

INPUT = InputConfig(
    channels=("R", "G", "B"), value_range=(0.0, 1.0),
    size_rule="stretched to 256×256 (aspect ratio not kept), bilinear", example_size=(256, 256),
)
INPUT_SIZE = 256


class SelfieSegmenter:
    """``segmenter(blob) -> 256×256 float32 person probability`` for a 1×3×256×256 RGB blob in [0, 1]."""

    def __init__(self, net):
        self.net = net
        self._lock = threading.Lock()

    def __call__(self, blob: np.ndarray) -> np.ndarray:
        with self._lock:
            self.net.setInput(blob)
            output = self.net.forward()
        return np.asarray(output, np.float32).reshape(INPUT_SIZE, INPUT_SIZE)


def load_file(path) -> SelfieSegmenter:
    import cv2

    if not hasattr(cv2.dnn, "readNetFromTFLite"):
        raise MattingError(f"This OpenCV ({cv2.__version__}) cannot read TFLite models "
                           "(cv2.dnn.readNetFromTFLite needs OpenCV ≥ 4.8).")
    try:
        return SelfieSegmenter(cv2.dnn.readNetFromTFLite(str(path)))
    except cv2.error as exc:
        raise MattingError(f"OpenCV could not read {path} as a TFLite model: {exc}") from None


add_architecture(Architecture("selfie_segmenter", build=None, load_file=load_file, input_config=INPUT,
                              description="MediaPipe selfie_segmentation.tflite (run by cv2.dnn)", module=__name__))
