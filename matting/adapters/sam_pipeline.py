"""Click to select, then matte: SAM's mask from prompts → automatic trimap → any trimap method.

The method ``sam_trimap`` (family ``prompts``) takes the photo and prompts (positive/negative clicks
and an optional box, :mod:`matting.prompts`):

1. **Click → mask**: SAM (or SlimSAM) through Hugging Face ``transformers`` — ``SamProcessor``'s image
   processing (longest side to 1024, normalise, pad), ``SamModel.get_image_embeddings`` once per photo,
   then the prompt encoder and mask decoder for the clicks, and ``post_process_masks`` (crop the padding,
   resize bilinearly to the photo); the mask is logits > 0. With a single click and no box SAM is
   ambiguous (a shirt or the person?): three masks are predicted and the one with the highest predicted
   IoU is kept (``multimask``, SAM's own advice).
2. **Mask → trimap**: :func:`matting.trimap.from_mask` with the same band rule as the automatic
   pipelines (:func:`matting.adapters.pipelines.band_widths`).
3. **Trimap → alpha**: the chosen trimap method (``refine``: closed-form, DIM, ViTMatte, …) through its
   own session, exactly as the automatic pipelines run closed-form.

The image embedding is the expensive half of SAM (the ViT encoder); it is cached per loaded model, keyed
by the sha1 of the 8-bit image, for the last few photos (:data:`matting.models.sam.EMBEDDINGS_KEPT`),
so after the first click every further click runs only the small decoder. :func:`segment` is that
click step alone (the app's click endpoint uses it).
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from ..errors import MattingError
from ..io import to_uint8
from ..registry import methods, register
from ..runner import session
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param
from . import torch_utils
from .pipelines import BAND_PARAMS, band_widths

SEGMENTERS = {"slimsam_77": "sam_slimsam_77", "sam_vit_base": "sam_vit_base"}
DEFAULT_SEGMENTER = "slimsam_77"


def _refine_choices() -> tuple[str, ...]:
    """Trimap methods registered so far that need nothing but the image and a trimap."""
    found = [spec.id for spec in methods("trimap")
             if spec.accepts("trimap") and set(spec.required_inputs) <= {"trimap"} and not spec.unavailable]
    return tuple(sorted(found, key=lambda i: (i != "closed_form", i != "vitmatte", found.index(i))))


# --------------------------------------------------------------------------- SAM, click by click

def load_segmenter(segmenter: str = DEFAULT_SEGMENTER):
    """The loaded SAM bundle (:class:`matting.models.sam.SamBundle`) for a ``segmenter`` choice."""
    if segmenter not in SEGMENTERS:
        raise MattingError(f"Unknown segmenter {segmenter!r}; choose one of {', '.join(SEGMENTERS)}.")
    return torch_utils.load_model("sam", SEGMENTERS[segmenter]).to(torch_utils.device())


def image_key(image_u8: np.ndarray) -> str:
    return hashlib.sha1(image_u8.tobytes() + repr(image_u8.shape).encode()).hexdigest()


def embedding(bundle, image: np.ndarray, key: str | None = None) -> tuple[dict, bool]:
    """The cached image embedding of ``image`` (float in [0, 1] or uint8) and whether it was reused.

    ``key`` is :func:`image_key` of the 8-bit image when the caller already has it (the app keeps it
    with the decoded photo): hashing a 12-megapixel photo on every click is not free."""
    image_u8 = None
    if key is None:
        image_u8 = to_uint8(np.asarray(image))
        key = image_key(image_u8)
    with bundle.lock:
        entry = bundle.embeddings.get(key)
        if entry is not None:
            bundle.embeddings.move_to_end(key)
            return entry, True
    if image_u8 is None:
        image_u8 = to_uint8(np.asarray(image))
    encoded = bundle.processor.image_processor(images=image_u8, return_tensors="pt")
    with torch_utils.library_forward():
        embeddings = bundle.model.get_image_embeddings(encoded["pixel_values"].to(bundle.device))
    entry = {"embeddings": embeddings, "original_size": tuple(int(v) for v in encoded["original_sizes"][0]),
             "reshaped_size": tuple(int(v) for v in encoded["reshaped_input_sizes"][0])}
    from ..models.sam import EMBEDDINGS_KEPT

    with bundle.lock:
        bundle.embeddings[key] = entry
        while len(bundle.embeddings) > EMBEDDINGS_KEPT:
            bundle.embeddings.popitem(last=False)
    return entry, False


def _scaled(coords: np.ndarray, entry: dict) -> np.ndarray:
    """Original-image pixel coordinates → the resized image's (SamProcessor's coordinate rule)."""
    (old_h, old_w), (new_h, new_w) = entry["original_size"], entry["reshaped_size"]
    coords = np.array(coords, dtype=np.float64)
    coords[..., 0] *= new_w / old_w
    coords[..., 1] *= new_h / old_h
    return coords


def segment(bundle, image: np.ndarray, prompts, multimask: bool = True, key: str | None = None,
            size: tuple[int, int] | None = None) -> dict:
    """SAM on one photo and its prompts: ``logits`` (H×W float32 at the photo's size), ``mask`` (bool,
    logits > 0), ``score`` (SAM's predicted IoU), ``reused`` (whether the embedding came from the cache)
    and ``seconds``.

    ``key``: the photo's :func:`image_key`, if known. ``size`` (height, width): the logits at that size
    instead of the photo's, by the same post-processing with another target size (the app's click
    overlay asks for its preview size, so a click on a large photo does not resize a mask to every
    pixel of it)."""
    import torch

    start = time.perf_counter()
    entry, reused = embedding(bundle, image, key)
    device = bundle.device
    kwargs = {}
    if prompts.points:
        xy = _scaled([[x, y] for x, y, _ in prompts.points], entry)
        kwargs["input_points"] = torch.tensor(xy[None, None], dtype=torch.float64).to(device)
        kwargs["input_labels"] = torch.tensor([[[label for _, _, label in prompts.points]]], dtype=torch.int64,
                                              device=device)
    if prompts.box is not None:
        box = _scaled(np.array(prompts.box).reshape(2, 2), entry).reshape(4)
        kwargs["input_boxes"] = torch.tensor(box[None, None], dtype=torch.float64).to(device)
    several = bool(multimask and len(prompts.points) == 1 and prompts.box is None)
    with torch_utils.library_forward():
        output = bundle.model(image_embeddings=entry["embeddings"], multimask_output=several, **kwargs)
        scores = output.iou_scores[0, 0].to("cpu", torch.float32).numpy()
        best = int(np.argmax(scores))
        # Only the kept mask is post-processed (each mask is resized on its own, so it is the same
        # mask): resizing all three to a large photo cost more than the decoder itself.
        chosen = output.pred_masks[:, :, best:best + 1].cpu()
        target = tuple(int(v) for v in size) if size is not None else entry["original_size"]
        masks = bundle.processor.post_process_masks(chosen, [target], [entry["reshaped_size"]], binarize=False)[0]
    logits = masks[0, 0].to(torch.float32).numpy().copy()
    return {"logits": logits, "mask": logits > 0.0, "score": float(scores[best]), "reused": reused,
            "seconds": time.perf_counter() - start}


# --------------------------------------------------------------------------- the method

def load(params: dict) -> dict:
    return {"sam": load_segmenter(params["segmenter"]),
            "refine": session(params["refine"], foreground="none")}


def compute(inputs: Inputs, params: dict, steps: dict) -> MethodOutput:
    from ..trimap import BACKGROUND, FOREGROUND, from_mask

    found = segment(steps["sam"], inputs.image, inputs.prompts, params["multimask"])
    mask = found["mask"]
    if not mask.any():
        raise MattingError("SAM found no object at these prompts (the mask is empty): click on the object itself, "
                           "or draw a box around it.")
    erode, dilate = band_widths(params, inputs.shape)
    trimap = from_mask(mask.astype(np.float32), erode=erode, dilate=dilate)
    for value, what in ((FOREGROUND, "foreground"), (BACKGROUND, "background")):
        if not (trimap == value).any():
            raise MattingError(f"SAM's mask left no definite {what} after the trimap band of {erode}/{dilate} "
                               "pixels: nothing to refine. Narrow the band (erode/dilate)"
                               + (" or select a larger object." if what == "foreground" else
                                  " or select a smaller object."))
    refined = steps["refine"].run_prepared(Inputs(image=inputs.image, trimap=trimap))
    refine_name = steps["refine"].spec.name
    maps = {
        "sam_mask": IntermediateMap(mask.astype(np.float32), "alpha",
                                    f"SAM's mask for the prompts (predicted IoU {found['score']:.2f}; image "
                                    f"embedding {'reused' if found['reused'] else 'computed'})."),
        "sam_probability": IntermediateMap(1.0 / (1.0 + np.exp(-np.clip(found["logits"], -30, 30))), "alpha",
                                           OUTPUT_TEXT["sam_probability"]),
        "trimap": IntermediateMap(trimap.astype(np.float32) / 255.0, "trimap",
                                  OUTPUT_TEXT["trimap"].format(erode=erode, dilate=dilate)),
        "refined_alpha": IntermediateMap(refined.alpha, "alpha", OUTPUT_TEXT["refined_alpha"].format(method=refine_name)),
    }
    return MethodOutput(alpha=refined.alpha, maps=maps, run_resolution=(inputs.shape[1], inputs.shape[0]),
                        warnings=list(refined.warnings))


OUTPUT_TEXT = {
    "sam_mask": "SAM's binary mask for the prompts (logits > 0).",
    "sam_probability": "sigmoid of SAM's mask logits, at the image size.",
    "trimap": "The trimap from SAM's mask: eroded by {erode} px = foreground, outside the mask dilated by {dilate} px "
              "= background, the band between = unknown.",
    "refined_alpha": "{method} on that trimap: the alpha.",
}
OUTPUTS = tuple(OutputMap(name, "trimap" if name == "trimap" else "alpha", text) for name, text in OUTPUT_TEXT.items())

REFINE_CHOICES = _refine_choices()
PARAMS = (
    Param("segmenter", DEFAULT_SEGMENTER,
          "Which SAM turns the clicks into a mask: SlimSAM-77 (pruned SAM ViT-B, small and fast) or SAM ViT-B.",
          kind="choice", choices=tuple(SEGMENTERS), checkpoints=SEGMENTERS, label="Segmenter"),
    Param("refine", REFINE_CHOICES[0] if REFINE_CHOICES else "closed_form",
          "The trimap method that finishes the edges in the unknown band (its default parameters).",
          kind="choice", choices=REFINE_CHOICES, label="Matting method"),
    *BAND_PARAMS,
    Param("multimask", True, "For a single click without a box, predict SAM's three masks and keep the one with "
          "the highest predicted IoU (SAM's advice for ambiguous clicks).", kind="bool", label="Best of three masks"),
)

SPEC = MethodSpec(
    id="sam_trimap", name="Click → SAM mask → trimap → matting", family="prompts",
    compute=compute, load=load, params=PARAMS, outputs=OUTPUTS, weights=tuple(SEGMENTERS.values()),
    required_inputs=("prompts",),
    card=Card(
        paper="Segment Anything (Kirillov et al., ICCV 2023); SlimSAM (Chen et al., NeurIPS 2024); the matting "
              "method you choose (closed-form, DIM, ViTMatte, …)",
        authors="Alexander Kirillov, Eric Mintun, Nikhila Ravi et al.; Zigeng Chen, Gongfan Fang, Xinyin Ma, "
                "Xinchao Wang", year=2023, venue="ICCV 2023; NeurIPS 2024",
        paper_url="https://arxiv.org/abs/2304.02643",
        code="Hugging Face transformers (SamModel, SamProcessor, used as they are); this workbench's "
             "matting.trimap.from_mask and the chosen trimap method; the recipe of the Matte Anything and "
             "ViTMatte demos",
        code_license="Apache-2.0 (segment-anything, SlimSAM, transformers); the refine method's own",
        weights_license="Apache-2.0 (SAM ViT-B, SlimSAM); the refine method's weights keep theirs (ViTMatte "
                        "and DIM: non-commercial)",
        how_it_works=(
            "Click on the object (and off it, for negative clicks) or draw a box: SAM's ViT encoder embeds the "
            "photo once, its prompt encoder and mask decoder turn the clicks into a mask in a fraction of a "
            "second per click. The mask is eroded and dilated into a trimap, and a trimap-based matting method "
            "solves alpha in the band, so hair and soft edges come out as a matte instead of SAM's hard mask."),
        notes=(
            "Masks come from a 256×256 logit map upsampled to the photo: thin structures near the outline are "
            "left to the matting step, so keep the band wide enough to contain them. Needs the transformers "
            "package (imported only when this method runs)."),
    ),
)

register(SPEC)
