"""Background Matting v1 (Sengupta et al., "Background Matting: The World is Your Green Screen",
CVPR 2020): the generator ``ResnetConditionHR(input_nc=(3, 3, 1, 4), output_nc=4, n_blocks1=7,
n_blocks2=3)`` of github.com/senguptaumd/Background-Matting.

Re-implemented from the paper's description, the module names and tensor shapes of the official
``state_dict()`` (276 float entries, 14 top-level ``Sequential`` blocks) and the fixture notes in
``../shared/fidelity/MANIFEST.md`` — not from the official source — so the released checkpoints
(``netG_epoch_*``, ``nn.DataParallel`` state dicts: ``module.`` is stripped on reading) load with
``strict=True``.

Four inputs, all mapped to [−1, 1]: the photo ``image`` (3), the captured background ``back`` (3),
a soft person mask ``seg`` (1) and four grey "motion" frames ``multi`` (4). Sides multiples of 4.

* Encoders (reflection-padded 7×7 conv → 64, then 3×3/2 convs, each with BN + ReLU): the image in
  two parts, ``model_enc1`` (→ 128 at 1/2, kept as a skip) and ``model_enc2`` (→ 256 at 1/4);
  ``model_enc_back``, ``model_enc_seg``, ``model_enc_multi`` straight to 256 at 1/4.
* Context switching: ``comb_back``, ``comb_seg``, ``comb_multi`` (1×1 conv 512 → 64, BN, ReLU) each
  see the image feature concatenated with one cue. **Official bug kept** (issue #36): ``comb_multi``
  is given the *background* feature, not the motion feature, so ``multi`` never reaches the outputs;
  ``model_enc_multi`` still runs and its weights are in the checkpoints. The authors' published
  models were trained (and the paper's results produced) with it.
* ``model_res_dec``: 1×1 conv (256 + 3·64 = 448 → 256), BN, ReLU and 7 residual blocks
  (reflection pad 1, 3×3 conv, BN, ReLU, reflection pad 1, 3×3 conv, BN; + input).
* Alpha head: 3 residual blocks (``model_res_dec_al``), ``model_al_out`` = 2 × (bilinear ×2 with
  ``align_corners=True``, 3×3 conv, BN, ReLU) 256 → 128 → 64, reflection pad 3, 7×7 conv → 1, tanh.
* Foreground head: 3 residual blocks (``model_res_dec_fg``), ``model_dec_fg1`` (up ×2, 3×3 conv
  256 → 128, BN, ReLU), concatenated with the image skip (128 + 128), ``model_fg_out`` (up ×2,
  3×3 conv → 64, BN, ReLU, reflection pad 3, 7×7 conv → 3, no activation).

``forward(image, back, seg, multi) -> (alpha, foreground)``: alpha in [−1, 1] (tanh), foreground
unbounded (the official post-processing maps both with ``(x + 1) / 2`` and clips).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MattingError
from .fft_conv import InWorkerThread, with_fft_convolutions
from .fuse import fold_batchnorm
from .registry import InputConfig, register_architecture

__all__ = ["ResnetConditionHR", "ResnetBlock", "INPUT", "checkpoint_filter", "STRIDE"]

STRIDE = 4


def _example_inputs(height: int, width: int, generator) -> tuple:
    """Arguments of :meth:`ResnetConditionHR.forward` for timing: photo, background, soft mask and four
    motion frames, all in [−1, 1] like the official test script's inputs."""
    def planes(count):
        return torch.rand(1, count, height, width, generator=generator) * 2 - 1

    return planes(3), planes(3), planes(1), planes(4)


INPUT = InputConfig(
    channels=("R", "G", "B", "background R", "background G", "background B", "soft mask",
              "motion 1", "motion 2", "motion 3", "motion 4"),
    value_range=(-1.0, 1.0),
    size_rule="the official test script crops a square around the person mask and resizes it to 512×512; "
              "sides multiples of 4",
    example_size=(512, 512), stride=STRIDE, example_inputs=_example_inputs,
)


class _Upsample2(nn.Module):
    """Bilinear ×2 with ``align_corners=True`` (a parameter-free slot in the official Sequentials)."""

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True):
    return [nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias), nn.BatchNorm2d(cout), nn.ReLU(True)]


def _stem(cin: int, ngf: int) -> list[nn.Module]:
    """Reflection pad 3 + 7×7 conv + BN + ReLU (Sequential slots 0–3)."""
    return [nn.ReflectionPad2d(3)] + _conv_bn_relu(cin, ngf, 7)


def _down(cin: int, cout: int) -> list[nn.Module]:
    return _conv_bn_relu(cin, cout, 3, stride=2, padding=1)


def _up(cin: int, cout: int) -> list[nn.Module]:
    return [_Upsample2()] + _conv_bn_relu(cin, cout, 3, padding=1)


class ResnetBlock(nn.Module):
    """``x + conv_block(x)``; ``conv_block`` = [pad, conv, BN, ReLU, pad, conv, BN] (reflection pad 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), *_conv_bn_relu(dim, dim, 3),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.BatchNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetConditionHR(nn.Module):
    """The Background Matting v1 generator with the official constructor arguments.

    Only the published configuration is supported: ``input_nc=(3, 3, 1, 4)``, ``output_nc=4``,
    ``ngf=64``, ``nf_part=64``, BatchNorm, no dropout, reflection padding; ``n_blocks1`` (shared
    residual blocks) and ``n_blocks2`` (blocks per head) may vary.
    """

    def __init__(self, input_nc=(3, 3, 1, 4), output_nc=4, ngf=64, nf_part=64, norm_layer=nn.BatchNorm2d,
                 use_dropout=False, n_blocks1=7, n_blocks2=3, padding_type="reflect"):
        super().__init__()
        if tuple(input_nc) != (3, 3, 1, 4) or output_nc != 4:
            raise MattingError(f"Background Matting v1 takes input_nc=(3, 3, 1, 4) and output_nc=4 (image, "
                               f"background, mask, 4 motion frames → alpha + RGB); got {input_nc}, {output_nc}.")
        if norm_layer is not nn.BatchNorm2d or use_dropout or padding_type != "reflect":
            raise MattingError("Only the published Background Matting v1 configuration is supported: "
                               "norm_layer=nn.BatchNorm2d, use_dropout=False, padding_type='reflect'.")
        if int(n_blocks1) < 0 or int(n_blocks2) < 0:
            raise MattingError(f"n_blocks1 and n_blocks2 must be ≥ 0; got {n_blocks1}, {n_blocks2}.")
        image_nc, back_nc, seg_nc, multi_nc = input_nc
        deep = ngf * 4  # 256 channels at 1/4

        self.model_enc1 = nn.Sequential(*_stem(image_nc, ngf), *_down(ngf, ngf * 2))
        self.model_enc2 = nn.Sequential(*_down(ngf * 2, deep))
        self.model_enc_back = nn.Sequential(*_stem(back_nc, ngf), *_down(ngf, ngf * 2), *_down(ngf * 2, deep))
        self.model_enc_seg = nn.Sequential(*_stem(seg_nc, ngf), *_down(ngf, ngf * 2), *_down(ngf * 2, deep))
        self.model_enc_multi = nn.Sequential(*_stem(multi_nc, ngf), *_down(ngf, ngf * 2), *_down(ngf * 2, deep))

        self.comb_back = nn.Sequential(*_conv_bn_relu(2 * deep, nf_part, 1, bias=False))
        self.comb_seg = nn.Sequential(*_conv_bn_relu(2 * deep, nf_part, 1, bias=False))
        self.comb_multi = nn.Sequential(*_conv_bn_relu(2 * deep, nf_part, 1, bias=False))

        self.model_res_dec = nn.Sequential(*_conv_bn_relu(deep + 3 * nf_part, deep, 1, bias=False),
                                           *[ResnetBlock(deep) for _ in range(int(n_blocks1))])
        self.model_res_dec_al = nn.Sequential(*[ResnetBlock(deep) for _ in range(int(n_blocks2))])
        self.model_res_dec_fg = nn.Sequential(*[ResnetBlock(deep) for _ in range(int(n_blocks2))])

        self.model_al_out = nn.Sequential(*_up(deep, ngf * 2), *_up(ngf * 2, ngf),
                                          nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, 7), nn.Tanh())
        self.model_dec_fg1 = nn.Sequential(*_up(deep, ngf * 2))
        self.model_fg_out = nn.Sequential(*_up(ngf * 4, ngf), nn.ReflectionPad2d(3),
                                          nn.Conv2d(ngf, output_nc - 1, 7))

    def forward(self, image, back, seg, multi):
        height, width = image.shape[2:]
        if height % STRIDE or width % STRIDE:
            raise MattingError(f"Background Matting v1 needs height and width that are multiples of {STRIDE}, "
                               f"got {height}×{width}.")
        for name, tensor in (("back", back), ("seg", seg), ("multi", multi)):
            if tensor.shape[2:] != image.shape[2:]:
                raise MattingError(f"{name} must have the image's size {height}×{width}, "
                                   f"got {tuple(tensor.shape[2:])}.")
        img_feat1 = self.model_enc1(image)
        img_feat = self.model_enc2(img_feat1)
        back_feat = self.model_enc_back(back)
        seg_feat = self.model_enc_seg(seg)
        self.model_enc_multi(multi)  # computed, as officially, but unused (issue #36)

        context = torch.cat([
            self.comb_back(torch.cat([img_feat, back_feat], dim=1)),
            self.comb_seg(torch.cat([img_feat, seg_feat], dim=1)),
            self.comb_multi(torch.cat([img_feat, back_feat], dim=1)),  # official bug: back, not multi
        ], dim=1)
        shared = self.model_res_dec(torch.cat([img_feat, context], dim=1))

        alpha = self.model_al_out(self.model_res_dec_al(shared))
        fg = self.model_dec_fg1(self.model_res_dec_fg(shared))
        fg = self.model_fg_out(torch.cat([fg, img_feat1], dim=1))
        return alpha, fg


def checkpoint_filter(checkpoint, model=None) -> dict:
    """Official files are ``nn.DataParallel`` state dicts: the ``module.`` prefix is already stripped by
    :func:`matting.weights.read_checkpoint` (a file with it on only some keys is stripped here)."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}


def recognise(shapes):
    heads = {k.split(".", 1)[0] for k in shapes}
    if {"model_enc1", "model_enc_back", "model_enc_seg", "model_al_out"} <= heads:
        return "Background Matting v1 ResnetConditionHR (arch 'bgmv1')"
    return None


# Smallest map (height × width) from which the fast path convolves by FFT, per kernel size. At the
# adapter's 512² every stride-1 3×3 (the 13 residual blocks at 128², the upsampling convolutions) and
# 7×7 (the four stems and the two output layers at 512²) qualifies. On 64² maps FFT did not win: the
# whole network at 256², all of them by FFT, ran 0.95× the reference against 0.83× for the folded
# channels_last copy.
FFT_FROM_PIXELS = {3: 128 * 128, 7: 128 * 128}


class UnusedOutput(nn.Module):
    """Stands in for a sub-network whose output the forward computes and then discards: it returns
    ``None`` at no cost. The fast path puts it in place of ``model_enc_multi`` (official bug, issue
    #36: the motion encoder's output never reaches alpha or foreground), so the outputs are the same
    as the reference's, bit for bit, without its 7×7 stem at full size and two strided convolutions."""

    def forward(self, *inputs):
        return None


def fast_module(model, *example_inputs):
    """The torch backend's BGMv1: BatchNorms folded, NCHW, the unused motion encoder not run
    (:class:`UnusedOutput`), stride-1 3×3 and 7×7 convolutions by
    NNPACK's FFT (:mod:`matting.models.fft_conv`; the reflection pads stay in front of them, so they
    convolve without padding), in a worker thread (:class:`~matting.models.fft_conv.InWorkerThread`).

    Measured at 512² (one process, interleaved, 2 idle cores, random weights): 0.69× the reference,
    where the folded channels_last copy (the default fast path) ran 0.79× and FFT for the 3×3
    layers only 0.76×; |Δ| 3e-7. Without the motion encoder: 0.66× (the same benchmark, with the
    encoder 0.76× the run before)."""
    folded = fold_batchnorm(model, *example_inputs)
    folded.model_enc_multi = UnusedOutput()
    return InWorkerThread(with_fft_convolutions(folded, FFT_FROM_PIXELS))


register_architecture(
    "bgmv1", checkpoint_filter=checkpoint_filter, recognise=recognise, input_config=INPUT, fast_module=fast_module,
    description="ResnetConditionHR(input_nc=(3, 3, 1, 4), output_nc=4, n_blocks1=7, n_blocks2=3)",
)(ResnetConditionHR)
