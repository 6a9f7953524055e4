"""Automatic pipelines: a segmentation network's mask → automatic trimap → closed-form matting.

Each step is a registered piece of the workbench, run through its own session: the model method
(U²-NetP or selfie segmentation, loaded once), :func:`matting.trimap.from_mask`, and the ``closed_form``
method. The trimap
band (``erode`` pixels into the mask become unknown, ``dilate`` pixels out of it) is given for images
up to 1024 pixels on the longer side and, with ``scale_band`` on, grows in proportion for larger
images (a 4000-pixel photo gets a band ~4× wider), since the mask's blur and the hair to be recovered
scale with the photo. Pixels of the model's soft mask that are neither near 0 nor near 1 are always
unknown (``from_mask``'s soft margin), so the model's own uncertain edge stays unknown whatever the band.
"""
from __future__ import annotations

import numpy as np

from ..errors import MattingError
from ..registry import register
from ..runner import session
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param

REFERENCE_SIDE = 1024


def band_widths(params: dict, shape) -> tuple[int, int]:
    """(erode, dilate) in pixels for an image of ``shape`` (H, W)."""
    factor = max(1.0, max(shape[:2]) / REFERENCE_SIDE) if params["scale_band"] else 1.0
    return int(round(params["erode"] * factor)), int(round(params["dilate"] * factor))


def _loader(model_method: str):
    def load(params: dict) -> dict:
        """The two steps' sessions: the segmentation model (its network loaded now) and closed-form."""
        return {"model": session(model_method, foreground="none"),
                "refine": session("closed_form", epsilon=params["epsilon"], radius=params["radius"],
                                  foreground="none")}

    return load


def _pipeline(model_label: str):
    def compute(inputs: Inputs, params: dict, steps: dict) -> MethodOutput:
        from ..trimap import BACKGROUND, FOREGROUND, from_mask

        first = steps["model"].run_prepared(Inputs(image=inputs.image))
        mask = first.alpha
        erode, dilate = band_widths(params, inputs.shape)
        trimap = from_mask(mask, erode=erode, dilate=dilate, threshold=params["threshold"])
        for value, what in ((FOREGROUND, "foreground"), (BACKGROUND, "background")):
            if not (trimap == value).any():
                raise MattingError(
                    f"{model_label} left no definite {what} after the trimap band of {erode}/{dilate} pixels "
                    f"(mask threshold {params['threshold']:g}): nothing to refine. "
                    + ("Narrow the band (erode/dilate) or lower the threshold."
                       if what == "foreground" else "Narrow the band (erode/dilate) or raise the threshold."))
        refined = steps["refine"].run_prepared(Inputs(image=inputs.image, trimap=trimap))
        alpha = refined.alpha
        maps = {
            "model_alpha": IntermediateMap(mask, "alpha", OUTPUT_TEXT["model_alpha"].format(model=model_label)),
            "mask": IntermediateMap((mask >= params["threshold"]).astype(np.float32), "alpha",
                                    OUTPUT_TEXT["mask"].format(threshold=params["threshold"])),
            "trimap": IntermediateMap(trimap.astype(np.float32) / 255.0, "trimap",
                                      OUTPUT_TEXT["trimap"].format(erode=erode, dilate=dilate)),
            "refined_alpha": IntermediateMap(alpha, "alpha", OUTPUT_TEXT["refined_alpha"]),
        }
        return MethodOutput(alpha=alpha, maps=maps, run_resolution=(inputs.shape[1], inputs.shape[0]),
                            warnings=list(first.warnings) + list(refined.warnings))

    return compute


OUTPUT_TEXT = {
    "model_alpha": "The raw soft output of {model}, at the image size.",
    "mask": "The binary mask: model output ≥ {threshold:g}.",
    "trimap": "The automatic trimap: mask eroded by {erode} px = foreground (white), outside the mask dilated "
              "by {dilate} px = background (black), the band between and every uncertain model pixel = unknown.",
    "refined_alpha": "Closed-form matting (Levin et al. 2008) inside the unknown band, at full resolution: the alpha.",
}
OUTPUTS = tuple(OutputMap(name, "trimap" if name == "trimap" else "alpha", text) for name, text in OUTPUT_TEXT.items())

# The trimap band around a mask, read by band_widths (also by the click → SAM → trimap pipeline).
BAND_PARAMS = (
    Param("erode", 10, "Band width inside the mask that becomes unknown, in pixels (for a 1024-pixel image side).",
          kind="int", minimum=0, maximum=200, label="Erode (px)"),
    Param("dilate", 10, "Band width outside the mask that becomes unknown, in pixels (for a 1024-pixel image side).",
          kind="int", minimum=0, maximum=200, label="Dilate (px)"),
    Param("scale_band", True, "Widen the band in proportion for images whose longer side exceeds 1024 pixels.",
          kind="bool", label="Scale band with image size"),
)

PARAMS = BAND_PARAMS + (
    Param("threshold", 0.5, "Model output at or above which a pixel is inside the mask.",
          minimum=0.01, maximum=0.99, label="Mask threshold"),
    Param("epsilon", 1e-7, "Closed-form regulariser of the local colour-line model; larger = smoother alpha.",
          minimum=1e-10, maximum=1e-1, log_scale=True),
    Param("radius", 1, "Closed-form window radius in pixels.", kind="int", minimum=1, maximum=5),
)

CLOSED_FORM = "closed-form matting (Levin, Lischinski, Weiss, TPAMI 2008) through pymatting (MIT)"

_SPECS = [
    MethodSpec(
        id="u2netp_closed_form", name="U²-NetP → trimap → closed-form", family="automatic",
        compute=_pipeline("U²-NetP"), load=_loader("u2netp"), params=PARAMS, outputs=OUTPUTS, weights=("u2netp",),
        card=Card(
            paper="U²-Net (Qin et al., Pattern Recognition 2020) + A Closed-Form Solution to Natural Image "
                  "Matting (Levin et al., TPAMI 2008)",
            authors="Xuebin Qin et al.; Anat Levin, Dani Lischinski, Yair Weiss", year=2020,
            venue="Pattern Recognition 106 (2020); IEEE TPAMI 30(2) (2008)",
            paper_url="https://arxiv.org/abs/2005.09007",
            code="this workbench: the u2netp method, matting.trimap.from_mask and the closed_form method "
                 "(pymatting)",
            code_license="Apache-2.0 (U²-Net); MIT (pymatting)",
            weights_license="Apache-2.0 (official U²-NetP weights)",
            how_it_works=(
                "U²-NetP finds the salient object (its official pre/post-processing, see the u2netp method); "
                "its map is thresholded, eroded and dilated into a trimap, and closed-form matting solves "
                "alpha inside the unknown band at full resolution from the image's colours. The network "
                "decides what the subject is; the matting Laplacian recovers the soft edge it cannot draw "
                "at 320×320."),
            notes=(
                "The same recipe as rembg's alpha-matting option (U²-Net mask → eroded/dilated trimap → "
                "pymatting closed-form), with our own trimap rule. If the network misses part of the subject, "
                "the trimap marks it as definite background and matting cannot bring it back; a band that is "
                "too wide lets similar-coloured background leak in. Closed-form time grows with the number of "
                "unknown pixels."),
        ),
    ),
    MethodSpec(
        id="selfie_closed_form", name="Selfie segmentation → trimap → closed-form", family="automatic",
        compute=_pipeline("selfie segmentation"), load=_loader("selfie_segmentation"), params=PARAMS,
        outputs=OUTPUTS,
        weights=("selfie_segmenter",),
        card=Card(
            paper="Fast Deep Matting for Portrait Animation on Mobile Phone (the idea); A Closed-Form Solution "
                  "to Natural Image Matting (the refinement used here)",
            authors="Bingke Zhu, Yingying Chen, Jinqiao Wang, Si Liu, Bo Zhang, Ming Tang; "
                    "Anat Levin, Dani Lischinski, Yair Weiss",
            year=2017, venue="ACM Multimedia 2017 (doi:10.1145/3123266.3123286); IEEE TPAMI 30(2) (2008)",
            paper_url="https://arxiv.org/abs/1707.08289",
            code="this workbench: the selfie_segmentation method (MediaPipe model via OpenCV), "
                 "matting.trimap.from_mask and the closed_form method (pymatting)",
            code_license="Apache-2.0 (MediaPipe); MIT (pymatting)",
            weights_license="Apache-2.0 (MediaPipe selfie segmentation model)",
            how_it_works=(
                "The idea of Fast Deep Matting for portraits (Zhu et al. 2017): a fast segmentation network "
                "finds the person, and a second step turns the binary mask into a matte. Zhu et al. learn that "
                "second step (a 'feathering block', a trainable guided filter); here it is replaced by "
                "classical closed-form matting on an automatic trimap: the 256×256 MediaPipe mask is "
                "thresholded, eroded and dilated into a trimap and alpha is solved in the unknown band at full "
                "resolution."),
            notes=(
                "Portraits only (the segmenter knows people). The mask comes from a 256×256 input, so the "
                "person's outline is only approximately right in large photos: raise the band if hair is cut "
                "off. " + CLOSED_FORM + "."),
        ),
    ),
]

for _spec in _SPECS:
    register(_spec)
