"""Our U²-Net, U²-NetP and DIM against the official networks' outputs (../shared/fidelity).

Each fixture holds the outputs of the official class filled with the recipe's
deterministic weights; see ../shared/fidelity/MANIFEST.md.
"""

import numpy as np
import pytest
import torch

from matting.models.dim import DIM
from matting.models.u2net import U2NET, U2NETP

ATOL = 1e-4
DIM_STAGE1_KEYS = 42  # the encoder–decoder; the refinement head adds the rest


def float_keys(model):
    return [(key, list(value.shape)) for key, value in model.state_dict().items()
            if value.is_floating_point()]


def run_with_recipe(recipe, model, inputs):
    recipe.fill_(model)
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(inputs))


def assert_outputs_match(outputs, fixture, names):
    assert len(outputs) == len(names)
    for name, actual in zip(names, outputs):
        np.testing.assert_allclose(actual.numpy(), fixture[name], rtol=0, atol=ATOL, err_msg=name)


U2NET_OUTPUTS = [f"output_d{i}" for i in range(7)]


@pytest.mark.parametrize("name, cls", [("u2net", U2NET), ("u2netp", U2NETP)])
def test_u2net_keys_and_outputs(fidelity_dir, recipe, name, cls, official_keys):
    model = cls(3, 1)
    assert float_keys(model) == official_keys(name)

    fixture = np.load(fidelity_dir / f"{name}.npz")
    outputs = run_with_recipe(recipe, model, fixture["input_x"])
    assert isinstance(outputs, tuple)
    assert_outputs_match(outputs, fixture, U2NET_OUTPUTS)


def test_dim_refinement_stage_keys_and_outputs(fidelity_dir, recipe, official_keys):
    model = DIM(stage=3)
    assert float_keys(model) == official_keys("dim")

    fixture = np.load(fidelity_dir / "dim.npz")
    outputs = run_with_recipe(recipe, model, fixture["input_x"])
    assert_outputs_match(outputs, fixture, ["output_pred_mattes", "output_pred_alpha"])


def test_dim_stage1_keys_and_pred_mattes(fidelity_dir, recipe, official_keys):
    model = DIM(stage=1)
    assert float_keys(model) == official_keys("dim", DIM_STAGE1_KEYS)

    fixture = np.load(fidelity_dir / "dim.npz")
    pred_mattes, pred_alpha = run_with_recipe(recipe, model, fixture["input_x"])
    assert pred_alpha == 0  # the official stage-1 network returns the integer 0 here
    assert_outputs_match([pred_mattes], fixture, ["output_pred_mattes"])


# --- behaviour beyond the fixtures (no ../shared needed) ----------------------------------------

def test_registry_builds_the_models():
    from matting.models import create

    assert isinstance(create("u2net"), U2NET)
    assert isinstance(create("u2netp"), U2NETP)
    dim = create("dim", stage=1)
    assert isinstance(dim, DIM) and not dim.has_refinement


def test_dim_stage2_freezes_the_encoder_decoder_only():
    model = DIM(stage=2)
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable == {f"refine_{layer}.{kind}" for layer in ("conv1", "conv2", "conv3", "pred")
                         for kind in ("weight", "bias")}


@pytest.mark.parametrize("model", [U2NETP(), DIM(stage=3)], ids=["u2netp", "dim"])
def test_any_input_size(model):
    # The official DIM only handles multiples of 32; unpooling to the skip's size lifts that.
    channels = 4 if isinstance(model, DIM) else 3
    with torch.no_grad():
        outputs = model.eval()(torch.rand(1, channels, 45, 61))
    assert all(output.shape == (1, 1, 45, 61) for output in outputs)
