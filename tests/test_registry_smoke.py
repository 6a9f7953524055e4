"""Every registered method that can run here runs on one small synthetic scene (timm-style registry
test: no hand list of ids). Methods whose weights are not present, or that cannot run at all, are
skipped with the reason."""
from __future__ import annotations

import numpy as np
import pytest

import matting
from matting import weights
from matting.synthetic import make_composite

SCENE = make_composite(64, 72, seed=3)


def _portrait() -> np.ndarray:
    """scikit-image's astronaut (a portrait, public domain) at 96×96: automatic methods look for a subject."""
    from skimage import data
    from skimage.transform import resize

    return resize(data.astronaut(), (96, 96), anti_aliasing=True).astype(np.float32)


def _inputs(spec) -> dict:
    given = {}
    if "background" in spec.required_inputs:
        given["background"] = SCENE.background
    if spec.one_of_inputs and not set(given) & set(spec.one_of_inputs):
        given[spec.one_of_inputs[0]] = SCENE.trimap() if spec.one_of_inputs[0] == "trimap" else None
    return given


@pytest.mark.parametrize("method_id", [spec.id for spec in matting.methods()])
def test_every_runnable_method_runs(method_id):
    spec = matting.get(method_id)
    if spec.unavailable:
        with pytest.raises(matting.MattingError, match="cannot run here"):
            matting.run(method_id, SCENE.image)
        return
    if not spec.can_run_with(weights.usable):
        pytest.skip(f"weights not present: {', '.join(spec.weights)}")
    given = _inputs(spec)
    if any(value is None for value in given.values()):
        pytest.skip(f"the smoke scene has no {', '.join(k for k, v in given.items() if v is None)}")
    image = _portrait() if spec.family == "automatic" else SCENE.image
    result = matting.run(method_id, image, **given)
    assert result.alpha.shape == image.shape[:2] and result.alpha.dtype == np.float32
    assert np.isfinite(result.alpha).all() and 0.0 <= result.alpha.min() <= result.alpha.max() <= 1.0
    assert set(result.maps) <= {o.name for o in spec.outputs} | {"constraints"}
    assert result.method == method_id and result.seconds > 0
