"""Every classical solver recovers a known alpha from a synthetic composite I = αF + (1 − α)B."""
import numpy as np
import pytest

import matting
from matting.synthetic import make_composite

CASES = {
    "soft_edge": dict(edge=6.0),
    "holes": dict(edge=3.0, hole_fraction=0.4),
    "hair_strands": dict(edge=2.0, strands=6),
}
# Mean absolute alpha error over the unknown region that each method must stay under. The composites
# obey the colour-line model exactly, so the Laplacian methods are near exact; KNN's binary kernel and
# shared sampling are approximate; random walks smooth across edges (a known weakness of the method).
TOLERANCE = {
    "closed_form": 0.005, "large_kernel": 0.005, "learning_based": 0.005,
    "shared_sampling": 0.02, "knn": 0.05, "random_walk": 0.2,
}
CLASSICAL = tuple(TOLERANCE)


@pytest.fixture(scope="module", params=list(CASES))
def composite(request):
    return make_composite(**CASES[request.param])


@pytest.mark.parametrize("method_id", CLASSICAL)
def test_recovers_known_alpha_with_trimap(method_id, composite):
    trimap = composite.trimap(band=3)
    unknown = trimap == 128
    result = matting.run(method_id, composite.image, trimap=trimap, foreground="none")
    error = np.abs(result.alpha - composite.alpha)[unknown].mean()
    trivial = np.abs(0.5 - composite.alpha)[unknown].mean()
    assert error < TOLERANCE[method_id]
    assert error < 0.6 * trivial
    # Known pixels stay what the trimap says.
    assert np.all(result.alpha[trimap == 255] == 1.0) and np.all(result.alpha[trimap == 0] == 0.0)
    assert result.alpha.dtype == np.float32 and result.alpha.shape == composite.alpha.shape
    assert result.maps["constraints"].kind == "trimap"
    assert result.run_resolution == (96, 96)


def _scribbles(shape):
    foreground = np.zeros(shape, bool)
    background = np.zeros(shape, bool)
    foreground[44:52, 40:56] = True
    for band in (np.s_[2:6, :], np.s_[-6:-2, :], np.s_[:, 2:6], np.s_[:, -6:-2]):
        background[band] = True
    return foreground, background


SCRIBBLE_TOLERANCE = {"closed_form": 0.005, "learning_based": 0.005, "random_walk": 0.05, "knn": 0.12}


@pytest.mark.parametrize("method_id", list(SCRIBBLE_TOLERANCE))
def test_scribbles_alone_recover_alpha(method_id):
    composite = make_composite(edge=4.0)
    result = matting.run(method_id, composite.image, scribbles=_scribbles(composite.alpha.shape), foreground="none")
    assert np.abs(result.alpha - composite.alpha).mean() < SCRIBBLE_TOLERANCE[method_id]


@pytest.mark.parametrize("method_id", ["large_kernel", "shared_sampling"])
def test_methods_that_need_a_dense_trimap_say_so(method_id):
    spec = matting.get(method_id)
    assert not spec.accepts("scribbles") and "trimap" in spec.scribbles_note
    composite = make_composite()
    with pytest.raises(matting.MattingError, match="does not take scribbles"):
        matting.run(method_id, composite.image, scribbles=_scribbles(composite.alpha.shape))


@pytest.mark.parametrize("how", ["multilevel", "closed_form"])
def test_foreground_estimation_removes_colour_spill(how):
    composite = make_composite(edge=6.0)
    result = matting.run("closed_form", composite.image, trimap=composite.trimap(3), foreground=how)
    soft = (composite.alpha > 0.2) & (composite.alpha < 0.8)
    naive_error = np.abs(composite.image - composite.foreground)[soft].mean()
    estimated_error = np.abs(result.foreground - composite.foreground)[soft].mean()
    assert estimated_error < 0.3 * naive_error
    assert "foreground" in result.timings


def test_shared_sampling_provides_its_own_foreground():
    composite = make_composite(edge=4.0)
    spec = matting.get("shared_sampling")
    assert spec.param("foreground").default == "model"
    result = matting.run("shared_sampling", composite.image, trimap=composite.trimap(3))
    assert result.foreground is not None and result.foreground.shape == composite.image.shape


def test_foreground_none_gives_no_foreground():
    composite = make_composite()
    assert matting.run("random_walk", composite.image, trimap=composite.trimap(), foreground="none").foreground is None


def test_result_reports_parameters_timing_and_memory():
    composite = make_composite()
    result = matting.run("closed_form", composite.image, trimap=composite.trimap(), epsilon=1e-6)
    assert result.params["epsilon"] == 1e-6 and result.params["radius"] == 1
    assert result.seconds > 0 and result.timings["total"] == result.seconds
    assert result.peak_memory_bytes >= 0
    summary = result.summary()
    assert summary["method"] == "closed_form" and summary["input_size"] == [96, 96]
