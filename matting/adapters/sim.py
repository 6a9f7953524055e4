"""Semantic Image Matting (Sun, Tang, Tai, CVPR 2021): the official inference, re-implemented.

The steps follow the official repository github.com/nowsyn/SIM at commit dc5ed5a (2023-04-09):
``scripts/main.py`` (``preprocess``, ``extract_semantic_trimap``, ``extract_semantic_trimap_whole``, ``run``) and
``data/util.py`` (``transform``, ``trimap_to_2chn``, ``trimap_to_clks``, ``dt``), with the values of
``config/sim.toml``. Each public function below names the official function it reproduces.

1. :func:`pad_to_stride` — pad image and trimap at the bottom and right by ``(side // 8 + 1) * 8 − side`` pixels
   (always 1 to 8, even when the side already is a multiple of 8) with OpenCV's ``BORDER_REFLECT`` (the edge
   pixel is repeated: ``abc|cba``, numpy's ``'symmetric'``, not torch's ``'reflect'``);
2. :func:`transform` — RGB / 255 (``image_scale``) and its ImageNet normalisation (``image_trans``), in float64,
   stored as float32;
3. :func:`trimap_to_2chn` and :func:`trimap_to_clicks` — the trimap's one-hot background / foreground channels and
   the six Gaussian "click" maps ``exp(−d² / (2 (σ L)²))`` of the distance ``d`` to the nearest background
   (channels 0–2) and foreground (channels 3–5) pixel, σ = 0.02, 0.08, 0.16 and L = 320;
4. :func:`semantic_trimap` — the 20-channel semantic trimap from the classifier's class activation maps over
   sliding windows of 320 and 800 pixels (50 % overlap, the official window positions including its
   partial-window behaviour), averaged, min–max normalised once over everything and kept only in the unknown
   region;
5. the matting network, ``alpha`` clamped to [0, 1];
6. :func:`postprocess` — known pixels forced (0 where the trimap is 0, 1 where it is 255), padding cropped.

The official code saves ``alpha * 255`` as an 8-bit PNG; the float alpha is kept here.
"""
from __future__ import annotations

import numpy as np

from ..errors import MattingError
from ..io import to_uint8
from ..models.constants import IMAGENET_MEAN, IMAGENET_STD
from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap
from . import torch_utils

MATTING_CHECKPOINT = "sim_matting"
CLASSIFIER_CHECKPOINT = "sim_classifier"
STRIDE = 8
CLICKS_L = 320  # data/util.py trimap_to_clks(trimap, L=320), as scripts/main.py calls it
CLICK_SIGMAS = (0.02, 0.08, 0.16)  # × L
WINDOW_SIZES = (320, 800)  # extract_semantic_trimap_whole: `for step in [320, 800]`
UNKNOWN = 128

# The classifier's 20 classes in output order (scripts/main.py load_sim_samples), each with the colour the
# class map shows it in.
CLASS_COLOURS = (
    ("defocus", "lavender", "#dcbeff"),
    ("fire", "red", "#e6194b"),
    ("fur", "brown", "#9a6324"),
    ("glass_ice", "cyan", "#42d4f4"),
    ("hair_easy", "apricot", "#ffd8b1"),
    ("hair_hard", "orange", "#f58231"),
    ("insect", "olive", "#808000"),
    ("motion", "pink", "#fabed4"),
    ("net", "navy", "#000075"),
    ("plant_flower", "magenta", "#f032e6"),
    ("plant_leaf", "green", "#3cb44b"),
    ("plant_tree", "dark green", "#006400"),
    ("plastic_bag", "beige", "#fffac8"),
    ("sharp", "yellow", "#ffe119"),
    ("smoke_cloud", "mint", "#aaffc3"),
    ("spider_web", "purple", "#911eb4"),
    ("texture_holed", "maroon", "#800000"),
    ("texture_smooth", "teal", "#469990"),
    ("water_drop", "blue", "#4363d8"),
    ("water_spray", "lime", "#bfef45"),
)
CLASS_NAMES = tuple(name for name, _, _ in CLASS_COLOURS)
UNCOVERED_COLOUR = "#808080"


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    return tuple(int(hex_colour[i:i + 2], 16) / 255.0 for i in (1, 3, 5))


def class_legend() -> list[tuple[str, str, tuple[float, float, float]]]:
    """(class name, colour name, RGB in [0, 1]) for each of the 20 classes, in class-index order."""
    return [(name, colour, _rgb(hex_colour)) for name, colour, hex_colour in CLASS_COLOURS]


LEGEND_TEXT = ", ".join(f"{name} {colour}" for name, colour, _ in CLASS_COLOURS)

OUTPUTS = (
    OutputMap("semantic_classes", "rgb",
              "Semantic trimap as classes: at each unknown pixel, the class whose (normalised, window-averaged) "
              "activation map is largest. Legend: " + LEGEND_TEXT + ". Black / white: the trimap's known "
              "background / foreground. Grey: unknown pixels that no classifier window covered (the official "
              "window positions leave such corners on some image sizes); all 20 channels are equal there."),
    OutputMap("clicks_background", "rgb",
              "The three background 'click' maps exp(−d²/(2σ²)) of the distance d to the nearest definite "
              "background pixel, σ = 6.4, 25.6, 51.2 pixels as red, green, blue (encoder input channels 4–6)."),
    OutputMap("clicks_foreground", "rgb",
              "The three foreground 'click' maps (distance to the nearest definite foreground pixel), σ = 6.4, "
              "25.6, 51.2 pixels as red, green, blue (encoder input channels 7–9)."),
)


# --------------------------------------------------------------------------- official pre-processing

def pad_amounts(height: int, width: int, stride: int = STRIDE) -> tuple[int, int]:
    """(bottom, right) padding of ``scripts/main.py: preprocess``: ``(side // stride + 1) * stride − side``."""
    return (height // stride + 1) * stride - height, (width // stride + 1) * stride - width


def pad_to_stride(array: np.ndarray, stride: int = STRIDE) -> np.ndarray:
    """``cv2.copyMakeBorder(array, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT)`` as ``preprocess`` pads the image,
    the trimap (and the ground-truth alpha): bottom and right only, edge pixel repeated."""
    import cv2

    pad_h, pad_w = pad_amounts(array.shape[0], array.shape[1], stride)
    return cv2.copyMakeBorder(np.ascontiguousarray(array), 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT)


def transform(rgb8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``data/util.py: transform(image, scale=255.)`` on an RGB image (the official one first turns OpenCV's
    BGR into RGB): returns ``(image_scale, image_trans)`` as float32 3×H×W arrays, ``rgb / 255`` and
    ``(rgb / 255 − mean) / std`` with ImageNet's mean and std, computed in float64."""
    scaled = np.asarray(rgb8) / 255.0
    normalised = (scaled - np.array([[IMAGENET_MEAN]])) / np.array([[IMAGENET_STD]])
    return (np.ascontiguousarray(scaled.transpose(2, 0, 1), dtype=np.float32),
            np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32))


def trimap_to_2chn(trimap: np.ndarray) -> np.ndarray:
    """``data/util.py: trimap_to_2chn``: float32 H×W×2, channel 0 = (trimap == 0), channel 1 = (trimap == 255)."""
    trimap = np.asarray(trimap)
    return np.stack([trimap == 0, trimap == 255], axis=2).astype(np.float32)


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest pixel of ``mask`` (0 on the mask), float32.

    The official ``data/util.py: dt(1 − mask)`` is ``cv2.distanceTransform`` of ``(1 − mask)·255`` as uint8 with
    ``DIST_L2`` and mask size 0, the exact Euclidean distance transform. OpenCV's SIMD path can return some
    distances one float32 ulp off (and not the same from run to run); scipy's exact transform equals OpenCV's
    with optimisations off, bit for bit (../shared/fidelity/MANIFEST.md), so it is used here.
    """
    from scipy.ndimage import distance_transform_edt

    return distance_transform_edt(~np.asarray(mask, bool)).astype(np.float32)


def trimap_to_clicks(trimap_2chn: np.ndarray, L: int = CLICKS_L) -> np.ndarray:
    """``data/util.py: trimap_to_clks(trimap_2chn, L)``: float32 H×W×6 = [bg σ1, bg σ2, bg σ3, fg σ1, fg σ2, fg σ3].

    For each class k with at least one pixel, ``exp(−d² / (2 (σ L)²))`` in float32, ``d`` = :func:`distance_to`
    that class, σ in (0.02, 0.08, 0.16). A class without pixels leaves its three channels at 0.
    """
    height, width = trimap_2chn.shape[:2]
    clicks = np.zeros((height, width, 6), dtype=np.float32)
    for k in range(2):
        mask = np.asarray(trimap_2chn[:, :, k]) != 0
        if not mask.any():
            continue
        minus_d2 = -(distance_to(mask) ** 2)  # float32, as the official -dt(...)**2
        for j, sigma in enumerate(CLICK_SIGMAS):
            clicks[:, :, 3 * k + j] = np.exp(minus_d2 / np.float32(2 * ((sigma * L) ** 2)))
    return clicks


def preprocess(rgb8: np.ndarray, trimap: np.ndarray) -> dict:
    """``scripts/main.py: preprocess`` on arrays: an 8-bit RGB image (H×W×3) and a trimap in {0, 128, 255} (H×W).

    Returns numpy arrays in the official NCHW layout: ``image_scale`` and ``image_trans`` (1×3×H'×W'),
    ``trimap`` (1×1×H'×W' float32, 0/128/255), ``trimap_2chn`` (1×2×H'×W'), ``trimap_clks`` (1×6×H'×W'), where
    H', W' are the padded sizes, and ``origin_h``, ``origin_w``.
    """
    rgb8 = np.asarray(rgb8)
    trimap = np.asarray(trimap)
    if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
        raise MattingError("SIM pre-processing needs an 8-bit RGB image (H×W×3, uint8).")
    if trimap.shape != rgb8.shape[:2]:
        raise MattingError(f"The trimap ({trimap.shape}) must have the image's size {rgb8.shape[:2]}.")
    height, width = rgb8.shape[:2]
    padded_trimap = pad_to_stride(trimap.astype(np.uint8))
    image_scale, image_trans = transform(pad_to_stride(rgb8))
    two_chan = trimap_to_2chn(padded_trimap)
    clicks = trimap_to_clicks(two_chan, CLICKS_L)
    return {
        "image_scale": image_scale[None],
        "image_trans": image_trans[None],
        "trimap": padded_trimap.astype(np.float32)[None, None],
        "trimap_2chn": np.ascontiguousarray(two_chan.transpose(2, 0, 1))[None],
        "trimap_clks": np.ascontiguousarray(clicks.transpose(2, 0, 1))[None],
        "origin_h": height,
        "origin_w": width,
    }


# --------------------------------------------------------------------------- semantic trimap

def window_starts(size: int, step: int) -> list[int]:
    """Window starts of ``extract_semantic_trimap_whole`` along one side: ``range(0, size − step, step // 2)``
    followed by ``size − step``. When the side is shorter than the window, the only start is NEGATIVE."""
    return list(range(0, size - step, step // 2)) + [size - step]


def window_span(start: int, step: int, size: int) -> tuple[int, int]:
    """The rows (or columns) ``[lo, hi)`` that Python slicing ``[start:start + step]`` selects on a side of
    ``size``: a negative ``start`` counts from the end, so a window that starts at ``size − step < 0`` covers only
    ``max(0, 2·size − step) … size − 1`` — not the whole side (the official partial-window behaviour)."""
    return slice(start, start + step).indices(size)[:2]


def semantic_trimap(classifier, image_trans, trimap, num_classes: int = 20, window_sizes=WINDOW_SIZES,
                    return_coverage: bool = False):
    """``scripts/main.py: extract_semantic_trimap_whole(args, classifier, image_trans, trimap)`` with
    ``args.num_classes = 20`` (``args.load_size`` is overwritten by the loop and never used).

    ``image_trans``: N×3×H×W tensor (normalised RGB, padded); ``trimap``: N×1×H×W tensor with values 0/128/255.
    For each window size and each window (:func:`window_starts`, :func:`window_span`) that contains an unknown
    pixel: ``(_, cam, _) = classifier(cat(image_patch, trimap_patch / 255))``, the class activation map is
    resized to the patch bilinearly (``align_corners=False``; ``extract_semantic_trimap(..., return_cam=True)``)
    and added up; the sum is divided by the number of windows at each pixel (at least 1), then normalised
    ``(cam − min) / (max − min)`` with ONE min and max over all classes and pixels (never-covered pixels hold 0
    and take part), and multiplied by ``trimap == 128``. Returns the N×20×H×W semantic trimap (and, with
    ``return_coverage``, an N×1×H×W bool tensor of the pixels some window covered).

    Deviation, only where the official result is undefined: when max == min (never for a trimap with unknown
    pixels in practice) the official division yields NaN; here the semantic trimap is then 0.
    """
    import torch
    import torch.nn.functional as F

    batch, _, height, width = image_trans.shape
    cam = torch.zeros((batch, num_classes, height, width), dtype=image_trans.dtype, device=image_trans.device)
    count = torch.zeros((batch, 1, height, width), dtype=image_trans.dtype, device=image_trans.device)
    for step in window_sizes:
        rows = [window_span(i, step, height) for i in window_starts(height, step)]
        cols = [window_span(j, step, width) for j in window_starts(width, step)]
        for top, bottom in rows:
            for left, right in cols:
                patch_trimap = trimap[:, :, top:bottom, left:right]
                if not bool((patch_trimap == UNKNOWN).any()):
                    continue
                patch_image = image_trans[:, :, top:bottom, left:right]
                _, patch_cam, _ = torch_utils.run(classifier, torch.cat([patch_image, patch_trimap / 255.0], dim=1))
                patch_cam = F.interpolate(patch_cam, (bottom - top, right - left), mode="bilinear",
                                          align_corners=False)
                cam[:, :, top:bottom, left:right] += patch_cam
                count[:, :, top:bottom, left:right] += 1
    cam = cam / torch.clamp_min(count, 1)
    low, high = cam.min(), cam.max()
    if bool(high > low):
        normalised = (cam - low) / (high - low)
    else:
        normalised = torch.zeros_like(cam)
    smap = normalised * (trimap == UNKNOWN).to(cam.dtype)
    return (smap, count > 0) if return_coverage else smap


# --------------------------------------------------------------------------- post-processing and maps

def postprocess(alpha: np.ndarray, padded_trimap: np.ndarray, origin_h: int, origin_w: int) -> np.ndarray:
    """``scripts/main.py: run`` after the network: ``clamp(0, 1)``; 0 where the trimap is 0, 1 where it is 255;
    crop the padding (``[0:origin_h, 0:origin_w]``). H×W float32 arrays in and out."""
    alpha = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0).copy()
    alpha[padded_trimap == 0] = 0.0
    alpha[padded_trimap == 255] = 1.0
    return alpha[:origin_h, :origin_w]


def class_map_picture(smap: np.ndarray, trimap: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """float32 H×W×3 picture of the arg-max class (20×H×W ``smap``) over the unknown region (see the legend)."""
    palette = np.array([_rgb(hex_colour) for _, _, hex_colour in CLASS_COLOURS], np.float32)
    picture = palette[np.argmax(smap, axis=0)]
    picture[trimap == 0] = 0.0
    picture[trimap == 255] = 1.0
    picture[(trimap == UNKNOWN) & ~covered] = _rgb(UNCOVERED_COLOUR)
    return picture


# --------------------------------------------------------------------------- the method

def load(params: dict) -> tuple:
    """(classifier, matting network); one message names every checkpoint that is missing."""
    from .. import weights

    missing = []
    for checkpoint_id in (MATTING_CHECKPOINT, CLASSIFIER_CHECKPOINT):
        try:
            weights.require(checkpoint_id)
        except MattingError as exc:
            missing.append(exc)
    if missing:
        intro = "SIM needs two checkpoints, the matting network and its classifier.\n"
        raise MattingError(intro + "\n".join(str(e) for e in missing),
                           browser=intro + "\n".join(e.for_browser for e in missing))
    return (torch_utils.load_model("sim_classifier", CLASSIFIER_CHECKPOINT),
            torch_utils.load_model("sim", MATTING_CHECKPOINT))


def compute(inputs: Inputs, params: dict, networks: tuple) -> MethodOutput:
    import torch

    classifier, model = networks

    height, width = inputs.shape
    arrays = preprocess(to_uint8(inputs.image), inputs.trimap)
    with torch_utils.inference():
        tensor = {name: torch_utils.from_nchw(arrays[name])
                  for name in ("image_scale", "image_trans", "trimap", "trimap_2chn", "trimap_clks")}
        smap, covered = semantic_trimap(classifier, tensor["image_trans"], tensor["trimap"], len(CLASS_NAMES),
                                        return_coverage=True)
        out = torch_utils.run(model, tensor["image_scale"], tensor["trimap_2chn"], tensor["image_trans"],
                              tensor["trimap_clks"], smap, is_training=False)
        raw = torch_utils.plane(torch.clamp(out["alpha"], 0, 1))
        smap_np = smap[0].to("cpu", torch.float32).numpy()
        covered_np = covered[0, 0].to("cpu").numpy()
    padded_trimap = arrays["trimap"][0, 0]
    alpha = postprocess(raw, padded_trimap, height, width)

    crop = (slice(0, height), slice(0, width))
    clicks = arrays["trimap_clks"][0].transpose(1, 2, 0)[crop]
    trimap = inputs.trimap
    covered_np = covered_np[crop]
    maps = {
        "semantic_classes": IntermediateMap(class_map_picture(smap_np[:, :height, :width], trimap, covered_np),
                                            "rgb", OUTPUTS[0].description),
        "clicks_background": IntermediateMap(np.ascontiguousarray(clicks[:, :, 0:3]), "rgb", OUTPUTS[1].description),
        "clicks_foreground": IntermediateMap(np.ascontiguousarray(clicks[:, :, 3:6]), "rgb", OUTPUTS[2].description),
    }
    warnings = []
    unknown = trimap == UNKNOWN
    uncovered = int((unknown & ~covered_np).sum())
    if uncovered:
        warnings.append(f"SIM: {100.0 * uncovered / max(1, int(unknown.sum())):.1f} % of the unknown region lies "
                        "outside every classifier window (the official window positions at this image size), so "
                        "its semantic trimap is the same value in all 20 classes there.")
    padded_h, padded_w = padded_trimap.shape
    return MethodOutput(alpha=alpha, maps=maps, run_resolution=(padded_w, padded_h), warnings=warnings)


SPEC = MethodSpec(
    id="sim", name="Semantic Image Matting", family="trimap", compute=compute, load=load,
    one_of_inputs=("trimap",),
    scribbles_note="It was trained on dense trimaps, and its semantic trimap is computed inside the trimap's "
                   "unknown region. Turn scribbles into a trimap first (matting.trimap.dense_from_scribbles, or "
                   "'Strokes → trimap' in the app).",
    outputs=OUTPUTS, weights=(MATTING_CHECKPOINT, CLASSIFIER_CHECKPOINT),
    card=Card(
        paper="Semantic Image Matting",
        authors="Yanan Sun, Chi-Keung Tang, Yu-Wing Tai",
        year=2021, venue="CVPR 2021", paper_url="https://arxiv.org/abs/2104.08201",
        code="github.com/nowsyn/SIM (official; networks re-implemented in matting/models/sim.py, inference steps "
             "in matting/adapters/sim.py)",
        code_license="licence not stated; treat as non-commercial (the official repository has no licence file "
                     "and its README states none; its code is not copied here)",
        weights_license="licence not stated; treat as non-commercial (the official README gives no terms for the "
                        "checkpoints; the matting network was trained on SIMD, which includes a subset of Adobe's "
                        "matting data set, licensed for non-commercial use only, and the classifier comes with it)",
        how_it_works=(
            "SIM extends the trimap to a 'semantic trimap': a 20-class ResNet-50 classifier (matting patterns such "
            "as hair, fur, glass, smoke, net, plants, water drops) looks at windows of the image with its trimap, "
            "and its class activation maps, averaged over 320- and 800-pixel windows, min–max normalised and kept "
            "in the unknown region, become 20 extra input channels. The matting network is a dilated ResNet-50 "
            "(output stride 8) whose input is the normalised RGB, the trimap's two one-hot channels and six "
            "Gaussian distance ('click') maps of the definite foreground and background; the semantic trimap "
            "enters through a parallel first convolution. A weight-standardised ASPP and decoder bring the "
            "features back to full resolution, where the image and trimap are concatenated again before the "
            "alpha head. Trained with a multi-class discriminator that regularises alpha at the semantic level. "
            "Test-time processing of scripts/main.py: reflect padding to (side // 8 + 1) * 8, full resolution, "
            "no resizing; known trimap pixels forced to 0 / 1; padding cropped."),
        notes=(
            "The matting checkpoint is the SIMD model (SAD 27.9 on the SIMD test set; config/sim.toml); the "
            "Composition-1K model (SAD 27.7) has the same layout and can be used through MATTING_WEIGHTS_SIM_MATTING. "
            "The classifier is a separate checkpoint. The network runs on the whole image at full resolution "
            "(as the official code does): large images need a lot of memory and time on the CPU. The official "
            "sliding windows leave corners of some image sizes uncovered by any classifier window (e.g. a side "
            "shorter than 400 pixels next to one longer than 320); this is reproduced and reported as a warning. "
            "The network's foreground / background head is only evaluated in training; the foreground here comes "
            "from the workbench's estimator."),
    ),
)

register(SPEC)
