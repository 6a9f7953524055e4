"""FDMPA's idea, runnable: selfie segmentation → guided-filter feathering.

Fast Deep Matting for Portrait Animation (Zhu et al., ACM MM 2017) segments the person with a tiny network
and turns the mask into a matte with a learned "feathering block", a trainable layer modelled on the
guided filter. No FDMPA weights exist (see :mod:`matting.adapters.unavailable`), so this method keeps the
idea and replaces both learned parts with what the workbench can run: MediaPipe's selfie segmenter
(the ``selfie_segmentation`` method, run through its own session) for the mask, and He et al.'s guided
filter (ECCV 2010 / TPAMI 2013) for the feathering — OpenCV contrib's ``cv2.ximgproc.guidedFilter`` with
the photo (RGB, float32 in [0, 1]) as the guide and the soft mask as the filtered input, ``radius`` in
pixels and ``eps`` the regulariser on the guide's [0, 1] scale. The unofficial FDMPA port ships the same
classical stand-in (``core/seg2guidedfilter.py``: guided filter, radius 60, eps 1e-6).

Inside each window the output is an affine function of the photo's colours (a·I + b), so it follows the
photo's edges where the mask is uncertain and is smooth where the mask is flat; the result is clipped
to [0, 1] (the filter can overshoot by a little at strong edges).
"""
from __future__ import annotations

import numpy as np

from ..errors import MattingError
from ..registry import register
from ..runner import session
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param

MASK_METHOD = "selfie_segmentation"

PARAMS = (
    Param("radius", 16, "Window radius of the guided filter in pixels: how far the feathering reaches from the "
                        "mask's edge (He et al.'s feathering example and FDMPA's port use 60).", kind="int", minimum=1, maximum=200, label="Radius (px)"),
    Param("eps", 1e-4, "Regulariser ε of the guided filter on the photo's [0, 1] colour scale: smaller follows the "
                       "photo's edges more closely, larger gives a smoother, blurrier alpha (He et al.'s feathering example: 1e-6).",
          minimum=1e-8, maximum=1.0, log_scale=True, label="ε"),
)

OUTPUTS = (
    OutputMap("mask", "alpha", "The selfie segmenter's soft person mask at the image size: the guided filter's input."),
)


def guided_filter_module():
    """``cv2.ximgproc`` (opencv-contrib), or a MattingError saying how to get it."""
    import cv2

    if not hasattr(cv2, "ximgproc") or not hasattr(cv2.ximgproc, "guidedFilter"):
        raise MattingError(
            "The guided filter needs OpenCV's contrib modules (cv2.ximgproc): install "
            "opencv-contrib-python-headless in place of opencv-python-headless (see requirements.txt).")
    return cv2.ximgproc


def feather(image: np.ndarray, mask: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """The guided filter of ``mask`` (float H×W) guided by ``image`` (float H×W×3 in [0, 1]), clipped to [0, 1]."""
    ximgproc = guided_filter_module()
    guide = np.ascontiguousarray(image, dtype=np.float32)
    source = np.ascontiguousarray(mask, dtype=np.float32)
    filtered = ximgproc.guidedFilter(guide, source, int(radius), float(eps), -1)
    return np.clip(filtered, 0.0, 1.0).astype(np.float32)


def load(params: dict) -> dict:
    """The segmenter's session (its network loaded now); also checks that the guided filter exists."""
    guided_filter_module()
    return {"mask": session(MASK_METHOD, foreground="none")}


def compute(inputs: Inputs, params: dict, steps: dict) -> MethodOutput:
    first = steps["mask"].run_prepared(Inputs(image=inputs.image))
    alpha = feather(inputs.image, first.alpha, params["radius"], params["eps"])
    return MethodOutput(alpha=alpha, maps={"mask": IntermediateMap(first.alpha, "alpha", OUTPUTS[0].description)},
                        run_resolution=(inputs.shape[1], inputs.shape[0]), warnings=list(first.warnings))


SPEC = MethodSpec(
    id="selfie_guided_filter", name="Selfie segmentation → guided-filter feathering (FDMPA's idea)",
    family="automatic", compute=compute, load=load, params=PARAMS, outputs=OUTPUTS, weights=("selfie_segmenter",),
    card=Card(
        paper="Fast Deep Matting for Portrait Animation on Mobile Phone (the idea); Guided Image Filtering "
              "(the feathering used here)",
        authors="Bingke Zhu, Yingying Chen, Jinqiao Wang, Si Liu, Bo Zhang, Ming Tang; "
                "Kaiming He, Jian Sun, Xiaoou Tang",
        year=2017, venue="ACM Multimedia 2017 (doi:10.1145/3123266.3123286); ECCV 2010 / IEEE TPAMI 35(6) (2013)",
        paper_url="https://arxiv.org/abs/1707.08289",
        code="this workbench: the selfie_segmentation method (MediaPipe model via OpenCV) and "
             "cv2.ximgproc.guidedFilter (opencv-contrib); not the FDMPA network, which has no weights",
        code_license="Apache-2.0 (MediaPipe; OpenCV)",
        weights_license="Apache-2.0 (MediaPipe selfie segmentation model)",
        how_it_works=(
            "The idea of Fast Deep Matting for portraits: a fast segmentation finds the person and a feathering "
            "step turns the mask into a matte. Zhu et al. learn both; here the mask is MediaPipe's selfie "
            "segmenter and the feathering is He et al.'s guided filter: in every (2·radius+1)² window the "
            "output is a linear function of the photo's colours fitted to the mask (ε regularises the fit), so "
            "the soft mask's edge moves onto the photo's own edges and gets their softness."),
        notes=(
            "FDMPA's idea, not its network (no FDMPA weights exist anywhere; see the FDMPA card). A filter, not "
            "a solver: it cannot recover hair the mask missed far from the edge, and where the background has "
            "colours like the person the edge stays blurry. Portraits only (the segmenter knows people)."),
    ),
)

register(SPEC)
