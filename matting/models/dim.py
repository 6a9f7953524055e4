"""Deep Image Matting (Xu et al., CVPR 2017), as ported by huochaitiantang.

Layout, parameter names and order of operations follow ``core/net.py`` (class
``VGG16``) of github.com/huochaitiantang/pytorch-deep-image-matting at commit
f5f909d (2020-10-28), so its released checkpoints (e.g. ``stage1_skip_sad_52.9.pth``,
whose ``state_dict`` entry holds the weights) load with ``strict=True``:

* encoder: VGG-16 conv1_1 … conv5_3 with a 4-channel first layer (RGB + trimap),
  then ``conv6_1`` (3×3) in place of fc6; each block ends in a 2×2 max-pool whose
  argmax indices are kept;
* decoder: ``deconv6_1`` (1×1), then per block max-unpool with the encoder's
  indices, **plus** the encoder feature of that block (the port's skip
  connections), and a 5×5 conv; ``deconv1`` predicts the raw alpha;
* refinement (stages 2 and 3): three 3×3 conv+ReLU layers and a prediction layer on
  ``cat(image, predicted alpha)``; its output is added to the raw alpha in logit
  space before the final sigmoid.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MattingError
from .constants import IMAGENET_MEAN, IMAGENET_STD
from .fft_conv import InWorkerThread, with_fft_convolutions
from .registry import Example, InputConfig, register_architecture
from .winograd_conv import with_winograd_convolutions

__all__ = ["DIM", "INPUT"]

INPUT = InputConfig(
    channels=("R", "G", "B", "trimap"), value_range=(0.0, 1.0), mean=IMAGENET_MEAN, std=IMAGENET_STD,
    size_rule="each side rounded down to a multiple of 32 and capped at max_size (1600) separately; the trimap "
              "channel is trimap / 255 (not normalised)",
    example_size=(320, 320), stride=32,
    examples=(Example((320, 320)), Example((608, 800))),
)


def recognise(shapes):
    heads = {k.split(".", 1)[0] for k in shapes}
    return ("Deep Image Matting, huochaitiantang port (arch 'dim')"
            if {"conv1_1", "conv6_1", "deconv1"} <= heads else None)

# (name, in_channels, out_channels) of the 3×3 encoder convolutions, grouped by pooling block.
_ENCODER_BLOCKS = [
    [("conv1_1", 4, 64), ("conv1_2", 64, 64)],
    [("conv2_1", 64, 128), ("conv2_2", 128, 128)],
    [("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256)],
    [("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512)],
    [("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512)],
]

# 5×5 decoder convolutions, deepest first; each follows the unpooling of one encoder block.
_DECODER_CONVS = [
    ("deconv5_1", 512, 512),
    ("deconv4_1", 512, 256),
    ("deconv3_1", 256, 128),
    ("deconv2_1", 128, 64),
    ("deconv1_1", 64, 64),
]


# Smallest input (height × width pixels) from which the fast path convolves by FFT, per kernel size
# (matting.models.fft_conv). Measured at 1 thread on 2 busy cores against oneDNN's direct convolution:
# 5×5 decoder convolutions win from 38×50 (0.5×) and lose at 20² (1.2×, 512 channels); 3×3 encoder
# ones win from 80² (0.76–0.84×) and lose at 40² (1.3–1.5×, 256–512 channels).
FFT_FROM_PIXELS = {5: 32 * 32, 3: 64 * 64}
# 3×3 convolutions with at least this many input and output channels, on maps of WINOGRAD_PIXELS,
# go to Winograd F(4×4, 3×3) instead (matting.models.winograd_conv): conv3_x to conv5_x at 320²
# (80², 40², 20²), conv4_x and conv5_x at 608×800 (76×100, 38×50; conv3_x at 152×200 stays FFT,
# 0.60× direct against Winograd's 0.70×). On 10² maps (conv6_1 at 320²) it loses (2.7×).
WINOGRAD_MIN_CHANNELS = 256
WINOGRAD_PIXELS = (20 * 20, 128 * 128)


def _winograd_range(conv):
    wide = min(conv.in_channels, conv.out_channels) >= WINOGRAD_MIN_CHANNELS
    return WINOGRAD_PIXELS if wide else None


def fast_module(model, *example_inputs):
    """The torch backend's DIM: NCHW (NNPACK's layout), the wide 3×3 convolutions on mid-sized maps by
    Winograd F(4×4, 3×3) (:mod:`matting.models.winograd_conv`), the other large convolutions by FFT
    (:mod:`matting.models.fft_conv`, NNPACK's pool on every core), in a worker thread
    (:class:`~matting.models.fft_conv.InWorkerThread`, kept between forwards of small inputs). No
    BatchNorm to fold.

    Measured on 2 quiet cores against the reference at torch's default 2 threads (interleaved, one
    process, median of 5): at 320² 0.63× (FFT alone 0.76×), at 608×800 0.64× (FFT alone 0.71×); with
    torch at 1 thread (a busy machine) 1.00× and 0.83× (FFT alone 1.08× and 0.81×). oneDNN's direct
    convolutions in channels_last, the other choice, ran 0.92× and 0.80–0.93× at 320², 0.80× and
    0.85–0.89× at 608×800."""
    return InWorkerThread(with_winograd_convolutions(with_fft_convolutions(model, FFT_FROM_PIXELS), _winograd_range))


@register_architecture("dim", recognise=recognise, input_config=INPUT, fast_module=fast_module,
                       description="VGG16(stage) of the huochaitiantang Deep Image Matting port")
class DIM(nn.Module):
    """The port's ``VGG16(args)``; ``stage`` is the port's ``args.stage``.

    * ``stage`` 0 or 1: encoder–decoder only; ``forward`` returns ``(pred_mattes, 0)``
      exactly as the official code does (the integer 0 stands for "no refined alpha").
    * ``stage`` 2: adds the refinement head and freezes the encoder–decoder
      (``requires_grad=False``), as the official stage-2 training does.
    * ``stage`` 3: adds the refinement head, everything trainable.
      ``forward`` returns ``(pred_mattes, pred_alpha)``.

    Input: N×4×H×W, ImageNet-normalised RGB and trimap / 255; H and W multiples of 32
    in the official code (other sizes work here, see ``forward``).
    """

    def __init__(self, stage=1):
        super().__init__()
        if stage not in (0, 1, 2, 3):
            raise MattingError(f"DIM stage must be 0, 1, 2 or 3, got {stage!r}.")
        self.stage = stage

        for block in _ENCODER_BLOCKS:
            for name, cin, cout in block:
                self.add_module(name, nn.Conv2d(cin, cout, kernel_size=3, padding=1))
        # Checkpoints released before 2019-09-09 used a 1×1 conv6_1 (shape mismatch on load).
        self.conv6_1 = nn.Conv2d(512, 512, kernel_size=3, padding=1)

        self.deconv6_1 = nn.Conv2d(512, 512, kernel_size=1)
        for name, cin, cout in _DECODER_CONVS:
            self.add_module(name, nn.Conv2d(cin, cout, kernel_size=5, padding=2))
        self.deconv1 = nn.Conv2d(64, 1, kernel_size=5, padding=2)

        if stage == 2:
            for parameter in self.parameters():
                parameter.requires_grad = False

        self.has_refinement = stage >= 2
        if self.has_refinement:
            self.refine_conv1 = nn.Conv2d(4, 64, kernel_size=3, padding=1)
            self.refine_conv2 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
            self.refine_conv3 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
            self.refine_pred = nn.Conv2d(64, 1, kernel_size=3, padding=1)

    def _relu_conv(self, name, x):
        return F.relu(getattr(self, name)(x))

    def forward(self, x):
        # Encoder. PyTorch's max_pool2d returns the first maximum of a window on ties
        # (frequent: all-zero windows after ReLU); unpooling depends on that choice.
        hx = x
        skips, indices = [], []
        for block in _ENCODER_BLOCKS:
            for name, _, _ in block:
                hx = self._relu_conv(name, hx)
            skips.append(hx)
            hx, argmax = F.max_pool2d(hx, kernel_size=2, stride=2, return_indices=True)
            indices.append(argmax)
        hx = self._relu_conv("conv6_1", hx)

        # Decoder: unpool to the encoder feature's size (the official code relies on
        # H, W being multiples of 32 instead), add that feature, then convolve.
        hx = self._relu_conv("deconv6_1", hx)
        for (name, _, _), skip, argmax in zip(_DECODER_CONVS, reversed(skips), reversed(indices)):
            hx = F.max_unpool2d(hx, argmax, kernel_size=2, stride=2, output_size=skip.shape[2:])
            hx = self._relu_conv(name, hx + skip)
        raw_alpha = self.deconv1(hx)
        pred_mattes = torch.sigmoid(raw_alpha)

        if not self.has_refinement:
            return pred_mattes, 0

        refined = torch.cat((x[:, :3], pred_mattes), 1)
        for name in ("refine_conv1", "refine_conv2", "refine_conv3"):
            refined = self._relu_conv(name, refined)
        pred_alpha = torch.sigmoid(raw_alpha + self.refine_pred(refined))
        return pred_mattes, pred_alpha
