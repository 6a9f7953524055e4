"""Background Matting v1 (Sengupta et al., CVPR 2020): matting with a captured background plate and a
soft person mask.

The steps of the official still-image test (``test_background-matting_image.py`` of
senguptaumd/Background-Matting, as described in ``../shared/notes/survey-methods.md`` §4 and
``../shared/fidelity/MANIFEST.md``), re-implemented here from that description:

0. **Mask** — officially DeepLabv3+ (TensorFlow, PASCAL class "person", saved as ``_masksDL.png``);
   the README allows any segmentation network. *Substitution:* here an automatic method of the
   workbench supplies it (``mask_method``, default selfie segmentation), rounded to 8 bits.
1. **Motion cues** — for a still image, four copies of the grey photo (the video script uses frames
   at ±20, ±40). They never reach the output (official bug, issue #36; see
   :mod:`matting.models.bgmv1`).
2. **Crop** (:func:`bounding_box`, :func:`crop`) — rows/columns of the mask's non-zero pixels give
   ``(r1, c1)`` and the extent ``s = max(r2 − r1, c2 − c1)``; the box runs from ``(r1, c1) − 0.1·s``
   to ``(r1, c1) + 1.1·s``, clamped to ``[0, H − 1]`` × ``[0, W − 1]`` (so the last row/column is never
   included), rounded (``np.around``) to (row, col, height, width). Photo, background, mask and
   motion frames are cut to it and resized with ``cv2.resize`` (bilinear) to 512×512 (``resolution``),
   8-bit images as 8-bit, so a clamped box is stretched (aspect ratio not kept), as officially.
3. **Mask processing** (:func:`process_mask`, on the 512×512 crop) — ``m = mask / 255``, values
   above 0.2 set to 1 (the rest kept); all-zero rows below row 250 are deleted together with the two
   rows above the first of them; the mask is padded at the bottom by replicating its last row, 25 rows
   plus as many as were deleted; eroded (3×3 ellipse, 10 iterations), dilated (5×5 ellipse, 5
   iterations), Gaussian-blurred (31×31, σ from the size), ``(255·m)`` truncated to 8 bits, and the 25
   rows 512…536 deleted, which leaves 512 rows again. So a person whose mask ends above the bottom of
   the crop (below row 250) is extended straight down to it.
4. **Network input** — RGB photo, background, processed mask and motion frames as ``2·x/255 − 1``.
5. **Network** — ``alpha_pred, fg_pred_tmp = net(img, bg, mask, multi)``.
6. **Post-processing** (:func:`postprocess`) — foreground = photo where ``alpha_pred > 0.95``, else
   ``fg_pred_tmp`` (the threshold is read here as applying to the network's tanh output in [−1, 1]); both maps ``(x + 1) / 2`` clipped to [0, 1]; alpha kept
   only on the **largest connected component** of ``alpha > 0.05`` (``skimage.measure.label``,
   8-connected); the foreground zeroed where the 8-bit alpha ``/ 255 ≤ 0.01``.
7. **Uncrop** (:func:`uncrop`) — each result resized (bilinear) to the box and pasted into a zero canvas
   of the image size.

Deviations: the official script writes 8-bit alpha and foreground (``(255·x).astype(uint8)``,
truncation) before uncropping; alpha and foreground stay float here (the foreground's ``> 0.01`` test
uses the 8-bit alpha, as officially). A frame whose alpha has no pixel above 0.05 is skipped by the
official script; here it gives a zero alpha and a warning. The hand-held model expects the background
already aligned to the photo (the official ``test_pre_process.py``: AKAZE features + homography); no
alignment is done here.
"""
from __future__ import annotations

import numpy as np

from ..errors import MattingError
from ..io import to_uint8
from ..registry import get, methods, register
from ..runner import session
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param
from . import torch_utils

CHECKPOINTS = {
    "real-fixed-cam": "bgmv1_real_fixed_cam",
    "real-hand-held": "bgmv1_real_hand_held",
    "syn-comp-adobe": "bgmv1_syn_comp_adobe",
}
RESOLUTION = 512  # the test script's reso
STRIDE = 4
BOX_MARGIN = 0.1
MASK_SATURATE = 0.2
MASK_ROW_LIMIT = 250
MASK_PAD_ROWS = 25
ERODE = (3, 10)  # (ellipse size, iterations)
DILATE = (5, 5)
BLUR = 31
KEEP_IMAGE_ABOVE = 0.95  # on the tanh alpha in [-1, 1]
COMPONENT_ABOVE = 0.05
FOREGROUND_ABOVE = 0.01

DEFAULT_MASK_METHOD = "selfie_segmentation"
# The automatic methods registered before this module (adapters/__init__.py imports it last).
MASK_METHODS = tuple(spec.id for spec in methods("automatic"))

OUTPUTS = (
    OutputMap("mask", "alpha",
              "The soft person mask the network was given: the chosen automatic method's output, cropped, "
              "resized to the working resolution and processed as in the official test script (saturated above "
              "0.2, extended to the bottom, eroded, dilated, blurred), pasted back into the image frame."),
    OutputMap("network_alpha", "alpha",
              "The network's alpha ((tanh + 1) / 2) before the largest-connected-component step, pasted back "
              "into the image frame (0 outside the crop)."),
    OutputMap("network_foreground", "rgb",
              "The network's own foreground prediction ((x + 1) / 2, clipped) before the official post-processing "
              "(photo copied where alpha is nearly 1, zeroed where alpha is 0), pasted back into the image frame."),
)


# --------------------------------------------------------------------------- official steps

def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Step 2: ``(row, col, height, width)`` of the crop for a mask (any array; non-zero = person)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise MattingError("The person mask is empty: the mask method found no person, so Background Matting "
                           "has nothing to crop to. Try another mask method.")
    r1, c1 = rows.min(), cols.min()
    side = max(rows.max() - r1, cols.max() - c1)
    top, left = max(r1 - BOX_MARGIN * side, 0), max(c1 - BOX_MARGIN * side, 0)
    bottom = min(r1 + (1 + BOX_MARGIN) * side, mask.shape[0] - 1)
    right = min(c1 + (1 + BOX_MARGIN) * side, mask.shape[1] - 1)
    box = np.around([top, left, bottom - top, right - left]).astype(int)
    if box[2] < 1 or box[3] < 1:
        raise MattingError(f"The person mask covers too few pixels to crop to (box {box[3]}×{box[2]}).")
    return tuple(int(v) for v in box)


def crop(array: np.ndarray, box, resolution: int = RESOLUTION) -> np.ndarray:
    """Step 2: cut ``box`` out of ``array`` and resize it (bilinear, its own dtype) to ``resolution``²."""
    import cv2

    row, col, height, width = box
    return cv2.resize(np.ascontiguousarray(array[row:row + height, col:col + width]), (resolution, resolution))


def uncrop(array: np.ndarray, box, shape) -> np.ndarray:
    """Step 7: resize ``array`` (bilinear) to ``box`` and paste it into zeros of ``shape`` (H, W)."""
    import cv2

    row, col, height, width = box
    resized = cv2.resize(np.ascontiguousarray(array, dtype=np.float32), (width, height))
    canvas = np.zeros(tuple(shape[:2]) + array.shape[2:], np.float32)
    canvas[row:row + height, col:col + width] = resized.reshape((height, width) + array.shape[2:])
    return canvas


def process_mask(mask: np.ndarray) -> np.ndarray:
    """Step 3: the official processing of the cropped 8-bit mask (N×N uint8) → N×N uint8."""
    import cv2

    size = mask.shape[0]
    m = mask.astype(np.float32) / 255.0
    m[m > MASK_SATURATE] = 1.0
    empty = np.flatnonzero(m.sum(axis=1) == 0)
    dropped = empty[empty > MASK_ROW_LIMIT]
    if dropped.size:
        dropped = np.concatenate([[dropped[0] - 2, dropped[0] - 1], dropped])
        m = np.delete(m, dropped, axis=0)
    m = cv2.copyMakeBorder(m, 0, MASK_PAD_ROWS + int(dropped.size), 0, 0, cv2.BORDER_REPLICATE)
    m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ERODE[0],) * 2), iterations=ERODE[1])
    m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (DILATE[0],) * 2), iterations=DILATE[1])
    m = cv2.GaussianBlur(m, (BLUR, BLUR), 0)
    m = (255.0 * m).astype(np.uint8)
    return np.delete(m, np.arange(size, size + MASK_PAD_ROWS), axis=0)


def motion_frames(image_u8: np.ndarray) -> np.ndarray:
    """Step 1: H×W×4 float, four copies of the grey photo (unused by the network, issue #36)."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image_u8), cv2.COLOR_RGB2GRAY).astype(np.float64)
    return np.repeat(grey[:, :, None], 4, axis=2)


def to_network(array: np.ndarray):
    """Step 4: an 8-bit-range H×W(×C) array → 1×C×H×W float32 tensor ``2·x/255 − 1``."""
    return torch_utils.to_tensor(2.0 * np.asarray(array, np.float64) / 255.0 - 1.0)


def largest_component(alpha: np.ndarray) -> np.ndarray:
    """Step 6: boolean map of the largest 8-connected component of ``alpha > 0.05`` (all False if none)."""
    from skimage.measure import label

    labels = label(alpha > COMPONENT_ABOVE)
    if labels.max() == 0:
        return np.zeros(alpha.shape, bool)
    return labels == np.argmax(np.bincount(labels.ravel())[1:]) + 1


def postprocess(alpha_pred: np.ndarray, fg_pred_tmp: np.ndarray, image: np.ndarray):
    """Step 6 on the crop: network outputs (H×W tanh alpha, H×W×3 fg, both in the network's [−1, 1]) and
    the network's image input (H×W×3 in [−1, 1]) → (alpha in [0, 1], foreground in [0, 1], found)."""
    keep_image = (alpha_pred > KEEP_IMAGE_ABOVE)[:, :, None]
    fg = np.where(keep_image, image, fg_pred_tmp)
    alpha = np.clip((alpha_pred + 1) / 2, 0.0, 1.0)
    fg = np.clip((fg + 1) / 2, 0.0, 1.0)
    component = largest_component(alpha)
    alpha = alpha * component
    alpha_u8 = (255 * alpha).astype(np.uint8)
    fg = fg * (alpha_u8.astype(np.float64) / 255 > FOREGROUND_ABOVE)[:, :, None]
    return alpha.astype(np.float32), fg.astype(np.float32), bool(component.any())


def mask_session(method_id: str):
    """The session of the automatic method that supplies the person mask (its network loaded once)."""
    if get(method_id).family != "automatic":
        raise MattingError(f"The mask method must be an automatic method; {method_id!r} is not.")
    return session(method_id, foreground="none")


def person_mask(image: np.ndarray, method_id_or_session) -> tuple[np.ndarray, list[str]]:
    """Step 0: the soft person mask (float H×W in [0, 1]) from an automatic method (id or session)."""
    masker = mask_session(method_id_or_session) if isinstance(method_id_or_session, str) else method_id_or_session
    result = masker.run_prepared(Inputs(image=image))
    return result.alpha, list(result.warnings)


def run_network(model, image_u8, back_u8, mask_u8, resolution: int = RESOLUTION) -> dict:
    """Steps 1–6 on 8-bit RGB photo/background and 8-bit mask at the image size; returns the crop box
    and every map at the working resolution."""
    box = bounding_box(mask_u8)
    image_c, back_c, mask_c = (crop(a, box, resolution) for a in (image_u8, back_u8, mask_u8))
    multi_c = crop(motion_frames(image_u8), box, resolution)
    mask_p = process_mask(mask_c)
    with torch_utils.inference():
        img = to_network(image_c)
        alpha_pred, fg_pred_tmp = torch_utils.run(model, img, to_network(back_c), to_network(mask_p),
                                                  to_network(multi_c))
        alpha_pred, fg_pred_tmp = torch_utils.plane(alpha_pred), torch_utils.rgb(fg_pred_tmp)
        img = torch_utils.rgb(img)
    alpha, fg, found = postprocess(alpha_pred, fg_pred_tmp, img)
    return {"box": box, "mask": mask_p, "alpha_pred": alpha_pred, "fg_pred_tmp": fg_pred_tmp,
            "alpha": alpha, "foreground": fg, "found": found}


def load(params: dict) -> dict:
    """The chosen checkpoint's network and the mask method's session."""
    if int(params["resolution"]) % STRIDE:
        raise MattingError(f"Parameter 'resolution' of bgmv1 must be a multiple of {STRIDE}; "
                           f"got {params['resolution']}.")
    return {"model": torch_utils.load_model("bgmv1", CHECKPOINTS[params["checkpoint"]]),
            "mask": mask_session(params["mask_method"])}


def compute(inputs: Inputs, params: dict, loaded: dict) -> MethodOutput:
    resolution = int(params["resolution"])
    model = loaded["model"]
    mask, warnings = person_mask(inputs.image, loaded["mask"])
    out = run_network(model, to_uint8(inputs.image), to_uint8(inputs.background), to_uint8(mask), resolution)
    shape, box = inputs.shape, out["box"]
    if not out["found"]:
        warnings.append("The network's alpha has no pixel above 0.05 (the official script skips such a frame): "
                        "the alpha is empty.")
    network_alpha = np.clip((out["alpha_pred"] + 1) / 2, 0, 1)
    network_fg = np.clip((out["fg_pred_tmp"] + 1) / 2, 0, 1)
    maps = {
        "mask": IntermediateMap(uncrop(out["mask"] / 255.0, box, shape), "alpha",
                                OUTPUTS[0].description + f" Mask method: {params['mask_method']}."),
        "network_alpha": IntermediateMap(np.clip(uncrop(network_alpha, box, shape), 0, 1), "alpha",
                                         OUTPUTS[1].description),
        "network_foreground": IntermediateMap(np.clip(uncrop(network_fg, box, shape), 0, 1), "rgb",
                                              OUTPUTS[2].description),
    }
    row, col, height, width = box
    if abs(height - width) > 1:
        warnings.append(f"The crop around the person ({width}×{height} px) was clamped at the image border and is "
                        f"stretched to {resolution}×{resolution}, as the official script does.")
    return MethodOutput(alpha=np.clip(uncrop(out["alpha"], box, shape), 0, 1),
                        foreground=np.clip(uncrop(out["foreground"], box, shape), 0, 1),
                        maps=maps, run_resolution=(resolution, resolution), warnings=warnings)


SPEC = MethodSpec(
    id="bgmv1", name="Background Matting v1", family="background", compute=compute, load=load,
    required_inputs=("background",), provides_foreground=True,
    params=(
        Param("checkpoint", "real-fixed-cam",
              "Official model: 'real-fixed-cam' (fine-tuned on real videos from a tripod), 'real-hand-held' "
              "(real hand-held videos; expects the plate aligned to the photo) or 'syn-comp-adobe' (synthetic "
              "Adobe composites only; worse on real photos per the README).",
              kind="choice", choices=tuple(CHECKPOINTS), label="Checkpoint"),
        Param("mask_method", DEFAULT_MASK_METHOD,
              "Automatic method that supplies the soft person mask (the official pipeline uses DeepLabv3+; "
              "this is a substitution). Selfie segmentation is fast and offline.",
              kind="choice", choices=MASK_METHODS, label="Mask method"),
        Param("resolution", RESOLUTION,
              "Side of the square crop the network runs on (official: 512). Multiples of 4; the official mask "
              "constants (row 250, 25 padding rows, kernels) are kept at any size.",
              kind="int", minimum=64, maximum=1024, label="Working resolution"),
    ),
    outputs=OUTPUTS, weights=tuple(CHECKPOINTS.values()),
    card=Card(
        paper="Background Matting: The World is Your Green Screen",
        authors="Soumyadip Sengupta, Vivek Jayaram, Brian Curless, Steve Seitz, Ira Kemelmacher-Shlizerman",
        year=2020, venue="CVPR 2020", paper_url="https://arxiv.org/abs/2004.00626",
        code="github.com/senguptaumd/Background-Matting (network re-implemented from the architecture in "
             "matting/models/bgmv1.py; the test-time processing re-implemented from its description)",
        code_license="CC BY-NC-SA 4.0 (README 'License'; the repository has no LICENSE file)",
        weights_license="CC BY-NC-SA 4.0 (the README's licence covers the released models; the synthetic model "
                        "is trained on Adobe composites)",
        how_it_works=(
            "Needs the photo, a photo of the same background without the person, and a soft person mask. "
            "Separate encoders read the photo, the background and the mask; 'context switching' blocks combine "
            "the photo's features with each cue, residual blocks decode them, and two heads predict alpha "
            "(tanh) and foreground colours. Official test-time processing (test_background-matting_image.py): "
            "a square box around the mask with 10 % margins is cut from every input and resized to 512×512; "
            "the mask is saturated above 0.2, extended to the bottom, eroded, dilated and blurred; inputs in "
            "[−1, 1]; the photo's colours are kept where alpha is nearly 1, alpha is kept only on its largest "
            "connected component, and the results are pasted back into the image frame."),
        notes=(
            "Substitution: the official pipeline gets the mask from DeepLabv3+ (TensorFlow); here an automatic "
            "method of the workbench supplies it (default: selfie segmentation), as the README allows. The "
            "network also has a 'motion' input (four grey copies of the photo for stills), but by an official "
            "bug (issue #36, confirmed by the authors, present in the published models and the paper's results) "
            "the motion features are never used, so the motion cue never reaches the output — kept here. The "
            "plate must match the photo (same exposure; for hand-held shots the official pipeline first aligns "
            "it by homography, which is not done here). Alpha and foreground are kept as floats (the official "
            "script writes 8 bits). Slow on a CPU: one 512×512 forward takes about 40 s on two cores (10 s at "
            "256×256, the 'resolution' parameter)."),
    ),
)

register(SPEC)
