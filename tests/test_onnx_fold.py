"""``matting.models.onnx_fold``: BatchNorm-folded ONNX graphs back into PyTorch ``state_dict``s."""
import hashlib
import io
import warnings
from collections import Counter

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from matting.errors import MattingError
from matting.models.dim import DIM
from matting.models.random_init import recipe_like_weights_
from matting.models.u2net import U2NET, U2NETP
from matting.models.onnx_fold import state_dict_from_folded_onnx
from matting.paths import weights_dir

U2NETP_CONVS = 119
OFFICIAL_U2NETP_SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def randomise_(model, seed=0):
    """Recipe-like random weights, with BatchNorm statistics far from the identity, in eval mode."""
    return recipe_like_weights_(model, seed).eval()


def export_legacy(model, example, training=torch.onnx.TrainingMode.EVAL):
    """ONNX bytes from the TorchScript exporter, which folds BatchNorms in eval mode like PyTorch 1.9."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=11, training=training,
                          input_names=["x"], dynamic_axes={"x": {2: "height", 3: "width"}})
    return buffer.getvalue()


@pytest.fixture(scope="module")
def folded_u2netp():
    """A randomly weighted U2NETP and its BatchNorm-folded ONNX export."""
    torch.manual_seed(0)
    model = randomise_(U2NETP())
    return model, export_legacy(model, torch.zeros(1, 3, 64, 64))


def test_export_is_folded_like_the_official_file(folded_u2netp):
    _, onnx_bytes = folded_u2netp
    ops = Counter(node.op_type for node in onnx.load_model_from_string(onnx_bytes).graph.node)
    assert ops["Conv"] == U2NETP_CONVS
    assert ops["BatchNormalization"] == 0


def test_round_trip_reproduces_the_original_outputs(folded_u2netp):
    original, onnx_bytes = folded_u2netp
    restored = U2NETP()
    state = state_dict_from_folded_onnx(onnx_bytes, restored)

    assert list(state) == list(restored.state_dict())
    restored.load_state_dict(state, strict=True)
    restored.eval()
    # The folded convolutions differ from conv+BN, so the test is not trivially true.
    assert not torch.equal(state["stage1.rebnconvin.conv_s1.weight"], original.stage1.rebnconvin.conv_s1.weight)

    image = torch.rand(1, 3, 72, 88, generator=torch.Generator().manual_seed(1)) * 4 - 2
    with torch.no_grad():
        expected, actual = original(image), restored(image)
    for index, (want, got) in enumerate(zip(expected, actual)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5, err_msg=f"d{index}")


def test_converter_leaves_the_model_alone(folded_u2netp):
    _, onnx_bytes = folded_u2netp
    model = U2NETP().train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    state_dict_from_folded_onnx(onnx_bytes, model)
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_shape_mismatch_is_reported(folded_u2netp):
    # U2NET runs as many convolutions as U2NETP, in the same order, but wider ones.
    _, onnx_bytes = folded_u2netp
    with pytest.raises(MattingError, match="shape"):
        state_dict_from_folded_onnx(onnx_bytes, U2NET())


def test_count_mismatch_is_reported(folded_u2netp):
    _, onnx_bytes = folded_u2netp
    with pytest.raises(MattingError, match="119 Conv nodes"):
        state_dict_from_folded_onnx(onnx_bytes, DIM(stage=1), example_input=torch.zeros(1, 4, 64, 64))


def test_model_that_cannot_run_on_the_graph_input_is_reported(folded_u2netp):
    _, onnx_bytes = folded_u2netp
    with pytest.raises(MattingError, match="cannot run"):
        state_dict_from_folded_onnx(onnx_bytes, DIM(stage=1))  # DIM wants 4 channels


def test_dilation_mismatch_is_reported():
    graph_model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=2, dilation=2))
    onnx_bytes = export_legacy(graph_model.eval(), torch.zeros(1, 3, 16, 16))
    with pytest.raises(MattingError, match="dilations"):
        state_dict_from_folded_onnx(onnx_bytes, nn.Sequential(nn.Conv2d(3, 4, 3, padding=2)))


def test_unfolded_graph_is_rejected():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    onnx_bytes = export_legacy(model, torch.zeros(1, 3, 16, 16), training=torch.onnx.TrainingMode.PRESERVE)
    with pytest.raises(MattingError, match="BatchNormalization"):
        state_dict_from_folded_onnx(onnx_bytes, model)


def test_unreadable_input_is_reported(tmp_path):
    with pytest.raises(MattingError, match="Cannot read"):
        state_dict_from_folded_onnx(b"not an onnx model", U2NETP())
    with pytest.raises(MattingError, match="Cannot read"):
        state_dict_from_folded_onnx(tmp_path / "missing.onnx", U2NETP())


# --- the official U²-NetP weights (rembg's u2netp.onnx), when present ---------------------------

def official_preprocess(image):
    """``RescaleT(320)`` and ``ToTensorLab(flag=0)`` of the official U-2-Net ``data_loader.py``."""
    from skimage import transform

    resized = transform.resize(image, (320, 320), mode="constant", anti_aliasing=False)
    scaled = resized / resized.max()
    normalised = (scaled - IMAGENET_MEAN) / IMAGENET_STD
    return normalised.transpose(2, 0, 1)[None].astype(np.float32)


@pytest.fixture(scope="module")
def official_onnx():
    path = weights_dir() / "u2netp.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent (fetch the official U²-NetP weights first)")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == OFFICIAL_U2NETP_SHA256, f"{path} is not rembg's u2netp.onnx"
    return path


@pytest.fixture(scope="module")
def converted_u2netp(official_onnx):
    model = U2NETP()
    model.load_state_dict(state_dict_from_folded_onnx(official_onnx, model), strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def onnxruntime_session(official_onnx):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # Idle onnxruntime threads spin by default and then starve PyTorch's threads (10× slower).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(official_onnx), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("image_name", ["astronaut", "coffee", "chelsea"])
def test_official_weights_match_onnxruntime(onnxruntime_session, converted_u2netp, image_name):
    from skimage import data

    session = onnxruntime_session
    x = official_preprocess(getattr(data, image_name)())
    expected = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        actual = converted_u2netp(torch.from_numpy(x))

    assert len(actual) == len(expected) == 7
    for index, (got, want) in enumerate(zip(actual, expected)):
        # two libraries' float32 convolutions: on an AVX2-only CPU one pixel of d2 came out 1.1e-4 apart
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=3e-4, err_msg=f"{image_name} d{index}")
