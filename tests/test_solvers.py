"""matting.solvers against pymatting's own solver on small synthetic composites (≤ 200 px, seconds).

Tolerances: closed-form solves the same system as pymatting (hard constraints in both), so the alphas
agree to the CG tolerance (1e-4 here, from rtol = 1e-7 on both sides). Learning-based and random-walk
matting are solved by pymatting with a soft penalty λ = 100 on the known pixels and by us with exact
constraints (the limit λ → ∞), so unknown pixels next to known ones differ (random walk: 0.04 on
average over the unknown band here, with a lower SAD); we require a mean difference under 0.01
(learning-based) / 0.05 (random walk) and an SAD no higher than pymatting's (+0.5 %, + 1e-3 absolute
for near-zero SADs). Random walk is solved only with 'direct' (see solvers.auto_choice).
"""
import numpy as np
import pytest
import scipy.sparse

import matting
from matting import metrics, solvers
from matting.bench.classical import strokes_from_trimap
from matting.synthetic import make_composite

OWN = ("direct", "multigrid", "ichol")
MEAN_DIFFERENCE = {"closed_form": 1e-4, "learning_based": 0.01, "random_walk": 0.05}


@pytest.fixture(scope="module")
def composite():
    return make_composite(120, 140, edge=4.0, hole_fraction=0.4, strands=3)


def _run(method_id, composite, trimap, solver, **kwargs):
    return matting.run(method_id, composite.image, trimap=trimap, foreground="none", solver=solver, **kwargs)


def _sad(alpha, composite, trimap):
    return metrics.sad(alpha, composite.alpha, trimap=trimap)


@pytest.mark.parametrize("constraints", ("band", "strokes"))
@pytest.mark.parametrize("tile, radius", [(solvers.TILE, 1), (16, 1), (7, 1), (5, 2)])  # 5: tiles narrower than 2r
def test_closed_form_system_equals_pymatting_laplacian_restricted(composite, constraints, tile, radius):
    from matting import _pymatting  # noqa: F401  (numba cache directory)
    from pymatting.laplacian.cf_laplacian import cf_laplacian

    trimap = composite.trimap(band=4)
    # Strokes: unknown pixels on every image border and known ones scattered, so the gather meets
    # every case (columns outside the image, known background, known foreground, unknown).
    trimap = (strokes_from_trimap(trimap, fraction=0.10) if constraints == "strokes" else trimap) / 255.0
    _, known, _ = solvers.split_trimap(trimap)
    image = composite.image.astype(np.float64)
    reference = solvers.reduced_system(cf_laplacian(image, 1e-7, radius, is_known=known.reshape(trimap.shape)), trimap)
    ours = solvers.closed_form_system(image, trimap, 1e-7, radius, tile=tile)
    assert ours.A.shape == reference.A.shape
    assert abs(ours.A - reference.A).max() < 1e-9 * abs(reference.A).max()
    np.testing.assert_allclose(ours.b, reference.b, atol=1e-9)
    np.testing.assert_array_equal(ours.unknown, reference.unknown)


@pytest.mark.parametrize("method_id", list(MEAN_DIFFERENCE))
@pytest.mark.parametrize("solver", OWN)
def test_same_solution_as_pymatting_and_no_higher_sad(method_id, solver, composite):
    if method_id == "random_walk" and solver != "direct":
        pytest.skip("random walk: CG stalls with multigrid and ichol alike; auto always uses 'direct' for it")
    trimap = composite.trimap(band=4)
    unknown = trimap == 128
    reference = _run(method_id, composite, trimap, "pymatting").alpha
    ours = _run(method_id, composite, trimap, solver).alpha
    assert np.abs(ours - reference)[unknown].mean() < MEAN_DIFFERENCE[method_id]
    sad_ref, sad = _sad(reference, composite, trimap), _sad(ours, composite, trimap)
    assert sad <= sad_ref * 1.005 + 1e-3, (sad, sad_ref)
    # Known pixels are exact: they are not variables of the reduced system.
    assert np.all(ours[trimap == 255] == 1.0) and np.all(ours[trimap == 0] == 0.0)


@pytest.mark.parametrize("solver", ("auto", "direct", "multigrid"))
def test_strokes_only_converge_without_ichol_fallback(solver, capfd):
    composite = make_composite(180, 200, edge=4.0, hole_fraction=0.3, seed=3)
    strokes = strokes_from_trimap(composite.trimap(band=4), fraction=0.10)
    assert 0.08 < (strokes != 128).mean() < 0.2
    foreground, background = strokes == 255, strokes == 0
    result = matting.run("closed_form", composite.image, scribbles=(foreground, background), foreground="none",
                         solver=solver)
    assert "PERFORMANCE WARNING" not in capfd.readouterr().out
    assert np.all(result.alpha[foreground] == 1.0) and np.all(result.alpha[background] == 0.0)
    reference = matting.run("closed_form", composite.image, scribbles=(foreground, background),
                            foreground="none", solver="pymatting").alpha
    unknown = strokes == 128
    assert np.abs(result.alpha - reference)[unknown].mean() < 1e-3
    assert _sad(result.alpha, composite, strokes) <= _sad(reference, composite, strokes) * 1.005 + 1e-3


def test_multigrid_on_flat_colour_blocks():
    """Blocks of one exact colour make the colour-affine candidates rank-deficient; their empty
    coarse columns are dropped, so the coarse matrix stays non-singular and CG converges quickly."""
    composite = make_composite(96, 96, edge=4.0)
    alpha = composite.alpha[:, :, None]
    image = (alpha * np.array([0.9, 0.5, 0.1]) + (1 - alpha) * np.array([0.1, 0.3, 0.8])).astype(np.float64)
    trimap8 = composite.trimap(band=6)
    trimap = trimap8 / 255.0
    system = solvers.closed_form_system(image, trimap)
    M = solvers.multigrid_preconditioner(system.A, image, system.unknown)
    info = {}
    result = solvers.solve_laplacian(system, trimap, image, solver="multigrid", info=info)
    assert info["preconditioner"] == "multigrid" and info["iterations"] < 100
    assert np.abs(result - composite.alpha)[trimap8 == 128].mean() < 0.01
    assert callable(M)


def test_auto_choice_follows_region_size_and_shape():
    def system(n_unknown, n_pixels):
        unknown = np.zeros(n_pixels, bool)
        unknown[:n_unknown] = True
        return solvers.ReducedSystem(A=None, b=None, unknown=unknown, known_values=None)

    assert solvers.auto_choice(system(50_000, 400_000)) == "direct"
    assert solvers.auto_choice(system(100_000, 110_000)) == "direct"  # small: direct whatever the shape
    assert solvers.auto_choice(system(200_000, 400_000)) == "direct"  # a wide trimap band
    assert solvers.auto_choice(system(500_000, 2_000_000)) == "ichol"  # beyond DIRECT_MAX_UNKNOWNS
    assert solvers.auto_choice(system(360_000, 400_000)) == "multigrid"
    # closed-form: the multigrid on bands too, from BAND_MULTIGRID_MIN_UNKNOWNS; never without multigrid
    assert solvers.auto_choice(system(50_000, 400_000), band_multigrid=True) == "direct"
    assert solvers.auto_choice(system(50_001, 400_000), band_multigrid=True) == "multigrid"
    assert solvers.auto_choice(system(500_000, 2_000_000), band_multigrid=True) == "multigrid"
    assert solvers.auto_choice(system(360_000, 400_000), multigrid=False, band_multigrid=True) == "direct"


def test_closed_form_takes_the_multigrid_on_a_large_band(monkeypatch):
    """matting.run's closed-form picks the multigrid for a band above the threshold (lowered here),
    the direct solve below it, with the same alpha; learning-based keeps the direct solve."""
    import matting

    composite = make_composite(60, 70, edge=3.0, seed=5)
    trimap8 = composite.trimap(band=6)
    picked = []
    original = solvers.choose_preconditioner

    def spy(*args, **kwargs):
        name, M = original(*args, **kwargs)
        picked.append(name)
        return name, M

    monkeypatch.setattr(solvers, "choose_preconditioner", spy)
    direct = matting.run("closed_form", composite.image, trimap=trimap8, foreground="none").alpha
    monkeypatch.setattr(solvers, "BAND_MULTIGRID_MIN_UNKNOWNS", int((trimap8 == 128).sum()) - 1)
    multigrid = matting.run("closed_form", composite.image, trimap=trimap8, foreground="none").alpha
    matting.run("learning_based", composite.image, trimap=trimap8, foreground="none")
    assert picked == ["direct", "multigrid", "direct"]
    np.testing.assert_allclose(multigrid, direct, atol=1e-4)


def _strokes_system(height=120, width=140, seed=3):
    composite = make_composite(height, width, edge=4.0, hole_fraction=0.3, seed=seed)
    trimap = strokes_from_trimap(composite.trimap(band=4), fraction=0.10) / 255.0
    image = composite.image.astype(np.float64)
    return image, solvers.closed_form_system(image, trimap)


def test_tentative_prolongator_orthonormal_blocks_without_dependent_columns():
    from pyamg.aggregation import fit_candidates

    image, system = _strokes_system()
    h, w = image.shape[:2]
    image[:12, :12] = (0.2, 0.4, 0.6)  # flat tiles: R, G, B depend on 1 there
    candidates = solvers.colour_affine_candidates(image, system.unknown)
    T = solvers.tentative_prolongator(image.shape, system.unknown, candidates, block=6)
    np.testing.assert_allclose((T.T @ T).toarray(), np.eye(T.shape[1]), atol=1e-12)
    # Candidates lie in its range (exactly what the coarse level must represent) ...
    np.testing.assert_allclose(T @ (T.T @ candidates), candidates, atol=1e-9)
    # ... and each row belongs to one tile; the flat tiles in the corner keep one column each.
    assert np.all(np.diff(T.indptr) <= 4)
    y, x = np.divmod(np.flatnonzero(system.unknown), w)
    corner = (y < 12) & (x < 12)
    assert np.all(np.diff(T.indptr)[corner] == 1)
    # Same coarse space as pyamg's fit_candidates on the same aggregates (its zero columns aside; a
    # column more or less would differ by O(0.1), nearly dependent smooth-texture tiles by ~1e-8).
    tiles = (y // 6) * ((w + 5) // 6) + x // 6
    _, aggregate = np.unique(tiles, return_inverse=True)
    n = aggregate.size
    aggregates = scipy.sparse.csr_matrix((np.ones(n), (np.arange(n), aggregate)), shape=(n, aggregate.max() + 1))
    Q, _ = fit_candidates(aggregates, candidates)
    v = np.random.default_rng(0).standard_normal(n)
    np.testing.assert_allclose(T @ (T.T @ v), Q @ (Q.T @ v), atol=1e-6)


def test_jacobi_spectral_radius_approaches_the_exact_one_from_below():
    _, system = _strokes_system(30, 36)
    A = system.A.toarray()
    scale = 1.0 / np.sqrt(np.diag(A))
    exact = np.linalg.eigvalsh(A * scale[:, None] * scale[None, :])[-1]  # the spectrum of D⁻¹A
    assert solvers.jacobi_spectral_radius(system.A, steps=8) <= exact * (1 + 1e-9)
    assert solvers.jacobi_spectral_radius(system.A, steps=100) == pytest.approx(exact, rel=1e-4)


def test_multigrid_preconditioner_is_symmetric_and_cuts_iterations():
    """CG needs a symmetric M; in float32 it is so up to float32 rounding. On strokes it must do the
    work of a two-level method: tens of iterations, where Jacobi-preconditioned CG needs many hundreds."""
    image, system = _strokes_system()
    M = solvers.multigrid_preconditioner(system.A, image, system.unknown)
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal((2, system.A.shape[0]))
    assert abs(u @ M(v) - v @ M(u)) < 1e-5 * np.linalg.norm(u) * np.linalg.norm(M(v))
    assert u @ M(u) > 0
    count = solvers._IterationCounter()
    solvers.solve(system, M, rtol=1e-7, maxiter=5000, callback=count)
    assert count.n < 40
    with pytest.raises(ValueError, match="did not converge"):
        solvers.solve(system, lambda r: r / system.A.diagonal(), rtol=1e-7, maxiter=10 * count.n)


def test_own_cg_follows_pymatting_cg_step_for_step():
    from pymatting.solver.cg import cg as pymatting_cg

    from matting.cg import cg

    image, system = _strokes_system(60, 70)
    M = solvers.multigrid_preconditioner(system.A, image, system.unknown)
    x0 = np.random.default_rng(2).random(system.A.shape[0])
    history = {}
    for name, solver in (("pymatting", pymatting_cg), ("ours", cg)):
        norms = []
        x = solver(system.A, system.b, x0=x0, M=M, rtol=1e-9, callback=lambda A, x, b, nb, r, nr: norms.append(nr))
        history[name] = (x, np.array(norms))
    assert len(history["ours"][1]) == len(history["pymatting"][1])
    np.testing.assert_allclose(history["ours"][1], history["pymatting"][1], rtol=1e-6)
    np.testing.assert_allclose(history["ours"][0], history["pymatting"][0], atol=1e-10)
    with pytest.raises(ValueError, match="did not converge within 3 iterations"):
        cg(system.A, system.b, M=M, rtol=1e-12, maxiter=3)
    assert np.array_equal(cg(system.A, system.b, x0=history["ours"][0], rtol=1e-3), history["ours"][0])
    # b = 0 (background strokes only): x = 0 at once, where pymatting's strict test divides by zero.
    assert not cg(system.A, np.zeros_like(system.b), M=M).any()
