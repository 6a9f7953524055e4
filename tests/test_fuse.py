"""``matting.models.fuse``: BatchNorm folding keeps outputs and only folds what is safe to fold."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from matting import models
from matting.models.fuse import find_conv_bn_pairs, fold_batchnorm
from matting.models.random_init import recipe_like_weights_

ATOL = 1e-5


def randomise_(model, seed=0):
    """Recipe-like random weights, with BatchNorm statistics far from the identity, in eval mode."""
    return recipe_like_weights_(model, seed).eval()


def batch_norms(model):
    return [name for name, module in model.named_modules() if isinstance(module, nn.BatchNorm2d)]


def assert_same_outputs(expected, actual):
    assert len(expected) == len(actual)
    for index, (want, got) in enumerate(zip(expected, actual)):
        torch.testing.assert_close(got, want, rtol=0, atol=ATOL, msg=lambda m: f"output {index}: {m}")


# name, create() arguments, inputs, batch norms left unfolded
CASES = {
    "u2netp": (("u2netp", {}), lambda g: (torch.rand(1, 3, 72, 88, generator=g) * 4 - 2,), 0),
    "bgmv2_mobilenetv2_base": (("bgmv2_base", {"backbone": "mobilenetv2"}),
                               lambda g: (torch.rand(1, 3, 96, 128, generator=g),
                                          torch.rand(1, 3, 96, 128, generator=g)), 0),
    # IBNorm normalises half of a convolution's channels: none of those BatchNorms follows a conv.
    "modnet": (("modnet", {}), lambda g: (torch.rand(1, 3, 64, 96, generator=g) * 2 - 1, True), 17),
}


@pytest.mark.parametrize("case", list(CASES))
def test_folding_keeps_the_outputs(case):
    (arch, kwargs), make_inputs, expected_left = CASES[case]
    torch.manual_seed(0)
    model = randomise_(models.create(arch, **kwargs))
    inputs = make_inputs(torch.Generator().manual_seed(1))
    before = {key: value.clone() for key, value in model.state_dict().items()}

    folded = fold_batchnorm(model, *inputs)

    assert len(batch_norms(folded)) == expected_left
    assert len(batch_norms(model)) > expected_left
    assert not folded.training and type(folded) is type(model)
    for key, value in model.state_dict().items():  # the original is untouched
        assert torch.equal(value, before[key]), key
    with torch.no_grad():
        assert_same_outputs(model(*inputs), folded(*inputs))


def test_u2netp_fused_weights_are_not_trivially_the_old_ones():
    model = randomise_(models.create("u2netp"))
    folded = fold_batchnorm(model)
    conv = folded.stage1.rebnconvin.conv_s1
    assert isinstance(folded.stage1.rebnconvin.bn_s1, nn.Identity)
    assert not torch.allclose(conv.weight, model.stage1.rebnconvin.conv_s1.weight)


def test_bgmv2_refiner_is_left_alone_and_outputs_match():
    # The refiner's forward branches on data, so fx cannot trace it; everything else folds.
    model = randomise_(models.create("bgmv2_refine", backbone="mobilenetv2", backbone_scale=0.25,
                                     refine_mode="sampling", refine_sample_pixels=1024))
    generator = torch.Generator().manual_seed(2)
    src, bgr = torch.rand(1, 3, 128, 160, generator=generator), torch.rand(1, 3, 128, 160, generator=generator)
    folded = fold_batchnorm(model, src, bgr)
    assert batch_norms(folded) == ["refiner.bn1", "refiner.bn2", "refiner.bn3"]
    with torch.no_grad():
        expected, actual = model(src, bgr), folded(src, bgr)
    # pha_sm, fgr_sm, err_sm: the coarse outputs, which do not depend on which patches are refined.
    assert_same_outputs(expected[2:5], actual[2:5])


# --------------------------------------------------------------------------------------
# What must not be folded
# --------------------------------------------------------------------------------------

class ConvBn(nn.Module):
    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)


class ConvOutputAlsoUsed(ConvBn):
    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class BatchNormOnSomethingElse(ConvBn):
    def forward(self, x):
        return self.bn(F.relu(self.conv(x)))


class BatchNormCalledTwice(ConvBn):
    def forward(self, x):
        return self.bn(self.conv(x)) + self.bn(x)


class ConvCalledTwice(ConvBn):
    def forward(self, x):
        return self.bn(self.conv(x)) + self.conv(x)


class ConvModifiedInPlace(ConvBn):
    def forward(self, x):
        y = self.conv(x)
        y.add_(1)
        return self.bn(y)


@pytest.mark.parametrize("cls", [ConvOutputAlsoUsed, BatchNormOnSomethingElse, BatchNormCalledTwice,
                                 ConvCalledTwice, ConvModifiedInPlace])
def test_unsafe_patterns_are_not_folded(cls):
    model = randomise_(cls())
    assert find_conv_bn_pairs(model) == []
    folded = fold_batchnorm(model)
    assert isinstance(folded.bn, nn.BatchNorm2d)


def test_a_convolution_that_derives_its_weight_is_not_folded():
    """SIM's weight-standardised convolution: a scaled weight would be standardised back. (The tracer
    goes inside it, so it is no Conv2d call to pair.)"""
    from matting.models.sim import WSConv2d

    model = randomise_(nn.Sequential(WSConv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4)))
    assert find_conv_bn_pairs(model) == []
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(model, x)(x), model(x), rtol=0, atol=0)


def test_batch_norm_without_running_statistics_is_not_folded():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)).eval()
    assert find_conv_bn_pairs(model) == []


class Untraceable(nn.Module):
    """Data-dependent forward around a traceable child; also calls a grandchild directly."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        if x.mean() > 100:
            return self.block[0](x)  # bypasses the BatchNorm: folding block.0 would be wrong here
        return self.block(x)


def test_pairs_are_taken_from_traceable_children():
    model = randomise_(Untraceable())
    pairs = find_conv_bn_pairs(model)
    assert [(pair.conv_name, pair.bn_name, pair.owner_name) for pair in pairs] == [("block.0", "block.1", "block")]


def test_runtime_check_drops_pairs_called_outside_their_traced_owner():
    model = randomise_(Untraceable())
    x = torch.full((1, 3, 8, 8), 200.0)
    folded = fold_batchnorm(model, x)
    assert isinstance(folded.block[1], nn.BatchNorm2d)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), rtol=0, atol=ATOL)

    # On an input that takes the usual path, the check passes and the pair folds.
    folded = fold_batchnorm(model, torch.rand(1, 3, 8, 8))
    assert isinstance(folded.block[1], nn.Identity)
