"""Methods the survey names that cannot run: listed with their cards, each with the reason (``unavailable``).

MMNet, FDMPA and HAttMatting have no trained model anyone can download (facts and sources in
``../shared/notes/survey-methods.md`` §5–7). They are registered so that the Methods tab, Compare and
``python -m matting methods`` say so; :class:`matting.runner.Session` raises the reason before anything
runs. FDMPA's idea (segmentation + a feathering filter) runs as ``selfie_guided_filter``
(:mod:`matting.adapters.feathering`).
"""
from __future__ import annotations

from ..errors import MattingError
from ..registry import register
from ..spec import Card, MethodSpec


def _never(inputs, params, *loaded):  # Session refuses first; this is only a second lock
    raise MattingError("This method has no trained model and cannot run.")


_SPECS = (
    MethodSpec(
        id="mmnet", name="MMNet", family="automatic", compute=_never,
        unavailable=("MMNet's official code (TensorFlow 1.6, Apache-2.0) is public but no trained model was ever "
                     "published: 'We do not provide pre-trained models' (hyperconnect/MMNet issue #5), and the "
                     "TensorFlow 1.6 code cannot be installed on Python 3.11 to train one."),
        card=Card(
            paper="Towards Real-Time Automatic Portrait Matting on Mobile Devices",
            authors="Seokjun Seo, Seungwoo Choi, Martin Kersner, Beomjun Shin, Hyungsuk Yoon, Hyeongmin Byun, "
                    "Sungjoo Ha",
            year=2019, venue="arXiv:1904.03816 (2019)", paper_url="https://arxiv.org/abs/1904.03816",
            code="github.com/hyperconnect/MMNet (official, TensorFlow 1.6 + tf.contrib.slim; not ported here)",
            code_license="Apache-2.0",
            weights_license="no weights: none were released (issue #5)",
            how_it_works=(
                "Mobile Matting Network: a light encoder–decoder for automatic portrait matting on phones. Its "
                "encoder blocks split into parallel branches of depthwise convolutions with different dilation "
                "rates (multi-branch dilated convolution, output stride 16), merged by 1×1 convolutions; the "
                "decoder upsamples bilinearly with depthwise-separable shortcuts from the encoder; 256×256 "
                "input scaled to [0, 1]; a softmax over two channels gives alpha."),
            notes="Card only: the workbench loads official checkpoints unchanged, and MMNet has none.",
        ),
    ),
    MethodSpec(
        id="fdmpa", name="FDMPA network", family="automatic", compute=_never,
        unavailable=("Fast Deep Matting for Portrait Animation has no official code, and the public PyTorch port "
                     "(huochaitiantang/pytorch-fast-matting-portrait) never published weights. Its idea, "
                     "segmentation followed by a feathering filter, runs as 'Selfie segmentation → guided-filter "
                     "feathering (FDMPA's idea)' (selfie_guided_filter)."),
        card=Card(
            paper="Fast Deep Matting for Portrait Animation on Mobile Phone",
            authors="Bingke Zhu, Yingying Chen, Jinqiao Wang, Si Liu, Bo Zhang, Ming Tang",
            year=2017, venue="ACM Multimedia 2017 (doi:10.1145/3123266.3123286)",
            paper_url="https://arxiv.org/abs/1707.08289",
            code="no official code; unofficial PyTorch port github.com/huochaitiantang/pytorch-fast-matting-portrait "
                 "(no weights; not ported here)",
            code_license="none stated (the port has no LICENSE file)",
            weights_license="no weights: neither the authors nor the port released any",
            how_it_works=(
                "A tiny segmentation block (a strided convolution concatenated with a max-pooled copy of the "
                "input, then densely connected dilated convolutions) gives foreground/background probabilities "
                "at 128×128; a 'feathering block' — a learned, guided-filter-like layer — predicts per-pixel "
                "coefficients a, b, c from the image, the probabilities, the squared image and image×foreground, "
                "and alpha = sigmoid(a·fg + b·bg + c)."),
            notes=("Card only. The runnable stand-in 'Selfie segmentation → guided-filter feathering' is the idea "
                   "(segmentation, then an edge-aware filter guided by the photo) with a classical guided filter "
                   "in place of the learned feathering block, not this network."),
        ),
    ),
    MethodSpec(
        id="hattmatting", name="HAttMatting", family="automatic",
        compute=_never,
        unavailable=("HAttMatting's authors released neither code nor weights: the repository "
                     "(yuhaoliu7456/CVPR2020-HAttMatting) still says 'Code and paper is coming soon!!!' and "
                     "its issues #5, #10, #21, #23 and #25 ask for the code; only the Distinctions-646 dataset "
                     "is offered."),
        card=Card(
            paper="Attention-Guided Hierarchical Structure Aggregation for Image Matting",
            authors="Yu Qiao, Yuhao Liu, Xin Yang, Dongsheng Zhou, Mingliang Xu, Qiang Zhang, Xiaopeng Wei",
            year=2020, venue="CVPR 2020", paper_url="https://openaccess.thecvf.com/content_CVPR_2020/html/"
                                                    "Qiao_Attention-Guided_Hierarchical_Structure_Aggregation_for_Image_Matting_CVPR_2020_paper.html",
            code="none released (github.com/yuhaoliu7456/CVPR2020-HAttMatting holds the README, figures and the "
                 "Distinctions-646 file lists)",
            code_license="no code (an MIT LICENSE was committed on 2020-02-25 and deleted on 2020-06-10)",
            weights_license="no weights released",
            how_it_works=(
                "Trimap-free matting from the image alone: channel-wise attention selects among pyramidal (ASPP) "
                "high-level features to decide what the foreground is, spatial attention over low-level "
                "appearance features refines its boundary, and training combines SSIM, MSE and an adversarial "
                "loss (from the paper's abstract; nothing else can be checked)."),
            notes="Card only: nothing exists to port or to run.",
        ),
    ),
)

for _spec in _SPECS:
    register(_spec)
